/*
 * data.c — dataset loaders (see data.h for the formats, orders and naming rules).
 *
 * Structure: each format has a per-split loader that fills a Dataset "part"; split "all" opens
 * train and test and concatenates them; class names are resolved last, from a names file next
 * to the data, a built-in list, or generated "0".."K-1". Binary formats are validated by size
 * before anything is allocated, so a truncated file is an error naming it, never a short read.
 *
 * Dimension letters: N items, K classes, h×w image size.
 */
#include "data/data.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>

#include "model/image.h"
#include "io/err.h"
#include "io/gz.h"

static const char *const k_kind_names[] = {"auto", "imagefolder", "cifar10", "cifar100",
                                           "stl10", "idx", "csv"};
#define N_KINDS ((int)(sizeof k_kind_names / sizeof k_kind_names[0]))

static const char *const k_cifar10_names[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                                "dog", "frog", "horse", "ship", "truck"};
static const char *const k_stl10_names[10] = {"airplane", "bird", "car", "cat", "deer",
                                              "dog", "horse", "monkey", "ship", "truck"};
static const char *const k_fashion_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress",
                                                "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                                                "Ankle boot"};

// --- small helpers -----------------------------------------------------------------------

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = mallocCheck(n);
    memcpy(p, s, n);
    return p;
}

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = mallocCheck(a + b + 2);
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int file_in(const char *dir, const char *name) {
    char *p = path_join(dir, name);
    int r = is_file(p);
    free(p);
    return r;
}

static void free_strs(char **v, size_t n) {
    if (!v) return;
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct {
    char **v;
    size_t n, cap;
} StrVec;

static void sv_push(StrVec *s, char *owned) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->v = realloc(s->v, s->cap * sizeof(char *));
        LAIC_ASSERT(s->v);
    }
    s->v[s->n++] = owned;
}

static void sv_free(StrVec *s) {
    free_strs(s->v, s->n);
    memset(s, 0, sizeof *s);
}

// Whole file into memory (binary formats are at most a few hundred MB).
static int read_file(const char *path, uint8_t **buf, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return laic_error("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return laic_error("%s: not a regular file", path);
    }
    size_t len = (size_t)st.st_size;
    uint8_t *b = mallocCheck(len ? len : 1);
    size_t r = fread(b, 1, len, f);
    fclose(f);
    if (r != len) {
        free(b);
        return laic_error("%s: read error (%zu of %zu bytes)", path, r, len);
    }
    *buf = b;
    *n = len;
    return 0;
}

// Reads a names file (one name per line, trailing whitespace trimmed, blank lines skipped).
// A missing file is not an error: *k = 0.
static int read_names(const char *path, char ***names, int *k) {
    *names = NULL;
    *k = 0;
    if (!is_file(path)) return 0;
    FILE *f = fopen(path, "rb");
    if (!f) return laic_error("%s: cannot open: %s", path, strerror(errno));
    StrVec v = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && isspace((unsigned char)line[len - 1])) line[--len] = 0;
        if (len) sv_push(&v, xstrdup(line));
    }
    free(line);
    fclose(f);
    if (!v.n) {
        sv_free(&v);
        return laic_error("%s: no class names in the file", path);
    }
    *names = v.v;
    *k = (int)v.n;
    return 0;
}

// Sets d->class_names/n_classes: names file (dir/fname) if present, else `builtin` (bk names),
// else "0".."K-1" with K = max(max label + 1, bk) (bk: the format's class count, 0 = unknown).
// Labels must be < K.
static int finish_classes(Dataset *d, const char *dir, const char *fname,
                          const char *const *builtin, int bk) {
    int64_t maxlab = -1;
    for (size_t i = 0; i < d->n; i++)
        if (d->labels[i] > maxlab) maxlab = d->labels[i];
    char *np = fname ? path_join(dir, fname) : NULL;
    char **names = NULL;
    int k = 0;
    if (np && read_names(np, &names, &k)) {
        free(np);
        return -1;
    }
    if (names) {
        if (maxlab >= k) {
            laic_error("%s: %d class names, but the data has label %lld ---> HINT: one name per "
                       "line, in label order", np, k, (long long)maxlab);
            free_strs(names, (size_t)k);
            free(np);
            return -1;
        }
    } else if (builtin) {
        k = bk;
        LAIC_ASSERT(maxlab < k);   // the loaders check label ranges against bk
        names = mallocCheck((size_t)k * sizeof(char *));
        for (int c = 0; c < k; c++) names[c] = xstrdup(builtin[c]);
    } else {
        k = maxlab + 1 > bk ? (int)(maxlab + 1) : bk;
        names = mallocCheck((size_t)(k ? k : 1) * sizeof(char *));
        for (int c = 0; c < k; c++) {
            char b[24];
            snprintf(b, sizeof b, "%d", c);
            names[c] = xstrdup(b);
        }
    }
    free(np);
    d->class_names = names;
    d->n_classes = k;
    return 0;
}

