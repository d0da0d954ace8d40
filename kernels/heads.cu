/*
 * heads.cu — the clustering-head ops of ops_cuda (host/ops.h, "clustering heads"): BatchNorm1d
 * forward/backward, ReLU forward/backward, row softmax, row gather, and the SIC and TAC losses
 * with their gradients. The CPU references are host/cpu/heads.c; read their comments for the
 * maths. Letters: B/b batch rows, C channels, K clusters, n elements.
 *
 * Promises:
 * - batchnorm_forward / batchnorm_backward: one thread per channel sums its column in row order
 *   in double, exactly the CPU's loop, and the elementwise parts are the CPU's float / double
 *   expressions as explicit round-to-nearest intrinsics (no FMA contraction, no flush to zero):
 *   bitwise host/cpu/heads.c.
 * - relu_forward / relu_backward / index_select_forward: bitwise (no arithmetic).
 * - softmax_forward and the two losses use CUDA's expf/exp/log (a few ulp from glibc's), so they
 *   match the CPU to ~1e-6 relative, not bitwise; their reductions are fixed-order (per-row and
 *   per-column loops, single-thread final sums, fixed warp trees), so a run is bitwise
 *   reproducible on one GPU. No atomics.
 * - tac_loss_forward_backward's two GEMMs (ĉĉᵀ and Gĉ) are cuBLAS SGEMM, TF32 off, on a handle
 *   and workspace of this file's own (created outside any capture on first use).
 * - Everything is capturable into a CUDA graph once the scratch exists (no allocation or host
 *   synchronisation after the first call at the largest (b,K)).
 *
 * Status: compiled for sm_90, unverified on hardware (tests/gpu/test_heads_gpu.c).
 */
#include <cmath>

#include "common.cuh"

#define HEADS_THREADS 256

// --- BatchNorm1d ----------------------------------------------------------------------------------
__global__ static void batchnorm_stats_kernel1(float *mean, float *rstd, float *running_mean,
                                               float *running_var, const float *inp, int B, int C,
                                               int train, double momentum, double eps) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    if (!train) {
        mean[c] = running_mean[c];
        rstd[c] = __double2float_rn(__ddiv_rn(1.0, __dsqrt_rn(__dadd_rn((double)running_var[c], eps))));
        return;
    }
    double s = 0.0;
    for (int b = 0; b < B; b++) s = __dadd_rn(s, (double)inp[(size_t)b * C + c]);
    s = __ddiv_rn(s, (double)B);
    double q = 0.0;
    for (int b = 0; b < B; b++) {
        const double d = __dsub_rn((double)inp[(size_t)b * C + c], s);
        q = __dadd_rn(q, __dmul_rn(d, d));
    }
    const double var = __ddiv_rn(q, (double)B);
    mean[c] = __double2float_rn(s);
    rstd[c] = __double2float_rn(__ddiv_rn(1.0, __dsqrt_rn(__dadd_rn(var, eps))));
    const double unb = B > 1 ? __ddiv_rn(q, (double)(B - 1)) : var;
    const double keep = __dsub_rn(1.0, momentum);
    running_mean[c] = __double2float_rn(__dadd_rn(__dmul_rn(keep, (double)running_mean[c]), __dmul_rn(momentum, s)));
    running_var[c] = __double2float_rn(__dadd_rn(__dmul_rn(keep, (double)running_var[c]), __dmul_rn(momentum, unb)));
}

__global__ static void batchnorm_apply_kernel1(float *out, const float *inp, const float *mean,
                                               const float *rstd, const float *weight,
                                               const float *bias, size_t n, int C) {
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (size_t)gridDim.x * blockDim.x) {
        const int c = (int)(e % (size_t)C);
        const float d = __fsub_rn(inp[e], mean[c]);
        out[e] = __fadd_rn(__fmul_rn(__fmul_rn(d, rstd[c]), weight[c]), bias[c]);
    }
}

