/* hash.c — see hash.h. */
#include "io/hash.h"

#include <string.h>

uint64_t laic_hash64(const void *data, size_t n, uint64_t seed) {
    // word-at-a-time multiply/rotate mixing with a final avalanche; four independent lanes
    // keep the multiplier pipeline busy
    const uint64_t P1 = 0x9E3779B185EBCA87ull, P2 = 0xC2B2AE3D27D4EB4Full;
    const unsigned char *b = data;
    uint64_t h[4] = {seed ^ P1, seed ^ P2, seed + P1, seed - P2};
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int l = 0; l < 4; l++) {
            uint64_t w;
            memcpy(&w, b + i + 8 * l, 8);
            h[l] ^= w * P2;
            h[l] = ((h[l] << 31) | (h[l] >> 33)) * P1;
        }
    uint64_t x = (uint64_t)n * P1;
    for (int l = 0; l < 4; l++) x = (((x ^ h[l]) << 27) | ((x ^ h[l]) >> 37)) * P1 + P2;
    for (; i < n; i++) x = (x ^ b[i]) * P1;
    x ^= x >> 33;
    x *= P2;
    x ^= x >> 29;
    x *= P1;
    return x ^ (x >> 32);
}
