// Command-line helpers shared by the samples: a flag's value, given as "--flag=value" or as the
// next argument.
#pragma once

#include <string>
#include <string_view>

namespace gqavk::tools {

// The value of flag `name` at argv[i] (`eq` is the position of '=' in `arg`, or npos); advances i
// past a value taken from the next argument. Throws UsageError when there is none.
template <typename UsageError>
std::string_view flag_value(std::string_view arg, std::string_view name, size_t eq, int& i,
                            int argc, char** argv) {
  if (eq != std::string_view::npos) return arg.substr(eq + 1);
  if (i + 1 < argc && std::string_view(argv[i + 1]).substr(0, 2) != "--") return argv[++i];
  throw UsageError(std::string(name) + " needs a value");
}

}  // namespace gqavk::tools
