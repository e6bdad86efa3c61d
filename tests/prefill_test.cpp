// Prefill against the float64 CPU reference (ref::attention): causal squares, chunks over a long
// cache, cross attention, ragged batches mixing prefill and single-query entries, windows at
// their edges, softcap, sinks, Dk != Dv, MQA, every head dim, f16 and f32, and every error the
// plan reports.
//
// ctest runs every test here at lavapipe's default vector width, and the tests with "EveryWidth"
// in their name again under LP_NATIVE_VECTOR_WIDTH=128, 512, 1024 and 2048 (see
// tests/CMakeLists.txt). Each pipeline variant costs seconds of LLVM compile at first use, so the
// shapes repeat: most tests use H 8, G 2, D 64 (f16 or f32).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "prefill_pipelines.hpp"  // the tuning
#include "reference.hpp"
#include "test_support.hpp"

namespace gqavk::test {
namespace {

// K and V lie in [-1, 1], so an output is a convex combination of such values and an absolute
// bound is relative to the value range. Scores, softmax state and accumulators are f32 (f16 K/V
// are rounded before the reference sees them), so only f32 rounding against float64 remains.
constexpr double kAtol = 1e-5;

std::vector<float> random_q(uint64_t n, uint32_t seed) {
  return random_values(n, seed, -2.0f, 2.0f);  // logits of order 1: many keys weigh in
}

uint64_t total_queries(std::span<const PrefillSeq> seqs) {
  uint64_t n = 0;
  for (const PrefillSeq& s : seqs) n += s.queries;
  return n;
}

// The reference for every entry, concatenated like the plan's output.
std::vector<double> reference(const KvHost& kv, const PrefillDesc& d, std::span<const float> q,
                              std::span<const PrefillSeq> seqs) {
  ref::Options o;
  o.scale = d.scale ? double{*d.scale} : double{1.0f / std::sqrt(static_cast<float>(kv.head_dim))};
  o.causal = d.causal;
  o.window = d.window.value_or(0u);
  o.softcap = d.softcap ? double{*d.softcap} : 0.0;
  o.sinks = d.sinks;
  std::vector<double> out;
  size_t at = 0;
  for (const PrefillSeq& s : seqs) {
    const size_t n = size_t{d.q_heads} * s.queries * kv.head_dim;
    const std::vector<double> r =
        ref::attention(q.subspan(at, n), kv.k_of(s.seq), kv.v_of(s.seq), d.q_heads, kv.kv_heads,
                       s.queries, s.kv_length, kv.head_dim, kv.v_head_dim, kv.capacity, o);
    out.insert(out.end(), r.begin(), r.end());
    at += n;
  }
  return out;
}

// A cache filled with random K and V, and a plan over it.
struct Fixture {
  KvCacheDesc desc;
  KvCache cache;
  KvHost kv;

  Fixture(const KvCacheDesc& d, uint32_t seed)
      : desc(d), cache(context(), d), kv(random_kv(cache.desc(), seed)) {
    write_all(cache, kv);
  }

  // Runs `d` on `seqs` with random queries and checks against the reference; returns the output.
  std::vector<float> check(const PrefillDesc& d, std::span<const PrefillSeq> seqs, uint32_t seed,
                           double atol = kAtol) {
    PrefillPlan plan(context(), cache, d);
    const std::vector<float> q = random_q(total_queries(seqs) * d.q_heads * kv.head_dim, seed);
    return check(plan, d, q, seqs, atol);
  }

