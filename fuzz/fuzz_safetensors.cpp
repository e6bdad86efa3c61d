// libFuzzer target: gqavk::safetensors::parse (samples/safetensors.cpp) on arbitrary bytes, then
// to_floats of every float tensor it accepts. Malformed input must throw std::runtime_error.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <stdexcept>

#include "safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gqavk::safetensors::File file;
  try {
    file = gqavk::safetensors::parse(std::span<const uint8_t>(data, size), "fuzz.safetensors");
  } catch (const std::runtime_error&) {
    return 0;
  }
  for (const gqavk::safetensors::Tensor& t : file.tensors) {
    uint64_t count = 1;
    for (const uint64_t d : t.shape) count *= d;
    // parse() promised each tensor's bytes match its dtype and shape.
    if (count * gqavk::safetensors::dtype_bytes(t.dtype) != t.data.size()) std::abort();
    if (t.dtype == "F32" || t.dtype == "F16" || t.dtype == "BF16") {
      if (gqavk::safetensors::to_floats(t).size() != count) std::abort();
    }
  }
  return 0;
}
