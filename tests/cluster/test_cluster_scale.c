/*
 * test_cluster_scale.c — features far from unit scale (issue 13 item 7). Finite features scaled
 * by 1e±30 gave wrong answers with exit 0: kNN on F×1e-30 returned wrong neighbours (rows of
 * norm < 1e-12 were not normalised: F.normalize's floor), k-means on X×1e±30 put every row in
 * one cluster (float squared norms overflowed to Inf/NaN or underflowed to 0).
 *
 * What must hold (CPU backend; the CUDA twins get the same treatment: the k-means scaling is in
 * the driver, the normalisation kernels lost the same floor):
 * - l2normalize_rows: unit rows from subnormal to FLT_MAX, zero rows stay zero.
 * - cosine kNN is per-row scale-invariant: rows scaled by powers of two in [2^-100, 2^100]
 *   give bitwise the same ids and similarities (power-of-two scaling is exact, so normalised
 *   rows are bitwise equal); decimal 1e±30 scaling (rounded) gives the same neighbours up to
 *   ties within 1e-5 (a true cosine of a returned id equals the reference similarity at that
 *   rank) and similarities within 1e-6.
 * - k-means is equivariant under a global scale: X·2^±100 gives bitwise the same labels,
 *   centres ·2^±100 and objective ·2^±200 (the driver fits an exact power-of-two rescaling);
 *   X×1e±30 the same labels (the fixture has no near-ties). Spherical k-means with per-row
 *   scales: bitwise the same.
 * - the CLI: `laic knn` / `laic kmeans` on the files ×1e-30 and ×1e30 give the unscaled ids /
 *   labels.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "io/err.h"
#include "io/npy.h"
#include "rng.h"
#include "../test.h"

#define FIX "tests/fixtures/cluster/"

static int load_f32(const char *name, Npy *a) {
    char p[256];
    snprintf(p, sizeof p, FIX "%s.npy", name);
    if (npy_read_f32(p, a, 2, NULL)) {
        printf("    cannot read %s: %s\n", p, laic_last_error());
        return -1;
    }
    return 0;
}

// A copy of X (N,d) with row i scaled by scale[i] (double product rounded once to float).
static float *scaled_rows(const float *X, int N, int d, const double *scale) {
    float *Y = malloc(sizeof(float) * (size_t)N * d);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < d; j++) Y[(size_t)i * d + j] = (float)(X[(size_t)i * d + j] * scale[i]);
    return Y;
}

static double *const_scales(int N, double s) {
    double *v = malloc(sizeof(double) * N);
    for (int i = 0; i < N; i++) v[i] = s;
    return v;
}

// Powers of two 2^e, e uniform in [-100, 100], one per row.
static double *pow2_scales(int N, uint64_t seed) {
    Rng r;
    rng_init(&r, seed, 0);
    double *v = malloc(sizeof(double) * N);
    for (int i = 0; i < N; i++) v[i] = ldexp(1.0, (int)rng_below(&r, 201) - 100);
    return v;
}

TEST(cluster_l2normalize_rows_any_scale) {
    enum { D = 5, R = 7 };
    const float base[D] = {3, -4, 0.5f, 1e-3f, -2};
    const double scale[R] = {1, 1e-30, 1e30, 0x1p-140, 1e-12, 0, 3e37};
    float X[R * D], Y[R * D];
    for (int i = 0; i < R; i++)
        for (int j = 0; j < D; j++) X[i * D + j] = (float)(base[j] * scale[i]);
    X[5 * D] = 0x1p-149f;   // row 5: one denormal-minimum element, the rest zero
    float Z[D] = {0};       // an all-zero row
    l2normalize_rows_cpu(Y, X, R, D);
    for (int i = 0; i < R; i++) {
        double nx = 0, ny = 0;
        for (int j = 0; j < D; j++) nx += (double)X[i * D + j] * X[i * D + j];
        nx = sqrt(nx);
        double err = 0;
        for (int j = 0; j < D; j++) {
            ny += (double)Y[i * D + j] * Y[i * D + j];
            err = fmax(err, fabs(Y[i * D + j] - X[i * D + j] / nx));
        }
        CHECK(fabs(sqrt(ny) - 1) <= 1e-6 && err <= 1e-6,
              "row %d (scale %g): norm %.9g, max error %.3g vs x/|x|", i, scale[i], sqrt(ny), err);
    }
    l2normalize_rows_cpu(Z, Z, 1, D);
    int zero = 1;
    for (int j = 0; j < D; j++) zero &= Z[j] == 0;
    CHECK(zero, "an all-zero row must stay zero");
}

// The double cosine of rows a and b of F (N,d).
static double cosine(const float *F, int d, int64_t a, int64_t b) {
    double ab = 0, aa = 0, bb = 0;
    for (int p = 0; p < d; p++) {
        double x = F[(size_t)a * d + p], y = F[(size_t)b * d + p];
        ab += x * y, aa += x * x, bb += y * y;
    }
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0;
}

// Ids that differ from the reference only as ties: the true cosine (on the unscaled F) of the
// returned id equals the reference similarity at that rank within 1e-5. Returns the others.
static int unexplained(const int64_t *idx, const int64_t *ref, const float *ref_sims,
                       const float *F, int N, int d, int k) {
    int bad = 0;
    for (int i = 0; i < N * k; i++)
        if (idx[i] != ref[i] && !(fabs(cosine(F, d, i / k, idx[i]) - ref_sims[i]) <= 1e-5)) bad++;
    return bad;
}

TEST(cluster_knn_scale_invariant) {
    Npy F = {0};
    REQUIRE(!load_f32("knn_F", &F), "fixture");
    const int N = (int)F.shape[0], d = (int)F.shape[1], k = 10;
    const size_t nk = (size_t)N * k;
    int64_t *ri = malloc(sizeof(int64_t) * nk), *idx = malloc(sizeof(int64_t) * nk);
    float *rs = malloc(sizeof(float) * nk), *sims = malloc(sizeof(float) * nk);
    REQUIRE(knn_topk(ri, rs, F.data, N, d, k) == 0, "%s", laic_last_error());
    struct { const char *what; double *scale; int exact; } cases[] = {
        {"all rows 2^-100", const_scales(N, 0x1p-100), 1},
        {"all rows 2^100", const_scales(N, 0x1p100), 1},
        {"rows 2^e, e in [-100, 100]", pow2_scales(N, 42), 1},
        {"all rows 1e-30", const_scales(N, 1e-30), 0},
        {"all rows 1e30", const_scales(N, 1e30), 0},
        {"all rows 1e-40 (subnormal floats)", const_scales(N, 1e-40), 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        float *G = scaled_rows(F.data, N, d, cases[c].scale);
        REQUIRE(knn_topk(idx, sims, G, N, d, k) == 0, "%s: %s", cases[c].what, laic_last_error());
        if (cases[c].exact) {
            CHECK(!memcmp(idx, ri, sizeof(int64_t) * nk) && !memcmp(sims, rs, sizeof(float) * nk),
                  "%s: ids or similarities not bitwise the unscaled ones", cases[c].what);
        } else {
            // subnormal floats keep fewer bits: the rows themselves moved by up to ~1e-5
            double tol = cases[c].scale[0] < 1e-37 ? 1e-4 : 1e-6, e = 0;
            for (size_t i = 0; i < nk; i++) e = fmax(e, fabs(sims[i] - rs[i]));
            int bad = unexplained(idx, ri, rs, F.data, N, d, k);
            printf("    %s: max |sim diff| %.3g, %d ids not explained by ties\n", cases[c].what, e,
                   bad);
            CHECK(bad == 0 && e <= tol, "%s: %d wrong neighbours, max sim diff %.3g",
                  cases[c].what, bad, e);
        }
        free(G);
        free(cases[c].scale);
    }
    free(ri);
    free(idx);
    free(rs);
    free(sims);
    npy_free(&F);
}

typedef struct {
    int64_t *labels;
    float *centers;
    double obj, trace[301];
    int trace_len;
} Fit;

static int fit(Fit *f, const float *X, int N, int d, int K, int mode, double init_scale,
               const float *C0, int spherical) {
    f->labels = malloc(sizeof(int64_t) * N);
    f->centers = malloc(sizeof(float) * K * d);
    float *C0s = NULL;
    KMeansOpts o = {.K = K, .iters = 300, .restarts = 3, .seed = 1234, .spherical = spherical,
                    .trace = f->trace, .trace_len = &f->trace_len};
    if (mode == 0) o.init = KMEANS_INIT_PP;
    if (mode == 1) o.init = KMEANS_INIT_RANDOM;
    if (mode == 2) {   // the given centres, scaled as the data
        C0s = malloc(sizeof(float) * K * d);
        for (int i = 0; i < K * d; i++) C0s[i] = (float)(C0[i] * init_scale);
        o.init = KMEANS_INIT_GIVEN;
        o.init_centers = C0s;
    }
    if (mode == 3) o.sample = 500;
    int rc = kmeans_fit(f->labels, f->centers, &f->obj, X, N, d, &o);
    free(C0s);
    return rc;
}

static void fit_free(Fit *f) {
    free(f->labels);
    free(f->centers);
}

TEST(cluster_kmeans_scale_equivariant) {
    Npy X = {0}, C0 = {0};
    REQUIRE(!load_f32("km_X", &X) && !load_f32("km_C0", &C0), "fixture");
    const int N = (int)X.shape[0], d = (int)X.shape[1], K = (int)C0.shape[0];
    const char *modes[4] = {"kmeans++", "random", "given init", "sampled kmeans++"};
    for (int mode = 0; mode < 4; mode++) {
        Fit ref;
        REQUIRE(fit(&ref, X.data, N, d, K, mode, 1, C0.data, 0) == 0, "%s", laic_last_error());
        const double scales[] = {0x1p100, 0x1p-100, 1e30, 1e-30};
        for (size_t s = 0; s < 4; s++) {
            double *sv = const_scales(N, scales[s]);
            float *Y = scaled_rows(X.data, N, d, sv);
            Fit g;
            REQUIRE(fit(&g, Y, N, d, K, mode, scales[s], C0.data, 0) == 0, "%s", laic_last_error());
            CHECK(!memcmp(g.labels, ref.labels, sizeof(int64_t) * N),
                  "%s, X x %g: labels differ from the unscaled fit's", modes[mode], scales[s]);
            if (s < 2) {   // powers of two: everything bitwise, scaled
                int e = s == 0 ? 100 : -100, cbad = 0;
                for (int i = 0; i < K * d; i++) cbad += g.centers[i] != ldexpf(ref.centers[i], e);
                int tbad = g.trace_len != ref.trace_len;
                for (int t = 0; t < ref.trace_len && !tbad; t++)
                    tbad = g.trace[t] != ldexp(ref.trace[t], 2 * e);
                CHECK(cbad == 0 && g.obj == ldexp(ref.obj, 2 * e) && !tbad,
                      "%s, X x 2^%d: %d centres not scaled exactly; objective %.17g vs %.17g; "
                      "trace %s", modes[mode], e, cbad, g.obj, ldexp(ref.obj, 2 * e),
                      tbad ? "differs" : "ok");
            } else {
                double ce = 0, s2 = scales[s] * scales[s];
                for (int i = 0; i < K * d; i++)
                    ce = fmax(ce, fabs(g.centers[i] / scales[s] - ref.centers[i]));
                CHECK(ce <= 1e-5 && fabs(g.obj / s2 - ref.obj) <= 1e-5 * ref.obj,
                      "%s, X x %g: centres off by %.3g, objective %.9g vs %.9g", modes[mode],
                      scales[s], ce, g.obj / s2, ref.obj);
            }
            fit_free(&g);
            free(Y);
            free(sv);
        }
        fit_free(&ref);
    }
    // spherical k-means is per-row scale-invariant
    Fit ref, g;
    REQUIRE(fit(&ref, X.data, N, d, K, 0, 1, NULL, 1) == 0, "%s", laic_last_error());
    double *sv = pow2_scales(N, 7);
    float *Y = scaled_rows(X.data, N, d, sv);
    REQUIRE(fit(&g, Y, N, d, K, 0, 1, NULL, 1) == 0, "%s", laic_last_error());
    CHECK(!memcmp(g.labels, ref.labels, sizeof(int64_t) * N) &&
              !memcmp(g.centers, ref.centers, sizeof(float) * K * d) && g.obj == ref.obj,
          "spherical, rows x 2^e: not bitwise the unscaled fit");
    fit_free(&g);
    fit_free(&ref);
    free(Y);
    free(sv);
    npy_free(&X);
    npy_free(&C0);
}

// Writes X (N,d) × s to path.
static int write_scaled(const char *path, const Npy *X, double s) {
    double *sv = const_scales((int)X->shape[0], s);
    float *Y = scaled_rows(X->data, (int)X->shape[0], (int)X->shape[1], sv);
    int rc = npy_write_f32_2d(path, Y, X->shape[0], X->shape[1]);
    free(Y);
    free(sv);
    return rc;
}

static int same_i64_files(const char *a, const char *b) {
    Npy x = {0}, y = {0};
    int same = !npy_read_i64(a, &x, -1, NULL) && !npy_read_i64(b, &y, -1, NULL) &&
               x.count == y.count && !memcmp(x.data, y.data, sizeof(int64_t) * x.count);
    npy_free(&x);
    npy_free(&y);
    return same;
}

TEST(cluster_cli_far_from_unit_scale) {
    Npy X = {0}, F = {0};
    REQUIRE(!load_f32("km_X", &X) && !load_f32("knn_F", &F), "fixture");
    char args[2048], err[4096], in[512], ref[512], out[512];
    const double scales[2] = {1e-30, 1e30};
    snprintf(ref, sizeof ref, "%s", test_path("scale_ref.npy"));
    snprintf(out, sizeof out, "%s", test_path("scale_out.npy"));
    snprintf(in, sizeof in, "%s", test_path("scale_in.npy"));
    snprintf(args, sizeof args, "kmeans --in " FIX "km_X.npy --k 6 --restarts 3 --out %s", ref);
    REQUIRE(run_laic(args, NULL, err, sizeof err) == 0, "kmeans: %s", err);
    for (int s = 0; s < 2; s++) {
        REQUIRE(write_scaled(in, &X, scales[s]) == 0, "%s", laic_last_error());
        snprintf(args, sizeof args, "kmeans --in %s --k 6 --restarts 3 --out %s", in, out);
        int rc = run_laic(args, NULL, err, sizeof err);
        CHECK(rc == 0 && same_i64_files(ref, out), "laic kmeans on X x %g: rc %d, labels %s",
              scales[s], rc, rc ? err : "differ");
    }
    snprintf(args, sizeof args, "knn --in " FIX "knn_F.npy --k 10 --out %s", ref);
    REQUIRE(run_laic(args, NULL, err, sizeof err) == 0, "knn: %s", err);
    for (int s = 0; s < 2; s++) {
        REQUIRE(write_scaled(in, &F, scales[s]) == 0, "%s", laic_last_error());
        snprintf(args, sizeof args, "knn --in %s --k 10 --out %s", in, out);
        int rc = run_laic(args, NULL, err, sizeof err);
        CHECK(rc == 0 && same_i64_files(ref, out), "laic knn on F x %g: rc %d, ids %s", scales[s],
              rc, rc ? err : "differ");
    }
    npy_free(&X);
    npy_free(&F);
}
