// Context::Impl: the Vulkan objects a context owns, shared by the runtime's other parts.
#pragma once

#include <vulkan/vulkan.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "buffer.hpp"
#include "commands.hpp"
#include "gqavk/context.hpp"
#include "gqavk/error.hpp"
#include "impl_access.hpp"
#include "pipeline.hpp"

namespace gqavk {

struct GQAVK_HIDDEN Context::Impl {
  VkInstance instance = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger = VK_NULL_HANDLE;
  VkPhysicalDevice phys = VK_NULL_HANDLE;
  VkDevice device = VK_NULL_HANDLE;
  VkQueue queue = VK_NULL_HANDLE;
  uint32_t queue_family = 0;
  // False for a Context on an ExternalDevice: the device and instance are the application's.
  bool owns_device = true;
  QueueLock queue_lock;  // the application's lock for `queue` (ExternalDevice)
  VkPipelineCache pipeline_cache = VK_NULL_HANDLE;
  DeviceInfo info;
  bool capture_statistics = false;       // pipelines keep the driver's figures (pipeline_stats.hpp)
  std::unique_ptr<Submitter> submitter;  // null on a device that cannot run work
  Buffer staging;  // reused for uploads and downloads, grown on demand up to kStagingMaxBytes

  std::map<std::string, std::shared_ptr<const ComputePipeline>> pipelines;

  std::function<void(std::string_view)> on_validation_message;
  std::atomic<uint32_t> validation_messages{0};
  // Set once a Vulkan call reports VK_ERROR_DEVICE_LOST: every later submission is refused.
  std::atomic<bool> lost{false};

  static constexpr uint64_t kStagingMaxBytes = 64ull << 20;

  Impl() = default;
  ~Impl();
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // Throws gqavk::Error (unsupported) naming `what` when the device cannot run work.
  void require_can_run(const char* what) const;
  // A new buffer on this device (device_address: see Buffer).
  Buffer make_buffer(BufferKind kind, uint64_t bytes, const char* what,
                     bool device_address = false) const {
    require_can_run(what);
    return Buffer(phys, device, kind, bytes, what, device_address);
  }
  // A pipeline built with this context's pipeline cache.
  ComputePipeline make_pipeline(const PipelineDesc& desc) const {
    return ComputePipeline(device, pipeline_cache, desc, capture_statistics);
  }
  // The context's shared pipeline for `desc`, built on first use: plans of the same shape share
  // it, so a driver that compiles at first dispatch (lavapipe) compiles each variant once.
  std::shared_ptr<const ComputePipeline> shared_pipeline(const PipelineDesc& desc);
  // Records, submits and waits.
  void submit(const std::function<void(VkCommandBuffer)>& record) {
    require_can_run("submitting work");
    require_not_lost();
    try {
      submitter->run(record);
    } catch (const Error& e) {
      if (e.code() == ErrorCode::device_lost) lost = true;
      throw;
    }
  }
  // Throws gqavk::Error (device_lost) once the device was lost.
  void require_not_lost() const;
  // The staging buffer, at least min(bytes, kStagingMaxBytes) large.
  Buffer& staging_for(uint64_t bytes);
  // Copies host bytes into dst at offset (through staging, in chunks).
  void upload(const Buffer& dst, uint64_t offset, const void* data, uint64_t bytes);
  // Copies bytes of src at offset to the host (through staging, in chunks).
  void download(const Buffer& src, uint64_t offset, void* data, uint64_t bytes);
};

// Reads the capability record of a physical device (the subgroup probe is filled in later).
DeviceInfo query_device_info(VkPhysicalDevice phys, uint32_t index);

}  // namespace gqavk
