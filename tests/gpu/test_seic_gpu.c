/*
 * test_seic_gpu.c — the SEIC ops of ops_cuda (kernels/seic.cu) against ops_cpu (host/cpu/seic.c),
 * and the stage-1 step (host/train/seic.c) on both backends.
 *
 * Built into test_gpu (CUDA builds); without a device the program exits 77 (waived).
 * Written before any GPU run.
 *
 * Tolerances, and why: the CPU reference works in double throughout; the GPU keeps the
 * normalised rows, probabilities and similarity matrices in float (cuBLAS fp32 GEMMs, TF32 off)
 * and sums in double, so results agree to float rounding of O(E)-term dot products:
 *   terms |a − r| ≤ 1e-5 (1 + |r|); gradients |a − r| ≤ 1e-5·max|r| + 1e-4·|r| per tensor;
 *   histogram 1e-6; confidence weights 1e-6, pseudo-labels exact (logits with clear maxima).
 * The argmax-driven parts (centres, validity, histogram counts) are exact because the inputs
 * have no near-ties. Reruns are compared bitwise (fixed-order reductions, no atomics).
 * Shapes go past the 256-thread block: b = 300 rows, and K = 300 clusters (L_ass is K×K).
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
#include "model/clip.h"
#include "train/seic.h"

#include "gpu_test.h"

static int close_rel(const float *a, const float *r, size_t n, double atol_frac, double rtol,
                     const char *what) {
    double mx = 0, worst = 0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(r[i]));
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - r[i]);
        worst = fmax(worst, d);
        if (!(d <= atol_frac * mx + rtol * fabs(r[i]))) ok = 0;   // NaN fails
    }
    printf("    %s %s: max abs %.3g (max |ref| %.3g)\n", ok ? "OK" : "NOT OK", what, worst, mx);
    return ok;
}

typedef struct {
    int b, K, E;
    int bias;    // 0 none, 1 clusters 1..2 never win for images, 2 images collapse to cluster 0
    float logs;
} AlignCase;

static void align_case(const AlignCase *c, uint64_t seed) {
    const int b = c->b, K = c->K, E = c->E;
    Rng r;
    rng_init(&r, seed, 7);
    float *z[2], *l[2];
    for (int m = 0; m < 2; m++) {
        z[m] = synth_randn(&r, (size_t)b * E, 1.0);
        synth_normalize_rows(z[m], b, E);
        l[m] = synth_randn(&r, (size_t)b * K, 2.0);
        for (int i = 0; i < b; i++) {
            if (c->bias == 1 && m == 0) l[m][(size_t)i * K + 1] -= 30, l[m][(size_t)i * K + 2] -= 30;
            if (c->bias == 2 && m == 0) l[m][(size_t)i * K] += 30;
        }
    }
    float *h = synth_randn(&r, (size_t)K, 1.0), hs = 0;
    for (int k = 0; k < K; k++) hs += (h[k] = fabsf(h[k]) + 0.05f);
    for (int k = 0; k < K; k++) h[k] /= hs;
    h[0] = 1e-4f;   // below the floor
    SeicLossCfg cfg;
    seic_loss_cfg_default(&cfg);
    // CPU
    float *cdz[2], *cdl[2], cdlogs, *ch = mallocCheck((size_t)K * sizeof *ch);
    memcpy(ch, h, (size_t)K * sizeof *ch);
    for (int m = 0; m < 2; m++) {
        cdz[m] = mallocCheck((size_t)b * E * sizeof(float));
        cdl[m] = mallocCheck((size_t)b * K * sizeof(float));
    }
    double ct[5];
    ops_cpu.seic_align_loss_forward_backward(ct, cdz[0], cdz[1], cdl[0], cdl[1], &cdlogs, ch, z[0], z[1],
                                             l[0], l[1], &c->logs, b, K, E, &cfg);
    // GPU, twice (bitwise rerun)
    float *dzg[2], *dlg[2], *zg[2], *lg[2];
    for (int m = 0; m < 2; m++) {
        zg[m] = gpu_upload(z[m], (size_t)b * E * sizeof(float));
        lg[m] = gpu_upload(l[m], (size_t)b * K * sizeof(float));
        dzg[m] = gpu_nan((size_t)b * E);
        dlg[m] = gpu_nan((size_t)b * K);
    }
    float *hg = gpu_upload(h, (size_t)K * sizeof(float)), *lsg = gpu_upload(&c->logs, sizeof(float));
    float *dlsg = gpu_nan(1);
    double *tg = gpu_alloc(5 * sizeof(double)), gt[5], gt2[5];
    ops_cuda.seic_align_loss_forward_backward(tg, dzg[0], dzg[1], dlg[0], dlg[1], dlsg, hg, zg[0], zg[1],
                                              lg[0], lg[1], lsg, b, K, E, &cfg);
    gpu_download_into(gt, tg, sizeof gt);
    float *gdz[2], *gdl[2], *gh = gpu_download(hg, (size_t)K * sizeof(float)), gdlogs;
    gpu_download_into(&gdlogs, dlsg, sizeof gdlogs);
    for (int m = 0; m < 2; m++) {
        gdz[m] = gpu_download(dzg[m], (size_t)b * E * sizeof(float));
        gdl[m] = gpu_download(dlg[m], (size_t)b * K * sizeof(float));
    }
    printf("    b %d K %d E %d: terms gpu %.6f %.6f %.6f %.6f %.6f cpu %.6f %.6f %.6f %.6f %.6f\n", b, K,
           E, gt[0], gt[1], gt[2], gt[3], gt[4], ct[0], ct[1], ct[2], ct[3], ct[4]);
    for (int i = 0; i < 5; i++)
        CHECK(fabs(gt[i] - ct[i]) <= 1e-5 * (1 + fabs(ct[i])), "term %d: %.9g vs %.9g", i, gt[i], ct[i]);
    CHECK(close_rel(gdz[0], cdz[0], (size_t)b * E, 1e-5, 1e-4, "dz_I"), "dz_I");
    CHECK(close_rel(gdz[1], cdz[1], (size_t)b * E, 1e-5, 1e-4, "dz_T"), "dz_T");
    CHECK(close_rel(gdl[0], cdl[0], (size_t)b * K, 1e-5, 1e-4, "dl_I"), "dl_I");
    CHECK(close_rel(gdl[1], cdl[1], (size_t)b * K, 1e-5, 1e-4, "dl_T"), "dl_T");
    CHECK(fabs(gdlogs - cdlogs) <= 1e-5 * (1e-3 + fabs(cdlogs)), "dlog s %.9g vs %.9g", gdlogs, cdlogs);
    double hw = 0;
    for (int k = 0; k < K; k++) hw = fmax(hw, fabs(gh[k] - ch[k]));
    CHECK(hw <= 1e-6, "histogram off by %.3g", hw);
    // rerun from the same histogram: bitwise
    ops_cuda.to_device(hg, h, (size_t)K * sizeof(float));
    ops_cuda.seic_align_loss_forward_backward(tg, dzg[0], dzg[1], dlg[0], dlg[1], dlsg, hg, zg[0], zg[1],
                                              lg[0], lg[1], lsg, b, K, E, &cfg);
    gpu_download_into(gt2, tg, sizeof gt2);
    float *again = gpu_download(dzg[0], (size_t)b * E * sizeof(float));
    CHECK(!memcmp(gt, gt2, sizeof gt) && !memcmp(again, gdz[0], (size_t)b * E * sizeof(float)),
          "rerun bitwise");
    free(again);
    for (int m = 0; m < 2; m++) {
        free(z[m]), free(l[m]), free(cdz[m]), free(cdl[m]), free(gdz[m]), free(gdl[m]);
        ops_cuda.free(zg[m]), ops_cuda.free(lg[m]), ops_cuda.free(dzg[m]), ops_cuda.free(dlg[m]);
    }
    free(h), free(ch), free(gh);
    ops_cuda.free(hg), ops_cuda.free(lsg), ops_cuda.free(dlsg), ops_cuda.free(tg);
}

TEST(gpu_seic_align_loss_matches_cpu) {
    need_gpu();
    const AlignCase cs[] = {
        {300, 7, 40, 0, 2.6592600f},    // b > 256 threads; ordinary
        {37, 300, 16, 0, 2.6592600f},   // K > 256: L_ass is 300×300 over 37-long columns
        {64, 9, 24, 1, 2.6592600f},     // clusters empty for images: L_ctr over a subset
        {50, 5, 12, 2, 5.3f},           // image collapse: L_ctr = 0; scale capped (no dlog s)
        {1, 4, 8, 0, 2.6592600f},       // one row: L_ins = 0
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) align_case(&cs[i], 100 + i);
}

TEST(gpu_seic_self_loss_matches_cpu) {
    need_gpu();
    Rng r;
    rng_init(&r, 9, 9);
    const int b = 300, K = 9;
    float *lw = synth_randn(&r, (size_t)b * K, 2.0), *ls = synth_randn(&r, (size_t)b * K, 2.0);
    double sc[3] = {0, 0, 0}, sg[3] = {0, 0, 0};
    float *dlw = gpu_upload(lw, (size_t)b * K * sizeof(float)), *dls_in = gpu_upload(ls, (size_t)b * K * sizeof(float));
    float *gd = gpu_nan((size_t)b * K), *gw = gpu_nan((size_t)b);
    int32_t *gy = gpu_alloc((size_t)b * sizeof(int32_t));
    double *gst = gpu_upload(sg, sizeof sg), *gl = gpu_alloc(sizeof(double));
    float *cd = mallocCheck((size_t)b * K * sizeof *cd), *cw = mallocCheck((size_t)b * sizeof *cw);
    int32_t *cy = mallocCheck((size_t)b * sizeof *cy);
    for (int step = 0; step < 3; step++) {   // the first batch initialises the EMA, then momentum
        double cl, glv;
        ops_cpu.seic_self_loss_forward_backward(&cl, cd, cw, cy, sc, lw, ls, b, K, 0.999);
        ops_cuda.seic_self_loss_forward_backward(gl, gd, gw, gy, gst, dlw, dls_in, b, K, 0.999);
        gpu_download_into(&glv, gl, sizeof glv);
        gpu_download_into(sg, gst, sizeof sg);
        float *hd = gpu_download(gd, (size_t)b * K * sizeof(float)), *hw = gpu_download(gw, (size_t)b * sizeof(float));
        int32_t *hy = gpu_download(gy, (size_t)b * sizeof(int32_t));
        CHECK(!memcmp(hy, cy, (size_t)b * sizeof *cy), "step %d: pseudo-labels", step);
        CHECK(close_rel(hw, cw, (size_t)b, 1e-6, 1e-6, "weights"), "step %d weights", step);
        CHECK(close_rel(hd, cd, (size_t)b * K, 1e-5, 1e-4, "dL2/dls"), "step %d dls", step);
        CHECK(fabs(glv - cl) <= 1e-6 * fabs(cl), "step %d loss %.9g vs %.9g", step, glv, cl);
        CHECK(fabs(sg[0] - sc[0]) <= 1e-12 && fabs(sg[1] - sc[1]) <= 1e-12 && sg[2] == sc[2],
              "step %d: EMA %.12g %.12g vs %.12g %.12g", step, sg[0], sg[1], sc[0], sc[1]);
        free(hd), free(hw), free(hy);
        for (size_t i = 0; i < (size_t)b * K; i++) lw[i] += 0.3f * (float)rng_normal(&r);
        ops_cuda.to_device(dlw, lw, (size_t)b * K * sizeof(float));
    }
    free(lw), free(ls), free(cd), free(cw), free(cy);
    ops_cuda.free(dlw), ops_cuda.free(dls_in), ops_cuda.free(gd), ops_cuda.free(gw), ops_cuda.free(gy);
    ops_cuda.free(gst), ops_cuda.free(gl);
}

TEST(gpu_seic_stage1_steps_match_cpu) {
    // Three stage-1 steps of the heads (matmuls, l2norm, the loss, weight gradients, Adam) on
    // both backends from the same state: parameters within 1e-5 of the CPU's after each step
    // (Adam's steps are ±lr-sized; a gradient's float noise moves a parameter by far less).
    need_gpu();
    const int K = 6, E = 32, b = 200;
    Rng r;
    rng_init(&r, 4, 4);
    float *x = synth_randn(&r, (size_t)b * E, 1.0), *t = synth_randn(&r, (size_t)b * E, 1.0);
    synth_normalize_rows(x, b, E);
    synth_normalize_rows(t, b, E);
    SeicLayout L;
    seic_layout(&L, K, E);
    SeicState sc, sg;
    seic_state_alloc(&sc, &L, 0);
    seic_state_alloc(&sg, &L, 0);
    seic_heads_init(sc.p, &L, 0.07, 3);
    for (size_t i = 0; i < L.n; i++) sc.p[i] *= 10.0f;   // sharper softmaxes than the 0.02 init
    memcpy(sg.p, sc.p, L.n * sizeof(float));
    SeicS1Step *C = seic_s1_step_create(&ops_cpu, K, E, b), *G = seic_s1_step_create(&ops_cuda, K, E, b);
    REQUIRE(C && G, "%s", laic_last_error());
    seic_s1_step_load(C, &sc);
    seic_s1_step_load(G, &sg);
    SeicLossCfg cfg;
    seic_loss_cfg_default(&cfg);
    for (long s = 1; s <= 3; s++) {
        double tc[5], tg[5];
        REQUIRE(!seic_s1_step_run(C, x, t, b, &cfg, 5e-3, 0.0, s, tc, NULL), "%s", laic_last_error());
        REQUIRE(!seic_s1_step_run(G, x, t, b, &cfg, 5e-3, 0.0, s, tg, NULL), "%s", laic_last_error());
        seic_s1_step_save(C, &sc);
        seic_s1_step_save(G, &sg);
        double worst = 0;
        for (size_t i = 0; i < L.n; i++) worst = fmax(worst, fabs(sc.p[i] - sg.p[i]));
        printf("    step %ld: loss cpu %.6f gpu %.6f; max parameter difference %.3g\n", s, tc[0], tg[0], worst);
        CHECK(fabs(tc[0] - tg[0]) <= 1e-5 * (1 + fabs(tc[0])) && worst <= 1e-5, "step %ld differs", s);
    }
    seic_s1_step_free(C);
    seic_s1_step_free(G);
    seic_state_free(&sc);
    seic_state_free(&sg);
    free(x);
    free(t);
}

TEST(gpu_seic_stage2_step_matches_cpu) {
    // One stage-2 step (views made on the host, LoRA r = 4 on the tiny ViT, image heads, AdamW)
    // on both backends from the same state: loss ≤ 1e-5 relative, pseudo-labels equal, LoRA and
    // head parameters after the step ≤ 1e-6 + 1e-3·lr (AdamW's step is ≈ ±lr per element).
    need_gpu();
    ClipWeights w;
    REQUIRE(clip_weights_load(&w, "tests/fixtures/clip/tiny_f16.safetensors") == 0, "%s", laic_last_error());
    const int B = 6, K = 4, E = w.cfg.embed_dim, S = w.cfg.image_size;
    SeicS2Opts o;
    seic_s2_opts_default(&o);
    o.lora_rank = 4, o.lora_alpha = 8, o.lr = 1e-3, o.weight_decay = 1e-2;
    SeicS2Step *C = seic_s2_step_create(&w, &ops_cpu, K, B, &o), *G = seic_s2_step_create(&w, &ops_cuda, K, B, &o);
    REQUIRE(C && G, "%s", laic_last_error());
    SeicLayout L;
    seic_layout(&L, K, E);
    const size_t nx = seic_s2_extra_floats(C);
    SeicState sc, sg;
    seic_state_alloc(&sc, &L, nx);
    seic_state_alloc(&sg, &L, nx);
    REQUIRE(!seic_s2_step_save(C, &sc), "%s", laic_last_error());   // the CPU's LoRA init
    Rng r;
    rng_init(&r, 12, 1);
    for (size_t i = 0; i < L.n_img; i++) sc.p[i] = (float)(0.5 * rng_normal(&r));
    for (size_t i = 0; i < nx / 3; i++) sc.extra[i] += (float)(0.05 * rng_normal(&r));   // U != 0
    seic_state_copy(&sg, &sc);
    REQUIRE(!seic_s2_step_load(C, &sc) && !seic_s2_step_load(G, &sg), "%s", laic_last_error());
    float *pix = synth_randn(&r, 2 * (size_t)B * 3 * S * S, 1.0);
    double lc, lg;
    int32_t yc[6], yg[6];
    REQUIRE(!seic_s2_step_run(C, pix, B, &lc, NULL, yc, NULL, NULL), "%s", laic_last_error());
    REQUIRE(!seic_s2_step_run(G, pix, B, &lg, NULL, yg, NULL, NULL), "%s", laic_last_error());
    REQUIRE(!seic_s2_step_save(C, &sc) && !seic_s2_step_save(G, &sg), "%s", laic_last_error());
    printf("    loss cpu %.7f gpu %.7f\n", lc, lg);
    CHECK(fabs(lc - lg) <= 1e-5 * fabs(lc), "loss");
    CHECK(!memcmp(yc, yg, sizeof yc), "pseudo-labels");
    double worst = 0;
    for (size_t i = 0; i < L.n_img; i++) worst = fmax(worst, fabs(sc.p[i] - sg.p[i]));
    for (size_t i = 0; i < nx / 3; i++) worst = fmax(worst, fabs(sc.extra[i] - sg.extra[i]));
    printf("    max parameter difference after the step %.3g (lr %g)\n", worst, o.lr);
    CHECK(worst <= 1e-6 + 1e-3 * o.lr, "parameters after the step");
    seic_s2_step_free(C);
    seic_s2_step_free(G);
    seic_state_free(&sc);
    seic_state_free(&sg);
    free(pix);
    clip_weights_free(&w);
}

#endif
