#include "roofline.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>

#include "commands.hpp"
#include "pipeline.hpp"
#include "tuning.hpp"

namespace gqavk::bench {

namespace {
constexpr uint32_t kLanes = 64;
constexpr uint32_t kTexelsPerGroup = kLanes * 256;  // 256 KiB a workgroup
constexpr uint32_t kFmaGroups = 4096;
constexpr uint32_t kMaxReadGroups = 32768;  // 8 GiB of reads; sizes the sink
constexpr uint32_t kFmaIterations = 2048;
struct ReadParams {
  uint32_t texels_per_group, first_texel;
};
}  // namespace

struct Roofline::Pipelines {
  ComputePipeline texel, texel_runs, strided, runs, fma;
  Buffer sink;
  TimestampQueries ts;
};

Roofline::Roofline(Context::Impl& ctx)
    : ctx_(ctx),
      p_(std::make_unique<Pipelines>()),
      verbose_(std::getenv("GQAVK_BENCH_VERBOSE") != nullptr) {
  PipelineDesc d;
  d.push_constant_bytes = sizeof(ReadParams);
  d.spec_constants = {kLanes, 0};
  d.shader = "roofline_read_texel";
  d.bindings = {VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER};
  p_->texel = ctx.make_pipeline(d);
  d.spec_constants = {kLanes, 1};
  p_->texel_runs = ctx.make_pipeline(d);
  d.spec_constants = {kLanes, 0};
  d.shader = "roofline_read_storage";
  d.bindings = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER};
  p_->strided = ctx.make_pipeline(d);
  d.spec_constants = {kLanes, 1};
  p_->runs = ctx.make_pipeline(d);
  PipelineDesc f;
  f.shader = "roofline_fma";
  f.bindings = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER};
  f.push_constant_bytes = 8;
  f.spec_constants = {kLanes};
  p_->fma = ctx.make_pipeline(f);
  p_->sink =
      ctx.make_buffer(BufferKind::device_local, uint64_t{kMaxReadGroups} * kLanes * 4, "sink");
  p_->ts =
      TimestampQueries(ctx.device, 2, ctx.info.timestamp_period_ns, ctx.info.timestamp_valid_bits);
}

Roofline::~Roofline() = default;

ReadResult Roofline::read_seconds(const Buffer& buffer, uint64_t bytes, int reps) {
  const uint64_t groups = bytes / (uint64_t{kTexelsPerGroup} * 16);
  ReadResult best{std::numeric_limits<double>::infinity(), ""};
  if (groups == 0 || groups > kMaxReadGroups) return {0, "none"};
  std::optional<TexelView> view;
  struct Variant {
    const char* name;
    const ComputePipeline* pipe;
    bool texel;
  };
  const Variant variants[] = {{"texel", &p_->texel, true},
                              {"texel-runs", &p_->texel_runs, true},
                              {"storage-strided", &p_->strided, false},
                              {"storage-runs", &p_->runs, false}};
  const uint64_t sink_bytes = std::min<uint64_t>(p_->sink.bytes(), groups * kLanes * 4);
  for (const Variant& v : variants) {
    const uint64_t span = groups * kTexelsPerGroup * 16;
    if (v.texel && span > max_binding_bytes(ctx_.info, LoadPath::texel)) continue;
    if (!v.texel && span > max_binding_bytes(ctx_.info, LoadPath::storage)) continue;
    if (v.texel && !view) view.emplace(ctx_.device, buffer);
    Binding src;
    if (v.texel) {
      src.texel_view = view->handle();
    } else {
      src.buffer = buffer.handle();
      src.range = span;
    }
    DescriptorSet set(ctx_.device, *v.pipe, {src, {p_->sink.handle(), 0, sink_bytes}});
    const ReadParams params{kTexelsPerGroup, 0};
    for (int r = 0; r < reps; ++r) {
      ctx_.submit([&](VkCommandBuffer cmd) {
        p_->ts.reset(cmd);
        p_->ts.write(cmd, 0);
        record_dispatch(cmd, *v.pipe, set.handle(), push_bytes(params),
                        static_cast<uint32_t>(groups));
        p_->ts.write(cmd, 1);
      });
      const double s =
          p_->ts.elapsed_ns(0, 1) * 1e-9 * static_cast<double>(bytes) / static_cast<double>(span);
      if (verbose_) std::fprintf(stderr, "roofline read %s: %.3f ms\n", v.name, s * 1e3);
      if (s < best.seconds) best = {s, v.name};
    }
  }
  return best;
}

double Roofline::fma_flops_per_second(int reps) {
  DescriptorSet set(ctx_.device, p_->fma, {{p_->sink.handle()}});
  const struct {
    uint32_t iterations;
    float seed;
  } params{kFmaIterations, 0.5f};
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    ctx_.submit([&](VkCommandBuffer cmd) {
      p_->ts.reset(cmd);
      p_->ts.write(cmd, 0);
      record_dispatch(cmd, p_->fma, set.handle(), push_bytes(params), kFmaGroups);
      p_->ts.write(cmd, 1);
    });
    const double flops = double{kFmaGroups} * kLanes * kFmaIterations * 64.0;
    best = std::max(best, flops / (p_->ts.elapsed_ns(0, 1) * 1e-9));
  }
  return best;
}

}  // namespace gqavk::bench