void batchnorm_forward(float *out, float *mean, float *rstd, float *running_mean,
                       float *running_var, const float *inp, const float *weight,
                       const float *bias, int B, int C, int train, double momentum, double eps) {
    cudaAssert(B >= 0 && C >= 0, "negative batchnorm size");
    if (C == 0) return;
    batchnorm_stats_kernel1<<<ceil_div_u((size_t)C, HEADS_THREADS), HEADS_THREADS>>>(
        mean, rstd, running_mean, running_var, inp, B, C, train, momentum, eps);
    launchCheck();
    const size_t n = (size_t)B * C;
    if (n == 0) return;
    batchnorm_apply_kernel1<<<grid_for(n, HEADS_THREADS), HEADS_THREADS>>>(out, inp, mean, rstd,
                                                                            weight, bias, n, C);
    launchCheck();
}

// Column sums of the backward: sd = Σ_b dout, sdx = Σ_b dout·xhat (rows in order, double), the
// parameter gradients accumulated, and the two column means kept for the elementwise pass.
__global__ static void batchnorm_backward_cols_kernel1(double *mdy, double *mdyx, float *dweight,
                                                       float *dbias, const float *dout,
                                                       const float *inp, const float *mean,
                                                       const float *rstd, int B, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double sd = 0.0, sdx = 0.0;
    for (int b = 0; b < B; b++) {
        const size_t e = (size_t)b * C + c;
        const float xh = __fmul_rn(__fsub_rn(inp[e], mean[c]), rstd[c]);
        sd = __dadd_rn(sd, (double)dout[e]);
        sdx = __dadd_rn(sdx, __dmul_rn((double)dout[e], (double)xh));
    }
    dbias[c] = __double2float_rn(__dadd_rn((double)dbias[c], sd));
    dweight[c] = __double2float_rn(__dadd_rn((double)dweight[c], sdx));
    mdy[c] = __ddiv_rn(sd, (double)B);
    mdyx[c] = __ddiv_rn(sdx, (double)B);
}

__global__ static void batchnorm_backward_inp_kernel1(float *dinp, const float *dout,
                                                      const float *inp, const float *weight,
                                                      const float *mean, const float *rstd,
                                                      const double *mdy, const double *mdyx,
                                                      size_t n, int C) {
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (size_t)gridDim.x * blockDim.x) {
        const int c = (int)(e % (size_t)C);
        const float xh = __fmul_rn(__fsub_rn(inp[e], mean[c]), rstd[c]);
        const double k = __dmul_rn((double)weight[c], (double)rstd[c]);
        const double t = __dsub_rn(__dsub_rn((double)dout[e], mdy[c]), __dmul_rn((double)xh, mdyx[c]));
        dinp[e] = __double2float_rn(__dmul_rn(k, t));
    }
}

void batchnorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int B, int C) {
    cudaAssert(B >= 0 && C >= 0, "negative batchnorm size");
    if (C == 0) return;
    static ScratchBuf scratch;
    double *m = (double *)scratch_get(&scratch, 2 * (size_t)C * sizeof(double), "batchnorm_backward");
    batchnorm_backward_cols_kernel1<<<ceil_div_u((size_t)C, HEADS_THREADS), HEADS_THREADS>>>(
        m, m + C, dweight, dbias, dout, inp, mean, rstd, B, C);
    launchCheck();
    const size_t n = (size_t)B * C;
    if (n == 0) return;
    batchnorm_backward_inp_kernel1<<<grid_for(n, HEADS_THREADS), HEADS_THREADS>>>(
        dinp, dout, inp, weight, mean, rstd, m, m + C, n, C);
    launchCheck();
}

