/*
 * seic.c — CPU references of the SEIC losses (SPEC §9.3; semantics in host/ops.h):
 * seic_align_loss_forward_backward (stage 1: L_ins, L_ass, L_ctr, L_bal, the balance
 * histogram) and seic_self_loss_forward_backward (stage 2: confidence-weighted CE).
 *
 * Every intermediate is double, from the float inputs; the three n×n×d products of each
 * contrastive term are OpenBLAS dgemm calls (their summation order is OpenBLAS's: the same run
 * to run on one machine and thread count, not across them), every other sum runs in index
 * order. Outputs are rounded to float once. The math follows V4C's losses.py term for term:
 * each contrastive term normalises its rows itself (F.normalize, floor 1e-12), so the
 * projected features z, already unit rows, pass through a second normalisation there, and
 * so do the assignment columns.
 *
 * Letters: b batch rows, K clusters, E feature width; n, d the rows and width of one
 * contrastive term's inputs.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_ops.h"
#include "io/err.h"
#include "ops.h"


// --- helpers ---------------------------------------------------------------------------------

// y (n,d) = x / max(‖x‖, 1e-12) row by row; nrm (n) keeps max(‖x‖, 1e-12).
static void rownorm(double *y, double *nrm, const double *x, int n, int d) {
    for (int i = 0; i < n; i++) {
        const double *xi = x + (size_t)i * d;
        double s = 0.0;
        for (int e = 0; e < d; e++) s += xi[e] * xi[e];
        double r = sqrt(s);
        nrm[i] = r > 1e-12 ? r : 1e-12;
        for (int e = 0; e < d; e++) y[(size_t)i * d + e] = xi[e] / nrm[i];
    }
}

// Backward of rownorm: dx = (dy − y (y·dy)) / ‖x‖ where ‖x‖ > 1e-12, else dy / 1e-12
// (F.normalize divides by the clamped norm, whose gradient is 0 below the floor). In place ok.
static void rownorm_backward(double *dx, const double *dy, const double *y, const double *nrm,
                             int n, int d) {
    for (int i = 0; i < n; i++) {
        const double *yi = y + (size_t)i * d, *gi = dy + (size_t)i * d;
        double *o = dx + (size_t)i * d;
        if (nrm[i] > 1e-12) {
            double dot = 0.0;
            for (int e = 0; e < d; e++) dot += yi[e] * gi[e];
            for (int e = 0; e < d; e++) o[e] = (gi[e] - yi[e] * dot) / nrm[i];
        } else {
            for (int e = 0; e < d; e++) o[e] = gi[e] / nrm[i];
        }
    }
}

/* CL(A, B; scale) = ½[CE(scale ÂB̂ᵀ, diag) + CE(scale B̂Âᵀ, diag)] for A, B (n,d) raw rows.
 * Returns the loss; dA, dB (n,d) = its gradients w.r.t. the raw rows [overwrite];
 * *dscale = ∂loss/∂scale. n < 2: loss 0 and zero gradients (V4C's early return). */
