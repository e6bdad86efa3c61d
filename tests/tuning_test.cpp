// choose_decode_tuning on hand-made device records, no GPU needed. The tests assert properties
// that must hold whatever numbers the tuning picks (the speed work changes those), never the
// numbers themselves.
#include "tuning.hpp"

#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "decode_pipelines.hpp"
#include "gqavk/error.hpp"
#include "prefill_gpu_tuning.hpp"
#include "prefill_pipelines.hpp"
#include "test_support.hpp"

namespace gqavk {
namespace {

using test::ScopedEnv;
using test::throws_error;

constexpr uint32_t kAllSubgroupOps = kSubgroupBasic | kSubgroupVote | kSubgroupArithmetic |
                                     kSubgroupBallot | kSubgroupShuffle | kSubgroupShuffleRelative |
                                     kSubgroupClustered | kSubgroupQuad;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

DeviceInfo gpu(const char* name, Vendor vendor, uint32_t subgroup, uint32_t min_size,
               uint32_t max_size, uint32_t compute_units) {
  DeviceInfo d;
  d.name = name;
  d.vendor = vendor;
  d.type = DeviceType::discrete;
  d.subgroup_size = subgroup;
  d.subgroup_ops = kAllSubgroupOps;
  d.subgroup_size_control = true;
  d.compute_full_subgroups = true;
  d.min_subgroup_size = min_size;
  d.max_subgroup_size = max_size;
  d.subgroup_lanes = subgroup;
  d.storage_buffer_16bit = true;
  d.shader_float16 = true;
  d.max_storage_buffer_range = 4 * kGiB - 1;
  d.max_texel_buffer_elements = 1u << 27;
  d.max_memory_allocation_size = 16 * kGiB;
  d.max_buffer_size = 16 * kGiB;
  d.max_shared_memory_bytes = 48 * 1024;
  d.max_workgroup_invocations = 1024;
  d.max_workgroup_count[0] = 0x7fffffff;
  d.max_workgroup_count[1] = 65535;
  d.max_workgroup_count[2] = 65535;
  d.max_push_constants_bytes = 256;
  d.max_descriptor_set_storage_buffers = 1u << 20;
  d.timestamp_period_ns = 1;
  d.timestamp_valid_bits = 64;
  d.compute_units = compute_units;
  return d;
}

DeviceInfo nvidia_like() { return gpu("NVIDIA-like", Vendor::nvidia, 32, 32, 32, 132); }

DeviceInfo amd_like() {  // wave64 by default, wave32 on request
  return gpu("AMD-like", Vendor::amd, 64, 32, 64, 96);
}

DeviceInfo intel_like() {
  DeviceInfo d = gpu("Intel-like", Vendor::intel, 32, 8, 32, 96);
  d.type = DeviceType::integrated;
  d.max_storage_buffer_range = kGiB;
  d.max_memory_allocation_size = 4 * kGiB;
  return d;
}

DeviceInfo lavapipe_like() {  // Mesa 22.3 at the default 256-bit width
  DeviceInfo d = gpu("llvmpipe-like", Vendor::mesa_cpu, 8, 8, 8, 2);
  d.type = DeviceType::cpu;
  d.max_storage_buffer_range = 128 * kMiB;
  d.max_memory_allocation_size = 2 * kGiB;
  d.max_workgroup_count[0] = d.max_workgroup_count[1] = d.max_workgroup_count[2] = 65535;
  return d;
}

DeviceInfo no_subgroup_ops() {  // basic subgroups only, so the probe found nothing usable
  DeviceInfo d = gpu("no-subgroup-ops", Vendor::other, 32, 32, 32, 16);
  d.subgroup_ops = kSubgroupBasic;
  d.subgroup_size_control = false;
  d.subgroup_lanes = 0;
  return d;
}

DeviceInfo partial_subgroups() {  // lavapipe at LP_NATIVE_VECTOR_WIDTH=1024
  DeviceInfo d = lavapipe_like();
  d.name = "partial-subgroups";
  d.subgroup_size = d.min_subgroup_size = d.max_subgroup_size = 32;
  d.subgroup_lanes = 16;
  d.bug_partial_subgroups = true;
  return d;
}

bool is_gpu(const DeviceInfo& d) { return d.vendor != Vendor::mesa_cpu; }

constexpr uint32_t kBlockTokens = 16;

DecodeShape make_shape(uint32_t batch, uint32_t q_heads, uint32_t kv_heads, uint32_t head_dim,
                       DType dtype, uint32_t capacity) {
  const uint64_t blocks = (capacity + kBlockTokens - 1) / kBlockTokens;
  const uint64_t pool =
      uint64_t{batch} * blocks * 2 * kv_heads * kBlockTokens * row_bytes(dtype, head_dim);
  return {batch, q_heads, kv_heads, head_dim, dtype, capacity, pool};
}

DecodeShape with_pool(DecodeShape s, uint64_t pool_bytes) {
  s.pool_bytes = pool_bytes;
  return s;
}

std::string describe(const DecodeShape& s) {
  return "B " + std::to_string(s.batch) + " H " + std::to_string(s.q_heads) + " G " +
         std::to_string(s.kv_heads) + " D " + std::to_string(s.head_dim) + " " +
         to_string(s.dtype) + " capacity " + std::to_string(s.capacity_tokens) + " pool " +
         std::to_string(s.pool_bytes);
}

// ---------------------------------------------------------------------------------------------
// Properties over a sweep of shapes, for every kind of device.

struct DeviceCase {
  const char* name;
  DeviceInfo (*make)();
};

void PrintTo(const DeviceCase& c, std::ostream* os) { *os << c.name; }

std::string device_case_name(const ::testing::TestParamInfo<DeviceCase>& param_info) {
  return param_info.param.name;
}

class TuningProperties : public ::testing::TestWithParam<DeviceCase> {};

TEST_P(TuningProperties, HoldForEveryShape) {
  const DeviceInfo dev = GetParam().make();
  const LoadPath preferred = is_gpu(dev) ? LoadPath::storage : LoadPath::texel;
  const LoadPath other = preferred == LoadPath::texel ? LoadPath::storage : LoadPath::texel;
  const uint32_t heads[][2] = {{32, 8}, {28, 4}, {71, 1}, {14, 2},  {32, 32},
                               {16, 8}, {8, 1},  {64, 8}, {128, 1}, {1, 1}};
  int checked = 0;
  for (uint32_t batch : {1u, 7u, 64u}) {
    for (const auto& hg : heads) {
      for (uint32_t d : {64u, 80u, 96u, 112u, 128u, 192u, 256u}) {
        for (DType dtype : {DType::f16, DType::f32}) {
          for (uint32_t capacity : {1u, 1000u, 32768u}) {
            const DecodeShape s = make_shape(batch, hg[0], hg[1], d, dtype, capacity);
            SCOPED_TRACE(describe(s));
            const bool fits_preferred = s.pool_bytes <= max_binding_bytes(dev, preferred);
            const bool fits_other = s.pool_bytes <= max_binding_bytes(dev, other);
            if (!fits_preferred && !fits_other) {
              EXPECT_TRUE(throws_error([&] { choose_decode_tuning(dev, s, 0); },
                                       ErrorCode::unsupported, {std::to_string(s.pool_bytes)}));
              continue;
            }
            const DecodeTuning t = choose_decode_tuning(dev, s, 0);
            ++checked;
            EXPECT_EQ(t.load_path, fits_preferred ? preferred : other);
            EXPECT_EQ(t.tier, dev.type == DeviceType::cpu ? Tier::cpu : Tier::gpu);
            if (dev.subgroup_lanes == 0) {
              EXPECT_EQ(t.reduction, Reduction::shared);
            } else if (t.tier == Tier::cpu) {
              EXPECT_EQ(t.reduction, Reduction::subgroup);
              EXPECT_EQ(t.lanes, dev.subgroup_lanes);
            } else {
              // Whole subgroups of a size the device runs; the head dim spread across them.
              EXPECT_EQ(t.reduction, Reduction::subgroup);
              EXPECT_EQ(t.lanes % t.subgroup_lanes, 0u);
              EXPECT_LE(t.lanes_per_key, t.subgroup_lanes);
              EXPECT_EQ(t.subgroup_lanes % t.lanes_per_key, 0u);
              EXPECT_TRUE(t.lanes_per_key * 4 >= s.head_dim || t.lanes_per_key == t.subgroup_lanes);
              EXPECT_LT(t.lanes_per_key * 2, s.head_dim) << "a key's lanes hold 4 values or more";
              if (t.lanes > t.subgroup_lanes) {
                EXPECT_EQ(t.required_subgroup_size, t.subgroup_lanes);
                EXPECT_TRUE(t.full_subgroups) << "several subgroups only where they are whole";
              }
              EXPECT_FALSE(t.values_by_key);
            }
            EXPECT_GE(t.lanes, 1u);
            EXPECT_LE(t.lanes, dev.max_workgroup_invocations);
            if (dev.bug_partial_subgroups) {
              EXPECT_EQ(t.required_subgroup_size, 0u);
            }
            if (t.required_subgroup_size != 0) {
              EXPECT_TRUE(dev.subgroup_size_control);
              EXPECT_EQ(t.required_subgroup_size, t.tier == Tier::gpu ? t.subgroup_lanes : t.lanes);
              EXPECT_GE(t.required_subgroup_size, dev.min_subgroup_size);
              EXPECT_LE(t.required_subgroup_size, dev.max_subgroup_size);
            }
            const uint32_t group = s.q_heads / s.kv_heads;
            EXPECT_GE(t.heads_per_workgroup, 1u);
            EXPECT_LE(t.heads_per_workgroup, group);
            const uint32_t per_workgroup = t.heads_per_workgroup * t.head_subgroups;
            EXPECT_GE(per_workgroup * t.head_chunks, group);
            EXPECT_LT((t.head_chunks - 1) * per_workgroup, group) << "an empty chunk";
            EXPECT_LT((t.head_subgroups - 1) * t.heads_per_workgroup,
                      (group + t.head_chunks - 1) / t.head_chunks)
                << "an empty subgroup";
            EXPECT_LE(decode_shared_bytes(s, t), dev.max_shared_memory_bytes);
            if (t.tier == Tier::cpu) {
              EXPECT_EQ(t.head_subgroups, 1u);
            }
            EXPECT_GE(t.keys_per_lane, 1u);
            EXPECT_GE(t.max_splits, 1u);
            EXPECT_LE(t.max_splits, 64u);
            EXPECT_LE(t.max_splits, s.capacity_tokens) << "a split that can never hold a key";
            for (uint32_t requested : {1u, 3u, 16u, 1024u}) {
              EXPECT_EQ(choose_decode_tuning(dev, s, requested).max_splits, requested);
            }
            if (HasFailure()) return;
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 100);
}

INSTANTIATE_TEST_SUITE_P(Devices, TuningProperties,
                         ::testing::Values(DeviceCase{"nvidia", nvidia_like},
                                           DeviceCase{"amd", amd_like},
                                           DeviceCase{"intel", intel_like},
                                           DeviceCase{"lavapipe", lavapipe_like},
                                           DeviceCase{"no_subgroup_ops", no_subgroup_ops},
                                           DeviceCase{"partial_subgroups", partial_subgroups}),
                         device_case_name);

// ---------------------------------------------------------------------------------------------
// Single decisions.

const DecodeShape kLlama = make_shape(1, 32, 8, 128, DType::f16, 4096);

TEST(Tuning, SharedReductionWithoutUsableSubgroups) {
  const DeviceInfo dev = no_subgroup_ops();
  EXPECT_EQ(choose_decode_tuning(dev, kLlama, 0).reduction, Reduction::shared);
  // Even when asked for: the device cannot run the subgroup variant.
  EXPECT_EQ(choose_decode_tuning(dev, kLlama, 0, {"", "subgroup"}).reduction, Reduction::shared);
}

TEST(Tuning, CpuTierLanesAreTheProbedSubgroupLanes) {
  for (const DeviceInfo& dev : {nvidia_like(), amd_like(), intel_like(), lavapipe_like()}) {
    SCOPED_TRACE(dev.name);
    const DecodeTuning t = choose_decode_tuning(dev, kLlama, 0, {"", "", "", "cpu"});
    EXPECT_EQ(t.tier, Tier::cpu);
    EXPECT_EQ(t.reduction, Reduction::subgroup);
    EXPECT_EQ(t.lanes, dev.subgroup_lanes);
  }
}

TEST(Tuning, NoRequiredSubgroupSizeWithPartialSubgroups) {
  const DeviceInfo dev = partial_subgroups();
  const DecodeTuning t = choose_decode_tuning(dev, kLlama, 0);
  EXPECT_EQ(t.lanes, 16u);
  EXPECT_EQ(t.required_subgroup_size, 0u);
  // Shared memory needs no subgroup size either.
  const DecodeTuning s = choose_decode_tuning(dev, kLlama, 0, {"", "shared"});
  EXPECT_EQ(s.reduction, Reduction::shared);
  EXPECT_EQ(s.required_subgroup_size, 0u);
}

TEST(Tuning, TexelOnLavapipeStorageOnGpus) {
  EXPECT_EQ(choose_decode_tuning(lavapipe_like(), kLlama, 0).load_path, LoadPath::texel);
  for (const DeviceInfo& dev : {nvidia_like(), amd_like(), intel_like(), no_subgroup_ops()}) {
    SCOPED_TRACE(dev.name);
    EXPECT_EQ(choose_decode_tuning(dev, kLlama, 0).load_path, LoadPath::storage);
  }
}

TEST(Tuning, ValuesByKeyOnCpuDriversOnly) {
  EXPECT_TRUE(choose_decode_tuning(lavapipe_like(), kLlama, 0).values_by_key);
  for (const DeviceInfo& dev : {nvidia_like(), amd_like(), intel_like()}) {
    SCOPED_TRACE(dev.name);
    EXPECT_FALSE(choose_decode_tuning(dev, kLlama, 0).values_by_key);
  }
  // Lanes exchange nothing in that phase; without subgroup reductions it is never chosen.
  EXPECT_FALSE(choose_decode_tuning(lavapipe_like(), kLlama, 0, {"", "shared"}).values_by_key);
  EXPECT_FALSE(
      choose_decode_tuning(lavapipe_like(), kLlama, 0, {"", "shared", "key"}).values_by_key);
  // Overrides pick either phase on any device.
  EXPECT_FALSE(choose_decode_tuning(lavapipe_like(), kLlama, 0, {"", "", "texel"}).values_by_key);
  EXPECT_TRUE(choose_decode_tuning(nvidia_like(), kLlama, 0, {"", "", "key", "cpu"}).values_by_key);
  // The GPU tier has no by-key phase: lanes own slices of the row.
  EXPECT_FALSE(choose_decode_tuning(nvidia_like(), kLlama, 0, {"", "", "key"}).values_by_key);
  EXPECT_TRUE(throws_error(
      [&] {
        choose_decode_tuning(nvidia_like(), kLlama, 0, {"", "", "keys"});
      },
      ErrorCode::invalid_argument, {"GQAVK_VALUES='keys'", "key or texel"}));
}

TEST(Tuning, CpuTierOnCpuDriversGpuTierElsewhere) {
  EXPECT_EQ(choose_decode_tuning(lavapipe_like(), kLlama, 0).tier, Tier::cpu);
  for (const DeviceInfo& dev : {nvidia_like(), amd_like(), intel_like(), no_subgroup_ops()}) {
    SCOPED_TRACE(dev.name);
    EXPECT_EQ(choose_decode_tuning(dev, kLlama, 0).tier, Tier::gpu);
    EXPECT_EQ(choose_decode_tuning(dev, kLlama, 0, {"", "", "", "cpu"}).tier, Tier::cpu);
  }
  EXPECT_EQ(choose_decode_tuning(lavapipe_like(), kLlama, 0, {"", "", "", "gpu"}).tier, Tier::gpu);
  for (const char* bad : {"GPU", "fast", "cpu "}) {
    EXPECT_TRUE(throws_error(
        [&] {
          choose_decode_tuning(nvidia_like(), kLlama, 0, {"", "", "", bad});
        },
        ErrorCode::invalid_argument, {std::string("GQAVK_TIER='") + bad + "'", "cpu or gpu"}));
  }
}

TEST(Tuning, GpuTierSubgroups) {
  // 32 lanes where the device allows it (wave32 on RDNA), 16 on Intel, its only size elsewhere.
  EXPECT_EQ(choose_decode_tuning(nvidia_like(), kLlama, 0).subgroup_lanes, 32u);
  EXPECT_EQ(choose_decode_tuning(amd_like(), kLlama, 0).subgroup_lanes, 32u);
  EXPECT_EQ(choose_decode_tuning(intel_like(), kLlama, 0).subgroup_lanes, 16u);
  // Llama's f16 row of 128 values: 32 lanes of 4 values each, 4 query heads per workgroup.
  const DecodeTuning t = choose_decode_tuning(amd_like(), kLlama, 0);
  EXPECT_EQ(t.lanes_per_key, 32u);
  EXPECT_EQ(t.heads_per_workgroup, 4u);
  EXPECT_EQ(t.required_subgroup_size, 32u);
  // Every size the device offers can be asked for; others are refused naming the range.
  for (uint32_t n : {32u, 64u}) {
    const DecodeTuning a = choose_decode_tuning(amd_like(), kLlama, 0, {"", "", "", "", n});
    EXPECT_EQ(a.subgroup_lanes, n);
    EXPECT_EQ(a.required_subgroup_size, n);
    EXPECT_EQ(a.lanes, n);
  }
  for (uint32_t n : {16u, 48u, 128u}) {
    EXPECT_TRUE(throws_error(
        [&] {
          choose_decode_tuning(amd_like(), kLlama, 0, {"", "", "", "", n});
        },
        ErrorCode::invalid_argument, {"subgroup size " + std::to_string(n), "32 to 64"}));
  }
  // Narrow subgroups that are guaranteed whole join into 32-lane workgroups.
  const DecodeTuning lp = choose_decode_tuning(lavapipe_like(), kLlama, 0, {"", "", "", "gpu"});
  EXPECT_EQ(lp.subgroup_lanes, 8u);
  EXPECT_EQ(lp.lanes_per_key, 8u);
  // There 8 lanes hold a row of 128 values, 16 values each: one head per subgroup, and the group's
  // 4 heads in 4 subgroups of the workgroup, each of those 4 key subgroups wide.
  EXPECT_EQ(lp.heads_per_workgroup, 1u);
  EXPECT_EQ(lp.head_subgroups, 4u);
  EXPECT_EQ(lp.head_chunks, 1u);
  EXPECT_EQ(lp.lanes, 32u * 4);
  // Key subgroups on request (tests use it to cover one subgroup of keys with several of heads).
  TuningOverrides one_key{"", "", "", "gpu"};
  one_key.key_subgroups = "1";
  const DecodeTuning k1 = choose_decode_tuning(lavapipe_like(), kLlama, 0, one_key);
  EXPECT_EQ(k1.lanes, 8u * k1.head_subgroups);
  EXPECT_EQ(k1.head_subgroups, 4u);
  for (const char* bad : {"0", "3", "16", "two"}) {
    one_key.key_subgroups = bad;
    EXPECT_TRUE(throws_error([&] { choose_decode_tuning(lavapipe_like(), kLlama, 0, one_key); },
                             ErrorCode::invalid_argument,
                             {std::string("GQAVK_KEY_SUBGROUPS='") + bad + "'", "1, 2, 4 or 8"}));
  }
  // Partial subgroups: one workgroup of the probed lanes, no required size.
  const DecodeTuning pt = choose_decode_tuning(partial_subgroups(), kLlama, 0, {"", "", "", "gpu"});
  EXPECT_EQ(pt.lanes, 16u);
  EXPECT_EQ(pt.subgroup_lanes, 16u);
  EXPECT_EQ(pt.required_subgroup_size, 0u);
  // Without shuffles the workgroup exchanges through shared memory.
  DeviceInfo no_shuffle = nvidia_like();
  no_shuffle.subgroup_ops &= ~uint32_t{kSubgroupShuffle};
  EXPECT_EQ(choose_decode_tuning(no_shuffle, kLlama, 0).reduction, Reduction::shared);
}

TEST(Tuning, LimitsAreCheckedBeforeAPlanIsMade) {
  const DecodeShape s = make_shape(4, 32, 8, 128, DType::f16, 4096);
  DeviceInfo dev = nvidia_like();
  EXPECT_NO_THROW(check_decode_limits(dev, s, choose_decode_tuning(dev, s, 64)));
  // Shared memory: the merge of several subgroups (lavapipe's narrow ones) needs some.
  DeviceInfo small = lavapipe_like();
  const DecodeTuning lp = choose_decode_tuning(small, s, 0, {"", "", "", "gpu"});
  ASSERT_GT(decode_shared_bytes(s, lp), 0u);
  small.max_shared_memory_bytes = static_cast<uint32_t>(decode_shared_bytes(s, lp) - 1);
  EXPECT_TRUE(
      throws_error([&] { check_decode_limits(small, s, lp); }, ErrorCode::unsupported,
                   {"maxComputeSharedMemorySize", std::to_string(small.max_shared_memory_bytes)}));
  // Split outputs past the storage range.
  DeviceInfo narrow = nvidia_like();
  narrow.max_storage_buffer_range = 1u << 20;
  EXPECT_TRUE(
      throws_error([&] { check_decode_limits(narrow, s, choose_decode_tuning(narrow, s, 64)); },
                   ErrorCode::unsupported, {"maxStorageBufferRange", "64 splits"}));
  // Dispatch dimensions.
  DeviceInfo few = nvidia_like();
  few.max_workgroup_count[0] = 8;
  EXPECT_TRUE(throws_error([&] { check_decode_limits(few, s, choose_decode_tuning(few, s, 16)); },
                           ErrorCode::unsupported, {"maxComputeWorkGroupCount[0]", "16"}));
  few = nvidia_like();
  few.max_workgroup_count[2] = 2;
  EXPECT_TRUE(throws_error([&] { check_decode_limits(few, s, choose_decode_tuning(few, s, 1)); },
                           ErrorCode::unsupported, {"maxComputeWorkGroupCount[2]", "sequences"}));
  // Workgroup width: lavapipe's narrow subgroups join into 32-lane workgroups.
  DeviceInfo tight = lavapipe_like();
  tight.max_workgroup_size[0] = 16;
  EXPECT_TRUE(throws_error(
      [&] {
        check_decode_limits(tight, s, choose_decode_tuning(tight, s, 1, {"", "", "", "gpu"}));
      },
      ErrorCode::unsupported, {"maxComputeWorkGroupSize[0]", "32"}));
  // Subgroups per workgroup (lavapipe allows 32 of a required size): the tuning stays within it.
  DeviceInfo few_subgroups = lavapipe_like();
  few_subgroups.max_workgroup_subgroups = 8;
  const DecodeTuning fs = choose_decode_tuning(few_subgroups, s, 1, {"", "", "", "gpu"});
  EXPECT_LE(fs.lanes / fs.subgroup_lanes, 8u);
  EXPECT_NO_THROW(check_decode_limits(few_subgroups, s, fs));
  DecodeTuning too_many = fs;
  too_many.lanes = 16 * fs.subgroup_lanes;
  EXPECT_TRUE(throws_error([&] { check_decode_limits(few_subgroups, s, too_many); },
                           ErrorCode::unsupported, {"maxComputeWorkgroupSubgroups", "16"}));
  // Descriptors.
  DeviceInfo scarce = nvidia_like();
  scarce.max_per_stage_storage_buffers = 4;
  EXPECT_TRUE(
      throws_error([&] { check_decode_limits(scarce, s, choose_decode_tuning(scarce, s, 1)); },
                   ErrorCode::unsupported, {"maxPerStageDescriptorStorageBuffers", "7"}));
}

// A window plan's split count comes from min(capacity, W): a 4096-token window over 32768 tokens
// splits as a 4096-token cache does (its splits beyond the window would only read nothing).
TEST(Tuning, WindowChoosesSplitsFromItsLength) {
  for (const DeviceInfo& d : {nvidia_like(), amd_like(), lavapipe_like()}) {
    DecodeShape windowed = make_shape(1, 32, 8, 128, DType::f16, 32768);
    windowed.window = 4096;
    const DecodeShape short_cache = make_shape(1, 32, 8, 128, DType::f16, 4096);
    const DecodeShape full = make_shape(1, 32, 8, 128, DType::f16, 32768);
    const uint32_t w = choose_decode_tuning(d, windowed, 0).max_splits;
    EXPECT_EQ(w, choose_decode_tuning(d, short_cache, 0).max_splits) << d.name;
    EXPECT_LE(w, choose_decode_tuning(d, full, 0).max_splits) << d.name;
    windowed.window = 100000;  // longer than the cache: the capacity bounds it
    EXPECT_EQ(choose_decode_tuning(d, windowed, 0).max_splits,
              choose_decode_tuning(d, full, 0).max_splits)
        << d.name;
  }
}

// Dk 192 with Dv 128: the GPU tier spreads the wider K row across lanes, and the pipelines take Dv
// (the decode kernel's DV constant, the merge's row length).
TEST(Tuning, KeyAndValueHeadDims) {
  DecodeShape s = make_shape(1, 16, 16, 192, DType::f16, 4096);
  s.v_head_dim = 128;
  EXPECT_EQ(s.dv(), 128u);
  const DecodeTuning t = choose_decode_tuning(nvidia_like(), s, 4);
  EXPECT_EQ(t.lanes_per_key, 32u);  // 48 slices of K: two per lane
  const DecodePipelineDescs descs = decode_pipeline_descs(s, t);
  EXPECT_EQ(descs.decode.spec_constants.at(1), 192u);
  EXPECT_EQ(descs.decode.spec_constants.at(11), 128u);
  ASSERT_TRUE(descs.merge.has_value());
  EXPECT_EQ(descs.merge->spec_constants.at(0), 128u);
  EXPECT_EQ(descs.merge->bindings.size(), 4u);  // partial rows, stats, output, sinks
  EXPECT_EQ(descs.decode.bindings.size(), 7u);  // ..., split stats, sinks
}

TEST(Tuning, OtherPathWhenThePoolExceedsThePreferredBinding) {
  // lavapipe prefers texel; with a small texel limit, a 100 MiB pool takes the storage path.
  DeviceInfo cpu = lavapipe_like();
  cpu.max_texel_buffer_elements = 1u << 20;  // 16 MiB of texels
  EXPECT_EQ(choose_decode_tuning(cpu, with_pool(kLlama, 100 * kMiB), 0).load_path,
            LoadPath::storage);
  // A GPU prefers storage; past a 128 MiB storage range, a 1 GiB pool takes the texel path.
  DeviceInfo mobile = intel_like();
  mobile.max_storage_buffer_range = 128 * kMiB;
  EXPECT_EQ(choose_decode_tuning(mobile, with_pool(kLlama, kGiB), 0).load_path, LoadPath::texel);
}

TEST(Tuning, ImageLoadsShareTheTexelView) {
  // imageLoad and texelFetch bind the same R32G32B32A32_UINT view, so the same limit applies.
  EXPECT_TRUE(uses_texel_view(LoadPath::image));
  EXPECT_TRUE(uses_texel_view(LoadPath::texel));
  EXPECT_FALSE(uses_texel_view(LoadPath::storage));
  for (const DeviceInfo& dev : {nvidia_like(), lavapipe_like(), intel_like()}) {
    EXPECT_EQ(max_binding_bytes(dev, LoadPath::image), max_binding_bytes(dev, LoadPath::texel));
  }
  // Forced past the texel limit, the image path fails rather than switching to storage.
  DeviceInfo cpu = lavapipe_like();
  cpu.max_texel_buffer_elements = 1u << 20;  // 16 MiB of texels
  EXPECT_TRUE(throws_error(
      [&] {
        choose_decode_tuning(cpu, with_pool(kLlama, 100 * kMiB), 0, {"image", ""});
      },
      ErrorCode::unsupported, {std::to_string(100 * kMiB)}));
}

TEST(Tuning, TexelIndicesFitAnInt) {
  // RADV reports 2^32 - 1 texel-buffer elements; texelFetch's int index reaches 2^31 - 1.
  DeviceInfo dev = amd_like();
  dev.max_texel_buffer_elements = 0xffffffffu;
  dev.max_memory_allocation_size = dev.max_buffer_size = 1ull << 40;
  EXPECT_EQ(max_binding_bytes(dev, LoadPath::texel), 0x7fffffffull * 16);
  EXPECT_EQ(max_binding_bytes(dev, LoadPath::image), 0x7fffffffull * 16);
}

TEST(Tuning, UnsupportedWhenThePoolExceedsEveryBinding) {
  for (const DeviceInfo& dev : {nvidia_like(), lavapipe_like(), intel_like()}) {
    SCOPED_TRACE(dev.name);
    const uint64_t pool = std::max(max_binding_bytes(dev, LoadPath::texel),
                                   max_binding_bytes(dev, LoadPath::storage)) +
                          16;
    EXPECT_TRUE(throws_error([&] { choose_decode_tuning(dev, with_pool(kLlama, pool), 0); },
                             ErrorCode::unsupported, {std::to_string(pool), dev.name}));
  }
}

TEST(Tuning, ForcedLoadPathNeverFallsBack) {
  // Overrides exist to test one variant; a silent switch to the other would hide it.
  DeviceInfo dev = lavapipe_like();
  const DecodeShape big = with_pool(kLlama, 200 * kMiB);  // past the 128 MiB storage range
  EXPECT_EQ(choose_decode_tuning(dev, big, 0).load_path, LoadPath::texel);
  EXPECT_TRUE(throws_error(
      [&] {
        choose_decode_tuning(dev, big, 0, {"storage", ""});
      },
      ErrorCode::unsupported, {std::to_string(200 * kMiB)}));
}

DeviceInfo with_address(DeviceInfo d) {
  d.buffer_device_address = true;
  return d;
}

// Past both binding limits the pool is read through its device address where the device has one;
// the binding paths keep their preference while they fit.
TEST(Tuning, AddressPathPastEveryBinding) {
  // NVIDIA-like: 4 GiB storage range, 2 GiB of texels, 16 GiB allocations.
  const DecodeShape big = with_pool(kLlama, 8 * kGiB);
  EXPECT_EQ(choose_decode_tuning(with_address(nvidia_like()), big, 0).load_path, LoadPath::address);
  EXPECT_EQ(choose_decode_tuning(with_address(nvidia_like()), kLlama, 0).load_path,
            LoadPath::storage);
  // lavapipe-like: its texel view spans the whole 2 GiB allocation, so texel is kept; with a
  // smaller texel limit a 200 MiB pool (past the 128 MiB storage range) takes the address.
  DeviceInfo cpu = with_address(lavapipe_like());
  EXPECT_EQ(choose_decode_tuning(cpu, with_pool(kLlama, 200 * kMiB), 0).load_path, LoadPath::texel);
  cpu.max_texel_buffer_elements = 1u << 20;  // 16 MiB of texels
  EXPECT_EQ(choose_decode_tuning(cpu, with_pool(kLlama, 200 * kMiB), 0).load_path,
            LoadPath::address);
  EXPECT_EQ(choose_decode_tuning(cpu, with_pool(kLlama, 100 * kMiB), 0).load_path,
            LoadPath::storage);
  // Prefill takes decode's choice for the same pool.
  const PrefillShape prefill{32, 8, 128, 128, DType::f16, 8192, 200 * kMiB};
  EXPECT_EQ(choose_prefill_tuning(cpu, prefill, {}).load_path, LoadPath::address);
  // The address path's pipelines: binding 0 is a storage buffer (the address), counted as one.
  for (const char* tier : {"cpu", "gpu"}) {
    TuningOverrides o;
    o.tier = tier;
    const DecodeShape s = with_pool(kLlama, 200 * kMiB);
    const DecodeTuning t = choose_decode_tuning(cpu, s, 0, o);
    ASSERT_EQ(t.load_path, LoadPath::address);
    const DecodePipelineDescs d = decode_pipeline_descs(s, t);
    EXPECT_EQ(
        d.decode.shader.find(
            std::string(tier == std::string("gpu") ? "decode_gpu" : "decode_split") + "_address_"),
        0u)
        << d.decode.shader;
    EXPECT_EQ(d.decode.bindings.at(0), VK_DESCRIPTOR_TYPE_STORAGE_BUFFER);
    DeviceInfo six = cpu;
    six.max_per_stage_storage_buffers = 6;
    EXPECT_TRUE(throws_error([&] { check_decode_limits(six, s, t); }, ErrorCode::unsupported,
                             {"storage-buffer descriptors needs 7"}));
  }
}

TEST(Tuning, UnsupportedPastEveryBindingWithoutAddresses) {
  const DeviceInfo dev = nvidia_like();
  ASSERT_FALSE(dev.buffer_device_address);
  const uint64_t pool = 8 * kGiB;
  EXPECT_EQ(max_binding_bytes(dev, LoadPath::address), 0u);
  EXPECT_TRUE(throws_error(
      [&] { choose_decode_tuning(dev, with_pool(kLlama, pool), 0); }, ErrorCode::unsupported,
      {std::to_string(pool) + " bytes", dev.name,
       "texel view " + std::to_string(2 * kGiB) + " bytes",
       "storage buffer " + std::to_string(4 * kGiB - 1) + " bytes", "no bufferDeviceAddress"}));
  // Forcing the address path needs the feature.
  EXPECT_TRUE(throws_error(
      [&] {
        choose_decode_tuning(dev, kLlama, 0, {"address", ""});
      },
      ErrorCode::unsupported, {"GQAVK_KV_LOAD='address'", dev.name, "bufferDeviceAddress"}));
}

// The pool is one buffer in one allocation: past either limit it is an error naming both numbers,
// whichever path could address it.
TEST(Tuning, PoolPastOneAllocationOrBuffer) {
  DeviceInfo dev = with_address(nvidia_like());  // 16 GiB allocations and buffers
  const uint64_t pool = 17 * kGiB;
  EXPECT_TRUE(throws_error([&] { choose_decode_tuning(dev, with_pool(kLlama, pool), 0); },
                           ErrorCode::unsupported,
                           {std::to_string(pool) + " bytes", "maxMemoryAllocationSize",
                            std::to_string(16 * kGiB) + " bytes"}));
  dev.max_memory_allocation_size = 64 * kGiB;
  dev.max_buffer_size = 8 * kGiB;
  EXPECT_TRUE(throws_error([&] { choose_decode_tuning(dev, with_pool(kLlama, 10 * kGiB), 0); },
                           ErrorCode::unsupported,
                           {std::to_string(10 * kGiB) + " bytes", "maxBufferSize",
                            std::to_string(8 * kGiB) + " bytes"}));
  EXPECT_NO_THROW(check_pool_allocation(dev, 8 * kGiB));
  // Texel indices are uint: the address path reaches 2^32 texels (64 GiB) at most.
  dev.max_memory_allocation_size = dev.max_buffer_size = 1ull << 40;
  EXPECT_EQ(max_binding_bytes(dev, LoadPath::address), 64 * kGiB);
  EXPECT_EQ(choose_decode_tuning(dev, with_pool(kLlama, 64 * kGiB), 0).load_path,
            LoadPath::address);
  EXPECT_TRUE(throws_error([&] { choose_decode_tuning(dev, with_pool(kLlama, 65 * kGiB), 0); },
                           ErrorCode::unsupported,
                           {std::to_string(65 * kGiB) + " bytes",
                            "device address (" + std::to_string(64 * kGiB) + " bytes)"}));
}

// GQAVK_KV_LOAD=address reads even a small pool through its address, and never falls back.
TEST(Tuning, AddressOverride) {
  for (const DeviceInfo& dev : {with_address(nvidia_like()), with_address(lavapipe_like())}) {
    SCOPED_TRACE(dev.name);
    EXPECT_EQ(choose_decode_tuning(dev, kLlama, 0, {"address", ""}).load_path, LoadPath::address);
    EXPECT_EQ(to_string(LoadPath::address), std::string("address"));
    EXPECT_FALSE(uses_texel_view(LoadPath::address));
  }
  DeviceInfo dev = with_address(nvidia_like());
  dev.max_memory_allocation_size = dev.max_buffer_size = 1ull << 40;
  EXPECT_TRUE(throws_error(
      [&] {
        choose_decode_tuning(dev, with_pool(kLlama, 65 * kGiB), 0, {"address", ""});
      },
      ErrorCode::unsupported, {std::to_string(65 * kGiB), "address path"}));
  ScopedEnv load("GQAVK_KV_LOAD", "address");
  EXPECT_EQ(overrides_from_env().load_path, "address");
}

TEST(Tuning, OverridesChooseTheVariant) {
  for (const DeviceInfo& dev : {nvidia_like(), lavapipe_like()}) {
    SCOPED_TRACE(dev.name);
    for (const char* load : {"texel", "storage", "image"}) {
      for (const char* reduction : {"subgroup", "shared"}) {
        const DecodeTuning t = choose_decode_tuning(dev, kLlama, 0, {load, reduction});
        EXPECT_EQ(to_string(t.load_path), std::string(load));
        EXPECT_EQ(t.reduction,
                  std::string(reduction) == "shared" ? Reduction::shared : Reduction::subgroup);
        EXPECT_GE(t.lanes, 1u);
        EXPECT_LE(t.lanes, dev.max_workgroup_invocations);
      }
    }
  }
}

TEST(Tuning, OverrideStringsAreValidated) {
  const DeviceInfo dev = nvidia_like();
  EXPECT_NO_THROW(choose_decode_tuning(dev, kLlama, 0, {"", ""}));
  for (const char* bad : {"fast", "Texel", "texel ", "buffer", "images"}) {
    EXPECT_TRUE(throws_error(
        [&] {
          choose_decode_tuning(dev, kLlama, 0, {bad, ""});
        },
        ErrorCode::invalid_argument,
        {std::string("GQAVK_KV_LOAD='") + bad + "'", "texel, storage, image or address"}));
  }
  for (const char* bad : {"warp", "Shared", "subgroups"}) {
    EXPECT_TRUE(throws_error(
        [&] {
          choose_decode_tuning(dev, kLlama, 0, {"", bad});
        },
        ErrorCode::invalid_argument,
        {std::string("GQAVK_REDUCTION='") + bad + "'", "subgroup or shared"}));
  }
}

TEST(Tuning, OverridesComeFromTheEnvironment) {
  {
    ScopedEnv load("GQAVK_KV_LOAD", "texel");
    ScopedEnv reduction("GQAVK_REDUCTION", "shared");
    ScopedEnv values("GQAVK_VALUES", "key");
    const TuningOverrides o = overrides_from_env();
    EXPECT_EQ(o.load_path, "texel");
    EXPECT_EQ(o.reduction, "shared");
    EXPECT_EQ(o.values, "key");
  }
  ScopedEnv load("GQAVK_KV_LOAD", nullptr);
  ScopedEnv reduction("GQAVK_REDUCTION", nullptr);
  ScopedEnv values("GQAVK_VALUES", nullptr);
  const TuningOverrides o = overrides_from_env();
  EXPECT_EQ(o.load_path, "");
  EXPECT_EQ(o.reduction, "");
  EXPECT_EQ(o.values, "");
}

TEST(Tuning, RequestedSplitsAreKept) {
  for (uint32_t requested : {1u, 2u, 3u, 16u, 64u, 300u, 1024u}) {
    EXPECT_EQ(choose_decode_tuning(nvidia_like(), kLlama, requested).max_splits, requested);
    EXPECT_EQ(choose_decode_tuning(lavapipe_like(), kLlama, requested).max_splits, requested);
  }
}

TEST(Tuning, MoreSplitsForOneLongSequenceThanForABatch) {
  for (const DeviceInfo& dev : {nvidia_like(), amd_like(), intel_like(), lavapipe_like()}) {
    SCOPED_TRACE(dev.name);
    for (const auto& [h, g] : {std::pair{32u, 8u}, std::pair{8u, 1u}}) {
      // The pool size only picks the load path; keep it bindable so the split counts compare.
      const auto splits = [&](uint32_t batch) {
        const DecodeShape s = make_shape(batch, h, g, 128, DType::f16, 32768);
        return choose_decode_tuning(dev, with_pool(s, 64 * kMiB), 0).max_splits;
      };
      const uint32_t one = splits(1), many = splits(64);
      EXPECT_GE(one, many) << "H " << h << " G " << g;
      // A GPU has far more compute units than one sequence's KV heads fill; a CPU does for MQA.
      if (is_gpu(dev) || g == 1) {
        EXPECT_GT(one, many) << "H " << h << " G " << g;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The prefill kernel's GPU tier (prefill_gpu_tuning.hpp), forced on every kind of device.

PrefillShape prefill_shape(uint32_t q_heads, uint32_t kv_heads, uint32_t dk, uint32_t dv,
                           DType dtype) {
  const DecodeShape d = make_shape(1, q_heads, kv_heads, dk, dtype, 4096);
  return {q_heads, kv_heads, dk, dv, dtype, 4096, d.pool_bytes / (2 * dk) * (dk + dv)};
}

TEST(PrefillGpuTuning, PropertiesHoldOnEveryDevice) {
  TuningOverrides gpu_tier;
  gpu_tier.tier = "gpu";
  for (const DeviceInfo& dev : {nvidia_like(), amd_like(), intel_like(), lavapipe_like(),
                                no_subgroup_ops(), partial_subgroups()}) {
    for (const auto& [h, g] : {std::pair{32u, 8u}, std::pair{28u, 4u}, std::pair{71u, 1u},
                               std::pair{32u, 32u}, std::pair{16u, 8u}}) {
      for (const auto& [dk, dv] : {std::pair{64u, 64u}, std::pair{80u, 80u}, std::pair{128u, 128u},
                                   std::pair{192u, 128u}, std::pair{256u, 256u}}) {
        for (DType dtype : {DType::f16, DType::f32}) {
          const PrefillShape s = prefill_shape(h, g, dk, dv, dtype);
          SCOPED_TRACE(dev.name + " H " + std::to_string(h) + " G " + std::to_string(g) + " Dk " +
                       std::to_string(dk) + " Dv " + std::to_string(dv) + " " + to_string(dtype));
          const PrefillTuning t = choose_prefill_tuning(dev, s, gpu_tier);
          EXPECT_NO_THROW(check_prefill_limits(dev, s, t));
          EXPECT_EQ(t.tier, Tier::gpu);
          EXPECT_EQ(t.reduction, dev.subgroup_lanes ? Reduction::subgroup : Reduction::shared);
          // Rows never straddle a subgroup; several subgroups only where they are whole.
          EXPECT_TRUE(std::has_single_bit(t.lanes_per_row));
          EXPECT_LE(t.lanes_per_row, t.subgroup_lanes);
          EXPECT_EQ(t.lanes % t.subgroup_lanes, 0u);
          if (t.lanes > t.subgroup_lanes) {
            EXPECT_TRUE(t.reduction == Reduction::shared ||
                        (t.required_subgroup_size == t.subgroup_lanes && t.full_subgroups));
          }
          if (dev.bug_partial_subgroups) {
            EXPECT_EQ(t.required_subgroup_size, 0u);
            EXPECT_EQ(t.subgroup_lanes, dev.subgroup_lanes);
          }
          // Every head of the group in exactly one chunk, none empty; keys in steps of four.
          const uint32_t group = h / g;
          EXPECT_GE(t.heads_per_workgroup * t.head_chunks, group);
          EXPECT_LT(t.heads_per_workgroup * (t.head_chunks - 1), group);
          EXPECT_GE(t.tile_queries, 1u);
          EXPECT_EQ(t.keys_per_tile % 4, 0u);
          // Registers: at most 16 slices of q and accumulator per lane, unless one row is wider.
          const uint32_t slices = (dk / 4 + t.lanes_per_row - 1) / t.lanes_per_row +
                                  (dv / 4 + t.lanes_per_row - 1) / t.lanes_per_row;
          EXPECT_TRUE(prefill_gpu_rows_per_lane(t) * slices <= 16 ||
                      prefill_gpu_rows_per_lane(t) == 1);
          const PipelineDesc pd = prefill_pipeline_descs(s, t).prefill;
          EXPECT_EQ(pd.shader.rfind("prefill_gpu_", 0), 0u) << pd.shader;
          // Ids 9 and 10 are this tier's; the CPU tier's softcap flag (11) is another id.
          ASSERT_EQ(pd.spec_constants.size(), 12u);
          EXPECT_EQ(pd.spec_constants[9], t.subgroup_lanes);
          EXPECT_EQ(pd.spec_constants[10], t.lanes_per_row);
        }
      }
    }
  }
}

TEST(PrefillGpuTuning, OverridesAreValidated) {
  const PrefillShape s = prefill_shape(32, 8, 128, 128, DType::f16);
  TuningOverrides o;
  o.tier = "gpu";
  o.subgroup_size = 48;
  EXPECT_TRUE(throws_error([&] { choose_prefill_tuning(amd_like(), s, o); },
                           ErrorCode::invalid_argument, {"48", "32 to 64"}));
  o.subgroup_size = 32;
  EXPECT_EQ(choose_prefill_tuning(amd_like(), s, o).required_subgroup_size, 32u);
  o.subgroup_size = 64;
  EXPECT_EQ(choose_prefill_tuning(amd_like(), s, o).subgroup_lanes, 64u);
  o.subgroup_size = 0;
  o.reduction = "shared";
  EXPECT_EQ(choose_prefill_tuning(nvidia_like(), s, o).reduction, Reduction::shared);
  o.reduction = "butterfly";
  EXPECT_TRUE(throws_error([&] { choose_prefill_tuning(nvidia_like(), s, o); },
                           ErrorCode::invalid_argument, {"GQAVK_REDUCTION='butterfly'", "shared"}));
}

// Shared memory the device lacks shrinks the K/V tile; below the smallest the plan is refused.
TEST(PrefillGpuTuning, TilesShrinkToTheSharedMemory) {
  TuningOverrides o;
  o.tier = "gpu";
  const PrefillShape s = prefill_shape(16, 8, 256, 256, DType::f32);
  DeviceInfo dev = nvidia_like();
  const uint32_t roomy = choose_prefill_tuning(dev, s, o).keys_per_tile;
  dev.max_shared_memory_bytes = 12 * 1024;
  const PrefillTuning t = choose_prefill_tuning(dev, s, o);
  EXPECT_LT(t.keys_per_tile, roomy);
  EXPECT_LE(prefill_shared_bytes(s, t), dev.max_shared_memory_bytes);
  dev.max_shared_memory_bytes = 1024;
  EXPECT_TRUE(throws_error([&] { check_prefill_limits(dev, s, choose_prefill_tuning(dev, s, o)); },
                           ErrorCode::unsupported,
                           {"shared memory", "maxComputeSharedMemorySize", "1024"}));
}

}  // namespace
}  // namespace gqavk
