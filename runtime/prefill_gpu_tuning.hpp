// The prefill kernel's GPU tier (shaders/prefill_gpu.comp): how its tiles, lanes and subgroups are
// chosen for a device (a pure function, unit-tested without a GPU) and the pipeline it builds.
// PrefillPlan takes it when the tuning picks the GPU tier; gqavk-info and the gpu-compile test
// build the same pipeline on any device, RADV's null hardware included.
#pragma once

#include <cstdint>

#include "gqavk/device_info.hpp"
#include "gqavk/types.hpp"
#include "pipeline.hpp"
#include "tuning.hpp"

namespace gqavk {

// What the prefill kernels' code depends on: the cache's layout and a plan's head counts.
struct PrefillKernelShape {
  uint32_t q_heads = 1;
  uint32_t kv_heads = 1;
  uint32_t k_head_dim = 128;  // Dk
  uint32_t v_head_dim = 128;  // Dv
  DType dtype = DType::f16;
  uint64_t pool_bytes = 0;   // bytes of the KV pool binding
  uint32_t block_shift = 4;  // log2 of the cache's tokens per block
  uint32_t group_shift = 0;  // log2 of the cache's token group (kv_group_shift)
};

struct PrefillGpuTuning {
  LoadPath load_path = LoadPath::storage;
  Reduction reduction = Reduction::subgroup;
  uint32_t lanes = 128;                 // workgroup size
  uint32_t subgroup_lanes = 32;         // lanes of one subgroup (the workgroup's divisor)
  uint32_t required_subgroup_size = 0;  // 0: none
  bool full_subgroups = false;
  uint32_t lanes_per_row = 16;       // T: lanes sharing one query row's head dim (<= subgroup)
  uint32_t tile_queries = 4;         // TILE_Q: queries per tile (the host's tile list uses it)
  uint32_t heads_per_workgroup = 4;  // HEADS: query heads of a group sharing each K/V tile
  uint32_t head_chunks = 1;          // workgroups per KV head: ceil(H/G / heads_per_workgroup)
  uint32_t tile_keys = 32;           // TILE_K: keys per shared-memory tile, a multiple of 4
};

// Chooses the GPU tier's variant and sizes for `shape` on `device`. `overrides` may fix the load
// path, the reduction ("shared": no subgroup operations) and the required subgroup size. Throws
// gqavk::Error (invalid_argument for a bad override, unsupported where nothing fits the device).
PrefillGpuTuning choose_prefill_gpu_tuning(const DeviceInfo& device,
                                           const PrefillKernelShape& shape,
                                           const TuningOverrides& overrides = {});

// Bytes of shared memory prefill_gpu.comp declares with tuning `t`.
uint64_t prefill_gpu_shared_bytes(const PrefillKernelShape& shape, const PrefillGpuTuning& t);

// Query rows one lane holds (RPL in the shader): the tile's rows over its row groups.
uint32_t prefill_gpu_rows_per_lane(const PrefillGpuTuning& t);

// The pipeline of `t`: prefill_gpu_<load path>_<subgroup|shared> with its specialization constants.
PipelineDesc prefill_gpu_pipeline_desc(const PrefillKernelShape& shape, const PrefillGpuTuning& t);

}  // namespace gqavk
