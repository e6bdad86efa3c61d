// The paged KV cache on the device: seeded random interleavings of add, append (by the host writer
// or the device's append kernel), overwrite, fork, truncate and free over many sequences and three
// layers (one a window layer) of a pool small enough to run out, checked after each batch of
// operations against a host model of every sequence: attention over each open sequence, read
// through its block tables, matches the float64 reference on that sequence's own tokens. Exhaustion
// must leave the cache as it was.
#include <algorithm>
#include <map>
#include <random>
#include <vector>

#include "gqavk/device_buffer.hpp"
#include "reference.hpp"
#include "test_support.hpp"

namespace gqavk::test {
namespace {

constexpr uint32_t kG = 2, kH = 4, kD = 64, kP = 4, kCap = 64, kLayers = 3, kSlots = 5;
constexpr uint32_t kWindow = 12;  // layer 1

// One token's K or V rows for every KV head: [G][D].
using Rows = std::vector<float>;

struct SeqModel {
  std::vector<std::vector<Rows>> k, v;  // [layer][token]
};

Rows random_rows(std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Rows r(kG * kD);
  for (float& x : r) x = u(rng);
  round_to_f16(r);
  return r;
}

// [G, n, D] of tokens [first, first + n), as KvCache::write takes them.
std::vector<float> gather(const std::vector<Rows>& rows, uint32_t first, uint32_t n) {
  std::vector<float> out(size_t{kG} * n * kD);
  for (uint32_t g = 0; g < kG; ++g) {
    for (uint32_t t = 0; t < n; ++t) {
      std::copy_n(rows[first + t].begin() + g * kD, kD, out.begin() + (size_t{g} * n + t) * kD);
    }
  }
  return out;
}

// The reference layout of one sequence: [G, capacity, D].
std::vector<float> ref_layout(const std::vector<Rows>& rows) {
  std::vector<float> out(size_t{kG} * kCap * kD, 0.0f);
  for (uint32_t t = 0; t < rows.size(); ++t) {
    for (uint32_t g = 0; g < kG; ++g) {
      std::copy_n(rows[t].begin() + g * kD, kD, out.begin() + (size_t{g} * kCap + t) * kD);
    }
  }
  return out;
}

struct Walk {
  KvCache cache;
  std::vector<PrefillPlan> plans;  // one per layer
  std::map<uint32_t, SeqModel> model;
  std::mt19937 rng;
  uint32_t exhausted = 0, forks = 0, overwrites = 0, appends = 0, checks = 0;

  explicit Walk(uint32_t seed) : cache(context(), desc()), rng(seed) {
    for (uint32_t l = 0; l < kLayers; ++l) {
      PrefillDesc d;
      d.q_heads = kH;
      d.layer = l;
      if (l == 1) d.window = kWindow;
      plans.emplace_back(context(), cache, d);
    }
    for (uint32_t s = 0; s < kSlots; ++s) model[s] = empty();
  }

  static KvCacheDesc desc() {
    KvCacheDesc d;
    d.batch = kSlots;
    d.kv_heads = kG;
    d.head_dim = kD;
    d.capacity_tokens = kCap;
    d.block_tokens = kP;
    d.layers = kLayers;
    d.pool_blocks = 48;  // 3 x 5 x 16 would be 240: the walk runs out now and then
    d.layer_windows = {0, kWindow, 0};
    return d;
  }
  static SeqModel empty() {
    return {std::vector<std::vector<Rows>>(kLayers), std::vector<std::vector<Rows>>(kLayers)};
  }

  uint32_t pick(uint32_t n) { return std::uniform_int_distribution<uint32_t>(0, n - 1)(rng); }

