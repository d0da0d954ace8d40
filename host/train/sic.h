/*
 * sic.h — SIC (Cai et al., AAAI 2023) trained on cached features, as the authors' code runs it
 * (shaotiancai/SIC@a8969ac; SPEC §9.1 gives every number with its file:line): the semantic
 * space (step 5), the per-epoch centre mapping (step 7), the three-term loss (step 8) on a
 * Linear head (host/train/heads.h) trained with Adam (step 9), and the epoch selection (step 10).
 *
 * Inputs are RAW (unnormalised) image and noun features, as SIC's are. Everything below is
 * deterministic for a seed: epoch e draws its shuffle and neighbour picks from the RNG stream
 * (seed, e), so a run resumed from its checkpoint continues bit for bit.
 *
 * Letters: N fit images, Ne eval images, E feature width, K clusters, Mb nouns in the bank,
 * M nouns in the semantic space, nn neighbours per image (21 = 20 + self).
 */
#ifndef LAIC_SIC_H
#define LAIC_SIC_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"
#include "train/heads.h"

// --- step 5: the semantic space (semantic_filters.py, common_config.py:182-190) -------------------
typedef struct {
    size_t n_r, n_u;          // |R|, |U|
    double *tbar;             // (E) the mean of per-batch means of the raw bank (caller frees)
} SicSpaceInfo;

/* S = sorted(R ∩ U) of the bank T0 (Mb,E) raw: R = ∪_c the gamma_r nouns with the highest
 * cosine to the image centre C0_c (K,E) (ties to the lower index); U = {j : cos(T0_j, t̄) <
 * 1 − gamma_u}, t̄ = the mean over batches of `batch` rows (the last may be short) of each
 * batch's mean — not the plain mean (semantic_filters.py:25-35). *idx (M) sorted, malloc'd.
 * Cosines of centres and nouns run on o. Errors (one line): gamma_r > Mb, an empty S. */
int sic_semantic_space(int64_t **idx, size_t *M, SicSpaceInfo *info, const OpsBackend *o,
                       const float *C0, int K, const float *T0, size_t Mb, int E, int gamma_r,
                       double gamma_u, int batch);

// --- step 7: the adjusted centre-based mapping (compute_center.py:14-74) ------------------------
/* From the head's logits Z (N,K) on the raw fit features X (N,E): I_c = the top int((N//K)·xi_c)
 * rows of column c (ties to the lower row); V_c = normalize(mean X[I_c]); J_c = the xi_a rows of
 * the raw semantic space S (M,E) with the highest cos(V_c, S_j) (ties to the lower row);
 * H_c = normalize(mean S[J_c]). V, H (K,E); I (K, nI) and J (K, xi_a) sorted ascending, each may
 * be NULL. Means in double. cos(V, S) runs on o. -1 when nI < 1 or xi_a > M. */
int sic_centre_map(float *V, float *H, int64_t *I, int64_t *J, const OpsBackend *o,
                   const float *Z, const float *X, size_t N, int E, int K, const float *S,
                   size_t M, double xi_c, int xi_a);
/* Rows per centre of the mapping: int((N // K) · xi_c). */
size_t sic_rows_per_centre(size_t N, int K, double xi_c);

// --- steps 2, 3, 5 together: what SIC computes once before training -------------------------------
typedef struct {
    int knn;                  // neighbours besides self: 20 (sic.py:33; knn.py:26), so 21 rows
    int kmeans_restarts;      // sklearn KMeans n_init = 20 (evaluate_utils.py:82-105)
    int kmeans_iters;         // sklearn max_iter = 300
    double kmeans_tol;        // sklearn tol = 1e-4, relative to the mean per-feature variance
    int gamma_r;              // 500
    double gamma_u;           // 0.05
    int bank_batch;           // 128: the text loader's batch (the mean-of-batch-means quirk)
    uint64_t seed;
} SicSetupOpts;
void sic_setup_opts_default(SicSetupOpts *o);

typedef struct {
    int64_t *nbr;             // (N, knn+1) L2 neighbours on raw X, self included
    int nn;                   // knn + 1
    float *C0;                // (K,E) k-means centres of raw X
    int64_t *S_idx;           // (M) rows of the bank in the semantic space, sorted
    float *S;                 // (M,E) those raw rows
    size_t M;
    SicSpaceInfo info;
    double kmeans_objective;
    double t_knn, t_kmeans, t_space;   // seconds
} SicSetup;

