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
