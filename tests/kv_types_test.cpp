// The narrow KV storage types (bf16, q8, q4): the host writer's bits read back from the pool
// (round trips of known values), and decode and prefill, both tiers, against the float64
// reference twice: tightly on the K/V the host decodes from the stored bits (what the kernels
// read), and within a stated bound on the original floats (what quantisation costs).
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kv_cache_impl.hpp"
#include "kv_codec.hpp"
#include "reference.hpp"
#include "test_support.hpp"

namespace gqavk::test {
namespace {

// Row `token` of head g (K, or V when v) of sequence `seq`, decoded from a download of the pool.
std::vector<float> stored_row(const KvCache& cache, const std::vector<uint8_t>& pool,
                              const std::vector<uint32_t>& table, uint32_t seq, uint32_t g,
                              uint32_t token, bool v) {
  const ImplOf<KvCache>& c = impl_of(cache);
  const uint32_t block = table[seq * c.blocks_per_seq + (token >> c.block_shift)];
  const uint32_t slot = token & (c.desc.block_tokens - 1);
  const uint32_t dim = v ? c.desc.v_head_dim : c.desc.head_dim;
  const uint32_t texels = v ? c.row_v : c.row_k;
  std::vector<uint32_t> words(texels * 4), scales(v ? c.scale_words_v : c.scale_words_k);
  const uint64_t row = c.row_offset(block, g, slot, v);
  for (uint32_t t = 0; t < texels; ++t) {
    std::memcpy(&words[t * 4], pool.data() + row + (uint64_t{t} << c.group_shift) * 16, 16);
  }
  if (!scales.empty()) {  // f16/bf16 rows have none: memcpy from or to nullptr is undefined (UBSan)
    std::memcpy(scales.data(), pool.data() + c.scale_offset(block, g, slot, v), scales.size() * 4);
  }
  std::vector<float> out(dim);
  decode_row(c.desc.dtype, words.data(), scales.data(), dim, out.data());
  return out;
}

struct PoolCopy {
  std::vector<uint8_t> pool;
  std::vector<uint32_t> table;
};

PoolCopy download(const KvCache& cache) {
  ImplOf<KvCache>& c = impl_of(cache);
  c.sync_tables();  // a plan would upload them before its run
  PoolCopy p{std::vector<uint8_t>(c.pool.bytes()),
             std::vector<uint32_t>(c.block_table.bytes() / 4)};
  c.ctx->download(c.pool, 0, p.pool.data(), p.pool.size());
  c.ctx->download(c.block_table, 0, p.table.data(), p.table.size() * 4);
  return p;
}

// What the kernels read for `kv` stored as t.
KvHost stored(const KvHost& kv, DType t) {
  KvHost out = kv;
  store_and_read_rows(t, out.k, kv.head_dim);
  store_and_read_rows(t, out.v, kv.v_head_dim);
  return out;
}

// The largest error t's storage adds to a value of a row whose |values| are at most amax (here 1):
// bf16 half an ulp of 1 (2^-9); q8 half a step, amax / 254; q4 half a step of the f16 scale,
// (amax / 7) (1 + 2^-11) / 2, plus the clamp at 7 steps, which the f16 rounding of the scale can
// make cost at most 7 * 2^-11 * amax / 7: together below amax / 14 * (1 + 2^-9).
double storage_error(DType t, double amax) {
  switch (t) {
    case DType::bf16:
      return amax * std::ldexp(1.0, -9);
    case DType::q8:
      return amax / 254.0 * (1 + 1e-6);
    case DType::q4:
      return amax / 14.0 * (1 + std::ldexp(1.0, -9));
    default:
      return 0.0;
  }
}

// The bound on |attention on stored K/V - attention on the originals| for queries q (rows of dk):
// a K error of at most ek per value moves a score by at most D = scale * max ||q_h||_1 * ek, so a
// key's softmax weight changes by a factor within [e^-2D, e^2D] (its own exp by e^+-D and the sum
// by as much), the weights' total change is at most e^2D - 1, and with |v| <= 1 that moves the
// output by at most e^2D - 1; the V error adds at most ev (the weights sum to 1).
double attention_bound(DType t, const std::vector<float>& q, uint32_t dk, double scale) {
  double q1 = 0;
  for (size_t at = 0; at < q.size(); at += dk) {
    double s = 0;
    for (uint32_t d = 0; d < dk; ++d) s += std::fabs(q[at + d]);
    q1 = std::max(q1, s);
  }
  const double e = storage_error(t, 1.0);
  return e + std::expm1(2 * scale * q1 * e) + 1e-5;
}

class KvTypes : public GpuTest {};

TEST_F(KvTypes, Bf16RoundsToNearestEven) {
  KvCacheDesc desc{2, 2, 64, 40, DType::bf16, 16};
  KvCache cache(context(), desc);
  // Token 0 of each row carries the special values; the rest are random.
  std::vector<float> k = random_values(2 * 33 * 64, 5), v = random_values(2 * 33 * 64, 6);
  const float one = 1.0f, tie_down = std::bit_cast<float>(0x3f808000u);  // 1 + 2^-8: to 1
  const float tie_up = std::bit_cast<float>(0x3f818000u);  // 1 + 3 * 2^-8: to 1 + 2^-6
  const float above = std::bit_cast<float>(0x3f808001u);   // just past the tie: up to 1 + 2^-7
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const float specials[] = {tie_down, tie_up, above, -tie_down, nan, inf, -inf, 0.0f, -0.0f};
  const float want[] = {one,
                        std::bit_cast<float>(0x3f820000u),
                        std::bit_cast<float>(0x3f810000u),
                        -one,
                        nan,
                        inf,
                        -inf,
                        0.0f,
                        -0.0f};
  for (size_t i = 0; i < std::size(specials); ++i) k[i] = specials[i];
  // Tokens [0, 5) first: writes leave no holes.
  const std::vector<float> lead(2 * 5 * 64, 0.5f);
  cache.write(1, 0, 5, lead, lead);
  cache.write(1, 5, 33, k, v);
  const PoolCopy p = download(cache);
  const std::vector<float> row = stored_row(cache, p.pool, p.table, 1, 0, 5, false);
  for (size_t i = 0; i < std::size(specials); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(row[i])) << i;
    } else {
      EXPECT_EQ(std::bit_cast<uint32_t>(row[i]), std::bit_cast<uint32_t>(want[i])) << i;
    }
  }
  // Every other value: the nearest bf16 (the truncation or the next one up, whichever is closer).
  for (uint32_t g = 0; g < 2; ++g) {
    for (uint32_t t = 0; t < 33; ++t) {
      for (bool is_v : {false, true}) {
        const std::vector<float> got = stored_row(cache, p.pool, p.table, 1, g, 5 + t, is_v);
        const float* src = (is_v ? v.data() : k.data()) + (size_t{g} * 33 + t) * 64;
        for (uint32_t d = (g == 0 && t == 0 && !is_v) ? 9 : 0; d < 64; ++d) {
          const float x = src[d];
          const float lo = std::bit_cast<float>(std::bit_cast<uint32_t>(x) & 0xffff0000u);
          const float hi =
              std::bit_cast<float>((std::bit_cast<uint32_t>(x) & 0xffff0000u) + 0x10000u);
          const float nearest = std::fabs(x - lo) < std::fabs(hi - x) ? lo : hi;
          ASSERT_EQ(got[d], std::fabs(x - lo) == std::fabs(hi - x) ? got[d] : nearest)
              << "head " << g << " token " << t << " v " << is_v << " dim " << d;
        }
      }
    }
  }
  // The lead tokens come back as written (0.5 is exact in bf16).
  EXPECT_EQ(stored_row(cache, p.pool, p.table, 1, 1, 4, true), std::vector<float>(64, 0.5f));
}

