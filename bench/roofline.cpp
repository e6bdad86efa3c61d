#include "roofline.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <utility>
#include <vector>

#include "commands.hpp"
#include "pipeline.hpp"
#include "tuning.hpp"

namespace gqavk::bench {

namespace {
constexpr uint32_t kLanes = 64;  // workgroup of the GPU-style read variants and the FMA kernel
constexpr uint32_t kBatch = 8;   // BATCH in roofline_read.comp and decode_floor.comp
constexpr uint32_t kMaxGroups = 32768;  // sizes the sink
constexpr uint32_t kFloorHeads = 4;     // query heads per pass of the decode floor
constexpr uint32_t kFmaGroups = 4096;
constexpr uint32_t kFmaStepsPerLane = 1024;  // per invocation, rounded down to whole trips
// Shapes of roofline_fma.comp that gqavk-bench times, keeping the fastest.
struct FmaShape {
  uint32_t chains, unroll;
  bool chained;
};
constexpr FmaShape kFmaShapes[] = {{8, 1, true}, {2, 32, false}, {3, 16, false}, {3, 32, false}};
// Push constants of roofline_read.comp (texels_per_group only) and decode_floor.comp.
struct StreamParams {
  uint32_t texels_per_group;
  float weight;
};
}  // namespace

// A streaming kernel: which load path it binds and its workgroup size.
struct Roofline::Variant {
  std::string name;
  LoadPath path;
  uint32_t lanes;
  ComputePipeline pipe;
};

namespace {
// A streaming kernel `shader`_<path> with workgroup size `lanes` and specialization constants 1..
// of `spec`; push constants are StreamParams.
Roofline::Variant make_variant(const ImplOf<Context>& ctx, std::string name, const char* shader,
                               LoadPath path, uint32_t lanes, const std::vector<uint32_t>& spec) {
  PipelineDesc d;
  d.shader = std::string(shader) + "_" + to_string(path);
  d.bindings = {kv_pool_descriptor_type(path), VK_DESCRIPTOR_TYPE_STORAGE_BUFFER};
  d.push_constant_bytes = sizeof(StreamParams);
  d.spec_constants = {lanes};
  d.spec_constants.insert(d.spec_constants.end(), spec.begin(), spec.end());
  return {std::move(name) + "/" + std::to_string(lanes), path, lanes, ctx.make_pipeline(d)};
}
}  // namespace

struct Roofline::Pipelines {
  std::vector<Variant> reads;
  std::map<uint64_t, std::vector<Variant>> floors;  // by (heads, storage type)
  std::vector<std::pair<FmaShape, ComputePipeline>> fmas;
  Buffer sink;
  TimestampQueries ts;
};

Roofline::Roofline(ImplOf<Context>& ctx)
    : ctx_(ctx),
      p_(std::make_unique<Pipelines>()),
      verbose_(std::getenv("GQAVK_BENCH_VERBOSE") != nullptr) {
  // Reads: every load path, lanes strided or in runs, 64-lane workgroups or one subgroup.
  for (LoadPath path : kLoadPaths) {
    for (bool runs : {false, true}) {
      for (uint32_t lanes : workgroup_sizes()) {
        p_->reads.push_back(
            make_variant(ctx, std::string(to_string(path)) + (runs ? "-runs" : "-strided"),
                         "roofline_read", path, lanes, {runs ? 1u : 0u}));
      }
    }
  }
  for (auto shape : kFmaShapes) {
    PipelineDesc f;
    f.shader = "roofline_fma";
    f.bindings = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER};
    f.push_constant_bytes = 8;
    f.spec_constants = {kLanes, shape.chains, shape.unroll, shape.chained ? 1u : 0u};
    p_->fmas.emplace_back(shape, ctx.make_pipeline(f));
  }
  p_->sink = ctx.make_buffer(BufferKind::device_local, uint64_t{kMaxGroups} * kLanes * 4, "sink");
  p_->ts =
      TimestampQueries(ctx.device, 2, ctx.info.timestamp_period_ns, ctx.info.timestamp_valid_bits);
}

Roofline::~Roofline() = default;

std::vector<uint32_t> Roofline::workgroup_sizes() const {
  // One subgroup, as decode runs (the probed lane count), and a GPU-style 64.
  const uint32_t subgroup = ctx_.info.subgroup_lanes ? ctx_.info.subgroup_lanes : kLanes;
  if (subgroup == kLanes) return {kLanes};
  return {kLanes, subgroup};
}

