/* png.c — see png.h. */
#include "io/png.h"

#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "io/atomic.h"
#include "io/err.h"

typedef struct {
    unsigned char *buf;
    size_t n, cap;
    char msg[256];
} MemSink;

static void sink_write(png_structp png, png_bytep data, size_t len) {
    MemSink *s = png_get_io_ptr(png);
    if (s->n + len > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->n + len) cap *= 2;
        unsigned char *p = realloc(s->buf, cap);
        if (!p) png_error(png, "out of memory");
        s->buf = p;
        s->cap = cap;
    }
    memcpy(s->buf + s->n, data, len);
    s->n += len;
}
static void sink_flush(png_structp png) { (void)png; }

static void err_fn(png_structp png, png_const_charp msg) {
    char *dst = png_get_error_ptr(png);
    snprintf(dst, 256, "%s", msg);
    png_longjmp(png, 1);
}
static void warn_fn(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

int png_encode(const uint8_t *pix, int w, int h, int channels, int level, unsigned char **out,
               size_t *n) {
    *out = NULL;
    *n = 0;
    if (w <= 0 || h <= 0 || w > 1 << 20 || h > 1 << 20)
        return laic_error("png: bad image size %d x %d", w, h);
    if (channels != 1 && channels != 3 && channels != 4)
        return laic_error("png: %d channels (need 1, 3 or 4)", channels);
    // on the heap: libpng's callbacks change it between setjmp and a longjmp
    MemSink *s = calloc(1, sizeof *s);
    if (!s) return laic_error("png: out of memory");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, s->msg, err_fn, warn_fn);
    if (!png) {
        free(s);
        return laic_error("png: cannot initialise libpng");
    }
    png_infop info = png_create_info_struct(png);
    png_bytep *volatile rows = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, info ? &info : NULL);
        free(rows);
        laic_error("png: encoding failed (%s)", s->msg[0] ? s->msg : "libpng");
        free(s->buf);
        free(s);
        return -1;
    }
    png_set_write_fn(png, s, sink_write, sink_flush);
    png_set_compression_level(png, level < 0 || level > 9 ? 6 : level);
    const int ct = channels == 1 ? PNG_COLOR_TYPE_GRAY
                   : channels == 3 ? PNG_COLOR_TYPE_RGB
                                   : PNG_COLOR_TYPE_RGB_ALPHA;
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, ct, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    rows = malloc((size_t)h * sizeof *rows);
    if (!rows) png_error(png, "out of memory");
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)(pix + (size_t)y * w * channels);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    free(rows);
    *out = s->buf;
    *n = s->n;
    free(s);
    return 0;
}

typedef struct {
    const unsigned char *buf;
    size_t n, pos;
    char msg[256];   // the error callback writes here
} MemSrc;

static void src_read(png_structp png, png_bytep out, size_t len) {
    MemSrc *s = png_get_io_ptr(png);
    if (len > s->n - s->pos) png_error(png, "truncated file");
    memcpy(out, s->buf + s->pos, len);
    s->pos += len;
}

int png_decode_rgb8(const unsigned char *buf, size_t n, const char *what, uint8_t **rgb, int *w,
                    int *h) {
    *rgb = NULL;
    if (n < 8 || png_sig_cmp(buf, 0, 8)) return laic_error("%s: not a PNG file", what);
    MemSrc src = {buf, n, 0, {0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, src.msg, err_fn, warn_fn);
    if (!png) return laic_error("%s: cannot initialise libpng", what);
    png_infop info = png_create_info_struct(png);
    uint8_t *volatile px = NULL;
    png_bytep *volatile rows = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, info ? &info : NULL, NULL);
        free(px);
        free(rows);
        return laic_error("%s: corrupt PNG (%s)", what, src.msg[0] ? src.msg : "libpng");
    }
    png_set_read_fn(png, &src, src_read);
    png_read_info(png, info);
    png_uint_32 w32 = png_get_image_width(png, info), h32 = png_get_image_height(png, info);
    if (w32 == 0 || h32 == 0 || w32 > 1 << 16 || h32 > 1 << 16) png_error(png, "image size out of range");
    // everything to 8-bit RGB(A): palette and low-depth gray expanded, 16-bit stripped
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    const int c = png_get_channels(png, info);
    const size_t rb = png_get_rowbytes(png, info);
    if ((c != 3 && c != 4) || rb != (size_t)w32 * c) png_error(png, "unexpected row layout");
    px = malloc((size_t)h32 * rb);
    rows = malloc((size_t)h32 * sizeof *rows);
    if (!px || !rows) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < h32; y++) rows[y] = px + (size_t)y * rb;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    uint8_t *p = px;
    if (c == 4) {   // over white, in place (3 ≤ 4 bytes per pixel, forward order is safe)
        for (size_t i = 0; i < (size_t)w32 * h32; i++) {
            const unsigned a = p[4 * i + 3];
            for (int k = 0; k < 3; k++)
                p[3 * i + k] = (uint8_t)((p[4 * i + k] * a + 255 * (255 - a) + 127) / 255);
        }
    }
    *rgb = p;
    *w = (int)w32;
    *h = (int)h32;
    return 0;
}

int png_read_file_rgb8(const char *path, uint8_t **rgb, int *w, int *h) {
    *rgb = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return laic_error("%s: cannot open", path);
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0, got;
    do {
        if (n == cap) {
            cap = cap ? 2 * cap : 1 << 16;
            unsigned char *p = realloc(buf, cap);
            if (!p) {
                free(buf);
                fclose(f);
                return laic_error("%s: out of memory", path);
            }
            buf = p;
        }
        got = fread(buf + n, 1, cap - n, f);
        n += got;
    } while (got > 0);
    fclose(f);
    int rc = png_decode_rgb8(buf, n, path, rgb, w, h);
    free(buf);
    return rc;
}

int png_write_file(const char *path, const uint8_t *pix, int w, int h, int channels) {
    unsigned char *buf;
    size_t n;
    if (png_encode(pix, w, h, channels, -1, &buf, &n))
        return laic_error("%s: %s", path, laic_last_error());
    int rc = atomic_write_file(path, buf, n);
    free(buf);
    return rc;
}

size_t base64_len(size_t n) { return (n + 2) / 3 * 4; }

size_t base64_encode(const void *data, size_t n, char *out) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *b = data;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        const uint32_t v = (uint32_t)b[i] << 16 | (uint32_t)b[i + 1] << 8 | b[i + 2];
        out[o++] = A[v >> 18];
        out[o++] = A[(v >> 12) & 63];
        out[o++] = A[(v >> 6) & 63];
        out[o++] = A[v & 63];
    }
    if (i < n) {
        const uint32_t v = (uint32_t)b[i] << 16 | (i + 1 < n ? (uint32_t)b[i + 1] << 8 : 0);
        out[o++] = A[v >> 18];
        out[o++] = A[(v >> 12) & 63];
        out[o++] = i + 1 < n ? A[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = 0;
    return o;
}

char *png_data_uri(const uint8_t *pix, int w, int h, int channels) {
    unsigned char *png;
    size_t n;
    if (png_encode(pix, w, h, channels, -1, &png, &n)) return NULL;
    static const char prefix[] = "data:image/png;base64,";
    char *s = malloc(sizeof prefix + base64_len(n));
    if (!s) {
        free(png);
        laic_error("png: out of memory");
        return NULL;
    }
    memcpy(s, prefix, sizeof prefix - 1);
    base64_encode(png, n, s + sizeof prefix - 1);
    free(png);
    return s;
}
