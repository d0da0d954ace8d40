/*
 * augment.h — CPU reference training augmentations (SPEC §3 "training views").
 *
 *   weak   = RandomResizedCrop(S, scale (0.08, 1), ratio (3/4, 4/3), bicubic) + horizontal
 *            flip (p = 0.5)
 *   strong = an independent weak view + RandAugment(N = 2, M = 10, 31 magnitude bins)
 *   SEIC strong (SPEC §9.3) = RandomResizedCrop(S, scale (0.5, 1), bicubic) + horizontal flip
 *            (p = 0.5) + ColorJitter(0.32, 0.32, 0.32, 0.08) with p = 0.8 + RandomGrayscale
 *            (p = 0.2); every number from a SeicViewCfg. [ours] bicubic, as SPEC §3's views:
 *            V4C's transforms.RandomResizedCrop uses torchvision's default, bilinear
 *
 * Promises:
 *   - Each op reproduces torchvision 0.29 on PIL images (Pillow 13): the bicubic resize of a
 *     crop, the 14 RandAugment ops, ColorJitter's four adjustments (brightness, contrast,
 *     saturation through ImageEnhance; hue through PIL's uint8 HSV round trip) and
 *     RandomGrayscale are pixel-exact for the magnitudes they are used with
 *     (tests/model/test_augment.c against scripts/make_train_fixtures.py goldens).
 *   - Randomness comes from host/rng.h, keyed by (seed, epoch, sample index, view), so any
 *     sample's views can be regenerated alone and in any order, on any thread. The random
 *     draws follow torchvision's algorithms (10 crop attempts then the centre fallback; op
 *     index, then a sign only for signed ops), not torch's generator, so views match torch
 *     in distribution, not draw for draw.
 * Images are 8-bit RGB, (h, w, 3) interleaved, row-major. Nothing here fails or prints.
 */
#ifndef LAIC_AUGMENT_H
#define LAIC_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"   // SeicViewCfg
#include "rng.h"

typedef struct {
    int top, left, h, w;
} CropBox;

/* torchvision RandomResizedCrop.get_params(img (H,W), scale, ratio). */
void augment_rrc_params(CropBox *b, Rng *r, int H, int W, double scale_lo, double scale_hi,
                        double ratio_lo, double ratio_hi);

/* PIL Image.resize((ow, oh), BICUBIC) of the crop box of in (H,W,3) -> out (oh,ow,3), as
 * torchvision's resized_crop (crop first, then resize). */
void augment_resized_crop(uint8_t *out /*(oh,ow,3)*/, const uint8_t *in /*(H,W,3)*/, int H, int W,
                          const CropBox *b, int oh, int ow);

/* Mirror left-right in place. */
void augment_hflip(uint8_t *img /*(h,w,3)*/, int h, int w);

typedef enum {
    RA_IDENTITY = 0,
    RA_SHEAR_X,
    RA_SHEAR_Y,
    RA_TRANSLATE_X,
    RA_TRANSLATE_Y,
    RA_ROTATE,
    RA_BRIGHTNESS,
    RA_COLOR,
    RA_CONTRAST,
    RA_SHARPNESS,
    RA_POSTERIZE,
    RA_SOLARIZE,
    RA_AUTOCONTRAST,
    RA_EQUALIZE,
    RA_NUM_OPS
} RaOp;   // torchvision's _augmentation_space order (the op index drawn is into this list)

const char *augment_ra_name(RaOp op);
/* Unsigned magnitude of op at level M of `bins` bins for an (h,w) image, as torchvision's
 * table (float32 linspace values); *is_signed says whether a random sign applies. */
double augment_ra_magnitude(RaOp op, int M, int bins, int h, int w, int *is_signed);
/* Applies one op with a signed magnitude: out (h,w,3) from in (h,w,3) (must not alias). */
void augment_ra_apply(uint8_t *out, const uint8_t *in, int h, int w, RaOp op, double magnitude);
/* RandAugment(N, M, bins 31) in place, with draws from r. */
void augment_randaugment(uint8_t *img /*(h,w,3)*/, int h, int w, int N, int M, Rng *r);

// --- ColorJitter and RandomGrayscale (SEIC's strong view) ------------------------------------

typedef enum {
    CJ_BRIGHTNESS = 0,   // ImageEnhance.Brightness: blend(black, img, f)
    CJ_CONTRAST,         // ImageEnhance.Contrast: blend(mean luma, img, f)
    CJ_SATURATION,       // ImageEnhance.Color: blend(luma, img, f)
    CJ_HUE,              // HSV (uint8) hue + int(f*255) mod 256, back to RGB
    CJ_NUM_OPS
} CjOp;   // torchvision ColorJitter's fn_idx numbering

/* One ColorJitter adjustment with factor f (the float32 value torchvision draws; hue f in
 * [-0.5, 0.5]): out (h,w,3) from in (h,w,3) (must not alias). */
