/*
 * metrics.c — NMI / ACC / ARI as promised in metrics.h.
 *
 * The contingency table is built sparsely (sorted (true, pred) pairs) for NMI and ARI, so
 * those cost O(n log n) whatever the number of clusters; only ACC's Hungarian step forms the
 * dense k×k table.
 */
#include "cluster/metrics.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/err.h"

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int relabel_compact(int64_t *out, const int64_t *in, size_t n) {
    int64_t *u = mallocCheck(sizeof(int64_t) * (n ? n : 1));
    memcpy(u, in, sizeof(int64_t) * n);
    qsort(u, n, sizeof(int64_t), cmp_i64);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || u[i] != u[k - 1]) u[k++] = u[i];
    for (size_t i = 0; i < n; i++) {
        size_t lo = 0, hi = k - 1;   // in[i] is among u[0..k)
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (u[mid] < in[i]) lo = mid + 1;
            else hi = mid;
        }
        out[i] = (int64_t)lo;
    }
    free(u);
    return (int)k;
}

int64_t hungarian_max(int *assign, const int64_t *W, int n) {
    // Minimum-cost assignment on cost = −W, 1-based with potentials u (rows), v (columns);
    // p[j] = row matched to column j, way[j] = previous column on the augmenting path.
    size_t m = (size_t)n + 1;
    int64_t *u = callocCheck(m, sizeof(int64_t)), *v = callocCheck(m, sizeof(int64_t));
    int64_t *minv = mallocCheck(sizeof(int64_t) * m);
    int *p = callocCheck(m, sizeof(int)), *way = callocCheck(m, sizeof(int));
    char *used = mallocCheck(m);
    for (int i = 1; i <= n; i++) {
        p[0] = i;
        int j0 = 0;
        for (size_t j = 0; j < m; j++) minv[j] = INT64_MAX;
        memset(used, 0, m);
        do {
            used[j0] = 1;
            int i0 = p[j0], j1 = 0;
            int64_t delta = INT64_MAX;
            const int64_t *wrow = W + (size_t)(i0 - 1) * n;
            for (int j = 1; j <= n; j++) {
                if (used[j]) continue;
                int64_t cur = -wrow[j - 1] - u[i0] - v[j];
                if (cur < minv[j]) {
                    minv[j] = cur;
                    way[j] = j0;
                }
                if (minv[j] < delta) {
                    delta = minv[j];
                    j1 = j;
                }
            }
            for (int j = 0; j <= n; j++) {
                if (used[j]) {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
        } while (p[j0] != 0);
        do {
            int j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        } while (j0);
    }
    int64_t total = 0;
    for (int j = 1; j <= n; j++) {
        assign[p[j] - 1] = j - 1;
        total += W[(size_t)(p[j] - 1) * n + (j - 1)];
    }
    free(u);
    free(v);
    free(minv);
    free(p);
    free(way);
    free(used);
    return total;
}

int metrics_compute(ClusterMetrics *out, const int64_t *pred, const int64_t *truth, size_t n) {
    memset(out, 0, sizeof *out);
    if (n == 0) return laic_error("metrics: no labels (n = 0)");
    for (size_t i = 0; i < n; i++)
        if (pred[i] < 0 || truth[i] < 0)
            return laic_error("metrics: negative label at index %zu", i);
    int64_t *p = mallocCheck(sizeof(int64_t) * n), *t = mallocCheck(sizeof(int64_t) * n);
    int kp = relabel_compact(p, pred, n), kt = relabel_compact(t, truth, n);
    out->n = n;
    out->k_pred = kp;
    out->k_true = kt;
    if (kp > METRICS_MAX_K || kt > METRICS_MAX_K) {
        free(p);
        free(t);
        return laic_error("metrics: %d predicted / %d true clusters exceed the limit %d for the "
                          "Hungarian ACC", kp, kt, METRICS_MAX_K);
    }
    // --- sparse contingency: nonzero cells nij with row (true) sums a and column sums b ----
    int64_t *a = callocCheck((size_t)kt, sizeof(int64_t)), *b = callocCheck((size_t)kp, sizeof(int64_t));
    int64_t *key = mallocCheck(sizeof(int64_t) * n);
    for (size_t i = 0; i < n; i++) {
        a[t[i]]++;
        b[p[i]]++;
        key[i] = t[i] * kp + p[i];
    }
    qsort(key, n, sizeof(int64_t), cmp_i64);
    size_t nnz = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || key[i] != key[i - 1]) nnz++;
    int64_t *cell = mallocCheck(sizeof(int64_t) * nnz), *cnt = mallocCheck(sizeof(int64_t) * nnz);
    nnz = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || key[i] != key[i - 1]) {
            cell[nnz] = key[i];
            cnt[nnz++] = 0;
        }
        cnt[nnz - 1]++;
    }
    free(key);
    double N = (double)n, logN = log(N);

    // --- NMI (sklearn normalized_mutual_info_score, average_method="arithmetic") ---------
    if (kt == 1 && kp == 1) {
        out->nmi = 1.0;
    } else if (kt == 1 || kp == 1) {
        out->nmi = 0.0;   // MI = 0 with a single cluster on either side
    } else {
        double mi = 0;
        for (size_t c = 0; c < nnz; c++) {
            int64_t i = cell[c] / kp, j = cell[c] % kp;
            double nm = (double)cnt[c] / N;
            double log_outer = -log((double)(a[i] * b[j])) + logN + logN;
            double term = nm * (log((double)cnt[c]) - logN) + nm * log_outer;
            if (fabs(term) < DBL_EPSILON) term = 0.0;   // as sklearn
            mi += term;
        }
        if (mi < 0) mi = 0;
        if (mi == 0) {
            out->nmi = 0.0;
        } else {
            double ht = 0, hp = 0;
            for (int i = 0; i < kt; i++) ht -= ((double)a[i] / N) * (log((double)a[i]) - logN);
            for (int j = 0; j < kp; j++) hp -= ((double)b[j] / N) * (log((double)b[j]) - logN);
            out->nmi = mi / ((ht + hp) / 2.0);
        }
    }

    // --- ARI (sklearn adjusted_rand_score via the pair confusion matrix, exact integers) --
    {
        __int128 nn = (__int128)n, ss = 0, sb = 0, sa = 0;
        for (size_t c = 0; c < nnz; c++) {
            int64_t i = cell[c] / kp, j = cell[c] % kp;
            ss += (__int128)cnt[c] * cnt[c];
            sb += (__int128)cnt[c] * b[j];
            sa += (__int128)cnt[c] * a[i];
        }
        __int128 tp = ss - nn, fp = sb - ss, fn = sa - ss, tn = nn * nn - fp - fn - ss;
        if (fn == 0 && fp == 0) {
            out->ari = 1.0;
        } else {
            double num = 2.0 * (double)(tp * tn - fn * fp);
            double den = (double)((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn));
            out->ari = num / den;
        }
    }

    // --- ACC: Hungarian on the square-padded table ------------------------------------------
    {
        int k = kp > kt ? kp : kt;
        int64_t *W = callocCheck((size_t)k * k, sizeof(int64_t));   // (k,k) rows pred, cols true
        for (size_t c = 0; c < nnz; c++) {
            int64_t i = cell[c] / kp, j = cell[c] % kp;
            W[(size_t)j * k + i] = cnt[c];
        }
        int *as = mallocCheck(sizeof(int) * (size_t)k);
        int64_t best = hungarian_max(as, W, k);
        out->acc = (double)best / N;
        free(as);
        free(W);
    }
    free(cell);
    free(cnt);
    free(a);
    free(b);
    free(p);
    free(t);
    return 0;
}

int metrics_compute_labelled(ClusterMetrics *out, const int64_t *pred, const int64_t *truth, size_t n) {
    memset(out, 0, sizeof *out);
    size_t nl = 0;
    for (size_t i = 0; i < n; i++) nl += truth[i] >= 0;
    if (nl == 0) return 0;
    int64_t *p = mallocCheck(nl * sizeof *p), *t = mallocCheck(nl * sizeof *t);
    for (size_t i = 0, j = 0; i < n; i++)
        if (truth[i] >= 0) {
            p[j] = pred[i];
            t[j++] = truth[i];
        }
    int rc = metrics_compute(out, p, t, nl);
    free(p);
    free(t);
    return rc;
}
