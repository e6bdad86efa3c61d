#include "gqavk/model.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "gqavk/error.hpp"
#include "gqavk/kv_cache.hpp"

namespace gqavk {

namespace {

using nlohmann::json;

// Layers and heads a config may have: far above any model's, low enough that a typo cannot make
// the description take gigabytes.
constexpr uint64_t kMaxLayersOrHeads = 4096;

[[noreturn]] void bad(const std::string& message) {
  throw Error(ErrorCode::invalid_argument, message);
}

// A float as an error message shows it: "-1", "0.5", "nan", "inf".
std::string show(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", x);
  return text;
}

// A JSON value as an error message shows it, cut short when long.
std::string show(const json& value) {
  std::string text = value.dump();
  return text.size() <= 40 ? text : text.substr(0, 37) + "...";
}

// The fields of a config.json: text_config's, else the top level's. Errors start with `source`.
class Config {
 public:
  Config(const json& top, std::string source) : top_(top), source_(std::move(source)) {
    if (!top.is_object()) fail("the top level is " + show(top) + " (expected a JSON object)");
    const auto inner = top.find("text_config");
    if (inner != top.end() && !inner->is_null()) {
      if (!inner->is_object()) fail("text_config is " + show(*inner) + " (expected an object)");
      text_ = &*inner;
    }
  }

  [[noreturn]] void fail(const std::string& what) const { bad(source_ + ": " + what); }

  // The field `key`; nullptr when it is absent or null.
  const json* get(const char* key) const {
    const json& scope = text_ && text_->contains(key) ? *text_ : top_;
    const auto it = scope.find(key);
    return it == scope.end() || it->is_null() ? nullptr : &*it;
  }

  // The first of `keys` present, a positive integer up to `max`; unset when none is. `found`
  // receives its key.
  std::optional<uint32_t> count(std::initializer_list<const char*> keys,
                                const char** found = nullptr, uint64_t max = UINT32_MAX) const {
    for (const char* key : keys) {
      const json* value = get(key);
      if (!value) continue;
      if (!value->is_number_unsigned() || value->get<uint64_t>() == 0 ||
          value->get<uint64_t>() > max) {
        fail(std::string(key) + " is " + show(*value) + " (expected a positive integer" +
             (max < UINT32_MAX ? " up to " + std::to_string(max) : "") + ")");
      }
      if (found) *found = key;
      return static_cast<uint32_t>(value->get<uint64_t>());
    }
    return std::nullopt;
  }

  // count() of a field that must be there; `names` says how it may be spelled.
  uint32_t required(std::initializer_list<const char*> keys, const std::string& names,
                    const char** found = nullptr, uint64_t max = UINT32_MAX) const {
    if (const auto n = count(keys, found, max)) return *n;
    fail(names + " is missing (expected a positive integer)");
  }

  std::optional<bool> flag(const char* key) const {
    const json* value = get(key);
    if (!value) return std::nullopt;
    if (!value->is_boolean()) {
      fail(std::string(key) + " is " + show(*value) + " (expected true or false)");
    }
    return value->get<bool>();
  }

  // A finite number > 0; unset when absent or null.
  std::optional<double> positive(const char* key, const char* expected) const {
    const json* value = get(key);
    if (!value) return std::nullopt;
    if (!value->is_number() || !(value->get<double>() > 0) ||
        !std::isfinite(static_cast<float>(value->get<double>()))) {
      fail(std::string(key) + " is " + show(*value) + " (expected " + expected + ")");
    }
    return value->get<double>();
  }

  std::string text(const char* key, const char* fallback) const {
    const json* value = get(key);
    if (!value) return fallback;
    if (!value->is_string()) {
      fail(std::string(key) + " is " + show(*value) + " (expected a string)");
    }
    return value->get<std::string>();
  }

