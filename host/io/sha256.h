/*
 * sha256.h — a small SHA-256 (FIPS 180-4) for file fingerprints.
 *
 * Used for the weights file's sha256 (ClipWeights.sha256: cache keys, `laic info`) and anything
 * else that needs a content hash. Streaming: init, update any number of times, final.
 * Tested against the FIPS 180-2 example vectors and `sha256sum` (tests/model/test_weights.c).
 */
#ifndef LAIC_SHA256_H
#define LAIC_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint64_t nbytes;      // total bytes hashed so far
    uint8_t buf[64];      // pending partial block
    size_t nbuf;
} Sha256;

void sha256_init(Sha256 *s);
void sha256_update(Sha256 *s, const void *data, size_t n);
void sha256_final(Sha256 *s, uint8_t digest[32]);
/* One-shot: lowercase hex digest (64 chars + NUL) of a buffer. */
void sha256_hex(const void *data, size_t n, char hex[65]);
/* Lowercase hex of a digest. */
void sha256_to_hex(const uint8_t digest[32], char hex[65]);
/* Hex digest of a whole file; -1 with an error naming the file on I/O failure. */
int sha256_file_hex(const char *path, char hex[65]);

#endif
