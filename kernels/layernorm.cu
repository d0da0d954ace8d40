/*
 * layernorm.cu — LayerNorm over the last dim (ln_pre, ln_1, ln_2, ln_post, ln_final):
 *   out (N,C) = (inp - mean) * rstd * weight + bias, rstd = 1/sqrt(var + 1e-5), biased var;
 *   mean, rstd (N) saved when non-NULL.
 *
 * Version 1: one warp per row. Two passes over the row (mean, then the centred sum of
 * squares) rather than E[x²]−E[x]², which cancels badly when |mean| ≫ std; the second read
 * of a 768-float row hits L1. Reductions are fixed-order warp butterflies: deterministic.
 * out may equal inp (each lane rereads its own elements before writing them).
 *
 * Status: compiled for sm_90, unverified on hardware.
 */
#include "common.cuh"

__global__ static void layernorm_forward_kernel1(float *out, float *mean, float *rstd,
                                                 const float *inp, const float *weight,
                                                 const float *bias, int N, int C) {
    // out (N,C), mean (N) or NULL, rstd (N) or NULL, inp (N,C), weight (C), bias (C)
    const int lane = threadIdx.x % 32;
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N) return;   // whole warps leave together: the shuffles below stay full-mask
    const float *x = inp + (size_t)row * C;

    float s = 0.0f;
    for (int c = lane; c < C; c += 32) s += x[c];
    const float m = warp_sum(s) / (float)C;

    float v = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = x[c] - m;
        v += d * d;
    }
    const float r = rsqrtf(warp_sum(v) / (float)C + 1e-5f);

    float *o = out + (size_t)row * C;
    for (int c = lane; c < C; c += 32) o[c] = (x[c] - m) * r * weight[c] + bias[c];
    if (lane == 0) {
        if (mean) mean[row] = m;
        if (rstd) rstd[row] = r;
    }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int N, int C) {
    cudaAssert(N >= 0 && C > 0, "layernorm needs C > 0");
    if (N == 0) return;
    const int block = 256, rows_per_block = block / 32;
    layernorm_forward_kernel1<<<ceil_div_u((size_t)N, rows_per_block), block>>>(
        out, mean, rstd, inp, weight, bias, N, C);
    launchCheck();
}

// --- backward ---------------------------------------------------------------------------------
// dinp (N,C) += LayerNorm input gradient (ACCUMULATES, host/ops.h). With n = (x - mean) * rstd
// and g = dout * weight:  dx = rstd * (g - mean(g) - n * mean(g n)).
// Version 1: one warp per row, fixed-order warp sums (deterministic); each lane touches only
// its own columns of dinp, so the += needs no atomics.
__global__ static void layernorm_backward_kernel1(float *dinp, const float *dout,
                                                  const float *inp, const float *weight,
                                                  const float *mean, const float *rstd, int N,
                                                  int C) {
    const int lane = threadIdx.x % 32;
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C, *dy = dout + (size_t)row * C;
    float *dx = dinp + (size_t)row * C;
    const float m = mean[row], r = rstd[row];
    float sg = 0.0f, sgn = 0.0f;
    for (int c = lane; c < C; c += 32) {
        // forward: o[c] = (x[c] - m) * r * weight[c] + bias[c]
        const float nrm = (x[c] - m) * r, g = dy[c] * weight[c];
        sg += g;
        sgn += g * nrm;
    }
    const float mg = warp_sum(sg) / (float)C, mgn = warp_sum(sgn) / (float)C;
    for (int c = lane; c < C; c += 32) {
        const float nrm = (x[c] - m) * r;
        dx[c] += r * (dy[c] * weight[c] - mg - nrm * mgn);
    }
}

void layernorm_backward(float *dinp, const float *dout, const float *inp, const float *weight,
                        const float *mean, const float *rstd, int N, int C) {
    cudaAssert(N >= 0 && C > 0, "layernorm_backward needs C > 0");
    if (N == 0) return;
    const int block = 256, rows_per_block = block / 32;
    layernorm_backward_kernel1<<<ceil_div_u((size_t)N, rows_per_block), block>>>(
        dinp, dout, inp, weight, mean, rstd, N, C);
    launchCheck();
}
