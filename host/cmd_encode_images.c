/* cmd_encode_images.c — placeholder until the subcommand lands (not a working command). */
#include "cli.h"
#include "io/err.h"
int cmd_encode_images(int argc, char **argv) {
    (void)argc; (void)argv;
    laic_error("encode_images: not implemented yet");
    return cli_fail(1);
}
