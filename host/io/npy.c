/* npy.c — see npy.h. Format: magic "\x93NUMPY", major, minor, header length (u16 for v1,
 * u32 for v2/v3), then an ASCII Python dict literal padded with spaces to 64 bytes, '\n'. */
#include "io/npy.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/atomic.h"
#include "io/err.h"

static const struct { NpyDtype t; const char *descr; size_t size; const char *name; } k_types[] = {
    {NPY_F32, "<f4", 4, "float32"}, {NPY_F64, "<f8", 8, "float64"}, {NPY_I32, "<i4", 4, "int32"},
    {NPY_I64, "<i8", 8, "int64"},   {NPY_U8, "|u1", 1, "uint8"},
};

size_t npy_dtype_size(NpyDtype t) { return k_types[t].size; }
const char *npy_dtype_name(NpyDtype t) { return k_types[t].name; }

void npy_free(Npy *a) {
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* Finds 'key': in the header dict and returns a pointer just past the colon, or NULL. */
static const char *dict_value(const char *hdr, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(hdr, pat);
    if (!p) return NULL;
    p = strchr(p + strlen(pat), ':');
    if (!p) return NULL;
    p++;
    while (*p == ' ') p++;
    return p;
}

static int parse_header(const char *path, const char *hdr, Npy *out) {
    const char *v = dict_value(hdr, "descr");
    if (!v || (*v != '\'' && *v != '"')) return laic_error("%s: not a valid .npy header (no descr)", path);
    char descr[16] = {0};
    const char *e = strchr(v + 1, *v);
    if (!e || e - v - 1 >= (long)sizeof descr)
        return laic_error("%s: bad .npy descr '%s'", path, laic_esc(v + 1, e ? (size_t)(e - v - 1) : strlen(v + 1)));
    memcpy(descr, v + 1, (size_t)(e - v - 1));
    if (!strcmp(descr, "<u1") || !strcmp(descr, "u1")) strcpy(descr, "|u1");
    int found = 0;
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++)
        if (!strcmp(descr, k_types[i].descr)) { out->dtype = k_types[i].t; found = 1; }
    if (!found)
        return laic_error("%s: unsupported dtype '%s' (laic reads float32, float64, int32, int64, "
                          "uint8, little-endian)", path, laic_escs(descr));
    v = dict_value(hdr, "fortran_order");
    if (!v) return laic_error("%s: not a valid .npy header (no fortran_order)", path);
    if (!strncmp(v, "True", 4))
        return laic_error("%s: Fortran-order arrays are not supported ---> HINT: save with "
                          "np.ascontiguousarray", path);
    v = dict_value(hdr, "shape");
    if (!v || *v != '(') return laic_error("%s: not a valid .npy header (no shape)", path);
    v++;
    out->ndim = 0;
    out->count = 1;
    for (;;) {
        while (*v == ' ' || *v == ',') v++;
        if (*v == ')') break;
        char *end;
        errno = 0;
        long long d = strtoll(v, &end, 10);
        if (end == v || d < 0 || errno) return laic_error("%s: bad shape in .npy header", path);
        if (out->ndim == NPY_MAX_DIMS) return laic_error("%s: more than %d dimensions", path, NPY_MAX_DIMS);
        out->shape[out->ndim++] = (size_t)d;
        if (d && out->count > ((size_t)-1) / (size_t)d) return laic_error("%s: shape overflows", path);
        out->count *= (size_t)d;
        v = end;
    }
    return 0;
}

/* Reads n bytes of array data into a malloc'd buffer. A regular file was already checked to
 * hold exactly n more bytes; from anything else (a pipe) the buffer grows with what arrives, so
 * a header claiming more than the stream holds never allocates its claim. */
static int read_data(const char *path, FILE *f, size_t n, int regular, void **out) {
    size_t cap = regular ? n : (n < (1u << 20) ? n : (1u << 20)), got = 0;
    unsigned char *b = malloc(cap ? cap : 1);
    if (!b) return laic_error("%s: cannot allocate %zu bytes for the array data (out of memory)", path, cap);
    while (got < n) {
        if (got == cap) {
            size_t nc = cap > n - cap ? n : 2 * cap;
            unsigned char *nb = realloc(b, nc);
            if (!nb) {
                free(b);
                return laic_error("%s: cannot allocate %zu bytes for the array data (out of memory)",
                                  path, nc);
            }
            b = nb;
            cap = nc;
        }
        size_t r = fread(b + got, 1, cap - got, f);
        if (r == 0) {
            free(b);
            return laic_error("%s: truncated data (the header's shape and dtype need %zu bytes, the "
                              "file holds %zu)", path, n, got);
        }
        got += r;
    }
    *out = b;
    return 0;
}

