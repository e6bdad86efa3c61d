// The roofline gqavk-bench divides kernel times by, measured on the same device in the same run:
// the fastest streaming read this device offers over a byte range, and its fastest vec4 FMA rate
// (shaders/roofline_fma.comp, several loop shapes: compilers differ in which runs at peak). Beside
// it, the decode floor: the same bytes read and given the least work decode must do with them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "buffer.hpp"
#include "context_impl.hpp"
#include "gqavk/types.hpp"

namespace gqavk::bench {

struct ReadResult {
  double seconds = 0;   // fastest of the variants
  std::string variant;  // which one, e.g. texel-strided/8 (path, lane pattern, workgroup size)
};

class Roofline {
 public:
  explicit Roofline(ImplOf<Context>& ctx);
  ~Roofline();
  // Time to stream the first `bytes` of `buffer` (a KV pool), fastest variant, best of `reps`.
  ReadResult read_seconds(const Buffer& buffer, uint64_t bytes, int reps = 3);
  // Time of shaders/decode_floor.comp over the first `bytes` of `buffer`: every value widened to
  // f32 as `dtype` stores it (q8, q4: dequantised, their scales aside) and fed to `heads`
  // multiply-adds (H/G for decode), 4 heads a pass. Fastest variant, best of `reps`.
  ReadResult floor_seconds(const Buffer& buffer, uint64_t bytes, uint32_t heads, DType dtype,
                           int reps = 3);
  // Sustained FMA rate in FLOP/s (an FMA counts 2): fastest shape, best of `reps` each.
  double fma_flops_per_second(int reps = 3);

  struct Variant;  // a streaming kernel (roofline.cpp)

 private:
  struct Pipelines;
  std::vector<uint32_t> workgroup_sizes() const;
  // Best of `reps` dispatches of `v` over `buffer`, in seconds scaled to `bytes`.
  double time_stream(const Variant& v, const Buffer& buffer, uint64_t bytes, int reps);

  ImplOf<Context>& ctx_;
  std::unique_ptr<Pipelines> p_;
  bool verbose_;  // GQAVK_BENCH_VERBOSE: print every variant's time
};

}  // namespace gqavk::bench
