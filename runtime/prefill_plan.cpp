#include <algorithm>
#include <cmath>
#include <string>

#include "attention_options.hpp"
#include "prefill_plan_impl.hpp"
#include "vk_util.hpp"

namespace gqavk {

namespace {

[[noreturn]] void bad(const std::string& message) {
  throw Error(ErrorCode::invalid_argument, message);
}

// A buffer of at least `bytes` (16 minimum: Vulkan has no empty buffers), grown by half again so
// that slowly growing runs do not reallocate every time.
bool grow(ImplOf<Context>& ctx, Buffer& buffer, uint64_t bytes, const char* what) {
  if (buffer.handle() != VK_NULL_HANDLE && buffer.bytes() >= bytes) return false;
  const uint64_t want = std::max<uint64_t>({16, bytes, buffer.bytes() + buffer.bytes() / 2});
  buffer = ctx.make_buffer(BufferKind::device_local, want, what);
  return true;
}

}  // namespace

PrefillPlan::PrefillPlan(Context& context, const KvCache& cache, const PrefillDesc& desc)
    : impl_(std::make_unique<Impl>()) {
  Impl& p = *impl_;
  p.ctx = &impl_of(context);
  p.cache = &impl_of(cache);
  require(p.cache->ctx == p.ctx, ErrorCode::invalid_argument,
          "the KV cache was made on another context than the plan");
  const KvCacheDesc& kv = p.cache->desc;
  check_attention_options(desc.q_heads, kv.kv_heads, desc.scale, desc.window, desc.softcap,
                          desc.sinks);
  if (desc.window && !desc.causal) {
    bad("window " + std::to_string(*desc.window) +
        " needs causal attention (expected causal = true, or no window)");
  }
  p.cache->check_plan_layer(desc.layer, desc.window);
  p.layer = desc.layer;

  const DeviceInfo& dev = p.ctx->info;
  p.shape = {desc.q_heads,
             kv.kv_heads,
             kv.head_dim,
             kv.v_head_dim,
             kv.dtype,
             kv.capacity_tokens,
             p.cache->pool.bytes(),
             p.cache->block_shift,
             p.cache->group_shift,
             desc.softcap.has_value()};
  p.tuning = choose_prefill_tuning(dev, p.shape, overrides_from_env());
  const PrefillTuning& t = p.tuning;
  p.cache->pool_binding(t.load_path);  // throws before any pipeline is built if it has none
  check_prefill_limits(dev, p.shape, t);
  p.pipeline = p.ctx->shared_pipeline(prefill_pipeline_descs(p.shape, t).prefill);

  const float scale = desc.scale ? *desc.scale : 1.0f / std::sqrt(static_cast<float>(kv.head_dim));
  p.params = {desc.q_heads,
              kv.kv_heads,
              desc.q_heads / kv.kv_heads,
              t.head_chunks,
              p.cache->blocks_per_seq,
              kv.capacity_tokens,
              scale,
              desc.softcap ? *desc.softcap : 0.0f,
              desc.window.value_or(0u),
              desc.causal ? 1u : 0u,
              desc.sinks.empty() ? 0u : 1u,
              p.cache->table_base(desc.layer)};
  // Binding 6 is always bound: the sinks, or a dummy the kernel never reads.
  p.sinks = p.ctx->make_buffer(BufferKind::device_local,
                               std::max<uint64_t>(16, 4ull * desc.sinks.size()), "sinks");
  if (!desc.sinks.empty()) {
    p.ctx->upload(p.sinks, 0, desc.sinks.data(), 4ull * desc.sinks.size());
  }
  p.timestamps =
      TimestampQueries(p.ctx->device, 2, dev.timestamp_period_ns, dev.timestamp_valid_bits);
}

PrefillPlan::~PrefillPlan() = default;
PrefillPlan::PrefillPlan(PrefillPlan&&) noexcept = default;
PrefillPlan& PrefillPlan::operator=(PrefillPlan&&) noexcept = default;

double PrefillPlan::last_gpu_ns() const { return impl_->last_gpu_ns; }

void PrefillPlan::Impl::check_run(std::span<const float> q_values, std::span<const PrefillSeq> seqs,
                                  size_t out_size) const {
  const KvCacheDesc& kv = cache->desc;
  if (seqs.empty()) bad("seqs is empty (expected at least one entry)");
  uint64_t rows = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const PrefillSeq& s = seqs[i];
    const std::string at = "entry " + std::to_string(i) + ": ";
    if (s.seq >= kv.batch) {
      bad(at + "seq " + std::to_string(s.seq) + " is out of range (expected below the cache's " +
          "batch " + std::to_string(kv.batch) + ")");
    }
    if (s.queries == 0) bad(at + "queries 0 is out of range (expected at least 1)");
    if (s.kv_length == 0 || s.kv_length > kv.capacity_tokens) {
      bad(at + "kv_length " + std::to_string(s.kv_length) +
          " is out of range (expected 1 to the cache capacity " +
          std::to_string(kv.capacity_tokens) + ")");
    }
    if (params.causal && s.queries > s.kv_length) {
      bad(at + "queries " + std::to_string(s.queries) + " > kv_length " +
          std::to_string(s.kv_length) +
          " with causal attention (expected queries <= kv_length: the queries are the last " +
          "queries of the kv_length tokens)");
    }
    // The first query, at position kv_length - queries, sees the earliest key.
    const uint32_t first_pos = s.kv_length - s.queries + 1;
    const uint32_t first_key =
        params.causal && params.window && first_pos > params.window ? first_pos - params.window : 0;
    cache->check_readable(s.seq, layer, first_key, s.kv_length, at + "kv_length");
    rows += s.queries;
  }
  rows *= shape.q_heads;
  const std::string sum = " (sum over entries of H * Lq * ";
  const uint64_t q_want = rows * shape.head_dim;
  if (q_values.size() != q_want) {
    bad("q has " + std::to_string(q_values.size()) + " values; expected " + std::to_string(q_want) +
        sum + "Dk, H = " + std::to_string(shape.q_heads) +
        ", Dk = " + std::to_string(shape.head_dim) + ")");
  }
  const uint64_t out_want = rows * shape.v_head_dim;
  if (out_size != out_want) {
    bad("out has room for " + std::to_string(out_size) + " values; expected " +
        std::to_string(out_want) + sum + "Dv, H = " + std::to_string(shape.q_heads) +
        ", Dv = " + std::to_string(shape.v_head_dim) + ")");
  }
  for (size_t i = 0; i < q_values.size(); ++i) {
    if (!std::isfinite(q_values[i])) {
      bad("q[" + std::to_string(i) + "] = " + std::to_string(q_values[i]) +
          " is not finite (expected finite query values)");
    }
  }
}

