/*
 * test_reliability_data.c — IDX datasets against gzip bombs (issue 13, item 10): a .gz whose
 * content runs far past what its IDX header declares fails in one line naming the file, before
 * the excess is decompressed or allocated (a forked child's peak memory stays far below the
 * bomb's 128 MiB), whether its gzip trailer tells the truth or is forged to match the header.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/data.h"
#include "io/err.h"
#include "../hostile.h"
#include "../test.h"

#define BOMB_ZEROS ((size_t)128 << 20)

static int open_idx(void *dir) {
    Dataset d;
    if (dataset_open(&d, "idx", dir, "train")) return -1;
    dataset_free(&d);
    return 0;
}

/* dir/train-images-idx3-ubyte.gz: a header declaring 1 image of 28x28, then `zeros` bytes. */
static void idx_bomb(const char *dir, size_t zeros, int forge) {
    const unsigned char head[16] = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28};
    char p[700];
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", dir);
    hostile_gzip(p, head, sizeof head, zeros, forge, 16 + 784);
    const unsigned char lab[9] = {0, 0, 8, 1, 0, 0, 0, 1, 3};
    snprintf(p, sizeof p, "%s/train-labels-idx1-ubyte", dir);
    test_write_file(p, lab, sizeof lab);
}

TEST(rel_idx_gzip_bomb_fails_before_it_is_decompressed) {
    const char *dir = test_path("idxbomb");
    mkdir(dir, 0755);
    // the honest file opens (sanity: the bomb's only difference is its excess)
    idx_bomb(dir, 784, 0);
    int rc;
    char msg[2048];
    long kb = hostile_child_peak_kb(open_idx, (void *)dir, &rc, msg, sizeof msg);
    REQUIRE(rc == 0, "a 1-image IDX file opens: %s", msg);
    const char *what[2] = {"true gzip trailer", "trailer forged to the header's size"};
    for (int forge = 0; forge < 2; forge++) {
        idx_bomb(dir, BOMB_ZEROS, forge);
        kb = hostile_child_peak_kb(open_idx, (void *)dir, &rc, msg, sizeof msg);
        CHECK(rc == 1 && strstr(msg, "train-images-idx3-ubyte.gz") && !strchr(msg, '\n'),
              "%s: one-line error naming the file (rc %d): %s", what[forge], rc, msg);
        CHECK(kb >= 0 && kb < 32 * 1024, "%s: the child's memory rose by %ld KiB (bomb: %zu MiB)",
              what[forge], kb, BOMB_ZEROS >> 20);
        printf("    %s: failed after %ld KiB more memory: %s\n", what[forge], kb, msg);
    }
    // through the CLI as well: exit 1, one line
    char args[800], err[4096];
    snprintf(args, sizeof args, "dataset-info --data 'idx:%s' --split train", dir);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, "idx3-ubyte.gz"), "laic dataset-info: %d %s", rc, err);
}
