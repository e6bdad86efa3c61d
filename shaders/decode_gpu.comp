#version 450
// Decode attention, GPU tier: one query token per sequence against its cached keys.
// One workgroup = one (sequence b, KV head g, chunk of HEADS query heads, KV split), as in the
// CPU tier (decode_split.comp), with the work shaped for GPUs instead:
//  - the head dim is spread across lanes: T lanes share a key, each holding 4 of its values (16
//    bytes of q and of the output accumulator per head, CK slices of q and K and CV of V and the
//    output when the rows are wider than T * 4), so a lane keeps a few registers per query head,
//    never a whole row;
//  - a subgroup of SG lanes works on KPS = SG / T keys at once, KEYS each per step, and every K and
//    V load serves all HEADS query heads of the group;
//  - a score is summed across its T lanes by a shuffle-xor butterfly; the running max per head is
//    one subgroupMax per step and uniform across the subgroup, so the key groups' sums and rows
//    add without rescaling when the subgroup merges them at the end;
//  - a workgroup holds NSG = WG / SG subgroups: NH of them take different query heads of the
//    group over the same keys (their K/V loads after the first are served by the cache), and
//    NSGK = NSG / NH take different keys and merge their softmax states through shared memory.
// Lane roles come from gl_SubgroupID and gl_SubgroupInvocationID, so the kernel is right however
// the driver packs subgroups, as long as each runs SG lanes (the tuning requires that size, or
// uses one subgroup per workgroup where the context's probe measured SG). Without subgroup
// operations (GQAVK_SUBGROUP_OPS 0) the workgroup is one "subgroup" exchanging through shared
// memory. The lane of slot s of a subgroup and part p of its key is p * KPS + s: the KPS keys of a
// step are neighbours in the cache, so neighbouring lanes read neighbouring texels.
#extension GL_EXT_control_flow_attributes : require
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#if GQAVK_SUBGROUP_OPS
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#endif

#define GQAVK_KV_HALF_TEXELS 1
#define GQAVK_KV_WORDS 1
#include "kv_load.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint HEAD_DIM = 128;
layout(constant_id = 2) const uint HEADS = 4;  // query heads per workgroup
layout(constant_id = 3) const uint KV_TYPE = 1;  // storage type: kv_block.h
layout(constant_id = 4) const uint KEYS = 2;  // keys per lane group and step
layout(constant_id = 5) const uint BLOCK_SHIFT = 4;  // log2 of tokens per cache block
layout(constant_id = 6) const bool DIRECT_OUT = false;  // one split: write the final output
#if GQAVK_SUBGROUP_OPS
layout(constant_id = 7) const uint SG = 32;  // lanes per subgroup
#else
const uint SG = gl_WorkGroupSize.x;  // the workgroup is the exchange unit
#endif
layout(constant_id = 8) const uint T = 32;  // lanes per key, a power of two <= SG
layout(constant_id = 10) const uint NH = 1;  // subgroups taking different heads, HEADS each
layout(constant_id = 11) const uint DV = 128;  // V and output head dim (HEAD_DIM is Q and K's)

const uint WG = gl_WorkGroupSize.x;
const uint NSG = WG / SG;          // subgroups per workgroup
const uint NSGK = NSG / NH;        // subgroups taking different keys of the same heads
const uint KPS = SG / T;           // keys per subgroup and step
const uint NGROUPS = NSGK * KPS;   // keys per workgroup and step, for each of KEYS
const uint WG_HEADS = NH * HEADS;  // query heads per workgroup
const uint QK = HEAD_DIM / 4;        // 4-value slices per query and K row
const uint QV = DV / 4;              // and per V and output row
const uint CK = (QK + T - 1) / T;    // slices of q and K per lane
const uint CV = (QV + T - 1) / T;    // slices of V and the output per lane
#include "kv_codec.glsl"
const uint VALS = KV_VALS;           // values per 16-byte texel
const uint ROW_K = HEAD_DIM / VALS;  // texels per K row
const uint ROW_V = DV / VALS;        // texels per V row
const uint SW_K = KV_SCALE_WORDS(KV_TYPE, HEAD_DIM);  // scale words per K row
const uint SW_V = KV_SCALE_WORDS(KV_TYPE, DV);        // and per V row
layout(constant_id = 9) const uint GROUP_SHIFT = 3;  // log2 of the cache's token group
#include "decode_io.glsl"

