#include "gqavk/half.hpp"

#include <bit>
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>

namespace gqavk {
namespace {

constexpr std::uint32_t kHalfInf = 0x7c00u;
constexpr std::uint32_t kHalfQuietNan = 0x7e00u;

// Rounds value >> shift to nearest, ties to even (shift must be in [1, 31]).
std::uint32_t shift_right_round_even(std::uint32_t value, int shift) {
  const std::uint32_t result = value >> shift;
  const std::uint32_t remainder = value & ((1u << shift) - 1u);
  const std::uint32_t halfway = 1u << (shift - 1);
  if (remainder > halfway || (remainder == halfway && (result & 1u) != 0)) return result + 1u;
  return result;
}

void check_sizes(const char* function, std::size_t in_size, std::size_t out_size) {
  if (in_size != out_size) {
    throw std::invalid_argument(std::string(function) + ": size mismatch: input has " +
                                std::to_string(in_size) + " elements, output has " +
                                std::to_string(out_size));
  }
}

}  // namespace

std::uint16_t float_to_half(float f) {
  const auto bits = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (bits >> 16) & 0x8000u;
  const std::uint32_t exponent = (bits >> 23) & 0xffu;
  const std::uint32_t mantissa = bits & 0x7fffffu;

  if (exponent == 0xffu) {
    if (mantissa == 0) return static_cast<std::uint16_t>(sign | kHalfInf);
    // NaN: keep the top payload bits; the quiet bit keeps the result from becoming infinity.
    return static_cast<std::uint16_t>(sign | kHalfQuietNan | (mantissa >> 13));
  }

  // Exponent rebased from the float bias (127) to the half bias (15).
  const int half_exponent = static_cast<int>(exponent) - 127 + 15;
  if (half_exponent >= 31) return static_cast<std::uint16_t>(sign | kHalfInf);

  if (half_exponent <= 0) {
    // Result is subnormal or zero. Below half of the smallest subnormal (2^-25) it rounds to zero;
    // this also covers float zeros and float subnormals.
    if (half_exponent < -10) return static_cast<std::uint16_t>(sign);
    // Value = significand * 2^(exponent - 150); half subnormal units are 2^-24.
    const std::uint32_t significand = mantissa | 0x800000u;
    // A carry out of the subnormal range yields 0x400, the smallest normal, which is correct.
    return static_cast<std::uint16_t>(sign |
                                      shift_right_round_even(significand, 14 - half_exponent));
  }

  // Normal: drop 13 mantissa bits. A rounding carry propagates into the exponent and, from the
  // largest finite value, correctly produces infinity (0x7c00).
  const std::uint32_t unrounded =
      (static_cast<std::uint32_t>(half_exponent) << 10) | (mantissa >> 13);
  const std::uint32_t remainder = mantissa & 0x1fffu;
  std::uint32_t result = unrounded;
  if (remainder > 0x1000u || (remainder == 0x1000u && (unrounded & 1u) != 0)) ++result;
  return static_cast<std::uint16_t>(sign | result);
}

bool overflows_half(float f) { return std::isfinite(f) && std::abs(f) >= 65520.0f; }

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu;
  std::uint32_t mantissa = h & 0x3ffu;

  if (exponent == 0x1fu) {  // Infinity or NaN; the payload is kept.
    return std::bit_cast<float>(sign | 0x7f800000u | (mantissa << 13));
  }
  if (exponent == 0) {
    if (mantissa == 0) return std::bit_cast<float>(sign);  // Signed zero.
    // Subnormal: normalize so the leading one becomes the implicit bit.
    int float_exponent = 127 - 14;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --float_exponent;
    }
    mantissa &= 0x3ffu;
    return std::bit_cast<float>(sign | (static_cast<std::uint32_t>(float_exponent) << 23) |
                                (mantissa << 13));
  }
  return std::bit_cast<float>(sign | ((exponent + 127u - 15u) << 23) | (mantissa << 13));
}

void floats_to_halves(std::span<const float> in, std::span<std::uint16_t> out) {
  check_sizes("floats_to_halves", in.size(), out.size());
  for (std::size_t i = 0; i < in.size(); ++i) out[i] = float_to_half(in[i]);
}

void halves_to_floats(std::span<const std::uint16_t> in, std::span<float> out) {
  check_sizes("halves_to_floats", in.size(), out.size());
  for (std::size_t i = 0; i < in.size(); ++i) out[i] = half_to_float(in[i]);
}

}  // namespace gqavk
