// Devices that cannot run work: RADV's "Null hardware" device (ctest sets RADV_FORCE_FAMILY=navi21
// for this binary) compiles pipelines but has no memory. gqavk lists it, never picks it by
// default, builds pipelines on it when it is named, and refuses buffers and work on it with a
// message naming it; the samples do the same. Without such a device the tests skip.
#include <stdlib.h>  // mkdtemp

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "decode_pipelines.hpp"
#include "npy.hpp"
#include "pipeline_statistics.hpp"
#include "test_support.hpp"

#ifndef GQAVK_RUN_PATH
#error "GQAVK_RUN_PATH must name the gqavk-run executable"
#endif
#ifndef GQAVK_DEMO_PATH
#error "GQAVK_DEMO_PATH must name the gqavk-demo executable"
#endif

namespace gqavk::test {
namespace {

// The first device that cannot run work, if any.
std::optional<DeviceInfo> null_device() {
  for (const DeviceInfo& d : list_devices()) {
    if (!d.can_run) return d;
  }
  return std::nullopt;
}

// The merge pass of a split plan: quick to compile anywhere.
PipelineDesc merge_desc() {
  DecodeTuning split;
  split.max_splits = 2;
  return *decode_pipeline_descs(DecodeShape{}, split).merge;
}

class NullDevice : public ::testing::Test {
 protected:
  void SetUp() override {
    device_ = null_device();
    if (!device_) {
      GTEST_SKIP() << "no device that cannot run work (run with RADV_FORCE_FAMILY=navi21 and "
                      "Mesa's RADV installed)";
    }
  }

  // A context on the null device, chosen by its index.
  Context make_context(bool statistics = false) const {
    ContextOptions o;
    o.device = std::to_string(device_->index);
    o.validation = true;
    o.on_validation_message = [](std::string_view msg) {
      ADD_FAILURE() << "validation message: " << msg;
    };
    o.pipeline_statistics = statistics;
    return Context(o);
  }

