// gqavk::DeviceBuffer: device memory on a Context's device, for inputs the kernels read where
// they lie (the new tokens' K and V that KvCache::append stores).
#pragma once

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

 private:
  friend struct detail::Access;  // the runtime's door to Impl (runtime/impl_access.hpp)
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gqavk