// --- ReLU, softmax, gather ---------------------------------------------------------------------------
__global__ static void relu_forward_kernel1(float *out, const float *inp, size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

__global__ static void relu_backward_kernel1(float *dinp, const float *dout, const float *out,
                                             size_t n) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

void relu_forward(float *out, const float *inp, size_t n) {
    if (n == 0) return;
    relu_forward_kernel1<<<grid_for(n, HEADS_THREADS), HEADS_THREADS>>>(out, inp, n);
    launchCheck();
}

void relu_backward(float *dinp, const float *dout, const float *out, size_t n) {
    if (n == 0) return;
    relu_backward_kernel1<<<grid_for(n, HEADS_THREADS), HEADS_THREADS>>>(dinp, dout, out, n);
    launchCheck();
}

// One row of the CPU's softmax_row: float exps, double sum in column order.
__device__ static void softmax_row_dev(float *p, const float *x, int K) {
    float mx = x[0];
    for (int c = 1; c < K; c++) mx = x[c] > mx ? x[c] : mx;
    double s = 0.0;
    for (int c = 0; c < K; c++) {
        const float e = expf(__fsub_rn(x[c], mx));
        p[c] = e;
        s = __dadd_rn(s, (double)e);
    }
    for (int c = 0; c < K; c++) p[c] = __double2float_rn(__ddiv_rn((double)p[c], s));
}

__global__ static void softmax_forward_kernel1(float *out, const float *inp, int B, int K) {
    const int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b < B) softmax_row_dev(out + (size_t)b * K, inp + (size_t)b * K, K);
}

void softmax_forward(float *out, const float *inp, int B, int K) {
    if (B <= 0 || K <= 0) return;
    softmax_forward_kernel1<<<ceil_div_u((size_t)B, 128), 128>>>(out, inp, B, K);
    launchCheck();
}

__global__ static void index_select_forward_kernel1(float *out, const float *inp,
                                                    const int64_t *idx, size_t n, int C) {
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (size_t)gridDim.x * blockDim.x) {
        const size_t i = e / (size_t)C, c = e % (size_t)C;
        out[e] = inp[(size_t)idx[i] * C + c];
    }
}

void index_select_forward(float *out, const float *inp, const int64_t *idx, int n, int C) {
    const size_t total = (size_t)(n > 0 ? n : 0) * (size_t)(C > 0 ? C : 0);
    if (total == 0) return;
    index_select_forward_kernel1<<<grid_for(total, HEADS_THREADS), HEADS_THREADS>>>(out, inp, idx,
                                                                                    total, C);
    launchCheck();
}

// --- SIC loss ---------------------------------------------------------------------------------------
// rows: pa, pn (b,K) softmaxes; s (b) = ⟨pa, pn⟩; li (b) = log s; ce (b) = lse − la[ŷ]
__global__ static void sic_rows_kernel1(float *pa, float *pn, double *s, double *li, double *ce,
                                        const float *la, const float *ln, const int32_t *yhat,
                                        int b, int K) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= b) return;
    const float *xa = la + (size_t)i * K;
    float *a = pa + (size_t)i * K, *n = pn + (size_t)i * K;
    softmax_row_dev(a, xa, K);
    softmax_row_dev(n, ln + (size_t)i * K, K);
    double si = 0.0;
    for (int c = 0; c < K; c++) si = __dadd_rn(si, __dmul_rn((double)a[c], (double)n[c]));
    s[i] = si;
    li[i] = log(si);
    float mx = xa[0];
    for (int c = 1; c < K; c++) mx = xa[c] > mx ? xa[c] : mx;
    double se = 0.0;
    for (int c = 0; c < K; c++) se = __dadd_rn(se, exp(__dsub_rn((double)xa[c], (double)mx)));
    ce[i] = __dsub_rn(__dadd_rn((double)mx, log(se)), (double)xa[yhat[i]]);
}

// columns: the batch mean of pa, its entropy summand hc (K) and the entropy gradient g (K)
__global__ static void sic_cols_kernel1(double *g, double *hc, const float *pa, int b, int K,
                                        double entropy_weight) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= K) return;
    double m = 0.0;
    for (int i = 0; i < b; i++) m = __dadd_rn(m, (double)pa[(size_t)i * K + c]);
    m = __ddiv_rn(m, (double)b);
    const double x = m > 1e-8 ? m : 1e-8, lx = log(x);
    hc[c] = __dmul_rn(x, lx);
    g[c] = m >= 1e-8 ? __dmul_rn(__ddiv_rn(entropy_weight, (double)b), __dadd_rn(lx, 1.0)) : 0.0;
}

