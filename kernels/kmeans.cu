/*
 * kmeans.cu — CUDA twins of the k-means ops: squared row norms and row normalisation in
 * double, distances and the assignment (cuBLAS SGEMM + a fused argmin), the centre update, and
 * the per-row objective terms.
 *
 * Letters: N rows, d width, K centres. Row-major; int64 labels and counts as on the CPU.
 *
 * Promises:
 * - assignment: dots = X Cᵀ by SGEMM (TF32 off) over row tiles of at most 2^24 dot products
 *   (scratch that only grows), then one warp per row scans its K distances
 *   ‖x‖² − 2 x·c + ‖c‖² (rounded as the CPU writes it: no FMA contraction) and reduces with
 *   "smaller distance, or equal and lower index" — ties go to the lowest centre, as on the CPU.
 *   Labels can still differ from the CPU where two centres are within GEMM rounding of each
 *   other (cuBLAS and OpenBLAS sum the dot products in different orders).
 * - update: deterministic, no atomics. A ballot scan lists each cluster's rows in increasing
 *   order; then one thread per (centre, column) sums its rows in that order in double and
 *   divides by the count — the same additions in the same order as the CPU op, so for equal
 *   labels the centres are bitwise equal to the CPU's. Empty clusters are left untouched.
 * - norms and objective terms: one warp per row, double accumulation (a different order from
 *   the CPU's loop, so equal to it within double rounding before the final float rounding).
 * - every float<->double conversion goes through f2d_exact / d2f_rn_exact (cluster.cuh):
 *   --use_fast_math's -ftz would otherwise flush subnormals in plain casts.
 *
 * Status: compiled for sm_90, unverified on hardware.
 */
#include "cluster.cuh"

// --- row norms ----------------------------------------------------------------------------
__device__ __forceinline__ double warp_sum_f64(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__global__ static void rownorm2_forward_kernel1(float *out, const float *X, int N, int d) {
    const int lane = threadIdx.x % 32, row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N) return;
    const float *x = X + (size_t)row * d;
    double s = 0.0;
    for (int j = lane; j < d; j += 32) s += f2d_exact(x[j]) * f2d_exact(x[j]);
    s = warp_sum_f64(s);
    if (lane == 0) out[row] = d2f_rn_exact(s);
}

__global__ static void l2normalize_rows_kernel1(float *out, const float *X, int N, int d) {
    const int lane = threadIdx.x % 32, row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N) return;
    const float *x = X + (size_t)row * d;
    double s = 0.0;
    for (int j = lane; j < d; j += 32) s += f2d_exact(x[j]) * f2d_exact(x[j]);
    const double nrm = sqrt(warp_sum_f64(s));   // complete before any lane writes (in place)
    const double inv = nrm > 0.0 ? 1.0 / nrm : 0.0;   // no floor: as the CPU op
    float *o = out + (size_t)row * d;
    for (int j = lane; j < d; j += 32) o[j] = d2f_rn_exact(f2d_exact(x[j]) * inv);
}

void rownorm2_forward(float *out, const float *X, int N, int d) {
    if (N <= 0) return;
    rownorm2_forward_kernel1<<<ceil_div_u((size_t)N, 8), 256>>>(out, X, N, d);
    launchCheck();
}

void l2normalize_rows(float *out, const float *X, int N, int d) {
    if (N <= 0) return;
    l2normalize_rows_kernel1<<<ceil_div_u((size_t)N, 8), 256>>>(out, X, N, d);
    launchCheck();
}

// --- distances and assignment -------------------------------------------------------------
// Rows per GEMM tile: at most 2^24 dot products (64 MiB of scratch), at least one row.
static int rows_per_tile(int N, int K) {
    size_t r = ((size_t)1 << 24) / (size_t)(K > 0 ? K : 1);
    if (r < 1) r = 1;
    return r < (size_t)N ? (int)r : N;
}

// dots (R,K) = X (R,d) Cᵀ: column-major dotsᵀ (K,R) = C Xᵀ.
static void dots_sgemm(float *dots, const float *X, const float *C, int R, int d, int K) {
    const float one = 1.0f, zero = 0.0f;
    cublasCheck(cublasSgemm(cluster_cublas(), CUBLAS_OP_T, CUBLAS_OP_N, K, R, d, &one, C, d, X, d,
                            &zero, dots, K));
}

// ‖x‖² − 2 x·c + ‖c‖² with each operation rounded separately, as the CPU's expression.
__device__ __forceinline__ float sqdist_of(float x2, float dot, float c2) {
    return __fadd_rn(__fsub_rn(x2, __fmul_rn(2.0f, dot)), c2);
}

