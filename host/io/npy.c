/* npy.c — see npy.h. Format: magic "\x93NUMPY", major, minor, header length (u16 for v1,
 * u32 for v2/v3), then an ASCII Python dict literal padded with spaces to 64 bytes, '\n'. */
#include "io/npy.h"

#include <errno.h>
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
    if (!e || e - v - 1 >= (long)sizeof descr) return laic_error("%s: bad .npy descr", path);
    memcpy(descr, v + 1, (size_t)(e - v - 1));
    if (!strcmp(descr, "<u1") || !strcmp(descr, "u1")) strcpy(descr, "|u1");
    int found = 0;
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++)
        if (!strcmp(descr, k_types[i].descr)) { out->dtype = k_types[i].t; found = 1; }
    if (!found)
        return laic_error("%s: unsupported dtype '%s' (laic reads float32, float64, int32, int64, "
                          "uint8, little-endian)", path, descr);
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

int npy_read(const char *path, Npy *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return laic_error("%s: cannot open: %s", path, strerror(errno));
    unsigned char pre[10];
    char *hdr = NULL;
    int rc = -1;
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
    (void)pre_len;
    if (hlen > (1u << 24)) { laic_error("%s: .npy header too long", path); goto done; }
    hdr = mallocCheck(hlen + 1);
    if (fread(hdr, 1, hlen, f) != hlen) { laic_error("%s: truncated .npy header", path); goto done; }
    hdr[hlen] = 0;
    if (parse_header(path, hdr, out)) goto done;
    // The header's claim is checked against the bytes the file holds before anything is
    // allocated: a 128-byte file may declare a shape of 10^16 elements (found by tests/fuzz).
    size_t nbytes, left = 0;
    struct stat st;
    long pos = ftell(f);
    if (__builtin_mul_overflow(out->count, npy_dtype_size(out->dtype), &nbytes)) {
        laic_error("%s: shape overflows", path);
        goto done;
    }
    if (pos >= 0 && !fstat(fileno(f), &st) && S_ISREG(st.st_mode) && st.st_size >= pos)
        left = (size_t)(st.st_size - pos);
    else
        left = nbytes;   // not a regular file: fread below finds a short stream
    if (nbytes > left) {
        laic_error("%s: truncated data (expected %zu bytes for shape and dtype %s, the file holds "
                   "%zu)", path, nbytes, npy_dtype_name(out->dtype), left);
        goto done;
    }
    out->data = mallocCheck(nbytes);
    if (nbytes && fread(out->data, 1, nbytes, f) != nbytes) {
        laic_error("%s: truncated data (expected %zu bytes for shape and dtype %s)", path, nbytes,
                   npy_dtype_name(out->dtype));
        goto done;
    }
    int extra = fgetc(f);
    if (extra != EOF) {
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
    (void)path;
    if (a->dtype == NPY_F32) return 0;
    float *d = mallocCheck(a->count * sizeof(float));
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
    int64_t *d = mallocCheck(a->count * sizeof(int64_t));
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
