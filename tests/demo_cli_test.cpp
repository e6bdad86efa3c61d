// Tests of gqavk-demo's command line: --help, and bad options refused with exit 2 and a message
// naming the option (none of these reaches the device).
#include <string>
#include <vector>

#include "test_support.hpp"

#ifndef GQAVK_DEMO_PATH
#error "GQAVK_DEMO_PATH must name the gqavk-demo executable"
#endif

namespace gqavk::test {
namespace {

CommandResult demo(std::vector<std::string> args) {
  args.insert(args.begin(), GQAVK_DEMO_PATH);
  return run_command(args);
}

TEST(DemoCli, HelpNamesEveryOption) {
  const CommandResult r = demo({"--help"});
  EXPECT_EQ(r.code, 0) << r.err;
  for (const char* option : {"--model", "--layers", "--steps", "--prompt", "--batch",
                             "--block-tokens", "--device", "--kv-dtype", "--help"}) {
    EXPECT_NE(r.out.find(option), std::string::npos) << "--help does not describe " << option;
  }
}

TEST(DemoCli, BadOptionsExit2) {
  const std::pair<std::vector<std::string>, const char*> cases[] = {
      {{"--frobnicate"}, "unknown option '--frobnicate'"},
      {{"extra"}, "unexpected argument 'extra'"},
      {{"--model"}, "--model needs a value"},
      {{"--steps", "--batch", "2"}, "--steps needs a value (got the option '--batch')"},
      {{"--layers", "0"}, "--layers '0' is not valid (expected an integer from 1 to 1024)"},
      {{"--batch", "x"}, "--batch 'x' is not valid"},
      {{"--block-tokens", "100"}, "--block-tokens '100' is not a power of two"},
      {{"--kv-dtype", "q5"}, "--kv-dtype 'q5' is not valid (expected f32, f16, bf16, q8 or q4)"},
      {{"--device", "0", "--device", "1"}, "--device is given more than once"},
      {{"--prompt", "1048576", "--steps", "1"}, "--prompt plus --steps is past 1048576 tokens"},
      {{"--layers", "99"}, "--layers 99 is more than Llama-3-8B's 32 layers"},
  };
  for (const auto& [args, phrase] : cases) {
    const CommandResult r = demo(args);
    EXPECT_EQ(r.code, 2) << phrase << ": " << r.err;
    EXPECT_EQ(r.err.rfind("gqavk-demo: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(phrase), std::string::npos) << "want '" << phrase << "' in: " << r.err;
    EXPECT_NE(r.err.find("usage: gqavk-demo"), std::string::npos) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
}

}  // namespace
}  // namespace gqavk::test
