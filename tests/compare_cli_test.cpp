// gqavk-compare: a --quick sweep on the default device writes results.csv, results.json (schema
// gqavk-compare/1), report.md and SVG plots that parse and carry every series; --merge joins two
// machines' results into one report; bad options and files are named.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using Json = nlohmann::json;

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Checks that `svg` is well-formed XML (tags nest and close, attributes are quoted) with an <svg>
// root; returns an empty string or what is wrong.
std::string xml_problem(const std::string& svg) {
  std::vector<std::string> open;
  size_t i = 0, roots = 0;
  while ((i = svg.find('<', i)) != std::string::npos) {
    const size_t end = svg.find('>', i);
    if (end == std::string::npos) return "a tag at " + std::to_string(i) + " never ends";
    std::string tag = svg.substr(i + 1, end - i - 1);
    i = end + 1;
    if (tag.starts_with("?") || tag.starts_with("!--")) continue;
    if (tag.starts_with("/")) {
      const std::string name = tag.substr(1);
      if (open.empty() || open.back() != name) return "</" + name + "> closes nothing open";
      open.pop_back();
      continue;
    }
    const bool self_closing = tag.ends_with("/");
    if (self_closing) tag.pop_back();
    const std::string name = tag.substr(0, tag.find_first_of(" \n\t"));
    if (name.empty()) return "an empty tag name";
    // Attributes: name="value" pairs.
    size_t quotes = 0;
    for (char c : tag) quotes += c == '"';
    if (quotes % 2 != 0) return "<" + name + "> has an unclosed attribute quote";
    if (open.empty()) ++roots;
    if (open.empty() && name != "svg") return "the root is <" + name + ">, not <svg>";
    if (!self_closing) open.push_back(name);
  }
  if (!open.empty()) return "<" + open.back() + "> is never closed";
  if (roots != 1) return std::to_string(roots) + " root elements";
  return "";
}

std::string escape_xml(const std::string& s) {
  std::string out;
  for (char c : s)
    out += c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;" : std::string(1, c);
  return out;
}

// The series each plot must carry: one per (device, config, dtype, batch) of the mode's points.
std::set<std::string> expected_series(const Json& results, const std::string& mode) {
  std::map<std::string, int> names;
  for (const Json& d : results["devices"]) ++names[d["name"].get<std::string>()];
  std::set<std::string> out;
  for (const Json& p : results["points"]) {
    if (p["mode"] != mode || p["status"] != "ok") continue;
    const size_t di = p["device"].get<size_t>();
    std::string device = results["devices"][di]["name"].get<std::string>();
    if (names[device] > 1) device += " #" + std::to_string(di);
    out.insert(device + " " + p["config"].get<std::string>() + " " +
               p["kv_dtype"].get<std::string>() + " B" + std::to_string(p["batch"].get<int>()));
  }
  return out;
}

void expect_plot_carries(const fs::path& svg_path, const std::set<std::string>& series) {
  const std::string svg = read_text(svg_path);
  EXPECT_EQ(xml_problem(svg), "") << svg_path;
  ASSERT_FALSE(series.empty());
  for (const std::string& s : series) {
    EXPECT_THAT(svg, HasSubstr("data-series=\"" + escape_xml(s) + "\"")) << svg_path;
    EXPECT_THAT(svg, HasSubstr(">" + escape_xml(s) + "</text>")) << svg_path << " legend";
  }
}

