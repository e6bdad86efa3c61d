// DecodeStep: a model's attention for one generated token, recorded once per frame and replayed.
//
// Device buffers (shared by the frames; the GPU runs steps one after another, each beginning with a
// barrier on the last): params (lengths, append tokens, block-table rows, copied in from the
// frame's staging), q_all / out_all (per layer, 256-byte aligned for descriptor offsets), k_all /
// v_all (layers back to back: the append kernel offsets by element), partial / stats (per split
// layer), status (the append kernel's problem count). Per frame: a host-visible staging buffer
// [params | q | k | v | out | status] and a command buffer:
//   barrier on earlier work; copy params and inputs in; appends (all layers); barrier; decodes;
//   barrier; merges (split layers); barrier; copy outputs and status out.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "attention_options.hpp"
#include "decode_params.hpp"
#include "decode_pipelines.hpp"
#include "decode_step_impl.hpp"
#include "device_buffer_impl.hpp"
#include "fault.hpp"
#include "kv_append.hpp"
#include "vk_util.hpp"

namespace gqavk {

namespace {

constexpr uint64_t kAlign = 256;  // >= every device's minStorageBufferOffsetAlignment
constexpr uint64_t kWaitTimeoutNs = 300ull * 1000 * 1000 * 1000;
constexpr uint32_t kSkipToken = 0xffffffffu;  // append_kv.comp's SKIP_TOKEN

uint64_t align_up(uint64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }
std::string str(uint64_t x) { return std::to_string(x); }
[[noreturn]] void bad(const std::string& m) { throw Error(ErrorCode::invalid_argument, m); }

}  // namespace

DecodeStep::Impl::~Impl() {
  if (ctx == nullptr) return;
  for (uint32_t f = 0; f < frames.size(); ++f) {
    try {
      wait_frame(f);
    } catch (...) {  // a lost device: nothing more to wait for
    }
  }
  if (timeline != VK_NULL_HANDLE) vkDestroySemaphore(ctx->device, timeline, nullptr);
  if (pool != VK_NULL_HANDLE) vkDestroyCommandPool(ctx->device, pool, nullptr);
}

void DecodeStep::Impl::check_model(const ModelDesc& m) const {
  m.validate();
  const KvCacheDesc& kv = cache->desc;
  if (m.layers.size() != kv.layers) {
    bad("the model has " + str(m.layers.size()) + " layers; the KV cache has " + str(kv.layers) +
        " (expected one cache layer per model layer)");
  }
  for (uint32_t l = 0; l < m.layers.size(); ++l) {
    const LayerDesc& d = m.layers[l];
    const std::string at = "layer " + str(l) + ": ";
    const auto differ = [&](const char* field, const std::string& got, const std::string& want) {
      bad(at + field + " " + got + " differs from the KV cache's " + want +
          " (expected the cache the model describes: ModelDesc::cache_desc)");
    };
    const uint32_t dv = d.v_head_dim == 0 ? d.head_dim : d.v_head_dim;
    if (d.kv_heads != kv.kv_heads) differ("kv_heads", str(d.kv_heads), str(kv.kv_heads));
    if (d.head_dim != kv.head_dim) differ("head_dim", str(d.head_dim), str(kv.head_dim));
    if (dv != kv.v_head_dim) differ("v_head_dim", str(dv), str(kv.v_head_dim));
    if (d.kv_dtype != kv.dtype) differ("kv_dtype", to_string(d.kv_dtype), to_string(kv.dtype));
    try {
      cache->check_plan_layer(l, d.window);
    } catch (const Error& e) {
      throw Error(e.code(), at + e.what());
    }
  }
}

DecodeStep::DecodeStep(Context& context, KvCache& kv_cache, const ModelDesc& model,
                       const DecodeStepDesc& desc)
    : impl_(std::make_unique<Impl>()) {
  Impl& p = *impl_;
  ImplOf<Context>& ctx = impl_of(context);
  ImplOf<KvCache>& c = impl_of(kv_cache);
  require(c.ctx == &ctx, ErrorCode::invalid_argument,
          "the KV cache was made on another context than the decode step");
  ctx.require_can_run("DecodeStep");
  require(ctx.info.timeline_semaphore, ErrorCode::unsupported,
          "DecodeStep needs timeline semaphores, which device '" + ctx.info.name + "' lacks");
  p.cache = &c;
  const KvCacheDesc& kv = c.desc;
  if (desc.max_batch == 0 || desc.max_batch > kv.batch) {
    bad("max_batch " + str(desc.max_batch) + " is out of range (expected 1 to the cache's " +
        str(kv.batch) + " sequence slots)");
  }
  if (desc.frames == 0 || desc.frames > 16) {
    bad("frames " + str(desc.frames) + " is out of range (expected 1 to 16 steps in flight)");
  }
  if (desc.max_splits > 1024) {
    bad("max_splits " + str(desc.max_splits) + " is too large (expected 0 for automatic, or 1 to " +
        "1024)");
  }
  p.check_model(model);
  p.max_batch = desc.max_batch;
  const uint32_t B = desc.max_batch, G = kv.kv_heads, dk = kv.head_dim, dv = kv.v_head_dim;
  const DeviceInfo& dev = ctx.info;

  // Layers: options, tuning, pipelines, and where their data lies.
  uint64_t q_bytes = 0, out_bytes = 0, partial_bytes = 0, stats_bytes = 0;
  for (uint32_t l = 0; l < model.layers.size(); ++l) {
    const LayerDesc& d = model.layers[l];
    check_attention_options(d.q_heads, G, d.scale, d.window, d.softcap, d.sinks);
    Impl::Layer L;
    L.q_heads = d.q_heads;
    L.scale = d.scale ? *d.scale : 1.0f / std::sqrt(static_cast<float>(dk));
    L.window = d.window.value_or(0u);
    L.softcap = d.softcap.value_or(0.0f);
    L.has_sinks = !d.sinks.empty();
    const DecodeShape shape{B,
                            d.q_heads,
                            G,
                            dk,
                            kv.dtype,
                            kv.capacity_tokens,
                            c.pool.bytes(),
                            c.block_shift,
                            c.group_shift,
                            dv,
                            L.window};
    L.tuning = choose_decode_tuning(dev, shape, desc.max_splits, overrides_from_env());
    check_decode_limits(dev, shape, L.tuning);
    const DecodePipelineDescs descs = decode_pipeline_descs(shape, L.tuning);
    L.decode = ctx.shared_pipeline(descs.decode);
    if (descs.merge) L.merge = ctx.shared_pipeline(*descs.merge);
    const uint64_t rows = uint64_t{B} * d.q_heads;
    L.q_at = q_bytes;
    L.q_bytes = rows * dk * 4;
    q_bytes = align_up(q_bytes + L.q_bytes);
    L.out_at = out_bytes;
    L.out_bytes = rows * dv * 4;
    out_bytes = align_up(out_bytes + L.out_bytes);
    if (L.merge) {
      L.partial_at = partial_bytes;
      partial_bytes = align_up(partial_bytes + rows * L.tuning.max_splits * dv * 4);
      L.stats_at = stats_bytes;
      stats_bytes = align_up(stats_bytes + rows * L.tuning.max_splits * 8);
    }
    p.q_values += rows * dk;
    p.out_values += rows * dv;
    p.layers.push_back(std::move(L));
  }
  p.k_values = uint64_t{model.layers.size()} * B * G * dk;
  p.v_values = uint64_t{model.layers.size()} * B * G * dv;
  if (p.k_values + p.v_values > 0xffffffffu) {
    bad("a step's new K and V (" + str(p.k_values + p.v_values) +
        " values) exceed the append kernel's 32-bit element offsets");
  }

  // The parameter area: lengths [B], tokens [B] (row, position), block-table rows [layers, B, row].
  p.lengths_at = 0;
  p.tokens_at = align_up(uint64_t{B} * 4);
  p.tables_at = align_up(p.tokens_at + uint64_t{B} * 8);
  p.params_bytes = p.tables_at + uint64_t{model.layers.size()} * B * c.blocks_per_seq * 4;

  p.ctx = &ctx;
  p.params = ctx.make_buffer(BufferKind::device_local, p.params_bytes, "step parameters");
  p.q_all = ctx.make_buffer(BufferKind::device_local, q_bytes, "step queries");
  p.k_all = ctx.make_buffer(BufferKind::device_local, p.k_values * 4, "step new keys");
  p.v_all = ctx.make_buffer(BufferKind::device_local, p.v_values * 4, "step new values");
  p.out_all = ctx.make_buffer(BufferKind::device_local, out_bytes, "step outputs");
  p.partial = ctx.make_buffer(BufferKind::device_local, std::max<uint64_t>(partial_bytes, 16),
                              "step split outputs");
  p.stats = ctx.make_buffer(BufferKind::device_local, std::max<uint64_t>(stats_bytes, 16),
                            "step split stats");
  p.status = ctx.make_buffer(BufferKind::device_local, 16, "step append status");

  // Staging of one frame: [params | q | k | v | out | status], inputs and outputs back to back.
  p.st_q = align_up(p.params_bytes);
  p.st_k = align_up(p.st_q + p.q_values * 4);
  p.st_v = align_up(p.st_k + p.k_values * 4);
  p.st_out = align_up(p.st_v + p.v_values * 4);
  p.st_status = align_up(p.st_out + p.out_values * 4);
  const uint64_t staging_bytes = p.st_status + 16;

  // Descriptor sets. The append kernel writes the pool through a storage binding where one spans
  // it, else through its device address.
  const bool by_address = c.pool.bytes() > max_binding_bytes(dev, LoadPath::storage);
  if (by_address && !c.pool_address) {
    throw Error(ErrorCode::unsupported,
                "the step appends to a pool of " + str(c.pool.bytes()) +
                    " bytes, past what a storage binding spans on " + dev.name +
                    ", through its device address, which this device lacks");
  }
  p.append = ctx.shared_pipeline(
      append_pipeline_desc(kv, c.block_shift, c.group_shift, DType::f32, by_address));
  const Binding tables{p.params.handle(), p.tables_at, p.params_bytes - p.tables_at};
  const Binding lengths{p.params.handle(), p.lengths_at, uint64_t{B} * 4};
  const Binding tokens{p.params.handle(), p.tokens_at, uint64_t{B} * 8};
  p.append_set = DescriptorSet(ctx.device, *p.append,
                               {c.pool_binding(by_address ? LoadPath::address : LoadPath::storage),
                                tables,
                                tokens,
                                {p.k_all.handle()},
                                {p.v_all.handle()},
                                {p.status.handle()}});
  for (uint32_t l = 0; l < p.layers.size(); ++l) {
    Impl::Layer& L = p.layers[l];
    const LayerDesc& d = model.layers[l];
    if (L.has_sinks) {
      L.sinks = ctx.make_buffer(BufferKind::device_local, d.sinks.size() * 4, "step sinks");
      ctx.upload(L.sinks, 0, d.sinks.data(), d.sinks.size() * 4);
    } else {
      L.sinks = ctx.make_buffer(BufferKind::device_local, 16, "step sinks (unused)");
    }
    const uint64_t rows = uint64_t{B} * L.q_heads;
    const Binding q{p.q_all.handle(), L.q_at, L.q_bytes};
    const Binding out{p.out_all.handle(), L.out_at, L.out_bytes};
    const Binding partial{p.partial.handle(), L.partial_at, rows * L.tuning.max_splits * dv * 4};
    const Binding stats =
        L.merge ? Binding{p.stats.handle(), L.stats_at, rows * L.tuning.max_splits * 8}
                : Binding{p.stats.handle()};
    L.decode_set = DescriptorSet(ctx.device, *L.decode,
                                 {c.pool_binding(L.tuning.load_path),
                                  tables,
                                  lengths,
                                  q,
                                  L.merge ? partial : out,
                                  stats,
                                  {L.sinks.handle()}});
    if (L.merge) {
      L.merge_set = DescriptorSet(ctx.device, *L.merge, {partial, stats, out, {L.sinks.handle()}});
    }
  }

  // Frames, their command buffers and the timeline.
  VkCommandPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pool_info.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pool_info.queueFamilyIndex = ctx.queue_family;
  vk_check(vkCreateCommandPool(ctx.device, &pool_info, nullptr, &p.pool), "vkCreateCommandPool");
  VkSemaphoreTypeCreateInfo type{VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO};
  type.semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE;
  VkSemaphoreCreateInfo sem_info{VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO};
  sem_info.pNext = &type;
  vk_check(vkCreateSemaphore(ctx.device, &sem_info, nullptr, &p.timeline), "vkCreateSemaphore");
  p.frames.resize(desc.frames);
  for (Impl::Frame& f : p.frames) {
    f.staging = ctx.make_buffer(BufferKind::staging, staging_bytes, "step staging");
    // Every row starts empty: length 0 (zero output) and no token to append.
    auto* base = static_cast<uint8_t*>(f.staging.mapped());
    std::memset(base, 0, p.params_bytes);
    auto* skip = reinterpret_cast<uint32_t*>(base + p.tokens_at);
    for (uint32_t r = 0; r < B; ++r) skip[2 * r] = kSkipToken;
    VkCommandBufferAllocateInfo alloc{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    alloc.commandPool = p.pool;
    alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    alloc.commandBufferCount = 1;
    vk_check(vkAllocateCommandBuffers(ctx.device, &alloc, &f.cmd), "vkAllocateCommandBuffers");
    f.timestamps =
        TimestampQueries(ctx.device, 2, dev.timestamp_period_ns, dev.timestamp_valid_bits);
  }
}

DecodeStep::~DecodeStep() = default;
DecodeStep::DecodeStep(DecodeStep&&) noexcept = default;
DecodeStep& DecodeStep::operator=(DecodeStep&&) noexcept = default;

void DecodeStep::Impl::wait_frame(uint32_t f) {
  Frame& fr = frames[f];
  if (fr.state == FrameState::idle) return;
  if (fr.state == FrameState::prepared) {
    throw Error(ErrorCode::invalid_argument,
                "step " + str(fr.ticket) +
                    " was prepared but never submitted (expected "
                    "submitted(ticket, semaphore, value) after the engine's submit)");
  }
  VkSemaphoreWaitInfo info{VK_STRUCTURE_TYPE_SEMAPHORE_WAIT_INFO};
  info.semaphoreCount = 1;
  info.pSemaphores = &fr.semaphore;
  info.pValues = &fr.value;
  VkResult r = vkWaitSemaphores(ctx->device, &info, kWaitTimeoutNs);
  if (r == VK_SUCCESS && fault::hit(fault::Site::submit)) r = VK_ERROR_DEVICE_LOST;
  if (r == VK_ERROR_DEVICE_LOST) {
    ctx->lost = true;
    fr.state = FrameState::idle;  // nothing more will run: nothing to wait for
  }
  if (r == VK_TIMEOUT) {
    throw Error(ErrorCode::vulkan, "step " + str(fr.ticket) + " did not finish within " +
                                       str(kWaitTimeoutNs / 1000000000ull) + " s");
  }
  vk_check(r, "vkWaitSemaphores");
  fr.state = FrameState::idle;
}

void DecodeStep::Impl::record_frame(VkCommandBuffer cmd, uint32_t f) const {
  const Frame& fr = frames[f];
  const VkBuffer st = fr.staging.handle();
  const KvCacheDesc& kv = cache->desc;
  memory_barrier(cmd, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, VK_ACCESS_MEMORY_WRITE_BIT,
                 VK_PIPELINE_STAGE_ALL_COMMANDS_BIT,
                 VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT);
  fr.timestamps.reset(cmd);
  fr.timestamps.write(cmd, 0);

  // Parameters and inputs in.
  const VkBufferCopy pc{0, 0, params_bytes};
  vkCmdCopyBuffer(cmd, st, params.handle(), 1, &pc);
  const auto source = [&](const StepBuffer& b, uint64_t staging_at) {
    return device_io ? std::pair{impl_of(*b.buffer).buffer.handle(),
                                 impl_of(*b.buffer).buffer.offset() + b.offset}
                     : std::pair{st, staging_at};
  };
  const auto [q_src, q_off] = source(io.q, st_q);
  std::vector<VkBufferCopy> qc;
  uint64_t at = q_off;
  for (const Layer& L : layers) {
    qc.push_back({at, L.q_at, L.q_bytes});
    at += L.q_bytes;
  }
  vkCmdCopyBuffer(cmd, q_src, q_all.handle(), static_cast<uint32_t>(qc.size()), qc.data());
  const auto [k_src, k_off] = source(io.k, st_k);
  const VkBufferCopy kc{k_off, 0, k_values * 4};
  vkCmdCopyBuffer(cmd, k_src, k_all.handle(), 1, &kc);
  const auto [v_src, v_off] = source(io.v, st_v);
  const VkBufferCopy vc{v_off, 0, v_values * 4};
  vkCmdCopyBuffer(cmd, v_src, v_all.handle(), 1, &vc);
  vkCmdFillBuffer(cmd, status.handle(), 0, VK_WHOLE_SIZE, 0);
  memory_barrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                 VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                 VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);

  // Append every layer's new K/V (rows without a sequence are skipped by the kernel).
  const uint32_t G = kv.kv_heads;
  const uint64_t texels = uint64_t{max_batch} * G * (cache->row_k + cache->row_v);
  const uint32_t groups = static_cast<uint32_t>(std::min<uint64_t>((texels + 63) / 64, 65535));
  for (uint32_t l = 0; l < layers.size(); ++l) {
    const AppendParams ap{max_batch,
                          G,
                          cache->blocks_per_seq,
                          l * max_batch,
                          static_cast<uint32_t>(uint64_t{l} * max_batch * G * kv.head_dim),
                          static_cast<uint32_t>(uint64_t{l} * max_batch * G * kv.v_head_dim)};
    record_dispatch(cmd, *append, append_set.handle(), push_bytes(ap), groups);
  }
  compute_barrier(cmd);

  // Decode every layer, then merge the split ones.
  bool any_split = false;
  for (uint32_t l = 0; l < layers.size(); ++l) {
    const Layer& L = layers[l];
    const DecodeParams dp{L.q_heads,
                          G,
                          L.q_heads / G,
                          L.tuning.head_chunks,
                          L.tuning.max_splits,
                          cache->blocks_per_seq,
                          L.scale,
                          kv.capacity_tokens,
                          L.window,
                          L.softcap,
                          L.has_sinks ? 1u : 0u,
                          l * max_batch};
    record_dispatch(cmd, *L.decode, L.decode_set.handle(), push_bytes(dp), L.tuning.max_splits,
                    G * L.tuning.head_chunks, max_batch);
    any_split = any_split || L.merge != nullptr;
  }
  if (any_split) {
    compute_barrier(cmd);
    for (const Layer& L : layers) {
      if (!L.merge) continue;
      const MergeParams mp{max_batch * L.q_heads, L.tuning.max_splits, L.q_heads,
                           L.has_sinks ? 1u : 0u};
      record_dispatch(cmd, *L.merge, L.merge_set.handle(), push_bytes(mp), max_batch * L.q_heads);
    }
  }

  // Outputs and the problem count out.
  memory_barrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                 VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_READ_BIT);
  const auto [o_dst, o_off] = source(io.out, st_out);
  std::vector<VkBufferCopy> oc;
  at = o_off;
  for (const Layer& L : layers) {
    oc.push_back({L.out_at, at, L.out_bytes});
    at += L.out_bytes;
  }
  vkCmdCopyBuffer(cmd, out_all.handle(), o_dst, static_cast<uint32_t>(oc.size()), oc.data());
  const VkBufferCopy sc{0, st_status, 16};
  vkCmdCopyBuffer(cmd, status.handle(), st, 1, &sc);
  fr.timestamps.write(cmd, 1);
  memory_barrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                 VK_PIPELINE_STAGE_HOST_BIT | VK_PIPELINE_STAGE_ALL_COMMANDS_BIT,
                 VK_ACCESS_HOST_READ_BIT | VK_ACCESS_MEMORY_READ_BIT | VK_ACCESS_MEMORY_WRITE_BIT);
}

