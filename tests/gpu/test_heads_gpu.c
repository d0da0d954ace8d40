/*
 * test_heads_gpu.c — the clustering-head ops of ops_cuda (kernels/heads.cu) against ops_cpu
 * (host/cpu/heads.c), and the SIC / TAC trainers (host/train/sic.c, tac_train.c) on CUDA against
 * the CPU.
 *
 * Built into test_gpu (CUDA builds); without a device the program exits 77 (waived).
 * Written before any GPU run.
 *
 * Tolerances, and why:
 * - batchnorm_forward / batchnorm_backward (both modes, shapes with a partial block): bitwise —
 *   one thread per channel sums its column in row order in double as the CPU loop, and the
 *   elementwise parts are the CPU's expressions as explicit round-to-nearest intrinsics.
 * - relu_forward / relu_backward / index_select_forward: bitwise (no arithmetic).
 * - softmax_forward: ≤ 1e-6 relative (CUDA's expf vs glibc's, a few ulp).
 * - sic_loss_forward_backward: terms ≤ 1e-9 relative, gradients ≤ 1e-6 of max |grad| (the same
 *   double maths on float softmaxes; exp/log differ in the last ulp).
 * - tac_loss_forward_backward: terms ≤ 1e-5 relative, gradients ≤ 1e-5 of max |grad| (cuBLAS
 *   and OpenBLAS sum the b products of ĉĉᵀ in different trees).
 * - trainers: a few epochs on planted data on both backends: the GEMMs round differently, so the
 *   trajectories drift apart by rounding only; parameters ≤ 1e-3 of max |p| and the predictions
 *   agree on ≥ 99% of rows.
 */
#include "../test.h"
#include "../synth.h"

#ifdef LAIC_CUDA

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "cluster/knn_l2.h"
#include "io/err.h"
#include "ops.h"
#include "rng.h"
#include "train/heads.h"
#include "train/sic.h"
#include "train/tac_train.h"

#include "gpu_test.h"

static double max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}
static double max_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]) + (a[i] != a[i] ? INFINITY : 0));
    return m;
}

TEST(gpu_heads_batchnorm_bitwise_cpu) {
    need_gpu();
    Rng r;
    rng_init(&r, 7, 1);
    const int shapes[][2] = {{512, 512}, {7, 13}, {8192, 300}, {2, 1}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int B = shapes[s][0], C = shapes[s][1];
        const size_t n = (size_t)B * C;
        float *x = synth_randn(&r, n, 2.0), *w = synth_randn(&r, C, 1.0), *b = synth_randn(&r, C, 1.0),
              *dout = synth_randn(&r, n, 1.0), *rm = synth_randn(&r, C, 0.1), *rv = malloc(C * sizeof *rv);
        for (int c = 0; c < C; c++) rv[c] = 0.5f + (float)c / (float)C;
        for (int train = 1; train >= 0; train--) {
            float *out = malloc(n * sizeof *out), *mean = malloc(C * sizeof *mean), *rstd = malloc(C * sizeof *rstd);
            float *rm_c = malloc(C * sizeof *rm_c), *rv_c = malloc(C * sizeof *rv_c);
            memcpy(rm_c, rm, C * sizeof *rm), memcpy(rv_c, rv, C * sizeof *rv);
            ops_cpu.batchnorm_forward(out, mean, rstd, rm_c, rv_c, x, w, b, B, C, train, 0.1, 1e-5);
            float *gx = gpu_upload(x, n * sizeof *x), *gw = gpu_upload(w, C * sizeof *w), *gb = gpu_upload(b, C * sizeof *b);
            float *grm = gpu_upload(rm, C * sizeof *rm), *grv = gpu_upload(rv, C * sizeof *rv);
            float *gout = gpu_nan(n), *gmean = gpu_nan(C), *grstd = gpu_nan(C);
            ops_cuda.batchnorm_forward(gout, gmean, grstd, grm, grv, gx, gw, gb, B, C, train, 0.1, 1e-5);
            float *hout = gpu_download(gout, n * sizeof *hout), *hm = gpu_download(gmean, C * sizeof *hm),
                  *hr = gpu_download(grstd, C * sizeof *hr), *hrm = gpu_download(grm, C * sizeof *hrm),
                  *hrv = gpu_download(grv, C * sizeof *hrv);
            CHECK(!memcmp(hout, out, n * sizeof *out) && !memcmp(hm, mean, C * sizeof *mean) &&
                      !memcmp(hr, rstd, C * sizeof *rstd) && !memcmp(hrm, rm_c, C * sizeof *rm) &&
                      !memcmp(hrv, rv_c, C * sizeof *rv),
                  "%dx%d %s: out, mean, rstd, running stats bitwise", B, C, train ? "train" : "eval");
            if (train) {
                float *dx = malloc(n * sizeof *dx), *dw = synth_randn(&r, C, 1.0), *db = synth_randn(&r, C, 1.0);
                float *gdw = gpu_upload(dw, C * sizeof *dw), *gdb = gpu_upload(db, C * sizeof *db),
                      *gdout = gpu_upload(dout, n * sizeof *dout), *gdx = gpu_nan(n);
                ops_cpu.batchnorm_backward(dx, dw, db, dout, x, w, mean, rstd, B, C);
                ops_cuda.batchnorm_backward(gdx, gdw, gdb, gdout, gx, gw, gmean, grstd, B, C);
                float *hdx = gpu_download(gdx, n * sizeof *hdx), *hdw = gpu_download(gdw, C * sizeof *hdw),
                      *hdb = gpu_download(gdb, C * sizeof *hdb);
                CHECK(!memcmp(hdx, dx, n * sizeof *dx) && !memcmp(hdw, dw, C * sizeof *dw) &&
                          !memcmp(hdb, db, C * sizeof *db),
                      "%dx%d backward: dinp, dweight (+=), dbias (+=) bitwise", B, C);
                free(dx), free(dw), free(db), free(hdx), free(hdw), free(hdb);
                ops_cuda.free(gdw), ops_cuda.free(gdb), ops_cuda.free(gdout), ops_cuda.free(gdx);
            }
            free(out), free(mean), free(rstd), free(rm_c), free(rv_c), free(hout), free(hm), free(hr), free(hrm), free(hrv);
            float *gs[] = {gx, gw, gb, grm, grv, gout, gmean, grstd};
            for (int i = 0; i < 8; i++) ops_cuda.free(gs[i]);
        }
        free(x), free(w), free(b), free(dout), free(rm), free(rv);
    }
}

