// The C API's thread contract (gqavk.h, Threads): separate contexts used from separate threads at
// once; one context shared by threads that serialise their calls on it with a mutex; the
// device-free functions (device listing, capacity planning, models, strings) from many threads at
// once; and the last-error messages kept per context and per thread. Every result is checked
// against the float64 reference; every context runs with the validation layer on and must see no
// message.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "gqavk/gqavk.h"
#include "reference.hpp"
#include "test_support.hpp"

namespace gqavk::test {
namespace {

// One tiny shape: G 2, H 4, D 64, f32, every slot filled to a different length.
constexpr uint32_t kG = 2, kH = 4, kD = 64, kCap = 32, kBlock = 8, kSlots = 4;
constexpr double kAtol = 1e-5;

gqavk_kv_cache_create_info cache_info() {
  gqavk_kv_cache_create_info info{};
  info.struct_size = sizeof(info);
  info.batch = kSlots;
  info.kv_heads = kG;
  info.head_dim = kD;
  info.capacity_tokens = kCap;
  info.dtype = GQAVK_DTYPE_F32;
  info.block_tokens = kBlock;
  return info;
}

// The host copy of a cache of cache_info(), in the reference layout.
KvHost host_kv(uint32_t seed) {
  KvCacheDesc desc;
  desc.batch = kSlots;
  desc.kv_heads = kG;
  desc.head_dim = kD;
  desc.capacity_tokens = kCap;
  desc.dtype = DType::f32;
  return random_kv(desc, seed);
}

// A context on the default device with validation on, counting messages into `messages`.
gqavk_context* make_context(std::atomic<uint32_t>* messages) {
  gqavk_context_create_info info{};
  info.struct_size = sizeof(info);
  info.validation = 1;
  info.user_data = messages;
  info.on_validation_message = [](void* user, const char* message) {
    ++*static_cast<std::atomic<uint32_t>*>(user);
    std::fprintf(stderr, "validation: %s\n", message);
  };
  gqavk_context* ctx = nullptr;
  EXPECT_EQ(gqavk_context_create(&info, &ctx), GQAVK_SUCCESS) << gqavk_last_error(nullptr);
  return ctx;
}

// A cache on ctx holding kv's first lengths[b] tokens of every slot b.
gqavk_kv_cache* make_cache(gqavk_context* ctx, const KvHost& kv, const uint32_t* lengths) {
  const gqavk_kv_cache_create_info info = cache_info();
  gqavk_kv_cache* cache = nullptr;
  EXPECT_EQ(gqavk_kv_cache_create(ctx, &info, &cache), GQAVK_SUCCESS) << gqavk_last_error(ctx);
  if (cache == nullptr) return nullptr;
  for (uint32_t b = 0; b < kSlots; ++b) {
    const std::vector<float> k = kv.slice_k(b, 0, lengths[b]);
    const std::vector<float> v = kv.slice_v(b, 0, lengths[b]);
    EXPECT_EQ(
        gqavk_kv_cache_write(cache, 0, b, 0, lengths[b], k.data(), k.size(), v.data(), v.size()),
        GQAVK_SUCCESS)
        << gqavk_last_error(ctx);
  }
  return cache;
}

gqavk_decode_plan* make_plan(gqavk_context* ctx, gqavk_kv_cache* cache, float scale) {
  gqavk_decode_plan_create_info info{};
  info.struct_size = sizeof(info);
  info.q_heads = kH;
  info.scale = scale;
  gqavk_decode_plan* plan = nullptr;
  EXPECT_EQ(gqavk_decode_plan_create(ctx, cache, &info, &plan), GQAVK_SUCCESS)
      << gqavk_last_error(ctx);
  return plan;
}

// Runs plan on random queries (from `seed`) and returns the largest error against the reference
// (infinite when the run failed).
double decode_error(gqavk_decode_plan* plan, const KvHost& kv, const uint32_t* lengths, float scale,
                    uint32_t seed, std::string* message) {
  const std::vector<float> q = random_values(size_t{kSlots} * kH * kD, seed);
  std::vector<float> out(q.size());
  const gqavk_status s =
      gqavk_decode_plan_run(plan, q.data(), q.size(), lengths, kSlots, out.data(), out.size());
  if (s != GQAVK_SUCCESS) {
    *message = gqavk_last_error(nullptr);
    return INFINITY;
  }
  const std::vector<double> want =
      ref::decode(q, kv.k, kv.v, std::span<const uint32_t>(lengths, kSlots), kSlots, kH, kG, kD,
                  kCap, scale == 0.0f ? 1.0 / std::sqrt(double{kD}) : double{scale});
  return max_abs_diff(out, want);
}

// (a) Two threads, each with its own context, cache and plan, decode at the same time (a spin
// barrier lines their runs up); each failing call's message stays on its own context and thread:
// after both threads failed, each still reads its own.
TEST(CApiThreads, SeparateContextsAtOnce) {
  constexpr int kThreads = 2, kRuns = 6;
  std::atomic<uint32_t> messages[kThreads] = {0, 0};
  std::atomic<int> ready{0}, failed{0};
  double worst[kThreads] = {-1, -1};
  std::string failure[kThreads];
  bool own_message[kThreads] = {false, false};
  bool others_clean[kThreads] = {false, false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const uint32_t lengths[kSlots] = {kCap, 1u + 7u * t, 9, 20u - 3u * t};
      const KvHost kv = host_kv(100 + t);
      gqavk_context* ctx = make_context(&messages[t]);
      gqavk_kv_cache* cache = ctx ? make_cache(ctx, kv, lengths) : nullptr;
      gqavk_decode_plan* plan = cache ? make_plan(ctx, cache, 0.0f) : nullptr;
      ++ready;
      while (ready.load() < kThreads) std::this_thread::yield();
      if (plan == nullptr) ++failed;  // the other thread does not wait for this one's failure
      if (plan != nullptr) {
        worst[t] = 0;
        for (int r = 0; r < kRuns; ++r) {
          worst[t] =
              std::max(worst[t], decode_error(plan, kv, lengths, 0.0f, 10 * t + r, &failure[t]));
        }
        // A failure of this thread's own: its context and its thread name it.
        const uint32_t bad[kSlots] = {kCap + 1 + t, 1, 1, 1};
        std::vector<float> q(size_t{kSlots} * kH * kD), out(q.size());
        const gqavk_status s =
            gqavk_decode_plan_run(plan, q.data(), q.size(), bad, kSlots, out.data(), out.size());
        const std::string value = "lengths[0] = " + std::to_string(kCap + 1 + t);
        own_message[t] = s == GQAVK_ERROR_INVALID_ARGUMENT &&
                         std::strstr(gqavk_last_error(ctx), value.c_str()) != nullptr &&
                         std::strstr(gqavk_last_error(nullptr), value.c_str()) != nullptr;
        ++failed;
        while (failed.load() < kThreads) std::this_thread::yield();
        // Runs on: the other thread's failure does not reach this context or thread.
        for (int r = 0; r < kRuns; ++r) {
          worst[t] =
              std::max(worst[t], decode_error(plan, kv, lengths, 0.0f, 20 * t + r, &failure[t]));
        }
        others_clean[t] = std::strstr(gqavk_last_error(ctx), value.c_str()) != nullptr &&
                          std::strstr(gqavk_last_error(nullptr), value.c_str()) != nullptr;
      }
      EXPECT_EQ(gqavk_decode_plan_destroy(plan), GQAVK_SUCCESS);
      EXPECT_EQ(gqavk_kv_cache_destroy(cache), GQAVK_SUCCESS);
      uint32_t count = 99;
      if (ctx != nullptr) {
        EXPECT_EQ(gqavk_context_validation_message_count(ctx, &count), GQAVK_SUCCESS);
        EXPECT_EQ(count, 0u);
      }
      EXPECT_EQ(gqavk_context_destroy(ctx), GQAVK_SUCCESS);
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_GE(worst[t], 0.0) << "thread " << t << " made no plan";
    EXPECT_LE(worst[t], kAtol) << "thread " << t << ": " << failure[t];
    EXPECT_TRUE(own_message[t]) << "thread " << t;
    EXPECT_TRUE(others_clean[t]) << "thread " << t;
    EXPECT_EQ(messages[t].load(), 0u) << "thread " << t;
  }
}

// (b) One context and cache shared by 4 threads, serialised by one mutex as gqavk.h asks: each
// thread makes its own plan (its own scale) and runs it several times; every result is right.
TEST(CApiThreads, OneContextSharedUnderAMutex) {
  constexpr int kThreads = 4, kRuns = 4;
  std::atomic<uint32_t> messages{0};
  const uint32_t lengths[kSlots] = {5, kCap, 17, 1};
  const KvHost kv = host_kv(7);
  gqavk_context* ctx = make_context(&messages);
  ASSERT_NE(ctx, nullptr);
  gqavk_kv_cache* cache = make_cache(ctx, kv, lengths);
  ASSERT_NE(cache, nullptr);
  std::mutex mutex;  // the application's lock for the context and everything made from it
  double worst[kThreads] = {-1, -1, -1, -1};
  std::string failure[kThreads];
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const float scale = 0.05f * static_cast<float>(t + 1);
      gqavk_decode_plan* plan = nullptr;
      {
        std::lock_guard<std::mutex> hold(mutex);
        plan = make_plan(ctx, cache, scale);
      }
      if (plan == nullptr) return;
      worst[t] = 0;
      for (int r = 0; r < kRuns; ++r) {
        std::lock_guard<std::mutex> hold(mutex);
        worst[t] =
            std::max(worst[t], decode_error(plan, kv, lengths, scale, 40 * t + r, &failure[t]));
      }
      std::lock_guard<std::mutex> hold(mutex);
      EXPECT_EQ(gqavk_decode_plan_destroy(plan), GQAVK_SUCCESS);
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_GE(worst[t], 0.0) << "thread " << t << " made no plan";
    EXPECT_LE(worst[t], kAtol) << "thread " << t << ": " << failure[t];
  }
  EXPECT_EQ(gqavk_kv_cache_destroy(cache), GQAVK_SUCCESS);
  uint32_t count = 99;
  EXPECT_EQ(gqavk_context_validation_message_count(ctx, &count), GQAVK_SUCCESS);
  EXPECT_EQ(count, 0u);
  EXPECT_EQ(messages.load(), 0u);
  EXPECT_EQ(gqavk_context_destroy(ctx), GQAVK_SUCCESS);
}

// (c) The functions callable from any thread at any time: gqavk_list_devices and
// gqavk_kv_cache_plan_memory (each thread's answers equal the single-threaded ones), models (one
// per thread) and strings; each thread's own failures are what gqavk_last_error(NULL) names there.
TEST(CApiThreads, DeviceFreeFunctionsFromManyThreads) {
  constexpr int kThreads = 6, kRounds = 8;
  uint32_t devices = 0;
  ASSERT_EQ(gqavk_list_devices(&devices, nullptr), GQAVK_SUCCESS);
  ASSERT_GE(devices, 1u);
  std::vector<gqavk_device_info> want_devices(devices);
  for (gqavk_device_info& d : want_devices) d.struct_size = sizeof(d);
  ASSERT_EQ(gqavk_list_devices(&devices, want_devices.data()), GQAVK_SUCCESS);
  gqavk_kv_memory want_memory{};
  want_memory.struct_size = sizeof(want_memory);
  const gqavk_kv_cache_create_info info = cache_info();
  ASSERT_EQ(gqavk_kv_cache_plan_memory(&info, &want_memory), GQAVK_SUCCESS);

  std::atomic<int> wrong{0};
  std::vector<std::string> notes(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const auto note = [&](const std::string& what) {
        ++wrong;
        if (notes[t].empty()) notes[t] = what;
      };
      for (int r = 0; r < kRounds; ++r) {
        if (t % 2 == 0 || r < 2) {  // a few listings (each makes an instance), many plans
          uint32_t n = devices;
          std::vector<gqavk_device_info> got(devices);
          for (gqavk_device_info& d : got) d.struct_size = sizeof(d);
          if (gqavk_list_devices(&n, got.data()) != GQAVK_SUCCESS || n != devices) {
            note("list_devices: " + std::string(gqavk_last_error(nullptr)));
          }
          for (uint32_t i = 0; i < n && i < devices; ++i) {
            if (std::strcmp(got[i].name, want_devices[i].name) != 0 ||
                got[i].device_id != want_devices[i].device_id) {
              note("list_devices: device " + std::to_string(i) + " is " + got[i].name);
            }
          }
        }
        gqavk_kv_cache_create_info mine = cache_info();
        mine.capacity_tokens = kCap * (1 + r);
        gqavk_kv_memory memory{};
        memory.struct_size = sizeof(memory);
        if (gqavk_kv_cache_plan_memory(&mine, &memory) != GQAVK_SUCCESS ||
            memory.block_bytes != want_memory.block_bytes ||
            memory.pool_blocks != kSlots * (mine.capacity_tokens / kBlock) + 1) {
          note("plan_memory round " + std::to_string(r));
        }
        // A refusal of this thread's own: a head dim no other thread uses.
        mine.head_dim = 1000 + 10 * t + r;
        const std::string value = "head_dim " + std::to_string(mine.head_dim);
        if (gqavk_kv_cache_plan_memory(&mine, &memory) != GQAVK_ERROR_INVALID_ARGUMENT ||
            std::strstr(gqavk_last_error(nullptr), value.c_str()) == nullptr) {
          note("last_error(NULL) = '" + std::string(gqavk_last_error(nullptr)) + "', not " + value);
        }
        // A model of this thread's own.
        gqavk_model* model = nullptr;
        const std::string name = "model " + std::to_string(t);
        gqavk_layer_desc layer{};
        layer.struct_size = sizeof(layer);
        layer.q_heads = kH * (t + 1);
        layer.kv_heads = kG;
        layer.head_dim = kD;
        const char* got_name = nullptr;
        uint32_t layers = 0;
        if (gqavk_model_create(name.c_str(), &model) != GQAVK_SUCCESS ||
            gqavk_model_add_layer(model, &layer) != GQAVK_SUCCESS ||
            gqavk_model_add_layer(model, &layer) != GQAVK_SUCCESS ||
            gqavk_model_validate(model) != GQAVK_SUCCESS ||
            gqavk_model_layer_count(model, &layers) != GQAVK_SUCCESS || layers != 2 ||
            gqavk_model_name(model, &got_name) != GQAVK_SUCCESS || name != got_name ||
            gqavk_model_layer(model, 1, &layer) != GQAVK_SUCCESS || layer.q_heads != kH * (t + 1)) {
          note("model: " + std::string(gqavk_last_error(nullptr)));
        }
        gqavk_model_destroy(model);
        if (std::strcmp(gqavk_status_string(GQAVK_ERROR_IN_USE), "GQAVK_ERROR_IN_USE") != 0 ||
            std::strcmp(gqavk_dtype_string(GQAVK_DTYPE_BF16), "bf16") != 0) {
          note("strings");
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(notes[t], "") << "thread " << t;
}

}  // namespace
}  // namespace gqavk::test
