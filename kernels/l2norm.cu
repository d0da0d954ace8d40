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
    // Divide (not multiply by a reciprocal) to match the reference's x / max(norm, eps).
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
