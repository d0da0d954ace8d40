/*
 * lora.cu — LoRA on one Linear (host/ops.h lora_forward / lora_backward; issue 16): the frozen
 * output out (M,N), a column block of row stride ldo (q and v of the fused in_proj: qkv and
 * qkv + 2C, ldo = 3C), gets scale · (inp downᵀ) upᵀ on top; down (r,K), up (N,r).
 *
 * Four cuBLAS GEMMs each way through laic_gemm (matmul.cu), with leading dimensions, so the q / v
 * blocks are read and written in place. Row-major ↔ column-major as in matmul.cu: a row-major
 * (R,C) matrix with row stride ld is the column-major (C,R) matrix with leading dimension ld.
 * Precision: the forward follows the forward switch (fp32 / tf32 / bf16 operands, fp32
 * accumulation), the backward the backward switch (ops_cuda_set_backward_bf16); the adapters are
 * trained, so there are no resident bf16 copies: they are rounded per call (r·(K+N) elements).
 *
 * Status: compiled for sm_90, unverified on hardware (tests/gpu/test_vit_gpu.c).
 */
#include "common.cuh"

static int forward_mode(void) {
    const int a = ops_cuda_get_matmul();
    return a == LAIC_MM_FP32 ? GEMM_FP32 : a == LAIC_MM_TF32 ? GEMM_TF32 : GEMM_BF16;
}

// Forward: h (M,r) = inp (M,K) @ downᵀ  ->  hᵀ (r,M) = down_cm(K,r)ᵀ @ inp_cm (K,M);
//          out (M,N) += scale · h @ upᵀ  ->  outᵀ (N,M) += scale · up_cm (r,N)ᵀ @ h_cm (r,M).
void lora_forward(float *out, float *h, const float *inp, const float *down, const float *up,
                  float scale, int M, int K, int N, int r, int ldo) {
    cudaAssert(M >= 0 && K >= 0 && N >= 0 && r >= 0 && ldo >= N, "bad lora_forward size");
    if (M == 0 || r == 0) return;
    const int mode = forward_mode();
    if (K > 0)
        laic_gemm(CUBLAS_OP_T, CUBLAS_OP_N, r, M, K, 1.0f, down, K, NULL, inp, K, NULL, 0.0f, h, r,
                  mode);
    else
        cudaCheck(cudaMemsetAsync(h, 0, (size_t)M * r * sizeof(float), cudaStreamPerThread));
    if (N > 0)
        laic_gemm(CUBLAS_OP_T, CUBLAS_OP_N, N, M, r, scale, up, r, NULL, h, r, NULL, 1.0f, out,
                  ldo, mode);
}

// Backward (host/cpu/lora.c has the row-major algebra), column-major:
//   dup   (N,r) += scale · doutᵀ h  ->  dupᵀ (r,N)   += scale · h_cm (r,M) @ dout_cm (N,M)ᵀ
//   dh    (M,r)  = scale · dout up  ->  dhᵀ (r,M)     = scale · up_cm (r,N) @ dout_cm (N,M)
//   ddown (r,K) += dhᵀ inp          ->  ddownᵀ (K,r) += inp_cm (K,M) @ dh_cm (r,M)ᵀ
//   dinp  (M,K) += dh down          ->  dinpᵀ (K,M)  += down_cm (K,r) @ dh_cm (r,M)
void lora_backward(float *dinp, float *ddown, float *dup, float *dh, const float *dout,
                   const float *inp, const float *h, const float *down, const float *up,
                   float scale, int M, int K, int N, int r, int ldo) {
    cudaAssert(M >= 0 && K >= 0 && N >= 0 && r >= 0 && ldo >= N, "bad lora_backward size");
    if (M == 0 || r == 0) return;
    const int mode = ops_cuda_get_backward_bf16() ? GEMM_BF16 : GEMM_FP32;
    if (N > 0) {
        laic_gemm(CUBLAS_OP_N, CUBLAS_OP_T, r, N, M, scale, h, r, NULL, dout, ldo, NULL, 1.0f, dup,
                  r, mode);
        laic_gemm(CUBLAS_OP_N, CUBLAS_OP_N, r, M, N, scale, up, r, NULL, dout, ldo, NULL, 0.0f, dh,
                  r, mode);
    } else {
        cudaCheck(cudaMemsetAsync(dh, 0, (size_t)M * r * sizeof(float), cudaStreamPerThread));
    }
    if (K == 0) return;
    laic_gemm(CUBLAS_OP_N, CUBLAS_OP_T, K, r, M, 1.0f, inp, K, NULL, dh, r, NULL, 1.0f, ddown, K,
              mode);
    if (dinp)
        laic_gemm(CUBLAS_OP_N, CUBLAS_OP_N, K, M, r, 1.0f, down, K, NULL, dh, r, NULL, 1.0f, dinp,
                  K, mode);
}
