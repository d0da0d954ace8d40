/*
 * knn.cu — CUDA twin of the cosine top-k neighbours (tiled, self excluded) and of the
 * neighbour-consistency filter.
 *
 * Letters: N rows, d width, k neighbours, R rows in a tile, W warps per block.
 *
 * Promises:
 * - Memory O(N·k + tile): a tile of R rows (R·N ≤ 2^26 similarities, 256 MiB of scratch that
 *   only grows) is multiplied against all N rows by cuBLAS SGEMM (TF32 off); the N×N matrix
 *   is never formed.
 * - Selection, one warp per row (knn_topk_kernel1): lane l scans columns l, l+32, … in
 *   increasing order and keeps its own k best in shared memory by insertion, displacing only
 *   on a strictly greater similarity; then k rounds of a warp butterfly pick the best lane
 *   head under (similarity desc, index asc) and that lane pops it. Each lane's list is sorted
 *   in the same order, so the result is the k first of all N−1 candidates in that order —
 *   exactly the CPU's sorted list with ties to the lowest index. Self is skipped by index.
 * - Shared memory: 32·k·(4+4) bytes per warp; k ≤ 256 (64 KiB for one warp, opted in above
 *   48 KiB). The driver rejects larger k on this backend.
 * - Against the CPU: the similarities come from a different GEMM (summation order), so
 *   neighbours whose similarities are within rounding of each other may swap or differ.
 *
 * - Precision (knn_set_precision, host/cluster/cluster.h): fp32 (default) is the path above. tf32 and
 *   bf16 run the same tiled selection on TF32 / bf16 tensor-core similarities but keep
 *   kc = min(k+32, 256, N-1) candidates per row, then knn_rerank_kernel1 recomputes the kc
 *   similarities exactly (double sums of fp32 products) and keeps the k best: the result is
 *   exact unless a true neighbour's reduced-precision similarity fell below the kc-th
 *   candidate's (possible only for near-ties at the cut: TF32 errors ≈ 1e-3, bf16 ≈ 1e-2 on
 *   unit rows). Re-ranked similarities differ from SGEMM's by float rounding (~1e-7).
 *
 * - Fused bf16 path (knn_topk_forward_kernel2, issue 5): GEMM and selection in one kernel. A
 *   thread block owns R = 128 query rows and streams all key tiles (128 rows, cp.async double
 *   buffered 32-wide K slices) through shared memory; WMMA bf16 → fp32 gives the 128×128
 *   similarity tile, which is staged in shared memory (over the idle operand buffers) and merged
 *   into per-row running lists of the kc best (value desc, index asc) kept in shared memory.
 *   The N×N similarities never leave the chip; memory is O(N·kc + N·d) (bf16 copy, candidates).
 *   Then knn_rerank_kernel1 recomputes the kc candidates exactly and keeps the k best, so the
 *   output contract is the fp32 path's (sims are exact fp32 dot products of the returned pairs,
 *   sorted, ties to the lowest index, self excluded). kc = min(max(2k, k+16), 64, N-1)
 *   (LAIC_KNN_SLACK=s, decimal 0..64, overrides the slack: kc = min(k+s, 64, N-1); any other
 *   value is ignored); k with k+16 > 64 (k > 48) falls back to the tiled path with bf16
 *   candidates. Precondition (as the drivers guarantee: finite input, rows normalised): finite
 *   similarities. A NaN is never inserted into a running list, so a row of F with NaNs would
 *   leave empty slots (index -1) for the re-rank to read.
 *   The caveat (as the other reduced-precision modes): a true neighbour is missed only when its
 *   bf16 similarity falls below the kc-th candidate's. |bf16 sim − exact| ≤ (2u+u²)·Σ|a_i b_i|
 *   + fp32 accumulation ≤ ε ≈ 7.9e-3 on unit rows (u = 2⁻⁸), so a returned neighbour that is
 *   not a true top-k one has an exact similarity within 2ε of the true k-th; typical bf16
 *   errors are ~1e-4, so with ≥ 16 spare candidates this needs a near-tie pile-up at the cut.
 *   tests/gpu/test_knn_gpu.c bounds it (2ε per entry, misses in ≤ N/1000 rows).
 * - Kernel choice (ops_cuda_knn_set_kernel / LAIC_KNN_KERNEL, kernels/ops_cuda.h): auto (0)
 *   fuses in bf16 precision only; 1 forces the tiled path (bench baseline); 2 forces the fused
 *   path for any precision (its candidates are bf16 whatever knn_precision says).
 * - Determinism: no atomics, fixed visiting order (key tiles, then columns in increasing
 *   index), so the same input gives the same bits run to run.
 *
 * Status: compiled for sm_90, unverified on hardware.
 */