// Nearest centre of one row, by the whole warp: each lane scans centres lane, lane+32, ...
// (dots (K) = x·c, cc (K) = ||c||^2, x2 = ||x||^2), then a butterfly keeps the smallest
// distance, ties to the lowest index. On return every lane holds *best and *bj (INT_MAX when
// no distance was finite).
__device__ inline void warp_nearest_centre(float *best_out, int *bj_out, const float *di,
                                           const float *cc, float x2, int K, int lane) {
    float best = INFINITY;
    int bj = INT_MAX;   // "none yet": loses every tie
    for (int j = lane; j < K; j += 32) {
        const float t = sqdist_of(x2, di[j], cc[j]);
        if (t < best) {
            best = t;
            bj = j;
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        const float ob = __shfl_xor_sync(0xffffffffu, best, o);
        const int oj = __shfl_xor_sync(0xffffffffu, bj, o);
        if (ob < best || (ob == best && oj < bj)) {
            best = ob;
            bj = oj;
        }
    }
    *best_out = best;
    *bj_out = bj;
}


__global__ static void sqdist_epilogue_kernel1(float *D, const float *xx, const float *cc, int R,
                                               int K) {
    const size_t total = (size_t)R * K;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        const float t = sqdist_of(xx[e / K], D[e], cc[e % K]);
        D[e] = t > 0.0f ? t : 0.0f;
    }
}

void sqdist_forward(float *D, const float *X, const float *xx, const float *C, const float *cc,
                    int N, int d, int K) {
    if (N <= 0 || K <= 0) return;
    const int T = rows_per_tile(N, K);
    for (int r0 = 0; r0 < N; r0 += T) {
        const int R = N - r0 < T ? N - r0 : T;
        float *Db = D + (size_t)r0 * K;   // (R,K), computed in place
        dots_sgemm(Db, X + (size_t)r0 * d, C, R, d, K);
        sqdist_epilogue_kernel1<<<grid_for((size_t)R * K, 256), 256>>>(Db, xx + r0, cc, R, K);
        launchCheck();
    }
}

// One warp per row: lane-local strict-< scan in index order, then a (distance, index)
// butterfly that prefers the lower index on equal distances — the CPU's first minimum.
__global__ static void kmeans_argmin_kernel1(int64_t *labels, float *mind, const float *dots,
                                             const float *xx, const float *cc, int R, int K) {
    const int lane = threadIdx.x % 32, row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= R) return;
    const float *di = dots + (size_t)row * K;
    const float x2 = xx[row];
    float best;
    int bj;
    warp_nearest_centre(&best, &bj, di, cc, x2, K, lane);
    if (lane == 0) {
        labels[row] = bj == INT_MAX ? 0 : bj;   // no finite distance: centre 0, as the CPU
        mind[row] = best > 0.0f ? best : 0.0f;
    }
}

void kmeans_assign_forward(int64_t *labels, float *mind, const float *X, const float *xx,
                           const float *C, const float *cc, int N, int d, int K) {
    if (N <= 0) return;
    static ScratchBuf scratch;
    const int T = rows_per_tile(N, K);
    float *dots = (float *)scratch_get(&scratch, sizeof(float) * (size_t)T * K,   // (T,K)
                                       "kmeans_assign");
    for (int r0 = 0; r0 < N; r0 += T) {
        const int R = N - r0 < T ? N - r0 : T;
        dots_sgemm(dots, X + (size_t)r0 * d, C, R, d, K);
        kmeans_argmin_kernel1<<<ceil_div_u((size_t)R, 8), 256>>>(labels + r0, mind + r0, dots,
                                                                  xx + r0, cc, R, K);
        launchCheck();
    }
}

// --- centre update ------------------------------------------------------------------------
// One warp per cluster counts its rows (ballots; integer sums are order-free).
__global__ static void kmeans_count_kernel1(int64_t *counts, const int64_t *labels, int N, int K) {
    const int lane = threadIdx.x % 32, c = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (c >= K) return;
    long long n = 0;
    for (int i0 = 0; i0 < N; i0 += 32) {
        const int i = i0 + lane;
        const unsigned m = __ballot_sync(0xffffffffu, i < N && labels[i] == c);
        n += __popc(m);
    }
    if (lane == 0) counts[c] = n;
}

// One warp per cluster writes its rows, in increasing order, to members[off_c ...], off_c =
// Σ_{c' < c} counts (a K-term loop: K is small next to N).
__global__ static void kmeans_members_kernel1(int *members, const int64_t *counts,
                                              const int64_t *labels, int N, int K) {
    const int lane = threadIdx.x % 32, c = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (c >= K) return;
    long long off = 0;
    for (int q = 0; q < c; q++) off += counts[q];
    for (int i0 = 0; i0 < N; i0 += 32) {
        const int i = i0 + lane;
        const bool mine = i < N && labels[i] == c;
        const unsigned m = __ballot_sync(0xffffffffu, mine);
        if (mine) members[off + __popc(m & ((1u << lane) - 1u))] = i;
        off += __popc(m);
    }
}

