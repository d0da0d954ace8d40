/*
 * rsc.c — Ours (no-train) of the main paper (RSC, SPEC §5–6): the ridge representation C of
 * every image against the candidate nouns, k-means with K clusters on the rows of C, then the
 * kNN neighbour-consistency filter that selects high-quality pseudo-labels (the input of the
 * prompt-learning stage). Writes assignments.npy (eval split; the same array as
 * predictions/ours-notrain.npy, kept under its old name) and clusters.tsv (per cluster: size,
 * majority true class, nearest candidate nouns — paper Table 3) into the run directory.
 */
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "io/atomic.h"
#include "io/err.h"
#include "io/npy.h"
#include "cluster/metrics.h"
#include "io/progress.h"
#include "run/methods/methods.h"

#define NOUNS_PER_CLUSTER 5

/* ACC of pred against truth over the rows where mask (may be NULL) is set and truth >= 0. */
static double masked_acc(const int64_t *pred, const int64_t *truth, const uint8_t *mask, size_t n, size_t *used) {
    int64_t *p = mallocCheck((n ? n : 1) * sizeof *p), *t = mallocCheck((n ? n : 1) * sizeof *t);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if ((!mask || mask[i]) && truth[i] >= 0) {
            p[m] = pred[i];
            t[m++] = truth[i];
        }
    ClusterMetrics cm = {0};
    double acc = m && !metrics_compute(&cm, p, t, m) ? cm.acc : -1;
    free(p);
    free(t);
    *used = m;
    return acc;
}

static int write_clusters_tsv(Run *r, const int64_t *y_fit) {
    const int K = r->K, E = r->E, M = (int)r->M;
    float *cen = callocCheck((size_t)K * E, sizeof *cen);
    size_t *size = callocCheck((size_t)K, sizeof *size);
    int nc = r->n_classes > 0 ? r->n_classes : 1;
    size_t *votes = callocCheck((size_t)K * nc, sizeof *votes);
    for (size_t i = 0; i < r->fit.N; i++) {
        int64_t c = y_fit[i];
        size[c]++;
        for (int e = 0; e < E; e++) cen[c * E + e] += r->fit.X[i * E + e];
        if (r->fit.y[i] >= 0 && r->fit.y[i] < nc) votes[c * nc + r->fit.y[i]]++;
    }
    l2normalize_rows_cpu(cen, cen, K, E);
    // cosine of each cluster centre with each candidate noun (K,M), on the run's backend
    RunGemm g;
    if (run_gemm_init(&g, r->ops, r->T, 1, M, E, (size_t)K)) {
        free(cen);
        free(size);
        free(votes);
        return -1;
    }
    float *s = mallocCheck((size_t)K * M * sizeof *s);
    run_gemm_rows(&g, s, cen, (size_t)K, 0);
    run_gemm_free(&g);
    char path[2300];
    snprintf(path, sizeof path, "%s/clusters.tsv", r->partial);
    AtomicFile af;
    int rc = atomic_open(&af, path);
    if (!rc) {
        fprintf(af.fp, "cluster\tsize\tmajority_class\tmajority_fraction\tnearest_nouns\n");
        for (int c = 0; c < K; c++) {
            int best = 0;
            for (int j = 1; j < nc; j++)
                if (votes[c * nc + j] > votes[c * nc + best]) best = j;
            const char *cls = r->class_names ? r->class_names[best] : r->n_classes > 0 ? "?" : "-";
            char clsbuf[32];
            if (!r->class_names && r->n_classes > 0) {
                snprintf(clsbuf, sizeof clsbuf, "%d", best);
                cls = clsbuf;
            }
            fprintf(af.fp, "%d\t%zu\t%s\t%.3f\t", c, size[c], cls,
                    size[c] ? (double)votes[c * nc + best] / (double)size[c] : 0.0);
            int top[NOUNS_PER_CLUSTER];
            int nt = M < NOUNS_PER_CLUSTER ? M : NOUNS_PER_CLUSTER;
            for (int k = 0; k < nt; k++) {   // top-nt by similarity, ties to the lower index
                int b = -1;
                for (int j = 0; j < M; j++) {
                    int taken = 0;
                    for (int q = 0; q < k; q++) taken |= top[q] == j;
                    if (!taken && (b < 0 || s[(size_t)c * M + j] > s[(size_t)c * M + b])) b = j;
                }
                top[k] = b;
                fprintf(af.fp, "%s%s", k ? ", " : "", r->noun_names[r->cand[b]]);
            }
            fputc('\n', af.fp);
        }
        rc = atomic_commit(&af);
        if (!rc) run_add_file(r, "clusters", "clusters.tsv");
    }
    free(cen);
    free(size);
    free(votes);
    free(s);
    return rc;
}

#define SAVE_C_MAX_ROWS 2000

/* C.npy (n,D): rows of C (Nf,D) stably sorted by true class (unknown = -1 first), then at most
 * SAVE_C_MAX_ROWS of them evenly spaced, so every class keeps its share of rows; C_labels.npy (n)
 * holds their true classes. For the heat map (paper Fig. 3), not for computation. */
