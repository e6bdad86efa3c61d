// Decode shapes of real models for gqavk's tools and tests (gqavk-info, the gpu-compile test),
// named as gqavk-bench names them ("H:32/G:8/D:128/f16"), and the DecodeShape a plan of such a
// shape has on a KV cache: what decode_pipeline_descs and choose_decode_tuning take.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gqavk/types.hpp"
#include "prefill_pipelines.hpp"
#include "tuning.hpp"

namespace gqavk::tools {

struct ModelShape {
  std::string model;  // e.g. "llama3_8b"; empty for a shape given on a command line
  uint32_t q_heads = 0;
  uint32_t kv_heads = 0;
  uint32_t head_dim = 0;
  DType dtype = DType::f16;
  uint32_t capacity_tokens = 16384;  // a realistic cache: the tuning's split count depends on it
  uint32_t batch = 1;
  uint32_t v_head_dim = 0;  // Dv where it differs from head_dim (Dk); 0: equal
};

// The model shapes gqavk's tests run (Llama-3-8B, Qwen2-7B, Falcon-7B, Qwen2-0.5B, Phi-3-mini,
// Gemma-2-9B), each in f16, then each in f32.
std::vector<ModelShape> model_shapes();

// "H:32/G:8/D:128/f16", with "/L:n" and "/B:n" where capacity and batch differ from the defaults
// and "/Dv:n" where Dv differs from D.
std::string shape_name(const ModelShape& shape);

// Parses shape_name's form: H, G and D are required (H a multiple of G, D a head dim gqavk
// supports), f16 or f32 (default f16), L, B and Dv optional (Dv 128 with D 192), in any order.
// Throws gqavk::Error (invalid_argument) naming the text and what was expected.
ModelShape parse_shape(std::string_view text);

// The DecodeShape of a plan for `shape` on a KvCache of its capacity in 16-token blocks made on
// `device`; the pool size and layout are computed as runtime/kv_cache.cpp does.
DecodeShape decode_shape(const ModelShape& shape, const DeviceInfo& device);

// The same for a prefill plan's kernels (Dv from v_head_dim where set).
PrefillShape prefill_shape(const ModelShape& shape, const DeviceInfo& device);

}  // namespace gqavk::tools
