/*
 * test_heads.c — the clustering-head layer (host/train/heads.c) and the SIC / TAC (trained)
 * trainers (host/train/sic.c, tac_train.c) on the CPU backend, against the one-step oracles of
 * scripts/make_heads_fixtures.py (tests/fixtures/heads/), plus checkpoint / resume.
 *
 * Tolerances:
 * - SIC step 7 (centre mapping): the row index sets I_c and noun index sets J_c exactly (the
 *   fixture guarantees no near-tie at either cut); V and H ≤ 1e-6 + 1e-5·|r| (laic's means are
 *   double, the authors' float32). The logits Z = head(X): ≤ 1e-5 + 1e-5·|r| (one float32 GEMM).
 * - SIC step 8 (one batch, float32 as the authors run): the terms ≤ 1e-5 relative; dW, db
 *   ≤ 1e-6 + 1e-5·|r|; W, b after one Adam(lr 1e-4, wd 1e-4) step ≤ 1e-6 + 1e-5·|r| — a step
 *   moves each weight by ≈ lr = 1e-4, so a wrong gradient sign or a missing decay term is 100×
 *   outside.
 * - SIC step 5 (semantic filters): S exactly, |R| and |U| exactly, t̄ (mean of per-batch means)
 *   ≤ 1e-6 relative; the plain mean would give another U (the quirk is exercised).
 * - TAC one step: terms ≤ 1e-5 relative; every gradient of both heads ≤ 1e-6 + 1e-4·|r|
 *   (float32 GEMMs over 64 rows through BatchNorm's backward, whose terms cancel: relative error
 *   grows where the gradient is small); BN running statistics ≤ 1e-6 + 1e-5·|r|; parameters
 *   after Adam(0.9, 0.99) ≤ 1e-6 + 1e-5·|r| (each moves by ≈ lr = 1e-3).
 * - Resume: a run stopped after 2 of 4 epochs and resumed equals the uninterrupted run bit for
 *   bit (parameters and predictions), on one code path.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "cluster/knn_l2.h"
#include "cluster/metrics.h"
#include "io/err.h"
#include "ops.h"
#include "rng.h"
#include "train/heads.h"
#include "train/optim.h"
#include "train/sic.h"
#include "train/tac_train.h"
#include "../synth.h"
#include "../test.h"

#define FX "tests/fixtures/heads"

static int64_t *fx_i64(const char *name, Npy *a) {
    memset(a, 0, sizeof *a);
    int rc = npy_read_i64(test_fixture_path(FX, name), a, -1, NULL);
    CHECK(rc == 0, "fixture %s: %s", name, laic_last_error());
    return rc ? NULL : a->data;
}

static double *fx_f64(const char *name, Npy *a) {
    memset(a, 0, sizeof *a);
    int rc = npy_read(test_fixture_path(FX, name), a);
    CHECK(rc == 0 && a->dtype == NPY_F64, "fixture %s (float64): %s", name, laic_last_error());
    return rc ? NULL : a->data;
}

static int rel_ok(double a, double r, double rtol, const char *what) {
    const int ok = fabs(a - r) <= rtol * fabs(r) + 1e-12;
    printf("    %s %s: %.10g vs %.10g\n", ok ? "OK" : "NOT OK", what, a, r);
    return ok;
}

// --- SIC ---------------------------------------------------------------------------------------

TEST(sic_oracle_centre_mapping) {
    Npy aX, aS, aZ, aV, aH, aW, ab, aI, aJ;
    const float *X = test_fixture_f32(FX, "sico_X", &aX), *S = test_fixture_f32(FX, "sico_S", &aS),
                *Z = test_fixture_f32(FX, "sico_Z", &aZ), *Vr = test_fixture_f32(FX, "sico_V", &aV),
                *Hr = test_fixture_f32(FX, "sico_H", &aH), *W0 = test_fixture_f32(FX, "sico_W0", &aW),
                *b0 = test_fixture_f32(FX, "sico_b0", &ab);
    const int64_t *Ir = fx_i64("sico_I", &aI), *Jr = fx_i64("sico_J", &aJ);
    REQUIRE(X && S && Z && Vr && Hr && W0 && b0 && Ir && Jr, "fixtures");
    const size_t N = aX.shape[0], M = aS.shape[0];
    const int E = (int)aX.shape[1], K = (int)aW.shape[0];
    const size_t nI = sic_rows_per_centre(N, K, 0.9);
    REQUIRE(nI == aI.shape[1], "int((N//K)·0.9) = %zu rows per centre (fixture %zu)", nI, aI.shape[1]);
    // Z = head(X) through the Linear head
    Head h;
    REQUIRE(head_create(&h, &ops_cpu, HEAD_LINEAR, E, 0, K, 256) == 0, "head");
    float *p = malloc((h.n_params) * sizeof *p);
    memcpy(p, W0, (size_t)K * E * sizeof *p);
    memcpy(p + (size_t)K * E, b0, (size_t)K * sizeof *p);
    head_set_params(&h, p);
    float *Zl = malloc(N * K * sizeof *Zl);
    REQUIRE(head_predict(&h, NULL, Zl, X, N) == 0, "predict");
    CHECK(test_allclose(Zl, Z, N * K, 1e-5, 1e-5, "Z = head(X)"), "logits");
    // step 7 on the fixture's Z
    float *V = malloc((size_t)K * E * sizeof *V), *H = malloc((size_t)K * E * sizeof *H);
    int64_t *I = malloc((size_t)K * nI * sizeof *I), *J = malloc((size_t)K * 30 * sizeof *J);
    REQUIRE(sic_centre_map(V, H, I, J, &ops_cpu, Z, X, N, E, K, S, M, 0.9, 30) == 0, "%s", laic_last_error());
    CHECK(!memcmp(I, Ir, (size_t)K * nI * sizeof *I), "the top-%zu row sets per centre match exactly", nI);
    CHECK(!memcmp(J, Jr, (size_t)K * 30 * sizeof *J), "the top-30 noun sets per centre match exactly");
    CHECK(test_allclose(V, Vr, (size_t)K * E, 1e-6, 1e-5, "V"), "image centres V");
    CHECK(test_allclose(H, Hr, (size_t)K * E, 1e-6, 1e-5, "H"), "semantic centres H");
    // bad settings: a one-line error each
    CHECK(sic_centre_map(V, H, NULL, NULL, &ops_cpu, Z, X, N, E, K, S, M, 0.9, (int)M + 1) != 0 &&
              strstr(laic_last_error(), "sic.xi_a"), "xi_a > M: %s", laic_last_error());
    CHECK(sic_centre_map(V, H, NULL, NULL, &ops_cpu, Z, X, 5, E, K, S, M, 0.9, 30) != 0 &&
              strstr(laic_last_error(), "xi_c"), "no image per centre: %s", laic_last_error());
    free(p), free(Zl), free(V), free(H), free(I), free(J);
    head_free(&h);
    Npy *all[] = {&aX, &aS, &aZ, &aV, &aH, &aW, &ab, &aI, &aJ};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) npy_free(all[i]);
}

TEST(sic_oracle_one_step) {
    Npy aX, aH, aW, ab, aia, ajn, at, adW, adb, aW1, ab1;
    const float *X = test_fixture_f32(FX, "sico_X", &aX), *Hc = test_fixture_f32(FX, "sico_H", &aH),
                *W0 = test_fixture_f32(FX, "sico_W0", &aW), *b0 = test_fixture_f32(FX, "sico_b0", &ab),
                *dWr = test_fixture_f32(FX, "sico_dW", &adW), *dbr = test_fixture_f32(FX, "sico_db", &adb),
                *W1 = test_fixture_f32(FX, "sico_W1", &aW1), *b1 = test_fixture_f32(FX, "sico_b1", &ab1);
    const int64_t *ia = fx_i64("sico_ia", &aia), *jn = fx_i64("sico_jn", &ajn);
    const double *tr = fx_f64("sico_terms", &at);
    size_t ny;
    int32_t *yr = test_fixture_i32(FX, "sico_y", &ny, NULL, NULL);
    REQUIRE(X && Hc && W0 && b0 && dWr && dbr && W1 && b1 && ia && jn && tr && yr, "fixtures");
    const int E = (int)aX.shape[1], K = (int)aW.shape[0], B = (int)aia.shape[0];
    // pseudo-labels: argmax_c ⟨X_i, H_c⟩ of the anchors
    int32_t *y = malloc((size_t)B * sizeof *y);
    for (int i = 0; i < B; i++) {
        int best = 0;
        double bs = -INFINITY;
        for (int c = 0; c < K; c++) {
            double s = 0.0;
            for (int e = 0; e < E; e++) s += (double)X[ia[i] * E + e] * Hc[(size_t)c * E + e];
            if (s > bs) bs = s, best = c;
        }
        y[i] = best;
    }
    CHECK(!memcmp(y, yr, (size_t)B * sizeof *y), "pseudo-labels argmax ⟨X_i, H_c⟩ match");
    Head h;
    REQUIRE(head_create(&h, &ops_cpu, HEAD_LINEAR, E, 0, K, 2 * B) == 0, "head");
    HeadActs acts;
    REQUIRE(head_acts_create(&h, &acts, 2 * B) == 0, "acts");
    float *p = malloc(h.n_params * sizeof *p), *g = malloc(h.n_params * sizeof *g);
    memcpy(p, W0, (size_t)K * E * sizeof *p);
    memcpy(p + (size_t)K * E, b0, (size_t)K * sizeof *p);
    head_set_params(&h, p);
    float *x = malloc(2 * (size_t)B * E * sizeof *x);   // anchors, then neighbours
    ops_cpu.index_select_forward(x, X, ia, B, E);
    ops_cpu.index_select_forward(x + (size_t)B * E, X, jn, B, E);
    SicOpts o;
    sic_opts_default(&o);
    double terms[4], sched[3];
    float *dl = malloc(2 * (size_t)B * K * sizeof *dl);
    adam_schedule(sched, o.lr, 0.9, 0.999, 1);
    sic_step(&h, &acts, x, yr, B, terms, dl, sched, &o);
    const char *nm[4] = {"L", "L_I", "H (L_B)", "CE (L_IS)"};
    for (int i = 0; i < 4; i++) CHECK(rel_ok(terms[i], tr[i], 1e-5, nm[i]), "SIC term %s", nm[i]);
    head_get_grads(&h, g);
    CHECK(test_allclose(g, dWr, (size_t)K * E, 1e-6, 1e-5, "dW"), "dL/dW");
    CHECK(test_allclose(g + (size_t)K * E, dbr, (size_t)K, 1e-6, 1e-5, "db"), "dL/db");
    head_get_params(&h, p);
    CHECK(test_allclose(p, W1, (size_t)K * E, 1e-6, 1e-5, "W after Adam"), "W after one Adam step");
    CHECK(test_allclose(p + (size_t)K * E, b1, (size_t)K, 1e-6, 1e-5, "b after Adam"), "b after one Adam step");
    free(y), free(p), free(g), free(x), free(dl), free(yr);
    head_acts_free(&h, &acts);
    head_free(&h);
    Npy *all[] = {&aX, &aH, &aW, &ab, &aia, &ajn, &at, &adW, &adb, &aW1, &ab1};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) npy_free(all[i]);
}

TEST(sic_semantic_filters_short_last_batch) {
    Npy aT, aC, acfg, atb, aR, aU, aS;
    const float *T0 = test_fixture_f32(FX, "sicf_T0", &aT), *C0 = test_fixture_f32(FX, "sicf_C0", &aC);
    const double *cfg = fx_f64("sicf_cfg", &acfg), *tbr = fx_f64("sicf_tbar", &atb);
    const int64_t *Rr = fx_i64("sicf_R", &aR), *Ur = fx_i64("sicf_U", &aU), *Sr = fx_i64("sicf_S", &aS);
    REQUIRE(T0 && C0 && cfg && tbr && Rr && Ur && Sr, "fixtures");
    const size_t Mb = aT.shape[0];
    const int E = (int)aT.shape[1], K = (int)aC.shape[0], gr = (int)cfg[0], bs = (int)cfg[2];
    const double gu = cfg[1];
    REQUIRE(E > 0 && E <= 256 && bs > 0, "fixture sizes");
    CHECK(Mb % (size_t)bs != 0, "the bank's last batch is short (%zu rows of %d)", Mb % (size_t)bs, bs);
    int64_t *S;
    size_t M;
    SicSpaceInfo info;
    REQUIRE(sic_semantic_space(&S, &M, &info, &ops_cpu, C0, K, T0, Mb, E, gr, gu, bs) == 0, "%s",
            laic_last_error());
    CHECK(M == aS.count && !memcmp(S, Sr, M * sizeof *S), "S = R ∩ U matches exactly (%zu vs %zu)", M, aS.count);
    CHECK(info.n_r == aR.count, "|R| %zu vs %zu", info.n_r, aR.count);
    CHECK(info.n_u == aU.count, "|U| %zu vs %zu", info.n_u, aU.count);
    float tb[256], tbf[256];
    for (int e = 0; e < E; e++) tb[e] = (float)info.tbar[e], tbf[e] = (float)tbr[e];
    CHECK(test_allclose(tb, tbf, (size_t)E, 1e-7, 1e-6, "t̄ (mean of batch means)"), "t̄");
    // the plain mean differs, and on this bank it changes U
    double pm[256] = {0}, pn = 0.0, d = 0.0;
    for (size_t j = 0; j < Mb; j++)
        for (int e = 0; e < E; e++) pm[e] += T0[j * E + e] / (double)Mb;
    for (int e = 0; e < E; e++) pn += pm[e] * pm[e], d = fmax(d, fabs(pm[e] - info.tbar[e]));
    size_t nu_plain = 0;
    for (size_t j = 0; j < Mb; j++) {
        double dot = 0.0, tn = 0.0;
        for (int e = 0; e < E; e++) dot += (double)T0[j * E + e] * pm[e], tn += (double)T0[j * E + e] * T0[j * E + e];
        nu_plain += dot / sqrt(tn * pn) < 1.0 - gu;
    }
    CHECK(d > 1e-4 && nu_plain != info.n_u, "plain mean: |U| = %zu, mean of batch means: %zu", nu_plain, info.n_u);
    // bad inputs
    int64_t *S2;
    size_t M2;
    CHECK(sic_semantic_space(&S2, &M2, NULL, &ops_cpu, C0, K, T0, Mb, E, (int)Mb + 1, gu, bs) != 0 &&
              strstr(laic_last_error(), "sic.gamma_r"), "gamma_r > bank: %s", laic_last_error());
    CHECK(sic_semantic_space(&S2, &M2, NULL, &ops_cpu, C0, K, T0, Mb, E, gr, 2.0, bs) != 0 &&
              strstr(laic_last_error(), "empty"), "empty semantic space: %s", laic_last_error());
    free(S);
    free(info.tbar);
    Npy *all[] = {&aT, &aC, &acfg, &atb, &aR, &aU, &aS};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) npy_free(all[i]);
}

// --- TAC ---------------------------------------------------------------------------------------

TEST(tac_oracle_one_step) {
    Npy axa, ata, axn, atn, apT, apI, at, agT, agI, armT, arvT, armI, arvI, apT1, apI1;
    const float *xa = test_fixture_f32(FX, "taco_xa", &axa), *ta = test_fixture_f32(FX, "taco_ta", &ata),
                *xn = test_fixture_f32(FX, "taco_xn", &axn), *tn = test_fixture_f32(FX, "taco_tn", &atn),
                *pT0 = test_fixture_f32(FX, "taco_pT0", &apT), *pI0 = test_fixture_f32(FX, "taco_pI0", &apI),
                *gTr = test_fixture_f32(FX, "taco_gT", &agT), *gIr = test_fixture_f32(FX, "taco_gI", &agI),
                *rmT = test_fixture_f32(FX, "taco_rmT", &armT), *rvT = test_fixture_f32(FX, "taco_rvT", &arvT),
                *rmI = test_fixture_f32(FX, "taco_rmI", &armI), *rvI = test_fixture_f32(FX, "taco_rvI", &arvI),
                *pT1 = test_fixture_f32(FX, "taco_pT1", &apT1), *pI1 = test_fixture_f32(FX, "taco_pI1", &apI1);
    const double *tr = fx_f64("taco_terms", &at);
    REQUIRE(xa && ta && xn && tn && pT0 && pI0 && gTr && gIr && rmT && rvT && rmI && rvI && pT1 && pI1 && tr,
            "fixtures");
    const int B = (int)axa.shape[0], D = (int)axa.shape[1];
    const int K = (int)((apT.count - ((size_t)D * D + 3 * (size_t)D)) / ((size_t)D + 1));
    Head hT, hI;
    REQUIRE(head_create(&hT, &ops_cpu, HEAD_MLP, D, D, K, 2 * B) == 0 &&
                head_create(&hI, &ops_cpu, HEAD_MLP, D, D, K, 2 * B) == 0, "heads");
    REQUIRE(hT.n_params == apT.count, "carve order / size: %zu params (fixture %zu)", hT.n_params, apT.count);
    head_set_params(&hT, pT0);
    head_set_params(&hI, pI0);
    HeadActs aT, aI;
    REQUIRE(head_acts_create(&hT, &aT, 2 * B) == 0 && head_acts_create(&hI, &aI, 2 * B) == 0, "acts");
    TacTrainOpts o;
    tac_train_opts_default(&o);
    double terms[5], sched[3];
    float *dl = malloc(4 * (size_t)B * K * sizeof *dl);
    float *t = malloc(2 * (size_t)B * D * sizeof *t), *x = malloc(2 * (size_t)B * D * sizeof *x);
    memcpy(t, ta, (size_t)B * D * sizeof *t);   // anchors, then neighbours
    memcpy(t + (size_t)B * D, tn, (size_t)B * D * sizeof *t);
    memcpy(x, xa, (size_t)B * D * sizeof *x);
    memcpy(x + (size_t)B * D, xn, (size_t)B * D * sizeof *x);
    adam_schedule(sched, o.lr, o.beta1, o.beta2, 1);
    tac_step(&hT, &hI, &aT, &aI, t, x, B, terms, dl, dl + 2 * (size_t)B * K, sched, &o);
    const char *nm[5] = {"L", "D(P_Ia, P_Tn)", "D(P_Ta, P_In)", "Cons(P_Ta, P_Ia)", "H(P_Ta) + H(P_Ia)"};
    for (int i = 0; i < 5; i++) CHECK(rel_ok(terms[i], tr[i], 1e-5, nm[i]), "TAC term %s", nm[i]);
    const size_t np = hT.n_params;
    float *g = malloc(np * sizeof *g), *p = malloc(np * sizeof *p);
    const char *tn_[HEAD_NUM_TENSORS] = {"W1", "b1", "bn.weight", "bn.bias", "W2", "b2"};
    for (int hh = 0; hh < 2; hh++) {
        Head *h = hh ? &hI : &hT;
        const float *gr = hh ? gIr : gTr, *p1 = hh ? pI1 : pT1;
        head_get_grads(h, g);
        size_t off = 0;
        for (int t = 0; t < HEAD_NUM_TENSORS; t++) {
            char what[64];
            snprintf(what, sizeof what, "%s head d%s", hh ? "image" : "text", tn_[t]);
            CHECK(test_allclose(g + off, gr + off, h->sizes[t], 1e-6, 1e-4, what), "%s", what);
            off += h->sizes[t];
        }
        // b1 feeds BatchNorm, which subtracts the batch mean: its true gradient is 0 and both
        // sides hold rounding noise (~1e-7), which Adam's first step turns into ±lr. So b1 is
        // compared within 2·lr (opposite signs), every other tensor tightly.
        head_get_params(h, p);
        off = 0;
        for (int t = 0; t < HEAD_NUM_TENSORS; t++) {
            char what[64];
            snprintf(what, sizeof what, "%s head %s after Adam", hh ? "image" : "text", tn_[t]);
            const double atol = t == 1 ? 2.0001e-3 : 1e-6, rtol = t == 1 ? 0.0 : 1e-5;
            CHECK(test_allclose(p + off, p1 + off, h->sizes[t], atol, rtol, what),
                  "parameters after one Adam(0.9, 0.99) step");
            off += h->sizes[t];
        }
    }
    float rm[256], rv[256];
    memcpy(rm, hT.running_mean, (size_t)D * sizeof *rm);
    memcpy(rv, hT.running_var, (size_t)D * sizeof *rv);
    CHECK(test_allclose(rm, rmT, (size_t)D, 1e-6, 1e-5, "text BN running mean"), "running mean after two forwards");
    CHECK(test_allclose(rv, rvT, (size_t)D, 1e-6, 1e-5, "text BN running var"), "running var after two forwards");
    memcpy(rm, hI.running_mean, (size_t)D * sizeof *rm);
    memcpy(rv, hI.running_var, (size_t)D * sizeof *rv);
    CHECK(test_allclose(rm, rmI, (size_t)D, 1e-6, 1e-5, "image BN running mean"), "image running mean");
    CHECK(test_allclose(rv, rvI, (size_t)D, 1e-6, 1e-5, "image BN running var"), "image running var");
    free(dl), free(g), free(p), free(t), free(x);
    head_acts_free(&hT, &aT);
    head_acts_free(&hI, &aI);
    head_free(&hT);
    head_free(&hI);
    Npy *all[] = {&axa, &ata, &axn, &atn, &apT, &apI, &at, &agT, &agI, &armT, &arvT, &armI, &arvI, &apT1, &apI1};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) npy_free(all[i]);
}

// --- whole trainers: planted recovery, checkpoint / resume --------------------------------------

/* K planted clusters in E dims: raw features centre_c·scale + noise (norms ~ scale), labels. */
static float *planted(int64_t *y, size_t N, int E, int K, double noise, uint64_t seed, float **centres) {
    Rng g;
    rng_init(&g, seed, 9);
    float *C = malloc((size_t)K * E * sizeof *C), *X = malloc(N * E * sizeof *X);
    for (int c = 0; c < K; c++)
        for (int e = 0; e < E; e++) C[(size_t)c * E + e] = (float)(3.0 * rng_normal(&g));
    for (size_t i = 0; i < N; i++) {
        y[i] = (int64_t)(i % (size_t)K);
        for (int e = 0; e < E; e++) X[i * E + e] = C[y[i] * E + e] + (float)(noise * rng_normal(&g));
    }
    if (centres) *centres = C;
    else free(C);
    return X;
}

