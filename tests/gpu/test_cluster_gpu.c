/*
 * test_cluster_gpu.c — the CUDA clustering ops (kernels/cholesky.cu, kmeans.cu, knn.cu) and the
 * drivers on the CUDA backend, against their CPU twins (ops_cpu, host/cluster/cluster.c).
 *
 * Built into test_gpu by `make test-gpu` (CUDA builds only); without a device every test exits
 * 77 ("waived") at its first line. Inputs come from laic's seeded RNG.
 *
 * Tolerances, and why:
 * - conversions, transpose, knn_filter: exact (no arithmetic, or integer counts / one IEEE
 *   division).
 * - double ops (Gram, DGEMM, Cholesky, solves): ≤ 1e-10 scale-aware (max |gpu−cpu| / max |cpu|)
 *   on systems with condition number ~1e2–1e3: both sides are double with different summation
 *   orders (cuBLAS vs OpenBLAS, right- vs left-looking diagonal block), errors ~1e-14·cond.
 *   The Cholesky residual ‖L Lᵀ − A‖/‖A‖ ≤ 1e-12 on the GPU alone. The failing pivot of a
 *   non-PD matrix must be the same index and message as the CPU's.
 * - float GEMM outputs (sgemm, sqdist, similarities): ≤ 1e-5 scale-aware (fp32, TF32 off,
 *   d ≤ 96 terms, different orders).
 * - rownorm2 / l2normalize_rows: ≤ 1 ulp-ish (1e-6 relative): double sums in different order,
 *   then rounded to float.
 * - labels, indices: exact except where the CPU's own distances say the choice is a float tie:
 *   an assignment may differ only if the two centres' CPU distances are within 1e-4·(1+d);
 *   a neighbour list may differ only in entries whose similarity is within 1e-5 of the k-th.
 * - kmeans_update_forward with the same labels: bitwise (same double additions, same order).
 * - drivers end to end (ridge both forms + reduce, k-means on separated blobs, kNN): C within
 *   1e-4 scale-aware; k-means labels equal (blobs far apart make ties impossible), objective
 *   within 1e-6 relative; same seed twice on the GPU → bitwise identical.
 */
#include "../test.h"

#ifdef LAIC_CUDA

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "io/err.h"
#include "ops.h"
#include "rng.h"

static const OpsBackend *G = &ops_cuda, *REF = &ops_cpu;

#include "gpu_test.h"

static float *randf(Rng *r, size_t n, float scale) {
    float *x = mallocCheck(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)rng_normal(r) * scale;
    return x;
}

static double rel_err_f64(const double *a, const double *ref, size_t n) {
    double m = 0, e = 0;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs(ref[i]));
        e = fmax(e, fabs(a[i] - ref[i]));
    }
    return m > 0 ? e / m : e;
}

// Lower-triangle-only comparison of two (n,n) doubles.
static double rel_err_lower(const double *a, const double *ref, int n) {
    double m = 0, e = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j <= i; j++) {
            m = fmax(m, fabs(ref[(size_t)i * n + j]));
            e = fmax(e, fabs(a[(size_t)i * n + j] - ref[(size_t)i * n + j]));
        }
    return m > 0 ? e / m : e;
}

// SPD matrix (n,n) = B Bᵀ/n + I for a random B (n,n): condition number ~1e2.
static double *spd(Rng *r, int n) {
    double *B = mallocCheck(sizeof(double) * (size_t)n * n), *A = mallocCheck(sizeof(double) * (size_t)n * n);
    for (size_t i = 0; i < (size_t)n * n; i++) B[i] = rng_normal(r);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < n; p++) s += B[(size_t)i * n + p] * B[(size_t)j * n + p];
            A[(size_t)i * n + j] = s / n + (i == j);
        }
    free(B);
    return A;
}

static void report(const char *what, double e, double tol) {
    printf("    %s %s: %.3g (tol %.0e)\n", e <= tol ? "OK" : "NOT OK", what, e, tol);
    CHECK(e <= tol, "%s: %.3g > %.0e", what, e, tol);
}

