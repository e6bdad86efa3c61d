// Decode with the model options (DESIGN.md, Semantics) against the float64 reference: sliding
// windows at their edges (W = 1, W >= L, W not a multiple of the tile or split, splits that get no
// key), softcap over logits near 1e3, attention sinks small and dominant (with and without
// split-K, where merge_splits.comp adds them once per row), sinks with windows of a few keys,
// Dk = 192 with Dv = 128, MQA with 71 query heads; both tiers (the GPU tier forced with
// GQAVK_TIER=gpu), f16 and f32, and at every subgroup width for the tests named EveryWidth (see
// tests/CMakeLists.txt). Shapes reuse decode_test.cpp's pipeline variants where they can: options
// are push constants, so they add no variant of their own.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "decode_plan_impl.hpp"  // the tuning a plan chose
#include "reference.hpp"
#include "test_support.hpp"
#include "tuning.hpp"

namespace gqavk::test {
namespace {

// As in decode_test.cpp: K and V in [-1, 1], f32 softmax state and accumulators.
constexpr double kAtol = 1e-5;

struct Options {
  uint32_t window = 0;
  std::optional<float> softcap;
  std::vector<float> sinks;
};

std::string describe(const Options& o) {
  std::string s = "window " + std::to_string(o.window);
  if (o.softcap) s += ", softcap " + std::to_string(*o.softcap);
  if (!o.sinks.empty()) s += ", sinks";
  return s;
}

DecodeDesc decode_desc(uint32_t q_heads, uint32_t splits, const Options& o,
                       std::optional<float> scale = std::nullopt) {
  DecodeDesc d;
  d.q_heads = q_heads;
  d.scale = scale;
  d.max_splits = splits;
  if (o.window) d.window = o.window;
  d.softcap = o.softcap;
  d.sinks = o.sinks;
  return d;
}

std::vector<double> reference(const KvHost& kv, uint32_t q_heads, std::span<const float> q,
                              std::span<const uint32_t> lengths, double scale, const Options& o) {
  ref::Options ro;
  ro.window = o.window;
  ro.softcap = o.softcap.value_or(0.0f);
  ro.sinks = o.sinks;
  return ref::decode(q, kv.k, kv.v, lengths, kv.batch, q_heads, kv.kv_heads, kv.head_dim,
                     kv.capacity, scale, ro, kv.v_head_dim);
}

double default_scale(uint32_t head_dim) {
  return double{1.0f / std::sqrt(static_cast<float>(head_dim))};
}

// Runs `plan` (made with options `o`) and checks it against the reference; returns the output.
std::vector<float> run_and_check(DecodePlan& plan, const KvHost& kv, uint32_t q_heads,
                                 std::span<const float> q, std::span<const uint32_t> lengths,
                                 const Options& o, double scale, double atol = kAtol) {
  std::vector<float> out = plan.run(q, lengths);
  const std::vector<double> want = reference(kv, q_heads, q, lengths, scale, o);
  if (std::getenv("GQAVK_TEST_PRINT_ERRORS")) {
    std::printf("max |diff| %.3g (%s, splits %u)\n", max_abs_diff(out, want), describe(o).c_str(),
                plan.splits());
  }
  EXPECT_TRUE(all_close(out, want, q_heads, kv.v_head_dim, atol))
      << describe(o) << ", splits " << plan.splits() << ", H " << q_heads << ", G " << kv.kv_heads
      << ", Dk " << kv.head_dim << ", Dv " << kv.v_head_dim;
  return out;
}

std::vector<float> random_q(uint32_t batch, uint32_t q_heads, uint32_t head_dim, uint32_t seed) {
  return random_values(size_t{batch} * q_heads * head_dim, seed, -2.0f, 2.0f);
}

// A plan made with the environment overrides `env` in force (nullptr unsets one).
DecodePlan plan_with(Context& ctx, const KvCache& cache, const DecodeDesc& desc,
                     std::initializer_list<std::pair<const char*, const char*>> env) {
  std::vector<std::unique_ptr<ScopedEnv>> scoped;
  for (auto [name, value] : env) scoped.push_back(std::make_unique<ScopedEnv>(name, value));
  return DecodePlan(ctx, cache, desc);
}

// Sinks of every kind for H heads: random small logits, and heads whose sink dominates their row
// (+60: output about e^-60 of a key's), is negligible (-60), or equals a typical logit (0).
std::vector<float> mixed_sinks(uint32_t q_heads, uint32_t seed) {
  std::vector<float> s = random_values(q_heads, seed, -2.0f, 2.0f);
  const float special[] = {60.0f, -60.0f, 0.0f};
  for (uint32_t h = 0; h < q_heads; h += 2) s[h] = special[(h / 2) % 3];
  return s;
}

// A cache of `desc` with random K and V (all `capacity` tokens written unless told otherwise) and
// the host copy the reference reads.
struct Filled {
  KvCache cache;
  KvHost kv;
};

Filled filled(const KvCacheDesc& desc, uint32_t seed, bool write = true) {
  Filled f{KvCache(context(), desc), random_kv(desc, seed)};
  if (write) write_all(f.cache, f.kv);
  return f;
}

// For each split bound in `splits`: a plan with options `o` (and `env` overrides), checked against
// the reference. Returns the outputs in that order.
std::vector<std::vector<float>> check_splits(
    const Filled& f, uint32_t q_heads, std::span<const float> q, std::span<const uint32_t> lengths,
    const Options& o, std::initializer_list<uint32_t> splits,
    std::optional<float> scale = std::nullopt,
    std::initializer_list<std::pair<const char*, const char*>> env = {}) {
  std::vector<std::vector<float>> outs;
  const double s = scale ? double{*scale} : default_scale(f.kv.head_dim);
  for (uint32_t n : splits) {
    SCOPED_TRACE(describe(o) + ", max_splits " + std::to_string(n));
    DecodePlan plan = plan_with(context(), f.cache, decode_desc(q_heads, n, o, scale), env);
    if (n != 0) {
      EXPECT_EQ(plan.splits(), n);
    }
    outs.push_back(run_and_check(plan, f.kv, q_heads, q, lengths, o, s));
  }
  return outs;
}

// ---------------------------------------------------------------------------------------------
// The CPU tier (the one this device gets) at lavapipe's default width. Most tests share one shape
// (H 8, G 2, D 128, f16: Llama-3's group of 4) and so its two pipeline variants.

class DecodeOptions : public GpuTest {};

const KvCacheDesc kGqaDesc{4, 2, 128, 300, DType::f16, 16};
const std::vector<uint32_t> kGqaLengths = {300, 1, 37, 130};

// Windows of 1 key, of fewer keys than a tile or a split, not a multiple of either, equal to and
// longer than the sequence; split-K with more splits than the window has keys (splits with none).
TEST_F(DecodeOptions, WindowEdges) {
  const Filled f = filled(kGqaDesc, 200);
  const std::vector<float> q = random_q(4, 8, 128, 201);
  for (uint32_t window : {1u, 5u, 77u, 129u, 300u, 5000u}) {
    check_splits(f, 8, q, kGqaLengths, {window, std::nullopt, {}}, {1u, 7u});
  }
}

// Keys before the window are never read: only the window's tokens are written, so a kernel that
// read the rest would see other values than the reference. The split count comes from the window.
TEST_F(DecodeOptions, WindowReadsOnlyItsKeys) {
  const uint32_t window = 150;
  Filled f = filled({2, 2, 128, 2000, DType::f16, 16}, 210, false);
  const std::vector<uint32_t> lengths = {2000, 1011};
  // Keys before the window hold NaN: one read of them would poison the output.
  KvHost poison = f.kv;
  std::fill(poison.k.begin(), poison.k.end(), std::numeric_limits<float>::quiet_NaN());
  std::fill(poison.v.begin(), poison.v.end(), std::numeric_limits<float>::quiet_NaN());
  for (uint32_t b = 0; b < 2; ++b) {
    write_tokens(f.cache, poison, b, 0, lengths[b] - window);
    write_tokens(f.cache, f.kv, b, lengths[b] - window, window);
  }
  const Options o{window, std::nullopt, {}};
  check_splits(f, 8, random_q(2, 8, 128, 211), lengths, o, {0u, 1u, 4u, 64u});
  // Automatic splits: as many as on a cache that holds only the window, fewer than without one.
  KvCache short_cache(context(), {2, 2, 128, window, DType::f16, 16});
  const uint32_t windowed = DecodePlan(context(), f.cache, decode_desc(8, 0, o)).splits();
  EXPECT_EQ(windowed, DecodePlan(context(), short_cache, decode_desc(8, 0, {})).splits());
  EXPECT_GE(DecodePlan(context(), f.cache, decode_desc(8, 0, {})).splits(), windowed);
}

// Softcap over logits near +-1e3, exact in f32 (integer q and k, scale 1/8): capped to +-c.
TEST_F(DecodeOptions, SoftcapLargeLogits) {
  constexpr uint32_t kH = 4, kG = 2, kD = 64;
  Filled f = filled({3, kG, kD, 700, DType::f16, 16}, 220, false);
  f.kv.k = random_integers(f.kv.k.size(), 221, -30, 30);
  write_all(f.cache, f.kv);
  const std::vector<float> q = random_integers(size_t{3} * kH * kD, 222, -30, 30);
  const std::vector<uint32_t> lengths = {700, 1, 333};
  for (float cap : {5.0f, 50.0f, 1000.0f}) {
    check_splits(f, kH, q, lengths, {0, cap, {}}, {1u, 5u}, 0.125f);
  }
}

// Sinks small and dominant, split and unsplit: the merge adds each row's sink once.
TEST_F(DecodeOptions, Sinks) {
  const Filled f = filled(kGqaDesc, 230);
  const std::vector<float> q = random_q(4, 8, 128, 231);
  const Options o{0, std::nullopt, mixed_sinks(8, 232)};
  const auto outs = check_splits(f, 8, q, kGqaLengths, o, {1u, 3u, 16u});
  for (const std::vector<float>& out : outs) {
    // Heads 0 and 6 have sink +60: their rows are about e^-60 of a value, finite and not NaN.
    for (uint32_t b = 0; b < 4; ++b) {
      for (uint32_t h : {0u, 6u}) {
        for (uint32_t d = 0; d < 128; ++d) {
          const float x = out[(size_t{b} * 8 + h) * 128 + d];
          ASSERT_TRUE(std::isfinite(x) && std::abs(x) < 1e-20f) << x;
        }
      }
    }
    const std::vector<double> base(outs[0].begin(), outs[0].end());
    EXPECT_TRUE(all_close(out, base, 8, 128, kAtol)) << "split vs unsplit";
  }
}

// Sinks with windows of a few keys and softcap: rows where the sink outweighs what little they see.
TEST_F(DecodeOptions, SinksWindowAndSoftcap) {
  const Filled f = filled(kGqaDesc, 240);
  const std::vector<float> q = random_q(4, 8, 128, 241);
  const std::vector<uint32_t> lengths = {300, 1, 2, 131};
  for (uint32_t window : {1u, 3u, 40u}) {
    const Options o{window, 2.0f, random_values(8, 242 + window, 0.0f, 4.0f)};
    check_splits(f, 8, q, lengths, o, {1u, 5u}, 0.3f);
  }
}

// Dk = 192, Dv = 128 (MLA models in expanded form): q [B, H, 192], out [B, H, 128]; f16 direct and
// f32 split, each plain and with every option.
TEST_F(DecodeOptions, KeyDim192ValueDim128) {
  for (DType dtype : {DType::f16, DType::f32}) {
    SCOPED_TRACE(to_string(dtype));
    KvCacheDesc desc{3, 2, 192, 300, dtype, 16};
    desc.v_head_dim = 128;
    const Filled f = filled(desc, 250);
    const std::vector<uint32_t> lengths = {300, 1, 77};
    const std::vector<float> q = random_q(3, 8, 192, 251);
    const uint32_t splits = dtype == DType::f16 ? 1u : 4u;
    check_splits(f, 8, q, lengths, {}, {splits});
    check_splits(f, 8, q, lengths, {50, 30.0f, mixed_sinks(8, 252)}, {splits});
  }
}

// MQA with 71 query heads (Falcon-7B): a last chunk of fewer heads, each with its own sink.
TEST_F(DecodeOptions, MultiQuery71Heads) {
  const Filled f = filled({2, 1, 64, 500, DType::f16, 16}, 260);
  const std::vector<uint32_t> lengths = {500, 33};
  check_splits(f, 71, random_q(2, 71, 64, 261), lengths, {100, 20.0f, mixed_sinks(71, 262)},
               {6u});  // split only: each unrolled variant of 15 heads compiles for a minute
}

// ---------------------------------------------------------------------------------------------
// Every subgroup width: both tiers with every option at once, split and direct. The GPU tier runs
// on a GPU's cache layout (token-major rows), as decode_test.cpp's EveryWidthGpuTier does.

struct TierCase {
  const char* name;
  const char* tier;  // GQAVK_TIER
  uint32_t q_heads, kv_heads, head_dim, v_head_dim;
  DType dtype;
};

void PrintTo(const TierCase& c, std::ostream* os) { *os << c.name; }

class EveryWidthDecodeOptions : public GpuTest, public ::testing::WithParamInterface<TierCase> {};

TEST_P(EveryWidthDecodeOptions, MatchesReference) {
  const TierCase& c = GetParam();
  KvCacheDesc desc{3, c.kv_heads, c.head_dim, 400, c.dtype, 16};
  desc.v_head_dim = c.v_head_dim;
  const bool gpu = std::string(c.tier) == "gpu";
  ScopedEnv group("GQAVK_KV_TOKEN_GROUP", gpu ? "1" : nullptr);
  const Filled f = filled(desc, 270 + c.head_dim);
  const std::vector<uint32_t> lengths = {400, 1, 97};
  const std::vector<float> q = random_q(3, c.q_heads, c.head_dim, 271);
  const Options o{61, 15.0f, mixed_sinks(c.q_heads, 272)};
  check_splits(f, c.q_heads, q, lengths, o, {1u, 7u}, std::nullopt,
               {{"GQAVK_TIER", c.tier}, {"GQAVK_REDUCTION", nullptr}});
  EXPECT_EQ(
      impl_of(plan_with(context(), f.cache, decode_desc(c.q_heads, 1, o), {{"GQAVK_TIER", c.tier}}))
          .tuning.tier,
      gpu ? Tier::gpu : Tier::cpu);
}

// The CPU tier on MQA with Dk = 96 (decode_test.cpp's EveryWidth SplitK shape); the GPU tier on
// Llama-3's group, 192/128 and Falcon's 71 heads.
INSTANTIATE_TEST_SUITE_P(
    Tier, EveryWidthDecodeOptions,
    ::testing::Values(TierCase{"cpu_H4_G1_D96_f16", "cpu", 4, 1, 96, 96, DType::f16},
                      TierCase{"gpu_H8_G2_D128_f16", "gpu", 8, 2, 128, 128, DType::f16},
                      TierCase{"gpu_H8_G2_D192_Dv128_f16", "gpu", 8, 2, 192, 128, DType::f16},
                      TierCase{"gpu_H71_G1_D64_f32", "gpu", 71, 1, 64, 64, DType::f32}),
    [](const auto& p) { return std::string(p.param.name); });

}  // namespace
}  // namespace gqavk::test
