// gqavk-bench's append cases: KvCache::append writing new tokens' K and V (f32 sources, in device
// buffers) into a cache of each storage type (q8 and q4 quantised on the way); tokens:1 is one
// decode step of one sequence, tokens:512 a prefill chunk. GPU time from timestamp queries;
// bytes_per_second counts the bytes read and written, and vs_roofline divides the time by the
// device's streaming read of as many bytes (bench/roofline.hpp), measured in the same run.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "gqavk/gqavk.hpp"
#include "kv_cache_impl.hpp"
#include "roofline.hpp"

namespace gqavk::bench {
namespace {

constexpr uint32_t kKvHeads = 8, kHeadDim = 128, kPrompt = 1024;

Context& append_context() {
  static Context ctx;
  return ctx;
}

void run_append(benchmark::State& state, DType dtype, uint32_t tokens) {
  Context& ctx = append_context();
  KvCache cache(ctx, KvCacheDesc{1, kKvHeads, kHeadDim, kPrompt + tokens, dtype, 256});
  const std::vector<float> prompt(size_t{kKvHeads} * kPrompt * kHeadDim, 0.25f);
  cache.write(0, 0, kPrompt, prompt, prompt);
  const size_t values = size_t{tokens} * kKvHeads * kHeadDim;
  std::vector<float> src(values);
  for (size_t i = 0; i < values; ++i) src[i] = static_cast<float>(i % 97) * 0.01f - 0.5f;
  DeviceBuffer k(ctx, values * 4), v(ctx, values * 4);
  k.upload(std::as_bytes(std::span(src)));
  v.upload(std::as_bytes(std::span(src)));
  std::vector<KvToken> at(tokens);
  for (uint32_t t = 0; t < tokens; ++t) at[t] = {0, kPrompt + t};

  cache.append(0, at, k, v);  // lavapipe compiles at first dispatch
  const KvMemory m = cache.memory();
  // Read (f32 K and V) and written (stored K and V).
  const double bytes = static_cast<double>(2 * values * 4 + uint64_t{tokens} * m.token_bytes);
  double total_s = 0;
  for (auto _ : state) {
    cache.truncate(0, kPrompt);
    cache.append(0, at, k, v);
    const double s = cache.last_append_gpu_ns() * 1e-9;
    state.SetIterationTime(s);
    total_s += s;
  }
  Roofline roofline(impl_of(ctx));
  const double read_s =
      roofline.read_seconds(impl_of(cache).pool, static_cast<uint64_t>(bytes)).seconds;
  const double mean_s = total_s / static_cast<double>(state.iterations());
  state.counters["bytes_per_second"] = bytes / mean_s;
  state.counters["vs_roofline"] = mean_s / read_s;
  state.counters["gpu_us"] = mean_s * 1e6;
}

// Registered before main(): decode_bench.cpp's main runs every registered benchmark.
const bool registered = [] {
  for (DType dt : {DType::f32, DType::f16, DType::bf16, DType::q8, DType::q4}) {
    for (uint32_t tokens : {1u, 512u}) {
      const std::string name =
          std::string("append_") + to_string(dt) + "/G:8/D:128/tokens:" + std::to_string(tokens);
      benchmark::RegisterBenchmark(name.c_str(), run_append, dt, tokens)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
    }
  }
  return true;
}();

}  // namespace
}  // namespace gqavk::bench
