// KvPages, the host's book of the paged pool, under seeded random interleavings of every
// operation: after each one, reference counts equal the table entries naming each block, every
// block is either free or held, and lengths match a model of the sequences.
#include "kv_pages.hpp"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "gqavk/error.hpp"

namespace gqavk {
namespace {

struct Model {
  std::map<uint32_t, std::vector<uint32_t>> lengths;  // open sequence -> length per layer
};

// Every invariant of the book that does not depend on history.
void check_invariants(const KvPages& p, const Model& m, uint32_t block_tokens) {
  std::vector<uint32_t> named(p.pool_blocks(), 0);
  const auto& t = p.table();
  for (uint32_t b : t) ++named[b];
  uint32_t held = 0;
  for (uint32_t b = 1; b < p.pool_blocks(); ++b) {
    ASSERT_EQ(p.refs(b), named[b]) << "block " << b;
    held += named[b] > 0;
  }
  EXPECT_EQ(held, p.blocks_in_use());
  EXPECT_EQ(held + p.blocks_free() + 1, p.pool_blocks());
  for (uint32_t s = 0; s < p.slots(); ++s) {
    const auto it = m.lengths.find(s);
    ASSERT_EQ(p.is_open(s), it != m.lengths.end()) << "slot " << s;
    for (uint32_t l = 0; l < p.layers(); ++l) {
      const uint32_t len = it == m.lengths.end() ? 0 : it->second[l];
      if (it != m.lengths.end()) {
        ASSERT_EQ(p.length(s, l), len) << "seq " << s << " layer " << l;
      }
      // Held blocks cover exactly the written, unreleased tokens.
      const uint32_t rel = it == m.lengths.end() ? 0 : p.released(s, l);
      for (uint32_t i = 0; i < p.blocks_per_seq(); ++i) {
        const bool live = i * block_tokens < len && (i + 1) * block_tokens > rel;
        ASSERT_EQ(t[(uint64_t{l} * p.slots() + s) * p.blocks_per_seq() + i] != 0, live)
            << "seq " << s << " layer " << l << " block " << i << " len " << len << " rel " << rel;
      }
    }
  }
}

TEST(KvPages, RandomInterleavingsKeepTheBookConsistent) {
  for (uint32_t seed : {1u, 2u, 3u}) {
    constexpr uint32_t kSlots = 6, kLayers = 3, kP = 4, kBlocksPerSeq = 16;
    const std::vector<uint32_t> windows{0, 9, 0};
    KvPages p(kSlots, kLayers, kBlocksPerSeq * kP, kP, 60, windows);
    Model m;
    for (uint32_t s = 0; s < kSlots; ++s) m.lengths[s] = std::vector<uint32_t>(kLayers, 0);
    std::mt19937 rng(seed);
    const auto pick = [&](uint32_t n) {
      return std::uniform_int_distribution<uint32_t>(0, n - 1)(rng);
    };
    uint32_t exhausted = 0, forks = 0;
    for (int op = 0; op < 4000; ++op) {
      std::vector<KvPages::Copy> copies;
      const uint32_t kind = pick(10);
      const uint32_t s = pick(kSlots);
      const bool open = p.is_open(s);
      try {
        if (kind == 0) {
          if (m.lengths.size() < kSlots) {
            const uint32_t id = p.add();
            EXPECT_FALSE(m.lengths.count(id));
            m.lengths[id] = std::vector<uint32_t>(kLayers, 0);
          }
        } else if (kind == 1 && open) {
          p.free(s);
          m.lengths.erase(s);
        } else if (kind == 2 && open && m.lengths.size() < kSlots) {
          const uint32_t child = p.fork(s, copies);
          m.lengths[child] = m.lengths[s];
          ++forks;
          for (const auto& c : copies) EXPECT_NE(c.src, c.dst);
        } else if (kind == 3 && open) {
          const uint32_t t = pick(kBlocksPerSeq * kP);
          p.truncate(s, t);
          for (uint32_t& len : m.lengths[s]) len = std::min(len, t);
        } else if (open) {  // writes: appends mostly, some overwrites
          const uint32_t l = pick(kLayers);
          const uint32_t len = m.lengths[s][l];
          const uint32_t rel = p.released(s, l);
          const uint32_t first = kind == 9 && len > rel ? rel + pick(len - rel) : len;
          const uint32_t n = 1 + pick(6);
          if (first + n > kBlocksPerSeq * kP) continue;
          p.prepare_write(s, l, first, n, copies);
          m.lengths[s][l] = std::max(len, first + n);
        }
      } catch (const Error& e) {
        // Only exhaustion, or truncating a window layer back into what it released.
        if (kind == 3) {
          ASSERT_EQ(e.code(), ErrorCode::invalid_argument) << e.what();
        } else {
          ASSERT_EQ(e.code(), ErrorCode::out_of_blocks) << e.what();
          ++exhausted;
        }
        ASSERT_TRUE(copies.empty());
      }
      check_invariants(p, m, kP);
      if (::testing::Test::HasFatalFailure()) return;
    }
    // The pool is small enough that the walk meets exhaustion, and forks happen.
    EXPECT_GT(exhausted, 0u) << "seed " << seed;
    EXPECT_GT(forks, 0u) << "seed " << seed;
  }
}

TEST(KvPages, ExhaustionChangesNothing) {
  KvPages p(3, 1, 32, 4, 4, {});  // three usable blocks
  std::vector<KvPages::Copy> copies;
  p.free(2);                             // a closed slot for the fork
  p.prepare_write(0, 0, 0, 10, copies);  // takes all three
  const auto table = p.table();
  try {
    p.prepare_write(1, 0, 0, 1, copies);
    FAIL() << "expected out_of_blocks";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::out_of_blocks) << e.what();
    EXPECT_NE(std::string(e.what()).find("needs 1 free blocks; the KV pool has 0 free of 3"),
              std::string::npos)
        << e.what();
  }
  try {
    p.fork(0, copies);  // the partly filled last block needs a copy
    FAIL() << "expected out_of_blocks";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::out_of_blocks);
  }
  EXPECT_EQ(p.table(), table);
  EXPECT_EQ(p.length(0, 0), 10u);
  EXPECT_EQ(p.length(1, 0), 0u);
  EXPECT_TRUE(p.is_open(1));
  EXPECT_FALSE(p.is_open(2));
  EXPECT_EQ(p.blocks_free(), 0u);
  EXPECT_TRUE(copies.empty());
}

