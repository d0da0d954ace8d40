/*
 * augment.c — CPU reference augmentations; see augment.h for the promises.
 *
 * Each op follows the Pillow/torchvision definition it stands for, in the same evaluation
 * order where rounding depends on it (float blends, double affine coordinates, fixed-point
 * bicubic taps). image.c's resampler is private to it (CLIP resize + centre crop only), so the
 * general PIL bicubic resize a random crop needs is written here.
 */
#include "model/augment.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/err.h"

// --- RandomResizedCrop -------------------------------------------------------------------

void augment_rrc_params(CropBox *b, Rng *r, int H, int W, double scale_lo, double scale_hi,
                        double ratio_lo, double ratio_hi) {
    double area = (double)H * W, lr0 = log(ratio_lo), lr1 = log(ratio_hi);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = area * (scale_lo + (scale_hi - scale_lo) * rng_uniform(r));
        double ar = exp(lr0 + (lr1 - lr0) * rng_uniform(r));
        int w = (int)nearbyint(sqrt(target * ar));   // Python round(): half to even
        int h = (int)nearbyint(sqrt(target / ar));
        if (0 < w && w <= W && 0 < h && h <= H) {
            b->top = (int)rng_below(r, (uint64_t)(H - h + 1));
            b->left = (int)rng_below(r, (uint64_t)(W - w + 1));
            b->h = h;
            b->w = w;
            return;
        }
    }
    // Centre fallback, clamping the aspect ratio into range.
    double in_ratio = (double)W / H;
    int w, h;
    if (in_ratio < ratio_lo) {
        w = W;
        h = (int)nearbyint(w / ratio_lo);
    } else if (in_ratio > ratio_hi) {
        h = H;
        w = (int)nearbyint(h * ratio_hi);
    } else {
        w = W;
        h = H;
    }
    b->top = (H - h) / 2;
    b->left = (W - w) / 2;
    b->h = h;
    b->w = w;
}

// --- PIL bicubic resize (8 bits per channel) ---------------------------------------------

#define PREC 22   // PIL: 32 - 8 bits of result - 2 bits of headroom

