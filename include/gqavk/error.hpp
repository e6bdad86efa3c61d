// gqavk::Error: the one exception type the C++ API throws.
#pragma once

#include <stdexcept>
#include <string>

#include "gqavk/export.h"

namespace gqavk {

// What kind of failure an Error reports.
enum class ErrorCode {
  invalid_argument,  // a bad value from the caller (shape, length, dtype, option)
  unsupported,       // the device lacks a feature or limit the request needs
  no_device,         // no Vulkan instance or no usable device
  out_of_memory,     // host or device memory allocation failed
  vulkan,            // a Vulkan call failed for another reason
  out_of_blocks,     // the KV pool has too few free blocks for the request (nothing changed)
  device_lost,       // the device was lost: the Context and what was made from it are unusable
};

// Thrown by every gqavk call; the message names the bad value and what was expected.
class GQAVK_API Error : public std::runtime_error {
 public:
  // Creates an error of kind `code`; `vk_result` is the VkResult when a Vulkan call failed, else 0.
  Error(ErrorCode code, const std::string& message, int vk_result = 0)
      : std::runtime_error(message), code_(code), vk_result_(vk_result) {}
  // The kind of failure.
  ErrorCode code() const noexcept { return code_; }
  // The VkResult of the failing Vulkan call, or 0 (VK_SUCCESS) when none was involved.
  int vk_result() const noexcept { return vk_result_; }

 private:
  ErrorCode code_;
  int vk_result_;
};

// The name of an error code, e.g. "invalid_argument".
GQAVK_API const char* to_string(ErrorCode code) noexcept;

}  // namespace gqavk