static void alloc_pixels(Dataset *d, size_t n, int h, int w) {
    d->n = n;
    d->h = h;
    d->w = w;
    d->pixels = mallocCheck(n * (size_t)h * (size_t)w * 3);
    d->labels = mallocCheck((n ? n : 1) * sizeof(int64_t));
}

// Appends part b to a (both in-memory, same image size); b is consumed.
static int concat_parts(Dataset *a, Dataset *b, const char *root) {
    if (a->h != b->h || a->w != b->w) {
        laic_error("%s: train images are %dx%d but test images are %dx%d", root, a->h, a->w, b->h,
                   b->w);
        return -1;
    }
    size_t px = (size_t)a->h * (size_t)a->w * 3;
    a->pixels = realloc(a->pixels, (a->n + b->n) * px);
    a->labels = realloc(a->labels, (a->n + b->n) * sizeof(int64_t));
    LAIC_ASSERT(a->pixels && a->labels);
    memcpy(a->pixels + a->n * px, b->pixels, b->n * px);
    memcpy(a->labels + a->n, b->labels, b->n * sizeof(int64_t));
    a->n += b->n;
    dataset_free(b);
    return 0;
}

// --- CIFAR-10 / CIFAR-100 ----------------------------------------------------------------

// Decodes one CIFAR batch file: records of nlab label bytes + 3072 pixel bytes (R,G,B planes).
static int cifar_read_file(const char *path, int nlab, uint8_t *pix /*(n,32,32,3)*/,
                           int64_t *labels /*(n)*/, size_t n) {
    uint8_t *buf;
    size_t len;
    if (read_file(path, &buf, &len)) return -1;
    size_t rec = (size_t)nlab + 3072;
    LAIC_ASSERT(len == n * rec);   // checked by the caller from the size
    for (size_t i = 0; i < n; i++) {
        const uint8_t *r = buf + i * rec;
        int l0 = r[0], l1 = r[nlab - 1];   // copied: the error paths free buf first
        if (nlab == 1 && l0 > 9) {
            free(buf);
            return laic_error("%s: record %zu has label %d (CIFAR-10 labels are 0..9)", path, i, l0);
        }
        if (nlab == 2 && (l0 > 19 || l1 > 99)) {
            free(buf);
            return laic_error("%s: record %zu has coarse/fine labels %d/%d (CIFAR-100: 0..19/0..99)",
                              path, i, l0, l1);
        }
        labels[i] = r[nlab - 1];   // CIFAR-100: the fine label
        const uint8_t *p = r + nlab;
        uint8_t *o = pix + i * 3072;
        for (int j = 0; j < 1024; j++) {
            o[3 * j] = p[j];
            o[3 * j + 1] = p[1024 + j];
            o[3 * j + 2] = p[2048 + j];
        }
    }
    free(buf);
    return 0;
}

