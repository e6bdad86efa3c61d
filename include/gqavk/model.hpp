// gqavk::ModelDesc: the attention layers of a model, built in code or read from a Hugging Face
// config.json, for DecodeStep (decode_step.hpp) and capacity planning.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gqavk/export.h"
#include "gqavk/types.hpp"

namespace gqavk {

struct KvCacheDesc;

// One attention layer: its shape and options (attention.hpp gives the semantics of each option).
struct LayerDesc {
  uint32_t q_heads = 0;            // H, a multiple of kv_heads
  uint32_t kv_heads = 0;           // G
  uint32_t head_dim = 0;           // Dk of Q and K
  uint32_t v_head_dim = 0;         // Dv of V; 0: the same as head_dim
  std::optional<uint32_t> window;  // sliding window W >= 1; unset: a full (global) layer
  std::optional<float> softcap;    // logit softcap c > 0; unset: none
  std::optional<float> scale;      // softmax scale; unset: 1 / sqrt(head_dim)
  // Attention sinks: empty (none) or one logit per query head. They are learned weights, not in
  // config.json: from_hf_config gives gpt-oss layers H zeros, to be replaced by the model's values.
  std::vector<float> sinks;
  DType kv_dtype = DType::f16;  // how the KV cache stores this layer's K and V
};

struct GQAVK_API ModelDesc {
  std::string name;  // e.g. "Llama-3-8B"; informational
  std::vector<LayerDesc> layers;

  // Reads a Hugging Face config.json (the text). Fields read: num_attention_heads,
  // num_key_value_heads (default: num_attention_heads), head_dim (default: hidden_size /
  // num_attention_heads), num_hidden_layers, layer_types ("sliding_attention" or
  // "full_attention", one per layer), sliding_window (null: none), sliding_window_pattern (every
  // n-th layer full), use_sliding_window and max_window_layers (Qwen2: false makes every layer
  // full; true makes layers from max_window_layers on window layers), attn_logit_softcapping
  // (null: none), query_pre_attn_scalar (scale = query_pre_attn_scalar^-1/2), torch_dtype
  // (bfloat16, float16 or float32: the KV storage type; absent: float16) and model_type (gemma2
  // makes even layers window layers without layer_types; gpt_oss has sinks). A window with no rule
  // above applies to every layer (Mistral v0.1). A multimodal config's fields are read from its
  // text_config, falling back to the top level for those it lacks (torch_dtype). Falcon's older
  // names (n_head, n_layer, n_head_kv or num_kv_heads, and multi_query: one KV head) are accepted.
  // Throws gqavk::Error (invalid_argument) naming the field for bad JSON (with the parser's
  // position), a missing, null or mistyped field, a count that is not a positive integer, an
  // unknown layer type, a window layer without sliding_window, H % G != 0, or a layer_types list
  // whose length differs from num_hidden_layers; then checks the result with validate().
  static ModelDesc from_hf_config(std::string_view json, std::string_view name = {});
  // from_hf_config of a file; the name defaults to the file's stem ("Llama-3-8B" for
  // samples/configs/Llama-3-8B.json). Throws naming a file that cannot be read.
  static ModelDesc load_hf_config(const std::string& path);

  // Throws gqavk::Error (invalid_argument) naming the first bad layer and field: no layers, a zero
  // head count or head dim, H % G != 0, window 0, softcap <= 0 or not finite, scale <= 0 or not
  // finite, sinks neither empty nor one per query head, a non-finite sink.
  void validate() const;

  // The KV cache a DecodeStep of this model reads: `slots` sequences of `capacity_tokens` each,
  // every layer in one pool, window layers marked so their old blocks return to the pool. All
  // layers must share kv_heads, head_dim, v_head_dim and kv_dtype (one pool holds one row shape);
  // otherwise throws naming the first layer that differs and the field.
  KvCacheDesc cache_desc(uint32_t slots, uint32_t capacity_tokens,
                         uint32_t block_tokens = 256) const;
};

}  // namespace gqavk
