/*
 * test_reliability_run.c — `laic run` and `laic sweep` against corrupted caches, concurrent runs,
 * odd run directories and crashes (issue 13, items 2, 3, 4, 5, 9, 10). Runs use a tiny random-init
 * model on a small CIFAR-format dataset with the tiny WordNet fixture as the noun bank (~1 s a
 * run), or planted precomputed features (tests/synth.h).
 *  - every cache entry (image features and their index, nouns, candidates, clip-kmeans and tac
 *    predictions) whose data bytes change behind an intact header is detected: one warning, the
 *    stage recomputes, the entry is replaced, the metrics equal a clean run's;
 *  - a cached index out of range (image-feature index, a negative cached label) with a matching
 *    checksum is refused by the range checks and recomputed, never used (was a segfault);
 *  - run.dir "X/" works and leaves no directory that blocks a re-run;
 *  - run.dir (and a sweep's --dir) is claimed at start: a second run fails at once naming the
 *    holder's pid and leaves the first one's <dir>.partial alone; a stale claim does not block,
 *    nor does the claim of a run killed with kill -9;
 *  - the finished run's rename is fsynced in the parent directory, and its files before it;
 *  - errors name the config file and line (kmeans.k, data.path) and the noun features (ridge).
 */
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/err.h"
#include "io/npy.h"
#include "run/pipeline.h"
#include "run/run.h"
#include "../fsync_log.h"
#include "../synth.h"
#include "../test.h"

#define NOUNS_TINY "tests/fixtures/data/nouns_tiny/data.noun"

/* Value of "key": <number> after "section": in report.json text (NAN when absent). */
static double jnum(const char *json, const char *section, const char *key) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", section);
    const char *p = json ? strstr(json, pat) : NULL;
    if (!p) return NAN;
    snprintf(pat, sizeof pat, "\"%s\":", key);
    p = strstr(p, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

/* `laic run` on dir's CIFAR data with the tiny model into dir/<run>, caches in dir/cache. */
static int tiny_run(const char *dir, const char *run, const char *extra, char *err, size_t errn) {
    char args[4096];
    snprintf(args, sizeof args,
             "run /dev/null data.kind=cifar10 data.path=%s model.arch=tiny model.batch=16 "
             "model.device=cpu nouns.wordnet=" NOUNS_TINY " kmeans.k=3 kmeans.restarts=2 "
             "centers.restarts=2 tac.restarts=2 eval.methods=clip-kmeans,tac,ours-notrain run.dir=%s/%s "
             "run.cache_dir=%s/cache %s",
             dir, dir, run, dir, extra ? extra : "");
    return run_laic(args, NULL, err, errn);
}

static char *read_in(const char *dir, const char *run, const char *name) {
    char p[900];
    snprintf(p, sizeof p, "%s/%s/%s", dir, run, name);
    return test_read_file(p, NULL);
}

static const char *k_methods[] = {"clip-kmeans", "tac", "ours-notrain"};

/* The metrics and assignments of run b equal those of run a. */
static int same_results(const char *dir, const char *a, const char *b) {
    char *ja = read_in(dir, a, "report.json"), *jb = read_in(dir, b, "report.json");
    int ok = ja && jb;
    for (int m = 0; ok && m < 3; m++)
        for (int k = 0; k < 3; k++) {
            const char *key = k == 0 ? "nmi" : k == 1 ? "acc" : "ari";
            double x = jnum(ja, k_methods[m], key), y = jnum(jb, k_methods[m], key);
            ok &= !isnan(x) && x == y;
        }
    free(ja);
    free(jb);
    size_t na = 0, nb = 0;
    char pa[900], pb[900];
    snprintf(pa, sizeof pa, "%s/%s/assignments.npy", dir, a);
    snprintf(pb, sizeof pb, "%s/%s/assignments.npy", dir, b);
    char *xa = test_read_file(pa, &na), *xb = test_read_file(pb, &nb);
    ok &= xa && xb && na == nb && !memcmp(xa, xb, na);
    free(xa);
    free(xb);
    return ok;
}

/* Flips one bit of the last data byte of a .npy file (the header stays intact). */
static void flip_last_byte(const char *path) {
    size_t n;
    unsigned char *b = test_read_file(path, &n);
    if (!b || !n) return;
    b[n - 1] ^= 0x10;
    test_write_file(path, b, n);
    free(b);
}

/* Paths of the cache's .npy entries (up to 16), sorted by name. */
static int cache_entries(const char *dir, char out[16][900]) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "ls %s/cache/*.npy 2>/dev/null", dir);
    FILE *f = popen(cmd, "r");
    int n = 0;
    while (f && n < 16 && fgets(out[n], 900, f)) {
        out[n][strcspn(out[n], "\n")] = 0;
        n++;
    }
    if (f) pclose(f);
    return n;
}

