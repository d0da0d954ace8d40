/*
 * cluster.c — drivers of the clustering numerics: ridge (both forms + exact reduction),
 * k-means (init, restarts, sampling, empty-cluster re-seeding), cosine kNN + filter. The small
 * dense CPU ops they compose (conversions, Gram, GEMMs, row distances) are in host/cpu/dense.c.
 *
 * Promises: see cluster.h. The drivers own scratch memory and policy (which system to solve,
 * seeding, restarts, tiling); every piece of arithmetic on N-sized data is an op of the
 * backend chosen with cluster_set_backend (host/ops.h). Scalar policy (k-means++ sampling,
 * empty-cluster choice, convergence tests, objective sums) stays on the host in fixed order,
 * reading back the few vectors it needs. On the CPU backend the "device" arrays are the host
 * arrays themselves, so the CPU path makes exactly the calls it made before the table.
 * Letters: N rows, d width, M texts, K clusters, k neighbours.
 */
#include "cluster/cluster.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "comm.h"
#include "io/err.h"
#include "ops.h"
#include "rng.h"

int cluster_check_finite(const float *x, size_t n, const char *path) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return laic_error("%s: contains %s at element %zu ---> HINT: clean the input features",
                              path, isnan(x[i]) ? "NaN" : "Inf", i);
    return 0;
}

int cluster_read_matrix(const char *path, Npy *a) {
    if (npy_read_f32(path, a, 2, NULL)) return -1;
    if (a->shape[0] < 1 || a->shape[1] < 1 || a->shape[0] > INT32_MAX || a->shape[1] > INT32_MAX) {
        laic_error("%s: expected a non-empty [N,d] matrix, got [%zu,%zu]", path, a->shape[0],
                   a->shape[1]);
        npy_free(a);
        return -1;
    }
    if (cluster_check_finite(a->data, a->count, path)) {
        npy_free(a);
        return -1;
    }
    return 0;
}

void cluster_set_threads(int n) {
    if (n <= 0) return;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    openblas_set_num_threads(n);
}

// --- backend and its memory -----------------------------------------------------------------

static const OpsBackend *g_ops = &ops_cpu;

void cluster_set_backend(const OpsBackend *ops) { g_ops = ops ? ops : &ops_cpu; }
const OpsBackend *cluster_backend(void) { return g_ops; }

// The CPU backend's memory is host memory: host arrays are used in place, never copied.
static int on_host(const OpsBackend *o) { return o == &ops_cpu; }

// Backend scratch; after the first failure (*fail set, error recorded) every later call
// returns NULL at once, so a function allocates everything and checks once.
static void *b_alloc(const OpsBackend *o, size_t bytes, int *fail) {
    if (*fail) return NULL;
    void *p = o->alloc(bytes);
    if (!p) *fail = 1;
    return p;
}

// Backend view of a host input: the array itself on the host, else a device copy.
static void *b_in(const OpsBackend *o, const void *h, size_t bytes, int *fail) {
    if (on_host(o)) return (void *)h;
    void *p = b_alloc(o, bytes, fail);
    if (p) o->to_device(p, h, bytes);
    return p;
}

// Backend buffer for a host output h (h itself on the host); b_get copies it back.
static void *b_out(const OpsBackend *o, void *h, size_t bytes, int *fail) {
    return on_host(o) ? h : b_alloc(o, bytes, fail);
}

static void b_get(const OpsBackend *o, void *h, const void *p, size_t bytes) {
    if (h != p && p) o->to_host(h, p, bytes);
}

// Frees a b_in/b_out buffer (nothing when it is the host array h itself).
static void b_drop(const OpsBackend *o, const void *p, const void *h) {
    if (p && p != h) o->free((void *)p);
}

// Host view of a backend array (the array itself on the host, else a malloc'd copy).
static void *h_view(const OpsBackend *o, const void *p, size_t bytes) {
    if (on_host(o)) return (void *)p;
    void *h = mallocCheck(bytes ? bytes : 1);
    o->to_host(h, p, bytes);
    return h;
}

static void h_drop(const OpsBackend *o, void *h) {
    if (!on_host(o)) free(h);
}

// --- ridge -------------------------------------------------------------------------------

// Data parallel: buf (n rows of row_bytes, backend memory) holds this rank's shard (comm_shard
// with align); on return every rank's. Nothing with one rank.
static void gather_shards(const OpsBackend *o, void *buf, size_t n, size_t align, size_t row_bytes,
                          int rank, int P) {
    (void)rank;
    if (P <= 1 && !comm_forced()) return;
    size_t *counts = mallocCheck(sizeof(size_t) * (size_t)P);
    for (int q = 0; q < P; q++) {
        size_t lo, hi;
        comm_shard(n, align, q, P, &lo, &hi);
        counts[q] = (hi - lo) * row_bytes;
    }
    o->allgather(buf, counts);
    free(counts);
}

// Data parallel (host/comm.h): the ranks of the active group split the rows of the two
// N-sized products and of the d×d Gram matrices in fixed blocks; each block is computed exactly
// as one process computes it and partial Gram matrices are summed in block order, so every rank
// ends with the one-process bits (for the same thread count per process).
#define RIDGE_GRAM_ROWS 4096   // rows of T (or of T H⁻¹) per partial Gram matrix
#define RIDGE_ROWS 8192        // rows of X per block of the N-sized product

static int ridge_P(const OpsBackend *o) { return o->comm_size ? o->comm_size() : 1; }
static int ridge_rank(const OpsBackend *o) { return ridge_P(o) > 1 ? o->comm_rank() : 0; }

