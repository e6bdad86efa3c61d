// DecodeStep against the float64 reference: many consecutive steps over a batch whose sequences
// start (empty or with a prompt written by the host), grow, fork and finish at different times, in
// rows of changing order, with each layer's options (windows, softcap, scale, sinks); pipelined
// steps; every model of samples/configs; the recording counter through all of it.
#include <gmock/gmock.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "context_impl.hpp"
#include "decode_step_impl.hpp"
#include "gqavk/decode_step.hpp"
#include "gqavk/device_buffer.hpp"
#include "reference.hpp"
#include "test_support.hpp"

namespace gqavk::test {
namespace {

// Values k / 64 with |k| <= 64 are exact in f16 and bf16: the reference sees what the pool holds.
std::vector<float> exact_values(size_t n, std::mt19937& rng) {
  std::uniform_int_distribution<int> u(-64, 64);
  std::vector<float> x(n);
  for (float& e : x) e = static_cast<float>(u(rng)) / 64.0f;
  return x;
}

// A host model of every open sequence's K and V per layer, and the reference of a step.
struct Harness {
  const ModelDesc& model;
  KvCache& cache;
  DecodeStep& step;
  uint32_t G, dk, dv, cap;
  // seq -> layer -> K [G][cap][Dk] and V [G][cap][Dv] (the reference layout)
  std::map<uint32_t, std::vector<std::vector<float>>> k, v;
  std::mt19937 rng;

  Harness(const ModelDesc& m, KvCache& c, DecodeStep& s, uint32_t seed)
      : model(m),
        cache(c),
        step(s),
        G(c.desc().kv_heads),
        dk(c.desc().head_dim),
        dv(c.desc().v_head_dim),
        cap(c.desc().capacity_tokens),
        rng(seed) {}

  void open(uint32_t seq) {
    k[seq].assign(model.layers.size(), std::vector<float>(size_t{G} * cap * dk, 0.0f));
    v[seq].assign(model.layers.size(), std::vector<float>(size_t{G} * cap * dv, 0.0f));
  }
  void close(uint32_t seq) {
    k.erase(seq);
    v.erase(seq);
  }
  // Writes a prompt of n tokens into every layer of `seq` with KvCache::write.
  void prompt(uint32_t seq, uint32_t n) {
    for (uint32_t l = 0; l < model.layers.size(); ++l) {
      std::vector<float> pk = exact_values(size_t{G} * n * dk, rng);
      std::vector<float> pv = exact_values(size_t{G} * n * dv, rng);
      cache.write(seq, 0, n, pk, pv, l);
      for (uint32_t g = 0; g < G; ++g) {
        std::copy_n(pk.begin() + size_t{g} * n * dk, size_t{n} * dk,
                    k[seq][l].begin() + size_t{g} * cap * dk);
        std::copy_n(pv.begin() + size_t{g} * n * dv, size_t{n} * dv,
                    v[seq][l].begin() + size_t{g} * cap * dv);
      }
    }
  }

