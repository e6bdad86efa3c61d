// Shared test helpers: a context with the validation layer on, random inputs, a host copy of the KV
// cache in the reference layout, comparisons that say where they failed, and error matchers.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "gqavk/gqavk.hpp"
#include "reference.hpp"

// GQAVK_TEST_ASAN: defined when the tests are built with AddressSanitizer (GCC or clang), where
// programs run several times slower and resident memory holds ASan's quarantine.
#if defined(__SANITIZE_ADDRESS__)
#define GQAVK_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GQAVK_TEST_ASAN 1
#endif
#endif

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

// n integers uniform in [lo, hi], as floats, from a fixed seed.
std::vector<float> random_integers(size_t n, uint32_t seed, int lo, int hi);

// Rounds every value to the nearest binary16 and back, as an f16 cache stores it.
void round_to_f16(std::span<float> values);

// K and V of every sequence on the host, in the reference layout: sequence b, KV head g, token t
// at ((b * G + g) * capacity + t) * Dk (V: Dv). Values past a sequence's length are part of it too.
struct KvHost {
  uint32_t batch = 0, kv_heads = 0, head_dim = 0, v_head_dim = 0, capacity = 0;
  std::vector<float> k, v;

  // Offset in k of token t of KV head g of sequence b (in v when Dv == Dk).
  size_t offset(uint32_t b, uint32_t g, uint32_t t) const {
    return ((size_t{b} * kv_heads + g) * capacity + t) * head_dim;
  }
  // Offset in v of token t of KV head g of sequence b.
  size_t v_offset(uint32_t b, uint32_t g, uint32_t t) const {
    return ((size_t{b} * kv_heads + g) * capacity + t) * v_head_dim;
  }
  // Sequence b's K and V, as ref::attention takes them.
  const float* k_of(uint32_t b) const { return k.data() + offset(b, 0, 0); }
  const float* v_of(uint32_t b) const { return v.data() + v_offset(b, 0, 0); }
  // Tokens [first, first + n) of sequence b as [G, n, D], the layout KvCache::write takes.
  std::vector<float> slice_k(uint32_t b, uint32_t first, uint32_t n) const;
  std::vector<float> slice_v(uint32_t b, uint32_t first, uint32_t n) const;
};

// Random K and V in [lo, hi) for the cache `desc`, rounded to f16 when the cache stores f16 (so the
// reference sees exactly what the kernel reads).
KvHost random_kv(const KvCacheDesc& desc, uint32_t seed, float lo = -1.0f, float hi = 1.0f);

// Writes tokens [first, first + n) of sequence b from `kv` into `cache`.
void write_tokens(KvCache& cache, const KvHost& kv, uint32_t b, uint32_t first, uint32_t n);
// Writes every sequence's first lengths[b] tokens (all capacity tokens when lengths is empty), in
// chunks of whole blocks.
void write_all(KvCache& cache, const KvHost& kv, std::span<const uint32_t> lengths = {});

// Checks |got[i] - want[i]| <= atol + rtol * |want[i]| for every element of a [B, H, D] output,
// and that got is finite. On failure names the worst element as (b, h, d) with both values.
::testing::AssertionResult all_close(std::span<const float> got, std::span<const double> want,
                                     uint32_t q_heads, uint32_t head_dim, double atol,
                                     double rtol = 0.0);

// Largest |got[i] - want[i]| (the reference's; infinite for a non-finite output).
using ref::max_abs_diff;

// Sets an environment variable for a scope and restores the old value (or its absence) after.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// What a command printed and how it ended.
struct CommandResult {
  int code = -1;  // exit status; -1 when it died from a signal
  std::string out;
  std::string err;
};

// Runs `argv` (the program first) with `env` entries ("NAME=value") added to its environment and
// captures stdout and stderr; a hang ends after 120 s (600 s under ASan) as exit 124.
CommandResult run_command(const std::vector<std::string>& argv,
                          const std::vector<std::string>& env = {});

// Runs `fn` and checks it throws gqavk::Error with `code` and a message containing every one of
// `parts` (the bad value and what was expected).
::testing::AssertionResult throws_error(const std::function<void()>& fn, ErrorCode code,
                                        std::initializer_list<std::string> parts);

}  // namespace gqavk::test
