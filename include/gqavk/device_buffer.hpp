// gqavk::DeviceBuffer: device memory on a Context's device, for inputs the kernels read where
// they lie (the new tokens' K and V that KvCache::append stores).
#pragma once

#include <vulkan/vulkan_core.h>

#include <cstdint>
#include <memory>
#include <span>

#include "gqavk/detail.hpp"
#include "gqavk/export.h"

namespace gqavk {

class Context;

class GQAVK_API DeviceBuffer {
 public:
  // Allocates `bytes` (> 0) of device-local memory; throws gqavk::Error on failure.
  DeviceBuffer(Context& context, uint64_t bytes);
  // Uses `bytes` of the application's `buffer` from `offset` on, on the Context's device; owns
  // nothing (the VkBuffer and its memory must outlive the DeviceBuffer and whatever uses it).
  // offset must be a multiple of the device's storage and texel buffer offset alignments (and
  // 16), bytes a multiple of 16. The buffer needs the usages of what it serves as: STORAGE_BUFFER
  // and TRANSFER_SRC / TRANSFER_DST for inputs and outputs; a KV pool also UNIFORM_TEXEL_BUFFER
  // and STORAGE_TEXEL_BUFFER, and SHADER_DEVICE_ADDRESS where the device has bufferDeviceAddress
  // (its memory then allocated with VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT). Throws
  // gqavk::Error (invalid_argument) naming a null buffer, a bad offset or size.
  static DeviceBuffer wrap(Context& context, VkBuffer buffer, uint64_t offset, uint64_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&&) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&&) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  uint64_t bytes() const;
  // Copies host bytes in at `offset` (blocks until done); throws when they do not fit.
  void upload(std::span<const std::byte> data, uint64_t offset = 0);
  // Copies bytes out from `offset` to the host (blocks until done).
  void download(std::span<std::byte> data, uint64_t offset = 0) const;
  // The VkBuffer handle, for an engine recording its own work on the Context's device.
  uint64_t vk_buffer() const;
  // Where the DeviceBuffer's bytes start in vk_buffer(): 0 unless made by wrap().
  uint64_t vk_offset() const;

 private:
  friend struct detail::Access;  // the runtime's door to Impl (runtime/impl_access.hpp)
  struct Impl;
  explicit DeviceBuffer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gqavk