__global__ static void sic_grads_kernel1(float *dla, float *dln, const float *pa, const float *pn,
                                         const double *s, const double *g, const int32_t *yhat,
                                         int b, int K, double ce_weight) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= b) return;
    const float *a = pa + (size_t)i * K, *n = pn + (size_t)i * K;
    const double inv = __ddiv_rn(1.0, __dmul_rn((double)b, s[i])), cw = __ddiv_rn(ce_weight, (double)b);
    double da_dot = 0.0, dn_dot = 0.0;
    for (int c = 0; c < K; c++) {
        const double dpa = __dadd_rn(-__dmul_rn((double)n[c], inv), g[c]);
        const double dpn = -__dmul_rn((double)a[c], inv);
        da_dot = __dadd_rn(da_dot, __dmul_rn(dpa, (double)a[c]));
        dn_dot = __dadd_rn(dn_dot, __dmul_rn(dpn, (double)n[c]));
    }
    for (int c = 0; c < K; c++) {
        const double dpa = __dadd_rn(-__dmul_rn((double)n[c], inv), g[c]);
        const double dpn = -__dmul_rn((double)a[c], inv);
        const double onehot = c == yhat[i] ? 1.0 : 0.0;
        dla[(size_t)i * K + c] = __double2float_rn(
            __dadd_rn(__dmul_rn((double)a[c], __dsub_rn(dpa, da_dot)),
                      __dmul_rn(cw, __dsub_rn((double)a[c], onehot))));
        dln[(size_t)i * K + c] = __double2float_rn(__dmul_rn((double)n[c], __dsub_rn(dpn, dn_dot)));
    }
}

__global__ static void sic_terms_kernel1(double *terms, const double *li, const double *ce,
                                         const double *hc, int b, int K, double entropy_weight,
                                         double ce_weight) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    double l = 0.0, c = 0.0, h = 0.0;
    for (int i = 0; i < b; i++) {
        l = __dsub_rn(l, li[i]);
        c = __dadd_rn(c, ce[i]);
    }
    for (int k = 0; k < K; k++) h = __dsub_rn(h, hc[k]);
    l = __ddiv_rn(l, (double)b);
    c = __ddiv_rn(c, (double)b);
    terms[0] = __dadd_rn(__dsub_rn(l, __dmul_rn(entropy_weight, h)), __dmul_rn(ce_weight, c));
    terms[1] = l;
    terms[2] = h;
    terms[3] = c;
}

void sic_loss_forward_backward(double *terms, float *dla, float *dln, const float *la,
                               const float *ln, const int32_t *yhat, int b, int K,
                               double entropy_weight, double ce_weight) {
    cudaAssert(b > 0 && K > 0, "sic loss: empty batch");
    static ScratchBuf scratch;
    const size_t nf = (size_t)b * K;
    // floats pa, pn (2·b·K), then doubles s, li, ce (3b), g, hc (2K); doubles 8-byte aligned
    const size_t foff = (2 * nf * sizeof(float) + 7) / 8 * 8;
    char *base = (char *)scratch_get(&scratch, foff + (3 * (size_t)b + 2 * (size_t)K) * sizeof(double),
                                     "sic_loss_forward_backward");
    float *pa = (float *)base, *pn = pa + nf;
    double *s = (double *)(base + foff), *li = s + b, *ce = li + b, *g = ce + b, *hc = g + K;
    sic_rows_kernel1<<<ceil_div_u((size_t)b, 128), 128>>>(pa, pn, s, li, ce, la, ln, yhat, b, K);
    launchCheck();
    sic_cols_kernel1<<<ceil_div_u((size_t)K, 128), 128>>>(g, hc, pa, b, K, entropy_weight);
    launchCheck();
    sic_grads_kernel1<<<ceil_div_u((size_t)b, 128), 128>>>(dla, dln, pa, pn, s, g, yhat, b, K,
                                                           ce_weight);
    launchCheck();
    sic_terms_kernel1<<<1, 32>>>(terms, li, ce, hc, b, K, entropy_weight, ce_weight);
    launchCheck();
}

