#version 450
// Prefill attention, CPU-driver tier (lavapipe): tiled flash attention with no score matrix in
// memory. One workgroup = one (tile of TILE_Q queries of an entry, KV head g, chunk of HEADS query
// heads of g's group). Each lane owns whole query rows: ROWS queries (q + r * LANES) x HEADS heads,
// their pre-scaled q, softmax state and output accumulator. The workgroup walks the union of its
// rows' visible keys in tiles of KEYS keys, and every lane reads the same K and V texels: a fetch
// at an address uniform across lanes returns its values already broadcast, and each value then
// feeds HEADS * ROWS multiply-adds per lane.
//
// Why this shape on lavapipe (DESIGN.md, measured here): a lane is one SIMD element, so whole rows
// per lane need no cross-lane reduction and no barrier. Staging the tile in shared memory instead
// was 2.5x slower at H 32, G 8, D 128: lavapipe (Mesa 22.3) loads shared memory with a loop over
// lanes even at a constant index, scatters the staging stores the same way, and runs barrier()
// as coroutine switches. The tile loops are unrolled (constant array indices stay in registers),
// and each batch of KEYS fetches is issued before the math that uses it (a fetch is a call that
// clobbers vector registers). 8 keys per tile measured best: 4 pays more fetch batches, 16 spills.
#extension GL_EXT_control_flow_attributes : require
#extension GL_GOOGLE_include_directive : require

#include "kv_load.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint DK = 128;
layout(constant_id = 2) const uint DV = 128;
layout(constant_id = 3) const uint KV_TYPE = 1;  // storage type: kv_block.h
layout(constant_id = 4) const uint BLOCK_SHIFT = 4;  // log2 of tokens per cache block
layout(constant_id = 5) const uint GROUP_SHIFT = 3;  // log2 of the cache's token group
layout(constant_id = 6) const uint TILE_Q = 8;       // queries per tile: LANES * ROWS
layout(constant_id = 7) const uint HEADS = 4;        // query heads per workgroup
layout(constant_id = 8) const uint KEYS = 8;         // keys per step, fetched as one batch
// Softcap on: the plan has one (pc.softcap > 0). A constant, not only the push constant, because
// lavapipe runs both sides of a branch it cannot prove uniform: tanh for every score otherwise.
layout(constant_id = 11) const bool SOFTCAP = false;

#include "kv_codec.glsl"

const uint LANES = gl_WorkGroupSize.x;
const uint ROWS = TILE_Q / LANES;   // queries per lane
const uint VALS = KV_VALS;          // values per 16-byte texel
const uint HALVES = KV_PARTS;       // vec4s per texel
const uint SW_K = KV_SCALE_WORDS(KV_TYPE, DK), SW_V = KV_SCALE_WORDS(KV_TYPE, DV);  // scale words
const uint ROW_K = DK / VALS, ROW_V = DV / VALS;  // texels per K and V row
const uint QK = DK / 4, QV = DV / 4;              // vec4s per q and output row
const uint NR = ROWS * HEADS;                     // rows per lane, row index rh = r * HEADS + h

#include "prefill_io.glsl"

