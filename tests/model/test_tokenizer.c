/*
 * test_tokenizer.c — the C CLIP tokenizer against OpenAI clip.tokenize(truncate=True) goldens.
 *
 * Goldens come from scripts/make_tokenizer_fixtures.py (tests/fixtures/tokenizer/): per input
 * line the cleaned text, the BPE ids, and padded rows for context 77 and 8. Ids are integers, so
 * the comparison is exact. Needs the vocabulary at ../shared/assets (or $LAIC_SHARED); skipped
 * without it. CLI tests cover --text/--pad/--context/--npy and the one-line errors (invalid
 * UTF-8 with its line number, missing or corrupt vocabulary, bad options), each leaving no
 * output file behind.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "io/err.h"
#include "io/npy.h"
#include "../test.h"
#include "model/tokenizer.h"

#define FIX "tests/fixtures/tokenizer/"

static const char *vocab_path(void) { return test_shared("assets/bpe_simple_vocab_16e6.txt.gz"); }

// --- helpers ---------------------------------------------------------------------------------
typedef struct {
    char *buf;
    char **line;   // (n,) NUL-terminated, '\n' removed
    size_t *len;   // (n,)
    size_t n;
} Lines;

static int read_lines(const char *path, Lines *L) {
    memset(L, 0, sizeof *L);
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    L->buf = malloc((size_t)sz + 1);
    size_t got = fread(L->buf, 1, (size_t)sz, f);
    fclose(f);
    L->buf[got] = 0;
    size_t cap = 0;
    for (size_t i = 0; i < got; i++) cap += L->buf[i] == '\n';
    L->line = malloc((cap + 1) * sizeof *L->line);
    L->len = malloc((cap + 1) * sizeof *L->len);
    char *s = L->buf;
    for (size_t i = 0; i < got; i++)
        if (L->buf[i] == '\n') {
            L->buf[i] = 0;
            L->line[L->n] = s;
            L->len[L->n++] = (size_t)(L->buf + i - s);
            s = L->buf + i + 1;
        }
    return 0;
}
static void free_lines(Lines *L) {
    free(L->buf);
    free(L->line);
    free(L->len);
}

/* Parses "1 2 3" into ids; returns the count (at most cap). */
static size_t parse_ids(const char *s, int32_t *ids, size_t cap) {
    size_t n = 0;
    char *end;
    while (*s && n < cap) {
        long v = strtol(s, &end, 10);
        if (end == s) break;
        ids[n++] = (int32_t)v;
        s = end;
    }
    return n;
}

static size_t slurp(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = 0;
    return n;
}

static void write_str(const char *path, const char *s) { test_write_file(path, s, strlen(s)); }

// --- library tests -----------------------------------------------------------------------------
TEST(tok_cat_example) {
    const char *v = vocab_path();
    if (!v) SKIP("vocabulary not found under ../shared/assets");
    Tokenizer *t = tokenizer_load(v);
    REQUIRE(t, "load: %s", laic_last_error());
    int32_t row[77];
    const char *s = "a photo of a cat.";
    int n = tokenizer_tokenize(t, s, strlen(s), 77, row);
    const int32_t want[] = {49406, 320, 1125, 539, 320, 2368, 269, 49407};
    CHECK(n == 8, "n=%d", n);
    int same = n == 8;
    for (int i = 0; i < 77; i++) same &= row[i] == (i < 8 ? want[i] : 0);
    CHECK(same, "row: %d %d %d %d %d %d %d %d | %d", row[0], row[1], row[2], row[3], row[4], row[5], row[6],
          row[7], row[8]);
    printf("    %s 'a photo of a cat.' -> %d %d %d %d %d %d %d %d\n", same ? "OK" : "NOT OK", row[0], row[1],
           row[2], row[3], row[4], row[5], row[6], row[7]);
    CHECK(!strcmp(tokenizer_id_to_str(t, 2368), "cat</w>"), "id 2368 = %s", tokenizer_id_to_str(t, 2368));
    CHECK(!strcmp(tokenizer_id_to_str(t, 49407), "<|endoftext|>"), "EOT string");
    CHECK(tokenizer_id_to_str(t, 49408) == NULL, "out of range id");
    tokenizer_free(t);
}