// One thread per (centre, column): the CPU's `acc += x` over the cluster's rows in row order.
__global__ static void kmeans_mean_kernel1(float *C, const int64_t *counts, const int *members,
                                           const float *X, int d, int K) {
    const size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (e >= (size_t)K * d) return;
    const int c = (int)(e / d), j = (int)(e % d);
    const long long n = counts[c];
    if (n == 0) return;   // empty cluster: the driver re-seeds it
    long long off = 0;
    for (int q = 0; q < c; q++) off += counts[q];
    double acc = 0.0;
    for (long long p = 0; p < n; p++) acc += f2d_exact(X[(size_t)members[off + p] * d + j]);
    C[e] = d2f_rn_exact(acc / (double)n);   // exact casts under -ftz: the CPU's bits
}

void kmeans_update_forward(float *C, int64_t *counts, const float *X, const int64_t *labels,
                           int N, int d, int K) {
    if (K <= 0) return;
    static ScratchBuf scratch;
    int *members = (int *)scratch_get(&scratch, sizeof(int) * (size_t)(N > 0 ? N : 1),   // (N)
                                      "kmeans_update");
    const unsigned gk = ceil_div_u((size_t)K, 8);
    kmeans_count_kernel1<<<gk, 256>>>(counts, labels, N, K);
    launchCheck();
    kmeans_members_kernel1<<<gk, 256>>>(members, counts, labels, N, K);
    launchCheck();
    if (d > 0) {
        kmeans_mean_kernel1<<<ceil_div_u((size_t)K * d, 128), 128>>>(C, counts, members, X, d, K);
        launchCheck();
    }
}

// --- objective terms ----------------------------------------------------------------------
__global__ static void kmeans_rowdist_kernel1(double *out, const float *X, const float *C,
                                              const int64_t *labels, int N, int d) {
    const int lane = threadIdx.x % 32, row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N) return;
    const float *x = X + (size_t)row * d, *c = C + (size_t)labels[row] * d;
    double s = 0.0;
    for (int j = lane; j < d; j += 32) {
        const double t = f2d_exact(x[j]) - f2d_exact(c[j]);
        s += t * t;
    }
    s = warp_sum_f64(s);
    if (lane == 0) out[row] = s;
}

void kmeans_rowdist_forward(double *out, const float *X, const float *C, const int64_t *labels,
                            int N, int d) {
    if (N <= 0) return;
    kmeans_rowdist_kernel1<<<ceil_div_u((size_t)N, 8), 256>>>(out, X, C, labels, N, d);
    launchCheck();
}

// --- fused assignment + fixed-point sums (the update that is exact in any order) ----------------
// The assignment is kmeans_assign_forward's. Then one thread per element adds
// q = round-half-even(x · 2^shift) (__double2ll_rn: the CPU's cvtsd2si with the default rounding;
// both give INT64_MIN for a NaN) to sums[label, j] with a 64-bit integer atomic: integer sums
// are exact, so the arrival order of the atomics cannot change them and the sums are bitwise
// the CPU's for equal labels. counts the same way.
__global__ static void kmeans_fixsum_kernel1(int64_t *sums, int64_t *counts, const float *X,
                                             const int64_t *labels, int N, int d, double scale) {
    const size_t total = (size_t)N * d;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x) {
        const size_t i = e / d, j = e % d;
        const int64_t c = labels[i];
        const long long q = __double2ll_rn(f2d_exact(X[e]) * scale);   // exact product: 2^shift
        if (sums) atomicAdd((unsigned long long *)(sums + (size_t)c * d + j), (unsigned long long)q);
        if (j == 0) atomicAdd((unsigned long long *)(counts + c), 1ULL);
    }
}

__global__ static void kmeans_count_only_kernel1(int64_t *counts, const int64_t *labels, int N) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (size_t)N;
         i += (size_t)gridDim.x * blockDim.x)
        atomicAdd((unsigned long long *)(counts + labels[i]), 1ULL);
}

void kmeans_assign_sums_forward(int64_t *labels, float *mind, int64_t *sums, int64_t *counts,
                                const float *X, const float *xx, const float *C, const float *cc,
                                int N, int d, int K, int shift) {
    if (K <= 0) return;
    cudaCheck(cudaMemsetAsync(counts, 0, sizeof(int64_t) * (size_t)K, cudaStreamPerThread));
    if (sums) cudaCheck(cudaMemsetAsync(sums, 0, sizeof(int64_t) * (size_t)K * d, cudaStreamPerThread));
    if (N <= 0) return;
    kmeans_assign_forward(labels, mind, X, xx, C, cc, N, d, K);
    if (sums && d > 0) {
        kmeans_fixsum_kernel1<<<grid_for((size_t)N * d, 256), 256>>>(sums, counts, X, labels, N, d,
                                                                      ldexp(1.0, shift));
    } else {
        kmeans_count_only_kernel1<<<grid_for((size_t)N, 256), 256>>>(counts, labels, N);
    }
    launchCheck();
}