// --- TAC loss -------------------------------------------------------------------------------------
// Own cuBLAS handle and workspace (as kernels/matmul.cu's, which is private to that file).
static cublasHandle_t g_heads_cublas;
static void *g_heads_ws;
#define HEADS_CUBLAS_WS ((size_t)8 << 20)

static cublasHandle_t heads_cublas(void) {
    if (!g_heads_cublas) {
        if (stream_is_capturing()) {
            fprintf(stderr, "laic: fatal: tac loss: first cuBLAS use inside a CUDA graph capture "
                            "---> HINT: run the step once eagerly before capturing it\n");
            exit(1);
        }
        cublasCheck(cublasCreate(&g_heads_cublas));
        cublasCheck(cublasSetMathMode(g_heads_cublas, CUBLAS_DEFAULT_MATH));
        cublasCheck(cublasSetStream(g_heads_cublas, cudaStreamPerThread));
        cudaCheck(cudaMalloc(&g_heads_ws, HEADS_CUBLAS_WS));
        cublasCheck(cublasSetWorkspace(g_heads_cublas, g_heads_ws, HEADS_CUBLAS_WS));
    }
    return g_heads_cublas;
}

// Fixed-tree block sum of doubles (every thread calls; sh holds 32; result to all threads).
__device__ static double heads_block_sum(double v, double *sh) {
    for (int o = 16; o > 0; o >>= 1) v = __dadd_rn(v, __shfl_xor_sync(0xffffffffu, v, o));
    const int lane = threadIdx.x % 32, w = threadIdx.x / 32, nw = (blockDim.x + 31) / 32;
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    if (w == 0) {
        v = lane < nw ? sh[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) v = __dadd_rn(v, __shfl_xor_sync(0xffffffffu, v, o));
        if (lane == 0) sh[0] = v;
    }
    __syncthreads();
    const double r = sh[0];
    __syncthreads();
    return r;
}

// ĉ (2K,b): row r = column r of A (r < K) or r − K of B, divided by max(‖row‖, 1e-12); nrm (2K).
__global__ static void tac_build_kernel1(float *ch, double *nrm, const float *A, const float *Bm,
                                         int b, int K) {
    __shared__ double sh[32];
    const int r = blockIdx.x;
    const float *src = r < K ? A : Bm;
    const int k = r < K ? r : r - K;
    double s2 = 0.0;
    for (int i = threadIdx.x; i < b; i += blockDim.x) {
        const float v = src[(size_t)i * K + k];
        s2 = __dadd_rn(s2, __dmul_rn((double)v, (double)v));
    }
    const double nr = sqrt(heads_block_sum(s2, sh));
    if (threadIdx.x == 0) nrm[r] = nr;
    const float den = __double2float_rn(nr > 1e-12 ? nr : 1e-12);
    for (int i = threadIdx.x; i < b; i += blockDim.x)
        ch[(size_t)r * b + i] = __fdiv_rn(src[(size_t)i * K + k], den);
}

