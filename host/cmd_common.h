/*
 * cmd_common.h — option handling shared by the subcommands that run the CLIP model
 * (encode-images, encode-text, text-backward): --batch, --threads, --device and, where the
 * command declares them, --precision/--gemm.
 */
#ifndef LAIC_CMD_COMMON_H
#define LAIC_CMD_COMMON_H

#include "cli.h"
#include "ops.h"

/* Reads --batch (1..65536) and --threads (0..4096), sets the CPU thread count, resolves
 * --device, and applies --precision/--gemm when declared (before any model is created: in
 * bf16 the weights are converted once at creation). Returns 0, or -1 with the error recorded. */
int cli_model_setup(CliOpt *opts, int n, const char *cmd, long *batch, const OpsBackend **ops);

#endif
