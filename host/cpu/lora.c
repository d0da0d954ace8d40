/*
 * lora.c — CPU LoRA on one Linear (host/ops.h lora_forward / lora_backward; issue 16).
 *
 * The frozen Linear's output out (M,N) gets scale · U (D x) on top, D = down (r,K), U = up
 * (N,r): PEFT's lora_B(lora_A(x)) * scaling with scaling = α/r and no dropout, as SEIC stage 2
 * applies it to q and v of every visual block (SPEC §9.3). out may be a column block of a wider
 * matrix (row stride ldo): q and v are the first and last thirds of the fused in_proj output,
 * so nothing is copied out and back. Four OpenBLAS sgemms each way, with their leading
 * dimensions; the parameter gradients use beta = 1 (accumulate).
 */
#include <cblas.h>

#include "cpu/cpu_ops.h"

// Forward: h (M,r) = inp (M,K) @ downᵀ;  out[:, 0:N] += scale · h @ upᵀ (row stride ldo).
void lora_forward_cpu(float *out, float *h, const float *inp, const float *down, const float *up,
                      float scale, int M, int K, int N, int r, int ldo) {
    if (M <= 0 || r <= 0) return;
    if (K > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, r, K, 1.0f, inp, K, down, K, 0.0f,
                    h, r);
    else
        for (size_t i = 0; i < (size_t)M * r; i++) h[i] = 0.0f;
    if (N > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, r, scale, h, r, up, r, 1.0f,
                    out, ldo);
}

// Backward of  y = scale · (inp downᵀ) upᵀ  with dout = dy (M,N) at row stride ldo:
//   dup   (N,r) += scale · doutᵀ h          [y = scale · h upᵀ]
//   dh    (M,r)  = scale · dout up          (overwrites)
//   ddown (r,K) += dhᵀ inp                  [h = inp downᵀ]
//   dinp  (M,K) += dh down                  (accumulates onto the frozen path's dinp)
void lora_backward_cpu(float *dinp, float *ddown, float *dup, float *dh, const float *dout,
                       const float *inp, const float *h, const float *down, const float *up,
                       float scale, int M, int K, int N, int r, int ldo) {
    if (M <= 0 || r <= 0) return;
    if (N > 0) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, r, M, scale, dout, ldo, h, r,
                    1.0f, dup, r);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, r, N, scale, dout, ldo, up, r,
                    0.0f, dh, r);
    } else {
        for (size_t i = 0; i < (size_t)M * r; i++) dh[i] = 0.0f;
    }
    if (K <= 0) return;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, K, M, 1.0f, dh, r, inp, K, 1.0f,
                ddown, K);
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, r, 1.0f, dh, r, down, K,
                    1.0f, dinp, K);
}
