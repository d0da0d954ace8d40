/*
 * kmeans.c — CPU ops of Lloyd's k-means: assignment through a GEMM, centre update in double,
 * row norms and row normalisation.
 *
 * Promises: each output element is computed by one thread in a fixed order, so results do not
 * depend on the thread count; ties in the assignment go to the lowest centre index.
 * Letters: N rows, d width, K centres.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu/cluster_ops.h"
#include "io/err.h"

/* The GEMMs below run inside our own OpenMP loop over row blocks and must each run on one
 * thread. OpenBLAS's OpenMP build already does that for a call made inside a parallel region,
 * and there openblas_set_num_threads() would call omp_set_num_threads() and shrink our own
 * loop to one thread; only the pthread build needs its pool set to 1 around the loop. */
#define OPENBLAS_PARALLEL_OPENMP 2   // openblas_get_parallel(): 0 serial, 1 pthreads, 2 OpenMP

int blas_serial_begin(void) {
    if (openblas_get_parallel() == OPENBLAS_PARALLEL_OPENMP) return 1;
    int n = openblas_get_num_threads();
    if (n != 1) openblas_set_num_threads(1);
    return n;
}

void blas_serial_end(int saved) {
    if (saved != 1) openblas_set_num_threads(saved);
}

void rownorm2_forward_cpu(float *out, const float *X, int N, int d) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float *x = X + (size_t)i * d;   // (d)
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)x[j] * x[j];
        out[i] = (float)s;
    }
}

void l2normalize_rows_cpu(float *out, const float *X, int N, int d) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float *x = X + (size_t)i * d;
        float *o = out + (size_t)i * d;
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)x[j] * x[j];
        // No 1e-12 floor (F.normalize's): a row of norm < 1e-12 (features ×1e-30) must come out
        // unit like any other. In double every nonzero float row has a finite, nonzero norm
        // and reciprocal (subnormal to FLT_MAX, any d), so only an all-zero row stays zero.
        double nrm = sqrt(s);
        double inv = nrm > 0 ? 1.0 / nrm : 0.0;
        for (int j = 0; j < d; j++) o[j] = (float)(x[j] * inv);
    }
}

void sqdist_forward_cpu(float *D, const float *X, const float *xx, const float *C, const float *cc,
                        int N, int d, int K) {
    const int BR = CLUSTER_GEMM_ROWS;
    int nb = (N + BR - 1) / BR, saved = blas_serial_begin();
#pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < nb; b++) {
        int r0 = b * BR, R = N - r0 < BR ? N - r0 : BR;
        float *Db = D + (size_t)r0 * K;   // (R,K)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, K, d, 1.0f, X + (size_t)r0 * d, d,
                    C, d, 0.0f, Db, K);
        for (int i = 0; i < R; i++)
            for (int j = 0; j < K; j++) {
                float t = xx[r0 + i] - 2.0f * Db[(size_t)i * K + j] + cc[j];
                Db[(size_t)i * K + j] = t > 0.0f ? t : 0.0f;
            }
    }
    blas_serial_end(saved);
}

void kmeans_assign_forward_cpu(int64_t *labels, float *mind, const float *X, const float *xx,
                               const float *C, const float *cc, int N, int d, int K) {
    const int BR = CLUSTER_GEMM_ROWS;
    int nb = (N + BR - 1) / BR, saved = blas_serial_begin();
#pragma omp parallel
    {
        float *dots = mallocCheck(sizeof(float) * (size_t)BR * K);   // (block,K) per thread
#pragma omp for schedule(dynamic, 1)
        for (int b = 0; b < nb; b++) {
            int r0 = b * BR, R = N - r0 < BR ? N - r0 : BR;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, K, d, 1.0f,
                        X + (size_t)r0 * d, d, C, d, 0.0f, dots, K);
            for (int i = 0; i < R; i++) {
                const float *di = dots + (size_t)i * K;
                float x2 = xx[r0 + i], best = INFINITY;
                int64_t bj = 0;
                for (int j = 0; j < K; j++) {
                    float dist = x2 - 2.0f * di[j] + cc[j];
                    if (dist < best) {   // strict: the lowest index wins a tie
                        best = dist;
                        bj = j;
                    }
                }
                labels[r0 + i] = bj;
                mind[r0 + i] = best > 0.0f ? best : 0.0f;
            }
        }
        free(dots);
    }
    blas_serial_end(saved);
}

void kmeans_update_forward_cpu(float *C, int64_t *counts, const float *X, const int64_t *labels,
                               int N, int d, int K) {
    memset(counts, 0, sizeof(int64_t) * (size_t)K);
    for (int i = 0; i < N; i++) counts[labels[i]]++;
    // Each thread owns a column range of every centre and walks all rows in order, so every
    // sum has one fixed order whatever the thread count.
    double *acc = callocCheck((size_t)K * d, sizeof(double));   // (K,d)
#pragma omp parallel
    {
#ifdef _OPENMP
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
#else
        int nt = 1, t = 0;
#endif
        int per = (d + nt - 1) / nt;
        int j0 = t * per, j1 = j0 + per < d ? j0 + per : d;
        for (int i = 0; i < N && j0 < j1; i++) {
            const float *x = X + (size_t)i * d;
            double *a = acc + (size_t)labels[i] * d;
            for (int j = j0; j < j1; j++) a[j] += x[j];
        }
    }
    for (int c = 0; c < K; c++) {
        if (!counts[c]) continue;
        double n = (double)counts[c];
        for (int j = 0; j < d; j++) C[(size_t)c * d + j] = (float)(acc[(size_t)c * d + j] / n);
    }
    free(acc);
}
