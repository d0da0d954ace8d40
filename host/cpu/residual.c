/*
 * residual.c — CPU elementwise sum for the residual stream: out = a + b (out may alias a or b).
 * Single-threaded: memory-bound, see layernorm.c.
 */
#include "cpu/cpu_ops.h"

void residual_forward_cpu(float *out, const float *a, const float *b, size_t N) {
    for (size_t i = 0; i < N; i++) out[i] = a[i] + b[i];
}
