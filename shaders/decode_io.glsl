// What both decode tiers (decode_split.comp, decode_gpu.comp) read and write, mirrored on the host
// by runtime/decode_params.hpp and runtime/decode_plan.cpp, and where a key's rows sit in the KV
// pool. The including shader declares BLOCK_SHIFT, GROUP_SHIFT, ROW_K and ROW_V (texels per K and V
// row) first.
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
  uint capacity;  // tokens a sequence holds: lengths are clamped to it
} pc;

layout(binding = 2, std430) readonly buffer Lengths { uint lengths[]; };
layout(binding = 3, std430) readonly buffer Query { vec4 q_in[]; };  // [B, H, HEAD_DIM / 4]
// DIRECT_OUT: [B, H, HEAD_DIM / 4]. Otherwise [B, H, splits, HEAD_DIM / 4], each split
// normalised by its own sum.
layout(binding = 4, std430) writeonly buffer Out { vec4 o_out[]; };
layout(binding = 5, std430) writeonly buffer RowStats { vec2 ml_out[]; };  // [B, H, splits]: (m, l)

#include "kv_layout.glsl"

#endif
