#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "device_buffer_impl.hpp"
#include "gqavk/half.hpp"
#include "kv_cache_impl.hpp"
#include "kv_codec.hpp"
#include "tuning.hpp"
#include "vk_util.hpp"

namespace gqavk {

namespace {

constexpr uint32_t kHeadDims[] = {64, 80, 96, 112, 128, 192, 256};

bool supported_head_dim(uint32_t d) {
  return std::find(std::begin(kHeadDims), std::end(kHeadDims), d) != std::end(kHeadDims);
}

void check_desc(const KvCacheDesc& d) {
  const auto bad = [](const std::string& m) { throw Error(ErrorCode::invalid_argument, m); };
  if (d.batch == 0) bad("KV cache batch is 0 (expected at least 1 sequence)");
  if (d.kv_heads == 0) bad("KV cache kv_heads is 0 (expected at least 1)");
  if (!supported_head_dim(d.head_dim)) {
    bad("head_dim " + std::to_string(d.head_dim) +
        " is not supported (expected one of 64, 80, 96, 112, 128, 192, 256)");
  }
  if (d.v_head_dim != 0 && d.v_head_dim != d.head_dim &&
      !(d.head_dim == 192 && d.v_head_dim == 128)) {
    bad("head dims Dk " + std::to_string(d.head_dim) + " and Dv " + std::to_string(d.v_head_dim) +
        " are not a supported pair (expected Dv equal to Dk, or Dk 192 with Dv 128)");
  }
  if (d.capacity_tokens == 0) bad("KV cache capacity_tokens is 0 (expected at least 1)");
  if (d.block_tokens == 0 || d.block_tokens > 256 || (d.block_tokens & (d.block_tokens - 1))) {
    bad("block_tokens " + std::to_string(d.block_tokens) +
        " is not valid (expected a power of two from 1 to 256)");
  }
  if (d.layers == 0) bad("KV cache layers is 0 (expected at least 1)");
  if (!d.layer_windows.empty() && d.layer_windows.size() != d.layers) {
    bad("layer_windows has " + std::to_string(d.layer_windows.size()) +
        " entries (expected none, or one per layer: " + std::to_string(d.layers) + ")");
  }
  if (d.pool_blocks == 1) {
    bad("pool_blocks is 1 (expected 0 for a pool every sequence can fill, or at least 2: block 0 "
        "is reserved)");
  }
  if (static_cast<uint32_t>(d.dtype) > static_cast<uint32_t>(DType::q4)) {
    bad("KV cache dtype " + std::to_string(static_cast<int>(d.dtype)) +
        " is not a DType (expected f32, f16, bf16, q8 or q4)");
  }
  // q4 packs 32 values (and one scale) per texel: a row must fill whole texels.
  const uint32_t per_texel = values_per_texel(d.dtype);
  for (const uint32_t dim : {d.head_dim, d.v_head_dim ? d.v_head_dim : d.head_dim}) {
    if (dim % per_texel != 0) {
      bad("head dim " + std::to_string(dim) + " cannot be stored as " + to_string(d.dtype) +
          " (expected a multiple of " + std::to_string(per_texel) + ": 64, 96, 128, 192 or 256)");
    }
  }
}

// The cache's sizes from its desc alone (checked, v_head_dim and pool_blocks resolved): what the
// constructor allocates and KvCache::plan_memory reports.
void size_cache(const KvCacheDesc& desc, ImplOf<KvCache>& c) {
  check_desc(desc);
  c.desc = desc;
  if (c.desc.v_head_dim == 0) c.desc.v_head_dim = desc.head_dim;
  c.block_shift = 0;
  while ((1u << c.block_shift) < desc.block_tokens) ++c.block_shift;
  c.blocks_per_seq = static_cast<uint32_t>(
      (uint64_t{desc.capacity_tokens} + desc.block_tokens - 1) / desc.block_tokens);
  const uint64_t table_entries = c.table_entries();
  // The kernels index block tables, blocks and the texels of a block with 32-bit integers.
  if (table_entries > 0xffffffffu) {
    throw Error(ErrorCode::invalid_argument,
                "block tables of " + std::to_string(desc.batch) + " sequences x " +
                    std::to_string(desc.layers) + " layers x " + std::to_string(c.blocks_per_seq) +
                    " blocks need " + std::to_string(table_entries) +
                    " entries, past 2^32 (use fewer sequences, layers or capacity_tokens, or "
                    "larger blocks)");
  }
  if (c.desc.pool_blocks == 0) {
    // Every slot can fill its capacity in every layer, plus the reserved zero block.
    if (table_entries + 1 > 0xffffffffu) {
      throw Error(ErrorCode::invalid_argument,
                  "a pool for " + std::to_string(desc.batch) + " sequences x " +
                      std::to_string(desc.layers) + " layers x " +
                      std::to_string(c.blocks_per_seq) +
                      " blocks needs more than 2^32 blocks (set pool_blocks, or fewer sequences)");
    }
    c.desc.pool_blocks = static_cast<uint32_t>(table_entries + 1);
  }
  c.row_k = desc.head_dim / values_per_texel(desc.dtype);
  c.row_v = c.desc.v_head_dim / values_per_texel(desc.dtype);
  c.scale_words_k = static_cast<uint32_t>(scale_bytes(desc.dtype, desc.head_dim) / 4);
  c.scale_words_v = static_cast<uint32_t>(scale_bytes(desc.dtype, c.desc.v_head_dim) / 4);
  // One block's texels, in 64 bits first: the kernels' 32-bit texel index must hold them.
  const uint64_t row_texels = uint64_t{c.row_k} + c.row_v + 1;  // + 1: the scales, at most
  if (uint64_t{desc.kv_heads} * row_texels * desc.block_tokens > 0x7fffffffu) {
    throw Error(ErrorCode::invalid_argument,
                "a block of " + std::to_string(desc.kv_heads) + " KV heads x " +
                    std::to_string(desc.block_tokens) + " tokens x " +
                    std::to_string(desc.head_dim) + "+" + std::to_string(c.desc.v_head_dim) +
                    " values is past 2^31 texels (expected fewer kv_heads or block_tokens)");
  }
  c.block_bytes = 16ull * kv_block::kv_block_texels(desc.kv_heads, c.block_shift, c.row_k, c.row_v,
                                                    c.scale_words_k, c.scale_words_v);
}

}  // namespace

KvMemory KvCache::plan_memory(const KvCacheDesc& desc) {
  Impl c;
  size_cache(desc, c);
  return c.planned_memory();
}

KvCache::KvCache(Context& context, const KvCacheDesc& desc) : KvCache(context, desc, nullptr) {}

KvCache::KvCache(Context& context, const KvCacheDesc& desc, const DeviceBuffer& pool)
    : KvCache(context, desc, &pool) {}

KvCache::KvCache(Context& context, const KvCacheDesc& desc, const DeviceBuffer* external)
    : impl_(std::make_unique<Impl>()) {
  Impl& c = *impl_;
  size_cache(desc, c);
  c.ctx = &impl_of(context);
  c.group_shift = kv_group_shift(c.ctx->info, c.block_shift);
  if (const char* env = std::getenv("GQAVK_KV_TOKEN_GROUP")) {  // for tests of either layout
    const std::string v = env;
    const uint32_t tokens = parse_power_of_two_to_8(v);
    if (tokens == 0) {
      throw Error(ErrorCode::invalid_argument,
                  "GQAVK_KV_TOKEN_GROUP='" + v + "' is not valid (expected 1, 2, 4 or 8)");
    }
    uint32_t shift = 0;
    while ((1u << shift) < tokens) ++shift;
    c.group_shift = std::min(shift, c.block_shift);
  }
  const uint64_t pool_bytes = c.block_bytes * c.desc.pool_blocks;

  const DeviceInfo& dev = c.ctx->info;
  check_pool_allocation(dev, pool_bytes);
  // The block tables are one storage buffer: checked before anything is allocated.
  const uint64_t table_bytes = c.table_entries() * sizeof(uint32_t);
  if (table_bytes > dev.max_storage_buffer_range || table_bytes > dev.max_memory_allocation_size) {
    throw Error(ErrorCode::unsupported,
                "block tables of " + std::to_string(table_bytes) + " bytes (" +
                    std::to_string(desc.batch) + " sequences x " + std::to_string(desc.layers) +
                    " layers x " + std::to_string(c.blocks_per_seq) + " blocks) exceed " +
                    dev.name + "'s maxStorageBufferRange of " +
                    std::to_string(dev.max_storage_buffer_range) +
                    " bytes (use fewer sequences, layers or capacity_tokens, or larger blocks)");
  }
  uint64_t limit = 0;
  for (LoadPath path : kAllLoadPaths) limit = std::max(limit, max_binding_bytes(dev, path));
  if (pool_bytes > limit) {
    throw Error(ErrorCode::unsupported,
                "KV pool of " + std::to_string(c.desc.pool_blocks) + " blocks x " +
                    std::to_string(c.block_bytes) + " bytes (" + std::to_string(desc.kv_heads) +
                    " heads x " + std::to_string(desc.block_tokens) + " tokens x " +
                    std::to_string(desc.head_dim) + "+" + std::to_string(c.desc.v_head_dim) + " " +
                    to_string(desc.dtype) + ") needs " + std::to_string(pool_bytes) + " bytes; " +
                    dev.name + " binds at most " + std::to_string(limit) +
                    " bytes (reduce pool_blocks, batch, layers or capacity_tokens)");
  }
  // Addressable wherever the device allows: the load path is a plan's choice (and
  // GQAVK_KV_LOAD's), made after the pool exists.
  if (external) {
    const ImplOf<DeviceBuffer>& e = impl_of(*external);
    if (e.ctx != c.ctx) {
      throw Error(ErrorCode::invalid_argument,
                  "the KV pool's DeviceBuffer belongs to another Context (expected one of this "
                  "cache's Context)");
    }
    if (e.buffer.bytes() < pool_bytes) {
      throw Error(ErrorCode::invalid_argument,
                  "the KV pool's DeviceBuffer holds " + std::to_string(e.buffer.bytes()) +
                      " bytes; this cache needs " + std::to_string(pool_bytes) +
                      " (KvCache::plan_memory(desc).pool_bytes)");
    }
    c.pool = Buffer::wrap(c.ctx->device, e.buffer.handle(), e.buffer.offset(), pool_bytes);
  } else {
    c.pool = c.ctx->make_buffer(BufferKind::device_local, pool_bytes, "KV pool",
                                dev.buffer_device_address);
  }
  if (pool_bytes <= max_binding_bytes(dev, LoadPath::texel)) {
    c.texel_view.emplace(c.ctx->device, c.pool);
  }
  if (dev.buffer_device_address) {
    const uint64_t address[2] = {c.pool.device_address(), 0};
    // kv_load.glsl declares its loads 16-byte aligned (one 128-bit load per texel).
    require(address[0] % 16 == 0, ErrorCode::vulkan,
            "the KV pool's device address " + std::to_string(address[0]) +
                " is not 16-byte aligned (expected the alignment of any storage buffer)");
    c.pool_address = c.ctx->make_buffer(BufferKind::device_local, sizeof(address), "KV address");
    c.ctx->upload(c.pool_address, 0, address, sizeof(address));
  }

  // Block tables: every entry starts at the reserved zero block; blocks are taken as tokens come.
  c.pages = KvPages(desc.batch, desc.layers, desc.capacity_tokens, desc.block_tokens,
                    c.desc.pool_blocks, desc.layer_windows);
  c.block_table = c.ctx->make_buffer(BufferKind::device_local, c.table_entries() * sizeof(uint32_t),
                                     "block table");
  c.sync_tables();
  // Zeroed: block 0, where every table entry without a block points, must read as zeros.
  c.ctx->submit([&](VkCommandBuffer cmd) {
    vkCmdFillBuffer(cmd, c.pool.handle(), c.pool.offset(), c.pool.bytes(), 0);
  });
}

Binding KvCache::Impl::pool_binding(LoadPath path) const {
  Binding b;
  if (uses_texel_view(path)) {
    if (!texel_view) {
      throw Error(ErrorCode::unsupported, "the KV pool of " + std::to_string(pool.bytes()) +
                                              " bytes is too large for a texel view on " +
                                              ctx->info.name);
    }
    b.texel_view = texel_view->handle();
  } else if (path == LoadPath::address) {
    if (!pool_address) {
      throw Error(ErrorCode::unsupported, "the KV pool has no device address on " + ctx->info.name +
                                              " (no bufferDeviceAddress)");
    }
    b.buffer = pool_address.handle();
  } else {
    b.buffer = pool.handle();
    b.offset = pool.offset();
    b.range = pool.bytes();
  }
  return b;
}

KvCache::~KvCache() = default;
KvCache::KvCache(KvCache&&) noexcept = default;
KvCache& KvCache::operator=(KvCache&&) noexcept = default;

const KvCacheDesc& KvCache::desc() const { return impl_->desc; }
namespace {

constexpr size_t kRegionsPerCopy = 128;

// Tokens [slot, slot + rows) of one head's K or V rows in one block, from source row src_row.
struct Run {
  bool v;
  uint64_t src_row;
  uint32_t block;
  uint32_t g;
  uint32_t slot;
  uint32_t rows;
};

void write_rows(ImplOf<KvCache>& c, uint32_t seq, uint32_t layer, uint32_t first, uint32_t n,
                std::span<const float> k, std::span<const float> v) {
  const KvCacheDesc& d = c.desc;
  const auto bad = [](const std::string& m) { throw Error(ErrorCode::invalid_argument, m); };
  // n and the token range are checked with the blocks (KvPages::prepare_write), as for append.
  const uint64_t want_k = uint64_t{d.kv_heads} * n * d.head_dim;
  const uint64_t want_v = uint64_t{d.kv_heads} * n * d.v_head_dim;
  if (k.size() != want_k || v.size() != want_v) {
    const std::string gn = "[" + std::to_string(d.kv_heads) + ", " + std::to_string(n) + ", ";
    bad("k must hold kv_heads * n_tokens * head_dim = " + std::to_string(want_k) + " values (" +
        gn + std::to_string(d.head_dim) + "]) and v kv_heads * n_tokens * v_head_dim = " +
        std::to_string(want_v) + " (" + gn + std::to_string(d.v_head_dim) + "]); got k " +
        std::to_string(k.size()) + " and v " + std::to_string(v.size()));
  }

  // A value the storage type cannot hold (f16 or bf16 overflow, q8/q4 non-finite) would be stored
  // wrong: refuse it, naming where it is.
  for (const auto& [values, name] : {std::pair{k, "k"}, std::pair{v, "v"}}) {
    for (size_t i = 0; i < values.size(); ++i) {
      const std::string problem = kv_value_problem(d.dtype, values[i]);
      if (problem.empty()) continue;
      const uint32_t dim = name[0] == 'k' ? d.head_dim : d.v_head_dim;
      const size_t row = i / dim;
      bad(std::string(name) + "[" + std::to_string(i) + "] = " + std::to_string(values[i]) +
          " (KV head " + std::to_string(row / n) + ", token " + std::to_string(first + row % n) +
          ", dim " + std::to_string(i % dim) + ") " + problem);
    }
  }

  // Take blocks (and copy shared ones) only once the values are known good.
  std::vector<KvPages::Copy> copies;
  c.pages.prepare_write(seq, layer, first, n, copies);
  c.copy_blocks(copies);

  // One run per (block, head, K or V) that the token range touches.
  std::vector<Run> runs;
  for (uint32_t t = first; t < first + n;) {
    const uint32_t slot = t & (d.block_tokens - 1);
    const uint32_t rows = std::min(first + n - t, d.block_tokens - slot);
    const uint32_t block = c.pages.block_of(seq, layer, t);
    for (uint32_t g = 0; g < d.kv_heads; ++g) {
      for (bool is_v : {false, true}) {
        runs.push_back({is_v, uint64_t{g} * n + (t - first), block, g, slot, rows});
      }
    }
    t += rows;
  }

  // Encode runs into staging in the slab's layout (kv_block.h) and copy them in batches.
  const uint64_t texel_bytes = 16;
  Buffer& stage =
      c.ctx->staging_for(uint64_t{d.kv_heads} * n *
                         (row_bytes(d.dtype, d.head_dim) + row_bytes(d.dtype, d.v_head_dim)));
  auto* base = static_cast<uint8_t*>(stage.mapped());
  const uint32_t group = 1u << c.group_shift;
  std::vector<VkBufferCopy> regions;
  std::vector<uint32_t> texels, scales;
  uint64_t used = 0;
  const auto flush = [&] {
    if (regions.empty()) return;
    for (VkBufferCopy& region : regions) region.dstOffset += c.pool.offset();
    // Copies of at most kRegionsPerCopy regions: checking a copy's regions against each other
    // costs validation layers quadratic time.
    c.ctx->submit([&](VkCommandBuffer cmd) {
      for (size_t i = 0; i < regions.size(); i += kRegionsPerCopy) {
        const size_t count = std::min(kRegionsPerCopy, regions.size() - i);
        vkCmdCopyBuffer(cmd, stage.handle(), c.pool.handle(), static_cast<uint32_t>(count),
                        regions.data() + i);
      }
    });
    regions.clear();
    used = 0;
  };
  for (const Run& r : runs) {
    const uint32_t dim = r.v ? d.v_head_dim : d.head_dim;
    const uint32_t row_texels = r.v ? c.row_v : c.row_k;
    const uint32_t sw = r.v ? c.scale_words_v : c.scale_words_k;
    // One run fits: staging holds at least one block.
    const uint64_t bytes = r.rows * (row_texels * texel_bytes + sw * 4ull);
    if (used + bytes > stage.bytes()) flush();
    const float* src = (r.v ? v.data() : k.data()) + r.src_row * dim;
    texels.resize(size_t{r.rows} * row_texels * 4);
    scales.resize(size_t{r.rows} * sw);
    for (uint32_t i = 0; i < r.rows; ++i) {
      encode_row(d.dtype, src + size_t{i} * dim, dim, texels.data() + size_t{i} * row_texels * 4,
                 scales.data() + size_t{i} * sw);
    }
    // Per token group, texel-column-major (see kv_block.h). Staging mirrors the slab.
    uint64_t at = used;
    for (uint32_t t0 = r.slot; t0 < r.slot + r.rows;) {
      const uint32_t first_in_group = t0 & (group - 1);
      const uint32_t n_in = std::min(r.slot + r.rows - t0, group - first_in_group);
      const uint64_t group_at = c.row_offset(r.block, r.g, t0 - first_in_group, r.v);
      for (uint32_t t = 0; t < row_texels; ++t) {
        for (uint32_t i = 0; i < n_in; ++i) {
          std::memcpy(base + at + (uint64_t{t} * n_in + i) * texel_bytes,
                      texels.data() + (size_t{t0 - r.slot + i} * row_texels + t) * 4, texel_bytes);
        }
      }
      if (n_in == group) {  // whole group: one contiguous copy
        regions.push_back({at, group_at, uint64_t{row_texels} * group * texel_bytes});
      } else {
        for (uint32_t t = 0; t < row_texels; ++t) {
          regions.push_back({at + uint64_t{t} * n_in * texel_bytes,
                             group_at + (uint64_t{t} * group + first_in_group) * texel_bytes,
                             n_in * texel_bytes});
        }
      }
      at += uint64_t{row_texels} * n_in * texel_bytes;
      t0 += n_in;
    }
    if (sw != 0) {  // the run's scales are contiguous: slots in order, sw words each
      std::memcpy(base + at, scales.data(), scales.size() * 4);
      regions.push_back({at, c.scale_offset(r.block, r.g, r.slot, r.v), scales.size() * 4ull});
    }
    used += bytes;
  }
  flush();
}

}  // namespace

void KvCache::write(uint32_t seq, uint32_t first_token, uint32_t n_tokens, std::span<const float> k,
                    std::span<const float> v, uint32_t layer) {
  write_rows(*impl_, seq, layer, first_token, n_tokens, k, v);
}

void KvCache::write_f16(uint32_t seq, uint32_t first_token, uint32_t n_tokens,
                        std::span<const uint16_t> k, std::span<const uint16_t> v, uint32_t layer) {
  if (impl_->desc.dtype != DType::f16) {
    throw Error(ErrorCode::invalid_argument,
                std::string("write_f16 needs an f16 cache; this cache stores ") +
                    to_string(impl_->desc.dtype) + " (use write with floats)");
  }
  // Halves widen to floats exactly, and f16 storage rounds them back to the same bits.
  std::vector<float> kf(k.size()), vf(v.size());
  halves_to_floats(k, kf);
  halves_to_floats(v, vf);
  write_rows(*impl_, seq, layer, first_token, n_tokens, kf, vf);
}

void KvCache::Impl::copy_blocks(const std::vector<KvPages::Copy>& copies) {
  if (copies.empty()) return;
  std::vector<VkBufferCopy> regions;
  for (const KvPages::Copy& cp : copies) {
    regions.push_back(
        {pool.offset() + cp.src * block_bytes, pool.offset() + cp.dst * block_bytes, block_bytes});
  }
  ctx->submit([&](VkCommandBuffer cmd) {
    for (size_t i = 0; i < regions.size(); i += kRegionsPerCopy) {
      const size_t count = std::min(kRegionsPerCopy, regions.size() - i);
      vkCmdCopyBuffer(cmd, pool.handle(), pool.handle(), static_cast<uint32_t>(count),
                      regions.data() + i);
    }
  });
}

void KvCache::Impl::check_readable(uint32_t seq, uint32_t layer, uint32_t first_key,
                                   uint32_t end_key, const std::string& what) const {
  const auto bad = [](const std::string& m) { throw Error(ErrorCode::invalid_argument, m); };
  if (!pages.is_open(seq)) {
    bad(what + ": sequence " + std::to_string(seq) + " is not open in the KV cache (" +
        std::to_string(desc.batch) + " slots; free_sequence closed it or it never opened)");
  }
  const uint32_t len = pages.length(seq, layer);
  if (end_key > len) {
    bad(what + " = " + std::to_string(end_key) + " exceeds the " + std::to_string(len) +
        " tokens written to sequence " + std::to_string(seq) + " in layer " +
        std::to_string(layer));
  }
  const uint32_t released = pages.released(seq, layer);
  if (first_key < released) {
    bad(what + ": the query sees keys from " + std::to_string(first_key) + ", but sequence " +
        std::to_string(seq) + " of window layer " + std::to_string(layer) + " (W " +
        std::to_string(pages.window(layer)) + ") released tokens before " +
        std::to_string(released) + " (expected a plan window no larger than the layer's)");
  }
}

void KvCache::Impl::check_plan_layer(uint32_t layer, std::optional<uint32_t> window) const {
  if (layer >= desc.layers) {
    throw Error(ErrorCode::invalid_argument, "layer " + std::to_string(layer) +
                                                 " is out of range (the cache has " +
                                                 std::to_string(desc.layers) + " layers)");
  }
  const uint32_t w = pages.window(layer);
  if (w != 0 && (!window || *window > w)) {
    throw Error(ErrorCode::invalid_argument,
                "layer " + std::to_string(layer) + " keeps a window of " + std::to_string(w) +
                    " tokens; a plan reading it needs window <= " + std::to_string(w) + " (got " +
                    (window ? std::to_string(*window) : std::string("none")) + ")");
  }
}

uint64_t KvCache::bytes() const { return impl_->pool.bytes(); }

KvMemory KvCache::Impl::planned_memory() const {
  KvMemory m;
  m.block_bytes = block_bytes;
  m.token_bytes = block_bytes / desc.block_tokens;
  m.pool_blocks = desc.pool_blocks;
  m.pool_bytes = block_bytes * desc.pool_blocks;
  m.blocks_free = desc.pool_blocks - 1;
  m.table_bytes = table_entries() * sizeof(uint32_t);
  return m;
}

KvMemory KvCache::memory() const {
  const Impl& c = *impl_;
  KvMemory m = c.planned_memory();
  m.pool_bytes = c.pool.bytes();  // as allocated (the tests check they equal the plan)
  m.table_bytes = c.block_table.bytes();
  m.blocks_in_use = c.pages.blocks_in_use();
  m.blocks_free = c.pages.blocks_free();
  m.bytes_in_use = uint64_t{m.blocks_in_use} * c.block_bytes;
  return m;
}

uint32_t KvCache::add_sequence() { return impl_->pages.add(); }

void KvCache::free_sequence(uint32_t seq) { impl_->pages.free(seq); }

uint32_t KvCache::fork_sequence(uint32_t parent) {
  std::vector<KvPages::Copy> copies;
  const uint32_t child = impl_->pages.fork(parent, copies);
  impl_->copy_blocks(copies);
  return child;
}

void KvCache::truncate(uint32_t seq, uint32_t tokens) { impl_->pages.truncate(seq, tokens); }

bool KvCache::is_open(uint32_t seq) const { return impl_->pages.is_open(seq); }

uint32_t KvCache::length(uint32_t seq, uint32_t layer) const {
  return impl_->pages.length(seq, layer);
}

uint32_t KvCache::released_tokens(uint32_t seq, uint32_t layer) const {
  return impl_->pages.released(seq, layer);
}

}  // namespace gqavk
