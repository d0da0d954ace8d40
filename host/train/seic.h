/*
 * seic.h — SEIC training (SPEC §9.3; design of V4C, hyw1008/VLM4Cluster@4f6cd92): the stage-1
 * heads trained on (image, text) feature pairs with the four alignment losses, and the state
 * and checkpoint both stages share. Stage 0 (the pairs) is host/run/methods/seic.c's; stage 2
 * (self-enhancement through the LoRA ViT) builds on the state here.
 *
 * Heads (separate per modality m ∈ {I, T}): z = normalize(Linear(E,E)(x)), logits =
 * Linear(E,K)(z), p = softmax(logits); a learnable log-scale log s for L_ins. All parameters
 * live in one float vector (one allocation, fixed carve order = the checkpoint's order):
 *
 *   [Wp_I (E,E) | bp_I (E) | Wc_I (K,E) | bc_I (K) | Wp_T | bp_T | Wc_T | bc_T | log s (1)]
 *
 * so the image heads (what stage 2 trains) are the leading block [0, n_img), and one
 * adam_forward over the whole vector is torch.optim.Adam over the nine tensors.
 *
 * Stage-1 step (ops of host/ops.h only; batch b ≤ B of rows gathered on the host):
 *   u = x Wpᵀ + bp, z = l2norm(u), l = z Wcᵀ + bc                      (per modality)
 *   terms, dz, dl, dlog s, hist ← seic_align_loss_forward_backward(z_I, z_T, l_I, l_T, log s)
 *   dWc += dlᵀ z, dbc; dz += dl Wc; du = l2norm_backward(dz); dWp += duᵀ x, dbp
 *   Adam(lr, betas (0.9, 0.999), eps 1e-8, weight decay as coupled L2)
 * Epochs shuffle with a seeded stream kept in the state; the last batch is dropped only when
 * it would hold one row (V4C's rule, with the batch clipped to N).
 *
 * Promises:
 *   - One step equals the PyTorch reference of scripts/make_seic_fixtures.py (terms, every
 *     head and log-scale gradient, the updated histogram, the parameters after one Adam
 *     step; tests/train/test_seic.c).
 *   - Deterministic on a backend, and resumable: a run stopped after any epoch and resumed
 *     from its checkpoint ends bit for bit where the uninterrupted run ends.
 * Library code: errors return -1 after laic_error(); progress lines go to the log callback.
 *
 * Letters: N rows, b batch, B largest batch, K clusters, E feature width, n parameters.
 */
#ifndef LAIC_SEIC_H
#define LAIC_SEIC_H

#include <stddef.h>
#include <stdint.h>

#include "model/clip.h"
#include "ops.h"
#include "rng.h"

// --- parameters ------------------------------------------------------------------------------

enum { SEIC_WP_I = 0, SEIC_BP_I, SEIC_WC_I, SEIC_BC_I, SEIC_WP_T, SEIC_BP_T, SEIC_WC_T,
       SEIC_BC_T, SEIC_LOGS, SEIC_NTENSORS };

typedef struct {
    int K, E;
    size_t off[SEIC_NTENSORS + 1];   // float offsets; off[SEIC_NTENSORS] = n
    size_t n;                        // all parameters
    size_t n_img;                    // the image heads: [0, n_img) = off[SEIC_WP_T]
} SeicLayout;
void seic_layout(SeicLayout *L, int K, int E);

/* V4C's initialisation: weights trunc_normal(std 0.02, cut at ±2 as torch's absolute a, b),
 * biases 0, log s = log(1/tau_ins) in float. From (seed) alone. */
void seic_heads_init(float *p, const SeicLayout *L, double tau_ins, uint64_t seed);

// --- state and checkpoint ----------------------------------------------------------------------

#define SEIC_CKPT_MAGIC 20251203
#define SEIC_CKPT_VERSION 2          // 2: the settings text and a checksum (as train.h's v2)
#define SEIC_CKPT_MAX_HPARAMS (1 << 20)

/* Everything a stage needs to continue. Stage 1 uses p, m, v, hist, rng; stage 2 also the
 * confidence EMA and the adapter tensors (n_extra floats: adapter parameters and both AdamW
 * moments, laid out by stage 2), and reuses m, v (zeroed at its start) for the image heads. */
typedef struct {
    int stage;               // 1 or 2
    int K, E;
    int epoch;               // epochs of this stage completed
    int64_t step;            // optimiser steps of this stage
    uint64_t seed;
    char *hparams;           // malloc'd "key = value\n" lines: every setting that changes the
                             // result (the stage's trainer builds them; a resume must match)
    char *path;              // the file it was loaded from (seic_ckpt_load; messages), or NULL
    float *p, *m, *v;        // (n) parameters, optimiser moments
    float *hist;             // (K) balance histogram
    Rng rng;                 // the shuffle stream
    double conf[3];          // stage 2: confidence EMA {mean, var, initialised}
    size_t n_extra;
    float *extra;            // (n_extra) stage 2's adapter state
} SeicState;

