#version 450
// Merges the KV splits of decode_split.comp or decode_gpu.comp: for each (sequence, query head) row,
// o = sum_s w_s o_s / (sum_s w_s + sink) with w_s = l_s * exp(m_s - m), m the largest m_s (and the
// row's sink logit, when there are sinks), sink = exp(sink logit - m): the sink joins each row once
// here, never per split. Splits that saw no key (l_s == 0) weigh nothing; a row with no key at all
// yields zeros. A NaN l_s (a NaN key or value) is not "no key": it reaches the output. Fixed order:
// deterministic.
#extension GL_GOOGLE_include_directive : require
#include "softmax.glsl"

layout(local_size_x = 64) in;
layout(constant_id = 0) const uint DV = 128;  // output head dim
const uint QV = DV / 4;

layout(push_constant) uniform Params {
  uint rows;       // B * H
  uint splits;
  uint q_heads;    // H: row r is query head r % H
  uint has_sinks;  // 1: sinks[] holds one logit per query head
} pc;

layout(binding = 0, std430) readonly buffer Partial { vec4 partial[]; };  // [rows, splits, QV]
layout(binding = 1, std430) readonly buffer RowStats { vec2 ml[]; };      // [rows, splits]
layout(binding = 2, std430) writeonly buffer Out { vec4 o_out[]; };      // [rows, QV]
layout(binding = 3, std430) readonly buffer Sinks { float sinks[]; };    // [H] when has_sinks

void main() {
  const uint row = gl_WorkGroupID.x;
  float m = M_START;
  for (uint s = 0; s < pc.splits; ++s) {
    const vec2 st = ml[row * pc.splits + s];
    if (st.y != 0.0) m = max(m, st.x);
  }
  float total = 0.0;
  for (uint s = 0; s < pc.splits; ++s) {
    const vec2 st = ml[row * pc.splits + s];
    if (st.y != 0.0) total += st.y * exp(st.x - m);
  }
  // o below is the row's unnormalised sum against m, total its denominator.
  const float f = pc.has_sinks != 0u ? sink_factor(m, total, sinks[row % pc.q_heads])
                                     : (total != 0.0 ? 1.0 / total : 0.0);
  for (uint i = gl_LocalInvocationID.x; i < QV; i += gl_WorkGroupSize.x) {
    vec4 o = vec4(0.0);
    for (uint s = 0; s < pc.splits; ++s) {
      const vec2 st = ml[row * pc.splits + s];
      if (st.y != 0.0) o += (st.y * exp(st.x - m)) * partial[(row * pc.splits + s) * QV + i];
    }
    o_out[row * QV + i] = o * f;
  }
}
