// The prefill kernel's GPU tier (shaders/prefill_gpu.comp), forced on lavapipe with GQAVK_TIER=gpu,
// against the float64 reference: causal prompts, chunks over a longer cache, cross attention,
// ragged batches, windows, softcap, sinks, Dk=192/Dv=128, MQA with 71 heads, f16 and f32, on the
// cache layout GPUs get (GQAVK_KV_TOKEN_GROUP=1) and once on lavapipe's own, and the shared-memory
// (no subgroup operations) variant.
//
// ctest runs the tests named EveryWidth again under LP_NATIVE_VECTOR_WIDTH=128, 512, 1024 and
// 2048 (subgroups of 4, 16, 32 and 64, the last two running 16 lanes): the tuning then joins
// 1, 2 or 4 subgroups per workgroup and spreads a row over 4 to 16 lanes. Each case is its own
// pipeline (seconds of LLVM compile on first use), so cases share shapes where they can.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "prefill_plan_impl.hpp"  // the tier and variant a plan chose
#include "reference.hpp"
#include "test_support.hpp"

namespace gqavk::test {
namespace {

// As in prefill_test.cpp: K and V in [-1, 1] and f32 softmax state, so f32 rounding against
// float64 is all that remains.
constexpr double kAtol = 1e-5;

struct Case {
  std::string name;
  uint32_t q_heads = 8, kv_heads = 2, dk = 64, dv = 64;
  DType dtype = DType::f16;
  uint32_t capacity = 0;  // 0: the longest entry's kv_length
  std::vector<PrefillSeq> seqs;
  bool causal = true;
  uint32_t window = 0;
  std::optional<float> softcap;
  bool sinks = false;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// Runs `c` with the GPU tier (and `reduction` when given) on a cache of the layout GPUs get
// (token-major rows, GQAVK_KV_TOKEN_GROUP=1) or of `token_group`, and checks every entry's output.
void run_case(const Case& c, const char* reduction = nullptr, const char* token_group = "1") {
  ScopedEnv tier("GQAVK_TIER", "gpu");
  ScopedEnv red("GQAVK_REDUCTION", reduction);
  ScopedEnv group("GQAVK_KV_TOKEN_GROUP", token_group);
  uint32_t batch = 0, cap = c.capacity;
  for (const PrefillSeq& s : c.seqs) {
    batch = std::max(batch, s.seq + 1);
    cap = std::max(cap, s.kv_length);
  }
  const KvCacheDesc desc{batch, c.kv_heads, c.dk, cap, c.dtype, 16, c.dv};
  KvCache cache(context(), desc);
  const KvHost kv = random_kv(desc, 7);
  write_all(cache, kv);

  PrefillDesc d;
  d.q_heads = c.q_heads;
  d.causal = c.causal;
  if (c.window) d.window = c.window;
  d.softcap = c.softcap;
  if (c.sinks) {
    for (uint32_t h = 0; h < c.q_heads; ++h)
      d.sinks.push_back(-1.0f + 0.5f * static_cast<float>(h % 5));
  }
  PrefillPlan plan(context(), cache, d);
  const PrefillTuning& t = impl_of(plan).tuning;
  ASSERT_EQ(t.tier, Tier::gpu);
  if (reduction) {
    EXPECT_EQ(t.reduction, Reduction::shared);
  }

  size_t queries = 0;
  for (const PrefillSeq& s : c.seqs) queries += s.queries;
  const std::vector<float> q = random_values(queries * c.q_heads * c.dk, 3, -2.0f, 2.0f);
  const std::vector<float> out = plan.run(q, c.seqs);

  ref::Options o;
  o.scale = double{1.0f / std::sqrt(static_cast<float>(c.dk))};
  o.causal = c.causal;
  o.window = c.window;
  o.softcap = c.softcap.value_or(0.0f);
  o.sinks = d.sinks;
  std::vector<double> want;
  size_t at = 0;
  for (const PrefillSeq& s : c.seqs) {
    const size_t n = size_t{c.q_heads} * s.queries * c.dk;
    const std::vector<double> r =
        ref::attention(std::span(q).subspan(at, n), kv.k_of(s.seq), kv.v_of(s.seq), c.q_heads,
                       c.kv_heads, s.queries, s.kv_length, c.dk, c.dv, cap, o);
    want.insert(want.end(), r.begin(), r.end());
    at += n;
  }
  if (std::getenv("GQAVK_TEST_PRINT_ERRORS")) {
    std::printf("%s: max |diff| %.3g (lanes %u, subgroup %u, T %u, tile %u x %u heads, %u keys)\n",
                c.name.c_str(), max_abs_diff(out, want), t.lanes, t.subgroup_lanes, t.lanes_per_row,
                t.tile_queries, t.heads_per_workgroup, t.keys_per_tile);
  }
  EXPECT_TRUE(all_close(out, want, c.q_heads, c.dv, kAtol))
      << c.name << ": lanes " << t.lanes << ", subgroup " << t.subgroup_lanes << ", T "
      << t.lanes_per_row << ", tile " << t.tile_queries << " queries x " << t.heads_per_workgroup
      << " heads, " << t.keys_per_tile << " keys";
}

Case make(std::string name, std::vector<PrefillSeq> seqs) {
  Case c;
  c.name = std::move(name);
  c.seqs = std::move(seqs);
  return c;
}

std::vector<Case> cases() {
  std::vector<Case> out;
  // Causal prompts of odd lengths (tiles cut by the end and by the diagonal), f16.
  out.push_back(make("causal_f16", {{0, 37, 37}, {1, 80, 80}}));
  // Chunked prefill: the last queries of a longer cache, a single-query entry, f32.
  Case chunk = make("chunk_ragged_f32", {{0, 21, 150}, {1, 1, 77}, {2, 64, 64}});
  chunk.dtype = DType::f32;
  out.push_back(chunk);
  // Cross attention: more queries than keys, every query sees every key.
  Case cross = make("noncausal_f16", {{0, 40, 9}, {1, 3, 70}});
  cross.causal = false;
  out.push_back(cross);
  // Window (tiles wholly before it are skipped) with softcap, Gemma-2-like 128 dims.
  Case win = make("window_softcap_f32", {{0, 50, 120}, {1, 90, 90}});
  win.dk = win.dv = 128;
  win.dtype = DType::f32;
  win.window = 17;
  win.softcap = 4.0f;
  out.push_back(win);
  // Sinks, including a window so narrow some rows see few keys.
  Case sink = make("sinks_window_f16", {{0, 33, 60}});
  sink.sinks = true;
  sink.window = 3;
  out.push_back(sink);
  // Dk=192 / Dv=128.
  Case mla = make("mla_192_128_f16", {{0, 19, 45}});
  mla.q_heads = 4;
  mla.kv_heads = 4;
  mla.dk = 192;
  mla.dv = 128;
  out.push_back(mla);
  // MQA with 71 query heads (Falcon-7B): head chunks with a partial last one.
  Case falcon = make("falcon_h71_g1_f16", {{0, 13, 29}});
  falcon.q_heads = 71;
  falcon.kv_heads = 1;
  out.push_back(falcon);
  return out;
}

class PrefillGpuEveryWidth : public GpuTest, public ::testing::WithParamInterface<Case> {};

TEST_P(PrefillGpuEveryWidth, MatchesReference) { run_case(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Cases, PrefillGpuEveryWidth, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& p) { return p.param.name; });

class PrefillGpu : public GpuTest {};

// Without subgroup operations: the butterflies go through shared memory.
TEST_F(PrefillGpu, SharedMemoryReduction) {
  Case c = make("shared_reduction", {{0, 37, 37}, {1, 5, 50}});
  c.softcap = 6.0f;
  c.sinks = true;
  run_case(c, "shared");
}

// On the cache layout CPU drivers get (groups of 8 tokens, texel-column-major), f16 and f32.
TEST_F(PrefillGpu, TokenGroupsOfEight) {
  Case c = make("token_groups_of_8", {{0, 37, 37}, {1, 5, 50}});
  run_case(c, nullptr, "8");
  c.dtype = DType::f32;
  run_case(c, nullptr, "8");
}

// The tuning's tiles fit the device's shared memory and its rows fit whole subgroups.
TEST_F(PrefillGpu, TuningFitsTheDevice) {
  ScopedEnv tier("GQAVK_TIER", "gpu");
  for (const auto& [dk, dv, dtype] :
       {std::tuple{64u, 64u, DType::f16}, std::tuple{256u, 256u, DType::f32},
        std::tuple{192u, 128u, DType::f32}}) {
    const PrefillShape shape{32, 8, dk, dv, dtype, 256, 1 << 20, 4, 3};
    const PrefillTuning t = choose_prefill_tuning(context().device(), shape, overrides_from_env());
    EXPECT_EQ(t.tier, Tier::gpu);
    EXPECT_LE(prefill_shared_bytes(shape, t), context().device().max_shared_memory_bytes);
    EXPECT_EQ(t.keys_per_tile % 4, 0u);
    EXPECT_EQ(t.lanes % t.subgroup_lanes, 0u);
    EXPECT_LE(t.lanes_per_row, t.subgroup_lanes);
  }
}

}  // namespace
}  // namespace gqavk::test