// Row r of sim (÷ τ first): the cross-entropy against its twin over the off-diagonal entries,
// loss (2K), and dsim (2K,2K) (0 on the diagonal), scaled by 1/(2K).
__global__ static void tac_rows_kernel1(float *dsim, double *loss, const float *sim, int K,
                                        float tauf) {
    __shared__ double sh[32];
    const int r = blockIdx.x, n2 = 2 * K, pos = r < K ? r + K : r - K;
    const float *sr = sim + (size_t)r * n2;
    double mx = -INFINITY;
    for (int j = threadIdx.x; j < n2; j += blockDim.x)
        if (j != r) mx = fmax(mx, (double)__fdiv_rn(sr[j], tauf));
    for (int o = 16; o > 0; o >>= 1) mx = fmax(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    {   // block max through shared memory (max is order-independent)
        const int lane = threadIdx.x % 32, w = threadIdx.x / 32, nw = (blockDim.x + 31) / 32;
        __syncthreads();
        if (lane == 0) sh[w] = mx;
        __syncthreads();
        if (threadIdx.x == 0) {
            double m = sh[0];
            for (int q = 1; q < nw; q++) m = fmax(m, sh[q]);
            sh[0] = m;
        }
        __syncthreads();
        mx = sh[0];
        __syncthreads();
    }
    double se = 0.0;
    for (int j = threadIdx.x; j < n2; j += blockDim.x)
        if (j != r) se = __dadd_rn(se, exp(__dsub_rn((double)__fdiv_rn(sr[j], tauf), mx)));
    const double lse = __dadd_rn(mx, log(heads_block_sum(se, sh)));
    if (threadIdx.x == 0) loss[r] = __dsub_rn(lse, (double)__fdiv_rn(sr[pos], tauf));
    for (int j = threadIdx.x; j < n2; j += blockDim.x) {
        double v = 0.0;
        if (j != r)
            v = __ddiv_rn(__dsub_rn(exp(__dsub_rn((double)__fdiv_rn(sr[j], tauf), lse)), j == pos ? 1.0 : 0.0),
                          (double)n2);
        dsim[(size_t)r * n2 + j] = __double2float_rn(v);
    }
}

// G (2K,2K) = (dsim + dsimᵀ) / τ
__global__ static void tac_sym_kernel1(float *G, const float *dsim, int n2, float tauf) {
    const size_t n = (size_t)n2 * n2;
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (size_t)gridDim.x * blockDim.x) {
        const size_t r = e / n2, j = e % n2, rj = r <= j ? e : j * n2 + r, jr = r <= j ? j * n2 + r : e;
        // (a + b) with a the upper-triangle element, as the CPU's loop builds it
        G[e] = __fdiv_rn(__fadd_rn(dsim[rj], dsim[jr]), tauf);
    }
}

// F.normalize's backward, transposed into gA / gB (b,K) double (each element written once).
__global__ static void tac_normback_kernel1(double *gA, double *gB, const float *dc,
                                            const float *ch, const double *nrm, int b, int K) {
    __shared__ double sh[32];
    const int r = blockIdx.x;
    double *g = r < K ? gA : gB;
    const int k = r < K ? r : r - K;
    const float *c = ch + (size_t)r * b, *d = dc + (size_t)r * b;
    const double nr = nrm[r];
    if (nr > 1e-12) {
        double dot = 0.0;
        for (int i = threadIdx.x; i < b; i += blockDim.x) dot = __dadd_rn(dot, __dmul_rn((double)d[i], (double)c[i]));
        dot = heads_block_sum(dot, sh);
        for (int i = threadIdx.x; i < b; i += blockDim.x)
            g[(size_t)i * K + k] = __ddiv_rn(__dsub_rn((double)d[i], __dmul_rn((double)c[i], dot)), nr);
    } else {
        for (int i = threadIdx.x; i < b; i += blockDim.x) g[(size_t)i * K + k] = __ddiv_rn((double)d[i], 1e-12);
    }
}

// Cons(P_Ta, P_Ia) per row: cons (b), and its gradient added to gTa, gIa.
__global__ static void tac_cons_kernel1(double *cons, double *gTa, double *gIa, const float *PTa,
                                        const float *PIa, int b, int K) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= b) return;
    const float *t = PTa + (size_t)i * K, *im = PIa + (size_t)i * K;
    double s = 0.0;
    for (int c = 0; c < K; c++) s = __dadd_rn(s, __dmul_rn((double)t[c], (double)im[c]));
    const double lg = log(s);
    cons[i] = lg > -100.0 ? lg : -100.0;
    const double den = __dmul_rn(__dsub_rn(1.0, s), s);
    const double ds = __ddiv_rn(__ddiv_rn(__dsub_rn(s, 1.0), den > 1e-12 ? den : 1e-12), (double)b);
    for (int c = 0; c < K; c++) {
        gTa[(size_t)i * K + c] = __dadd_rn(gTa[(size_t)i * K + c], __dmul_rn(ds, (double)im[c]));
        gIa[(size_t)i * K + c] = __dadd_rn(gIa[(size_t)i * K + c], __dmul_rn(ds, (double)t[c]));
    }
}

