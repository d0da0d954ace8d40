/*
 * test_train.c — losses, SGD, schedule and checkpoints (host/train/train.c) against the PyTorch
 * goldens of scripts/make_train_fixtures.py, plus checkpoint round trip, corrupt files and
 * resume equality.
 *
 * Tolerances (why):
 *   loss values   atol 1e-10, rtol 1e-8: same float32 inputs, both sides in float64; only
 *                 summation order and libm differ (~1e-15 relative, amplified by scale 100).
 *   dL/dW         atol 1e-6 * max|ref|, rtol 1e-5: our float32 output of a double result.
 *   SGD params    atol 1e-7, rtol 1e-6: torch runs float32 with FMA; we mirror it with fmaf,
 *                 so in practice the results are bit-equal (the max diff is printed).
 *   lr            rtol 1e-15: both follow torch's recursion in double.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/err.h"
#include "io/npy.h"
#include "../test.h"
#include "train/train.h"

#define FX "tests/fixtures/train/"

static int load_f32(const char *name, Npy *a) {
    return npy_read_f32(name, a, -1, NULL);
}

// --- losses ------------------------------------------------------------------------------

TEST(train_loss_vs_torch) {
    Npy W, fw, fs, y, hq, vals, dWr, terms;
    REQUIRE(!load_f32(FX "loss_W.npy", &W), "%s", laic_last_error());
    REQUIRE(!load_f32(FX "loss_fw.npy", &fw), "%s", laic_last_error());
    REQUIRE(!load_f32(FX "loss_fs.npy", &fs), "%s", laic_last_error());
    REQUIRE(!npy_read(FX "loss_y.npy", &y) && y.dtype == NPY_I32, "loss_y");
    REQUIRE(!npy_read(FX "loss_hq.npy", &hq) && hq.dtype == NPY_U8, "loss_hq");
    REQUIRE(!npy_read(FX "loss_vals.npy", &vals) && vals.dtype == NPY_F64, "loss_vals");
    REQUIRE(!load_f32(FX "loss_dW.npy", &dWr), "%s", laic_last_error());
    REQUIRE(!npy_read(FX "loss_terms.npy", &terms) && terms.dtype == NPY_I32, "loss_terms");
    int K = (int)W.shape[0], E = (int)W.shape[1], B = (int)fw.shape[0];
    int nsub = (int)terms.count;
    REQUIRE(nsub == 7 && hq.shape[0] == 3 && vals.shape[0] == 21, "fixture layout");
    const int32_t *tm = terms.data;
    const double *rv = vals.data;
    float *dW = mallocCheck((size_t)K * E * sizeof(float));
    for (int m = 0; m < 3; m++)
        for (int s = 0; s < nsub; s++) {
            int idx = m * nsub + s;
            LossConfig cfg;
            loss_config_default(&cfg);
            cfg.use_gce = tm[s] & 1;
            cfg.use_mse = (tm[s] >> 1) & 1;
            cfg.use_entropy = (tm[s] >> 2) & 1;
            LossValue v;
            for (int i = 0; i < K * E; i++) dW[i] = 0.25f;   // += semantics: start non-zero
            REQUIRE(!train_loss(&v, dW, fw.data, fs.data, W.data, y.data,
                                (const uint8_t *)hq.data + (size_t)m * B, B, K, E, &cfg),
                    "%s", laic_last_error());
            for (int i = 0; i < K * E; i++) dW[i] -= 0.25f;
            double got[4] = {v.total, v.gce, v.mse, v.entropy};
            for (int t = 0; t < 4; t++) {
                double r = rv[idx * 4 + t];
                CHECK(fabs(got[t] - r) <= 1e-10 + 1e-8 * fabs(r),
                      "mask %d terms %d value %d: %.12g vs torch %.12g", m, tm[s], t, got[t], r);
            }
            const float *ref = (const float *)dWr.data + (size_t)idx * K * E;
            double mx = 0;
            for (int i = 0; i < K * E; i++) mx = fmax(mx, fabs(ref[i]));
            char what[64];
            snprintf(what, sizeof what, "dW mask %d terms %d", m, tm[s]);
            // The 0.25 round trip costs up to 2^-24 * 0.25 absolute; allow it.
            CHECK(test_allclose(dW, ref, (size_t)K * E, 1e-6 * mx + 3e-8, 1e-5, what), "%s",
                  what);
        }
    free(dW);
    Npy *all[] = {&W, &fw, &fs, &y, &hq, &vals, &dWr, &terms};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) npy_free(all[i]);
}

TEST(train_loss_bad_label) {
    float f[4] = {1, 0, 0, 1}, W[4] = {1, 0, 0, 1}, dW[4] = {0};
    int32_t y[2] = {0, 2};
    uint8_t hq[2] = {1, 1};
    LossConfig c;
    loss_config_default(&c);
    LossValue v;
    CHECK(train_loss(&v, dW, f, f, W, y, hq, 2, 2, 2, &c) == -1, "label 2 of K=2 accepted");
    CHECK(strstr(laic_last_error(), "pseudo-label 2") != NULL, "message: %s", laic_last_error());
}

TEST(train_loss_terms_parse) {
    LossConfig c;
    loss_config_default(&c);
    CHECK(!loss_config_parse_terms(&c, "mse, entropy") && !c.use_gce && c.use_mse &&
              c.use_entropy,
          "mse,entropy");
    CHECK(loss_config_parse_terms(&c, "gce,foo") == -1 && strstr(laic_last_error(), "'foo'"),
          "unknown term: %s", laic_last_error());
    CHECK(loss_config_parse_terms(&c, "") == -1, "empty list accepted");
}

TEST(train_l2norm_backward_vs_torch) {
    Npy u, dw, du;
    REQUIRE(!load_f32(FX "l2n_u.npy", &u) && !load_f32(FX "l2n_dw.npy", &dw) &&
                !load_f32(FX "l2n_du.npy", &du),
            "%s", laic_last_error());
    int K = (int)u.shape[0], E = (int)u.shape[1];
    float *got = callocCheck((size_t)K * E, sizeof(float));
    l2norm_rows_backward(got, dw.data, u.data, K, E);
    CHECK(test_allclose(got, du.data, (size_t)K * E, 1e-6, 1e-5, "l2norm backward"), "du");
    free(got);
    npy_free(&u);
    npy_free(&dw);
    npy_free(&du);
}

// --- schedule and SGD --------------------------------------------------------------------

static void check_lr(const char *path, int T) {
    Npy a;
    REQUIRE(!npy_read(path, &a) && a.dtype == NPY_F64, "%s", path);
    SgdConfig c;
    sgd_config_default(&c);
    c.max_epoch = T;
    const double *r = a.data;
    for (size_t e = 0; e < a.count; e++) {
        double got = train_lr(&c, (int)e);
        CHECK(fabs(got - r[e]) <= 1e-15 * fabs(r[e]) + 1e-20, "T=%d epoch %zu: lr %.17g vs torch %.17g",
              T, e, got, r[e]);
    }
    npy_free(&a);
}

TEST(train_lr_schedule_vs_torch) {
    check_lr(FX "lr_T20.npy", 20);
    check_lr(FX "lr_T4.npy", 4);
}

TEST(train_sgd_vs_torch) {
    Npy p0, gr, pr;
    REQUIRE(!load_f32(FX "sgd_p0.npy", &p0) && !load_f32(FX "sgd_grads.npy", &gr) &&
                !load_f32(FX "sgd_p.npy", &pr),
            "%s", laic_last_error());
    size_t n = p0.count, steps = gr.shape[0];
    SgdConfig c;
    sgd_config_default(&c);
    c.lr = 0.5;   // large, so a wrong update cannot hide below float rounding
    c.max_epoch = 3;
    const int spe = 3;
    float *p = mallocCheck(n * sizeof(float)), *buf = callocCheck(n, sizeof(float));
    memcpy(p, p0.data, n * sizeof(float));
    int have = 0, bitwise = 1;
    for (size_t s = 0; s < steps; s++) {
        double lr = train_lr(&c, (int)(s / spe));
        sgd_step(p, buf, &have, (const float *)gr.data + s * n, n, lr, c.momentum,
                 c.weight_decay);
        const float *ref = (const float *)pr.data + s * n;
        char what[32];
        snprintf(what, sizeof what, "SGD step %zu", s);
        CHECK(test_allclose(p, ref, n, 1e-7, 1e-6, what), "%s", what);
        bitwise &= !memcmp(p, ref, n * sizeof(float));
    }
    printf("    SGD vs torch bit-equal over %zu steps: %s\n", steps, bitwise ? "yes" : "no");
    free(p);
    free(buf);
    npy_free(&p0);
    npy_free(&gr);
    npy_free(&pr);
}

TEST(train_init_vectors_stats) {
    size_t n = 4 * 16 * 512;
    float *a = mallocCheck(n * sizeof(float)), *b = mallocCheck(n * sizeof(float));
    train_init_vectors(a, n, 42);
    train_init_vectors(b, n, 42);
    CHECK(!memcmp(a, b, n * sizeof(float)), "same seed, different vectors");
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) s += a[i], s2 += (double)a[i] * a[i];
    double mean = s / n, sd = sqrt(s2 / n - mean * mean);
    // n = 32768 draws: the sample sd of N(0, 0.02^2) is within 2% (5 sigma) of 0.02
    CHECK(fabs(mean) < 5 * 0.02 / sqrt((double)n) && fabs(sd - 0.02) < 0.02 * 0.02,
          "mean %g sd %g", mean, sd);
    train_init_vectors(b, n, 43);
    CHECK(memcmp(a, b, n * sizeof(float)) != 0, "seed ignored");
    free(a);
    free(b);
}

// --- checkpoint --------------------------------------------------------------------------

static void fill_state(TrainState *s) {
    train_state_alloc(s, 3, 4, 8);
    train_init_vectors(s->vec, 96, 5);
    train_init_vectors(s->mom, 96, 6);
    s->epoch = 7;
    s->step = 5000000000LL;   // needs the high word
    s->seed = 0x123456789abcdef0ull;
    s->have_mom = 1;
    s->n_rng = 2;
    rng_init(&s->rng[0], 1, 2);
    rng_init(&s->rng[1], 3, 4);
}

TEST(train_ckpt_roundtrip) {
    TrainState a, b;
    fill_state(&a);
    const char *path = test_path("rt.ckpt");
    REQUIRE(!ckpt_save(path, &a), "%s", laic_last_error());
    REQUIRE(!ckpt_load(path, &b), "%s", laic_last_error());
    CHECK(b.K == 3 && b.M == 4 && b.D == 8 && b.epoch == 7 && b.step == a.step &&
              b.seed == a.seed && b.have_mom == 1 && b.n_rng == 2,
          "header fields");
    CHECK(!memcmp(a.vec, b.vec, 96 * sizeof(float)) && !memcmp(a.mom, b.mom, 96 * sizeof(float)),
          "tensors differ");
    CHECK(!memcmp(a.rng, b.rng, 2 * sizeof(Rng)), "RNG states differ");
    train_state_free(&a);
    train_state_free(&b);
}

static int truncate_file_to(const char *path, long n) { return truncate(path, (off_t)n); }

// Writes a valid checkpoint, then pokes the header or truncates it.
static void check_corrupt(const char *name, int word, int32_t value, long truncate,
                          const char *msg) {
    TrainState a, b;
    fill_state(&a);
    char path[4096];
    snprintf(path, sizeof path, "%s", test_path(name));
    REQUIRE(!ckpt_save(path, &a), "%s", laic_last_error());
    train_state_free(&a);
    FILE *fp = fopen(path, "r+b");
    REQUIRE(fp, "reopen");
    if (word >= 0) {
        fseek(fp, word * 4L, SEEK_SET);
        fwrite(&value, 4, 1, fp);
    }
    fclose(fp);
    if (truncate >= 0) REQUIRE(!truncate_file_to(path, truncate), "truncate");
    CHECK(ckpt_load(path, &b) == -1, "%s: corrupt file accepted", name);
    const char *e = laic_last_error();
    CHECK(strstr(e, path) && strstr(e, msg) && !strchr(e, '\n'), "%s: message '%s'", name, e);
    CHECK(b.vec == NULL, "%s: state left allocated", name);
}

TEST(train_ckpt_corrupt) {
    check_corrupt("magic.ckpt", 0, 12345, -1, "bad magic");
    check_corrupt("version.ckpt", 1, 99, -1, "version 99");
    check_corrupt("k.ckpt", 2, 0, -1, "corrupt header");
    check_corrupt("size.ckpt", 2, 4, -1, "needs");   // K says 4, file holds 3
    check_corrupt("trunc.ckpt", -1, 0, 1024 + 100, "needs");
    check_corrupt("short.ckpt", -1, 0, 10, "header");
    TrainState b;
    CHECK(ckpt_load(test_path("missing.ckpt"), &b) == -1 &&
              strstr(laic_last_error(), "cannot open"),
          "missing file: %s", laic_last_error());
}

TEST(train_ckpt_atomic_no_leftover) {
    TrainState a;
    fill_state(&a);
    // A directory that does not exist: the save fails and leaves nothing behind.
    char path[4096];
    snprintf(path, sizeof path, "%s/nodir/x.ckpt", test_tmpdir());
    CHECK(ckpt_save(path, &a) == -1, "save into a missing directory succeeded");
    CHECK(!file_exists(path), "output left behind");
    train_state_free(&a);
}

// --- resume equality ---------------------------------------------------------------------
/* A toy training loop with the real pieces: a stand-in "text encoder" W_k = normalise(
 * base_k + sum_m v_km), the loss, its backward, SGD and the schedule, minibatches shuffled by
 * an Rng kept in the checkpoint. Interrupting after any epoch and resuming from the
 * checkpoint must end with the same vectors bit for bit. */

