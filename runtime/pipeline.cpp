#include "pipeline.hpp"

#include <map>
#include <utility>

#include "fault.hpp"
#include "shader_registry.hpp"
#include "vk_util.hpp"

namespace gqavk {

std::span<const uint32_t> find_shader(std::string_view name) {
  for (const EmbeddedShader& s : embedded_shaders()) {
    if (name == s.name) return {s.words, s.word_count};
  }
  throw Error(ErrorCode::vulkan, "no embedded shader named '" + std::string(name) + "'");
}

ComputePipeline::ComputePipeline(VkDevice device, VkPipelineCache cache, const PipelineDesc& desc,
                                 bool capture_statistics)
    : device_(device), bindings_(desc.bindings) {
  try {
    std::vector<VkDescriptorSetLayoutBinding> b(desc.bindings.size());
    for (uint32_t i = 0; i < b.size(); ++i) {
      b[i] = {i, desc.bindings[i], 1, VK_SHADER_STAGE_COMPUTE_BIT, nullptr};
    }
    VkDescriptorSetLayoutCreateInfo set_info{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
    set_info.bindingCount = static_cast<uint32_t>(b.size());
    set_info.pBindings = b.data();
    vk_check(vkCreateDescriptorSetLayout(device, &set_info, nullptr, &set_layout_),
             "vkCreateDescriptorSetLayout");

    VkPushConstantRange push{VK_SHADER_STAGE_COMPUTE_BIT, 0, desc.push_constant_bytes};
    VkPipelineLayoutCreateInfo layout_info{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
    layout_info.setLayoutCount = 1;
    layout_info.pSetLayouts = &set_layout_;
    layout_info.pushConstantRangeCount = desc.push_constant_bytes ? 1 : 0;
    layout_info.pPushConstantRanges = &push;
    vk_check(vkCreatePipelineLayout(device, &layout_info, nullptr, &layout_),
             "vkCreatePipelineLayout");

    const std::span<const uint32_t> words = find_shader(desc.shader);
    VkShaderModuleCreateInfo module_info{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
    module_info.codeSize = words.size() * sizeof(uint32_t);
    module_info.pCode = words.data();
    VkShaderModule module;
    vk_check(vkCreateShaderModule(device, &module_info, nullptr, &module), "vkCreateShaderModule");

    std::vector<VkSpecializationMapEntry> entries(desc.spec_constants.size());
    for (uint32_t i = 0; i < entries.size(); ++i) {
      entries[i] = {i, i * static_cast<uint32_t>(sizeof(uint32_t)), sizeof(uint32_t)};
    }
    VkSpecializationInfo spec{};
    spec.mapEntryCount = static_cast<uint32_t>(entries.size());
    spec.pMapEntries = entries.data();
    spec.dataSize = desc.spec_constants.size() * sizeof(uint32_t);
    spec.pData = desc.spec_constants.data();

    VkPipelineShaderStageRequiredSubgroupSizeCreateInfo subgroup{
        VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_REQUIRED_SUBGROUP_SIZE_CREATE_INFO};
    subgroup.requiredSubgroupSize = desc.required_subgroup_size;

    VkComputePipelineCreateInfo info{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
    if (capture_statistics) info.flags = VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR;
    info.stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
    info.stage.pNext = desc.required_subgroup_size ? &subgroup : nullptr;
    info.stage.flags =
        desc.full_subgroups ? VK_PIPELINE_SHADER_STAGE_CREATE_REQUIRE_FULL_SUBGROUPS_BIT : 0;
    info.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
    info.stage.module = module;
    info.stage.pName = "main";
    info.stage.pSpecializationInfo = entries.empty() ? nullptr : &spec;
    info.layout = layout_;
    VkResult r = fault::hit(fault::Site::pipeline)
                     ? VK_ERROR_OUT_OF_DEVICE_MEMORY
                     : vkCreateComputePipelines(device, cache, 1, &info, nullptr, &pipeline_);
    vkDestroyShaderModule(device, module, nullptr);
    vk_check(r, ("vkCreateComputePipelines(" + desc.shader + ")").c_str());
  } catch (...) {
    reset();
    throw;
  }
}

void ComputePipeline::reset() noexcept {
  if (device_ == VK_NULL_HANDLE) return;
  if (pipeline_) vkDestroyPipeline(device_, pipeline_, nullptr);
  if (layout_) vkDestroyPipelineLayout(device_, layout_, nullptr);
  if (set_layout_) vkDestroyDescriptorSetLayout(device_, set_layout_, nullptr);
  pipeline_ = VK_NULL_HANDLE;
  layout_ = VK_NULL_HANDLE;
  set_layout_ = VK_NULL_HANDLE;
}

ComputePipeline::~ComputePipeline() { reset(); }

ComputePipeline::ComputePipeline(ComputePipeline&& o) noexcept
    : device_(std::exchange(o.device_, VK_NULL_HANDLE)),
      set_layout_(std::exchange(o.set_layout_, VK_NULL_HANDLE)),
      layout_(std::exchange(o.layout_, VK_NULL_HANDLE)),
      pipeline_(std::exchange(o.pipeline_, VK_NULL_HANDLE)),
      bindings_(std::move(o.bindings_)) {}

ComputePipeline& ComputePipeline::operator=(ComputePipeline&& o) noexcept {
  if (this != &o) {
    reset();
    device_ = std::exchange(o.device_, VK_NULL_HANDLE);
    set_layout_ = std::exchange(o.set_layout_, VK_NULL_HANDLE);
    layout_ = std::exchange(o.layout_, VK_NULL_HANDLE);
    pipeline_ = std::exchange(o.pipeline_, VK_NULL_HANDLE);
    bindings_ = std::move(o.bindings_);
  }
  return *this;
}

void record_dispatch(VkCommandBuffer cmd, const ComputePipeline& pipeline, VkDescriptorSet set,
                     std::span<const std::byte> push, uint32_t groups_x, uint32_t groups_y,
                     uint32_t groups_z) {
  vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.handle());
  vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline.layout(), 0, 1, &set, 0,
                          nullptr);
  if (!push.empty()) {
    vkCmdPushConstants(cmd, pipeline.layout(), VK_SHADER_STAGE_COMPUTE_BIT, 0,
                       static_cast<uint32_t>(push.size()), push.data());
  }
  vkCmdDispatch(cmd, groups_x, groups_y, groups_z);
}

DescriptorSet::DescriptorSet(VkDevice device, const ComputePipeline& pipeline,
                             const std::vector<Binding>& resources)
    : device_(device) {
  const auto& types = pipeline.bindings();
  require(types.size() == resources.size(), ErrorCode::vulkan,
          "descriptor set: " + std::to_string(resources.size()) + " resources for " +
              std::to_string(types.size()) + " bindings");
  std::map<VkDescriptorType, uint32_t> counts;
  for (VkDescriptorType t : types) ++counts[t];
  std::vector<VkDescriptorPoolSize> sizes;
  for (auto [t, n] : counts) sizes.push_back({t, n});
  VkDescriptorPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
  pool_info.maxSets = 1;
  pool_info.poolSizeCount = static_cast<uint32_t>(sizes.size());
  pool_info.pPoolSizes = sizes.data();
  vk_check(vkCreateDescriptorPool(device, &pool_info, nullptr, &pool_), "vkCreateDescriptorPool");

  VkDescriptorSetLayout layout = pipeline.set_layout();
  VkDescriptorSetAllocateInfo alloc{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
  alloc.descriptorPool = pool_;
  alloc.descriptorSetCount = 1;
  alloc.pSetLayouts = &layout;
  VkResult r = vkAllocateDescriptorSets(device, &alloc, &set_);
  if (r != VK_SUCCESS) {
    vkDestroyDescriptorPool(device, pool_, nullptr);
    pool_ = VK_NULL_HANDLE;
    vk_check(r, "vkAllocateDescriptorSets");
  }

  std::vector<VkDescriptorBufferInfo> infos(resources.size());
  std::vector<VkWriteDescriptorSet> writes(resources.size());
  for (uint32_t i = 0; i < resources.size(); ++i) {
    VkWriteDescriptorSet& w = writes[i];
    w = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
    w.dstSet = set_;
    w.dstBinding = i;
    w.descriptorCount = 1;
    w.descriptorType = types[i];
    if (types[i] == VK_DESCRIPTOR_TYPE_UNIFORM_TEXEL_BUFFER ||
        types[i] == VK_DESCRIPTOR_TYPE_STORAGE_TEXEL_BUFFER) {
      w.pTexelBufferView = &resources[i].texel_view;
    } else {
      infos[i] = {resources[i].buffer, resources[i].offset, resources[i].range};
      w.pBufferInfo = &infos[i];
    }
  }
  vkUpdateDescriptorSets(device, static_cast<uint32_t>(writes.size()), writes.data(), 0, nullptr);
}

DescriptorSet::~DescriptorSet() {
  if (pool_ != VK_NULL_HANDLE) vkDestroyDescriptorPool(device_, pool_, nullptr);
}

DescriptorSet::DescriptorSet(DescriptorSet&& o) noexcept
    : device_(o.device_),
      pool_(std::exchange(o.pool_, VK_NULL_HANDLE)),
      set_(std::exchange(o.set_, VK_NULL_HANDLE)) {}

DescriptorSet& DescriptorSet::operator=(DescriptorSet&& o) noexcept {
  if (this != &o) {
    if (pool_ != VK_NULL_HANDLE) vkDestroyDescriptorPool(device_, pool_, nullptr);
    device_ = o.device_;
    pool_ = std::exchange(o.pool_, VK_NULL_HANDLE);
    set_ = std::exchange(o.set_, VK_NULL_HANDLE);
  }
  return *this;
}

}  // namespace gqavk
