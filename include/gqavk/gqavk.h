/* gqavk's C API: grouped-query attention on any Vulkan device, from C, Rust, Zig, Python (ctypes,
 * cffi) or any language with a C FFI. C99; a thin layer over the C++ API (gqavk.hpp), one function
 * per C++ operation. The C++ headers document each operation's semantics in full; this header says
 * what differs in C.
 *
 * Conventions
 * - Every function returns a gqavk_status (GQAVK_SUCCESS is 0; errors are negative) and never
 *   throws, aborts or exits. Results come back through pointer arguments, which are written only
 *   on success.
 * - gqavk_last_error(context) is the message of the last failing call on that context's objects;
 *   gqavk_last_error(NULL) is the message of the calling thread's last failing call of any kind.
 *   Messages name the bad value and what was expected.
 * - Structs that go in or out begin with `struct_size`: set it to sizeof(the struct). A library
 *   newer than the header reads only the fields within struct_size and gives later fields their
 *   zero defaults; an older library refuses a larger struct unless the bytes it does not know are
 *   zero (GQAVK_ERROR_UNSUPPORTED: the header is newer than the library). Zero-initialise
 *   structs and set the fields you need: `gqavk_kv_cache_create_info info =
 *   {.struct_size = sizeof(info)};` (a designated initializer: no -Wextra warning for the rest).
 * - Counts of float and integer arrays are element counts, never bytes. Flags (uint32_t) are 0 or
 *   1; other values are refused.
 * - A destroy function accepts NULL. Destroying an object that others still use (a context with
 *   live buffers, caches, plans or steps; a cache with live plans or steps; a buffer serving as a
 *   cache's pool or a step's device I/O) fails with GQAVK_ERROR_IN_USE and changes nothing.
 *
 * Threads
 * - Different contexts may be used from different threads at once, with no locking.
 * - One context and everything made from it (buffers, caches, plans, steps) share its queue,
 *   staging memory and command buffers: calls on them must not overlap. Several threads may share
 *   a context when the application serialises those calls (e.g. one mutex per context).
 * - gqavk_list_devices, gqavk_kv_cache_plan_memory, the gqavk_model functions (on different
 *   models) and the string functions may be called from any thread at any time.
 * - A context uses one queue (its own, or the application's with the application's lock) and only
 *   memory it allocates or is handed; it never waits for the whole device.
 *
 * Synchronisation with the application's own work on the device (gqavk_context_create_external)
 * - Every gqavk submission begins with a memory barrier from all commands to all commands
 *   (VK_PIPELINE_STAGE_ALL_COMMANDS_BIT, memory write to memory read and write). So writes the
 *   application submitted earlier to the same queue are visible to gqavk; work on other queues
 *   must be finished (fence, or a semaphore: gqavk_step_sync.wait) before the gqavk call.
 * - Functions that block (everything but gqavk_decode_step_submit / _prepare / _record) return
 *   once the device is done: their device writes (the KV pool, output buffers) are complete and
 *   available to later submissions on any queue of the device.
 * - gqavk_decode_step_submit returns before the step runs. Its writes (the KV pool and, with
 *   device I/O, the output buffer) are complete when gqavk_decode_step_wait returns for its ticket,
 *   or when the step's signal semaphore (gqavk_step_sync.signal) reaches its value; the recorded
 *   commands end with a memory barrier making their writes available to all later commands.
 * - gqavk_decode_step_record records those same commands into the application's command buffer
 *   (see the function).
 */
#ifndef GQAVK_H
#define GQAVK_H

#include <stddef.h>
#include <stdint.h>
#include <vulkan/vulkan_core.h>

#include "gqavk/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Version ---- */

#define GQAVK_VERSION_MAJOR 0
#define GQAVK_VERSION_MINOR 1
#define GQAVK_VERSION_PATCH 0
/* major << 22 | minor << 12 | patch, as VK_MAKE_API_VERSION without the variant. */
#define GQAVK_MAKE_VERSION(major, minor, patch) \
  ((((uint32_t)(major)) << 22) | (((uint32_t)(minor)) << 12) | ((uint32_t)(patch)))
#define GQAVK_VERSION \
  GQAVK_MAKE_VERSION(GQAVK_VERSION_MAJOR, GQAVK_VERSION_MINOR, GQAVK_VERSION_PATCH)
