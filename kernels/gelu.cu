/*
 * gelu.cu — QuickGELU, CLIP's MLP activation: out = inp * sigmoid(1.702 * inp), N elements.
 * out may equal inp (pure elementwise).
 *
 * Version 1: grid-stride loop, one float per thread per step (coalesced). The fused
 * bias + QuickGELU path is the epilogue of the bf16 WMMA GEMM (matmul.cu, gelu flag of
 * ops_cuda_matmul_bf16) and of bias_add_forward_kernel1 after cuBLAS.
 *
 * Status: compiled for sm_90, unverified on hardware.
 */
#include "common.cuh"

__global__ static void quickgelu_forward_kernel1(float *out, const float *inp, size_t N) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = quickgelu(inp[i]);
}

void quickgelu_forward(float *out, const float *inp, size_t N) {
    if (N == 0) return;
    const int block = 256;
    quickgelu_forward_kernel1<<<grid_for(N, block), block>>>(out, inp, N);
    launchCheck();
}

// --- backward ---------------------------------------------------------------------------------
// Forward: out = x s, s = sigmoid(1.702 x)  =>  dinp = dout * (s + 1.702 x s (1 - s)).
// inp is the saved pre-activation; dinp may equal dout.
__global__ static void quickgelu_backward_kernel1(float *dinp, const float *dout,
                                                  const float *inp, size_t N) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N;
         i += (size_t)gridDim.x * blockDim.x) {
        const float x = inp[i];
        const float s = 1.0f / (1.0f + expf(-1.702f * x));
        dinp[i] = dout[i] * (s + 1.702f * x * s * (1.0f - s));
    }
}

void quickgelu_backward(float *dinp, const float *dout, const float *inp, size_t N) {
    if (N == 0) return;
    const int block = 256;
    quickgelu_backward_kernel1<<<grid_for(N, block), block>>>(dinp, dout, inp, N);
    launchCheck();
}
