#include "test_support.hpp"

#include <stdlib.h>    // mkdtemp
#include <sys/wait.h>  // WIFEXITED, WEXITSTATUS

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

namespace gqavk::test {

Context& context() {
  static std::unique_ptr<Context> ctx = [] {
    ContextOptions o;
    o.validation = true;
    o.on_validation_message = [](std::string_view msg) {
      ADD_FAILURE() << "validation message: " << msg;
    };
    return std::make_unique<Context>(o);
  }();
  return *ctx;
}

void GpuTest::SetUp() { messages_before_ = context().validation_message_count(); }

void GpuTest::TearDown() {
  EXPECT_EQ(context().validation_message_count(), messages_before_)
      << "the validation layer reported messages during this test";
}

std::vector<float> random_values(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<float> random_integers(size_t n, uint32_t seed, int lo, int hi) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(dist(rng));
  return v;
}

void round_to_f16(std::span<float> values) {
  for (float& x : values) x = half_to_float(float_to_half(x));
}

namespace {

std::vector<float> slice(const KvHost& kv, const std::vector<float>& src, uint32_t dim, uint32_t b,
                         uint32_t first, uint32_t n) {
  std::vector<float> out(size_t{kv.kv_heads} * n * dim);
  for (uint32_t g = 0; g < kv.kv_heads; ++g) {
    const float* from = src.data() + ((size_t{b} * kv.kv_heads + g) * kv.capacity + first) * dim;
    std::copy(from, from + size_t{n} * dim, out.begin() + size_t{g} * n * dim);
  }
  return out;
}

}  // namespace

std::vector<float> KvHost::slice_k(uint32_t b, uint32_t first, uint32_t n) const {
  return slice(*this, k, head_dim, b, first, n);
}

std::vector<float> KvHost::slice_v(uint32_t b, uint32_t first, uint32_t n) const {
  return slice(*this, v, v_head_dim, b, first, n);
}

KvHost random_kv(const KvCacheDesc& desc, uint32_t seed, float lo, float hi) {
  KvHost kv;
  kv.batch = desc.batch;
  kv.kv_heads = desc.kv_heads;
  kv.head_dim = desc.head_dim;
  kv.v_head_dim = desc.v_head_dim ? desc.v_head_dim : desc.head_dim;
  kv.capacity = desc.capacity_tokens;
  const size_t rows = size_t{desc.batch} * desc.kv_heads * desc.capacity_tokens;
  kv.k = random_values(rows * kv.head_dim, seed, lo, hi);
  kv.v = random_values(rows * kv.v_head_dim, seed + 1000, lo, hi);
  if (desc.dtype == DType::f16) {
    round_to_f16(kv.k);
    round_to_f16(kv.v);
  }
  return kv;
}

void write_tokens(KvCache& cache, const KvHost& kv, uint32_t b, uint32_t first, uint32_t n) {
  cache.write(b, first, n, kv.slice_k(b, first, n), kv.slice_v(b, first, n));
}

void write_all(KvCache& cache, const KvHost& kv, std::span<const uint32_t> lengths) {
  // In chunks of whole blocks, about 128 copy regions each: a write records a region per (block,
  // head, K or V), and the validation layer compares a command's regions pairwise, which took 30 s
  // for one 4097-token, 32-head sequence written at once.
  const uint32_t block = cache.desc().block_tokens;
  const uint32_t chunk = block * std::max(1u, 64 / kv.kv_heads);
  for (uint32_t b = 0; b < kv.batch; ++b) {
    const uint32_t n = lengths.empty() ? kv.capacity : lengths[b];
    for (uint32_t first = 0; first < n; first += chunk) {
      write_tokens(cache, kv, b, first, std::min(chunk, n - first));
    }
  }
}

::testing::AssertionResult all_close(std::span<const float> got, std::span<const double> want,
                                     uint32_t q_heads, uint32_t head_dim, double atol,
                                     double rtol) {
  if (got.size() != want.size()) {
    return ::testing::AssertionFailure()
           << "output has " << got.size() << " values, reference " << want.size();
  }
  size_t worst = 0, bad = 0;
  double worst_excess = -1;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(double{got[i]} - want[i]);
    const double tol = atol + rtol * std::abs(want[i]);
    // A NaN output compares false with everything: count it as bad explicitly.
    const bool ok = std::isfinite(got[i]) && err <= tol;
    const double excess = std::isfinite(err) ? err - tol : INFINITY;
    if (!ok) ++bad;
    if (excess > worst_excess) {
      worst_excess = excess;
      worst = i;
    }
  }
  const size_t row = worst / head_dim;
  std::ostringstream where;
  where << "(b " << row / q_heads << ", h " << row % q_heads << ", d " << worst % head_dim
        << "): got " << got[worst] << ", want " << want[worst] << ", |diff| "
        << std::abs(double{got[worst]} - want[worst]) << ", tolerance "
        << atol + rtol * std::abs(want[worst]);
  if (bad > 0) {
    return ::testing::AssertionFailure()
           << bad << " of " << got.size() << " values outside tolerance; worst at " << where.str();
  }
  return ::testing::AssertionSuccess() << "closest to the tolerance at " << where.str();
}