#define GQAVK_VERSION_GET_MAJOR(version) (((uint32_t)(version)) >> 22)
#define GQAVK_VERSION_GET_MINOR(version) ((((uint32_t)(version)) >> 12) & 0x3ffu)
#define GQAVK_VERSION_GET_PATCH(version) (((uint32_t)(version)) & 0xfffu)

/* The version of the library linked (GQAVK_VERSION of its build). */
GQAVK_API uint32_t gqavk_version(void);

/* ---- Status and errors ---- */

typedef enum gqavk_status {
  GQAVK_SUCCESS = 0,
  GQAVK_INCOMPLETE = 1,              /* gqavk_list_devices: more devices than slots */
  GQAVK_ERROR_INVALID_ARGUMENT = -1, /* a bad value from the caller (NULL, shape, option) */
  GQAVK_ERROR_UNSUPPORTED = -2,      /* the device lacks a feature or limit */
  GQAVK_ERROR_NO_DEVICE = -3,        /* no Vulkan driver or no usable device */
  GQAVK_ERROR_OUT_OF_MEMORY = -4,    /* host or device memory allocation failed */
  GQAVK_ERROR_VULKAN = -5,           /* a Vulkan call failed for another reason */
  GQAVK_ERROR_OUT_OF_BLOCKS = -6,    /* the KV pool has too few free blocks (nothing changed) */
  GQAVK_ERROR_IN_USE = -7,           /* destroying an object others still use */
  GQAVK_ERROR_INTERNAL = -8,         /* a bug in gqavk: please report the message */
  GQAVK_ERROR_DEVICE_LOST = -9,      /* the device was lost: destroy the context's objects */
  GQAVK_STATUS_MAX_ENUM = 0x7fffffff
} gqavk_status;

/* "GQAVK_SUCCESS", "GQAVK_ERROR_INVALID_ARGUMENT", ...; "unknown gqavk_status" otherwise. */
GQAVK_API const char* gqavk_status_string(gqavk_status status);

typedef struct gqavk_context gqavk_context;

/* The message of the last failing call (see Conventions); "" when there was none. The pointer is
 * valid until the next failing call on the same context (or thread, for NULL). */
GQAVK_API const char* gqavk_last_error(const gqavk_context* context);

/* ---- Devices ---- */

typedef enum gqavk_vendor {
  GQAVK_VENDOR_AMD = 0,
  GQAVK_VENDOR_INTEL = 1,
  GQAVK_VENDOR_NVIDIA = 2,
  GQAVK_VENDOR_APPLE = 3,
  GQAVK_VENDOR_ARM = 4,
  GQAVK_VENDOR_QUALCOMM = 5,
  GQAVK_VENDOR_MESA_CPU = 6,
  GQAVK_VENDOR_OTHER = 7,
  GQAVK_VENDOR_MAX_ENUM = 0x7fffffff
} gqavk_vendor;

typedef enum gqavk_device_type {
  GQAVK_DEVICE_TYPE_DISCRETE = 0,
  GQAVK_DEVICE_TYPE_INTEGRATED = 1,
  GQAVK_DEVICE_TYPE_VIRTUAL = 2,
  GQAVK_DEVICE_TYPE_CPU = 3,
  GQAVK_DEVICE_TYPE_OTHER = 4,
  GQAVK_DEVICE_TYPE_MAX_ENUM = 0x7fffffff
} gqavk_device_type;

#define GQAVK_MAX_NAME 256
#define GQAVK_MAX_HEAPS 16

