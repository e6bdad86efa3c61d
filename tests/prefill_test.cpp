// Prefill against the float64 CPU reference (ref::attention): causal squares, chunks over a long
// cache, cross attention, ragged batches mixing prefill and single-query entries, windows at
// their edges, softcap, sinks, Dk != Dv, MQA, every head dim, f16 and f32, and every error the
// plan reports.
//
// ctest runs every test here at lavapipe's default vector width, and the tests with "EveryWidth"
// in their name again under LP_NATIVE_VECTOR_WIDTH=128, 512, 1024 and 2048 (see
// tests/CMakeLists.txt). Each pipeline variant costs seconds of LLVM compile at first use, so the
// shapes repeat: most tests use H 8, G 2, D 64 (f16 or f32).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "prefill_plan_impl.hpp"  // the tuning a plan chose
#include "reference.hpp"
#include "test_support.hpp"

namespace gqavk::test {
namespace {

// K and V lie in [-1, 1], so an output is a convex combination of such values and an absolute
// bound is relative to the value range. Scores, softmax state and accumulators are f32 (f16 K/V
// are rounded before the reference sees them), so only f32 rounding against float64 remains.
constexpr double kAtol = 1e-5;

std::vector<float> random_q(uint64_t n, uint32_t seed) {
  return random_values(n, seed, -2.0f, 2.0f);  // logits of order 1: many keys weigh in
}

uint64_t total_queries(std::span<const PrefillSeq> seqs) {
  uint64_t n = 0;
  for (const PrefillSeq& s : seqs) n += s.queries;
  return n;
}

// The reference for every entry, concatenated like the plan's output.
std::vector<double> reference(const KvHost& kv, const PrefillDesc& d, std::span<const float> q,
                              std::span<const PrefillSeq> seqs) {
  ref::Options o;
  o.scale = d.scale ? double{*d.scale} : double{1.0f / std::sqrt(static_cast<float>(kv.head_dim))};
  o.causal = d.causal;
  o.window = d.window;
  o.softcap = d.softcap ? double{*d.softcap} : 0.0;
  o.sinks = d.sinks;
  std::vector<double> out;
  size_t at = 0;
  for (const PrefillSeq& s : seqs) {
    const size_t n = size_t{d.q_heads} * s.queries * kv.head_dim;
    const std::vector<double> r =
        ref::attention(q.subspan(at, n), kv.k_of(s.seq), kv.v_of(s.seq), d.q_heads, kv.kv_heads,
                       s.queries, s.kv_length, kv.head_dim, kv.v_head_dim, kv.capacity, o);
    out.insert(out.end(), r.begin(), r.end());
    at += n;
  }
  return out;
}

// A cache filled with random K and V, and a plan over it.
struct Fixture {
  KvCacheDesc desc;
  KvCache cache;
  KvHost kv;

  Fixture(const KvCacheDesc& d, uint32_t seed)
      : desc(d), cache(context(), d), kv(random_kv(cache.desc(), seed)) {
    write_all(cache, kv);
  }

  // Runs `d` on `seqs` with random queries and checks against the reference; returns the output.
  std::vector<float> check(const PrefillDesc& d, std::span<const PrefillSeq> seqs, uint32_t seed,
                           double atol = kAtol) {
    PrefillPlan plan(context(), cache, d);
    const std::vector<float> q = random_q(total_queries(seqs) * d.q_heads * kv.head_dim, seed);
    return check(plan, d, q, seqs, atol);
  }

  std::vector<float> check(PrefillPlan& plan, const PrefillDesc& d, std::span<const float> q,
                           std::span<const PrefillSeq> seqs, double atol = kAtol) {
    std::vector<float> out = plan.run(q, seqs);
    const std::vector<double> want = reference(kv, d, q, seqs);
    if (std::getenv("GQAVK_TEST_PRINT_ERRORS")) {
      std::printf("max |diff| %.3g\n", max_abs_diff(out, want));
    }
    EXPECT_TRUE(all_close(out, want, d.q_heads, kv.v_head_dim, atol));
    return out;
  }
};

class Prefill : public GpuTest {};
class PrefillEveryWidth : public GpuTest {};

// ---------------------------------------------------------------------------------------------
// Causal self-attention of a whole prompt, odd lengths, f16 and f32.

TEST_F(PrefillEveryWidth, CausalSquare) {
  for (DType dtype : {DType::f16, DType::f32}) {
    Fixture f({2, 2, 64, 80, dtype, 16}, 1);
    const std::vector<PrefillSeq> seqs = {{0, 37, 37}, {1, 80, 80}};
    f.check({8}, seqs, 2);
  }
}

}  // namespace
}  // namespace gqavk::test
