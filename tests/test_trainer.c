/*
 * test_trainer.c — the prompt-learning loop (host/trainer.c), `laic train-centers` and the
 * [train] stage of `laic run`, on the tiny random-init CLIP (no Python, no fixtures needed):
 *  - the loss decreases and the prompts learn planted clusters (feature mode);
 *  - 3 epochs in one go == 1 epoch, stop, resume from the checkpoint, 2 more: vectors and
 *    momentum bit for bit (image mode: augmentation + image encoder + text backward);
 *  - other loss subsets run; mismatched checkpoints and bad pseudo-labels are refused;
 *  - the CLI: outputs, resume, one-line errors that leave no output behind.
 * Data comes from the project's RNG here.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clip.h"
#include "io/err.h"
#include "io/npy.h"
#include "ops.h"
#include "rng.h"
#include "test.h"
#include "trainer.h"

// --- fixtures built in memory ------------------------------------------------------------------

static int tiny_weights(ClipWeights *w) {
    ClipConfig c;
    return clip_config_preset(&c, "tiny") || clip_weights_init(w, &c, 7);
}

/* N planted points around K random unit centres in E dims (noise sigma), normalised;
 * y[i] = i % K. */
static void planted_features(float *X, int64_t *y, int N, int K, int E, double sigma, uint64_t seed) {
    Rng g;
    rng_init(&g, seed, 1);
    float *C = malloc((size_t)K * E * sizeof *C);
    for (int k = 0; k < K; k++)
        for (int e = 0; e < E; e++) C[k * E + e] = (float)rng_normal(&g);
    for (int i = 0; i < N; i++) {
        y[i] = i % K;
        double n2 = 0;
        for (int e = 0; e < E; e++) {
            float v = C[y[i] * E + e] + (float)(sigma * rng_normal(&g));
            X[(size_t)i * E + e] = v;
            n2 += (double)v * v;
        }
        for (int e = 0; e < E; e++) X[(size_t)i * E + e] /= (float)sqrt(n2);
    }
    free(C);
}

/* Synthetic RGB8 images: class k is a colour gradient with a class-specific hue plus noise. */
typedef struct {
    int n, h, w;
    uint8_t *pix;   // (n,h,w,3)
} Images;

static void make_images(Images *im, int n, int h, int w, int K) {
    im->n = n;
    im->h = h;
    im->w = w;
    im->pix = malloc((size_t)n * h * w * 3);
    Rng g;
    rng_init(&g, 99, 2);
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    int base = ((i % K) == c ? 200 : 40) + (x + y) * 40 / (h + w);
                    int v = base + (int)rng_below(&g, 30);
                    im->pix[(((size_t)i * h + y) * w + x) * 3 + c] = (uint8_t)(v > 255 ? 255 : v);
                }
}

static int get_image(void *ctx, size_t i, uint8_t **rgb, int *h, int *w) {
    Images *im = ctx;
    if ((int)i >= im->n) return laic_error("images: index %zu out of range", i);
    size_t sz = (size_t)im->h * im->w * 3;
    *rgb = malloc(sz);
    memcpy(*rgb, im->pix + i * sz, sz);
    *h = im->h;
    *w = im->w;
    return 0;
}

// --- library tests -------------------------------------------------------------------------------

