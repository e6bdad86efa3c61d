#include "convert.hpp"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "safetensors.hpp"

namespace gqavk::convert {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

namespace {

[[noreturn]] void fail(const std::string& message) { throw std::runtime_error(message); }

Json read_json(const fs::path& path) {
  std::ifstream in(path);
  if (!in) fail(path.string() + ": cannot open for reading");
  try {
    return Json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    fail(path.string() + ": not valid JSON: " + e.what());
  }
}

void write_json(const fs::path& path, const Json& json) {
  std::ofstream out(path);
  if (!out) fail(path.string() + ": cannot open for writing");
  out << json.dump(2) << "\n";
  if (!out) fail(path.string() + ": write failed");
}

// A positive integer field of the config (from text_config first where there is one).
uint32_t count_field(const Json& config, const char* name, const fs::path& path) {
  const Json& c = config.contains("text_config") && config["text_config"].contains(name)
                      ? config["text_config"]
                      : config;
  if (!c.contains(name)) fail(path.string() + ": no field '" + name + "'");
  const Json& v = c[name];
  if (!v.is_number_unsigned() || v.get<uint64_t>() == 0 || v.get<uint64_t>() > UINT32_MAX) {
    fail(path.string() + ": '" + name + "' is " + v.dump() + " (expected a positive integer)");
  }
  return v.get<uint32_t>();
}

std::regex regex_of(const std::string& pattern, const char* option) {
  try {
    return std::regex(pattern);
  } catch (const std::regex_error& e) {
    fail(std::string(option) + " '" + pattern + "' is not a valid regular expression: " + e.what());
  }
}

// Mean-pools the rows of each group of `ratio` old heads (head_dim rows each) into one.
void pool_tensor(safetensors::Tensor& t, uint32_t old_heads, uint32_t new_heads,
                 uint32_t head_dim) {
  if (t.shape.empty() || t.shape.size() > 2 || t.shape[0] != uint64_t{old_heads} * head_dim) {
    std::string shape;
    for (uint64_t d : t.shape) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
    fail("tensor '" + t.name + "' has shape [" + shape + "] (expected " +
         std::to_string(uint64_t{old_heads} * head_dim) +
         " rows: KV heads x head_dim, then the hidden size for a weight)");
  }
  const uint64_t cols = t.shape.size() == 2 ? t.shape[1] : 1;
  const std::vector<float> old_values = safetensors::to_floats(t);
  const uint32_t ratio = old_heads / new_heads;
  std::vector<float> values(uint64_t{new_heads} * head_dim * cols);
  for (uint32_t j = 0; j < new_heads; ++j) {
    for (uint64_t r = 0; r < head_dim; ++r) {
      for (uint64_t c = 0; c < cols; ++c) {
        float sum = 0;
        for (uint32_t i = 0; i < ratio; ++i) {
          sum += old_values[((uint64_t{j} * ratio + i) * head_dim + r) * cols + c];
        }
        values[(uint64_t{j} * head_dim + r) * cols + c] = sum / static_cast<float>(ratio);
      }
    }
  }
  t.shape[0] = uint64_t{new_heads} * head_dim;
  safetensors::from_floats(t, values);
}

}  // namespace

Report run(const Options& o) {
  const fs::path in(o.in_dir), out(o.out_dir);
  if (o.in_dir.empty()) fail("--in is empty (expected the checkpoint's folder)");
  if (o.out_dir.empty()) fail("--out is empty (expected a folder to write)");
  if (!fs::is_directory(in)) fail("--in '" + o.in_dir + "' is not a folder");
  if (fs::exists(out) && fs::equivalent(in, out)) {
    fail("--out '" + o.out_dir + "' is the input folder (expected another one)");
  }
  const std::regex key = regex_of(o.key_pattern, "--key-pattern");
  const std::regex value = regex_of(o.value_pattern, "--value-pattern");

  Json config = read_json(in / "config.json");
  Report report;
  report.q_heads = count_field(config, "num_attention_heads", in / "config.json");
  const bool has_kv =
      config.contains("num_key_value_heads") ||
      (config.contains("text_config") && config["text_config"].contains("num_key_value_heads"));
  report.old_kv_heads =
      has_kv ? count_field(config, "num_key_value_heads", in / "config.json") : report.q_heads;
  const bool has_head_dim =
      config.contains("head_dim") ||
      (config.contains("text_config") && config["text_config"].contains("head_dim"));
  if (has_head_dim) {
    report.head_dim = count_field(config, "head_dim", in / "config.json");
  } else {
    const uint32_t hidden = count_field(config, "hidden_size", in / "config.json");
    if (hidden % report.q_heads != 0) {
      fail((in / "config.json").string() + ": hidden_size " + std::to_string(hidden) +
           " is not a multiple of num_attention_heads " + std::to_string(report.q_heads));
    }
    report.head_dim = hidden / report.q_heads;
  }
  if (report.q_heads % report.old_kv_heads != 0) {
    fail((in / "config.json").string() + ": num_attention_heads " + std::to_string(report.q_heads) +
         " is not a multiple of num_key_value_heads " + std::to_string(report.old_kv_heads));
  }
  report.new_kv_heads = o.kv_heads;
  if (o.kv_heads == 0 || report.old_kv_heads % o.kv_heads != 0) {
    fail("--kv-heads " + std::to_string(o.kv_heads) + " does not divide the checkpoint's " +
         std::to_string(report.old_kv_heads) + " KV heads (expected a divisor of it)");
  }

  // The safetensors files: one, or the shards an index names.
  std::vector<std::string> files;
  const bool indexed = !fs::exists(in / "model.safetensors");
  Json index;
  if (!indexed) {
    files.push_back("model.safetensors");
  } else {
    if (!fs::exists(in / "model.safetensors.index.json")) {
      fail("--in '" + o.in_dir +
           "' has neither model.safetensors nor model.safetensors.index.json");
    }
    index = read_json(in / "model.safetensors.index.json");
    if (!index.contains("weight_map") || !index["weight_map"].is_object()) {
      fail((in / "model.safetensors.index.json").string() + ": no 'weight_map' object");
    }
    for (const auto& [name, file] : index["weight_map"].items()) {
      if (!file.is_string()) fail("weight_map entry '" + name + "' is not a file name");
      const std::string f = file.get<std::string>();
      if (f.find('/') != std::string::npos || f == "..") {
        fail("weight_map entry '" + name + "' names '" + f + "' outside the folder");
      }
      if (std::find(files.begin(), files.end(), f) == files.end()) files.push_back(f);
    }
  }

  fs::create_directories(out);
  uint64_t total_bytes = 0;
  uint32_t keys = 0, values = 0;
  for (const std::string& name : files) {
    safetensors::File file = safetensors::read((in / name).string());
    for (safetensors::Tensor& t : file.tensors) {
      const bool is_key = std::regex_match(t.name, key);
      const bool is_value = std::regex_match(t.name, value);
      if (is_key || is_value) {
        pool_tensor(t, report.old_kv_heads, report.new_kv_heads, report.head_dim);
        ++report.pooled;
        keys += is_key;
        values += is_value;
      } else {
        ++report.copied;
      }
      total_bytes += t.data.size();
    }
    safetensors::write((out / name).string(), file);
    ++report.files;
  }
  if (keys == 0 || values == 0) {
    fail("no tensor matched the " + std::string(keys == 0 ? "key" : "value") + " pattern '" +
         (keys == 0 ? o.key_pattern : o.value_pattern) +
         "' (set --key-pattern / --value-pattern for this model's names)");
  }
  if (keys != values) {
    fail(std::to_string(keys) + " key tensors but " + std::to_string(values) +
         " value tensors matched (expected as many of each)");
  }

  if (indexed) {
    if (!index.contains("metadata") || !index["metadata"].is_object()) {
      index["metadata"] = Json::object();
    }
    index["metadata"]["total_size"] = total_bytes;
    write_json(out / "model.safetensors.index.json", index);
  }
  Json& target = config.contains("text_config") && config["text_config"].is_object()
                     ? config["text_config"]
                     : config;
  target["num_key_value_heads"] = report.new_kv_heads;
  write_json(out / "config.json", config);
  // Everything else (tokenizer, generation config, ...) is copied as it is.
  for (const auto& entry : fs::directory_iterator(in)) {
    const std::string n = entry.path().filename().string();
    if (!entry.is_regular_file() || n == "config.json" || n == "model.safetensors.index.json" ||
        std::find(files.begin(), files.end(), n) != files.end()) {
      continue;
    }
    fs::copy_file(entry.path(), out / n, fs::copy_options::overwrite_existing);
  }
  return report;
}

}  // namespace gqavk::convert