// Values on a type's grid (code * scale, with a scale that max |x| / levels reproduces exactly and,
// for q4, f16 holds) come back exactly, in every head, token and K/V row, including rows of all
// zeros (amax 0).
void check_grid(DType t, uint32_t dk, uint32_t dv) {
  SCOPED_TRACE(to_string(t));
  const uint32_t heads = 2, n = 21, first = 3;
  KvCacheDesc desc{2, heads, dk, 32, t, 8, dv};
  KvCache cache(context(), desc);
  std::vector<float> k(size_t{heads} * n * dk), v(size_t{heads} * n * dv);
  uint32_t seed = 1;
  for (auto [values, dim] : {std::pair{&k, dk}, std::pair{&v, dv}}) {
    for (size_t row = 0; row < values->size() / dim; ++row) {
      if (row % 7 == 3) continue;  // a zero row
      const float scale = (t == DType::q8 ? 0.0078125f : 0.25f) * static_cast<float>(1 + row % 5);
      const int levels = t == DType::q8 ? 127 : 7;
      const std::vector<float> codes = random_integers(dim, seed++, -levels, levels);
      for (uint32_t d = 0; d < dim; ++d) {
        // Each 32-value run (q4's scale group; all of a q8 row) reaches +-levels once.
        const float code =
            d % 32 == 0 ? (row % 2 ? 1.0f : -1.0f) * static_cast<float>(levels) : codes[d];
        (*values)[row * dim + d] = code * scale;
      }
    }
  }
  const std::vector<float> lead_k(size_t{heads} * first * dk, 0.0f),
      lead_v(size_t{heads} * first * dv, 0.0f);
  cache.write(1, 0, first, lead_k, lead_v);  // writes leave no holes
  cache.write(1, first, n, k, v);
  const PoolCopy p = download(cache);
  for (uint32_t g = 0; g < heads; ++g) {
    for (uint32_t i = 0; i < n; ++i) {
      for (bool is_v : {false, true}) {
        const uint32_t dim = is_v ? dv : dk;
        const float* src = (is_v ? v.data() : k.data()) + (size_t{g} * n + i) * dim;
        const std::vector<float> got = stored_row(cache, p.pool, p.table, 1, g, first + i, is_v);
        ASSERT_EQ(got, std::vector<float>(src, src + dim))
            << "head " << g << " token " << first + i << (is_v ? " V" : " K");
      }
    }
  }
  // Sequence 0 was never written: its table points at the reserved zero block (zeros, scales too).
  EXPECT_EQ(stored_row(cache, p.pool, p.table, 0, 1, 9, true), std::vector<float>(dv, 0.0f));
}

