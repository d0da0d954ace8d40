/*
 * train.cu — the prompt-learning ops of ops_cuda (host/ops.h, "prompt learning"): the SPEC §7
 * loss with its gradient w.r.t. the class features, the SGD step, the row copy the trainer
 * uses to assemble batches, and the trainer's views (a thin wrapper of kernels/augment.cu).
 *
 * Dimension legend: b batch (samples), K classes, E feature width (512), n parameters.
 * F (2b,E): weak view rows 0..b-1, strong view rows b..2b-1 (as host/ops.h).
 *
 * Promises:
 * - prompt_loss_forward_backward computes the maths of host/train/train.c train_loss (read its
 *   comment) in double, with fixed-order reductions and no atomics: bitwise reproducible run
 *   to run on one GPU, and within 1e-6 relative of the CPU (different summation trees and
 *   CUDA's double exp/log/pow, each a few ulp of 1e-16; tests/gpu/test_train_gpu.c).
 *   Kernels, all on the per-thread default stream:
 *     logits   Z (2b,K) = scale · F Wᵀ        one warp per (row, class), double dot
 *     softmax  P (2b,K) = softmax rows of Z   one block per row (in place)
 *     columns  pbar (K) = mean over strong rows of P, in row order; its entropy summands and
 *              the entropy gradient dl (K)    one thread per class
 *     rows     G (b,K) = dL/dzs (the softmax backward of dL/dps), per-row GCE / MSE values
 *                                             one block per strong row
 *     finish   terms (6)                      one block
 *     dW       dW (K,E) = (float)(scale Σ_i G[i,c] fs[i,:]) in row order, as the CPU
 *                                             one thread per (c, e)
 *   It is capturable into a CUDA graph: no host synchronisation, no allocation once its
 *   scratch (sized from b and K) exists. The scratch is allocated by the first call with a
 *   larger (b,K) outside a capture; needing to grow it during a capture is a fatal error with
 *   a hint (the trainer runs one eager step before capturing).
 * - sgd_forward is bitwise host/train/train.c sgd_step: the same float operations in the same order,
 *   written as explicit round-to-nearest PTX (fma.rn / mul.rn / add.rn without .ftz), so
 *   neither nvcc's FMA contraction nor --use_fast_math's flush-to-zero can change a bit.
 * - strided_copy is one grid-stride kernel (any strides, rows may be 0).
 * - train_views_forward is augment_batch_cuda (kernels/augment_cuda.h), whose layout and keys
 *   are exactly the op's; it uploads host images and synchronises, so it refuses to run
 *   inside a capture.
 *
 * Status: compiled for sm_90, unverified on hardware (tests/gpu/test_train_gpu.c is written
 * for the first session with a GPU).
 */
#include <cmath>

#include "common.cuh"
#include "augment_cuda.h"

// --- helpers --------------------------------------------------------------------------------

// Fixed butterfly over the warp: every lane ends with the same, run-to-run identical sum
// (each step adds the same two partial sums in either order, and + commutes exactly).
__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double warp_max_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide sum / max in a fixed tree (warps, then warp 0 over the warp results). Every
// thread of the block must call it; sh holds 32 doubles; the result is returned to all.
__device__ double block_sum_d(double v, double *sh) {
    const int lane = threadIdx.x % 32, w = threadIdx.x / 32, nw = (blockDim.x + 31) / 32;
    v = warp_sum_d(v);
    if (lane == 0) sh[w] = v;
    __syncthreads();
    if (w == 0) {
        double r = lane < nw ? sh[lane] : 0.0;
        r = warp_sum_d(r);
        if (lane == 0) sh[0] = r;
    }
    __syncthreads();
    const double r = sh[0];
    __syncthreads();   // sh is reused by the next reduction
    return r;
}
__device__ double block_max_d(double v, double *sh) {
    const int lane = threadIdx.x % 32, w = threadIdx.x / 32, nw = (blockDim.x + 31) / 32;
    v = warp_max_d(v);
    if (lane == 0) sh[w] = v;
    __syncthreads();
    if (w == 0) {
        double r = lane < nw ? sh[lane] : -INFINITY;
        r = warp_max_d(r);
        if (lane == 0) sh[0] = r;
    }
    __syncthreads();
    const double r = sh[0];
    __syncthreads();
    return r;
}

