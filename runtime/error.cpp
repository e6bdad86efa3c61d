#include "gqavk/error.hpp"

#include <string>

#include "gqavk/types.hpp"
#include "vk_util.hpp"

namespace gqavk {

const char* to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::invalid_argument:
      return "invalid_argument";
    case ErrorCode::unsupported:
      return "unsupported";
    case ErrorCode::no_device:
      return "no_device";
    case ErrorCode::out_of_memory:
      return "out_of_memory";
    case ErrorCode::vulkan:
      return "vulkan";
    case ErrorCode::out_of_blocks:
      return "out_of_blocks";
    case ErrorCode::device_lost:
      return "device_lost";
  }
  return "unknown";
}

DType parse_dtype(std::string_view text) {
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::q8, DType::q4}) {
    if (text == to_string(t)) return t;
  }
  throw Error(
      ErrorCode::invalid_argument,
      "dtype '" + std::string(text) + "' is not supported (expected f32, f16, bf16, q8 or q4)");
}

const char* vk_result_name(VkResult r) noexcept {
  switch (r) {
#define GQAVK_CASE(x) \
  case x:             \
    return #x;
    GQAVK_CASE(VK_SUCCESS)
    GQAVK_CASE(VK_NOT_READY)
    GQAVK_CASE(VK_TIMEOUT)
    GQAVK_CASE(VK_INCOMPLETE)
    GQAVK_CASE(VK_ERROR_OUT_OF_HOST_MEMORY)
    GQAVK_CASE(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    GQAVK_CASE(VK_ERROR_INITIALIZATION_FAILED)
    GQAVK_CASE(VK_ERROR_DEVICE_LOST)
    GQAVK_CASE(VK_ERROR_MEMORY_MAP_FAILED)
    GQAVK_CASE(VK_ERROR_LAYER_NOT_PRESENT)
    GQAVK_CASE(VK_ERROR_EXTENSION_NOT_PRESENT)
    GQAVK_CASE(VK_ERROR_FEATURE_NOT_PRESENT)
    GQAVK_CASE(VK_ERROR_INCOMPATIBLE_DRIVER)
    GQAVK_CASE(VK_ERROR_TOO_MANY_OBJECTS)
    GQAVK_CASE(VK_ERROR_FORMAT_NOT_SUPPORTED)
    GQAVK_CASE(VK_ERROR_FRAGMENTED_POOL)
    GQAVK_CASE(VK_ERROR_OUT_OF_POOL_MEMORY)
    GQAVK_CASE(VK_ERROR_UNKNOWN)
#undef GQAVK_CASE
    default:
      return "VK_RESULT_UNKNOWN";
  }
}

void vk_check(VkResult r, const char* what) {
  if (r == VK_SUCCESS) return;
  const ErrorCode code = (r == VK_ERROR_OUT_OF_HOST_MEMORY || r == VK_ERROR_OUT_OF_DEVICE_MEMORY)
                             ? ErrorCode::out_of_memory
                         : r == VK_ERROR_DEVICE_LOST ? ErrorCode::device_lost
                                                     : ErrorCode::vulkan;
  throw Error(code,
              std::string(what) + " failed: " + vk_result_name(r) + " (" +
                  std::to_string(static_cast<int>(r)) + ")",
              static_cast<int>(r));
}

}  // namespace gqavk
