/*
 * test_augment_params.c — the contracts host/model/augment.h exposes for the GPU views
 * (kernels/augment.cu), checked on the CPU: each is re-implemented here exactly as the kernels
 * use it (closed-form 16.16 affine sums, tap tables read as first/count/k, the pass-order rule,
 * parameters drawn first and applied after) and compared bitwise with the reference ops.
 * These run without a GPU, so the arithmetic the kernels rely on is checked in every CI run;
 * tests/gpu/test_augment_gpu.c then checks the kernels themselves on a device.
 */
#include "../test.h"

#include <stdlib.h>
#include <string.h>

#include "model/augment.h"
#include "io/err.h"
#include "rng.h"

static uint8_t *rand_image(Rng *r, int h, int w) {
    uint8_t *im = mallocCheck((size_t)h * w * 3);
    for (size_t i = 0; i < (size_t)h * w * 3; i++) im[i] = (uint8_t)rng_below(r, 256);
    return im;
}

static long long floor_div16(long long v) { return v >= 0 ? v / 65536 : -((-v + 65535) / 65536); }

// Geometric ops: out(x,y) = in(floor((f2 + x f0 + y f1)/2^16), floor((f5 + x f3 + y f4)/2^16)),
// the kernels' closed form, equals augment_ra_apply (which steps by adds) at every pixel.
TEST(augment_affine_fixed_closed_form_matches_apply) {
    Rng r;
    rng_init(&r, 3, 4);
    const int sizes[3][2] = {{61, 61}, {224, 224}, {30, 50}};
    const RaOp ops[5] = {RA_SHEAR_X, RA_SHEAR_Y, RA_TRANSLATE_X, RA_TRANSLATE_Y, RA_ROTATE};
    int checked = 0;
    for (int s = 0; s < 3; s++) {
        const int h = sizes[s][0], w = sizes[s][1];
        uint8_t *in = rand_image(&r, h, w), *ref = mallocCheck((size_t)h * w * 3),
                *got = mallocCheck((size_t)h * w * 3);
        for (int o = 0; o < 5; o++)
            for (int lev = 0; lev <= 30; lev += 5)
                for (int sg = 0; sg < 2; sg++) {
                    int is_signed;
                    double mag = augment_ra_magnitude(ops[o], lev, 31, h, w, &is_signed);
                    if (sg) mag = -mag;
                    int64_t f[6];
                    REQUIRE(augment_ra_affine_fixed(f, ops[o], mag, h, w) == 1, "op %d", ops[o]);
                    augment_ra_apply(ref, in, h, w, ops[o], mag);
                    for (int y = 0; y < h; y++)
                        for (int x = 0; x < w; x++) {
                            long long xi = floor_div16(f[2] + (long long)x * f[0] + (long long)y * f[1]);
                            long long yi = floor_div16(f[5] + (long long)x * f[3] + (long long)y * f[4]);
                            uint8_t *q = got + ((size_t)y * w + x) * 3;
                            if (xi >= 0 && xi < w && yi >= 0 && yi < h)
                                memcpy(q, in + ((size_t)yi * w + (size_t)xi) * 3, 3);
                            else
                                q[0] = q[1] = q[2] = 0;
                        }
                    CHECK(memcmp(got, ref, (size_t)h * w * 3) == 0, "%s level %d sign %d at %dx%d",
                          augment_ra_name(ops[o]), lev, sg, h, w);
                    checked++;
                }
        free(in);
        free(ref);
        free(got);
    }
    int64_t f[6];
    CHECK(augment_ra_affine_fixed(f, RA_BRIGHTNESS, 0.5, 10, 10) == 0, "non-geometric op");
    CHECK(augment_ra_affine_fixed(f, RA_IDENTITY, 0.0, 10, 10) == 0, "identity");
    printf("    %d geometric cases equal\n", checked);
}

// out (n_out samples along one axis) via the exposed taps, as the kernels read them.
static void pass_h(uint8_t *out, const uint8_t *src, size_t stride, int rows, int w, int S) {
    int *first, *count;
    int32_t *k;
    int ks = augment_bicubic_taps(w, S, &first, &count, &k);
    for (int y = 0; y < rows; y++)
        for (int o = 0; o < S; o++)
            for (int c = 0; c < 3; c++) {
                int32_t acc = 1 << (AUGMENT_BICUBIC_PREC - 1);
                for (int x = 0; x < count[o]; x++)
                    acc += (int32_t)src[(size_t)y * stride + (size_t)(first[o] + x) * 3 + c] *
                           k[(size_t)o * ks + x];
                int v = acc < 0 ? 0 : acc >> AUGMENT_BICUBIC_PREC;
                out[((size_t)y * S + o) * 3 + c] = (uint8_t)(v > 255 ? 255 : v);
            }
    free(first);
    free(count);
    free(k);
}

