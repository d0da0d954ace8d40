/*
 * test_trainer_gpu.c — the whole prompt-learning trainer (host/train/trainer.c) on CUDA against the
 * CPU, on the tiny random-init CLIP: 2 epochs, 13 samples in batches of 5 (steps of 5, 5, 3, so
 * both batch sizes get a graph), K = 3 in text chunks of 2, image chunks of 4 views.
 * Built into build/test_gpu by `make test-gpu`; exits 77 ("waived") without a device.
 *
 * Checks, and tolerances with their reasons:
 *  - CUDA vs CPU, feature and image mode: final vectors within 1e-2 scale-aware
 *    (max |cuda-cpu| / max |cpu|), centres within 3e-2, epoch-2 loss within 1e-2 (relative,
 *    floor 1). Every op agrees to ~1e-6..1e-5 (the op tests), but 6 SGD steps at lr 0.05 feed
 *    each step's rounding into the next, and this run amplifies it: measured on the CPU
 *    trainer (this fixture, weights and features scaled by 1 + eps N(0,1)), feature mode moves
 *    by vectors 2.8e-4 / 2.9e-3, centres 9.5e-4 / 1.0e-2, loss 1.6e-4 / 1.8e-3 for eps = 1e-6 /
 *    1e-5 (image mode: 10x less). So 2e-3 would fail a correct GPU whose ops differ by a few
 *    1e-6. The tolerances still fail a wrong step: the vectors move from |v| ~0.05 to ~2..6
 *    (the update is the whole value), and a 2% change of β alone moves them by 5e-2..1e-1.
 *  - graph on vs off on CUDA: bitwise (a graph replays the same kernels with the same inputs).
 *  - two CUDA runs: bitwise (the kernels are deterministic: no float atomics).
 *  - stop after epoch 1 + resume on CUDA == uninterrupted CUDA run, bitwise.
 * Status: compiled, never run (no GPU where it was written).
 */
#include "../test.h"
#include "../synth.h"

#ifdef LAIC_CUDA

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/clip.h"
#include "io/err.h"
#include "ops.h"
#include "rng.h"
#include "train/trainer.h"
#include "../../kernels/ops_cuda.h"

#include "gpu_test.h"

// class-tinted images (synth_train_fix_init(.., 1)) so the loss has something to learn
enum { NS = SYNTH_TRAIN_N, KP = SYNTH_TRAIN_K };

static double rel(const float *a, const float *b, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs((double)a[i] - b[i]));
        mr = fmax(mr, fabs((double)b[i]));
    }
    return mr > 0 ? md / mr : md;
}

static int bitwise(const TrainResult *a, const TrainResult *b, const char *what) {
    size_t nv = (size_t)a->st.K * a->st.M * a->st.D;
    int ok = CHECK(!memcmp(a->st.vec, b->st.vec, nv * sizeof(float)), "%s: vectors bitwise", what);
    ok &= CHECK(!memcmp(a->st.mom, b->st.mom, nv * sizeof(float)), "%s: momentum bitwise", what);
    ok &= CHECK(!memcmp(a->W, b->W, (size_t)a->K * a->E * sizeof(float)), "%s: centres bitwise",
                what);
    return ok;
}

TEST(gpu_trainer_matches_cpu_feature_and_image_mode) {
    need_gpu();
    SynthTrainFix f;
    REQUIRE(synth_train_fix_init(&f, 1) == 0, "%s", laic_last_error());
    REQUIRE(clip_set_precision(&ops_cuda, "fp32", NULL) == 0, "%s", laic_last_error());
    for (int images = 0; images < 2; images++) {
        const char *mode = images ? "image mode" : "feature mode";
        TrainResult c, g;
        REQUIRE(synth_train_run(&c, &f, &ops_cpu, images, 1, 0, NULL, NULL) == 0, "%s cpu: %s", mode,
                laic_last_error());
        int rc = synth_train_run(&g, &f, &ops_cuda, images, 1, 0, NULL, NULL);
        CHECK(rc == 0, "%s cuda: %s", mode, laic_last_error());
        if (rc) {
            trainer_result_free(&c);
            continue;
        }
        size_t nv = (size_t)c.st.K * c.st.M * c.st.D;
        double rv = rel(g.st.vec, c.st.vec, nv), rw = rel(g.W, c.W, (size_t)c.K * c.E);
        printf("    %s: vectors %.3g, centres %.3g (max|cuda-cpu|/max|cpu|); loss %.6f / %.6f; "
               "%d graphs\n", mode, rv, rw, g.epoch_loss[1], c.epoch_loss[1], g.graph_captures);
        CHECK(rv <= 1e-2, "%s: vectors %.3g > 1e-2", mode, rv);
        CHECK(rw <= 3e-2, "%s: centres %.3g > 3e-2", mode, rw);
        CHECK(fabs(g.epoch_loss[1] - c.epoch_loss[1]) <= 1e-2 * fmax(1, fabs(c.epoch_loss[1])),
              "%s: epoch-2 loss %.6f vs %.6f", mode, g.epoch_loss[1], c.epoch_loss[1]);
        CHECK(g.graph_captures == 2, "%s: one graph per batch size (%d)", mode, g.graph_captures);
        // training moved the vectors (a step that did nothing would match nothing above)
        float *v0 = malloc(nv * sizeof *v0);
        train_init_vectors(v0, nv, 31);
        CHECK(rel(c.st.vec, v0, nv) > 1e-3, "%s: the CPU run moved the vectors", mode);
        free(v0);
        trainer_result_free(&c);
        trainer_result_free(&g);
    }
    synth_train_fix_free(&f);
}

