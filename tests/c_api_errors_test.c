/* The C API's refusals, function by function: each NULL pointer argument, struct_size 0 or of
 * unknown non-zero bytes, unknown enum values, zero sizes, out-of-range sequences and layers,
 * count mismatches, the wrong dtype and destruction in the wrong order. Each gives its exact
 * status and a message (of the context, and of the thread) naming the bad argument or value; a
 * failed call writes none of its results. Plain C99 on the default device (lavapipe) with the
 * validation layer on: any validation message fails the test. One small shape (G 1, H 2, D 64, f32)
 * keeps the pipelines few. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "c_check.h"
#include "gqavk/gqavk.h"

enum { G = 1, H = 2, D = 64, CAP = 16, BLOCK = 4, SLOTS = 2, LAYERS = 2 };

static const gqavk_status kInvalid = GQAVK_ERROR_INVALID_ARGUMENT;
/* A struct larger than the library's with bytes it does not know set: a newer header's feature. */
static const gqavk_status kNewer = GQAVK_ERROR_UNSUPPORTED;

static uint32_t validation_messages = 0;

static void on_validation(void* user_data, const char* message) {
  uint32_t* count = (uint32_t*)user_data;
  ++*count;
  fprintf(stderr, "validation: %s\n", message);
}

static gqavk_kv_cache_create_info cache_info(void) {
  return c_cache_info(SLOTS, G, D, CAP, GQAVK_DTYPE_F32, BLOCK, LAYERS);
}

static gqavk_layer_desc layer_desc(void) { return c_layer_desc(H, G, D, GQAVK_DTYPE_F32); }

/* ---- Library-wide: version, strings, dtypes -------------------------------------------------- */

static void test_strings(void) {
  static const struct {
    gqavk_status status;
    const char* name;
  } names[] = {
      {GQAVK_SUCCESS, "GQAVK_SUCCESS"},
      {GQAVK_INCOMPLETE, "GQAVK_INCOMPLETE"},
      {GQAVK_ERROR_INVALID_ARGUMENT, "GQAVK_ERROR_INVALID_ARGUMENT"},
      {GQAVK_ERROR_UNSUPPORTED, "GQAVK_ERROR_UNSUPPORTED"},
      {GQAVK_ERROR_NO_DEVICE, "GQAVK_ERROR_NO_DEVICE"},
      {GQAVK_ERROR_OUT_OF_MEMORY, "GQAVK_ERROR_OUT_OF_MEMORY"},
      {GQAVK_ERROR_VULKAN, "GQAVK_ERROR_VULKAN"},
      {GQAVK_ERROR_OUT_OF_BLOCKS, "GQAVK_ERROR_OUT_OF_BLOCKS"},
      {GQAVK_ERROR_IN_USE, "GQAVK_ERROR_IN_USE"},
      {GQAVK_ERROR_INTERNAL, "GQAVK_ERROR_INTERNAL"},
      {GQAVK_ERROR_DEVICE_LOST, "GQAVK_ERROR_DEVICE_LOST"},
  };
  static const char* dtype_names[] = {"f32", "f16", "bf16", "q8", "q4"};
  size_t i;
  gqavk_dtype parsed;

  CHECK(gqavk_version() == GQAVK_VERSION);
  CHECK(GQAVK_VERSION_GET_MAJOR(gqavk_version()) == GQAVK_VERSION_MAJOR);
  CHECK(GQAVK_VERSION_GET_MINOR(gqavk_version()) == GQAVK_VERSION_MINOR);
  CHECK(GQAVK_VERSION_GET_PATCH(gqavk_version()) == GQAVK_VERSION_PATCH);
  CHECK(GQAVK_MAKE_VERSION(1, 2, 3) == ((1u << 22) | (2u << 12) | 3u));

  for (i = 0; i < sizeof(names) / sizeof(names[0]); ++i) {
    const char* got = gqavk_status_string(names[i].status);
    CHECK(got != NULL && strcmp(got, names[i].name) == 0);
  }
  CHECK(strcmp(gqavk_status_string((gqavk_status)2), "unknown gqavk_status") == 0);
  CHECK(strcmp(gqavk_status_string((gqavk_status)-10), "unknown gqavk_status") == 0);
  CHECK(strcmp(gqavk_status_string(GQAVK_STATUS_MAX_ENUM), "unknown gqavk_status") == 0);

  for (i = 0; i < 5; ++i) {
    const char* got = gqavk_dtype_string((gqavk_dtype)i);
    CHECK(got != NULL && strcmp(got, dtype_names[i]) == 0);
    parsed = GQAVK_DTYPE_MAX_ENUM;
    CHECK_OK(gqavk_parse_dtype(dtype_names[i], &parsed));
    CHECK(parsed == (gqavk_dtype)i);
  }
  CHECK(gqavk_dtype_string((gqavk_dtype)5) == NULL);
  CHECK(gqavk_dtype_string(GQAVK_DTYPE_MAX_ENUM) == NULL);
  CHECK(gqavk_dtype_string((gqavk_dtype)0xFFFFFFFFu) == NULL);
  CHECK(gqavk_vendor_string((gqavk_vendor)0xFFFFFFFFu) == NULL);
  CHECK(gqavk_device_type_string((gqavk_device_type)0x80000000u) == NULL);
  parsed = GQAVK_DTYPE_Q4;
  CHECK_FAILS(gqavk_parse_dtype("q5", &parsed), kInvalid, NULL, "'q5'");
  CHECK_MSG(NULL, "f32, f16, bf16, q8 or q4");
  CHECK(parsed == GQAVK_DTYPE_Q4); /* not written on failure */
  CHECK_FAILS(gqavk_parse_dtype("", &parsed), kInvalid, NULL, "''");
  CHECK_FAILS(gqavk_parse_dtype("F32", &parsed), kInvalid, NULL, "'F32'");
  CHECK_FAILS(gqavk_parse_dtype(NULL, &parsed), kInvalid, NULL, "text");
  CHECK_FAILS(gqavk_parse_dtype("f16", NULL), kInvalid, NULL, "dtype");
}

/* Names of vendors and device types (gqavk::to_string); NULL past the enums. */
static void test_names(void) {
  static const char* vendors[] = {"AMD", "Intel",    "NVIDIA",     "Apple",
                                  "Arm", "Qualcomm", "Mesa (CPU)", "other"};
  static const char* types[] = {"discrete GPU", "integrated GPU", "virtual GPU", "CPU", "other"};
  size_t i;
  for (i = 0; i < 8; ++i) {
    const char* got = gqavk_vendor_string((gqavk_vendor)i);
    CHECK(got != NULL && strcmp(got, vendors[i]) == 0);
  }
  CHECK(gqavk_vendor_string((gqavk_vendor)8) == NULL);
  CHECK(gqavk_vendor_string(GQAVK_VENDOR_MAX_ENUM) == NULL);
  for (i = 0; i < 5; ++i) {
    const char* got = gqavk_device_type_string((gqavk_device_type)i);
    CHECK(got != NULL && strcmp(got, types[i]) == 0);
  }
  CHECK(gqavk_device_type_string((gqavk_device_type)5) == NULL);
  CHECK(gqavk_device_type_string(GQAVK_DEVICE_TYPE_MAX_ENUM) == NULL);
}

/* Pool row sizes and binary16 conversions. */
static void test_row_bytes_and_halves(void) {
  uint64_t bytes = 7;
  const float floats[6] = {1.0f, -2.0f, 0.5f, 65504.0f, 1.0e6f, 0.0f};
  const uint16_t halves[6] = {0x3C00, 0xC000, 0x3800, 0x7BFF, 0x7C00, 0x0000};
  uint16_t h[6];
  float f[6];
  size_t i;

  CHECK_OK(gqavk_dtype_row_bytes(GQAVK_DTYPE_F32, 64, &bytes));
  CHECK(bytes == 256);
  CHECK_OK(gqavk_dtype_row_bytes(GQAVK_DTYPE_F16, 64, &bytes));
  CHECK(bytes == 128);
  CHECK_OK(gqavk_dtype_row_bytes(GQAVK_DTYPE_BF16, 128, &bytes));
  CHECK(bytes == 256);
  CHECK_OK(gqavk_dtype_row_bytes(GQAVK_DTYPE_Q8, 64, &bytes));
  CHECK(bytes == 64 + 4); /* values and one f32 scale */
  CHECK_OK(gqavk_dtype_row_bytes(GQAVK_DTYPE_Q4, 64, &bytes));
  CHECK(bytes == 32 + 4); /* 4 bits a value and two f16 scales */
  bytes = 7;
  CHECK_FAILS(gqavk_dtype_row_bytes(GQAVK_DTYPE_F32, 64, NULL), kInvalid, NULL, "bytes");
  CHECK_FAILS(gqavk_dtype_row_bytes((gqavk_dtype)5, 64, &bytes), kInvalid, NULL, "dtype");
  CHECK_FAILS(gqavk_dtype_row_bytes((gqavk_dtype)0x80000000u, 64, &bytes), kInvalid, NULL,
              "2147483648");
  CHECK_FAILS(gqavk_dtype_row_bytes(GQAVK_DTYPE_F32, 0, &bytes), kInvalid, NULL, "dim 0");
  CHECK_FAILS(gqavk_dtype_row_bytes(GQAVK_DTYPE_Q4, 48, &bytes), kInvalid, NULL, "dim 48");
  CHECK(bytes == 7);

  CHECK_OK(gqavk_floats_to_halves(floats, h, 6));
  for (i = 0; i < 6; ++i) CHECK(h[i] == halves[i]);
  CHECK_OK(gqavk_halves_to_floats(halves, f, 6));
  for (i = 0; i < 4; ++i) CHECK(f[i] == floats[i]);
  CHECK(f[4] > 1.0e30f && f[5] == 0.0f); /* infinity, zero */
  CHECK_OK(gqavk_floats_to_halves(NULL, NULL, 0));
  CHECK_OK(gqavk_halves_to_floats(NULL, NULL, 0));
  CHECK_FAILS(gqavk_floats_to_halves(NULL, h, 6), kInvalid, NULL, "in");
  CHECK_FAILS(gqavk_floats_to_halves(floats, NULL, 6), kInvalid, NULL, "out");
  CHECK_FAILS(gqavk_halves_to_floats(NULL, f, 6), kInvalid, NULL, "in");
  CHECK_FAILS(gqavk_halves_to_floats(halves, NULL, 6), kInvalid, NULL, "out");
}

/* ---- Devices --------------------------------------------------------------------------------- */