/* gqavk::DeviceInfo (device_info.hpp). Flags are 0 or 1. Strings are truncated to fit. */
typedef struct gqavk_device_info {
  uint32_t struct_size;
  uint32_t index;
  char name[GQAVK_MAX_NAME];
  gqavk_vendor vendor;
  uint32_t vendor_id;
  uint32_t device_id;
  gqavk_device_type type;
  uint32_t api_version;
  uint32_t driver_id;
  char driver_name[GQAVK_MAX_NAME];
  char driver_info[GQAVK_MAX_NAME];
  uint32_t can_run;
  uint32_t pipeline_statistics;
  uint32_t subgroup_size;
  uint32_t subgroup_ops; /* VkSubgroupFeatureFlags usable in compute shaders */
  uint32_t subgroup_size_control;
  uint32_t compute_full_subgroups;
  uint32_t min_subgroup_size;
  uint32_t max_subgroup_size;
  uint32_t max_workgroup_subgroups;
  uint32_t subgroup_lanes;
  uint32_t bug_partial_subgroups;
  uint32_t storage_buffer_16bit;
  uint32_t shader_float16;
  uint32_t buffer_device_address;
  uint32_t timeline_semaphore;
  uint64_t max_storage_buffer_range;
  uint64_t max_texel_buffer_elements;
  uint64_t max_memory_allocation_size;
  uint64_t max_buffer_size;
  uint32_t max_shared_memory_bytes;
  uint32_t max_workgroup_invocations;
  uint32_t max_workgroup_size[3];
  uint32_t max_workgroup_count[3];
  uint32_t max_push_constants_bytes;
  uint32_t max_descriptor_set_storage_buffers;
  uint32_t max_per_stage_storage_buffers;
  uint32_t timestamp_valid_bits;
  double timestamp_period_ns;
  uint32_t compute_units;
  uint32_t heap_count; /* at most GQAVK_MAX_HEAPS */
  uint64_t heap_size_bytes[GQAVK_MAX_HEAPS];
  uint32_t heap_device_local[GQAVK_MAX_HEAPS];
  uint64_t device_local_bytes;
} gqavk_device_info;

/* Names as gqavk-info prints them ("AMD", "NVIDIA", "Mesa (CPU)", ...; "discrete GPU", "CPU",
 * ...); NULL for a value that is not one of the enum's. */
GQAVK_API const char* gqavk_vendor_string(gqavk_vendor vendor);
GQAVK_API const char* gqavk_device_type_string(gqavk_device_type type);

/* The Vulkan devices gqavk can use (gqavk::list_devices), Vulkan's two-call way: with infos NULL,
 * *count receives the number of devices; otherwise up to *count entries are filled (each entry's
 * struct_size set by the caller), *count receives the number written, and GQAVK_INCOMPLETE says
 * there were more. */
GQAVK_API gqavk_status gqavk_list_devices(uint32_t* count, gqavk_device_info* infos);

/* ---- Contexts ---- */

typedef void (*gqavk_message_fn)(void* user_data, const char* message);

/* gqavk::ContextOptions. */
typedef struct gqavk_context_create_info {
  uint32_t struct_size;
  /* NULL or "": GQAVK_DEVICE from the environment, else the best device that can run work. A
   * number picks by index, other text by name substring. */
  const char* device;
  uint32_t validation; /* 1: enable the Khronos validation layer when installed */
  /* Receives each validation message (NULL: written to stderr), with user_data. */
  gqavk_message_fn on_validation_message;
  void* user_data;
  uint32_t pipeline_statistics; /* 1: keep each pipeline's compiled figures (in-tree tools) */
} gqavk_context_create_info;

/* A context that creates and owns its instance and device. info may be NULL (all defaults). */
GQAVK_API gqavk_status gqavk_context_create(const gqavk_context_create_info* info,
                                            gqavk_context** context);

typedef void (*gqavk_queue_lock_fn)(void* user_data);

/* gqavk::ExternalDevice: the application's instance, device and queue, which gqavk uses and never
 * destroys. The device must be Vulkan 1.2 or newer; of subgroupSizeControl, computeFullSubgroups
 * (Vulkan 1.3, or VK_EXT_subgroup_size_control with the extension enabled), bufferDeviceAddress and
 * timelineSemaphore (Vulkan 1.2), each one the physical device supports must have been enabled:
 * gqavk_context_create_external names those that were not (GQAVK_ERROR_UNSUPPORTED). */
typedef struct gqavk_external_device_info {
  uint32_t struct_size;
  VkInstance instance;
  VkPhysicalDevice physical_device;
  VkDevice device;
  /* The VkDeviceCreateInfo the device was made with (read now, not kept): its queues, extensions
   * and feature structs (pNext chain: VkPhysicalDeviceVulkan12Features,
   * VkPhysicalDeviceVulkan13Features or the per-feature structs). */
  const VkDeviceCreateInfo* device_create_info;
  uint32_t queue_family; /* a compute-capable family the device was made with a queue of */
  VkQueue queue;         /* the queue gqavk submits to */
  /* The application's lock for `queue` when other threads submit to it too: gqavk calls
   * lock_queue(queue_lock_user_data) before and unlock_queue after each vkQueueSubmit and
   * vkQueueWaitIdle. Both or neither. */
  gqavk_queue_lock_fn lock_queue;
  gqavk_queue_lock_fn unlock_queue;
  void* queue_lock_user_data;
  /* 1: keep pipelines' compiled figures, where VK_KHR_pipeline_executable_properties and its
   * pipelineExecutableInfo feature were enabled. */
  uint32_t pipeline_statistics;
} gqavk_external_device_info;