TEST(gpu_trainer_graph_on_off_and_reruns_bitwise) {
    need_gpu();
    SynthTrainFix f;
    REQUIRE(synth_train_fix_init(&f, 1) == 0, "%s", laic_last_error());
    REQUIRE(clip_set_precision(&ops_cuda, "fp32", NULL) == 0, "%s", laic_last_error());
    TrainResult on, off, again;
    REQUIRE(synth_train_run(&on, &f, &ops_cuda, 1, 1, 0, NULL, NULL) == 0, "graph on: %s", laic_last_error());
    REQUIRE(synth_train_run(&off, &f, &ops_cuda, 1, 0, 0, NULL, NULL) == 0, "graph off: %s", laic_last_error());
    REQUIRE(synth_train_run(&again, &f, &ops_cuda, 1, 1, 0, NULL, NULL) == 0, "rerun: %s", laic_last_error());
    CHECK(on.graph_captures == 2 && off.graph_captures == 0, "graphs: on %d, off %d",
          on.graph_captures, off.graph_captures);
    printf("    graph steps %.4fs, eager parts %.4fs\n", on.t_graph,
           on.t_image + on.t_text + on.t_loss);
    bitwise(&on, &off, "graph on vs off");
    bitwise(&on, &again, "two CUDA runs");
    trainer_result_free(&on);
    trainer_result_free(&off);
    trainer_result_free(&again);
    synth_train_fix_free(&f);
}

TEST(gpu_trainer_resume_bitwise) {
    need_gpu();
    SynthTrainFix f;
    REQUIRE(synth_train_fix_init(&f, 1) == 0, "%s", laic_last_error());
    REQUIRE(clip_set_precision(&ops_cuda, "fp32", NULL) == 0, "%s", laic_last_error());
    const char *ck = test_path("gpu_trainer_resume.ckpt");
    TrainResult full, part, rest;
    REQUIRE(synth_train_run(&full, &f, &ops_cuda, 1, 1, 0, NULL, NULL) == 0, "full: %s", laic_last_error());
    REQUIRE(synth_train_run(&part, &f, &ops_cuda, 1, 1, 1, ck, NULL) == 0, "part: %s", laic_last_error());
    CHECK(part.stopped && part.st.epoch == 1, "stopped after epoch 1 (%d)", part.st.epoch);
    TrainState s;
    REQUIRE(ckpt_load(ck, &s) == 0, "%s", laic_last_error());
    REQUIRE(synth_train_run(&rest, &f, &ops_cuda, 1, 1, 0, NULL, &s) == 0, "resume: %s", laic_last_error());
    CHECK(rest.st.step == full.st.step, "steps %lld vs %lld", (long long)rest.st.step,
          (long long)full.st.step);
    bitwise(&rest, &full, "stopped + resumed vs uninterrupted");
    train_state_free(&s);
    trainer_result_free(&full);
    trainer_result_free(&part);
    trainer_result_free(&rest);
    synth_train_fix_free(&f);
}

