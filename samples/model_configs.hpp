// The model configs of samples/configs, by path or by name, for the samples that take --model or
// CONFIG (gqavk-demo, gqavk-plan, gqavk-compare).
#pragma once

#include <algorithm>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace gqavk::tools {

// A config file: `config` itself when it names a file or looks like a path, else
// <configs_dir>/<config>.json.
inline std::string config_path(const std::string& config, const std::string& configs_dir) {
  const std::filesystem::path p(config);
  if (std::filesystem::exists(p) || p.has_parent_path() || p.extension() == ".json") return config;
  return configs_dir + "/" + config + ".json";
}

// The names configs_dir offers ("Falcon-7B, Gemma-2-9B, ..."), for an error message.
inline std::string config_names(const std::string& configs_dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(configs_dir, ec)) {
    if (e.path().extension() == ".json") names.push_back(e.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  std::string text;
  for (const std::string& n : names) text += (text.empty() ? "" : ", ") + n;
  return text;
}

}  // namespace gqavk::tools
