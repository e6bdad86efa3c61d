#include "prefill_pipelines.hpp"

#include <algorithm>
#include <string>

#include "gqavk/error.hpp"
#include "prefill_gpu_tuning.hpp"
#include "prefill_params.hpp"

namespace gqavk {

namespace {

// CPU tier: unrolled multiply-adds per phase and step (keys * rows per lane * head dim) bound the
// shader's size, its compile time on lavapipe (some 25 s at the budget, a minute at 16384) and
// the rows a lane holds. On lavapipe (H 32, G 8, D 128, f16, L 2048) 8 keys per step measured
// best (4 pays more fetch batches, 6 and 16 spill), and 3 queries per lane beat 2 by 15 to 20% in
// interleaved runs (vs_peak 0.32-0.35 against 0.27-0.28: each fetched value feeds 12 rows, not 8),
// while 4 (0.26, with 8 keys or 4) spill.
constexpr uint32_t kCpuStepFmaBudget = 12288;
constexpr uint32_t kCpuKeys = 8;
constexpr uint32_t kCpuMaxQueriesPerLane = 3;

uint32_t ceil_div(uint64_t a, uint64_t b) { return static_cast<uint32_t>((a + b - 1) / b); }

// The CPU tier (prefill_cpu.comp): one SIMD vector of lanes per workgroup, each lane its own
// queries; the group's heads in as few workgroups as the budget allows, then more queries per
// lane while it allows (every fetched K/V value feeds all of a lane's rows).
void choose_cpu_tuning(const DeviceInfo& device, const PrefillShape& shape, PrefillTuning& t) {
  // No subgroup operations: the width only sets how many queries share a workgroup. lavapipe
  // runs subgroup_lanes lanes per vector (16 when it reports 32 or 64).
  const uint32_t width = device.subgroup_lanes ? device.subgroup_lanes : device.subgroup_size;
  t.lanes = std::clamp(width ? width : 8u, 4u, 16u);
  t.lanes = std::min(t.lanes, std::max(1u, device.max_workgroup_invocations));
  t.keys_per_tile = kCpuKeys;
  const uint32_t dim = std::max(shape.head_dim, shape.v_head_dim);
  const uint32_t group = shape.q_heads / shape.kv_heads;
  const uint32_t max_rows = std::max(1u, kCpuStepFmaBudget / (t.keys_per_tile * dim));
  t.head_chunks = ceil_div(group, max_rows);
  t.heads_per_workgroup = ceil_div(group, t.head_chunks);
  const uint32_t per_lane = std::clamp(max_rows / t.heads_per_workgroup, 1u, kCpuMaxQueriesPerLane);
  t.tile_queries = t.lanes * per_lane;
}

}  // namespace

PrefillTuning choose_prefill_tuning(const DeviceInfo& device, const PrefillShape& shape,
                                    const TuningOverrides& overrides) {
  // Tier and load path: decode's choice for the same cache, so one place decides both (and
  // parses the overrides).
  const DecodeShape ds{1,
                       shape.q_heads,
                       shape.kv_heads,
                       shape.head_dim,
                       shape.dtype,
                       shape.capacity_tokens,
                       shape.pool_bytes,
                       shape.block_shift,
                       shape.group_shift};
  TuningOverrides tier_only;
  tier_only.tier = overrides.tier;
  tier_only.load_path = overrides.load_path;
  const DecodeTuning d = choose_decode_tuning(device, ds, 1, tier_only);
  PrefillTuning t;
  t.tier = d.tier;
  t.load_path = d.load_path;
  if (t.tier == Tier::gpu) {
    choose_prefill_gpu_tuning(device, shape, overrides, t);
  } else {
    choose_cpu_tuning(device, shape, t);
  }
  return t;
}

PrefillPipelineDescs prefill_pipeline_descs(const PrefillShape& shape, const PrefillTuning& t) {
  PrefillPipelineDescs out;
  PipelineDesc& pd = out.prefill;
  pd.shader = std::string("prefill_cpu_") + to_string(t.load_path);
  pd.bindings = {kv_pool_descriptor_type(t.load_path), VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                 VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,    VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                 VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,    VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                 VK_DESCRIPTOR_TYPE_STORAGE_BUFFER};
  pd.push_constant_bytes = sizeof(PrefillParams);
  // constant_id i takes entry i: 0..8 are common to both tiers (prefill_io.glsl, 8 the keys per
  // step or tile), 9 and 10 the GPU tier's (add_prefill_gpu_variant), 11 the CPU tier's softcap.
  pd.spec_constants = {t.lanes,
                       shape.head_dim,
                       shape.v_head_dim,
                       static_cast<uint32_t>(shape.dtype),  // KV_TYPE: kv_block.h
                       shape.block_shift,
                       shape.group_shift,
                       t.tile_queries,
                       t.heads_per_workgroup,
                       t.keys_per_tile,
                       0u,
                       0u,
                       shape.softcap ? 1u : 0u};
  pd.required_subgroup_size = t.required_subgroup_size;
  pd.full_subgroups = t.full_subgroups;
  if (t.tier == Tier::gpu) add_prefill_gpu_variant(t, pd);
  return out;
}

uint64_t prefill_shared_bytes(const PrefillShape& shape, const PrefillTuning& t) {
  // prefill_cpu.comp reads K and V straight from the pool into registers; prefill_gpu.comp stages
  // K/V tiles.
  return t.tier == Tier::gpu ? prefill_gpu_shared_bytes(shape, t) : 0;
}

namespace {

[[noreturn]] void over(const DeviceInfo& device, const std::string& what, uint64_t need,
                       const std::string& limit, uint64_t have) {
  throw Error(ErrorCode::unsupported, what + " needs " + std::to_string(need) + "; " + device.name +
                                          "'s " + limit + " is " + std::to_string(have));
}

}  // namespace

void check_prefill_limits(const DeviceInfo& device, const PrefillShape& shape,
                          const PrefillTuning& t) {
  // Bindings: the pool (a storage buffer on the storage and address paths) and six storage
  // buffers.
  const uint32_t storage_buffers = uses_texel_view(t.load_path) ? 6 : 7;
  if (device.max_per_stage_storage_buffers &&
      storage_buffers > device.max_per_stage_storage_buffers) {
    over(device, "the prefill kernel's storage-buffer descriptors", storage_buffers,
         "maxPerStageDescriptorStorageBuffers", device.max_per_stage_storage_buffers);
  }
  if (t.lanes > device.max_workgroup_invocations) {
    over(device, "the prefill workgroup (invocations)", t.lanes, "maxComputeWorkGroupInvocations",
         device.max_workgroup_invocations);
  }
  if (device.max_workgroup_size[0] && t.lanes > device.max_workgroup_size[0]) {
    over(device, "the prefill workgroup (width)", t.lanes, "maxComputeWorkGroupSize[0]",
         device.max_workgroup_size[0]);
  }
  const uint64_t y = uint64_t{shape.kv_heads} * t.head_chunks;
  if (y > device.max_workgroup_count[1]) {
    over(device, "the prefill dispatch along y (KV heads x head chunks)", y,
         "maxComputeWorkGroupCount[1]", device.max_workgroup_count[1]);
  }
  const uint64_t shared = prefill_shared_bytes(shape, t);
  if (shared > device.max_shared_memory_bytes) {
    over(device, "the prefill kernel's shared memory (bytes)", shared, "maxComputeSharedMemorySize",
         device.max_shared_memory_bytes);
  }
  const uint64_t sinks_bytes = 4ull * shape.q_heads;
  if (sinks_bytes > device.max_storage_buffer_range) {
    over(device, "the sinks (bytes)", sinks_bytes, "maxStorageBufferRange",
         device.max_storage_buffer_range);
  }
}

void check_prefill_run_limits(const DeviceInfo& device, const PrefillShape&, const PrefillTuning&,
                              uint64_t q_bytes, uint64_t out_bytes, uint64_t tiles) {
  if (q_bytes > device.max_storage_buffer_range) {
    over(device, "the query rows (bytes)", q_bytes, "maxStorageBufferRange",
         device.max_storage_buffer_range);
  }
  if (out_bytes > device.max_storage_buffer_range) {
    over(device, "the output rows (bytes)", out_bytes, "maxStorageBufferRange",
         device.max_storage_buffer_range);
  }
  if (tiles > device.max_workgroup_count[0]) {
    over(device, "the prefill dispatch along x (query tiles)", tiles, "maxComputeWorkGroupCount[0]",
         device.max_workgroup_count[0]);
  }
  if (8 * tiles > device.max_storage_buffer_range) {
    over(device, "the tile list (bytes)", 8 * tiles, "maxStorageBufferRange",
         device.max_storage_buffer_range);
  }
}

}  // namespace gqavk
