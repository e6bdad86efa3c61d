// gqavk-demo: the decode attention of a synthetic 32-layer GQA model (Llama-3-8B's shape: H=32,
// G=8, D=128) on the default device. One paged KV cache serves every layer; a prompt is already in
// it, and every step the device appends one token per sequence and layer, and each layer's
// DecodePlan runs over the grown context. Prints the
// device, the KV-cache size against MHA, tokens per second, and the error of one step against a
// float64 CPU reference.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gqavk/gqavk.hpp"
#include "reference.hpp"

namespace {

constexpr uint32_t kQHeads = 32;    // H
constexpr uint32_t kKvHeads = 8;    // G
constexpr uint32_t kHeadDim = 128;  // D
constexpr double kTolerance = 2e-3;

struct Options {
  uint32_t layers = 32;
  uint32_t steps = 256;
  uint32_t prompt = 512;
  uint32_t batch = 1;
  std::string device;
  gqavk::DType kv_dtype = gqavk::DType::f16;
};

void print_usage(std::FILE* to) {
  std::fprintf(to,
               "usage: gqavk-demo [--layers N] [--steps N] [--prompt N] [--batch N] [--device D]\n"
               "                  [--kv-dtype f32|f16]\n"
               "Decodes a synthetic GQA model (H=%u, G=%u, D=%u) with growing context.\n"
               "  --layers N      attention layers per token (default 32)\n"
               "  --steps N       decode steps, one new token per sequence each (default 256)\n"
               "  --prompt N      tokens already in each layer's cache at the start (default 512)\n"
               "  --batch N       sequences decoded together (default 1)\n"
               "  --device D      device index or name substring (default: GQAVK_DEVICE, else "
               "the best device)\n"
               "  --kv-dtype T    storage type of K and V: f16 (default) or f32\n",
               kQHeads, kKvHeads, kHeadDim);
}

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "gqavk-demo: %s\n", message.c_str());
  print_usage(stderr);
  std::exit(2);
}

uint32_t parse_count(std::string_view flag, std::string_view text, uint32_t min, uint32_t max) {
  uint32_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < min || value > max) {
    usage_error(std::string(flag) + " '" + std::string(text) + "' is not valid (expected an " +
                "integer from " + std::to_string(min) + " to " + std::to_string(max) + ")");
  }
  return value;
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      print_usage(stdout);
      std::exit(0);
    }
    if (i + 1 >= argc) usage_error("unknown option or missing value: '" + std::string(arg) + "'");
    const std::string_view value = argv[++i];
    if (arg == "--layers") {
      o.layers = parse_count(arg, value, 1, 1024);
    } else if (arg == "--steps") {
      o.steps = parse_count(arg, value, 1, 1u << 20);
    } else if (arg == "--prompt") {
      o.prompt = parse_count(arg, value, 0, 1u << 20);
    } else if (arg == "--batch") {
      o.batch = parse_count(arg, value, 1, 1024);
    } else if (arg == "--device") {
      o.device = value;
    } else if (arg == "--kv-dtype") {
      if (value == "f16") {
        o.kv_dtype = gqavk::DType::f16;
      } else if (value == "f32") {
        o.kv_dtype = gqavk::DType::f32;
      } else {
        usage_error("--kv-dtype '" + std::string(value) + "' is not valid (expected f32 or f16)");
      }
    } else {
      usage_error("unknown option '" + std::string(arg) + "'");
    }
  }
  return o;
}

// Cheap deterministic uniform numbers in [-1, 1) (splitmix64); the demo draws millions of them.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  float next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return static_cast<float>(z >> 40) * (2.0f / 16777216.0f) - 1.0f;
  }
  void fill(std::vector<float>& v, float amplitude = 1.0f) {
    for (float& x : v) x = amplitude * next();
  }

 private:
  uint64_t state_;
};

// The value the cache holds for x: K and V are rounded to the storage type.
float stored(float x, gqavk::DType dtype) {
  return dtype == gqavk::DType::f16 ? gqavk::half_to_float(gqavk::float_to_half(x)) : x;
}

// Host copy of one layer's K and V as stored, [B, G, capacity, D] (the reference's layout).
struct HostKv {
  uint32_t capacity = 0;
  std::vector<float> k, v;
  size_t at(uint32_t b, uint32_t g, uint32_t t) const {
    return ((size_t{b} * kKvHeads + g) * capacity + t) * kHeadDim;
  }
  // Copies tokens [first, first + n) of sequence b from k, v laid out [G, n, D].
  void put(uint32_t b, uint32_t first, uint32_t n, std::span<const float> kin,
           std::span<const float> vin, gqavk::DType dtype) {
    for (uint32_t g = 0; g < kKvHeads; ++g) {
      for (uint32_t t = 0; t < n; ++t) {
        const size_t src = (size_t{g} * n + t) * kHeadDim;
        const size_t dst = at(b, g, first + t);
        for (uint32_t d = 0; d < kHeadDim; ++d) {
          k[dst + d] = stored(kin[src + d], dtype);
          v[dst + d] = stored(vin[src + d], dtype);
        }
      }
    }
  }
};

