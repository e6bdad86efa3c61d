#version 450
// Streaming read of a KV-sized byte range: the memory half of the roofline that gqavk-bench divides
// kernel times by. Each workgroup reads `texels_per_group` 16-byte texels. CONTIGUOUS_RUNS=false is
// the GPU pattern (lane i reads texel base + i, then steps by the workgroup); true gives each lane a
// contiguous run, the fastest storage-buffer pattern on lavapipe. The bench takes the fastest.
#extension GL_GOOGLE_include_directive : require
#include "kv_load.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const bool CONTIGUOUS_RUNS = false;

layout(push_constant) uniform Params {
  uint texels_per_group;
  uint first_texel;
} pc;

layout(binding = 1, std430) writeonly buffer Sink { uint sink[]; };

void main() {
  const uint n = gl_WorkGroupSize.x;
  const uint lane = gl_LocalInvocationID.x;
  const uint base = pc.first_texel + gl_WorkGroupID.x * pc.texels_per_group;
  const uint per_lane = pc.texels_per_group / n;
  uvec4 x = uvec4(0), y = uvec4(0), z = uvec4(0), w = uvec4(0);
  for (uint i = 0; i < per_lane; i += 4) {
    if (CONTIGUOUS_RUNS) {
      const uint t = base + lane * per_lane + i;
      x ^= kv_texel(t);
      y ^= kv_texel(t + 1);
      z ^= kv_texel(t + 2);
      w ^= kv_texel(t + 3);
    } else {
      const uint t = base + i * n + lane;
      x ^= kv_texel(t);
      y ^= kv_texel(t + n);
      z ^= kv_texel(t + 2 * n);
      w ^= kv_texel(t + 3 * n);
    }
  }
  x ^= y ^ z ^ w;
  sink[gl_GlobalInvocationID.x] = x.x ^ x.y ^ x.z ^ x.w;
}
