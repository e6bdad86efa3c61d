#include "gqavk/device_info.hpp"

#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "context_impl.hpp"

namespace gqavk {

const char* to_string(Vendor v) noexcept {
  switch (v) {
    case Vendor::amd:
      return "AMD";
    case Vendor::intel:
      return "Intel";
    case Vendor::nvidia:
      return "NVIDIA";
    case Vendor::apple:
      return "Apple";
    case Vendor::arm:
      return "Arm";
    case Vendor::qualcomm:
      return "Qualcomm";
    case Vendor::mesa_cpu:
      return "Mesa (CPU)";
    case Vendor::other:
      return "other";
  }
  return "other";
}

const char* to_string(DeviceType t) noexcept {
  switch (t) {
    case DeviceType::discrete:
      return "discrete GPU";
    case DeviceType::integrated:
      return "integrated GPU";
    case DeviceType::virtual_gpu:
      return "virtual GPU";
    case DeviceType::cpu:
      return "CPU";
    case DeviceType::other:
      return "other";
  }
  return "other";
}

std::string version_string(uint32_t v) {
  return std::to_string(VK_API_VERSION_MAJOR(v)) + "." + std::to_string(VK_API_VERSION_MINOR(v)) +
         "." + std::to_string(VK_API_VERSION_PATCH(v));
}

uint64_t DeviceInfo::device_local_bytes() const {
  uint64_t total = 0;
  for (const MemoryHeap& h : heaps) total += h.device_local ? h.size_bytes : 0;
  return total;
}

namespace {

bool has_extension(VkPhysicalDevice phys, const char* name) {
  uint32_t n = 0;
  vkEnumerateDeviceExtensionProperties(phys, nullptr, &n, nullptr);
  std::vector<VkExtensionProperties> ext(n);
  vkEnumerateDeviceExtensionProperties(phys, nullptr, &n, ext.data());
  for (const auto& e : ext) {
    if (std::strcmp(e.extensionName, name) == 0) return true;
  }
  return false;
}

Vendor vendor_of(uint32_t vendor_id, VkDriverId driver) {
  if (driver == VK_DRIVER_ID_MESA_LLVMPIPE) return Vendor::mesa_cpu;
  switch (vendor_id) {
    case 0x1002:
      return Vendor::amd;
    case 0x8086:
      return Vendor::intel;
    case 0x10DE:
      return Vendor::nvidia;
    case 0x106B:
      return Vendor::apple;
    case 0x13B5:
      return Vendor::arm;
    case 0x5143:
      return Vendor::qualcomm;
    default:
      return Vendor::other;
  }
}

DeviceType type_of(VkPhysicalDeviceType t) {
  switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
      return DeviceType::discrete;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
      return DeviceType::integrated;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
      return DeviceType::virtual_gpu;
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
      return DeviceType::cpu;
    default:
      return DeviceType::other;
  }
}

}  // namespace

