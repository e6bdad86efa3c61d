// libFuzzer target: the C ABI's argument checking (include/gqavk/gqavk.h), through the functions
// that need no device: gqavk_kv_cache_plan_memory on create-info bytes of any struct_size,
// models from config.json text or added layers (validate, cache_desc, layer queries), dtype
// names and row sizes, half conversions, status strings. Every call must return a status; a
// crash, a sanitizer report or GQAVK_ERROR_INTERNAL (an exception other than gqavk::Error got
// through) is a finding. Pointers handed to the library are always valid for the lengths they
// come with: the library cannot check a caller's lie about those.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "gqavk/gqavk.h"

namespace {

void check(gqavk_status status) {
  if (status == GQAVK_ERROR_INTERNAL) {
    std::fprintf(stderr, "GQAVK_ERROR_INTERNAL: %s\n", gqavk_last_error(nullptr));
    std::abort();
  }
  if (gqavk_status_string(status) == nullptr) std::abort();
}

// create-info bytes of a fuzzed struct_size (a buffer that long), windows pointing at a real
// array of layer_window_count entries.
void plan_memory(FuzzedDataProvider& in) {
  const uint32_t struct_size = in.ConsumeIntegralInRange<uint32_t>(0, 256);
  std::vector<unsigned char> bytes(
      std::max<std::size_t>(struct_size, sizeof(gqavk_kv_cache_create_info)));
  const std::vector<unsigned char> fields = in.ConsumeBytes<unsigned char>(bytes.size());
  std::copy(fields.begin(), fields.end(), bytes.begin());
  if (in.ConsumeBool()) {  // mostly only the known fields set
    std::fill(bytes.begin() + sizeof(gqavk_kv_cache_create_info), bytes.end(), 0);
  }
  gqavk_kv_cache_create_info info;
  std::memcpy(&info, bytes.data(), sizeof(info));
  info.struct_size = struct_size;
  std::vector<uint32_t> windows(in.ConsumeIntegralInRange<uint32_t>(0, 64));
  for (uint32_t& w : windows) w = in.ConsumeIntegral<uint32_t>();
  info.layer_window_count =
      in.ConsumeBool() ? static_cast<uint32_t>(windows.size()) : info.layer_window_count % 65;
  if (info.layer_window_count > windows.size()) windows.resize(info.layer_window_count);
  info.layer_windows = in.ConsumeBool() ? windows.data() : nullptr;
  info.pool = nullptr;
  std::memcpy(bytes.data(), &info, sizeof(info));

  gqavk_kv_memory memory;
  std::memset(&memory, 0, sizeof(memory));
  memory.struct_size =
      in.ConsumeBool() ? sizeof(memory) : in.ConsumeIntegralInRange<uint32_t>(0, sizeof(memory));
  check(
      gqavk_kv_cache_plan_memory(reinterpret_cast<const gqavk_kv_cache_create_info*>(bytes.data()),
                                 in.ConsumeBool() ? &memory : nullptr));
}

// A layer desc in a buffer of its fuzzed struct_size (at least sizeof), the bytes past sizeof
// zero or fuzzed.
std::vector<unsigned char> fuzzed_layer(FuzzedDataProvider& in, std::vector<float>& sinks) {
  gqavk_layer_desc layer;
  std::memset(&layer, 0, sizeof(layer));
  layer.struct_size = in.ConsumeBool() ? sizeof(layer) : in.ConsumeIntegral<uint32_t>() % 128;
  layer.q_heads = in.ConsumeIntegral<uint32_t>();
  layer.kv_heads = in.ConsumeIntegral<uint32_t>();
  layer.head_dim = in.ConsumeIntegral<uint32_t>();
  layer.v_head_dim = in.ConsumeIntegral<uint32_t>();
  layer.window = in.ConsumeIntegral<uint32_t>();
  layer.softcap = in.ConsumeFloatingPoint<float>();
  layer.scale = in.ConsumeFloatingPoint<float>();
  sinks.resize(in.ConsumeIntegralInRange<uint32_t>(0, 64));
  for (float& s : sinks) s = in.ConsumeFloatingPoint<float>();
  layer.sinks = in.ConsumeBool() ? sinks.data() : nullptr;
  layer.sink_count =
      layer.sinks ? static_cast<uint32_t>(sinks.size()) : in.ConsumeIntegral<uint32_t>() % 4;
  // Any 32 bits, as a C caller may store (a C enum is an unsigned int here).
  const uint32_t kv_dtype =
      in.ConsumeBool() ? in.ConsumeIntegralInRange<uint32_t>(0, 7) : in.ConsumeIntegral<uint32_t>();
  std::memcpy(&layer.kv_dtype, &kv_dtype, sizeof(kv_dtype));
  std::vector<unsigned char> bytes(std::max<std::size_t>(layer.struct_size, sizeof(layer)));
  std::memcpy(bytes.data(), &layer, sizeof(layer));
  if (in.ConsumeBool()) {
    for (std::size_t i = sizeof(layer); i < bytes.size(); ++i)
      bytes[i] = in.ConsumeIntegral<unsigned char>();
  }
  return bytes;
}

// A model from config.json text or from layers, then every query on it.
void model(FuzzedDataProvider& in) {
  gqavk_model* m = nullptr;
  if (in.ConsumeBool()) {
    const std::string name = in.ConsumeRandomLengthString(32);
    const std::string json = in.ConsumeRandomLengthString(4096);
    check(gqavk_model_from_hf_config(json.data(), json.size(),
                                     in.ConsumeBool() ? name.c_str() : nullptr, &m));
  } else {
    check(gqavk_model_create(in.ConsumeBool() ? "fuzz" : nullptr, &m));
  }
  if (m == nullptr) return;
  const int layers = in.ConsumeIntegralInRange<int>(0, 8);
  for (int l = 0; l < layers; ++l) {
    std::vector<float> sinks;
    const std::vector<unsigned char> layer = fuzzed_layer(in, sinks);
    check(gqavk_model_add_layer(m, reinterpret_cast<const gqavk_layer_desc*>(layer.data())));
  }
  check(gqavk_model_validate(m));
  uint32_t count = 0;
  check(gqavk_model_layer_count(m, &count));
  gqavk_layer_desc out;
  std::memset(&out, 0, sizeof(out));
  out.struct_size =
      in.ConsumeBool() ? sizeof(out) : in.ConsumeIntegralInRange<uint32_t>(0, sizeof(out));
  check(gqavk_model_layer(m, in.ConsumeIntegralInRange<uint32_t>(0, count + 1), &out));
  if (out.sinks != nullptr && out.sink_count > 0) {
    volatile float first = out.sinks[0];  // points into the model
    volatile float last = out.sinks[out.sink_count - 1];
    (void)first;
    (void)last;
  }
  const char* name = nullptr;
  check(gqavk_model_name(m, &name));
  if (name != nullptr) (void)std::strlen(name);
  gqavk_kv_cache_create_info info;
  std::memset(&info, 0, sizeof(info));
  info.struct_size =
      in.ConsumeBool() ? sizeof(info) : in.ConsumeIntegralInRange<uint32_t>(0, sizeof(info));
  const uint32_t slots = in.ConsumeIntegral<uint32_t>();
  const uint32_t capacity = in.ConsumeIntegral<uint32_t>();
  const uint32_t block = in.ConsumeIntegral<uint32_t>();
  const gqavk_status status = gqavk_model_cache_desc(m, slots, capacity, block, &info);
  check(status);
  if (status == GQAVK_SUCCESS) {
    for (uint32_t i = 0; i < info.layer_window_count; ++i) {
      volatile uint32_t w = info.layer_windows[i];  // points into the model
      (void)w;
    }
    gqavk_kv_memory memory;
    std::memset(&memory, 0, sizeof(memory));
    memory.struct_size = sizeof(memory);
    check(gqavk_kv_cache_plan_memory(&info, &memory));
  }
  check(gqavk_model_destroy(m));
}

void dtypes(FuzzedDataProvider& in) {
  const std::string text = in.ConsumeRandomLengthString(16);
  gqavk_dtype dtype = GQAVK_DTYPE_F32;
  check(gqavk_parse_dtype(in.ConsumeBool() ? text.c_str() : nullptr, &dtype));
  // Passed by value: a C++ caller (this one) can only hold values in the enum's range (0 to
  // 2^31 - 1); structs above carry any 32 bits.
  const auto any = static_cast<gqavk_dtype>(in.ConsumeIntegralInRange<int32_t>(0, INT32_MAX));
  const char* name = gqavk_dtype_string(any);
  if (name != nullptr) (void)std::strlen(name);
  uint64_t bytes = 0;
  check(gqavk_dtype_row_bytes(any, in.ConsumeIntegral<uint32_t>(),
                              in.ConsumeBool() ? &bytes : nullptr));
  const char* status =
      gqavk_status_string(static_cast<gqavk_status>(in.ConsumeIntegral<int32_t>()));
  if (status != nullptr) (void)std::strlen(status);
}

void halves(FuzzedDataProvider& in) {
  const std::size_t count = in.ConsumeIntegralInRange<std::size_t>(0, 64);
  std::vector<float> floats(count);
  std::vector<uint16_t> h(count);
  for (float& f : floats) f = in.ConsumeFloatingPoint<float>();
  check(gqavk_floats_to_halves(in.ConsumeBool() ? floats.data() : nullptr, h.data(), count));
  std::vector<float> back(count);
  check(gqavk_halves_to_floats(h.data(), in.ConsumeBool() ? back.data() : nullptr, count));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  switch (in.ConsumeIntegralInRange<int>(0, 3)) {
    case 0:
      plan_memory(in);
      break;
    case 1:
      model(in);
      break;
    case 2:
      dtypes(in);
      break;
    default:
      halves(in);
      break;
  }
  return 0;
}
