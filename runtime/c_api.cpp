// The C API (include/gqavk/gqavk.h): each function checks its C arguments, calls the C++ API and
// turns what it throws into a status and a message. Handles own their C++ object and count who
// uses them, so destroying one too early is an error instead of a use of a dead object.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "gqavk/gqavk.h"
#include "gqavk/gqavk.hpp"

using gqavk::Error;
using gqavk::ErrorCode;

struct gqavk_context {
  gqavk::Context cpp;
  std::mutex error_mutex;
  std::string last_error;
  // What was made from the context and is not destroyed yet.
  std::atomic<uint32_t> buffers{0}, caches{0}, decode_plans{0}, prefill_plans{0}, steps{0};
  explicit gqavk_context(gqavk::Context&& c) : cpp(std::move(c)) {}
};

struct gqavk_buffer {
  gqavk_context* ctx;
  gqavk::DeviceBuffer cpp;
  std::atomic<uint32_t> users{0};  // caches whose pool it is, steps whose I/O it holds
  gqavk_buffer(gqavk_context* c, gqavk::DeviceBuffer&& b) : ctx(c), cpp(std::move(b)) {}
};

struct gqavk_kv_cache {
  gqavk_context* ctx;
  gqavk::KvCache cpp;
  gqavk_buffer* pool;  // the application's pool buffer, or null
  std::atomic<uint32_t> decode_plans{0}, prefill_plans{0}, steps{0};
  gqavk_kv_cache(gqavk_context* c, gqavk::KvCache&& k, gqavk_buffer* p)
      : ctx(c), cpp(std::move(k)), pool(p) {}
};

struct gqavk_decode_plan {
  gqavk_kv_cache* cache;
  gqavk::DecodePlan cpp;
};

struct gqavk_prefill_plan {
  gqavk_kv_cache* cache;
  gqavk::PrefillPlan cpp;
};

struct gqavk_model {
  gqavk::ModelDesc cpp;
  std::vector<uint32_t> windows;  // gqavk_model_cache_desc's layer_windows
};

struct gqavk_decode_step {
  gqavk_kv_cache* cache;
  gqavk::DecodeStep cpp;
  std::vector<gqavk_buffer*> io;  // the device I/O buffers in use
};

// The C enums restate the C++ ones in the same order.
static_assert(static_cast<int>(gqavk::DType::q4) == GQAVK_DTYPE_Q4 &&
              static_cast<int>(gqavk::DType::bf16) == GQAVK_DTYPE_BF16);
static_assert(static_cast<int>(gqavk::Vendor::other) == GQAVK_VENDOR_OTHER &&
              static_cast<int>(gqavk::Vendor::mesa_cpu) == GQAVK_VENDOR_MESA_CPU);
static_assert(static_cast<int>(gqavk::DeviceType::other) == GQAVK_DEVICE_TYPE_OTHER &&
              static_cast<int>(gqavk::DeviceType::virtual_gpu) == GQAVK_DEVICE_TYPE_VIRTUAL);

