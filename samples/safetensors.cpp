#include "safetensors.hpp"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "gqavk/half.hpp"

namespace gqavk::safetensors {

namespace {

// Header lengths past this are refused before anything is read into memory for them.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

[[noreturn]] void fail(const std::string& what, const std::string& message) {
  throw std::runtime_error(what + ": " + message);
}

uint16_t float_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fffu + ((bits >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(bits >> 16);
}

float bf16_to_float(uint16_t h) {
  const uint32_t bits = uint32_t{h} << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint64_t element_count(const Tensor& t) {
  uint64_t n = 1;
  for (uint64_t d : t.shape) n *= d;
  return n;
}

}  // namespace

uint64_t dtype_bytes(const std::string& dtype) {
  static const std::map<std::string, uint64_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2},  {"BF16", 2},    {"I64", 8},
      {"I32", 4}, {"I16", 2}, {"I8", 1},   {"U64", 8},     {"U32", 4},
      {"U16", 2}, {"U8", 1},  {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  const auto it = sizes.find(dtype);
  if (it == sizes.end()) {
    throw std::runtime_error("unknown safetensors dtype '" + dtype +
                             "' (expected F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, "
                             "I8, U64, U32, U16, U8 or BOOL)");
  }
  return it->second;
}

File parse(std::span<const uint8_t> bytes, const std::string& what) {
  if (bytes.size() < 8) {
    fail(what, "the file is " + std::to_string(bytes.size()) +
                   " bytes, shorter than the 8-byte header length");
  }
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = header_bytes << 8 | bytes[static_cast<size_t>(i)];
  if (header_bytes > bytes.size() - 8 || header_bytes > kMaxHeaderBytes) {
    fail(what, "header length " + std::to_string(header_bytes) + " is past the file's " +
                   std::to_string(bytes.size() - 8) + " bytes after the length (at most " +
                   std::to_string(kMaxHeaderBytes) + ")");
  }
  const std::string text(reinterpret_cast<const char*>(bytes.data() + 8), header_bytes);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(what, std::string("the header is not JSON: ") + e.what());
  }
  if (!header.is_object()) fail(what, "the header is not a JSON object");
  const std::span<const uint8_t> data = bytes.subspan(8 + header_bytes);

  File file;
  struct Range {
    uint64_t begin, end;
    size_t index;
  };
  std::vector<Range> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(what, "__metadata__ is not a JSON object");
      file.metadata = entry.dump();
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!entry.is_object()) fail(what, where + " is not a JSON object");
    if (!entry.contains("dtype") || !entry["dtype"].is_string()) {
      fail(what, where + " has no string 'dtype'");
    }
    if (!entry.contains("shape") || !entry["shape"].is_array()) {
      fail(what, where + " has no 'shape' array");
    }
    if (!entry.contains("data_offsets") || !entry["data_offsets"].is_array() ||
        entry["data_offsets"].size() != 2 || !entry["data_offsets"][0].is_number_unsigned() ||
        !entry["data_offsets"][1].is_number_unsigned()) {
      fail(what, where + " has no 'data_offsets' pair of non-negative integers");
    }
    Tensor t;
    t.name = name;
    t.dtype = entry["dtype"].get<std::string>();
    uint64_t elem = 0;
    try {
      elem = dtype_bytes(t.dtype);
    } catch (const std::exception& e) {
      fail(what, where + ": " + e.what());
    }
    uint64_t bytes_needed = elem;
    for (const auto& d : entry["shape"]) {
      if (!d.is_number_unsigned()) fail(what, where + " has a shape entry that is not a count");
      const uint64_t n = d.get<uint64_t>();
      if (n != 0 && bytes_needed > UINT64_MAX / n) fail(what, where + "'s shape overflows 64 bits");
      bytes_needed *= n;
      t.shape.push_back(n);
    }
    const uint64_t begin = entry["data_offsets"][0].get<uint64_t>();
    const uint64_t end = entry["data_offsets"][1].get<uint64_t>();
    if (begin > end || end > data.size()) {
      fail(what, where + " has data_offsets [" + std::to_string(begin) + ", " +
                     std::to_string(end) + "] outside the " + std::to_string(data.size()) +
                     " data bytes");
    }
    if (end - begin != bytes_needed) {
      fail(what, where + " holds " + std::to_string(end - begin) + " bytes; its shape and " +
                     t.dtype + " need " + std::to_string(bytes_needed));
    }
    t.data.assign(data.begin() + static_cast<ptrdiff_t>(begin),
                  data.begin() + static_cast<ptrdiff_t>(end));
    ranges.push_back({begin, end, file.tensors.size()});
    file.tensors.push_back(std::move(t));
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t at = 0;
  for (const Range& r : ranges) {
    const std::string& name = file.tensors[r.index].name;
    if (r.begin < at) fail(what, "tensor '" + name + "' overlaps the bytes of another tensor");
    if (r.begin > at) {
      fail(what, "bytes " + std::to_string(at) + " to " + std::to_string(r.begin) +
                     " belong to no tensor (before '" + name + "')");
    }
    at = r.end;
  }
  if (at != data.size()) {
    fail(what, "bytes " + std::to_string(at) + " to " + std::to_string(data.size()) +
                   " at the end belong to no tensor");
  }
  std::vector<Tensor> ordered;
  for (const Range& r : ranges) ordered.push_back(std::move(file.tensors[r.index]));
  file.tensors = std::move(ordered);
  return file;
}

File read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open for reading");
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  return parse(bytes, path);
}

