// Host-side encoding of K/V rows into the pool's storage types, and decoding for tests and tools.
// The texel and scale layout is shaders/kv_block.h's; the kernels decode the same bits in
// shaders/kv_codec.glsl.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "gqavk/types.hpp"

namespace gqavk {

// bf16 bits of x, rounded to nearest even; NaN stays NaN (quiet), infinities stay infinite.
uint16_t float_to_bf16(float x);
// The float with the same value as bf16 bits b.
float bf16_to_float(uint16_t b);

// Empty when storage type t holds x (rounded or quantised); otherwise why not, as "<what it does>
// (expected <range>)" for an error message: f16 overflow, bf16 overflow, a non-finite value in a
// quantised type, or a q4 scale that f16 cannot hold.
std::string kv_value_problem(DType t, float x);

// Encodes a row of `dim` floats (each one kv_value_problem accepts) as t: dim / values_per_texel
// texels of 4 words into `texels`, and scale_bytes(t, dim) / 4 words into `scales`.
//  f32: the bits; f16, bf16: rounded to nearest even;
//  q8: scale = f32(max |x| / 127), q = clamp(round(x / scale), -127, 127) (0 if scale is 0);
//  q4: per 32 values, scale = f16(amax / 7), q = clamp(round(x / scale), -7, 7) (0 if scale is 0).
void encode_row(DType t, const float* x, uint32_t dim, uint32_t* texels, uint32_t* scales);

// The values a kernel reads back from an encoded row (q8 and q4: q * scale).
void decode_row(DType t, const uint32_t* texels, const uint32_t* scales, uint32_t dim, float* out);

// Replaces each row of `dim` values in `values` by what a kernel reads once it is stored as t
// (encode_row, then decode_row): the K/V a reference should see.
void store_and_read_rows(DType t, std::span<float> values, uint32_t dim);

}  // namespace gqavk
