/* A C99 program outside the gqavk tree, built against an installed gqavk (find_package(gqavk) or
 * pkg-config gqavk) and its C API (gqavk.h): one decode on the default device, checked against a
 * float64 reference, a refused plan's status and message, every object destroyed in order. Exits 0
 * when the max error is below 1e-4. */
#include <gqavk/gqavk.h>
#include <stdio.h>
#include <string.h>

#include "consumer_reference.h"

/* Reports a failing call with the library's message and leaves (the process ends). */
#define CHECK(call)                                                                            \
  do {                                                                                         \
    const gqavk_status status_ = (call);                                                       \
    if (status_ != GQAVK_SUCCESS) {                                                            \
      fprintf(stderr, "consumer_c: %s returned %s: %s\n", #call, gqavk_status_string(status_), \
              gqavk_last_error(NULL));                                                         \
      return 1;                                                                                \
    }                                                                                          \
  } while (0)

int main(void) {
  static float q[kConsumerH * kConsumerD], k[kConsumerG * kConsumerL * kConsumerD],
      v[kConsumerG * kConsumerL * kConsumerD], out[kConsumerH * kConsumerD];
  const uint32_t lengths[1] = {kConsumerL};
  gqavk_context* context = NULL;
  gqavk_kv_cache* cache = NULL;
  gqavk_decode_plan* plan = NULL;
  gqavk_decode_plan* bad = NULL;
  gqavk_device_info info;
  gqavk_kv_cache_create_info cache_info;
  gqavk_decode_plan_create_info plan_info;
  gqavk_status refused;
  double error;

  if (gqavk_version() != GQAVK_VERSION) {
    fprintf(stderr, "consumer_c: library version %u, header version %u (expected equal)\n",
            (unsigned)gqavk_version(), (unsigned)GQAVK_VERSION);
    return 1;
  }
  consumer_fill(q, sizeof q / sizeof q[0], 1);
  consumer_fill(k, sizeof k / sizeof k[0], 2);
  consumer_fill(v, sizeof v / sizeof v[0], 3);

  CHECK(gqavk_context_create(NULL, &context));
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  CHECK(gqavk_context_device_info(context, &info));

  memset(&cache_info, 0, sizeof cache_info);
  cache_info.struct_size = sizeof cache_info;
  cache_info.kv_heads = kConsumerG;
  cache_info.head_dim = kConsumerD;
  cache_info.capacity_tokens = 64;
  cache_info.block_tokens = 16;
  cache_info.dtype = GQAVK_DTYPE_F32;
  CHECK(gqavk_kv_cache_create(context, &cache_info, &cache));
  CHECK(gqavk_kv_cache_write(cache, 0, 0, 0, kConsumerL, k, sizeof k / sizeof k[0], v,
                             sizeof v / sizeof v[0]));

  memset(&plan_info, 0, sizeof plan_info);
  plan_info.struct_size = sizeof plan_info;
  plan_info.q_heads = kConsumerG + 1; /* H % G != 0: refused, with a message */
  refused = gqavk_decode_plan_create(context, cache, &plan_info, &bad);
  if (refused != GQAVK_ERROR_INVALID_ARGUMENT || bad != NULL || !*gqavk_last_error(context)) {
    fprintf(stderr,
            "consumer_c: q_heads %d over %d KV heads gave %s (expected "
            "GQAVK_ERROR_INVALID_ARGUMENT with a message)\n",
            kConsumerG + 1, kConsumerG, gqavk_status_string(refused));
    return 1;
  }

  plan_info.q_heads = kConsumerH;
  CHECK(gqavk_decode_plan_create(context, cache, &plan_info, &plan));
  CHECK(gqavk_decode_plan_run(plan, q, sizeof q / sizeof q[0], lengths, 1, out,
                              sizeof out / sizeof out[0]));
  error = consumer_max_error(q, k, v, out);
  printf("consumer_c: %s, decode H=%d G=%d D=%d L=%d f32: max error %.3g (expected < 1e-4)\n",
         info.name, kConsumerH, kConsumerG, kConsumerD, kConsumerL, error);

  CHECK(gqavk_decode_plan_destroy(plan));
  CHECK(gqavk_kv_cache_destroy(cache));
  CHECK(gqavk_context_destroy(context));
  return error < 1e-4 ? 0 : 1;
}
