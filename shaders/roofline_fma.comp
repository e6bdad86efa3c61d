#version 450
// FMA-bound kernel: the compute half of the roofline. Each invocation runs `iterations` steps of 8
// independent vec4 FMA chains, 64 FLOPs a step.
layout(local_size_x_id = 0) in;

layout(push_constant) uniform Params {
  uint iterations;
  float seed;
} pc;

layout(binding = 0, std430) writeonly buffer Sink { float sink[]; };

void main() {
  const float f = float(gl_LocalInvocationID.x) * 1e-3 + pc.seed;
  vec4 a[8];
  for (int k = 0; k < 8; ++k) a[k] = vec4(f + float(k));
  const vec4 m = vec4(0.999, 0.998, 0.997, 0.996);
  const vec4 c = vec4(1e-3);
  for (uint i = 0; i < pc.iterations; ++i) {
    a[0] = fma(a[0], m, c);
    a[1] = fma(a[1], m, c);
    a[2] = fma(a[2], m, c);
    a[3] = fma(a[3], m, c);
    a[4] = fma(a[4], m, c);
    a[5] = fma(a[5], m, c);
    a[6] = fma(a[6], m, c);
    a[7] = fma(a[7], m, c);
  }
  vec4 s = a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
  sink[gl_GlobalInvocationID.x] = s.x + s.y + s.z + s.w;
}
