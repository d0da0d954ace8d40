/*
 * l2norm.cu — row-wise L2 normalisation of features:
 *   out (N,C) = inp / max(||inp||_2, 1e-12), as torch.nn.functional.normalize.
 *
 * Version 1: one warp per row, fixed-order warp reduction (deterministic). out may equal inp:
 * each lane reads exactly the elements it later writes, and the norm is complete (shuffle)
 * before any write.
 *
 * Status: compiled for sm_90, unverified on hardware.
 */
#include "common.cuh"

__global__ static void l2norm_forward_kernel1(float *out, const float *inp, int N, int C) {
    // out (N,C), inp (N,C)
    const int lane = threadIdx.x % 32;
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C;
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) s += x[c] * x[c];
    // Divides as F.normalize does (x / max(norm, eps), IEEE division); the CPU op multiplies by
    // a float reciprocal: the two agree within an ulp or two.
    const float norm = fmaxf(sqrtf(warp_sum(s)), 1e-12f);
    float *o = out + (size_t)row * C;
    for (int c = lane; c < C; c += 32) o[c] = x[c] / norm;
}

void l2norm_forward(float *out, const float *inp, int N, int C) {
    cudaAssert(N >= 0 && C >= 0, "negative l2norm size");
    if (N == 0 || C == 0) return;
    const int block = 256;
    l2norm_forward_kernel1<<<ceil_div_u((size_t)N, block / 32), block>>>(out, inp, N, C);
    launchCheck();
}

// --- backward ---------------------------------------------------------------------------------
// Forward: o = x / max(||x||, 1e-12). Above the floor dx = (dout - y (y·dout)) / ||x||, y = o;
// at the floor dx = dout / 1e-12. One warp per row; dinp may equal dout (each lane reads its
// own columns of dout before writing them, and both sums are complete before any write).
__global__ static void l2norm_backward_kernel1(float *dinp, const float *dout, const float *inp,
                                               int N, int C) {
    const int lane = threadIdx.x % 32;
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C, *dy = dout + (size_t)row * C;
    float *dx = dinp + (size_t)row * C;
    float s = 0.0f, xd = 0.0f;
    for (int c = lane; c < C; c += 32) {
        s += x[c] * x[c];
        xd += x[c] * dy[c];
    }
    const float nrm = sqrtf(warp_sum(s));
    xd = warp_sum(xd);
    if (nrm > 1e-12f) {
        const float yd = xd / nrm;   // y · dout
        for (int c = lane; c < C; c += 32) dx[c] = (dy[c] - x[c] / nrm * yd) / nrm;
    } else {
        for (int c = lane; c < C; c += 32) dx[c] = dy[c] / 1e-12f;
    }
}

void l2norm_backward(float *dinp, const float *dout, const float *inp, int N, int C) {
    cudaAssert(N >= 0 && C >= 0, "negative l2norm_backward size");
    if (N == 0 || C == 0) return;
    const int block = 256;
    l2norm_backward_kernel1<<<ceil_div_u((size_t)N, block / 32), block>>>(dinp, dout, inp, N, C);
    launchCheck();
}
