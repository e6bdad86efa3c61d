// How kernels read the KV pool: 16-byte texels, f32 (4 values) or f16 (8 values) each.
// GQAVK_KV_TEXEL=1 binds the pool as a uniform texel buffer (R32G32B32A32_UINT): lavapipe turns
// texel fetches into vector gathers, about 3x faster than its storage-buffer loads. GQAVK_KV_TEXEL=0
// binds it as a storage buffer, the usual fast path on GPUs. Which one runs is a tuning choice.
#ifndef GQAVK_KV_LOAD_GLSL
#define GQAVK_KV_LOAD_GLSL

#if GQAVK_KV_TEXEL
layout(binding = 0) uniform usamplerBuffer kv_pool;
uvec4 kv_texel(uint i) { return texelFetch(kv_pool, int(i)); }
#else
layout(binding = 0, std430) readonly buffer KvPool { uvec4 kv_pool[]; };
uvec4 kv_texel(uint i) { return kv_pool[i]; }
#endif

#endif
