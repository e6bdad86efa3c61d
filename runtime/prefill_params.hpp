// Push constants of the prefill kernels, mirrored from shaders/prefill_io.glsl.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gqavk {

struct PrefillParams {  // mirrors Params in shaders/prefill_io.glsl
  uint32_t q_heads, kv_heads, group_size, head_chunks, blocks_per_seq, capacity;
  float scale;
  float softcap;  // c > 0, or 0 for none
  uint32_t window, causal, has_sinks;
  uint32_t table_base;  // the layer's first block-table row (KvCache::Impl::table_base)
};
static_assert(sizeof(PrefillParams) == 48);
static_assert(offsetof(PrefillParams, scale) == 24);
static_assert(offsetof(PrefillParams, softcap) == 28);
static_assert(offsetof(PrefillParams, window) == 32);
static_assert(offsetof(PrefillParams, has_sinks) == 40);
static_assert(offsetof(PrefillParams, table_base) == 44);

// entries[] of prefill_io.glsl: one per entry of the ragged batch.
struct PrefillEntry {
  uint32_t seq, queries, kv_length, first_row;  // first_row: rows of the entries before it
};
static_assert(sizeof(PrefillEntry) == 16);

// tiles[]: a workgroup's entry and first query.
struct PrefillTile {
  uint32_t entry, first_query;
};
static_assert(sizeof(PrefillTile) == 8);

}  // namespace gqavk
