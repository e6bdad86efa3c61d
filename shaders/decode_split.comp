#version 450
// Decode attention: one query token per sequence against its cached keys.
// One workgroup = one (sequence b, KV head g, chunk of HEADS query heads, KV split). It reads each
// K and V element of its split once and uses it for all HEADS query heads, which live in registers.
//
// The workgroup is a single subgroup of LANES invocations (or, without usable subgroup operations,
// LANES invocations exchanging through shared memory). A tile of TILE = LANES * KEYS_PER_LANE keys:
//  1. scores: each lane takes whole keys (KEYS_PER_LANE of them) and computes q.k for every head
//     over the full head dim, so no cross-lane reduction is paid per key;
//  2. online softmax: one group max per head per tile, then p = exp(s - m) in the same lanes;
//  3. values, one of two ways (VALUES_BY_KEY, a tuning choice):
//     - false (GPUs): each lane owns CHUNKS texels of the output row and accumulates p * v over
//       every key of the tile, taking p and the key's V address from the lane that scored it;
//     - true (CPU drivers): each lane keeps its own accumulator for the whole output row and adds
//       its own keys' p * v, with no exchange per key; the lanes' rows are summed once at the end.
//       Lavapipe spills such rows to cache cheaply but pays a loop for every subgroup broadcast.
// The tile loops are unrolled (their bounds are specialization constants): lavapipe keeps arrays in
// registers only at constant indices, and turns dynamic shared/storage loads into per-lane loops.
// Texel fetches are issued in batches ahead of the math that uses them: more loads in flight on any
// device, and on lavapipe, whose texel fetch is a call that clobbers every vector register, no
// accumulator stays live across a fetch.
#extension GL_EXT_control_flow_attributes : require
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#if GQAVK_SUBGROUP_OPS
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_ballot : require
#endif

#define GQAVK_KV_WORDS 1
#include "kv_load.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint HEAD_DIM = 128;
layout(constant_id = 2) const uint HEADS = 4;  // query heads per workgroup
layout(constant_id = 3) const uint KV_TYPE = 1;  // storage type: kv_block.h
layout(constant_id = 4) const uint KEYS_PER_LANE = 8;
layout(constant_id = 5) const uint BLOCK_SHIFT = 4;  // log2 of tokens per cache block
layout(constant_id = 6) const bool DIRECT_OUT = false;  // one split: write the final output
#if GQAVK_SUBGROUP_OPS
layout(constant_id = 7) const bool VALUES_BY_KEY = false;  // phase 3 layout, see above
#else
const bool VALUES_BY_KEY = false;  // its lanes' rows are summed with subgroup operations
#endif

#include "kv_codec.glsl"

const uint LANES = gl_WorkGroupSize.x;
const uint VALS = KV_VALS;      // values per texel
const uint HALVES = KV_PARTS;   // vec4s per texel
layout(constant_id = 11) const uint DV = 128;  // V and output head dim (HEAD_DIM is Q and K's)
const uint ROW_K = HEAD_DIM / VALS;  // texels per K row
const uint ROW_V = DV / VALS;        // texels per V row
const uint QK = HEAD_DIM / 4;        // vec4s per query row
const uint QV = DV / 4;              // vec4s per output row
const uint SW_K = KV_SCALE_WORDS(KV_TYPE, HEAD_DIM);  // scale words per K row
const uint SW_V = KV_SCALE_WORDS(KV_TYPE, DV);        // and per V row
const uint TILE = LANES * KEYS_PER_LANE;
const uint CHUNKS = (ROW_V + LANES - 1) / LANES;  // V texels per lane when lanes own texels
const uint ACC = VALUES_BY_KEY ? QV : CHUNKS * HALVES;  // vec4 accumulators per head
layout(constant_id = 9) const uint GROUP_SHIFT = 3;  // log2 of the cache's token group
const uint BATCH = ROW_K < 8u ? ROW_K : 8u;  // texel fetches issued together (q4 rows are 2-8)

#include "decode_io.glsl"

