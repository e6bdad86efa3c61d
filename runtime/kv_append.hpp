// The append kernel's pipeline (shaders/append_kv.comp), for KvCache::append and the gpu-compile
// test.
#pragma once

#include <cstdint>

#include "gqavk/kv_cache.hpp"
#include "pipeline.hpp"

namespace gqavk {

struct AppendParams {  // mirrors Params in shaders/append_kv.comp
  uint32_t tokens, kv_heads, blocks_per_seq, table_base, k_first, v_first;
};
static_assert(sizeof(AppendParams) == 24);

// The pipeline writing a cache of `desc` (v_head_dim resolved) with block and token-group shifts
// from K/V sources of type `src` (f32 or f16), through the pool's device address or a storage
// binding. Throws gqavk::Error naming an unsupported source type.
PipelineDesc append_pipeline_desc(const KvCacheDesc& desc, uint32_t block_shift,
                                  uint32_t group_shift, DType src, bool by_address);

}  // namespace gqavk
