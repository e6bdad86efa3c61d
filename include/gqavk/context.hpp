// gqavk::Context: the Vulkan instance, the chosen device, its compute queue and capability record.
#pragma once

#include <vulkan/vulkan_core.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gqavk/detail.hpp"
#include "gqavk/device_info.hpp"
#include "gqavk/export.h"

namespace gqavk {

struct ContextOptions {
  // Which device: "" takes GQAVK_DEVICE from the environment, else the best device that can run
  // work (discrete > integrated > virtual > CPU). A number picks by index, other text by name
  // substring; so chosen, a device that cannot run work (DeviceInfo::can_run) still builds
  // pipelines.
  std::string device;
  // Enables the Khronos validation layer when it is installed.
  bool validation = false;
  // Receives each validation message; when empty, messages are written to stderr.
  std::function<void(std::string_view)> on_validation_message;
  // Asks the driver to keep each pipeline's compiled figures
  // (VK_KHR_pipeline_executable_properties: registers, spills, occupancy) for in-tree tools;
  // ignored where the device lacks the extension (DeviceInfo::pipeline_statistics).
  bool pipeline_statistics = false;
};

// A Vulkan device the application made and keeps owning (Context(const ExternalDevice&)). It must
// be Vulkan 1.2 or newer, and its queue family must support compute. Each feature of this list
// that the physical device supports must have been enabled, or the Context names the missing ones:
// subgroupSizeControl and computeFullSubgroups (Vulkan 1.3, or VK_EXT_subgroup_size_control with
// the extension enabled), bufferDeviceAddress and timelineSemaphore (Vulkan 1.2). Optional:
// pipelineExecutableInfo with VK_KHR_pipeline_executable_properties (ContextOptions::
// pipeline_statistics). gqavk uses only `queue` and memory it allocates itself; it never waits for
// the whole device.
struct ExternalDevice {
  VkInstance instance = VK_NULL_HANDLE;
  VkPhysicalDevice physical_device = VK_NULL_HANDLE;
  VkDevice device = VK_NULL_HANDLE;
  // The VkDeviceCreateInfo `device` was made with, read while the Context is made (not kept): its
  // queues, extensions and feature structs (pEnabledFeatures and the pNext chain:
  // VkPhysicalDeviceFeatures2, VkPhysicalDeviceVulkan12Features, VkPhysicalDeviceVulkan13Features
  // or the per-feature structs) say what is enabled.
  const VkDeviceCreateInfo* create_info = nullptr;
  uint32_t queue_family = 0;
  VkQueue queue = VK_NULL_HANDLE;  // a queue of queue_family that gqavk submits its work to
  // The application's lock for `queue`, when other threads use it too: gqavk calls lock_queue()
  // before and unlock_queue() after each vkQueueSubmit and vkQueueWaitIdle on it. Both or neither.
  std::function<void()> lock_queue;
  std::function<void()> unlock_queue;
};

// Lists the Vulkan devices gqavk can use (API 1.2 or newer with a compute queue), including those
// that can only build pipelines (DeviceInfo::can_run false).
GQAVK_API std::vector<DeviceInfo> list_devices();

// Owns the Vulkan objects of one device. Move-only; everything created from a Context (caches,
// plans) borrows it and must be destroyed before it.
class GQAVK_API Context {
 public:
  // Creates a context on the chosen device; throws gqavk::Error (no_device, unsupported) on
  // failure.
  explicit Context(const ContextOptions& options = {});
  // Uses the application's instance, device and queue; destroys none of them. options.device and
  // options.validation do not apply (validation is the application's instance's); throws
  // gqavk::Error (invalid_argument naming a bad handle or queue family; unsupported naming the
  // features and extensions that were not enabled).
  explicit Context(const ExternalDevice& device, const ContextOptions& options = {});
  ~Context();
  Context(Context&&) noexcept;
  Context& operator=(Context&&) noexcept;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // The capability record of the chosen device.
  const DeviceInfo& device() const;
  // Number of validation messages received so far (0 when validation is off).
  uint32_t validation_message_count() const;

 private:
  friend struct detail::Access;  // the runtime's door to Impl (runtime/impl_access.hpp)
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gqavk
