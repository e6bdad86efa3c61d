// KvPages: the host's book of a paged KV pool: which block holds which tokens of which (sequence,
// layer), reference counts, the free list, and the window layers' released prefixes. Pure host
// logic (no Vulkan), so its rules are tested exhaustively on their own; KvCache mirrors `table` to
// the device and performs the block copies the operations ask for.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace gqavk {

class KvPages {
 public:
  static constexpr uint32_t kZeroBlock = 0;  // reserved, always zero: "no block here"

  // A block the device must copy before any write of the operation that asked for it.
  struct Copy {
    uint32_t src, dst;
  };

  KvPages() = default;
  // slots x layers block tables of ceil(capacity_tokens / block_tokens) entries over pool_blocks
  // blocks (block 0 reserved); windows: empty or one per layer (0: full layer).
  KvPages(uint32_t slots, uint32_t layers, uint32_t capacity_tokens, uint32_t block_tokens,
          uint32_t pool_blocks, std::vector<uint32_t> windows);

  uint32_t slots() const { return slots_; }
  uint32_t layers() const { return layers_; }
  uint32_t blocks_per_seq() const { return blocks_per_seq_; }
  uint32_t pool_blocks() const { return static_cast<uint32_t>(refs_.size()); }
  uint32_t blocks_free() const { return static_cast<uint32_t>(free_.size()); }
  uint32_t blocks_in_use() const { return pool_blocks() - 1 - blocks_free(); }
  uint32_t window(uint32_t layer) const { return windows_.empty() ? 0 : windows_[layer]; }

  bool is_open(uint32_t seq) const;
  uint32_t length(uint32_t seq, uint32_t layer) const;
  uint32_t released(uint32_t seq, uint32_t layer) const;
  uint32_t refs(uint32_t block) const { return refs_[block]; }
  // The block holding `token` of (seq, layer), or kZeroBlock.
  uint32_t block_of(uint32_t seq, uint32_t layer, uint32_t token) const;
  // Every table row, [layers][slots][blocks_per_seq], as the kernels read it.
  const std::vector<uint32_t>& table() const { return table_; }
  // Whether `table` changed since the last clear_dirty (the device copy is stale).
  bool dirty() const { return dirty_; }
  void clear_dirty() { dirty_ = false; }

  uint32_t add();
  void free(uint32_t seq);
  // Appends to `copies` the partly filled last blocks the child must receive.
  uint32_t fork(uint32_t parent, std::vector<Copy>& copies);
  void truncate(uint32_t seq, uint32_t tokens);
  // Tokens [first, first + n) of one sequence.
  struct WriteRun {
    uint32_t seq, first, n;
  };
  // prepare_write for several sequences of one layer at once, each at most once: all or nothing.
  void prepare_writes(uint32_t layer, std::span<const WriteRun> runs, std::vector<Copy>& copies);
  // The same runs in layers [first_layer, first_layer + n_layers) (a decode step appends one token
  // per sequence to every layer): all layers or none.
  void prepare_writes_layers(uint32_t first_layer, uint32_t n_layers,
                             std::span<const WriteRun> runs, std::vector<Copy>& copies);
  // A decode step: one token at the end of each of `seqs` (distinct) in every layer, whose lengths
  // must agree; all or nothing. Only lengths change unless a block is taken, copied or released.
  void append_token(std::span<const uint32_t> seqs, std::vector<Copy>& copies);
  // Changes whenever a table entry of `seq` does (in any layer), to a value never used before:
  // a copy of the sequence's rows made at one version is current while the version is.
  uint64_t row_version(uint32_t seq) const { return row_version_[seq]; }
  // Makes tokens [first, first + n) of (seq, layer) writable: checks the range, releases what a
  // window layer no longer needs, takes new blocks and replaces shared ones by copies (appended
  // to `copies`), and extends the length. All checks come first: on error nothing changes.
  void prepare_write(uint32_t seq, uint32_t layer, uint32_t first, uint32_t n,
                     std::vector<Copy>& copies);

 private:
  uint32_t& entry(uint32_t seq, uint32_t layer, uint32_t index) {
    return table_[(uint64_t{layer} * slots_ + seq) * blocks_per_seq_ + index];
  }
  uint32_t entry(uint32_t seq, uint32_t layer, uint32_t index) const {
    return table_[(uint64_t{layer} * slots_ + seq) * blocks_per_seq_ + index];
  }
  size_t at(uint32_t seq, uint32_t layer) const { return size_t{seq} * layers_ + layer; }
  struct RunPlan;
  RunPlan plan_run(uint32_t layer, const WriteRun& run) const;
  void check_seq(uint32_t seq, const char* what) const;
  void check_layer(uint32_t layer) const;
  uint32_t take();
  void drop(uint32_t& slot);  // releases the block in a table entry, leaving kZeroBlock
  uint32_t lowest_closed() const;
  void touch(uint32_t seq) { row_version_[seq] = ++versions_; }

  uint32_t slots_ = 0, layers_ = 0, capacity_ = 0, block_tokens_ = 1, blocks_per_seq_ = 0;
  std::vector<uint32_t> windows_;
  std::vector<uint32_t> table_;
  std::vector<uint32_t> refs_;      // per block; refs_[0] stays 0
  std::vector<uint32_t> free_;      // a stack: the most recently freed block is reused first
  std::vector<uint32_t> lengths_;   // [slots][layers]
  std::vector<uint32_t> released_;  // [slots][layers], a multiple of block_tokens
  std::vector<uint8_t> open_;
  std::vector<uint64_t> row_version_;  // per slot (row_version)
  std::vector<uint8_t> tail_shared_;   // per slot: some layer's last block may be shared
  uint64_t versions_ = 0;
  bool dirty_ = true;
};

}  // namespace gqavk
