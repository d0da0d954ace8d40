/*
 * safetensors.c — see safetensors.h.
 *
 * The header is untrusted input: every number is checked to be a non-negative integer that fits
 * (doubles from cJSON, exact below 2^53), every product for overflow, every range against the
 * mapped size, before any tensor byte is touched.
 */
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/atomic.h"
#include "io/err.h"

#define ST_MAX_HEADER ((size_t)100 << 20)   // 100 MB: the official library's limit

size_t st_dtype_size(const char *d) {
    static const struct { const char *name; size_t size; } tab[] = {
        {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2},
        {"I8", 1},  {"U64", 8}, {"U32", 4}, {"U16", 2},  {"U8", 1},  {"BOOL", 1},
        {"F8_E4M3", 1}, {"F8_E5M2", 1},
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (!strcmp(d, tab[i].name)) return tab[i].size;
    return 0;
}

/* A JSON number that is an exact non-negative integer below 2^53 (cJSON stores doubles). */
static int json_size(const cJSON *j, size_t *out) {
    if (!cJSON_IsNumber(j)) return -1;
    double v = j->valuedouble;
    if (!(v >= 0) || v != floor(v) || v >= 9007199254740992.0) return -1;
    *out = (size_t)v;
    return 0;
}

void st_close(StFile *f) {
    if (f->map) munmap(f->map, f->file_size);
    cJSON_Delete(f->json);
    free(f->tensors);
    free(f->by_name);
    memset(f, 0, sizeof *f);
}

static int cmp_begin(const void *a, const void *b) {
    const StTensor *x = *(const StTensor *const *)a, *y = *(const StTensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const StTensor *const *)a)->name, (*(const StTensor *const *)b)->name);
}

/* Names of the header object are unique (__metadata__ included): sorted, then neighbours
 * compared — O(n log n), where comparing every pair took 15 s for 60,000 entries. *nt = the
 * number of tensor entries (all but __metadata__). 0 or -1 with the error recorded. */
static int check_unique_names(const char *path, const cJSON *root, int *nt) {
    size_t n = 0;
    for (const cJSON *e = root->child; e; e = e->next) n++;
    if (n > INT32_MAX) return laic_error("%s: %zu header entries (max %d)", path, n, INT32_MAX);
    const char **names = malloc((n ? n : 1) * sizeof *names);
    if (!names) return laic_error("%s: out of memory for %zu header entries", path, n);
    size_t i = 0;
    *nt = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        names[i++] = e->string;
        if (strcmp(e->string, "__metadata__")) (*nt)++;
    }
    qsort(names, n, sizeof *names, cmp_str);
    int rc = 0;
    for (i = 1; i < n && !rc; i++)
        if (!strcmp(names[i - 1], names[i]))
            rc = laic_error("%s: header names '%s' twice", path, laic_escs(names[i]));
    free(names);
    return rc;
}

/* Parses and checks one tensor entry; 0 or -1 with the error recorded. */
static int parse_tensor(const StFile *f, const cJSON *e, StTensor *t) {
    const char *path = f->path, *name = e->string;
    t->name = name;
    if (!cJSON_IsObject(e))
        return laic_error("%s: tensor '%s': header entry is not an object", path, laic_escs(name));
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(of))
        return laic_error("%s: tensor '%s': needs string dtype, array shape and array data_offsets",
                          path, laic_escs(name));
    t->elem_size = st_dtype_size(dt->valuestring);
    if (!t->elem_size || strlen(dt->valuestring) >= sizeof t->dtype)
        return laic_error("%s: tensor '%s': unknown dtype '%.16s'", path, laic_escs(name),
                          laic_escs(dt->valuestring));
    strcpy(t->dtype, dt->valuestring);
    int nd = cJSON_GetArraySize(sh);
    if (nd > ST_MAX_DIMS)
        return laic_error("%s: tensor '%s': %d dimensions (max %d)", path, laic_escs(name), nd, ST_MAX_DIMS);
    t->ndim = nd;
    t->numel = 1;
    for (int i = 0; i < nd; i++) {
        if (json_size(cJSON_GetArrayItem(sh, i), &t->shape[i]))
            return laic_error("%s: tensor '%s': shape[%d] is not a non-negative integer", path,
                              laic_escs(name), i);
        if (__builtin_mul_overflow(t->numel, t->shape[i], &t->numel))
            return laic_error("%s: tensor '%s': shape overflows", path, laic_escs(name));
    }
    size_t nbytes;
    if (__builtin_mul_overflow(t->numel, t->elem_size, &nbytes))
        return laic_error("%s: tensor '%s': shape overflows", path, laic_escs(name));
    if (cJSON_GetArraySize(of) != 2 || json_size(cJSON_GetArrayItem(of, 0), &t->begin) ||
        json_size(cJSON_GetArrayItem(of, 1), &t->end))
        return laic_error("%s: tensor '%s': data_offsets must be two non-negative integers", path,
                          laic_escs(name));
    if (t->end < t->begin || t->end > f->data_size)
        return laic_error("%s: tensor '%s': data_offsets [%zu, %zu] out of range (data section has "
                          "%zu bytes; truncated file?)", path, laic_escs(name), t->begin, t->end, f->data_size);
    if (t->end - t->begin != nbytes)
        return laic_error("%s: tensor '%s': data_offsets span %zu bytes, shape and dtype %s need %zu",
                          path, laic_escs(name), t->end - t->begin, t->dtype, nbytes);
    return 0;
}

