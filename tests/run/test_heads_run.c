/*
 * test_heads_run.c — the trained-head methods through `laic run` (host/run/methods/sic.c,
 * tac_train.c) on precomputed features: planted clusters recovered by `sic` and `tac-train`,
 * their outputs (predictions/, sic_space.tsv, report.json), test-ACC selection said in the
 * report, stop + resume through run.resume equal to an uninterrupted run, SIC's bank built from
 * WordNet as noun.csv reads, and bad inputs (K larger than the noun bank, an empty semantic space,
 * NaN features) as one-line errors that leave no run directory.
 * Data is generated here with the project's own RNG; no Python is needed.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/nouns.h"
#include "io/err.h"
#include "io/npy.h"
#include "rng.h"
#include "run/methods/methods.h"
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

/* Planted data in dir: raw image features X (N,E) = s_i·(centre_y + noise), s_i in [8,12] (CLIP's
 * raw features have norms near 10), labels y; TAC's noun bank T (M,E) with names (nounJ_of_C);
 * SIC's raw bank B (Mb,E): 30 nouns near each centre, the rest random, names. */
static void planted_heads(const char *dir, int K, int E, int N, int Mb, uint64_t seed) {
    Rng g;
    rng_init(&g, seed, 0);
    float *C = malloc((size_t)K * E * sizeof *C), *X = malloc((size_t)N * E * sizeof *X);
    int64_t *y = malloc((size_t)N * sizeof *y);
    for (int k = 0; k < K; k++) {
        double n2 = 0;
        for (int e = 0; e < E; e++) n2 += pow(C[k * E + e] = (float)rng_normal(&g), 2);
        for (int e = 0; e < E; e++) C[k * E + e] /= (float)sqrt(n2);
    }
    for (int i = 0; i < N; i++) {
        y[i] = i % K;
        const double s = 8.0 + 4.0 * rng_uniform(&g);
        for (int e = 0; e < E; e++)
            X[(size_t)i * E + e] = (float)(s * (C[y[i] * E + e] + 0.1 * rng_normal(&g)));
    }
    char p[600];
    snprintf(p, sizeof p, "%s/X.npy", dir);
    npy_write_f32_2d(p, X, (size_t)N, (size_t)E);
    size_t ns[1] = {(size_t)N};
    snprintf(p, sizeof p, "%s/y.npy", dir);
    npy_write(p, NPY_I64, 1, ns, y);
    // TAC: 30 nouns per class near its centre
    const int M = 30 * K;
    float *T = malloc((size_t)M * E * sizeof *T);
    snprintf(p, sizeof p, "%s/names.txt", dir);
    FILE *f = fopen(p, "w");
    for (int j = 0; j < M; j++) {
        for (int e = 0; e < E; e++) T[(size_t)j * E + e] = C[(j % K) * E + e] + (float)(0.08 * rng_normal(&g));
        fprintf(f, "noun%d_of_%d\n", j, j % K);
    }
    fclose(f);
    snprintf(p, sizeof p, "%s/T.npy", dir);
    npy_write_f32_2d(p, T, (size_t)M, (size_t)E);
    // SIC: raw bank, 30 nouns near each centre then random ones
    float *B = malloc((size_t)Mb * E * sizeof *B);
    snprintf(p, sizeof p, "%s/bank_names.txt", dir);
    f = fopen(p, "w");
    for (int j = 0; j < Mb; j++) {
        const int near = j < 30 * K;
        for (int e = 0; e < E; e++)
            B[(size_t)j * E + e] = (float)(9.0 * (near ? C[(j % K) * E + e] + 0.1 * rng_normal(&g) : 0.5 * rng_normal(&g)));
        if (near) fprintf(f, "snoun%d_of_%d\n", j, j % K);
        else fprintf(f, "random%d\n", j);
    }
    fclose(f);
    snprintf(p, sizeof p, "%s/bank.npy", dir);
    npy_write_f32_2d(p, B, (size_t)Mb, (size_t)E);
    free(C), free(X), free(y), free(T), free(B);
}

static const char *heads_args(char *buf, size_t n, const char *dir, const char *run, const char *extra) {
    snprintf(buf, n,
             "run /dev/null data.image_features=%s/X.npy data.labels=%s/y.npy "
             "nouns.features=%s/T.npy nouns.names=%s/names.txt sic.noun_features=%s/bank.npy "
             "sic.noun_names=%s/bank_names.txt run.dir=%s/%s run.cache_dir=%s/cache "
             "sic.gamma_r=40 sic.xi_a=10 sic.epochs=30 sic.lr=1e-3 tac_train.batch=64 %s",
             dir, dir, dir, dir, dir, dir, dir, run, dir, extra);
    return buf;
}

