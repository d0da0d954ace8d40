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

void adam_forward_cpu(float *p, float *m, float *v, const float *g, const double *sched, size_t n,
                      double beta1, double beta2, double eps, double weight_decay, int decoupled) {
    const double lr = sched[0], bc1 = sched[1], bc2 = sched[2];
    const int use_wd = weight_decay != 0.0;
    const float wd = (float)weight_decay, decay = (float)(1.0 - lr * weight_decay);
    const float w1 = (float)(1.0 - beta1), b2 = (float)beta2, w2 = (float)(1.0 - beta2);
    const float bc2_sqrt = (float)sqrt(bc2), epsf = (float)eps, nstep = (float)(-(lr / bc1));
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        float pi = p[i], gi = g[i];
        if (use_wd && decoupled) pi = pi * decay;
        if (use_wd && !decoupled) {
            const float t = wd * pi;
            gi = gi + t;
        }
        const float dm = gi - m[i], mi = m[i] + w1 * dm;
        const float g2 = w2 * gi, vi = v[i] * b2 + g2 * gi;
        const float denom = sqrtf(vi) / bc2_sqrt + epsf;
        const float upd = nstep * mi;
        p[i] = pi + upd / denom;
        m[i] = mi;
        v[i] = vi;
    }
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