static int cifar_part(Dataset *d, const char *dir, int c100, int train) {
    StrVec files = {0};
    if (c100) {
        sv_push(&files, path_join(dir, train ? "train.bin" : "test.bin"));
    } else if (!train) {
        sv_push(&files, path_join(dir, "test_batch.bin"));
    } else {
        // Train batches must be consecutive from 1, so a lost batch is an error, not a
        // silently smaller training set.
        int last = 0;
        for (int b = 1; b <= 99; b++) {
            char name[32];
            snprintf(name, sizeof name, "data_batch_%d.bin", b);
            if (file_in(dir, name)) last = b;
        }
        for (int b = 1; b <= last; b++) {
            char name[32];
            snprintf(name, sizeof name, "data_batch_%d.bin", b);
            char *p = path_join(dir, name);
            if (!is_file(p)) {
                laic_error("%s: missing, but data_batch_%d.bin exists (CIFAR-10 train batches "
                           "must be consecutive)", p, last);
                free(p);
                sv_free(&files);
                return -1;
            }
            sv_push(&files, p);
        }
        if (!last) {
            sv_free(&files);
            return laic_error("%s: no data_batch_1.bin (CIFAR-10 binary train split) ---> HINT: "
                              "use the 'CIFAR-10 binary version' (cifar-10-batches-bin)", dir);
        }
    }
    size_t rec = (size_t)(c100 ? 2 : 1) + 3072, total = 0;
    size_t *counts = mallocCheck(files.n * sizeof(size_t));
    for (size_t f = 0; f < files.n; f++) {
        struct stat st;
        if (stat(files.v[f], &st) != 0 || !S_ISREG(st.st_mode)) {
            laic_error("%s: no such file (CIFAR-%s %s split)", files.v[f], c100 ? "100" : "10",
                       train ? "train" : "test");
            free(counts);
            sv_free(&files);
            return -1;
        }
        size_t len = (size_t)st.st_size;
        if (len == 0 || len % rec) {
            laic_error("%s: size %zu is not a positive multiple of the %zu-byte CIFAR-%s record "
                       "(truncated or not CIFAR-%s?)", files.v[f], len, rec, c100 ? "100" : "10",
                       c100 ? "100" : "10");
            free(counts);
            sv_free(&files);
            return -1;
        }
        counts[f] = len / rec;
        total += counts[f];
    }
    alloc_pixels(d, total, 32, 32);
    size_t at = 0;
    int rc = 0;
    for (size_t f = 0; f < files.n && !rc; f++) {
        rc = cifar_read_file(files.v[f], c100 ? 2 : 1, d->pixels + at * 3072, d->labels + at,
                             counts[f]);
        at += counts[f];
    }
    free(counts);
    sv_free(&files);
    if (rc) dataset_free(d);
    return rc;
}

// --- STL-10 ------------------------------------------------------------------------------

#define STL_PX (3 * 96 * 96)

static int stl_part(Dataset *d, const char *dir, int train) {
    char *xp = path_join(dir, train ? "train_X.bin" : "test_X.bin");
    char *yp = path_join(dir, train ? "train_y.bin" : "test_y.bin");
    uint8_t *x = NULL, *y = NULL;
    size_t xn = 0, yn = 0;
    int rc = -1;
    if (!is_file(xp)) {
        laic_error("%s: no such file (STL-10 %s split)", xp, train ? "train" : "test");
        goto done;
    }
    if (!is_file(yp)) {
        laic_error("%s: no such file (STL-10 labels for %s)", yp, xp);
        goto done;
    }
    if (read_file(xp, &x, &xn) || read_file(yp, &y, &yn)) goto done;
    if (xn == 0 || xn % STL_PX) {
        laic_error("%s: size %zu is not a positive multiple of %d bytes (3x96x96 images; "
                   "truncated?)", xp, xn, STL_PX);
        goto done;
    }
    if (yn != xn / STL_PX) {
        laic_error("%s: %zu labels for %zu images in %s (truncated?)", yp, yn, xn / STL_PX, xp);
        goto done;
    }
    alloc_pixels(d, yn, 96, 96);
    for (size_t i = 0; i < yn; i++) {
        if (y[i] < 1 || y[i] > 10) {
            laic_error("%s: label %zu is %d (STL-10 labels are 1..10)", yp, i, y[i]);
            dataset_free(d);
            goto done;
        }
        d->labels[i] = y[i] - 1;
        // Stored as MATLAB writes it: per channel, column-major (x outer, y inner).
        const uint8_t *src = x + i * STL_PX;
        uint8_t *o = d->pixels + i * STL_PX;
        for (int c = 0; c < 3; c++)
            for (int col = 0; col < 96; col++)
                for (int row = 0; row < 96; row++)
                    o[(row * 96 + col) * 3 + c] = src[c * 9216 + col * 96 + row];
    }
    rc = 0;
done:
    free(x);
    free(y);
    free(xp);
    free(yp);
    return rc;
}

// --- IDX (MNIST, Fashion-MNIST) ----------------------------------------------------------

