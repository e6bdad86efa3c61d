// gqavk-bench: decode attention against the streaming-read and FMA roofline of the same device.
// Each benchmark reports GPU time from timestamp queries as manual time, bytes_per_second for the
// K and V bytes read (q8 and q4: values and scales), and vs_roofline = time / max(read time, FMA
// time) for the same bytes and FLOPs (time is the mean over iterations; best_vs_roofline takes the
// best iteration instead); floor_vs_roofline is that ratio for the decode floor
// (bench/roofline.hpp), about the lowest vs_roofline the device allows. A sliding-window case (/W:)
// counts only the bytes and FLOPs of the keys inside its window, which is all the kernel reads.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "decode_plan_impl.hpp"
#include "gqavk/gqavk.hpp"
#include "kv_codec.hpp"
#include "reference.hpp"
#include "roofline.hpp"

namespace gqavk::bench {
namespace {

// Caches are rotated so that each iteration reads K/V the CPU's caches do not already hold, with
// at most kMaxPoolBytes of caches in all (a windowed case reads a small part of a large one).
constexpr uint64_t kColdBytes = 192ull << 20;
constexpr uint32_t kMaxCopies = 32;
constexpr uint64_t kMaxPoolBytes = 1ull << 30;
constexpr uint32_t kHeads = 32, kHeadDim = 128;

Context& context() {
  static Context ctx;
  return ctx;
}

Roofline& roofline() {
  static Roofline r(impl_of(context()));
  return r;
}

struct Case {
  DType dtype;
  uint32_t kv_heads, len, batch;
  uint32_t window = 0;  // sliding window; 0: none

