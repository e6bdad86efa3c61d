#include "test_support.hpp"

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

}  // namespace gqavk::test