// Finds "<prefix>-<what>-idx<d>-ubyte[.gz]" (or ".idx<d>-ubyte") in dir; malloc'd or NULL.
static char *idx_find(const char *dir, const char *prefix, const char *what, int nd) {
    for (int sep = 0; sep < 2; sep++)
        for (int gz = 0; gz < 2; gz++) {
            char name[96];
            snprintf(name, sizeof name, "%s-%s%cidx%d-ubyte%s", prefix, what, sep ? '.' : '-', nd,
                     gz ? ".gz" : "");
            char *p = path_join(dir, name);
            if (is_file(p)) return p;
            free(p);
        }
    return NULL;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

// Parses an IDX ubyte file of `nd` dims; *data points into buf.
static int idx_parse(const char *path, const uint8_t *buf, size_t len, int nd, uint32_t *dims,
                     const uint8_t **data) {
    uint32_t magic = len >= 4 ? be32(buf) : 0;
    if (len < 4 || magic != (0x0800u | (uint32_t)nd))
        return laic_error("%s: bad IDX magic 0x%08x (expected 0x%08x: unsigned bytes, %d dims)",
                          path, len >= 4 ? magic : 0, 0x0800u | (uint32_t)nd, nd);
    size_t hdr = 4 + 4 * (size_t)nd;
    if (len < hdr) return laic_error("%s: truncated IDX header", path);
    size_t want = 1;
    for (int i = 0; i < nd; i++) {
        dims[i] = be32(buf + 4 + 4 * i);
        // Saturate instead of overflowing on a garbage header; it then fails the size check.
        want = dims[i] && want > SIZE_MAX / dims[i] ? SIZE_MAX : want * dims[i];
    }
    if (len - hdr != want)
        return laic_error("%s: %zu data bytes, but the header's dimensions need %zu (%s)", path,
                          len - hdr, want, len - hdr < want ? "truncated" : "trailing data");
    *data = buf + hdr;
    return 0;
}

// Reads an IDX file of `nd` dims (plain or gzip) no further than its header declares: the
// header comes first, then the content is read with that size as the bound, so a gzip bomb (or
// a header claiming terabytes) fails before it is decompressed or allocated.
static int idx_read(const char *path, int nd, uint8_t **buf, size_t *n) {
    uint8_t head[4 + 4 * 3];
    size_t hdr = 4 + 4 * (size_t)nd, got = 0;
    if (gz_read_head(path, head, hdr, &got)) return -1;
    uint32_t dims[3];
    const uint8_t *data;
    if (got < hdr || be32(head) != (0x0800u | (uint32_t)nd))
        return idx_parse(path, head, got, nd, dims, &data);   // its message (magic, truncated)
    size_t want = 1;
    for (int i = 0; i < nd; i++) {
        uint32_t d = be32(head + 4 + 4 * i);
        want = d && want > SIZE_MAX / d ? SIZE_MAX : want * d;
    }
    const size_t total = want > SIZE_MAX - hdr ? SIZE_MAX : hdr + want;
    uint32_t isize;
    int is_gz = gz_declared_size(path, &isize);
    if (is_gz < 0) return -1;
    if (is_gz && total >= ((size_t)1 << 32))
        return laic_error("%s: the IDX header declares %zu bytes; gzip files of 4 GiB or more are "
                          "not read ---> HINT: decompress it", path, total);
    if (is_gz && (uint32_t)total != isize)
        return laic_error("%s: the IDX header declares %zu bytes, the gzip trailer %u (truncated, "
                          "corrupt, or a gzip bomb)", path, total, isize);
    return gz_read_all(path, total, buf, n);
}

static int idx_part(Dataset *d, const char *dir, int train) {
    const char *prefix = train ? "train" : "t10k";
    char *ip = idx_find(dir, prefix, "images", 3), *lp = idx_find(dir, prefix, "labels", 1);
    uint8_t *ib = NULL, *lb = NULL;
    size_t in = 0, ln = 0;
    int rc = -1;
    uint32_t idims[3], ldims[1];
    const uint8_t *pix, *lab;
    if (!ip) {
        laic_error("%s: no %s-images-idx3-ubyte[.gz] (IDX %s split)", dir, prefix,
                   train ? "train" : "test");
        goto done;
    }
    if (!lp) {
        laic_error("%s: no %s-labels-idx1-ubyte[.gz] for %s", dir, prefix, ip);
        goto done;
    }
    if (idx_read(ip, 3, &ib, &in) || idx_parse(ip, ib, in, 3, idims, &pix)) goto done;
    if (idx_read(lp, 1, &lb, &ln) || idx_parse(lp, lb, ln, 1, ldims, &lab)) goto done;
    if (ldims[0] != idims[0]) {
        laic_error("%s: %u labels for %u images in %s", lp, ldims[0], idims[0], ip);
        goto done;
    }
    if (!idims[1] || !idims[2] || idims[1] > 65536 || idims[2] > 65536) {
        laic_error("%s: bad image size %ux%u", ip, idims[1], idims[2]);
        goto done;
    }
    alloc_pixels(d, idims[0], (int)idims[1], (int)idims[2]);
    size_t hw = (size_t)idims[1] * idims[2];
    for (size_t i = 0; i < d->n; i++) {
        d->labels[i] = lab[i];
        const uint8_t *g = pix + i * hw;
        uint8_t *o = d->pixels + i * hw * 3;
        for (size_t j = 0; j < hw; j++) o[3 * j] = o[3 * j + 1] = o[3 * j + 2] = g[j];   // gray → RGB
    }
    rc = 0;
done:
    free(ib);
    free(lb);
    free(ip);
    free(lp);
    return rc;
}

// --- ImageFolder -------------------------------------------------------------------------

static int has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

// Appends the images under dir (recursive, hidden entries skipped) to out, unsorted.
static int list_images(const char *dir, StrVec *out, int depth) {
    if (depth > 32) return laic_error("%s: folders nested too deep (a symlink loop?)", dir);
    DIR *dp = opendir(dir);
    if (!dp) return laic_error("%s: cannot open directory: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(dp))) {
        if (e->d_name[0] == '.') continue;
        char *p = path_join(dir, e->d_name);
        struct stat st;
        if (stat(p, &st) != 0) {
            free(p);   // a dangling symlink is not an image
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            rc = list_images(p, out, depth + 1);
            free(p);
        } else if (S_ISREG(st.st_mode) && has_image_ext(e->d_name)) {
            sv_push(out, p);
        } else {
            free(p);
        }
    }
    closedir(dp);
    return rc;
}

// Scans one ImageFolder root into parallel lists (class name or NULL, path).
static int folder_scan(const char *root, StrVec *cls, StrVec *paths) {
    DIR *dp = opendir(root);
    if (!dp) return laic_error("%s: cannot open directory: %s", root, strerror(errno));
    StrVec sub = {0};
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.') continue;
        char *p = path_join(root, e->d_name);
        if (is_dir(p)) sv_push(&sub, xstrdup(e->d_name));
        free(p);
    }
    closedir(dp);
    int rc = 0;
    if (!sub.n) {   // no class folders: one unlabeled set of the images in root
        size_t before = paths->n;
        rc = list_images(root, paths, 0);
        if (!rc && paths->n == before)
            rc = laic_error("%s: no images (.jpg .jpeg .png) and no class folders", root);
        if (!rc) {
            qsort(paths->v + before, paths->n - before, sizeof(char *), cmp_str);
            while (cls->n < paths->n) sv_push(cls, NULL);
        }
        sv_free(&sub);
        return rc;
    }
    qsort(sub.v, sub.n, sizeof(char *), cmp_str);
    for (size_t c = 0; c < sub.n && !rc; c++) {
        char *cd = path_join(root, sub.v[c]);
        size_t before = paths->n;
        rc = list_images(cd, paths, 1);
        if (!rc && paths->n == before)
            rc = laic_error("%s: class folder has no images (.jpg .jpeg .png)", cd);
        free(cd);
        if (rc) break;
        qsort(paths->v + before, paths->n - before, sizeof(char *), cmp_str);
        while (cls->n < paths->n) sv_push(cls, xstrdup(sub.v[c]));
    }
    sv_free(&sub);
    return rc;
}

