#include "gqavk/context.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "context_impl.hpp"
#include "vk_util.hpp"

namespace gqavk {

namespace {

constexpr const char* kValidationLayer = "VK_LAYER_KHRONOS_validation";

bool layer_available(const char* name) {
  uint32_t n = 0;
  vkEnumerateInstanceLayerProperties(&n, nullptr);
  std::vector<VkLayerProperties> layers(n);
  vkEnumerateInstanceLayerProperties(&n, layers.data());
  return std::any_of(layers.begin(), layers.end(), [&](const VkLayerProperties& l) {
    return std::strcmp(l.layerName, name) == 0;
  });
}

bool instance_extension_available(const char* name) {
  uint32_t n = 0;
  vkEnumerateInstanceExtensionProperties(nullptr, &n, nullptr);
  std::vector<VkExtensionProperties> ext(n);
  vkEnumerateInstanceExtensionProperties(nullptr, &n, ext.data());
  return std::any_of(ext.begin(), ext.end(), [&](const VkExtensionProperties& e) {
    return std::strcmp(e.extensionName, name) == 0;
  });
}

VKAPI_ATTR VkBool32 VKAPI_CALL on_debug_message(VkDebugUtilsMessageSeverityFlagBitsEXT,
                                                VkDebugUtilsMessageTypeFlagsEXT,
                                                const VkDebugUtilsMessengerCallbackDataEXT* data,
                                                void* user) {
  auto* impl = static_cast<ImplOf<Context>*>(user);
  impl->validation_messages.fetch_add(1);
  const std::string_view msg = data && data->pMessage ? data->pMessage : "(no message)";
  if (impl->on_validation_message) {
    impl->on_validation_message(msg);
  } else {
    std::cerr << "gqavk: validation: " << msg << "\n";
  }
  return VK_FALSE;
}

// Creates an instance; `validation` asks for the layer and a messenger when they exist.
VkInstance create_instance(bool validation, bool* debug_utils) {
  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = "gqavk";
  app.pEngineName = "gqavk";
  app.apiVersion = VK_API_VERSION_1_2;
  uint32_t loader_version = VK_API_VERSION_1_0;
  vkEnumerateInstanceVersion(&loader_version);
  if (loader_version >= VK_API_VERSION_1_3) app.apiVersion = VK_API_VERSION_1_3;

  std::vector<const char*> layers;
  std::vector<const char*> extensions;
  *debug_utils = false;
  if (validation && layer_available(kValidationLayer)) {
    layers.push_back(kValidationLayer);
    extensions.push_back(VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME);  // the layer provides it
  }
  if (validation && instance_extension_available(VK_EXT_DEBUG_UTILS_EXTENSION_NAME)) {
    extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
    *debug_utils = true;
  }
  VkInstanceCreateInfo info{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  // With the layer, synchronization validation too: a missing barrier is a message, not luck.
  const VkValidationFeatureEnableEXT enables[] = {
      VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
  VkValidationFeaturesEXT features{VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT};
  features.enabledValidationFeatureCount = 1;
  features.pEnabledValidationFeatures = enables;
  if (!layers.empty()) info.pNext = &features;
  info.pApplicationInfo = &app;
  info.enabledLayerCount = static_cast<uint32_t>(layers.size());
  info.ppEnabledLayerNames = layers.data();
  info.enabledExtensionCount = static_cast<uint32_t>(extensions.size());
  info.ppEnabledExtensionNames = extensions.data();
  VkInstance instance = VK_NULL_HANDLE;
  const VkResult r = vkCreateInstance(&info, nullptr, &instance);
  if (r == VK_ERROR_INCOMPATIBLE_DRIVER || r == VK_ERROR_INITIALIZATION_FAILED) {
    throw Error(ErrorCode::no_device,
                std::string("no Vulkan driver could be loaded (vkCreateInstance: ") +
                    vk_result_name(r) + "); install a driver, e.g. mesa-vulkan-drivers",
                static_cast<int>(r));
  }
  vk_check(r, "vkCreateInstance");
  return instance;
}

// The compute-capable queue family of a device, preferring a compute-only one; -1 when none.
int compute_queue_family(VkPhysicalDevice phys, uint32_t* timestamp_bits) {
  uint32_t n = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(phys, &n, nullptr);
  std::vector<VkQueueFamilyProperties> fams(n);
  vkGetPhysicalDeviceQueueFamilyProperties(phys, &n, fams.data());
  int best = -1;
  for (uint32_t i = 0; i < n; ++i) {
    if (!(fams[i].queueFlags & VK_QUEUE_COMPUTE_BIT)) continue;
    if (best < 0 || !(fams[i].queueFlags & VK_QUEUE_GRAPHICS_BIT)) best = static_cast<int>(i);
  }
  if (best >= 0) *timestamp_bits = fams[best].timestampValidBits;
  return best;
}

struct Candidate {
  VkPhysicalDevice phys;
  DeviceInfo info;
  uint32_t queue_family;
};

std::vector<Candidate> usable_devices(VkInstance instance) {
  uint32_t n = 0;
  vkEnumeratePhysicalDevices(instance, &n, nullptr);
  std::vector<VkPhysicalDevice> devs(n);
  vkEnumeratePhysicalDevices(instance, &n, devs.data());
  std::vector<Candidate> out;
  for (uint32_t i = 0; i < n; ++i) {
    VkPhysicalDeviceProperties p;
    vkGetPhysicalDeviceProperties(devs[i], &p);
    if (p.apiVersion < VK_API_VERSION_1_2) continue;
    uint32_t ts_bits = 0;
    const int family = compute_queue_family(devs[i], &ts_bits);
    if (family < 0) continue;
    Candidate c{devs[i], query_device_info(devs[i], i), static_cast<uint32_t>(family)};
    c.info.timestamp_valid_bits = ts_bits;
    out.push_back(std::move(c));
  }
  return out;
}

int type_rank(DeviceType t) {
  switch (t) {
    case DeviceType::discrete:
      return 4;
    case DeviceType::integrated:
      return 3;
    case DeviceType::virtual_gpu:
      return 2;
    case DeviceType::cpu:
      return 1;
    default:
      return 0;
  }
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

const Candidate& choose(const std::vector<Candidate>& devs, const std::string& selector) {
  if (devs.empty()) {
    throw Error(ErrorCode::no_device,
                "no Vulkan 1.2 device with a compute queue was found (install a driver, e.g. "
                "mesa-vulkan-drivers for lavapipe on the CPU)");
  }
  std::string names;
  for (const Candidate& c : devs) {
    names += (names.empty() ? "" : ", ") + std::to_string(c.info.index) + ": " + c.info.name;
  }
  if (selector.empty()) {
    // Only a device that can run work; one that only compiles is taken when named.
    const Candidate* best = nullptr;
    for (const Candidate& c : devs) {
      if (c.info.can_run && (!best || type_rank(c.info.type) > type_rank(best->info.type))) {
        best = &c;
      }
    }
    if (!best) {
      throw Error(ErrorCode::no_device,
                  "no Vulkan device here can run work (" + names +
                      " can only build pipelines: they have no memory for buffers); install a "
                      "driver, e.g. mesa-vulkan-drivers for lavapipe on the CPU");
    }
    return *best;
  }
  const bool numeric = std::all_of(selector.begin(), selector.end(),
                                   [](unsigned char ch) { return std::isdigit(ch); });
  for (const Candidate& c : devs) {
    if (numeric ? std::to_string(c.info.index) == selector
                : lower(c.info.name).find(lower(selector)) != std::string::npos) {
      return c;
    }
  }
  throw Error(ErrorCode::no_device, "device '" + selector +
                                        "' matches no Vulkan device (expected an index or a "
                                        "name substring of: " +
                                        names + ")");
}

// Runs probe_subgroup.comp with `lanes` invocations; true when they form one correct subgroup.
// `seen_lanes` receives the subgroup size the first lane observed.
bool probe_lanes(ImplOf<Context>& impl, uint32_t lanes, bool sized, uint32_t* seen_lanes) {
  PipelineDesc desc;
  desc.shader = "probe_subgroup";
  desc.bindings = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER};
  desc.spec_constants = {lanes};
  if (sized) {
    desc.required_subgroup_size = lanes;
    desc.full_subgroups = impl.info.compute_full_subgroups;
  }
  ComputePipeline pipe = impl.make_pipeline(desc);
  const uint64_t bytes = uint64_t{lanes} * 16;
  Buffer result = impl.make_buffer(BufferKind::device_local, bytes, "subgroup probe");
  DescriptorSet set(impl.device, pipe, {{result.handle(), 0, bytes, VK_NULL_HANDLE}});
  impl.submit([&](VkCommandBuffer cmd) {
    vkCmdFillBuffer(cmd, result.handle(), 0, bytes, 0);
    memory_barrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                   VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT);
    record_dispatch(cmd, pipe, set.handle(), {}, 1);
  });
  std::vector<uint32_t> r(lanes * 4);
  impl.download(result, 0, r.data(), bytes);
  *seen_lanes = r[0];
  for (uint32_t i = 0; i < lanes; ++i) {
    if (r[4 * i] != lanes || r[4 * i + 1] != 1 || r[4 * i + 2] != lanes - 1 ||
        r[4 * i + 3] != (lanes - 1) * 3 + 1) {
      return false;
    }
  }
  return true;
}

// Fills info.subgroup_lanes and the partial-subgroup bug flag. A device that cannot run work is
// taken at its word: its reported subgroup size, so tuning for it still works.
void probe_subgroups(ImplOf<Context>& impl) {
  DeviceInfo& d = impl.info;
  d.subgroup_lanes = 0;
  const uint32_t needed = kSubgroupBasic | kSubgroupArithmetic | kSubgroupBallot;
  if (!d.has_subgroup_ops(needed) || d.subgroup_size < 1 || d.subgroup_size > 128) return;
  if (!d.can_run) {
    d.subgroup_lanes = d.subgroup_size;
    return;
  }
  const bool sized = d.subgroup_size_control && d.min_subgroup_size <= d.subgroup_size &&
                     d.subgroup_size <= d.max_subgroup_size;
  uint32_t seen = 0;
  if (probe_lanes(impl, d.subgroup_size, sized, &seen)) {
    d.subgroup_lanes = d.subgroup_size;
    return;
  }
  d.bug_partial_subgroups = true;
  // The driver ran fewer lanes per subgroup than it reports: try a workgroup of what it ran.
  if (seen >= 1 && seen < d.subgroup_size && (seen & (seen - 1)) == 0) {
    uint32_t again = 0;
    if (probe_lanes(impl, seen, false, &again)) d.subgroup_lanes = seen;
  }
}

}  // namespace

namespace {

// The pipeline cache, the submitter and the subgroup probe: the last steps of either constructor.
void finish_context(ImplOf<Context>& c) {
  VkPipelineCacheCreateInfo cache_info{VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
  vk_check(vkCreatePipelineCache(c.device, &cache_info, nullptr, &c.pipeline_cache),
           "vkCreatePipelineCache");
  // A device that cannot run work gets no command buffer or fence (RADV's null hardware fails to
  // create fences), and make_buffer and submit refuse with a message naming it.
  if (c.info.can_run) {
    c.submitter = std::make_unique<Submitter>(c.device, c.queue, c.queue_family, &c.queue_lock);
  }
  probe_subgroups(c);
}

// The features and extensions a VkDeviceCreateInfo enables, of those gqavk uses.
struct EnabledFeatures {
  bool subgroup_size_control = false;
  bool compute_full_subgroups = false;
  bool buffer_device_address = false;
  bool timeline_semaphore = false;
  bool pipeline_executable_info = false;
  std::vector<std::string> extensions;
  bool has_extension(const char* name) const {
    return std::find(extensions.begin(), extensions.end(), name) != extensions.end();
  }
};

EnabledFeatures enabled_features(const VkDeviceCreateInfo& info) {
  EnabledFeatures on;
  for (uint32_t i = 0; i < info.enabledExtensionCount; ++i) {
    on.extensions.emplace_back(info.ppEnabledExtensionNames[i]);
  }
  for (auto* s = static_cast<const VkBaseInStructure*>(info.pNext); s != nullptr; s = s->pNext) {
    switch (s->sType) {
      case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES: {
        const auto* f = reinterpret_cast<const VkPhysicalDeviceVulkan12Features*>(s);
        on.buffer_device_address |= f->bufferDeviceAddress == VK_TRUE;
        on.timeline_semaphore |= f->timelineSemaphore == VK_TRUE;
        break;
      }
      case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES: {
        const auto* f = reinterpret_cast<const VkPhysicalDeviceVulkan13Features*>(s);
        on.subgroup_size_control |= f->subgroupSizeControl == VK_TRUE;
        on.compute_full_subgroups |= f->computeFullSubgroups == VK_TRUE;
        break;
      }
      case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES: {
        const auto* f = reinterpret_cast<const VkPhysicalDeviceSubgroupSizeControlFeatures*>(s);
        on.subgroup_size_control |= f->subgroupSizeControl == VK_TRUE;
        on.compute_full_subgroups |= f->computeFullSubgroups == VK_TRUE;
        break;
      }
      case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_BUFFER_DEVICE_ADDRESS_FEATURES: {
        const auto* f = reinterpret_cast<const VkPhysicalDeviceBufferDeviceAddressFeatures*>(s);
        on.buffer_device_address |= f->bufferDeviceAddress == VK_TRUE;
        break;
      }
      case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_TIMELINE_SEMAPHORE_FEATURES: {
        const auto* f = reinterpret_cast<const VkPhysicalDeviceTimelineSemaphoreFeatures*>(s);
        on.timeline_semaphore |= f->timelineSemaphore == VK_TRUE;
        break;
      }
      case VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR: {
        const auto* f =
            reinterpret_cast<const VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR*>(s);
        on.pipeline_executable_info |= f->pipelineExecutableInfo == VK_TRUE;
        break;
      }
      default:
        break;
    }
  }
  return on;
}

}  // namespace

std::vector<DeviceInfo> list_devices() {
  bool debug_utils = false;
  VkInstance instance = create_instance(false, &debug_utils);
  std::vector<DeviceInfo> out;
  try {
    for (Candidate& c : usable_devices(instance)) out.push_back(std::move(c.info));
  } catch (...) {
    vkDestroyInstance(instance, nullptr);
    throw;
  }
  vkDestroyInstance(instance, nullptr);
  return out;
}

Context::Impl::~Impl() {
  // Only a device that ran work has any to wait for (RADV's null hardware crashes in the wait).
  // Submitter::run waits for its own work, and DecodeStep for its steps, so an application's
  // device is never waited on as a whole.
  if (owns_device && device != VK_NULL_HANDLE && submitter) vkDeviceWaitIdle(device);
  staging = Buffer();
  pipelines.clear();
  submitter.reset();
  if (pipeline_cache != VK_NULL_HANDLE) vkDestroyPipelineCache(device, pipeline_cache, nullptr);
  if (!owns_device) return;
  if (device != VK_NULL_HANDLE) vkDestroyDevice(device, nullptr);
  if (messenger != VK_NULL_HANDLE) {
    auto destroy = reinterpret_cast<PFN_vkDestroyDebugUtilsMessengerEXT>(
        vkGetInstanceProcAddr(instance, "vkDestroyDebugUtilsMessengerEXT"));
    if (destroy) destroy(instance, messenger, nullptr);
  }
  if (instance != VK_NULL_HANDLE) vkDestroyInstance(instance, nullptr);
}

void Context::Impl::require_not_lost() const {
  if (!lost) return;
  throw Error(ErrorCode::device_lost,
              "device '" + info.name +
                  "' was lost (VK_ERROR_DEVICE_LOST earlier): destroy what was made from this "
                  "Context and the Context, and make a new one",
              static_cast<int>(VK_ERROR_DEVICE_LOST));
}

void Context::Impl::require_can_run(const char* what) const {
  if (info.can_run) return;
  throw Error(ErrorCode::unsupported,
              std::string(what) + ": device '" + info.name +
                  "' cannot run work (it has no memory for buffers; it can only build pipelines); "
                  "choose another device");
}

std::shared_ptr<const ComputePipeline> Context::Impl::shared_pipeline(const PipelineDesc& desc) {
  std::string key = desc.shader;
  for (uint32_t v : desc.spec_constants) key += "/" + std::to_string(v);
  key += "/sg" + std::to_string(desc.required_subgroup_size) + (desc.full_subgroups ? "f" : "");
  auto it = pipelines.find(key);
  if (it == pipelines.end()) {
    it = pipelines.emplace(key, std::make_shared<const ComputePipeline>(make_pipeline(desc))).first;
  }
  return it->second;
}

Buffer& Context::Impl::staging_for(uint64_t bytes) {
  const uint64_t want = std::min(std::max<uint64_t>(bytes, 1 << 20), kStagingMaxBytes);
  if (!staging || staging.bytes() < want) {
    staging = Buffer();
    staging = make_buffer(BufferKind::staging, want, "staging buffer");
  }
  return staging;
}

void Context::Impl::upload(const Buffer& dst, uint64_t offset, const void* data, uint64_t bytes) {
  const auto* src = static_cast<const uint8_t*>(data);
  Buffer& stage = staging_for(bytes);
  for (uint64_t done = 0; done < bytes;) {
    const uint64_t n = std::min(bytes - done, stage.bytes());
    std::memcpy(stage.mapped(), src + done, n);
    submit([&](VkCommandBuffer cmd) {
      VkBufferCopy region{0, offset + done, n};
      vkCmdCopyBuffer(cmd, stage.handle(), dst.handle(), 1, &region);
    });
    done += n;
  }
}

void Context::Impl::download(const Buffer& src, uint64_t offset, void* data, uint64_t bytes) {
  auto* out = static_cast<uint8_t*>(data);
  Buffer& stage = staging_for(bytes);
  for (uint64_t done = 0; done < bytes;) {
    const uint64_t n = std::min(bytes - done, stage.bytes());
    submit([&](VkCommandBuffer cmd) {
      memory_barrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                     VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                     VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_READ_BIT);
      VkBufferCopy region{offset + done, 0, n};
      vkCmdCopyBuffer(cmd, src.handle(), stage.handle(), 1, &region);
      host_read_barrier(cmd);
    });
    std::memcpy(out + done, stage.mapped(), n);
    done += n;
  }
}

Context::Context(const ContextOptions& options) : impl_(std::make_unique<Impl>()) {
  Impl& c = *impl_;
  c.on_validation_message = options.on_validation_message;
  bool debug_utils = false;
  c.instance = create_instance(options.validation, &debug_utils);
  if (debug_utils) {
    auto create = reinterpret_cast<PFN_vkCreateDebugUtilsMessengerEXT>(
        vkGetInstanceProcAddr(c.instance, "vkCreateDebugUtilsMessengerEXT"));
    VkDebugUtilsMessengerCreateInfoEXT info{
        VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
    info.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                           VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
    info.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                       VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT;
    info.pfnUserCallback = on_debug_message;
    info.pUserData = &c;
    if (create)
      vk_check(create(c.instance, &info, nullptr, &c.messenger), "creating the messenger");
  }

  std::string selector = options.device;
  if (selector.empty()) {
    if (const char* env = std::getenv("GQAVK_DEVICE")) selector = env;
  }
  std::vector<Candidate> devs = usable_devices(c.instance);
  const Candidate& chosen = choose(devs, selector);
  c.phys = chosen.phys;
  c.info = chosen.info;
  c.queue_family = chosen.queue_family;

  // Device: one compute queue; subgroup size control, buffer device addresses (for KV pools past
  // a binding's range), timeline semaphores (DecodeStep's steps in flight) and pipeline statistics
  // where asked for and the device has them.
  const float priority = 1.0f;
  VkDeviceQueueCreateInfo queue_info{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  queue_info.queueFamilyIndex = c.queue_family;
  queue_info.queueCount = 1;
  queue_info.pQueuePriorities = &priority;
  std::vector<const char*> extensions;
  VkPhysicalDeviceFeatures2 features{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  void** tail = &features.pNext;
  VkPhysicalDeviceSubgroupSizeControlFeatures size_control{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES};
  if (c.info.subgroup_size_control) {
    size_control.subgroupSizeControl = VK_TRUE;
    size_control.computeFullSubgroups = c.info.compute_full_subgroups ? VK_TRUE : VK_FALSE;
    *tail = &size_control;
    tail = &size_control.pNext;
    if (c.info.api_version < VK_API_VERSION_1_3) {
      extensions.push_back(VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
    }
  }
  VkPhysicalDeviceBufferDeviceAddressFeatures address{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_BUFFER_DEVICE_ADDRESS_FEATURES};
  if (c.info.buffer_device_address) {
    address.bufferDeviceAddress = VK_TRUE;
    *tail = &address;
    tail = &address.pNext;
  }
  VkPhysicalDeviceTimelineSemaphoreFeatures timeline{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_TIMELINE_SEMAPHORE_FEATURES};
  if (c.info.timeline_semaphore) {
    timeline.timelineSemaphore = VK_TRUE;
    *tail = &timeline;
    tail = &timeline.pNext;
  }
  VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR exec_props{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR};
  c.capture_statistics = options.pipeline_statistics && c.info.pipeline_statistics;
  if (c.capture_statistics) {
    exec_props.pipelineExecutableInfo = VK_TRUE;
    *tail = &exec_props;
    extensions.push_back(VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME);
  }
  VkDeviceCreateInfo device_info{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  device_info.pNext = &features;
  device_info.queueCreateInfoCount = 1;
  device_info.pQueueCreateInfos = &queue_info;
  device_info.enabledExtensionCount = static_cast<uint32_t>(extensions.size());
  device_info.ppEnabledExtensionNames = extensions.data();
  vk_check(vkCreateDevice(c.phys, &device_info, nullptr, &c.device), "vkCreateDevice");
  vkGetDeviceQueue(c.device, c.queue_family, 0, &c.queue);
  finish_context(c);
}

Context::Context(const ExternalDevice& ext, const ContextOptions& options)
    : impl_(std::make_unique<Impl>()) {
  Impl& c = *impl_;
  c.owns_device = false;
  const auto bad = [](const std::string& m) { throw Error(ErrorCode::invalid_argument, m); };
  if (ext.instance == VK_NULL_HANDLE) bad("ExternalDevice.instance is VK_NULL_HANDLE");
  if (ext.physical_device == VK_NULL_HANDLE)
    bad("ExternalDevice.physical_device is VK_NULL_HANDLE");
  if (ext.device == VK_NULL_HANDLE) bad("ExternalDevice.device is VK_NULL_HANDLE");
  if (ext.queue == VK_NULL_HANDLE) bad("ExternalDevice.queue is VK_NULL_HANDLE");
  if (ext.create_info == nullptr) {
    bad("ExternalDevice.create_info is null (expected the VkDeviceCreateInfo the device was made "
        "with)");
  }
  if (!ext.lock_queue != !ext.unlock_queue) {
    bad("ExternalDevice has lock_queue without unlock_queue or the other way round (expected "
        "both or neither)");
  }
  uint32_t n = 0;
  vkEnumeratePhysicalDevices(ext.instance, &n, nullptr);
  std::vector<VkPhysicalDevice> devs(n);
  vkEnumeratePhysicalDevices(ext.instance, &n, devs.data());
  const auto it = std::find(devs.begin(), devs.end(), ext.physical_device);
  if (it == devs.end()) bad("ExternalDevice.physical_device is not a device of its instance");
  c.info = query_device_info(ext.physical_device, static_cast<uint32_t>(it - devs.begin()));
  if (c.info.api_version < VK_API_VERSION_1_2) {
    throw Error(ErrorCode::unsupported, "device '" + c.info.name + "' is Vulkan " +
                                            version_string(c.info.api_version) +
                                            " (gqavk needs Vulkan 1.2 or newer)");
  }
  vkGetPhysicalDeviceQueueFamilyProperties(ext.physical_device, &n, nullptr);
  std::vector<VkQueueFamilyProperties> families(n);
  vkGetPhysicalDeviceQueueFamilyProperties(ext.physical_device, &n, families.data());
  if (ext.queue_family >= n || !(families[ext.queue_family].queueFlags & VK_QUEUE_COMPUTE_BIT)) {
    bad("ExternalDevice.queue_family " + std::to_string(ext.queue_family) +
        (ext.queue_family >= n ? " does not exist (the device has " + std::to_string(n) + ")"
                               : " has no compute support") +
        " (expected a compute queue family)");
  }
  const VkDeviceCreateInfo& created = *ext.create_info;
  bool has_queue = false;
  for (uint32_t i = 0; i < created.queueCreateInfoCount; ++i) {
    has_queue |= created.pQueueCreateInfos[i].queueFamilyIndex == ext.queue_family;
  }
  if (!has_queue) {
    bad("ExternalDevice.create_info made no queue of family " + std::to_string(ext.queue_family));
  }
  c.info.timestamp_valid_bits = families[ext.queue_family].timestampValidBits;

  // What the device was made with: each needed feature the device has must be enabled.
  const EnabledFeatures on = enabled_features(created);
  std::vector<std::string> missing;
  const auto need = [&](bool supported, bool enabled, const char* name) {
    if (supported && !enabled) missing.emplace_back(name);
  };
  need(c.info.subgroup_size_control, on.subgroup_size_control, "subgroupSizeControl");
  need(c.info.compute_full_subgroups, on.compute_full_subgroups, "computeFullSubgroups");
  need(c.info.buffer_device_address, on.buffer_device_address, "bufferDeviceAddress");
  need(c.info.timeline_semaphore, on.timeline_semaphore, "timelineSemaphore");
  if (c.info.subgroup_size_control && c.info.api_version < VK_API_VERSION_1_3 &&
      !on.has_extension(VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME)) {
    missing.emplace_back(VK_EXT_SUBGROUP_SIZE_CONTROL_EXTENSION_NAME);
  }
  if (!missing.empty()) {
    std::string names;
    for (const std::string& m : missing) names += (names.empty() ? "" : ", ") + m;
    throw Error(ErrorCode::unsupported,
                "device '" + c.info.name + "' was created without what gqavk needs on it: " +
                    names + " (enable them in the VkDeviceCreateInfo; see ExternalDevice)");
  }
  c.capture_statistics = options.pipeline_statistics && c.info.pipeline_statistics &&
                         on.pipeline_executable_info &&
                         on.has_extension(VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME);
  c.info.pipeline_statistics = c.capture_statistics;

  c.instance = ext.instance;
  c.phys = ext.physical_device;
  c.device = ext.device;
  c.queue_family = ext.queue_family;
  c.queue = ext.queue;
  c.queue_lock = QueueLock{ext.lock_queue, ext.unlock_queue};
  finish_context(c);
}

Context::~Context() = default;
Context::Context(Context&&) noexcept = default;
Context& Context::operator=(Context&&) noexcept = default;

const DeviceInfo& Context::device() const { return impl_->info; }

uint32_t Context::validation_message_count() const { return impl_->validation_messages.load(); }

}  // namespace gqavk
