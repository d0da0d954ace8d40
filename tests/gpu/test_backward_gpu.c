/*
 * test_backward_gpu.c — the CUDA backward ops (kernels/) against the CPU reference (host/cpu/),
 * op by op on random inputs at CLIP text shapes, plus clip_text_backward end to end on the tiny
 * model. Built into build/test_gpu by `make test-gpu`; exits 77 ("waived") without a device.
 *
 * Tolerances, and why: fp32 ops ≤ 1e-4 scale-aware (max |gpu-cpu| / max |cpu|): different
 * summation orders (warp trees vs loops, cuBLAS vs OpenBLAS) and --use_fast_math (a few ulp);
 * copies (gather, pos_add's dembeds, residual) bitwise; the whole tiny text backward ≤ 1e-4.
 * Status: compiled, never run (no GPU where it was written).
 */
#include "../test.h"

#ifdef LAIC_CUDA

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/clip.h"
#include "io/err.h"
#include "ops.h"
#include "rng.h"
#include "../../kernels/ops_cuda.h"

static const OpsBackend *G = &ops_cuda, *REF = &ops_cpu;

#include "gpu_test.h"

static int near(const float *gpu, const float *cpu, size_t n, const char *what) {
    double rel = max_rel_err(gpu, cpu, n);
    printf("    %s: max|gpu-cpu|/max|cpu| = %.3g\n", what, rel);
    return CHECK(rel <= 1e-4, "%s: %.3g > 1e-4", what, rel);
}

TEST(gpu_backward_matmul_layernorm_l2norm_gelu) {
    need_gpu();
    Rng r;
    rng_init(&r, 7, 0);
    int M = 77 * 3, K = 512, N = 2048;
    float *dout = gpu_randn(&r, (size_t)M * N, 1), *w = gpu_randn(&r, (size_t)N * K, 0.02f);
    float *ref = mallocCheck((size_t)M * K * 4);
    REF->matmul_backward(ref, dout, w, M, K, N);
    float *dd = gpu_upload(dout, (size_t)M * N * 4), *dw = gpu_upload(w, (size_t)N * K * 4);
    // Prefilled with unrelated values (not ref: a backward that wrote nothing would pass), so
    // "+=" instead of "=" and unwritten elements both fail.
    float *junk = gpu_randn(&r, (size_t)M * K, 1);
    float *dr = gpu_upload(junk, (size_t)M * K * 4);
    G->matmul_backward(dr, dd, dw, M, K, N);
    float *got = gpu_download(dr, ((size_t)M * K) * sizeof(float));
    near(got, ref, (size_t)M * K, "matmul_backward");
    free(got); G->free(dr); G->free(dw); G->free(dd); free(ref); free(w); free(dout); free(junk);

    int R = 203, C = 500;   // tails: rows not a multiple of 8 warps per block, C of 32 lanes
    size_t n = (size_t)R * C;
    float *x = gpu_randn(&r, n, 2), *lw = gpu_randn(&r, C, 1), *lb = gpu_randn(&r, C, 1), *dy = gpu_randn(&r, n, 1);
    float *base = gpu_randn(&r, n, 1), *y = mallocCheck(n * 4), *mean = mallocCheck(R * 4),
          *rstd = mallocCheck(R * 4), *dx = mallocCheck(n * 4);
    REF->layernorm_forward(y, mean, rstd, x, lw, lb, R, C);
    memcpy(dx, base, n * 4);
    REF->layernorm_backward(dx, dy, x, lw, mean, rstd, R, C);
    float *gx = gpu_upload(x, n * 4), *gw = gpu_upload(lw, C * 4), *gdy = gpu_upload(dy, n * 4),
          *gdx = gpu_upload(base, n * 4),
          *gm = gpu_upload(mean, R * 4), *gr = gpu_upload(rstd, R * 4);
    G->layernorm_backward(gdx, gdy, gx, gw, gm, gr, R, C);
    got = gpu_download(gdx, n * sizeof(float));
    near(got, dx, n, "layernorm_backward (+=)");
    free(got);
    REF->l2norm_backward(dx, dy, x, R, C);
    G->l2norm_backward(gdx, gdy, gx, R, C);
    got = gpu_download(gdx, n * sizeof(float));
    near(got, dx, n, "l2norm_backward");
    free(got);
    REF->quickgelu_backward(dx, dy, x, n);
    G->quickgelu_backward(gdy, gdy, gx, n);   // in place
    got = gpu_download(gdy, n * sizeof(float));
    near(got, dx, n, "quickgelu_backward (in place)");
    free(got);
    {   // l2norm_backward at the 1e-12 floor (a zero row: dx = dout / 1e-12) and in place (dinp
        // == dout, allowed by host/ops.h), on its own tensor: the floor row's 1e12 scale would
        // hide every other row's error in a scale-aware comparison.
        const int R2 = 5, C2 = 40;
        const size_t n2 = (size_t)R2 * C2;
        float *x2 = gpu_randn(&r, n2, 1), *d2 = gpu_randn(&r, n2, 1), *ref2 = mallocCheck(n2 * 4);
        memset(x2 + C2, 0, C2 * 4);
        REF->l2norm_backward(ref2, d2, x2, R2, C2);
        float *gx2 = gpu_upload(x2, n2 * 4), *gd2 = gpu_upload(d2, n2 * 4);
        G->l2norm_backward(gd2, gd2, gx2, R2, C2);
        got = gpu_download(gd2, n2 * sizeof(float));
        CHECK(test_allclose(got, ref2, n2, 1e-6, 1e-4, "l2norm_backward floor + in place"),
              "l2norm_backward with a zero row, in place");
        free(got); free(x2); free(d2); free(ref2); G->free(gx2); G->free(gd2);
    }
    G->free(gx); G->free(gw); G->free(gdy); G->free(gdx); G->free(gm); G->free(gr);
    free(x); free(lw); free(lb); free(dy); free(base); free(y); free(mean); free(rstd); free(dx);
}

