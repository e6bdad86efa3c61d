// Widening and dequantising the pool's storage types in registers (layout: kv_block.h; the host
// encoder is runtime/kv_codec.cpp). The including shader declares the uint specialization constant
// KV_TYPE (KV_TYPE_F32 .. KV_TYPE_Q4). Values come out unscaled (q8 and q4: the codes);
// kernels apply a row's scales to partial dot products and fold V's into p, once per texel or
// row rather than per value.
#ifndef GQAVK_KV_CODEC_GLSL
#define GQAVK_KV_CODEC_GLSL

#include "kv_block.h"

const uint KV_VALS = KV_VALUES_PER_TEXEL(KV_TYPE);  // values per 16-byte texel
const uint KV_PARTS = KV_VALS / 4u;                 // vec4s per texel
const bool KV_Q8 = KV_TYPE == KV_TYPE_Q8;
const bool KV_Q4 = KV_TYPE == KV_TYPE_Q4;

// Four bf16 values in two words: a bf16 is the top half of an f32.
vec4 kv_bf16x4(uvec2 w) {
  return vec4(uintBitsToFloat(w.x << 16), uintBitsToFloat(w.x & 0xffff0000u),
              uintBitsToFloat(w.y << 16), uintBitsToFloat(w.y & 0xffff0000u));
}

// Four q4 codes of word w: nibbles 0-3 (high 0) or 4-7 (high 1), sign-extended by shifting each to
// the top and arithmetic-shifting it back. The high half is first moved down: one shift by a lane's
// own amount rather than four.
vec4 kv_q4x4(uint w, uint high) {
  const int x = int(w >> (high << 4u));
  return vec4((ivec4(x) << ivec4(28, 24, 20, 16)) >> 28);
}

// Four q8 codes of word w (byte i is value i), sign-extended by shifts: cheaper than
// unpackSnorm4x8's divide and clamp, and the scale takes the step.
vec4 kv_q8x4(uint w) { return vec4((ivec4(int(w)) << ivec4(24, 16, 8, 0)) >> 24); }

// Values [4i, 4i + 4) of texel t.
vec4 kv_part(uvec4 t, uint i) {
  if (KV_TYPE == KV_TYPE_F32) return uintBitsToFloat(t);
  if (KV_TYPE == KV_TYPE_F16) {
    return i == 0u ? vec4(unpackHalf2x16(t.x), unpackHalf2x16(t.y))
                   : vec4(unpackHalf2x16(t.z), unpackHalf2x16(t.w));
  }
  if (KV_TYPE == KV_TYPE_BF16) return kv_bf16x4(i == 0u ? t.xy : t.zw);
  if (KV_Q8) return kv_q8x4(t[i]);
  return kv_q4x4(t[i >> 1u], i & 1u);
}

// The four values of a 4-value slice as the GPU tiers keep it packed: f32 w, f16 and bf16 w.xy,
// q8 w.x, q4 w.x with w.y choosing the nibbles.
vec4 kv_slice(uvec4 w) {
  if (KV_TYPE == KV_TYPE_F32) return uintBitsToFloat(w);
  if (KV_TYPE == KV_TYPE_F16) return vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
  if (KV_TYPE == KV_TYPE_BF16) return kv_bf16x4(w.xy);
  if (KV_Q8) return kv_q8x4(w.x);
  return kv_q4x4(w.x, w.y);
}

// The scale of texel c from its scale word (word c / 2 of the row's for q4).
float kv_scale_of_word(uint w, uint c) {
  if (KV_Q8) return uintBitsToFloat(w);
  if (KV_Q4) return unpackHalf2x16(w)[c & 1u];
  return 1.0;
}

// The scale of texel c of a row whose scale words start at pool word sw, from the texel st that
// holds them (texel sw / 4: a row's scale words never straddle texels). 1 for the float types.
float kv_scale(uvec4 st, uint sw, uint c) {
  if (!KV_Q8 && !KV_Q4) return 1.0;
  // Word i by selects: a vector indexed by a per-lane value goes through memory on CPU drivers.
  const uint i = (sw & 3u) + (KV_Q4 ? c >> 1u : 0u);
  const uint w = i == 0u ? st.x : i == 1u ? st.y : i == 2u ? st.z : st.w;
  return kv_scale_of_word(w, c);
}

#endif