typedef struct {
    float *X, *S;
    int64_t *y, *nbr;
    size_t N, M;
    int E, K, nn;
} SicToy;

static void sic_toy(SicToy *t) {
    t->N = 300, t->E = 16, t->K = 3, t->nn = 6;
    float *C;
    t->y = malloc(t->N * sizeof *t->y);
    t->X = planted(t->y, t->N, t->E, t->K, 1.0, 3, &C);
    // a semantic space: per cluster 10 nouns near its centre, plus 30 random ones
    t->M = 60;
    Rng g;
    rng_init(&g, 4, 0);
    t->S = malloc(t->M * t->E * sizeof *t->S);
    for (size_t j = 0; j < t->M; j++)
        for (int e = 0; e < t->E; e++)
            t->S[j * t->E + e] = j < 30 ? C[(j % 3) * t->E + e] + (float)(0.5 * rng_normal(&g)) : (float)(3.0 * rng_normal(&g));
    free(C);
    t->nbr = malloc(t->N * t->nn * sizeof *t->nbr);
    CHECK(knn_l2_topk(t->nbr, NULL, t->X, (int)t->N, t->E, t->nn) == 0, "knn");
}

static double acc_of(const int64_t *pred, const int64_t *y, size_t n) {
    ClusterMetrics cm;
    return metrics_compute(&cm, pred, y, n) ? -1 : cm.acc;
}