// max |gpu-cpu| / max |cpu| of one third of dqkv (B,T,3C): part 0 dq, 1 dk, 2 dv, each judged
// on its own scale, so a wrong dq cannot hide under dv's larger values.
static int near_part(const float *gpu, const float *cpu, int BT, int C, int part,
                     const char *what) {
    float *g = mallocCheck((size_t)BT * C * 4), *c = mallocCheck((size_t)BT * C * 4);
    for (int t = 0; t < BT; t++) {
        memcpy(g + (size_t)t * C, gpu + (size_t)t * 3 * C + (size_t)part * C, (size_t)C * 4);
        memcpy(c + (size_t)t * C, cpu + (size_t)t * 3 * C + (size_t)part * C, (size_t)C * 4);
    }
    int ok = near(g, c, (size_t)BT * C, what);
    free(g);
    free(c);
    return ok;
}

TEST(gpu_backward_attention) {
    need_gpu();
    Rng r;
    rng_init(&r, 8, 0);
    // The text shape (T = 77, 8 heads of 64), and odd ones: head size 4 / 16, T = 9 and 40
    // (> 32: a row spans two lane strides in the softmax backward).
    const int cfg[3][4] = {{3, 77, 512, 8}, {2, 9, 12, 3}, {2, 40, 48, 3}};
    for (int s = 0; s < 3; s++) {
        int B = cfg[s][0], T = cfg[s][1], C = cfg[s][2], NH = cfg[s][3];
        size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = (size_t)B * NH * T * T;
        float *qkv = gpu_randn(&r, nq, 1), *dout = gpu_randn(&r, no, 1);
        float *out = mallocCheck(no * 4), *att = mallocCheck(na * 4), *ref = mallocCheck(nq * 4);
        float *gq = gpu_upload(qkv, nq * 4), *gd = gpu_upload(dout, no * 4), *ga = gpu_nan(na),
              *go = gpu_nan(no);
        for (int causal = 1; causal >= 0; causal--) {
            printf("    B=%d T=%d C=%d NH=%d causal=%d\n", B, T, C, NH, causal);
            REF->attention_forward(out, att, qkv, B, T, C, NH, causal);
            REF->attention_backward(ref, dout, qkv, att, B, T, C, NH, causal);
            G->attention_forward(go, ga, gq, B, T, C, NH, causal);
            float *gdq = gpu_nan(nq);   // overwrites: every element must be written
            G->attention_backward(gdq, gd, gq, ga, B, T, C, NH, causal);
            float *got = gpu_download(gdq, nq * sizeof(float));
            near_part(got, ref, B * T, C, 0, causal ? "dq causal" : "dq");
            near_part(got, ref, B * T, C, 1, causal ? "dk causal" : "dk");
            near_part(got, ref, B * T, C, 2, causal ? "dv causal" : "dv");
            // deterministic: a second run is bitwise identical
            G->attention_backward(gdq, gd, gq, ga, B, T, C, NH, causal);
            float *again = gpu_download(gdq, nq * sizeof(float));
            CHECK(!memcmp(got, again, nq * 4), "attention_backward run-to-run bitwise");
            free(got); free(again);
            G->free(gdq);
        }
        G->free(gq); G->free(gd); G->free(ga); G->free(go);
        free(qkv); free(dout); free(out); free(att); free(ref);
    }
}