static int count_substr(const char *s, const char *sub) {
    int n = 0;
    for (const char *q = s; (q = strstr(q, sub)); q++) n++;
    return n;
}

/* The stderr of a failed run holds log lines ("[ time] ...") and exactly one "laic: " error line. */
static int one_error(const char *err) { return count_substr(err, "laic: ") == 1; }

TEST(rel_run_cache_entries_verified_recomputed_replaced) {
    if (!file_exists(NOUNS_TINY)) SKIP("no tiny WordNet fixture");
    const char *dir = test_path("relcache");
    mkdir(dir, 0755);
    synth_cifar(dir, 30, 15);
    static char err[65536];
    int rc = tiny_run(dir, "clean", NULL, err, sizeof err);
    REQUIRE(rc == 0, "clean run (%d): %s", rc, err);
    char e[16][900];
    int n = cache_entries(dir, e);
    // image features + index + row norms (SIC's raw features) for both splits, nouns,
    // candidates + their info, clip-kmeans, tac. The norm entries are read only after their
    // split's features passed, so flipping all of them recomputes the features and rewrites the
    // norms without a warning of their own.
    REQUIRE(n == 11, "11 cache entries, found %d", n);
    for (int i = 0; i < n; i++) flip_last_byte(e[i]);
    rc = tiny_run(dir, "flipped", NULL, err, sizeof err);
    REQUIRE(rc == 0, "run over corrupted caches (%d): %s", rc, err);
    // the image-feature entries are checked before their index files, the candidates before
    // their info: a corrupted first file makes both recompute; every other entry warns alone
    const char *kinds[] = {"image feature cache", "noun feature cache", "candidate cache", "clip-kmeans cache",
                           "tac cache"};
    const int want[] = {2, 1, 1, 1, 1};
    for (int k = 0; k < 5; k++)
        CHECK(count_substr(err, kinds[k]) == want[k], "%d warning(s) for the %s: %s", want[k], kinds[k], err);
    CHECK(count_substr(err, "failed its check (content hash mismatch") == 6, "6 content-hash warnings");
    CHECK(!strstr(err, "from cache"), "no corrupted entry was used");
    CHECK(same_results(dir, "clean", "flipped"), "metrics and assignments equal the clean run's");
    char *json = read_in(dir, "flipped", "report.json");
    CHECK(json && !strstr(json, "\"hit\""), "report.cache: every stage a miss");
    free(json);
    // the second files on their own (the first ones intact): image indices, candidate info
    for (int i = 0; i < n; i++)
        if (strstr(e[i], "-keep.npy") || strstr(e[i], "-info.npy")) flip_last_byte(e[i]);
    rc = tiny_run(dir, "flipped_keep", NULL, err, sizeof err);
    CHECK(rc == 0 && count_substr(err, "image feature index cache") == 2 &&
              count_substr(err, "candidate info cache") == 1 && same_results(dir, "clean", "flipped_keep"),
          "corrupted index and info files: 3 warnings, same results (%d): %s", rc, err);
    // replaced: the next run hits every entry, without a warning
    rc = tiny_run(dir, "again", NULL, err, sizeof err);
    CHECK(rc == 0 && !strstr(err, "warning") && count_substr(err, "from cache") == 6 &&
              same_results(dir, "clean", "again"), "entries replaced: all hits (%d): %s", rc, err);
    // an entry without its checksum sidecar, or with a sidecar of another key, is not used
    char sp[1000];
    snprintf(sp, sizeof sp, "%s.sum", e[0]);
    unlink(sp);
    snprintf(sp, sizeof sp, "%s.sum", e[n - 1]);
    char *sum = test_read_file(sp, NULL);
    REQUIRE(sum && strstr(sum, "key "), "sidecar text");
    char *k = strstr(sum, "key ") + 4;
    *k = *k == 'X' ? 'Y' : 'X';
    test_write_file(sp, sum, strlen(sum));
    free(sum);
    rc = tiny_run(dir, "nosum", NULL, err, sizeof err);
    CHECK(rc == 0 && strstr(err, "no checksum sidecar") && strstr(err, "made under another key") &&
              same_results(dir, "clean", "nosum"), "missing / foreign sidecar (%d): %s", rc, err);
}