// Max |gpu - reference| over every sequence's output, all sequences `length` tokens long.
double max_error_vs_reference(const HostKv& kv, uint32_t batch, uint32_t length,
                              const std::vector<float>& q, const std::vector<float>& gpu) {
  const std::vector<uint32_t> lengths(batch, length);
  const double scale = 1.0 / std::sqrt(static_cast<double>(kHeadDim));
  const std::vector<double> want = gqavk::ref::decode(q, kv.k, kv.v, lengths, batch, kQHeads,
                                                      kKvHeads, kHeadDim, kv.capacity, scale);
  return gqavk::ref::max_abs_diff(gpu, want);
}

std::string bytes_text(uint64_t bytes) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run_demo(const Options& opt) {
  using gqavk::DType;
  const auto t_setup = std::chrono::steady_clock::now();
  gqavk::ContextOptions context_options;
  context_options.device = opt.device;
  gqavk::Context context(context_options);
  const gqavk::DeviceInfo& dev = context.device();
  std::printf("device:     %s (type %s, vendor %s), Vulkan %s\n", dev.name.c_str(),
              to_string(dev.type), to_string(dev.vendor),
              gqavk::version_string(dev.api_version).c_str());
  std::printf("driver:     %s %s\n", dev.driver_name.c_str(), dev.driver_info.c_str());
  std::printf("subgroups:  size %u, %u lanes %s%s\n", dev.subgroup_size, dev.subgroup_lanes,
              dev.can_run ? "measured" : "reported (not measured: the device cannot run work)",
              dev.bug_partial_subgroups ? " (driver runs partial subgroups)" : "");

  const uint32_t capacity = opt.prompt + opt.steps;
  std::printf("model:      %u layers, H=%u query heads, G=%u KV heads, D=%u, %s KV cache\n",
              opt.layers, kQHeads, kKvHeads, kHeadDim, to_string(opt.kv_dtype));
  std::printf("run:        batch %u, prompt %u tokens, %u decode steps (capacity %u tokens)\n",
              opt.batch, opt.prompt, opt.steps, capacity);

  gqavk::KvCacheDesc kv_desc;
  kv_desc.batch = opt.batch;
  kv_desc.kv_heads = kKvHeads;
  kv_desc.head_dim = kHeadDim;
  kv_desc.capacity_tokens = capacity;
  kv_desc.dtype = opt.kv_dtype;
  kv_desc.layers = opt.layers;  // one paged pool for every layer
  gqavk::KvCache cache(context, kv_desc);
  std::vector<gqavk::DecodePlan> plans;
  plans.reserve(opt.layers);
  gqavk::DecodeDesc plan_desc;
  plan_desc.q_heads = kQHeads;
  for (uint32_t l = 0; l < opt.layers; ++l) {
    plan_desc.layer = l;
    plans.emplace_back(context, cache, plan_desc);
  }
  const uint64_t gqa_bytes = cache.bytes();
  // The pool is linear in the KV head count, so MHA (G = H) needs H / G times as much.
  const uint64_t mha_bytes = gqa_bytes * (kQHeads / kKvHeads);
  std::printf("KV cache:   %s for %u layers x %u tokens; MHA (G=H=%u) would need %s (%ux)\n",
              bytes_text(gqa_bytes).c_str(), opt.layers, capacity, kQHeads,
              bytes_text(mha_bytes).c_str(), kQHeads / kKvHeads);
  std::printf("plan:       %u KV split(s) per (sequence, KV head)\n", plans[0].splits());

  // Layer 0 keeps a host copy of what it stores, for the reference check.
  const DType dt = opt.kv_dtype;
  HostKv host;
  host.capacity = capacity;
  host.k.assign(size_t{opt.batch} * kKvHeads * capacity * kHeadDim, 0.0f);
  host.v.assign(host.k.size(), 0.0f);

  // Prompt: random K and V for every layer and sequence.
  Random rng(2024);
  if (opt.prompt > 0) {
    std::vector<float> k(size_t{kKvHeads} * opt.prompt * kHeadDim), v(k.size());
    for (uint32_t l = 0; l < opt.layers; ++l) {
      for (uint32_t b = 0; b < opt.batch; ++b) {
        rng.fill(k);
        rng.fill(v);
        cache.write(b, 0, opt.prompt, k, v, l);
        if (l == 0) host.put(b, 0, opt.prompt, k, v, dt);
      }
    }
  }
  std::printf("setup:      %.2f s (context, one cache, %u plans, prompt upload)\n",
              seconds_since(t_setup), opt.layers);

  // Decode. Each step, per layer: the device appends one token to every sequence from device
  // buffers ([B, G, D], as a model's K/V projection leaves them), then attention runs over it all.
  // Query amplitude 4 makes the softmax less flat than uniform keys would otherwise give.
  const size_t row = size_t{kKvHeads} * kHeadDim;
  std::vector<float> k(row * opt.batch), v(k.size());
  gqavk::DeviceBuffer k_dev(context, k.size() * 4), v_dev(context, v.size() * 4);
  std::vector<gqavk::KvToken> new_tokens(opt.batch);
  std::vector<float> q(size_t{opt.batch} * kQHeads * kHeadDim), out(q.size());
  std::vector<uint32_t> lengths(opt.batch);
  const uint32_t check_step = opt.steps - 1;  // the longest context
  double max_err = -1;
  double gpu_ns = 0;
  double check_s = 0;
  if (opt.prompt > 0) {
    // Warm-up: some drivers (lavapipe) compile a pipeline at its first dispatch; keep that out of
    // the timings. The layers share one pipeline, so one run over the prompt is enough.
    std::fill(lengths.begin(), lengths.end(), opt.prompt);
    plans[0].run(q, lengths, out);
  }
  {
    // The same for the append kernel: one token appended and taken back.
    for (uint32_t b = 0; b < opt.batch; ++b) new_tokens[b] = {b, opt.prompt};
    k_dev.upload(std::as_bytes(std::span(k)));  // zeros
    v_dev.upload(std::as_bytes(std::span(v)));
    cache.append(0, new_tokens, k_dev, v_dev);
    for (uint32_t b = 0; b < opt.batch; ++b) cache.truncate(b, opt.prompt);
  }
  const auto t_decode = std::chrono::steady_clock::now();
  for (uint32_t step = 0; step < opt.steps; ++step) {
    const uint32_t pos = opt.prompt + step;
    std::fill(lengths.begin(), lengths.end(), pos + 1);
    for (uint32_t l = 0; l < opt.layers; ++l) {
      rng.fill(k);
      rng.fill(v);
      k_dev.upload(std::as_bytes(std::span(k)));
      v_dev.upload(std::as_bytes(std::span(v)));
      for (uint32_t b = 0; b < opt.batch; ++b) new_tokens[b] = {b, pos};
      cache.append(l, new_tokens, k_dev, v_dev);
      if (l == 0) {
        for (uint32_t b = 0; b < opt.batch; ++b) {
          host.put(b, pos, 1, std::span(k).subspan(b * row, row),
                   std::span(v).subspan(b * row, row), dt);
        }
      }
      rng.fill(q, 4.0f);
      plans[l].run(q, lengths, out);
      gpu_ns += plans[l].last_gpu_ns();
      if (l == 0 && step == check_step) {
        const auto t_check = std::chrono::steady_clock::now();
        max_err = max_error_vs_reference(host, opt.batch, pos + 1, q, out);
        check_s = seconds_since(t_check);
      }
    }
  }
  // The reference check runs inside the loop; its time is not decode time.
  const double decode_s = seconds_since(t_decode) - check_s;
  const double tokens = static_cast<double>(opt.steps) * opt.batch;
  std::printf("decode:     %u steps x %u layers in %.2f s (context %u -> %u tokens)\n", opt.steps,
              opt.layers, decode_s, opt.prompt + 1, capacity);
  std::printf(
      "throughput: %.1f tokens/s (wall clock, all %u layers' KV append and attention per "
      "token, batch %u)\n",
      tokens / decode_s, opt.layers, opt.batch);
  if (gpu_ns > 0) {
    std::printf(
        "GPU time:   %.3f ms attention per token step (all %u layers, timestamp queries), "
        "%.1f us per layer\n",
        gpu_ns / opt.steps * 1e-6, opt.layers, gpu_ns / opt.steps / opt.layers * 1e-3);
  } else {
    std::printf("GPU time:   not available (the compute queue has no timestamps)\n");
  }
  const bool ok = max_err >= 0 && max_err <= kTolerance;
  std::printf(
      "check:      max abs error %.3g vs float64 CPU reference (layer 0, step %u, %u "
      "tokens), tolerance %.0e: %s\n",
      max_err, check_step, capacity, kTolerance, ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse_options(argc, argv);
  try {
    return run_demo(options);
  } catch (const gqavk::Error& e) {
    std::fprintf(stderr, "gqavk-demo: %s\n", e.what());
    return 1;
  }
}
