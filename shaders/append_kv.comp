#version 450
// Device append: writes a batch of new tokens' K and V from the engine's buffers into their cache
// blocks, converting to the storage type on the way; the host only moves the block tables.
// One workgroup = one (token, KV head, K or V) row; lane c writes texel c of the row (a texel is
// 16 bytes: VALS stored values), so a row's stores cover its texel column in the token group.
// Sources are [tokens, G, Dk] (K) and [tokens, G, Dv] (V) of f32, f16 or bf16, read as 32-bit
// words. Values too large for f16 storage are counted (the host reports them) and stored as
// infinity, as an f16 engine would hold them.
#extension GL_GOOGLE_include_directive : require

layout(local_size_x_id = 0) in;  // max(ROW_K, ROW_V): one lane per texel of the wider row
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

layout(binding = 0, std430) writeonly buffer KvPool { uvec4 kv_pool[]; };
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
  const uint token = gl_WorkGroupID.x, g = gl_WorkGroupID.y;
  const bool is_v = gl_WorkGroupID.z == 1u;
  const uint dim = is_v ? DV : DK;
  const uint c = gl_LocalInvocationID.x;
  if (c >= dim / VALS) return;
  const uvec2 at = token_at[token];
  uint v_at;
  const uint k_at = kv_key_at(at.x, g, at.y, v_at);
  const uint first = (is_v ? pc.v_first : pc.k_first) + (token * pc.kv_heads + g) * dim + c * VALS;
  uvec4 t;
  if (KV_F16) {
    for (uint i = 0; i < 4u; ++i) t[i] = to_half2(src_pair(is_v, first + 2u * i));
  } else {
    const vec2 a = src_pair(is_v, first), b = src_pair(is_v, first + 2u);
    t = floatBitsToUint(vec4(a, b));
  }
  kv_pool[(is_v ? v_at : k_at) + (c << GROUP_SHIFT)] = t;
}