TEST(KvPages, ForkSharesFullBlocksAndCopiesOnWrite) {
  KvPages p(3, 1, 32, 4, 20, {});
  std::vector<KvPages::Copy> copies;
  p.prepare_write(0, 0, 0, 10, copies);  // blocks 0..2, the last holding 2 tokens
  p.free(1);
  p.free(2);
  const uint32_t child = p.fork(0, copies);
  EXPECT_EQ(child, 1u);
  ASSERT_EQ(copies.size(), 1u);  // the partial block only
  EXPECT_EQ(copies[0].src, p.block_of(0, 0, 8));
  EXPECT_EQ(copies[0].dst, p.block_of(1, 0, 8));
  EXPECT_EQ(p.block_of(0, 0, 0), p.block_of(1, 0, 0));
  EXPECT_EQ(p.refs(p.block_of(0, 0, 4)), 2u);
  copies.clear();
  const uint32_t shared = p.block_of(1, 0, 5);
  p.prepare_write(1, 0, 5, 1, copies);  // overwrite in a shared block: copied first
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0].src, shared);
  EXPECT_NE(p.block_of(1, 0, 5), shared);
  EXPECT_EQ(p.refs(shared), 1u);
  EXPECT_EQ(p.block_of(0, 0, 5), shared);
}

