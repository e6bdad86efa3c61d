// gqavk-run: grouped-query attention of .npy tensors on a Vulkan device.
//
//   gqavk-run --q Q.npy --k K.npy --v V.npy --out O.npy [--causal] [--window W] [--softcap C]
//             [--sinks S.npy] [--scale S] [--kv-dtype f32|f16|bf16|q8|q4] [--device D]
//
// Q is [B, H, Lq, Dk], K is [B, G, Lk, Dk] and V [B, G, Lk, Dv] (PyTorch
// scaled_dot_product_attention layout), float32 or float16, C order; O is float32 [B, H, Lq, Dv].
// Lq == 1 runs decode (DecodePlan, split-K), Lq > 1 prefill (PrefillPlan).
// Exit status: 0 on success, 1 for bad input files or a failure of the device, 2 for bad options.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "cli.hpp"
#include "gqavk/gqavk.hpp"
#include "npy.hpp"

namespace {

constexpr int kExitFailure = 1;

constexpr const char* kUsage =
    "usage: gqavk-run --q Q.npy --k K.npy --v V.npy --out O.npy [--causal] [--window W]\n"
    "                 [--softcap C] [--sinks S.npy] [--scale S]\n"
    "                 [--kv-dtype f32|f16|bf16|q8|q4] [--device D]\n";

constexpr const char* kDescription =
    "Runs grouped-query attention on a Vulkan device and writes the output as .npy.";

constexpr const char* kFooter =
    "Lq == 1 runs one decode step per sequence (the query is the newest token, so --causal "
    "changes nothing); Lq > 1 runs prefill. Options other than --causal and --help take their "
    "value as the next argument or after '='.\n"
    "Exit status: 0 on success, 1 for bad input files or a failure of the device, 2 for bad "
    "options.";

struct Options {
  std::string q_path;
  std::string k_path;
  std::string v_path;
  std::string out_path;
  std::string sinks_path;
  std::optional<float> scale;
  std::optional<float> softcap;
  uint32_t window = 0;
  bool causal = false;
  std::optional<gqavk::DType> kv_dtype;
  std::string device;
};

// A finite float > 0 given to `option` (--scale, --softcap).
float parse_positive(const std::string& option, const std::string& text, const char* example) {
  double value = 0;
  const char* first = text.data();
  const char* last = text.data() + text.size();
  const auto [end, ec] = std::from_chars(first, last, value);
  if (text.empty() || ec == std::errc::invalid_argument || end != last) {
    throw CLI::ValidationError(option + " '" + text +
                               "' is not a number (expected a finite number > 0, e.g. " + example +
                               ")");
  }
  const auto x = static_cast<float>(value);
  // ec == result_out_of_range covers 1e999 and 1e-999; both end up non-finite or 0 as a float.
  if (ec != std::errc() || !std::isfinite(value) || !std::isfinite(x) || !(x > 0)) {
    throw CLI::ValidationError(option + " " + text +
                               " is not valid (expected a finite number > 0 that fits a float)");
  }
  return x;
}

uint32_t parse_window(const std::string& text) {
  uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value == 0 ||
      value > std::numeric_limits<uint32_t>::max()) {
    throw CLI::ValidationError("--window '" + text +
                               "' is not valid (expected a whole number of keys from 1 to "
                               "4294967295)");
  }
  return static_cast<uint32_t>(value);
}

// The command line of gqavk-run, parsing into `o`.
void add_options(CLI::App& app, Options& o) {
  app.add_option("--q", o.q_path, "queries [B, H, Lq, Dk], float32 or float16, C order")
      ->type_name("Q.npy");
  app.add_option("--k", o.k_path, "keys [B, G, Lk, Dk]; query head h reads KV head h / (H / G)")
      ->type_name("K.npy");
  app.add_option("--v", o.v_path, "values [B, G, Lk, Dv]; Dv is Dk, or 128 with Dk 192")
      ->type_name("V.npy");
  app.add_option("--out", o.out_path, "output, float32 [B, H, Lq, Dv]")->type_name("O.npy");
  app.add_flag("--causal", o.causal,
               "causal attention, bottom-right aligned: query i sits at position Lk - Lq + i and "
               "sees keys j <= its position (needs Lq <= Lk). Without it every query sees all Lk "
               "keys (cross attention)");
  app.add_option_function<std::string>(
         "--window", [&o](const std::string& v) { o.window = parse_window(v); },
         "sliding window of W >= 1 keys: the query at position p sees keys p - W < j <= p (needs "
         "--causal when Lq > 1)")
      ->type_name("W");
  app.add_option_function<std::string>(
         "--softcap",
         [&o](const std::string& v) { o.softcap = parse_positive("--softcap", v, "50"); },
         "logit softcap C > 0: s = C * tanh(s / C) after scaling")
      ->type_name("C");
  app.add_option("--sinks", o.sinks_path,
                 "attention sinks, float32 [H]: one logit per query head that joins the softmax "
                 "denominator (never scaled or capped)")
      ->type_name("S.npy");
  app.add_option_function<std::string>(
         "--scale", [&o](const std::string& v) { o.scale = parse_positive("--scale", v, "0.125"); },
         "softmax scale, a finite number > 0 (default 1/sqrt(Dk))")
      ->type_name("S");
  gqavk::tools::add_kv_dtype_option(app, o.kv_dtype,
                                    "Default f16 if K and V are float16, else f32.");
  gqavk::tools::add_device_option(app, o.device);
}

