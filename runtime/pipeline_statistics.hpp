// The figures a driver reports for a compiled pipeline (VK_KHR_pipeline_executable_properties),
// under its own names: for AMD's ACO "VGPRs", "SGPRs", "Spilled VGPRs", "Spilled SGPRs",
// "Scratch size", "Subgroups per SIMD", "Code size", "Instructions" and more. gqavk-info and the
// gpu-compile test read them on RADV's null hardware to see real GPU code generation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "context_impl.hpp"

namespace gqavk {

struct PipelineStatistic {
  enum class Format { boolean, int64, uint64, float64 };
  std::string name;  // the driver's name, e.g. "Spilled VGPRs"
  std::string description;
  Format format = Format::uint64;
  double value = 0;  // integers are exact up to 2^53, booleans 0 or 1

  // The value as the driver typed it: "12", "-3", "0.5", "true".
  std::string text() const;
};

// One executable of a pipeline (a compute pipeline has one per shader stage the driver built).
struct PipelineExecutable {
  std::string name;  // e.g. "Compute Shader"
  std::string description;
  uint32_t subgroup_size = 0;
  std::vector<PipelineStatistic> statistics;

  // The value of the statistic named `name`, if the driver reports it.
  std::optional<double> find(std::string_view name) const;
};

// The driver's statistics for each executable of `pipeline`, built by `ctx`. Throws gqavk::Error
// (unsupported) naming the device when the context was not made with pipeline_statistics or the
// device lacks VK_KHR_pipeline_executable_properties.
std::vector<PipelineExecutable> pipeline_statistics(const ImplOf<Context>& ctx,
                                                    const ComputePipeline& pipeline);

}  // namespace gqavk
