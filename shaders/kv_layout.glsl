// Where a token's K and V rows and scales sit in the KV pool, as shaders/kv_block.h defines the
// block (the host writer uses the same functions): per block, every KV head's K slab (P tokens x
// ROW_K texels), then every head's V slab (P x ROW_V), then for q8 and q4 the scales; inside a
// slab, groups of 2^GROUP_SHIFT tokens, texel-column-major.
// The including shader declares BLOCK_SHIFT, GROUP_SHIFT, ROW_K, ROW_V, SW_K and SW_V (scale words
// per K and V row), and a push-constant block `pc` with kv_heads, blocks_per_seq and table_base; block_table
// is binding 1, one row of blocks_per_seq block ids per (layer, sequence).
#ifndef GQAVK_KV_LAYOUT_GLSL
#define GQAVK_KV_LAYOUT_GLSL

#include "kv_block.h"

layout(binding = 1, std430) readonly buffer BlockTable { uint block_table[]; };

// Texel 0 of token j's K row of KV head g in cache sequence b (returned) and of its V row (v_at);
// texel c of either row sits at that + (c << GROUP_SHIFT). k_sw and v_sw: the rows' first scale
// words (meaningful for q8 and q4 only).
uint kv_key_scales_at(uint b, uint g, uint j, out uint v_at, out uint k_sw, out uint v_sw) {
  const uint block = block_table[(pc.table_base + b) * pc.blocks_per_seq + (j >> BLOCK_SHIFT)];
  const uint slot = j & ((1u << BLOCK_SHIFT) - 1u);
  const uint heads = pc.kv_heads;
  const uint block_at = block * kv_block_texels(heads, BLOCK_SHIFT, ROW_K, ROW_V, SW_K, SW_V);
  v_at = block_at + kv_row_texel(heads, BLOCK_SHIFT, GROUP_SHIFT, ROW_K, ROW_V, g, slot, true);
  k_sw = block_at * 4u + kv_scale_word(heads, BLOCK_SHIFT, ROW_K, ROW_V, SW_K, SW_V, g, slot, false);
  v_sw = block_at * 4u + kv_scale_word(heads, BLOCK_SHIFT, ROW_K, ROW_V, SW_K, SW_V, g, slot, true);
  return block_at + kv_row_texel(heads, BLOCK_SHIFT, GROUP_SHIFT, ROW_K, ROW_V, g, slot, false);
}

// The same without the scales.
uint kv_key_at(uint b, uint g, uint j, out uint v_at) {
  uint k_sw, v_sw;
  return kv_key_scales_at(b, g, j, v_at, k_sw, v_sw);
}

#endif
