// AMD's compiler, without the GPU: builds gqavk's GPU-tier decode and prefill pipelines for the
// tests' model shapes on RADV's null hardware (ctest runs this binary once per GPU family with
// RADV_FORCE_FAMILY set) and checks what ACO reports through VK_KHR_pipeline_executable_properties:
// no spilled registers, no scratch memory, and enough subgroups per SIMD to hide memory latency.
// Every pipeline's figures are printed as a table row, and at the end a Markdown summary for the
// README. Without RADV_FORCE_FAMILY, or without a null device, the tests skip.
//
//   RADV_FORCE_FAMILY=navi21 build/bin/gqavk_gpu_compile_tests

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "context_impl.hpp"
#include "decode_pipelines.hpp"
#include "gqavk/gqavk.hpp"
#include "kv_append.hpp"
#include "model_shapes.hpp"
#include "pipeline_statistics.hpp"
#include "prefill_pipelines.hpp"
#include "tuning.hpp"

namespace gqavk::test {
namespace {

using tools::ModelShape;

// Splits a split plan is given (the kernel's code depends only on split or not).
constexpr uint32_t kSplits = 8;

std::string family() {
  const char* env = std::getenv("RADV_FORCE_FAMILY");
  return env ? env : "";
}

// GFX9 (Vega) has half the waves per SIMD of RDNA for the same registers per lane (10 wave64
// slots and 256 VGPRs per lane, against RDNA's 16 and 1024 for wave32).
bool is_gfx9(const std::string& f) {
  static const char* const kGfx9[] = {"vega10", "vega12", "vega20",   "raven",
                                      "raven2", "renoir", "arcturus", "aldebaran"};
  return std::find(std::begin(kGfx9), std::end(kGfx9), f) != std::end(kGfx9);
}

// Subgroups per SIMD a decode pipeline needs: enough waves in flight to cover memory latency.
uint32_t min_occupancy(const std::string& f, uint32_t head_dim) {
  const bool wide = head_dim > 128;
  if (is_gfx9(f)) return wide ? 2 : 3;
  return wide ? 4 : 8;
}

// Subgroups per SIMD a prefill pipeline needs: its tiles reuse each K/V load many times, so fewer
// waves hide the latency, and its shared-memory tile bounds the waves of a CU.
uint32_t min_prefill_occupancy(const std::string& f) { return is_gfx9(f) ? 2 : 4; }

// One pipeline's figures, as ACO names them.
struct Row {
  std::string model, shape, mode, role;
  uint32_t requested_subgroup = 0, subgroup = 0;
  double vgprs = 0, sgprs = 0, spilled_vgprs = 0, spilled_sgprs = 0, scratch = 0, occupancy = 0,
         code_size = 0, instructions = 0;
  uint32_t min_occupancy = 0;
  bool ok = false;
};

std::vector<Row>& rows() {
  static std::vector<Row> r;
  return r;
}

void print_row(const Row& r) {
  static bool header = false;
  if (!header) {
    header = true;
    std::printf("%-8s %-10s %-19s %-6s %-15s %4s %5s %5s %7s %7s %8s %5s %7s %6s\n", "family",
                "model", "shape", "mode", "role", "wave", "VGPRs", "SGPRs", "spill-V", "spill-S",
                "scratch", "occ", "code", "instrs");
  }
  std::printf("%-8s %-10s %-19s %-6s %-15s %4u %5.0f %5.0f %7.0f %7.0f %8.0f %5.0f %7.0f %6.0f%s\n",
              family().c_str(), r.model.c_str(), r.shape.c_str(), r.mode.c_str(), r.role.c_str(),
              r.subgroup, r.vgprs, r.sgprs, r.spilled_vgprs, r.spilled_sgprs, r.scratch,
              r.occupancy, r.code_size, r.instructions, r.ok ? "" : "  << FAIL");
  std::fflush(stdout);
}

// The values of a column over `rs`, worst first: "96 / 64" for wave32 then wave64.
std::string cells(const std::vector<const Row*>& rs, double Row::*field, bool largest_is_worst) {
  std::map<uint32_t, double> by_wave;
  for (const Row* r : rs) {
    auto [it, fresh] = by_wave.emplace(r->subgroup, r->*field);
    if (!fresh) {
      it->second =
          largest_is_worst ? std::max(it->second, r->*field) : std::min(it->second, r->*field);
    }
  }
  std::string out;
  for (const auto& [wave, value] : by_wave) {
    out += (out.empty() ? "" : " / ") + std::to_string(static_cast<long long>(value));
  }
  return out;
}

// At exit: the decode pipelines' figures as a Markdown table, one row per model shape, the worst
// of split and direct in each cell, one value per subgroup size; then the prefill pipelines'.
class Summary : public ::testing::Environment {
 public:
  void TearDown() override {
    size_t failed = 0;
    for (const Row& r : rows()) failed += r.ok ? 0 : 1;
    bool printed = print_table("decode", "decode pipelines, worst of split and direct");
    printed = print_table("prefill", "prefill pipelines (GPU tier)") || printed;
    printed =
        print_table("decode-address", "decode pipelines reading the pool by device address") ||
        printed;
    printed =
        print_table("prefill-address", "prefill pipelines reading the pool by device address") ||
        printed;
    printed = print_table("append", "append pipelines, f32 and f16 sources") || printed;
    printed =
        print_table("append-address", "append pipelines writing by device address") || printed;
    if (!printed) return;
    std::printf(
        "\n%s: %zu pipelines, %zu over the limits (no spills, no scratch, subgroups per "
        "SIMD >= %u for decode with D <= 128, >= %u above, >= %u for prefill)\n",
        family().c_str(), rows().size(), failed, min_occupancy(family(), 128),
        min_occupancy(family(), 256), min_prefill_occupancy(family()));
  }

