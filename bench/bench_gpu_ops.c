/*
 * bench_gpu_ops.c — kernel-variant harness for the CUDA matmul (STYLE.md "Kernel development"):
 * every version on the GEMM shapes of both CLIP ViT-B/32 encoders, validated first, then timed.
 *
 *   build:  make BUILD=build-cuda bench          (→ build-cuda/bench/bench_gpu_ops)
 *   run:    ./build-cuda/bench/bench_gpu_ops [version|-1] [batch]    (default: all, 256)
 *
 *   version 0  cuBLAS sgemm fp32, TF32 off          parity path (ops_cuda default "fp32")
 *   version 1  cuBLAS sgemm with TF32 tensor cores  "tf32"
 *   version 2  cuBLAS GemmEx bf16 in, fp32 accum    "bf16-cublas"
 *   version 3  matmul_bf16_forward_kernel1 (WMMA)   "bf16-wmma", laic's own kernel
 * All four add the bias (fused in v3's epilogue, a separate kernel after cuBLAS). bf16
 * versions are timed on operands already rounded to bf16 (the conversion is a one-off for
 * weights and fuses into the producer of the activations later).
 *
 * Shapes (M = batch*50 image tokens or batch*77 text tokens; K, N from the model):
 *   vision  qkv 768→2304, attn-out 768→768, fc 768→3072, proj 3072→768
 *   text    qkv 512→1536, attn-out 512→512, fc 512→2048, proj 2048→512
 *
 * Flow (llm.c dev/cuda): seeded random inputs; a CPU reference (ops_cpu, OpenBLAS) on the first
 * and last 64 rows; every selected version checked against it (tolerance per version, as in
 * tests/gpu) and against version 0 on the whole output; then cudaEvent timing over 20 runs
 * with the L2 flushed before each (ops_cuda_time_ms).
 * Printed per line: shape | version | ms | TFLOP/s | max rel err, where
 *   FLOPs = 2·M·N·K (the bias add is M·N, negligible).
 * Exits 77 without a CUDA build or device, 1 when a version fails validation.
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
    printf("bench_gpu_ops: built without CUDA; waived\n");
    return 77;
}
#else

#include "../kernels/ops_cuda.h"

typedef struct { const char *name; int T, K, N; } Shape;
static const Shape SHAPES[] = {
    {"vision qkv", 50, 768, 2304},  {"vision attn-out", 50, 768, 768},
    {"vision fc", 50, 768, 3072},   {"vision proj", 50, 3072, 768},
    {"text qkv", 77, 512, 1536},    {"text attn-out", 77, 512, 512},
    {"text fc", 77, 512, 2048},     {"text proj", 77, 2048, 512},
};
static const double TOL[4] = {1e-4, 1e-3, 2e-2, 2e-2};   // as tests/gpu/test_ops_gpu.c
static const char *const VNAME[4] = {"cublas-fp32", "cublas-tf32", "cublas-bf16", "wmma-bf16"};

typedef struct {
    int version, M, K, N;
    float *out, *inp, *w, *bias;   // device: (M,N), (M,K), (N,K), (N)
    uint16_t *inp16, *w16;         // device bf16 copies of inp, w
} Run;

static void run_version(void *ctx) {
    Run *r = ctx;
    switch (r->version) {
    case 0: ops_cuda_set_matmul("fp32"); break;
    case 1: ops_cuda_set_matmul("tf32"); break;
    case 2:
        ops_cuda_matmul_bf16(r->out, r->inp16, r->w16, r->bias, r->M, r->K, r->N,
                             LAIC_MM_BF16_CUBLAS, 0);
        return;
    default:
        ops_cuda_matmul_bf16(r->out, r->inp16, r->w16, r->bias, r->M, r->K, r->N,
                             LAIC_MM_BF16_WMMA, 0);
        return;
    }
    ops_cuda.matmul_forward(r->out, r->inp, r->w, r->bias, r->M, r->K, r->N);
}

static void *dalloc(size_t bytes) {
    void *p = ops_cuda.alloc(bytes);
    if (!p) {
        fprintf(stderr, "bench_gpu_ops: %s\n", laic_last_error());
        exit(1);
    }
    return p;
}

// max |got - ref| / max |ref| (scale-aware, as tests' max_rel_err); NaN counts as infinite.
static double max_rel_err_local(const float *got, const float *ref, size_t n) {
    double md = 0.0, mr = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (d != d) return INFINITY;
        if (d > md) md = d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return mr > 0 ? md / mr : md;
}

int main(int argc, char **argv) {
    int only = argc > 1 ? atoi(argv[1]) : -1;
    int batch = argc > 2 ? atoi(argv[2]) : 256;
    if (only < -1 || only > 3 || batch < 1) {
        fprintf(stderr, "usage: bench_gpu_ops [version 0..3 | -1 for all] [batch >= 1]\n");
        return 2;
    }
    if (ops_cuda_device_count() == 0) {
        printf("bench_gpu_ops: no CUDA device; waived\n");
        return 77;
    }
    char dev[512];
    ops_cuda_describe(dev, sizeof dev);
    printf("device %s\nbatch %d; CPU reference on rows [0,64) and the last 64\n", dev, batch);
    printf("%-16s %6s %5s %5s | %-12s | %9s | %8s | %9s\n", "shape", "M", "K", "N", "version",
           "ms", "TFLOP/s", "rel err");
    Rng rng;
    rng_init(&rng, 0, 0);
    int failed = 0;
    for (size_t s = 0; s < sizeof SHAPES / sizeof SHAPES[0]; s++) {
        const Shape sh = SHAPES[s];
        const int M = batch * sh.T, K = sh.K, N = sh.N, RR = M < 64 ? M : 64;
        const size_t na = (size_t)M * K, nw = (size_t)N * K, no = (size_t)M * N;
        float *a = mallocCheck(na * 4), *w = mallocCheck(nw * 4), *b = mallocCheck((size_t)N * 4);
        for (size_t i = 0; i < na; i++) a[i] = (float)rng_normal(&rng);
        for (size_t i = 0; i < nw; i++) w[i] = (float)rng_normal(&rng) * 0.05f;
        for (int i = 0; i < N; i++) b[i] = (float)rng_normal(&rng) * 0.5f;
        // CPU reference on the first and last RR rows (rows are independent).
        float *ref = mallocCheck((size_t)2 * RR * N * 4), *got = mallocCheck(no * 4);
        float *v0 = mallocCheck(no * 4);
        ops_cpu.matmul_forward(ref, a, w, b, RR, K, N);
        ops_cpu.matmul_forward(ref + (size_t)RR * N, a + (size_t)(M - RR) * K, w, b, RR, K, N);

        Run r = {0, M, K, N, NULL, NULL, NULL, NULL, NULL, NULL};
        r.out = dalloc(no * 4), r.inp = dalloc(na * 4), r.w = dalloc(nw * 4);
        r.bias = dalloc((size_t)N * 4), r.inp16 = dalloc(na * 2), r.w16 = dalloc(nw * 2);
        ops_cuda.to_device(r.inp, a, na * 4);
        ops_cuda.to_device(r.w, w, nw * 4);
        ops_cuda.to_device(r.bias, b, (size_t)N * 4);
        ops_cuda_f32_to_bf16(r.inp16, r.inp, na);
        ops_cuda_f32_to_bf16(r.w16, r.w, nw);

        for (int v = 0; v < 4; v++) {
            if (only >= 0 && v != only && v != 0) continue;   // v0 always: the full reference
            r.version = v;
            ops_cuda.memset0(r.out, no * 4);
            run_version(&r);
            ops_cuda.synchronize();
            ops_cuda.to_host(got, r.out, no * 4);
            if (v == 0) memcpy(v0, got, no * 4);
            double e1 = max_rel_err_local(got, ref, (size_t)RR * N);
            double e2 = max_rel_err_local(got + (size_t)(M - RR) * N, ref + (size_t)RR * N,
                                          (size_t)RR * N);
            double e3 = max_rel_err_local(got, v0, no);
            double e = e1 > e2 ? e1 : e2;
            if (e3 > e) e = e3;
            int ok = e <= TOL[v];
            failed += !ok;
            if (only >= 0 && v != only) continue;
            double ms = ok ? ops_cuda_time_ms(run_version, &r, 20) : 0.0;
            double tflops = ok && ms > 0 ? 2.0 * M * N * (double)K / (ms * 1e-3) / 1e12 : 0.0;
            printf("%-16s %6d %5d %5d | %-12s | %9.4f | %8.1f | %9.2e %s\n", sh.name, M, K, N,
                   VNAME[v], ms, tflops, e, ok ? "OK" : "NOT OK");
            fflush(stdout);
        }
        ops_cuda_set_matmul("fp32");
        free(a), free(w), free(b), free(ref), free(got), free(v0);
        ops_cuda.free(r.out), ops_cuda.free(r.inp), ops_cuda.free(r.w), ops_cuda.free(r.bias);
        ops_cuda.free(r.inp16), ops_cuda.free(r.w16);
    }
    printf("%s\n", failed ? "FAILED: some version is out of tolerance" : "all versions OK");
    return failed ? 1 : 0;
}
#endif