static double contrastive(double *dA, double *dB, double *dscale, const double *A,
                          const double *B, int n, int d, double scale) {
    memset(dA, 0, (size_t)n * d * sizeof *dA);
    memset(dB, 0, (size_t)n * d * sizeof *dB);
    *dscale = 0.0;
    if (n < 2) return 0.0;
    double *Ah = mallocCheck((size_t)n * d * sizeof *Ah), *Bh = mallocCheck((size_t)n * d * sizeof *Bh);
    double *na = mallocCheck((size_t)n * sizeof *na), *nb = mallocCheck((size_t)n * sizeof *nb);
    double *S = mallocCheck((size_t)n * n * sizeof *S), *G = mallocCheck((size_t)n * n * sizeof *G);
    double *cmax = mallocCheck((size_t)n * sizeof *cmax), *csum = mallocCheck((size_t)n * sizeof *csum);
    rownorm(Ah, na, A, n, d);
    rownorm(Bh, nb, B, n, d);
    // S = Â B̂ᵀ in double (OpenBLAS dgemm: the three n·n·d products dominate the op)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, d, 1.0, Ah, d, Bh, d, 0.0, S, n);
    // rows: CE(scale S, diag); G collects dL/dlogit = (softmax − I) / (2n) from both directions
    double lr = 0.0, lc = 0.0;
    for (int i = 0; i < n; i++) {
        const double *s = S + (size_t)i * n;
        double mx = -INFINITY, sum = 0.0;
        for (int j = 0; j < n; j++) mx = fmax(mx, scale * s[j]);
        for (int j = 0; j < n; j++) sum += exp(scale * s[j] - mx);
        lr += mx + log(sum) - scale * s[i];
        for (int j = 0; j < n; j++)
            G[(size_t)i * n + j] = (exp(scale * s[j] - mx) / sum - (i == j)) / (2.0 * n);
    }
    for (int j = 0; j < n; j++) {   // columns: CE(scale Sᵀ, diag)
        double mx = -INFINITY, sum = 0.0;
        for (int i = 0; i < n; i++) mx = fmax(mx, scale * S[(size_t)i * n + j]);
        for (int i = 0; i < n; i++) sum += exp(scale * S[(size_t)i * n + j] - mx);
        cmax[j] = mx, csum[j] = sum;
        lc += mx + log(sum) - scale * S[(size_t)j * n + j];
    }
    double ds = 0.0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double *g = &G[(size_t)i * n + j];
            *g += (exp(scale * S[(size_t)i * n + j] - cmax[j]) / csum[j] - (i == j)) / (2.0 * n);
            ds += *g * S[(size_t)i * n + j];   // ∂L/∂scale = Σ dL/dlogit · S
            *g *= scale;                       // now dL/dS
        }
    *dscale = ds;
    // dÂ = G B̂, dB̂ = Gᵀ Â, then through the normalisations
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, d, n, 1.0, G, n, Bh, d, 0.0, dA, d);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, d, n, 1.0, G, n, Ah, d, 0.0, dB, d);
    rownorm_backward(dA, dA, Ah, na, n, d);
    rownorm_backward(dB, dB, Bh, nb, n, d);
    free(Ah), free(Bh), free(na), free(nb), free(S), free(G), free(cmax), free(csum);
    return (lr + lc) / (2.0 * n);
}

// --- stage 1 ------------------------------------------------------------------------------------