#include <mma.h>

#include "cluster.cuh"

extern "C" {
#include "cluster/cluster.h"   // knn_precision
}

#define KNN_MAX_K 256

__global__ static void knn_topk_kernel1(int64_t *idx, float *sims, const float *S, int R, int r0,
                                        int N, int k) {
    extern __shared__ unsigned char knn_smem[];
    const int W = blockDim.x / 32, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int r = blockIdx.x * W + warp;
    if (r >= R) return;   // the whole warp leaves together
    float *vs = (float *)knn_smem + (size_t)(warp * 32 + lane) * k;              // (k) values
    int *is = (int *)((float *)knn_smem + (size_t)W * 32 * k) + (size_t)(warp * 32 + lane) * k;
    const float *s = S + (size_t)r * N;   // (N) similarities of row r0 + r
    const int self = r0 + r;
    int cnt = 0;
    for (int j = lane; j < N; j += 32) {
        if (j == self) continue;
        const float v = s[j];
        int p;
        if (cnt == k) {
            if (!(v > vs[k - 1])) continue;
            p = k - 1;   // the last entry drops out
        } else {
            p = cnt++;
        }
        while (p > 0 && v > vs[p - 1]) {
            vs[p] = vs[p - 1];
            is[p] = is[p - 1];
            p--;
        }
        vs[p] = v;
        is[p] = j;
    }
    int head = 0;
    int64_t *oi = idx + (size_t)self * k;
    float *os = sims ? sims + (size_t)self * k : NULL;
    for (int t = 0; t < k; t++) {
        float bv = head < cnt ? vs[head] : -INFINITY;
        int bj = head < cnt ? is[head] : INT_MAX;   // an empty lane loses every comparison
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            const int oj = __shfl_xor_sync(0xffffffffu, bj, o);
            if (ov > bv || (ov == bv && oj < bj)) {
                bv = ov;
                bj = oj;
            }
        }
        if (lane == 0) {
            oi[t] = bj;
            if (os) os[t] = bv;
        }
        if (head < cnt && is[head] == bj) head++;   // column indices are unique across lanes
    }
}

