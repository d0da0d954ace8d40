/*
 * test_heads_ops.c — the clustering-head ops of ops_cpu (host/cpu/heads.c) against PyTorch
 * goldens made by scripts/make_heads_fixtures.py (tests/fixtures/heads/): BatchNorm1d forward
 * (training and evaluation) and backward, softmax, ReLU, row gather, and the SIC and TAC losses
 * with their gradients.
 *
 * Tolerances (goldens are float64 autograd on the float32 inputs, upcast):
 * - BatchNorm forward / backward: |a − r| ≤ 1e-6 + 1e-5·|r|. laic keeps the column statistics
 *   in double and rounds the output once per float operation (x − mean, ·rstd, ·weight, + bias:
 *   four roundings of ~6e-8 relative each); dinp is computed in double and rounded once.
 *   Running statistics: 1e-7 + 1e-6·|r| (one rounding of a double expression).
 * - softmax: 1e-7 + 1e-6·|r| (float exps, double sum, one division).
 * - SIC / TAC losses: terms 1e-6 relative; gradients 1e-7 + 1e-5·|r|: the probabilities are
 *   float32 softmax outputs (6e-8 relative each) fed through double maths, and TAC's two GEMMs
 *   are float32 (sums of ≤ 13 products here).
 * A wrong sign, a missing term, the wrong variance (biased / unbiased) or a dropped clamp moves
 * the values by far more (each was checked to fail once by breaking the code).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_ops.h"
#include "io/err.h"
#include "ops.h"
#include "rng.h"
#include "train/optim.h"
#include "../test.h"

#define FX "tests/fixtures/heads"

static int rel_ok(double a, double r, double rtol, const char *what) {
    const int ok = fabs(a - r) <= rtol * fabs(r) + 1e-12;
    if (!ok) printf("  %s: %.12g vs %.12g (rel %.3g)\n", what, a, r, fabs(a - r) / (fabs(r) + 1e-300));
    return ok;
}

TEST(heads_batchnorm_matches_torch) {
    Npy ax, aw, ab, arm, arv, ad, ao, am, ars, arm1, arv1, adx, adw, adb, aoe;
    const float *x = test_fixture_f32(FX, "bn_x", &ax), *w = test_fixture_f32(FX, "bn_w", &aw),
                *b = test_fixture_f32(FX, "bn_b", &ab), *rm0 = test_fixture_f32(FX, "bn_rm0", &arm),
                *rv0 = test_fixture_f32(FX, "bn_rv0", &arv), *dout = test_fixture_f32(FX, "bn_dout", &ad),
                *out_ref = test_fixture_f32(FX, "bn_out", &ao), *mean_ref = test_fixture_f32(FX, "bn_mean", &am),
                *rstd_ref = test_fixture_f32(FX, "bn_rstd", &ars), *rm_ref = test_fixture_f32(FX, "bn_rm", &arm1),
                *rv_ref = test_fixture_f32(FX, "bn_rv", &arv1), *dx_ref = test_fixture_f32(FX, "bn_dx", &adx),
                *dw_ref = test_fixture_f32(FX, "bn_dw", &adw), *db_ref = test_fixture_f32(FX, "bn_db", &adb),
                *oe_ref = test_fixture_f32(FX, "bn_out_eval", &aoe);
    REQUIRE(x && w && b && rm0 && rv0 && dout && out_ref && mean_ref && rstd_ref && rm_ref && rv_ref &&
                dx_ref && dw_ref && db_ref && oe_ref, "fixtures");
    const int B = (int)ax.shape[0], C = (int)ax.shape[1];
    float *out = malloc(sizeof(float) * B * C), *mean = malloc(sizeof(float) * C),
          *rstd = malloc(sizeof(float) * C), *rm = malloc(sizeof(float) * C), *rv = malloc(sizeof(float) * C);
    memcpy(rm, rm0, sizeof(float) * C);
    memcpy(rv, rv0, sizeof(float) * C);
    ops_cpu.batchnorm_forward(out, mean, rstd, rm, rv, x, w, b, B, C, 1, 0.1, 1e-5);
    CHECK(test_allclose(out, out_ref, (size_t)B * C, 1e-6, 1e-5, "bn train out"), "training output");
    CHECK(test_allclose(mean, mean_ref, C, 1e-7, 1e-6, "bn mean"), "batch mean");
    CHECK(test_allclose(rstd, rstd_ref, C, 1e-7, 1e-6, "bn rstd"), "rstd from the biased variance");
    CHECK(test_allclose(rm, rm_ref, C, 1e-7, 1e-6, "running mean"), "running mean, momentum 0.1");
    CHECK(test_allclose(rv, rv_ref, C, 1e-7, 1e-6, "running var"), "running var from the unbiased variance");
    // backward: dweight, dbias accumulate onto a start of 1
    float *dx = malloc(sizeof(float) * B * C), *dw = malloc(sizeof(float) * C), *db = malloc(sizeof(float) * C);
    float *dw1 = malloc(sizeof(float) * C), *db1 = malloc(sizeof(float) * C);
    for (int c = 0; c < C; c++) dw[c] = db[c] = 1.0f, dw1[c] = 1.0f + dw_ref[c], db1[c] = 1.0f + db_ref[c];
    ops_cpu.batchnorm_backward(dx, dw, db, dout, x, w, mean, rstd, B, C);
    CHECK(test_allclose(dx, dx_ref, (size_t)B * C, 1e-6, 1e-5, "bn dinp"), "input gradient");
    CHECK(test_allclose(dw, dw1, C, 1e-6, 1e-5, "bn dweight (+= 1)"), "weight gradient accumulates");
    CHECK(test_allclose(db, db1, C, 1e-6, 1e-5, "bn dbias (+= 1)"), "bias gradient accumulates");
    // evaluation: running statistics, untouched
    memcpy(rm, rm0, sizeof(float) * C);
    memcpy(rv, rv0, sizeof(float) * C);
    ops_cpu.batchnorm_forward(out, mean, rstd, rm, rv, x, w, b, B, C, 0, 0.1, 1e-5);
    CHECK(test_allclose(out, oe_ref, (size_t)B * C, 1e-6, 1e-5, "bn eval out"), "evaluation output");
    CHECK(!memcmp(rm, rm0, sizeof(float) * C) && !memcmp(rv, rv0, sizeof(float) * C),
          "evaluation leaves the running statistics alone");
    free(out), free(mean), free(rstd), free(rm), free(rv), free(dx), free(dw), free(db), free(dw1), free(db1);
    Npy *all[] = {&ax, &aw, &ab, &arm, &arv, &ad, &ao, &am, &ars, &arm1, &arv1, &adx, &adw, &adb, &aoe};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) npy_free(all[i]);
}

TEST(heads_softmax_relu_gather) {
    Npy ax, ap;
    const float *x = test_fixture_f32(FX, "sm_x", &ax), *p_ref = test_fixture_f32(FX, "sm_p", &ap);
    REQUIRE(x && p_ref, "fixtures");
    const int B = (int)ax.shape[0], K = (int)ax.shape[1];
    float *p = malloc(sizeof(float) * B * K);
    ops_cpu.softmax_forward(p, x, B, K);
    CHECK(test_allclose(p, p_ref, (size_t)B * K, 1e-7, 1e-6, "softmax"), "row softmax");
    memcpy(p, x, sizeof(float) * B * K);
    ops_cpu.softmax_forward(p, p, B, K);
    CHECK(test_allclose(p, p_ref, (size_t)B * K, 1e-7, 1e-6, "softmax in place"), "in place");
    free(p);
    npy_free(&ax);
    npy_free(&ap);
    // ReLU: the backward reads the forward's output, so an in-place forward is fine
    float v[6] = {-1.0f, 0.0f, 2.5f, -0.0f, 1e-30f, -3.0f}, o[6], d[6] = {1, 2, 3, 4, 5, 6}, g[6];
    ops_cpu.relu_forward(o, v, 6);
    CHECK(o[0] == 0 && o[1] == 0 && o[2] == 2.5f && o[4] == 1e-30f && o[5] == 0, "relu forward");
    ops_cpu.relu_backward(g, d, o, 6);
    CHECK(g[0] == 0 && g[1] == 0 && g[2] == 3 && g[3] == 0 && g[4] == 5 && g[5] == 0,
          "relu backward passes the gradient where the output is > 0 (not at 0)");
    ops_cpu.relu_forward(v, v, 6);
    CHECK(!memcmp(v, o, sizeof v - sizeof v[3]) && v[3] == 0.0f, "relu in place");
    // index_select
    float X[4 * 3] = {0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32}, out[5 * 3];
    int64_t idx[5] = {3, 0, 3, 2, 1};
    ops_cpu.index_select_forward(out, X, idx, 5, 3);
    int ok = 1;
    for (int i = 0; i < 5; i++)
        for (int c = 0; c < 3; c++) ok &= out[i * 3 + c] == X[idx[i] * 3 + c];
    CHECK(ok, "index_select rows");
}

TEST(heads_sic_loss_matches_torch) {
    Npy aa, an, at, ada, adn;
    const float *la = test_fixture_f32(FX, "sic_la", &aa), *ln = test_fixture_f32(FX, "sic_ln", &an),
                *t = test_fixture_f32(FX, "sic_terms", &at), *dla_ref = test_fixture_f32(FX, "sic_dla", &ada),
                *dln_ref = test_fixture_f32(FX, "sic_dln", &adn);
    size_t ny;
    int32_t *y = test_fixture_i32(FX, "sic_y", &ny, NULL, NULL);
    REQUIRE(la && ln && t && dla_ref && dln_ref && y, "fixtures");
    const int b = (int)aa.shape[0], K = (int)aa.shape[1];
    Npy tt;
    REQUIRE(npy_read(test_fixture_path(FX, "sic_terms"), &tt) == 0, "terms");
    const double *tr = tt.data;
    double terms[4];
    float *dla = malloc(sizeof(float) * b * K), *dln = malloc(sizeof(float) * b * K);
    ops_cpu.sic_loss_forward_backward(terms, dla, dln, la, ln, y, b, K, 5.0, 0.1);
    const char *nm[4] = {"L", "L_I", "H", "CE"};
    for (int i = 0; i < 4; i++) CHECK(rel_ok(terms[i], tr[i], 1e-6, nm[i]), "SIC term %s", nm[i]);
    CHECK(test_allclose(dla, dla_ref, (size_t)b * K, 1e-7, 1e-5, "dL/dla"), "anchor logit gradient");
    CHECK(test_allclose(dln, dln_ref, (size_t)b * K, 1e-7, 1e-5, "dL/dln"), "neighbour logit gradient");
    free(dla);
    free(dln);
    free(y);
    npy_free(&tt);
    Npy *all[] = {&aa, &an, &at, &ada, &adn};
    for (size_t i = 0; i < 5; i++) npy_free(all[i]);
}

TEST(heads_tac_loss_matches_torch) {
    for (int cs = 0; cs < 2; cs++) {
        char name[64];
        Npy cfg, tt, P[4], dref[4];
        snprintf(name, sizeof name, "tac%d_cfg", cs);
        REQUIRE(npy_read(test_fixture_path(FX, name), &cfg) == 0, "cfg");
        const double *c = cfg.data;
        const int b = (int)c[0], K = (int)c[1];
        const double tau = c[2];
        snprintf(name, sizeof name, "tac%d_terms", cs);
        REQUIRE(npy_read(test_fixture_path(FX, name), &tt) == 0, "terms");
        const char *q[4] = {"Ia", "Ta", "In", "Tn"};
        const float *p[4], *dr[4];
        for (int i = 0; i < 4; i++) {
            snprintf(name, sizeof name, "tac%d_P%s", cs, q[i]);
            p[i] = test_fixture_f32(FX, name, &P[i]);
            snprintf(name, sizeof name, "tac%d_d%s", cs, q[i]);
            dr[i] = test_fixture_f32(FX, name, &dref[i]);
            REQUIRE(p[i] && dr[i], "fixture");
        }
        float *d[4];
        for (int i = 0; i < 4; i++) d[i] = malloc(sizeof(float) * b * K);
        double terms[5];
        ops_cpu.tac_loss_forward_backward(terms, d[0], d[1], d[2], d[3], p[0], p[1], p[2], p[3], b,
                                          K, tau, 5.0);
        const double *tr = tt.data;
        const char *nm[5] = {"L", "D(Ia,Tn)", "D(Ta,In)", "Cons", "H"};
        for (int i = 0; i < 5; i++)
            CHECK(rel_ok(terms[i], tr[i], 1e-6, nm[i]), "case %d (b %d K %d tau %g): TAC term %s", cs, b, K, tau, nm[i]);
        for (int i = 0; i < 4; i++) {
            char what[64];
            snprintf(what, sizeof what, "case %d dL/dlogits %s", cs, q[i]);
            CHECK(test_allclose(d[i], dr[i], (size_t)b * K, 1e-7, 1e-5, what), "%s", what);
            free(d[i]);
            npy_free(&P[i]);
            npy_free(&dref[i]);
        }
        npy_free(&cfg);
        npy_free(&tt);
    }
}

// --- the vectorised loops give the plain loops' bits ----------------------------------------------
// BatchNorm forward/backward (rows four at a time, cloned for AVX-512/AVX2), Adam (one loop per
// weight-decay mode, cloned) and the bias-gradient sums (four rows at a time) against the plain
// one-row-at-a-time loops they replaced, written out here: bit for bit, on shapes with and without
// a partial group of rows or vector, on whichever clone this host runs.
static void plain_bn_forward(float *out, float *mean, float *rstd, float *rm, float *rv,
                             const float *x, const float *w, const float *bias, int B, int C) {
    double *s = calloc((size_t)C, sizeof *s), *q = calloc((size_t)C, sizeof *q);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) s[c] += x[(size_t)b * C + c];
    for (int c = 0; c < C; c++) s[c] /= B;
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const double d = (double)x[(size_t)b * C + c] - s[c];
            q[c] += d * d;
        }
    for (int c = 0; c < C; c++) {
        const double var = q[c] / B, unb = B > 1 ? q[c] / (B - 1) : var;
        mean[c] = (float)s[c];
        rstd[c] = (float)(1.0 / sqrt(var + 1e-5));
        rm[c] = (float)(0.9 * rm[c] + 0.1 * s[c]);
        rv[c] = (float)(0.9 * rv[c] + 0.1 * unb);
    }
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const float d = x[(size_t)b * C + c] - mean[c], nrm = d * rstd[c], sc = nrm * w[c];
            out[(size_t)b * C + c] = sc + bias[c];
        }
    free(s), free(q);
}

static void plain_bn_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                              const float *w, const float *mean, const float *rstd, int B, int C) {
    double *sd = calloc((size_t)C, sizeof *sd), *sdx = calloc((size_t)C, sizeof *sdx);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const size_t i = (size_t)b * C + c;
            const float xh = (x[i] - mean[c]) * rstd[c];
            sd[c] += dy[i];
            sdx[c] += (double)dy[i] * xh;
        }
    for (int c = 0; c < C; c++) {
        db[c] = (float)((double)db[c] + sd[c]);
        dw[c] = (float)((double)dw[c] + sdx[c]);
    }
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            const size_t i = (size_t)b * C + c;
            const float xh = (x[i] - mean[c]) * rstd[c];
            dx[i] = (float)((double)w[c] * rstd[c] *
                            ((double)dy[i] - sd[c] / B - (double)xh * (sdx[c] / B)));
        }
    free(sd), free(sdx);
}

static void plain_adam(float *p, float *m, float *v, const float *g, const double *sched, size_t n,
                       double beta1, double beta2, double eps, double wd, int decoupled) {
    const double lr = sched[0], bc1 = sched[1], bc2 = sched[2];
    const float wdf = (float)wd, decay = (float)(1.0 - lr * wd), w1 = (float)(1.0 - beta1);
    const float b2 = (float)beta2, w2 = (float)(1.0 - beta2), bc2_sqrt = (float)sqrt(bc2);
    const float epsf = (float)eps, nstep = (float)(-(lr / bc1));
    for (size_t i = 0; i < n; i++) {
        float pi = p[i], gi = g[i];
        if (wd != 0.0 && decoupled) pi = pi * decay;
        if (wd != 0.0 && !decoupled) {
            const float t = wdf * pi;
            gi = gi + t;
        }
        const float dm = gi - m[i], mi = m[i] + w1 * dm;
        const float g2 = w2 * gi, vi = v[i] * b2 + g2 * gi;
        const float denom = sqrtf(vi) / bc2_sqrt + epsf;
        const float upd = nstep * mi;
        p[i] = pi + upd / denom;
        m[i] = mi;
        v[i] = vi;
    }
}

static float *rand_floats(Rng *r, size_t n, double s) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)(s * rng_normal(r));
    return x;
}

TEST(heads_vectorised_loops_equal_plain_loops) {
    Rng r;
    rng_init(&r, 2026, 12);
    const int shapes[][2] = {{512, 512}, {7, 13}, {2, 1}, {9, 33}, {4, 17}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int B = shapes[s][0], C = shapes[s][1];
        const size_t n = (size_t)B * C, cb = (size_t)C * sizeof(float);
        float *x = rand_floats(&r, n, 2.0), *dy = rand_floats(&r, n, 1.0), *w = rand_floats(&r, C, 1.0);
        float *bias = rand_floats(&r, C, 1.0), *rm0 = rand_floats(&r, C, 0.1);
        float *o1 = malloc(n * 4), *o2 = malloc(n * 4), *dx1 = malloc(n * 4), *dx2 = malloc(n * 4);
        float *st1 = malloc(6 * cb), *st2 = malloc(6 * cb);   // mean, rstd, rm, rv, dw, db
        for (int c = 0; c < C; c++) {
            st1[2 * C + c] = st2[2 * C + c] = rm0[c];
            st1[3 * C + c] = st2[3 * C + c] = 0.5f + (float)c / (float)C;
            st1[4 * C + c] = st2[4 * C + c] = st1[5 * C + c] = st2[5 * C + c] = 0.25f;
        }
        ops_cpu.batchnorm_forward(o1, st1, st1 + C, st1 + 2 * C, st1 + 3 * C, x, w, bias, B, C, 1, 0.1, 1e-5);
        plain_bn_forward(o2, st2, st2 + C, st2 + 2 * C, st2 + 3 * C, x, w, bias, B, C);
        ops_cpu.batchnorm_backward(dx1, st1 + 4 * C, st1 + 5 * C, dy, x, w, st1, st1 + C, B, C);
        plain_bn_backward(dx2, st2 + 4 * C, st2 + 5 * C, dy, x, w, st2, st2 + C, B, C);
        CHECK(!memcmp(o1, o2, n * 4) && !memcmp(st1, st2, 6 * cb), "BatchNorm forward %d x %d: bits", B, C);
        CHECK(!memcmp(dx1, dx2, n * 4), "BatchNorm backward %d x %d: bits", B, C);
        // evaluation mode: the running statistics normalise
        ops_cpu.batchnorm_forward(o1, st1, st1 + C, st1 + 2 * C, st1 + 3 * C, x, w, bias, B, C, 0, 0.1, 1e-5);
        int ok = 1;
        for (int b = 0; b < B; b++)
            for (int c = 0; c < C; c++) {
                const float mu = st2[2 * C + c], rs = (float)(1.0 / sqrt((double)st2[3 * C + c] + 1e-5));
                const float d = x[(size_t)b * C + c] - mu, nrm = d * rs, sc = nrm * w[c];
                ok &= o1[(size_t)b * C + c] == sc + bias[c];
            }
        CHECK(ok, "BatchNorm eval %d x %d: bits", B, C);
        // bias gradient of a Linear (dweight (C,3) rides along; only dbias is compared)
        float *in = rand_floats(&r, (size_t)B * 3, 1.0), *dwl = calloc((size_t)C * 3, sizeof *dwl);
        float *db1 = malloc(cb), *db2 = malloc(cb);
        for (int c = 0; c < C; c++) db1[c] = db2[c] = 0.5f;
        ops_cpu.matmul_backward_weight(dwl, db1, dy, in, B, 3, C);
        for (int c = 0; c < C; c++) {
            double acc = 0.0;
            for (int b = 0; b < B; b++) acc += dy[(size_t)b * C + c];
            db2[c] = (float)((double)db2[c] + acc);
        }
        CHECK(!memcmp(db1, db2, cb), "bias gradient %d x %d: bits", B, C);
        free(x), free(dy), free(w), free(bias), free(rm0), free(o1), free(o2), free(dx1), free(dx2);
        free(st1), free(st2), free(in), free(dwl), free(db1), free(db2);
    }
    // Adam: several chunks and a partial vector; no decay, coupled L2, decoupled
    const size_t n = 3 * 16384 + 37;
    for (int mode = 0; mode < 3; mode++) {
        const double wd = mode ? 1e-2 : 0.0;
        float *p1 = rand_floats(&r, n, 0.1), *g = rand_floats(&r, n, 1e-2);
        float *p2 = malloc(n * 4), *m1 = calloc(n, 4), *m2 = calloc(n, 4), *v1 = calloc(n, 4), *v2 = calloc(n, 4);
        memcpy(p2, p1, n * 4);
        for (long t = 1; t <= 3; t++) {
            double sched[3];
            adam_schedule(sched, 1e-3, 0.9, 0.99, t);
            ops_cpu.adam_forward(p1, m1, v1, g, sched, n, 0.9, 0.99, 1e-8, wd, mode == 2);
            plain_adam(p2, m2, v2, g, sched, n, 0.9, 0.99, 1e-8, wd, mode == 2);
        }
        CHECK(!memcmp(p1, p2, n * 4) && !memcmp(m1, m2, n * 4) && !memcmp(v1, v2, n * 4),
              "Adam (weight decay mode %d): bits", mode);
        free(p1), free(g), free(p2), free(m1), free(m2), free(v1), free(v2);
    }
}
