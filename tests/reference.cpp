#include "reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace gqavk::ref {

std::vector<double> decode(std::span<const float> q, std::span<const float> k,
                           std::span<const float> v, std::span<const uint32_t> lengths,
                           uint32_t batch, uint32_t q_heads, uint32_t kv_heads, uint32_t head_dim,
                           uint32_t capacity, double scale) {
  const uint32_t group = q_heads / kv_heads;
  std::vector<double> out(size_t{batch} * q_heads * head_dim, 0.0);
  std::vector<double> s;
  for (uint32_t b = 0; b < batch; ++b) {
    const uint32_t len = lengths[b];
    for (uint32_t h = 0; h < q_heads; ++h) {
      const uint32_t g = h / group;
      const float* qr = q.data() + (size_t{b} * q_heads + h) * head_dim;
      const size_t kv_base = (size_t{b} * kv_heads + g) * capacity * head_dim;
      s.assign(len, 0.0);
      double m = -std::numeric_limits<double>::infinity();
      for (uint32_t j = 0; j < len; ++j) {
        const float* kr = k.data() + kv_base + size_t{j} * head_dim;
        double dot = 0;
        for (uint32_t d = 0; d < head_dim; ++d) dot += double{qr[d]} * double{kr[d]};
        s[j] = dot * scale;
        m = std::max(m, s[j]);
      }
      double sum = 0;
      for (uint32_t j = 0; j < len; ++j) sum += (s[j] = std::exp(s[j] - m));
      double* o = out.data() + (size_t{b} * q_heads + h) * head_dim;
      for (uint32_t j = 0; len > 0 && j < len; ++j) {
        const float* vr = v.data() + kv_base + size_t{j} * head_dim;
        const double w = s[j] / sum;
        for (uint32_t d = 0; d < head_dim; ++d) o[d] += w * double{vr[d]};
      }
    }
  }
  return out;
}

double max_abs_diff(std::span<const float> got, std::span<const double> want) {
  double m = 0;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return std::numeric_limits<double>::infinity();
    m = std::max(m, std::abs(double{got[i]} - want[i]));
  }
  return m;
}

}  // namespace gqavk::ref