enum { RK = 4, RM = 2, RD = 8, RN = 22, RB = 6 };

typedef struct {
    float base[RK * RD], fw[RN * RD], fs[RN * RD];
    int32_t y[RN];
    uint8_t hq[RN];
} ToyData;

static void toy_data(ToyData *t) {
    Rng r;
    rng_init(&r, 99, 0);
    for (int i = 0; i < RK * RD; i++) t->base[i] = (float)rng_normal(&r);
    for (int i = 0; i < RN; i++) {
        double nw = 0, ns = 0;
        int c = (int)rng_below(&r, RK);
        for (int e = 0; e < RD; e++) {
            t->fw[i * RD + e] = t->base[c * RD + e] + 0.5f * (float)rng_normal(&r);
            t->fs[i * RD + e] = t->fw[i * RD + e] + 0.3f * (float)rng_normal(&r);
            nw += (double)t->fw[i * RD + e] * t->fw[i * RD + e];
            ns += (double)t->fs[i * RD + e] * t->fs[i * RD + e];
        }
        for (int e = 0; e < RD; e++) {
            t->fw[i * RD + e] /= (float)sqrt(nw);
            t->fs[i * RD + e] /= (float)sqrt(ns);
        }
        t->y[i] = c;
        t->hq[i] = (uint8_t)(rng_below(&r, 2));
    }
}

