/*
 * cmd_encode_text.c — `laic encode-text`: CLIP text features of texts or token ids.
 *
 *   laic encode-text --weights W (--texts FILE | --tokens T.npy) --out F.npy [--normalize]
 *                    [--batch N] [--device cpu|cuda|auto] [--threads N] [--vocab V]
 *                    [--precision fp32|tf32|bf16] [--gemm cublas|wmma]
 *
 * Promises: F.npy is float32 [N,E] in input order, equal to CLIP's encode_text (HF
 * get_text_features) or its L2-normalised rows with --normalize. FILE holds one UTF-8 text per
 * line, tokenized as clip.tokenize(truncate=True); T.npy is int32/int64 [N,L], 1 <= L <= the
 * context length, ids in [0,V), EOT = the row's largest id. Rows are bucketed by EOT position
 * (clip_encode_text_bucketed) and each batch runs only up to its longest EOT + 1 (exact under
 * the causal mask). --precision fp32|tf32|bf16 and --gemm cublas|wmma pick the CUDA matmul path
 * (the CPU accepts fp32 only: a one-line error otherwise). Errors are one line naming the file and the
 * problem, exit status 1 (2 for usage), and no output file is left behind.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_common.h"
#include "model/clip.h"
#include "cpu/cpu_ops.h"
#include "io/err.h"
#include "io/npy.h"
#include "ops.h"
#include "io/progress.h"
#include "model/tokenizer.h"

#define PROGRESS_MIN 256   // below this many texts a progress line is noise

// Reads FILE (one text per line; a final line without '\n' counts, CR before LF is dropped) and
// tokenizes every line into tok (N, L) int32, truncating to the context as clip.tokenize.
static int tokenize_file(const char *path, const char *vocab, int L, int32_t **tok, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return laic_error("%s: cannot open text file", path);
    Tokenizer *t = tokenizer_load(vocab ? vocab : tokenizer_default_vocab_path());
    if (!t) {
        fclose(f);
        return -1;
    }
    size_t cap = 256, cnt = 0;
    int32_t *rows = mallocCheck(cap * (size_t)L * sizeof(int32_t));
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    int rc = 0;
    while ((len = getline(&line, &lcap, f)) >= 0) {
        if (len > 0 && line[len - 1] == '\n') len--;
        if (len > 0 && line[len - 1] == '\r') len--;
        if (cnt == cap) {
            cap *= 2;
            int32_t *r2 = realloc(rows, cap * (size_t)L * sizeof(int32_t));
            if (!r2) {
                rc = laic_error("%s: out of memory reading texts", path);
                break;
            }
            rows = r2;
        }
        if (tokenizer_tokenize(t, line, (size_t)len, L, rows + cnt * L) < 0) {
            char why[512];   // laic_error would read the buffer it is writing: copy first
            snprintf(why, sizeof why, "%s", laic_last_error());
            rc = laic_error("%s: line %zu: %s", path, cnt + 1, why);
            break;
        }
        cnt++;
    }
    if (!rc && ferror(f)) rc = laic_error("%s: read error", path);
    if (!rc && cnt == 0) rc = laic_error("%s: no texts (empty file)", path);
    free(line);
    fclose(f);
    tokenizer_free(t);
    if (rc) {
        free(rows);
        return -1;
    }
    *tok = rows;
    *n = cnt;
    return 0;
}

// Reads T.npy as int32 (N, L) and checks shape and id range against the model.
static int read_tokens(const char *path, const ClipConfig *c, int32_t **tok, size_t *n, int *L) {
    Npy a;
    if (npy_read_i64(path, &a, 2, NULL)) return -1;
    size_t N = a.shape[0], Lf = a.shape[1];
    if (N == 0 || Lf == 0 || Lf > (size_t)c->context_length) {
        laic_error("%s: expected token ids [N,L] with N >= 1 and 1 <= L <= %d, got [%zu,%zu]",
                   path, c->context_length, N, Lf);
        npy_free(&a);
        return -1;
    }
    const int64_t *src = a.data;
    int32_t *dst = mallocCheck(a.count * sizeof(int32_t));
    for (size_t i = 0; i < a.count; i++) {
        if (src[i] < 0 || src[i] >= c->vocab_size) {
            laic_error("%s: token id %lld at row %zu, position %zu is outside the vocabulary "
                       "[0,%d)", path, (long long)src[i], i / Lf, i % Lf, c->vocab_size);
            free(dst);
            npy_free(&a);
            return -1;
        }
        dst[i] = (int32_t)src[i];
    }
    npy_free(&a);
    *tok = dst;
    *n = N;
    *L = (int)Lf;
    return 0;
}

static void text_progress(void *ctx, size_t done) { progress_update(ctx, done); }

int cmd_encode_text(int argc, char **argv) {
    CliOpt opts[] = {
        CMD_OPT_WEIGHTS,
        {"--texts", "FILE", NULL, "UTF-8 texts, one per line", NULL, 0},
        {"--tokens", "T.npy", NULL, "token ids int32/int64 [N,L], L <= context", NULL, 0},
        {"--out", "F.npy", NULL, "output features float32 [N,E]", NULL, 0},
        CMD_OPT_NORMALIZE,
        {"--batch", "N", "64", "texts per forward pass", NULL, 0},
        CMD_OPTS_DEVICE_THREADS,
        CMD_OPTS_PRECISION_GEMM,
        {"--vocab", "V", NULL, "BPE vocabulary for --texts (default: the installed one)", NULL,
         0},
    };
    int n = CLI_N(opts);
    if (cli_parse(argc, argv, "encode-text",
                  "CLIP text features (encode_text) of texts or token ids.", opts, n, NULL, 0,
                  NULL))
        return cli_exit_code();
    if (cli_require(opts, n, "--weights") || cli_require(opts, n, "--out")) return cli_fail(2);
    const char *texts = cli_get(opts, n, "--texts"), *tpath = cli_get(opts, n, "--tokens"),
               *out_path = cli_get(opts, n, "--out");
    if (!!texts + !!tpath != 1) {
        laic_error("encode-text: give exactly one of --texts, --tokens");
        return cli_fail(2);
    }
    long batch;
    const OpsBackend *ops;
    if (cli_model_setup(opts, n, "encode-text", &batch, &ops)) return cli_fail(2);

    int rc = 1;
    ClipWeights w;
    memset(&w, 0, sizeof w);
    ClipModel *m = NULL;
    int32_t *tok = NULL;
    float *feat = NULL;
    size_t N = 0;
    int L = 0;
    if (clip_weights_load(&w, cli_get(opts, n, "--weights"))) goto fail;
    int E = w.cfg.embed_dim;
    if (tpath) {
        if (read_tokens(tpath, &w.cfg, &tok, &N, &L)) goto fail;
    } else {
        L = w.cfg.context_length;
        if (clip_check_text_vocab(&w, cli_get(opts, n, "--weights")) ||
            tokenize_file(texts, cli_get(opts, n, "--vocab"), L, &tok, &N))
            goto fail;
    }
    int B = (size_t)batch < N ? (int)batch : (int)N;
    m = clip_model_create(&w, ops, B);
    if (!m) goto fail;
    feat = mallocCheck(N * (size_t)E * sizeof(float));
    Progress pr;
    int show = N >= PROGRESS_MIN;
    if (show) progress_start(&pr, "encode text", "txt", N);
    // batches sorted by EOT position so each one's causal truncation bites; rows come back in
    // input order
    if (clip_encode_text_bucketed(m, tok, N, L, feat, show ? text_progress : NULL, &pr, NULL))
        goto fail;
    if (show) progress_end(&pr);
    if (cli_flag(opts, n, "--normalize")) ops_cpu.l2norm_forward(feat, feat, (int)N, E);
    if (npy_write_f32_2d(out_path, feat, N, (size_t)E)) goto fail;
    rc = 0;
    goto done;
fail:
    cli_fail(1);
done:
    free(feat);
    free(tok);
    clip_model_free(m);
    clip_weights_free(&w);
    return rc;
}
