/*
 * test_doctor.c — `laic doctor` (host/cli/cmd_doctor.c):
 *  - for a job that needs nothing from this machine but its own files (precomputed image and
 *    noun features) it says ready and exits 0 whatever else is missing here;
 *  - each missing piece the job needs is marked ✗ with a fix line, the verdict says NOT READY,
 *    and the exit status is 1: a missing dataset, a missing WordNet, a weights file that is not
 *    one;
 *  - the default job (configs/demo.ini): exit 0 exactly when WordNet, the demo dataset and the
 *    vocabulary are present (the README's setup), else 1;
 *  - it fits one screen (at most 40 lines) and names every section; a bad override exits 2.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/tokenizer.h"
#include "../synth.h"
#include "../test.h"

static char *doctor(const char *args, int *rc) {
    const char *out = test_path("doctor.txt");
    char err[8192];
    *rc = run_laic(args, out, err, sizeof err);
    char *text = test_read_file(out, NULL);
    if (text && err[0]) {   // errors go to stderr: keep them with the screen for the messages
        size_t a = strlen(text), b = strlen(err);
        char *both = realloc(text, a + b + 1);
        if (both) memcpy(both + a, err, b + 1), text = both;
    }
    return text;
}

TEST(doctor_precomputed_job_is_ready) {
    const char *dir = test_path("doctor-data");
    mkdir(dir, 0755);
    synth_planted(dir, 3, 16, 60, 30, 0.1, 42, 1);
    char args[2048];
    snprintf(args, sizeof args,
             "doctor --config /dev/null data.image_features=%s/X.npy nouns.features=%s/T.npy run.cache_dir=%s",
             dir, dir, test_tmpdir());
    int rc;
    char *t = doctor(args, &rc);
    REQUIRE(t, "doctor output");
    CHECK(rc == 0 && strstr(t, "ready: `laic run /dev/null` has what it needs"), "ready (rc %d):\n%s", rc, t);
    const char *sections[] = {"build\n", "CPU\n", "GPU\n", "data and models", "optional tools\n", "machine\n",
                              "MPI / NCCL", "BLAS", "threads", "disk", "memory", "weights", "WordNet"};
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++)
        CHECK(strstr(t, sections[i]) != NULL, "names '%s'", sections[i]);
    CHECK(strstr(t, "not needed: nouns.features") != NULL, "WordNet is not needed with noun features");
    CHECK(count_lines(t) <= 40, "one screen: %d lines", count_lines(t));
    free(t);
}

TEST(doctor_missing_pieces_fail_with_fixes) {
    struct { const char *over, *name, *fix; } cases[] = {
        {"data.path=/nonexistent-laic-data", "✗ dataset", "fix: "},
        {"nouns.wordnet=/nonexistent/data.noun", "✗ WordNet", "fix: set nouns.wordnet"},
        {"model.weights=/dev/null", "✗ weights", "fix: python3 scripts/convert_weights.py"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[1024];
        snprintf(args, sizeof args, "doctor --config /dev/null data.path=/usr/share/datasets/fashion-mnist "
                 "data.kind=idx %s", cases[i].over);
        int rc;
        char *t = doctor(args, &rc);
        REQUIRE(t, "doctor output");
        const char *line = strstr(t, cases[i].name);
        CHECK(rc == 1 && line && strstr(line, cases[i].fix) && strstr(t, "NOT READY"),
              "case %zu (%s): rc %d, want a '%s' line with '%s':\n%s", i, cases[i].over, rc, cases[i].name,
              cases[i].fix, t);
        free(t);
    }
    int rc;
    char *t = doctor("doctor --config /dev/null ridge.lamda=1", &rc);
    CHECK(rc == 2 && t && strstr(t, "unknown key 'lamda'"), "bad override: rc %d: %s", rc, t ? t : "");
    free(t);
    t = doctor("doctor --config /nonexistent.ini", &rc);
    CHECK(rc == 2 && t && strstr(t, "/nonexistent.ini"), "missing config: rc %d", rc);
    free(t);
}

TEST(doctor_default_job_matches_the_setup) {
    if (!file_exists("configs/demo.ini")) SKIP("run from the repository root");
    const int have = file_exists("/usr/share/wordnet/data.noun") &&
                     file_exists("/usr/share/datasets/fashion-mnist") && tokenizer_default_vocab_path() != NULL;
    int rc;
    char *t = doctor("doctor", &rc);
    REQUIRE(t, "doctor output");
    CHECK(rc == (have ? 0 : 1), "default job: rc %d with the setup %s:\n%s", rc, have ? "complete" : "incomplete", t);
    CHECK(strstr(t, "(for configs/demo.ini)") != NULL, "checks for configs/demo.ini");
    CHECK(count_lines(t) <= 40, "one screen: %d lines", count_lines(t));
    free(t);
}