// --- dense helpers -------------------------------------------------------------------------
TEST(gpu_cluster_dense_helpers) {
    need_gpu();
    Rng r;
    rng_init(&r, 11, 0);
    const int M = 70, K = 45, N = 33;
    float *a = randf(&r, (size_t)M * K, 1), *b = randf(&r, (size_t)K * N, 1);
    // Subnormals, ±0 and FLT_MIN among the inputs: nvcc's -ftz (from --use_fast_math) would
    // flush them in a plain cast; the conversions must stay exact.
    const float special[] = {1e-40f, -3e-39f, 1.4e-45f, -0.0f, 0.0f, 1.17549435e-38f, -1e-45f};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++) a[5 + 13 * i] = special[i];
    double *ad = mallocCheck(sizeof(double) * M * K), *bd = mallocCheck(sizeof(double) * N * K);
    for (int i = 0; i < M * K; i++) ad[i] = a[i];
    for (int i = 0; i < N * K; i++) bd[i] = b[i];   // (N,K) view for the NT product

    // f32 → f64 → f32 round trip and transpose: exact
    float *da = gpu_upload(a, 4 * (size_t)M * K);
    double *dd = gpu_alloc(8 * (size_t)M * K), *dt = gpu_alloc(8 * (size_t)M * K);
    G->f32_to_f64(dd, da, (size_t)M * K);
    double *gd = gpu_download(dd, 8 * (size_t)M * K);
    CHECK(!memcmp(gd, ad, 8 * (size_t)M * K), "f32_to_f64 exact");
    G->transpose_f64(dt, dd, M, K);
    double *gt = gpu_download(dt, 8 * (size_t)M * K), *rt = mallocCheck(8 * (size_t)M * K);
    REF->transpose_f64(rt, ad, M, K);
    CHECK(!memcmp(gt, rt, 8 * (size_t)M * K), "transpose_f64 exact (M=70, K=45: tile tails)");
    float *df = gpu_alloc(4 * (size_t)M * K);
    G->f64_to_f32(df, dd, (size_t)M * K);
    float *gf = gpu_download(df, 4 * (size_t)M * K);
    CHECK(!memcmp(gf, a, 4 * (size_t)M * K), "f64_to_f32 exact");
    // Narrowing doubles whose float is subnormal (round to nearest even, incl. exact ties and
    // values that round up to FLT_MIN) and ordinary ones: the same bits as the CPU's cast.
    {
        enum { NS = 64 };
        double sd[NS];
        for (int i = 0; i < NS; i++) {
            double m = ldexp(1.0 + rng_uniform(&r), -127 - (i % 24));   // in [2^-150, 2^-126)
            if (i % 4 == 1) m = ldexp((double)(i * 977 % 8388608) + 0.5, -149);   // a tie
            if (i % 8 == 3) m = ldexp(1.0 - ldexp(1.0, -30), -126);   // rounds up to FLT_MIN
            if (i == 7) m = 1.0 / 3.0;
            sd[i] = i % 2 ? -m : m;
        }
        sd[9] = -0.0;
        double *dsd = gpu_upload(sd, sizeof sd);
        float *dsf = gpu_alloc(sizeof(float) * NS), rf[NS];
        G->f64_to_f32(dsf, dsd, NS);
        REF->f64_to_f32(rf, sd, NS);
        float *gsf = gpu_download(dsf, sizeof(float) * NS);
        CHECK(!memcmp(gsf, rf, sizeof rf), "f64_to_f32 exact in the subnormal range");
        free(gsf);
        G->free(dsd), G->free(dsf);
    }

    // gram, both forms, with λ
    for (int trans = 0; trans < 2; trans++) {
        int n = trans ? K : M, k = trans ? M : K;
        double *rg = mallocCheck(8 * (size_t)n * n), *dg = gpu_alloc(8 * (size_t)n * n);
        REF->gram_f64_forward(rg, ad, 0.5, n, k, trans);
        G->gram_f64_forward(dg, dd, 0.5, n, k, trans);
        double *gg = gpu_download(dg, 8 * (size_t)n * n);
        report(trans ? "gram AᵀA+λI (lower)" : "gram AAᵀ+λI (lower)", rel_err_lower(gg, rg, n), 1e-12);
        free(rg), free(gg), G->free(dg);
    }
    // dgemm_nt: C (M,N) = A (M,K) B (N,K)ᵀ
    double *rc = mallocCheck(8 * (size_t)M * N), *dbd = gpu_upload(bd, 8 * (size_t)N * K),
           *dc = gpu_alloc(8 * (size_t)M * N);
    REF->dgemm_nt_forward(rc, ad, bd, M, K, N);
    G->dgemm_nt_forward(dc, dd, dbd, M, K, N);
    double *gc = gpu_download(dc, 8 * (size_t)M * N);
    report("dgemm_nt", rel_err_f64(gc, rc, (size_t)M * N), 1e-13);
    // sgemm_nn: C (M,N) = A (M,K) B (K,N)
    float *rs = mallocCheck(4 * (size_t)M * N), *db = gpu_upload(b, 4 * (size_t)K * N),
          *ds = gpu_alloc(4 * (size_t)M * N);
    REF->sgemm_nn_forward(rs, a, b, M, K, N);
    G->sgemm_nn_forward(ds, da, db, M, K, N);
    float *gs = gpu_download(ds, 4 * (size_t)M * N);
    report("sgemm_nn", max_rel_err(gs, rs, (size_t)M * N), 1e-5);
    free(a), free(b), free(ad), free(bd), free(gd), free(gt), free(rt), free(gf), free(rc), free(gc);
    free(rs), free(gs);
    G->free(da), G->free(dd), G->free(dt), G->free(df), G->free(dbd), G->free(dc), G->free(db);
    G->free(ds);
}

