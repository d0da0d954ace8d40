/*
 * nouns.c — WordNet data.noun parser, noun prompts and the nouns TSV (see nouns.h).
 *
 * data.noun format (WordNet wndb(5)): license lines start with two spaces; every other line is
 *   synset_offset lex_filenum ss_type w_cnt word lex_id [word lex_id...] p_cnt ... | gloss
 * with w_cnt two hex digits and lex_id one hex digit. synset_offset is the line's byte offset
 * in the file, which we check: it catches truncated, re-encoded or hand-edited files.
 */
#include "data/nouns.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/atomic.h"
#include "io/err.h"

const char *const nouns_templates[NOUNS_N_TEMPLATES] = {
    "itap of a {}.",           "a bad photo of the {}.", "a origami {}.",
    "a photo of the large {}.", "a {} in a video game.", "art of the {}.",
    "a photo of the small {}.",
};

// --- helpers -----------------------------------------------------------------------------

static int read_all(const char *path, char **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return laic_error("%s: cannot open (no such file?) ---> HINT: install Debian "
                              "'wordnet-base' or pass --wordnet PATH/data.noun", path);
    size_t cap = 1 << 20, n = 0;
    char *b = mallocCheck(cap);
    for (;;) {
        if (n + (1 << 16) > cap) {
            cap *= 2;
            char *nb = realloc(b, cap);
            if (!nb) {
                free(b);
                fclose(f);
                return laic_error("%s: out of memory reading the file", path);
            }
            b = nb;
        }
        size_t r = fread(b + n, 1, cap - n - 1, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        return laic_error("%s: read error", path);
    }
    b[n] = 0;
    *buf = b;
    *len = n;
    return 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Next space-delimited field of [*p, end); returns its length (0 at end of line).
static size_t next_field(const char **p, const char *end, const char **field) {
    const char *s = *p;
    while (s < end && *s == ' ') s++;
    const char *e = s;
    while (e < end && *e != ' ') e++;
    *field = s;
    *p = e;
    return (size_t)(e - s);
}

// Case-insensitive FNV-1a, for counting distinct lemmas as NLTK does (lower-cased).
static uint64_t hash_lower(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint64_t)(unsigned char)tolower((unsigned char)*s)) * 1099511628211ull;
    return h;
}

static size_t count_distinct_lower(char *const *words, size_t n) {
    size_t cap = 16;
    while (cap < 2 * n + 16) cap *= 2;
    size_t *slot = callocCheck(cap, sizeof *slot);   // index+1 of the word, 0 = empty
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++) {
        size_t h = (size_t)hash_lower(words[i]) & (cap - 1);
        for (;; h = (h + 1) & (cap - 1)) {
            if (!slot[h]) {
                slot[h] = i + 1;
                distinct++;
                break;
            }
            if (!strcasecmp(words[slot[h] - 1], words[i])) break;
        }
    }
    free(slot);
    return distinct;
}

// --- parser ------------------------------------------------------------------------------

