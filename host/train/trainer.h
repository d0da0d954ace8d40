/*
 * trainer.h — the prompt-learning loop of SPEC §7 (issue 7, part 3): K learnable prompts
 * "<SOT> {prefix} v_c,1 .. v_c,M <EOT>" through the frozen text encoder, trained on the weak and
 * strong views of the fit images (frozen image encoder) with the losses of host/train/train.h, SGD
 * with CoOp's schedule, and a checkpoint at the end of every epoch.
 *
 * It is a library: `laic run` ([train] stage, host/run/methods/rsc_train.c) and
 * `laic train-centers` (host/cli/cmd_train_centers.c) are thin callers.
 *
 * Dimension legend: N training samples, B batch, K prompts (= clusters), M learnable vectors per
 * prompt (n_ctx), D token-embedding width (text_width), E feature width (embed_dim),
 * P prefix tokens, T = P + M + 2 prompt length (SOT, prefix, vectors, EOT).
 *
 * Promises:
 *   - Deterministic: the result depends only on the inputs, the options and the seed (shuffle
 *     from a seeded stream saved in the checkpoint; views keyed by (seed, epoch, index) in
 *     host/model/augment.h; every reduction in a fixed order on the CPU backend).
 *   - Resume: a run stopped after any completed epoch (the checkpoint is written atomically at
 *     each epoch's end, so a kill leaves the last completed one) and resumed from its
 *     checkpoint ends with the same vectors and momentum, bit for bit, as an uninterrupted run.
 *   - Feature mode: without images (get_image NULL) both views are the given clean features,
 *     so the consistency term is 0; for precomputed-feature runs and tests.
 * Library code: errors return -1 after laic_error(); progress lines go to the log callback.
 *
 * Data parallel (issue 17; ops->comm_size() > 1): trainer_run is collective. o->batch is the
 * step's global batch; rank r makes and encodes the views of its share of it (host/comm.h
 * comm_shard), the view features are gathered so that every rank computes the loss of the whole
 * batch — the loss is not a sum over samples (GCE is normalised by the batch's high-quality
 * count, the entropy term is of the batch-mean prediction), so per-rank gradients could not be
 * summed into it — and the text tower's chunks of text_batch prompts are dealt out to the ranks,
 * their text features and gradient rows gathered (the all-reduce of a gradient whose rows are
 * disjoint). Every rank then takes the same SGD step. So P ranks with batch B equal one rank
 * with batch B: bitwise on the CPU for the same threads per process (tests/run/test_mpi.c); on
 * GPUs a rank's image-encoder batches hold its share of the views, so features may differ in
 * their last bits from one process's (the CUDA trainer's CPU tolerances, test_trainer_gpu.c,
 * bound the effect). No CUDA graph is captured with several ranks (the step holds collectives).
 */
#ifndef LAIC_TRAINER_H
#define LAIC_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "model/clip.h"
#include "train/train.h"

/* RGB8 image (h,w,3) of training sample i, malloc'd (*rgb; the trainer frees it). */
typedef int (*TrainImageFn)(void *ctx, size_t i, uint8_t **rgb, int *h, int *w);

typedef struct {
    size_t N;
    int K;
    const int64_t *yhat;      // (N) pseudo-labels in [0,K) (read where hq)
    const uint8_t *hq;        // (N) 1 = high-quality (D_h), 0 = D_u
    TrainImageFn get_image;   // NULL = feature mode (views = X)
    void *img_ctx;
    const float *X;           // (N,E) clean L2-normalised features, feature mode only
} TrainData;

typedef struct {
    int epochs;               // total epochs (the cosine schedule length is sgd.max_epoch)
    int batch;                // samples per step
    int n_ctx;                // M
    double init_std;          // v ~ N(0, init_std^2)
    const char *prefix;       // "a photo of a"
    LossConfig loss;
    SgdConfig sgd;
    uint64_t seed;
    int text_batch;           // prompts per text forward/backward (0 = min(K, 100))
    int image_batch;          // views per image-encoder call (0 = 2*batch); <= the image model's
    const char *image_precision; // matmul precision the image model was made with (recorded in
                              // the checkpoint's settings; NULL = "fp32")
    const char *text_precision; // matmul precision of the text tower trained here: "fp32"
                              // (default: gradients in fp32), "tf32" or "bf16" (CUDA only)
    int graph;                // capture the device step as a CUDA graph where the backend can
                              // (1 default; no effect on the CPU); see trainer.c's graph rule
    const char *ckpt_path;    // written atomically after every epoch (NULL = none)
    const TrainState *resume; // continue from this state (NULL = fresh start)
    int stop_after;           // stop once this many epochs are complete (0 = run all)
    void (*log)(void *ctx, const char *line);
    void *log_ctx;
} TrainerOpts;

/* Fills o with the SPEC §7 defaults (20 epochs, batch 32, M 4, std 0.02, CoOp SGD). */
void trainer_opts_default(TrainerOpts *o);

typedef struct {
    TrainState st;            // final vectors (K,M,D), momentum, epoch, step, RNG
    float *W;                 // (K,E) L2-normalised text features of the final prompts
    int K, E;
    int first_epoch;          // epoch this call started at (> 0 when resumed)
    int stopped;              // 1 when stop_after ended training before `epochs`
    double *epoch_loss;       // (epochs) mean total loss per epoch trained here, NaN otherwise
    double *epoch_lr;         // (epochs) learning rate of each epoch
    double t_views, t_image, t_text, t_loss;   // seconds spent per part, this call (eager
                              // steps; timed to a synchronize after each part)
    double t_graph;           // seconds in replayed graph steps (image + text + loss, unsplit)
    int graph_captures;       // graphs captured (one per batch size after its eager warm-up)
    size_t images_seen;       // samples stepped over in this call
} TrainResult;

/* Trains. image_model encodes the views (any ClipModel of w, e.g. the run's inference model);
 * the text tower runs on a training model created here on `ops`. res is filled (free with
 * trainer_result_free) on success and on a stop_after stop. Errors: bad options, pseudo-labels
 * out of range, a checkpoint that does not match (K, M, D, seed, and every setting that changes
 * the result: its hparams, named key by key), a prefix too long for the context, image read
 * errors, backend errors. */
int trainer_run(TrainResult *res, const ClipWeights *w, ClipModel *image_model,
                const OpsBackend *ops, const TrainData *d, const TrainerOpts *o);
void trainer_result_free(TrainResult *r);

/* pred (Ne) = argmax_c <X[i], W[c]> (ties to the lowest c); X (Ne,E), W (K,E). */
void trainer_predict(int64_t *pred, const float *X, size_t Ne, const float *W, int K, int E);

#endif
