/*
 * cmd_knn_filter.c — `laic knn-filter`: neighbour-consistency scores of pseudo-labels
 * (SPEC §6): s_i = fraction of the k cosine neighbours of row i (self excluded) sharing i's
 * label; mask = (s_i == 1).
 *
 * Writes mask [N] uint8 (and scores [N] float32) atomically, only on success. Errors are one
 * line naming the file: unreadable input, NaN/Inf, label count != N, negative labels, k
 * outside [1, N-1].
 */
#include <stdlib.h>

#include "cli/cli.h"
#include "cli/cmd_common.h"
#include "cluster/cluster.h"
#include "io/err.h"
#include "io/npy.h"
#include "ops.h"

int cmd_knn_filter(int argc, char **argv) {
    CliOpt opts[] = {
        {"--in", "C.npy", NULL, "features [N,d] (rows L2-normalised internally)", NULL, 0},
        {"--labels", "y.npy", NULL, "pseudo-labels [N] (int32/int64, >= 0)", NULL, 0},
        {"--k", "k", "10", "neighbours per row, 1 <= k <= N-1", NULL, 0},
        {"--out", "mask.npy", NULL, "output mask [N] uint8: 1 where all k neighbours agree", NULL, 0},
        {"--scores-out", "s.npy", NULL, "output scores [N] float32 in [0,1]", NULL, 0},
        CMD_OPTS_CLUSTER_DEVICE,
    };
    const int n = CLI_N(opts);
    if (cli_parse(argc, argv, "knn-filter", "Neighbour-consistency scores and high-quality mask.",
                  opts, n, NULL, 0, NULL))
        return cli_exit_code();
    if (cli_require(opts, n, "--in") || cli_require(opts, n, "--labels") ||
        cli_require(opts, n, "--out"))
        return cli_fail(2);
    long k;
    if (cli_get_long(opts, n, "--k", &k)) return cli_fail(2);
    const char *in = cli_get(opts, n, "--in"), *lp = cli_get(opts, n, "--labels");
    const char *out = cli_get(opts, n, "--out"), *sout = cli_get(opts, n, "--scores-out");
    if (cli_cluster_setup(opts, n)) return cli_fail(2);
    Npy F = {0}, Y = {0};
    if (cluster_read_matrix(in, &F)) return cli_fail(1);
    int N = (int)F.shape[0], d = (int)F.shape[1], rc = 1;
    int64_t *idx = NULL;
    float *scores = NULL;
    uint8_t *mask = NULL;
    if (npy_read_i64(lp, &Y, 1, NULL)) goto done;
    if (Y.count != (size_t)N) {
        laic_error("%s: %zu labels for %d rows of %s", lp, Y.count, N, in);
        goto done;
    }
    const int64_t *y = Y.data;
    for (int i = 0; i < N; i++)
        if (y[i] < 0) {
            laic_error("%s: negative label %lld at index %d", lp, (long long)y[i], i);
            goto done;
        }
    if (k < 1 || k >= N) {
        laic_error("%s: k = %ld must be in [1, N-1] = [1, %d]", in, k, N - 1);
        goto done;
    }
    idx = mallocCheck(sizeof(int64_t) * (size_t)N * k);
    scores = mallocCheck(sizeof(float) * (size_t)N);
    mask = mallocCheck((size_t)N);
    if (knn_topk(idx, NULL, F.data, N, d, (int)k)) goto done;
    if (knn_filter(scores, mask, idx, y, N, (int)k)) goto done;
    size_t shape[1] = {(size_t)N};
    if (npy_write(out, NPY_U8, 1, shape, mask)) goto done;
    if (sout && npy_write(sout, NPY_F32, 1, shape, scores)) goto done;
    rc = 0;
done:
    free(idx);
    free(scores);
    free(mask);
    npy_free(&F);
    npy_free(&Y);
    return rc ? cli_fail(rc) : 0;
}