static void test_devices(void) {
  uint32_t count = 0, n = 0, i;
  gqavk_device_info infos[8];
  int lavapipe = 0;

  CHECK_FAILS(gqavk_list_devices(NULL, NULL), kInvalid, NULL, "count");
  CHECK_FAILS(gqavk_list_devices(NULL, infos), kInvalid, NULL, "count");
  CHECK_OK(gqavk_list_devices(&count, NULL));
  CHECK(count >= 1 && count <= 8);
  if (count < 1 || count > 8) return;

  memset(infos, 0, sizeof(infos));
  for (i = 0; i < 8; ++i) infos[i].struct_size = sizeof(gqavk_device_info);
  n = 8;
  CHECK_OK(gqavk_list_devices(&n, infos));
  CHECK(n == count);
  for (i = 0; i < n; ++i) {
    CHECK(infos[i].index == i);
    CHECK(infos[i].name[0] != '\0');
    CHECK(infos[i].api_version >= VK_API_VERSION_1_2);
    if (strstr(infos[i].name, "llvmpipe") != NULL) {
      lavapipe = 1;
      CHECK(infos[i].vendor == GQAVK_VENDOR_MESA_CPU);
      CHECK(infos[i].type == GQAVK_DEVICE_TYPE_CPU);
      CHECK(infos[i].can_run == 1);
      CHECK(infos[i].heap_count >= 1 && infos[i].heap_count <= GQAVK_MAX_HEAPS);
    }
  }
  CHECK(lavapipe);

  /* Fewer slots than devices: GQAVK_INCOMPLETE with the slots filled. */
  memset(infos, 0, sizeof(infos));
  infos[0].struct_size = sizeof(gqavk_device_info);
  n = 0;
  CHECK_FAILS(gqavk_list_devices(&n, infos), GQAVK_INCOMPLETE, NULL, NULL);
  CHECK(n == 0);

  /* Each entry's struct_size must be set. */
  memset(infos, 0, sizeof(infos));
  n = 1;
  CHECK_FAILS(gqavk_list_devices(&n, infos), kInvalid, NULL, "struct_size");
  CHECK(n == 1);
  infos[0].struct_size = 8; /* too small to hold even the name */
  CHECK_FAILS(gqavk_list_devices(&n, infos), kInvalid, NULL, "struct_size");
}

/* ---- Contexts (that fail before reaching a device) ------------------------------------------- */

static void test_context_errors(void) {
  gqavk_context_create_info info;
  gqavk_external_device_info ext;
  gqavk_context* const sentinel = (gqavk_context*)&info;
  gqavk_context* ctx = sentinel;
  uint32_t count = 7;
  gqavk_device_info dev;

  memset(&info, 0, sizeof(info));
  info.struct_size = sizeof(info);
  CHECK_FAILS(gqavk_context_create(&info, NULL), kInvalid, NULL, "context");
  info.struct_size = 0;
  CHECK_FAILS(gqavk_context_create(&info, &ctx), kInvalid, NULL, "struct_size");
  info.struct_size = 4;
  CHECK_FAILS(gqavk_context_create(&info, &ctx), kInvalid, NULL, "struct_size");
  info.struct_size = sizeof(info);
  info.device = "no-such-gpu";
  CHECK_FAILS(gqavk_context_create(&info, &ctx), GQAVK_ERROR_NO_DEVICE, NULL, "'no-such-gpu'");
  CHECK_MSG(NULL, "llvmpipe"); /* it lists the devices there are */
  info.device = "97";
  CHECK_FAILS(gqavk_context_create(&info, &ctx), GQAVK_ERROR_NO_DEVICE, NULL, "'97'");
  info.device = NULL;
  info.validation = 2; /* flags are 0 or 1 */
  CHECK_FAILS(gqavk_context_create(&info, &ctx), kInvalid, NULL, "validation is 2");
  info.validation = 0;
  info.pipeline_statistics = 7;
  CHECK_FAILS(gqavk_context_create(&info, &ctx), kInvalid, NULL, "pipeline_statistics is 7");
  info.pipeline_statistics = 0;
  CHECK(ctx == sentinel);

  memset(&ext, 0, sizeof(ext));
  ext.struct_size = sizeof(ext);
  CHECK_FAILS(gqavk_context_create_external(NULL, &ctx), kInvalid, NULL, "info");
  CHECK_FAILS(gqavk_context_create_external(&ext, NULL), kInvalid, NULL, "context");
  ext.struct_size = 0;
  CHECK_FAILS(gqavk_context_create_external(&ext, &ctx), kInvalid, NULL, "struct_size");
  ext.struct_size = sizeof(ext);
  CHECK_FAILS(gqavk_context_create_external(&ext, &ctx), kInvalid, NULL, "instance");
  CHECK_MSG(NULL, "VK_NULL_HANDLE");
  CHECK(ctx == sentinel);

  CHECK_OK(gqavk_context_destroy(NULL));
  CHECK_FAILS(gqavk_context_validation_message_count(NULL, &count), kInvalid, NULL, "context");
  CHECK(count == 7);
  memset(&dev, 0, sizeof(dev));
  dev.struct_size = sizeof(dev);
  CHECK_FAILS(gqavk_context_device_info(NULL, &dev), kInvalid, NULL, "context");
}

static void test_context(gqavk_context* ctx) {
  gqavk_device_info dev;
  uint32_t count = 0;

  memset(&dev, 0, sizeof(dev));
  dev.struct_size = sizeof(dev);
  CHECK_OK(gqavk_context_device_info(ctx, &dev));
  CHECK(strstr(dev.name, "llvmpipe") != NULL);
  CHECK(dev.can_run == 1);
  CHECK_FAILS(gqavk_context_device_info(ctx, NULL), kInvalid, ctx, "info");
  dev.struct_size = 0;
  CHECK_FAILS(gqavk_context_device_info(ctx, &dev), kInvalid, ctx, "struct_size");
  CHECK_FAILS(gqavk_context_validation_message_count(ctx, NULL), kInvalid, ctx, "count");
  CHECK_OK(gqavk_context_validation_message_count(ctx, &count));
  CHECK(count == 0);
}

/* ---- Buffers --------------------------------------------------------------------------------- */

static void test_buffers(gqavk_context* ctx) {
  gqavk_buffer* const sentinel = (gqavk_buffer*)&ctx;
  gqavk_buffer* buf = NULL;
  gqavk_buffer* wrapped = sentinel;
  VkBuffer vk = VK_NULL_HANDLE;
  uint64_t offset = 99, bytes = 0;
  unsigned char data[64], back[64];
  size_t i;

  for (i = 0; i < sizeof(data); ++i) data[i] = (unsigned char)(3 * i + 1);
  CHECK_FAILS(gqavk_buffer_create(NULL, 256, &buf), kInvalid, NULL, "context");
  CHECK_FAILS(gqavk_buffer_create(ctx, 256, NULL), kInvalid, ctx, "buffer");
  buf = sentinel;
  CHECK_FAILS(gqavk_buffer_create(ctx, 0, &buf), kInvalid, ctx, "0 bytes");
  CHECK(buf == sentinel);
  CHECK_OK(gqavk_buffer_create(ctx, 256, &buf));

  CHECK_FAILS(gqavk_buffer_size(NULL, &bytes), kInvalid, NULL, "buffer");
  CHECK_FAILS(gqavk_buffer_size(buf, NULL), kInvalid, ctx, "bytes");
  CHECK_OK(gqavk_buffer_size(buf, &bytes));
  CHECK(bytes == 256);

  CHECK_FAILS(gqavk_buffer_upload(NULL, 0, data, 64), kInvalid, NULL, "buffer");
  CHECK_FAILS(gqavk_buffer_upload(buf, 0, NULL, 64), kInvalid, ctx, "data");
  CHECK_FAILS(gqavk_buffer_upload(buf, 200, data, 64), kInvalid, ctx, "does not fit");
  CHECK_MSG(ctx, "offset 200");
  CHECK_FAILS(gqavk_buffer_upload(buf, UINT64_MAX, data, 64), kInvalid, ctx, "does not fit");
  CHECK_OK(gqavk_buffer_upload(buf, 64, data, 64));
  CHECK_FAILS(gqavk_buffer_download(NULL, 0, back, 64), kInvalid, NULL, "buffer");
  CHECK_FAILS(gqavk_buffer_download(buf, 0, NULL, 64), kInvalid, ctx, "data");
  CHECK_FAILS(gqavk_buffer_download(buf, 193, back, 64), kInvalid, ctx, "does not fit");
  memset(back, 0, sizeof(back));
  CHECK_OK(gqavk_buffer_download(buf, 64, back, 64));
  CHECK(memcmp(back, data, 64) == 0);

  CHECK_FAILS(gqavk_buffer_vk_handle(NULL, &vk, &offset), kInvalid, NULL, "buffer");
  CHECK_FAILS(gqavk_buffer_vk_handle(buf, NULL, &offset), kInvalid, ctx, "vk_buffer");
  CHECK_FAILS(gqavk_buffer_vk_handle(buf, &vk, NULL), kInvalid, ctx, "offset");
  CHECK(vk == VK_NULL_HANDLE && offset == 99);
  CHECK_OK(gqavk_buffer_vk_handle(buf, &vk, &offset));
  CHECK(vk != VK_NULL_HANDLE && offset == 0);

  /* Wrapping: gqavk's own buffer's VkBuffer stands in for an application's. */
  CHECK_FAILS(gqavk_buffer_wrap(NULL, vk, 0, 64, &wrapped), kInvalid, NULL, "context");
  CHECK_FAILS(gqavk_buffer_wrap(ctx, vk, 0, 64, NULL), kInvalid, ctx, "buffer");
  CHECK_FAILS(gqavk_buffer_wrap(ctx, VK_NULL_HANDLE, 0, 64, &wrapped), kInvalid, ctx,
              "VK_NULL_HANDLE");
  CHECK_FAILS(gqavk_buffer_wrap(ctx, vk, 0, 0, &wrapped), kInvalid, ctx, "0 bytes");
  CHECK_FAILS(gqavk_buffer_wrap(ctx, vk, 4, 64, &wrapped), kInvalid, ctx, "offset 4");
  CHECK_FAILS(gqavk_buffer_wrap(ctx, vk, 0, 20, &wrapped), kInvalid, ctx, "20 bytes");
  CHECK_MSG(ctx, "multiple of 16");
  CHECK_FAILS(gqavk_buffer_wrap(ctx, vk, 0, 512, &wrapped), kInvalid, ctx, "does not fit");
  CHECK(wrapped == sentinel);
  CHECK_OK(gqavk_buffer_wrap(ctx, vk, 64, 64, &wrapped));
  CHECK_OK(gqavk_buffer_vk_handle(wrapped, &vk, &offset));
  CHECK(offset == 64);
  CHECK_OK(gqavk_buffer_size(wrapped, &bytes));
  CHECK(bytes == 64);
  memset(back, 0, sizeof(back));
  CHECK_OK(gqavk_buffer_download(wrapped, 0, back, 64)); /* the bytes uploaded at 64 above */
  CHECK(memcmp(back, data, 64) == 0);
  CHECK_FAILS(gqavk_buffer_download(wrapped, 16, back, 64), kInvalid, ctx, "does not fit");

  CHECK_OK(gqavk_buffer_destroy(NULL));
  CHECK_OK(gqavk_buffer_destroy(wrapped));
  CHECK_OK(gqavk_buffer_destroy(buf));
}

/* ---- Capacity planning (no device) ----------------------------------------------------------- */

/* A struct followed by bytes a newer header would add. */
typedef struct {
  gqavk_kv_cache_create_info info;
  uint64_t tail[2];
} bigger_cache_info;

typedef struct {
  gqavk_layer_desc layer;
  uint64_t tail;
} bigger_layer_desc;

