// gqavk::PrefillPlan: many query tokens per sequence (prompt processing, chunked prefill, cross
// attention), for a ragged batch of sequences in one call.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "gqavk/attention.hpp"
#include "gqavk/detail.hpp"
#include "gqavk/export.h"

namespace gqavk {

class Context;
class KvCache;

struct PrefillDesc {
  uint32_t q_heads = 0;        // H; must be a multiple of the cache's kv_heads G
  std::optional<float> scale;  // softmax scale; default 1/sqrt(Dk)
  // Causal, bottom-right aligned: query i of a sequence with Lq queries and Lk keys sits at
  // position Lk - Lq + i and sees keys j <= that position (PyTorch's is_causal is top-left
  // aligned; the two agree when Lq == Lk). False: every query sees all Lk keys (cross attention).
  bool causal = true;
  std::optional<uint32_t> window;  // AttentionOptions::window; needs causal
  std::optional<float> softcap;    // AttentionOptions::softcap
  std::vector<float> sinks;        // AttentionOptions::sinks: empty or [H]
  // Which layer of the cache the plan reads. A window layer (KvCacheDesc::layer_windows) needs a
  // plan window no larger than the layer's.
  uint32_t layer = 0;
};

// One sequence of a ragged batch: its queries attend to the first kv_length tokens of cache
// sequence `seq`. For chunked prefill, write the chunk's K and V to the cache first; the chunk's
// queries are then the last `queries` of those kv_length tokens.
struct PrefillSeq {
  uint32_t seq = 0;        // the cache's sequence index
  uint32_t queries = 0;    // Lq >= 1
  uint32_t kv_length = 0;  // Lk, 1 to the tokens written to `seq`; Lq <= Lk when causal
};

// Chooses pipeline variants and tiles once for a cache and options; run() records and submits the
// dispatches. Borrows the Context and the KvCache, which must outlive it.
class GQAVK_API PrefillPlan {
 public:
  // Builds the plan; throws gqavk::Error for bad shapes or options or a device that cannot run
  // them.
  PrefillPlan(Context& context, const KvCache& cache, const PrefillDesc& desc);
  ~PrefillPlan();
  PrefillPlan(PrefillPlan&&) noexcept;
  PrefillPlan& operator=(PrefillPlan&&) noexcept;
  PrefillPlan(const PrefillPlan&) = delete;
  PrefillPlan& operator=(const PrefillPlan&) = delete;

  // Runs attention for the batch `seqs`. q packs each entry's [H, Lq, Dk] block (f32, C order) one
  // after another with no padding; out receives each entry's [H, Lq, Dv] block the same way. For a
  // batch of equal Lq this is PyTorch's [B, H, Lq, D]. Blocks until done.
  void run(std::span<const float> q, std::span<const PrefillSeq> seqs, std::span<float> out);
  // Convenience form that returns the output.
  std::vector<float> run(std::span<const float> q, std::span<const PrefillSeq> seqs);

  // GPU time of the last run's attention dispatches in nanoseconds, from timestamp queries; 0 when
  // the device has no timestamps.
  double last_gpu_ns() const;

 private:
  friend struct detail::Access;  // the runtime's door to Impl (runtime/impl_access.hpp)
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gqavk
