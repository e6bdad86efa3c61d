#include "gqavk/half.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <vector>

namespace gqavk {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

float bits_to_float(std::uint32_t bits) { return std::bit_cast<float>(bits); }
std::uint32_t float_bits(float f) { return std::bit_cast<std::uint32_t>(f); }

bool is_half_nan(std::uint16_t h) { return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0; }

TEST(HalfTest, ExactValuesToHalf) {
  EXPECT_EQ(float_to_half(0.0f), 0x0000);
  EXPECT_EQ(float_to_half(-0.0f), 0x8000);
  EXPECT_EQ(float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(float_to_half(-2.0f), 0xc000);
  EXPECT_EQ(float_to_half(0.5f), 0x3800);
  EXPECT_EQ(float_to_half(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_half(-65504.0f), 0xfbff);
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -24)), 0x0001);     // Smallest subnormal.
  EXPECT_EQ(float_to_half(std::ldexp(1023.0f, -24)), 0x03ff);  // Largest subnormal.
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -14)), 0x0400);     // Smallest normal.
  EXPECT_EQ(float_to_half(-std::ldexp(1.0f, -24)), 0x8001);
  EXPECT_EQ(float_to_half(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(float_to_half(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_TRUE(is_half_nan(float_to_half(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_TRUE(is_half_nan(float_to_half(-std::numeric_limits<float>::quiet_NaN())));
}

TEST(HalfTest, ExactValuesToFloat) {
  EXPECT_EQ(float_bits(half_to_float(0x0000)), float_bits(0.0f));
  EXPECT_EQ(float_bits(half_to_float(0x8000)), float_bits(-0.0f));
  EXPECT_EQ(half_to_float(0x3c00), 1.0f);
  EXPECT_EQ(half_to_float(0xc000), -2.0f);
  EXPECT_EQ(half_to_float(0x7bff), 65504.0f);
  EXPECT_EQ(half_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(half_to_float(0x03ff), std::ldexp(1023.0f, -24));
  EXPECT_EQ(half_to_float(0x0400), std::ldexp(1.0f, -14));
  EXPECT_EQ(half_to_float(0x3555), 0.25f * (1.0f + 0x155 / 1024.0f));
  EXPECT_EQ(half_to_float(0x7c00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(half_to_float(0xfc00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(half_to_float(0x7e00)));
  EXPECT_TRUE(std::isnan(half_to_float(0x7c01)));  // Signaling NaN stays NaN.
  EXPECT_TRUE(std::isnan(half_to_float(0xffff)));
}

TEST(HalfTest, NanPayloadNeverBecomesInfinity) {
  // Float NaNs whose payload lives only in the low 13 bits would truncate to an infinity pattern.
  EXPECT_TRUE(is_half_nan(float_to_half(bits_to_float(0x7f800001u))));
  EXPECT_TRUE(is_half_nan(float_to_half(bits_to_float(0xff801fffu))));
  EXPECT_EQ(float_to_half(bits_to_float(0xffc00000u)) & 0x8000u, 0x8000u);  // Sign is kept.
}

TEST(HalfTest, RoundToNearestEvenTies) {
  // Half spacing just above 1 is 2^-10, so odd multiples of 2^-11 are exact ties.
  EXPECT_EQ(float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // Tie: down to even 1.
  EXPECT_EQ(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // Tie: up to even.
  EXPECT_EQ(float_to_half(1.0f + 5 * std::ldexp(1.0f, -11)), 0x3c02);  // Tie: down to even.
  EXPECT_EQ(float_to_half(-(1.0f + 3 * std::ldexp(1.0f, -11))), 0xbc02);
  // Just off the tie rounds to the nearer neighbour.
  EXPECT_EQ(float_to_half(std::nextafter(1.0f + std::ldexp(1.0f, -11), 2.0f)), 0x3c01);
  EXPECT_EQ(float_to_half(std::nextafter(1.0f + 3 * std::ldexp(1.0f, -11), 0.0f)), 0x3c01);
  // Rounding carries into the exponent: just below 2 rounds to 2.
  EXPECT_EQ(float_to_half(2.0f - std::ldexp(1.0f, -12)), 0x4000);
}

TEST(HalfTest, SubnormalRounding) {
  const float tiny = std::ldexp(1.0f, -24);
  EXPECT_EQ(float_to_half(tiny / 2), 0x0000);                        // Tie: down to 0.
  EXPECT_EQ(float_to_half(std::nextafter(tiny / 2, 1.0f)), 0x0001);  // Above the tie.
  EXPECT_EQ(float_to_half(std::nextafter(tiny / 2, 0.0f)), 0x0000);
  EXPECT_EQ(float_to_half(-tiny / 2), 0x8000);                 // Keeps the sign.
  EXPECT_EQ(float_to_half(tiny * 1.5f), 0x0002);               // Tie: up to even 2.
  EXPECT_EQ(float_to_half(tiny * 2.5f), 0x0002);               // Tie: down to even 2.
  EXPECT_EQ(float_to_half(std::ldexp(1023.5f, -24)), 0x0400);  // Carry to normal.
  EXPECT_EQ(float_to_half(std::numeric_limits<float>::denorm_min()), 0x0000);
  EXPECT_EQ(float_to_half(std::numeric_limits<float>::min()), 0x0000);
}

TEST(HalfTest, OverflowToInfinity) {
  EXPECT_EQ(float_to_half(65519.0f), 0x7bff);  // Below the midpoint.
  EXPECT_EQ(float_to_half(std::nextafter(65520.0f, 0.0f)), 0x7bff);
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);  // Midpoint: ties to even (inf).
  EXPECT_EQ(float_to_half(65521.0f), 0x7c00);
  EXPECT_EQ(float_to_half(65536.0f), 0x7c00);
  EXPECT_EQ(float_to_half(1e10f), 0x7c00);
  EXPECT_EQ(float_to_half(std::numeric_limits<float>::max()), 0x7c00);
  EXPECT_EQ(float_to_half(-65520.0f), 0xfc00);
  EXPECT_EQ(float_to_half(-1e30f), 0xfc00);
}

// overflows_half agrees with float_to_half: true exactly where a finite float becomes infinity.
TEST(HalfTest, OverflowsHalfMatchesConversion) {
  const float inf = std::numeric_limits<float>::infinity();
  for (float f : {0.0f, 1.0f, 65504.0f, 65519.0f, std::nextafter(65520.0f, 0.0f), 65520.0f,
                  65521.0f, 1e30f, std::numeric_limits<float>::max()}) {
    for (float x : {f, -f}) {
      EXPECT_EQ(overflows_half(x), (float_to_half(x) & 0x7fffu) == 0x7c00u) << x;
    }
  }
  EXPECT_FALSE(overflows_half(inf));
  EXPECT_FALSE(overflows_half(-inf));
  EXPECT_FALSE(overflows_half(std::nanf("")));
}

TEST(HalfTest, RoundTripAllHalfBitPatterns) {
  for (std::uint32_t bits = 0; bits <= 0xffffu; ++bits) {
    const auto h = static_cast<std::uint16_t>(bits);
    const float f = half_to_float(h);
    if (is_half_nan(h)) {
      EXPECT_TRUE(std::isnan(f)) << "bits 0x" << std::hex << bits;
      EXPECT_TRUE(is_half_nan(float_to_half(f))) << "bits 0x" << std::hex << bits;
      EXPECT_EQ(float_to_half(f) & 0x8000u, h & 0x8000u) << "bits 0x" << std::hex << bits;
    } else {
      EXPECT_EQ(float_to_half(f), h) << "bits 0x" << std::hex << bits;
    }
  }
}

TEST(HalfTest, MidpointsBetweenNeighboursRoundToEven) {
  // For every pair of adjacent finite positive halves, the exact midpoint (representable as a
  // float) must round to whichever of the two has an even mantissa.
  for (std::uint32_t bits = 0; bits < 0x7bffu; ++bits) {
    const float lo = half_to_float(static_cast<std::uint16_t>(bits));
    const float hi = half_to_float(static_cast<std::uint16_t>(bits + 1));
    const float mid = lo + (hi - lo) / 2;
    const std::uint32_t expected = (bits & 1u) == 0 ? bits : bits + 1;
    ASSERT_EQ(float_to_half(mid), expected) << "bits 0x" << std::hex << bits;
    ASSERT_EQ(float_to_half(std::nextafter(mid, 0.0f)), bits) << "bits 0x" << std::hex << bits;
    ASSERT_EQ(float_to_half(std::nextafter(mid, hi)), bits + 1) << "bits 0x" << std::hex << bits;
  }
}

TEST(HalfTest, SpanHelpers) {
  const std::vector<float> floats = {0.0f, 1.0f, -2.0f, 65504.0f, std::ldexp(1.0f, -24), 1e6f};
  std::vector<std::uint16_t> halves(floats.size());
  floats_to_halves(floats, halves);
  EXPECT_EQ(halves, (std::vector<std::uint16_t>{0x0000, 0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00}));

  std::vector<float> back(halves.size());
  halves_to_floats(halves, back);
  EXPECT_EQ(back, (std::vector<float>{0.0f, 1.0f, -2.0f, 65504.0f, std::ldexp(1.0f, -24),
                                      std::numeric_limits<float>::infinity()}));

  floats_to_halves({}, {});  // Empty spans are fine.
  halves_to_floats({}, {});
}

TEST(HalfTest, SpanHelpersRejectSizeMismatch) {
  std::vector<float> floats(3);
  std::vector<std::uint16_t> halves(2);
  try {
    floats_to_halves(floats, halves);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), AllOf(HasSubstr("floats_to_halves"), HasSubstr("3"), HasSubstr("2")));
  }
  try {
    halves_to_floats(halves, floats);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), AllOf(HasSubstr("halves_to_floats"), HasSubstr("input has 2"),
                                HasSubstr("output has 3")));
  }
}

}  // namespace
}  // namespace gqavk
