#version 450
// Device append: writes a batch of new tokens' K and V from the engine's buffers into their cache
// blocks, converting or quantising to the storage type on the way (kv_block.h; the same rules as
// the host encoder runtime/kv_codec.cpp), so the host only moves the block tables.
// One invocation = one 16-byte texel (VALS stored values) of one (token, KV head, K or V) row;
// invocations run over the batch's texels in order (token, head, K row then V row, texel), many
// rows to a workgroup: lavapipe pays per workgroup, GPUs do not mind. A q8 row's amax is
// recomputed by each of its invocations (a row is at most 256 values), so no lanes cooperate and
// any subgroup size works; the invocation of texel 0 (q8) or of each even texel (q4: the word of
// two f16 scales) writes the scales.
// Sources are [tokens, G, Dk] (K) and [tokens, G, Dv] (V) of f32, f16 or bf16, read as 32-bit
// words. A value the storage type cannot hold (f16 or bf16 overflow, q8 or q4 non-finite, a q4
// scale past f16) is counted, once per texel whose conversion meets it, for the host to report;
// it is stored as the conversion gives it.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x = 64) in;
layout(constant_id = 1) const uint DK = 128;
layout(constant_id = 2) const uint DV = 128;
layout(constant_id = 3) const uint KV_TYPE = 1;  // storage type, KV_TYPE_F32 .. KV_TYPE_Q4
layout(constant_id = 4) const uint BLOCK_SHIFT = 4;
layout(constant_id = 5) const uint GROUP_SHIFT = 3;
layout(constant_id = 6) const uint SRC_TYPE = 0;  // 0 f32, 1 f16, 2 bf16

#include "kv_block.h"

const uint VALS = KV_VALUES_PER_TEXEL(KV_TYPE);  // stored values per texel
const uint ROW_K = DK / VALS, ROW_V = DV / VALS;
const uint SW_K = KV_SCALE_WORDS(KV_TYPE, DK), SW_V = KV_SCALE_WORDS(KV_TYPE, DV);

layout(push_constant) uniform Params {
  uint tokens;
  uint kv_heads;
  uint blocks_per_seq;
  uint table_base;  // the layer's first block-table row
  uint k_first;     // first element of K in its buffer
  uint v_first;     // and of V
}
pc;

#if GQAVK_KV_STORE == 1
// The pool through its device address (held at binding 0), for pools past a storage binding.
#extension GL_EXT_buffer_reference : require
#extension GL_EXT_buffer_reference_uvec2 : require
#include "kv_address.glsl"
layout(binding = 0, std430) readonly restrict buffer KvPoolAddress { uvec2 kv_pool_address; };
layout(buffer_reference, std430, buffer_reference_align = 16) writeonly restrict buffer KvTexelRef {
  uvec4 value;
};
layout(buffer_reference, std430, buffer_reference_align = 4) writeonly restrict buffer KvWordRef {
  uint value;
};
void store_texel(uint i, uvec4 t) { KvTexelRef(texel_address(kv_pool_address, i, 0u)).value = t; }
void store_word(uint w, uint x) {
  KvWordRef(texel_address(kv_pool_address, w >> 2, (w & 3u) << 2)).value = x;
}
#else
layout(binding = 0, std430) writeonly buffer KvPool { uvec4 kv_pool[]; };
layout(binding = 0, std430) writeonly buffer KvPoolWords { uint kv_pool_words[]; };
void store_texel(uint i, uvec4 t) { kv_pool[i] = t; }
void store_word(uint w, uint x) { kv_pool_words[w] = x; }
#endif
// binding 1: the block table (kv_layout.glsl)
// (sequence, position); a sequence of SKIP_TOKEN writes nothing
layout(binding = 2, std430) readonly buffer Tokens { uvec2 token_at[]; };
const uint SKIP_TOKEN = 0xffffffffu;
layout(binding = 3, std430) readonly buffer KeySrc { uint k_src[]; };
layout(binding = 4, std430) readonly buffer ValueSrc { uint v_src[]; };
layout(binding = 5, std430) buffer Status { uint problems; };

#include "kv_layout.glsl"

// Source element e (an even e for 16-bit types gives the pair e, e + 1).
vec2 src_pair(bool is_v, uint e) {
  if (SRC_TYPE == 0u) {
    return is_v ? vec2(uintBitsToFloat(v_src[e]), uintBitsToFloat(v_src[e + 1u]))
                : vec2(uintBitsToFloat(k_src[e]), uintBitsToFloat(k_src[e + 1u]));
  }
  const uint w = is_v ? v_src[e >> 1] : k_src[e >> 1];
  if (SRC_TYPE == 1u) return unpackHalf2x16(w);
  return vec2(uintBitsToFloat(w << 16), uintBitsToFloat(w & 0xffff0000u));  // bf16
}

vec4 src_vec4(bool is_v, uint e) { return vec4(src_pair(is_v, e), src_pair(is_v, e + 2u)); }

void report(bool bad) {
  if (bad) atomicAdd(problems, 1u);
}

// f32 to f16 bits (the driver's conversion; RNE on lavapipe, as the host's), reporting overflow.
uint to_half2(vec2 x) {
  const uint h = packHalf2x16(x);
  const vec2 back = unpackHalf2x16(h);
  report((isinf(back.x) && !isinf(x.x)) || (isinf(back.y) && !isinf(x.y)));
  return h;
}

