/*
 * fuzz_tokenizer.c — CLIP's BPE tokenizer (host/model/tokenizer.c) on arbitrary bytes: text
 * cleaning (ftfy subset, html.unescape twice, whitespace, lower), UTF-8 validation, the
 * pre-tokenizer regex, BPE with its word cache, truncation to the context. Every id must be
 * in the vocabulary and a tokenized row must start with SOT and hold EOT. The vocabulary is
 * loaded once (tokenizer_default_vocab_path: ./assets/… from the repository root, or
 * $LAIC_VOCAB).
 */
#include "io/err.h"
#include "model/tokenizer.h"
#include "fuzz.h"

static Tokenizer *g_tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    const char *v = tokenizer_default_vocab_path();
    g_tok = v ? tokenizer_load(v) : NULL;
    if (!g_tok) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", laic_last_error());
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int32_t row[TOKENIZER_CONTEXT];
    int n = tokenizer_tokenize(g_tok, (const char *)data, size, TOKENIZER_CONTEXT, row);
    if (n >= 0) {
        int eot = 0;
        if (n < 2 || n > TOKENIZER_CONTEXT || row[0] != TOKENIZER_SOT) abort();
        for (int i = 0; i < TOKENIZER_CONTEXT; i++) {
            if (row[i] < 0 || row[i] >= TOKENIZER_VOCAB_SIZE || (i >= n && row[i] != 0)) abort();
            eot |= row[i] == TOKENIZER_EOT;
        }
        if (!eot) abort();
    }
    int32_t *ids = NULL;
    size_t m = 0;
    if (tokenizer_encode(g_tok, (const char *)data, size, &ids, &m) == 0) {
        for (size_t i = 0; i < m; i++)
            if (ids[i] < 0 || ids[i] >= TOKENIZER_VOCAB_SIZE || !tokenizer_id_to_str(g_tok, ids[i]))
                abort();
        free(ids);
    }
    size_t cl = 0;
    char *c = tokenizer_clean(g_tok, (const char *)data, size, &cl);
    if ((c != NULL) != (n >= 0)) abort();   // the same UTF-8 verdict
    if (c && strlen(c) != cl) abort();
    free(c);
    return 0;
}
