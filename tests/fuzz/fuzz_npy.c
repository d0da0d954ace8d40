/*
 * fuzz_npy.c — the .npy reader (host/io/npy.c) as every caller uses it: npy_read, then the
 * conversions and shape checks of npy_read_f32/_i64 (features, labels, predictions, and the
 * run's caches, which are .npy files: image/noun features, keep indices, candidates).
 */
#include "io/err.h"
#include "io/npy.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_file(0, "x.npy", data, size);
    Npy a;
    if (npy_read(p, &a) == 0) {
        size_t es = npy_dtype_size(a.dtype);
        volatile uint8_t sink = 0;   // touch every byte the reader claims to have filled
        for (size_t i = 0; i < a.count * es; i++) sink ^= ((const uint8_t *)a.data)[i];
        (void)sink;
        npy_free(&a);
    }
    long s2[2] = {-1, 512};
    if (npy_read_f32(p, &a, 2, s2) == 0) npy_free(&a);
    if (npy_read_f32(p, &a, 2, NULL) == 0) npy_free(&a);
    if (npy_read_i64(p, &a, 1, NULL) == 0) npy_free(&a);
    if (npy_read_i64(p, &a, -1, NULL) == 0) npy_free(&a);
    return 0;
}
