// Fault injection (runtime/fault.hpp): for every N across a run of cache and pool operations,
// append, decode, prefill and decode steps, the Nth device-memory allocation, the Nth pipeline
// creation and the Nth queue submission or wait fail as a driver would report it. Every call
// then throws a clear gqavk::Error; nothing leaks (the validation layer reports any Vulkan object
// left at vkDestroyDevice); after out of memory the context still runs work right; after a lost
// device every later submission is refused with device_lost, and nothing blocks.
#include "fault.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "gqavk/gqavk.hpp"
#include "reference.hpp"
#include "test_support.hpp"

namespace gqavk::test {
namespace {

using ::testing::HasSubstr;

constexpr uint32_t kG = 2, kH = 4, kD = 64, kCap = 64;

// Lavapipe compiles each pipeline of each new context again; its disk cache (in a folder of this
// test's own) makes the many contexts below cheap after the first.
class FaultTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string dir =
        (std::filesystem::temp_directory_path() / ("gqavk_fault_cache_" + std::to_string(getpid())))
            .string();
    setenv("MESA_SHADER_CACHE_DISABLE", "false", 1);
    setenv("MESA_SHADER_CACHE_DIR", dir.c_str(), 1);
  }
  void TearDown() override {
    fault::arm(fault::Site::memory, 0);
    fault::arm(fault::Site::pipeline, 0);
    fault::arm(fault::Site::submit, 0);
  }
};

std::atomic<uint32_t> g_messages{0};

ContextOptions validated() {
  ContextOptions o;
  o.validation = true;
  o.on_validation_message = [](std::string_view m) {
    ++g_messages;
    std::fprintf(stderr, "validation: %.*s\n", static_cast<int>(m.size()), m.data());
  };
  return o;
}

KvCacheDesc cache_desc() {
  KvCacheDesc d;
  d.batch = 2;
  d.kv_heads = kG;
  d.head_dim = kD;
  d.capacity_tokens = kCap;
  d.dtype = DType::f16;
  d.block_tokens = 16;
  d.layers = 2;
  return d;
}

std::vector<float> values(size_t n, uint32_t seed) { return random_values(n, seed, -1, 1); }

// Every kind of work once: cache writes, fork and truncate, append from device buffers, decode,
// prefill, and decode steps.
void scenario(Context& ctx) {
  KvCache cache(ctx, cache_desc());
  for (uint32_t l = 0; l < 2; ++l) {
    cache.write(0, 0, 20, values(size_t{kG} * 20 * kD, 1 + l), values(size_t{kG} * 20 * kD, 3 + l),
                l);
  }
  cache.free_sequence(1);
  const uint32_t child = cache.fork_sequence(0);
  cache.truncate(child, 10);
  DeviceBuffer k(ctx, uint64_t{kG} * kD * 4), v(ctx, uint64_t{kG} * kD * 4);
  const std::vector<float> nk = values(size_t{kG} * kD, 5), nv = values(size_t{kG} * kD, 6);
  k.upload(std::as_bytes(std::span(nk)));
  v.upload(std::as_bytes(std::span(nv)));
  const KvToken token{child, 10};
  for (uint32_t l = 0; l < 2; ++l) cache.append(l, std::span(&token, 1), k, v);
  DecodeDesc dd;
  dd.q_heads = kH;
  DecodePlan decode(ctx, cache, dd);
  const std::vector<uint32_t> lengths = {20, 11};
  decode.run(values(size_t{2} * kH * kD, 7), lengths);
  PrefillDesc pd;
  pd.q_heads = kH;
  pd.layer = 1;
  PrefillPlan prefill(ctx, cache, pd);
  const std::vector<PrefillSeq> seqs = {{0, 4, 20}, {child, 2, 11}};
  prefill.run(values(size_t{6} * kH * kD, 8), seqs);
  ModelDesc m;
  m.layers.assign(2, LayerDesc{kH, kG, kD, 0, {}, {}, {}, {}, DType::f16});
  DecodeStepDesc sd;
  sd.max_batch = 2;
  DecodeStep step(ctx, cache, m, sd);
  const std::vector<uint32_t> rows = {0, child};
  std::vector<float> out(step.out_values(2));
  for (uint32_t t = 0; t < 3; ++t) {
    step.run(rows, values(step.q_values(2), 10 + t), values(step.k_values(2), 20 + t),
             values(step.v_values(2), 30 + t), out);
  }
}

