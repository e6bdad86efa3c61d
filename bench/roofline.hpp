// The roofline gqavk-bench divides kernel times by, measured on the same device in the same run:
// the fastest streaming read this device offers over a byte range, and its vec4 FMA rate.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "buffer.hpp"
#include "context_impl.hpp"

namespace gqavk::bench {

struct ReadResult {
  double seconds = 0;   // fastest of the read variants
  std::string variant;  // which one: texel, storage-strided, storage-runs
};

class Roofline {
 public:
  explicit Roofline(Context::Impl& ctx);
  ~Roofline();
  // Time to stream the first `bytes` of `buffer` (a KV pool), fastest variant, best of `reps`.
  ReadResult read_seconds(const Buffer& buffer, uint64_t bytes, int reps = 3);
  // Sustained FMA rate in FLOP/s (an FMA counts 2), best of `reps`.
  double fma_flops_per_second(int reps = 3);

 private:
  struct Pipelines;
  Context::Impl& ctx_;
  std::unique_ptr<Pipelines> p_;
  bool verbose_;  // GQAVK_BENCH_VERBOSE: print every read variant's time
};

}  // namespace gqavk::bench
