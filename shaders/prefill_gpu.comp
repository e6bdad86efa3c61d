#version 450
// Prefill attention, GPU tier: tiled flash attention for GPUs without matrix cores.
// One workgroup = one query tile (entry, first query: TILE_Q queries) of HEADS query heads of one
// KV head, so its ROWS = TILE_Q * HEADS query rows share every K/V tile it stages:
//  - K/V tiles of TILE_K keys are staged in shared memory by the whole workgroup (neighbouring
//    lanes load neighbouring texels), f16 kept packed, and read back by every row;
//  - a row's head dim is spread across T lanes, each holding 4-value slices part + i * T of q
//    (C of them) and of the output accumulator (CV), and each lane takes RPL rows, so one slice
//    read from shared memory serves RPL rows;
//  - scores of 4 keys at once are summed across the T lanes of a row by a shuffle-xor butterfly;
//    every lane of a row then holds the same running max and sum, and rows never exchange state.
// Lane roles come from gl_SubgroupID and gl_SubgroupInvocationID with the subgroup size the
// tuning required or measured (SG), so the T lanes of a row always sit in one subgroup. Without
// subgroup operations (GQAVK_SUBGROUP_OPS 0) the workgroup is one "subgroup" exchanging through
// shared memory. Loop bounds are uniform across the workgroup (masks select), so the butterflies
// and barriers run in uniform control flow; key tiles wholly outside every row's causal or window
// range are never loaded.
#extension GL_EXT_control_flow_attributes : require
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#if GQAVK_SUBGROUP_OPS
#extension GL_KHR_shader_subgroup_shuffle : require
#endif

#include "kv_load.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint DK = 128;  // head dim of q and k
layout(constant_id = 2) const uint DV = 128;  // head dim of v and the output
layout(constant_id = 3) const uint KV_TYPE = 1;  // storage type: kv_block.h
layout(constant_id = 4) const uint BLOCK_SHIFT = 4;  // log2 of tokens per cache block
layout(constant_id = 5) const uint GROUP_SHIFT = 0;  // log2 of the cache's token group
layout(constant_id = 6) const uint TILE_Q = 4;       // queries per tile
layout(constant_id = 7) const uint HEADS = 4;        // query heads per workgroup
layout(constant_id = 8) const uint TILE_K = 32;  // keys per shared-memory tile, a multiple of 4
#if GQAVK_SUBGROUP_OPS
layout(constant_id = 9) const uint SG = 32;  // lanes per subgroup
#else
const uint SG = gl_WorkGroupSize.x;  // the workgroup is the exchange unit
#endif
layout(constant_id = 10) const uint T = 16;  // lanes per row, a power of two <= SG

const uint WG = gl_WorkGroupSize.x;
const uint NRG = WG / T;                     // row groups: T lanes each
const uint ROWS = TILE_Q * HEADS;            // query rows of a workgroup
const uint RPL = (ROWS + NRG - 1) / NRG;     // rows per lane (row rg + r * NRG)
const uint VK = DK / 4, VV = DV / 4;         // 4-value slices per q / k row and v / o row
const uint C = (VK + T - 1) / T;             // q slices per lane and row
const uint CV = (VV + T - 1) / T;            // accumulator slices per lane and row
#include "kv_codec.glsl"
const uint VALS = KV_VALS;                   // values per 16-byte texel
const uint ROW_K = DK / VALS, ROW_V = DV / VALS;
const uint SW_K = KV_SCALE_WORDS(KV_TYPE, DK), SW_V = KV_SCALE_WORDS(KV_TYPE, DV);
#include "prefill_io.glsl"