/* A context on the application's device (bring your own device). */
GQAVK_API gqavk_status gqavk_context_create_external(const gqavk_external_device_info* info,
                                                     gqavk_context** context);
/* Destroys a context after everything made from it (GQAVK_ERROR_IN_USE otherwise). Waits for the
 * context's own work only. */
GQAVK_API gqavk_status gqavk_context_destroy(gqavk_context* context);
/* The capability record of the context's device (info->struct_size set by the caller). */
GQAVK_API gqavk_status gqavk_context_device_info(const gqavk_context* context,
                                                 gqavk_device_info* info);
/* Validation messages received so far (0 when validation is off or the device is external). */
GQAVK_API gqavk_status gqavk_context_validation_message_count(const gqavk_context* context,
                                                              uint32_t* count);

/* ---- Device buffers ---- */

typedef struct gqavk_buffer gqavk_buffer;

/* `bytes` (> 0) of device-local memory that gqavk allocates (gqavk::DeviceBuffer). */
GQAVK_API gqavk_status gqavk_buffer_create(gqavk_context* context, uint64_t bytes,
                                           gqavk_buffer** buffer);
/* `bytes` of the application's VkBuffer from `offset` on (gqavk::DeviceBuffer::wrap): not owned;
 * the VkBuffer must outlive the gqavk_buffer and what uses it. offset must be a multiple of the
 * device's storage and texel buffer offset alignments and of 16, bytes a multiple of 16. Usages:
 * STORAGE_BUFFER, TRANSFER_SRC and TRANSFER_DST for inputs and outputs; a KV pool also
 * UNIFORM_TEXEL_BUFFER and STORAGE_TEXEL_BUFFER, and SHADER_DEVICE_ADDRESS where the device has
 * bufferDeviceAddress (memory allocated with VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT). */
GQAVK_API gqavk_status gqavk_buffer_wrap(gqavk_context* context, VkBuffer vk_buffer,
                                         uint64_t offset, uint64_t bytes, gqavk_buffer** buffer);
GQAVK_API gqavk_status gqavk_buffer_destroy(gqavk_buffer* buffer);
GQAVK_API gqavk_status gqavk_buffer_size(const gqavk_buffer* buffer, uint64_t* bytes);
/* Copies `bytes` host bytes into the buffer at `offset`; blocks until done. */
GQAVK_API gqavk_status gqavk_buffer_upload(gqavk_buffer* buffer, uint64_t offset, const void* data,
                                           uint64_t bytes);
/* Copies `bytes` from the buffer at `offset` to the host; blocks until done. */
GQAVK_API gqavk_status gqavk_buffer_download(const gqavk_buffer* buffer, uint64_t offset,
                                             void* data, uint64_t bytes);
/* The VkBuffer and where the gqavk_buffer's bytes start in it (0 unless wrapped). */
GQAVK_API gqavk_status gqavk_buffer_vk_handle(const gqavk_buffer* buffer, VkBuffer* vk_buffer,
                                              uint64_t* offset);

/* ---- Element types ---- */

/* gqavk::DType: how the KV cache stores K and V (and the type of append's sources). */
typedef enum gqavk_dtype {
  GQAVK_DTYPE_F32 = 0,
  GQAVK_DTYPE_F16 = 1,
  GQAVK_DTYPE_BF16 = 2,
  GQAVK_DTYPE_Q8 = 3, /* int8, one scale per token and KV head */
  GQAVK_DTYPE_Q4 = 4, /* 4-bit, one scale per 32 values */
  GQAVK_DTYPE_MAX_ENUM = 0x7fffffff
} gqavk_dtype;

/* Bytes one token row of `dim` values takes in the KV pool: values and scales (gqavk::row_bytes).
 */
GQAVK_API gqavk_status gqavk_dtype_row_bytes(gqavk_dtype dtype, uint32_t dim, uint64_t* bytes);
/* IEEE binary16 conversions of `count` values (round to nearest even; overflow to infinity), e.g.
 * for gqavk_kv_cache_write_f16. */
GQAVK_API gqavk_status gqavk_floats_to_halves(const float* in, uint16_t* out, uint64_t count);
GQAVK_API gqavk_status gqavk_halves_to_floats(const uint16_t* in, float* out, uint64_t count);

