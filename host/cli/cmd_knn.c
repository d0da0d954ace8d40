/*
 * cmd_knn.c — `laic knn`: cosine top-k neighbours of every row (self excluded, ties to the
 * lowest index), computed tile by tile (never the N×N matrix).
 *
 * Writes idx [N,k] int64 (and sims [N,k] float32) atomically, only on success. Errors are one
 * line naming the file: unreadable input, NaN/Inf, k outside [1, N-1]; an unknown --precision
 * is a one-line usage error. --precision bf16 on CUDA runs the fused GEMM + top-k kernel
 * (kernels/knn.cu, knn_topk_forward_kernel2) when k <= 48.
 */
#include <stdlib.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cluster/cluster.h"
#include "io/err.h"
#include "io/npy.h"
#include "ops.h"

int cmd_knn(int argc, char **argv) {
    CliOpt opts[] = {
        {"--in", "F.npy", NULL, "features [N,d] (rows L2-normalised internally)", NULL, 0},
        {"--k", "k", "10", "neighbours per row, 1 <= k <= N-1", NULL, 0},
        {"--out", "idx.npy", NULL, "output neighbour indices [N,k] int64, most similar first", NULL, 0},
        {"--sims-out", "S.npy", NULL, "output cosine similarities [N,k] float32", NULL, 0},
        {"--threads", "N", "0", "CPU threads (0: OMP/OpenBLAS defaults)", NULL, 0},
        {"--device", "D", "auto", "cpu, cuda or auto (CUDA when built with it and a device answers)", NULL, 0},
        {"--precision", "P", NULL,
         "CUDA similarity precision: fp32 (exact path), tf32, or bf16 (fused GEMM + top-k, exact "
         "re-rank); default $LAIC_KNN_PRECISION or fp32. The CPU always computes fp32", NULL, 0},
    };
    const int n = CLI_N(opts);
    if (cli_parse(argc, argv, "knn", "Cosine top-k neighbours (self excluded), tiled.", opts, n,
                  NULL, 0, NULL))
        return cli_exit_code();
    if (cli_require(opts, n, "--in") || cli_require(opts, n, "--out")) return cli_fail(2);
    long k, threads;
    if (cli_get_long(opts, n, "--k", &k) || cli_get_long(opts, n, "--threads", &threads))
        return cli_fail(2);
    const char *in = cli_get(opts, n, "--in"), *out = cli_get(opts, n, "--out");
    const char *sout = cli_get(opts, n, "--sims-out");
    const char *prec = cli_get(opts, n, "--precision");
    if (prec && knn_set_precision(prec)) return cli_fail(2);   // "knn: unknown precision '…'"
    cluster_set_threads((int)threads);
    const OpsBackend *ops = ops_get(cli_get(opts, n, "--device"));
    if (!ops) return cli_fail(2);
    cluster_set_backend(ops);
    Npy F = {0};
    if (cluster_read_matrix(in, &F)) return cli_fail(1);
    int N = (int)F.shape[0], d = (int)F.shape[1], rc = 1;
    int64_t *idx = NULL;
    float *sims = NULL;
    if (k < 1 || k >= N) {
        laic_error("%s: k = %ld must be in [1, N-1] = [1, %d]", in, k, N - 1);
        goto done;
    }
    idx = mallocCheck(sizeof(int64_t) * (size_t)N * k);
    if (sout) sims = mallocCheck(sizeof(float) * (size_t)N * k);
    if (knn_topk(idx, sims, F.data, N, d, (int)k)) goto done;
    size_t shape[2] = {(size_t)N, (size_t)k};
    if (npy_write(out, NPY_I64, 2, shape, idx)) goto done;
    if (sout && npy_write(sout, NPY_F32, 2, shape, sims)) {
        unlink(out);   // all or nothing: no idx.npy without the sims asked for
        goto done;
    }
    rc = 0;
done:
    free(idx);
    free(sims);
    npy_free(&F);
    return rc ? cli_fail(rc) : 0;
}
