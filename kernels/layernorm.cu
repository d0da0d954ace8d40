/*
 * layernorm.cu — LayerNorm over the last dim (ln_pre, ln_1, ln_2, ln_post, ln_final):
 *   out (N,C) = (inp - mean) * rstd * weight + bias, rstd = 1/sqrt(var + 1e-5), biased var;
 *   mean, rstd (N) saved when non-NULL.
 *
 * Version 1: one warp per row. Two passes over the row (mean, then the centred sum of
 * squares) rather than E[x²]−E[x]², which cancels badly when |mean| ≫ std; the second read
 * of a 768-float row hits L1. Reductions are fixed-order warp butterflies: deterministic.
 * out may equal inp (each lane rereads its own elements before writing them).
 *
 * Status: compiled for sm_90, unverified on hardware.
 */
#include "common.cuh"

__global__ static void layernorm_forward_kernel1(float *out, float *mean, float *rstd,
                                                 const float *inp, const float *weight,
                                                 const float *bias, int N, int C) {
    // out (N,C), mean (N) or NULL, rstd (N) or NULL, inp (N,C), weight (C), bias (C)
    const int lane = threadIdx.x % 32;
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N) return;   // whole warps leave together: the shuffles below stay full-mask
    const float *x = inp + (size_t)row * C;

    float s = 0.0f;
    for (int c = lane; c < C; c += 32) s += x[c];
    const float m = warp_sum(s) / (float)C;

    float v = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = x[c] - m;
        v += d * d;
    }
    const float r = rsqrtf(warp_sum(v) / (float)C + 1e-5f);

    float *o = out + (size_t)row * C;
    for (int c = lane; c < C; c += 32) o[c] = (x[c] - m) * r * weight[c] + bias[c];
    if (lane == 0) {
        if (mean) mean[row] = m;
        if (rstd) rstd[row] = r;
    }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int N, int C) {
    cudaAssert(N >= 0 && C > 0, "layernorm needs C > 0");
    if (N == 0) return;
    const int block = 256, rows_per_block = block / 32;
    layernorm_forward_kernel1<<<ceil_div_u((size_t)N, rows_per_block), block>>>(
        out, mean, rstd, inp, weight, bias, N, C);
    launchCheck();
}

// --- backward ---------------------------------------------------------------------------------
// dinp (N,C) += LayerNorm input gradient (ACCUMULATES, host/ops.h). With n = (x - mean) * rstd
// and g = dout * weight:  dx = rstd * (g - mean(g) - n * mean(g n)).
// Version 1: one warp per row, fixed-order warp sums (deterministic); each lane touches only
// its own columns of dinp, so the += needs no atomics.
__global__ static void layernorm_backward_kernel1(float *dinp, const float *dout,
                                                  const float *inp, const float *weight,
                                                  const float *mean, const float *rstd, int N,
                                                  int C) {
    const int lane = threadIdx.x % 32;
    const int row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N) return;
    const float *x = inp + (size_t)row * C, *dy = dout + (size_t)row * C;
    float *dx = dinp + (size_t)row * C;
    const float m = mean[row], r = rstd[row];
    float sg = 0.0f, sgn = 0.0f;
    for (int c = lane; c < C; c += 32) {
        // forward: o[c] = (x[c] - m) * r * weight[c] + bias[c]
        const float nrm = (x[c] - m) * r, g = dy[c] * weight[c];
        sg += g;
        sgn += g * nrm;
    }
    const float mg = warp_sum(sg) / (float)C, mgn = warp_sum(sgn) / (float)C;
    for (int c = lane; c < C; c += 32) {
        const float nrm = (x[c] - m) * r;
        dx[c] += r * (dy[c] * weight[c] - mg - nrm * mgn);
    }
}

void layernorm_backward(float *dinp, const float *dout, const float *inp, const float *weight,
                        const float *mean, const float *rstd, int N, int C) {
    cudaAssert(N >= 0 && C > 0, "layernorm_backward needs C > 0");
    if (N == 0) return;
    const int block = 256, rows_per_block = block / 32;
    layernorm_backward_kernel1<<<ceil_div_u((size_t)N, rows_per_block), block>>>(
        dinp, dout, inp, weight, mean, rstd, N, C);
    launchCheck();
}

