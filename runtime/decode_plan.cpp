#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "attention_options.hpp"
#include "decode_params.hpp"
#include "decode_pipelines.hpp"
#include "decode_plan_impl.hpp"
#include "vk_util.hpp"

namespace gqavk {

namespace {

uint64_t align16(uint64_t x) { return (x + 15) & ~uint64_t{15}; }

}  // namespace

DecodePlan::DecodePlan(Context& context, const KvCache& cache, const DecodeDesc& desc)
    : impl_(std::make_unique<Impl>()) {
  Impl& p = *impl_;
  p.ctx = &impl_of(context);
  p.cache = &impl_of(cache);
  require(p.cache->ctx == p.ctx, ErrorCode::invalid_argument,
          "the KV cache was made on another context than the plan");
  const KvCacheDesc& kv = p.cache->desc;
  p.batch = kv.batch;
  p.kv_heads = kv.kv_heads;
  p.head_dim = kv.head_dim;
  p.q_heads = desc.q_heads;
  check_attention_options(desc.q_heads, kv.kv_heads, desc.scale, desc.window, desc.softcap,
                          desc.sinks);
  p.cache->check_plan_layer(desc.layer, desc.window);
  p.layer = desc.layer;
  if (desc.max_splits > 1024) {
    throw Error(ErrorCode::invalid_argument, "max_splits " + std::to_string(desc.max_splits) +
                                                 " is too large (expected 0 for automatic, or 1 "
                                                 "to 1024)");
  }
  p.scale = desc.scale ? *desc.scale : 1.0f / std::sqrt(static_cast<float>(kv.head_dim));
  p.v_head_dim = kv.v_head_dim;
  p.window = desc.window.value_or(0u);
  p.softcap = desc.softcap.value_or(0.0f);
  p.has_sinks = !desc.sinks.empty();

  const DeviceInfo& dev = p.ctx->info;
  DecodeShape shape{kv.batch,
                    desc.q_heads,
                    kv.kv_heads,
                    kv.head_dim,
                    kv.dtype,
                    kv.capacity_tokens,
                    p.cache->pool.bytes(),
                    p.cache->block_shift,
                    p.cache->group_shift,
                    kv.v_head_dim,
                    p.window};
  p.tuning = choose_decode_tuning(dev, shape, desc.max_splits, overrides_from_env());
  const DecodeTuning& t = p.tuning;
  const Binding pool_binding = p.cache->pool_binding(t.load_path);
  check_decode_limits(dev, shape, t);
  const bool split = t.max_splits > 1;
  const DecodePipelineDescs descs = decode_pipeline_descs(shape, t);
  p.decode = p.ctx->shared_pipeline(descs.decode);

  const uint64_t rows = uint64_t{kv.batch} * desc.q_heads;
  const uint64_t q_row_bytes = uint64_t{kv.head_dim} * sizeof(float);
  const uint64_t row_bytes = uint64_t{kv.v_head_dim} * sizeof(float);  // output rows
  p.q = p.ctx->make_buffer(BufferKind::device_local, rows * q_row_bytes, "query");
  p.lengths = p.ctx->make_buffer(BufferKind::device_local, kv.batch * 4ull, "lengths");
  p.out = p.ctx->make_buffer(BufferKind::device_local, rows * row_bytes, "output");
  if (p.has_sinks) {
    p.sinks =
        p.ctx->make_buffer(BufferKind::device_local, desc.sinks.size() * sizeof(float), "sinks");
    p.ctx->upload(p.sinks, 0, desc.sinks.data(), desc.sinks.size() * sizeof(float));
  } else {
    p.sinks = p.ctx->make_buffer(BufferKind::device_local, 16, "sinks (unused)");
  }
  if (split) {
    p.partial = p.ctx->make_buffer(BufferKind::device_local, rows * t.max_splits * row_bytes,
                                   "split outputs");
    p.stats = p.ctx->make_buffer(BufferKind::device_local, rows * t.max_splits * 8, "split stats");
  } else {
    p.stats = p.ctx->make_buffer(BufferKind::device_local, 16, "split stats (unused)");
  }
  p.decode_set = DescriptorSet(p.ctx->device, *p.decode,
                               {pool_binding,
                                {p.cache->block_table.handle()},
                                {p.lengths.handle()},
                                {p.q.handle()},
                                {split ? p.partial.handle() : p.out.handle()},
                                {p.stats.handle()},
                                {p.sinks.handle()}});
  if (split) {
    p.merge = p.ctx->shared_pipeline(*descs.merge);
    p.merge_set = DescriptorSet(
        p.ctx->device, *p.merge,
        {{p.partial.handle()}, {p.stats.handle()}, {p.out.handle()}, {p.sinks.handle()}});
  }
  p.timestamps =
      TimestampQueries(p.ctx->device, 2, dev.timestamp_period_ns, dev.timestamp_valid_bits);
}

DecodePlan::~DecodePlan() = default;
DecodePlan::DecodePlan(DecodePlan&&) noexcept = default;
DecodePlan& DecodePlan::operator=(DecodePlan&&) noexcept = default;

uint32_t DecodePlan::splits() const { return impl_->tuning.max_splits; }
double DecodePlan::last_gpu_ns() const { return impl_->last_gpu_ns; }

void DecodePlan::Impl::record_attention(VkCommandBuffer cmd) const {
  timestamps.reset(cmd);
  timestamps.write(cmd, 0);
  const DecodeParams params{q_heads,
                            kv_heads,
                            q_heads / kv_heads,
                            tuning.head_chunks,
                            tuning.max_splits,
                            cache->blocks_per_seq,
                            scale,
                            cache->desc.capacity_tokens,
                            window,
                            softcap,
                            has_sinks ? 1u : 0u,
                            cache->table_base(layer)};
  record_dispatch(cmd, *decode, decode_set.handle(), push_bytes(params), tuning.max_splits,
                  kv_heads * tuning.head_chunks, batch);
  if (tuning.max_splits > 1) {
    compute_barrier(cmd);
    const MergeParams mp{batch * q_heads, tuning.max_splits, q_heads, has_sinks ? 1u : 0u};
    record_dispatch(cmd, *merge, merge_set.handle(), push_bytes(mp), batch * q_heads);
  }
  timestamps.write(cmd, 1);
}

void DecodePlan::Impl::check_run(size_t q_size, std::span<const uint32_t> lens,
                                 size_t out_size) const {
  const auto bad = [](const std::string& m) { throw Error(ErrorCode::invalid_argument, m); };
  const auto shape = [&](const char* d, uint32_t dim) {
    return std::string(" [B, H, ") + d + "] = [" + std::to_string(batch) + ", " +
           std::to_string(q_heads) + ", " + std::to_string(dim) + "]";
  };
  const uint64_t want_q = uint64_t{batch} * q_heads * head_dim;
  const uint64_t want_out = uint64_t{batch} * q_heads * v_head_dim;
  const bool same = head_dim == v_head_dim;
  if (q_size != want_q) {
    bad("q has " + std::to_string(q_size) + " values; expected " + std::to_string(want_q) +
        shape(same ? "D" : "Dk", head_dim));
  }
  if (out_size != want_out) {
    bad("out has room for " + std::to_string(out_size) + " values; expected " +
        std::to_string(want_out) + shape(same ? "D" : "Dv", v_head_dim));
  }
  if (lens.size() != batch) {
    bad("lengths has " + std::to_string(lens.size()) + " entries; expected one per sequence (" +
        std::to_string(batch) + ")");
  }
  for (uint32_t b = 0; b < lens.size(); ++b) {
    const std::string what = "lengths[" + std::to_string(b) + "]";
    if (lens[b] == 0 || lens[b] > cache->desc.capacity_tokens) {
      bad(what + " = " + std::to_string(lens[b]) +
          " is out of range (expected 1 to the cache capacity " +
          std::to_string(cache->desc.capacity_tokens) + ")");
    }
    const uint32_t first_key = window != 0 && lens[b] > window ? lens[b] - window : 0;
    cache->check_readable(b, layer, first_key, lens[b], what);
  }
}

void DecodePlan::run(std::span<const float> q, std::span<const uint32_t> lengths,
                     std::span<float> out) {
  Impl& p = *impl_;
  p.check_run(q.size(), lengths, out.size());
  for (size_t i = 0; i < q.size(); ++i) {
    if (!std::isfinite(q[i])) {
      throw Error(ErrorCode::invalid_argument, "q[" + std::to_string(i) +
                                                   "] = " + std::to_string(q[i]) +
                                                   " is not finite (expected finite query values)");
    }
  }
  const uint64_t q_bytes = q.size_bytes();
  const uint64_t len_bytes = lengths.size_bytes();
  const uint64_t len_at = align16(q_bytes);
  const uint64_t out_at = align16(len_at + len_bytes);
  const uint64_t total = out_at + out.size_bytes();
  if (total > ImplOf<Context>::kStagingMaxBytes) {
    throw Error(ErrorCode::unsupported, "query and output of " + std::to_string(total) +
                                            " bytes exceed the staging limit of " +
                                            std::to_string(ImplOf<Context>::kStagingMaxBytes));
  }
  p.cache->sync_tables();
  Buffer& stage = p.ctx->staging_for(total);
  auto* base = static_cast<uint8_t*>(stage.mapped());
  std::memcpy(base, q.data(), q_bytes);
  std::memcpy(base + len_at, lengths.data(), len_bytes);
  p.ctx->submit([&](VkCommandBuffer cmd) {
    const VkBufferCopy qc{0, 0, q_bytes};
    const VkBufferCopy lc{len_at, 0, len_bytes};
    vkCmdCopyBuffer(cmd, stage.handle(), p.q.handle(), 1, &qc);
    vkCmdCopyBuffer(cmd, stage.handle(), p.lengths.handle(), 1, &lc);
    memory_barrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                   VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                   VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
    p.record_attention(cmd);
    memory_barrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                   VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_READ_BIT);
    const VkBufferCopy oc{0, out_at, out.size_bytes()};
    vkCmdCopyBuffer(cmd, p.out.handle(), stage.handle(), 1, &oc);
    host_read_barrier(cmd);
  });
  std::memcpy(out.data(), base + out_at, out.size_bytes());
  p.last_gpu_ns = p.timestamps.elapsed_ns(0, 1);
}

std::vector<float> DecodePlan::run(std::span<const float> q, std::span<const uint32_t> lengths) {
  std::vector<float> out(uint64_t{impl_->batch} * impl_->q_heads * impl_->v_head_dim);
  run(q, lengths, out);
  return out;
}

}  // namespace gqavk
