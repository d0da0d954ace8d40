/* cmd_init_weights.c — placeholder until the subcommand lands (not a working command). */
#include "cli.h"
#include "io/err.h"
int cmd_init_weights(int argc, char **argv) {
    (void)argc; (void)argv;
    laic_error("init_weights: not implemented yet");
    return cli_fail(1);
}
