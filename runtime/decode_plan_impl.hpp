// DecodePlan::Impl: the chosen variant, its pipelines, buffers and descriptor sets.
#pragma once

#include <memory>

#include "buffer.hpp"
#include "commands.hpp"
#include "context_impl.hpp"
#include "gqavk/decode.hpp"
#include "impl_access.hpp"
#include "kv_cache_impl.hpp"
#include "pipeline.hpp"
#include "tuning.hpp"

namespace gqavk {

struct GQAVK_HIDDEN DecodePlan::Impl {
  ImplOf<Context>* ctx = nullptr;
  ImplOf<KvCache>* cache = nullptr;
  uint32_t batch = 0, q_heads = 0, kv_heads = 0, head_dim = 0, v_head_dim = 0;
  float scale = 0;
  uint32_t window = 0;  // 0: none
  uint32_t layer = 0;   // the cache layer read
  float softcap = 0;    // 0: none
  bool has_sinks = false;
  DecodeTuning tuning;

  std::shared_ptr<const ComputePipeline> decode;
  std::shared_ptr<const ComputePipeline> merge;   // only when tuning.max_splits > 1
  Buffer q, lengths, out, partial, stats, sinks;  // sinks: [H] f32, or 16 unused bytes
  DescriptorSet decode_set, merge_set;
  TimestampQueries timestamps;
  double last_gpu_ns = 0;

  // Records the attention dispatches (decode, then merge when split), timestamps around them.
  void record_attention(VkCommandBuffer cmd) const;
  // Validates run() arguments; throws gqavk::Error naming the bad value.
  void check_run(size_t q_size, std::span<const uint32_t> lengths, size_t out_size) const;
};

}  // namespace gqavk
