/*
 * test_seic.c — SEIC (SPEC §9.3) on the CPU backend against the PyTorch reference of
 * scripts/make_seic_fixtures.py, and the stage-1 trainer's resume rule.
 *
 *  - seic_align_loss_forward_backward: the four terms and the total, dL/dz (with the path
 *    through the cluster layer added as autograd reports z.grad), dL/dlogits, dL/dlog s and the
 *    updated balance histogram, on three cases: ordinary, clusters empty in one modality (L_ctr
 *    over a subset), and an image collapse (fewer than 2 valid centres: L_ctr = 0) with the
 *    scale capped at 100 (no log-scale gradient). Gradients also against finite differences.
 *  - one stage-1 step through the heads (seic_s1_step_run): every parameter gradient, the
 *    histogram and the parameters after one Adam step.
 *  - seic_self_loss_forward_backward: weights, pseudo-labels (a tie goes to the lower index),
 *    loss, dL/dlogits and the confidence EMA, first batch and a later one.
 *  - seic_s1_run: a run stopped after epoch 2 and resumed from its checkpoint ends bit for bit
 *    where the uninterrupted run ends; bad checkpoints are refused in one line; V4C's last-batch
 *    rule (dropped only when it would hold one row).
 *
 * Tolerances (fp32 code against float64 references): terms rel 1e-5; gradients elementwise
 * |a − r| ≤ 1e-5·max|r| + 1e-4·|r| (observed ~1e-6 relative: float forward of the heads, double
 * loss); histogram 1e-6 absolute; parameters after the Adam step 1e-6 + 1e-5·|r| (the step is
 * lr·m̂/(√v̂+eps) ≈ ±lr, so relative gradient errors barely move it, except where |g| ~ eps).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/err.h"
#include "io/npy.h"
#include "ops.h"
#include "model/augment.h"
#include "model/clip.h"
#include "model/image.h"
#include "train/seic.h"
#include "../synth.h"
#include "../test.h"

#define FX "tests/fixtures/seic"

static float *fx(const char *name, int c, Npy *a) {
    char n[64];
    snprintf(n, sizeof n, "s%c_%d_%s", name[0], c, name + 2);
    return test_fixture_f32(FX, n, a);
}

static double *fx64(const char *name, int c, Npy *a) {
    char n[64];
    snprintf(n, sizeof n, "s%c_%d_%s", name[0], c, name + 2);
    if (npy_read(test_fixture_path(FX, n), a) || a->dtype != NPY_F64) {
        CHECK(0, "fixture %s: %s", n, laic_last_error());
        return NULL;
    }
    return a->data;
}

// |a − r| ≤ atol_frac·max|r| + rtol·|r|, printed like test_allclose
static int close_scaled(const float *a, const double *r, size_t n, double atol_frac, double rtol,
                        const char *what) {
    double mx = 0, worst = 0, wrel = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(r[i]));
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - r[i]);
        worst = fmax(worst, d);
        if (d > atol_frac * mx + rtol * fabs(r[i])) ok = 0;
    }
    wrel = mx > 0 ? worst / mx : worst;
    printf("    %s %s: max abs %.3g, max|a-r|/max|r| %.3g\n", ok ? "OK" : "NOT OK", what, worst, wrel);
    return ok;
}

typedef struct {
    int b, E, K;
    double lr;
    SeicLossCfg cfg;
} Case;

static int load_case(int c, Case *k) {
    Npy a;
    double *v = fx64("1_cfg", c, &a);
    if (!v) return -1;
    k->b = (int)v[0], k->E = (int)v[1], k->K = (int)v[2], k->lr = v[3];
    seic_loss_cfg_default(&k->cfg);
    k->cfg.tau_a = v[4], k->cfg.tau_c = v[5];
    k->cfg.w_ins = v[6], k->cfg.w_ass = v[7], k->cfg.w_ctr = v[8], k->cfg.w_bal = v[9];
    k->cfg.bal_floor = v[10], k->cfg.bal_max_w = v[11];
    npy_free(&a);
    return 0;
}

// The heads' forward on the CPU backend: z (b,E), l (b,K) for both modalities from p0.
static void heads_forward(float *z[2], float *l[2], const float *x, const float *t, const float *p,
                          const SeicLayout *L, int b) {
    const int E = L->E, K = L->K;
    float *u = mallocCheck((size_t)b * E * sizeof *u);
    const float *in[2] = {x, t};
    for (int m = 0; m < 2; m++) {
        const int wp = m ? SEIC_WP_T : SEIC_WP_I;
        ops_cpu.matmul_forward(u, in[m], p + L->off[wp], p + L->off[wp + 1], b, E, E);
        ops_cpu.l2norm_forward(z[m], u, b, E);
        ops_cpu.matmul_forward(l[m], z[m], p + L->off[wp + 2], p + L->off[wp + 3], b, E, K);
    }
    free(u);
}

TEST(seic_align_loss_vs_pytorch) {
    for (int c = 0; c < 3; c++) {
        Case k;
        REQUIRE(!load_case(c, &k), "case %d", c);
        const int b = k.b, E = k.E, K = k.K;
        SeicLayout L;
        seic_layout(&L, K, E);
        Npy ax, at, ap, ah, aterm, adzi, adzt, adli, adlt, ag, ah1;
        float *x = fx("1_x", c, &ax), *t = fx("1_t", c, &at), *p = fx("1_p0", c, &ap);
        float *h = fx("1_h0", c, &ah);
        double *terms = fx64("1_terms", c, &aterm), *dzi = fx64("1_dz_i", c, &adzi);
        double *dzt = fx64("1_dz_t", c, &adzt), *dli = fx64("1_dl_i", c, &adli);
        double *dlt = fx64("1_dl_t", c, &adlt), *g = fx64("1_g", c, &ag), *h1 = fx64("1_h1", c, &ah1);
        REQUIRE(x && t && p && h && terms && dzi && dzt && dli && dlt && g && h1, "case %d fixtures", c);
        REQUIRE(ap.count == L.n && ag.count == L.n, "case %d: %zu parameters, layout says %zu", c, ap.count, L.n);
        float *z[2], *l[2], *dz[2], *dl[2], dlogs;
        for (int m = 0; m < 2; m++) {
            z[m] = mallocCheck((size_t)b * E * sizeof(float));
            dz[m] = mallocCheck((size_t)b * E * sizeof(float));
            l[m] = mallocCheck((size_t)b * K * sizeof(float));
            dl[m] = mallocCheck((size_t)b * K * sizeof(float));
        }
        heads_forward(z, l, x, t, p, &L, b);
        double got[5];
        ops_cpu.seic_align_loss_forward_backward(got, dz[0], dz[1], dl[0], dl[1], &dlogs, h, z[0], z[1],
                                                 l[0], l[1], p + L.off[SEIC_LOGS], b, K, E, &k.cfg);
        printf("    case %d: terms %.6f %.6f %.6f %.6f %.6f (torch %.6f %.6f %.6f %.6f %.6f)\n", c,
               got[0], got[1], got[2], got[3], got[4], terms[0], terms[1], terms[2], terms[3], terms[4]);
        for (int i = 0; i < 5; i++)
            CHECK(fabs(got[i] - terms[i]) <= 1e-5 * fmax(1.0, fabs(terms[i])), "case %d term %d: %.9g vs %.9g",
                  c, i, got[i], terms[i]);
        // autograd's z.grad also holds the path through the cluster layer: add dl Wc
        float *tmp = mallocCheck((size_t)b * E * sizeof(float));
        for (int m = 0; m < 2; m++) {
            ops_cpu.matmul_backward(tmp, dl[m], p + L.off[m ? SEIC_WC_T : SEIC_WC_I], b, E, K);
            for (size_t i = 0; i < (size_t)b * E; i++) dz[m][i] += tmp[i];
        }
        free(tmp);
        char what[64];
        snprintf(what, sizeof what, "case %d dL/dz_I", c);
        CHECK(close_scaled(dz[0], dzi, (size_t)b * E, 1e-5, 1e-4, what), "%s", what);
        snprintf(what, sizeof what, "case %d dL/dz_T", c);
        CHECK(close_scaled(dz[1], dzt, (size_t)b * E, 1e-5, 1e-4, what), "%s", what);
        snprintf(what, sizeof what, "case %d dL/dlogits_I", c);
        CHECK(close_scaled(dl[0], dli, (size_t)b * K, 1e-5, 1e-4, what), "%s", what);
        snprintf(what, sizeof what, "case %d dL/dlogits_T", c);
        CHECK(close_scaled(dl[1], dlt, (size_t)b * K, 1e-5, 1e-4, what), "%s", what);
        const double rg = g[L.off[SEIC_LOGS]];
        CHECK(fabs(dlogs - rg) <= 1e-5 * fmax(1e-3, fabs(rg)), "case %d dL/dlog s %.9g vs %.9g", c,
              (double)dlogs, rg);
        if (c == 2) CHECK(dlogs == 0.0f && got[3] == 0.0, "case 2: scale capped (no gradient), L_ctr = 0");
        double hw = 0;
        for (int i = 0; i < K; i++) hw = fmax(hw, fabs(h[i] - h1[i]));
        CHECK(hw <= 1e-6, "case %d: histogram after the update off by %.3g", c, hw);
        for (int m = 0; m < 2; m++) free(z[m]), free(dz[m]), free(l[m]), free(dl[m]);
        Npy *all[] = {&ax, &at, &ap, &ah, &aterm, &adzi, &adzt, &adli, &adlt, &ag, &ah1};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) npy_free(all[i]);
    }
}

TEST(seic_align_loss_finite_differences) {
    // dL/dz and dL/dlogits of the op's own (double) loss at 12 sampled coordinates of each
    // input, central differences with a step of 1e-3 on the float input
    Case k;
    REQUIRE(!load_case(1, &k), "case 1");
    const int b = k.b, E = k.E, K = k.K;
    SeicLayout L;
    seic_layout(&L, K, E);
    Npy ax, at, ap, ah;
    float *x = fx("1_x", 1, &ax), *t = fx("1_t", 1, &at), *p = fx("1_p0", 1, &ap), *h0 = fx("1_h0", 1, &ah);
    REQUIRE(x && t && p && h0, "fixtures");
    float *z[2], *l[2], *dz[2], *dl[2], dlogs, *h = mallocCheck((size_t)K * sizeof *h);
    for (int m = 0; m < 2; m++) {
        z[m] = mallocCheck((size_t)b * E * sizeof(float));
        dz[m] = mallocCheck((size_t)b * E * sizeof(float));
        l[m] = mallocCheck((size_t)b * K * sizeof(float));
        dl[m] = mallocCheck((size_t)b * K * sizeof(float));
    }
    heads_forward(z, l, x, t, p, &L, b);
    double terms[5], tp[5], tm[5];
    memcpy(h, h0, (size_t)K * sizeof *h);
    ops_cpu.seic_align_loss_forward_backward(terms, dz[0], dz[1], dl[0], dl[1], &dlogs, h, z[0], z[1],
                                             l[0], l[1], p + L.off[SEIC_LOGS], b, K, E, &k.cfg);
    float *scratch[2][2];
    for (int m = 0; m < 2; m++) {
        scratch[m][0] = mallocCheck((size_t)b * E * sizeof(float));
        scratch[m][1] = mallocCheck((size_t)b * K * sizeof(float));
    }
    double worst = 0, gmax = 0;
    for (int which = 0; which < 4; which++) {   // z_I, z_T, l_I, l_T
        float *in = which < 2 ? z[which] : l[which - 2];
        const float *grad = which < 2 ? dz[which] : dl[which - 2];
        const size_t n = which < 2 ? (size_t)b * E : (size_t)b * K;
        for (size_t s = 0; s < 12; s++) {
            const size_t i = (s * 7919 + (size_t)which * 131) % n;
            const float keep = in[i];
            const float hstep = 1e-3f;
            in[i] = keep + hstep;
            memcpy(h, h0, (size_t)K * sizeof *h);
            ops_cpu.seic_align_loss_forward_backward(tp, scratch[0][0], scratch[1][0], scratch[0][1],
                                                     scratch[1][1], &dlogs, h, z[0], z[1], l[0], l[1],
                                                     p + L.off[SEIC_LOGS], b, K, E, &k.cfg);
            in[i] = keep - hstep;
            memcpy(h, h0, (size_t)K * sizeof *h);
            ops_cpu.seic_align_loss_forward_backward(tm, scratch[0][0], scratch[1][0], scratch[0][1],
                                                     scratch[1][1], &dlogs, h, z[0], z[1], l[0], l[1],
                                                     p + L.off[SEIC_LOGS], b, K, E, &k.cfg);
            in[i] = keep;
            const double fd = (tp[0] - tm[0]) / ((double)(keep + hstep) - (double)(keep - hstep));
            worst = fmax(worst, fabs(fd - grad[i]));
            gmax = fmax(gmax, fabs(grad[i]));
        }
    }
    printf("    48 coordinates: max |fd - grad| %.3g (largest gradient %.3g)\n", worst, gmax);
    CHECK(worst <= 1e-3 * gmax + 1e-6, "finite differences disagree: %.3g", worst);
    for (int m = 0; m < 2; m++)
        free(z[m]), free(dz[m]), free(l[m]), free(dl[m]), free(scratch[m][0]), free(scratch[m][1]);
    free(h);
    npy_free(&ax), npy_free(&at), npy_free(&ap), npy_free(&ah);
}

TEST(seic_stage1_step_vs_pytorch) {
    for (int c = 0; c < 3; c++) {
        Case k;
        REQUIRE(!load_case(c, &k), "case %d", c);
        SeicLayout L;
        seic_layout(&L, k.K, k.E);
        Npy ax, at, ap, ah, aterm, ag, ah1, ap1;
        float *x = fx("1_x", c, &ax), *t = fx("1_t", c, &at), *p0 = fx("1_p0", c, &ap);
        float *h0 = fx("1_h0", c, &ah);
        double *terms = fx64("1_terms", c, &aterm), *g = fx64("1_g", c, &ag);
        double *h1 = fx64("1_h1", c, &ah1), *p1 = fx64("1_p1", c, &ap1);
        REQUIRE(x && t && p0 && h0 && terms && g && h1 && p1, "case %d fixtures", c);
        SeicState st;
        seic_state_alloc(&st, &L, 0);
        memcpy(st.p, p0, L.n * sizeof(float));
        memcpy(st.hist, h0, (size_t)k.K * sizeof(float));
        SeicS1Step *S = seic_s1_step_create(&ops_cpu, k.K, k.E, k.b);
        REQUIRE(S, "step");
        seic_s1_step_load(S, &st);
        double got[5];
        float *grads = mallocCheck(L.n * sizeof *grads);
        REQUIRE(!seic_s1_step_run(S, x, t, k.b, &k.cfg, k.lr, 0.0, 1, got, grads), "%s", laic_last_error());
        seic_s1_step_save(S, &st);
        CHECK(fabs(got[0] - terms[0]) <= 1e-5 * fmax(1.0, fabs(terms[0])), "case %d total %.9g vs %.9g",
              c, got[0], terms[0]);
        static const char *names[SEIC_NTENSORS] = {"image proj W", "image proj b", "image cluster W",
                                                   "image cluster b", "text proj W", "text proj b",
                                                   "text cluster W", "text cluster b", "log s"};
        for (int i = 0; i < SEIC_NTENSORS; i++) {
            const size_t o = L.off[i], n = L.off[i + 1] - o;
            char what[96];
            snprintf(what, sizeof what, "case %d grad %s", c, names[i]);
            CHECK(close_scaled(grads + o, g + o, n, 1e-5, 1e-4, what), "%s", what);
        }
        double hw = 0;
        for (int i = 0; i < k.K; i++) hw = fmax(hw, fabs(st.hist[i] - h1[i]));
        CHECK(hw <= 1e-6, "case %d: histogram off by %.3g", c, hw);
        double pw = 0;
        size_t bad = 0;
        for (size_t i = 0; i < L.n; i++) {
            double d = fabs(st.p[i] - p1[i]);
            pw = fmax(pw, d);
            bad += d > 1e-6 + 1e-5 * fabs(p1[i]);
        }
        printf("    case %d: parameters after one Adam step: max abs diff %.3g, %zu of %zu outside\n", c,
               pw, bad, L.n);
        CHECK(bad == 0, "case %d: %zu parameters differ after the Adam step", c, bad);
        free(grads);
        seic_s1_step_free(S);
        seic_state_free(&st);
        Npy *all[] = {&ax, &at, &ap, &ah, &aterm, &ag, &ah1, &ap1};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) npy_free(all[i]);
    }
}

TEST(seic_self_loss_vs_pytorch) {
    for (int c = 0; c < 2; c++) {
        Npy alw, als, ast0, aw, aloss, adls, ast1;
        float *lw = fx("2_lw", c, &alw), *ls = fx("2_ls", c, &als);
        double *st0 = fx64("2_st0", c, &ast0), *w = fx64("2_w", c, &aw);
        double *loss = fx64("2_loss", c, &aloss), *dls = fx64("2_dls", c, &adls), *st1 = fx64("2_st1", c, &ast1);
        char yn[32];
        snprintf(yn, sizeof yn, "s2_%d_y", c);
        size_t ny = 0;
        int32_t *y = test_fixture_i32(FX, yn, &ny, NULL, NULL);
        REQUIRE(lw && ls && st0 && w && loss && dls && st1 && y, "case %d fixtures", c);
        const int b = (int)alw.shape[0], K = (int)alw.shape[1];
        double st[3] = {st0[0], st0[1], st0[2]}, L;
        float *g = mallocCheck((size_t)b * K * sizeof *g), *wg = mallocCheck((size_t)b * sizeof *wg);
        int32_t *yg = mallocCheck((size_t)b * sizeof *yg);
        ops_cpu.seic_self_loss_forward_backward(&L, g, wg, yg, st, lw, ls, b, K, 0.999);
        int ybad = 0;
        for (int i = 0; i < b; i++) ybad += yg[i] != y[i];
        CHECK(ybad == 0, "case %d: %d pseudo-labels differ", c, ybad);
        char what[64];
        snprintf(what, sizeof what, "case %d weights", c);
        CHECK(close_scaled(wg, w, (size_t)b, 1e-6, 1e-5, what), "%s", what);
        snprintf(what, sizeof what, "case %d dL2/dlogits", c);
        CHECK(close_scaled(g, dls, (size_t)b * K, 1e-5, 1e-4, what), "%s", what);
        CHECK(fabs(L - loss[0]) <= 1e-6 * fabs(loss[0]), "case %d loss %.9g vs %.9g", c, L, loss[0]);
        CHECK(fabs(st[0] - st1[0]) <= 1e-9 && fabs(st[1] - st1[1]) <= 1e-9 * fmax(1, st1[1]) && st[2] == 1.0,
              "case %d: EMA %.9g %.9g vs %.9g %.9g", c, st[0], st[1], st1[0], st1[1]);
        free(g), free(wg), free(yg), free(y);
        Npy *all[] = {&alw, &als, &ast0, &aw, &aloss, &adls, &ast1};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) npy_free(all[i]);
    }
}

// --- the stage-1 loop -------------------------------------------------------------------------

static void planted_pairs(float *X, float *T, size_t N, int K, int E, uint64_t seed) {
    Rng r;
    rng_init(&r, seed, 0);
    float *cen = mallocCheck((size_t)K * E * sizeof *cen);
    for (size_t i = 0; i < (size_t)K * E; i++) cen[i] = (float)rng_normal(&r);
    float *rows[2] = {X, T};
    for (size_t i = 0; i < N; i++)
        for (int m = 0; m < 2; m++) {
            float *v = rows[m] + i * E;
            double s = 0;
            for (int e = 0; e < E; e++) {
                v[e] = cen[(i % K) * E + e] + 0.3f * (float)rng_normal(&r);
                s += (double)v[e] * v[e];
            }
            for (int e = 0; e < E; e++) v[e] = (float)(v[e] / sqrt(s));
        }
    free(cen);
}

TEST(seic_stage1_resume_is_bit_identical) {
    const size_t N = 70;
    const int K = 3, E = 8;
    float *X = mallocCheck(N * E * sizeof *X), *T = mallocCheck(N * E * sizeof *T);
    planted_pairs(X, T, N, K, E, 3);
    SeicS1Opts o;
    seic_s1_opts_default(&o);
    o.epochs = 5;
    o.batch = 32;   // 70 = 2·32 + 6: a short last batch
    o.seed = 99;
    SeicS1Result full, part, rest;
    REQUIRE(!seic_s1_run(&full, &ops_cpu, X, T, N, K, E, &o), "%s", laic_last_error());
    CHECK(full.st.epoch == 5 && full.st.step == 15, "5 epochs of 3 steps: epoch %d step %lld",
          full.st.epoch, (long long)full.st.step);
    CHECK(full.epoch_terms[4 * 5] < full.epoch_terms[0], "the loss falls: %.4f -> %.4f",
          full.epoch_terms[0], full.epoch_terms[4 * 5]);
    const char *ck = test_path("seic_s1.ckpt");
    o.ckpt_path = ck;
    o.stop_after = 2;
    REQUIRE(!seic_s1_run(&part, &ops_cpu, X, T, N, K, E, &o), "%s", laic_last_error());
    CHECK(part.stopped && part.st.epoch == 2, "stopped after epoch 2");
    SeicState back;
    REQUIRE(!seic_ckpt_load(ck, &back), "%s", laic_last_error());
    o.stop_after = 0;
    o.resume = &back;
    REQUIRE(!seic_s1_run(&rest, &ops_cpu, X, T, N, K, E, &o), "%s", laic_last_error());
    SeicLayout L;
    seic_layout(&L, K, E);
    CHECK(rest.first_epoch == 2 && rest.st.epoch == 5 && rest.st.step == full.st.step, "resumed at 2, ended at 5");
    CHECK(!memcmp(rest.st.p, full.st.p, L.n * sizeof(float)) && !memcmp(rest.st.m, full.st.m, L.n * sizeof(float)) &&
              !memcmp(rest.st.v, full.st.v, L.n * sizeof(float)) &&
              !memcmp(rest.st.hist, full.st.hist, (size_t)K * sizeof(float)) &&
              !memcmp(&rest.st.rng, &full.st.rng, sizeof(Rng)),
          "stop + resume ends bit for bit where the uninterrupted run ends");
    // another seed or batch is refused
    o.seed = 98;
    SeicS1Result bad;
    laic_clear_error();
    CHECK(seic_s1_run(&bad, &ops_cpu, X, T, N, K, E, &o) == -1 &&
              strstr(laic_last_error(), "resume refused: run.seed = 99 in the checkpoint, 98 in this run"),
          "a checkpoint of other settings is refused, naming the key: %s", laic_last_error());
    seic_state_free(&back);
    seic_s1_result_free(&full);
    seic_s1_result_free(&part);
    seic_s1_result_free(&rest);
    // corrupt files: one line each
    size_t n = 0;
    char *buf = test_read_file(ck, &n);
    REQUIRE(buf, "checkpoint readable");
    const char *cp = test_path("seic_bad.ckpt");
    test_write_file(cp, buf, n - 4);
    SeicState s;
    laic_clear_error();
    CHECK(seic_ckpt_load(cp, &s) == -1 && strstr(laic_last_error(), "size") && count_lines(laic_last_error()) == 1,
          "truncated: %s", laic_last_error());
    buf[4] = 9;   // version
    test_write_file(cp, buf, n);
    CHECK(seic_ckpt_load(cp, &s) == -1 && strstr(laic_last_error(), "version"), "version: %s", laic_last_error());
    buf[4] = SEIC_CKPT_VERSION;
    buf[0] ^= 1;
    test_write_file(cp, buf, n);
    CHECK(seic_ckpt_load(cp, &s) == -1 && strstr(laic_last_error(), "magic"), "magic: %s", laic_last_error());
    buf[0] ^= 1;
    buf[1024 + 5] ^= 0x10;   // one bit of the first parameter
    test_write_file(cp, buf, n);
    CHECK(seic_ckpt_load(cp, &s) == -1 && strstr(laic_last_error(), "checksum mismatch"), "damage: %s",
          laic_last_error());
    buf[1024 + 5] ^= 0x10;
    test_write_file(cp, buf, n);
    CHECK(seic_ckpt_load(cp, &s) == 0 && strstr(s.hparams, "seic.s1_lr = 0.005"), "intact again, settings recorded");
    seic_state_free(&s);
    free(buf);
    free(X);
    free(T);
}

TEST(seic_stage1_last_batch_rule) {
    // V4C: drop_last only when the last batch would hold one row; the batch is clipped to N
    const int K = 2, E = 4;
    float *X = mallocCheck(40 * E * sizeof *X), *T = mallocCheck(40 * E * sizeof *T);
    planted_pairs(X, T, 40, K, E, 5);
    const struct { size_t N; int batch; int64_t steps; } c[] = {{33, 16, 2}, {34, 16, 3}, {20, 64, 1}, {2, 1, 2}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        SeicS1Opts o;
        seic_s1_opts_default(&o);
        o.epochs = 1;
        o.batch = c[i].batch;
        SeicS1Result r;
        REQUIRE(!seic_s1_run(&r, &ops_cpu, X, T, c[i].N, K, E, &o), "%s", laic_last_error());
        CHECK(r.st.step == c[i].steps, "N %zu batch %d: %lld steps (want %lld)", c[i].N, c[i].batch,
              (long long)r.st.step, (long long)c[i].steps);
        seic_s1_result_free(&r);
    }
    free(X);
    free(T);
}

// --- stage 2 --------------------------------------------------------------------------------------

#define TINY "tests/fixtures/clip/tiny_f16.safetensors"

TEST(seic_stage2_step_vs_pytorch) {
    // One stage-2 step on the tiny CLIP with LoRA r = 4, α = 8 on q and v of both vision blocks
    // (random U, so dD is not 0), the image heads, fixed weak and strong pixels, the first batch
    // (the confidence EMA starts from it), then AdamW (lr 1e-3, wd 1e-2) over LoRA and heads.
    // Tolerances: loss rel 1e-5; weights |a−r| ≤ 1e-5 + 1e-4·|r| (exp of float confidences);
    // gradients per tensor |a−r| ≤ 1e-4·max|r| + 1e-3·|r| and max|a−r|/max|r| ≤ 1e-4 (fp32
    // through 2 blocks vs float64, as test_vit_train); parameters after the step
    // |p − ref| ≤ 1e-6 + 1e-3·lr + 1e-5·|ref| (AdamW's first step is ≈ lr·sign(g)).
    ClipWeights w;
    REQUIRE(clip_weights_load(&w, TINY) == 0, "%s", laic_last_error());
    Npy ac, awk, ast, al0, ah0, aw, aloss, agl, agh, al1, ah1, ast1;
#define F32(v, a, n) float *v = test_fixture_f32(FX, n, &a)
#define F64(v, a, n) double *v = (npy_read(test_fixture_path(FX, n), &a) || a.dtype != NPY_F64) ? NULL : a.data
    F64(c, ac, "s2step_cfg");
    F32(weak, awk, "s2step_weak");
    F32(strong, ast, "s2step_strong");
    F32(lora0, al0, "s2step_lora0");
    F32(heads0, ah0, "s2step_heads0");
    F64(wref, aw, "s2step_w");
    F64(loss_ref, aloss, "s2step_loss");
    F64(glora, agl, "s2step_glora");
    F64(gheads, agh, "s2step_gheads");
    F32(lora1, al1, "s2step_lora1");
    F32(heads1, ah1, "s2step_heads1");
    F64(st1, ast1, "s2step_st1");
    size_t ny = 0;
    int32_t *yref = test_fixture_i32(FX, "s2step_y", &ny, NULL, NULL);
    REQUIRE(c && weak && strong && lora0 && heads0 && wref && loss_ref && glora && gheads && lora1 &&
                heads1 && st1 && yref,
            "fixtures");
    const int B = (int)c[0], K = (int)c[1], E = w.cfg.embed_dim;
    SeicS2Opts o;
    seic_s2_opts_default(&o);
    o.lora_rank = (int)c[2];
    o.lora_alpha = c[3];
    o.lr = c[4];
    o.weight_decay = c[5];
    o.conf_momentum = c[6];
    SeicS2Step *S = seic_s2_step_create(&w, &ops_cpu, K, B, &o);
    REQUIRE(S, "%s", laic_last_error());
    SeicLayout L;
    seic_layout(&L, K, E);
    const size_t nl = seic_s2_extra_floats(S) / 3;
    REQUIRE(nl == al0.count && ah0.count == L.n_img, "LoRA %zu vs %zu floats, heads %zu vs %zu", nl,
            al0.count, ah0.count, L.n_img);
    SeicState st;
    seic_state_alloc(&st, &L, 3 * nl);
    memcpy(st.p, heads0, L.n_img * sizeof(float));
    memcpy(st.extra, lora0, nl * sizeof(float));
    REQUIRE(!seic_s2_step_load(S, &st), "%s", laic_last_error());
    const size_t plane = (size_t)3 * w.cfg.image_size * w.cfg.image_size;
    float *pix = mallocCheck(2 * (size_t)B * plane * sizeof *pix);
    memcpy(pix, weak, (size_t)B * plane * sizeof *pix);
    memcpy(pix + (size_t)B * plane, strong, (size_t)B * plane * sizeof *pix);
    double loss;
    float *wv = mallocCheck((size_t)B * sizeof *wv), *gl = mallocCheck(nl * sizeof *gl),
          *gh = mallocCheck(L.n_img * sizeof *gh);
    int32_t *y = mallocCheck((size_t)B * sizeof *y);
    REQUIRE(!seic_s2_step_run(S, pix, B, &loss, wv, y, gh, gl), "%s", laic_last_error());
    printf("    loss %.7f (torch %.7f)\n", loss, loss_ref[0]);
    CHECK(fabs(loss - loss_ref[0]) <= 1e-5 * fabs(loss_ref[0]), "loss");
    CHECK(!memcmp(y, yref, (size_t)B * sizeof *y), "pseudo-labels");
    double ww = 0;
    for (int i = 0; i < B; i++) ww = fmax(ww, fabs(wv[i] - wref[i]) - 1e-4 * fabs(wref[i]));
    CHECK(ww <= 1e-5, "confidence weights off by %.3g", ww);
    // LoRA gradients per tensor (block-major: q_down, q_up, v_down, v_up)
    const int r = o.lora_rank, C = w.cfg.vision_width;
    size_t off = 0;
    for (int blk = 0; blk < w.cfg.vision_layers; blk++)
        for (int t = 0; t < 4; t++) {
            const size_t n = (size_t)r * C;
            char what[64];
            snprintf(what, sizeof what, "d block %d %s_%s", blk, t < 2 ? "q" : "v", t % 2 ? "up" : "down");
            CHECK(close_scaled(gl + off, glora + off, n, 1e-4, 1e-3, what), "%s", what);
            double mx = 0, wd = 0;
            for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(glora[off + i])), wd = fmax(wd, fabs(gl[off + i] - glora[off + i]));
            CHECK(wd <= 1e-4 * mx, "%s: max|a-r|/max|r| %.3g", what, mx > 0 ? wd / mx : wd);
            off += n;
        }
    static const char *hn[4] = {"image proj W", "image proj b", "image cluster W", "image cluster b"};
    for (int i = 0; i < 4; i++) {
        char what[64];
        snprintf(what, sizeof what, "d %s", hn[i]);
        CHECK(close_scaled(gh + L.off[i], gheads + L.off[i], L.off[i + 1] - L.off[i], 1e-4, 1e-3, what), "%s", what);
    }
    REQUIRE(!seic_s2_step_save(S, &st), "%s", laic_last_error());
    const double lr = o.lr;
    size_t bad = 0;
    double worst = 0;
    for (size_t i = 0; i < nl; i++) {
        double d = fabs(st.extra[i] - lora1[i]);
        worst = fmax(worst, d);
        bad += d > 1e-6 + 1e-3 * lr + 1e-5 * fabs(lora1[i]);
    }
    for (size_t i = 0; i < L.n_img; i++) {
        double d = fabs(st.p[i] - heads1[i]);
        worst = fmax(worst, d);
        bad += d > 1e-6 + 1e-3 * lr + 1e-5 * fabs(heads1[i]);
    }
    printf("    after one AdamW step: max |p - ref| %.3g (lr %g), %zu of %zu outside\n", worst, lr, bad,
           nl + L.n_img);
    CHECK(bad == 0, "parameters after the AdamW step");
    printf("    confidence EMA %.9g %.9g (torch %.9g %.9g); weights off by %.3g\n", st.conf[0], st.conf[1],
           st1[0], st1[1], ww);
    CHECK(fabs(st.conf[0] - st1[0]) <= 1e-6 && fabs(st.conf[1] - st1[1]) <= 1e-5 * st1[1] && st.conf[2] == 1.0,
          "confidence EMA %.9g %.9g vs %.9g %.9g", st.conf[0], st.conf[1], st1[0], st1[1]);
    CHECK(test_maxabs(st.extra + nl, nl) > 0, "AdamW moments of LoRA saved into the state");
    seic_s2_step_free(S);
    seic_state_free(&st);
    free(pix), free(wv), free(gl), free(gh), free(y), free(yref);
    Npy *all[] = {&ac, &awk, &ast, &al0, &ah0, &aw, &aloss, &agl, &agh, &al1, &ah1, &ast1};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) npy_free(all[i]);
    clip_weights_free(&w);
#undef F32
#undef F64
}

TEST(seic_stage2_resume_is_bit_identical) {
    // seic_s2_run on 10 synthetic images (batch 4: a short last batch), 3 epochs: stopped after
    // epoch 1 and resumed from the checkpoint = uninterrupted, bit for bit (heads, moments,
    // LoRA state, confidence EMA, shuffle stream, eval predictions)
    ClipWeights w;
    REQUIRE(clip_weights_load(&w, TINY) == 0, "%s", laic_last_error());
    const int K = 3, E = w.cfg.embed_dim;
    SynthImages im = {10, 36, 40, NULL};
    Rng g;
    rng_init(&g, 5, 5);
    im.pix = mallocCheck((size_t)im.n * im.h * im.w * 3);
    for (size_t i = 0; i < (size_t)im.n * im.h * im.w * 3; i++) im.pix[i] = (uint8_t)rng_below(&g, 256);
    SeicLayout L;
    seic_layout(&L, K, E);
    SeicState s1;
    seic_state_alloc(&s1, &L, 0);
    s1.stage = 1;
    seic_heads_init(s1.p, &L, 0.07, 3);
    for (size_t i = 0; i < L.n_img; i++) s1.p[i] *= 50.0f;   // heads that disagree across images
    SeicS2Opts o;
    seic_s2_opts_default(&o);
    o.epochs = 3, o.batch = 4, o.lora_rank = 4, o.lora_alpha = 8, o.lr = 1e-3, o.seed = 17;
    SeicImages fit = {synth_get_image, &im, (size_t)im.n};
    SeicS2Result full, part, rest;
    REQUIRE(!seic_s2_run(&full, &w, &ops_cpu, &fit, &fit, &s1, &o), "%s", laic_last_error());
    CHECK(full.st.epoch == 3 && full.st.step == 9 && full.pred, "3 epochs of 3 steps, predictions");
    const char *ck = test_path("seic_s2.ckpt");
    o.ckpt_path = ck;
    o.stop_after = 1;
    REQUIRE(!seic_s2_run(&part, &w, &ops_cpu, &fit, &fit, &s1, &o), "%s", laic_last_error());
    CHECK(part.stopped && part.st.epoch == 1 && !part.pred, "stopped after epoch 1");
    SeicState back;
    REQUIRE(!seic_ckpt_load(ck, &back), "%s", laic_last_error());
    CHECK(back.stage == 2 && back.n_extra == full.st.n_extra, "a stage-2 checkpoint with the LoRA state");
    o.stop_after = 0;
    o.resume = &back;
    REQUIRE(!seic_s2_run(&rest, &w, &ops_cpu, &fit, &fit, &s1, &o), "%s", laic_last_error());
    CHECK(rest.first_epoch == 1 && rest.st.epoch == 3 && rest.st.step == 9, "resumed at 1, ended at 3");
    CHECK(!memcmp(rest.st.p, full.st.p, L.n * sizeof(float)) && !memcmp(rest.st.m, full.st.m, L.n * sizeof(float)) &&
              !memcmp(rest.st.v, full.st.v, L.n * sizeof(float)) &&
              !memcmp(rest.st.extra, full.st.extra, full.st.n_extra * sizeof(float)) &&
              !memcmp(rest.st.conf, full.st.conf, sizeof full.st.conf) &&
              !memcmp(&rest.st.rng, &full.st.rng, sizeof(Rng)) &&
              !memcmp(rest.pred, full.pred, (size_t)im.n * sizeof(int64_t)),
          "stop + resume ends bit for bit where the uninterrupted run ends");
    CHECK(memcmp(full.st.p, s1.p, L.n_img * sizeof(float)) != 0 &&
              !memcmp(full.st.p + L.n_img, s1.p + L.n_img, (L.n - L.n_img) * sizeof(float)),
          "stage 2 trains the image heads only (text heads and log s frozen)");
    // a stage-1 checkpoint is not a stage-2 resume point
    o.resume = &s1;
    SeicS2Result bad;
    laic_clear_error();
    CHECK(seic_s2_run(&bad, &w, &ops_cpu, &fit, &fit, &s1, &o) == -1 && strstr(laic_last_error(), "not a stage-2"),
          "%s", laic_last_error());
    seic_state_free(&back);
    seic_state_free(&s1);
    seic_s2_result_free(&full);
    seic_s2_result_free(&part);
    seic_s2_result_free(&rest);
    free(im.pix);
    clip_weights_free(&w);
}

TEST(seic_views_op_is_eval_view_then_strong_view) {
    // ops_cpu.seic_views_forward == image_resize_crop_rgb8 / augment_seic_view + image_normalize,
    // bitwise, rows 0..b-1 then b..2b-1
    const int b = 3, S = 32;
    const int H[3] = {40, 64, 32}, W[3] = {50, 33, 32};
    const size_t index[3] = {4, 0, 9};
    uint8_t *imgs[3];
    Rng g;
    rng_init(&g, 3, 3);
    for (int i = 0; i < b; i++) {
        imgs[i] = mallocCheck((size_t)H[i] * W[i] * 3);
        for (size_t k = 0; k < (size_t)H[i] * W[i] * 3; k++) imgs[i][k] = (uint8_t)rng_below(&g, 256);
    }
    SeicViewCfg c;
    seic_view_cfg_default(&c);
    const size_t plane = (size_t)3 * S * S;
    float *pix = mallocCheck(2 * b * plane * sizeof *pix), *ref = mallocCheck(plane * sizeof *ref);
    uint8_t *crop = mallocCheck((size_t)S * S * 3);
    REQUIRE(!ops_cpu.seic_views_forward(pix, (const uint8_t *const *)imgs, H, W, index, b, S, 11, 2, &c), "%s",
            laic_last_error());
    int bad = 0;
    for (int j = 0; j < 2 * b; j++) {
        const int i = j % b;
        if (j < b) image_resize_crop_rgb8(crop, imgs[i], H[i], W[i], S);
        else augment_seic_view(crop, imgs[i], H[i], W[i], S, &c, 11, 2, index[i]);
        image_normalize(ref, crop, S);
        bad += memcmp(ref, pix + (size_t)j * plane, plane * sizeof *ref) != 0;
    }
    CHECK(bad == 0, "%d of %d views differ from the direct calls", bad, 2 * b);
    for (int i = 0; i < b; i++) free(imgs[i]);
    free(pix), free(ref), free(crop);
}