/* Rewrites a cache entry's data (a valid .npy) and, when it has a sidecar, that sidecar's hash to
 * match: a hostile but self-consistent entry that only the range checks can refuse. The hash is
 * run_hash64 with the cache's seed (host/run/run.c CACHE_HASH_SEED). */
static void rewrite_entry(const char *path, NpyDtype t, size_t n, const void *data) {
    size_t shape[1] = {n};
    npy_write(path, t, 1, shape, data);
    char sp[1000];
    snprintf(sp, sizeof sp, "%s.sum", path);
    char *sum = test_read_file(sp, NULL);
    char *h = sum ? strstr(sum, "hash ") : NULL;
    if (!h) {
        free(sum);
        return;
    }
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx",
             (unsigned long long)run_hash64(data, n * npy_dtype_size(t), 0x6c61696363616368ull));
    memcpy(h + 5, hex, 16);
    test_write_file(sp, sum, strlen(sum));
    free(sum);
}

TEST(rel_run_cached_indices_out_of_range_are_recomputed) {
    if (!file_exists(NOUNS_TINY)) SKIP("no tiny WordNet fixture");
    const char *dir = test_path("relindex");
    mkdir(dir, 0755);
    synth_cifar(dir, 30, 15);
    static char err[65536];
    int rc = tiny_run(dir, "clean", NULL, err, sizeof err);
    REQUIRE(rc == 0, "clean run (%d): %s", rc, err);
    char e[16][900];
    int n = cache_entries(dir, e);
    REQUIRE(n == 11, "11 cache entries, found %d", n);
    // image-feature index files: a huge index, a negative one, one out of order
    const int64_t bad[3][2] = {{0, 1000000000}, {-5, 1}, {3, 2}};
    for (int c = 0; c < 3; c++) {
        for (int i = 0; i < n; i++) {
            if (!strstr(e[i], "-keep.npy")) continue;
            Npy k;
            REQUIRE(npy_read(e[i], &k) == 0, "%s", laic_last_error());
            int64_t *v = k.data;
            v[0] = bad[c][0];
            v[k.count - 1] = bad[c][1];
            if (c == 2) v[1] = bad[c][0], v[2] = bad[c][1];
            rewrite_entry(e[i], NPY_I64, k.count, v);
            npy_free(&k);
        }
        char run[32];
        snprintf(run, sizeof run, "keep%d", c);
        rc = tiny_run(dir, run, NULL, err, sizeof err);
        char partial[1000];
        snprintf(partial, sizeof partial, "%s/%s.partial", dir, run);
        CHECK(rc == 0 && count_substr(err, "index out of range or out of order") == 2 && !file_exists(partial) &&
                  same_results(dir, "clean", run),
              "case %d: bad cached indices refused, recomputed, same results (%d): %s", c, rc, err);
    }
    // a negative (or too large) cached label of clip-kmeans / tac: recomputed, not a failed run
    for (int i = 0; i < n; i++) {
        if (!strstr(e[i], "clip-kmeans-") && !strstr(e[i], "/tac-")) continue;
        Npy p;
        REQUIRE(npy_read(e[i], &p) == 0, "%s", laic_last_error());
        ((int64_t *)p.data)[0] = strstr(e[i], "/tac-") ? 3 : -1;   // K = 3
        rewrite_entry(e[i], NPY_I64, p.count, p.data);
        npy_free(&p);
    }
    rc = tiny_run(dir, "labels", NULL, err, sizeof err);
    CHECK(rc == 0 && count_substr(err, "not int64 labels in [0,K)") == 2 && same_results(dir, "clean", "labels"),
          "bad cached labels recomputed (%d): %s", rc, err);
}

/* Planted features in dir (K 3, E 16, 60 images, 30 nouns) and the run arguments for them. */
static const char *planted(const char *dir, char *buf, size_t n, const char *extra) {
    char x[700];
    snprintf(x, sizeof x, "%s/X.npy", dir);
    if (!file_exists(x)) synth_planted(dir, 3, 16, 60, 30, 0.1, 42, 1);
    snprintf(buf, n,
             "data.image_features=%s/X.npy data.labels=%s/y.npy nouns.features=%s/T.npy "
             "nouns.names=%s/names.txt run.cache_dir=%s/cache eval.methods=clip-kmeans,ours-notrain "
             "kmeans.restarts=2 centers.restarts=2 %s",
             dir, dir, dir, dir, dir, extra);
    return buf;
}

