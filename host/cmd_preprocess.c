/* cmd_preprocess.c — placeholder until the subcommand lands (not a working command). */
#include "cli.h"
#include "io/err.h"
int cmd_preprocess(int argc, char **argv) {
    (void)argc; (void)argv;
    laic_error("preprocess: not implemented yet");
    return cli_fail(1);
}
