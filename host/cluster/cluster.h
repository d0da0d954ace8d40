/*
 * cluster.h — the clustering numerics of laic on the CPU: ridge (blocked Cholesky), k-means,
 * cosine kNN + neighbour-consistency filter. Metrics live in metrics.h.
 *
 * Two layers:
 * - ops (`*_cpu`, in host/cpu/cholesky.c, kmeans.c, knn.c): ops-style signatures — outputs,
 *   inputs, sizes; plain host pointers; no I/O, no allocation policy beyond scratch. They are
 *   meant to become OpsBackend entries next to a CUDA twin (see the list at the end).
 * - drivers (host/cluster/cluster.c): ridge_solve, ridge_reduce, kmeans_fit, knn_topk — compose the
 *   ops, own the scratch memory, restarts, seeding and tiling.
 *
 * Every function that can fail records a one-line message with laic_error() and returns -1;
 * nothing here prints except kmeans_fit's per-restart line (opt-in, stderr).
 *
 * Dimension letters: N rows (images), d feature width, M texts (ridge), K clusters,
 * k neighbours. Matrices are row-major float32 unless marked double.
 *
 * Determinism: every reduction here runs in a fixed order, and the GEMMs of k-means and kNN
 * are cut into row blocks of a fixed size, each multiplied by a single-threaded sgemm call
 * (OpenMP spreads the blocks over threads). A GEMM's rounding can depend on where an element
 * falls in OpenBLAS's tiling — identical columns may differ by an ulp — so letting OpenBLAS
 * split the work by thread count would make labels thread-dependent; fixed blocks do not.
 */
#ifndef LAIC_CLUSTER_H
#define LAIC_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "io/npy.h"

// Rows per single-threaded GEMM block (k-means, kNN): fixed, never derived from the thread count.
#define CLUSTER_GEMM_ROWS 256

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
/* out (N) = squared row norms of X (N,d), accumulated in double. */
void rownorm2_forward_cpu(float *out, const float *X, int N, int d);
/* out (N,d) = rows of X divided by max(‖x‖, 1e-12) (out may equal X). */
void l2normalize_rows_cpu(float *out, const float *X, int N, int d);

// --- ops: kNN (host/cpu/knn.c) ---------------------------------------------------------
/* Cosine top-k of each row of F (N,d), F already L2-normalised: idx (N,k) int64 and sims (N,k)
 * float (may be NULL), sorted by decreasing similarity, self excluded, ties to the lowest
 * index. Block by block: a GEMM of a fixed-size row block against all N rows, then a per-row
 * selection; each thread owns one (block,N) buffer of at most 64 MiB (block shrinks with N,
 * down to 16 rows), so memory is O(N·k + threads·block·N), never N×N. Requires 1 <= k <= N-1. GEMM rounding differs by an ulp between columns, so rows
 * that are exact duplicates need not tie exactly. */
void knn_topk_forward_cpu(int64_t *idx, float *sims, const float *F, int N, int d, int k);
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

// --- backend ---------------------------------------------------------------------------------
struct OpsBackend;
/* The backend every driver below runs its ops on (process-wide; default &ops_cpu, NULL resets
 * to it). The drivers keep their host-pointer interface: on the CPU backend they work on the
 * caller's arrays in place, exactly as before; on CUDA they copy inputs to the device, run
 * there, and copy the outputs back. Device memory exhaustion is an ordinary -1 error. */
void cluster_set_backend(const struct OpsBackend *ops);
const struct OpsBackend *cluster_backend(void);

// --- drivers (host/cluster/cluster.c) -----------------------------------------------------------
typedef enum { RIDGE_AUTO = 0, RIDGE_PRIMAL, RIDGE_DUAL } RidgeForm;

/* C (N,M) = X Tᵀ (T Tᵀ + λI_M)⁻¹ for X (N,d), T (M,d), λ > 0.
 * RIDGE_PRIMAL solves the M×M system (paper eq. 5); RIDGE_DUAL the d×d push-through system
 * C = X (TᵀT + λI_d)⁻¹ Tᵀ; RIDGE_AUTO picks the smaller (M <= d → primal). Gram matrices,
 * factorisation and solves in double; output rounded to float. Returns -1 on λ <= 0 or a
 * non-positive-definite system (error names the pivot). */
int ridge_solve(float *C, const float *X, const float *T, double lambda, int N, int M, int d,
                RidgeForm form);
/* The exact reduction of SPEC §5: A = (TᵀT + λI_d)⁻¹ Tᵀ (d,M), A Aᵀ = L Lᵀ (d×d Cholesky),
 * Z (N,d) = X L, so Z Zᵀ = C Cᵀ. Needs rank(T) = d (M >= d), otherwise A Aᵀ is singular and the
 * factorisation fails with the pivot index. */
int ridge_reduce(float *Z, const float *X, const float *T, double lambda, int N, int M, int d);

typedef enum { KMEANS_INIT_PP = 0, KMEANS_INIT_RANDOM, KMEANS_INIT_GIVEN } KMeansInit;

