// gqavk-plan: how much KV cache a model needs and how many sequences fit, from its config.json.
//
//   gqavk-plan CONFIG [--context N] [--memory BYTES] [--block-tokens P] [--kv-dtype T]
//              [--device D] [--json]
//
// Reads a Hugging Face config.json with ModelDesc::load_hf_config (the reader DecodeStep's models
// come from), says whether the model is MHA, GQA or MQA, and prints for f16, bf16, q8 and q4 the
// KV bytes per token, per sequence at a context length (window layers counted at their window),
// the same in whole blocks of the paged pool, and how many sequences fit in a memory budget: all
// beside the MHA form of the same model (one KV head per query head). No device is needed unless
// the budget is the device's heap. Exit status: 0 on success, 1 for a bad config or a device
// failure, 2 for bad options.

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "cli.hpp"
#include "gqavk/gqavk.hpp"
#include "kv_plan.hpp"
#include "model_configs.hpp"

#ifndef GQAVK_CONFIGS_DIR
#error "GQAVK_CONFIGS_DIR must name samples/configs"
#endif

namespace {

using Json = nlohmann::ordered_json;
using gqavk::DType;

constexpr int kExitFailure = 1;
constexpr uint32_t kDefaultContext = 8192;

constexpr const char* kUsage =
    "usage: gqavk-plan CONFIG [--context N] [--memory BYTES] [--block-tokens P] [--kv-dtype T]\n"
    "                  [--device D] [--json]\n";

constexpr const char* kDescription =
    "Plans a model's KV cache from its Hugging Face config.json: whether the model is MHA, GQA or "
    "MQA, and for f16, bf16, q8 and q4 the KV bytes per token, per sequence at a context length, "
    "the same in whole blocks of the paged pool, and how many sequences fit in a memory budget, "
    "beside what the MHA form of the same model (one KV head per query head) would need.";

constexpr const char* kFooter =
    "Per token: K and V rows of every KV head of every layer, q8 and q4 scales included. Per "
    "sequence: N tokens in a full layer, min(N, W) in a layer with a window of W. In blocks: what "
    "one sequence holds at most in KvCache's pool of P-token blocks (ceil(N / P) blocks in a full "
    "layer; a window layer's W tokens touch at most ceil((W - 1) / P) + 1). Sequences: the budget "
    "divided by the per-sequence figure in blocks, rounded down; weights, activations and the "
    "pool's block tables need memory too.\n"
    "Exit status: 0 on success, 1 for a bad config or a device failure, 2 for bad options.";

struct Options {
  std::string config;
  uint32_t context_tokens = kDefaultContext;
  std::optional<uint64_t> memory_bytes;
  uint32_t block_tokens = 256;
  std::optional<DType> kv_dtype;
  std::string device;
  bool json = false;
};

// An unsigned count for `option` from `min` to `max`, or a ValidationError naming the text.
uint32_t parse_count(const std::string& option, const std::string& text, uint32_t min,
                     uint32_t max) {
  uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < min ||
      value > max) {
    throw CLI::ValidationError(option + " '" + text +
                               "' is not valid (expected a whole number from " +
                               std::to_string(min) + " to " + std::to_string(max) + ")");
  }
  return static_cast<uint32_t>(value);
}

// A byte count: a number with an optional unit, B, KB, MB, GB, TB (powers of 1000) or KiB, MiB,
// GiB, TiB (powers of 1024), in any case: "25769803776", "24GiB", "80GB", "1.5 TiB".
uint64_t parse_bytes(const std::string& text) {
  const auto bad = [&](const std::string& why) {
    return CLI::ValidationError("--memory '" + text + "' is not valid (" + why +
                                "; expected a byte count such as 25769803776, 24GiB or 80GB, "
                                "with units B, KB, MB, GB, TB or KiB, MiB, GiB, TiB)");
  };
  double number = 0;
  const auto [end, ec] =
      std::from_chars(text.data(), text.data() + text.size(), number, std::chars_format::fixed);
  if (ec != std::errc() || end == text.data()) throw bad("no number");
  std::string unit(end, text.data() + text.size());
  unit.erase(0, unit.find_first_not_of(' '));
  const std::string written = unit;
  std::transform(unit.begin(), unit.end(), unit.begin(), [](char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  });
  static const std::map<std::string, double> kUnits = {
      {"", 1},      {"b", 1},        {"kb", 1e3},     {"mb", 1e6},     {"gb", 1e9},
      {"tb", 1e12}, {"kib", 0x1p10}, {"mib", 0x1p20}, {"gib", 0x1p30}, {"tib", 0x1p40},
  };
  const auto it = kUnits.find(unit);
  if (it == kUnits.end()) throw bad("unknown unit '" + written + "'");
  const double bytes = std::floor(number * it->second);
  if (!(bytes >= 1)) throw bad("less than one byte");
  if (!(bytes < 0x1p64)) throw bad("more than 2^64 bytes");
  return static_cast<uint64_t>(bytes);
}

