/* The consumer programs' shared shape, inputs and float64 reference (C99 and C++): one decode
 * token per head over L cached tokens, o_h = softmax(q_h . k_j / sqrt(D)) v_j with the KV head of
 * query head h being h / (H / G). Layouts as gqavk's: q [H, D], k and v [G, L, D], out [H, D]. */
#ifndef GQAVK_CONSUMER_REFERENCE_H
#define GQAVK_CONSUMER_REFERENCE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

enum { kConsumerH = 8, kConsumerG = 2, kConsumerD = 64, kConsumerL = 37 };

/* Values in [-1, 1) from a fixed linear congruential sequence: the same inputs on every run. */
static void consumer_fill(float* values, size_t n, uint32_t seed) {
  uint32_t x = seed;
  size_t i;
  for (i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    values[i] = (float)((double)(x >> 8) / (double)(1u << 23) - 1.0);
  }
}

/* The largest |out - reference| over all heads and dims. */
static double consumer_max_error(const float* q, const float* k, const float* v, const float* out) {
  const double scale = 1.0 / sqrt((double)kConsumerD);
  double worst = 0.0;
  int h, j, d;
  for (h = 0; h < kConsumerH; ++h) {
    const int g = h / (kConsumerH / kConsumerG);
    const float* qh = q + (size_t)h * kConsumerD;
    double s[kConsumerL], m = -INFINITY, sum = 0.0;
    for (j = 0; j < kConsumerL; ++j) {
      const float* kj = k + ((size_t)g * kConsumerL + (size_t)j) * kConsumerD;
      double dot = 0.0;
      for (d = 0; d < kConsumerD; ++d) dot += (double)qh[d] * (double)kj[d];
      s[j] = dot * scale;
      if (s[j] > m) m = s[j];
    }
    for (j = 0; j < kConsumerL; ++j) {
      s[j] = exp(s[j] - m);
      sum += s[j];
    }
    for (d = 0; d < kConsumerD; ++d) {
      double o = 0.0, err;
      for (j = 0; j < kConsumerL; ++j) {
        o += s[j] * (double)v[((size_t)g * kConsumerL + (size_t)j) * kConsumerD + (size_t)d];
      }
      err = fabs(o / sum - (double)out[(size_t)h * kConsumerD + (size_t)d]);
      if (!(err <= worst)) worst = err; /* a NaN output counts as the worst */
    }
  }
  return worst;
}

#endif /* GQAVK_CONSUMER_REFERENCE_H */
