/*
 * test_augment_gpu.c — kernels/augment.cu against the CPU reference host/model/augment.c.
 *
 * Built into test_gpu (CUDA builds); without a device the program exits 77 (waived).
 *
 * Tolerance: none. Every stage is expected bitwise equal to the CPU:
 *   - resize, flip, geometric ops, LUT ops (Posterize, Solarize, AutoContrast, Equalize):
 *     integer arithmetic with the host's own tap tables / 16.16 coefficients;
 *   - blends (Brightness, Color, Contrast, Sharpness) and normalisation: float32 with
 *     explicitly rounded device intrinsics (no FMA contraction, no fast-math division) in the
 *     CPU's order, on a CPU build without FMA (x86-64-v2), so each op rounds the same way;
 *   - AutoContrast's double LUT arithmetic likewise (__dmul_rn/__dadd_rn);
 *   - the SEIC strong view's ColorJitter rounds (the blends with the factor as alpha, the
 *     hue's uint8 HSV round trip with its float and double steps as _rn intrinsics) and the
 *     grayscale, checked on random views and on all 2^24 colours for several hue shifts.
 * If a CPU build ever enables FMA (-march with FMA), the blends may differ by one level in
 * rare ties; these tests would then report the count and maximum difference.
 */
#include "../test.h"

#ifdef LAIC_CUDA

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/augment.h"
#include "model/image.h"
#include "io/err.h"
#include "ops.h"
#include "rng.h"
#include "../../kernels/augment_cuda.h"

static const OpsBackend *G = &ops_cuda;

#include "gpu_test.h"

// Smooth-ish random image: low-frequency pattern plus noise, so the ops see real structure
// (histograms with gaps and runs, edges for the sharpness kernel).
static uint8_t *rand_image(Rng *r, int h, int w) {
    uint8_t *im = mallocCheck((size_t)h * w * 3);
    int fx = 1 + (int)rng_below(r, 7), fy = 1 + (int)rng_below(r, 7), amp = (int)rng_below(r, 200);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                int v = 30 + c * 20 + (amp * ((x * fx + y * fy + c * 13) % 64)) / 64 +
                        (int)rng_below(r, 24);
                im[((size_t)y * w + x) * 3 + c] = (uint8_t)(v > 255 ? 255 : v);
            }
    return im;
}

// Counts differing bytes; prints the first few.
static size_t diff_u8(const uint8_t *a, const uint8_t *b, size_t n, const char *what) {
    size_t bad = 0;
    int maxd = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) {
            int d = abs((int)a[i] - (int)b[i]);
            if (d > maxd) maxd = d;
            if (bad++ < 3) printf("    %s: byte %zu gpu %d cpu %d\n", what, i, a[i], b[i]);
        }
    if (bad) printf("    %s: %zu of %zu bytes differ, max %d\n", what, bad, n, maxd);
    return bad;
}

// The CPU view for explicit parameters (augment_view's steps, augment.h).
static void cpu_view(uint8_t *out, const uint8_t *img, int H, int W, int S, const AugmentParams *p) {
    augment_resized_crop(out, img, H, W, &p->crop, S, S);
    if (p->flip) augment_hflip(out, S, S);
    uint8_t *tmp = mallocCheck((size_t)S * S * 3);
    for (int k = 0; k < p->n_ops; k++) {
        augment_ra_apply(tmp, out, S, S, p->op[k], p->mag[k]);
        memcpy(out, tmp, (size_t)S * S * 3);
    }
    free(tmp);
}