// Tiled similarity GEMM + per-row top-kk selection: idx (N,kk), sims (N,kk) or NULL. prec 0:
// SGEMM (TF32 off); 1: TF32 tensor cores; 2: bf16 operands Fb (N,d), fp32 accumulate.
static void knn_candidates(int64_t *idx, float *sims, const float *F, const uint16_t *Fb, int N,
                           int d, int k, int prec) {
    static ScratchBuf scratch;
    size_t tr = ((size_t)1 << 26) / (size_t)N;
    const int T = tr < 1 ? 1 : tr > (size_t)N ? N : (int)tr;
    float *S = (float *)scratch_get(&scratch, sizeof(float) * (size_t)T * N, "knn");   // (T,N)
    // Warps per block: as many as fit in 48 KiB (at least one, at most 8).
    const size_t per_warp = (size_t)32 * k * (sizeof(float) + sizeof(int));
    int W = (int)((48u << 10) / per_warp);
    W = W < 1 ? 1 : W > 8 ? 8 : W;
    const size_t smem = per_warp * W;
    if (smem > (48u << 10))
        cudaCheck(cudaFuncSetAttribute(knn_topk_kernel1,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    const float one = 1.0f, zero = 0.0f;
    for (int r0 = 0; r0 < N; r0 += T) {
        const int R = N - r0 < T ? N - r0 : T;
        // S (R,N) = F[r0:r0+R] Fᵀ: column-major Sᵀ (N,R) = F · F[r0:]ᵀ.
        if (prec == 0)
            cublasCheck(cublasSgemm(cluster_cublas(), CUBLAS_OP_T, CUBLAS_OP_N, N, R, d, &one, F,
                                    d, F + (size_t)r0 * d, d, &zero, S, N));
        else if (prec == 1)   // TF32 tensor cores on the fp32 operands, fp32 accumulate
            cublasCheck(cublasGemmEx(cluster_cublas(), CUBLAS_OP_T, CUBLAS_OP_N, N, R, d, &one, F,
                                     CUDA_R_32F, d, F + (size_t)r0 * d, CUDA_R_32F, d, &zero, S,
                                     CUDA_R_32F, N, CUBLAS_COMPUTE_32F_FAST_TF32,
                                     CUBLAS_GEMM_DEFAULT));
        else   // bf16 operands, fp32 accumulate and output
            cublasCheck(cublasGemmEx(cluster_cublas(), CUBLAS_OP_T, CUBLAS_OP_N, N, R, d, &one, Fb,
                                     CUDA_R_16BF, d, Fb + (size_t)r0 * d, CUDA_R_16BF, d, &zero,
                                     S, CUDA_R_32F, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        knn_topk_kernel1<<<ceil_div_u((size_t)R, W), 32 * W, smem>>>(idx, sims, S, R, r0, N, k);
        launchCheck();
    }
}

// Re-ranking of the reduced-precision candidates (tf32/bf16 modes, see knn_set_precision in
// host/cluster/cluster.h): one warp per row i recomputes ⟨F_i, F_j⟩ of its kc candidates exactly (fp32
// products summed in double, fixed butterfly order, rounded once), then lane 0 writes the k
// best under (similarity desc, index asc) — the fp32 path's order.
__device__ __forceinline__ double knn_warp_sum_f64(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__global__ static void knn_rerank_kernel1(int64_t *idx, float *sims, const int64_t *cand,
                                          const float *F, int N, int d, int kc, int k) {
    extern __shared__ unsigned char knn_rr_smem[];
    const int W = blockDim.x / 32, warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int i = blockIdx.x * W + warp;
    if (i >= N) return;
    float *vs = (float *)knn_rr_smem + (size_t)warp * kc;                 // (kc)
    int *is = (int *)((float *)knn_rr_smem + (size_t)W * kc) + (size_t)warp * kc;   // (kc)
    const float *fi = F + (size_t)i * d;
    for (int t = 0; t < kc; t++) {
        const int j = (int)cand[(size_t)i * kc + t];
        const float *fj = F + (size_t)j * d;
        double s = 0.0;
        for (int q = lane; q < d; q += 32) s += (double)fi[q] * (double)fj[q];
        s = knn_warp_sum_f64(s);
        if (lane == 0) {
            vs[t] = __double2float_rn(s);
            is[t] = j;
        }
    }
    __syncwarp();
    if (lane != 0) return;
    for (int t = 0; t < k; t++) {
        int b = -1;
        for (int u = 0; u < kc; u++)
            if (is[u] != INT_MAX &&
                (b < 0 || vs[u] > vs[b] || (vs[u] == vs[b] && is[u] < is[b])))
                b = u;
        idx[(size_t)i * k + t] = is[b];
        if (sims) sims[(size_t)i * k + t] = vs[b];
        is[b] = INT_MAX;   // taken
    }
}

// --- fused bf16 GEMM + running top-kc (version 2) ----------------------------------------------
// Block: 256 threads = 8 warps as 2 (rows) x 4 (keys), each warp a 64 x 32 piece of the 128 x
// 128 similarity tile = 4 x 2 WMMA 16x16x16 accumulators (matmul.cu's kernel1 layout). The bf16
// copy Fb (N, dp) has dp = d rounded up to 32 with zero columns, so every K slice is whole and
// every 16-byte cp.async is aligned; rows ≥ N of the last tiles are zero-filled by cp.async's
// src-size operand and their columns are masked in the selection.
//
// Shared memory (dynamic, opted in above 48 KiB):
//   [0, K2_UNION)            operand stages As, Bs [2][128][40] bf16 (40960 B) during the K loop,
//                            then the fp32 tile St [128][132] (67584 B) during the selection;
//   [K2_UNION, +128·kc·4)    lv [128][kc] running values, sorted desc (-inf = empty slot);
//   [..., +128·kc·4)         li [128][kc] their column indices.
// kc = 26 (k = 10): 94208 B, two blocks per SM; kc = 64: 133120 B, one block per SM.
// Registers: ptxas (CUDA 13.0, sm_90) gives 124 a thread, no spills, under
// __launch_bounds__(256, 2), so registers allow two blocks per SM as well.
#define K2_BM 128
#define K2_BN 128
#define K2_BK 32
#define K2_LDS (K2_BK + 8)   // 80-byte rows: 16-byte multiple for cp.async, 32-byte fragment starts
#define K2_SLD (K2_BN + 4)   // fp32 tile row stride: a multiple of 4 floats as store_matrix_sync needs
#define K2_THREADS 256
#define K2_OPER_BYTES (2 * (K2_BM + K2_BN) * K2_LDS * 2)   // 40960
#define K2_TILE_BYTES (K2_BM * K2_SLD * 4)                 // 67584
#define K2_UNION_BYTES (K2_TILE_BYTES > K2_OPER_BYTES ? K2_TILE_BYTES : K2_OPER_BYTES)
#define KNN2_MAX_KC 64   // two list entries per lane in k2_insert
#define KNN2_MIN_SLACK 16

static_assert(K2_UNION_BYTES % 128 == 0, "lists must start 128-byte aligned");
static_assert(K2_BM * (K2_BK / 8) == 2 * K2_THREADS, "k2_load_tile: two 16-byte chunks a thread");
static_assert(K2_BM == 8 * 16, "selection: 8 warps x 16 rows");

__device__ __forceinline__ static void k2_cp_async16(void *smem, const void *gmem, int src_bytes) {
    unsigned int s = (unsigned int)__cvta_generic_to_shared(smem);
    // .cg: bypass L1; src_bytes 0 writes 16 zero bytes (rows beyond N).
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem),
                 "r"(src_bytes));
}
__device__ __forceinline__ static void k2_cp_async_commit(void) {
    asm volatile("cp.async.commit_group;\n" ::);
}
template <int W> __device__ __forceinline__ static void k2_cp_async_wait(void) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(W));
}

// Rows [r0, r0+128) x columns [k0, k0+32) of Fb (N, dp) into a (128, K2_LDS) shared tile;
// 512 chunks of 16 bytes, two per thread. k0 + 32 <= dp always (dp % 32 == 0).
__device__ __forceinline__ static void k2_load_tile(__nv_bfloat16 *tile, const __nv_bfloat16 *Fb,
                                                    int N, int dp, int r0, int k0) {
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int c = threadIdx.x + h * K2_THREADS;
        const int row = c / (K2_BK / 8), col = (c % (K2_BK / 8)) * 8;
        const int gr = r0 + row;
        const bool ok = gr < N;
        // a valid address even when nothing is read (src_bytes 0), so the PTX stays legal
        const __nv_bfloat16 *src = ok ? Fb + (size_t)gr * dp + k0 + col : Fb;
        k2_cp_async16(tile + row * K2_LDS + col, src, ok ? 16 : 0);
    }
}

