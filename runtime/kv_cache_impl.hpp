// KvCache::Impl: the pool, its texel view or address, and the block table, for the kernels that
// read them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "buffer.hpp"
#include "commands.hpp"
#include "context_impl.hpp"
#include "gqavk/kv_cache.hpp"
#include "impl_access.hpp"
#include "kv_pages.hpp"
#include "pipeline.hpp"
#include "tuning.hpp"

namespace gqavk {

// The block layout shared with the kernels (shaders/kv_block.h), in uint32_t arithmetic.
namespace kv_block {
using uint = uint32_t;
#include "kv_block.h"
static_assert(KV_TYPE_F32 == static_cast<uint>(DType::f32) &&
              KV_TYPE_F16 == static_cast<uint>(DType::f16) &&
              KV_TYPE_BF16 == static_cast<uint>(DType::bf16) &&
              KV_TYPE_Q8 == static_cast<uint>(DType::q8) &&
              KV_TYPE_Q4 == static_cast<uint>(DType::q4));
static_assert(KV_VALUES_PER_TEXEL(KV_TYPE_Q4) == values_per_texel(DType::q4) &&
              KV_VALUES_PER_TEXEL(KV_TYPE_Q8) == values_per_texel(DType::q8) &&
              KV_VALUES_PER_TEXEL(KV_TYPE_BF16) == values_per_texel(DType::bf16) &&
              KV_VALUES_PER_TEXEL(KV_TYPE_F32) == values_per_texel(DType::f32));
static_assert(KV_SCALE_WORDS(KV_TYPE_Q4, 96u) * 4 == scale_bytes(DType::q4, 96) &&
              KV_SCALE_WORDS(KV_TYPE_Q4, 256u) * 4 == scale_bytes(DType::q4, 256) &&
              KV_SCALE_WORDS(KV_TYPE_Q8, 80u) * 4 == scale_bytes(DType::q8, 80));
// Two heads of P 2, K rows of 2 texels, V of 1, q8: slabs 12 texels, K and V scales 1 texel each.
static_assert(kv_block_texels(2, 1, 2, 1, 1, 1) == 14 &&
              kv_scale_word(2, 1, 2, 1, 1, 1, 1, 1, true) == 55);
}  // namespace kv_block

struct GQAVK_HIDDEN KvCache::Impl {
  ImplOf<Context>* ctx = nullptr;
  KvCacheDesc desc;
  uint32_t block_shift = 0;     // log2(desc.block_tokens)
  uint32_t group_shift = 0;     // log2(KG): kv_group_shift() of the device (tuning.hpp)
  uint32_t blocks_per_seq = 0;  // ceil(capacity / block_tokens): one block table row
  uint32_t row_k = 0;           // texels of one token's K row: head_dim / values per texel
  uint32_t row_v = 0;           // and of V
  uint32_t scale_words_k = 0;   // scale words per K row (q8, q4; 0 otherwise)
  uint32_t scale_words_v = 0;   // and per V row
  uint64_t block_bytes = 0;     // 16 * kv_block_texels
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
  // Entries of the block tables: a row of blocks_per_seq per (layer, sequence slot).
  uint64_t table_entries() const { return uint64_t{desc.layers} * desc.batch * blocks_per_seq; }
  // The sizes of a cache of `desc` (KvCache::plan_memory): every block but the reserved one free.
  KvMemory planned_memory() const;
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

  // Byte offset of texel 0 of head g's K (v false) or V row in slot `slot` of `block`. A block
  // holds every head's K slab, then every V slab, then (q8, q4) the scales; see kv_block.h.
  uint64_t row_offset(uint32_t block, uint32_t g, uint32_t slot, bool v) const {
    return block * block_bytes + 16ull * kv_block::kv_row_texel(desc.kv_heads, block_shift,
                                                                group_shift, row_k, row_v, g, slot,
                                                                v);
  }
  // Byte offset of the first scale word of that row.
  uint64_t scale_offset(uint32_t block, uint32_t g, uint32_t slot, bool v) const {
    return block * block_bytes + 4ull * kv_block::kv_scale_word(desc.kv_heads, block_shift, row_k,
                                                                row_v, scale_words_k, scale_words_v,
                                                                g, slot, v);
  }
};

}  // namespace gqavk
