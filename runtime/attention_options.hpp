// The checks every plan makes of the options it shares with the others (AttentionOptions).
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace gqavk {

// Throws gqavk::Error (invalid_argument) naming the bad value: q_heads not a positive multiple of
// the cache's kv_heads, a scale or softcap that is not finite and > 0, a window of 0, sinks that
// are not one finite logit per query head.
void check_attention_options(uint32_t q_heads, uint32_t kv_heads, std::optional<float> scale,
                             std::optional<uint32_t> window, std::optional<float> softcap,
                             std::span<const float> sinks);

}  // namespace gqavk
