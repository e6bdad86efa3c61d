// Command recording and submission: one reusable command buffer and fence per context, barriers,
// and GPU timestamp queries.
#pragma once

#include <vulkan/vulkan.h>

#include <cstdint>
#include <functional>

namespace gqavk {

// The application's lock for a queue it shares with gqavk (a Context made from an
// ExternalDevice): held around every use of the queue. Empty functions: no lock.
struct QueueLock {
  std::function<void()> lock, unlock;
};
// vkQueueSubmit under `lock`; throws gqavk::Error when it fails.
void queue_submit(const QueueLock& lock, VkQueue queue, const VkSubmitInfo& info, VkFence fence);
// vkQueueWaitIdle under `lock`.
void queue_wait_idle(const QueueLock& lock, VkQueue queue);

// Records into a command buffer, submits it to the queue and waits. Move-only.
class Submitter {
 public:
  // `lock` (may be null) must outlive the Submitter.
  Submitter(VkDevice device, VkQueue queue, uint32_t queue_family, const QueueLock* lock);
  ~Submitter();
  Submitter(const Submitter&) = delete;
  Submitter& operator=(const Submitter&) = delete;

  // Records with `record`, submits, and blocks until the GPU is done (gqavk::Error on timeout).
  void run(const std::function<void(VkCommandBuffer)>& record);

 private:
  VkDevice device_;
  VkQueue queue_;
  const QueueLock* lock_;
  VkCommandPool pool_ = VK_NULL_HANDLE;
  VkCommandBuffer cmd_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
};

// Makes writes of `src` stages visible to reads and writes of `dst` stages.
void memory_barrier(VkCommandBuffer cmd, VkPipelineStageFlags src, VkAccessFlags src_access,
                    VkPipelineStageFlags dst, VkAccessFlags dst_access);
// Shorthand: compute shader writes -> compute shader reads.
void compute_barrier(VkCommandBuffer cmd);
// Shorthand: transfer writes -> host reads (after the fence wait).
void host_read_barrier(VkCommandBuffer cmd);

// A pool of timestamp queries: write pairs around GPU work, read elapsed nanoseconds after.
class TimestampQueries {
 public:
  TimestampQueries() = default;
  // `count` queries; period_ns from the device record. valid_bits == 0 makes every call a no-op.
  TimestampQueries(VkDevice device, uint32_t count, double period_ns, uint32_t valid_bits);
  ~TimestampQueries();
  TimestampQueries(TimestampQueries&& o) noexcept;
  TimestampQueries& operator=(TimestampQueries&& o) noexcept;
  TimestampQueries(const TimestampQueries&) = delete;
  TimestampQueries& operator=(const TimestampQueries&) = delete;

  bool enabled() const { return pool_ != VK_NULL_HANDLE; }
  // Resets all queries; record before the first write in a command buffer.
  void reset(VkCommandBuffer cmd) const;
  // Writes query `index` once all earlier work has finished.
  void write(VkCommandBuffer cmd, uint32_t index) const;
  // Nanoseconds between queries `begin` and `end` of the last submitted run; 0 when disabled.
  double elapsed_ns(uint32_t begin, uint32_t end) const;

 private:
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueryPool pool_ = VK_NULL_HANDLE;
  uint32_t count_ = 0;
  double period_ns_ = 0;
  uint64_t mask_ = 0;
};

}  // namespace gqavk