 private:
  const json& top_;
  const json* text_ = nullptr;
  std::string source_;
};

// Each layer's window (unset: a full layer), by the rules of the Hugging Face model classes.
std::vector<std::optional<uint32_t>> windows(const Config& c, uint32_t layers,
                                             const std::string& model_type) {
  std::vector<std::optional<uint32_t>> out(layers);
  if (const json* types = c.get("layer_types")) {
    if (!types->is_array()) {
      c.fail("layer_types is " + show(*types) + " (expected a list with one type per layer)");
    }
    if (types->size() != layers) {
      c.fail("layer_types has " + std::to_string(types->size()) +
             " entries; expected num_hidden_layers = " + std::to_string(layers));
    }
    for (uint32_t i = 0; i < layers; ++i) {
      const json& type = (*types)[i];
      if (type == "full_attention") continue;
      const std::string entry = "layer_types[" + std::to_string(i) + "] is " + show(type);
      if (type != "sliding_attention") {
        c.fail(entry + " (expected \"sliding_attention\" or \"full_attention\")");
      }
      out[i] = c.count({"sliding_window"});
      if (!out[i]) c.fail(entry + " but sliding_window is missing (expected a positive integer)");
    }
    return out;
  }
  const std::optional<bool> use_window = c.flag("use_sliding_window");
  if (use_window == false) return out;
  const std::optional<uint32_t> window = c.count({"sliding_window"});
  if (!window) return out;
  const std::optional<uint32_t> pattern = c.count({"sliding_window_pattern"});
  const std::optional<uint32_t> max_window_layers = c.count({"max_window_layers"});
  for (uint32_t i = 0; i < layers; ++i) {
    bool sliding = true;  // Mistral v0.1: every layer
    if (pattern) {
      sliding = (i + 1) % *pattern != 0;  // Gemma 3: every n-th layer full
    } else if (model_type == "gemma2") {
      sliding = i % 2 == 0;
    } else if (use_window == true && max_window_layers) {
      sliding = i >= *max_window_layers;  // Qwen2: the first m layers full
    }
    if (sliding) out[i] = window;
  }
  return out;
}

DType kv_dtype(const Config& c) {
  const std::string name = c.text("torch_dtype", "float16");
  if (name == "bfloat16") return DType::bf16;
  if (name == "float16") return DType::f16;
  if (name == "float32") return DType::f32;
  c.fail("torch_dtype \"" + name + "\" is not supported (expected bfloat16, float16 or float32)");
}

ModelDesc parse(std::string_view text, std::string name, const std::string& source) {
  json top;
  try {
    top = json::parse(text);
  } catch (const json::exception& e) {
    // parse_error, and out_of_range for a number past double's range (1e400): fuzz_hf_config
    // found the latter escaping as a JSON library exception.
    bad(source + ": bad JSON: " + e.what());
  }
  const Config c(top, source);
  const char* h_key = nullptr;
  const char* g_key = nullptr;
  const uint32_t h = c.required({"num_attention_heads", "n_head"},
                                "num_attention_heads (or n_head)", &h_key, kMaxLayersOrHeads);
  const uint32_t n = c.required({"num_hidden_layers", "n_layer"}, "num_hidden_layers (or n_layer)",
                                nullptr, kMaxLayersOrHeads);
  std::optional<uint32_t> g = c.count({"num_key_value_heads", "n_head_kv", "num_kv_heads"}, &g_key);
  if (!g && c.flag("multi_query") == true) g = 1;
  if (g && h % *g != 0) {
    c.fail(std::string(g_key) + " " + std::to_string(*g) + " does not divide " + h_key + " " +
           std::to_string(h) + " (expected H % G == 0)");
  }
  std::optional<uint32_t> d = c.count({"head_dim"});
  if (!d) {
    const std::optional<uint32_t> hidden = c.count({"hidden_size"});
    if (!hidden) c.fail("head_dim and hidden_size are both missing (expected one of them)");
    if (*hidden % h != 0) {
      c.fail("hidden_size " + std::to_string(*hidden) + " is not a multiple of " + h_key + " " +
             std::to_string(h) + " (head_dim is missing: expected hidden_size / H)");
    }
    d = *hidden / h;
  }
  const std::string model_type = c.text("model_type", "");
  LayerDesc layer;
  layer.q_heads = h;
  layer.kv_heads = g.value_or(h);
  layer.head_dim = *d;
  if (const auto cap = c.positive("attn_logit_softcapping", "a number > 0, or null for none")) {
    layer.softcap = static_cast<float>(*cap);
  }
  if (const auto q = c.positive("query_pre_attn_scalar", "a number > 0")) {
    layer.scale = static_cast<float>(1.0 / std::sqrt(*q));
  }
  if (model_type == "gpt_oss") layer.sinks.assign(h, 0.0f);
  layer.kv_dtype = kv_dtype(c);

  ModelDesc model;
  model.name = std::move(name);
  for (const std::optional<uint32_t>& window : windows(c, n, model_type)) {
    layer.window = window;
    model.layers.push_back(layer);
  }
  model.validate();
  return model;
}

}  // namespace

ModelDesc ModelDesc::from_hf_config(std::string_view json, std::string_view name) {
  return parse(json, std::string(name), "config.json");
}

ModelDesc ModelDesc::load_hf_config(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::ostringstream text;
  if (!(file && text << file.rdbuf())) {
    bad("cannot read the model config '" + path + "' (expected a readable, non-empty file)");
  }
  return parse(text.str(), std::filesystem::path(path).stem().string(), path);
}

void ModelDesc::validate() const {
  if (layers.empty()) bad("model '" + name + "' has no layers (expected at least one)");
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerDesc& l = layers[i];
    const std::string at = "layers[" + std::to_string(i) + "].";
    if (l.q_heads == 0 || l.kv_heads == 0 || l.head_dim == 0) {
      bad(at +
          (l.q_heads == 0    ? "q_heads"
           : l.kv_heads == 0 ? "kv_heads"
                             : "head_dim") +
          " is 0 (expected a positive count)");
    }
    if (l.q_heads % l.kv_heads != 0) {
      bad(at + "kv_heads " + std::to_string(l.kv_heads) + " does not divide q_heads " +
          std::to_string(l.q_heads) + " (expected H % G == 0)");
    }
    if (l.window == 0u) bad(at + "window 0 is not valid (expected at least 1 key, or none)");
    if (l.softcap && !(std::isfinite(*l.softcap) && *l.softcap > 0)) {
      bad(at + "softcap " + show(*l.softcap) + " is not valid (expected a finite value > 0)");
    }
    if (l.scale && !(std::isfinite(*l.scale) && *l.scale > 0)) {
      bad(at + "scale " + show(*l.scale) + " is not valid (expected a finite value > 0)");
    }
    if (!l.sinks.empty() && l.sinks.size() != l.q_heads) {
      bad(at + "sinks has " + std::to_string(l.sinks.size()) +
          " values; expected one per query head (" + std::to_string(l.q_heads) + ") or none");
    }
    for (size_t h = 0; h < l.sinks.size(); ++h) {
      if (!std::isfinite(l.sinks[h])) {
        bad(at + "sinks[" + std::to_string(h) + "] = " + show(l.sinks[h]) +
            " is not finite (expected a finite logit per query head)");
      }
    }
  }
}

