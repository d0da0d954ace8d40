/*
 * train.h — the pieces of prompt learning (SPEC §7) that do not touch the text encoder:
 * the loss on features with its gradient w.r.t. the class text features, SGD exactly as
 * torch.optim.SGD, CoOp's constant-warm-up + cosine learning-rate schedule, class-vector
 * initialisation, and the checkpoint file.
 *
 * Dimension legend: B batch, K classes, E feature width (512), M context vectors per class
 * (n_ctx), D token-embedding width.
 *
 * Promises:
 *   - train_loss() equals, in value and gradient, the PyTorch autograd reference in
 *     scripts/make_train_fixtures.py (float64 reference; we accumulate in double).
 *   - sgd_step() is torch.optim.SGD(lr, momentum, weight_decay, dampening=0, nesterov=False)
 *     on float32 tensors; train_lr() is CoOp's ConstantWarmupScheduler(CosineAnnealingLR)
 *     stepped once per epoch, with torch's recursive (chainable) cosine formula.
 *   - Checkpoints are written atomically and read back bit for bit; unknown magic, version or
 *     sizes, and corrupted bytes (a checksum) are rejected with a one-line error naming the file.
 * Library code: errors return -1 after laic_error(); nothing prints.
 */
#ifndef LAIC_TRAIN_H
#define LAIC_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "rng.h"

// --- loss ------------------------------------------------------------------------------

/* Which terms are on (train.loss=gce,mse,entropy), and their constants (SPEC §7). */
typedef struct {
    int use_gce, use_mse, use_entropy;
    double q;        // GCE exponent, 0.7
    double alpha;    // weight of the MSE consistency term, 1
    double beta;     // weight of the global entropy term, 1
    double scale;    // logit scale (CLIP's 100)
} LossConfig;

/* SPEC §7 defaults: all terms on, q 0.7, alpha = beta = 1, scale 100. */
void loss_config_default(LossConfig *c);
/* Parses "gce,mse,entropy" (any non-empty subset, any order) into c->use_*. */
int loss_config_parse_terms(LossConfig *c, const char *terms);

typedef struct {
    double total;     // L = [gce] L_s + [mse] alpha L_c - [entropy] beta H
    // Each term is computed even when switched off (it then gets no gradient):
    double gce;       // L_s (0 when no high-quality sample)
    double mse;       // L_c (0 when no unlabeled sample), before alpha
    double entropy;   // H(p_bar), before beta
    int n_hq, n_u;    // samples in D_h and D_u
} LossValue;

/* Loss of one batch on L2-normalised features and its gradient w.r.t. W.
 *   fw, fs (B,E)  weak / strong view image features (normalised; not differentiated)
 *   W      (K,E)  normalised class text features
 *   yhat   (B)    pseudo-labels in [0,K) (read only for high-quality samples)
 *   hq     (B)    1 = sample in D_h, 0 = in D_u
 *   dW     (K,E)  dL/dW is ADDED here (+=, STYLE), may be NULL for value only
 * Errors: a pseudo-label out of range. */
int train_loss(LossValue *val, float *dW, const float *fw, const float *fs, const float *W,
               const int32_t *yhat, const uint8_t *hq, int B, int K, int E,
               const LossConfig *cfg);

/* Backward of w = u / ||u|| per row: du += (dw - w (w·dw)) / ||u||.
 *   du (K,E) +=, dw (K,E), u (K,E) the unnormalised rows. */
void l2norm_rows_backward(float *du, const float *dw, const float *u, int K, int E);

// --- optimiser and schedule ------------------------------------------------------------

typedef struct {
    double lr;             // base learning rate, 0.002
    double momentum;       // 0.9
    double weight_decay;   // 5e-4
    int max_epoch;         // cosine length T_max, 20
    int warmup_epoch;      // constant warm-up epochs, 1
    double warmup_lr;      // 1e-5
} SgdConfig;

void sgd_config_default(SgdConfig *c);

/* Learning rate used during epoch `epoch` (0-based), as torch's scheduler after `epoch`
 * calls of scheduler.step(). */
double train_lr(const SgdConfig *c, int epoch);

/* One torch.optim.SGD step on n parameters, in place:
 *   d = g + wd p;  buf = have_buf ? momentum buf + d : d;  p -= lr buf.
 * *have_buf is set to 1 (torch creates the buffer at the first step). */
void sgd_step(float *p, float *buf, int *have_buf, const float *g, size_t n, double lr,
              double momentum, double weight_decay);

/* Class vectors v (K, M, D) ~ N(0, 0.02^2), from (seed) alone; the same for every run. */
void train_init_vectors(float *v /*(K,M,D)*/, size_t n, uint64_t seed);

// --- checkpoint ------------------------------------------------------------------------

#define CKPT_MAGIC 20250907
#define CKPT_VERSION 2       // 2: hyper-parameters and a checksum (1 had neither: refused)
#define CKPT_MAX_RNG 16
#define CKPT_MAX_HPARAMS (1 << 20)   // bytes of hyper-parameter text

/* Training state saved at the end of each epoch. vec and mom are (K, M, D) float32; mom is
 * meaningful only when have_mom. rng holds n_rng generator states (e.g. the shuffle stream). */
typedef struct {
    int K, M, D;
    int epoch;           // epochs completed
    int64_t step;        // optimiser steps taken
    uint64_t seed;
    int have_mom;
    float *vec;          // (K, M, D)
    float *mom;          // (K, M, D)
    int n_rng;
    Rng rng[CKPT_MAX_RNG];
    char *hparams;       // malloc'd "key = value\n" lines: every setting that changes the result
                         // (host/train/trainer.c builds them; a resume must match), or NULL
    char *path;          // the file it was loaded from (ckpt_load; for messages), or NULL
} TrainState;

/* Allocates vec and mom (zeroed) for K, M, D. */
void train_state_alloc(TrainState *s, int K, int M, int D);
void train_state_free(TrainState *s);

/* Layout (version 2): int32 header[256] = {magic, version, K, M, D, epoch, step lo, step hi,
 * seed lo, seed hi, have_mom, n_rng, hparams bytes, checksum lo, checksum hi, 0...}, then float32
 * vec (K*M*D), float32 mom (K*M*D), uint64 rng[n_rng][4], then the hyper-parameter text, all
 * little-endian. The checksum is io/hash.h's 64-bit hash chained over the header (checksum words
 * zero) and every part after it. Written atomically (and fsynced). */
int ckpt_save(const char *path, const TrainState *s);
/* Reads a checkpoint into s (allocated here; free with train_state_free). Rejects, naming the
 * file: a bad magic, an unknown version, a header value out of range, a size that does not match
 * the header (computed without overflow, before anything is allocated), a checksum mismatch. */
int ckpt_load(const char *path, TrainState *s);

// --- the settings a checkpoint records (the prompt trainer's and SEIC's) ----------------------

/* "key = value\n" lines, grown on the heap: p is NULL until the first line, then NUL-terminated
 * (the caller frees it). */
typedef struct {
    char *p;
    size_t n, cap;
} HparamsText;

/* Appends "key = value\n", the value printf-formatted (cut at 511 bytes); a control byte or a
 * backslash in it is written as \xNN, so each setting stays one line. */
void hparams_add(HparamsText *t, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A resume is refused unless every setting of this run (now) stands with the same value in the
 * checkpoint's (saved); the first that is missing or differs is named with both values:
 * "<file>: resume refused: <key> = <old> in the checkpoint, <new> in this run ---> HINT: <hint>".
 * saved NULL or empty is refused too. */
int hparams_check(const char *file, const char *saved, const char *now, const char *hint);

#endif
