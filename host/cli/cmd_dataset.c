/*
 * cmd_dataset.c — `laic dataset-info --data [KIND:]PATH [--split S] [--head N] [--labels OUT]`.
 *
 * Opens a dataset exactly as `laic run` will (host/data/data.h) and prints, on stdout: the resolved
 * kind, root and split, the item count and storage (in-memory h×w or files), one line per
 * class "label count name", then the first N items (label, class, and the path or the mean
 * RGB of the in-memory image). --labels writes the int64 labels (N,) as .npy (atomic; -1 =
 * unlabeled), e.g. for `laic metrics`.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "data/data.h"
#include "io/err.h"
#include "io/npy.h"

int cmd_dataset_info(int argc, char **argv) {
    CliOpt opts[] = {
        {"--data", "[KIND:]PATH", NULL,
         "dataset; KIND = auto|imagefolder|cifar10|cifar100|stl10|idx|csv", NULL, 0},
        {"--split", "S", "all", "train, test or all (= train then test)", NULL, 0},
        {"--head", "N", "5", "print the first N items", NULL, 0},
        {"--labels", "OUT.npy", NULL, "also write the labels as int64 (N,) .npy", NULL, 0},
    };
    const int n = CLI_N(opts);
    if (cli_parse(argc, argv, "dataset-info",
                  "Open a dataset and print its classes, counts per class and first items.", opts,
                  n, NULL, 0, NULL))
        return cli_exit_code();
    long head;
    if (cli_require(opts, n, "--data") || cli_get_long(opts, n, "--head", &head)) return cli_fail(2);
    if (head < 0) {
        laic_error("dataset-info: --head must be >= 0");
        return cli_fail(2);
    }
    Dataset d;
    if (dataset_open_spec(&d, cli_get(opts, n, "--data"), cli_get(opts, n, "--split")))
        return cli_fail(1);
    const char *lab_out = cli_get(opts, n, "--labels");
    if (lab_out) {
        size_t shape[1] = {d.n};
        if (npy_write(lab_out, NPY_I64, 1, shape, d.labels)) {
            dataset_free(&d);
            return cli_fail(1);
        }
    }

    printf("dataset: %s %s (split %s)\n", dataset_kind_name(d.kind), d.root, d.split);
    if (d.pixels) printf("items: %zu, %dx%d RGB in memory\n", d.n, d.h, d.w);
    else printf("items: %zu image files\n", d.n);
    size_t *counts = mallocCheck(((size_t)d.n_classes + 1) * sizeof(size_t));
    size_t unl = dataset_class_counts(&d, counts);
    printf("classes: %d (%zu unlabeled items)\n", d.n_classes, unl);
    printf("  label  count  name\n");
    for (int c = 0; c < d.n_classes; c++)
        printf("  %5d  %5zu  %s\n", c, counts[c], d.class_names[c]);
    free(counts);
    if (head > 0) printf("first items:\n");
    for (size_t i = 0; i < d.n && i < (size_t)head; i++) {
        long long l = (long long)d.labels[i];
        const char *name = l >= 0 ? d.class_names[l] : "-";
        if (d.paths) {
            printf("  %zu  %lld  %s  %s\n", i, l, name, d.paths[i]);
        } else {
            // The mean colour makes items recognisable across tools without dumping pixels.
            size_t hw = (size_t)d.h * (size_t)d.w;
            const unsigned char *p = d.pixels + i * hw * 3;
            double m[3] = {0, 0, 0};
            for (size_t j = 0; j < hw; j++)
                for (int c = 0; c < 3; c++) m[c] += p[3 * j + c];
            printf("  %zu  %lld  %s  mean RGB %.2f %.2f %.2f\n", i, l, name, m[0] / hw, m[1] / hw,
                   m[2] / hw);
        }
    }
    dataset_free(&d);
    return 0;
}
