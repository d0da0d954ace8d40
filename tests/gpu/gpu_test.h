/*
 * gpu_test.h — what every GPU test file (tests/gpu/test_*.c) shares. Included inside their #ifdef LAIC_CUDA.
 *
 * need_gpu(): the first line of every GPU test. Without a usable CUDA device the whole test_gpu
 * program exits 77 ("waived", as automake's convention; `make test-gpu` reports it as such), so
 * a CPU-only machine neither passes nor fails GPU tests.
 *
 * Device memory on ops_cuda for the tests: an allocation failure stops the program with the
 * recorded error (a test cannot go on without its buffers); downloads synchronise first.
 */
#ifndef LAIC_GPU_TEST_H
#define LAIC_GPU_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/err.h"
#include "ops.h"
#include "rng.h"

static inline void need_gpu(void) {
    if (ops_cuda_device_count() == 0) {
        printf("no CUDA device: GPU tests waived\n");
        fflush(stdout);
        exit(77);
    }
}

// n host floats N(0,1) from r, each rounded to float, then times scale in float (malloc'd).
static inline float *gpu_randn(Rng *r, size_t n, float scale) {
    float *x = mallocCheck(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)rng_normal(r) * scale;
    return x;
}

static inline void *gpu_alloc(size_t bytes) {
    void *d = ops_cuda.alloc(bytes);
    if (!d) {
        fprintf(stderr, "alloc: %s\n", laic_last_error());
        exit(1);
    }
    return d;
}

// A device copy of host (bytes).
static inline void *gpu_upload(const void *host, size_t bytes) {
    void *d = gpu_alloc(bytes);
    ops_cuda.to_device(d, host, bytes);
    return d;
}

// dev (bytes) into host, after everything queued so far.
static inline void gpu_download_into(void *host, const void *dev, size_t bytes) {
    ops_cuda.synchronize();
    ops_cuda.to_host(host, dev, bytes);
}

// A malloc'd host copy of dev (bytes); free() it.
static inline void *gpu_download(const void *dev, size_t bytes) {
    void *h = mallocCheck(bytes ? bytes : 1);
    gpu_download_into(h, dev, bytes);
    return h;
}

// n floats of device memory filled with NaN (all bits set): an element a kernel fails to write
// then fails the comparison, instead of passing on whatever a previous test's buffer held at
// the same address (cudaMalloc often hands back the block just freed).
static inline float *gpu_nan(size_t n) {
    float *d = gpu_alloc(n * sizeof(float));
    void *h = mallocCheck(n * sizeof(float) + 1);
    memset(h, 0xff, n * sizeof(float));
    ops_cuda.to_device(d, h, n * sizeof(float));
    free(h);
    return d;
}

#endif