  std::vector<float> check(PrefillPlan& plan, const PrefillDesc& d, std::span<const float> q,
                           std::span<const PrefillSeq> seqs, double atol = kAtol) {
    std::vector<float> out = plan.run(q, seqs);
    const std::vector<double> want = reference(kv, d, q, seqs);
    if (std::getenv("GQAVK_TEST_PRINT_ERRORS")) {
      std::printf("max |diff| %.3g\n", max_abs_diff(out, want));
    }
    EXPECT_TRUE(all_close(out, want, d.q_heads, kv.v_head_dim, atol));
    return out;
  }
};

class Prefill : public GpuTest {};
class PrefillEveryWidth : public GpuTest {};

// Rows [first, first + n) of every head of an entry's [H, Lq, D] block.
std::vector<float> query_rows(std::span<const float> block, uint32_t heads, uint32_t lq,
                              uint32_t dim, uint32_t first, uint32_t n) {
  std::vector<float> rows;
  for (uint32_t h = 0; h < heads; ++h) {
    const auto at = block.begin() + (size_t{h} * lq + first) * dim;
    rows.insert(rows.end(), at, at + size_t{n} * dim);
  }
  return rows;
}

// The shape most tests share, so that they share one compiled pipeline: H 8, G 2, D 64, f16.
constexpr uint32_t kH = 8, kG = 2, kD = 64;

KvCacheDesc small_cache(uint32_t batch, uint32_t capacity, DType dtype = DType::f16) {
  return {batch, kG, kD, capacity, dtype, 16};
}

// ---------------------------------------------------------------------------------------------
// Causal self-attention of a whole prompt, odd lengths, f16 and f32.

TEST_F(PrefillEveryWidth, CausalSquare) {
  for (DType dtype : {DType::f16, DType::f32}) {
    Fixture f(small_cache(2, 80, dtype), 1);
    const std::vector<PrefillSeq> seqs = {{0, 37, 37}, {1, 80, 80}};
    f.check({kH}, seqs, 2);
  }
}

// A chunk of 37 new queries after 500 cached tokens; and a prompt run in three chunks (each
// written to the cache, then its queries run over everything so far) equals the prompt at once.
TEST_F(PrefillEveryWidth, ChunksEqualWholePrompt) {
  Fixture f(small_cache(1, 537), 3);
  const std::vector<PrefillSeq> chunk = {{0, 37, 537}};
  f.check({kH}, chunk, 4);

  const uint32_t len = 120;
  const std::vector<PrefillSeq> whole = {{0, len, len}};
  const PrefillDesc d{kH};
  PrefillPlan plan(context(), f.cache, d);
  const std::vector<float> q = random_q(size_t{kH} * len * kD, 5);
  const std::vector<float> at_once = f.check(plan, d, q, whole);
  uint32_t done = 0;
  for (uint32_t n : {50u, 37u, 33u}) {
    const std::vector<PrefillSeq> part = {{0, n, done + n}};
    const std::vector<float> qc = query_rows(q, kH, len, kD, done, n);
    const std::vector<float> got = plan.run(qc, part);
    const std::vector<float> want = query_rows(at_once, kH, len, kD, done, n);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], want[i], 1e-6) << "chunk at " << done << ", value " << i;
    }
    done += n;
  }
}

// Cross attention: every query sees all Lk keys, with Lq below and above Lk.
TEST_F(Prefill, NonCausalCrossAttention) {
  Fixture f(small_cache(2, 70), 6);
  PrefillDesc d{kH};
  d.causal = false;
  const std::vector<PrefillSeq> seqs = {{0, 20, 70}, {1, 50, 30}, {0, 1, 1}};
  f.check(d, seqs, 7);
}

// A ragged batch of prefill entries and single-query (decode-like) entries, the same sequence
// twice, equals each entry run alone.
TEST_F(PrefillEveryWidth, RaggedBatchEqualsEachAlone) {
  Fixture f(small_cache(3, 100), 8);
  const PrefillDesc d{kH};
  const std::vector<PrefillSeq> seqs = {{2, 1, 100}, {0, 45, 60}, {1, 1, 1}, {2, 9, 9}, {0, 1, 77}};
  PrefillPlan plan(context(), f.cache, d);
  const std::vector<float> q = random_q(total_queries(seqs) * kH * kD, 9);
  const std::vector<float> together = f.check(plan, d, q, seqs);
  size_t q_at = 0, o_at = 0;
  for (const PrefillSeq& s : seqs) {
    const size_t n = size_t{kH} * s.queries * kD;
    const std::vector<float> alone = plan.run(std::span(q).subspan(q_at, n), {&s, 1});
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(alone[i], together[o_at + i]) << "entry seq " << s.seq << ", value " << i;
    }
    q_at += n;
    o_at += n;
  }
}

