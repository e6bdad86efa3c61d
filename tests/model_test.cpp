// ModelDesc: every config in samples/configs gives its model's layers; bad configs and bad
// descriptions throw naming the field; cache_desc gives one pool for every layer. No GPU needed.
#include "gqavk/model.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "gqavk/error.hpp"
#include "gqavk/kv_cache.hpp"

namespace gqavk {
namespace {

using ::testing::HasSubstr;

ModelDesc load(const std::string& model) {
  return ModelDesc::load_hf_config(std::string(GQAVK_CONFIGS_DIR) + "/" + model + ".json");
}

// The message of the invalid_argument Error `fn` throws ("" and a failure when it throws none).
std::string invalid_argument_message(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::invalid_argument) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no gqavk::Error thrown";
  return "";
}

std::string config_error(const std::string& json) {
  return invalid_argument_message([&] { ModelDesc::from_hf_config(json); });
}

// What every layer of a model shares, and each layer's window.
struct Expected {
  const char* model;
  uint32_t layers, q_heads, kv_heads, head_dim;
  std::function<std::optional<uint32_t>(uint32_t layer)> window;
};

std::optional<uint32_t> none(uint32_t) { return std::nullopt; }

TEST(ModelConfigs, EveryModelHasItsLayers) {
  const Expected models[] = {
      {"Llama-3-8B", 32, 32, 8, 128, none},
      {"Llama-3-70B", 80, 64, 8, 128, none},
      {"Mistral-7B", 32, 32, 8, 128, [](uint32_t) { return std::optional<uint32_t>(4096); }},
      {"Qwen2-7B", 28, 28, 4, 128, none},
      {"Qwen3-8B", 36, 32, 8, 128, none},
      {"Gemma-2-9B", 42, 16, 8, 256,
       [](uint32_t i) { return i % 2 == 0 ? std::optional<uint32_t>(4096) : std::nullopt; }},
      {"Gemma-3-12B", 48, 16, 8, 256,
       [](uint32_t i) { return (i + 1) % 6 != 0 ? std::optional<uint32_t>(1024) : std::nullopt; }},
      {"gpt-oss-20b", 24, 64, 8, 64,
       [](uint32_t i) { return i % 2 == 0 ? std::optional<uint32_t>(128) : std::nullopt; }},
      {"Falcon-7B", 32, 71, 1, 64, none},
      {"Phi-3-mini", 32, 32, 32, 96, [](uint32_t) { return std::optional<uint32_t>(2047); }},
  };
  for (const Expected& want : models) {
    SCOPED_TRACE(want.model);
    const ModelDesc m = load(want.model);
    EXPECT_EQ(m.name, want.model);
    ASSERT_EQ(m.layers.size(), want.layers);
    const bool gemma = m.name.starts_with("Gemma");
    for (uint32_t i = 0; i < want.layers; ++i) {
      SCOPED_TRACE("layer " + std::to_string(i));
      const LayerDesc& l = m.layers[i];
      EXPECT_EQ(l.q_heads, want.q_heads);
      EXPECT_EQ(l.kv_heads, want.kv_heads);
      EXPECT_EQ(l.head_dim, want.head_dim);
      EXPECT_EQ(l.v_head_dim, 0u);  // Dv = Dk
      EXPECT_EQ(l.window, want.window(i));
      EXPECT_EQ(l.softcap, m.name == "Gemma-2-9B" ? std::optional<float>(50.0f) : std::nullopt);
      EXPECT_EQ(l.scale, gemma ? std::optional<float>(1.0f / 16) : std::nullopt);
      EXPECT_EQ(l.sinks,
                m.name == "gpt-oss-20b" ? std::vector<float>(64, 0.0f) : std::vector<float>());
      EXPECT_EQ(l.kv_dtype, DType::bf16);
    }
  }
}

TEST(ModelConfigs, SpotChecks) {
  const ModelDesc oss = load("gpt-oss-20b");
  EXPECT_EQ(oss.layers[0].window, 128u);
  EXPECT_FALSE(oss.layers[1].window);
  const ModelDesc gemma3 = load("Gemma-3-12B");
  EXPECT_FALSE(gemma3.layers[5].window);
  EXPECT_FALSE(gemma3.layers[11].window);
  EXPECT_EQ(gemma3.layers[4].window, 1024u);
  const ModelDesc gemma2 = load("Gemma-2-9B");
  EXPECT_EQ(gemma2.layers[0].window, 4096u);
  EXPECT_FALSE(gemma2.layers[1].window);
}

TEST(ModelConfigs, RulesAndDefaults) {
  // torch_dtype absent: f16; num_key_value_heads absent: H; head_dim from hidden_size.
  ModelDesc m = ModelDesc::from_hf_config(
      R"({"num_attention_heads": 8, "num_hidden_layers": 2, "hidden_size": 512})", "tiny");
  EXPECT_EQ(m.name, "tiny");
  EXPECT_EQ(m.layers[1].kv_heads, 8u);
  EXPECT_EQ(m.layers[1].head_dim, 64u);
  EXPECT_EQ(m.layers[1].kv_dtype, DType::f16);
  // Qwen2 with use_sliding_window true: layers from max_window_layers on have the window.
  m = ModelDesc::from_hf_config(R"({"num_attention_heads": 4, "num_hidden_layers": 4,
      "head_dim": 64, "torch_dtype": "float32", "use_sliding_window": true,
      "sliding_window": 32, "max_window_layers": 2})");
  EXPECT_FALSE(m.layers[1].window);
  EXPECT_EQ(m.layers[2].window, 32u);
  EXPECT_EQ(m.layers[3].kv_dtype, DType::f32);
  // Falcon's older names; a text_config field wins over the top level's, which fills the rest.
  m = ModelDesc::from_hf_config(R"({"n_head": 8, "n_layer": 3, "n_head_kv": 2, "hidden_size": 16,
      "torch_dtype": "float16", "text_config": {"hidden_size": 1024}})");
  EXPECT_EQ(m.layers.size(), 3u);
  EXPECT_EQ(m.layers[0].kv_heads, 2u);
  EXPECT_EQ(m.layers[0].head_dim, 128u);
  // sliding_window null: no window.
  m = ModelDesc::from_hf_config(R"({"num_attention_heads": 4, "num_hidden_layers": 1,
      "head_dim": 64, "sliding_window": null, "attn_logit_softcapping": null})");
  EXPECT_FALSE(m.layers[0].window);
  EXPECT_FALSE(m.layers[0].softcap);
}

