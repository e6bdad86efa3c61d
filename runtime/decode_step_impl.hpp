// DecodeStep::Impl: the step's layers, buffers, frames and recording state (decode_step.cpp).
#pragma once

#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "buffer.hpp"
#include "commands.hpp"
#include "context_impl.hpp"
#include "gqavk/decode_step.hpp"
#include "impl_access.hpp"
#include "kv_cache_impl.hpp"
#include "pipeline.hpp"
#include "tuning.hpp"

namespace gqavk {

struct GQAVK_HIDDEN DecodeStep::Impl {
  struct Layer {
    uint32_t q_heads = 0;
    float scale = 0;
    uint32_t window = 0;  // 0: none
    float softcap = 0;    // 0: none
    bool has_sinks = false;
    DecodeTuning tuning;
    std::shared_ptr<const ComputePipeline> decode, merge;  // merge: split layers only
    DescriptorSet decode_set, merge_set;
    uint64_t q_at = 0, q_bytes = 0;      // in q_all
    uint64_t out_at = 0, out_bytes = 0;  // in out_all
    uint64_t partial_at = 0, stats_at = 0;
    Buffer sinks;  // [H] f32, or 16 unused bytes
  };
  enum class FrameState { idle, prepared, in_flight };
  struct Frame {
    Buffer staging;  // [params | q | k | v | out | status], host-visible
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    TimestampQueries timestamps;
    uint64_t version = 0;  // the I/O version it was recorded for (0: never)
    FrameState state = FrameState::idle;
    uint64_t ticket = 0;
    uint32_t rows = 0;
    // Per row, the sequence and KvPages::row_version whose block-table rows the staging holds.
    std::vector<std::pair<uint32_t, uint64_t>> rows_held;
    VkSemaphore semaphore = VK_NULL_HANDLE;  // signalled with `value` when the step is done
    uint64_t value = 0;
  };

  ImplOf<Context>* ctx = nullptr;  // set last in the constructor: the destructor's cue
  ImplOf<KvCache>* cache = nullptr;
  uint32_t max_batch = 0;
  std::vector<Layer> layers;
  std::shared_ptr<const ComputePipeline> append;
  DescriptorSet append_set;
  Buffer params, q_all, k_all, v_all, out_all, partial, stats, status;
  uint64_t lengths_at = 0, tokens_at = 0, tables_at = 0, params_bytes = 0;
  uint64_t st_q = 0, st_k = 0, st_v = 0, st_out = 0, st_status = 0;   // in a frame's staging
  uint64_t q_values = 0, k_values = 0, v_values = 0, out_values = 0;  // per step, max_batch rows
  std::vector<Frame> frames;
  VkCommandPool pool = VK_NULL_HANDLE;
  VkSemaphore timeline = VK_NULL_HANDLE;  // signalled with each own-submitted step's ticket
  uint64_t next_ticket = 1;
  bool device_io = false;
  StepDeviceIo io;
  uint64_t io_version = 1;  // what the recordings depend on; bumped by set_device_io/set_host_io
  uint64_t counted_version = 0;
  uint64_t recordings = 0;
  bool force_rerecord = false;  // gqavk-bench's step_host_rerecord: record before every submit
  double last_gpu_ns = 0;
  std::vector<uint32_t> scratch_lengths;      // prepare(): the rows' lengths before the step
  std::vector<KvPages::Copy> scratch_copies;  // prepare(): blocks to copy before the step

  Impl() = default;
  ~Impl();
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void check_model(const ModelDesc& model) const;
  void check_inputs(std::span<const uint32_t> seqs, size_t q, size_t k, size_t v) const;
  // Blocks until frame f's last step is done (nothing when idle).
  void wait_frame(uint32_t f);
  void record_frame(VkCommandBuffer cmd, uint32_t f) const;
  void ensure_recorded(uint32_t f);
  uint64_t prepare(std::span<const uint32_t> seqs, std::span<const float> q,
                   std::span<const float> k, std::span<const float> v);
  void submit(uint32_t f, const StepSync& sync);
  // The frame a ticket uses: tickets take the frames in turn.
  uint32_t frame_index(uint64_t ticket) const {
    return static_cast<uint32_t>((ticket - 1) % frames.size());
  }
  // frame_index of one of the last `frames` tickets; throws naming any other (`what`: the caller).
  uint32_t frame_of(uint64_t ticket, const char* what) const;
  // Throws unless `got` output values are rows x every layer's [H, Dv].
  void check_out(size_t got, uint64_t rows) const;
  void finish(uint64_t ticket, std::span<float> out);
};

}  // namespace gqavk