/* Every fixture line: cleaned text, BPE ids, rows at context 77 and 8; twice (cold and cached). */
TEST(tok_fixture_parity) {
    const char *v = vocab_path();
    if (!v) SKIP("vocabulary not found under ../shared/assets");
    Lines in, cleaned, full;
    REQUIRE(!read_lines(FIX "inputs.txt", &in) && !read_lines(FIX "cleaned.txt", &cleaned) &&
                !read_lines(FIX "full_ids.txt", &full),
            "fixtures missing");
    Npy r77, r8;
    long s77[2] = {(long)in.n, 77}, s8[2] = {(long)in.n, 8};
    REQUIRE(!npy_read_i64(FIX "rows77.npy", &r77, 2, s77), "%s", laic_last_error());
    REQUIRE(!npy_read_i64(FIX "rows8.npy", &r8, 2, s8), "%s", laic_last_error());
    REQUIRE(cleaned.n == in.n && full.n == in.n && in.n > 100, "fixture line counts %zu %zu %zu", in.n, cleaned.n,
            full.n);
    Tokenizer *t = tokenizer_load(v);
    REQUIRE(t, "load: %s", laic_last_error());
    size_t bad_clean = 0, bad_ids = 0, bad77 = 0, bad8 = 0;
    int32_t want[4096], row[77];
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < in.n; i++) {
            size_t cl;
            char *c = tokenizer_clean(t, in.line[i], in.len[i], &cl);
            if (!c || cl != cleaned.len[i] || memcmp(c, cleaned.line[i], cl)) {
                if (!bad_clean++) printf("    NOT OK clean line %zu: got '%s' want '%s'\n", i + 1, c ? c : "(null)",
                                         cleaned.line[i]);
            }
            free(c);
            int32_t *ids;
            size_t n;
            size_t nw = parse_ids(full.line[i], want, 4096);
            if (tokenizer_encode(t, in.line[i], in.len[i], &ids, &n) || n != nw ||
                (n && memcmp(ids, want, n * sizeof *ids))) {
                if (!bad_ids++) printf("    NOT OK ids line %zu: got %zu ids, want %zu\n", i + 1, n, nw);
            }
            free(ids);
            int k = tokenizer_tokenize(t, in.line[i], in.len[i], 77, row);
            int ok = k == (int)(nw + 2 < 77 ? nw + 2 : 77);
            for (int j = 0; j < 77; j++) ok &= row[j] == ((const int64_t *)r77.data)[i * 77 + (size_t)j];
            if (!ok && !bad77++) printf("    NOT OK row77 line %zu\n", i + 1);
            k = tokenizer_tokenize(t, in.line[i], in.len[i], 8, row);
            ok = k == (int)(nw + 2 < 8 ? nw + 2 : 8);
            for (int j = 0; j < 8; j++) ok &= row[j] == ((const int64_t *)r8.data)[i * 8 + (size_t)j];
            if (!ok && !bad8++) printf("    NOT OK row8 line %zu\n", i + 1);
        }
    printf("    %s %zu lines x 2 passes: clean %zu bad, ids %zu bad, rows77 %zu bad, rows8 %zu bad\n",
           bad_clean + bad_ids + bad77 + bad8 ? "NOT OK" : "OK", in.n, bad_clean, bad_ids, bad77, bad8);
    CHECK(!bad_clean && !bad_ids && !bad77 && !bad8, "mismatches against the clip.tokenize goldens");
    tokenizer_free(t);
    npy_free(&r77);
    npy_free(&r8);
    free_lines(&in);
    free_lines(&cleaned);
    free_lines(&full);
}