TEST(KvPages, WindowLayerReleasesWhatNoFutureQuerySees) {
  constexpr uint32_t kP = 16, kW = 64;
  KvPages p(1, 2, 1000 * kP, kP, 10000 / kP + kW / kP + 4, {0, kW});
  std::vector<KvPages::Copy> copies;
  uint32_t most = 0;
  for (uint32_t t = 0; t < 10000; t += 10) {
    p.prepare_write(0, 0, t, 10, copies);
    p.prepare_write(0, 1, t, 10, copies);
    // The window layer's blocks: in use minus the full layer's ceil(len / P).
    const uint32_t window_blocks = p.blocks_in_use() - (t + 10 + kP - 1) / kP;
    most = std::max(most, window_blocks);
    // A query at t (the chunk's first) still sees its W keys, and nothing more is held.
    const uint32_t first_seen = t + 1 > kW ? t + 1 - kW : 0u;
    EXPECT_LE(p.released(0, 1), first_seen);
    EXPECT_GT(p.released(0, 1) + kP, first_seen);
  }
  EXPECT_LE(most, kW / kP + 2);  // W tokens plus a block at each end: flat
  EXPECT_EQ(p.blocks_in_use(), 10000 / kP + (10000 - p.released(0, 1) + kP - 1) / kP);
}

