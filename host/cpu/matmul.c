/*
 * matmul.c — CPU Linear layer: out (M,N) = inp (M,K) @ weight (N,K)ᵀ + bias (N).
 *
 * One OpenBLAS sgemm (row-major, weight transposed) — the only place the CPU backend does
 * O(M·K·N) work, so it gets the BLAS. The bias is written first and sgemm accumulates onto
 * it (beta = 1), which saves a second pass over `out`.
 * Threads: OpenBLAS's own pool. Splitting rows over OpenMP threads with a single-threaded
 * sgemm each (one pool for everything) was tried and measured slower on the ViT-B/32 shapes
 * (800 x 768 x 3072: ~44 vs ~55 GFLOP/s on 2 cores): OpenBLAS shares one packed weight panel.
 */
#include <cblas.h>
#include <string.h>

#include "cpu/cpu_ops.h"

void matmul_forward_cpu(float *out, const float *inp, const float *weight, const float *bias,
                        int M, int K, int N) {
    float beta = 0.0f;
    if (bias) {
        // out[m,:] = bias, then out += inp @ weightᵀ
        for (int m = 0; m < M; m++) memcpy(out + (size_t)m * N, bias, (size_t)N * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, inp, K, weight, K, beta,
                out, N);
}

// --- backward -------------------------------------------------------------------------------
// Forward: out = inp @ weightᵀ + bias  =>  dinp (M,K) = dout (M,N) @ weight (N,K). The weights
// are frozen (prompt learning trains only the inputs), so no dweight / dbias.
void matmul_backward_cpu(float *dinp, const float *dout, const float *weight, int M, int K,
                         int N) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, dout, N, weight, K,
                0.0f, dinp, K);
}
