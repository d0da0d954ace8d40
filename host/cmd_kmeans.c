/* cmd_kmeans.c — placeholder until the subcommand lands (not a working command). */
#include "cli.h"
#include "io/err.h"
int cmd_kmeans(int argc, char **argv) {
    (void)argc; (void)argv;
    laic_error("kmeans: not implemented yet");
    return cli_fail(1);
}
