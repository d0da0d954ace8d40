/*
 * test_augment.c — CPU augmentations (host/model/augment.c) against torchvision/PIL goldens from
 * scripts/make_train_fixtures.py: every RandAugment op at M = 10 (both signs), bicubic
 * resized crops, RandomResizedCrop parameter statistics, and determinism of the views.
 *
 * Tolerances: ops and crops are compared pixel for pixel; the count of differing pixels and
 * the max difference are printed. Exact equality is required (PIL's integer / float32
 * arithmetic is reproduced). Crop statistics: the 5%..95% quantiles of the area fraction and
 * log aspect ratio over 20,000 draws must agree with torchvision's within 0.02 (the sampling
 * error of one quantile at n = 20,000 is below 0.005 for both).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/augment.h"
#include "io/err.h"
#include "io/npy.h"
#include "../test.h"

#define FX "tests/fixtures/train/"

static int same_u8(const uint8_t *a, const uint8_t *r, size_t n, const char *what) {
    size_t bad = 0;
    int mx = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)r[i]);
        if (d) bad++;
        if (d > mx) mx = d;
    }
    printf("    %s %s: %zu of %zu values differ, max diff %d\n", bad ? "NOT OK" : "OK", what, bad,
           n, mx);
    return bad == 0;
}

TEST(augment_ra_magnitudes_vs_torchvision) {
    Npy m;
    REQUIRE(!npy_read(FX "aug_ra_mag.npy", &m) && m.dtype == NPY_F64, "aug_ra_mag");
    const double *r = m.data;
    for (int op = 0; op < RA_NUM_OPS; op++) {
        int sgn;
        double v = augment_ra_magnitude((RaOp)op, 10, 31, 48, 64, &sgn);
        CHECK(v == r[op * 2] && sgn == (int)r[op * 2 + 1], "%s: magnitude %.17g signed %d vs %.17g %d",
              augment_ra_name((RaOp)op), v, sgn, r[op * 2], (int)r[op * 2 + 1]);
    }
    npy_free(&m);
}

TEST(augment_ra_magnitude_table_vs_torchvision) {
    // Other image sizes and levels, so the float32 linspace rule is checked away from M = 10.
    Npy t;
    REQUIRE(!npy_read(FX "aug_ra_mag_table.npy", &t) && t.dtype == NPY_F64 && t.shape[1] == 17,
            "aug_ra_mag_table");
    int bad = 0;
    for (size_t i = 0; i < t.shape[0]; i++) {
        const double *row = (const double *)t.data + i * 17;
        for (int op = 0; op < RA_NUM_OPS; op++) {
            int sg;
            double v = augment_ra_magnitude((RaOp)op, (int)row[2], 31, (int)row[0], (int)row[1], &sg);
            if (v != row[3 + op]) {
                bad++;
                CHECK(0, "%gx%g M=%g %s: %.17g vs torchvision %.17g", row[0], row[1], row[2],
                      augment_ra_name((RaOp)op), v, row[3 + op]);
            }
        }
    }
    printf("    %zu magnitudes checked, %d differ\n", t.shape[0] * RA_NUM_OPS, bad);
    npy_free(&t);
}

TEST(augment_ra_ops_vs_torchvision) {
    Npy img, out, mag, img2, out2;
    REQUIRE(!npy_read(FX "aug_img.npy", &img) && img.dtype == NPY_U8 && img.ndim == 3, "aug_img");
    REQUIRE(!npy_read(FX "aug_ra_out.npy", &out) && out.dtype == NPY_U8, "aug_ra_out");
    REQUIRE(!npy_read(FX "aug_ra_mag.npy", &mag), "aug_ra_mag");
    REQUIRE(!npy_read(FX "aug_img2.npy", &img2) && !npy_read(FX "aug_ra_out2.npy", &out2), "img2");
    int h = (int)img.shape[0], w = (int)img.shape[1];
    size_t n = (size_t)h * w * 3;
    uint8_t *o = mallocCheck(n);
    const double *mg = mag.data;
    for (int op = 0; op < RA_NUM_OPS; op++)
        for (int s = 0; s < 2; s++) {
            double m = mg[op * 2] * (s && mg[op * 2 + 1] != 0.0 ? -1.0 : 1.0);
            augment_ra_apply(o, img.data, h, w, (RaOp)op, m);
            char what[64];
            snprintf(what, sizeof what, "%s(%g)", augment_ra_name((RaOp)op), m);
            CHECK(same_u8(o, (const uint8_t *)out.data + (size_t)(op * 2 + s) * n, n, what), "%s",
                  what);
        }
    // Narrow-histogram image: the stretching ops.
    const RaOp ops2[5] = {RA_AUTOCONTRAST, RA_EQUALIZE, RA_CONTRAST, RA_SHARPNESS, RA_COLOR};
    for (int k = 0; k < 5; k++) {
        augment_ra_apply(o, img2.data, h, w, ops2[k], mg[ops2[k] * 2]);
        char what[64];
        snprintf(what, sizeof what, "%s on a narrow histogram", augment_ra_name(ops2[k]));
        CHECK(same_u8(o, (const uint8_t *)out2.data + (size_t)k * n, n, what), "%s", what);
    }
    free(o);
    npy_free(&img);
    npy_free(&out);
    npy_free(&mag);
    npy_free(&img2);
    npy_free(&out2);
}

TEST(augment_resized_crop_vs_torchvision) {
    Npy src, boxes, crops;
    REQUIRE(!npy_read(FX "aug_src.npy", &src) && src.dtype == NPY_U8, "aug_src");
    REQUIRE(!npy_read(FX "aug_boxes.npy", &boxes) && boxes.dtype == NPY_I32, "aug_boxes");
    REQUIRE(!npy_read(FX "aug_crops.npy", &crops) && crops.dtype == NPY_U8, "aug_crops");
    int H = (int)src.shape[0], W = (int)src.shape[1];
    const int32_t *b = boxes.data;
    size_t off = 0;
    for (size_t i = 0; i < boxes.shape[0]; i++, b += 6) {
        CropBox cb = {b[0], b[1], b[2], b[3]};
        int oh = b[4], ow = b[5];
        size_t n = (size_t)oh * ow * 3;
        REQUIRE(off + n <= crops.count, "fixture too short");
        uint8_t *o = mallocCheck(n);
        augment_resized_crop(o, src.data, H, W, &cb, oh, ow);
        char what[96];
        snprintf(what, sizeof what, "crop (%d,%d,%d,%d) -> %dx%d", b[0], b[1], b[2], b[3], oh, ow);
        CHECK(same_u8(o, (const uint8_t *)crops.data + off, n, what), "%s", what);
        off += n;
        free(o);
    }
    CHECK(off == crops.count, "fixture has %zu values, used %zu", crops.count, off);
    npy_free(&src);
    npy_free(&boxes);
    npy_free(&crops);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// numpy.quantile's default (linear interpolation between order statistics).
static double quantile(const double *s, size_t n, double q) {
    double pos = q * (double)(n - 1);
    size_t i = (size_t)pos;
    double f = pos - (double)i;
    return i + 1 < n ? s[i] + f * (s[i + 1] - s[i]) : s[i];
}

TEST(augment_rrc_statistics_vs_torchvision) {
    Npy q;
    REQUIRE(!npy_read(FX "aug_rrc_q.npy", &q) && q.dtype == NPY_F64 && q.shape[1] == 40, "aug_rrc_q");
    const size_t n = 20000;
    double *sc = mallocCheck(n * sizeof(double)), *lr = mallocCheck(n * sizeof(double));
    for (size_t k = 0; k < q.shape[0]; k++) {
        const double *row = (const double *)q.data + k * 40;
        int H = (int)row[0], W = (int)row[1];
        Rng r;
        rng_init(&r, 77, k);
        int inside = 1;
        for (size_t i = 0; i < n; i++) {
            CropBox b;
            augment_rrc_params(&b, &r, H, W, 0.08, 1.0, 3.0 / 4.0, 4.0 / 3.0);
            inside &= b.top >= 0 && b.left >= 0 && b.h > 0 && b.w > 0 && b.top + b.h <= H &&
                      b.left + b.w <= W;
            sc[i] = (double)b.h * b.w / ((double)H * W);
            lr[i] = log((double)b.w / b.h);
        }
        CHECK(inside, "%dx%d: a crop box leaves the image", H, W);
        qsort(sc, n, sizeof(double), cmp_d);
        qsort(lr, n, sizeof(double), cmp_d);
        double worst_s = 0, worst_r = 0;
        for (int j = 0; j < 19; j++) {
            double p = 0.05 + 0.05 * j;
            worst_s = fmax(worst_s, fabs(quantile(sc, n, p) - row[2 + j]));
            worst_r = fmax(worst_r, fabs(quantile(lr, n, p) - row[21 + j]));
        }
        printf("    %dx%d: max quantile diff area %.4f, log-ratio %.4f\n", H, W, worst_s, worst_r);
        CHECK(worst_s < 0.02 && worst_r < 0.02, "%dx%d: crop statistics differ from torchvision",
              H, W);
    }
    free(sc);
    free(lr);
    npy_free(&q);
}

TEST(augment_views_deterministic) {
    Npy src;
    REQUIRE(!npy_read(FX "aug_src.npy", &src), "aug_src");
    int H = (int)src.shape[0], W = (int)src.shape[1], S = 32;
    size_t n = (size_t)S * S * 3;
    uint8_t *a = mallocCheck(n), *b = mallocCheck(n), *c = mallocCheck(n);
    int differ_idx = 0, differ_epoch = 0, differ_view = 0;
    for (int strong = 0; strong < 2; strong++)
        for (uint64_t idx = 0; idx < 8; idx++) {
            augment_view(a, src.data, H, W, S, strong, 5, 2, idx);
            augment_view(b, src.data, H, W, S, strong, 5, 2, idx);
            CHECK(!memcmp(a, b, n), "view (strong %d, index %llu) not reproducible", strong,
                  (unsigned long long)idx);
            augment_view(c, src.data, H, W, S, strong, 5, 2, idx + 1);
            differ_idx += memcmp(a, c, n) != 0;
            augment_view(c, src.data, H, W, S, strong, 5, 3, idx);
            differ_epoch += memcmp(a, c, n) != 0;
            augment_view(c, src.data, H, W, S, !strong, 5, 2, idx);
            differ_view += memcmp(a, c, n) != 0;
        }
    CHECK(differ_idx == 16 && differ_epoch == 16 && differ_view == 16,
          "views should change with index/epoch/view: %d %d %d of 16", differ_idx, differ_epoch,
          differ_view);
    free(a);
    free(b);
    free(c);
    npy_free(&src);
}

TEST(augment_randaugment_op_frequencies) {
    // Each of the 14 ops is drawn with probability 1/14 and signed ops flip with p = 1/2: the
    // draw sequence RandAugment consumes, replayed here, must show both.
    Rng r;
    rng_init(&r, 1, 2);
    int cnt[RA_NUM_OPS] = {0}, neg = 0, nsigned = 0;
    const int draws = 28000;
    for (int i = 0; i < draws; i++) {
        RaOp op = (RaOp)rng_below(&r, RA_NUM_OPS);
        int sg;
        augment_ra_magnitude(op, 10, 31, 224, 224, &sg);
        cnt[op]++;
        if (sg) nsigned++, neg += (int)rng_below(&r, 2);
    }
    for (int op = 0; op < RA_NUM_OPS; op++)   // expected 2000, sd ~43: 5 sigma
        CHECK(abs(cnt[op] - 2000) < 215, "%s drawn %d times of %d", augment_ra_name((RaOp)op),
              cnt[op], draws);
    CHECK(fabs((double)neg / nsigned - 0.5) < 0.02, "negative share %d of %d", neg, nsigned);
}

// --- ColorJitter, RandomGrayscale and the SEIC strong view (SPEC §9.3) -----------------------

TEST(augment_color_jitter_ops_vs_torchvision) {
    Npy img, img2, cases, out, out2, gray;
    REQUIRE(!npy_read(FX "aug_img.npy", &img) && !npy_read(FX "aug_img2.npy", &img2), "aug_img");
    REQUIRE(!npy_read(FX "cj_cases.npy", &cases) && cases.dtype == NPY_F64, "cj_cases");
    REQUIRE(!npy_read(FX "cj_out.npy", &out) && out.dtype == NPY_U8, "cj_out");
    REQUIRE(!npy_read(FX "cj_out2.npy", &out2) && !npy_read(FX "cj_gray.npy", &gray), "cj_out2");
    const int h = (int)img.shape[0], w = (int)img.shape[1];
    const size_t n = (size_t)h * w * 3;
    REQUIRE(out.count == cases.shape[0] * n, "cj_out has one image per case");
    static const char *names[CJ_NUM_OPS] = {"brightness", "contrast", "saturation", "hue"};
    uint8_t *o = mallocCheck(n);
    const double *c = cases.data;
    for (size_t k = 0; k < cases.shape[0]; k++) {
        CjOp op = (CjOp)(int)c[2 * k];
        float f = (float)c[2 * k + 1];
        augment_cj_apply(o, img.data, h, w, op, f);
        char what[64];
        snprintf(what, sizeof what, "adjust_%s(%.9g)", names[op], (double)f);
        CHECK(same_u8(o, (const uint8_t *)out.data + k * n, n, what), "%s", what);
    }
    // narrow histogram: contrast 1.3, saturation 0.7, hue 0.06
    const CjOp ops2[3] = {CJ_CONTRAST, CJ_SATURATION, CJ_HUE};
    const float f2[3] = {1.3f, 0.7f, 0.06f};
    for (int k = 0; k < 3; k++) {
        augment_cj_apply(o, img2.data, h, w, ops2[k], f2[k]);
        char what[64];
        snprintf(what, sizeof what, "adjust_%s(%g) on a narrow histogram", names[ops2[k]], (double)f2[k]);
        CHECK(same_u8(o, (const uint8_t *)out2.data + (size_t)k * n, n, what), "%s", what);
    }
    memcpy(o, img.data, n);
    augment_grayscale(o, h, w);
    CHECK(same_u8(o, gray.data, n, "rgb_to_grayscale(3 channels)"), "grayscale");
    free(o);
    npy_free(&img);
    npy_free(&img2);
    npy_free(&cases);
    npy_free(&out);
    npy_free(&out2);
    npy_free(&gray);
}

TEST(augment_hue_shift_matches_numpy) {
    // np.int32(f * 255).astype(np.uint8): truncation toward zero, then wrap
    CHECK(augment_hue_shift(0.0f) == 0 && augment_hue_shift(0.08f) == 20 &&
              augment_hue_shift(-0.08f) == 236 && augment_hue_shift(0.5f) == 127 &&
              augment_hue_shift(-0.5f) == 129 && augment_hue_shift(-0.0041f) == 255 &&
              augment_hue_shift(0.0041f) == 1,
          "hue shifts %d %d %d %d %d %d %d", augment_hue_shift(0.0f), augment_hue_shift(0.08f),
          augment_hue_shift(-0.08f), augment_hue_shift(0.5f), augment_hue_shift(-0.5f),
          augment_hue_shift(-0.0041f), augment_hue_shift(0.0041f));
    // a grey pixel has saturation 0: any hue shift leaves it unchanged
    uint8_t g[3] = {77, 77, 77}, hsv[3], back[3];
    augment_rgb_to_hsv(hsv, g);
    hsv[0] = (uint8_t)(hsv[0] + 97);
    augment_hsv_to_rgb(back, hsv);
    CHECK(!memcmp(g, back, 3) && hsv[1] == 0, "grey survives a hue shift");
}

TEST(augment_color_jitter_transform_vs_torchvision) {
    // T.ColorJitter(0.32, 0.32, 0.32, 0.08) with its draws fixed: the four adjustments in the
    // drawn order, each with its own factor
    Npy img, par, out;
    REQUIRE(!npy_read(FX "aug_img.npy", &img), "aug_img");
    REQUIRE(!npy_read(FX "cj_jitter_params.npy", &par) && par.shape[1] == 8, "cj_jitter_params");
    REQUIRE(!npy_read(FX "cj_jitter_out.npy", &out), "cj_jitter_out");
    const int h = (int)img.shape[0], w = (int)img.shape[1];
    const size_t n = (size_t)h * w * 3;
    uint8_t *a = mallocCheck(n), *b = mallocCheck(n);
    for (size_t k = 0; k < par.shape[0]; k++) {
        const double *r = (const double *)par.data + k * 8;
        memcpy(a, img.data, n);
        for (int j = 0; j < CJ_NUM_OPS; j++) {
            CjOp op = (CjOp)(int)r[j];
            augment_cj_apply(b, a, h, w, op, (float)r[4 + op]);
            memcpy(a, b, n);
        }
        char what[64];
        snprintf(what, sizeof what, "ColorJitter draw %zu", k);
        CHECK(same_u8(a, (const uint8_t *)out.data + k * n, n, what), "%s", what);
    }
    free(a);
    free(b);
    npy_free(&img);
    npy_free(&par);
    npy_free(&out);
}

TEST(augment_seic_view_vs_torchvision) {
    // crop + bicubic resize, flip, RandomApply(ColorJitter), RandomGrayscale with fixed draws,
    // through augment_apply (the code path of augment_seic_view)
    Npy src, par, out;
    REQUIRE(!npy_read(FX "aug_src.npy", &src), "aug_src");
    REQUIRE(!npy_read(FX "cj_view_params.npy", &par) && par.shape[1] == 15, "cj_view_params");
    REQUIRE(!npy_read(FX "cj_view_out.npy", &out), "cj_view_out");
    const int H = (int)src.shape[0], W = (int)src.shape[1], S = 32;
    const size_t n = (size_t)S * S * 3;
    uint8_t *o = mallocCheck(n);
    for (size_t k = 0; k < par.shape[0]; k++) {
        const double *r = (const double *)par.data + k * 15;
        AugmentParams p;
        memset(&p, 0, sizeof p);
        p.crop = (CropBox){(int)r[0], (int)r[1], (int)r[2], (int)r[3]};
        p.flip = (int)r[4];
        if (r[5] != 0.0) {
            p.n_cj = CJ_NUM_OPS;
            for (int j = 0; j < CJ_NUM_OPS; j++) p.cj_op[j] = (CjOp)(int)r[6 + j];
            for (int j = 0; j < CJ_NUM_OPS; j++) p.cj_factor[j] = (float)r[10 + j];
        }
        p.gray = (int)r[14];
        augment_apply(o, src.data, H, W, S, &p);
        char what[64];
        snprintf(what, sizeof what, "SEIC strong view %zu", k);
        CHECK(same_u8(o, (const uint8_t *)out.data + k * n, n, what), "%s", what);
    }
    free(o);
    npy_free(&src);
    npy_free(&par);
    npy_free(&out);
}

TEST(augment_seic_view_draws) {
    // The crop statistics at scale (0.5, 1) against torchvision's (as the RandAugment view's
    // test), and the frequencies of the other draws: flip 0.5, jitter 0.8, grayscale 0.2, each
    // of the 24 orders 1/24, factors inside their ranges. n = 20,000: 5-sigma bounds.
    Npy q;
    REQUIRE(!npy_read(FX "cj_rrc_q.npy", &q) && q.shape[1] == 40, "cj_rrc_q");
    SeicViewCfg c;
    seic_view_cfg_default(&c);
    const size_t n = 20000;
    double *sc = mallocCheck(n * sizeof(double)), *lr = mallocCheck(n * sizeof(double));
    for (size_t k = 0; k < q.shape[0]; k++) {
        const double *row = (const double *)q.data + k * 40;
        int H = (int)row[0], W = (int)row[1];
        int flips = 0, jit = 0, gray = 0, inside = 1, in_range = 1, perm_ok = 1;
        int orders[24] = {0};
        double fsum[4] = {0};
        for (size_t i = 0; i < n; i++) {
            AugmentParams p;
            augment_seic_view_params(&p, H, W, 224, &c, 9, k, i);
            const CropBox *b = &p.crop;
            inside &= b->top >= 0 && b->left >= 0 && b->h > 0 && b->w > 0 && b->top + b->h <= H &&
                      b->left + b->w <= W;
            sc[i] = (double)b->h * b->w / ((double)H * W);
            lr[i] = log((double)b->w / b->h);
            flips += p.flip;
            gray += p.gray;
            CHECK(p.n_ops == 0, "no RandAugment round in a SEIC view");
            if (p.n_cj) {
                jit++;
                int seen = 0, code = 0;
                for (int j = 0; j < 4; j++) seen |= 1 << p.cj_op[j], code = code * 4 + p.cj_op[j];
                perm_ok &= seen == 15;
                // rank of the order among the 256 codes of 4-digit base-4 numbers, folded to
                // the 24 permutations by a small table built on first use
                static int rank[256], built;
                if (!built) {
                    int r = 0;
                    for (int v = 0; v < 256; v++) {
                        int s = 0;
                        for (int d = 0, x = v; d < 4; d++, x /= 4) s |= 1 << (x % 4);
                        rank[v] = s == 15 ? r++ : -1;
                    }
                    built = 1;
                }
                if (rank[code] >= 0) orders[rank[code]]++;
                for (int j = 0; j < 3; j++)
                    in_range &= p.cj_factor[j] >= 0.68f && p.cj_factor[j] <= 1.32f;
                in_range &= p.cj_factor[3] >= -0.08f && p.cj_factor[3] <= 0.08f;
                for (int j = 0; j < 4; j++) fsum[j] += p.cj_factor[j];
            }
        }
        CHECK(inside && in_range && perm_ok, "%dx%d: crop inside %d, factors in range %d, orders are permutations %d",
              H, W, inside, in_range, perm_ok);
        qsort(sc, n, sizeof(double), cmp_d);
        qsort(lr, n, sizeof(double), cmp_d);
        double worst_s = 0, worst_r = 0;
        for (int j = 0; j < 19; j++) {
            double p = 0.05 + 0.05 * j;
            worst_s = fmax(worst_s, fabs(quantile(sc, n, p) - row[2 + j]));
            worst_r = fmax(worst_r, fabs(quantile(lr, n, p) - row[21 + j]));
        }
        printf("    %dx%d: max quantile diff area %.4f, log-ratio %.4f; flip %.3f jitter %.3f gray %.3f\n",
               H, W, worst_s, worst_r, flips / (double)n, jit / (double)n, gray / (double)n);
        CHECK(worst_s < 0.02 && worst_r < 0.02, "%dx%d: crop statistics differ from torchvision", H, W);
        CHECK(fabs(flips - 0.5 * n) < 5 * sqrt(0.25 * n) && fabs(jit - 0.8 * n) < 5 * sqrt(0.16 * n) &&
                  fabs(gray - 0.2 * n) < 5 * sqrt(0.16 * n),
              "flip/jitter/gray frequencies %d %d %d of %zu", flips, jit, gray, n);
        int worst = 0;
        for (int j = 0; j < 24; j++) worst = abs(orders[j] * 24 - jit) > worst ? abs(orders[j] * 24 - jit) : worst;
        CHECK(worst < 24 * 5 * sqrt(jit / 24.0), "orders uniform: worst deviation %d / 24 of %d", worst, jit);
        CHECK(fabs(fsum[0] / jit - 1) < 0.01 && fabs(fsum[1] / jit - 1) < 0.01 &&
                  fabs(fsum[2] / jit - 1) < 0.01 && fabs(fsum[3] / jit) < 0.003,
              "mean factors %.4f %.4f %.4f %.4f", fsum[0] / jit, fsum[1] / jit, fsum[2] / jit, fsum[3] / jit);
    }
    free(sc);
    free(lr);
    npy_free(&q);
}

TEST(augment_seic_views_deterministic) {
    Npy src;
    REQUIRE(!npy_read(FX "aug_src.npy", &src), "aug_src");
    SeicViewCfg c;
    seic_view_cfg_default(&c);
    const int H = (int)src.shape[0], W = (int)src.shape[1], S = 32;
    const size_t n = (size_t)S * S * 3;
    uint8_t *a = mallocCheck(n), *b = mallocCheck(n), *d = mallocCheck(n);
    int differ = 0;
    for (uint64_t i = 0; i < 8; i++) {
        augment_seic_view(a, src.data, H, W, S, &c, 5, 2, i);
        augment_seic_view(b, src.data, H, W, S, &c, 5, 2, i);
        CHECK(!memcmp(a, b, n), "SEIC view %llu not reproducible", (unsigned long long)i);
        augment_view(d, src.data, H, W, S, 1, 5, 2, i);
        differ += memcmp(a, d, n) != 0;
        augment_seic_view(d, src.data, H, W, S, &c, 5, 3, i);
        differ += memcmp(a, d, n) != 0;
    }
    CHECK(differ == 16, "SEIC views differ from RandAugment views and across epochs: %d of 16", differ);
    // every draw switched off: the view is the plain resized crop of the whole image
    SeicViewCfg off = {1.0, 1.0, 0.0, 0.0, 0.32, 0.32, 0.32, 0.08, 0.0};
    AugmentParams p;
    augment_seic_view_params(&p, H, W, S, &off, 5, 2, 0);
    CHECK(!p.flip && !p.n_cj && !p.gray && p.crop.h * p.crop.w >= H * W * 0.99, "all draws off");
    free(a);
    free(b);
    free(d);
    npy_free(&src);
}
