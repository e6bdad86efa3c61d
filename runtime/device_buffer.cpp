#include "gqavk/device_buffer.hpp"

#include <string>

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
  impl_->buffer = impl_->ctx->make_buffer(BufferKind::device_local, bytes, "device buffer");
}

DeviceBuffer::~DeviceBuffer() = default;
DeviceBuffer::DeviceBuffer(DeviceBuffer&&) noexcept = default;
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&&) noexcept = default;

uint64_t DeviceBuffer::bytes() const { return impl_->buffer.bytes(); }

void DeviceBuffer::upload(std::span<const std::byte> data, uint64_t offset) {
  check_range(offset, data.size(), bytes(), "upload");
  if (!data.empty()) impl_->ctx->upload(impl_->buffer, offset, data.data(), data.size());
}

void DeviceBuffer::download(std::span<std::byte> data, uint64_t offset) const {
  check_range(offset, data.size(), bytes(), "download");
  if (!data.empty()) impl_->ctx->download(impl_->buffer, offset, data.data(), data.size());
}

uint64_t DeviceBuffer::vk_buffer() const {
  return reinterpret_cast<uint64_t>(impl_->buffer.handle());
}

}  // namespace gqavk
