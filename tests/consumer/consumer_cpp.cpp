// A C++ program outside the gqavk tree, built against an installed gqavk (find_package(gqavk) or
// pkg-config gqavk): one decode on the default device, checked against a float64 reference, and a
// gqavk::Error thrown inside the library caught here. Exits 0 when the max error is below 1e-4.
#include <cstdint>
#include <cstdio>
#include <gqavk/gqavk.hpp>
#include <vector>

#include "consumer_reference.h"

int main() {
  try {
    std::printf("consumer_cpp: %zu device(s)\n", gqavk::list_devices().size());
    gqavk::Context context;
    gqavk::KvCacheDesc desc;
    desc.kv_heads = kConsumerG;
    desc.head_dim = kConsumerD;
    desc.capacity_tokens = 64;
    desc.block_tokens = 16;
    desc.dtype = gqavk::DType::f32;
    gqavk::KvCache cache(context, desc);

    std::vector<float> q(kConsumerH * kConsumerD), k(kConsumerG * kConsumerL * kConsumerD),
        v(k.size());
    consumer_fill(q.data(), q.size(), 1);
    consumer_fill(k.data(), k.size(), 2);
    consumer_fill(v.data(), v.size(), 3);
    cache.write(0, 0, kConsumerL, k, v);

    gqavk::DecodeDesc plan_desc;
    plan_desc.q_heads = kConsumerG + 1;  // H % G != 0: the library throws, this program catches
    bool caught = false;
    try {
      gqavk::DecodePlan bad(context, cache, plan_desc);
    } catch (const gqavk::Error& e) {
      caught = e.code() == gqavk::ErrorCode::invalid_argument;
    }
    if (!caught) {
      std::fprintf(stderr,
                   "consumer_cpp: q_heads %d over %d KV heads was not refused with a "
                   "gqavk::Error (invalid_argument)\n",
                   kConsumerG + 1, kConsumerG);
      return 1;
    }

    plan_desc.q_heads = kConsumerH;
    gqavk::DecodePlan plan(context, cache, plan_desc);
    const std::vector<uint32_t> lengths = {kConsumerL};
    const std::vector<float> out = plan.run(q, lengths);
    const double error = consumer_max_error(q.data(), k.data(), v.data(), out.data());
    std::printf(
        "consumer_cpp: %s, decode H=%d G=%d D=%d L=%d %s: max error %.3g (expected < "
        "1e-4)\n",
        context.device().name.c_str(), kConsumerH, kConsumerG, kConsumerD, kConsumerL,
        gqavk::to_string(desc.dtype), error);
    return error < 1e-4 ? 0 : 1;
  } catch (const gqavk::Error& e) {
    std::fprintf(stderr, "consumer_cpp: gqavk::Error (%s): %s\n", gqavk::to_string(e.code()),
                 e.what());
    return 1;
  }
}