void DecodeStep::Impl::ensure_recorded(uint32_t f) {
  Frame& fr = frames[f];
  if (force_rerecord) ++io_version;
  if (fr.version == io_version) return;
  vk_check(vkResetCommandBuffer(fr.cmd, 0), "vkResetCommandBuffer");
  VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  vk_check(vkBeginCommandBuffer(fr.cmd, &begin), "vkBeginCommandBuffer");
  record_frame(fr.cmd, f);
  vk_check(vkEndCommandBuffer(fr.cmd), "vkEndCommandBuffer");
  fr.version = io_version;
  if (counted_version != io_version) {
    ++recordings;
    counted_version = io_version;
  }
}

void DecodeStep::Impl::check_inputs(std::span<const uint32_t> seqs, size_t q, size_t k,
                                    size_t v) const {
  const KvCacheDesc& kv = cache->desc;
  if (seqs.empty() || seqs.size() > max_batch) {
    bad("seqs has " + str(seqs.size()) + " sequences (expected 1 to max_batch " + str(max_batch) +
        ")");
  }
  for (size_t r = 0; r < seqs.size(); ++r) {
    const uint32_t s = seqs[r];
    const auto what = [&] { return "seqs[" + str(r) + "] = " + str(s); };
    if (s >= kv.batch || !cache->pages.is_open(s)) {
      bad(what() + " is not an open sequence of the cache (" + str(kv.batch) + " slots)");
    }
    for (size_t o = 0; o < r; ++o) {
      if (seqs[o] == s) bad(what() + " appears twice (expected distinct sequences)");
    }
    const uint32_t len = cache->pages.length(s, 0);  // every layer's: KvPages::append_token
    if (len >= kv.capacity_tokens) {
      bad(what() + " is full: " + str(len) + " tokens of the cache capacity " +
          str(kv.capacity_tokens) + " (expected room for one more)");
    }
  }
  if (device_io) {
    if (q != 0 || k != 0 || v != 0) {
      bad("q, k and v must be empty with device I/O (set_device_io): the step reads the "
          "engine's buffers");
    }
    return;
  }
  const uint64_t n = seqs.size();
  const auto check = [&](const char* name, size_t got, uint64_t per_row, const char* shape) {
    if (got != n * per_row) {
      bad(std::string(name) + " has " + str(got) + " values; expected " + str(n * per_row) + " (" +
          str(n) + " rows of every layer's " + shape + ")");
    }
  };
  check("q", q, q_values / max_batch, "[H, Dk]");
  check("k", k, k_values / max_batch, "[G, Dk]");
  check("v", v, v_values / max_batch, "[G, Dv]");
}