// Entropy of the batch mean of P, per column: hc (K) = x log x, and −w·∂H/∂P added into g.
__global__ static void tac_entropy_kernel1(double *hc, double *g, const float *P, int b, int K,
                                           double w) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= K) return;
    double m = 0.0;
    for (int i = 0; i < b; i++) m = __dadd_rn(m, (double)P[(size_t)i * K + c]);
    m = __ddiv_rn(m, (double)b);
    const double x = m > 1e-9 ? m : 1e-9, lx = log(x);
    hc[c] = __dmul_rn(x, lx);
    if (m >= 1e-9) {
        const double add = __dmul_rn(__ddiv_rn(w, (double)b), __dadd_rn(lx, 1.0));
        for (int i = 0; i < b; i++) g[(size_t)i * K + c] = __dadd_rn(g[(size_t)i * K + c], add);
    }
}

// Softmax backward of one of the four: d = P ⊙ (g − ⟨g, P⟩), one thread per row (q = blockIdx.y).
__global__ static void tac_softmax_back_kernel1(float *d0, float *d1, float *d2, float *d3,
                                                const float *P0, const float *P1, const float *P2,
                                                const float *P3, const double *g, int b, int K) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x, q = blockIdx.y;
    if (i >= b) return;
    const float *P = q == 0 ? P0 : q == 1 ? P1 : q == 2 ? P2 : P3;
    float *d = q == 0 ? d0 : q == 1 ? d1 : q == 2 ? d2 : d3;
    const float *p = P + (size_t)i * K;
    const double *gi = g + (size_t)q * b * K + (size_t)i * K;
    double dot = 0.0;
    for (int c = 0; c < K; c++) dot = __dadd_rn(dot, __dmul_rn(gi[c], (double)p[c]));
    for (int c = 0; c < K; c++) d[(size_t)i * K + c] = __double2float_rn(__dmul_rn((double)p[c], __dsub_rn(gi[c], dot)));
}

__global__ static void tac_terms_kernel1(double *terms, const double *loss1, const double *loss2,
                                         const double *cons, const double *hc, int b, int K,
                                         double w) {
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    const int n2 = 2 * K;
    double d1 = 0.0, d2 = 0.0, cs = 0.0, ht = 0.0, hi = 0.0;
    for (int r = 0; r < n2; r++) {
        d1 = __dadd_rn(d1, loss1[r]);
        d2 = __dadd_rn(d2, loss2[r]);
    }
    d1 = __ddiv_rn(d1, (double)n2);
    d2 = __ddiv_rn(d2, (double)n2);
    for (int i = 0; i < b; i++) cs = __dsub_rn(cs, cons[i]);
    cs = __ddiv_rn(cs, (double)b);
    for (int c = 0; c < K; c++) {
        ht = __dsub_rn(ht, hc[c]);
        hi = __dsub_rn(hi, hc[K + c]);
    }
    const double h = __dadd_rn(ht, hi);
    terms[0] = __dsub_rn(__dadd_rn(__dadd_rn(d1, d2), cs), __dmul_rn(w, h));
    terms[1] = d1;
    terms[2] = d2;
    terms[3] = cs;
    terms[4] = h;
}

