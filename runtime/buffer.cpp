#include "buffer.hpp"

#include <string>
#include <utility>

#include "fault.hpp"
#include "vk_util.hpp"

namespace gqavk {

namespace {

uint32_t find_memory_type(VkPhysicalDevice phys, uint32_t type_bits, VkMemoryPropertyFlags want,
                          const char* what) {
  VkPhysicalDeviceMemoryProperties props;
  vkGetPhysicalDeviceMemoryProperties(phys, &props);
  for (uint32_t i = 0; i < props.memoryTypeCount; ++i) {
    if ((type_bits & (1u << i)) && (props.memoryTypes[i].propertyFlags & want) == want) return i;
  }
  throw Error(ErrorCode::unsupported,
              std::string(what) + ": the device has no memory type with the needed properties");
}

}  // namespace

Buffer::Buffer(VkPhysicalDevice phys, VkDevice device, BufferKind kind, uint64_t bytes,
               const char* what, bool device_address)
    : device_(device), bytes_(bytes), kind_(kind) {
  require(bytes > 0, ErrorCode::invalid_argument, std::string(what) + ": buffer size is 0");
  VkBufferCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  info.size = bytes;
  info.usage = VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  if (kind == BufferKind::device_local) {
    // Every kernel load path may bind it: storage buffer, uniform or storage texel buffer.
    info.usage |= VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
                  VK_BUFFER_USAGE_STORAGE_TEXEL_BUFFER_BIT;
    if (device_address) info.usage |= VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT;
  }
  info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  vk_check(vkCreateBuffer(device, &info, nullptr, &buffer_), "vkCreateBuffer");
  try {
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(device, buffer_, &req);
    const VkMemoryPropertyFlags want =
        kind == BufferKind::staging
            ? VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT
            : VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
    VkMemoryAllocateInfo alloc{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
    alloc.allocationSize = req.size;
    alloc.memoryTypeIndex = find_memory_type(phys, req.memoryTypeBits, want, what);
    VkMemoryAllocateFlagsInfo flags{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_FLAGS_INFO};
    flags.flags = VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT;
    if (device_address && kind == BufferKind::device_local) alloc.pNext = &flags;
    VkResult r = fault::hit(fault::Site::memory)
                     ? VK_ERROR_OUT_OF_DEVICE_MEMORY
                     : vkAllocateMemory(device, &alloc, nullptr, &memory_);
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY) {
      throw Error(ErrorCode::out_of_memory,
                  std::string(what) + ": cannot allocate " + std::to_string(bytes) +
                      " bytes of device memory (" + vk_result_name(r) + ")",
                  static_cast<int>(r));
    }
    vk_check(r, "vkAllocateMemory");
    vk_check(vkBindBufferMemory(device, buffer_, memory_, 0), "vkBindBufferMemory");
    if (kind == BufferKind::staging) {
      vk_check(vkMapMemory(device, memory_, 0, VK_WHOLE_SIZE, 0, &mapped_), "vkMapMemory");
    }
  } catch (...) {
    reset();
    throw;
  }
}

Buffer Buffer::wrap(VkDevice device, VkBuffer buffer, uint64_t offset, uint64_t bytes) {
  Buffer b;
  b.device_ = device;
  b.buffer_ = buffer;
  b.offset_ = offset;
  b.bytes_ = bytes;
  b.owned_ = false;
  return b;
}

uint64_t Buffer::device_address() const {
  VkBufferDeviceAddressInfo info{VK_STRUCTURE_TYPE_BUFFER_DEVICE_ADDRESS_INFO};
  info.buffer = buffer_;
  return vkGetBufferDeviceAddress(device_, &info) + offset_;
}

Buffer::~Buffer() { reset(); }

void Buffer::reset() noexcept {
  if (device_ == VK_NULL_HANDLE) return;
  if (buffer_ != VK_NULL_HANDLE && owned_) vkDestroyBuffer(device_, buffer_, nullptr);
  if (memory_ != VK_NULL_HANDLE) vkFreeMemory(device_, memory_, nullptr);  // unmaps too
  buffer_ = VK_NULL_HANDLE;
  memory_ = VK_NULL_HANDLE;
  mapped_ = nullptr;
}

Buffer::Buffer(Buffer&& o) noexcept
    : device_(std::exchange(o.device_, VK_NULL_HANDLE)),
      buffer_(std::exchange(o.buffer_, VK_NULL_HANDLE)),
      memory_(std::exchange(o.memory_, VK_NULL_HANDLE)),
      bytes_(std::exchange(o.bytes_, 0)),
      offset_(std::exchange(o.offset_, 0)),
      owned_(std::exchange(o.owned_, true)),
      kind_(o.kind_),
      mapped_(std::exchange(o.mapped_, nullptr)) {}

Buffer& Buffer::operator=(Buffer&& o) noexcept {
  if (this != &o) {
    reset();
    device_ = std::exchange(o.device_, VK_NULL_HANDLE);
    buffer_ = std::exchange(o.buffer_, VK_NULL_HANDLE);
    memory_ = std::exchange(o.memory_, VK_NULL_HANDLE);
    bytes_ = std::exchange(o.bytes_, 0);
    offset_ = std::exchange(o.offset_, 0);
    owned_ = std::exchange(o.owned_, true);
    kind_ = o.kind_;
    mapped_ = std::exchange(o.mapped_, nullptr);
  }
  return *this;
}

TexelView::TexelView(VkDevice device, const Buffer& buffer) : device_(device) {
  VkBufferViewCreateInfo info{VK_STRUCTURE_TYPE_BUFFER_VIEW_CREATE_INFO};
  info.buffer = buffer.handle();
  info.format = VK_FORMAT_R32G32B32A32_UINT;
  info.offset = buffer.offset();
  info.range = buffer.bytes();
  vk_check(vkCreateBufferView(device, &info, nullptr, &view_), "vkCreateBufferView");
}

TexelView::~TexelView() {
  if (view_ != VK_NULL_HANDLE) vkDestroyBufferView(device_, view_, nullptr);
}

TexelView::TexelView(TexelView&& o) noexcept
    : device_(o.device_), view_(std::exchange(o.view_, VK_NULL_HANDLE)) {}

TexelView& TexelView::operator=(TexelView&& o) noexcept {
  if (this != &o) {
    if (view_ != VK_NULL_HANDLE) vkDestroyBufferView(device_, view_, nullptr);
    device_ = o.device_;
    view_ = std::exchange(o.view_, VK_NULL_HANDLE);
  }
  return *this;
}

}  // namespace gqavk