// The trainer's batch (weak views then strong views of b images) at S = 224 over 3 epochs:
// uint8 views and normalised floats bitwise equal to augment_view + image_normalize.
TEST(gpu_augment_batch_matches_cpu) {
    need_gpu();
    const int b = 16, S = 224, n = 2 * b;
    Rng r;
    rng_init(&r, 7, 1);
    uint8_t *imgs[16];
    int H[16], W[16];
    size_t index[16];
    for (int i = 0; i < b; i++) {
        H[i] = 32 + (int)rng_below(&r, 400);
        W[i] = 32 + (int)rng_below(&r, 400);
        if (i == 0) H[i] = W[i] = 32;   // CIFAR-sized: upsampling in both directions
        imgs[i] = rand_image(&r, H[i], W[i]);
        index[i] = 1000 + (size_t)i * 37;
    }
    const size_t vb = (size_t)S * S * 3;
    uint8_t *d_u8 = gpu_alloc((size_t)n * vb);
    float *d_f = gpu_alloc((size_t)n * vb * sizeof(float));
    uint8_t *g8 = mallocCheck((size_t)n * vb), *c8 = mallocCheck(vb);
    float *gf = mallocCheck((size_t)n * vb * sizeof(float)), *cf = mallocCheck(vb * sizeof(float));
    for (uint64_t epoch = 0; epoch < 3; epoch++) {
        REQUIRE(augment_batch_cuda(d_f, d_u8, (const uint8_t *const *)imgs, H, W, index, b, S, 42,
                                   epoch) == 0, "%s", laic_last_error());
        G->synchronize();
        G->to_host(g8, d_u8, (size_t)n * vb);
        G->to_host(gf, d_f, (size_t)n * vb * sizeof(float));
        size_t bad8 = 0, badf = 0;
        for (int j = 0; j < n; j++) {
            const int s = j % b;
            augment_view(c8, imgs[s], H[s], W[s], S, j >= b, 42, epoch, index[s]);
            image_normalize(cf, c8, S);
            char what[96];
            AugmentParams p;
            augment_view_params(&p, H[s], W[s], S, j >= b, 42, epoch, index[s]);
            snprintf(what, sizeof what, "epoch %d view %d (%dx%d crop %dx%d ops %s,%s)", (int)epoch,
                     j, H[s], W[s], p.crop.h, p.crop.w, p.n_ops ? augment_ra_name(p.op[0]) : "-",
                     p.n_ops ? augment_ra_name(p.op[1]) : "-");
            bad8 += diff_u8(g8 + (size_t)j * vb, c8, vb, what) != 0;
            badf += memcmp(gf + (size_t)j * vb, cf, vb * sizeof(float)) != 0;
        }
        CHECK(bad8 == 0, "epoch %d: %zu of %d uint8 views differ", (int)epoch, bad8, n);
        CHECK(badf == 0, "epoch %d: %zu of %d float views differ", (int)epoch, badf, n);
    }
    for (int i = 0; i < b; i++) free(imgs[i]);
    free(g8);
    free(c8);
    free(gf);
    free(cf);
    G->free(d_u8);
    G->free(d_f);
}

