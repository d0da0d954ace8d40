/*
 * residual.c — CPU elementwise sum for the residual stream: out = a + b (out may alias a or b).
 * Single-threaded: memory-bound, see layernorm.c.
 */
#include "cpu/cpu_ops.h"

void residual_forward_cpu(float *out, const float *a, const float *b, size_t N) {
    for (size_t i = 0; i < N; i++) out[i] = a[i] + b[i];
}

// Forward: out = a + b  =>  da = dout, db = dout (overwrite; either may alias dout).
void residual_backward_cpu(float *da, float *db, const float *dout, size_t N) {
    for (size_t i = 0; i < N; i++) {
        float g = dout[i];
        da[i] = g;
        db[i] = g;
    }
}
