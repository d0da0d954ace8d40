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
