// KvCache::Impl: the pool, its texel view and the block table, for the kernels that read them.
#pragma once

#include <optional>

#include "buffer.hpp"
#include "context_impl.hpp"
#include "gqavk/kv_cache.hpp"

namespace gqavk {

struct KvCache::Impl {
  Context::Impl* ctx = nullptr;
  KvCacheDesc desc;
  uint32_t block_shift = 0;     // log2(desc.block_tokens)
  uint32_t group_shift = 0;     // log2(KG): kv_group_shift() of the device (tuning.hpp)
  uint32_t blocks_per_seq = 0;  // ceil(capacity / block_tokens)
  uint64_t row_bytes = 0;       // one token of one head: head_dim * dtype bytes
  uint64_t block_bytes = 0;     // 2 * kv_heads * block_tokens * row_bytes
  Buffer pool;
  std::optional<TexelView> texel_view;  // when the pool fits maxTexelBufferElements
  Buffer block_table;                   // [batch, blocks_per_seq] physical block ids

  // A block holds, for each KV head g, a K slab then (after all heads' K) a V slab, each P tokens x
  // D values. K and V slabs share one layout: groups of KG tokens (8 or 1, see kv_group_shift),
  // each texel-column-major: the 16-byte texel c of token t sits at ((t / KG) * row_texels + c) *
  // KG + t % KG texels, so kernel lanes holding consecutive keys read consecutive texels and a
  // lane-vector's walk over a row streams through memory.
  uint64_t slab_offset(uint32_t block, uint32_t g, bool v) const {
    return block * block_bytes + (uint64_t{v} * desc.kv_heads + g) * desc.block_tokens * row_bytes;
  }
};

}  // namespace gqavk
