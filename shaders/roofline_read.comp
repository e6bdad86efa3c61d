#version 450
// Streaming read of a KV-sized byte range: the memory half of the roofline that gqavk-bench divides
// kernel times by. Each workgroup reads `texels_per_group` 16-byte texels, BATCH fetches in flight
// per lane. CONTIGUOUS_RUNS=false is the GPU pattern (lane i reads texel base + i, then steps by the
// workgroup); true gives each lane a contiguous run, the fastest storage-buffer pattern on lavapipe.
// The bench runs both at two workgroup sizes and takes the fastest.
#extension GL_EXT_control_flow_attributes : require
#extension GL_GOOGLE_include_directive : require
#include "kv_load.glsl"

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const bool CONTIGUOUS_RUNS = false;

layout(push_constant) uniform Params {
  uint texels_per_group;  // a multiple of BATCH * the workgroup size
} pc;

layout(binding = 1, std430) writeonly buffer Sink { uint sink[]; };

const uint BATCH = 8;

void main() {
  const uint n = gl_WorkGroupSize.x;
  const uint lane = gl_LocalInvocationID.x;
  const uint base = gl_WorkGroupID.x * pc.texels_per_group;
  const uint per_lane = pc.texels_per_group / n;
  uvec4 x = uvec4(0);
  for (uint i = 0; i < per_lane; i += BATCH) {
    uvec4 t[BATCH];
    [[unroll]] for (uint u = 0; u < BATCH; ++u) {
      t[u] = kv_texel(CONTIGUOUS_RUNS ? base + lane * per_lane + i + u : base + (i + u) * n + lane);
    }
    [[unroll]] for (uint u = 0; u < BATCH; ++u) x ^= t[u];
  }
  sink[gl_GlobalInvocationID.x] = x.x ^ x.y ^ x.z ^ x.w;
}
