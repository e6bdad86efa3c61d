// The pipelines a decode plan runs, as descriptions: DecodePlan builds them, and so do the tools
// that only compile and inspect them (gqavk-info, the gpu-compile test) on any device.
#pragma once

#include <optional>

#include "gqavk/device_info.hpp"
#include "pipeline.hpp"
#include "tuning.hpp"

namespace gqavk {

struct DecodePipelineDescs {
  PipelineDesc decode;                // decode_split.comp (CPU tier) or decode_gpu.comp (GPU tier)
  std::optional<PipelineDesc> merge;  // merge_splits.comp, when tuning.max_splits > 1
};

// The pipelines for `shape` run with tuning `t`.
DecodePipelineDescs decode_pipeline_descs(const DecodeShape& shape, const DecodeTuning& t);

// Bytes of shared memory the decode kernel of `t` declares.
uint64_t decode_shared_bytes(const DecodeShape& shape, const DecodeTuning& t);

// Checks what a plan of `shape` with tuning `t` needs against the device's limits (descriptors per
// stage, binding ranges, workgroup counts, shared memory); throws gqavk::Error (unsupported)
// naming the limit.
void check_decode_limits(const DeviceInfo& device, const DecodeShape& shape, const DecodeTuning& t);

}  // namespace gqavk
