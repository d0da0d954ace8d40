/*
 * test_kmeans_sums.c — the fixed-point k-means step (issue 17) and the kNN row range:
 *  - kmeans_assign_sums_forward_cpu against numpy (scripts/make_kmeans_sums_fixtures.py):
 *    labels, counts and the int64 sums Σ rint(x · 2^shift) exactly (ties rounded half to even,
 *    negative values, a row ×1e-6 whose low bits fall below the scale), kmeans_fixed_shift's
 *    scale, and kmeans_centres_forward_cpu's means bitwise (the same three roundings);
 *  - the promise the data-parallel k-means stands on: the sums do not depend on the order or the
 *    split of the rows (reversed rows, two halves added, 1 vs 2 threads: bitwise);
 *  - sums = NULL assigns only; an empty cluster's centre is left untouched;
 *  - knn_topk_rows_forward_cpu: rows [r0, r1) of the full call, bitwise, for block-aligned r0.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "io/err.h"
#include "io/npy.h"
#include "../test.h"

#define FIX "tests/fixtures/cluster"

static int load(const char *name, Npy *a) { return npy_read(test_fixture_path(FIX, name), a); }

TEST(cluster_kmeans_fixed_point_sums_vs_numpy) {
    Npy X = {0}, C = {0}, sh = {0}, L = {0}, cn = {0}, S = {0}, Ce = {0};
    REQUIRE(!load("ks_X", &X) && !load("ks_C", &C) && !load("ks_shift", &sh) &&
                !load("ks_labels", &L) && !load("ks_counts", &cn) && !load("ks_sums", &S) &&
                !load("ks_centres", &Ce), "fixtures: %s", laic_last_error());
    const int N = (int)X.shape[0], d = (int)X.shape[1], K = (int)C.shape[0];
    const float *x = X.data, *c = C.data;
    float amax = 0;
    for (size_t i = 0; i < X.count; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
    const int shift = kmeans_fixed_shift(amax, N);
    CHECK(shift == ((int64_t *)sh.data)[0], "shift %d vs numpy's %lld", shift,
          (long long)((int64_t *)sh.data)[0]);
    float *xx = malloc(sizeof(float) * N), *cc = malloc(sizeof(float) * K), *mind = malloc(sizeof(float) * N);
    rownorm2_forward_cpu(xx, x, N, d);
    rownorm2_forward_cpu(cc, c, K, d);
    int64_t *lab = malloc(sizeof(int64_t) * N), *sums = malloc(sizeof(int64_t) * K * d);
    int64_t *cnt = malloc(sizeof(int64_t) * K);
    float *cen = malloc(sizeof(float) * K * d);
    for (int threads = 1; threads <= 2; threads++) {
        cluster_set_threads(threads);
        memset(sums, 0x5a, sizeof(int64_t) * K * d);   // overwritten, not accumulated
        kmeans_assign_sums_forward_cpu(lab, mind, sums, cnt, x, xx, c, cc, N, d, K, shift);
        CHECK(!memcmp(lab, L.data, sizeof(int64_t) * N), "%d threads: labels equal numpy's", threads);
        CHECK(!memcmp(cnt, cn.data, sizeof(int64_t) * K), "%d threads: counts", threads);
        CHECK(!memcmp(sums, S.data, sizeof(int64_t) * K * d),
              "%d threads: sums equal numpy's rint (ties to even) summed in int64", threads);
        memset(cen, 0, sizeof(float) * K * d);
        kmeans_centres_forward_cpu(cen, sums, cnt, K, d, shift);
        CHECK(!memcmp(cen, Ce.data, sizeof(float) * K * d), "%d threads: centres bitwise", threads);
    }
    cluster_set_threads(2);
    // any order, any split: reversed rows, and two halves added, give the same integers
    float *xr = malloc(sizeof(float) * N * d), *xxr = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++) {
        memcpy(xr + (size_t)i * d, x + (size_t)(N - 1 - i) * d, sizeof(float) * d);
        xxr[i] = xx[N - 1 - i];
    }
    int64_t *s2 = malloc(sizeof(int64_t) * K * d), *c2 = malloc(sizeof(int64_t) * K);
    kmeans_assign_sums_forward_cpu(lab, mind, s2, c2, xr, xxr, c, cc, N, d, K, shift);
    CHECK(!memcmp(s2, S.data, sizeof(int64_t) * K * d) && !memcmp(c2, cn.data, sizeof(int64_t) * K),
          "reversed rows: the same sums and counts");
    int64_t *s3 = malloc(sizeof(int64_t) * K * d), *c3 = malloc(sizeof(int64_t) * K);
    const int h = 150;
    kmeans_assign_sums_forward_cpu(lab, mind, s2, c2, x, xx, c, cc, h, d, K, shift);
    kmeans_assign_sums_forward_cpu(lab + h, mind + h, s3, c3, x + (size_t)h * d, xx + h, c, cc,
                                   N - h, d, K, shift);
    for (int e = 0; e < K * d; e++) s2[e] += s3[e];
    for (int k = 0; k < K; k++) c2[k] += c3[k];
    CHECK(!memcmp(s2, S.data, sizeof(int64_t) * K * d) && !memcmp(c2, cn.data, sizeof(int64_t) * K),
          "two halves added: the same sums and counts (what the ranks' allreduce does)");
    CHECK(!memcmp(lab, L.data, sizeof(int64_t) * N), "halves: labels");
    // assignment only
    memset(lab, 0, sizeof(int64_t) * N);
    kmeans_assign_sums_forward_cpu(lab, mind, NULL, c2, x, xx, c, cc, N, d, K, shift);
    CHECK(!memcmp(lab, L.data, sizeof(int64_t) * N) && !memcmp(c2, cn.data, sizeof(int64_t) * K),
          "sums NULL: labels and counts");
    // an empty cluster keeps its centre
    memcpy(c2, cn.data, sizeof(int64_t) * K);
    c2[2] = 0;
    for (int e = 0; e < K * d; e++) cen[e] = -7.0f;
    kmeans_centres_forward_cpu(cen, S.data, c2, K, d, shift);
    int untouched = 1, others = 1;
    for (int j = 0; j < d; j++) untouched &= cen[2 * d + j] == -7.0f;
    for (int e = 0; e < K * d; e++)
        if (e / d != 2) others &= cen[e] == ((float *)Ce.data)[e];
    CHECK(untouched && others, "empty cluster untouched, the others bitwise");
    free(xx), free(cc), free(mind), free(lab), free(sums), free(cnt), free(cen), free(xr), free(xxr);
    free(s2), free(c2), free(s3), free(c3);
    Npy *all[] = {&X, &C, &sh, &L, &cn, &S, &Ce};
    for (int i = 0; i < 7; i++) npy_free(all[i]);
}

TEST(cluster_knn_row_range_equals_full_rows) {
    Npy F = {0};
    REQUIRE(!load("knn_F", &F), "fixture: %s", laic_last_error());
    const int N = (int)F.shape[0], d = (int)F.shape[1], k = 10;
    float *Fn = malloc(sizeof(float) * N * d);
    l2normalize_rows_cpu(Fn, F.data, N, d);
    int64_t *idx = malloc(sizeof(int64_t) * N * k), *ir = malloc(sizeof(int64_t) * N * k);
    float *sims = malloc(sizeof(float) * N * k), *sr = malloc(sizeof(float) * N * k);
    knn_topk_forward_cpu(idx, sims, Fn, N, d, k);
    const int BR = knn_block_rows(N);
    const int ranges[][2] = {{0, N}, {0, 1}, {BR, N}, {BR, BR + 3}, {N - 1, N}};
    for (size_t t = 0; t < sizeof ranges / sizeof ranges[0]; t++) {
        const int r0 = ranges[t][0], r1 = ranges[t][1] < N ? ranges[t][1] : N;
        if (r0 >= N) continue;
        knn_topk_rows_forward_cpu(ir, sr, Fn, N, d, k, r0, r1);
        CHECK(!memcmp(ir, idx + (size_t)r0 * k, sizeof(int64_t) * (size_t)(r1 - r0) * k) &&
                  !memcmp(sr, sims + (size_t)r0 * k, sizeof(float) * (size_t)(r1 - r0) * k),
              "rows [%d, %d) of the full call, bitwise", r0, r1);
    }
    free(Fn), free(idx), free(ir), free(sims), free(sr);
    npy_free(&F);
}
