// KvCache::Impl: the pool, its texel view and the block table, for the kernels that read them.
#pragma once

#include <cstdint>
#include <optional>

#include "buffer.hpp"
#include "context_impl.hpp"
#include "gqavk/kv_cache.hpp"

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

struct KvCache::Impl {
  Context::Impl* ctx = nullptr;
  KvCacheDesc desc;
  uint32_t block_shift = 0;     // log2(desc.block_tokens)
  uint32_t group_shift = 0;     // log2(KG): kv_group_shift() of the device (tuning.hpp)
  uint32_t blocks_per_seq = 0;  // ceil(capacity / block_tokens)
  uint32_t row_k = 0;           // texels of one token's K row: head_dim / values per texel
  uint32_t row_v = 0;           // and of V
  uint32_t scale_words_k = 0;   // scale words per K row (q8, q4; 0 otherwise)
  uint32_t scale_words_v = 0;   // and per V row
  uint64_t block_bytes = 0;     // 16 * kv_block_texels
  Buffer pool;
  std::optional<TexelView> texel_view;  // when the pool fits maxTexelBufferElements
  Buffer block_table;                   // [batch, blocks_per_seq] physical block ids

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