// One thread per (centre, column): ((double)sum · 2^-shift) / count, rounded to float — the
// CPU's three roundings (int64 → double, the division, double → float), each exact-mode here.
__global__ static void kmeans_centres_kernel1(float *C, const int64_t *sums, const int64_t *counts,
                                              int K, int d, double unscale) {
    const size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x;
    if (e >= (size_t)K * d) return;
    const long long n = counts[e / d];
    if (n == 0) return;   // empty cluster: left for the driver to re-seed
    C[e] = d2f_rn_exact(__ddiv_rn(__ll2double_rn(sums[e]) * unscale, (double)n));
}

void kmeans_centres_forward(float *C, const int64_t *sums, const int64_t *counts, int K, int d,
                            int shift) {
    if (K <= 0 || d <= 0) return;
    kmeans_centres_kernel1<<<ceil_div_u((size_t)K * d, 256), 256>>>(C, sums, counts, K, d,
                                                                     ldexp(1.0, -shift));
    launchCheck();
}

// --- batched Lloyd: all restarts at once ----------------------------------------------------
// kmeans_lloyd_batched_cuda (host/cluster/cluster.h). R restarts share one (R·K, d) centre matrix, so
// each assignment is ONE SGEMM X (tile,d) · C[active range]ᵀ for all restarts; every other
// step is a kernel over (restart, ·) that returns at once for a restart whose flag active[r]
// is 0. Convergence (label changes, centre shift, iteration count) is decided on the device;
// the host reads the R flags back every KMB_CHECK iterations only to stop early and to narrow
// the GEMM to the range of restarts still running (a stale range is a superset: safe).
// Per restart the arithmetic is the sequential driver's: same update order (bitwise centres for
// equal labels), same empty-cluster rule, same tie rules. Differences, all documented:
// the objective and the centre shift are double sums in a fixed tree order instead of the
// CPU's row order (equal within double rounding); the SGEMM has R·K columns instead of K, so
// cuBLAS may round dots differently from the per-restart call (labels equal up to GEMM ties).
#define KMB_CHECK 4
#define KMB_THREADS 256

extern "C" {
#include "cluster/cluster.h"
}

// Fixed-order block sum of one double per thread (blockDim.x == KMB_THREADS); result in thread 0.
__device__ static double block_sum_f64(double v, double *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = KMB_THREADS / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    return sh[0];
}

// Iteration start: it[r]++, changed[r] = 0 for running restarts.
__global__ static void kmb_begin_kernel1(int *it, unsigned long long *changed, const int *active,
                                         int R) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= R || !active[r]) return;
    it[r]++;
    changed[r] = 0;
}

// Iteration end (the sequential driver's `if (changed == 0 || shift <= tol) break` and its
// `while (it < iters)`); init != 0 only after the first assignment: active[r] = iters > 0.
__global__ static void kmb_flags_kernel1(int *active, const int *it,
                                         const unsigned long long *changed, const double *shift,
                                         int R, int iters, double tol, int init) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= R || !active[r]) return;
    if (init) active[r] = iters > 0;
    else active[r] = !(changed[r] == 0 || shift[r] <= tol) && it[r] < iters;
}

// l2normalize_rows_kernel1 on the rows (R·K) of running restarts only (a converged restart's
// centres must not be normalised again: that could move their last bits).
__global__ static void kmb_l2normalize_kernel1(float *C, const int *active, int RK, int K, int d) {
    const int lane = threadIdx.x % 32, row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= RK || !active[row / K]) return;
    float *x = C + (size_t)row * d;
    double s = 0.0;
    for (int j = lane; j < d; j += 32) s += f2d_exact(x[j]) * f2d_exact(x[j]);
    const double nrm = sqrt(warp_sum_f64(s));
    const double inv = nrm > 0.0 ? 1.0 / nrm : 0.0;   // no floor: as the CPU op
    for (int j = lane; j < d; j += 32) x[j] = d2f_rn_exact(f2d_exact(x[j]) * inv);
}

