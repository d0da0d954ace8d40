/*
 * test_fuzz_found.c — run-layer bugs found by the libFuzzer harnesses (tests/fuzz/README.md),
 * replayed from their committed reproducers (tests/fuzz/corpus/<harness>/crash-*) and as plain
 * cases. Each test fails without its fix.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/err.h"
#include "run/config.h"
#include "../test.h"

// What fuzz_config checks: the INI part (before "\xfe\xedPT") loaded, the override lines
// applied; when everything was accepted, the annotated config written back must load to the
// same values. Returns 1 when the round trip holds or something was rejected (one line each).
static int config_roundtrip(const char *ini_text, size_t ini_len, const char *overrides) {
    const char *ini = test_path("rt.ini"), *out = test_path("rt-resolved.ini");
    test_write_file(ini, ini_text, ini_len);
    Config c, d;
    config_init(&c, laic_config_keys, laic_config_nkeys);
    int ok = config_load_ini(&c, ini) == 0, held = 1;
    char *ov = strdup(overrides ? overrides : "");
    for (char *line = ov, *next; overrides && line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        ok &= config_override(&c, line) == 0;
    }
    free(ov);
    if (ok) {
        FILE *f = fopen(out, "w");
        config_write(&c, f, 1);
        fclose(f);
        config_init(&d, laic_config_keys, laic_config_nkeys);
        if (config_load_ini(&d, out)) {
            printf("    resolved config does not load: %s\n", laic_last_error());
            held = 0;
        }
        for (int i = 0; held && i < c.n; i++)
            if (strcmp(c.values[i], d.values[i])) {
                printf("    %s.%s = '%s' reads back as '%s'\n", c.keys[i].section, c.keys[i].key,
                       c.values[i], d.values[i]);
                held = 0;
            }
        config_free(&d);
    }
    config_free(&c);
    return held;
}

// fuzz_config: an override `eval.methods=<190 bytes>` was accepted, and the run's config.ini
// then held a line of more than 199 characters, which config_load_ini refuses: a run directory
// that cannot reproduce its run. A value with a line break, " ;" or surrounding white space
// read back as something else (or as another key); so did one starting with ';' ("key = ;x" is
// a key with an empty value and a comment).
TEST(fuzz_found_config_override_roundtrip) {
    const char *files[] = {"crash-long-override-7d2ffffe", "crash-long-override-b6b23baa",
                           "crash-long-override-b86e4197", "crash-semicolon-override-3d25e04f"};
    for (int i = 0; i < 4; i++) {
        char p[256];
        snprintf(p, sizeof p, "tests/fuzz/corpus/config/%s", files[i]);
        size_t n = 0;
        char *b = test_read_file(p, &n);
        REQUIRE(b, "%s missing", p);
        char *sep = memmem(b, n, "\xfe\xedPT", 4);
        REQUIRE(sep, "%s: no override part", p);
        CHECK(config_roundtrip(b, (size_t)(sep - b), sep + 4), "%s: config.ini does not reload", p);
        free(b);
    }
    char big[400];
    memset(big, 'a', sizeof big);
    snprintf(big, sizeof big, "data.path=/%0200d", 7);
    const char *bad[] = {big, "data.path=a\n[run]\ndir=/tmp/elsewhere", "data.path=a ;b",
                         "data.path= a", "data.path=a\t", "run.dir=x\ry", "data.path=;x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        Config c;
        config_init(&c, laic_config_keys, laic_config_nkeys);
        laic_clear_error();
        CHECK(config_override(&c, bad[i]) != 0 && strstr(laic_last_error(), "config.ini"),
              "override %zu accepted or wrong message: '%s'", i, laic_last_error());
        if (!strchr(bad[i], '\n') && !strchr(bad[i], '\r'))
            CHECK(count_lines(laic_last_error()) == 1, "override %zu: message not one line", i);
        config_free(&c);
        CHECK(config_roundtrip("", 0, bad[i]), "override %zu: round trip", i);
    }
    // the longest value that fits, and an INI file on a path longer than a line (its name is in
    // every annotated key's origin comment): both reload
    char fits[300];
    snprintf(fits, sizeof fits, "data.path=/%0*d", 198 - 3 - 4 - 1, 7);   // "path = /0…7": 198
    CHECK(config_roundtrip("", 0, fits), "a %zu-character value", strlen(fits) - 10);
    char dir[600], ini[700];
    snprintf(dir, sizeof dir, "%s/%0230d", test_tmpdir(), 0);
    mkdir(dir, 0700);
    snprintf(ini, sizeof ini, "%s/c.ini", dir);
    test_write_file(ini, "[run]\nseed = 3\n", 15);
    Config c, d;
    config_init(&c, laic_config_keys, laic_config_nkeys);
    REQUIRE(config_load_ini(&c, ini) == 0, "%s", laic_last_error());
    const char *out = test_path("long-origin.ini");
    FILE *f = fopen(out, "w");
    config_write(&c, f, 1);
    fclose(f);
    config_init(&d, laic_config_keys, laic_config_nkeys);
    CHECK(config_load_ini(&d, out) == 0, "config written from a long path: %s", laic_last_error());
    config_free(&c);
    config_free(&d);
}
