/*
 * bench_seic.c — SEIC (SPEC §9.3): the loss op seic_align_loss_forward_backward, one whole
 * stage-1 step (heads forward, loss, backward, Adam: seic_s1_step_run), the stage-2 loss op
 * seic_self_loss_forward_backward and the stage-2 views op seic_views_forward (32 images of
 * 320×240 → 64 views at 224), on the CPU backend and, when built with CUDA and a device is
 * present, on ops_cuda.
 *
 *   build:  make bench                 (→ build/bench/bench_seic)
 *   run:    ./build/bench/bench_seic [b] [K]      (default b = 1024, V4C's stage-1 batch, and
 *           K = 10; E = 512)
 *
 * Printed per line: what | backend | b K E | ms (median of 5 after a warm-up; GPU: cudaEvents).
 * The PyTorch side of the stage-1 step is bench/bench_seic_torch.py (same shapes).
 * Cost model of the loss: three b×b×E products (S, dÂ, dB̂) for L_ins, three K×K×b for L_ass,
 * three K×K×E for L_ctr; the heads add 4 GEMMs of b×E×E and 4 of b×E×K.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/err.h"
#include "io/progress.h"
#include "ops.h"
#include "rng.h"
#include "model/augment.h"
#include "train/seic.h"
#ifdef LAIC_CUDA
#include "../kernels/ops_cuda.h"
#endif

static float *randn(size_t n, uint64_t seed, int rows, int E) {
    float *x = mallocCheck(n * sizeof *x);
    Rng r;
    rng_init(&r, seed, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)rng_normal(&r);
    if (rows > 0)
        for (int i = 0; i < rows; i++) {
            double s = 0;
            for (int e = 0; e < E; e++) s += (double)x[(size_t)i * E + e] * x[(size_t)i * E + e];
            for (int e = 0; e < E; e++) x[(size_t)i * E + e] = (float)(x[(size_t)i * E + e] / sqrt(s));
        }
    return x;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    const OpsBackend *o;
    int b, K, E;
    float *z[2], *l[2], *dz[2], *dl[2], *dlogs, *hist, *logs, *dls, *w;
    int32_t *y;
    double *terms, *st;
    SeicLossCfg cfg;
    SeicS1Step *step;
    float *xh, *th;
    long t;
} Ctx;

static void run_loss(void *c_) {
    Ctx *c = c_;
    c->o->seic_align_loss_forward_backward(c->terms, c->dz[0], c->dz[1], c->dl[0], c->dl[1], c->dlogs,
                                           c->hist, c->z[0], c->z[1], c->l[0], c->l[1], c->logs, c->b,
                                           c->K, c->E, &c->cfg);
}

static void run_step(void *c_) {
    Ctx *c = c_;
    double terms[5];
    seic_s1_step_run(c->step, c->xh, c->th, c->b, &c->cfg, 5e-3, 0.0, ++c->t, terms, NULL);
}

typedef struct {
    const OpsBackend *o;
    float *pix;
    uint8_t *imgs[32];
    int H[32], W[32];
    size_t index[32];
    SeicViewCfg cfg;
} Views;

static void run_views(void *c_) {
    Views *v = c_;
    v->o->seic_views_forward(v->pix, (const uint8_t *const *)v->imgs, v->H, v->W, v->index, 32, 224, 1,
                             0, &v->cfg);
}

static void run_self(void *c_) {
    Ctx *c = c_;
    c->o->seic_self_loss_forward_backward(c->terms, c->dls, c->w, c->y, c->st, c->l[0], c->l[1], c->b,
                                          c->K, 0.999);
}

static double time_cpu(void (*fn)(void *), void *ctx) {
    fn(ctx);
    double t[5];
    for (int i = 0; i < 5; i++) {
        double t0 = now_seconds();
        fn(ctx);
        t[i] = (now_seconds() - t0) * 1e3;
    }
    qsort(t, 5, sizeof t[0], cmp_d);
    return t[2];
}

static void *up(const OpsBackend *o, const void *h, size_t bytes) {
    void *d = o->alloc(bytes);
    if (!d) {
        fprintf(stderr, "%s\n", laic_last_error());
        exit(1);
    }
    if (h) o->to_device(d, h, bytes);
    else o->memset0(d, bytes);
    return d;
}

static void bench(const OpsBackend *o, int b, int K, int E) {
    Ctx c;
    memset(&c, 0, sizeof c);
    c.o = o, c.b = b, c.K = K, c.E = E;
    seic_loss_cfg_default(&c.cfg);
    float *zh = randn((size_t)b * E, 1, b, E), *lh = randn((size_t)b * K, 2, 0, 0);
    float hist[4096], logs = 2.6592600f;
    for (int k = 0; k < K && k < 4096; k++) hist[k] = 1.0f / K;
    for (int m = 0; m < 2; m++) {
        c.z[m] = up(o, zh, (size_t)b * E * 4);
        c.l[m] = up(o, lh, (size_t)b * K * 4);
        c.dz[m] = up(o, NULL, (size_t)b * E * 4);
        c.dl[m] = up(o, NULL, (size_t)b * K * 4);
    }
    c.dlogs = up(o, NULL, 4);
    c.hist = up(o, hist, (size_t)K * 4);
    c.logs = up(o, &logs, 4);
    c.terms = up(o, NULL, 8 * sizeof(double));
    double st[3] = {0, 0, 0};
    c.st = up(o, st, sizeof st);
    c.dls = up(o, NULL, (size_t)b * K * 4);
    c.w = up(o, NULL, (size_t)b * 4);
    c.y = up(o, NULL, (size_t)b * 4);
    c.step = seic_s1_step_create(o, K, E, b);
    SeicLayout L;
    seic_layout(&L, K, E);
    SeicState s;
    seic_state_alloc(&s, &L, 0);
    seic_heads_init(s.p, &L, 0.07, 1);
    seic_s1_step_load(c.step, &s);
    c.xh = randn((size_t)b * E, 3, b, E);
    c.th = randn((size_t)b * E, 4, b, E);
    const int cuda = strcmp(o->name, "cuda") == 0;
    double ms[3];
    void (*fns[3])(void *) = {run_loss, run_step, run_self};
    for (int i = 0; i < 3; i++) {
#ifdef LAIC_CUDA
        if (cuda) {
            ms[i] = ops_cuda_time_ms(fns[i], &c, 10);
            continue;
        }
#endif
        (void)cuda;
        ms[i] = time_cpu(fns[i], &c);
    }
    printf("seic_align_loss   | %-4s | b %5d K %4d E %d | %8.3f ms\n", o->name, b, K, E, ms[0]);
    printf("stage-1 step      | %-4s | b %5d K %4d E %d | %8.3f ms  (host→device batch upload and terms read back included)\n",
           o->name, b, K, E, ms[1]);
    printf("seic_self_loss    | %-4s | b %5d K %4d      | %8.3f ms\n", o->name, b, K, ms[2]);
    Views v;
    memset(&v, 0, sizeof v);
    v.o = o;
    seic_view_cfg_default(&v.cfg);
    Rng g;
    rng_init(&g, 5, 0);
    for (int i = 0; i < 32; i++) {
        v.H[i] = 240, v.W[i] = 320, v.index[i] = (size_t)i;
        v.imgs[i] = mallocCheck((size_t)240 * 320 * 3);
        for (size_t k = 0; k < (size_t)240 * 320 * 3; k++) v.imgs[i][k] = (uint8_t)rng_below(&g, 256);
    }
    v.pix = up(o, NULL, (size_t)64 * 3 * 224 * 224 * sizeof(float));
    double vm;
#ifdef LAIC_CUDA
    if (cuda) vm = ops_cuda_time_ms(run_views, &v, 5);
    else
#endif
        vm = time_cpu(run_views, &v);
    printf("seic_views        | %-4s | 32 images 320x240 -> 64 views 224 | %8.3f ms\n", o->name, vm);
    o->free(v.pix);
    for (int i = 0; i < 32; i++) free(v.imgs[i]);
    seic_s1_step_free(c.step);
    seic_state_free(&s);
    for (int m = 0; m < 2; m++) o->free(c.z[m]), o->free(c.l[m]), o->free(c.dz[m]), o->free(c.dl[m]);
    o->free(c.dlogs), o->free(c.hist), o->free(c.logs), o->free(c.terms), o->free(c.st);
    o->free(c.dls), o->free(c.w), o->free(c.y);
    free(zh), free(lh), free(c.xh), free(c.th);
}

int main(int argc, char **argv) {
    const int b = argc > 1 ? atoi(argv[1]) : 1024, K = argc > 2 ? atoi(argv[2]) : 10, E = 512;
    if (b < 1 || K < 1 || K > 4096) {
        fprintf(stderr, "usage: bench_seic [b] [K <= 4096]\n");
        return 2;
    }
    bench(&ops_cpu, b, K, E);
#ifdef LAIC_CUDA
    if (ops_cuda_device_count() > 0) bench(&ops_cuda, b, K, E);
    else printf("(no CUDA device: GPU lines skipped)\n");
#endif
    return 0;
}
