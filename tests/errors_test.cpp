// Every error the API reports: each test checks the gqavk::Error code and that the message names
// the bad value and what was expected. Rejected calls leave nothing half-written.
#include <limits.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "decode_pipelines.hpp"
#include "pipeline_statistics.hpp"
#include "test_support.hpp"

namespace gqavk::test {
namespace {

constexpr ErrorCode kInvalid = ErrorCode::invalid_argument;

class Errors : public GpuTest {};

// ---------------------------------------------------------------------------------------------
// KvCacheDesc

KvCacheDesc good_desc() { return {2, 2, 64, 32, DType::f32, 16}; }

TEST_F(Errors, CacheBatchZero) {
  KvCacheDesc d = good_desc();
  d.batch = 0;
  EXPECT_TRUE(throws_error([&] { KvCache c(context(), d); }, kInvalid,
                           {"batch is 0", "expected at least 1"}));
}

TEST_F(Errors, CacheKvHeadsZero) {
  KvCacheDesc d = good_desc();
  d.kv_heads = 0;
  EXPECT_TRUE(throws_error([&] { KvCache c(context(), d); }, kInvalid,
                           {"kv_heads is 0", "expected at least 1"}));
}

TEST_F(Errors, CacheCapacityZero) {
  KvCacheDesc d = good_desc();
  d.capacity_tokens = 0;
  EXPECT_TRUE(throws_error([&] { KvCache c(context(), d); }, kInvalid,
                           {"capacity_tokens is 0", "expected at least 1"}));
}

TEST_F(Errors, CacheUnsupportedHeadDim) {
  for (uint32_t head_dim : {100u, 0u, 512u, 32u, 65u}) {
    KvCacheDesc d = good_desc();
    d.head_dim = head_dim;
    EXPECT_TRUE(throws_error([&] { KvCache c(context(), d); }, kInvalid,
                             {"head_dim " + std::to_string(head_dim),
                              "expected one of 64, 80, 96, 112, 128, 192, 256"}));
  }
}

// q4 packs 32 values per texel: Dk 80 and 112 cannot fill whole texels.
TEST_F(Errors, CacheQ4HeadDimNotAMultipleOf32) {
  for (uint32_t head_dim : {80u, 112u}) {
    KvCacheDesc d = good_desc();
    d.dtype = DType::q4;
    d.head_dim = head_dim;
    EXPECT_TRUE(throws_error([&] { KvCache c(context(), d); }, kInvalid,
                             {"head dim " + std::to_string(head_dim), "q4", "multiple of 32"}));
  }
  KvCacheDesc d = good_desc();
  d.dtype = DType::q8;
  d.head_dim = 80;
  KvCache q8_80(context(), d);  // q8 packs 16: every supported head dim fits
}

TEST_F(Errors, ParseDtype) {
  EXPECT_EQ(parse_dtype("bf16"), DType::bf16);
  EXPECT_EQ(parse_dtype("q4"), DType::q4);
  EXPECT_TRUE(throws_error([] { parse_dtype("q5"); }, kInvalid,
                           {"dtype 'q5'", "expected f32, f16, bf16, q8 or q4"}));
}

TEST_F(Errors, CacheBadBlockTokens) {
  for (uint32_t block : {0u, 3u, 512u, 24u}) {
    KvCacheDesc d = good_desc();
    d.block_tokens = block;
    EXPECT_TRUE(throws_error(
        [&] { KvCache c(context(), d); }, kInvalid,
        {"block_tokens " + std::to_string(block), "expected a power of two from 1 to 256"}));
  }
}

// A pool no allocation of the device can hold (8 TiB; lavapipe allocates at most 2 GiB), or no
// load path can address, is rejected before anything is allocated.
TEST_F(Errors, CacheTooLargeForDevice) {
  const KvCacheDesc d{64, 64, 256, 1u << 20, DType::f32, 256};
  // Blocks of K and V (64 heads x 256 tokens x 256 values, f32) for every token, and block 0.
  const uint64_t pool_bytes = 2ull * 64 * 256 * 256 * 4 * (64ull * 4096 + 1);
  const uint64_t alloc = context().device().max_memory_allocation_size;
  EXPECT_TRUE(throws_error([&] { KvCache c(context(), d); }, ErrorCode::unsupported,
                           {std::to_string(pool_bytes) + " bytes", context().device().name,
                            alloc && pool_bytes > alloc
                                ? "maxMemoryAllocationSize of " + std::to_string(alloc) + " bytes"
                                : std::string("binds at most")}));
}

// ---------------------------------------------------------------------------------------------
// DecodeDesc

TEST_F(Errors, PlanQHeadsNotAMultipleOfKvHeads) {
  KvCache cache(context(), {1, 4, 64, 16, DType::f16, 16});
  EXPECT_TRUE(throws_error(
      [&] {
        DecodePlan p(context(), cache, {6, std::nullopt, 0});
      },
      kInvalid, {"q_heads 6", "kv_heads 4", "H % G == 0"}));
  EXPECT_TRUE(throws_error(
      [&] {
        DecodePlan p(context(), cache, {2, std::nullopt, 0});
      },
      kInvalid, {"q_heads 2", "kv_heads 4", "H % G == 0"}));
}

TEST_F(Errors, PlanQHeadsZero) {
  KvCache cache(context(), good_desc());
  EXPECT_TRUE(throws_error(
      [&] {
        DecodePlan p(context(), cache, {0, std::nullopt, 0});
      },
      kInvalid, {"q_heads 0", "positive multiple"}));
}

TEST_F(Errors, PlanBadScale) {
  KvCache cache(context(), good_desc());
  const float inf = std::numeric_limits<float>::infinity();
  const std::pair<float, const char*> cases[] = {{0.0f, "0"},  {-0.0f, "0"}, {-1.0f, "-1"},
                                                 {NAN, "nan"}, {inf, "inf"}, {-inf, "-inf"}};
  for (const auto& [scale, text] : cases) {
    EXPECT_TRUE(throws_error(
        [&] {
          DecodePlan p(context(), cache, {4, scale, 0});
        },
        kInvalid, {"scale", text, "expected a finite value > 0"}))
        << "scale " << scale;
  }
}

TEST_F(Errors, PlanMaxSplitsTooLarge) {
  KvCache cache(context(), good_desc());
  for (uint32_t splits : {1025u, 100000u, UINT32_MAX}) {
    EXPECT_TRUE(throws_error(
        [&] {
          DecodePlan p(context(), cache, {4, std::nullopt, splits});
        },
        kInvalid, {"max_splits " + std::to_string(splits), "1 to 1024"}));
  }
}

// Model options (DecodeDesc window, softcap, sinks): softcap finite and > 0; sinks empty or one
// finite logit per query head; any window (0 none, W >= 1 the last W keys) is valid.
TEST_F(Errors, PlanBadSoftcap) {
  KvCache cache(context(), good_desc());
  const float inf = std::numeric_limits<float>::infinity();
  const std::pair<float, const char*> cases[] = {
      {0.0f, "softcap 0 "}, {-1.0f, "softcap -1 "}, {NAN, "softcap nan"}, {inf, "softcap inf"}};
  for (const auto& [cap, text] : cases) {
    DecodeDesc d{4, std::nullopt, 0};
    d.softcap = cap;
    EXPECT_TRUE(throws_error([&] { DecodePlan p(context(), cache, d); }, kInvalid,
                             {text, "is not valid (expected a finite value > 0)"}))
        << "softcap " << cap;
  }
}

TEST_F(Errors, PlanBadSinks) {
  KvCache cache(context(), good_desc());
  DecodeDesc d{4, std::nullopt, 0};
  d.sinks = {0.0f, 1.0f, 2.0f};
  EXPECT_TRUE(throws_error([&] { DecodePlan p(context(), cache, d); }, kInvalid,
                           {"sinks has 3 values; expected one per query head (4)"}));
  d.sinks = {0.0f, NAN, 2.0f, 3.0f};
  EXPECT_TRUE(throws_error([&] { DecodePlan p(context(), cache, d); }, kInvalid,
                           {"sinks[1] = nan", "expected a finite logit"}));
  d.sinks = {0.0f, 1.0f, 2.0f, -std::numeric_limits<float>::infinity()};
  EXPECT_TRUE(throws_error([&] { DecodePlan p(context(), cache, d); }, kInvalid,
                           {"sinks[3] = -inf", "expected a finite logit"}));
}

TEST_F(Errors, PlanAnyWindowIsValid) {
  KvCache cache(context(), good_desc());
  for (uint32_t window : {1u, 31u, 32u, 1000u, UINT32_MAX}) {
    DecodeDesc d{4, std::nullopt, 1};
    d.window = window;
    EXPECT_NO_THROW(DecodePlan(context(), cache, d)) << "window " << window;
  }
}

TEST_F(Errors, PlanWindowZero) {
  KvCache cache(context(), good_desc());
  DecodeDesc d{4, std::nullopt, 1};
  d.window = 0;
  EXPECT_TRUE(throws_error([&] { DecodePlan p(context(), cache, d); }, kInvalid,
                           {"window 0 is not valid", "at least 1 key, or none"}));
}

TEST_F(Errors, PlanCacheFromAnotherContext) {
  Context other;
  KvCache cache(other, good_desc());
  EXPECT_TRUE(throws_error(
      [&] {
        DecodePlan p(context(), cache, {4, std::nullopt, 0});
      },
      kInvalid, {"another context"}));
}

TEST_F(Errors, PlanBadEnvironmentOverrides) {
  KvCache cache(context(), good_desc());
  {
    ScopedEnv env("GQAVK_KV_LOAD", "fast");
    EXPECT_TRUE(throws_error(
        [&] {
          DecodePlan p(context(), cache, {4, std::nullopt, 0});
        },
        kInvalid, {"GQAVK_KV_LOAD='fast'", "expected texel, storage, image or address"}));
  }
  {
    ScopedEnv env("GQAVK_REDUCTION", "warp");
    EXPECT_TRUE(throws_error(
        [&] {
          DecodePlan p(context(), cache, {4, std::nullopt, 0});
        },
        kInvalid, {"GQAVK_REDUCTION='warp'", "expected subgroup or shared"}));
  }
}

// A pool past maxStorageBufferRange (lavapipe: 128 MiB) but within the texel limit: forcing the
// storage path cannot bind it.
TEST_F(Errors, PlanPoolTooLargeForForcedLoadPath) {
  const DeviceInfo& dev = context().device();
  const uint64_t storage = dev.max_storage_buffer_range;
  const uint64_t texel = dev.max_texel_buffer_elements * 16;
  const uint64_t per_token = 2ull * 8 * 128 * 2;  // K and V of 8 heads of 128 f16
  const uint64_t tokens = (storage / per_token + 16) / 16 * 16;
  if (tokens * per_token > texel || tokens > UINT32_MAX || tokens * per_token > (1ull << 30)) {
    GTEST_SKIP() << "this device's binding limits leave no such pool size";
  }
  KvCache cache(context(), {1, 8, 128, static_cast<uint32_t>(tokens), DType::f16, 16});
  ScopedEnv env("GQAVK_KV_LOAD", "storage");
  EXPECT_TRUE(throws_error(
      [&] {
        DecodePlan p(context(), cache, {8, std::nullopt, 0});
      },
      ErrorCode::unsupported, {std::to_string(cache.bytes()) + " bytes", std::to_string(storage)}));
}

// ---------------------------------------------------------------------------------------------
// KvCache::write and write_f16

class WriteErrors : public Errors {
 protected:
  // G=2, D=64, capacity 32: [G, n, D] holds 128 * n values.
  KvCache cache{context(), good_desc()};
  std::vector<float> k4 = std::vector<float>(2 * 4 * 64, 0.5f);
};

TEST_F(WriteErrors, SequenceOutOfRange) {
  EXPECT_TRUE(throws_error([&] { cache.write(2, 0, 4, k4, k4); }, kInvalid,
                           {"sequence 2", "cache has 2 sequence slots"}));
}

TEST_F(WriteErrors, TokensBeyondCapacity) {
  EXPECT_TRUE(throws_error([&] { cache.write(0, 30, 4, k4, k4); }, kInvalid,
                           {"tokens [30, 34)", "capacity of 32 tokens"}));
  EXPECT_TRUE(throws_error([&] { cache.write(1, UINT32_MAX, 4, k4, k4); }, kInvalid,
                           {"tokens [4294967295, 4294967299)", "capacity of 32 tokens"}));
}

TEST_F(WriteErrors, ZeroTokens) {
  EXPECT_TRUE(throws_error([&] { cache.write(0, 0, 0, {}, {}); }, kInvalid,
                           {"n_tokens is 0", "expected at least 1"}));
}

TEST_F(WriteErrors, KSizeMismatch) {
  const std::vector<float> k_short(2 * 4 * 64 - 1, 0.5f);
  EXPECT_TRUE(throws_error([&] { cache.write(0, 0, 4, k_short, k4); }, kInvalid,
                           {"got k 511 and v 512", "= 512 values", "[2, 4, 64]"}));
}

TEST_F(WriteErrors, VSizeMismatch) {
  const std::vector<float> v_long(2 * 5 * 64, 0.5f);
  EXPECT_TRUE(throws_error([&] { cache.write(0, 0, 4, k4, v_long); }, kInvalid,
                           {"got k 512 and v 640", "= 512 values"}));
}

TEST_F(WriteErrors, WriteF16OnF32Cache) {
  const std::vector<uint16_t> h(2 * 4 * 64, 0x3c00);
  EXPECT_TRUE(throws_error([&] { cache.write_f16(0, 0, 4, h, h); }, kInvalid,
                           {"write_f16 needs an f16 cache", "stores f32"}));
}

TEST_F(Errors, WriteF16Checks) {
  KvCacheDesc d = good_desc();
  d.dtype = DType::f16;
  KvCache cache(context(), d);
  const std::vector<uint16_t> h(2 * 4 * 64, 0x3c00);
  const std::vector<uint16_t> h_short(2 * 4 * 64 - 2, 0x3c00);
  EXPECT_TRUE(throws_error([&] { cache.write_f16(0, 0, 4, h, h_short); }, kInvalid,
                           {"got k 512 and v 510", "= 512 values"}));
  EXPECT_TRUE(throws_error([&] { cache.write_f16(0, 29, 4, h, h); }, kInvalid,
                           {"tokens [29, 33)", "capacity of 32 tokens"}));
  EXPECT_TRUE(throws_error([&] { cache.write_f16(5, 0, 4, h, h); }, kInvalid,
                           {"sequence 5", "cache has 2 sequence slots"}));
  EXPECT_TRUE(throws_error([&] { cache.write_f16(0, 0, 0, {}, {}); }, kInvalid, {"n_tokens is 0"}));
}

// A finite float beyond f16's range would round to infinity: the write throws and names it.
// 65519 still rounds down to 65504, the largest finite f16; from 65520 rounding overflows.
TEST_F(Errors, WriteF16Overflow) {
  KvCacheDesc d = good_desc();
  d.dtype = DType::f16;
  KvCache cache(context(), d);
  std::vector<float> k(2 * 4 * 64, 0.5f), v = k;
  k[300] = 65519.0f;
  v[7] = -65519.0f;
  const std::vector<float> first(2 * 10 * 64, 0.5f);
  cache.write(1, 0, 10, first, first);
  cache.write(1, 10, 4, k, v);
  v[7] = -65520.0f;
  EXPECT_TRUE(
      throws_error([&] { cache.write(1, 10, 4, k, v); }, kInvalid,
                   {"v[7] = -65520", "KV head 0, token 10, dim 7", "overflows f16", "65504"}));
  v[7] = 0.5f;
  k[300] = 1e30f;
  EXPECT_TRUE(throws_error([&] { cache.write(1, 10, 4, k, v); }, kInvalid,
                           {"k[300]", "KV head 1, token 10, dim 44", "overflows f16"}));
  // Infinity and NaN are stored as they are, as in an f32 cache.
  k[300] = std::numeric_limits<float>::infinity();
  v[7] = NAN;
  cache.write(1, 10, 4, k, v);
}

// write_f16 takes f16 bits for an f16 cache only; the narrow types encode floats.
TEST_F(Errors, WriteF16OnNarrowCaches) {
  for (DType dtype : {DType::bf16, DType::q8, DType::q4}) {
    KvCacheDesc d = good_desc();
    d.dtype = dtype;
    KvCache cache(context(), d);
    const std::vector<uint16_t> h(2 * 4 * 64, 0x3c00);
    EXPECT_TRUE(
        throws_error([&] { cache.write_f16(0, 0, 4, h, h); }, kInvalid,
                     {"write_f16 needs an f16 cache", std::string("stores ") + to_string(dtype)}));
  }
}

// q8 and q4 cannot quantise infinity or NaN (the row's scale would be lost), bf16 rounds a finite
// value past its range to infinity, and q4's f16 scale (amax / 7) has f16's range: each is refused,
// naming the value.
TEST_F(Errors, WriteValuesANarrowTypeCannotHold) {
  std::vector<float> k(2 * 4 * 64, 0.5f), v = k;
  for (DType dtype : {DType::q8, DType::q4}) {
    KvCacheDesc d = good_desc();
    d.dtype = dtype;
    KvCache cache(context(), d);
    v[7] = NAN;
    EXPECT_TRUE(
        throws_error([&] { cache.write(1, 10, 4, k, v); }, kInvalid,
                     {"v[7]", "KV head 0, token 10, dim 7", "not finite", to_string(dtype)}));
    v[7] = 0.5f;
    k[300] = -std::numeric_limits<float>::infinity();
    EXPECT_TRUE(throws_error([&] { cache.write(1, 10, 4, k, v); }, kInvalid,
                             {"k[300]", "not finite", "expected a finite value"}));
    k[300] = 0.5f;
  }
  KvCacheDesc d = good_desc();
  d.dtype = DType::q4;
  KvCache q4(context(), d);
  k[3] = 5e5f;
  EXPECT_TRUE(
      throws_error([&] { q4.write(0, 0, 4, k, v); }, kInvalid, {"k[3]", "q4 scale", "458640"}));
  k[3] = 4e5f;  // a scale of 57143 still fits f16
  q4.write(0, 0, 4, k, v);
  d.dtype = DType::bf16;
  KvCache bf16(context(), d);
  k[3] = 3.4e38f;
  EXPECT_TRUE(
      throws_error([&] { bf16.write(0, 0, 4, k, v); }, kInvalid, {"k[3]", "overflows bf16"}));
  k[3] = std::numeric_limits<float>::infinity();  // stored as it is, as f16 and f32 store it
  bf16.write(0, 0, 4, k, v);
}

// ---------------------------------------------------------------------------------------------
// DecodePlan::run. Cache: B=2, G=2, D=64, capacity 32; plan H=4, so q and out hold 512 values.

class RunErrors : public Errors {
 protected:
  KvCache cache{context(), good_desc()};
  DecodePlan plan{context(), cache, {4, std::nullopt, 1}};
  std::vector<float> q = std::vector<float>(2 * 4 * 64, 0.25f);
  std::vector<float> out = std::vector<float>(2 * 4 * 64, 0.0f);
  std::vector<uint32_t> lengths = {32, 5};