// --- Cholesky and solves ---------------------------------------------------------------------
TEST(gpu_cluster_cholesky_and_solves) {
    need_gpu();
    Rng r;
    rng_init(&r, 12, 0);
    // n: below one block, exactly one, tails, several blocks (NB = 64 on the GPU, 96 on the CPU)
    const int ns[] = {1, 5, 64, 65, 200, 513};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        // R: one partial thread block of the per-row solve kernels, or three (a tail of 44)
        int n = ns[t], R = t % 2 ? 300 : 37;
        size_t nn = (size_t)n * n;
        double *A = spd(&r, n), *Lc = mallocCheck(8 * nn);
        memcpy(Lc, A, 8 * nn);
        REQUIRE(REF->cholesky_forward(Lc, n, "cpu") == 0, "%s", laic_last_error());
        double *dA = gpu_upload(A, 8 * nn);
        REQUIRE(G->cholesky_forward(dA, n, "gpu") == 0, "%s", laic_last_error());
        double *Lg = gpu_download(dA, 8 * nn);
        char what[64];
        snprintf(what, sizeof what, "cholesky n=%d vs cpu", n);
        report(what, rel_err_f64(Lg, Lc, nn), 1e-10);
        int upper_zero = 1;
        double res = 0, am = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                if (j > i) upper_zero &= Lg[(size_t)i * n + j] == 0.0;
                double s = 0;
                for (int p = 0; p <= (i < j ? i : j); p++) s += Lg[(size_t)i * n + p] * Lg[(size_t)j * n + p];
                res = fmax(res, fabs(s - A[(size_t)i * n + j]));
                am = fmax(am, fabs(A[(size_t)i * n + j]));
            }
        CHECK(upper_zero, "n=%d: strict upper triangle zeroed", n);
        snprintf(what, sizeof what, "cholesky n=%d residual |LLt-A|/|A|", n);
        report(what, res / am, 1e-12);
        // right solve B (R,n) and left solve B (n,R)
        double *B = mallocCheck(8 * (size_t)R * n), *Bc = mallocCheck(8 * (size_t)R * n);
        for (size_t i = 0; i < (size_t)R * n; i++) B[i] = rng_normal(&r);
        memcpy(Bc, B, 8 * (size_t)R * n);
        REF->cholesky_solve_right(Bc, Lc, R, n);
        double *dB = gpu_upload(B, 8 * (size_t)R * n);
        G->cholesky_solve_right(dB, dA, R, n);
        double *Bg = gpu_download(dB, 8 * (size_t)R * n);
        snprintf(what, sizeof what, "solve_right n=%d R=%d", n, R);
        report(what, rel_err_f64(Bg, Bc, (size_t)R * n), 1e-10);
        memcpy(Bc, B, 8 * (size_t)R * n);
        REF->cholesky_solve_left(Bc, Lc, n, R);
        G->to_device(dB, B, 8 * (size_t)R * n);
        G->cholesky_solve_left(dB, dA, n, R);
        free(Bg);
        Bg = gpu_download(dB, 8 * (size_t)R * n);
        snprintf(what, sizeof what, "solve_left n=%d R=%d", n, R);
        report(what, rel_err_f64(Bg, Bc, (size_t)R * n), 1e-10);
        free(A), free(Lc), free(Lg), free(B), free(Bc), free(Bg);
        G->free(dA), G->free(dB);
    }
}

TEST(gpu_cluster_cholesky_not_pd_names_the_pivot) {
    need_gpu();
    Rng r;
    rng_init(&r, 13, 0);
    // Pivot 70 (second GPU block, first CPU block) and pivot 3 made negative.
    const int n = 100, bad[] = {3, 70};
    for (int t = 0; t < 2; t++) {
        double *A = spd(&r, n);
        A[(size_t)bad[t] * n + bad[t]] = -5.0;
        double *dA = gpu_upload(A, 8 * (size_t)n * n);
        char ec[256], eg[256];
        laic_clear_error();
        CHECK(REF->cholesky_forward(A, n, "m") != 0, "cpu accepts non-PD");
        snprintf(ec, sizeof ec, "%s", laic_last_error());
        laic_clear_error();
        CHECK(G->cholesky_forward(dA, n, "m") != 0, "gpu accepts non-PD");
        snprintf(eg, sizeof eg, "%s", laic_last_error());
        printf("    cpu: %s\n    gpu: %s\n", ec, eg);
        char want[64];
        snprintf(want, sizeof want, "m: matrix is not positive definite (pivot %d = ", bad[t]);
        CHECK(strstr(eg, want) == eg && count_lines(eg) == 1, "gpu message: '%s'", eg);
        CHECK(strstr(ec, want) == ec, "cpu message: '%s'", ec);
        free(A);
        G->free(dA);
    }
}