 private:
  // The rows of `role` as a Markdown table; false when there are none.
  static bool print_table(const std::string& role, const char* title) {
    std::vector<std::string> order;
    std::map<std::string, std::vector<const Row*>> by_shape;
    for (const Row& r : rows()) {
      if (r.role != role) continue;
      const std::string key = r.model + " " + r.shape;
      if (!by_shape.count(key)) order.push_back(key);
      by_shape[key].push_back(&r);
    }
    if (order.empty()) return false;
    std::printf("\nSummary for the README (%s, %s; values per subgroup size):\n\n",
                family().c_str(), title);
    std::printf(
        "| family | model shape | wave | VGPRs | SGPRs | spilled VGPRs | spilled SGPRs | "
        "scratch bytes | subgroups per SIMD |\n");
    std::printf("|---|---|---|---:|---:|---:|---:|---:|---:|\n");
    for (const std::string& key : order) {
      const std::vector<const Row*>& rs = by_shape[key];
      std::map<uint32_t, bool> waves;
      for (const Row* r : rs) waves[r->subgroup] = true;
      std::string wave;
      for (const auto& [w, _] : waves) wave += (wave.empty() ? "" : " / ") + std::to_string(w);
      std::printf(
          "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", family().c_str(), key.c_str(),
          wave.c_str(), cells(rs, &Row::vgprs, true).c_str(), cells(rs, &Row::sgprs, true).c_str(),
          cells(rs, &Row::spilled_vgprs, true).c_str(),
          cells(rs, &Row::spilled_sgprs, true).c_str(), cells(rs, &Row::scratch, true).c_str(),
          cells(rs, &Row::occupancy, false).c_str());
    }
    return true;
  }
};

const ::testing::Environment* const kSummary = ::testing::AddGlobalTestEnvironment(new Summary);

class GpuCompile : public ::testing::TestWithParam<ModelShape> {
 protected:
  static void SetUpTestSuite() {
    if (family().empty()) return;
    // Figures from a real compile, never from Mesa's disk cache (read when devices are listed).
    setenv("MESA_SHADER_CACHE_DISABLE", "true", 1);
    for (const DeviceInfo& d : list_devices()) {
      if (!d.can_run && d.pipeline_statistics && d.name.find("Null hardware") == 0) {
        ContextOptions o;
        o.device = std::to_string(d.index);
        o.pipeline_statistics = true;
        context_ = std::make_unique<Context>(o);
        break;
      }
    }
  }
  static void TearDownTestSuite() { context_.reset(); }

