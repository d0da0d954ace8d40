/*
 * cluster_ops.h — the CPU reference ops of the clustering numerics (host/cpu/cholesky.c,
 * kmeans.c, knn.c): the `*_cpu` twins of the OpsBackend entries the drivers of
 * host/cluster/cluster.h compose. They live in the Ops layer, below the drivers.
 */
#ifndef LAIC_CLUSTER_OPS_H
#define LAIC_CLUSTER_OPS_H

#include <stddef.h>
#include <stdint.h>

// Rows per single-threaded GEMM block (k-means, kNN): fixed, never derived from the thread count.
#define CLUSTER_GEMM_ROWS 256
// Rows per GEMM block of the fused k-means step (kmeans_assign_sums_forward_cpu): larger blocks
// amortise OpenBLAS's packing of the centres. Fixed, so labels never depend on the thread count;
// a data-parallel caller cuts its rows at multiples of it (host/cluster/cluster.c).
#define KMEANS_GEMM_ROWS 512

/* Makes OpenBLAS single-threaded for a region in which OpenMP threads each call it; returns the
 * previous setting for blas_serial_end (host/cpu/kmeans.c). */
int blas_serial_begin(void);
void blas_serial_end(int saved);

// --- ops: Cholesky (host/cpu/cholesky.c) ------------------------------------------------
/* In-place lower Cholesky factor A = L Lᵀ of a symmetric positive-definite A (n,n) double,
 * row-major, lower triangle read; on return the lower triangle holds L and the strict upper
 * triangle is zeroed. Blocked right-looking: unblocked diagonal block, dtrsm panel, dsyrk
 * trailing update, all in double. A non-positive (or NaN) pivot is an error
 * "<what>: matrix is not positive definite (pivot <i> = <v>)" with the 0-based pivot index. */
int cholesky_forward_cpu(double *A, int n, const char *what);
/* Solves B := B (L Lᵀ)⁻¹ in place for B (R,n) double, L (n,n) from cholesky_forward_cpu:
 * two triangular solves, no inverse ever formed. */
void cholesky_solve_right_cpu(double *B, const double *L, int R, int n);
/* Solves B := (L Lᵀ)⁻¹ B in place for B (n,R) double. */
void cholesky_solve_left_cpu(double *B, const double *L, int n, int R);

// --- ops: k-means (host/cpu/kmeans.c) ---------------------------------------------------
/* labels (N) int64, mind (N) float: nearest centre of each row of X (N,d) among C (K,d) and
 * its squared distance, computed as ‖x‖² − 2 x·c + ‖c‖² (float GEMM, clamped at 0); xx (N)
 * and cc (K) are the squared row norms. Ties go to the lowest centre index. The GEMM runs on
 * row blocks of a fixed size, so scratch is O(threads·block·K). */
void kmeans_assign_forward_cpu(int64_t *labels, float *mind, const float *X, const float *xx,
                               const float *C, const float *cc, int N, int d, int K);
/* D (N,K) = ‖x‖² − 2 x·c + ‖c‖² clamped at 0, for X (N,d), C (K,d), squared norms xx (N),
 * cc (K). Fixed row blocks, single-threaded sgemm per block (see Determinism above). */
void sqdist_forward_cpu(float *D, const float *X, const float *xx, const float *C, const float *cc,
                        int N, int d, int K);
/* C (K,d) = mean of the rows of X (N,d) with each label, summed in double in row order;
 * counts (K) receives the cluster sizes. Rows of empty clusters are left untouched. */
void kmeans_update_forward_cpu(float *C, int64_t *counts, const float *X, const int64_t *labels,
                               int N, int d, int K);
/* The Lloyd step whose update is exact in any order (so any split of the rows over threads or
 * ranks gives the same bits): labels (N), mind (N) as kmeans_assign_forward_cpu (row blocks of
 * KMEANS_GEMM_ROWS), counts (K) the cluster sizes, and, when sums != NULL, sums (K,d) int64 =
 * Σ over each cluster's rows of q(x) = round-half-even(x · 2^shift) — fixed-point, integer
 * additions, so the order of the rows (threads, ranks) never changes them. Overwrites its outputs.
 * shift from kmeans_fixed_shift keeps every partial sum below 2^63. */