TEST(rel_run_dir_with_trailing_slash) {
    const char *dir = test_path("relslash");
    mkdir(dir, 0755);
    char pa[2048], args[4096], err[16384], p[900];
    snprintf(args, sizeof args, "run /dev/null %s", planted(dir, pa, sizeof pa, ""));
    char full[4200];
    snprintf(full, sizeof full, "%s run.dir=%s/out/", args, dir);
    int rc = run_laic(full, NULL, err, sizeof err);
    CHECK(rc == 0, "run.dir ending in '/' runs (%d): %s", rc, err);
    snprintf(p, sizeof p, "%s/out/report.json", dir);
    CHECK(file_exists(p), "the run is in out/");
    snprintf(p, sizeof p, "%s/out/.partial", dir);
    CHECK(!file_exists(p), "no out/.partial inside it");
    snprintf(p, sizeof p, "%s/out.partial", dir);
    CHECK(!file_exists(p), "no out.partial left");
    snprintf(p, sizeof p, "%s/out.lock", dir);
    CHECK(!file_exists(p), "no claim left");
    // the same run.dir again: refused because the run exists (not an empty leftover)
    rc = run_laic(full, NULL, err, sizeof err);
    CHECK(rc != 0 && count_lines(err) == 1 && strstr(err, "already exists"), "re-run refused: %s", err);
    // "out//" and a sweep --dir with a slash
    snprintf(full, sizeof full, "%s run.dir=%s/out2//", args, dir);
    rc = run_laic(full, NULL, err, sizeof err);
    snprintf(p, sizeof p, "%s/out2/report.json", dir);
    CHECK(rc == 0 && file_exists(p), "run.dir ending in '//' (%d): %s", rc, err);
    snprintf(full, sizeof full, "sweep /dev/null sweep.knn.k=3 %s --dir %s/sw/", planted(dir, pa, sizeof pa, ""), dir);
    rc = run_laic(full, NULL, err, sizeof err);
    snprintf(p, sizeof p, "%s/sw/sweep.csv", dir);
    CHECK(rc == 0 && file_exists(p), "sweep --dir ending in '/' (%d): %s", rc, err);
}