// G (n,n) backend, lower triangle = Σ over the RIDGE_GRAM_ROWS-row blocks b of A_bᵀ A_b + λI for
// A (k,n) double backend, blocks summed in order (the strict upper triangle is zeroed). This
// rank computes the partials of its blocks; they are gathered. -1 when memory runs out.
static int gram_blocked(const OpsBackend *o, double *G, const double *A, double lambda, int n,
                        int k) {
    const int P = ridge_P(o), rank = ridge_rank(o);
    const size_t nn = (size_t)n * n, nb = ((size_t)k + RIDGE_GRAM_ROWS - 1) / RIDGE_GRAM_ROWS;
    if (nb <= 1) {   // one block: the Gram matrix itself (every rank computes it; no traffic)
        o->memset0(G, sizeof(double) * nn);
        o->gram_f64_forward(G, A, lambda, n, k, 1);
        return 0;
    }
    int fail = 0;
    double *parts = b_alloc(o, sizeof(double) * nn * nb, &fail);   // (nb,n,n)
    if (fail) return -1;
    size_t lo, hi;
    comm_shard((size_t)k, RIDGE_GRAM_ROWS, rank, P, &lo, &hi);
    for (size_t r0 = lo; r0 < hi; r0 += RIDGE_GRAM_ROWS) {
        const int R = (int)(hi - r0 < RIDGE_GRAM_ROWS ? hi - r0 : RIDGE_GRAM_ROWS);
        o->gram_f64_forward(parts + (r0 / RIDGE_GRAM_ROWS) * nn, A + r0 * n, 0.0, n, R, 1);
    }
    if (comm_distributed()) {   // rank q's segment: the partials of its blocks
        size_t *counts = mallocCheck(sizeof(size_t) * (size_t)P);
        for (int q = 0; q < P; q++) {
            size_t ql, qh;
            comm_shard((size_t)k, RIDGE_GRAM_ROWS, q, P, &ql, &qh);
            counts[q] = (qh - ql + RIDGE_GRAM_ROWS - 1) / RIDGE_GRAM_ROWS * nn * sizeof(double);
        }
        o->allgather(parts, counts);
        free(counts);
    }
    double *ph = h_view(o, parts, sizeof(double) * nn * nb);
    double *g = mallocCheck(sizeof(double) * nn);
    memset(g, 0, sizeof(double) * nn);
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            double sum = ph[(size_t)i * n + j];
            for (size_t bl = 1; bl < nb; bl++) sum += ph[bl * nn + (size_t)i * n + j];
            g[(size_t)i * n + j] = i == j ? sum + lambda : sum;
        }
    h_drop(o, ph);
    if (on_host(o)) memcpy(G, g, sizeof(double) * nn);
    else o->to_device(G, g, sizeof(double) * nn);
    free(g);
    o->free(parts);
    return 0;
}

// C (N,m) = X (N,K) @ B (K,m) in float, in RIDGE_ROWS-row blocks of which this rank computes its
// share; then every rank's rows are gathered.
static void rows_product(const OpsBackend *o, float *C, const float *X, const float *B, int N,
                         int K, int m) {
    const int P = ridge_P(o), rank = ridge_rank(o);
    size_t lo, hi;
    comm_shard((size_t)N, RIDGE_ROWS, rank, P, &lo, &hi);
    for (size_t r0 = lo; r0 < hi; r0 += RIDGE_ROWS) {
        const int R = (int)(hi - r0 < RIDGE_ROWS ? hi - r0 : RIDGE_ROWS);
        o->sgemm_nn_forward(C + r0 * m, X + r0 * K, B, R, K, m);
    }
    gather_shards(o, C, (size_t)N, RIDGE_ROWS, sizeof(float) * (size_t)m, rank, P);
}

// A (d,M) double = (TᵀT + λI_d)⁻¹ Tᵀ for Td (M,d) double, in backend memory; NULL on a failed
// allocation or factorisation (error recorded).
static double *ridge_dual_A(const OpsBackend *o, const double *Td, double lambda, int M, int d) {
    int fail = 0;
    double *H = b_alloc(o, sizeof(double) * (size_t)d * d, &fail);   // (d,d)
    double *A = b_alloc(o, sizeof(double) * (size_t)d * M, &fail);   // (d,M) = Tᵀ, then solved
    if (!fail && gram_blocked(o, H, Td, lambda, d, M)) fail = 1;
    if (!fail && o->cholesky_forward(H, d, "ridge: T^T T + lambda I")) fail = 1;
    if (!fail) {
        o->transpose_f64(A, Td, M, d);
        o->cholesky_solve_left(A, H, d, M);
    }
    if (H) o->free(H);
    if (fail && A) {
        o->free(A);
        A = NULL;
    }
    return A;
}

static int ridge_check(double lambda, int N, int M, int d) {
    if (!(lambda > 0) || !isfinite(lambda))
        return laic_error("ridge: lambda must be a positive number (got %g)", lambda);
    if (N < 0 || M < 1 || d < 1) return laic_error("ridge: bad sizes N=%d M=%d d=%d", N, M, d);
    return 0;
}

int ridge_solve(float *C, const float *X, const float *T, double lambda, int N, int M, int d,
                RidgeForm form) {
    if (ridge_check(lambda, N, M, d)) return -1;
    if (form == RIDGE_AUTO) form = M <= d ? RIDGE_PRIMAL : RIDGE_DUAL;
    const OpsBackend *o = g_ops;
    int fail = 0;
    const float *dT = b_in(o, T, sizeof(float) * (size_t)M * d, &fail);   // (M,d)
    const float *dX = b_in(o, X, sizeof(float) * (size_t)N * d, &fail);   // (N,d)
    float *dC = b_out(o, C, sizeof(float) * (size_t)N * M, &fail);        // (N,M)
    double *Td = b_alloc(o, sizeof(double) * (size_t)M * d, &fail);       // (M,d)
    double *G = NULL, *B = NULL, *A = NULL;
    float *Af = NULL;
    if (fail) goto done;
    o->f32_to_f64(Td, dT, (size_t)M * d);
    if (form == RIDGE_PRIMAL) {
        // G = T Tᵀ + λI_M = L Lᵀ; A = G⁻¹ T (M,d): d right-hand sides, not N (C = X Tᵀ G⁻¹ =
        // X Aᵀ, G symmetric), in double. Aᵀ (d,M) is exactly the dual form's A (push-through
        // identity), so the one N-sized product runs as the dual's does: float sgemm.
        G = b_alloc(o, sizeof(double) * (size_t)M * M, &fail);   // (M,M)
        B = b_alloc(o, sizeof(double) * (size_t)M * d, &fail);   // (M,d) = T, then G⁻¹ T
        A = b_alloc(o, sizeof(double) * (size_t)d * M, &fail);   // (d,M) = Bᵀ
        Af = b_alloc(o, sizeof(float) * (size_t)d * M, &fail);
        if (fail) goto done;
        o->gram_f64_forward(G, Td, lambda, M, d, 0);
        if (o->cholesky_forward(G, M, "ridge: T T^T + lambda I")) {
            fail = 1;
            goto done;
        }
        o->copy(B, Td, sizeof(double) * (size_t)M * d);
        o->cholesky_solve_left(B, G, M, d);
        o->transpose_f64(A, B, M, d);
        o->f64_to_f32(Af, A, (size_t)d * M);
    } else {
        // A = (TᵀT + λI_d)⁻¹ Tᵀ in double; the one N-sized product C = X A runs in float
        // (sgemm): A is well scaled (no solve follows), so its error is the float32 rounding
        // of a d-term dot product, far inside the 1e-4 budget, at twice dgemm's speed.
        A = ridge_dual_A(o, Td, lambda, M, d);   // (d,M)
        Af = b_alloc(o, sizeof(float) * (size_t)d * M, &fail);
        if (!A || fail) {
            fail = 1;
            goto done;
        }
        o->f64_to_f32(Af, A, (size_t)d * M);
    }
    rows_product(o, dC, dX, Af, N, d, M);
    b_get(o, C, dC, sizeof(float) * (size_t)N * M);
done:
    if (G) o->free(G);
    if (B) o->free(B);
    if (A) o->free(A);
    if (Af) o->free(Af);
    if (Td) o->free(Td);
    b_drop(o, dT, T);
    b_drop(o, dX, X);
    b_drop(o, dC, C);
    return fail ? -1 : 0;
}