// Inserts (bv, bj) into one row's list v (kc), j (kc), sorted by (value desc, index asc), the
// last entry dropping out. Called by the whole warp with the same bv, bj; the caller
// guarantees bv > v[kc-1], and bj is larger than every index already listed (columns arrive in
// increasing order), so placing it after all entries with value >= bv keeps ties ordered by
// index. Lane l owns positions l and l+32 (kc <= 64).
__device__ __forceinline__ static void k2_insert(float *v, int *j, int kc, float bv, int bj,
                                                 int lane) {
    const int e0 = lane, e1 = lane + 32;
    const bool h0 = e0 < kc, h1 = e1 < kc;
    const float a0 = h0 ? v[e0] : -INFINITY, a1 = h1 ? v[e1] : -INFINITY;
    const int p = __popc(__ballot_sync(0xffffffffu, h0 && a0 >= bv)) +
                  __popc(__ballot_sync(0xffffffffu, h1 && a1 >= bv));   // p < kc
    // Read the entries that move before anyone writes.
    float m0 = 0.0f, m1 = 0.0f;
    int i0 = 0, i1 = 0;
    if (h0 && e0 > p) m0 = v[e0 - 1], i0 = j[e0 - 1];
    if (h1 && e1 > p) m1 = v[e1 - 1], i1 = j[e1 - 1];
    __syncwarp();
    if (h0 && e0 > p) v[e0] = m0, j[e0] = i0;
    if (h0 && e0 == p) v[e0] = bv, j[e0] = bj;
    if (h1 && e1 > p) v[e1] = m1, j[e1] = i1;
    if (h1 && e1 == p) v[e1] = bv, j[e1] = bj;
    __syncwarp();
}

