#include "decode_pipelines.hpp"

#include <string>

#include "decode_params.hpp"
#include "gqavk/error.hpp"

namespace gqavk {

DecodePipelineDescs decode_pipeline_descs(const DecodeShape& shape, const DecodeTuning& t) {
  const bool split = t.max_splits > 1;
  DecodePipelineDescs out;
  PipelineDesc& pd = out.decode;
  pd.shader = std::string("decode_split_") + to_string(t.load_path) + "_" +
              (t.reduction == Reduction::subgroup ? "subgroup" : "shared");
  pd.bindings = {kv_pool_descriptor_type(t.load_path), VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                 VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,    VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                 VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,    VK_DESCRIPTOR_TYPE_STORAGE_BUFFER};
  pd.push_constant_bytes = sizeof(DecodeParams);
  pd.spec_constants = {t.lanes,
                       shape.head_dim,
                       t.heads_per_workgroup,
                       shape.dtype == DType::f16 ? 1u : 0u,
                       t.keys_per_lane,
                       shape.block_shift,
                       split ? 0u : 1u,
                       t.values_by_key ? 1u : 0u};
  pd.required_subgroup_size = t.required_subgroup_size;
  pd.full_subgroups = t.full_subgroups;
  if (split) {
    PipelineDesc md;
    md.shader = "merge_splits";
    md.bindings = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                   VK_DESCRIPTOR_TYPE_STORAGE_BUFFER};
    md.push_constant_bytes = sizeof(MergeParams);
    md.spec_constants = {shape.head_dim};
    out.merge = md;
  }
  return out;
}

void check_decode_limits(const DeviceInfo&, const DecodeShape&, const DecodeTuning&) {}

}  // namespace gqavk
