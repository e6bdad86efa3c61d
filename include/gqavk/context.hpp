// gqavk::Context: the Vulkan instance, the chosen device, its compute queue and capability record.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gqavk/detail.hpp"
#include "gqavk/device_info.hpp"
#include "gqavk/export.h"

namespace gqavk {

struct ContextOptions {
  // Which device: "" takes GQAVK_DEVICE from the environment, else the best device that can run
  // work (discrete > integrated > virtual > CPU). A number picks by index, other text by name
  // substring; so chosen, a device that cannot run work (DeviceInfo::can_run) still builds
  // pipelines.
  std::string device;
  // Enables the Khronos validation layer when it is installed.
  bool validation = false;
  // Receives each validation message; when empty, messages are written to stderr.
  std::function<void(std::string_view)> on_validation_message;
  // Asks the driver to keep each pipeline's compiled figures
  // (VK_KHR_pipeline_executable_properties: registers, spills, occupancy) for in-tree tools;
  // ignored where the device lacks the extension (DeviceInfo::pipeline_statistics).
  bool pipeline_statistics = false;
};

// Lists the Vulkan devices gqavk can use (API 1.2 or newer with a compute queue), including those
// that can only build pipelines (DeviceInfo::can_run false).
GQAVK_API std::vector<DeviceInfo> list_devices();

// Owns the Vulkan objects of one device. Move-only; everything created from a Context (caches,
// plans) borrows it and must be destroyed before it.
class GQAVK_API Context {
 public:
  // Creates a context on the chosen device; throws gqavk::Error (no_device, unsupported) on
  // failure.
  explicit Context(const ContextOptions& options = {});
  ~Context();
  Context(Context&&) noexcept;
  Context& operator=(Context&&) noexcept;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // The capability record of the chosen device.
  const DeviceInfo& device() const;
  // Number of validation messages received so far (0 when validation is off).
  uint32_t validation_message_count() const;

 private:
  friend struct detail::Access;  // the runtime's door to Impl (runtime/impl_access.hpp)
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gqavk
