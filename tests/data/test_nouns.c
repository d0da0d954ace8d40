/*
 * test_nouns.c — WordNet noun bank (host/data/nouns.h) and `laic nouns`.
 *
 * Goldens from scripts/make_data_fixtures.py, which parses data.noun independently in Python:
 * a tiny synthetic data.noun with its expected TSV, and the counts, first/last rows and a CRC-32
 * of the lemma list of the real Debian file (checked when /usr/share/wordnet/data.noun exists).
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "io/err.h"
#include "data/nouns.h"
#include "../test.h"

#define FIX "tests/fixtures/data/"

// "key value" lookup in a small text file; returns 1 when found.
static int kv(const char *text, const char *key, char *out, size_t n) {
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, key, kl) && p[kl] == ' ') {
            size_t l = strcspn(p + kl + 1, "\n");
            snprintf(out, n, "%.*s", (int)l, p + kl + 1);
            return 1;
        }
    return 0;
}

TEST(nouns_tiny_file_matches_python) {
    Nouns n;
    REQUIRE(nouns_load(&n, FIX "nouns_tiny/data.noun") == 0, "%s", laic_last_error());
    char *counts = test_read_file(FIX "nouns_tiny.counts.txt", NULL);
    REQUIRE(counts, "missing counts fixture");
    char v[64];
    CHECK(kv(counts, "rows", v, sizeof v) && n.n == (size_t)atol(v), "rows %zu vs %s", n.n, v);
    CHECK(kv(counts, "synsets", v, sizeof v) && n.n_synsets == (size_t)atol(v), "synsets %zu vs %s",
          n.n_synsets, v);
    CHECK(kv(counts, "lemmas", v, sizeof v) && n.n_lemmas == (size_t)atol(v), "lemmas %zu vs %s",
          n.n_lemmas, v);
    free(counts);
    nouns_free(&n);
    // The CLI's TSV equals the Python one byte for byte (hex w_cnt, "(a)" stripped, offsets).
    char err[1024], args[512];
    const char *out = test_path("tiny.tsv");
    snprintf(args, sizeof args, "nouns --wordnet " FIX "nouns_tiny/data.noun --out '%s'", out);
    int rc = run_laic(args, NULL, err, sizeof err);
    REQUIRE(rc == 0, "exit %d: %s", rc, err);
    size_t a, b;
    char *got = test_read_file(out, &a), *want = test_read_file(FIX "nouns_tiny.expected.tsv", &b);
    CHECK(got && want && a == b && !memcmp(got, want, a), "TSV differs:\n%s\nexpected:\n%s",
          got ? got : "(none)", want ? want : "(none)");
    free(got);
    free(want);
}

TEST(nouns_wordnet30_counts_and_hash) {
    const char *path = NOUNS_DEFAULT_PATH;
    if (!file_exists(path)) SKIP("%s not installed (apt-get install wordnet-base)", path);
    char *ref = test_read_file(FIX "wordnet.txt", NULL);
    REQUIRE(ref, "missing " FIX "wordnet.txt");
    Nouns n;
    if (nouns_load(&n, path)) {
        free(ref);
        REQUIRE(0, "%s", laic_last_error());
    }
    // SPEC §4 numbers, and the Python parse of the same file.
    CHECK(n.n == 146347 && n.n_synsets == 82115 && n.n_lemmas == 117798,
          "rows %zu synsets %zu lemmas %zu (SPEC: 146,347 / 82,115 / 117,798)", n.n, n.n_synsets,
          n.n_lemmas);
    char v[128];
    uLong crc = crc32(0, NULL, 0);
    for (size_t i = 0; i < n.n; i++) {
        if (i) crc = crc32(crc, (const Bytef *)"\n", 1);
        crc = crc32(crc, (const Bytef *)n.lemma[i], (uInt)strlen(n.lemma[i]));
    }
    CHECK(kv(ref, "lemma_crc32", v, sizeof v) && crc == strtoul(v, NULL, 10),
          "crc32 of the lemma list %lu, Python %s", (unsigned long)crc, v);
    char row[128];
    snprintf(row, sizeof row, "%s %08u", n.lemma[0], (unsigned)n.offset[0]);
    CHECK(kv(ref, "first", v, sizeof v) && !strcmp(row, v), "first row '%s', Python '%s'", row, v);
    snprintf(row, sizeof row, "%s %08u", n.lemma[n.n - 1], (unsigned)n.offset[n.n - 1]);
    CHECK(kv(ref, "last", v, sizeof v) && !strcmp(row, v), "last row '%s', Python '%s'", row, v);
    CHECK(!strcmp(n.text[1], "physical entity") && !strcmp(n.lemma[1], "physical_entity"),
          "underscores become spaces in the text only");
    nouns_free(&n);
    free(ref);
}

TEST(nouns_prompt_templates) {
    // SPEC §4, in order.
    const char *want[NOUNS_N_TEMPLATES] = {
        "itap of a ice cream.",           "a bad photo of the ice cream.", "a origami ice cream.",
        "a photo of the large ice cream.", "a ice cream in a video game.", "art of the ice cream.",
        "a photo of the small ice cream.",
    };
    char buf[128];
    for (int t = 0; t < NOUNS_N_TEMPLATES; t++) {
        int r = nouns_prompt(buf, sizeof buf, t, "ice cream");
        CHECK(r == (int)strlen(want[t]) && !strcmp(buf, want[t]), "template %d: '%s'", t, buf);
    }
    CHECK(nouns_prompt(buf, sizeof buf, 7, "x") < 0 && strstr(laic_last_error(), "template 7"),
          "template 7 is out of range");
    CHECK(nouns_prompt(buf, 10, 0, "ice cream") < 0, "too small a buffer is an error");
}

TEST(nouns_bad_files) {
    char err[1024], args[512];
    const char *out = test_path("bad.tsv"), *missing = test_path("no_data.noun");
    snprintf(args, sizeof args, "nouns --wordnet '%s' --out '%s'", missing, out);
    int rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, missing) && strstr(err, "cannot open"),
          "missing file: exit %d, %s", rc, err);
    CHECK(!file_exists(out), "no output left behind");
    // A corrupted offset (the first digit of the first synset line) and a bad word count.
    size_t n;
    char *text = test_read_file(FIX "nouns_tiny/data.noun", &n);
    REQUIRE(text, "fixture");
    const char *bad = test_path("bad.noun");
    char *line = strstr(text, "\n0") + 1;
    line[6] = '9';
    FILE *f = fopen(bad, "wb");
    fwrite(text, 1, n, f);
    fclose(f);
    snprintf(args, sizeof args, "nouns --wordnet '%s' --out '%s'", bad, out);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, ":4: synset offset"), "bad offset: %s", err);
    CHECK(!file_exists(out), "no output left behind");
    line[6] = '6';
    memcpy(strstr(text, " n 01 ") + 3, "zz", 2);
    f = fopen(bad, "wb");
    fwrite(text, 1, n, f);
    fclose(f);
    Nouns nn;
    CHECK(nouns_load(&nn, bad) != 0 && strstr(laic_last_error(), ":4: expected 'lex_filenum"),
          "bad w_cnt: %s", laic_last_error());
    CHECK(nn.n == 0 && nn.lemma == NULL, "zeroed on error");
    free(text);
}