/* Allocates p, m, v (n of L), hist (K, uniform), extra (n_extra), zeroed. */
void seic_state_alloc(SeicState *s, const SeicLayout *L, size_t n_extra);
void seic_state_free(SeicState *s);
/* Deep copy (dst allocated here). */
void seic_state_copy(SeicState *dst, const SeicState *src);
/* int32 header[256] = {magic, version, stage, K, E, epoch, step lo, hi, seed lo, hi, n_extra lo,
 * hi, hparams bytes, checksum lo, hi, 0...}; then float p, m, v (n each), hist (K), uint64
 * rng[4], double conf[3], float extra (n_extra), the settings text; little-endian, written
 * atomically. The checksum is io/hash.h's 64-bit hash chained over the header (checksum words
 * zero) and every part after it. */
int seic_ckpt_save(const char *path, const SeicState *s);
/* Reads a checkpoint (s allocated here). Rejects, naming the file: a bad magic, an unknown
 * version, a header value out of range, a size that does not match the header (computed without
 * overflow, before anything is allocated), a checksum mismatch, a non-finite parameter. */
int seic_ckpt_load(const char *path, SeicState *s);
/* 0 when every "key = value" line of now is in s->hparams with the same value; else -1 with
 * "<file>: resume refused: <key> = <old> in the checkpoint, <new> in this run". */
int seic_check_hparams(const SeicState *s, const char *now);

// --- stage 1 -------------------------------------------------------------------------------------

typedef struct {
    int epochs;              // 200
    int batch;               // 1024 (clipped to N)
    double lr;               // Adam 5e-3
    double weight_decay;     // 0 (coupled, torch.optim.Adam)
    double tau_ins;          // initial instance temperature 0.07 (log s = log(1/0.07))
    SeicLossCfg loss;
    uint64_t seed;
    const char *ckpt_path;   // written atomically after every epoch (NULL = none)
    const SeicState *resume; // continue from this stage-1 state (NULL = fresh start)
    const SeicState *init;   // fresh start from these parameters and histogram (tests; NULL = init)
    int stop_after;          // stop once this many epochs are complete (0 = run all)
    void (*log)(void *ctx, const char *line);
    void *log_ctx;
} SeicS1Opts;

/* SPEC §9.3 defaults (V4C). */
void seic_s1_opts_default(SeicS1Opts *o);
void seic_loss_cfg_default(SeicLossCfg *c);

typedef struct {
    SeicState st;            // final state
    int first_epoch;         // > 0 when resumed
    int stopped;             // 1 when stop_after ended training early
    double *epoch_terms;     // (epochs, 5) mean {total, ins, ass, ctr, bal} per epoch; NaN if not run here
    double seconds;
} SeicS1Result;

/* Trains the heads on pairs (X_i, T_i), X, T (N,E) L2-normalised host arrays. */
int seic_s1_run(SeicS1Result *res, const OpsBackend *ops, const float *X, const float *T,
                size_t N, int K, int E, const SeicS1Opts *o);
void seic_s1_result_free(SeicS1Result *r);

/* The step's working set on a backend, for the trainer and for tests. */
typedef struct SeicS1Step SeicS1Step;
SeicS1Step *seic_s1_step_create(const OpsBackend *ops, int K, int E, int B);
void seic_s1_step_free(SeicS1Step *s);
/* Uploads p, m, v, hist of st (n, K of the step's layout). */
void seic_s1_step_load(SeicS1Step *s, const SeicState *st);
/* Downloads p, m, v, hist into st. */
void seic_s1_step_save(SeicS1Step *s, SeicState *st);
/* One step on rows x, t (b,E) host arrays, b ≤ B: the loss and gradients, then the optimiser
 * step t_adam (≥ 1). terms (5) host; grads (n) host = the gradients the optimiser used (NULL =
 * not copied back). */
int seic_s1_step_run(SeicS1Step *s, const float *x, const float *t, int b, const SeicLossCfg *cfg,
                     double lr, double weight_decay, long t_adam, double terms[5], float *grads);

// --- stage 2: self-enhancement ------------------------------------------------------------------
/*
 * The image tower gets LoRA (r, α) on q and v of every visual block (host/train/vit.h; V4C's
 * lora.py); with the image heads it trains on each sample's two views (op seic_views_forward:
 * weak = the eval transform, strong = crop 0.5–1 + flip + ColorJitter + grayscale):
 *   weak    f = normalize(encode_image(weak)), l_w = heads_I(f)              (no gradient)
 *   strong  the same, recorded for the backward: l_s
 *   loss    seic_self_loss_forward_backward: ŷ = argmax softmax(l_w), the confidence EMA,
 *           w_i = 1 above its mean, Gaussian below; L2 = mean w_i CE(l_s, ŷ_i)
 *   back    heads: dWc, dbc, dWp, dbp (+=); df → l2norm backward → clip_image_backward_dev
 *           (LoRA gradients +=)
 *   update  AdamW (decoupled) on the LoRA arena (vit_trainer_step) and on the image heads
 *           (adam_forward), the same lr, betas, eps, weight decay and step count: together
 *           torch.optim.AdamW over V4C's one parameter group.
 * Frozen: the base ViT (visual.proj included, as V4C's LoRA injection freezes every visual
 * parameter; train_visual_proj = 1 trains it too), the text heads, log s, the histogram.
 * Pseudo-labels are online (the current model's weak view), so the first epoch starts from the
 * stage-1 heads (LoRA U = 0 leaves the encoder unchanged at the start).
 */
