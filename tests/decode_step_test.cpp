// DecodeStep against the float64 reference: many consecutive steps over a batch whose sequences
// start (empty or with a prompt written by the host), grow, fork and finish at different times, in
// rows of changing order, with each layer's options (windows, softcap, scale, sinks); pipelined
// steps; every model of samples/configs; the recording counter through all of it.
#include "gqavk/decode_step.hpp"

#include <gmock/gmock.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "context_impl.hpp"
#include "decode_step_impl.hpp"
#include "fault.hpp"
#include "gqavk/device_buffer.hpp"
#include "reference.hpp"
#include "test_support.hpp"

#ifdef GQAVK_TEST_ASAN
// The sanitizer runtime's count of live heap bytes (sanitizer/allocator_interface.h, a header
// clang ships and GCC 12 does not; libasan has the function either way).
extern "C" size_t __sanitizer_get_current_allocated_bytes(void);
#endif

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
    std::vector<uint32_t> seqs;
    std::vector<uint32_t> positions;  // [layer][row]: where each row's new token goes
  };
  // Random inputs of one step over `seqs`; records the new K/V in the model (want stays empty).
  Inputs draw(const std::vector<uint32_t>& seqs) {
    Inputs in;
    in.seqs = seqs;
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
        in.positions.push_back(pos);
        for (uint32_t g = 0; g < G; ++g) {
          std::copy_n(nk.begin() + (size_t{r} * G + g) * dk, dk,
                      k[s][l].begin() + (size_t{g} * cap + pos) * dk);
          std::copy_n(nv.begin() + (size_t{r} * G + g) * dv, dv,
                      v[s][l].begin() + (size_t{g} * cap + pos) * dv);
        }
      }
    }
    return in;
  }
  // The reference outputs of drawn inputs (layer by layer, [n, H, Dv]) into in.want; may run while
  // the step does (it reads only the tokens up to each row's new one).
  void reference(Inputs& in, const std::vector<std::vector<float>>& sinks) const {
    in.want.clear();
    const size_t n = in.seqs.size();
    size_t q_at = 0;
    for (uint32_t l = 0; l < model.layers.size(); ++l) {
      const LayerDesc& L = model.layers[l];
      for (size_t r = 0; r < n; ++r) {
        const uint32_t s = in.seqs[r];
        const uint32_t pos = in.positions[l * n + r];
        ref::Options o;
        o.scale = L.scale ? *L.scale : 0.0;
        o.window = L.window.value_or(0u);
        o.softcap = L.softcap.value_or(0.0f);
        o.sinks = sinks[l];
        const std::span<const float> qr(in.q.data() + q_at, size_t{L.q_heads} * dk);
        q_at += qr.size();
        const std::vector<double> w = ref::attention(qr, k.at(s)[l].data(), v.at(s)[l].data(),
                                                     L.q_heads, G, 1, pos + 1, dk, dv, cap, o);
        in.want.insert(in.want.end(), w.begin(), w.end());
      }
    }
  }
  // draw() and reference(): a step's inputs and its reference outputs.
  Inputs make_step(const std::vector<uint32_t>& seqs,
                   const std::vector<std::vector<float>>& sinks) {
    Inputs in = draw(seqs);
    reference(in, sinks);
    return in;
  }

  // Values per row of each layer: q [H_l, Dk], k [G, Dk], v [G, Dv], out [H_l, Dv].
  std::vector<size_t> q_rows() const {
    std::vector<size_t> r;
    for (const LayerDesc& L : model.layers) r.push_back(size_t{L.q_heads} * dk);
    return r;
  }
  std::vector<size_t> k_rows() const { return std::vector<size_t>(model.layers.size(), G * dk); }
  std::vector<size_t> v_rows() const { return std::vector<size_t>(model.layers.size(), G * dv); }
  std::vector<size_t> out_rows() const {
    std::vector<size_t> r;
    for (const LayerDesc& L : model.layers) r.push_back(size_t{L.q_heads} * dv);
    return r;
  }
};

// Host layout (n rows per layer) to device I/O layout (max_batch rows per layer), rows past n
// filled with `pad`.
std::vector<float> to_device_rows(const std::vector<float>& x, const std::vector<size_t>& row,
                                  size_t n, size_t max_batch, float pad) {
  std::vector<float> y;
  size_t at = 0;
  for (size_t r : row) {
    y.insert(y.end(), x.begin() + at, x.begin() + at + n * r);
    y.insert(y.end(), (max_batch - n) * r, pad);
    at += n * r;
  }
  return y;
}

// Sinks of random finite logits in [-3, 3] for the layers that have sinks, set on the step; the
// others stay empty.
std::vector<std::vector<float>> random_sinks(const ModelDesc& m, DecodeStep& step,
                                             std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  std::vector<std::vector<float>> sinks(m.layers.size());
  for (uint32_t l = 0; l < m.layers.size(); ++l) {
    if (m.layers[l].sinks.empty()) continue;
    for (uint32_t h = 0; h < m.layers[l].q_heads; ++h) sinks[l].push_back(u(rng));
    step.set_sinks(l, sinks[l]);
  }
  return sinks;
}

// A timeline semaphore of the test's own, on the context's device.
VkSemaphore make_timeline(uint64_t initial = 0) {
  VkSemaphoreTypeCreateInfo type{VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO};
  type.semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE;
  type.initialValue = initial;
  VkSemaphoreCreateInfo info{VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO};
  info.pNext = &type;
  VkSemaphore s = VK_NULL_HANDLE;
  EXPECT_EQ(vkCreateSemaphore(impl_of(context()).device, &info, nullptr, &s), VK_SUCCESS);
  return s;
}

