#include "model_shapes.hpp"

#include <algorithm>
#include <charconv>
#include <iterator>

#include "gqavk/error.hpp"

namespace gqavk::tools {

namespace {

constexpr uint32_t kBlockShift = 4;  // 16-token blocks
constexpr uint32_t kHeadDims[] = {64, 80, 96, 112, 128, 192, 256};
constexpr DType kDTypes[] = {DType::f32, DType::f16, DType::bf16, DType::q8, DType::q4};

}  // namespace

std::vector<ModelShape> model_shapes() {
  const ModelShape models[] = {
      {"llama3_8b", 32, 8, 128}, {"qwen2_7b", 28, 4, 128},  {"falcon_7b", 71, 1, 64},
      {"qwen2_0_5b", 14, 2, 64}, {"phi3_mini", 32, 32, 96}, {"gemma2_9b", 16, 8, 256},
  };
  std::vector<ModelShape> out;
  for (DType dtype : {DType::f16, DType::f32}) {
    for (ModelShape m : models) {
      m.dtype = dtype;
      out.push_back(m);
    }
  }
  return out;
}

std::string shape_name(const ModelShape& s) {
  std::string name = "H:" + std::to_string(s.q_heads) + "/G:" + std::to_string(s.kv_heads) +
                     "/D:" + std::to_string(s.head_dim) + "/" + to_string(s.dtype);
  const ModelShape defaults;
  if (s.capacity_tokens != defaults.capacity_tokens) {
    name += "/L:" + std::to_string(s.capacity_tokens);
  }
  if (s.batch != defaults.batch) name += "/B:" + std::to_string(s.batch);
  if (s.v_head_dim && s.v_head_dim != s.head_dim) name += "/Dv:" + std::to_string(s.v_head_dim);
  return name;
}

ModelShape parse_shape(std::string_view text) {
  const std::string quoted = "shape '" + std::string(text) + "'";
  const auto bad = [&](const std::string& why) {
    throw Error(ErrorCode::invalid_argument,
                quoted + " " + why +
                    " (expected e.g. H:32/G:8/D:128/f16, with optional /L:tokens, " +
                    "/B:batch and /Dv:head dim)");
  };
  ModelShape s;
  constexpr std::string_view kKeys[] = {"H", "G", "D", "L", "B", "Dv"};
  bool seen[std::size(kKeys)] = {};
  bool seen_dtype = false;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find('/', start), text.size());
    const std::string_view part = text.substr(start, end - start);
    start = end + 1;
    if (part.find(':') == std::string_view::npos &&
        std::any_of(std::begin(kDTypes), std::end(kDTypes),
                    [&](DType t) { return part == to_string(t); })) {
      if (seen_dtype) bad("names the dtype twice");
      seen_dtype = true;
      s.dtype = parse_dtype(part);
      continue;
    }
    const size_t colon = part.find(':');
    const std::string_view key = part.substr(0, colon);
    const size_t key_at =
        static_cast<size_t>(std::find(std::begin(kKeys), std::end(kKeys), key) - std::begin(kKeys));
    if (colon == std::string_view::npos || colon + 1 == part.size() || key_at == std::size(kKeys)) {
      bad("has a part '" + std::string(part) +
          "' that is not H:n, G:n, D:n, L:n, B:n, Dv:n or a dtype (f32, f16, bf16, q8, q4)");
    }
    uint32_t value = 0;
    const char* last = part.data() + part.size();
    const auto [ptr, ec] = std::from_chars(part.data() + colon + 1, last, value);
    if (ec != std::errc() || ptr != last || value == 0) {
      bad("has '" + std::string(part) + "', whose value is not a whole number from 1 to 2^32-1");
    }
    if (seen[key_at]) bad("gives " + std::string(key) + " twice");
    seen[key_at] = true;
    uint32_t* fields[] = {&s.q_heads,         &s.kv_heads, &s.head_dim,
                          &s.capacity_tokens, &s.batch,    &s.v_head_dim};
    *fields[key_at] = value;
  }
  if (!seen[0] || !seen[1] || !seen[2]) bad("lacks one of H, G and D");
  if (s.q_heads % s.kv_heads != 0) bad("has H not a multiple of G");
  if (std::find(std::begin(kHeadDims), std::end(kHeadDims), s.head_dim) == std::end(kHeadDims)) {
    bad("has a head dim gqavk does not support (D is one of 64, 80, 96, 112, 128, 192, 256)");
  }
  if (s.v_head_dim == s.head_dim) s.v_head_dim = 0;
  const uint32_t per_texel = values_per_texel(s.dtype);
  if (s.head_dim % per_texel || s.v_head_dim % per_texel) {
    bad("has head dims that " + std::string(to_string(s.dtype)) +
        " cannot store (expected multiples of " + std::to_string(per_texel) + ")");
  }
  if (s.v_head_dim && !(s.head_dim == 192 && s.v_head_dim == 128)) {
    bad("has a Dv gqavk does not support with D:" + std::to_string(s.head_dim) +
        " (Dv equals D, or is 128 with D:192)");
  }
  return s;
}

DecodeShape decode_shape(const ModelShape& m, const DeviceInfo& device) {
  const uint64_t block_tokens = 1u << kBlockShift;
  const uint64_t blocks = (m.capacity_tokens + block_tokens - 1) / block_tokens;
  DecodeShape s;
  s.batch = m.batch;
  s.q_heads = m.q_heads;
  s.kv_heads = m.kv_heads;
  s.head_dim = m.head_dim;
  s.dtype = m.dtype;
  s.capacity_tokens = m.capacity_tokens;
  s.pool_bytes = 2 * m.kv_heads * block_tokens * row_bytes(m.dtype, m.head_dim) * blocks * m.batch;
  s.block_shift = kBlockShift;
  s.group_shift = kv_group_shift(device, kBlockShift);
  return s;
}

PrefillShape prefill_shape(const ModelShape& m, const DeviceInfo& device) {
  const DecodeShape d = decode_shape(m, device);
  PrefillShape s;
  s.q_heads = m.q_heads;
  s.kv_heads = m.kv_heads;
  s.head_dim = m.head_dim;
  s.v_head_dim = m.v_head_dim ? m.v_head_dim : m.head_dim;
  s.dtype = m.dtype;
  s.capacity_tokens = m.capacity_tokens;
  // K slabs of Dk then V slabs of Dv per block (runtime/kv_cache_impl.hpp).
  s.pool_bytes = d.pool_bytes / (2 * m.head_dim) * (s.head_dim + s.v_head_dim);
  s.block_shift = d.block_shift;
  s.group_shift = d.group_shift;
  return s;
}

}  // namespace gqavk::tools
