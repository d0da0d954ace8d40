/*
 * test_vit_gpu.c — the CUDA ops added for training the image encoder (issue 16) against the CPU
 * reference on random inputs at ViT-B/32 shapes and odd tails, plus the whole tiny-ViT backward
 * (every parameter, the pixel gradient, LoRA) on CUDA vs the CPU. Built into build/test_gpu;
 * exits 77 ("waived") without a device.
 *
 * Tolerances, and why:
 * - copies (dpatch_emb, dpixels) and the embedding sums (one thread per (t,c), b in order, in
 *   double: the CPU's order) bitwise; grad_clip bitwise given the same squared norm (explicit
 *   round-to-nearest float ops on both sides);
 * - LayerNorm weight gradients: the same double terms summed in another fixed order: ≤ 1e-6 of
 *   the largest entry; sumsq ≤ 1e-12 relative;
 * - fp32 GEMMs (LoRA, the whole backward): cuBLAS vs OpenBLAS summation orders, ≤ 1e-4
 *   scale-aware (max|gpu−cpu| / max|cpu|); bf16 operands with fp32 accumulation ≤ 3e-2 (8 bits of
 *   mantissa on both operands, sums of hundreds of terms).
 * Every output starts as NaN or as a non-zero start where it accumulates, so an unwritten
 * element or "=" for "+=" fails. Status: compiled, never run (no GPU where it was written).
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

static int near_tol(const float *gpu, const float *cpu, size_t n, double tol, const char *what) {
    double rel = max_rel_err(gpu, cpu, n);
    printf("    %s: max|gpu-cpu|/max|cpu| = %.3g\n", what, rel);
    return CHECK(rel <= tol, "%s: %.3g > %g", what, rel, tol);
}

TEST(gpu_vit_layernorm_weight_embed_im2col) {
    need_gpu();
    Rng r;
    rng_init(&r, 16, 0);
    // rows not a multiple of the 256-row chunk or of 8 warps, columns not of 32
    const int shapes[2][2] = {{128 * 50, 768}, {203, 500}};
    for (int s = 0; s < 2; s++) {
        int N = shapes[s][0], C = shapes[s][1];
        size_t n = (size_t)N * C;
        float *x = gpu_randn(&r, n, 2), *w = gpu_randn(&r, C, 1), *b = gpu_randn(&r, C, 1), *dy = gpu_randn(&r, n, 1);
        float *y = mallocCheck(n * 4), *mean = mallocCheck(N * 4), *rstd = mallocCheck(N * 4);
        float *dw = gpu_randn(&r, C, 1), *db = gpu_randn(&r, C, 1);
        float *gdw = gpu_upload(dw, C * 4), *gdb = gpu_upload(db, C * 4);
        float *gx = gpu_upload(x, n * 4), *gdy = gpu_upload(dy, n * 4);
        REF->layernorm_forward(y, mean, rstd, x, w, b, N, C);
        float *gm = gpu_upload(mean, N * 4), *gr = gpu_upload(rstd, N * 4);
        G->layernorm_backward_weight(gdw, gdb, gdy, gx, gm, gr, N, C);
        float *hw = gpu_download(gdw, C * 4), *hb = gpu_download(gdb, C * 4);
        // run-to-run: the same start gives the same bits
        G->to_device(gdw, dw, C * 4);
        G->layernorm_backward_weight(gdw, NULL, gdy, gx, gm, gr, N, C);
        float *hw2 = gpu_download(gdw, C * 4);
        CHECK(!memcmp(hw, hw2, C * 4), "layernorm dweight run-to-run bitwise");
        REF->layernorm_backward_weight(dw, db, dy, x, mean, rstd, N, C);
        near_tol(hw, dw, C, 1e-6, "layernorm dweight (+=)");
        near_tol(hb, db, C, 1e-6, "layernorm dbias (+=)");
        free(hw); free(hb); free(hw2);
        G->free(gdw); G->free(gdb); G->free(gx); G->free(gdy); G->free(gm); G->free(gr);
        free(x); free(w); free(b); free(dy); free(y); free(mean); free(rstd); free(dw); free(db);
    }
    // vision_embed_backward: ViT-B/32 (B 4, 49 patches, 768) and a tail shape
    const int es[2][3] = {{4, 49, 768}, {3, 5, 33}};
    for (int s = 0; s < 2; s++) {
        int B = es[s][0], NP = es[s][1], C = es[s][2], T = NP + 1;
        size_t n = (size_t)B * T * C;
        float *dout = gpu_randn(&r, n, 1), *dc = gpu_randn(&r, C, 1), *dp = gpu_randn(&r, (size_t)T * C, 1);
        float *pe = mallocCheck((size_t)B * NP * C * 4);
        float *gdo = gpu_upload(dout, n * 4), *gdc = gpu_upload(dc, C * 4),
              *gdp = gpu_upload(dp, (size_t)T * C * 4), *gpe = gpu_nan((size_t)B * NP * C);
        REF->vision_embed_backward(pe, dc, dp, dout, B, NP, C);
        G->vision_embed_backward(gpe, gdc, gdp, gdo, B, NP, C);
        float *h1 = gpu_download(gpe, (size_t)B * NP * C * 4), *h2 = gpu_download(gdc, C * 4),
              *h3 = gpu_download(gdp, (size_t)T * C * 4);
        CHECK(!memcmp(h1, pe, (size_t)B * NP * C * 4), "dpatch_emb bitwise");
        CHECK(!memcmp(h2, dc, (size_t)C * 4), "dclass_emb (+=) bitwise");
        CHECK(!memcmp(h3, dp, (size_t)T * C * 4), "dpos (+=) bitwise");
        free(h2);
        REF->vision_embed_backward(NULL, dc, NULL, dout, B, NP, C);   // class alone
        G->vision_embed_backward(NULL, gdc, NULL, gdo, B, NP, C);
        h2 = gpu_download(gdc, C * 4);
        CHECK(!memcmp(h2, dc, (size_t)C * 4), "dclass_emb alone bitwise");
        free(h1); free(h2); free(h3); free(dout); free(dc); free(dp); free(pe);
        G->free(gdo); G->free(gdc); G->free(gdp); G->free(gpe);
    }
    // im2col_backward: 224 / 32 and 36 / 12
    const int is[2][3] = {{2, 224, 32}, {3, 36, 12}};
    for (int s = 0; s < 2; s++) {
        int B = is[s][0], H = is[s][1], P = is[s][2];
        size_t n = (size_t)B * 3 * H * H;
        float *dpat = gpu_randn(&r, n, 1), *ref = mallocCheck(n * 4);
        float *gd = gpu_upload(dpat, n * 4), *gp = gpu_nan(n);
        REF->im2col_backward(ref, dpat, B, H, P);
        G->im2col_backward(gp, gd, B, H, P);
        float *h = gpu_download(gp, n * 4);
        CHECK(!memcmp(h, ref, n * 4), "im2col_backward bitwise (H %d, P %d)", H, P);
        free(h); free(dpat); free(ref); G->free(gd); G->free(gp);
    }
}

// LoRA at the ViT-B/32 shape (M = 2 x 50 tokens, C = 768, r = 128) on the q and v blocks of a
// fused qkv, fp32 then bf16 (forward and backward switches).
TEST(gpu_vit_lora) {
    need_gpu();
    Rng r;
    rng_init(&r, 17, 0);
    const int M = 100, K = 768, N = 768, rk = 128, ldo = 3 * N;
    const float scale = 1.0f;
    size_t nq = (size_t)M * ldo;
    float *x = gpu_randn(&r, (size_t)M * K, 1), *D = gpu_randn(&r, (size_t)rk * K, 0.036f),
          *U = gpu_randn(&r, (size_t)N * rk, 0.05f), *qkv = gpu_randn(&r, nq, 1), *dq = gpu_randn(&r, nq, 1);
    float *h = mallocCheck((size_t)M * rk * 4), *out = mallocCheck(nq * 4),
          *dh = mallocCheck((size_t)M * rk * 4);
    float *di = gpu_randn(&r, (size_t)M * K, 1), *dd = gpu_randn(&r, (size_t)rk * K, 1),
          *du = gpu_randn(&r, (size_t)N * rk, 1);
    float *gx = gpu_upload(x, (size_t)M * K * 4), *gD = gpu_upload(D, (size_t)rk * K * 4),
          *gU = gpu_upload(U, (size_t)N * rk * 4), *gdq = gpu_upload(dq, nq * 4);
    for (int bf = 0; bf < 2; bf++) {
        const double tol = bf ? 3e-2 : 1e-4;
        memcpy(out, qkv, nq * 4);
        REF->lora_forward(out, h, x, D, U, scale, M, K, N, rk, ldo);
        REF->lora_forward(out + 2 * N, h, x, D, U, scale, M, K, N, rk, ldo);
        float *i0 = mallocCheck((size_t)M * K * 4), *d0 = mallocCheck((size_t)rk * K * 4),
              *u0 = mallocCheck((size_t)N * rk * 4);
        memcpy(i0, di, (size_t)M * K * 4);
        memcpy(d0, dd, (size_t)rk * K * 4);
        memcpy(u0, du, (size_t)N * rk * 4);
        REF->lora_backward(i0, d0, u0, dh, dq + 2 * N, x, h, D, U, scale, M, K, N, rk, ldo);
        if (ops_cuda_set_matmul(bf ? "bf16-cublas" : "fp32")) CHECK(0, "%s", laic_last_error());
        ops_cuda_set_backward_bf16(bf);
        float *go = gpu_upload(qkv, nq * 4), *gh = gpu_nan((size_t)M * rk),
              *gdh = gpu_nan((size_t)M * rk);
        float *gi = gpu_upload(di, (size_t)M * K * 4), *gd = gpu_upload(dd, (size_t)rk * K * 4),
              *gu = gpu_upload(du, (size_t)N * rk * 4);
        G->lora_forward(go, gh, gx, gD, gU, scale, M, K, N, rk, ldo);
        G->lora_forward(go + 2 * N, gh, gx, gD, gU, scale, M, K, N, rk, ldo);
        G->lora_backward(gi, gd, gu, gdh, gdq + 2 * N, gx, gh, gD, gU, scale, M, K, N, rk, ldo);
        float *ho = gpu_download(go, nq * 4), *hi = gpu_download(gi, (size_t)M * K * 4),
              *hd = gpu_download(gd, (size_t)rk * K * 4), *hu = gpu_download(gu, (size_t)N * rk * 4);
        // judge the LoRA increments, not the large starting values they were added to
        for (size_t i = 0; i < nq; i++) ho[i] -= qkv[i], out[i] -= qkv[i];
        for (size_t i = 0; i < (size_t)M * K; i++) hi[i] -= di[i], i0[i] -= di[i];
        for (size_t i = 0; i < (size_t)rk * K; i++) hd[i] -= dd[i], d0[i] -= dd[i];
        for (size_t i = 0; i < (size_t)N * rk; i++) hu[i] -= du[i], u0[i] -= du[i];
        near_tol(ho, out, nq, tol, bf ? "lora forward bf16" : "lora forward");
        near_tol(hi, i0, (size_t)M * K, tol, bf ? "lora dinp bf16" : "lora dinp (+=)");
        near_tol(hd, d0, (size_t)rk * K, tol, bf ? "lora ddown bf16" : "lora ddown (+=)");
        near_tol(hu, u0, (size_t)N * rk, tol, bf ? "lora dup bf16" : "lora dup (+=)");
        free(ho); free(hi); free(hd); free(hu); free(i0); free(d0); free(u0);
        G->free(go); G->free(gh); G->free(gdh); G->free(gi); G->free(gd); G->free(gu);
    }
    ops_cuda_set_matmul("fp32");
    ops_cuda_set_backward_bf16(0);
    // the bf16 backward switch on the frozen-weight GEMMs too
    {
        const int Mm = 300, Kk = 768, Nn = 3072;
        float *dout = gpu_randn(&r, (size_t)Mm * Nn, 1), *w = gpu_randn(&r, (size_t)Nn * Kk, 0.02f),
              *inp = gpu_randn(&r, (size_t)Mm * Kk, 1);
        float *ref = mallocCheck((size_t)Mm * Kk * 4), *rw = calloc((size_t)Nn * Kk, 4);
        REF->matmul_backward(ref, dout, w, Mm, Kk, Nn);
        REF->matmul_backward_weight(rw, NULL, dout, inp, Mm, Kk, Nn);
        float *gd = gpu_upload(dout, (size_t)Mm * Nn * 4), *gw = gpu_upload(w, (size_t)Nn * Kk * 4),
              *gi = gpu_upload(inp, (size_t)Mm * Kk * 4), *gr = gpu_nan((size_t)Mm * Kk),
              *gdw = gpu_alloc((size_t)Nn * Kk * 4);
        G->memset0(gdw, (size_t)Nn * Kk * 4);
        ops_cuda_set_backward_bf16(1);
        G->matmul_backward(gr, gd, gw, Mm, Kk, Nn);
        G->matmul_backward_weight(gdw, NULL, gd, gi, Mm, Kk, Nn);
        ops_cuda_set_backward_bf16(0);
        float *h = gpu_download(gr, (size_t)Mm * Kk * 4), *hw = gpu_download(gdw, (size_t)Nn * Kk * 4);
        near_tol(h, ref, (size_t)Mm * Kk, 3e-2, "matmul_backward bf16");
        near_tol(hw, rw, (size_t)Nn * Kk, 3e-2, "matmul_backward_weight bf16");
        free(h); free(hw); free(dout); free(w); free(inp); free(ref); free(rw);
        G->free(gd); G->free(gw); G->free(gi); G->free(gr); G->free(gdw);
    }
    G->free(gx); G->free(gD); G->free(gU); G->free(gdq);
    free(x); free(D); free(U); free(qkv); free(dq); free(h); free(out); free(dh);
    free(di); free(dd); free(du);
}

TEST(gpu_vit_sumsq_clip) {
    need_gpu();
    Rng r;
    rng_init(&r, 18, 0);
    const size_t n = 3 * 1000 * 1000 + 7;   // > SUMSQ_BLOCKS * 256: every thread loops
    float *x = gpu_randn(&r, n, 0.01f);
    double cpu = 0.25, h = 0.0;               // accumulates onto a start
    REF->sumsq_forward(&cpu, x, n);
    float *gx = gpu_upload(x, n * 4);
    double *gs = gpu_upload(&(double){0.25}, sizeof(double));
    G->sumsq_forward(gs, gx, n);
    gpu_download_into(&h, gs, sizeof h);
    printf("    sumsq cpu %.17g gpu %.17g\n", cpu, h);
    CHECK(fabs(h - cpu) <= 1e-12 * cpu, "sumsq");
    double again = 0.0;
    G->to_device(gs, &(double){0.25}, sizeof(double));
    G->sumsq_forward(gs, gx, n);
    gpu_download_into(&again, gs, sizeof again);
    CHECK(again == h, "sumsq run-to-run bitwise");
    for (int c = 0; c < 2; c++) {   // clipping (max 1) and not (max 1e6)
        const double mx = c ? 1e6 : 1.0;
        float *ref = mallocCheck(n * 4);
        memcpy(ref, x, n * 4);
        REF->grad_clip_forward(ref, n, &h, mx);
        float *gy = gpu_upload(x, n * 4);
        G->grad_clip_forward(gy, n, gs, mx);
        float *got = gpu_download(gy, n * 4);
        CHECK(!memcmp(got, ref, n * 4), "grad_clip bitwise (max_norm %g)", mx);
        free(ref); free(got); G->free(gy);
    }
    free(x); G->free(gx); G->free(gs);
}


// The whole tiny-ViT backward on CUDA vs the CPU (fp32), for every spec kind, and the trainer's
// steps; then the bf16 path (forward and backward GEMMs on bf16 operands) against the CPU's fp32.
static void compare_grads(ClipModel *mc, ClipModel *mg, double tol, const char *what) {
    const size_t n = clip_trainable_numel(mc);
    float *gc = mallocCheck(n * 4), *gg = mallocCheck(n * 4);
    REF->copy(gc, clip_trainable_grads(mc), n * 4);
    gpu_download_into(gg, clip_trainable_grads(mg), n * 4);
    const ClipTensorInfo *info;
    int nt = clip_trainable_tensors(mc, &info);
    for (int i = 0; i < nt; i++) {
        char name[160];
        snprintf(name, sizeof name, "%s %s", what, info[i].name);
        near_tol(gg + info[i].offset, gc + info[i].offset, info[i].numel, tol, name);
    }
    free(gc);
    free(gg);
}

TEST(gpu_vit_tiny_model) {
    need_gpu();
    ClipWeights w;
    memset(&w, 0, sizeof w);
    REQUIRE(clip_weights_load(&w, "tests/fixtures/clip/tiny_f16.safetensors") == 0, "load: %s",
            laic_last_error());
    Rng r;
    rng_init(&r, 19, 0);
    const int B = 5, E = w.cfg.embed_dim, S = w.cfg.image_size;
    const size_t npix = (size_t)B * 3 * S * S;
    float *pix = gpu_randn(&r, npix, 1), *g = gpu_randn(&r, (size_t)B * E, 1);
    float *fc = mallocCheck((size_t)B * E * 4), *fg = mallocCheck((size_t)B * E * 4);
    float *dc = mallocCheck(npix * 4), *dg = mallocCheck(npix * 4);
    ClipVisionTrainSpec specs[3] = {clip_spec_all(), clip_spec_lora(4, 8.0f),
                                    clip_spec_full_last_k(1)};
    specs[0].dpixels = 1;
    specs[1].recompute = 1;
    specs[1].train_proj = 1;
    for (int s = 0; s < 3; s++) {
        ClipModel *mc = clip_model_create_vision_train(&w, REF, B, &specs[s], NULL, 3);
        ClipModel *mg = clip_model_create_vision_train(&w, G, B, &specs[s], "fp32", 3);
        REQUIRE(mc && mg, "create: %s", laic_last_error());
        if (s == 1) {   // a non-zero U, so the D gradients are not all 0
            const size_t n = clip_trainable_numel(mc);
            float *p = mallocCheck(n * 4);
            clip_trainable_download(mc, p);
            for (size_t i = 0; i < n; i++) p[i] += 0.02f * (float)rng_normal(&r);
            clip_trainable_upload(mc, p);
            clip_trainable_upload(mg, p);
            free(p);
        }
        CHECK(clip_encode_images(mc, pix, B, fc) == 0 && clip_encode_images(mg, pix, B, fg) == 0,
              "fwd: %s", laic_last_error());
        near_tol(fg, fc, (size_t)B * E, 1e-4, "tiny ViT features (training model)");
        CHECK(clip_image_backward(mc, g, s == 0 ? dc : NULL) == 0 &&
                  clip_image_backward(mg, g, s == 0 ? dg : NULL) == 0,
              "bwd: %s", laic_last_error());
        compare_grads(mc, mg, 1e-4, s == 0 ? "all" : s == 1 ? "lora" : "full_last_k");
        if (s == 0) near_tol(dg, dc, npix, 1e-4, "d pixels");
        clip_model_free(mc);
        clip_model_free(mg);
    }
    // bf16 LoRA (the SEIC configuration): bf16 operands, fp32 accumulation, both directions
    ClipModel *mc = clip_model_create_vision_train(&w, REF, B, &specs[1], NULL, 3);
    ClipModel *mb = clip_model_create_vision_train(&w, G, B, &specs[1], "bf16", 3);
    REQUIRE(mc && mb, "create bf16: %s", laic_last_error());
    CHECK(clip_encode_images(mc, pix, B, fc) == 0 && clip_encode_images(mb, pix, B, fg) == 0, "fwd");
    near_tol(fg, fc, (size_t)B * E, 3e-2, "tiny ViT features bf16");
    CHECK(clip_image_backward(mc, g, NULL) == 0 && clip_image_backward(mb, g, NULL) == 0, "bwd");
    compare_grads(mc, mb, 1e-1, "lora bf16");
    CHECK(ops_cuda_get_backward_bf16() == 1, "the bf16 model selected the bf16 backward");
    clip_model_free(mc);
    clip_model_free(mb);
    free(pix); free(g); free(fc); free(fg); free(dc); free(dg);
    clip_weights_free(&w);
}

#endif
