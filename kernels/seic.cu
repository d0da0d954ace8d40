/*
 * seic.cu — the SEIC losses on the GPU (SPEC §9.3; semantics in host/ops.h, CPU reference
 * host/cpu/seic.c): seic_align_loss_forward_backward (stage 1) and
 * seic_self_loss_forward_backward (stage 2).
 *
 * Stage 1, in kernels on the calling thread's stream (no host synchronisation, no allocation
 * after the first call at a size: the step can be captured into a CUDA graph):
 *   softmax + argmax per row (p, a) for both modalities; dz, dl start at 0 and collect +=
 *   L_ins   ẑ = rownorm(z); S = ẑ_I ẑ_Tᵀ (cuBLAS fp32, b×b); row and column log-sum-exp of
 *           s·S; loss; dS and Σ dlogit·S (the log-scale gradient); dẑ_I = dS ẑ_T,
 *           dẑ_T = dSᵀ ẑ_I; back through rownorm into dz
 *   L_ass   A = rownorm(rownorm(pᵀ)) (K×b, two normalisations as V4C); the same contrastive
 *           steps at scale 1/τ_a; back through both normalisations, transposed into dp
 *   L_ctr   μ_c = Σ_{i: a_i = c} p_ic z_i (one thread per (c, e), rows in order), valid where
 *           both modalities' weights exceed 1e-8; the contrastive steps over all K rows with
 *           the invalid rows and columns masked out (so no host needs the count); back into
 *           dz and dp along each row's own cluster
 *   L_bal   column means of p, the histogram's weights, the loss and its dp (one block)
 *   dl      softmax backward; then the histogram update from a_I (one block); terms, dlog s
 * The contrastive term's mean divides by the number of valid rows (a device value).
 *
 * Stage 2: per-row softmax max/argmax of the weak logits, the batch mean and biased variance
 * (one block, fixed order), the EMA update of st (device doubles), then per row the weight,
 * the CE of the strong logits and its gradient, and the mean (one block).
 *
 * Precision: fp32 operands and GEMMs (cuBLAS, TF32 off), double for every sum of a loss,
 * norm or dot product. Determinism: no atomics; each reduction has a fixed order (threads
 * stride over the sum's index, then a fixed tree), so reruns are bitwise equal. Agreement with
 * the CPU's double reference: ≈1e-6 relative (tests/gpu/test_seic_gpu.c).
 *
 * Status: compiled for sm_90, unverified on hardware.
 */
#include "common.cuh"

