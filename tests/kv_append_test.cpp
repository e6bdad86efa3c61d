// KvCache::append, the device-side writer: the pool it leaves is byte for byte the pool the host
// writer leaves for the same tokens (so both follow the one block layout), for each storage and
// source type, across decode-like single tokens, prefill chunks crossing blocks, overwrites of
// forked (shared) blocks, and a second layer; plus its errors and exhaustion.
#include <cstring>
#include <vector>

#include "gqavk/device_buffer.hpp"
#include "gqavk/half.hpp"
#include "kv_cache_impl.hpp"
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
  const KvCache::Impl& c = cache.impl();
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
  floats_to_halves(rows, h);
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

Batch make_batch(std::vector<KvToken> tokens, uint32_t seed) {
  Batch b{std::move(tokens), {}, {}};
  const size_t n = b.tokens.size() * kG * kD;
  b.k = random_values(n, seed, -4.0f, 4.0f);
  b.v = random_values(n, seed + 1, -4.0f, 4.0f);
  round_to_f16(b.k);  // exact in every storage type tested here
  round_to_f16(b.v);
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

TEST(KvAppend, SameBytesAsTheHostWriter) {
  for (DType dtype : {DType::f16, DType::f32}) {
    for (DType src : {DType::f32, DType::f16}) {
      SCOPED_TRACE(std::string(to_string(dtype)) + " from " + to_string(src));
      KvCache host(context(), append_desc(dtype)), dev(context(), append_desc(dtype));
      // Prefill chunks crossing blocks, for two sequences in one batch.
      std::vector<KvToken> chunks = run(0, 0, 21);
      const std::vector<KvToken> more = run(2, 0, 13);
      chunks.insert(chunks.end(), more.begin(), more.end());
      apply(host, dev, make_batch(chunks, 1), 0, src);
      // Fork sequence 0 into slot 1 (after freeing it): the child shares full blocks; then
      // overwrite its tokens 4..9 (copy on write) and append a decode step to three sequences.
      for (KvCache* c : {&host, &dev}) {
        c->free_sequence(1);
        EXPECT_EQ(c->fork_sequence(0), 1u);
      }
      apply(host, dev, make_batch(run(1, 4, 6), 2), 0, src);
      std::vector<KvToken> step = {{0, 21}, {1, 21}, {2, 13}};
      apply(host, dev, make_batch(step, 3), 0, src);
      // The second layer.
      apply(host, dev, make_batch(run(3, 0, 9), 4), 1, src);
      EXPECT_EQ(host.memory().blocks_in_use, dev.memory().blocks_in_use);
      EXPECT_TRUE(pool_bytes(host) == pool_bytes(dev));
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
  // A value f16 cannot hold is stored as infinity and reported.
  std::vector<float> big = b.k;
  big[5] = 1e6f;
  big[300] = -7e4f;
  EXPECT_TRUE(throws_error([&] { cache.append(0, b.tokens, device_rows(big, DType::f32), v); },
                           ErrorCode::invalid_argument,
                           {"2 appended K/V values overflow f16 storage"}));
}

}  // namespace
}  // namespace gqavk::test
