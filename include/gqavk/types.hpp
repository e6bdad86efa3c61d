// Element types of the KV cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gqavk/export.h"

namespace gqavk {

// Storage type of K and V; arithmetic is f32 whatever the storage. bf16 rounds to nearest even;
// q8 is int8 with one scale per token and KV head (K and V apart); q4 is 4-bit with one scale per
// 32 values (head dims that are multiples of 32). shaders/kv_block.h fixes the byte layout.
enum class DType { f32, f16, bf16, q8, q4 };

// Values one 16-byte texel of the pool holds: 4, 8, 8, 16 or 32.
constexpr uint32_t values_per_texel(DType t) {
  constexpr uint32_t values[] = {4, 8, 8, 16, 32};
  return values[static_cast<int>(t)];
}
// Scale bytes one token row of `dim` values carries: q8 4 (an f32), q4 2 per 32 values rounded up
// to 4, 8 or 16 bytes so a row's scales share one texel; 0 for the float types.
constexpr uint64_t scale_bytes(DType t, uint32_t dim) {
  if (t == DType::q8) return 4;
  if (t != DType::q4) return 0;
  return dim <= 64 ? 4 : dim <= 128 ? 8 : 16;
}
// Bytes one token row of `dim` values takes in the pool: values and scales.
constexpr uint64_t row_bytes(DType t, uint32_t dim) {
  return uint64_t{dim} / values_per_texel(t) * 16 + scale_bytes(t, dim);
}
// "f32", "f16", "bf16", "q8" or "q4".
constexpr const char* to_string(DType t) {
  constexpr const char* names[] = {"f32", "f16", "bf16", "q8", "q4"};
  return names[static_cast<int>(t)];
}
// Parses "f32", "f16", "bf16", "q8" or "q4"; throws gqavk::Error naming the text otherwise.
GQAVK_API DType parse_dtype(std::string_view text);

}  // namespace gqavk