namespace {

#define BLOCK 256

// --- block reductions (fixed order) ------------------------------------------------------------
__device__ double block_sum(double v, double *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int h = blockDim.x / 2; h > 0; h >>= 1) {
        if ((int)threadIdx.x < h) sh[threadIdx.x] += sh[threadIdx.x + h];
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

__device__ double block_max(double v, double *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int h = blockDim.x / 2; h > 0; h >>= 1) {
        if ((int)threadIdx.x < h) sh[threadIdx.x] = fmax(sh[threadIdx.x], sh[threadIdx.x + h]);
        __syncthreads();
    }
    double r = sh[0];
    __syncthreads();
    return r;
}

// --- GEMMs: matmul.cu's laic_gemm in fp32 (cuBLAS, TF32 off), row-major wrappers ------------
// C (M,N) = A (M,K) · B (N,K)ᵀ
void gemm_nt(float *C, const float *A, const float *B, int M, int N, int K) {
    laic_gemm(CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, 1.0f, B, K, nullptr, A, K, nullptr, 0.0f, C, N, GEMM_FP32);
}
// C (M,N) = A (M,K) · B (K,N)
void gemm_nn(float *C, const float *A, const float *B, int M, int N, int K) {
    laic_gemm(CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, 1.0f, B, N, nullptr, A, K, nullptr, 0.0f, C, N, GEMM_FP32);
}
// C (M,N) = A (K,M)ᵀ · B (K,N)
void gemm_tn(float *C, const float *A, const float *B, int M, int N, int K) {
    laic_gemm(CUBLAS_OP_N, CUBLAS_OP_T, N, M, K, 1.0f, B, N, nullptr, A, M, nullptr, 0.0f, C, N, GEMM_FP32);
}

// --- row normalisation (F.normalize, floor 1e-12) ----------------------------------------------
// y (n,d) = x / max(‖x‖, 1e-12); nrm (n) = that divisor. One block per row.
__global__ void rownorm_kernel1(float *y, float *nrm, const float *x, int n, int d) {
    __shared__ double sh[BLOCK];
    const int i = blockIdx.x;
    const float *xi = x + (size_t)i * d;
    double s = 0.0;
    for (int e = threadIdx.x; e < d; e += blockDim.x) s += (double)xi[e] * xi[e];
    s = block_sum(s, sh);
    const double r = fmax(sqrt(s), 1e-12);
    for (int e = threadIdx.x; e < d; e += blockDim.x) y[(size_t)i * d + e] = (float)(xi[e] / r);
    if (threadIdx.x == 0) nrm[i] = (float)r;
}

// dx (n,d) (+)= w · (dy − y (y·dy)) / nrm (nrm > 1e-12), else w · dy / nrm. acc: += or =.
// dx may equal dy when acc = 0.
__global__ void rownorm_backward_kernel1(float *dx, const float *dy, const float *y,
                                         const float *nrm, int n, int d, float w, int acc) {
    __shared__ double sh[BLOCK];
    const int i = blockIdx.x;
    const float *yi = y + (size_t)i * d, *gi = dy + (size_t)i * d;
    double dot = 0.0;
    for (int e = threadIdx.x; e < d; e += blockDim.x) dot += (double)yi[e] * gi[e];
    dot = block_sum(dot, sh);
    const double r = nrm[i];
    for (int e = threadIdx.x; e < d; e += blockDim.x) {
        double g = r > 1e-12 ? ((double)gi[e] - (double)yi[e] * dot) / r : (double)gi[e] / r;
        float v = (float)(w * g);
        float *o = dx + (size_t)i * d + e;
        *o = acc ? *o + v : v;
    }
}

// --- the contrastive term CL(Â, B̂; s) on normalised rows ------------------------------------------
__device__ __forceinline__ bool ok_row(const uint8_t *mask, int i) { return !mask || mask[i]; }

// lse (n): log Σ_j exp(s·S_ij) over valid j (rows, cols = 0) or log Σ_i exp(s·S_ij) (cols = 1).
__global__ void lse_kernel1(float *lse, const float *S, int n, const double *scale,
                            const uint8_t *mask, int cols) {
    __shared__ double sh[BLOCK];
    const int i = blockIdx.x;
    const double sc = *scale;
    double mx = -INFINITY;
    for (int j = threadIdx.x; j < n; j += blockDim.x)
        if (ok_row(mask, j)) mx = fmax(mx, sc * (double)(cols ? S[(size_t)j * n + i] : S[(size_t)i * n + j]));
    mx = block_max(mx, sh);
    double s = 0.0;
    for (int j = threadIdx.x; j < n; j += blockDim.x)
        if (ok_row(mask, j)) s += exp(sc * (double)(cols ? S[(size_t)j * n + i] : S[(size_t)i * n + j]) - mx);
    s = block_sum(s, sh);
    if (threadIdx.x == 0) lse[i] = (float)(mx + log(s));
}

// nvalid (1) int: rows with mask set (n when mask is NULL). One thread.
__global__ void count_kernel1(int *nvalid, const uint8_t *mask, int n) {
    if (threadIdx.x || blockIdx.x) return;
    int c = 0;
    for (int i = 0; i < n; i++) c += ok_row(mask, i);
    *nvalid = c;
}

// loss (1) = Σ_valid i (lse_r[i] + lse_c[i] − 2 s S_ii) / (2 nv); 0 when nv < 2. One block.
__global__ void ce_loss_kernel1(double *loss, const float *lse_r, const float *lse_c,
                                const float *S, int n, const double *scale, const uint8_t *mask,
                                const int *nvalid) {
    __shared__ double sh[BLOCK];
    const double sc = *scale;
    const int nv = nvalid ? *nvalid : n;
    double s = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
        if (ok_row(mask, i))
            s += (double)lse_r[i] + (double)lse_c[i] - 2.0 * sc * (double)S[(size_t)i * n + i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0) *loss = nv >= 2 ? s / (2.0 * nv) : 0.0;
}

// S := dL/dS in place, part[i] = Σ_j dL/dlogit_ij · S_ij. One block per row.
__global__ void ce_grad_kernel1(float *S, double *part, const float *lse_r, const float *lse_c,
                                int n, const double *scale, const uint8_t *mask,
                                const int *nvalid) {
    __shared__ double sh[BLOCK];
    const int i = blockIdx.x;
    const double sc = *scale;
    const int nv = nvalid ? *nvalid : n;
    const bool vi = ok_row(mask, i) && nv >= 2;
    double acc = 0.0;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        float *sij = S + (size_t)i * n + j;
        double g = 0.0;
        if (vi && ok_row(mask, j)) {
            const double lg = sc * (double)*sij, d = i == j ? 1.0 : 0.0;
            g = ((exp(lg - (double)lse_r[i]) - d) + (exp(lg - (double)lse_c[j]) - d)) / (2.0 * nv);
            acc += g * (double)*sij;
        }
        *sij = (float)(g * sc);
    }
    acc = block_sum(acc, sh);
    if (threadIdx.x == 0) part[i] = acc;
}