// cand (N, kc): per row the kc best columns under the bf16 similarities, self excluded, in
// (value desc, index asc) order. Fb (N, dp) bf16, dp % 32 == 0. Grid: ceil(N/128) blocks.
__global__ static void __launch_bounds__(K2_THREADS, 2)
    knn_topk_forward_kernel2(int64_t *cand, const __nv_bfloat16 *Fb, int N, int dp, int kc) {
    using namespace nvcuda;
    extern __shared__ __align__(128) unsigned char k2_smem[];
    __nv_bfloat16 *As = (__nv_bfloat16 *)k2_smem;    // [2][K2_BM][K2_LDS]   (K loop)
    __nv_bfloat16 *Bs = As + 2 * K2_BM * K2_LDS;      // [2][K2_BN][K2_LDS]   (K loop)
    float *St = (float *)k2_smem;                      // [K2_BM][K2_SLD]      (selection)
    float *lv = (float *)(k2_smem + K2_UNION_BYTES);   // [K2_BM][kc]
    int *li = (int *)(lv + (size_t)K2_BM * kc);        // [K2_BM][kc]

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int wm = warp / 4, wn = warp % 4;            // warp grid 2 x 4 for the GEMM
    const int m0 = blockIdx.x * K2_BM;
    const int nk = dp / K2_BK;

    for (int e = threadIdx.x; e < K2_BM * kc; e += K2_THREADS) {
        lv[e] = -INFINITY;   // empty: every finite similarity beats it
        li[e] = -1;
    }
    // (the first __syncthreads of the K loop publishes the empty lists)

    for (int n0 = 0; n0 < N; n0 += K2_BN) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[4][2];
#pragma unroll
        for (int a = 0; a < 4; a++)
#pragma unroll
            for (int b = 0; b < 2; b++) wmma::fill_fragment(acc[a][b], 0.0f);

        // The previous tile's selection ended with a barrier: the overlay St is free again.
        k2_load_tile(As, Fb, N, dp, m0, 0);
        k2_load_tile(Bs, Fb, N, dp, n0, 0);
        k2_cp_async_commit();
        for (int kt = 0; kt < nk; kt++) {
            const int cur = kt & 1;
            if (kt + 1 < nk) {
                // The other stage was last read in iteration kt-1, which ended with a barrier.
                const int nxt = cur ^ 1;
                k2_load_tile(As + nxt * K2_BM * K2_LDS, Fb, N, dp, m0, (kt + 1) * K2_BK);
                k2_load_tile(Bs + nxt * K2_BN * K2_LDS, Fb, N, dp, n0, (kt + 1) * K2_BK);
                k2_cp_async_commit();
                k2_cp_async_wait<1>();   // stage `cur` has landed; `nxt` may be in flight
            } else {
                k2_cp_async_wait<0>();
            }
            __syncthreads();
            const __nv_bfloat16 *a_s = As + cur * K2_BM * K2_LDS + (wm * 64) * K2_LDS;
            const __nv_bfloat16 *b_s = Bs + cur * K2_BN * K2_LDS + (wn * 32) * K2_LDS;
#pragma unroll
            for (int kk = 0; kk < K2_BK; kk += 16) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> af[4];
                // B = keysᵀ (K, keys): element (k, n) = key row n, column k = b_s[n*LDS + k],
                // i.e. column-major with ldm K2_LDS.
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> bf[2];
#pragma unroll
                for (int a = 0; a < 4; a++)
                    wmma::load_matrix_sync(af[a], a_s + a * 16 * K2_LDS + kk, K2_LDS);
#pragma unroll
                for (int b = 0; b < 2; b++)
                    wmma::load_matrix_sync(bf[b], b_s + b * 16 * K2_LDS + kk, K2_LDS);
#pragma unroll
                for (int a = 0; a < 4; a++)
#pragma unroll
                    for (int b = 0; b < 2; b++)
                        wmma::mma_sync(acc[a][b], af[a], bf[b], acc[a][b]);
            }
            __syncthreads();   // everyone is done with `cur` before it is refilled or overlaid
        }

        // No cp.async is in flight (wait<0> above) and every warp has passed the barrier:
        // the operand stages are idle, so the fp32 tile goes over them.
        float *st = St + (size_t)(wm * 64) * K2_SLD + wn * 32;