// --- k-means ops ---------------------------------------------------------------------------
TEST(gpu_cluster_kmeans_ops) {
    need_gpu();
    Rng r;
    rng_init(&r, 14, 0);
    const int N = 3001, d = 96, K = 37;
    float *X = randf(&r, (size_t)N * d, 1), *C = randf(&r, (size_t)K * d, 1);
    // Centre 20 duplicates centre 5 (a tie up to GEMM rounding); centre 30 is far from every
    // row, so its cluster is empty and the update must leave its row untouched.
    memcpy(C + 20 * d, C + 5 * d, 4 * (size_t)d);
    for (int j = 0; j < d; j++) C[30 * d + j] = 100.0f;
    float *xx = mallocCheck(4 * (size_t)N), *cc = mallocCheck(4 * (size_t)K);
    REF->rownorm2_forward(xx, X, N, d);
    REF->rownorm2_forward(cc, C, K, d);
    float *dX = gpu_upload(X, 4 * (size_t)N * d), *dC = gpu_upload(C, 4 * (size_t)K * d);
    float *dxx = gpu_alloc(4 * (size_t)N), *dcc = gpu_alloc(4 * (size_t)K);
    G->rownorm2_forward(dxx, dX, N, d);
    G->rownorm2_forward(dcc, dC, K, d);
    float *gxx = gpu_download(dxx, 4 * (size_t)N);
    report("rownorm2", max_rel_err(gxx, xx, N), 1e-6);
    // use the CPU norms on both sides from here, so the checks below isolate each op
    G->to_device(dxx, xx, 4 * (size_t)N);
    G->to_device(dcc, cc, 4 * (size_t)K);

    float *Xn = mallocCheck(4 * (size_t)N * d), *dXn = gpu_alloc(4 * (size_t)N * d);
    REF->l2normalize_rows(Xn, X, N, d);
    G->l2normalize_rows(dXn, dX, N, d);
    float *gXn = gpu_download(dXn, 4 * (size_t)N * d);
    report("l2normalize_rows", max_rel_err(gXn, Xn, (size_t)N * d), 1e-6);
    G->copy(dXn, dX, 4 * (size_t)N * d);
    G->l2normalize_rows(dXn, dXn, N, d);   // in place
    free(gXn);
    gXn = gpu_download(dXn, 4 * (size_t)N * d);
    report("l2normalize_rows in place", max_rel_err(gXn, Xn, (size_t)N * d), 1e-6);

    float *D = mallocCheck(4 * (size_t)N * K), *dD = gpu_alloc(4 * (size_t)N * K);
    REF->sqdist_forward(D, X, xx, C, cc, N, d, K);
    G->sqdist_forward(dD, dX, dxx, dC, dcc, N, d, K);
    float *gD = gpu_download(dD, 4 * (size_t)N * K);
    report("sqdist", max_rel_err(gD, D, (size_t)N * K), 1e-5);

    int64_t *lab = mallocCheck(8 * (size_t)N), *dlab = gpu_alloc(8 * (size_t)N);
    float *mind = mallocCheck(4 * (size_t)N), *dmind = gpu_alloc(4 * (size_t)N);
    REF->kmeans_assign_forward(lab, mind, X, xx, C, cc, N, d, K);
    G->kmeans_assign_forward(dlab, dmind, dX, dxx, dC, dcc, N, d, K);
    int64_t *glab = gpu_download(dlab, 8 * (size_t)N);
    float *gmind = gpu_download(dmind, 4 * (size_t)N);
    int unexplained = 0, differ = 0, tied5 = 0;
    for (int i = 0; i < N; i++) {
        tied5 += lab[i] == 5 || lab[i] == 20;
        if (glab[i] == lab[i]) continue;
        differ++;
        // allowed only for a float near-tie by the CPU's own distances
        double a = D[(size_t)i * K + lab[i]], b = D[(size_t)i * K + glab[i]];
        if (fabs(a - b) > 1e-4 * (1 + d)) unexplained++;
    }
    printf("    %s assign: %d labels differ, %d beyond near-ties; %d rows took tied centre 5/20\n",
           unexplained ? "NOT OK" : "OK", differ, unexplained, tied5);
    CHECK(unexplained == 0, "%d labels differ beyond float ties", unexplained);
    CHECK(tied5 > 0, "the tie case was exercised");
    // The tie rule itself, which the near-tie allowance above cannot see: where the GPU's own
    // distances to centres 5 and 20 are bitwise equal (same dots, same norms: the usual case
    // for duplicate GEMM columns), the assignment must never pick 20 (ties to the lowest index).
    int exact_ties = 0, tie_to_20 = 0;
    for (int i = 0; i < N; i++) {
        float a = gD[(size_t)i * K + 5], b = gD[(size_t)i * K + 20];
        if (a != b || !(a > 0.0f)) continue;   // clamped zeros may hide unequal distances
        exact_ties++;
        tie_to_20 += glab[i] == 20;
    }
    printf("    %s tie rule: %d rows with bitwise-equal distances to 5 and 20, %d took 20\n",
           tie_to_20 ? "NOT OK" : "OK", exact_ties, tie_to_20);
    CHECK(tie_to_20 == 0, "%d exact ties went to the higher centre index", tie_to_20);
    report("assign mind", max_rel_err(gmind, mind, N), 1e-5);

    // update from the CPU labels on both sides: bitwise (same additions, same order); an
    // empty cluster (30: no row is near it) keeps its previous row.
    float *Cu = mallocCheck(4 * (size_t)K * d);
    memcpy(Cu, C, 4 * (size_t)K * d);
    int64_t *cnt = mallocCheck(8 * (size_t)K), *dcnt = gpu_alloc(8 * (size_t)K);
    REF->kmeans_update_forward(Cu, cnt, X, lab, N, d, K);
    G->to_device(dlab, lab, 8 * (size_t)N);
    G->kmeans_update_forward(dC, dcnt, dX, dlab, N, d, K);
    float *gC = gpu_download(dC, 4 * (size_t)K * d);
    int64_t *gcnt = gpu_download(dcnt, 8 * (size_t)K);
    CHECK(cnt[30] == 0, "cluster 30 is empty in this case");
    CHECK(!memcmp(gcnt, cnt, 8 * (size_t)K), "counts equal");
    CHECK(!memcmp(gC, Cu, 4 * (size_t)K * d), "update bitwise equal to the CPU (incl. the empty row)");

    double *rd = mallocCheck(8 * (size_t)N), *drd = gpu_alloc(8 * (size_t)N);
    REF->kmeans_rowdist_forward(rd, X, Cu, lab, N, d);
    G->kmeans_rowdist_forward(drd, dX, dC, dlab, N, d);
    double *grd = gpu_download(drd, 8 * (size_t)N);
    report("rowdist (double)", rel_err_f64(grd, rd, N), 1e-12);

    free(X), free(C), free(xx), free(cc), free(gxx), free(Xn), free(gXn), free(D), free(gD);
    free(lab), free(mind), free(glab), free(gmind), free(Cu), free(cnt), free(gC), free(gcnt);
    free(rd), free(grd);
    void *bufs[] = {dX, dC, dxx, dcc, dXn, dD, dlab, dmind, dcnt, drd};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) G->free(bufs[i]);
}

// --- kNN ops -------------------------------------------------------------------------------
// Entries of the GPU list that are not in the CPU list must be near-ties with the CPU's k-th.
static int knn_unexplained(const int64_t *gi, const float *gs, const int64_t *ci, const float *cs,
                           int N, int k) {
    int bad = 0;
    for (int i = 0; i < N; i++) {
        const int64_t *g = gi + (size_t)i * k, *c = ci + (size_t)i * k;
        float kth = cs[(size_t)i * k + k - 1];
        for (int p = 0; p < k; p++) {
            int found = 0;
            for (int q = 0; q < k; q++) found |= g[p] == c[q];
            if (g[p] == i) bad++;   // self never
            if (!found && fabsf(gs[(size_t)i * k + p] - kth) > 1e-5f) bad++;
        }
    }
    return bad;
}