// out (1) = Σ part (n), fixed order. One block.
__global__ void sum_kernel1(double *out, const double *part, int n) {
    __shared__ double sh[BLOCK];
    double s = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += part[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0) *out = s;
}

struct CLScratch {
    float *S;        // (n,n)
    float *lse_r, *lse_c;   // (n)
    double *part;    // (n)
    int *nvalid;     // (1)
};

// loss, dscale (device doubles); dAh, dBh (n,d) = gradients w.r.t. the normalised rows
// [overwrite]; Ah, Bh (n,d) normalised rows; scale device double; mask (n) or NULL.
void contrastive(double *loss, double *dscale, float *dAh, float *dBh, const float *Ah,
                 const float *Bh, int n, int d, const double *scale, const uint8_t *mask,
                 const CLScratch &w) {
    gemm_nt(w.S, Ah, Bh, n, n, d);
    lse_kernel1<<<n, BLOCK>>>(w.lse_r, w.S, n, scale, mask, 0);
    launchCheck();
    lse_kernel1<<<n, BLOCK>>>(w.lse_c, w.S, n, scale, mask, 1);
    launchCheck();
    count_kernel1<<<1, 1>>>(w.nvalid, mask, n);
    launchCheck();
    ce_loss_kernel1<<<1, BLOCK>>>(loss, w.lse_r, w.lse_c, w.S, n, scale, mask, w.nvalid);
    launchCheck();
    ce_grad_kernel1<<<n, BLOCK>>>(w.S, w.part, w.lse_r, w.lse_c, n, scale, mask, w.nvalid);
    launchCheck();
    sum_kernel1<<<1, BLOCK>>>(dscale, w.part, n);
    launchCheck();
    gemm_nn(dAh, w.S, Bh, n, d, n);   // dÂ = dS B̂
    gemm_tn(dBh, w.S, Ah, n, d, n);   // dB̂ = dSᵀ Â
}

// --- stage-1 pieces ------------------------------------------------------------------------------

// p (b,K) = softmax(l), a (b) = argmax (ties to the lowest). One block per row.
__global__ void softmax_argmax_kernel1(float *p, int *a, const float *l, int b, int K) {
    __shared__ double sh[BLOCK];
    const int i = blockIdx.x;
    const float *li = l + (size_t)i * K;
    double mx = -INFINITY;
    for (int c = threadIdx.x; c < K; c += blockDim.x) mx = fmax(mx, (double)li[c]);
    mx = block_max(mx, sh);
    double s = 0.0;
    for (int c = threadIdx.x; c < K; c += blockDim.x) s += exp((double)li[c] - mx);
    s = block_sum(s, sh);
    for (int c = threadIdx.x; c < K; c += blockDim.x)
        p[(size_t)i * K + c] = (float)(exp((double)li[c] - mx) / s);
    if (threadIdx.x == 0) {   // the first column holding the maximum (serial: exact tie rule)
        int best = 0;
        for (int c = 1; c < K; c++)
            if (li[c] > li[best]) best = c;
        a[i] = best;
    }
}