static void test_plan_memory(void) {
  gqavk_kv_cache_create_info info = cache_info();
  gqavk_kv_memory memory;
  bigger_cache_info bigger;

  memset(&memory, 0, sizeof(memory));
  memory.struct_size = sizeof(memory);
  CHECK_OK(gqavk_kv_cache_plan_memory(&info, &memory));
  /* f32 rows of 64 values: 256 bytes; a block 4 tokens x (K + V); 2 slots x 2 layers x 4 blocks
   * plus the reserved zero block. */
  CHECK(memory.token_bytes == 512);
  CHECK(memory.block_bytes == 2048);
  CHECK(memory.pool_blocks == 17);
  CHECK(memory.pool_bytes == 17 * 2048);
  CHECK(memory.blocks_in_use == 0);
  CHECK(memory.blocks_free == 16);
  CHECK(memory.table_bytes == 2 * 2 * 4 * 4);

  CHECK_FAILS(gqavk_kv_cache_plan_memory(NULL, &memory), kInvalid, NULL, "info");
  CHECK_FAILS(gqavk_kv_cache_plan_memory(&info, NULL), kInvalid, NULL, "memory");
  memory.struct_size = 0;
  CHECK_FAILS(gqavk_kv_cache_plan_memory(&info, &memory), kInvalid, NULL, "struct_size");
  memory.struct_size = sizeof(memory);
  info.struct_size = 0;
  CHECK_FAILS(gqavk_kv_cache_plan_memory(&info, &memory), kInvalid, NULL, "struct_size");
  info.struct_size = 8;
  CHECK_FAILS(gqavk_kv_cache_plan_memory(&info, &memory), kInvalid, NULL, "struct_size");
  info = cache_info();
  info.kv_heads = 0;
  CHECK_FAILS(gqavk_kv_cache_plan_memory(&info, &memory), kInvalid, NULL, "kv_heads is 0");
  info = cache_info();
  info.head_dim = 65;
  CHECK_FAILS(gqavk_kv_cache_plan_memory(&info, &memory), kInvalid, NULL, "head_dim 65");
  info = cache_info();
  info.capacity_tokens = 0;
  CHECK_FAILS(gqavk_kv_cache_plan_memory(&info, &memory), kInvalid, NULL, "capacity_tokens is 0");
  info = cache_info();
  info.block_tokens = 3;
  CHECK_FAILS(gqavk_kv_cache_plan_memory(&info, &memory), kInvalid, NULL, "block_tokens 3");
  info = cache_info();
  info.dtype = (gqavk_dtype)7;
  CHECK_FAILS(gqavk_kv_cache_plan_memory(&info, &memory), kInvalid, NULL, "dtype is 7");
  /* Any unsigned int a C enum holds, also past the C++ enum's range (fuzz_c_api found the library
   * loading it as the enum, which UBSan reports under ./scripts/test.sh --sanitize). */
  info.dtype = (gqavk_dtype)0xCBCBCBCBu;
  CHECK_FAILS(gqavk_kv_cache_plan_memory(&info, &memory), kInvalid, NULL, "dtype is 3419130827");
  info = cache_info();
  info.pool_blocks = 1;
  CHECK_FAILS(gqavk_kv_cache_plan_memory(&info, &memory), kInvalid, NULL, "pool_blocks is 1");
  info = cache_info();
  info.layer_window_count = 2; /* entries announced, none given */
  CHECK_FAILS(gqavk_kv_cache_plan_memory(&info, &memory), kInvalid, NULL, "layer_windows");
  {
    const uint32_t windows[3] = {0, 8, 0};
    info = cache_info();
    info.layer_windows = windows;
    info.layer_window_count = 3;
    CHECK_FAILS(gqavk_kv_cache_plan_memory(&info, &memory), kInvalid, NULL,
                "layer_windows has 3 entries");
    info.layer_window_count = 2;
    CHECK_OK(gqavk_kv_cache_plan_memory(&info, &memory));
  }
  CHECK(memory.pool_blocks == 17);

  /* A struct larger than the library's: refused with unknown non-zero bytes, read without. */
  memset(&bigger, 0, sizeof(bigger));
  bigger.info = cache_info();
  bigger.info.struct_size = sizeof(bigger);
  memset(&memory, 0, sizeof(memory));
  memory.struct_size = sizeof(memory);
  CHECK_OK(gqavk_kv_cache_plan_memory(&bigger.info, &memory));
  CHECK(memory.pool_bytes == 17 * 2048);
  bigger.tail[1] = 1;
  CHECK_FAILS(gqavk_kv_cache_plan_memory(&bigger.info, &memory), kNewer, NULL, "struct_size is 80");

  /* An output struct larger than the library's: the fields it knows are written, struct_size
   * kept. */
  {
    struct {
      gqavk_kv_memory memory;
      uint64_t tail;
    } out;
    memset(&out, 0, sizeof(out));
    out.memory.struct_size = sizeof(out);
    info = cache_info();
    CHECK_OK(gqavk_kv_cache_plan_memory(&info, &out.memory));
    CHECK(out.memory.struct_size == sizeof(out));
    CHECK(out.memory.pool_bytes == 17 * 2048 && out.memory.blocks_free == 16);
    CHECK(out.tail == 0);
  }
}

/* ---- KV cache -------------------------------------------------------------------------------- */

static void test_cache_create(gqavk_context* ctx) {
  gqavk_kv_cache_create_info info = cache_info();
  gqavk_kv_cache* const sentinel = (gqavk_kv_cache*)&info;
  gqavk_kv_cache* cache = sentinel;
  gqavk_buffer* small = NULL;
  bigger_cache_info bigger;

  CHECK_FAILS(gqavk_kv_cache_create(NULL, &info, &cache), kInvalid, NULL, "context");
  CHECK_FAILS(gqavk_kv_cache_create(ctx, NULL, &cache), kInvalid, ctx, "info");
  CHECK_FAILS(gqavk_kv_cache_create(ctx, &info, NULL), kInvalid, ctx, "cache");
  info.struct_size = 0;
  CHECK_FAILS(gqavk_kv_cache_create(ctx, &info, &cache), kInvalid, ctx, "struct_size");
  info = cache_info();
  info.batch = 0; /* 0 means 1: accepted */
  info.dtype = GQAVK_DTYPE_Q4;
  info.head_dim = 80;
  CHECK_FAILS(gqavk_kv_cache_create(ctx, &info, &cache), kInvalid, ctx, "head dim 80");
  CHECK_MSG(ctx, "q4");
  info = cache_info();
  info.dtype = GQAVK_DTYPE_MAX_ENUM;
  CHECK_FAILS(gqavk_kv_cache_create(ctx, &info, &cache), kInvalid, ctx, "dtype");
  info = cache_info();
  info.v_head_dim = 128;
  CHECK_FAILS(gqavk_kv_cache_create(ctx, &info, &cache), kInvalid, ctx, "Dv 128");
  CHECK(cache == sentinel);

  /* A pool buffer smaller than plan_memory's pool_bytes. */
  CHECK_OK(gqavk_buffer_create(ctx, 1024, &small));
  info = cache_info();
  info.pool = small;
  CHECK_FAILS(gqavk_kv_cache_create(ctx, &info, &cache), kInvalid, ctx, "1024 bytes");
  CHECK_MSG(ctx, "34816");
  CHECK_OK(gqavk_buffer_destroy(small)); /* the refused cache does not hold it */

  memset(&bigger, 0, sizeof(bigger));
  bigger.info = cache_info();
  bigger.info.struct_size = sizeof(bigger);
  bigger.tail[0] = 0x100;
  CHECK_FAILS(gqavk_kv_cache_create(ctx, &bigger.info, &cache), kNewer, ctx, "struct_size");
  CHECK(cache == sentinel);
}

