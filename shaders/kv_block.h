// The byte layout of one KV pool block, defined once for the host writer (runtime/kv_cache.cpp,
// through runtime/kv_cache_impl.hpp) and the kernels (shaders/kv_layout.glsl). Written in the
// common subset of GLSL and C++: `uint` is uint32_t on the host (the includer declares it), and
// functions are `inline constexpr` there. Units are 16-byte texels, or 32-bit words for scales.
//
// A block of P = 2^block_shift tokens holds, for H KV heads:
//   1. every head's K slab: P tokens x row_k texels (head g at texel g * P * row_k);
//   2. every head's V slab: P tokens x row_v texels;
//   3. q8 and q4 only, the scales: every head's K scales (P tokens x sw_k words, head-major),
//      padded to whole texels, then every head's V scales likewise.
// Inside a slab, tokens sit in groups of 2^group_shift, each texel-column-major: texel c of the
// token in slot s is at ((s >> gs) * row + c) << gs | (s & mask), so lanes holding neighbouring
// keys read neighbouring texels.
// A row's values: texel c holds values [c * VALS, (c + 1) * VALS):
//   f32 4, f16 and bf16 8 (value i in half i & 1 of word i / 2), q8 16 (int8, value i in byte i % 4
//   of word i / 4), q4 32 (4-bit two's complement, value i in nibble i % 8 of word i / 8).
// Scales: q8 one f32 per token row, scale = max |x| / 127 (value = q * scale); q4 one f16 per
// texel (32 values), scale = amax / 7 (value = q * scale), texel c's in half c & 1 of word c / 2 of
// the token's sw words. sw is a power of two <= 4 (q4 rows of 3 or 6 texels round up), so one
// token's scales never straddle a texel and a kernel reads them with one fetch.
#ifndef GQAVK_KV_BLOCK_H
#define GQAVK_KV_BLOCK_H

#ifdef __cplusplus
#define GQAVK_KV_FN inline constexpr
#else
#define GQAVK_KV_FN
#endif

// Storage types, as the KV_TYPE specialization constant (id 3) carries them: DType's order.
#define KV_TYPE_F32 0u
#define KV_TYPE_F16 1u
#define KV_TYPE_BF16 2u
#define KV_TYPE_Q8 3u
#define KV_TYPE_Q4 4u

// Values per 16-byte texel (an expression, so GLSL can use it on a specialization constant).
#define KV_VALUES_PER_TEXEL(t) \
  ((t) == KV_TYPE_F32 ? 4u : (t) == KV_TYPE_Q8 ? 16u : (t) == KV_TYPE_Q4 ? 32u : 8u)

// Scale words per token row of `dim` values: q8 1 (an f32), q4 the row's texels' f16 scales
// rounded up to 1, 2 or 4 words, others 0.
#define KV_SCALE_WORDS(t, dim) \
  ((t) == KV_TYPE_Q8 ? 1u : (t) != KV_TYPE_Q4 ? 0u : (dim) <= 64u ? 1u : (dim) <= 128u ? 2u : 4u)

// Texels of the scale region's K part (or V part): heads x P tokens x sw words, padded.
GQAVK_KV_FN uint kv_scale_texels(uint heads, uint block_shift, uint sw) {
  return (((heads * sw) << block_shift) + 3u) >> 2u;
}

// Texels of one block.
GQAVK_KV_FN uint kv_block_texels(uint heads, uint block_shift, uint row_k, uint row_v, uint sw_k,
                                 uint sw_v) {
  return ((heads * (row_k + row_v)) << block_shift) + kv_scale_texels(heads, block_shift, sw_k) +
         kv_scale_texels(heads, block_shift, sw_v);
}

// Texel 0 of the K row (v false) or V row (v true) of head g, slot s, inside its block.
GQAVK_KV_FN uint kv_row_texel(uint heads, uint block_shift, uint group_shift, uint row_k,
                              uint row_v, uint g, uint s, bool v) {
  const uint row = v ? row_v : row_k;
  const uint slab = v ? (heads * row_k + g * row_v) << block_shift : (g * row_k) << block_shift;
  return slab + ((s >> group_shift) << group_shift) * row + (s & ((1u << group_shift) - 1u));
}

// Word 0 of the K (v false) or V (v true) scales of head g, slot s, inside its block.
GQAVK_KV_FN uint kv_scale_word(uint heads, uint block_shift, uint row_k, uint row_v, uint sw_k,
                               uint sw_v, uint g, uint s, bool v) {
  uint texel = (heads * (row_k + row_v)) << block_shift;
  if (v) texel += kv_scale_texels(heads, block_shift, sw_k);
  return texel * 4u + ((g << block_shift) + s) * (v ? sw_v : sw_k);
}

#endif