// out (c,r) = in (r,c)ᵀ
__global__ void transpose_kernel1(float *out, const float *in, int r, int c) {
    const size_t n = (size_t)r * c;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x) {
        const size_t i = k / c, j = k % c;
        out[j * r + i] = in[k];
    }
}

// dp (b,K) += w · g (K,b)ᵀ
__global__ void transpose_add_kernel1(float *dp, const float *g, int b, int K, float w) {
    const size_t n = (size_t)b * K;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x) {
        const size_t i = k / K, c = k % K;
        dp[k] += w * g[c * b + i];
    }
}

// mu (K,E) = Σ_{i: a_i = c} p_ic z_i, wsum (K) = Σ_{i: a_i = c} p_ic, rows in order.
__global__ void centres_kernel1(float *mu, float *wsum, const float *z, const float *p,
                                const int *a, int b, int K, int E) {
    const size_t n = (size_t)K * E;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x) {
        const int c = (int)(k / E), e = (int)(k % E);
        double s = 0.0, ws = 0.0;
        for (int i = 0; i < b; i++)
            if (a[i] == c) {
                const double w = p[(size_t)i * K + c];
                s += w * (double)z[(size_t)i * E + e];
                ws += w;
            }
        mu[k] = (float)s;
        if (e == 0) wsum[c] = (float)ws;
    }
}

__global__ void valid_kernel1(uint8_t *valid, const float *w0, const float *w1, int K) {
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < K; c += gridDim.x * blockDim.x)
        valid[c] = w0[c] > 1e-8f && w1[c] > 1e-8f;
}

// Back through μ along each row's own cluster: dz_i += w p_{i,a} dμ_a, dp_{i,a} += w z_i·dμ_a.
// One block per row.
__global__ void centres_backward_kernel1(float *dz, float *dp, const float *dmu, const float *z,
                                         const float *p, const int *a, const uint8_t *valid,
                                         int b, int K, int E, float w) {
    __shared__ double sh[BLOCK];
    const int i = blockIdx.x, c = a[i];
    if (!valid[c]) return;   // uniform per block: the reduction below is skipped by all
    const double pw = p[(size_t)i * K + c];
    double dot = 0.0;
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
        const double g = dmu[(size_t)c * E + e];
        dz[(size_t)i * E + e] += (float)(w * pw * g);
        dot += (double)z[(size_t)i * E + e] * g;
    }
    dot = block_sum(dot, sh);
    if (threadIdx.x == 0) dp[(size_t)i * K + c] += (float)(w * dot);
}

// L_bal and its gradient: bal (1) double; gcol (2,K) = ∂(w_bal L_bal)/∂p_ic (the same for every
// row i: w_bal w_c (log p̄_c + 1) / b where p̄_c >= 1e-8). One block.
__global__ void balance_kernel1(double *bal, float *gcol, const float *pI, const float *pT,
                                const float *hist, int b, int K, SeicLossCfg cfg) {
    __shared__ double sh[BLOCK];
    const double fl = fmax(cfg.bal_floor, 1e-8);
    double hs = 0.0;
    for (int c = threadIdx.x; c < K; c += blockDim.x) hs += fmax((double)hist[c], fl);
    hs = fmax(block_sum(hs, sh), 1e-8);
    double wm = 0.0;
    for (int c = threadIdx.x; c < K; c += blockDim.x)
        wm += fmin((1.0 / K) / (fmax((double)hist[c], fl) / hs), cfg.bal_max_w);
    wm = fmax(block_sum(wm, sh) / K, 1e-8);
    double L = 0.0;
    for (int m = 0; m < 2; m++) {
        const float *p = m ? pT : pI;
        for (int c = threadIdx.x; c < K; c += blockDim.x) {
            const double wc = fmin((1.0 / K) / (fmax((double)hist[c], fl) / hs), cfg.bal_max_w) / wm;
            double pb = 0.0;
            for (int i = 0; i < b; i++) pb += p[(size_t)i * K + c];
            pb /= b;
            const double pc = fmax(pb, 1e-8);
            L += wc * pc * log(pc);
            gcol[m * K + c] = pb >= 1e-8 ? (float)(cfg.w_bal * wc * (log(pc) + 1.0) / b) : 0.0f;
        }
    }
    L = block_sum(L, sh);
    if (threadIdx.x == 0) *bal = L;
}