/* kNN (faiss IndexFlatL2, top knn+1 incl. self) and k-means (sklearn KMeans(K, n_init): laic's
 * kmeans_fit, k-means++ init, Euclidean, tol × mean feature variance) on the raw fit features X
 * (N,E), then the semantic space of the raw bank T0 (Mb,E) around those K centres. kNN and k-means
 * run on the cluster backend (cluster_set_backend), the cosines on o. */
int sic_setup(SicSetup *s, const OpsBackend *o, const float *X, size_t N, int E, int K,
              const float *T0, size_t Mb, const SicSetupOpts *opt);
void sic_setup_free(SicSetup *s);

// --- steps 8-10: training ---------------------------------------------------------------------
typedef struct {
    int epochs;               // 100 (sic.py; cifar10.yml:52)
    int batch;                // 128, last partial batch kept (drop_last False)
    double lr, weight_decay;  // Adam, coupled L2: 1e-4, 1e-4
    double entropy_weight;    // λ = 5
    double ce_weight;         // β = 0.1
    double xi_c;              // 0.9
    int xi_a;                 // 30
    int select_test_acc;      // 1: keep the best test-ACC epoch, stop after `patience` without gain
    int patience;             // 5
    const float *center_init; // (K,E) raw image centres for --center_init (W = 0.1·C0,
                              // b = −0.05‖C0_c‖²), NULL = torch's default init
    uint64_t seed;
    int stop_after;           // stop after this many epochs in this call (0 = run them all)
    int graph;                // backends with graphs: capture an epoch's batches once, replay it
    const char *ckpt_path;    // written after every epoch (NULL = none)
    const char *resume_path;  // checkpoint to continue from (NULL = start fresh)
    const char *hparams;      // the record stored in / compared with the checkpoint
    void (*log)(void *ctx, const char *line);
    void *log_ctx;
} SicOpts;
void sic_opts_default(SicOpts *o);

typedef struct {
    const float *X;           // (N,E) raw fit features
    size_t N;
    int E, K;
    const int64_t *nbr;       // (N,nn) neighbour rows of each fit row (self included)
    int nn;
    const float *S;           // (M,E) raw semantic space
    size_t M;
    const float *Xeval;       // (Ne,E) raw eval features (predictions; test ACC when selecting)
    size_t Ne;
    const int64_t *yeval;     // (Ne) eval labels (-1 unknown), for select_test_acc; may be NULL
} SicData;

typedef struct {
    int64_t *pred;            // (Ne) eval predictions of the reported epoch
    float *params;            // (K·E + K) its W (K,E) then b (K)
    int epochs_run;           // epochs trained in total (resumed ones included)
    int first_epoch;          // 1 + epochs done before this call (resume)
    int reported_epoch;       // the epoch whose head is reported
    int stopped;              // 1: stop_after ended the call early
    int early_stopped;        // 1: select_test_acc ran out of patience
    double best_acc;          // select_test_acc: the ACC of the reported epoch (else -1)
    double *epoch_terms;      // (epochs,4): batch means of {L, L_I, H, CE}, NaN if not run
    double *epoch_acc;        // (epochs) test ACC per epoch when selecting, else NaN
    double t_map, t_steps, t_eval;   // seconds: centre mapping, batches, eval
    int64_t steps;
    int graph_captures;       // CUDA graphs captured (0 on the CPU)
} SicResult;

/* Trains SIC's head and predicts the eval rows. -1 with one line recorded on a bad input or a
 * backend failure. */
int sic_train(SicResult *res, const OpsBackend *o, const SicData *d, const SicOpts *opt);
void sic_result_free(SicResult *r);

/* One batch (step 8 and the Adam step of step 9) on the head h: x (2B,E) = the B anchors, then
 * their B neighbours (one GEMM through the head for both, as the two calls of
 * train_utils.py:44-45 compute), pseudo-labels yb (B) int32, all backend memory; acts from
 * head_acts_create with maxB >= 2B; terms (4) and dl (2B,K) backend scratch; sched (3) backend
 * Adam scalars for this step. Exposed for the one-step oracle test. */
void sic_step(Head *h, HeadActs *acts, const float *x, const int32_t *yb, int B, double *terms,
              float *dl, const double *sched, const SicOpts *opt);

#endif
