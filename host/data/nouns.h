/*
 * nouns.h — the WordNet 3.0 noun bank and its prompt templates (SPEC §4).
 *
 * nouns_load() parses WordNet's `data.noun` itself (Debian `wordnet-base` ships it at
 * /usr/share/wordnet/data.noun) and returns one row per (lemma, synset) pair in file order.
 * On the real file that is exactly 146,347 rows, 82,115 synsets and 117,798 distinct lemmas
 * (distinct after ASCII lower-casing, as NLTK's lemma names count them; 119,034 when
 * case-sensitive). Lemmas are kept as written in the file (underscores and case kept,
 * adjective markers such as "(a)" stripped); `text` is the prompt form, underscores → spaces.
 *
 * Memory: one string arena plus one array per kind of field; nouns_free() releases all.
 *
 * Dimension letters: N = rows (lemma, synset pairs).
 */
#ifndef LAIC_NOUNS_H
#define LAIC_NOUNS_H

#include <stddef.h>
#include <stdint.h>

#define NOUNS_DEFAULT_PATH "/usr/share/wordnet/data.noun"
#define NOUNS_N_TEMPLATES 7

typedef struct {
    size_t n;            // N rows, one per (lemma, synset) in data.noun order
    char **lemma;        // (N) lemma as in the file, e.g. "physical_entity" (points into arena)
    char **text;         // (N) prompt text, e.g. "physical entity" (points into arena)
    uint32_t *offset;    // (N) synset byte offset in data.noun (its 8-digit id)
    size_t n_synsets;    // synset lines read
    size_t n_lemmas;     // distinct lemmas, ASCII case-insensitive
    char *arena;         // all strings, NUL-terminated
} Nouns;

/* The 7 prompt templates of SPEC §4 (TAC), each with one "{}" for the noun text. */
extern const char *const nouns_templates[NOUNS_N_TEMPLATES];

/* Parses data.noun. On error returns -1 with a message naming the file (and line for a bad
 * line); *n is left zeroed. */
int nouns_load(Nouns *n, const char *data_noun_path);
void nouns_free(Nouns *n);

/* Writes template `template` (0..6) filled with `text` into buf (size bufn, NUL-terminated).
 * Returns the length, or -1 (error recorded) for a bad template index or a too small buffer. */
int nouns_prompt(char *buf, size_t bufn, int template, const char *text);

/* Writes the TSV: header line "index\tlemma\tsynset_offset\ttext", then one row per noun,
 * offsets as 8 zero-padded digits like data.noun. Atomic (host/io/atomic.h). */
int nouns_write_tsv(const Nouns *n, const char *path);

#endif