void PrefillPlan::Impl::build_work(std::span<const PrefillSeq> seqs,
                                   std::vector<PrefillEntry>& entry_list,
                                   std::vector<PrefillTile>& tile_list) const {
  struct Work {
    PrefillTile tile;
    uint64_t keys;  // keys the tile's last query sees: its cost, roughly
  };
  std::vector<Work> work;
  uint32_t first_row = 0;
  const uint32_t tq = tuning.tile_queries;
  for (size_t i = 0; i < seqs.size(); ++i) {
    const PrefillSeq& s = seqs[i];
    entry_list.push_back({s.seq, s.queries, s.kv_length, first_row});
    first_row += shape.q_heads * s.queries;
    for (uint32_t first = 0; first < s.queries; first += tq) {
      const uint32_t last = std::min(first + tq, s.queries) - 1;
      uint64_t keys = s.kv_length;
      if (params.causal) {
        const uint64_t pos = uint64_t{s.kv_length} - s.queries + last;
        keys = params.window ? std::min<uint64_t>(pos + 1, params.window + tq) : pos + 1;
      }
      work.push_back({{static_cast<uint32_t>(i), first}, keys});
    }
  }
  std::stable_sort(work.begin(), work.end(),
                   [](const Work& a, const Work& b) { return a.keys > b.keys; });
  tile_list.reserve(work.size());
  for (const Work& w : work) tile_list.push_back(w.tile);
}

void PrefillPlan::Impl::reserve(uint64_t entry_bytes, uint64_t tile_bytes, uint64_t q_bytes,
                                uint64_t out_bytes) {
  bool grew = grow(*ctx, entries, entry_bytes, "prefill entries");
  grew = grow(*ctx, tiles, tile_bytes, "prefill tiles") || grew;
  grew = grow(*ctx, q, q_bytes, "prefill queries") || grew;
  grew = grow(*ctx, out, out_bytes, "prefill output") || grew;
  if (!grew) return;
  set = DescriptorSet(ctx->device, *pipeline,
                      {cache->pool_binding(tuning.load_path),
                       {cache->block_table.handle()},
                       {entries.handle()},
                       {tiles.handle()},
                       {q.handle()},
                       {out.handle()},
                       {sinks.handle()}});
}

void PrefillPlan::run(std::span<const float> q, std::span<const PrefillSeq> seqs,
                      std::span<float> out) {
  Impl& p = *impl_;
  p.check_run(q, seqs, out.size());
  std::vector<PrefillEntry> entry_list;
  std::vector<PrefillTile> tile_list;
  p.build_work(seqs, entry_list, tile_list);
  const uint64_t entry_bytes = entry_list.size() * sizeof(PrefillEntry);
  const uint64_t tile_bytes = tile_list.size() * sizeof(PrefillTile);
  check_prefill_run_limits(p.ctx->info, p.shape, p.tuning, q.size_bytes(), out.size_bytes(),
                           tile_list.size());
  p.reserve(entry_bytes, tile_bytes, q.size_bytes(), out.size_bytes());
  p.cache->sync_tables();
  p.ctx->upload(p.entries, 0, entry_list.data(), entry_bytes);
  p.ctx->upload(p.tiles, 0, tile_list.data(), tile_bytes);
  p.ctx->upload(p.q, 0, q.data(), q.size_bytes());
  p.ctx->submit([&](VkCommandBuffer cmd) {
    memory_barrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                   VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                   VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
    p.timestamps.reset(cmd);
    p.timestamps.write(cmd, 0);
    record_dispatch(cmd, *p.pipeline, p.set.handle(), push_bytes(p.params),
                    static_cast<uint32_t>(tile_list.size()),
                    p.shape.kv_heads * p.tuning.head_chunks);
    p.timestamps.write(cmd, 1);
    memory_barrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                   VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_READ_BIT);
  });
  p.ctx->download(p.out, 0, out.data(), out.size_bytes());
  p.last_gpu_ns = p.timestamps.elapsed_ns(0, 1);
}

std::vector<float> PrefillPlan::run(std::span<const float> q, std::span<const PrefillSeq> seqs) {
  uint64_t queries = 0;
  for (const PrefillSeq& s : seqs) queries += s.queries;
  std::vector<float> out(queries * impl_->shape.q_heads * impl_->shape.v_head_dim);
  run(q, seqs, out);
  return out;
}

}  // namespace gqavk