TEST(run_sic_and_tac_train_recover_planted_clusters) {
    const char *dir = test_path("heads_planted");
    mkdir(dir, 0755);
    planted_heads(dir, 5, 32, 600, 600, 42);
    char args[4096], err[16384], p[700];
    int rc = run_laic(heads_args(args, sizeof args, dir, "run", "eval.methods=clip-kmeans,sic,tac-train"),
                      NULL, err, sizeof err);
    REQUIRE(rc == 0, "laic run failed (%d): %s", rc, err);
    snprintf(p, sizeof p, "%s/run/report.json", dir);
    char *json = test_read_file(p, NULL);
    REQUIRE(json, "report.json written");
    const char *m[] = {"sic", "tac-train"};
    for (int i = 0; i < 2; i++) {
        char sec[64];
        snprintf(sec, sizeof sec, "%s\": {", m[i]);
        double acc = json_num(json, m[i], "acc"), nmi = json_num(json, m[i], "nmi");
        printf("    %s: ACC %.4f NMI %.4f\n", m[i], acc, nmi);
        CHECK(acc >= 0.95, "%s recovers the 5 planted clusters: ACC %.3f NMI %.3f", m[i], acc, nmi);
        snprintf(p, sizeof p, "%s/run/predictions/%s.npy", dir, m[i]);
        Npy a;
        CHECK(npy_read(p, &a) == 0 && a.dtype == NPY_I64 && a.count == 600, "predictions/%s.npy (int64, 600)", m[i]);
        npy_free(&a);
    }
    CHECK(strstr(json, "\"selected_by\":\t\"last epoch\"") || strstr(json, "\"selected_by\": \"last epoch\""),
          "sic reports the last epoch by default");
    CHECK(json_num(json, "tac_train", "epochs") == 20 && json_num(json, "tac_train", "tau") == 0.5,
          "K < 100: 20 epochs, tau 0.5 (train_head.py's default branch)");
    CHECK(json_num(json, "sic", "semantic_space") > 0, "semantic space size reported");
    free(json);
    snprintf(p, sizeof p, "%s/run/sic_space.tsv", dir);
    char *tsv = test_read_file(p, NULL);
    CHECK(tsv && strstr(tsv, "bank_row\tnoun") && strstr(tsv, "snoun"), "sic_space.tsv lists the semantic space");
    free(tsv);
    // the authors' selection: best test ACC, said in the report
    rc = run_laic(heads_args(args, sizeof args, dir, "run_sel", "eval.methods=sic sic.select=test_acc"), NULL, err,
                  sizeof err);
    REQUIRE(rc == 0, "select=test_acc run failed: %s", err);
    snprintf(p, sizeof p, "%s/run_sel/report.json", dir);
    json = test_read_file(p, NULL);
    CHECK(json && strstr(json, "peeks at the test labels") && json_num(json, "sic", "best_test_acc") >= 0.95,
          "sic.select=test_acc: the report says the epoch was chosen on test labels");
    free(json);
}

