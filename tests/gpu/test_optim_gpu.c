/*
 * test_optim_gpu.c — the shared training ops of ops_cuda (kernels/optim.cu adam_forward,
 * kernels/matmul.cu matmul_backward_weight) against ops_cpu (host/cpu/optim.c, matmul.c).
 *
 * Built into test_gpu (CUDA builds); without a device the program exits 77 (waived).
 * Written before any GPU run.
 *
 * Tolerances, and why:
 * - adam_forward: bitwise, over 6 steps, Adam and AdamW, with and without weight decay, on
 *   values that include subnormals and zero gradients: both sides are the same float
 *   operations in the same order with explicit round-to-nearest (no FMA, no flush-to-zero).
 * - matmul_backward_weight: dbias bitwise (one thread per column adds rows in order in double,
 *   as the CPU loop); dweight within 1e-5 of max |dW| (cuBLAS and OpenBLAS sum the M products
 *   in different trees: a few float ulp); accumulation (+=) onto a non-zero start checked.
 */
#include "../test.h"
#include "../synth.h"

#ifdef LAIC_CUDA

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/err.h"
#include "ops.h"
#include "rng.h"
#include "train/optim.h"
#include "../../kernels/ops_cuda.h"

#include "gpu_test.h"

TEST(gpu_optim_adam_bitwise_cpu) {
    need_gpu();
    Rng r;
    rng_init(&r, 5, 1);
    const size_t n = 100003;   // not a multiple of the block size
    const struct { double lr, b1, b2, eps, wd; int dec; } cs[] = {
        {1e-3, 0.9, 0.999, 1e-8, 0.0, 0}, {1e-4, 0.9, 0.999, 1e-8, 1e-4, 0},
        {1e-3, 0.9, 0.99, 1e-8, 0.0, 0},  {5e-5, 0.9, 0.999, 1e-8, 1e-2, 1},
    };
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        float *p = synth_randn(&r, n, 1.0);
        p[0] = 1e-40f;   // subnormal parameter and gradients
        float *m = calloc(n, sizeof *m), *v = calloc(n, sizeof *v);
        float *dp = gpu_upload(p, n * sizeof *p), *dm = gpu_upload(m, n * sizeof *m),
              *dv = gpu_upload(v, n * sizeof *v), *dg = gpu_alloc(n * sizeof(float));
        double *dsched = gpu_alloc(3 * sizeof(double));
        for (long t = 1; t <= 6; t++) {
            float *g = synth_randn(&r, n, 1e-3);
            g[1] = 0.0f;
            g[2] = 3e-41f;
            ops_cuda.to_device(dg, g, n * sizeof *g);
            double sched[3];
            adam_schedule(sched, cs[c].lr, cs[c].b1, cs[c].b2, t);
            ops_cuda.to_device(dsched, sched, sizeof sched);
            ops_cuda.adam_forward(dp, dm, dv, dg, dsched, n, cs[c].b1, cs[c].b2, cs[c].eps,
                                  cs[c].wd, cs[c].dec);
            ops_cpu.adam_forward(p, m, v, g, sched, n, cs[c].b1, cs[c].b2, cs[c].eps, cs[c].wd,
                                 cs[c].dec);
            free(g);
        }
        float *hp = gpu_download(dp, n * sizeof *p), *hm = gpu_download(dm, n * sizeof *m),
              *hv = gpu_download(dv, n * sizeof *v);
        CHECK(!memcmp(hp, p, n * sizeof *p) && !memcmp(hm, m, n * sizeof *m) &&
                  !memcmp(hv, v, n * sizeof *v),
              "case %zu (%s): p, m, v bitwise the CPU after 6 steps", c, cs[c].dec ? "AdamW" : "Adam");
        free(hp);
        free(hm);
        free(hv);
        ops_cuda.free(dp);
        ops_cuda.free(dm);
        ops_cuda.free(dv);
        ops_cuda.free(dg);
        ops_cuda.free(dsched);
        free(p);
        free(m);
        free(v);
    }
}

TEST(gpu_optim_matmul_backward_weight_vs_cpu) {
    need_gpu();
    Rng r;
    rng_init(&r, 6, 2);
    const int shapes[][3] = {{6400, 768, 2304}, {37, 13, 7}, {1, 5, 3}, {300, 512, 10}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int M = shapes[s][0], K = shapes[s][1], N = shapes[s][2];
        float *inp = synth_randn(&r, (size_t)M * K, 1.0), *dout = synth_randn(&r, (size_t)M * N, 1.0);
        float *dw = synth_randn(&r, (size_t)N * K, 1.0), *db = synth_randn(&r, (size_t)N, 1.0);
        float *ginp = gpu_upload(inp, (size_t)M * K * sizeof *inp),
              *gdout = gpu_upload(dout, (size_t)M * N * sizeof *dout),
              *gdw = gpu_upload(dw, (size_t)N * K * sizeof *dw), *gdb = gpu_upload(db, (size_t)N * sizeof *db);
        ops_cuda.matmul_backward_weight(gdw, gdb, gdout, ginp, M, K, N);
        ops_cpu.matmul_backward_weight(dw, db, dout, inp, M, K, N);
        float *hw = gpu_download(gdw, (size_t)N * K * sizeof *hw), *hb = gpu_download(gdb, (size_t)N * sizeof *hb);
        double mx = 0, md = 0;
        for (size_t i = 0; i < (size_t)N * K; i++) {
            mx = fmax(mx, fabs(dw[i]));
            md = fmax(md, fabs(hw[i] - dw[i]));
        }
        CHECK(md <= 1e-5 * mx, "%dx%dx%d: dweight max diff %.3g of max %.3g (tol 1e-5 relative)",
              M, K, N, md, mx);
        CHECK(!memcmp(hb, db, (size_t)N * sizeof *db), "%dx%dx%d: dbias bitwise", M, K, N);
        free(hw);
        free(hb);
        ops_cuda.free(ginp);
        ops_cuda.free(gdout);
        ops_cuda.free(gdw);
        ops_cuda.free(gdb);
        free(inp);
        free(dout);
        free(dw);
        free(db);
    }
}

#endif