// Sliding windows at their edges: 1 (each query sees only itself), one not a multiple of the
// tile, exactly L and beyond L (no clipping), on a square prompt and on a chunk.
TEST_F(PrefillEveryWidth, WindowEdges) {
  Fixture f(small_cache(2, 90), 10);
  const std::vector<PrefillSeq> seqs = {{0, 90, 90}, {1, 23, 81}};
  for (uint32_t w : {1u, 13u, 90u, 1000u}) {
    PrefillDesc d{kH};
    d.window = w;
    SCOPED_TRACE("window " + std::to_string(w));
    f.check(d, seqs, 11 + w);
  }
}

// Softcap with logits far beyond it (scale 4 on q in [-2, 2]: |s| up to a few hundred).
TEST_F(Prefill, SoftcapLargeLogits) {
  Fixture f(small_cache(1, 64), 12);
  PrefillDesc d{kH};
  d.scale = 4.0f;
  d.softcap = 5.0f;
  const std::vector<PrefillSeq> seqs = {{0, 64, 64}, {0, 5, 40}};
  f.check(d, seqs, 13);
  d.softcap = 50.0f;
  d.window = 7;
  f.check(d, seqs, 14);
}

// Sinks: small logits, very large ones (the rows then all but vanish: outputs near zero), and
// sinks with a window. No row can see no key (causal queries see themselves, Lq <= Lk, W >= 1,
// and non-causal rows see all Lk >= 1 keys), so the sink-only limit is the nearest case.
TEST_F(Prefill, Sinks) {
  Fixture f(small_cache(1, 70), 15);
  const std::vector<PrefillSeq> seqs = {{0, 70, 70}, {0, 11, 30}};
  PrefillDesc d{kH};
  d.sinks = random_values(kH, 16, -3.0f, 3.0f);
  f.check(d, seqs, 17);
  d.sinks.assign(kH, 80.0f);
  const std::vector<float> out = f.check(d, seqs, 18);
  for (float x : out) ASSERT_LT(std::fabs(x), 1e-20f);
  d.sinks = random_values(kH, 19, -1.0f, 4.0f);
  d.window = 5;
  f.check(d, seqs, 20);
}

// Dk 192 with Dv 128 (MLA models in their expanded form), causal, f16.
TEST_F(Prefill, KeyDim192ValueDim128) {
  Fixture f({1, 2, 192, 40, DType::f16, 16, 128}, 21);
  const std::vector<PrefillSeq> seqs = {{0, 40, 40}, {0, 9, 25}};
  f.check({4}, seqs, 22);
}

// Multi-query attention with many heads: H 71 over one KV head (several head chunks, the last
// partly empty).
TEST_F(Prefill, MultiQuery71Heads) {
  Fixture f({1, 1, kD, 30, DType::f16, 16}, 23);
  const std::vector<PrefillSeq> seqs = {{0, 30, 30}};
  f.check({71}, seqs, 24);
}

// Every head dim the cache takes, f16 (f32 runs in CausalSquare).
// MHA (H = G = 2): one head per workgroup keeps each head dim's kernel, compiled by lavapipe at
// first use, small; the group's heads sharing a tile are covered by the other tests.
TEST_F(Prefill, EveryHeadDim) {
  for (uint32_t dim : {64u, 80u, 96u, 112u, 128u, 192u, 256u}) {
    SCOPED_TRACE("D " + std::to_string(dim));
    Fixture f({1, 2, dim, 21, DType::f16, 8}, 25 + dim);
    const std::vector<PrefillSeq> seqs = {{0, 21, 21}, {0, 4, 10}};
    f.check({2}, seqs, 26 + dim);
  }
}

// A plan runs batches of growing size (its buffers grow) and shrinking size.
TEST_F(Prefill, BuffersGrowAcrossRuns) {
  Fixture f(small_cache(2, 200), 27);
  const PrefillDesc d{kH};
  PrefillPlan plan(context(), f.cache, d);
  for (uint32_t n : {3u, 200u, 17u}) {
    const std::vector<PrefillSeq> seqs = {{1, n, n}, {0, 1, n}};
    const std::vector<float> q = random_q(total_queries(seqs) * kH * kD, 28 + n);
    f.check(plan, d, q, seqs);
  }
  EXPECT_GT(plan.last_gpu_ns(), 0.0);
}

// ---------------------------------------------------------------------------------------------
// Tuning: the tier follows the device type (GQAVK_TIER overrides), and the head chunks cover the
// group with no empty chunk.