namespace {

thread_local std::string t_last_error;

[[noreturn]] void bad(const std::string& message) {
  throw Error(ErrorCode::invalid_argument, message);
}

gqavk_status status_of(ErrorCode code) {
  switch (code) {
    case ErrorCode::invalid_argument:
      return GQAVK_ERROR_INVALID_ARGUMENT;
    case ErrorCode::unsupported:
      return GQAVK_ERROR_UNSUPPORTED;
    case ErrorCode::no_device:
      return GQAVK_ERROR_NO_DEVICE;
    case ErrorCode::out_of_memory:
      return GQAVK_ERROR_OUT_OF_MEMORY;
    case ErrorCode::vulkan:
      return GQAVK_ERROR_VULKAN;
    case ErrorCode::out_of_blocks:
      return GQAVK_ERROR_OUT_OF_BLOCKS;
    case ErrorCode::device_lost:
      return GQAVK_ERROR_DEVICE_LOST;
  }
  return GQAVK_ERROR_INTERNAL;
}

// Thrown for a destroy that would leave others with a dead object.
struct InUse {
  std::string message;
};

gqavk_status fail(gqavk_context* ctx, gqavk_status status, const char* fn, const char* what) {
  std::string message = std::string(fn) + ": " + what;
  if (ctx) {
    std::lock_guard<std::mutex> lock(ctx->error_mutex);
    ctx->last_error = message;
  }
  t_last_error = std::move(message);
  return status;
}

// Runs `body`, turning whatever it throws into a status and the message of `fn`.
template <class F>
gqavk_status guard(gqavk_context* ctx, const char* fn, F&& body) noexcept {
  try {
    body();
    return GQAVK_SUCCESS;
  } catch (const Error& e) {
    return fail(ctx, status_of(e.code()), fn, e.what());
  } catch (const InUse& e) {
    return fail(ctx, GQAVK_ERROR_IN_USE, fn, e.message.c_str());
  } catch (const std::bad_alloc&) {
    return fail(ctx, GQAVK_ERROR_OUT_OF_MEMORY, fn, "out of host memory");
  } catch (const std::exception& e) {
    return fail(ctx, GQAVK_ERROR_INTERNAL, fn, e.what());
  } catch (...) {
    return fail(ctx, GQAVK_ERROR_INTERNAL, fn, "unknown exception");
  }
}

template <class T>
void need(const T* p, const char* name) {
  if (p == nullptr) bad(std::string(name) + " is NULL");
}

// An input struct: struct_size at least this library's size (the first version of every struct);
// a larger one only with zero bytes past what this library knows.
template <class T>
T read_struct(const T* in, const char* name) {
  need(in, name);
  const uint32_t size = in->struct_size;
  if (size < sizeof(T)) {
    bad(std::string(name) + "->struct_size is " + std::to_string(size) + " (expected sizeof(" +
        name + ") = " + std::to_string(sizeof(T)) + ")");
  }
  const auto* bytes = reinterpret_cast<const unsigned char*>(in);
  if (std::any_of(bytes + sizeof(T), bytes + size, [](unsigned char b) { return b != 0; })) {
    throw Error(ErrorCode::unsupported,
                std::string(name) + "->struct_size is " + std::to_string(size) +
                    ", larger than this library's " + std::to_string(sizeof(T)) +
                    ", and the fields it does not know are set (the header is newer than the "
                    "library: use a gqavk newer than " +
                    std::to_string(GQAVK_VERSION_MAJOR) + "." +
                    std::to_string(GQAVK_VERSION_MINOR) + "." +
                    std::to_string(GQAVK_VERSION_PATCH) + " that has them)");
  }
  T out;
  std::memcpy(&out, in, sizeof(T));
  return out;
}

// An output struct: writes as much of `value` as the caller's struct_size holds.
template <class T>
void write_struct(T* out, T value, const char* name) {
  need(out, name);
  const uint32_t size = out->struct_size;
  if (size < sizeof(T)) {
    bad(std::string(name) + "->struct_size is " + std::to_string(size) + " (expected sizeof(" +
        name + ") = " + std::to_string(sizeof(T)) + ")");
  }
  value.struct_size = size;
  std::memcpy(out, &value, sizeof(T));
}

bool flag_of(uint32_t v, const char* name) {
  if (v > 1) bad(std::string(name) + " is " + std::to_string(v) + " (expected 0 or 1)");
  return v == 1;
}

// The 32 bits of a C enum as the caller stored them. In C an enum with these enumerators is an
// unsigned int, so a caller may pass any value; in C++ only 0 to 2^31 - 1 are in the enum's range
// and loading another value as the enum is undefined (UBSan's -fsanitize=enum reports it). Reading
// the object's bytes involves no such load: take the enum by reference and check the number.
template <class E>
uint32_t raw_of(const E& e) {
  static_assert(sizeof(E) == sizeof(uint32_t));
  uint32_t raw;
  std::memcpy(&raw, &e, sizeof(raw));
  return raw;
}

gqavk::DType dtype_of(const gqavk_dtype& d, const char* name) {
  const uint32_t raw = raw_of(d);
  if (raw > GQAVK_DTYPE_Q4) {
    bad(std::string(name) + " is " + std::to_string(raw) +
        " (expected a gqavk_dtype: GQAVK_DTYPE_F32 to GQAVK_DTYPE_Q4)");
  }
  return static_cast<gqavk::DType>(raw);
}

template <class T>
std::span<T> span_of(T* p, uint64_t count, const char* name) {
  if (p == nullptr && count != 0) {
    bad(std::string(name) + " is NULL with a count of " + std::to_string(count));
  }
  if (p == nullptr) return {};
  return std::span<T>(p, static_cast<size_t>(count));
}

std::optional<uint32_t> window_of(uint32_t w) {
  return w ? std::optional<uint32_t>(w) : std::nullopt;
}
std::optional<float> optional_of(float v) {
  return v != 0.0f ? std::optional<float>(v) : std::nullopt;
}

std::vector<float> sinks_of(const float* sinks, uint32_t count, const char* name) {
  const auto s = span_of(sinks, count, name);
  return {s.begin(), s.end()};
}

void copy_string(char (&dst)[GQAVK_MAX_NAME], const std::string& src) {
  const size_t n = std::min(src.size(), size_t{GQAVK_MAX_NAME - 1});
  std::memcpy(dst, src.data(), n);
  dst[n] = '\0';
}

gqavk_device_info device_info_of(const gqavk::DeviceInfo& d) {
  gqavk_device_info o;
  std::memset(&o, 0, sizeof(o));
  o.index = d.index;
  copy_string(o.name, d.name);
  o.vendor = static_cast<gqavk_vendor>(d.vendor);
  o.vendor_id = d.vendor_id;
  o.device_id = d.device_id;
  o.type = static_cast<gqavk_device_type>(d.type);
  o.api_version = d.api_version;
  o.driver_id = d.driver_id;
  copy_string(o.driver_name, d.driver_name);
  copy_string(o.driver_info, d.driver_info);
  o.can_run = d.can_run;
  o.pipeline_statistics = d.pipeline_statistics;
  o.subgroup_size = d.subgroup_size;
  o.subgroup_ops = d.subgroup_ops;
  o.subgroup_size_control = d.subgroup_size_control;
  o.compute_full_subgroups = d.compute_full_subgroups;
  o.min_subgroup_size = d.min_subgroup_size;
  o.max_subgroup_size = d.max_subgroup_size;
  o.max_workgroup_subgroups = d.max_workgroup_subgroups;
  o.subgroup_lanes = d.subgroup_lanes;
  o.bug_partial_subgroups = d.bug_partial_subgroups;
  o.storage_buffer_16bit = d.storage_buffer_16bit;
  o.shader_float16 = d.shader_float16;
  o.buffer_device_address = d.buffer_device_address;
  o.timeline_semaphore = d.timeline_semaphore;
  o.max_storage_buffer_range = d.max_storage_buffer_range;
  o.max_texel_buffer_elements = d.max_texel_buffer_elements;
  o.max_memory_allocation_size = d.max_memory_allocation_size;
  o.max_buffer_size = d.max_buffer_size;
  o.max_shared_memory_bytes = d.max_shared_memory_bytes;
  o.max_workgroup_invocations = d.max_workgroup_invocations;
  for (int i = 0; i < 3; ++i) {
    o.max_workgroup_size[i] = d.max_workgroup_size[i];
    o.max_workgroup_count[i] = d.max_workgroup_count[i];
  }
  o.max_push_constants_bytes = d.max_push_constants_bytes;
  o.max_descriptor_set_storage_buffers = d.max_descriptor_set_storage_buffers;
  o.max_per_stage_storage_buffers = d.max_per_stage_storage_buffers;
  o.timestamp_valid_bits = d.timestamp_valid_bits;
  o.timestamp_period_ns = d.timestamp_period_ns;
  o.compute_units = d.compute_units;
  o.heap_count = static_cast<uint32_t>(std::min<size_t>(d.heaps.size(), GQAVK_MAX_HEAPS));
  for (uint32_t i = 0; i < o.heap_count; ++i) {
    o.heap_size_bytes[i] = d.heaps[i].size_bytes;
    o.heap_device_local[i] = d.heaps[i].device_local;
  }
  o.device_local_bytes = d.device_local_bytes();
  return o;
}

gqavk::KvCacheDesc cache_desc_of(const gqavk_kv_cache_create_info& i) {
  gqavk::KvCacheDesc d;
  d.batch = i.batch ? i.batch : 1;
  d.kv_heads = i.kv_heads;
  d.head_dim = i.head_dim;
  d.capacity_tokens = i.capacity_tokens;
  d.dtype = dtype_of(i.dtype, "info->dtype");
  d.block_tokens = i.block_tokens ? i.block_tokens : 256;
  d.v_head_dim = i.v_head_dim;
  d.layers = i.layers ? i.layers : 1;
  d.pool_blocks = i.pool_blocks;
  const auto windows = span_of(i.layer_windows, i.layer_window_count, "info->layer_windows");
  d.layer_windows.assign(windows.begin(), windows.end());
  return d;
}

gqavk_kv_cache_create_info create_info_of(const gqavk::KvCacheDesc& d) {
  gqavk_kv_cache_create_info o;
  std::memset(&o, 0, sizeof(o));
  o.batch = d.batch;
  o.kv_heads = d.kv_heads;
  o.head_dim = d.head_dim;
  o.capacity_tokens = d.capacity_tokens;
  o.dtype = static_cast<gqavk_dtype>(d.dtype);
  o.block_tokens = d.block_tokens;
  o.v_head_dim = d.v_head_dim;
  o.layers = d.layers;
  o.pool_blocks = d.pool_blocks;
  o.layer_windows = d.layer_windows.empty() ? nullptr : d.layer_windows.data();
  o.layer_window_count = static_cast<uint32_t>(d.layer_windows.size());
  return o;
}

gqavk_kv_memory memory_of(const gqavk::KvMemory& m) {
  gqavk_kv_memory o;
  std::memset(&o, 0, sizeof(o));
  o.pool_blocks = m.pool_blocks;
  o.block_bytes = m.block_bytes;
  o.token_bytes = m.token_bytes;
  o.pool_bytes = m.pool_bytes;
  o.blocks_in_use = m.blocks_in_use;
  o.blocks_free = m.blocks_free;
  o.bytes_in_use = m.bytes_in_use;
  o.table_bytes = m.table_bytes;
  return o;
}

// The context of a handle (null for a null handle), for the error message.
gqavk_context* ctx_of(const gqavk_buffer* b) { return b ? b->ctx : nullptr; }
gqavk_context* ctx_of(const gqavk_kv_cache* c) { return c ? c->ctx : nullptr; }
gqavk_context* ctx_of(const gqavk_decode_plan* p) { return p ? p->cache->ctx : nullptr; }
gqavk_context* ctx_of(const gqavk_prefill_plan* p) { return p ? p->cache->ctx : nullptr; }
gqavk_context* ctx_of(const gqavk_decode_step* s) { return s ? s->cache->ctx : nullptr; }

void same_context(const gqavk_context* a, const gqavk_context* b, const char* name) {
  if (a != b) bad(std::string(name) + " belongs to another context (expected one of this one's)");
}

// "1 KV cache, 2 decode plans" from (count, singular) pairs; empty when all are 0.
std::string users_text(std::initializer_list<std::pair<uint32_t, const char*>> users) {
  std::string text;
  for (const auto& [n, what] : users) {
    if (n == 0) continue;
    text += (text.empty() ? "" : ", ") + std::to_string(n) + " " + what + (n == 1 ? "" : "s");
  }
  return text;
}

void release_io(gqavk_decode_step* s) {
  for (gqavk_buffer* b : s->io) --b->users;
  s->io.clear();
}

}  // namespace