TEST(sic_trains_and_resumes_bit_for_bit) {
    SicToy t;
    sic_toy(&t);
    SicData d = {.X = t.X, .N = t.N, .E = t.E, .K = t.K, .nbr = t.nbr, .nn = t.nn, .S = t.S,
                 .M = t.M, .Xeval = t.X, .Ne = t.N, .yeval = t.y};
    SicOpts o;
    sic_opts_default(&o);
    o.epochs = 4;
    o.batch = 64;   // 300 = 4·64 + 44: a short last batch
    o.lr = 1e-2;
    o.xi_a = 5;
    o.hparams = "method=sic;lr=0.01";
    SicResult full, part, rest;
    REQUIRE(sic_train(&full, &ops_cpu, &d, &o) == 0, "%s", laic_last_error());
    const double acc = acc_of(full.pred, t.y, t.N);
    CHECK(acc >= 0.95, "planted toy recovered: ACC %.3f", acc);
    CHECK(full.epochs_run == 4 && full.steps == 4 * 5, "4 epochs of 5 batches: %d, %lld", full.epochs_run,
          (long long)full.steps);
    // stop after 2, resume
    const char *ck = test_path("sic.ckpt");
    o.ckpt_path = ck;
    o.stop_after = 2;
    REQUIRE(sic_train(&part, &ops_cpu, &d, &o) == 0, "%s", laic_last_error());
    CHECK(part.stopped && part.epochs_run == 2 && !part.pred, "stopped after 2 epochs");
    o.stop_after = 0;
    o.resume_path = ck;
    REQUIRE(sic_train(&rest, &ops_cpu, &d, &o) == 0, "%s", laic_last_error());
    CHECK(rest.first_epoch == 3 && rest.epochs_run == 4, "resumed at epoch 3");
    const size_t np = (size_t)t.K * t.E + t.K;
    CHECK(!memcmp(rest.params, full.params, np * sizeof(float)) &&
              !memcmp(rest.pred, full.pred, t.N * sizeof(int64_t)),
          "stopped + resumed == uninterrupted, bit for bit");
    // another setting refuses the checkpoint, naming the key
    o.hparams = "method=sic;lr=0.02";
    SicResult bad;
    CHECK(sic_train(&bad, &ops_cpu, &d, &o) != 0 && strstr(laic_last_error(), "lr=0.01"),
          "hyper-parameter mismatch: %s", laic_last_error());
    // a damaged checkpoint is refused
    o.hparams = "method=sic;lr=0.01";
    size_t n;
    unsigned char *buf = test_read_file(ck, &n);
    REQUIRE(buf && n > 2048, "checkpoint read");
    buf[n - 3] ^= 0x40;
    test_write_file(ck, buf, n);
    free(buf);
    CHECK(sic_train(&bad, &ops_cpu, &d, &o) != 0 && strstr(laic_last_error(), "checksum"),
          "damaged checkpoint: %s", laic_last_error());
    // test-ACC selection keeps the best epoch and says so
    o.resume_path = NULL;
    o.ckpt_path = NULL;
    o.select_test_acc = 1;
    SicResult sel;
    REQUIRE(sic_train(&sel, &ops_cpu, &d, &o) == 0, "%s", laic_last_error());
    double best = -1;
    for (int e = 0; e < sel.epochs_run; e++) best = fmax(best, sel.epoch_acc[e]);
    CHECK(sel.reported_epoch >= 1 && sel.best_acc == best &&
              fabs(acc_of(sel.pred, t.y, t.N) - best) < 1e-12,
          "select test_acc reports the best epoch (%d, ACC %.3f)", sel.reported_epoch, sel.best_acc);
    sic_result_free(&full);
    sic_result_free(&part);
    sic_result_free(&rest);
    sic_result_free(&sel);
    free(t.X), free(t.S), free(t.y), free(t.nbr);
}

