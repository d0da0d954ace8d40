/*
 * train_ops.c — the prompt-learning entries of ops_cpu (host/ops.h): thin wrappers that give
 * the references of host/train/train.c (loss, SGD) and host/model/augment.c (views) the op table's shape,
 * so the trainer runs one step code on every backend; and SEIC stage 2's views (the eval view
 * of host/model/image.c beside the SEIC strong view). Semantics in host/ops.h.
 */
#include <stdlib.h>
#include <string.h>

#include "model/augment.h"
#include "cpu/cpu_ops.h"
#include "model/image.h"
#include "io/err.h"
#include "train/train.h"

void strided_copy_cpu(float *dst, size_t dst_stride, const float *src, size_t src_stride,
                      int rows, size_t row_len) {
    for (int r = 0; r < rows; r++)
        memcpy(dst + (size_t)r * dst_stride, src + (size_t)r * src_stride,
               row_len * sizeof *dst);
}

int train_views_forward_cpu(float *pixels, const uint8_t *const *imgs, const int *H,
                            const int *W, const size_t *index, int b, int S, uint64_t seed,
                            uint64_t epoch) {
    const size_t plane = (size_t)3 * S * S;
    int bad = 0;
#pragma omp parallel for schedule(dynamic)
    for (int j = 0; j < 2 * b; j++) {
        const int i = j % b;   // rows 0..b-1 weak, b..2b-1 strong, of the same samples
        uint8_t *crop = malloc((size_t)S * S * 3);
        if (!crop) {
#pragma omp atomic write
            bad = 1;
            continue;
        }
        augment_view(crop, imgs[i], H[i], W[i], S, j >= b, seed, epoch, (uint64_t)index[i]);
        image_normalize(pixels + (size_t)j * plane, crop, S);
        free(crop);
    }
    if (bad) return laic_error("train: out of memory making the views of %d samples", b);
    return 0;
}

int seic_views_forward_cpu(float *pixels, const uint8_t *const *imgs, const int *H, const int *W,
                           const size_t *index, int b, int S, uint64_t seed, uint64_t epoch,
                           const SeicViewCfg *view) {
    const size_t plane = (size_t)3 * S * S;
    int bad = 0;
#pragma omp parallel for schedule(dynamic)
    for (int j = 0; j < 2 * b; j++) {
        const int i = j % b;   // rows 0..b-1 the eval view, b..2b-1 the strong view
        uint8_t *crop = malloc((size_t)S * S * 3);
        if (!crop) {
#pragma omp atomic write
            bad = 1;
            continue;
        }
        if (j < b) image_resize_crop_rgb8(crop, imgs[i], H[i], W[i], S);
        else augment_seic_view(crop, imgs[i], H[i], W[i], S, view, seed, epoch, (uint64_t)index[i]);
        image_normalize(pixels + (size_t)j * plane, crop, S);
        free(crop);
    }
    if (bad) return laic_error("seic: out of memory making the views of %d samples", b);
    return 0;
}

void prompt_loss_forward_backward_cpu(double *terms, float *dW, const float *F, const float *W,
                                      const int32_t *yhat, const uint8_t *hq, int b, int K,
                                      int E, int mask, double q, double alpha, double beta,
                                      double scale) {
    LossConfig cfg = {.use_gce = mask & 1, .use_mse = (mask >> 1) & 1,
                      .use_entropy = (mask >> 2) & 1, .q = q, .alpha = alpha, .beta = beta,
                      .scale = scale};
    LossValue v;
    memset(dW, 0, (size_t)K * E * sizeof *dW);   // train_loss accumulates; the op overwrites
    // The labels were range-checked by the trainer, so train_loss cannot fail here.
    (void)train_loss(&v, dW, F, F + (size_t)b * E, W, yhat, hq, b, K, E, &cfg);
    terms[0] = v.total;
    terms[1] = v.gce;
    terms[2] = v.mse;
    terms[3] = v.entropy;
    terms[4] = v.n_hq;
    terms[5] = v.n_u;
}

void sgd_forward_cpu(float *p, float *buf, const float *g, const double *lr, size_t n,
                     double momentum, double weight_decay, int have_buf) {
    sgd_step(p, buf, &have_buf, g, n, *lr, momentum, weight_decay);
}
