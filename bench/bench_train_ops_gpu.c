/*
 * bench_train_ops_gpu.c — the prompt-learning ops of ops_cuda (kernels/train.cu) at the
 * trainer's shapes: validated against ops_cpu, then timed (STYLE.md "Kernel development").
 *
 *   build:  make BUILD=build-cuda bench          (→ build-cuda/bench/bench_train_ops_gpu)
 *   run:    ./build-cuda/bench/bench_train_ops_gpu [b]       (default b = 32)
 *
 * For K = 10 and K = 100 classes, E = 512, n_ctx = 4 context vectors of width D = 512:
 *   loss        prompt_loss_forward_backward on F (2b,E), W (K,E): logits 2·2b·K·E FLOPs,
 *               dW 2·b·K·E FLOPs, in double (H100 fp64 ≈ 67 TFLOP/s: these are latency-bound)
 *   sgd         sgd_forward on the class vectors, n = K·4·512 floats: reads p, g, buf,
 *               writes p, buf = 20·n bytes
 *   copy        strided_copy of 2b feature rows of E floats: 8·2b·E bytes
 *   views       train_views_forward, b CIFAR-sized 32×32 images → (2b,3,224,224) (host
 *               parameter draws + upload + kernels; synchronous)
 *   loss+sgd    the two as one eager sequence and as one CUDA graph replay (launch overhead)
 * Printed per line: op | K | b | ms | GB/s or GFLOP/s. Timing: ops_cuda_time_ms (cudaEvents,
 * one warm-up, L2 flushed before each of 50 runs; 5 for the views).
 * Validation first: loss terms and dW within 1e-6 relative, sgd bitwise, as tests/gpu.
 * Exits 77 without a CUDA build or device, 1 when validation fails.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/err.h"
#include "ops.h"
#include "rng.h"

#ifndef LAIC_CUDA
int main(void) {
    printf("bench_train_ops_gpu: built without CUDA; waived\n");
    return 77;
}
#else

#include "../kernels/ops_cuda.h"

static const OpsBackend *G = &ops_cuda, *REF = &ops_cpu;

static void *dalloc(size_t bytes) {
    void *p = G->alloc(bytes);
    if (!p) {
        fprintf(stderr, "bench_train_ops_gpu: %s\n", laic_last_error());
        exit(1);
    }
    return p;
}

static float *rand_unit_rows(Rng *r, int rows, int E) {
    float *x = mallocCheck((size_t)rows * E * sizeof(float));
    for (int i = 0; i < rows; i++) {
        double s = 0.0;
        for (int e = 0; e < E; e++) {
            x[(size_t)i * E + e] = (float)rng_normal(r);
            s += (double)x[(size_t)i * E + e] * x[(size_t)i * E + e];
        }
        for (int e = 0; e < E; e++) x[(size_t)i * E + e] = (float)(x[(size_t)i * E + e] / sqrt(s));
    }
    return x;
}

typedef struct {
    int b, K, E;
    size_t n;                                       // sgd parameters
    float *F, *W, *dW, *p, *buf, *copy_dst;         // device
    int32_t *y;
    uint8_t *hq;
    double *terms, *lr;
    const uint8_t **imgs;                           // host
    int *H, *Wd;
    size_t *index;
    float *pixels;                                  // device (2b,3,224,224)
    void *graph;
} Ctx;

static void run_loss(void *v) {
    Ctx *c = v;
    G->prompt_loss_forward_backward(c->terms, c->dW, c->F, c->W, c->y, c->hq, c->b, c->K, c->E, 7,
                                    0.7, 1.0, 1.0, 100.0);
}
static void run_sgd(void *v) {
    Ctx *c = v;
    G->sgd_forward(c->p, c->buf, c->p, c->lr, c->n, 0.9, 5e-4, 1);   // g = p: any data will do
}
static void run_copy(void *v) {
    Ctx *c = v;
    G->strided_copy(c->copy_dst, (size_t)c->E, c->F, (size_t)c->E, 2 * c->b, (size_t)c->E);
}
static void run_views(void *v) {
    Ctx *c = v;
    if (G->train_views_forward(c->pixels, c->imgs, c->H, c->Wd, c->index, c->b, 224, 1, 0)) {
        fprintf(stderr, "bench_train_ops_gpu: %s\n", laic_last_error());
        exit(1);
    }
}
static void run_loss_sgd(void *v) {
    Ctx *c = v;
    run_loss(c);
    G->sgd_forward(c->W, c->buf, c->dW, c->lr, (size_t)c->K * c->E, 0.9, 5e-4, 1);
}
static void run_graph(void *v) {
    Ctx *c = v;
    if (G->graph_launch(c->graph)) {
        fprintf(stderr, "bench_train_ops_gpu: %s\n", laic_last_error());
        exit(1);
    }
}

// Loss on both backends; 0 when within the tests' tolerance.
static int validate_loss(Ctx *c, const float *F, const float *W, const int32_t *y,
                         const uint8_t *hq) {
    const size_t nW = (size_t)c->K * c->E;
    double tr[6], tg[6];
    float *dWr = mallocCheck(nW * sizeof(float)), *dWg = mallocCheck(nW * sizeof(float));
    REF->prompt_loss_forward_backward(tr, dWr, F, W, y, hq, c->b, c->K, c->E, 7, 0.7, 1, 1, 100);
    run_loss(c);
    G->synchronize();
    G->to_host(tg, c->terms, sizeof tg);
    G->to_host(dWg, c->dW, nW * sizeof(float));
    double err = 0.0, mx = 0.0;
    for (size_t i = 0; i < nW; i++) {
        err = fmax(err, fabs((double)dWg[i] - dWr[i]));
        mx = fmax(mx, fabs((double)dWr[i]));
    }
    const double parts = fabs(tr[1]) + fabs(tr[2]) + fabs(tr[3]);
    int ok = fabs(tg[0] - tr[0]) <= 1e-6 * parts + 1e-12 && err <= 1e-6 * mx && tg[4] == tr[4];
    printf("# K %d: loss %.10g (cpu %.10g), dW max rel err %.2e: %s\n", c->K, tg[0], tr[0],
           mx > 0 ? err / mx : err, ok ? "OK" : "NOT OK");
    free(dWr);
    free(dWg);
    return ok ? 0 : -1;
}

static int validate_sgd(Ctx *c, Rng *r) {
    const size_t n = c->n;
    float *p = mallocCheck(n * sizeof(float)), *b = mallocCheck(n * sizeof(float));
    float *pg = mallocCheck(n * sizeof(float)), *bg = mallocCheck(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = (float)(0.02 * rng_normal(r)), b[i] = (float)(0.01 * rng_normal(r));
    const double lr = 0.002;
    G->to_device(c->p, p, n * sizeof(float));
    G->to_device(c->buf, b, n * sizeof(float));
    G->to_device(c->lr, &lr, sizeof lr);
    run_sgd(c);
    REF->sgd_forward(p, b, p, &lr, n, 0.9, 5e-4, 1);
    G->synchronize();
    G->to_host(pg, c->p, n * sizeof(float));
    G->to_host(bg, c->buf, n * sizeof(float));
    int ok = !memcmp(p, pg, n * sizeof(float)) && !memcmp(b, bg, n * sizeof(float));
    printf("# K %d: sgd on %zu floats bitwise: %s\n", c->K, n, ok ? "OK" : "NOT OK");
    free(p), free(b), free(pg), free(bg);
    return ok ? 0 : -1;
}

int main(int argc, char **argv) {
    if (ops_cuda_device_count() == 0) {
        printf("bench_train_ops_gpu: no CUDA device; waived\n");
        return 77;
    }
    const int b = argc > 1 ? atoi(argv[1]) : 32, E = 512;
    if (b < 1 || b > 4096) {
        fprintf(stderr, "bench_train_ops_gpu: batch must be in [1, 4096]\n");
        return 2;
    }
    char dev[256];
    ops_cuda_describe(dev, sizeof dev);
    printf("# %s\n# op | K | b | ms | throughput\n", dev);
    Rng r;
    rng_init(&r, 0, 0);
    // Views: b CIFAR-sized images, the same for both K.
    uint8_t **own = mallocCheck((size_t)b * sizeof *own);
    const uint8_t **imgs = mallocCheck((size_t)b * sizeof *imgs);
    int *H = mallocCheck((size_t)b * sizeof(int)), *Wd = mallocCheck((size_t)b * sizeof(int));
    size_t *index = mallocCheck((size_t)b * sizeof(size_t));
    for (int i = 0; i < b; i++) {
        own[i] = mallocCheck(32 * 32 * 3);
        for (int k = 0; k < 32 * 32 * 3; k++) own[i][k] = (uint8_t)rng_below(&r, 256);
        imgs[i] = own[i], H[i] = Wd[i] = 32, index[i] = (size_t)i * 7;
    }
    int fail = 0;
    const int Ks[2] = {10, 100};
    for (int kk = 0; kk < 2; kk++) {
        Ctx c = {.b = b, .K = Ks[kk], .E = E};
        c.n = (size_t)c.K * 4 * 512;
        float *F = rand_unit_rows(&r, 2 * b, E), *W = rand_unit_rows(&r, c.K, E);
        int32_t *y = mallocCheck((size_t)b * sizeof(int32_t));
        uint8_t *hq = mallocCheck((size_t)b);
        for (int i = 0; i < b; i++) y[i] = (int32_t)rng_below(&r, (uint64_t)c.K), hq[i] = i % 3 == 0;
        c.F = dalloc((size_t)2 * b * E * sizeof(float));
        c.W = dalloc((size_t)c.K * E * sizeof(float));
        c.dW = dalloc((size_t)c.K * E * sizeof(float));
        c.p = dalloc(c.n * sizeof(float));
        c.buf = dalloc(c.n * sizeof(float));
        c.copy_dst = dalloc((size_t)2 * b * E * sizeof(float));
        c.y = dalloc((size_t)b * sizeof(int32_t));
        c.hq = dalloc((size_t)b);
        c.terms = dalloc(6 * sizeof(double));
        c.lr = dalloc(sizeof(double));
        c.pixels = dalloc((size_t)2 * b * 3 * 224 * 224 * sizeof(float));
        c.imgs = imgs, c.H = H, c.Wd = Wd, c.index = index;
        G->to_device(c.F, F, (size_t)2 * b * E * sizeof(float));
        G->to_device(c.W, W, (size_t)c.K * E * sizeof(float));
        G->to_device(c.y, y, (size_t)b * sizeof(int32_t));
        G->to_device(c.hq, hq, (size_t)b);
        fail |= validate_loss(&c, F, W, y, hq) != 0;
        fail |= validate_sgd(&c, &r) != 0;

        double ms = ops_cuda_time_ms(run_loss, &c, 50);
        double flops = 2.0 * 2 * b * c.K * E + 2.0 * b * c.K * E;
        printf("loss | %d | %d | %.4f | %.1f GFLOP/s (fp64)\n", c.K, b, ms, flops / ms / 1e6);
        ms = ops_cuda_time_ms(run_sgd, &c, 50);
        printf("sgd | %d | %d | %.4f | %.1f GB/s (n = %zu)\n", c.K, b, ms, 20.0 * c.n / ms / 1e6,
               c.n);
        ms = ops_cuda_time_ms(run_copy, &c, 50);
        printf("copy | %d | %d | %.4f | %.1f GB/s\n", c.K, b, ms, 8.0 * 2 * b * E / ms / 1e6);
        ms = ops_cuda_time_ms(run_views, &c, 5);
        printf("views | %d | %d | %.4f | %.0f views/s\n", c.K, b, ms, 2.0 * b / ms * 1e3);
        const double lr = 1e-3;
        G->to_device(c.lr, &lr, sizeof lr);
        G->memset0(c.buf, c.n * sizeof(float));
        run_loss_sgd(&c);   // eager warm-up before the capture (sizes the loss scratch)
        G->synchronize();
        ms = ops_cuda_time_ms(run_loss_sgd, &c, 50);
        printf("loss+sgd eager | %d | %d | %.4f |\n", c.K, b, ms);
        c.graph = G->graph_capture(run_loss_sgd, &c);
        if (!c.graph) {
            fprintf(stderr, "bench_train_ops_gpu: %s\n", laic_last_error());
            fail = 1;
        } else {
            ms = ops_cuda_time_ms(run_graph, &c, 50);
            printf("loss+sgd graph | %d | %d | %.4f |\n", c.K, b, ms);
            G->graph_free(c.graph);
        }
        void *all[] = {c.F, c.W, c.dW, c.p, c.buf, c.copy_dst, c.y, c.hq, c.terms, c.lr, c.pixels};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) G->free(all[i]);
        free(F), free(W), free(y), free(hq);
    }
    for (int i = 0; i < b; i++) free(own[i]);
    free(own), free(imgs), free(H), free(Wd), free(index);
    return fail;
}
#endif
