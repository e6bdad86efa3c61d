#include "tuning.hpp"

#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <string>
#include <utility>

#include "decode_pipelines.hpp"
#include "gqavk/error.hpp"

namespace gqavk {

namespace {

// Unrolled work per tile (FMAs per lane and phase): bounds shader size and compile time, and
// registers. A lane holds heads_per_workgroup query rows of head_dim floats.
constexpr uint32_t kTileFmaBudget = 4096;
constexpr uint32_t kQueryFloatsPerLane = 1024;
constexpr uint32_t kMaxKeysPerLane = 8;
constexpr uint32_t kMaxSplits = 64;
// GPU tier: 4-value slices of q (and as many of the accumulator) a lane holds across its heads,
// and keys per lane group and step. Each slice costs 8 registers (q and acc), each key 8 more per
// slice (its K and V values): these keep AMD's wave64 kernels near 64 VGPRs (8 waves per SIMD).
constexpr uint32_t kGpuSlicesPerLane = 4;
constexpr uint32_t kGpuKeys = 2;
// GPU tier: the largest workgroup, when subgroups join to take more of a group's query heads.
constexpr uint32_t kGpuWorkgroupLanes = 256;

uint32_t ceil_div(uint64_t a, uint64_t b) { return static_cast<uint32_t>((a + b - 1) / b); }

uint32_t pow2_ceil(uint32_t x) {
  uint32_t p = 1;
  while (p < x) p <<= 1;
  return p;
}

bool is_pow2(uint32_t x) { return x && !(x & (x - 1)); }

// Splits: enough workgroups to fill the device twice over, each split at least two steps of
// `tile` keys of those a query sees (the window's, when shorter than the capacity);
// requested_splits > 0 fixes the bound.
uint32_t choose_splits(const DeviceInfo& device, const DecodeShape& shape, const DecodeTuning& t,
                       uint32_t tile, uint32_t requested_splits) {
  if (requested_splits > 0) return requested_splits;
  const uint32_t max_useful = std::max(1u, ceil_div(shape.visible_tokens(), 2ull * tile));
  const uint64_t groups = uint64_t{shape.batch} * shape.kv_heads * t.head_chunks;
  const uint32_t want = ceil_div(2ull * std::max(1u, device.compute_units), groups);
  return std::clamp(want, 1u, std::min(max_useful, kMaxSplits));
}

// The GPU tier (decode_gpu.comp): subgroup size, lanes per key, heads and keys per step.
void choose_gpu_tuning(const DeviceInfo& device, const DecodeShape& shape,
                       const TuningOverrides& overrides, DecodeTuning& t) {
  const bool ops =
      device.subgroup_lanes >= 1 && device.has_subgroup_ops(kSubgroupArithmetic | kSubgroupShuffle);
  if (overrides.reduction == "shared" || !ops) t.reduction = Reduction::shared;
  // A size can be required where the device grants size control (and runs whole subgroups).
  const uint32_t asked = overrides.subgroup_size;
  const bool grantable = device.subgroup_size_control && !device.bug_partial_subgroups &&
                         (asked == 0 || (is_pow2(asked) && asked >= device.min_subgroup_size &&
                                         asked <= device.max_subgroup_size));
  if (asked != 0 &&
      (t.reduction == Reduction::shared || !(grantable || asked == device.subgroup_lanes))) {
    throw Error(
        ErrorCode::invalid_argument,
        "subgroup size " + std::to_string(asked) + " cannot be required on " + device.name +
            " (expected a power of two from " + std::to_string(device.min_subgroup_size) + " to " +
            std::to_string(device.max_subgroup_size) + " with subgroup operations" +
            (device.subgroup_size_control ? "" : ", or " + std::to_string(device.subgroup_lanes)) +
            ")");
  }
  if (t.reduction == Reduction::shared) {
    // The workgroup exchanges through shared memory as one unit.
    t.subgroup_lanes = t.lanes = std::min(32u, std::max(1u, device.max_workgroup_invocations));
  } else if (grantable) {
    // Intel's SIMD32 halves the registers per lane; elsewhere 32 lanes where the device allows:
    // wave32 on RDNA holds twice the waves of wave64 at the same registers per lane.
    const uint32_t want = asked ? asked : (device.vendor == Vendor::intel ? 16u : 32u);
    t.subgroup_lanes = std::clamp(want, device.min_subgroup_size, device.max_subgroup_size);
    t.required_subgroup_size = t.subgroup_lanes;
    t.full_subgroups = device.compute_full_subgroups;
    // Narrow subgroups (lavapipe, Intel SIMD8) join into 32-lane workgroups where full subgroups
    // of the required size are guaranteed; the kernel merges them through shared memory.
    uint32_t per_group = t.full_subgroups ? std::max(1u, 32 / t.subgroup_lanes) : 1u;
    if (!overrides.key_subgroups.empty()) {
      const std::string& k = overrides.key_subgroups;
      per_group = parse_power_of_two_to_8(k);
      if (per_group == 0 || (per_group > 1 && !t.full_subgroups)) {
        throw Error(ErrorCode::invalid_argument,
                    "GQAVK_KEY_SUBGROUPS='" + k + "' is not valid (expected 1, 2, 4 or 8" +
                        (t.full_subgroups ? "" : "; 1 only, the device has no full subgroups") +
                        ")");
      }
    }
    t.lanes = t.subgroup_lanes * per_group;
  } else {
    // One workgroup of the size the context's probe measured as one whole subgroup.
    t.subgroup_lanes = t.lanes = device.subgroup_lanes;
  }
  // Lanes per key from the wider of the K and V rows; a lane holds per_lane slices of each.
  const uint32_t slices = std::max(shape.head_dim, shape.dv()) / 4;
  t.lanes_per_key = std::min(pow2_ceil(slices), t.subgroup_lanes);
  const uint32_t per_lane = ceil_div(slices, t.lanes_per_key);
  const uint32_t group = shape.q_heads / shape.kv_heads;
  const uint32_t max_heads = std::max(1u, kGpuSlicesPerLane / per_lane);
  // A subgroup holds max_heads query rows; a group with more takes several subgroups of one
  // workgroup over the same keys (their K/V loads after the first hit the cache), as many as fit.
  const uint32_t subgroups_needed = ceil_div(group, max_heads);
  uint32_t max_lanes = std::min(kGpuWorkgroupLanes, device.max_workgroup_invocations);
  if (device.max_workgroup_size[0]) max_lanes = std::min(max_lanes, device.max_workgroup_size[0]);
  if (device.max_workgroup_subgroups) {
    max_lanes = std::min(max_lanes, device.max_workgroup_subgroups * t.subgroup_lanes);
  }
  const uint32_t max_head_subgroups = std::max(1u, max_lanes / t.lanes);
  // Only where whole subgroups of the required size are guaranteed.
  const bool whole =
      t.reduction == Reduction::subgroup && t.required_subgroup_size != 0 && t.full_subgroups;
  t.head_subgroups = whole ? std::min(subgroups_needed, max_head_subgroups) : 1u;
  t.keys_per_lane = std::max(1u, kGpuKeys / per_lane);
  t.values_by_key = false;
  const uint32_t key_lanes = t.lanes;
  for (;;) {
    t.head_chunks = ceil_div(subgroups_needed, t.head_subgroups);
    const uint32_t per_workgroup = ceil_div(group, t.head_chunks);
    t.heads_per_workgroup = std::min(max_heads, ceil_div(per_workgroup, t.head_subgroups));
    t.head_subgroups = ceil_div(per_workgroup, t.heads_per_workgroup);  // none left empty
    t.lanes = key_lanes * t.head_subgroups;
    // Subgroups sharing heads merge through shared memory: fewer head subgroups if it is short.
    if (t.head_subgroups == 1 || decode_shared_bytes(shape, t) <= device.max_shared_memory_bytes) {
      break;
    }
    t.head_subgroups /= 2;
  }
}

}  // namespace

TuningOverrides overrides_from_env() {
  TuningOverrides o;
  if (const char* v = std::getenv("GQAVK_KV_LOAD")) o.load_path = v;
  if (const char* v = std::getenv("GQAVK_REDUCTION")) o.reduction = v;
  if (const char* v = std::getenv("GQAVK_VALUES")) o.values = v;
  if (const char* v = std::getenv("GQAVK_TIER")) o.tier = v;
  if (const char* v = std::getenv("GQAVK_KEY_SUBGROUPS")) o.key_subgroups = v;
  return o;
}

uint32_t kv_group_shift(const DeviceInfo& device, uint32_t block_shift) {
  return device.type == DeviceType::cpu ? std::min(3u, block_shift) : 0u;
}

const char* to_string(Tier tier) { return tier == Tier::gpu ? "gpu" : "cpu"; }

uint32_t parse_power_of_two_to_8(const std::string& text) {
  for (uint32_t n : {1u, 2u, 4u, 8u}) {
    if (text == std::to_string(n)) return n;
  }
  return 0;
}

const char* to_string(LoadPath path) {
  switch (path) {
    case LoadPath::texel:
      return "texel";
    case LoadPath::storage:
      return "storage";
    case LoadPath::image:
      return "image";
    case LoadPath::address:
      return "address";
  }
  return "unknown";
}

uint64_t max_binding_bytes(const DeviceInfo& device, LoadPath path) {
  uint64_t limit = device.max_storage_buffer_range;
  if (uses_texel_view(path)) {
    // texelFetch and imageLoad take an int: at most 2^31 - 1 texels whatever the device allows.
    limit = std::min<uint64_t>(device.max_texel_buffer_elements, 0x7fffffffu) * 16;
  } else if (path == LoadPath::address) {
    limit = device.buffer_device_address ? (uint64_t{1} << 32) * 16 : 0;
  }
  for (const uint64_t cap : {device.max_memory_allocation_size, device.max_buffer_size}) {
    if (cap) limit = std::min(limit, cap);
  }
  return limit;
}

void check_pool_allocation(const DeviceInfo& device, uint64_t pool_bytes) {
  const std::pair<uint64_t, const char*> caps[] = {
      {device.max_memory_allocation_size, "maxMemoryAllocationSize"},
      {device.max_buffer_size, "maxBufferSize"}};
  for (const auto& [cap, name] : caps) {
    if (cap && pool_bytes > cap) {
      throw Error(ErrorCode::unsupported,
                  "KV pool of " + std::to_string(pool_bytes) + " bytes exceeds " + device.name +
                      "'s " + name + " of " + std::to_string(cap) +
                      " bytes (the pool is one buffer in one allocation); use fewer sequences or "
                      "a smaller capacity");
    }
  }
}

DecodeTuning choose_decode_tuning(const DeviceInfo& device, const DecodeShape& shape,
                                  uint32_t requested_splits, const TuningOverrides& overrides) {
  DecodeTuning t;

  // Tier: CPU drivers get the kernel shaped for them, every other device the GPU kernel.
  if (overrides.tier.empty()) {
    t.tier = device.type == DeviceType::cpu ? Tier::cpu : Tier::gpu;
  } else if (overrides.tier == "cpu" || overrides.tier == "gpu") {
    t.tier = overrides.tier == "gpu" ? Tier::gpu : Tier::cpu;
  } else {
    throw Error(ErrorCode::invalid_argument,
                "GQAVK_TIER='" + overrides.tier + "' is not valid (expected cpu or gpu)");
  }

  // Load path: lavapipe gathers texel fetches but loops per lane over storage loads; GPUs read
  // storage buffers at full speed. On lavapipe imageLoad (inlined) streams faster than texelFetch
  // (a call), yet decode, bound by its arithmetic, measured the same with both: texel stays.
  // Take the other binding path when the pool exceeds the preferred one's limit, and the pool's
  // device address when it exceeds both.
  LoadPath preferred = device.vendor == Vendor::mesa_cpu ? LoadPath::texel : LoadPath::storage;
  const bool forced = !overrides.load_path.empty();
  if (forced) {
    const LoadPath* named =
        std::find_if(std::begin(kAllLoadPaths), std::end(kAllLoadPaths),
                     [&](LoadPath p) { return overrides.load_path == to_string(p); });
    if (named == std::end(kAllLoadPaths)) {
      throw Error(ErrorCode::invalid_argument,
                  "GQAVK_KV_LOAD='" + overrides.load_path +
                      "' is not valid (expected texel, storage, image or address)");
    }
    preferred = *named;
    if (preferred == LoadPath::address && !device.buffer_device_address) {
      throw Error(ErrorCode::unsupported,
                  "GQAVK_KV_LOAD='address' needs the bufferDeviceAddress feature, which " +
                      device.name + " lacks (expected texel, storage or image)");
    }
  }
  check_pool_allocation(device, shape.pool_bytes);
  const LoadPath other = uses_texel_view(preferred) ? LoadPath::storage : LoadPath::texel;
  const auto fits = [&](LoadPath p) { return shape.pool_bytes <= max_binding_bytes(device, p); };
  if (fits(preferred)) {
    t.load_path = preferred;
  } else if (!forced && fits(other)) {
    t.load_path = other;
  } else if (!forced && fits(LoadPath::address)) {
    t.load_path = LoadPath::address;
  } else if (forced) {
    throw Error(ErrorCode::unsupported,
                "KV pool of " + std::to_string(shape.pool_bytes) + " bytes exceeds what the " +
                    to_string(preferred) + " path (GQAVK_KV_LOAD) can address on " + device.name +
                    " (" + std::to_string(max_binding_bytes(device, preferred)) + " bytes)");
  } else {
    throw Error(
        ErrorCode::unsupported,
        "KV pool of " + std::to_string(shape.pool_bytes) +
            " bytes exceeds what one binding can address on " + device.name + " (texel view " +
            std::to_string(max_binding_bytes(device, LoadPath::texel)) + " bytes, storage buffer " +
            std::to_string(max_binding_bytes(device, LoadPath::storage)) + " bytes)" +
            (device.buffer_device_address
                 ? ", or its device address (" +
                       std::to_string(max_binding_bytes(device, LoadPath::address)) + " bytes)"
                 : ", and the device has no bufferDeviceAddress to reach past them") +
            "; use fewer sequences or a smaller capacity");
  }

  // Reduction: one subgroup per workgroup where the probe proved subgroups whole and correct.
  const bool subgroup_ok = device.subgroup_lanes >= 1;
  if (overrides.reduction == "shared" || !subgroup_ok) {
    t.reduction = Reduction::shared;
  } else if (overrides.reduction.empty() || overrides.reduction == "subgroup") {
    t.reduction = Reduction::subgroup;
  } else {
    throw Error(ErrorCode::invalid_argument, "GQAVK_REDUCTION='" + overrides.reduction +
                                                 "' is not valid (expected subgroup or shared)");
  }
  if (!overrides.values.empty() && overrides.values != "key" && overrides.values != "texel") {
    throw Error(ErrorCode::invalid_argument,
                "GQAVK_VALUES='" + overrides.values + "' is not valid (expected key or texel)");
  }
  if (t.tier == Tier::gpu) {
    choose_gpu_tuning(device, shape, overrides, t);
    const uint32_t key_lanes = t.lanes / t.head_subgroups;
    t.max_splits = choose_splits(device, shape, t, key_lanes / t.lanes_per_key * t.keys_per_lane,
                                 requested_splits);
    return t;
  }
  if (overrides.subgroup_size != 0) {
    throw Error(ErrorCode::invalid_argument,
                "subgroup size " + std::to_string(overrides.subgroup_size) +
                    " was asked for the CPU tier (expected 0: it takes the probed subgroup)");
  }
  if (t.reduction == Reduction::subgroup) {
    t.lanes = device.subgroup_lanes;
    if (!device.bug_partial_subgroups && device.subgroup_size_control &&
        device.min_subgroup_size <= t.lanes && t.lanes <= device.max_subgroup_size) {
      t.required_subgroup_size = t.lanes;
      t.full_subgroups = device.compute_full_subgroups;
    }
  } else {
    // Shared-memory exchange: more lanes only add barrier traffic, and on CPU drivers the tile
    // (lanes * keys_per_lane keys) unrolls into code that compiles for minutes beyond 16 lanes.
    t.lanes = std::clamp<uint32_t>(device.subgroup_size ? device.subgroup_size : 16, 4, 16);
  }

  // Value phase: on CPU drivers each lane sums its own keys into a whole output row (registers
  // spill to cache cheaply there, while every subgroup broadcast is a loop over lanes); on GPUs
  // lanes own texels of the row and take each key's p by broadcast. Needs subgroup reductions.
  if (overrides.values == "key") {
    t.values_by_key = true;
  } else if (overrides.values == "texel") {
    t.values_by_key = false;
  } else {
    t.values_by_key = device.type == DeviceType::cpu;
  }
  if (t.reduction == Reduction::shared) t.values_by_key = false;

  // Heads per workgroup: as many of the group as the register budget for query rows allows.
  const uint32_t group = shape.q_heads / shape.kv_heads;
  const uint32_t max_heads = std::max(1u, kQueryFloatsPerLane / shape.head_dim);
  t.head_chunks = ceil_div(group, max_heads);
  t.heads_per_workgroup = ceil_div(group, t.head_chunks);

  // Keys per lane: the largest tile whose unrolled phases stay within the budget.
  const uint32_t vals = values_per_texel(shape.dtype);
  const uint32_t chunks = ceil_div(shape.dv() / vals, t.lanes);
  t.keys_per_lane = 1;
  for (uint32_t k = kMaxKeysPerLane; k >= 1; k /= 2) {
    const uint64_t scores = uint64_t{k} * shape.head_dim * t.heads_per_workgroup;
    const uint64_t values = t.values_by_key
                                ? uint64_t{k} * shape.dv() * t.heads_per_workgroup
                                : uint64_t{k} * t.lanes * chunks * vals * t.heads_per_workgroup;
    if (scores <= kTileFmaBudget && values <= 2 * kTileFmaBudget) {
      t.keys_per_lane = k;
      break;
    }
  }
  t.max_splits = choose_splits(device, shape, t, t.lanes * t.keys_per_lane, requested_splits);
  return t;
}

}  // namespace gqavk
