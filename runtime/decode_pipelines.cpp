#include "decode_pipelines.hpp"

#include <algorithm>
#include <string>

#include "decode_params.hpp"
#include "gqavk/error.hpp"

namespace gqavk {

DecodePipelineDescs decode_pipeline_descs(const DecodeShape& shape, const DecodeTuning& t) {
  const bool split = t.max_splits > 1;
  DecodePipelineDescs out;
  PipelineDesc& pd = out.decode;
  const bool subgroup = t.reduction == Reduction::subgroup;
  if (t.values_by_key && !subgroup) {
    // Each lane's rows are summed with subgroup operations; without them nothing is written.
    throw Error(ErrorCode::unsupported,
                "the by-key value phase needs subgroup reductions (tuning chose shared memory)");
  }
  pd.shader = std::string(t.tier == Tier::gpu ? "decode_gpu_" : "decode_split_") +
              to_string(t.load_path) + (subgroup ? "_subgroup" : "_shared");
  // The pool, then block table, lengths, query, output, split stats and sinks.
  pd.bindings = {kv_pool_descriptor_type(t.load_path)};
  pd.bindings.resize(7, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER);
  pd.push_constant_bytes = sizeof(DecodeParams);
  // constant_id i of both shaders takes entry i; 7, 8 and 10 differ between the tiers.
  const bool gpu = t.tier == Tier::gpu;
  pd.spec_constants = {t.lanes,
                       shape.head_dim,
                       t.heads_per_workgroup,
                       static_cast<uint32_t>(shape.dtype),  // KV_TYPE: kv_block.h
                       t.keys_per_lane,  // GPU tier: keys per lane group and step
                       shape.block_shift,
                       split ? 0u : 1u,
                       gpu ? t.subgroup_lanes : (t.values_by_key ? 1u : 0u),
                       gpu ? t.lanes_per_key : 0u,
                       shape.group_shift,
                       gpu ? t.head_subgroups : 0u,
                       shape.dv()};
  pd.required_subgroup_size = t.required_subgroup_size;
  pd.full_subgroups = t.full_subgroups;
  if (split) {
    PipelineDesc md;
    md.shader = "merge_splits";
    md.bindings.assign(4, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER);  // partial, stats, output, sinks
    md.push_constant_bytes = sizeof(MergeParams);
    md.spec_constants = {shape.dv()};
    out.merge = md;
  }
  return out;
}

uint64_t decode_shared_bytes(const DecodeShape& shape, const DecodeTuning& t) {
  const uint64_t heads = t.heads_per_workgroup;
  if (t.tier == Tier::gpu) {
    // decode_gpu.comp: xchg[WG] vec4 without subgroup operations; m_sh, l_sh and o_sh, one float,
    // float and vec4 each when no subgroups share heads, else with several subgroups taking the
    // same heads, their (m, l) per head and an output row of Dv floats per head.
    const uint64_t key_subgroups = t.lanes / t.subgroup_lanes / t.head_subgroups;
    const uint64_t exchange = t.reduction == Reduction::shared ? 16ull * t.lanes : 0;
    const uint64_t merge =
        key_subgroups > 1 ? key_subgroups * heads * t.head_subgroups * (8 + 4ull * shape.dv()) : 24;
    return exchange + merge;
  }
  // decode_split.comp's shared-memory variant: red_sh[LANES], p_sh[TILE * HEADS], v_at_sh[TILE],
  // v_sw_sh[TILE].
  if (t.reduction == Reduction::subgroup) return 0;
  const uint64_t tile = uint64_t{t.lanes} * t.keys_per_lane;
  return 4 * (t.lanes + tile * heads + 2 * tile);
}

void check_decode_limits(const DeviceInfo& device, const DecodeShape& shape,
                         const DecodeTuning& t) {
  const auto over = [&](const std::string& what, uint64_t need, const char* limit, uint64_t have) {
    throw Error(ErrorCode::unsupported, what + " needs " + std::to_string(need) + "; " +
                                            device.name + "'s " + limit + " is " +
                                            std::to_string(have));
  };
  // Bindings: the pool (a storage buffer on the storage and address paths) and six storage
  // buffers.
  const uint32_t storage_buffers = uses_texel_view(t.load_path) ? 6 : 7;
  if (device.max_per_stage_storage_buffers &&
      storage_buffers > device.max_per_stage_storage_buffers) {
    over("the decode kernel's storage-buffer descriptors", storage_buffers,
         "maxPerStageDescriptorStorageBuffers", device.max_per_stage_storage_buffers);
  }
  const uint64_t rows = uint64_t{shape.batch} * shape.q_heads;
  const uint64_t row_bytes = uint64_t{std::max(shape.head_dim, shape.dv())} * 4;
  const uint64_t split_rows_bytes = rows * t.max_splits * row_bytes;
  if (t.max_splits > 1 && split_rows_bytes > device.max_storage_buffer_range) {
    over("the split outputs of " + std::to_string(t.max_splits) + " splits (bytes)",
         split_rows_bytes, "maxStorageBufferRange", device.max_storage_buffer_range);
  }
  if (rows * row_bytes > device.max_storage_buffer_range) {
    over("the query and output rows (bytes)", rows * row_bytes, "maxStorageBufferRange",
         device.max_storage_buffer_range);
  }
  const uint64_t counts[3] = {t.max_splits, uint64_t{shape.kv_heads} * t.head_chunks, shape.batch};
  const char* axes[3] = {"x (splits)", "y (KV heads x head chunks)", "z (sequences)"};
  for (int i = 0; i < 3; ++i) {
    if (counts[i] > device.max_workgroup_count[i]) {
      over(std::string("the decode dispatch along ") + axes[i], counts[i],
           ("maxComputeWorkGroupCount[" + std::to_string(i) + "]").c_str(),
           device.max_workgroup_count[i]);
    }
  }
  if (rows > device.max_workgroup_count[0]) {
    over("the merge dispatch (one workgroup per row)", rows, "maxComputeWorkGroupCount[0]",
         device.max_workgroup_count[0]);
  }
  if (t.lanes > device.max_workgroup_invocations) {
    over("the decode workgroup (invocations)", t.lanes, "maxComputeWorkGroupInvocations",
         device.max_workgroup_invocations);
  }
  const uint32_t subgroups = t.required_subgroup_size ? t.lanes / t.required_subgroup_size : 1;
  if (device.max_workgroup_subgroups && subgroups > device.max_workgroup_subgroups) {
    over("the decode workgroup (subgroups of the required size)", subgroups,
         "maxComputeWorkgroupSubgroups", device.max_workgroup_subgroups);
  }
  if (device.max_workgroup_size[0] && t.lanes > device.max_workgroup_size[0]) {
    over("the decode workgroup (width)", t.lanes, "maxComputeWorkGroupSize[0]",
         device.max_workgroup_size[0]);
  }
  const uint64_t shared = decode_shared_bytes(shape, t);
  if (shared > device.max_shared_memory_bytes) {
    over("the decode kernel's shared memory (bytes)", shared, "maxComputeSharedMemorySize",
         device.max_shared_memory_bytes);
  }
}

}  // namespace gqavk
