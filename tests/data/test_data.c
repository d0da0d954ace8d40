/*
 * test_data.c — dataset loaders (host/data/data.h) and `laic dataset-info`.
 *
 * Goldens come from scripts/make_data_fixtures.py (numpy reshapes of the published byte
 * layouts, PIL for PNG pixels, an independent ImageFolder walk in Python) and live in
 * tests/fixtures/data/. Bad inputs are made here by truncating or corrupting copies of the
 * fixtures in the test's temp directory. The Fashion-MNIST test runs when Debian's
 * dataset-fashion-mnist is installed and checks CRC-32 checksums computed by numpy.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "data/data.h"
#include "io/err.h"
#include "io/npy.h"
#include "../test.h"

#define FIX "tests/fixtures/data/"

// --- helpers -----------------------------------------------------------------------------

// Copies at most max bytes of src to dst (SIZE_MAX = all); returns 0 on success.
static int copy_file(const char *src, const char *dst, size_t max) {
    FILE *in = fopen(src, "rb"), *out = in ? fopen(dst, "wb") : NULL;
    if (!in || !out) {
        if (in) fclose(in);
        return -1;
    }
    char buf[65536];
    size_t r, done = 0;
    while (done < max && (r = fread(buf, 1, sizeof buf, in)) > 0) {
        if (r > max - done) r = max - done;
        fwrite(buf, 1, r, out);
        done += r;
    }
    fclose(in);
    fclose(out);
    return 0;
}

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    fputs(s, f);
    fclose(f);
}

static char *tmp_dir(const char *name) {
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, 1024, "%s/%s", test_tmpdir(), name);
    mkdir(p, 0755);
    return p;
}

// Compares an in-memory dataset with golden (M,h,w,3) pixels and (M,) labels, rows [from, from+n).
static void check_against(const Dataset *d, const char *rgb_npy, const char *lab_npy, size_t from,
                          size_t n, const char *what) {
    Npy rgb, lab;
    REQUIRE(npy_read(rgb_npy, &rgb) == 0, "%s", laic_last_error());
    if (npy_read_i64(lab_npy, &lab, 1, NULL)) {
        npy_free(&rgb);
        REQUIRE(0, "%s", laic_last_error());
    }
    CHECK(d->n == n, "%s: %zu items, golden %zu", what, d->n, n);
    CHECK(rgb.ndim == 4 && d->h == (int)rgb.shape[1] && d->w == (int)rgb.shape[2],
          "%s: image size %dx%d", what, d->h, d->w);
    size_t px = rgb.shape[1] * rgb.shape[2] * 3;
    if (d->n == n && d->pixels && rgb.shape[0] >= from + n) {
        size_t bad = 0;
        for (size_t i = 0; i < n * px; i++) bad += d->pixels[i] != ((uint8_t *)rgb.data)[from * px + i];
        CHECK(bad == 0, "%s: %zu of %zu pixel bytes differ from numpy's decoding", what, bad, n * px);
        for (size_t i = 0; i < n; i++)
            CHECK(d->labels[i] == ((int64_t *)lab.data)[from + i], "%s: label %zu is %lld, golden %lld",
                  what, i, (long long)d->labels[i], (long long)((int64_t *)lab.data)[from + i]);
    }
    npy_free(&rgb);
    npy_free(&lab);
}

// Checks a path dataset against "<name>.expected.txt": "classes K names..." then "label relpath".
static void check_expected(const Dataset *d, const char *expected) {
    FILE *f = fopen(expected, "rb");
    REQUIRE(f, "cannot open %s", expected);
    char line[1024];
    size_t i = 0;
    REQUIRE(fgets(line, sizeof line, f), "empty %s", expected);
    line[strcspn(line, "\n")] = 0;
    char *save, *tok = strtok_r(line, "\t", &save);
    CHECK(tok && !strcmp(tok, "classes"), "bad expected file");
    int k = atoi(strtok_r(NULL, "\t", &save));
    CHECK(d->n_classes == k, "%s: %d classes, expected %d", expected, d->n_classes, k);
    for (int c = 0; c < k && c < d->n_classes; c++) {
        tok = strtok_r(NULL, "\t", &save);
        CHECK(tok && !strcmp(d->class_names[c], tok), "class %d is '%s', expected '%s'", c,
              d->class_names[c], tok ? tok : "?");
    }
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *tab = strchr(line, '\t');
        if (!tab) continue;
        *tab = 0;
        char want[1100];
        snprintf(want, sizeof want, FIX "%s", tab + 1);
        if (i < d->n) {
            CHECK(!strcmp(d->paths[i], want), "item %zu is %s, expected %s", i, d->paths[i], want);
            CHECK(d->labels[i] == atoll(line), "item %zu label %lld, expected %s", i,
                  (long long)d->labels[i], line);
        }
        i++;
    }
    fclose(f);
    CHECK(i == d->n, "%s: %zu items, expected %zu", expected, d->n, i);
}

// Opening must fail with one line that contains every given substring.
static void expect_fail(const char *kind, const char *path, const char *split, const char *sub1,
                        const char *sub2) {
    Dataset d;
    laic_clear_error();
    int rc = dataset_open(&d, kind, path, split);
    const char *e = laic_last_error();
    CHECK(rc != 0, "opening %s as %s (%s) must fail", path, kind, split);
    if (rc == 0) dataset_free(&d);
    CHECK(d.n == 0 && d.labels == NULL && d.pixels == NULL, "a failed open leaves the Dataset zeroed");
    CHECK(strchr(e, '\n') == NULL && *e, "one-line message: %s", e);
    CHECK(!sub1 || strstr(e, sub1), "message '%s' should contain '%s'", e, sub1);
    CHECK(!sub2 || strstr(e, sub2), "message '%s' should contain '%s'", e, sub2);
}

// --- binary formats ----------------------------------------------------------------------

TEST(data_cifar10_splits_names_pixels) {
    Dataset d;
    REQUIRE(dataset_open(&d, "auto", FIX "cifar10", "all") == 0, "%s", laic_last_error());
    CHECK(d.kind == DATA_CIFAR10, "auto-detected %s", dataset_kind_name(d.kind));
    CHECK(d.n_classes == 10 && !strcmp(d.class_names[0], "c10name0") &&
              !strcmp(d.class_names[9], "c10name9"),
          "names come from batches.meta.txt (blank lines skipped)");
    check_against(&d, FIX "cifar10_all_rgb.npy", FIX "cifar10_all_labels.npy", 0, 8, "cifar10 all");
    dataset_free(&d);
    REQUIRE(dataset_open(&d, "cifar10", FIX "cifar10", "train") == 0, "%s", laic_last_error());
    check_against(&d, FIX "cifar10_all_rgb.npy", FIX "cifar10_all_labels.npy", 0, 5, "cifar10 train");
    dataset_free(&d);
    REQUIRE(dataset_open_spec(&d, "cifar10:" FIX "cifar10", "test") == 0, "%s", laic_last_error());
    check_against(&d, FIX "cifar10_all_rgb.npy", FIX "cifar10_all_labels.npy", 5, 3, "cifar10 test");
    uint8_t *rgb;
    int h, w;
    REQUIRE(dataset_get_rgb8(&d, 2, &rgb, &h, &w) == 0, "%s", laic_last_error());
    CHECK(h == 32 && w == 32 && !memcmp(rgb, d.pixels + 2 * 3072, 3072), "get_rgb8 copies item 2");
    free(rgb);
    CHECK(dataset_get_rgb8(&d, 3, &rgb, &h, &w) != 0, "item 3 of 3 is out of range");
    dataset_free(&d);
}

TEST(data_cifar10_builtin_names_and_missing_split) {
    Dataset d;
    REQUIRE(dataset_open(&d, "cifar10", FIX "cifar10-nometa", "test") == 0, "%s", laic_last_error());
    CHECK(d.n == 2 && d.n_classes == 10, "2 items, 10 classes");
    CHECK(!strcmp(d.class_names[0], "airplane") && !strcmp(d.class_names[9], "truck"),
          "the standard CIFAR-10 names without batches.meta.txt");
    Npy lab;
    REQUIRE(npy_read_i64(FIX "cifar10_nometa_labels.npy", &lab, 1, NULL) == 0, "%s", laic_last_error());
    CHECK(d.labels[0] == ((int64_t *)lab.data)[0] && d.labels[1] == ((int64_t *)lab.data)[1], "labels");
    npy_free(&lab);
    dataset_free(&d);
    expect_fail("cifar10", FIX "cifar10-nometa", "train", FIX "cifar10-nometa", "data_batch_1.bin");
    expect_fail("cifar10", FIX "cifar10-nometa", "all", FIX "cifar10-nometa", "data_batch_1.bin");
}

TEST(data_cifar100_fine_labels) {
    Dataset d;
    REQUIRE(dataset_open(&d, NULL, FIX "cifar100", NULL) == 0, "%s", laic_last_error());
    CHECK(d.kind == DATA_CIFAR100 && !strcmp(d.split, "all"), "auto cifar100, default split all");
    CHECK(d.n_classes == 100 && !strcmp(d.class_names[42], "fine42"), "fine_label_names.txt");
    check_against(&d, FIX "cifar100_all_rgb.npy", FIX "cifar100_all_labels.npy", 0, 5, "cifar100 all");
    dataset_free(&d);
    REQUIRE(dataset_open(&d, "cifar100", FIX "cifar100", "test") == 0, "%s", laic_last_error());
    check_against(&d, FIX "cifar100_all_rgb.npy", FIX "cifar100_all_labels.npy", 3, 2, "cifar100 test");
    dataset_free(&d);
    // Without fine_label_names.txt: still the format's 100 classes, named "0".."99".
    char p[1100];
    snprintf(p, sizeof p, "%s/test.bin", tmp_dir("c100_nonames"));
    copy_file(FIX "cifar100/test.bin", p, SIZE_MAX);
    REQUIRE(dataset_open(&d, "cifar100", tmp_dir("c100_nonames"), "test") == 0, "%s", laic_last_error());
    CHECK(d.n == 2 && d.n_classes == 100 && !strcmp(d.class_names[99], "99"), "K %d", d.n_classes);
    dataset_free(&d);
}

TEST(data_stl10_column_major_and_archive_folder) {
    Dataset d;
    // The fixture sits in stl10/stl10_binary/, as the official archive extracts.
    REQUIRE(dataset_open(&d, "auto", FIX "stl10", "all") == 0, "%s", laic_last_error());
    CHECK(d.kind == DATA_STL10, "auto-detected %s", dataset_kind_name(d.kind));
    CHECK(strstr(d.root, "stl10_binary") != NULL, "root descends into stl10_binary: %s", d.root);
    CHECK(d.n_classes == 10 && !strcmp(d.class_names[0], "airplane") &&
              !strcmp(d.class_names[7], "monkey"), "built-in STL-10 names");
    check_against(&d, FIX "stl10_all_rgb.npy", FIX "stl10_all_labels.npy", 0, 3, "stl10 all");
    dataset_free(&d);
    REQUIRE(dataset_open(&d, "stl10", FIX "stl10/stl10_binary", "test") == 0, "%s", laic_last_error());
    check_against(&d, FIX "stl10_all_rgb.npy", FIX "stl10_all_labels.npy", 2, 1, "stl10 test");
    dataset_free(&d);
}

TEST(data_idx_gz_and_plain_gray_to_rgb) {
    Dataset d;
    REQUIRE(dataset_open(&d, "auto", FIX "idx", "all") == 0, "%s", laic_last_error());
    CHECK(d.kind == DATA_IDX && d.h == 5 && d.w == 7, "idx 5x7, got %s %dx%d",
          dataset_kind_name(d.kind), d.h, d.w);
    check_against(&d, FIX "idx_all_rgb.npy", FIX "idx_all_labels.npy", 0, 6, "idx all");
    CHECK(d.n_classes == 8 && !strcmp(d.class_names[7], "7"), "K = max label + 1 = 8, generated names");
    dataset_free(&d);
    REQUIRE(dataset_open(&d, "idx", FIX "idx", "test") == 0, "%s", laic_last_error());
    check_against(&d, FIX "idx_all_rgb.npy", FIX "idx_all_labels.npy", 4, 2, "idx test (plain)");
    dataset_free(&d);
}

TEST(data_binary_truncated_and_corrupt) {
    char p[1100], q[1100];
    // CIFAR: one byte short of the record size.
    const char *c = tmp_dir("cifar_trunc");
    snprintf(p, sizeof p, "%s/test_batch.bin", c);
    copy_file(FIX "cifar10/test_batch.bin", p, 3 * 3073 - 1);
    expect_fail("cifar10", c, "test", p, "multiple");
    // CIFAR-10 batches must be consecutive.
    snprintf(q, sizeof q, "%s/data_batch_2.bin", c);
    copy_file(FIX "cifar10/data_batch_2.bin", q, SIZE_MAX);
    expect_fail("cifar10", c, "train", "data_batch_1.bin", "consecutive");
    // CIFAR-10 label out of range.
    const char *c2 = tmp_dir("cifar_badlabel");
    snprintf(p, sizeof p, "%s/test_batch.bin", c2);
    write_text(p, "");
    {
        FILE *f = fopen(p, "wb");
        uint8_t rec[3073] = {10};
        fwrite(rec, 1, sizeof rec, f);
        fclose(f);
    }
    expect_fail("cifar10", c2, "test", p, "label 10");
    // STL-10: images truncated; then labels that do not match the image count.
    const char *s = tmp_dir("stl_trunc");
    snprintf(p, sizeof p, "%s/test_X.bin", s);
    snprintf(q, sizeof q, "%s/test_y.bin", s);
    copy_file(FIX "stl10/stl10_binary/test_X.bin", p, 27648 - 100);
    copy_file(FIX "stl10/stl10_binary/test_y.bin", q, SIZE_MAX);
    expect_fail("stl10", s, "test", p, "truncated");
    copy_file(FIX "stl10/stl10_binary/train_X.bin", p, SIZE_MAX);   // 2 images, 1 label
    expect_fail("stl10", s, "test", q, "1 labels for 2 images");
    // IDX: gzip cut in half; plain file missing its last byte; wrong magic.
    const char *x = tmp_dir("idx_bad");
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", x);
    snprintf(q, sizeof q, "%s/train-labels-idx1-ubyte.gz", x);
    copy_file(FIX "idx/train-images-idx3-ubyte.gz", p, 60);
    copy_file(FIX "idx/train-labels-idx1-ubyte.gz", q, SIZE_MAX);
    expect_fail("idx", x, "train", p, NULL);
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte", x);
    snprintf(q, sizeof q, "%s/t10k-labels-idx1-ubyte", x);
    copy_file(FIX "idx/t10k-images.idx3-ubyte", p, 16 + 2 * 35 - 1);
    copy_file(FIX "idx/t10k-labels.idx1-ubyte", q, SIZE_MAX);
    expect_fail("idx", x, "test", p, "truncated");
    {
        FILE *f = fopen(p, "wb");
        const uint8_t hdr[] = {0, 0, 8, 1, 0, 0, 0, 1, 7};   // a labels file where images belong
        fwrite(hdr, 1, sizeof hdr, f);
        fclose(f);
    }
    expect_fail("idx", x, "test", p, "bad IDX magic 0x00000801");
}

// --- Fashion-MNIST (Debian dataset-fashion-mnist) ----------------------------------------

TEST(data_fashion_mnist_debian) {
    const char *dir = "/usr/share/datasets/fashion-mnist";
    struct stat st;
    if (stat(dir, &st) != 0) SKIP("%s not installed (apt-get install dataset-fashion-mnist)", dir);
    FILE *f = fopen(FIX "fashion_mnist.txt", "rb");
    REQUIRE(f, "missing " FIX "fashion_mnist.txt");
    const char *splits[2] = {"train", "test"};
    for (int s = 0; s < 2; s++) {
        char name[16];
        unsigned long n, pcrc, lcrc, l0;
        unsigned long long psum;
        unsigned long cnt[10];
        int got = fscanf(f, "%15s n %lu pixel_crc32 %lu label_crc32 %lu pixel_sum %llu label0 %lu "
                         "counts %lu %lu %lu %lu %lu %lu %lu %lu %lu %lu", name, &n, &pcrc, &lcrc,
                         &psum, &l0, &cnt[0], &cnt[1], &cnt[2], &cnt[3], &cnt[4], &cnt[5], &cnt[6],
                         &cnt[7], &cnt[8], &cnt[9]);
        REQUIRE(got == 16 && !strcmp(name, splits[s]), "bad fashion_mnist.txt line %d", s);
        Dataset d;
        REQUIRE(dataset_open_spec(&d, dir, splits[s]) == 0, "%s", laic_last_error());
        CHECK(d.kind == DATA_IDX && d.n == n && d.h == 28 && d.w == 28, "%s: %zu items %dx%d",
              name, d.n, d.h, d.w);
        CHECK(d.n == (s ? 10000u : 60000u), "Fashion-MNIST has 60,000 train / 10,000 test");
        CHECK(d.n_classes == 10 && !strcmp(d.class_names[0], "T-shirt/top") &&
                  !strcmp(d.class_names[9], "Ankle boot"), "Fashion-MNIST class names");
        uLong crc = crc32(0, NULL, 0), lc = crc32(0, NULL, 0);
        unsigned long long sum = 0;
        size_t counts[10], rgb_mismatch = 0;
        dataset_class_counts(&d, counts);
        uint8_t gray[784];
        for (size_t i = 0; i < d.n; i++) {
            const uint8_t *p = d.pixels + i * 784 * 3;
            for (int j = 0; j < 784; j++) {
                gray[j] = p[3 * j];
                sum += gray[j];
                rgb_mismatch += p[3 * j + 1] != gray[j] || p[3 * j + 2] != gray[j];
            }
            crc = crc32(crc, gray, 784);
            uint8_t l = (uint8_t)d.labels[i];
            lc = crc32(lc, &l, 1);
        }
        CHECK(crc == pcrc && sum == psum, "%s pixels: crc32 %lu sum %llu, numpy %lu %llu", name,
              (unsigned long)crc, sum, pcrc, psum);
        CHECK(lc == lcrc && (unsigned long)d.labels[0] == l0, "%s labels: crc32 %lu, numpy %lu",
              name, (unsigned long)lc, lcrc);
        CHECK(rgb_mismatch == 0, "gray must be replicated to R=G=B (%zu differ)", rgb_mismatch);
        for (int c = 0; c < 10; c++) CHECK(counts[c] == cnt[c], "%s class %d count", name, c);
        dataset_free(&d);
    }
    fclose(f);
}

// --- ImageFolder and CSV -----------------------------------------------------------------

TEST(data_imagefolder_order_labels_pixels) {
    Dataset d;
    REQUIRE(dataset_open(&d, "auto", FIX "imagefolder", "test") == 0, "%s", laic_last_error());
    CHECK(d.kind == DATA_IMAGEFOLDER && d.pixels == NULL && d.paths != NULL, "a path dataset");
    check_expected(&d, FIX "imagefolder.expected.txt");
    Npy g;
    REQUIRE(npy_read(FIX "imagefolder_rgb.npy", &g) == 0, "%s", laic_last_error());
    for (size_t i = 0; i < d.n && i < g.shape[0]; i++) {
        uint8_t *rgb;
        int h, w;
        if (!CHECK(dataset_get_rgb8(&d, i, &rgb, &h, &w) == 0, "%s", laic_last_error())) continue;
        CHECK(h == 3 && w == 4 && !memcmp(rgb, (uint8_t *)g.data + i * 36, 36),
              "item %zu (%s) pixels differ from PIL's convert('RGB')", i, d.paths[i]);
        free(rgb);
    }
    npy_free(&g);
    dataset_free(&d);
}

TEST(data_imagefolder_split_subfolders_and_unlabeled) {
    // root/train/{a,b}, root/test/{b,c}: the split picks the sub-folder, all = class union.
    const char *r = tmp_dir("split");
    const char *dirs[] = {"train", "test", "train/a", "train/b", "test/b", "test/c"};
    char p[1100];
    for (int i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "%s/%s", r, dirs[i]);
        mkdir(p, 0755);
    }
    const char *files[] = {"train/a/1.png", "train/b/2.png", "test/b/3.png", "test/c/4.png"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", r, files[i]);
        copy_file(FIX "imagefolder/cat/b.png", p, SIZE_MAX);
    }
    Dataset d;
    REQUIRE(dataset_open(&d, "imagefolder", r, "train") == 0, "%s", laic_last_error());
    CHECK(d.n == 2 && d.n_classes == 2 && !strcmp(d.class_names[1], "b") && d.labels[1] == 1,
          "train split: classes a, b");
    dataset_free(&d);
    REQUIRE(dataset_open(&d, "imagefolder", r, "all") == 0, "%s", laic_last_error());
    CHECK(d.n == 4 && d.n_classes == 3, "all: 4 items, union of 3 classes");
    if (d.n == 4 && d.n_classes == 3) {
        CHECK(d.labels[0] == 0 && d.labels[1] == 1 && d.labels[2] == 1 && d.labels[3] == 2,
              "labels index the union: %lld %lld %lld %lld", (long long)d.labels[0],
              (long long)d.labels[1], (long long)d.labels[2], (long long)d.labels[3]);
        CHECK(strstr(d.paths[0], "/train/") && strstr(d.paths[3], "/test/"), "train then test");
    }
    dataset_free(&d);
    // Only a test/ folder: asking for train is an error naming the root.
    const char *r2 = tmp_dir("only_test");
    snprintf(p, sizeof p, "%s/test", r2);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/test/x.png", r2);
    copy_file(FIX "imagefolder/cat/b.png", p, SIZE_MAX);
    expect_fail("imagefolder", r2, "train", r2, "no train/");
    // test/ holding images directly: one unlabeled set.
    REQUIRE(dataset_open(&d, "imagefolder", r2, "test") == 0, "%s", laic_last_error());
    CHECK(d.n == 1 && d.n_classes == 0 && d.labels[0] == -1, "unlabeled folder");
    dataset_free(&d);
}

TEST(data_csv_names_and_integers) {
    Dataset d;
    REQUIRE(dataset_open(&d, "auto", FIX "list.csv", "all") == 0, "%s", laic_last_error());
    CHECK(d.kind == DATA_CSV, "a file is auto-detected as csv");
    check_expected(&d, FIX "list.expected.txt");
    dataset_free(&d);
    REQUIRE(dataset_open_spec(&d, "csv:" FIX "list_int.csv", "test") == 0, "%s", laic_last_error());
    check_expected(&d, FIX "list_int.expected.txt");
    uint8_t *rgb;
    int h, w;
    CHECK(dataset_get_rgb8(&d, 0, &rgb, &h, &w) == 0 && h == 3 && w == 4, "decodes %s: %s",
          d.paths[0], laic_last_error());
    if (h == 3) free(rgb);
    dataset_free(&d);
}

TEST(data_csv_bad_lines) {
    char csv[1100], img[1100];
    const char *dir = tmp_dir("csv");
    snprintf(img, sizeof img, "%s/ok.png", dir);
    copy_file(FIX "imagefolder/cat/b.png", img, SIZE_MAX);
    snprintf(csv, sizeof csv, "%s/l.csv", dir);
    struct { const char *text, *msg; } cases[] = {
        {"path,label\nok.png,1\nok.png,2,3\n", ":3: expected 'path' or 'path,label'"},
        {"ok.png,cat\n,dog\n", ":2: empty path"},
        {"ok.png,1\nmissing.png,1\n", ":2: no such image file"},
        {"ok.png,-3\n", ":1: negative label"},
        {"path,label\n\n# nothing\n", "no image rows"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_text(csv, cases[i].text);
        expect_fail("csv", csv, "all", csv, cases[i].msg);
    }
    // Unlabeled rows and a relative path resolved against the CSV's folder.
    write_text(csv, "ok.png\nok.png,-1\nok.png,\n");
    Dataset d;
    REQUIRE(dataset_open(&d, "csv", csv, "all") == 0, "%s", laic_last_error());
    CHECK(d.n == 3 && d.n_classes == 0 && d.labels[0] == -1 && d.labels[2] == -1,
          "unlabeled rows: n %zu K %d", d.n, d.n_classes);
    CHECK(!strcmp(d.paths[0], img), "relative to the CSV: %s", d.paths[0]);
    dataset_free(&d);
}

TEST(data_open_errors) {
    const char *missing = test_path("no_such_dataset");
    expect_fail("auto", missing, "all", missing, "no such file or directory");
    const char *empty = tmp_dir("empty");
    expect_fail("auto", empty, "all", empty, "no images");
    expect_fail("imagefolder", FIX "cifar10", "all", FIX "cifar10", "no images");
    expect_fail("tarball", FIX "cifar10", "all", FIX "cifar10", "unknown dataset kind 'tarball'");
    expect_fail("cifar10", FIX "cifar10", "val", FIX "cifar10", "unknown split 'val'");
    expect_fail("cifar100", FIX "cifar10", "test", "test.bin", "no such file");
    expect_fail("csv", FIX "cifar10", "all", FIX "cifar10", "is not a file");
    expect_fail("stl10", FIX "list.csv", "all", FIX "list.csv", "is not a directory");
    // A class folder with no images.
    const char *r = tmp_dir("emptyclass");
    char p[1100];
    snprintf(p, sizeof p, "%s/a", r);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/a/x.png", r);
    copy_file(FIX "imagefolder/cat/b.png", p, SIZE_MAX);
    snprintf(p, sizeof p, "%s/b", r);
    mkdir(p, 0755);
    expect_fail("imagefolder", r, "all", p, "class folder has no images");
}

// --- CLI ---------------------------------------------------------------------------------

TEST(data_cli_dataset_info) {
    char err[2048];
    const char *out = test_path("info.txt"), *labels = test_path("labels.npy");
    char args[512];
    snprintf(args, sizeof args, "dataset-info --data cifar10:" FIX "cifar10 --split all --head 2 "
             "--labels '%s'", labels);
    int rc = run_laic(args, out, err, sizeof err);
    REQUIRE(rc == 0, "exit %d: %s", rc, err);
    FILE *f = fopen(out, "rb");
    REQUIRE(f, "no stdout");
    char text[8192] = {0};
    size_t r = fread(text, 1, sizeof text - 1, f);
    text[r] = 0;
    fclose(f);
    CHECK(strstr(text, "dataset: cifar10") && strstr(text, "items: 8, 32x32 RGB in memory") &&
              strstr(text, "classes: 10 (0 unlabeled items)"), "summary lines:\n%s", text);
    CHECK(strstr(text, "      3      2  c10name3\n") != NULL, "class 3 has 2 items:\n%s", text);
    CHECK(strstr(text, "  0  9  c10name9  mean RGB") && !strstr(text, "\n  2  "),
          "first 2 items only:\n%s", text);
    Npy got, want;
    REQUIRE(npy_read_i64(labels, &got, 1, NULL) == 0, "%s", laic_last_error());
    REQUIRE(npy_read_i64(FIX "cifar10_all_labels.npy", &want, 1, NULL) == 0, "%s", laic_last_error());
    CHECK(got.count == want.count && !memcmp(got.data, want.data, want.count * 8), "--labels file");
    npy_free(&got);
    npy_free(&want);
}

TEST(data_cli_dataset_info_errors) {
    char err[2048], args[512];
    const char *labels = test_path("bad_labels.npy");
    const char *missing = test_path("nowhere");
    snprintf(args, sizeof args, "dataset-info --data '%s' --labels '%s'", missing, labels);
    int rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, missing) && strstr(err, "laic: "),
          "missing dataset: exit %d, stderr: %s", rc, err);
    CHECK(!file_exists(labels), "no labels file left behind");
    snprintf(args, sizeof args, "dataset-info --data " FIX "cifar10 --split val --labels '%s'", labels);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, "unknown split 'val'"), "exit %d: %s", rc, err);
    CHECK(!file_exists(labels), "no labels file left behind");
    rc = run_laic("dataset-info --split test", NULL, err, sizeof err);
    CHECK(rc == 2 && count_lines(err) == 1 && strstr(err, "--data"), "missing --data: %d %s", rc, err);
}