int ridge_reduce(float *Z, const float *X, const float *T, double lambda, int N, int M, int d) {
    if (ridge_check(lambda, N, M, d)) return -1;
    const OpsBackend *o = g_ops;
    int fail = 0;
    const float *dT = b_in(o, T, sizeof(float) * (size_t)M * d, &fail);   // (M,d)
    double *Td = b_alloc(o, sizeof(double) * (size_t)M * d, &fail);       // (M,d): T, then Aᵀ
    double *H = b_alloc(o, sizeof(double) * (size_t)d * d, &fail);        // (d,d)
    double *Pm = b_alloc(o, sizeof(double) * (size_t)d * d, &fail);       // (d,d) = A Aᵀ
    float *Lf = NULL, *dZ = NULL;
    const float *dX = NULL;
    if (fail) goto done;
    o->f32_to_f64(Td, dT, (size_t)M * d);
    // H = TᵀT + λI = L Lᵀ; Aᵀ = T H⁻¹ (M,d) row block by row block (rows are independent right-
    // hand sides, so a rank solves only the blocks of its Gram partials); A Aᵀ = Σ (Aᵀ)_bᵀ (Aᵀ)_b
    if (gram_blocked(o, H, Td, lambda, d, M) ||
        o->cholesky_forward(H, d, "ridge: T^T T + lambda I")) {
        fail = 1;
        goto done;
    }
    {
        size_t lo, hi;
        comm_shard((size_t)M, RIDGE_GRAM_ROWS, ridge_rank(o), ridge_P(o), &lo, &hi);
        if ((size_t)M <= RIDGE_GRAM_ROWS) lo = 0, hi = (size_t)M;   // one block: every rank
        for (size_t r0 = lo; r0 < hi; r0 += RIDGE_GRAM_ROWS) {
            const int R = (int)(hi - r0 < RIDGE_GRAM_ROWS ? hi - r0 : RIDGE_GRAM_ROWS);
            o->cholesky_solve_right(Td + r0 * d, H, R, d);
        }
    }
    if (gram_blocked(o, Pm, Td, 0.0, d, M)) {
        fail = 1;
        goto done;
    }
    if (o->cholesky_forward(Pm, d, "ridge reduction: A A^T (needs M >= d texts of rank d)")) {
        fail = 1;
        goto done;
    }
    Lf = b_alloc(o, sizeof(float) * (size_t)d * d, &fail);
    dX = b_in(o, X, sizeof(float) * (size_t)N * d, &fail);
    dZ = b_out(o, Z, sizeof(float) * (size_t)N * d, &fail);
    if (fail) goto done;
    o->f64_to_f32(Lf, Pm, (size_t)d * d);
    rows_product(o, dZ, dX, Lf, N, d, d);
    b_get(o, Z, dZ, sizeof(float) * (size_t)N * d);
done:
    if (Td) o->free(Td);
    if (H) o->free(H);
    if (Pm) o->free(Pm);
    if (Lf) o->free(Lf);
    b_drop(o, dT, T);
    b_drop(o, dX, X);
    b_drop(o, dZ, Z);
    return fail ? -1 : 0;
}

// --- k-means -----------------------------------------------------------------------------

// Rows per block of the host-side double sums (objective, k-means++ potentials): each block is
// summed in row order by one thread, the block sums then in block order, so every sum has one
// fixed order whatever the thread count.
#define CLUSTER_SUM_ROWS 4096

// Per-fit scratch, in backend memory unless marked host. Allocated once for all restarts.
typedef struct {
    const OpsBackend *o;
    float *mind;        // (Nt) distance of each row to its centre
    float *cc;          // (K) squared centre norms
    int64_t *counts;    // (K) cluster sizes
    int64_t *sums;      // (K,d) fixed-point centre sums (kmeans_assign_sums_forward)
    int64_t *labels;    // (Nt) current labels
    double *rowd;       // (Nt) per-row objective terms
    float *cand;        // (trials,d) k-means++ candidates
    float *candn;       // (trials) their squared norms
    float *dist;        // (Nt,trials) their distances
    int shift;          // fixed-point scale of the sums (kmeans_fixed_shift)
    int P, rank;        // ranks of the active group (host/comm.h) and this one's index
    // host
    float *Ch, *Cold;     // (K,d) centres read back for the shift test, and the previous ones
    int64_t *lab_h, *prev, *counts_h;   // (Nt), (Nt), (K)
    float *mind_h;        // (Nt)
    double *rowd_h;       // (Nt)
    uint8_t *used;        // (Nt)
} KmWork;

// Σ v (n) in double: CLUSTER_SUM_ROWS-row blocks in row order, then the block sums in order.
static double sum_blocked(const double *v, int n) {
    const int nb = (n + CLUSTER_SUM_ROWS - 1) / CLUSTER_SUM_ROWS;
    double *bs = mallocCheck(sizeof(double) * (size_t)(nb ? nb : 1));
#pragma omp parallel for schedule(static)
    for (int b = 0; b < nb; b++) {
        const int i1 = (b + 1) * CLUSTER_SUM_ROWS < n ? (b + 1) * CLUSTER_SUM_ROWS : n;
        double s = 0;
        for (int i = b * CLUSTER_SUM_ROWS; i < i1; i++) s += v[i];
        bs[b] = s;
    }
    double s = 0;
    for (int b = 0; b < nb; b++) s += bs[b];
    free(bs);
    return s;
}