static void test_cache(gqavk_context* ctx, gqavk_kv_cache* cache) {
  gqavk_kv_memory memory;
  gqavk_kv_cache_create_info desc;
  uint64_t bytes = 0;
  uint32_t seq = 77, tokens = 77, open = 77;
  float k[4 * D], v[4 * D];
  uint16_t h[4 * D];
  double ns = -1.0;

  c_random_values(k, 4 * D, 1);
  c_random_values(v, 4 * D, 2);
  memset(h, 0, sizeof(h));

  CHECK_OK(gqavk_kv_cache_destroy(NULL));

  /* memory, bytes, desc */
  memset(&memory, 0, sizeof(memory));
  memory.struct_size = sizeof(memory);
  CHECK_FAILS(gqavk_kv_cache_memory(NULL, &memory), kInvalid, NULL, "cache");
  CHECK_FAILS(gqavk_kv_cache_memory(cache, NULL), kInvalid, ctx, "memory");
  memory.struct_size = 0;
  CHECK_FAILS(gqavk_kv_cache_memory(cache, &memory), kInvalid, ctx, "struct_size");
  memory.struct_size = sizeof(memory);
  CHECK_OK(gqavk_kv_cache_memory(cache, &memory));
  CHECK(memory.pool_blocks == 17 && memory.blocks_in_use == 0 && memory.blocks_free == 16);
  CHECK_FAILS(gqavk_kv_cache_bytes(NULL, &bytes), kInvalid, NULL, "cache");
  CHECK_FAILS(gqavk_kv_cache_bytes(cache, NULL), kInvalid, ctx, "bytes");
  CHECK_OK(gqavk_kv_cache_bytes(cache, &bytes));
  CHECK(bytes == 17 * 2048);
  memset(&desc, 0, sizeof(desc));
  desc.struct_size = sizeof(desc);
  CHECK_FAILS(gqavk_kv_cache_desc(NULL, &desc), kInvalid, NULL, "cache");
  CHECK_FAILS(gqavk_kv_cache_desc(cache, NULL), kInvalid, ctx, "info");
  desc.struct_size = 0;
  CHECK_FAILS(gqavk_kv_cache_desc(cache, &desc), kInvalid, ctx, "struct_size");
  desc.struct_size = sizeof(desc);
  CHECK_OK(gqavk_kv_cache_desc(cache, &desc));
  CHECK(desc.batch == SLOTS && desc.kv_heads == G && desc.head_dim == D);
  CHECK(desc.capacity_tokens == CAP && desc.dtype == GQAVK_DTYPE_F32);
  CHECK(desc.block_tokens == BLOCK && desc.layers == LAYERS);
  CHECK(desc.v_head_dim == D && desc.pool_blocks == 17); /* resolved */
  CHECK(desc.layer_window_count == 0 && desc.pool == NULL);

  /* sequences: both slots start open */
  CHECK_FAILS(gqavk_kv_cache_add_sequence(NULL, &seq), kInvalid, NULL, "cache");
  CHECK_FAILS(gqavk_kv_cache_add_sequence(cache, NULL), kInvalid, ctx, "seq");
  CHECK_FAILS(gqavk_kv_cache_add_sequence(cache, &seq), kInvalid, ctx, "slot");
  CHECK(seq == 77);
  CHECK_FAILS(gqavk_kv_cache_free_sequence(NULL, 0), kInvalid, NULL, "cache");
  CHECK_FAILS(gqavk_kv_cache_free_sequence(cache, 2), kInvalid, ctx, "sequence 2");
  CHECK_MSG(ctx, "out of range");
  CHECK_OK(gqavk_kv_cache_free_sequence(cache, 1));
  CHECK_FAILS(gqavk_kv_cache_free_sequence(cache, 1), kInvalid, ctx, "1 is not open");
  CHECK_FAILS(gqavk_kv_cache_is_open(NULL, 0, &open), kInvalid, NULL, "cache");
  CHECK_FAILS(gqavk_kv_cache_is_open(cache, 0, NULL), kInvalid, ctx, "open");
  CHECK_OK(gqavk_kv_cache_is_open(cache, 1, &open));
  CHECK(open == 0);
  CHECK_OK(gqavk_kv_cache_is_open(cache, 0, &open));
  CHECK(open == 1);
  open = 77;
  CHECK_OK(gqavk_kv_cache_is_open(cache, 9, &open)); /* no such slot: not open */
  CHECK(open == 0);
  CHECK_OK(gqavk_kv_cache_add_sequence(cache, &seq));
  CHECK(seq == 1);

  /* fork and truncate */
  CHECK_FAILS(gqavk_kv_cache_fork_sequence(NULL, 0, &seq), kInvalid, NULL, "cache");
  CHECK_FAILS(gqavk_kv_cache_fork_sequence(cache, 0, NULL), kInvalid, ctx, "child");
  CHECK_FAILS(gqavk_kv_cache_fork_sequence(cache, 5, &seq), kInvalid, ctx, "5");
  CHECK_FAILS(gqavk_kv_cache_fork_sequence(cache, 0, &seq), kInvalid, ctx, "slot");
  CHECK(seq == 1);
  CHECK_FAILS(gqavk_kv_cache_truncate(NULL, 0, 0), kInvalid, NULL, "cache");
  CHECK_FAILS(gqavk_kv_cache_truncate(cache, 3, 0), kInvalid, ctx, "sequence 3");

  /* write */
  CHECK_FAILS(gqavk_kv_cache_write(NULL, 0, 0, 0, 4, k, 4 * D, v, 4 * D), kInvalid, NULL, "cache");
  CHECK_FAILS(gqavk_kv_cache_write(cache, 0, 0, 0, 4, NULL, 4 * D, v, 4 * D), kInvalid, ctx, "k");
  CHECK_FAILS(gqavk_kv_cache_write(cache, 0, 0, 0, 4, k, 4 * D, NULL, 4 * D), kInvalid, ctx, "v");
  CHECK_FAILS(gqavk_kv_cache_write(cache, 0, 0, 0, 4, k, 4 * D - 1, v, 4 * D), kInvalid, ctx,
              "got k 255 and v 256");
  CHECK_FAILS(gqavk_kv_cache_write(cache, 0, 0, 0, 4, k, 4 * D, v, 3 * D), kInvalid, ctx,
              "got k 256 and v 192");
  CHECK_FAILS(gqavk_kv_cache_write(cache, 0, 0, 0, 0, k, 0, v, 0), kInvalid, ctx, "n_tokens is 0");
  CHECK_FAILS(gqavk_kv_cache_write(cache, 0, 2, 0, 4, k, 4 * D, v, 4 * D), kInvalid, ctx,
              "sequence 2");
  CHECK_FAILS(gqavk_kv_cache_write(cache, 2, 0, 0, 4, k, 4 * D, v, 4 * D), kInvalid, ctx,
              "layer 2");
  CHECK_FAILS(gqavk_kv_cache_write(cache, 0, 0, 14, 4, k, 4 * D, v, 4 * D), kInvalid, ctx,
              "tokens [14, 18)");
  CHECK_FAILS(gqavk_kv_cache_write(cache, 0, 0, 2, 4, k, 4 * D, v, 4 * D), kInvalid, ctx,
              "would leave tokens");
  CHECK_FAILS(gqavk_kv_cache_write_f16(cache, 0, 0, 0, 4, h, 4 * D, h, 4 * D), kInvalid, ctx,
              "write_f16 needs an f16 cache");
  CHECK_FAILS(gqavk_kv_cache_write_f16(NULL, 0, 0, 0, 4, h, 4 * D, h, 4 * D), kInvalid, NULL,
              "cache");
  CHECK_FAILS(gqavk_kv_cache_write_f16(cache, 0, 0, 0, 4, NULL, 4 * D, h, 4 * D), kInvalid, ctx,
              "k");

  /* lengths: nothing was written by the refusals */
  CHECK_FAILS(gqavk_kv_cache_length(NULL, 0, 0, &tokens), kInvalid, NULL, "cache");
  CHECK_FAILS(gqavk_kv_cache_length(cache, 0, 0, NULL), kInvalid, ctx, "tokens");
  CHECK_FAILS(gqavk_kv_cache_length(cache, 2, 0, &tokens), kInvalid, ctx, "sequence 2");
  CHECK_FAILS(gqavk_kv_cache_length(cache, 0, 2, &tokens), kInvalid, ctx, "layer 2");
  CHECK(tokens == 77);
  CHECK_OK(gqavk_kv_cache_length(cache, 0, 0, &tokens));
  CHECK(tokens == 0);
  CHECK_FAILS(gqavk_kv_cache_released_tokens(NULL, 0, 0, &tokens), kInvalid, NULL, "cache");
  CHECK_FAILS(gqavk_kv_cache_released_tokens(cache, 0, 0, NULL), kInvalid, ctx, "tokens");
  CHECK_FAILS(gqavk_kv_cache_released_tokens(cache, 0, 5, &tokens), kInvalid, ctx, "layer 5");
  CHECK_FAILS(gqavk_kv_cache_released_tokens(cache, 4, 0, &tokens), kInvalid, ctx, "sequence 4");

  CHECK_FAILS(gqavk_kv_cache_last_append_gpu_ns(NULL, &ns), kInvalid, NULL, "cache");
  CHECK_FAILS(gqavk_kv_cache_last_append_gpu_ns(cache, NULL), kInvalid, ctx, "ns");
  CHECK_OK(gqavk_kv_cache_last_append_gpu_ns(cache, &ns));
  CHECK(ns == 0.0); /* no append yet */
}

/* The K/V of both sequences in both layers (the reference layout [seq][layer][G, CAP, D]). */
static float kv_k[SLOTS][LAYERS][G * CAP * D];
static float kv_v[SLOTS][LAYERS][G * CAP * D];

static void fill_cache(gqavk_kv_cache* cache, const uint32_t* lengths) {
  uint32_t s, l;
  for (s = 0; s < SLOTS; ++s) {
    for (l = 0; l < LAYERS; ++l) {
      c_random_values(kv_k[s][l], G * CAP * D, 100 + 10 * s + l);
      c_random_values(kv_v[s][l], G * CAP * D, 200 + 10 * s + l);
      /* G is 1: [G, n, D] of the first n tokens is the array's start. */
      CHECK_OK(gqavk_kv_cache_write(cache, l, s, 0, lengths[s], kv_k[s][l],
                                    (uint64_t)lengths[s] * D, kv_v[s][l],
                                    (uint64_t)lengths[s] * D));
    }
  }
}

static void test_append(gqavk_context* ctx, gqavk_kv_cache* cache) {
  gqavk_buffer* kb = NULL;
  gqavk_buffer* vb = NULL;
  gqavk_kv_token tokens[2];
  uint32_t len = 0;

  CHECK_OK(gqavk_buffer_create(ctx, 2 * D * sizeof(float), &kb));
  CHECK_OK(gqavk_buffer_create(ctx, 2 * D * sizeof(float), &vb));
  tokens[0].seq = 0;
  tokens[0].position = 0;
  tokens[1].seq = 0;
  tokens[1].position = 1;
  CHECK_FAILS(gqavk_kv_cache_append(NULL, 0, tokens, 2, kb, vb, GQAVK_DTYPE_F32, 0, 0), kInvalid,
              NULL, "cache");
  CHECK_FAILS(gqavk_kv_cache_append(cache, 0, NULL, 2, kb, vb, GQAVK_DTYPE_F32, 0, 0), kInvalid,
              ctx, "tokens");
  CHECK_FAILS(gqavk_kv_cache_append(cache, 0, tokens, 0, kb, vb, GQAVK_DTYPE_F32, 0, 0), kInvalid,
              ctx, "tokens is empty");
  CHECK_FAILS(gqavk_kv_cache_append(cache, 0, tokens, 2, NULL, vb, GQAVK_DTYPE_F32, 0, 0), kInvalid,
              ctx, "k");
  CHECK_FAILS(gqavk_kv_cache_append(cache, 0, tokens, 2, kb, NULL, GQAVK_DTYPE_F32, 0, 0), kInvalid,
              ctx, "v");
  CHECK_FAILS(gqavk_kv_cache_append(cache, 0, tokens, 2, kb, vb, GQAVK_DTYPE_Q8, 0, 0), kInvalid,
              ctx, "append source type q8");
  CHECK_FAILS(gqavk_kv_cache_append(cache, 0, tokens, 2, kb, vb, (gqavk_dtype)9, 0, 0), kInvalid,
              ctx, "9");
  CHECK_FAILS(gqavk_kv_cache_append(cache, 3, tokens, 2, kb, vb, GQAVK_DTYPE_F32, 0, 0), kInvalid,
              ctx, "layer 3");
  CHECK_FAILS(gqavk_kv_cache_append(cache, 0, tokens, 2, kb, vb, GQAVK_DTYPE_F32, D, 0), kInvalid,
              ctx, "k needs");
  tokens[1].seq = 2;
  CHECK_FAILS(gqavk_kv_cache_append(cache, 0, tokens, 2, kb, vb, GQAVK_DTYPE_F32, 0, 0), kInvalid,
              ctx, "sequence 2");
  CHECK_OK(gqavk_kv_cache_length(cache, 0, 0, &len));
  CHECK(len == 0); /* nothing appended by the refusals */
  CHECK_OK(gqavk_buffer_destroy(kb));
  CHECK_OK(gqavk_buffer_destroy(vb));
}

/* ---- Decode and prefill ---------------------------------------------------------------------- */

typedef struct {
  gqavk_decode_plan_create_info info;
  uint32_t tail;
} bigger_decode_info;

