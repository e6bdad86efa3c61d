#include "kv_pages.hpp"

#include <algorithm>
#include <string>
#include <utility>

#include "gqavk/error.hpp"

namespace gqavk {

namespace {

[[noreturn]] void bad(const std::string& m) { throw Error(ErrorCode::invalid_argument, m); }

std::string str(uint64_t v) { return std::to_string(v); }

}  // namespace

KvPages::KvPages(uint32_t slots, uint32_t layers, uint32_t capacity_tokens, uint32_t block_tokens,
                 uint32_t pool_blocks, std::vector<uint32_t> windows)
    : slots_(slots),
      layers_(layers),
      capacity_(capacity_tokens),
      block_tokens_(block_tokens),
      blocks_per_seq_((capacity_tokens + block_tokens - 1) / block_tokens),
      windows_(std::move(windows)),
      table_(uint64_t{slots} * layers * blocks_per_seq_, kZeroBlock),
      refs_(pool_blocks, 0),
      lengths_(size_t{slots} * layers, 0),
      released_(size_t{slots} * layers, 0),
      open_(slots, 1),
      row_version_(slots, 0),
      tail_shared_(slots, 0) {
  free_.reserve(pool_blocks);
  // The highest block is taken first: a pool's far end sees use from the first sequence on.
  for (uint32_t b = 1; b < pool_blocks; ++b) free_.push_back(b);
}

void KvPages::check_seq(uint32_t seq, const char* what) const {
  if (seq >= slots_) {
    bad(std::string(what) + " " + str(seq) + " is out of range (the cache has " + str(slots_) +
        " sequence slots, 0 to " + str(slots_ - 1) + ")");
  }
  if (!open_[seq]) {
    bad(std::string(what) + " " + str(seq) + " is not open (free_sequence closed it; " +
        "add_sequence or fork_sequence opens a slot)");
  }
}

void KvPages::check_layer(uint32_t layer) const {
  if (layer >= layers_) {
    bad("layer " + str(layer) + " is out of range (the cache has " + str(layers_) + " layers)");
  }
}

bool KvPages::is_open(uint32_t seq) const { return seq < slots_ && open_[seq]; }

uint32_t KvPages::length(uint32_t seq, uint32_t layer) const {
  check_seq(seq, "sequence");
  check_layer(layer);
  return lengths_[at(seq, layer)];
}

uint32_t KvPages::released(uint32_t seq, uint32_t layer) const {
  check_seq(seq, "sequence");
  check_layer(layer);
  return released_[at(seq, layer)];
}

uint32_t KvPages::block_of(uint32_t seq, uint32_t layer, uint32_t token) const {
  return entry(seq, layer, token / block_tokens_);
}

uint32_t KvPages::take() {
  // Operations count the blocks they need first; an empty list here is a bug, never a crash.
  if (free_.empty())
    throw Error(ErrorCode::out_of_blocks, "internal: the KV pool's free list is empty");
  const uint32_t b = free_.back();
  free_.pop_back();
  refs_[b] = 1;
  return b;
}

void KvPages::drop(uint32_t& slot) {
  if (slot == kZeroBlock) return;
  if (--refs_[slot] == 0) free_.push_back(slot);
  slot = kZeroBlock;
  dirty_ = true;
}

uint32_t KvPages::lowest_closed() const {
  const auto it = std::find(open_.begin(), open_.end(), uint8_t{0});
  if (it == open_.end()) {
    throw Error(ErrorCode::invalid_argument,
                "every sequence slot is open (the cache holds at most " + str(slots_) +
                    " sequences; free_sequence one first, or make the cache with a larger batch)");
  }
  return static_cast<uint32_t>(it - open_.begin());
}

uint32_t KvPages::add() {
  const uint32_t seq = lowest_closed();
  open_[seq] = 1;
  for (uint32_t l = 0; l < layers_; ++l) lengths_[at(seq, l)] = released_[at(seq, l)] = 0;
  tail_shared_[seq] = 0;
  touch(seq);
  return seq;
}

void KvPages::free(uint32_t seq) {
  check_seq(seq, "sequence");
  truncate(seq, 0);
  open_[seq] = 0;
}

void KvPages::truncate(uint32_t seq, uint32_t tokens) {
  check_seq(seq, "sequence");
  // A window layer's next query, at `tokens`, must still see its whole window.
  for (uint32_t l = 0; l < layers_; ++l) {
    const uint32_t w = window(l), rel = released_[at(seq, l)];
    const uint32_t first_seen = tokens + 1 > w ? tokens + 1 - w : 0;
    if (tokens != 0 && tokens < lengths_[at(seq, l)] && w != 0 && first_seen < rel) {
      bad("sequence " + str(seq) + " cannot be truncated to " + str(tokens) + " tokens: layer " +
          str(l) + " (window " + str(w) + ") released its tokens before " + str(rel) +
          ", which a query at " + str(tokens) + " would see (expected 0, or at least " +
          str(rel + w - 1) + " tokens)");
    }
  }
  const uint32_t keep = (tokens + block_tokens_ - 1) / block_tokens_;  // blocks still holding some
  // A cut inside a block may leave a shared block (a fork's) last: append_token checks it again.
  if (tokens % block_tokens_ != 0) tail_shared_[seq] = 1;
  for (uint32_t l = 0; l < layers_; ++l) {
    uint32_t& len = lengths_[at(seq, l)];
    if (tokens >= len) continue;
    for (uint32_t i = keep; i < blocks_per_seq_; ++i) drop(entry(seq, l, i));
    len = tokens;
    touch(seq);
    if (tokens == 0) released_[at(seq, l)] = 0;
  }
}

uint32_t KvPages::fork(uint32_t parent, std::vector<Copy>& copies) {
  check_seq(parent, "parent sequence");
  const uint32_t child = lowest_closed();
  uint32_t partial = 0;
  for (uint32_t l = 0; l < layers_; ++l) partial += lengths_[at(parent, l)] % block_tokens_ != 0;
  if (partial > blocks_free()) {
    throw Error(ErrorCode::out_of_blocks,
                "forking sequence " + str(parent) + " copies " + str(partial) +
                    " partly filled blocks; the KV pool has " + str(blocks_free()) + " free of " +
                    str(pool_blocks() - 1) + " (free or truncate sequences first)");
  }
  open_[child] = 1;
  touch(child);
  for (uint32_t l = 0; l < layers_; ++l) {
    const uint32_t len = lengths_[at(parent, l)];
    lengths_[at(child, l)] = len;
    released_[at(child, l)] = released_[at(parent, l)];
    const uint32_t full = len / block_tokens_;
    for (uint32_t i = 0; i < full; ++i) {
      const uint32_t b = entry(parent, l, i);
      entry(child, l, i) = b;
      if (b != kZeroBlock) ++refs_[b];
    }
    if (len % block_tokens_ != 0) {
      const uint32_t b = take();
      copies.push_back({entry(parent, l, full), b});
      entry(child, l, full) = b;
    }
  }
  dirty_ = true;
  return child;
}

void KvPages::prepare_write(uint32_t seq, uint32_t layer, uint32_t first, uint32_t n,
                            std::vector<Copy>& copies) {
  const WriteRun run{seq, first, n};
  prepare_writes(layer, {&run, 1}, copies);
}

// What one run needs, after checking it: the end of the window layer's released prefix once it
// is written, blocks it takes, and blocks the release gives back.
struct KvPages::RunPlan {
  uint32_t release_to, need, freed;
};

KvPages::RunPlan KvPages::plan_run(uint32_t layer, const WriteRun& r) const {
  const size_t i = at(r.seq, layer);
  const uint32_t len = lengths_[i];
  const uint64_t end = uint64_t{r.first} + r.n;
  const auto where = [&] { return " of sequence " + str(r.seq) + " in layer " + str(layer); };
  if (r.n == 0) bad("n_tokens is 0 (expected at least 1 token to write)");
  if (end > capacity_) {
    bad("tokens [" + str(r.first) + ", " + str(end) + ") exceed the cache capacity of " +
        str(capacity_) + " tokens per sequence");
  }
  if (r.first > len) {
    bad("tokens [" + str(r.first) + ", " + str(end) + ")" + where() + " would leave tokens [" +
        str(len) + ", " + str(r.first) + ") unwritten (expected first_token <= the sequence's " +
        "length " + str(len) + ")");
  }
  if (r.first < released_[i]) {
    bad("token " + str(r.first) + where() + " lies before the window (W " + str(window(layer)) +
        "); its block went back to the pool (expected first_token >= " + str(released_[i]) + ")");
  }
  // A query at position `first` or later sees no key before first + 1 - W: the blocks wholly
  // before that go back to the pool.
  RunPlan p{released_[i], 0, 0};
  const uint32_t w = window(layer);
  if (w != 0 && r.first + 1 > w) {
    p.release_to = std::max(p.release_to, (r.first + 1 - w) / block_tokens_ * block_tokens_);
  }
  for (uint32_t b = released_[i] / block_tokens_; b < p.release_to / block_tokens_; ++b) {
    const uint32_t blk = entry(r.seq, layer, b);
    p.freed += blk != kZeroBlock && refs_[blk] == 1;
  }
  const uint32_t b_last = static_cast<uint32_t>((end - 1) / block_tokens_);
  for (uint32_t b = r.first / block_tokens_; b <= b_last; ++b) {
    const uint32_t blk = entry(r.seq, layer, b);
    p.need += blk == kZeroBlock || refs_[blk] > 1;  // new, or shared: copied before the write
  }
  return p;
}

void KvPages::prepare_writes(uint32_t layer, std::span<const WriteRun> runs,
                             std::vector<Copy>& copies) {
  prepare_writes_layers(layer, 1, runs, copies);
}

void KvPages::prepare_writes_layers(uint32_t first_layer, uint32_t n_layers,
                                    std::span<const WriteRun> runs, std::vector<Copy>& copies) {
  check_layer(first_layer);
  if (n_layers > 1) check_layer(first_layer + n_layers - 1);
  for (size_t r = 0; r < runs.size(); ++r) {
    check_seq(runs[r].seq, "sequence");
    for (size_t o = 0; o < r; ++o) {
      if (runs[o].seq == runs[r].seq) {
        bad("sequence " + str(runs[r].seq) + " appears twice in one write (expected each " +
            "sequence's tokens as one run of consecutive positions)");
      }
    }
  }
  // Every layer's plan first, so that running out of blocks in any layer changes nothing.
  std::vector<RunPlan> plans;
  plans.reserve(size_t{n_layers} * runs.size());
  uint64_t need = 0, freed = 0;
  for (uint32_t l = first_layer; l < first_layer + n_layers; ++l) {
    for (const WriteRun& run : runs) {
      plans.push_back(plan_run(l, run));
      need += plans.back().need;
      freed += plans.back().freed;
    }
  }
  if (need > blocks_free() + freed) {
    const WriteRun& r = runs.front();
    const std::string layers =
        n_layers == 1 ? "layer " + str(first_layer)
                      : "layers " + str(first_layer) + " to " + str(first_layer + n_layers - 1);
    const std::string what =
        runs.size() == 1 ? "writing tokens [" + str(r.first) + ", " + str(uint64_t{r.first} + r.n) +
                               ") of sequence " + str(r.seq) + " in " + layers
                         : "writing " + str(runs.size()) + " sequences' tokens in " + layers;
    throw Error(ErrorCode::out_of_blocks,
                what + " needs " + str(need) + " free blocks; the KV pool has " +
                    str(blocks_free() + freed) + " free of " + str(pool_blocks() - 1) +
                    " (free or truncate sequences first)");
  }

  // Every release first, then the writes: the totals checked above then cover every take.
  const RunPlan* plan = plans.data();
  for (uint32_t layer = first_layer; layer < first_layer + n_layers; ++layer) {
    for (const WriteRun& run : runs) {
      const size_t i = at(run.seq, layer);
      for (uint32_t b = released_[i] / block_tokens_; b < plan->release_to / block_tokens_; ++b) {
        drop(entry(run.seq, layer, b));
        touch(run.seq);
      }
      released_[i] = plan->release_to;
      ++plan;
    }
  }
  for (uint32_t layer = first_layer; layer < first_layer + n_layers; ++layer) {
    for (const WriteRun& run : runs) {
      const uint64_t end = uint64_t{run.first} + run.n;
      for (uint32_t b = run.first / block_tokens_; b <= (end - 1) / block_tokens_; ++b) {
        uint32_t& blk = entry(run.seq, layer, b);
        if (blk == kZeroBlock) {
          blk = take();
          dirty_ = true;
          touch(run.seq);
        } else if (refs_[blk] > 1) {  // shared with a fork: copy before writing
          const uint32_t copy = take();
          copies.push_back({blk, copy});
          --refs_[blk];
          blk = copy;
          dirty_ = true;
          touch(run.seq);
        }
      }
      uint32_t& len = lengths_[at(run.seq, layer)];
      len = std::max<uint32_t>(len, static_cast<uint32_t>(end));
    }
  }
}

void KvPages::append_token(std::span<const uint32_t> seqs, std::vector<Copy>& copies) {
  // The common case first: in every layer the token goes into the sequence's last block, which it
  // holds alone (no truncation into a shared block since the last full check: tail_shared_), and no
  // window moves past a block: only the lengths change. The checks read only per-sequence rows.
  bool simple = true;
  for (size_t r = 0; r < seqs.size(); ++r) {
    const uint32_t seq = seqs[r];
    check_seq(seq, "sequence");
    if (std::find(seqs.begin(), seqs.begin() + r, seq) != seqs.begin() + r) {
      bad("sequence " + str(seq) + " appears twice in one step (expected distinct sequences)");
    }
    const uint32_t len = lengths_[at(seq, 0)];
    for (uint32_t l = 0; l < layers_; ++l) {
      if (lengths_[at(seq, l)] != len) {
        bad("sequence " + str(seq) + " holds " + str(len) + " tokens in layer 0 but " +
            str(lengths_[at(seq, l)]) + " in layer " + str(l) +
            " (expected the same length in every layer)");
      }
      const uint32_t w = window(l);
      simple = simple && (w == 0 || len + 1 <= w ||
                          (len + 1 - w) / block_tokens_ * block_tokens_ <= released_[at(seq, l)]);
    }
    simple = simple && len % block_tokens_ != 0 && len < capacity_ && !tail_shared_[seq];
  }
  if (simple) {
    for (uint32_t seq : seqs) {
      for (uint32_t l = 0; l < layers_; ++l) ++lengths_[at(seq, l)];
    }
    return;
  }
  std::vector<WriteRun> runs;
  runs.reserve(seqs.size());
  for (uint32_t seq : seqs) runs.push_back({seq, lengths_[at(seq, 0)], 1});
  prepare_writes_layers(0, layers_, runs, copies);
  for (uint32_t seq : seqs) tail_shared_[seq] = 0;  // every layer's last block is its own now
}

}  // namespace gqavk