/* Long words: BPE must stay fast (no quadratic blow-up) and the ids must spell the word back. */
TEST(tok_long_word_roundtrip) {
    const char *v = vocab_path();
    if (!v) SKIP("vocabulary not found under ../shared/assets");
    Tokenizer *t = tokenizer_load(v);
    REQUIRE(t, "load: %s", laic_last_error());
    // inverse of GPT-2 bytes_to_unicode: printable Latin-1 map to themselves, the rest to 256+k
    int inv[324];
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        if (printable) inv[b] = b;
    }
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        if (!printable) inv[256 + extra++] = b;
    }
    size_t n = 200000;
    char *word = malloc(n + 1);
    uint64_t s = 42;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        word[i] = "etaoinshrdlu"[(s >> 33) % 12];
    }
    word[n] = 0;
    clock_t c0 = clock();
    int32_t *ids;
    size_t nids;
    REQUIRE(!tokenizer_encode(t, word, n, &ids, &nids), "%s", laic_last_error());
    double sec = (double)(clock() - c0) / CLOCKS_PER_SEC;
    // decode: vocabulary strings are UTF-8 of code points < 324, "</w>" only at the very end
    char *back = malloc(n + 8);
    size_t m = 0;
    int ok = 1;
    for (size_t i = 0; i < nids && ok; i++) {
        const unsigned char *p = (const unsigned char *)tokenizer_id_to_str(t, ids[i]);
        ok = p != NULL;
        while (ok && *p) {
            if (!strcmp((const char *)p, "</w>")) {
                ok = i == nids - 1;
                break;
            }
            unsigned cp = p[0] < 0x80 ? p[0] : ((p[0] & 0x1Fu) << 6) | (p[1] & 0x3Fu);
            p += p[0] < 0x80 ? 1 : 2;
            ok = cp < 324 && m < n;
            if (ok) back[m++] = (char)inv[cp];
        }
    }
    CHECK(ok && m == n && !memcmp(back, word, n), "ids do not spell the word back (m=%zu)", m);
    printf("    %s %zu-letter word -> %zu ids in %.2f s\n", ok && m == n ? "OK" : "NOT OK", n, nids, sec);
    // the time is printed, not asserted (speed belongs to bench/): a BPE merge loop quadratic in
    // the word's length would take minutes here, the linearithmic one takes well under a second
    free(ids);
    free(back);
    free(word);
    tokenizer_free(t);
}

TEST(tok_invalid_utf8_api) {
    const char *v = vocab_path();
    if (!v) SKIP("vocabulary not found under ../shared/assets");
    Tokenizer *t = tokenizer_load(v);
    REQUIRE(t, "load: %s", laic_last_error());
    // stray continuation, overlong '/', UTF-16 surrogate, > U+10FFFF, truncated 3-byte sequence
    const char *bad[] = {"ab\x80", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "x\xE2\x82"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        int32_t row[77];
        laic_clear_error();
        int r = tokenizer_tokenize(t, bad[k], strlen(bad[k]), 77, row);
        CHECK(r == -1 && strstr(laic_last_error(), "invalid UTF-8"), "case %zu: r=%d '%s'", k, r, laic_last_error());
    }
    int32_t row[77];
    CHECK(tokenizer_tokenize(t, "\xF4\x8F\xBF\xBF ok", 7, 77, row) > 0, "U+10FFFF is valid UTF-8");
    CHECK(tokenizer_tokenize(t, "x", 1, 0, row) == -1, "context 0 must fail");
    tokenizer_free(t);
}

TEST(tok_default_vocab_path) {
    const char *old = getenv("LAIC_VOCAB");
    char *saved = old ? strdup(old) : NULL;
    setenv("LAIC_VOCAB", "/some/where/vocab.txt.gz", 1);
    const char *p = tokenizer_default_vocab_path();
    CHECK(p && !strcmp(p, "/some/where/vocab.txt.gz"), "LAIC_VOCAB not honoured: %s", p ? p : "(null)");
    if (saved) setenv("LAIC_VOCAB", saved, 1);
    else unsetenv("LAIC_VOCAB");
    free(saved);
    Tokenizer *t = tokenizer_load("/nonexistent/bpe.txt.gz");
    CHECK(!t && strstr(laic_last_error(), "/nonexistent/bpe.txt.gz"), "missing vocab: %s", laic_last_error());
}

// --- CLI tests ---------------------------------------------------------------------------------
TEST(tok_cli_fixture_lines) {
    const char *v = vocab_path();
    if (!v) SKIP("vocabulary not found under ../shared/assets");
    char args[1024], err[4096];
    const char *out = test_path("tok_cli.txt");
    snprintf(args, sizeof args, "tokenize --vocab '%s' < " FIX "inputs.txt", v);
    int rc = run_laic(args, out, err, sizeof err);
    REQUIRE(rc == 0, "exit %d: %s", rc, err);
    Lines got, want;
    REQUIRE(!read_lines(out, &got) && !read_lines(FIX "expected.txt", &want), "read outputs");
    size_t bad = 0;
    for (size_t i = 0; i < want.n && i < got.n; i++)
        if (strcmp(got.line[i], want.line[i]) && !bad++)
            printf("    NOT OK line %zu: got '%s' want '%s'\n", i + 1, got.line[i], want.line[i]);
    CHECK(got.n == want.n && !bad, "%zu lines (want %zu), %zu differ", got.n, want.n, bad);
    printf("    %s laic tokenize: %zu lines, %zu differ from clip.tokenize\n", bad ? "NOT OK" : "OK", got.n, bad);
    free_lines(&got);
    free_lines(&want);
}