#if GQAVK_SUBGROUP_OPS
float group_max(float x) { return subgroupMax(x); }
float group_sum(float x) { return subgroupAdd(x); }
#else
shared float red_sh[LANES];
shared float p_sh[TILE * HEADS];
shared uint v_at_sh[TILE];
shared uint v_sw_sh[TILE];
float group_reduce(float x, bool is_max) {
  barrier();
  red_sh[gl_LocalInvocationID.x] = x;
  barrier();
  float r = red_sh[0];
  for (uint i = 1; i < LANES; ++i) r = is_max ? max(r, red_sh[i]) : r + red_sh[i];
  return r;
}
float group_max(float x) { return group_reduce(x, true); }
float group_sum(float x) { return group_reduce(x, false); }
#endif

void main() {
  const uint lane = gl_LocalInvocationID.x;
  const uint split = gl_WorkGroupID.x;
  const uint g = gl_WorkGroupID.y / pc.head_chunks;
  const uint first_head = g * pc.group_size + (gl_WorkGroupID.y % pc.head_chunks) * HEADS;
  const uint last_head = (g + 1) * pc.group_size;  // exclusive
  const uint b = gl_WorkGroupID.z;

  uint k_begin, k_end;
  split_keys(b, split, k_begin, k_end);

  // The group's query rows, pre-scaled; heads past the group are zero and never written.
  vec4 q[HEADS * QK];
  [[unroll]] for (uint h = 0; h < HEADS; ++h) {
    const uint head = min(first_head + h, pc.q_heads - 1);
    const float w = first_head + h < last_head ? pc.scale : 0.0;
    [[unroll]] for (uint i = 0; i < QK; ++i) q[h * QK + i] = q_in[(b * pc.q_heads + head) * QK + i] * w;
  }


  float m_run[HEADS];
  float l_run[HEADS];  // this lane's share of the softmax denominator
  vec4 acc[HEADS * ACC];
  [[unroll]] for (uint h = 0; h < HEADS; ++h) {
    m_run[h] = M_START;
    l_run[h] = 0.0;
  }
  [[unroll]] for (uint i = 0; i < HEADS * ACC; ++i) acc[i] = vec4(0.0);

  for (uint tile = k_begin; tile < k_end; tile += TILE) {
    // 1. Scores for this lane's keys. Keys past k_end read the last valid row and are masked.
    // K and V are stored in groups of KG = min(8, P) tokens, texel-column-major within a group
    // (texel c of slot t at ((t / KG) * ROW_K + c) * KG + t % KG): lanes holding consecutive keys
    // read consecutive texels, and a lane-vector's walk over c streams through memory.
    float s[KEYS_PER_LANE * HEADS];
    uint k_at[KEYS_PER_LANE];  // texel 0 of this lane's key r in the K slab
    uint v_at[KEYS_PER_LANE];  // and in the V slab
    uint k_sw[KEYS_PER_LANE], v_sw[KEYS_PER_LANE];  // first scale words (q8, q4)
    [[unroll]] for (uint r = 0; r < KEYS_PER_LANE; ++r) {
      k_at[r] = kv_key_scales_at(b, g, min(tile + r * LANES + lane, k_end - 1), v_at[r], k_sw[r], v_sw[r]);
      [[unroll]] for (uint h = 0; h < HEADS; ++h) s[r * HEADS + h] = 0.0;
    }
    [[unroll]] for (uint r = 0; r < KEYS_PER_LANE; ++r) {
      // q8 scales the row's dot product once, q4 each texel's partial one.
      uvec4 ks = uvec4(0u);
      if (SW_K > 0u) ks = kv_texel(k_sw[r] >> 2u);
      [[unroll]] for (uint c0 = 0; c0 < ROW_K; c0 += BATCH) {
        uvec4 t[BATCH];
        [[unroll]] for (uint i = 0; i < BATCH; ++i) {
          if (c0 + i < ROW_K) t[i] = kv_texel(k_at[r] + ((c0 + i) << GROUP_SHIFT));
        }
        [[unroll]] for (uint i = 0; i < BATCH; ++i) {
          const uint c = c0 + i;
          if (c >= ROW_K) break;
          vec4 part[HALVES];
          [[unroll]] for (uint e = 0; e < HALVES; ++e) part[e] = kv_part(t[i], e);
          const float sc = KV_Q4 ? kv_scale(ks, k_sw[r], c) : 1.0;
          [[unroll]] for (uint h = 0; h < HEADS; ++h) {
            float d = 0.0;
            [[unroll]] for (uint e = 0; e < HALVES; ++e) d += dot(q[h * QK + c * HALVES + e], part[e]);
            s[r * HEADS + h] += KV_Q4 ? d * sc : d;
          }
        }
      }
      if (KV_Q8) {
        const float sc = kv_scale(ks, k_sw[r], 0u);
        [[unroll]] for (uint h = 0; h < HEADS; ++h) s[r * HEADS + h] *= sc;
      }
    }
    if (pc.softcap > 0.0) {
      [[unroll]] for (uint i = 0; i < KEYS_PER_LANE * HEADS; ++i) s[i] = apply_softcap(s[i], pc.softcap);
    }

    // 2. Online softmax: s becomes p = exp(s - m) against the running max of the workgroup.
    float alpha[HEADS];
    bool rescale = false;  // uniform: false once the running maxima settle
    [[unroll]] for (uint h = 0; h < HEADS; ++h) {
      float mx = M_START;
      [[unroll]] for (uint r = 0; r < KEYS_PER_LANE; ++r) {
        if (tile + r * LANES + lane < k_end) mx = max(mx, s[r * HEADS + h]);
      }
      const float m_new = max(m_run[h], group_max(mx));  // finite: key `tile` is valid
      alpha[h] = exp(m_run[h] - m_new);
      rescale = rescale || m_new != m_run[h];
      float sum = 0.0;
      [[unroll]] for (uint r = 0; r < KEYS_PER_LANE; ++r) {
        const bool valid = tile + r * LANES + lane < k_end;
        const float p = valid ? exp(s[r * HEADS + h] - m_new) : 0.0;
        s[r * HEADS + h] = p;
        sum += p;
      }
      l_run[h] = l_run[h] * alpha[h] + sum;
      m_run[h] = m_new;
    }
    // Lanes owning texels rescale here, skipped on GPUs once the maxima settle. The by-key phase
    // folds alpha into its one update per accumulator instead: lavapipe runs both sides of a
    // branch it cannot prove uniform, so a separate pass would cost a masked read-modify-write
    // of the whole row every tile (alpha is exactly 1 where the max did not move).
    if (rescale && !VALUES_BY_KEY) {
      [[unroll]] for (uint i = 0; i < HEADS * ACC; ++i) acc[i] *= alpha[i / ACC];
    }

    // 3. Values: acc += sum over the tile's keys of p * v. A q8 row's scale folds into p here, a
    // q4 texel's below (p of every key is already in l_run).
    uvec4 vs[KEYS_PER_LANE];
    [[unroll]] for (uint r = 0; r < KEYS_PER_LANE; ++r) {
      vs[r] = uvec4(0u);
      if (SW_V > 0u) vs[r] = kv_texel(v_sw[r] >> 2u);
      if (KV_Q8) {
        const float sc = kv_scale(vs[r], v_sw[r], 0u);
        [[unroll]] for (uint h = 0; h < HEADS; ++h) s[r * HEADS + h] *= sc;
      }
    }
    if (VALUES_BY_KEY) {
      // Per texel column c: fetch it for this lane's keys, then add p * v into the row, one half of
      // the texel at a time (HEADS vec4 partial sums), rescaling the row by alpha as it goes.
      [[unroll]] for (uint c = 0; c < ROW_V; ++c) {
        uvec4 t[KEYS_PER_LANE];
        [[unroll]] for (uint r = 0; r < KEYS_PER_LANE; ++r) t[r] = kv_texel(v_at[r] + (c << GROUP_SHIFT));
        float pc_[KV_Q4 ? KEYS_PER_LANE * HEADS : 1];  // q4: p times this texel's scale
        if (KV_Q4) {
          [[unroll]] for (uint r = 0; r < KEYS_PER_LANE; ++r) {
            const float sc = kv_scale(vs[r], v_sw[r], c);
            [[unroll]] for (uint h = 0; h < HEADS; ++h) pc_[r * HEADS + h] = s[r * HEADS + h] * sc;
          }
        }
        [[unroll]] for (uint half_ = 0; half_ < HALVES; ++half_) {
          vec4 part[HEADS];
          [[unroll]] for (uint h = 0; h < HEADS; ++h) part[h] = vec4(0.0);
          [[unroll]] for (uint r = 0; r < KEYS_PER_LANE; ++r) {
            const vec4 v = kv_part(t[r], half_);
            [[unroll]] for (uint h = 0; h < HEADS; ++h) {
              part[h] += (KV_Q4 ? pc_[r * HEADS + h] : s[r * HEADS + h]) * v;
            }
          }
          [[unroll]] for (uint h = 0; h < HEADS; ++h) {
            const uint i = h * ACC + c * HALVES + half_;
            acc[i] = acc[i] * alpha[h] + part[h];
          }
        }
      }
    } else {
#if !GQAVK_SUBGROUP_OPS
      [[unroll]] for (uint r = 0; r < KEYS_PER_LANE; ++r) {
        v_at_sh[r * LANES + lane] = v_at[r];
        v_sw_sh[r * LANES + lane] = v_sw[r];
        [[unroll]] for (uint h = 0; h < HEADS; ++h) p_sh[(r * LANES + lane) * HEADS + h] = s[r * HEADS + h];
      }
      barrier();
#endif
      [[unroll]] for (uint i = 0; i < TILE; ++i) {
#if GQAVK_SUBGROUP_OPS
        const uint owner = i % LANES;
        const uint at = subgroupBroadcast(v_at[i / LANES], owner);
        const uint sw = KV_Q4 ? subgroupBroadcast(v_sw[i / LANES], owner) : 0u;
#else
        const uint at = v_at_sh[i];
        const uint sw = KV_Q4 ? v_sw_sh[i] : 0u;
#endif
        float p[HEADS];
        [[unroll]] for (uint h = 0; h < HEADS; ++h) {
#if GQAVK_SUBGROUP_OPS
          p[h] = subgroupBroadcast(s[(i / LANES) * HEADS + h], owner);
#else
          p[h] = p_sh[i * HEADS + h];
#endif
        }
        [[unroll]] for (uint u = 0; u < CHUNKS; ++u) {
          const uint c = min(lane + u * LANES, ROW_V - 1);
          const uvec4 t = kv_texel(at + (c << GROUP_SHIFT));
          const float sc = KV_Q4 ? kv_scale_of_word(kv_word(sw + (c >> 1u)), c) : 1.0;
          [[unroll]] for (uint e = 0; e < HALVES; ++e) {
            const vec4 v = kv_part(t, e);
            [[unroll]] for (uint h = 0; h < HEADS; ++h) acc[h * ACC + u * HALVES + e] += (p[h] * sc) * v;
          }
        }
      }
#if !GQAVK_SUBGROUP_OPS
      barrier();
#endif
    }
  }

  // Each split's output is normalised by its own sum; merge_splits.comp weighs splits by (m, l)
  // and adds the sinks. Every lane shares the workgroup's running max, so lanes' sums and rows add
  // directly.
  [[unroll]] for (uint h = 0; h < HEADS; ++h) {
    const uint head = first_head + h;
    if (head >= last_head) continue;
    const uint row = b * pc.q_heads + head;
    const float l = group_sum(l_run[h]);
    const float inv = out_factor(head, m_run[h], l);
    const uint part = DIRECT_OUT ? row : row * pc.splits + split;
    if (VALUES_BY_KEY) {
#if GQAVK_SUBGROUP_OPS
      // One subgroup sum per vec4 of the row, written by one lane each.
      [[unroll]] for (uint i = 0; i < QV; ++i) {
        const vec4 o = subgroupAdd(acc[h * ACC + i]) * inv;
        if (lane == i % LANES) o_out[part * QV + i] = o;
      }
#endif
    } else {
      [[unroll]] for (uint u = 0; u < CHUNKS; ++u) {
        const uint c = lane + u * LANES;
        if (c < ROW_V) {
          [[unroll]] for (uint e = 0; e < HALVES; ++e) {
            o_out[part * QV + c * HALVES + e] = acc[h * ACC + u * HALVES + e] * inv;
          }
        }
      }
    }
    if (!DIRECT_OUT && lane == 0) ml_out[part] = vec2(m_run[h], l);
  }
}
