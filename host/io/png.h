/*
 * png.h — PNG encoding into memory (the thumbnails and heat maps of report.html), base64 and
 * data: URIs, and a small PNG reader (round-trip tests, screenshot checks). Both directions go
 * through libpng; the image decoder used for datasets is host/model/image.c.
 *
 * Pixels are 8-bit, row-major, interleaved: channels 1 (gray), 3 (RGB) or 4 (RGBA).
 * Every error is one line naming `what` (a file or "thumbnail") and the problem.
 */
#ifndef LAIC_PNG_H
#define LAIC_PNG_H

#include <stddef.h>
#include <stdint.h>

/* Encodes w×h pixels into a malloc'd PNG (*out, *n bytes). level: zlib level 0..9 (-1 = 6). */
int png_encode(const uint8_t *pix, int w, int h, int channels, int level, unsigned char **out,
               size_t *n);
/* Decodes any 8/16-bit PNG (gray, palette, RGB, with or without alpha) into malloc'd RGB8
 * (h,w,3); alpha is composited over white. */
int png_decode_rgb8(const unsigned char *buf, size_t n, const char *what, uint8_t **rgb, int *w,
                    int *h);
/* png_decode_rgb8 of a file. */
int png_read_file_rgb8(const char *path, uint8_t **rgb, int *w, int *h);
/* Encodes and writes atomically (io/atomic.h). */
int png_write_file(const char *path, const uint8_t *pix, int w, int h, int channels);

/* Standard base64 (RFC 4648, with padding) of n bytes into out, which must hold
 * base64_len(n) + 1 bytes; NUL-terminated. Returns the length written. */
size_t base64_len(size_t n);
size_t base64_encode(const void *data, size_t n, char *out);
/* "data:image/png;base64,…" of the pixels, malloc'd; NULL with the error recorded. */
char *png_data_uri(const uint8_t *pix, int w, int h, int channels);

#endif
