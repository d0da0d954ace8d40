/*
 * test_train_gpu.c — the prompt-learning ops and CUDA graphs of ops_cuda (kernels/train.cu,
 * kernels/ops_cuda.cu) against ops_cpu (host/cpu/train_ops.c, i.e. host/train/train.c and
 * host/model/augment.c).
 *
 * Built into test_gpu (CUDA builds); without a device the program exits 77 (waived).
 * Written before any GPU run: the first session with a device runs `make test-gpu T=gpu_train`.
 *
 * Tolerances, and why:
 * - strided_copy, sgd_forward, train_views_forward: none (bitwise). The copy moves bits; SGD
 *   is the same float operations in the same order (explicit rn PTX, no FMA contraction, no
 *   flush-to-zero; denormal inputs are included to catch an ftz); the views are augment.cu,
 *   bitwise by construction (test_augment_gpu.c).
 * - prompt loss: terms within 1e-6 relative (1e-6 of |gce| + α|mse| + β|H| for the total,
 *   which can cancel), counts exact; dW within 1e-6 of max |dW_cpu|. Both sides compute in
 *   double from the same float inputs; they differ only in summation trees (warp/block trees
 *   vs loops: ~1e-16 relative per sum) and in CUDA's double exp/log/pow (≤ 2 ulp), so the
 *   double results agree to ~1e-13 even after the scale-100 logits; dW is then rounded to
 *   float (2^-24 ≈ 6e-8), so a few-ulp float difference is expected and 1e-6 still catches
 *   any wrong term, weight, normalisation or row.
 * - graphs and determinism: bitwise (fixed-order reductions, no atomics; cuBLAS with one handle
 *   and an explicit workspace picks the same kernel eagerly and in a graph).
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
#include "train/train.h"
#include "../../kernels/ops_cuda.h"

static const OpsBackend *G = &ops_cuda, *REF = &ops_cpu;

#include "gpu_test.h"

static int same_bits(const void *a, const void *b, size_t bytes) { return !memcmp(a, b, bytes); }

// --- strided_copy ----------------------------------------------------------------------------
TEST(gpu_train_strided_copy_exact) {
    need_gpu();
    Rng r;
    rng_init(&r, 1, 10);
    // (rows, row_len, src stride, dst stride): the trainer's feature-row gathers, odd sizes,
    // stride == row_len (contiguous), one row, zero rows.
    const int shapes[][4] = {{64, 512, 512, 1024}, {7, 13, 29, 17}, {5, 8, 8, 8},
                             {1, 100, 100, 100},   {0, 10, 10, 10}, {33, 1, 3, 2}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int rows = shapes[s][0];
        const size_t len = (size_t)shapes[s][1], ss = (size_t)shapes[s][2],
                     ds = (size_t)shapes[s][3];
        const size_t ns = (rows ? (size_t)rows : 1) * ss, nd = (rows ? (size_t)rows : 1) * ds;
        float *src = synth_randn(&r, ns, 1.0), *dst = synth_randn(&r, nd, 1.0);
        float *got = mallocCheck(nd * sizeof(float));
        float *dsrc = gpu_upload(src, ns * sizeof(float)),
              *ddst = gpu_upload(dst, nd * sizeof(float));
        G->strided_copy(ddst, ds, dsrc, ss, rows, len);
        REF->strided_copy(dst, ds, src, ss, rows, len);   // the gaps keep their random values
        gpu_download_into(got, ddst, nd * sizeof(float));
        CHECK(same_bits(got, dst, nd * sizeof(float)), "strided_copy rows %d len %zu ss %zu ds %zu",
              rows, len, ss, ds);
        free(src), free(dst), free(got);
        G->free(dsrc), G->free(ddst);
    }
}

// --- prompt loss -------------------------------------------------------------------------------
typedef struct {
    int b, K, E, n_hq;
} LossShape;

// Runs the loss on both backends; returns 1 when within tolerance. dW on the device starts as
// garbage (NaN bits) to check that the op overwrites.
static int loss_compare(Rng *r, LossShape sh, int mask, double *terms_out, float **dW_out) {
    const int b = sh.b, K = sh.K, E = sh.E;
    const size_t nF = (size_t)2 * b * E, nW = (size_t)K * E;
    float *F = synth_randn(r, nF, 1.0), *W = synth_randn(r, nW, 1.0);
    synth_normalize_rows(F, 2 * b, E);
    synth_normalize_rows(W, K, E);
    // Make the weak and strong views of a sample related, as real views are.
    for (int i = 0; i < b; i++)
        for (int e = 0; e < E; e++) F[(size_t)(b + i) * E + e] += 0.5f * F[(size_t)i * E + e];
    synth_normalize_rows(F, 2 * b, E);
    int32_t *y = mallocCheck((size_t)(b ? b : 1) * sizeof(int32_t));
    uint8_t *hq = mallocCheck((size_t)(b ? b : 1));
    for (int i = 0; i < b; i++) {
        y[i] = (int32_t)rng_below(r, (uint64_t)K);
        hq[i] = 0;
    }
    for (int k = 0; k < sh.n_hq; k++) {   // n_hq distinct rows, at random places
        int i;
        do i = (int)rng_below(r, (uint64_t)b);
        while (hq[i]);
        hq[i] = 1;
    }
    const double q = 0.7, alpha = 1.0, beta = 1.0, scale = 100.0;
    double tref[6], tgpu[6];
    float *dWref = mallocCheck((nW ? nW : 1) * sizeof(float));
    float *dWgpu = mallocCheck((nW ? nW : 1) * sizeof(float));
    REF->prompt_loss_forward_backward(tref, dWref, F, W, y, hq, b, K, E, mask, q, alpha, beta,
                                      scale);
    float *dF = gpu_upload(F, (nF ? nF : 1) * sizeof(float)),
          *dW_ = gpu_upload(W, nW * sizeof(float));
    int32_t *dy = gpu_upload(y, (size_t)(b ? b : 1) * sizeof(int32_t));
    uint8_t *dhq = gpu_upload(hq, (size_t)(b ? b : 1));
    float *ddW = gpu_alloc(nW * sizeof(float));
    double *dterms = gpu_alloc(6 * sizeof(double));
    memset(dWgpu, 0xff, nW * sizeof(float));   // NaN
    G->to_device(ddW, dWgpu, nW * sizeof(float));
    G->prompt_loss_forward_backward(dterms, ddW, dF, dW_, dy, dhq, b, K, E, mask, q, alpha, beta,
                                    scale);
    gpu_download_into(tgpu, dterms, sizeof tgpu);
    gpu_download_into(dWgpu, ddW, nW * sizeof(float));
    int ok = 1;
    const double parts = fabs(tref[1]) + alpha * fabs(tref[2]) + beta * fabs(tref[3]);
    ok &= fabs(tgpu[0] - tref[0]) <= 1e-6 * parts + 1e-12;
    for (int k = 1; k <= 3; k++) ok &= fabs(tgpu[k] - tref[k]) <= 1e-6 * fabs(tref[k]) + 1e-15;
    ok &= tgpu[4] == tref[4] && tgpu[5] == tref[5];
    double err = max_rel_err(dWgpu, dWref, nW);
    int finite = 1;
    for (size_t i = 0; i < nW; i++) finite &= isfinite(dWgpu[i]);
    ok &= finite && err <= 1e-6;
    printf("    b %d K %d E %d hq %d mask %d: total %.10g (cpu %.10g) gce %.3g mse %.3g H %.4g "
           "dW rel err %.2e %s\n",
           b, K, E, sh.n_hq, mask, tgpu[0], tref[0], tgpu[1], tgpu[2], tgpu[3], err,
           ok ? "OK" : "NOT OK");
    if (terms_out) memcpy(terms_out, tgpu, sizeof tgpu);
    if (dW_out) *dW_out = dWgpu;
    else free(dWgpu);
    free(F), free(W), free(y), free(hq), free(dWref);
    G->free(dF), G->free(dW_), G->free(dy), G->free(dhq), G->free(ddW), G->free(dterms);
    return ok;
}

TEST(gpu_train_loss_vs_cpu) {
    need_gpu();
    Rng r;
    rng_init(&r, 2, 11);
    // The trainer's shapes (b 32, K 10 / 100, E 512), a tiny-config E, no high-quality rows,
    // no unlabeled rows, one sample / one class, K above the block size (1000 > 256 threads).
    const LossShape shapes[] = {{32, 10, 512, 12}, {32, 100, 512, 20}, {7, 5, 64, 3},
                                {16, 10, 512, 0},  {16, 10, 512, 16},  {1, 1, 32, 1},
                                {64, 1000, 512, 30}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int mask = 1; mask < 8; mask++) {
            if (shapes[s].K == 1000 && mask != 7) continue;   // the big one once
            CHECK(loss_compare(&r, shapes[s], mask, NULL, NULL), "loss b %d K %d mask %d",
                  shapes[s].b, shapes[s].K, mask);
        }
}

TEST(gpu_train_loss_empty_batch) {
    need_gpu();
    const int K = 4, E = 8;
    float W[32], dWh[32];
    for (int i = 0; i < 32; i++) W[i] = (float)(i % 5) * 0.1f;
    float *dW_ = gpu_upload(W, sizeof W), *ddW = gpu_alloc(sizeof W),
          *dF = gpu_alloc(sizeof(float));
    int32_t *dy = gpu_alloc(sizeof(int32_t));
    uint8_t *dhq = gpu_alloc(1);
    double *dt = gpu_alloc(6 * sizeof(double)), t[6];
    memset(dWh, 0xff, sizeof dWh);
    G->to_device(ddW, dWh, sizeof dWh);
    G->prompt_loss_forward_backward(dt, ddW, dF, dW_, dy, dhq, 0, K, E, 7, 0.7, 1, 1, 100);
    gpu_download_into(t, dt, sizeof t);
    gpu_download_into(dWh, ddW, sizeof dWh);
    int zero = 1;
    for (int i = 0; i < K * E; i++) zero &= dWh[i] == 0.0f;
    CHECK(zero, "b=0: dW not zeroed");
    CHECK(t[0] == 0 && t[1] == 0 && t[2] == 0 && t[3] == 0 && t[4] == 0 && t[5] == 0,
          "b=0: terms {%g %g %g %g %g %g}", t[0], t[1], t[2], t[3], t[4], t[5]);
    G->free(dW_), G->free(ddW), G->free(dF), G->free(dy), G->free(dhq), G->free(dt);
}

TEST(gpu_train_loss_deterministic) {
    need_gpu();
    const LossShape sh = {32, 100, 512, 14};
    double t1[6], t2[6];
    float *d1 = NULL, *d2 = NULL;
    Rng r1, r2;
    rng_init(&r1, 3, 12);
    rng_init(&r2, 3, 12);   // same inputs twice
    CHECK(loss_compare(&r1, sh, 7, t1, &d1), "first run");
    CHECK(loss_compare(&r2, sh, 7, t2, &d2), "second run");
    CHECK(same_bits(t1, t2, sizeof t1), "terms differ run to run");
    CHECK(same_bits(d1, d2, (size_t)sh.K * sh.E * sizeof(float)), "dW differs run to run");
    free(d1), free(d2);
}

// A pseudo-label outside [0,K) on a high-quality row (the trainer rejects these up front; the op
// does not check): no out-of-bounds read (run under compute-sanitizer memcheck), the loss and
// its GCE term are NaN (kernels/train.cu's promise), the other terms and dW stay finite.
TEST(gpu_train_loss_bad_label_is_nan) {
    need_gpu();
    enum { b = 6, K = 4, E = 16 };
    Rng r;
    rng_init(&r, 7, 16);
    float *F = synth_randn(&r, 2 * b * E, 1.0), *W = synth_randn(&r, K * E, 1.0);
    synth_normalize_rows(F, 2 * b, E);
    synth_normalize_rows(W, K, E);
    const int32_t y[b] = {0, 1, K + 1000000, 3, -7, 2};
    const uint8_t hq[b] = {1, 0, 1, 1, 1, 0};
    float *dF = gpu_upload(F, sizeof(float) * 2 * b * E),
          *dW_ = gpu_upload(W, sizeof(float) * K * E);
    int32_t *dy = gpu_upload(y, sizeof y);
    uint8_t *dhq = gpu_upload(hq, sizeof hq);
    float *ddW = gpu_alloc(sizeof(float) * K * E), dWh[K * E];
    double *dt = gpu_alloc(6 * sizeof(double)), t[6];
    G->prompt_loss_forward_backward(dt, ddW, dF, dW_, dy, dhq, b, K, E, 7, 0.7, 1, 1, 100);
    gpu_download_into(t, dt, sizeof t);
    gpu_download_into(dWh, ddW, sizeof dWh);
    int finite = 1;
    for (int i = 0; i < K * E; i++) finite &= isfinite(dWh[i]);
    printf("    bad labels: total %g gce %g mse %g H %g n_hq %g n_u %g\n", t[0], t[1], t[2], t[3],
           t[4], t[5]);
    CHECK(isnan(t[0]) && isnan(t[1]), "bad label: total %g and gce %g must be NaN", t[0], t[1]);
    CHECK(isfinite(t[2]) && isfinite(t[3]) && t[4] == 4 && t[5] == 2,
          "bad label: mse %g, H %g, counts %g %g", t[2], t[3], t[4], t[5]);
    CHECK(finite, "bad label: dW has non-finite entries");
    free(F), free(W);
    G->free(dF), G->free(dW_), G->free(dy), G->free(dhq), G->free(ddW), G->free(dt);
}

// A graph captured with the loss's scratch buffer must survive that buffer growing afterwards
// (a larger eager call): the old buffer is kept, not freed under the graph (train.cu
// loss_scratch). Replays after the growth equal the eager result bitwise; a freed buffer would
// show under compute-sanitizer memcheck, or as wrong values once the memory is reused.
typedef struct {
    double *terms;
    float *dW, *F, *W;
    int32_t *y;
    uint8_t *hq;
    int b, K, E;
} LossCtx;

static void loss_step(void *vctx) {
    LossCtx *c = vctx;
    G->prompt_loss_forward_backward(c->terms, c->dW, c->F, c->W, c->y, c->hq, c->b, c->K, c->E, 7,
                                    0.7, 1.0, 1.0, 100.0);
}

static void loss_ctx_alloc(LossCtx *c, Rng *r, int b, int K, int E) {
    float *F = synth_randn(r, (size_t)2 * b * E, 1.0), *W = synth_randn(r, (size_t)K * E, 1.0);
    synth_normalize_rows(F, 2 * b, E);
    synth_normalize_rows(W, K, E);
    int32_t *y = mallocCheck((size_t)b * sizeof *y);
    uint8_t *hq = mallocCheck((size_t)b);
    for (int i = 0; i < b; i++) y[i] = (int32_t)rng_below(r, (uint64_t)K), hq[i] = i % 3 == 0;
    *c = (LossCtx){.terms = gpu_alloc(6 * sizeof(double)),
                   .dW = gpu_alloc((size_t)K * E * sizeof(float)),
                   .F = gpu_upload(F, (size_t)2 * b * E * sizeof(float)),
                   .W = gpu_upload(W, (size_t)K * E * sizeof(float)),
                   .y = gpu_upload(y, (size_t)b * sizeof *y), .hq = gpu_upload(hq, (size_t)b),
                   .b = b, .K = K, .E = E};
    free(F), free(W), free(y), free(hq);
}

static void loss_ctx_free(LossCtx *c) {
    void *all[] = {c->terms, c->dW, c->F, c->W, c->y, c->hq};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) G->free(all[i]);
}

TEST(gpu_train_loss_graph_survives_scratch_growth) {
    need_gpu();
    Rng r;
    rng_init(&r, 8, 17);
    enum { SB = 16, SK = 10, SE = 64 };
    LossCtx small, big;
    loss_ctx_alloc(&small, &r, SB, SK, SE);
    // larger than any loss the other tests run (b 64, K 1000), so its scratch must grow here
    loss_ctx_alloc(&big, &r, 256, 2000, 8);
    double t_eager[6], t_replay[6];
    float *dW_eager = mallocCheck(SK * SE * sizeof(float));
    float *dW_replay = mallocCheck(SK * SE * sizeof(float));
    loss_step(&small);   // eager warm-up (sizes the scratch when nothing larger ran before)
    gpu_download_into(t_eager, small.terms, sizeof t_eager);
    gpu_download_into(dW_eager, small.dW, SK * SE * sizeof(float));
    void *g = G->graph_capture(loss_step, &small);
    REQUIRE(g != NULL, "capture: %s", laic_last_error());
    loss_step(&big);   // eager, grows the scratch after the capture
    G->synchronize();
    for (int rep = 0; rep < 2; rep++) {
        G->memset0(small.terms, 6 * sizeof(double));
        G->memset0(small.dW, SK * SE * sizeof(float));
        CHECK(G->graph_launch(g) == 0, "launch: %s", laic_last_error());
        gpu_download_into(t_replay, small.terms, sizeof t_replay);
        gpu_download_into(dW_replay, small.dW, SK * SE * sizeof(float));
        CHECK(same_bits(t_eager, t_replay, sizeof t_eager), "replay %d after the growth: terms "
              "%.17g vs %.17g", rep, t_replay[0], t_eager[0]);
        CHECK(same_bits(dW_eager, dW_replay, SK * SE * sizeof(float)), "replay %d after the "
              "growth: dW differs", rep);
        loss_step(&big);   // the grown scratch in use between replays
    }
    G->graph_free(g);
    loss_ctx_free(&small);
    loss_ctx_free(&big);
    free(dW_eager), free(dW_replay);
}

// --- SGD ---------------------------------------------------------------------------------------
TEST(gpu_train_sgd_bitwise) {
    need_gpu();
    Rng r;
    rng_init(&r, 4, 13);
    const size_t n = 100003;   // not a multiple of the block; > one grid-stride pass is fine
    float *p0 = synth_randn(&r, n, 0.02), *g = synth_randn(&r, n, 0.1),
          *b0 = synth_randn(&r, n, 0.05);
    // Denormals and tiny values: an ftz anywhere would change these bits.
    for (size_t i = 0; i < 64; i++) {
        p0[i] = (float)(1e-39 * (double)(i + 1));
        g[i] = (float)(1e-38 * (double)(i % 7));
        b0[i] = (float)(-3e-39 * (double)(i + 1));
    }
    float *p1 = mallocCheck(n * sizeof(float)), *b1 = mallocCheck(n * sizeof(float));
    float *p2 = mallocCheck(n * sizeof(float)), *b2 = mallocCheck(n * sizeof(float));
    float *dp = gpu_alloc(n * sizeof(float)), *db = gpu_alloc(n * sizeof(float));
    float *dg = gpu_upload(g, n * sizeof(float));
    double *dlr = gpu_alloc(sizeof(double));
    const double lrs[2] = {0.002, 1e-5}, wds[2] = {0.0, 5e-4}, mos[2] = {0.0, 0.9};
    for (int w = 0; w < 2; w++)
        for (int m = 0; m < 2; m++)
            for (int hb = 0; hb < 2; hb++) {
                const double lr = lrs[(w + m + hb) & 1];
                memcpy(p1, p0, n * sizeof(float));
                memcpy(b1, b0, n * sizeof(float));
                REF->sgd_forward(p1, b1, g, &lr, n, mos[m], wds[w], hb);
                G->to_device(dp, p0, n * sizeof(float));
                G->to_device(db, b0, n * sizeof(float));
                G->to_device(dlr, &lr, sizeof lr);
                G->sgd_forward(dp, db, dg, dlr, n, mos[m], wds[w], hb);
                gpu_download_into(p2, dp, n * sizeof(float));
                gpu_download_into(b2, db, n * sizeof(float));
                size_t bad = 0;
                for (size_t i = 0; i < n; i++)
                    bad += memcmp(&p1[i], &p2[i], sizeof(float)) != 0 ||
                           memcmp(&b1[i], &b2[i], sizeof(float)) != 0;
                printf("    wd %g momentum %g have_buf %d lr %g: %zu of %zu differ\n", wds[w],
                       mos[m], hb, lr, bad, n);
                CHECK(bad == 0, "sgd wd %g momentum %g have_buf %d: %zu elements differ", wds[w],
                      mos[m], hb, bad);
            }
    free(p0), free(g), free(b0), free(p1), free(b1), free(p2), free(b2);
    G->free(dp), G->free(db), G->free(dg), G->free(dlr);
}

// --- views -------------------------------------------------------------------------------------
static uint8_t *rand_image(Rng *r, int h, int w) {
    uint8_t *im = mallocCheck((size_t)h * w * 3);
    int fx = 1 + (int)rng_below(r, 7), fy = 1 + (int)rng_below(r, 7);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                int v = 30 + c * 20 + ((x * fx + y * fy + c * 13) % 64) * 2 + (int)rng_below(r, 24);
                im[((size_t)y * w + x) * 3 + c] = (uint8_t)(v > 255 ? 255 : v);
            }
    return im;
}

TEST(gpu_train_views_bitwise) {
    need_gpu();
    Rng r;
    rng_init(&r, 5, 14);
    enum { B = 5 };
    const int H[B] = {32, 375, 224, 61, 500}, W[B] = {32, 500, 224, 97, 333};
    const size_t index[B] = {0, 49999, 7, 123, 31337};
    const uint8_t *imgs[B];
    uint8_t *own[B];
    for (int i = 0; i < B; i++) imgs[i] = own[i] = rand_image(&r, H[i], W[i]);
    const int sizes[2] = {224, 64};
    for (int s = 0; s < 2; s++) {
        const int S = sizes[s];
        const size_t n = (size_t)2 * B * 3 * S * S;
        float *ref = mallocCheck(n * sizeof(float)), *got = mallocCheck(n * sizeof(float));
        float *d = gpu_alloc(n * sizeof(float));
        REQUIRE(REF->train_views_forward(ref, imgs, H, W, index, B, S, 42, 3) == 0, "%s",
                laic_last_error());
        REQUIRE(G->train_views_forward(d, imgs, H, W, index, B, S, 42, 3) == 0, "%s",
                laic_last_error());
        gpu_download_into(got, d, n * sizeof(float));
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) bad += memcmp(&got[i], &ref[i], sizeof(float)) != 0;
        printf("    S %d: %zu of %zu pixels differ\n", S, bad, n);
        CHECK(bad == 0, "views S=%d: %zu pixel values differ from the CPU", S, bad);
        free(ref), free(got);
        G->free(d);
    }
    for (int i = 0; i < B; i++) free(own[i]);
}

// --- CUDA graphs -------------------------------------------------------------------------------
// A short stateful sequence: h = x Wᵀ (cuBLAS), ln = LayerNorm(h), W -= SGD(ln) (momentum);
// then the loss on features F against the class rows V, V -= SGD(dV), and a strided copy of
// V's first rows into a log buffer. Every launch changes W and V, so replays compound.
enum { GN = 64, GB = 8, GK = 10, GE = 64 };
typedef struct {
    float *x, *Wt, *h, *ln, *mean, *rstd, *lnw, *lnb, *bufW;   // (GN,GN) / (GN)
    float *F, *V, *dV, *bufV, *log;                            // (2GB,GE) (GK,GE) ... (4,GE)
    int32_t *y;
    uint8_t *hq;
    double *terms, *lr;
    int have_buf;
} GraphCtx;

static void graph_step(void *vctx) {
    GraphCtx *c = vctx;
    G->matmul_forward(c->h, c->x, c->Wt, NULL, GN, GN, GN);
    G->layernorm_forward(c->ln, c->mean, c->rstd, c->h, c->lnw, c->lnb, GN, GN);
    G->sgd_forward(c->Wt, c->bufW, c->ln, c->lr, (size_t)GN * GN, 0.9, 5e-4, c->have_buf);
    G->prompt_loss_forward_backward(c->terms, c->dV, c->F, c->V, c->y, c->hq, GB, GK, GE, 7, 0.7,
                                    1.0, 1.0, 100.0);
    G->sgd_forward(c->V, c->bufV, c->dV, c->lr, (size_t)GK * GE, 0.9, 5e-4, c->have_buf);
    G->strided_copy(c->log, GE, c->V, 2 * GE, 4, GE);
}

typedef struct {
    float *h_x, *h_Wt, *h_F, *h_V, *h_lnw, *h_lnb;
    int32_t h_y[GB];
    uint8_t h_hq[GB];
} GraphInit;

static void graph_init_host(GraphInit *in) {
    Rng r;
    rng_init(&r, 6, 15);
    in->h_x = synth_randn(&r, GN * GN, 1.0);
    in->h_Wt = synth_randn(&r, GN * GN, 0.1);
    in->h_lnw = synth_randn(&r, GN, 0.5);
    in->h_lnb = synth_randn(&r, GN, 0.1);
    in->h_F = synth_randn(&r, 2 * GB * GE, 1.0);
    in->h_V = synth_randn(&r, GK * GE, 1.0);
    synth_normalize_rows(in->h_F, 2 * GB, GE);
    synth_normalize_rows(in->h_V, GK, GE);
    for (int i = 0; i < GB; i++) in->h_y[i] = (int32_t)rng_below(&r, GK), in->h_hq[i] = i % 3 == 0;
}

static void graph_ctx_alloc(GraphCtx *c, const GraphInit *in) {
    c->x = gpu_upload(in->h_x, GN * GN * sizeof(float));
    c->Wt = gpu_upload(in->h_Wt, GN * GN * sizeof(float));
    c->h = gpu_alloc(GN * GN * sizeof(float));
    c->ln = gpu_alloc(GN * GN * sizeof(float));
    c->mean = gpu_alloc(GN * sizeof(float));
    c->rstd = gpu_alloc(GN * sizeof(float));
    c->lnw = gpu_upload(in->h_lnw, GN * sizeof(float));
    c->lnb = gpu_upload(in->h_lnb, GN * sizeof(float));
    c->bufW = gpu_alloc(GN * GN * sizeof(float));
    G->memset0(c->bufW, GN * GN * sizeof(float));
    c->F = gpu_upload(in->h_F, 2 * GB * GE * sizeof(float));
    c->V = gpu_upload(in->h_V, GK * GE * sizeof(float));
    c->dV = gpu_alloc(GK * GE * sizeof(float));
    c->bufV = gpu_alloc(GK * GE * sizeof(float));
    G->memset0(c->bufV, GK * GE * sizeof(float));
    c->log = gpu_alloc(4 * GE * sizeof(float));
    c->y = gpu_upload(in->h_y, sizeof in->h_y);
    c->hq = gpu_upload(in->h_hq, sizeof in->h_hq);
    c->terms = gpu_alloc(6 * sizeof(double));
    c->lr = gpu_alloc(sizeof(double));
    c->have_buf = 1;   // a captured step has its buffer (the eager first step made it)
}

static void graph_ctx_free(GraphCtx *c) {
    void *all[] = {c->x,  c->Wt, c->h,  c->ln,   c->mean, c->rstd,  c->lnw, c->lnb, c->bufW,
                   c->F,  c->V,  c->dV, c->bufV, c->log,  c->y,     c->hq,  c->terms, c->lr};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) G->free(all[i]);
}

// Results after the 3 steps: Wt, V, log, terms.
typedef struct {
    float Wt[GN * GN], V[GK * GE], log[4 * GE];
    double terms[6];
} GraphOut;

static void graph_read(GraphOut *o, const GraphCtx *c) {
    gpu_download_into(o->Wt, c->Wt, sizeof o->Wt);
    gpu_download_into(o->V, c->V, sizeof o->V);
    gpu_download_into(o->log, c->log, sizeof o->log);
    gpu_download_into(o->terms, c->terms, sizeof o->terms);
}

TEST(gpu_train_graph_replay_matches_eager) {
    need_gpu();
    GraphInit in;
    graph_init_host(&in);
    const double lrs[3] = {1e-3, 2e-3, 5e-4};   // the rate changes between steps (per epoch)
    GraphOut *eager = mallocCheck(sizeof *eager), *replay = mallocCheck(sizeof *replay);

    GraphCtx a;
    graph_ctx_alloc(&a, &in);
    for (int s = 0; s < 3; s++) {   // eager; its first step also sizes every scratch buffer
        G->to_device(a.lr, &lrs[s], sizeof(double));
        graph_step(&a);
    }
    graph_read(eager, &a);

    GraphCtx c;
    graph_ctx_alloc(&c, &in);
    laic_clear_error();
    void *g = G->graph_capture(graph_step, &c);
    REQUIRE(g != NULL, "capture failed: %s", laic_last_error());
    // Capturing ran nothing: the buffers still hold the initial values.
    float *wt = mallocCheck(GN * GN * sizeof(float));
    gpu_download_into(wt, c.Wt, GN * GN * sizeof(float));
    CHECK(same_bits(wt, in.h_Wt, GN * GN * sizeof(float)), "capture executed the ops");
    free(wt);
    for (int s = 0; s < 3; s++) {
        G->to_device(c.lr, &lrs[s], sizeof(double));   // ordered before the replay
        CHECK(G->graph_launch(g) == 0, "launch %d: %s", s, laic_last_error());
    }
    graph_read(replay, &c);
    CHECK(same_bits(eager->Wt, replay->Wt, sizeof eager->Wt), "W after 3 replays != eager");
    CHECK(same_bits(eager->V, replay->V, sizeof eager->V), "V after 3 replays != eager");
    CHECK(same_bits(eager->log, replay->log, sizeof eager->log), "copied rows differ");
    CHECK(same_bits(eager->terms, replay->terms, sizeof eager->terms),
          "loss terms differ: %.17g vs %.17g", eager->terms[0], replay->terms[0]);
    CHECK(!same_bits(eager->V, in.h_V, sizeof eager->V), "the steps changed nothing");
    G->graph_free(g);
    graph_ctx_free(&a);
    graph_ctx_free(&c);
    free(eager), free(replay);
    free(in.h_x), free(in.h_Wt), free(in.h_F), free(in.h_V), free(in.h_lnw), free(in.h_lnb);
}

// A captured function that breaks the rule (host copies, synchronisation inside).
typedef struct {
    float *d;
    float host[4];
    int which;   // 0 to_host, 1 synchronize, 2 to_device, 3 views
    int views_rc;
} BadCtx;

static void bad_step(void *vctx) {
    BadCtx *c = vctx;
    G->quickgelu_forward(c->d, c->d, 4);
    if (c->which == 0) G->to_host(c->host, c->d, sizeof c->host);
    if (c->which == 1) G->synchronize();
    if (c->which == 2) G->to_device(c->d, c->host, sizeof c->host);
    if (c->which == 3) {
        const uint8_t px[3] = {1, 2, 3};
        const uint8_t *im[1] = {px};
        const int h = 1, w = 1;
        const size_t idx = 0;
        c->views_rc = G->train_views_forward(c->d, im, &h, &w, &idx, 1, 1, 0, 0);
    }
}

TEST(gpu_train_graph_capture_refuses_host_calls) {
    need_gpu();
    const char *names[3] = {"to_host", "synchronize", "to_device"};
    const float v[4] = {1, -2, 3, 0.5f};
    for (int which = 0; which < 3; which++) {
        BadCtx c = {.d = gpu_upload(v, sizeof v), .which = which};
        laic_clear_error();
        void *g = G->graph_capture(bad_step, &c);
        const char *msg = laic_last_error();
        printf("    %s: %s\n", names[which], msg);
        CHECK(g == NULL, "%s inside a capture must fail", names[which]);
        if (g) G->graph_free(g);
        CHECK(strstr(msg, "cuda graph: capture failed") && strstr(msg, names[which]),
              "message names the failure: '%s'", msg);
        CHECK(count_lines(msg) == 1, "one line: '%s'", msg);
        // The backend is usable: not capturing, no sticky error, ops and copies run.
        float back[4];
        G->quickgelu_forward(c.d, c.d, 4);
        gpu_download_into(back, c.d, sizeof back);
        CHECK(fabsf(back[0] - 1.0f / (1.0f + expf(-1.702f))) < 1e-6f,
              "op after a failed capture: %g (the captured gelu must not have run)", back[0]);
        G->free(c.d);
    }
    // train_views_forward refuses inside a capture (it uploads host memory) without breaking it.
    BadCtx c = {.d = gpu_upload(v, sizeof v), .which = 3, .views_rc = 0};
    void *g = G->graph_capture(bad_step, &c);
    CHECK(c.views_rc == -1, "views inside a capture returned %d", c.views_rc);
    CHECK(g != NULL, "the capture itself (one gelu) should succeed: %s", laic_last_error());
    if (g) {
        CHECK(G->graph_launch(g) == 0, "launch: %s", laic_last_error());
        G->graph_free(g);
    }
    // A good capture still works after the failures.
    GraphCtx ok;
    GraphInit in;
    graph_init_host(&in);
    graph_ctx_alloc(&ok, &in);
    graph_step(&ok);   // eager warm-up sizes the scratch
    g = G->graph_capture(graph_step, &ok);
    CHECK(g != NULL, "capture after failures: %s", laic_last_error());
    if (g) {
        CHECK(G->graph_launch(g) == 0, "launch after failures: %s", laic_last_error());
        G->synchronize();
        G->graph_free(g);
    }
    CHECK(G->graph_launch(NULL) == -1, "launching NULL must fail");
    graph_ctx_free(&ok);
    G->free(c.d);
    free(in.h_x), free(in.h_Wt), free(in.h_F), free(in.h_V), free(in.h_lnw), free(in.h_lnb);
}

#endif   // LAIC_CUDA