#if GQAVK_SUBGROUP_OPS
uint my_lane() { return gl_SubgroupInvocationID; }
uint my_subgroup() { return gl_SubgroupID; }
float xor_add(float x, uint mask) { return x + subgroupShuffleXor(x, mask); }
vec4 xor_add(vec4 x, uint mask) { return x + subgroupShuffleXor(x, mask); }
float all_max(float x) { return subgroupMax(x); }
#else
shared vec4 xchg[WG];
uint my_lane() { return gl_LocalInvocationIndex; }
uint my_subgroup() { return 0u; }
vec4 xor_add(vec4 x, uint mask) {
  barrier();
  xchg[gl_LocalInvocationIndex] = x;
  barrier();
  return x + xchg[gl_LocalInvocationIndex ^ mask];
}
float xor_add(float x, uint mask) { return xor_add(vec4(x), mask).x; }
float all_max(float x) {
  [[unroll]] for (uint mask = 1; mask < WG; mask <<= 1) {
    barrier();
    xchg[gl_LocalInvocationIndex].x = x;
    barrier();
    x = max(x, xchg[gl_LocalInvocationIndex ^ mask].x);
  }
  return x;
}
#endif

// The states of subgroups that share heads, merged at the end: [NSGK][WG_HEADS].
shared float m_sh[NSGK > 1 ? NSGK * WG_HEADS : 1];
shared float l_sh[NSGK > 1 ? NSGK * WG_HEADS : 1];
shared vec4 o_sh[NSGK > 1 ? NSGK * WG_HEADS * QV : 1];

// The stored words of slice v of the row whose texel 0 is at `row`, as kv_slice takes them: four
// (f32), two (f16, bf16), one (q8), or one and which half of it (q4). Kept packed until used, so
// narrow types cost fewer registers in flight.
uvec4 load_slice(uint row, uint v) {
  if (KV_TYPE == KV_TYPE_F32) return kv_texel(row + (v << GROUP_SHIFT));
  if (KV_PARTS == 2u) return uvec4(kv_half_texel(row + ((v >> 1) << GROUP_SHIFT), v & 1u), 0u, 0u);
  if (KV_Q8) return uvec4(kv_word(((row + ((v >> 2) << GROUP_SHIFT)) << 2) + (v & 3u)), 0u, 0u, 0u);
  return uvec4(kv_word(((row + ((v >> 3) << GROUP_SHIFT)) << 2) + ((v >> 1) & 3u)), v & 1u, 0u, 0u);
}

// The four values of a slice load_slice returned (unscaled).
vec4 unpack_slice(uvec4 w) { return kv_slice(w); }

// The scale of slice v of a row whose scale words start at sw (q8 the row's, q4 its texel's).
float load_scale(uint sw, uint v) {
  if (KV_Q8) return kv_scale_of_word(kv_word(sw), 0u);
  if (KV_Q4) return kv_scale_of_word(kv_word(sw + (v >> 4)), v >> 3);
  return 1.0;
}