#pragma unroll
        for (int a = 0; a < 4; a++)
#pragma unroll
            for (int b = 0; b < 2; b++)
                wmma::store_matrix_sync(st + a * 16 * K2_SLD + b * 16, acc[a][b], K2_SLD,
                                        wmma::mem_row_major);
        __syncthreads();

        // Selection: warp w merges rows 16w .. 16w+15 of the tile. Lane l reads columns
        // q*32 + l (q = 0..3), so the row's columns arrive in increasing index order; a ballot
        // finds those above the row's current kc-th value and they are inserted lowest column
        // first, each insertion raising the bar for the rest.
        for (int t = 0; t < 16; t++) {
            const int rr = warp * 16 + t, i = m0 + rr;
            if (i >= N) break;   // warp-uniform; rows only grow with t
            float *v = lv + (size_t)rr * kc;
            int *jj = li + (size_t)rr * kc;
            const float *srow = St + (size_t)rr * K2_SLD;
#pragma unroll
            for (int q = 0; q < K2_BN / 32; q++) {
                const int jc = n0 + q * 32 + lane;
                const float s = srow[q * 32 + lane];
                const bool ok = jc < N && jc != i;
                unsigned int m = __ballot_sync(0xffffffffu, ok && s > v[kc - 1]);
                while (m) {
                    const int src = __ffs(m) - 1;
                    const float bv = __shfl_sync(0xffffffffu, s, src);
                    k2_insert(v, jj, kc, bv, n0 + q * 32 + src, lane);
                    m &= ~(1u << src);
                    m &= __ballot_sync(0xffffffffu, ok && s > v[kc - 1]);
                }
            }
        }
        __syncthreads();   // St is read before the next tile's loads overwrite it
    }

    // Every row saw all N-1 other columns and kc <= N-1, so every slot holds a real column.
    for (int t = 0; t < 16; t++) {
        const int rr = warp * 16 + t, i = m0 + rr;
        if (i >= N) break;
        for (int p = lane; p < kc; p += 32)
            cand[(size_t)i * kc + p] = li[(size_t)rr * kc + p];
    }
}

// out (N, dp) = bf16(F (N, d)) with zero columns d..dp-1 (round to nearest even).
__global__ static void knn_bf16_pad_kernel1(__nv_bfloat16 *out, const float *F, int N, int d,
                                            int dp) {
    const size_t n = (size_t)N * dp;
    for (size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (size_t)gridDim.x * blockDim.x) {
        const size_t r = e / (size_t)dp, c = e % (size_t)dp;
        out[e] = __float2bfloat16_rn(c < (size_t)d ? F[r * d + c] : 0.0f);
    }
}

// --- kernel choice (kernels/ops_cuda.h) --------------------------------------------------------
static int g_knn_kernel = -1;   // -1: not set, read LAIC_KNN_KERNEL once

extern "C" int ops_cuda_knn_set_kernel(int v) {
    if (v < 0 || v > 2) return laic_error("knn: unknown kernel %d (expected 0 auto, 1 or 2)", v);
    g_knn_kernel = v;
    return 0;
}

