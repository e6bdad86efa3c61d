// Device buffers typed by use. Memory is one dedicated allocation per buffer: gqavk makes few,
// large buffers, so a general allocator would buy nothing.
#pragma once

#include <vulkan/vulkan.h>

#include <cstdint>

namespace gqavk {

enum class BufferKind {
  device_local,  // storage the kernels read and write; never mapped
  staging,       // host-visible, coherent, persistently mapped: upload and download
};

class Buffer {
 public:
  Buffer() = default;
  // Allocates `bytes` (> 0) of `kind`; usage gets storage, texel and transfer bits as fits.
  // device_address: a device-local buffer kernels may also read through its address (the device
  // must have bufferDeviceAddress enabled).
  Buffer(VkPhysicalDevice phys, VkDevice device, BufferKind kind, uint64_t bytes, const char* what,
         bool device_address = false);
  // A buffer the application made: `bytes` of `buffer` from `offset` on. Not owned: nothing is
  // destroyed or freed with it. Users add offset() to every use.
  static Buffer wrap(VkDevice device, VkBuffer buffer, uint64_t offset, uint64_t bytes);
  ~Buffer();
  Buffer(Buffer&& o) noexcept;
  Buffer& operator=(Buffer&& o) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  VkBuffer handle() const { return buffer_; }
  uint64_t bytes() const { return bytes_; }
  // Where the buffer's bytes start in handle(): 0 except for wrapped buffers.
  uint64_t offset() const { return offset_; }
  BufferKind kind() const { return kind_; }
  // Host pointer of a staging buffer; nullptr for device-local buffers.
  void* mapped() const { return mapped_; }
  // The device address of byte offset(); the buffer must have been made with device_address.
  uint64_t device_address() const;
  explicit operator bool() const { return buffer_ != VK_NULL_HANDLE; }

 private:
  void reset() noexcept;
  VkDevice device_ = VK_NULL_HANDLE;
  VkBuffer buffer_ = VK_NULL_HANDLE;
  VkDeviceMemory memory_ = VK_NULL_HANDLE;
  uint64_t bytes_ = 0;
  uint64_t offset_ = 0;
  bool owned_ = true;
  BufferKind kind_ = BufferKind::device_local;
  void* mapped_ = nullptr;
};

// A uniform texel buffer view (R32G32B32A32_UINT) over a whole buffer (its bytes from offset()).
class TexelView {
 public:
  TexelView() = default;
  TexelView(VkDevice device, const Buffer& buffer);
  ~TexelView();
  TexelView(TexelView&& o) noexcept;
  TexelView& operator=(TexelView&& o) noexcept;
  TexelView(const TexelView&) = delete;
  TexelView& operator=(const TexelView&) = delete;
  VkBufferView handle() const { return view_; }

 private:
  VkDevice device_ = VK_NULL_HANDLE;
  VkBufferView view_ = VK_NULL_HANDLE;
};

}  // namespace gqavk