TEST(gpu_cluster_knn_ops) {
    need_gpu();
    Rng r;
    rng_init(&r, 15, 0);
    const int N = 2500, d = 64;
    const int ks[] = {1, 10, 33, 200, 256};
    float *F = randf(&r, (size_t)N * d, 1);
    memcpy(F + 7 * d, F + 3 * d, 4 * (size_t)d);      // exact duplicate rows: a tie at 1.0
    memcpy(F + 1200 * d, F + 3 * d, 4 * (size_t)d);
    float *Fn = mallocCheck(4 * (size_t)N * d);
    REF->l2normalize_rows(Fn, F, N, d);
    float *dF = gpu_upload(Fn, 4 * (size_t)N * d);
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        int k = ks[t];
        size_t nk = (size_t)N * k;
        int64_t *ci = mallocCheck(8 * nk), *di = gpu_alloc(8 * nk);
        float *cs = mallocCheck(4 * nk), *ds = gpu_alloc(4 * nk);
        REF->knn_topk_forward(ci, cs, Fn, N, d, k);
        G->knn_topk_forward(di, ds, dF, N, d, k);
        int64_t *gi = gpu_download(di, 8 * nk);
        float *gs = gpu_download(ds, 4 * nk);
        int sorted = 1, same = 0;
        for (int i = 0; i < N; i++)
            for (int p = 1; p < k; p++) sorted &= gs[(size_t)i * k + p - 1] >= gs[(size_t)i * k + p];
        for (size_t e = 0; e < nk; e++) same += gi[e] == ci[e];
        int bad = knn_unexplained(gi, gs, ci, cs, N, k);
        printf("    %s knn k=%d: %zu/%zu ids in the same place, %d beyond near-ties\n",
               bad ? "NOT OK" : "OK", k, (size_t)same, nk, bad);
        CHECK(bad == 0 && sorted, "knn k=%d: %d unexplained, sorted=%d", k, bad, sorted);
        char what[48];
        snprintf(what, sizeof what, "knn k=%d similarities", k);
        // compare by position only where the ids agree
        double e = 0;
        for (size_t q = 0; q < nk; q++)
            if (gi[q] == ci[q]) e = fmax(e, fabs(gs[q] - cs[q]));
        report(what, e, 1e-5);
        if (k == 10) {
            // rows 3, 7, 1200 are identical: their top neighbours are each other
            // (as a set: GEMM rounding may order identical columns either way)
            CHECK(gi[3 * k] + gi[3 * k + 1] == 1207 && (gi[3 * k] == 7 || gi[3 * k] == 1200),
                  "row 3: %lld %lld", (long long)gi[3 * k], (long long)gi[3 * k + 1]);
            // filter on the CPU's ids: exact
            int64_t *y = mallocCheck(8 * (size_t)N);
            for (int i = 0; i < N; i++) y[i] = i % 3;
            float *sc = mallocCheck(4 * (size_t)N);
            uint8_t *mk = mallocCheck((size_t)N);
            REF->knn_filter_forward(sc, mk, ci, y, N, k);
            int64_t *dy = gpu_upload(y, 8 * (size_t)N);
            float *dsc = gpu_alloc(4 * (size_t)N);
            uint8_t *dmk = gpu_alloc((size_t)N);
            G->to_device(di, ci, 8 * nk);
            G->knn_filter_forward(dsc, dmk, di, dy, N, k);
            float *gsc = gpu_download(dsc, 4 * (size_t)N);
            uint8_t *gmk = gpu_download(dmk, (size_t)N);
            CHECK(!memcmp(gsc, sc, 4 * (size_t)N) && !memcmp(gmk, mk, (size_t)N), "filter exact");
            free(y), free(sc), free(mk), free(gsc), free(gmk);
            G->free(dy), G->free(dsc), G->free(dmk);
        }
        free(ci), free(cs), free(gi), free(gs);
        G->free(di), G->free(ds);
    }
    free(F), free(Fn);
    G->free(dF);
}

