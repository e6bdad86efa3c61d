#version 450
// Device append: writes a batch of new tokens' K and V from the engine's buffers into their cache
// blocks, converting to the storage type on the way; the host only moves the block tables.
// One invocation = one 16-byte texel (VALS stored values) of one (token, KV head, K or V) row;
// invocations run over the batch's texels in order (token, head, K row then V row, texel), many
// rows to a workgroup: lavapipe pays per workgroup, GPUs do not mind.
// Sources are [tokens, G, Dk] (K) and [tokens, G, Dv] (V) of f32, f16 or bf16, read as 32-bit
// words. Values too large for f16 storage are counted (the host reports them) and stored as
// infinity, as an f16 engine would hold them.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x = 64) in;
layout(constant_id = 1) const uint DK = 128;
layout(constant_id = 2) const uint DV = 128;
layout(constant_id = 3) const bool KV_F16 = true;  // storage type (f32 otherwise)
layout(constant_id = 4) const uint BLOCK_SHIFT = 4;
layout(constant_id = 5) const uint GROUP_SHIFT = 3;
layout(constant_id = 6) const uint SRC_TYPE = 0;  // 0 f32, 1 f16, 2 bf16

const uint VALS = KV_F16 ? 8 : 4;  // stored values per texel
const uint ROW_K = DK / VALS, ROW_V = DV / VALS;

layout(push_constant) uniform Params {
  uint tokens;
  uint kv_heads;
  uint blocks_per_seq;
  uint table_base;  // the layer's first block-table row
  uint k_first;     // first element of K in its buffer
  uint v_first;     // and of V
} pc;

#if GQAVK_KV_STORE == 1
// The pool through its device address (held at binding 0), for pools past a storage binding.
#extension GL_EXT_buffer_reference : require
#extension GL_EXT_buffer_reference_uvec2 : require
#include "kv_address.glsl"
layout(binding = 0, std430) readonly restrict buffer KvPoolAddress { uvec2 kv_pool_address; };
layout(buffer_reference, std430, buffer_reference_align = 16) writeonly restrict buffer KvTexelRef {
  uvec4 value;
};
void store_texel(uint i, uvec4 t) { KvTexelRef(texel_address(kv_pool_address, i, 0u)).value = t; }
#else
layout(binding = 0, std430) writeonly buffer KvPool { uvec4 kv_pool[]; };
void store_texel(uint i, uvec4 t) { kv_pool[i] = t; }
#endif
// binding 1: the block table (kv_layout.glsl)
layout(binding = 2, std430) readonly buffer Tokens { uvec2 token_at[]; };  // (sequence, position)
layout(binding = 3, std430) readonly buffer KeySrc { uint k_src[]; };
layout(binding = 4, std430) readonly buffer ValueSrc { uint v_src[]; };
layout(binding = 5, std430) buffer Status { uint overflowed; };

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

// f32 to f16 bits, counting finite values that f16 cannot hold.
uint to_half2(vec2 x) {
  const uint h = packHalf2x16(x);
  const vec2 back = unpackHalf2x16(h);
  const bool over = (isinf(back.x) && !isinf(x.x)) || (isinf(back.y) && !isinf(x.y));
  if (over) atomicAdd(overflowed, 1u);
  return h;
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
    uint v_at;
    const uint k_at = kv_key_at(at.x, g, at.y, v_at);
    const uint first =
        (is_v ? pc.v_first : pc.k_first) + (token * pc.kv_heads + g) * dim + c * VALS;
    uvec4 t;
    if (KV_F16) {
      for (uint j = 0; j < 4u; ++j) t[j] = to_half2(src_pair(is_v, first + 2u * j));
    } else {
      const vec2 a = src_pair(is_v, first), b = src_pair(is_v, first + 2u);
      t = floatBitsToUint(vec4(a, b));
    }
    store_texel((is_v ? v_at : k_at) + (c << GROUP_SHIFT), t);
  }
}
