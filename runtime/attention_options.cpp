#include "attention_options.hpp"

#include <cmath>
#include <cstdio>
#include <string>

#include "gqavk/error.hpp"

namespace gqavk {

namespace {

// A float as an error message shows it: "-1", "0.5", "nan", "inf".
std::string show(float x) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", static_cast<double>(x));
  return text;
}

}  // namespace

void check_attention_options(uint32_t q_heads, uint32_t kv_heads, std::optional<float> scale,
                             std::optional<uint32_t> window, std::optional<float> softcap,
                             std::span<const float> sinks) {
  const auto bad = [](const std::string& m) { throw Error(ErrorCode::invalid_argument, m); };
  if (q_heads == 0 || q_heads % kv_heads != 0) {
    bad("q_heads " + std::to_string(q_heads) + " is not a positive multiple of the cache's " +
        "kv_heads " + std::to_string(kv_heads) + " (expected H % G == 0)");
  }
  if (scale && !(std::isfinite(*scale) && *scale > 0)) {
    bad("scale " + show(*scale) + " is not valid (expected a finite value > 0)");
  }
  if (window && *window == 0) {
    bad("window 0 is not valid (expected a window of at least 1 key, or none)");
  }
  if (softcap && !(std::isfinite(*softcap) && *softcap > 0)) {
    bad("softcap " + show(*softcap) + " is not valid (expected a finite value > 0)");
  }
  if (!sinks.empty() && sinks.size() != q_heads) {
    bad("sinks has " + std::to_string(sinks.size()) + " values; expected one per query head (" +
        std::to_string(q_heads) + ") or none");
  }
  for (size_t h = 0; h < sinks.size(); ++h) {
    if (!std::isfinite(sinks[h])) {
      bad("sinks[" + std::to_string(h) + "] = " + show(sinks[h]) +
          " is not finite (expected a finite logit per query head)");
    }
  }
}

}  // namespace gqavk