double Roofline::time_stream(const Variant& v, const Buffer& buffer, uint64_t bytes, int reps) {
  // Enough workgroups to keep every compute unit busy, each a whole number of batches.
  const uint64_t step = uint64_t{v.lanes} * kBatch;
  const uint64_t want =
      std::clamp<uint64_t>(8ull * std::max(1u, ctx_.info.compute_units), 1, kMaxGroups);
  const uint64_t per_group = std::max<uint64_t>(step, bytes / 16 / want / step * step);
  const uint64_t groups = std::min<uint64_t>(bytes / 16 / per_group, kMaxGroups);
  const uint64_t span = groups * per_group * 16;
  if (groups == 0 || span > max_binding_bytes(ctx_.info, v.path)) {
    return std::numeric_limits<double>::infinity();
  }
  std::optional<TexelView> view;
  Binding src;
  if (uses_texel_view(v.path)) {
    view.emplace(ctx_.device, buffer);
    src.texel_view = view->handle();
  } else {
    src.buffer = buffer.handle();
    src.range = span;
  }
  const uint64_t sink_bytes = groups * v.lanes * 4;
  DescriptorSet set(ctx_.device, v.pipe, {src, {p_->sink.handle(), 0, sink_bytes}});
  const StreamParams params{static_cast<uint32_t>(per_group), 0.5f};
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < reps; ++r) {
    ctx_.submit([&](VkCommandBuffer cmd) {
      p_->ts.reset(cmd);
      p_->ts.write(cmd, 0);
      record_dispatch(cmd, v.pipe, set.handle(), push_bytes(params), static_cast<uint32_t>(groups));
      p_->ts.write(cmd, 1);
    });
    const double sec =
        p_->ts.elapsed_ns(0, 1) * 1e-9 * static_cast<double>(bytes) / static_cast<double>(span);
    if (verbose_) std::fprintf(stderr, "roofline %s: %.3f ms\n", v.name.c_str(), sec * 1e3);
    best = std::min(best, sec);
  }
  return best;
}

ReadResult Roofline::read_seconds(const Buffer& buffer, uint64_t bytes, int reps) {
  ReadResult best{std::numeric_limits<double>::infinity(), "none"};
  for (const Variant& v : p_->reads) {
    const double sec = time_stream(v, buffer, bytes, reps);
    if (sec < best.seconds) best = {sec, v.name};
  }
  if (best.variant == "none") best.seconds = 0;
  return best;
}

ReadResult Roofline::floor_seconds(const Buffer& buffer, uint64_t bytes, uint32_t heads,
                                   DType dtype, int reps) {
  // Past kFloorHeads heads the accumulators outgrow a CPU's registers: the floor then reads the
  // bytes once per kFloorHeads heads, as decode reads KV once per chunk of a large group.
  const uint32_t chunk = std::min(heads, kFloorHeads);
  const uint32_t passes = (heads + chunk - 1) / chunk;
  const auto type = static_cast<uint32_t>(dtype);  // KV_TYPE
  std::vector<Variant>& floors = p_->floors[uint64_t{chunk} << 8 | type];
  if (floors.empty()) {
    for (LoadPath path : kLoadPaths) {
      for (uint32_t lanes : workgroup_sizes()) {
        floors.push_back(make_variant(ctx_, std::string("floor ") + to_string(path), "decode_floor",
                                      path, lanes, {chunk, type}));
      }
    }
  }
  ReadResult best{std::numeric_limits<double>::infinity(), "none"};
  for (const Variant& v : floors) {
    const double sec = passes * time_stream(v, buffer, bytes, reps);
    if (sec < best.seconds) best = {sec, v.name};
  }
  return best;
}

double Roofline::fma_flops_per_second(int reps) {
  double best = 0;
  for (auto& [shape, pipe] : p_->fmas) {
    DescriptorSet set(ctx_.device, pipe, {{p_->sink.handle()}});
    const struct {
      uint32_t trips;
      float seed;
    } params{kFmaStepsPerLane / shape.unroll, 0.5f};
    // 8 FLOPs per chain and step (a vec4 FMA), over the steps the dispatch really runs.
    const double flops =
        double{kFmaGroups} * kLanes * params.trips * shape.unroll * shape.chains * 8.0;
    for (int r = 0; r < reps; ++r) {
      ctx_.submit([&](VkCommandBuffer cmd) {
        p_->ts.reset(cmd);
        p_->ts.write(cmd, 0);
        record_dispatch(cmd, pipe, set.handle(), push_bytes(params), kFmaGroups);
        p_->ts.write(cmd, 1);
      });
      const double sec = p_->ts.elapsed_ns(0, 1) * 1e-9;
      if (verbose_) {
        std::fprintf(stderr, "roofline fma %s%ux%u: %.1f GFLOP/s\n",
                     shape.chained ? "chained " : "", shape.chains, shape.unroll,
                     flops / sec * 1e-9);
      }
      best = std::max(best, flops / sec);
    }
  }
  return best;
}

}  // namespace gqavk::bench