TEST(PrefillTuning, TierFollowsDeviceAndOverride) {
  DeviceInfo cpu = context().device();
  cpu.type = DeviceType::cpu;
  DeviceInfo gpu = cpu;
  gpu.type = DeviceType::discrete;
  const PrefillShape shape{32, 8, 128, 128, DType::f16, 2048, 1u << 20, 4, 3};
  EXPECT_EQ(choose_prefill_tuning(cpu, shape).tier, Tier::cpu);
  EXPECT_EQ(choose_prefill_tuning(gpu, shape).tier, Tier::gpu);
  TuningOverrides o;
  o.tier = "cpu";
  EXPECT_EQ(choose_prefill_tuning(gpu, shape, o).tier, Tier::cpu);
  o.tier = "gpu";
  EXPECT_EQ(choose_prefill_tuning(cpu, shape, o).tier, Tier::gpu);
  o.tier = "fast";
  EXPECT_TRUE(throws_error([&] { choose_prefill_tuning(cpu, shape, o); },
                           ErrorCode::invalid_argument, {"GQAVK_TIER='fast'", "cpu or gpu"}));
}

TEST(PrefillTuning, HeadChunksCoverTheGroup) {
  const DeviceInfo& dev = context().device();
  for (uint32_t heads : {1u, 4u, 7u, 71u, 128u}) {
    for (uint32_t dim : {64u, 128u, 256u}) {
      const PrefillShape shape{heads, 1, dim, dim, DType::f16, 64, 1u << 20, 4, 3};
      const PrefillTuning t = choose_prefill_tuning(dev, shape);
      EXPECT_GE(t.heads_per_workgroup * t.head_chunks, heads) << heads << " heads, D " << dim;
      EXPECT_LT(t.heads_per_workgroup * (t.head_chunks - 1), heads) << heads << " heads, D " << dim;
      EXPECT_EQ(t.tile_queries % t.lanes, 0u);
      const PipelineDesc pd = prefill_pipeline_descs(shape, t).prefill;
      // Entry i is constant_id i: 9 and 10 belong to the GPU tier, 11 is the softcap flag.
      ASSERT_EQ(pd.spec_constants.size(), 12u);
      EXPECT_EQ(pd.spec_constants[8], t.keys_per_tile);
      EXPECT_EQ(pd.spec_constants[11], 0u);
      EXPECT_EQ(pd.bindings.size(), 7u);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Errors: each names the bad value and what was expected.

constexpr ErrorCode kInvalid = ErrorCode::invalid_argument;

TEST_F(Prefill, RejectsBadOptions) {
  KvCache cache(context(), small_cache(2, 16));
  const auto make = [&](const PrefillDesc& d) {
    return [&, d] { PrefillPlan p(context(), cache, d); };
  };
  PrefillDesc d{7};
  EXPECT_TRUE(throws_error(make(d), kInvalid, {"q_heads 7", "kv_heads 2", "H % G == 0"}));
  d.q_heads = 0;
  EXPECT_TRUE(throws_error(make(d), kInvalid, {"q_heads 0"}));
  d = {kH};
  d.scale = -1.0f;
  EXPECT_TRUE(throws_error(make(d), kInvalid, {"scale -1", "finite value > 0"}));
  d.scale = std::nanf("");
  EXPECT_TRUE(throws_error(make(d), kInvalid, {"scale nan", "finite value > 0"}));
  d = {kH};
  d.causal = false;
  d.window = 128;
  EXPECT_TRUE(throws_error(make(d), kInvalid, {"window 128 needs causal attention"}));
  d = {kH};
  d.softcap = 0.0f;
  EXPECT_TRUE(throws_error(make(d), kInvalid, {"softcap 0", "finite value > 0"}));
  d.softcap = -2.0f;
  EXPECT_TRUE(throws_error(make(d), kInvalid, {"softcap -2", "finite value > 0"}));
  d.softcap = INFINITY;
  EXPECT_TRUE(throws_error(make(d), kInvalid, {"softcap inf", "finite value > 0"}));
  d = {kH};
  d.sinks = {1.0f, 2.0f, 3.0f};
  EXPECT_TRUE(throws_error(make(d), kInvalid, {"sinks has 3 values", "one per query head (8)"}));
  d.sinks.assign(kH, 0.0f);
  d.sinks[5] = NAN;
  EXPECT_TRUE(throws_error(make(d), kInvalid, {"sinks[5] = nan", "finite"}));
  // No window: non-causal builds. A window of 0 is an error, not "none".
  d = {kH};
  d.causal = false;
  EXPECT_NO_THROW(make(d)());
  d = {kH};
  d.window = 0;
  EXPECT_TRUE(throws_error(make(d), kInvalid, {"window 0 is not valid", "at least 1 key"}));
}

// A cache whose every sequence holds its full capacity of tokens (values irrelevant).
void fill(KvCache& cache) {
  const KvCacheDesc& d = cache.desc();
  const std::vector<float> kv(size_t{d.kv_heads} * d.capacity_tokens * d.head_dim, 0.25f);
  for (uint32_t b = 0; b < d.batch; ++b) cache.write(b, 0, d.capacity_tokens, kv, kv);
}

TEST_F(Prefill, RejectsBadRuns) {
  KvCache cache(context(), small_cache(2, 16));
  fill(cache);
  PrefillPlan plan(context(), cache, {kH});
  const auto run = [&](std::vector<PrefillSeq> seqs, size_t q_size, size_t out_size) {
    return [&plan, seqs, q_size, out_size] {
      std::vector<float> q(q_size, 0.5f), out(out_size);
      plan.run(q, seqs, out);
    };
  };
  const size_t row = kH * kD;  // values of one query over all heads
  EXPECT_TRUE(throws_error(run({}, 0, 0), kInvalid, {"seqs is empty"}));
  EXPECT_TRUE(throws_error(run({{2, 1, 1}}, row, row), kInvalid, {"entry 0", "seq 2", "batch 2"}));
  EXPECT_TRUE(throws_error(run({{0, 1, 1}, {0, 0, 4}}, row, row), kInvalid,
                           {"entry 1", "queries 0", "at least 1"}));
  EXPECT_TRUE(throws_error(run({{0, 1, 0}}, row, row), kInvalid,
                           {"entry 0", "kv_length 0", "1 to the cache capacity 16"}));
  EXPECT_TRUE(throws_error(run({{0, 1, 17}}, row, row), kInvalid,
                           {"entry 0", "kv_length 17", "capacity 16"}));
  EXPECT_TRUE(throws_error(run({{0, 1, 1}, {1, 1, 1}, {1, 9, 8}}, 11 * row, 11 * row), kInvalid,
                           {"entry 2: queries 9 > kv_length 8 with causal attention"}));
  EXPECT_TRUE(throws_error(run({{0, 3, 5}}, 3 * row - 1, 3 * row), kInvalid,
                           {"q has 1535 values; expected 1536", "H * Lq * Dk"}));
  EXPECT_TRUE(throws_error(run({{0, 3, 5}}, 3 * row, 3 * row + 1), kInvalid,
                           {"out has room for 1537 values; expected 1536", "H * Lq * Dv"}));
  const auto non_finite = [&] {
    std::vector<float> q(2 * row, 0.5f), out(2 * row);
    q[70] = NAN;
    const PrefillSeq s{0, 2, 2};
    plan.run(q, {&s, 1}, out);
  };
  EXPECT_TRUE(throws_error(non_finite, kInvalid, {"q[70] = nan", "finite query values"}));
  // Keys past what a sequence holds, and a closed sequence.
  cache.truncate(1, 6);
  EXPECT_TRUE(throws_error(run({{1, 1, 7}}, row, row), kInvalid,
                           {"entry 0: kv_length = 7 exceeds the 6 tokens written to sequence 1"}));
  cache.free_sequence(1);
  EXPECT_TRUE(throws_error(run({{1, 1, 5}}, row, row), kInvalid,
                           {"entry 0: kv_length", "sequence 1 is not open"}));
}

// Cross attention takes Lq > Lk; the same entry is an error only with causal.
TEST_F(Prefill, NonCausalAcceptsMoreQueriesThanKeys) {
  KvCache cache(context(), small_cache(1, 16));
  fill(cache);
  PrefillDesc d{kH};
  d.causal = false;
  PrefillPlan plan(context(), cache, d);
  const PrefillSeq s{0, 9, 8};
  EXPECT_NO_THROW(plan.run(std::vector<float>(9 * kH * kD, 0.1f), {&s, 1}));
}

}  // namespace
}  // namespace gqavk::test
