/*
 * knn_l2.h — exact Euclidean k nearest neighbours of a point set among itself, SELF INCLUDED:
 * what faiss IndexFlatL2 returns when X searches X (SIC utils/utils.py:153-165 mines its
 * neighbours this way on raw, unnormalised CLIP features). The cosine kNN of cluster.h
 * (knn_topk) excludes self and normalises rows; this one does neither.
 *
 * Squared distances ‖x‖² − 2x·y + ‖y‖² (clamped at 0) come from the cluster backend's
 * rownorm2_forward / sqdist_forward ops in blocks of rows (never N×N at once); each row keeps
 * its k smallest in increasing order, ties to the lower index, on the host. On CUDA each block
 * of distances is copied back for the selection (N² floats cross the bus in all).
 */
#ifndef LAIC_KNN_L2_H
#define LAIC_KNN_L2_H

#include <stdint.h>

/* idx (N,k) int64, d2 (N,k) squared distances or NULL, for X (N,d) host rows; 1 <= k <= N.
 * -1 with an error recorded for a bad k or when the backend cannot allocate. */
int knn_l2_topk(int64_t *idx, float *d2, const float *X, int N, int d, int k);

#endif