int st_open(StFile *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->path = path;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return laic_error("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return laic_error("%s: not a regular file", path);
    }
    f->file_size = (size_t)st.st_size;
    if (f->file_size < 8) {
        close(fd);
        return laic_error("%s: truncated: %zu bytes is too short for a safetensors header", path,
                          f->file_size);
    }
    void *m = mmap(NULL, f->file_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);   // the mapping stays valid
    if (m == MAP_FAILED) return laic_error("%s: cannot mmap: %s", path, strerror(errno));
    f->map = m;
    const uint8_t *p = m;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | p[i];   // little-endian u64
    if (n > f->file_size - 8) {
        int r = laic_error("%s: header length %llu runs past the end of the file (%zu bytes)", path,
                           (unsigned long long)n, f->file_size);
        st_close(f);
        return r;
    }
    if (n < 2 || n > ST_MAX_HEADER || p[8] != '{') {
        int r = laic_error("%s: not a safetensors file (header length %llu, header must be a JSON "
                           "object)", path, (unsigned long long)n);
        st_close(f);
        return r;
    }
    f->data_size = f->file_size - 8 - (size_t)n;
    const uint8_t *data = p + 8 + n;
    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, (size_t)n);
    f->json = root;
    int nt = 0;
    if (!cJSON_IsObject(root)) {
        laic_error("%s: header is not a valid JSON object", path);
        goto fail;
    }
    if (check_unique_names(path, root, &nt)) goto fail;
    f->tensors = calloc(nt ? (size_t)nt : 1, sizeof *f->tensors);
    if (!f->tensors) {
        laic_error("%s: out of memory for %d tensor entries", path, nt);
        goto fail;
    }
    for (cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e)) {
                laic_error("%s: __metadata__ is not an object", path);
                goto fail;
            }
            for (cJSON *m2 = e->child; m2; m2 = m2->next)
                if (!cJSON_IsString(m2)) {
                    laic_error("%s: __metadata__ value of '%s' is not a string", path, laic_escs(m2->string));
                    goto fail;
                }
            f->meta = e;
            continue;
        }
        StTensor *t = &f->tensors[f->n_tensors];
        if (parse_tensor(f, e, t)) goto fail;
        t->data = data + t->begin;
        f->n_tensors++;
    }
    // st_find's index: tensors sorted by name (names are unique, checked above)
    f->by_name = malloc((nt ? (size_t)nt : 1) * sizeof *f->by_name);
    if (!f->by_name) {
        laic_error("%s: out of memory for %d tensor entries", path, nt);
        goto fail;
    }
    for (int i = 0; i < nt; i++) f->by_name[i] = &f->tensors[i];
    qsort(f->by_name, (size_t)nt, sizeof *f->by_name, cmp_tensor_name);
    // no overlaps and full coverage: sorted by begin, each tensor starts where the last ended
    if (nt) {
        const StTensor **s = malloc((size_t)nt * sizeof *s);
        if (!s) {
            laic_error("%s: out of memory", path);
            goto fail;
        }
        for (int i = 0; i < nt; i++) s[i] = &f->tensors[i];
        qsort(s, (size_t)nt, sizeof *s, cmp_begin);
        size_t pos = 0;
        for (int i = 0; i < nt; i++) {
            if (s[i]->begin < pos) {
                laic_error("%s: tensors '%s' and '%s' overlap (data_offsets [%zu, %zu] and [%zu, %zu])",
                           path, laic_escs(s[i - 1]->name), laic_escs(s[i]->name), s[i - 1]->begin, s[i - 1]->end,
                           s[i]->begin, s[i]->end);
                free(s);
                goto fail;
            }
            if (s[i]->begin > pos) {
                laic_error("%s: bytes [%zu, %zu) of the data section belong to no tensor", path, pos,
                           s[i]->begin);
                free(s);
                goto fail;
            }
            pos = s[i]->end;
        }
        free(s);
        if (pos != f->data_size) {
            laic_error("%s: %zu bytes after the last tensor belong to no tensor", path,
                       f->data_size - pos);
            goto fail;
        }
    } else if (f->data_size) {
        laic_error("%s: %zu data bytes but no tensors", path, f->data_size);
        goto fail;
    }
    return 0;
