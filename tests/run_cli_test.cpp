// Tests of the gqavk-run sample: runs the real binary on .npy files in a temp dir, checks the exit
// status and the message, and compares O.npy with the float64 reference.

#include <gtest/gtest.h>
#include <stdlib.h>    // mkdtemp
#include <sys/wait.h>  // WIFEXITED, WEXITSTATUS

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "gqavk/half.hpp"
#include "kv_codec.hpp"
#include "npy.hpp"
#include "reference.hpp"
#include "test_support.hpp"

#ifndef GQAVK_RUN_PATH
#error "GQAVK_RUN_PATH must name the gqavk-run executable"
#endif

namespace gqavk::test {
namespace {

namespace fs = std::filesystem;

// Tolerances on the largest |O - reference| over all outputs (K, V in [-1, 1), Q in [-2, 2), so
// outputs are O(1)).
// f32 KV: the kernel does the reference's maths in f32 (online softmax, f32 accumulation over at
// most 700 keys here); lavapipe measures about 1e-7, and 1e-4 leaves room for other summation
// orders, split merging and a GPU's less exact exp() while still catching any indexing mistake.
constexpr double kTolF32 = 1e-4;
// f16 KV: the reference is given the same f16-rounded K and V the cache holds, so storage rounding
// cancels (lavapipe widens exactly and measures about 1e-7 here too). The looser bound, a few f16
// ulps of an O(1) value (2^-11 each), is for a device that does arithmetic on the f16 values at
// reduced precision.
constexpr double kTolF16 = 2e-3;

std::string shape_text(const std::vector<size_t>& shape) {
  std::string out = "(";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + (shape.size() == 1 ? ",)" : ")");
}

// Writes an .npy v1.0 file by hand: the header dict is padded with spaces and a newline so the
// data starts at a multiple of 64 bytes, as NumPy does.
void write_raw_npy(const std::string& path, const std::string& dict, const std::string& data,
                   const std::string& magic = std::string("\x93NUMPY", 6)) {
  std::string header = dict;
  const size_t total = (10 + header.size() + 1 + 63) / 64 * 64;
  header.append(total - 10 - header.size() - 1, ' ');
  header += '\n';
  std::string bytes = magic;
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  bytes += header + data;
  std::ofstream(path, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string dict_for(const std::string& descr, const std::vector<size_t>& shape,
                     bool fortran = false) {
  return "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") +
         ", 'shape': " + shape_text(shape) + ", }";
}

template <typename T>
std::string bytes_of(const std::vector<T>& values) {
  std::string out(values.size() * sizeof(T), '\0');
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// Writes values as an '<f2' file; returns the values as the file holds them (rounded to f16).
std::vector<float> save_f16(const std::string& path, const std::vector<size_t>& shape,
                            const std::vector<float>& values) {
  std::vector<uint16_t> halves(values.size());
  floats_to_halves(values, halves);
  write_raw_npy(path, dict_for("<f2", shape), bytes_of(halves));
  std::vector<float> rounded(values.size());
  halves_to_floats(halves, rounded);
  return rounded;
}

std::vector<float> rounded_to_f16(std::vector<float> values) {
  for (float& x : values) x = half_to_float(float_to_half(x));
  return values;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Single-quotes an argument for /bin/sh.
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (const char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

struct Result {
  int code = -1;  // exit status; -1 when the process died from a signal
  std::string out;
  std::string err;
};

class RunCli : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "gqavk_run_cli_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr) << "cannot create a temp dir from " << tmpl;
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Runs gqavk-run with `args`, capturing stdout and stderr. A hang ends after 120 s as exit 124.
  Result run(const std::vector<std::string>& args) const {
    std::string cmd;
    if (fs::exists("/usr/bin/timeout")) cmd = "/usr/bin/timeout -k 5 120 ";
    cmd += shell_quote(GQAVK_RUN_PATH);
    // Appended piece by piece: GCC 12 gives a false -Wrestrict for "literal" + std::string&&.
    for (const std::string& a : args) {
      cmd += ' ';
      cmd += shell_quote(a);
    }
    cmd += " >";
    cmd += shell_quote(path("stdout.txt"));
    cmd += " 2>";
    cmd += shell_quote(path("stderr.txt"));
    const int status = std::system(cmd.c_str());
    Result r;
    if (status != -1 && WIFEXITED(status)) r.code = WEXITSTATUS(status);
    r.out = read_text(path("stdout.txt"));
    r.err = read_text(path("stderr.txt"));
    return r;
  }

  // The four required flags on Q.npy, K.npy, V.npy and O.npy in the temp dir, then `extra`.
  std::vector<std::string> args(const std::vector<std::string>& extra = {}) const {
    std::vector<std::string> a = {"--q", path("Q.npy"), "--k",   path("K.npy"),
                                  "--v", path("V.npy"), "--out", path("O.npy")};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  // Writes valid f32 Q [B, H, Lq, D] and K, V [B, G, Lk, D].
  void write_inputs(size_t b, size_t h, size_t lq, size_t g, size_t lk, size_t d) const {
    npy::save_f32(path("Q.npy"), {b, h, lq, d}, random_values(b * h * lq * d, 3, -2, 2));
    npy::save_f32(path("K.npy"), {b, g, lk, d}, random_values(b * g * lk * d, 1));
    npy::save_f32(path("V.npy"), {b, g, lk, d}, random_values(b * g * lk * d, 2));
  }

  // Expects a failure with `code`, a message on stderr holding each of `parts`, and no O.npy.
  void expect_failure(const Result& r, int code, const std::vector<std::string>& parts) const {
    EXPECT_EQ(r.code, code) << "stderr: " << r.err;
    EXPECT_EQ(r.err.rfind("gqavk-run: ", 0), 0u) << "stderr: " << r.err;
    for (const std::string& part : parts) {
      EXPECT_NE(r.err.find(part), std::string::npos) << "want '" << part << "' in: " << r.err;
    }
    EXPECT_FALSE(fs::exists(path("O.npy"))) << "O.npy was written by a failed run";
  }

  // A bad command line: exit 2 with the message and the usage text.
  void expect_usage_error(const std::vector<std::string>& argv, const std::string& phrase) const {
    SCOPED_TRACE("args ending in " + (argv.empty() ? std::string("(none)") : argv.back()));
    const Result r = run(argv);
    expect_failure(r, 2, {phrase, "usage: gqavk-run"});
  }

  fs::path dir_;
};

// --- successful runs, compared with the reference ---

struct Case {
  const char* name;
  uint32_t batch, q_heads, kv_heads, kv_len, head_dim;
  bool f16_files;              // Q, K and V are written as '<f2'
  const char* kv_dtype_flag;   // --kv-dtype value, or nullptr for the default
  std::optional<float> scale;  // --scale value
};

class RunCliDecode : public RunCli, public ::testing::WithParamInterface<Case> {};

TEST_P(RunCliDecode, MatchesReference) {
  const Case& c = GetParam();
  const size_t b = c.batch, h = c.q_heads, g = c.kv_heads, lk = c.kv_len, d = c.head_dim;
  std::vector<float> q = random_values(b * h * d, 3, -2, 2);
  std::vector<float> k = random_values(b * g * lk * d, 1);
  std::vector<float> v = random_values(b * g * lk * d, 2);
  if (c.f16_files) {
    q = save_f16(path("Q.npy"), {b, h, 1, d}, q);
    k = save_f16(path("K.npy"), {b, g, lk, d}, k);
    v = save_f16(path("V.npy"), {b, g, lk, d}, v);
  } else {
    npy::save_f32(path("Q.npy"), {b, h, 1, d}, q);
    npy::save_f32(path("K.npy"), {b, g, lk, d}, k);
    npy::save_f32(path("V.npy"), {b, g, lk, d}, v);
  }
  std::vector<std::string> extra;
  if (c.kv_dtype_flag) extra = {"--kv-dtype", c.kv_dtype_flag};
  if (c.scale) {
    std::ostringstream text;
    text.precision(9);
    text << *c.scale;
    extra.insert(extra.end(), {"--scale", text.str()});
  }
  const bool kv_f16 = c.kv_dtype_flag ? std::string(c.kv_dtype_flag) == "f16" : c.f16_files;
  if (kv_f16) {  // the reference sees what the cache stores
    k = rounded_to_f16(k);
    v = rounded_to_f16(v);
  }

  const Result r = run(args(extra));
  ASSERT_EQ(r.code, 0) << "stderr: " << r.err;
  const std::string summary = "B=" + std::to_string(b) + " H=" + std::to_string(h) +
                              " G=" + std::to_string(g) + " Lq=1 Lk=" + std::to_string(lk) +
                              " Dk=" + std::to_string(d) + " Dv=" + std::to_string(d) +
                              " kv=" + (kv_f16 ? "f16" : "f32");
  EXPECT_NE(r.out.find(summary), std::string::npos) << "want '" << summary << "' in: " << r.out;
  EXPECT_NE(r.out.find("gpu="), std::string::npos) << r.out;

  const npy::Array o = npy::load(path("O.npy"));
  ASSERT_EQ(o.shape, (std::vector<size_t>{b, h, 1, d}));
  EXPECT_EQ(o.dtype, npy::Dtype::f32);
  const std::vector<uint32_t> lengths(b, c.kv_len);
  const double scale = c.scale ? double{*c.scale} : 1.0 / std::sqrt(double(d));
  const std::vector<double> want =
      ref::decode(q, k, v, lengths, c.batch, c.q_heads, c.kv_heads, c.head_dim, c.kv_len, scale);
  ASSERT_EQ(o.data.size(), want.size());
  double max_err = 0;
  for (size_t i = 0; i < want.size(); ++i)
    max_err = std::max(max_err, std::abs(o.data[i] - want[i]));
  EXPECT_LT(max_err, kv_f16 ? kTolF16 : kTolF32);
  std::printf("%s  max |error| %.3g\n", r.out.c_str(), max_err);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, RunCliDecode,
    // Mostly D = 64 with 4 query heads per KV head, so that lavapipe JIT-compiles few kernel
    // variants (seconds each on a cold shader cache); decode_test covers shapes in depth.
    ::testing::Values(Case{"Mha", 1, 4, 4, 37, 64, false, nullptr, std::nullopt},
                      Case{"Gqa", 1, 8, 2, 50, 64, false, nullptr, std::nullopt},
                      Case{"Mqa", 1, 4, 1, 33, 64, false, nullptr, std::nullopt},
                      Case{"Batch2", 2, 8, 2, 41, 64, false, nullptr, std::nullopt},
                      Case{"LongSplitK", 1, 8, 2, 700, 64, false, nullptr, std::nullopt},
                      Case{"F16Files", 2, 8, 2, 29, 64, true, nullptr, std::nullopt},
                      Case{"F16FilesKvF32", 1, 8, 2, 29, 64, true, "f32", std::nullopt},
                      Case{"KvF16OnF32FilesD128", 1, 8, 2, 45, 128, false, "f16", std::nullopt},
                      Case{"Scale", 1, 8, 2, 50, 64, false, nullptr, 0.3f}),
    [](const ::testing::TestParamInfo<Case>& p) { return std::string(p.param.name); });

// Prefill (Lq > 1) and the model options, for prefill and decode, against ref::attention.
struct AttnCase {
  const char* name;
  uint32_t batch, q_heads, kv_heads, q_len, kv_len, dk, dv;
  bool causal;
  uint32_t window;
  float softcap;             // 0: none
  std::vector<float> sinks;  // empty: none
};

class RunCliAttention : public RunCli, public ::testing::WithParamInterface<AttnCase> {};

TEST_P(RunCliAttention, MatchesReference) {
  const AttnCase& c = GetParam();
  const size_t b = c.batch, h = c.q_heads, g = c.kv_heads, lq = c.q_len, lk = c.kv_len;
  const std::vector<float> q = random_values(b * h * lq * c.dk, 3, -2, 2);
  const std::vector<float> k = random_values(b * g * lk * c.dk, 1);
  const std::vector<float> v = random_values(b * g * lk * c.dv, 2);
  npy::save_f32(path("Q.npy"), {b, h, lq, c.dk}, q);
  npy::save_f32(path("K.npy"), {b, g, lk, c.dk}, k);
  npy::save_f32(path("V.npy"), {b, g, lk, c.dv}, v);
  std::vector<std::string> extra;
  if (c.causal) extra.push_back("--causal");
  if (c.window) extra.insert(extra.end(), {"--window", std::to_string(c.window)});
  if (c.softcap > 0) extra.insert(extra.end(), {"--softcap", std::to_string(c.softcap)});
  if (!c.sinks.empty()) {
    npy::save_f32(path("S.npy"), {h}, c.sinks);
    extra.insert(extra.end(), {"--sinks", path("S.npy")});
  }
  const Result r = run(args(extra));
  ASSERT_EQ(r.code, 0) << "stderr: " << r.err;
  EXPECT_NE(r.out.find(lq == 1 ? "decode" : "prefill"), std::string::npos) << r.out;

  const npy::Array o = npy::load(path("O.npy"));
  ASSERT_EQ(o.shape, (std::vector<size_t>{b, h, lq, c.dv}));
  ref::Options opt;
  opt.causal = c.causal;
  opt.window = c.window;
  opt.softcap = c.softcap;
  opt.sinks = c.sinks;
  double max_err = 0;
  for (size_t s = 0; s < b; ++s) {
    const std::vector<double> want =
        ref::attention(std::span(q).subspan(s * h * lq * c.dk, h * lq * c.dk),
                       k.data() + s * g * lk * c.dk, v.data() + s * g * lk * c.dv, c.q_heads,
                       c.kv_heads, c.q_len, c.kv_len, c.dk, c.dv, c.kv_len, opt);
    const size_t at = s * h * lq * c.dv;
    max_err =
        std::max(max_err, ref::max_abs_diff(std::span(o.data).subspan(at, want.size()), want));
  }
  EXPECT_LT(max_err, kTolF32);
  std::printf("%s  max |error| %.3g\n", r.out.c_str(), max_err);
}

INSTANTIATE_TEST_SUITE_P(
    Options, RunCliAttention,
    ::testing::Values(AttnCase{"CausalSquare", 2, 8, 2, 40, 40, 64, 64, true, 0, 0, {}},
                      AttnCase{"CausalChunk", 1, 8, 2, 9, 70, 64, 64, true, 0, 0, {}},
                      AttnCase{"CrossAttention", 1, 4, 4, 13, 29, 64, 64, false, 0, 0, {}},
                      AttnCase{"WindowSoftcapSinks",
                               1,
                               4,
                               2,
                               33,
                               50,
                               64,
                               64,
                               true,
                               7,
                               5.0f,
                               {0.5f, -1.0f, 3.0f, 8.0f}},
                      AttnCase{"DecodeWindowSoftcapSinks",
                               2,
                               4,
                               2,
                               1,
                               90,
                               64,
                               64,
                               false,
                               16,
                               2.0f,
                               {0.5f, -1.0f, 3.0f, 8.0f}},
                      AttnCase{"DecodeDk192Dv128", 1, 4, 2, 1, 33, 192, 128, false, 0, 0, {}},
                      AttnCase{"PrefillDk192Dv128", 1, 4, 2, 17, 33, 192, 128, true, 0, 0, {}}),
    [](const ::testing::TestParamInfo<AttnCase>& p) { return std::string(p.param.name); });

TEST_F(RunCli, FlagsWithEqualsAndDeviceIndex) {
  write_inputs(1, 8, 1, 2, 20, 64);
  const Result r = run({"--q=" + path("Q.npy"), "--k=" + path("K.npy"), "--v=" + path("V.npy"),
                        "--out=" + path("O.npy"), "--device=0", "--scale=0.125"});
  ASSERT_EQ(r.code, 0) << "stderr: " << r.err;
  EXPECT_EQ(npy::load(path("O.npy")).shape, (std::vector<size_t>{1, 8, 1, 64}));
}

// The cache defaults to f16 only when both K and V files are float16.
TEST_F(RunCli, MixedKvFileDtypesDefaultToF32) {
  write_inputs(1, 8, 1, 2, 20, 64);
  save_f16(path("K.npy"), {1, 2, 20, 64}, random_values(2 * 20 * 64, 1));
  const Result r = run(args());
  ASSERT_EQ(r.code, 0) << "stderr: " << r.err;
  EXPECT_NE(r.out.find(" kv=f32 "), std::string::npos) << r.out;
}

TEST_F(RunCli, HelpPrintsUsageAndExitsZero) {
  const Result r = run({"--help"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("usage: gqavk-run --q Q.npy --k K.npy --v V.npy --out O.npy"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("--kv-dtype"), std::string::npos) << r.out;
}

// --- malformed .npy files: exit 1, naming the file and the problem ---

TEST_F(RunCli, BadMagic) {
  write_inputs(1, 4, 1, 2, 20, 64);
  write_raw_npy(path("Q.npy"), dict_for("<f4", {1, 4, 1, 64}), std::string(256 * 4, '\0'),
                "NOTNPY");
  expect_failure(run(args()), 1, {"Q.npy", "bad magic"});
}

TEST_F(RunCli, BadHeader) {
  write_inputs(1, 4, 1, 2, 20, 64);
  write_raw_npy(path("K.npy"), "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 20, 64)",
                std::string(1 * 2 * 20 * 64 * 4, '\0'));
  expect_failure(run(args()), 1, {"K.npy", "malformed header"});
}

TEST_F(RunCli, WrongDtype) {
  write_inputs(1, 4, 1, 2, 20, 64);
  write_raw_npy(path("K.npy"), dict_for("<f8", {1, 2, 20, 64}),
                std::string(1 * 2 * 20 * 64 * 8, '\0'));
  expect_failure(run(args()), 1, {"K.npy", "dtype '<f8' is not supported"});
}

TEST_F(RunCli, FortranOrder) {
  write_inputs(1, 4, 1, 2, 20, 64);
  write_raw_npy(path("V.npy"), dict_for("<f4", {1, 2, 20, 64}, true),
                bytes_of(random_values(1 * 2 * 20 * 64, 2)));
  expect_failure(run(args()), 1, {"V.npy", "fortran_order True is not supported"});
}

TEST_F(RunCli, TruncatedData) {
  write_inputs(1, 4, 1, 2, 20, 64);
  write_raw_npy(path("V.npy"), dict_for("<f4", {1, 2, 20, 64}),
                bytes_of(random_values(1 * 2 * 20 * 64 - 1, 2)));
  expect_failure(run(args()), 1, {"V.npy", "truncated data"});
}

TEST_F(RunCli, MissingFile) {
  write_inputs(1, 4, 1, 2, 20, 64);
  fs::remove(path("K.npy"));
  expect_failure(run(args()), 1, {"K.npy", "cannot open"});
}

// --- shapes that disagree: exit 1, naming the file(s) and the problem ---

TEST_F(RunCli, QRankNotFour) {
  write_inputs(1, 4, 1, 2, 20, 64);
  npy::save_f32(path("Q.npy"), {1, 4, 64}, random_values(256, 3));
  expect_failure(run(args()), 1, {"Q.npy has shape (1, 4, 64)", "expected rank 4"});
}

TEST_F(RunCli, KvRankNotFour) {
  write_inputs(1, 4, 1, 2, 20, 64);
  npy::save_f32(path("V.npy"), {2, 20, 64}, random_values(2 * 20 * 64, 2));
  expect_failure(run(args()), 1, {"V.npy has shape (2, 20, 64)", "expected rank 4"});
}

TEST_F(RunCli, KvShapesDiffer) {
  write_inputs(1, 8, 1, 8, 10, 128);
  npy::save_f32(path("V.npy"), {1, 8, 11, 128}, random_values(8 * 11 * 128, 2));
  expect_failure(run(args()), 1,
                 {"K.npy has shape (1, 8, 10, 128) but ",
                  "V.npy has (1, 8, 11, 128) (expected equal B, G and Lk"});
}

TEST_F(RunCli, BatchMismatch) {
  write_inputs(1, 4, 1, 2, 20, 64);
  npy::save_f32(path("Q.npy"), {2, 4, 1, 64}, random_values(2 * 4 * 64, 3));
  expect_failure(run(args()), 1, {"Q.npy has shape (2, 4, 1, 64)", "K.npy", "batch B differs"});
}

TEST_F(RunCli, HeadDimMismatch) {
  write_inputs(1, 4, 1, 2, 20, 64);
  npy::save_f32(path("Q.npy"), {1, 4, 1, 128}, random_values(4 * 128, 3));
  expect_failure(run(args()), 1, {"Q.npy", "K.npy", "head dim Dk differs: 128 vs 64"});
}

TEST_F(RunCli, HeadsNotMultipleOfKvHeads) {
  write_inputs(1, 6, 1, 4, 20, 64);
  expect_failure(run(args()), 1, {"Q.npy", "K.npy", "H = 6", "G = 4", "H % G == 0"});
}

TEST_F(RunCli, UnsupportedHeadDim) {
  write_inputs(1, 4, 1, 2, 20, 32);
  expect_failure(run(args()), 1, {"K.npy", "V.npy", "head_dim 32 is not supported"});
}

TEST_F(RunCli, ZeroKeys) {
  write_inputs(1, 4, 1, 2, 0, 64);
  expect_failure(run(args()), 1, {"K.npy has key length Lk = 0"});
}

TEST_F(RunCli, ZeroKvHeads) {
  write_inputs(1, 4, 1, 0, 20, 64);
  expect_failure(run(args()), 1, {"K.npy has KV heads G = 0"});
}

TEST_F(RunCli, CausalNeedsLqAtMostLk) {
  write_inputs(1, 4, 30, 2, 20, 64);
  expect_failure(run(args({"--causal"})), 1, {"Q.npy", "Lq = 30", "Lk = 20", "Lq <= Lk"});
}

TEST_F(RunCli, WindowNeedsCausalForPrefill) {
  write_inputs(1, 4, 3, 2, 20, 64);
  expect_failure(run(args({"--window", "8"})), 1, {"--window 8 needs --causal"});
}

TEST_F(RunCli, SinksOfWrongShape) {
  write_inputs(1, 4, 3, 2, 20, 64);
  npy::save_f32(path("S.npy"), {3}, std::vector<float>{0.f, 1.f, 2.f});
  expect_failure(run(args({"--causal", "--sinks", path("S.npy")})), 1,
                 {"S.npy has shape (3,)", "expected float32 [H] = (4,)"});
}

TEST_F(RunCli, VShapeDiffersBeyondHeadDim) {
  write_inputs(1, 4, 1, 2, 20, 64);
  npy::save_f32(path("V.npy"), {1, 2, 21, 64}, random_values(2 * 21 * 64, 2));
  expect_failure(
      run(args()), 1,
      {"K.npy has shape (1, 2, 20, 64)", "(1, 2, 21, 64)", "only the head dim may differ"});
}

TEST_F(RunCli, UnsupportedDkDvPair) {
  write_inputs(1, 4, 1, 2, 20, 64);
  npy::save_f32(path("V.npy"), {1, 2, 20, 128}, random_values(2 * 20 * 128, 2));
  expect_failure(run(args()), 1, {"Dk 64 and Dv 128 are not a supported pair"});
}

// --- bad values and environment: exit 1 ---

TEST_F(RunCli, NonFiniteQuery) {
  write_inputs(1, 4, 1, 2, 20, 64);
  std::vector<float> q = random_values(4 * 64, 3);
  q[5] = std::nanf("");
  npy::save_f32(path("Q.npy"), {1, 4, 1, 64}, q);
  expect_failure(run(args()), 1, {"Q.npy", "flat index 5", "expected finite values"});
}

TEST_F(RunCli, F16OverflowInKv) {
  write_inputs(1, 4, 1, 2, 20, 64);
  std::vector<float> k = random_values(2 * 20 * 64, 1);
  k[7] = 1e5f;
  npy::save_f32(path("K.npy"), {1, 2, 20, 64}, k);
  expect_failure(run(args({"--kv-dtype", "f16"})), 1, {"K.npy", "overflows the f16 KV cache"});
}

TEST_F(RunCli, UnknownDevice) {
  write_inputs(1, 4, 1, 2, 20, 64);
  expect_failure(run(args({"--device", "no-such-gpu-xyz"})), 1, {"no-such-gpu-xyz"});
}

TEST_F(RunCli, UnwritableOutput) {
  write_inputs(1, 8, 1, 2, 20, 64);
  const std::string out = path("no_such_dir/O.npy");
  const Result r =
      run({"--q", path("Q.npy"), "--k", path("K.npy"), "--v", path("V.npy"), "--out", out});
  expect_failure(r, 1, {out, "cannot open for writing"});
}

// --- bad command lines: exit 2 with usage ---

TEST_F(RunCli, NoArguments) {
  expect_usage_error({}, "missing required option(s): --q, --k, --v, --out");
}

TEST_F(RunCli, MissingRequiredFlag) {
  expect_usage_error({"--q", "Q.npy", "--k", "K.npy", "--v", "V.npy"},
                     "missing required option(s): --out");
}

TEST_F(RunCli, UnknownFlag) {
  expect_usage_error(args({"--frobnicate"}), "unknown option '--frobnicate'");
}

TEST_F(RunCli, MissingValueAtEnd) {
  expect_usage_error(args({"--scale"}), "--scale needs a value");
}

TEST_F(RunCli, MissingValueBeforeFlag) {
  expect_usage_error({"--q", "--k", "K.npy", "--v", "V.npy", "--out", "O.npy"},
                     "--q needs a value");
}

TEST_F(RunCli, BadWindowSoftcapAndCausalFlags) {
  write_inputs(1, 4, 1, 2, 20, 64);
  expect_usage_error(args({"--window", "0"}), "--window '0' is not valid");
  expect_usage_error(args({"--window", "-3"}), "--window '-3' is not valid");
  expect_usage_error(args({"--softcap", "0"}), "--softcap 0 is not valid");
  expect_usage_error(args({"--softcap", "abc"}), "--softcap 'abc' is not a number");
  expect_usage_error(args({"--causal=1"}), "--causal takes no value");
  expect_usage_error(args({"--causal", "--causal"}), "--causal is given more than once");
}

TEST_F(RunCli, EmptyValue) {
  expect_usage_error(args({"--kv-dtype="}), "--kv-dtype needs a value");
}

TEST_F(RunCli, DuplicateFlag) {
  expect_usage_error(args({"--q", "Q2.npy"}), "--q is given more than once");
}

TEST_F(RunCli, PositionalArgument) {
  expect_usage_error(args({"extra.npy"}), "unexpected argument 'extra.npy'");
}

TEST_F(RunCli, ScaleNotANumber) {
  for (const char* s : {"abc", "0.5x", "", "0x1p3"}) {
    expect_usage_error(args({std::string("--scale=") + s}),
                       *s ? "is not a number" : "--scale needs a value");
  }
}

TEST_F(RunCli, ScaleNotPositiveOrNotFinite) {
  for (const char* s : {"0", "-1", "-0", "inf", "nan", "1e39", "1e-50"}) {
    expect_usage_error(args({"--scale", s}), "is not valid (expected a finite number > 0");
  }
}

TEST_F(RunCli, BadKvDtype) {
  expect_usage_error(args({"--kv-dtype", "q5"}),
                     "--kv-dtype 'q5' is not valid (expected f32, f16, bf16, q8 or q4)");
}

// --kv-dtype q8 and q4 store f32 K/V quantised: the output matches the reference on the values the
// cache holds (each row encoded and decoded on the host as the writer does) to f32 rounding.
TEST_F(RunCli, NarrowKvDtypes) {
  const size_t b = 1, h = 4, g = 2, lk = 50, d = 64;
  const std::vector<float> q = random_values(b * h * d, 3, -2, 2);
  const std::vector<float> k = random_values(b * g * lk * d, 1);
  const std::vector<float> v = random_values(b * g * lk * d, 2);
  npy::save_f32(path("Q.npy"), {b, h, 1, d}, q);
  npy::save_f32(path("K.npy"), {b, g, lk, d}, k);
  npy::save_f32(path("V.npy"), {b, g, lk, d}, v);
  for (DType dtype : {DType::q8, DType::q4}) {
    SCOPED_TRACE(to_string(dtype));
    fs::remove(path("O.npy"));
    const Result r = run(args({"--kv-dtype", to_string(dtype)}));
    ASSERT_EQ(r.code, 0) << "stderr: " << r.err;
    EXPECT_NE(r.out.find(std::string("kv=") + to_string(dtype)), std::string::npos) << r.out;
    std::vector<float> ks = k, vs = v;
    store_and_read_rows(dtype, ks, d);
    store_and_read_rows(dtype, vs, d);
    const std::vector<uint32_t> lengths = {lk};
    const std::vector<double> want = ref::decode(q, ks, vs, lengths, b, h, g, d, lk, 0.125);
    const npy::Array o = npy::load(path("O.npy"));
    EXPECT_LT(ref::max_abs_diff(o.data, want), kTolF32);
  }
}

}  // namespace
}  // namespace gqavk::test