int nouns_load(Nouns *out, const char *path) {
    memset(out, 0, sizeof *out);
    char *buf = NULL;
    size_t len = 0;
    if (read_all(path, &buf, &len)) return -1;

    size_t cap = 1024, n = 0, acap = 1 << 20, alen = 0, n_syn = 0;
    size_t *lemma_at = mallocCheck(cap * sizeof(size_t));   // (N) arena offsets, fixed up later
    uint32_t *offset = mallocCheck(cap * sizeof(uint32_t)); // (N)
    char *arena = mallocCheck(acap);
    size_t lineno = 0;
    const char *p = buf, *end = buf + len;
    int err = 0;
    while (p < end && !err) {
        const char *line = p, *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        p = eol + 1;
        lineno++;
        if (eol == line) continue;                                      // blank (e.g. final)
        if (eol - line >= 2 && line[0] == ' ' && line[1] == ' ') continue;   // license header
        const char *q = line, *f;
        size_t fl = next_field(&q, eol, &f);
        char *num_end;
        unsigned long off = fl == 8 ? strtoul(f, &num_end, 10) : 0;
        if (fl != 8 || num_end != f + 8) {
            err = laic_error("%s:%zu: expected an 8-digit synset offset at the start of the line",
                             path, lineno);
            break;
        }
        if (off != (unsigned long)(line - buf)) {
            err = laic_error("%s:%zu: synset offset %08lu is not the line's byte offset %zu "
                             "---> HINT: the file is truncated or modified; use WordNet 3.0's "
                             "data.noun as shipped", path, lineno, off, (size_t)(line - buf));
            break;
        }
        const char *lexf, *sst, *wc;
        size_t l1 = next_field(&q, eol, &lexf), l2 = next_field(&q, eol, &sst),
               l3 = next_field(&q, eol, &wc);
        if (l1 != 2 || l2 != 1 || !strchr("nvasr", sst[0]) || l3 != 2 || hexval(wc[0]) < 0 ||
            hexval(wc[1]) < 0) {
            err = laic_error("%s:%zu: expected 'lex_filenum ss_type w_cnt' (w_cnt 2 hex digits) "
                             "after the offset", path, lineno);
            break;
        }
        int w_cnt = hexval(wc[0]) * 16 + hexval(wc[1]);
        if (w_cnt == 0) {
            err = laic_error("%s:%zu: synset with no words (w_cnt 00)", path, lineno);
            break;
        }
        for (int k = 0; k < w_cnt; k++) {
            const char *w, *lid;
            size_t wl = next_field(&q, eol, &w), ll = next_field(&q, eol, &lid);
            if (!wl || ll != 1 || hexval(lid[0]) < 0) {
                err = laic_error("%s:%zu: word %d of %d: expected 'word lex_id' (lex_id 1 hex digit)",
                                 path, lineno, k + 1, w_cnt);
                break;
            }
            // Adjective markers only occur in data.adj, but strip them as wndb(5) defines them.
            static const char *const markers[] = {"(ip)", "(a)", "(p)"};
            for (int m = 0; m < 3; m++) {
                size_t ml = strlen(markers[m]);
                if (wl > ml && !memcmp(w + wl - ml, markers[m], ml)) {
                    wl -= ml;
                    break;
                }
            }
            if (n == cap) {
                cap *= 2;
                lemma_at = realloc(lemma_at, cap * sizeof(size_t));
                offset = realloc(offset, cap * sizeof(uint32_t));
                LAIC_ASSERT(lemma_at && offset);
            }
            while (alen + 2 * (wl + 1) > acap) {
                acap *= 2;
                arena = realloc(arena, acap);
                LAIC_ASSERT(arena);
            }
            lemma_at[n] = alen;
            offset[n] = (uint32_t)off;
            memcpy(arena + alen, w, wl);                 // lemma, then its prompt text
            arena[alen + wl] = 0;
            for (size_t c = 0; c < wl; c++) arena[alen + wl + 1 + c] = w[c] == '_' ? ' ' : w[c];
            arena[alen + 2 * wl + 1] = 0;
            alen += 2 * (wl + 1);
            n++;
        }
        n_syn++;
    }
    free(buf);
    if (!err && n == 0) err = laic_error("%s: no synsets found (empty or not a WordNet data file)", path);
    if (err) {
        free(lemma_at);
        free(offset);
        free(arena);
        return -1;
    }
    out->n = n;
    out->n_synsets = n_syn;
    out->arena = arena;
    out->offset = offset;
    out->lemma = mallocCheck(n * sizeof(char *));
    out->text = mallocCheck(n * sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        out->lemma[i] = arena + lemma_at[i];
        out->text[i] = out->lemma[i] + strlen(out->lemma[i]) + 1;
    }
    free(lemma_at);
    out->n_lemmas = count_distinct_lower(out->lemma, n);
    return 0;
}

void nouns_free(Nouns *n) {
    free(n->lemma);
    free(n->text);
    free(n->offset);
    free(n->arena);
    memset(n, 0, sizeof *n);
}

// --- prompts and TSV ---------------------------------------------------------------------

int nouns_prompt(char *buf, size_t bufn, int template, const char *text) {
    if (template < 0 || template >= NOUNS_N_TEMPLATES)
        return laic_error("nouns: template %d out of range 0..%d", template, NOUNS_N_TEMPLATES - 1);
    const char *t = nouns_templates[template], *hole = strstr(t, "{}");
    LAIC_ASSERT(hole);
    int r = snprintf(buf, bufn, "%.*s%s%s", (int)(hole - t), t, text, hole + 2);
    if (r < 0 || (size_t)r >= bufn)
        return laic_error("nouns: prompt for '%s' does not fit in %zu bytes", text, bufn);
    return r;
}

int nouns_write_tsv(const Nouns *n, const char *path) {
    AtomicFile af;
    if (atomic_open(&af, path)) return -1;
    fprintf(af.fp, "index\tlemma\tsynset_offset\ttext\n");
    for (size_t i = 0; i < n->n; i++)
        fprintf(af.fp, "%zu\t%s\t%08u\t%s\n", i, n->lemma[i], (unsigned)n->offset[i], n->text[i]);
    return atomic_commit(&af);
}
