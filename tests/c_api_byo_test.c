/* Bring your own device, from C99: the test makes its own Vulkan instance (the validation layer
 * with synchronization validation, and a messenger that fails the test on any warning or error),
 * picks lavapipe, and makes its own device. A device without the features gqavk needs is refused
 * with their names; on one with them, gqavk_context_create_external takes the test's queue and
 * queue lock. The test's own VkBuffers, wrapped at non-zero offsets, hold the KV pool, the K/V it
 * appends (uploaded by its own command buffer) and a decode step's device I/O; decode, a ragged
 * causal prefill and decode steps recorded into the test's command buffers (submitted by the test
 * with a timeline semaphore) match a float64 reference. gqavk writes nothing outside its ranges,
 * and after everything of gqavk is destroyed the test's device and queue still work. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vulkan/vulkan_core.h>

#include "c_check.h"
#include "gqavk/gqavk.h"

/* G 2 KV heads, H 4 query heads (2 per KV head), D 64, f32, 2 sequences, 2 layers. */
enum { G = 2, H = 4, D = 64, CAP = 32, BLOCK = 8, SLOTS = 2, LAYERS = 2, STEPS = 5, RECORDED = 3 };
/* The prompt lengths appended: sequence 0 and 1, every layer. */
static const uint32_t kPrompt[SLOTS] = {13, 7};
#define PROMPT_TOKENS 20 /* kPrompt[0] + kPrompt[1] */
static const double kTolerance = 1e-4;

/* The host copy of the cache: sequence s, layer l, KV head g, token t at
 * [s][l][(g * CAP + t) * D]. */
static float host_k[SLOTS][LAYERS][G * CAP * D];
static float host_v[SLOTS][LAYERS][G * CAP * D];
static uint32_t host_len[SLOTS][LAYERS];

/* ---- Vulkan of the test's own ---------------------------------------------------------------- */

static uint32_t vk_messages = 0;

static VKAPI_ATTR VkBool32 VKAPI_CALL on_vk_message(
    VkDebugUtilsMessageSeverityFlagBitsEXT severity, VkDebugUtilsMessageTypeFlagsEXT types,
    const VkDebugUtilsMessengerCallbackDataEXT* data, void* user_data) {
  (void)severity;
  (void)types;
  (void)user_data;
  ++vk_messages;
  fprintf(stderr, "vulkan: %s\n", data->pMessage);
  return VK_FALSE;
}