// kmeans_argmin_kernel1 for a tile of R rows (from row r0) × the restarts r_lo .. r_lo+Rn-1 of
// dots (R, Rn·K): one warp per (row, restart). count != 0 adds label changes to changed[r]
// (an integer atomic: the count is exact whatever the order).
__global__ static void kmb_assign_kernel1(int64_t *labels, float *mind, unsigned long long *changed,
                                          const float *dots, const float *xx, const float *cc,
                                          const int *active, int R, int r0, int r_lo, int Rn,
                                          int N, int K, int count) {
    const int lane = threadIdx.x % 32;
    const size_t w = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
    if (w >= (size_t)R * Rn) return;
    const int row = (int)(w / Rn), rl = (int)(w % Rn), r = r_lo + rl;
    if (!active[r]) return;
    const float *di = dots + (size_t)row * Rn * K + (size_t)rl * K;
    const float *cr = cc + (size_t)r * K;
    const float x2 = xx[r0 + row];
    float best;
    int bj;
    warp_nearest_centre(&best, &bj, di, cr, x2, K, lane);
    if (lane == 0) {
        const size_t e = (size_t)r * N + r0 + row;
        const int64_t lab = bj == INT_MAX ? 0 : bj;
        if (count && labels[e] != lab) atomicAdd(changed + r, 1ULL);
        labels[e] = lab;
        mind[e] = best > 0.0f ? best : 0.0f;
    }
}

// kmeans_count_kernel1 and kmeans_members_kernel1 per (restart, cluster), one warp each; two
// launches because a cluster's member offset needs the counts of the clusters before it.
__global__ static void kmb_count_kernel1(int64_t *counts, const int64_t *labels,
                                         const int *active, int N, int K, int R) {
    const int lane = threadIdx.x % 32, g = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (g >= R * K || !active[g / K]) return;
    const int r = g / K, c = g % K;
    const int64_t *lab = labels + (size_t)r * N;
    long long n = 0;
    for (int i0 = 0; i0 < N; i0 += 32) {
        const int i = i0 + lane;
        n += __popc(__ballot_sync(0xffffffffu, i < N && lab[i] == c));
    }
    if (lane == 0) counts[g] = n;
}

__global__ static void kmb_members_kernel1(int *members, const int64_t *counts,
                                           const int64_t *labels, const int *active, int N, int K,
                                           int R) {
    const int lane = threadIdx.x % 32, g = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (g >= R * K || !active[g / K]) return;
    const int r = g / K, c = g % K;
    const int64_t *lab = labels + (size_t)r * N;
    int *mem = members + (size_t)r * N;
    long long off = 0;
    for (int q = 0; q < c; q++) off += counts[(size_t)r * K + q];
    for (int i0 = 0; i0 < N; i0 += 32) {
        const int i = i0 + lane;
        const bool mine = i < N && lab[i] == c;
        const unsigned m = __ballot_sync(0xffffffffu, mine);
        if (mine) mem[off + __popc(m & ((1u << lane) - 1u))] = i;
        off += __popc(m);
    }
}

// Centre means, one block per (restart, cluster, 128-column chunk), one thread per column:
// `acc += x` over the members in increasing row order (the CPU's order, so bitwise the CPU's
// centres for equal labels). Member indices are staged in shared memory and 8 row loads are
// issued before the 8 ordered additions, so each thread keeps several loads in flight.
#define KMB_MEAN_COLS 128
#define KMB_MEAN_STAGE 512
__global__ static void kmb_mean_kernel1(float *C, const int64_t *counts, const int *members,
                                        const float *X, const int *active, int N, int d, int K) {
    __shared__ int sm[KMB_MEAN_STAGE];
    const int chunks = (d + KMB_MEAN_COLS - 1) / KMB_MEAN_COLS;
    const int g = blockIdx.x / chunks, r = g / K;
    if (!active[r]) return;   // block-uniform
    const long long n = counts[g];
    if (n == 0) return;       // block-uniform; empty clusters are re-seeded later
    const int c = g % K, j = (blockIdx.x % chunks) * KMB_MEAN_COLS + threadIdx.x;
    long long off = 0;
    for (int q = 0; q < c; q++) off += counts[(size_t)r * K + q];
    const int *mem = members + (size_t)r * N + off;
    double acc = 0.0;
    for (long long p0 = 0; p0 < n; p0 += KMB_MEAN_STAGE) {
        const int m = n - p0 < KMB_MEAN_STAGE ? (int)(n - p0) : KMB_MEAN_STAGE;
        __syncthreads();   // the previous stage is consumed
        for (int q = threadIdx.x; q < m; q += blockDim.x) sm[q] = mem[p0 + q];
        __syncthreads();
        if (j < d) {
            int q = 0;
            for (; q + 8 <= m; q += 8) {
                float v[8];
#pragma unroll
                for (int u = 0; u < 8; u++) v[u] = X[(size_t)sm[q + u] * d + j];
#pragma unroll
                for (int u = 0; u < 8; u++) acc += f2d_exact(v[u]);   // -ftz-proof
            }
            for (; q < m; q++) acc += f2d_exact(X[(size_t)sm[q] * d + j]);
        }
    }
    if (j < d) C[(size_t)g * d + j] = d2f_rn_exact(acc / (double)n);
}