static void pass_v(uint8_t *out, const uint8_t *src, size_t stride, int h, size_t row_bytes, int S) {
    int *first, *count;
    int32_t *k;
    int ks = augment_bicubic_taps(h, S, &first, &count, &k);
    for (int o = 0; o < S; o++)
        for (size_t e = 0; e < row_bytes; e++) {
            int32_t acc = 1 << (AUGMENT_BICUBIC_PREC - 1);
            for (int y = 0; y < count[o]; y++)
                acc += (int32_t)src[(size_t)(first[o] + y) * stride + e] * k[(size_t)o * ks + y];
            int v = acc < 0 ? 0 : acc >> AUGMENT_BICUBIC_PREC;
            out[(size_t)o * row_bytes + e] = (uint8_t)(v > 255 ? 255 : v);
        }
    free(first);
    free(count);
    free(k);
}

// Crop + resize to S x S through the exposed taps and pass-order rule equals
// augment_resized_crop, for every mode (copy, one pass, both orders) and random crops.
TEST(augment_bicubic_taps_match_resized_crop) {
    Rng r;
    rng_init(&r, 5, 6);
    const int H = 150, W = 120;
    uint8_t *img = rand_image(&r, H, W);
    CropBox crops[40] = {{3, 5, 61, 61}, {0, 0, 61, 90}, {10, 2, 140, 61}, {20, 30, 40, 50},
                         {0, 1, 150, 70}};
    for (int i = 5; i < 40; i++) augment_rrc_params(&crops[i], &r, H, W, 0.08, 1.0, 0.75, 4.0 / 3.0);
    const int Ss[2] = {61, 224};
    int modes[5] = {0};
    for (int si = 0; si < 2; si++) {
        const int S = Ss[si];
        uint8_t *ref = mallocCheck((size_t)S * S * 3), *got = mallocCheck((size_t)S * S * 3),
                *tmp = mallocCheck((size_t)(H > S ? H : S) * (W > S ? W : S) * 3);
        for (int i = 0; i < 40; i++) {
            const CropBox *b = &crops[i];
            const size_t stride = (size_t)W * 3;
            const uint8_t *src = img + (size_t)b->top * stride + (size_t)b->left * 3;
            augment_resized_crop(ref, img, H, W, b, S, S);
            int nh = b->w != S, nv = b->h != S, mode;
            if (nh && nv && augment_resize_vertical_first(b->h, b->w, S, S)) {
                pass_v(tmp, src, stride, b->h, (size_t)b->w * 3, S);
                pass_h(got, tmp, (size_t)b->w * 3, S, b->w, S);
                mode = 4;
            } else if (nh && nv) {
                pass_h(tmp, src, stride, b->h, b->w, S);
                pass_v(got, tmp, (size_t)S * 3, b->h, (size_t)S * 3, S);
                mode = 3;
            } else if (nh) {
                pass_h(got, src, stride, S, b->w, S), mode = 1;
            } else if (nv) {
                pass_v(got, src, stride, b->h, (size_t)S * 3, S), mode = 2;
            } else {
                for (int y = 0; y < S; y++) memcpy(got + (size_t)y * S * 3, src + y * stride, (size_t)S * 3);
                mode = 0;
            }
            if (S == 61) modes[mode]++;
            CHECK(memcmp(got, ref, (size_t)S * S * 3) == 0, "crop %d (%d,%d,%d,%d) -> %d mode %d", i,
                  b->top, b->left, b->h, b->w, S, mode);
        }
        free(ref);
        free(got);
        free(tmp);
    }
    for (int m = 0; m < 5; m++) CHECK(modes[m] > 0, "resize mode %d not exercised", m);
    free(img);
}

// augment_view = the parameters drawn first, then crop, flip and the ops applied in order.
TEST(augment_view_params_reproduce_view) {
    Rng r;
    rng_init(&r, 8, 9);
    const int S = 48;
    uint8_t *a = mallocCheck((size_t)S * S * 3), *b = mallocCheck((size_t)S * S * 3),
            *t = mallocCheck((size_t)S * S * 3);
    int strong_ops = 0;
    for (int i = 0; i < 40; i++) {
        int H = 20 + (int)rng_below(&r, 100), W = 20 + (int)rng_below(&r, 100);
        uint8_t *img = rand_image(&r, H, W);
        for (int strong = 0; strong < 2; strong++) {
            AugmentParams p;
            augment_view_params(&p, H, W, S, strong, 77, 3, (uint64_t)i);
            CHECK(p.n_ops == (strong ? AUGMENT_MAX_OPS : 0), "n_ops %d", p.n_ops);
            augment_view(a, img, H, W, S, strong, 77, 3, (uint64_t)i);
            augment_resized_crop(b, img, H, W, &p.crop, S, S);
            if (p.flip) augment_hflip(b, S, S);
            for (int k = 0; k < p.n_ops; k++, strong_ops++) {
                augment_ra_apply(t, b, S, S, p.op[k], p.mag[k]);
                memcpy(b, t, (size_t)S * S * 3);
            }
            CHECK(memcmp(a, b, (size_t)S * S * 3) == 0, "sample %d strong %d", i, strong);
        }
        free(img);
    }
    CHECK(strong_ops == 80, "%d ops", strong_ops);
    free(a);
    free(b);
    free(t);
}
