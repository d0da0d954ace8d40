/* gz.c — see gz.h. */
#include "io/gz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "io/err.h"

int gz_declared_size(const char *path, uint32_t *isize) {
    FILE *f = fopen(path, "rb");
    if (!f) return laic_error("%s: cannot open: %s", path, strerror(errno));
    unsigned char m[2], t[4];
    int rc = 0;
    if (fread(m, 1, 2, f) == 2 && m[0] == 0x1f && m[1] == 0x8b) {
        if (fseek(f, -4, SEEK_END) != 0 || fread(t, 1, 4, f) != 4)
            rc = laic_error("%s: truncated gzip file (no trailer)", path);
        else {
            *isize = (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
            rc = 1;
        }
    }
    fclose(f);
    return rc;
}

static int gz_fail(gzFile g, const char *path) {
    int code = Z_OK;
    const char *msg = gzerror(g, &code);
    if (code == Z_OK || code == Z_STREAM_END) return 0;
    return laic_error("%s: gzip: %s (truncated or corrupt)", path,
                      code == Z_ERRNO ? strerror(errno) : msg ? msg : "read error");
}

int gz_read_head(const char *path, void *buf, size_t n, size_t *got) {
    gzFile g = gzopen(path, "rb");
    if (!g) return laic_error("%s: cannot open: %s", path, errno ? strerror(errno) : "gzopen failed");
    size_t len = 0;
    while (len < n) {
        int r = gzread(g, (char *)buf + len, (unsigned)(n - len > (1u << 30) ? (1u << 30) : n - len));
        if (r <= 0) break;
        len += (size_t)r;
    }
    int rc = gz_fail(g, path);
    gzclose(g);
    *got = len;
    return rc;
}

int gz_read_all(const char *path, size_t limit, uint8_t **out, size_t *n) {
    *out = NULL;
    *n = 0;
    uint32_t isize = 0;
    int is_gz = gz_declared_size(path, &isize);
    if (is_gz < 0) return -1;
    // the trailer holds the size mod 2^32: a bound only where the limit is below 4 GiB
    size_t bound = limit;
    if (is_gz && limit < ((size_t)1 << 32)) {
        if ((size_t)isize > limit)   // an honest trailer of a bomb: refused before decompressing
            return laic_error("%s: its gzip trailer declares %u bytes of content, more than the %zu "
                              "expected (corrupt, or a gzip bomb)", path, isize, limit);
        bound = isize;
    }
    gzFile g = gzopen(path, "rb");
    if (!g) return laic_error("%s: cannot open: %s", path, errno ? strerror(errno) : "gzopen failed");
    size_t cap = bound < (1u << 20) ? bound + 1 : (1u << 20), len = 0;
    uint8_t *b = malloc(cap + 1);
    if (!b) {
        gzclose(g);
        return laic_error("%s: out of memory", path);
    }
    int rc = 0;
    for (;;) {
        if (len == cap) {
            if (cap > bound) {   // one byte past the bound arrived
                if (bound == limit)
                    rc = laic_error("%s: more than %zu bytes of content (corrupt, or a gzip bomb)", path, limit);
                else
                    rc = laic_error("%s: decompresses past the %u bytes its gzip trailer declares "
                                    "(corrupt, or a gzip bomb)", path, isize);
                break;
            }
            size_t nc = cap > bound - cap ? bound + 1 : 2 * cap;
            uint8_t *nb = realloc(b, nc + 1);
            if (!nb) {
                rc = laic_error("%s: out of memory after %zu bytes of content", path, len);
                break;
            }
            b = nb;
            cap = nc;
        }
        size_t want = cap - len > (1u << 30) ? (1u << 30) : cap - len;
        int r = gzread(g, b + len, (unsigned)want);
        if (r <= 0) break;
        len += (size_t)r;
    }
    if (!rc) rc = gz_fail(g, path);
    if (!rc && is_gz && limit < ((size_t)1 << 32) && len != (size_t)isize)
        rc = laic_error("%s: %zu bytes of content, but its gzip trailer declares %u (truncated or "
                        "corrupt)", path, len, isize);
    gzclose(g);
    if (rc) {
        free(b);
        return -1;
    }
    b[len] = 0;
    *out = b;
    *n = len;
    return 0;
}
