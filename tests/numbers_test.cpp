// Non-finite inputs (README, Semantics): queries are checked on the host and a non-finite one is
// refused; a NaN or an infinity stored in one sequence's K or V (f32 storage keeps them) leaves
// every row that does not read it exact, and every kernel finishes (its loops are bounded by
// lengths, never by values), with split-K and without, in decode and prefill.
#include <cmath>
#include <limits>
#include <vector>

#include "reference.hpp"
#include "test_support.hpp"

namespace gqavk::test {
namespace {

constexpr uint32_t kBatch = 2, kG = 2, kH = 4, kD = 64, kCap = 96;
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

KvCacheDesc cache_desc() {
  KvCacheDesc d;
  d.batch = kBatch;
  d.kv_heads = kG;
  d.head_dim = kD;
  d.capacity_tokens = kCap;
  d.dtype = DType::f32;
  d.block_tokens = 32;
  return d;
}

// Decode rows [b, h] of `out` whose (b, h) `poisoned` says, checked against the reference for the
// others only.
void expect_clean_rows_exact(std::span<const float> got, std::span<const double> want,
                             const std::vector<std::vector<bool>>& poisoned, uint32_t rows_per_b,
                             uint32_t dim) {
  for (uint32_t b = 0; b < poisoned.size(); ++b) {
    for (uint32_t r = 0; r < rows_per_b; ++r) {
      if (poisoned[b][r]) continue;
      for (uint32_t d = 0; d < dim; ++d) {
        const size_t i = (size_t{b} * rows_per_b + r) * dim + d;
        ASSERT_TRUE(std::isfinite(got[i])) << "b " << b << " row " << r << " d " << d;
        ASSERT_NEAR(got[i], want[i], 1e-5) << "b " << b << " row " << r << " d " << d;
      }
    }
  }
}

class NonFinite : public GpuTest, public ::testing::WithParamInterface<uint32_t> {};

TEST_P(NonFinite, DecodeRowsThatDoNotReadItStayExact) {
  const uint32_t splits = GetParam();
  const KvCacheDesc desc = cache_desc();
  KvHost kv = random_kv(desc, 5);
  // Sequence 0: a NaN key in KV head 0 and an infinite value in KV head 1; sequence 1 clean.
  kv.k[kv.offset(0, 0, 17) + 3] = kNaN;
  kv.v[kv.v_offset(0, 1, 60) + 9] = kInf;
  std::vector<float> q = random_values(size_t{kBatch} * kH * kD, 6);
  const std::vector<uint32_t> lengths = {80, 77};
  KvCache cache(context(), desc);
  write_all(cache, kv, lengths);
  DecodeDesc dd;
  dd.q_heads = kH;
  dd.max_splits = splits;
  DecodePlan plan(context(), cache, dd);
  // A query is checked on the host: a non-finite one is refused, naming it.
  std::vector<float> bad_q = q;
  bad_q[(size_t{1} * kH + 3) * kD + 5] = kInf;
  EXPECT_TRUE(throws_error([&] { plan.run(bad_q, lengths); }, ErrorCode::invalid_argument,
                           {"q[453] = inf", "finite"}));
  const std::vector<float> out = plan.run(q, lengths);  // returns: no kernel hangs
  // The reference of the same inputs: only the rows that read a non-finite value differ.
  const std::vector<double> want =
      ref::decode(q, kv.k, kv.v, lengths, kBatch, kH, kG, kD, kCap, 1.0 / std::sqrt(double{kD}));
  // Heads 0-1 read KV head 0, heads 2-3 KV head 1 (H/G = 2).
  const std::vector<std::vector<bool>> poisoned = {{true, true, true, true},
                                                   {false, false, false, false}};
  expect_clean_rows_exact(out, want, poisoned, kH, kD);
  // The NaN key poisons the rows that read it (lavapipe: NaN; the semantics promise only that
  // those rows are not a valid answer, never that they are finite).
  EXPECT_FALSE(std::isfinite(out[(size_t{0} * kH + 0) * kD])) << "a NaN key left its row finite";
}

class NonFinitePrefill : public GpuTest {};

TEST_F(NonFinitePrefill, RowsThatDoNotReadItStayExact) {
  const KvCacheDesc desc = cache_desc();
  KvHost kv = random_kv(desc, 8);
  // A NaN key at position 40 of sequence 0, KV head 1: causal queries before it never read it.
  kv.k[kv.offset(0, 1, 40) + 1] = kNaN;
  const uint32_t lq = 24, lk = 48;  // queries at positions 24..47
  KvCache cache(context(), desc);
  write_all(cache, kv, std::vector<uint32_t>{lk, lk});
  PrefillDesc pd;
  pd.q_heads = kH;
  PrefillPlan plan(context(), cache, pd);
  const std::vector<PrefillSeq> seqs = {{0, lq, lk}, {1, lq, lk}};
  std::vector<float> q = random_values(size_t{2} * kH * lq * kD, 9);
  std::vector<float> bad_q = q;
  bad_q[7] = kNaN;
  EXPECT_TRUE(
      throws_error([&] { plan.run(bad_q, seqs); }, ErrorCode::invalid_argument, {"q[7] = nan"}));
  const std::vector<float> out = plan.run(q, seqs);
  for (uint32_t b = 0; b < 2; ++b) {
    const std::vector<double> want =
        ref::attention(std::span(q).subspan(size_t{b} * kH * lq * kD, size_t{kH} * lq * kD),
                       kv.k_of(b), kv.v_of(b), kH, kG, lq, lk, kD, kD, kCap, {});
    for (uint32_t h = 0; h < kH; ++h) {
      for (uint32_t i = 0; i < lq; ++i) {
        // Sequence 0, heads 2-3 (KV head 1), queries at positions >= 40 read the NaN.
        const bool reads_nan = b == 0 && h >= 2 && lk - lq + i >= 40;
        for (uint32_t d = 0; d < kD; ++d) {
          const size_t at = ((size_t{b} * kH + h) * lq + i) * kD + d;
          const size_t w = (size_t{h} * lq + i) * kD + d;
          if (reads_nan) continue;
          ASSERT_TRUE(std::isfinite(out[at])) << "b " << b << " h " << h << " i " << i;
          ASSERT_NEAR(out[at], want[w], 1e-5) << "b " << b << " h " << h << " i " << i;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Splits, NonFinite, ::testing::Values(1u, 4u),
                         [](const auto& p) { return "splits" + std::to_string(p.param); });

}  // namespace
}  // namespace gqavk::test