  void step() {
    const uint32_t kind = pick(12);
    const uint32_t s = pick(kSlots);
    const bool open = model.count(s) != 0;
    const KvMemory before = cache.memory();
    try {
      if (kind == 0 && model.size() < kSlots) {
        const uint32_t id = cache.add_sequence();
        ASSERT_FALSE(model.count(id)) << id;
        model[id] = empty();
      } else if (kind == 1 && open) {
        cache.free_sequence(s);
        model.erase(s);
      } else if (kind == 2 && open && model.size() < kSlots) {
        const uint32_t child = cache.fork_sequence(s);
        ASSERT_FALSE(model.count(child)) << child;
        model[child] = model[s];
        ++forks;
      } else if (kind == 3 && open) {
        const uint32_t t = pick(kCap);
        cache.truncate(s, t);
        for (uint32_t l = 0; l < kLayers; ++l) {
          if (model[s].k[l].size() > t) {
            model[s].k[l].resize(t);
            model[s].v[l].resize(t);
          }
        }
      } else if (open) {
        const uint32_t l = pick(kLayers);
        SeqModel& m = model[s];
        const uint32_t len = static_cast<uint32_t>(m.k[l].size());
        const uint32_t rel = cache.released_tokens(s, l);
        const bool overwrite = kind == 11 && len > rel;
        const uint32_t first = overwrite ? rel + pick(len - rel) : len;
        const uint32_t n = std::min(1 + pick(overwrite ? 3 : 9), kCap - first);
        if (n == 0) return;
        std::vector<Rows> k(m.k[l]), v(m.v[l]);
        k.resize(std::max(len, first + n));
        v.resize(k.size());
        for (uint32_t t = first; t < first + n; ++t) {
          k[t] = random_rows(rng);
          v[t] = random_rows(rng);
        }
        if (pick(2) == 0) {
          cache.write(s, first, n, gather(k, first, n), gather(v, first, n), l);
        } else {  // the device writes: rows [n, G, D] from device buffers
          std::vector<float> kr, vr;
          std::vector<KvToken> at;
          for (uint32_t t = first; t < first + n; ++t) {
            kr.insert(kr.end(), k[t].begin(), k[t].end());
            vr.insert(vr.end(), v[t].begin(), v[t].end());
            at.push_back({s, t});
          }
          DeviceBuffer kd(context(), kr.size() * 4), vd(context(), vr.size() * 4);
          kd.upload(std::as_bytes(std::span(kr)));
          vd.upload(std::as_bytes(std::span(vr)));
          cache.append(l, at, kd, vd);
          ++appends;
        }
        m.k[l] = std::move(k);
        m.v[l] = std::move(v);
        overwrites += overwrite;
      }
    } catch (const Error& e) {
      // Exhaustion, or truncating a window layer back into what it released: nothing changed.
      ASSERT_TRUE(e.code() == ErrorCode::out_of_blocks ||
                  (kind == 3 && e.code() == ErrorCode::invalid_argument))
          << e.what();
      exhausted += e.code() == ErrorCode::out_of_blocks;
      const KvMemory after = cache.memory();
      ASSERT_EQ(after.blocks_free, before.blocks_free) << e.what();
      ASSERT_EQ(after.blocks_in_use, before.blocks_in_use) << e.what();
    }
    // Lengths always agree with the model.
    for (const auto& [id, m] : model) {
      ASSERT_TRUE(cache.is_open(id));
      for (uint32_t l = 0; l < kLayers; ++l) ASSERT_EQ(cache.length(id, l), m.k[l].size());
    }
  }

