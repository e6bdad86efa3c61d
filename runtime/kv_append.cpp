// KvCache::append: new tokens' K and V written by the device (shaders/append_kv.comp).
#include "kv_append.hpp"

#include <algorithm>
#include <string>
#include <vector>

#include "commands.hpp"
#include "device_buffer_impl.hpp"
#include "gqavk/error.hpp"
#include "kv_cache_impl.hpp"
#include "pipeline.hpp"

namespace gqavk {

namespace {

[[noreturn]] void bad(const std::string& m) { throw Error(ErrorCode::invalid_argument, m); }

// SRC_TYPE of append_kv.comp.
uint32_t source_code(DType src) {
  switch (src) {
    case DType::f32:
      return 0;
    case DType::f16:
      return 1;
    case DType::bf16:
      return 2;
    default:
      break;
  }
  bad(std::string("append source type ") + to_string(src) + " is not supported (expected f32, " +
      "f16 or bf16)");
}

// What append_kv.comp counts as a value the storage type cannot hold.
std::string unstorable(DType t) {
  switch (t) {
    case DType::f16:
      return "expected |value| < 65520, which rounds to at most 65504";
    case DType::bf16:
      return "expected |value| < 3.3961514e38, which rounds to the largest finite bf16";
    case DType::q8:
      return "expected finite values";
    case DType::q4:
      return "expected finite |value| < 458640, whose scale |value| / 7 fits an f16";
    default:
      return "unexpected";
  }
}

// The runs of consecutive positions each sequence's tokens form; throws naming a token that
// breaks one.
std::vector<KvPages::WriteRun> runs_of(std::span<const KvToken> tokens) {
  std::vector<KvPages::WriteRun> runs;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const KvToken& t = tokens[i];
    auto it = std::find_if(runs.begin(), runs.end(),
                           [&](const KvPages::WriteRun& r) { return r.seq == t.seq; });
    if (it == runs.end()) {
      runs.push_back({t.seq, t.position, 1});
    } else if (t.position == it->first + it->n) {
      ++it->n;
    } else {
      bad("tokens[" + std::to_string(i) + "] is position " + std::to_string(t.position) +
          " of sequence " + std::to_string(t.seq) + "; expected " +
          std::to_string(it->first + it->n) +
          " (each sequence's tokens are consecutive positions in order)");
    }
  }
  return runs;
}

}  // namespace

PipelineDesc append_pipeline_desc(const KvCacheDesc& d, uint32_t block_shift, uint32_t group_shift,
                                  DType src, bool by_address) {
  PipelineDesc pd;
  pd.shader = by_address ? "append_kv_address" : "append_kv_storage";
  pd.bindings.assign(6, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER);
  pd.push_constant_bytes = sizeof(AppendParams);
  // Constant 0 is unused (the workgroup is 64 invocations); 3 is KV_TYPE (kv_block.h).
  pd.spec_constants = {0,           d.head_dim,  d.v_head_dim,    static_cast<uint32_t>(d.dtype),
                       block_shift, group_shift, source_code(src)};
  return pd;
}