// --- drivers on the CUDA backend -------------------------------------------------------------
TEST(gpu_cluster_drivers_match_cpu) {
    need_gpu();
    Rng r;
    rng_init(&r, 16, 0);
    const int N = 4000, d = 48, M1 = 20, M2 = 150;
    float *X = randf(&r, (size_t)N * d, 1), *T1 = randf(&r, (size_t)M1 * d, 1);
    float *T2 = randf(&r, (size_t)M2 * d, 1);
    // ridge: primal (M <= d), dual (forced), reduce (M >= d)
    struct { const float *T; int M; RidgeForm f; const char *name; } cases[] = {
        {T1, M1, RIDGE_PRIMAL, "ridge primal"}, {T1, M1, RIDGE_DUAL, "ridge dual"},
        {T2, M2, RIDGE_AUTO, "ridge auto (dual)"}, {T2, M2, RIDGE_PRIMAL, "ridge primal M=150"}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t nc = (size_t)N * cases[c].M;
        float *Cc = mallocCheck(4 * nc), *Cg = mallocCheck(4 * nc);
        cluster_set_backend(REF);
        REQUIRE(ridge_solve(Cc, X, cases[c].T, 2.0, N, cases[c].M, d, cases[c].f) == 0, "cpu");
        cluster_set_backend(G);
        REQUIRE(ridge_solve(Cg, X, cases[c].T, 2.0, N, cases[c].M, d, cases[c].f) == 0, "%s",
                laic_last_error());
        report(cases[c].name, max_rel_err(Cg, Cc, nc), 1e-4);
        free(Cc), free(Cg);
    }
    float *Zc = mallocCheck(4 * (size_t)N * d), *Zg = mallocCheck(4 * (size_t)N * d);
    cluster_set_backend(REF);
    REQUIRE(ridge_reduce(Zc, X, T2, 2.0, N, M2, d) == 0, "cpu reduce");
    cluster_set_backend(G);
    REQUIRE(ridge_reduce(Zg, X, T2, 2.0, N, M2, d) == 0, "%s", laic_last_error());
    report("ridge reduce Z", max_rel_err(Zg, Zc, (size_t)N * d), 1e-4);
    // a rank-deficient reduction fails with the same one-line message on both backends
    laic_clear_error();
    CHECK(ridge_reduce(Zg, X, T1, 2.0, N, M1, d) != 0 &&
              strstr(laic_last_error(), "not positive definite (pivot ") && count_lines(laic_last_error()) == 1,
          "gpu rank-deficient reduce: %s", laic_last_error());

    // k-means on well-separated blobs (no near-ties): same labels, same objective
    const int K = 6;
    float *B = mallocCheck(4 * (size_t)N * d);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < d; j++)
            B[(size_t)i * d + j] = (float)rng_normal(&r) * 0.1f + (j == i % K ? 10.0f : 0.0f);
    KMeansOpts o = {.K = K, .iters = 50, .restarts = 3, .seed = 7};
    int64_t *lc = mallocCheck(8 * (size_t)N), *lg = mallocCheck(8 * (size_t)N), *lg2 = mallocCheck(8 * (size_t)N);
    float *cc = mallocCheck(4 * (size_t)K * d), *cg = mallocCheck(4 * (size_t)K * d);
    double oc, og, og2;
    for (int sph = 0; sph < 2; sph++) {
        o.spherical = sph;
        o.sample = sph ? 1500 : 0;
        cluster_set_backend(REF);
        REQUIRE(kmeans_fit(lc, cc, &oc, B, N, d, &o) == 0, "cpu kmeans");
        cluster_set_backend(G);
        REQUIRE(kmeans_fit(lg, cg, &og, B, N, d, &o) == 0, "%s", laic_last_error());
        REQUIRE(kmeans_fit(lg2, NULL, &og2, B, N, d, &o) == 0, "%s", laic_last_error());
        CHECK(!memcmp(lg, lc, 8 * (size_t)N), "kmeans spherical=%d: labels equal the CPU's", sph);
        CHECK(!memcmp(lg, lg2, 8 * (size_t)N) && og == og2, "kmeans spherical=%d: GPU rerun bitwise", sph);
        report(sph ? "kmeans spherical+sample objective" : "kmeans objective", fabs(og - oc) / oc, 1e-6);
        report("kmeans centres", max_rel_err(cg, cc, (size_t)K * d), 1e-5);
    }
    // kNN driver; k above the CUDA limit is a one-line error
    int64_t *ic = mallocCheck(8 * (size_t)N * 5), *ig = mallocCheck(8 * (size_t)N * 5);
    float *sc = mallocCheck(4 * (size_t)N * 5), *sg = mallocCheck(4 * (size_t)N * 5);
    cluster_set_backend(REF);
    REQUIRE(knn_topk(ic, sc, X, N, d, 5) == 0, "cpu knn");
    cluster_set_backend(G);
    REQUIRE(knn_topk(ig, sg, X, N, d, 5) == 0, "%s", laic_last_error());
    CHECK(knn_unexplained(ig, sg, ic, sc, N, 5) == 0, "knn driver ids beyond near-ties");
    int64_t *big = mallocCheck(8 * (size_t)N * 300);
    laic_clear_error();
    CHECK(knn_topk(big, NULL, X, N, d, 300) != 0 && strstr(laic_last_error(), "limit of 256"),
          "k = 300 on cuda: %s", laic_last_error());
    cluster_set_backend(NULL);
    free(X), free(T1), free(T2), free(Zc), free(Zg), free(B), free(lc), free(lg), free(lg2);
    free(cc), free(cg), free(ic), free(ig), free(sc), free(sg), free(big);
}