// The staged tile: f16 and bf16 by slice as uvec2 (four packed values), f32 by slice as uvec4, q8
// as words (four values) with one float scale per key, and q4 dequantised to f32 slices while
// staging (its nibble decoding and per-texel scales in the score loop spilled on RDNA3 and halved
// Vega's occupancy; the tile reuses each staged value for every row, so the global read, which q4
// keeps small, is what matters). Arrays a type does not use hold one element.
const bool HALF_SLICES = KV_PARTS == 2u;
const bool FULL_SLICES = KV_TYPE == KV_TYPE_F32 || KV_Q4;
const bool WORDS = KV_Q8;
shared uvec2 k_half[HALF_SLICES ? TILE_K * VK : 1];
shared uvec2 v_half[HALF_SLICES ? TILE_K * VV : 1];
shared uvec4 k_full[FULL_SLICES ? TILE_K * VK : 1];
shared uvec4 v_full[FULL_SLICES ? TILE_K * VV : 1];
shared uint k_word[WORDS ? TILE_K * VK : 1];
shared uint v_word[WORDS ? TILE_K * VV : 1];
shared float k_scl[WORDS ? TILE_K : 1];
shared float v_scl[WORDS ? TILE_K : 1];

#if GQAVK_SUBGROUP_OPS
uint my_lane() { return gl_SubgroupID * SG + gl_SubgroupInvocationID; }
vec4 xor_add(vec4 x, uint mask) { return x + subgroupShuffleXor(x, mask); }
#else
shared vec4 xchg[WG];
uint my_lane() { return gl_LocalInvocationIndex; }
vec4 xor_add(vec4 x, uint mask) {
  barrier();
  xchg[gl_LocalInvocationIndex] = x;
  barrier();
  return x + xchg[gl_LocalInvocationIndex ^ mask];
}
#endif

// Slice v of key k of the staged tile, unscaled for q8 (q / 127).
vec4 k_slice(uint k, uint v) {
  if (HALF_SLICES) return kv_slice(uvec4(k_half[k * VK + v], 0u, 0u));
  if (WORDS) return kv_slice(uvec4(k_word[k * VK + v], 0u, 0u, 0u));
  return uintBitsToFloat(k_full[k * VK + v]);
}
vec4 v_slice(uint k, uint v) {
  if (HALF_SLICES) return kv_slice(uvec4(v_half[k * VV + v], 0u, 0u));
  if (WORDS) return kv_slice(uvec4(v_word[k * VV + v], 0u, 0u, 0u));
  return uintBitsToFloat(v_full[k * VV + v]);
}
// The scale of key k's row (q8; 1 for the other types, q4's being applied when staged).
float k_scale(uint k) { return WORDS ? k_scl[k] : 1.0; }
float v_scale(uint k) { return WORDS ? v_scl[k] : 1.0; }