  // Keys the query sees: the window's, or all len.
  uint32_t seen() const { return window && window < len ? window : len; }
};

std::vector<float> pseudo_random(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  uint32_t x = seed * 2654435761u + 1;
  for (float& f : v) {
    x = x * 1664525u + 1013904223u;
    f = static_cast<float>(x >> 8) * (2.0f / 16777216.0f) - 1.0f;
  }
  return v;
}

// Tokens [first, first + n) of every KV head of x ([G, len, D]), as KvCache::write takes them.
std::vector<float> token_rows(const std::vector<float>& x, const Case& c, uint32_t first,
                              uint32_t n) {
  if (first == 0 && n == c.len) return x;
  std::vector<float> out;
  out.reserve(size_t{c.kv_heads} * n * kHeadDim);
  for (uint32_t g = 0; g < c.kv_heads; ++g) {
    const auto at = x.begin() + (size_t{g} * c.len + first) * kHeadDim;
    out.insert(out.end(), at, at + size_t{n} * kHeadDim);
  }
  return out;
}

// Largest |gpu - reference| over sequence 0 (k, v: its [G, len, D] K and V, capacity len).
double check_first_sequence(const Case& c, const std::vector<float>& q, const std::vector<float>& k,
                            const std::vector<float>& v, const std::vector<float>& out) {
  const size_t n = size_t{kHeads} * kHeadDim;
  const uint32_t len[] = {c.len};
  ref::Options options;
  options.window = c.window;
  const std::vector<double> want =
      ref::decode(std::span(q).first(n), k, v, len, 1, kHeads, c.kv_heads, kHeadDim, c.len,
                  1.0 / std::sqrt(double{kHeadDim}), options);
  return ref::max_abs_diff(std::span(out).first(n), want);
}

void run_decode(benchmark::State& state, Case c) {
  Context& ctx = context();
  // The bytes and FLOPs of the keys the query sees (a window's: 2 * G * W * D * bytes each).
  const uint64_t kv_bytes = 2ull * c.batch * c.kv_heads * c.seen() * row_bytes(c.dtype, kHeadDim);
  const double flops = 4.0 * kHeads * c.seen() * kHeadDim * c.batch;
  // A window cache keeps only the blocks its window can still see: written a window at a time,
  // it holds at most two windows and a block of each sequence (plus the reserved zero block).
  const uint32_t block = KvCacheDesc{}.block_tokens;
  const uint32_t chunk = c.window ? c.seen() : c.len;
  const uint32_t pool_blocks = c.window ? c.batch * ((2 * chunk + block - 1) / block + 1) + 1 : 0;
  const uint64_t pool_tokens = c.window ? uint64_t{pool_blocks} * block : uint64_t{c.batch} * c.len;
  const uint64_t pool_bytes = 2ull * c.kv_heads * pool_tokens * row_bytes(c.dtype, kHeadDim);
  const uint32_t copies = static_cast<uint32_t>(std::clamp<uint64_t>(
      std::min((kColdBytes + kv_bytes - 1) / kv_bytes, kMaxPoolBytes / pool_bytes), 1, kMaxCopies));

  std::vector<std::unique_ptr<KvCache>> caches;
  std::vector<std::unique_ptr<DecodePlan>> plans;
  const size_t per_seq = size_t{c.kv_heads} * c.len * kHeadDim;
  std::vector<float> k = pseudo_random(per_seq, 1), v = pseudo_random(per_seq, 2);
  // The reference sees what the cache stores.
  store_and_read_rows(c.dtype, k, kHeadDim);
  store_and_read_rows(c.dtype, v, kHeadDim);
  try {
    for (uint32_t i = 0; i < copies; ++i) {
      KvCacheDesc cd{c.batch, c.kv_heads, kHeadDim, c.len, c.dtype};
      if (c.window) {
        cd.layer_windows = {c.window};
        cd.pool_blocks = pool_blocks;
      }
      caches.push_back(std::make_unique<KvCache>(ctx, cd));
      for (uint32_t b = 0; b < c.batch; ++b) {
        for (uint32_t first = 0; first < c.len; first += chunk) {
          const uint32_t n = std::min(chunk, c.len - first);
          caches.back()->write(b, first, n, token_rows(k, c, first, n), token_rows(v, c, first, n));
        }
      }
      DecodeDesc desc{kHeads};
      if (c.window) desc.window = c.window;
      plans.push_back(std::make_unique<DecodePlan>(ctx, *caches.back(), desc));
    }
  } catch (const Error& e) {
    state.SkipWithError(("exceeds the device's limits: " + std::string(e.what())).c_str());
    for (auto _ : state) {
    }
    return;
  }
  const std::vector<float> q = pseudo_random(size_t{c.batch} * kHeads * kHeadDim, 3);
  const std::vector<uint32_t> lens(c.batch, c.len);
  std::vector<float> out(q.size());

  // Warm up every plan (lavapipe compiles at first dispatch), then check the answer once.
  for (auto& p : plans) p->run(q, lens, out);
  const double err = check_first_sequence(c, q, k, v, out);
  if (!(err < 1e-3)) {
    state.SkipWithError(("wrong result: max error " + std::to_string(err)).c_str());
    for (auto _ : state) {
    }
    return;
  }

  // Roofline on the same device, around the kernel's runs: the fastest read of the same bytes and
  // the FMA rate; beside it the floor, the same bytes widened and fed to H/G multiply-adds each,
  // nothing else. Each is measured before and after the kernel and the faster kept, so a slow
  // spell of a shared machine during one of them cannot flatter the kernel.
  ReadResult read{std::numeric_limits<double>::infinity(), "none"};
  ReadResult floor = read;
  double fma_s = std::numeric_limits<double>::infinity();
  const auto measure_roofline = [&] {
    const ReadResult r = roofline().read_seconds(impl_of(*caches[0]).pool, kv_bytes);
    if (r.seconds < read.seconds) read = r;
    fma_s = std::min(fma_s, flops / roofline().fma_flops_per_second());
    const ReadResult f =
        roofline().floor_seconds(impl_of(*caches[0]).pool, kv_bytes, kHeads / c.kv_heads, c.dtype);
    if (f.seconds < floor.seconds) floor = f;
  };
  measure_roofline();

  double total_s = 0;
  double best_s = std::numeric_limits<double>::infinity();
  size_t i = 0;
  for (auto _ : state) {
    DecodePlan& p = *plans[i++ % plans.size()];
    p.run(q, lens, out);
    const double s = p.last_gpu_ns() * 1e-9;
    state.SetIterationTime(s);
    total_s += s;
    best_s = std::min(best_s, s);
  }
  measure_roofline();
  const double roof_s = std::max(read.seconds, fma_s);
  const double mean_s = total_s / static_cast<double>(state.iterations());
  state.SetBytesProcessed(static_cast<int64_t>(kv_bytes * state.iterations()));
  state.counters["vs_roofline"] = mean_s / roof_s;
  // The roofline times are each the best of a few runs: so is this, for a like-for-like ratio
  // on a machine whose neighbours come and go.
  state.counters["best_vs_roofline"] = best_s / roof_s;
  state.counters["roof_read_ms"] = read.seconds * 1e3;
  state.counters["roof_fma_ms"] = fma_s * 1e3;
  state.counters["floor_vs_roofline"] = floor.seconds / roof_s;
  state.counters["splits"] = plans[0]->splits();
  state.counters["max_err"] = err;
  // Which decode kernel tier the plan chose, then the load path of the fastest roofline read.
  state.SetLabel(std::string("tier:") + to_string(impl_of(*plans[0]).tuning.tier) +
                 " roof_read:" + read.variant);
}

// min_seconds: each benchmark's minimum running time; 0 leaves it to --benchmark_min_time.
void register_all(double min_seconds) {
  for (DType dt : {DType::f32, DType::f16, DType::bf16, DType::q8, DType::q4}) {
    for (uint32_t g : {32u, 8u, 1u}) {
      for (uint32_t len : {512u, 4096u, 16384u}) {
        for (uint32_t b : {1u, 8u}) {
          const std::string name = std::string("decode_") + to_string(dt) +
                                   "/H:32/G:" + std::to_string(g) +
                                   "/D:128/L:" + std::to_string(len) + "/B:" + std::to_string(b);
          auto* bm = benchmark::RegisterBenchmark(name.c_str(), run_decode, Case{dt, g, len, b})
                         ->UseManualTime()
                         ->Unit(benchmark::kMillisecond);
          if (min_seconds > 0) bm->MinTime(min_seconds);
        }
      }
    }
  }
  // A sliding window (Mistral, Gemma 2) over a long cache costs about what its window's length
  // costs: compare with decode_f16/H:32/G:8/D:128/L:4096/B:1.
  auto* bm = benchmark::RegisterBenchmark("decode_f16/H:32/G:8/D:128/L:32768/B:1/W:4096",
                                          run_decode, Case{DType::f16, 8, 32768, 1, 4096})
                 ->UseManualTime()
                 ->Unit(benchmark::kMillisecond);
  if (min_seconds > 0) bm->MinTime(min_seconds);
}

// The device's facts in the report's context (JSON "context"; the console prints it on stderr).
void add_device_context(const DeviceInfo& d) {
  using benchmark::AddCustomContext;
  using std::to_string;
  AddCustomContext("device", d.name);
  AddCustomContext("device_type", gqavk::to_string(d.type));
  AddCustomContext("device_vendor", gqavk::to_string(d.vendor));
  AddCustomContext("device_vendor_id", to_string(d.vendor_id));
  AddCustomContext("device_id", to_string(d.device_id));
  AddCustomContext("device_api_version", version_string(d.api_version));
  AddCustomContext("device_driver", d.driver_name + " " + d.driver_info);
  AddCustomContext("device_subgroup_size", to_string(d.subgroup_size));
  AddCustomContext("device_subgroup_lanes", to_string(d.subgroup_lanes));
  AddCustomContext("device_compute_units", to_string(d.compute_units));
}

}  // namespace
}  // namespace gqavk::bench

int main(int argc, char** argv) {
  // A per-benchmark MinTime would override --benchmark_min_time: set it only when none is given.
  bool min_time_given = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]).starts_with("--benchmark_min_time")) min_time_given = true;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  // Standard output holds only the report in the chosen format (--benchmark_format=json gives
  // valid JSON): the device goes into the report's context, diagnostics to stderr.
  try {
    gqavk::bench::add_device_context(gqavk::bench::context().device());
  } catch (const gqavk::Error& e) {
    std::fprintf(stderr, "gqavk-bench: %s\n", e.what());
    return 1;
  }
  gqavk::bench::register_all(min_time_given ? 0.0 : 0.3);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