// Each model multiplies in the mode it was created in (host/model/clip.c use_precision): a bf16 image
// model keeps encoding in bf16 after an fp32 text tower was created and run, and the trainer's
// fp32 text tower next to it gives the same vectors whatever the process-wide mode is when
// trainer_run is called. Bitwise: the same kernels run on the same inputs.
TEST(gpu_trainer_per_model_precision) {
    need_gpu();
    SynthTrainFix f;
    REQUIRE(synth_train_fix_init(&f, 1) == 0, "%s", laic_last_error());
    const int S = f.w.cfg.image_size, E = f.w.cfg.embed_dim, nb = 2;
    float *pix = malloc((size_t)nb * 3 * S * S * sizeof *pix);
    Rng g;
    rng_init(&g, 5, 1);
    for (size_t i = 0; i < (size_t)nb * 3 * S * S; i++) pix[i] = (float)rng_normal(&g);
    float a0[2 * 512], a1[2 * 512], a32[2 * 512];
    REQUIRE(E <= 512, "embed dim %d", E);
    REQUIRE(clip_set_precision(&ops_cuda, "fp32", NULL) == 0, "%s", laic_last_error());
    ClipModel *i32 = clip_model_create(&f.w, &ops_cuda, 4);
    REQUIRE(clip_set_precision(&ops_cuda, "bf16", NULL) == 0, "%s", laic_last_error());
    ClipModel *i16 = clip_model_create(&f.w, &ops_cuda, 4);
    REQUIRE(i32 && i16, "%s", laic_last_error());
    REQUIRE(clip_encode_images(i16, pix, nb, a0) == 0, "%s", laic_last_error());
    ClipModel *t32 = clip_model_create_train_in(&f.w, &ops_cuda, 2, "fp32");
    REQUIRE(t32, "%s", laic_last_error());
    CHECK(ops_cuda_get_matmul() == LAIC_MM_BF16_CUBLAS, "the process-wide mode is restored");
    int32_t tok[2 * 8] = {0}, eot[2] = {5, 7};
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 8; t++) tok[b * 8 + t] = t == eot[b] ? 49407 : 320 + t;
    float tf[2 * 512];
    REQUIRE(clip_encode_text(t32, tok, 2, 8, tf) == 0, "%s", laic_last_error());
    REQUIRE(clip_encode_images(i16, pix, nb, a1) == 0, "%s", laic_last_error());
    REQUIRE(clip_encode_images(i32, pix, nb, a32) == 0, "%s", laic_last_error());
    CHECK(!memcmp(a0, a1, (size_t)nb * E * sizeof *a0), "bf16 image model unchanged by an fp32 "
          "model run in between");
    double dot = 0, n0 = 0, n1 = 0;
    int differ = 0;
    for (int i = 0; i < nb * E; i++) {
        dot += (double)a0[i] * a32[i];
        n0 += (double)a0[i] * a0[i];
        n1 += (double)a32[i] * a32[i];
        differ |= a0[i] != a32[i];
    }
    CHECK(differ && dot / sqrt(n0 * n1) >= 0.999, "bf16 features differ from fp32 yet cosine "
          "%.6f >= 0.999", dot / sqrt(n0 * n1));
    // the trainer: bf16 image model, fp32 text tower; the mode at the call does not matter
    TrainData d = {.N = NS, .K = KP, .yhat = f.y, .hq = f.hq, .get_image = synth_get_image,
                   .img_ctx = &f.im};
    TrainerOpts o;
    trainer_opts_default(&o);
    o.epochs = 1;
    o.batch = 5;
    o.sgd.max_epoch = 1;
    o.sgd.warmup_epoch = 0;
    o.text_batch = 2;
    o.image_batch = 4;
    o.seed = 31;
    TrainResult r1, r2;
    REQUIRE(trainer_run(&r1, &f.w, i16, &ops_cuda, &d, &o) == 0, "%s", laic_last_error());
    REQUIRE(clip_set_precision(&ops_cuda, "fp32", NULL) == 0, "%s", laic_last_error());
    REQUIRE(trainer_run(&r2, &f.w, i16, &ops_cuda, &d, &o) == 0, "%s", laic_last_error());
    size_t nv = (size_t)KP * o.n_ctx * f.w.cfg.text_width;
    CHECK(!memcmp(r1.st.vec, r2.st.vec, nv * sizeof(float)), "vectors independent of the "
          "process-wide mode at the call");
    trainer_result_free(&r1);
    trainer_result_free(&r2);
    clip_model_free(t32);
    clip_model_free(i16);
    clip_model_free(i32);
    free(pix);
    synth_train_fix_free(&f);
}

#endif
