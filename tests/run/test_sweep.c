/*
 * test_sweep.c — `laic sweep` (host/run/sweep.c, host/cli/cmd_sweep.c) and the stage cache it relies on.
 *  - value lists: commas, '|' for values with commas, a..b ranges; grid and zip point order;
 *  - a λ × seed sweep over precomputed synthetic features: the candidate stage runs once per
 *    distinct upstream input (report.json "cache"), every row equals a lone `laic run` with the
 *    same settings and a cold cache (bit-equal metrics and assignments), the summary's mean ± std
 *    over seeds equals the rows', and --jobs 2 gives the same rows as one job;
 *  - train.loss values with commas are accepted and the rows say training was not run;
 *    ridge.save_c writes C.npy rows sorted by true class;
 *  - bad sweep keys, values, ranges and files fail before anything runs: one error line naming
 *    SWEEP.ini:line (or the argument), non-zero exit, no sweep directory.
 * Data is generated here with the project's own RNG (planted clusters); no Python is needed.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/err.h"
#include "io/npy.h"
#include "rng.h"
#include "run/sweep.h"
#include "../synth.h"
#include "../test.h"

/* Common data overrides; noise high enough that λ and the seed change the results. */
static const char *data_args(char *buf, size_t n, const char *dir, const char *cache) {
    int w = snprintf(buf, n,
             "data.image_features=%s/X.npy data.labels=%s/y.npy nouns.features=%s/T.npy "
             "run.cache_dir=%s eval.methods=clip-kmeans,ours-notrain kmeans.restarts=2 "
             "centers.restarts=2",
             dir, dir, dir, cache);
    if (w < 0 || (size_t)w >= n) buf[0] = 0;   // test paths are short; never pass a cut argument
    return buf;
}

/* CSV line `row` (0 = header) split into fields (quotes honoured); returns the count. */
static int csv_row(const char *text, int row, char fields[][512], int maxf) {
    const char *p = text;
    for (int r = 0; r < row && p; r++) {
        int inq = 0;
        for (; *p && (inq || *p != '\n'); p++)
            if (*p == '"') inq = !inq;
        p = *p ? p + 1 : NULL;
    }
    if (!p || !*p) return 0;
    int nf = 0;
    while (nf < maxf) {
        size_t k = 0;
        int inq = 0;
        for (; *p && (inq || (*p != ',' && *p != '\n')); p++) {
            if (*p == '"') {
                if (inq && p[1] == '"') {
                    if (k < 511) fields[nf][k++] = '"';
                    p++;
                } else inq = !inq;
                continue;
            }
            if (k < 511) fields[nf][k++] = *p;
        }
        fields[nf++][k] = 0;
        if (*p != ',') break;
        p++;
    }
    return nf;
}

static int col_of(const char *csv, const char *name) {
    static char f[64][512];
    int n = csv_row(csv, 0, f, 64);
    for (int i = 0; i < n; i++)
        if (!strcmp(f[i], name)) return i;
    return -1;
}