// --- weight gradients -------------------------------------------------------------------------
// Forward: o[c] = (x[c] - m) * r * weight[c] + bias[c]  =>  dweight[c] += Σ_n dout·nrm,
// dbias[c] += Σ_n dout (ACCUMULATE, host/ops.h), nrm = (x - m) * r rounded as the forward.
// Version 1, deterministic two-pass reduction in double: pass 1 gives each (chunk of LNW_ROWS
// rows, 32 columns) one block of 8 warps, lane = column (coalesced row reads), warp w taking
// rows w, w+8, ... of the chunk; the 8 warp sums are added in warp order. Pass 2: one thread
// per column adds the chunks in order and rounds once into the gradient. The order is fixed by
// (N, C) alone, so runs repeat bitwise; it differs from the CPU's row order (≤ 1e-15 relative).
#define LNW_ROWS 256

__global__ static void layernorm_backward_weight_kernel1(double *pw, double *pb, const float *dout,
                                                         const float *inp, const float *mean,
                                                         const float *rstd, int N, int C) {
    // pw, pb (nchunks, C) partial sums of chunk blockIdx.y
    __shared__ double sw[8][32], sb[8][32];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int c = blockIdx.x * 32 + lane;
    const int r0 = blockIdx.y * LNW_ROWS, r1 = min(r0 + LNW_ROWS, N);
    double aw = 0.0, ab = 0.0;
    if (c < C)
        for (int n = r0 + warp; n < r1; n += 8) {
            const float dy = dout[(size_t)n * C + c];
            const float nrm = __fmul_rn(__fsub_rn(inp[(size_t)n * C + c], mean[n]), rstd[n]);
            aw = __dadd_rn(aw, __dmul_rn((double)dy, (double)nrm));
            ab = __dadd_rn(ab, (double)dy);
        }
    sw[warp][lane] = aw;
    sb[warp][lane] = ab;
    __syncthreads();
    if (warp == 0 && c < C) {
        double tw = 0.0, tb = 0.0;
        for (int w = 0; w < 8; w++) {
            tw = __dadd_rn(tw, sw[w][lane]);
            tb = __dadd_rn(tb, sb[w][lane]);
        }
        pw[(size_t)blockIdx.y * C + c] = tw;
        pb[(size_t)blockIdx.y * C + c] = tb;
    }
}

__global__ static void layernorm_backward_weight_kernel2(float *dweight, float *dbias,
                                                         const double *pw, const double *pb,
                                                         int nchunks, int C) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double tw = 0.0, tb = 0.0;
    for (int k = 0; k < nchunks; k++) {
        tw = __dadd_rn(tw, pw[(size_t)k * C + c]);
        tb = __dadd_rn(tb, pb[(size_t)k * C + c]);
    }
    if (dweight) dweight[c] = __double2float_rn(__dadd_rn((double)dweight[c], tw));
    if (dbias) dbias[c] = __double2float_rn(__dadd_rn((double)dbias[c], tb));
}

void layernorm_backward_weight(float *dweight, float *dbias, const float *dout, const float *inp,
                               const float *mean, const float *rstd, int N, int C) {
    cudaAssert(N >= 0 && C >= 0, "negative layernorm_backward_weight size");
    if (C == 0 || (!dweight && !dbias)) return;
    const int nchunks = N > 0 ? (N + LNW_ROWS - 1) / LNW_ROWS : 1;
    cudaAssert(nchunks <= 65535, "layernorm_backward_weight: too many rows for one grid column");
    static ScratchBuf s;
    double *pw = (double *)scratch_get(&s, 2 * (size_t)nchunks * C * sizeof(double),
                                       "layernorm_backward_weight");
    double *pb = pw + (size_t)nchunks * C;
    if (N > 0) {
        dim3 grid(ceil_div_u((size_t)C, 32), nchunks);
        layernorm_backward_weight_kernel1<<<grid, 256>>>(pw, pb, dout, inp, mean, rstd, N, C);
        launchCheck();
    } else {
        cudaCheck(cudaMemsetAsync(pw, 0, 2 * (size_t)C * sizeof(double), cudaStreamPerThread));
    }
    layernorm_backward_weight_kernel2<<<ceil_div_u((size_t)C, 256), 256>>>(dweight, dbias, pw, pb,
                                                                          nchunks, C);
    launchCheck();
}