// dp (b,K) += g (K) on every row
__global__ void add_rows_kernel1(float *dp, const float *g, int b, int K) {
    const size_t n = (size_t)b * K;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < n; k += (size_t)gridDim.x * blockDim.x)
        dp[k] += g[k % K];
}

// dl = p ⊙ (dp − Σ_c p_c dp_c). One block per row.
__global__ void softmax_backward_kernel1(float *dl, const float *dp, const float *p, int b, int K) {
    __shared__ double sh[BLOCK];
    const int i = blockIdx.x;
    const float *pi = p + (size_t)i * K, *gi = dp + (size_t)i * K;
    double dot = 0.0;
    for (int c = threadIdx.x; c < K; c += blockDim.x) dot += (double)pi[c] * gi[c];
    dot = block_sum(dot, sh);
    for (int c = threadIdx.x; c < K; c += blockDim.x)
        dl[(size_t)i * K + c] = (float)((double)pi[c] * ((double)gi[c] - dot));
}

// The histogram update from a (b): h = renorm(m h + (1 − m) counts / max(b, 1)); hn (K)
// scratch. One block.
__global__ void hist_kernel1(float *hist, double *hn, const int *a, int b, int K, double mo) {
    __shared__ double sh[BLOCK];
    double hs = 0.0;
    for (int c = threadIdx.x; c < K; c += blockDim.x) {
        int cnt = 0;
        for (int i = 0; i < b; i++) cnt += a[i] == c;
        hn[c] = mo * (double)hist[c] + (1.0 - mo) * ((double)cnt / (b > 1 ? b : 1));
        hs += hn[c];
    }
    hs = fmax(block_sum(hs, sh), 1e-8);
    for (int c = threadIdx.x; c < K; c += blockDim.x) hist[c] = (float)(hn[c] / hs);
}

// s[0] = min(exp(log s), cap) (the instance scale), s[1] = 1/max(τ_a, 1e-6), s[2] = 1/max(τ_c, 1e-6)
__global__ void scales_kernel1(double *s, const float *logs, double cap, double ta, double tc) {
    if (threadIdx.x || blockIdx.x) return;
    const double e = exp((double)logs[0]);
    s[0] = e < cap ? e : cap;
    s[1] = 1.0 / fmax(ta, 1e-6);
    s[2] = 1.0 / fmax(tc, 1e-6);
}

// terms (5) and dlog s from the parts: q = {ins, ass, ctr, bal, dscale_ins, ...}
__global__ void finish_kernel1(double *terms, float *dlogs, const double *q, const float *logs,
                               SeicLossCfg cfg) {
    if (threadIdx.x || blockIdx.x) return;
    terms[1] = q[0], terms[2] = q[1], terms[3] = q[2], terms[4] = q[3];
    terms[0] = cfg.w_ins * q[0] + cfg.w_ass * q[1] + cfg.w_ctr * q[2] + cfg.w_bal * q[3];
    const double e = exp((double)logs[0]);
    dlogs[0] = e <= cfg.scale_max ? (float)(cfg.w_ins * q[4] * e) : 0.0f;
}

// --- stage 2 -------------------------------------------------------------------------------------
// conf (b) double, y (b): max and argmax of softmax(lw_i). One block per row.
__global__ void conf_kernel1(double *conf, int32_t *y, const float *lw, int K) {
    __shared__ double sh[BLOCK];
    const int i = blockIdx.x;
    const float *l = lw + (size_t)i * K;
    __shared__ int best;
    if (threadIdx.x == 0) {
        int bb = 0;
        for (int c = 1; c < K; c++)
            if (l[c] > l[bb]) bb = c;
        best = bb;
    }
    __syncthreads();
    double s = 0.0;
    for (int c = threadIdx.x; c < K; c += blockDim.x) s += exp((double)l[c] - (double)l[best]);
    s = block_sum(s, sh);
    if (threadIdx.x == 0) conf[i] = 1.0 / s, y[i] = best;
}