// Σ_i ‖x_i − c_{l_i}‖² in double (exact distances per row on the backend, summed here in
// fixed blocks).
static double kmeans_objective(KmWork *w, const float *X, const float *C, const int64_t *labels,
                               int N, int d) {
    const OpsBackend *o = w->o;
    size_t lo, hi;   // data parallel: this rank's rows (the assignment's shard), then gathered
    comm_shard((size_t)N, KMEANS_GEMM_ROWS, w->rank, w->P, &lo, &hi);
    o->kmeans_rowdist_forward(w->rowd + lo, X + lo * d, C, labels + lo, (int)(hi - lo), d);
    gather_shards(o, w->rowd, (size_t)N, KMEANS_GEMM_ROWS, sizeof(double), w->rank, w->P);
    b_get(o, w->rowd_h, w->rowd, sizeof(double) * (size_t)N);
    return sum_blocked(w->rowd_h, N);
}

// The Lloyd step on this rank's rows (shards of KMEANS_GEMM_ROWS blocks: every block is the
// one-process block), then the integer sums and counts summed over the ranks (exact: the same
// bits as one process). sums NULL: assignment only (counts still summed). Labels and mind of the
// other ranks' rows are left as they were (gather_shards brings them when needed).
static void kmeans_step(KmWork *w, int64_t *labels, int64_t *sums, const float *X,
                        const float *xx, const float *C, int N, int d, int K) {
    const OpsBackend *b = w->o;
    size_t lo, hi;
    comm_shard((size_t)N, KMEANS_GEMM_ROWS, w->rank, w->P, &lo, &hi);
    b->kmeans_assign_sums_forward(labels + lo, w->mind + lo, sums, w->counts, X + lo * d, xx + lo,
                                  C, w->cc, (int)(hi - lo), d, K, w->shift);
    if (comm_distributed()) {
        b->allreduce_sum(w->counts, (size_t)K, COMM_I64);
        if (sums) b->allreduce_sum(sums, (size_t)K * d, COMM_I64);
    }
}