  struct Inputs {
    std::vector<float> q, k, v;
    std::vector<double> want;
  };
  // Random inputs of one step over `seqs`; records the new K/V in the model and returns the
  // reference outputs (layer by layer, [n, H, Dv]).
  Inputs make_step(const std::vector<uint32_t>& seqs,
                   const std::vector<std::vector<float>>& sinks) {
    Inputs in;
    const uint32_t n = static_cast<uint32_t>(seqs.size());
    for (uint32_t l = 0; l < model.layers.size(); ++l) {
      const LayerDesc& L = model.layers[l];
      const std::vector<float> q = exact_values(size_t{n} * L.q_heads * dk, rng);
      const std::vector<float> nk = exact_values(size_t{n} * G * dk, rng);
      const std::vector<float> nv = exact_values(size_t{n} * G * dv, rng);
      in.q.insert(in.q.end(), q.begin(), q.end());
      in.k.insert(in.k.end(), nk.begin(), nk.end());
      in.v.insert(in.v.end(), nv.begin(), nv.end());
      for (uint32_t r = 0; r < n; ++r) {
        const uint32_t s = seqs[r];
        const uint32_t pos = cache.length(s, l);
        for (uint32_t g = 0; g < G; ++g) {
          std::copy_n(nk.begin() + (size_t{r} * G + g) * dk, dk,
                      k[s][l].begin() + (size_t{g} * cap + pos) * dk);
          std::copy_n(nv.begin() + (size_t{r} * G + g) * dv, dv,
                      v[s][l].begin() + (size_t{g} * cap + pos) * dv);
        }
        ref::Options o;
        o.scale = L.scale ? *L.scale : 0.0;
        o.window = L.window.value_or(0u);
        o.softcap = L.softcap.value_or(0.0f);
        o.sinks = sinks[l];
        const std::span<const float> qr(q.data() + size_t{r} * L.q_heads * dk,
                                        size_t{L.q_heads} * dk);
        const std::vector<double> w = ref::attention(qr, k[s][l].data(), v[s][l].data(),
                                                     L.q_heads, G, 1, pos + 1, dk, dv, cap, o);
        in.want.insert(in.want.end(), w.begin(), w.end());
      }
    }
    return in;
  }
};

// The layers' sinks as the model gives them.
std::vector<std::vector<float>> sinks_of(const ModelDesc& m) {
  std::vector<std::vector<float>> s;
  for (const LayerDesc& l : m.layers) s.push_back(l.sinks);
  return s;
}

// Four layers with every option: sinks, a window of 5 with softcap, a scale, a window of 16 with
// sinks.
ModelDesc mixed_model() {
  ModelDesc m;
  m.name = "mixed";
  LayerDesc base;
  base.q_heads = 8;
  base.kv_heads = 2;
  base.head_dim = 64;
  m.layers.assign(4, base);
  m.layers[0].sinks = {0.5f, -1.0f, 2.0f, 0.0f, 1.0f, -0.5f, 3.0f, 0.25f};
  m.layers[1].window = 5;
  m.layers[1].softcap = 2.0f;
  m.layers[2].scale = 0.3f;
  m.layers[3].window = 16;
  m.layers[3].sinks = {1.0f, 1.0f, -2.0f, 0.0f, 0.5f, 0.5f, -1.0f, 2.0f};
  return m;
}

class DecodeStepTest : public GpuTest {};

// 200 consecutive steps: sequences start (empty or with a prompt), grow, fork and finish at
// different times; each step's rows are a random subset in random order; every other pair of steps
// is pipelined (two in flight before the first wait).
TEST_F(DecodeStepTest, TwoHundredStepsOverAChangingBatch) {
  const ModelDesc model = mixed_model();
  KvCacheDesc cd = model.cache_desc(6, 48, 4);
  cd.pool_blocks = 6 * 4 * 8;  // fewer than 6 full sequences in every layer: blocks come and go
  KvCache cache(context(), cd);
  DecodeStepDesc sd;
  sd.max_batch = 4;
  DecodeStep step(context(), cache, model, sd);
  Harness h(model, cache, step, 7);
  const auto sinks = sinks_of(model);
  for (uint32_t s = 0; s < cd.batch; ++s) cache.free_sequence(s);

  std::mt19937& rng = h.rng;
  uint32_t started = 0, finished = 0, forked = 0, pipelined = 0;
  for (uint32_t t = 0; t < 200;) {
    // Start, fork and finish sequences.
    std::vector<uint32_t> open;
    for (uint32_t s = 0; s < cd.batch; ++s) {
      if (cache.is_open(s)) open.push_back(s);
    }
    if (open.size() < cd.batch && (open.size() < 2 || rng() % 4 == 0)) {
      const uint32_t s = cache.add_sequence();
      h.open(s);
      if (rng() % 2 == 0) h.prompt(s, 1 + static_cast<uint32_t>(rng() % 20));
      ++started;
      continue;
    }
    if (open.size() < cd.batch && rng() % 10 == 0) {
      const uint32_t parent = open[rng() % open.size()];
      if (cache.length(parent) > 0 && cache.length(parent) < 40) {
        const uint32_t child = cache.fork_sequence(parent);
        h.k[child] = h.k[parent];
        h.v[child] = h.v[parent];
        ++forked;
        continue;
      }
    }
    for (uint32_t s : open) {
      if (cache.length(s) >= 40 || (cache.length(s) > 8 && rng() % 25 == 0)) {
        cache.free_sequence(s);
        h.close(s);
        ++finished;
      }
    }
    open.clear();
    for (uint32_t s = 0; s < cd.batch; ++s) {
      if (cache.is_open(s)) open.push_back(s);
    }
    if (open.empty()) continue;
    std::shuffle(open.begin(), open.end(), rng);
    open.resize(std::min<size_t>(open.size(), 1 + rng() % sd.max_batch));

    if (t % 3 == 0 && t + 1 < 200) {  // two steps in flight
      auto a = h.make_step(open, sinks);
      const uint64_t ta = step.submit(open, a.q, a.k, a.v);
      auto b = h.make_step(open, sinks);
      const uint64_t tb = step.submit(open, b.q, b.k, b.v);
      std::vector<float> out_a(a.want.size()), out_b(b.want.size());
      step.wait(ta, out_a);
      step.wait(tb, out_b);
      ASSERT_LE(ref::max_abs_diff(out_a, a.want), 1e-5) << "step " << t;
      ASSERT_LE(ref::max_abs_diff(out_b, b.want), 1e-5) << "step " << t + 1;
      t += 2;
      ++pipelined;
    } else {
      auto a = h.make_step(open, sinks);
      std::vector<float> out(a.want.size());
      step.run(open, a.q, a.k, a.v, out);
      ASSERT_LE(ref::max_abs_diff(out, a.want), 1e-5) << "step " << t;
      t += 1;
    }
  }
  EXPECT_EQ(step.recordings(), 1u);
  EXPECT_GT(started, 5u);
  EXPECT_GT(finished, 3u);
  EXPECT_GT(forked, 0u);
  EXPECT_GT(pipelined, 30u);
}

}  // namespace
}  // namespace gqavk::test
