/*
 * heads.h — clustering heads trained on cached features, shared by SIC (SPEC §9.1: one
 * Linear(D,K)) and TAC trained (SPEC §9.2: Linear(D,H) → BatchNorm1d(H) → ReLU → Linear(H,K)
 * → Softmax, one head per modality). Everything numerical goes through the op table
 * (host/ops.h), so one code path trains on the CPU and on CUDA.
 *
 * Promises:
 * - Parameters, their gradients and Adam's two moments each live in one backend allocation,
 *   carved in PyTorch's state_dict order (W1, b1, bn.weight, bn.bias, W2, b2; the Linear head has
 *   only W2 = (K,D) and b2), so one adam_forward call steps every tensor and one memset zeroes
 *   every gradient. Gradients ACCUMULATE: head_backward adds, head_zero_grad clears.
 * - BatchNorm as torch: batch statistics in training (biased variance to normalise, unbiased to
 *   update running_var, momentum 0.1, eps 1e-5), running statistics at inference. Every
 *   training-mode forward updates the running statistics once (as each call of a torch module).
 * - Adam: torch.optim.Adam's single-tensor arithmetic (adam_forward), coupled L2 weight decay,
 *   betas and eps as given; the step count is the head's.
 * - Initialisation [ours: own RNG, so values differ from torch's draws, not their law]:
 *   HEAD_INIT_TORCH = nn.Linear's default, weight and bias ~ U(−1/√fan_in, 1/√fan_in);
 *   HEAD_INIT_TAC = weights trunc_normal(0, 0.02) on [−2, 2] (timm; effectively N(0, 0.02²)),
 *   biases as torch's default (TAC models.py:54-57). BatchNorm: weight 1, bias 0, running mean 0,
 *   running var 1.
 * - Checkpoints (heads_ckpt_save/load): one file per training run with int32[256] header
 *   (magic, version, per-head kind and sizes, steps, epoch), a hyper-parameter record (text,
 *   compared on load), then every head's parameters, moments and running statistics, and the
 *   optional best-epoch parameters; a SHA-256 of everything after the header is stored in it and
 *   checked on load. Written atomically. Resuming from it continues bit for bit.
 *
 * Letters: D input width, H hidden width (MLP), K clusters, B batch rows.
 */
#ifndef LAIC_HEADS_H
#define LAIC_HEADS_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"

typedef enum { HEAD_LINEAR = 0, HEAD_MLP = 1 } HeadKind;
typedef enum { HEAD_INIT_TORCH = 0, HEAD_INIT_TAC = 1 } HeadInit;

#define HEAD_NUM_TENSORS 6
typedef struct {
    float *W1;    // (H,D)  first Linear (MLP only)
    float *b1;    // (H)
    float *bnw;   // (H)    BatchNorm1d weight
    float *bnb;   // (H)    BatchNorm1d bias
    float *W2;    // (K,H)  last Linear; (K,D) for the Linear head
    float *b2;    // (K)
} HeadTensors;

typedef struct Head {
    const OpsBackend *o;
    HeadKind kind;
    int D, H, K, maxB;
    size_t sizes[HEAD_NUM_TENSORS], n_params;
    float *mem;             // backend: params | grads | m | v | running mean | running var | scratch
    HeadTensors p, g;       // parameters and gradients, carved from mem
    float *m, *v;           // (n_params) Adam moments
    float *running_mean;    // (H) MLP only
    float *running_var;     // (H)
    float *dA, *dh;         // (maxB,H) backward scratch
    double *sched;          // (3) backend: Adam's {lr, bc1, bc2}
    int64_t step;           // Adam steps taken (head_adam counts; trainers add an epoch's at once)
    int64_t bn_batches;     // training forwards seen by BatchNorm (torch's num_batches_tracked;
                            // counted by the trainer)
} Head;

/* Activations of one forward, kept for its backward. A head may run several forwards before
 * their backwards; each needs its own HeadActs. One forward may also stack up to HEAD_MAX_PARTS
 * equal groups of rows (anchors, then neighbours) that BatchNorm treats as separate calls of
 * the module — statistics per group, one running-statistics update per group in order — while
 * the Linear layers see one GEMM of all rows. */
#define HEAD_MAX_PARTS 2
typedef struct {
    int maxB, B, parts;
    const float *inp;       // (B,D) the forward's input (caller's backend memory)
    float *h;               // (maxB,H) first Linear's output (BatchNorm's input)
    float *a;               // (maxB,H) BatchNorm output, ReLU applied in place
    float *mean, *rstd;     // (parts,H) BatchNorm statistics used, per group
    float *logits;          // (maxB,K)
    float *probs;           // (maxB,K) softmax(logits) when asked for
    float *mem;
} HeadActs;

/* Allocates a head on backend o (parameters zero, running var 1) for batches up to maxB rows.
 * H is ignored (0) for HEAD_LINEAR. -1 with an error recorded when the backend cannot allocate. */
int head_create(Head *h, const OpsBackend *o, HeadKind kind, int D, int H, int K, int maxB);
void head_free(Head *h);
/* Draws the parameters (host RNG stream (seed, stream)) and uploads them; running stats reset. */
void head_init_params(Head *h, HeadInit init, uint64_t seed, uint64_t stream);
/* Host copies of the n_params parameters in carve order (tests, checkpoints, exports). */
void head_get_params(const Head *h, float *host);
void head_set_params(Head *h, const float *host);
void head_get_grads(const Head *h, float *host);