static double cubic(double x) {   // Keys, a = -0.5, in PIL's evaluation order
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

typedef struct {
    int ksize;
    int *first, *count;   // (n) first tap and number of taps per output sample
    int32_t *k;           // (n, ksize) fixed-point weights
} Taps;

static void taps_build(Taps *t, int in, int out) {
    double scale = (double)in / out, fs = scale < 1.0 ? 1.0 : scale, support = 2.0 * fs;
    t->ksize = (int)ceil(support) * 2 + 1;
    t->first = mallocCheck((size_t)out * sizeof(int));
    t->count = mallocCheck((size_t)out * sizeof(int));
    t->k = callocCheck((size_t)out * (size_t)t->ksize, sizeof(int32_t));
    double *w = mallocCheck((size_t)t->ksize * sizeof(double));
    for (int o = 0; o < out; o++) {
        double center = (o + 0.5) * scale, ww = 0.0;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        int n = hi - lo;
        for (int x = 0; x < n; x++) ww += (w[x] = cubic((x + lo - center + 0.5) / fs));
        for (int x = 0; x < n; x++) {
            double v = ww != 0.0 ? w[x] / ww : w[x];
            t->k[(size_t)o * t->ksize + x] =
                (int32_t)(v < 0 ? -0.5 + v * (1 << PREC) : 0.5 + v * (1 << PREC));
        }
        t->first[o] = lo;
        t->count[o] = n;
    }
    free(w);
}

int augment_bicubic_taps(int n_in, int n_out, int **first, int **count, int32_t **k) {
    Taps t;
    taps_build(&t, n_in, n_out);
    *first = t.first;
    *count = t.count;
    *k = t.k;
    return t.ksize;
}

int augment_resize_vertical_first(int h, int w, int oh, int ow) {
    // Pillow 13 runs the vertical pass first when the height shrinks by more than twice as
    // much as the width; the 8-bit intermediate makes the order visible.
    return (h - oh) > 0 && (h - oh) > 2 * (w - ow);
}

static void taps_free(Taps *t) {
    free(t->first);
    free(t->count);
    free(t->k);
}

static inline uint8_t clip_fx(int32_t s) {
    if (s < 0) return 0;
    s >>= PREC;
    return (uint8_t)(s > 255 ? 255 : s);
}

// out (h, ow, 3) from in rows of `stride` bytes.
static void hpass(uint8_t *out, const uint8_t *in, size_t stride, int h, int w, int ow) {
    Taps t;
    taps_build(&t, w, ow);
    for (int y = 0; y < h; y++)
        for (int o = 0; o < ow; o++) {
            const int32_t *k = t.k + (size_t)o * t.ksize;
            const uint8_t *s = in + (size_t)y * stride + (size_t)t.first[o] * 3;
            for (int c = 0; c < 3; c++) {
                int32_t acc = 1 << (PREC - 1);
                for (int x = 0; x < t.count[o]; x++) acc += (int32_t)s[(size_t)x * 3 + c] * k[x];
                out[((size_t)y * ow + o) * 3 + c] = clip_fx(acc);
            }
        }
    taps_free(&t);
}

// out (oh, w, 3) from in (h rows of `stride` bytes, w pixels used).
static void vpass(uint8_t *out, const uint8_t *in, size_t stride, int h, int w, int oh) {
    Taps t;
    taps_build(&t, h, oh);
    size_t rl = (size_t)w * 3;
    for (int o = 0; o < oh; o++) {
        const int32_t *k = t.k + (size_t)o * t.ksize;
        for (size_t e = 0; e < rl; e++) {
            int32_t acc = 1 << (PREC - 1);
            for (int y = 0; y < t.count[o]; y++)
                acc += (int32_t)in[(size_t)(t.first[o] + y) * stride + e] * k[y];
            out[(size_t)o * rl + e] = clip_fx(acc);
        }
    }
    taps_free(&t);
}

void augment_resized_crop(uint8_t *out, const uint8_t *in, int H, int W, const CropBox *b, int oh,
                          int ow) {
    (void)H;
    size_t stride = (size_t)W * 3;
    const uint8_t *src = in + (size_t)b->top * stride + (size_t)b->left * 3;
    int h = b->h, w = b->w, need_h = ow != w, need_v = oh != h;
    if (need_h && need_v) {
        if (augment_resize_vertical_first(h, w, oh, ow)) {
            uint8_t *tmp = mallocCheck((size_t)oh * w * 3);
            vpass(tmp, src, stride, h, w, oh);
            hpass(out, tmp, (size_t)w * 3, oh, w, ow);
            free(tmp);
        } else {
            uint8_t *tmp = mallocCheck((size_t)h * ow * 3);
            hpass(tmp, src, stride, h, w, ow);
            vpass(out, tmp, (size_t)ow * 3, h, ow, oh);
            free(tmp);
        }
    } else if (need_h) {
        hpass(out, src, stride, h, w, ow);
    } else if (need_v) {
        vpass(out, src, stride, h, w, oh);
    } else {
        for (int y = 0; y < h; y++) memcpy(out + (size_t)y * w * 3, src + (size_t)y * stride, (size_t)w * 3);
    }
}

void augment_hflip(uint8_t *img, int h, int w) {
    for (int y = 0; y < h; y++) {
        uint8_t *row = img + (size_t)y * w * 3;
        for (int a = 0, b = w - 1; a < b; a++, b--)
            for (int c = 0; c < 3; c++) {
                uint8_t t = row[a * 3 + c];
                row[a * 3 + c] = row[b * 3 + c];
                row[b * 3 + c] = t;
            }
    }
}

// --- RandAugment ops ---------------------------------------------------------------------

static const char *RA_NAMES[RA_NUM_OPS] = {
    "Identity", "ShearX",     "ShearY",    "TranslateX", "TranslateY",
    "Rotate",   "Brightness", "Color",     "Contrast",   "Sharpness",
    "Posterize", "Solarize",  "AutoContrast", "Equalize"};

const char *augment_ra_name(RaOp op) { return op >= 0 && op < RA_NUM_OPS ? RA_NAMES[op] : "?"; }

// torch.linspace(a, b, bins)[i] in float32: step in float, from the near end (torch's rule).
static double linspace_f32(double a, double b, int bins, int i) {
    float fa = (float)a, fb = (float)b, step = (fb - fa) / (float)(bins - 1);
    int half = bins / 2;
    return i < half ? (double)(fa + step * (float)i) : (double)(fb - step * (float)(bins - 1 - i));
}

double augment_ra_magnitude(RaOp op, int M, int bins, int h, int w, int *is_signed) {
    *is_signed = 1;
    switch (op) {
    case RA_SHEAR_X:
    case RA_SHEAR_Y: return linspace_f32(0.0, 0.3, bins, M);
    case RA_TRANSLATE_X: return linspace_f32(0.0, 150.0 / 331.0 * w, bins, M);
    case RA_TRANSLATE_Y: return linspace_f32(0.0, 150.0 / 331.0 * h, bins, M);
    case RA_ROTATE: return linspace_f32(0.0, 30.0, bins, M);
    case RA_BRIGHTNESS:
    case RA_COLOR:
    case RA_CONTRAST:
    case RA_SHARPNESS: return linspace_f32(0.0, 0.9, bins, M);
    default: break;
    }
    *is_signed = 0;
    if (op == RA_POSTERIZE) {   // 8 - round(arange(bins) / ((bins - 1) / 4)), float32
        float v = (float)M / (float)((bins - 1) / 4.0);
        return 8 - (int)nearbyintf(v);
    }
    if (op == RA_SOLARIZE) return linspace_f32(255.0, 0.0, bins, M);
    return 0.0;
}

/* PIL Image.transform(AFFINE, NEAREST, fillcolor 0): out(x, y) = in(a0 x' + a1 y' + a2,
 * a3 x' + a4 y' + a5) at pixel centres x' = x + 0.5. PIL runs nearest-neighbour affines in
 * 16.16 fixed point whenever the corners' source coordinates fit in +-32768 (always, for
 * images under 32k pixels): coefficients rounded as floor(v 65536 + 0.5), stepped by integer
 * adds along rows and down columns, source index = coordinate >> 16 (floor). That rounding
 * is visible (a coordinate 1e-4 above an integer can land on the pixel below), so we do the
 * same; the double-precision path covers larger images. */
static int fits_fixed(const double a[6], double x, double y) {
    double u = a[0] * x + a[1] * y + a[2], v = a[3] * x + a[4] * y + a[5];
    return -32768.0 <= u && u < 32768.0 && -32768.0 <= v && v < 32768.0;
}

static inline int64_t fix16(double v) { return (int64_t)floor(v * 65536.0 + 0.5); }

static inline int64_t floor_shift16(int64_t v) {   // floor(v / 65536) without relying on >>
    return v >= 0 ? v / 65536 : -((-v + 65535) / 65536);
}

// The 16.16 coefficients {a0, a1, x at pixel (0,0), a3, a4, y at (0,0)}; 0 if they do not fit.
static int affine_fixed(int64_t f[6], const double a[6], int h, int w) {
    if (!(fits_fixed(a, 0, 0) && fits_fixed(a, w, h) && fits_fixed(a, 0, h) && fits_fixed(a, w, 0)))
        return 0;
    f[0] = fix16(a[0]), f[1] = fix16(a[1]), f[2] = fix16(a[2] + a[0] * 0.5 + a[1] * 0.5);
    f[3] = fix16(a[3]), f[4] = fix16(a[4]), f[5] = fix16(a[5] + a[3] * 0.5 + a[4] * 0.5);
    return 1;
}

static void affine_nearest(uint8_t *out, const uint8_t *in, int h, int w, const double a[6]) {
    int64_t f[6];
    if (affine_fixed(f, a, h, w)) {
        int64_t a0 = f[0], a1 = f[1], a3 = f[3], a4 = f[4], xo = f[2], yo = f[5];
        for (int y = 0; y < h; y++) {
            int64_t xx = xo, yy = yo;
            for (int x = 0; x < w; x++) {
                int64_t xi = floor_shift16(xx), yi = floor_shift16(yy);
                uint8_t *o = out + ((size_t)y * w + x) * 3;
                if (xi >= 0 && xi < w && yi >= 0 && yi < h)
                    memcpy(o, in + ((size_t)yi * w + (size_t)xi) * 3, 3);
                else
                    o[0] = o[1] = o[2] = 0;
                xx += a0;
                yy += a3;
            }
            xo += a1;
            yo += a4;
        }
        return;
    }
    double xo = a[2] + a[1] * 0.5 + a[0] * 0.5, yo = a[5] + a[4] * 0.5 + a[3] * 0.5;
    for (int y = 0; y < h; y++) {
        double xx = xo, yy = yo;
        for (int x = 0; x < w; x++) {
            int xi = xx < 0.0 ? -1 : (int)xx, yi = yy < 0.0 ? -1 : (int)yy;
            uint8_t *o = out + ((size_t)y * w + x) * 3;
            if (xi >= 0 && xi < w && yi >= 0 && yi < h)
                memcpy(o, in + ((size_t)yi * w + xi) * 3, 3);
            else
                o[0] = o[1] = o[2] = 0;
            xx += a[0];
            yy += a[3];
        }
        xo += a[1];
        yo += a[4];
    }
}

/* torchvision _get_inverse_affine_matrix (inverted), term for term. */
static void inverse_affine(double m[6], double cx, double cy, double angle, double tx, double ty,
                           double shx, double shy) {
    const double d2r = M_PI / 180.0;
    double rot = angle * d2r, sx = shx * d2r, sy = shy * d2r;
    double a = cos(rot - sy) / cos(sy);
    double b = -cos(rot - sy) * tan(sx) / cos(sy) - sin(rot);
    double c = sin(rot - sy) / cos(sy);
    double d = -sin(rot - sy) * tan(sx) / cos(sy) + cos(rot);
    m[0] = d, m[1] = -b, m[2] = 0.0, m[3] = -c, m[4] = a, m[5] = 0.0;
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
    m[2] += cx;
    m[5] += cy;
}

static double round15(double x) {   // Python round(x, 15): correctly rounded via decimal
    char buf[64];
    snprintf(buf, sizeof buf, "%.15f", x);
    return strtod(buf, NULL);
}

/* PIL Image.rotate(angle, NEAREST, expand=False, centre (w/2, h/2)): the inverse map m;
 * returns 0 for a multiple of 360 degrees (PIL copies the image). */
static int rotate_matrix(double m[6], int h, int w, double angle) {
    angle = fmod(angle, 360.0);
    if (angle < 0) angle += 360.0;   // Python's % keeps the divisor's sign
    if (angle == 0.0) return 0;
    double t = -(angle * (M_PI / 180.0)), cx = w / 2.0, cy = h / 2.0;
    m[0] = round15(cos(t)), m[1] = round15(sin(t)), m[2] = 0.0;
    m[3] = round15(-sin(t)), m[4] = round15(cos(t)), m[5] = 0.0;
    double x = -cx, y = -cy;
    m[2] = m[0] * x + m[1] * y + m[2];
    m[5] = m[3] * x + m[4] * y + m[5];
    m[2] += cx;
    m[5] += cy;
    return 1;
}

static void rotate_nearest(uint8_t *out, const uint8_t *in, int h, int w, double angle) {
    double m[6];
    if (!rotate_matrix(m, h, w, angle)) {
        memcpy(out, in, (size_t)h * w * 3);
        return;
    }
    affine_nearest(out, in, h, w, m);
}

/* The inverse affine map of a geometric op (shear, translate, rotate); 0 for other ops and
 * for a rotation by a multiple of 360 degrees (an exact copy). */
static int ra_matrix(double m[6], RaOp op, double mag, int h, int w) {
    switch (op) {
    case RA_SHEAR_X: inverse_affine(m, 0, 0, 0.0, 0, 0, atan(mag) * (180.0 / M_PI), 0.0); return 1;
    case RA_SHEAR_Y: inverse_affine(m, 0, 0, 0.0, 0, 0, 0.0, atan(mag) * (180.0 / M_PI)); return 1;
    case RA_TRANSLATE_X:
    case RA_TRANSLATE_Y: {
        double t = (double)(int)mag;   // Python int(): toward zero
        inverse_affine(m, w * 0.5, h * 0.5, 0.0, op == RA_TRANSLATE_X ? t : 0.0,
                       op == RA_TRANSLATE_Y ? t : 0.0, 0.0, 0.0);
        return 1;
    }
    case RA_ROTATE: return rotate_matrix(m, h, w, mag);
    default: return 0;
    }
}

int augment_ra_affine_fixed(int64_t f[6], RaOp op, double mag, int h, int w) {
    double m[6];
    if (!ra_matrix(m, op, mag, h, w)) {
        if (op != RA_ROTATE) return 0;
        m[0] = 1.0, m[1] = 0.0, m[2] = 0.0, m[3] = 0.0, m[4] = 1.0, m[5] = 0.0;   // identity
    }
    return affine_fixed(f, m, h, w) ? 1 : -1;
}

/* Image.blend(degenerate, img, factor): float arithmetic, truncation, clamped when
 * extrapolating, as PIL's ImagingBlend. */
static void blend(uint8_t *out, const uint8_t *deg, const uint8_t *img, size_t n, double factor) {
    float alpha = (float)factor;
    if (alpha >= 0 && alpha <= 1.0f) {
        for (size_t i = 0; i < n; i++)
            out[i] = (uint8_t)((float)deg[i] + alpha * (float)((int)img[i] - (int)deg[i]));
    } else {
        for (size_t i = 0; i < n; i++) {
            float v = (float)deg[i] + alpha * (float)((int)img[i] - (int)deg[i]);
            out[i] = v <= 0.0f ? 0 : v >= 255.0f ? 255 : (uint8_t)v;
        }
    }
}

static inline uint8_t luma(const uint8_t *p) {   // PIL RGB -> L, ITU-R 601-2 in 16-bit fixed
    return (uint8_t)(((unsigned)p[0] * 19595 + (unsigned)p[1] * 38470 + (unsigned)p[2] * 7471 +
                      0x8000) >> 16);
}

/* PIL ImageFilter.SMOOTH (3x3 kernel 1 1 1 / 1 5 1 / 1 1 1, scale 13); the border pixels
 * keep their values. */
static void smooth(uint8_t *out, const uint8_t *in, int h, int w) {
    memcpy(out, in, (size_t)h * w * 3);
    if (h < 3 || w < 3) return;
    const float k = 1.0f / 13.0f, kc = 5.0f / 13.0f;
    for (int y = 1; y < h - 1; y++)
        for (int x = 1; x < w - 1; x++)
            for (int c = 0; c < 3; c++) {
                const uint8_t *p = in + ((size_t)y * w + x) * 3 + c;
                size_t r = (size_t)w * 3;
                float ss = 0.0f;
                ss += p[r - 3] * k + p[r] * k + p[r + 3] * k;
                ss += p[-3] * k + p[0] * kc + p[3] * k;
                ss += p[-r - 3] * k + p[-r] * k + p[-r + 3] * k;
                ss += 0.5f;
                out[((size_t)y * w + x) * 3 + c] = ss <= 0 ? 0 : ss >= 255 ? 255 : (uint8_t)ss;
            }
}

static void apply_lut(uint8_t *out, const uint8_t *in, size_t npix, const uint8_t lut[3][256]) {
    for (size_t i = 0; i < npix; i++)
        for (int c = 0; c < 3; c++) out[i * 3 + c] = lut[c][in[i * 3 + c]];
}

static void histograms(size_t hist[3][256], const uint8_t *in, size_t npix) {
    memset(hist, 0, sizeof(size_t) * 3 * 256);
    for (size_t i = 0; i < npix; i++)
        for (int c = 0; c < 3; c++) hist[c][in[i * 3 + c]]++;
}

/* ImageEnhance.Brightness / Color / Contrast (op RA_BRIGHTNESS, RA_COLOR, RA_CONTRAST) with
 * factor f: Image.blend(degenerate, img, f). RandAugment passes 1 + mag, ColorJitter its
 * factor. */
static void enhance(uint8_t *out, const uint8_t *in, size_t npix, RaOp op, double f) {
    const size_t n = npix * 3;
    uint8_t *deg = mallocCheck(n);
    if (op == RA_BRIGHTNESS) {
        memset(deg, 0, n);
    } else if (op == RA_COLOR) {
        for (size_t i = 0; i < npix; i++) deg[i * 3] = deg[i * 3 + 1] = deg[i * 3 + 2] = luma(in + i * 3);
    } else {
        uint64_t sum = 0;
        for (size_t i = 0; i < npix; i++) sum += luma(in + i * 3);
        memset(deg, (int)((double)sum / (double)npix + 0.5), n);
    }
    blend(out, deg, in, n, f);
    free(deg);
}

void augment_ra_apply(uint8_t *out, const uint8_t *in, int h, int w, RaOp op, double mag) {
    size_t npix = (size_t)h * w, n = npix * 3;
    uint8_t lut[3][256];
    size_t hist[3][256];
    double m[6];
    switch (op) {
    case RA_SHEAR_X:
    case RA_SHEAR_Y:
    case RA_TRANSLATE_X:
    case RA_TRANSLATE_Y:
        ra_matrix(m, op, mag, h, w);
        affine_nearest(out, in, h, w, m);
        return;
    case RA_ROTATE: rotate_nearest(out, in, h, w, mag); return;
    case RA_BRIGHTNESS:
    case RA_COLOR:
    case RA_CONTRAST: enhance(out, in, npix, op, 1.0 + mag); return;
    case RA_SHARPNESS: {
        uint8_t *deg = mallocCheck(n);
        smooth(deg, in, h, w);
        blend(out, deg, in, n, 1.0 + mag);
        free(deg);
        return;
    }
    case RA_POSTERIZE: {
        int bits = (int)mag;
        uint8_t mask = (uint8_t)~((1u << (8 - bits)) - 1);
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 256; i++) lut[c][i] = (uint8_t)(i & mask);
        apply_lut(out, in, npix, lut);
        return;
    }
    case RA_SOLARIZE:
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < 256; i++) lut[c][i] = (uint8_t)(i < mag ? i : 255 - i);
        apply_lut(out, in, npix, lut);
        return;
    case RA_AUTOCONTRAST:
        histograms(hist, in, npix);
        for (int c = 0; c < 3; c++) {
            int lo = 0, hi = 255;
            while (lo < 255 && !hist[c][lo]) lo++;
            while (hi > 0 && !hist[c][hi]) hi--;
            if (hi <= lo) {
                for (int i = 0; i < 256; i++) lut[c][i] = (uint8_t)i;
                continue;
            }
            double scale = 255.0 / (hi - lo), offset = -lo * scale;
            for (int i = 0; i < 256; i++) {
                int v = (int)(i * scale + offset);
                lut[c][i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
        apply_lut(out, in, npix, lut);
        return;
    case RA_EQUALIZE:
        histograms(hist, in, npix);
        for (int c = 0; c < 3; c++) {
            size_t total = 0, last = 0;
            int nonzero = 0;
            for (int i = 0; i < 256; i++)
                if (hist[c][i]) total += hist[c][i], last = hist[c][i], nonzero++;
            size_t step = nonzero > 1 ? (total - last) / 255 : 0;
            if (!step) {
                for (int i = 0; i < 256; i++) lut[c][i] = (uint8_t)i;
                continue;
            }
            size_t acc = step / 2;
            for (int i = 0; i < 256; i++) {
                size_t v = acc / step;
                lut[c][i] = (uint8_t)(v > 255 ? 255 : v);
                acc += hist[c][i];
            }
        }
        apply_lut(out, in, npix, lut);
        return;
    case RA_IDENTITY:
    default: memcpy(out, in, n); return;
    }
}

// One RandAugment draw: the op index, then a sign only for signed ops (torchvision's order).
static RaOp ra_draw(Rng *r, int M, int h, int w, double *mag) {
    RaOp op = (RaOp)rng_below(r, RA_NUM_OPS);
    int sgn;
    *mag = augment_ra_magnitude(op, M, 31, h, w, &sgn);
    if (sgn && rng_below(r, 2)) *mag = -*mag;
    return op;
}

void augment_randaugment(uint8_t *img, int h, int w, int N, int M, Rng *r) {
    uint8_t *tmp = mallocCheck((size_t)h * w * 3);
    for (int k = 0; k < N; k++) {
        double mag;
        RaOp op = ra_draw(r, M, h, w, &mag);
        augment_ra_apply(tmp, img, h, w, op, mag);
        memcpy(img, tmp, (size_t)h * w * 3);
    }
    free(tmp);
}

// --- ColorJitter and RandomGrayscale ---------------------------------------------------------

static inline uint8_t clip8(int v) { return (uint8_t)(v <= 0 ? 0 : v < 256 ? v : 255); }

/* PIL Convert.c rgb2hsv_row, with its types: float quotients, the hue offsets and the final
 * scaling in double (the 2.0/4.0/6.0/255.0 literals), truncation to int, clipped. */
void augment_rgb_to_hsv(uint8_t hsv[3], const uint8_t rgb[3]) {
    const uint8_t r = rgb[0], g = rgb[1], b = rgb[2];
    const uint8_t mx = r > g ? (r > b ? r : b) : (g > b ? g : b);
    const uint8_t mn = r < g ? (r < b ? r : b) : (g < b ? g : b);
    hsv[2] = mx;
    if (mn == mx) {
        hsv[0] = hsv[1] = 0;
        return;
    }
    const float cr = (float)(mx - mn), s = cr / (float)mx;
    const float rc = (float)(mx - r) / cr, gc = (float)(mx - g) / cr, bc = (float)(mx - b) / cr;
    float hue;
    if (r == mx) hue = bc - gc;
    else if (g == mx) hue = (float)(2.0 + rc - bc);
    else hue = (float)(4.0 + gc - rc);
    hue = (float)fmod(hue / 6.0 + 1.0, 1.0);
    hsv[0] = clip8((int)(hue * 255.0));
    hsv[1] = clip8((int)(s * 255.0));
}

/* PIL Convert.c hsv2rgb: sector and remainder in double from the float hue, p/q/t rounded half
 * away from zero; fs * f is a float product (both operands float). */
void augment_hsv_to_rgb(uint8_t rgb[3], const uint8_t hsv[3]) {
    const uint8_t h = hsv[0], s = hsv[1], v = hsv[2];
    if (s == 0) {
        rgb[0] = rgb[1] = rgb[2] = v;
        return;
    }
    const int i = (int)floor((float)h * 6.0 / 255.0);
    const float f = (float)((float)h * 6.0 / 255.0 - (float)i);
    const float fs = (float)((float)s / 255.0);
    const uint8_t up = clip8((int)round((float)v * (1.0 - fs)));
    const uint8_t uq = clip8((int)round((float)v * (1.0 - (float)(fs * f))));
    const uint8_t ut = clip8((int)round((float)v * (1.0 - fs * (1.0 - f))));
    switch (i % 6) {
    case 0: rgb[0] = v, rgb[1] = ut, rgb[2] = up; break;
    case 1: rgb[0] = uq, rgb[1] = v, rgb[2] = up; break;
    case 2: rgb[0] = up, rgb[1] = v, rgb[2] = ut; break;
    case 3: rgb[0] = up, rgb[1] = uq, rgb[2] = v; break;
    case 4: rgb[0] = ut, rgb[1] = up, rgb[2] = v; break;
    default: rgb[0] = v, rgb[1] = up, rgb[2] = uq; break;
    }
}

int augment_hue_shift(float f) {
    // np.int32(hue_factor * 255).astype(np.uint8): truncation toward zero, then mod 256
    return (int)(uint8_t)(int32_t)((double)f * 255.0);
}

void augment_cj_apply(uint8_t *out, const uint8_t *in, int h, int w, CjOp op, float f) {
    const size_t npix = (size_t)h * w, n = npix * 3;
    switch (op) {
    case CJ_BRIGHTNESS: enhance(out, in, npix, RA_BRIGHTNESS, f); return;
    case CJ_CONTRAST: enhance(out, in, npix, RA_CONTRAST, f); return;
    case CJ_SATURATION: enhance(out, in, npix, RA_COLOR, f); return;
    case CJ_HUE: {
        const int shift = augment_hue_shift(f);
        for (size_t i = 0; i < npix; i++) {
            uint8_t hsv[3];
            augment_rgb_to_hsv(hsv, in + i * 3);
            hsv[0] = (uint8_t)(hsv[0] + shift);
            augment_hsv_to_rgb(out + i * 3, hsv);
        }
        return;
    }
    default: memcpy(out, in, n); return;
    }
}

void augment_grayscale(uint8_t *img, int h, int w) {
    const size_t npix = (size_t)h * w;
    for (size_t i = 0; i < npix; i++) {
        uint8_t *p = img + i * 3;
        p[0] = p[1] = p[2] = luma(p);
    }
}

void seic_view_cfg_default(SeicViewCfg *c) {
    c->scale_lo = 0.5, c->scale_hi = 1.0;
    c->flip_p = 0.5;
    c->jitter_p = 0.8;
    c->brightness = c->contrast = c->saturation = 0.32;   // 0.8 * strength 0.4 (V4C)
    c->hue = 0.08;                                          // 0.2 * 0.4
    c->gray_p = 0.2;
}

// --- views -------------------------------------------------------------------------------

Rng augment_rng(uint64_t seed, uint64_t epoch, uint64_t index, int view) {
    // One stream per (epoch, index, view): mix the three into the stream id through
    // splitmix so nearby triples give unrelated streams.
    uint64_t x = epoch * 0x9E3779B97F4A7C15ull ^ (index << 1) ^ (uint64_t)view;
    uint64_t stream = rng_splitmix64(&x) ^ 0xA5A5A5A5u;
    Rng r;
    rng_init(&r, seed, stream);
    return r;
}

void augment_view_params(AugmentParams *p, int H, int W, int S, int strong, uint64_t seed,
                         uint64_t epoch, uint64_t index) {
    Rng r = augment_rng(seed, epoch, index, strong ? 1 : 0);
    memset(p, 0, sizeof *p);
    augment_rrc_params(&p->crop, &r, H, W, 0.08, 1.0, 3.0 / 4.0, 4.0 / 3.0);
    p->flip = (int)rng_below(&r, 2);
    p->n_ops = strong ? AUGMENT_MAX_OPS : 0;   // RandAugment N = 2, M = 10
    for (int k = 0; k < p->n_ops; k++) p->op[k] = ra_draw(&r, 10, S, S, &p->mag[k]);
}

void augment_seic_view_params(AugmentParams *p, int H, int W, int S, const SeicViewCfg *c,
                              uint64_t seed, uint64_t epoch, uint64_t index) {
    (void)S;
    Rng r = augment_rng(seed, epoch, index, 2);
    memset(p, 0, sizeof *p);
    augment_rrc_params(&p->crop, &r, H, W, c->scale_lo, c->scale_hi, 3.0 / 4.0, 4.0 / 3.0);
    p->flip = rng_uniform(&r) < c->flip_p;
    if (rng_uniform(&r) < c->jitter_p) {
        p->n_cj = CJ_NUM_OPS;
        for (int k = 0; k < CJ_NUM_OPS; k++) p->cj_op[k] = (CjOp)k;
        for (int k = CJ_NUM_OPS - 1; k > 0; k--) {   // randperm(4): Fisher–Yates
            int j = (int)rng_below(&r, (uint64_t)k + 1);
            CjOp t = p->cj_op[k];
            p->cj_op[k] = p->cj_op[j];
            p->cj_op[j] = t;
        }
        const double st[3] = {c->brightness, c->contrast, c->saturation};
        for (int k = 0; k < 3; k++) {   // uniform in [max(0, 1 - x), 1 + x], a float32 factor
            double lo = 1.0 - st[k] > 0.0 ? 1.0 - st[k] : 0.0, hi = 1.0 + st[k];
            p->cj_factor[k] = (float)(lo + (hi - lo) * rng_uniform(&r));
        }
        p->cj_factor[CJ_HUE] = (float)(-c->hue + 2.0 * c->hue * rng_uniform(&r));
    }
    p->gray = rng_uniform(&r) < c->gray_p;
}

void augment_apply(uint8_t *out, const uint8_t *img, int H, int W, int S, const AugmentParams *p) {
    augment_resized_crop(out, img, H, W, &p->crop, S, S);
    if (p->flip) augment_hflip(out, S, S);
    if (p->n_ops || p->n_cj) {
        uint8_t *tmp = mallocCheck((size_t)S * S * 3);
        for (int k = 0; k < p->n_ops; k++) {
            augment_ra_apply(tmp, out, S, S, p->op[k], p->mag[k]);
            memcpy(out, tmp, (size_t)S * S * 3);
        }
        for (int k = 0; k < p->n_cj; k++) {
            augment_cj_apply(tmp, out, S, S, p->cj_op[k], p->cj_factor[p->cj_op[k]]);
            memcpy(out, tmp, (size_t)S * S * 3);
        }
        free(tmp);
    }
    if (p->gray) augment_grayscale(out, S, S);
}

void augment_view(uint8_t *out, const uint8_t *img, int H, int W, int S, int strong, uint64_t seed,
                  uint64_t epoch, uint64_t index) {
    // The draws of augment_view_params (crop, flip, then the N ops) interleave with nothing
    // else, so drawing them all first and applying after gives the same view.
    AugmentParams p;
    augment_view_params(&p, H, W, S, strong, seed, epoch, index);
    augment_apply(out, img, H, W, S, &p);
}

void augment_seic_view(uint8_t *out, const uint8_t *img, int H, int W, int S,
                       const SeicViewCfg *c, uint64_t seed, uint64_t epoch, uint64_t index) {
    AugmentParams p;
    augment_seic_view_params(&p, H, W, S, c, seed, epoch, index);
    augment_apply(out, img, H, W, S, &p);
}