// The EMA update of st = {mean, var, initialised} with the batch mean and biased variance.
__global__ void conf_ema_kernel1(double *st, const double *conf, int b, double mo) {
    __shared__ double sh[BLOCK];
    double s = 0.0;
    for (int i = threadIdx.x; i < b; i += blockDim.x) s += conf[i];
    const double m = block_sum(s, sh) / b;
    double v = 0.0;
    for (int i = threadIdx.x; i < b; i += blockDim.x) v += (conf[i] - m) * (conf[i] - m);
    v = fmax(block_sum(v, sh) / b, 1e-6);
    if (threadIdx.x == 0) {
        if (st[2] == 0.0) {
            st[0] = m, st[1] = v, st[2] = 1.0;
        } else {
            st[0] = mo * st[0] + (1.0 - mo) * m;
            st[1] = mo * st[1] + (1.0 - mo) * v;
        }
    }
}

// Per row: w_i, CE(ls_i, y_i) · w_i into part[i], dls. One block per row.
__global__ void self_ce_kernel1(double *part, float *dls, float *w, const double *st,
                                const double *conf, const int32_t *y, const float *ls, int b, int K) {
    __shared__ double sh[BLOCK];
    const int i = blockIdx.x;
    const double mean = st[0], var = fmax(st[1], 1e-6), ci = conf[i];
    const double wi = ci < mean ? exp(-(ci - mean) * (ci - mean) / (2.0 * var)) : 1.0;
    const float *l = ls + (size_t)i * K;
    double mx = -INFINITY;
    for (int c = threadIdx.x; c < K; c += blockDim.x) mx = fmax(mx, (double)l[c]);
    mx = block_max(mx, sh);
    double s = 0.0;
    for (int c = threadIdx.x; c < K; c += blockDim.x) s += exp((double)l[c] - mx);
    s = block_sum(s, sh);
    const int yi = y[i];
    for (int c = threadIdx.x; c < K; c += blockDim.x)
        dls[(size_t)i * K + c] = (float)(wi * (exp((double)l[c] - mx) / s - (c == yi ? 1.0 : 0.0)) / b);
    if (threadIdx.x == 0) {
        part[i] = wi * (mx + log(s) - (double)l[yi]);
        if (w) w[i] = (float)wi;
    }
}

__global__ void mean_kernel1(double *out, const double *part, int b) {
    __shared__ double sh[BLOCK];
    double s = 0.0;
    for (int i = threadIdx.x; i < b; i += blockDim.x) s += part[i];
    s = block_sum(s, sh);
    if (threadIdx.x == 0) *out = b > 0 ? s / b : 0.0;
}

// --- scratch -------------------------------------------------------------------------------------
ScratchBuf g_scratch;

// Carves slots (each 256-byte aligned) from base; with base NULL it only measures the layout.
struct Carver {
    char *base;
    size_t off;
    void *take(size_t bytes) {
        void *p = base ? base + off : nullptr;
        off += (bytes + 255) / 256 * 256;
        return p;
    }
};

}   // namespace

