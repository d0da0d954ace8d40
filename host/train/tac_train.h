/*
 * tac_train.h — TAC's trained variant (Li et al., ICML 2024) on cached features, as the
 * authors' train_head.py runs it (XLearning-SCU/2024-ICML-TAC@830e02c; SPEC §9.2): two MLP
 * heads (host/train/heads.h), one on the image features X, one on their text counterparts t,
 * trained with the cluster-contrastive, consistency and entropy terms on each item and one
 * random neighbour per modality, Adam(lr 1e-3, betas (0.9, 0.99)), shuffled batches with
 * drop_last. The eval prediction is argmax of the image head in evaluation mode (running
 * BatchNorm statistics) on the eval features; the last epoch is reported (the code selects none).
 *
 * Epoch e draws its shuffle and neighbour picks from the RNG stream (seed, e): a run resumed
 * from its checkpoint continues bit for bit.
 *
 * Letters: N fit images, Ne eval images, E width (= hidden width, as TAC's in_dim), K clusters,
 * kn neighbours per row (50).
 */
#ifndef LAIC_TAC_TRAIN_H
#define LAIC_TAC_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"
#include "train/heads.h"

typedef struct {
    int epochs;               // 20 (K < 100) or 100 (train_head.py:27-35)
    int batch;                // 512 or 8192, drop_last
    double tau;               // cluster-contrastive temperature 0.5 or 5.0
    double lr, beta1, beta2, eps;   // Adam: 1e-3, 0.9, 0.99, 1e-8 (train_head.py:103)
    double entropy_weight;    // 5
    uint64_t seed;
    int stop_after;           // stop after this many epochs in this call (0 = all)
    int eval_every_epoch;     // predict the eval rows after every epoch (train_head.py:154-155)
    int graph;                // backends with graphs: capture an epoch's batches once, replay it
    const char *ckpt_path;    // written after every epoch (NULL = none)
    const char *resume_path;  // checkpoint to continue from (NULL = fresh start)
    const char *hparams;      // record stored in / compared with the checkpoint
    void (*log)(void *ctx, const char *line);
    void *log_ctx;
} TacTrainOpts;
void tac_train_opts_default(TacTrainOpts *o);

typedef struct {
    const float *X;           // (N,E) L2-normalised fit image features
    const float *T;           // (N,E) their L2-normalised text counterparts
    size_t N;
    int E, K;
    const int64_t *nbr_x, *nbr_t;   // (N,kn) neighbours of each row in X and in T (self excluded)
    int kn;
    const float *Xeval;       // (Ne,E) L2-normalised eval image features
    size_t Ne;
    const int64_t *yeval;     // (Ne) eval labels (-1 unknown) for the per-epoch ACC; may be NULL
} TacTrainData;

// --- what TAC computes once before training ------------------------------------------------------
typedef struct {
    int kn;                   // neighbours per row: 50 (train_head.py:36)
    double retrieve_tau;      // 0.005 (retrieve_text.py:6)
} TacSetupOpts;
void tac_setup_opts_default(TacSetupOpts *o);

typedef struct {
    float *T;                 // (N,E) text counterparts t_i = normalize(softmax(x_i Nᵀ/τ) N)
    int64_t *nbr_x, *nbr_t;   // (N,kn) inner-product neighbours in X and in T, self excluded
    int kn;
    double t_retrieve, t_knn; // seconds
} TacSetup;

/* The text counterparts of the normalised fit features X (N,E) — given as Tc (N,E) (they are
 * renormalised, as train_head.py:54 does), or retrieved here over the normalised candidate
 * nouns Nn (M,E) when Tc is NULL (retrieve_text.py:22-37: products on o in blocks of 8192 rows, softmax in double
 * on the host; laic computes in fp32 where the authors use fp16), then kNN of X and of T
 * (data_utils.py:107-116: faiss IndexFlatIP top kn+1 with the first column dropped; here the
 * cosine kNN of cluster.h, self excluded). -1 with one line when kn >= N. */
int tac_train_setup(TacSetup *s, const OpsBackend *o, const float *X, size_t N, int E,
                    const float *Tc, const float *Nn, size_t M, const TacSetupOpts *opt);
void tac_setup_free(TacSetup *s);
/* Only the counterparts: T (N,E). */
int tac_text_counterparts(float *T, const OpsBackend *o, const float *X, size_t N, int E,
                          const float *Nn, size_t M, double tau);
/* The retrieval's softmax, in place on the similarities S (n,M) of n images to M nouns: each row
 * scaled by 1/τ (the rounded products, in float), its max subtracted, exp summed in double, then
 * divided (retrieve_text.py:33-34). The TAC baseline's features (method_tac_features) and the
 * counterparts above share it. */
void tac_softmax_rows(float *S, size_t n, size_t M, double tau);

typedef struct {
    int64_t *pred;            // (Ne) eval predictions of the last epoch
    float *params_I, *params_T;   // the image and text heads' parameters (carve order)
    size_t n_params;
    int epochs_run, first_epoch, stopped;
    double *epoch_terms;      // (epochs,5): batch means of {L, D1, D2, Cons, H}, NaN if not run
    double *epoch_acc;        // (epochs) eval ACC after each epoch (eval_every_epoch), else NaN
    double t_steps, t_eval;
    int64_t steps;
    int graph_captures;       // CUDA graphs captured (0 on the CPU)
} TacTrainResult;

int tac_train(TacTrainResult *res, const OpsBackend *o, const TacTrainData *d,
              const TacTrainOpts *opt);
void tac_train_result_free(TacTrainResult *r);

/* One batch: the text head hT on t (2B,E) = the B anchors' text counterparts then their B text
 * neighbours, the image head hI on x (2B,E) likewise (one GEMM per layer for both groups;
 * BatchNorm sees anchors and neighbours as the two calls of train_head.py:116-117), the loss,
 * both heads' gradients, one Adam step each. aT, aI from head_acts_create with maxB >= 2B; terms
 * (5), dT and dI (2B,K) backend scratch; sched (3) backend Adam scalars. Exposed for the one-step
 * oracle test. */
void tac_step(Head *hT, Head *hI, HeadActs *aT, HeadActs *aI, const float *t, const float *x, int B,
              double *terms, float *dT, float *dI, const double *sched, const TacTrainOpts *opt);

#endif
