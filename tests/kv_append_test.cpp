// KvCache::append, the device-side writer: the pool it leaves is byte for byte the pool the host
// writer leaves for the same tokens (so both follow the one block layout), for each storage and
// source type, across decode-like single tokens, prefill chunks crossing blocks, overwrites of
// forked (shared) blocks, and a second layer; plus its errors and exhaustion.
#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "gqavk/device_buffer.hpp"
#include "gqavk/half.hpp"
#include "kv_cache_impl.hpp"
#include "kv_codec.hpp"
#include "reference.hpp"
#include "test_support.hpp"

namespace gqavk::test {
namespace {

constexpr uint32_t kG = 2, kD = 64;

KvCacheDesc append_desc(DType dtype) {
  KvCacheDesc d{4, kG, kD, 96, dtype, 8};
  d.layers = 2;
  return d;
}

std::vector<uint8_t> pool_bytes(const KvCache& cache) {
  const ImplOf<KvCache>& c = impl_of(cache);
  std::vector<uint8_t> out(c.pool.bytes());
  c.ctx->download(c.pool, 0, out.data(), out.size());
  return out;
}

// [tokens, G, D] in a device buffer as `src`, from floats.
DeviceBuffer device_rows(std::span<const float> rows, DType src) {
  if (src == DType::f32) {
    DeviceBuffer b(context(), rows.size_bytes());
    b.upload(std::as_bytes(rows));
    return b;
  }
  std::vector<uint16_t> h(rows.size());
  if (src == DType::f16) {
    floats_to_halves(rows, h);
  } else {
    for (size_t i = 0; i < rows.size(); ++i) h[i] = float_to_bf16(rows[i]);
  }
  DeviceBuffer b(context(), h.size() * 2);
  b.upload(std::as_bytes(std::span(h)));
  return b;
}

// The host writer's input for tokens [0, n) of `rows` ([n, G, D]) as [G, n, D].
std::vector<float> by_head(std::span<const float> rows, uint32_t n) {
  std::vector<float> out(rows.size());
  for (uint32_t t = 0; t < n; ++t) {
    for (uint32_t g = 0; g < kG; ++g) {
      std::memcpy(&out[(size_t{g} * n + t) * kD], &rows[(size_t{t} * kG + g) * kD], kD * 4);
    }
  }
  return out;
}

struct Batch {
  std::vector<KvToken> tokens;
  std::vector<float> k, v;  // [tokens, G, D]
};

// Random values in [-4, 4), exact in the source type `src` (host and device see the same values).
Batch make_batch(std::vector<KvToken> tokens, uint32_t seed, DType src = DType::f32) {
  Batch b{std::move(tokens), {}, {}};
  const size_t n = b.tokens.size() * kG * kD;
  b.k = random_values(n, seed, -4.0f, 4.0f);
  b.v = random_values(n, seed + 1, -4.0f, 4.0f);
  for (std::vector<float>* x : {&b.k, &b.v}) {
    if (src == DType::f16) round_to_f16(*x);
    if (src == DType::bf16) {
      for (float& f : *x) f = bf16_to_float(float_to_bf16(f));
    }
  }
  return b;
}

// Applies `batch` to `host` through write() (one call per sequence run) and to `dev` through
// append().
void apply(KvCache& host, KvCache& dev, const Batch& batch, uint32_t layer, DType src) {
  dev.append(layer, batch.tokens, device_rows(batch.k, src), device_rows(batch.v, src), src);
  // Host writes, run by run, in the batch's order.
  size_t i = 0;
  while (i < batch.tokens.size()) {
    size_t j = i + 1;
    while (j < batch.tokens.size() && batch.tokens[j].seq == batch.tokens[i].seq) ++j;
    const uint32_t n = static_cast<uint32_t>(j - i);
    const size_t row = size_t{kG} * kD;
    const std::span<const float> k(batch.k.data() + i * row, n * row);
    const std::span<const float> v(batch.v.data() + i * row, n * row);
    host.write(batch.tokens[i].seq, batch.tokens[i].position, n, by_head(k, n), by_head(v, n),
               layer);
    i = j;
  }
}

std::vector<KvToken> run(uint32_t seq, uint32_t first, uint32_t n) {
  std::vector<KvToken> t;
  for (uint32_t p = first; p < first + n; ++p) t.push_back({seq, p});
  return t;
}

// Every storage type from f32 and f16 sources, and bf16 from bf16. The device's conversions match
// the host encoder bit for bit where the driver rounds as IEEE does (lavapipe: division and
// f32-to-f16 conversion round to nearest even); a GPU whose division is approximate may put a q8
// or q4 code one step off on a value at a rounding boundary, within the types' error bounds.
TEST(KvAppend, SameBytesAsTheHostWriter) {
  std::vector<std::pair<DType, DType>> cases;
  for (DType dtype : {DType::f32, DType::f16, DType::bf16, DType::q8, DType::q4}) {
    for (DType src : {DType::f32, DType::f16}) cases.push_back({dtype, src});
  }
  cases.push_back({DType::bf16, DType::bf16});
  for (const auto& [dtype, src] : cases) {
    {
      SCOPED_TRACE(std::string(to_string(dtype)) + " from " + to_string(src));
      KvCache host(context(), append_desc(dtype)), dev(context(), append_desc(dtype));
      // Prefill chunks crossing blocks, for two sequences in one batch.
      std::vector<KvToken> chunks = run(0, 0, 21);
      const std::vector<KvToken> more = run(2, 0, 13);
      chunks.insert(chunks.end(), more.begin(), more.end());
      apply(host, dev, make_batch(chunks, 1, src), 0, src);
      // Fork sequence 0 into slot 1 (after freeing it): the child shares full blocks; then
      // overwrite its tokens 4..9 (copy on write) and append a decode step to three sequences.
      for (KvCache* c : {&host, &dev}) {
        c->free_sequence(1);
        EXPECT_EQ(c->fork_sequence(0), 1u);
      }
      apply(host, dev, make_batch(run(1, 4, 6), 2, src), 0, src);
      std::vector<KvToken> step = {{0, 21}, {1, 21}, {2, 13}};
      apply(host, dev, make_batch(step, 3, src), 0, src);
      // The second layer.
      const Batch last = make_batch(run(3, 0, 9), 4, src);
      apply(host, dev, last, 1, src);
      // Both caches' layer 1 read back as the stored values (attention of seq 3's 9 tokens).
      std::vector<float> k = by_head(last.k, 9), v = by_head(last.v, 9);
      store_and_read_rows(dtype, k, kD);
      store_and_read_rows(dtype, v, kD);
      std::vector<float> kr(size_t{kG} * 96 * kD, 0.0f), vr(kr.size(), 0.0f);
      for (uint32_t g = 0; g < kG; ++g) {
        std::copy_n(k.begin() + g * 9 * kD, 9 * kD, kr.begin() + g * 96 * kD);
        std::copy_n(v.begin() + g * 9 * kD, 9 * kD, vr.begin() + g * 96 * kD);
      }
      const std::vector<float> q = random_values(4 * 9 * kD, 9, -1.0f, 1.0f);
      const std::vector<double> attn =
          ref::attention(q, kr.data(), vr.data(), 4, kG, 9, 9, kD, kD, 96, {});
      for (KvCache* c : {&host, &dev}) {
        PrefillDesc pd;
        pd.q_heads = 4;
        pd.layer = 1;
        const PrefillSeq seq{3, 9, 9};
        EXPECT_LE(max_abs_diff(PrefillPlan(context(), *c, pd).run(q, {&seq, 1}), attn), 1e-4)
            << (c == &host ? "host writer" : "device append");
      }
      EXPECT_EQ(host.memory().blocks_in_use, dev.memory().blocks_in_use);
      const std::vector<uint8_t> want = pool_bytes(host), got = pool_bytes(dev);
      ASSERT_EQ(want.size(), got.size());
      const auto diff = std::mismatch(want.begin(), want.end(), got.begin());
      EXPECT_TRUE(diff.first == want.end())
          << "first difference at byte " << (diff.first - want.begin()) << " of " << want.size()
          << " (block bytes " << host.memory().block_bytes << "): host " << int(*diff.first)
          << ", device " << int(*diff.second);
      // And the device's tokens read back correctly: sequence 1 is sequence 0's first 21 tokens
      // with 4..9 overwritten, plus its own decode token.
      EXPECT_EQ(dev.length(1), 22u);
      EXPECT_EQ(dev.length(0), 22u);
    }
  }
}

TEST(KvAppend, ExhaustionChangesNothing) {
  KvCacheDesc d = append_desc(DType::f16);
  d.pool_blocks = 5;  // four usable blocks of 8 tokens
  KvCache cache(context(), d);
  const Batch fill = make_batch(run(0, 0, 24), 5);
  cache.append(0, fill.tokens, device_rows(fill.k, DType::f32), device_rows(fill.v, DType::f32));
  const std::vector<uint8_t> before = pool_bytes(cache);
  // Sequence 1 needs one block and sequence 2 one more: only one is free, so neither is written.
  std::vector<KvToken> both = run(1, 0, 3);
  const std::vector<KvToken> other = run(2, 0, 2);
  both.insert(both.end(), other.begin(), other.end());
  const Batch two = make_batch(both, 6);
  EXPECT_TRUE(throws_error(
      [&] {
        cache.append(0, two.tokens, device_rows(two.k, DType::f32), device_rows(two.v, DType::f32));
      },
      ErrorCode::out_of_blocks,
      {"writing 2 sequences' tokens in layer 0 needs 2 free blocks", "has 1 free of 4"}));
  EXPECT_EQ(cache.length(1), 0u);
  EXPECT_EQ(cache.length(2), 0u);
  EXPECT_EQ(cache.memory().blocks_free, 1u);
  EXPECT_TRUE(pool_bytes(cache) == before);
}

TEST(KvAppend, Errors) {
  KvCache cache(context(), append_desc(DType::f16));
  const Batch b = make_batch(run(0, 0, 4), 7);
  const DeviceBuffer k = device_rows(b.k, DType::f32), v = device_rows(b.v, DType::f32);
  const std::vector<KvToken> gap = {{0, 0}, {0, 2}};
  EXPECT_TRUE(throws_error([&] { cache.append(0, gap, k, v); }, ErrorCode::invalid_argument,
                           {"tokens[1] is position 2 of sequence 0; expected 1"}));
  const std::vector<KvToken> hole = {{0, 3}};
  EXPECT_TRUE(throws_error([&] { cache.append(0, hole, k, v); }, ErrorCode::invalid_argument,
                           {"would leave tokens [0, 3) unwritten"}));
  EXPECT_TRUE(throws_error([&] { cache.append(0, b.tokens, k, v, DType::f16, 1); },
                           ErrorCode::invalid_argument, {"k_first 1 is odd"}));
  EXPECT_TRUE(throws_error([&] { cache.append(0, b.tokens, k, v, DType::f32, 64); },
                           ErrorCode::invalid_argument,
                           {"k needs 2304 bytes ([4, 2, 64] f32 from element 64)", "holds 2048"}));
  EXPECT_TRUE(throws_error([&] { cache.append(2, b.tokens, k, v); }, ErrorCode::invalid_argument,
                           {"layer 2 is out of range"}));
  EXPECT_TRUE(throws_error([&] { cache.append(0, {}, k, v); }, ErrorCode::invalid_argument,
                           {"tokens is empty"}));
  EXPECT_EQ(cache.length(0), 0u);
  // Capacity in tokens, not rounded up to whole blocks (20 tokens in blocks of 8).
  KvCache small(context(), KvCacheDesc{1, kG, kD, 20, DType::f16, 8});
  const Batch over = make_batch(run(0, 0, 21), 8);
  EXPECT_TRUE(throws_error(
      [&] {
        small.append(0, over.tokens, device_rows(over.k, DType::f32),
                     device_rows(over.v, DType::f32));
      },
      ErrorCode::invalid_argument, {"tokens [0, 21) exceed the cache capacity of 20 tokens"}));
  EXPECT_EQ(small.length(0), 0u);
  // A value f16 cannot hold is stored as infinity and reported.
  std::vector<float> big = b.k;
  big[5] = 1e6f;
  big[300] = -7e4f;
  EXPECT_TRUE(
      throws_error([&] { cache.append(0, b.tokens, device_rows(big, DType::f32), v); },
                   ErrorCode::invalid_argument,
                   {"appended K/V values cannot be stored as f16", "65520", "2 stored texels"}));
  // q8 and q4 cannot quantise infinity or NaN; bf16 overflows past 3.4e38.
  for (DType dtype : {DType::q8, DType::q4, DType::bf16}) {
    KvCache q(context(), append_desc(dtype));
    std::vector<float> bad = b.v;
    bad[7] = dtype == DType::bf16 ? 3.4e38f : std::numeric_limits<float>::infinity();
    EXPECT_TRUE(throws_error([&] { q.append(0, b.tokens, k, device_rows(bad, DType::f32)); },
                             ErrorCode::invalid_argument,
                             {"cannot be stored as " + std::string(to_string(dtype)),
                              dtype == DType::bf16 ? "3.3961514e38" : "finite"}));
  }
}

}  // namespace
}  // namespace gqavk::test
