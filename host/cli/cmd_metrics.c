/*
 * cmd_metrics.c — `laic metrics`: NMI / ACC / ARI of predicted labels against ground truth,
 * printed as one JSON object on stdout (fractions, %.17g so values round-trip).
 *
 * Errors are one line naming the file: unreadable or non-integer labels, negative labels, a
 * length mismatch, empty input.
 */
#include <stdio.h>

#include "cli/cli.h"
#include "io/err.h"
#include "io/npy.h"
#include "cluster/metrics.h"

static int read_labels(const char *path, Npy *a) {
    if (npy_read_i64(path, a, 1, NULL)) return -1;
    if (a->count == 0) {
        npy_free(a);
        return laic_error("%s: no labels", path);
    }
    const int64_t *y = a->data;
    for (size_t i = 0; i < a->count; i++)
        if (y[i] < 0) {
            laic_error("%s: negative label %lld at index %zu", path, (long long)y[i], i);
            npy_free(a);
            return -1;
        }
    return 0;
}

int cmd_metrics(int argc, char **argv) {
    CliOpt opts[] = {
        {"--pred", "p.npy", NULL, "predicted cluster labels [N] (int32/int64, >= 0)", NULL, 0},
        {"--labels", "y.npy", NULL, "ground-truth labels [N] (int32/int64, >= 0)", NULL, 0},
    };
    const int n = CLI_N(opts);
    if (cli_parse(argc, argv, "metrics", "NMI / ACC (Hungarian) / ARI as one JSON object.", opts, n,
                  NULL, 0, NULL))
        return cli_exit_code();
    if (cli_require(opts, n, "--pred") || cli_require(opts, n, "--labels")) return cli_fail(2);
    const char *pp = cli_get(opts, n, "--pred"), *lp = cli_get(opts, n, "--labels");
    Npy P = {0}, Y = {0};
    if (read_labels(pp, &P)) return cli_fail(1);
    if (read_labels(lp, &Y)) {
        npy_free(&P);
        return cli_fail(1);
    }
    int rc = 1;
    ClusterMetrics m;
    if (P.count != Y.count) {
        laic_error("%s: %zu labels but %s has %zu", lp, Y.count, pp, P.count);
        goto done;
    }
    if (metrics_compute(&m, P.data, Y.data, P.count)) goto done;
    printf("{\"nmi\": %.17g, \"acc\": %.17g, \"ari\": %.17g, \"n\": %zu, \"k_pred\": %d, "
           "\"k_true\": %d}\n", m.nmi, m.acc, m.ari, m.n, m.k_pred, m.k_true);
    rc = fflush(stdout) ? 1 : 0;
    if (rc) laic_error("metrics: cannot write to stdout");
done:
    npy_free(&P);
    npy_free(&Y);
    return rc ? cli_fail(rc) : 0;
}