// The budget: --memory, else the largest device-local heap of the chosen device.
Json budget(const Options& o) {
  if (o.memory_bytes) return {{"bytes", *o.memory_bytes}, {"source", "--memory"}};
  gqavk::ContextOptions co;
  co.device = o.device;
  const gqavk::Context context(co);
  const gqavk::DeviceInfo& d = context.device();
  uint64_t largest = 0;
  for (const gqavk::MemoryHeap& h : d.heaps) {
    if (h.device_local) largest = std::max(largest, h.size_bytes);
  }
  if (largest == 0) {
    throw gqavk::Error(gqavk::ErrorCode::unsupported,
                       "device '" + d.name + "' has no device-local memory heap (give --memory)");
  }
  return {{"bytes", largest}, {"source", "device"}, {"device", d.name}};
}

Json figures(const gqavk::tools::KvFigures& f) {
  return {{"token_bytes", f.token_bytes},
          {"sequence_bytes", f.sequence_bytes},
          {"sequence_block_bytes", f.sequence_block_bytes},
          {"sequences", f.sequences}};
}

// Every fact of the plan, in the document --json prints (README: gqavk-plan).
Json gather(const Options& o, const gqavk::ModelDesc& model, const std::string& path) {
  const gqavk::LayerDesc& first = model.layers.front();
  std::vector<uint32_t> windows;
  uint32_t window_layers = 0;
  for (const gqavk::LayerDesc& l : model.layers) {
    if (!l.window) continue;
    ++window_layers;
    if (std::find(windows.begin(), windows.end(), *l.window) == windows.end()) {
      windows.push_back(*l.window);
    }
  }
  std::sort(windows.begin(), windows.end());
  Json out = {
      {"model", model.name},
      {"config", path},
      {"attention", gqavk::tools::attention_kind(model)},
      {"layers", model.layers.size()},
      {"window_layers", window_layers},
      {"windows", windows},
      {"q_heads", first.q_heads},
      {"kv_heads", first.kv_heads},
      {"head_dim", first.head_dim},
      {"v_head_dim", first.v_head_dim ? first.v_head_dim : first.head_dim},
      {"context_tokens", o.context_tokens},
      {"block_tokens", o.block_tokens},
      {"budget", budget(o)},
  };
  const uint64_t budget_bytes = out["budget"]["bytes"].get<uint64_t>();
  std::vector<DType> dtypes = {DType::f16, DType::bf16, DType::q8, DType::q4};
  if (o.kv_dtype) dtypes = {*o.kv_dtype};
  Json rows = Json::array();
  for (DType t : dtypes) {
    Json row = {{"dtype", gqavk::to_string(t)}};
    try {
      const gqavk::tools::KvPlan p =
          gqavk::tools::plan_kv(model, t, o.context_tokens, o.block_tokens, budget_bytes);
      row.update(figures(p.model));
      row["mha"] = figures(p.mha);
    } catch (const gqavk::Error& e) {
      if (o.kv_dtype) throw;
      row["error"] = e.what();
    }
    rows.push_back(row);
  }
  out["dtypes"] = rows;
  return out;
}

// 1536 -> "1.50 KiB": three significant digits in the largest binary unit that keeps it >= 1.
std::string bytes_text(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  int unit = 0;
  while (v >= 1024 && unit < 6) {
    v /= 1024;
    ++unit;
  }
  char buf[32];
  if (unit == 0) {
    std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof(buf),
                  v >= 100  ? "%.0f %s"
                  : v >= 10 ? "%.1f %s"
                            : "%.2f %s",
                  v, kUnits[unit]);
  }
  return buf;
}

std::string layers_text(const Json& p) {
  const auto layers = p["layers"].get<uint32_t>();
  const auto window_layers = p["window_layers"].get<uint32_t>();
  if (window_layers == 0) return std::to_string(layers) + " layers, all full";
  std::string windows;
  for (const Json& w : p["windows"]) windows += (windows.empty() ? "" : " or ") + w.dump();
  std::string text = std::to_string(layers) + " layers, ";
  text += window_layers < layers ? std::to_string(layers - window_layers) + " full and " +
                                       std::to_string(window_layers)
                                 : std::string("all");
  return text + " with a window of " + windows + " tokens";
}

