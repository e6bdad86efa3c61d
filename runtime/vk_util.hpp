// Small helpers for Vulkan calls: result names and the check that turns failures into gqavk::Error.
#pragma once

#include <vulkan/vulkan.h>

#include <string>

#include "gqavk/error.hpp"

namespace gqavk {

// "VK_ERROR_OUT_OF_DEVICE_MEMORY" for a VkResult.
const char* vk_result_name(VkResult r) noexcept;

// Throws gqavk::Error naming `what` and the result when r is not VK_SUCCESS.
void vk_check(VkResult r, const char* what);

// Throws gqavk::Error(invalid_argument, message) when `ok` is false.
inline void require(bool ok, ErrorCode code, const std::string& message) {
  if (!ok) throw Error(code, message);
}

}  // namespace gqavk
