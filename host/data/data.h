/*
 * data.h — dataset loaders: ImageFolder, CIFAR-10/100 binary, STL-10 binary, IDX (MNIST,
 * Fashion-MNIST, plain or .gz) and CSV lists, with train/test split selection.
 *
 * Promise: a Dataset is a list of N labelled items in a fixed, documented order:
 *  - fixed-size formats (CIFAR, STL-10, IDX) are decoded once into RGB8 pixels (N,h,w,3);
 *    grayscale IDX is replicated to 3 channels (SPEC §3);
 *  - file formats (ImageFolder, CSV) keep paths, decoded on demand by dataset_get_rgb8()
 *    (host/model/image.h, PIL-exact).
 * Split "all" is train followed by test. Every error is one line naming the file and the
 * problem (laic_error); on error the Dataset is left zeroed and nothing leaks.
 *
 * Kinds and files (directory `path` unless noted):
 *   cifar10     data_batch_1.bin.. (train, consecutive from 1), test_batch.bin; records of
 *               1 label + 3072 bytes (R,G,B planes, 32×32 row-major); names: batches.meta.txt,
 *               else the standard 10 CIFAR-10 names
 *   cifar100    train.bin, test.bin; records of coarse label, fine label, 3072 bytes; the fine
 *               label is used; names: fine_label_names.txt, else "0".."99"
 *   stl10       train_X.bin/train_y.bin, test_X.bin/test_y.bin; images 3×96×96 column-major,
 *               labels 1..10 stored → 0..9; names: class_names.txt, else the standard 10
 *   idx         {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz] ('.' instead of the middle
 *               '-' accepted); names: class_names.txt, else Fashion-MNIST's 10 when the path
 *               contains "fashion", else "0".."K-1"
 *   imagefolder class = sub-folder (sorted by name, byte order), images (.jpg .jpeg .png,
 *               recursive) sorted by path within; a root holding only images (no class
 *               folders) is one unlabeled set. If the root has train/ or test/ sub-folders the
 *               split selects them (all = union of the classes); otherwise the folder has no
 *               splits and every split value gives the whole folder.
 *   csv         (a file) lines "path[,label]"; first line is a header when its first field is
 *               path|file|filename|image|filepath; blank lines and lines starting with '#' are
 *               skipped; no quoting (paths with ',' are not supported); relative paths are
 *               relative to the CSV's directory; empty label or -1 = unlabeled. Labels are
 *               integers (classes "0".."K-1", K = max+1) unless any label is not an integer,
 *               in which case all labels are class names, classes sorted by name. A CSV has no
 *               splits (as imagefolder without split sub-folders).
 *   auto        a file → csv; a directory → the kind whose files it holds (looking one level
 *               into cifar-10-batches-bin/, cifar-100-binary/, stl10_binary/), else imagefolder.
 *
 * Dimension letters: N items, K classes, h×w image size.
 */
#ifndef LAIC_DATA_H
#define LAIC_DATA_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    DATA_AUTO = 0,
    DATA_IMAGEFOLDER,
    DATA_CIFAR10,
    DATA_CIFAR100,
    DATA_STL10,
    DATA_IDX,
    DATA_CSV,
} DataKind;

typedef struct {
    DataKind kind;        // resolved kind (never DATA_AUTO after a successful open)
    char split[8];        // "train", "test" or "all": what was asked for
    char *root;           // (malloc'd) the directory or file actually read (after auto descent)
    size_t n;             // N items
    int n_classes;        // K (0 for an unlabeled set)
    char **class_names;   // (K) malloc'd strings; "0".."K-1" when the source has no names
    int64_t *labels;      // (N) in 0..K-1, or -1 when unlabeled
    uint8_t *pixels;      // (N,h,w,3) RGB8 for in-memory formats, else NULL
    int h, w;             // image size of `pixels` (0 for path datasets)
    char **paths;         // (N) malloc'd image paths for file formats, else NULL
} Dataset;

/* "imagefolder", "cifar10", ... ("auto" for DATA_AUTO). */
const char *dataset_kind_name(DataKind k);
/* Parses a kind name; -1 (error recorded, naming `what`) when unknown. */
int dataset_parse_kind(const char *name, const char *what, DataKind *out);

/* Opens a dataset. kind: imagefolder|cifar10|cifar100|stl10|idx|csv|auto (NULL = auto);
 * split: train|test|all (NULL = all). */
int dataset_open(Dataset *d, const char *kind, const char *path, const char *split);

/* Opens "[KIND:]PATH" (e.g. "cifar10:/data/cifar-10-batches-bin", "/data/pets"): a prefix is a
 * kind only when it is one of the kind names, so other paths containing ':' still work. */
int dataset_open_spec(Dataset *d, const char *spec, const char *split);

/* RGB8 (h,w,3) of item i, malloc'd (*rgb; caller frees). Path datasets decode the file. */
int dataset_get_rgb8(const Dataset *d, size_t i, uint8_t **rgb, int *h, int *w);

/* counts (K): items per class (unlabeled items are not counted); returns the unlabeled count. */
size_t dataset_class_counts(const Dataset *d, size_t *counts);

void dataset_free(Dataset *d);

#endif
