#version 450
// The decode floor: the least work any decode kernel does with the KV bytes it reads, timed by
// gqavk-bench beside the roofline. It streams a KV-sized byte range the way decode reads K and V (a
// workgroup is one subgroup; lane i reads texel base + i, then steps by the workgroup), widens (or
// dequantises, scales aside) every value to f32 and feeds it to HEADS multiply-adds, one per query head sharing the KV head: exactly
// decode's 4 * H * L * D FLOPs for those bytes. No softmax, no exchange between lanes; fetches are
// issued in batches ahead of their math, as decode issues them.
// Where this kernel is slower than the roofline, the gap is what widening and issuing loads and
// FMAs from one instruction stream cost on that device, which a decode kernel pays as well.
#extension GL_EXT_control_flow_attributes : require
#extension GL_GOOGLE_include_directive : require
#include "kv_load.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint HEADS = 4;
layout(constant_id = 2) const uint KV_TYPE = 1;  // storage type: kv_block.h
#include "kv_codec.glsl"

layout(push_constant) uniform Params {
  uint texels_per_group;  // a multiple of BATCH * the workgroup size
  float weight;
} pc;

layout(binding = 1, std430) writeonly buffer Sink { float sink[]; };

const uint BATCH = 8;

void main() {
  const uint n = gl_WorkGroupSize.x;
  const uint lane = gl_LocalInvocationID.x;
  const uint base = gl_WorkGroupID.x * pc.texels_per_group;
  float w[HEADS];
  [[unroll]] for (uint h = 0; h < HEADS; ++h) w[h] = pc.weight * float(h + 1);
  vec4 acc[HEADS * 2];
  [[unroll]] for (uint i = 0; i < HEADS * 2; ++i) acc[i] = vec4(0.0);
  for (uint i = 0; i < pc.texels_per_group; i += BATCH * n) {
    uvec4 t[BATCH];
    [[unroll]] for (uint u = 0; u < BATCH; ++u) t[u] = kv_texel(base + i + u * n + lane);
    [[unroll]] for (uint u = 0; u < BATCH; ++u) {
      [[unroll]] for (uint e = 0; e < KV_PARTS; ++e) {
        const vec4 v = kv_part(t[u], e);
        [[unroll]] for (uint h = 0; h < HEADS; ++h) acc[h * 2 + (e & 1u)] += w[h] * v;
      }
    }
  }
  vec4 s = vec4(0.0);
  [[unroll]] for (uint i = 0; i < HEADS * 2; ++i) s += acc[i];
  sink[gl_GlobalInvocationID.x] = s.x + s.y + s.z + s.w;
}
