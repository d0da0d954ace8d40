/*
 * cluster.c — drivers of the clustering numerics: ridge (both forms + exact reduction),
 * k-means (init, restarts, sampling, empty-cluster re-seeding), cosine kNN.
 *
 * Promises: see cluster.h. The drivers own scratch memory and policy (which system to solve,
 * seeding, restarts, tiling); the arithmetic is in the ops of host/cpu/{cholesky,kmeans,knn}.c.
 * Letters: N rows, d width, M texts, K clusters, k neighbours.
 */
#include "cluster.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "io/err.h"
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

// --- ridge -------------------------------------------------------------------------------

// Rows of X per tile in the primal form: the (tile,M) double right-hand side stays bounded.
#define RIDGE_TILE 1024

static double *to_double(const float *x, size_t n) {
    double *o = mallocCheck(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) o[i] = x[i];
    return o;
}

// A (d,M) double = (TᵀT + λI_d)⁻¹ Tᵀ for Td (M,d) double; returns NULL on a failed factor.
static double *ridge_dual_A(const double *Td, double lambda, int M, int d) {
    double *H = mallocCheck(sizeof(double) * (size_t)d * d);   // (d,d)
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, d, M, 1.0, Td, d, 0.0, H, d);
    for (int i = 0; i < d; i++) H[(size_t)i * d + i] += lambda;
    if (cholesky_forward_cpu(H, d, "ridge: T^T T + lambda I")) {
        free(H);
        return NULL;
    }
    double *A = mallocCheck(sizeof(double) * (size_t)d * M);   // (d,M) = Tᵀ, then solved
    for (int m = 0; m < M; m++)
        for (int j = 0; j < d; j++) A[(size_t)j * M + m] = Td[(size_t)m * d + j];
    cholesky_solve_left_cpu(A, H, d, M);
    free(H);
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
    double *Td = to_double(T, (size_t)M * d);   // (M,d)
    int rc = 0;
    if (form == RIDGE_PRIMAL) {
        // G = T Tᵀ + λI_M = L Lᵀ; then per row tile C = (X Tᵀ) G⁻¹, all in double because the
        // solve can amplify rounding in the right-hand side by up to cond(G).
        double *G = mallocCheck(sizeof(double) * (size_t)M * M);   // (M,M)
        cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, M, d, 1.0, Td, d, 0.0, G, M);
        for (int i = 0; i < M; i++) G[(size_t)i * M + i] += lambda;
        if (cholesky_forward_cpu(G, M, "ridge: T T^T + lambda I")) {
            rc = -1;
        } else {
            double *Xd = mallocCheck(sizeof(double) * (size_t)RIDGE_TILE * d);   // (tile,d)
            double *B = mallocCheck(sizeof(double) * (size_t)RIDGE_TILE * M);    // (tile,M)
            for (int r0 = 0; r0 < N; r0 += RIDGE_TILE) {
                int R = N - r0 < RIDGE_TILE ? N - r0 : RIDGE_TILE;
                for (size_t i = 0; i < (size_t)R * d; i++) Xd[i] = X[(size_t)r0 * d + i];
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, M, d, 1.0, Xd, d, Td, d,
                            0.0, B, M);
                cholesky_solve_right_cpu(B, G, R, M);
                for (size_t i = 0; i < (size_t)R * M; i++) C[(size_t)r0 * M + i] = (float)B[i];
            }
            free(Xd);
            free(B);
        }
        free(G);
    } else {
        // A = (TᵀT + λI_d)⁻¹ Tᵀ in double; the one N-sized product C = X A runs in float
        // (sgemm): A is well scaled (no solve follows), so its error is the float32 rounding
        // of a d-term dot product, far inside the 1e-4 budget, at twice dgemm's speed.
        double *A = ridge_dual_A(Td, lambda, M, d);   // (d,M)
        if (!A) {
            rc = -1;
        } else {
            float *Af = mallocCheck(sizeof(float) * (size_t)d * M);
            for (size_t i = 0; i < (size_t)d * M; i++) Af[i] = (float)A[i];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, M, d, 1.0f, X, d, Af, M,
                        0.0f, C, M);
            free(Af);
            free(A);
        }
    }
    free(Td);
    return rc;
}

