// Minimal reader and writer for NumPy .npy files holding float32 or float16 arrays.

#ifndef GQAVK_SAMPLES_NPY_HPP_
#define GQAVK_SAMPLES_NPY_HPP_

#include <cstddef>
#include <span>
#include <string>
#include <vector>

namespace gqavk::npy {

// Element type stored in the file.
enum class Dtype { f32, f16 };

// A loaded array; data is always widened to float and stored in C (row-major) order.
struct Array {
  std::vector<std::size_t> shape;
  Dtype dtype;
  std::vector<float> data;
};

// Loads a little-endian '<f4' or '<f2' C-order array from an NPY v1.0, v2.0 or v3.0 file.
// Throws std::runtime_error, with a message starting with the path, on any malformed input.
Array load(const std::string& path);

// Writes data as an NPY v1.0 '<f4' C-order file. Throws std::invalid_argument if data.size() is not
// the product of shape, and std::runtime_error naming the path if the file cannot be written.
void save_f32(const std::string& path, const std::vector<std::size_t>& shape,
              std::span<const float> data);

}  // namespace gqavk::npy

#endif  // GQAVK_SAMPLES_NPY_HPP_