TEST(ModelConfigs, Errors) {
  const std::string base = R"("num_hidden_layers": 4, "head_dim": 64)";
  EXPECT_THAT(config_error(R"({"num_attention_heads": 32,)"), HasSubstr("bad JSON"));
  EXPECT_THAT(config_error(R"({"num_attention_heads": 32,)"), HasSubstr("line 1, column 28"));
  // A number past double's range is a JSON library out_of_range, not a parse_error: still
  // gqavk::Error (found by fuzz_hf_config; fuzz/regressions/fuzz_hf_config/number_overflow.json).
  EXPECT_THAT(config_error(R"({"num_attention_heads": 1E400, )" + base + "}"),
              HasSubstr("bad JSON"));
  EXPECT_THAT(config_error(R"({"num_attention_heads": 1E400, )" + base + "}"),
              HasSubstr("number overflow"));
  EXPECT_THAT(config_error("{" + base + "}"), HasSubstr("num_attention_heads"));
  EXPECT_THAT(
      config_error(R"({"num_attention_heads": 32, "num_key_value_heads": 5, )" + base + "}"),
      HasSubstr("num_key_value_heads 5 does not divide num_attention_heads 32 "
                "(expected H % G == 0)"));
  EXPECT_THAT(config_error(R"({"num_attention_heads": 4, "num_hidden_layers": 2, "head_dim": 64,
      "sliding_window": 8, "layer_types": ["full_attention", "chunked_attention"]})"),
              HasSubstr(R"(layer_types[1] is "chunked_attention" (expected "sliding_attention" )"
                        R"(or "full_attention"))"));
  EXPECT_THAT(config_error(R"({"num_attention_heads": 4, "num_hidden_layers": 2, "head_dim": 64,
      "layer_types": ["full_attention"]})"),
              HasSubstr("layer_types has 1 entries; expected num_hidden_layers = 2"));
  EXPECT_THAT(config_error(R"({"num_attention_heads": 4, "num_hidden_layers": 1, "head_dim": 64,
      "layer_types": ["sliding_attention"]})"),
              HasSubstr("sliding_window"));
  EXPECT_THAT(config_error(R"({"num_attention_heads": 4, "torch_dtype": "int8", )" + base + "}"),
              HasSubstr(R"(torch_dtype "int8")"));
  EXPECT_THAT(config_error(R"({"num_attention_heads": "32", )" + base + "}"),
              HasSubstr(R"(num_attention_heads is "32" (expected a positive integer)"));
  EXPECT_THAT(config_error(R"({"num_attention_heads": -4, )" + base + "}"),
              HasSubstr("num_attention_heads is -4"));
  EXPECT_THAT(config_error(R"({"num_attention_heads": 4.5, )" + base + "}"),
              HasSubstr("num_attention_heads is 4.5"));
  EXPECT_THAT(config_error(R"({"num_attention_heads": 4, "num_hidden_layers": 0, "head_dim": 64})"),
              HasSubstr("num_hidden_layers is 0"));
  EXPECT_THAT(config_error(R"({"num_attention_heads": 4, "num_hidden_layers": 100000})"),
              HasSubstr("num_hidden_layers is 100000 (expected a positive integer up to 4096)"));
  EXPECT_THAT(config_error(R"({"num_attention_heads": 4, "sliding_window": 0, )" + base + "}"),
              HasSubstr("sliding_window is 0"));
  EXPECT_THAT(config_error(R"({"num_attention_heads": 3, "num_hidden_layers": 1,
      "hidden_size": 100})"),
              HasSubstr("hidden_size 100 is not a multiple of num_attention_heads 3"));
  EXPECT_THAT(config_error(R"({"num_attention_heads": 4, "num_hidden_layers": 1})"),
              HasSubstr("head_dim"));
  EXPECT_THAT(
      config_error(R"({"num_attention_heads": 4, "attn_logit_softcapping": -1, )" + base + "}"),
      HasSubstr("attn_logit_softcapping is -1"));
  EXPECT_THAT(
      config_error(R"({"num_attention_heads": 4, "use_sliding_window": "no", )" + base + "}"),
      HasSubstr("use_sliding_window"));
  EXPECT_THAT(config_error("[1, 2]"), HasSubstr("expected a JSON object"));
  EXPECT_THAT(invalid_argument_message([] { ModelDesc::load_hf_config("/no/such/config.json"); }),
              HasSubstr("/no/such/config.json"));
}

