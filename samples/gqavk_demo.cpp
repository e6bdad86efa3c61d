// gqavk-demo: the decode attention of a real model, read from its Hugging Face config.json
// (Llama-3-8B by default; samples/configs holds ten), on the default device. One paged KV cache
// serves every layer and already holds a prompt; each step, one recorded DecodeStep appends every
// sequence's new token to every layer and runs each layer's attention with that layer's options
// (windows, softcap, scale, sinks), replayed without re-recording, the next step submitted while
// the last one runs. Prints the device, the model, the KV cache per token against MHA, the host
// and GPU time per step, tokens per second, and the error of the last step against a float64 CPU
// reference.
#include <time.h>  // clock_gettime

#include <algorithm>
#include <bit>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "cli.hpp"
#include "gqavk/gqavk.hpp"
#include "model_configs.hpp"
#include "reference.hpp"

#ifndef GQAVK_CONFIGS_DIR
#error "GQAVK_CONFIGS_DIR must name samples/configs"
#endif

namespace {

// The check's bound on |GPU - reference|. The host copy of the checked layers holds K and V as the
// cache stores them, so the reference sees what the kernels read and what remains is f32
// arithmetic in another order (errors near 1e-7; storing bf16 K/V unrounded would show 1e-3).
// For q8 and q4 a device division a few ulps off may, rarely, land a value at a rounding tie one
// code away from the host's: one value moves by one step (1/127 or 1/7 of its row's max |x| <= 1)
// times its softmax weight, a few hundredths at most here.
double tolerance(gqavk::DType t) {
  switch (t) {
    case gqavk::DType::q8:
      return 1e-3;
    case gqavk::DType::q4:
      return 1e-2;
    default:
      return 1e-4;
  }
}

struct Options {
  std::string model = "Llama-3-8B";
  uint32_t layers = 0;  // 0: all of the model's
  uint32_t steps = 128;
  uint32_t prompt = 2048;
  uint32_t batch = 1;
  uint32_t block_tokens = 256;
  std::string device;
  std::optional<gqavk::DType> kv_dtype;  // unset: the config's torch_dtype
};

constexpr const char* kUsage =
    "usage: gqavk-demo [--model CONFIG] [--layers N] [--steps N] [--prompt N] [--batch N]\n"
    "                  [--block-tokens P] [--device D] [--kv-dtype T]\n";

constexpr const char* kDescription =
    "Decodes a model's attention with one recorded DecodeStep per token: every layer's KV append "
    "and attention, steps pipelined; checks the last step against a float64 reference.";

constexpr const char* kFooter =
    "The defaults keep Llama-3-8B under a minute on lavapipe (Mesa's CPU driver, 2 cores): about "
    "10 s of steps, plus 20 s to compile its pipelines on a first run. On a GPU, try --prompt 8192 "
    "--steps 256 --batch 8.\n"
    "Exit status: 0 when the check passes, 1 for an error or a failed check, 2 for bad options.";

// A bad option found after parsing (--layers past the model's): exit 2 with the usage.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A whole number from `min` to `max` given to option `name`.
uint32_t parse_count(const std::string& name, const std::string& text, uint32_t min, uint32_t max) {
  uint32_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < min ||
      value > max) {
    throw CLI::ValidationError(name + " '" + text + "' is not valid (expected an integer from " +
                               std::to_string(min) + " to " + std::to_string(max) + ")");
  }
  return value;
}

// An option taking a whole number from `min` to `max` into `value`.
CLI::Option* add_count(CLI::App& app, const std::string& name, uint32_t& value, uint32_t min,
                       uint32_t max, const std::string& description) {
  return app
      .add_option_function<std::string>(
          name,
          [&value, name, min, max](const std::string& text) {
            value = parse_count(name, text, min, max);
          },
          description)
      ->type_name("N");
}