// The launchers below assume this block size (multiple of 32, ≤ 1024).
#define TRAIN_THREADS 256

// --- loss scratch -----------------------------------------------------------------------------
// One grow-only device buffer of n doubles, carved per call (see the layout in the launcher);
// its rules under CUDA-graph capture are ScratchBuf's (common.cuh).
static double *loss_scratch(size_t n) {
    static ScratchBuf s;
    return (double *)scratch_get(&s, n * sizeof(double), "prompt_loss_forward_backward");
}

// --- loss kernels -----------------------------------------------------------------------------

// Z (R,K) = scale · F (R,E) W (K,E)ᵀ, one warp per (row, class): lanes stride over E in double.
// "z[c] = scale * d" with "d += (double)f[e] * (double)w[e]" (train.c probs).
__global__ static void loss_logits_forward_kernel1(double *Z, const float *F, const float *W,
                                                   int R, int K, int E, double scale) {
    const size_t warp = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    const int lane = threadIdx.x % 32;
    if (warp >= (size_t)R * K) return;   // whole warps exit together (warp-uniform test)
    const int r = (int)(warp / K), c = (int)(warp % K);
    const float *f = F + (size_t)r * E, *w = W + (size_t)c * E;
    double d = 0.0;
    for (int e = lane; e < E; e += 32) d += (double)f[e] * (double)w[e];
    d = warp_sum_d(d);
    if (lane == 0) Z[warp] = scale * d;
}

// P (R,K): each row of Z softmaxed in place, max-subtracted (train.c softmax_row). Block per row.
__global__ static void loss_softmax_forward_kernel1(double *P, int K) {
    __shared__ double sh[32];
    double *z = P + (size_t)blockIdx.x * K;
    double mx = -INFINITY;
    for (int c = threadIdx.x; c < K; c += blockDim.x) mx = fmax(mx, z[c]);
    mx = block_max_d(mx, sh);
    double s = 0.0;
    for (int c = threadIdx.x; c < K; c += blockDim.x) {
        const double ex = exp(z[c] - mx);
        z[c] = ex;   // each thread rewrites only its own entries: no race
        s += ex;
    }
    s = block_sum_d(s, sh);
    for (int c = threadIdx.x; c < K; c += blockDim.x) z[c] /= s;
}

// Per class c (one thread each), over the strong rows ps = P[b..2b-1]:
//   pbar_c = (sum_i ps[i,c]) / b      in row order, as train.c
//   hc[c]  = pbar_c log pbar_c (0 log 0 = 0), so H = -sum_c hc[c]
//   dl[c]  = beta (log max(pbar_c, 1e-300) + 1) / b   "d(-H)/dps[i,c]", the same for every i
__global__ static void loss_columns_forward_kernel1(double *hc, double *dl, const double *P, int b,
                                                    int K, double beta) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= K) return;
    const double *ps = P + (size_t)b * K;
    double pbar = 0.0;
    for (int i = 0; i < b; i++) pbar += ps[(size_t)i * K + c];
    if (b > 0) pbar /= b;   // b = 0: train.c gets 0/0 = NaN, which its "pbar > 0" also skips
    hc[c] = pbar > 0.0 ? pbar * log(pbar) : 0.0;
    dl[c] = b > 0 ? beta * (log(pbar > 1e-300 ? pbar : 1e-300) + 1.0) / b : 0.0;
}

// Number of high-quality rows, the same in every block (exact: integer-valued doubles).
__device__ static double count_hq(const uint8_t *hq, int b, double *sh) {
    double n = 0.0;
    for (int i = threadIdx.x; i < b; i += blockDim.x) n += hq[i] ? 1.0 : 0.0;
    return block_sum_d(n, sh);
}