// Empty clusters, one block per running restart with any: in cluster order, the unused row with
// the largest mind (ties to the lowest row) becomes the centre — the sequential driver's rule.
__global__ static void kmb_reseed_kernel1(float *C, uint8_t *used, const int64_t *counts,
                                          const float *mind, const float *X, const int *active,
                                          int N, int d, int K) {
    __shared__ float sv[KMB_THREADS];
    __shared__ int si[KMB_THREADS];
    const int r = blockIdx.x, t = threadIdx.x;
    if (!active[r]) return;
    const int64_t *cnt = counts + (size_t)r * K;
    bool any = false;
    for (int c = 0; c < K && !any; c++) any = cnt[c] == 0;
    if (!any) return;   // block-uniform (every thread read the same counts)
    uint8_t *u = used + (size_t)r * N;
    const float *md = mind + (size_t)r * N;
    for (int i = t; i < N; i += blockDim.x) u[i] = 0;
    __syncthreads();
    for (int c = 0; c < K; c++) {
        if (cnt[c] != 0) continue;
        float bv = -INFINITY;
        int bi = INT_MAX;   // none
        for (int i = t; i < N; i += blockDim.x)
            if (!u[i] && (bi == INT_MAX || md[i] > bv)) {
                bv = md[i];
                bi = i;
            }
        sv[t] = bv;
        si[t] = bi;
        __syncthreads();
        for (int s = KMB_THREADS / 2; s > 0; s >>= 1) {
            if (t < s) {
                const float ov = sv[t + s];
                const int oi = si[t + s];
                if (oi != INT_MAX &&
                    (si[t] == INT_MAX || ov > sv[t] || (ov == sv[t] && oi < si[t]))) {
                    sv[t] = ov;
                    si[t] = oi;
                }
            }
            __syncthreads();
        }
        const int far = si[0];   // N >= K guarantees a row is left
        if (t == 0) u[far] = 1;
        float *dst = C + ((size_t)r * K + c) * d;
        for (int j = t; j < d; j += blockDim.x) dst[j] = X[(size_t)far * d + j];
        __syncthreads();   // sv/si and u are reused by the next empty cluster
    }
}

// shift[r] = Σ (C − Cold)² over the restart's K·d entries, double, fixed tree order.
__global__ static void kmb_shift_kernel1(double *shift, const float *C, const float *Cold,
                                         const int *active, int K, int d) {
    __shared__ double sh[KMB_THREADS];
    const int r = blockIdx.x;
    if (!active[r]) return;
    const size_t n = (size_t)K * d, base = (size_t)r * n;
    double s = 0.0;
    for (size_t e = threadIdx.x; e < n; e += blockDim.x) {
        const double t = f2d_exact(C[base + e]) - f2d_exact(Cold[base + e]);
        s += t * t;
    }
    s = block_sum_f64(s, sh);
    if (threadIdx.x == 0) shift[r] = s;
}

// Per-row objective terms of running restarts: one warp per (restart, row), as
// kmeans_rowdist_kernel1.
__global__ static void kmb_rowdist_kernel1(double *out, const float *X, const float *C,
                                           const int64_t *labels, const int *active, int N, int d,
                                           int K, int R) {
    const int lane = threadIdx.x % 32;
    const size_t w = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
    if (w >= (size_t)R * N) return;
    const int r = (int)(w / N), row = (int)(w % N);
    if (!active[r]) return;
    const float *x = X + (size_t)row * d, *c = C + ((size_t)r * K + labels[w]) * d;
    double s = 0.0;
    for (int j = lane; j < d; j += 32) {
        const double t = f2d_exact(x[j]) - f2d_exact(c[j]);
        s += t * t;
    }
    s = warp_sum_f64(s);
    if (lane == 0) out[w] = s;
}

// obj[r] = Σ_rows rowd (fixed tree order), appended to the restart's trace row.
__global__ static void kmb_objective_kernel1(double *obj, double *trace, int *tl,
                                             const double *rowd, const int *active, int N,
                                             int stride) {
    __shared__ double sh[KMB_THREADS];
    const int r = blockIdx.x;
    if (!active[r]) return;
    const double *v = rowd + (size_t)r * N;
    double s = 0.0;
    for (int i = threadIdx.x; i < N; i += blockDim.x) s += v[i];
    s = block_sum_f64(s, sh);
    if (threadIdx.x == 0) {
        obj[r] = s;
        if (tl[r] < stride) trace[(size_t)r * stride + tl[r]] = s;
        tl[r]++;
    }
}

namespace {
struct KmbState {
    float *Cold, *cc, *mind, *dots;
    int64_t *counts, *labels;
    int *members, *active, *it, *tl;
    uint8_t *used;
    double *rowd, *shift, *obj, *trace;
    unsigned long long *changed;
};
}   // namespace

// cudaMalloc that records "kmeans: out of device memory ..." instead of exiting.
static void *kmb_alloc(size_t bytes, int *fail) {
    if (*fail) return NULL;
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();   // clear the sticky-free allocation error
        laic_error("kmeans: out of device memory allocating %zu bytes for the batched restarts",
                   bytes);
        *fail = 1;
        return NULL;
    }
    return p;
}