void seic_align_loss_forward_backward(double *terms, float *dzi, float *dzt, float *dli,
                                      float *dlt, float *dlogs, float *hist, const float *zi,
                                      const float *zt, const float *li, const float *lt,
                                      const float *logs, int b, int K, int E,
                                      const SeicLossCfg *cfg) {
    cudaAssert(b >= 1 && K >= 1 && E >= 1, "seic_align_loss: sizes");
    const size_t bE = (size_t)b * E, bK = (size_t)b * K, KE = (size_t)K * E;
    const size_t n = (size_t)(b > K ? b : K), dmax = (size_t)(b > E ? b : E);
    float *zh[2], *nz[2], *P[2], *dP[2], *A1[2], *A2[2], *n1[2], *n2[2], *mu[2], *muh[2], *wsum[2];
    float *nmu[2], *dA, *dB, *gcol;
    int *a[2];
    uint8_t *valid;
    double *q, *hn;
    CLScratch w;
    // two passes: sizes from a null base, then the pointers into the grown scratch
    char *base = nullptr;
    for (int pass = 0; pass < 2; pass++) {
        Carver cv = {base, 0};
        for (int m = 0; m < 2; m++) {
            zh[m] = (float *)cv.take(bE * 4);
            nz[m] = (float *)cv.take((size_t)b * 4);
            P[m] = (float *)cv.take(bK * 4);
            a[m] = (int *)cv.take((size_t)b * 4);
            dP[m] = (float *)cv.take(bK * 4);
            A1[m] = (float *)cv.take(bK * 4);   // (K,b) after the first normalisation
            A2[m] = (float *)cv.take(bK * 4);   // pᵀ, then after the second
            n1[m] = (float *)cv.take((size_t)K * 4);
            n2[m] = (float *)cv.take((size_t)K * 4);
            mu[m] = (float *)cv.take(KE * 4);
            muh[m] = (float *)cv.take(KE * 4);
            wsum[m] = (float *)cv.take((size_t)K * 4);
            nmu[m] = (float *)cv.take((size_t)K * 4);
        }
        dA = (float *)cv.take(n * dmax * 4);   // the contrastive gradients (n,d)
        dB = (float *)cv.take(n * dmax * 4);
        valid = (uint8_t *)cv.take((size_t)K);
        w.S = (float *)cv.take(n * n * 4);
        w.lse_r = (float *)cv.take(n * 4);
        w.lse_c = (float *)cv.take(n * 4);
        w.part = (double *)cv.take(n * 8);
        w.nvalid = (int *)cv.take(4);
        gcol = (float *)cv.take((size_t)2 * K * 4);
        hn = (double *)cv.take((size_t)K * 8);
        q = (double *)cv.take(16 * 8);   // ins ass ctr bal, ds_ins ds_ass ds_ctr, -, scales (3)
        if (pass == 0)
            base = (char *)scratch_get(&g_scratch, cv.off, "seic_align_loss_forward_backward");
    }
    double *scales = q + 8;
    const float *z[2] = {zi, zt}, *l[2] = {li, lt};
    float *dz[2] = {dzi, dzt}, *dl[2] = {dli, dlt};
    const SeicLossCfg c = *cfg;

    scales_kernel1<<<1, 1>>>(scales, logs, c.scale_max, c.tau_a, c.tau_c);
    launchCheck();
    for (int m = 0; m < 2; m++) {
        cudaCheck(cudaMemsetAsync(dz[m], 0, bE * 4, cudaStreamPerThread));
        cudaCheck(cudaMemsetAsync(dP[m], 0, bK * 4, cudaStreamPerThread));
        softmax_argmax_kernel1<<<b, BLOCK>>>(P[m], a[m], l[m], b, K);
        launchCheck();
        rownorm_kernel1<<<b, BLOCK>>>(zh[m], nz[m], z[m], b, E);
        launchCheck();
    }
    // L_ins
    contrastive(&q[0], &q[4], dA, dB, zh[0], zh[1], b, E, &scales[0], nullptr, w);
    rownorm_backward_kernel1<<<b, BLOCK>>>(dz[0], dA, zh[0], nz[0], b, E, (float)c.w_ins, 1);
    launchCheck();
    rownorm_backward_kernel1<<<b, BLOCK>>>(dz[1], dB, zh[1], nz[1], b, E, (float)c.w_ins, 1);
    launchCheck();
    // L_ass: A = rownorm(rownorm(pᵀ)), (K,b)
    for (int m = 0; m < 2; m++) {
        transpose_kernel1<<<grid_for(bK, BLOCK), BLOCK>>>(A2[m], P[m], b, K);
        launchCheck();
        rownorm_kernel1<<<K, BLOCK>>>(A1[m], n1[m], A2[m], K, b);
        launchCheck();
        rownorm_kernel1<<<K, BLOCK>>>(A2[m], n2[m], A1[m], K, b);
        launchCheck();
    }
    contrastive(&q[1], &q[5], dA, dB, A2[0], A2[1], K, b, &scales[1], nullptr, w);
    float *dAm[2] = {dA, dB};
    for (int m = 0; m < 2; m++) {
        rownorm_backward_kernel1<<<K, BLOCK>>>(dAm[m], dAm[m], A2[m], n2[m], K, b, 1.0f, 0);
        launchCheck();
        rownorm_backward_kernel1<<<K, BLOCK>>>(dAm[m], dAm[m], A1[m], n1[m], K, b, 1.0f, 0);
        launchCheck();
        transpose_add_kernel1<<<grid_for(bK, BLOCK), BLOCK>>>(dP[m], dAm[m], b, K, (float)c.w_ass);
        launchCheck();
    }
    // L_ctr over the clusters valid in both modalities (masked)
    for (int m = 0; m < 2; m++) {
        centres_kernel1<<<grid_for(KE, BLOCK), BLOCK>>>(mu[m], wsum[m], z[m], P[m], a[m], b, K, E);
        launchCheck();
        rownorm_kernel1<<<K, BLOCK>>>(muh[m], nmu[m], mu[m], K, E);
        launchCheck();
    }
    valid_kernel1<<<grid_for((size_t)K, BLOCK), BLOCK>>>(valid, wsum[0], wsum[1], K);
    launchCheck();
    contrastive(&q[2], &q[6], dA, dB, muh[0], muh[1], K, E, &scales[2], valid, w);
    for (int m = 0; m < 2; m++) {
        rownorm_backward_kernel1<<<K, BLOCK>>>(dAm[m], dAm[m], muh[m], nmu[m], K, E, 1.0f, 0);
        launchCheck();
        centres_backward_kernel1<<<b, BLOCK>>>(dz[m], dP[m], dAm[m], z[m], P[m], a[m], valid, b, K,
                                               E, (float)c.w_ctr);
        launchCheck();
    }
    // L_bal with the histogram before its update
    balance_kernel1<<<1, BLOCK>>>(&q[3], gcol, P[0], P[1], hist, b, K, c);
    launchCheck();
    for (int m = 0; m < 2; m++) {
        add_rows_kernel1<<<grid_for(bK, BLOCK), BLOCK>>>(dP[m], gcol + (size_t)m * K, b, K);
        launchCheck();
        softmax_backward_kernel1<<<b, BLOCK>>>(dl[m], dP[m], P[m], b, K);
        launchCheck();
    }
    hist_kernel1<<<1, BLOCK>>>(hist, hn, a[0], b, K, c.bal_momentum);
    launchCheck();
    finish_kernel1<<<1, 1>>>(terms, dlogs, q, logs, c);
    launchCheck();
}

namespace {
ScratchBuf g_self_scratch;
}

void seic_self_loss_forward_backward(double *loss, float *dls, float *w, int32_t *yhat, double *st,
                                     const float *lw, const float *ls, int b, int K,
                                     double momentum) {
    cudaAssert(b >= 1 && K >= 1, "seic_self_loss: sizes");
    const size_t bytes = ((size_t)b * 8 + 255) / 256 * 256 * 2 + ((size_t)b * 4 + 255) / 256 * 256;
    Carver cv = {(char *)scratch_get(&g_self_scratch, bytes, "seic_self_loss_forward_backward"), 0};
    double *conf = (double *)cv.take((size_t)b * 8), *part = (double *)cv.take((size_t)b * 8);
    int32_t *y = yhat ? yhat : (int32_t *)cv.take((size_t)b * 4);
    conf_kernel1<<<b, BLOCK>>>(conf, y, lw, K);
    launchCheck();
    conf_ema_kernel1<<<1, BLOCK>>>(st, conf, b, momentum);
    launchCheck();
    self_ce_kernel1<<<b, BLOCK>>>(part, dls, w, st, conf, y, ls, b, K);
    launchCheck();
    mean_kernel1<<<1, BLOCK>>>(loss, part, b);
    launchCheck();
}
