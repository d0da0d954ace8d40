/*
 * tokenizer.h — OpenAI CLIP's byte-level BPE tokenizer (simple_tokenizer + clip.tokenize).
 *
 * Promise: for well-formed UTF-8 input, the ids equal those of OpenAI CLIP's
 * `clip.tokenize(texts, truncate=True)` (text cleaning = ftfy.fix_text with its defaults,
 * html.unescape twice, whitespace collapse, str.lower), except for the ftfy steps listed at
 * the top of tokenizer.c (mojibake repair). Invalid UTF-8 is an error, never guessed at.
 *
 * Ids: 0..255 byte symbols, 256..511 the same ending a word (</w>), 512.. merges,
 * 49406 <|startoftext|> (SOT), 49407 <|endoftext|> (EOT). Padding is 0.
 *
 * A Tokenizer caches the BPE of every word it has seen and keeps scratch buffers, so it is not
 * thread-safe: use one per thread.
 */
#ifndef LAIC_TOKENIZER_H
#define LAIC_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#define TOKENIZER_SOT 49406
#define TOKENIZER_EOT 49407
#define TOKENIZER_VOCAB_SIZE 49408
#define TOKENIZER_CONTEXT 77

typedef struct Tokenizer Tokenizer;

/* Loads the gzip'd merges file (bpe_simple_vocab_16e6.txt.gz). NULL + laic_error naming the
 * file when it is missing, unreadable or not a CLIP merges list. */
Tokenizer *tokenizer_load(const char *vocab_gz_path);
void tokenizer_free(Tokenizer *t);

/* Finds the vocabulary: $LAIC_VOCAB (used as given when set), ./assets/bpe_simple_vocab_16e6.txt.gz,
 * <dir of the laic executable>/../assets/..., ../shared/assets/... . Returns a static buffer, or
 * NULL + error with a HINT ('make setup') if none exists. */
const char *tokenizer_default_vocab_path(void);

/* Full clip.tokenize(truncate=True) row: SOT ids EOT, zero-padded to `context`; when too long,
 * truncated to `context` tokens and the last one set to EOT.
 * row: (context,) int32. Returns the number of non-pad tokens, or -1 with an error
 * (invalid UTF-8: "invalid UTF-8 at byte N ..."; context < 1). */
int tokenizer_tokenize(Tokenizer *t, const char *text, size_t len, int context, int32_t *row);

/* BPE ids of the cleaned text, without SOT/EOT. *ids is malloc'd (caller frees; may be NULL
 * when *n == 0). Returns 0, or -1 with an error (invalid UTF-8). */
int tokenizer_encode(Tokenizer *t, const char *text, size_t len, int32_t **ids, size_t *n);

/* The cleaned text that the BPE sees (ftfy + html.unescape + whitespace + lower), as UTF-8.
 * Malloc'd, NUL-terminated; *out_len excludes the NUL. NULL + error on invalid UTF-8.
 * For tests and debugging. */
char *tokenizer_clean(Tokenizer *t, const char *text, size_t len, size_t *out_len);

/* The vocabulary string of an id (byte symbols shown in GPT-2's byte-to-unicode alphabet,
 * "</w>" kept), or NULL for an id out of range. Owned by the tokenizer. */
const char *tokenizer_id_to_str(const Tokenizer *t, int32_t id);

#endif
