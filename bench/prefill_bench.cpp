// gqavk-bench: prefill attention (PrefillPlan) against the FMA roofline of the same device.
// Prefill is bound by arithmetic: gflops counts the useful FLOPs (4 * H * D per visible
// query-key pair: causal L queries over L keys see L * (L + 1) / 2 pairs) over the GPU time from
// timestamps, and vs_peak divides that rate by the FMA roofline measured in the same run.
// Registered at start-up beside decode_bench.cpp's cases; its own Context (the device is the same).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "gqavk/gqavk.hpp"
#include "prefill_plan_impl.hpp"
#include "reference.hpp"
#include "roofline.hpp"

namespace gqavk::bench {
namespace {

constexpr uint32_t kHeads = 32, kKvHeads = 8, kHeadDim = 128;
// Rows checked against the float64 reference: the first and the last queries of every head (the
// last see every key); the full check would take the reference minutes at L = 2048.
constexpr uint32_t kCheckedQueries = 8;

Context& prefill_context() {
  static Context ctx;
  return ctx;
}

std::vector<float> uniform_values(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Largest |gpu - reference| over the first and last kCheckedQueries queries of every head. With
// causal bottom-right alignment the last n queries over L keys are the same rows as in the whole
// prompt, and the first n over their first n keys likewise.
double check_rows(uint32_t len, const std::vector<float>& q, const std::vector<float>& k,
                  const std::vector<float>& v, const std::vector<float>& out) {
  const uint32_t n = std::min(kCheckedQueries, len);
  double worst = 0;
  for (const bool last : {false, true}) {
    const uint32_t first = last ? len - n : 0;
    const uint32_t lk = last ? len : n;
    std::vector<float> q_rows, o_rows;
    for (uint32_t h = 0; h < kHeads; ++h) {
      const size_t at = (size_t{h} * len + first) * kHeadDim;
      q_rows.insert(q_rows.end(), q.begin() + at, q.begin() + at + size_t{n} * kHeadDim);
      o_rows.insert(o_rows.end(), out.begin() + at, out.begin() + at + size_t{n} * kHeadDim);
    }
    const std::vector<double> want = ref::attention(q_rows, k.data(), v.data(), kHeads, kKvHeads, n,
                                                    lk, kHeadDim, kHeadDim, len, {});
    worst = std::max(worst, ref::max_abs_diff(o_rows, want));
  }
  return worst;
}

void run_prefill(benchmark::State& state, DType dtype, uint32_t len) {
  Context& ctx = prefill_context();
  const double pairs = 0.5 * len * (len + 1.0);
  const double flops = 4.0 * kHeads * kHeadDim * pairs;
  const size_t per_seq = size_t{kKvHeads} * len * kHeadDim;
  std::vector<float> k = uniform_values(per_seq, 1), v = uniform_values(per_seq, 2);
  if (dtype == DType::f16) {
    for (float& x : k) x = half_to_float(float_to_half(x));
    for (float& x : v) x = half_to_float(float_to_half(x));
  }
  KvCache cache(ctx, KvCacheDesc{1, kKvHeads, kHeadDim, len, dtype});
  cache.write(0, 0, len, k, v);
  PrefillPlan plan(ctx, cache, PrefillDesc{kHeads});
  const std::vector<float> q = uniform_values(size_t{kHeads} * len * kHeadDim, 3);
  const PrefillSeq seqs[] = {{0, len, len}};
  std::vector<float> out(q.size());

  plan.run(q, seqs, out);  // lavapipe compiles at first dispatch
  const double err = check_rows(len, q, k, v, out);
  if (!(err < 1e-3)) {
    state.SkipWithError(("wrong result: max error " + std::to_string(err)).c_str());
    for (auto _ : state) {
    }
    return;
  }
  // The FMA roofline before and after the kernel's runs, the faster kept (a shared machine).
  Roofline roofline(impl_of(ctx));
  double peak = roofline.fma_flops_per_second();
  double total_s = 0;
  double best_s = std::numeric_limits<double>::infinity();
  for (auto _ : state) {
    plan.run(q, seqs, out);
    const double s = plan.last_gpu_ns() * 1e-9;
    state.SetIterationTime(s);
    total_s += s;
    best_s = std::min(best_s, s);
  }
  peak = std::max(peak, roofline.fma_flops_per_second());
  const double mean_s = total_s / static_cast<double>(state.iterations());
  state.counters["gflops"] = flops / mean_s * 1e-9;
  state.counters["vs_peak"] = flops / mean_s / peak;
  state.counters["best_vs_peak"] = flops / best_s / peak;
  state.counters["peak_gflops"] = peak * 1e-9;
  state.counters["max_err"] = err;
  const PrefillTuning& t = impl_of(plan).tuning;
  state.SetLabel(
      std::string("tier:") + to_string(t.tier) + " tile:" + std::to_string(t.tile_queries) + "x" +
      std::to_string(t.heads_per_workgroup) + " keys:" + std::to_string(t.keys_per_tile));
}

// Registered before main(): decode_bench.cpp's main runs every registered benchmark.
const bool registered = [] {
  for (DType dt : {DType::f32, DType::f16}) {
    for (uint32_t len : {512u, 2048u}) {
      const std::string name = std::string("prefill_") + to_string(dt) +
                               "/H:32/G:8/D:128/L:" + std::to_string(len) + "/B:1";
      benchmark::RegisterBenchmark(name.c_str(), run_prefill, dt, len)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  return true;
}();

}  // namespace
}  // namespace gqavk::bench
