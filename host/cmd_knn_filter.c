/* cmd_knn_filter.c — placeholder until the subcommand lands (not a working command). */
#include "cli.h"
#include "io/err.h"
int cmd_knn_filter(int argc, char **argv) {
    (void)argc; (void)argv;
    laic_error("knn_filter: not implemented yet");
    return cli_fail(1);
}
