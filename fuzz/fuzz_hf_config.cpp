// libFuzzer target: gqavk::ModelDesc::from_hf_config (runtime/model.cpp) on arbitrary text, then
// validate() and cache_desc() of what it accepts. Bad input must throw gqavk::Error; anything
// else escaping (a JSON library exception, std::out_of_range, ...) is a bug libFuzzer reports.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "gqavk/error.hpp"
#include "gqavk/kv_cache.hpp"
#include "gqavk/model.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  gqavk::ModelDesc model;
  try {
    model = gqavk::ModelDesc::from_hf_config(text, "fuzz");
  } catch (const gqavk::Error& e) {
    if (e.code() != gqavk::ErrorCode::invalid_argument) std::abort();
    return 0;
  }
  model.validate();  // from_hf_config validated it: this must not throw
  try {
    const gqavk::KvCacheDesc desc = model.cache_desc(2, 1024, 64);
    if (desc.layers != model.layers.size()) std::abort();
  } catch (const gqavk::Error& e) {
    if (e.code() != gqavk::ErrorCode::invalid_argument) std::abort();
  }
  return 0;
}