/* "f32", "f16", "bf16", "q8", "q4"; NULL for a value that is none of them. */
GQAVK_API const char* gqavk_dtype_string(gqavk_dtype dtype);
/* Parses those names. */
GQAVK_API gqavk_status gqavk_parse_dtype(const char* text, gqavk_dtype* dtype);

/* ---- KV cache ---- */

typedef struct gqavk_kv_cache gqavk_kv_cache;

/* gqavk::KvCacheDesc. kv_heads, head_dim and capacity_tokens are required; the other fields'
 * zeros mean: batch 1, dtype f32 (set it: f16 halves the memory), block_tokens 256, v_head_dim =
 * head_dim, layers 1, pool_blocks enough for every slot's capacity in every layer, no window
 * layers, pool allocated by gqavk. */
typedef struct gqavk_kv_cache_create_info {
  uint32_t struct_size;
  uint32_t batch;
  uint32_t kv_heads;
  uint32_t head_dim;
  uint32_t capacity_tokens;
  gqavk_dtype dtype;
  uint32_t block_tokens;
  uint32_t v_head_dim;
  uint32_t layers;
  uint32_t pool_blocks;
  const uint32_t* layer_windows; /* NULL, or layer_window_count == layers entries */
  uint32_t layer_window_count;
  /* NULL, or the application's buffer (gqavk_buffer_wrap) that holds the pool: its first
   * gqavk_kv_cache_plan_memory(info).pool_bytes bytes, zeroed at creation. */
  const gqavk_buffer* pool;
} gqavk_kv_cache_create_info;

/* gqavk::KvMemory. */
typedef struct gqavk_kv_memory {
  uint32_t struct_size;
  uint32_t pool_blocks;
  uint64_t block_bytes;
  uint64_t token_bytes;
  uint64_t pool_bytes;
  uint32_t blocks_in_use;
  uint32_t blocks_free;
  uint64_t bytes_in_use;
  uint64_t table_bytes;
} gqavk_kv_memory;

/* gqavk::KvToken. */
typedef struct gqavk_kv_token {
  uint32_t seq;
  uint32_t position;
} gqavk_kv_token;

GQAVK_API gqavk_status gqavk_kv_cache_create(gqavk_context* context,
                                             const gqavk_kv_cache_create_info* info,
                                             gqavk_kv_cache** cache);
GQAVK_API gqavk_status gqavk_kv_cache_destroy(gqavk_kv_cache* cache);
/* What a cache of `info` would allocate, without a device (capacity planning); info->pool is
 * ignored. */
GQAVK_API gqavk_status gqavk_kv_cache_plan_memory(const gqavk_kv_cache_create_info* info,
                                                  gqavk_kv_memory* memory);
GQAVK_API gqavk_status gqavk_kv_cache_memory(const gqavk_kv_cache* cache, gqavk_kv_memory* memory);
GQAVK_API gqavk_status gqavk_kv_cache_bytes(const gqavk_kv_cache* cache, uint64_t* bytes);
/* The shape the cache was made with, defaults resolved; layer_windows points into the cache. */
GQAVK_API gqavk_status gqavk_kv_cache_desc(const gqavk_kv_cache* cache,
                                           gqavk_kv_cache_create_info* info);
GQAVK_API gqavk_status gqavk_kv_cache_add_sequence(gqavk_kv_cache* cache, uint32_t* seq);
GQAVK_API gqavk_status gqavk_kv_cache_free_sequence(gqavk_kv_cache* cache, uint32_t seq);
GQAVK_API gqavk_status gqavk_kv_cache_fork_sequence(gqavk_kv_cache* cache, uint32_t parent,
                                                    uint32_t* child);
GQAVK_API gqavk_status gqavk_kv_cache_truncate(gqavk_kv_cache* cache, uint32_t seq,
                                               uint32_t tokens);
/* *open receives 1 when slot `seq` is open, else 0. */
GQAVK_API gqavk_status gqavk_kv_cache_is_open(const gqavk_kv_cache* cache, uint32_t seq,
                                              uint32_t* open);
GQAVK_API gqavk_status gqavk_kv_cache_length(const gqavk_kv_cache* cache, uint32_t seq,
                                             uint32_t layer, uint32_t* tokens);
GQAVK_API gqavk_status gqavk_kv_cache_released_tokens(const gqavk_kv_cache* cache, uint32_t seq,
                                                      uint32_t layer, uint32_t* tokens);
