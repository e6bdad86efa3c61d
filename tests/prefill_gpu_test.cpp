// The prefill kernel's GPU tier (shaders/prefill_gpu.comp) on lavapipe against the float64
// reference. Until PrefillPlan lands, the kernel is dispatched directly from its tuning.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "commands.hpp"
#include "context_impl.hpp"
#include "kv_cache_impl.hpp"
#include "prefill_gpu_tuning.hpp"
#include "reference.hpp"
#include "test_support.hpp"

namespace gqavk::test {
namespace {

struct Params {  // Params of shaders/prefill_io.glsl
  uint32_t q_heads, kv_heads, group_size, head_chunks, blocks_per_seq, capacity;
  float scale, softcap;
  uint32_t window, causal, has_sinks, pad;
};
static_assert(sizeof(Params) == 48);

struct Opts {
  bool causal = true;
  uint32_t window = 0;
  float softcap = 0;
  std::vector<float> sinks;
};

std::vector<float> run_direct(Context& ctx, const KvCache& cache, uint32_t q_heads,
                              std::span<const float> q, std::span<const PrefillSeq> seqs,
                              const Opts& o, const TuningOverrides& ov = overrides_from_env()) {
  Context::Impl& c = ctx.impl();
  const KvCache::Impl& kv = cache.impl();
  PrefillKernelShape shape{q_heads,       kv.desc.kv_heads, kv.desc.head_dim, kv.desc.v_head_dim,
                           kv.desc.dtype, kv.pool.bytes(),  kv.block_shift,   kv.group_shift};
  const PrefillGpuTuning t = choose_prefill_gpu_tuning(c.info, shape, ov);
  auto pipe = c.shared_pipeline(prefill_gpu_pipeline_desc(shape, t));
  std::vector<uint32_t> entries, tiles;
  uint32_t rows = 0;
  for (uint32_t e = 0; e < seqs.size(); ++e) {
    entries.insert(entries.end(), {seqs[e].seq, seqs[e].queries, seqs[e].kv_length, rows});
    rows += q_heads * seqs[e].queries;
    for (uint32_t f = 0; f < seqs[e].queries; f += t.tile_queries)
      tiles.insert(tiles.end(), {e, f});
  }
  const uint32_t dk = kv.desc.head_dim, dv = kv.desc.v_head_dim;
  Buffer eb = c.make_buffer(BufferKind::device_local, entries.size() * 4, "entries");
  Buffer tb = c.make_buffer(BufferKind::device_local, tiles.size() * 4, "tiles");
  Buffer qb = c.make_buffer(BufferKind::device_local, q.size_bytes(), "q");
  Buffer ob = c.make_buffer(BufferKind::device_local, uint64_t{rows} * dv * 4, "out");
  std::vector<float> sinks = o.sinks.empty() ? std::vector<float>(1, 0.0f) : o.sinks;
  Buffer sb = c.make_buffer(BufferKind::device_local, sinks.size() * 4, "sinks");
  c.upload(eb, 0, entries.data(), entries.size() * 4);
  c.upload(tb, 0, tiles.data(), tiles.size() * 4);
  c.upload(qb, 0, q.data(), q.size_bytes());
  c.upload(sb, 0, sinks.data(), sinks.size() * 4);
  Binding pool;
  if (uses_texel_view(t.load_path)) {
    pool.texel_view = kv.texel_view->handle();
  } else {
    pool.buffer = kv.pool.handle();
  }
  DescriptorSet set(c.device, *pipe,
                    {pool,
                     {kv.block_table.handle()},
                     {eb.handle()},
                     {tb.handle()},
                     {qb.handle()},
                     {ob.handle()},
                     {sb.handle()}});
  const Params p{q_heads,
                 kv.desc.kv_heads,
                 q_heads / kv.desc.kv_heads,
                 t.head_chunks,
                 kv.blocks_per_seq,
                 kv.desc.capacity_tokens,
                 1.0f / std::sqrt(static_cast<float>(dk)),
                 o.softcap,
                 o.window,
                 o.causal ? 1u : 0u,
                 o.sinks.empty() ? 0u : 1u,
                 0};
  c.submit([&](VkCommandBuffer cmd) {
    memory_barrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                   VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_READ_BIT);
    record_dispatch(cmd, *pipe, set.handle(), push_bytes(p),
                    static_cast<uint32_t>(tiles.size() / 2), kv.desc.kv_heads * t.head_chunks);
  });
  std::vector<float> out(uint64_t{rows} * dv);
  c.download(ob, 0, out.data(), out.size() * 4);
  return out;
}

struct Case {
  const char* name;
  uint32_t q_heads, kv_heads, dk, dv;
  DType dtype;
  Opts opts;
  std::vector<PrefillSeq> seqs;
};

class PrefillGpu : public GpuTest, public ::testing::WithParamInterface<Case> {};

TEST_P(PrefillGpu, MatchesReference) {
  const Case& cs = GetParam();
  Context& ctx = context();
  uint32_t batch = 0, cap = 0;
  for (const PrefillSeq& s : cs.seqs) {
    batch = std::max(batch, s.seq + 1);
    cap = std::max(cap, s.kv_length);
  }
  KvCacheDesc desc{batch, cs.kv_heads, cs.dk, cap, cs.dtype, 16, cs.dv};
  KvCache cache(ctx, desc);
  const KvHost kv = random_kv(desc, 7);
  write_all(cache, kv);
  size_t nq = 0;
  for (const PrefillSeq& s : cs.seqs) nq += size_t{cs.q_heads} * s.queries * cs.dk;
  const std::vector<float> q = random_values(nq, 3, -2.0f, 2.0f);
  const std::vector<float> out = run_direct(ctx, cache, cs.q_heads, q, cs.seqs, cs.opts);
  size_t qa = 0, oa = 0;
  for (const PrefillSeq& s : cs.seqs) {
    ref::Options ro;
    ro.causal = cs.opts.causal;
    ro.window = cs.opts.window;
    ro.softcap = cs.opts.softcap;
    ro.scale = double{1.0f / std::sqrt(static_cast<float>(cs.dk))};
    ro.sinks = cs.opts.sinks;
    const size_t qn = size_t{cs.q_heads} * s.queries * cs.dk;
    const size_t on = size_t{cs.q_heads} * s.queries * cs.dv;
    const std::vector<double> want =
        ref::attention(std::span(q).subspan(qa, qn), kv.k_of(s.seq), kv.v_of(s.seq), cs.q_heads,
                       cs.kv_heads, s.queries, s.kv_length, cs.dk, cs.dv, cap, ro);
    EXPECT_TRUE(
        all_close(std::span(out).subspan(oa, on), want, cs.q_heads * s.queries, cs.dv, 1e-5))
        << "seq " << s.seq << " Lq " << s.queries << " Lk " << s.kv_length;
    qa += qn;
    oa += on;
  }
}

std::vector<float> sinks(uint32_t h) {
  std::vector<float> s(h);
  for (uint32_t i = 0; i < h; ++i) s[i] = -1.0f + 0.5f * static_cast<float>(i % 5);
  return s;
}

Case make(const char* name, uint32_t h, uint32_t g, uint32_t dk, uint32_t dv, DType dtype,
          std::vector<PrefillSeq> seqs, bool causal = true, uint32_t window = 0, float softcap = 0,
          bool with_sinks = false) {
  Case c{name, h, g, dk, dv, dtype, {}, std::move(seqs)};
  c.opts.causal = causal;
  c.opts.window = window;
  c.opts.softcap = softcap;
  if (with_sinks) c.opts.sinks = sinks(h);
  return c;
}

std::vector<Case> every_width_cases() {
  return {make("causal", 8, 2, 128, 128, DType::f16, {{0, 37, 37}, {1, 5, 50}}),
          make("noncausal", 4, 4, 64, 64, DType::f32, {{0, 20, 9}, {1, 3, 33}}, false),
          make("window_softcap", 8, 2, 96, 96, DType::f32, {{0, 30, 41}}, true, 7, 5.0f),
          make("sinks", 8, 2, 128, 128, DType::f16, {{0, 19, 40}}, true, 0, 0, true),
          make("mla", 4, 2, 192, 128, DType::f16, {{0, 9, 25}}),
          make("falcon", 71, 1, 64, 64, DType::f16, {{0, 6, 21}})};
}

INSTANTIATE_TEST_SUITE_P(EveryWidth, PrefillGpu, ::testing::ValuesIn(every_width_cases()),
                         [](const ::testing::TestParamInfo<Case>& p) {
                           return std::string(p.param.name);
                         });

}  // namespace
}  // namespace gqavk::test
