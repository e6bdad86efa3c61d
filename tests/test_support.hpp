// Shared test helpers: a context with the validation layer on, and random inputs.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gqavk/gqavk.hpp"

namespace gqavk::test {

// One context per test binary, validation on; any validation message fails the current test.
Context& context();

// A fixture that checks no validation message arrived during the test.
class GpuTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

 private:
  uint32_t messages_before_ = 0;
};

// n values uniform in [lo, hi), from a fixed seed.
std::vector<float> random_values(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f);

}  // namespace gqavk::test