uint64_t DecodeStep::Impl::prepare(std::span<const uint32_t> seqs, std::span<const float> q,
                                   std::span<const float> k, std::span<const float> v) {
  ctx->require_not_lost();
  check_inputs(seqs, q.size(), k.size(), v.size());
  for (size_t i = 0; i < q.size(); ++i) {
    if (!std::isfinite(q[i])) {
      bad("q[" + str(i) + "] = " + std::to_string(q[i]) +
          " is not finite (expected finite query values)");
    }
  }
  const uint64_t ticket = next_ticket;
  const uint32_t f = frame_index(ticket);
  wait_frame(f);
  Frame& fr = frames[f];
  const KvCacheDesc& kv = cache->desc;
  const uint32_t n = static_cast<uint32_t>(seqs.size());

  // Blocks for the new token in every layer (all or nothing), copies of shared blocks.
  std::vector<uint32_t>& lens = scratch_lengths;  // reused: no allocation per step
  lens.resize(n);
  for (uint32_t r = 0; r < n; ++r) lens[r] = cache->pages.length(seqs[r], 0);
  scratch_copies.clear();
  cache->pages.append_token(seqs, scratch_copies);
  cache->copy_blocks(scratch_copies);

  // Parameters: lengths and tokens per row, the rows' block tables up to their new length.
  auto* base = static_cast<uint8_t*>(fr.staging.mapped());
  auto* lengths = reinterpret_cast<uint32_t*>(base + lengths_at);
  auto* tokens = reinterpret_cast<uint32_t*>(base + tokens_at);
  auto* tables = reinterpret_cast<uint32_t*>(base + tables_at);
  const std::vector<uint32_t>& table = cache->pages.table();
  const uint32_t bps = cache->blocks_per_seq;
  for (uint32_t r = 0; r < std::max(n, fr.rows); ++r) {  // rows past both are still empty
    lengths[r] = r < n ? lens[r] + 1 : 0;
    tokens[2 * r] = r < n ? r : kSkipToken;
    tokens[2 * r + 1] = r < n ? lens[r] : 0;
  }
  // A row's entries are copied again only when the sequence's rows changed since this frame last
  // held them (a block taken, copied or released).
  fr.rows_held.resize(max_batch);
  for (uint32_t r = 0; r < n; ++r) {
    const std::pair<uint32_t, uint64_t> held{seqs[r], cache->pages.row_version(seqs[r])};
    if (fr.rows_held[r] == held) continue;
    fr.rows_held[r] = held;
    const uint32_t used = (lens[r] + 1 + kv.block_tokens - 1) / kv.block_tokens;
    for (uint32_t l = 0; l < kv.layers; ++l) {
      std::memcpy(tables + (uint64_t{l} * max_batch + r) * bps,
                  table.data() + (uint64_t{l} * kv.batch + seqs[r]) * bps, used * 4ull);
    }
  }
  // Host inputs: each layer's n rows at the start of its max_batch rows.
  if (!device_io) {
    uint64_t src_q = 0, dst_q = st_q;
    for (const Layer& L : layers) {
      const uint64_t row = uint64_t{L.q_heads} * kv.head_dim;
      std::memcpy(base + dst_q, q.data() + src_q, n * row * 4);
      src_q += n * row;
      dst_q += L.q_bytes;
    }
    const uint64_t k_row = uint64_t{kv.kv_heads} * kv.head_dim;
    const uint64_t v_row = uint64_t{kv.kv_heads} * kv.v_head_dim;
    for (uint32_t l = 0; l < kv.layers; ++l) {
      std::memcpy(base + st_k + l * max_batch * k_row * 4, k.data() + l * n * k_row, n * k_row * 4);
      std::memcpy(base + st_v + l * max_batch * v_row * 4, v.data() + l * n * v_row, n * v_row * 4);
    }
  }
  fr.ticket = ticket;
  fr.rows = n;
  fr.state = FrameState::prepared;
  ++next_ticket;
  return ticket;
}

