/*
 * cli.h — subcommands and their small option parser.
 *
 * Each subcommand lives in host/cmd_<name>.c as `int cmd_<name>(int argc, char **argv)`
 * (argv[0] is the subcommand name) and returns the process exit code. Options are declared
 * in a table so `--help` prints every option with its default:
 *
 *   CliOpt opts[] = {
 *       {"--weights", "W", NULL, "converted CLIP weights (.safetensors)"},   // value option
 *       {"--normalize", NULL, NULL, "L2-normalise output rows"},             // flag (no value)
 *   };
 *   if (cli_parse(argc, argv, "encode-text", "Encode texts with the CLIP text encoder.",
 *                 opts, CLI_N(opts))) return cli_exit_code();
 *   const char *w = cli_get(opts, CLI_N(opts), "--weights");
 *
 * Unknown options, missing values and stray positionals are one-line errors (exit 2);
 * `--help`/`-h` prints the usage and makes cli_exit_code() return 0.
 */
#ifndef LAIC_CLI_H
#define LAIC_CLI_H

#include <stddef.h>

typedef struct {
    const char *name;   // "--weights"
    const char *metavar;// value name for help; NULL = boolean flag
    const char *def;    // default value (NULL = none/required when checked with cli_require)
    const char *help;
    const char *value;  // filled by cli_parse: the value, or "1" for a set flag, or def
    int set;            // given on the command line
} CliOpt;

#define CLI_N(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* Parses argv[1..]. Positional arguments are collected into *pos (may be NULL = none allowed).
 * Returns 0 to continue, 1 when the command should exit with cli_exit_code(). */
int cli_parse(int argc, char **argv, const char *cmd, const char *summary, CliOpt *opts, int n,
              const char **pos, int max_pos, int *npos);
int cli_exit_code(void);
const char *cli_get(CliOpt *opts, int n, const char *name);
int cli_flag(CliOpt *opts, int n, const char *name);
/* Value as a number; records an error naming the option on a bad value. */
int cli_get_long(CliOpt *opts, int n, const char *name, long *out);
int cli_get_double(CliOpt *opts, int n, const char *name, double *out);
/* cli_get_long, then "<cmd>: --opt V outside [lo,hi]" when out of range. */
int cli_get_long_range(CliOpt *opts, int n, const char *cmd, const char *name, long lo, long hi,
                       long *out);
/* Error if a required option is missing. */
int cli_require(CliOpt *opts, int n, const char *name);

/* Prints "laic: <last error>" to stderr and returns `code`. */
int cli_fail(int code);
/* "laic: " in a one-process run, "laic: rank R/P: " in a job of P ranks (error lines). */
const char *cli_err_prefix(void);

/* Subcommands (each in host/cmd_*.c). */
int cmd_run(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_init_weights(int argc, char **argv);
int cmd_encode_images(int argc, char **argv);
int cmd_encode_text(int argc, char **argv);
int cmd_preprocess(int argc, char **argv);
int cmd_ridge(int argc, char **argv);
int cmd_kmeans(int argc, char **argv);
int cmd_knn(int argc, char **argv);
int cmd_knn_filter(int argc, char **argv);
int cmd_metrics(int argc, char **argv);
int cmd_nouns(int argc, char **argv);
int cmd_dataset_info(int argc, char **argv);
int cmd_text_backward(int argc, char **argv);
int cmd_image_backward(int argc, char **argv);
int cmd_train_centers(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_doctor(int argc, char **argv);

#endif