int npy_read(const char *path, Npy *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return laic_error("%s: cannot open: %s", path, strerror(errno));
    unsigned char pre[10];
    char *hdr = NULL;
    int rc = -1;
    struct stat st;
    const int regular = !fstat(fileno(f), &st) && S_ISREG(st.st_mode);
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        laic_error("%s: not a .npy file (bad magic)", path);
        goto done;
    }
    size_t hlen, pre_len;
    if (pre[6] == 1) {
        hlen = (size_t)pre[8] | ((size_t)pre[9] << 8);
        pre_len = 10;
    } else if (pre[6] == 2 || pre[6] == 3) {
        unsigned char b[2];
        if (fread(b, 1, 2, f) != 2) { laic_error("%s: truncated .npy header", path); goto done; }
        hlen = (size_t)pre[8] | ((size_t)pre[9] << 8) | ((size_t)b[0] << 16) | ((size_t)b[1] << 24);
        pre_len = 12;
    } else {
        laic_error("%s: unsupported .npy version %d.%d", path, pre[6], pre[7]);
        goto done;
    }
    if (hlen > (1u << 24)) { laic_error("%s: .npy header too long", path); goto done; }
    if (regular && (size_t)st.st_size < pre_len + hlen) {
        laic_error("%s: truncated .npy header (%zu bytes declared, the file has %lld)", path, hlen,
                   (long long)st.st_size);
        goto done;
    }
    hdr = malloc(hlen + 1);
    if (!hdr) { laic_error("%s: cannot allocate the .npy header (out of memory)", path); goto done; }
    if (fread(hdr, 1, hlen, f) != hlen) { laic_error("%s: truncated .npy header", path); goto done; }
    hdr[hlen] = 0;
    if (parse_header(path, hdr, out)) goto done;
    // count * itemsize must neither wrap nor exceed what the file holds: checked before any
    // allocation, so a 128-byte file cannot claim 2^61 elements
    const size_t es = npy_dtype_size(out->dtype);
    if (out->count > SIZE_MAX / es) {
        laic_error("%s: shape of %zu elements of %s overflows the byte count", path, out->count,
                   npy_dtype_name(out->dtype));
        goto done;
    }
    const size_t nbytes = out->count * es;
    if (regular) {
        const size_t avail = (size_t)st.st_size - pre_len - hlen;
        if (avail < nbytes) {
            laic_error("%s: truncated data (the header's shape and dtype need %zu bytes, the file "
                       "holds %zu)", path, nbytes, avail);
            goto done;
        }
        if (avail > nbytes) {
            laic_error("%s: %zu trailing bytes after the array data", path, avail - nbytes);
            goto done;
        }
    }
    if (read_data(path, f, nbytes, regular, &out->data)) goto done;
    if (fgetc(f) != EOF) {
        laic_error("%s: trailing bytes after the array data", path);
        goto done;
    }
    rc = 0;
done:
    free(hdr);
    fclose(f);
    if (rc) npy_free(out);
    return rc;
}

static void shape_str(char *buf, size_t n, int ndim, const size_t *shape, const long *want) {
    size_t o = 0;
    o += (size_t)snprintf(buf + o, n - o, "[");
    for (int i = 0; i < ndim && o < n; i++) {
        if (want && want[i] < 0)
            o += (size_t)snprintf(buf + o, n - o, "%s*", i ? "," : "");
        else
            o += (size_t)snprintf(buf + o, n - o, "%s%ld", i ? "," : "",
                                  want ? want[i] : (long)shape[i]);
    }
    if (o < n) snprintf(buf + o, n - o, "]");
}