void DecodeStep::Impl::submit(uint32_t f, const StepSync& sync) {
  ensure_recorded(f);
  Frame& fr = frames[f];
  VkSemaphore signals[2] = {timeline, sync.signal};
  const uint64_t signal_values[2] = {fr.ticket, sync.signal_value};
  const VkPipelineStageFlags wait_stage = VK_PIPELINE_STAGE_ALL_COMMANDS_BIT;
  VkTimelineSemaphoreSubmitInfo tl{VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO};
  tl.waitSemaphoreValueCount = sync.wait != VK_NULL_HANDLE ? 1 : 0;
  tl.pWaitSemaphoreValues = &sync.wait_value;
  tl.signalSemaphoreValueCount = sync.signal != VK_NULL_HANDLE ? 2 : 1;
  tl.pSignalSemaphoreValues = signal_values;
  VkSubmitInfo info{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  info.pNext = &tl;
  info.waitSemaphoreCount = tl.waitSemaphoreValueCount;
  info.pWaitSemaphores = &sync.wait;
  info.pWaitDstStageMask = &wait_stage;
  info.commandBufferCount = 1;
  info.pCommandBuffers = &fr.cmd;
  info.signalSemaphoreCount = tl.signalSemaphoreValueCount;
  info.pSignalSemaphores = signals;
  try {
    queue_submit(ctx->queue_lock, ctx->queue, info, VK_NULL_HANDLE);
  } catch (const Error& e) {
    if (e.code() == ErrorCode::device_lost) ctx->lost = true;
    throw;
  }
  fr.semaphore = timeline;
  fr.value = fr.ticket;
  fr.state = FrameState::in_flight;
}

uint32_t DecodeStep::Impl::frame_of(uint64_t ticket, const char* what) const {
  if (ticket == 0 || ticket >= next_ticket || ticket + frames.size() < next_ticket) {
    bad(std::string(what) + " ticket " + str(ticket) + " is not one of the last " +
        str(frames.size()) + " steps (expected " +
        str(next_ticket > frames.size() ? next_ticket - frames.size() : 1) + " to " +
        str(next_ticket - 1) + ")");
  }
  return frame_index(ticket);
}

void DecodeStep::Impl::check_out(size_t got, uint64_t rows) const {
  const uint64_t want = rows * (out_values / max_batch);
  if (got != want) {
    bad("out has room for " + str(got) + " values; expected " + str(want) + " (" + str(rows) +
        " rows of every layer's [H, Dv])");
  }
}

void DecodeStep::Impl::finish(uint64_t ticket, std::span<float> out) {
  const uint32_t f = frame_of(ticket, "wait:");
  wait_frame(f);
  Frame& fr = frames[f];
  const KvCacheDesc& kv = cache->desc;
  const auto* base = static_cast<const uint8_t*>(fr.staging.mapped());
  if (!device_io && !out.empty()) {
    check_out(out.size(), fr.rows);
    uint64_t src = st_out, dst = 0;
    for (const Layer& L : layers) {
      const uint64_t row = uint64_t{L.q_heads} * kv.v_head_dim;
      std::memcpy(out.data() + dst, base + src, fr.rows * row * 4);
      dst += fr.rows * row;
      src += L.out_bytes;
    }
  }
  last_gpu_ns = fr.timestamps.elapsed_ns(0, 1);
  uint32_t problems = 0;
  std::memcpy(&problems, base + st_status, 4);
  if (problems != 0) {
    bad("step " + str(ticket) + "'s K/V values cannot be stored as " + to_string(kv.dtype) + " (" +
        str(problems) + " stored texels affected; see KvCache::append); the tokens were written " +
        "as the conversion gave them");
  }
}

void DecodeStep::run(std::span<const uint32_t> seqs, std::span<const float> q,
                     std::span<const float> k, std::span<const float> v, std::span<float> out) {
  Impl& p = *impl_;
  if (p.device_io) bad("run() takes host memory; this step uses device I/O (use submit and wait)");
  p.check_out(out.size(), seqs.size());  // before the step: a bad out changes nothing
  const uint64_t ticket = submit(seqs, q, k, v);
  p.finish(ticket, out);
}

uint64_t DecodeStep::submit(std::span<const uint32_t> seqs, std::span<const float> q,
                            std::span<const float> k, std::span<const float> v,
                            const StepSync& sync) {
  Impl& p = *impl_;
  const uint64_t ticket = p.prepare(seqs, q, k, v);
  p.submit(p.frame_index(ticket), sync);
  return ticket;
}

void DecodeStep::wait(uint64_t ticket, std::span<float> out) { impl_->finish(ticket, out); }

void DecodeStep::set_device_io(const StepDeviceIo& io) {
  Impl& p = *impl_;
  const auto check = [&](const StepBuffer& b, const char* name, uint64_t values) {
    if (b.buffer == nullptr) bad(std::string("io.") + name + ".buffer is null (expected a buffer)");
    if (impl_of(*b.buffer).ctx != p.ctx) {
      bad(std::string("io.") + name + " was made on another context than the step");
    }
    if (b.offset % 4 != 0) {
      bad(std::string("io.") + name + ".offset " + str(b.offset) + " is not a multiple of 4");
    }
    if (b.offset + values * 4 > b.buffer->bytes()) {
      bad(std::string("io.") + name + " needs " + str(values * 4) + " bytes from offset " +
          str(b.offset) + "; its buffer holds " + str(b.buffer->bytes()));
    }
  };
  check(io.q, "q", p.q_values);
  check(io.k, "k", p.k_values);
  check(io.v, "v", p.v_values);
  check(io.out, "out", p.out_values);
  for (uint32_t f = 0; f < p.frames.size(); ++f) p.wait_frame(f);
  p.io = io;
  p.device_io = true;
  ++p.io_version;
}

void DecodeStep::set_host_io() {
  Impl& p = *impl_;
  if (!p.device_io) return;
  for (uint32_t f = 0; f < p.frames.size(); ++f) p.wait_frame(f);
  p.io = {};
  p.device_io = false;
  ++p.io_version;
}

uint64_t DecodeStep::prepare(std::span<const uint32_t> seqs, std::span<const float> q,
                             std::span<const float> k, std::span<const float> v) {
  return impl_->prepare(seqs, q, k, v);
}

void DecodeStep::record(VkCommandBuffer cmd, uint32_t frame) const {
  const Impl& p = *impl_;
  if (frame >= p.frames.size()) {
    bad("frame " + str(frame) + " is out of range (expected 0 to " + str(p.frames.size() - 1) +
        ")");
  }
  p.record_frame(cmd, frame);
}

void DecodeStep::submitted(uint64_t ticket, VkSemaphore semaphore, uint64_t value) {
  Impl& p = *impl_;
  const uint32_t f = p.frame_of(ticket, "submitted:");
  Impl::Frame& fr = p.frames[f];
  if (fr.state != Impl::FrameState::prepared || fr.ticket != ticket) {
    bad("submitted: step " + str(ticket) + " is not a prepared step awaiting the engine's submit");
  }
  if (semaphore == VK_NULL_HANDLE) bad("submitted: the semaphore is null (expected a timeline)");
  fr.semaphore = semaphore;
  fr.value = value;
  fr.state = Impl::FrameState::in_flight;
}

void DecodeStep::set_sinks(uint32_t layer, std::span<const float> sinks) {
  Impl& p = *impl_;
  if (layer >= p.layers.size()) {
    bad("layer " + str(layer) + " is out of range (the model has " + str(p.layers.size()) +
        " layers)");
  }
  Impl::Layer& L = p.layers[layer];
  if (!L.has_sinks) {
    bad("layer " + str(layer) +
        " has no sinks in the model (expected a layer whose LayerDesc "
        "has sinks)");
  }
  check_attention_options(L.q_heads, p.cache->desc.kv_heads, std::nullopt, std::nullopt,
                          std::nullopt, sinks);
  if (sinks.empty()) bad("sinks is empty (expected one logit per query head)");
  p.ctx->upload(L.sinks, 0, sinks.data(), sinks.size_bytes());
}

uint64_t DecodeStep::recordings() const { return impl_->recordings; }
double DecodeStep::last_gpu_ns() const { return impl_->last_gpu_ns; }
uint32_t DecodeStep::frames() const { return static_cast<uint32_t>(impl_->frames.size()); }
uint32_t DecodeStep::max_batch() const { return impl_->max_batch; }
uint64_t DecodeStep::q_values(uint32_t rows) const {
  return impl_->q_values / impl_->max_batch * rows;
}
uint64_t DecodeStep::k_values(uint32_t rows) const {
  return impl_->k_values / impl_->max_batch * rows;
}
uint64_t DecodeStep::v_values(uint32_t rows) const {
  return impl_->v_values / impl_->max_batch * rows;
}
uint64_t DecodeStep::out_values(uint32_t rows) const {
  return impl_->out_values / impl_->max_batch * rows;
}

}  // namespace gqavk
