// What both decode tiers (decode_split.comp, decode_gpu.comp) read and write, mirrored on the host
// by runtime/decode_params.hpp and runtime/decode_plan.cpp, and where a key's rows sit in the KV
// pool. The including shader declares BLOCK_SHIFT, GROUP_SHIFT, ROW_K and ROW_V (texels per K and V
// row), QK and QV (vec4s per query and per output row: Dk / 4, Dv / 4) and DIRECT_OUT first.
#ifndef GQAVK_DECODE_IO_GLSL
#define GQAVK_DECODE_IO_GLSL

#include "softmax.glsl"

layout(push_constant) uniform Params {
  uint q_heads;         // H
  uint kv_heads;        // G
  uint group_size;      // H / G
  uint head_chunks;     // workgroups per KV head along y
  uint splits;          // workgroups per (sequence, KV head, chunk) along x
  uint blocks_per_seq;  // row length of the block table
  float scale;
  uint capacity;   // tokens a sequence holds: lengths are clamped to it
  uint window;     // sliding window W: the query at len - 1 sees keys [len - W, len); 0: none
  float softcap;   // c > 0: s = c * tanh(s / c) after scaling; 0: none
  uint has_sinks;  // 1: sinks[] holds one logit per query head
  uint table_base;     // the layer's first block-table row: sequence b reads row table_base + b
} pc;

layout(binding = 2, std430) readonly buffer Lengths { uint lengths[]; };
layout(binding = 3, std430) readonly buffer Query { vec4 q_in[]; };  // [B, H, QK]
// DIRECT_OUT: [B, H, QV]. Otherwise [B, H, splits, QV], each split normalised by its own sum.
layout(binding = 4, std430) writeonly buffer Out { vec4 o_out[]; };
layout(binding = 5, std430) writeonly buffer RowStats { vec2 ml_out[]; };  // [B, H, splits]: (m, l)
// [H] when pc.has_sinks; read only with DIRECT_OUT (merge_splits.comp folds them in otherwise).
layout(binding = 6, std430) readonly buffer Sinks { float sinks[]; };

// Keys [k_begin, k_end) of split `split` of sequence b: the window's keys [max(0, len - W), len)
// cut into pc.splits equal runs, so keys before the window are never read.
void split_keys(uint b, uint split, out uint k_begin, out uint k_end) {
  const uint len = min(lengths[b], pc.capacity);
  const uint first = pc.window != 0u && len > pc.window ? len - pc.window : 0u;
  const uint per_split = (len - first + pc.splits - 1u) / pc.splits;
  k_begin = min(len, first + split * per_split);
  k_end = min(len, k_begin + per_split);
}

// The factor that turns a row's unnormalised sum (max m, denominator l) into what the kernel writes
// for query head `head`: with DIRECT_OUT the output, its sink folded in; else the split's own row.
float out_factor(uint head, float m, float l) {
  if (DIRECT_OUT && pc.has_sinks != 0u) return sink_factor(m, l, sinks[head]);
  return l != 0.0 ? 1.0 / l : 0.0;
}

#include "kv_layout.glsl"

#endif
