/*
 * bench_text_backward.c — text encoder forward vs backward time (issue 7 goal: backward for
 * K = 100 prompts <= 2x its forward).
 *
 *   make BUILD=build-bwd CUDA=0 build-bwd/bench/bench_text_backward
 *   ./build-bwd/bench/bench_text_backward [K=100] [T=16] [device=cpu] [repeats=3]
 *
 * Random-init ViT-B/32 weights (clip_weights_init, seed 0; the time does not depend on the
 * values), K prompts of T positions with the EOT at T-1 (so no truncation). Prints the best of
 * `repeats` for: inference forward, training forward (saves activations), backward, and the
 * backward / training-forward ratio.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/clip.h"
#include "io/err.h"
#include "ops.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    int K = argc > 1 ? atoi(argv[1]) : 100, T = argc > 2 ? atoi(argv[2]) : 16;
    const char *dev = argc > 3 ? argv[3] : "cpu";
    int reps = argc > 4 ? atoi(argv[4]) : 3;
    const OpsBackend *ops = ops_get(dev);
    ClipConfig c;
    ClipWeights w;
    if (!ops || clip_config_preset(&c, "vit-b-32") || clip_weights_init(&w, &c, 0)) {
        fprintf(stderr, "laic: %s\n", laic_last_error());
        return 1;
    }
    int C = c.text_width, E = c.embed_dim;
    float *e = malloc((size_t)K * T * C * 4), *de = malloc((size_t)K * T * C * 4);
    float *f = malloc((size_t)K * E * 4), *g = malloc((size_t)K * E * 4);
    int32_t *eot = malloc((size_t)K * 4);
    for (size_t i = 0; i < (size_t)K * T * C; i++) e[i] = 0.02f * (float)((i * 2654435761u) % 1000) / 1000.0f;
    for (size_t i = 0; i < (size_t)K * E; i++) g[i] = (float)((i * 40503u) % 100) / 100.0f - 0.5f;
    for (int b = 0; b < K; b++) eot[b] = T - 1;
    ClipModel *mi = clip_model_create(&w, ops, K), *mt = clip_model_create_train(&w, ops, K);
    if (!mi || !mt) {
        fprintf(stderr, "laic: %s\n", laic_last_error());
        return 1;
    }
    double bi = 1e30, bf = 1e30, bb = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        clip_encode_text_embeds(mi, e, eot, K, T, f);
        double t1 = now();
        clip_encode_text_embeds(mt, e, eot, K, T, f);
        double t2 = now();
        clip_text_backward(mt, g, de);
        double t3 = now();
        if (t1 - t0 < bi) bi = t1 - t0;
        if (t2 - t1 < bf) bf = t2 - t1;
        if (t3 - t2 < bb) bb = t3 - t2;
    }
    printf("device %s, K=%d prompts, T=%d, best of %d: forward (inference) %.3f s, forward "
           "(training) %.3f s, backward %.3f s, backward/forward(training) = %.2f, "
           "backward/forward(inference) = %.2f\n",
           ops->name, K, T, reps, bi, bf, bb, bb / bf, bb / bi);
    clip_model_free(mi);
    clip_model_free(mt);
    clip_weights_free(&w);
    free(e); free(de); free(f); free(g); free(eot);
    return 0;
}
