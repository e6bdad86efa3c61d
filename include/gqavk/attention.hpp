// The attention options every plan takes (DESIGN.md, Semantics). Each can differ per layer: a model
// makes one plan per distinct set.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace gqavk {

struct AttentionOptions {
  std::optional<float> scale;  // softmax scale; default 1/sqrt(Dk)
  // Sliding window W (Mistral, Gemma): a query at position p sees keys j with p - W < j <= p,
  // itself included; W >= 1 (0 is an error). Unset means no window. Keys outside it are never read.
  std::optional<uint32_t> window;
  // Logit softcap c (Gemma 2): s = c * tanh(s / c), after scaling. Unset means none; c must be > 0.
  std::optional<float> softcap;
  // Attention sinks (gpt-oss): empty, or one finite f32 logit per query head. A sink joins its
  // head's softmax rows after scaling and softcap (it is neither scaled nor capped), adds to the
  // denominator only and contributes no value.
  std::vector<float> sinks;
};

}  // namespace gqavk