// One assignment of rows 0..N-1 for restarts r_lo..r_hi (the GEMM) gated by active.
static void kmb_assign(KmbState *s, const float *C, const float *X, const float *xx, int N,
                       int d, int K, int r_lo, int r_hi, int T, int count) {
    const int Rn = r_hi - r_lo + 1, cols = Rn * K;
    const float one = 1.0f, zero = 0.0f;
    for (int r0 = 0; r0 < N; r0 += T) {
        const int R = N - r0 < T ? N - r0 : T;
        // dots (R, cols) = X[r0:r0+R] · C[r_lo·K : (r_hi+1)·K]ᵀ
        cublasCheck(cublasSgemm(cluster_cublas(), CUBLAS_OP_T, CUBLAS_OP_N, cols, R, d, &one,
                                C + (size_t)r_lo * K * d, d, X + (size_t)r0 * d, d, &zero,
                                s->dots, cols));
        kmb_assign_kernel1<<<ceil_div_u((size_t)R * Rn, 8), 256>>>(
            s->labels, s->mind, s->changed, s->dots, xx, s->cc, s->active, R, r0, r_lo, Rn, N,
            K, count);
        launchCheck();
    }
}

static void kmb_objective(KmbState *s, const float *C, const float *X, int N, int d, int K,
                          int R, int stride) {
    kmb_rowdist_kernel1<<<ceil_div_u((size_t)R * N, 8), 256>>>(s->rowd, X, C, s->labels,
                                                                 s->active, N, d, K, R);
    launchCheck();
    kmb_objective_kernel1<<<R, KMB_THREADS>>>(s->obj, s->trace, s->tl, s->rowd, s->active, N,
                                              stride);
    launchCheck();
}