// --- batched k-means restarts (kernels/kmeans.cu, kmeans_lloyd_batched_cuda) -----------------
// The CUDA driver runs all restarts at once; per restart it must do what the CPU's sequential
// loop does. Separated blobs: labels, per-restart iteration counts (through the trace of the
// best restart) and centres equal; objectives within 1e-9 relative (double sums in a tree order
// instead of row order). Random (unclustered) data: near-ties may flip a label, so only the
// final objective is compared, within 1e-3 relative. Empty clusters: a given init with a far
// centre must be re-seeded the same way on both.
TEST(gpu_cluster_kmeans_batched_restarts) {
    need_gpu();
    Rng r;
    rng_init(&r, 23, 0);
    const int N = 3000, d = 32, K = 5;
    float *B = mallocCheck(4 * (size_t)N * d);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < d; j++)
            B[(size_t)i * d + j] = (float)rng_normal(&r) * 0.2f + (j == i % K ? 8.0f : 0.0f);
    int64_t *lc = mallocCheck(8 * (size_t)N), *lg = mallocCheck(8 * (size_t)N);
    float *cc = mallocCheck(4 * (size_t)K * d), *cg = mallocCheck(4 * (size_t)K * d);
    double tc[41], tg[41], oc, og;
    int nc = 0, ng = 0;
    for (int init = 0; init < 2; init++) {
        KMeansOpts o = {.K = K, .iters = 40, .restarts = 7, .seed = 99,
                        .init = init ? KMEANS_INIT_RANDOM : KMEANS_INIT_PP};
        o.trace = tc, o.trace_len = &nc;
        cluster_set_backend(REF);
        REQUIRE(kmeans_fit(lc, cc, &oc, B, N, d, &o) == 0, "cpu");
        o.trace = tg, o.trace_len = &ng;
        cluster_set_backend(G);
        REQUIRE(kmeans_fit(lg, cg, &og, B, N, d, &o) == 0, "%s", laic_last_error());
        CHECK(!memcmp(lg, lc, 8 * (size_t)N), "init %d: labels equal the CPU's", init);
        CHECK(nc == ng, "init %d: trace length %d vs %d (same iterations)", init, ng, nc);
        double e = 0;
        for (int t = 0; t < nc && t < ng; t++) e = fmax(e, fabs(tg[t] - tc[t]) / tc[t]);
        report("batched trace", e, 1e-9);
        report("batched objective", fabs(og - oc) / oc, 1e-9);
        report("batched centres", max_rel_err(cg, cc, (size_t)K * d), 1e-6);
    }
    // d = 160: the centre-mean kernel's second 128-column chunk, with a 32-column tail (the
    // cases above have d = 32, one partial chunk); ~600 members per cluster cross the 512-row
    // member stage. Same blobs idea, given init (no k-means++ draws) for a strict comparison.
    {
        const int d2 = 160;
        float *B2 = mallocCheck(4 * (size_t)N * d2), *C2 = mallocCheck(4 * (size_t)K * d2);
        float *cc2 = mallocCheck(4 * (size_t)K * d2), *cg2 = mallocCheck(4 * (size_t)K * d2);
        for (int i = 0; i < N; i++)
            for (int j = 0; j < d2; j++)
                B2[(size_t)i * d2 + j] =
                    (float)rng_normal(&r) * 0.2f + (j % K == i % K && j >= 120 ? 3.0f : 0.0f);
        memcpy(C2, B2 + (size_t)7 * d2, 4 * (size_t)K * d2);   // rows 7..11: one per blob
        KMeansOpts o = {.K = K, .iters = 30, .restarts = 1, .init = KMEANS_INIT_GIVEN,
                        .init_centers = C2, .trace = tc, .trace_len = &nc};
        cluster_set_backend(REF);
        REQUIRE(kmeans_fit(lc, cc2, &oc, B2, N, d2, &o) == 0, "cpu");
        o.trace = tg, o.trace_len = &ng;
        cluster_set_backend(G);
        REQUIRE(kmeans_fit(lg, cg2, &og, B2, N, d2, &o) == 0, "%s", laic_last_error());
        CHECK(!memcmp(lg, lc, 8 * (size_t)N), "d=160: labels equal the CPU's");
        CHECK(nc == ng, "d=160: trace length %d vs %d", ng, nc);
        report("d=160 objective", fabs(og - oc) / oc, 1e-9);
        report("d=160 centres", max_rel_err(cg2, cc2, (size_t)K * d2), 1e-6);
        free(B2), free(C2), free(cc2), free(cg2);
    }
    // random data, spherical and not, with tol > 0 (early stop per restart)
    float *Xr = randf(&r, (size_t)N * d, 1);
    for (int sph = 0; sph < 2; sph++) {
        KMeansOpts o = {.K = 12, .iters = 60, .restarts = 6, .seed = 5, .spherical = sph,
                        .tol = 1e-6};
        int64_t *a = mallocCheck(8 * (size_t)N);
        cluster_set_backend(REF);
        REQUIRE(kmeans_fit(a, NULL, &oc, Xr, N, d, &o) == 0, "cpu");
        cluster_set_backend(G);
        REQUIRE(kmeans_fit(a, NULL, &og, Xr, N, d, &o) == 0, "%s", laic_last_error());
        report(sph ? "random spherical objective" : "random objective", fabs(og - oc) / oc, 1e-3);
        free(a);
    }
    // empty cluster: centre 0 placed far away gets no rows and is re-seeded on both
    float *C0 = mallocCheck(4 * (size_t)K * d);
    memcpy(C0, B, 4 * (size_t)K * d);   // rows 0..K-1: one per blob
    for (int j = 0; j < d; j++) C0[j] = 1e4f;
    KMeansOpts o = {.K = K, .iters = 20, .restarts = 1, .init = KMEANS_INIT_GIVEN,
                    .init_centers = C0};
    cluster_set_backend(REF);
    REQUIRE(kmeans_fit(lc, cc, &oc, B, N, d, &o) == 0, "cpu");
    cluster_set_backend(G);
    REQUIRE(kmeans_fit(lg, cg, &og, B, N, d, &o) == 0, "%s", laic_last_error());
    CHECK(!memcmp(lg, lc, 8 * (size_t)N), "empty cluster: labels equal the CPU's");
    report("empty cluster centres", max_rel_err(cg, cc, (size_t)K * d), 1e-6);
    cluster_set_backend(NULL);
    free(B), free(lc), free(lg), free(cc), free(cg), free(Xr), free(C0);
}

// --- kNN precision switch (host/cluster/cluster.h knn_set_precision, kernels/knn.cu) ----------------
// Names are checked without a device (CPU backend); on a device, tf32/bf16 candidates re-ranked
// exactly must give the CPU's neighbours except near-ties (knn_unexplained, as fp32) and
// similarities within 1e-5 of the CPU's.
TEST(gpu_cluster_knn_precision) {
    laic_clear_error();
    CHECK(knn_set_precision("fp16") != 0 && strstr(laic_last_error(), "unknown precision 'fp16'") &&
              count_lines(laic_last_error()) == 1,
          "bad name: %s", laic_last_error());
    const int N = 3000, d = 64, k = 10;
    Rng r;
    rng_init(&r, 31, 0);
    float *X = randf(&r, (size_t)N * d, 1);
    int64_t *ic = mallocCheck(8 * (size_t)N * k), *ig = mallocCheck(8 * (size_t)N * k);
    float *sc = mallocCheck(4 * (size_t)N * k), *sg = mallocCheck(4 * (size_t)N * k);
    setenv("LAIC_KNN_PRECISION", "int8", 1);
    laic_clear_error();
    CHECK(knn_topk(ic, sc, X, N, d, k) != 0 && strstr(laic_last_error(), "LAIC_KNN_PRECISION") &&
              count_lines(laic_last_error()) == 1,
          "bad env: %s", laic_last_error());
    unsetenv("LAIC_KNN_PRECISION");
    if (ops_cuda_device_count() > 0) {
        REQUIRE(knn_set_precision("fp32") == 0, "fp32");
        cluster_set_backend(REF);
        REQUIRE(knn_topk(ic, sc, X, N, d, k) == 0, "cpu knn");
        cluster_set_backend(G);
        const char *modes[] = {"tf32", "bf16"};
        for (int m = 0; m < 2; m++) {
            REQUIRE(knn_set_precision(modes[m]) == 0, "%s", modes[m]);
            REQUIRE(knn_topk(ig, sg, X, N, d, k) == 0, "%s", laic_last_error());
            CHECK(knn_unexplained(ig, sg, ic, sc, N, k) == 0, "%s: ids beyond near-ties", modes[m]);
            report(modes[m], max_rel_err(sg, sc, (size_t)N * k), 1e-5);
        }
        knn_set_precision("fp32");
        cluster_set_backend(NULL);
    }
    free(X), free(ic), free(ig), free(sc), free(sg);
}

