/*
 * gz.h — bounded reads of files that may be gzip-compressed (IDX datasets, the BPE vocabulary).
 * Plain files pass through unchanged (zlib's transparent mode).
 *
 * A gzip bomb fails cleanly: the content is never read past `limit` (the caller's bound, e.g.
 * the size an IDX header declares) nor past the size the gzip trailer declares (ISIZE), and
 * memory grows with the data actually decompressed, never with a claimed size. Errors name the
 * file and say which bound was crossed.
 */
#ifndef LAIC_GZ_H
#define LAIC_GZ_H

#include <stddef.h>
#include <stdint.h>

/* The whole content (malloc'd, one spare NUL byte after it) and its length. */
int gz_read_all(const char *path, size_t limit, uint8_t **out, size_t *n);
/* The first n bytes of content into buf; *got < n when the content is shorter. */
int gz_read_head(const char *path, void *buf, size_t n, size_t *got);
/* 1 and the trailer's ISIZE (content size mod 2^32) for a gzip file, 0 for a plain file, -1 with
 * an error when it cannot be read. */
int gz_declared_size(const char *path, uint32_t *isize);

#endif