// Turns (class name or NULL) per item into sorted class names and label indices; consumes cls.
static void names_to_labels(Dataset *d, StrVec *cls) {
    StrVec u = {0};
    for (size_t i = 0; i < cls->n; i++)
        if (cls->v[i]) sv_push(&u, cls->v[i]);   // borrowed pointers
    if (u.n) qsort(u.v, u.n, sizeof(char *), cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < u.n; i++)
        if (!k || strcmp(u.v[k - 1], u.v[i])) u.v[k++] = u.v[i];
    d->n_classes = (int)k;
    d->class_names = mallocCheck((k ? k : 1) * sizeof(char *));
    for (size_t c = 0; c < k; c++) d->class_names[c] = xstrdup(u.v[c]);
    d->labels = mallocCheck((cls->n ? cls->n : 1) * sizeof(int64_t));
    for (size_t i = 0; i < cls->n; i++) {
        d->labels[i] = -1;
        if (!cls->v[i]) continue;
        char **hit = bsearch(&cls->v[i], d->class_names, k, sizeof(char *), cmp_str);
        LAIC_ASSERT(hit);
        d->labels[i] = hit - d->class_names;
    }
    free(u.v);
    sv_free(cls);
}

static int open_imagefolder(Dataset *d, const char *root, const char *split) {
    if (!is_dir(root)) return laic_error("%s: no such directory (ImageFolder)", root);
    char *tr = path_join(root, "train"), *te = path_join(root, "test");
    int htr = is_dir(tr), hte = is_dir(te), rc = 0;
    StrVec cls = {0}, paths = {0};
    if (!htr && !hte) {
        rc = folder_scan(root, &cls, &paths);
    } else {
        int want_tr = strcmp(split, "test") != 0, want_te = strcmp(split, "train") != 0;
        if ((want_tr && !htr) || (want_te && !hte))
            rc = laic_error("%s: no %s/ sub-folder for split '%s' (the folder has %s/ only)", root,
                            want_tr && !htr ? "train" : "test", split, htr ? "train" : "test");
        if (!rc && want_tr) rc = folder_scan(tr, &cls, &paths);
        if (!rc && want_te) rc = folder_scan(te, &cls, &paths);
    }
    free(tr);
    free(te);
    if (rc) {
        sv_free(&cls);
        sv_free(&paths);
        return -1;
    }
    d->n = paths.n;
    d->paths = paths.v;
    names_to_labels(d, &cls);
    return 0;
}