TEST(gpu_heads_elementwise_vs_cpu) {
    need_gpu();
    Rng r;
    rng_init(&r, 7, 2);
    const size_t n = 100003;
    float *x = synth_randn(&r, n, 1.0), *d = synth_randn(&r, n, 1.0);
    x[0] = 0.0f, x[1] = -0.0f, x[2] = 1e-40f;
    float *o = malloc(n * sizeof *o), *g = malloc(n * sizeof *g);
    ops_cpu.relu_forward(o, x, n);
    ops_cpu.relu_backward(g, d, o, n);
    float *gx = gpu_upload(x, n * sizeof *x), *gd = gpu_upload(d, n * sizeof *d), *go = gpu_nan(n), *gg = gpu_nan(n);
    ops_cuda.relu_forward(go, gx, n);
    ops_cuda.relu_backward(gg, gd, go, n);
    float *ho = gpu_download(go, n * sizeof *ho), *hg = gpu_download(gg, n * sizeof *hg);
    CHECK(!memcmp(ho, o, n * sizeof *o) && !memcmp(hg, g, n * sizeof *g), "relu forward/backward bitwise");
    // softmax (B,K) with large logits, and the row gather
    const int B = 1000, K = 37;
    float *l = synth_randn(&r, (size_t)B * K, 8.0), *p = malloc((size_t)B * K * sizeof *p);
    ops_cpu.softmax_forward(p, l, B, K);
    float *gl = gpu_upload(l, (size_t)B * K * sizeof *l), *gp = gpu_nan((size_t)B * K);
    ops_cuda.softmax_forward(gp, gl, B, K);
    float *hp = gpu_download(gp, (size_t)B * K * sizeof *hp);
    CHECK(max_diff(hp, p, (size_t)B * K) <= 1e-6, "softmax within 1e-6: %.3g", max_diff(hp, p, (size_t)B * K));
    int64_t idx[777];
    for (int i = 0; i < 777; i++) idx[i] = (int64_t)rng_below(&r, (uint64_t)B);
    float *sel = malloc(777 * (size_t)K * sizeof *sel);
    ops_cpu.index_select_forward(sel, l, idx, 777, K);
    int64_t *gidx = gpu_upload(idx, sizeof idx);
    float *gsel = gpu_nan(777 * (size_t)K);
    ops_cuda.index_select_forward(gsel, gl, gidx, 777, K);
    float *hsel = gpu_download(gsel, 777 * (size_t)K * sizeof *hsel);
    CHECK(!memcmp(hsel, sel, 777 * (size_t)K * sizeof *sel), "index_select bitwise");
    free(x), free(d), free(o), free(g), free(ho), free(hg), free(l), free(p), free(hp), free(sel), free(hsel);
    ops_cuda.free(gx), ops_cuda.free(gd), ops_cuda.free(go), ops_cuda.free(gg), ops_cuda.free(gl);
    ops_cuda.free(gp), ops_cuda.free(gidx), ops_cuda.free(gsel);
}

