// gqavk::KvCache: the keys and values of B sequences, stored on the device in token blocks.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "gqavk/types.hpp"

namespace gqavk {

class Context;

struct KvCacheDesc {
  uint32_t batch = 1;            // sequences B
  uint32_t kv_heads = 1;         // G
  uint32_t head_dim = 128;       // Dk of Q and K: one of 64, 80, 96, 112, 128, 192, 256 (q4:
                                 // multiples of 32 only)
  uint32_t capacity_tokens = 0;  // tokens each sequence can hold
  DType dtype = DType::f16;      // storage type of K and V (types.hpp)
  // P, tokens per block: a power of two from 1 to 256. Large blocks stream best (a workgroup reads
  // a head's K or V slab of P * D values contiguously); small ones waste less when paging.
  uint32_t block_tokens = 256;
  // Dv of V, when it differs from Dk (0: the same). Supported pairs: Dv == Dk, and Dk 192 with Dv
  // 128 (MLA models run in their expanded form).
  uint32_t v_head_dim = 0;
};

// One pool of blocks; each block holds P tokens of K (Dk values each) for every KV head, then P
// tokens of V (Dv values each) for every KV head, then (q8, q4) their scales. Each
// sequence reads its blocks through a block table (here the identity: sequence b owns blocks
// [b * blocks_per_seq, (b + 1) * blocks_per_seq)). Borrows the Context, which must outlive it.
class KvCache {
 public:
  // Allocates the pool; throws gqavk::Error for a bad desc or a pool the device cannot hold.
  KvCache(Context& context, const KvCacheDesc& desc);
  ~KvCache();
  KvCache(KvCache&&) noexcept;
  KvCache& operator=(KvCache&&) noexcept;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  // The shape this cache was made with (v_head_dim resolved: never 0).
  const KvCacheDesc& desc() const;
  // Bytes of K and V the pool holds (capacity, all sequences).
  uint64_t bytes() const;
  // Writes tokens [first_token, first_token + n_tokens) of sequence `seq`. k is [G, n_tokens, Dk]
  // and v [G, n_tokens, Dv] in C order (one batch entry of PyTorch's [B, G, L, D]); f32 input is
  // rounded or quantised to the storage type. A value the type cannot hold throws rather than
  // being stored wrong: a finite value too large for f16 or bf16, a non-finite one for q8 or q4,
  // and for q4 |x| >= 458640 (its f16 scale would overflow). Nothing is written when an argument
  // is bad.
  void write(uint32_t seq, uint32_t first_token, uint32_t n_tokens, std::span<const float> k,
             std::span<const float> v);
  // The same from IEEE half bit patterns; the cache must store f16.
  void write_f16(uint32_t seq, uint32_t first_token, uint32_t n_tokens, std::span<const uint16_t> k,
                 std::span<const uint16_t> v);

  struct Impl;
  // Internal state, for the runtime and in-tree tools only.
  Impl& impl() const { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace gqavk
