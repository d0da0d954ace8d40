/*
 * heads.c — CPU references of the clustering-head ops (host/ops.h, "clustering heads"): the
 * pieces of SIC's Linear head and TAC's MLP head (Linear → BatchNorm1d → ReLU → Linear →
 * Softmax) that matmul_forward / matmul_backward / matmul_backward_weight do not cover, and the
 * two methods' losses with their gradients (host/train/heads.h composes them).
 *
 * Numerics: every reduction (BatchNorm's column statistics and gradient sums, softmax sums,
 * the losses' batch means) is a double accumulator filled in a fixed order (rows in order for
 * a column, columns in order for a row), rounded to float once; the elementwise float
 * expressions are written one rounding per operation with no fused multiply-add (the
 * x86-64-v2 target has no FMA), so the CUDA twins (kernels/heads.cu) can reproduce the bits
 * where they promise to. The two GEMMs inside TAC's cluster-contrastive loss go to OpenBLAS.
 *
 * Letters: B/b batch rows, C channels (hidden width), K clusters, n elements.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_ops.h"
#include "io/err.h"

// --- BatchNorm1d --------------------------------------------------------------------------------
// The loops below take the rows four at a time (ROWS4) with the column loop inside: each column's
// accumulator is read and written once per four rows instead of once per row, and the per-column
// values (mean, rstd, weight, ...) are loaded once per four rows. The additions into a column's
// accumulator stay in row order, so the result is the one-row-at-a-time loop's, bit for bit.
#define ROWS4 4

// One output element: (x − mean)·rstd·weight + bias, one float rounding per operation.
static inline float bn_out(float x, float mean, float rstd, float weight, float bias) {
    return (x - mean) * rstd * weight + bias;
}
// One input-gradient element (backward below): k = weight·rstd, m1 = mean of dout, m2 = mean of
// dout·xhat, all double.
static inline float bn_dx(float x, float dy, float mean, float rstd, double k, double m1,
                          double m2) {
    const float xh = (x - mean) * rstd;
    return (float)(k * ((double)dy - m1 - (double)xh * m2));
}

// torch.nn.BatchNorm1d on (B,C): training normalises with the batch mean and the BIASED variance
// and updates running_mean/var with the UNBIASED one, x_run = (1 − momentum)·x_run + momentum·x;
// evaluation normalises with the running statistics. out = (x − mean)·rstd·weight + bias.
CPU_VECTOR_CLONES
void batchnorm_forward_cpu(float *out, float *mean, float *rstd, float *running_mean,
                           float *running_var, const float *inp, const float *weight,
                           const float *bias, int B, int C, int train, double momentum,
                           double eps) {
    if (C <= 0) return;
    const size_t ld = (size_t)C;
    if (train) {
        double *s = callocCheck((size_t)C, sizeof *s), *q = callocCheck((size_t)C, sizeof *q);
        int b = 0;   // column sums, rows in order (the CUDA twin's order)
        for (; b + ROWS4 <= B; b += ROWS4) {
            const float *x = inp + (size_t)b * ld;
            for (int c = 0; c < C; c++)
                s[c] = s[c] + x[c] + x[ld + c] + x[2 * ld + c] + x[3 * ld + c];
        }
        for (; b < B; b++) {
            const float *x = inp + (size_t)b * ld;
            for (int c = 0; c < C; c++) s[c] += x[c];
        }
        for (int c = 0; c < C; c++) s[c] /= B;
        for (b = 0; b + ROWS4 <= B; b += ROWS4) {   // squared deviations from the mean
            const float *x = inp + (size_t)b * ld;
            for (int c = 0; c < C; c++) {
                const double d0 = (double)x[c] - s[c], d1 = (double)x[ld + c] - s[c];
                const double d2 = (double)x[2 * ld + c] - s[c], d3 = (double)x[3 * ld + c] - s[c];
                q[c] = q[c] + d0 * d0 + d1 * d1 + d2 * d2 + d3 * d3;
            }
        }
        for (; b < B; b++) {
            const float *x = inp + (size_t)b * ld;
            for (int c = 0; c < C; c++) {
                const double d = (double)x[c] - s[c];
                q[c] += d * d;
            }
        }
        for (int c = 0; c < C; c++) {
            const double var = q[c] / B;   // biased: normalisation
            mean[c] = (float)s[c];
            rstd[c] = (float)(1.0 / sqrt(var + eps));
            const double unb = B > 1 ? q[c] / (B - 1) : var;   // unbiased: running statistics
            running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * s[c]);
            running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unb);
        }
        free(s);
        free(q);
    } else {
        for (int c = 0; c < C; c++) {
            mean[c] = running_mean[c];
            rstd[c] = (float)(1.0 / sqrt((double)running_var[c] + eps));
        }
    }
    int b = 0;
    for (; b + ROWS4 <= B; b += ROWS4) {
        const float *x = inp + (size_t)b * ld;
        float *o = out + (size_t)b * ld;
    CPU_IVDEP   // column c touches only column c
        for (int c = 0; c < C; c++) {
            const float mu = mean[c], r = rstd[c], w = weight[c], bi = bias[c];
            o[c] = bn_out(x[c], mu, r, w, bi);
            o[ld + c] = bn_out(x[ld + c], mu, r, w, bi);
            o[2 * ld + c] = bn_out(x[2 * ld + c], mu, r, w, bi);
            o[3 * ld + c] = bn_out(x[3 * ld + c], mu, r, w, bi);
        }
    }
    for (; b < B; b++) {
        const float *x = inp + (size_t)b * ld;
        float *o = out + (size_t)b * ld;
        for (int c = 0; c < C; c++) o[c] = bn_out(x[c], mean[c], rstd[c], weight[c], bias[c]);
    }
}

// Forward (training mode): xhat = (x − mean)·rstd, out = xhat·weight + bias, mean and rstd from
// the batch. Then dbias += Σ_b dout, dweight += Σ_b dout·xhat and
//   dinp = weight·rstd · (dout − Σ_b dout / B − xhat · Σ_b (dout·xhat) / B)
// (the batch statistics depend on every row). Sums in double, rows in order.
CPU_VECTOR_CLONES
void batchnorm_backward_cpu(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, const float *mean,
                            const float *rstd, int B, int C) {
    if (C <= 0) return;
    const size_t ld = (size_t)C;
    double *sd = callocCheck((size_t)C, sizeof *sd), *sdx = callocCheck((size_t)C, sizeof *sdx);
    int b = 0;
    for (; b + ROWS4 <= B; b += ROWS4) {
        const float *x = inp + (size_t)b * ld, *dy = dout + (size_t)b * ld;
        for (int c = 0; c < C; c++) {
            const float mu = mean[c], r = rstd[c];
            const float h0 = (x[c] - mu) * r, h1 = (x[ld + c] - mu) * r;
            const float h2 = (x[2 * ld + c] - mu) * r, h3 = (x[3 * ld + c] - mu) * r;
            sd[c] = sd[c] + dy[c] + dy[ld + c] + dy[2 * ld + c] + dy[3 * ld + c];
            sdx[c] = sdx[c] + (double)dy[c] * h0 + (double)dy[ld + c] * h1 +
                     (double)dy[2 * ld + c] * h2 + (double)dy[3 * ld + c] * h3;
        }
    }
    for (; b < B; b++) {
        const float *x = inp + (size_t)b * ld, *dy = dout + (size_t)b * ld;
        for (int c = 0; c < C; c++) {
            const float xh = (x[c] - mean[c]) * rstd[c];
            sd[c] += dy[c];
            sdx[c] += (double)dy[c] * xh;
        }
    }
    // per column once: the two means and weight·rstd (the same double values the per-element
    // expression would compute, so the result is unchanged; a division per element was a third of
    // this op's time)
    double *kk = mallocCheck((size_t)C * sizeof *kk);
    for (int c = 0; c < C; c++) {
        dbias[c] = (float)((double)dbias[c] + sd[c]);
        dweight[c] = (float)((double)dweight[c] + sdx[c]);
        sd[c] /= B;
        sdx[c] /= B;
        kk[c] = (double)weight[c] * rstd[c];
    }
    for (b = 0; b + ROWS4 <= B; b += ROWS4) {
        const float *x = inp + (size_t)b * ld, *dy = dout + (size_t)b * ld;
        float *dx = dinp + (size_t)b * ld;
    CPU_IVDEP   // as in the forward
        for (int c = 0; c < C; c++) {
            const float mu = mean[c], r = rstd[c];
            const double k = kk[c], m1 = sd[c], m2 = sdx[c];
            dx[c] = bn_dx(x[c], dy[c], mu, r, k, m1, m2);
            dx[ld + c] = bn_dx(x[ld + c], dy[ld + c], mu, r, k, m1, m2);
            dx[2 * ld + c] = bn_dx(x[2 * ld + c], dy[2 * ld + c], mu, r, k, m1, m2);
            dx[3 * ld + c] = bn_dx(x[3 * ld + c], dy[3 * ld + c], mu, r, k, m1, m2);
        }
    }
    for (; b < B; b++) {
        const float *x = inp + (size_t)b * ld, *dy = dout + (size_t)b * ld;
        float *dx = dinp + (size_t)b * ld;
        for (int c = 0; c < C; c++) dx[c] = bn_dx(x[c], dy[c], mean[c], rstd[c], kk[c], sd[c], sdx[c]);
    }
    free(sd);
    free(sdx);
    free(kk);
}

// --- ReLU ---------------------------------------------------------------------------------------
// Branch-free: half the signs are random, and a mispredicted branch per element cost more than
// the rest of the pass (seen: 7 % of a TAC step). The bits are kept or cleared by a mask, so the
// values are exactly x or +0 (NaN → +0, as the comparison is false), as the branchy form gave.
static inline uint32_t fbits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}
static inline float bitsf(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

CPU_VECTOR_CLONES
void relu_forward_cpu(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = bitsf(fbits(inp[i]) & (0u - (uint32_t)(inp[i] > 0.0f)));
}

// Forward: out = max(inp, 0). As autograd (threshold_backward on the result): the gradient passes
// where out > 0, so the forward may have run in place.
CPU_VECTOR_CLONES
void relu_backward_cpu(float *dinp, const float *dout, const float *out, size_t n) {
    for (size_t i = 0; i < n; i++) dinp[i] = bitsf(fbits(dout[i]) & (0u - (uint32_t)(out[i] > 0.0f)));
}

// --- softmax and row gathers ------------------------------------------------------------------
// One row: p = exp(x − max) / Σ exp(x − max); each exp a float (expf), the sum in double.
static void softmax_row(float *p, const float *x, int K) {
    float mx = x[0];
    for (int c = 1; c < K; c++) mx = x[c] > mx ? x[c] : mx;
    double s = 0.0;
    for (int c = 0; c < K; c++) s += (p[c] = expf(x[c] - mx));
    for (int c = 0; c < K; c++) p[c] = (float)(p[c] / s);
}

void softmax_forward_cpu(float *out, const float *inp, int B, int K) {
    for (int b = 0; b < B; b++) softmax_row(out + (size_t)b * K, inp + (size_t)b * K, K);
}

void index_select_forward_cpu(float *out, const float *inp, const int64_t *idx, int n, int C) {
    for (int i = 0; i < n; i++)
        memcpy(out + (size_t)i * C, inp + (size_t)idx[i] * C, (size_t)C * sizeof *out);
}

// --- SIC loss -----------------------------------------------------------------------------------
// SIC losses/losses.py:44-83 on one batch, logits la (anchors), ln (neighbours) (b,K):
//   pa = softmax(la), pn = softmax(ln), s_i = ⟨pa_i, pn_i⟩
//   L_I = −(1/b) Σ_i log s_i                                  (image consistency)
//   H   = −Σ_c x_c log x_c,  x = max(mean_i pa_i, 1e-8)        (entropy of the batch mean)
//   CE  = (1/b) Σ_i −log softmax(la_i)[ŷ_i]                    (image-semantic consistency)
//   L   = L_I − λ·H + β·CE
// Gradients (clamp passes the gradient where mean ≥ 1e-8, as torch.clamp's backward):
//   ∂L/∂pa_i = −pn_i/(b s_i) + (λ/b)(log x + 1)·[mean ≥ 1e-8],  ∂L/∂pn_i = −pa_i/(b s_i)
//   ∂L/∂la_i = pa_i ⊙ (∂L/∂pa_i − ⟨∂L/∂pa_i, pa_i⟩) + (β/b)(pa_i − e_{ŷ_i}),  likewise ln without CE.
void sic_loss_forward_backward_cpu(double *terms, float *dla, float *dln, const float *la,
                                   const float *ln, const int32_t *yhat, int b, int K,
                                   double entropy_weight, double ce_weight) {
    float *pa = mallocCheck((size_t)b * K * sizeof *pa), *pn = mallocCheck((size_t)b * K * sizeof *pn);
    double *s = mallocCheck((size_t)b * sizeof *s), *pbar = callocCheck((size_t)K, sizeof *pbar);
    double *g = mallocCheck((size_t)K * sizeof *g);
    double li = 0.0, ce = 0.0;
    for (int i = 0; i < b; i++) {
        const float *xa = la + (size_t)i * K;
        float *a = pa + (size_t)i * K, *n = pn + (size_t)i * K;
        softmax_row(a, xa, K);
        softmax_row(n, ln + (size_t)i * K, K);
        double si = 0.0;
        for (int c = 0; c < K; c++) si += (double)a[c] * n[c];
        s[i] = si;
        li -= log(si);
        float mx = xa[0];
        for (int c = 1; c < K; c++) mx = xa[c] > mx ? xa[c] : mx;
        double se = 0.0;
        for (int c = 0; c < K; c++) se += exp((double)xa[c] - mx);
        ce += (double)mx + log(se) - xa[yhat[i]];
        for (int c = 0; c < K; c++) pbar[c] += a[c];
    }
    li /= b;
    ce /= b;
    double H = 0.0;
    for (int c = 0; c < K; c++) {
        const double m = pbar[c] / b, x = m > 1e-8 ? m : 1e-8;
        H -= x * log(x);
        g[c] = m >= 1e-8 ? entropy_weight / b * (log(x) + 1.0) : 0.0;
    }
    for (int i = 0; i < b; i++) {
        const float *a = pa + (size_t)i * K, *n = pn + (size_t)i * K;
        const double inv = 1.0 / ((double)b * s[i]);
        double da_dot = 0.0, dn_dot = 0.0;
        for (int c = 0; c < K; c++) {
            da_dot += (-(double)n[c] * inv + g[c]) * a[c];
            dn_dot += (-(double)a[c] * inv) * n[c];
        }
        for (int c = 0; c < K; c++) {
            const double dpa = -(double)n[c] * inv + g[c], dpn = -(double)a[c] * inv;
            const double onehot = c == yhat[i] ? 1.0 : 0.0;
            dla[(size_t)i * K + c] =
                (float)(a[c] * (dpa - da_dot) + ce_weight / b * ((double)a[c] - onehot));
            dln[(size_t)i * K + c] = (float)(n[c] * (dpn - dn_dot));
        }
    }
    terms[0] = li - entropy_weight * H + ce_weight * ce;
    terms[1] = li;
    terms[2] = H;
    terms[3] = ce;
    free(pa);
    free(pn);
    free(s);
    free(pbar);
    free(g);
}

// --- TAC loss -----------------------------------------------------------------------------------
// TAC's cluster-level contrastive term (loss_utils.py:40-58, DistillLoss) of probabilities
// A, B (b,K): c = [Aᵀ; Bᵀ] (2K,b), ĉ = rows of c / max(‖row‖, 1e-12) (F.normalize),
// sim = ĉĉᵀ/τ (2K,2K); row r's positive is its twin r ± K, every other column but r itself a
// negative; D = Σ_r CE(row r, positive) / (2K). Adds ∂D/∂A, ∂D/∂B into gA, gB (b,K) double and
// returns D. Backward: ∂D/∂sim[r,j] = (softmax_{j≠r}(sim[r,:])_j − [j = twin(r)]) / (2K), then
// ∂D/∂ĉ = (dsim + dsimᵀ) ĉ / τ, then F.normalize's backward (dĉ − ĉ⟨dĉ, ĉ⟩)/‖c‖ (÷1e-12 at the
// floor), transposed back.
static double tac_distill(double *gA, double *gB, const float *A, const float *Bm, int b, int K,
                          double tau) {
    const int n2 = 2 * K;
    float *c = mallocCheck((size_t)n2 * b * sizeof *c);       // (2K,b): ĉ
    double *nrm = mallocCheck((size_t)n2 * sizeof *nrm);      // (2K) ‖c_r‖
    float *sim = mallocCheck((size_t)n2 * n2 * sizeof *sim);  // (2K,2K), then G
    float *dc = mallocCheck((size_t)n2 * b * sizeof *dc);     // (2K,b)
    for (int r = 0; r < n2; r++) {
        const float *src = r < K ? A : Bm;
        const int k = r < K ? r : r - K;
        double s2 = 0.0;
        for (int i = 0; i < b; i++) {
            const float v = src[(size_t)i * K + k];
            c[(size_t)r * b + i] = v;
            s2 += (double)v * v;
        }
        nrm[r] = sqrt(s2);
        const float den = (float)(nrm[r] > 1e-12 ? nrm[r] : 1e-12);
        for (int i = 0; i < b; i++) c[(size_t)r * b + i] /= den;
    }
    // sim = ĉ ĉᵀ, then / τ (the division rounds each product, as the reference's `/ temperature`)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n2, n2, b, 1.0f, c, b, c, b, 0.0f, sim, n2);
    const float tauf = (float)tau;
    for (size_t e = 0; e < (size_t)n2 * n2; e++) sim[e] /= tauf;
    double loss = 0.0;
    double *row = mallocCheck((size_t)n2 * sizeof *row);
    for (int r = 0; r < n2; r++) {
        const float *sr = sim + (size_t)r * n2;
        const int pos = r < K ? r + K : r - K;
        double mx = -INFINITY;
        for (int j = 0; j < n2; j++)
            if (j != r && sr[j] > mx) mx = sr[j];
        double se = 0.0;
        for (int j = 0; j < n2; j++) se += j == r ? 0.0 : exp((double)sr[j] - mx);
        const double lse = mx + log(se);
        loss += lse - sr[pos];
        for (int j = 0; j < n2; j++)
            row[j] = j == r ? 0.0 : (exp((double)sr[j] - lse) - (j == pos ? 1.0 : 0.0)) / n2;
        // keep dsim in place of the row already read (sim[r,:] is not read again)
        for (int j = 0; j < n2; j++) sim[(size_t)r * n2 + j] = (float)row[j];
    }
    free(row);
    // G = (dsim + dsimᵀ) / τ, symmetric; built in the upper triangle first so each pair is read
    // before either half is overwritten
    for (int r = 0; r < n2; r++)
        for (int j = r; j < n2; j++) {
            const float v = (sim[(size_t)r * n2 + j] + sim[(size_t)j * n2 + r]) / tauf;
            sim[(size_t)r * n2 + j] = v;
            sim[(size_t)j * n2 + r] = v;
        }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n2, b, n2, 1.0f, sim, n2, c, b, 0.0f,
                dc, b);
    for (int r = 0; r < n2; r++) {
        const float *ch = c + (size_t)r * b, *dh = dc + (size_t)r * b;
        double *g = r < K ? gA : gB;
        const int k = r < K ? r : r - K;
        if (nrm[r] > 1e-12) {
            double dot = 0.0;
            for (int i = 0; i < b; i++) dot += (double)dh[i] * ch[i];
            for (int i = 0; i < b; i++) g[(size_t)i * K + k] += ((double)dh[i] - ch[i] * dot) / nrm[r];
        } else {
            for (int i = 0; i < b; i++) g[(size_t)i * K + k] += (double)dh[i] / 1e-12;
        }
    }
    free(c);
    free(nrm);
    free(sim);
    free(dc);
    return loss / n2;
}

// H(P) = −Σ_c x_c log x_c, x = max(mean_i P_i, 1e-9) (loss_utils.py:6-10); adds −w·∂H/∂P into g.
static double tac_entropy(double *g, const float *P, int b, int K, double w) {
    double H = 0.0;
    for (int c = 0; c < K; c++) {
        double m = 0.0;
        for (int i = 0; i < b; i++) m += P[(size_t)i * K + c];
        m /= b;
        const double x = m > 1e-9 ? m : 1e-9;
        H -= x * log(x);
        if (m >= 1e-9)
            for (int i = 0; i < b; i++) g[(size_t)i * K + c] += w / b * (log(x) + 1.0);
    }
    return H;
}

// TAC train_head.py:116-124 on one batch, the heads' softmax outputs P (b,K) for the image (I)
// and text (T) inputs of the anchors (a) and their neighbours (n):
//   L = D(P_Ia, P_Tn) + D(P_Ta, P_In) + Cons(P_Ta, P_Ia) − w·[H(P_Ta) + H(P_Ia)]
// Cons(A,B) = mean_i BCE(⟨A_i,B_i⟩, 1) = mean_i −max(log s_i, −100), whose autograd gradient is
// (s − 1)/max((1 − s)s, 1e-12)/b (torch's binary_cross_entropy backward, so s = 1 gives 0).
// The gradients w.r.t. the four logits come through the softmax backward P ⊙ (g − ⟨g, P⟩).
void tac_loss_forward_backward_cpu(double *terms, float *dIa, float *dTa, float *dIn, float *dTn,
                                   const float *PIa, const float *PTa, const float *PIn,
                                   const float *PTn, int b, int K, double tau,
                                   double entropy_weight) {
    const size_t n = (size_t)b * K;
    double *g = callocCheck(4 * n, sizeof *g);   // ∂L/∂P: Ia, Ta, In, Tn
    double *gIa = g, *gTa = g + n, *gIn = g + 2 * n, *gTn = g + 3 * n;
    const double d1 = tac_distill(gIa, gTn, PIa, PTn, b, K, tau);
    const double d2 = tac_distill(gTa, gIn, PTa, PIn, b, K, tau);
    double cons = 0.0;
    for (int i = 0; i < b; i++) {
        const float *t = PTa + (size_t)i * K, *im = PIa + (size_t)i * K;
        double s = 0.0;
        for (int c = 0; c < K; c++) s += (double)t[c] * im[c];
        const double lg = log(s);
        cons -= lg > -100.0 ? lg : -100.0;
        const double den = (1.0 - s) * s, ds = (s - 1.0) / (den > 1e-12 ? den : 1e-12) / b;
        for (int c = 0; c < K; c++) {
            gTa[(size_t)i * K + c] += ds * im[c];
            gIa[(size_t)i * K + c] += ds * t[c];
        }
    }
    cons /= b;
    const double ht = tac_entropy(gTa, PTa, b, K, entropy_weight);
    const double hi = tac_entropy(gIa, PIa, b, K, entropy_weight);
    const float *P[4] = {PIa, PTa, PIn, PTn};
    float *D[4] = {dIa, dTa, dIn, dTn};
    for (int q = 0; q < 4; q++)
        for (int i = 0; i < b; i++) {
            const float *p = P[q] + (size_t)i * K;
            const double *gi = g + (size_t)q * n + (size_t)i * K;
            double dot = 0.0;
            for (int c = 0; c < K; c++) dot += gi[c] * p[c];
            for (int c = 0; c < K; c++) D[q][(size_t)i * K + c] = (float)(p[c] * (gi[c] - dot));
        }
    terms[0] = d1 + d2 + cons - entropy_weight * (ht + hi);
    terms[1] = d1;
    terms[2] = d2;
    terms[3] = cons;
    terms[4] = ht + hi;
    free(g);
}
