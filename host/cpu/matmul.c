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
#include <stdlib.h>
#include <string.h>

#include "io/err.h"

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
// Forward: out = inp @ weightᵀ + bias  =>  dinp (M,K) = dout (M,N) @ weight (N,K).
void matmul_backward_cpu(float *dinp, const float *dout, const float *weight, int M, int K,
                         int N) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, dout, N, weight, K,
                0.0f, dinp, K);
}

// Forward: out = inp @ weightᵀ + bias  =>  dweight (N,K) += doutᵀ (N,M) @ inp (M,K) (one sgemm
// with beta 1) and dbias (N) += Σ_m dout[m,:], each column summed in row order in double, added
// to dbias in double and rounded once, so the CUDA twin (one thread per column, same order)
// gives the same bits.
/* dbias[c0..c1) += column sums of dout (M,N), rows in order, in double. Four rows per pass over
 * the accumulators (their additions still in row order: the same bits as one row at a time). */
CPU_VECTOR_CLONES
static void bias_grad_cols(float *dbias, double *s, const float *dout, int M, int N, int c0,
                           int c1) {
    const size_t ld = (size_t)N;
    for (int n = c0; n < c1; n++) s[n] = 0.0;
    int m = 0;
    for (; m + 4 <= M; m += 4) {
        const float *r = dout + (size_t)m * ld;
        for (int n = c0; n < c1; n++) s[n] = s[n] + r[n] + r[ld + n] + r[2 * ld + n] + r[3 * ld + n];
    }
    for (; m < M; m++) {
        const float *row = dout + (size_t)m * ld;
        for (int n = c0; n < c1; n++) s[n] += row[n];
    }
    for (int n = c0; n < c1; n++) dbias[n] = (float)((double)dbias[n] + s[n]);
}

void matmul_backward_weight_cpu(float *dweight, float *dbias, const float *dout, const float *inp,
                                int M, int K, int N) {
    if (M > 0 && K > 0 && N > 0)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, dout, N, inp, K, 1.0f,
                    dweight, K);
    if (!dbias || N <= 0) return;
    // row by row into a double accumulator per column: each column's sum still runs over m in
    // order (the CUDA twin's order), but the reads are contiguous; columns split over threads
    double *s = mallocCheck((size_t)N * sizeof *s);
#pragma omp parallel for schedule(static) if ((size_t)M * N > 262144)
    for (int c0 = 0; c0 < N; c0 += 256)
        bias_grad_cols(dbias, s, dout, M, N, c0, c0 + 256 < N ? c0 + 256 : N);
    free(s);
}