// --- CSV ---------------------------------------------------------------------------------

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

// Parses a non-negative decimal integer label; 1 on success.
static int parse_uint(const char *s, int64_t *v) {
    if (!*s) return 0;
    int64_t x = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || x > (INT64_MAX - 9) / 10) return 0;
        x = x * 10 + (*s - '0');
    }
    *v = x;
    return 1;
}

static int open_csv(Dataset *d, const char *csv) {
    FILE *f = fopen(csv, "rb");
    if (!f) return laic_error("%s: cannot open: %s", csv, strerror(errno));
    // Paths are relative to the CSV's directory.
    char *dir = xstrdup(csv), *slash = strrchr(dir, '/');
    if (slash) slash[1] = 0; else dir[0] = 0;
    StrVec paths = {0}, labs = {0};   // labs: the label text, NULL when unlabeled
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    int rc = 0, first = 1;
    while (!rc && getline(&line, &cap, f) >= 0) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#') continue;
        char *comma = strchr(s, ',');
        if (comma && strchr(comma + 1, ',')) {
            rc = laic_error("%s:%zu: expected 'path' or 'path,label', got more than 2 fields "
                            "(paths with ',' are not supported)", csv, lineno);
            break;
        }
        if (comma) *comma = 0;
        char *p = trim(s), *lab = comma ? trim(comma + 1) : NULL;
        if (first) {
            first = 0;
            static const char *const hdr[] = {"path", "file", "filename", "image", "filepath"};
            int is_hdr = 0;
            for (int h = 0; h < 5; h++) is_hdr |= !strcasecmp(p, hdr[h]);
            if (is_hdr) continue;
        }
        if (!*p) {
            rc = laic_error("%s:%zu: empty path", csv, lineno);
            break;
        }
        if (lab && *lab == '-' && strcmp(lab, "-1")) {
            rc = laic_error("%s:%zu: negative label '%s' (use -1 or nothing for unlabeled)", csv,
                            lineno, lab);
            break;
        }
        // A CSV in the current directory (no '/' in its name) keeps its relative paths as is.
        char *full = p[0] == '/' || !dir[0] ? xstrdup(p) : path_join(dir, p);
        if (!is_file(full)) {
            rc = laic_error("%s:%zu: no such image file '%s'", csv, lineno, full);
            free(full);
            break;
        }
        sv_push(&paths, full);
        sv_push(&labs, lab && *lab && strcmp(lab, "-1") ? xstrdup(lab) : NULL);
    }
    free(line);
    fclose(f);
    free(dir);
    if (!rc && !paths.n) rc = laic_error("%s: no image rows", csv);
    if (rc) {
        sv_free(&paths);
        sv_free(&labs);
        return -1;
    }
    d->n = paths.n;
    d->paths = paths.v;
    int all_int = 1;
    for (size_t i = 0; i < labs.n; i++) {
        int64_t v;
        if (labs.v[i] && !parse_uint(labs.v[i], &v)) all_int = 0;
    }
    if (!all_int) {
        names_to_labels(d, &labs);
        return 0;
    }
    d->labels = mallocCheck(d->n * sizeof(int64_t));
    for (size_t i = 0; i < labs.n; i++) {
        d->labels[i] = -1;
        if (labs.v[i]) parse_uint(labs.v[i], &d->labels[i]);
        if (d->labels[i] >= (1 << 20)) {
            laic_error("%s: label %lld is too large for a class index", csv, (long long)d->labels[i]);
            sv_free(&labs);
            dataset_free(d);
            return -1;
        }
    }
    sv_free(&labs);
    return finish_classes(d, "", NULL, NULL, 0);
}

