#include "commands.hpp"

#include <string>
#include <utility>
#include <vector>

#include "fault.hpp"
#include "vk_util.hpp"

namespace gqavk {

namespace {
// A dispatch that runs longer than this is treated as hung rather than waited on forever.
constexpr uint64_t kFenceTimeoutNs = 300ull * 1000 * 1000 * 1000;
}  // namespace

void queue_submit(const QueueLock& lock, VkQueue queue, const VkSubmitInfo& info, VkFence fence) {
  if (fault::hit(fault::Site::submit)) vk_check(VK_ERROR_DEVICE_LOST, "vkQueueSubmit");
  if (lock.lock) lock.lock();
  const VkResult r = vkQueueSubmit(queue, 1, &info, fence);
  if (lock.unlock) lock.unlock();
  vk_check(r, "vkQueueSubmit");
}

void queue_wait_idle(const QueueLock& lock, VkQueue queue) {
  if (lock.lock) lock.lock();
  vkQueueWaitIdle(queue);
  if (lock.unlock) lock.unlock();
}

Submitter::Submitter(VkDevice device, VkQueue queue, uint32_t queue_family, const QueueLock* lock)
    : device_(device), queue_(queue), lock_(lock) {
  VkCommandPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pool_info.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pool_info.queueFamilyIndex = queue_family;
  vk_check(vkCreateCommandPool(device, &pool_info, nullptr, &pool_), "vkCreateCommandPool");
  VkCommandBufferAllocateInfo alloc{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  alloc.commandPool = pool_;
  alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  alloc.commandBufferCount = 1;
  VkFenceCreateInfo fence_info{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  VkResult r = vkAllocateCommandBuffers(device, &alloc, &cmd_);
  if (r == VK_SUCCESS) r = vkCreateFence(device, &fence_info, nullptr, &fence_);
  if (r != VK_SUCCESS) {
    vkDestroyCommandPool(device, pool_, nullptr);
    vk_check(r, "creating the command buffer and fence");
  }
}

Submitter::~Submitter() {
  vkDestroyFence(device_, fence_, nullptr);
  vkDestroyCommandPool(device_, pool_, nullptr);  // frees cmd_
}

void Submitter::run(const std::function<void(VkCommandBuffer)>& record) {
  vk_check(vkResetCommandBuffer(cmd_, 0), "vkResetCommandBuffer");
  VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  vk_check(vkBeginCommandBuffer(cmd_, &begin), "vkBeginCommandBuffer");
  try {
    // Work submitted earlier that may still run (DecodeStep's steps in flight) happens before this.
    memory_barrier(cmd_, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_ACCESS_MEMORY_WRITE_BIT,
                   VK_PIPELINE_STAGE_ALL_COMMANDS_BIT,
                   VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT);
    record(cmd_);
  } catch (...) {
    vkEndCommandBuffer(cmd_);
    throw;
  }
  vk_check(vkEndCommandBuffer(cmd_), "vkEndCommandBuffer");
  vk_check(vkResetFences(device_, 1, &fence_), "vkResetFences");
  VkSubmitInfo submit{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &cmd_;
  static const QueueLock no_lock;
  const QueueLock& lock = lock_ ? *lock_ : no_lock;
  queue_submit(lock, queue_, submit, fence_);
  VkResult r = vkWaitForFences(device_, 1, &fence_, VK_TRUE, kFenceTimeoutNs);
  if (r == VK_SUCCESS && fault::hit(fault::Site::submit)) r = VK_ERROR_DEVICE_LOST;
  if (r == VK_TIMEOUT) {
    queue_wait_idle(lock, queue_);  // only gqavk's queue: the device may be the application's
    throw Error(ErrorCode::vulkan, "GPU work did not finish within " +
                                       std::to_string(kFenceTimeoutNs / 1000000000ull) + " s");
  }
  vk_check(r, "vkWaitForFences");
}

void memory_barrier(VkCommandBuffer cmd, VkPipelineStageFlags src, VkAccessFlags src_access,
                    VkPipelineStageFlags dst, VkAccessFlags dst_access) {
  VkMemoryBarrier b{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  b.srcAccessMask = src_access;
  b.dstAccessMask = dst_access;
  vkCmdPipelineBarrier(cmd, src, dst, 0, 1, &b, 0, nullptr, 0, nullptr);
}

void compute_barrier(VkCommandBuffer cmd) {
  memory_barrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                 VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                 VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
}

void host_read_barrier(VkCommandBuffer cmd) {
  memory_barrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                 VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
}

TimestampQueries::TimestampQueries(VkDevice device, uint32_t count, double period_ns,
                                   uint32_t valid_bits)
    : device_(device), count_(count), period_ns_(period_ns) {
  if (valid_bits == 0) return;
  mask_ = valid_bits >= 64 ? ~0ull : ((1ull << valid_bits) - 1);
  VkQueryPoolCreateInfo info{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
  info.queryType = VK_QUERY_TYPE_TIMESTAMP;
  info.queryCount = count;
  vk_check(vkCreateQueryPool(device, &info, nullptr, &pool_), "vkCreateQueryPool");
}

TimestampQueries::~TimestampQueries() {
  if (pool_ != VK_NULL_HANDLE) vkDestroyQueryPool(device_, pool_, nullptr);
}

TimestampQueries::TimestampQueries(TimestampQueries&& o) noexcept
    : device_(o.device_),
      pool_(std::exchange(o.pool_, VK_NULL_HANDLE)),
      count_(o.count_),
      period_ns_(o.period_ns_),
      mask_(o.mask_) {}

TimestampQueries& TimestampQueries::operator=(TimestampQueries&& o) noexcept {
  if (this != &o) {
    if (pool_ != VK_NULL_HANDLE) vkDestroyQueryPool(device_, pool_, nullptr);
    device_ = o.device_;
    pool_ = std::exchange(o.pool_, VK_NULL_HANDLE);
    count_ = o.count_;
    period_ns_ = o.period_ns_;
    mask_ = o.mask_;
  }
  return *this;
}

void TimestampQueries::reset(VkCommandBuffer cmd) const {
  if (pool_ != VK_NULL_HANDLE) vkCmdResetQueryPool(cmd, pool_, 0, count_);
}

void TimestampQueries::write(VkCommandBuffer cmd, uint32_t index) const {
  if (pool_ != VK_NULL_HANDLE) {
    vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, pool_, index);
  }
}

double TimestampQueries::elapsed_ns(uint32_t begin, uint32_t end) const {
  if (pool_ == VK_NULL_HANDLE) return 0;
  uint64_t t[2] = {0, 0};
  vk_check(
      vkGetQueryPoolResults(device_, pool_, begin, 1, sizeof(uint64_t), &t[0], sizeof(uint64_t),
                            VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
      "vkGetQueryPoolResults");
  vk_check(vkGetQueryPoolResults(device_, pool_, end, 1, sizeof(uint64_t), &t[1], sizeof(uint64_t),
                                 VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
           "vkGetQueryPoolResults");
  return static_cast<double>((t[1] - t[0]) & mask_) * period_ns_;
}

}  // namespace gqavk