// One D(A, B): gA, gB written (not added) for every element.
static void tac_distill(double *gA, double *gB, double *loss, const float *A, const float *Bm,
                        int b, int K, double tau, float *ch, double *nrm, float *sim, float *dsim,
                        float *G, float *dc) {
    const int n2 = 2 * K;
    const float tauf = (float)tau, one = 1.0f, zero = 0.0f;
    cublasHandle_t h = heads_cublas();
    tac_build_kernel1<<<n2, 256>>>(ch, nrm, A, Bm, b, K);
    launchCheck();
    // sim (2K,2K) = ĉ ĉᵀ: ĉ row-major (2K,b) is column-major (b,2K) =: M, so sim = Mᵀ M
    cublasCheck(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, n2, n2, b, &one, ch, b, ch, b, &zero, sim, n2));
    tac_rows_kernel1<<<n2, 256>>>(dsim, loss, sim, K, tauf);
    launchCheck();
    tac_sym_kernel1<<<grid_for((size_t)n2 * n2, HEADS_THREADS), HEADS_THREADS>>>(G, dsim, n2, tauf);
    launchCheck();
    // dc (2K,b) row-major = G ĉ; column-major: dc_cm (b,2K) = M (b,2K) @ G (G symmetric)
    cublasCheck(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, b, n2, n2, &one, ch, b, G, n2, &zero, dc, b));
    tac_normback_kernel1<<<n2, 256>>>(gA, gB, dc, ch, nrm, b, K);
    launchCheck();
}

void tac_loss_forward_backward(double *terms, float *dIa, float *dTa, float *dIn, float *dTn,
                               const float *PIa, const float *PTa, const float *PIn,
                               const float *PTn, int b, int K, double tau, double entropy_weight) {
    cudaAssert(b > 0 && K > 0, "tac loss: empty batch");
    static ScratchBuf scratch;
    const int n2 = 2 * K;
    const size_t nf = (size_t)n2 * b, ns = (size_t)n2 * n2, nbk = (size_t)b * K;
    // doubles first: g (4·b·K), nrm (2K), loss1, loss2 (2K each), cons (b), hc (2K);
    // then floats ĉ, dc (2K·b each), sim, dsim, G (2K·2K each)
    const size_t nd = 4 * nbk + 3 * (size_t)n2 + (size_t)b + (size_t)n2;
    char *base = (char *)scratch_get(&scratch, nd * sizeof(double) + (2 * nf + 3 * ns) * sizeof(float),
                                     "tac_loss_forward_backward");
    double *g = (double *)base, *nrm = g + 4 * nbk, *loss1 = nrm + n2, *loss2 = loss1 + n2,
           *cons = loss2 + n2, *hc = cons + b;
    float *ch = (float *)(base + nd * sizeof(double)), *dc = ch + nf, *sim = dc + nf, *dsim = sim + ns,
          *G = dsim + ns;
    double *gIa = g, *gTa = g + nbk, *gIn = g + 2 * nbk, *gTn = g + 3 * nbk;
    tac_distill(gIa, gTn, loss1, PIa, PTn, b, K, tau, ch, nrm, sim, dsim, G, dc);
    tac_distill(gTa, gIn, loss2, PTa, PIn, b, K, tau, ch, nrm, sim, dsim, G, dc);
    tac_cons_kernel1<<<ceil_div_u((size_t)b, 128), 128>>>(cons, gTa, gIa, PTa, PIa, b, K);
    launchCheck();
    // H(P_Ta) then H(P_Ia): the CPU adds the text head's entropy gradient first as well
    tac_entropy_kernel1<<<ceil_div_u((size_t)K, 128), 128>>>(hc, gTa, PTa, b, K, entropy_weight);
    launchCheck();
    tac_entropy_kernel1<<<ceil_div_u((size_t)K, 128), 128>>>(hc + K, gIa, PIa, b, K, entropy_weight);
    launchCheck();
    dim3 grid(ceil_div_u((size_t)b, 128), 4);
    tac_softmax_back_kernel1<<<grid, 128>>>(dIa, dTa, dIn, dTn, PIa, PTa, PIn, PTn, g, b, K);
    launchCheck();
    tac_terms_kernel1<<<1, 32>>>(terms, loss1, loss2, cons, hc, b, K, entropy_weight);
    launchCheck();
}
