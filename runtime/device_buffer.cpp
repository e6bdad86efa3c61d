#include "gqavk/device_buffer.hpp"

#include <algorithm>
#include <string>
#include <utility>

#include "buffer.hpp"
#include "context_impl.hpp"
#include "device_buffer_impl.hpp"
#include "gqavk/context.hpp"
#include "gqavk/error.hpp"

namespace gqavk {

namespace {

void check_range(uint64_t offset, uint64_t size, uint64_t bytes, const char* what) {
  if (offset > bytes || size > bytes - offset) {
    throw Error(ErrorCode::invalid_argument, std::string(what) + " of " + std::to_string(size) +
                                                 " bytes at offset " + std::to_string(offset) +
                                                 " does not fit the buffer of " +
                                                 std::to_string(bytes) + " bytes");
  }
}

}  // namespace

DeviceBuffer::DeviceBuffer(Context& context, uint64_t bytes) : impl_(std::make_unique<Impl>()) {
  if (bytes == 0) {
    throw Error(ErrorCode::invalid_argument, "DeviceBuffer of 0 bytes (expected at least 1)");
  }
  impl_->ctx = &impl_of(context);
  const DeviceInfo& dev = impl_->ctx->info;
  if (bytes > dev.max_memory_allocation_size || bytes > dev.max_buffer_size) {
    throw Error(ErrorCode::unsupported, "DeviceBuffer of " + std::to_string(bytes) +
                                            " bytes exceeds " + dev.name +
                                            "'s maxMemoryAllocationSize of " +
                                            std::to_string(dev.max_memory_allocation_size) +
                                            " bytes (one buffer is one "
                                            "allocation)");
  }
  // With a device address where the device has them, so the buffer can hold a KV pool too.
  impl_->buffer = impl_->ctx->make_buffer(BufferKind::device_local, bytes, "device buffer",
                                          impl_->ctx->info.buffer_device_address);
}

DeviceBuffer::DeviceBuffer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DeviceBuffer DeviceBuffer::wrap(Context& context, VkBuffer buffer, uint64_t offset,
                                uint64_t bytes) {
  ImplOf<Context>& ctx = impl_of(context);
  const auto bad = [](const std::string& m) { throw Error(ErrorCode::invalid_argument, m); };
  if (buffer == VK_NULL_HANDLE) bad("DeviceBuffer::wrap of VK_NULL_HANDLE (expected a VkBuffer)");
  if (bytes == 0) bad("DeviceBuffer::wrap of 0 bytes (expected at least 1)");
  VkPhysicalDeviceProperties props;
  vkGetPhysicalDeviceProperties(ctx.phys, &props);
  const uint64_t align = std::max<uint64_t>({props.limits.minStorageBufferOffsetAlignment,
                                             props.limits.minTexelBufferOffsetAlignment, 16});
  if (offset % align != 0) {
    bad("DeviceBuffer::wrap at offset " + std::to_string(offset) + " (expected a multiple of " +
        std::to_string(align) + ", the device's storage and texel buffer offset alignment)");
  }
  if (bytes % 16 != 0) {
    bad("DeviceBuffer::wrap of " + std::to_string(bytes) + " bytes (expected a multiple of 16)");
  }
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(ctx.device, buffer, &req);
  if (offset > req.size || bytes > req.size - offset) {
    bad("DeviceBuffer::wrap of " + std::to_string(bytes) + " bytes at offset " +
        std::to_string(offset) + " does not fit the VkBuffer (at most " + std::to_string(req.size) +
        " bytes)");
  }
  auto impl = std::make_unique<Impl>();
  impl->ctx = &ctx;
  impl->buffer = Buffer::wrap(ctx.device, buffer, offset, bytes);
  return DeviceBuffer(std::move(impl));
}

DeviceBuffer::~DeviceBuffer() = default;
DeviceBuffer::DeviceBuffer(DeviceBuffer&&) noexcept = default;
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&&) noexcept = default;

uint64_t DeviceBuffer::bytes() const { return impl_->buffer.bytes(); }

void DeviceBuffer::upload(std::span<const std::byte> data, uint64_t offset) {
  check_range(offset, data.size(), bytes(), "upload");
  if (!data.empty()) {
    impl_->ctx->upload(impl_->buffer, impl_->buffer.offset() + offset, data.data(), data.size());
  }
}

void DeviceBuffer::download(std::span<std::byte> data, uint64_t offset) const {
  check_range(offset, data.size(), bytes(), "download");
  if (!data.empty()) {
    impl_->ctx->download(impl_->buffer, impl_->buffer.offset() + offset, data.data(), data.size());
  }
}

uint64_t DeviceBuffer::vk_buffer() const {
  return reinterpret_cast<uint64_t>(impl_->buffer.handle());
}

uint64_t DeviceBuffer::vk_offset() const { return impl_->buffer.offset(); }

}  // namespace gqavk