void KvCache::append(uint32_t layer, std::span<const KvToken> tokens, const DeviceBuffer& k,
                     const DeviceBuffer& v, DType src, uint64_t k_first, uint64_t v_first) {
  Impl& c = *impl_;
  const KvCacheDesc& d = c.desc;
  if (tokens.empty()) bad("tokens is empty (expected at least one token to append)");
  if (impl_of(k).ctx != c.ctx || impl_of(v).ctx != c.ctx) {
    bad("the K or V buffer was made on another context than the KV cache");
  }
  source_code(src);  // a bad type is named before anything else
  const uint64_t elem = src == DType::f32 ? 4 : 2;
  const uint64_t n = tokens.size();
  const auto check_source = [&](const DeviceBuffer& buf, uint64_t first, uint32_t dim,
                                const char* name) {
    if (elem == 2 && first % 2 != 0) {
      bad(std::string(name) + "_first " + std::to_string(first) +
          " is odd (expected an even element for 16-bit sources)");
    }
    const uint64_t want = (first + n * d.kv_heads * dim) * elem;
    if (want > buf.bytes() || first + n * d.kv_heads * dim > 0xffffffffu) {
      bad(std::string(name) + " needs " + std::to_string(want) + " bytes ([" + std::to_string(n) +
          ", " + std::to_string(d.kv_heads) + ", " + std::to_string(dim) + "] " + to_string(src) +
          " from element " + std::to_string(first) + "); its buffer holds " +
          std::to_string(buf.bytes()));
    }
  };
  check_source(k, k_first, d.head_dim, "k");
  check_source(v, v_first, d.v_head_dim, "v");
  // The pool through a storage binding where one spans it, else through its device address.
  const bool by_address = c.pool.bytes() > max_binding_bytes(c.ctx->info, LoadPath::storage);
  if (by_address && !c.pool_address) {
    throw Error(ErrorCode::unsupported,
                "append writes a pool of " + std::to_string(c.pool.bytes()) +
                    " bytes, past what a storage binding spans on " + c.ctx->info.name +
                    ", through its device address, which this device lacks (use write())");
  }
  const std::vector<KvPages::WriteRun> runs = runs_of(tokens);

  // Blocks first (all or nothing), then the copies of shared blocks, then the kernel.
  std::vector<KvPages::Copy> copies;
  c.pages.prepare_writes(layer, runs, copies);
  c.copy_blocks(copies);
  c.sync_tables();

  const PipelineDesc pd = append_pipeline_desc(d, c.block_shift, c.group_shift, src, by_address);
  const auto pipeline = c.ctx->shared_pipeline(pd);

  std::vector<uint32_t> at(2 * n);
  for (size_t i = 0; i < n; ++i) {
    at[2 * i] = tokens[i].seq;
    at[2 * i + 1] = tokens[i].position;
  }
  Buffer token_buf =
      c.ctx->make_buffer(BufferKind::device_local, at.size() * sizeof(uint32_t), "append tokens");
  c.ctx->upload(token_buf, 0, at.data(), at.size() * sizeof(uint32_t));
  Buffer status = c.ctx->make_buffer(BufferKind::device_local, 16, "append status");
  const DescriptorSet set(c.ctx->device, *pipeline,
                          {c.pool_binding(by_address ? LoadPath::address : LoadPath::storage),
                           {c.block_table.handle()},
                           {token_buf.handle()},
                           impl_of(k).binding(),
                           impl_of(v).binding(),
                           {status.handle()}});
  const AppendParams params{static_cast<uint32_t>(n),
                            d.kv_heads,
                            c.blocks_per_seq,
                            c.table_base(layer),
                            static_cast<uint32_t>(k_first),
                            static_cast<uint32_t>(v_first)};
  // One invocation per stored texel, 64 to a workgroup.
  const uint64_t texels = n * d.kv_heads * (c.row_k + c.row_v);
  // The kernel strides over what 65535 workgroups do not cover.
  const uint32_t groups = static_cast<uint32_t>(std::min<uint64_t>((texels + 63) / 64, 65535));
  if (!c.append_timestamps.enabled() && c.ctx->info.timestamp_valid_bits != 0) {
    c.append_timestamps = TimestampQueries(c.ctx->device, 2, c.ctx->info.timestamp_period_ns,
                                           c.ctx->info.timestamp_valid_bits);
  }
  c.ctx->submit([&](VkCommandBuffer cmd) {
    vkCmdFillBuffer(cmd, status.handle(), 0, VK_WHOLE_SIZE, 0);
    memory_barrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                   VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                   VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
    c.append_timestamps.reset(cmd);
    c.append_timestamps.write(cmd, 0);
    record_dispatch(cmd, *pipeline, set.handle(), push_bytes(params), groups);
    c.append_timestamps.write(cmd, 1);
    memory_barrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                   VK_PIPELINE_STAGE_TRANSFER_BIT | VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                   VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_SHADER_READ_BIT);
  });
  c.last_append_gpu_ns = c.append_timestamps.elapsed_ns(0, 1);
  uint32_t problems = 0;
  c.ctx->download(status, 0, &problems, sizeof(problems));
  if (problems != 0) {
    bad(std::string("appended K/V values cannot be stored as ") + to_string(d.dtype) + " (" +
        unstorable(d.dtype) + "; " + std::to_string(problems) +
        " stored texels affected); the tokens were written as the conversion gave them");
  }
}

double KvCache::last_append_gpu_ns() const { return impl_->last_append_gpu_ns; }

}  // namespace gqavk
