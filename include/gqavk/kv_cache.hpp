// gqavk::KvCache: the keys and values of many sequences and layers, in one paged pool on the
// device.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "gqavk/detail.hpp"
#include "gqavk/export.h"
#include "gqavk/types.hpp"

namespace gqavk {

class Context;
class DeviceBuffer;

// Where one new token of KvCache::append goes: its sequence and its position there.
struct KvToken {
  uint32_t seq = 0;
  uint32_t position = 0;
};

struct KvCacheDesc {
  // Sequence slots: the cache holds at most this many sequences at once, with ids 0 to batch - 1.
  // Every slot starts open and empty; free_sequence closes one and add_sequence opens one again.
  uint32_t batch = 1;
  uint32_t kv_heads = 1;         // G
  uint32_t head_dim = 128;       // Dk of Q and K: one of 64, 80, 96, 112, 128, 192, 256 (q4:
                                 // multiples of 32 only)
  uint32_t capacity_tokens = 0;  // tokens one sequence can hold in each layer
  DType dtype = DType::f16;      // storage type of K and V (types.hpp)
  // P, tokens per block: a power of two from 1 to 256. Large blocks stream best (a workgroup reads
  // a head's K or V slab of P * D values contiguously); small ones waste less when paging.
  uint32_t block_tokens = 256;
  // Dv of V, when it differs from Dk (0: the same). Supported pairs: Dv == Dk, and Dk 192 with Dv
  // 128 (MLA models run in their expanded form).
  uint32_t v_head_dim = 0;
  // Layers of the model: one pool serves them all; each (sequence, layer) has its own block table.
  uint32_t layers = 1;
  // Blocks of the shared pool, all layers together. 0: enough for every slot to fill its capacity
  // in every layer (no sharing needed). Fewer oversubscribe the pool: sequences take blocks as
  // they grow, and running out is an error that changes nothing.
  uint32_t pool_blocks = 0;
  // Empty, or one entry per layer: W > 0 makes that layer a sliding-window layer that keeps only
  // what a query within W tokens can still see (blocks wholly before every future query's window
  // go back to the pool as the sequence grows); 0 keeps the whole sequence.
  std::vector<uint32_t> layer_windows;
};

// What the pool holds and uses, in bytes and blocks (KvCache::memory).
struct KvMemory {
  uint64_t block_bytes = 0;    // one block: P tokens of K and V for every KV head
  uint64_t token_bytes = 0;    // one token of one layer, K and V of every KV head
  uint64_t pool_bytes = 0;     // the whole pool as allocated (block_bytes x pool_blocks)
  uint32_t pool_blocks = 0;    // blocks in the pool, the reserved zero block included
  uint32_t blocks_in_use = 0;  // blocks some sequence holds (shared blocks count once)
  uint32_t blocks_free = 0;    // blocks a sequence can still take
  uint64_t bytes_in_use = 0;   // blocks_in_use x block_bytes
  uint64_t table_bytes = 0;    // the block tables on the device
};

// A paged KV cache: one pool of blocks shared by every sequence and layer. Each block holds P
// tokens of K (Dk values each) for every KV head, then P tokens of V (Dv values each) for every KV
// head, then (q8, q4) their scales (shaders/kv_block.h). Sequence s reads layer l through its block
// table, a row of ceil(capacity / P) block ids; blocks are taken from the pool as the sequence
// grows, shared by forks (reference counted, copied before a write changes a shared block) and
// returned when a sequence is truncated or freed, or falls out of a window layer's reach. Block 0
// is reserved and always zero: table entries without a block point at it. Borrows the Context,
// which must outlive it.
class GQAVK_API KvCache {
 public:
  // Allocates the pool; throws gqavk::Error for a bad desc or a pool the device cannot hold.
  KvCache(Context& context, const KvCacheDesc& desc);
  // The same with the pool in the application's buffer (DeviceBuffer::wrap, with the usages a KV
  // pool needs): its first plan_memory(desc).pool_bytes bytes are the pool, zeroed here. Borrows
  // the buffer, which must outlive the cache.
  KvCache(Context& context, const KvCacheDesc& desc, const DeviceBuffer& pool);
  ~KvCache();
  KvCache(KvCache&&) noexcept;
  KvCache& operator=(KvCache&&) noexcept;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  // The shape this cache was made with (v_head_dim and pool_blocks resolved: never 0).
  const KvCacheDesc& desc() const;
  // Bytes of the pool as allocated (KvMemory::pool_bytes).
  uint64_t bytes() const;
  // Blocks and bytes in use and free; the figures agree with what is allocated.
  KvMemory memory() const;
  // What a cache of `desc` would allocate, without a device (capacity planning): block, token,
  // pool and table bytes, every block but the reserved one free. Throws for a bad desc.
  static KvMemory plan_memory(const KvCacheDesc& desc);