TEST(run_sic_and_tac_train_resume_bit_for_bit) {
    const char *dir = test_path("heads_resume");
    mkdir(dir, 0755);
    planted_heads(dir, 3, 16, 240, 300, 7);
    char args[4096], err[16384], p[700], q[700];
    const char *base = "eval.methods=sic,tac-train sic.epochs=4 tac_train.epochs=4";
    int rc = run_laic(heads_args(args, sizeof args, dir, "full", base), NULL, err, sizeof err);
    REQUIRE(rc == 0, "uninterrupted run failed: %s", err);
    // SIC stops after 2 epochs; the resumed run finishes it and then trains TAC, which also stops
    char extra[512];
    snprintf(extra, sizeof extra, "%s sic.stop_after=2", base);
    rc = run_laic(heads_args(args, sizeof args, dir, "part", extra), NULL, err, sizeof err);
    snprintf(p, sizeof p, "%s/part.partial/sic.ckpt", dir);
    REQUIRE(rc != 0 && strstr(err, "stopped after epoch 2 of 4") && file_exists(p), "sic.stop_after=2: %s", err);
    snprintf(extra, sizeof extra, "%s tac_train.stop_after=3 run.resume=%s/part", base, dir);
    rc = run_laic(heads_args(args, sizeof args, dir, "part", extra), NULL, err, sizeof err);
    snprintf(p, sizeof p, "%s/part.partial/tac-train.ckpt", dir);
    REQUIRE(rc != 0 && strstr(err, "tac-train: stopped after epoch 3 of 4") && file_exists(p), "%s", err);
    snprintf(extra, sizeof extra, "%s run.resume=%s/part", base, dir);
    rc = run_laic(heads_args(args, sizeof args, dir, "part", extra), NULL, err, sizeof err);
    REQUIRE(rc == 0, "resumed run failed: %s", err);
    for (int i = 0; i < 2; i++) {
        const char *m = i ? "tac-train" : "sic";
        Npy a, b;
        snprintf(p, sizeof p, "%s/full/predictions/%s.npy", dir, m);
        snprintf(q, sizeof q, "%s/part/predictions/%s.npy", dir, m);
        REQUIRE(npy_read(p, &a) == 0 && npy_read(q, &b) == 0, "%s", laic_last_error());
        CHECK(a.count == b.count && !memcmp(a.data, b.data, a.count * 8), "%s: resumed == uninterrupted predictions", m);
        npy_free(&a);
        npy_free(&b);
        snprintf(p, sizeof p, "%s/full/%s.ckpt", dir, m);
        snprintf(q, sizeof q, "%s/part/%s.ckpt", dir, m);
        size_t na, nb;
        char *ca = test_read_file(p, &na), *cb = test_read_file(q, &nb);
        CHECK(ca && cb && na == nb && !memcmp(ca, cb, na), "%s: final checkpoints bit-identical", m);
        free(ca);
        free(cb);
    }
    snprintf(p, sizeof p, "%s/part/report.json", dir);
    char *json = test_read_file(p, NULL);
    CHECK(json && json_num(json, "tac_train", "resumed_from_epoch") == 3, "report says where TAC resumed");
    free(json);
    // a resume with another setting is refused in one line, naming it
    snprintf(extra, sizeof extra, "eval.methods=sic sic.epochs=4 sic.lr=5e-4 run.resume=%s/part", dir);
    rc = run_laic(heads_args(args, sizeof args, dir, "other", extra), NULL, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "trained with other settings") && strstr(err, "lr="), "changed lr: %s", err);
}

TEST(run_sic_bank_is_noun_csv) {
    if (!file_exists(NOUNS_DEFAULT_PATH)) SKIP("wordnet-base not installed (make setup)");
    Nouns n;
    REQUIRE(nouns_load(&n, NOUNS_DEFAULT_PATH) == 0, "%s", laic_last_error());
    size_t c1, c2;
    const char **a = sic_bank_words(&n, 1, &c1), **b = sic_bank_words(&n, 0, &c2);
    CHECK(c1 == 82113 && c2 == 82115, "noun.csv as pandas reads it: 82,113 head-words; all synsets 82,115 (%zu, %zu)",
          c1, c2);
    CHECK(!strcmp(b[0], "entity") && !strcmp(a[0], "physical_entity") && !strcmp(a[c1 - 1], "window") &&
              !strcmp(b[c2 - 1], "9/11"),
          "first/last: %s %s .. %s %s", b[0], a[0], a[c1 - 1], b[c2 - 1]);
    free(a);
    free(b);
    nouns_free(&n);
}

TEST(run_heads_bad_inputs) {
    const char *dir = test_path("heads_bad");
    mkdir(dir, 0755);
    planted_heads(dir, 4, 16, 120, 200, 3);
    char p[700];
    // a 3-noun bank for K = 4, and NaN features
    float small[3 * 16];
    for (int i = 0; i < 3 * 16; i++) small[i] = (float)(i % 7) - 3.0f;
    snprintf(p, sizeof p, "%s/small.npy", dir);
    npy_write_f32_2d(p, small, 3, 16);
    Npy x;
    snprintf(p, sizeof p, "%s/X.npy", dir);
    REQUIRE(npy_read(p, &x) == 0, "X");
    ((float *)x.data)[17] = NAN;
    snprintf(p, sizeof p, "%s/Xnan.npy", dir);
    npy_write_f32_2d(p, x.data, x.shape[0], x.shape[1]);
    npy_free(&x);
    char sn[700], xn[700];
    snprintf(sn, sizeof sn, "eval.methods=sic sic.noun_features=%s/small.npy sic.noun_names=", dir);
    snprintf(xn, sizeof xn, "eval.methods=sic data.image_features=%s/Xnan.npy", dir);
    struct { const char *extra, *msg; } cases[] = {
        {sn, "exceed the 3 nouns of its bank"},
        {"eval.methods=sic sic.gamma_u=2", "semantic space is empty"},
        {xn, "NaN"},
        {"eval.methods=sic sic.gamma_r=100000", "sic.gamma_r = 100000"},
        {"eval.methods=tac-train tac_train.batch=1000", "tac_train.batch"},
        {"eval.methods=sic sic.select=test_acc data.labels= kmeans.k=4", "needs eval labels"},
    };
    char args[4096], err[16384], rd[700];
    snprintf(rd, sizeof rd, "%s/run", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = run_laic(heads_args(args, sizeof args, dir, "run", cases[i].extra), NULL, err, sizeof err);
        int nerr = 0;
        for (const char *q = err; (q = strstr(q, "laic: ")); q++) nerr++;
        CHECK(rc != 0 && nerr == 1 && strstr(err, cases[i].msg), "case %zu: one 'laic:' line with '%s', got: %s", i,
              cases[i].msg, err);
        char partial[800];
        snprintf(partial, sizeof partial, "%s.partial", rd);
        CHECK(!file_exists(rd) && !file_exists(partial), "case %zu: no run files left behind", i);
    }
}

