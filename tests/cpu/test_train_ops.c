/*
 * test_train_ops.c — the prompt-learning entries of ops_cpu (host/cpu/train_ops.c) against
 * direct calls of their references: train_loss and sgd_step (host/train/train.c), augment_view +
 * image_normalize (host/model/augment.c, host/model/image.c). The references themselves are checked
 * against PyTorch in test_train.c / test_augment.c; here we check that the op table gives
 * them the op's shape: the weak/strong split of F, the term order and mask bits, dW
 * overwritten (not accumulated), have_buf by value and lr read through a pointer, the view row
 * layout (weak rows 0..b-1, strong rows b..2b-1 of sample index[j]) and strides.
 *
 * Tolerances: none except the finite-difference check. Each op calls the same reference code
 * on the same inputs, so results must be bitwise equal. The finite-difference check of dW
 * (central differences of terms[0] in double, h = 1e-3 on float W, scale 10 to keep the
 * curvature small) allows 1e-4 of the largest entry (seen: 4e-6): O(h²) truncation plus the
 * float32 rounding of dW.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/augment.h"
#include "model/image.h"
#include "io/err.h"
#include "ops.h"
#include "rng.h"
#include "../test.h"
#include "../synth.h"
#include "train/train.h"

static const OpsBackend *O = &ops_cpu;

// One loss problem: F (2b,E) weak then strong rows, W (K,E), labels, hq with n_hq ones.
typedef struct {
    int b, K, E;
    float *F, *W;
    int32_t *y;
    uint8_t *hq;
} LossCase;

static void loss_case(LossCase *c, Rng *r, int b, int K, int E, int n_hq) {
    c->b = b, c->K = K, c->E = E;
    c->F = synth_randn(r, (size_t)2 * b * E, 1.0);
    c->W = synth_randn(r, (size_t)K * E, 1.0);
    synth_normalize_rows(c->F, 2 * b, E);
    synth_normalize_rows(c->W, K, E);
    c->y = mallocCheck((size_t)(b ? b : 1) * sizeof(int32_t));
    c->hq = mallocCheck((size_t)(b ? b : 1));
    for (int i = 0; i < b; i++) {
        c->y[i] = (int32_t)rng_below(r, (uint64_t)K);
        c->hq[i] = i < n_hq;
    }
}

static void loss_case_free(LossCase *c) {
    free(c->F);
    free(c->W);
    free(c->y);
    free(c->hq);
}

static int bits_equal(const void *a, const void *b, size_t bytes) { return !memcmp(a, b, bytes); }

// The op with a dW full of garbage vs train_loss(fw = F[0:b], fs = F[b:2b]) into zeros.
static void check_loss_case(const LossCase *c, int mask, double scale, const char *what) {
    const size_t nW = (size_t)c->K * c->E;
    LossConfig cfg;
    loss_config_default(&cfg);
    cfg.use_gce = mask & 1, cfg.use_mse = (mask >> 1) & 1, cfg.use_entropy = (mask >> 2) & 1;
    cfg.scale = scale;
    LossValue v;
    float *dW_ref = calloc(nW ? nW : 1, sizeof(float));
    float *dW = mallocCheck((nW ? nW : 1) * sizeof(float));
    for (size_t i = 0; i < nW; i++) dW[i] = 123.0f;   // must be overwritten, not added to
    int rc = train_loss(&v, dW_ref, c->F, c->F + (size_t)c->b * c->E, c->W, c->y, c->hq, c->b,
                        c->K, c->E, &cfg);
    CHECK(rc == 0, "%s: train_loss failed: %s", what, laic_last_error());
    double t[6] = {-1, -1, -1, -1, -1, -1};
    O->prompt_loss_forward_backward(t, dW, c->F, c->W, c->y, c->hq, c->b, c->K, c->E, mask,
                                    cfg.q, cfg.alpha, cfg.beta, scale);
    const double want[6] = {v.total, v.gce, v.mse, v.entropy, v.n_hq, v.n_u};
    CHECK(bits_equal(t, want, sizeof t),
          "%s mask %d: terms {%.17g %.17g %.17g %.17g %g %g} want {%.17g %.17g %.17g %.17g %g %g}",
          what, mask, t[0], t[1], t[2], t[3], t[4], t[5], want[0], want[1], want[2], want[3],
          want[4], want[5]);
    CHECK(bits_equal(dW, dW_ref, nW * sizeof(float)), "%s mask %d: dW differs from train_loss",
          what, mask);
    free(dW_ref);
    free(dW);
}

TEST(train_ops_cpu_loss_matches_train_loss) {
    Rng r;
    rng_init(&r, 7, 1);
    LossCase c;
    loss_case(&c, &r, 6, 5, 16, 3);   // mixed batch
    for (int mask = 1; mask < 8; mask++) check_loss_case(&c, mask, 100.0, "mixed");
    // The split matters: swapping weak and strong rows must change the loss (else the test
    // above could not tell a wrong split).
    LossConfig cfg;
    loss_config_default(&cfg);
    LossValue v;
    train_loss(&v, NULL, c.F + (size_t)c.b * c.E, c.F, c.W, c.y, c.hq, c.b, c.K, c.E, &cfg);
    double t[6];
    float *dW = mallocCheck((size_t)c.K * c.E * sizeof(float));
    O->prompt_loss_forward_backward(t, dW, c.F, c.W, c.y, c.hq, c.b, c.K, c.E, 7, cfg.q,
                                    cfg.alpha, cfg.beta, cfg.scale);
    CHECK(t[0] != v.total, "swapped views give the same loss %.17g", t[0]);
    CHECK(t[4] == 3 && t[5] == 3, "n_hq %g n_u %g, want 3 3", t[4], t[5]);
    free(dW);
    loss_case_free(&c);

    loss_case(&c, &r, 5, 4, 16, 0);   // no high-quality rows: GCE 0, MSE on all
    for (int mask = 1; mask < 8; mask++) check_loss_case(&c, mask, 100.0, "no-hq");
    loss_case_free(&c);
    loss_case(&c, &r, 5, 4, 16, 5);   // no unlabeled rows: MSE 0, GCE on all
    for (int mask = 1; mask < 8; mask++) check_loss_case(&c, mask, 100.0, "no-unlabeled");
    loss_case_free(&c);
    loss_case(&c, &r, 1, 1, 8, 1);    // one sample, one class
    for (int mask = 1; mask < 8; mask++) check_loss_case(&c, mask, 100.0, "b=1,K=1");
    loss_case_free(&c);
}

// Independent of train_loss's own derivation: dW from the op against central differences of
// the op's total (terms[0]) in W. The weak view is a detached target, so for GCE and entropy
// (strong view only) the differences are dW itself; for MSE they also see the weak path, and
// since (ps - pw)² is symmetric, that path is the op's dW with the views swapped:
//   d/dW MSE(F) = dW(F) + dW(F with weak and strong rows swapped).
TEST(train_ops_cpu_loss_gradient_finite_differences) {
    Rng r;
    rng_init(&r, 11, 2);
    LossCase c;
    loss_case(&c, &r, 6, 4, 8, 3);
    const size_t nW = (size_t)c.K * c.E, half = (size_t)c.b * c.E;
    const double scale = 10.0;
    float *dW = mallocCheck(nW * sizeof(float)), *dWs = mallocCheck(nW * sizeof(float));
    float *scratch = mallocCheck(nW * sizeof(float));
    float *Fs = mallocCheck(2 * half * sizeof(float));   // views swapped
    memcpy(Fs, c.F + half, half * sizeof(float));
    memcpy(Fs + half, c.F, half * sizeof(float));
    const int masks[4] = {1, 4, 5, 2};
    for (int m = 0; m < 4; m++) {
        const int mask = masks[m];
        double t[6];
        O->prompt_loss_forward_backward(t, dW, c.F, c.W, c.y, c.hq, c.b, c.K, c.E, mask, 0.7,
                                        1.0, 1.0, scale);
        if (mask == 2) {
            O->prompt_loss_forward_backward(t, dWs, Fs, c.W, c.y, c.hq, c.b, c.K, c.E, mask, 0.7,
                                            1.0, 1.0, scale);
            for (size_t k = 0; k < nW; k++) dW[k] += dWs[k];
        }
        double max_err = 0.0, max_ref = 0.0;
        for (size_t k = 0; k < nW; k++) {
            const float w0 = c.W[k];
            c.W[k] = w0 + 1e-3f;
            const double hp = (double)c.W[k] - w0;
            O->prompt_loss_forward_backward(t, scratch, c.F, c.W, c.y, c.hq, c.b, c.K, c.E, mask,
                                            0.7, 1.0, 1.0, scale);
            const double lp = t[0];
            c.W[k] = w0 - 1e-3f;
            const double hm = w0 - (double)c.W[k];
            O->prompt_loss_forward_backward(t, scratch, c.F, c.W, c.y, c.hq, c.b, c.K, c.E, mask,
                                            0.7, 1.0, 1.0, scale);
            const double lm = t[0];
            c.W[k] = w0;
            const double fd = (lp - lm) / (hp + hm);
            max_err = fmax(max_err, fabs(fd - dW[k]));
            max_ref = fmax(max_ref, fabs(fd));
        }
        printf("    mask %d: max |fd - dW| %.3g of max |fd| %.3g\n", mask, max_err, max_ref);
        CHECK(max_ref > 1e-3, "mask %d: gradient is all zero", mask);
        CHECK(max_err <= 1e-4 * max_ref, "mask %d: dW off by %.3g (max %.3g)", mask, max_err,
              max_ref);
    }
    free(dW);
    free(dWs);
    free(scratch);
    free(Fs);
    loss_case_free(&c);
}

TEST(train_ops_cpu_loss_empty_batch) {
    // b = 0: nothing to learn from. dW must still be overwritten with zeros.
    Rng r;
    rng_init(&r, 3, 3);
    float *W = synth_randn(&r, 4 * 8, 1.0), dW[32], F[1] = {0};
    int32_t y[1] = {0};
    uint8_t hq[1] = {0};
    for (int i = 0; i < 32; i++) dW[i] = 5.0f;
    double t[6] = {-1, -1, -1, -1, -1, -1};
    O->prompt_loss_forward_backward(t, dW, F, W, y, hq, 0, 4, 8, 7, 0.7, 1.0, 1.0, 100.0);
    int zero = 1;
    for (int i = 0; i < 32; i++) zero &= dW[i] == 0.0f;
    CHECK(zero, "dW not zeroed for an empty batch");
    CHECK(t[0] == 0.0 && t[1] == 0.0 && t[2] == 0.0 && t[3] == 0.0 && t[4] == 0 && t[5] == 0,
          "terms {%g %g %g %g %g %g}", t[0], t[1], t[2], t[3], t[4], t[5]);
    free(W);
}

TEST(train_ops_cpu_sgd_matches_sgd_step) {
    Rng r;
    rng_init(&r, 5, 4);
    const size_t n = 1000;
    float *p0 = synth_randn(&r, n, 0.02), *g = synth_randn(&r, n, 0.1),
          *b0 = synth_randn(&r, n, 0.05);
    float *p1 = mallocCheck(n * sizeof(float)), *p2 = mallocCheck(n * sizeof(float));
    float *b1 = mallocCheck(n * sizeof(float)), *b2 = mallocCheck(n * sizeof(float));
    const double lr = 0.002;
    const double wds[2] = {0.0, 5e-4}, mos[2] = {0.0, 0.9};
    for (int w = 0; w < 2; w++)
        for (int m = 0; m < 2; m++)
            for (int hb = 0; hb < 2; hb++) {
                memcpy(p1, p0, n * sizeof(float));
                memcpy(p2, p0, n * sizeof(float));
                memcpy(b1, b0, n * sizeof(float));
                memcpy(b2, b0, n * sizeof(float));
                int have = hb;
                sgd_step(p1, b1, &have, g, n, lr, mos[m], wds[w]);
                O->sgd_forward(p2, b2, g, &lr, n, mos[m], wds[w], hb);
                CHECK(bits_equal(p1, p2, n * sizeof(float)) && bits_equal(b1, b2, n * sizeof(float)),
                      "sgd wd %g momentum %g have_buf %d: differs from sgd_step", wds[w], mos[m], hb);
                // The step did something (else equality proves nothing).
                CHECK(!bits_equal(p2, p0, n * sizeof(float)), "sgd left p unchanged");
            }
    // have_buf matters when momentum is on: 0 restarts the buffer at d, 1 continues it.
    double lr2 = 0.01;
    memcpy(p1, p0, n * sizeof(float));
    memcpy(p2, p0, n * sizeof(float));
    memcpy(b1, b0, n * sizeof(float));
    memcpy(b2, b0, n * sizeof(float));
    O->sgd_forward(p1, b1, g, &lr2, n, 0.9, 0.0, 0);
    O->sgd_forward(p2, b2, g, &lr2, n, 0.9, 0.0, 1);
    CHECK(!bits_equal(p1, p2, n * sizeof(float)), "have_buf 0 and 1 gave the same step");
    // With have_buf 0 the buffer becomes g exactly (no weight decay): buf = d = g.
    CHECK(bits_equal(b1, g, n * sizeof(float)), "have_buf 0: buffer is not g");
    free(p0), free(g), free(b0), free(p1), free(p2), free(b1), free(b2);
}

// Smooth pattern plus noise, so crops and RandAugment ops see structure.
static uint8_t *rand_image(Rng *r, int h, int w) {
    uint8_t *im = mallocCheck((size_t)h * w * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                int v = 40 + c * 30 + ((x * 3 + y * 5 + c * 11) % 97) + (int)rng_below(r, 30);
                im[((size_t)y * w + x) * 3 + c] = (uint8_t)(v > 255 ? 255 : v);
            }
    return im;
}

TEST(train_ops_cpu_views_match_augment_view) {
    Rng r;
    rng_init(&r, 9, 5);
    enum { B = 3, S = 32 };
    const int H[B] = {40, 57, 32}, W[B] = {48, 33, 70};
    const size_t index[B] = {17, 4, 123456};
    const uint8_t *imgs[B];
    uint8_t *own[B];
    for (int i = 0; i < B; i++) imgs[i] = own[i] = rand_image(&r, H[i], W[i]);
    const size_t plane = (size_t)3 * S * S;
    float *pix = mallocCheck(2 * B * plane * sizeof(float)), *ref = mallocCheck(plane * sizeof(float));
    uint8_t *crop = mallocCheck((size_t)S * S * 3);
    const uint64_t seed = 42, epoch = 3;
    REQUIRE(O->train_views_forward(pix, imgs, H, W, index, B, S, seed, epoch) == 0, "%s",
            laic_last_error());
    for (int j = 0; j < 2 * B; j++) {
        const int i = j % B, strong = j >= B;
        augment_view(crop, imgs[i], H[i], W[i], S, strong, seed, epoch, index[i]);
        image_normalize(ref, crop, S);
        CHECK(bits_equal(pix + j * plane, ref, plane * sizeof(float)),
              "view row %d (sample %d, %s) differs from augment_view", j, i,
              strong ? "strong" : "weak");
    }
    // Weak and strong rows of one sample differ (else a swapped layout could pass).
    CHECK(!bits_equal(pix, pix + B * plane, plane * sizeof(float)), "weak == strong view");
    // b = 0 is a no-op that succeeds.
    CHECK(O->train_views_forward(pix, imgs, H, W, index, 0, S, seed, epoch) == 0, "b=0 failed");
    for (int i = 0; i < B; i++) free(own[i]);
    free(pix), free(ref), free(crop);
}

TEST(train_ops_cpu_strided_copy) {
    enum { ROWS = 5, LEN = 7, SS = 11, DS = 9 };
    float src[ROWS * SS], dst[ROWS * DS];
    for (int i = 0; i < ROWS * SS; i++) src[i] = (float)i + 0.5f;
    for (int i = 0; i < ROWS * DS; i++) dst[i] = -1.0f;
    O->strided_copy(dst, DS, src, SS, ROWS, LEN);
    int ok = 1;
    for (int r = 0; r < ROWS; r++)
        for (int e = 0; e < DS; e++) {
            float want = e < LEN ? src[r * SS + e] : -1.0f;   // the gap is left alone
            ok &= dst[r * DS + e] == want;
        }
    CHECK(ok, "strided_copy wrote the wrong elements");
    O->strided_copy(dst, DS, src + 1, SS, 0, LEN);   // rows = 0: nothing
    CHECK(dst[0] == src[0], "rows=0 copied something");
    CHECK(O->graph_capture == NULL && O->graph_launch == NULL && O->graph_free == NULL,
          "ops_cpu must not claim CUDA graphs");
}