extern "C" int ops_cuda_knn_kernel(void) {
    if (g_knn_kernel < 0) {
        const char *e = getenv("LAIC_KNN_KERNEL");
        g_knn_kernel = e && !strcmp(e, "1") ? 1 : e && !strcmp(e, "2") ? 2 : 0;
    }
    return g_knn_kernel;
}

// Candidates kept by the fused kernel for k, or 0 when the fused path cannot take k.
extern "C" int ops_cuda_knn_fused_kc(int N, int k) {
    if (k < 1 || k > N - 1 || k + KNN2_MIN_SLACK > KNN2_MAX_KC) return 0;
    int slack = k > KNN2_MIN_SLACK ? k : KNN2_MIN_SLACK;
    // LAIC_KNN_SLACK: decimal digits only, taken when <= KNN2_MAX_KC (more is capped anyway);
    // anything else keeps the default (atoi had no range check: k + a huge value overflowed int,
    // and "abc" read as 0, silently dropping the slack).
    const char *e = getenv("LAIC_KNN_SLACK");
    if (e && *e && strspn(e, "0123456789") == strlen(e) && strlen(e) <= 3) {
        const int s = atoi(e);
        if (s <= KNN2_MAX_KC) slack = s;
    }
    int kc = k + slack;
    if (kc > KNN2_MAX_KC) kc = KNN2_MAX_KC;
    if (kc > N - 1) kc = N - 1;
    return kc;
}

