// PrefillPlan::Impl: the chosen variant, its pipeline, buffers (grown on demand) and descriptor
// set.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "buffer.hpp"
#include "commands.hpp"
#include "context_impl.hpp"
#include "gqavk/prefill.hpp"
#include "impl_access.hpp"
#include "kv_cache_impl.hpp"
#include "pipeline.hpp"
#include "prefill_params.hpp"
#include "prefill_pipelines.hpp"

namespace gqavk {

struct GQAVK_HIDDEN PrefillPlan::Impl {
  ImplOf<Context>* ctx = nullptr;
  ImplOf<KvCache>* cache = nullptr;
  PrefillShape shape;
  PrefillTuning tuning;
  PrefillParams params{};
  uint32_t layer = 0;  // the cache layer read

  std::shared_ptr<const ComputePipeline> pipeline;
  Buffer entries, tiles, q, out, sinks;  // entries .. out grow on run (set rebuilt then)
  DescriptorSet set;
  TimestampQueries timestamps;
  double last_gpu_ns = 0;

  // Validates run() arguments; throws gqavk::Error naming the bad value.
  void check_run(std::span<const float> q_values, std::span<const PrefillSeq> seqs,
                 size_t out_size) const;
  // The entries and the tiles of `seqs`, heaviest tiles first (causal tiles late in a sequence
  // see the most keys; starting them first evens out the end of the dispatch).
  void build_work(std::span<const PrefillSeq> seqs, std::vector<PrefillEntry>& entry_list,
                  std::vector<PrefillTile>& tile_list) const;
  // Grows the run buffers to hold the given byte counts, rebuilding the descriptor set if any grew.
  void reserve(uint64_t entry_bytes, uint64_t tile_bytes, uint64_t q_bytes, uint64_t out_bytes);
};

}  // namespace gqavk