// Every RandAugment op, both signs, after each resize mode (copy, horizontal only, vertical
// only, both orders), with and without flip, on a structured image and on a flat one (the
// degenerate AutoContrast/Equalize LUTs). Odd S = 61 exercises the flip's middle column.
TEST(gpu_augment_every_op_matches_cpu) {
    need_gpu();
    const int S = 61, H = 150, W = 120;
    Rng r;
    rng_init(&r, 9, 2);
    uint8_t *img[2];
    img[0] = rand_image(&r, H, W);
    img[1] = mallocCheck((size_t)H * W * 3);
    memset(img[1], 77, (size_t)H * W * 3);
    const CropBox crops[5] = {{3, 5, S, S},          // copy
                              {0, 0, S, 90},         // horizontal only
                              {10, 2, 140, S},       // vertical only
                              {20, 30, 40, 50},      // both, horizontal first (upsample)
                              {0, 1, 150, 70}};      // both, vertical first (h shrinks most)
    enum { NV = 2 * 5 * RA_NUM_OPS * 2 };
    AugmentParams *p = mallocCheck(NV * sizeof *p);
    const uint8_t **ims = mallocCheck(NV * sizeof *ims);
    int *hs = mallocCheck(NV * sizeof *hs), *ws = mallocCheck(NV * sizeof *ws);
    int n = 0;
    for (int im = 0; im < 2; im++)
        for (int c = 0; c < 5; c++)
            for (int op = 0; op < RA_NUM_OPS; op++)
                for (int sg = 0; sg < 2; sg++) {
                    AugmentParams *q = &p[n];
                    memset(q, 0, sizeof *q);
                    q->crop = crops[c];
                    q->flip = (op + c + sg) % 2;
                    q->n_ops = 2;
                    int is_signed;
                    double m = augment_ra_magnitude((RaOp)op, 10, 31, S, S, &is_signed);
                    q->op[0] = (RaOp)op;
                    q->mag[0] = is_signed && sg ? -m : m;
                    // a second op so rounds chain (round 2 reads round 1's output)
                    q->op[1] = (RaOp)((op + 5 + sg) % RA_NUM_OPS);
                    double m2 = augment_ra_magnitude(q->op[1], 10 + 10 * sg, 31, S, S, &is_signed);
                    q->mag[1] = is_signed && (op % 2) ? -m2 : m2;
                    ims[n] = img[im], hs[n] = H, ws[n] = W;
                    n++;
                }
    const size_t vb = (size_t)S * S * 3;
    uint8_t *d_u8 = gpu_alloc((size_t)n * vb), *g8 = mallocCheck((size_t)n * vb),
            *c8 = mallocCheck(vb);
    REQUIRE(augment_views_cuda(NULL, d_u8, ims, hs, ws, p, n, S) == 0, "%s", laic_last_error());
    G->synchronize();
    G->to_host(g8, d_u8, (size_t)n * vb);
    size_t bad = 0;
    for (int j = 0; j < n; j++) {
        cpu_view(c8, ims[j], H, W, S, &p[j]);
        char what[96];
        snprintf(what, sizeof what, "view %d crop %dx%d flip %d %s(%.4g) %s(%.4g)", j, p[j].crop.h,
                 p[j].crop.w, p[j].flip, augment_ra_name(p[j].op[0]), p[j].mag[0],
                 augment_ra_name(p[j].op[1]), p[j].mag[1]);
        bad += diff_u8(g8 + (size_t)j * vb, c8, vb, what) != 0;
    }
    CHECK(bad == 0, "%zu of %d views differ", bad, n);
    // Bitwise repeatable (integer reductions only).
    uint8_t *g8b = mallocCheck((size_t)n * vb);
    REQUIRE(augment_views_cuda(NULL, d_u8, ims, hs, ws, p, n, S) == 0, "%s", laic_last_error());
    G->synchronize();
    G->to_host(g8b, d_u8, (size_t)n * vb);
    CHECK(memcmp(g8, g8b, (size_t)n * vb) == 0, "second run differs from the first");
    augment_cuda_release();
    free(g8b);
    free(img[0]);
    free(img[1]);
    free(p);
    free(ims);
    free(hs);
    free(ws);
    free(g8);
    free(c8);
    G->free(d_u8);
}

// The view index is gridDim.y in every per-view kernel (at most 65535): a larger call must
// return one error line before touching the device, not stop the program at a launch.
TEST(gpu_augment_too_many_views_is_an_error) {
    need_gpu();
    const int n = 65536, S = 8;
    uint8_t px[3 * 8 * 8] = {0};
    AugmentParams *p = callocCheck((size_t)n, sizeof *p);
    const uint8_t **ims = mallocCheck((size_t)n * sizeof *ims);
    int *hs = mallocCheck((size_t)n * sizeof *hs), *ws = mallocCheck((size_t)n * sizeof *ws);
    for (int j = 0; j < n; j++) {
        p[j].crop = (CropBox){0, 0, S, S};
        ims[j] = px, hs[j] = S, ws[j] = S;
    }
    laic_clear_error();
    CHECK(augment_views_cuda(NULL, NULL, ims, hs, ws, p, n, S) == -1, "65536 views refused");
    const char *msg = laic_last_error();
    CHECK(strstr(msg, "augment_views_cuda: 65536 views") != NULL && count_lines(msg) == 1,
          "one line naming the count: '%s'", msg);
    size_t index[1] = {0};
    laic_clear_error();
    CHECK(augment_batch_cuda(NULL, NULL, ims, hs, ws, index, 40000, S, 1, 0) == -1,
          "a batch of 40000 (80000 views) refused");
    CHECK(strstr(laic_last_error(), "augment_batch_cuda: batch of 40000") != NULL, "'%s'",
          laic_last_error());
    free(p);
    free(ims);
    free(hs);
    free(ws);
}

