/*
 * bench_optim.c — the shared training ops: adam_forward (memory-bound: 16 bytes read and 12
 * written per parameter) and matmul_backward_weight (2·M·N·K FLOPs) on the CPU backend and,
 * when built with CUDA and a device is present, on ops_cuda.
 *
 *   build:  make bench                       (→ build/bench/bench_optim)
 *   run:    ./build/bench/bench_optim [n_params]     (default 10,000,000 on the CPU; the GPU
 *           runs ViT-B/32's 151,277,313)
 *
 * Printed per line: op | backend | size | ms | GB/s or TFLOP/s. The PyTorch side of the same
 * comparison is bench/bench_optim_torch.py (torch.optim.Adam foreach=False / True / fused).
 * CPU times are wall-clock medians of 5 runs after a warm-up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/err.h"
#include "io/progress.h"
#include "ops.h"
#include "rng.h"
#include "train/optim.h"
#ifdef LAIC_CUDA
#include "../kernels/ops_cuda.h"
#endif

static float *randn(size_t n, uint64_t seed) {
    float *x = mallocCheck(n * sizeof *x);
    Rng r;
    rng_init(&r, seed, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)rng_normal(&r);
    return x;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    const OpsBackend *o;
    float *p, *m, *v, *g, *inp, *dout, *dw, *db;
    double *sched;
    size_t n;
    int M, K, N;
} Ctx;

static void run_adam(void *c_) {
    Ctx *c = c_;
    c->o->adam_forward(c->p, c->m, c->v, c->g, c->sched, c->n, 0.9, 0.999, 1e-8, 1e-2, 1);
}
static void run_mbw(void *c_) {
    Ctx *c = c_;
    c->o->matmul_backward_weight(c->dw, c->db, c->dout, c->inp, c->M, c->K, c->N);
}

static double time_cpu_ms(void (*fn)(void *), void *ctx) {
    double t[5];
    fn(ctx);
    for (int i = 0; i < 5; i++) {
        double t0 = now_seconds();
        fn(ctx);
        t[i] = 1e3 * (now_seconds() - t0);
    }
    qsort(t, 5, sizeof t[0], cmp_d);
    return t[2];
}

static void *up(const OpsBackend *o, const void *h, size_t bytes) {
    void *d = o->alloc(bytes);
    if (!d) {
        fprintf(stderr, "bench_optim: %s\n", laic_last_error());
        exit(1);
    }
    o->to_device(d, h, bytes);
    return d;
}

static void bench_backend(const OpsBackend *o, size_t n, double (*timer)(void (*)(void *), void *)) {
    Ctx c = {.o = o, .n = n};
    float *h = randn(n, 1);
    c.p = up(o, h, n * sizeof(float));
    c.g = up(o, h, n * sizeof(float));
    free(h);
    c.m = o->alloc(n * sizeof(float));
    c.v = o->alloc(n * sizeof(float));
    o->memset0(c.m, n * sizeof(float));
    o->memset0(c.v, n * sizeof(float));
    double sched[3];
    adam_schedule(sched, 5e-5, 0.9, 0.999, 1);
    c.sched = up(o, sched, sizeof sched);
    double ms = timer(run_adam, &c);
    printf("adam_forward (AdamW) | %-4s | n = %zu | %8.3f ms | %7.1f GB/s\n", o->name, n, ms,
           28.0 * (double)n / (ms * 1e6));
    o->free(c.p), o->free(c.g), o->free(c.m), o->free(c.v), o->free(c.sched);

    // ViT-B/32 block GEMMs at batch 128 (M = 128·50 tokens): qkv, out, fc, proj
    const int shapes[][3] = {{6400, 768, 2304}, {6400, 768, 768}, {6400, 768, 3072}, {6400, 3072, 768}};
    for (int s = 0; s < 4; s++) {
        c.M = shapes[s][0], c.K = shapes[s][1], c.N = shapes[s][2];
        float *a = randn((size_t)c.M * c.K, 2), *d = randn((size_t)c.M * c.N, 3);
        c.inp = up(o, a, (size_t)c.M * c.K * sizeof(float));
        c.dout = up(o, d, (size_t)c.M * c.N * sizeof(float));
        free(a), free(d);
        c.dw = o->alloc((size_t)c.N * c.K * sizeof(float));
        c.db = o->alloc((size_t)c.N * sizeof(float));
        o->memset0(c.dw, (size_t)c.N * c.K * sizeof(float));
        o->memset0(c.db, (size_t)c.N * sizeof(float));
        ms = timer(run_mbw, &c);
        printf("matmul_backward_weight | %-4s | M %d K %d N %d | %8.3f ms | %6.2f TFLOP/s\n", o->name,
               c.M, c.K, c.N, ms, 2.0 * c.M * c.K * c.N / (ms * 1e9));
        o->free(c.inp), o->free(c.dout), o->free(c.dw), o->free(c.db);
    }
}

#ifdef LAIC_CUDA
static double time_gpu_ms(void (*fn)(void *), void *ctx) { return ops_cuda_time_ms(fn, ctx, 20); }
#endif

int main(int argc, char **argv) {
    size_t n = argc > 1 ? (size_t)strtoull(argv[1], NULL, 10) : 10000000;
    if (n == 0) n = 1;
    bench_backend(&ops_cpu, n, time_cpu_ms);
#ifdef LAIC_CUDA
    if (ops_cuda_device_count() > 0) bench_backend(&ops_cuda, 151277313, time_gpu_ms);
    else printf("(no CUDA device: GPU rows skipped)\n");
#endif
    return 0;
}