void augment_cj_apply(uint8_t *out, const uint8_t *in, int h, int w, CjOp op, float f);
/* The hue shift adjust_hue adds to the uint8 hue channel: np.int32(f*255) mod 256. */
int augment_hue_shift(float f);
/* PIL's uint8 RGB -> HSV and HSV -> RGB of one pixel (Convert.c rgb2hsv / hsv2rgb). */
void augment_rgb_to_hsv(uint8_t hsv[3], const uint8_t rgb[3]);
void augment_hsv_to_rgb(uint8_t rgb[3], const uint8_t hsv[3]);
/* rgb_to_grayscale(num_output_channels=3) in place: every channel = PIL luma (L mode). */
void augment_grayscale(uint8_t *img /*(h,w,3)*/, int h, int w);

/* SeicViewCfg (the SEIC strong view's settings) is declared in ops.h, beside the op that makes
 * the views; V4C's defaults: */
void seic_view_cfg_default(SeicViewCfg *c);

/* The generator for one view: view 0 = weak, 1 = strong, 2 = SEIC strong. */
Rng augment_rng(uint64_t seed, uint64_t epoch, uint64_t index, int view);
/* One training view of img (H,W,3) into out (S,S,3): strong = 0 weak, 1 strong. */
void augment_view(uint8_t *out /*(S,S,3)*/, const uint8_t *img, int H, int W, int S, int strong,
                  uint64_t seed, uint64_t epoch, uint64_t index);

/* --- the same views on another backend (kernels/augment.cu) ------------------------------
 * augment_view is exactly: augment_view_params, augment_resized_crop(p.crop) to (S,S),
 * augment_hflip when p.flip, then augment_ra_apply(p.op[k], p.mag[k]) for k < p.n_ops in
 * order. The helpers below expose the fixed-point tables those steps use, so a GPU version can
 * reproduce them bit for bit from the same numbers. */
#define AUGMENT_MAX_OPS 2   // RandAugment N of the strong view
typedef struct {
    CropBox crop;
    int flip;                        // 1 = mirror after the resize
    int n_ops;                       // 0 (weak) or AUGMENT_MAX_OPS (strong)
    RaOp op[AUGMENT_MAX_OPS];
    double mag[AUGMENT_MAX_OPS];     // signed magnitude, as augment_ra_apply takes it
    // SEIC strong view only (all 0 otherwise): after the RandAugment rounds, the ColorJitter
    // adjustments cj_op[0..n_cj) in that order (torch.randperm(4)), then the grayscale.
    int n_cj;                        // 0 or CJ_NUM_OPS
    CjOp cj_op[CJ_NUM_OPS];
    float cj_factor[CJ_NUM_OPS];     // indexed by CjOp (not by position)
    int gray;                        // 1 = RandomGrayscale fired
} AugmentParams;
void augment_view_params(AugmentParams *p, int H, int W, int S, int strong, uint64_t seed,
                         uint64_t epoch, uint64_t index);
/* The SEIC strong view's draws, in torchvision's order: crop, flip (u < flip_p), whether the
 * jitter applies (u < jitter_p), then randperm(4) and the four factors only when it does,
 * then the grayscale (u < gray_p). Stream: augment_rng(seed, epoch, index, 2). */
void augment_seic_view_params(AugmentParams *p, int H, int W, int S, const SeicViewCfg *c,
                              uint64_t seed, uint64_t epoch, uint64_t index);
/* Applies p to img (H,W,3) -> out (S,S,3): crop + resize, flip, RandAugment rounds, jitter
 * adjustments, grayscale. augment_view = augment_view_params + this. */
void augment_apply(uint8_t *out, const uint8_t *img, int H, int W, int S, const AugmentParams *p);
/* The SEIC strong view of img into out (S,S,3). */
void augment_seic_view(uint8_t *out, const uint8_t *img, int H, int W, int S,
                       const SeicViewCfg *c, uint64_t seed, uint64_t epoch, uint64_t index);

/* PIL's bicubic taps for resampling n_in samples to n_out: output o reads inputs first[o] ..
 * first[o]+count[o]-1 with int32 weights k[o*ksize + j] (AUGMENT_BICUBIC_PREC fraction bits;
 * sum = 1 << (PREC-1) + Σ in·k, then <0 → 0, else >> PREC clamped to 255). Returns ksize; the
 * three arrays are malloc'd (free() each). */
#define AUGMENT_BICUBIC_PREC 22
int augment_bicubic_taps(int n_in, int n_out, int **first, int **count, int32_t **k);
/* 1 when a (h,w) -> (oh,ow) resize with both passes runs the vertical one first (Pillow 13). */
int augment_resize_vertical_first(int h, int w, int oh, int ow);

/* The geometric ops (ShearX/Y, TranslateX/Y, Rotate) in PIL's 16.16 fixed point: output pixel
 * (x, y) copies input pixel (floor((f[2] + x f[0] + y f[1]) / 65536), floor((f[5] + x f[3] +
 * y f[4]) / 65536)), black when outside. Returns 1 for those ops, 0 for the others, -1 when
 * PIL would use its double-precision path instead (coordinates beyond ±32768: images over
 * 32k pixels wide or high). */
int augment_ra_affine_fixed(int64_t f[6], RaOp op, double mag, int h, int w);

#endif