// SEIC strong views (SPEC §9.3): random draws from augment_seic_view_params at S = 224, plus
// views forcing every jitter order position, RandAugment rounds before the jitter (a mixed
// batch: the kernels run every round for every view) and the grayscale; vs augment_apply.
TEST(gpu_augment_seic_views_match_cpu) {
    need_gpu();
    const int S = 224, NR = 24, NF = 8, n = NR + NF;
    Rng r;
    rng_init(&r, 11, 3);
    uint8_t *imgs[4];
    int H[4], W[4];
    for (int i = 0; i < 4; i++) {
        H[i] = 40 + (int)rng_below(&r, 300);
        W[i] = 40 + (int)rng_below(&r, 300);
        imgs[i] = rand_image(&r, H[i], W[i]);
    }
    SeicViewCfg cfg;
    seic_view_cfg_default(&cfg);
    AugmentParams *p = callocCheck((size_t)n, sizeof *p);
    const uint8_t **ims = mallocCheck((size_t)n * sizeof *ims);
    int *hs = mallocCheck((size_t)n * sizeof *hs), *ws = mallocCheck((size_t)n * sizeof *ws);
    for (int j = 0; j < n; j++) {
        const int s = j % 4;
        ims[j] = imgs[s], hs[j] = H[s], ws[j] = W[s];
        augment_seic_view_params(&p[j], H[s], W[s], S, &cfg, 5, 1, (uint64_t)j);
        if (j >= NR) {   // forced: jitter on, rotating orders, extreme factors, some RA rounds
            AugmentParams *q = &p[j];
            q->n_cj = CJ_NUM_OPS;
            for (int k = 0; k < CJ_NUM_OPS; k++) q->cj_op[k] = (CjOp)((k + j) % CJ_NUM_OPS);
            q->cj_factor[CJ_BRIGHTNESS] = j % 2 ? 0.68f : 1.32f;
            q->cj_factor[CJ_CONTRAST] = j % 3 ? 1.32f : 0.68f;
            q->cj_factor[CJ_SATURATION] = j % 4 ? 0.0f : 1.3f;
            q->cj_factor[CJ_HUE] = (j % 2 ? -1.0f : 1.0f) * 0.01f * (float)(j - NR + 1);
            q->gray = j % 3 == 0;
            if (j % 2) {
                q->n_ops = 2;
                q->op[0] = RA_EQUALIZE, q->mag[0] = 0.0;
                q->op[1] = RA_SHARPNESS, q->mag[1] = 0.5;
            }
        }
    }
    const size_t vb = (size_t)S * S * 3;
    uint8_t *d_u8 = gpu_alloc((size_t)n * vb), *g8 = mallocCheck((size_t)n * vb), *c8 = mallocCheck(vb);
    float *d_f = gpu_alloc((size_t)n * vb * sizeof(float));
    float *gf = mallocCheck((size_t)n * vb * sizeof(float)), *cf = mallocCheck(vb * sizeof(float));
    REQUIRE(augment_views_cuda(d_f, d_u8, ims, hs, ws, p, n, S) == 0, "%s", laic_last_error());
    G->synchronize();
    G->to_host(g8, d_u8, (size_t)n * vb);
    G->to_host(gf, d_f, (size_t)n * vb * sizeof(float));
    size_t bad = 0, badf = 0;
    int jittered = 0, grey = 0;
    for (int j = 0; j < n; j++) {
        augment_apply(c8, ims[j], hs[j], ws[j], S, &p[j]);
        image_normalize(cf, c8, S);
        jittered += p[j].n_cj > 0;
        grey += p[j].gray;
        char what[96];
        snprintf(what, sizeof what, "SEIC view %d (jitter %d gray %d ops %d)", j, p[j].n_cj, p[j].gray,
                 p[j].n_ops);
        bad += diff_u8(g8 + (size_t)j * vb, c8, vb, what) != 0;
        badf += memcmp(gf + (size_t)j * vb, cf, vb * sizeof(float)) != 0;
    }
    CHECK(jittered >= NF + 10 && grey >= 3, "the batch exercises jitter (%d) and grayscale (%d)",
          jittered, grey);
    CHECK(bad == 0 && badf == 0, "%zu uint8 and %zu float views of %d differ", bad, badf, n);
    for (int i = 0; i < 4; i++) free(imgs[i]);
    free(p);
    free(ims);
    free(hs);
    free(ws);
    free(g8);
    free(c8);
    free(gf);
    free(cf);
    G->free(d_u8);
    G->free(d_f);
}