TEST(trainer_loss_decreases_and_learns_planted_clusters) {
    ClipWeights w;
    REQUIRE(tiny_weights(&w) == 0, "%s", laic_last_error());
    const int N = 60, K = 3, E = w.cfg.embed_dim;
    float *X = malloc((size_t)N * E * sizeof *X);
    int64_t *y = malloc((size_t)N * sizeof *y);
    uint8_t *hq = malloc((size_t)N);
    planted_features(X, y, N, K, E, 0.3, 5);
    for (int i = 0; i < N; i++) hq[i] = 1;
    TrainData d = {.N = (size_t)N, .K = K, .yhat = y, .hq = hq, .X = X};
    TrainerOpts o;
    trainer_opts_default(&o);
    o.epochs = 8;
    o.batch = 16;
    o.sgd.lr = 0.5;   // a random tiny text tower needs a larger step than CoOp's 0.002
    o.sgd.warmup_epoch = 0;
    o.sgd.max_epoch = 8;
    loss_config_parse_terms(&o.loss, "gce");
    TrainResult r;
    int rc = trainer_run(&r, &w, NULL, &ops_cpu, &d, &o);
    REQUIRE(rc == 0, "trainer_run: %s", laic_last_error());
    printf("    loss per epoch:");
    for (int e = 0; e < o.epochs; e++) printf(" %.4f", r.epoch_loss[e]);
    printf("\n");
    CHECK(r.epoch_loss[o.epochs - 1] < 0.8 * r.epoch_loss[0], "loss %.4f -> %.4f must drop by 20%%",
          r.epoch_loss[0], r.epoch_loss[o.epochs - 1]);
    int64_t *pred = malloc((size_t)N * sizeof *pred);
    trainer_predict(pred, X, (size_t)N, r.W, K, E);
    int ok = 0;
    for (int i = 0; i < N; i++) ok += pred[i] == y[i];
    CHECK(ok >= N * 9 / 10, "prompt c must win on cluster c: %d of %d", ok, N);
    CHECK(r.st.epoch == o.epochs && r.st.step == (int64_t)o.epochs * 4, "epoch %d step %lld",
          r.st.epoch, (long long)r.st.step);
    trainer_result_free(&r);
    free(pred);
    free(X);
    free(y);
    free(hq);
    clip_weights_free(&w);
}

/* Image-mode run on the tiny model: 12 images, K=3, batch 5 (a partial last batch). */
static int image_run(TrainResult *r, const ClipWeights *w, ClipModel *img, Images *im,
                     const int64_t *y, const uint8_t *hq, int epochs, int stop_after,
                     const char *ckpt, const TrainState *resume, const char *loss) {
    TrainData d = {.N = (size_t)im->n, .K = 3, .yhat = y, .hq = hq, .get_image = get_image,
                   .img_ctx = im};
    TrainerOpts o;
    trainer_opts_default(&o);
    o.epochs = epochs;
    o.batch = 5;
    o.sgd.lr = 0.05;
    o.sgd.max_epoch = epochs;
    o.text_batch = 2;   // K = 3 in two chunks: exercises the re-forward before each backward
    o.seed = 77;
    o.ckpt_path = ckpt;
    o.resume = resume;
    o.stop_after = stop_after;
    if (loss && loss_config_parse_terms(&o.loss, loss)) return -1;
    return trainer_run(r, w, img, &ops_cpu, &d, &o);
}

