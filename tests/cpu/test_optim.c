/*
 * test_optim.c — the shared training ops of ops_cpu: matmul_backward_weight (host/cpu/matmul.c)
 * and adam_forward (host/cpu/optim.c), against PyTorch goldens made by
 * scripts/make_optim_fixtures.py (tests/fixtures/optim/).
 *
 * Tolerances:
 * - Adam / AdamW: 5 steps of torch.optim.{Adam,AdamW}(foreach=False) on 257 float32 parameters
 *   in four settings (defaults; coupled L2 wd 1e-4; betas (0.9, 0.99); AdamW wd 1e-2), with
 *   gradients spanning e^-6..e^1 and three always-zero ones. |p − ref| ≤ 1e-7 + 1e-6·|ref|:
 *   laic rounds every float operation separately, PyTorch's vectorised kernels may fuse a
 *   multiply-add (lerp, add with alpha), so a few ulp of the update (≈ lr) may differ; a wrong
 *   bias correction, β or the coupled/decoupled switch moves p by ≥ 1e-2·lr, far outside.
 * - matmul_backward_weight: autograd's dW (N,K), db (N) in float64; fp32 sums of 9 terms,
 *   |a − r| ≤ 1e-6 + 1e-6·|r|. It accumulates: called twice onto a non-zero start it must give
 *   start + 2·ref, and db must equal the double sum bit for bit along its one code path.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_ops.h"
#include "io/err.h"
#include "ops.h"
#include "train/optim.h"
#include "../test.h"

static double *fixture_f64(const char *name, Npy *a) {
    memset(a, 0, sizeof *a);
    int rc = npy_read(test_fixture_path("tests/fixtures/optim", name), a);
    if (!CHECK(rc == 0, "fixture %s: %s", name, laic_last_error())) return NULL;
    if (!CHECK(a->dtype == NPY_F64, "fixture %s: float64 expected", name)) return NULL;
    return a->data;
}

TEST(optim_adam_matches_torch) {
    Npy cases;
    const double *cs = fixture_f64("adam_cases", &cases);
    REQUIRE(cs && cases.ndim == 2 && cases.shape[1] == 6, "adam_cases (cases,6)");
    for (size_t c = 0; c < cases.shape[0]; c++) {
        const double *k = cs + 6 * c;
        const double lr = k[0], b1 = k[1], b2 = k[2], eps = k[3], wd = k[4];
        const int dec = (int)k[5];
        char name[64];
        Npy a0, ag, ap;
        snprintf(name, sizeof name, "adam_%zu_p0", c);
        const float *p0 = test_fixture_f32("tests/fixtures/optim", name, &a0);
        snprintf(name, sizeof name, "adam_%zu_g", c);
        const float *g = test_fixture_f32("tests/fixtures/optim", name, &ag);
        snprintf(name, sizeof name, "adam_%zu_p", c);
        const float *ref = test_fixture_f32("tests/fixtures/optim", name, &ap);
        if (p0 && g && ref) {
            const size_t n = a0.count, T = ag.shape[0];
            float *p = mallocCheck(n * sizeof *p), *m = calloc(n, sizeof *m), *v = calloc(n, sizeof *v);
            memcpy(p, p0, n * sizeof *p);
            for (size_t t = 0; t < T; t++) {
                double sched[3];
                adam_schedule(sched, lr, b1, b2, (long)t + 1);
                ops_cpu.adam_forward(p, m, v, g + t * n, sched, n, b1, b2, eps, wd, dec);
                char what[160];
                snprintf(what, sizeof what, "%s lr %g betas (%g,%g) wd %g, step %zu",
                         dec ? "AdamW" : "Adam", lr, b1, b2, wd, t + 1);
                CHECK(test_allclose(p, ref + t * n, n, 1e-7, 1e-6, what), "%s", what);
            }
            // the zero-gradient entries move only through weight decay
            if (wd == 0.0) CHECK(p[0] == p0[0] && p[2] == p0[2], "case %zu: g = 0, no decay: p unchanged", c);
            else CHECK(p[0] != p0[0], "case %zu: g = 0 with decay: p moves", c);
            free(p);
            free(m);
            free(v);
        }
        npy_free(&a0);
        npy_free(&ag);
        npy_free(&ap);
    }
    npy_free(&cases);
}

TEST(optim_adam_schedule_and_modes) {
    double s[3];
    adam_schedule(s, 0.5, 0.9, 0.99, 2);
    CHECK(s[0] == 0.5 && fabs(s[1] - 0.19) < 1e-15 && fabs(s[2] - 0.0199) < 1e-15,
          "sched {lr, 1-b1^t, 1-b2^t} = {%g, %.17g, %.17g}", s[0], s[1], s[2]);
    // step 1 of Adam: m = (1-b1) g, v = (1-b2) g^2, so p -= lr · g/(|g| + eps·√bc2/...) ≈ lr·sign(g)
    float p[2] = {1.0f, -1.0f}, m[2] = {0, 0}, v[2] = {0, 0}, g[2] = {0.25f, -4.0f};
    adam_schedule(s, 0.01, 0.9, 0.999, 1);
    ops_cpu.adam_forward(p, m, v, g, s, 2, 0.9, 0.999, 1e-8, 0.0, 0);
    CHECK(fabsf(p[0] - 0.99f) < 1e-6f && fabsf(p[1] + 0.99f) < 1e-6f,
          "first step moves by lr·sign(g): %.8f %.8f", p[0], p[1]);
    CHECK(fabsf(m[0] - 0.025f) < 1e-8f && fabsf(v[1] - 0.016f) < 1e-7f, "m, v after step 1");
    // coupled vs decoupled weight decay differ (Adam normalises the decay term away at step 1;
    // AdamW shrinks p by lr·wd before the step)
    float pa[1] = {2.0f}, pw[1] = {2.0f}, ma[1] = {0}, va[1] = {0}, mw[1] = {0}, vw[1] = {0},
          z[1] = {0.0f};
    adam_schedule(s, 0.1, 0.9, 0.999, 1);
    ops_cpu.adam_forward(pa, ma, va, z, s, 1, 0.9, 0.999, 1e-8, 0.5, 0);
    ops_cpu.adam_forward(pw, mw, vw, z, s, 1, 0.9, 0.999, 1e-8, 0.5, 1);
    CHECK(fabsf(pa[0] - 1.9f) < 1e-6f, "Adam, g = 0, wd 0.5: g' = wd·p, first step -lr: %.7f", pa[0]);
    CHECK(fabsf(pw[0] - 1.9f) < 1e-6f && mw[0] == 0.0f,
          "AdamW, g = 0, wd 0.5: p·(1 − lr·wd) = 1.9, m stays 0: %.7f %g", pw[0], mw[0]);
    // n = 0 is a no-op
    ops_cpu.adam_forward(NULL, NULL, NULL, NULL, s, 0, 0.9, 0.999, 1e-8, 0.0, 0);
}

TEST(optim_matmul_backward_weight_matches_autograd) {
    Npy ai, ad, aw, ab;
    const float *inp = test_fixture_f32("tests/fixtures/optim", "mbw_inp", &ai);
    const float *dout = test_fixture_f32("tests/fixtures/optim", "mbw_dout", &ad);
    const float *rw = test_fixture_f32("tests/fixtures/optim", "mbw_dw", &aw);
    const float *rb = test_fixture_f32("tests/fixtures/optim", "mbw_db", &ab);
    if (inp && dout && rw && rb) {
        const int M = (int)ai.shape[0], K = (int)ai.shape[1], N = (int)ad.shape[1];
        REQUIRE(aw.shape[0] == (size_t)N && aw.shape[1] == (size_t)K, "dW shape");
        float *dw = calloc((size_t)N * K, sizeof *dw), *db = calloc((size_t)N, sizeof *db);
        ops_cpu.matmul_backward_weight(dw, db, dout, inp, M, K, N);
        CHECK(test_allclose(dw, rw, (size_t)N * K, 1e-6, 1e-6, "dW"), "dW vs autograd");
        CHECK(test_allclose(db, rb, (size_t)N, 1e-6, 1e-6, "db"), "db vs autograd");
        // accumulation: start at 1, add twice
        float *dw2 = mallocCheck((size_t)N * K * sizeof *dw2), *db2 = mallocCheck((size_t)N * sizeof *db2);
        for (size_t i = 0; i < (size_t)N * K; i++) dw2[i] = 1.0f;
        for (int i = 0; i < N; i++) db2[i] = 1.0f;
        ops_cpu.matmul_backward_weight(dw2, db2, dout, inp, M, K, N);
        ops_cpu.matmul_backward_weight(dw2, NULL, dout, inp, M, K, N);   // dbias NULL: skipped
        float *want = mallocCheck((size_t)N * K * sizeof *want);
        for (size_t i = 0; i < (size_t)N * K; i++) want[i] = 1.0f + 2.0f * rw[i];
        CHECK(test_allclose(dw2, want, (size_t)N * K, 1e-5, 1e-6, "dW accumulated twice"),
              "dweight += (not =)");
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int m = 0; m < M; m++) s += dout[(size_t)m * N + n];
            const float exact = (float)(1.0 + s);
            CHECK(db2[n] == exact, "db[%d] = 1 + Σ in double, rounded once: %.9g vs %.9g", n,
                  db2[n], exact);
        }
        free(dw);
        free(db);
        free(dw2);
        free(db2);
        free(want);
    }
    npy_free(&ai);
    npy_free(&ad);
    npy_free(&aw);
    npy_free(&ab);
}