void write(const std::string& path, const File& file) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!file.metadata.empty()) header["__metadata__"] = nlohmann::ordered_json::parse(file.metadata);
  uint64_t at = 0;
  for (const Tensor& t : file.tensors) {
    header[t.name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {at, at + t.data.size()}}};
    at += t.data.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error(path + ": cannot open for writing");
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(uint64_t{text.size()} >> (8 * i));
  out.write(reinterpret_cast<const char*>(length), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const Tensor& t : file.tensors) {
    out.write(reinterpret_cast<const char*>(t.data.data()),
              static_cast<std::streamsize>(t.data.size()));
  }
  if (!out) throw std::runtime_error(path + ": write failed");
}

std::vector<float> to_floats(const Tensor& t) {
  const uint64_t n = element_count(t);
  std::vector<float> out(n);
  if (t.dtype == "F32") {
    std::memcpy(out.data(), t.data.data(), n * 4);
  } else if (t.dtype == "F16" || t.dtype == "BF16") {
    for (uint64_t i = 0; i < n; ++i) {
      const uint16_t h = static_cast<uint16_t>(t.data[2 * i] | t.data[2 * i + 1] << 8);
      out[i] = t.dtype == "F16" ? half_to_float(h) : bf16_to_float(h);
    }
  } else {
    throw std::runtime_error("tensor '" + t.name + "' is " + t.dtype +
                             " (expected F32, F16 or BF16)");
  }
  return out;
}

void from_floats(Tensor& t, std::span<const float> values) {
  const uint64_t n = element_count(t);
  if (values.size() != n) {
    throw std::runtime_error("tensor '" + t.name + "' has " + std::to_string(n) +
                             " elements, not " + std::to_string(values.size()));
  }
  if (t.dtype == "F32") {
    t.data.resize(n * 4);
    std::memcpy(t.data.data(), values.data(), n * 4);
  } else if (t.dtype == "F16" || t.dtype == "BF16") {
    t.data.resize(n * 2);
    for (uint64_t i = 0; i < n; ++i) {
      const uint16_t h = t.dtype == "F16" ? float_to_half(values[i]) : float_to_bf16(values[i]);
      t.data[2 * i] = static_cast<uint8_t>(h);
      t.data[2 * i + 1] = static_cast<uint8_t>(h >> 8);
    }
  } else {
    throw std::runtime_error("tensor '" + t.name + "' is " + t.dtype +
                             " (expected F32, F16 or BF16)");
  }
}

}  // namespace gqavk::safetensors