typedef int (*SeicImageFn)(void *ctx, size_t i, uint8_t **rgb, int *h, int *w);

typedef struct {
    int epochs;              // 40
    int batch;               // 128 (clipped to N; the last batch is kept, V4C's drop_last=False)
    double lr;               // AdamW 5e-5
    double weight_decay;     // 0 (decoupled)
    int lora_rank;           // 128
    double lora_alpha;       // 128
    int full_last_k;         // > 0: instead of LoRA, blocks >= full_last_k + ln_post + proj train
                             // in full (SPEC §9.3's [ours] alternative), at encoder_lr
    double encoder_lr;       // full_last_k's AdamW rate (1e-5); the heads keep lr
    int train_visual_proj;   // 0 (V4C); 1: visual.proj trains too [ours]
    double conf_momentum;    // 0.999
    SeicViewCfg view;        // seic_view_cfg_default
    const char *precision;   // the image tower's matmuls: "fp32" (default), "tf32", "bf16"
    int recompute;           // recompute each block in the backward (memory; same numbers)
    uint64_t seed;
    const char *ckpt_path;   // written atomically after every epoch (NULL = none)
    const SeicState *resume; // a stage-2 state to continue from (NULL = start from stage 1)
    int stop_after;          // stop once this many stage-2 epochs are complete (0 = run all)
    void (*log)(void *ctx, const char *line);
    void *log_ctx;
} SeicS2Opts;

void seic_s2_opts_default(SeicS2Opts *o);

typedef struct {
    SeicState st;            // stage 2's state: heads (image block trained), AdamW moments of the
                             // image block, confidence EMA, extra = LoRA [params | m | v]
    int first_epoch, stopped;
    double *epoch_loss;      // (epochs) mean L2 per epoch trained here, NaN otherwise
    double *epoch_conf;      // (epochs) mean weak-view confidence
    double *epoch_weight;    // (epochs) mean confidence weight w
    double seconds;
    size_t images_seen;
    int64_t *pred;           // (Ne) eval predictions (when the eval images were given)
} SeicS2Result;

typedef struct {
    SeicImageFn get;         // RGB8 image of sample i, malloc'd (freed by the trainer)
    void *ctx;
    size_t n;
} SeicImages;

/* Stage 2 from the stage-1 state s1 (stage 1, K and E of the run) on the fit images, then
 * predictions for the eval images (eval.get may be NULL: no predictions). */
int seic_s2_run(SeicS2Result *res, const ClipWeights *w, const OpsBackend *ops,
                const SeicImages *fit, const SeicImages *eval, const SeicState *s1,
                const SeicS2Opts *o);
void seic_s2_result_free(SeicS2Result *r);

/* The stage-2 step's working set, for the trainer and tests: the LoRA model (a VitTrainer) and
 * the image heads on the backend. */
typedef struct SeicS2Step SeicS2Step;
SeicS2Step *seic_s2_step_create(const ClipWeights *w, const OpsBackend *ops, int K, int B,
                                const SeicS2Opts *o);
void seic_s2_step_free(SeicS2Step *s);
/* Floats of LoRA state (params, m, v) in SeicState.extra: 3 × the trainable arena. */
size_t seic_s2_extra_floats(const SeicS2Step *s);
/* Uploads the image heads (p, m, v's leading n_img floats), the confidence EMA and, when
 * st->n_extra matches, the LoRA state and step count (else the LoRA keeps its init, step 0). */
int seic_s2_step_load(SeicS2Step *s, const SeicState *st);
/* Downloads the same into st (st->extra sized by seic_s2_extra_floats). */
int seic_s2_step_save(SeicS2Step *s, SeicState *st);
/* One step on pixels (2b,3,S,S) host or NULL (already in the step's arena, e.g. by
 * seic_s2_step_views): loss (host), and for tests w, yhat (b) host and the gradients before the
 * update: g_heads (n_img) and g_lora (the LoRA arena) host, each NULL to skip. */
int seic_s2_step_run(SeicS2Step *s, const float *pixels, int b, double *loss, float *w,
                     int32_t *yhat, float *g_heads, float *g_lora);
/* The views of b images into the step's arena (op seic_views_forward). */
int seic_s2_step_views(SeicS2Step *s, const uint8_t *const *imgs, const int *H, const int *W,
                       const size_t *index, int b, uint64_t epoch);
/* Image-head logits (b,K) host of pixels (b,3,S,S) host through the LoRA model (no gradient). */
int seic_s2_step_logits(SeicS2Step *s, const float *pixels, int b, float *logits);

/* pred (Ne) = argmax of the image cluster logits Linear(normalize(Linear(x))) for X (Ne,E)
 * (ties to the lowest cluster), on the backend, in chunks. p: the parameter vector of L. */
int seic_predict_features(int64_t *pred, const OpsBackend *ops, const float *p,
                          const SeicLayout *L, const float *X, size_t Ne);

#endif