uint64_t counter(VkSemaphore s) {
  uint64_t value = 0;
  EXPECT_EQ(vkGetSemaphoreCounterValue(impl_of(context()).device, s, &value), VK_SUCCESS);
  return value;
}

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

// Every model of samples/configs (bf16 storage, head dims 64 to 256, windows, softcap, scale,
// sinks, multi-query): two sequences with prompts of 97 and 118 tokens take 50 steps each, in
// alternating row order, so gpt-oss's 128-token window layers release blocks during the steps;
// every layer's output matches the reference and nothing is re-recorded.
// The stems of samples/configs/*.json, sorted: one test each, so ctest spreads their pipeline
// compiles over the cores.
std::vector<std::string> config_names() {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(GQAVK_CONFIGS_DIR)) {
    if (e.path().extension() == ".json") names.push_back(e.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

class EveryConfig : public GpuTest, public ::testing::WithParamInterface<std::string> {};

TEST(EveryConfigList, HoldsTheTenModels) { EXPECT_EQ(config_names().size(), 10u); }

TEST_P(EveryConfig, FiftySteps) {
  const ModelDesc model =
      ModelDesc::load_hf_config(std::string(GQAVK_CONFIGS_DIR) + "/" + GetParam() + ".json");
  KvCache cache(context(), model.cache_desc(2, 256, 16));
  DecodeStepDesc sd;
  sd.max_batch = 2;
  DecodeStep step(context(), cache, model, sd);
  Harness h(model, cache, step, 11);
  const auto sinks = random_sinks(model, step, h.rng);
  h.open(0);
  h.open(1);
  h.prompt(0, 97);
  h.prompt(1, 118);
  for (uint32_t t = 0; t < 50; ++t) {
    const std::vector<uint32_t> seqs =
        t % 2 == 0 ? std::vector<uint32_t>{0, 1} : std::vector<uint32_t>{1, 0};
    // The reference is computed while the step runs.
    auto in = h.draw(seqs);
    const uint64_t ticket = step.submit(seqs, in.q, in.k, in.v);
    h.reference(in, sinks);
    std::vector<float> out(in.want.size());
    step.wait(ticket, out);
    ASSERT_LE(ref::max_abs_diff(out, in.want), 1e-5) << "step " << t;
  }
  EXPECT_EQ(step.recordings(), 1u);
  uint32_t windows_crossed = 0;
  for (uint32_t l = 0; l < model.layers.size(); ++l) {
    ASSERT_EQ(cache.length(0, l), 147u);
    ASSERT_EQ(cache.length(1, l), 168u);
    // A window shorter than the sequences released blocks (the step read past released ones).
    const uint32_t w = model.layers[l].window.value_or(0u);
    if (w != 0 && w + 16 < 147) {
      EXPECT_GT(cache.released_tokens(0, l), 0u) << "layer " << l;
      ++windows_crossed;
    }
  }
  EXPECT_EQ(windows_crossed, GetParam() == "gpt-oss-20b" ? 12u : 0u);  // its window layers
}

INSTANTIATE_TEST_SUITE_P(Configs, EveryConfig, ::testing::ValuesIn(config_names()),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           std::string name = param.param;
                           for (char& c : name) {
                             if (c == '-' || c == '.') c = '_';
                           }
                           return name;
                         });

// Device I/O from buffers at nonzero offsets (a prefix of other data before each), max_batch rows
// per layer block with the rows past n poisoned (NaN queries, K/V no f16 can hold): outputs match
// the reference, padding rows come out zero, and bytes outside the output block stay untouched.
// Switching host -> device -> host I/O re-records once each (recordings 1 -> 2 -> 3), steps in
// between record nothing, and host I/O is right again after switching back.
TEST_F(DecodeStepTest, DeviceIoWithOffsets) {
  const ModelDesc model = mixed_model();
  KvCache cache(context(), model.cache_desc(3, 32, 4));
  DecodeStepDesc sd;
  sd.max_batch = 3;
  sd.max_splits = 3;  // every layer split and merged: the padding rows go through the merges too
  DecodeStep step(context(), cache, model, sd);
  for (const auto& layer : impl_of(step).layers) ASSERT_TRUE(layer.merge);
  Harness h(model, cache, step, 21);
  const auto sinks = sinks_of(model);
  for (uint32_t s = 0; s < 3; ++s) h.open(s);
  h.prompt(0, 5);
  h.prompt(2, 9);
  const std::vector<uint32_t> seqs = {2, 0};  // 2 of max_batch 3 rows

  const auto host_step = [&](uint32_t t) {
    const auto in = h.make_step(seqs, sinks);
    std::vector<float> out(in.want.size());
    step.run(seqs, in.q, in.k, in.v, out);
    EXPECT_LE(ref::max_abs_diff(out, in.want), 1e-5) << "host step " << t;
  };
  host_step(0);
  EXPECT_EQ(step.recordings(), 1u);
  host_step(1);
  host_step(2);
  EXPECT_EQ(step.recordings(), 1u);

  const uint64_t q_at = 256, k_at = 12, v_at = 4, out_at = 12, tail = 64;
  const uint32_t B = sd.max_batch;
  DeviceBuffer qb(context(), q_at + step.q_values(B) * 4 + tail);
  DeviceBuffer kb(context(), k_at + step.k_values(B) * 4 + tail);
  DeviceBuffer vb(context(), v_at + step.v_values(B) * 4 + tail);
  DeviceBuffer ob(context(), out_at + step.out_values(B) * 4 + tail);
  StepDeviceIo io;
  io.q = {&qb, q_at};
  io.k = {&kb, k_at};
  io.v = {&vb, v_at};
  io.out = {&ob, out_at};
  step.set_device_io(io);
  EXPECT_EQ(step.recordings(), 1u);  // recorded at the next step, not here

  // A buffer's bytes: `at` bytes of other finite data (what a wrong offset would read), the values,
  // then a tail.
  std::mt19937 rng(5);
  const auto image = [&](const DeviceBuffer& b, uint64_t at, const std::vector<float>& x) {
    std::vector<float> all = exact_values(b.bytes() / 4, rng);
    std::memcpy(all.data() + at / 4, x.data(), x.size() * 4);
    return all;
  };
  const auto upload = [](DeviceBuffer& b, const std::vector<float>& all) {
    b.upload(std::as_bytes(std::span(all)));
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (uint32_t t = 0; t < 4; ++t) {
    const auto in = h.make_step(seqs, sinks);
    upload(qb, image(qb, q_at, to_device_rows(in.q, h.q_rows(), seqs.size(), B, nan)));
    upload(kb, image(kb, k_at, to_device_rows(in.k, h.k_rows(), seqs.size(), B, 1e6f)));
    upload(vb, image(vb, v_at, to_device_rows(in.v, h.v_rows(), seqs.size(), B, 1e6f)));
    const std::vector<float> before(ob.bytes() / 4, 42.0f);
    upload(ob, before);
    const uint64_t ticket = step.submit(seqs);
    step.wait(ticket);
    EXPECT_EQ(step.recordings(), 2u) << "device step " << t;
    std::vector<float> all(ob.bytes() / 4);
    ob.download(std::as_writable_bytes(std::span(all)));
    // The output block: n rows of each layer against the reference, the padding rows zero.
    std::vector<float> got;  // the n rows of each layer, host layout
    size_t at = out_at / 4;
    for (size_t row : h.out_rows()) {
      got.insert(got.end(), all.begin() + at, all.begin() + at + seqs.size() * row);
      for (size_t i = at + seqs.size() * row; i < at + B * row; ++i) {
        ASSERT_EQ(all[i], 0.0f) << "device step " << t << ": padding output value " << i;
      }
      at += B * row;
    }
    EXPECT_EQ(at, out_at / 4 + step.out_values(B));
    EXPECT_LE(ref::max_abs_diff(got, in.want), 1e-5) << "device step " << t;
    for (size_t i = 0; i < out_at / 4; ++i) EXPECT_EQ(all[i], 42.0f) << "before the output " << i;
    for (size_t i = at; i < all.size(); ++i) EXPECT_EQ(all[i], 42.0f) << "after the output " << i;
  }

  step.set_host_io();
  for (uint32_t t = 3; t < 6; ++t) host_step(t);
  EXPECT_EQ(step.recordings(), 3u);
  step.set_host_io();  // no change: no re-recording
  host_step(6);
  EXPECT_EQ(step.recordings(), 3u);
}

// The engine's timeline semaphores: the step waits for `wait` to reach its value before it runs
// (the host signals it late) and then signals `signal` with its value; results are right.
TEST_F(DecodeStepTest, EngineSemaphores) {
  const ModelDesc model = mixed_model();
  KvCache cache(context(), model.cache_desc(2, 32, 4));
  DecodeStepDesc sd;
  sd.max_batch = 2;
  const VkDevice device = impl_of(context()).device;
  const VkSemaphore before = make_timeline(), after = make_timeline();
  {
    DecodeStep step(context(), cache, model, sd);
    Harness h(model, cache, step, 31);
    const auto sinks = sinks_of(model);
    h.open(0);
    h.open(1);
    h.prompt(1, 7);
    const std::vector<uint32_t> seqs = {1, 0};
    uint64_t signalled = 0;
    for (uint64_t round = 1; round <= 2; ++round) {
      const auto in = h.make_step(seqs, sinks);
      StepSync sync;
      sync.wait = before;
      sync.wait_value = round;
      sync.signal = after;
      sync.signal_value = 4 * round + 1;
      const uint64_t ticket = step.submit(seqs, in.q, in.k, in.v, sync);
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      // EXPECT, not ASSERT: returning before the signal below would leave the queue blocked.
      EXPECT_EQ(counter(after), signalled)
          << "the step signalled before its wait semaphore was signalled (round " << round << ")";
      VkSemaphoreSignalInfo signal{VK_STRUCTURE_TYPE_SEMAPHORE_SIGNAL_INFO};
      signal.semaphore = before;
      signal.value = round;
      ASSERT_EQ(vkSignalSemaphore(device, &signal), VK_SUCCESS);
      std::vector<float> out(in.want.size());
      step.wait(ticket, out);
      EXPECT_LE(ref::max_abs_diff(out, in.want), 1e-5) << "round " << round;
      signalled = 4 * round + 1;
      EXPECT_EQ(counter(after), signalled);
    }
  }
  vkDestroySemaphore(device, before, nullptr);
  vkDestroySemaphore(device, after, nullptr);
}

// An engine's own command buffer: with one frame, step.record() once into a buffer from the
// test's pool; it is submitted by the test with its own timeline and replayed, never re-recorded,
// for three more steps over changing rows; every result is right. wait() on a step prepared but not
// yet reported submitted is refused.
TEST_F(DecodeStepTest, EngineCommandBuffer) {
  const ModelDesc model = mixed_model();
  KvCache cache(context(), model.cache_desc(2, 32, 4));
  DecodeStepDesc sd;
  sd.max_batch = 2;
  sd.frames = 1;
  sd.max_splits = 2;  // the replayed commands include merges
  ImplOf<Context>& ctx = impl_of(context());
  VkCommandPool pool = VK_NULL_HANDLE;
  VkCommandPoolCreateInfo pool_info{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pool_info.queueFamilyIndex = ctx.queue_family;
  ASSERT_EQ(vkCreateCommandPool(ctx.device, &pool_info, nullptr, &pool), VK_SUCCESS);
  VkCommandBuffer cmd = VK_NULL_HANDLE;
  VkCommandBufferAllocateInfo alloc{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  alloc.commandPool = pool;
  alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  alloc.commandBufferCount = 1;
  ASSERT_EQ(vkAllocateCommandBuffers(ctx.device, &alloc, &cmd), VK_SUCCESS);
  const VkSemaphore done = make_timeline();
  {
    DecodeStep step(context(), cache, model, sd);
    Harness h(model, cache, step, 41);
    const auto sinks = sinks_of(model);
    h.open(0);
    h.open(1);
    h.prompt(0, 6);
    const std::vector<std::vector<uint32_t>> rows = {{0, 1}, {1}, {1, 0}, {0}};
    for (uint64_t i = 0; i < rows.size(); ++i) {
      const auto in = h.make_step(rows[i], sinks);
      const uint64_t ticket = step.prepare(rows[i], in.q, in.k, in.v);
      EXPECT_EQ(ticket, i + 1);
      if (i == 0) {
        VkCommandBufferBeginInfo begin{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
        ASSERT_EQ(vkBeginCommandBuffer(cmd, &begin), VK_SUCCESS);
        step.record(cmd, 0);
        ASSERT_EQ(vkEndCommandBuffer(cmd), VK_SUCCESS);
        EXPECT_TRUE(throws_error([&] { step.wait(ticket); }, ErrorCode::invalid_argument,
                                 {"step 1", "never submitted"}));
      }
      VkTimelineSemaphoreSubmitInfo tl{VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO};
      tl.signalSemaphoreValueCount = 1;
      tl.pSignalSemaphoreValues = &ticket;
      VkSubmitInfo info{VK_STRUCTURE_TYPE_SUBMIT_INFO};
      info.pNext = &tl;
      info.commandBufferCount = 1;
      info.pCommandBuffers = &cmd;
      info.signalSemaphoreCount = 1;
      info.pSignalSemaphores = &done;
      ASSERT_EQ(vkQueueSubmit(ctx.queue, 1, &info, VK_NULL_HANDLE), VK_SUCCESS);
      step.submitted(ticket, done, ticket);
      std::vector<float> out(in.want.size());
      step.wait(ticket, out);
      EXPECT_EQ(counter(done), ticket);
      ASSERT_LE(ref::max_abs_diff(out, in.want), 1e-5) << "step " << ticket;
    }
    EXPECT_EQ(step.recordings(), 0u);  // the step's own command buffers were never used
  }
  vkDestroySemaphore(ctx.device, done, nullptr);
  vkDestroyCommandPool(ctx.device, pool, nullptr);
}

// Every refusal names the bad value: descriptors and model/cache mismatches at construction, bad
// rows and input sizes per step, tickets, sinks and device I/O. A refused step changes nothing (no
// lengths, no ticket). A pool out of blocks refuses the whole step (every layer's length, released
// tokens and the free count unchanged) until another sequence is freed; K/V values f16 cannot hold
// are reported after the step, which still happened.
TEST_F(DecodeStepTest, Errors) {
  const ErrorCode bad = ErrorCode::invalid_argument;
  const ModelDesc model = mixed_model();  // 4 layers, H 8, G 2, D 64, f16; windows 5 and 16
  KvCache cache(context(), model.cache_desc(3, 16, 4));
  const auto make = [&](const ModelDesc& m, uint32_t max_batch, uint32_t frames,
                        uint32_t max_splits) {
    return [&, m, max_batch, frames, max_splits] {
      DecodeStepDesc d;
      d.max_batch = max_batch;
      d.frames = frames;
      d.max_splits = max_splits;
      DecodeStep s(context(), cache, m, d);
    };
  };

  // The step's descriptor.
  EXPECT_TRUE(throws_error(make(model, 0, 2, 0), bad, {"max_batch 0", "3 sequence slots"}));
  EXPECT_TRUE(throws_error(make(model, 4, 2, 0), bad, {"max_batch 4", "3 sequence slots"}));
  EXPECT_TRUE(throws_error(make(model, 2, 0, 0), bad, {"frames 0", "1 to 16"}));
  EXPECT_TRUE(throws_error(make(model, 2, 17, 0), bad, {"frames 17", "1 to 16"}));
  EXPECT_TRUE(throws_error(make(model, 2, 2, 2000), bad, {"max_splits 2000", "1024"}));

  // The model against the cache.
  {
    ModelDesc m = model;
    m.layers.pop_back();
    EXPECT_TRUE(throws_error(make(m, 2, 2, 0), bad, {"3 layers", "KV cache has 4"}));
  }
  const auto mismatch = [&](uint32_t layer, auto change, std::initializer_list<std::string> parts) {
    ModelDesc m = model;
    change(m.layers[layer]);
    return throws_error(make(m, 2, 2, 0), bad, parts);
  };
  EXPECT_TRUE(
      mismatch(2, [](LayerDesc& l) { l.kv_heads = 4; }, {"layer 2", "kv_heads 4", "cache's 2"}));
  EXPECT_TRUE(mismatch(1, [](LayerDesc& l) { l.head_dim = 128; },
                       {"layer 1", "head_dim 128", "cache's 64"}));
  EXPECT_TRUE(mismatch(0, [](LayerDesc& l) { l.v_head_dim = 32; },
                       {"layer 0", "v_head_dim 32", "cache's 64"}));
  EXPECT_TRUE(mismatch(3, [](LayerDesc& l) { l.kv_dtype = DType::bf16; },
                       {"layer 3", "kv_dtype bf16", "cache's f16"}));
  // A cache window layer keeps too little for a full layer or a wider window.
  EXPECT_TRUE(
      mismatch(1, [](LayerDesc& l) { l.window.reset(); }, {"layer 1", "window of 5", "got none"}));
  EXPECT_TRUE(mismatch(1, [](LayerDesc& l) { l.window = 6; }, {"layer 1", "window of 5", "got 6"}));
  // The reverse is fine: a window layer of the model reads a full cache layer (which keeps more
  // than it needs) and its step matches the reference.
  {
    ModelDesc m = model;
    m.layers[2].window = 3;
    KvCache c(context(), model.cache_desc(1, 16, 4));
    DecodeStep s(context(), c, m);
    Harness h(m, c, s, 61);
    h.open(0);
    h.prompt(0, 8);
    const auto in = h.make_step({0}, sinks_of(m));
    std::vector<float> out(in.want.size());
    s.run(std::vector<uint32_t>{0}, in.q, in.k, in.v, out);
    EXPECT_LE(ref::max_abs_diff(out, in.want), 1e-5);
  }

  DecodeStepDesc sd;
  sd.max_batch = 2;
  DecodeStep step(context(), cache, model, sd);
  Harness h(model, cache, step, 51);
  const auto sinks = sinks_of(model);
  h.open(0);
  h.open(1);
  h.prompt(0, 3);
  h.prompt(1, 16);  // full
  cache.free_sequence(2);

  // The rows of a step. Inputs of the right size for n rows, so that only the rows are wrong.
  const auto submit = [&](std::vector<uint32_t> seqs) {
    return [&, seqs] {
      const uint32_t n = static_cast<uint32_t>(seqs.size());
      const std::vector<float> q(step.q_values(n)), k(step.k_values(n)), v(step.v_values(n));
      step.submit(seqs, q, k, v);
    };
  };
  EXPECT_TRUE(throws_error(submit({}), bad, {"seqs has 0 sequences", "max_batch 2"}));
  EXPECT_TRUE(throws_error(submit({0, 1, 2}), bad, {"seqs has 3 sequences", "max_batch 2"}));
  EXPECT_TRUE(throws_error(submit({0, 0}), bad, {"seqs[1] = 0", "twice"}));
  EXPECT_TRUE(throws_error(submit({0, 2}), bad, {"seqs[1] = 2", "not an open sequence"}));
  EXPECT_TRUE(throws_error(submit({7}), bad, {"seqs[0] = 7", "not an open sequence", "3 slots"}));
  EXPECT_TRUE(throws_error(submit({0, 1}), bad, {"seqs[1] = 1", "full", "16"}));
  {
    const uint32_t s = cache.add_sequence();  // 2, with 3 tokens in layer 0 only
    ASSERT_EQ(s, 2u);
    const std::vector<float> k(2 * 3 * 64, 0.25f), v(2 * 3 * 64, 0.5f);
    cache.write(s, 0, 3, k, v, 0);
    EXPECT_TRUE(throws_error(submit({0, 2}), bad, {"2 holds 3 tokens in layer 0", "0 in layer 1"}));
    cache.free_sequence(s);
  }

  // Input and output sizes, a non-finite query.
  {
    const std::vector<uint32_t> seqs = {0};
    const auto in = h.make_step(seqs, sinks);
    const auto shorter = [](std::vector<float> x) {
      x.pop_back();
      return x;
    };
    const auto size = [](const std::vector<float>& x) { return std::to_string(x.size()); };
    const std::vector<float> q = shorter(in.q), k = shorter(in.k), v = shorter(in.v);
    EXPECT_TRUE(throws_error([&] { step.submit(seqs, q, in.k, in.v); }, bad,
                             {"q has " + size(q) + " values", "expected " + size(in.q)}));
    EXPECT_TRUE(throws_error([&] { step.submit(seqs, in.q, k, in.v); }, bad,
                             {"k has " + size(k) + " values", "expected " + size(in.k)}));
    EXPECT_TRUE(throws_error([&] { step.submit(seqs, in.q, in.k, v); }, bad,
                             {"v has " + size(v) + " values", "expected " + size(in.v)}));
    std::vector<float> out(in.want.size() + 1);
    EXPECT_TRUE(throws_error(
        [&] { step.run(seqs, in.q, in.k, in.v, out); }, bad,
        {"out has room for " + size(out), "expected " + std::to_string(in.want.size())}));
    std::vector<float> nan_q = in.q;
    nan_q[5] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_TRUE(throws_error([&] { step.submit(seqs, nan_q, in.k, in.v); }, bad,
                             {"q[5] = nan", "not finite"}));
    // Nothing changed: the same step now runs as ticket 1 and matches the reference.
    for (uint32_t l = 0; l < 4; ++l) EXPECT_EQ(cache.length(0, l), 3u);
    out.pop_back();
    const uint64_t ticket = step.submit(seqs, in.q, in.k, in.v);
    EXPECT_EQ(ticket, 1u);
    step.wait(ticket, out);
    EXPECT_LE(ref::max_abs_diff(out, in.want), 1e-5);
  }

  // Tickets: two steps in flight, waited in reverse order (both outputs are kept), then the
  // tickets wait() refuses.
  {
    const std::vector<uint32_t> seqs = {0};
    const auto a = h.make_step(seqs, sinks);
    const uint64_t ta = step.submit(seqs, a.q, a.k, a.v);
    const auto b = h.make_step(seqs, sinks);
    const uint64_t tb = step.submit(seqs, b.q, b.k, b.v);
    ASSERT_EQ(ta, 2u);
    ASSERT_EQ(tb, 3u);
    std::vector<float> out(a.want.size());
    step.wait(tb, out);
    EXPECT_LE(ref::max_abs_diff(out, b.want), 1e-5);
    step.wait(ta, out);
    EXPECT_LE(ref::max_abs_diff(out, a.want), 1e-5);
    EXPECT_TRUE(throws_error([&] { step.wait(0); }, bad, {"ticket 0", "2 to 3"}));
    EXPECT_TRUE(throws_error([&] { step.wait(4); }, bad, {"ticket 4", "2 to 3"}));
    EXPECT_TRUE(throws_error([&] { step.wait(1); }, bad, {"ticket 1", "last 2 steps", "2 to 3"}));
    std::vector<float> wrong(out.size() - 1);
    EXPECT_TRUE(throws_error([&] { step.wait(tb, wrong); }, bad,
                             {"out has room for " + std::to_string(wrong.size())}));
  }

  // Sinks.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(throws_error([&] { step.set_sinks(1, std::vector<float>(8, 0.0f)); }, bad,
                           {"layer 1", "no sinks"}));
  EXPECT_TRUE(throws_error([&] { step.set_sinks(4, std::vector<float>(8, 0.0f)); }, bad,
                           {"layer 4", "out of range"}));
  EXPECT_TRUE(throws_error([&] { step.set_sinks(0, std::vector<float>(7, 0.0f)); }, bad,
                           {"sinks has 7 values", "(8)"}));
  EXPECT_TRUE(throws_error([&] { step.set_sinks(0, {}); }, bad, {"sinks is empty"}));
  EXPECT_TRUE(throws_error(
      [&] {
        step.set_sinks(3, std::vector<float>{0, 0, nan, 0, 0, 0, 0, 0});
      },
      bad, {"sinks[2] = nan", "not finite"}));

  // Device I/O.
  {
    const uint64_t k_bytes = step.k_values(2) * 4, out_bytes = step.out_values(2) * 4;
    DeviceBuffer qb(context(), step.q_values(2) * 4), kb(context(), k_bytes),
        small(context(), k_bytes - 4), vb(context(), step.v_values(2) * 4 + 8),
        ob(context(), out_bytes);
    const StepDeviceIo good{{&qb, 0}, {&kb, 0}, {&vb, 8}, {&ob, 0}};
    const auto set = [&](auto change) {
      return [&, change] {
        StepDeviceIo io = good;
        change(io);
        step.set_device_io(io);
      };
    };
    EXPECT_TRUE(throws_error(set([](StepDeviceIo& io) { io.q.buffer = nullptr; }), bad,
                             {"io.q.buffer is null"}));
    EXPECT_TRUE(throws_error(set([&](StepDeviceIo& io) { io.k.buffer = &small; }), bad,
                             {"io.k needs " + std::to_string(k_bytes) + " bytes from offset 0",
                              "holds " + std::to_string(k_bytes - 4)}));
    EXPECT_TRUE(throws_error(set([](StepDeviceIo& io) { io.v.offset = 6; }), bad,
                             {"io.v.offset 6", "multiple of 4"}));
    EXPECT_TRUE(throws_error(set([](StepDeviceIo& io) { io.out.offset = 4; }), bad,
                             {"io.out needs " + std::to_string(out_bytes) + " bytes from offset 4",
                              "holds " + std::to_string(out_bytes)}));
    EXPECT_EQ(step.recordings(), 1u);  // still host I/O: nothing to re-record
    step.set_device_io(good);
    const std::vector<uint32_t> seqs = {0};
    const auto in = h.make_step(seqs, sinks);
    std::vector<float> out(in.want.size());
    EXPECT_TRUE(throws_error([&] { step.run(seqs, in.q, in.k, in.v, out); }, bad,
                             {"run() takes host memory", "device I/O"}));
    EXPECT_TRUE(throws_error([&] { step.submit(seqs, in.q, in.k, in.v); }, bad,
                             {"q, k and v must be empty", "set_device_io"}));
    step.set_host_io();
    step.run(seqs, in.q, in.k, in.v, out);  // nothing changed: this step is still right
    EXPECT_LE(ref::max_abs_diff(out, in.want), 1e-5);
  }

  // K/V values an f16 cache cannot hold: reported by run() and by wait(), after the step.
  {
    const std::vector<uint32_t> seqs = {0};
    const uint32_t len = cache.length(0);
    auto in = h.make_step(seqs, sinks);
    in.k[2 * 2 * 64 + 5] = 1e6f;  // layer 2, KV head 0, value 5
    std::vector<float> out(in.want.size());
    EXPECT_TRUE(throws_error([&] { step.run(seqs, in.q, in.k, in.v, out); }, bad,
                             {"cannot be stored as f16"}));
    for (uint32_t l = 0; l < 4; ++l) EXPECT_EQ(cache.length(0, l), len + 1) << "layer " << l;
    in = h.make_step(seqs, sinks);
    in.v[64 + 3] = -1e6f;  // layer 0, KV head 1, value 3
    const uint64_t ticket = step.submit(seqs, in.q, in.k, in.v);
    EXPECT_TRUE(throws_error([&] { step.wait(ticket, out); }, bad,
                             {"step " + std::to_string(ticket), "cannot be stored as f16"}));
    for (uint32_t l = 0; l < 4; ++l) EXPECT_EQ(cache.length(0, l), len + 2) << "layer " << l;
    // Other sequences are unaffected.
    const uint32_t s = cache.add_sequence();
    h.open(s);
    h.prompt(s, 5);
    const auto ok = h.make_step({s}, sinks);
    step.run(std::vector<uint32_t>{s}, ok.q, ok.k, ok.v, out);
    EXPECT_LE(ref::max_abs_diff(out, ok.want), 1e-5);
  }
}

// A pool too small for the next step refuses all of it (out_of_blocks): no layer's length,
// released tokens or the pool's free count change, and the same step succeeds once another
// sequence is freed.
TEST_F(DecodeStepTest, ErrorsOutOfBlocks) {
  const ModelDesc model = mixed_model();
  KvCacheDesc cd = model.cache_desc(3, 16, 4);
  cd.pool_blocks = 16;  // the zero block, 12 for the prompts below, 3 free
  KvCache cache(context(), cd);
  DecodeStepDesc sd;
  sd.max_batch = 2;
  DecodeStep step(context(), cache, model, sd);
  Harness h(model, cache, step, 71);
  const auto sinks = sinks_of(model);
  h.open(0);
  h.open(1);
  h.prompt(0, 8);  // 2 blocks in each of 4 layers
  h.prompt(1, 4);  // 1 block in each layer, full
  ASSERT_EQ(cache.memory().blocks_free, 3u);

  const auto unchanged = [&] {
    for (uint32_t l = 0; l < 4; ++l) {
      EXPECT_EQ(cache.length(0, l), 8u) << "layer " << l;
      EXPECT_EQ(cache.length(1, l), 4u) << "layer " << l;
      EXPECT_EQ(cache.released_tokens(0, l), 0u) << "layer " << l;
    }
    EXPECT_EQ(cache.memory().blocks_free, 3u);
  };
  // Both rows: 8 new blocks, 1 freed by layer 1's window (5) moving past sequence 0's first block.
  {
    const auto in = h.make_step({0, 1}, sinks);
    std::vector<float> out(in.want.size());
    EXPECT_TRUE(throws_error(
        [&] {
          step.run(std::vector<uint32_t>{0, 1}, in.q, in.k, in.v, out);
        },
        ErrorCode::out_of_blocks, {"needs 8 free blocks", "4 free"}));
    unchanged();
  }
  // Sequence 1 alone: a block in each of 4 layers, 3 free.
  const std::vector<uint32_t> seqs = {1};
  const auto in = h.make_step(seqs, sinks);
  std::vector<float> out(in.want.size());
  EXPECT_TRUE(throws_error([&] { step.run(seqs, in.q, in.k, in.v, out); }, ErrorCode::out_of_blocks,
                           {"sequence 1", "needs 4 free blocks", "3 free"}));
  unchanged();
  EXPECT_TRUE(throws_error([&] { step.submit(seqs, in.q, in.k, in.v); }, ErrorCode::out_of_blocks,
                           {"needs 4 free blocks"}));
  unchanged();

  cache.free_sequence(0);
  h.close(0);
  EXPECT_EQ(cache.memory().blocks_free, 11u);
  const uint64_t ticket = step.submit(seqs, in.q, in.k, in.v);
  EXPECT_EQ(ticket, 1u);  // the refused steps took no ticket
  step.wait(ticket, out);
  EXPECT_LE(ref::max_abs_diff(out, in.want), 1e-5);
  for (uint32_t l = 0; l < 4; ++l) EXPECT_EQ(cache.length(1, l), 5u) << "layer " << l;
  EXPECT_EQ(cache.memory().blocks_free, 7u);
}

// Resident memory of this process in bytes (/proc/self/statm), 0 where it cannot be read. Under
// AddressSanitizer resident memory holds its quarantine of freed blocks (256 MiB by default) and
// shadow, so there it is the sanitizer allocator's count of live heap bytes instead.
#ifdef GQAVK_TEST_ASAN
constexpr const char* kMemoryMeasure = "live heap";
#else
constexpr const char* kMemoryMeasure = "resident memory";
#endif
uint64_t resident_bytes() {
#ifdef GQAVK_TEST_ASAN
  return __sanitizer_get_current_allocated_bytes();
#else
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  unsigned long pages = 0, resident = 0;
  const int n = std::fscanf(f, "%lu %lu", &pages, &resident);
  std::fclose(f);
  return n == 2 ? uint64_t{resident} * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)) : 0;
#endif
}

// The soak: GQAVK_SOAK_STEPS decode steps (1000 in the default suite; the ctest label `soak` runs
// 100,000) over a batch whose sequences start with prompts, fork, grow, finish and are truncated at
// random, in a model with a full and a window layer. Every 50th step is checked against the
// reference; resident memory may not grow past the first tenth of the run by more than 16 MiB, no
// device memory is allocated after it, and once every sequence is freed no block of the pool is
// left in use.
TEST_F(DecodeStepTest, SoakRandomBatches) {
  const char* env = std::getenv("GQAVK_SOAK_STEPS");
  const uint32_t steps = env ? static_cast<uint32_t>(std::strtoul(env, nullptr, 10)) : 1000;
  ASSERT_GT(steps, 0u) << "GQAVK_SOAK_STEPS='" << (env ? env : "") << "'";
  ModelDesc m;
  m.name = "soak";
  m.layers.resize(2);
  for (LayerDesc& l : m.layers) {
    l.q_heads = 4;
    l.kv_heads = 2;
    l.head_dim = 64;
    l.kv_dtype = DType::f16;
  }
  m.layers[1].window = 48;
  constexpr uint32_t kSlots = 6, kCap = 160, kMaxBatch = 4;
  KvCache cache(context(), m.cache_desc(kSlots, kCap, 16));
  DecodeStepDesc sd;
  sd.max_batch = kMaxBatch;
  DecodeStep step(context(), cache, m, sd);
  Harness h(m, cache, step, 2024);
  std::mt19937& rng = h.rng;
  const std::vector<std::vector<float>> no_sinks(m.layers.size());
  for (uint32_t s = 0; s < kSlots; ++s) cache.free_sequence(s);  // slots start open: close them
  std::vector<uint32_t> open;
  const auto pick = [&] { return open[rng() % open.size()]; };
  const auto close = [&](uint32_t s) {
    cache.free_sequence(s);
    h.close(s);
    open.erase(std::find(open.begin(), open.end(), s));
  };
  uint64_t rss_early = 0, checked = 0, allocations_early = 0;
  for (uint32_t t = 0; t < steps; ++t) {
    const uint32_t r = static_cast<uint32_t>(rng() % 100);
    if (open.empty() || (r < 8 && open.size() < kSlots)) {
      const uint32_t s = cache.add_sequence();
      h.open(s);
      h.prompt(s, static_cast<uint32_t>(1 + rng() % 40));
      open.push_back(s);
    } else if (r < 12 && open.size() < kSlots) {
      const uint32_t parent = pick();
      const uint32_t child = cache.fork_sequence(parent);
      h.k[child] = h.k[parent];
      h.v[child] = h.v[parent];
      open.push_back(child);
    } else if (r < 16 && open.size() > 1) {
      close(pick());
    } else if (r < 18) {
      // Truncation keeps a prefix in every layer; a window layer that released tokens needs a
      // query at the new end to see only what it still holds (released + W - 1 tokens or more).
      const uint32_t s = pick();
      const uint32_t keep = static_cast<uint32_t>(1 + rng() % cache.length(s, 0));
      bool allowed = true;
      for (uint32_t l = 0; l < m.layers.size(); ++l) {
        const uint32_t released = cache.released_tokens(s, l);
        if (released > 0) allowed &= keep >= released + *m.layers[l].window - 1;
      }
      if (allowed) cache.truncate(s, keep);
    }
    for (size_t i = open.size(); i-- > 0;) {
      if (cache.length(open[i], 0) + 1 >= kCap) close(open[i]);
    }
    if (open.empty()) continue;
    std::vector<uint32_t> seqs = open;
    std::shuffle(seqs.begin(), seqs.end(), rng);
    seqs.resize(std::min<size_t>(seqs.size(), 1 + rng() % kMaxBatch));
    Harness::Inputs in = h.draw(seqs);
    std::vector<float> out(step.out_values(static_cast<uint32_t>(seqs.size())));
    step.run(seqs, in.q, in.k, in.v, out);
    if (t % 50 == 0) {
      h.reference(in, no_sinks);
      ASSERT_LE(ref::max_abs_diff(out, in.want), 1e-5) << "step " << t;
      ++checked;
    }
    if (t == steps / 10) {
      rss_early = resident_bytes();
      allocations_early = fault::calls(fault::Site::memory);
    }
  }
  const uint64_t rss_end = resident_bytes();
  const uint64_t allocations = fault::calls(fault::Site::memory) - allocations_early;
  EXPECT_EQ(allocations, 0u) << "device memory allocations after step " << steps / 10;
  for (uint32_t s : std::vector<uint32_t>(open)) close(s);
  EXPECT_EQ(cache.memory().blocks_in_use, 0u) << "blocks leaked after every sequence was freed";
  EXPECT_EQ(step.recordings(), 1u);
  EXPECT_LE(rss_end, rss_early + (16u << 20))
      << kMemoryMeasure << " grew from " << rss_early << " to " << rss_end << " bytes";
  std::printf(
      "soak: %u steps, %llu checked against the reference, %s %.1f MiB at step %u "
      "and %.1f MiB at the end, %llu device memory allocations after it\n",
      steps, static_cast<unsigned long long>(checked), kMemoryMeasure,
      static_cast<double>(rss_early) / 1048576.0, steps / 10,
      static_cast<double>(rss_end) / 1048576.0, static_cast<unsigned long long>(allocations));
}

}  // namespace
}  // namespace gqavk::test