int head_acts_create(const Head *h, HeadActs *a, int maxB);
void head_acts_free(const Head *h, HeadActs *a);

/* logits (B,K) of inp (B,D) (backend memory) into a; probs too when want_probs. train selects
 * BatchNorm's mode (and updates its running statistics). B <= a->maxB; training needs B >= 2.
 * Only ops (capturable); h->bn_batches is the caller's to count. */
void head_forward(Head *h, HeadActs *a, const float *inp, int B, int train, int want_probs);
/* The same for B rows made of `parts` (1..HEAD_MAX_PARTS) consecutive groups of B/parts rows,
 * each its own BatchNorm batch (see HeadActs). B must be a multiple of parts. */
void head_forward_parts(Head *h, HeadActs *a, const float *inp, int B, int parts, int train,
                        int want_probs);
/* Adds the parameter gradients of ⟨dlogits, logits⟩ for the forward recorded in a
 * (dlogits (B,K) backend memory). The input gradient is not computed (features are frozen). */
void head_backward(Head *h, HeadActs *a, const float *dlogits);
void head_zero_grad(Head *h);
/* One Adam step on every parameter: step += 1, then torch.optim.Adam(lr, betas, eps,
 * weight_decay) with coupled L2 decay. */
void head_adam(Head *h, double lr, double beta1, double beta2, double eps, double weight_decay);

/* pred (N) int64 (may be NULL) = argmax of the eval-mode logits of X (N,D) (backend memory;
 * ties to the lowest class), in chunks of max(maxB, 4096) rows; logits (N,K) host may be NULL.
 * -1 when the backend cannot allocate. */
int head_predict(Head *h, int64_t *pred, float *logits, const float *X, size_t N);

/* One Adam step reading its per-step scalars {lr, bc1, bc2} from sched (3) in backend memory
 * (a trainer uploads a whole epoch's schedule at once: no copy per step). Only ops: it leaves
 * h->step alone, so a captured epoch replays correctly; the caller counts the steps. */
void head_adam_at(Head *h, const double *sched, double beta1, double beta2, double eps,
                  double weight_decay);

/* Heads multiply in fp32 on every backend: on CUDA this selects the fp32 matmul path and fp32
 * weight gradients (the process-wide switches a bf16 image encoder may have left set; each CLIP
 * model re-selects its own mode at its entry points). No-op on the CPU. */
void heads_use_fp32(const OpsBackend *o);

/* S (n,m) = A (n,k) @ B (m,k)ᵀ for HOST arrays, fp32, on backend o (matmul_forward without
 * bias; on a device backend A, B go up and S comes back). -1 when o cannot allocate. For the
 * methods' per-epoch and setup products (cosines of centres and nouns, TAC's retrieval). */
int heads_gemm_nt(const OpsBackend *o, float *S, const float *A, const float *B, size_t n,
                  size_t m, int k);

// --- epochs ---------------------------------------------------------------------------------------

/* The epochs of a head trainer (SIC, TAC) on backend memory, with the CUDA-graph rule: the first
 * epoch of a call runs eagerly (cuBLAS handles and op scratch are created there), the next is
 * captured once and every later epoch replays the capture, its inputs (indices, labels, schedule)
 * rewritten in place before each launch. */
typedef struct {
    void (*steps)(void *ctx);   // one epoch's batches: only ops (what a graph captures)
    void *ctx;
    int use_graph;              // graphs asked for and on the backend; 0 after a failed capture
    void *graph;                // the capture, NULL until made (the caller frees it: o->graph_free)
    int captures;               // graphs captured
} HeadsEpochs;

/* Runs one epoch (done_here: epochs this call has run before it). A failed capture is logged as
 * "<who>: CUDA graph capture failed (<why>); running eagerly" and the epoch runs eagerly, as do
 * the later ones. Returns 0, or the graph launch's error. */
int heads_epoch_run(HeadsEpochs *e, const OpsBackend *o, int done_here, const char *who,
                    void (*log)(void *ctx, const char *line), void *log_ctx);

// --- checkpoints ------------------------------------------------------------------------------
#define HEADS_CKPT_MAGIC 20251208
#define HEADS_CKPT_VERSION 1
#define HEADS_CKPT_MAX 4
#define HEADS_HPARAMS_LEN 1024

typedef struct {
    int epoch;               // epochs completed
    int best_epoch;          // best-ACC epoch so far (1-based), 0 = none (sic.select = test_acc)
    int no_gain;             // epochs since the best one
    double best_acc;         // its ACC
    char hparams[HEADS_HPARAMS_LEN];   // "key=value;..." of every setting the trajectory depends on
} HeadsRunState;

/* Writes every head's state, the run state and best (n_best floats, may be NULL/0) atomically. */
int heads_ckpt_save(const char *path, Head *const *heads, int n, const HeadsRunState *st,
                    const float *best, size_t n_best);
/* Reads a checkpoint written for heads of the same kinds and sizes into them; the stored
 * hyper-parameter record must equal st->hparams (the first differing key is named). st's epoch
 * and best fields are filled; best (n_best) receives the best parameters when stored (*has_best).
 * Any mismatch, bad magic/version/size or checksum is a one-line error. */
int heads_ckpt_load(const char *path, Head *const *heads, int n, HeadsRunState *st, float *best,
                    size_t n_best, int *has_best);

#endif
