/*
 * knn_l2.c — Euclidean kNN with self included (knn_l2.h), on the cluster backend's ops.
 */
#include "cluster/knn_l2.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "io/err.h"
#include "ops.h"

// Inserts (v, j) into the ascending buffers bv/bi holding *cnt <= k entries; only a strictly
// smaller value displaces, so scanning j upward leaves ties to the lower index.
static inline void push_smallest(float *bv, int64_t *bi, int *cnt, int k, float v, int64_t j) {
    int n = *cnt;
    if (n == k) {
        if (!(v < bv[k - 1])) return;
        n = k - 1;
    }
    int p = n;
    while (p > 0 && v < bv[p - 1]) {
        bv[p] = bv[p - 1];
        bi[p] = bi[p - 1];
        p--;
    }
    bv[p] = v;
    bi[p] = j;
    if (*cnt < k) (*cnt)++;
}

int knn_l2_topk(int64_t *idx, float *d2, const float *X, int N, int d, int k) {
    if (k < 1 || k > N) return laic_error("knn (L2): k = %d must be in [1, N] = [1, %d]", k, N);
    const OpsBackend *o = cluster_backend();
    const int host = o == &ops_cpu;
    // rows per block: ~16M distances per block, at least 16 rows; depends on N only
    size_t br = ((size_t)1 << 24) / (size_t)N;
    const int BR = br > 4096 ? 4096 : br < 16 ? 16 : (int)br;
    const size_t nx = (size_t)N * d;
    float *dX = host ? (float *)X : o->alloc(nx * sizeof(float));
    float *dxx = dX ? o->alloc((size_t)N * sizeof(float)) : NULL;
    float *dD = dxx ? o->alloc((size_t)BR * N * sizeof(float)) : NULL;
    if (!dD) {
        if (dxx) o->free(dxx);
        if (dX && !host) o->free(dX);
        return -1;
    }
    if (!host) o->to_device(dX, X, nx * sizeof(float));
    o->rownorm2_forward(dxx, dX, N, d);
    float *D = host ? dD : mallocCheck((size_t)BR * N * sizeof(float));
    for (int r0 = 0; r0 < N; r0 += BR) {
        const int R = N - r0 < BR ? N - r0 : BR;
        o->sqdist_forward(dD, dX + (size_t)r0 * d, dxx + r0, dX, dxx, R, d, N);
        if (!host) {
            o->synchronize();
            o->to_host(D, dD, (size_t)R * N * sizeof(float));
        }
#pragma omp parallel for schedule(static)
        for (int r = 0; r < R; r++) {
            float bv[256];
            int64_t bi[256];
            float *bvp = k <= 256 ? bv : mallocCheck((size_t)k * sizeof *bvp);
            int64_t *bip = k <= 256 ? bi : mallocCheck((size_t)k * sizeof *bip);
            const float *row = D + (size_t)r * N;
            int cnt = 0;
            for (int64_t j = 0; j < N; j++) push_smallest(bvp, bip, &cnt, k, row[j], j);
            const size_t i = (size_t)(r0 + r);
            memcpy(idx + i * k, bip, (size_t)k * sizeof *bip);
            if (d2) memcpy(d2 + i * k, bvp, (size_t)k * sizeof *bvp);
            if (bvp != bv) free(bvp);
            if (bip != bi) free(bip);
        }
    }
    if (!host) {
        free(D);
        o->free(dX);
    }
    o->free(dxx);
    o->free(dD);
    return 0;
}