// The block of the first row i with cum[i] >= v, where cum[i] = off[b] + (closest summed in row
// order from the start of i's block b) — the prefix sums that sum_blocked's order defines; off
// (nb+1) holds the block offsets (off[nb] is the total). nb when no block reaches v.
static int pp_block(const double *off, int nb, double v) {
    int lo = 0, hi = nb;   // first block b with off[b+1] >= v
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (off[mid + 1] >= v) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

// That row inside block b (rows i0..i1-1).
static int pp_row(const double *closest, double off_b, int i0, int i1, double v) {
    double s = 0;
    for (int i = i0; i < i1; i++)
        if (off_b + (s += closest[i]) >= v) return i;
    return i1 - 1;   // unreachable: the block's total reaches off[b+1] >= v
}

// Greedy k-means++ (as scikit-learn): each new centre is the best of `trials` candidates drawn
// with probability ∝ D², "best" = lowest resulting potential (ties: first candidate). The
// potentials are sum_blocked's sums (one parallel pass per step, no per-trial arrays).
//
// Data parallel: each rank computes the distances of its rows (whole CLUSTER_SUM_ROWS blocks)
// and their block sums; the block sums (nb × trials doubles per step) are gathered, so every
// rank has the same potentials, picks the same candidate, and the sampled rows are found by the
// rank that owns their block (an integer sum tells the others). Same bits as one process.
static void kmeans_pp_init(KmWork *w, float *C, const float *X, const float *xx, int N, int d,
                           int K, Rng *rng) {
    const OpsBackend *o = w->o;
    const int trials = 2 + (int)floor(log((double)K));
    const int BS = CLUSTER_SUM_ROWS, nb = (N + BS - 1) / BS;
    size_t lo_, hi_;
    comm_shard((size_t)N, (size_t)BS, w->rank, w->P, &lo_, &hi_);
    const int lo = (int)lo_, hi = (int)hi_, b0 = lo / BS, b1 = (hi + BS - 1) / BS;   // my blocks
    size_t *bcount = mallocCheck(sizeof(size_t) * (size_t)w->P);   // gather sizes, in bytes
    for (int q = 0; q < w->P; q++) {
        size_t ql, qh;
        comm_shard((size_t)N, (size_t)BS, q, w->P, &ql, &qh);
        bcount[q] = (qh - ql + BS - 1) / BS * trials * sizeof(double);
    }
    double *closest = mallocCheck(sizeof(double) * (size_t)N);   // (N) D², rows lo..hi-1 valid
    double *off = mallocCheck(sizeof(double) * (size_t)(nb + 1));           // (nb+1)
    double *bsum = mallocCheck(sizeof(double) * (size_t)nb);                // (nb)
    double *part = mallocCheck(sizeof(double) * (size_t)nb * trials);       // (nb,trials)
    int64_t *pick = mallocCheck(sizeof(int64_t) * (size_t)trials);
    float *cand = w->cand, *candn = w->candn, *dist = w->dist;   // backend
    int64_t first = (int64_t)rng_below(rng, (uint64_t)N);
    o->copy(C, X + (size_t)first * d, sizeof(float) * d);
    o->rownorm2_forward(candn, C, 1, d);
    o->sqdist_forward(dist, X + (size_t)lo * d, xx + lo, C, candn, hi - lo, d, 1);
    float *dh = h_view(o, dist, sizeof(float) * (size_t)(hi - lo));   // rows lo..hi-1
#pragma omp parallel for schedule(static)
    for (int b = b0; b < b1; b++) {
        const int i1 = (b + 1) * BS < N ? (b + 1) * BS : N;
        double s = 0;
        for (int i = b * BS; i < i1; i++) s += (closest[i] = dh[i - lo]);
        part[(size_t)b * trials] = s;   // column 0 of part carries the sums to the gather
    }
    h_drop(o, dh);
    if (w->P > 1) comm_allgather_host(part, bcount);   // (only column 0 is read)
    for (int b = 0; b < nb; b++) bsum[b] = part[(size_t)b * trials];
    for (int c = 1; c < K; c++) {
        off[0] = 0;
        for (int b = 0; b < nb; b++) off[b + 1] = off[b] + bsum[b];
        const double pot = off[nb];
        for (int t = 0; t < trials; t++) {
            const double v = rng_uniform(rng) * pot;
            const int b = pp_block(off, nb, v);   // nb: beyond the total → the last row (clip)
            const int bb = b < nb ? b : nb - 1;
            pick[t] = 0;   // the row + 1 from the rank that owns its block, 0 from the others
            if (bb >= b0 && bb < b1) {
                const int i1 = (bb + 1) * BS < N ? (bb + 1) * BS : N;
                pick[t] = (b < nb ? pp_row(closest, off[b], b * BS, i1, v) : N - 1) + 1;
            }
        }
        if (w->P > 1) comm_allreduce_sum_host(pick, (size_t)trials, COMM_I64);
        for (int t = 0; t < trials; t++)
            o->copy(cand + (size_t)t * d, X + (size_t)(pick[t] - 1) * d, sizeof(float) * d);
        o->rownorm2_forward(candn, cand, trials, d);
        o->sqdist_forward(dist, X + (size_t)lo * d, xx + lo, cand, candn, hi - lo, d, trials);
        dh = h_view(o, dist, sizeof(float) * (size_t)(hi - lo) * trials);   // (rows,trials)
#pragma omp parallel for schedule(static)
        for (int b = b0; b < b1; b++) {
            const int i1 = (b + 1) * BS < N ? (b + 1) * BS : N;
            double s[64] = {0};   // trials = 2 + ⌊ln K⌋ <= 23 for K < 2^31
            for (int i = b * BS; i < i1; i++)
                for (int t = 0; t < trials; t++) {
                    double dd = dh[(size_t)(i - lo) * trials + t];
                    s[t] += dd < closest[i] ? dd : closest[i];
                }
            for (int t = 0; t < trials; t++) part[(size_t)b * trials + t] = s[t];
        }
        if (w->P > 1) comm_allgather_host(part, bcount);
        int best = 0;
        double best_pot = INFINITY;
        for (int t = 0; t < trials; t++) {
            double p = 0;
            for (int b = 0; b < nb; b++) p += part[(size_t)b * trials + t];
            if (p < best_pot) {
                best_pot = p;
                best = t;
            }
        }
#pragma omp parallel for schedule(static)
        for (int b = b0; b < b1; b++) {
            const int i1 = (b + 1) * BS < N ? (b + 1) * BS : N;
            for (int i = b * BS; i < i1; i++) {
                double dd = dh[(size_t)(i - lo) * trials + best];
                if (dd < closest[i]) closest[i] = dd;
            }
        }
        for (int b = 0; b < nb; b++) bsum[b] = part[(size_t)b * trials + best];   // same sums
        h_drop(o, dh);
        o->copy(C + (size_t)c * d, cand + (size_t)best * d, sizeof(float) * d);
    }
    free(closest);
    free(off);
    free(bsum);
    free(part);
    free(pick);
    free(bcount);
}

// K distinct rows drawn uniformly (partial Fisher–Yates).
static void kmeans_random_init(const OpsBackend *o, float *C, const float *X, int N, int d, int K,
                               Rng *rng) {
    int64_t *perm = mallocCheck(sizeof(int64_t) * (size_t)N);
    for (int i = 0; i < N; i++) perm[i] = i;
    for (int c = 0; c < K; c++) {
        int64_t j = c + (int64_t)rng_below(rng, (uint64_t)(N - c));
        int64_t t = perm[c];
        perm[c] = perm[j];
        perm[j] = t;
        o->copy(C + (size_t)c * d, X + (size_t)perm[c] * d, sizeof(float) * d);
    }
    free(perm);
}

// One Lloyd run from the centres in C (K,d); returns the final objective. trace (iters+1) is
// filled only when want_trace (each entry costs a pass over X); the returned objective is the
// same either way. Leaves the final labels in w->labels (backend).
//
// Each assignment also returns the fixed-point sums of the rows per new label
// (kmeans_assign_sums_forward), so the update that follows needs no second pass over X, and
// since integer sums do not depend on the order of the rows, neither does the update.
static double kmeans_lloyd(KmWork *w, float *C, int *n_iter, double *trace, int *trace_len,
                           const float *X, const float *xx, int N, int d, const KMeansOpts *o,
                           int want_trace) {
    const OpsBackend *b = w->o;
    int K = o->K;
    int64_t *labels = w->labels;
    const size_t csz = sizeof(float) * (size_t)K * d;

    size_t lo, hi;   // this rank's rows (kmeans_step's shard)
    comm_shard((size_t)N, KMEANS_GEMM_ROWS, w->rank, w->P, &lo, &hi);
    if (o->spherical) b->l2normalize_rows(C, C, K, d);
    b->rownorm2_forward(w->cc, C, K, d);
    kmeans_step(w, labels, w->sums, X, xx, C, N, d, K);
    b_get(b, w->lab_h + lo, labels + lo, sizeof(int64_t) * (hi - lo));
    int nt = 0;
    if (want_trace) trace[nt++] = kmeans_objective(w, X, C, labels, N, d);
    int it = 0;
    while (it < o->iters) {
        it++;
        b_get(b, w->Ch, C, csz);
        memcpy(w->Cold, w->Ch, csz);
        b->kmeans_centres_forward(C, w->sums, w->counts, K, d, w->shift);
        b_get(b, w->counts_h, w->counts, sizeof(int64_t) * (size_t)K);
        // Empty clusters: re-seed with the row farthest from its current centre (by the mind of
        // the last assignment), ties to the lowest row, each row used at most once.
        int any_empty = 0;
        for (int c = 0; c < K; c++) any_empty |= w->counts_h[c] == 0;
        if (any_empty) {
            gather_shards(b, w->mind, (size_t)N, KMEANS_GEMM_ROWS, sizeof(float), w->rank, w->P);
            b_get(b, w->mind_h, w->mind, sizeof(float) * (size_t)N);
            const float *mind = w->mind_h;
            memset(w->used, 0, (size_t)N);
            for (int c = 0; c < K; c++) {
                if (w->counts_h[c]) continue;
                int64_t far = -1;
                for (int i = 0; i < N; i++)
                    if (!w->used[i] && (far < 0 || mind[i] > mind[far])) far = i;
                w->used[far] = 1;
                b->copy(C + (size_t)c * d, X + (size_t)far * d, sizeof(float) * d);
            }
        }
        if (o->spherical) b->l2normalize_rows(C, C, K, d);
        b_get(b, w->Ch, C, csz);
        double shift = 0;
        for (size_t i = 0; i < (size_t)K * d; i++) {
            double t = (double)w->Ch[i] - w->Cold[i];
            shift += t * t;
        }
        memcpy(w->prev + lo, w->lab_h + lo, sizeof(int64_t) * (hi - lo));
        b->rownorm2_forward(w->cc, C, K, d);
        kmeans_step(w, labels, w->sums, X, xx, C, N, d, K);
        b_get(b, w->lab_h + lo, labels + lo, sizeof(int64_t) * (hi - lo));
        int64_t changed = 0;
        for (size_t i = lo; i < hi; i++) changed += w->lab_h[i] != w->prev[i];
        if (w->P > 1) comm_allreduce_sum_host(&changed, 1, COMM_I64);
        if (want_trace) trace[nt++] = kmeans_objective(w, X, C, labels, N, d);
        if (changed == 0 || shift <= o->tol) break;
    }
    *n_iter = it;
    *trace_len = nt;
    return want_trace ? trace[nt - 1] : kmeans_objective(w, X, C, labels, N, d);
}

/* The power of two 2^e that brings max|x| of X (n) into [1, 2) when it lies outside
 * [2^-20, 2^20] (0 otherwise, for an all-zero X, or for one that is not finite). The k-means
 * ops square features in float (‖x‖², x·c, ‖x‖² − 2x·c + ‖c‖²): at 1e±30 those overflow to
 * Inf/NaN or underflow to 0 and every row went to one cluster. Inside the window the squares
 * keep 2^40·d of headroom both ways. Scaling by a power of two is exact for normal floats, so
 * the scaled fit does the same arithmetic as an unscaled one would, 2^e (2^2e) times larger. */
static int kmeans_scale_exp(const float *X, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) m = fmaxf(m, fabsf(X[i]));
    if (!(m > 0) || !isfinite(m) || (m >= 0x1p-20f && m <= 0x1p20f)) return 0;
    int e;
    frexpf(m, &e);   // m = f·2^e, f in [0.5, 1)
    return 1 - e;    // m·2^(1-e) in [1, 2)
}

