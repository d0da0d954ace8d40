/*
 * rng.h — laic's own seeded random numbers (llm.c habit: never rand()).
 * xoshiro256** seeded through splitmix64; identical streams on every platform and build.
 * Independent streams for (seed, stream id) pairs come from rng_init(seed, stream).
 */
#ifndef LAIC_RNG_H
#define LAIC_RNG_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

typedef struct { uint64_t s[4]; } Rng;

static inline uint64_t rng_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline void rng_init(Rng *r, uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xD1B54A32D192ED03ull);
    for (int i = 0; i < 4; i++) r->s[i] = rng_splitmix64(&x);
}

static inline uint64_t rng_u64(Rng *r) {
    uint64_t *s = r->s;
    uint64_t t = s[1] << 17, res = s[1] * 5;
    res = ((res << 7) | (res >> 57)) * 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return res;
}

/* Uniform in [0,1) with 53 random bits. */
static inline double rng_uniform(Rng *r) { return (double)(rng_u64(r) >> 11) * 0x1.0p-53; }

/* Uniform integer in [0,n) without modulo bias (n > 0). */
static inline uint64_t rng_below(Rng *r, uint64_t n) {
    uint64_t lim = UINT64_MAX - UINT64_MAX % n, x;
    do x = rng_u64(r); while (x >= lim);
    return x % n;
}

/* perm (n) = 0..n-1 in a uniform random order: the identity shuffled by Fisher–Yates from the
 * top (n − 1 rng_below draws; the trainers' checkpointed shuffle streams depend on that order). */
static inline void rng_permutation(Rng *r, size_t *perm, size_t n) {
    for (size_t i = 0; i < n; i++) perm[i] = i;
    for (size_t i = n - 1; n > 1 && i > 0; i--) {
        const size_t j = (size_t)rng_below(r, i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* Standard normal (Box–Muller, one value per call; the pair's second half is dropped so the
 * stream position depends only on the number of calls). */
static inline double rng_normal(Rng *r) {
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