typedef struct {
    int K;                 // clusters, 1 <= K <= N (K <= sample when sampling)
    int iters;             // max centre updates per restart (300)
    int restarts;          // independent runs, best objective kept (10; 1 with a given init)
    uint64_t seed;         // restart r draws from rng stream (seed, r)
    double tol;            // stop when Σ‖c_new − c_old‖² <= tol (0: only when nothing moves)
    int spherical;         // L2-normalise rows and centres (cosine k-means)
    KMeansInit init;
    const float *init_centers;   // (K,d) for KMEANS_INIT_GIVEN
    size_t sample;         // 0: train on all rows; else a seeded subsample of this many rows
    int verbose;           // 1: one line per restart on stderr
    double *trace;         // optional (iters+1): objective after each assignment, best restart
    int *trace_len;        // optional: number of entries written to trace
} KMeansOpts;

/* Lloyd k-means of X (N,d). labels (N) int64, centers (K,d) (may be NULL), *objective = Σ of
 * squared distances of each row to its centre (double; on normalised rows when spherical).
 *
 * Each restart: init (k-means++ greedy with 2+⌊ln K⌋ trials as scikit-learn, random distinct
 * rows, or the given centres) → assign → repeat {update, assign} until no label changes, the
 * centre shift <= tol, or iters updates. An empty cluster is re-seeded, during the update,
 * with the training row farthest from its current centre (largest mind, ties to the lowest
 * row, each row used at most once per update); the next assignment then moves it. With
 * sampling, training runs on the subsample and every row is assigned once to the final
 * centres. Same seed → bitwise identical result for any thread count. */
int kmeans_fit(int64_t *labels, float *centers, double *objective, const float *X, int N, int d,
               const KMeansOpts *o);

/* Similarity precision of knn_topk on CUDA (the CPU backend always computes fp32):
 *   "fp32"  cuBLAS SGEMM, TF32 off (default): the parity path.
 *   "tf32"  TF32 tensor-core GEMM picks the best k+32 candidates (at most 256), which are then
 *           re-ranked by exact dot products (double sums rounded to float); neighbours and
 *           similarities are the exact ones unless a true neighbour's TF32 similarity fell
 *           below the candidate cut (TF32 error ≈ 1e-3 on unit rows, so only near-ties there).
 *   "bf16"  the same with bf16 operands (error ≈ 1e-2 on unit rows: a looser candidate cut).
 * knn_set_precision returns -1 with an error for an unknown name. Without a call the value of
 * the environment variable LAIC_KNN_PRECISION is used (an unknown value makes knn_topk fail). */
int knn_set_precision(const char *name);
/* 0 fp32, 1 tf32, 2 bf16; -1 when LAIC_KNN_PRECISION holds an unknown name. */
int knn_precision(void);

/* Cosine kNN of F (N,d) (rows normalised internally, F untouched): idx (N,k), sims (N,k) or
 * NULL. Errors: k < 1 or k >= N; on CUDA also k > 256. */
int knn_topk(int64_t *idx, float *sims, const float *F, int N, int d, int k);
/* knn_filter_forward on the current backend: scores (N), mask (N) or NULL, from idx (N,k)
 * (entries in [0,N)) and labels (N). Fails only when device memory runs out. */
int knn_filter(float *scores, uint8_t *mask, const int64_t *idx, const int64_t *labels, int N,
               int k);

/* Error "<path>: <what> contains NaN or Inf at element <i>" when x (n) is not all finite. */
int cluster_check_finite(const float *x, size_t n, const char *path);
/* CLI helper (the one I/O function here): reads a 2-D .npy as float32 (N,d) with N, d >= 1 and
 * every value finite; errors name the file. On error `a` is freed. */
int cluster_read_matrix(const char *path, Npy *a);
/* Sets OpenMP's and OpenBLAS's thread counts together (n <= 0: leave as they are). */
void cluster_set_threads(int n);

#ifdef LAIC_CUDA
/* CUDA only (kernels/kmeans.cu), used by kmeans_fit on the CUDA backend: R Lloyd runs at once.
 * C (R,K,d) device: the R initial centre sets in, the final ones out; X (N,d) and xx (N)
 * device (training rows and their squared norms). Host outputs: obj (R) final objectives,
 * n_iter (R) centre updates done; trace (R,iters+1) and trace_len (R) when trace != NULL (the
 * per-iteration objective costs a pass over X per restart, so it is skipped without a trace).
 * Per restart the steps, tie rules and stopping tests are kmeans_lloyd's (host/cluster/cluster.c).
 * Returns -1 with an error recorded when device memory runs out. */
int kmeans_lloyd_batched_cuda(float *C, double *obj, int *n_iter, double *trace, int *trace_len,
                              const float *X, const float *xx, int N, int d, int K, int R,
                              int iters, double tol, int spherical);
#endif

/*
 * The ops above are OpsBackend entries (host/ops.h) with CUDA twins in kernels/cholesky.cu,
 * kmeans.cu and knn.cu; the drivers call them only through cluster_backend().
 */

#endif
