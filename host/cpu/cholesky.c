/*
 * cholesky.c — CPU blocked Cholesky factorisation and the triangular solves built on it.
 *
 * Promises: everything in double; A = L Lᵀ by a right-looking blocked algorithm (a handwritten
 * unblocked factor of each diagonal block, then BLAS dtrsm for the panel below it and dsyrk
 * for the trailing update); solves by two triangular solves, never an explicit inverse.
 * A non-positive pivot is reported with its 0-based index (it is the leading minor of that
 * order that is not positive definite).
 */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "cpu/cluster_ops.h"
#include "io/err.h"

// Block size: large enough for dsyrk/dtrsm to run at BLAS-3 speed, small enough that the
// unblocked part (nb³/3 scalar flops per block) stays negligible.
#define CHOL_NB 96

// Unblocked lower Cholesky of the b×b diagonal block at A (leading dimension lda);
// `off` is the block's global index, for the error message.
static int chol_unblocked(double *A, int b, int lda, int off, const char *what) {
    for (int j = 0; j < b; j++) {
        double *rj = A + (size_t)j * lda;
        double s = rj[j];
        for (int p = 0; p < j; p++) s -= rj[p] * rj[p];
        if (!(s > 0.0))   // also catches NaN
            return laic_error("%s: matrix is not positive definite (pivot %d = %.6g)", what,
                              off + j, s);
        double ljj = sqrt(s);
        rj[j] = ljj;
        for (int i = j + 1; i < b; i++) {
            double *ri = A + (size_t)i * lda;
            double t = ri[j];
            for (int p = 0; p < j; p++) t -= ri[p] * rj[p];
            ri[j] = t / ljj;
        }
    }
    return 0;
}

int cholesky_forward_cpu(double *A, int n, const char *what) {
    if (!what) what = "cholesky";
    for (int k = 0; k < n; k += CHOL_NB) {
        int b = n - k < CHOL_NB ? n - k : CHOL_NB;
        double *A11 = A + (size_t)k * n + k;   // (b,b)
        if (chol_unblocked(A11, b, n, k, what)) return -1;
        int m = n - k - b;
        if (m == 0) break;
        double *A21 = A + (size_t)(k + b) * n + k;       // (m,b)
        double *A22 = A + (size_t)(k + b) * n + k + b;   // (m,m), lower part updated
        // A21 := A21 L11⁻ᵀ
        cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, m, b, 1.0,
                    A11, n, A21, n);
        // A22 := A22 − A21 A21ᵀ (lower triangle only)
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, m, b, -1.0, A21, n, 1.0, A22, n);
    }
    for (int i = 0; i < n; i++)
        memset(A + (size_t)i * n + i + 1, 0, sizeof(double) * (size_t)(n - i - 1));
    return 0;
}

void cholesky_solve_right_cpu(double *B, const double *L, int R, int n) {
    if (R == 0 || n == 0) return;
    // B G⁻¹ with G = L Lᵀ: first Y Lᵀ = B (Y = B L⁻ᵀ), then X L = Y (X = Y L⁻¹).
    cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, R, n, 1.0, L, n,
                B, n);
    cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasNoTrans, CblasNonUnit, R, n, 1.0, L,
                n, B, n);
}

void cholesky_solve_left_cpu(double *B, const double *L, int n, int R) {
    if (R == 0 || n == 0) return;
    // G⁻¹ B: L Y = B, then Lᵀ X = Y.
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, n, R, 1.0, L, n,
                B, R);
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, n, R, 1.0, L, n,
                B, R);
}
