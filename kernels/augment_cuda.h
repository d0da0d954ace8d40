/*
 * augment_cuda.h — training views (host/model/augment.h) made on the GPU, for a batch at a time.
 *
 * Named augment_cuda.h, not augment.h, so `#include "model/augment.h"` keeps meaning host/model/augment.h
 * everywhere (-Ihost -Ikernels).
 *
 * Promises:
 *   - The parameters of every view are drawn on the host by augment_view_params (the CPU
 *     code's RNG and draws), and every stage uses the CPU code's numbers (bicubic tap tables,
 *     16.16 affine coefficients, float32 blends in the same evaluation order, integer
 *     histograms/LUTs), so the uint8 views are bitwise the CPU's augment_view and the float
 *     pixels bitwise image_normalize's (tests/gpu/test_augment_gpu.c).
 *   - One kernel per stage on the whole batch: first resize pass, second resize pass, flip,
 *     then per round (RandAugment ops, then the SEIC view's ColorJitter adjustments and
 *     grayscale) a statistics kernel (histograms, luma mean, LUTs; one block per view) and an
 *     apply kernel; last, normalisation to (n,3,S,S) float. Any AugmentParams works: those of
 *     augment_view_params and of augment_seic_view_params alike.
 *   - Deterministic: integer reductions only (shared-memory atomics on integers give the same
 *     sums in any order); no float reduction.
 * Plain C types; built only with nvcc (LAIC_CUDA). Device buffers are cached between calls
 * (grow-only, not thread-safe: one caller at a time) and released by augment_cuda_release().
 */
#ifndef LAIC_AUGMENT_CUDA_H
#define LAIC_AUGMENT_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "model/augment.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Views j = 0..n-1 of host images imgs[j] (H[j],W[j],3) with parameters p[j] (from
 * augment_view_params for that image's size and this S), into device buffers:
 *   out    (n,3,S,S) float, CLIP-normalised as image_normalize (may be NULL)
 *   out_u8 (n,S,S,3) uint8, the view before normalisation (may be NULL; for tests)
 * Returns 0, or -1 with laic_error set (device out of memory, S too large for PIL's
 * fixed-point affine path). Synchronous with respect to the host. */
int augment_views_cuda(float *out, uint8_t *out_u8, const uint8_t *const *imgs, const int *H,
                       const int *W, const AugmentParams *p, int n, int S);

/* The trainer's batch: views j < b are weak and j >= b strong views of sample index[j % b],
 * image imgs[j % b] (H, W likewise), keyed by (seed, epoch, index) exactly as augment_view. */
int augment_batch_cuda(float *out, uint8_t *out_u8, const uint8_t *const *imgs, const int *H,
                       const int *W, const size_t *index, int b, int S, uint64_t seed,
                       uint64_t epoch);

/* SEIC stage 2's batch (the op seic_views_forward): views j < b are the eval views of images
 * imgs[j] (made on the host by image_resize_crop_rgb8 and passed through as copies), j >= b
 * the SEIC strong views of imgs[j - b] keyed by (seed, epoch, index[j - b]), as
 * augment_seic_view; out (2b,3,S,S) normalised. */
int augment_seic_batch_cuda(float *out, uint8_t *out_u8, const uint8_t *const *imgs, const int *H,
                            const int *W, const size_t *index, int b, int S, uint64_t seed,
                            uint64_t epoch, const SeicViewCfg *view);

/* Frees the cached device buffers. */
void augment_cuda_release(void);

#ifdef __cplusplus
}
#endif

#endif