TEST_F(KvTypes, Q8GridValuesRoundTrip) { check_grid(DType::q8, 80, 80); }
// Dk 192 and Dv 128: six scales per K row (rounded up to four words), four per V row.
TEST_F(KvTypes, Q4GridValuesRoundTrip) { check_grid(DType::q4, 192, 128); }
TEST_F(KvTypes, Q4HeadDim96RoundTrip) { check_grid(DType::q4, 96, 96); }

// Off-grid values land within storage_error of the original.
TEST_F(KvTypes, QuantisedErrorWithinBound) {
  for (DType t : {DType::q8, DType::q4}) {
    SCOPED_TRACE(to_string(t));
    KvCache cache(context(), KvCacheDesc{1, 1, 64, 16, t, 16});
    const std::vector<float> k = random_values(64 * 16, 11, -3.0f, 3.0f);
    const std::vector<float> v = random_values(64 * 16, 12, -3.0f, 3.0f);
    cache.write(0, 0, 16, k, v);
    const PoolCopy p = download(cache);
    for (uint32_t i = 0; i < 16; ++i) {
      const std::vector<float> got = stored_row(cache, p.pool, p.table, 0, 0, i, false);
      double amax = 0;
      for (uint32_t d = 0; d < 64; ++d) amax = std::max(amax, double{std::fabs(k[i * 64 + d])});
      for (uint32_t d = 0; d < 64; ++d) {
        ASSERT_LE(std::fabs(got[d] - k[i * 64 + d]), storage_error(t, amax)) << i << " " << d;
      }
    }
  }
}

struct AttnCase {
  DType dtype;
  bool gpu;      // GQAVK_TIER=gpu (and the GPU layout: token groups of 1)
  bool prefill;  // PrefillPlan rather than DecodePlan
  // CPU-tier decode's other value phases: "texel" (lanes own texels, each key's p and scale
  // address broadcast) or "shared" (no subgroup operations); nullptr: the tuning's choice.
  const char* variant = nullptr;
};

std::string case_name(const testing::TestParamInfo<AttnCase>& info) {
  return std::string(info.param.prefill ? "prefill_" : "decode_") +
         (info.param.gpu ? "gpu_" : "cpu_") + to_string(info.param.dtype) +
         (info.param.variant ? std::string("_") + info.param.variant : "");
}