TEST(rel_run_dir_is_claimed_at_start) {
    const char *dir = test_path("relclaim");
    mkdir(dir, 0755);
    char pa[2048], args[4096], err[16384], rd[900], over[1000], marker[1100];
    snprintf(rd, sizeof rd, "%s/run", dir);
    snprintf(over, sizeof over, "run.dir=%s", rd);
    // a first run claims run.dir and is busy in its .partial
    Run first;
    char *ov[1] = {over};
    REQUIRE(run_init(&first, "/dev/null", 1, ov, 0) == 0, "%s", laic_last_error());
    char partial[1000];
    snprintf(partial, sizeof partial, "%s.partial", rd);
    mkdir(partial, 0755);
    snprintf(marker, sizeof marker, "%s/report.json", partial);
    test_write_file(marker, "{}", 2);
    // a second run with the same run.dir fails at once and leaves the first one's files alone
    snprintf(args, sizeof args, "run /dev/null %s run.dir=%s", planted(dir, pa, sizeof pa, ""), rd);
    int rc = run_laic(args, NULL, err, sizeof err);
    char pid[32];
    snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
    CHECK(rc != 0 && count_lines(err) == 1 && strstr(err, "in use") && strstr(err, pid) && strstr(err, rd),
          "second run refused naming the holder (%d): %s", rc, err);
    CHECK(file_exists(marker), "the first run's .partial is untouched");
    CHECK(!file_exists(rd), "no run directory made");
    // a sweep into a claimed directory is refused the same way
    snprintf(args, sizeof args, "sweep /dev/null sweep.knn.k=3 %s --dir %s", planted(dir, pa, sizeof pa, ""), rd);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc != 0 && count_lines(err) == 1 && strstr(err, "in use") && !file_exists(rd),
          "sweep into a claimed directory refused (%d): %s", rc, err);
    run_free(&first);   // released (like a process that ends, even by kill -9)
    // the claim is free: the next run replaces the leftover .partial and completes
    snprintf(args, sizeof args, "run /dev/null %s run.dir=%s", planted(dir, pa, sizeof pa, ""), rd);
    rc = run_laic(args, NULL, err, sizeof err);
    char rep[1100];
    snprintf(rep, sizeof rep, "%s/report.json", rd);
    CHECK(rc == 0 && file_exists(rep) && strstr(err, "did not finish"),
          "after release: runs, replacing the stale .partial (%d): %s", rc, err);
    // a stale lock file (its process gone, its flock released) does not block
    char lock[1000];
    snprintf(lock, sizeof lock, "%s/stale.lock", dir);
    test_write_file(lock, "999999\n", 7);
    snprintf(args, sizeof args, "run /dev/null %s run.dir=%s/stale", planted(dir, pa, sizeof pa, ""), dir);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 0 && !file_exists(lock), "a stale claim file does not block, and is cleaned up (%d): %s", rc, err);
    // a real second process: `laic run` blocked reading a FIFO holds run.dir; another run is
    // refused naming it as running; after kill -9 the claim is gone and the same run.dir runs
    {
        char fifo[900], kd[900], cmd[6000], klock[1000];
        snprintf(fifo, sizeof fifo, "%s/fifo.npy", dir);
        snprintf(kd, sizeof kd, "%s/killed", dir);
        snprintf(klock, sizeof klock, "%s.lock", kd);
        unlink(fifo);
        REQUIRE(mkfifo(fifo, 0600) == 0, "mkfifo");
        const char *bin = getenv("LAIC_BIN") ? getenv("LAIC_BIN") : "build/laic";
        snprintf(cmd, sizeof cmd, "%s run /dev/null data.image_features=%s nouns.features=%s/T.npy "
                 "run.dir=%s >/dev/null 2>&1 &", bin, fifo, dir, kd);
        REQUIRE(system(cmd) == 0, "background run");
        long pid = 0;
        for (int i = 0; i < 200 && pid <= 0; i++) {   // up to 20 s on a loaded machine
            usleep(100000);
            char *t = test_read_file(klock, NULL);
            if (t) pid = strtol(t, NULL, 10);
            free(t);
        }
        if (CHECK(pid > 0, "the background run claimed %s", kd)) {
            snprintf(args, sizeof args, "run /dev/null %s run.dir=%s", planted(dir, pa, sizeof pa, ""), kd);
            rc = run_laic(args, NULL, err, sizeof err);
            char who[64];
            snprintf(who, sizeof who, "laic pid %ld (running)", pid);
            CHECK(rc != 0 && strstr(err, who), "a run beside a live one is refused: %s", err);
            kill((pid_t)pid, SIGKILL);
            for (int i = 0; i < 100 && kill((pid_t)pid, 0) == 0; i++) usleep(50000);
            rc = run_laic(args, NULL, err, sizeof err);
            snprintf(rep, sizeof rep, "%s/report.json", kd);
            CHECK(rc == 0 && file_exists(rep), "after kill -9 the same run.dir runs (%d): %s", rc, err);
        }
        // whatever happened, no process stays blocked on the FIFO: a writer that closes at once
        // gives a still-waiting reader end of file
        int wfd = open(fifo, O_WRONLY | O_NONBLOCK);
        if (wfd >= 0) close(wfd);
        unlink(fifo);
    }
    // two sweeps into one --dir: the claim is held by the test, so the CLI one fails at once
    char sd[1000];
    snprintf(sd, sizeof sd, "run.dir=%s/sw", dir);
    char *ov2[1] = {sd};
    REQUIRE(run_init(&first, "/dev/null", 1, ov2, 0) == 0, "%s", laic_last_error());
    snprintf(args, sizeof args, "sweep /dev/null sweep.knn.k=3 %s --dir %s/sw", planted(dir, pa, sizeof pa, ""), dir);
    rc = run_laic(args, NULL, err, sizeof err);
    snprintf(rep, sizeof rep, "%s/sw", dir);
    CHECK(rc != 0 && strstr(err, "in use") && !file_exists(rep), "claimed sweep dir (%d): %s", rc, err);
    run_free(&first);
}

