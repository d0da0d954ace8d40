/* cmd_knn.c — placeholder until the subcommand lands (not a working command). */
#include "cli.h"
#include "io/err.h"
int cmd_knn(int argc, char **argv) {
    (void)argc; (void)argv;
    laic_error("knn: not implemented yet");
    return cli_fail(1);
}
