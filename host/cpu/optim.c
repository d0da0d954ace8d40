/*
 * optim.c — CPU reference of the Adam / AdamW op (host/ops.h adam_forward).
 *
 * PyTorch's single-tensor Adam (torch/optim/adam.py, _single_tensor_adam; AdamW is Adam with
 * decoupled weight decay), for a float32 parameter, step t:
 *     if wd != 0:  decoupled: param.mul_(1 - lr*wd)        else: grad = grad.add(param, alpha=wd)
 *     exp_avg.lerp_(grad, 1 - beta1)                         # m + (1-β1)·(g − m)
 *     exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
 *     step_size = lr / (1 - beta1**t);  bc2_sqrt = (1 - beta2**t) ** 0.5
 *     denom = (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
 *     param.addcdiv_(exp_avg, denom, value=-step_size)
 * Python scalars are doubles rounded to float when they meet a float tensor; the float
 * operations below follow that order one rounding at a time, with no fused multiply-add, so
 * the CUDA twin (kernels/optim.cu, explicit round-to-nearest intrinsics) gives the same bits.
 * PyTorch's vectorised CPU kernels may fuse a multiply-add (lerp, add with alpha), so laic and
 * PyTorch agree to a few ulp, not bitwise (tests/cpu/test_optim.c: ≤ 1e-6 relative).
 */
#include <math.h>

#include "cpu/cpu_ops.h"

/* The scalars of one call, as floats (each Python scalar rounded once, as torch does). */
typedef struct {
    float wd, decay, w1, b2, w2, bc2_sqrt, eps, nstep;
} AdamScalars;

/* One element: pi, gi are the parameter and gradient after the weight-decay mode's change. */
static inline void adam_element(float *p, float *m, float *v, size_t i, float pi, float gi,
                                const AdamScalars *k) {
    const float dm = gi - m[i], mi = m[i] + k->w1 * dm;
    const float g2 = k->w2 * gi, vi = v[i] * k->b2 + g2 * gi;
    const float denom = sqrtf(vi) / k->bc2_sqrt + k->eps;
    const float upd = k->nstep * mi;
    p[i] = pi + upd / denom;
    m[i] = mi;
    v[i] = vi;
}

/* Elements [i0, i1) for one weight-decay mode: one loop per mode, so each is straight-line float
 * code GCC vectorises (CPU_VECTOR_CLONES: the same bits at every vector width). */
enum { ADAM_NO_WD, ADAM_L2, ADAM_DECOUPLED };
CPU_VECTOR_CLONES
static void adam_chunk(float *p, float *m, float *v, const float *g, size_t i0, size_t i1,
                       const AdamScalars *ks, int mode) {
    const AdamScalars k = *ks;
    if (mode == ADAM_NO_WD)
        for (size_t i = i0; i < i1; i++) adam_element(p, m, v, i, p[i], g[i], &k);
    else if (mode == ADAM_L2)   // grad = grad + wd·param
        for (size_t i = i0; i < i1; i++) adam_element(p, m, v, i, p[i], g[i] + k.wd * p[i], &k);
    else   // param = param·(1 − lr·wd) before the update
        for (size_t i = i0; i < i1; i++) adam_element(p, m, v, i, p[i] * k.decay, g[i], &k);
}

void adam_forward_cpu(float *p, float *m, float *v, const float *g, const double *sched, size_t n,
                      double beta1, double beta2, double eps, double weight_decay, int decoupled) {
    const double lr = sched[0], bc1 = sched[1], bc2 = sched[2];
    const AdamScalars k = {
        .wd = (float)weight_decay, .decay = (float)(1.0 - lr * weight_decay),
        .w1 = (float)(1.0 - beta1), .b2 = (float)beta2, .w2 = (float)(1.0 - beta2),
        .bc2_sqrt = (float)sqrt(bc2), .eps = (float)eps, .nstep = (float)(-(lr / bc1)),
    };
    const int mode = weight_decay == 0.0 ? ADAM_NO_WD : decoupled ? ADAM_DECOUPLED : ADAM_L2;
    // chunks of 16384 elements over the threads (each chunk one vectorised call)
    const size_t CH = 16384, nch = (n + CH - 1) / CH;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t c = 0; c < nch; c++)
        adam_chunk(p, m, v, g, c * CH, c * CH + CH < n ? c * CH + CH : n, &k, mode);
}

// --- gradient clipping ---------------------------------------------------------------------------
// out[0] += Σ x² in double, in index order (accumulates: several tensors make one global norm).
void sumsq_forward_cpu(double *out, const float *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    out[0] += s;
}

// torch.nn.utils.clip_grad_norm_: total_norm is a float32 tensor, clip_coef = max_norm /
// (total_norm + 1e-6) and clamp(clip_coef, max=1.0) in float32, then every gradient *= coef
// (always: a factor of exactly 1 when the norm is below max_norm).
void grad_clip_forward_cpu(float *x, size_t n, const double *sumsq, double max_norm) {
    const float norm = (float)sqrt(sumsq[0]);
    float coef = (float)max_norm / (norm + 1e-6f);
    if (!(coef < 1.0f)) coef = 1.0f;   // clamp(max=1); a NaN norm propagates like torch's
    if (norm != norm) coef = norm;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) x[i] = x[i] * coef;
}