static void test_decode(gqavk_context* ctx, gqavk_kv_cache* cache, const uint32_t* lengths) {
  gqavk_decode_plan_create_info info;
  gqavk_decode_plan* const sentinel = (gqavk_decode_plan*)&info;
  gqavk_decode_plan* plan = sentinel;
  float q[SLOTS * H * D], out[SLOTS * H * D];
  double want[SLOTS * H * D];
  const float sinks[3] = {0.0f, 0.0f, 0.0f};
  uint32_t bad_lengths[SLOTS], splits = 0, s;
  double ns = -1.0;
  bigger_decode_info bigger;

  memset(&info, 0, sizeof(info));
  info.struct_size = sizeof(info);
  info.q_heads = H;
  CHECK_FAILS(gqavk_decode_plan_create(NULL, cache, &info, &plan), kInvalid, NULL, "context");
  CHECK_FAILS(gqavk_decode_plan_create(ctx, NULL, &info, &plan), kInvalid, ctx, "cache");
  CHECK_FAILS(gqavk_decode_plan_create(ctx, cache, NULL, &plan), kInvalid, ctx, "info");
  CHECK_FAILS(gqavk_decode_plan_create(ctx, cache, &info, NULL), kInvalid, ctx, "plan");
  info.struct_size = 0;
  CHECK_FAILS(gqavk_decode_plan_create(ctx, cache, &info, &plan), kInvalid, ctx, "struct_size");
  info.struct_size = sizeof(info);
  info.q_heads = 0;
  CHECK_FAILS(gqavk_decode_plan_create(ctx, cache, &info, &plan), kInvalid, ctx, "q_heads 0");
  info.q_heads = H;
  info.layer = 2;
  CHECK_FAILS(gqavk_decode_plan_create(ctx, cache, &info, &plan), kInvalid, ctx, "layer 2");
  info.layer = 0;
  info.max_splits = 2000;
  CHECK_FAILS(gqavk_decode_plan_create(ctx, cache, &info, &plan), kInvalid, ctx, "max_splits 2000");
  info.max_splits = 0;
  info.scale = -1.0f;
  CHECK_FAILS(gqavk_decode_plan_create(ctx, cache, &info, &plan), kInvalid, ctx, "scale");
  info.scale = 0.0f;
  info.sink_count = H; /* sinks announced, none given */
  CHECK_FAILS(gqavk_decode_plan_create(ctx, cache, &info, &plan), kInvalid, ctx, "sinks");
  info.sinks = sinks;
  info.sink_count = 3;
  CHECK_FAILS(gqavk_decode_plan_create(ctx, cache, &info, &plan), kInvalid, ctx,
              "sinks has 3 values");
  info.sinks = NULL;
  info.sink_count = 0;
  memset(&bigger, 0, sizeof(bigger));
  bigger.info = info;
  bigger.info.struct_size = sizeof(bigger);
  bigger.tail = 5;
  CHECK_FAILS(gqavk_decode_plan_create(ctx, cache, &bigger.info, &plan), kNewer, ctx,
              "struct_size");
  CHECK(plan == sentinel);
  bigger.tail = 0;
  CHECK_OK(gqavk_decode_plan_create(ctx, cache, &bigger.info, &plan));

  c_random_values(q, SLOTS * H * D, 7);
  for (s = 0; s < SLOTS; ++s) {
    c_reference_attention(q + s * H * D, kv_k[s][0], kv_v[s][0], H, G, 1, lengths[s], D, CAP, 0,
                          want + s * H * D);
  }
  CHECK_OK(gqavk_decode_plan_run(plan, q, SLOTS * H * D, lengths, SLOTS, out, SLOTS * H * D));
  CHECK(c_max_abs_diff(out, want, SLOTS * H * D) <= 1e-4);

  CHECK_FAILS(gqavk_decode_plan_run(NULL, q, SLOTS * H * D, lengths, SLOTS, out, SLOTS * H * D),
              kInvalid, NULL, "plan");
  CHECK_FAILS(gqavk_decode_plan_run(plan, NULL, SLOTS * H * D, lengths, SLOTS, out, SLOTS * H * D),
              kInvalid, ctx, "q");
  CHECK_FAILS(gqavk_decode_plan_run(plan, q, SLOTS * H * D, NULL, SLOTS, out, SLOTS * H * D),
              kInvalid, ctx, "lengths");
  CHECK_FAILS(gqavk_decode_plan_run(plan, q, SLOTS * H * D, lengths, SLOTS, NULL, SLOTS * H * D),
              kInvalid, ctx, "out");
  CHECK_FAILS(gqavk_decode_plan_run(plan, q, SLOTS * H * D - 1, lengths, SLOTS, out, SLOTS * H * D),
              kInvalid, ctx, "q has 255 values");
  CHECK_FAILS(gqavk_decode_plan_run(plan, q, SLOTS * H * D, lengths, 1, out, SLOTS * H * D),
              kInvalid, ctx, "lengths has 1 entries");
  CHECK_FAILS(gqavk_decode_plan_run(plan, q, SLOTS * H * D, lengths, SLOTS, out, 100), kInvalid,
              ctx, "out has room for 100 values");
  bad_lengths[0] = lengths[0];
  bad_lengths[1] = lengths[1] + 1;
  CHECK_FAILS(gqavk_decode_plan_run(plan, q, SLOTS * H * D, bad_lengths, SLOTS, out, SLOTS * H * D),
              kInvalid, ctx, "exceeds the");
  bad_lengths[1] = 0;
  CHECK_FAILS(gqavk_decode_plan_run(plan, q, SLOTS * H * D, bad_lengths, SLOTS, out, SLOTS * H * D),
              kInvalid, ctx, "lengths[1] = 0");

  CHECK_FAILS(gqavk_decode_plan_splits(NULL, &splits), kInvalid, NULL, "plan");
  CHECK_FAILS(gqavk_decode_plan_splits(plan, NULL), kInvalid, ctx, "splits");
  CHECK_OK(gqavk_decode_plan_splits(plan, &splits));
  CHECK(splits >= 1);
  CHECK_FAILS(gqavk_decode_plan_last_gpu_ns(NULL, &ns), kInvalid, NULL, "plan");
  CHECK_FAILS(gqavk_decode_plan_last_gpu_ns(plan, NULL), kInvalid, ctx, "ns");
  CHECK_OK(gqavk_decode_plan_last_gpu_ns(plan, &ns));
  CHECK(ns >= 0.0);

  /* The cache is in use by the plan. */
  CHECK_FAILS(gqavk_kv_cache_destroy(cache), GQAVK_ERROR_IN_USE, ctx, "plan");
  CHECK_OK(gqavk_decode_plan_destroy(NULL));
  CHECK_OK(gqavk_decode_plan_destroy(plan));
}

static void test_prefill(gqavk_context* ctx, gqavk_kv_cache* cache, const uint32_t* lengths) {
  gqavk_prefill_plan_create_info info;
  gqavk_prefill_plan* const sentinel = (gqavk_prefill_plan*)&info;
  gqavk_prefill_plan* plan = sentinel;
  gqavk_prefill_seq seqs[2];
  enum { LQ0 = 3, LQ1 = 2, QN = H * (LQ0 + LQ1) * D };
  float q[QN], out[QN];
  double want[QN];
  double ns = -1.0;

  memset(&info, 0, sizeof(info));
  info.struct_size = sizeof(info);
  info.q_heads = H;
  CHECK_FAILS(gqavk_prefill_plan_create(NULL, cache, &info, &plan), kInvalid, NULL, "context");
  CHECK_FAILS(gqavk_prefill_plan_create(ctx, NULL, &info, &plan), kInvalid, ctx, "cache");
  CHECK_FAILS(gqavk_prefill_plan_create(ctx, cache, NULL, &plan), kInvalid, ctx, "info");
  CHECK_FAILS(gqavk_prefill_plan_create(ctx, cache, &info, NULL), kInvalid, ctx, "plan");
  info.struct_size = 2;
  CHECK_FAILS(gqavk_prefill_plan_create(ctx, cache, &info, &plan), kInvalid, ctx, "struct_size");
  info.struct_size = sizeof(info);
  info.q_heads = 0;
  CHECK_FAILS(gqavk_prefill_plan_create(ctx, cache, &info, &plan), kInvalid, ctx, "q_heads 0");
  info.q_heads = H;
  info.layer = 7;
  CHECK_FAILS(gqavk_prefill_plan_create(ctx, cache, &info, &plan), kInvalid, ctx, "layer 7");
  info.layer = 1;
  info.softcap = -2.0f;
  CHECK_FAILS(gqavk_prefill_plan_create(ctx, cache, &info, &plan), kInvalid, ctx, "softcap");
  info.softcap = 0.0f;
  info.cross_attention = 2; /* a flag: 0 or 1 */
  CHECK_FAILS(gqavk_prefill_plan_create(ctx, cache, &info, &plan), kInvalid, ctx,
              "cross_attention is 2");
  info.cross_attention = 1;
  info.window = 4; /* a window needs causal attention */
  CHECK_FAILS(gqavk_prefill_plan_create(ctx, cache, &info, &plan), kInvalid, ctx, "window");
  info.cross_attention = 0;
  info.window = 0;
  info.sink_count = 1;
  CHECK_FAILS(gqavk_prefill_plan_create(ctx, cache, &info, &plan), kInvalid, ctx, "sinks");
  info.sink_count = 0;
  CHECK(plan == sentinel);
  CHECK_OK(gqavk_prefill_plan_create(ctx, cache, &info, &plan)); /* layer 1, causal */

  /* A ragged batch: 3 queries over all of sequence 0, 2 over sequence 1. */
  seqs[0].seq = 0;
  seqs[0].queries = LQ0;
  seqs[0].kv_length = lengths[0];
  seqs[1].seq = 1;
  seqs[1].queries = LQ1;
  seqs[1].kv_length = lengths[1];
  c_random_values(q, QN, 9);
  c_reference_attention(q, kv_k[0][1], kv_v[0][1], H, G, LQ0, lengths[0], D, CAP, 1, want);
  c_reference_attention(q + H * LQ0 * D, kv_k[1][1], kv_v[1][1], H, G, LQ1, lengths[1], D, CAP, 1,
                        want + H * LQ0 * D);
  CHECK_OK(gqavk_prefill_plan_run(plan, q, QN, seqs, 2, out, QN));
  CHECK(c_max_abs_diff(out, want, QN) <= 1e-4);

  CHECK_FAILS(gqavk_prefill_plan_run(NULL, q, QN, seqs, 2, out, QN), kInvalid, NULL, "plan");
  CHECK_FAILS(gqavk_prefill_plan_run(plan, NULL, QN, seqs, 2, out, QN), kInvalid, ctx, "q");
  CHECK_FAILS(gqavk_prefill_plan_run(plan, q, QN, NULL, 2, out, QN), kInvalid, ctx, "seqs");
  CHECK_FAILS(gqavk_prefill_plan_run(plan, q, QN, seqs, 2, NULL, QN), kInvalid, ctx, "out");
  CHECK_FAILS(gqavk_prefill_plan_run(plan, q, QN, seqs, 0, out, QN), kInvalid, ctx, "seqs");
  CHECK_FAILS(gqavk_prefill_plan_run(plan, q, QN - 1, seqs, 2, out, QN), kInvalid, ctx, "q has");
  CHECK_FAILS(gqavk_prefill_plan_run(plan, q, QN, seqs, 1, out, QN), kInvalid, ctx, "q has");
  CHECK_FAILS(gqavk_prefill_plan_run(plan, q, QN, seqs, 2, out, QN - D), kInvalid, ctx, "out");
  seqs[1].kv_length = lengths[1] + 1;
  CHECK_FAILS(gqavk_prefill_plan_run(plan, q, QN, seqs, 2, out, QN), kInvalid, ctx, "exceeds the");
  seqs[1].kv_length = 1; /* Lq 2 > Lk 1: causal needs Lq <= Lk */
  CHECK_FAILS(gqavk_prefill_plan_run(plan, q, QN, seqs, 2, out, QN), kInvalid, ctx, "queries");
  seqs[1].kv_length = lengths[1];
  seqs[1].seq = 5;
  CHECK_FAILS(gqavk_prefill_plan_run(plan, q, QN, seqs, 2, out, QN), kInvalid, ctx, "5");

  CHECK_FAILS(gqavk_prefill_plan_last_gpu_ns(NULL, &ns), kInvalid, NULL, "plan");
  CHECK_FAILS(gqavk_prefill_plan_last_gpu_ns(plan, NULL), kInvalid, ctx, "ns");
  CHECK_OK(gqavk_prefill_plan_last_gpu_ns(plan, &ns));
  CHECK(ns >= 0.0);
  CHECK_OK(gqavk_prefill_plan_destroy(NULL));
  CHECK_OK(gqavk_prefill_plan_destroy(plan));
}