// One block per sample i (strong row b + i, weak row i of P). Builds g = dL/dps[i,:] as train.c:
//   GCE (hq):  g[y] = -on_g ps[i,y]^(q-1) / n_h
//   MSE (!hq): g[c] = on_m alpha 2 (ps - pw) / (n_u K)
//   entropy:   g[c] += dl[c]
// then the softmax backward "g <- ps (g - <g, ps>)" into G (b,K), and the row's values:
//   rows[0*b + i] GCE summand (1 - py^q)/q, rows[1*b + i] Σ_c (ps - pw)², rows[2*b + i] = 1
//   when the row's pseudo-label is out of range (the trainer checks them; this keeps a bad
//   label from reading out of bounds and turns the loss into NaN instead).
__global__ static void loss_rows_backward_kernel1(double *G, double *rows, const double *P,
                                                  const double *dl, const int32_t *yhat,
                                                  const uint8_t *hq, int b, int K, int mask,
                                                  double q, double alpha) {
    __shared__ double sh[32];
    const int i = blockIdx.x;
    const double nh = count_hq(hq, b, sh), nu = (double)b - nh;
    const double on_g = (mask & 1) ? 1.0 : 0.0, on_m = (mask & 2) ? 1.0 : 0.0;
    const int use_ent = (mask & 4) != 0;
    const double *ps = P + (size_t)(b + i) * K, *pw = P + (size_t)i * K;
    double *g = G + (size_t)i * K;
    const int is_hq = hq[i] != 0;
    const int y = is_hq ? yhat[i] : 0;
    const int bad = is_hq && (y < 0 || y >= K);
    const double den = nu * K;
    double dot = 0.0, sq = 0.0;
    for (int c = threadIdx.x; c < K; c += blockDim.x) {
        double gc = 0.0;
        if (is_hq) {
            if (!bad && c == y) gc = -on_g * pow(ps[c], q - 1.0) / nh;
        } else {
            const double d = ps[c] - pw[c];
            sq += d * d;
            gc = on_m * alpha * 2.0 * d / den;
        }
        if (use_ent) gc += dl[c];
        g[c] = gc;   // own entries only, rewritten below by the same thread
        dot += gc * ps[c];
    }
    dot = block_sum_d(dot, sh);
    sq = block_sum_d(sq, sh);
    for (int c = threadIdx.x; c < K; c += blockDim.x) g[c] = ps[c] * (g[c] - dot);
    if (threadIdx.x == 0) {
        rows[i] = is_hq && !bad ? (1.0 - pow(ps[y], q)) / q : 0.0;
        rows[(size_t)b + i] = is_hq ? 0.0 : sq;
        rows[(size_t)2 * b + i] = bad ? 1.0 : 0.0;
    }
}

// terms (6) = {total, gce, mse, entropy, n_hq, n_u} (LossValue). One block.
__global__ static void loss_terms_forward_kernel1(double *terms, const double *rows,
                                                  const double *hc, const uint8_t *hq, int b,
                                                  int K, int mask, double alpha, double beta) {
    __shared__ double sh[32];
    const double nh = count_hq(hq, b, sh), nu = (double)b - nh;
    double sg = 0.0, sm = 0.0, nbad = 0.0, sh_ = 0.0;
    for (int i = threadIdx.x; i < b; i += blockDim.x) {
        sg += rows[i];
        sm += rows[(size_t)b + i];
        nbad += rows[(size_t)2 * b + i];
    }
    for (int c = threadIdx.x; c < K; c += blockDim.x) sh_ += hc[c];
    sg = block_sum_d(sg, sh);
    sm = block_sum_d(sm, sh);
    nbad = block_sum_d(nbad, sh);
    sh_ = block_sum_d(sh_, sh);
    if (threadIdx.x == 0) {
        const double gce = nh > 0.0 ? sg / nh : 0.0;
        const double mse = nu > 0.0 ? sm / (nu * K) : 0.0;
        const double H = 0.0 - sh_;
        double total = ((mask & 1) ? gce : 0.0) + ((mask & 2) ? alpha * mse : 0.0) -
                       ((mask & 4) ? beta * H : 0.0);
        if (nbad > 0.0) total = NAN;   // a pseudo-label outside [0,K): no silent garbage
        terms[0] = total;
        terms[1] = nbad > 0.0 ? NAN : gce;
        terms[2] = mse;
        terms[3] = H;
        terms[4] = nh;
        terms[5] = nu;
    }
}