TEST(KvPages, BadArgumentsNameTheValue) {
  KvPages p(2, 2, 32, 4, 12, {0, 8});
  std::vector<KvPages::Copy> copies;
  const auto message = [&](auto&& f) {
    try {
      f();
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::invalid_argument);
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(
      message([&] { p.prepare_write(2, 0, 0, 1, copies); }).find("sequence 2 is out of range"),
      std::string::npos);
  EXPECT_NE(message([&] { p.prepare_write(0, 2, 0, 1, copies); }).find("layer 2 is out of range"),
            std::string::npos);
  EXPECT_NE(message([&] { p.prepare_write(0, 0, 3, 1, copies); }).find("would leave tokens [0, 3)"),
            std::string::npos);
  EXPECT_NE(
      message([&] { p.prepare_write(0, 0, 0, 33, copies); }).find("exceed the cache capacity"),
      std::string::npos);
  p.free(1);
  EXPECT_NE(message([&] { p.length(1, 0); }).find("sequence 1 is not open"), std::string::npos);
  EXPECT_NE(message([&] {
              p.add();
              p.add();
            }).find("every sequence slot is open"),
            std::string::npos);
  p.prepare_write(0, 1, 0, 16, copies);
  EXPECT_EQ(p.released(0, 1), 0u);  // the query at 0 sees key 0
  p.prepare_write(0, 1, 16, 4, copies);
  EXPECT_EQ(p.released(0, 1), 8u);  // the query at 16 sees keys from 9: blocks [0, 8) go
  EXPECT_NE(message([&] { p.prepare_write(0, 1, 0, 1, copies); }).find("lies before the window"),
            std::string::npos);
}

// append_token (a decode step's one token per sequence in every layer, with its fast path that
// changes only lengths) leaves the book exactly as prepare_writes_layers does, under random
// interleavings of adds, forks, truncations (into shared blocks too), frees, single-layer writes
// that make layers' lengths differ (append_token must refuse those) and running out of blocks.
TEST(KvPages, AppendTokenEqualsWritingEveryLayer) {
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    const std::vector<uint32_t> windows{0, 6, 0, 9};
    KvPages a(5, 4, 40, 4, 60, windows), b(5, 4, 40, 4, 60, windows);
    std::mt19937 rng(seed);
    uint32_t fast = 0, slow = 0, refused = 0, out = 0;
    for (uint32_t op = 0; op < 3000; ++op) {
      std::vector<uint32_t> open;
      for (uint32_t s = 0; s < 5; ++s) {
        if (a.is_open(s)) open.push_back(s);
      }
      std::vector<KvPages::Copy> ca, cb;
      const uint32_t kind = static_cast<uint32_t>(rng() % 20);
      if (open.empty() || (kind == 0 && open.size() < 5)) {
        ASSERT_EQ(a.add(), b.add());
      } else if (kind == 1 && open.size() < 5) {
        const uint32_t parent = open[rng() % open.size()];
        try {
          const uint32_t child = a.fork(parent, ca);
          ASSERT_EQ(b.fork(parent, cb), child);
        } catch (const Error&) {
          ASSERT_THROW(b.fork(parent, cb), Error);
        }
      } else if (kind == 2) {
        const uint32_t s = open[rng() % open.size()];
        const uint32_t to = static_cast<uint32_t>(rng() % (a.length(s, 0) + 1));
        try {
          a.truncate(s, to);
          b.truncate(s, to);
        } catch (const Error&) {
          ASSERT_THROW(b.truncate(s, to), Error);
        }
      } else if (kind == 3) {
        const uint32_t s = open[rng() % open.size()];
        a.free(s);
        b.free(s);
      } else if (kind == 4) {  // one layer only: lengths differ until truncated
        const uint32_t s = open[rng() % open.size()];
        const uint32_t l = static_cast<uint32_t>(rng() % 4);
        try {
          a.prepare_write(s, l, a.length(s, l), 1, ca);
          b.prepare_write(s, l, b.length(s, l), 1, cb);
        } catch (const Error&) {
          ASSERT_THROW(b.prepare_write(s, l, b.length(s, l), 1, cb), Error);
        }
      } else {  // a step over a random subset
        std::shuffle(open.begin(), open.end(), rng);
        open.resize(1 + rng() % open.size());
        bool equal = true;
        std::vector<KvPages::WriteRun> runs;
        for (uint32_t s : open) {
          for (uint32_t l = 1; l < 4; ++l) equal = equal && b.length(s, l) == b.length(s, 0);
          runs.push_back({s, b.length(s, 0), 1});
        }
        const uint32_t free_before = a.blocks_free();
        try {
          a.append_token(open, ca);
        } catch (const Error& e) {
          if (!equal) {
            ++refused;
            ASSERT_EQ(e.code(), ErrorCode::invalid_argument) << e.what();
          } else {
            ++out;
            ASSERT_THROW(b.prepare_writes_layers(0, 4, runs, cb), Error) << e.what();
          }
          continue;
        }
        ASSERT_TRUE(equal) << "append_token took sequences whose layers' lengths differ";
        b.prepare_writes_layers(0, 4, runs, cb);
        (a.blocks_free() == free_before && ca.empty() ? fast : slow) += 1;
      }
      ASSERT_EQ(ca.size(), cb.size());
      for (size_t i = 0; i < ca.size(); ++i) {
        ASSERT_EQ(ca[i].src, cb[i].src);
        ASSERT_EQ(ca[i].dst, cb[i].dst);
      }
      ASSERT_EQ(a.table(), b.table()) << "op " << op;
      ASSERT_EQ(a.blocks_free(), b.blocks_free());
      for (uint32_t s = 0; s < 5; ++s) {
        ASSERT_EQ(a.is_open(s), b.is_open(s));
        if (!a.is_open(s)) continue;
        for (uint32_t l = 0; l < 4; ++l) {
          ASSERT_EQ(a.length(s, l), b.length(s, l));
          ASSERT_EQ(a.released(s, l), b.released(s, l));
        }
      }
      for (uint32_t blk = 0; blk < a.pool_blocks(); ++blk) ASSERT_EQ(a.refs(blk), b.refs(blk));
    }
    EXPECT_GT(fast, 100u);
    EXPECT_GT(slow, 50u);
    EXPECT_GT(refused, 0u);
    EXPECT_GT(out, 0u);
  }
}

}  // namespace
}  // namespace gqavk
