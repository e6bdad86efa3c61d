// The float64 CPU reference every kernel is compared against: the tests, gqavk-bench and
// gqavk-demo all check against this one copy (library gqavk_reference). Semantics as in DESIGN.md.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace gqavk::ref {

// The options of DESIGN.md's semantics.
struct Options {
  double scale = 0;              // 0: 1/sqrt(Dk)
  bool causal = true;            // bottom-right aligned
  uint32_t window = 0;           // 0: none
  double softcap = 0;            // 0: none
  std::span<const float> sinks;  // empty, or one logit per query head
};

// Attention of one sequence in float64. q: [H, Lq, Dk]; k: KV head g, token t at
// ((g * capacity) + t) * Dk; v the same with Dv; the first lk tokens are keys. Returns [H, Lq, Dv].
// Query head h reads KV head h / (H / G). A row that sees no key yields zeros.
std::vector<double> attention(std::span<const float> q, const float* k, const float* v,
                              uint32_t q_heads, uint32_t kv_heads, uint32_t lq, uint32_t lk,
                              uint32_t dk, uint32_t dv, uint32_t capacity, const Options& options);

// Decode attention in float64: each sequence's one query sits at position lengths[b] - 1.
// q: [B, H, Dk]; k, v: per sequence b, [G, cap, Dk] (v: Dv) at offset b * G * cap * Dk (v: Dv)
// (cap = capacity); lengths: [B]. Returns [B, H, Dv] (dv 0: Dv = Dk). A length of 0 yields zeros.
std::vector<double> decode(std::span<const float> q, std::span<const float> k,
                           std::span<const float> v, std::span<const uint32_t> lengths,
                           uint32_t batch, uint32_t q_heads, uint32_t kv_heads, uint32_t head_dim,
                           uint32_t capacity, double scale, const Options& options = {},
                           uint32_t dv = 0);

// Largest |got[i] - want[i]| over the common length; infinite if any got[i] is not finite, so a
// NaN output never passes a tolerance check.
double max_abs_diff(std::span<const float> got, std::span<const double> want);

}  // namespace gqavk::ref
