// KvCache::Impl: the pool, its texel view or address, and the block table, for the kernels that
// read them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "buffer.hpp"
#include "commands.hpp"
#include "context_impl.hpp"
#include "gqavk/kv_cache.hpp"
#include "kv_pages.hpp"
#include "pipeline.hpp"
#include "tuning.hpp"

namespace gqavk {

struct KvCache::Impl {
  Context::Impl* ctx = nullptr;
  KvCacheDesc desc;
  uint32_t block_shift = 0;     // log2(desc.block_tokens)
  uint32_t group_shift = 0;     // log2(KG): kv_group_shift() of the device (tuning.hpp)
  uint32_t blocks_per_seq = 0;  // ceil(capacity / block_tokens): one block table row
  uint64_t k_row_bytes = 0;     // one token of one head's K: head_dim * dtype bytes
  uint64_t v_row_bytes = 0;     // and of V: v_head_dim * dtype bytes
  uint64_t block_bytes = 0;     // kv_heads * block_tokens * (k_row_bytes + v_row_bytes)
  Buffer pool;
  std::optional<TexelView> texel_view;  // when the pool fits maxTexelBufferElements
  Buffer block_table;                   // [layers, batch, blocks_per_seq] block ids (pages.table)
  KvPages pages;                        // the host's book of the pool
  TimestampQueries append_timestamps;   // around append's dispatch, made at its first use
  double last_append_gpu_ns = 0;

  // Uploads the block tables when an operation changed them; plans call it before each run.
  void sync_tables() {
    if (!pages.dirty()) return;
    const std::vector<uint32_t>& t = pages.table();
    ctx->upload(block_table, 0, t.data(), t.size() * sizeof(uint32_t));
    pages.clear_dirty();
  }
  // Copies whole blocks on the device (forks, copy-on-write).
  void copy_blocks(const std::vector<KvPages::Copy>& copies);
  // The first block-table row of `layer`: the kernels' table_base.
  uint32_t table_base(uint32_t layer) const { return layer * desc.batch; }
  // Throws unless `layer` exists and, for a window layer, the plan's window is set and no larger.
  void check_plan_layer(uint32_t layer, std::optional<uint32_t> window) const;
  // Throws unless keys [first_key, end_key) of sequence `seq` in `layer` are written and still
  // held (not released by a window layer); `what` names the caller's value (e.g. "lengths[2]").
  void check_readable(uint32_t seq, uint32_t layer, uint32_t first_key, uint32_t end_key,
                      const std::string& what) const;
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