void seic_align_loss_forward_backward_cpu(double *terms, float *dzi, float *dzt, float *dli,
                                          float *dlt, float *dlogs, float *hist, const float *zi,
                                          const float *zt, const float *li, const float *lt,
                                          const float *logs, int b, int K, int E,
                                          const SeicLossCfg *cfg) {
    const size_t bE = (size_t)b * E, bK = (size_t)b * K;
    double *z[2], *P[2], *dz[2], *dP[2];
    const float *zin[2] = {zi, zt}, *lin[2] = {li, lt};
    int *am[2];
    for (int m = 0; m < 2; m++) {
        z[m] = mallocCheck((bE ? bE : 1) * sizeof(double));
        dz[m] = callocCheck(bE ? bE : 1, sizeof(double));
        P[m] = mallocCheck((bK ? bK : 1) * sizeof(double));
        dP[m] = callocCheck(bK ? bK : 1, sizeof(double));
        am[m] = mallocCheck(((size_t)b ? (size_t)b : 1) * sizeof(int));
        for (size_t i = 0; i < bE; i++) z[m][i] = zin[m][i];
        for (int i = 0; i < b; i++) {   // p = softmax(l); argmax, ties to the lowest cluster
            const float *l = lin[m] + (size_t)i * K;
            double *p = P[m] + (size_t)i * K, mx = -INFINITY, sum = 0.0;
            int best = 0;
            for (int c = 0; c < K; c++) {
                mx = fmax(mx, (double)l[c]);
                if (l[c] > l[best]) best = c;
            }
            for (int c = 0; c < K; c++) sum += (p[c] = exp((double)l[c] - mx));
            for (int c = 0; c < K; c++) p[c] /= sum;
            am[m][i] = best;
        }
    }
    const double logs_d = (double)logs[0], e_logs = exp(logs_d);
    const double scale = e_logs < cfg->scale_max ? e_logs : cfg->scale_max;
    double ds;

    // L_ins = CL(z^I, z^T; s); torch.clamp(max) passes the gradient where exp(logs) <= max
    double *ga = mallocCheck((bE ? bE : 1) * sizeof(double)), *gb = mallocCheck((bE ? bE : 1) * sizeof(double));
    const double ins = contrastive(ga, gb, &ds, z[0], z[1], b, E, scale);
    const double dlogs_d = e_logs <= cfg->scale_max ? cfg->w_ins * ds * e_logs : 0.0;
    for (size_t i = 0; i < bE; i++) dz[0][i] += cfg->w_ins * ga[i], dz[1][i] += cfg->w_ins * gb[i];
    free(ga);
    free(gb);

    // L_ass: rows = clusters, normalize(pᵀ) (columns of p as instances), then CL(·; 1/τ_a)
    {
        const size_t Kb = (size_t)K * b;
        double *A[2], *An[2], *nA[2], *gA[2];
        for (int m = 0; m < 2; m++) {
            A[m] = mallocCheck((Kb ? Kb : 1) * sizeof(double));
            An[m] = mallocCheck((Kb ? Kb : 1) * sizeof(double));
            gA[m] = mallocCheck((Kb ? Kb : 1) * sizeof(double));
            nA[m] = mallocCheck(((size_t)K ? (size_t)K : 1) * sizeof(double));
            for (int c = 0; c < K; c++)
                for (int i = 0; i < b; i++) A[m][(size_t)c * b + i] = P[m][(size_t)i * K + c];
            rownorm(An[m], nA[m], A[m], K, b);
        }
        const double ass_scale = 1.0 / (cfg->tau_a > 1e-6 ? cfg->tau_a : 1e-6);
        const double ass = contrastive(gA[0], gA[1], &ds, An[0], An[1], K, b, ass_scale);
        terms[2] = ass;
        for (int m = 0; m < 2; m++) {
            rownorm_backward(gA[m], gA[m], An[m], nA[m], K, b);
            for (int c = 0; c < K; c++)
                for (int i = 0; i < b; i++) dP[m][(size_t)i * K + c] += cfg->w_ass * gA[m][(size_t)c * b + i];
            free(A[m]), free(An[m]), free(gA[m]), free(nA[m]);
        }
    }

    // L_ctr: centres from each modality's own argmax, over clusters non-empty in both
    {
        double *mu[2], *wsum[2];
        for (int m = 0; m < 2; m++) {
            mu[m] = callocCheck((size_t)K * E + 1, sizeof(double));
            wsum[m] = callocCheck((size_t)K ? (size_t)K : 1, sizeof(double));
            for (int i = 0; i < b; i++) {   // rows in order: a fixed summation order
                const int c = am[m][i];
                const double w = P[m][(size_t)i * K + c];
                wsum[m][c] += w;
                for (int e = 0; e < E; e++) mu[m][(size_t)c * E + e] += w * z[m][(size_t)i * E + e];
            }
        }
        int *vid = mallocCheck(((size_t)K ? (size_t)K : 1) * sizeof(int)), nv = 0;
        for (int c = 0; c < K; c++)
            if (wsum[0][c] > 1e-8 && wsum[1][c] > 1e-8) vid[nv++] = c;
        double ctr = 0.0;
        if (nv >= 2) {
            const size_t vE = (size_t)nv * E;
            double *cm[2], *gc[2];
            for (int m = 0; m < 2; m++) {
                cm[m] = mallocCheck(vE * sizeof(double));
                gc[m] = mallocCheck(vE * sizeof(double));
                for (int v = 0; v < nv; v++)
                    memcpy(cm[m] + (size_t)v * E, mu[m] + (size_t)vid[v] * E, (size_t)E * sizeof(double));
            }
            const double ctr_scale = 1.0 / (cfg->tau_c > 1e-6 ? cfg->tau_c : 1e-6);
            ctr = contrastive(gc[0], gc[1], &ds, cm[0], cm[1], nv, E, ctr_scale);
            // μ_c = Σ_i [a_i = c] p_ic z_i: dz_i += p_{i,a_i} dμ_{a_i}, dp_{i,a_i} += z_i·dμ_{a_i}
            int *slot = mallocCheck((size_t)K * sizeof(int));
            for (int c = 0; c < K; c++) slot[c] = -1;
            for (int v = 0; v < nv; v++) slot[vid[v]] = v;
            for (int m = 0; m < 2; m++) {
                for (int i = 0; i < b; i++) {
                    const int c = am[m][i], v = slot[c];
                    if (v < 0) continue;
                    const double *g = gc[m] + (size_t)v * E, w = P[m][(size_t)i * K + c];
                    double dot = 0.0;
                    for (int e = 0; e < E; e++) {
                        dz[m][(size_t)i * E + e] += cfg->w_ctr * w * g[e];
                        dot += z[m][(size_t)i * E + e] * g[e];
                    }
                    dP[m][(size_t)i * K + c] += cfg->w_ctr * dot;
                }
                free(cm[m]), free(gc[m]);
            }
            free(slot);
        }
        terms[3] = ctr;
        free(vid);
        for (int m = 0; m < 2; m++) free(mu[m]), free(wsum[m]);
    }

    // L_bal with the histogram as it is before this step's update
    {
        double *w = mallocCheck(((size_t)K ? (size_t)K : 1) * sizeof(double)), hs = 0.0, wm = 0.0;
        const double fl = cfg->bal_floor > 1e-8 ? cfg->bal_floor : 1e-8;
        for (int c = 0; c < K; c++) hs += fmax((double)hist[c], fl);
        hs = hs > 1e-8 ? hs : 1e-8;
        for (int c = 0; c < K; c++) {
            double ht = fmax((double)hist[c], fl) / hs;
            w[c] = fmin((1.0 / K) / ht, cfg->bal_max_w);
            wm += w[c];
        }
        wm /= K;
        wm = wm > 1e-8 ? wm : 1e-8;
        double bal = 0.0;
        for (int m = 0; m < 2; m++)
            for (int c = 0; c < K; c++) {
                double pb = 0.0;
                for (int i = 0; i < b; i++) pb += P[m][(size_t)i * K + c];
                pb /= b;
                const double pc = pb > 1e-8 ? pb : 1e-8, wc = w[c] / wm;
                bal += wc * pc * log(pc);
                if (pb >= 1e-8) {   // torch.clamp(min) passes the gradient where x >= min
                    const double g = cfg->w_bal * wc * (log(pc) + 1.0) / b;
                    for (int i = 0; i < b; i++) dP[m][(size_t)i * K + c] += g;
                }
            }
        terms[4] = bal;
        free(w);
    }
    terms[1] = ins;
    terms[0] = cfg->w_ins * ins + cfg->w_ass * terms[2] + cfg->w_ctr * terms[3] + cfg->w_bal * terms[4];

    // softmax backward: dl = p ⊙ (dp − Σ_c p_c dp_c)
    float *dl[2] = {dli, dlt}, *dzo[2] = {dzi, dzt};
    for (int m = 0; m < 2; m++) {
        for (int i = 0; i < b; i++) {
            const double *p = P[m] + (size_t)i * K, *g = dP[m] + (size_t)i * K;
            double dot = 0.0;
            for (int c = 0; c < K; c++) dot += p[c] * g[c];
            for (int c = 0; c < K; c++) dl[m][(size_t)i * K + c] = (float)(p[c] * (g[c] - dot));
        }
        for (size_t i = 0; i < bE; i++) dzo[m][i] = (float)dz[m][i];
    }
    dlogs[0] = (float)dlogs_d;

    // the balance histogram: EMA of this batch's argmax p^I counts, renormalised
    {
        double *h = mallocCheck(((size_t)K ? (size_t)K : 1) * sizeof(double)), hs = 0.0;
        const double mo = cfg->bal_momentum, nb = b > 1 ? (double)b : 1.0;
        for (int c = 0; c < K; c++) h[c] = 0.0;
        for (int i = 0; i < b; i++) h[am[0][i]] += 1.0;
        for (int c = 0; c < K; c++) hs += (h[c] = mo * hist[c] + (1.0 - mo) * (h[c] / nb));
        hs = hs > 1e-8 ? hs : 1e-8;
        for (int c = 0; c < K; c++) hist[c] = (float)(h[c] / hs);
        free(h);
    }
    for (int m = 0; m < 2; m++) free(z[m]), free(dz[m]), free(P[m]), free(dP[m]), free(am[m]);
}

