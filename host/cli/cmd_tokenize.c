/*
 * cmd_tokenize.c — `laic tokenize`: CLIP BPE ids for UTF-8 text (clip.tokenize(truncate=True)).
 *
 * Input: one text per line on stdin ('\n' separated; a last line without '\n' counts), or one
 * text from --text. Output, one line per input line: the ids SOT .. EOT separated by single
 * spaces (the whole padded row of --context ids with --pad), or with --npy OUT an int32 array
 * [n, context] of padded rows written atomically, stdout silent and one summary line on stderr.
 * Errors (invalid UTF-8 "stdin:3: invalid UTF-8 at byte 5 (0xff)", missing vocabulary) are one
 * line, exit status 1, and no --npy file is written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "io/err.h"
#include "io/npy.h"
#include "model/tokenizer.h"

static void print_row(FILE *f, const int32_t *row, int n) {
    for (int i = 0; i < n; i++) fprintf(f, i ? " %d" : "%d", row[i]);
    fputc('\n', f);
}

int cmd_tokenize(int argc, char **argv) {
    CliOpt opts[] = {
        {"--text", "STR", NULL, "tokenize STR instead of reading lines from stdin", NULL, 0},
        {"--context", "N", "77", "context length (rows are truncated to N, last token EOT)", NULL, 0},
        {"--pad", NULL, NULL, "print the full zero-padded row of N ids", NULL, 0},
        {"--npy", "OUT", NULL, "write int32 [lines, N] padded rows to OUT (.npy) instead of printing", NULL, 0},
        {"--vocab", "PATH", NULL, "BPE merges file (default: $LAIC_VOCAB, ./assets, ../shared/assets)", NULL, 0},
    };
    const int n_opts = CLI_N(opts);
    if (cli_parse(argc, argv, "tokenize",
                  "Tokenize UTF-8 text with CLIP's BPE (one output line per input line).", opts, n_opts,
                  NULL, 0, NULL))
        return cli_exit_code();
    long context;
    if (cli_get_long(opts, n_opts, "--context", &context)) return cli_fail(2);
    if (context < 1 || context > 1000000) {
        laic_error("tokenize: --context must be in 1..1000000 (got %ld)", context);
        return cli_fail(2);
    }
    const char *text = cli_get(opts, n_opts, "--text");
    const char *npy = cli_get(opts, n_opts, "--npy");
    int pad = cli_flag(opts, n_opts, "--pad");
    const char *vocab = cli_get(opts, n_opts, "--vocab");
    if (!vocab && !(vocab = tokenizer_default_vocab_path())) return cli_fail(1);
    Tokenizer *tok = tokenizer_load(vocab);
    if (!tok) return cli_fail(1);

    int32_t *row = mallocCheck((size_t)context * sizeof *row);
    int32_t *rows = NULL;   // (nrows, context) with --npy
    size_t nrows = 0, cap = 0;
    char *line = NULL;
    size_t line_cap = 0;
    int rc = 0;
    for (size_t lineno = 1;; lineno++) {
        const char *s;
        size_t len;
        if (text) {
            if (lineno > 1) break;
            s = text;
            len = strlen(text);
        } else {
            ssize_t r = getline(&line, &line_cap, stdin);
            if (r < 0) break;
            len = (size_t)r;
            if (len && line[len - 1] == '\n') len--;
            s = line;
        }
        int n = tokenizer_tokenize(tok, s, len, (int)context, row);
        if (n < 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", laic_last_error());
            if (text) laic_error("--text: %s", msg);
            else laic_error("stdin:%zu: %s", lineno, msg);
            rc = 1;
            break;
        }
        if (npy) {
            if (nrows == cap) {
                cap = cap ? 2 * cap : 1024;
                int32_t *p = realloc(rows, cap * (size_t)context * sizeof *rows);
                if (!p) {
                    laic_error("tokenize: out of memory for %zu rows", cap);
                    rc = 1;
                    break;
                }
                rows = p;
            }
            memcpy(rows + nrows * (size_t)context, row, (size_t)context * sizeof *row);
        } else {
            print_row(stdout, row, pad ? (int)context : n);
        }
        nrows++;
    }
    if (!rc && !text && ferror(stdin)) {
        laic_error("stdin: read error");
        rc = 1;
    }
    if (!rc && npy) {
        size_t shape[2] = {nrows, (size_t)context};
        if (npy_write(npy, NPY_I32, 2, shape, rows)) rc = 1;
        else fprintf(stderr, "tokenize: %zu rows x %ld tokens -> %s\n", nrows, context, npy);
    }
    if (!rc && !npy && (fflush(stdout) || ferror(stdout))) {
        laic_error("stdout: write error");
        rc = 1;
    }
    free(line);
    free(rows);
    free(row);
    tokenizer_free(tok);
    return rc ? cli_fail(rc) : 0;
}
