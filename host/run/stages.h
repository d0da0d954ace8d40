/*
 * stages.h — the stages of `laic run` (host/run/stages.c): each reads and writes plain arrays
 * in the Run (host/run/run.h) and caches what is expensive in run.cache_dir. Methods
 * (host/run/methods/) are short sequences of these calls.
 */
#ifndef LAIC_STAGES_H
#define LAIC_STAGES_H

#include "cluster/cluster.h"
#include "run/run.h"

int stage_weights(Run *r);               // load, or random init with a banner
int stage_data(Run *r);                  // open datasets / precomputed features, labels, K
int stage_images(Run *r);                // encode (or load cached) image features
int stage_nouns(Run *r);                 // noun bank features (cached)
/* Image centres → the γ nouns of each centre (SPEC §4, host/cluster/candidates.h) → r->cand,
 * r->cand_info, r->T; writes candidates.tsv into the run directory. */
int stage_candidates(Run *r);
/* Ridge representation C (N,M) of X (N,E) against r->T. */
int stage_ridge(Run *r, const float *X, size_t N, float **C, int *D);   // D: width of C
/* k-means with [kmeans] settings on F_fit (Nf,D); labels of fit rows and of eval rows
 * (nearest fitted centre; F_eval may equal F_fit), centres optional. */
int stage_cluster(Run *r, const float *F_fit, size_t Nf, const float *F_eval, size_t Ne, int D,
                  int K, int64_t *y_fit, int64_t *y_eval, float *centers);
/* The same with explicit k-means options (o->K clusters; a method with its own settings, e.g.
 * TAC's [tac] section); eval rows go to the nearest fitted centre (rows normalised first when
 * o->spherical). Records no timing. */
int stage_cluster_with(Run *r, const KMeansOpts *o, const float *F_fit, size_t Nf,
                       const float *F_eval, size_t Ne, int D, int64_t *y_fit, int64_t *y_eval,
                       float *centers);
/* Text features (Mn·NOUNS_N_TEMPLATES, E) of every candidate noun r->noun_names[i] in each
 * prompt template t (row i·NOUNS_N_TEMPLATES + t): L2-normalised (normalize 1) or raw. */
int stage_encode_noun_prompts(Run *r, int normalize, float *out);
/* The lines of a text file (line ends cut), which must number want: else "<path>: <n> lines,
 * but <rows_of> <want> rows" (rows_of e.g. "the features have"). *out: want malloc'd strings. */
int stage_read_lines(const char *path, size_t want, const char *rows_of, char ***out);
/* Text features (n,E), L2-normalised, of n prompts. */
int stage_encode_prompts(Run *r, const char *const *prompts, size_t n, float *out);
/* The same without the normalisation: the text encoder's raw outputs (x_EOT @ text_projection). */
int stage_encode_prompts_raw(Run *r, const char *const *prompts, size_t n, float *out);

/* Dense products of host row blocks with one fixed matrix, on a backend (the run's r->ops):
 * S (n,N) = A (n,K) @ B, where B is given as (N,K) and used transposed (trans 1: S = A Bᵀ,
 * e.g. cosine scores of rows against rows) or as (K,N) (trans 0). In fp32 through
 * sgemm_nn_forward, never TF32 or bf16 whatever model.precision says: these products pick
 * argmaxes and feed TAC's softmax at 1/τ = 200. On the CPU backend the host arrays are used in
 * place (the same cblas_sgemm as a direct call, bit for bit); elsewhere B is uploaded once and
 * each block goes up and comes back. n <= rows per call. */
typedef struct {
    const OpsBackend *o;
    float *B;              // (K,N) backend memory (a host copy, or the caller's B, on the CPU)
    float *A, *S;          // (rows,K), (rows,N) backend blocks; NULL on the CPU
    int K, N, own_B;       // own_B: B is a host copy to free (CPU backend, trans 1)
    size_t rows;
} RunGemm;
int run_gemm_init(RunGemm *g, const OpsBackend *o, const float *B, int trans, int N, int K,
                  size_t rows);
/* S (n,N) host = A (n,K) host @ B; normalize 1: each row of S then divided by its L2 norm
 * (the backend's l2normalize_rows). */
void run_gemm_rows(RunGemm *g, float *S, const float *A, size_t n, int normalize);
void run_gemm_free(RunGemm *g);

#endif
