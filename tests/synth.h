/*
 * synth.h — synthetic data with planted cluster structure, shared by the pipeline tests
 * (test_run.c, test_sweep.c) and the trainer tests. Made with the project's own RNG, so no Python is needed.
 */
#ifndef LAIC_TEST_SYNTH_H
#define LAIC_TEST_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "model/clip.h"
#include "rng.h"
#include "train/trainer.h"

/* K random unit centres in E dims; N image rows (row i has label (i * label_stride) % K) and
 * M "noun" rows (noun j belongs to centre j % K), each its centre plus N(0, sigma²) noise.
 * Writes dir/X.npy (N,E), dir/T.npy (M,E), dir/y.npy (N) int64 and dir/names.txt
 * ("noun<j>_of_<j%K>" per line). */
void synth_planted(const char *dir, int K, int E, int N, int M, double sigma, uint64_t seed,
                   int label_stride);

/* A CIFAR-10-format dataset in dir (data_batch_1.bin: n_train images, test_batch.bin: n_test) of
 * random images whose class (i % 3) sets the dominant colour, so even a random-init encoder sees
 * some structure (tests/run/). */
void synth_cifar(const char *dir, int n_train, int n_test);

/* n RGB8 images (h,w,3) in one buffer, served to the trainer (host/train/trainer.h TrainImageFn) by
 * synth_get_image with ctx = the SynthImages: a malloc'd copy of image i; an index past n is
 * an error. Shared by the trainer tests (tests/test_trainer*.c, tests/gpu/test_trainer_gpu.c). */
typedef struct {
    int n, h, w;
    uint8_t *pix;   // (n,h,w,3)
} SynthImages;
int synth_get_image(void *ctx, size_t i, uint8_t **rgb, int *h, int *w);

/* n floats N(0, scale²) from r, each rounded once from the double (malloc'd; n = 0 gives a
 * valid 1-float buffer). */
float *synth_randn(Rng *r, size_t n, double scale);
/* Rows of x (rows,E) scaled to unit norm, norm and quotient in double. */
void synth_normalize_rows(float *x, int rows, int E);

/* The trainer tests' fixture (test_trainer_graph.c, gpu/test_trainer_gpu.c): the tiny CLIP with
 * seed 7, SYNTH_TRAIN_N images (36,40,3) — uniform noise, or tinted by class (channel i % K
 * bright) when tinted — then normalised random features X (N,E), pseudo-labels y = i % K
 * (SYNTH_TRAIN_K classes) and hq = (i % 4 != 0), all from one seeded stream. */
enum { SYNTH_TRAIN_N = 13, SYNTH_TRAIN_K = 3 };
typedef struct {
    ClipWeights w;
    SynthImages im;
    float *X;   // (N,E) normalised
    int64_t y[SYNTH_TRAIN_N];
    uint8_t hq[SYNTH_TRAIN_N];
} SynthTrainFix;
int synth_train_fix_init(SynthTrainFix *f, int tinted);
void synth_train_fix_free(SynthTrainFix *f);
/* One trainer_run on the fixture as the GPU and data-parallel trainer tests run it
 * (gpu/test_trainer_gpu.c, gpu/test_comm_gpu.c, run/test_mpi.c): 2 epochs of batch 5 (steps of
 * 5, 5, 3), SGD lr 0.05 without warm-up, text chunks of 2, image chunks of 4 views, seed 31; the
 * images through the tiny CLIP on ops (images 1) or the features X (images 0); graph, stop_after,
 * ckpt_path and resume as in TrainerOpts. */
int synth_train_run(TrainResult *res, SynthTrainFix *f, const OpsBackend *ops, int images,
                    int graph, int stop_after, const char *ckpt, const TrainState *resume);

#endif
