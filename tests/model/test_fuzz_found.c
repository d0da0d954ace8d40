/*
 * test_fuzz_found.c — model-layer bugs found by the libFuzzer harnesses (tests/fuzz/README.md),
 * replayed from their committed reproducers (tests/fuzz/corpus/<harness>/crash-*).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/err.h"
#include "model/tokenizer.h"
#include "../test.h"

// fuzz_tokenizer: a text that cleans to nothing (one NUL byte; "&#19;", an HTML-escaped control
// character) made the cleaner do arithmetic on and memcpy from a NULL buffer of 0 code points:
// undefined behaviour, caught by UBSan, so this test fails under `make asan` without the fix
// (the plain build happens to survive it). Both tokenize to SOT EOT.
TEST(fuzz_found_tokenizer_text_that_cleans_to_nothing) {
    const char *v = tokenizer_default_vocab_path();
    if (!v) SKIP("no CLIP vocabulary (make setup)");
    const char *files[] = {"tests/fuzz/corpus/tokenizer/crash-nul-byte",
                           "tests/fuzz/corpus/tokenizer/crash-html-control-char"};
    for (int i = 0; i < 2; i++) {
        Tokenizer *t = tokenizer_load(v);   // fresh: the bug needed never-grown buffers
        REQUIRE(t, "%s", laic_last_error());
        size_t n = 0;
        char *b = test_read_file(files[i], &n);
        REQUIRE(b, "%s missing", files[i]);
        int32_t row[TOKENIZER_CONTEXT];
        int k = tokenizer_tokenize(t, b, n, TOKENIZER_CONTEXT, row);
        CHECK(k == 2 && row[0] == TOKENIZER_SOT && row[1] == TOKENIZER_EOT, "%s: %d tokens",
              files[i], k);
        size_t cl = 1;
        char *c = tokenizer_clean(t, b, n, &cl);
        CHECK(c && cl == 0, "%s: cleaned to %zu bytes", files[i], cl);
        free(c);
        free(b);
        tokenizer_free(t);
    }
}