void main() {
  const uint lane = gl_LocalInvocationID.x;
  const uvec2 tile = tiles[gl_WorkGroupID.x];
  const uvec4 entry = entries[tile.x];
  const uint b = entry.x, lq = entry.y, lk = min(entry.z, pc.capacity), first_row = entry.w;
  const uint g = gl_WorkGroupID.y / pc.head_chunks;
  const uint first_head = g * pc.group_size + (gl_WorkGroupID.y % pc.head_chunks) * HEADS;
  const uint last_head = (g + 1u) * pc.group_size;  // exclusive
  const uint q_last = min(tile.y + TILE_Q, lq) - 1u;
  // Query i sits at position lk - lq + i (wraps when lq > lk, which only non-causal allows, and
  // visible_keys then ignores it).
  const uint shift = lk - lq;

  // The workgroup's keys: the union of its rows' ranges, contiguous because its queries are.
  uint wg_lo, wg_hi, unused_lo, unused_hi;
  visible_keys(shift + tile.y, lk, wg_lo, unused_hi);
  visible_keys(shift + q_last, lk, unused_lo, wg_hi);

  // This lane's rows: queries (clamped to the tile; past it they are computed, not written) and
  // heads (clamped to the group; past it likewise), with their own key ranges.
  uint query[ROWS], lo[ROWS], hi[ROWS];
  [[unroll]] for (uint r = 0; r < ROWS; ++r) {
    query[r] = min(tile.y + r * LANES + lane, q_last);
    visible_keys(shift + query[r], lk, lo[r], hi[r]);
  }
  vec4 q[NR * QK];
  [[unroll]] for (uint r = 0; r < ROWS; ++r) {
    [[unroll]] for (uint h = 0; h < HEADS; ++h) {
      const uint row = first_row + min(first_head + h, last_head - 1u) * lq + query[r];
      [[unroll]] for (uint c = 0; c < QK; ++c) q[(r * HEADS + h) * QK + c] = q_in[row * QK + c] * pc.scale;
    }
  }

  float m_run[NR], l_run[NR];
  vec4 acc[NR * QV];
  [[unroll]] for (uint rh = 0; rh < NR; ++rh) {
    m_run[rh] = M_START;
    l_run[rh] = 0.0;
  }
  [[unroll]] for (uint i = 0; i < NR * QV; ++i) acc[i] = vec4(0.0);

  for (uint t0 = wg_lo; t0 < wg_hi; t0 += KEYS) {
    // Keys past wg_hi repeat the last one (and are masked below).
    uint k_at[KEYS], v_at[KEYS], k_sw[KEYS], v_sw[KEYS];
    [[unroll]] for (uint j = 0; j < KEYS; ++j) {
      k_at[j] = kv_key_scales_at(b, g, min(t0 + j, wg_hi - 1u), v_at[j], k_sw[j], v_sw[j]);
    }
    // q8 and q4: the keys' scale texels (q8 scales a row's dot product and folds into p once; q4
    // per texel).
    uvec4 ks[KEYS], vs[KEYS];
    [[unroll]] for (uint j = 0; j < KEYS; ++j) {
      ks[j] = uvec4(0u);
      vs[j] = uvec4(0u);
      if (SW_K > 0u) ks[j] = kv_texel(k_sw[j] >> 2u);
      if (SW_V > 0u) vs[j] = kv_texel(v_sw[j] >> 2u);
    }

    // 1. Scores s = q.k (q is pre-scaled). Every lane fetches the same texels: each fetch returns
    // its values already broadcast across the lanes, which own different queries.
    float s[NR * KEYS];
    [[unroll]] for (uint i = 0; i < NR * KEYS; ++i) s[i] = 0.0;
    [[unroll]] for (uint ct = 0; ct < ROW_K; ++ct) {
      uvec4 t[KEYS];
      [[unroll]] for (uint j = 0; j < KEYS; ++j) t[j] = kv_texel(k_at[j] + (ct << GROUP_SHIFT));
      [[unroll]] for (uint j = 0; j < KEYS; ++j) {
        vec4 part[HALVES];
        [[unroll]] for (uint e = 0; e < HALVES; ++e) part[e] = kv_part(t[j], e);
        const float sc = KV_Q4 ? kv_scale(ks[j], k_sw[j], ct) : 1.0;
        [[unroll]] for (uint rh = 0; rh < NR; ++rh) {
          float d = 0.0;
          [[unroll]] for (uint e = 0; e < HALVES; ++e) d += dot(q[rh * QK + ct * HALVES + e], part[e]);
          s[rh * KEYS + j] += KV_Q4 ? d * sc : d;
        }
      }
    }
    if (KV_Q8) {
      [[unroll]] for (uint j = 0; j < KEYS; ++j) {
        const float sc = kv_scale(ks[j], k_sw[j], 0u);
        [[unroll]] for (uint rh = 0; rh < NR; ++rh) s[rh * KEYS + j] *= sc;
      }
    }

    // 3. Online softmax per row: softcap, the row's own key range, p = exp(s - m).
    float alpha[NR];
    [[unroll]] for (uint rh = 0; rh < NR; ++rh) {
      const uint r = rh / HEADS;
      float mx = M_START;
      [[unroll]] for (uint j = 0; j < KEYS; ++j) {
        const bool valid = t0 + j >= lo[r] && t0 + j < hi[r];
        const float x = SOFTCAP ? apply_softcap(s[rh * KEYS + j], pc.softcap) : s[rh * KEYS + j];
        s[rh * KEYS + j] = x;
        mx = valid ? max(mx, x) : mx;
      }
      const float m_new = max(m_run[rh], mx);
      alpha[rh] = exp(m_run[rh] - m_new);
      float sum = 0.0;
      [[unroll]] for (uint j = 0; j < KEYS; ++j) {
        const bool valid = t0 + j >= lo[r] && t0 + j < hi[r];
        const float p = valid ? exp(s[rh * KEYS + j] - m_new) : 0.0;
        s[rh * KEYS + j] = p;
        sum += p;
      }
      l_run[rh] = l_run[rh] * alpha[rh] + sum;
      m_run[rh] = m_new;
    }
    if (KV_Q8) {  // V's row scales fold into p, now that the sums have it
      [[unroll]] for (uint j = 0; j < KEYS; ++j) {
        const float sc = kv_scale(vs[j], v_sw[j], 0u);
        [[unroll]] for (uint rh = 0; rh < NR; ++rh) s[rh * KEYS + j] *= sc;
      }
    }

    // 4. acc = acc * alpha + sum over the tile of p * v, one texel column of V at a time.
    [[unroll]] for (uint ct = 0; ct < ROW_V; ++ct) {
      uvec4 t[KEYS];
      [[unroll]] for (uint j = 0; j < KEYS; ++j) t[j] = kv_texel(v_at[j] + (ct << GROUP_SHIFT));
      float ps[KV_Q4 ? NR * KEYS : 1];  // q4: p times this texel's scale
      if (KV_Q4) {
        [[unroll]] for (uint j = 0; j < KEYS; ++j) {
          const float sc = kv_scale(vs[j], v_sw[j], ct);
          [[unroll]] for (uint rh = 0; rh < NR; ++rh) ps[rh * KEYS + j] = s[rh * KEYS + j] * sc;
        }
      }
      [[unroll]] for (uint half_ = 0; half_ < HALVES; ++half_) {
        const uint c = ct * HALVES + half_;
        vec4 part[NR];
        [[unroll]] for (uint rh = 0; rh < NR; ++rh) part[rh] = acc[rh * QV + c] * alpha[rh];
        [[unroll]] for (uint j = 0; j < KEYS; ++j) {
          const vec4 v = kv_part(t[j], half_);
          [[unroll]] for (uint rh = 0; rh < NR; ++rh) {
            part[rh] += (KV_Q4 ? ps[rh * KEYS + j] : s[rh * KEYS + j]) * v;
          }
        }
        [[unroll]] for (uint rh = 0; rh < NR; ++rh) acc[rh * QV + c] = part[rh];
      }
    }
  }

  // 5. Normalise (with the sink's share of the denominator) and write this lane's rows.
  [[unroll]] for (uint r = 0; r < ROWS; ++r) {
    if (tile.y + r * LANES + lane >= lq) continue;
    [[unroll]] for (uint h = 0; h < HEADS; ++h) {
      const uint head = first_head + h;
      if (head >= last_head) continue;
      const uint rh = r * HEADS + h;
      const float l = l_run[rh];
      const float f = pc.has_sinks != 0u ? sink_factor(m_run[rh], l, sinks[head])
                                         : (l != 0.0 ? 1.0 / l : 0.0);
      const uint row = first_row + head * lq + query[r];
      [[unroll]] for (uint c = 0; c < QV; ++c) o_out[row * QV + c] = acc[rh * QV + c] * f;
    }
  }
}