void add_options(CLI::App& app, Options& o) {
  app.add_option("--model", o.model,
                 "a Hugging Face config.json, or a name in samples/configs (default Llama-3-8B; "
                 "also Llama-3-70B, Mistral-7B, Qwen2-7B, Qwen3-8B, Gemma-2-9B, Gemma-3-12B, "
                 "gpt-oss-20b, Falcon-7B, Phi-3-mini)")
      ->type_name("CONFIG");
  add_count(app, "--layers", o.layers, 1, 1024,
            "run only the model's first N layers (default: all of them)");
  add_count(app, "--steps", o.steps, 1, 1u << 20,
            "decode steps, one new token per sequence each (default 128)");
  add_count(app, "--prompt", o.prompt, 0, 1u << 20,
            "tokens already in each sequence's cache at the start (default 2048)");
  add_count(app, "--batch", o.batch, 1, 1024, "sequences decoded together (default 1)");
  app.add_option_function<std::string>(
         "--block-tokens",
         [&o](const std::string& text) {
           o.block_tokens = parse_count("--block-tokens", text, 1, 256);
           if (!std::has_single_bit(o.block_tokens)) {
             throw CLI::ValidationError("--block-tokens '" + text + "' is not a power of two");
           }
         },
         "tokens per KV cache block, a power of two up to 256 (default 256)")
      ->type_name("P");
  gqavk::tools::add_device_option(app, o.device);
  gqavk::tools::add_kv_dtype_option(
      app, o.kv_dtype, "Default: the config's torch_dtype, bf16 for those in samples/configs.");
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
  void fill(std::span<float> v, float amplitude = 1.0f) {
    for (float& x : v) x = amplitude * next();
  }

 private:
  uint64_t state_;
};

float round_bf16(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);  // finite here: |x| < 1
  return std::bit_cast<float>((bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u);
}

// Replaces a row of one token and KV head (`row.size()` values, the head dim) by what the cache
// reads back once it stores it as `t` (kv_cache.hpp, shaders/kv_block.h): f16 and bf16 rounded to
// nearest even; q8 one f32 scale max|x| / 127 per row, q4 one f16 scale max|x| / 7 per 32 values,
// codes rounded to nearest even and clamped.
void store_row(gqavk::DType t, std::span<float> row) {
  using gqavk::DType;
  const auto quantise = [](std::span<float> x, float scale, float levels) {
    if (scale == 0.0f) {
      std::fill(x.begin(), x.end(), 0.0f);
      return;
    }
    for (float& e : x) e = std::clamp(std::nearbyint(e / scale), -levels, levels) * scale;
  };
  const auto amax = [](std::span<const float> x) {
    float m = 0.0f;
    for (float e : x) m = std::max(m, std::fabs(e));
    return m;
  };
  switch (t) {
    case DType::f32:
      return;
    case DType::f16:
      for (float& e : row) e = gqavk::half_to_float(gqavk::float_to_half(e));
      return;
    case DType::bf16:
      for (float& e : row) e = round_bf16(e);
      return;
    case DType::q8:
      quantise(row, amax(row) / 127.0f, 127.0f);
      return;
    case DType::q4:
      for (size_t c = 0; c < row.size(); c += 32) {
        const std::span<float> part = row.subspan(c, 32);
        quantise(part, gqavk::half_to_float(gqavk::float_to_half(amax(part) / 7.0f)), 7.0f);
      }
      return;
  }
}

// Host copy of one layer's K and V of one sequence as stored: [G, capacity, Dk] and [G, capacity,
// Dv] (the reference's layout).
struct HostKv {
  uint32_t layer = 0;
  uint32_t kv_heads = 0, dk = 0, dv = 0, capacity = 0;
  std::vector<float> k, v;

  HostKv(uint32_t l, uint32_t g, uint32_t dk_, uint32_t dv_, uint32_t cap)
      : layer(l),
        kv_heads(g),
        dk(dk_),
        dv(dv_),
        capacity(cap),
        k(size_t{g} * cap * dk_),
        v(size_t{g} * cap * dv_) {}
  // Token `pos` of KV head g from rows of dk (K) and dv (V) values, as `t` stores them.
  void put(uint32_t g, uint32_t pos, std::span<const float> krow, std::span<const float> vrow,
           gqavk::DType t) {
    const std::span<float> kd(k.data() + (size_t{g} * capacity + pos) * dk, dk);
    const std::span<float> vd(v.data() + (size_t{g} * capacity + pos) * dv, dv);
    std::copy(krow.begin(), krow.end(), kd.begin());
    std::copy(vrow.begin(), vrow.end(), vd.begin());
    store_row(t, kd);
    store_row(t, vd);
  }
};