ScopedEnv::ScopedEnv(const char* name, const char* value) : name_(name) {
  if (const char* old = std::getenv(name)) old_ = old;
  if (value) {
    setenv(name, value, 1);
  } else {
    unsetenv(name);
  }
}

ScopedEnv::~ScopedEnv() {
  if (old_) {
    setenv(name_.c_str(), old_->c_str(), 1);
  } else {
    unsetenv(name_.c_str());
  }
}

namespace {

// Single-quotes an argument for /bin/sh.
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (const char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

// How long a command may run before it counts as hung: 120 s, or 600 s under AddressSanitizer,
// where the programs (gqavk-compare's sweep above all) run several times slower.
#ifdef GQAVK_TEST_ASAN
constexpr int kCommandLimitSeconds = 600;
#else
constexpr int kCommandLimitSeconds = 120;
#endif

CommandResult run_command(const std::vector<std::string>& argv,
                          const std::vector<std::string>& env) {
  namespace fs = std::filesystem;
  std::string tmpl = (fs::temp_directory_path() / "gqavk_command_XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("cannot create a temp dir from " + tmpl);
  const fs::path dir = tmpl;
  std::string cmd = "env";
  for (const std::string& e : env) {
    cmd += ' ';
    cmd += shell_quote(e);
  }
  if (fs::exists("/usr/bin/timeout"))
    cmd += " /usr/bin/timeout -k 5 " + std::to_string(kCommandLimitSeconds);
  for (const std::string& a : argv) {
    cmd += ' ';
    cmd += shell_quote(a);
  }
  cmd += " >";
  cmd += shell_quote((dir / "stdout").string());
  cmd += " 2>";
  cmd += shell_quote((dir / "stderr").string());
  const int status = std::system(cmd.c_str());
  CommandResult r;
  if (status != -1 && WIFEXITED(status)) r.code = WEXITSTATUS(status);
  r.out = read_file(dir / "stdout");
  r.err = read_file(dir / "stderr");
  std::error_code ec;
  fs::remove_all(dir, ec);
  return r;
}

::testing::AssertionResult throws_error(const std::function<void()>& fn, ErrorCode code,
                                        std::initializer_list<std::string> parts) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (e.code() != code) {
      return ::testing::AssertionFailure() << "threw gqavk::Error " << to_string(e.code())
                                           << ", expected " << to_string(code) << ": " << msg;
    }
    for (const std::string& p : parts) {
      if (msg.find(p) == std::string::npos) {
        return ::testing::AssertionFailure()
               << "the " << to_string(code) << " message does not name '" << p << "': " << msg;
      }
    }
    return ::testing::AssertionSuccess() << to_string(code) << ": " << msg;
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << "threw another exception: " << e.what();
  }
  return ::testing::AssertionFailure() << "did not throw (expected " << to_string(code) << ")";
}

}  // namespace gqavk::test
