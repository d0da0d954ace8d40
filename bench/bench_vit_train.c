/*
 * bench_vit_train.c — one image-encoder training step of ViT-B/32 (issue 16): forward (saving
 * activations), backward with weight gradients, clip + AdamW (host/train/vit.h), timed.
 *
 *   make bench && ./build/bench/bench_vit_train [--spec lora|full_last_k|all] [--batch B]
 *       [--steps N] [--warmup W] [--device cpu|cuda] [--precision fp32|bf16] [--rank R]
 *       [--alpha A] [--k K] [--recompute] [--threads T] [--arch vit-b-32|tiny]
 *
 * Random-init weights (clip_weights_init, seed 0: the time does not depend on the values), random
 * normalised pixels and a fixed random dL/dF (B,512) in backend memory, so a step is exactly
 * forward + backward + optimiser (the loss's own cost is the caller's). After W warm-up steps
 * (scratch growth, cuBLAS heuristics), N steps are timed with a synchronise between the parts;
 * one JSON line: img/s over whole steps, ms per step and per part, the plan's total bytes.
 * Defaults: SEIC stage 2's LoRA (r = α = 128 on q, v), batch 4, 3 steps, 1 warm-up, CPU fp32.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/cpu_ops.h"
#include "io/err.h"
#include "model/clip.h"
#include "ops.h"
#include "rng.h"
#include "train/vit.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void log_stderr(void *ctx, const char *line) {
    (void)ctx;
    fprintf(stderr, "%s\n", line);
}

static const char *arg(int argc, char **argv, const char *name, const char *def) {
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], name)) return argv[i + 1];
    return def;
}
static int flag(int argc, char **argv, const char *name) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], name)) return 1;
    return 0;
}

int main(int argc, char **argv) {
    const char *spec = arg(argc, argv, "--spec", "lora"), *dev = arg(argc, argv, "--device", "cpu");
    const char *prec = arg(argc, argv, "--precision", "fp32"), *arch = arg(argc, argv, "--arch", "vit-b-32");
    const int B = atoi(arg(argc, argv, "--batch", "4")), steps = atoi(arg(argc, argv, "--steps", "3"));
    const int warm = atoi(arg(argc, argv, "--warmup", "1")), rank = atoi(arg(argc, argv, "--rank", "128"));
    const int k = atoi(arg(argc, argv, "--k", "9")), threads = atoi(arg(argc, argv, "--threads", "0"));
    const float alpha = (float)atof(arg(argc, argv, "--alpha", "128"));
    if (threads > 0) cpu_set_threads(threads);
    const OpsBackend *ops = ops_get(dev);
    ClipConfig c;
    ClipWeights w;
    if (!ops || clip_config_preset(&c, arch) || clip_weights_init(&w, &c, 0)) {
        fprintf(stderr, "laic: %s\n", laic_last_error());
        return 1;
    }
    VitTrainOpts o;
    vit_train_opts_default(&o);
    o.spec = !strcmp(spec, "all")           ? clip_spec_all()
             : !strcmp(spec, "full_last_k") ? clip_spec_full_last_k(k < c.vision_layers ? k : c.vision_layers - 1)
                                            : clip_spec_lora(rank, alpha);
    o.spec.recompute = flag(argc, argv, "--recompute");
    o.lr = !strcmp(spec, "lora") ? 5e-5 : 1e-5;
    o.precision = prec;
    o.log = log_stderr;
    VitTrainer *t = vit_trainer_create(&w, ops, B, &o);
    if (!t) {
        fprintf(stderr, "laic: %s\n", laic_last_error());
        return 1;
    }
    ClipModel *m = vit_trainer_model(t);
    const int S = c.image_size, E = c.embed_dim;
    const size_t npix = (size_t)B * 3 * S * S;
    float *hp = malloc(npix * 4), *hg = malloc((size_t)B * E * 4);
    Rng r;
    rng_init(&r, 1, 0);
    for (size_t i = 0; i < npix; i++) hp[i] = (float)rng_normal(&r);
    for (size_t i = 0; i < (size_t)B * E; i++) hg[i] = (float)rng_normal(&r) * 0.01f;
    float *pix = ops->alloc(npix * 4), *dfeat = ops->alloc((size_t)B * E * 4),
          *feat = ops->alloc((size_t)B * E * 4);
    if (!pix || !dfeat || !feat) {
        fprintf(stderr, "laic: %s\n", laic_last_error());
        return 1;
    }
    ops->to_device(pix, hp, npix * 4);
    ops->to_device(dfeat, hg, (size_t)B * E * 4);
    double tf = 0, tb = 0, to = 0, best = 1e30;
    for (int s = 0; s < warm + steps; s++) {
        ops->synchronize();
        double t0 = now();
        clip_encode_images_dev(m, pix, B, feat);
        ops->synchronize();
        double t1 = now();
        clip_image_backward_dev(m, dfeat, NULL);
        ops->synchronize();
        double t2 = now();
        vit_trainer_step(t);
        ops->synchronize();
        double t3 = now();
        if (s < warm) continue;
        tf += t1 - t0;
        tb += t2 - t1;
        to += t3 - t2;
        if (t3 - t0 < best) best = t3 - t0;
    }
    const double step = (tf + tb + to) / steps;
    printf("{\"impl\": \"laic\", \"device\": \"%s\", \"precision\": \"%s\", \"spec\": \"%s\", "
           "\"recompute\": %d, \"batch\": %d, \"steps\": %d, \"img_s\": %.3f, \"img_s_best\": %.3f, "
           "\"ms_step\": %.1f, \"ms_fwd\": %.1f, \"ms_bwd\": %.1f, \"ms_opt\": %.1f, "
           "\"trainable\": %zu, \"plan_bytes\": %zu}\n",
           dev, prec, spec, o.spec.recompute, B, steps, B / step, B / best, 1e3 * step,
           1e3 * tf / steps, 1e3 * tb / steps, 1e3 * to / steps, clip_trainable_numel(m),
           vit_trainer_plan(t)->total);
    ops->free(pix);
    ops->free(dfeat);
    ops->free(feat);
    free(hp);
    free(hg);
    vit_trainer_free(t);
    clip_weights_free(&w);
    return 0;
}
