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
    for (int j = lane; j < d; j += 32) s += (double)x[j] * x[j];
    s = warp_sum_f64(s);
    if (lane == 0) out[row] = __double2float_rn(s);
}

__global__ static void l2normalize_rows_kernel1(float *out, const float *X, int N, int d) {
    const int lane = threadIdx.x % 32, row = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    if (row >= N) return;
    const float *x = X + (size_t)row * d;
    double s = 0.0;
    for (int j = lane; j < d; j += 32) s += (double)x[j] * x[j];
    const double nrm = sqrt(warp_sum_f64(s));   // complete before any lane writes (in place)
    const double inv = 1.0 / (nrm > 1e-12 ? nrm : 1e-12);
    float *o = out + (size_t)row * d;
    for (int j = lane; j < d; j += 32) o[j] = __double2float_rn((double)x[j] * inv);
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
    if (lane == 0) {
        labels[row] = bj == INT_MAX ? 0 : bj;   // no finite distance: centre 0, as the CPU
        mind[row] = best > 0.0f ? best : 0.0f;
    }
}

void kmeans_assign_forward(int64_t *labels, float *mind, const float *X, const float *xx,
                           const float *C, const float *cc, int N, int d, int K) {
    if (N <= 0) return;
    static ScratchBuf scratch = {NULL, 0};
    const int T = rows_per_tile(N, K);
    float *dots = (float *)scratch_get(&scratch, sizeof(float) * (size_t)T * K);   // (T,K)
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
    for (long long p = 0; p < n; p++) acc += (double)X[(size_t)members[off + p] * d + j];
    C[e] = __double2float_rn(acc / (double)n);
}

void kmeans_update_forward(float *C, int64_t *counts, const float *X, const int64_t *labels,
                           int N, int d, int K) {
    if (K <= 0) return;
    static ScratchBuf scratch = {NULL, 0};
    int *members = (int *)scratch_get(&scratch, sizeof(int) * (size_t)(N > 0 ? N : 1));   // (N)
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
        const double t = (double)x[j] - (double)c[j];
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
