// Tests of gqavk-info: runs the real binary and checks its exit status, its text and its JSON.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_support.hpp"

#ifndef GQAVK_INFO_PATH
#error "GQAVK_INFO_PATH must name the gqavk-info executable"
#endif

namespace gqavk::test {
namespace {

using Json = nlohmann::json;

CommandResult info(std::vector<std::string> args, const std::vector<std::string>& env = {}) {
  args.insert(args.begin(), GQAVK_INFO_PATH);
  return run_command(args, env);
}

// The JSON document gqavk-info printed, or a failure naming what it printed instead.
Json parse(const CommandResult& r) {
  try {
    return Json::parse(r.out);
  } catch (const Json::exception& e) {
    ADD_FAILURE() << "gqavk-info --json printed no valid JSON (" << e.what() << "):\n" << r.out;
    return Json::object();
  }
}

TEST(InfoCli, HelpNamesEveryOption) {
  const CommandResult r = info({"--help"});
  EXPECT_EQ(r.code, 0) << r.err;
  for (const char* option : {"--device", "--shape", "--pipelines", "--json", "--help"}) {
    EXPECT_NE(r.out.find(option), std::string::npos) << "--help does not describe " << option;
  }
}

TEST(InfoCli, BadFlagsExit2) {
  const std::pair<std::vector<std::string>, const char*> cases[] = {
      {{"--frobnicate"}, "unknown option '--frobnicate'"},
      {{"extra"}, "unexpected argument 'extra'"},
      {{"--shape", "H:32/G:8/D:128/f16", "extra"}, "unexpected argument 'extra'"},
      {{"--shape"}, "--shape needs a value"},
      {{"--device"}, "--device needs a value"},
      {{"--device", "0", "--device", "1"}, "--device is given more than once"},
      {{"--json=yes"}, "--json takes no value"},
      {{"--shape", "H:32/G:8"}, "lacks one of H, G and D"},
      {{"--shape", "H:32/G:5/D:128/f16"}, "H not a multiple of G"},
      {{"--shape", "H:32/G:8/D:100/f16"}, "head dim"},
      {{"--shape", "H:32/G:8/D:128/q5"}, "'q5'"},
      {{"--shape", "H:32/G:8/D:80/q4"}, "q4 cannot store"},
      {{"--shape=H:x/G:8/D:128"}, "'H:x'"},
  };
  for (const auto& [args, phrase] : cases) {
    const CommandResult r = info(args);
    EXPECT_EQ(r.code, 2) << args[0] << ": " << r.err;
    EXPECT_EQ(r.err.rfind("gqavk-info: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(phrase), std::string::npos) << "want '" << phrase << "' in: " << r.err;
    EXPECT_NE(r.err.find("usage: gqavk-info"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
}

TEST(InfoCli, UnknownDeviceExits1) {
  const CommandResult r = info({"--device", "no-such-gpu"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("'no-such-gpu' matches no Vulkan device"), std::string::npos) << r.err;
}

// The JSON names the device and, for each shape asked for, the tuning gqavk picks.
TEST(InfoCli, JsonParsesAndNamesTheDevice) {
  const std::string name = context().device().name;
  const CommandResult r = info({"--json", "--device", name, "--shape", "H:32/G:8/D:128/f16",
                                "--shape", "H:14/G:2/D:64/f32/L:4096/B:2"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json doc = parse(r);
  ASSERT_TRUE(doc.contains("devices") && doc["devices"].size() == 1) << r.out;
  const Json& d = doc["devices"][0];
  EXPECT_EQ(d["name"], name);
  EXPECT_EQ(d["can_run"], true);
  EXPECT_EQ(d["subgroups"]["size"], context().device().subgroup_size);
  EXPECT_EQ(d["subgroups"]["lanes"], context().device().subgroup_lanes);
  EXPECT_EQ(d["pipeline_statistics"], context().device().pipeline_statistics);
  EXPECT_EQ(d["buffer_device_address"], context().device().buffer_device_address);
  EXPECT_FALSE(d["memory_heaps"].empty());
  ASSERT_EQ(d["decode"].size(), 2u);
  EXPECT_EQ(d["decode"][0]["shape"], "H:32/G:8/D:128/f16");
  EXPECT_EQ(d["decode"][1]["shape"], "H:14/G:2/D:64/f32/L:4096/B:2");
  EXPECT_EQ(d["decode"][1]["capacity_tokens"], 4096);
  EXPECT_EQ(d["decode"][1]["batch"], 2);
  for (const Json& s : d["decode"]) {
    EXPECT_FALSE(s.contains("error")) << s.dump();
    EXPECT_TRUE(s["tuning"].contains("max_splits")) << s.dump();
    EXPECT_FALSE(s.contains("pipelines")) << "pipelines without --pipelines";
  }
}

// Without --shape: every model shape of the tests, in f16 and f32, for every device listed.
TEST(InfoCli, DefaultShapesOnEveryDevice) {
  const CommandResult r = info({"--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json doc = parse(r);
  EXPECT_EQ(doc["devices"].size(), list_devices().size());
  for (const Json& d : doc["devices"]) {
    ASSERT_EQ(d["decode"].size(), 12u) << d["name"];
    EXPECT_EQ(d["decode"][0]["model"], "llama3_8b");
    EXPECT_EQ(d["decode"][0]["shape"], "H:32/G:8/D:128/f16");
    EXPECT_EQ(d["decode"][11]["shape"], "H:16/G:8/D:256/f32");
  }
}

TEST(InfoCli, TextNamesTheDeviceAndTuning) {
  const std::string name = context().device().name;
  const CommandResult r = info({"--device", name, "--shape", "H:32/G:8/D:128/f16"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const std::string& part :
       {name, std::string("runs work:   yes"), std::string("subgroup ops:"),
        std::string("H:32/G:8/D:128/f16"), std::string("tuning: tier"),
        std::string("prefill tuning: tier")}) {
    EXPECT_NE(r.out.find(part), std::string::npos) << "want '" << part << "' in:\n" << r.out;
  }
}

// On a device without VK_KHR_pipeline_executable_properties (lavapipe) the pipelines are built and
// the output says the driver reports no statistics.
TEST(InfoCli, PipelinesWithoutStatistics) {
  if (context().device().pipeline_statistics) GTEST_SKIP() << "this device reports statistics";
  const std::string name = context().device().name;
  const CommandResult r =
      info({"--pipelines", "--device", name, "--shape", "H:14/G:2/D:64/f16/L:1024"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("this driver reports no statistics"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(decode_split_"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("prefill (prefill_"), std::string::npos) << r.out;
}

// A shape with Dv != Dk: prefill's tuning and pipeline; decode, which refuses it, says so without
// failing.
TEST(InfoCli, PrefillWithSmallerValueHeads) {
  const std::string name = context().device().name;
  const CommandResult r =
      info({"--json", "--device", name, "--shape", "H:16/G:16/D:192/Dv:128/f32/L:256"});
  ASSERT_EQ(r.code, 0) << r.err;
  const Json s = parse(r)["devices"][0]["decode"][0];
  EXPECT_EQ(s["shape"], "H:16/G:16/D:192/f32/L:256/Dv:128");
  EXPECT_TRUE(s.contains("decode_skipped")) << s.dump();
  EXPECT_FALSE(s.contains("prefill_error")) << s.dump();
  EXPECT_TRUE(s["prefill_tuning"].contains("tile_queries")) << s.dump();
  const CommandResult bad = info({"--shape", "H:16/G:16/D:128/Dv:64"});
  EXPECT_EQ(bad.code, 2);
  EXPECT_NE(bad.err.find("Dv"), std::string::npos) << bad.err;
}

// RADV's null hardware: not able to run work, but its pipelines' figures come under ACO's names.
TEST(InfoCli, NullDeviceStatistics) {
  const CommandResult r =
      info({"--json", "--pipelines", "--device", "Null hardware", "--shape", "H:14/G:2/D:64/f16"},
           {"RADV_FORCE_FAMILY=navi21"});
  if (r.err.find("matches no Vulkan device") != std::string::npos) {
    GTEST_SKIP() << "no RADV null hardware device here";
  }
  ASSERT_EQ(r.code, 0) << r.err;
  const Json doc = parse(r);
  const Json& d = doc["devices"][0];
  EXPECT_EQ(d["can_run"], false);
  EXPECT_EQ(d["pipeline_statistics"], true);
  const Json& pipelines = d["decode"][0]["pipelines"];
  ASSERT_FALSE(pipelines.empty()) << r.out;
  EXPECT_EQ(pipelines[0]["role"], "decode");
  // The GPU-tier prefill pipeline beside decode's, with the same figures.
  EXPECT_EQ(pipelines.back()["role"], "prefill");
  EXPECT_EQ(pipelines.back()["shader"].get<std::string>().rfind("prefill_gpu_", 0), 0u)
      << pipelines.back().dump();
  for (const Json& p : pipelines) {
    ASSERT_EQ(p["executables"].size(), 1u) << p.dump();
    const Json& stats = p["executables"][0]["statistics"];
    for (const char* stat : {"VGPRs", "SGPRs", "Spilled VGPRs", "Subgroups per SIMD"}) {
      EXPECT_TRUE(stats.contains(stat) && stats[stat].is_number()) << stat << ": " << p.dump();
    }
  }
}

}  // namespace
}  // namespace gqavk::test
