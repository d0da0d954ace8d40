/*
 * fuzz_dataset.c — the fixed-size dataset readers of host/data/data.c (CIFAR-10, CIFAR-100,
 * STL-10, IDX) and the CSV list, through dataset_open as `laic run` and `laic dataset` call it,
 * then dataset_get_rgb8 on the first and last item and dataset_class_counts.
 *
 * Input: one byte choosing the kind and split (low 3 bits: 0 cifar10, 1 cifar100, 2 stl10,
 * 3 idx, 4 csv; bit 3: split "all" instead of "train"), then up to five parts separated by
 * "\xfe\xedPT", written as the kind's files (a missing part: no such file):
 *   cifar10   data_batch_1.bin, test_batch.bin, batches.meta.txt
 *   cifar100  train.bin, test.bin, fine_label_names.txt
 *   stl10     train_X.bin, train_y.bin, class_names.txt, test_X.bin, test_y.bin
 *   idx       train-images-idx3-ubyte, train-labels-idx1-ubyte, class_names.txt,
 *             t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte
 *   csv       list.csv (paths need not exist: items are decoded on demand)
 */
#include <sys/stat.h>

#include "data/data.h"
#include "io/err.h"
#include "fuzz.h"

static const char *const FILES[5][5] = {
    {"data_batch_1.bin", "test_batch.bin", "batches.meta.txt", NULL, NULL},
    {"train.bin", "test.bin", "fine_label_names.txt", NULL, NULL},
    {"train_X.bin", "train_y.bin", "class_names.txt", "test_X.bin", "test_y.bin"},
    {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "class_names.txt",
     "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"},
    {"list.csv", NULL, NULL, NULL, NULL},
};
static const char *const KINDS[5] = {"cifar10", "cifar100", "stl10", "idx", "csv"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int kind = data[0] & 7, all = data[0] >> 3 & 1;
    if (kind > 4) return 0;
    const uint8_t *part[5];
    size_t len[5];
    int np = fuzz_split(data + 1, size - 1, part, len, 5);
    char dir[320], path[400];
    snprintf(dir, sizeof dir, "%s/%s", fuzz_dir(), KINDS[kind]);
    mkdir(dir, 0700);
    for (int i = 0; i < 5; i++) {
        if (!FILES[kind][i]) continue;
        snprintf(path, sizeof path, "%s/%s", dir, FILES[kind][i]);
        if (i < np) {
            FILE *f = fopen(path, "wb");
            if (!f || (len[i] && fwrite(part[i], 1, len[i], f) != len[i]) || fclose(f)) abort();
        } else {
            unlink(path);
        }
    }
    if (kind == 4) snprintf(path, sizeof path, "%s/list.csv", dir);
    Dataset d;
    if (dataset_open(&d, KINDS[kind], kind == 4 ? path : dir, all ? "all" : "train") == 0) {
        if (d.n_classes < 0 || (d.n && !d.labels)) abort();
        for (size_t i = 0; i < d.n; i++)
            if (d.labels[i] < -1 || d.labels[i] >= d.n_classes) abort();
        size_t *counts = malloc(sizeof(size_t) * (size_t)(d.n_classes ? d.n_classes : 1));
        (void)dataset_class_counts(&d, counts);
        free(counts);
        for (int k = 0; k < 2 && d.n; k++) {
            uint8_t *rgb = NULL;
            int h = 0, w = 0;
            if (dataset_get_rgb8(&d, k ? d.n - 1 : 0, &rgb, &h, &w) == 0) free(rgb);
        }
        dataset_free(&d);
    }
    return 0;
}
