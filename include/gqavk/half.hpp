// IEEE 754 binary16 ("half") conversions implemented with plain bit manipulation.

#ifndef GQAVK_HALF_HPP_
#define GQAVK_HALF_HPP_

#include <cstdint>
#include <span>

#include "gqavk/export.h"

namespace gqavk {

// Converts a float to binary16 bits: round to nearest even, overflow to inf, NaN to a quiet NaN.
GQAVK_API std::uint16_t float_to_half(float f);

// True for a finite float that float_to_half rounds to infinity: |f| >= 65520, halfway between
// 65504 (the largest finite half) and 2^16.
GQAVK_API bool overflows_half(float f);

// Converts binary16 bits to the float with exactly the same value (every half is representable).
GQAVK_API float half_to_float(std::uint16_t h);

// Converts in[i] to out[i] with float_to_half; throws std::invalid_argument if the sizes differ.
GQAVK_API void floats_to_halves(std::span<const float> in, std::span<std::uint16_t> out);

// Converts in[i] to out[i] with half_to_float; throws std::invalid_argument if the sizes differ.
GQAVK_API void halves_to_floats(std::span<const std::uint16_t> in, std::span<float> out);

}  // namespace gqavk

#endif  // GQAVK_HALF_HPP_