// The required options that are missing, as "--q, --out"; empty when all are given.
std::string missing_options(const CLI::App& app) {
  std::string missing;
  for (const char* name : {"--q", "--k", "--v", "--out"}) {
    if (app.count(name) == 0) missing += (missing.empty() ? "" : ", ") + std::string(name);
  }
  return missing;
}

// Formats a shape the way NumPy prints it: (1, 8, 10, 128).
std::string shape_string(const std::vector<size_t>& shape) {
  std::string out = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  if (shape.size() == 1) out += ",";
  return out + ")";
}

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error(message); }

// The attention shape, checked to be consistent across Q, K and V.
struct Shape {
  uint32_t batch = 0, q_heads = 0, kv_heads = 0, q_len = 0, kv_len = 0, head_dim = 0, v_dim = 0;
};

Shape check_shapes(const Options& o, const gqavk::npy::Array& q, const gqavk::npy::Array& k,
                   const gqavk::npy::Array& v) {
  const auto has = [](const std::string& path, const gqavk::npy::Array& a) {
    return path + " has shape " + shape_string(a.shape);
  };
  if (q.shape.size() != 4) fail(has(o.q_path, q) + " (expected rank 4: [B, H, Lq, Dk])");
  if (k.shape.size() != 4) fail(has(o.k_path, k) + " (expected rank 4: [B, G, Lk, Dk])");
  if (v.shape.size() != 4) fail(has(o.v_path, v) + " (expected rank 4: [B, G, Lk, Dv])");
  if (!std::equal(k.shape.begin(), k.shape.begin() + 3, v.shape.begin())) {
    fail(has(o.k_path, k) + " but " + o.v_path + " has " + shape_string(v.shape) +
         " (expected equal B, G and Lk; only the head dim may differ)");
  }
  const auto disagree = [&](const char* what, size_t qi, size_t ki) {
    if (q.shape[qi] != k.shape[ki]) {
      fail(has(o.q_path, q) + " but " + o.k_path + " has " + shape_string(k.shape) + " (" + what +
           " differs: " + std::to_string(q.shape[qi]) + " vs " + std::to_string(k.shape[ki]) +
           "; expected Q [B, H, Lq, Dk] and K [B, G, Lk, Dk])");
    }
  };
  disagree("batch B", 0, 0);
  disagree("head dim Dk", 3, 3);

  const auto positive = [](const std::string& what, const std::string& path, size_t value,
                           const std::string& expected) {
    if (value == 0) fail(path + " has " + what + " = 0 (expected " + expected + ")");
    if (value > std::numeric_limits<uint32_t>::max()) {
      fail(path + " has " + what + " = " + std::to_string(value) + " (too large)");
    }
    return static_cast<uint32_t>(value);
  };
  Shape s;
  s.batch = positive("batch B", o.q_path, q.shape[0], "at least 1 sequence");
  s.q_heads = positive("query heads H", o.q_path, q.shape[1], "at least 1");
  s.q_len = positive("query length Lq", o.q_path, q.shape[2], "at least 1 query per sequence");
  s.head_dim = positive("head dim Dk", o.q_path, q.shape[3], "64, 80, 96, 112, 128, 192 or 256");
  s.v_dim = positive("head dim Dv", o.v_path, v.shape[3], "64, 80, 96, 112, 128, 192 or 256");
  s.kv_heads = positive("KV heads G", o.k_path, k.shape[1], "at least 1");
  s.kv_len = positive("key length Lk", o.k_path, k.shape[2], "at least 1 key per sequence");
  if (s.q_heads % s.kv_heads != 0) {
    fail(has(o.q_path, q) + " and " + o.k_path + " has " + shape_string(k.shape) +
         ": query heads H = " + std::to_string(s.q_heads) + " is not a multiple of KV heads G = " +
         std::to_string(s.kv_heads) + " (expected H % G == 0)");
  }
  if (o.causal && s.q_len > s.kv_len) {
    fail(has(o.q_path, q) + " and " + o.k_path + " has " + shape_string(k.shape) + ": Lq = " +
         std::to_string(s.q_len) + " queries but only Lk = " + std::to_string(s.kv_len) +
         " keys (--causal needs Lq <= Lk: the queries are the last Lq of the Lk tokens)");
  }
  if (o.window && !o.causal && s.q_len > 1) {
    fail("--window " + std::to_string(o.window) + " needs --causal when Lq > 1 (" +
         has(o.q_path, q) + ")");
  }
  return s;
}