fail:
    st_close(f);
    return -1;
}

const StTensor *st_find(const StFile *f, const char *name) {
    int lo = 0, hi = f->n_tensors;   // binary search of the name-sorted index
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(f->by_name[mid]->name, name);
        if (!c) return f->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

const char *st_meta(const StFile *f, const char *key) {
    if (!f->meta) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive((const cJSON *)f->meta, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

// --- writer -------------------------------------------------------------------------------------

int st_write(const char *path, const char *const *meta, int n_meta, const StWriteTensor *t, int n) {
    cJSON *root = cJSON_CreateObject();
    cJSON *md = cJSON_AddObjectToObject(root, "__metadata__");
    for (int i = 0; i < n_meta; i++) cJSON_AddStringToObject(md, meta[2 * i], meta[2 * i + 1]);
    size_t off = 0;
    size_t *nbytes = mallocCheck((n ? (size_t)n : 1) * sizeof *nbytes);
    for (int i = 0; i < n; i++) {
        size_t es = st_dtype_size(t[i].dtype), numel = 1;
        if (!es) {
            free(nbytes);
            cJSON_Delete(root);
            return laic_error("%s: tensor '%s': unknown dtype '%s'", path, laic_escs(t[i].name),
                              laic_escs(t[i].dtype));
        }
        cJSON *e = cJSON_AddObjectToObject(root, t[i].name);
        cJSON_AddStringToObject(e, "dtype", t[i].dtype);
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t[i].ndim; d++) {
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)t[i].shape[d]));
            numel *= t[i].shape[d];
        }
        nbytes[i] = numel * es;
        cJSON *of = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + nbytes[i])));
        off += nbytes[i];
    }
    char *js = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!js) {
        free(nbytes);
        return laic_error("%s: cannot build the header", path);
    }
    size_t hl = strlen(js), padded = (hl + 7) / 8 * 8;   // data section 8-byte aligned
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    AtomicFile af;
    int rc = -1;
    if (atomic_open(&af, path)) goto out;
    fwrite(len8, 1, 8, af.fp);
    fwrite(js, 1, hl, af.fp);
    for (size_t i = hl; i < padded; i++) fputc(' ', af.fp);
    for (int i = 0; i < n; i++)
        if (nbytes[i] && fwrite(t[i].data, 1, nbytes[i], af.fp) != nbytes[i]) {
            atomic_abort(&af);
            laic_error("%s: write failed: %s", path, strerror(errno));
            goto out;
        }
    rc = atomic_commit(&af);
out:
    free(js);
    free(nbytes);
    return rc;
}

// --- half precision -----------------------------------------------------------------------------

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 31, m = h & 0x3ff;
    if (e == 0) {   // zero or subnormal: m * 2^-24, exact in float
        float v = (float)m * 0x1p-24f;
        return sign ? -v : v;
    }
    if (e == 31) return u2f(sign | 0x7f800000 | (m << 13));
    return u2f(sign | (e + 112) << 23 | m << 13);
}

float st_bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t st_f32_to_f16(float f) {
    uint32_t x = f2u(f), sign = (x >> 16) & 0x8000, ax = x & 0x7fffffff;
    if (ax > 0x7f800000) return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));   // NaN stays NaN
    if (ax >= 0x477ff000) return (uint16_t)(sign | 0x7c00);   // >= 65520 rounds to inf
    uint32_t e = ax >> 23, m = ax & 0x7fffff, h, rem, half;
    if (e >= 113) {   // normal half: rebias the exponent, keep 10 mantissa bits
        h = (e - 112) << 10 | m >> 13;
        rem = m & 0x1fff;
        half = 0x1000;
    } else {          // subnormal half (or zero): units of 2^-24
        if (ax <= 0x33000000) return (uint16_t)sign;   // <= 2^-25 rounds to zero (tie to even)
        m |= 0x800000;
        uint32_t shift = 126 - e;   // 14 .. 24
        h = m >> shift;
        rem = m & ((1u << shift) - 1);
        half = 1u << (shift - 1);
    }
    if (rem > half || (rem == half && (h & 1))) h++;   // a carry into the exponent is correct
    return (uint16_t)(sign | h);
}

uint16_t st_f32_to_bf16(float f) {
    uint32_t x = f2u(f);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40);   // quiet NaN
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}