TEST(gpu_heads_losses_vs_cpu) {
    need_gpu();
    Rng r;
    rng_init(&r, 7, 3);
    const int shapes[][2] = {{128, 10}, {93, 7}, {1, 3}, {8192, 101}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int b = shapes[s][0], K = shapes[s][1];
        const size_t n = (size_t)b * K;
        // SIC on logits
        float *la = synth_randn(&r, n, 2.0), *ln = synth_randn(&r, n, 2.0);
        int32_t *y = malloc((size_t)b * sizeof *y);
        for (int i = 0; i < b; i++) y[i] = (int32_t)rng_below(&r, (uint64_t)K);
        double t[4], gt[4];
        float *dla = malloc(n * sizeof *dla), *dln = malloc(n * sizeof *dln);
        ops_cpu.sic_loss_forward_backward(t, dla, dln, la, ln, y, b, K, 5.0, 0.1);
        float *gla = gpu_upload(la, n * sizeof *la), *gln = gpu_upload(ln, n * sizeof *ln), *gdla = gpu_nan(n),
              *gdln = gpu_nan(n);
        int32_t *gy = gpu_upload(y, (size_t)b * sizeof *y);
        double *gterms = gpu_alloc(5 * sizeof(double));
        ops_cuda.sic_loss_forward_backward(gterms, gdla, gdln, gla, gln, gy, b, K, 5.0, 0.1);
        gpu_download_into(gt, gterms, sizeof gt);
        float *hdla = gpu_download(gdla, n * sizeof *hdla), *hdln = gpu_download(gdln, n * sizeof *hdln);
        int ok = 1;
        for (int q = 0; q < 4; q++) ok &= fabs(gt[q] - t[q]) <= 1e-9 * fabs(t[q]) + 1e-12;
        CHECK(ok, "b %d K %d: SIC terms within 1e-9 (L %.12g vs %.12g)", b, K, gt[0], t[0]);
        CHECK(max_diff(hdla, dla, n) <= 1e-6 * max_abs(dla, n) && max_diff(hdln, dln, n) <= 1e-6 * max_abs(dln, n),
              "b %d K %d: SIC gradients within 1e-6 of max", b, K);
        // TAC on probabilities (softmax of the same logits, four of them)
        float *P[4], *D[4], *gP[4], *gD[4];
        for (int q = 0; q < 4; q++) {
            float *lg = synth_randn(&r, n, 2.0);
            P[q] = malloc(n * sizeof(float));
            ops_cpu.softmax_forward(P[q], lg, b, K);
            free(lg);
            D[q] = malloc(n * sizeof(float));
            gP[q] = gpu_upload(P[q], n * sizeof(float));
            gD[q] = gpu_nan(n);
        }
        if (b >= 2) {
            double tt[5], gtt[5];
            ops_cpu.tac_loss_forward_backward(tt, D[0], D[1], D[2], D[3], P[0], P[1], P[2], P[3], b, K, 0.5, 5.0);
            ops_cuda.tac_loss_forward_backward(gterms, gD[0], gD[1], gD[2], gD[3], gP[0], gP[1], gP[2], gP[3], b,
                                               K, 0.5, 5.0);
            gpu_download_into(gtt, gterms, sizeof gtt);
            ok = 1;
            for (int q = 0; q < 5; q++) ok &= fabs(gtt[q] - tt[q]) <= 1e-5 * fabs(tt[q]) + 1e-12;
            CHECK(ok, "b %d K %d: TAC terms within 1e-5 (L %.10g vs %.10g)", b, K, gtt[0], tt[0]);
            for (int q = 0; q < 4; q++) {
                float *h = gpu_download(gD[q], n * sizeof(float));
                CHECK(max_diff(h, D[q], n) <= 1e-5 * max_abs(D[q], n), "b %d K %d: TAC gradient %d within 1e-5 of max",
                      b, K, q);
                free(h);
            }
        }
        for (int q = 0; q < 4; q++) free(P[q]), free(D[q]), ops_cuda.free(gP[q]), ops_cuda.free(gD[q]);
        free(la), free(ln), free(y), free(dla), free(dln), free(hdla), free(hdln);
        ops_cuda.free(gla), ops_cuda.free(gln), ops_cuda.free(gdla), ops_cuda.free(gdln), ops_cuda.free(gy);
        ops_cuda.free(gterms);
    }
}

