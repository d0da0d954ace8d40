/* cmd_metrics.c — placeholder until the subcommand lands (not a working command). */
#include "cli.h"
#include "io/err.h"
int cmd_metrics(int argc, char **argv) {
    (void)argc; (void)argv;
    laic_error("metrics: not implemented yet");
    return cli_fail(1);
}