/* KvCache::write: k [G, n_tokens, Dk] and v [G, n_tokens, Dv] f32 (k_count, v_count elements). */
GQAVK_API gqavk_status gqavk_kv_cache_write(gqavk_kv_cache* cache, uint32_t layer, uint32_t seq,
                                            uint32_t first_token, uint32_t n_tokens, const float* k,
                                            uint64_t k_count, const float* v, uint64_t v_count);
/* The same from IEEE half bit patterns (an f16 cache). */
GQAVK_API gqavk_status gqavk_kv_cache_write_f16(gqavk_kv_cache* cache, uint32_t layer, uint32_t seq,
                                                uint32_t first_token, uint32_t n_tokens,
                                                const uint16_t* k, uint64_t k_count,
                                                const uint16_t* v, uint64_t v_count);
/* KvCache::append: n_tokens tokens' K [tokens, G, Dk] and V [tokens, G, Dv] of type `src` (f32, f16
 * or bf16) read on the device from k and v, from element k_first / v_first on. */
GQAVK_API gqavk_status gqavk_kv_cache_append(gqavk_kv_cache* cache, uint32_t layer,
                                             const gqavk_kv_token* tokens, uint32_t n_tokens,
                                             const gqavk_buffer* k, const gqavk_buffer* v,
                                             gqavk_dtype src, uint64_t k_first, uint64_t v_first);
GQAVK_API gqavk_status gqavk_kv_cache_last_append_gpu_ns(const gqavk_kv_cache* cache, double* ns);

/* ---- Decode ---- */

typedef struct gqavk_decode_plan gqavk_decode_plan;

/* gqavk::DecodeDesc. Zeros mean: scale 1/sqrt(Dk), max_splits chosen, no window, no softcap. */
typedef struct gqavk_decode_plan_create_info {
  uint32_t struct_size;
  uint32_t q_heads; /* H, a multiple of the cache's kv_heads (required) */
  float scale;
  uint32_t max_splits;
  uint32_t window;
  float softcap;
  const float* sinks; /* NULL, or sink_count == q_heads logits */
  uint32_t sink_count;
  uint32_t layer;
} gqavk_decode_plan_create_info;

GQAVK_API gqavk_status gqavk_decode_plan_create(gqavk_context* context, gqavk_kv_cache* cache,
                                                const gqavk_decode_plan_create_info* info,
                                                gqavk_decode_plan** plan);
GQAVK_API gqavk_status gqavk_decode_plan_destroy(gqavk_decode_plan* plan);
/* DecodePlan::run: q [B, H, Dk] f32, lengths [B] (B = the cache's batch), out [B, H, Dv]. */
GQAVK_API gqavk_status gqavk_decode_plan_run(gqavk_decode_plan* plan, const float* q,
                                             uint64_t q_count, const uint32_t* lengths,
                                             uint32_t length_count, float* out, uint64_t out_count);
GQAVK_API gqavk_status gqavk_decode_plan_splits(const gqavk_decode_plan* plan, uint32_t* splits);
GQAVK_API gqavk_status gqavk_decode_plan_last_gpu_ns(const gqavk_decode_plan* plan, double* ns);

/* ---- Prefill and ragged batches ---- */

typedef struct gqavk_prefill_plan gqavk_prefill_plan;

/* gqavk::PrefillDesc. Zeros mean: scale 1/sqrt(Dk), causal, no window, no softcap. */
typedef struct gqavk_prefill_plan_create_info {
  uint32_t struct_size;
  uint32_t q_heads; /* required */
  float scale;
  uint32_t
      cross_attention; /* 1: not causal, every query sees all keys (PrefillDesc::causal false) */
  uint32_t window;
  float softcap;
  const float* sinks;
  uint32_t sink_count;
  uint32_t layer;
} gqavk_prefill_plan_create_info;

/* gqavk::PrefillSeq: one entry of a ragged batch. */
typedef struct gqavk_prefill_seq {
  uint32_t seq;
  uint32_t queries;
  uint32_t kv_length;
} gqavk_prefill_seq;

GQAVK_API gqavk_status gqavk_prefill_plan_create(gqavk_context* context, gqavk_kv_cache* cache,
                                                 const gqavk_prefill_plan_create_info* info,
                                                 gqavk_prefill_plan** plan);