/* "key": value inside the object named `section` of a report.json text (NaN if absent). */
static double json_num(const char *json, const char *section, const char *key) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", section);
    const char *p = strstr(json, pat);
    if (!p) return NAN;
    snprintf(pat, sizeof pat, "\"%s\":", key);
    p = strstr(p, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

TEST(sweep_value_lists_and_point_order) {
    char **v;
    int n;
    REQUIRE(sweep_parse_values("0.1, 1,5 ,10", "t", &v, &n) == 0, "%s", laic_last_error());
    CHECK(n == 4 && !strcmp(v[0], "0.1") && !strcmp(v[2], "5") && !strcmp(v[3], "10"), "comma list");
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
    REQUIRE(sweep_parse_values("gce|gce,mse|gce,mse,entropy", "t", &v, &n) == 0, "%s", laic_last_error());
    CHECK(n == 3 && !strcmp(v[1], "gce,mse") && !strcmp(v[2], "gce,mse,entropy"), "'|' keeps commas");
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
    REQUIRE(sweep_parse_values("1..5,9", "t", &v, &n) == 0, "%s", laic_last_error());
    CHECK(n == 6 && !strcmp(v[0], "1") && !strcmp(v[4], "5") && !strcmp(v[5], "9"), "a..b range");
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
    CHECK(sweep_parse_values("5..1", "x.ini:3", &v, &n) != 0 && strstr(laic_last_error(), "x.ini:3: bad range"),
          "reversed range: %s", laic_last_error());
    CHECK(sweep_parse_values("1,,2", "x.ini:4", &v, &n) != 0 && strstr(laic_last_error(), "empty value"),
          "empty item: %s", laic_last_error());

    SweepSpec s;
    sweep_spec_init(&s);
    REQUIRE(sweep_spec_arg(&s, "sweep.ridge.lambda=1,10,100") == 0 && sweep_spec_arg(&s, "sweep.run.seed=1..2") == 0,
            "%s", laic_last_error());
    CHECK(sweep_npoints(&s) == 6, "grid of 3 x 2");
    int idx[2];
    sweep_point(&s, 3, idx);
    CHECK(idx[0] == 1 && idx[1] == 1, "grid: first axis slowest (point 3 = λ 10, seed 2)");
    CHECK(sweep_spec_arg(&s, "sweep.ridge.lambda=2") != 0 && strstr(laic_last_error(), "swept twice"),
          "duplicate axis: %s", laic_last_error());
    sweep_spec_free(&s);
    sweep_spec_init(&s);
    REQUIRE(sweep_spec_arg(&s, "sweep.mode=zip") == 0 && sweep_spec_arg(&s, "sweep.knn.k=3,5,10") == 0 &&
            sweep_spec_arg(&s, "sweep.nouns.gamma=1,2,3") == 0, "%s", laic_last_error());
    sweep_point(&s, 2, idx);
    CHECK(sweep_npoints(&s) == 3 && idx[0] == 2 && idx[1] == 2, "zip pairs the i-th values");
    sweep_spec_free(&s);
}

TEST(sweep_reuses_upstream_and_rows_match_single_runs) {
    char dir[512], cache[600], args[8192], dargs[4096], err[16384], p[1200];
    snprintf(dir, sizeof dir, "%s", test_path("sweep"));
    mkdir(dir, 0755);
    synth_planted(dir, 4, 16, 400, 120, 0.35, 4242, 7);
    snprintf(cache, sizeof cache, "%s/cache", dir);
    snprintf(args, sizeof args, "sweep /dev/null sweep.ridge.lambda=0.01,10 sweep.run.seed=1..2 %s --dir %s/s1",
             data_args(dargs, sizeof dargs, dir, cache), dir);
    int rc = run_laic(args, NULL, err, sizeof err);
    REQUIRE(rc == 0, "laic sweep failed (%d): %s", rc, err);
    snprintf(p, sizeof p, "%s/s1/sweep.csv", dir);
    char *csv = test_read_file(p, NULL);
    REQUIRE(csv, "sweep.csv written");
    CHECK(count_lines(csv) == 5, "header + 4 rows, got %d lines", count_lines(csv));
    const int c_cand = col_of(csv, "cache.candidates"), c_img = col_of(csv, "cache.image_features");
    const int c_ck = col_of(csv, "cache.clip-kmeans"), c_cka = col_of(csv, "clip-kmeans.acc");
    const int c_acc = col_of(csv, "ours-notrain.acc"), c_nmi = col_of(csv, "ours-notrain.nmi");
    const int c_hq = col_of(csv, "pseudo_labels.high_quality_fraction"), c_dir = col_of(csv, "run_dir");
    const int c_status = col_of(csv, "status"), c_lam = col_of(csv, "ridge.lambda"), c_seed = col_of(csv, "run.seed");
    REQUIRE(c_cand > 0 && c_img > 0 && c_acc > 0 && c_nmi > 0 && c_hq > 0 && c_dir > 0 && c_status > 0 &&
            c_lam == 1 && c_seed == 2 && c_ck > 0 && c_cka > 0, "sweep.csv columns");
    // grid order λ-major; the candidate stage depends on the seed, not on λ: it runs once per seed
    static char f[64][512];
    const char *want_cache[4] = {"miss", "miss", "hit", "hit"};
    const char *want_lam[4] = {"0.01", "0.01", "10", "10"}, *want_seed[4] = {"1", "2", "1", "2"};
    double acc[4], hq[4], ck_acc[4];
    for (int r = 0; r < 4; r++) {
        csv_row(csv, r + 1, f, 64);
        CHECK(!strcmp(f[c_status], "ok"), "row %d ok: %s", r, f[c_status]);
        CHECK(!strcmp(f[c_lam], want_lam[r]) && !strcmp(f[c_seed], want_seed[r]), "row %d is λ %s seed %s", r,
              want_lam[r], want_seed[r]);
        CHECK(!strcmp(f[c_cand], want_cache[r]), "row %d: candidates %s, want %s", r, f[c_cand], want_cache[r]);
        CHECK(!strcmp(f[c_img], "precomputed"), "row %d: image features precomputed", r);
        CHECK(!strcmp(f[c_ck], want_cache[r]), "row %d: clip-kmeans %s, want %s (λ-independent)", r, f[c_ck],
              want_cache[r]);
        ck_acc[r] = strtod(f[c_cka], NULL);
        acc[r] = strtod(f[c_acc], NULL);
        hq[r] = strtod(f[c_hq], NULL);
        // λ = 10 (the paper's value) recovers the planted classes; λ = 0.01 over-fits the nouns
        CHECK(acc[r] >= 0.25 && acc[r] <= 1 && (r < 2 || acc[r] > 0.8), "row %d: ACC %.3f", r, acc[r]);
    }
    CHECK(hq[0] != hq[2] || acc[0] != acc[2], "λ changes the result (else the sweep proves nothing)");
    CHECK(ck_acc[0] == ck_acc[2] && ck_acc[1] == ck_acc[3], "cached clip-kmeans rows equal the computed ones");
    // a point equals a lone laic run with a cold cache: same metrics to the last bit, same labels
    snprintf(args, sizeof args, "run /dev/null ridge.lambda=10 run.seed=2 %s run.dir=%s/single",
             data_args(dargs, sizeof dargs, dir, test_path("cold-cache")), dir);
    rc = run_laic(args, NULL, err, sizeof err);
    REQUIRE(rc == 0, "single run failed: %s", err);
    CHECK(strstr(err, "candidates: ") && !strstr(err, "nouns from cache"), "single run computed its candidates");
    snprintf(p, sizeof p, "%s/single/report.json", dir);
    char *json = test_read_file(p, NULL);
    REQUIRE(json, "single report.json");
    csv_row(csv, 4, f, 64);
    CHECK(json_num(json, "ours-notrain", "acc") == strtod(f[c_acc], NULL) &&
              json_num(json, "ours-notrain", "nmi") == strtod(f[c_nmi], NULL) &&
              json_num(json, "pseudo_labels", "high_quality_fraction") == strtod(f[c_hq], NULL),
          "row 3 equals the single run: ACC %s vs %.17g", f[c_acc], json_num(json, "ours-notrain", "acc"));
    free(json);
    Npy a, b;
    char pa[1200];
    snprintf(pa, sizeof pa, "%s/assignments.npy", f[c_dir]);
    snprintf(p, sizeof p, "%s/single/assignments.npy", dir);
    REQUIRE(npy_read(pa, &a) == 0, "%s", laic_last_error());
    REQUIRE(npy_read(p, &b) == 0, "%s", laic_last_error());
    CHECK(a.count == b.count && !memcmp(a.data, b.data, a.count * 8), "bit-equal assignments");
    npy_free(&a);
    npy_free(&b);
    // summary: one row per λ, n = 2 seeds, mean and sample std of the rows
    snprintf(p, sizeof p, "%s/s1/sweep_summary.csv", dir);
    char *sum = test_read_file(p, NULL);
    REQUIRE(sum, "sweep_summary.csv");
    int s_n = col_of(sum, "n"), s_m = col_of(sum, "ours-notrain.acc.mean"), s_s = col_of(sum, "ours-notrain.acc.std");
    REQUIRE(s_n > 0 && s_m > 0 && s_s > 0 && count_lines(sum) == 3, "summary shape: %s", sum);
    for (int g = 0; g < 2; g++) {
        csv_row(sum, g + 1, f, 64);
        double m = (acc[2 * g] + acc[2 * g + 1]) / 2, sd = fabs(acc[2 * g] - acc[2 * g + 1]) / sqrt(2.0);
        CHECK(!strcmp(f[0], want_lam[2 * g]) && !strcmp(f[s_n], "2"), "group %d: λ %s, n 2", g, f[0]);
        CHECK(fabs(strtod(f[s_m], NULL) - m) < 1e-12 && fabs(strtod(f[s_s], NULL) - sd) < 1e-12,
              "group %d mean %s std %s vs %.6f %.6f", g, f[s_m], f[s_s], m, sd);
    }
    free(sum);
    snprintf(p, sizeof p, "%s/s1/sweep.json", dir);
    json = test_read_file(p, NULL);
    CHECK(json && strstr(json, "\"summary\"") && strstr(json, "\"points\""), "sweep.json written");
    free(json);
    // --jobs 2: same rows (metrics), same order
    snprintf(args, sizeof args, "sweep /dev/null sweep.ridge.lambda=0.01,10 sweep.run.seed=1..2 %s --dir %s/s2 --jobs 2",
             data_args(dargs, sizeof dargs, dir, cache), dir);
    rc = run_laic(args, NULL, err, sizeof err);
    REQUIRE(rc == 0, "laic sweep --jobs 2 failed (%d): %s", rc, err);
    snprintf(p, sizeof p, "%s/s2/sweep.csv", dir);
    char *csv2 = test_read_file(p, NULL);
    REQUIRE(csv2, "sweep.csv (--jobs 2)");
    static char g2[64][512];
    for (int r = 1; r <= 4; r++) {
        int n1 = csv_row(csv, r, f, 64), n2 = csv_row(csv2, r, g2, 64), same = n1 == n2;
        for (int c = 0; c < n1 && same; c++)
            same = c == c_dir || c == col_of(csv, "time_s") || !strcmp(f[c], g2[c]) ||
                   (c >= c_img && c < c_img + 5 && !strcmp(g2[c], "hit"));   // cache.*: warm from the first sweep
        CHECK(same, "row %d equal with --jobs 2", r);
    }
    free(csv2);
    // --jobs 2 on a cold cache: the points of seed 2 run at the same time and both compute and
    // store the seed-2 entries (same key, same bytes); rows equal the first sweep's all the same
    char cache3[700];
    snprintf(cache3, sizeof cache3, "%s/cache3", dir);
    snprintf(args, sizeof args, "sweep /dev/null sweep.ridge.lambda=0.01,10 sweep.run.seed=1..2 %s --dir %s/s3 --jobs 2",
             data_args(dargs, sizeof dargs, dir, cache3), dir);
    rc = run_laic(args, NULL, err, sizeof err);
    REQUIRE(rc == 0, "laic sweep --jobs 2, cold cache, failed (%d): %s", rc, err);
    snprintf(p, sizeof p, "%s/s3/sweep.csv", dir);
    char *csv3 = test_read_file(p, NULL);
    REQUIRE(csv3, "sweep.csv (--jobs 2, cold cache)");
    for (int r = 1; r <= 4; r++) {
        int n1 = csv_row(csv, r, f, 64), n3 = csv_row(csv3, r, g2, 64), same = n1 == n3;
        for (int c = 0; c < n1 && same; c++)
            same = c == c_dir || c == col_of(csv, "time_s") || !strcmp(f[c], g2[c]) ||
                   (c >= c_img && c < c_img + 5);   // cache.*: which job computed an entry varies
        CHECK(same, "row %d equal with --jobs 2 on a cold cache", r);
    }
    free(csv3);
    free(csv);
}

TEST(sweep_train_loss_values_and_saved_c) {
    char dir[512], args[8192], dargs[4096], err[16384], p[1200];
    snprintf(dir, sizeof dir, "%s", test_path("sweep_loss"));
    mkdir(dir, 0755);
    synth_planted(dir, 3, 12, 150, 45, 0.1, 4242, 7);
    char cache[600];
    snprintf(cache, sizeof cache, "%s/cache", dir);
    snprintf(p, sizeof p, "%s/loss.ini", dir);
    const char *ini = "; loss ablation (two of the seven)\n[sweep]\nname = loss\n"
                      "train.loss = gce | gce,mse,entropy   ; inline comment\n[ridge]\nsave_c = true\n";
    test_write_file(p, ini, strlen(ini));
    snprintf(args, sizeof args, "sweep /dev/null %s %s --dir %s/s", p, data_args(dargs, sizeof dargs, dir, cache), dir);
    int rc = run_laic(args, NULL, err, sizeof err);
    REQUIRE(rc == 0, "loss sweep failed (%d): %s", rc, err);
    snprintf(p, sizeof p, "%s/s/sweep.csv", dir);
    char *csv = test_read_file(p, NULL);
    REQUIRE(csv, "sweep.csv");
    static char f[64][512];
    int c_loss = col_of(csv, "train.loss"), c_note = col_of(csv, "note"), c_dir = col_of(csv, "run_dir");
    REQUIRE(c_loss > 0 && c_note > 0 && c_dir > 0, "columns");
    csv_row(csv, 2, f, 64);
    CHECK(!strcmp(f[c_loss], "gce,mse,entropy"), "value with commas survives the CSV: '%s'", f[c_loss]);
    CHECK(strstr(f[c_note], "training not run") != NULL, "row notes training was not run: '%s'", f[c_note]);
    char cp[1300], lp[1300];
    snprintf(cp, sizeof cp, "%s/C.npy", f[c_dir]);
    snprintf(lp, sizeof lp, "%s/C_labels.npy", f[c_dir]);
    Npy C, L;
    REQUIRE(npy_read(cp, &C) == 0 && npy_read(lp, &L) == 0, "C.npy / C_labels.npy: %s", laic_last_error());
    CHECK(C.ndim == 2 && C.shape[0] == 150 && L.count == 150, "all 150 rows kept (< 2000)");
    int sorted = 1;
    const int64_t *l = L.data;
    for (size_t i = 1; i < L.count; i++) sorted &= l[i] >= l[i - 1];
    CHECK(sorted && l[0] == 0 && l[149] == 2, "C rows sorted by true class");
    npy_free(&C);
    npy_free(&L);
    free(csv);
}

TEST(sweep_bad_inputs_fail_before_anything_runs) {
    char dir[512], args[8192], dargs[4096], err[8192], ini[700], sd[700];
    snprintf(dir, sizeof dir, "%s", test_path("sweep_bad"));
    mkdir(dir, 0755);
    synth_planted(dir, 3, 8, 60, 15, 0.1, 4242, 7);
    snprintf(ini, sizeof ini, "%s/bad.ini", dir);
    snprintf(sd, sizeof sd, "%s/out", dir);
    struct { const char *file, *arg, *msg; } cases[] = {
        {"[sweep]\nridge.lambda = 1,10\nridge.lamda = 1,2\n", "", "bad.ini:3: unknown key 'lamda' in [ridge]"},
        {"[sweep]\n\nridge.lambda = 1,-5\n", "", "bad.ini:3: ridge.lambda = -5 is out of range"},
        {"[sweep]\nknn.k = 5..1\n", "", "bad.ini:2: bad range '5..1'"},
        {"[sweep]\nbogus.k = 1,2\n", "", "bad.ini:2: unknown section [bogus]"},
        {"[sweep]\nmode = zip\nknn.k = 1,2\nnouns.gamma = 1,2,3\n", "", "bad.ini:4: sweep.mode = zip needs equal lengths"},
        {"[sweep]\nmode = cube\n", "", "bad.ini:2: sweep.mode: 'cube' is not one of grid|zip"},
        {"[sweep]\nrun.dir = a,b\n", "", "bad.ini:2: run.dir cannot be swept"},
        {"[sweep]\nknn.k = 3\n[kmeans]\ninit = furthest\n", "", "bad.ini:4: kmeans.init: 'furthest' is not one of"},
        {"knn.k = 3\n", "", "bad.ini:1: key 'knn.k' outside any [section]"},
        {"[sweep]\nknn.k = 3\n", "sweep.kmeans.k=2,x", "argument 'sweep.kmeans.k=2,x': kmeans.k: 'x' is not an integer"},
        {"; nothing\n", "", "sweep: no axes"},
        {NULL, "", "nonexistent.ini: cannot open sweep file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].file) test_write_file(ini, cases[i].file, strlen(cases[i].file));
        snprintf(args, sizeof args, "sweep /dev/null %s %s %s --dir %s", cases[i].file ? ini : "/nonexistent.ini",
                 cases[i].arg, data_args(dargs, sizeof dargs, dir, test_path("bad-cache")), sd);
        int rc = run_laic(args, NULL, err, sizeof err);
        CHECK(rc != 0, "case %zu must fail", i);
        CHECK(count_lines(err) == 1 && strstr(err, cases[i].msg), "case %zu: one line with '%s', got: %s", i,
              cases[i].msg, err);
        CHECK(!file_exists(sd) && !file_exists(test_path("bad-cache")), "case %zu: nothing created", i);
    }
    // a point that fails at run time (K > N is only known once the data is read): the others run,
    // its row says why, no run directory for it, exit status non-zero
    {
        char fd[700], p[1400];
        snprintf(fd, sizeof fd, "%s/partial", dir);
        snprintf(args, sizeof args, "sweep /dev/null sweep.kmeans.k=3,100 %s --dir %s",
                 data_args(dargs, sizeof dargs, dir, test_path("fail-cache")), fd);
        int rc = run_laic(args, NULL, err, sizeof err);
        CHECK(rc == 1 && strstr(err, "1 of 2 sweep points failed"), "failing point: rc %d, %s", rc, err);
        snprintf(p, sizeof p, "%s/sweep.csv", fd);
        char *csv = test_read_file(p, NULL);
        REQUIRE(csv, "sweep.csv still written");
        static char f[64][512];
        int c_status = col_of(csv, "status"), c_dir = col_of(csv, "run_dir");
        csv_row(csv, 1, f, 64);
        CHECK(!strcmp(f[c_status], "ok"), "point 0 ok: %s", f[c_status]);
        csv_row(csv, 2, f, 64);
        CHECK(!strncmp(f[c_status], "failed: ", 8) &&
                  strstr(f[c_status], "kmeans.k = 100 exceeds the 60 fit images") != NULL, "point 1: %s",
              f[c_status]);
        CHECK(!file_exists(f[c_dir]), "no run directory for the failed point");
        free(csv);
    }
    // --plot with a missing plot script fails before any point runs
    setenv("LAIC_PLOT_SCRIPT", "/nonexistent/plot.py", 1);
    snprintf(args, sizeof args, "sweep /dev/null sweep.knn.k=3 %s --dir %s --plot",
             data_args(dargs, sizeof dargs, dir, test_path("bad-cache")), sd);
    int rc = run_laic(args, NULL, err, sizeof err);
    unsetenv("LAIC_PLOT_SCRIPT");
    CHECK(rc != 0 && count_lines(err) == 1 && strstr(err, "/nonexistent/plot.py: plot script not found"),
          "--plot without its script: %s", err);
    CHECK(!file_exists(sd), "--plot failure: nothing created");
    // an existing sweep directory is refused before anything runs
    mkdir(sd, 0755);
    snprintf(args, sizeof args, "sweep /dev/null sweep.knn.k=3 %s --dir %s",
             data_args(dargs, sizeof dargs, dir, test_path("bad-cache")), sd);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc != 0 && count_lines(err) == 1 && strstr(err, "sweep directory already exists"), "existing dir: %s", err);
    CHECK(!file_exists(test_path("bad-cache")), "existing dir: no point ran");
}
