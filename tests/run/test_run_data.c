/*
 * test_run_data.c — `laic run` on ImageFolder data with bad content: a corrupt image fails the
 * run with one line naming the file and leaves no run directory; data.skip_bad=true skips it and
 * counts it in report.json; an empty folder is a one-line error. Images are made by copying
 * JPEGs from ../shared (skipped when it is missing).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../test.h"

/* root/{a,b}/ with n JPEGs each from the DTD tar; returns 0 on success. */
static int make_folder(const char *root, int n) {
    const char *tar = test_shared("data/dtd5-jpeg.tar");
    if (!tar) return -1;
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "set -e; t='%s'; mkdir -p \"$t/x\" '%s/a' '%s/b'; tar -xf '%s' -C \"$t/x\"; "
             "ls \"$t\"/x/dtd5/banded/*.jpg | head -n %d | xargs -I{} cp {} '%s/a/'; "
             "ls \"$t\"/x/dtd5/bubbly/*.jpg | head -n %d | xargs -I{} cp {} '%s/b/'",
             test_tmpdir(), root, root, tar, n, root, n, root);
    return system(cmd) == 0 ? 0 : -1;
}

static void run_args(char *buf, size_t n, const char *root, const char *dir, const char *extra) {
    snprintf(buf, n,
             "run /dev/null data.kind=imagefolder data.path=%s data.fit_split=all data.eval_split=all "
             "model.arch=tiny model.device=cpu model.batch=8 nouns.subset=200 kmeans.restarts=1 "
             "centers.restarts=1 eval.methods=clip-kmeans,ours-notrain run.dir=%s run.cache_dir=%s/cache %s",
             root, dir, test_tmpdir(), extra);
}

TEST(run_imagefolder_corrupt_image_and_skip_bad) {
    if (!file_exists("/usr/share/wordnet/data.noun")) SKIP("wordnet-base not installed (make setup)");
    char root[512];
    snprintf(root, sizeof root, "%s/folder", test_tmpdir());
    if (make_folder(root, 6)) SKIP("../shared/data/dtd5-jpeg.tar not available");
    char bad[600];
    snprintf(bad, sizeof bad, "%s/a/zz-corrupt.jpg", root);
    test_write_file(bad, "\xff\xd8\xff\xe0 not really a jpeg", 22);
    char args[4096], err[16384], dir[600], partial[700];
    snprintf(dir, sizeof dir, "%s/run-bad", test_tmpdir());
    snprintf(partial, sizeof partial, "%s.partial", dir);
    run_args(args, sizeof args, root, dir, "");
    int rc = run_laic(args, NULL, err, sizeof err);
    int nerr = 0;
    for (const char *q = err; (q = strstr(q, "laic: ")); q++) nerr++;
    CHECK(rc != 0 && nerr == 1 && strstr(err, "zz-corrupt.jpg"),
          "corrupt image: one 'laic:' line naming it (rc %d): %s", rc, err);
    CHECK(!file_exists(dir) && !file_exists(partial), "no run files left behind");

    snprintf(dir, sizeof dir, "%s/run-skip", test_tmpdir());
    run_args(args, sizeof args, root, dir, "data.skip_bad=true");
    rc = run_laic(args, NULL, err, sizeof err);
    REQUIRE(rc == 0, "data.skip_bad=true run failed: %s", err);
    char rp[700];
    snprintf(rp, sizeof rp, "%s/report.json", dir);
    char *json = test_read_file(rp, NULL);
    REQUIRE(json, "report.json");
    CHECK(strstr(json, "\"n_bad_images_skipped\":\t1") && strstr(json, "\"n_fit\":\t12"),
          "one image skipped and counted, 12 kept: %s", json);
    free(json);
}

TEST(run_imagefolder_empty_folder) {
    char root[512], dir[600], args[4096], err[8192];
    snprintf(root, sizeof root, "%s/empty/a", test_tmpdir());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%.512s'", root);
    REQUIRE(system(cmd) == 0, "mkdir");
    snprintf(root, sizeof root, "%s/empty", test_tmpdir());
    snprintf(dir, sizeof dir, "%s/run-empty", test_tmpdir());
    run_args(args, sizeof args, root, dir, "");
    int rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc != 0 && count_lines(err) == 1 && strstr(err, root),
          "empty folder: one line naming it (rc %d): %s", rc, err);
    CHECK(!file_exists(dir), "no run directory");
}