GQAVK_API gqavk_status gqavk_prefill_plan_destroy(gqavk_prefill_plan* plan);
/* PrefillPlan::run: q packs each entry's [H, Lq, Dk] block, out receives each [H, Lq, Dv]. */
GQAVK_API gqavk_status gqavk_prefill_plan_run(gqavk_prefill_plan* plan, const float* q,
                                              uint64_t q_count, const gqavk_prefill_seq* seqs,
                                              uint32_t seq_count, float* out, uint64_t out_count);
GQAVK_API gqavk_status gqavk_prefill_plan_last_gpu_ns(const gqavk_prefill_plan* plan, double* ns);

/* ---- Models ---- */

typedef struct gqavk_model gqavk_model;

/* gqavk::LayerDesc. Zeros mean: v_head_dim = head_dim, no window, no softcap, scale
 * 1/sqrt(head_dim), no sinks, kv_dtype f32. */
typedef struct gqavk_layer_desc {
  uint32_t struct_size;
  uint32_t q_heads;
  uint32_t kv_heads;
  uint32_t head_dim;
  uint32_t v_head_dim;
  uint32_t window;
  float softcap;
  float scale;
  const float* sinks; /* NULL, or sink_count == q_heads logits */
  uint32_t sink_count;
  gqavk_dtype kv_dtype;
} gqavk_layer_desc;

/* An empty model named `name` (may be NULL); add layers with gqavk_model_add_layer. */
GQAVK_API gqavk_status gqavk_model_create(const char* name, gqavk_model** model);
/* ModelDesc::from_hf_config of `length` bytes of config.json text; name may be NULL. */
GQAVK_API gqavk_status gqavk_model_from_hf_config(const char* json, size_t length, const char* name,
                                                  gqavk_model** model);
/* ModelDesc::load_hf_config of a file. */
GQAVK_API gqavk_status gqavk_model_load_hf_config(const char* path, gqavk_model** model);
GQAVK_API gqavk_status gqavk_model_destroy(gqavk_model* model);
/* Appends a copy of `layer` (its sinks copied too). */
GQAVK_API gqavk_status gqavk_model_add_layer(gqavk_model* model, const gqavk_layer_desc* layer);
GQAVK_API gqavk_status gqavk_model_layer_count(const gqavk_model* model, uint32_t* count);
/* Layer `index`; layer->sinks points into the model (valid until it changes or is destroyed). */
GQAVK_API gqavk_status gqavk_model_layer(const gqavk_model* model, uint32_t index,
                                         gqavk_layer_desc* layer);
/* The model's name; the pointer is valid while the model lives. */
GQAVK_API gqavk_status gqavk_model_name(const gqavk_model* model, const char** name);
GQAVK_API gqavk_status gqavk_model_validate(const gqavk_model* model);
/* ModelDesc::cache_desc; info->layer_windows points into the model (valid until it changes or is
 * destroyed), info->pool is NULL. block_tokens 0 means 256. */
GQAVK_API gqavk_status gqavk_model_cache_desc(const gqavk_model* model, uint32_t slots,
                                              uint32_t capacity_tokens, uint32_t block_tokens,
                                              gqavk_kv_cache_create_info* info);

/* ---- The recorded decode step ---- */

typedef struct gqavk_decode_step gqavk_decode_step;

/* gqavk::DecodeStepDesc. Zeros mean: max_batch 1, frames 2, max_splits chosen. */
typedef struct gqavk_decode_step_create_info {
  uint32_t struct_size;
  uint32_t max_batch;
  uint32_t frames;
  uint32_t max_splits;
} gqavk_decode_step_create_info;

/* gqavk::StepBuffer. */
typedef struct gqavk_step_buffer {
  const gqavk_buffer* buffer;
  uint64_t offset; /* bytes, a multiple of 4 */
} gqavk_step_buffer;

/* gqavk::StepDeviceIo: f32, layer by layer, each layer's block holding max_batch rows. */
typedef struct gqavk_step_device_io {
  uint32_t struct_size;
  gqavk_step_buffer q, k, v, out;
} gqavk_step_device_io;

/* gqavk::StepSync: timeline semaphores of the context's device, or VK_NULL_HANDLE. */
typedef struct gqavk_step_sync {
  uint32_t struct_size;
  VkSemaphore wait;
  uint64_t wait_value;
  VkSemaphore signal;
  uint64_t signal_value;
} gqavk_step_sync;

/* The model is copied: it may be destroyed after this call. info may be NULL (defaults). */
GQAVK_API gqavk_status gqavk_decode_step_create(gqavk_context* context, gqavk_kv_cache* cache,
                                                const gqavk_model* model,
                                                const gqavk_decode_step_create_info* info,
                                                gqavk_decode_step** step);
