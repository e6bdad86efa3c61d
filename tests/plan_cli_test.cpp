// Tests of gqavk-plan: runs the real binary on samples/configs and on broken configs written to a
// temp dir, and checks its figures (hand-computed), its classification, its errors and its JSON.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_support.hpp"

#ifndef GQAVK_PLAN_PATH
#error "GQAVK_PLAN_PATH must name the gqavk-plan executable"
#endif

namespace gqavk::test {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

CommandResult plan(std::vector<std::string> args) {
  args.insert(args.begin(), GQAVK_PLAN_PATH);
  return run_command(args);
}

// The JSON document gqavk-plan printed, or a failure naming what it printed instead.
Json parse(const CommandResult& r) {
  EXPECT_EQ(r.code, 0) << r.err;
  try {
    return Json::parse(r.out);
  } catch (const Json::exception& e) {
    ADD_FAILURE() << "gqavk-plan --json printed no valid JSON (" << e.what() << "):\n" << r.out;
    return Json::object();
  }
}

// The entry of `dtype` in a plan's "dtypes".
Json row(const Json& p, const std::string& dtype) {
  for (const Json& r : p.value("dtypes", Json::array())) {
    if (r.value("dtype", "") == dtype) return r;
  }
  ADD_FAILURE() << "no dtype " << dtype << " in " << p.dump();
  return Json::object();
}

struct Figures {
  uint64_t token_bytes, sequence_bytes, sequence_block_bytes, sequences;
};

void expect_figures(const Json& r, const Figures& want) {
  EXPECT_EQ(r.value("token_bytes", uint64_t{0}), want.token_bytes) << r.dump();
  EXPECT_EQ(r.value("sequence_bytes", uint64_t{0}), want.sequence_bytes) << r.dump();
  EXPECT_EQ(r.value("sequence_block_bytes", uint64_t{0}), want.sequence_block_bytes) << r.dump();
  EXPECT_EQ(r.value("sequences", uint64_t{0}), want.sequences) << r.dump();
}

// Llama-3-8B: 32 full layers, G 8, H 32, D 128. f16: 32 x 8 x (256 + 256) = 131072 bytes per
// token; 8192 tokens are 1 GiB (32 whole 256-token blocks per layer), 24 of them in 24 GiB. q8
// rows are 128 + 4 bytes (an f32 scale): 32 x 8 x 264 = 67584; q4 rows 64 + 8 (a 2-byte scale
// per 32 values, 8 bytes): 32 x 8 x 144 = 36864. MHA (G 32): four times each.
TEST(PlanCli, Llama3FiguresByHand) {
  const Json p = parse(plan({"Llama-3-8B", "--context", "8192", "--memory", "24GiB", "--json"}));
  EXPECT_EQ(p.value("attention", ""), "GQA");
  EXPECT_EQ(p.value("layers", 0), 32);
  EXPECT_EQ(p.value("window_layers", -1), 0);
  EXPECT_EQ(p["budget"].value("bytes", uint64_t{0}), uint64_t{24} << 30);
  EXPECT_EQ(p["budget"].value("source", ""), "--memory");
  ASSERT_EQ(p["dtypes"].size(), 4u) << "f16, bf16, q8 and q4 by default";
  const uint64_t gib = uint64_t{1} << 30;
  expect_figures(row(p, "f16"), {131072, gib, gib, 24});
  expect_figures(row(p, "f16")["mha"], {524288, 4 * gib, 4 * gib, 6});
  expect_figures(row(p, "bf16"), {131072, gib, gib, 24});
  expect_figures(row(p, "q8"), {67584, 67584ull * 8192, 67584ull * 8192, 46});
  expect_figures(row(p, "q8")["mha"], {270336, 270336ull * 8192, 270336ull * 8192, 11});
  expect_figures(row(p, "q4"), {36864, 36864ull * 8192, 36864ull * 8192, 85});
}

// Gemma-2-9B: 42 layers of G 8, H 16, D 256, every other one with a 4096-token window. f16: 8 x
// 1024 = 8192 bytes per layer and token, 42 x 8192 = 344064 per token. At 32768 tokens: 21 full
// layers hold 32768 tokens (128 blocks), 21 window layers 4096 tokens, which touch at most
// ceil(4095 / 256) + 1 = 17 blocks: 21 x 8192 x (32768 + 4096) bytes, in blocks 21 x 8192 x 256 x
// (128 + 17). 80 GB (80e9 bytes) holds 12 sequences (6 for the MHA form, G 16).
TEST(PlanCli, Gemma2WindowLayersCountAtTheirWindow) {
  const Json p = parse(plan({"Gemma-2-9B", "--context", "32768", "--memory", "80GB", "--json"}));
  EXPECT_EQ(p.value("attention", ""), "GQA");
  EXPECT_EQ(p.value("layers", 0), 42);
  EXPECT_EQ(p.value("window_layers", 0), 21);
  EXPECT_EQ(p["windows"], Json::array({4096}));
  EXPECT_EQ(p["budget"].value("bytes", uint64_t{0}), 80'000'000'000ull);
  const uint64_t layer_token = 8192;
  expect_figures(row(p, "f16"), {42 * layer_token, 21 * layer_token * (32768 + 4096),
                                 21 * layer_token * 256 * (128 + 17), 12});
  expect_figures(row(p, "f16")["mha"], {2 * 42 * layer_token, 2 * 21 * layer_token * 36864,
                                        2 * 21 * layer_token * 256 * 145, 6});
  // q8: rows of 256 + 4 bytes, 8 x 520 = 4160 per layer and token.
  expect_figures(row(p, "q8"), {42 * 4160, 21 * 4160ull * 36864, 21 * 4160ull * 256 * 145, 24});
}

// Mistral-7B (v0.1): a 4096-token window in all 32 layers. Below the window a sequence holds all
// its tokens (1000 -> 4 blocks); past it, the window (17 blocks of 256, or 257 of 16 tokens).
TEST(PlanCli, MistralWindowAndBlockSize) {
  const uint64_t token = 131072;  // 32 layers x 8 KV heads x 512 bytes
  Json p = parse(
      plan({"Mistral-7B", "--context", "1000", "--memory", "80GB", "--kv-dtype", "f16", "--json"}));
  ASSERT_EQ(p["dtypes"].size(), 1u) << "--kv-dtype keeps one storage type";
  expect_figures(row(p, "f16"), {token, token * 1000, token * 1024, 596});
  p = parse(plan(
      {"Mistral-7B", "--context", "32768", "--memory", "80GB", "--kv-dtype", "f16", "--json"}));
  expect_figures(row(p, "f16"), {token, token * 4096, token * 17 * 256, 140});
  expect_figures(row(p, "f16")["mha"], {4 * token, 4 * token * 4096, 4 * token * 17 * 256, 35});
  p = parse(plan({"Mistral-7B", "--context", "32768", "--block-tokens", "16", "--memory", "80GB",
                  "--kv-dtype", "f16", "--json"}));
  EXPECT_EQ(p.value("block_tokens", 0), 16);
  expect_figures(row(p, "f16"), {token, token * 4096, token * 257 * 16, 148});
}

TEST(PlanCli, ClassifiesMhaGqaMqa) {
  for (const auto& [model, kind] :
       {std::pair{"Phi-3-mini", "MHA"}, {"Llama-3-8B", "GQA"}, {"Falcon-7B", "MQA"}}) {
    const Json p = parse(plan({model, "--memory", "1GiB", "--json"}));
    EXPECT_EQ(p.value("attention", ""), kind) << model;
    // The text names it too.
    const CommandResult text = plan({model, "--memory", "1GiB"});
    EXPECT_EQ(text.code, 0) << text.err;
    EXPECT_NE(text.out.find(std::string(kind) + ": "), std::string::npos) << text.out;
  }
  // MHA's own form is itself: the same figures.
  const Json phi = parse(plan({"Phi-3-mini", "--memory", "1GiB", "--json"}));
  EXPECT_EQ(row(phi, "f16")["token_bytes"], row(phi, "f16")["mha"]["token_bytes"]);
  // Falcon-7B: 71 query heads, one KV head of 64: 32 x (128 + 128) = 8192 bytes per token in f16.
  const Json falcon = parse(plan({"Falcon-7B", "--memory", "1GiB", "--json"}));
  EXPECT_EQ(row(falcon, "f16").value("token_bytes", uint64_t{0}), 8192u);
  EXPECT_EQ(row(falcon, "f16")["mha"].value("token_bytes", uint64_t{0}), 71u * 8192);
}

TEST(PlanCli, TextTable) {
  const CommandResult r = plan({"Llama-3-8B", "--memory", "24GiB"});
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* part : {"Llama-3-8B", "GQA: 32 query heads, 8 KV heads", "32 layers, all full",
                           "8192 tokens", "24.0 GiB (25769803776 bytes), from --memory",
                           "MHA form (G 32, 4x)", "per token", "sequences"}) {
    EXPECT_NE(r.out.find(part), std::string::npos) << "want '" << part << "' in:\n" << r.out;
  }
  // The f16 row: 128 KiB per token, 1 GiB per sequence, 24 sequences; MHA 512 KiB, 4 GiB, 6.
  EXPECT_NE(r.out.find("f16        128 KiB      1.00 GiB   1.00 GiB         24     512 KiB"),
            std::string::npos)
      << r.out;
}

// Without --memory the budget is the largest device-local heap of the device.
TEST(PlanCli, BudgetFromTheDevice) {
  const Json p = parse(plan({"Qwen2-7B", "--json"}));
  ASSERT_TRUE(p.contains("budget")) << p.dump();
  EXPECT_EQ(p["budget"].value("source", ""), "device");
  EXPECT_FALSE(p["budget"].value("device", "").empty());
  EXPECT_GT(p["budget"].value("bytes", uint64_t{0}), 0u);
  const CommandResult bad = plan({"Qwen2-7B", "--device", "no-such-gpu"});
  EXPECT_EQ(bad.code, 1) << bad.err;
  EXPECT_NE(bad.err.find("no-such-gpu"), std::string::npos) << bad.err;
}

TEST(PlanCli, HelpNamesEveryOption) {
  const CommandResult r = plan({"--help"});
  EXPECT_EQ(r.code, 0) << r.err;
  for (const char* option : {"CONFIG", "--context", "--memory", "--block-tokens", "--kv-dtype",
                             "--device", "--json", "--help"}) {
    EXPECT_NE(r.out.find(option), std::string::npos) << "--help does not describe " << option;
  }
}

TEST(PlanCli, BadOptionsExit2) {
  const std::pair<std::vector<std::string>, const char*> cases[] = {
      {{}, "CONFIG is required"},
      {{"Llama-3-8B", "--memory", "12XB"}, "--memory '12XB' is not valid (unknown unit 'XB'"},
      {{"Llama-3-8B", "--memory", "0"}, "--memory '0' is not valid (less than one byte"},
      {{"Llama-3-8B", "--memory", "lots"}, "--memory 'lots' is not valid (no number"},
      {{"Llama-3-8B", "--memory", "1e30TB"}, "--memory '1e30TB' is not valid"},
      {{"Llama-3-8B", "--memory", "99999999TiB"}, "more than 2^64 bytes"},
      {{"Llama-3-8B", "--memory"}, "--memory needs a value"},
      {{"Llama-3-8B", "--context", "0"}, "--context '0' is not valid (expected a whole number"},
      {{"Llama-3-8B", "--context", "-5"}, "--context '-5' is not valid"},
      {{"Llama-3-8B", "--context", "8k"}, "--context '8k' is not valid"},
      {{"Llama-3-8B", "--context", "--json"}, "--context needs a value (got the option '--json')"},
      {{"Llama-3-8B", "--block-tokens", "100"}, "--block-tokens '100' is not valid"},
      {{"Llama-3-8B", "--kv-dtype", "q5"}, "--kv-dtype 'q5' is not valid"},
      {{"Llama-3-8B", "--json=yes"}, "--json takes no value"},
      {{"Llama-3-8B", "--context", "1", "--context", "2"}, "--context is given more than once"},
      {{"Llama-3-8B", "--json", "--json"}, "--json is given more than once"},
      {{"Llama-3-8B", "--frobnicate"}, "unknown option '--frobnicate'"},
      {{"Llama-3-8B", "Mistral-7B"}, "unexpected argument 'Mistral-7B'"},
  };
  for (const auto& [args, phrase] : cases) {
    const CommandResult r = plan(args);
    EXPECT_EQ(r.code, 2) << phrase << ": " << r.err;
    EXPECT_EQ(r.err.rfind("gqavk-plan: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(phrase), std::string::npos) << "want '" << phrase << "' in: " << r.err;
    EXPECT_NE(r.err.find("usage: gqavk-plan"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
}

// Bad configs exit 1 with the reader's message naming the file and what is wrong.
class PlanConfigs : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("gqavk_plan_test_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "_" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& text) const {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }

  static void expect_config_error(const CommandResult& r, const std::vector<std::string>& parts) {
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_EQ(r.err.rfind("gqavk-plan: ", 0), 0u) << r.err;
    for (const std::string& part : parts) {
      EXPECT_NE(r.err.find(part), std::string::npos) << "want '" << part << "' in: " << r.err;
    }
    EXPECT_TRUE(r.out.empty()) << r.out;
  }

  fs::path dir_;
};

TEST_F(PlanConfigs, BadJson) {
  const std::string path = write("bad.json", "{ \"num_attention_heads\": 32,\n");
  expect_config_error(plan({path, "--memory", "1GiB"}), {"bad.json", "bad JSON", "line 2"});
}

TEST_F(PlanConfigs, MissingFile) {
  const std::string path = (dir_ / "absent.json").string();
  expect_config_error(plan({path, "--memory", "1GiB"}), {"cannot read the model config", path});
  // A bare name that is no file and no model of samples/configs: the names on offer.
  expect_config_error(plan({"No-Such-Model", "--memory", "1GiB"}),
                      {"'No-Such-Model' is no file", "Llama-3-8B", "Mistral-7B"});
}

TEST_F(PlanConfigs, MissingField) {
  const std::string path =
      write("missing.json", R"({"num_hidden_layers": 32, "num_key_value_heads": 8})");
  expect_config_error(plan({path, "--memory", "1GiB"}), {"missing.json", "num_attention_heads"});
}

TEST_F(PlanConfigs, HeadsNotAMultipleOfKvHeads) {
  const std::string path = write("hg.json", R"({"num_attention_heads": 32, "num_key_value_heads": 5,
                                                "num_hidden_layers": 2, "hidden_size": 4096})");
  expect_config_error(plan({path, "--memory", "1GiB"}),
                      {"hg.json", "num_key_value_heads 5", "num_attention_heads 32", "H % G"});
}

// A head dim q4 cannot store (80, not a multiple of 32): that row says why, the others stand.
TEST_F(PlanConfigs, StorageTypeThatCannotHoldTheHeads) {
  const std::string path =
      write("d80.json", R"({"num_attention_heads": 32, "num_key_value_heads": 8,
                                                 "head_dim": 80, "num_hidden_layers": 2})");
  const Json p = parse(plan({path, "--memory", "1GiB", "--json"}));
  EXPECT_TRUE(row(p, "q4").contains("error")) << p.dump();
  EXPECT_EQ(row(p, "f16").value("token_bytes", uint64_t{0}), 2u * 8 * 320);
  const CommandResult r = plan({path, "--memory", "1GiB", "--kv-dtype", "q4"});
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("head dim 80"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace gqavk::test
