/*
 * synth.h — synthetic data with planted cluster structure, shared by the pipeline tests
 * (test_run.c, test_sweep.c) and the trainer tests. Made with the project's own RNG, so no Python is needed.
 */
#ifndef LAIC_TEST_SYNTH_H
#define LAIC_TEST_SYNTH_H

#include <stddef.h>
#include <stdint.h>

/* K random unit centres in E dims; N image rows (row i has label (i * label_stride) % K) and
 * M "noun" rows (noun j belongs to centre j % K), each its centre plus N(0, sigma²) noise.
 * Writes dir/X.npy (N,E), dir/T.npy (M,E), dir/y.npy (N) int64 and dir/names.txt
 * ("noun<j>_of_<j%K>" per line). */
void synth_planted(const char *dir, int K, int E, int N, int M, double sigma, uint64_t seed,
                   int label_stride);

/* n RGB8 images (h,w,3) in one buffer, served to the trainer (host/trainer.h TrainImageFn) by
 * synth_get_image with ctx = the SynthImages: a malloc'd copy of image i; an index past n is
 * an error. Shared by the trainer tests (tests/test_trainer*.c, tests/gpu/test_trainer_gpu.c). */
typedef struct {
    int n, h, w;
    uint8_t *pix;   // (n,h,w,3)
} SynthImages;
int synth_get_image(void *ctx, size_t i, uint8_t **rgb, int *h, int *w);

#endif
