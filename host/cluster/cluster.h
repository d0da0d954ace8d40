/*
 * cluster.h — the clustering numerics of laic on the CPU: ridge (blocked Cholesky), k-means,
 * cosine kNN + neighbour-consistency filter. Metrics live in metrics.h.
 *
 * Two layers:
 * - ops (`*_cpu`, declared in host/cpu/cluster_ops.h, in host/cpu/cholesky.c, kmeans.c, knn.c):
 *   ops-style signatures — outputs, inputs, sizes; plain host pointers; no I/O, no allocation
 *   policy beyond scratch; each the CPU twin of an OpsBackend entry.
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
 *
 * Data parallel (issue 17): in a job of several ranks (host/comm.h; the backend's communicator)
 * the drivers are collective — every rank calls them with the same arguments — and split their
 * rows at the same fixed blocks: k-means assigns 512-row blocks per rank and sums the centres as
 * fixed-point integers (exact in any order: allreduce), k-means++ computes 4096-row blocks of
 * potentials per rank and gathers them; ridge gathers d×d Gram partials of 4096-row blocks and
 * sums them in block order, and splits its N-sized product in 8192-row blocks; kNN splits its
 * query rows (CPU). Every rank ends with the one-process result, bitwise for the same threads
 * per process. The CUDA k-means with several ranks runs the sequential driver (the batched
 * all-restarts kernel is for one rank).
 */
#ifndef LAIC_CLUSTER_H
#define LAIC_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "io/npy.h"

#include "cpu/cluster_ops.h"   // the *_cpu ops the drivers below compose

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
 * RIDGE_PRIMAL solves the M×M system (paper eq. 5) for the d right-hand sides of
 * A = (T Tᵀ + λI_M)⁻¹ T; RIDGE_DUAL the d×d push-through system A = (TᵀT + λI_d)⁻¹ Tᵀ;
 * RIDGE_AUTO picks the smaller (M <= d → primal). Gram matrices, factorisation and solves in
 * double; then C = X Aᵀ (or X A) as one float GEMM. Returns -1 on λ <= 0 or a
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
 * centres. Same seed → bitwise identical result for any thread count.
 * Scale: plain k-means is equivariant under a global scale. When max|x| lies outside
 * [2^-20, 2^20] (features ×1e±30, whose float squared norms would overflow or underflow), the fit
 * runs on X·2^e with max|x| in [1, 2) (given centres scaled alike) and centres, objective and
 * trace are scaled back: labels as for X at unit scale, bitwise when X is a power-of-two
 * rescaling. Spherical k-means normalises each row (any finite scale) and needs no scaling. */
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
 * NULL. Per-row scale-invariant for any finite rows (l2normalize_rows has no norm floor).
 * Errors: k < 1 or k >= N; on CUDA also k > 256. */
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