int ridge_reduce(float *Z, const float *X, const float *T, double lambda, int N, int M, int d) {
    if (ridge_check(lambda, N, M, d)) return -1;
    double *Td = to_double(T, (size_t)M * d);
    double *A = ridge_dual_A(Td, lambda, M, d);   // (d,M)
    free(Td);
    if (!A) return -1;
    double *P = mallocCheck(sizeof(double) * (size_t)d * d);   // (d,d) = A Aᵀ
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, d, M, 1.0, A, M, 0.0, P, d);
    free(A);
    if (cholesky_forward_cpu(P, d, "ridge reduction: A A^T (needs M >= d texts of rank d)")) {
        free(P);
        return -1;
    }
    float *Lf = mallocCheck(sizeof(float) * (size_t)d * d);
    for (size_t i = 0; i < (size_t)d * d; i++) Lf[i] = (float)P[i];
    free(P);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, d, d, 1.0f, X, d, Lf, d, 0.0f, Z,
                d);
    free(Lf);
    return 0;
}

// --- k-means -----------------------------------------------------------------------------

// Σ_i ‖x_i − c_{l_i}‖² in double (exact distances, fixed summation order); tmp (N) scratch.
static double kmeans_objective(const float *X, const float *C, const int64_t *labels, double *tmp,
                               int N, int d) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float *x = X + (size_t)i * d, *c = C + (size_t)labels[i] * d;
        double s = 0;
        for (int j = 0; j < d; j++) {
            double t = (double)x[j] - c[j];
            s += t * t;
        }
        tmp[i] = s;
    }
    double s = 0;
    for (int i = 0; i < N; i++) s += tmp[i];
    return s;
}

// Greedy k-means++ (as scikit-learn): each new centre is the best of `trials` candidates drawn
// with probability ∝ D², "best" = lowest resulting potential (ties: first candidate).
static void kmeans_pp_init(float *C, const float *X, const float *xx, int N, int d, int K,
                           Rng *rng) {
    int trials = 2 + (int)floor(log((double)K));
    double *closest = mallocCheck(sizeof(double) * (size_t)N);   // (N) D² to chosen centres
    double *cum = mallocCheck(sizeof(double) * (size_t)N);
    double *cand_d = mallocCheck(sizeof(double) * (size_t)trials * N);   // (trials,N)
    float *cand = mallocCheck(sizeof(float) * (size_t)trials * d);       // (trials,d)
    float *dist = mallocCheck(sizeof(float) * (size_t)N * trials);   // (N,trials)
    float candn[64];
    int64_t first = (int64_t)rng_below(rng, (uint64_t)N);
    memcpy(C, X + (size_t)first * d, sizeof(float) * d);
    rownorm2_forward_cpu(candn, C, 1, d);
    sqdist_forward_cpu(dist, X, xx, C, candn, N, d, 1);
    double pot = 0;
    for (int i = 0; i < N; i++) pot += (closest[i] = dist[i]);
    for (int c = 1; c < K; c++) {
        double s = 0;
        for (int i = 0; i < N; i++) cum[i] = (s += closest[i]);
        for (int t = 0; t < trials; t++) {
            double v = rng_uniform(rng) * pot;
            // first i with cum[i] >= v (numpy searchsorted 'left'), clipped to N-1
            int lo = 0, hi = N - 1;
            while (lo < hi) {
                int mid = lo + (hi - lo) / 2;
                if (cum[mid] >= v) hi = mid;
                else lo = mid + 1;
            }
            memcpy(cand + (size_t)t * d, X + (size_t)lo * d, sizeof(float) * d);
        }
        rownorm2_forward_cpu(candn, cand, trials, d);
        sqdist_forward_cpu(dist, X, xx, cand, candn, N, d, trials);
        int best = 0;
        double best_pot = INFINITY;
        for (int t = 0; t < trials; t++) {
            double *cd = cand_d + (size_t)t * N;
#pragma omp parallel for schedule(static)
            for (int i = 0; i < N; i++) {
                double dd = dist[(size_t)i * trials + t];
                cd[i] = dd < closest[i] ? dd : closest[i];
            }
            double p = 0;
            for (int i = 0; i < N; i++) p += cd[i];
            if (p < best_pot) {
                best_pot = p;
                best = t;
            }
        }
        memcpy(closest, cand_d + (size_t)best * N, sizeof(double) * N);
        pot = best_pot;
        memcpy(C + (size_t)c * d, cand + (size_t)best * d, sizeof(float) * d);
    }
    free(closest);
    free(cum);
    free(cand_d);
    free(cand);
    free(dist);
}