/* Waits for the step's work in flight. */
GQAVK_API gqavk_status gqavk_decode_step_destroy(gqavk_decode_step* step);
/* DecodeStep::run: one step from host memory, blocking. */
GQAVK_API gqavk_status gqavk_decode_step_run(gqavk_decode_step* step, const uint32_t* seqs,
                                             uint32_t seq_count, const float* q, uint64_t q_count,
                                             const float* k, uint64_t k_count, const float* v,
                                             uint64_t v_count, float* out, uint64_t out_count);
/* DecodeStep::submit: *ticket receives the step's ticket. With device I/O, pass NULL q, k and v
 * (counts 0). sync may be NULL. */
GQAVK_API gqavk_status gqavk_decode_step_submit(gqavk_decode_step* step, const uint32_t* seqs,
                                                uint32_t seq_count, const float* q,
                                                uint64_t q_count, const float* k, uint64_t k_count,
                                                const float* v, uint64_t v_count,
                                                const gqavk_step_sync* sync, uint64_t* ticket);
/* DecodeStep::wait: out may be NULL (count 0) with device I/O. */
GQAVK_API gqavk_status gqavk_decode_step_wait(gqavk_decode_step* step, uint64_t ticket, float* out,
                                              uint64_t out_count);
/* DecodeStep::set_device_io; the buffers are in use until set_host_io or destroy. */
GQAVK_API gqavk_status gqavk_decode_step_set_device_io(gqavk_decode_step* step,
                                                       const gqavk_step_device_io* io);
GQAVK_API gqavk_status gqavk_decode_step_set_host_io(gqavk_decode_step* step);
/* DecodeStep::prepare: the host work of a submit into frame (ticket - 1) % frames. */
GQAVK_API gqavk_status gqavk_decode_step_prepare(gqavk_decode_step* step, const uint32_t* seqs,
                                                 uint32_t seq_count, const float* q,
                                                 uint64_t q_count, const float* k, uint64_t k_count,
                                                 const float* v, uint64_t v_count,
                                                 uint64_t* ticket);
/* DecodeStep::record: records frame `frame`'s commands into the application's command buffer
 * (recording state, a queue of the context's queue family). They begin with a barrier on all
 * earlier work of the queue and end with their writes available to later commands of any stage.
 * Submit it to the context's queue, then call gqavk_decode_step_submitted. */
GQAVK_API gqavk_status gqavk_decode_step_record(const gqavk_decode_step* step,
                                                VkCommandBuffer command_buffer, uint32_t frame);
/* DecodeStep::submitted: a timeline semaphore value signalled after the submitted commands. */
GQAVK_API gqavk_status gqavk_decode_step_submitted(gqavk_decode_step* step, uint64_t ticket,
                                                   VkSemaphore semaphore, uint64_t value);
GQAVK_API gqavk_status gqavk_decode_step_set_sinks(gqavk_decode_step* step, uint32_t layer,
                                                   const float* sinks, uint32_t sink_count);
GQAVK_API gqavk_status gqavk_decode_step_recordings(const gqavk_decode_step* step,
                                                    uint64_t* recordings);
GQAVK_API gqavk_status gqavk_decode_step_last_gpu_ns(const gqavk_decode_step* step, double* ns);
GQAVK_API gqavk_status gqavk_decode_step_frames(const gqavk_decode_step* step, uint32_t* frames);
GQAVK_API gqavk_status gqavk_decode_step_max_batch(const gqavk_decode_step* step,
                                                   uint32_t* max_batch);
/* Values per step of each input and output for `rows` rows, all layers. */
GQAVK_API gqavk_status gqavk_decode_step_q_values(const gqavk_decode_step* step, uint32_t rows,
                                                  uint64_t* values);
GQAVK_API gqavk_status gqavk_decode_step_k_values(const gqavk_decode_step* step, uint32_t rows,
                                                  uint64_t* values);
GQAVK_API gqavk_status gqavk_decode_step_v_values(const gqavk_decode_step* step, uint32_t rows,
                                                  uint64_t* values);
GQAVK_API gqavk_status gqavk_decode_step_out_values(const gqavk_decode_step* step, uint32_t rows,
                                                    uint64_t* values);

#ifdef __cplusplus
}
#endif

#endif /* GQAVK_H */
