// Push-constant blocks of the decode kernels, mirrored from the shaders.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gqavk {

struct DecodeParams {  // mirrors Params in shaders/decode_io.glsl
  uint32_t q_heads, kv_heads, group_size, head_chunks, splits, blocks_per_seq;
  float scale;
  uint32_t capacity;    // tokens a sequence holds; the kernels clamp lengths to it
  uint32_t window;      // 0: none
  float softcap;        // 0: none
  uint32_t has_sinks;   // 1: the sinks binding holds one logit per query head
  uint32_t table_base;  // the layer's first block-table row (KvCache::Impl::table_base)
};
static_assert(sizeof(DecodeParams) == 48);
static_assert(offsetof(DecodeParams, scale) == 24);
static_assert(offsetof(DecodeParams, capacity) == 28);
static_assert(offsetof(DecodeParams, window) == 32);
static_assert(offsetof(DecodeParams, softcap) == 36);
static_assert(offsetof(DecodeParams, has_sinks) == 40);
static_assert(offsetof(DecodeParams, table_base) == 44);

struct MergeParams {  // mirrors Params in shaders/merge_splits.comp
  uint32_t rows, splits, q_heads, has_sinks;
};
static_assert(sizeof(MergeParams) == 16);
static_assert(offsetof(MergeParams, has_sinks) == 12);

}  // namespace gqavk
