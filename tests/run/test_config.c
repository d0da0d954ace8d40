/* test_config.c — INI parsing, overrides, validation and the resolved listing (host/run/config.c). */
#include <stdlib.h>
#include <string.h>

#include "run/config.h"
#include "io/err.h"
#include "../test.h"

static const char *write_ini(const char *name, const char *text) {
    const char *p = test_path(name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
    return p;
}

TEST(config_defaults_file_overrides_precedence) {
    Config c;
    config_init(&c, laic_config_keys, laic_config_nkeys);
    CHECK(config_float(&c, "ridge", "lambda") == 10.0, "paper default λ = 10");
    CHECK(config_int(&c, "nouns", "gamma") == 5, "paper default γ = 5");
    const char *p = write_ini("a.ini", "; comment\n[ridge]\nlambda = 50\n[nouns]\ngamma=3\n"
                                       "[train]\nenabled = yes\n");
    REQUIRE(config_load_ini(&c, p) == 0, "%s", laic_last_error());
    CHECK(config_float(&c, "ridge", "lambda") == 50.0, "file overrides default");
    CHECK(config_bool(&c, "train", "enabled") == 1, "yes -> true");
    REQUIRE(config_override(&c, "ridge.lambda=0.5") == 0, "%s", laic_last_error());
    CHECK(config_float(&c, "ridge", "lambda") == 0.5, "command line overrides file");
    CHECK(config_int(&c, "nouns", "gamma") == 3, "untouched file value kept");
    CHECK(config_override(&c, "train.prefix=a photo of the") == 0 &&
              !strcmp(config_str(&c, "train", "prefix"), "a photo of the"),
          "string with spaces");
    config_free(&c);
}

TEST(config_errors_name_file_and_line) {
    Config c;
    config_init(&c, laic_config_keys, laic_config_nkeys);
    struct { const char *text, *want; } cases[] = {
        {"[ridge]\nlambda = 10\nlamda = 5\n", ":3: unknown key 'lamda' in [ridge]"},
        {"[ridge]\n\n[ridgee]\nlambda = 1\n", ":4: unknown section [ridgee]"},
        {"[ridge]\nlambda = ten\n", ":2: ridge.lambda: 'ten' is not a finite number"},
        {"[ridge]\nlambda = -1\n", ":2: ridge.lambda = -1 is out of range"},
        {"[model]\ndevice = tpu\n", ":2: model.device: 'tpu' is not one of auto|cpu|cuda"},
        {"[train]\nenabled = maybe\n", ":2: train.enabled: 'maybe' is not a boolean"},
        {"[kmeans]\nk = 3.5\n", ":2: kmeans.k: '3.5' is not an integer"},
        {"lambda = 3\n", ":1: key 'lambda' outside any [section]"},
        {"[ridge\nlambda = 3\n", ":1: INI syntax error"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = write_ini("bad.ini", cases[i].text);
        int rc = config_load_ini(&c, p);
        CHECK(rc != 0 && strstr(laic_last_error(), cases[i].want) && !strncmp(laic_last_error(), p, strlen(p)),
              "case %zu: want '%s', got '%s'", i, cases[i].want, laic_last_error());
    }
    CHECK(config_override(&c, "ridge.lambda") != 0 && strstr(laic_last_error(), "section.key=value"),
          "override without '=': %s", laic_last_error());
    CHECK(config_override(&c, "nope.x=1") != 0 && strstr(laic_last_error(), "unknown section [nope]"),
          "override of unknown section: %s", laic_last_error());
    CHECK(config_load_ini(&c, test_path("missing.ini")) != 0 && strstr(laic_last_error(), "cannot open"),
          "missing file: %s", laic_last_error());
    config_free(&c);
}

TEST(config_resolved_listing_roundtrips) {
    Config a, b;
    config_init(&a, laic_config_keys, laic_config_nkeys);
    REQUIRE(config_override(&a, "knn.k=7") == 0, "%s", laic_last_error());
    REQUIRE(config_override(&a, "run.name=sweep-λ") == 0, "%s", laic_last_error());
    const char *p = test_path("resolved.ini");
    FILE *f = fopen(p, "w");
    config_write(&a, f, 1);
    fclose(f);
    config_init(&b, laic_config_keys, laic_config_nkeys);
    REQUIRE(config_load_ini(&b, p) == 0, "resolved config must load back: %s", laic_last_error());
    int same = 1;
    for (int i = 0; i < a.n; i++)
        if (strcmp(a.values[i], b.values[i])) {
            same = 0;
            printf("    %s.%s: '%s' vs '%s'\n", a.keys[i].section, a.keys[i].key, a.values[i], b.values[i]);
        }
    CHECK(same, "every key survives write + load");
    config_free(&a);
    config_free(&b);
}

TEST(config_table_defaults_are_valid_and_unique) {
    for (int i = 0; i < laic_config_nkeys; i++)
        for (int j = i + 1; j < laic_config_nkeys; j++)
            CHECK(strcmp(laic_config_keys[i].section, laic_config_keys[j].section) ||
                      strcmp(laic_config_keys[i].key, laic_config_keys[j].key),
                  "duplicate key %s.%s", laic_config_keys[i].section, laic_config_keys[i].key);
    Config c;   // config_init asserts every default validates against its own type and range
    config_init(&c, laic_config_keys, laic_config_nkeys);
    config_free(&c);
}

TEST(config_shipped_configs_load) {
    const char *names[] = {"demo", "cifar10-test", "dtd5", "imagenet-dogs", "imagenet-10", "stl10",
                           "cifar10", "flowers102", "cifar100", "dtd", "ucf101"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[128];
        snprintf(p, sizeof p, "configs/%s.ini", names[i]);
        Config c;
        config_init(&c, laic_config_keys, laic_config_nkeys);
        CHECK(config_load_ini(&c, p) == 0, "%s", laic_last_error());
        CHECK(config_str(&c, "data", "path")[0] != 0, "%s sets data.path", p);
        // the paper datasets carry SPEC §11's numbers as [published] keys, not comments
        if (i >= 3)
            CHECK(config_str(&c, "published", "ours")[0] && config_str(&c, "published", "tac-train")[0] &&
                      config_str(&c, "published", "zeroshot")[0] && config_str(&c, "published", "source")[0],
                  "%s has published ours, tac-train, zeroshot and their source", p);
        config_free(&c);
    }
}

TEST(config_published_numbers_are_three_percentages) {
    Config c;
    config_init(&c, laic_config_keys, laic_config_nkeys);
    CHECK(config_override(&c, "published.ours=85.2/92.9/84.8") == 0 &&
              !strcmp(config_str(&c, "published", "ours"), "85.2/92.9/84.8"),
          "three numbers: %s", laic_last_error());
    CHECK(config_override(&c, "published.clip-kmeans=0/100/50") == 0, "bounds 0 and 100: %s", laic_last_error());
    CHECK(config_override(&c, "published.ours=") == 0 && !config_str(&c, "published", "ours")[0], "empty = none");
    struct { const char *a, *want; } bad[] = {
        {"published.ours=85.2/92.9", "is not three numbers"},
        {"published.ours=85.2/92.9/84.8/1", "is not three numbers"},
        {"published.ours=a/b/c", "is not three numbers"},
        {"published.ours=85.2/192.9/84.8", "192.9 is out of range [0, 100]"},
        {"published.ours=85.2,92.9,84.8", "is not three numbers"},
        {"published.nope=1/2/3", "unknown key 'nope' in [published]"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(config_override(&c, bad[i].a) != 0 && strstr(laic_last_error(), bad[i].want),
              "%s: want '%s', got '%s'", bad[i].a, bad[i].want, laic_last_error());
    const char *p = write_ini("pub.ini", "[published]\nsource = x\nours = 1/2/3\ntac = 1/2\n");
    CHECK(config_load_ini(&c, p) != 0 && strstr(laic_last_error(), ":4: published.tac:"),
          "file:line in the error: %s", laic_last_error());
    config_free(&c);
}

TEST(config_rejects_lines_too_long_for_libinih) {
    char text[600] = "[run]\nname = ";
    size_t o = strlen(text);
    memset(text + o, 'x', 300);
    strcpy(text + o + 300, "\n");
    const char *p = write_ini("long.ini", text);
    Config c;
    config_init(&c, laic_config_keys, laic_config_nkeys);
    CHECK(config_load_ini(&c, p) != 0 && strstr(laic_last_error(), ":2: line longer than"),
          "a 300-character value must not be silently split: %s", laic_last_error());
    config_free(&c);
}

TEST(config_tac_section_and_moved_key) {
    Config c;
    config_init(&c, laic_config_keys, laic_config_nkeys);
    // TAC's code (SPEC §4, §8): its own settings, not [kmeans]'s
    CHECK(config_float(&c, "tac", "tau") == 0.005 && config_int(&c, "tac", "restarts") == 20 &&
              !strcmp(config_str(&c, "tac", "init"), "random") && config_bool(&c, "tac", "spherical") &&
              config_int(&c, "tac", "sample_per_center") == 256 &&
              !strcmp(config_str(&c, "tac", "fit_split"), "eval"),
          "[tac] defaults: τ 0.005, 20 restarts, random init, spherical, 256·K sample, eval split");
    CHECK(!strcmp(config_str(&c, "nouns", "rank"), "tac") && !strcmp(config_str(&c, "centers", "init"), "random"),
          "candidates rank by TAC's confidence, centres start from random rows (faiss)");
    // eval.tac_tau (before [tac] existed) is read as tac.tau, in files and overrides
    const char *p = write_ini("old.ini", "[eval]\ntac_tau = 0.01\n");
    REQUIRE(config_load_ini(&c, p) == 0, "%s", laic_last_error());
    CHECK(config_float(&c, "tac", "tau") == 0.01, "eval.tac_tau in a file sets tac.tau");
    REQUIRE(config_override(&c, "eval.tac_tau=0.02") == 0, "%s", laic_last_error());
    CHECK(config_float(&c, "tac", "tau") == 0.02, "eval.tac_tau=… overrides tac.tau");
    CHECK(config_float(&c, "eval", "tac_tau") == 0.02, "code reading eval.tac_tau gets tac.tau");
    config_free(&c);
    // source tags: nothing that TAC's code does otherwise is tagged [TAC]
    for (int i = 0; i < laic_config_nkeys; i++) {
        const CfgKey *k = &laic_config_keys[i];
        if (!strcmp(k->section, "kmeans") && (!strcmp(k->key, "init") || !strcmp(k->key, "restarts")))
            CHECK(strcmp(k->tag, "TAC") != 0, "kmeans.%s = %s is not TAC's (faiss: random init, "
                  "nredo 10 or 20): tag %s", k->key, k->def, k->tag);
    }
}
