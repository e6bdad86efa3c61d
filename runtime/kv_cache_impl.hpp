// KvCache::Impl: the pool, its texel view or address, and the block table, for the kernels that
// read them.
#pragma once

#include <optional>

#include "buffer.hpp"
#include "context_impl.hpp"
#include "gqavk/kv_cache.hpp"
#include "pipeline.hpp"
#include "tuning.hpp"

namespace gqavk {

struct KvCache::Impl {
  Context::Impl* ctx = nullptr;
  KvCacheDesc desc;
  uint32_t block_shift = 0;     // log2(desc.block_tokens)
  uint32_t group_shift = 0;     // log2(KG): kv_group_shift() of the device (tuning.hpp)
  uint32_t blocks_per_seq = 0;  // ceil(capacity / block_tokens)
  uint64_t k_row_bytes = 0;     // one token of one head's K: head_dim * dtype bytes
  uint64_t v_row_bytes = 0;     // and of V: v_head_dim * dtype bytes
  uint64_t block_bytes = 0;     // kv_heads * block_tokens * (k_row_bytes + v_row_bytes)
  Buffer pool;
  std::optional<TexelView> texel_view;  // when the pool fits maxTexelBufferElements
  Buffer block_table;                   // [batch, blocks_per_seq] physical block ids
  // The pool's 64-bit device address (16 bytes), binding 0 of the address path; empty on a device
  // without bufferDeviceAddress.
  Buffer pool_address;

  // Binding 0 of a kernel reading the pool with `path`; throws gqavk::Error (unsupported) when
  // the pool has no such binding (too large for a texel view, or no device address).
  Binding pool_binding(LoadPath path) const;

  // A block holds, for each KV head g, a K slab of P tokens x Dk values, then (after all heads' K)
  // for each head a V slab of P tokens x Dv values. K and V slabs share one layout: groups of KG
  // tokens (8 or 1, see kv_group_shift), each texel-column-major: the 16-byte texel c of token t
  // sits at ((t / KG) * row_texels + c) * KG + t % KG texels, so kernel lanes holding consecutive
  // keys read consecutive texels and a lane-vector's walk over a row streams through memory.
  // shaders/kv_layout.glsl computes the same addresses.
  uint64_t slab_offset(uint32_t block, uint32_t g, bool v) const {
    const uint64_t p = desc.block_tokens;
    const uint64_t in_block =
        v ? p * (desc.kv_heads * k_row_bytes + g * v_row_bytes) : p * g * k_row_bytes;
    return block * block_bytes + in_block;
  }
};

}  // namespace gqavk