// Rejects NaN and infinity, which would otherwise turn whole output rows into NaN, and values that
// overflow f16 when the cache stores f16.
void check_values(const std::string& path, const gqavk::npy::Array& a, bool to_f16) {
  for (size_t i = 0; i < a.data.size(); ++i) {
    const float x = a.data[i];
    if (!std::isfinite(x)) {
      fail(path + " holds " + std::to_string(x) + " at flat index " + std::to_string(i) +
           " (expected finite values)");
    }
    if (to_f16 && gqavk::overflows_half(x)) {
      fail(path + " holds " + std::to_string(x) + " at flat index " + std::to_string(i) +
           ", which overflows the f16 KV cache (expected |x| < 65520; use --kv-dtype f32)");
    }
  }
}

std::string format_ms(double ns) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.3f ms", ns / 1e6);
  return text;
}

int run(const Options& o) {
  const gqavk::npy::Array q = gqavk::npy::load(o.q_path);
  const gqavk::npy::Array k = gqavk::npy::load(o.k_path);
  const gqavk::npy::Array v = gqavk::npy::load(o.v_path);
  const Shape s = check_shapes(o, q, k, v);
  std::vector<float> sinks;
  if (!o.sinks_path.empty()) {
    const gqavk::npy::Array a = gqavk::npy::load(o.sinks_path);
    if (a.dtype != gqavk::npy::Dtype::f32 || a.shape != std::vector<size_t>{s.q_heads}) {
      fail(o.sinks_path + " has shape " + shape_string(a.shape) +
           (a.dtype == gqavk::npy::Dtype::f32 ? "" : " and dtype float16") +
           " (expected float32 [H] = (" + std::to_string(s.q_heads) +
           ",): one logit per query head)");
    }
    check_values(o.sinks_path, a, false);
    sinks = a.data;
  }
  const bool kv_files_f16 = k.dtype == gqavk::npy::Dtype::f16 && v.dtype == gqavk::npy::Dtype::f16;
  const gqavk::DType kv_dtype =
      o.kv_dtype.value_or(kv_files_f16 ? gqavk::DType::f16 : gqavk::DType::f32);
  check_values(o.q_path, q, false);
  check_values(o.k_path, k, kv_dtype == gqavk::DType::f16);
  check_values(o.v_path, v, kv_dtype == gqavk::DType::f16);

  gqavk::ContextOptions context_options;
  context_options.device = o.device;
  gqavk::Context context(context_options);
  // Such a device fails at its first buffer, which would read as a fault of K and V's shape.
  if (!context.device().can_run) {
    throw gqavk::Error(gqavk::ErrorCode::unsupported,
                       "device '" + context.device().name +
                           "' cannot run work (it can only build pipelines); choose another with "
                           "--device");
  }

  // The cache's errors (an unsupported head dim, a pool too large for the device) come from the
  // shape of K and V: name those files.
  const auto kv_error = [&](const gqavk::Error& e) {
    return gqavk::Error(
        e.code(),
        o.k_path + " and " + o.v_path + " have shape " + shape_string(k.shape) + ": " + e.what(),
        e.vk_result());
  };
  std::optional<gqavk::KvCache> cache;
  try {
    gqavk::KvCacheDesc kd{s.batch, s.kv_heads, s.head_dim, s.kv_len, kv_dtype};
    kd.v_head_dim = s.v_dim;
    cache.emplace(context, kd);
    // The device stores K and V in the cache's type (KvCache::append): each sequence's
    // [G, Lk, D] slice of [B, G, Lk, D], as the [Lk, G, D] rows append takes, from f32 buffers.
    const auto rows = [&](const gqavk::npy::Array& a, uint32_t b, uint32_t dim) {
      std::vector<float> out(size_t{s.kv_len} * s.kv_heads * dim);
      for (uint32_t g = 0; g < s.kv_heads; ++g) {
        for (uint32_t t = 0; t < s.kv_len; ++t) {
          const size_t from = ((size_t{b} * s.kv_heads + g) * s.kv_len + t) * dim;
          std::copy_n(a.data.begin() + from, dim, out.begin() + (size_t{t} * s.kv_heads + g) * dim);
        }
      }
      return out;
    };
    std::vector<gqavk::KvToken> tokens(s.kv_len);
    for (uint32_t b = 0; b < s.batch; ++b) {
      const std::vector<float> kb = rows(k, b, s.head_dim), vb = rows(v, b, s.v_dim);
      gqavk::DeviceBuffer k_dev(context, kb.size() * 4), v_dev(context, vb.size() * 4);
      k_dev.upload(std::as_bytes(std::span(kb)));
      v_dev.upload(std::as_bytes(std::span(vb)));
      for (uint32_t t = 0; t < s.kv_len; ++t) tokens[t] = {b, t};
      cache->append(0, tokens, k_dev, v_dev);
    }
  } catch (const gqavk::Error& e) {
    throw kv_error(e);
  }

  // Lq == 1: a decode step (split-K); Lq > 1: prefill, one entry per sequence. Both are run twice
  // and the second timed: a first run's GPU time can include the driver compiling the kernel at
  // its first dispatch (lavapipe JIT-compiles then, seconds on a cold shader cache).
  std::vector<float> out;
  double first_gpu_ns = 0, gpu_ns = 0;
  std::string plan_info;
  if (s.q_len == 1) {
    gqavk::DecodeDesc desc;
    desc.q_heads = s.q_heads;
    desc.scale = o.scale;
    if (o.window) desc.window = o.window;
    desc.softcap = o.softcap;
    desc.sinks = sinks;
    gqavk::DecodePlan plan(context, *cache, desc);
    const std::vector<uint32_t> lengths(s.batch, s.kv_len);
    // Q [B, H, 1, Dk] in C order is the [B, H, Dk] array the plan takes, and likewise for O.
    out = plan.run(q.data, lengths);
    first_gpu_ns = plan.last_gpu_ns();
    plan.run(q.data, lengths, out);
    gpu_ns = plan.last_gpu_ns();
    plan_info = "decode splits=" + std::to_string(plan.splits());
  } else {
    gqavk::PrefillDesc desc;
    desc.q_heads = s.q_heads;
    desc.scale = o.scale;
    desc.causal = o.causal;
    if (o.window) desc.window = o.window;
    desc.softcap = o.softcap;
    desc.sinks = sinks;
    gqavk::PrefillPlan plan(context, *cache, desc);
    std::vector<gqavk::PrefillSeq> seqs;
    for (uint32_t b = 0; b < s.batch; ++b) seqs.push_back({b, s.q_len, s.kv_len});
    // Q [B, H, Lq, Dk] in C order packs each sequence's [H, Lq, Dk] block, as the plan takes it.
    out = plan.run(q.data, seqs);
    first_gpu_ns = plan.last_gpu_ns();
    plan.run(q.data, seqs, out);
    gpu_ns = plan.last_gpu_ns();
    plan_info = std::string("prefill ") + (o.causal ? "causal" : "non-causal");
  }
  gqavk::npy::save_f32(o.out_path, {s.batch, s.q_heads, s.q_len, s.v_dim}, out);

  const double scale = o.scale ? *o.scale : 1.0 / std::sqrt(static_cast<double>(s.head_dim));
  const std::string gpu = gpu_ns > 0
                              ? format_ms(gpu_ns) + " (first run " + format_ms(first_gpu_ns) + ")"
                              : std::string("n/a (no timestamps)");
  std::string extras;
  if (o.window) extras += " window=" + std::to_string(o.window);
  if (o.softcap) {
    char text[32];
    std::snprintf(text, sizeof(text), " softcap=%g", double{*o.softcap});
    extras += text;
  }
  if (!sinks.empty()) extras += " sinks";
  std::printf(
      "gqavk-run: %s: B=%u H=%u G=%u Lq=%u Lk=%u Dk=%u Dv=%u kv=%s scale=%g%s %s gpu=%s -> %s\n",
      context.device().name.c_str(), s.batch, s.q_heads, s.kv_heads, s.q_len, s.kv_len, s.head_dim,
      s.v_dim, gqavk::to_string(kv_dtype), scale, extras.c_str(), plan_info.c_str(), gpu.c_str(),
      o.out_path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Options options;
    gqavk::tools::Cli cli("gqavk-run", kUsage, kDescription, kFooter);
    add_options(cli.app, options);
    if (const int status = cli.parse(argc, argv); status >= 0) return status;
    if (const std::string missing = missing_options(cli.app); !missing.empty()) {
      return cli.usage_error("missing required option(s): " + missing);
    }
    return run(options);
  } catch (const gqavk::Error& e) {
    std::fprintf(stderr, "gqavk-run: %s\n", e.what());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gqavk-run: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "gqavk-run: unknown error\n");
  }
  return kExitFailure;
}
