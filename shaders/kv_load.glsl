// How kernels read the KV pool: 16-byte texels (4 to 32 values each: kv_block.h), and where a
// kernel defines GQAVK_KV_HALF_TEXELS or GQAVK_KV_WORDS, halves of texels or 32-bit words.
// GQAVK_KV_LOAD picks the binding, a tuning choice per device:
//  0: storage buffer of uvec4, the usual fast path on GPUs;
//  1: uniform texel buffer (R32G32B32A32_UINT) read with texelFetch: lavapipe gathers each fetch
//     in a called function, about 3x faster than its per-lane storage-buffer loads;
//  2: storage texel buffer (same format) read with imageLoad: lavapipe inlines the same gather,
//     and a plain stream runs about 1.5x faster again (decode, bound by arithmetic, does not);
//  3: the pool's buffer device address, held in a small storage buffer at binding 0, for pools
//     larger than any binding can span (maxStorageBufferRange, 2^31 texels of a view).
// Texel indices are uint everywhere; texelFetch and imageLoad take int, and the runtime binds a
// texel view only when the pool's texel count fits maxTexelBufferElements (< 2^31 on every device).
#ifndef GQAVK_KV_LOAD_GLSL
#define GQAVK_KV_LOAD_GLSL

#if GQAVK_KV_LOAD == 3
// Addresses are uvec2 (low, high words), so no device needs 64-bit integers: byte offsets of
// texels past 4 GiB (index * 16) carry into the high word.
#extension GL_EXT_buffer_reference : require
#extension GL_EXT_buffer_reference_uvec2 : require
layout(binding = 0, std430) readonly restrict buffer KvPoolAddress { uvec2 kv_pool_address; };
layout(buffer_reference, std430, buffer_reference_align = 16) readonly restrict buffer KvTexelRef {
  uvec4 value;
};
layout(buffer_reference, std430, buffer_reference_align = 8) readonly restrict buffer KvHalfRef {
  uvec2 value;
};
#include "kv_address.glsl"
// The address of byte `byte_` (< 16) of texel i.
uvec2 kv_address(uint i, uint byte_) { return texel_address(kv_pool_address, i, byte_); }
uvec4 kv_texel(uint i) { return KvTexelRef(kv_address(i, 0u)).value; }
#elif GQAVK_KV_LOAD == 2
layout(binding = 0, rgba32ui) uniform readonly restrict uimageBuffer kv_pool;
uvec4 kv_texel(uint i) { return imageLoad(kv_pool, int(i)); }
#elif GQAVK_KV_LOAD == 1
layout(binding = 0) uniform usamplerBuffer kv_pool;
uvec4 kv_texel(uint i) { return texelFetch(kv_pool, int(i)); }
#else
layout(binding = 0, std430) readonly buffer KvPool { uvec4 kv_pool[]; };
uvec4 kv_texel(uint i) { return kv_pool[i]; }
#endif

#ifdef GQAVK_KV_HALF_TEXELS
// Half a texel (8 bytes: four f16 values), half_ 0 or 1: the GPU tier's per-lane f16 load.
#if GQAVK_KV_LOAD == 0
layout(binding = 0, std430) readonly buffer KvPoolHalves { uvec2 kv_pool_halves[]; };
uvec2 kv_half_texel(uint i, uint half_) { return kv_pool_halves[2u * i + half_]; }
#elif GQAVK_KV_LOAD == 3
uvec2 kv_half_texel(uint i, uint half_) { return KvHalfRef(kv_address(i, half_ << 3)).value; }
#else
uvec2 kv_half_texel(uint i, uint half_) {
  const uvec4 t = kv_texel(i);
  return half_ == 0u ? t.xy : t.zw;
}
#endif
#endif

#ifdef GQAVK_KV_WORDS
// One 32-bit word of the pool (word i of texel i / 4): the GPU tier's q8 and q4 slices and scales.
#if GQAVK_KV_LOAD == 0
layout(binding = 0, std430) readonly buffer KvPoolWords { uint kv_pool_words[]; };
uint kv_word(uint i) { return kv_pool_words[i]; }
#else
uint kv_word(uint i) { return kv_texel(i >> 2u)[i & 3u]; }
#endif
#endif

#endif