DeviceInfo query_device_info(VkPhysicalDevice phys, uint32_t index) {
  DeviceInfo d;
  d.index = index;
  const bool size_control_ext = has_extension(phys, VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
  const bool nv_sm = has_extension(phys, VK_NV_SHADER_SM_BUILTINS_EXTENSION_NAME);
  const bool amd_core = has_extension(phys, VK_AMD_SHADER_CORE_PROPERTIES_EXTENSION_NAME);
  const bool exec_props = has_extension(phys, VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME);

  VkPhysicalDeviceProperties base;
  vkGetPhysicalDeviceProperties(phys, &base);
  const bool v13 = base.apiVersion >= VK_API_VERSION_1_3;

  VkPhysicalDeviceSubgroupProperties subgroup{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
  VkPhysicalDeviceDriverProperties driver{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
  VkPhysicalDeviceSubgroupSizeControlProperties size_control{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES};
  VkPhysicalDeviceShaderSMBuiltinsPropertiesNV sm{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_SM_BUILTINS_PROPERTIES_NV};
  VkPhysicalDeviceShaderCorePropertiesAMD core{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_CORE_PROPERTIES_AMD};
  VkPhysicalDeviceProperties2 props{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  props.pNext = &subgroup;
  subgroup.pNext = &driver;
  void** tail = &driver.pNext;
  if (v13 || size_control_ext) {
    *tail = &size_control;
    tail = &size_control.pNext;
  }
  if (nv_sm) {
    *tail = &sm;
    tail = &sm.pNext;
  }
  if (amd_core) *tail = &core;
  vkGetPhysicalDeviceProperties2(phys, &props);

  VkPhysicalDeviceVulkan11Features f11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
  VkPhysicalDeviceVulkan12Features f12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  VkPhysicalDeviceSubgroupSizeControlFeatures fsc{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES};
  VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR fexec{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR};
  VkPhysicalDeviceFeatures2 features{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  features.pNext = &f11;
  f11.pNext = &f12;
  tail = &f12.pNext;
  if (v13 || size_control_ext) {
    *tail = &fsc;
    tail = &fsc.pNext;
  }
  if (exec_props) *tail = &fexec;
  vkGetPhysicalDeviceFeatures2(phys, &features);

  d.name = base.deviceName;
  d.vendor_id = base.vendorID;
  d.device_id = base.deviceID;
  d.type = type_of(base.deviceType);
  d.api_version = base.apiVersion;
  d.driver_id = static_cast<uint32_t>(driver.driverID);
  d.driver_name = driver.driverName;
  d.driver_info = driver.driverInfo;
  d.vendor = vendor_of(base.vendorID, driver.driverID);

  d.subgroup_size = subgroup.subgroupSize;
  if (subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) {
    d.subgroup_ops = static_cast<uint32_t>(subgroup.supportedOperations);
  }
  if ((v13 || size_control_ext) && fsc.subgroupSizeControl &&
      (size_control.requiredSubgroupSizeStages & VK_SHADER_STAGE_COMPUTE_BIT)) {
    d.subgroup_size_control = true;
    d.compute_full_subgroups = fsc.computeFullSubgroups == VK_TRUE;
    d.min_subgroup_size = size_control.minSubgroupSize;
    d.max_workgroup_subgroups = size_control.maxComputeWorkgroupSubgroups;
    d.max_subgroup_size = size_control.maxSubgroupSize;
  } else {
    d.min_subgroup_size = d.max_subgroup_size = subgroup.subgroupSize;
  }
  d.storage_buffer_16bit = f11.storageBuffer16BitAccess == VK_TRUE;
  d.shader_float16 = f12.shaderFloat16 == VK_TRUE;
  d.buffer_device_address = f12.bufferDeviceAddress == VK_TRUE;
  d.timeline_semaphore = f12.timelineSemaphore == VK_TRUE;
  d.pipeline_statistics = exec_props && fexec.pipelineExecutableInfo == VK_TRUE;

  const VkPhysicalDeviceLimits& lim = base.limits;
  d.max_storage_buffer_range = lim.maxStorageBufferRange;
  d.max_texel_buffer_elements = lim.maxTexelBufferElements;
  d.max_shared_memory_bytes = lim.maxComputeSharedMemorySize;
  d.max_workgroup_invocations = lim.maxComputeWorkGroupInvocations;
  for (int i = 0; i < 3; ++i) d.max_workgroup_size[i] = lim.maxComputeWorkGroupSize[i];
  for (int i = 0; i < 3; ++i) d.max_workgroup_count[i] = lim.maxComputeWorkGroupCount[i];
  d.max_push_constants_bytes = lim.maxPushConstantsSize;
  d.max_descriptor_set_storage_buffers = lim.maxDescriptorSetStorageBuffers;
  d.max_per_stage_storage_buffers = lim.maxPerStageDescriptorStorageBuffers;
  d.timestamp_period_ns = lim.timestampPeriod;

  VkPhysicalDeviceMaintenance3Properties m3{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
  VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  p2.pNext = &m3;
  vkGetPhysicalDeviceProperties2(phys, &p2);
  d.max_memory_allocation_size = m3.maxMemoryAllocationSize;
  d.max_buffer_size = m3.maxMemoryAllocationSize;
  if (v13) {
    VkPhysicalDeviceMaintenance4Properties m4{
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_4_PROPERTIES};
    p2.pNext = &m4;
    vkGetPhysicalDeviceProperties2(phys, &p2);
    d.max_buffer_size = m4.maxBufferSize;
  }

  VkPhysicalDeviceMemoryProperties mem;
  vkGetPhysicalDeviceMemoryProperties(phys, &mem);
  for (uint32_t i = 0; i < mem.memoryHeapCount; ++i) {
    d.heaps.push_back({mem.memoryHeaps[i].size,
                       (mem.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) != 0});
  }
  // Work needs device-local memory for the kernels' buffers and host-visible coherent memory for
  // staging (runtime/buffer.cpp); a device with neither (RADV's null hardware) only compiles.
  const auto has_memory = [&](VkMemoryPropertyFlags want) {
    for (uint32_t i = 0; i < mem.memoryTypeCount; ++i) {
      if ((mem.memoryTypes[i].propertyFlags & want) == want) return true;
    }
    return false;
  };
  d.can_run =
      has_memory(VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) &&
      has_memory(VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);

  // Compute units: reported by NVIDIA and AMD extensions, CPU threads for lavapipe, else a guess.
  if (nv_sm && sm.shaderSMCount) {
    d.compute_units = sm.shaderSMCount;
  } else if (amd_core && core.computeUnitsPerShaderArray) {
    d.compute_units =
        core.shaderEngineCount * core.shaderArraysPerEngineCount * core.computeUnitsPerShaderArray;
  } else if (d.vendor == Vendor::mesa_cpu) {
    const char* env = std::getenv("LP_NUM_THREADS");
    const unsigned threads = env ? static_cast<unsigned>(std::atoi(env)) : 0;
    d.compute_units = threads ? threads : std::max(1u, std::thread::hardware_concurrency());
  } else {
    d.compute_units = d.type == DeviceType::discrete ? 32 : 8;
  }
  return d;
}

}  // namespace gqavk
