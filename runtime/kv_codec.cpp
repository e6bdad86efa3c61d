#include "kv_codec.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "gqavk/half.hpp"

namespace gqavk {

uint16_t float_to_bf16(float x) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  if (std::isnan(x)) return static_cast<uint16_t>((bits >> 16) | 0x40u);
  // Adding 0x7fff plus the kept part's lowest bit rounds halfway cases to the even neighbour.
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

float bf16_to_float(uint16_t b) { return std::bit_cast<float>(uint32_t{b} << 16); }

namespace {

constexpr float kQ4Levels = 7.0f;    // q4 codes -7..7
constexpr float kQ8Levels = 127.0f;  // q8 codes -127..127
// The largest finite bf16 is 0x7f7f; a float at or past the midpoint to 2^128 rounds to infinity.
constexpr float kBf16Overflow = 3.3961514e38f;  // (2 - 2^-8) * 2^127

float amax_of(const float* x, uint32_t n) {
  float m = 0.0f;
  for (uint32_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m;
}

}  // namespace

std::string kv_value_problem(DType t, float x) {
  switch (t) {
    case DType::f32:
      return {};
    case DType::f16:
      if (overflows_half(x)) {
        return "overflows f16 storage (expected |value| < 65520, which rounds to at most 65504, "
               "the largest finite f16)";
      }
      return {};
    case DType::bf16:
      if (std::isfinite(x) && std::fabs(x) >= kBf16Overflow) {
        return "overflows bf16 storage (expected |value| < 3.3961514e38, which rounds to the "
               "largest finite bf16)";
      }
      return {};
    case DType::q8:
    case DType::q4:
      if (!std::isfinite(x)) {
        return std::string("is not finite, which ") + to_string(t) +
               " storage cannot quantise (expected a finite value)";
      }
      if (t == DType::q4 && overflows_half(std::fabs(x) / kQ4Levels)) {
        return "needs a q4 scale (|value| / 7) that overflows its f16 (expected |value| < 458640)";
      }
      return {};
  }
  return {};
}

void encode_row(DType t, const float* x, uint32_t dim, uint32_t* texels, uint32_t* scales) {
  const uint32_t words = dim / values_per_texel(t) * 4;
  std::fill(texels, texels + words, 0u);
  switch (t) {
    case DType::f32:
      std::memcpy(texels, x, dim * sizeof(float));
      return;
    case DType::f16:
    case DType::bf16:
      for (uint32_t i = 0; i < dim; ++i) {
        const uint32_t h = t == DType::f16 ? float_to_half(x[i]) : float_to_bf16(x[i]);
        texels[i / 2] |= h << (16 * (i % 2));
      }
      return;
    case DType::q8: {
      const float scale = amax_of(x, dim) / kQ8Levels;
      scales[0] = std::bit_cast<uint32_t>(scale);
      if (scale == 0.0f) return;
      for (uint32_t i = 0; i < dim; ++i) {
        const int q =
            static_cast<int>(std::clamp(std::nearbyint(x[i] / scale), -kQ8Levels, kQ8Levels));
        texels[i / 4] |= (static_cast<uint32_t>(q) & 0xffu) << (8 * (i % 4));
      }
      return;
    }
    case DType::q4: {
      const uint32_t count = static_cast<uint32_t>(scale_bytes(t, dim) / 4);
      std::fill(scales, scales + count, 0u);
      for (uint32_t c = 0; c < dim / 32; ++c) {
        // Quantise against the scale as stored, so the f16 rounding moves no value off its grid.
        const uint16_t bits = float_to_half(amax_of(x + 32 * c, 32) / kQ4Levels);
        scales[c / 2] |= uint32_t{bits} << (16 * (c % 2));
        const float scale = half_to_float(bits);
        if (scale == 0.0f) continue;
        for (uint32_t i = 0; i < 32; ++i) {
          const float q = std::clamp(std::nearbyint(x[32 * c + i] / scale), -kQ4Levels, kQ4Levels);
          texels[c * 4 + i / 8] |= (static_cast<uint32_t>(static_cast<int>(q)) & 0xfu)
                                   << (4 * (i % 8));
        }
      }
      return;
    }
  }
}

void decode_row(DType t, const uint32_t* texels, const uint32_t* scales, uint32_t dim, float* out) {
  for (uint32_t i = 0; i < dim; ++i) {
    switch (t) {
      case DType::f32:
        out[i] = std::bit_cast<float>(texels[i]);
        break;
      case DType::f16:
      case DType::bf16: {
        const auto h = static_cast<uint16_t>(texels[i / 2] >> (16 * (i % 2)));
        out[i] = t == DType::f16 ? half_to_float(h) : bf16_to_float(h);
        break;
      }
      case DType::q8: {
        const auto q = static_cast<int8_t>(texels[i / 4] >> (8 * (i % 4)));
        out[i] = static_cast<float>(q) * std::bit_cast<float>(scales[0]);
        break;
      }
      case DType::q4: {
        // Shift the nibble to the top, then arithmetic-shift back: sign extension.
        const auto word = static_cast<int32_t>(texels[i / 8] << (28 - 4 * (i % 8)));
        const uint32_t c = i / 32;
        const float scale = half_to_float(static_cast<uint16_t>(scales[c / 2] >> (16 * (c % 2))));
        out[i] = static_cast<float>(word >> 28) * scale;
        break;
      }
    }
  }
}

void store_and_read_rows(DType t, std::span<float> values, uint32_t dim) {
  std::vector<uint32_t> words(dim), scales(4);  // f32 takes a word per value; q4 at most 4 scales
  for (size_t at = 0; at + dim <= values.size(); at += dim) {
    encode_row(t, values.data() + at, dim, words.data(), scales.data());
    decode_row(t, words.data(), scales.data(), dim, values.data() + at);
  }
}

}  // namespace gqavk
