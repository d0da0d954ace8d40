/*
 * synth.h — synthetic data with planted cluster structure, shared by the pipeline tests
 * (test_run.c, test_sweep.c). Made with the project's own RNG, so no Python is needed.
 */
#ifndef LAIC_TEST_SYNTH_H
#define LAIC_TEST_SYNTH_H

#include <stdint.h>

/* K random unit centres in E dims; N image rows (row i has label (i * label_stride) % K) and
 * M "noun" rows (noun j belongs to centre j % K), each its centre plus N(0, sigma²) noise.
 * Writes dir/X.npy (N,E), dir/T.npy (M,E), dir/y.npy (N) int64 and dir/names.txt
 * ("noun<j>_of_<j%K>" per line). */
void synth_planted(const char *dir, int K, int E, int N, int M, double sigma, uint64_t seed,
                   int label_stride);

#endif
