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
 * - Precision (knn_set_precision, host/cluster.h): fp32 (default) is the path above. tf32 and
 *   bf16 run the same tiled selection on TF32 / bf16 tensor-core similarities but keep
 *   kc = min(k+32, 256, N-1) candidates per row, then knn_rerank_kernel1 recomputes the kc
 *   similarities exactly (double sums of fp32 products) and keeps the k best: the result is
 *   exact unless a true neighbour's reduced-precision similarity fell below the kc-th
 *   candidate's (possible only for near-ties at the cut: TF32 errors ≈ 1e-3, bf16 ≈ 1e-2 on
 *   unit rows). Re-ranked similarities differ from SGEMM's by float rounding (~1e-7).
 *
 * Status: compiled for sm_90, unverified on hardware.
 */
#include "cluster.cuh"

extern "C" {
#include "cluster.h"   // knn_precision
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
    static ScratchBuf scratch = {NULL, 0};
    size_t tr = ((size_t)1 << 26) / (size_t)N;
    const int T = tr < 1 ? 1 : tr > (size_t)N ? N : (int)tr;
    float *S = (float *)scratch_get(&scratch, sizeof(float) * (size_t)T * N);   // (T,N)
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
// host/cluster.h): one warp per row i recomputes ⟨F_i, F_j⟩ of its kc candidates exactly (fp32
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

void knn_topk_forward(int64_t *idx, float *sims, const float *F, int N, int d, int k) {
    cudaAssert(k >= 1 && k <= N - 1, "knn_topk_forward needs 1 <= k <= N-1");
    cudaAssert(k <= KNN_MAX_K, "knn_topk_forward on CUDA needs k <= 256");
    const int prec = knn_precision();   // 0 fp32, 1 tf32, 2 bf16 (the driver rejected -1)
    if (prec == 1 || prec == 2) {
        // Candidates: the kc best under the reduced-precision similarities, then exact re-rank.
        int kc = k + 32 < KNN_MAX_K ? k + 32 : KNN_MAX_K;
        if (kc > N - 1) kc = N - 1;
        static ScratchBuf cand_buf = {NULL, 0}, bf_buf = {NULL, 0};
        int64_t *cand = (int64_t *)scratch_get(&cand_buf, sizeof(int64_t) * (size_t)N * kc);
        const uint16_t *Fb = NULL;   // (N,d) bf16 bit patterns
        if (prec == 2) {
            uint16_t *b = (uint16_t *)scratch_get(&bf_buf, sizeof(uint16_t) * (size_t)N * d);
            ops_cuda_f32_to_bf16(b, F, (size_t)N * d);
            Fb = b;
        }
        knn_candidates(cand, NULL, F, Fb, N, d, kc, prec);
        const int W = 8;
        const size_t smem = (size_t)W * kc * (sizeof(float) + sizeof(int));
        knn_rerank_kernel1<<<ceil_div_u((size_t)N, W), 32 * W, smem>>>(idx, sims, cand, F, N, d,
                                                                        kc, k);
        launchCheck();
        return;
    }
    knn_candidates(idx, sims, F, NULL, N, d, k, 0);   // fp32: the parity path, unchanged
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
