/*
 * dense.c — the small dense CPU ops of the clustering drivers (OpsBackend entries, declared in
 * cpu/cluster_ops.h): float<->double conversions, transpose, Gram matrix, the double and
 * float GEMMs of ridge and the run's products, k-means row distances. Plain loops or one
 * OpenBLAS call each; results overwrite their outputs.
 */
#include <cblas.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu/cluster_ops.h"

void f32_to_f64_cpu(double *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = inp[i];
}

void f64_to_f32_cpu(float *out, const double *inp, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (float)inp[i];
}

void transpose_f64_cpu(double *out, const double *inp, int r, int c) {
    for (int i = 0; i < r; i++)
        for (int j = 0; j < c; j++) out[(size_t)j * r + i] = inp[(size_t)i * c + j];
}

void gram_f64_forward_cpu(double *G, const double *A, double lambda, int n, int k, int trans) {
    if (trans) cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, n, k, 1.0, A, n, 0.0, G, n);
    else cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, n, k, 1.0, A, k, 0.0, G, n);
    if (lambda != 0.0)
        for (int i = 0; i < n; i++) G[(size_t)i * n + i] += lambda;
}

void dgemm_nt_forward_cpu(double *C, const double *A, const double *B, int M, int K, int N) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0, A, K, B, K, 0.0, C, N);
}

void sgemm_nn_forward_cpu(float *C, const float *A, const float *B, int M, int K, int N) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f, C,
                N);
}

void kmeans_rowdist_forward_cpu(double *out, const float *X, const float *C,
                                const int64_t *labels, int N, int d) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float *x = X + (size_t)i * d, *c = C + (size_t)labels[i] * d;
        double s = 0;
        for (int j = 0; j < d; j++) {
            double t = (double)x[j] - c[j];
            s += t * t;
        }
        out[i] = s;
    }
}
