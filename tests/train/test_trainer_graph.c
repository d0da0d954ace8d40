/*
 * test_trainer_graph.c — the trainer's eager/graph switch (host/train/trainer.c "CUDA graph rule") on
 * the CPU, where no real graph exists:
 *  - train.cuda_graph on and off give bit-identical vectors on ops_cpu (graph_capture is NULL
 *    there, so both are the eager path: this pins that the option changes nothing on the CPU);
 *  - a fake backend = ops_cpu plus graph_capture/launch/free that record (fn, ctx) without
 *    running anything and replay by calling fn(ctx): the trainer captures exactly once per batch
 *    size (full batch and the epoch's last, smaller one), launches every later step, frees every
 *    graph, and ends bit for bit where the plain CPU run ends — image and feature mode, and
 *    stopped + resumed. A trainer that forgot to launch after capturing, captured a step that
 *    reads per-step host state, or captured before the warm-up, would differ here;
 *  - a backend without the prompt-learning ops is refused with one line, no crash.
 * Tiny random-init CLIP, data from the project's RNG; no fixtures.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/clip.h"
#include "io/err.h"
#include "ops.h"
#include "rng.h"
#include "../test.h"
#include "../synth.h"
#include "train/trainer.h"

// --- the recording fake backend -------------------------------------------------------------------

typedef struct {
    void (*fn)(void *ctx);
    void *ctx;
    int id;
} FakeGraph;

static struct {
    int captures, launches, frees;
} fake_n;

static void *fake_capture(void (*fn)(void *ctx), void *ctx) {
    FakeGraph *g = malloc(sizeof *g);
    g->fn = fn;   // recorded, not run: as a CUDA capture, nothing executes here
    g->ctx = ctx;
    g->id = ++fake_n.captures;
    return g;
}

static int fake_launch(void *graph) {
    FakeGraph *g = graph;
    fake_n.launches++;
    g->fn(g->ctx);
    return 0;
}

static void fake_free(void *graph) {
    fake_n.frees++;
    free(graph);
}

static OpsBackend fake_backend(void) {
    OpsBackend f = ops_cpu;   // name "cpu": models alias the host weights as on the CPU
    f.graph_capture = fake_capture;
    f.graph_launch = fake_launch;
    f.graph_free = fake_free;
    return f;
}

// --- data ---------------------------------------------------------------------------------------

enum { N_SAMPLES = SYNTH_TRAIN_N, K_PROMPTS = SYNTH_TRAIN_K };

/* 13 samples, batch 5: steps of 5, 5, 3 per epoch (two batch sizes); K = 3 in text chunks of
 * 2 (the re-forward path); image chunks of 4 views (< 2b). */
static int run(TrainResult *r, SynthTrainFix *f, const OpsBackend *ops, int images, int graph,
               int epochs, int stop_after, const char *ckpt, const TrainState *resume) {
    ClipModel *img = images ? clip_model_create(&f->w, ops, 4) : NULL;
    if (images && !img) return -1;
    TrainData d = {.N = N_SAMPLES, .K = K_PROMPTS, .yhat = f->y, .hq = f->hq,
                   .get_image = images ? synth_get_image : NULL, .img_ctx = &f->im,
                   .X = images ? NULL : f->X};
    TrainerOpts o;
    trainer_opts_default(&o);
    o.epochs = epochs;
    o.batch = 5;
    o.sgd.lr = 0.05;
    o.sgd.max_epoch = epochs;
    o.text_batch = 2;
    o.image_batch = 4;
    o.seed = 31;
    o.graph = graph;
    o.stop_after = stop_after;
    o.ckpt_path = ckpt;
    o.resume = resume;
    int rc = trainer_run(r, &f->w, img, ops, &d, &o);
    clip_model_free(img);
    return rc;
}