  // Opens the lowest closed sequence slot, empty in every layer, and returns its id; throws when
  // every slot is open.
  uint32_t add_sequence();
  // Returns every block of sequence `seq` (all layers) to the pool and closes its slot.
  void free_sequence(uint32_t seq);
  // Opens the lowest closed slot holding the same tokens as `parent` in every layer and returns
  // its id: full blocks are shared, a partly filled last block is copied. Throws, changing
  // nothing, when no slot is closed or the pool lacks the blocks to copy.
  uint32_t fork_sequence(uint32_t parent);
  // Keeps the first `tokens` tokens of `seq` in every layer (layers holding fewer keep theirs);
  // blocks past them return to the pool.
  void truncate(uint32_t seq, uint32_t tokens);
  // Whether slot `seq` is open.
  bool is_open(uint32_t seq) const;
  // Tokens written to sequence `seq` in `layer`.
  uint32_t length(uint32_t seq, uint32_t layer = 0) const;
  // Tokens of `seq` in `layer` whose blocks a window layer has returned to the pool: they can no
  // longer be read or written (0 for full layers).
  uint32_t released_tokens(uint32_t seq, uint32_t layer = 0) const;

  // Writes tokens [first_token, first_token + n_tokens) of sequence `seq` in `layer`, taking blocks
  // from the pool as needed: first_token <= length(seq, layer) (a write may overwrite tokens and
  // extend the sequence, never leave a hole). k is [G, n_tokens, Dk] and v [G, n_tokens, Dv] in C
  // order (one batch entry of PyTorch's [B, G, L, D]); f32 input is rounded or quantised to the
  // storage type. A value the type cannot hold throws rather than being stored wrong: a finite
  // value too large for f16 or bf16, a non-finite one for q8 or q4, and for q4 |x| >= 458640 (its
  // f16 scale would overflow). Nothing is written when an argument is bad or the pool is out of
  // blocks.
  void write(uint32_t seq, uint32_t first_token, uint32_t n_tokens, std::span<const float> k,
             std::span<const float> v, uint32_t layer = 0);
  // The same from IEEE half bit patterns; the cache must store f16.
  void write_f16(uint32_t seq, uint32_t first_token, uint32_t n_tokens, std::span<const uint16_t> k,
                 std::span<const uint16_t> v, uint32_t layer = 0);

  // Writes a batch of tokens' K and V into `layer` on the device, converting them to the storage
  // type there; the host copies nothing but the block tables. k holds [tokens, G, Dk] and v
  // [tokens, G, Dv] values of type `src` (f32, f16 or bf16) from element k_first / v_first on
  // (even for 16-bit types). tokens[i] names token i's sequence and position: each sequence's
  // tokens are consecutive positions in order, starting at most at its length (appends, or
  // overwrites of its last tokens). All blocks are taken before anything is written: a pool that
  // runs out throws out_of_blocks and changes nothing. A finite value too large for f16 storage is
  // stored as infinity and reported by an Error after the write. Blocks until done.
  void append(uint32_t layer, std::span<const KvToken> tokens, const DeviceBuffer& k,
              const DeviceBuffer& v, DType src = DType::f32, uint64_t k_first = 0,
              uint64_t v_first = 0);
  // GPU time of the last append's kernel in nanoseconds, from timestamp queries; 0 when the device
  // has no timestamps.
  double last_append_gpu_ns() const;

 private:
  friend struct detail::Access;  // the runtime's door to Impl (runtime/impl_access.hpp)
  struct Impl;
  KvCache(Context& context, const KvCacheDesc& desc, const DeviceBuffer* pool);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gqavk
