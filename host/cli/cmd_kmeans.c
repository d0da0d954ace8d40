/*
 * cmd_kmeans.c — `laic kmeans`: Lloyd k-means of the rows of a .npy matrix (cluster.h
 * kmeans_fit: k-means++ / random / given init, restarts, spherical, sampling).
 *
 * Writes labels [N] int64 (and centres [K,d] float32) atomically, only on success; prints one
 * line per restart on stderr. Errors are one line naming the file: unreadable input, NaN/Inf,
 * K > N, a given init of the wrong shape.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_common.h"
#include "cluster/cluster.h"
#include "io/err.h"
#include "io/npy.h"
#include "ops.h"

int cmd_kmeans(int argc, char **argv) {
    CliOpt opts[] = {
        {"--in", "F.npy", NULL, "features [N,d]", NULL, 0},
        {"--k", "K", NULL, "number of clusters, 1 <= K <= N", NULL, 0},
        {"--out", "labels.npy", NULL, "output labels [N] int64", NULL, 0},
        {"--centers-out", "C.npy", NULL, "output centres [K,d] float32", NULL, 0},
        {"--spherical", NULL, NULL, "cosine k-means: L2-normalise rows and centres", NULL, 0},
        {"--init", "I", "kmeans++", "kmeans++ | random | C0.npy (given centres [K,d], one run)", NULL, 0},
        {"--iters", "N", "300", "max Lloyd iterations per restart", NULL, 0},
        {"--restarts", "N", "10", "restarts; the lowest objective wins", NULL, 0},
        {"--seed", "S", "1234", "random seed", NULL, 0},
        {"--tol", "T", "0", "stop when the squared centre shift <= T", NULL, 0},
        {"--sample", "N", "0", "train on a seeded subsample of N rows, then assign all (0: all)", NULL, 0},
        {"--threads", "N", "0", "CPU threads (0: OMP/OpenBLAS defaults); results do not depend on it", NULL, 0},
        {"--device", "D", "auto", "cpu, cuda or auto (CUDA when built with it and a device answers)", NULL, 0},
    };
    const int n = CLI_N(opts);
    if (cli_parse(argc, argv, "kmeans", "Lloyd k-means (k-means++, restarts, spherical) on .npy rows.",
                  opts, n, NULL, 0, NULL))
        return cli_exit_code();
    if (cli_require(opts, n, "--in") || cli_require(opts, n, "--k") || cli_require(opts, n, "--out"))
        return cli_fail(2);
    long K, iters, restarts, seed, sample;
    double tol;
    if (cli_get_long(opts, n, "--k", &K) || cli_get_long(opts, n, "--iters", &iters) ||
        cli_get_long(opts, n, "--restarts", &restarts) || cli_get_long(opts, n, "--seed", &seed) ||
        cli_get_long(opts, n, "--sample", &sample) ||
        cli_get_double(opts, n, "--tol", &tol))
        return cli_fail(2);
    if (K < 1 || iters < 0 || restarts < 1 || sample < 0 || !(tol >= 0)) {
        laic_error("kmeans: need --k >= 1, --iters >= 0, --restarts >= 1, --sample >= 0, --tol >= 0");
        return cli_fail(2);
    }
    const char *in = cli_get(opts, n, "--in"), *init = cli_get(opts, n, "--init");
    const char *out = cli_get(opts, n, "--out"), *cout = cli_get(opts, n, "--centers-out");
    if (cli_cluster_setup(opts, n)) return cli_fail(2);

    Npy F = {0}, C0 = {0};
    if (cluster_read_matrix(in, &F)) return cli_fail(1);
    int N = (int)F.shape[0], d = (int)F.shape[1], rc = 1;
    int64_t *labels = NULL;
    float *centers = NULL;
    KMeansOpts o = {.K = (int)K, .iters = (int)iters, .restarts = (int)restarts,
                    .seed = (uint64_t)seed, .tol = tol, .spherical = cli_flag(opts, n, "--spherical"),
                    .sample = (size_t)sample, .verbose = 1};
    if (K > N) {
        laic_error("%s: K = %ld exceeds the number of rows (%d)", in, K, N);
        goto done;
    }
    if (sample > 0 && sample < N && K > sample) {
        laic_error("%s: K = %ld exceeds --sample %ld", in, K, sample);
        goto done;
    }
    if (!strcmp(init, "kmeans++")) o.init = KMEANS_INIT_PP;
    else if (!strcmp(init, "random")) o.init = KMEANS_INIT_RANDOM;
    else {
        long shape[2] = {K, d};
        if (npy_read_f32(init, &C0, 2, shape)) goto done;
        if (cluster_check_finite(C0.data, C0.count, init)) goto done;
        o.init = KMEANS_INIT_GIVEN;
        o.init_centers = C0.data;
    }
    labels = mallocCheck(sizeof(int64_t) * (size_t)N);
    centers = mallocCheck(sizeof(float) * (size_t)K * d);
    double obj;
    if (kmeans_fit(labels, centers, &obj, F.data, N, d, &o)) goto done;
    size_t shape1[1] = {(size_t)N};
    if (npy_write(out, NPY_I64, 1, shape1, labels)) goto done;
    if (cout && npy_write_f32_2d(cout, centers, (size_t)K, (size_t)d)) goto done;
    rc = 0;
done:
    free(labels);
    free(centers);
    npy_free(&F);
    npy_free(&C0);
    return rc ? cli_fail(rc) : 0;
}
