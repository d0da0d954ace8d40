/*
 * gelu.c — CPU QuickGELU, CLIP's activation: x * sigmoid(1.702 x).
 *
 * Written as x / (1 + exp(-1.702 x)): for very negative x, exp overflows to inf and the result
 * is -0, never NaN; for very positive x it is x.
 */
#include <math.h>

#include "cpu/cpu_ops.h"

void quickgelu_forward_cpu(float *out, const float *inp, size_t N) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        out[i] = x / (1.0f + expf(-1.702f * x));
    }
}

// Forward: out = x / (1 + exp(-1.702 x)) = x s, s = sigmoid(1.702 x)
//   => d out / dx = s + 1.702 x s (1 - s).
// For very negative x, s = 1 / inf = 0 and the gradient is 0 (never NaN: x stays finite).
void quickgelu_backward_cpu(float *dinp, const float *dout, const float *inp, size_t N) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float s = 1.0f / (1.0f + expf(-1.702f * x));
        dinp[i] = dout[i] * (s + 1.702f * x * s * (1.0f - s));
    }
}
