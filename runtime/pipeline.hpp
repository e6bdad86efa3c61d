// Compute pipelines built from embedded SPIR-V with specialization constants, and the one
// descriptor set each use of a pipeline binds.
#pragma once

#include <vulkan/vulkan.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "tuning.hpp"

namespace gqavk {

// The descriptor type binding 0 (the KV pool, or its address) has for each load path.
inline VkDescriptorType kv_pool_descriptor_type(LoadPath path) {
  switch (path) {
    case LoadPath::texel:
      return VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER;
    case LoadPath::image:
      return VK_DESCRIPTOR_TYPE_STORAGE_TEXEL_BUFFER;
    case LoadPath::storage:
    case LoadPath::address:
      break;
  }
  return VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
}

struct PipelineDesc {
  std::string shader;                      // embedded variant name
  std::vector<VkDescriptorType> bindings;  // binding i has type bindings[i]
  uint32_t push_constant_bytes = 0;
  std::vector<uint32_t> spec_constants;  // constant_id i has value spec_constants[i]
  uint32_t required_subgroup_size = 0;   // 0: none; else VK_EXT_subgroup_size_control
  bool full_subgroups = false;           // VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS
};

// A compute pipeline with its layouts. Move-only; destroyed before the device that made it.
class ComputePipeline {
 public:
  ComputePipeline() = default;
  // Builds `desc`; capture_statistics asks the driver to keep the compiled figures
  // (VK_KHR_pipeline_executable_properties, which the device must have enabled).
  ComputePipeline(VkDevice device, VkPipelineCache cache, const PipelineDesc& desc,
                  bool capture_statistics = false);
  ~ComputePipeline();
  ComputePipeline(ComputePipeline&& o) noexcept;
  ComputePipeline& operator=(ComputePipeline&& o) noexcept;
  ComputePipeline(const ComputePipeline&) = delete;
  ComputePipeline& operator=(const ComputePipeline&) = delete;

  VkPipeline handle() const { return pipeline_; }
  VkPipelineLayout layout() const { return layout_; }
  VkDescriptorSetLayout set_layout() const { return set_layout_; }
  const std::vector<VkDescriptorType>& bindings() const { return bindings_; }

 private:
  void reset() noexcept;
  VkDevice device_ = VK_NULL_HANDLE;
  VkDescriptorSetLayout set_layout_ = VK_NULL_HANDLE;
  VkPipelineLayout layout_ = VK_NULL_HANDLE;
  VkPipeline pipeline_ = VK_NULL_HANDLE;
  std::vector<VkDescriptorType> bindings_;
};

// Records a dispatch of `pipeline` with descriptor set `set` and push constants `push` (may be
// empty) over groups_x * groups_y * groups_z workgroups.
void record_dispatch(VkCommandBuffer cmd, const ComputePipeline& pipeline, VkDescriptorSet set,
                     std::span<const std::byte> push, uint32_t groups_x, uint32_t groups_y = 1,
                     uint32_t groups_z = 1);

// The bytes of a push-constant struct.
template <typename T>
std::span<const std::byte> push_bytes(const T& value) {
  return std::as_bytes(std::span<const T, 1>(&value, 1));
}

// One binding's resource: a buffer range, or a texel view.
struct Binding {
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceSize offset = 0;
  VkDeviceSize range = VK_WHOLE_SIZE;
  VkBufferView texel_view = VK_NULL_HANDLE;
};

// A descriptor pool holding one set for one pipeline, written once.
class DescriptorSet {
 public:
  DescriptorSet() = default;
  DescriptorSet(VkDevice device, const ComputePipeline& pipeline,
                const std::vector<Binding>& resources);
  ~DescriptorSet();
  DescriptorSet(DescriptorSet&& o) noexcept;
  DescriptorSet& operator=(DescriptorSet&& o) noexcept;
  DescriptorSet(const DescriptorSet&) = delete;
  DescriptorSet& operator=(const DescriptorSet&) = delete;
  VkDescriptorSet handle() const { return set_; }

 private:
  VkDevice device_ = VK_NULL_HANDLE;
  VkDescriptorPool pool_ = VK_NULL_HANDLE;
  VkDescriptorSet set_ = VK_NULL_HANDLE;
};

}  // namespace gqavk