void print_text(const Json& p) {
  const auto h = p["q_heads"].get<uint32_t>();
  const auto g = p["kv_heads"].get<uint32_t>();
  std::printf("model:    %s (%s)\n", p["model"].get<std::string>().c_str(),
              p["config"].get<std::string>().c_str());
  std::printf(
      "          %s: %u query heads, %u KV head%s%s; head dim %s",
      p["attention"].get<std::string>().c_str(), h, g, g == 1 ? "" : "s",
      g < h && h % g == 0 ? (" (" + std::to_string(h / g) + " query heads each)").c_str() : "",
      p["head_dim"].dump().c_str());
  if (p["v_head_dim"] != p["head_dim"])
    std::printf(", V head dim %s", p["v_head_dim"].dump().c_str());
  std::printf("\nlayers:   %s\n", layers_text(p).c_str());
  std::printf("context:  %s tokens per sequence, in blocks of %s tokens\n",
              p["context_tokens"].dump().c_str(), p["block_tokens"].dump().c_str());
  const Json& b = p["budget"];
  std::printf("budget:   %s (%s bytes), %s\n", bytes_text(b["bytes"].get<uint64_t>()).c_str(),
              b["bytes"].dump().c_str(),
              b["source"] == "device"
                  ? ("the largest device-local heap of " + b["device"].get<std::string>()).c_str()
                  : "from --memory");
  std::printf("\n");
  const std::string model_head =
      p["attention"].get<std::string>() + " (G " + std::to_string(g) + ")";
  // How many times the model's KV cache the MHA form needs (the same for every storage type).
  std::string ratio;
  for (const Json& r : p["dtypes"]) {
    if (!r.contains("token_bytes")) continue;
    char buf[32];
    std::snprintf(buf, sizeof(buf), ", %.3gx",
                  r["mha"]["token_bytes"].get<double>() / r["token_bytes"].get<double>());
    ratio = buf;
    break;
  }
  const std::string mha_head = "MHA form (G " + std::to_string(h) + ratio + ")";
  std::printf("%-6s  %-47s  %s\n", "", model_head.c_str(), mha_head.c_str());
  std::printf("%-6s  %10s %13s %10s %10s  %10s %10s %10s\n", "dtype", "per token", "per sequence",
              "in blocks", "sequences", "per token", "in blocks", "sequences");
  for (const Json& r : p["dtypes"]) {
    const std::string dtype = r["dtype"].get<std::string>();
    if (r.contains("error")) {
      std::printf("%-6s  not stored: %s\n", dtype.c_str(), r["error"].get<std::string>().c_str());
      continue;
    }
    const Json& m = r["mha"];
    const auto text = [](const Json& v) { return bytes_text(v.get<uint64_t>()); };
    std::printf("%-6s  %10s %13s %10s %10s  %10s %10s %10s\n", dtype.c_str(),
                text(r["token_bytes"]).c_str(), text(r["sequence_bytes"]).c_str(),
                text(r["sequence_block_bytes"]).c_str(), r["sequences"].dump().c_str(),
                text(m["token_bytes"]).c_str(), text(m["sequence_block_bytes"]).c_str(),
                m["sequences"].dump().c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  gqavk::tools::Cli cli("gqavk-plan", kUsage, kDescription, kFooter);
  CLI::App& app = cli.app;
  app.add_option("CONFIG", o.config,
                 "a Hugging Face config.json, or a model name in samples/configs (Llama-3-8B, "
                 "Mistral-7B, Gemma-2-9B, ...)")
      ->required();
  app.add_option_function<std::string>(
         "--context",
         [&o](const std::string& v) {
           o.context_tokens = parse_count("--context", v, 1, std::numeric_limits<uint32_t>::max());
         },
         "tokens per sequence (default " + std::to_string(kDefaultContext) + ")")
      ->type_name("N");
  app.add_option_function<std::string>(
         "--memory", [&o](const std::string& v) { o.memory_bytes = parse_bytes(v); },
         "the memory budget for KV caches: bytes, or a number with a unit (24GiB, 80GB, 1.5TiB). "
         "Default: the largest device-local heap of the device (--device)")
      ->type_name("BYTES");
  app.add_option_function<std::string>(
         "--block-tokens",
         [&o](const std::string& v) {
           o.block_tokens = parse_count("--block-tokens", v, 1, 256);
           if (o.block_tokens & (o.block_tokens - 1)) {
             throw CLI::ValidationError("--block-tokens '" + v +
                                        "' is not valid (expected a power of two from 1 to 256)");
           }
         },
         "tokens per block of the paged pool, a power of two up to 256 (default 256)")
      ->type_name("P");
  gqavk::tools::add_kv_dtype_option(app, o.kv_dtype,
                                    "Default: f16, bf16, q8 and q4, one row each.");
  gqavk::tools::add_device_option(app, o.device, "; only read without --memory");
  gqavk::tools::add_json_flag(app, o.json, "the plan");
  if (const int status = cli.parse(argc, argv); status >= 0) return status;

  try {
    const std::string path = gqavk::tools::config_path(o.config, GQAVK_CONFIGS_DIR);
    gqavk::ModelDesc model;
    try {
      model = gqavk::ModelDesc::load_hf_config(path);
    } catch (const gqavk::Error& e) {
      std::fprintf(stderr, "gqavk-plan: %s\n", e.what());
      if (path != o.config) {
        std::fprintf(stderr, "gqavk-plan: '%s' is no file; models in %s: %s\n", o.config.c_str(),
                     GQAVK_CONFIGS_DIR, gqavk::tools::config_names(GQAVK_CONFIGS_DIR).c_str());
      }
      return kExitFailure;
    }
    const Json plan = gather(o, model, path);
    if (o.json) {
      std::printf("%s\n", plan.dump(2).c_str());
    } else {
      print_text(plan);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gqavk-plan: %s\n", e.what());
  }
  return kExitFailure;
}
