#include "pipeline_statistics.hpp"

#include <cinttypes>
#include <cstdio>

#include "vk_util.hpp"

namespace gqavk {

namespace {

// The two-call enumeration of Vulkan: the count, then the items (each starting as `blank`).
template <typename T, typename Query>
std::vector<T> enumerate(const Query& query, const T& blank, const char* what) {
  uint32_t n = 0;
  vk_check(query(&n, nullptr), what);
  std::vector<T> items(n, blank);
  vk_check(query(&n, items.data()), what);
  items.resize(n);
  return items;
}

}  // namespace

std::string PipelineStatistic::text() const {
  char buf[64];
  switch (format) {
    case Format::boolean:
      return value != 0 ? "true" : "false";
    case Format::int64:
      std::snprintf(buf, sizeof(buf), "%" PRId64, static_cast<int64_t>(value));
      break;
    case Format::uint64:
      std::snprintf(buf, sizeof(buf), "%" PRIu64, static_cast<uint64_t>(value));
      break;
    case Format::float64:
      std::snprintf(buf, sizeof(buf), "%g", value);
      break;
  }
  return buf;
}

std::optional<double> PipelineExecutable::find(std::string_view stat) const {
  for (const PipelineStatistic& s : statistics) {
    if (s.name == stat) return s.value;
  }
  return std::nullopt;
}

std::vector<PipelineExecutable> pipeline_statistics(const ImplOf<Context>& ctx,
                                                    const ComputePipeline& pipeline) {
  if (!ctx.capture_statistics) {
    throw Error(ErrorCode::unsupported,
                "pipeline statistics: " +
                    (ctx.info.pipeline_statistics
                         ? "the context on '" + ctx.info.name +
                               "' was made without ContextOptions::pipeline_statistics"
                         : "'" + ctx.info.name +
                               "' does not support VK_KHR_pipeline_executable_properties"));
  }
  const auto get_properties = reinterpret_cast<PFN_vkGetPipelineExecutablePropertiesKHR>(
      vkGetDeviceProcAddr(ctx.device, "vkGetPipelineExecutablePropertiesKHR"));
  const auto get_statistics = reinterpret_cast<PFN_vkGetPipelineExecutableStatisticsKHR>(
      vkGetDeviceProcAddr(ctx.device, "vkGetPipelineExecutableStatisticsKHR"));
  if (!get_properties || !get_statistics) {
    throw Error(ErrorCode::unsupported,
                "pipeline statistics: '" + ctx.info.name +
                    "' exposes no vkGetPipelineExecutable*KHR entry points");
  }

  VkPipelineInfoKHR info{VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR};
  info.pipeline = pipeline.handle();
  const std::vector<VkPipelineExecutablePropertiesKHR> props = enumerate(
      [&](uint32_t* n, VkPipelineExecutablePropertiesKHR* p) {
        return get_properties(ctx.device, &info, n, p);
      },
      VkPipelineExecutablePropertiesKHR{VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_PROPERTIES_KHR},
      "vkGetPipelineExecutablePropertiesKHR");

  std::vector<PipelineExecutable> out;
  for (uint32_t i = 0; i < props.size(); ++i) {
    PipelineExecutable e;
    e.name = props[i].name;
    e.description = props[i].description;
    e.subgroup_size = props[i].subgroupSize;
    VkPipelineExecutableInfoKHR exec{VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR};
    exec.pipeline = pipeline.handle();
    exec.executableIndex = i;
    const std::vector<VkPipelineExecutableStatisticKHR> stats = enumerate(
        [&](uint32_t* n, VkPipelineExecutableStatisticKHR* p) {
          return get_statistics(ctx.device, &exec, n, p);
        },
        VkPipelineExecutableStatisticKHR{VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR},
        "vkGetPipelineExecutableStatisticsKHR");
    for (const VkPipelineExecutableStatisticKHR& stat : stats) {
      PipelineStatistic s;
      s.name = stat.name;
      s.description = stat.description;
      switch (stat.format) {
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR:
          s.format = PipelineStatistic::Format::boolean;
          s.value = stat.value.b32 ? 1 : 0;
          break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR:
          s.format = PipelineStatistic::Format::int64;
          s.value = static_cast<double>(stat.value.i64);
          break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_FLOAT64_KHR:
          s.format = PipelineStatistic::Format::float64;
          s.value = stat.value.f64;
          break;
        default:
          s.format = PipelineStatistic::Format::uint64;
          s.value = static_cast<double>(stat.value.u64);
          break;
      }
      e.statistics.push_back(std::move(s));
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace gqavk
