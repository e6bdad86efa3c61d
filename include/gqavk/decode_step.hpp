// gqavk::DecodeStep: one generated token's attention for every layer of a model, recorded once and
// replayed each step: append the new K/V into the cache, decode attention, merge the splits.
#pragma once

#include <vulkan/vulkan_core.h>

#include <cstdint>
#include <memory>
#include <span>

#include "gqavk/detail.hpp"
#include "gqavk/export.h"
#include "gqavk/model.hpp"

namespace gqavk {

class Context;
class DeviceBuffer;
class KvCache;

struct DecodeStepDesc {
  // Rows of a step: at most this many sequences decode one token each per step (at most the
  // cache's slots).
  uint32_t max_batch = 1;
  // Steps in flight: submit() returns while up to this many run; the host fills a step's inputs
  // while earlier ones run. At least 1.
  uint32_t frames = 2;
  // Each layer's bound on KV splits, as DecodeDesc::max_splits (0 picks from the capacity or the
  // layer's window). Dispatch sizes follow it, never the sequences' lengths.
  uint32_t max_splits = 0;
};

// An engine's device buffer holding a step's input or output (DecodeStep::set_device_io).
struct StepBuffer {
  const DeviceBuffer* buffer = nullptr;
  uint64_t offset = 0;  // bytes, a multiple of 4
};

// Where a step's Q, K, V and output lie in an engine's device buffers: f32, layer by layer, each
// layer's block holding max_batch rows (row r is seqs[r] of the step; rows past seqs.size() are
// ignored, and their output rows are zero). Per layer l: q [max_batch, H_l, Dk], k [max_batch, G,
// Dk], v [max_batch, G, Dv], out [max_batch, H_l, Dv]; the layers' blocks follow each other.
struct StepDeviceIo {
  StepBuffer q, k, v, out;
};

// Optional semaphores of a submit: the step waits for `wait` to reach `wait_value` before it reads
// its inputs (e.g. the engine's projection of Q, K, V) and signals `signal` with `signal_value`
// when its output is written. Both are timeline semaphores of the Context's device (or
// VK_NULL_HANDLE for none).
struct StepSync {
  VkSemaphore wait = VK_NULL_HANDLE;
  uint64_t wait_value = 0;
  VkSemaphore signal = VK_NULL_HANDLE;
  uint64_t signal_value = 0;
};

// The recorded decode step of a model over a KvCache. Each step appends one token to each listed
// sequence in every layer (at position length(seq), which must be the same in every layer) and
// attends with that token's query over all of the sequence's tokens, with each layer's options.
// Per-step values (which sequences, their lengths and positions, the block tables) go into a
// parameter area the recorded commands copy in; nothing is re-recorded while sequences grow,
// start, fork or finish. Re-recording happens only on set_device_io / set_host_io (the recorded
// copies name the I/O buffers); the model, the cache and max_batch are fixed for a step's life.
// recordings() counts them. Borrows the Context and the KvCache, which must outlive it; the cache's
// other operations may be called between steps (a step in flight is ordered before them on the
// GPU). Not thread-safe: one thread at a time per DecodeStep and its cache.
class GQAVK_API DecodeStep {
 public:
  // Validates the model against the cache (every layer's kv_heads, head dims and storage type, its
  // window against the cache's layer windows), chooses each layer's kernel variant and allocates
  // the step's buffers; throws gqavk::Error naming the bad layer and field.
  DecodeStep(Context& context, KvCache& cache, const ModelDesc& model,
             const DecodeStepDesc& desc = {});
  ~DecodeStep();  // waits for the steps in flight
  DecodeStep(DecodeStep&&) noexcept;
  DecodeStep& operator=(DecodeStep&&) noexcept;
  DecodeStep(const DecodeStep&) = delete;
  DecodeStep& operator=(const DecodeStep&) = delete;

  // One step from host memory, blocking until done. seqs: the open cache slots decoding a token,
  // distinct, 1 to max_batch of them; row r is seqs[r]. Inputs f32, layer by layer, each layer
  // [n, H_l, Dk] (q), [n, G, Dk] (k), [n, G, Dv] (v) with n = seqs.size(); out receives [n, H_l,
  // Dv] per layer. Throws (changing nothing) for bad arguments or a pool out of blocks; a K/V
  // value the storage type cannot hold is reported by an Error after the step, as
  // KvCache::append does.
  void run(std::span<const uint32_t> seqs, std::span<const float> q, std::span<const float> k,
           std::span<const float> v, std::span<float> out);

  // The pipelined form: the step is submitted and submit() returns its ticket (1, 2, ...) without
  // waiting for it; it waits only for the step `frames` tickets back, whose buffers it reuses.
  // Host I/O: q, k and v as for run(); read the output with wait(ticket, out). Device I/O
  // (set_device_io): pass empty q, k and v.
  uint64_t submit(std::span<const uint32_t> seqs, std::span<const float> q = {},
                  std::span<const float> k = {}, std::span<const float> v = {},
                  const StepSync& sync = {});
  // Blocks until step `ticket` is done; with host I/O copies its output into `out` (sized as for
  // run(); only the most recent `frames` steps' outputs are kept). Reports unstorable K/V values.
  void wait(uint64_t ticket, std::span<float> out = {});

  // Reads inputs from and writes outputs to the engine's device buffers (StepDeviceIo) from the
  // next step on; re-records. Each buffer must be large enough for max_batch rows of every layer.
  void set_device_io(const StepDeviceIo& io);
  // Back to host memory I/O (the default); re-records when it changes anything.
  void set_host_io();

  // For an engine that submits the step itself, in its own command buffer. prepare() does
  // submit()'s host work (checks, blocks, parameters, host inputs) into frame `frame` = (ticket -
  // 1) % frames and returns the ticket; record() records that frame's commands into the engine's
  // command buffer (which may be replayed for every later use of the same frame). The engine
  // submits it to the Context's queue, then calls submitted(ticket, semaphore, value) with a
  // timeline semaphore value signalled after it, which wait(ticket) and the frame's next prepare()
  // wait for. The recorded commands begin with a barrier on all earlier work of the queue and end
  // with their writes available to later commands of any stage.
  uint64_t prepare(std::span<const uint32_t> seqs, std::span<const float> q = {},
                   std::span<const float> k = {}, std::span<const float> v = {});
  void record(VkCommandBuffer cmd, uint32_t frame) const;
  void submitted(uint64_t ticket, VkSemaphore semaphore, uint64_t value);

  // Replaces layer `layer`'s sink logits (one per query head; the layer must have sinks in the
  // model). Blocks until uploaded; no re-recording.
  void set_sinks(uint32_t layer, std::span<const float> sinks);

  // Number of times the step's command buffers were recorded.
  uint64_t recordings() const;
  // GPU time of the last waited step in nanoseconds (timestamps around the whole step); 0 when
  // the device has no timestamps.
  double last_gpu_ns() const;
  uint32_t frames() const;
  uint32_t max_batch() const;
  // Values per step of each input and output for `rows` rows (all layers): q, k, v, out.
  uint64_t q_values(uint32_t rows) const;
  uint64_t k_values(uint32_t rows) const;
  uint64_t v_values(uint32_t rows) const;
  uint64_t out_values(uint32_t rows) const;

 private:
  friend struct detail::Access;  // the runtime's door to Impl (runtime/impl_access.hpp)
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gqavk