TEST(tac_train_trains_and_resumes_bit_for_bit) {
    const size_t N = 400;
    const int E = 16, K = 4, kn = 5;
    int64_t *y = malloc(N * sizeof *y);
    float *X = planted(y, N, E, K, 1.0, 5, NULL), *T = malloc(N * E * sizeof *T);
    synth_normalize_rows(X, (int)N, E);
    // text counterparts: the image feature rotated a little and renormalised
    Rng g;
    rng_init(&g, 6, 0);
    for (size_t i = 0; i < N * E; i++) T[i] = X[i] + (float)(0.05 * rng_normal(&g));
    synth_normalize_rows(T, (int)N, E);
    int64_t *nx = malloc(N * kn * sizeof *nx), *nt = malloc(N * kn * sizeof *nt);
    REQUIRE(knn_topk(nx, NULL, X, (int)N, E, kn) == 0 && knn_topk(nt, NULL, T, (int)N, E, kn) == 0, "knn");
    TacTrainData d = {.X = X, .T = T, .N = N, .E = E, .K = K, .nbr_x = nx, .nbr_t = nt, .kn = kn,
                      .Xeval = X, .Ne = N};
    TacTrainOpts o;
    tac_train_opts_default(&o);
    o.epochs = 4;
    o.batch = 64;   // 400 = 6·64 + 16 dropped
    o.lr = 1e-2;
    o.hparams = "method=tac-train";
    TacTrainResult full, part, rest;
    REQUIRE(tac_train(&full, &ops_cpu, &d, &o) == 0, "%s", laic_last_error());
    CHECK(full.steps == 4 * 6, "drop_last: 6 batches per epoch (%lld steps)", (long long)full.steps);
    const double acc = acc_of(full.pred, y, N);
    CHECK(acc >= 0.95, "planted toy recovered: ACC %.3f", acc);
    const char *ck = test_path("tac.ckpt");
    o.ckpt_path = ck;
    o.stop_after = 2;
    REQUIRE(tac_train(&part, &ops_cpu, &d, &o) == 0 && part.stopped, "%s", laic_last_error());
    o.stop_after = 0;
    o.resume_path = ck;
    REQUIRE(tac_train(&rest, &ops_cpu, &d, &o) == 0, "%s", laic_last_error());
    CHECK(rest.first_epoch == 3 && !memcmp(rest.params_I, full.params_I, full.n_params * sizeof(float)) &&
              !memcmp(rest.params_T, full.params_T, full.n_params * sizeof(float)) &&
              !memcmp(rest.pred, full.pred, N * sizeof(int64_t)),
          "stopped + resumed == uninterrupted, bit for bit (BN running stats included)");
    // a batch larger than N has no full batch
    o.resume_path = NULL;
    o.ckpt_path = NULL;
    o.batch = (int)N + 1;
    TacTrainResult bad;
    CHECK(tac_train(&bad, &ops_cpu, &d, &o) != 0 && strstr(laic_last_error(), "tac_train.batch"),
          "batch > N: %s", laic_last_error());
    tac_train_result_free(&full);
    tac_train_result_free(&part);
    tac_train_result_free(&rest);
    free(X), free(T), free(y), free(nx), free(nt);
}