// Largest opt-in dynamic shared memory per block of the current device (queried once).
static int knn_smem_optin(void) {
    static int lim = -1;
    if (lim < 0) {
        int dev = 0;
        cudaCheck(cudaGetDevice(&dev));
        cudaCheck(cudaDeviceGetAttribute(&lim, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    }
    return lim;
}

static size_t knn2_smem_bytes(int kc) {
    return (size_t)K2_UNION_BYTES + (size_t)K2_BM * kc * (sizeof(float) + sizeof(int));
}

// The re-ranking launch shared by the tf32/bf16 tiled path and the fused path.
static void knn_rerank(int64_t *idx, float *sims, const int64_t *cand, const float *F, int N,
                       int d, int kc, int k) {
    const int W = 8;
    const size_t smem = (size_t)W * kc * (sizeof(float) + sizeof(int));
    knn_rerank_kernel1<<<ceil_div_u((size_t)N, W), 32 * W, smem>>>(idx, sims, cand, F, N, d, kc,
                                                                    k);
    launchCheck();
}

// The fused path: bf16 copy, knn_topk_forward_kernel2 candidates, exact re-rank. Returns 0
// without doing anything when the device cannot give the kernel its shared memory.
static int knn_topk_fused(int64_t *idx, float *sims, const float *F, int N, int d, int k, int kc) {
    const size_t smem = knn2_smem_bytes(kc);
    if (smem > (size_t)knn_smem_optin()) return 0;
    static ScratchBuf bf_buf, cand_buf;
    const int dp = (d + K2_BK - 1) / K2_BK * K2_BK;
    __nv_bfloat16 *Fb = (__nv_bfloat16 *)scratch_get(   // (N,dp)
        &bf_buf, sizeof(__nv_bfloat16) * (size_t)N * dp, "knn");
    int64_t *cand = (int64_t *)scratch_get(&cand_buf, sizeof(int64_t) * (size_t)N * kc,   // (N,kc)
                                           "knn");
    knn_bf16_pad_kernel1<<<grid_for((size_t)N * dp, 256), 256>>>(Fb, F, N, d, dp);
    launchCheck();
    cudaCheck(cudaFuncSetAttribute(knn_topk_forward_kernel2,
                                   cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    // Ask for the largest shared-memory carveout so two 92 KiB blocks fit on one SM (a hint).
    cudaCheck(cudaFuncSetAttribute(knn_topk_forward_kernel2,
                                   cudaFuncAttributePreferredSharedMemoryCarveout,
                                   (int)cudaSharedmemCarveoutMaxShared));
    knn_topk_forward_kernel2<<<ceil_div_u((size_t)N, K2_BM), K2_THREADS, smem>>>(cand, Fb, N, dp,
                                                                                kc);
    launchCheck();
    knn_rerank(idx, sims, cand, F, N, d, kc, k);
    return 1;
}

void knn_topk_forward(int64_t *idx, float *sims, const float *F, int N, int d, int k) {
    cudaAssert(k >= 1 && k <= N - 1, "knn_topk_forward needs 1 <= k <= N-1");
    cudaAssert(k <= KNN_MAX_K, "knn_topk_forward on CUDA needs k <= 256");
    const int prec = knn_precision();   // 0 fp32, 1 tf32, 2 bf16 (the driver rejected -1)
    const int kern = ops_cuda_knn_kernel();
    const int kc2 = ops_cuda_knn_fused_kc(N, k);
    if (kc2 > 0 && (kern == 2 || (kern == 0 && prec == 2)) &&
        knn_topk_fused(idx, sims, F, N, d, k, kc2))
        return;
    if (prec == 1 || prec == 2) {
        // Candidates: the kc best under the reduced-precision similarities, then exact re-rank.
        int kc = k + 32 < KNN_MAX_K ? k + 32 : KNN_MAX_K;
        if (kc > N - 1) kc = N - 1;
        static ScratchBuf cand_buf, bf_buf;
        int64_t *cand = (int64_t *)scratch_get(&cand_buf, sizeof(int64_t) * (size_t)N * kc, "knn");
        const uint16_t *Fb = NULL;   // (N,d) bf16 bit patterns
        if (prec == 2) {
            uint16_t *b = (uint16_t *)scratch_get(&bf_buf, sizeof(uint16_t) * (size_t)N * d, "knn");
            ops_cuda_f32_to_bf16(b, F, (size_t)N * d);
            Fb = b;
        }
        knn_candidates(cand, NULL, F, Fb, N, d, kc, prec);
        knn_rerank(idx, sims, cand, F, N, d, kc, k);
        return;
    }
    knn_candidates(idx, sims, F, NULL, N, d, k, 0);   // fp32: the parity path, unchanged
}

// Rows r0..r1-1 of knn_topk_forward: every row is computed (the tiled and fused kernels have
// no row-range parameter yet) into scratch and the range copied out. Correct, not faster: the
// kNN driver shards its rows only on the CPU backend.
void knn_topk_rows_forward(int64_t *idx, float *sims, const float *F, int N, int d, int k, int r0,
                           int r1) {
    if (r0 == 0 && r1 == N) {
        knn_topk_forward(idx, sims, F, N, d, k);
        return;
    }
    static ScratchBuf ib, sb;
    int64_t *ai = (int64_t *)scratch_get(&ib, sizeof(int64_t) * (size_t)N * k, "knn_rows");
    float *as = sims ? (float *)scratch_get(&sb, sizeof(float) * (size_t)N * k, "knn_rows") : NULL;
    knn_topk_forward(ai, as, F, N, d, k);
    cudaCheck(cudaMemcpyAsync(idx, ai + (size_t)r0 * k, sizeof(int64_t) * (size_t)(r1 - r0) * k,
                              cudaMemcpyDeviceToDevice, cudaStreamPerThread));
    if (sims)
        cudaCheck(cudaMemcpyAsync(sims, as + (size_t)r0 * k, sizeof(float) * (size_t)(r1 - r0) * k,
                                  cudaMemcpyDeviceToDevice, cudaStreamPerThread));
}

__global__ static void knn_filter_kernel1(float *scores, uint8_t *mask, const int64_t *idx,
                                          const int64_t *labels, int N, int k) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= N) return;
    int same = 0;
    for (int p = 0; p < k; p++) same += labels[idx[(size_t)i * k + p]] == labels[i];
    scores[i] = __fdiv_rn((float)same, (float)k);   // IEEE division, as the CPU's
    if (mask) mask[i] = same == k;
}

void knn_filter_forward(float *scores, uint8_t *mask, const int64_t *idx, const int64_t *labels,
                        int N, int k) {
    if (N <= 0) return;
    knn_filter_kernel1<<<ceil_div_u((size_t)N, 256), 256>>>(scores, mask, idx, labels, N, k);
    launchCheck();
}