// --- stage 2 ------------------------------------------------------------------------------------

void seic_self_loss_forward_backward_cpu(double *loss, float *dls, float *w, int32_t *yhat,
                                         double *st, const float *lw, const float *ls, int b,
                                         int K, double momentum) {
    double *conf = mallocCheck(((size_t)b ? (size_t)b : 1) * sizeof *conf);
    int *y = mallocCheck(((size_t)b ? (size_t)b : 1) * sizeof *y);
    double cm = 0.0, cv = 0.0;
    for (int i = 0; i < b; i++) {   // max of softmax(lw_i) = 1 / Σ exp(l − max l)
        const float *l = lw + (size_t)i * K;
        int best = 0;
        for (int c = 1; c < K; c++)
            if (l[c] > l[best]) best = c;
        double sum = 0.0;
        for (int c = 0; c < K; c++) sum += exp((double)l[c] - (double)l[best]);
        conf[i] = 1.0 / sum;
        y[i] = best;
        cm += conf[i];
    }
    if (b > 0) {
        cm /= b;
        for (int i = 0; i < b; i++) cv += (conf[i] - cm) * (conf[i] - cm);
        cv /= b;   // biased (unbiased=False)
        cv = cv > 1e-6 ? cv : 1e-6;
        if (st[2] == 0.0) {
            st[0] = cm, st[1] = cv, st[2] = 1.0;
        } else {
            st[0] = momentum * st[0] + (1.0 - momentum) * cm;
            st[1] = momentum * st[1] + (1.0 - momentum) * cv;
        }
    }
    const double mean = st[0], var = st[1] > 1e-6 ? st[1] : 1e-6;
    double L = 0.0;
    for (int i = 0; i < b; i++) {
        const double wi = conf[i] < mean ? exp(-(conf[i] - mean) * (conf[i] - mean) / (2.0 * var)) : 1.0;
        const float *l = ls + (size_t)i * K;
        double mx = -INFINITY, sum = 0.0;
        for (int c = 0; c < K; c++) mx = fmax(mx, (double)l[c]);
        for (int c = 0; c < K; c++) sum += exp((double)l[c] - mx);
        L += wi * (mx + log(sum) - (double)l[y[i]]);
        for (int c = 0; c < K; c++)
            dls[(size_t)i * K + c] = (float)(wi * (exp((double)l[c] - mx) / sum - (c == y[i])) / b);
        if (w) w[i] = (float)wi;
        if (yhat) yhat[i] = y[i];
    }
    loss[0] = b > 0 ? L / b : 0.0;
    free(conf);
    free(y);
}