TEST(CompareCli, QuickSweepWritesAReportAndMergeJoinsMachines) {
  const fs::path dir = fs::temp_directory_path() / ("gqavk_compare_" + std::to_string(getpid()));
  fs::remove_all(dir);
  const auto run =
      gqavk::test::run_command({GQAVK_COMPARE_PATH, "--quick", "--out", (dir / "a").string()});
  ASSERT_EQ(run.code, 0) << run.err;
  EXPECT_THAT(run.err, HasSubstr("7/7"));  // the progress bar's last state
  EXPECT_THAT(run.out, HasSubstr("7 points on 1 device(s)"));

  const Json results = Json::parse(read_text(dir / "a" / "results.json"));
  EXPECT_EQ(results["schema"], "gqavk-compare/1");
  EXPECT_EQ(results["gqavk_version"], "0.1.0");
  ASSERT_EQ(results["devices"].size(), 1u);
  const Json& dev = results["devices"][0];
  for (const char* key : {"name", "vendor", "driver_name", "driver_info", "api_version"}) {
    EXPECT_TRUE(dev[key].is_string() && !dev[key].get<std::string>().empty()) << key;
  }
  EXPECT_GT(dev["read_gb_s"].get<double>(), 0.0);
  EXPECT_GT(dev["fma_tflops"].get<double>(), 0.0);
  ASSERT_EQ(results["points"].size(), 7u);
  std::set<uint32_t> groups;
  for (const Json& p : results["points"]) {
    EXPECT_EQ(p["status"], "ok") << p.dump();
    EXPECT_GT(p["gpu_ms"].get<double>(), 0.0);
    EXPECT_GT(p["gb_s"].get<double>(), 0.0);
    EXPECT_GT(p["pct_bandwidth"].get<double>(), 0.0);
    EXPECT_GT(p["pct_fma"].get<double>(), 0.0);
    EXPECT_GT(p["tokens_per_s"].get<double>(), 0.0);
    // Every quick point is short enough to be checked: f16 storage of [-1, 1) inputs.
    ASSERT_TRUE(p["max_err"].is_number()) << p.dump();
    EXPECT_LT(p["max_err"].get<double>(), 2e-3) << p.dump();
    if (p["mode"] == "decode") groups.insert(p["kv_heads"].get<uint32_t>());
    ASSERT_TRUE(p["tuning"].is_object()) << p.dump();  // the kernel variant the point ran
    EXPECT_TRUE(p["tuning"]["tier"].is_string() && p["tuning"]["load_path"].is_string());
  }
  EXPECT_EQ(groups, (std::set<uint32_t>{8, 2, 1}));  // MHA, GQA and MQA

  const std::string csv = read_text(dir / "a" / "results.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 8);
  EXPECT_THAT(csv, HasSubstr("device,driver,mode,config,kind,q_heads,kv_heads"));
  const std::string md = read_text(dir / "a" / "report.md");
  EXPECT_THAT(md, HasSubstr("| decode | GQA H8/G2/D64 | f16 | 1 | 512 |"));
  EXPECT_THAT(md, HasSubstr("![Decode: tokens per second](decode_tokens.svg)"));
  expect_plot_carries(dir / "a" / "decode_tokens.svg", expected_series(results, "decode"));
  expect_plot_carries(dir / "a" / "decode_bandwidth.svg", expected_series(results, "decode"));
  expect_plot_carries(dir / "a" / "prefill_tokens.svg", expected_series(results, "prefill"));

  // A second "machine": the same results under another device name, merged with the first.
  Json other = results;
  other["devices"][0]["name"] = "Other GPU <B&W>";
  std::ofstream(dir / "other.json") << other.dump();
  const auto merged = gqavk::test::run_command(
      {GQAVK_COMPARE_PATH, "--merge", (dir / "a" / "results.json").string(),
       (dir / "other.json").string(), "--out", (dir / "merged").string()});
  ASSERT_EQ(merged.code, 0) << merged.err;
  EXPECT_THAT(merged.out, HasSubstr("2 devices, 14 points"));
  const Json both = Json::parse(read_text(dir / "merged" / "results.json"));
  ASSERT_EQ(both["devices"].size(), 2u);
  EXPECT_EQ(both["points"][7]["device"], 1);
  const std::set<std::string> series = expected_series(both, "decode");
  EXPECT_EQ(series.size(), 6u);
  expect_plot_carries(dir / "merged" / "decode_tokens.svg", series);
  EXPECT_THAT(read_text(dir / "merged" / "report.md"), HasSubstr("| Other GPU <B&W> |"));

  // One model's whole attention through the decode step.
  std::ofstream(dir / "tiny.json") << R"({"model_type": "llama", "num_attention_heads": 8,
      "num_key_value_heads": 2, "hidden_size": 512, "num_hidden_layers": 2,
      "torch_dtype": "float16"})";
  const auto model =
      gqavk::test::run_command({GQAVK_COMPARE_PATH, "--quick", "--model",
                                (dir / "tiny.json").string(), "--out", (dir / "model").string()});
  ASSERT_EQ(model.code, 0) << model.err;
  const Json model_results = Json::parse(read_text(dir / "model" / "results.json"));
  ASSERT_EQ(model_results["points"].size(), 1u);
  const Json& mp = model_results["points"][0];
  EXPECT_EQ(mp["mode"], "model");
  EXPECT_EQ(mp["config"], "tiny");
  EXPECT_EQ(mp["status"], "ok");
  EXPECT_EQ(mp["layers"], 2);
  EXPECT_GT(mp["tokens_per_s"].get<double>(), 0.0);
  expect_plot_carries(dir / "model" / "model_tokens.svg", expected_series(model_results, "model"));

  // Bad input is named.
  std::ofstream(dir / "bad.json") << R"({"schema": "something-else/2"})";
  const auto bad_schema = gqavk::test::run_command(
      {GQAVK_COMPARE_PATH, "--merge", (dir / "bad.json").string(), "--out", dir.string()});
  EXPECT_EQ(bad_schema.code, 1);
  EXPECT_THAT(bad_schema.err, HasSubstr("schema is 'something-else/2'"));
  const auto bad_dtype = gqavk::test::run_command({GQAVK_COMPARE_PATH, "--kv-dtype", "f7"});
  EXPECT_EQ(bad_dtype.code, 1);
  EXPECT_THAT(bad_dtype.err, HasSubstr("'f7'"));
  const auto bad_mode = gqavk::test::run_command({GQAVK_COMPARE_PATH, "--modes", "train"});
  EXPECT_EQ(bad_mode.code, 1);
  EXPECT_THAT(bad_mode.err, HasSubstr("--modes 'train'"));
  const auto bad_number = gqavk::test::run_command({GQAVK_COMPARE_PATH, "--heads", "many"});
  EXPECT_NE(bad_number.code, 0);
  EXPECT_THAT(bad_number.err, HasSubstr("--heads"));
  fs::remove_all(dir);
}

TEST(CompareReport, XmlCheckerCatchesBadSvg) {
  // xml_problem itself must catch what it claims to.
  EXPECT_NE(xml_problem("<svg><g></svg>"), "");
  EXPECT_NE(xml_problem("<svg a=\"1></svg>"), "");
  EXPECT_NE(xml_problem("<g/>"), "");
  EXPECT_EQ(xml_problem("<svg><g a=\"1\"/><text>x</text></svg>"), "");
}

}  // namespace