// --- features far from unit scale (issue 13 item 7; tests/cluster/test_cluster_scale.c) -------
// On the CUDA backend too: l2normalize_rows makes rows of norm 1e-30 (and subnormal rows) unit
// like the CPU (1e-6 relative); the kNN driver on rows scaled by 2^e, e in [-100, 100], gives
// the same ids and similarities as on the unscaled rows (bitwise: the normalised rows are
// bitwise equal); k-means on X·2^±100 gives the unscaled labels bitwise, centres ·2^±100 and
// the objective ·2^±200 exactly (the driver rescales before calling the ops).
TEST(gpu_cluster_far_from_unit_scale) {
    need_gpu();
    Rng r;
    rng_init(&r, 32, 0);
    const int N = 2000, d = 40, K = 5, k = 8;
    float *X = randf(&r, (size_t)N * d, 1), *Y = mallocCheck(4 * (size_t)N * d);
    for (int i = 0; i < N; i++) {   // row scales 2^e, e in [-100, 100]; row 3 subnormal
        int e = i == 3 ? -140 : (int)rng_below(&r, 201) - 100;
        for (int j = 0; j < d; j++) Y[(size_t)i * d + j] = ldexpf(X[(size_t)i * d + j], e);
    }
    float *Yn = mallocCheck(4 * (size_t)N * d), *dY = gpu_upload(Y, 4 * (size_t)N * d);
    float *dYn = gpu_alloc(4 * (size_t)N * d);
    REF->l2normalize_rows(Yn, Y, N, d);
    G->l2normalize_rows(dYn, dY, N, d);
    float *gYn = gpu_download(dYn, 4 * (size_t)N * d);
    report("l2normalize_rows on rows x 2^[-140, 100]", max_rel_err(gYn, Yn, (size_t)N * d), 1e-6);
    Y[3 * (size_t)d] = X[3 * (size_t)d];   // the subnormal row aside, the kNN rows are exact
    for (int j = 1; j < d; j++) Y[3 * (size_t)d + j] = X[3 * (size_t)d + j];
    cluster_set_backend(G);
    int64_t *i0 = mallocCheck(8 * (size_t)N * k), *i1 = mallocCheck(8 * (size_t)N * k);
    float *s0 = mallocCheck(4 * (size_t)N * k), *s1 = mallocCheck(4 * (size_t)N * k);
    REQUIRE(knn_topk(i0, s0, X, N, d, k) == 0, "%s", laic_last_error());
    REQUIRE(knn_topk(i1, s1, Y, N, d, k) == 0, "%s", laic_last_error());
    CHECK(!memcmp(i0, i1, 8 * (size_t)N * k) && !memcmp(s0, s1, 4 * (size_t)N * k),
          "knn on rows x 2^e: not bitwise the unscaled result");
    // separated blobs, scaled as a whole
    for (int i = 0; i < N; i++)
        for (int j = 0; j < d; j++)
            X[(size_t)i * d + j] = (float)rng_normal(&r) * 0.1f + (j == i % K ? 10.0f : 0.0f);
    KMeansOpts o = {.K = K, .iters = 50, .restarts = 3, .seed = 7};
    int64_t *l0 = mallocCheck(8 * (size_t)N), *l1 = mallocCheck(8 * (size_t)N);
    float *c0 = mallocCheck(4 * (size_t)K * d), *c1 = mallocCheck(4 * (size_t)K * d);
    double o0, o1;
    REQUIRE(kmeans_fit(l0, c0, &o0, X, N, d, &o) == 0, "%s", laic_last_error());
    for (int e = -100; e <= 100; e += 200) {
        for (size_t i = 0; i < (size_t)N * d; i++) Y[i] = ldexpf(X[i], e);
        REQUIRE(kmeans_fit(l1, c1, &o1, Y, N, d, &o) == 0, "%s", laic_last_error());
        int cbad = 0;
        for (int i = 0; i < K * d; i++) cbad += c1[i] != ldexpf(c0[i], e);
        CHECK(!memcmp(l0, l1, 8 * (size_t)N) && cbad == 0 && o1 == ldexp(o0, 2 * e),
              "kmeans on X x 2^%d: labels %s, %d centres not scaled exactly, objective %.17g vs "
              "%.17g", e, memcmp(l0, l1, 8 * (size_t)N) ? "differ" : "equal", cbad, o1,
              ldexp(o0, 2 * e));
    }
    cluster_set_backend(NULL);
    free(X), free(Y), free(Yn), free(gYn), free(i0), free(i1), free(s0), free(s1);
    free(l0), free(l1), free(c0), free(c1);
    G->free(dY), G->free(dYn);
}

#endif