  void SetUp() override {
    if (family().empty()) {
      GTEST_SKIP() << "RADV_FORCE_FAMILY is not set (ctest sets vega10, navi21 or gfx1100)";
    }
    if (!context_) {
      GTEST_SKIP() << "no RADV null hardware device for RADV_FORCE_FAMILY=" << family()
                   << " (is mesa-vulkan-drivers' RADV installed?)";
    }
  }

  static std::unique_ptr<Context> context_;
};

std::unique_ptr<Context> GpuCompile::context_;

// The subgroup sizes a GPU-tier pipeline may require on `d`: the powers of two from min to max.
std::vector<uint32_t> subgroup_sizes(const DeviceInfo& d) {
  std::vector<uint32_t> out;
  if (!d.subgroup_size_control) return {d.subgroup_size};
  for (uint32_t n = d.min_subgroup_size; n && n <= d.max_subgroup_size; n *= 2) out.push_back(n);
  return out;
}

// Builds `desc`, reads ACO's figures, checks them and records a row.
void check_pipeline(Context& ctx, const ModelShape& m, const char* mode, const std::string& role,
                    uint32_t requested, const PipelineDesc& desc) {
  const ComputePipeline pipe = impl_of(ctx).make_pipeline(desc);
  const std::vector<PipelineExecutable> execs = pipeline_statistics(impl_of(ctx), pipe);
  ASSERT_EQ(execs.size(), 1u) << desc.shader << ": a compute pipeline has one executable";
  const PipelineExecutable& e = execs[0];
  const auto need = [&](std::initializer_list<const char*> names) -> double {
    for (const char* n : names) {
      if (const std::optional<double> v = e.find(n)) return *v;
    }
    ADD_FAILURE() << desc.shader << ": the driver reports no '" << *names.begin() << "'";
    return -1;
  };
  Row r;
  r.model = m.model;
  r.shape = tools::shape_name(m);
  r.mode = mode;
  r.role = role;
  r.requested_subgroup = requested;
  r.subgroup = e.subgroup_size;
  r.vgprs = need({"VGPRs"});
  r.sgprs = need({"SGPRs"});
  r.spilled_vgprs = need({"Spilled VGPRs"});
  r.spilled_sgprs = need({"Spilled SGPRs"});
  r.scratch = need({"Scratch size", "PrivMem VGPRs"});
  r.occupancy = need({"Subgroups per SIMD"});
  r.code_size = need({"Code size"});
  r.instructions = need({"Instructions"});
  r.min_occupancy = role.rfind("prefill", 0) == 0 ? min_prefill_occupancy(family())
                                                  : min_occupancy(family(), m.head_dim);
  std::string problems;
  if (r.spilled_vgprs != 0 || r.spilled_sgprs != 0) {
    problems += " spills " + std::to_string(static_cast<long>(r.spilled_vgprs)) + " VGPRs and " +
                std::to_string(static_cast<long>(r.spilled_sgprs)) + " SGPRs;";
  }
  if (r.scratch != 0) {
    problems += " uses " + std::to_string(static_cast<long>(r.scratch)) + " bytes of scratch;";
  }
  if (r.occupancy < r.min_occupancy) {
    problems += " runs " + std::to_string(static_cast<long>(r.occupancy)) +
                " subgroups per SIMD (expected at least " + std::to_string(r.min_occupancy) +
                " to hide memory latency);";
  }
  r.ok = problems.empty();
  rows().push_back(r);
  print_row(r);
  EXPECT_TRUE(problems.empty()) << family() << " " << m.model << " " << r.shape << " " << mode
                                << " " << role << " (" << desc.shader << ", wave" << r.subgroup
                                << "):" << problems;
}

// Every pipeline a plan of `shape` builds, split and direct, at every subgroup size the device
// offers, with the GPU-tier kernel. The model options (window, softcap, sinks) are push constants
// and a binding, the same pipeline with or without them: the kernels checked here carry their code.
// `load`: a forced load path (GQAVK_KV_LOAD), its rows' role "decode-<load>"; the merge pass,
// which never reads the pool, is checked only on the chosen path.
void check_all_pipelines(Context& ctx, const ModelShape& m, const DecodeShape& shape,
                         const std::string& load = "") {
  const std::string role = load.empty() ? "decode" : "decode-" + load;
  for (const auto& [mode, splits] : {std::pair{"split", kSplits}, std::pair{"direct", 1u}}) {
    for (uint32_t size : subgroup_sizes(ctx.device())) {
      TuningOverrides o;
      o.tier = "gpu";
      o.subgroup_size = size;
      o.load_path = load;
      DecodeTuning t;
      try {
        t = choose_decode_tuning(ctx.device(), shape, splits, o);
        check_decode_limits(ctx.device(), shape, t);
      } catch (const Error& e) {
        ADD_FAILURE() << family() << " " << tools::shape_name(m) << " " << mode << " wave" << size
                      << ": " << e.what();
        continue;
      }
      EXPECT_EQ(t.max_splits > 1, splits > 1);
      const DecodePipelineDescs descs = decode_pipeline_descs(shape, t);
      check_pipeline(ctx, m, mode, role, size, descs.decode);
      if (descs.merge && load.empty()) check_pipeline(ctx, m, mode, "merge", size, *descs.merge);
    }
  }
}

TEST_P(GpuCompile, NoSpillsAndEnoughOccupancy) {
  check_all_pipelines(*context_, GetParam(), tools::decode_shape(GetParam(), context_->device()));
}

// The same kernels reading the pool through its device address (kv_load.glsl's path 3, for pools
// past a binding's range): 64-bit addresses per lane must keep the same limits.
TEST_P(GpuCompile, AddressPathNoSpillsAndEnoughOccupancy) {
  check_all_pipelines(*context_, GetParam(), tools::decode_shape(GetParam(), context_->device()),
                      "address");
}

// The append kernel that writes new tokens into the cache in the shape's storage type (every type
// across the instantiations), from f32 and f16 sources, through a storage binding and through the
// pool's device address.
TEST_P(GpuCompile, AppendNoSpillsAndEnoughOccupancy) {
  const ModelShape& m = GetParam();
  for (DType src : {DType::f32, DType::f16}) {
    KvCacheDesc d{1, m.kv_heads, m.head_dim, m.capacity_tokens, m.dtype, 16, m.v_head_dim};
    if (d.v_head_dim == 0) d.v_head_dim = d.head_dim;
    const std::string mode = std::string("<") + to_string(src);
    for (bool by_address : {false, true}) {
      check_pipeline(*context_, m, mode.c_str(), by_address ? "append-address" : "append", 0,
                     append_pipeline_desc(d, 4, 3, src, by_address));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, GpuCompile, ::testing::ValuesIn(tools::model_shapes()),
                         [](const ::testing::TestParamInfo<ModelShape>& p) {
                           return p.param.model + "_" + to_string(p.param.dtype);
                         });

// The narrow storage types (bf16, q8, q4) at head dims 64, 96, 128 and 256: the same floors.
std::vector<ModelShape> narrow_type_shapes() {
  std::vector<ModelShape> out;
  for (DType dtype : {DType::bf16, DType::q8, DType::q4}) {
    for (ModelShape m :
         {ModelShape{"llama3_8b", 32, 8, 128}, ModelShape{"qwen2_0_5b", 14, 2, 64},
          ModelShape{"phi3_mini", 32, 32, 96}, ModelShape{"gemma2_9b", 16, 8, 256}}) {
      m.dtype = dtype;
      out.push_back(m);
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(NarrowTypes, GpuCompile, ::testing::ValuesIn(narrow_type_shapes()),
                         [](const ::testing::TestParamInfo<ModelShape>& p) {
                           return p.param.model + "_" + to_string(p.param.dtype);
                         });

// Dk 192 with Dv 128 ("dsv2_v128"): MLA models (DeepSeek-V2-Lite: 16 heads) in expanded form.
class GpuCompileValueDim128 : public GpuCompile {};

TEST_P(GpuCompileValueDim128, NoSpillsAndEnoughOccupancy) {
  const ModelShape& m = GetParam();
  DecodeShape shape = tools::decode_shape(m, context_->device());
  shape.v_head_dim = 128;
  shape.pool_bytes = shape.pool_bytes / (2 * m.head_dim) * (m.head_dim + 128);  // V rows of 128
  check_all_pipelines(*context_, m, shape);
}

INSTANTIATE_TEST_SUITE_P(Models, GpuCompileValueDim128,
                         ::testing::Values(ModelShape{"dsv2_v128", 16, 16, 192, DType::f16},
                                           ModelShape{"dsv2_v128", 16, 16, 192, DType::f32}),
                         [](const ::testing::TestParamInfo<ModelShape>& p) {
                           return p.param.model + "_" + to_string(p.param.dtype);
                         });

// The prefill shapes: the decode models' shapes, f16 and f32, and Dk=192 / Dv=128 (DeepSeek-V2's
// attention as MHA).
std::vector<ModelShape> prefill_shapes() {
  std::vector<ModelShape> out = tools::model_shapes();
  for (DType dtype : {DType::f16, DType::f32}) {
    ModelShape m{"deepseek_v2_lite", 16, 16, 192, dtype};
    m.v_head_dim = 128;
    out.push_back(m);
  }
  return out;
}

using PrefillGpuCompile = GpuCompile;

// The GPU-tier prefill pipeline the tuning picks for the shape, at every subgroup size the device
// offers; `load` as check_all_pipelines'.
void check_prefill_pipelines(Context& ctx, const ModelShape& m, const std::string& load = "") {
  const PrefillShape shape = tools::prefill_shape(m, ctx.device());
  for (uint32_t size : subgroup_sizes(ctx.device())) {
    TuningOverrides o;
    o.tier = "gpu";
    o.subgroup_size = size;
    o.load_path = load;
    PrefillTuning t;
    try {
      t = choose_prefill_tuning(ctx.device(), shape, o);
      check_prefill_limits(ctx.device(), shape, t);
    } catch (const Error& e) {
      ADD_FAILURE() << family() << " " << tools::shape_name(m) << " wave" << size << ": "
                    << e.what();
      continue;
    }
    check_pipeline(ctx, m, "tile", load.empty() ? "prefill" : "prefill-" + load, size,
                   prefill_pipeline_descs(shape, t).prefill);
  }
}

TEST_P(PrefillGpuCompile, NoSpillsAndEnoughOccupancy) {
  check_prefill_pipelines(*context_, GetParam());
}

TEST_P(PrefillGpuCompile, AddressPathNoSpillsAndEnoughOccupancy) {
  check_prefill_pipelines(*context_, GetParam(), "address");
}

INSTANTIATE_TEST_SUITE_P(Models, PrefillGpuCompile, ::testing::ValuesIn(prefill_shapes()),
                         [](const ::testing::TestParamInfo<ModelShape>& p) {
                           return p.param.model + "_" + to_string(p.param.dtype);
                         });
INSTANTIATE_TEST_SUITE_P(NarrowTypes, PrefillGpuCompile, ::testing::ValuesIn(narrow_type_shapes()),
                         [](const ::testing::TestParamInfo<ModelShape>& p) {
                           return p.param.model + "_" + to_string(p.param.dtype);
                         });

}  // namespace
}  // namespace gqavk::test