// A decode on `ctx` checked against the reference: the context still runs work right.
void expect_works(Context& ctx) {
  KvCacheDesc d = cache_desc();
  d.dtype = DType::f32;
  d.layers = 1;
  KvCache cache(ctx, d);
  const std::vector<float> kk = values(size_t{2} * kG * kCap * kD, 40);
  const std::vector<float> vv = values(size_t{2} * kG * kCap * kD, 41);
  const size_t per = size_t{kG} * kCap * kD;
  for (uint32_t b = 0; b < 2; ++b) {
    cache.write(b, 0, kCap, std::span(kk).subspan(b * per, per),
                std::span(vv).subspan(b * per, per));
  }
  DecodeDesc dd;
  dd.q_heads = kH;
  DecodePlan plan(ctx, cache, dd);
  const std::vector<float> q = values(size_t{2} * kH * kD, 42);
  const std::vector<uint32_t> lengths = {kCap, 33};
  const std::vector<float> got = plan.run(q, lengths);
  const std::vector<double> want =
      ref::decode(q, kk, vv, lengths, 2, kH, kG, kD, kCap, 1.0 / std::sqrt(double{kD}));
  EXPECT_LE(ref::max_abs_diff(got, want), 1e-5);
}

// Runs the scenario with the Nth call at `site` failing; returns the error's code and message.
std::pair<ErrorCode, std::string> fail_at(Context& ctx, fault::Site site, uint64_t n) {
  fault::arm(site, n);
  try {
    scenario(ctx);
  } catch (const Error& e) {
    fault::arm(site, 0);
    return {e.code(), e.what()};
  }
  fault::arm(site, 0);
  ADD_FAILURE() << "call " << n << " was to fail, and the scenario ran through";
  return {ErrorCode::invalid_argument, ""};
}

TEST_F(FaultTest, EveryMemoryAllocationFailingLeavesTheContextUsable) {
  g_messages = 0;
  {
    Context ctx(validated());
    scenario(ctx);  // builds the pipelines
    fault::arm(fault::Site::memory, 0);
    scenario(ctx);
    const uint64_t allocations = fault::calls(fault::Site::memory);
    ASSERT_GT(allocations, 10u);
    for (uint64_t n = 1; n <= allocations; ++n) {
      const auto [code, message] = fail_at(ctx, fault::Site::memory, n);
      EXPECT_EQ(code, ErrorCode::out_of_memory) << "allocation " << n << ": " << message;
      EXPECT_THAT(message, HasSubstr("VK_ERROR_OUT_OF_DEVICE_MEMORY")) << "allocation " << n;
      expect_works(ctx);
    }
    std::printf("memory: %llu allocations, each failed once\n",
                static_cast<unsigned long long>(allocations));
  }
  EXPECT_EQ(g_messages, 0u)
      << "validation messages (a leaked object is reported at vkDestroyDevice)";
}

TEST_F(FaultTest, EveryPipelineCreationFailing) {
  g_messages = 0;
  uint64_t pipelines = 0;
  {
    Context ctx(validated());
    fault::arm(fault::Site::pipeline, 0);
    scenario(ctx);
    pipelines = fault::calls(fault::Site::pipeline);
  }
  ASSERT_GT(pipelines, 2u);
  for (uint64_t n = 1; n <= pipelines; ++n) {
    Context ctx(validated());
    const auto [code, message] = fail_at(ctx, fault::Site::pipeline, n);
    EXPECT_EQ(code, ErrorCode::out_of_memory) << "pipeline " << n << ": " << message;
    EXPECT_THAT(message, HasSubstr("vkCreateComputePipelines")) << "pipeline " << n;
    scenario(ctx);  // the failed pipeline was not kept: it is built now
    expect_works(ctx);
  }
  std::printf("pipeline: %llu creations, each failed once\n",
              static_cast<unsigned long long>(pipelines));
  EXPECT_EQ(g_messages, 0u);
}

TEST_F(FaultTest, EverySubmitOrWaitLosingTheDevice) {
  g_messages = 0;
  uint64_t submits = 0;
  {
    Context ctx(validated());
    fault::arm(fault::Site::submit, 0);
    scenario(ctx);
    submits = fault::calls(fault::Site::submit);
  }
  ASSERT_GT(submits, 10u);
  for (uint64_t n = 1; n <= submits; ++n) {
    Context ctx(validated());
    const auto [code, message] = fail_at(ctx, fault::Site::submit, n);
    EXPECT_EQ(code, ErrorCode::device_lost) << "submit " << n << ": " << message;
    EXPECT_THAT(message, HasSubstr("VK_ERROR_DEVICE_LOST")) << "submit " << n;
    // Every later submission says the device is lost, at once.
    try {
      expect_works(ctx);
      ADD_FAILURE() << "work ran on a lost device (submit " << n << ")";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::device_lost) << e.what();
      EXPECT_THAT(std::string(e.what()), HasSubstr("was lost"));
    }
  }
  std::printf("submit: %llu submissions and waits, each lost the device once\n",
              static_cast<unsigned long long>(submits));
  EXPECT_EQ(g_messages, 0u);
}

}  // namespace
}  // namespace gqavk::test
