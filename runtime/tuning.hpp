// Tuning: a pure function from (device record, shape) to the kernel variant and its sizes. All
// per-vendor choices live here, so they are unit-tested without a GPU.
#pragma once

#include <cstdint>
#include <string>

#include "gqavk/device_info.hpp"
#include "gqavk/types.hpp"

namespace gqavk {

// How kernels reach the KV pool (kv_load.glsl): a storage buffer, a uniform texel buffer read with
// texelFetch, a storage texel buffer read with imageLoad (the last two share a buffer view), or
// the pool's buffer device address (binding 0 then holds the address): no binding limit applies.
enum class LoadPath { texel, storage, image, address };
// The paths that bind the pool itself (the bench's streaming kernels take these).
inline constexpr LoadPath kLoadPaths[] = {LoadPath::texel, LoadPath::storage, LoadPath::image};
inline constexpr LoadPath kAllLoadPaths[] = {LoadPath::texel, LoadPath::storage, LoadPath::image,
                                             LoadPath::address};
enum class Reduction { subgroup, shared };
// Which decode kernel: the CPU-driver tier (decode_split.comp: whole keys and query rows per lane)
// or the GPU tier (decode_gpu.comp: the head dim spread across lanes, 16 bytes of q per lane).
enum class Tier { cpu, gpu };

struct DecodeShape {
  uint32_t batch = 1;
  uint32_t q_heads = 1;
  uint32_t kv_heads = 1;
  uint32_t head_dim = 128;
  DType dtype = DType::f16;
  uint32_t capacity_tokens = 1;
  uint64_t pool_bytes = 0;   // bytes of the KV pool binding
  uint32_t block_shift = 4;  // log2 of the cache's tokens per block
  uint32_t group_shift = 3;  // log2 of the cache's token group (kv_group_shift)
  uint32_t v_head_dim = 0;   // Dv; 0: the same as head_dim (Dk)
  uint32_t window = 0;       // sliding window in tokens; 0: none

  // Dv, the head dim of V and the output.
  uint32_t dv() const { return v_head_dim ? v_head_dim : head_dim; }
  // Keys a query can see at most: the capacity, or the window when it is shorter.
  uint32_t visible_tokens() const {
    return window && window < capacity_tokens ? window : capacity_tokens;
  }
};

struct DecodeTuning {
  Tier tier = Tier::cpu;
  LoadPath load_path = LoadPath::storage;
  Reduction reduction = Reduction::subgroup;
  uint32_t lanes = 32;  // workgroup size (CPU tier: one subgroup when reduction == subgroup)
  uint32_t subgroup_lanes = 0;          // GPU tier: lanes of one subgroup (the workgroup's divisor)
  uint32_t lanes_per_key = 0;           // GPU tier: lanes sharing one key's head dim (<= subgroup)
  uint32_t required_subgroup_size = 0;  // pipeline's required subgroup size, 0 for none
  bool full_subgroups = false;
  uint32_t heads_per_workgroup = 1;  // query heads sharing each K/V read (GPU tier: per subgroup)
  uint32_t head_subgroups = 1;       // GPU tier: subgroups of a workgroup taking different heads
  uint32_t head_chunks = 1;          // workgroups per KV head:
                                     // ceil(H/G / (heads_per_workgroup * head_subgroups))
  uint32_t keys_per_lane = 1;        // CPU tier: tile = lanes * keys_per_lane keys; GPU tier:
                                     // keys each lane group takes per step
  bool values_by_key = false;        // phase 3: each lane sums its own keys into a whole output row
  uint32_t max_splits = 1;           // KV splits per (sequence, KV head, chunk); 1: no merge pass
};

// Overrides for testing both paths on one device; empty strings mean "choose".
struct TuningOverrides {
  std::string load_path;       // "texel", "storage", "image" or "address"
  std::string reduction;       // "subgroup" or "shared"
  std::string values;          // "key" or "texel" (subgroup reduction only)
  std::string tier;            // "cpu" or "gpu"
  uint32_t subgroup_size = 0;  // GPU tier: a subgroup size the device may require; 0: choose
  std::string key_subgroups;   // GPU tier: subgroups taking different keys, "1" to "8"; "": choose
};

// Reads GQAVK_KV_LOAD, GQAVK_REDUCTION, GQAVK_VALUES, GQAVK_TIER and GQAVK_KEY_SUBGROUPS from
// the environment.
TuningOverrides overrides_from_env();

// Chooses how to run decode for `shape` on `device`. requested_splits > 0 fixes the split bound.
// Throws gqavk::Error (unsupported) when no variant fits the device's limits.
DecodeTuning choose_decode_tuning(const DeviceInfo& device, const DecodeShape& shape,
                                  uint32_t requested_splits, const TuningOverrides& overrides = {});

// log2 of the token group KG of a KV cache's layout (kv_cache_impl.hpp) on `device`: groups of
// min(8, block tokens) on CPU drivers, whose lanes each read whole keys, so that a lane-vector's
// loads are neighbours; 1 (token-major rows) elsewhere, so that the lanes sharing one key read
// its contiguous row.
uint32_t kv_group_shift(const DeviceInfo& device, uint32_t block_shift);

// "cpu" or "gpu".
const char* to_string(Tier tier);

// n for the text "1", "2", "4" or "8" (what GQAVK_KV_TOKEN_GROUP and GQAVK_KEY_SUBGROUPS take);
// 0 for any other text.
uint32_t parse_power_of_two_to_8(const std::string& text);

// "texel", "storage", "image" or "address": the name in shader variants and in GQAVK_KV_LOAD.
const char* to_string(LoadPath path);

// True for the paths that bind the pool through a buffer view (texel and image).
inline bool uses_texel_view(LoadPath path) {
  return path == LoadPath::texel || path == LoadPath::image;
}

// Bytes of the pool `path` can reach on `device`: one binding's range, or on the address path
// (0 without bufferDeviceAddress) 2^32 texels of 16 bytes, the kernels' uint texel indices. Never
// more than one allocation or buffer may hold.
uint64_t max_binding_bytes(const DeviceInfo& device, LoadPath path);

// Throws gqavk::Error (unsupported) naming the bytes and the limit when a pool of `pool_bytes`
// exceeds what one allocation (maxMemoryAllocationSize) or one buffer (maxBufferSize) may hold.
void check_pool_allocation(const DeviceInfo& device, uint64_t pool_bytes);

}  // namespace gqavk
