// gqavk-convert and its safetensors reader: a synthetic MHA checkpoint whose KV heads are equal
// within each group converts to a GQA one under which gqavk's attention gives the same output;
// untouched tensors keep their bytes; malformed files are refused with a clear message.
#include "convert.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "gqavk/gqavk.hpp"
#include "safetensors.hpp"
#include "test_support.hpp"

namespace {

namespace fs = std::filesystem;
namespace st = gqavk::safetensors;
using ::testing::HasSubstr;

constexpr uint32_t kHeads = 8, kHeadDim = 64, kHidden = 64, kLayers = 2;

fs::path temp_dir(const std::string& name) {
  const fs::path p =
      fs::temp_directory_path() / ("gqavk_convert_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

st::Tensor tensor(const std::string& name, const std::string& dtype, std::vector<uint64_t> shape,
                  const std::vector<float>& values) {
  st::Tensor t{name, dtype, std::move(shape), {}};
  st::from_floats(t, values);
  return t;
}

std::vector<float> random_values(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(-0.5f, 0.5f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Rows [heads * D, cols] whose heads are equal within each group of `ratio`.
std::vector<float> grouped_rows(uint32_t heads, uint32_t ratio, uint64_t cols, std::mt19937& rng) {
  std::vector<float> v(uint64_t{heads} * kHeadDim * cols);
  for (uint32_t g = 0; g < heads / ratio; ++g) {
    const std::vector<float> head = random_values(kHeadDim * cols, rng);
    for (uint32_t i = 0; i < ratio; ++i) {
      std::copy(head.begin(), head.end(), v.begin() + (uint64_t{g} * ratio + i) * kHeadDim * cols);
    }
  }
  return v;
}

// An MHA checkpoint of kLayers layers: layer 0 in F32 with biases, layer 1 in BF16; an F16
// embedding and a norm weight that the conversion must leave alone.
st::File make_checkpoint(uint32_t ratio, std::mt19937& rng) {
  st::File f;
  f.metadata = R"({"format":"pt"})";
  f.tensors.push_back(
      tensor("model.embed_tokens.weight", "F16", {16, kHidden}, random_values(16 * kHidden, rng)));
  for (uint32_t l = 0; l < kLayers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const std::string dt = l == 0 ? "F32" : "BF16";
    const uint64_t rows = kHeads * kHeadDim;
    f.tensors.push_back(tensor(p + "self_attn.q_proj.weight", dt, {rows, kHidden},
                               random_values(rows * kHidden, rng)));
    f.tensors.push_back(tensor(p + "self_attn.k_proj.weight", dt, {rows, kHidden},
                               grouped_rows(kHeads, ratio, kHidden, rng)));
    f.tensors.push_back(tensor(p + "self_attn.v_proj.weight", dt, {rows, kHidden},
                               grouped_rows(kHeads, ratio, kHidden, rng)));
    if (l == 0) {
      f.tensors.push_back(
          tensor(p + "self_attn.k_proj.bias", dt, {rows}, grouped_rows(kHeads, ratio, 1, rng)));
      f.tensors.push_back(
          tensor(p + "self_attn.v_proj.bias", dt, {rows}, grouped_rows(kHeads, ratio, 1, rng)));
    }
    f.tensors.push_back(tensor(p + "self_attn.o_proj.weight", dt, {kHidden, rows},
                               random_values(rows * kHidden, rng)));
    f.tensors.push_back(
        tensor(p + "input_layernorm.weight", "F16", {kHidden}, random_values(kHidden, rng)));
  }
  return f;
}

void write_config(const fs::path& dir, uint32_t kv_heads) {
  nlohmann::ordered_json c = {{"architectures", {"LlamaForCausalLM"}},
                              {"hidden_size", kHidden},
                              {"num_attention_heads", kHeads},
                              {"num_key_value_heads", kv_heads},
                              {"num_hidden_layers", kLayers},
                              {"head_dim", kHeadDim},
                              {"torch_dtype", "float32"}};
  std::ofstream(dir / "config.json") << c.dump(2);
}

const st::Tensor& find(const st::File& f, const std::string& name) {
  for (const st::Tensor& t : f.tensors) {
    if (t.name == name) return t;
  }
  throw std::runtime_error("no tensor " + name);
}

// y [L, rows] = x [L, kHidden] W^T (+ b).
std::vector<float> project(const std::vector<float>& x, uint32_t tokens, const st::Tensor& w,
                           const st::Tensor* b) {
  const std::vector<float> wv = st::to_floats(w);
  const uint64_t rows = w.shape[0];
  std::vector<float> bv = b ? st::to_floats(*b) : std::vector<float>(rows, 0.0f);
  std::vector<float> y(tokens * rows);
  for (uint32_t t = 0; t < tokens; ++t) {
    for (uint64_t r = 0; r < rows; ++r) {
      double s = bv[r];
      for (uint32_t i = 0; i < kHidden; ++i) s += double{x[t * kHidden + i]} * wv[r * kHidden + i];
      y[t * rows + r] = static_cast<float>(s);
    }
  }
  return y;
}

// [L, G, D] -> [G, L, D] (KvCache::write's layout).
std::vector<float> heads_first(const std::vector<float>& y, uint32_t tokens, uint32_t heads) {
  std::vector<float> out(y.size());
  for (uint32_t t = 0; t < tokens; ++t) {
    for (uint32_t g = 0; g < heads; ++g) {
      for (uint32_t d = 0; d < kHeadDim; ++d) {
        out[(uint64_t{g} * tokens + t) * kHeadDim + d] =
            y[(uint64_t{t} * heads + g) * kHeadDim + d];
      }
    }
  }
  return out;
}

// Decode attention of layer 0 through gqavk: the last token's query over all tokens' keys.
std::vector<float> attend(gqavk::Context& ctx, const st::File& f, uint32_t kv_heads,
                          const std::vector<float>& x, uint32_t tokens) {
  const std::string p = "model.layers.0.self_attn.";
  const std::vector<float> q = project(x, tokens, find(f, p + "q_proj.weight"), nullptr);
  const std::vector<float> k =
      project(x, tokens, find(f, p + "k_proj.weight"), &find(f, p + "k_proj.bias"));
  const std::vector<float> v =
      project(x, tokens, find(f, p + "v_proj.weight"), &find(f, p + "v_proj.bias"));
  gqavk::KvCacheDesc cd;
  cd.kv_heads = kv_heads;
  cd.head_dim = kHeadDim;
  cd.capacity_tokens = tokens;
  cd.dtype = gqavk::DType::f32;
  gqavk::KvCache cache(ctx, cd);
  cache.write(0, 0, tokens, heads_first(k, tokens, kv_heads), heads_first(v, tokens, kv_heads));
  gqavk::DecodeDesc dd;
  dd.q_heads = kHeads;
  gqavk::DecodePlan plan(ctx, cache, dd);
  const std::vector<float> last_q(q.end() - kHeads * kHeadDim, q.end());
  const uint32_t lengths[] = {tokens};
  return plan.run(last_q, lengths);
}

TEST(Convert, MeanPooledHeadsKeepAttentionAndEveryOtherByte) {
  std::mt19937 rng(7);
  const fs::path in = temp_dir("in"), out = temp_dir("out");
  const st::File original = make_checkpoint(/*ratio=*/4, rng);
  st::write((in / "model.safetensors").string(), original);
  write_config(in, kHeads);
  std::ofstream(in / "tokenizer.json") << R"({"version":"1.0"})";

  gqavk::convert::Options o;
  o.in_dir = in.string();
  o.out_dir = out.string();
  o.kv_heads = 2;
  const gqavk::convert::Report r = gqavk::convert::run(o);
  EXPECT_EQ(r.old_kv_heads, kHeads);
  EXPECT_EQ(r.new_kv_heads, 2u);
  EXPECT_EQ(r.head_dim, kHeadDim);
  EXPECT_EQ(r.pooled, 6u);  // k and v weights of both layers, k and v biases of layer 0
  EXPECT_EQ(r.copied, 7u);

  const st::File converted = st::read((out / "model.safetensors").string());
  ASSERT_EQ(converted.tensors.size(), original.tensors.size());
  EXPECT_EQ(nlohmann::json::parse(converted.metadata), nlohmann::json::parse(original.metadata));
  for (const st::Tensor& t : original.tensors) {
    const st::Tensor& c = find(converted, t.name);
    EXPECT_EQ(c.dtype, t.dtype) << t.name;
    const bool pooled =
        t.name.find("k_proj") != std::string::npos || t.name.find("v_proj") != std::string::npos;
    if (!pooled) {
      EXPECT_EQ(c.shape, t.shape) << t.name;
      EXPECT_EQ(c.data, t.data) << t.name << " changed";
      continue;
    }
    std::vector<uint64_t> shape = t.shape;
    shape[0] = 2 * kHeadDim;
    EXPECT_EQ(c.shape, shape) << t.name;
    // Heads equal within a group pool to themselves, exactly (even in BF16): head g of the
    // result is old head 4g.
    const uint64_t head_bytes = c.data.size() / 2;
    for (uint32_t g = 0; g < 2; ++g) {
      EXPECT_TRUE(std::equal(c.data.begin() + g * head_bytes, c.data.begin() + (g + 1) * head_bytes,
                             t.data.begin() + 4 * g * head_bytes))
          << t.name << " head " << g;
    }
  }
  const nlohmann::json config = nlohmann::json::parse(std::ifstream(out / "config.json"));
  EXPECT_EQ(config["num_key_value_heads"], 2);
  EXPECT_EQ(config["num_attention_heads"], kHeads);
  EXPECT_TRUE(fs::exists(out / "tokenizer.json"));

  // Attention through gqavk: MHA with the original weights, GQA with the converted ones.
  gqavk::Context& ctx = gqavk::test::context();
  const uint32_t messages = ctx.validation_message_count();
  const uint32_t tokens = 21;
  const std::vector<float> x = random_values(tokens * kHidden, rng);
  const std::vector<float> before = attend(ctx, original, kHeads, x, tokens);
  const std::vector<float> after = attend(ctx, converted, 2, x, tokens);
  ASSERT_EQ(before.size(), after.size());
  double max_diff = 0;
  for (size_t i = 0; i < before.size(); ++i) {
    max_diff = std::max(max_diff, std::abs(double{before[i]} - after[i]));
  }
  EXPECT_LT(max_diff, 1e-5) << "attention before and after conversion differ";
  EXPECT_EQ(ctx.validation_message_count(), messages);
  fs::remove_all(in);
  fs::remove_all(out);
}

TEST(Convert, ShardsKeepTheirIndex) {
  std::mt19937 rng(11);
  const fs::path in = temp_dir("shards_in"), out = temp_dir("shards_out");
  st::File all = make_checkpoint(/*ratio=*/2, rng);
  st::File a, b;
  nlohmann::ordered_json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", {}}};
  for (st::Tensor& t : all.tensors) {
    const bool first = t.name.find("layers.1.") == std::string::npos;
    index["weight_map"][t.name] =
        first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    (first ? a : b).tensors.push_back(t);
  }
  st::write((in / "model-00001-of-00002.safetensors").string(), a);
  st::write((in / "model-00002-of-00002.safetensors").string(), b);
  std::ofstream(in / "model.safetensors.index.json") << index.dump(2);
  write_config(in, kHeads);

  gqavk::convert::Options o;
  o.in_dir = in.string();
  o.out_dir = out.string();
  o.kv_heads = 4;
  const gqavk::convert::Report r = gqavk::convert::run(o);
  EXPECT_EQ(r.files, 2u);
  EXPECT_EQ(r.pooled, 6u);
  const nlohmann::json out_index =
      nlohmann::json::parse(std::ifstream(out / "model.safetensors.index.json"));
  EXPECT_EQ(out_index["weight_map"], nlohmann::json::parse(index.dump())["weight_map"]);
  uint64_t total = 0;
  for (const char* shard :
       {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}) {
    for (const st::Tensor& t : st::read((out / shard).string()).tensors) total += t.data.size();
  }
  EXPECT_EQ(out_index["metadata"]["total_size"], total);
  EXPECT_EQ(find(st::read((out / "model-00002-of-00002.safetensors").string()),
                 "model.layers.1.self_attn.v_proj.weight")
                .shape,
            (std::vector<uint64_t>{4 * kHeadDim, kHidden}));
  fs::remove_all(in);
  fs::remove_all(out);
}

TEST(Convert, BadOptionsAreNamed) {
  std::mt19937 rng(3);
  const fs::path in = temp_dir("bad_in"), out = temp_dir("bad_out");
  st::write((in / "model.safetensors").string(), make_checkpoint(4, rng));
  write_config(in, kHeads);
  gqavk::convert::Options o;
  o.in_dir = in.string();
  o.out_dir = out.string();
  const auto message = [&](const gqavk::convert::Options& opt) -> std::string {
    try {
      gqavk::convert::run(opt);
    } catch (const std::runtime_error& e) {
      return e.what();
    }
    return "(no error)";
  };
  o.kv_heads = 3;
  EXPECT_THAT(message(o), HasSubstr("--kv-heads 3 does not divide the checkpoint's 8 KV heads"));
  o.kv_heads = 0;
  EXPECT_THAT(message(o), HasSubstr("--kv-heads 0"));
  o.kv_heads = 2;
  o.key_pattern = "nothing";
  EXPECT_THAT(message(o), HasSubstr("no tensor matched the key pattern 'nothing'"));
  o.key_pattern = "(";
  EXPECT_THAT(message(o), HasSubstr("--key-pattern '(' is not a valid regular expression"));
  o.key_pattern = gqavk::convert::Options{}.key_pattern;
  o.out_dir = in.string();
  EXPECT_THAT(message(o), HasSubstr("is the input folder"));
  o.out_dir = out.string();
  o.in_dir = (in / "missing").string();
  EXPECT_THAT(message(o), HasSubstr("is not a folder"));
  o.in_dir = in.string();
  std::ofstream(in / "config.json") << R"({"num_attention_heads": 8, "num_key_value_heads": 3,
                                          "hidden_size": 64})";
  EXPECT_THAT(message(o), HasSubstr("num_attention_heads 8 is not a multiple of "
                                    "num_key_value_heads 3"));
  std::ofstream(in / "config.json") << R"({"num_attention_heads": 8, )";
  EXPECT_THAT(message(o), HasSubstr("config.json: not valid JSON"));
  std::ofstream(in / "config.json") << R"({"num_key_value_heads": 8, "hidden_size": 64})";
  EXPECT_THAT(message(o), HasSubstr("no field 'num_attention_heads'"));
  fs::remove_all(in);
  fs::remove_all(out);
}

// A valid two-tensor file, then the same with one thing broken.
std::vector<uint8_t> file_bytes(const std::string& header, size_t data_bytes,
                                int64_t length_delta = 0) {
  std::vector<uint8_t> b(8 + header.size() + data_bytes, 0);
  const uint64_t n = header.size() + static_cast<uint64_t>(length_delta);
  for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(n >> (8 * i));
  std::copy(header.begin(), header.end(), b.begin() + 8);
  return b;
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
  try {
    st::parse(bytes, "x.safetensors");
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Safetensors, MalformedFilesAreRefused) {
  const std::string good = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"BF16","shape":[2,2],"data_offsets":[8,16]}})";
  const st::File f = st::parse(file_bytes(good, 16), "x.safetensors");
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[1].name, "b");
  EXPECT_EQ(f.tensors[1].shape, (std::vector<uint64_t>{2, 2}));

