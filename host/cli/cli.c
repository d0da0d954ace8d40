/* cli.c — see cli.h. */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "io/err.h"

static int g_exit_code = 0;
int cli_exit_code(void) { return g_exit_code; }

const char *cli_err_prefix(void) {
    static char tag[64];
    if (comm_world_size() == 1) return "laic: ";
    snprintf(tag, sizeof tag, "laic: rank %d/%d: ", comm_world_rank(), comm_world_size());
    return tag;
}

int cli_fail(int code) {
    fprintf(stderr, "%s%s\n", cli_err_prefix(), laic_last_error());
    return code;
}

static void usage(FILE *f, const char *cmd, const char *summary, CliOpt *opts, int n) {
    fprintf(f, "usage: laic %s [options]\n%s\n\noptions:\n", cmd, summary);
    for (int i = 0; i < n; i++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", opts[i].name, opts[i].metavar ? " " : "",
                 opts[i].metavar ? opts[i].metavar : "");
        fprintf(f, "  %-24s %s", left, opts[i].help);
        if (opts[i].def) fprintf(f, " (default: %s)", opts[i].def);
        fputc('\n', f);
    }
    fprintf(f, "  %-24s %s\n", "-h, --help", "show this help and exit");
}

int cli_parse(int argc, char **argv, const char *cmd, const char *summary, CliOpt *opts, int n,
              const char **pos, int max_pos, int *npos) {
    for (int i = 0; i < n; i++) {
        opts[i].value = opts[i].def;
        opts[i].set = 0;
    }
    if (npos) *npos = 0;
    for (int a = 1; a < argc; a++) {
        const char *arg = argv[a];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout, cmd, summary, opts, n);
            g_exit_code = 0;
            return 1;
        }
        if (arg[0] == '-' && arg[1] == '-') {
            const char *eq = strchr(arg, '=');
            size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
            int k = -1;
            for (int i = 0; i < n; i++)
                if (strlen(opts[i].name) == len && !strncmp(opts[i].name, arg, len)) k = i;
            if (k < 0) {
                laic_error("%s: unknown option '%.*s' ---> HINT: see 'laic %s --help'", cmd, (int)len,
                           arg, cmd);
                g_exit_code = cli_fail(2);
                return 1;
            }
            if (!opts[k].metavar) {
                if (eq) {
                    laic_error("%s: option %s takes no value", cmd, opts[k].name);
                    g_exit_code = cli_fail(2);
                    return 1;
                }
                opts[k].value = "1";
            } else if (eq) {
                opts[k].value = eq + 1;
            } else {
                if (a + 1 >= argc) {
                    laic_error("%s: option %s needs a value (%s)", cmd, opts[k].name, opts[k].metavar);
                    g_exit_code = cli_fail(2);
                    return 1;
                }
                opts[k].value = argv[++a];
            }
            opts[k].set = 1;
        } else {
            if (!pos || !npos || *npos >= max_pos) {
                laic_error("%s: unexpected argument '%s' ---> HINT: see 'laic %s --help'", cmd, arg, cmd);
                g_exit_code = cli_fail(2);
                return 1;
            }
            pos[(*npos)++] = arg;
        }
    }
    return 0;
}

static CliOpt *find(CliOpt *opts, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(opts[i].name, name)) return &opts[i];
    fprintf(stderr, "laic: internal error: option %s not declared\n", name);
    abort();
}

const char *cli_get(CliOpt *opts, int n, const char *name) { return find(opts, n, name)->value; }
int cli_flag(CliOpt *opts, int n, const char *name) { return find(opts, n, name)->value != NULL; }

int cli_require(CliOpt *opts, int n, const char *name) {
    if (find(opts, n, name)->value) return 0;
    return laic_error("missing required option %s", name);
}

int cli_get_long(CliOpt *opts, int n, const char *name, long *out) {
    const char *v = find(opts, n, name)->value;
    if (!v) return laic_error("missing required option %s", name);
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end) return laic_error("option %s: '%s' is not an integer", name, v);
    *out = x;
    return 0;
}

int cli_get_double(CliOpt *opts, int n, const char *name, double *out) {
    const char *v = find(opts, n, name)->value;
    if (!v) return laic_error("missing required option %s", name);
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end) return laic_error("option %s: '%s' is not a number", name, v);
    *out = x;
    return 0;
}

int cli_get_long_range(CliOpt *opts, int n, const char *cmd, const char *name, long lo, long hi,
                       long *out) {
    if (cli_get_long(opts, n, name, out)) return -1;
    if (*out < lo || *out > hi) return laic_error("%s: %s %ld outside [%ld,%ld]", cmd, name, *out, lo, hi);
    return 0;
}