  std::optional<DeviceInfo> device_;
};

TEST_F(NullDevice, ListedAsUnableToRun) {
  EXPECT_NE(device_->name.find("Null hardware"), std::string::npos) << device_->name;
  EXPECT_TRUE(device_->heaps.empty());
  EXPECT_TRUE(device_->pipeline_statistics);
  bool runnable = false;
  for (const DeviceInfo& d : list_devices()) runnable |= d.can_run;
  EXPECT_TRUE(runnable) << "lavapipe should be listed as able to run work";
}

TEST_F(NullDevice, NeverTheDefault) {
  ScopedEnv env("GQAVK_DEVICE", nullptr);
  Context c;
  EXPECT_TRUE(c.device().can_run) << c.device().name;
  EXPECT_NE(c.device().name, device_->name);
}

// Named explicitly it makes a context (no subgroup probe: the reported size is taken) that
// builds pipelines and tunes, but refuses buffers and work.
TEST_F(NullDevice, BuildsPipelinesButRefusesWork) {
  Context c = make_context();
  const DeviceInfo& d = c.device();
  EXPECT_FALSE(d.can_run);
  EXPECT_EQ(d.subgroup_lanes, d.subgroup_size);
  EXPECT_FALSE(d.bug_partial_subgroups);

  const std::vector<std::string> parts = {"'" + d.name + "'", "cannot run work",
                                          "only build pipelines"};
  const auto refused = [&](const std::function<void()>& fn, const std::string& what) {
    std::initializer_list<std::string> all = {what, parts[0], parts[1], parts[2]};
    return throws_error(fn, ErrorCode::unsupported, all);
  };
  EXPECT_TRUE(refused([&] { KvCache cache(c, {1, 2, 64, 32, DType::f16, 16}); }, "KV pool"));
  EXPECT_TRUE(refused([&] { impl_of(c).submit([](VkCommandBuffer) {}); }, "submitting work"));
  EXPECT_TRUE(refused([&] { impl_of(c).make_buffer(BufferKind::staging, 64, "staging buffer"); },
                      "staging buffer"));

  DecodeShape shape;
  shape.q_heads = 14;
  shape.kv_heads = 2;
  shape.head_dim = 64;
  shape.capacity_tokens = 1024;
  shape.pool_bytes = 2ull * 2 * 1024 * 64 * 2;
  const DecodeTuning t = choose_decode_tuning(d, shape, 4);
  const DecodePipelineDescs descs = decode_pipeline_descs(shape, t);
  ASSERT_TRUE(descs.merge.has_value());
  EXPECT_NO_THROW(impl_of(c).make_pipeline(descs.decode));
  // Made without pipeline_statistics: the figures are not there to read.
  const ComputePipeline merge = impl_of(c).make_pipeline(*descs.merge);
  EXPECT_TRUE(throws_error([&] { pipeline_statistics(impl_of(c), merge); }, ErrorCode::unsupported,
                           {"ContextOptions::pipeline_statistics", d.name}));
}

// ACO's figures under its own names, for the merge pass (quick to compile).
TEST_F(NullDevice, PipelineStatistics) {
  Context c = make_context(true);
  const ComputePipeline pipe = impl_of(c).make_pipeline(merge_desc());
  const std::vector<PipelineExecutable> execs = pipeline_statistics(impl_of(c), pipe);
  ASSERT_EQ(execs.size(), 1u);
  EXPECT_GT(execs[0].subgroup_size, 0u);
  for (const char* name : {"VGPRs", "SGPRs", "Spilled VGPRs", "Spilled SGPRs", "Code size",
                           "Subgroups per SIMD", "Instructions"}) {
    const std::optional<double> v = execs[0].find(name);
    ASSERT_TRUE(v.has_value()) << "no statistic named '" << name << "'";
    EXPECT_GE(*v, 0) << name;
  }
  EXPECT_GT(*execs[0].find("VGPRs"), 0);
  EXPECT_GT(*execs[0].find("Code size"), 0);
  EXPECT_EQ(*execs[0].find("Spilled VGPRs"), 0);
}

// --- the samples: the default device runs, the null device named gives a clear error, exit 1 ---

class NullDeviceSamples : public NullDevice {
 protected:
  void SetUp() override {
    NullDevice::SetUp();
    if (IsSkipped()) return;
    std::string tmpl = (std::filesystem::temp_directory_path() / "gqavk_null_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    const auto values = [](size_t n, uint32_t seed) { return random_values(n, seed); };
    npy::save_f32(path("Q.npy"), {1, 4, 1, 64}, values(4 * 64, 1));
    npy::save_f32(path("K.npy"), {1, 2, 10, 64}, values(2 * 10 * 64, 2));
    npy::save_f32(path("V.npy"), {1, 2, 10, 64}, values(2 * 10 * 64, 3));
  }
  void TearDown() override {
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  std::string path(const char* name) const { return (dir_ / name).string(); }
  std::vector<std::string> run_args() const {
    return {GQAVK_RUN_PATH, "--q",         path("Q.npy"), "--k",        path("K.npy"),
            "--v",          path("V.npy"), "--out",       path("O.npy")};
  }
  void expect_refused(const CommandResult& r, const char* program) const {
    EXPECT_EQ(r.code, 1) << r.err;
    EXPECT_EQ(r.err.rfind(std::string(program) + ": ", 0), 0u) << r.err;
    for (const std::string& part :
         {device_->name, std::string("cannot run work"), std::string("only build pipelines")}) {
      EXPECT_NE(r.err.find(part), std::string::npos) << "want '" << part << "' in: " << r.err;
    }
  }

  std::filesystem::path dir_;
};

TEST_F(NullDeviceSamples, RunPicksARunnableDevice) {
  const CommandResult r = run_command(run_args(), {"GQAVK_DEVICE="});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ((r.out + r.err).find("Null hardware"), std::string::npos) << r.out << r.err;
  EXPECT_TRUE(std::filesystem::exists(path("O.npy")));
}

// One layer, one step: lavapipe compiles Llama-3-8B's decode kernel once (seconds, then cached).
TEST_F(NullDeviceSamples, DemoPicksARunnableDevice) {
  const CommandResult r = run_command(
      {GQAVK_DEMO_PATH, "--layers", "1", "--steps", "1", "--prompt", "16"}, {"GQAVK_DEVICE="});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(r.out.find("device:     Null hardware"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("PASS"), std::string::npos) << r.out;
}

TEST_F(NullDeviceSamples, RunOnTheNullDeviceFails) {
  std::vector<std::string> args = run_args();
  args.insert(args.end(), {"--device", "Null hardware"});
  expect_refused(run_command(args), "gqavk-run");
  EXPECT_FALSE(std::filesystem::exists(path("O.npy")));
}

TEST_F(NullDeviceSamples, DemoOnTheNullDeviceFails) {
  expect_refused(run_command({GQAVK_DEMO_PATH, "--layers", "1", "--steps", "1", "--prompt", "16",
                              "--device", "Null hardware"}),
                 "gqavk-demo");
}

// Only RADV loaded: no device can run work, so the default choice fails with no_device and says
// why rather than taking the null device.
TEST_F(NullDeviceSamples, NoRunnableDeviceAtAll) {
  std::string radv;
  for (const char* dir : {"/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"}) {
    std::error_code ec;
    for (const auto& f : std::filesystem::directory_iterator(dir, ec)) {
      if (f.path().filename().string().rfind("radeon_icd", 0) == 0) radv = f.path().string();
    }
  }
  if (radv.empty()) GTEST_SKIP() << "no RADV driver manifest found";
  const CommandResult r = run_command(
      run_args(), {"GQAVK_DEVICE=", "VK_ICD_FILENAMES=" + radv, "VK_DRIVER_FILES=" + radv});
  EXPECT_EQ(r.code, 1) << r.err;
  for (const std::string& part : {std::string("no Vulkan device here can run work"), device_->name,
                                  std::string("can only build pipelines")}) {
    EXPECT_NE(r.err.find(part), std::string::npos) << "want '" << part << "' in: " << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(path("O.npy")));
}

}  // namespace
}  // namespace gqavk::test