// dW (K,E) = (float)(scale · Σ_i G[i,c] fs[i,e]) — "dW[c,:] += scale sum_i dzs[i,c] fs[i,:]"
// (train.c), summed in row order like the CPU, skipping zero gradients as it does. Overwrites.
// One thread per (c, e), e fastest: a warp reads one G entry (broadcast) and a row of fs.
__global__ static void loss_dw_backward_kernel1(float *dW, const double *G, const float *fs, int b,
                                                int K, int E, double scale) {
    const size_t n = (size_t)K * E;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
         idx += (size_t)gridDim.x * blockDim.x) {
        const int c = (int)(idx / E), e = (int)(idx % E);
        double acc = 0.0;
        for (int i = 0; i < b; i++) {
            const double gz = G[(size_t)i * K + c];
            if (gz == 0.0) continue;
            acc += gz * (double)fs[(size_t)i * E + e];
        }
        dW[idx] = (float)(scale * acc);
    }
}

// --- the loss op ------------------------------------------------------------------------------
void prompt_loss_forward_backward(double *terms, float *dW, const float *F, const float *W,
                                  const int32_t *yhat, const uint8_t *hq, int b, int K, int E,
                                  int mask, double q, double alpha, double beta, double scale) {
    cudaAssert(b >= 0 && K >= 1 && E >= 0, "prompt loss needs b >= 0, K >= 1, E >= 0");
    cudaAssert((size_t)2 * b * K <= 0x7fffffffu * (size_t)8, "too many (row, class) warps");
    // Scratch layout (doubles): P (2b,K) | G (b,K) | hc (K) | dl (K) | rows (3b)
    const size_t nP = (size_t)2 * b * K, nG = (size_t)b * K;
    double *P = loss_scratch(nP + nG + 2 * (size_t)K + 3 * (size_t)b);
    double *G = P + nP, *hc = G + nG, *dl = hc + K, *rows = dl + K;
    const int T = TRAIN_THREADS;
    if (b > 0) {
        const size_t warps = (size_t)2 * b * K;
        loss_logits_forward_kernel1<<<ceil_div_u(warps * 32, T), T>>>(P, F, W, 2 * b, K, E, scale);
        launchCheck();
        loss_softmax_forward_kernel1<<<2 * b, T>>>(P, K);
        launchCheck();
    }
    loss_columns_forward_kernel1<<<ceil_div_u((size_t)K, T), T>>>(hc, dl, P, b, K, beta);
    launchCheck();
    if (b > 0) {
        loss_rows_backward_kernel1<<<b, T>>>(G, rows, P, dl, yhat, hq, b, K, mask, q, alpha);
        launchCheck();
    }
    loss_terms_forward_kernel1<<<1, T>>>(terms, rows, hc, hq, b, K, mask, alpha, beta);
    launchCheck();
    if ((size_t)K * E > 0) {
        loss_dw_backward_kernel1<<<grid_for((size_t)K * E, T), T>>>(dW, G, F + (size_t)b * E, b,
                                                                    K, E, scale);
        launchCheck();
    }
}