// K distinct rows drawn uniformly (partial Fisher–Yates).
static void kmeans_random_init(float *C, const float *X, int N, int d, int K, Rng *rng) {
    int64_t *perm = mallocCheck(sizeof(int64_t) * (size_t)N);
    for (int i = 0; i < N; i++) perm[i] = i;
    for (int c = 0; c < K; c++) {
        int64_t j = c + (int64_t)rng_below(rng, (uint64_t)(N - c));
        int64_t t = perm[c];
        perm[c] = perm[j];
        perm[j] = t;
        memcpy(C + (size_t)c * d, X + (size_t)perm[c] * d, sizeof(float) * d);
    }
    free(perm);
}

// One Lloyd run from the centres in C (K,d); returns the final objective. trace (iters+1).
static double kmeans_lloyd(float *C, int64_t *labels, int *n_iter, double *trace, int *trace_len,
                           const float *X, const float *xx, int N, int d, const KMeansOpts *o) {
    int K = o->K;
    float *mind = mallocCheck(sizeof(float) * (size_t)N);
    float *cc = mallocCheck(sizeof(float) * (size_t)K);
    float *Cold = mallocCheck(sizeof(float) * (size_t)K * d);
    int64_t *counts = mallocCheck(sizeof(int64_t) * (size_t)K);
    int64_t *prev = mallocCheck(sizeof(int64_t) * (size_t)N);
    uint8_t *used = mallocCheck((size_t)N);
    double *tmp = mallocCheck(sizeof(double) * (size_t)N);

    if (o->spherical) l2normalize_rows_cpu(C, C, K, d);
    rownorm2_forward_cpu(cc, C, K, d);
    kmeans_assign_forward_cpu(labels, mind, X, xx, C, cc, N, d, K);
    double obj = kmeans_objective(X, C, labels, tmp, N, d);
    int nt = 0;
    trace[nt++] = obj;
    int it = 0;
    while (it < o->iters) {
        it++;
        memcpy(Cold, C, sizeof(float) * (size_t)K * d);
        kmeans_update_forward_cpu(C, counts, X, labels, N, d, K);
        // Empty clusters: re-seed with the row farthest from its current centre (by the mind of
        // the last assignment), ties to the lowest row, each row used at most once.
        int any_empty = 0;
        for (int c = 0; c < K; c++) any_empty |= counts[c] == 0;
        if (any_empty) {
            memset(used, 0, (size_t)N);
            for (int c = 0; c < K; c++) {
                if (counts[c]) continue;
                int64_t far = -1;
                for (int i = 0; i < N; i++)
                    if (!used[i] && (far < 0 || mind[i] > mind[far])) far = i;
                used[far] = 1;
                memcpy(C + (size_t)c * d, X + (size_t)far * d, sizeof(float) * d);
            }
        }
        if (o->spherical) l2normalize_rows_cpu(C, C, K, d);
        double shift = 0;
        for (size_t i = 0; i < (size_t)K * d; i++) {
            double t = (double)C[i] - Cold[i];
            shift += t * t;
        }
        memcpy(prev, labels, sizeof(int64_t) * (size_t)N);
        rownorm2_forward_cpu(cc, C, K, d);
        kmeans_assign_forward_cpu(labels, mind, X, xx, C, cc, N, d, K);
        size_t changed = 0;
        for (int i = 0; i < N; i++) changed += labels[i] != prev[i];
        obj = kmeans_objective(X, C, labels, tmp, N, d);
        trace[nt++] = obj;
        if (changed == 0 || shift <= o->tol) break;
    }
    *n_iter = it;
    *trace_len = nt;
    free(mind);
    free(cc);
    free(Cold);
    free(counts);
    free(prev);
    free(used);
    free(tmp);
    return obj;
}