#define VK_CHECK(call)                                                       \
  do {                                                                       \
    const VkResult vk_check_result_ = (call);                                \
    c_check_true(vk_check_result_ == VK_SUCCESS, __FILE__, __LINE__, #call); \
    if (vk_check_result_ != VK_SUCCESS) {                                    \
      fprintf(stderr, "  VkResult %d; stopping\n", (int)vk_check_result_);   \
      exit(c_check_summary("c_api_byo_test"));                               \
    }                                                                        \
  } while (0)

static int has_layer(const char* name) {
  uint32_t n = 0, i;
  VkLayerProperties* layers;
  int found = 0;
  vkEnumerateInstanceLayerProperties(&n, NULL);
  layers = (VkLayerProperties*)calloc(n ? n : 1, sizeof(*layers));
  vkEnumerateInstanceLayerProperties(&n, layers);
  for (i = 0; i < n; ++i) found |= strcmp(layers[i].layerName, name) == 0;
  free(layers);
  return found;
}

static VkInstance instance = VK_NULL_HANDLE;
static VkDebugUtilsMessengerEXT messenger = VK_NULL_HANDLE;
static VkPhysicalDevice phys = VK_NULL_HANDLE;
static VkPhysicalDeviceProperties props;
static VkPhysicalDeviceMemoryProperties memory_props;

static void make_instance(void) {
  static const char* layer = "VK_LAYER_KHRONOS_validation";
  static const char* extensions[] = {VK_EXT_DEBUG_UTILS_EXTENSION_NAME,
                                     VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME};
  const VkValidationFeatureEnableEXT enables[] = {
      VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
  VkDebugUtilsMessengerCreateInfoEXT messenger_info;
  VkValidationFeaturesEXT features;
  VkApplicationInfo app;
  VkInstanceCreateInfo info;
  uint32_t version = VK_API_VERSION_1_0;
  PFN_vkCreateDebugUtilsMessengerEXT create_messenger;

  if (!has_layer(layer)) {
    fprintf(stderr, "%s is not installed: this test needs it\n", layer);
    CHECK(0);
    exit(c_check_summary("c_api_byo_test"));
  }
  vkEnumerateInstanceVersion(&version);
  memset(&messenger_info, 0, sizeof(messenger_info));
  messenger_info.sType = VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT;
  messenger_info.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                                   VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
  messenger_info.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                               VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                               VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
  messenger_info.pfnUserCallback = on_vk_message;
  memset(&features, 0, sizeof(features));
  features.sType = VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT;
  features.pNext = &messenger_info; /* instance creation's own messages too */
  features.enabledValidationFeatureCount = 1;
  features.pEnabledValidationFeatures = enables;
  memset(&app, 0, sizeof(app));
  app.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO;
  app.pApplicationName = "c_api_byo_test";
  app.apiVersion = version >= VK_API_VERSION_1_3 ? VK_API_VERSION_1_3 : VK_API_VERSION_1_2;
  memset(&info, 0, sizeof(info));
  info.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO;
  info.pNext = &features;
  info.pApplicationInfo = &app;
  info.enabledLayerCount = 1;
  info.ppEnabledLayerNames = &layer;
  info.enabledExtensionCount = 2;
  info.ppEnabledExtensionNames = extensions;
  VK_CHECK(vkCreateInstance(&info, NULL, &instance));
  create_messenger = (PFN_vkCreateDebugUtilsMessengerEXT)vkGetInstanceProcAddr(
      instance, "vkCreateDebugUtilsMessengerEXT");
  CHECK(create_messenger != NULL);
  if (create_messenger != NULL) {
    VK_CHECK(create_messenger(instance, &messenger_info, NULL, &messenger));
  }
}

/* lavapipe, by driver id (or name). */
static void pick_device(void) {
  uint32_t n = 0, i;
  VkPhysicalDevice* devices;
  vkEnumeratePhysicalDevices(instance, &n, NULL);
  devices = (VkPhysicalDevice*)calloc(n ? n : 1, sizeof(*devices));
  vkEnumeratePhysicalDevices(instance, &n, devices);
  for (i = 0; i < n && phys == VK_NULL_HANDLE; ++i) {
    VkPhysicalDeviceDriverProperties driver;
    VkPhysicalDeviceProperties2 p2;
    memset(&driver, 0, sizeof(driver));
    driver.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES;
    memset(&p2, 0, sizeof(p2));
    p2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2;
    p2.pNext = &driver;
    vkGetPhysicalDeviceProperties2(devices[i], &p2);
    if (driver.driverID == VK_DRIVER_ID_MESA_LLVMPIPE ||
        strstr(p2.properties.deviceName, "llvmpipe") != NULL) {
      phys = devices[i];
      props = p2.properties;
    }
  }
  free(devices);
  CHECK(phys != VK_NULL_HANDLE);
  if (phys == VK_NULL_HANDLE) {
    fprintf(stderr, "no lavapipe device\n");
    exit(c_check_summary("c_api_byo_test"));
  }
  vkGetPhysicalDeviceMemoryProperties(phys, &memory_props);
}

/* What the physical device supports of the features gqavk needs. */
static VkPhysicalDeviceVulkan12Features supported12;
static VkPhysicalDeviceVulkan13Features supported13;

static void query_features(void) {
  VkPhysicalDeviceFeatures2 f2;
  memset(&supported12, 0, sizeof(supported12));
  supported12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES;
  memset(&supported13, 0, sizeof(supported13));
  supported13.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES;
  memset(&f2, 0, sizeof(f2));
  f2.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2;
  f2.pNext = &supported12;
  if (props.apiVersion >= VK_API_VERSION_1_3) supported12.pNext = &supported13;
  vkGetPhysicalDeviceFeatures2(phys, &f2);
}

/* The device's queues: gqavk gets (family, 0); the test keeps a queue of its own where the device
 * has a second one (in the family, or another family), else it shares gqavk's under its lock. */
static uint32_t family = UINT32_MAX, family_queues = 0, other_family = UINT32_MAX;
/* Where the test's queue is of another family, its buffers are shared by both families. */
static int concurrent = 0;

static void pick_queues(void) {
  uint32_t n = 0, i;
  VkQueueFamilyProperties* families;
  vkGetPhysicalDeviceQueueFamilyProperties(phys, &n, NULL);
  families = (VkQueueFamilyProperties*)calloc(n ? n : 1, sizeof(*families));
  vkGetPhysicalDeviceQueueFamilyProperties(phys, &n, families);
  for (i = 0; i < n; ++i) {
    if ((families[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && family == UINT32_MAX) {
      family = i;
      family_queues = families[i].queueCount >= 2 ? 2 : 1;
    }
  }
  for (i = 0; i < n && family_queues == 1; ++i) {
    if (i != family && (families[i].queueFlags &
                        (VK_QUEUE_COMPUTE_BIT | VK_QUEUE_GRAPHICS_BIT | VK_QUEUE_TRANSFER_BIT))) {
      other_family = i;
      break;
    }
  }
  free(families);
  CHECK(family != UINT32_MAX);
  if (family == UINT32_MAX) exit(c_check_summary("c_api_byo_test"));
}

/* A device of the test's queues; `enable` picks which gqavk features it turns on (bits: 1
 * subgroup size control and full subgroups, 2 buffer device address and timeline semaphores). */
static VkDevice make_device(unsigned enable, VkDeviceCreateInfo* info_out,
                            VkDeviceQueueCreateInfo* queues /* [2] */,
                            VkPhysicalDeviceVulkan12Features* f12,
                            VkPhysicalDeviceVulkan13Features* f13) {
  static const float priorities[2] = {1.0f, 1.0f};
  VkDevice device = VK_NULL_HANDLE;
  uint32_t queue_infos = 1;
  memset(queues, 0, 2 * sizeof(*queues));
  queues[0].sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO;
  queues[0].queueFamilyIndex = family;
  queues[0].queueCount = family_queues;
  queues[0].pQueuePriorities = priorities;
  if (other_family != UINT32_MAX) {
    queues[1] = queues[0];
    queues[1].queueFamilyIndex = other_family;
    queues[1].queueCount = 1;
    queue_infos = 2;
  }
  memset(f12, 0, sizeof(*f12));
  f12->sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES;
  memset(f13, 0, sizeof(*f13));
  f13->sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_3_FEATURES;
  if (enable & 2) {
    f12->bufferDeviceAddress = supported12.bufferDeviceAddress;
    f12->timelineSemaphore = supported12.timelineSemaphore;
  }
  if (enable & 1) {
    f13->subgroupSizeControl = supported13.subgroupSizeControl;
    f13->computeFullSubgroups = supported13.computeFullSubgroups;
  }
  if (props.apiVersion >= VK_API_VERSION_1_3) f12->pNext = f13;
  memset(info_out, 0, sizeof(*info_out));
  info_out->sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO;
  info_out->pNext = f12;
  info_out->queueCreateInfoCount = queue_infos;
  info_out->pQueueCreateInfos = queues;
  VK_CHECK(vkCreateDevice(phys, info_out, NULL, &device));
  return device;
}

/* ---- The application's queue lock ------------------------------------------------------------ */

typedef struct {
  int locked;
  uint32_t locks, unlocks, misuses;
} queue_lock;

static void lock_queue(void* user_data) {
  queue_lock* q = (queue_lock*)user_data;
  if (q->locked) ++q->misuses; /* lock twice: gqavk would deadlock on a real mutex */
  q->locked = 1;
  ++q->locks;
}

static void unlock_queue(void* user_data) {
  queue_lock* q = (queue_lock*)user_data;
  if (!q->locked) ++q->misuses;
  q->locked = 0;
  ++q->unlocks;
}

/* ---- Buffers of the test's own --------------------------------------------------------------- */

typedef struct {
  VkBuffer buffer;
  VkDeviceMemory memory;
  VkDeviceSize bytes;
  void* mapped; /* host-visible buffers only */
} own_buffer;

static uint32_t memory_type(uint32_t bits, VkMemoryPropertyFlags want) {
  uint32_t i;
  for (i = 0; i < memory_props.memoryTypeCount; ++i) {
    if ((bits & (1u << i)) && (memory_props.memoryTypes[i].propertyFlags & want) == want) return i;
  }
  return UINT32_MAX;
}

static own_buffer make_buffer(VkDevice device, VkDeviceSize bytes, VkBufferUsageFlags usage,
                              int host_visible, int device_address) {
  own_buffer b;
  VkBufferCreateInfo info;
  VkMemoryRequirements req;
  VkMemoryAllocateFlagsInfo flags;
  VkMemoryAllocateInfo alloc;
  uint32_t type;
  memset(&b, 0, sizeof(b));
  memset(&info, 0, sizeof(info));
  info.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO;
  info.size = bytes;
  info.usage = usage;
  info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  if (concurrent) {
    static uint32_t families[2];
    families[0] = family;
    families[1] = other_family;
    info.sharingMode = VK_SHARING_MODE_CONCURRENT;
    info.queueFamilyIndexCount = 2;
    info.pQueueFamilyIndices = families;
  }
  VK_CHECK(vkCreateBuffer(device, &info, NULL, &b.buffer));
  vkGetBufferMemoryRequirements(device, b.buffer, &req);
  type = memory_type(req.memoryTypeBits, host_visible ? VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT |
                                                            VK_MEMORY_PROPERTY_HOST_COHERENT_BIT
                                                      : VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT);
  if (type == UINT32_MAX) type = memory_type(req.memoryTypeBits, 0);
  memset(&flags, 0, sizeof(flags));
  flags.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_FLAGS_INFO;
  flags.flags = VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT;
  memset(&alloc, 0, sizeof(alloc));
  alloc.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO;
  alloc.pNext = device_address ? &flags : NULL;
  alloc.allocationSize = req.size;
  alloc.memoryTypeIndex = type;
  VK_CHECK(vkAllocateMemory(device, &alloc, NULL, &b.memory));
  VK_CHECK(vkBindBufferMemory(device, b.buffer, b.memory, 0));
  if (host_visible) VK_CHECK(vkMapMemory(device, b.memory, 0, VK_WHOLE_SIZE, 0, &b.mapped));
  b.bytes = bytes;
  return b;
}

static void destroy_buffer(VkDevice device, own_buffer* b) {
  if (b->mapped != NULL) vkUnmapMemory(device, b->memory);
  vkDestroyBuffer(device, b->buffer, NULL);
  vkFreeMemory(device, b->memory, NULL);
  memset(b, 0, sizeof(*b));
}

static VkDeviceSize round_up(VkDeviceSize x, VkDeviceSize a) { return (x + a - 1) / a * a; }

/* A barrier from transfer writes to host reads, at the end of a readback. */
static void barrier_to_host(VkCommandBuffer cmd) {
  VkMemoryBarrier m;
  memset(&m, 0, sizeof(m));
  m.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER;
  m.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
  m.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
  vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &m, 0,
                       NULL, 0, NULL);
}

static void begin(VkCommandBuffer cmd) {
  VkCommandBufferBeginInfo info;
  memset(&info, 0, sizeof(info));
  info.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO;
  VK_CHECK(vkBeginCommandBuffer(cmd, &info));
}

/* Submits command buffers to `queue` under the test's lock (it may be gqavk's queue) and, with a
 * fence, waits for them. */
static void submit(VkDevice device, VkQueue queue, queue_lock* lock, const VkCommandBuffer* cmds,
                   uint32_t count, VkFence fence) {
  VkSubmitInfo info;
  memset(&info, 0, sizeof(info));
  info.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
  info.commandBufferCount = count;
  info.pCommandBuffers = cmds;
  lock_queue(lock);
  VK_CHECK(vkQueueSubmit(queue, 1, &info, fence));
  unlock_queue(lock);
  if (fence != VK_NULL_HANDLE) {
    VK_CHECK(vkWaitForFences(device, 1, &fence, VK_TRUE, UINT64_MAX));
    VK_CHECK(vkResetFences(device, 1, &fence));
  }
}

/* ---- Refusals of devices without what gqavk needs -------------------------------------------- */

static void test_refusals(void) {
  VkDeviceCreateInfo info;
  VkDeviceQueueCreateInfo queues[2];
  VkPhysicalDeviceVulkan12Features f12;
  VkPhysicalDeviceVulkan13Features f13;
  gqavk_external_device_info ext;
  gqavk_context* const sentinel = (gqavk_context*)&info;
  gqavk_context* ctx = sentinel;
  VkDevice device;
  VkQueue queue = VK_NULL_HANDLE;
  queue_lock lock;
  const char* features[4] = {"subgroupSizeControl", "computeFullSubgroups", "bufferDeviceAddress",
                             "timelineSemaphore"};
  const VkBool32 supported[4] = {supported13.subgroupSizeControl, supported13.computeFullSubgroups,
                                 supported12.bufferDeviceAddress, supported12.timelineSemaphore};
  int i;

  /* lavapipe has all four: the test would not show a refusal otherwise. */
  for (i = 0; i < 4; ++i) CHECK(supported[i] == VK_TRUE);

  /* None enabled: all four named. */
  device = make_device(0, &info, queues, &f12, &f13);
  vkGetDeviceQueue(device, family, 0, &queue);
  memset(&ext, 0, sizeof(ext));
  ext.struct_size = sizeof(ext);
  ext.instance = instance;
  ext.physical_device = phys;
  ext.device = device;
  ext.device_create_info = &info;
  ext.queue_family = family;
  ext.queue = queue;
  CHECK_FAILS(gqavk_context_create_external(&ext, &ctx), GQAVK_ERROR_UNSUPPORTED, NULL,
              features[0]);
  for (i = 1; i < 4; ++i) CHECK_MSG(NULL, features[i]);
  CHECK(ctx == sentinel);
  vkDestroyDevice(device, NULL);

  /* Half of them: only the missing ones named. */
  device = make_device(2, &info, queues, &f12, &f13);
  vkGetDeviceQueue(device, family, 0, &queue);
  ext.device = device;
  ext.queue = queue;
  CHECK_FAILS(gqavk_context_create_external(&ext, &ctx), GQAVK_ERROR_UNSUPPORTED, NULL,
              "subgroupSizeControl, computeFullSubgroups");
  CHECK(strstr(gqavk_last_error(NULL), "bufferDeviceAddress") == NULL);
  CHECK(strstr(gqavk_last_error(NULL), "timelineSemaphore") == NULL);
  vkDestroyDevice(device, NULL);

  /* Bad arguments with real handles. */
  device = make_device(3, &info, queues, &f12, &f13);
  vkGetDeviceQueue(device, family, 0, &queue);
  ext.device = device;
  ext.queue = queue;
  ext.queue_family = 9;
  CHECK_FAILS(gqavk_context_create_external(&ext, &ctx), GQAVK_ERROR_INVALID_ARGUMENT, NULL,
              "queue_family 9");
  ext.queue_family = family;
  ext.device_create_info = NULL;
  CHECK_FAILS(gqavk_context_create_external(&ext, &ctx), GQAVK_ERROR_INVALID_ARGUMENT, NULL,
              "create_info");
  ext.device_create_info = &info;
  memset(&lock, 0, sizeof(lock));
  ext.lock_queue = lock_queue;
  ext.queue_lock_user_data = &lock;
  CHECK_FAILS(gqavk_context_create_external(&ext, &ctx), GQAVK_ERROR_INVALID_ARGUMENT, NULL,
              "unlock_queue");
  ext.lock_queue = NULL;
  ext.unlock_queue = unlock_queue;
  CHECK_FAILS(gqavk_context_create_external(&ext, &ctx), GQAVK_ERROR_INVALID_ARGUMENT, NULL,
              "lock_queue");
  ext.unlock_queue = NULL;
  ext.physical_device = VK_NULL_HANDLE;
  CHECK_FAILS(gqavk_context_create_external(&ext, &ctx), GQAVK_ERROR_INVALID_ARGUMENT, NULL,
              "physical_device");
  ext.physical_device = phys;
  ext.device = VK_NULL_HANDLE;
  CHECK_FAILS(gqavk_context_create_external(&ext, &ctx), GQAVK_ERROR_INVALID_ARGUMENT, NULL,
              "device");
  ext.device = device;
  ext.queue = VK_NULL_HANDLE;
  CHECK_FAILS(gqavk_context_create_external(&ext, &ctx), GQAVK_ERROR_INVALID_ARGUMENT, NULL,
              "queue");
  CHECK(ctx == sentinel && lock.locks == 0);
  vkDestroyDevice(device, NULL);
}

/* ---- The reference --------------------------------------------------------------------------- */

/* Decode of query rows q [rows, H, D] over sequences seqs[rows] of `layer` in the host copy. */
static void reference_decode(const float* q, const uint32_t* seqs, uint32_t rows, uint32_t layer,
                             const uint32_t* lengths, double* out) {
  uint32_t r;
  for (r = 0; r < rows; ++r) {
    const uint32_t s = seqs[r];
    c_reference_attention(q + (size_t)r * H * D, host_k[s][layer], host_v[s][layer], H, G, 1,
                          lengths[r], D, CAP, 0, out + (size_t)r * H * D);
  }
}

/* ---- The test -------------------------------------------------------------------------------- */

int main(void) {
  VkDeviceCreateInfo device_info;
  VkDeviceQueueCreateInfo queues[2];
  VkPhysicalDeviceVulkan12Features f12;
  VkPhysicalDeviceVulkan13Features f13;
  VkDevice device;
  VkQueue gqavk_queue = VK_NULL_HANDLE, app_queue = VK_NULL_HANDLE;
  uint32_t app_family;
  queue_lock lock;
  gqavk_external_device_info ext;
  gqavk_context* ctx = NULL;
  gqavk_device_info dev;
  VkCommandPool pool = VK_NULL_HANDLE, app_pool = VK_NULL_HANDLE;
  VkCommandBuffer cmds[4 + 2]; /* upload, readback, fill check, spare, then the step's frames */
  VkCommandBuffer app_cmd = VK_NULL_HANDLE;
  VkFence fence = VK_NULL_HANDLE, app_fence = VK_NULL_HANDLE;
  VkSemaphore timeline = VK_NULL_HANDLE, handoff = VK_NULL_HANDLE;
  VkDeviceSize align, pool_offset, pool_bytes, kv_offset, kv_bytes, io_offset, io_bytes;
  own_buffer pool_vk, data_vk, staging;
  gqavk_buffer *pool_buf = NULL, *kv_buf = NULL, *io_buf = NULL;
  gqavk_kv_cache_create_info cache_info;
  gqavk_kv_memory memory;
  gqavk_kv_cache* cache = NULL;
  gqavk_decode_plan* decode = NULL;
  gqavk_prefill_plan* prefill = NULL;
  gqavk_model* model = NULL;
  gqavk_decode_step* step = NULL;
  uint32_t s, l, t, i;
  const uint32_t canary = 0xABABABABu;

  make_instance();
  pick_device();
  query_features();
  pick_queues();
  printf(
      "device %s (Vulkan %u.%u), queue family %u with %u queue(s) for the test, other family %d\n",
      props.deviceName, VK_API_VERSION_MAJOR(props.apiVersion),
      VK_API_VERSION_MINOR(props.apiVersion), family, family_queues,
      other_family == UINT32_MAX ? -1 : (int)other_family);
  test_refusals();

  /* The device with what gqavk needs, and gqavk's context on it with the test's queue lock. */
  device = make_device(3, &device_info, queues, &f12, &f13);
  vkGetDeviceQueue(device, family, 0, &gqavk_queue);
  if (family_queues == 2) {
    app_family = family;
    vkGetDeviceQueue(device, family, 1, &app_queue);
  } else if (other_family != UINT32_MAX) {
    app_family = other_family;
    concurrent = 1;
    vkGetDeviceQueue(device, other_family, 0, &app_queue);
  } else {
    app_family = family;
    app_queue = gqavk_queue; /* shared, under the lock */
  }
  memset(&lock, 0, sizeof(lock));
  memset(&ext, 0, sizeof(ext));
  ext.struct_size = sizeof(ext);
  ext.instance = instance;
  ext.physical_device = phys;
  ext.device = device;
  ext.device_create_info = &device_info;
  ext.queue_family = family;
  ext.queue = gqavk_queue;
  ext.lock_queue = lock_queue;
  ext.unlock_queue = unlock_queue;
  ext.queue_lock_user_data = &lock;
  CHECK_OK(gqavk_context_create_external(&ext, &ctx));
  if (ctx == NULL) return c_check_summary("c_api_byo_test");
  memset(&dev, 0, sizeof(dev));
  dev.struct_size = sizeof(dev);
  CHECK_OK(gqavk_context_device_info(ctx, &dev));
  CHECK(strcmp(dev.name, props.deviceName) == 0);
  CHECK(dev.buffer_device_address == 1 && dev.timeline_semaphore == 1);

  /* The test's command pools, fences and timeline. */
  {
    VkCommandPoolCreateInfo pool_info;
    VkCommandBufferAllocateInfo alloc;
    VkFenceCreateInfo fence_info;
    VkSemaphoreTypeCreateInfo type_info;
    VkSemaphoreCreateInfo sem_info;
    memset(&pool_info, 0, sizeof(pool_info));
    pool_info.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO;
    pool_info.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT; /* cmds[0] is re-recorded */
    pool_info.queueFamilyIndex = family;
    VK_CHECK(vkCreateCommandPool(device, &pool_info, NULL, &pool));
    pool_info.queueFamilyIndex = app_family;
    VK_CHECK(vkCreateCommandPool(device, &pool_info, NULL, &app_pool));
    memset(&alloc, 0, sizeof(alloc));
    alloc.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO;
    alloc.commandPool = pool;
    alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    alloc.commandBufferCount = 6;
    VK_CHECK(vkAllocateCommandBuffers(device, &alloc, cmds));
    alloc.commandPool = app_pool;
    alloc.commandBufferCount = 1;
    VK_CHECK(vkAllocateCommandBuffers(device, &alloc, &app_cmd));
    memset(&fence_info, 0, sizeof(fence_info));
    fence_info.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO;
    VK_CHECK(vkCreateFence(device, &fence_info, NULL, &fence));
    VK_CHECK(vkCreateFence(device, &fence_info, NULL, &app_fence));
    memset(&type_info, 0, sizeof(type_info));
    type_info.sType = VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO;
    type_info.semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE;
    memset(&sem_info, 0, sizeof(sem_info));
    sem_info.sType = VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO;
    sem_info.pNext = &type_info;
    VK_CHECK(vkCreateSemaphore(device, &sem_info, NULL, &timeline));
    VK_CHECK(vkCreateSemaphore(device, &sem_info, NULL, &handoff));
  }

  /* The cache's shape and the pool it needs. */
  cache_info = c_cache_info(SLOTS, G, D, CAP, GQAVK_DTYPE_F32, BLOCK, LAYERS);
  memset(&memory, 0, sizeof(memory));
  memory.struct_size = sizeof(memory);
  CHECK_OK(gqavk_kv_cache_plan_memory(&cache_info, &memory));
  pool_bytes = memory.pool_bytes;
  CHECK(pool_bytes == (VkDeviceSize)(SLOTS * LAYERS * (CAP / BLOCK) + 1) * BLOCK * 2 * G * D * 4);

  /* Offsets: multiples of the device's storage and texel alignments and of 16, never 0. */
  align = 16;
  if (props.limits.minStorageBufferOffsetAlignment > align) {
    align = props.limits.minStorageBufferOffsetAlignment;
  }
  if (props.limits.minTexelBufferOffsetAlignment > align) {
    align = props.limits.minTexelBufferOffsetAlignment;
  }
  pool_offset = 2 * align;
  kv_offset = align;
  kv_bytes = (VkDeviceSize)2 * LAYERS * PROMPT_TOKENS * G * D * 4; /* K then V, layer by layer */
  io_offset = round_up(kv_offset + kv_bytes, align) + align;
  /* Step I/O per layer: q [2, H, D], k and v [2, G, D], out [2, H, D]; the layers follow. */
  io_bytes = (VkDeviceSize)LAYERS * SLOTS * (2 * H + 2 * G) * D * 4;

  /* The pool buffer with a canary before and after gqavk's range; the data buffer (appended K/V and
   * the step's I/O, two wraps of one VkBuffer); a host-visible staging buffer. */
  pool_vk = make_buffer(
      device, pool_offset + pool_bytes + 256,
      VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
          VK_BUFFER_USAGE_TRANSFER_DST_BIT | VK_BUFFER_USAGE_UNIFORM_TEXEL_BUFFER_BIT |
          VK_BUFFER_USAGE_STORAGE_TEXEL_BUFFER_BIT | VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT,
      0, 1);
  data_vk = make_buffer(device, io_offset + io_bytes + 256,
                        VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                            VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                        0, 0);
  staging = make_buffer(device, 256 * 1024,
                        VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT, 1, 0);
  CHECK(kv_bytes + io_bytes + 2 * pool_offset + 512 <= staging.bytes);

  /* Canaries: the whole pool buffer filled by the test before gqavk sees it. */
  begin(app_cmd);
  vkCmdFillBuffer(app_cmd, pool_vk.buffer, 0, VK_WHOLE_SIZE, canary);
  VK_CHECK(vkEndCommandBuffer(app_cmd));
  submit(device, app_queue, &lock, &app_cmd, 1, app_fence);

  /* Wraps: refused where the offset is not aligned; accepted at non-zero aligned offsets. */
  CHECK_FAILS(gqavk_buffer_wrap(ctx, pool_vk.buffer, pool_offset + 4, pool_bytes, &pool_buf),
              GQAVK_ERROR_INVALID_ARGUMENT, ctx, "offset");
  CHECK_FAILS(gqavk_buffer_wrap(ctx, pool_vk.buffer, pool_offset, pool_bytes + 512, &pool_buf),
              GQAVK_ERROR_INVALID_ARGUMENT, ctx, "does not fit");
  CHECK_OK(gqavk_buffer_wrap(ctx, pool_vk.buffer, pool_offset, pool_bytes, &pool_buf));
  CHECK_OK(gqavk_buffer_wrap(ctx, data_vk.buffer, kv_offset, kv_bytes, &kv_buf));
  CHECK_OK(gqavk_buffer_wrap(ctx, data_vk.buffer, io_offset, io_bytes, &io_buf));
  {
    VkBuffer handle = VK_NULL_HANDLE;
    uint64_t offset = 0;
    CHECK_OK(gqavk_buffer_vk_handle(io_buf, &handle, &offset));
    CHECK(handle == data_vk.buffer && offset == io_offset);
  }

  /* The cache with its pool in the test's buffer. */
  cache_info.pool = pool_buf;
  CHECK_OK(gqavk_kv_cache_create(ctx, &cache_info, &cache));
  CHECK(lock.locks >= 1 && lock.locks == lock.unlocks && lock.misuses == 0);
  if (cache == NULL) return c_check_summary("c_api_byo_test");
  CHECK_FAILS(gqavk_buffer_destroy(pool_buf), GQAVK_ERROR_IN_USE, ctx, "pool");

  /* The prompts' K and V: [tokens, G, D] per layer (sequence 0's tokens, then sequence 1's), K of
   * every layer then V of every layer, written by the test's own copy from staging. Then appended:
   * the copy is submitted to gqavk's queue and not waited for; gqavk's first barrier orders it. */
  {
    float* src = (float*)staging.mapped;
    const size_t layer_values = (size_t)PROMPT_TOKENS * G * D;
    VkBufferCopy region;
    gqavk_kv_token tokens[PROMPT_TOKENS];
    for (s = 0; s < SLOTS; ++s) {
      for (l = 0; l < LAYERS; ++l) {
        c_random_values(host_k[s][l], G * CAP * D, 1000 + 10 * s + l);
        c_random_values(host_v[s][l], G * CAP * D, 2000 + 10 * s + l);
        host_len[s][l] = kPrompt[s];
      }
    }
    for (l = 0; l < LAYERS; ++l) {
      uint32_t row = 0;
      for (s = 0; s < SLOTS; ++s) {
        for (t = 0; t < kPrompt[s]; ++t, ++row) {
          uint32_t g;
          tokens[row].seq = s;
          tokens[row].position = t;
          for (g = 0; g < G; ++g) {
            memcpy(src + l * layer_values + ((size_t)row * G + g) * D,
                   host_k[s][l] + ((size_t)g * CAP + t) * D, D * sizeof(float));
            memcpy(src + (LAYERS + l) * layer_values + ((size_t)row * G + g) * D,
                   host_v[s][l] + ((size_t)g * CAP + t) * D, D * sizeof(float));
          }
        }
      }
    }
    region.srcOffset = 0;
    region.dstOffset = kv_offset;
    region.size = kv_bytes;
    begin(cmds[0]);
    vkCmdCopyBuffer(cmds[0], staging.buffer, data_vk.buffer, 1, &region);
    VK_CHECK(vkEndCommandBuffer(cmds[0]));
    submit(device, gqavk_queue, &lock, &cmds[0], 1, VK_NULL_HANDLE);
    for (l = 0; l < LAYERS; ++l) {
      uint32_t len = 0;
      CHECK_OK(gqavk_kv_cache_append(cache, l, tokens, PROMPT_TOKENS, kv_buf, kv_buf,
                                     GQAVK_DTYPE_F32, l * layer_values,
                                     (LAYERS + l) * layer_values));
      CHECK_OK(gqavk_kv_cache_length(cache, 0, l, &len));
      CHECK(len == kPrompt[0]);
      CHECK_OK(gqavk_kv_cache_length(cache, 1, l, &len));
      CHECK(len == kPrompt[1]);
    }
    lock_queue(&lock); /* the test's own copy is done before cmds[0] is re-recorded */
    VK_CHECK(vkQueueWaitIdle(gqavk_queue));
    unlock_queue(&lock);
  }

  /* Decode over layer 0: both sequences' whole prompts. */
  {
    gqavk_decode_plan_create_info info;
    float q[SLOTS * H * D], out[SLOTS * H * D];
    double want[SLOTS * H * D];
    const uint32_t seqs[SLOTS] = {0, 1};
    memset(&info, 0, sizeof(info));
    info.struct_size = sizeof(info);
    info.q_heads = H;
    CHECK_OK(gqavk_decode_plan_create(ctx, cache, &info, &decode));
    c_random_values(q, SLOTS * H * D, 31);
    CHECK_OK(gqavk_decode_plan_run(decode, q, SLOTS * H * D, kPrompt, SLOTS, out, SLOTS * H * D));
    reference_decode(q, seqs, SLOTS, 0, kPrompt, want);
    CHECK(c_max_abs_diff(out, want, SLOTS * H * D) <= kTolerance);
    printf("decode: max |error| %.3g\n", c_max_abs_diff(out, want, SLOTS * H * D));
  }

  /* Prefill over layer 1, a ragged causal batch: the last 5 of sequence 0's 13 tokens, and all 7
   * of sequence 1's. */
  {
    enum { LQ0 = 5, LQ1 = 7, QN = H * (LQ0 + LQ1) * D };
    gqavk_prefill_plan_create_info info;
    gqavk_prefill_seq seqs[2];
    float q[QN], out[QN];
    double want[QN];
    memset(&info, 0, sizeof(info));
    info.struct_size = sizeof(info);
    info.q_heads = H;
    info.layer = 1;
    CHECK_OK(gqavk_prefill_plan_create(ctx, cache, &info, &prefill));
    seqs[0].seq = 0;
    seqs[0].queries = LQ0;
    seqs[0].kv_length = kPrompt[0];
    seqs[1].seq = 1;
    seqs[1].queries = LQ1;
    seqs[1].kv_length = kPrompt[1];
    c_random_values(q, QN, 41);
    CHECK_OK(gqavk_prefill_plan_run(prefill, q, QN, seqs, 2, out, QN));
    c_reference_attention(q, host_k[0][1], host_v[0][1], H, G, LQ0, kPrompt[0], D, CAP, 1, want);
    c_reference_attention(q + H * LQ0 * D, host_k[1][1], host_v[1][1], H, G, LQ1, kPrompt[1], D,
                          CAP, 1, want + H * LQ0 * D);
    CHECK(c_max_abs_diff(out, want, QN) <= kTolerance);
    printf("prefill: max |error| %.3g\n", c_max_abs_diff(out, want, QN));
  }

  /* The decode step: two layers, device I/O in the test's buffer, recorded into the test's command
   * buffers (one per frame, recorded once, replayed), submitted by the test with its upload before
   * and its readback after, a timeline semaphore signalled with the ticket. */
  {
    gqavk_layer_desc layer;
    gqavk_decode_step_create_info info;
    gqavk_step_device_io io;
    uint32_t frames = 0;
    uint64_t recordings = 9;
    int recorded[2] = {0, 0};
    const VkDeviceSize q_layer = (VkDeviceSize)SLOTS * H * D * 4;  /* bytes of one layer's q */
    const VkDeviceSize kv_layer = (VkDeviceSize)SLOTS * G * D * 4; /* of one layer's k or v */
    const uint32_t rows_of[STEPS][SLOTS] = {{0, 1}, {1, 0}, {1, 0}, {0, 1}, {0, 1}};
    const uint32_t row_count[STEPS] = {2, 2, 1, 2, 1};
    VkBufferCopy up, down;

    CHECK_OK(gqavk_model_create("byo", &model));
    layer = c_layer_desc(H, G, D, GQAVK_DTYPE_F32);
    for (l = 0; l < LAYERS; ++l) CHECK_OK(gqavk_model_add_layer(model, &layer));
    memset(&info, 0, sizeof(info));
    info.struct_size = sizeof(info);
    info.max_batch = SLOTS;
    info.frames = 2;
    CHECK_OK(gqavk_decode_step_create(ctx, cache, model, &info, &step));
    CHECK_OK(gqavk_model_destroy(model)); /* the step holds a copy */
    model = NULL;
    if (step == NULL) return c_check_summary("c_api_byo_test");
    CHECK_OK(gqavk_decode_step_frames(step, &frames));
    CHECK(frames == 2);

    /* io: q of every layer, then k, then v, then out (each layer's block holds 2 rows). */
    memset(&io, 0, sizeof(io));
    io.struct_size = sizeof(io);
    io.q.buffer = io.k.buffer = io.v.buffer = io.out.buffer = io_buf;
    io.q.offset = 0;
    io.k.offset = LAYERS * q_layer;
    io.v.offset = io.k.offset + LAYERS * kv_layer;
    io.out.offset = io.v.offset + LAYERS * kv_layer;
    CHECK(io.out.offset + LAYERS * q_layer == io_bytes);
    CHECK_OK(gqavk_decode_step_set_device_io(step, &io));
    CHECK_FAILS(gqavk_buffer_destroy(io_buf), GQAVK_ERROR_IN_USE, ctx, "buffer");

    /* The test's upload (staging [0, out) -> data_vk at io_offset) and readback (out -> staging
     * past the inputs), recorded once. */
    up.srcOffset = 0;
    up.dstOffset = io_offset;
    up.size = io.out.offset;
    down.srcOffset = io_offset + io.out.offset;
    down.dstOffset = 65536;
    down.size = LAYERS * q_layer;
    begin(cmds[0]);
    vkCmdCopyBuffer(cmds[0], staging.buffer, data_vk.buffer, 1, &up);
    VK_CHECK(vkEndCommandBuffer(cmds[0]));
    begin(cmds[1]);
    vkCmdCopyBuffer(cmds[1], data_vk.buffer, staging.buffer, 1, &down);
    barrier_to_host(cmds[1]);
    VK_CHECK(vkEndCommandBuffer(cmds[1]));

    for (i = 0; i < STEPS; ++i) {
      const uint32_t rows = row_count[i];
      const uint32_t* seqs = rows_of[i];
      float* in = (float*)staging.mapped;
      const float* out = (const float*)((const char*)staging.mapped + 65536);
      uint64_t ticket = 0;
      uint32_t frame, r;
      VkCommandBuffer batch[3];
      VkTimelineSemaphoreSubmitInfo tl;
      VkSubmitInfo submit_info;
      VkSemaphoreWaitInfo wait_info;

      /* Inputs of every row of every layer; the new K/V go into the host copy too. */
      for (l = 0; l < LAYERS; ++l) {
        float* q = in + (io.q.offset + l * q_layer) / 4;
        float* k = in + (io.k.offset + l * kv_layer) / 4;
        float* v = in + (io.v.offset + l * kv_layer) / 4;
        c_random_values(q, SLOTS * H * D, 100 + 10 * i + l);
        c_random_values(k, SLOTS * G * D, 200 + 10 * i + l);
        c_random_values(v, SLOTS * G * D, 300 + 10 * i + l);
        for (r = 0; r < rows; ++r) {
          const uint32_t s_ = seqs[r], pos = host_len[s_][l];
          uint32_t g;
          for (g = 0; g < G; ++g) {
            memcpy(host_k[s_][l] + ((size_t)g * CAP + pos) * D, k + ((size_t)r * G + g) * D,
                   D * sizeof(float));
            memcpy(host_v[s_][l] + ((size_t)g * CAP + pos) * D, v + ((size_t)r * G + g) * D,
                   D * sizeof(float));
          }
          host_len[s_][l] = pos + 1;
        }
      }

      if (i < RECORDED) {
        CHECK_OK(gqavk_decode_step_prepare(step, seqs, rows, NULL, 0, NULL, 0, NULL, 0, &ticket));
        CHECK(ticket == i + 1);
        frame = (uint32_t)((ticket - 1) % frames);
        if (!recorded[frame]) {
          begin(cmds[4 + frame]);
          CHECK_OK(gqavk_decode_step_record(step, cmds[4 + frame], frame));
          VK_CHECK(vkEndCommandBuffer(cmds[4 + frame]));
          recorded[frame] = 1;
        }
        batch[0] = cmds[0];
        batch[1] = cmds[4 + frame];
        batch[2] = cmds[1];
        memset(&tl, 0, sizeof(tl));
        tl.sType = VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO;
        tl.signalSemaphoreValueCount = 1;
        tl.pSignalSemaphoreValues = &ticket;
        memset(&submit_info, 0, sizeof(submit_info));
        submit_info.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
        submit_info.pNext = &tl;
        submit_info.commandBufferCount = 3;
        submit_info.pCommandBuffers = batch;
        submit_info.signalSemaphoreCount = 1;
        submit_info.pSignalSemaphores = &timeline;
        lock_queue(&lock);
        VK_CHECK(vkQueueSubmit(gqavk_queue, 1, &submit_info, VK_NULL_HANDLE));
        unlock_queue(&lock);
        CHECK_OK(gqavk_decode_step_submitted(step, ticket, timeline, ticket));
        CHECK_OK(gqavk_decode_step_wait(step, ticket, NULL, 0));
        memset(&wait_info, 0, sizeof(wait_info));
        wait_info.sType = VK_STRUCTURE_TYPE_SEMAPHORE_WAIT_INFO;
        wait_info.semaphoreCount = 1;
        wait_info.pSemaphores = &timeline;
        wait_info.pValues = &ticket;
        VK_CHECK(vkWaitSemaphores(device, &wait_info, UINT64_MAX));
      } else {
        /* gqavk submits the step itself, between the test's upload (which signals `handoff`, and
         * which the step waits for) and its readback (which waits for the step's signal). */
        const uint64_t uploaded = 2 * (i - RECORDED) + 1, stepped = uploaded + 1;
        const VkPipelineStageFlags wait_stage = VK_PIPELINE_STAGE_TRANSFER_BIT;
        gqavk_step_sync sync;
        memset(&tl, 0, sizeof(tl));
        tl.sType = VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO;
        tl.signalSemaphoreValueCount = 1;
        tl.pSignalSemaphoreValues = &uploaded;
        memset(&submit_info, 0, sizeof(submit_info));
        submit_info.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
        submit_info.pNext = &tl;
        submit_info.commandBufferCount = 1;
        submit_info.pCommandBuffers = &cmds[0];
        submit_info.signalSemaphoreCount = 1;
        submit_info.pSignalSemaphores = &handoff;
        lock_queue(&lock);
        VK_CHECK(vkQueueSubmit(gqavk_queue, 1, &submit_info, VK_NULL_HANDLE));
        unlock_queue(&lock);
        memset(&sync, 0, sizeof(sync));
        sync.struct_size = sizeof(sync);
        sync.wait = handoff;
        sync.wait_value = uploaded;
        sync.signal = handoff;
        sync.signal_value = stepped;
        CHECK_OK(
            gqavk_decode_step_submit(step, seqs, rows, NULL, 0, NULL, 0, NULL, 0, &sync, &ticket));
        CHECK(ticket == i + 1);
        memset(&tl, 0, sizeof(tl));
        tl.sType = VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO;
        tl.waitSemaphoreValueCount = 1;
        tl.pWaitSemaphoreValues = &stepped;
        memset(&submit_info, 0, sizeof(submit_info));
        submit_info.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO;
        submit_info.pNext = &tl;
        submit_info.waitSemaphoreCount = 1;
        submit_info.pWaitSemaphores = &handoff;
        submit_info.pWaitDstStageMask = &wait_stage;
        submit_info.commandBufferCount = 1;
        submit_info.pCommandBuffers = &cmds[1];
        lock_queue(&lock);
        VK_CHECK(vkQueueSubmit(gqavk_queue, 1, &submit_info, fence));
        unlock_queue(&lock);
        VK_CHECK(vkWaitForFences(device, 1, &fence, VK_TRUE, UINT64_MAX));
        VK_CHECK(vkResetFences(device, 1, &fence));
        CHECK_OK(gqavk_decode_step_wait(step, ticket, NULL, 0));
      }

      if (i + 1 == RECORDED) {
        CHECK_OK(gqavk_decode_step_recordings(step, &recordings));
        CHECK(recordings == 0); /* the step's own command buffers were never recorded */
      }
      for (l = 0; l < LAYERS; ++l) {
        const float* q = in + (io.q.offset + l * q_layer) / 4;
        const float* o = out + l * q_layer / 4;
        double want[SLOTS * H * D];
        uint32_t lengths[SLOTS], len = 0;
        double err;
        for (r = 0; r < rows; ++r) lengths[r] = host_len[seqs[r]][l];
        reference_decode(q, seqs, rows, l, lengths, want);
        err = c_max_abs_diff(o, want, (size_t)rows * H * D);
        CHECK(err <= kTolerance);
        printf("step %u layer %u: max |error| %.3g\n", i + 1, l, err);
        for (r = rows; r < SLOTS; ++r) { /* rows past the step's are zero */
          size_t j;
          for (j = 0; j < (size_t)H * D; ++j) CHECK(o[(size_t)r * H * D + j] == 0.0f);
        }
        for (r = 0; r < SLOTS; ++r) {
          CHECK_OK(gqavk_kv_cache_length(cache, r, l, &len));
          CHECK(len == host_len[r][l]);
        }
      }
    }
    CHECK_OK(gqavk_decode_step_recordings(step, &recordings));
    CHECK(recordings >= 1); /* gqavk_decode_step_submit recorded the step's own */
  }

  /* The prompt decode again over the grown cache (plans see what steps appended). */
  {
    float q[SLOTS * H * D], out[SLOTS * H * D];
    double want[SLOTS * H * D];
    const uint32_t seqs[SLOTS] = {0, 1};
    const uint32_t lengths[SLOTS] = {host_len[0][0], host_len[1][0]};
    c_random_values(q, SLOTS * H * D, 51);
    CHECK_OK(gqavk_decode_plan_run(decode, q, SLOTS * H * D, lengths, SLOTS, out, SLOTS * H * D));
    reference_decode(q, seqs, SLOTS, 0, lengths, want);
    CHECK(c_max_abs_diff(out, want, SLOTS * H * D) <= kTolerance);
  }

  /* gqavk used the test's lock around each of its submits, never nested. */
  CHECK(lock.misuses == 0 && lock.locked == 0 && lock.locks == lock.unlocks);
  printf("queue lock: %u locks (the test's own submits included)\n", lock.locks);

  /* Destroy in order: the context refuses while anything lives. */
  CHECK_FAILS(gqavk_context_destroy(ctx), GQAVK_ERROR_IN_USE, ctx, "destroy them first");
  CHECK_OK(gqavk_decode_step_destroy(step));
  CHECK_OK(gqavk_decode_plan_destroy(decode));
  CHECK_OK(gqavk_prefill_plan_destroy(prefill));
  CHECK_FAILS(gqavk_context_destroy(ctx), GQAVK_ERROR_IN_USE, ctx, "cache");
  CHECK_OK(gqavk_kv_cache_destroy(cache));
  CHECK_OK(gqavk_buffer_destroy(pool_buf));
  CHECK_OK(gqavk_buffer_destroy(kv_buf));
  CHECK_OK(gqavk_buffer_destroy(io_buf));
  CHECK_OK(gqavk_context_destroy(ctx));

  /* The test's device still works, on its own queue: its canaries around gqavk's pool range are
   * intact, and a fill of the range reads back. */
  {
    VkBufferCopy regions[3];
    const uint32_t* back = (const uint32_t*)staging.mapped;
    const uint32_t head = (uint32_t)(pool_offset / 4), tail = 64, filled = 16;
    VkBufferMemoryBarrier barrier;
    memset(staging.mapped, 0, 4096);
    regions[0].srcOffset = 0;
    regions[0].dstOffset = 0;
    regions[0].size = pool_offset;
    regions[1].srcOffset = pool_offset + pool_bytes;
    regions[1].dstOffset = pool_offset;
    regions[1].size = 256;
    regions[2].srcOffset = pool_offset;
    regions[2].dstOffset = pool_offset + 256;
    regions[2].size = filled * 4;
    memset(&barrier, 0, sizeof(barrier));
    barrier.sType = VK_STRUCTURE_TYPE_BUFFER_MEMORY_BARRIER;
    barrier.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
    barrier.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT;
    barrier.srcQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
    barrier.dstQueueFamilyIndex = VK_QUEUE_FAMILY_IGNORED;
    barrier.buffer = pool_vk.buffer;
    barrier.offset = 0;
    barrier.size = VK_WHOLE_SIZE;
    VK_CHECK(vkResetCommandPool(device, app_pool, 0));
    begin(app_cmd);
    vkCmdCopyBuffer(app_cmd, pool_vk.buffer, staging.buffer, 2, regions); /* outside the fill */
    vkCmdFillBuffer(app_cmd, pool_vk.buffer, pool_offset, pool_bytes, 0x12345678u);
    vkCmdPipelineBarrier(app_cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT, 0,
                         0, NULL, 1, &barrier, 0, NULL);
    vkCmdCopyBuffer(app_cmd, pool_vk.buffer, staging.buffer, 1, &regions[2]);
    barrier_to_host(app_cmd);
    VK_CHECK(vkEndCommandBuffer(app_cmd));
    submit(device, app_queue, &lock, &app_cmd, 1, app_fence);
    for (i = 0; i < head; ++i) CHECK(back[i] == canary);
    for (i = 0; i < tail; ++i) CHECK(back[head + i] == canary);
    for (i = 0; i < filled; ++i) CHECK(back[head + tail + i] == 0x12345678u);
  }

  vkDestroySemaphore(device, timeline, NULL);
  vkDestroySemaphore(device, handoff, NULL);
  vkDestroyFence(device, fence, NULL);
  vkDestroyFence(device, app_fence, NULL);
  vkDestroyCommandPool(device, pool, NULL);
  vkDestroyCommandPool(device, app_pool, NULL);
  destroy_buffer(device, &staging);
  destroy_buffer(device, &data_vk);
  destroy_buffer(device, &pool_vk);
  vkDestroyDevice(device, NULL);
  if (messenger != VK_NULL_HANDLE) {
    PFN_vkDestroyDebugUtilsMessengerEXT destroy_messenger =
        (PFN_vkDestroyDebugUtilsMessengerEXT)vkGetInstanceProcAddr(
            instance, "vkDestroyDebugUtilsMessengerEXT");
    destroy_messenger(instance, messenger, NULL);
  }
  vkDestroyInstance(instance, NULL);
  CHECK(vk_messages == 0);
  printf("validation messages: %u\n", vk_messages);
  return c_check_summary("c_api_byo_test");
}
