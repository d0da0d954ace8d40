/*
 * vit.h — training the CLIP image encoder (issue 16): a vision-training ClipModel
 * (host/model/clip.h: LoRA / full_last_k / all, forward + backward with weight gradients) plus
 * AdamW with decoupled weight decay on its fp32 master weights, optional global-norm gradient
 * clipping, and the memory plan checked before anything is allocated. SEIC stage 2
 * (host/run/methods/) is its first user; it is a library, like trainer.h.
 *
 * A step, all on backend pointers (nothing synchronises; the ops could be captured):
 *     ClipModel *m = vit_trainer_model(t);
 *     clip_encode_images_dev(m, pixels, B, feat);      // records what the backward needs
 *     ... loss and dfeat = ∂L/∂feat (B,E), e.g. through the caller's heads ...
 *     clip_image_backward_dev(m, dfeat, NULL);          // gradients += (after a zero_grad)
 *     vit_trainer_step(t);                               // [clip,] AdamW, zero the gradients
 * Joint clipping with the caller's own parameters (torch's clip_grad_norm_ over several groups)
 * composes from the ops: sumsq_forward over every group into one double, then grad_clip_forward
 * on each (vit_trainer_grads gives this trainer's arena); set clip_norm 0 here then.
 *
 * Promises:
 * - AdamW is torch.optim.AdamW's single-tensor arithmetic (host/ops.h adam_forward, decoupled),
 *   one parameter group over every trainable tensor (LoRA, blocks, ln_post, proj alike); the
 *   state (m, v, step) starts at zero and is exported / imported bit for bit (checkpoints).
 * - Clipping is torch.nn.utils.clip_grad_norm_(params, clip_norm) (norm type 2, eps 1e-6).
 * - The memory plan (clip_vision_train_plan + AdamW's 2 floats per trainable parameter) is
 *   logged part by part before any allocation; when it exceeds the limit (opts.mem_limit, or on
 *   CUDA the free device memory less CLIP_DEVICE_RESERVE) creation fails with one line naming
 *   the batch that fits (and recompute, when it is off and would make the batch fit).
 * Errors: -1 / NULL after laic_error().
 */
#ifndef LAIC_VIT_H
#define LAIC_VIT_H

#include <stddef.h>
#include <stdint.h>

#include "model/clip.h"

typedef struct {
    ClipVisionTrainSpec spec;   // which parameters train (clip_spec_lora / _full_last_k / _all)
    double lr;                  // AdamW learning rate (SEIC: 5e-5 LoRA, 1e-5 full_last_k)
    double beta1, beta2, eps;   // (0.9, 0.999), 1e-8: torch's defaults
    double weight_decay;        // decoupled (AdamW); SEIC uses 0
    double clip_norm;           // > 0: clip the global gradient norm to this before each step
    const char *precision;      // "fp32" (default), "tf32" or "bf16" (CUDA; the CPU is fp32)
    size_t mem_limit;           // bytes the plan must fit in; 0 = the device's free memory on
                                // CUDA (less CLIP_DEVICE_RESERVE), no limit on the CPU
    uint64_t seed;              // LoRA D init
    void (*log)(void *ctx, const char *line);   // the memory plan, one line per call (NULL: none)
    void *log_ctx;
} VitTrainOpts;

/* SPEC §9.3 stage 2 defaults: LoRA r = α = 128 on q and v, AdamW lr 5e-5, betas (0.9, 0.999),
 * eps 1e-8, wd 0, no clipping, fp32, no recompute, no memory limit, seed 0. */
void vit_train_opts_default(VitTrainOpts *o);

typedef struct VitTrainer VitTrainer;

/* Plans (and logs the plan), then creates the model and the optimiser state for batches up to
 * max_batch. NULL with an error: bad options, the plan over the limit ("vit: batch 256 needs
 * 14.2 GiB ... ---> HINT: use batch 212 or less"), or an allocation failure. */
VitTrainer *vit_trainer_create(const ClipWeights *w, const OpsBackend *ops, int max_batch,
                               const VitTrainOpts *o);
void vit_trainer_free(VitTrainer *t);
/* The model to run forward / backward on (owned by the trainer). */
ClipModel *vit_trainer_model(VitTrainer *t);
/* The plan the trainer was created with. */
const ClipTrainPlan *vit_trainer_plan(const VitTrainer *t);
/* The gradient arena (backend memory, clip_trainable_numel floats), for joint clipping. */
float *vit_trainer_grads(VitTrainer *t);

/* One optimiser step on the accumulated gradients: [clip to opts.clip_norm,] AdamW at the
 * current learning rate, then zero the gradients. Only enqueues ops after one small host →
 * backend copy of the step's scalars. */
int vit_trainer_step(VitTrainer *t);
/* The learning rate of the following steps (schedules). */
void vit_trainer_set_lr(VitTrainer *t, double lr);
/* Steps taken (the t of the bias corrections). */
long vit_trainer_steps(const VitTrainer *t);
/* The global gradient norm of the last step, before clipping (synchronises; NaN when clipping
 * is off, since the norm is then never computed). */
double vit_trainer_last_grad_norm(VitTrainer *t);

/* Checkpoint state: the trainable parameters, AdamW's m and v (n floats each, n =
 * clip_trainable_numel, arena layout) and the step count, to / from host memory, bit for bit
 * (any pointer may be NULL to skip that part). Synchronous. */
int vit_trainer_get_state(VitTrainer *t, float *params, float *m, float *v, long *step);
int vit_trainer_set_state(VitTrainer *t, const float *params, const float *m, const float *v,
                          long step);

#endif
