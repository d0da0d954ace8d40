/* cmd_common.c — see cmd_common.h. */
#include "cli/cmd_common.h"

#include <string.h>

#include "model/clip.h"
#include "cluster/cluster.h"
#include "cpu/cpu_ops.h"

static int declared(const CliOpt *opts, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(opts[i].name, name)) return 1;
    return 0;
}

int cli_model_setup(CliOpt *opts, int n, const char *cmd, long *batch, const OpsBackend **ops) {
    long threads;
    if (cli_get_long_range(opts, n, cmd, "--batch", 1, 65536, batch) ||
        cli_get_long_range(opts, n, cmd, "--threads", 0, 4096, &threads))
        return -1;
    cpu_set_threads((int)threads);
    if (!(*ops = ops_get(cli_get(opts, n, "--device")))) return -1;
    if (declared(opts, n, "--precision") &&
        clip_set_precision(*ops, cli_get(opts, n, "--precision"), cli_get(opts, n, "--gemm")))
        return -1;
    return 0;
}

int cli_cluster_setup(CliOpt *opts, int n) {
    long threads;
    if (cli_get_long(opts, n, "--threads", &threads)) return -1;
    cluster_set_threads((int)threads);
    const OpsBackend *ops = ops_get(cli_get(opts, n, "--device"));
    if (!ops) return -1;
    cluster_set_backend(ops);
    return 0;
}