class KvTypesAttention : public GpuTest, public testing::WithParamInterface<AttnCase> {};

// H 4, G 2, D 64, 16-token blocks; two sequences of odd lengths. Decode splits its keys; prefill
// runs a causal prompt and a chunk over a longer cache.
TEST_P(KvTypesAttention, MatchesReference) {
  const AttnCase& c = GetParam();
  ScopedEnv tier("GQAVK_TIER", c.gpu ? "gpu" : "cpu");
  ScopedEnv group("GQAVK_KV_TOKEN_GROUP", c.gpu ? "1" : nullptr);
  const bool shared = c.variant && std::string(c.variant) == "shared";
  ScopedEnv values("GQAVK_VALUES", c.variant && !shared ? c.variant : nullptr);
  ScopedEnv reduction("GQAVK_REDUCTION", shared ? "shared" : nullptr);
  const uint32_t heads = 4, kv_heads = 2, dim = 64, cap = 77;
  const KvCacheDesc desc{2, kv_heads, dim, cap, c.dtype, 16};
  KvCache cache(context(), desc);
  const KvHost kv = random_kv(desc, 21);  // in [-1, 1): amax <= 1
  write_all(cache, kv);
  const KvHost seen = stored(kv, c.dtype);
  const double scale = 1.0 / std::sqrt(double{dim});

  std::vector<float> out;
  std::vector<double> want_stored, want_orig;
  std::vector<float> q;
  if (c.prefill) {
    const std::vector<PrefillSeq> seqs = {{0, 23, 23}, {1, 9, 77}};
    q = random_values(size_t{heads} * 32 * dim, 4);
    PrefillDesc d;
    d.q_heads = heads;
    PrefillPlan plan(context(), cache, d);
    out = plan.run(q, seqs);
    ref::Options o;
    o.scale = double{1.0f / std::sqrt(static_cast<float>(dim))};
    size_t at = 0;
    for (const PrefillSeq& s : seqs) {
      const size_t n = size_t{heads} * s.queries * dim;
      for (const KvHost* h : {&seen, &kv}) {
        const std::vector<double> r =
            ref::attention(std::span(q).subspan(at, n), h->k_of(s.seq), h->v_of(s.seq), heads,
                           kv_heads, s.queries, s.kv_length, dim, dim, cap, o);
        auto& want = h == &seen ? want_stored : want_orig;
        want.insert(want.end(), r.begin(), r.end());
      }
      at += n;
    }
  } else {
    const std::vector<uint32_t> lengths = {61, 77};
    q = random_values(size_t{2} * heads * dim, 4);
    DecodeDesc d;
    d.q_heads = heads;
    d.max_splits = 3;
    DecodePlan plan(context(), cache, d);
    out = plan.run(q, lengths);
    want_stored = ref::decode(q, seen.k, seen.v, lengths, 2, heads, kv_heads, dim, cap, scale);
    want_orig = ref::decode(q, kv.k, kv.v, lengths, 2, heads, kv_heads, dim, cap, scale);
  }
  // On what the kernel reads: f32 rounding only, as for f16 and f32.
  EXPECT_TRUE(all_close(out, want_stored, heads, dim, 1e-5));
  // On the original floats: within the bound quantisation allows (attention_bound), and not
  // trivially (the stored K/V differ from the originals).
  const double bound = attention_bound(c.dtype, q, dim, scale);
  EXPECT_LE(max_abs_diff(out, want_orig), bound);
  EXPECT_GT(max_abs_diff(out, want_orig), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Types, KvTypesAttention,
                         testing::ValuesIn(std::vector<AttnCase>{
                             {DType::bf16, false, false},
                             {DType::q8, false, false},
                             {DType::q4, false, false},
                             {DType::bf16, true, false},
                             {DType::q8, true, false},
                             {DType::q4, true, false},
                             {DType::bf16, false, true},
                             {DType::q8, false, true},
                             {DType::q4, false, true},
                             {DType::bf16, true, true},
                             {DType::q8, true, true},
                             {DType::q4, true, true},
                             {DType::q4, false, false, "texel"},
                             {DType::q8, false, false, "shared"},
                             {DType::q4, false, false, "shared"}}),
                         case_name);

}  // namespace
}  // namespace gqavk::test
