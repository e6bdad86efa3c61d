// The SPIR-V embedded at build time (cmake/Shaders.cmake), looked up by variant name.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace gqavk {

struct EmbeddedShader {
  const char* name;  // e.g. "decode_split_texel_subgroup"
  const uint32_t* words;
  size_t word_count;
};

// Every embedded shader variant.
std::span<const EmbeddedShader> embedded_shaders();
// The variant called `name`; throws gqavk::Error when there is none.
std::span<const uint32_t> find_shader(std::string_view name);

}  // namespace gqavk