int npy_check_shape(const Npy *a, const char *path, int ndim, const long *shape) {
    int ok = a->ndim == ndim;
    for (int i = 0; ok && shape && i < ndim; i++)
        if (shape[i] >= 0 && (size_t)shape[i] != a->shape[i]) ok = 0;
    if (ok) return 0;
    char want[128], got[128];
    if (shape) shape_str(want, sizeof want, ndim, NULL, shape);
    else snprintf(want, sizeof want, "%d dimensions", ndim);
    shape_str(got, sizeof got, a->ndim, a->shape, NULL);
    return laic_error("%s: expected shape %s, got %s", path, want, got);
}

int npy_to_f32(Npy *a, const char *path) {
    if (a->dtype == NPY_F32) return 0;
    float *d = malloc((a->count ? a->count : 1) * sizeof(float));
    if (!d) return laic_error("%s: cannot allocate %zu floats (out of memory)", path, a->count);
    for (size_t i = 0; i < a->count; i++) {
        switch (a->dtype) {
        case NPY_F64: d[i] = (float)((double *)a->data)[i]; break;
        case NPY_I32: d[i] = (float)((int32_t *)a->data)[i]; break;
        case NPY_I64: d[i] = (float)((int64_t *)a->data)[i]; break;
        case NPY_U8: d[i] = (float)((uint8_t *)a->data)[i]; break;
        default: break;
        }
    }
    free(a->data);
    a->data = d;
    a->dtype = NPY_F32;
    return 0;
}

int npy_to_i64(Npy *a, const char *path) {
    if (a->dtype == NPY_I64) return 0;
    if (a->dtype == NPY_F32 || a->dtype == NPY_F64)
        return laic_error("%s: expected an integer array, got %s", path, npy_dtype_name(a->dtype));
    int64_t *d = malloc((a->count ? a->count : 1) * sizeof(int64_t));
    if (!d) return laic_error("%s: cannot allocate %zu int64 (out of memory)", path, a->count);
    for (size_t i = 0; i < a->count; i++) {
        switch (a->dtype) {
        case NPY_I32: d[i] = ((int32_t *)a->data)[i]; break;
        case NPY_U8: d[i] = ((uint8_t *)a->data)[i]; break;
        default: break;
        }
    }
    free(a->data);
    a->data = d;
    a->dtype = NPY_I64;
    return 0;
}

static int read_conv(const char *path, Npy *out, int ndim, const long *shape, int to_f32) {
    if (npy_read(path, out)) return -1;
    if ((to_f32 ? npy_to_f32(out, path) : npy_to_i64(out, path)) ||
        (ndim >= 0 && npy_check_shape(out, path, ndim, shape))) {
        npy_free(out);
        return -1;
    }
    return 0;
}

int npy_read_f32(const char *path, Npy *out, int ndim, const long *shape) {
    return read_conv(path, out, ndim, shape, 1);
}
int npy_read_i64(const char *path, Npy *out, int ndim, const long *shape) {
    return read_conv(path, out, ndim, shape, 0);
}

int npy_write(const char *path, NpyDtype dtype, int ndim, const size_t *shape, const void *data) {
    char dict[512];
    size_t o = (size_t)snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                                k_types[dtype].descr);
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        o += (size_t)snprintf(dict + o, sizeof dict - o, "%zu%s", shape[i],
                              ndim == 1 ? "," : (i + 1 < ndim ? ", " : ""));
        count *= shape[i];
    }
    o += (size_t)snprintf(dict + o, sizeof dict - o, "), }");
    size_t total = 10 + o + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = o + pad + 1;
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    AtomicFile af;
    if (atomic_open(&af, path)) return -1;
    fwrite(pre, 1, 10, af.fp);
    fwrite(dict, 1, o, af.fp);
    for (size_t i = 0; i < pad; i++) fputc(' ', af.fp);
    fputc('\n', af.fp);
    size_t nbytes = count * npy_dtype_size(dtype);
    if (nbytes && fwrite(data, 1, nbytes, af.fp) != nbytes) {
        atomic_abort(&af);
        return laic_error("%s: write failed", path);
    }
    return atomic_commit(&af);
}

int npy_write_f32_2d(const char *path, const float *data, size_t rows, size_t cols) {
    size_t shape[2] = {rows, cols};
    return npy_write(path, NPY_F32, 2, shape, data);
}
