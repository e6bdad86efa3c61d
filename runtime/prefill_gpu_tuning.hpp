// The prefill kernel's GPU tier (shaders/prefill_gpu.comp): how its lanes, subgroups and tiles are
// chosen for a device (a pure function, unit-tested without a GPU) and what its pipeline adds to
// the common description. choose_prefill_tuning and prefill_pipeline_descs call these when the
// tier is the GPU's.
#pragma once

#include <cstdint>

#include "gqavk/device_info.hpp"
#include "pipeline.hpp"
#include "prefill_pipelines.hpp"
#include "tuning.hpp"

namespace gqavk {

// Fills the GPU tier's fields of `t` (tier and load path already chosen) for `shape` on `device`:
// reduction, lanes, subgroup size, lanes per row, tile queries and heads, keys per tile.
// `overrides` may ask for the shared-memory reduction or a subgroup size. Throws gqavk::Error
// (invalid_argument for a bad override, unsupported where nothing fits the device).
void choose_prefill_gpu_tuning(const DeviceInfo& device, const PrefillShape& shape,
                               const TuningOverrides& overrides, PrefillTuning& t);

// Bytes of shared memory prefill_gpu.comp declares with tuning `t`.
uint64_t prefill_gpu_shared_bytes(const PrefillShape& shape, const PrefillTuning& t);

// Query rows one lane holds (RPL in the shader): the tile's rows over its row groups.
uint32_t prefill_gpu_rows_per_lane(const PrefillTuning& t);

// Makes `pd` (the common part built: bindings, push constants, ids 0..8) the GPU tier's pipeline:
// prefill_gpu_<load path>_<subgroup|shared>, ids 9 (subgroup lanes) and 10 (lanes per row).
void add_prefill_gpu_variant(const PrefillTuning& t, PipelineDesc& pd);

}  // namespace gqavk