TEST(tok_cli_text_pad_context) {
    const char *v = vocab_path();
    if (!v) SKIP("vocabulary not found under ../shared/assets");
    char args[1024], err[4096], buf[4096];
    const char *out = test_path("tok_text.txt");
    snprintf(args, sizeof args, "tokenize --vocab '%s' --text 'a photo of a cat.'", v);
    REQUIRE(run_laic(args, out, err, sizeof err) == 0, "%s", err);
    slurp(out, buf, sizeof buf);
    CHECK(!strcmp(buf, "49406 320 1125 539 320 2368 269 49407\n"), "got '%s'", buf);

    // --pad: the whole 77-id row
    snprintf(args, sizeof args, "tokenize --vocab '%s' --pad --text 'a photo of a cat.'", v);
    REQUIRE(run_laic(args, out, err, sizeof err) == 0, "%s", err);
    slurp(out, buf, sizeof buf);
    int32_t ids[100];
    size_t n = parse_ids(buf, ids, 100);
    int ok = n == 77 && ids[7] == 49407 && ids[76] == 0 && ids[8] == 0;
    CHECK(ok, "--pad gave %zu ids", n);

    // --context 8 --pad on the first fixture lines equals clip.tokenize(context_length=8)
    Npy r8;
    long s8[2] = {-1, 8};
    REQUIRE(!npy_read_i64(FIX "rows8.npy", &r8, 2, s8), "%s", laic_last_error());
    snprintf(args, sizeof args, "tokenize --vocab '%s' --context 8 --pad < " FIX "inputs.txt", v);
    REQUIRE(run_laic(args, out, err, sizeof err) == 0, "%s", err);
    Lines got;
    REQUIRE(!read_lines(out, &got), "read");
    size_t bad = got.n != r8.shape[0];
    for (size_t i = 0; i < got.n && i < r8.shape[0]; i++) {
        int32_t row[16];
        size_t k = parse_ids(got.line[i], row, 16);
        int same = k == 8;
        for (size_t j = 0; j < 8 && same; j++) same = row[j] == ((const int64_t *)r8.data)[i * 8 + j];
        bad += !same;
    }
    CHECK(!bad, "--context 8 --pad: %zu rows differ from the golden", bad);
    // without --pad the same rows stop at EOT (truncated rows end with EOT too)
    snprintf(args, sizeof args, "tokenize --vocab '%s' --context 3 --text 'a photo of a cat.'", v);
    REQUIRE(run_laic(args, out, err, sizeof err) == 0, "%s", err);
    slurp(out, buf, sizeof buf);
    CHECK(!strcmp(buf, "49406 320 49407\n"), "--context 3 got '%s'", buf);
    free_lines(&got);
    npy_free(&r8);
}

TEST(tok_cli_npy) {
    const char *v = vocab_path();
    if (!v) SKIP("vocabulary not found under ../shared/assets");
    char args[1024], err[4096], buf[256];
    const char *npy = test_path("tok_rows.npy");
    const char *out = test_path("tok_npy_stdout.txt");
    snprintf(args, sizeof args, "tokenize --vocab '%s' --npy '%s' < " FIX "inputs.txt", v, npy);
    REQUIRE(run_laic(args, out, err, sizeof err) == 0, "%s", err);
    CHECK(slurp(out, buf, sizeof buf) == 0, "stdout not empty with --npy: '%s'", buf);
    Npy got, want;
    REQUIRE(!npy_read(npy, &got), "%s", laic_last_error());
    CHECK(got.dtype == NPY_I32, "dtype %s", npy_dtype_name(got.dtype));
    REQUIRE(!npy_read_i64(FIX "rows77.npy", &want, 2, NULL), "%s", laic_last_error());
    REQUIRE(!npy_to_i64(&got, npy), "%s", laic_last_error());
    int same = got.ndim == 2 && got.shape[0] == want.shape[0] && got.shape[1] == 77 &&
               !memcmp(got.data, want.data, want.count * sizeof(int64_t));
    CHECK(same, "npy rows differ from clip.tokenize goldens");
    printf("    %s --npy [%zu, %zu] int32 equals rows77.npy\n", same ? "OK" : "NOT OK", got.shape[0], got.shape[1]);
    npy_free(&got);
    npy_free(&want);
    // empty input: a [0, 77] array
    snprintf(args, sizeof args, "tokenize --vocab '%s' --npy '%s' < /dev/null", v, npy);
    REQUIRE(run_laic(args, NULL, err, sizeof err) == 0, "%s", err);
    REQUIRE(!npy_read(npy, &got), "%s", laic_last_error());
    CHECK(got.ndim == 2 && got.shape[0] == 0 && got.shape[1] == 77, "empty input shape");
    npy_free(&got);
}

