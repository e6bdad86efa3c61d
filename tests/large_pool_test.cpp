// A KV pool larger than one storage binding can span (lavapipe's maxStorageBufferRange is
// 128 MiB): decode and prefill read tokens from every part of it, through the automatic load path
// and through the pool's device address (GQAVK_KV_LOAD=address), on both kernel tiers, against
// the float64 reference. Half the sequences are written by the host and half by the device's
// append kernel (which also writes through the address). Every sequence is written to its capacity,
// so the pool's blocks are all in use; one KV head of 64 f32 values keeps the kernels cheap.
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "decode_plan_impl.hpp"
#include "gqavk/device_buffer.hpp"  // which load path a plan chose
#include "prefill_plan_impl.hpp"    // the same for prefill
#include "reference.hpp"
#include "test_support.hpp"
#include "tuning.hpp"

namespace gqavk::test {
namespace {

constexpr uint32_t kH = 2, kG = 1, kD = 64, kCapacity = 8192, kBatch = 40;
constexpr double kAtol = 1e-5;  // as decode_test.cpp: f32 arithmetic against float64

class LargePool : public GpuTest {
 protected:
  // 40 sequences x 8192 tokens x 512 bytes (K and V of 64 f32): 160 MiB.
  void SetUp() override {
    GpuTest::SetUp();
    const uint64_t bytes = uint64_t{kBatch} * kCapacity * kG * kD * 4 * 2;
    const DeviceInfo& dev = context().device();
    if (bytes <= dev.max_storage_buffer_range) {
      GTEST_SKIP() << "this device binds the whole pool as one storage buffer";
    }
    if (!dev.buffer_device_address) GTEST_SKIP() << "no bufferDeviceAddress on " << dev.name;
    cache_.emplace(context(), KvCacheDesc{kBatch, kG, kD, kCapacity, DType::f32, 16});
    ASSERT_EQ(cache_->bytes(), bytes + 16 * 512);  // and the reserved zero block
    for (uint32_t b = 0; b < kBatch; ++b) {
      KvHost kv = random_kv({1, kG, kD, kCapacity, DType::f32}, 500 + b);
      const std::vector<float> k = kv.slice_k(0, 0, kCapacity), v = kv.slice_v(0, 0, kCapacity);
      if (b % 2 == 0) {
        cache_->write(b, 0, kCapacity, k, v);
      } else {  // the device writes odd sequences, through the pool's address ([L, G, D], G 1)
        std::vector<KvToken> tokens(kCapacity);
        for (uint32_t t = 0; t < kCapacity; ++t) tokens[t] = {b, t};
        DeviceBuffer kd(context(), k.size() * 4), vd(context(), v.size() * 4);
        kd.upload(std::as_bytes(std::span(k)));
        vd.upload(std::as_bytes(std::span(v)));
        cache_->append(0, tokens, kd, vd);
      }
      written_.emplace(b, std::move(kv));
    }
    ASSERT_EQ(cache_->memory().blocks_free, 0u);  // tokens in every part of the pool
  }

  std::vector<uint32_t> lengths() const { return std::vector<uint32_t>(kBatch, kCapacity); }

  // Runs a decode plan made under the current environment, checks every sequence, and returns the
  // load path it took.
  LoadPath check_decode() {
    DecodePlan plan(context(), *cache_, {kH, std::nullopt, 0});
    const std::vector<float> q = random_values(size_t{kBatch} * kH * kD, 510, -2.0f, 2.0f);
    const std::vector<float> out = plan.run(q, lengths());
    const size_t row = size_t{kH} * kD;
    for (uint32_t b = 0; b < kBatch; ++b) {
      const std::span<const float> got(out.data() + b * row, row);
      const KvHost& kv = written_.at(b);
      ref::Options o;
      o.scale = 1.0 / std::sqrt(double{kD});
      const std::vector<double> want =
          ref::attention(std::span(q).subspan(b * row, row), kv.k_of(0), kv.v_of(0), kH, kG, 1,
                         kCapacity, kD, kD, kCapacity, o);
      EXPECT_TRUE(all_close(got, want, kH, kD, kAtol)) << "sequence " << b;
    }
    return impl_of(plan).tuning.load_path;
  }

  // The same for a prefill plan: the last three queries of each sequence, causal.
  LoadPath check_prefill() {
    PrefillDesc d;
    d.q_heads = kH;
    PrefillPlan plan(context(), *cache_, d);
    std::vector<PrefillSeq> seqs;
    for (const auto& [b, kv] : written_) seqs.push_back({b, 3, kCapacity});
    const size_t per_seq = size_t{kH} * 3 * kD;
    const std::vector<float> q = random_values(per_seq * written_.size(), 520, -2.0f, 2.0f);
    const std::vector<float> out = plan.run(q, seqs);
    size_t at = 0;
    for (const PrefillSeq& s : seqs) {
      const size_t n = size_t{kH} * s.queries * kD;
      const std::span<const float> got(out.data() + at, n);
      const KvHost& kv = written_.at(s.seq);
      const std::vector<double> want =
          ref::attention(std::span(q).subspan(at, n), kv.k_of(0), kv.v_of(0), kH, kG, s.queries,
                         s.kv_length, kD, kD, kCapacity, {});
      EXPECT_TRUE(all_close(got, want, kH, kD, kAtol)) << "sequence " << s.seq;
      at += n;
    }
    return impl_of(plan).tuning.load_path;
  }

  std::optional<KvCache> cache_;
  std::map<uint32_t, KvHost> written_;
};

// The automatic choice binds what the device allows (lavapipe: its texel view spans 2 GiB), and
// the address path reads the same tokens on both tiers.
TEST_F(LargePool, DecodeReadsEveryPart) {
  {
    ScopedEnv load("GQAVK_KV_LOAD", nullptr);
    const LoadPath automatic = check_decode();
    EXPECT_NE(automatic, LoadPath::storage) << "a storage binding cannot span the pool";
    EXPECT_GE(max_binding_bytes(context().device(), automatic), cache_->bytes());
  }
  ScopedEnv load("GQAVK_KV_LOAD", "address");
  for (const char* tier : {"cpu", "gpu"}) {
    SCOPED_TRACE(std::string(tier) + " tier");
    ScopedEnv env("GQAVK_TIER", tier);
    EXPECT_EQ(check_decode(), LoadPath::address);
  }
}

TEST_F(LargePool, PrefillReadsEveryPart) {
  ScopedEnv load("GQAVK_KV_LOAD", "address");
  for (const char* tier : {"cpu", "gpu"}) {
    SCOPED_TRACE(std::string(tier) + " tier");
    ScopedEnv env("GQAVK_TIER", tier);
    EXPECT_EQ(check_prefill(), LoadPath::address);
  }
}

}  // namespace
}  // namespace gqavk::test
