/*
 * metrics.h — clustering quality of predicted labels against ground truth: NMI, ACC, ARI.
 *
 * Promises: NMI (arithmetic normalisation) and ARI follow scikit-learn's
 * normalized_mutual_info_score / adjusted_rand_score formula for formula, special cases
 * included (both sides one cluster → NMI 1; either side one cluster otherwise → NMI 0; no
 * disagreeing pair → ARI 1); ARI's pair counts are exact integers (__int128), as sklearn's
 * Python ints. ACC = best one-to-one matching of clusters to classes (Hungarian algorithm,
 * O(k³), rectangular tables padded to square) divided by n. Labels are any non-negative
 * integers; they are relabelled compactly (sorted unique values) first.
 */
#ifndef LAIC_METRICS_H
#define LAIC_METRICS_H

#include <stddef.h>
#include <stdint.h>

// Largest number of clusters ACC accepts on either side (the Hungarian table is k×k, O(k³)).
#define METRICS_MAX_K 2048

typedef struct {
    double nmi, acc, ari;   // fractions; ARI may be negative
    size_t n;
    int k_pred, k_true;     // distinct labels on each side
} ClusterMetrics;

/* pred (n), truth (n) int64 >= 0. Errors: n == 0, a negative label, more than METRICS_MAX_K
 * distinct labels. */
int metrics_compute(ClusterMetrics *out, const int64_t *pred, const int64_t *truth, size_t n);
/* metrics_compute over the labelled rows only (truth[i] >= 0; unlabelled rows hold -1). No
 * labelled row is not an error: *out is zeroed (out->n = 0) and 0 returned. */
int metrics_compute_labelled(ClusterMetrics *out, const int64_t *pred, const int64_t *truth, size_t n);

/* Maximum-weight perfect matching of the square table W (n,n): assign (n) receives the column
 * matched to each row; returns the total weight. Hungarian algorithm with potentials, O(n³). */
int64_t hungarian_max(int *assign, const int64_t *W, int n);

/* Compact relabelling: out (n) = rank of in[i] among the sorted distinct values of in;
 * returns the number of distinct values. in must be non-negative (not checked here). */
int relabel_compact(int64_t *out, const int64_t *in, size_t n);

#endif
