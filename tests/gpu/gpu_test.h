/*
 * gpu_test.h — what every GPU test file (tests/gpu/test_*.c) shares. Included inside their #ifdef LAIC_CUDA.
 *
 * need_gpu(): the first line of every GPU test. Without a usable CUDA device the whole test_gpu
 * program exits 77 ("waived", as automake's convention; `make test-gpu` reports it as such), so
 * a CPU-only machine neither passes nor fails GPU tests.
 */
#ifndef LAIC_GPU_TEST_H
#define LAIC_GPU_TEST_H

#include <stdio.h>
#include <stdlib.h>

#include "ops.h"

static inline void need_gpu(void) {
    if (ops_cuda_device_count() == 0) {
        printf("no CUDA device: GPU tests waived\n");
        fflush(stdout);
        exit(77);
    }
}

#endif