// Stages keys [j0, j0 + TILE_K) of (b, g); keys at or past `end` repeat key end - 1 (finite data,
// masked later). Lanes take texels in order, so neighbouring lanes read neighbouring texels of a
// row (GROUP_SHIFT 0) or of a token group. K and V in two passes keep the divisors constant.
void stage_tile(uint b, uint g, uint j0, uint end) {
  for (uint idx = gl_LocalInvocationIndex; idx < TILE_K * ROW_K; idx += WG) {
    const uint k = idx / ROW_K, c = idx % ROW_K;
    uint v_at, k_sw, v_sw;
    const uvec4 t = kv_texel(kv_key_scales_at(b, g, min(j0 + k, end - 1u), v_at, k_sw, v_sw) +
                             (c << GROUP_SHIFT));
    if (HALF_SLICES) {
      k_half[k * VK + 2u * c] = t.xy;
      k_half[k * VK + 2u * c + 1u] = t.zw;
    } else if (WORDS) {
      [[unroll]] for (uint w = 0; w < 4u; ++w) k_word[k * VK + 4u * c + w] = t[w];
    } else if (KV_Q4) {
      const float sc = kv_scale(kv_texel(k_sw >> 2u), k_sw, c);
      [[unroll]] for (uint e = 0; e < KV_PARTS; ++e) {
        k_full[k * VK + KV_PARTS * c + e] = floatBitsToUint(kv_part(t, e) * sc);
      }
    } else {
      k_full[k * VK + c] = t;
    }
  }
  for (uint idx = gl_LocalInvocationIndex; idx < TILE_K * ROW_V; idx += WG) {
    const uint k = idx / ROW_V, c = idx % ROW_V;
    uint v_at, k_sw, v_sw;
    kv_key_scales_at(b, g, min(j0 + k, end - 1u), v_at, k_sw, v_sw);
    const uvec4 t = kv_texel(v_at + (c << GROUP_SHIFT));
    if (HALF_SLICES) {
      v_half[k * VV + 2u * c] = t.xy;
      v_half[k * VV + 2u * c + 1u] = t.zw;
    } else if (WORDS) {
      [[unroll]] for (uint w = 0; w < 4u; ++w) v_word[k * VV + 4u * c + w] = t[w];
    } else if (KV_Q4) {
      const float sc = kv_scale(kv_texel(v_sw >> 2u), v_sw, c);
      [[unroll]] for (uint e = 0; e < KV_PARTS; ++e) {
        v_full[k * VV + KV_PARTS * c + e] = floatBitsToUint(kv_part(t, e) * sc);
      }
    } else {
      v_full[k * VV + c] = t;
    }
  }
  if (WORDS) {  // q8: the keys' row scales, one texel each for K and V
    for (uint k = gl_LocalInvocationIndex; k < TILE_K; k += WG) {
      uint v_at, k_sw, v_sw;
      kv_key_scales_at(b, g, min(j0 + k, end - 1u), v_at, k_sw, v_sw);
      k_scl[k] = kv_scale(kv_texel(k_sw >> 2u), k_sw, 0u);
      v_scl[k] = kv_scale(kv_texel(v_sw >> 2u), v_sw, 0u);
    }
  }
}