TEST(tok_cli_invalid_utf8) {
    const char *v = vocab_path();
    if (!v) SKIP("vocabulary not found under ../shared/assets");
    char args[1024], err[4096];
    const char *in = test_path("tok_bad.txt");
    const char *npy = test_path("tok_bad.npy");
    write_str(in, "fine\nalso fine\nbad \xff byte\nnever read\n");
    snprintf(args, sizeof args, "tokenize --vocab '%s' --npy '%s' < '%s'", v, npy, in);
    int rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 1, "exit %d", rc);
    CHECK(count_lines(err) == 1, "stderr has %d lines: %s", count_lines(err), err);
    CHECK(strstr(err, "stdin:3: invalid UTF-8") != NULL, "message: %s", err);
    CHECK(!file_exists(npy), "--npy output left behind");
    // --text
    snprintf(args, sizeof args, "tokenize --vocab '%s' --text \"$(printf 'a\\355\\240\\200')\"", v);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, "--text: invalid UTF-8"), "rc %d: %s", rc, err);
}

TEST(tok_cli_bad_vocab) {
    char args[1024], err[4096];
    const char *npy = test_path("tok_nv.npy");
    snprintf(args, sizeof args, "tokenize --vocab /nonexistent/bpe.txt.gz --npy '%s' --text hi", npy);
    int rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, "/nonexistent/bpe.txt.gz") && strstr(err, "cannot open"),
          "missing: rc %d: %s", rc, err);
    CHECK(!file_exists(npy), "output left behind");

    // not a merges list (plain text: zlib reads it transparently)
    const char *junk = test_path("junk_vocab.txt.gz");
    write_str(junk, "#version: 0.2\nh e\nth e</w>\n");
    snprintf(args, sizeof args, "tokenize --vocab '%s' --text hi", junk);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, junk) && strstr(err, "corrupt vocabulary"),
          "junk: rc %d: %s", rc, err);

    // a symbol no earlier merge made
    write_str(junk, "#version: 0.2\nzz q\n");
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, "line 2"), "unknown symbol: rc %d: %s", rc, err);

    // a truncated gzip stream
    const char *v = vocab_path();
    if (v) {
        static char head[200000];
        FILE *f = fopen(v, "rb");
        size_t n = f ? fread(head, 1, sizeof head, f) : 0;
        if (f) fclose(f);
        test_write_file(junk, head, n);
        rc = run_laic(args, NULL, err, sizeof err);
        CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, junk) && strstr(err, "corrupt vocabulary"),
              "truncated: rc %d: %s", rc, err);
    }

    // no vocabulary anywhere: run from the temp directory with LAIC_VOCAB empty
    const char *bin = getenv("LAIC_BIN");
    char absbin[4096];
    if (!bin) bin = "build/laic";
    if (realpath(bin, absbin)) {
        char cmd[8192];
        const char *errf = test_path("tok_nov.txt");
        // a copy of the binary in <tmp>/bin, so <exe dir>/../assets is <tmp>/assets (absent) too
        snprintf(cmd, sizeof cmd,
                 "cd '%s' && mkdir -p bin && cp '%s' bin/laic && LAIC_VOCAB= bin/laic tokenize --text hi "
                 ">/dev/null 2>'%s'",
                 test_tmpdir(), absbin, errf);
        int st = system(cmd);
        slurp(errf, err, sizeof err);
        CHECK(st != 0 && count_lines(err) == 1 && strstr(err, "make setup"), "no vocab: st %d: %s", st, err);
    }
}

TEST(tok_cli_bad_options) {
    char err[4096];
    int rc = run_laic("tokenize --context 0 --text hi", NULL, err, sizeof err);
    CHECK(rc == 2 && count_lines(err) == 1 && strstr(err, "--context"), "context 0: rc %d: %s", rc, err);
    rc = run_laic("tokenize --context abc --text hi", NULL, err, sizeof err);
    CHECK(rc == 2 && count_lines(err) == 1, "context abc: rc %d: %s", rc, err);
    rc = run_laic("tokenize --bogus", NULL, err, sizeof err);
    CHECK(rc == 2 && count_lines(err) == 1, "unknown option: rc %d: %s", rc, err);
    rc = run_laic("tokenize --help", NULL, err, sizeof err);
    CHECK(rc == 0, "--help: rc %d", rc);
}
