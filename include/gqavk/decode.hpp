// gqavk::DecodePlan: one new query token per sequence attending to all of its cached keys.
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

struct DecodeDesc {
  uint32_t q_heads = 0;        // H; must be a multiple of the cache's kv_heads G
  std::optional<float> scale;  // softmax scale; default 1/sqrt(Dk)
  // Upper bound on KV splits per (sequence, KV head), fixed for the plan's life. 0 picks one from
  // the cache capacity (or the window) and the device's compute units; 1 turns split-K off.
  uint32_t max_splits = 0;
  // The query sits at position lengths[b] - 1: a window W reads only the last W keys.
  std::optional<uint32_t> window;  // AttentionOptions::window
  std::optional<float> softcap;    // AttentionOptions::softcap
  std::vector<float> sinks;        // AttentionOptions::sinks: empty or [H]
  // Which layer of the cache the plan reads. A window layer (KvCacheDesc::layer_windows) needs a
  // plan window no larger than the layer's.
  uint32_t layer = 0;
};

// Chooses pipeline variants and the split count once for a cache and head count; run() then
// records and submits the dispatches. Borrows the Context and the KvCache, which must outlive it.
class GQAVK_API DecodePlan {
 public:
  // Builds the plan; throws gqavk::Error for bad shapes or a device that cannot run them.
  DecodePlan(Context& context, const KvCache& cache, const DecodeDesc& desc);
  ~DecodePlan();
  DecodePlan(DecodePlan&&) noexcept;
  DecodePlan& operator=(DecodePlan&&) noexcept;
  DecodePlan(const DecodePlan&) = delete;
  DecodePlan& operator=(const DecodePlan&) = delete;

  // Runs attention of q [B, H, Dk] (f32, C order) over the first lengths[b] cached tokens of each
  // sequence slot b of the plan's layer (B = the cache's batch; every slot open, 1 <= lengths[b] <=
  // the tokens written to it) and writes out [B, H, Dv] (f32). Blocks until done.
  void run(std::span<const float> q, std::span<const uint32_t> lengths, std::span<float> out);
  // Convenience form that returns the output.
  std::vector<float> run(std::span<const float> q, std::span<const uint32_t> lengths);

  // KV splits per (sequence, KV head) that this plan dispatches.
  uint32_t splits() const;
  // GPU time of the last run's attention dispatches in nanoseconds, from timestamp queries; 0 when
  // the device has no timestamps.
  double last_gpu_ns() const;

 private:
  friend struct detail::Access;  // the runtime's door to Impl (runtime/impl_access.hpp)
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gqavk
