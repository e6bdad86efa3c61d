// Online softmax, shared by the decode kernels and the merge of their splits.
#ifndef GQAVK_SOFTMAX_GLSL
#define GQAVK_SOFTMAX_GLSL

// A finite start for running maxima: drivers may assume no infinities. exp(M_START - s) is 0 for
// any real logit s, so the first key replaces it.
const float M_START = -1.7014117e38;  // about -FLT_MAX / 2

#endif