/* ---- Models ---------------------------------------------------------------------------------- */

static gqavk_model* test_model(void) {
  gqavk_model* const sentinel = (gqavk_model*)&c_checks;
  gqavk_model* model = sentinel;
  gqavk_model* other = NULL;
  gqavk_layer_desc layer = layer_desc();
  gqavk_kv_cache_create_info desc;
  bigger_layer_desc bigger;
  const char* name = NULL;
  uint32_t count = 9;
  static const char json[] =
      "{\"num_attention_heads\": 8, \"num_key_value_heads\": 2, \"head_dim\": 64,"
      " \"num_hidden_layers\": 3, \"torch_dtype\": \"float16\"}";
  float sinks[2] = {0.5f, -0.5f};

  CHECK_FAILS(gqavk_model_create("m", NULL), kInvalid, NULL, "model");
  CHECK_OK(gqavk_model_create(NULL, &other)); /* name may be NULL */
  CHECK_OK(gqavk_model_name(other, &name));
  CHECK(name != NULL && name[0] == '\0');
  CHECK_FAILS(gqavk_model_validate(other), kInvalid, NULL, "no layers");
  CHECK_FAILS(gqavk_model_validate(NULL), kInvalid, NULL, "model");
  CHECK_OK(gqavk_model_destroy(other));
  CHECK_OK(gqavk_model_destroy(NULL));

  /* from config.json text and files */
  CHECK_FAILS(gqavk_model_from_hf_config(NULL, 10, "x", &model), kInvalid, NULL, "json");
  CHECK_FAILS(gqavk_model_from_hf_config(json, sizeof(json) - 1, "x", NULL), kInvalid, NULL,
              "model");
  CHECK_FAILS(gqavk_model_from_hf_config("{\"num_attention_heads\": ", 24, NULL, &model), kInvalid,
              NULL, "JSON");
  CHECK_FAILS(gqavk_model_from_hf_config(json, 0, NULL, &model), kInvalid, NULL, "JSON");
  CHECK(model == sentinel);
  CHECK_OK(gqavk_model_from_hf_config(json, sizeof(json) - 1, "Tiny", &other));
  CHECK_OK(gqavk_model_layer_count(other, &count));
  CHECK(count == 3);
  CHECK_OK(gqavk_model_name(other, &name));
  CHECK(name != NULL && strcmp(name, "Tiny") == 0);
  memset(&layer, 0, sizeof(layer));
  layer.struct_size = sizeof(layer);
  CHECK_OK(gqavk_model_layer(other, 2, &layer));
  CHECK(layer.q_heads == 8 && layer.kv_heads == 2 && layer.head_dim == 64);
  CHECK(layer.kv_dtype == GQAVK_DTYPE_F16 && layer.sinks == NULL && layer.sink_count == 0);
  CHECK_OK(gqavk_model_destroy(other));
  CHECK_FAILS(gqavk_model_load_hf_config(NULL, &model), kInvalid, NULL, "path");
  CHECK_FAILS(gqavk_model_load_hf_config("/no/such/config.json", &model), kInvalid, NULL,
              "/no/such/config.json");
  CHECK_FAILS(gqavk_model_load_hf_config("/no/such/config.json", NULL), kInvalid, NULL, "model");
  CHECK(model == sentinel);

  /* layers */
  CHECK_OK(gqavk_model_create("tiny", &model));
  layer = layer_desc();
  CHECK_FAILS(gqavk_model_add_layer(NULL, &layer), kInvalid, NULL, "model");
  CHECK_FAILS(gqavk_model_add_layer(model, NULL), kInvalid, NULL, "layer");
  layer.struct_size = 0;
  CHECK_FAILS(gqavk_model_add_layer(model, &layer), kInvalid, NULL, "struct_size");
  layer = layer_desc();
  layer.kv_dtype = (gqavk_dtype)6;
  CHECK_FAILS(gqavk_model_add_layer(model, &layer), kInvalid, NULL, "6");
  layer.kv_dtype = (gqavk_dtype)0xFFFFFFFFu;
  CHECK_FAILS(gqavk_model_add_layer(model, &layer), kInvalid, NULL, "4294967295");
  layer = layer_desc();
  layer.sink_count = H; /* announced, not given */
  CHECK_FAILS(gqavk_model_add_layer(model, &layer), kInvalid, NULL, "sinks");
  memset(&bigger, 0, sizeof(bigger));
  bigger.layer = layer_desc();
  bigger.layer.struct_size = sizeof(bigger);
  bigger.tail = 1;
  CHECK_FAILS(gqavk_model_add_layer(model, &bigger.layer), kNewer, NULL, "struct_size");
  CHECK_OK(gqavk_model_layer_count(model, &count));
  CHECK(count == 0); /* nothing added by the refusals */
  bigger.tail = 0;
  CHECK_OK(gqavk_model_add_layer(model, &bigger.layer));
  layer = layer_desc();
  layer.sinks = sinks;
  layer.sink_count = 2;
  CHECK_OK(gqavk_model_add_layer(model, &layer));
  sinks[0] = 9.0f; /* the model holds a copy */

  CHECK_FAILS(gqavk_model_layer_count(NULL, &count), kInvalid, NULL, "model");
  CHECK_FAILS(gqavk_model_layer_count(model, NULL), kInvalid, NULL, "count");
  CHECK_OK(gqavk_model_layer_count(model, &count));
  CHECK(count == 2);
  memset(&layer, 0, sizeof(layer));
  layer.struct_size = sizeof(layer);
  CHECK_FAILS(gqavk_model_layer(NULL, 0, &layer), kInvalid, NULL, "model");
  CHECK_FAILS(gqavk_model_layer(model, 0, NULL), kInvalid, NULL, "layer");
  CHECK_FAILS(gqavk_model_layer(model, 2, &layer), kInvalid, NULL, "2");
  layer.struct_size = 0;
  CHECK_FAILS(gqavk_model_layer(model, 0, &layer), kInvalid, NULL, "struct_size");
  layer.struct_size = sizeof(layer);
  CHECK_OK(gqavk_model_layer(model, 1, &layer));
  CHECK(layer.q_heads == H && layer.kv_heads == G && layer.head_dim == D);
  CHECK(layer.kv_dtype == GQAVK_DTYPE_F32 && layer.sink_count == 2);
  CHECK(layer.sinks != NULL && layer.sinks != sinks && layer.sinks[0] == 0.5f &&
        layer.sinks[1] == -0.5f);
  CHECK_FAILS(gqavk_model_name(NULL, &name), kInvalid, NULL, "model");
  CHECK_FAILS(gqavk_model_name(model, NULL), kInvalid, NULL, "name");
  CHECK_OK(gqavk_model_name(model, &name));
  CHECK(strcmp(name, "tiny") == 0);
  CHECK_OK(gqavk_model_validate(model));

  memset(&desc, 0, sizeof(desc));
  desc.struct_size = sizeof(desc);
  CHECK_FAILS(gqavk_model_cache_desc(NULL, SLOTS, CAP, BLOCK, &desc), kInvalid, NULL, "model");
  CHECK_FAILS(gqavk_model_cache_desc(model, SLOTS, CAP, BLOCK, NULL), kInvalid, NULL, "info");
  CHECK_OK(gqavk_model_cache_desc(model, SLOTS, CAP, 3, &desc)); /* the cache checks it */
  CHECK(desc.block_tokens == 3);
  {
    gqavk_kv_memory memory;
    memset(&memory, 0, sizeof(memory));
    memory.struct_size = sizeof(memory);
    CHECK_FAILS(gqavk_kv_cache_plan_memory(&desc, &memory), kInvalid, NULL, "block_tokens 3");
  }
  desc.struct_size = 0;
  CHECK_FAILS(gqavk_model_cache_desc(model, SLOTS, CAP, BLOCK, &desc), kInvalid, NULL,
              "struct_size");
  desc.struct_size = sizeof(desc);
  CHECK_OK(gqavk_model_cache_desc(model, SLOTS, CAP, 0, &desc));
  CHECK(desc.block_tokens == 256);
  CHECK_OK(gqavk_model_cache_desc(model, SLOTS, CAP, BLOCK, &desc));
  CHECK(desc.batch == SLOTS && desc.kv_heads == G && desc.head_dim == D);
  CHECK(desc.capacity_tokens == CAP && desc.block_tokens == BLOCK && desc.layers == 2);
  CHECK(desc.dtype == GQAVK_DTYPE_F32 && desc.pool == NULL);

  /* Layers that cannot share one cache. */
  CHECK_OK(gqavk_model_create("mixed", &other));
  layer = layer_desc();
  CHECK_OK(gqavk_model_add_layer(other, &layer));
  layer.head_dim = 128;
  CHECK_OK(gqavk_model_add_layer(other, &layer));
  CHECK_FAILS(gqavk_model_cache_desc(other, SLOTS, CAP, BLOCK, &desc), kInvalid, NULL, "head_dim");
  CHECK_MSG(NULL, "layers[1]");
  CHECK_OK(gqavk_model_destroy(other));
  return model; /* layer 1 has sinks */
}

/* ---- The decode step ------------------------------------------------------------------------- */

