/*
 * knn.c — CPU cosine top-k neighbours (tiled, self excluded) and the neighbour-consistency
 * filter.
 *
 * Promises: the N×N similarity matrix is never formed: a fixed-size block of rows is multiplied
 * against all N rows (one single-threaded sgemm per block, blocks spread over OpenMP threads,
 * so results do not depend on the thread count), each row of the block keeps its k best in a
 * sorted insertion buffer, and each thread reuses its one (block,N) buffer. Ties go to the lowest index (rows are scanned in increasing index and
 * only a strictly greater similarity displaces an entry). Letters: N rows, d width, k neighbours.
 */
#include <cblas.h>
#include <stdlib.h>

#include "cpu/cluster_ops.h"
#include "io/err.h"

// Inserts (s, j) into the descending buffers bs/bi holding *cnt <= k entries.
static inline void topk_push(float *bs, int64_t *bi, int *cnt, int k, float s, int64_t j) {
    int n = *cnt;
    if (n == k) {
        if (!(s > bs[k - 1])) return;
        n = k - 1;   // the last entry drops out
    }
    int p = n;
    while (p > 0 && s > bs[p - 1]) {
        bs[p] = bs[p - 1];
        bi[p] = bi[p - 1];
        p--;
    }
    bs[p] = s;
    bi[p] = j;
    if (*cnt < k) (*cnt)++;
}

int knn_block_rows(int N) {
    // CLUSTER_GEMM_ROWS, fewer for large N so a thread's buffer stays <= 64 MiB (and >= 16 rows
    // for GEMM efficiency); depends on N only, never on the thread count.
    size_t br = ((size_t)1 << 24) / (size_t)(N > 0 ? N : 1);
    return br > CLUSTER_GEMM_ROWS ? CLUSTER_GEMM_ROWS : br < 16 ? 16 : (int)br;
}

void knn_topk_forward_cpu(int64_t *idx, float *sims, const float *F, int N, int d, int k) {
    knn_topk_rows_forward_cpu(idx, sims, F, N, d, k, 0, N);
}

void knn_topk_rows_forward_cpu(int64_t *idx, float *sims, const float *F, int N, int d, int k,
                               int q0, int q1) {
    // Blocks of knn_block_rows(N) rows from q0 (a multiple of it for the full call's blocks).
    const int BR = knn_block_rows(N);
    int nb = (q1 - q0 + BR - 1) / BR, saved = blas_serial_begin();
#pragma omp parallel
    {
        float *S = mallocCheck(sizeof(float) * (size_t)BR * N);   // (block,N) per thread
        float *bs = mallocCheck(sizeof(float) * (size_t)k);
        int64_t *bi = mallocCheck(sizeof(int64_t) * (size_t)k);
#pragma omp for schedule(dynamic, 1)
        for (int b = 0; b < nb; b++) {
            int r0 = q0 + b * BR, R = q1 - r0 < BR ? q1 - r0 : BR;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, N, d, 1.0f,
                        F + (size_t)r0 * d, d, F, d, 0.0f, S, N);
            for (int r = 0; r < R; r++) {
                const float *s = S + (size_t)r * N;   // (N)
                int64_t self = r0 + r;
                int cnt = 0;
                for (int64_t j = 0; j < N; j++)
                    if (j != self) topk_push(bs, bi, &cnt, k, s[j], j);
                for (int p = 0; p < k; p++) {   // output row self - q0
                    idx[(size_t)(self - q0) * k + p] = bi[p];
                    if (sims) sims[(size_t)(self - q0) * k + p] = bs[p];
                }
            }
        }
        free(S);
        free(bs);
        free(bi);
    }
    blas_serial_end(saved);
}

void knn_filter_forward_cpu(float *scores, uint8_t *mask, const int64_t *idx,
                            const int64_t *labels, int N, int k) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        int same = 0;
        for (int p = 0; p < k; p++) same += labels[idx[(size_t)i * k + p]] == labels[i];
        scores[i] = (float)same / (float)k;
        if (mask) mask[i] = same == k;
    }
}