static int same_result(const TrainResult *a, const TrainResult *b, const char *what) {
    size_t nv = (size_t)a->st.K * a->st.M * a->st.D;
    int ok = CHECK(a->st.step == b->st.step, "%s: steps %lld vs %lld", what,
                   (long long)a->st.step, (long long)b->st.step);
    ok &= CHECK(!memcmp(a->st.vec, b->st.vec, nv * sizeof(float)), "%s: vectors bit for bit", what);
    ok &= CHECK(!memcmp(a->st.mom, b->st.mom, nv * sizeof(float)), "%s: momentum bit for bit", what);
    ok &= CHECK(!memcmp(a->W, b->W, (size_t)a->K * a->E * sizeof(float)), "%s: centres bit for bit",
                what);
    for (int e = a->first_epoch; e < a->st.epoch; e++)
        ok &= CHECK(a->epoch_loss[e] == b->epoch_loss[e], "%s: epoch %d loss %.9g vs %.9g", what, e,
                    a->epoch_loss[e], b->epoch_loss[e]);
    return ok;
}

// --- tests --------------------------------------------------------------------------------------

TEST(trainer_graph_option_changes_nothing_on_cpu) {
    SynthTrainFix f;
    REQUIRE(synth_train_fix_init(&f, 0) == 0, "%s", laic_last_error());
    TrainResult on, off;
    REQUIRE(run(&on, &f, &ops_cpu, 1, 1, 2, 0, NULL, NULL) == 0, "graph on: %s", laic_last_error());
    REQUIRE(run(&off, &f, &ops_cpu, 1, 0, 2, 0, NULL, NULL) == 0, "graph off: %s", laic_last_error());
    same_result(&on, &off, "cpu graph on/off");
    CHECK(on.graph_captures == 0 && on.t_graph == 0, "no graph on the CPU (%d captured)",
          on.graph_captures);
    trainer_result_free(&on);
    trainer_result_free(&off);
    synth_train_fix_free(&f);
}

TEST(trainer_graph_fake_backend_captures_once_per_batch_size) {
    SynthTrainFix f;
    REQUIRE(synth_train_fix_init(&f, 0) == 0, "%s", laic_last_error());
    OpsBackend fake = fake_backend();
    for (int images = 1; images >= 0; images--) {
        const char *mode = images ? "image mode" : "feature mode";
        TrainResult ref, got;
        REQUIRE(run(&ref, &f, &ops_cpu, images, 1, 3, 0, NULL, NULL) == 0, "cpu: %s",
                laic_last_error());
        memset(&fake_n, 0, sizeof fake_n);
        REQUIRE(run(&got, &f, &fake, images, 1, 3, 0, NULL, NULL) == 0, "fake: %s",
                laic_last_error());
        // 3 epochs x (5, 5, 3): b=5 warm at step 1, captured at step 2; b=3 warm in epoch 1,
        // captured in epoch 2. So 2 eager steps, 7 launched, 2 graphs, both freed.
        CHECK(fake_n.captures == 2 && got.graph_captures == 2, "%s: 2 captures (%d, reported %d)",
              mode, fake_n.captures, got.graph_captures);
        CHECK(fake_n.launches == 7, "%s: 7 of 9 steps launched (%d)", mode, fake_n.launches);
        CHECK(fake_n.frees == 2, "%s: every graph freed (%d)", mode, fake_n.frees);
        same_result(&got, &ref, mode);
        trainer_result_free(&ref);
        trainer_result_free(&got);
    }
    // graph off on a backend that has graphs: nothing captured, same numbers
    TrainResult ref, got;
    REQUIRE(run(&ref, &f, &ops_cpu, 0, 1, 2, 0, NULL, NULL) == 0, "cpu: %s", laic_last_error());
    memset(&fake_n, 0, sizeof fake_n);
    REQUIRE(run(&got, &f, &fake, 0, 0, 2, 0, NULL, NULL) == 0, "fake: %s", laic_last_error());
    CHECK(fake_n.captures == 0 && fake_n.launches == 0, "graph off: no capture (%d), no launch (%d)",
          fake_n.captures, fake_n.launches);
    same_result(&got, &ref, "fake backend, graph off");
    trainer_result_free(&ref);
    trainer_result_free(&got);
    synth_train_fix_free(&f);
}

