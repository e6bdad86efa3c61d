// gqavk-bench's DecodeStep cases.
//
// step_host/layers:32/B:8: the host's CPU time of one step replaying its recording (block
// bookkeeping, the parameter write and the submit: the calling thread's CPU time, so the wait for
// the GPU and other threads' work are not counted), one step at a time, with the
// engine's inputs already in device buffers (set_device_io). step_host_rerecord/layers:32/B:8 is
// the same work re-recorded before every submit. Counter host_us; the time is the host's.
// prepare_us and submit_us split a second step of each iteration into gqavk's own work and the
// submit (on lavapipe, its vkQueueSubmit alone takes most of the replayed step's time).
//
// model_step/<config>/B:<1|8>/L:<4096|32768>: the GPU time (timestamps) of one step of a model of
// samples/configs: append, decode and merge of every layer, each of B sequences holding L tokens
// (one more after the append). gpt-oss-20b-full is gpt-oss-20b with every layer full. Counters:
// gpu_us, kv_bytes (read: every layer's window of keys), bytes_per_second, vs_roofline (over the
// larger of the device's streaming read of as many bytes and its FMA time for the FLOPs, measured
// in the same run). The pool is filled with a
// constant pattern rather than written token by token (the time does not depend on the values). A
// case whose pool would exceed GQAVK_BENCH_POOL_GIB (default: half the device's largest heap, 4
// on a CPU device) is skipped with the reason.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "decode_step_impl.hpp"
#include "gqavk/gqavk.hpp"
#include "kv_cache_impl.hpp"
#include "roofline.hpp"