extern "C" int kmeans_lloyd_batched_cuda(float *C, double *obj, int *n_iter, double *trace,
                                         int *trace_len, const float *X, const float *xx, int N,
                                         int d, int K, int R, int iters, double tol,
                                         int spherical) {
    if (N < 1 || d < 1 || K < 1 || R < 1 || iters < 0)
        return laic_error("kmeans: bad batched sizes N=%d d=%d K=%d R=%d", N, d, K, R);
    const int RK = R * K, stride = trace ? iters + 1 : 1;
    // Rows per GEMM tile: at most 2^24 dots for all restarts together, at least one row.
    size_t tr = ((size_t)1 << 24) / (size_t)RK;
    const int T = tr < 1 ? 1 : tr > (size_t)N ? N : (int)tr;
    int fail = 0;
    KmbState s;
    memset(&s, 0, sizeof s);
    s.Cold = (float *)kmb_alloc(sizeof(float) * (size_t)RK * d, &fail);
    s.cc = (float *)kmb_alloc(sizeof(float) * (size_t)RK, &fail);
    s.mind = (float *)kmb_alloc(sizeof(float) * (size_t)R * N, &fail);
    s.dots = (float *)kmb_alloc(sizeof(float) * (size_t)T * RK, &fail);
    s.counts = (int64_t *)kmb_alloc(sizeof(int64_t) * (size_t)RK, &fail);
    s.labels = (int64_t *)kmb_alloc(sizeof(int64_t) * (size_t)R * N, &fail);
    s.members = (int *)kmb_alloc(sizeof(int) * (size_t)R * N, &fail);
    s.active = (int *)kmb_alloc(sizeof(int) * (size_t)R, &fail);
    s.it = (int *)kmb_alloc(sizeof(int) * (size_t)R, &fail);
    s.tl = (int *)kmb_alloc(sizeof(int) * (size_t)R, &fail);
    s.used = (uint8_t *)kmb_alloc((size_t)R * N, &fail);
    s.rowd = (double *)kmb_alloc(sizeof(double) * (size_t)R * N, &fail);
    s.shift = (double *)kmb_alloc(sizeof(double) * (size_t)R, &fail);
    s.obj = (double *)kmb_alloc(sizeof(double) * (size_t)R, &fail);
    s.trace = (double *)kmb_alloc(sizeof(double) * (size_t)R * stride, &fail);
    s.changed = (unsigned long long *)kmb_alloc(sizeof(unsigned long long) * (size_t)R, &fail);
    int *act_h = (int *)calloc((size_t)R, sizeof(int));
    if (!fail && !act_h) {
        laic_error("kmeans: out of host memory for the batched restarts");
        fail = 1;
    }
    if (!fail) {
        for (int r = 0; r < R; r++) act_h[r] = 1;
        cudaCheck(cudaMemcpy(s.active, act_h, sizeof(int) * (size_t)R, cudaMemcpyHostToDevice));
        cudaCheck(cudaMemset(s.it, 0, sizeof(int) * (size_t)R));
        cudaCheck(cudaMemset(s.tl, 0, sizeof(int) * (size_t)R));
        cudaCheck(cudaMemset(s.labels, 0, sizeof(int64_t) * (size_t)R * N));
        cudaCheck(cudaMemset(s.changed, 0, sizeof(unsigned long long) * (size_t)R));
        const unsigned gr = ceil_div_u((size_t)R, 128), grk = ceil_div_u((size_t)RK, 8);
        const unsigned gmean = (unsigned)RK * ceil_div_u((size_t)d, KMB_MEAN_COLS);
        // First assignment of every restart (trace[0]).
        if (spherical) {
            kmb_l2normalize_kernel1<<<grk, 256>>>(C, s.active, RK, K, d);
            launchCheck();
        }
        rownorm2_forward(s.cc, C, RK, d);
        kmb_assign(&s, C, X, xx, N, d, K, 0, R - 1, T, 0);
        if (trace) kmb_objective(&s, C, X, N, d, K, R, stride);
        kmb_flags_kernel1<<<gr, 128>>>(s.active, s.it, s.changed, s.shift, R, iters, tol, 1);
        launchCheck();
        int r_lo = 0, r_hi = R - 1;
        for (int step = 0; step < iters && r_lo <= r_hi; step++) {
            kmb_begin_kernel1<<<gr, 128>>>(s.it, s.changed, s.active, R);
            launchCheck();
            cudaCheck(cudaMemcpyAsync(s.Cold, C, sizeof(float) * (size_t)RK * d,
                                      cudaMemcpyDeviceToDevice, cudaStreamPerThread));
            kmb_count_kernel1<<<grk, 256>>>(s.counts, s.labels, s.active, N, K, R);
            launchCheck();
            kmb_members_kernel1<<<grk, 256>>>(s.members, s.counts, s.labels, s.active, N, K, R);
            launchCheck();
            kmb_mean_kernel1<<<gmean, KMB_MEAN_COLS>>>(C, s.counts, s.members, X, s.active, N,
                                                       d, K);
            launchCheck();
            kmb_reseed_kernel1<<<R, KMB_THREADS>>>(C, s.used, s.counts, s.mind, X, s.active, N,
                                                   d, K);
            launchCheck();
            if (spherical) {
                kmb_l2normalize_kernel1<<<grk, 256>>>(C, s.active, RK, K, d);
                launchCheck();
            }
            kmb_shift_kernel1<<<R, KMB_THREADS>>>(s.shift, C, s.Cold, s.active, K, d);
            launchCheck();
            rownorm2_forward(s.cc, C, RK, d);
            kmb_assign(&s, C, X, xx, N, d, K, r_lo, r_hi, T, 1);
            // The exact objective rereads X once per restart: only when a trace is wanted.
            if (trace) kmb_objective(&s, C, X, N, d, K, R, stride);
            kmb_flags_kernel1<<<gr, 128>>>(s.active, s.it, s.changed, s.shift, R, iters, tol, 0);
            launchCheck();
            if ((step + 1) % KMB_CHECK == 0) {   // R ints back: stop early, narrow the GEMM
                cudaCheck(cudaMemcpy(act_h, s.active, sizeof(int) * (size_t)R,
                                     cudaMemcpyDeviceToHost));
                while (r_lo <= r_hi && !act_h[r_lo]) r_lo++;
                while (r_hi >= r_lo && !act_h[r_hi]) r_hi--;
            }
        }
        if (!trace) {   // final objective of every restart (its last assignment's labels)
            for (int r = 0; r < R; r++) act_h[r] = 1;
            cudaCheck(cudaMemcpy(s.active, act_h, sizeof(int) * (size_t)R,
                                 cudaMemcpyHostToDevice));
            kmb_objective(&s, C, X, N, d, K, R, stride);
        }
        cudaCheck(cudaMemcpy(obj, s.obj, sizeof(double) * (size_t)R, cudaMemcpyDeviceToHost));
        cudaCheck(cudaMemcpy(n_iter, s.it, sizeof(int) * (size_t)R, cudaMemcpyDeviceToHost));
        if (trace) {
            cudaCheck(cudaMemcpy(trace_len, s.tl, sizeof(int) * (size_t)R,
                                 cudaMemcpyDeviceToHost));
            cudaCheck(cudaMemcpy(trace, s.trace, sizeof(double) * (size_t)R * stride,
                                 cudaMemcpyDeviceToHost));
        }
    }
    free(act_h);
    void *bufs[] = {s.Cold, s.cc, s.mind, s.dots, s.counts, s.labels, s.members, s.active,
                    s.it, s.tl, s.used, s.rowd, s.shift, s.obj, s.trace, s.changed};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) cudaCheck(cudaFree(bufs[i]));
    return fail ? -1 : 0;
}