TEST(knn_l2_includes_self_and_orders_by_distance) {
    const int N = 50, d = 3, k = 4;
    float X[50 * 3];
    for (int i = 0; i < N; i++)
        for (int e = 0; e < d; e++) X[i * d + e] = (float)((i * 7 + e * 3) % 11) + 0.1f * (float)i;
    X[10 * 3 + 0] = X[11 * 3 + 0], X[10 * 3 + 1] = X[11 * 3 + 1], X[10 * 3 + 2] = X[11 * 3 + 2];   // a duplicate
    int64_t idx[50 * 4];
    float d2[50 * 4];
    REQUIRE(knn_l2_topk(idx, d2, X, N, d, k) == 0, "%s", laic_last_error());
    int ok = 1;
    for (int i = 0; i < N; i++) {
        // brute force in double
        double best[4] = {INFINITY, INFINITY, INFINITY, INFINITY};
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int e = 0; e < d; e++) s += pow((double)X[i * d + e] - X[j * d + e], 2);
            for (int q = 0; q < k; q++)
                if (s < best[q]) {
                    for (int r = k - 1; r > q; r--) best[r] = best[r - 1];
                    best[q] = s;
                    break;
                }
        }
        for (int q = 0; q < k; q++) ok &= fabs(d2[i * k + q] - best[q]) <= 1e-3 * (1 + best[q]);
        ok &= i == 10 || i == 11 ? (idx[i * k] == 10 && idx[i * k + 1] == 11) : idx[i * k] == i;
    }
    CHECK(ok, "self first (ties to the lower index), distances ascending and exact");
    CHECK(knn_l2_topk(idx, NULL, X, N, d, N + 1) != 0, "k > N refused");
}

