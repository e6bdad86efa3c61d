#include "reference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace gqavk::ref {

std::vector<double> attention(std::span<const float> q, const float* k, const float* v,
                              uint32_t q_heads, uint32_t kv_heads, uint32_t lq, uint32_t lk,
                              uint32_t dk, uint32_t dv, uint32_t capacity, const Options& opt) {
  const uint32_t group = q_heads / kv_heads;
  const double scale = opt.scale > 0 ? opt.scale : 1.0 / std::sqrt(double(dk));
  std::vector<double> out(size_t{q_heads} * lq * dv, 0.0);
  std::vector<double> s;
  for (uint32_t h = 0; h < q_heads; ++h) {
    const uint32_t g = h / group;
    const float* kh = k + size_t{g} * capacity * dk;
    const float* vh = v + size_t{g} * capacity * dv;
    for (uint32_t i = 0; i < lq; ++i) {
      // Visible keys [lo, hi) of the query at position p = lk - lq + i.
      const int64_t p = int64_t{lk} - lq + i;
      const int64_t hi = opt.causal ? std::min<int64_t>(p + 1, lk) : lk;
      const int64_t lo = std::min(hi, opt.window ? std::max<int64_t>(0, p - opt.window + 1) : 0);
      const float* qr = q.data() + (size_t{h} * lq + i) * dk;
      s.assign(std::max<int64_t>(0, hi - lo), 0.0);
      double m = opt.sinks.empty() ? -std::numeric_limits<double>::infinity() : opt.sinks[h];
      for (int64_t j = lo; j < hi; ++j) {
        const float* kr = kh + size_t(j) * dk;
        double dot = 0;
        for (uint32_t d = 0; d < dk; ++d) dot += double{qr[d]} * double{kr[d]};
        double x = dot * scale;
        if (opt.softcap > 0) x = opt.softcap * std::tanh(x / opt.softcap);
        s[j - lo] = x;
        m = std::max(m, x);
      }
      if (s.empty()) continue;  // no key: zeros, even with a sink
      double sum = opt.sinks.empty() ? 0.0 : std::exp(double{opt.sinks[h]} - m);
      for (double& x : s) sum += (x = std::exp(x - m));
      double* o = out.data() + (size_t{h} * lq + i) * dv;
      for (int64_t j = lo; j < hi; ++j) {
        const float* vr = vh + size_t(j) * dv;
        const double w = s[j - lo] / sum;
        for (uint32_t d = 0; d < dv; ++d) o[d] += w * double{vr[d]};
      }
    }
  }
  return out;
}

std::vector<double> decode(std::span<const float> q, std::span<const float> k,
                           std::span<const float> v, std::span<const uint32_t> lengths,
                           uint32_t batch, uint32_t q_heads, uint32_t kv_heads, uint32_t head_dim,
                           uint32_t capacity, double scale, const Options& options, uint32_t dv) {
  if (dv == 0) dv = head_dim;
  Options opt = options;
  opt.scale = scale;
  opt.causal = true;  // one query at the last position: causal sees every key
  std::vector<double> out;
  out.reserve(size_t{batch} * q_heads * dv);
  for (uint32_t b = 0; b < batch; ++b) {
    const size_t kv_at = size_t{b} * kv_heads * capacity;
    const std::vector<double> o =
        attention(q.subspan(size_t{b} * q_heads * head_dim, size_t{q_heads} * head_dim),
                  k.data() + kv_at * head_dim, v.data() + kv_at * dv, q_heads, kv_heads, 1,
                  lengths[b], head_dim, dv, capacity, opt);
    out.insert(out.end(), o.begin(), o.end());
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
