// What both prefill tiers (prefill_cpu.comp, prefill_gpu.comp) read and write, mirrored on the
// host by runtime/prefill_params.hpp and runtime/prefill_plan.cpp. The including shader declares
// BLOCK_SHIFT, GROUP_SHIFT, ROW_K and ROW_V (texels per K and V row), DK and DV (head dims) first.
//
// Dispatch: x = one workgroup per query tile (tiles[]), y = KV heads x head_chunks. A tile is
// (entry, first query): the tile's queries are [first, min(first + the kernel's tile, Lq)) of that
// entry, for the query heads of its KV head (chunk). The host builds tiles[] with the tile height
// the tuning chose, so the kernel needs no search.
#ifndef GQAVK_PREFILL_IO_GLSL
#define GQAVK_PREFILL_IO_GLSL

#include "softmax.glsl"

layout(push_constant) uniform Params {
  uint q_heads;         // H
  uint kv_heads;        // G
  uint group_size;      // H / G
  uint head_chunks;     // workgroups per KV head along y
  uint blocks_per_seq;  // row length of the block table
  uint capacity;        // tokens a sequence holds: kv lengths are clamped to it
  float scale;
  float softcap;        // c > 0, or 0 for none
  uint window;          // W > 0, or 0 for none
  uint causal;          // 1: bottom-right causal; 0: every query sees all keys
  uint has_sinks;       // 1: sinks[] holds a logit per query head
  uint table_base;     // the layer's first block-table row: sequence b reads row table_base + b
} pc;

// Per entry of the ragged batch: (cache sequence b, queries Lq, keys Lk, first row). Row r of Q
// and O is query head h, query i of the entry with r = first_row + h * Lq + i.
layout(binding = 2, std430) readonly buffer Entries { uvec4 entries[]; };
layout(binding = 3, std430) readonly buffer Tiles { uvec2 tiles[]; };  // (entry, first query)
layout(binding = 4, std430) readonly buffer Query { vec4 q_in[]; };    // rows of DK / 4 vec4s
layout(binding = 5, std430) writeonly buffer Out { vec4 o_out[]; };    // rows of DV / 4 vec4s
layout(binding = 6, std430) readonly buffer Sinks { float sinks[]; };  // [H]; unused without sinks

#include "kv_layout.glsl"

// Keys query position p sees: [lo, hi). Causal: j <= p; window W: j > p - W; clamped to [0, lk).
void visible_keys(uint p, uint lk, out uint lo, out uint hi) {
  hi = pc.causal != 0u ? min(p + 1u, lk) : lk;
  lo = pc.window != 0u && p + 1u > pc.window ? p + 1u - pc.window : 0u;
  lo = min(lo, hi);
}

#endif
