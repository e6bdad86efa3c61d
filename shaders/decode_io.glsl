// What both decode tiers (decode_split.comp, decode_gpu.comp) read and write, mirrored on the host
// by runtime/decode_params.hpp and runtime/decode_plan.cpp, and where a key's rows sit in the KV
// pool. The including shader declares BLOCK_SHIFT, GROUP_SHIFT and ROW (texels per row) first.
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

layout(binding = 1, std430) readonly buffer BlockTable { uint block_table[]; };
layout(binding = 2, std430) readonly buffer Lengths { uint lengths[]; };
layout(binding = 3, std430) readonly buffer Query { vec4 q_in[]; };  // [B, H, HEAD_DIM / 4]
// DIRECT_OUT: [B, H, HEAD_DIM / 4]. Otherwise [B, H, splits, HEAD_DIM / 4], each split
// normalised by its own sum.
layout(binding = 4, std430) writeonly buffer Out { vec4 o_out[]; };
layout(binding = 5, std430) writeonly buffer RowStats { vec2 ml_out[]; };  // [B, H, splits]: (m, l)

// Texel 0 of token j's K row of KV head g in sequence b (returned) and of its V row (v_at), in the
// layout of runtime/kv_cache_impl.hpp: groups of 2^GROUP_SHIFT tokens, texel-column-major, so
// texel c of the row sits at the result + (c << GROUP_SHIFT).
uint kv_key_at(uint b, uint g, uint j, out uint v_at) {
  const uint block = block_table[b * pc.blocks_per_seq + (j >> BLOCK_SHIFT)];
  const uint slot = j & ((1u << BLOCK_SHIFT) - 1u);
  const uint group_mask = (1u << GROUP_SHIFT) - 1u;
  const uint in_slab = ((slot >> GROUP_SHIFT) * ROW << GROUP_SHIFT) + (slot & group_mask);
  v_at = ((block * 2u * pc.kv_heads + pc.kv_heads + g) << BLOCK_SHIFT) * ROW + in_slab;
  return ((block * 2u * pc.kv_heads + g) << BLOCK_SHIFT) * ROW + in_slab;
}

#endif
