/*
 * cmd_ridge.c — `laic ridge`: the cross-modal representation C = X Tᵀ (T Tᵀ + λI)⁻¹ (SPEC §5)
 * and/or its exact reduction Z = X L (Z Zᵀ = C Cᵀ), from .npy features.
 *
 * Inputs are used as given unless --normalize (rows L2-normalised first). Errors (one line,
 * naming the file): unreadable/non-2-D input, NaN/Inf, width mismatch, λ <= 0, a system that
 * is not positive definite (with its pivot). Outputs are written atomically, only on success.
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

int cmd_ridge(int argc, char **argv) {
    CliOpt opts[] = {
        {"--images", "X.npy", NULL, "image features X [N,d] (float32/64)", NULL, 0},
        {"--texts", "T.npy", NULL, "text features T [M,d]", NULL, 0},
        {"--lambda", "L", "10", "ridge strength, > 0", NULL, 0},
        {"--out", "C.npy", NULL, "output C [N,M] float32", NULL, 0},
        {"--reduced-out", "Z.npy", NULL, "output Z = X L [N,d] with Z Z^T = C C^T (needs M >= d)", NULL, 0},
        {"--normalize", NULL, NULL, "L2-normalise the rows of X and T first", NULL, 0},
        {"--form", "F", "auto", "auto|primal (M x M system)|dual (d x d push-through)", NULL, 0},
        CMD_OPTS_CLUSTER_DEVICE,
    };
    const int n = CLI_N(opts);
    if (cli_parse(argc, argv, "ridge", "Cross-modal matrix C = X T^T (T T^T + lambda I)^-1 by "
                  "Cholesky (no explicit inverse).", opts, n, NULL, 0, NULL))
        return cli_exit_code();
    if (cli_require(opts, n, "--images") || cli_require(opts, n, "--texts")) return cli_fail(2);
    const char *xp = cli_get(opts, n, "--images"), *tp = cli_get(opts, n, "--texts");
    const char *out = cli_get(opts, n, "--out"), *zout = cli_get(opts, n, "--reduced-out");
    if (!out && !zout) {
        laic_error("ridge: nothing to write ---> HINT: give --out C.npy and/or --reduced-out Z.npy");
        return cli_fail(2);
    }
    double lambda;
    if (cli_get_double(opts, n, "--lambda", &lambda)) return cli_fail(2);
    if (!(lambda > 0)) {
        laic_error("ridge: --lambda must be > 0 (got %s)", cli_get(opts, n, "--lambda"));
        return cli_fail(2);
    }
    const char *fs = cli_get(opts, n, "--form");
    RidgeForm form;
    if (!strcmp(fs, "auto")) form = RIDGE_AUTO;
    else if (!strcmp(fs, "primal")) form = RIDGE_PRIMAL;
    else if (!strcmp(fs, "dual")) form = RIDGE_DUAL;
    else {
        laic_error("ridge: --form must be auto, primal or dual (got '%s')", fs);
        return cli_fail(2);
    }
    if (cli_cluster_setup(opts, n)) return cli_fail(2);

    Npy X = {0}, T = {0};
    if (cluster_read_matrix(xp, &X)) return cli_fail(1);
    if (cluster_read_matrix(tp, &T)) {
        npy_free(&X);
        return cli_fail(1);
    }
    int rc = 1;
    float *C = NULL, *Z = NULL;
    int N = (int)X.shape[0], d = (int)X.shape[1], M = (int)T.shape[0];
    if (T.shape[1] != X.shape[1]) {
        laic_error("%s: width %zu does not match %s (width %zu)", tp, T.shape[1], xp, X.shape[1]);
        goto done;
    }
    if (cli_flag(opts, n, "--normalize")) {
        l2normalize_rows_cpu(X.data, X.data, N, d);
        l2normalize_rows_cpu(T.data, T.data, M, d);
    }
    if (out) {
        C = mallocCheck(sizeof(float) * (size_t)N * M);   // (N,M)
        if (ridge_solve(C, X.data, T.data, lambda, N, M, d, form)) {
            laic_error("%s: %s", tp, laic_last_error());   // the system is built from T
            goto done;
        }
    }
    if (zout) {
        Z = mallocCheck(sizeof(float) * (size_t)N * d);   // (N,d)
        if (ridge_reduce(Z, X.data, T.data, lambda, N, M, d)) {
            laic_error("%s: %s", tp, laic_last_error());
            goto done;
        }
    }
    if (out && npy_write_f32_2d(out, C, (size_t)N, (size_t)M)) goto done;
    if (zout && npy_write_f32_2d(zout, Z, (size_t)N, (size_t)d)) goto done;
    rc = 0;
done:
    free(C);
    free(Z);
    npy_free(&X);
    npy_free(&T);
    return rc ? cli_fail(rc) : 0;
}
