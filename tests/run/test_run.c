/*
 * test_run.c — `laic run` end to end (host/run/run.c, host/run/stages.c, host/run/methods/).
 *  - planted cluster structure in precomputed features must be recovered by every method;
 *  - the whole pipeline on a tiny random-init model over a small synthetic CIFAR-format dataset
 *    (decode, encode, nouns from WordNet, candidates, ridge, k-means, filter, zero-shot);
 *  - bad inputs give one-line errors and leave no run directory behind.
 * Data is generated here with the project's own RNG; no Python is needed.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/err.h"
#include "io/npy.h"
#include "rng.h"
#include "../synth.h"
#include "../test.h"

/* Value of "key": <number> inside the object that follows "section": in report.json text. */
static double json_num(const char *json, const char *section, const char *key) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", section);
    const char *p = strstr(json, pat);
    if (!p) return NAN;
    snprintf(pat, sizeof pat, "\"%s\":", key);
    p = strstr(p, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

static const char *planted_args(char *buf, size_t n, const char *dir, const char *extra) {
    snprintf(buf, n,
             "run /dev/null data.image_features=%s/X.npy data.labels=%s/y.npy "
             "nouns.features=%s/T.npy nouns.names=%s/names.txt run.dir=%s/run "
             "run.cache_dir=%s/cache eval.methods=clip-kmeans,tac,ours-notrain %s",
             dir, dir, dir, dir, dir, dir, extra);
    return buf;
}

TEST(run_recovers_planted_clusters) {
    const char *dir = test_path("planted");
    mkdir(dir, 0755);
    synth_planted(dir, 5, 24, 500, 150, 0.08, 42, 1);
    char args[2048], err[8192];
    int rc = run_laic(planted_args(args, sizeof args, dir, ""), NULL, err, sizeof err);
    REQUIRE(rc == 0, "laic run failed (%d): %s", rc, err);
    char p[600];
    snprintf(p, sizeof p, "%s/run/report.json", dir);
    char *json = test_read_file(p, NULL);
    REQUIRE(json, "report.json written");
    const char *methods[] = {"clip-kmeans", "tac", "ours-notrain"};
    for (int i = 0; i < 3; i++) {
        double acc = json_num(json, methods[i], "acc"), nmi = json_num(json, methods[i], "nmi");
        CHECK(acc >= 0.99 && nmi >= 0.95, "%s must recover the 5 planted clusters: ACC %.3f NMI %.3f",
              methods[i], acc, nmi);
    }
    double hq = json_num(json, "pseudo_labels", "high_quality_fraction");
    CHECK(hq > 0.9 && hq <= 1.0, "high-quality fraction %.3f", hq);
    double M = json_num(json, "sizes", "candidate_nouns");
    CHECK(json_num(json, "sizes", "image_centres") == 15, "k_c = 3K = 15 (classes have < 300 images)");
    CHECK(M >= 25 && M <= 15 * 5, "at most γ = 5 nouns per centre, every class represented: M = %g", M);
    free(json);
    const char *files[] = {"config.ini", "assignments.npy", "clusters.tsv", "log.txt"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/run/%s", dir, files[i]);
        CHECK(file_exists(p), "%s written", files[i]);
    }
    // clusters.tsv: each cluster's nearest nouns belong to its own planted class
    snprintf(p, sizeof p, "%s/run/clusters.tsv", dir);
    char *tsv = test_read_file(p, NULL);
    int good = 0, rows = 0;
    for (char *line = strtok(tsv, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strncmp(line, "cluster", 7)) continue;
        rows++;
        char cls[32];
        if (sscanf(line, "%*d\t%*d\t%31s", cls) != 1) continue;
        char pat[48];
        snprintf(pat, sizeof pat, "_of_%s", cls);
        const char *nouns = strrchr(line, '\t');
        int all = 1, cnt = 0;
        for (const char *q = nouns; (q = strstr(q, "noun")); q += 4, cnt++) {
            const char *end = strpbrk(q, ",\n");
            size_t l = end ? (size_t)(end - q) : strlen(q);
            char one[64];
            snprintf(one, sizeof one, "%.*s", (int)l, q);
            all &= strstr(one, pat) != NULL;
        }
        good += all && cnt == 5;
    }
    free(tsv);
    CHECK(rows == 5 && good == 5, "interpretable clusters: %d of %d rows with 5 nouns of their own class", good, rows);
    // the resolved config reproduces the run: same assignments from config.ini alone
    char args2[2048];
    snprintf(args2, sizeof args2, "run %s/run/config.ini run.dir=%s/run2", dir, dir);
    rc = run_laic(args2, NULL, err, sizeof err);
    REQUIRE(rc == 0, "re-run from config.ini failed: %s", err);
    Npy a, b;
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/run/assignments.npy", dir);
    snprintf(pb, sizeof pb, "%s/run2/assignments.npy", dir);
    REQUIRE(npy_read(pa, &a) == 0 && npy_read(pb, &b) == 0, "%s", laic_last_error());
    CHECK(a.count == b.count && !memcmp(a.data, b.data, a.count * 8), "same seed, same assignments");
    npy_free(&a);
    npy_free(&b);
}

// ridge.form = auto takes SPEC §5's exact N×d reduction when M >= d and C is not saved: the same
// clusters as the explicit C (the distances are equal up to rounding), and C when it is saved.
TEST(run_ridge_auto_takes_the_reduction) {
    const char *dir = test_path("ridge_auto");
    mkdir(dir, 0755);
    synth_planted(dir, 5, 24, 500, 150, 0.08, 42, 1);   // E = 24 < M (the candidates)
    char args[2048], err[8192], p[600];
    const char *cases[][2] = {{"auto", "reduced"}, {"dual", "dual"}, {"auto ridge.save_c=true", "dual"}};
    Npy a[3];
    memset(a, 0, sizeof a);
    for (int c = 0; c < 3; c++) {
        char extra[256];
        snprintf(extra, sizeof extra, "eval.methods=ours-notrain run.dir=%s/run%d ridge.form=%s",
                 dir, c, cases[c][0]);
        int rc = run_laic(planted_args(args, sizeof args, dir, extra), NULL, err, sizeof err);
        REQUIRE(rc == 0, "laic run (%s) failed (%d): %s", cases[c][0], rc, err);
        snprintf(p, sizeof p, "%s/run%d/log.txt", dir, c);
        char *log = test_read_file(p, NULL), want[64];
        snprintf(want, sizeof want, "form %s)", cases[c][1]);
        CHECK(log && strstr(log, want), "ridge.form=%s runs the %s form", cases[c][0], cases[c][1]);
        free(log);
        snprintf(p, sizeof p, "%s/run%d/assignments.npy", dir, c);
        REQUIRE(npy_read(p, &a[c]) == 0, "%s", laic_last_error());
    }
    for (int c = 1; c < 3; c++)
        CHECK(a[c].count == a[0].count &&
                  !memcmp(a[c].data, a[0].data, a[0].count * sizeof(int64_t)),
              "ridge.form=%s gives the reduction's assignments", cases[c][0]);
    snprintf(p, sizeof p, "%s/run2/C.npy", dir);
    CHECK(file_exists(p), "ridge.save_c writes C.npy");
    for (int c = 0; c < 3; c++) npy_free(&a[c]);
}

TEST(run_bad_inputs_leave_no_run_dir) {
    const char *dir = test_path("planted_bad");
    mkdir(dir, 0755);
    synth_planted(dir, 3, 16, 60, 30, 0.1, 42, 1);
    struct { const char *extra, *msg; } cases[] = {
        {"kmeans.k=100", "kmeans.k = 100 exceeds the 60 fit images"},
        {"ridge.lamda=3", "unknown key 'lamda' in [ridge]"},
        {"eval.methods=clip-kmeans,nope", "unknown method 'nope'"},
        {"data.image_features=/nonexistent/X.npy", "/nonexistent/X.npy: cannot open"},
        {"nouns.names=/dev/null", "/dev/null: 0 lines, but the features have 30 rows"},
    };
    char args[2048], err[8192], rd[600];
    snprintf(rd, sizeof rd, "%s/run", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = run_laic(planted_args(args, sizeof args, dir, cases[i].extra), NULL, err, sizeof err);
        CHECK(rc != 0, "case %zu must fail", i);
        // the log lines on stderr are prefixed "[ time]"; the error is the one "laic:" line
        int nerr = 0;
        for (const char *q = err; (q = strstr(q, "laic: ")); q++) nerr++;
        CHECK(nerr == 1 && strstr(err, cases[i].msg), "case %zu: one 'laic:' line with '%s', got: %s", i,
              cases[i].msg, err);
        char partial[700];
        snprintf(partial, sizeof partial, "%s.partial", rd);
        CHECK(!file_exists(rd) && !file_exists(partial), "case %zu: no run files left behind", i);
    }
    int rc = run_laic("run /nonexistent.ini", NULL, err, sizeof err);
    CHECK(rc != 0 && count_lines(err) == 1 && strstr(err, "/nonexistent.ini: cannot open config"),
          "missing config: %s", err);
    rc = run_laic("run /dev/null data.path=/nonexistent-dataset run.dir=/tmp/laic-never", NULL, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "/nonexistent-dataset") && !file_exists("/tmp/laic-never"),
          "missing dataset directory: %s", err);
}

