/* The C tests' checks (no framework: plain C99) and their float64 attention reference. A failed
 * check prints its file, line and expression (with the status and messages for gqavk calls) and
 * counts; c_check_summary() prints the totals and gives the process's exit code. */
#ifndef GQAVK_C_CHECK_H
#define GQAVK_C_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "gqavk/gqavk.h"

static int c_checks = 0;
static int c_failures = 0;

static inline void c_check_true(int ok, const char* file, int line, const char* what) {
  ++c_checks;
  if (!ok) {
    ++c_failures;
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", file, line, what);
  }
}

static inline const char* c_status_name(gqavk_status s) { return gqavk_status_string(s); }

/* Checks a gqavk call's status; when `part` is not NULL, also that gqavk_last_error(ctx) and
 * gqavk_last_error(NULL) (the thread's last failure of any kind) both contain it. */
static inline void c_check_status(gqavk_status got, gqavk_status want, const gqavk_context* ctx,
                                  const char* part, const char* file, int line, const char* call) {
  ++c_checks;
  const char* ctx_msg = gqavk_last_error(ctx);
  const char* thread_msg = gqavk_last_error(NULL);
  int ok = got == want;
  if (part != NULL) {
    ok = ok && strstr(thread_msg, part) != NULL;
    if (ctx != NULL) ok = ok && strstr(ctx_msg, part) != NULL;
  }
  if (!ok) {
    ++c_failures;
    fprintf(stderr,
            "%s:%d: %s\n  status %s (want %s)\n  last_error(ctx)  = \"%s\"\n"
            "  last_error(NULL) = \"%s\"\n  want a message containing \"%s\"\n",
            file, line, call, c_status_name(got), c_status_name(want), ctx_msg, thread_msg,
            part != NULL ? part : "(not checked)");
  }
}

/* Checks that the last failure's message (of ctx, and of the thread) also contains `part`. */
static inline void c_check_message(const gqavk_context* ctx, const char* part, const char* file,
                                   int line) {
  const char* ctx_msg = gqavk_last_error(ctx);
  const char* thread_msg = gqavk_last_error(NULL);
  ++c_checks;
  if (strstr(thread_msg, part) == NULL || (ctx != NULL && strstr(ctx_msg, part) == NULL)) {
    ++c_failures;
    fprintf(stderr,
            "%s:%d: message lacks \"%s\"\n  last_error(ctx)  = \"%s\"\n"
            "  last_error(NULL) = \"%s\"\n",
            file, line, part, ctx_msg, thread_msg);
  }
}

#define CHECK(cond) c_check_true((cond) != 0, __FILE__, __LINE__, #cond)
/* A call that must fail with `want` and a message (of ctx and of the thread) containing `part`. */
#define CHECK_FAILS(call, want, ctx, part) \
  c_check_status((call), (want), (ctx), (part), __FILE__, __LINE__, #call)
#define CHECK_MSG(ctx, part) c_check_message((ctx), (part), __FILE__, __LINE__)
#define CHECK_OK(call) c_check_status((call), GQAVK_SUCCESS, NULL, NULL, __FILE__, __LINE__, #call)

/* Largest |got - want| over n values; infinite when a value is not finite. */
static inline double c_max_abs_diff(const float* got, const double* want, size_t n) {
  double worst = 0.0;
  size_t i;
  for (i = 0; i < n; ++i) {
    const double d = fabs((double)got[i] - want[i]);
    if (!(d <= worst) && !(d > worst)) return INFINITY; /* NaN */
    if (d > worst) worst = d;
  }
  return worst;
}

/* Attention of one sequence in float64: q [H, lq, D]; k and v [G, stride, D] (token t of KV head g
 * at (g * stride + t) * D), the first lk tokens keys; out [H, lq, D]. Query head h reads KV head
 * h / (H / G); softmax(scale * q.k) v with scale 1/sqrt(D). Causal is bottom-right aligned: query i
 * sees keys j <= lk - lq + i. */
static inline void c_reference_attention(const float* q, const float* k, const float* v,
                                         uint32_t heads, uint32_t kv_heads, uint32_t lq,
                                         uint32_t lk, uint32_t dim, uint32_t stride, int causal,
                                         double* out) {
  const double scale = 1.0 / sqrt((double)dim);
  uint32_t h, i, j, d;
  for (h = 0; h < heads; ++h) {
    const uint32_t g = h / (heads / kv_heads);
    for (i = 0; i < lq; ++i) {
      const float* qi = q + ((size_t)h * lq + i) * dim;
      double* oi = out + ((size_t)h * lq + i) * dim;
      const uint32_t seen = causal ? lk - lq + i + 1 : lk;
      double max_logit = -INFINITY, sum = 0.0;
      for (d = 0; d < dim; ++d) oi[d] = 0.0;
      for (j = 0; j < seen; ++j) {
        const float* kj = k + ((size_t)g * stride + j) * dim;
        double dot = 0.0;
        for (d = 0; d < dim; ++d) dot += (double)qi[d] * kj[d];
        if (scale * dot > max_logit) max_logit = scale * dot;
      }
      for (j = 0; j < seen; ++j) {
        const float* kj = k + ((size_t)g * stride + j) * dim;
        const float* vj = v + ((size_t)g * stride + j) * dim;
        double dot = 0.0, p;
        for (d = 0; d < dim; ++d) dot += (double)qi[d] * kj[d];
        p = exp(scale * dot - max_logit);
        sum += p;
        for (d = 0; d < dim; ++d) oi[d] += p * vj[d];
      }
      for (d = 0; d < dim; ++d) oi[d] /= sum;
    }
  }
}

/* Values in [-1, 1) from a fixed seed (a 32-bit LCG: the same on every platform). */
static inline void c_random_values(float* out, size_t n, uint32_t seed) {
  size_t i;
  uint32_t x = seed * 2654435761u + 12345u;
  for (i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    out[i] = (float)((double)(x >> 8) / 8388608.0 - 1.0);
  }
}

/* A cache of `batch` sequences, `layers` layers of G KV heads of width D, `capacity` tokens each in
 * blocks of `block` tokens; everything else zero (the defaults, and a pool of gqavk's own). */
static inline gqavk_kv_cache_create_info c_cache_info(uint32_t batch, uint32_t kv_heads,
                                                      uint32_t head_dim, uint32_t capacity,
                                                      gqavk_dtype dtype, uint32_t block,
                                                      uint32_t layers) {
  gqavk_kv_cache_create_info info;
  memset(&info, 0, sizeof(info));
  info.struct_size = sizeof(info);
  info.batch = batch;
  info.kv_heads = kv_heads;
  info.head_dim = head_dim;
  info.capacity_tokens = capacity;
  info.dtype = dtype;
  info.block_tokens = block;
  info.layers = layers;
  return info;
}

/* A layer of H query heads over G KV heads of width D, without options. */
static inline gqavk_layer_desc c_layer_desc(uint32_t q_heads, uint32_t kv_heads, uint32_t head_dim,
                                            gqavk_dtype kv_dtype) {
  gqavk_layer_desc layer;
  memset(&layer, 0, sizeof(layer));
  layer.struct_size = sizeof(layer);
  layer.q_heads = q_heads;
  layer.kv_heads = kv_heads;
  layer.head_dim = head_dim;
  layer.kv_dtype = kv_dtype;
  return layer;
}

/* Prints the totals; the process's exit code (0 only when every check passed). */
static inline int c_check_summary(const char* name) {
  printf("%s: %d checks, %d failed\n", name, c_checks, c_failures);
  return c_failures == 0 ? 0 : 1;
}

#endif /* GQAVK_C_CHECK_H */