  void SetUp() override {
    const std::vector<float> kv(2 * 32 * 64, 0.5f);
    cache.write(0, 0, 32, kv, kv);
    cache.write(1, 0, 8, std::span(kv).first(2 * 8 * 64), std::span(kv).first(2 * 8 * 64));
  }
};

// A length past what was written, and a closed sequence, are refused: the kernel would read
// blocks the sequence does not hold.
TEST_F(RunErrors, LengthBeyondWrittenTokens) {
  lengths = {32, 9};
  EXPECT_TRUE(throws_error([&] { plan.run(q, lengths, out); }, kInvalid,
                           {"lengths[1] = 9", "exceeds the 8 tokens written to sequence 1"}));
  cache.free_sequence(1);
  lengths = {32, 5};
  EXPECT_TRUE(throws_error([&] { plan.run(q, lengths, out); }, kInvalid,
                           {"lengths[1]", "sequence 1 is not open"}));
}

TEST_F(RunErrors, LengthBeyondCapacity) {
  lengths = {5, 33};
  EXPECT_TRUE(throws_error([&] { plan.run(q, lengths, out); }, kInvalid,
                           {"lengths[1] = 33", "expected 1 to the cache capacity 32"}));
}

TEST_F(RunErrors, LengthZero) {
  lengths = {0, 5};
  EXPECT_TRUE(throws_error([&] { plan.run(q, lengths, out); }, kInvalid,
                           {"lengths[0] = 0", "expected 1 to the cache capacity 32"}));
}

TEST_F(RunErrors, LengthsCountNotBatch) {
  for (std::vector<uint32_t> bad : {std::vector<uint32_t>{5}, std::vector<uint32_t>{5, 5, 5}}) {
    EXPECT_TRUE(throws_error(
        [&] { plan.run(q, bad, out); }, kInvalid,
        {"lengths has " + std::to_string(bad.size()) + " entries", "one per sequence (2)"}));
  }
}

TEST_F(RunErrors, QSizeMismatch) {
  q.resize(511);
  EXPECT_TRUE(throws_error([&] { plan.run(q, lengths, out); }, kInvalid,
                           {"q has 511 values", "expected 512", "[B, H, D] = [2, 4, 64]"}));
  EXPECT_TRUE(throws_error([&] { (void)plan.run(q, lengths); }, kInvalid, {"q has 511 values"}));
}

TEST_F(RunErrors, OutSizeMismatch) {
  out.resize(1000);
  EXPECT_TRUE(
      throws_error([&] { plan.run(q, lengths, out); }, kInvalid,
                   {"out has room for 1000 values", "expected 512", "[B, H, D] = [2, 4, 64]"}));
}

// Dk 192, Dv 128: q is [B, H, Dk] and out [B, H, Dv], and the messages say which. (Nothing runs
// here, so lavapipe compiles nothing; DecodeOptions.KeyDim192ValueDim128 runs such plans.)
TEST_F(Errors, RunShapesWithKeyAndValueDims) {
  KvCacheDesc desc{2, 2, 192, 32, DType::f16, 16};
  desc.v_head_dim = 128;
  KvCache cache(context(), desc);
  DecodePlan plan(context(), cache, {4, std::nullopt, 1});
  const std::vector<uint32_t> lengths = {32, 5};
  std::vector<float> q(2 * 4 * 192, 0.25f), out(2 * 4 * 128);
  std::vector<float> out_dk(2 * 4 * 192);
  EXPECT_TRUE(
      throws_error([&] { plan.run(q, lengths, out_dk); }, kInvalid,
                   {"out has room for 1536 values", "expected 1024", "[B, H, Dv] = [2, 4, 128]"}));
  std::vector<float> q_dv(2 * 4 * 128, 0.25f);
  EXPECT_TRUE(throws_error([&] { plan.run(q_dv, lengths, out); }, kInvalid,
                           {"q has 1024 values", "expected 1536", "[B, H, Dk] = [2, 4, 192]"}));
}

// The message says which value is bad (its index, NaN or inf) and that finite values were expected.
TEST_F(RunErrors, QWithNaNOrInfinity) {
  const float inf = std::numeric_limits<float>::infinity();
  for (const auto& [bad, name] : {std::pair{NAN, "nan"}, std::pair{-inf, "inf"}}) {
    std::vector<float> q_bad = q;
    q_bad[300] = bad;
    try {
      plan.run(q_bad, lengths, out);
      ADD_FAILURE() << "q with " << name << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), kInvalid);
      std::string lower = e.what();
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      for (const char* part : {"q[300]", name, "finite"}) {
        EXPECT_NE(lower.find(part), std::string::npos)
            << "does not name '" << part << "': " << e.what();
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Nothing is half-written: rejected writes leave the cache as it was (the decode output is
// identical, bit for bit), and a rejected run leaves `out` untouched.

TEST_F(Errors, RejectedCallsChangeNothing) {
  for (DType dtype : {DType::f32, DType::f16}) {
    SCOPED_TRACE(to_string(dtype));
    const KvCacheDesc desc{2, 2, 64, 32, dtype, 16};
    KvCache cache(context(), desc);
    const KvHost kv = random_kv(desc, 1);
    write_all(cache, kv);
    DecodePlan plan(context(), cache, {2, std::nullopt, 1});
    const std::vector<float> q = random_values(2 * 2 * 64, 2);
    const std::vector<uint32_t> lengths = {32, 32};
    const std::vector<float> before = plan.run(q, lengths);

    // Other values, so a partial write would show; each call is rejected.
    const KvHost other = random_kv(desc, 3);
    const std::vector<float> k20 = other.slice_k(0, 0, 20);
    const std::vector<float> v20 = other.slice_v(0, 0, 20);
    const std::vector<float> v19 = other.slice_v(0, 0, 19);
    EXPECT_THROW(cache.write(0, 20, 20, k20, v20), Error);  // tokens [20, 40): past capacity
    EXPECT_THROW(cache.write(1, 0, 20, k20, v19), Error);   // v too short
    EXPECT_THROW(cache.write(0, 0, 12, k20, v20), Error);   // k and v too long
    EXPECT_THROW(cache.write(2, 0, 20, k20, v20), Error);   // no sequence 2
    if (dtype == DType::f16) {  // the last value overflows f16: checked before anything is copied
      std::vector<float> v_big = v20;
      v_big.back() = 1e6f;
      EXPECT_THROW(cache.write(0, 0, 20, k20, v_big), Error);
    }
    std::vector<uint16_t> kh(k20.size()), vh(v20.size());
    floats_to_halves(k20, kh);
    floats_to_halves(v20, vh);
    EXPECT_THROW(cache.write_f16(1, 13, 20, kh, vh), Error);  // past capacity (or f32 cache)
    EXPECT_THROW(cache.write_f16(1, 0, 12, kh, vh), Error);   // too long (or f32 cache)

    std::vector<float> out(before.size(), -7.0f);
    const std::vector<uint32_t> bad_lengths = {32, 33};
    EXPECT_THROW(plan.run(q, bad_lengths, out), Error);
    std::vector<float> q_nan = q;
    q_nan[5] = NAN;
    EXPECT_THROW(plan.run(q_nan, lengths, out), Error);
    EXPECT_EQ(out, std::vector<float>(before.size(), -7.0f)) << "a rejected run wrote out";

    EXPECT_EQ(plan.run(q, lengths), before) << "a rejected write changed the cache";
    write_all(cache, other);  // and an accepted write of the same values does show
    EXPECT_NE(plan.run(q, lengths), before);
  }
}

// ---------------------------------------------------------------------------------------------
// Device selection.

TEST_F(Errors, DeviceSelectorMatchesNothing) {
  const std::vector<DeviceInfo> devices = list_devices();
  ASSERT_FALSE(devices.empty());
  for (const char* selector : {"no-such-gpu", "97"}) {
    std::vector<std::string> parts = {std::string("'") + selector + "'", "expected"};
    for (const DeviceInfo& d : devices) parts.push_back(d.name);
    try {
      ContextOptions o;
      o.device = selector;
      Context c(o);
      ADD_FAILURE() << "device '" << selector << "' was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::no_device) << e.what();
      for (const std::string& p : parts) {
        EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
            << "the message does not name '" << p << "': " << e.what();
      }
    }
  }
}

// Pipeline statistics need VK_KHR_pipeline_executable_properties and a context that asked for them.
TEST_F(Errors, PipelineStatisticsUnavailable) {
  DecodeTuning split;
  split.max_splits = 2;
  const ComputePipeline pipe =
      impl_of(context()).make_pipeline(*decode_pipeline_descs(DecodeShape{}, split).merge);
  const DeviceInfo& d = context().device();
  EXPECT_TRUE(throws_error(
      [&] { pipeline_statistics(impl_of(context()), pipe); }, ErrorCode::unsupported,
      {d.name, d.pipeline_statistics ? "ContextOptions::pipeline_statistics"
                                     : "does not support VK_KHR_pipeline_executable_properties"}));
}

// No Vulkan driver at all: the test starts this binary again with the loader pointed at a driver
// manifest that does not exist, and the child expects no_device from Context and list_devices.
constexpr const char* kNoDriverChild = "GQAVK_ERRORS_TEST_NO_DRIVER_CHILD";

TEST(NoDriver, ContextReportsNoDevice) {
  if (std::getenv(kNoDriverChild)) {
    const auto result = throws_error([] { Context c; }, ErrorCode::no_device, {"install a driver"});
    EXPECT_TRUE(result);
    std::printf("%s\n", result.message());
    ContextOptions o;
    o.validation = true;
    EXPECT_TRUE(throws_error([&] { Context c(o); }, ErrorCode::no_device, {"install a driver"}));
    try {
      EXPECT_TRUE(list_devices().empty());
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::no_device) << e.what();
    }
    return;
  }
  char exe[PATH_MAX] = {};
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  ASSERT_GT(n, 0) << "cannot find this test binary";
  const std::string command = std::string("env -u VK_ADD_DRIVER_FILES -u GTEST_OUTPUT ") +
                              kNoDriverChild +
                              "=1 VK_ICD_FILENAMES=/nonexistent.json "
                              "VK_DRIVER_FILES=/nonexistent.json '" +
                              exe + "' --gtest_filter=NoDriver.ContextReportsNoDevice 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[4096];
  while (size_t got = fread(buf, 1, sizeof(buf), pipe)) output.append(buf, got);
  const int status = pclose(pipe);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << output;
  EXPECT_NE(output.find("[  PASSED  ] 1 test"), std::string::npos) << output;
}

// Sizes past what the kernels index (32-bit tables and texels) or what the device holds are
// refused with the limit named, before anything is allocated; plan_memory never wraps around.
TEST_F(Errors, LimitsBeforeAllocation) {
  KvCacheDesc d;
  d.kv_heads = 8;
  d.head_dim = 128;
  d.capacity_tokens = 4096;
  KvCacheDesc huge = d;
  huge.batch = 0xffffffffu;
  huge.capacity_tokens = 0xffffffffu;  // + block_tokens - 1 used to wrap to a 0-block table
  EXPECT_TRUE(throws_error([&] { KvCache::plan_memory(huge); }, ErrorCode::invalid_argument,
                           {"4294967295 sequences", "past 2^32"}));
  KvCacheDesc heads = d;
  heads.kv_heads = 0xffffffffu;
  EXPECT_TRUE(throws_error([&] { KvCache::plan_memory(heads); }, ErrorCode::invalid_argument,
                           {"4294967295 KV heads", "past 2^31 texels"}));
  KvCacheDesc layers = d;
  layers.layers = 0xffffffffu;
  layers.pool_blocks = 100;
  EXPECT_TRUE(throws_error([&] { KvCache::plan_memory(layers); }, ErrorCode::invalid_argument,
                           {"4294967295 layers", "past 2^32"}));
  const DeviceInfo& dev = context().device();
  EXPECT_TRUE(throws_error([&] { DeviceBuffer b(context(), dev.max_memory_allocation_size + 16); },
                           ErrorCode::unsupported, {"maxMemoryAllocationSize"}));
  // Block tables past one storage binding: few blocks in the pool, a table of 2^30 bytes.
  KvCacheDesc tables = d;
  tables.batch = 1u << 16;
  tables.layers = 1u << 8;
  tables.capacity_tokens = 16 * 256;
  tables.pool_blocks = 2;
  if (uint64_t{1} << 30 > dev.max_storage_buffer_range) {
    EXPECT_TRUE(throws_error([&] { KvCache c(context(), tables); }, ErrorCode::unsupported,
                             {"block tables of 1073741824 bytes", "maxStorageBufferRange"}));
  }
  KvCacheDesc small;
  small.kv_heads = 1;
  small.head_dim = 64;
  small.capacity_tokens = 64;
  small.dtype = DType::f32;
  KvCache cache(context(), small);
  PrefillDesc pd;
  pd.q_heads = 1u << 24;
  EXPECT_TRUE(throws_error([&] { PrefillPlan p(context(), cache, pd); }, ErrorCode::unsupported,
                           {"maxComputeWorkGroupCount"}));
  DecodeDesc dd;
  dd.q_heads = 0x80000000u;
  EXPECT_TRUE(throws_error([&] { DecodePlan p(context(), cache, dd); }, ErrorCode::unsupported,
                           {"maxStorageBufferRange"}));
}

}  // namespace
}  // namespace gqavk::test