  EXPECT_THAT(parse_error({1, 2, 3}), HasSubstr("shorter than the 8-byte header length"));
  EXPECT_THAT(parse_error(file_bytes(good, 16, 1000)), HasSubstr("header length"));
  EXPECT_THAT(parse_error(file_bytes("{\"a\":", 0)), HasSubstr("the header is not JSON"));
  EXPECT_THAT(parse_error(file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                     R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                                     12)),
              HasSubstr("overlaps"));
  EXPECT_THAT(
      parse_error(file_bytes(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8)),
      HasSubstr("outside the 8 data bytes"));
  EXPECT_THAT(
      parse_error(file_bytes(R"({"a":{"dtype":"F31","shape":[2],"data_offsets":[0,8]}})", 8)),
      HasSubstr("unknown safetensors dtype 'F31'"));
  EXPECT_THAT(
      parse_error(file_bytes(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
      HasSubstr("holds 8 bytes; its shape and F32 need 12"));
  EXPECT_THAT(
      parse_error(file_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12)),
      HasSubstr("belong to no tensor"));
  EXPECT_THAT(
      parse_error(file_bytes(
          R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8)),
      HasSubstr("overflows 64 bits"));
}

}  // namespace

namespace {

TEST(ConvertCli, ConvertsAndNamesBadOptions) {
  std::mt19937 rng(5);
  const fs::path in = temp_dir("cli_in"), out = temp_dir("cli_out");
  st::write((in / "model.safetensors").string(), make_checkpoint(2, rng));
  write_config(in, kHeads);
  const auto ok = gqavk::test::run_command(
      {GQAVK_CONVERT_PATH, "--in", in.string(), "--out", out.string(), "--kv-heads", "4"});
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("8 query heads, 8 -> 4 KV heads of dim 64"));
  EXPECT_EQ(
      find(st::read((out / "model.safetensors").string()), "model.layers.0.self_attn.k_proj.bias")
          .shape,
      (std::vector<uint64_t>{4 * kHeadDim}));
  const auto missing =
      gqavk::test::run_command({GQAVK_CONVERT_PATH, "--in", in.string(), "--out", out.string()});
  EXPECT_NE(missing.code, 0);
  EXPECT_THAT(missing.err, HasSubstr("--kv-heads is required"));
  const auto bad = gqavk::test::run_command(
      {GQAVK_CONVERT_PATH, "--in", in.string(), "--out", out.string(), "--kv-heads", "five"});
  EXPECT_NE(bad.code, 0);
  EXPECT_THAT(bad.err, HasSubstr("--kv-heads"));
  const auto help = gqavk::test::run_command({GQAVK_CONVERT_PATH, "--help"});
  EXPECT_EQ(help.code, 0);
  EXPECT_THAT(help.out, HasSubstr("--key-pattern"));
  fs::remove_all(in);
  fs::remove_all(out);
}

}  // namespace