void main() {
  const uint lane = my_lane();
  const uint part = lane % T;  // this lane's slices of a row: part + i * T
  const uint rg = lane / T;    // this lane's rows: rg + r * NRG

  const uvec2 tile = tiles[gl_WorkGroupID.x];
  const uvec4 entry = entries[tile.x];
  const uint b = entry.x, lq = entry.y, first_row = entry.w;
  const uint lk = min(entry.z, pc.capacity);
  const uint g = gl_WorkGroupID.y / pc.head_chunks;
  const uint first_head = g * pc.group_size + (gl_WorkGroupID.y % pc.head_chunks) * HEADS;
  const uint last_head = (g + 1u) * pc.group_size;  // exclusive
  const uint first_q = tile.y;
  const uint end_q = min(first_q + TILE_Q, lq);

  // This lane's rows: head, query, visible keys [lo, hi), and q pre-scaled (zero where invalid).
  uint head[RPL], query[RPL], lo[RPL], hi[RPL];
  bool live[RPL];
  vec4 q[RPL * C];
  [[unroll]] for (uint r = 0; r < RPL; ++r) {
    const uint row = rg + r * NRG;
    head[r] = first_head + row / TILE_Q;
    query[r] = first_q + row % TILE_Q;
    live[r] = row < ROWS && head[r] < last_head && query[r] < end_q;
    visible_keys(lk - lq + query[r], lk, lo[r], hi[r]);
    if (!live[r]) hi[r] = lo[r];
    const uint q_row = first_row + min(head[r], pc.q_heads - 1u) * lq + min(query[r], lq - 1u);
    [[unroll]] for (uint i = 0; i < C; ++i) {
      const uint v = part + i * T;
      q[r * C + i] = live[r] && v < VK ? q_in[q_row * VK + v] * pc.scale : vec4(0.0);
    }
  }

  // Keys any row of the tile sees: queries' ranges only move right as the query index grows.
  uint k_begin, k_end, unused;
  visible_keys(lk - lq + first_q, lk, k_begin, unused);
  visible_keys(lk - lq + end_q - 1u, lk, unused, k_end);
  if (first_head >= last_head || first_q >= end_q) k_end = k_begin;

  float m_run[RPL], l_run[RPL];
  vec4 acc[RPL * CV];
  [[unroll]] for (uint r = 0; r < RPL; ++r) {
    m_run[r] = M_START;
    l_run[r] = 0.0;
    [[unroll]] for (uint i = 0; i < CV; ++i) acc[r * CV + i] = vec4(0.0);
  }

  for (uint j0 = k_begin; j0 < k_end; j0 += TILE_K) {
    stage_tile(b, g, j0, k_end);
    barrier();
    const uint count = min(TILE_K, k_end - j0);
    for (uint kc = 0; kc < count; kc += 4u) {
      // Scores of keys kc..kc+3 for this lane's rows: partial dots, then the row's butterfly.
      vec4 s[RPL];
      [[unroll]] for (uint r = 0; r < RPL; ++r) s[r] = vec4(0.0);
      [[unroll]] for (uint kk = 0; kk < 4; ++kk) {
        [[unroll]] for (uint i = 0; i < C; ++i) {
          const uint v = min(part + i * T, VK - 1u);
          const vec4 kv = k_slice(kc + kk, v);
          const float sc = k_scale(kc + kk);
          [[unroll]] for (uint r = 0; r < RPL; ++r) s[r][kk] += dot(q[r * C + i], kv) * sc;
        }
      }
      [[unroll]] for (uint r = 0; r < RPL; ++r) {
        [[unroll]] for (uint mask = 1; mask < T; mask <<= 1) s[r] = xor_add(s[r], mask);
      }

      // Online softmax per row, then acc += p * v over the four keys.
      const uvec4 j = uvec4(j0 + kc) + uvec4(0u, 1u, 2u, 3u);
      vec4 p[RPL];
      [[unroll]] for (uint r = 0; r < RPL; ++r) {
        const bvec4 valid = bvec4(uvec4(greaterThanEqual(j, uvec4(lo[r]))) &
                                  uvec4(lessThan(j, uvec4(hi[r]))));
        vec4 x = s[r];
        if (pc.softcap > 0.0) {
          [[unroll]] for (uint kk = 0; kk < 4; ++kk) x[kk] = apply_softcap(x[kk], pc.softcap);
        }
        x = mix(vec4(M_START), x, valid);
        const float m_new = max(m_run[r], max(max(x.x, x.y), max(x.z, x.w)));
        const float alpha = exp(m_run[r] - m_new);
        p[r] = mix(vec4(0.0), exp(x - m_new), valid);
        m_run[r] = m_new;
        l_run[r] = l_run[r] * alpha + (p[r].x + p[r].y) + (p[r].z + p[r].w);
        [[unroll]] for (uint i = 0; i < CV; ++i) acc[r * CV + i] *= alpha;
      }
      [[unroll]] for (uint kk = 0; kk < 4; ++kk) {
        [[unroll]] for (uint i = 0; i < CV; ++i) {
          const uint v = min(part + i * T, VV - 1u);
          const vec4 vv = v_slice(kc + kk, v);
          const float sc = v_scale(kc + kk);
          [[unroll]] for (uint r = 0; r < RPL; ++r) acc[r * CV + i] += (p[r][kk] * sc) * vv;
        }
      }
    }
    barrier();
  }

  // Normalise (with the head's sink in the denominator when there are sinks) and write; a row
  // that saw no key has l == 0 and yields zeros.
  [[unroll]] for (uint r = 0; r < RPL; ++r) {
    if (!live[r]) continue;
    const float f = pc.has_sinks != 0u ? sink_factor(m_run[r], l_run[r], sinks[head[r]])
                                       : (l_run[r] != 0.0 ? 1.0 / l_run[r] : 0.0);
    const uint o_row = first_row + head[r] * lq + query[r];
    [[unroll]] for (uint i = 0; i < CV; ++i) {
      const uint v = part + i * T;
      if (v < VV) o_out[o_row * VV + v] = acc[r * CV + i] * f;
    }
  }
}
