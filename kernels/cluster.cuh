/*
 * cluster.cuh — launchers of the clustering ops (kernels/cholesky.cu, kmeans.cu, knn.cu) and
 * the helpers they share. Included by those files and by ops_cuda.cu only.
 *
 * Promises: each launcher has exactly the semantics of its OpsBackend entry in host/ops.h
 * (row-major, device pointers, default stream). cuBLAS is used through cluster_cublas(), a
 * handle of its own in the default (non-TF32) math mode, so the precision switch of
 * matmul.cu never reaches the solvers. Scratch that the ops need call after call (GEMM tiles,
 * member lists) lives in buffers that only grow (ScratchBuf), so steady state allocates nothing.
 *
 * Status: compiled for sm_90, unverified on hardware.
 */
#ifndef LAIC_KERNELS_CLUSTER_CUH
#define LAIC_KERNELS_CLUSTER_CUH

#include <climits>

#include "common.cuh"

// Exact float <-> double conversions even under --use_fast_math (the Makefile no longer passes
// it, but a user's NVCCFLAGS may). That flag implies -ftz=true, and
// nvcc then emits cvt.ftz.f64.f32 / cvt.rn.ftz.f32.f64 for plain casts and __double2float_rn
// (checked in the PTX): a subnormal float (|x| < 2^-126) widens to ±0, and a double whose
// float rounding is subnormal narrows to ±0. The ops promise C's conversions (exact widening,
// round to nearest even; the centre update promises the CPU's bits), so the subnormal range
// is done in integers here. Emulated on the host against C casts (random bit patterns,
// subnormal ties, values rounding up to FLT_MIN, -0): equal.
__device__ __forceinline__ double f2d_exact(float x) {
    const int b = __float_as_int(x);
    if ((b & 0x7f800000) != 0) return (double)x;              // normal, inf, nan: exact
    const double m = (double)(b & 0x007fffff) * 0x1p-149;     // subnormal or zero: exact
    return b < 0 ? -m : m;
}
__device__ __forceinline__ float d2f_rn_exact(double v) {
    const double a = fabs(v);
    if (!(a < 0x1p-126)) return __double2float_rn(v);   // normal result, inf, nan, overflow
    // a·2^149 is exact (power-of-two scale) and < 2^23: its nearest integer (ties to even) is
    // the float's significand field; 2^23 is FLT_MIN's bit pattern when it rounds up.
    const int m = __double2int_rn(a * 0x1p149);
    return __int_as_float(__double_as_longlong(v) < 0 ? (int)(0x80000000u | (unsigned)m) : m);
}

// The cuBLAS handle of the clustering ops (created on first use, never destroyed).
cublasHandle_t cluster_cublas(void);

// Row-major C (M,N) = alpha·op(A)·op(B) + beta·C through column-major cuBLAS: a row-major X
// with leading dimension ld is the column-major Xᵀ, so C = op(A) op(B) is Cᵀ = op(B)ᵀ op(A)ᵀ.
void dgemm_rm(int ta, int tb, int M, int N, int K, double alpha, const double *A, int lda,
              const double *B, int ldb, double beta, double *C, int ldc);
// Row-major lower triangle of C (n,n) = alpha·A Aᵀ + beta·C for A (n,k) (trans 0), or
// alpha·AᵀA + beta·C for A (k,n) (trans 1); the row-major strict upper triangle is untouched.
void dsyrk_rm_lower(int trans, int n, int k, double alpha, const double *A, int lda, double beta,
                    double *C, int ldc);

// --- launchers (host/ops.h entries) ----------------------------------------------------------
// cholesky.cu
void f32_to_f64(double *out, const float *inp, size_t n);
void f64_to_f32(float *out, const double *inp, size_t n);
void transpose_f64(double *out, const double *inp, int r, int c);
void gram_f64_forward(double *G, const double *A, double lambda, int n, int k, int trans);
void dgemm_nt_forward(double *C, const double *A, const double *B, int M, int K, int N);
void sgemm_nn_forward(float *C, const float *A, const float *B, int M, int K, int N);
int cholesky_forward(double *A, int n, const char *what);
void cholesky_solve_right(double *B, const double *L, int R, int n);
void cholesky_solve_left(double *B, const double *L, int n, int R);
// kmeans.cu
void rownorm2_forward(float *out, const float *X, int N, int d);
void l2normalize_rows(float *out, const float *X, int N, int d);
void sqdist_forward(float *D, const float *X, const float *xx, const float *C, const float *cc,
                    int N, int d, int K);
void kmeans_assign_forward(int64_t *labels, float *mind, const float *X, const float *xx,
                           const float *C, const float *cc, int N, int d, int K);
void kmeans_update_forward(float *C, int64_t *counts, const float *X, const int64_t *labels,
                           int N, int d, int K);
void kmeans_rowdist_forward(double *out, const float *X, const float *C, const int64_t *labels,
                            int N, int d);
void kmeans_assign_sums_forward(int64_t *labels, float *mind, int64_t *sums, int64_t *counts,
                                const float *X, const float *xx, const float *C, const float *cc,
                                int N, int d, int K, int shift);
void kmeans_centres_forward(float *C, const int64_t *sums, const int64_t *counts, int K, int d,
                            int shift);
// knn.cu
void knn_topk_forward(int64_t *idx, float *sims, const float *F, int N, int d, int k);
void knn_topk_rows_forward(int64_t *idx, float *sims, const float *F, int N, int d, int k, int r0,
                           int r1);
void knn_filter_forward(float *scores, uint8_t *mask, const int64_t *idx, const int64_t *labels,
                        int N, int k);

#endif
