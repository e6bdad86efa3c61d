// Online softmax and the options that shape a row (DESIGN.md, Semantics), shared by the decode and
// prefill kernels and the merge of decode's splits.
#ifndef GQAVK_SOFTMAX_GLSL
#define GQAVK_SOFTMAX_GLSL

// A finite start for running maxima: drivers may assume no infinities. exp(M_START - s) is 0 for
// any real logit s, so the first key replaces it.
const float M_START = -1.7014117e38;  // about -FLT_MAX / 2

// Softcap c > 0: c * tanh(s / c), without the overflow of tanh's textbook form for large |s|
// (exp(2x) of a big logit is infinity, and inf / inf NaN). c <= 0: s unchanged (no softcap).
float apply_softcap(float s, float c) {
  if (c <= 0.0) return s;
  const float x = s / c;
  const float e = exp(-2.0 * abs(x));
  return c * sign(x) * ((1.0 - e) / (1.0 + e));
}

// A row's finished state (running max m, sum l of exp(s - m), unnormalised output acc) joined by
// a sink logit: returns f with o = acc * f. The sink adds exp(sink - m') to the denominator and
// nothing to the output (m' = max(m, sink)). A row that saw no key (l == 0) yields zeros.
float sink_factor(float m, float l, float sink) {
  if (l == 0.0) return 0.0;  // no key; a NaN l (a NaN input) propagates
  const float m2 = max(m, sink);
  const float keep = exp(m - m2);
  return keep / (l * keep + exp(sink - m2));
}

#endif
