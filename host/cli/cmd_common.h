/*
 * cmd_common.h — option handling shared by the subcommands that run the CLIP model
 * (encode-images, encode-text, text-backward): --batch, --threads, --device and, where the
 * command declares them, --precision/--gemm; and by the clustering commands (ridge, kmeans,
 * knn-filter): --threads, --device.
 */
#ifndef LAIC_CMD_COMMON_H
#define LAIC_CMD_COMMON_H

#include "cli/cli.h"
#include "ops.h"

/* Option entries of the model commands, declared once so their help texts cannot drift apart
 * (cli_model_setup reads --device, --threads and, when declared, --precision/--gemm). */
#define CMD_OPT_WEIGHTS                                                                        \
    {"--weights", "W", NULL, "CLIP weights (.safetensors, weights/FORMAT.md)", NULL, 0}
#define CMD_OPT_NORMALIZE {"--normalize", NULL, NULL, "L2-normalise each feature row", NULL, 0}
#define CMD_OPTS_DEVICE_THREADS                                                                \
    {"--device", "D", "auto", "cpu, cuda or auto (CUDA if available)", NULL, 0},              \
    {"--threads", "N", "0", "CPU threads (0 = OpenMP default: all cores)", NULL, 0}
#define CMD_OPTS_PRECISION_GEMM                                                                \
    {"--precision", "P", "fp32", "matmul precision: fp32, tf32 or bf16 (CUDA; CPU: fp32)",     \
     NULL, 0},                                                                                 \
    {"--gemm", "G", "cublas", "CUDA GEMM path: cublas or wmma (wmma: bf16 only)", NULL, 0}

/* Reads --batch (1..65536) and --threads (0..4096), sets the CPU thread count, resolves
 * --device, and applies --precision/--gemm when declared (before any model is created: in
 * bf16 the weights are converted once at creation). Returns 0, or -1 with the error recorded. */
int cli_model_setup(CliOpt *opts, int n, const char *cmd, long *batch, const OpsBackend **ops);

/* The clustering commands (ridge, kmeans, knn-filter): --threads and --device entries, and their
 * handling: thread count set, backend resolved and installed for the cluster drivers. Returns 0,
 * or -1 with the error recorded (bad number, unavailable device). */
#define CMD_OPTS_CLUSTER_DEVICE                                                                \
    {"--threads", "N", "0", "CPU threads (0: OMP/OpenBLAS defaults)", NULL, 0},                \
    {"--device", "D", "auto", "cpu, cuda or auto (CUDA when built with it and a device answers)", \
     NULL, 0}
int cli_cluster_setup(CliOpt *opts, int n);

#endif
