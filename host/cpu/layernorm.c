/*
 * layernorm.c — CPU LayerNorm (eps 1e-5, biased variance as PyTorch) and row L2 normalisation.
 *
 * Statistics are accumulated in double: rows are at most a few thousand wide, and double keeps
 * the reference independent of summation order (the CUDA version is compared against it).
 * Single-threaded on purpose: these are memory-bound passes that a second thread does not speed
 * up on our 2-core target, and every OpenMP region adds a barrier that stalls when another
 * process preempts one thread (measured: 2 LayerNorms over 800x768 take ~5 ms either way).
 */
#include <math.h>
#include <stdlib.h>

#include "cpu/cpu_ops.h"
#include "io/err.h"

void layernorm_forward_cpu(float *out, float *mean, float *rstd, const float *inp,
                           const float *weight, const float *bias, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;   // (C)
        float *o = out + (size_t)n * C;         // (C)
        double s = 0;
        for (int i = 0; i < C; i++) s += x[i];
        double m = s / C;
        double v = 0;
        for (int i = 0; i < C; i++) {
            double d = x[i] - m;
            v += d * d;
        }
        v /= C;
        double r = 1.0 / sqrt(v + 1e-5);
        float mf = (float)m, rf = (float)r;
        for (int i = 0; i < C; i++) o[i] = (x[i] - mf) * rf * weight[i] + bias[i];
        if (mean) mean[n] = mf;
        if (rstd) rstd[n] = rf;
    }
}

void l2norm_forward_cpu(float *out, const float *inp, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        double s = 0;
        for (int i = 0; i < C; i++) s += (double)x[i] * x[i];
        double nrm = sqrt(s);
        // F.normalize semantics: divide by max(||x||, 1e-12)
        float inv = (float)(1.0 / (nrm > 1e-12 ? nrm : 1e-12));
        for (int i = 0; i < C; i++) o[i] = x[i] * inv;
    }
}

// --- backward -------------------------------------------------------------------------------
// dinp (N,C) += ∂⟨dout, out⟩/∂inp for out = (inp - mean) * rstd * weight + bias. With
// n = (x - mean) * rstd and g = dout * weight, the chain rule through mean and rstd gives
//   dx = rstd * (g - mean(g) - n * mean(g * n)).
// The two row means are summed in double (as the forward's statistics).
void layernorm_backward_cpu(float *dinp, const float *dout, const float *inp,
                            const float *weight, const float *mean, const float *rstd, int N,
                            int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;    // (C)
        const float *dy = dout + (size_t)n * C;  // (C)
        float *dx = dinp + (size_t)n * C;        // (C)
        float m = mean[n], r = rstd[n];
        double sg = 0, sgn = 0;
        for (int i = 0; i < C; i++) {
            // forward: o[i] = (x[i] - mf) * rf * weight[i] + bias[i]
            float nrm = (x[i] - m) * r;
            float g = dy[i] * weight[i];
            sg += g;
            sgn += (double)g * nrm;
        }
        float mg = (float)(sg / C), mgn = (float)(sgn / C);
        for (int i = 0; i < C; i++) {
            float nrm = (x[i] - m) * r;
            dx[i] += r * (dy[i] * weight[i] - mg - nrm * mgn);
        }
    }
}

// Forward: o = x / max(||x||, 1e-12). Above the floor, y = x/||x|| and
//   dx = (dout - y (y · dout)) / ||x||;
// at the floor (||x|| <= 1e-12) the divisor is a constant, so dx = dout / 1e-12 (as autograd).
void l2norm_backward_cpu(float *dinp, const float *dout, const float *inp, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        const float *dy = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        double s = 0;
        for (int i = 0; i < C; i++) s += (double)x[i] * x[i];
        double nrm = sqrt(s);
        if (nrm > 1e-12) {
            double yd = 0;   // y · dout, y = x / nrm
            for (int i = 0; i < C; i++) yd += (double)x[i] / nrm * dy[i];
            for (int i = 0; i < C; i++)
                dx[i] = (float)((dy[i] - x[i] / nrm * yd) / nrm);
        } else {
            for (int i = 0; i < C; i++) dx[i] = (float)(dy[i] / 1e-12);
        }
    }
}

// --- weight gradients -------------------------------------------------------------------------
// Forward: o[i] = (x[i] - mf) * rf * weight[i] + bias[i]  =>  dweight[i] += Σ_n dout·nrm with
// nrm = (x - mf) * rf rounded as the forward rounds it, dbias[i] += Σ_n dout. Row by row into
// one double accumulator per column (each column's sum still runs over n in order, the CUDA
// twin's order), added to the float gradient in double and rounded once. ACCUMULATES.
void layernorm_backward_weight_cpu(float *dweight, float *dbias, const float *dout,
                                   const float *inp, const float *mean, const float *rstd, int N,
                                   int C) {
    if (C <= 0 || (!dweight && !dbias)) return;
    double *sw = callocCheck((size_t)C, sizeof *sw), *sb = callocCheck((size_t)C, sizeof *sb);
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;   // (C)
        const float m = mean[n], r = rstd[n];
        for (int i = 0; i < C; i++) {
            const float nrm = (x[i] - m) * r;
            sw[i] += (double)dy[i] * nrm;
            sb[i] += dy[i];
        }
    }
    for (int i = 0; i < C; i++) {
        if (dweight) dweight[i] = (float)((double)dweight[i] + sw[i]);
        if (dbias) dbias[i] = (float)((double)dbias[i] + sb[i]);
    }
    free(sw);
    free(sb);
}