// --- kinds, auto-detection and the public entry points -----------------------------------

const char *dataset_kind_name(DataKind k) {
    return (int)k >= 0 && (int)k < N_KINDS ? k_kind_names[k] : "?";
}

int dataset_parse_kind(const char *name, const char *what, DataKind *out) {
    for (int k = 0; k < N_KINDS; k++)
        if (!strcmp(name, k_kind_names[k])) {
            *out = (DataKind)k;
            return 0;
        }
    return laic_error("%s: unknown dataset kind '%s' ---> HINT: one of auto, imagefolder, "
                      "cifar10, cifar100, stl10, idx, csv", what, name);
}

// Does dir hold the marker files of kind k?
static int holds_kind(const char *dir, DataKind k) {
    switch (k) {
    case DATA_CIFAR10: return file_in(dir, "data_batch_1.bin") || file_in(dir, "test_batch.bin");
    case DATA_CIFAR100: return file_in(dir, "train.bin") || file_in(dir, "test.bin");
    case DATA_STL10: return file_in(dir, "train_X.bin") || file_in(dir, "test_X.bin");
    case DATA_IDX: {
        char *a = idx_find(dir, "train", "images", 3), *b = idx_find(dir, "t10k", "images", 3);
        int r = a || b;
        free(a);
        free(b);
        return r;
    }
    default: return 0;
    }
}

// The directory the official archives extract to, for `path` one level up.
static const char *archive_subdir(DataKind k) {
    switch (k) {
    case DATA_CIFAR10: return "cifar-10-batches-bin";
    case DATA_CIFAR100: return "cifar-100-binary";
    case DATA_STL10: return "stl10_binary";
    default: return NULL;
    }
}

// Returns the directory to read for kind k (path itself or its archive sub-folder), malloc'd.
static char *resolve_root(const char *path, DataKind k) {
    const char *sub = archive_subdir(k);
    if (sub && !holds_kind(path, k)) {
        char *p = path_join(path, sub);
        if (holds_kind(p, k)) return p;
        free(p);
    }
    return xstrdup(path);
}

static int open_binary(Dataset *d, DataKind k, const char *root, const char *split) {
    int (*part)(Dataset *, const char *, int) = k == DATA_STL10 ? stl_part : k == DATA_IDX ? idx_part : NULL;
    int c100 = k == DATA_CIFAR100;
    Dataset tr = {0}, te = {0};
    int want_tr = strcmp(split, "test") != 0, want_te = strcmp(split, "train") != 0;
    if (want_tr && (part ? part(&tr, root, 1) : cifar_part(&tr, root, c100, 1))) return -1;
    if (want_te && (part ? part(&te, root, 0) : cifar_part(&te, root, c100, 0))) {
        dataset_free(&tr);
        return -1;
    }
    if (want_tr && want_te) {
        if (concat_parts(&tr, &te, root)) {
            dataset_free(&tr);
            dataset_free(&te);
            return -1;
        }
        *d = tr;
    } else {
        *d = want_tr ? tr : te;
    }
    switch (k) {
    case DATA_CIFAR10: return finish_classes(d, root, "batches.meta.txt", k_cifar10_names, 10);
    case DATA_CIFAR100: return finish_classes(d, root, "fine_label_names.txt", NULL, 100);
    case DATA_STL10: return finish_classes(d, root, "class_names.txt", k_stl10_names, 10);
    default: {
        // Fashion-MNIST ships no names file; its IDX files are MNIST's, so go by the path.
        int fashion = strcasestr(root, "fashion") != NULL;
        int64_t maxlab = -1;
        for (size_t i = 0; i < d->n; i++)
            if (d->labels[i] > maxlab) maxlab = d->labels[i];
        char *np = path_join(root, "class_names.txt");
        int has_names = is_file(np);
        free(np);
        if (fashion && !has_names && maxlab > 9) {
            return laic_error("%s: label %lld in a Fashion-MNIST folder (labels are 0..9)", root,
                              (long long)maxlab);
        }
        return finish_classes(d, root, "class_names.txt", fashion ? k_fashion_names : NULL,
                              fashion ? 10 : 0);
    }
    }
}