static int kmeans_fit_scaled(int64_t *labels, float *centers, double *objective, const float *X,
                             int N, int d, const KMeansOpts *o, int scale);

int kmeans_fit(int64_t *labels, float *centers, double *objective, const float *X, int N, int d,
               const KMeansOpts *o) {
    // Plain k-means is equivariant under a global scale: features far from unit scale are
    // fitted as X·2^e (labels unchanged), centres and objective scaled back. Spherical k-means
    // normalises every row first (per-row scale-invariant), so it needs no scaling.
    int e = (N < 1 || d < 1 || o->spherical) ? 0 : kmeans_scale_exp(X, (size_t)N * d);
    if (!e) return kmeans_fit_scaled(labels, centers, objective, X, N, d, o, 0);
    const size_t n = (size_t)N * d, kd = (size_t)(o->K > 0 ? o->K : 0) * d;
    float *Xs = mallocCheck(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) Xs[i] = ldexpf(X[i], e);
    float *C0 = NULL;
    KMeansOpts os = *o;
    int tl = 0;   // the trace entries to scale back, also when the caller did not ask how many
    if (o->trace && !o->trace_len) os.trace_len = &tl;
    if (o->init == KMEANS_INIT_GIVEN && o->init_centers && kd) {
        C0 = mallocCheck(sizeof(float) * kd);
        for (size_t i = 0; i < kd; i++) C0[i] = ldexpf(o->init_centers[i], e);
        os.init_centers = C0;
    }
    int rc = kmeans_fit_scaled(labels, centers, objective, Xs, N, d, &os, e);
    free(Xs);
    free(C0);
    if (rc) return rc;
    *objective = ldexp(*objective, -2 * e);
    if (centers)
        for (size_t i = 0; i < kd; i++) centers[i] = ldexpf(centers[i], -e);
    if (o->trace)
        for (int i = 0; i < *os.trace_len; i++) o->trace[i] = ldexp(o->trace[i], -2 * e);
    return 0;
}

