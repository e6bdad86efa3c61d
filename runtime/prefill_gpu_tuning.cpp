#include "prefill_gpu_tuning.hpp"

#include <algorithm>
#include <bit>
#include <string>

#include "gqavk/error.hpp"

namespace gqavk {

namespace {

// 4-value slices of q and of the accumulator a lane holds over all its rows (8 registers per
// slice pair): keeps the kernel near 128 VGPRs at wave64 (2 waves per SIMD on GFX9, 4 on RDNA).
constexpr uint32_t kRowSlicesPerLane = 16;
// Subgroups of a workgroup where several whole subgroups may join (at most kMaxWorkgroupLanes),
// and the K/V tile's shared-memory bytes per subgroup: 4 KiB a wave keeps a GFX9 CU's 64 KiB
// from limiting it below 3 waves per SIMD (one 64-lane subgroup with a 16 KiB tile ran 1).
constexpr uint32_t kWorkgroupSubgroups = 4;
constexpr uint32_t kMaxWorkgroupLanes = 256;
constexpr uint64_t kTileBytesPerSubgroup = 4096;
constexpr uint32_t kMinTileKeys = 4, kMaxTileKeys = 64;

uint32_t ceil_div(uint32_t a, uint32_t b) { return (a + b - 1) / b; }

// Reduction, subgroup size and workgroup lanes, as the decode GPU tier chooses them: a required
// size where size control grants it, several subgroups per workgroup only where they are
// guaranteed whole, else one workgroup of the subgroup the context's probe measured.
void choose_lanes(const DeviceInfo& device, const TuningOverrides& overrides, PrefillTuning& t) {
  const bool ops = device.subgroup_lanes >= 1 && device.has_subgroup_ops(kSubgroupShuffle);
  if (!overrides.reduction.empty() && overrides.reduction != "subgroup" &&
      overrides.reduction != "shared") {
    throw Error(ErrorCode::invalid_argument, "GQAVK_REDUCTION='" + overrides.reduction +
                                                 "' is not valid (expected subgroup or shared)");
  }
  t.reduction = overrides.reduction == "shared" || !ops ? Reduction::shared : Reduction::subgroup;
  const uint32_t asked = overrides.subgroup_size;
  const bool grantable =
      device.subgroup_size_control && !device.bug_partial_subgroups &&
      (asked == 0 || (std::has_single_bit(asked) && asked >= device.min_subgroup_size &&
                      asked <= device.max_subgroup_size));
  if (asked != 0 &&
      (t.reduction == Reduction::shared || !(grantable || asked == device.subgroup_lanes))) {
    throw Error(ErrorCode::invalid_argument,
                "subgroup size " + std::to_string(asked) + " cannot be required on " + device.name +
                    " for prefill (expected a power of two from " +
                    std::to_string(device.min_subgroup_size) + " to " +
                    std::to_string(device.max_subgroup_size) + " with subgroup operations)");
  }
  uint32_t max_lanes = std::min(kMaxWorkgroupLanes, std::max(1u, device.max_workgroup_invocations));
  if (device.max_workgroup_size[0]) max_lanes = std::min(max_lanes, device.max_workgroup_size[0]);
  if (t.reduction == Reduction::shared) {
    // The workgroup exchanges through shared memory as one unit: two barriers per exchange.
    t.subgroup_lanes = t.lanes = std::min(64u, max_lanes);
    return;
  }
  if (grantable) {
    const uint32_t want = asked ? asked : (device.vendor == Vendor::intel ? 16u : 32u);
    t.subgroup_lanes = std::clamp(want, device.min_subgroup_size, device.max_subgroup_size);
    t.required_subgroup_size = t.subgroup_lanes;
    t.full_subgroups = device.compute_full_subgroups;
    uint32_t lanes = t.full_subgroups ? std::min(kWorkgroupSubgroups * t.subgroup_lanes, max_lanes)
                                      : t.subgroup_lanes;
    if (device.max_workgroup_subgroups) {
      lanes = std::min(lanes, device.max_workgroup_subgroups * t.subgroup_lanes);
    }
    t.lanes = std::max(lanes / t.subgroup_lanes, 1u) * t.subgroup_lanes;
    return;
  }
  t.subgroup_lanes = t.lanes = device.subgroup_lanes;
}

}  // namespace

uint32_t prefill_gpu_rows_per_lane(const PrefillTuning& t) {
  return ceil_div(t.tile_queries * t.heads_per_workgroup, t.lanes / t.lanes_per_row);
}

uint64_t prefill_gpu_shared_bytes(const PrefillShape& shape, const PrefillTuning& t) {
  // prefill_gpu.comp's staged tile: k_half/v_half (uvec2 slices: f16, bf16), k_full/v_full (uvec4
  // slices: f32, and q4 dequantised), k_word/v_word (q8 words) and k_scl/v_scl (q8 row scales), the
  // arrays a type does not use one element each; xchg[WG] vec4 without subgroup operations.
  const uint64_t keys = t.keys_per_tile;
  const uint64_t slices = keys * (shape.head_dim + shape.v_head_dim) / 4;
  uint64_t tile = 0;
  switch (shape.dtype) {
    case DType::f32:
    case DType::q4:
      tile = 16 * slices + 2 * 8 + 4 * 4;
      break;
    case DType::f16:
    case DType::bf16:
      tile = 8 * slices + 2 * 16 + 4 * 4;
      break;
    case DType::q8:
      tile = 4 * slices + 4 * 2 * keys + 2 * 8 + 2 * 16;
      break;
  }
  return tile + (t.reduction == Reduction::shared ? 16ull * t.lanes : 0);
}

void choose_prefill_gpu_tuning(const DeviceInfo& device, const PrefillShape& shape,
                               const TuningOverrides& overrides, PrefillTuning& t) {
  choose_lanes(device, overrides, t);

  // Lanes per row: about four slices of the wider row per lane, at most a subgroup. Two (twice
  // the lanes, twice the rows per tile) took 26% more instructions on ACO for Llama-3-8B (1493
  // against 1186 on RDNA2): more butterfly steps and softmax updates per multiply-add.
  const uint32_t vk = shape.head_dim / 4, vv = shape.v_head_dim / 4;
  t.lanes_per_row = std::min(std::bit_ceil(ceil_div(std::max(vk, vv), 4)), t.subgroup_lanes);
  const uint32_t slices = ceil_div(vk, t.lanes_per_row) + ceil_div(vv, t.lanes_per_row);
  const uint32_t rows = (t.lanes / t.lanes_per_row) * std::max(1u, kRowSlicesPerLane / slices);

  // The tile's rows: as many of the group's heads as fit, then queries to fill the rest.
  const uint32_t group = shape.q_heads / shape.kv_heads;
  t.head_chunks = ceil_div(group, rows);
  t.heads_per_workgroup = ceil_div(group, t.head_chunks);
  t.tile_queries = std::max(1u, rows / t.heads_per_workgroup);

  // Keys per tile: the largest power of two within the tile budget and the device's limit
  // (check_prefill_limits reports a device too small for the fewest).
  // Bytes a key's slices take in the tile (q4 is staged as f32).
  const uint64_t slice_bytes =
      shape.dtype == DType::q4 ? 16 : 16 / (values_per_texel(shape.dtype) / 4);
  const uint64_t key_bytes = uint64_t{vk + vv} * slice_bytes;
  const uint64_t tile_bytes = kTileBytesPerSubgroup * (t.lanes / t.subgroup_lanes);
  t.keys_per_tile = kMaxTileKeys;
  while (t.keys_per_tile > kMinTileKeys &&
         (t.keys_per_tile * key_bytes > tile_bytes ||
          prefill_gpu_shared_bytes(shape, t) > device.max_shared_memory_bytes)) {
    t.keys_per_tile /= 2;
  }
}

void add_prefill_gpu_variant(const PrefillTuning& t, PipelineDesc& pd) {
  pd.shader = std::string("prefill_gpu_") + to_string(t.load_path) +
              (t.reduction == Reduction::subgroup ? "_subgroup" : "_shared");
  // Id 8 (keys per tile) is common to both tiers; 9 and 10 are this kernel's.
  pd.spec_constants.at(9) = t.subgroup_lanes;
  pd.spec_constants.at(10) = t.lanes_per_row;
}

}  // namespace gqavk
