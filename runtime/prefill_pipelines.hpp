// Prefill tuning (a pure function of the device record and the shape) and the pipelines a prefill
// plan runs, as descriptions: PrefillPlan builds them, and so may tools that only compile them.
#pragma once

#include <cstdint>

#include "gqavk/device_info.hpp"
#include "gqavk/types.hpp"
#include "pipeline.hpp"
#include "tuning.hpp"

namespace gqavk {

struct PrefillShape {
  uint32_t q_heads = 1;
  uint32_t kv_heads = 1;
  uint32_t head_dim = 128;    // Dk
  uint32_t v_head_dim = 128;  // Dv
  DType dtype = DType::f16;
  uint32_t capacity_tokens = 1;
  uint64_t pool_bytes = 0;   // bytes of the KV pool binding
  uint32_t block_shift = 4;  // log2 of the cache's tokens per block
  uint32_t group_shift = 3;  // log2 of the cache's token group (kv_group_shift)
  bool softcap = false;      // the plan caps logits (CPU tier: a variant without the tanh)
};

struct PrefillTuning {
  Tier tier = Tier::cpu;
  LoadPath load_path = LoadPath::storage;
  uint32_t lanes = 8;                   // workgroup invocations
  uint32_t tile_queries = 8;            // TILE_Q: queries per workgroup (CPU tier: lanes * rows)
  uint32_t heads_per_workgroup = 1;     // HEADS: query heads of one group per workgroup
  uint32_t head_chunks = 1;             // workgroups per KV head: ceil(H/G / heads_per_workgroup)
  uint32_t keys_per_tile = 8;           // keys per step: CPU tier fetched as one batch, GPU tier
                                        // staged in shared memory
  uint32_t required_subgroup_size = 0;  // 0 for none
  bool full_subgroups = false;
  // GPU tier (prefill_gpu_tuning.hpp): butterflies by subgroup shuffles or through shared memory,
  // lanes of one subgroup, and lanes T sharing one query row's head dim.
  Reduction reduction = Reduction::subgroup;
  uint32_t subgroup_lanes = 0;
  uint32_t lanes_per_row = 0;
};

// Chooses how to run prefill for `shape` on `device`: the tier and load path as decode chooses
// them (GQAVK_TIER and GQAVK_KV_LOAD override), then the tile sizes of that tier. Throws
// gqavk::Error (unsupported) when no variant fits the device.
PrefillTuning choose_prefill_tuning(const DeviceInfo& device, const PrefillShape& shape,
                                    const TuningOverrides& overrides = {});

struct PrefillPipelineDescs {
  PipelineDesc prefill;  // prefill_cpu.comp (CPU tier) or prefill_gpu.comp (GPU tier)
};

// The pipelines for `shape` run with tuning `t`.
PrefillPipelineDescs prefill_pipeline_descs(const PrefillShape& shape, const PrefillTuning& t);

// Bytes of shared memory the prefill kernel of `t` declares.
uint64_t prefill_shared_bytes(const PrefillShape& shape, const PrefillTuning& t);

// Checks what a prefill plan of `shape` with tuning `t` needs against the device's limits
// (descriptors, workgroup size, shared memory); throws gqavk::Error (unsupported) naming the limit.
// run() checks the per-call sizes (rows, tiles) with check_prefill_run_limits.
void check_prefill_limits(const DeviceInfo& device, const PrefillShape& shape,
                          const PrefillTuning& t);

// Checks one run's buffers and dispatch against the device's limits: q and out bytes, the tile
// count along x.
void check_prefill_run_limits(const DeviceInfo& device, const PrefillShape& shape,
                              const PrefillTuning& t, uint64_t q_bytes, uint64_t out_bytes,
                              uint64_t tiles);

}  // namespace gqavk