void main() {
  const uint lane = my_lane();
  const uint slot = lane % KPS;  // which of the subgroup's keys
  const uint part = lane / KPS;  // which slices of it: part + i * T
  const uint sg_key = my_subgroup() / NH, sg_head = my_subgroup() % NH;
  const uint group = sg_key * KPS + slot;

  const uint split = gl_WorkGroupID.x;
  const uint g = gl_WorkGroupID.y / pc.head_chunks;
  const uint wg_first_head = g * pc.group_size + (gl_WorkGroupID.y % pc.head_chunks) * WG_HEADS;
  const uint first_head = wg_first_head + sg_head * HEADS;  // this subgroup's
  const uint last_head = (g + 1) * pc.group_size;  // exclusive
  const uint b = gl_WorkGroupID.z;

  uint k_begin, k_end;
  split_keys(b, split, k_begin, k_end);

  // This lane's slices of the group's query rows, pre-scaled; zero past the row or the group.
  vec4 q[HEADS * CK];
  [[unroll]] for (uint h = 0; h < HEADS; ++h) {
    const uint head = min(first_head + h, pc.q_heads - 1);
    const float w = first_head + h < last_head ? pc.scale : 0.0;
    [[unroll]] for (uint i = 0; i < CK; ++i) {
      const uint v = part + i * T;
      q[h * CK + i] = v < QK ? q_in[(b * pc.q_heads + head) * QK + v] * w : vec4(0.0);
    }
  }


  float m_run[HEADS];  // uniform across the subgroup
  float l_run[HEADS];  // this key group's share of the denominator
  vec4 acc[HEADS * CV];
  [[unroll]] for (uint h = 0; h < HEADS; ++h) {
    m_run[h] = M_START;
    l_run[h] = 0.0;
    [[unroll]] for (uint i = 0; i < CV; ++i) acc[h * CV + i] = vec4(0.0);
  }

  for (uint tile = k_begin; tile < k_end; tile += NGROUPS * KEYS) {
    // Addresses of this group's keys; keys past k_end read the last valid row and are masked.
    uint k_at[KEYS], v_at[KEYS], k_sw[KEYS], v_sw[KEYS];
    bool valid[KEYS];
    [[unroll]] for (uint r = 0; r < KEYS; ++r) {
      const uint j0 = tile + r * NGROUPS + group;
      valid[r] = j0 < k_end;
      k_at[r] = kv_key_scales_at(b, g, min(j0, k_end - 1), v_at[r], k_sw[r], v_sw[r]);
    }
    // Every load of the step is issued before the math that uses it. q8 scales a row (one per
    // key), q4 a texel (one per slice): K's scale the partial dot product, V's p.
    const uint KSC = KV_Q4 ? CK : 1, VSC = KV_Q4 ? CV : 1;
    uvec4 kx[KEYS * CK], vx[KEYS * CV];
    float ksc[KEYS * KSC], vsc[KEYS * VSC];
    [[unroll]] for (uint r = 0; r < KEYS; ++r) {
      [[unroll]] for (uint i = 0; i < CK; ++i) kx[r * CK + i] = load_slice(k_at[r], min(part + i * T, QK - 1));
      [[unroll]] for (uint i = 0; i < CV; ++i) vx[r * CV + i] = load_slice(v_at[r], min(part + i * T, QV - 1));
      [[unroll]] for (uint i = 0; i < KSC; ++i) ksc[r * KSC + i] = load_scale(k_sw[r], min(part + i * T, QK - 1));
      [[unroll]] for (uint i = 0; i < VSC; ++i) vsc[r * VSC + i] = load_scale(v_sw[r], min(part + i * T, QV - 1));
    }

    // Scores: this lane's partial dot products, summed across the T lanes of the key.
    float s[KEYS * HEADS];
    [[unroll]] for (uint r = 0; r < KEYS; ++r) {
      [[unroll]] for (uint h = 0; h < HEADS; ++h) {
        float d = 0.0;
        [[unroll]] for (uint i = 0; i < CK; ++i) {
          const float part_d = dot(q[h * CK + i], unpack_slice(kx[r * CK + i]));
          d += KV_Q4 ? part_d * ksc[r * KSC + min(i, KSC - 1)] : part_d;
        }
        if (KV_Q8) d *= ksc[r];
        [[unroll]] for (uint mask = KPS; mask < SG; mask <<= 1) d = xor_add(d, mask);
        s[r * HEADS + h] = apply_softcap(d, pc.softcap);
      }
    }

    // Online softmax against the subgroup's running max, then acc += p * v.
    [[unroll]] for (uint h = 0; h < HEADS; ++h) {
      float mx = M_START;
      [[unroll]] for (uint r = 0; r < KEYS; ++r) {
        if (valid[r]) mx = max(mx, s[r * HEADS + h]);
      }
      const float m_new = max(m_run[h], all_max(mx));
      const float alpha = exp(m_run[h] - m_new);
      m_run[h] = m_new;
      float sum = 0.0;
      [[unroll]] for (uint i = 0; i < CV; ++i) acc[h * CV + i] *= alpha;
      [[unroll]] for (uint r = 0; r < KEYS; ++r) {
        const float p = valid[r] ? exp(s[r * HEADS + h] - m_new) : 0.0;
        sum += p;
        [[unroll]] for (uint i = 0; i < CV; ++i) acc[h * CV + i] += (p * vsc[r * VSC + min(i, VSC - 1)]) * unpack_slice(vx[r * CV + i]);
      }
      l_run[h] = l_run[h] * alpha + sum;
    }
  }

  // The subgroup's key groups share its running max: their sums and rows simply add.
  [[unroll]] for (uint h = 0; h < HEADS; ++h) {
    [[unroll]] for (uint mask = 1; mask < KPS; mask <<= 1) {
      l_run[h] = xor_add(l_run[h], mask);
      [[unroll]] for (uint i = 0; i < CV; ++i) acc[h * CV + i] = xor_add(acc[h * CV + i], mask);
    }
  }

  if (NSGK == 1) {
    // Slot 0's lanes hold the subgroup's rows: each writes its slices.
    [[unroll]] for (uint h = 0; h < HEADS; ++h) {
      const uint head = first_head + h;
      if (head >= last_head) continue;
      const uint row = b * pc.q_heads + head;
      const uint out_row = DIRECT_OUT ? row : row * pc.splits + split;
      const float inv = out_factor(head, m_run[h], l_run[h]);
      if (slot == 0u) {
        [[unroll]] for (uint i = 0; i < CV; ++i) {
          const uint v = part + i * T;
          if (v < QV) o_out[out_row * QV + v] = acc[h * CV + i] * inv;
        }
      }
      if (!DIRECT_OUT && lane == 0u) ml_out[out_row] = vec2(m_run[h], l_run[h]);
    }
    return;
  }

  // Subgroups sharing heads: each leaves (m, l, row) in shared memory; the workgroup merges them.
  [[unroll]] for (uint h = 0; h < HEADS; ++h) {
    const uint at = sg_key * WG_HEADS + sg_head * HEADS + h;
    if (slot == 0u) {
      [[unroll]] for (uint i = 0; i < CV; ++i) {
        const uint v = part + i * T;
        if (v < QV) o_sh[at * QV + v] = acc[h * CV + i];
      }
    }
    if (lane == 0u) {
      m_sh[at] = m_run[h];
      l_sh[at] = l_run[h];
    }
  }
  barrier();
  for (uint idx = gl_LocalInvocationIndex; idx < WG_HEADS * QV; idx += WG) {
    const uint h = idx / QV, v = idx % QV;
    const uint head = wg_first_head + h;
    if (head >= last_head) continue;
    float m = M_START;
    for (uint i = 0; i < NSGK; ++i) m = max(m, m_sh[i * WG_HEADS + h]);
    float l = 0.0;
    vec4 o = vec4(0.0);
    for (uint i = 0; i < NSGK; ++i) {
      const float w = exp(m_sh[i * WG_HEADS + h] - m);
      l += w * l_sh[i * WG_HEADS + h];
      o += w * o_sh[(i * WG_HEADS + h) * QV + v];
    }
    const uint row = b * pc.q_heads + head;
    const uint out_row = DIRECT_OUT ? row : row * pc.splits + split;
    o_out[out_row * QV + v] = o * out_factor(head, m, l);
    if (!DIRECT_OUT && v == 0u) ml_out[out_row] = vec2(m, l);
  }
}
