#include <chrono>
#include <cmath>

#include "reference.hpp"
#include "test_support.hpp"

namespace gqavk::test {
namespace {

struct Shape {
  uint32_t batch, q_heads, kv_heads, head_dim, len;
  DType dtype;
  uint32_t splits;
};

double run_case(const Shape& s) {
  Context& ctx = context();
  const uint32_t cap = s.len;
  KvCache cache(ctx, {s.batch, s.kv_heads, s.head_dim, cap, s.dtype, 16});
  const size_t per_seq = size_t{s.kv_heads} * cap * s.head_dim;
  std::vector<float> k = random_values(per_seq * s.batch, 1);
  std::vector<float> v = random_values(per_seq * s.batch, 2);
  if (s.dtype == DType::f16) {  // the reference sees what the cache stores
    for (float& x : k) x = half_to_float(float_to_half(x));
    for (float& x : v) x = half_to_float(float_to_half(x));
  }
  for (uint32_t b = 0; b < s.batch; ++b) {
    cache.write(b, 0, cap, std::span(k).subspan(b * per_seq, per_seq),
                std::span(v).subspan(b * per_seq, per_seq));
  }
  std::vector<float> q = random_values(size_t{s.batch} * s.q_heads * s.head_dim, 3, -2, 2);
  std::vector<uint32_t> lens(s.batch, s.len);
  auto t0 = std::chrono::steady_clock::now();
  DecodePlan plan(ctx, cache, {s.q_heads, std::nullopt, s.splits});
  auto t1 = std::chrono::steady_clock::now();
  std::vector<float> out = plan.run(q, lens);
  auto t2 = std::chrono::steady_clock::now();
  for (int i = 0; i < 3; ++i) { plan.run(q, lens); std::printf("  again gpu %.3f ms\n", plan.last_gpu_ns() / 1e6); }
  std::vector<double> want = ref::decode(q, k, v, lens, s.batch, s.q_heads, s.kv_heads,
                                         s.head_dim, cap, 1.0 / std::sqrt(double(s.head_dim)));
  double err = 0;
  for (size_t i = 0; i < out.size(); ++i) err = std::max(err, std::abs(out[i] - want[i]));
  std::printf("plan %.1f ms run %.1f ms gpu %.3f ms splits %u err %g\n",
              std::chrono::duration<double, std::milli>(t1 - t0).count(),
              std::chrono::duration<double, std::milli>(t2 - t1).count(), plan.last_gpu_ns() / 1e6,
              plan.splits(), err);
  return err;
}

class Decode : public GpuTest {};

TEST_F(Decode, Basic) {
  const auto& d = context().device();
  std::printf("%s lanes %u partial %d\n", d.name.c_str(), d.subgroup_lanes, d.bug_partial_subgroups);
  EXPECT_LT(run_case({1, 32, 8, 128, 1000, DType::f16, 1}), 1e-4);
  EXPECT_LT(run_case({2, 32, 8, 128, 1000, DType::f32, 5}), 1e-4);
  EXPECT_LT(run_case({1, 8, 1, 64, 77, DType::f32, 0}), 1e-4);
}

}  // namespace
}  // namespace gqavk::test
