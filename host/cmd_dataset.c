/* cmd_dataset.c — placeholder while dataset-info is being written. */
#include "cli.h"
#include "io/err.h"
int cmd_dataset_info(int argc, char **argv) {
    (void)argc; (void)argv;
    laic_error("dataset-info: not implemented yet");
    return cli_fail(1);
}