TEST(trainer_resume_is_bit_exact) {
    ClipWeights w;
    REQUIRE(tiny_weights(&w) == 0, "%s", laic_last_error());
    ClipModel *img = clip_model_create(&w, &ops_cpu, 10);
    REQUIRE(img, "%s", laic_last_error());
    Images im;
    make_images(&im, 12, 40, 36, 3);
    int64_t y[12];
    uint8_t hq[12];
    for (int i = 0; i < 12; i++) y[i] = i % 3, hq[i] = i % 4 != 0;   // 3 samples in D_u
    TrainResult full, part, rest;
    const char *ck = test_path("resume.ckpt");
    REQUIRE(image_run(&full, &w, img, &im, y, hq, 3, 0, NULL, NULL, NULL) == 0, "full: %s",
            laic_last_error());
    REQUIRE(image_run(&part, &w, img, &im, y, hq, 3, 1, ck, NULL, NULL) == 0, "part: %s",
            laic_last_error());
    CHECK(part.stopped && part.st.epoch == 1, "stopped after epoch 1 (epoch %d)", part.st.epoch);
    TrainState s;
    REQUIRE(ckpt_load(ck, &s) == 0, "%s", laic_last_error());
    CHECK(s.epoch == 1 && s.step == 3 && s.have_mom, "checkpoint at epoch 1, step 3 (%d, %lld)",
          s.epoch, (long long)s.step);
    size_t n = (size_t)3 * 4 * w.cfg.text_width;
    CHECK(!memcmp(s.vec, part.st.vec, n * sizeof(float)), "checkpoint holds the epoch-1 vectors");
    REQUIRE(image_run(&rest, &w, img, &im, y, hq, 3, 0, NULL, &s, NULL) == 0, "resume: %s",
            laic_last_error());
    CHECK(rest.first_epoch == 1 && rest.st.epoch == 3 && rest.st.step == full.st.step,
          "resumed run ends at epoch 3 (%d), step %lld == %lld", rest.st.epoch,
          (long long)rest.st.step, (long long)full.st.step);
    CHECK(!memcmp(rest.st.vec, full.st.vec, n * sizeof(float)), "vectors bit for bit");
    CHECK(!memcmp(rest.st.mom, full.st.mom, n * sizeof(float)), "momentum bit for bit");
    CHECK(!memcmp(rest.W, full.W, (size_t)3 * w.cfg.embed_dim * sizeof(float)), "centres bit for bit");
    CHECK(!memcmp(rest.st.rng, full.st.rng, sizeof rest.st.rng[0]), "shuffle stream state");
    // training moved the vectors (a loop that did nothing would also "resume" exactly)
    float *v0 = malloc(n * sizeof *v0);
    train_init_vectors(v0, n, 77);
    double diff = 0;
    for (size_t i = 0; i < n; i++) diff = fmax(diff, fabs(v0[i] - full.st.vec[i]));
    CHECK(diff > 1e-4, "vectors moved from their init (max |dv| %.3g)", diff);
    free(v0);
    // a checkpoint of other settings is refused
    TrainData d = {.N = 12, .K = 4, .yhat = y, .hq = hq, .get_image = get_image, .img_ctx = &im};
    TrainerOpts o;
    trainer_opts_default(&o);
    o.seed = 77;
    o.resume = &s;
    TrainResult bad;
    CHECK(trainer_run(&bad, &w, img, &ops_cpu, &d, &o) == -1 &&
              strstr(laic_last_error(), "checkpoint holds K=3"), "K mismatch refused: %s",
          laic_last_error());
    train_state_free(&s);
    trainer_result_free(&full);
    trainer_result_free(&part);
    trainer_result_free(&rest);
    free(im.pix);
    clip_model_free(img);
    clip_weights_free(&w);
}

TEST(trainer_loss_subsets_and_bad_labels) {
    ClipWeights w;
    REQUIRE(tiny_weights(&w) == 0, "%s", laic_last_error());
    ClipModel *img = clip_model_create(&w, &ops_cpu, 10);
    REQUIRE(img, "%s", laic_last_error());
    Images im;
    make_images(&im, 8, 32, 32, 3);
    int64_t y[8];
    uint8_t hq[8];
    for (int i = 0; i < 8; i++) y[i] = i % 3, hq[i] = i % 2;
    const char *subsets[] = {"gce", "mse", "entropy", "gce,entropy", "mse,gce"};
    float *first = NULL;
    size_t n = (size_t)3 * 4 * w.cfg.text_width;
    int differ = 0;
    for (int s = 0; s < 5; s++) {
        TrainResult r;
        int rc = image_run(&r, &w, img, &im, y, hq, 1, 0, NULL, NULL, subsets[s]);
        CHECK(rc == 0, "loss=%s: %s", subsets[s], laic_last_error());
        if (rc) continue;
        int finite = 1;
        for (size_t i = 0; i < n; i++) finite &= isfinite(r.st.vec[i]);
        CHECK(finite && isfinite(r.epoch_loss[0]), "loss=%s gives finite vectors and loss", subsets[s]);
        if (!first) {
            first = malloc(n * sizeof *first);
            memcpy(first, r.st.vec, n * sizeof *first);
        } else {
            differ += memcmp(first, r.st.vec, n * sizeof *first) != 0;
        }
        trainer_result_free(&r);
    }
    CHECK(differ == 4, "each loss subset trains differently (%d of 4 differ from gce)", differ);
    free(first);
    y[3] = 5;   // hq[3] = 1: a pseudo-label outside [0,K)
    TrainResult r;
    CHECK(image_run(&r, &w, img, &im, y, hq, 1, 0, NULL, NULL, NULL) == -1 &&
              strstr(laic_last_error(), "pseudo-label 5 of sample 3"),
          "bad pseudo-label refused: %s", laic_last_error());
    free(im.pix);
    clip_model_free(img);
    clip_weights_free(&w);
}