  // Every open, non-empty sequence of every layer: its last few queries against the reference.
  void check() {
    ++checks;
    for (uint32_t l = 0; l < kLayers; ++l) {
      std::vector<PrefillSeq> seqs;
      for (const auto& [id, m] : model) {
        const uint32_t len = static_cast<uint32_t>(m.k[l].size());
        // Up to 3 queries, from positions whose window the layer still holds (a window layer
        // keeps what queries at or after its last write's first token see).
        const uint32_t rel = cache.released_tokens(id, l);
        const uint32_t lo = rel == 0 ? 0 : rel + kWindow - 1;
        if (len > 0) seqs.push_back({id, std::min(len - lo, 3u), len});
      }
      if (seqs.empty()) continue;
      uint64_t rows = 0;
      for (const PrefillSeq& e : seqs) rows += e.queries;
      const std::vector<float> q = random_values(rows * kH * kD, 1000 + checks, -2.0f, 2.0f);
      const std::vector<float> got = plans[l].run(q, seqs);
      ref::Options o;
      o.window = l == 1 ? kWindow : 0;
      size_t at = 0;
      for (const PrefillSeq& e : seqs) {
        const size_t n = size_t{kH} * e.queries * kD;
        const std::vector<float> k = ref_layout(model[e.seq].k[l]);
        const std::vector<float> v = ref_layout(model[e.seq].v[l]);
        const std::vector<double> want =
            ref::attention(std::span(q).subspan(at, n), k.data(), v.data(), kH, kG, e.queries,
                           e.kv_length, kD, kD, kCap, o);
        ASSERT_LE(max_abs_diff(std::span(got).subspan(at, n), want), 1e-5)
            << "check " << checks << ": sequence " << e.seq << " layer " << l << " length "
            << e.kv_length;
        at += n;
      }
    }
  }
};

TEST(KvPaging, RandomInterleavingsReadOwnTokens) {
  for (uint32_t seed : {11u, 12u, 13u}) {
    Walk w(seed);
    for (int batch = 0; batch < 25; ++batch) {
      for (int op = 0; op < 40; ++op) {
        w.step();
        if (::testing::Test::HasFatalFailure()) return;
      }
      w.check();
      if (::testing::Test::HasFatalFailure()) return;
    }
    // The walk met every path: exhaustion, forks (so shared blocks), copy-on-write overwrites.
    EXPECT_GT(w.exhausted, 0u) << "seed " << seed;
    EXPECT_GT(w.forks, 0u) << "seed " << seed;
    EXPECT_GT(w.overwrites, 0u) << "seed " << seed;
    EXPECT_GT(w.appends, 0u) << "seed " << seed;
    const KvMemory m = w.cache.memory();
    EXPECT_EQ(m.blocks_in_use + m.blocks_free + 1, m.pool_blocks);
    EXPECT_EQ(m.pool_bytes, m.block_bytes * m.pool_blocks);
  }
}

// A window layer holds about W tokens per sequence however long it grows; a full layer grows.
TEST(KvPaging, WindowLayerMemoryStaysFlat) {
  KvCacheDesc d;
  d.kv_heads = 1;
  d.head_dim = 64;
  d.capacity_tokens = 10240;
  d.block_tokens = 16;
  d.layers = 2;
  d.layer_windows = {0, 256};
  KvCache cache(context(), d);
  const KvMemory empty = cache.memory();
  EXPECT_EQ(empty.token_bytes, 2u * 64 * 2);  // K and V of one head, f16
  EXPECT_EQ(empty.block_bytes, empty.token_bytes * 16);
  // The planner, without a device, says what the cache allocated.
  const KvMemory planned = KvCache::plan_memory(d);
  EXPECT_EQ(planned.block_bytes, empty.block_bytes);
  EXPECT_EQ(planned.pool_bytes, empty.pool_bytes);
  EXPECT_EQ(planned.pool_blocks, empty.pool_blocks);
  EXPECT_EQ(planned.table_bytes, empty.table_bytes);
  EXPECT_EQ(planned.blocks_free, empty.blocks_free);
  std::vector<float> chunk = random_values(100 * 64, 5, -1.0f, 1.0f);
  round_to_f16(chunk);
  uint32_t most_window_blocks = 0;
  for (uint32_t t = 0; t < 10000; t += 100) {
    cache.write(0, t, 100, chunk, chunk, 0);
    cache.write(0, t, 100, chunk, chunk, 1);
    const KvMemory m = cache.memory();
    const uint32_t full_blocks = (t + 100 + 15) / 16;
    most_window_blocks = std::max(most_window_blocks, m.blocks_in_use - full_blocks);
    EXPECT_EQ(m.bytes_in_use, uint64_t{m.blocks_in_use} * m.block_bytes);
  }
  // The window's 256 tokens are 16 blocks; a chunk of 100 tokens and a block at the edge on top.
  EXPECT_LE(most_window_blocks, 16u + 7u + 1u);
  EXPECT_GE(cache.memory().blocks_in_use, 10000u / 16);  // the full layer holds everything
  // The window layer still answers its last queries correctly.
  PrefillDesc pd;
  pd.q_heads = 2;
  pd.layer = 1;
  pd.window = 256;
  PrefillPlan plan(context(), cache, pd);
  const std::vector<float> q = random_values(2 * 4 * 64, 6, -2.0f, 2.0f);
  const std::vector<PrefillSeq> seqs{{0, 4, 10000}};
  const std::vector<float> got = plan.run(q, seqs);
  std::vector<float> kv(size_t{10240} * 64, 0.0f);
  for (uint32_t t = 0; t < 10000; ++t) {
    std::copy_n(chunk.begin() + (t % 100) * 64, 64, kv.begin() + size_t{t} * 64);
  }
  ref::Options o;
  o.window = 256;
  const std::vector<double> want =
      ref::attention(q, kv.data(), kv.data(), 2, 1, 4, 10000, 64, 64, 10240, o);
  EXPECT_LE(max_abs_diff(got, want), 1e-5);
  // A plan wider than the layer's window is refused when made.
  pd.window = 512;
  EXPECT_TRUE(throws_error([&] { PrefillPlan wide(context(), cache, pd); },
                           ErrorCode::invalid_argument,
                           {"layer 1 keeps a window of 256 tokens; a plan reading it needs "
                            "window <= 256 (got 512)"}));
}

// Bytes per token per layer of each storage type for Llama-3-8B's KV heads (G 8, D 128): K and V
// values plus q8's f32 step per row and q4's f16 step per 32 values.
TEST(KvPaging, PlannedBytesPerToken) {
  KvCacheDesc d{1, 8, 128, 4096, DType::f16, 16};
  // Per head and token: K and V rows of 128 values, and their scales.
  const std::pair<DType, uint64_t> want[] = {{DType::f32, 8 * 2 * 512},
                                             {DType::f16, 8 * 2 * 256},
                                             {DType::bf16, 8 * 2 * 256},
                                             {DType::q8, 8 * 2 * (128 + 4)},
                                             {DType::q4, 8 * 2 * (64 + 8)}};
  for (const auto& [t, bytes] : want) {
    d.dtype = t;
    EXPECT_EQ(KvCache::plan_memory(d).token_bytes, bytes) << to_string(t);
    EXPECT_EQ(KvCache(context(), d).memory().pool_bytes, KvCache::plan_memory(d).pool_bytes);
  }
}

}  // namespace
}  // namespace gqavk::test
