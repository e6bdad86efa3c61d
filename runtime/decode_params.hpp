// Push-constant blocks of the decode kernels, mirrored from the shaders.
#pragma once

#include <cstddef>
#include <cstdint>

namespace gqavk {

struct DecodeParams {  // mirrors Params in shaders/decode_split.comp and decode_gpu.comp
  uint32_t q_heads, kv_heads, group_size, head_chunks, splits, blocks_per_seq;
  float scale;
  uint32_t capacity;  // tokens a sequence holds; the kernels clamp lengths to it
};
static_assert(sizeof(DecodeParams) == 32);
static_assert(offsetof(DecodeParams, scale) == 24);
static_assert(offsetof(DecodeParams, capacity) == 28);

struct MergeParams {  // mirrors Params in shaders/merge_splits.comp
  uint32_t rows, splits;
};
static_assert(sizeof(MergeParams) == 8);

}  // namespace gqavk
