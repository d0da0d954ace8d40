/*
 * test_reliability_model.c — the tokenizer and the weights' vocabulary against hostile input
 * (issue 13, item 10):
 *  - a line holding one control character cleans to nothing without memcpy(NULL, .., 0) (UBSan
 *    aborts `make asan` on the unfixed code) and tokenizes to SOT EOT;
 *  - a gzip bomb as the vocabulary fails in one line naming the file, before it is decompressed
 *    (a forked child's memory stays far below the bomb's 128 MiB), with a true or forged trailer;
 *  - a weights file whose vocabulary is smaller than the tokenizer's ids: text encoding fails
 *    naming the weights file, not "clip: token id ... outside the vocabulary".
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/err.h"
#include "model/clip.h"
#include "model/tokenizer.h"
#include "../hostile.h"
#include "../test.h"

static const char *vocab(void) {
    static char p[1024];
    const char *s = test_shared("assets/bpe_simple_vocab_16e6.txt.gz");
    if (s && file_exists(s)) return s;
    snprintf(p, sizeof p, "assets/bpe_simple_vocab_16e6.txt.gz");
    return file_exists(p) ? p : NULL;
}

TEST(rel_tokenizer_line_of_one_control_character) {
    const char *v = vocab();
    if (!v) SKIP("vocabulary not found");
    Tokenizer *t = tokenizer_load(v);
    REQUIRE(t, "%s", laic_last_error());
    const char *lines[] = {"\x01", "\x7f", "\x1b", "\x01\n", "\t\x02", "\x01\x02\x03", "a\x01"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        int32_t row[77];
        int n = tokenizer_tokenize(t, lines[i], strlen(lines[i]), 77, row);
        int want = i == 6 ? 3 : 2;   // "a" keeps one token
        CHECK(n == want && row[0] == TOKENIZER_SOT && row[n - 1] == TOKENIZER_EOT,
              "line %zu: %d tokens (want %d)", i, n, want);
        int32_t *ids = NULL;
        size_t ni = 7;
        CHECK(tokenizer_encode(t, lines[i], strlen(lines[i]), &ids, &ni) == 0 && ni == (size_t)(want - 2),
              "line %zu: encode gives %zu ids", i, ni);
        free(ids);
    }
    tokenizer_free(t);
}

static int load_vocab(void *path) {
    Tokenizer *t = tokenizer_load(path);
    if (!t) return -1;
    tokenizer_free(t);
    return 0;
}

TEST(rel_vocabulary_gzip_bomb_fails_before_it_is_decompressed) {
    const char *p = test_path("bomb_vocab.txt.gz");
    const char *head = "\"bpe_simple_vocab_16e6.txt#version: 0.2\n";
    const char *what[2] = {"true gzip trailer", "trailer forged to 1 MB"};
    for (int forge = 0; forge < 2; forge++) {
        hostile_gzip(p, head, strlen(head), (size_t)128 << 20, forge, 1u << 20);
        int rc;
        char msg[2048];
        long kb = hostile_child_peak_kb(load_vocab, (void *)p, &rc, msg, sizeof msg);
        CHECK(rc == 1 && strstr(msg, p) && strstr(msg, "corrupt vocabulary") && !strchr(msg, '\n'),
              "%s: one-line error naming the file (rc %d): %s", what[forge], rc, msg);
        CHECK(kb >= 0 && kb < 32 * 1024, "%s: the child's memory rose by %ld KiB (bomb: 128 MiB)",
              what[forge], kb);
        printf("    %s: failed after %ld KiB more memory: %s\n", what[forge], kb, msg);
    }
}

TEST(rel_small_vocabulary_weights_named_when_text_is_encoded) {
    if (!vocab()) SKIP("vocabulary not found");
    ClipConfig c;
    REQUIRE(clip_config_preset(&c, "tiny") == 0, "%s", laic_last_error());
    c.vocab_size = 1000;
    ClipWeights w;
    REQUIRE(clip_weights_init(&w, &c, 3) == 0, "%s", laic_last_error());
    const char *wp = test_path("small_vocab.safetensors");
    const char *meta[] = {"source", "init-weights", "source_sha256", "none", "arch", "tiny", "seed", "3"};
    REQUIRE(clip_weights_save(&w, wp, "F32", meta, 4) == 0, "%s", laic_last_error());
    clip_weights_free(&w);
    const char *tp = test_path("texts.txt");
    test_write_file(tp, "a photo of a zebra\n", 19);
    char args[2048], err[4096], out[700];
    snprintf(out, sizeof out, "%s", test_path("small_vocab_feat.npy"));
    snprintf(args, sizeof args, "encode-text --weights '%s' --texts '%s' --out '%s'", wp, tp, out);
    int rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, wp) && strstr(err, "vocabulary has 1000") &&
              !file_exists(out), "encode-text --texts with a 1000-token model: %d %s", rc, err);
}