extern "C" {

uint32_t gqavk_version(void) { return GQAVK_VERSION; }

const char* gqavk_status_string(gqavk_status status) {
  switch (status) {
    case GQAVK_SUCCESS:
      return "GQAVK_SUCCESS";
    case GQAVK_INCOMPLETE:
      return "GQAVK_INCOMPLETE";
    case GQAVK_ERROR_INVALID_ARGUMENT:
      return "GQAVK_ERROR_INVALID_ARGUMENT";
    case GQAVK_ERROR_UNSUPPORTED:
      return "GQAVK_ERROR_UNSUPPORTED";
    case GQAVK_ERROR_NO_DEVICE:
      return "GQAVK_ERROR_NO_DEVICE";
    case GQAVK_ERROR_OUT_OF_MEMORY:
      return "GQAVK_ERROR_OUT_OF_MEMORY";
    case GQAVK_ERROR_VULKAN:
      return "GQAVK_ERROR_VULKAN";
    case GQAVK_ERROR_OUT_OF_BLOCKS:
      return "GQAVK_ERROR_OUT_OF_BLOCKS";
    case GQAVK_ERROR_IN_USE:
      return "GQAVK_ERROR_IN_USE";
    case GQAVK_ERROR_INTERNAL:
      return "GQAVK_ERROR_INTERNAL";
    case GQAVK_ERROR_DEVICE_LOST:
      return "GQAVK_ERROR_DEVICE_LOST";
    default:
      return "unknown gqavk_status";
  }
}

const char* gqavk_last_error(const gqavk_context* context) {
  if (context == nullptr) return t_last_error.c_str();
  auto* ctx = const_cast<gqavk_context*>(context);
  std::lock_guard<std::mutex> lock(ctx->error_mutex);
  return ctx->last_error.c_str();
}

// ---- Devices ----

gqavk_status gqavk_list_devices(uint32_t* count, gqavk_device_info* infos) {
  bool incomplete = false;
  const gqavk_status s = guard(nullptr, __func__, [&] {
    need(count, "count");
    const std::vector<gqavk::DeviceInfo> devices = gqavk::list_devices();
    if (infos == nullptr) {
      *count = static_cast<uint32_t>(devices.size());
      return;
    }
    const uint32_t n = std::min<uint32_t>(*count, static_cast<uint32_t>(devices.size()));
    for (uint32_t i = 0; i < n; ++i) {
      const std::string name = "infos[" + std::to_string(i) + "]";
      write_struct(&infos[i], device_info_of(devices[i]), name.c_str());
    }
    *count = n;
    incomplete = n < devices.size();
  });
  return s == GQAVK_SUCCESS && incomplete ? GQAVK_INCOMPLETE : s;
}

const char* gqavk_vendor_string(gqavk_vendor vendor) {
  const uint32_t raw = raw_of(vendor);
  if (raw > GQAVK_VENDOR_OTHER) return nullptr;
  return gqavk::to_string(static_cast<gqavk::Vendor>(raw));
}

const char* gqavk_device_type_string(gqavk_device_type type) {
  const uint32_t raw = raw_of(type);
  if (raw > GQAVK_DEVICE_TYPE_OTHER) return nullptr;
  return gqavk::to_string(static_cast<gqavk::DeviceType>(raw));
}

// ---- Contexts ----

gqavk_status gqavk_context_create(const gqavk_context_create_info* info, gqavk_context** context) {
  return guard(nullptr, __func__, [&] {
    need(context, "context");
    gqavk::ContextOptions options;
    if (info != nullptr) {
      const gqavk_context_create_info i = read_struct(info, "info");
      if (i.device) options.device = i.device;
      options.validation = flag_of(i.validation, "info->validation");
      if (i.on_validation_message) {
        options.on_validation_message = [fn = i.on_validation_message,
                                         user = i.user_data](std::string_view m) {
          const std::string text(m);
          fn(user, text.c_str());
        };
      }
      options.pipeline_statistics = flag_of(i.pipeline_statistics, "info->pipeline_statistics");
    }
    *context = new gqavk_context(gqavk::Context(options));
  });
}

gqavk_status gqavk_context_create_external(const gqavk_external_device_info* info,
                                           gqavk_context** context) {
  return guard(nullptr, __func__, [&] {
    need(context, "context");
    const gqavk_external_device_info i = read_struct(info, "info");
    if (i.instance == VK_NULL_HANDLE) bad("info->instance is VK_NULL_HANDLE");
    if (i.physical_device == VK_NULL_HANDLE) bad("info->physical_device is VK_NULL_HANDLE");
    if (i.device == VK_NULL_HANDLE) bad("info->device is VK_NULL_HANDLE");
    if (i.queue == VK_NULL_HANDLE) bad("info->queue is VK_NULL_HANDLE");
    need(i.device_create_info, "info->device_create_info");
    if (!i.lock_queue != !i.unlock_queue) {
      bad("info->lock_queue and info->unlock_queue must both be set or both be NULL");
    }
    gqavk::ExternalDevice ext;
    ext.instance = i.instance;
    ext.physical_device = i.physical_device;
    ext.device = i.device;
    ext.create_info = i.device_create_info;
    ext.queue_family = i.queue_family;
    ext.queue = i.queue;
    if (i.lock_queue) {
      ext.lock_queue = [fn = i.lock_queue, user = i.queue_lock_user_data] { fn(user); };
      ext.unlock_queue = [fn = i.unlock_queue, user = i.queue_lock_user_data] { fn(user); };
    }
    gqavk::ContextOptions options;
    options.pipeline_statistics = flag_of(i.pipeline_statistics, "info->pipeline_statistics");
    *context = new gqavk_context(gqavk::Context(ext, options));
  });
}

gqavk_status gqavk_context_destroy(gqavk_context* context) {
  return guard(context, __func__, [&] {
    if (context == nullptr) return;
    const std::string users = users_text({{context->buffers, "buffer"},
                                          {context->caches, "KV cache"},
                                          {context->decode_plans, "decode plan"},
                                          {context->prefill_plans, "prefill plan"},
                                          {context->steps, "decode step"}});
    if (!users.empty()) {
      throw InUse{"the context still has " + users + " made from it (destroy them first)"};
    }
    delete context;
  });
}

gqavk_status gqavk_context_device_info(const gqavk_context* context, gqavk_device_info* info) {
  return guard(const_cast<gqavk_context*>(context), __func__, [&] {
    need(context, "context");
    write_struct(info, device_info_of(context->cpp.device()), "info");
  });
}

gqavk_status gqavk_context_validation_message_count(const gqavk_context* context, uint32_t* count) {
  return guard(const_cast<gqavk_context*>(context), __func__, [&] {
    need(context, "context");
    need(count, "count");
    *count = context->cpp.validation_message_count();
  });
}

// ---- Buffers ----

gqavk_status gqavk_buffer_create(gqavk_context* context, uint64_t bytes, gqavk_buffer** buffer) {
  return guard(context, __func__, [&] {
    need(context, "context");
    need(buffer, "buffer");
    *buffer = new gqavk_buffer(context, gqavk::DeviceBuffer(context->cpp, bytes));
    ++context->buffers;
  });
}

gqavk_status gqavk_buffer_wrap(gqavk_context* context, VkBuffer vk_buffer, uint64_t offset,
                               uint64_t bytes, gqavk_buffer** buffer) {
  return guard(context, __func__, [&] {
    need(context, "context");
    need(buffer, "buffer");
    *buffer = new gqavk_buffer(context,
                               gqavk::DeviceBuffer::wrap(context->cpp, vk_buffer, offset, bytes));
    ++context->buffers;
  });
}

gqavk_status gqavk_buffer_destroy(gqavk_buffer* buffer) {
  return guard(ctx_of(buffer), __func__, [&] {
    if (buffer == nullptr) return;
    if (buffer->users != 0) {
      throw InUse{"the buffer is still the KV pool or the device I/O of " +
                  std::to_string(buffer->users.load()) +
                  " cache(s) or step(s) (destroy them, or call gqavk_decode_step_set_host_io, "
                  "first)"};
    }
    --buffer->ctx->buffers;
    delete buffer;
  });
}

gqavk_status gqavk_buffer_size(const gqavk_buffer* buffer, uint64_t* bytes) {
  return guard(ctx_of(buffer), __func__, [&] {
    need(buffer, "buffer");
    need(bytes, "bytes");
    *bytes = buffer->cpp.bytes();
  });
}

gqavk_status gqavk_buffer_upload(gqavk_buffer* buffer, uint64_t offset, const void* data,
                                 uint64_t bytes) {
  return guard(ctx_of(buffer), __func__, [&] {
    need(buffer, "buffer");
    const auto s = span_of(static_cast<const std::byte*>(data), bytes, "data");
    buffer->cpp.upload(s, offset);
  });
}

gqavk_status gqavk_buffer_download(const gqavk_buffer* buffer, uint64_t offset, void* data,
                                   uint64_t bytes) {
  return guard(ctx_of(buffer), __func__, [&] {
    need(buffer, "buffer");
    const auto s = span_of(static_cast<std::byte*>(data), bytes, "data");
    buffer->cpp.download(s, offset);
  });
}

gqavk_status gqavk_buffer_vk_handle(const gqavk_buffer* buffer, VkBuffer* vk_buffer,
                                    uint64_t* offset) {
  return guard(ctx_of(buffer), __func__, [&] {
    need(buffer, "buffer");
    need(vk_buffer, "vk_buffer");
    need(offset, "offset");
    *vk_buffer = reinterpret_cast<VkBuffer>(buffer->cpp.vk_buffer());
    *offset = buffer->cpp.vk_offset();
  });
}

// ---- Element types ----

gqavk_status gqavk_dtype_row_bytes(gqavk_dtype dtype, uint32_t dim, uint64_t* bytes) {
  return guard(nullptr, __func__, [&] {
    need(bytes, "bytes");
    const gqavk::DType t = dtype_of(dtype, "dtype");
    if (dim == 0 || dim % gqavk::values_per_texel(t) != 0) {
      bad("dim " + std::to_string(dim) + " is not a positive multiple of " +
          std::to_string(gqavk::values_per_texel(t)) + " (the values one 16-byte texel of " +
          gqavk::to_string(t) + " holds)");
    }
    *bytes = gqavk::row_bytes(t, dim);
  });
}

gqavk_status gqavk_floats_to_halves(const float* in, uint16_t* out, uint64_t count) {
  return guard(nullptr, __func__, [&] {
    gqavk::floats_to_halves(span_of(in, count, "in"), span_of(out, count, "out"));
  });
}

gqavk_status gqavk_halves_to_floats(const uint16_t* in, float* out, uint64_t count) {
  return guard(nullptr, __func__, [&] {
    gqavk::halves_to_floats(span_of(in, count, "in"), span_of(out, count, "out"));
  });
}

const char* gqavk_dtype_string(gqavk_dtype dtype) {
  const uint32_t raw = raw_of(dtype);
  if (raw > GQAVK_DTYPE_Q4) return nullptr;
  return gqavk::to_string(static_cast<gqavk::DType>(raw));
}

gqavk_status gqavk_parse_dtype(const char* text, gqavk_dtype* dtype) {
  return guard(nullptr, __func__, [&] {
    need(text, "text");
    need(dtype, "dtype");
    *dtype = static_cast<gqavk_dtype>(gqavk::parse_dtype(text));
  });
}

// ---- KV cache ----

gqavk_status gqavk_kv_cache_create(gqavk_context* context, const gqavk_kv_cache_create_info* info,
                                   gqavk_kv_cache** cache) {
  return guard(context, __func__, [&] {
    need(context, "context");
    need(cache, "cache");
    const gqavk_kv_cache_create_info i = read_struct(info, "info");
    const gqavk::KvCacheDesc desc = cache_desc_of(i);
    auto* pool = const_cast<gqavk_buffer*>(i.pool);
    if (pool) same_context(pool->ctx, context, "info->pool");
    *cache = pool ? new gqavk_kv_cache(context, gqavk::KvCache(context->cpp, desc, pool->cpp), pool)
                  : new gqavk_kv_cache(context, gqavk::KvCache(context->cpp, desc), nullptr);
    if (pool) ++pool->users;
    ++context->caches;
  });
}

gqavk_status gqavk_kv_cache_destroy(gqavk_kv_cache* cache) {
  return guard(ctx_of(cache), __func__, [&] {
    if (cache == nullptr) return;
    const std::string users = users_text({{cache->decode_plans, "decode plan"},
                                          {cache->prefill_plans, "prefill plan"},
                                          {cache->steps, "decode step"}});
    if (!users.empty()) {
      throw InUse{"the KV cache is still used by " + users + " (destroy them first)"};
    }
    if (cache->pool) --cache->pool->users;
    --cache->ctx->caches;
    delete cache;
  });
}

gqavk_status gqavk_kv_cache_plan_memory(const gqavk_kv_cache_create_info* info,
                                        gqavk_kv_memory* memory) {
  return guard(nullptr, __func__, [&] {
    const gqavk_kv_cache_create_info i = read_struct(info, "info");
    need(memory, "memory");
    write_struct(memory, memory_of(gqavk::KvCache::plan_memory(cache_desc_of(i))), "memory");
  });
}

gqavk_status gqavk_kv_cache_memory(const gqavk_kv_cache* cache, gqavk_kv_memory* memory) {
  return guard(ctx_of(cache), __func__, [&] {
    need(cache, "cache");
    write_struct(memory, memory_of(cache->cpp.memory()), "memory");
  });
}

gqavk_status gqavk_kv_cache_bytes(const gqavk_kv_cache* cache, uint64_t* bytes) {
  return guard(ctx_of(cache), __func__, [&] {
    need(cache, "cache");
    need(bytes, "bytes");
    *bytes = cache->cpp.bytes();
  });
}

gqavk_status gqavk_kv_cache_desc(const gqavk_kv_cache* cache, gqavk_kv_cache_create_info* info) {
  return guard(ctx_of(cache), __func__, [&] {
    need(cache, "cache");
    gqavk_kv_cache_create_info o = create_info_of(cache->cpp.desc());
    o.pool = cache->pool;
    write_struct(info, o, "info");
  });
}

gqavk_status gqavk_kv_cache_add_sequence(gqavk_kv_cache* cache, uint32_t* seq) {
  return guard(ctx_of(cache), __func__, [&] {
    need(cache, "cache");
    need(seq, "seq");
    *seq = cache->cpp.add_sequence();
  });
}

gqavk_status gqavk_kv_cache_free_sequence(gqavk_kv_cache* cache, uint32_t seq) {
  return guard(ctx_of(cache), __func__, [&] {
    need(cache, "cache");
    cache->cpp.free_sequence(seq);
  });
}

gqavk_status gqavk_kv_cache_fork_sequence(gqavk_kv_cache* cache, uint32_t parent, uint32_t* child) {
  return guard(ctx_of(cache), __func__, [&] {
    need(cache, "cache");
    need(child, "child");
    *child = cache->cpp.fork_sequence(parent);
  });
}

gqavk_status gqavk_kv_cache_truncate(gqavk_kv_cache* cache, uint32_t seq, uint32_t tokens) {
  return guard(ctx_of(cache), __func__, [&] {
    need(cache, "cache");
    cache->cpp.truncate(seq, tokens);
  });
}

gqavk_status gqavk_kv_cache_is_open(const gqavk_kv_cache* cache, uint32_t seq, uint32_t* open) {
  return guard(ctx_of(cache), __func__, [&] {
    need(cache, "cache");
    need(open, "open");
    *open = cache->cpp.is_open(seq) ? 1 : 0;
  });
}

gqavk_status gqavk_kv_cache_length(const gqavk_kv_cache* cache, uint32_t seq, uint32_t layer,
                                   uint32_t* tokens) {
  return guard(ctx_of(cache), __func__, [&] {
    need(cache, "cache");
    need(tokens, "tokens");
    *tokens = cache->cpp.length(seq, layer);
  });
}

gqavk_status gqavk_kv_cache_released_tokens(const gqavk_kv_cache* cache, uint32_t seq,
                                            uint32_t layer, uint32_t* tokens) {
  return guard(ctx_of(cache), __func__, [&] {
    need(cache, "cache");
    need(tokens, "tokens");
    *tokens = cache->cpp.released_tokens(seq, layer);
  });
}

gqavk_status gqavk_kv_cache_write(gqavk_kv_cache* cache, uint32_t layer, uint32_t seq,
                                  uint32_t first_token, uint32_t n_tokens, const float* k,
                                  uint64_t k_count, const float* v, uint64_t v_count) {
  return guard(ctx_of(cache), __func__, [&] {
    need(cache, "cache");
    cache->cpp.write(seq, first_token, n_tokens, span_of(k, k_count, "k"), span_of(v, v_count, "v"),
                     layer);
  });
}

gqavk_status gqavk_kv_cache_write_f16(gqavk_kv_cache* cache, uint32_t layer, uint32_t seq,
                                      uint32_t first_token, uint32_t n_tokens, const uint16_t* k,
                                      uint64_t k_count, const uint16_t* v, uint64_t v_count) {
  return guard(ctx_of(cache), __func__, [&] {
    need(cache, "cache");
    cache->cpp.write_f16(seq, first_token, n_tokens, span_of(k, k_count, "k"),
                         span_of(v, v_count, "v"), layer);
  });
}

gqavk_status gqavk_kv_cache_append(gqavk_kv_cache* cache, uint32_t layer,
                                   const gqavk_kv_token* tokens, uint32_t n_tokens,
                                   const gqavk_buffer* k, const gqavk_buffer* v, gqavk_dtype src,
                                   uint64_t k_first, uint64_t v_first) {
  return guard(ctx_of(cache), __func__, [&] {
    need(cache, "cache");
    need(k, "k");
    need(v, "v");
    same_context(k->ctx, cache->ctx, "k");
    same_context(v->ctx, cache->ctx, "v");
    const auto t = span_of(tokens, n_tokens, "tokens");
    static_assert(sizeof(gqavk_kv_token) == sizeof(gqavk::KvToken));
    const std::span<const gqavk::KvToken> cpp_tokens(
        reinterpret_cast<const gqavk::KvToken*>(t.data()), t.size());
    cache->cpp.append(layer, cpp_tokens, k->cpp, v->cpp, dtype_of(src, "src"), k_first, v_first);
  });
}

gqavk_status gqavk_kv_cache_last_append_gpu_ns(const gqavk_kv_cache* cache, double* ns) {
  return guard(ctx_of(cache), __func__, [&] {
    need(cache, "cache");
    need(ns, "ns");
    *ns = cache->cpp.last_append_gpu_ns();
  });
}

// ---- Decode ----

gqavk_status gqavk_decode_plan_create(gqavk_context* context, gqavk_kv_cache* cache,
                                      const gqavk_decode_plan_create_info* info,
                                      gqavk_decode_plan** plan) {
  return guard(context, __func__, [&] {
    need(context, "context");
    need(cache, "cache");
    need(plan, "plan");
    same_context(cache->ctx, context, "cache");
    const gqavk_decode_plan_create_info i = read_struct(info, "info");
    gqavk::DecodeDesc d;
    d.q_heads = i.q_heads;
    d.scale = optional_of(i.scale);
    d.max_splits = i.max_splits;
    d.window = window_of(i.window);
    d.softcap = optional_of(i.softcap);
    d.sinks = sinks_of(i.sinks, i.sink_count, "info->sinks");
    d.layer = i.layer;
    *plan = new gqavk_decode_plan{cache, gqavk::DecodePlan(context->cpp, cache->cpp, d)};
    ++cache->decode_plans;
    ++context->decode_plans;
  });
}

gqavk_status gqavk_decode_plan_destroy(gqavk_decode_plan* plan) {
  return guard(ctx_of(plan), __func__, [&] {
    if (plan == nullptr) return;
    --plan->cache->decode_plans;
    --plan->cache->ctx->decode_plans;
    delete plan;
  });
}

gqavk_status gqavk_decode_plan_run(gqavk_decode_plan* plan, const float* q, uint64_t q_count,
                                   const uint32_t* lengths, uint32_t length_count, float* out,
                                   uint64_t out_count) {
  return guard(ctx_of(plan), __func__, [&] {
    need(plan, "plan");
    plan->cpp.run(span_of(q, q_count, "q"), span_of(lengths, length_count, "lengths"),
                  span_of(out, out_count, "out"));
  });
}

gqavk_status gqavk_decode_plan_splits(const gqavk_decode_plan* plan, uint32_t* splits) {
  return guard(ctx_of(plan), __func__, [&] {
    need(plan, "plan");
    need(splits, "splits");
    *splits = plan->cpp.splits();
  });
}

gqavk_status gqavk_decode_plan_last_gpu_ns(const gqavk_decode_plan* plan, double* ns) {
  return guard(ctx_of(plan), __func__, [&] {
    need(plan, "plan");
    need(ns, "ns");
    *ns = plan->cpp.last_gpu_ns();
  });
}

// ---- Prefill ----

gqavk_status gqavk_prefill_plan_create(gqavk_context* context, gqavk_kv_cache* cache,
                                       const gqavk_prefill_plan_create_info* info,
                                       gqavk_prefill_plan** plan) {
  return guard(context, __func__, [&] {
    need(context, "context");
    need(cache, "cache");
    need(plan, "plan");
    same_context(cache->ctx, context, "cache");
    const gqavk_prefill_plan_create_info i = read_struct(info, "info");

    gqavk::PrefillDesc d;
    d.q_heads = i.q_heads;
    d.scale = optional_of(i.scale);
    d.causal = !flag_of(i.cross_attention, "info->cross_attention");
    d.window = window_of(i.window);
    d.softcap = optional_of(i.softcap);
    d.sinks = sinks_of(i.sinks, i.sink_count, "info->sinks");
    d.layer = i.layer;
    *plan = new gqavk_prefill_plan{cache, gqavk::PrefillPlan(context->cpp, cache->cpp, d)};
    ++cache->prefill_plans;
    ++context->prefill_plans;
  });
}

gqavk_status gqavk_prefill_plan_destroy(gqavk_prefill_plan* plan) {
  return guard(ctx_of(plan), __func__, [&] {
    if (plan == nullptr) return;
    --plan->cache->prefill_plans;
    --plan->cache->ctx->prefill_plans;
    delete plan;
  });
}

gqavk_status gqavk_prefill_plan_run(gqavk_prefill_plan* plan, const float* q, uint64_t q_count,
                                    const gqavk_prefill_seq* seqs, uint32_t seq_count, float* out,
                                    uint64_t out_count) {
  return guard(ctx_of(plan), __func__, [&] {
    need(plan, "plan");
    const auto s = span_of(seqs, seq_count, "seqs");
    static_assert(sizeof(gqavk_prefill_seq) == sizeof(gqavk::PrefillSeq));
    const std::span<const gqavk::PrefillSeq> cpp_seqs(
        reinterpret_cast<const gqavk::PrefillSeq*>(s.data()), s.size());
    plan->cpp.run(span_of(q, q_count, "q"), cpp_seqs, span_of(out, out_count, "out"));
  });
}

gqavk_status gqavk_prefill_plan_last_gpu_ns(const gqavk_prefill_plan* plan, double* ns) {
  return guard(ctx_of(plan), __func__, [&] {
    need(plan, "plan");
    need(ns, "ns");
    *ns = plan->cpp.last_gpu_ns();
  });
}

// ---- Models ----

gqavk_status gqavk_model_create(const char* name, gqavk_model** model) {
  return guard(nullptr, __func__, [&] {
    need(model, "model");
    auto* m = new gqavk_model;
    if (name) m->cpp.name = name;
    *model = m;
  });
}

gqavk_status gqavk_model_from_hf_config(const char* json, size_t length, const char* name,
                                        gqavk_model** model) {
  return guard(nullptr, __func__, [&] {
    need(json, "json");
    need(model, "model");
    auto m = std::make_unique<gqavk_model>();
    m->cpp = gqavk::ModelDesc::from_hf_config(std::string_view(json, length),
                                              name ? std::string_view(name) : std::string_view());
    *model = m.release();
  });
}

gqavk_status gqavk_model_load_hf_config(const char* path, gqavk_model** model) {
  return guard(nullptr, __func__, [&] {
    need(path, "path");
    need(model, "model");
    auto m = std::make_unique<gqavk_model>();
    m->cpp = gqavk::ModelDesc::load_hf_config(path);
    *model = m.release();
  });
}

gqavk_status gqavk_model_destroy(gqavk_model* model) {
  delete model;  // a model is copied by what uses it: nothing can be left with a dead one
  return GQAVK_SUCCESS;
}

gqavk_status gqavk_model_add_layer(gqavk_model* model, const gqavk_layer_desc* layer) {
  return guard(nullptr, __func__, [&] {
    need(model, "model");
    const gqavk_layer_desc i = read_struct(layer, "layer");
    gqavk::LayerDesc l;
    l.q_heads = i.q_heads;
    l.kv_heads = i.kv_heads;
    l.head_dim = i.head_dim;
    l.v_head_dim = i.v_head_dim;
    l.window = window_of(i.window);
    l.softcap = optional_of(i.softcap);
    l.scale = optional_of(i.scale);
    l.sinks = sinks_of(i.sinks, i.sink_count, "layer->sinks");
    l.kv_dtype = dtype_of(i.kv_dtype, "layer->kv_dtype");
    model->cpp.layers.push_back(std::move(l));
  });
}

gqavk_status gqavk_model_layer_count(const gqavk_model* model, uint32_t* count) {
  return guard(nullptr, __func__, [&] {
    need(model, "model");
    need(count, "count");
    *count = static_cast<uint32_t>(model->cpp.layers.size());
  });
}

gqavk_status gqavk_model_layer(const gqavk_model* model, uint32_t index, gqavk_layer_desc* layer) {
  return guard(nullptr, __func__, [&] {
    need(model, "model");
    if (index >= model->cpp.layers.size()) {
      bad("index " + std::to_string(index) + " is past the model's " +
          std::to_string(model->cpp.layers.size()) + " layers");
    }
    const gqavk::LayerDesc& l = model->cpp.layers[index];
    gqavk_layer_desc o;
    std::memset(&o, 0, sizeof(o));
    o.q_heads = l.q_heads;
    o.kv_heads = l.kv_heads;
    o.head_dim = l.head_dim;
    o.v_head_dim = l.v_head_dim;
    o.window = l.window.value_or(0);
    o.softcap = l.softcap.value_or(0.0f);
    o.scale = l.scale.value_or(0.0f);
    o.sinks = l.sinks.empty() ? nullptr : l.sinks.data();
    o.sink_count = static_cast<uint32_t>(l.sinks.size());
    o.kv_dtype = static_cast<gqavk_dtype>(l.kv_dtype);
    write_struct(layer, o, "layer");
  });
}

gqavk_status gqavk_model_name(const gqavk_model* model, const char** name) {
  return guard(nullptr, __func__, [&] {
    need(model, "model");
    need(name, "name");
    *name = model->cpp.name.c_str();
  });
}

gqavk_status gqavk_model_validate(const gqavk_model* model) {
  return guard(nullptr, __func__, [&] {
    need(model, "model");
    model->cpp.validate();
  });
}

gqavk_status gqavk_model_cache_desc(const gqavk_model* model, uint32_t slots,
                                    uint32_t capacity_tokens, uint32_t block_tokens,
                                    gqavk_kv_cache_create_info* info) {
  return guard(nullptr, __func__, [&] {
    need(model, "model");
    need(info, "info");
    const gqavk::KvCacheDesc d =
        model->cpp.cache_desc(slots, capacity_tokens, block_tokens ? block_tokens : 256);
    auto* m = const_cast<gqavk_model*>(model);
    m->windows = d.layer_windows;
    gqavk_kv_cache_create_info o = create_info_of(d);
    o.layer_windows = m->windows.empty() ? nullptr : m->windows.data();
    write_struct(info, o, "info");
  });
}

// ---- The recorded decode step ----

gqavk_status gqavk_decode_step_create(gqavk_context* context, gqavk_kv_cache* cache,
                                      const gqavk_model* model,
                                      const gqavk_decode_step_create_info* info,
                                      gqavk_decode_step** step) {
  return guard(context, __func__, [&] {
    need(context, "context");
    need(cache, "cache");
    need(model, "model");
    need(step, "step");
    same_context(cache->ctx, context, "cache");
    gqavk::DecodeStepDesc d;
    if (info != nullptr) {
      const gqavk_decode_step_create_info i = read_struct(info, "info");
      d.max_batch = i.max_batch ? i.max_batch : 1;
      d.frames = i.frames ? i.frames : 2;
      d.max_splits = i.max_splits;
    }
    *step = new gqavk_decode_step{
        cache, gqavk::DecodeStep(context->cpp, cache->cpp, model->cpp, d), {}};
    ++cache->steps;
    ++context->steps;
  });
}

gqavk_status gqavk_decode_step_destroy(gqavk_decode_step* step) {
  return guard(ctx_of(step), __func__, [&] {
    if (step == nullptr) return;
    release_io(step);
    --step->cache->steps;
    --step->cache->ctx->steps;
    delete step;
  });
}

gqavk_status gqavk_decode_step_run(gqavk_decode_step* step, const uint32_t* seqs,
                                   uint32_t seq_count, const float* q, uint64_t q_count,
                                   const float* k, uint64_t k_count, const float* v,
                                   uint64_t v_count, float* out, uint64_t out_count) {
  return guard(ctx_of(step), __func__, [&] {
    need(step, "step");
    step->cpp.run(span_of(seqs, seq_count, "seqs"), span_of(q, q_count, "q"),
                  span_of(k, k_count, "k"), span_of(v, v_count, "v"),
                  span_of(out, out_count, "out"));
  });
}

gqavk_status gqavk_decode_step_submit(gqavk_decode_step* step, const uint32_t* seqs,
                                      uint32_t seq_count, const float* q, uint64_t q_count,
                                      const float* k, uint64_t k_count, const float* v,
                                      uint64_t v_count, const gqavk_step_sync* sync,
                                      uint64_t* ticket) {
  return guard(ctx_of(step), __func__, [&] {
    need(step, "step");
    need(ticket, "ticket");
    gqavk::StepSync s;
    if (sync != nullptr) {
      const gqavk_step_sync i = read_struct(sync, "sync");
      s = {i.wait, i.wait_value, i.signal, i.signal_value};
    }
    *ticket = step->cpp.submit(span_of(seqs, seq_count, "seqs"), span_of(q, q_count, "q"),
                               span_of(k, k_count, "k"), span_of(v, v_count, "v"), s);
  });
}

gqavk_status gqavk_decode_step_wait(gqavk_decode_step* step, uint64_t ticket, float* out,
                                    uint64_t out_count) {
  return guard(ctx_of(step), __func__, [&] {
    need(step, "step");
    step->cpp.wait(ticket, span_of(out, out_count, "out"));
  });
}

gqavk_status gqavk_decode_step_set_device_io(gqavk_decode_step* step,
                                             const gqavk_step_device_io* io) {
  return guard(ctx_of(step), __func__, [&] {
    need(step, "step");
    const gqavk_step_device_io i = read_struct(io, "io");
    const std::pair<const gqavk_step_buffer*, const char*> parts[4] = {{&i.q, "io->q.buffer"},
                                                                       {&i.k, "io->k.buffer"},
                                                                       {&i.v, "io->v.buffer"},
                                                                       {&i.out, "io->out.buffer"}};
    gqavk::StepBuffer cpp[4];
    std::vector<gqavk_buffer*> used;
    for (int n = 0; n < 4; ++n) {
      const gqavk_step_buffer& b = *parts[n].first;
      need(b.buffer, parts[n].second);
      same_context(b.buffer->ctx, step->cache->ctx, parts[n].second);
      cpp[n] = {&b.buffer->cpp, b.offset};
      used.push_back(const_cast<gqavk_buffer*>(b.buffer));
    }
    step->cpp.set_device_io({cpp[0], cpp[1], cpp[2], cpp[3]});
    release_io(step);
    for (gqavk_buffer* b : used) ++b->users;
    step->io = std::move(used);
  });
}

gqavk_status gqavk_decode_step_set_host_io(gqavk_decode_step* step) {
  return guard(ctx_of(step), __func__, [&] {
    need(step, "step");
    step->cpp.set_host_io();
    release_io(step);
  });
}

gqavk_status gqavk_decode_step_prepare(gqavk_decode_step* step, const uint32_t* seqs,
                                       uint32_t seq_count, const float* q, uint64_t q_count,
                                       const float* k, uint64_t k_count, const float* v,
                                       uint64_t v_count, uint64_t* ticket) {
  return guard(ctx_of(step), __func__, [&] {
    need(step, "step");
    need(ticket, "ticket");
    *ticket = step->cpp.prepare(span_of(seqs, seq_count, "seqs"), span_of(q, q_count, "q"),
                                span_of(k, k_count, "k"), span_of(v, v_count, "v"));
  });
}

gqavk_status gqavk_decode_step_record(const gqavk_decode_step* step, VkCommandBuffer command_buffer,
                                      uint32_t frame) {
  return guard(ctx_of(step), __func__, [&] {
    need(step, "step");
    if (command_buffer == VK_NULL_HANDLE) bad("command_buffer is VK_NULL_HANDLE");
    step->cpp.record(command_buffer, frame);
  });
}

gqavk_status gqavk_decode_step_submitted(gqavk_decode_step* step, uint64_t ticket,
                                         VkSemaphore semaphore, uint64_t value) {
  return guard(ctx_of(step), __func__, [&] {
    need(step, "step");
    step->cpp.submitted(ticket, semaphore, value);
  });
}

gqavk_status gqavk_decode_step_set_sinks(gqavk_decode_step* step, uint32_t layer,
                                         const float* sinks, uint32_t sink_count) {
  return guard(ctx_of(step), __func__, [&] {
    need(step, "step");
    step->cpp.set_sinks(layer, span_of(sinks, sink_count, "sinks"));
  });
}

gqavk_status gqavk_decode_step_recordings(const gqavk_decode_step* step, uint64_t* recordings) {
  return guard(ctx_of(step), __func__, [&] {
    need(step, "step");
    need(recordings, "recordings");
    *recordings = step->cpp.recordings();
  });
}

gqavk_status gqavk_decode_step_last_gpu_ns(const gqavk_decode_step* step, double* ns) {
  return guard(ctx_of(step), __func__, [&] {
    need(step, "step");
    need(ns, "ns");
    *ns = step->cpp.last_gpu_ns();
  });
}

gqavk_status gqavk_decode_step_frames(const gqavk_decode_step* step, uint32_t* frames) {
  return guard(ctx_of(step), __func__, [&] {
    need(step, "step");
    need(frames, "frames");
    *frames = step->cpp.frames();
  });
}

gqavk_status gqavk_decode_step_max_batch(const gqavk_decode_step* step, uint32_t* max_batch) {
  return guard(ctx_of(step), __func__, [&] {
    need(step, "step");
    need(max_batch, "max_batch");
    *max_batch = step->cpp.max_batch();
  });
}

gqavk_status gqavk_decode_step_q_values(const gqavk_decode_step* step, uint32_t rows,
                                        uint64_t* values) {
  return guard(ctx_of(step), __func__, [&] {
    need(step, "step");
    need(values, "values");
    *values = step->cpp.q_values(rows);
  });
}

gqavk_status gqavk_decode_step_k_values(const gqavk_decode_step* step, uint32_t rows,
                                        uint64_t* values) {
  return guard(ctx_of(step), __func__, [&] {
    need(step, "step");
    need(values, "values");
    *values = step->cpp.k_values(rows);
  });
}

gqavk_status gqavk_decode_step_v_values(const gqavk_decode_step* step, uint32_t rows,
                                        uint64_t* values) {
  return guard(ctx_of(step), __func__, [&] {
    need(step, "step");
    need(values, "values");
    *values = step->cpp.v_values(rows);
  });
}

gqavk_status gqavk_decode_step_out_values(const gqavk_decode_step* step, uint32_t rows,
                                          uint64_t* values) {
  return guard(ctx_of(step), __func__, [&] {
    need(step, "step");
    need(values, "values");
    *values = step->cpp.out_values(rows);
  });
}

}  // extern "C"
