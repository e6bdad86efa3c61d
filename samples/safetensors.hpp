// Reader and writer for safetensors files (Hugging Face checkpoints): an 8-byte little-endian
// header length, a JSON header naming each tensor's dtype, shape and byte range, then the bytes.

#ifndef GQAVK_SAMPLES_SAFETENSORS_HPP_
#define GQAVK_SAMPLES_SAFETENSORS_HPP_

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace gqavk::safetensors {

struct Tensor {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16", "I64", ... as in the file
  std::vector<uint64_t> shape;
  std::vector<uint8_t> data;  // little-endian, C order
};

struct File {
  std::vector<Tensor> tensors;  // in the order of their bytes in the file
  std::string metadata;         // the "__metadata__" object as JSON text, or "" when absent
};

// Bytes of one element of `dtype`; throws std::runtime_error naming an unknown dtype.
uint64_t dtype_bytes(const std::string& dtype);

// Parses a whole file's bytes; `what` (the path) starts every error message. Rejects a header
// length past the file, bad JSON, an unknown dtype, a shape whose byte count differs from its
// range or overflows, ranges past the data, overlapping ranges and bytes no tensor covers
// (throws std::runtime_error).
File parse(std::span<const uint8_t> bytes, const std::string& what);
File read(const std::string& path);
// Writes the tensors in order, their ranges back to back, the header padded to 8 bytes.
void write(const std::string& path, const File& file);

// The values of an F32, F16 or BF16 tensor as floats (exactly); throws for other dtypes.
std::vector<float> to_floats(const Tensor& t);
// Stores values into an F32, F16 or BF16 tensor (round to nearest even); the tensor's element
// count must equal values.size().
void from_floats(Tensor& t, std::span<const float> values);

}  // namespace gqavk::safetensors

#endif  // GQAVK_SAMPLES_SAFETENSORS_HPP_