TEST(rel_run_final_rename_fsyncs_parent) {
    const char *dir = test_path("relsync");
    mkdir(dir, 0755);
    char pa[2048], rd[900], over[1000];
    planted(dir, pa, sizeof pa, "");
    snprintf(rd, sizeof rd, "%s/out", dir);
    char *ov[8];
    char bufs[8][1000];
    const char *kv[] = {"data.image_features=%s/X.npy", "data.labels=%s/y.npy", "nouns.features=%s/T.npy",
                        "nouns.names=%s/names.txt", "run.cache_dir=%s/cache"};
    for (int i = 0; i < 5; i++) {
        snprintf(bufs[i], sizeof bufs[i], kv[i], dir);
        ov[i] = bufs[i];
    }
    snprintf(over, sizeof over, "run.dir=%s", rd);
    ov[5] = over;
    ov[6] = "eval.methods=clip-kmeans";
    Run r;
    REQUIRE(run_init(&r, "/dev/null", 7, ov, 0) == 0, "%s", laic_last_error());
    fsync_log_start(rd);
    int rc = run_execute(&r);
    int n;
    const FsyncCall *c = fsync_log_stop(&n);
    run_free(&r);
    REQUIRE(rc == 0, "%s", laic_last_error());
    struct stat parent, rep;
    char p[1000];
    snprintf(p, sizeof p, "%s/report.json", rd);
    REQUIRE(!stat(dir, &parent) && !stat(p, &rep), "stat");
    int rep_at = -1, parent_after = -1;
    for (int i = 0; i < n; i++) {
        if (!c[i].is_dir && c[i].ino == rep.st_ino && c[i].dev == rep.st_dev) rep_at = i;
        if (c[i].is_dir && c[i].ino == parent.st_ino && c[i].dev == parent.st_dev && c[i].watched_existed)
            parent_after = i;
    }
    CHECK(rep_at >= 0, "report.json was fsynced (%d fsync calls)", n);
    CHECK(parent_after > rep_at, "the parent directory was fsynced after the rename");
}

TEST(rel_run_errors_name_their_file_and_line) {
    const char *dir = test_path("relmsg");
    mkdir(dir, 0755);
    char pa[2048], args[4096], err[16384], ini[900];
    planted(dir, pa, sizeof pa, "");
    snprintf(ini, sizeof ini, "%s/k.ini", dir);
    const char *text = "[run]\nseed = 1\n[kmeans]\nk = 100\n";
    test_write_file(ini, text, strlen(text));
    snprintf(args, sizeof args, "run %s %s run.dir=%s/r1", ini, pa, dir);
    int rc = run_laic(args, NULL, err, sizeof err);
    char want[1000];
    snprintf(want, sizeof want, "%s:4: kmeans.k = 100 exceeds the 60 fit images of %s/X.npy", ini, dir);
    CHECK(rc != 0 && one_error(err) && strstr(err, want), "kmeans.k from the file: %s", err);
    // data.path empty: names the config file it was (not) set in
    snprintf(args, sizeof args, "run %s run.dir=%s/r2", ini, dir);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc != 0 && one_error(err) && strstr(err, ini) && strstr(err, "data.path is empty"),
          "data.path empty: %s", err);
    // the N×d reduction over fewer nouns than dimensions: names the noun features
    synth_planted(dir, 3, 16, 60, 6, 0.1, 42, 1);   // M = 6 < d = 16
    snprintf(args, sizeof args, "run /dev/null %s run.dir=%s/r3 ridge.form=reduced eval.methods=ours-notrain",
             planted(dir, pa, sizeof pa, ""), dir);
    rc = run_laic(args, NULL, err, sizeof err);
    char tp[900];
    snprintf(tp, sizeof tp, "%s/T.npy", dir);
    CHECK(rc != 0 && one_error(err) && strstr(err, tp) && strstr(err, "ridge.form"),
          "ridge reduction not positive definite: %s", err);
    snprintf(args, sizeof args, "ridge --images %s/X.npy --texts %s --reduced-out %s/Z.npy", dir, tp, dir);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 1 && one_error(err) && strstr(err, tp) && strstr(err, "positive definite"),
          "laic ridge --reduced-out: %s", err);
    // INI keys with control bytes: one line
    const char *bad = "[kmeans]\nk\x1b[2J\x01 = 3\n";
    test_write_file(ini, bad, strlen(bad));
    snprintf(args, sizeof args, "run %s run.dir=%s/r4", ini, dir);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc != 0 && one_error(err) && !strchr(err, '\x1b') && strstr(err, "k.ini:2"),
          "hostile INI key: %s", err);
}