/* kmeans_fit on X already scaled by 2^scale (only the verbose objectives are scaled back). */
static int kmeans_fit_scaled(int64_t *labels, float *centers, double *objective, const float *X,
                             int N, int d, const KMeansOpts *o, int scale) {
    int K = o->K;
    if (N < 1 || d < 1) return laic_error("kmeans: no data (N=%d, d=%d)", N, d);
    if (K < 1 || K > N) return laic_error("kmeans: K = %d must be in [1, N] = [1, %d]", K, N);
    if (o->iters < 0 || o->restarts < 1)
        return laic_error("kmeans: iters must be >= 0 and restarts >= 1");
    if (o->init == KMEANS_INIT_GIVEN && !o->init_centers)
        return laic_error("kmeans: given init without centres");
    int Nt = N;
    if (o->sample > 0 && o->sample < (size_t)N) Nt = (int)o->sample;
    if (Nt < K)
        return laic_error("kmeans: the training sample (%d rows) is smaller than K = %d", Nt, K);
    const OpsBackend *b = g_ops;
    const int trials = 2 + (int)floor(log((double)K));
    const size_t csz = sizeof(float) * (size_t)K * d;
    int fail = 0;
    KmWork w = {.o = b};
    w.P = b->comm_size ? b->comm_size() : 1;   // data parallel over the active group's ranks
    w.rank = w.P > 1 ? b->comm_rank() : 0;

    // Working copy of the data: normalised rows for spherical k-means.
    const float *dX = b_in(b, X, sizeof(float) * (size_t)N * d, &fail);   // (N,d)
    float *Xn = NULL, *Xs = NULL, *xx = NULL, *C = NULL, *best = NULL;
    int64_t *dlab = NULL;
    double *trace = NULL;
    if (fail) goto done;
    const float *Xw = dX;   // (N,d)
    if (o->spherical) {
        Xn = b_alloc(b, sizeof(float) * (size_t)N * d, &fail);
        if (fail) goto done;
        b->l2normalize_rows(Xn, dX, N, d);
        Xw = Xn;
    }
    // Training rows: a seeded subsample (kept in increasing row order) or all rows.
    const float *Xt = Xw;   // (Nt,d)
    if (Nt < N) {
        Rng rs;
        rng_init(&rs, o->seed, UINT64_MAX);
        int64_t *perm = mallocCheck(sizeof(int64_t) * (size_t)N);
        uint8_t *pick = callocCheck((size_t)N, 1);
        for (int i = 0; i < N; i++) perm[i] = i;
        for (int c = 0; c < Nt; c++) {
            int64_t j = c + (int64_t)rng_below(&rs, (uint64_t)(N - c));
            int64_t t = perm[c];
            perm[c] = perm[j];
            perm[j] = t;
            pick[perm[c]] = 1;
        }
        // Gathered on the host (one round trip on a device), then moved to the backend.
        const float *Xwh = Xw == dX ? X : h_view(b, Xw, sizeof(float) * (size_t)N * d);
        float *Xsh = mallocCheck(sizeof(float) * (size_t)Nt * d);
        size_t r = 0;
        for (int i = 0; i < N; i++)
            if (pick[i]) memcpy(Xsh + (r++) * d, Xwh + (size_t)i * d, sizeof(float) * d);
        if (Xwh != X) h_drop(b, (void *)Xwh);
        free(perm);
        free(pick);
        if (on_host(b)) {
            Xs = Xsh;
        } else {
            Xs = b_in(b, Xsh, sizeof(float) * (size_t)Nt * d, &fail);
            free(Xsh);
            if (fail) goto done;
        }
        Xt = Xs;
    }
    xx = b_alloc(b, sizeof(float) * (size_t)N, &fail);   // (N) ≥ (Nt)
    C = b_alloc(b, csz, &fail);                            // (K,d) current restart
    best = b_alloc(b, csz, &fail);                         // (K,d) best so far
    dlab = b_out(b, labels, sizeof(int64_t) * (size_t)N, &fail);   // (N) final labels
    w.mind = b_alloc(b, sizeof(float) * (size_t)N, &fail);
    w.cc = b_alloc(b, sizeof(float) * (size_t)K, &fail);
    w.counts = b_alloc(b, sizeof(int64_t) * (size_t)K, &fail);
    w.sums = b_alloc(b, sizeof(int64_t) * (size_t)K * d, &fail);
    w.labels = b_alloc(b, sizeof(int64_t) * (size_t)Nt, &fail);
    w.rowd = b_alloc(b, sizeof(double) * (size_t)N, &fail);
    w.cand = b_alloc(b, sizeof(float) * (size_t)trials * d, &fail);
    w.candn = b_alloc(b, sizeof(float) * (size_t)trials, &fail);
    w.dist = b_alloc(b, sizeof(float) * (size_t)N * trials, &fail);
    if (fail) goto done;
    // Host mirrors: the backend arrays themselves on the CPU.
    w.Ch = on_host(b) ? C : mallocCheck(csz);
    w.lab_h = on_host(b) ? w.labels : mallocCheck(sizeof(int64_t) * (size_t)Nt);
    w.counts_h = on_host(b) ? w.counts : mallocCheck(sizeof(int64_t) * (size_t)K);
    w.mind_h = on_host(b) ? w.mind : mallocCheck(sizeof(float) * (size_t)N);
    w.rowd_h = on_host(b) ? w.rowd : mallocCheck(sizeof(double) * (size_t)N);
    w.Cold = mallocCheck(csz);
    w.prev = mallocCheck(sizeof(int64_t) * (size_t)Nt);
    w.used = mallocCheck((size_t)Nt);
    trace = mallocCheck(sizeof(double) * ((size_t)o->iters + 1));

    b->rownorm2_forward(xx, Xt, Nt, d);
    {   // fixed-point scale of the centre sums: normalised rows are within [-1, 1]
        float amax = 0;   // a maximum: the same whatever the order (thread count)
        if (o->spherical) {
            amax = 1.0f;
        } else {
            const size_t n = (size_t)N * d;
#pragma omp parallel for schedule(static) reduction(max : amax)
            for (size_t i = 0; i < n; i++) amax = fmaxf(amax, fabsf(X[i]));
        }
        w.shift = kmeans_fixed_shift(amax, Nt);
    }
    int restarts = o->init == KMEANS_INIT_GIVEN ? 1 : o->restarts;
    double best_obj = INFINITY;
#ifdef LAIC_CUDA
    if (b == &ops_cuda && !comm_distributed()) {
        // All restarts at once on the device (kernels/kmeans.cu): the inits are drawn here,
        // restart by restart, exactly as below; then one batched Lloyd run; then the same
        // best-restart choice as the loop below.
        const size_t kd = (size_t)K * d;
        float *Call = b_alloc(b, csz * (size_t)restarts, &fail);   // (R,K,d)
        if (fail) goto done;
        for (int r = 0; r < restarts; r++) {
            Rng rng;
            rng_init(&rng, o->seed, (uint64_t)r);
            float *Cr = Call + (size_t)r * kd;
            if (o->init == KMEANS_INIT_GIVEN) b->to_device(Cr, o->init_centers, csz);
            else if (o->init == KMEANS_INIT_RANDOM) kmeans_random_init(b, Cr, Xt, Nt, d, K, &rng);
            else kmeans_pp_init(&w, Cr, Xt, xx, Nt, d, K, &rng);
        }
        const size_t stride = (size_t)o->iters + 1;
        double *objs = mallocCheck(sizeof(double) * (size_t)restarts);
        int *nit = mallocCheck(sizeof(int) * (size_t)restarts);
        int *tls = o->trace ? mallocCheck(sizeof(int) * (size_t)restarts) : NULL;
        double *traces = o->trace ? mallocCheck(sizeof(double) * stride * restarts) : NULL;
        if (kmeans_lloyd_batched_cuda(Call, objs, nit, traces, tls, Xt, xx, Nt, d, K, restarts,
                                      o->iters, o->tol, o->spherical))
            fail = 1;
        for (int r = 0; r < restarts && !fail; r++) {
            if (o->verbose)
                fprintf(stderr, "kmeans: restart %d/%d: objective %.9g after %d iterations\n",
                        r + 1, restarts, ldexp(objs[r], -2 * scale), nit[r]);
            if (objs[r] < best_obj || r == 0) {
                best_obj = objs[r];
                b->copy(best, Call + (size_t)r * kd, csz);
                if (o->trace) memcpy(o->trace, traces + stride * r, sizeof(double) * tls[r]);
                if (o->trace_len) *o->trace_len = o->trace ? tls[r] : 0;
            }
        }
        free(objs);
        free(nit);
        free(tls);
        free(traces);
        b->free(Call);
        if (fail) goto done;
        restarts = 0;   // the sequential loop below has nothing left to do
    }
#endif
    for (int r = 0; r < restarts; r++) {
        Rng rng;
        rng_init(&rng, o->seed, (uint64_t)r);
        if (o->init == KMEANS_INIT_GIVEN) b->to_device(C, o->init_centers, csz);
        else if (o->init == KMEANS_INIT_RANDOM) kmeans_random_init(b, C, Xt, Nt, d, K, &rng);
        else kmeans_pp_init(&w, C, Xt, xx, Nt, d, K, &rng);
        int n_iter = 0, tl = 0;
        double obj = kmeans_lloyd(&w, C, &n_iter, trace, &tl, Xt, xx, Nt, d, o, o->trace != NULL);
        if (o->verbose)
            fprintf(stderr, "kmeans: restart %d/%d: objective %.9g after %d iterations\n", r + 1,
                    restarts, ldexp(obj, -2 * scale), n_iter);
        if (obj < best_obj || r == 0) {   // r == 0 also covers a NaN objective
            best_obj = obj;
            b->copy(best, C, csz);
            if (o->trace) memcpy(o->trace, trace, sizeof(double) * (size_t)tl);
            if (o->trace_len) *o->trace_len = tl;
        }
    }
    // Final assignment of every row to the best centres (identical to the training labels when
    // not sampling, since each Lloyd run ends with an assignment).
    if (Nt < N) b->rownorm2_forward(xx, Xw, N, d);
    b->rownorm2_forward(w.cc, best, K, d);
    kmeans_step(&w, dlab, NULL, Xw, xx, best, N, d, K);
    gather_shards(b, dlab, (size_t)N, KMEANS_GEMM_ROWS, sizeof(int64_t), w.rank, w.P);
    *objective = kmeans_objective(&w, Xw, best, dlab, N, d);
    b_get(b, labels, dlab, sizeof(int64_t) * (size_t)N);
    if (centers) b->to_host(centers, best, csz);
done:
    if (!on_host(b)) {
        free(w.Ch);
        free(w.lab_h);
        free(w.counts_h);
        free(w.mind_h);
        free(w.rowd_h);
    }
    free(w.Cold);
    free(w.prev);
    free(w.used);
    free(trace);
    void *bufs[] = {w.mind, w.cc, w.counts, w.sums, w.labels, w.rowd, w.cand, w.candn, w.dist,
                    xx, C, best, Xs, Xn};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) b->free(bufs[i]);
    b_drop(b, dlab, labels);
    b_drop(b, dX, X);
    return fail ? -1 : 0;
}