int kmeans_fit(int64_t *labels, float *centers, double *objective, const float *X, int N, int d,
               const KMeansOpts *o) {
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

    // Working copy of the data: normalised rows for spherical k-means.
    float *Xn = NULL;
    const float *Xw = X;   // (N,d)
    if (o->spherical) {
        Xn = mallocCheck(sizeof(float) * (size_t)N * d);
        l2normalize_rows_cpu(Xn, X, N, d);
        Xw = Xn;
    }
    // Training rows: a seeded subsample (kept in increasing row order) or all rows.
    float *Xs = NULL;
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
        Xs = mallocCheck(sizeof(float) * (size_t)Nt * d);
        size_t r = 0;
        for (int i = 0; i < N; i++)
            if (pick[i]) memcpy(Xs + (r++) * d, Xw + (size_t)i * d, sizeof(float) * d);
        free(perm);
        free(pick);
        Xt = Xs;
    }
    float *xx = mallocCheck(sizeof(float) * (size_t)N);   // (N) ≥ (Nt)
    rownorm2_forward_cpu(xx, Xt, Nt, d);

    int restarts = o->init == KMEANS_INIT_GIVEN ? 1 : o->restarts;
    float *C = mallocCheck(sizeof(float) * (size_t)K * d);      // (K,d) current restart
    float *best = mallocCheck(sizeof(float) * (size_t)K * d);   // (K,d) best so far
    int64_t *lt = mallocCheck(sizeof(int64_t) * (size_t)Nt);
    double *trace = mallocCheck(sizeof(double) * ((size_t)o->iters + 1));
    double best_obj = INFINITY;
    for (int r = 0; r < restarts; r++) {
        Rng rng;
        rng_init(&rng, o->seed, (uint64_t)r);
        if (o->init == KMEANS_INIT_GIVEN) memcpy(C, o->init_centers, sizeof(float) * (size_t)K * d);
        else if (o->init == KMEANS_INIT_RANDOM) kmeans_random_init(C, Xt, Nt, d, K, &rng);
        else kmeans_pp_init(C, Xt, xx, Nt, d, K, &rng);
        int n_iter = 0, tl = 0;
        double obj = kmeans_lloyd(C, lt, &n_iter, trace, &tl, Xt, xx, Nt, d, o);
        if (o->verbose)
            fprintf(stderr, "kmeans: restart %d/%d: objective %.9g after %d iterations\n", r + 1,
                    restarts, obj, n_iter);
        if (obj < best_obj || r == 0) {   // r == 0 also covers a NaN objective
            best_obj = obj;
            memcpy(best, C, sizeof(float) * (size_t)K * d);
            if (o->trace) memcpy(o->trace, trace, sizeof(double) * (size_t)tl);
            if (o->trace_len) *o->trace_len = tl;
        }
    }
    // Final assignment of every row to the best centres (identical to the training labels when
    // not sampling, since each Lloyd run ends with an assignment).
    float *mind = mallocCheck(sizeof(float) * (size_t)N);
    float *cc = mallocCheck(sizeof(float) * (size_t)K);
    double *tmp = mallocCheck(sizeof(double) * (size_t)N);
    if (Nt < N) rownorm2_forward_cpu(xx, Xw, N, d);
    rownorm2_forward_cpu(cc, best, K, d);
    kmeans_assign_forward_cpu(labels, mind, Xw, xx, best, cc, N, d, K);
    *objective = kmeans_objective(Xw, best, labels, tmp, N, d);
    if (centers) memcpy(centers, best, sizeof(float) * (size_t)K * d);
    free(mind);
    free(cc);
    free(tmp);
    free(C);
    free(best);
    free(lt);
    free(trace);
    free(xx);
    free(Xs);
    free(Xn);
    return 0;
}

// --- kNN ---------------------------------------------------------------------------------

int knn_topk(int64_t *idx, float *sims, const float *F, int N, int d, int k) {
    if (k < 1 || k >= N)
        return laic_error("knn: k = %d must be in [1, N-1] = [1, %d]", k, N - 1);
    float *Fn = mallocCheck(sizeof(float) * (size_t)N * d);   // (N,d)
    l2normalize_rows_cpu(Fn, F, N, d);
    knn_topk_forward_cpu(idx, sims, Fn, N, d, k);
    free(Fn);
    return 0;
}