TEST(gpu_backward_copies) {
    need_gpu();
    Rng r;
    rng_init(&r, 9, 0);
    int B = 4, T = 20, C = 64;
    size_t n = (size_t)B * T * C;
    // dpos starts non-zero: it accumulates ("+="); dembeds starts NaN: every element written.
    float *dout = gpu_randn(&r, n, 1), *dpos = gpu_randn(&r, (size_t)T * C, 1), *de = mallocCheck(n * 4);
    float *gd = gpu_upload(dout, n * 4), *gde = gpu_nan(n),
          *gp = gpu_upload(dpos, (size_t)T * C * 4);
    REF->pos_add_backward(de, dpos, dout, B, T, C);
    G->pos_add_backward(gde, gp, gd, B, T, C);
    float *got = gpu_download(gde, n * sizeof(float)),
          *gotp = gpu_download(gp, ((size_t)T * C) * sizeof(float));
    CHECK(!memcmp(got, de, n * 4), "pos_add dembeds bitwise");
    near(gotp, dpos, (size_t)T * C, "pos_add dpos (+=)");
    free(got); free(gotp);
    G->pos_add_backward(gd, NULL, gd, B, T, C);   // in place, no dpos (both allowed)
    got = gpu_download(gd, n * sizeof(float));
    CHECK(!memcmp(got, dout, n * 4), "pos_add_backward in place leaves dout as it was");
    free(got);
    int32_t idx[4] = {19, 0, 7, 3};
    float *g4 = gpu_randn(&r, (size_t)B * C, 1);
    REF->gather_rows_backward(de, g4, idx, B, T, C);
    int32_t *gi = gpu_upload(idx, sizeof idx);
    float *gg = gpu_upload(g4, (size_t)B * C * 4);
    G->gather_rows_backward(gde, gg, gi, B, T, C);
    got = gpu_download(gde, n * sizeof(float));
    CHECK(!memcmp(got, de, n * 4), "gather_rows_backward bitwise");
    free(got);
    G->residual_backward(gde, gp, gd, (size_t)T * C);
    got = gpu_download(gde, ((size_t)T * C) * sizeof(float));
    CHECK(!memcmp(got, dout, (size_t)T * C * 4), "residual_backward da bitwise");
    free(got);
    got = gpu_download(gp, ((size_t)T * C) * sizeof(float));
    CHECK(!memcmp(got, dout, (size_t)T * C * 4), "residual_backward db bitwise");
    free(got);
    G->free(gd); G->free(gde); G->free(gp); G->free(gi); G->free(gg);
    free(dout); free(dpos); free(de); free(g4);
}

TEST(gpu_backward_tiny_text_model) {
    need_gpu();
    ClipWeights w;
    memset(&w, 0, sizeof w);
    REQUIRE(clip_weights_load(&w, "tests/fixtures/clip/tiny_f16.safetensors") == 0, "load: %s",
            laic_last_error());
    Rng r;
    rng_init(&r, 10, 0);
    int B = 3, T = 12, C = w.cfg.text_width, E = w.cfg.embed_dim;
    int32_t eot[3] = {11, 4, 8};
    float *e = gpu_randn(&r, (size_t)B * T * C, 0.05f), *g = gpu_randn(&r, (size_t)B * E, 1);
    float *f1 = mallocCheck((size_t)B * E * 4), *f2 = mallocCheck((size_t)B * E * 4);
    float *d1 = mallocCheck((size_t)B * T * C * 4), *d2 = mallocCheck((size_t)B * T * C * 4);
    ClipModel *mc = clip_model_create_train(&w, REF, B), *mg = clip_model_create_train(&w, G, B);
    REQUIRE(mc && mg, "create: %s", laic_last_error());
    CHECK(clip_encode_text_embeds(mc, e, eot, B, T, f1) == 0, "cpu fwd");
    CHECK(clip_text_backward(mc, g, d1) == 0, "cpu bwd");
    CHECK(clip_encode_text_embeds(mg, e, eot, B, T, f2) == 0, "gpu fwd");
    CHECK(clip_text_backward(mg, g, d2) == 0, "gpu bwd");
    near(f2, f1, (size_t)B * E, "tiny text features");
    near(d2, d1, (size_t)B * T * C, "tiny text dE");
    clip_model_free(mc);
    clip_model_free(mg);
    clip_weights_free(&w);
    free(e); free(g); free(f1); free(f2); free(d1); free(d2);
}

#endif
