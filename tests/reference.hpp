// The float64 CPU reference every kernel is compared against. Semantics as in DESIGN.md.
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

}  // namespace gqavk::ref