static int save_c(Run *r, const float *C, int D) {
    const size_t N = r->fit.N;
    size_t *order = mallocCheck(N * sizeof *order);
    size_t n = 0;
    int64_t lo = -1, hi = -1;
    for (size_t i = 0; i < N; i++) hi = r->fit.y[i] > hi ? r->fit.y[i] : hi;
    for (int64_t c = lo; c <= hi; c++)   // counting-sort order: stable within a class
        for (size_t i = 0; i < N; i++)
            if (r->fit.y[i] == c) order[n++] = i;
    const size_t m = n < SAVE_C_MAX_ROWS ? n : SAVE_C_MAX_ROWS;
    float *out = mallocCheck((m ? m : 1) * (size_t)D * sizeof *out);
    int64_t *lab = mallocCheck((m ? m : 1) * sizeof *lab);
    for (size_t j = 0; j < m; j++) {
        size_t i = order[j * n / m];
        memcpy(out + j * D, C + i * D, (size_t)D * sizeof *out);
        lab[j] = r->fit.y[i];
    }
    char path[2300];
    size_t shape[1] = {m};
    snprintf(path, sizeof path, "%s/C.npy", r->partial);
    int rc = npy_write_f32_2d(path, out, m, (size_t)D);
    snprintf(path, sizeof path, "%s/C_labels.npy", r->partial);
    if (!rc) rc = npy_write(path, NPY_I64, 1, shape, lab);
    if (!rc) {
        run_log(r, "ridge: wrote C.npy (%zu of %zu rows, sorted by true class)", m, N);
        run_add_file(r, "C", "C.npy");
        run_add_file(r, "C_labels", "C_labels.npy");
    }
    free(order);
    free(out);
    free(lab);
    return rc;
}

int method_rsc_notrain(Run *r) {
    int D = 0, De = 0;
    float *Cf = NULL, *Ce = NULL;
    if (stage_ridge(r, r->fit.X, r->fit.N, &Cf, &D)) return -1;
    if (!r->eval_is_fit && stage_ridge(r, r->eval.X, r->eval.N, &Ce, &De)) {
        free(Cf);
        return -1;
    }
    run_log(r, "ridge: C is %zu x %d (λ = %g, form %s)", r->fit.N, D,
            config_float(&r->cfg, "ridge", "lambda"), r->ridge_form);
    if (config_bool(&r->cfg, "ridge", "save_c") && save_c(r, Cf, D)) {
        free(Cf);
        free(Ce);
        return -1;
    }
    int64_t *yf = mallocCheck(r->fit.N * sizeof *yf), *ye = mallocCheck(r->eval.N * sizeof *ye);
    int rc = stage_cluster(r, Cf, r->fit.N, r->eval_is_fit ? Cf : Ce, r->eval.N, D, r->K, yf, ye, NULL);
    if (!rc) rc = run_report_method(r, "ours-notrain", ye);
    if (!rc) {
        char path[2300];
        snprintf(path, sizeof path, "%s/assignments.npy", r->partial);
        size_t shape[1] = {r->eval.N};
        rc = npy_write(path, NPY_I64, 1, shape, ye);   // = predictions/ours-notrain.npy
        if (!rc) run_add_file(r, "assignments", "assignments.npy");
    }
    // --- high-quality pseudo-labels: kNN consistency in C-space (SPEC §6) ---------------------
    if (!rc) {
        double t = now_seconds();
        const int k = r->knn_k;
        int64_t *idx = mallocCheck(r->fit.N * (size_t)k * sizeof *idx);
        float *score = mallocCheck(r->fit.N * sizeof *score);
        uint8_t *mask = mallocCheck(r->fit.N);
        rc = knn_topk(idx, NULL, Cf, (int)r->fit.N, D, k);
        if (!rc) {
            knn_filter_forward_cpu(score, mask, idx, yf, (int)r->fit.N, k);
            // kept for the prompt-learning stage (methods/rsc_train.c), which trains on them
            free(r->pl_y);
            free(r->pl_hq);
            r->pl_y = mallocCheck(r->fit.N * sizeof *r->pl_y);
            r->pl_hq = mallocCheck(r->fit.N);
            memcpy(r->pl_y, yf, r->fit.N * sizeof *r->pl_y);
            memcpy(r->pl_hq, mask, r->fit.N);
            size_t nhq = 0, used_all, used_hq;
            for (size_t i = 0; i < r->fit.N; i++) nhq += mask[i];
            double before = masked_acc(yf, r->fit.y, NULL, r->fit.N, &used_all);
            double after = masked_acc(yf, r->fit.y, mask, r->fit.N, &used_hq);
            cJSON *pl = cJSON_AddObjectToObject(r->report, "pseudo_labels");
            cJSON_AddNumberToObject(pl, "knn_k", k);
            cJSON_AddNumberToObject(pl, "n", (double)r->fit.N);
            cJSON_AddNumberToObject(pl, "n_high_quality", (double)nhq);
            cJSON_AddNumberToObject(pl, "high_quality_fraction", (double)nhq / (double)r->fit.N);
            if (before >= 0) cJSON_AddNumberToObject(pl, "acc_before_filter", before);
            if (after >= 0) cJSON_AddNumberToObject(pl, "acc_after_filter", after);
            cJSON_AddStringToObject(pl, "note", "ACC on the fit split with the best one-to-one map, "
                                                "computed separately on all rows and on the kept rows");
            char sb[32] = "n/a", sa[32] = "n/a";   // -1: no labelled rows (none kept, or no labels)
            if (before >= 0) snprintf(sb, sizeof sb, "%.1f%%", 100 * before);
            if (after >= 0) snprintf(sa, sizeof sa, "%.1f%%", 100 * after);
            run_log(r, "kNN filter (k = %d): %zu of %zu pseudo-labels kept (%.1f%%); ACC %s -> %s",
                    k, nhq, r->fit.N, 100.0 * (double)nhq / (double)r->fit.N, sb, sa);
            rc = write_clusters_tsv(r, yf);
        }
        free(idx);
        free(score);
        free(mask);
        run_time(r, "knn_filter", now_seconds() - t);
    }
    free(yf);
    free(ye);
    free(Cf);
    free(Ce);
    return rc;
}