/* A CIFAR-10-format dataset (data_batch_1.bin + test_batch.bin) of smooth random images whose
 * class sets the dominant colour, so even a random-init encoder sees some structure. */
static void write_cifar(const char *dir, int n_train, int n_test) {
    Rng g;
    rng_init(&g, 7, 0);
    const char *names[2] = {"data_batch_1.bin", "test_batch.bin"};
    int counts[2] = {n_train, n_test};
    for (int s = 0; s < 2; s++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, names[s]);
        FILE *f = fopen(p, "wb");
        for (int i = 0; i < counts[s]; i++) {
            unsigned char rec[3073];
            rec[0] = (unsigned char)(i % 3);
            for (int c = 0; c < 3; c++)
                for (int k = 0; k < 1024; k++)
                    rec[1 + c * 1024 + k] = (unsigned char)((c == rec[0] ? 160 : 40) + rng_below(&g, 80));
            fwrite(rec, 1, sizeof rec, f);
        }
        fclose(f);
    }
}

TEST(run_tiny_model_on_cifar_format_images) {
    if (!file_exists("/usr/share/wordnet/data.noun")) SKIP("wordnet-base not installed (make setup)");
    const char *dir = test_path("cifar");
    mkdir(dir, 0755);
    write_cifar(dir, 60, 30);
    char args[2048], err[16384];
    snprintf(args, sizeof args,
             "run /dev/null data.kind=cifar10 data.path=%s model.arch=tiny model.batch=16 model.device=cpu "
             "nouns.subset=300 kmeans.k=3 kmeans.restarts=2 centers.restarts=2 run.dir=%s/run "
             "run.cache_dir=%s/cache", dir, dir, dir);
    int rc = run_laic(args, NULL, err, sizeof err);
    REQUIRE(rc == 0, "laic run on a tiny model failed (%d): %s", rc, err);
    CHECK(strstr(err, "RANDOM WEIGHTS") != NULL, "random-weights banner printed");
    char p[600];
    snprintf(p, sizeof p, "%s/run/report.json", dir);
    char *json = test_read_file(p, NULL);
    REQUIRE(json, "report.json");
    const char *methods[] = {"clip-kmeans", "tac", "zeroshot", "ours-notrain"};
    for (int i = 0; i < 4; i++) {
        double acc = json_num(json, methods[i], "acc");
        CHECK(acc >= 1.0 / 3 - 1e-9 && acc <= 1.0, "%s reported (ACC %.3f on 30 test images)", methods[i], acc);
    }
    CHECK(strstr(json, "\"random_init\":\ttrue") != NULL, "report says the weights are random");
    CHECK(json_num(json, "sizes", "n_eval") == 30 && json_num(json, "sizes", "n_fit") == 60, "fit on train, eval on test");
    free(json);
    Npy a;
    snprintf(p, sizeof p, "%s/run/assignments.npy", dir);
    REQUIRE(npy_read(p, &a) == 0, "%s", laic_last_error());
    CHECK(a.count == 30 && a.dtype == NPY_I64, "assignments for the 30 eval images");
    npy_free(&a);
    // second run: features come from the cache (no encoding progress bar)
    snprintf(args, sizeof args,
             "run /dev/null data.kind=cifar10 data.path=%s model.arch=tiny model.batch=16 model.device=cpu "
             "nouns.subset=300 kmeans.k=3 kmeans.restarts=2 centers.restarts=2 run.dir=%s/run2 "
             "run.cache_dir=%s/cache", dir, dir, dir);
    rc = run_laic(args, NULL, err, sizeof err);
    REQUIRE(rc == 0, "second run failed: %s", err);
    CHECK(strstr(err, "features from cache") && strstr(err, "noun features from cache"),
          "second run reads image and noun features from the cache: %s", err);
}