static void test_step(gqavk_context* ctx, gqavk_kv_cache* cache, gqavk_model* model) {
  gqavk_decode_step_create_info info;
  gqavk_decode_step* const sentinel = (gqavk_decode_step*)&info;
  gqavk_decode_step* step = sentinel;
  gqavk_model* wrong = NULL;
  gqavk_layer_desc layer = layer_desc();
  gqavk_step_device_io io;
  gqavk_step_sync sync;
  gqavk_buffer* io_buffer = NULL;
  enum { QV = LAYERS * H * D, KV = LAYERS * G * D };
  float q[2 * QV], k[2 * KV], v[2 * KV], out[2 * QV]; /* room for 2 rows */
  const float sinks[H] = {0.0f, 1.0f};
  const uint32_t seq0 = 0, seq1 = 1, seqs2[2] = {0, 0};
  uint64_t ticket = 0, values = 0, recordings = 9;
  uint32_t frames = 0, max_batch = 0, len = 0;
  double ns = -1.0;

  memset(&info, 0, sizeof(info));
  info.struct_size = sizeof(info);
  info.max_batch = SLOTS;
  CHECK_FAILS(gqavk_decode_step_create(NULL, cache, model, &info, &step), kInvalid, NULL,
              "context");
  CHECK_FAILS(gqavk_decode_step_create(ctx, NULL, model, &info, &step), kInvalid, ctx, "cache");
  CHECK_FAILS(gqavk_decode_step_create(ctx, cache, NULL, &info, &step), kInvalid, ctx, "model");
  CHECK_FAILS(gqavk_decode_step_create(ctx, cache, model, &info, NULL), kInvalid, ctx, "step");
  info.struct_size = 0;
  CHECK_FAILS(gqavk_decode_step_create(ctx, cache, model, &info, &step), kInvalid, ctx,
              "struct_size");
  info.struct_size = sizeof(info);
  info.max_batch = 3;
  CHECK_FAILS(gqavk_decode_step_create(ctx, cache, model, &info, &step), kInvalid, ctx,
              "max_batch 3");
  info.max_batch = SLOTS;
  info.frames = 17;
  CHECK_FAILS(gqavk_decode_step_create(ctx, cache, model, &info, &step), kInvalid, ctx,
              "frames 17");
  info.frames = 0;
  CHECK_OK(gqavk_model_create("wrong", &wrong));
  layer.q_heads = 4;
  layer.kv_heads = 2;
  CHECK_OK(gqavk_model_add_layer(wrong, &layer));
  CHECK_OK(gqavk_model_add_layer(wrong, &layer));
  CHECK_FAILS(gqavk_decode_step_create(ctx, cache, wrong, &info, &step), kInvalid, ctx, "kv_heads");
  CHECK_OK(gqavk_model_destroy(wrong));
  CHECK(step == sentinel);

  CHECK_OK(gqavk_decode_step_create(ctx, cache, model, NULL, &step)); /* defaults */
  CHECK_OK(gqavk_decode_step_max_batch(step, &max_batch));
  CHECK(max_batch == 1);
  CHECK_OK(gqavk_decode_step_destroy(step));
  CHECK_OK(gqavk_decode_step_create(ctx, cache, model, &info, &step));

  CHECK_FAILS(gqavk_decode_step_frames(NULL, &frames), kInvalid, NULL, "step");
  CHECK_FAILS(gqavk_decode_step_frames(step, NULL), kInvalid, ctx, "frames");
  CHECK_OK(gqavk_decode_step_frames(step, &frames));
  CHECK(frames == 2);
  CHECK_FAILS(gqavk_decode_step_max_batch(NULL, &max_batch), kInvalid, NULL, "step");
  CHECK_FAILS(gqavk_decode_step_max_batch(step, NULL), kInvalid, ctx, "max_batch");
  CHECK_OK(gqavk_decode_step_max_batch(step, &max_batch));
  CHECK(max_batch == SLOTS);
  CHECK_FAILS(gqavk_decode_step_q_values(NULL, 1, &values), kInvalid, NULL, "step");
  CHECK_FAILS(gqavk_decode_step_q_values(step, 1, NULL), kInvalid, ctx, "values");
  CHECK_FAILS(gqavk_decode_step_k_values(NULL, 1, &values), kInvalid, NULL, "step");
  CHECK_FAILS(gqavk_decode_step_k_values(step, 1, NULL), kInvalid, ctx, "values");
  CHECK_FAILS(gqavk_decode_step_v_values(NULL, 1, &values), kInvalid, NULL, "step");
  CHECK_FAILS(gqavk_decode_step_v_values(step, 1, NULL), kInvalid, ctx, "values");
  CHECK_FAILS(gqavk_decode_step_out_values(NULL, 1, &values), kInvalid, NULL, "step");
  CHECK_FAILS(gqavk_decode_step_out_values(step, 1, NULL), kInvalid, ctx, "values");
  CHECK_OK(gqavk_decode_step_q_values(step, 1, &values));
  CHECK(values == QV);
  CHECK_OK(gqavk_decode_step_k_values(step, 2, &values));
  CHECK(values == 2 * KV);
  CHECK_OK(gqavk_decode_step_v_values(step, 1, &values));
  CHECK(values == KV);
  CHECK_OK(gqavk_decode_step_out_values(step, 2, &values));
  CHECK(values == 2 * QV);
  CHECK_FAILS(gqavk_decode_step_recordings(NULL, &recordings), kInvalid, NULL, "step");
  CHECK_FAILS(gqavk_decode_step_recordings(step, NULL), kInvalid, ctx, "recordings");
  CHECK_OK(gqavk_decode_step_recordings(step, &recordings));
  CHECK(recordings == 0);
  CHECK_FAILS(gqavk_decode_step_last_gpu_ns(NULL, &ns), kInvalid, NULL, "step");
  CHECK_FAILS(gqavk_decode_step_last_gpu_ns(step, NULL), kInvalid, ctx, "ns");

  /* run */
  c_random_values(q, 2 * QV, 11);
  c_random_values(k, 2 * KV, 12);
  c_random_values(v, 2 * KV, 13);
  CHECK_FAILS(gqavk_decode_step_run(NULL, &seq0, 1, q, QV, k, KV, v, KV, out, QV), kInvalid, NULL,
              "step");
  CHECK_FAILS(gqavk_decode_step_run(step, NULL, 1, q, QV, k, KV, v, KV, out, QV), kInvalid, ctx,
              "seqs");
  CHECK_FAILS(gqavk_decode_step_run(step, &seq0, 0, q, 0, k, 0, v, 0, out, 0), kInvalid, ctx,
              "seqs has 0 sequences");
  CHECK_FAILS(gqavk_decode_step_run(step, seqs2, 2, q, 2 * QV, k, 2 * KV, v, 2 * KV, out, 2 * QV),
              kInvalid, ctx, "appears twice");
  CHECK_FAILS(gqavk_decode_step_run(step, &seq0, 1, NULL, QV, k, KV, v, KV, out, QV), kInvalid, ctx,
              "q");
  CHECK_FAILS(gqavk_decode_step_run(step, &seq0, 1, q, QV, NULL, KV, v, KV, out, QV), kInvalid, ctx,
              "k");
  CHECK_FAILS(gqavk_decode_step_run(step, &seq0, 1, q, QV, k, KV, NULL, KV, out, QV), kInvalid, ctx,
              "v");
  CHECK_FAILS(gqavk_decode_step_run(step, &seq0, 1, q, QV, k, KV, v, KV, NULL, QV), kInvalid, ctx,
              "out");
  CHECK_FAILS(gqavk_decode_step_run(step, &seq0, 1, q, QV - 1, k, KV, v, KV, out, QV), kInvalid,
              ctx, "q has 255 values");
  CHECK_FAILS(gqavk_decode_step_run(step, &seq0, 1, q, QV, k, KV + 1, v, KV, out, QV), kInvalid,
              ctx, "k has 129 values");
  CHECK_FAILS(gqavk_decode_step_run(step, &seq0, 1, q, QV, k, KV, v, KV, out, QV - 1), kInvalid,
              ctx, "out has room for 255 values");
  /* Sequence 1 holds 3 tokens in layer 0 and 2 in layer 1 (fill_cache): no common position. */
  CHECK_FAILS(gqavk_decode_step_run(step, &seq1, 1, q, QV, k, KV, v, KV, out, QV), kInvalid, ctx,
              "sequence 1");
  CHECK_OK(gqavk_kv_cache_length(cache, 0, 0, &len));
  CHECK_OK(gqavk_decode_step_run(step, &seq0, 1, q, QV, k, KV, v, KV, out, QV));
  {
    uint32_t after = 0;
    CHECK_OK(gqavk_kv_cache_length(cache, 0, 1, &after));
    CHECK(after == len + 1);
  }

  /* submit, wait */
  memset(&sync, 0, sizeof(sync));
  CHECK_FAILS(gqavk_decode_step_submit(NULL, &seq0, 1, q, QV, k, KV, v, KV, NULL, &ticket),
              kInvalid, NULL, "step");
  CHECK_FAILS(gqavk_decode_step_submit(step, &seq0, 1, q, QV, k, KV, v, KV, NULL, NULL), kInvalid,
              ctx, "ticket");
  CHECK_FAILS(gqavk_decode_step_submit(step, &seq0, 1, q, QV, k, KV, v, KV, &sync, &ticket),
              kInvalid, ctx, "struct_size");
  CHECK_FAILS(gqavk_decode_step_submit(step, &seq0, 1, q, 5, k, KV, v, KV, NULL, &ticket), kInvalid,
              ctx, "q has 5 values");
  CHECK(ticket == 0);
  CHECK_OK(gqavk_decode_step_submit(step, &seq0, 1, q, QV, k, KV, v, KV, NULL, &ticket));
  CHECK(ticket == 2); /* run took ticket 1 */
  CHECK_FAILS(gqavk_decode_step_wait(NULL, ticket, out, QV), kInvalid, NULL, "step");
  CHECK_FAILS(gqavk_decode_step_wait(step, 9, out, QV), kInvalid, ctx, "ticket 9");
  CHECK_FAILS(gqavk_decode_step_wait(step, ticket, NULL, QV), kInvalid, ctx, "out");
  CHECK_FAILS(gqavk_decode_step_wait(step, ticket, out, 3), kInvalid, ctx,
              "out has room for 3 values");
  CHECK_OK(gqavk_decode_step_wait(step, ticket, out, QV));

  /* prepare, record, submitted */
  CHECK_FAILS(gqavk_decode_step_prepare(NULL, &seq0, 1, q, QV, k, KV, v, KV, &ticket), kInvalid,
              NULL, "step");
  CHECK_FAILS(gqavk_decode_step_prepare(step, &seq0, 1, q, QV, k, KV, v, KV, NULL), kInvalid, ctx,
              "ticket");
  CHECK_FAILS(gqavk_decode_step_prepare(step, NULL, 1, q, QV, k, KV, v, KV, &ticket), kInvalid, ctx,
              "seqs");
  CHECK_FAILS(gqavk_decode_step_record(NULL, (VkCommandBuffer)1, 0), kInvalid, NULL, "step");
  CHECK_FAILS(gqavk_decode_step_record(step, VK_NULL_HANDLE, 0), kInvalid, ctx, "command_buffer");
  CHECK_FAILS(gqavk_decode_step_record(step, (VkCommandBuffer)&info, 2), kInvalid, ctx, "frame 2");
  CHECK_FAILS(gqavk_decode_step_submitted(NULL, 1, VK_NULL_HANDLE, 1), kInvalid, NULL, "step");
  CHECK_FAILS(gqavk_decode_step_submitted(step, 1, VK_NULL_HANDLE, 1), kInvalid, ctx, "submitted");
  CHECK_FAILS(gqavk_decode_step_submitted(step, 40, VK_NULL_HANDLE, 1), kInvalid, ctx, "40");

  /* sinks: layer 1 has them, layer 0 has none */
  CHECK_FAILS(gqavk_decode_step_set_sinks(NULL, 1, sinks, H), kInvalid, NULL, "step");
  CHECK_FAILS(gqavk_decode_step_set_sinks(step, 1, NULL, H), kInvalid, ctx, "sinks");
  CHECK_FAILS(gqavk_decode_step_set_sinks(step, 1, sinks, 0), kInvalid, ctx, "sinks");
  CHECK_FAILS(gqavk_decode_step_set_sinks(step, 1, sinks, 1), kInvalid, ctx, "sinks");
  CHECK_FAILS(gqavk_decode_step_set_sinks(step, 2, sinks, H), kInvalid, ctx, "layer 2");
  CHECK_FAILS(gqavk_decode_step_set_sinks(step, 0, sinks, H), kInvalid, ctx, "layer 0");
  CHECK_OK(gqavk_decode_step_set_sinks(step, 1, sinks, H));

  /* device I/O: q, k, v and out of 2 rows each in one buffer (2048 + 1024 + 1024 + 2048 bytes);
   * a buffer serving as it is in use until set_host_io */
  CHECK_OK(gqavk_buffer_create(ctx, 8192, &io_buffer));
  memset(&io, 0, sizeof(io));
  io.struct_size = sizeof(io);
  io.q.buffer = io.k.buffer = io.v.buffer = io.out.buffer = io_buffer;
  io.k.offset = 2048;
  io.v.offset = 3072;
  io.out.offset = 4096;
  CHECK_FAILS(gqavk_decode_step_set_device_io(NULL, &io), kInvalid, NULL, "step");
  CHECK_FAILS(gqavk_decode_step_set_device_io(step, NULL), kInvalid, ctx, "io");
  io.struct_size = 0;
  CHECK_FAILS(gqavk_decode_step_set_device_io(step, &io), kInvalid, ctx, "struct_size");
  io.struct_size = sizeof(io);
  io.v.buffer = NULL;
  CHECK_FAILS(gqavk_decode_step_set_device_io(step, &io), kInvalid, ctx, "v.buffer is NULL");
  io.v.buffer = io_buffer;
  io.out.offset = 4098;
  CHECK_FAILS(gqavk_decode_step_set_device_io(step, &io), kInvalid, ctx, "io.out.offset 4098");
  io.out.offset = 6656; /* 2048 bytes from there pass the end */
  CHECK_FAILS(gqavk_decode_step_set_device_io(step, &io), kInvalid, ctx, "io.out needs 2048");
  CHECK_OK(gqavk_buffer_destroy(io_buffer)); /* refused I/O does not hold the buffer */
  CHECK_OK(gqavk_buffer_create(ctx, 8192, &io_buffer));
  io.q.buffer = io.k.buffer = io.v.buffer = io.out.buffer = io_buffer;
  io.out.offset = 4096;
  CHECK_OK(gqavk_decode_step_set_device_io(step, &io));
  CHECK_FAILS(gqavk_buffer_destroy(io_buffer), GQAVK_ERROR_IN_USE, ctx, "buffer");
  CHECK_FAILS(gqavk_decode_step_run(step, &seq0, 1, q, QV, k, KV, v, KV, out, QV), kInvalid, ctx,
              "device I/O");
  CHECK_FAILS(gqavk_decode_step_submit(step, &seq0, 1, q, QV, k, KV, v, KV, NULL, &ticket),
              kInvalid, ctx, "q, k and v must be empty");
  CHECK_FAILS(gqavk_decode_step_set_host_io(NULL), kInvalid, NULL, "step");
  CHECK_OK(gqavk_decode_step_set_host_io(step));
  CHECK_OK(gqavk_buffer_destroy(io_buffer));

  /* Lifetimes: the cache and the context are in use by the step. */
  CHECK_FAILS(gqavk_kv_cache_destroy(cache), GQAVK_ERROR_IN_USE, ctx, "step");
  CHECK_FAILS(gqavk_context_destroy(ctx), GQAVK_ERROR_IN_USE, ctx, "step");
  CHECK_OK(gqavk_decode_step_frames(step, &frames)); /* still alive */
  CHECK_OK(gqavk_decode_step_destroy(NULL));
  CHECK_OK(gqavk_decode_step_destroy(step));
}

