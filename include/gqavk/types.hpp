// Element types of the KV cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace gqavk {

// Storage type of K and V; arithmetic is f32 whatever the storage.
enum class DType { f32, f16 };

// Bytes per element of `t`.
constexpr size_t dtype_bytes(DType t) { return t == DType::f16 ? 2 : 4; }
// "f32" or "f16".
constexpr const char* to_string(DType t) { return t == DType::f16 ? "f16" : "f32"; }
// Parses "f32" or "f16"; throws gqavk::Error naming the text otherwise.
DType parse_dtype(std::string_view text);

}  // namespace gqavk