// Every 24-bit colour through the hue round trip (one 4096 x 4096 view, crop = copy) at shifts
// 0, 1, 20, 127, 128, 236, 255, and through each blend and the grayscale: bitwise the CPU.
TEST(gpu_augment_hue_all_colours_match_cpu) {
    need_gpu();
    const int S = 4096;
    const size_t npx = (size_t)S * S, vb = npx * 3;
    uint8_t *img = mallocCheck(vb);
    for (size_t i = 0; i < npx; i++)
        img[i * 3] = (uint8_t)(i >> 16), img[i * 3 + 1] = (uint8_t)(i >> 8), img[i * 3 + 2] = (uint8_t)i;
    const float hue[7] = {0.0f, 0.0041f, 0.08f, 0.5f, -0.5f, -0.08f, -0.0041f};
    const CjOp other[3] = {CJ_BRIGHTNESS, CJ_CONTRAST, CJ_SATURATION};
    enum { NV = 7 + 3 + 1 };
    AugmentParams p[NV];
    memset(p, 0, sizeof p);
    const uint8_t *ims[NV];
    int hs[NV], ws[NV];
    for (int j = 0; j < NV; j++) {
        p[j].crop = (CropBox){0, 0, S, S};
        ims[j] = img, hs[j] = S, ws[j] = S;
        if (j < 7) {
            p[j].n_cj = 1, p[j].cj_op[0] = CJ_HUE, p[j].cj_factor[CJ_HUE] = hue[j];
        } else if (j < 10) {
            p[j].n_cj = 1, p[j].cj_op[0] = other[j - 7], p[j].cj_factor[other[j - 7]] = 1.2173f;
        } else {
            p[j].gray = 1;
        }
    }
    uint8_t *d_u8 = gpu_alloc(vb), *g8 = mallocCheck(vb), *c8 = mallocCheck(vb);
    size_t bad = 0;
    for (int j = 0; j < NV; j++) {   // one view per call: 48 MiB each
        REQUIRE(augment_views_cuda(NULL, d_u8, &ims[j], &hs[j], &ws[j], &p[j], 1, S) == 0, "%s",
                laic_last_error());
        G->synchronize();
        G->to_host(g8, d_u8, vb);
        augment_apply(c8, img, S, S, S, &p[j]);
        char what[64];
        snprintf(what, sizeof what, "all colours, case %d (hue shift %d)", j,
                 j < 7 ? augment_hue_shift(hue[j]) : -1);
        bad += diff_u8(g8, c8, vb, what) != 0;
    }
    CHECK(bad == 0, "%zu of %d all-colour cases differ", bad, NV);
    augment_cuda_release();
    free(img);
    free(g8);
    free(c8);
    G->free(d_u8);
}

// The op seic_views_forward (SEIC stage 2): eval views (host resize + centre crop passed through)
// and SEIC strong views of a batch, normalised floats bitwise the CPU op's.
TEST(gpu_seic_views_op_matches_cpu) {
    need_gpu();
    const int b = 12, S = 224;
    Rng r;
    rng_init(&r, 21, 4);
    uint8_t *imgs[12];
    int H[12], W[12];
    size_t index[12];
    for (int i = 0; i < b; i++) {
        H[i] = 32 + (int)rng_below(&r, 300);
        W[i] = 32 + (int)rng_below(&r, 300);
        imgs[i] = rand_image(&r, H[i], W[i]);
        index[i] = 7 + (size_t)i * 3;
    }
    SeicViewCfg cfg;
    seic_view_cfg_default(&cfg);
    const size_t n = 2 * (size_t)b * 3 * S * S;
    float *d = gpu_alloc(n * sizeof(float)), *g = mallocCheck(n * sizeof *g), *c = mallocCheck(n * sizeof *c);
    for (uint64_t epoch = 0; epoch < 2; epoch++) {
        REQUIRE(ops_cuda.seic_views_forward(d, (const uint8_t *const *)imgs, H, W, index, b, S, 3, epoch, &cfg) == 0,
                "%s", laic_last_error());
        gpu_download_into(g, d, n * sizeof(float));
        REQUIRE(ops_cpu.seic_views_forward(c, (const uint8_t *const *)imgs, H, W, index, b, S, 3, epoch, &cfg) == 0,
                "%s", laic_last_error());
        size_t bad = 0;
        for (int j = 0; j < 2 * b; j++)
            bad += memcmp(g + (size_t)j * 3 * S * S, c + (size_t)j * 3 * S * S, (size_t)3 * S * S * sizeof(float)) != 0;
        CHECK(bad == 0, "epoch %d: %zu of %d views differ", (int)epoch, bad, 2 * b);
    }
    for (int i = 0; i < b; i++) free(imgs[i]);
    free(g);
    free(c);
    G->free(d);
}

#endif