TEST(ModelCache, OnePoolForEveryLayer) {
  const KvCacheDesc oss = load("gpt-oss-20b").cache_desc(4, 8192, 64);
  EXPECT_EQ(oss.batch, 4u);
  EXPECT_EQ(oss.kv_heads, 8u);
  EXPECT_EQ(oss.head_dim, 64u);
  EXPECT_EQ(oss.v_head_dim, 64u);
  EXPECT_EQ(oss.capacity_tokens, 8192u);
  EXPECT_EQ(oss.block_tokens, 64u);
  EXPECT_EQ(oss.dtype, DType::bf16);
  EXPECT_EQ(oss.layers, 24u);
  EXPECT_EQ(oss.pool_blocks, 0u);
  ASSERT_EQ(oss.layer_windows.size(), 24u);
  for (uint32_t i = 0; i < 24; ++i) EXPECT_EQ(oss.layer_windows[i], i % 2 == 0 ? 128u : 0u) << i;

  const KvCacheDesc llama = load("Llama-3-8B").cache_desc(1, 4096);
  EXPECT_EQ(llama.layers, 32u);
  EXPECT_EQ(llama.block_tokens, 256u);
  EXPECT_TRUE(llama.layer_windows.empty());
}

TEST(ModelCache, LayersMustShareTheRowShape) {
  ModelDesc m = load("Llama-3-8B");
  m.layers[3].kv_dtype = DType::f16;
  EXPECT_THAT(invalid_argument_message([&] { m.cache_desc(1, 1024); }),
              HasSubstr("layers[3].kv_dtype f16 differs from layers[0]'s bf16"));
  m = load("Llama-3-8B");
  m.layers[7].kv_heads = 4;
  EXPECT_THAT(invalid_argument_message([&] { m.cache_desc(1, 1024); }),
              HasSubstr("layers[7].kv_heads 4 differs"));
  m = load("Llama-3-8B");
  m.layers[2].v_head_dim = 128;  // the same as 0: Dv = Dk
  EXPECT_NO_THROW(m.cache_desc(1, 1024));
  m.layers[2].v_head_dim = 64;
  EXPECT_THAT(invalid_argument_message([&] { m.cache_desc(1, 1024); }),
              HasSubstr("layers[2].v_head_dim 64 differs"));
}

TEST(ModelValidate, NamesTheLayerAndField) {
  const auto error = [](const std::function<void(LayerDesc&)>& change) {
    ModelDesc m = load("Llama-3-8B");
    change(m.layers[5]);
    return invalid_argument_message([&] { m.validate(); });
  };
  EXPECT_THAT(error([](LayerDesc& l) { l.window = 0; }), HasSubstr("layers[5].window 0"));
  EXPECT_THAT(error([](LayerDesc& l) { l.softcap = 0.0f; }), HasSubstr("layers[5].softcap 0"));
  EXPECT_THAT(error([](LayerDesc& l) { l.softcap = -1.0f; }), HasSubstr("layers[5].softcap -1"));
  EXPECT_THAT(error([](LayerDesc& l) { l.scale = 0.0f; }), HasSubstr("layers[5].scale 0"));
  EXPECT_THAT(error([](LayerDesc& l) { l.sinks.assign(8, 0.0f); }),
              HasSubstr("layers[5].sinks has 8 values; expected one per query head (32)"));
  EXPECT_THAT(error([](LayerDesc& l) { l.kv_heads = 5; }),
              HasSubstr("layers[5].kv_heads 5 does not divide q_heads 32"));
  EXPECT_THAT(error([](LayerDesc& l) { l.head_dim = 0; }), HasSubstr("layers[5].head_dim is 0"));
  EXPECT_THAT(invalid_argument_message([] { ModelDesc{}.validate(); }), HasSubstr("no layers"));
}

}  // namespace
}  // namespace gqavk
