/*
 * test_cluster.c — ridge (Cholesky), k-means, kNN + consistency filter and metrics, against the
 * numpy / scipy / scikit-learn goldens of scripts/make_cluster_fixtures.py
 * (tests/fixtures/cluster/), plus CLI happy paths and bad inputs.
 *
 * Tolerances (why):
 * - ridge C: max-rel 1e-4 vs numpy float64 (float32 output; the dual form's final product is
 *   an sgemm, error ~ sqrt(d)·6e-8); normal-equation residual 1e-5 relative (double solve).
 * - k-means with a given init: labels identical, centres 1e-5 absolute (float32 storage of
 *   double means; the data have no near-ties so float GEMM distances pick the same labels).
 * - k-means objective trace: non-increasing within 1e-7 relative (float centres, float
 *   GEMM distances in the assignment).
 * - kNN: ids identical except where the numpy similarities tie within 1e-6; sims 1e-5.
 * - metrics: |Δ| <= 1e-9 vs sklearn / scipy (same formulas in double).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "io/err.h"
#include "io/npy.h"
#include "cluster/metrics.h"
#include "rng.h"
#include "../test.h"

#define FIX "tests/fixtures/cluster/"

static int load(const char *name, Npy *a) {
    char p[256];
    snprintf(p, sizeof p, FIX "%s.npy", name);
    if (npy_read(p, a)) {
        printf("    cannot read %s: %s\n", p, laic_last_error());
        return -1;
    }
    return 0;
}
static int load_f32(const char *name, Npy *a) { return load(name, a) || npy_to_f32(a, name); }
static int load_i64(const char *name, Npy *a) { return load(name, a) || npy_to_i64(a, name); }

// --- Cholesky ------------------------------------------------------------------------------

// A (n,n) = B Bᵀ + n·I for a random B: symmetric positive definite.
static double *random_spd(int n, uint64_t seed) {
    Rng r;
    rng_init(&r, seed, 0);
    double *B = malloc(sizeof(double) * n * n), *A = malloc(sizeof(double) * n * n);
    for (int i = 0; i < n * n; i++) B[i] = rng_normal(&r);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = i == j ? n : 0;
            for (int p = 0; p < n; p++) s += B[i * n + p] * B[j * n + p];
            A[i * n + j] = s;
        }
    free(B);
    return A;
}

TEST(cluster_cholesky_blocked_reconstructs) {
    const int n = 211;   // > 2 blocks of 96, ragged last block
    double *A = random_spd(n, 1), *L = malloc(sizeof(double) * n * n);
    memcpy(L, A, sizeof(double) * n * n);
    REQUIRE(cholesky_forward_cpu(L, n, "test") == 0, "%s", laic_last_error());
    double md = 0, ma = 0;
    int upper_zero = 1;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            if (j > i && L[i * n + j] != 0) upper_zero = 0;
            double s = 0;
            for (int p = 0; p <= (i < j ? i : j); p++) s += L[i * n + p] * L[j * n + p];
            md = fmax(md, fabs(s - A[i * n + j]));
            ma = fmax(ma, fabs(A[i * n + j]));
        }
    printf("    L Lᵀ vs A: max rel %.3g\n", md / ma);
    CHECK(md / ma < 1e-13, "L Lᵀ != A (%.3g)", md / ma);
    CHECK(upper_zero, "strict upper triangle not zeroed");
    // solves: B (L Lᵀ)⁻¹ (L Lᵀ) == B, and (L Lᵀ)⁻¹ (L Lᵀ) Bᵀ == Bᵀ
    const int R = 5;
    double *B = malloc(sizeof(double) * R * n), *Y = malloc(sizeof(double) * R * n);
    for (int i = 0; i < R * n; i++) B[i] = sin(i * 0.37) + 0.1 * i / n;
    memcpy(Y, B, sizeof(double) * R * n);
    cholesky_solve_right_cpu(Y, L, R, n);
    double err = 0;
    for (int r = 0; r < R; r++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < n; p++) s += Y[r * n + p] * A[p * n + j];
            err = fmax(err, fabs(s - B[r * n + j]));
        }
    CHECK(err < 1e-10, "right solve residual %.3g", err);
    double *Bt = malloc(sizeof(double) * n * R);
    for (int r = 0; r < R; r++)
        for (int j = 0; j < n; j++) Bt[j * R + r] = B[r * n + j];
    cholesky_solve_left_cpu(Bt, L, n, R);
    err = 0;
    for (int i = 0; i < n; i++)
        for (int r = 0; r < R; r++) {
            double s = 0;
            for (int p = 0; p < n; p++) s += A[i * n + p] * Bt[p * R + r];
            err = fmax(err, fabs(s - B[r * n + i]));
        }
    CHECK(err < 1e-10, "left solve residual %.3g", err);
    free(A);
    free(L);
    free(B);
    free(Y);
    free(Bt);
}

TEST(cluster_cholesky_not_pd_names_pivot) {
    const int n = 150;
    double *A = random_spd(n, 2);
    // Leading minors of order <= 100 stay PD; the one of order 101 cannot be (a negative
    // diagonal entry), so the factorisation must stop at pivot 100, in the second block.
    A[100 * n + 100] = -1.0;
    laic_clear_error();
    CHECK(cholesky_forward_cpu(A, n, "crafted") != 0, "non-PD matrix accepted");
    const char *e = laic_last_error();
    printf("    error: %s\n", e);
    CHECK(strstr(e, "crafted") && strstr(e, "not positive definite") && strstr(e, "pivot 100 "),
          "message '%s'", e);
    free(A);
    A = random_spd(4, 3);
    A[5] = NAN;
    CHECK(cholesky_forward_cpu(A, 4, "nan") != 0 && strstr(laic_last_error(), "pivot 1 "),
          "NaN matrix: '%s'", laic_last_error());
    free(A);
}

// --- ridge ---------------------------------------------------------------------------------

TEST(cluster_ridge_vs_numpy_both_forms) {
    Npy X = {0}, T[2] = {{0}}, R[2] = {{0}};
    const char *tn[2] = {"ridge_T_wide", "ridge_T_narrow"}, *rn[2] = {"ridge_C_wide", "ridge_C_narrow"};
    REQUIRE(!load_f32("ridge_X", &X), "fixture");
    for (int c = 0; c < 2; c++) REQUIRE(!load_f32(tn[c], &T[c]) && !load_f32(rn[c], &R[c]), "fixture");
    int N = (int)X.shape[0], d = (int)X.shape[1];
    for (int c = 0; c < 2; c++) {
        int M = (int)T[c].shape[0];
        float *C = malloc(sizeof(float) * N * M);
        for (int f = RIDGE_AUTO; f <= RIDGE_DUAL; f++) {
            REQUIRE(ridge_solve(C, X.data, T[c].data, 2.0, N, M, d, (RidgeForm)f) == 0, "%s",
                    laic_last_error());
            double e = max_rel_err(C, R[c].data, (size_t)N * M);
            printf("    %s form %d: max rel %.3g\n", tn[c], f, e);
            CHECK(e <= 1e-4, "%s form %d: rel %.3g", tn[c], f, e);

            // normal equations: C (T Tᵀ + λI) == X Tᵀ
            const float *Tp = T[c].data, *Xp = X.data;
            double md = 0, mr = 0;
            for (int i = 0; i < N; i++)
                for (int j = 0; j < M; j++) {
                    double lhs = 2.0 * C[i * M + j], rhs = 0;
                    for (int m = 0; m < M; m++) {
                        double g = 0;
                        for (int p = 0; p < d; p++) g += (double)Tp[m * d + p] * Tp[j * d + p];
                        lhs += C[i * M + m] * g;
                    }
                    for (int p = 0; p < d; p++) rhs += (double)Xp[i * d + p] * Tp[j * d + p];
                    md = fmax(md, fabs(lhs - rhs));
                    mr = fmax(mr, fabs(rhs));
                }
            printf("    normal equations residual: %.3g\n", md / mr);
            CHECK(md / mr <= 1e-5, "residual %.3g", md / mr);
        }
        free(C);
    }
    npy_free(&X);
    for (int c = 0; c < 2; c++) {
        npy_free(&T[c]);
        npy_free(&R[c]);
    }
}

TEST(cluster_ridge_reduce_gram_and_errors) {
    Npy X = {0}, T = {0}, Tn = {0};
    REQUIRE(!load_f32("ridge_X", &X) && !load_f32("ridge_T_wide", &T) &&
                !load_f32("ridge_T_narrow", &Tn), "fixture");
    int N = (int)X.shape[0], d = (int)X.shape[1], M = (int)T.shape[0];
    float *C = malloc(sizeof(float) * N * M), *Z = malloc(sizeof(float) * N * d);
    REQUIRE(ridge_solve(C, X.data, T.data, 2.0, N, M, d, RIDGE_PRIMAL) == 0, "solve");
    REQUIRE(ridge_reduce(Z, X.data, T.data, 2.0, N, M, d) == 0, "%s", laic_last_error());
    // Z Zᵀ == C Cᵀ over all pairs (scale-aware: max |Δ| / max |C Cᵀ|)
    double md = 0, mr = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j <= i; j++) {
            double zz = 0, cc = 0;
            for (int p = 0; p < d; p++) zz += (double)Z[i * d + p] * Z[j * d + p];
            for (int p = 0; p < M; p++) cc += (double)C[i * M + p] * C[j * M + p];
            md = fmax(md, fabs(zz - cc));
            mr = fmax(mr, fabs(cc));
        }
    printf("    Z Zᵀ vs C Cᵀ: max rel %.3g\n", md / mr);
    CHECK(md / mr <= 1e-4, "Z Zᵀ != C Cᵀ (%.3g)", md / mr);
    // M < d: A Aᵀ has rank M, the reduction must refuse and name a pivot
    laic_clear_error();
    CHECK(ridge_reduce(Z, X.data, Tn.data, 2.0, N, (int)Tn.shape[0], d) != 0 &&
              strstr(laic_last_error(), "pivot"), "rank-deficient reduction: '%s'", laic_last_error());
    CHECK(ridge_solve(C, X.data, T.data, 0.0, N, M, d, RIDGE_AUTO) != 0 &&
              strstr(laic_last_error(), "lambda"), "lambda 0 accepted");
    CHECK(ridge_solve(C, X.data, T.data, -1.0, N, M, d, RIDGE_DUAL) != 0, "lambda < 0 accepted");
    free(C);
    free(Z);
    npy_free(&X);
    npy_free(&T);
    npy_free(&Tn);
}

// --- k-means -------------------------------------------------------------------------------

static void check_kmeans_given(const char *init, const char *lab, const char *cen, int spherical) {
    Npy X = {0}, C0 = {0}, L = {0}, Cr = {0};
    REQUIRE(!load_f32("km_X", &X) && !load_f32(init, &C0) && !load_i64(lab, &L) &&
                !load_f32(cen, &Cr), "fixture");
    int N = (int)X.shape[0], d = (int)X.shape[1], K = (int)C0.shape[0];
    int64_t *labels = malloc(sizeof(int64_t) * N);
    float *C = malloc(sizeof(float) * K * d);
    double obj, trace[301];
    int tl = 0;
    KMeansOpts o = {.K = K, .iters = 300, .restarts = 1, .seed = 1, .spherical = spherical,
                    .init = KMEANS_INIT_GIVEN, .init_centers = C0.data, .trace = trace,
                    .trace_len = &tl};
    REQUIRE(kmeans_fit(labels, C, &obj, X.data, N, d, &o) == 0, "%s", laic_last_error());
    int diff = 0;
    for (int i = 0; i < N; i++) diff += labels[i] != ((int64_t *)L.data)[i];
    printf("    %s: %d iterations, %d label differences\n", lab, tl - 1, diff);
    CHECK(diff == 0, "%s: %d labels differ from numpy Lloyd", lab, diff);
    CHECK(test_allclose(C, Cr.data, (size_t)K * d, 1e-5, 0, cen), "centres");
    CHECK(fabs(obj - trace[tl - 1]) <= 1e-9 * obj, "objective %.9g vs trace end %.9g", obj,
          trace[tl - 1]);
    free(labels);
    free(C);
    npy_free(&X);
    npy_free(&C0);
    npy_free(&L);
    npy_free(&Cr);
}

TEST(cluster_kmeans_given_init_vs_numpy) {
    check_kmeans_given("km_C0", "km_labels", "km_centers", 0);
    check_kmeans_given("km_C0", "km_sph_labels", "km_sph_centers", 1);
    // one initial centre is far from every row: empty at the first update, re-seeded with the
    // farthest row (the documented rule, mirrored by the numpy reference)
    check_kmeans_given("km_C0_empty", "km_empty_labels", "km_empty_centers", 0);
}

TEST(cluster_kmeans_objective_never_increases) {
    Npy X = {0};
    REQUIRE(!load_f32("km_X", &X), "fixture");
    int N = (int)X.shape[0], d = (int)X.shape[1];
    for (int sph = 0; sph < 2; sph++)
        for (int init = KMEANS_INIT_PP; init <= KMEANS_INIT_RANDOM; init++) {
            const int K = 9;
            int64_t *labels = malloc(sizeof(int64_t) * N);
            double obj, trace[301];
            int tl = 0;
            KMeansOpts o = {.K = K, .iters = 300, .restarts = 1, .seed = 7, .spherical = sph,
                            .init = (KMeansInit)init, .trace = trace, .trace_len = &tl};
            REQUIRE(kmeans_fit(labels, NULL, &obj, X.data, N, d, &o) == 0, "%s", laic_last_error());
            int bad = 0;
            for (int t = 1; t < tl; t++) bad += trace[t] > trace[t - 1] * (1 + 1e-7);
            printf("    spherical %d init %d: %d iterations, objective %.6g -> %.6g\n", sph, init,
                   tl - 1, trace[0], trace[tl - 1]);
            CHECK(tl >= 2 && bad == 0, "objective increased %d times", bad);
            CHECK(trace[tl - 1] < trace[0], "no progress");
            free(labels);
        }
    npy_free(&X);
}

TEST(cluster_kmeans_deterministic_across_threads) {
    Npy X = {0};
    REQUIRE(!load_f32("km_X", &X), "fixture");
    int N = (int)X.shape[0], d = (int)X.shape[1];
    const int K = 8;
    for (int mode = 0; mode < 3; mode++) {   // kmeans++, spherical random, sampled kmeans++
        int64_t *lab[3];
        float *cen[3];
        double obj[3];
        int threads[3] = {1, 2, 1};
        for (int r = 0; r < 3; r++) {
            cluster_set_threads(threads[r]);
            lab[r] = malloc(sizeof(int64_t) * N);
            cen[r] = malloc(sizeof(float) * K * d);
            KMeansOpts o = {.K = K, .iters = 300, .restarts = 3, .seed = 1234,
                            .spherical = mode == 1,
                            .init = mode == 1 ? KMEANS_INIT_RANDOM : KMEANS_INIT_PP,
                            .sample = mode == 2 ? 500 : 0};
            REQUIRE(kmeans_fit(lab[r], cen[r], &obj[r], X.data, N, d, &o) == 0, "%s",
                    laic_last_error());
        }
        cluster_set_threads(2);
        for (int r = 1; r < 3; r++) {
            CHECK(!memcmp(lab[0], lab[r], sizeof(int64_t) * N), "mode %d run %d: labels differ", mode, r);
            CHECK(!memcmp(cen[0], cen[r], sizeof(float) * K * d), "mode %d run %d: centres differ", mode, r);
            CHECK(obj[0] == obj[r], "mode %d run %d: objective %.17g vs %.17g", mode, r, obj[0], obj[r]);
        }
        int used[K];
        memset(used, 0, sizeof used);
        for (int i = 0; i < N; i++) used[lab[0][i]] = 1;
        int ne = 0;
        for (int c = 0; c < K; c++) ne += used[c];
        printf("    mode %d: objective %.9g, %d non-empty clusters\n", mode, obj[0], ne);
        CHECK(ne == K, "mode %d: %d of %d clusters used", mode, ne, K);
        for (int r = 0; r < 3; r++) {
            free(lab[r]);
            free(cen[r]);
        }
    }
    npy_free(&X);
}

TEST(cluster_kmeans_restarts_keep_best) {
    Npy X = {0};
    REQUIRE(!load_f32("km_X", &X), "fixture");
    int N = (int)X.shape[0], d = (int)X.shape[1];
    int64_t *lab = malloc(sizeof(int64_t) * N);
    double best = INFINITY, obj10;
    // Restart r draws from rng stream (seed, r), so a 10-restart run's first restart is the
    // 1-restart run with the same seed: keeping the best can only lower the objective.
    KMeansOpts o = {.K = 12, .iters = 300, .restarts = 1, .seed = 99, .init = KMEANS_INIT_RANDOM};
    REQUIRE(kmeans_fit(lab, NULL, &best, X.data, N, d, &o) == 0, "fit");
    o.restarts = 10;
    REQUIRE(kmeans_fit(lab, NULL, &obj10, X.data, N, d, &o) == 0, "fit");
    printf("    1 restart %.9g, 10 restarts %.9g\n", best, obj10);
    CHECK(obj10 <= best, "10 restarts worse than their first");
    o.K = N + 1;
    CHECK(kmeans_fit(lab, NULL, &obj10, X.data, N, d, &o) != 0, "K > N accepted");
    free(lab);
    npy_free(&X);
}

// --- kNN -----------------------------------------------------------------------------------

// Neighbour ids vs the numpy reference: a difference is acceptable only as an exact tie, i.e.
// when the double-precision cosine of our id equals the reference similarity at that rank
// (within 1e-6: duplicated rows tie exactly in numpy but may differ by an ulp in a float GEMM).
static int knn_unexplained(const int64_t *idx, const int64_t *ref, const float *ref_sims,
                           const float *F, int N, int d, int k, int *ndiff) {
    int bad = 0;
    *ndiff = 0;
    for (int i = 0; i < N * k; i++) {
        if (idx[i] == ref[i]) continue;
        (*ndiff)++;
        const float *a = F + (size_t)(i / k) * d, *b = F + (size_t)idx[i] * d;
        double ab = 0, aa = 0, bb = 0;
        for (int p = 0; p < d; p++) {
            ab += (double)a[p] * b[p];
            aa += (double)a[p] * a[p];
            bb += (double)b[p] * b[p];
        }
        double cs = ab / (fmax(sqrt(aa), 1e-12) * fmax(sqrt(bb), 1e-12));
        if (!(fabs(cs - ref_sims[i]) <= 1e-6)) bad++;
    }
    return bad;
}

TEST(cluster_knn_vs_numpy_and_filter) {
    Npy F = {0}, I = {0}, S = {0}, Y = {0}, SC = {0}, MK = {0};   // I: reference ids
    REQUIRE(!load_f32("knn_F", &F) && !load_i64("knn_idx", &I) && !load_f32("knn_sims", &S) &&
                !load_i64("knn_y", &Y) && !load_f32("knn_scores", &SC) && !load("knn_mask", &MK),
            "fixture");
    int N = (int)F.shape[0], d = (int)F.shape[1], k = (int)I.shape[1];
    int64_t *idx = malloc(sizeof(int64_t) * N * k);
    float *sims = malloc(sizeof(float) * N * k);
    REQUIRE(knn_topk(idx, sims, F.data, N, d, k) == 0, "%s", laic_last_error());
    const int64_t *ri = I.data;
    const float *rs = S.data;
    int diff = 0, unexplained = knn_unexplained(idx, ri, rs, F.data, N, d, k, &diff);
    printf("    %d id differences (%d not exact ties)\n", diff, unexplained);
    CHECK(unexplained == 0, "%d neighbour ids differ from numpy", unexplained);
    CHECK(test_allclose(sims, rs, (size_t)N * k, 1e-5, 0, "knn sims"), "sims");
    // the zero row (7) ties everything at 0: neighbours are the lowest indices, self excluded
    int64_t want[10] = {0, 1, 2, 3, 4, 5, 6, 8, 9, 10};
    CHECK(!memcmp(idx + 7 * k, want, sizeof want), "zero row neighbours not the lowest indices");

    float *sc = malloc(sizeof(float) * N);
    uint8_t *mk = malloc(N);
    knn_filter_forward_cpu(sc, mk, ri, Y.data, N, k);   // on the reference ids: filter alone
    CHECK(test_allclose(sc, SC.data, N, 1e-7, 0, "filter scores"), "scores");
    CHECK(!memcmp(mk, MK.data, N), "mask differs");
    int nh = 0;
    for (int i = 0; i < N; i++) nh += mk[i];
    printf("    high-quality rows: %d of %d\n", nh, N);
    CHECK(nh > 0 && nh < N, "degenerate fixture");
    laic_clear_error();
    CHECK(knn_topk(idx, NULL, F.data, N, d, N) != 0, "k = N accepted");
    free(idx);
    free(sims);
    free(sc);
    free(mk);
    npy_free(&F);
    npy_free(&I);
    npy_free(&S);
    npy_free(&Y);
    npy_free(&SC);
    npy_free(&MK);
}

// --- metrics -------------------------------------------------------------------------------

TEST(cluster_metrics_vs_sklearn) {
    Npy P = {0}, T = {0}, O = {0}, E = {0};
    REQUIRE(!load_i64("met_pred", &P) && !load_i64("met_true", &T) && !load_i64("met_off", &O) &&
                !load("met_expected", &E), "fixture");
    const int64_t *off = O.data;
    const double *e = E.data;
    int np = (int)O.count - 1, bad = 0;
    double worst[3] = {0, 0, 0};
    for (int c = 0; c < np; c++) {
        ClusterMetrics m;
        size_t n = (size_t)(off[c + 1] - off[c]);
        REQUIRE(metrics_compute(&m, (int64_t *)P.data + off[c], (int64_t *)T.data + off[c], n) == 0,
                "%s", laic_last_error());
        double got[3] = {m.nmi, m.acc, m.ari};
        for (int j = 0; j < 3; j++) {
            double dlt = fabs(got[j] - e[c * 3 + j]);
            if (!(dlt <= 1e-9)) {
                if (bad++ < 5)
                    printf("    NOT OK pair %d metric %d: got %.17g want %.17g\n", c, j, got[j],
                           e[c * 3 + j]);
            }
            if (dlt > worst[j] || dlt != dlt) worst[j] = dlt;
        }
    }
    printf("    %d pairs: max |Δ| nmi %.3g acc %.3g ari %.3g\n", np, worst[0], worst[1], worst[2]);
    CHECK(bad == 0, "%d metric values off", bad);
    npy_free(&P);
    npy_free(&T);
    npy_free(&O);
    npy_free(&E);
}

TEST(cluster_metrics_acc_invariant_and_hungarian) {
    Rng r;
    rng_init(&r, 5, 0);
    // relabelling the predictions (any injective map) changes none of the metrics
    for (int rep = 0; rep < 20; rep++) {
        size_t n = 50 + rng_below(&r, 200);
        int kp = 1 + (int)rng_below(&r, 12), kt = 1 + (int)rng_below(&r, 9);
        int64_t *p = malloc(sizeof(int64_t) * n), *t = malloc(sizeof(int64_t) * n),
                *q = malloc(sizeof(int64_t) * n), map[12];
        for (int i = 0; i < kp; i++) map[i] = i * 37 + 1000;   // injective
        for (int i = kp - 1; i > 0; i--) {
            int j = (int)rng_below(&r, (uint64_t)i + 1);
            int64_t x = map[i];
            map[i] = map[j];
            map[j] = x;
        }
        for (size_t i = 0; i < n; i++) {
            t[i] = (int64_t)rng_below(&r, (uint64_t)kt);
            p[i] = rng_uniform(&r) < 0.6 ? t[i] % kp : (int64_t)rng_below(&r, (uint64_t)kp);
            q[i] = map[p[i]];
        }
        ClusterMetrics a, b;
        REQUIRE(metrics_compute(&a, p, t, n) == 0 && metrics_compute(&b, q, t, n) == 0, "compute");
        CHECK(a.acc == b.acc && fabs(a.nmi - b.nmi) <= 1e-12 && fabs(a.ari - b.ari) <= 1e-12,
              "relabelling changed metrics (acc %.17g vs %.17g)", a.acc, b.acc);
        free(p);
        free(t);
        free(q);
    }
    // Hungarian vs brute force over all permutations of small random tables
    for (int rep = 0; rep < 30; rep++) {
        int n = 1 + rep % 6;
        int64_t W[36];
        for (int i = 0; i < n * n; i++) W[i] = (int64_t)rng_below(&r, 20);
        int as[6], perm[6], c[6] = {0};
        int64_t got = hungarian_max(as, W, n), best = -1, chk = 0;
        for (int i = 0; i < n; i++) chk += W[i * n + as[i]];
        for (int i = 0; i < n; i++) perm[i] = i;
        // Heap's algorithm
        int64_t s = 0;
        for (int i = 0; i < n; i++) s += W[i * n + perm[i]];
        best = s;
        for (int i = 0; i < n;) {
            if (c[i] < i) {
                int j = i % 2 ? c[i] : 0, x = perm[j];
                perm[j] = perm[i];
                perm[i] = x;
                s = 0;
                for (int q = 0; q < n; q++) s += W[q * n + perm[q]];
                if (s > best) best = s;
                c[i]++;
                i = 0;
            } else {
                c[i++] = 0;
            }
        }
        CHECK(got == best && chk == got, "n=%d: hungarian %lld (assignment sums %lld), brute %lld",
              n, (long long)got, (long long)chk, (long long)best);
    }
}

// --- CLI -----------------------------------------------------------------------------------

static int read_f32_file(const char *path, Npy *a) { return npy_read_f32(path, a, -1, NULL); }

TEST(cluster_cli_happy_paths) {
    char err[4096], args[2048];
    char C[512], Z[512], L[512], CC[512], L2[512], I[512], S[512], M[512], SC[512], J[512];
    snprintf(C, sizeof C, "%s", test_path("clu_C.npy"));
    snprintf(Z, sizeof Z, "%s", test_path("clu_Z.npy"));
    snprintf(L, sizeof L, "%s", test_path("clu_labels.npy"));
    snprintf(CC, sizeof CC, "%s", test_path("clu_centers.npy"));
    snprintf(L2, sizeof L2, "%s", test_path("clu_labels2.npy"));
    snprintf(I, sizeof I, "%s", test_path("clu_idx.npy"));
    snprintf(S, sizeof S, "%s", test_path("clu_sims.npy"));
    snprintf(M, sizeof M, "%s", test_path("clu_mask.npy"));
    snprintf(SC, sizeof SC, "%s", test_path("clu_scores.npy"));
    snprintf(J, sizeof J, "%s", test_path("clu_metrics.json"));
    snprintf(args, sizeof args,
             "ridge --images " FIX "ridge_X.npy --texts " FIX "ridge_T_wide.npy --lambda 2 "
             "--normalize --form primal --out %s --reduced-out %s", C, Z);
    REQUIRE(run_laic(args, NULL, err, sizeof err) == 0, "ridge failed: %s", err);
    Npy a = {0}, r = {0};
    REQUIRE(!read_f32_file(C, &a) && !load_f32("ridge_C_wide_norm", &r), "read");
    double e = max_rel_err(a.data, r.data, r.count);
    printf("    ridge --normalize CLI: max rel %.3g\n", e);
    CHECK(a.count == r.count && e <= 1e-4, "ridge CLI rel %.3g", e);
    CHECK(file_exists(Z), "reduced output missing");
    npy_free(&a);
    npy_free(&r);

    snprintf(args, sizeof args, "kmeans --in " FIX "km_X.npy --k 6 --init " FIX "km_C0_empty.npy "
             "--out %s --centers-out %s", L, CC);
    REQUIRE(run_laic(args, NULL, err, sizeof err) == 0, "kmeans failed: %s", err);
    CHECK(strstr(err, "objective") && count_lines(err) == 1, "stderr: '%s'", err);
    REQUIRE(!npy_read_i64(L, &a, 1, NULL) && !load_i64("km_empty_labels", &r), "read");
    CHECK(a.count == r.count && !memcmp(a.data, r.data, 8 * a.count), "kmeans CLI labels differ");
    npy_free(&a);
    npy_free(&r);
    // seeded k-means++ with restarts through the CLI: 3 lines, deterministic across threads
    snprintf(args, sizeof args, "kmeans --in " FIX "km_X.npy --k 6 --restarts 3 --threads 1 --out %s", L);
    REQUIRE(run_laic(args, NULL, err, sizeof err) == 0, "kmeans failed: %s", err);
    CHECK(count_lines(err) == 3, "want one line per restart: '%s'", err);
    snprintf(args, sizeof args, "kmeans --in " FIX "km_X.npy --k 6 --restarts 3 --threads 2 --out %s", L2);
    REQUIRE(run_laic(args, NULL, err, sizeof err) == 0, "kmeans failed: %s", err);
    REQUIRE(!npy_read_i64(L, &a, 1, NULL) && !npy_read_i64(L2, &r, 1, NULL), "read");
    CHECK(!memcmp(a.data, r.data, 8 * a.count), "threads 1 vs 2 differ");
    npy_free(&a);
    npy_free(&r);

    snprintf(args, sizeof args, "knn --in " FIX "knn_F.npy --k 10 --out %s --sims-out %s", I, S);
    REQUIRE(run_laic(args, NULL, err, sizeof err) == 0, "knn failed: %s", err);
    Npy F = {0}, RS = {0}, Y = {0};
    REQUIRE(!npy_read_i64(I, &a, 2, NULL) && !load_i64("knn_idx", &r) && !load_f32("knn_F", &F) &&
                !load_f32("knn_sims", &RS) && !load_i64("knn_y", &Y), "read");
    int N = (int)F.shape[0], d = (int)F.shape[1], k = 10, nd = 0;
    REQUIRE(a.count == r.count, "knn CLI shape");
    CHECK(knn_unexplained(a.data, r.data, RS.data, F.data, N, d, k, &nd) == 0,
          "knn CLI ids differ from numpy beyond ties");

    snprintf(args, sizeof args, "knn-filter --in " FIX "knn_F.npy --labels " FIX "knn_y.npy "
             "--k 10 --out %s --scores-out %s", M, SC);
    REQUIRE(run_laic(args, NULL, err, sizeof err) == 0, "knn-filter failed: %s", err);
    float *sc = malloc(sizeof(float) * N);
    uint8_t *mk = malloc(N);
    knn_filter_forward_cpu(sc, mk, a.data, Y.data, N, k);   // on the CLI's own ids
    npy_free(&a);
    npy_free(&r);
    REQUIRE(!npy_read(M, &a) && !read_f32_file(SC, &r), "read");
    CHECK(a.dtype == NPY_U8 && a.count == (size_t)N && !memcmp(a.data, mk, N), "mask differs");
    CHECK(r.count == (size_t)N && !memcmp(r.data, sc, sizeof(float) * N), "scores differ");
    free(sc);
    free(mk);
    npy_free(&a);
    npy_free(&r);
    npy_free(&F);
    npy_free(&RS);
    npy_free(&Y);

    REQUIRE(run_laic("metrics --pred " FIX "met_cli_pred.npy --labels " FIX "met_cli_true.npy", J,
                     err, sizeof err) == 0, "metrics failed: %s", err);
    FILE *f = fopen(J, "r");
    REQUIRE(f, "no stdout");
    double nmi = -9, acc = -9, ari = -9;
    long nn = -1;
    int got = fscanf(f, "{\"nmi\": %lf, \"acc\": %lf, \"ari\": %lf, \"n\": %ld", &nmi, &acc, &ari, &nn);
    fclose(f);
    REQUIRE(!load("met_cli_expected", &r) && !npy_read_i64(FIX "met_cli_pred.npy", &a, 1, NULL), "read");
    const double *ex = r.data;
    CHECK(got == 4 && fabs(nmi - ex[0]) <= 1e-9 && fabs(acc - ex[1]) <= 1e-9 &&
              fabs(ari - ex[2]) <= 1e-9 && nn == (long)a.count,
          "metrics JSON %d fields: %.17g %.17g %.17g %ld", got, nmi, acc, ari, nn);
    npy_free(&a);
    npy_free(&r);
}

// Writes small bad-input files once per process.
static void write_bad_inputs(void) {
    static int done;
    if (done) return;
    done = 1;
    float x[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    npy_write_f32_2d(test_path("bad_X4x3.npy"), x, 4, 3);
    npy_write_f32_2d(test_path("bad_T3x4.npy"), x, 3, 4);
    x[5] = NAN;
    npy_write_f32_2d(test_path("bad_nan.npy"), x, 4, 3);
    int64_t y[5] = {0, 1, 0, 1, 1}, yn[4] = {0, -1, 0, 1};
    size_t s5[1] = {5}, s4[1] = {4};
    npy_write(test_path("bad_y5.npy"), NPY_I64, 1, s5, y);
    npy_write(test_path("bad_yneg.npy"), NPY_I64, 1, s4, yn);
    npy_write(test_path("bad_y4.npy"), NPY_I64, 1, s4, y);
}

// Runs a bad command: non-zero exit, exactly one stderr line containing `want`, no output.
static void expect_fail(const char *args, const char *want, const char *out) {
    char err[4096], full[8192];
    snprintf(full, sizeof full, "%s --out %s", args, out);
    int rc = run_laic(full, NULL, err, sizeof err);
    CHECK(rc != 0, "'%s' succeeded", full);
    CHECK(count_lines(err) == 1, "'%s': %d stderr lines: %s", full, count_lines(err), err);
    CHECK(strstr(err, want) != NULL, "'%s': message lacks '%s': %s", full, want, err);
    CHECK(!file_exists(out), "'%s' left %s behind", full, out);
    printf("    %-40.40s -> %s", args, err);
}

TEST(cluster_cli_bad_inputs) {
    write_bad_inputs();
    char a[4096];
    char o[512], X[512], T[512], NaN[512], y5[512], yneg[512], y4[512];
    snprintf(o, sizeof o, "%s", test_path("cluster_bad_out.npy"));
    snprintf(X, sizeof X, "%s", test_path("bad_X4x3.npy"));
    snprintf(T, sizeof T, "%s", test_path("bad_T3x4.npy"));
    snprintf(NaN, sizeof NaN, "%s", test_path("bad_nan.npy"));
    snprintf(y5, sizeof y5, "%s", test_path("bad_y5.npy"));
    snprintf(yneg, sizeof yneg, "%s", test_path("bad_yneg.npy"));
    snprintf(y4, sizeof y4, "%s", test_path("bad_y4.npy"));
    snprintf(a, sizeof a, "ridge --images %s --texts %s --lambda 0", X, X);
    expect_fail(a, "lambda", o);
    snprintf(a, sizeof a, "ridge --images %s --texts %s --lambda -3", X, X);
    expect_fail(a, "lambda", o);
    snprintf(a, sizeof a, "ridge --images %s --texts %s", X, T);
    expect_fail(a, "bad_T3x4.npy: width 4", o);
    snprintf(a, sizeof a, "ridge --images %s --texts %s", NaN, X);
    expect_fail(a, "bad_nan.npy: contains NaN", o);
    snprintf(a, sizeof a, "ridge --images %s --texts %s --form sideways", X, X);
    expect_fail(a, "--form", o);
    snprintf(a, sizeof a, "kmeans --in %s --k 5", X);
    expect_fail(a, "bad_X4x3.npy: K = 5 exceeds", o);
    snprintf(a, sizeof a, "kmeans --in %s --k 2", NaN);
    expect_fail(a, "bad_nan.npy: contains NaN", o);
    snprintf(a, sizeof a, "kmeans --in %s --k 3 --init %s", X, T);
    expect_fail(a, "bad_T3x4.npy: expected shape", o);
    snprintf(a, sizeof a, "knn --in %s --k 4", X);
    expect_fail(a, "bad_X4x3.npy: k = 4", o);
    snprintf(a, sizeof a, "knn --in %s --k 0", X);
    expect_fail(a, "k = 0", o);
    snprintf(a, sizeof a, "knn --in %s --k 2", NaN);
    expect_fail(a, "contains NaN", o);
    // the second output cannot be written: the first is not left behind either
    snprintf(a, sizeof a, "knn --in %s --k 2 --sims-out %s/no/such/dir/S.npy", X, test_tmpdir());
    expect_fail(a, "S.npy", o);
    snprintf(a, sizeof a, "knn-filter --in %s --labels %s --k 2", X, y5);
    expect_fail(a, "bad_y5.npy: 5 labels for 4 rows", o);
    snprintf(a, sizeof a, "knn-filter --in %s --labels %s --k 2", X, yneg);
    expect_fail(a, "bad_yneg.npy: negative label", o);
    snprintf(a, sizeof a, "knn-filter --in %s --labels %s --k 4", X, y4);
    expect_fail(a, "k = 4", o);

    // metrics prints JSON on stdout: use the stdout capture as the "output file"
    char err[4096];
    snprintf(a, sizeof a, "metrics --pred %s --labels %s", y4, y5);
    int rc = run_laic(a, o, err, sizeof err);
    CHECK(rc != 0 && count_lines(err) == 1 && strstr(err, "bad_y5.npy: 5 labels"), "metrics length: %s", err);
    snprintf(a, sizeof a, "metrics --pred %s --labels %s", yneg, y4);
    rc = run_laic(a, o, err, sizeof err);
    CHECK(rc != 0 && count_lines(err) == 1 && strstr(err, "bad_yneg.npy: negative label"), "metrics neg: %s", err);
    snprintf(a, sizeof a, "metrics --pred %s --labels %s", X, y4);
    rc = run_laic(a, o, err, sizeof err);
    CHECK(rc != 0 && count_lines(err) == 1 && strstr(err, "bad_X4x3.npy"), "metrics float: %s", err);
}

TEST(cluster_cli_kmeans_degenerate_data) {
    // 6 rows, only 2 distinct: with K = 3 one cluster must stay empty; k-means still finishes
    // and every label is a valid cluster index.
    float x[12] = {0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1};
    const char *in = test_path("degen.npy"), *out = test_path("degen_labels.npy");
    npy_write_f32_2d(in, x, 6, 2);
    char args[1024], err[4096];
    snprintf(args, sizeof args, "kmeans --in %s --k 3 --restarts 2 --out %s", in, out);
    REQUIRE(run_laic(args, NULL, err, sizeof err) == 0, "kmeans failed: %s", err);
    Npy a = {0};
    REQUIRE(!npy_read_i64(out, &a, 1, NULL), "read");
    const int64_t *l = a.data;
    int ok = a.count == 6;
    for (size_t i = 0; i < a.count; i++) ok &= l[i] >= 0 && l[i] < 3;
    ok &= l[0] == l[1] && l[1] == l[2] && l[3] == l[4] && l[4] == l[5] && l[0] != l[3];
    CHECK(ok, "labels %lld %lld %lld %lld %lld %lld", (long long)l[0], (long long)l[1],
          (long long)l[2], (long long)l[3], (long long)l[4], (long long)l[5]);
    npy_free(&a);
}