int dataset_open(Dataset *d, const char *kind, const char *path, const char *split) {
    memset(d, 0, sizeof *d);
    if (!split) split = "all";
    if (!kind) kind = "auto";
    if (strcmp(split, "train") && strcmp(split, "test") && strcmp(split, "all"))
        return laic_error("%s: unknown split '%s' (train, test or all)", path, split);
    DataKind k = DATA_AUTO;
    if (dataset_parse_kind(kind, path, &k)) return -1;
    struct stat st;
    if (stat(path, &st) != 0)
        return laic_error("%s: no such file or directory (dataset)", path);
    if (k == DATA_AUTO) {
        if (S_ISREG(st.st_mode)) {
            k = DATA_CSV;
        } else {
            k = DATA_IMAGEFOLDER;
            const DataKind order[] = {DATA_CIFAR10, DATA_CIFAR100, DATA_STL10, DATA_IDX};
            for (int i = 0; i < 4 && k == DATA_IMAGEFOLDER; i++) {
                const char *sub = archive_subdir(order[i]);
                char *p = sub ? path_join(path, sub) : NULL;
                if (holds_kind(path, order[i]) || (p && holds_kind(p, order[i]))) k = order[i];
                free(p);
            }
        }
    }
    if (k == DATA_CSV ? !S_ISREG(st.st_mode) : !S_ISDIR(st.st_mode))
        return laic_error("%s: is not a %s (dataset kind %s)", path,
                          k == DATA_CSV ? "file" : "directory", dataset_kind_name(k));
    char *root = resolve_root(path, k);
    int rc;
    if (k == DATA_IMAGEFOLDER) rc = open_imagefolder(d, root, split);
    else if (k == DATA_CSV) rc = open_csv(d, root);
    else rc = open_binary(d, k, root, split);
    if (rc) {
        dataset_free(d);
        free(root);
        return -1;
    }
    d->kind = k;
    snprintf(d->split, sizeof d->split, "%s", split);
    d->root = root;
    return 0;
}

int dataset_open_spec(Dataset *d, const char *spec, const char *split) {
    const char *colon = strchr(spec, ':');
    if (colon) {
        for (int k = 1; k < N_KINDS; k++) {
            size_t n = strlen(k_kind_names[k]);
            if ((size_t)(colon - spec) == n && !strncmp(spec, k_kind_names[k], n))
                return dataset_open(d, k_kind_names[k], colon + 1, split);
        }
        if (colon - spec == 4 && !strncmp(spec, "auto", 4))
            return dataset_open(d, "auto", colon + 1, split);
    }
    return dataset_open(d, "auto", spec, split);
}

int dataset_get_rgb8(const Dataset *d, size_t i, uint8_t **rgb, int *h, int *w) {
    if (i >= d->n) return laic_error("%s: item %zu out of range (%zu items)", d->root, i, d->n);
    if (d->pixels) {
        size_t px = (size_t)d->h * (size_t)d->w * 3;
        *rgb = mallocCheck(px);
        memcpy(*rgb, d->pixels + i * px, px);
        *h = d->h;
        *w = d->w;
        return 0;
    }
    return image_load_rgb8(d->paths[i], rgb, h, w);
}

size_t dataset_class_counts(const Dataset *d, size_t *counts) {
    size_t unl = 0;
    for (int c = 0; c < d->n_classes; c++) counts[c] = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (d->labels[i] >= 0 && d->labels[i] < d->n_classes) counts[d->labels[i]]++;
        else unl++;
    }
    return unl;
}

void dataset_free(Dataset *d) {
    free_strs(d->class_names, d->class_names ? (size_t)d->n_classes : 0);
    free_strs(d->paths, d->paths ? d->n : 0);
    free(d->labels);
    free(d->pixels);
    free(d->root);
    memset(d, 0, sizeof *d);
}