KvCacheDesc ModelDesc::cache_desc(uint32_t slots, uint32_t capacity_tokens,
                                  uint32_t block_tokens) const {
  validate();
  const auto v_dim = [](const LayerDesc& l) { return l.v_head_dim ? l.v_head_dim : l.head_dim; };
  const LayerDesc& first = layers[0];
  KvCacheDesc desc;
  desc.batch = slots;
  desc.kv_heads = first.kv_heads;
  desc.head_dim = first.head_dim;
  desc.capacity_tokens = capacity_tokens;
  desc.dtype = first.kv_dtype;
  desc.block_tokens = block_tokens;
  desc.v_head_dim = v_dim(first);
  desc.layers = static_cast<uint32_t>(layers.size());
  bool any_window = false;
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerDesc& l = layers[i];
    const auto differs = [&](const char* field, const std::string& got, const std::string& want) {
      bad("layers[" + std::to_string(i) + "]." + field + " " + got + " differs from layers[0]'s " +
          want + " (one KV pool holds one row shape: every layer must share kv_heads, head_dim, " +
          "v_head_dim and kv_dtype)");
    };
    if (l.kv_heads != first.kv_heads) {
      differs("kv_heads", std::to_string(l.kv_heads), std::to_string(first.kv_heads));
    }
    if (l.head_dim != first.head_dim) {
      differs("head_dim", std::to_string(l.head_dim), std::to_string(first.head_dim));
    }
    if (v_dim(l) != desc.v_head_dim) {
      differs("v_head_dim", std::to_string(v_dim(l)), std::to_string(desc.v_head_dim));
    }
    if (l.kv_dtype != first.kv_dtype) {
      differs("kv_dtype", to_string(l.kv_dtype), to_string(first.kv_dtype));
    }
    desc.layer_windows.push_back(l.window.value_or(0));
    any_window = any_window || l.window.has_value();
  }
  if (!any_window) desc.layer_windows.clear();
  return desc;
}

}  // namespace gqavk
