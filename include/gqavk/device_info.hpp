// The read-only record of what a Vulkan device is and can do. All vendor knowledge the runtime
// uses is taken from this record (see runtime/tuning.cpp), never from scattered vendor checks.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gqavk/export.h"

namespace gqavk {

enum class Vendor { amd, intel, nvidia, apple, arm, qualcomm, mesa_cpu, other };
enum class DeviceType { discrete, integrated, virtual_gpu, cpu, other };

// Bits of VkSubgroupFeatureFlags, restated so users need not include vulkan.h.
enum SubgroupOps : uint32_t {
  kSubgroupBasic = 1u << 0,
  kSubgroupVote = 1u << 1,
  kSubgroupArithmetic = 1u << 2,
  kSubgroupBallot = 1u << 3,
  kSubgroupShuffle = 1u << 4,
  kSubgroupShuffleRelative = 1u << 5,
  kSubgroupClustered = 1u << 6,
  kSubgroupQuad = 1u << 7,
};

struct MemoryHeap {
  uint64_t size_bytes = 0;
  bool device_local = false;
};

struct GQAVK_API DeviceInfo {
  uint32_t index = 0;  // position in vkEnumeratePhysicalDevices
  std::string name;
  Vendor vendor = Vendor::other;
  uint32_t vendor_id = 0;
  uint32_t device_id = 0;
  DeviceType type = DeviceType::other;
  uint32_t api_version = 0;  // VK_MAKE_API_VERSION encoding
  uint32_t driver_id = 0;    // VkDriverId
  std::string driver_name;
  std::string driver_info;
  // False where the device can build pipelines but cannot run work: it lacks a memory type for
  // device-local buffers or one for host-visible coherent staging (RADV's "Null hardware" devices
  // under RADV_FORCE_FAMILY have no memory at all). Never chosen by default; a Context on it
  // builds pipelines, and creating buffers or submitting work throws gqavk::Error (unsupported).
  bool can_run = true;
  // VK_KHR_pipeline_executable_properties: the driver reports each pipeline's compiled figures
  // (registers, spills, occupancy) when the Context is made with pipeline_statistics.
  bool pipeline_statistics = false;

  uint32_t subgroup_size = 0;          // VkPhysicalDeviceSubgroupProperties::subgroupSize
  uint32_t subgroup_ops = 0;           // SubgroupOps bits usable in compute shaders
  bool subgroup_size_control = false;  // a compute pipeline may require a subgroup size
  bool compute_full_subgroups = false;
  uint32_t min_subgroup_size = 0;
  uint32_t max_subgroup_size = 0;
  // Subgroups a workgroup may hold when a subgroup size is required; 0 when not reported.
  uint32_t max_workgroup_subgroups = 0;
  // Lanes a single-subgroup workgroup really runs with, measured by a probe at context creation.
  // Equals subgroup_size on a correct driver; 0 when subgroup arithmetic is unusable.
  uint32_t subgroup_lanes = 0;
  // Driver bug: a workgroup of subgroup_size invocations runs as several smaller subgroups
  // (lavapipe at LP_NATIVE_VECTOR_WIDTH >= 1024). Kernels then use subgroup_lanes.
  bool bug_partial_subgroups = false;

  bool storage_buffer_16bit = false;
  bool shader_float16 = false;
  // Vulkan 1.2 bufferDeviceAddress (enabled by the Context when present): kernels can read a KV
  // pool through its address, past the range one binding can span.
  bool buffer_device_address = false;
  // Timeline semaphores (Vulkan 1.2 core): DecodeStep keeps several steps in flight with them.
  bool timeline_semaphore = false;
  uint64_t max_storage_buffer_range = 0;
  uint64_t max_texel_buffer_elements = 0;
  uint64_t max_memory_allocation_size = 0;
  uint64_t max_buffer_size = 0;
  uint32_t max_shared_memory_bytes = 0;
  uint32_t max_workgroup_invocations = 0;
  uint32_t max_workgroup_size[3] = {0, 0, 0};
  uint32_t max_workgroup_count[3] = {0, 0, 0};
  uint32_t max_push_constants_bytes = 0;
  uint32_t max_descriptor_set_storage_buffers = 0;
  // Storage buffers one compute shader may bind (maxPerStageDescriptorStorageBuffers).
  uint32_t max_per_stage_storage_buffers = 0;
  double timestamp_period_ns = 0;     // nanoseconds per timestamp tick
  uint32_t timestamp_valid_bits = 0;  // 0: the compute queue has no timestamps
  uint32_t compute_units = 0;         // SMs, CUs or CPU threads; an estimate where not reported
  std::vector<MemoryHeap> heaps;

  // True where subgroup_ops has every bit of `ops`.
  bool has_subgroup_ops(uint32_t ops) const { return (subgroup_ops & ops) == ops; }
  // Total size of the device-local heaps in bytes.
  uint64_t device_local_bytes() const;
};

// Names for printing.
GQAVK_API const char* to_string(Vendor v) noexcept;
GQAVK_API const char* to_string(DeviceType t) noexcept;
// "1.3.230" from a VK_MAKE_API_VERSION value.
GQAVK_API std::string version_string(uint32_t api_version);

}  // namespace gqavk