namespace gqavk::bench {
namespace {

Context& step_context() {
  static Context ctx;
  return ctx;
}

// Gives each of `seqs` `tokens` tokens in every layer without writing them, then fills the whole
// pool with a pattern every storage type reads as finite values.
void fill_cache(KvCache& cache, uint32_t seqs, uint32_t tokens) {
  ImplOf<KvCache>& c = impl_of(cache);
  std::vector<KvPages::WriteRun> runs;
  for (uint32_t s = 0; s < seqs; ++s) runs.push_back({s, 0, tokens});
  std::vector<KvPages::Copy> copies;
  c.pages.prepare_writes_layers(0, c.desc.layers, runs, copies);
  c.ctx->submit([&](VkCommandBuffer cmd) {
    vkCmdFillBuffer(cmd, c.pool.handle(), 0, VK_WHOLE_SIZE, 0x3a003a00u);  // f16 0.75, bf16 ~5e-4
  });
}

// A step over `seqs` rows with its inputs in device buffers of random values.
struct DeviceInputs {
  std::unique_ptr<DeviceBuffer> q, k, v, out;
  DeviceInputs(Context& ctx, DecodeStep& step) {
    const uint32_t b = step.max_batch();
    const auto make = [&](uint64_t values) {
      auto buf = std::make_unique<DeviceBuffer>(ctx, values * 4);
      std::vector<float> x(values);
      for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 61) * 0.01f - 0.3f;
      buf->upload(std::as_bytes(std::span(x)));
      return buf;
    };
    q = make(step.q_values(b));
    k = make(step.k_values(b));
    v = make(step.v_values(b));
    out = std::make_unique<DeviceBuffer>(ctx, step.out_values(b) * 4);
    step.set_device_io({{q.get()}, {k.get()}, {v.get()}, {out.get()}});
  }
};

ModelDesc load_config(const std::string& name) {
  return ModelDesc::load_hf_config(std::string(GQAVK_CONFIGS_DIR) + "/" + name + ".json");
}

// CPU time of the calling thread: what the host spends, whatever else the machine runs (on a CPU
// device the "GPU" shares the cores).
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

void run_step_host(benchmark::State& state, bool rerecord) {
  Context& ctx = step_context();
  ModelDesc model = load_config("Llama-3-8B");
  for (LayerDesc& l : model.layers) l.kv_dtype = DType::f16;
  constexpr uint32_t kBatch = 8, kPrompt = 64, kCap = 1024;
  KvCache cache(ctx, model.cache_desc(kBatch, kCap, 16));
  fill_cache(cache, kBatch, kPrompt);
  DecodeStepDesc sd;
  sd.max_batch = kBatch;
  DecodeStep step(ctx, cache, model, sd);
  DeviceInputs io(ctx, step);
  ImplOf<DecodeStep>& p = impl_of(step);
  p.force_rerecord = rerecord;
  std::vector<uint32_t> seqs(kBatch);
  for (uint32_t s = 0; s < kBatch; ++s) seqs[s] = s;
  step.wait(step.submit(seqs));  // pipelines compiled, first recording made
  // One step at a time: each submit's host work starts after the previous step finished, so on a
  // CPU device no "GPU" thread competes with it for the cores while it is timed. Each iteration
  // runs two steps: the first timed whole (host_us), the second in its two parts, prepare (checks,
  // booking and parameter write: prepare_us) and submit (the driver's vkQueueSubmit, after
  // re-recording in the rerecord case: submit_us). The parts hold one more clock read than the
  // whole, so they add up to a little more than host_us.
  double total_s = 0, prepare_s = 0, submit_s = 0;
  const auto room = [&] {
    if (cache.length(0) + 1 >= kCap) {
      for (uint32_t s : seqs) cache.truncate(s, kPrompt);
    }
  };
  for (auto _ : state) {
    room();
    const double t0 = thread_cpu_seconds();
    const uint64_t ticket = step.submit(seqs);
    const double s = thread_cpu_seconds() - t0;
    step.wait(ticket);
    state.SetIterationTime(s);
    total_s += s;

    room();
    const double t1 = thread_cpu_seconds();
    const uint64_t split = p.prepare(seqs, {}, {}, {});
    const double t2 = thread_cpu_seconds();
    p.submit(p.frame_index(split), {});
    const double t3 = thread_cpu_seconds();
    step.wait(split);
    prepare_s += t2 - t1;
    submit_s += t3 - t2;
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["host_us"] = total_s / n * 1e6;
  state.counters["prepare_us"] = prepare_s / n * 1e6;
  state.counters["submit_us"] = submit_s / n * 1e6;
  state.counters["recordings"] = static_cast<double>(step.recordings());
}

// The pool limit in bytes (see the file comment).
uint64_t pool_limit(const Context& ctx) {
  if (const char* env = std::getenv("GQAVK_BENCH_POOL_GIB")) {
    return static_cast<uint64_t>(std::atof(env) * double(1ull << 30));
  }
  const DeviceInfo& d = ctx.device();
  const uint64_t limit = d.type == DeviceType::cpu ? 4ull << 30 : d.device_local_bytes() / 2;
  // The pool is one allocation: past the device's largest one it cannot be made at all.
  return d.max_memory_allocation_size ? std::min(limit, d.max_memory_allocation_size) : limit;
}

void model_step(benchmark::State& state, const std::string& config, bool all_full, uint32_t batch,
                uint32_t len);

// A case the device cannot hold is skipped with the library's reason, never a crash.
void run_model_step(benchmark::State& state, std::string config, bool all_full, uint32_t batch,
                    uint32_t len) {
  try {
    model_step(state, config, all_full, batch, len);
  } catch (const Error& e) {
    state.SkipWithError(e.what());
  }
}

void model_step(benchmark::State& state, const std::string& config, bool all_full, uint32_t batch,
                uint32_t len) {
  Context& ctx = step_context();
  ModelDesc model = load_config(config);
  if (all_full) {
    for (LayerDesc& l : model.layers) l.window.reset();
  }
  const KvCacheDesc cd = model.cache_desc(batch, len + 16, 256);
  const KvMemory planned = KvCache::plan_memory(cd);
  if (planned.pool_bytes > pool_limit(ctx)) {
    state.SkipWithError(("the pool needs " + std::to_string(planned.pool_bytes >> 20) +
                         " MiB, past the bench's limit of " +
                         std::to_string(pool_limit(ctx) >> 20) + " MiB (GQAVK_BENCH_POOL_GIB)")
                            .c_str());
    return;
  }
  KvCache cache(ctx, cd);
  fill_cache(cache, batch, len);
  DecodeStepDesc sd;
  sd.max_batch = batch;
  DecodeStep step(ctx, cache, model, sd);
  DeviceInputs io(ctx, step);
  std::vector<uint32_t> seqs(batch);
  for (uint32_t s = 0; s < batch; ++s) seqs[s] = s;
  step.wait(step.submit(seqs));  // pipelines compiled
  for (uint32_t s : seqs) cache.truncate(s, len);

  uint64_t kv_bytes = 0;
  double flops = 0;  // q.k and p.v: 2 H (Dk + Dv) per key and sequence
  for (const LayerDesc& l : model.layers) {
    const uint64_t keys = l.window ? std::min<uint64_t>(*l.window, len + 1) : len + 1;
    kv_bytes += keys * batch * planned.token_bytes;
    flops += 2.0 * l.q_heads * (cd.head_dim + cd.v_head_dim) * static_cast<double>(keys * batch);
  }
  double total_s = 0;
  for (auto _ : state) {
    step.wait(step.submit(seqs));
    const double s = step.last_gpu_ns() * 1e-9;
    state.SetIterationTime(s);
    total_s += s;
    for (uint32_t s2 : seqs) cache.truncate(s2, len);
  }
  const double mean_s = total_s / static_cast<double>(state.iterations());
  Roofline roofline(impl_of(ctx));
  // As decode's: the larger of the streaming read of the bytes and the FMA time of the FLOPs.
  const double roof_s = std::max(roofline.read_seconds(impl_of(cache).pool, kv_bytes).seconds,
                                 flops / roofline.fma_flops_per_second());
  state.counters["gpu_us"] = mean_s * 1e6;
  state.counters["layers"] = static_cast<double>(model.layers.size());
  state.counters["kv_bytes"] = static_cast<double>(kv_bytes);
  state.counters["bytes_per_second"] = static_cast<double>(kv_bytes) / mean_s;
  state.counters["vs_roofline"] = mean_s / roof_s;
}

// Registered before main(): decode_bench.cpp's main runs every registered benchmark.
const bool registered = [] {
  // A fixed count: each iteration also waits for its step's GPU work, which the time leaves out.
  benchmark::RegisterBenchmark("step_host/layers:32/B:8", run_step_host, false)
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond)
      ->Iterations(1000);
  benchmark::RegisterBenchmark("step_host_rerecord/layers:32/B:8", run_step_host, true)
      ->UseManualTime()
      ->Unit(benchmark::kMicrosecond)
      ->Iterations(1000);
  std::vector<std::string> configs;
  for (const auto& e : std::filesystem::directory_iterator(GQAVK_CONFIGS_DIR)) {
    if (e.path().extension() == ".json") configs.push_back(e.path().stem().string());
  }
  std::sort(configs.begin(), configs.end());
  const auto add = [](const std::string& name, const std::string& config, bool full, uint32_t b,
                      uint32_t l) {
    benchmark::RegisterBenchmark(name.c_str(), run_model_step, config, full, b, l)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond)
        ->Iterations(l > 4096 ? 3 : 10);
  };
  for (const std::string& c : configs) {
    for (uint32_t b : {1u, 8u}) {
      for (uint32_t l : {4096u, 32768u}) {
        add("model_step/" + c + "/B:" + std::to_string(b) + "/L:" + std::to_string(l), c, false, b,
            l);
      }
    }
  }
  add("model_step/gpt-oss-20b-full/B:1/L:32768", "gpt-oss-20b", true, 1, 32768);
  return true;
}();

}  // namespace
}  // namespace gqavk::bench