/* Planted raw features: K centres ·3 plus unit noise. */
static float *planted(int64_t *y, size_t N, int E, int K, uint64_t seed) {
    Rng g;
    rng_init(&g, seed, 9);
    float *C = synth_randn(&g, (size_t)K * E, 3.0), *X = malloc(N * E * sizeof *X);
    for (size_t i = 0; i < N; i++) {
        y[i] = (int64_t)(i % (size_t)K);
        for (int e = 0; e < E; e++) X[i * E + e] = C[y[i] * E + e] + (float)rng_normal(&g);
    }
    free(C);
    return X;
}

TEST(gpu_heads_trainers_vs_cpu) {
    need_gpu();
    const size_t N = 2000;
    const int E = 64, K = 5;
    int64_t *y = malloc(N * sizeof *y);
    float *X = planted(y, N, E, K, 11);
    // SIC: the semantic space is 40 noisy copies of planted rows
    float *S = malloc(40 * (size_t)E * sizeof *S);
    for (int j = 0; j < 40; j++) memcpy(S + (size_t)j * E, X + (size_t)(j * 37 % N) * E, (size_t)E * sizeof *S);
    int64_t *nbr = malloc(N * 6 * sizeof *nbr);
    REQUIRE(knn_l2_topk(nbr, NULL, X, (int)N, E, 6) == 0, "knn");
    SicData sd = {.X = X, .N = N, .E = E, .K = K, .nbr = nbr, .nn = 6, .S = S, .M = 40, .Xeval = X, .Ne = N};
    SicOpts so;
    sic_opts_default(&so);
    so.epochs = 3;
    so.xi_a = 5;
    SicResult rc_, rg;
    REQUIRE(sic_train(&rc_, &ops_cpu, &sd, &so) == 0, "%s", laic_last_error());
    REQUIRE(sic_train(&rg, &ops_cuda, &sd, &so) == 0, "%s", laic_last_error());
    const size_t np = (size_t)K * E + K;
    size_t agree = 0;
    for (size_t i = 0; i < N; i++) agree += rc_.pred[i] == rg.pred[i];
    CHECK(max_diff(rg.params, rc_.params, np) <= 1e-3 * max_abs(rc_.params, np) && agree >= N * 99 / 100,
          "SIC 3 epochs: params within 1e-3 of max, %zu of %zu predictions agree", agree, N);
    sic_result_free(&rc_);
    sic_result_free(&rg);
    // TAC: normalised features, text counterparts = jittered copies
    synth_normalize_rows(X, (int)N, E);
    float *T = malloc(N * E * sizeof *T);
    Rng g;
    rng_init(&g, 12, 0);
    for (size_t i = 0; i < N * E; i++) T[i] = X[i] + (float)(0.05 * rng_normal(&g));
    synth_normalize_rows(T, (int)N, E);
    int64_t *nx = malloc(N * 10 * sizeof *nx), *nt = malloc(N * 10 * sizeof *nt);
    REQUIRE(knn_topk(nx, NULL, X, (int)N, E, 10) == 0 && knn_topk(nt, NULL, T, (int)N, E, 10) == 0, "knn");
    TacTrainData td = {.X = X, .T = T, .N = N, .E = E, .K = K, .nbr_x = nx, .nbr_t = nt, .kn = 10, .Xeval = X, .Ne = N};
    TacTrainOpts to;
    tac_train_opts_default(&to);
    to.epochs = 2;
    to.batch = 256;
    TacTrainResult tc, tg;
    REQUIRE(tac_train(&tc, &ops_cpu, &td, &to) == 0, "%s", laic_last_error());
    REQUIRE(tac_train(&tg, &ops_cuda, &td, &to) == 0, "%s", laic_last_error());
    agree = 0;
    for (size_t i = 0; i < N; i++) agree += tc.pred[i] == tg.pred[i];
    CHECK(max_diff(tg.params_I, tc.params_I, tc.n_params) <= 1e-3 * max_abs(tc.params_I, tc.n_params) &&
              agree >= N * 99 / 100,
          "TAC 2 epochs: image head within 1e-3 of max, %zu of %zu predictions agree", agree, N);
    tac_train_result_free(&tc);
    tac_train_result_free(&tg);
    free(X), free(y), free(S), free(nbr), free(T), free(nx), free(nt);
}

#endif