// --- SGD ---------------------------------------------------------------------------------------
// Explicit IEEE round-to-nearest float operations without flush-to-zero: nvcc may neither fuse
// them nor (under --use_fast_math's -ftz=true) flush denormals, so they round as the CPU does.
__device__ __forceinline__ float fma_rn_exact(float a, float b, float c) {
    float r;
    asm("fma.rn.f32 %0, %1, %2, %3;" : "=f"(r) : "f"(a), "f"(b), "f"(c));
    return r;
}
__device__ __forceinline__ float mul_rn_exact(float a, float b) {
    float r;
    asm("mul.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
}
__device__ __forceinline__ float add_rn_exact(float a, float b) {
    float r;
    asm("add.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
    return r;
}

// train.c sgd_step, element by element:
//   d = wd != 0 ? fmaf(p, wd, g) : g;  if momentum: buf = first ? d : buf*mo + d (two roundings);
//   d = buf;  p = fmaf(d, (float)(-lr), p)
__global__ static void sgd_forward_kernel1(float *p, float *buf, const float *g, const double *lr,
                                           size_t n, float wd, float mo, int use_wd, int use_mo,
                                           int first) {
    // (float)(-lr): cvt.rn.f32.f64 written out, so no ftz applies (lr is never denormal anyway)
    float nlr;
    const double mlr = -*lr;
    asm("cvt.rn.f32.f64 %0, %1;" : "=f"(nlr) : "d"(mlr));
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const float pi = p[i];
        float d = use_wd ? fma_rn_exact(pi, wd, g[i]) : g[i];
        if (use_mo) {
            const float bi = first ? d : add_rn_exact(mul_rn_exact(buf[i], mo), d);
            buf[i] = bi;
            d = bi;
        }
        p[i] = fma_rn_exact(d, nlr, pi);
    }
}

void sgd_forward(float *p, float *buf, const float *g, const double *lr, size_t n, double momentum,
                 double weight_decay, int have_buf) {
    if (n == 0) return;
    // The float constants are rounded on the host exactly as sgd_step does.
    const float wd = (float)weight_decay, mo = (float)momentum;
    sgd_forward_kernel1<<<grid_for(n, TRAIN_THREADS), TRAIN_THREADS>>>(
        p, buf, g, lr, n, wd, mo, weight_decay != 0.0, momentum != 0.0, !have_buf);
    launchCheck();
}

// --- strided copy ------------------------------------------------------------------------------
// dst row r = src row r (row_len floats each), grid-stride over rows*row_len.
__global__ static void strided_copy_kernel1(float *dst, size_t dst_stride, const float *src,
                                            size_t src_stride, size_t rows, size_t row_len) {
    const size_t n = rows * row_len;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
         idx += (size_t)gridDim.x * blockDim.x) {
        const size_t r = idx / row_len, e = idx % row_len;
        dst[r * dst_stride + e] = src[r * src_stride + e];
    }
}

void strided_copy(float *dst, size_t dst_stride, const float *src, size_t src_stride, int rows,
                  size_t row_len) {
    cudaAssert(rows >= 0, "strided_copy: negative row count");
    if (rows == 0 || row_len == 0) return;
    const size_t n = (size_t)rows * row_len;
    strided_copy_kernel1<<<grid_for(n, TRAIN_THREADS), TRAIN_THREADS>>>(dst, dst_stride, src,
                                                                       src_stride, (size_t)rows,
                                                                       row_len);
    launchCheck();
}

// --- views -------------------------------------------------------------------------------------
// augment_batch_cuda has the op's layout (rows j < b weak, b + j strong, of sample index[j],
// from host images; CLIP-normalised (2b,3,S,S)) and keys; it is synchronous and uploads host
// memory, so it cannot be part of a captured graph.
int seic_views_forward(float *pixels, const uint8_t *const *imgs, const int *H, const int *W,
                       const size_t *index, int b, int S, uint64_t seed, uint64_t epoch,
                       const SeicViewCfg *view) {
    if (stream_is_capturing())
        return laic_error("seic_views_forward: cannot run inside a CUDA graph capture (it "
                          "uploads host images) ---> HINT: make the views before capturing");
    if (b < 0) return laic_error("seic_views_forward: negative batch %d", b);
    return augment_seic_batch_cuda(pixels, NULL, imgs, H, W, index, b, S, seed, epoch, view);
}

int train_views_forward(float *pixels, const uint8_t *const *imgs, const int *H, const int *W,
                        const size_t *index, int b, int S, uint64_t seed, uint64_t epoch) {
    if (stream_is_capturing())
        return laic_error("train_views_forward: cannot run inside a CUDA graph capture (it "
                          "uploads host images) ---> HINT: make the views before capturing");
    if (b < 0) return laic_error("train_views_forward: negative batch %d", b);
    return augment_batch_cuda(pixels, NULL, imgs, H, W, index, b, S, seed, epoch);
}
