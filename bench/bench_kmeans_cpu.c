/*
 * bench_kmeans_cpu.c — k-means on the CPU, split into its two costs: the k-means++ start and one
 * Lloyd iteration (issue 17: one rank at full speed, against faiss in the same run).
 *
 *   make bench && ./build/bench/bench_kmeans_cpu X.npy [K=100] [iters=10] [reps=3]
 *
 * Prints one JSON line: init_s (kmeans_fit with iters = 0: k-means++ and one assignment),
 * iter_ms (the ops of one Lloyd iteration — centre norms, fused assignment + fixed-point sums,
 * centre means — timed over `iters` iterations from the k-means++ centres), both the best of
 * `reps`, wall clock and process CPU time (the CPU time is steadier on a shared, loaded machine).
 * bench/bench_kmeans_faiss.py runs it beside faiss and scikit-learn.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster/cluster.h"
#include "io/err.h"
#include "ops.h"

static double wall(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double cpu(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_kmeans_cpu X.npy [K=100] [iters=10] [reps=3]\n");
        return 2;
    }
    const int K = argc > 2 ? atoi(argv[2]) : 100, iters = argc > 3 ? atoi(argv[3]) : 10;
    const int reps = argc > 4 ? atoi(argv[4]) : 3;
    Npy a;
    if (cluster_read_matrix(argv[1], &a)) {
        fprintf(stderr, "laic: %s\n", laic_last_error());
        return 1;
    }
    const int N = (int)a.shape[0], d = (int)a.shape[1];
    const float *X = a.data;
    int64_t *labels = malloc(sizeof(int64_t) * (size_t)N);
    float *C0 = malloc(sizeof(float) * (size_t)K * d), *C = malloc(sizeof(float) * (size_t)K * d);
    double obj, init_w = 1e30, init_c = 1e30, it_w = 1e30, it_c = 1e30;
    KMeansOpts o = {.K = K, .iters = 0, .restarts = 1, .seed = 1};
    for (int r = 0; r < reps; r++) {
        double w0 = wall(), c0 = cpu();
        if (kmeans_fit(labels, C0, &obj, X, N, d, &o)) {
            fprintf(stderr, "laic: %s\n", laic_last_error());
            return 1;
        }
        init_w = fmin(init_w, wall() - w0);
        init_c = fmin(init_c, cpu() - c0);
    }
    // one Lloyd iteration = the ops kmeans_lloyd calls per iteration (host/cluster/cluster.c)
    const OpsBackend *b = &ops_cpu;
    float *xx = malloc(sizeof(float) * (size_t)N), *mind = malloc(sizeof(float) * (size_t)N);
    float *cc = malloc(sizeof(float) * (size_t)K);
    int64_t *sums = malloc(sizeof(int64_t) * (size_t)K * d), *counts = malloc(sizeof(int64_t) * K);
    float amax = 0;
    for (size_t i = 0; i < (size_t)N * d; i++) amax = fmaxf(amax, fabsf(X[i]));
    const int shift = kmeans_fixed_shift(amax, N);
    b->rownorm2_forward(xx, X, N, d);
    for (int r = 0; r < reps; r++) {
        memcpy(C, C0, sizeof(float) * (size_t)K * d);
        double w0 = wall(), c0 = cpu();
        for (int it = 0; it < iters; it++) {
            b->rownorm2_forward(cc, C, K, d);
            b->kmeans_assign_sums_forward(labels, mind, sums, counts, X, xx, C, cc, N, d, K, shift);
            b->kmeans_centres_forward(C, sums, counts, K, d, shift);
        }
        it_w = fmin(it_w, (wall() - w0) / iters);
        it_c = fmin(it_c, (cpu() - c0) / iters);
    }
    printf("{\"N\": %d, \"d\": %d, \"K\": %d, \"init_s\": %.4f, \"init_cpu_s\": %.4f, "
           "\"iter_ms\": %.2f, \"iter_cpu_ms\": %.2f}\n",
           N, d, K, init_w, init_c, it_w * 1e3, it_c * 1e3);
    free(labels), free(C0), free(C), free(xx), free(mind), free(cc), free(sums), free(counts);
    npy_free(&a);
    return 0;
}
