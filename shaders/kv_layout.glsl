// Where a token's K and V rows sit in the KV pool, in 16-byte texels, as runtime/kv_cache_impl.hpp
// lays them out: per block, every KV head's K slab (P tokens x ROW_K texels), then every head's V
// slab (P x ROW_V); inside a slab, groups of 2^GROUP_SHIFT tokens, texel-column-major.
// The including shader declares BLOCK_SHIFT, GROUP_SHIFT, ROW_K and ROW_V, and a push-constant
// block `pc` with kv_heads, blocks_per_seq and table_base; block_table is binding 1, one row of
// blocks_per_seq block ids per (layer, sequence).
#ifndef GQAVK_KV_LAYOUT_GLSL
#define GQAVK_KV_LAYOUT_GLSL

layout(binding = 1, std430) readonly buffer BlockTable { uint block_table[]; };

// Texel 0 of token j's K row of KV head g in cache sequence b (returned) and of its V row (v_at);
// texel c of either row sits at that + (c << GROUP_SHIFT).
uint kv_key_at(uint b, uint g, uint j, out uint v_at) {
  const uint block = block_table[(pc.table_base + b) * pc.blocks_per_seq + (j >> BLOCK_SHIFT)];
  const uint slot = j & ((1u << BLOCK_SHIFT) - 1u);
  const uint group_mask = (1u << GROUP_SHIFT) - 1u;
  const uint group_at = (slot >> GROUP_SHIFT) << GROUP_SHIFT;
  const uint in_group = slot & group_mask;
  const uint block_at = (block * pc.kv_heads * (ROW_K + ROW_V)) << BLOCK_SHIFT;
  v_at = block_at + ((pc.kv_heads * ROW_K + g * ROW_V) << BLOCK_SHIFT) + group_at * ROW_V + in_group;
  return block_at + ((g * ROW_K) << BLOCK_SHIFT) + group_at * ROW_K + in_group;
}

#endif
