#version 450
// FMA-bound kernel: the compute half of the roofline. Each invocation keeps CHAINS vec4
// accumulators and runs UNROLL steps per loop trip, so a driver that masks every loop-carried
// write (lavapipe) pays that once per trip, not per step. A step is one vec4 FMA per chain, in one
// of two shapes:
//  - CHAINED: acc = acc * m + c, the classic dependent chain; fine where the hardware interleaves
//    many invocations (GPUs), slow where a compiler lays each chain out serially;
//  - shared factor: acc += x * y, with y a scalar that changes every step (one multiply a step,
//    not counted) and x fixed per component, so the multiplies are independent and only the adds
//    form chains. Every x differs, so no two accumulators can be merged by a compiler.
// The best shape differs between devices and compilers: gqavk-bench times several and keeps the
// fastest. A step does 8 * CHAINS FLOPs per invocation.
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 1) const uint CHAINS = 3;
layout(constant_id = 2) const uint UNROLL = 32;
layout(constant_id = 3) const bool CHAINED = false;

layout(push_constant) uniform Params {
  uint trips;  // loop trips of UNROLL steps
  float seed;
} pc;

layout(binding = 0, std430) writeonly buffer Sink { float sink[]; };

void main() {
  const float f = float(gl_LocalInvocationID.x) * 1e-3 + pc.seed;
  vec4 acc[CHAINS];
  vec4 x[CHAINS];
  [[unroll]] for (uint k = 0; k < CHAINS; ++k) {
    x[k] = f + vec4(4 * k + 1, 4 * k + 2, 4 * k + 3, 4 * k + 4) * 0.25;
    acc[k] = CHAINED ? x[k] : vec4(0.0);
  }
  // The factors stay normal numbers for any realistic trip count.
  float y = pc.seed;
  const float m = 0.99999;
  const vec4 mc = vec4(0.999, 0.998, 0.997, 0.996);
  const vec4 c = vec4(1e-3);
  for (uint i = 0; i < pc.trips; ++i) {
    [[unroll]] for (uint u = 0; u < UNROLL; ++u) {
      if (!CHAINED) y *= m;
      [[unroll]] for (uint k = 0; k < CHAINS; ++k) {
        acc[k] = CHAINED ? fma(acc[k], mc, c) : fma(x[k], vec4(y), acc[k]);
      }
    }
  }
  vec4 s = vec4(0.0);
  [[unroll]] for (uint k = 0; k < CHAINS; ++k) s += acc[k];
  sink[gl_GlobalInvocationID.x] = s.x + s.y + s.z + s.w;
}