// f32 to bf16 bits, round to nearest even (runtime/kv_codec.cpp: float_to_bf16), reporting
// overflow.
uint to_bf16(float x) {
  const uint bits = floatBitsToUint(x);
  if (isnan(x)) return (bits >> 16) | 0x40u;
  const uint b = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
  report(!isinf(x) && (b & 0x7fffu) == 0x7f80u);
  return b;
}

// Largest |value| of `count` values from element e.
float amax_of(bool is_v, uint e, uint count) {
  float m = 0.0;
  for (uint i = 0; i < count; i += 4u) {
    const vec4 x = abs(src_vec4(is_v, e + i));
    m = max(m, max(max(x.x, x.y), max(x.z, x.w)));
  }
  return m;
}

// q4's f16 scale bits of 32 values from element e (amax / 7); `own`: this invocation's texel,
// whose non-finite scale it reports.
uint q4_scale_bits(bool is_v, uint e, bool own) {
  const float amax = amax_of(is_v, e, 32u);
  const uint bits = packHalf2x16(vec2(amax / 7.0, 0.0));
  report(own && (isinf(unpackHalf2x16(bits).x) || isnan(amax) || isinf(amax)));
  return bits;
}

void main() {
  const uint row_texels = ROW_K + ROW_V;  // a (token, head): its K row, then its V row
  const uint total = pc.tokens * pc.kv_heads * row_texels;
  // A grid-stride loop: the dispatch is capped at 65535 workgroups (the least devices allow).
  for (uint i = gl_GlobalInvocationID.x; i < total; i += gl_NumWorkGroups.x * 64u) {
    const uint token = i / (pc.kv_heads * row_texels);
    const uint g = (i / row_texels) % pc.kv_heads;
    const uint r = i % row_texels;
    const bool is_v = r >= ROW_K;
    const uint c = is_v ? r - ROW_K : r;  // texel of the row
    const uint dim = is_v ? DV : DK;
    const uvec2 at = token_at[token];
    if (at.x == SKIP_TOKEN) continue;  // a DecodeStep row without a sequence this step
    uint v_at, k_sw, v_sw;
    const uint k_at = kv_key_scales_at(at.x, g, at.y, v_at, k_sw, v_sw);
    const uint row0 = (is_v ? pc.v_first : pc.k_first) + (token * pc.kv_heads + g) * dim;
    const uint first = row0 + c * VALS;
    const uint sw = is_v ? v_sw : k_sw;
    uvec4 t = uvec4(0u);
    if (KV_TYPE == KV_TYPE_F32) {
      t = floatBitsToUint(src_vec4(is_v, first));
    } else if (KV_TYPE == KV_TYPE_F16) {
      for (uint j = 0; j < 4u; ++j) t[j] = to_half2(src_pair(is_v, first + 2u * j));
    } else if (KV_TYPE == KV_TYPE_BF16) {
      for (uint j = 0; j < 4u; ++j) {
        const vec2 x = src_pair(is_v, first + 2u * j);
        t[j] = to_bf16(x.x) | (to_bf16(x.y) << 16);
      }
    } else if (KV_TYPE == KV_TYPE_Q8) {
      // scale = amax / 127; q = clamp(round-to-even(x / scale), -127, 127)
      const float amax = amax_of(is_v, row0, dim);
      report(isnan(amax) || isinf(amax));
      const float scale = amax / 127.0;
      if (scale > 0.0) {
        for (uint j = 0; j < 4u; ++j) {
          const vec4 q = clamp(roundEven(src_vec4(is_v, first + 4u * j) / scale), -127.0, 127.0);
          const uvec4 b = uvec4(ivec4(q)) & 0xffu;
          t[j] = b.x | (b.y << 8) | (b.z << 16) | (b.w << 24);
        }
      }
      if (c == 0u) store_word(sw, floatBitsToUint(scale));
    } else {  // q4: q = clamp(round-to-even(x / scale), -7, 7) against the scale as stored
      const uint bits = q4_scale_bits(is_v, first, true);
      const float scale = unpackHalf2x16(bits).x;
      if (scale > 0.0) {
        for (uint j = 0; j < 8u; ++j) {
          const vec4 q = clamp(roundEven(src_vec4(is_v, first + 4u * j) / scale), -7.0, 7.0);
          const uvec4 n = uvec4(ivec4(q)) & 0xfu;
          t[j >> 1] |= (n.x | (n.y << 4) | (n.z << 8) | (n.w << 12)) << ((j & 1u) << 4);
        }
      }
      const uint row = dim / VALS;
      if ((c & 1u) == 0u) {
        const uint next = c + 1u < row ? q4_scale_bits(is_v, first + VALS, false) : 0u;
        store_word(sw + (c >> 1), bits | (next << 16));
      }
      // Rows of 3 or 6 texels pad their scale words to 2 or 4: zeros, as the host writes them.
      if (c == row - 1u) {
        for (uint w = (c >> 1) + 1u; w < (is_v ? SW_V : SW_K); ++w) store_word(sw + w, 0u);
      }
    }
    store_texel((is_v ? v_at : k_at) + (c << GROUP_SHIFT), t);
  }
}
