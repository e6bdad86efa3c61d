// The float64 CPU reference every kernel is compared against: the tests, gqavk-bench and
// gqavk-demo all check against this one copy (library gqavk_reference). Semantics as in DESIGN.md.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace gqavk::ref {

// Decode attention in float64. q: [B, H, D]; k, v: per sequence b, [G, cap, D] at
// offset b * G * cap * D (cap = capacity); lengths: [B]. Returns [B, H, D].
// Query head h reads KV head h / (H / G). A sequence of length 0 yields zeros.
std::vector<double> decode(std::span<const float> q, std::span<const float> k,
                           std::span<const float> v, std::span<const uint32_t> lengths,
                           uint32_t batch, uint32_t q_heads, uint32_t kv_heads, uint32_t head_dim,
                           uint32_t capacity, double scale);

// Largest |got[i] - want[i]| over the common length; infinite if any got[i] is not finite, so a
// NaN output never passes a tolerance check.
double max_abs_diff(std::span<const float> got, std::span<const double> want);

}  // namespace gqavk::ref