TEST(trainer_graph_fake_backend_resume_is_bit_exact) {
    SynthTrainFix f;
    REQUIRE(synth_train_fix_init(&f, 0) == 0, "%s", laic_last_error());
    OpsBackend fake = fake_backend();
    const char *ck = test_path("graph_resume.ckpt");
    TrainResult full, part, rest;
    REQUIRE(run(&full, &f, &fake, 1, 1, 3, 0, NULL, NULL) == 0, "full: %s", laic_last_error());
    REQUIRE(run(&part, &f, &fake, 1, 1, 3, 1, ck, NULL) == 0, "part: %s", laic_last_error());
    CHECK(part.stopped && part.st.epoch == 1, "stopped after epoch 1 (%d)", part.st.epoch);
    TrainState s;
    REQUIRE(ckpt_load(ck, &s) == 0, "%s", laic_last_error());
    memset(&fake_n, 0, sizeof fake_n);
    // the resumed call starts with have_buf = 1 and still warms each batch size up eagerly
    REQUIRE(run(&rest, &f, &fake, 1, 1, 3, 0, NULL, &s) == 0, "resume: %s", laic_last_error());
    CHECK(fake_n.captures == 2 && fake_n.launches == 4, "resumed: 2 captures (%d), 4 launches (%d)",
          fake_n.captures, fake_n.launches);
    same_result(&rest, &full, "fake backend, stopped + resumed");
    train_state_free(&s);
    trainer_result_free(&full);
    trainer_result_free(&part);
    trainer_result_free(&rest);
    synth_train_fix_free(&f);
}

TEST(trainer_refuses_backend_without_training_ops) {
    SynthTrainFix f;
    REQUIRE(synth_train_fix_init(&f, 0) == 0, "%s", laic_last_error());
    OpsBackend partial = ops_cpu;
    partial.prompt_loss_forward_backward = NULL;   // as the CUDA table before its kernels land
    TrainResult r;
    int rc = run(&r, &f, &partial, 0, 1, 1, 0, NULL, NULL);
    const char *e = laic_last_error();
    CHECK(rc == -1 && strstr(e, "no prompt_loss_forward_backward op") && !strchr(e, '\n'),
          "one-line refusal: %s", e);
    partial = ops_cpu;
    partial.train_views_forward = NULL;   // needed in image mode only
    rc = run(&r, &f, &partial, 0, 1, 1, 0, NULL, NULL);
    CHECK(rc == 0, "feature mode needs no views op: %s", laic_last_error());
    if (rc == 0) trainer_result_free(&r);
    rc = run(&r, &f, &partial, 1, 1, 1, 0, NULL, NULL);
    CHECK(rc == -1 && strstr(laic_last_error(), "no train_views_forward op"),
          "image mode refused: %s", laic_last_error());
    // the image model must live on the trainer's backend (the views' features stay there)
    ClipModel *img = clip_model_create(&f.w, &ops_cpu, 4);
    OpsBackend fake = fake_backend();
    TrainData d = {.N = N_SAMPLES, .K = K_PROMPTS, .yhat = f.y, .hq = f.hq,
                   .get_image = synth_get_image, .img_ctx = &f.im};
    TrainerOpts o;
    trainer_opts_default(&o);
    o.epochs = 1;
    rc = trainer_run(&r, &f.w, img, &fake, &d, &o);
    CHECK(rc == -1 && strstr(laic_last_error(), "the image model runs on"),
          "image model on another backend refused: %s", laic_last_error());
    clip_model_free(img);
    synth_train_fix_free(&f);
}
