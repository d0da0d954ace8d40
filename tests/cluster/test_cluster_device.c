/*
 * test_cluster_device.c — the `--device` option of laic ridge|kmeans|knn|knn-filter on any
 * build: an unknown device (and cuda on a build or machine without it) is one line, a non-zero
 * exit and no output file; `--device cpu` gives bitwise the default's output on a CPU-only run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/npy.h"
#include "../test.h"

#define FIX "tests/fixtures/cluster/"

TEST(cluster_cli_device_option) {
    char args[1024], err[2048];
    const char *out = test_path("dev_out.npy");
    const char *cmds[] = {
        "ridge --images " FIX "km_X.npy --texts " FIX "km_X.npy --out",
        "kmeans --in " FIX "km_X.npy --k 3 --restarts 1 --out",
        "knn --in " FIX "knn_F.npy --k 5 --out",
        "knn-filter --in " FIX "knn_F.npy --labels " FIX "knn_y.npy --k 5 --out",
    };
    for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++) {
        remove(out);
        snprintf(args, sizeof args, "%s %s --device tpu", cmds[c], out);
        int rc = run_laic(args, NULL, err, sizeof err);
        CHECK(rc != 0 && count_lines(err) == 1 && strstr(err, "unknown device 'tpu'"),
              "%s: rc=%d err='%s'", cmds[c], rc, err);
        CHECK(!file_exists(out), "%s: no output after a bad --device", cmds[c]);
        // cuda: where this build or machine has no device, one line naming it and no output;
        // where it has one, the command runs and writes its output
        remove(out);
        snprintf(args, sizeof args, "%s %s --device cuda", cmds[c], out);
        rc = run_laic(args, NULL, err, sizeof err);
        if (rc != 0)
            CHECK(count_lines(err) == 1 && strstr(err, "--device cuda") && !file_exists(out),
                  "%s --device cuda without a device: rc=%d err='%s'", cmds[c], rc, err);
        else
            CHECK(file_exists(out), "%s --device cuda ran but wrote no output", cmds[c]);
    }
    // --device cpu equals the default (auto → cpu on a machine without a device)
    const char *a = test_path("dev_a.npy");
    char pa[512];
    snprintf(pa, sizeof pa, "%s", a);
    const char *b = test_path("dev_b.npy");
    snprintf(args, sizeof args, "knn --in " FIX "knn_F.npy --k 5 --out %s --device cpu", pa);
    REQUIRE(run_laic(args, NULL, err, sizeof err) == 0, "knn cpu: %s", err);
    snprintf(args, sizeof args, "knn --in " FIX "knn_F.npy --k 5 --out %s", b);
    REQUIRE(run_laic(args, NULL, err, sizeof err) == 0, "knn default: %s", err);
    size_t na = 0, nb = 0;
    void *da = test_read_file(pa, &na), *db = test_read_file(b, &nb);
    CHECK(da && db && na == nb && !memcmp(da, db, na), "cpu and default outputs differ");
    free(da);
    free(db);
}