static void toy_epoch(TrainState *s, const ToyData *t, const SgdConfig *sc) {
    int order[RN];
    for (int i = 0; i < RN; i++) order[i] = i;
    for (int i = RN - 1; i > 0; i--) {   // Fisher-Yates from the saved stream
        int j = (int)rng_below(&s->rng[0], (uint64_t)i + 1), tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    double lr = train_lr(sc, s->epoch);
    LossConfig lc;
    loss_config_default(&lc);
    for (int b0 = 0; b0 < RN; b0 += RB) {
        int nb = RN - b0 < RB ? RN - b0 : RB;
        float fw[RB * RD], fs[RB * RD], u[RK * RD], W[RK * RD], dW[RK * RD] = {0},
              du[RK * RD] = {0}, g[RK * RM * RD];
        int32_t y[RB];
        uint8_t hq[RB];
        for (int i = 0; i < nb; i++) {
            memcpy(fw + i * RD, t->fw + order[b0 + i] * RD, sizeof(float) * RD);
            memcpy(fs + i * RD, t->fs + order[b0 + i] * RD, sizeof(float) * RD);
            y[i] = t->y[order[b0 + i]];
            hq[i] = t->hq[order[b0 + i]];
        }
        for (int k = 0; k < RK; k++) {
            double n2 = 0;
            for (int e = 0; e < RD; e++) {
                float a = t->base[k * RD + e];
                for (int m = 0; m < RM; m++) a += s->vec[(k * RM + m) * RD + e];
                u[k * RD + e] = a;
                n2 += (double)a * a;
            }
            for (int e = 0; e < RD; e++) W[k * RD + e] = u[k * RD + e] / (float)sqrt(n2);
        }
        LossValue v;
        LAIC_ASSERT(!train_loss(&v, dW, fw, fs, W, y, hq, nb, RK, RD, &lc));
        l2norm_rows_backward(du, dW, u, RK, RD);
        for (int k = 0; k < RK; k++)
            for (int m = 0; m < RM; m++)
                memcpy(g + (k * RM + m) * RD, du + k * RD, sizeof(float) * RD);
        sgd_step(s->vec, s->mom, &s->have_mom, g, RK * RM * RD, lr, sc->momentum,
                 sc->weight_decay);
        s->step++;
    }
    s->epoch++;
}

static void toy_start(TrainState *s) {
    train_state_alloc(s, RK, RM, RD);
    s->seed = 2024;
    train_init_vectors(s->vec, RK * RM * RD, s->seed);
    s->n_rng = 1;
    rng_init(&s->rng[0], s->seed, 1);
}

TEST(train_resume_bit_exact) {
    ToyData t;
    toy_data(&t);
    SgdConfig sc;
    sgd_config_default(&sc);
    sc.lr = 0.5;
    sc.max_epoch = 6;
    TrainState full, part, resumed;
    toy_start(&full);
    for (int e = 0; e < sc.max_epoch; e++) toy_epoch(&full, &t, &sc);
    float v0[RK * RM * RD];
    train_init_vectors(v0, RK * RM * RD, 2024);
    CHECK(memcmp(v0, full.vec, sizeof v0) != 0, "training did not move the vectors");
    for (int stop = 1; stop < sc.max_epoch; stop += 2) {
        toy_start(&part);
        for (int e = 0; e < stop; e++) toy_epoch(&part, &t, &sc);
        const char *path = test_path("resume.ckpt");
        REQUIRE(!ckpt_save(path, &part), "%s", laic_last_error());
        train_state_free(&part);
        REQUIRE(!ckpt_load(path, &resumed), "%s", laic_last_error());
        while (resumed.epoch < sc.max_epoch) toy_epoch(&resumed, &t, &sc);
        CHECK(resumed.step == full.step, "steps %lld vs %lld", (long long)resumed.step,
              (long long)full.step);
        CHECK(!memcmp(resumed.vec, full.vec, sizeof(float) * RK * RM * RD) &&
                  !memcmp(resumed.mom, full.mom, sizeof(float) * RK * RM * RD),
              "resume after epoch %d differs from the uninterrupted run", stop);
        train_state_free(&resumed);
    }
    train_state_free(&full);
}