void kmeans_assign_sums_forward_cpu(int64_t *labels, float *mind, int64_t *sums, int64_t *counts,
                                    const float *X, const float *xx, const float *C,
                                    const float *cc, int N, int d, int K, int shift);
/* C (K,d): each row with counts > 0 = (float)((double)sums · 2^-shift / counts) (the int64 → double
 * and the division round to nearest); rows of empty clusters are left untouched. */
void kmeans_centres_forward_cpu(float *C, const int64_t *sums, const int64_t *counts, int K, int d,
                                int shift);
/* The fixed-point scale for n rows whose |values| <= amax: F = min(50, 62 − bits(n)) fraction
 * bits below the exponent of amax (2^-41 of it at n = 2^20 rows), so every scaled value is below
 * 2^51 and n of them never overflow int64. */
int kmeans_fixed_shift(double amax, int64_t n);
/* out (N) = squared row norms of X (N,d), accumulated in double. */
void rownorm2_forward_cpu(float *out, const float *X, int N, int d);
/* out (N,d) = rows of X divided by ‖x‖ (norm and quotient in double), all-zero rows stay zero
 * (out may equal X). Scale-invariant per row for every finite float row, subnormal to FLT_MAX:
 * no 1e-12 floor (F.normalize's), which left rows scaled by 1e-30 unnormalised. */
void l2normalize_rows_cpu(float *out, const float *X, int N, int d);

// --- ops: kNN (host/cpu/knn.c) ---------------------------------------------------------
/* Cosine top-k of each row of F (N,d), F already L2-normalised: idx (N,k) int64 and sims (N,k)
 * float (may be NULL), sorted by decreasing similarity, self excluded, ties to the lowest
 * index. Block by block: a GEMM of a fixed-size row block against all N rows, then a per-row
 * selection; each thread owns one (block,N) buffer of at most 64 MiB (block shrinks with N,
 * down to 16 rows), so memory is O(N·k + threads·block·N), never N×N. Requires 1 <= k <= N-1. GEMM rounding differs by an ulp between columns, so rows
 * that are exact duplicates need not tie exactly. */
void knn_topk_forward_cpu(int64_t *idx, float *sims, const float *F, int N, int d, int k);
/* Rows q0..q1-1 of knn_topk_forward_cpu's result into idx (q1-q0,k), sims (q1-q0,k) or NULL
 * (the same blocks from q0: bitwise the full call's rows when q0 is a multiple of
 * knn_block_rows(N)). */
void knn_topk_rows_forward_cpu(int64_t *idx, float *sims, const float *F, int N, int d, int k,
                               int q0, int q1);
/* Query rows per GEMM block of the kNN ops (a function of N only). */
int knn_block_rows(int N);
/* scores (N) = fraction of the k neighbours idx (N,k) sharing row i's label (labels (N));
 * mask (N) = 1 where scores == 1 (mask may be NULL). */
void knn_filter_forward_cpu(float *scores, uint8_t *mask, const int64_t *idx,
                            const int64_t *labels, int N, int k);

// --- ops: small dense helpers of the drivers (host/cluster/cluster.c) --------------------------------
/* The OpsBackend entries of the same names (host/ops.h): conversions, a transpose, the Gram
 * matrix (dsyrk, lower) plus λ on the diagonal (skipped when λ == 0), C = A Bᵀ in double,
 * C = A B in float, and the per-row k-means distance in double. Each is exactly the BLAS call
 * or loop the drivers made before they went through the table, so CPU results are unchanged. */
void f32_to_f64_cpu(double *out, const float *inp, size_t n);
void f64_to_f32_cpu(float *out, const double *inp, size_t n);
void transpose_f64_cpu(double *out, const double *inp, int r, int c);
void gram_f64_forward_cpu(double *G, const double *A, double lambda, int n, int k, int trans);
void dgemm_nt_forward_cpu(double *C, const double *A, const double *B, int M, int K, int N);
void sgemm_nn_forward_cpu(float *C, const float *A, const float *B, int M, int K, int N);
void kmeans_rowdist_forward_cpu(double *out, const float *X, const float *C,
                                const int64_t *labels, int N, int d);

#endif