std::string bytes_text(double bytes) {
  char buf[64];
  if (bytes < 1024.0) {
    std::snprintf(buf, sizeof buf, "%.0f B", bytes);
  } else if (bytes < 1024.0 * 1024.0) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", bytes / 1024.0);
  } else if (bytes < 1024.0 * 1024.0 * 1024.0) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", bytes / (1024.0 * 1024.0));
  } else {
    std::snprintf(buf, sizeof buf, "%.2f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  }
  return buf;
}

std::string ms_text(double ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f ms", ms);
  return buf;
}

// "1 layer", "32 layers".
std::string count_text(uint64_t n, const char* noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

std::string number_text(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", x);
  return buf;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// CPU time of the calling thread: what the host spends, whatever else the machine runs (on a CPU
// device the "GPU" shares the cores).
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// "layers 0, 2, 4, ... 22" style list of layer numbers.
std::string layer_list(const std::vector<uint32_t>& ls) {
  std::string s;
  for (size_t i = 0; i < ls.size(); ++i) {
    if (ls.size() > 6 && i == 3) {
      s += ", ...";
      i = ls.size() - 1;
    }
    s += (i == 0 ? "" : ", ") + std::to_string(ls[i]);
  }
  return s;
}

// What the model's layers do besides plain attention, in a few lines.
void print_model(const gqavk::ModelDesc& m, uint32_t config_layers, const std::string& path) {
  const gqavk::LayerDesc& first = m.layers[0];
  uint32_t h_min = first.q_heads, h_max = first.q_heads;
  std::map<uint32_t, std::vector<uint32_t>> windows;  // W -> its layers
  std::map<float, uint32_t> softcaps, scales;
  uint32_t sink_layers = 0;
  for (uint32_t l = 0; l < m.layers.size(); ++l) {
    const gqavk::LayerDesc& L = m.layers[l];
    h_min = std::min(h_min, L.q_heads);
    h_max = std::max(h_max, L.q_heads);
    if (L.window) windows[*L.window].push_back(l);
    if (L.softcap) ++softcaps[*L.softcap];
    if (L.scale) ++scales[*L.scale];
    if (!L.sinks.empty()) ++sink_layers;
  }
  const uint32_t n = static_cast<uint32_t>(m.layers.size());
  const uint32_t dv = first.v_head_dim ? first.v_head_dim : first.head_dim;
  std::string heads =
      h_min == h_max ? std::to_string(h_min) : std::to_string(h_min) + ".." + std::to_string(h_max);
  std::printf("model:      %s (%s)\n", m.name.c_str(), path.c_str());
  std::printf(
      "            %s%s, H=%s query heads, G=%s, Dk=%u, Dv=%u\n", count_text(n, "layer").c_str(),
      n < config_layers
          ? (" (the first " + std::to_string(n) + " of " + std::to_string(config_layers) + ")")
                .c_str()
          : "",
      heads.c_str(), count_text(first.kv_heads, "KV head").c_str(), first.head_dim, dv);
  uint32_t window_layers = 0;
  std::string wtext;
  for (const auto& [w, ls] : windows) {
    window_layers += static_cast<uint32_t>(ls.size());
    wtext += std::string(wtext.empty() ? "" : "; ") + "W=" + std::to_string(w) + " in " +
             count_text(ls.size(), "layer") + " (" + layer_list(ls) + ")";
  }
  if (window_layers == 0) {
    std::printf("windows:    none (every layer attends to the whole sequence)\n");
  } else {
    std::printf("windows:    %u sliding-window layers, %u full: %s\n", window_layers,
                n - window_layers, wtext.c_str());
  }
  std::string extras;
  for (const auto& [c, count] : softcaps) {
    extras += "softcap " + number_text(c) + " in " + count_text(count, "layer") + "; ";
  }
  if (softcaps.empty()) extras += "no softcap; ";
  for (const auto& [s, count] : scales) {
    extras += "scale " + number_text(s) + " in " + count_text(count, "layer") + "; ";
  }
  if (scales.empty()) extras += "scale 1/sqrt(Dk); ";
  if (sink_layers > 0) {
    extras += "sinks in " + count_text(sink_layers, "layer") +
              " (random logits: learned weights are not in config.json)";
  } else {
    extras += "no sinks";
  }
  std::printf("options:    %s\n", extras.c_str());
}

int run_demo(const Options& opt) {
  using gqavk::DType;
  const auto t_setup = std::chrono::steady_clock::now();

  // The model first: a bad config fails before any device work.
  const std::string path = gqavk::tools::config_path(opt.model, GQAVK_CONFIGS_DIR);
  gqavk::ModelDesc model;
  try {
    model = gqavk::ModelDesc::load_hf_config(path);
  } catch (const gqavk::Error& e) {
    std::fprintf(stderr, "gqavk-demo: %s\n", e.what());
    if (path != opt.model) {
      std::fprintf(stderr, "gqavk-demo: models in %s: %s\n", GQAVK_CONFIGS_DIR,
                   gqavk::tools::config_names(GQAVK_CONFIGS_DIR).c_str());
    }
    return 1;
  }
  const uint32_t config_layers = static_cast<uint32_t>(model.layers.size());
  if (opt.layers > config_layers) {
    throw UsageError("--layers " + std::to_string(opt.layers) + " is more than " + model.name +
                     "'s " + std::to_string(config_layers) + " layers");
  }
  if (opt.layers != 0) model.layers.resize(opt.layers);
  if (opt.kv_dtype) {
    for (gqavk::LayerDesc& L : model.layers) L.kv_dtype = *opt.kv_dtype;
  }
  const uint32_t n_layers = static_cast<uint32_t>(model.layers.size());

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
  print_model(model, config_layers, path);

  // The cache: every layer in one pool, the window layers marked so their old blocks go back.
  const uint32_t capacity = opt.prompt + opt.steps;
  const gqavk::KvCacheDesc cache_desc = model.cache_desc(opt.batch, capacity, opt.block_tokens);
  const DType dt = cache_desc.dtype;
  const uint32_t G = cache_desc.kv_heads;
  const uint32_t dk = cache_desc.head_dim;
  gqavk::KvCache cache(context, cache_desc);
  const uint32_t dv = cache.desc().v_head_dim;
  {
    // Per token of context, K and V of every layer; MHA keeps one KV head per query head.
    const gqavk::KvMemory mem = cache.memory();
    gqavk::KvCacheDesc mha_desc = cache_desc;
    mha_desc.kv_heads = model.layers[0].q_heads;
    const gqavk::KvMemory mha = gqavk::KvCache::plan_memory(mha_desc);
    const double per_token = static_cast<double>(mem.token_bytes) * n_layers;
    const double mha_per_token = static_cast<double>(mha.token_bytes) * n_layers;
    std::printf("KV cache:   %s, %s per token (%s x %s); MHA (G=H=%u) would need %s (%gx)\n",
                to_string(dt), bytes_text(per_token).c_str(), count_text(n_layers, "layer").c_str(),
                bytes_text(static_cast<double>(mem.token_bytes)).c_str(), mha_desc.kv_heads,
                bytes_text(mha_per_token).c_str(), mha_per_token / per_token);
    std::printf("            pool %s for %s x %u tokens in %u-token blocks (MHA: %s)\n",
                bytes_text(static_cast<double>(mem.pool_bytes)).c_str(),
                count_text(opt.batch, "sequence").c_str(), capacity, cache.desc().block_tokens,
                bytes_text(static_cast<double>(mha.pool_bytes)).c_str());
  }
  std::printf("run:        batch %u, prompt %u tokens, %s (capacity %u tokens)\n", opt.batch,
              opt.prompt, count_text(opt.steps, "decode step").c_str(), capacity);

  // Checked layers: the first full layer and the first window layer, sequence 0 only. Their host
  // copies hold K and V as stored.
  std::vector<HostKv> host;
  {
    std::optional<uint32_t> full, window;
    for (uint32_t l = 0; l < n_layers; ++l) {
      std::optional<uint32_t>& slot = model.layers[l].window ? window : full;
      if (!slot) slot = l;
    }
    for (std::optional<uint32_t> l : {full, window}) {
      if (l) host.emplace_back(*l, G, dk, dv, capacity);
    }
    std::sort(host.begin(), host.end(),
              [](const HostKv& a, const HostKv& b) { return a.layer < b.layer; });
  }
  const auto checked = [&](uint32_t l) -> HostKv* {
    for (HostKv& h : host) {
      if (h.layer == l) return &h;
    }
    return nullptr;
  };

  // Prompt: random K and V in every layer of every sequence, written by the host.
  Random rng(2024);
  if (opt.prompt > 0) {
    std::vector<float> k(size_t{G} * opt.prompt * dk), v(size_t{G} * opt.prompt * dv);
    for (uint32_t l = 0; l < n_layers; ++l) {
      for (uint32_t b = 0; b < opt.batch; ++b) {
        rng.fill(k);
        rng.fill(v);
        cache.write(b, 0, opt.prompt, k, v, l);
        HostKv* h = b == 0 ? checked(l) : nullptr;
        if (h == nullptr) continue;
        for (uint32_t g = 0; g < G; ++g) {
          for (uint32_t t = 0; t < opt.prompt; ++t) {
            h->put(g, t, std::span(k).subspan((size_t{g} * opt.prompt + t) * dk, dk),
                   std::span(v).subspan((size_t{g} * opt.prompt + t) * dv, dv), dt);
          }
        }
      }
    }
  }

  gqavk::DecodeStepDesc step_desc;
  step_desc.max_batch = opt.batch;
  gqavk::DecodeStep step(context, cache, model, step_desc);
  // Sink logits are learned weights config.json does not carry: random ones in [-3, 3].
  std::vector<std::vector<float>> sinks(n_layers);
  for (uint32_t l = 0; l < n_layers; ++l) {
    if (model.layers[l].sinks.empty()) continue;
    sinks[l].resize(model.layers[l].q_heads);
    rng.fill(sinks[l], 3.0f);
    step.set_sinks(l, sinks[l]);
  }

  // Per step, host memory as an engine's projections leave it, layer by layer: q [B, H_l, Dk],
  // k [B, G, Dk], v [B, G, Dv]; out [B, H_l, Dv]. Queries of amplitude 4 make the softmax less
  // flat than uniform keys would otherwise give.
  std::vector<uint32_t> seqs(opt.batch);
  for (uint32_t b = 0; b < opt.batch; ++b) seqs[b] = b;
  std::vector<float> q(step.q_values(opt.batch)), k(step.k_values(opt.batch));
  std::vector<float> v(step.v_values(opt.batch)), out(step.out_values(opt.batch));
  std::vector<size_t> q_at(n_layers), out_at(n_layers);  // layer l's block
  for (uint32_t l = 1; l < n_layers; ++l) {
    q_at[l] = q_at[l - 1] + size_t{opt.batch} * model.layers[l - 1].q_heads * dk;
    out_at[l] = out_at[l - 1] + size_t{opt.batch} * model.layers[l - 1].q_heads * dv;
  }
  const auto draw = [&](uint32_t pos) {
    rng.fill(q, 4.0f);
    rng.fill(k);
    rng.fill(v);
    for (HostKv& h : host) {
      const size_t k_at = size_t{h.layer} * opt.batch * G * dk;  // row 0 = sequence 0
      const size_t v_at = size_t{h.layer} * opt.batch * G * dv;
      for (uint32_t g = 0; g < G; ++g) {
        h.put(g, pos, std::span(k).subspan(k_at + size_t{g} * dk, dk),
              std::span(v).subspan(v_at + size_t{g} * dv, dv), dt);
      }
    }
  };

  // Warm-up: one step, then taken back. Pipelines are built (lavapipe compiles them now) and the
  // step recorded, out of the timings.
  draw(opt.prompt);
  step.wait(step.submit(seqs, q, k, v), out);
  for (uint32_t b = 0; b < opt.batch; ++b) cache.truncate(b, opt.prompt);
  std::printf("setup:      %.2f s (config, context, cache, prompt upload, step, first step)\n",
              seconds_since(t_setup));

  // Pipelined: step t + 1 is drawn and submitted before step t's output is waited for, so the
  // host's work overlaps the GPU's.
  double host_s = 0, gpu_ns = 0;
  uint64_t pending = 0;
  const auto t_decode = std::chrono::steady_clock::now();
  for (uint32_t t = 0; t < opt.steps; ++t) {
    draw(opt.prompt + t);
    const double c0 = thread_cpu_seconds();
    const uint64_t ticket = step.submit(seqs, q, k, v);
    host_s += thread_cpu_seconds() - c0;
    if (pending != 0) {
      step.wait(pending, out);
      gpu_ns += step.last_gpu_ns();
    }
    pending = ticket;
  }
  step.wait(pending, out);  // the last step: q, k and v still hold its inputs
  gpu_ns += step.last_gpu_ns();
  const double decode_s = seconds_since(t_decode);

  const double wall_ms = decode_s / opt.steps * 1e3;
  std::printf("decode:     %s in %.2f s (context %u -> %u tokens), %s each\n",
              count_text(opt.steps, "step").c_str(), decode_s, opt.prompt + 1, capacity,
              count_text(n_layers, "layer").c_str());
  std::printf(
      "per step:   host %.3f ms (CPU time in submit()), GPU %s, wall %.2f ms\n",
      host_s / opt.steps * 1e3,
      gpu_ns > 0 ? ms_text(gpu_ns / opt.steps * 1e-6).c_str() : "not available (no timestamps)",
      wall_ms);
  std::printf("throughput: %.1f tokens/s (batch %u / wall time per step)\n",
              opt.batch / (decode_s / opt.steps), opt.batch);
  std::printf("recordings: %llu (expected 1: recorded once, replayed every step)\n",
              static_cast<unsigned long long>(step.recordings()));
  const gqavk::KvMemory used = cache.memory();
  uint64_t released = 0;  // blocks the window layers gave back: whole blocks of tokens
  for (uint32_t b = 0; b < opt.batch; ++b) {
    for (uint32_t l = 0; l < n_layers; ++l) released += cache.released_tokens(b, l);
  }
  released /= cache.desc().block_tokens;
  std::printf("pool use:   %s of %s (%u of %u blocks) at the end%s\n",
              bytes_text(static_cast<double>(used.bytes_in_use)).c_str(),
              bytes_text(static_cast<double>(used.pool_bytes)).c_str(), used.blocks_in_use,
              used.pool_blocks,
              released > 0
                  ? ("; the window layers gave " + count_text(released, "block") + " back").c_str()
                  : "");

  // The last step's output for sequence 0 in the checked layers against the float64 reference.
  double max_err = 0;
  const uint32_t length = capacity;  // sequence 0's tokens after the last step
  std::string layers_text;
  for (const HostKv& h : host) {
    const gqavk::LayerDesc& L = model.layers[h.layer];
    gqavk::ref::Options o;
    o.scale = L.scale.value_or(0.0f);
    o.window = L.window.value_or(0u);
    o.softcap = L.softcap.value_or(0.0f);
    o.sinks = sinks[h.layer];
    const std::span<const float> q0(q.data() + q_at[h.layer], size_t{L.q_heads} * dk);
    const std::vector<double> want = gqavk::ref::attention(q0, h.k.data(), h.v.data(), L.q_heads, G,
                                                           1, length, dk, dv, capacity, o);
    const std::span<const float> got(out.data() + out_at[h.layer], want.size());
    max_err = std::max(max_err, gqavk::ref::max_abs_diff(got, want));
    layers_text += (layers_text.empty() ? "" : ", ") + std::to_string(h.layer) +
                   (L.window ? " (window " + std::to_string(*L.window) + ")" : " (full)");
  }
  const double tol = tolerance(dt);
  const bool ok = max_err <= tol;  // NaN fails (max_abs_diff makes it infinite)
  std::printf(
      "check:      max abs error %.3g vs float64 CPU reference (sequence 0, %s %s, last step, "
      "%u tokens), tolerance %.0e: %s\n",
      max_err, host.size() == 1 ? "layer" : "layers", layers_text.c_str(), length, tol,
      ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  gqavk::tools::Cli cli("gqavk-demo", kUsage, kDescription, kFooter);
  add_options(cli.app, options);
  if (const int status = cli.parse(argc, argv); status >= 0) return status;
  if (uint64_t{options.prompt} + options.steps > (1u << 20)) {
    return cli.usage_error("--prompt plus --steps is past 1048576 tokens");
  }
  try {
    return run_demo(options);
  } catch (const UsageError& e) {
    return cli.usage_error(e.what());
  } catch (const gqavk::Error& e) {
    std::fprintf(stderr, "gqavk-demo: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gqavk-demo: %s\n", e.what());
    return 1;
  }
}