/* Objects of another context are refused wherever they meet this one's. */
static void test_other_context(gqavk_context* ctx, gqavk_kv_cache* cache, gqavk_model* model) {
  gqavk_context_create_info info;
  gqavk_context* other = NULL;
  gqavk_buffer* theirs = NULL;
  gqavk_buffer* ours = NULL;
  gqavk_kv_cache_create_info cinfo = cache_info();
  gqavk_kv_cache* const sentinel = (gqavk_kv_cache*)&info;
  gqavk_kv_cache* refused = sentinel;
  gqavk_decode_plan* dplan = NULL;
  gqavk_prefill_plan* pplan = NULL;
  gqavk_decode_step* step = NULL;
  gqavk_decode_plan_create_info dinfo;
  gqavk_prefill_plan_create_info pinfo;
  gqavk_step_device_io io;
  gqavk_kv_token token;
  uint32_t count = 1;

  memset(&info, 0, sizeof(info));
  info.struct_size = sizeof(info);
  info.validation = 1;
  info.on_validation_message = on_validation;
  info.user_data = &validation_messages;
  CHECK_OK(gqavk_context_create(&info, &other));
  if (other == NULL) return;
  CHECK(other != ctx);
  CHECK_OK(gqavk_buffer_create(other, 17 * 2048, &theirs));
  CHECK_OK(gqavk_buffer_create(ctx, 8192, &ours));

  cinfo.pool = theirs;
  CHECK_FAILS(gqavk_kv_cache_create(ctx, &cinfo, &refused), kInvalid, ctx,
              "info->pool belongs to another context");
  CHECK(refused == sentinel);
  token.seq = 0;
  token.position = 0;
  CHECK_FAILS(gqavk_kv_cache_append(cache, 0, &token, 1, theirs, ours, GQAVK_DTYPE_F32, 0, 0),
              kInvalid, ctx, "k belongs to another context");
  CHECK_FAILS(gqavk_kv_cache_append(cache, 0, &token, 1, ours, theirs, GQAVK_DTYPE_F32, 0, 0),
              kInvalid, ctx, "v belongs to another context");
  memset(&dinfo, 0, sizeof(dinfo));
  dinfo.struct_size = sizeof(dinfo);
  dinfo.q_heads = H;
  CHECK_FAILS(gqavk_decode_plan_create(other, cache, &dinfo, &dplan), kInvalid, other,
              "cache belongs to another context");
  memset(&pinfo, 0, sizeof(pinfo));
  pinfo.struct_size = sizeof(pinfo);
  pinfo.q_heads = H;
  CHECK_FAILS(gqavk_prefill_plan_create(other, cache, &pinfo, &pplan), kInvalid, other,
              "cache belongs to another context");
  CHECK_FAILS(gqavk_decode_step_create(other, cache, model, NULL, &step), kInvalid, other,
              "cache belongs to another context");
  CHECK(dplan == NULL && pplan == NULL && step == NULL);

  CHECK_OK(gqavk_decode_step_create(ctx, cache, model, NULL, &step));
  memset(&io, 0, sizeof(io));
  io.struct_size = sizeof(io);
  io.q.buffer = io.k.buffer = io.v.buffer = io.out.buffer = ours;
  io.k.offset = 1024;
  io.v.offset = 1536;
  io.out.offset = 2048;
  io.out.buffer = theirs;
  CHECK_FAILS(gqavk_decode_step_set_device_io(step, &io), kInvalid, ctx,
              "io->out.buffer belongs to another context");
  io.out.buffer = ours;
  CHECK_OK(gqavk_decode_step_set_device_io(step, &io));
  CHECK_OK(gqavk_buffer_destroy(theirs)); /* the refusals took no hold of it */
  CHECK_OK(gqavk_context_validation_message_count(other, &count));
  CHECK(count == 0);
  CHECK_OK(gqavk_context_destroy(other));
  CHECK_OK(gqavk_decode_step_destroy(step)); /* releases its I/O buffer */
  CHECK_OK(gqavk_buffer_destroy(ours));
}

int main(void) {
  gqavk_context_create_info info;
  gqavk_context* ctx = NULL;
  gqavk_kv_cache* cache = NULL;
  gqavk_kv_cache* pooled = NULL;
  gqavk_buffer* pool = NULL;
  gqavk_model* model = NULL;
  gqavk_kv_cache_create_info cinfo = cache_info();
  /* Sequence 0 holds 5 tokens in both layers; sequence 1 holds 3 in layer 0 and 2 in layer 1. */
  const uint32_t lengths[SLOTS] = {5, 3};
  uint32_t count = 0;

  CHECK(strcmp(gqavk_last_error(NULL), "") == 0); /* no failure yet */
  test_strings();
  test_names();
  test_row_bytes_and_halves();
  test_devices();
  test_context_errors();
  test_plan_memory();
  model = test_model();

  memset(&info, 0, sizeof(info));
  info.struct_size = sizeof(info);
  info.validation = 1;
  info.on_validation_message = on_validation;
  info.user_data = &validation_messages;
  CHECK_OK(gqavk_context_create(&info, &ctx));
  if (ctx == NULL) return c_check_summary("c_api_errors_test");
  CHECK(strcmp(gqavk_last_error(ctx), "") == 0); /* a new context: no failure on it yet */
  test_context(ctx);
  test_buffers(ctx);
  test_cache_create(ctx);

  CHECK_OK(gqavk_kv_cache_create(ctx, &cinfo, &cache));
  test_cache(ctx, cache);
  test_append(ctx, cache);
  fill_cache(cache, lengths);
  CHECK_OK(gqavk_kv_cache_truncate(cache, 1, 2)); /* layer 1 keeps 2; layer 0 keeps 2 too */
  {
    uint32_t tokens = 0;
    CHECK_OK(gqavk_kv_cache_length(cache, 1, 1, &tokens));
    CHECK(tokens == 2);
    /* Rewrite layer 0's token 2 so sequence 1 has 3 tokens in layer 0, 2 in layer 1. */
    CHECK_OK(gqavk_kv_cache_write(cache, 0, 1, 2, 1, kv_k[1][0] + 2 * D, D, kv_v[1][0] + 2 * D, D));
    CHECK_OK(gqavk_kv_cache_length(cache, 1, 0, &tokens));
    CHECK(tokens == 3);
  }
  test_decode(ctx, cache, lengths);
  {
    const uint32_t prefill_lengths[SLOTS] = {5, 2};
    test_prefill(ctx, cache, prefill_lengths);
  }
  test_step(ctx, cache, model);
  test_other_context(ctx, cache, model);
  CHECK_OK(gqavk_model_destroy(model));

  /* A cache with its pool in a buffer: the buffer is in use while the cache lives. */
  CHECK_OK(gqavk_buffer_create(ctx, 17 * 2048, &pool));
  cinfo.pool = pool;
  CHECK_OK(gqavk_kv_cache_create(ctx, &cinfo, &pooled));
  CHECK_FAILS(gqavk_buffer_destroy(pool), GQAVK_ERROR_IN_USE, ctx, "pool");

  /* Lifetimes: destroying the context first is refused and changes nothing. */
  CHECK_FAILS(gqavk_context_destroy(ctx), GQAVK_ERROR_IN_USE, ctx, "cache");
  {
    uint32_t tokens = 0;
    CHECK_OK(gqavk_kv_cache_length(cache, 0, 0, &tokens));
    CHECK(tokens == 7); /* 5 written, 2 appended by the steps */
  }
  CHECK_OK(gqavk_kv_cache_destroy(cache));
  CHECK_FAILS(gqavk_context_destroy(ctx), GQAVK_ERROR_IN_USE, ctx, "cache");
  CHECK_OK(gqavk_kv_cache_destroy(pooled));
  CHECK_FAILS(gqavk_context_destroy(ctx), GQAVK_ERROR_IN_USE, ctx, "buffer");
  CHECK_OK(gqavk_buffer_destroy(pool));

  CHECK_OK(gqavk_context_validation_message_count(ctx, &count));
  CHECK(count == 0);
  CHECK(validation_messages == 0);
  CHECK_OK(gqavk_context_destroy(ctx));
  return c_check_summary("c_api_errors_test");
}