// --- CUDA-graph logic on the CPU: a fake backend records (fn, ctx) at capture and runs fn at launch
static struct {
    int captures, launches, frees;
} fk;
typedef struct {
    void (*fn)(void *);
    void *ctx;
} FakeGraph;
static void *fake_capture(void (*fn)(void *ctx), void *ctx) {
    FakeGraph *g = malloc(sizeof *g);
    g->fn = fn, g->ctx = ctx;
    fk.captures++;
    return g;
}
static int fake_launch(void *graph) {
    FakeGraph *g = graph;
    g->fn(g->ctx);
    fk.launches++;
    return 0;
}
static void fake_free(void *graph) {
    free(graph);
    fk.frees++;
}

TEST(heads_graph_replay_equals_eager) {
    OpsBackend fake = ops_cpu;
    fake.graph_capture = fake_capture, fake.graph_launch = fake_launch, fake.graph_free = fake_free;
    SicToy t;
    sic_toy(&t);
    SicData d = {.X = t.X, .N = t.N, .E = t.E, .K = t.K, .nbr = t.nbr, .nn = t.nn, .S = t.S,
                 .M = t.M, .Xeval = t.X, .Ne = t.N, .yeval = t.y};
    SicOpts o;
    sic_opts_default(&o);
    o.epochs = 4, o.batch = 64, o.lr = 1e-2, o.xi_a = 5;
    SicResult a, g;
    REQUIRE(sic_train(&a, &ops_cpu, &d, &o) == 0, "%s", laic_last_error());
    memset(&fk, 0, sizeof fk);
    REQUIRE(sic_train(&g, &fake, &d, &o) == 0, "%s", laic_last_error());
    const size_t np = (size_t)t.K * t.E + t.K;
    CHECK(a.graph_captures == 0 && fk.captures == 1 && g.graph_captures == 1 && fk.launches == 3 && fk.frees == 1,
          "sic: one capture (epoch 2), 3 launches, freed (%d, %d, %d)", fk.captures, fk.launches, fk.frees);
    CHECK(!memcmp(a.params, g.params, np * sizeof(float)) && !memcmp(a.pred, g.pred, t.N * sizeof(int64_t)),
          "sic: replayed epochs == eager epochs, bit for bit (Adam step count kept)");
    // stop after 2 (captured in epoch 2), resume on the fake backend: eager again, then capture
    o.ckpt_path = test_path("sicg.ckpt");
    o.hparams = "g";
    o.stop_after = 2;
    SicResult p, r;
    REQUIRE(sic_train(&p, &fake, &d, &o) == 0 && p.stopped, "%s", laic_last_error());
    o.stop_after = 0, o.resume_path = o.ckpt_path;
    REQUIRE(sic_train(&r, &fake, &d, &o) == 0, "%s", laic_last_error());
    CHECK(!memcmp(a.params, r.params, np * sizeof(float)), "sic: stop + resume with graphs == eager");
    sic_result_free(&a), sic_result_free(&g), sic_result_free(&p), sic_result_free(&r);
    free(t.X), free(t.S), free(t.y), free(t.nbr);
    // TAC: BatchNorm's batch counter and Adam's step count survive the replays
    const size_t N = 400;
    const int E = 16, K = 4, kn = 5;
    int64_t *y = malloc(N * sizeof *y);
    float *X = planted(y, N, E, K, 1.0, 5, NULL), *T = malloc(N * E * sizeof *T);
    synth_normalize_rows(X, (int)N, E);
    for (size_t i = 0; i < N * E; i++) T[i] = X[i] * (1.0f + 0.01f * (float)(i % 7));
    synth_normalize_rows(T, (int)N, E);
    int64_t *nx = malloc(N * kn * sizeof *nx), *nt = malloc(N * kn * sizeof *nt);
    REQUIRE(knn_topk(nx, NULL, X, (int)N, E, kn) == 0 && knn_topk(nt, NULL, T, (int)N, E, kn) == 0, "knn");
    TacTrainData td = {.X = X, .T = T, .N = N, .E = E, .K = K, .nbr_x = nx, .nbr_t = nt, .kn = kn, .Xeval = X, .Ne = N};
    TacTrainOpts to;
    tac_train_opts_default(&to);
    to.epochs = 4, to.batch = 64;
    to.ckpt_path = test_path("tacg_eager.ckpt");
    TacTrainResult ta, tg;
    REQUIRE(tac_train(&ta, &ops_cpu, &td, &to) == 0, "%s", laic_last_error());
    memset(&fk, 0, sizeof fk);
    to.ckpt_path = test_path("tacg_graph.ckpt");
    REQUIRE(tac_train(&tg, &fake, &td, &to) == 0, "%s", laic_last_error());
    size_t n1, n2;
    char *c1 = test_read_file(test_path("tacg_eager.ckpt"), &n1), *c2 = test_read_file(test_path("tacg_graph.ckpt"), &n2);
    CHECK(fk.captures == 1 && fk.launches == 3 && c1 && c2 && n1 == n2 && !memcmp(c1, c2, n1) &&
              !memcmp(ta.pred, tg.pred, N * sizeof(int64_t)),
          "tac: one capture, 3 launches, final checkpoints (steps, BN counters, running stats) bitwise equal");
    free(c1), free(c2);
    tac_train_result_free(&ta), tac_train_result_free(&tg);
    free(X), free(T), free(y), free(nx), free(nt);
}