// --- kNN ---------------------------------------------------------------------------------

// The CUDA top-k keeps k candidates per lane in shared memory (kernels/knn.cu).
#define KNN_DEVICE_MAX_K 256

static const char *const knn_precisions[] = {"fp32", "tf32", "bf16"};
static int g_knn_precision = -2;   // -2: not set, read LAIC_KNN_PRECISION

static int knn_precision_of(const char *name) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, knn_precisions[i])) return i;
    return -1;
}

int knn_set_precision(const char *name) {
    int p = name ? knn_precision_of(name) : -1;
    if (p < 0)
        return laic_error("knn: unknown precision '%s' (expected fp32, tf32 or bf16)",
                          name ? name : "(null)");
    g_knn_precision = p;
    return 0;
}

int knn_precision(void) {
    if (g_knn_precision != -2) return g_knn_precision;
    const char *e = getenv("LAIC_KNN_PRECISION");
    return e && *e ? knn_precision_of(e) : 0;
}

int knn_topk(int64_t *idx, float *sims, const float *F, int N, int d, int k) {
    if (k < 1 || k >= N)
        return laic_error("knn: k = %d must be in [1, N-1] = [1, %d]", k, N - 1);
    const OpsBackend *o = g_ops;
    if (knn_precision() < 0)
        return laic_error("knn: LAIC_KNN_PRECISION='%s' is not fp32, tf32 or bf16",
                          getenv("LAIC_KNN_PRECISION"));
    if (!on_host(o) && k > KNN_DEVICE_MAX_K)
        return laic_error("knn: k = %d exceeds the %s limit of %d ---> HINT: use --device cpu",
                          k, o->name, KNN_DEVICE_MAX_K);
    int fail = 0;
    const float *dF = b_in(o, F, sizeof(float) * (size_t)N * d, &fail);          // (N,d)
    float *Fn = b_alloc(o, sizeof(float) * (size_t)N * d, &fail);                 // (N,d)
    int64_t *di = b_out(o, idx, sizeof(int64_t) * (size_t)N * k, &fail);         // (N,k)
    float *ds = sims ? b_out(o, sims, sizeof(float) * (size_t)N * k, &fail) : NULL;
    if (!fail) {
        o->l2normalize_rows(Fn, dF, N, d);
        // Data parallel on the CPU: each rank its query rows (whole blocks of the one-process
        // call) against all rows, then gathered. The CUDA op has no row-range kernel yet, so
        // there every rank computes every row (knn_topk_rows_forward in host/ops.h).
        const int P = o->comm_size ? o->comm_size() : 1;
        if (comm_distributed() && on_host(o)) {
            const int rank = P > 1 ? o->comm_rank() : 0, BR = knn_block_rows(N);
            size_t lo, hi;
            comm_shard((size_t)N, (size_t)BR, rank, P, &lo, &hi);
            o->knn_topk_rows_forward(di + lo * k, ds ? ds + lo * k : NULL, Fn, N, d, k, (int)lo,
                                     (int)hi);
            gather_shards(o, di, (size_t)N, (size_t)BR, sizeof(int64_t) * (size_t)k, rank, P);
            if (ds) gather_shards(o, ds, (size_t)N, (size_t)BR, sizeof(float) * (size_t)k, rank, P);
        } else {
            o->knn_topk_forward(di, ds, Fn, N, d, k);
        }
        b_get(o, idx, di, sizeof(int64_t) * (size_t)N * k);
        if (sims) b_get(o, sims, ds, sizeof(float) * (size_t)N * k);
    }
    if (Fn) o->free(Fn);
    b_drop(o, dF, F);
    b_drop(o, di, idx);
    b_drop(o, ds, sims);
    return fail ? -1 : 0;
}

int knn_filter(float *scores, uint8_t *mask, const int64_t *idx, const int64_t *labels, int N,
               int k) {
    const OpsBackend *o = g_ops;
    int fail = 0;
    const int64_t *di = b_in(o, idx, sizeof(int64_t) * (size_t)N * k, &fail);   // (N,k)
    const int64_t *dl = b_in(o, labels, sizeof(int64_t) * (size_t)N, &fail);    // (N)
    float *ds = b_out(o, scores, sizeof(float) * (size_t)N, &fail);             // (N)
    uint8_t *dm = mask ? b_out(o, mask, (size_t)N, &fail) : NULL;               // (N)
    if (!fail) {
        o->knn_filter_forward(ds, dm, di, dl, N, k);
        b_get(o, scores, ds, sizeof(float) * (size_t)N);
        if (mask) b_get(o, mask, dm, (size_t)N);
    }
    b_drop(o, di, idx);
    b_drop(o, dl, labels);
    b_drop(o, ds, scores);
    b_drop(o, dm, mask);
    return fail ? -1 : 0;
}
