/*
 * vit.c — the image-encoder trainer of host/train/vit.h: a vision-training ClipModel, AdamW on
 * its trainable arena, optional global-norm clipping, and the memory plan checked before anything
 * is allocated. Every numerical step is an op of host/ops.h on backend memory.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/vit.h"
#include "io/err.h"
#include "train/optim.h"
#ifdef LAIC_CUDA
#include "../kernels/ops_cuda.h"
#endif

struct VitTrainer {
    VitTrainOpts o;
    const OpsBackend *ops;
    ClipModel *m;
    ClipTrainPlan plan;
    size_t n;              // trainable floats
    float *opt_mem;        // the optimiser allocation: m (n), v (n), then scalars
    float *am, *av;        // (n) AdamW's first and second moments, backend memory
    double *scalars;       // (4) backend memory: lr, 1 − β1^t, 1 − β2^t (adam_schedule), sumsq
    long step;
    double lr;
    int clipped;           // 1 once a step computed the norm (vit_trainer_last_grad_norm)
};

#define ADAMW_FLOATS 2   // m and v per trainable parameter

void vit_train_opts_default(VitTrainOpts *o) {
    memset(o, 0, sizeof *o);
    o->spec = clip_spec_lora(128, 128.0f);
    o->lr = 5e-5;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->precision = "fp32";
}

// Bytes of the optimiser allocation for n trainable floats: m, v, then 4 doubles at an 8-byte
// boundary (the plan's "optimiser state" part, exactly).
static size_t opt_bytes(size_t n) {
    return (ADAMW_FLOATS * n * sizeof(float) + 7) / 8 * 8 + 4 * sizeof(double);
}

static void log_line(const VitTrainOpts *o, const char *line) {
    if (o->log) o->log(o->log_ctx, line);
}

static int check_opts(const ClipConfig *c, const VitTrainOpts *o, int max_batch) {
    if (max_batch < 1) return laic_error("vit: batch must be >= 1 (got %d)", max_batch);
    if (!(o->lr >= 0 && isfinite(o->lr)))
        return laic_error("vit: learning rate %g must be finite and >= 0", o->lr);
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
        return laic_error("vit: AdamW betas (%g, %g) must lie in [0,1)", o->beta1, o->beta2);
    if (!(o->eps > 0 && isfinite(o->eps))) return laic_error("vit: AdamW eps %g must be > 0", o->eps);
    if (!(o->weight_decay >= 0 && isfinite(o->weight_decay)))
        return laic_error("vit: weight decay %g must be finite and >= 0", o->weight_decay);
    if (!(o->clip_norm >= 0 && isfinite(o->clip_norm)))
        return laic_error("vit: gradient clipping norm %g must be finite and >= 0 (0 = off)",
                          o->clip_norm);
    return clip_spec_check(c, &o->spec);
}

VitTrainer *vit_trainer_create(const ClipWeights *w, const OpsBackend *ops, int max_batch,
                               const VitTrainOpts *o) {
    if (!w || !ops || !o) {
        laic_error("vit: no weights, backend or options");
        return NULL;
    }
    const ClipConfig *c = &w->cfg;
    if (check_opts(c, o, max_batch)) return NULL;
    const char *prec = o->precision ? o->precision : "fp32";
    if (clip_check_precision(ops->name, prec, "train precision")) return NULL;
    const int on_device = strcmp(ops->name, "cpu") != 0, bf16 = on_device && !strcmp(prec, "bf16");
    ClipTrainPlan plan;
    clip_vision_train_plan(c, &o->spec, max_batch, on_device, bf16, ADAMW_FLOATS, &plan);
    plan.optimizer = opt_bytes(plan.optimizer / (ADAMW_FLOATS * sizeof(float)));
    plan.total = plan.params + plan.params_bf16 + plan.activations + plan.block_inputs +
                 plan.saved + plan.grad_buffers + plan.trainable + plan.optimizer;
    char buf[2048];
    clip_train_plan_format(&plan, buf, sizeof buf);
    for (char *line = buf, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl) *nl = 0;
        log_line(o, line);
    }
    // the limit: the caller's, else the device's free memory less the driver's share
    size_t limit = o->mem_limit;
    const char *what = "the memory limit";
#ifdef LAIC_CUDA
    if (!limit && ops == &ops_cuda) {
        size_t free_b = 0;
        if (ops_cuda_mem_info(&free_b, NULL) == 0) {
            limit = free_b > CLIP_DEVICE_RESERVE ? free_b - CLIP_DEVICE_RESERVE : 1;
            what = "the free device memory (less the 256 MiB reserve)";
        }
    }
#endif
    if (limit && plan.total > limit) {
        // the plan's other parts are exact; the fit is searched on the same arithmetic
        size_t extra = plan.optimizer - (size_t)ADAMW_FLOATS * (plan.trainable / 2);
        size_t lim2 = limit > extra ? limit - extra : 0;
        int fit = clip_vision_train_fit(c, &o->spec, on_device, bf16, ADAMW_FLOATS, lim2);
        char more[160] = "";
        if (!o->spec.recompute) {
            ClipVisionTrainSpec r = o->spec;
            r.recompute = 1;
            int fr = clip_vision_train_fit(c, &r, on_device, bf16, ADAMW_FLOATS, lim2);
            if (fr > fit)
                snprintf(more, sizeof more, ", or batch %d with train.recompute=true", fr);
        }
        if (fit < 1)
            laic_error("vit: batch %d needs %.1f MiB, more than %s (%.1f MiB), and not even batch "
                       "1 fits%s ---> HINT: free memory, raise the limit, or train fewer "
                       "parameters (LoRA, full_last_k)",
                       max_batch, plan.total / 1048576.0, what, limit / 1048576.0, more);
        else
            laic_error("vit: batch %d needs %.1f MiB (memory plan above), more than %s (%.1f "
                       "MiB) ---> HINT: use a batch of %d or less%s",
                       max_batch, plan.total / 1048576.0, what, limit / 1048576.0, fit, more);
        return NULL;
    }
    VitTrainer *t = callocCheck(1, sizeof *t);
    t->o = *o;
    t->ops = ops;
    t->plan = plan;
    t->lr = o->lr;
    t->m = clip_model_create_vision_train(w, ops, max_batch, &o->spec, prec, o->seed);
    if (!t->m) goto fail;
    t->n = clip_trainable_numel(t->m);
    t->opt_mem = ops->alloc(opt_bytes(t->n));
    if (!t->opt_mem) goto fail;
    ops->memset0(t->opt_mem, opt_bytes(t->n));
    t->am = t->opt_mem;
    t->av = t->opt_mem + t->n;
    t->scalars = (double *)((char *)t->opt_mem + opt_bytes(t->n) - 4 * sizeof(double));
    return t;
fail:
    vit_trainer_free(t);
    return NULL;
}

void vit_trainer_free(VitTrainer *t) {
    if (!t) return;
    if (t->opt_mem) t->ops->free(t->opt_mem);
    clip_model_free(t->m);
    free(t);
}

ClipModel *vit_trainer_model(VitTrainer *t) { return t->m; }
const ClipTrainPlan *vit_trainer_plan(const VitTrainer *t) { return &t->plan; }
float *vit_trainer_grads(VitTrainer *t) { return clip_trainable_grads(t->m); }
void vit_trainer_set_lr(VitTrainer *t, double lr) { t->lr = lr; }
long vit_trainer_steps(const VitTrainer *t) { return t->step; }

int vit_trainer_step(VitTrainer *t) {
    if (!(t->lr >= 0 && isfinite(t->lr)))
        return laic_error("vit: learning rate %g must be finite and >= 0", t->lr);
    const OpsBackend *o = t->ops;
    float *p = clip_trainable_params(t->m), *g = clip_trainable_grads(t->m);
    double sched[3];
    adam_schedule(sched, t->lr, t->o.beta1, t->o.beta2, t->step + 1);
    o->to_device(t->scalars, sched, sizeof sched);
    if (t->o.clip_norm > 0) {   // torch.nn.utils.clip_grad_norm_(params, clip_norm)
        o->memset0(t->scalars + 3, sizeof(double));
        o->sumsq_forward(t->scalars + 3, g, t->n);
        o->grad_clip_forward(g, t->n, t->scalars + 3, t->o.clip_norm);
        t->clipped = 1;
    }
    // torch.optim.AdamW: decoupled weight decay, one group over the whole arena
    o->adam_forward(p, t->am, t->av, g, t->scalars, t->n, t->o.beta1, t->o.beta2, t->o.eps,
                    t->o.weight_decay, 1);
    clip_zero_grad(t->m);
    t->step++;
    return 0;
}

double vit_trainer_last_grad_norm(VitTrainer *t) {
    if (!t->clipped) return NAN;
    double s = 0;
    t->ops->synchronize();
    t->ops->to_host(&s, t->scalars + 3, sizeof s);
    return sqrt(s);
}

int vit_trainer_get_state(VitTrainer *t, float *params, float *m, float *v, long *step) {
    const OpsBackend *o = t->ops;
    o->synchronize();
    if (params && clip_trainable_download(t->m, params)) return -1;
    if (m) o->to_host(m, t->am, t->n * sizeof(float));
    if (v) o->to_host(v, t->av, t->n * sizeof(float));
    if (step) *step = t->step;
    return 0;
}

int vit_trainer_set_state(VitTrainer *t, const float *params, const float *m, const float *v,
                          long step) {
    if (step < 0) return laic_error("vit: step %ld must be >= 0", step);
    const OpsBackend *o = t->ops;
    o->synchronize();
    if (params && clip_trainable_upload(t->m, params)) return -1;
    if (m) o->to_device(t->am, m, t->n * sizeof(float));
    if (v) o->to_device(t->av, v, t->n * sizeof(float));
    t->step = step;
    return 0;
}