TEST(sweep_over_sic_and_tac_train_keys) {
    const char *dir = test_path("heads_sweep");
    mkdir(dir, 0755);
    planted_heads(dir, 3, 16, 180, 240, 11);
    char args[4096], run[4200], err[16384], p[700];
    heads_args(args, sizeof args, dir, "unused",
               "eval.methods=sic,tac-train sic.epochs=3 tac_train.epochs=2 sweep.sic.xi_a=5,10 "
               "sweep.tac_train.lr=1e-3,2e-3");
    // `laic sweep` takes the same arguments as `laic run` (minus run.dir) plus --dir
    const char *rest = strstr(args, " data.");
    snprintf(run, sizeof run, "sweep /dev/null%s --dir %s/s", rest, dir);
    char *rd = strstr(run, " run.dir=");   // drop run.dir: the sweep names its point directories
    if (rd) {
        char *end = strchr(rd + 1, ' ');
        memmove(rd, end, strlen(end) + 1);
    }
    int rc = run_laic(run, NULL, err, sizeof err);
    REQUIRE(rc == 0, "laic sweep failed (%d): %s", rc, err);
    snprintf(p, sizeof p, "%s/s/sweep.csv", dir);
    char *csv = test_read_file(p, NULL);
    REQUIRE(csv, "sweep.csv written");
    CHECK(count_lines(csv) == 5 && strstr(csv, "sic.xi_a") && strstr(csv, "tac_train.lr") &&
              strstr(csv, "sic.acc") && strstr(csv, "tac-train.acc"),
          "a 2×2 grid over sic.xi_a and tac_train.lr, each row with both methods' metrics:\n%s", csv);
    free(csv);
}

// On images: the tiny model encodes the CIFAR-format images (caching the features with their
// row norms, SIC's raw input) and SIC's own bank from a tiny WordNet (its head-words, one template,
// raw features, cached); a second run takes everything from the cache and predicts the same.
TEST(run_sic_on_images_uses_cached_norms_and_bank) {
    const char *wn = "tests/fixtures/data/nouns_tiny/data.noun";
    if (!file_exists(wn)) SKIP("no tiny WordNet fixture");
    const char *dir = test_path("heads_images");
    mkdir(dir, 0755);
    synth_cifar(dir, 30, 15);
    char args[4096], err[65536];
    for (int i = 0; i < 2; i++) {
        snprintf(args, sizeof args,
                 "run /dev/null data.kind=cifar10 data.path=%s model.arch=tiny model.batch=16 model.device=cpu "
                 "nouns.wordnet=%s kmeans.k=3 centers.restarts=2 eval.methods=sic sic.bank=synsets sic.gamma_r=4 "
                 "sic.xi_a=2 sic.epochs=3 sic.neighbors=5 sic.kmeans_restarts=2 sic.gamma_u=0 "
                 "run.dir=%s/run%d run.cache_dir=%s/cache",
                 dir, wn, dir, i, dir);
        int rc = run_laic(args, NULL, err, sizeof err);
        REQUIRE(rc == 0, "run %d failed (%d): %s", i, rc, err);
        if (i == 1)
            CHECK(strstr(err, "sic: neighbours and image centres from cache") && strstr(err, "raw noun features from cache") &&
                      strstr(err, "features from cache") && !strstr(err, "warning"),
                  "second run: image features (with norms), SIC's bank and setup from the cache: %s", err);
    }
    char p[700], q[700];
    snprintf(p, sizeof p, "%s/run0/predictions/sic.npy", dir);
    snprintf(q, sizeof q, "%s/run1/predictions/sic.npy", dir);
    Npy a, b;
    REQUIRE(npy_read(p, &a) == 0 && npy_read(q, &b) == 0, "%s", laic_last_error());
    CHECK(a.count == 15 && a.count == b.count && !memcmp(a.data, b.data, a.count * 8),
          "15 eval predictions, equal from the cache");
    npy_free(&a);
    npy_free(&b);
}
