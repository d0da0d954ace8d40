/*
 * ops.h — the backend table: every numerical op laic runs, once for the CPU (host/cpu/<op>.c,
 * always built) and once for CUDA (kernels/<op>.cu, built when nvcc is present).
 *
 * Methods, the CLIP model and the pipeline call ops only through an OpsBackend; they never
 * touch CUDA or BLAS directly. Pointers passed to an op live in that backend's memory
 * (host memory for CPU, device memory for CUDA), allocated with backend->alloc.
 *
 * Conventions (llm.c):
 * - argument order: outputs, inputs, saved activations, sizes.
 * - every op overwrites its outputs (forward ops are "=", not "+="). Backward ops that produce
 *   parameter gradients accumulate with "+=" and say so; input gradients overwrite unless
 *   documented otherwise.
 * - sizes are int for dimensions (all < 2^31) and size_t for element counts.
 * - matrices are row-major; a Linear weight is (out, in) as in PyTorch, so
 *   matmul_forward computes out = inp @ weightᵀ + bias.
 *
 * Dimension letters: B batch, T tokens, C width, NH heads, hs = C/NH head size, OC output
 * channels, M/K/N the rows / inner / output dims of a matmul, P patch size, G grid (H/P).
 */
#ifndef LAIC_OPS_H
#define LAIC_OPS_H

#include <stddef.h>
#include <stdint.h>

/* The constants of the SEIC stage-1 loss (SPEC §9.3; op seic_align_loss_forward_backward). */
typedef struct {
    double tau_a, tau_c;                  // assignment / centre temperatures (0.5, 0.5)
    double w_ins, w_ass, w_ctr, w_bal;    // loss weights α β γ δ (0.5, 1, 1, 2)
    double bal_floor, bal_max_w;          // histogram floor, largest balance weight (0.01, 5)
    double bal_momentum;                  // balance histogram EMA momentum (0.9)
    double scale_max;                     // cap on the learnable instance scale exp(log s) (100)
} SeicLossCfg;

/* The SEIC strong view's settings (SPEC §9.3; host/model/augment.h draws and applies them). */
typedef struct {
    double scale_lo, scale_hi;   // RandomResizedCrop area fraction, (0.5, 1)
    double flip_p;               // RandomHorizontalFlip, 0.5
    double jitter_p;             // RandomApply(ColorJitter), 0.8
    double brightness, contrast, saturation;   // ColorJitter strengths, 0.32 each: factor in
                                               // [max(0, 1 - x), 1 + x]
    double hue;                  // 0.08: factor in [-hue, hue]
    double gray_p;               // RandomGrayscale, 0.2
} SeicViewCfg;

typedef struct OpsBackend {
    const char *name;   // "cpu" or "cuda"

    // --- memory ------------------------------------------------------------------------
    void *(*alloc)(size_t bytes);                   // error recorded + NULL on failure
    void (*free)(void *p);
    void (*to_device)(void *dst, const void *src_host, size_t bytes);
    void (*to_host)(void *dst_host, const void *src, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes);   // within the backend
    void (*memset0)(void *p, size_t bytes);
    void (*synchronize)(void);

    // --- dense ---------------------------------------------------------------------------
    // out (M,N) = inp (M,K) @ weight(N,K)ᵀ + bias (N) [bias may be NULL]
    void (*matmul_forward)(float *out, const float *inp, const float *weight, const float *bias,
                           int M, int K, int N);

    // --- normalisation -------------------------------------------------------------------
    // out (N,C) = (inp - mean) * rstd * weight + bias, eps 1e-5; mean, rstd (N) are saved for
    // the backward and may be NULL when not needed.
    void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *inp,
                              const float *weight, const float *bias, int N, int C);
    // out (N,C) = inp / max(||inp||_2, 1e-12) row by row (out may equal inp)
    void (*l2norm_forward)(float *out, const float *inp, int N, int C);

    // --- elementwise ---------------------------------------------------------------------
    // out = inp * sigmoid(1.702 * inp) (QuickGELU), N elements (out may equal inp)
    void (*quickgelu_forward)(float *out, const float *inp, size_t N);
    // out = a + b, N elements (out may equal a or b)
    void (*residual_forward)(float *out, const float *a, const float *b, size_t N);

    // --- attention -----------------------------------------------------------------------
    // qkv (B,T,3C): per token [q | k | v], each C = NH*hs, as nn.MultiheadAttention's in_proj.
    // out (B,T,C): softmax(q kᵀ / sqrt(hs) [+ causal mask]) v, heads concatenated.
    // att (B,NH,T,T): the softmax probabilities, saved for the backward; may be NULL.
    void (*attention_forward)(float *out, float *att, const float *qkv, int B, int T, int C,
                              int NH, int causal);

    // --- embeddings and gathers ------------------------------------------------------------
    // patches (B*G*G, 3*P*P) from pixels (B,3,H,W), H = W = G*P; row order (b, gy, gx),
    // column order (c, py, px) = conv weight (OC,3,P,P) flattened, so the conv is a matmul.
    void (*im2col_forward)(float *patches, const float *pixels, int B, int H, int P);
    // out (B,1+NP,C): row 0 = class_emb, rows 1.. = patch_emb (B,NP,C); then + pos (1+NP,C)
    void (*vision_embed_forward)(float *out, const float *patch_emb, const float *class_emb,
                                 const float *pos, int B, int NP, int C);
    // out (B,T,C) = tok_emb[tokens[b,t]] + pos[t]; tokens (B,T) int32 in [0,V)
    void (*token_embed_forward)(float *out, const int32_t *tokens, const float *tok_emb,
                                const float *pos, int B, int T, int C);
    // out (B,T,C) = embeds (B,T,C) + pos[t]   (prompt-learning entry point; out may equal embeds)
    void (*pos_add_forward)(float *out, const float *embeds, const float *pos, int B, int T,
                            int C);
    // out (B,C) = inp[b, idx[b], :], inp (B,T,C), idx (B) int32 in [0,T)
    void (*gather_rows_forward)(float *out, const float *inp, const int32_t *idx, int B, int T,
                                int C);

    // --- backward (input gradients; the weights are frozen) --------------------------------
    // Each takes the forward's saved activations; "d" prefixes a gradient of the same shape.
    // dinp (M,K) = dout (M,N) @ weight (N,K)          [of matmul_forward; overwrites]
    void (*matmul_backward)(float *dinp, const float *dout, const float *weight, int M, int K,
                            int N);
    // dinp (N,C) += LayerNorm input gradient, from inp (N,C) and the forward's mean, rstd (N).
    // ACCUMULATES (llm.c): the residual stream's gradient arrives in dinp already.
    void (*layernorm_backward)(float *dinp, const float *dout, const float *inp,
                               const float *weight, const float *mean, const float *rstd, int N,
                               int C);
    // dinp (N,C) from dout and the forward's input inp (N,C) [overwrites; dinp may equal dout]
    void (*l2norm_backward)(float *dinp, const float *dout, const float *inp, int N, int C);
    // dinp = dout * QuickGELU'(inp), inp = the pre-activation [overwrites; dinp may equal dout]
    void (*quickgelu_backward)(float *dinp, const float *dout, const float *inp, size_t N);
    // da = dout, db = dout (N elements) [overwrites; either may equal dout]
    void (*residual_backward)(float *da, float *db, const float *dout, size_t N);
    // dqkv (B,T,3C) from dout (B,T,C), the forward's qkv and att (B,NH,T,T) [overwrites]
    void (*attention_backward)(float *dqkv, const float *dout, const float *qkv, const float *att,
                               int B, int T, int C, int NH, int causal);
    // dembeds (B,T,C) = dout [overwrites; may equal dout]; dpos (T,C) += Σ_b dout (may be NULL)
    void (*pos_add_backward)(float *dembeds, float *dpos, const float *dout, int B, int T, int C);
    // dinp (B,T,C): row idx[b] of batch b = dout (B,C), every other row 0 [overwrites]
    void (*gather_rows_backward)(float *dinp, const float *dout, const int32_t *idx, int B, int T,
                                 int C);

    // --- clustering (host/cluster/cluster.h drivers; CPU in host/cpu/{cholesky,kmeans,knn}.c and
    // host/cluster/cluster.c, CUDA in kernels/{cholesky,kmeans,knn}.cu). Letters: N rows, d width,
    // M texts, K clusters, k neighbours, n system order, R right-hand-side rows. Doubles are
    // row-major like everything else. All overwrite their outputs.
    // out (n) = (double) inp (n)   /   out (n) = (float) inp (n), round to nearest
    void (*f32_to_f64)(double *out, const float *inp, size_t n);
    void (*f64_to_f32)(float *out, const double *inp, size_t n);
    // out (c,r) = inp (r,c)ᵀ
    void (*transpose_f64)(double *out, const double *inp, int r, int c);
    // lower triangle of G (n,n) = A Aᵀ + λI for A (n,k) (trans 0) or AᵀA + λI for A (k,n)
    // (trans 1); the strict upper triangle is left as it was
    void (*gram_f64_forward)(double *G, const double *A, double lambda, int n, int k, int trans);
    // C (M,N) = A (M,K) @ B (N,K)ᵀ in double
    void (*dgemm_nt_forward)(double *C, const double *A, const double *B, int M, int K, int N);
    // C (M,N) = A (M,K) @ B (K,N) in float (no TF32)
    void (*sgemm_nn_forward)(float *C, const float *A, const float *B, int M, int K, int N);
    // In-place lower Cholesky A (n,n) = L Lᵀ (lower read; strict upper zeroed on return).
    // Returns -1 with "<what>: matrix is not positive definite (pivot <i> = <v>)" recorded.
    int (*cholesky_forward)(double *A, int n, const char *what);
    // B (R,n) := B (L Lᵀ)⁻¹   /   B (n,R) := (L Lᵀ)⁻¹ B; two triangular solves, no inverse
    void (*cholesky_solve_right)(double *B, const double *L, int R, int n);
    void (*cholesky_solve_left)(double *B, const double *L, int n, int R);
    // out (N) = ‖x_i‖² accumulated in double   /   out (N,d) = x_i / max(‖x_i‖, 1e-12) with the
    // norm and the quotient in double (out may equal X; not the same rounding as l2norm_forward)
    void (*rownorm2_forward)(float *out, const float *X, int N, int d);
    void (*l2normalize_rows)(float *out, const float *X, int N, int d);
    // D (N,K) = max(‖x‖² − 2 x·c + ‖c‖², 0) for X (N,d), C (K,d), xx (N), cc (K) squared norms
    void (*sqdist_forward)(float *D, const float *X, const float *xx, const float *C,
                           const float *cc, int N, int d, int K);
    // labels (N) int64, mind (N): argmin over centres of the distance above (ties to the lowest
    // centre index) and its value clamped at 0
    void (*kmeans_assign_forward)(int64_t *labels, float *mind, const float *X, const float *xx,
                                  const float *C, const float *cc, int N, int d, int K);
    // C (K,d) = per-label mean of X (N,d), summed in double in row order; counts (K) = sizes;
    // rows of empty clusters are left untouched
    void (*kmeans_update_forward)(float *C, int64_t *counts, const float *X,
                                  const int64_t *labels, int N, int d, int K);
    // out (N) = ‖x_i − c_{labels_i}‖² in double (exact differences; the k-means objective)
    void (*kmeans_rowdist_forward)(double *out, const float *X, const float *C,
                                   const int64_t *labels, int N, int d);
    // The Lloyd step with an update that is exact in any order (threads, ranks): labels, mind as
    // kmeans_assign_forward; counts (K) = sizes; sums (K,d) int64 (may be NULL: assignment only)
    // = per-label Σ of round-half-even(x · 2^shift), integer additions. shift from
    // kmeans_fixed_shift (host/cpu/cluster_ops.h) keeps |Σ| < 2^63.
    void (*kmeans_assign_sums_forward)(int64_t *labels, float *mind, int64_t *sums,
                                       int64_t *counts, const float *X, const float *xx,
                                       const float *C, const float *cc, int N, int d, int K,
                                       int shift);
    // C (K,d) rows with counts > 0 = (float)(((double)sums · 2^-shift) / counts); others untouched
    void (*kmeans_centres_forward)(float *C, const int64_t *sums, const int64_t *counts, int K,
                                   int d, int shift);
    // idx (N,k) int64, sims (N,k) (may be NULL): cosine top-k of the rows of F (N,d), rows
    // already normalised, self excluded, decreasing similarity, ties to the lowest index, tiled
    // (never N×N). 1 <= k <= N-1; the CUDA twin also needs k <= 256.
    void (*knn_topk_forward)(int64_t *idx, float *sims, const float *F, int N, int d, int k);
    // The rows r0..r1-1 of knn_topk_forward's result (data parallel: a rank's share of the
    // queries against all N rows): idx (r1-r0,k), sims (r1-r0,k) or NULL. CPU: r0 at a multiple
    // of knn_block_rows(N) (host/cpu/cluster_ops.h) gives bitwise the full call's rows. CUDA: no
    // row-range kernel yet: it computes every row and keeps the range (correct, not faster).
    void (*knn_topk_rows_forward)(int64_t *idx, float *sims, const float *F, int N, int d, int k,
                                  int r0, int r1);
    // scores (N) = fraction of the k neighbours idx (N,k) with row i's label; mask (N) = 1 where
    // scores == 1 (mask may be NULL)
    void (*knn_filter_forward)(float *scores, uint8_t *mask, const int64_t *idx,
                               const int64_t *labels, int N, int k);

    // --- prompt learning (host/train/trainer.c). CPU in host/cpu/train_ops.c (wrapping host/train/train.c
    // and host/model/augment.c, the references), CUDA in kernels/train.cu and kernels/augment.cu.
    // dst row r (row_len floats) = src row r, for rows 0..rows-1 at strides dst_stride and
    // src_stride (in floats); rows must not overlap
    void (*strided_copy)(float *dst, size_t dst_stride, const float *src, size_t src_stride,
                         int rows, size_t row_len);
    // pixels (2b,3,S,S) = the trainer's views: row j < b is the weak, row b + j the strong view
    // of sample index[j], made from the HOST image imgs[j] (H[j],W[j],3) RGB8, keyed by
    // (seed, epoch, index[j]) exactly as augment_view, then CLIP-normalised as image_normalize.
    // imgs, H, W and index are host arrays of b entries; pixels is backend memory. Synchronous.
    // Returns -1 with an error recorded (device out of memory, image too large).
    int (*train_views_forward)(float *pixels, const uint8_t *const *imgs, const int *H,
                               const int *W, const size_t *index, int b, int S, uint64_t seed,
                               uint64_t epoch);
    // The SPEC §7 loss of one batch and its gradient (host/train/train.h train_loss):
    //   F (2b,E) normalised view features, weak rows 0..b-1 then strong rows b..2b-1;
    //   W (K,E) normalised class features; yhat (b) int32 in [0,K) where hq (not checked here:
    //   the trainer checks every pseudo-label once); hq (b) uint8 1 = high-quality;
    //   dW (K,E) = dL/dW [overwrites]; terms (6) double = {total, gce, mse, entropy, n_hq, n_u}
    //   (LossValue's fields). mask: bit 0 gce, bit 1 mse, bit 2 entropy (LossConfig.use_*);
    //   q, alpha, beta, scale as LossConfig.
    void (*prompt_loss_forward_backward)(double *terms, float *dW, const float *F,
                                         const float *W, const int32_t *yhat, const uint8_t *hq,
                                         int b, int K, int E, int mask, double q, double alpha,
                                         double beta, double scale);
    // One torch.optim.SGD step on n floats in place, exactly host/train/train.h sgd_step with
    // *have_buf = have_buf: d = g + wd·p; buf = have_buf ? momentum·buf + d : d; p -= lr·buf.
    // lr (1) is in backend memory, so a captured step reads the current epoch's rate.
    void (*sgd_forward)(float *p, float *buf, const float *g, const double *lr, size_t n,
                        double momentum, double weight_decay, int have_buf);

    // --- parameter gradients and optimisers (shared by every trainer) --------------------------
    // Of matmul_forward (out = inp @ weightᵀ + bias): dweight (N,K) += dout (M,N)ᵀ @ inp (M,K),
    // dbias (N) += Σ_m dout[m,:] (each column summed in row order in double, added to dbias in
    // double, rounded once; dbias may be NULL). ACCUMULATES, so one memset zeroes a step's
    // gradients. fp32, no TF32.
    void (*matmul_backward_weight)(float *dweight, float *dbias, const float *dout,
                                   const float *inp, int M, int K, int N);
    // One torch.optim.Adam (decoupled 0) or AdamW (decoupled 1) step on n floats in place, the
    // single-tensor arithmetic of PyTorch (host/cpu/optim.c quotes it): Adam adds the coupled L2
    // term wd·p to g first, AdamW multiplies p by 1 − lr·wd first; then m = lerp(m, g, 1−β1),
    // v = β2·v + (1−β2)·g², p −= (lr/bc1) · m / (√v/√bc2 + eps). m, v (n) start at zero.
    // sched (3) in backend memory = {lr, bc1 = 1 − β1^t, bc2 = 1 − β2^t} for step t ≥ 1
    // (adam_schedule, host/train/optim.h), so a captured step reads the current values.
    void (*adam_forward)(float *p, float *m, float *v, const float *g, const double *sched,
                         size_t n, double beta1, double beta2, double eps, double weight_decay,
                         int decoupled);

    // --- CUDA graphs: NULL on backends without them (the caller then just calls fn) ---------
    // Records the ops that fn(ctx) issues, without running them, into a replayable graph.
    // fn must only launch ops (no to_device/to_host/alloc/synchronize). NULL with an error
    // recorded when the capture fails.
    void *(*graph_capture)(void (*fn)(void *ctx), void *ctx);
    // Replays a captured graph, ordered after the ops before it and before those after it.
    int (*graph_launch)(void *graph);
    void (*graph_free)(void *graph);

    // --- image-encoder training (issue 16: ViT backward with weight gradients, LoRA, clipping).
    // CPU in host/cpu/{layernorm,embed,lora,optim}.c, CUDA in kernels/{layernorm,embed,lora,
    // optim}.cu. Parameter gradients ACCUMULATE (+=); input gradients overwrite unless noted.
    // Of layernorm_forward (out = (inp − mean)·rstd·weight + bias, the forward's mean, rstd (N)):
    // dweight (C) += Σ_n dout[n,:]·(inp[n,:] − mean[n])·rstd[n], dbias (C) += Σ_n dout[n,:]
    // (either may be NULL). Each column summed over n in double (CPU: row order; CUDA: a fixed
    // chunked order, run-to-run identical), added in double, rounded once. ACCUMULATES.
    void (*layernorm_backward_weight)(float *dweight, float *dbias, const float *dout,
                                      const float *inp, const float *mean, const float *rstd,
                                      int N, int C);
    // Of vision_embed_forward: dpatch_emb (B,NP,C) = dout[:,1:,:] (overwrites; may be NULL);
    // dclass_emb (C) += Σ_b dout[b,0,:] and dpos (1+NP,C) += Σ_b dout[b,:,:] (ACCUMULATE, each
    // summed over b in order in double and rounded once; either may be NULL). dout (B,1+NP,C).
    void (*vision_embed_backward)(float *dpatch_emb, float *dclass_emb, float *dpos,
                                  const float *dout, int B, int NP, int C);
    // Of im2col_forward: dpixels (B,3,H,W) from dpatches (B*G*G, 3*P*P). Kernel = stride, so
    // every pixel is in exactly one patch: a permutation (overwrites).
    void (*im2col_backward)(float *dpixels, const float *dpatches, int B, int H, int P);
    // LoRA on one Linear whose output out has row stride ldo (≥ N; q and v of the fused in_proj
    // are out = qkv and qkv + 2C with ldo = 3C): h (M,r) = inp (M,K) @ downᵀ, down (r,K);
    // out[m, 0:N] += scale · (h @ upᵀ)[m,:], up (N,r). h is saved for the backward (overwrites).
    // Matmul precision as matmul_forward (CUDA: the forward switch).
    void (*lora_forward)(float *out, float *h, const float *inp, const float *down,
                         const float *up, float scale, int M, int K, int N, int r, int ldo);
    // Its backward, dout (M,N) at row stride ldo, inp and h from the forward:
    //   dup (N,r) += scale · doutᵀ h;  dh (M,r) = scale · dout @ up (overwrites: scratch);
    //   ddown (r,K) += dhᵀ inp;  dinp (M,K) += dh @ down (ACCUMULATES onto the frozen path's
    //   input gradient; may be NULL when nothing below needs it).
    // CUDA: fp32, or bf16 operands with fp32 accumulation under ops_cuda_set_backward_bf16.
    void (*lora_backward)(float *dinp, float *ddown, float *dup, float *dh, const float *dout,
                          const float *inp, const float *h, const float *down, const float *up,
                          float scale, int M, int K, int N, int r, int ldo);
    // out[0] += Σ x² over n floats, in double (ACCUMULATES, so several tensors give one global
    // norm); out is backend memory. CPU: in order; CUDA: a fixed tree (deterministic, not the
    // CPU's bits).
    void (*sumsq_forward)(double *out, const float *x, size_t n);
    // torch.nn.utils.clip_grad_norm_ on n floats in place, given sumsq (1) in backend memory =
    // the squared global norm: norm = (float)√sumsq, coef = min((float)max_norm / (norm + 1e-6),
    // 1) in float, x *= coef (a multiplication by exactly 1 when not clipping).
    void (*grad_clip_forward)(float *x, size_t n, const double *sumsq, double max_norm);

    // --- communicator (host/comm.h): the ranks of an mpirun / srun job (one rank otherwise), on
    // this backend's memory: MPI on host memory (CPU); NCCL on device memory (CUDA, LAIC_NCCL;
    // without NCCL the CUDA entries copy through host memory to MPI). Every rank of the active
    // group makes the same calls in the same order. type: COMM_I64, COMM_F32, COMM_F64 (comm.h).
    int (*comm_rank)(void);
    int (*comm_size)(void);
    // buf (n) = Σ over ranks, in place: exact for COMM_I64 (any order); floats in the library's
    // order (every rank gets the same bits, but not one process's: see comm.h)
    void (*allreduce_sum)(void *buf, size_t n, int type);
    // buf = the ranks' segments in rank order, segment r counts[r] bytes (counts: a host array
    // of comm_size entries); this rank's segment is filled on entry, every segment on return
    void (*allgather)(void *buf, const size_t *counts);
    // buf (bytes) = root's buf
    void (*broadcast)(void *buf, size_t bytes, int root);
    void (*barrier)(void);

    // --- clustering heads (host/train/heads.h: SIC's Linear head, TAC's MLP head). CPU in
    // host/cpu/heads.c, CUDA in kernels/heads.cu. Letters: B/b batch rows, C channels, K
    // clusters, n elements. Appended at the end of the table so no earlier entry moves.
    // BatchNorm1d (B,C), eps and momentum as torch: train 1 normalises with the batch mean and
    // biased variance, saves mean, rstd = 1/sqrt(var + eps) (C), and updates running_mean/var
    // (C) in place with the unbiased variance (x = (1 − momentum)·x + momentum·batch); train 0
    // normalises with the running statistics (mean, rstd still written; running left as is).
    // out = (inp − mean)·rstd·weight + bias. Training needs B >= 2 (torch refuses B = 1).
    void (*batchnorm_forward)(float *out, float *mean, float *rstd, float *running_mean,
                              float *running_var, const float *inp, const float *weight,
                              const float *bias, int B, int C, int train, double momentum,
                              double eps);
    // Of the training-mode forward: dinp (B,C) [overwrites; may not alias dout]; dweight,
    // dbias (C) += (ACCUMULATE). mean, rstd as the forward saved them.
    void (*batchnorm_backward)(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, const float *mean,
                               const float *rstd, int B, int C);
    // out = max(inp, 0) (out may equal inp)  /  dinp = out > 0 ? dout : 0, from the forward's
    // OUTPUT, so the forward may run in place [overwrites; dinp may equal dout]
    void (*relu_forward)(float *out, const float *inp, size_t n);
    void (*relu_backward)(float *dinp, const float *dout, const float *out, size_t n);
    // out (B,K) = row softmax of inp (B,K) (out may equal inp)
    void (*softmax_forward)(float *out, const float *inp, int B, int K);
    // out (n,C) = inp[idx[i], :] for idx (n) int64 in range (rows of a resident feature matrix)
    void (*index_select_forward)(float *out, const float *inp, const int64_t *idx, int n, int C);
    // SIC's loss (SPEC §9.1 step 8) of one batch and its gradient w.r.t. both logits:
    //   la, ln (b,K) logits of anchors and neighbours, yhat (b) int32 in [0,K) their semantic
    //   pseudo-labels; dla, dln (b,K) [overwrite]; terms (4) double (backend memory) =
    //   {L, L_I, H, CE} with L = L_I − entropy_weight·H + ce_weight·CE.
    void (*sic_loss_forward_backward)(double *terms, float *dla, float *dln, const float *la,
                                      const float *ln, const int32_t *yhat, int b, int K,
                                      double entropy_weight, double ce_weight);
    // TAC's loss (SPEC §9.2 step 7) of one batch from the heads' softmax outputs P (b,K) of
    // image (I) and text (T) anchors (a) and neighbours (n); d* (b,K) = ∂L/∂logits of the same
    // four [overwrite]; terms (5) double = {L, D(Ia,Tn), D(Ta,In), Cons(Ta,Ia), H(Ta) + H(Ia)},
    // L = D + D + Cons − entropy_weight·(H + H); tau the cluster-contrastive temperature.
    void (*tac_loss_forward_backward)(double *terms, float *dIa, float *dTa, float *dIn,
                                      float *dTn, const float *PIa, const float *PTa,
                                      const float *PIn, const float *PTn, int b, int K,
                                      double tau, double entropy_weight);

    // --- SEIC (SPEC §9.3; host/train/seic.c). CPU in host/cpu/seic.c, CUDA in kernels/seic.cu.
    // Stage-1 alignment loss of one batch of b image/text pairs and its input gradients:
    //   zi, zt (b,E) the heads' projected features z = normalize(Linear(x)) (normalised again
    //   inside each contrastive term, as V4C's); li, lt (b,K) cluster logits, p = softmax(l);
    //   logs (1) the learnable log-scale, s = min(exp(logs), cfg->scale_max);
    //   hist (K) the balance histogram: read for the weights w_c = min(1/(K h̃_c), max_w)/mean,
    //   h̃ = renorm(max(h, floor)), then UPDATED IN PLACE after the loss with this batch's
    //   argmax p^I counts: h = renorm(m h + (1 − m) counts/b).
    //   terms (5) double = {total, L_ins, L_ass, L_ctr, L_bal}, total = w_ins L_ins + w_ass L_ass
    //   + w_ctr L_ctr + w_bal L_bal; dzi, dzt (b,E), dli, dlt (b,K), dlogs (1) = the total's
    //   gradients [overwrite]. L_ins = CL(zi, zt; s); L_ass = CL(colnorm(p^I)ᵀ, colnorm(p^T)ᵀ;
    //   1/τ_a) over the K clusters; L_ctr = CL(μ^I, μ^T; 1/τ_c) over the clusters non-empty in
    //   both, μ^m_c = Σ_{i: argmax p^m_i = c} p^m_ic z^m_i (0 when fewer than 2); L_bal =
    //   Σ_c w_c p̄^I_c log p̄^I_c + (the same for T), p̄ clamped ≥ 1e-8. CL(A, B; s) = ½[CE(s ÂB̂ᵀ,
    //   diag) + CE(s B̂Âᵀ, diag)] on row-normalised A, B (0 for fewer than 2 rows). argmax ties
    //   go to the lowest cluster.
    void (*seic_align_loss_forward_backward)(double *terms, float *dzi, float *dzt, float *dli,
                                             float *dlt, float *dlogs, float *hist,
                                             const float *zi, const float *zt, const float *li,
                                             const float *lt, const float *logs, int b, int K,
                                             int E, const SeicLossCfg *cfg);
    // Stage-2 self-enhancement loss: p = softmax(lw) of the weak view (no gradient), conf_i,
    // yhat_i = max, argmax p_i (ties to the lowest); the confidence EMA st (3) double = {mean,
    // var, initialised} is updated with the batch mean and biased variance (floored at 1e-6):
    // copied on the first batch, else momentum-averaged; w_i = 1 where conf_i ≥ mean, else
    // exp(−(conf_i − mean)² / (2 max(var, 1e-6))) (no hard threshold). loss (1) double =
    // mean_i w_i CE(ls_i, yhat_i); dls (b,K) = its gradient w.r.t. the strong logits ls
    // [overwrites]; w (b) and yhat (b) int32 are written when not NULL.
    void (*seic_self_loss_forward_backward)(double *loss, float *dls, float *w, int32_t *yhat,
                                            double *st, const float *lw, const float *ls, int b,
                                            int K, double momentum);
    // SEIC stage 2's views: pixels (2b,3,S,S) backend memory; row j < b is the weak view of
    // sample index[j] = the eval transform (CLIP resize of the shorter side + centre crop,
    // image_resize_crop_rgb8), row b + j its strong view (augment_seic_view with *view, keyed
    // by (seed, epoch, index[j])), both CLIP-normalised as image_normalize. imgs (H[j],W[j],3)
    // RGB8, H, W and index are host arrays of b entries. Synchronous. -1 with an error recorded
    // (out of memory, image too large).
    int (*seic_views_forward)(float *pixels, const uint8_t *const *imgs, const int *H,
                              const int *W, const size_t *index, int b, int S, uint64_t seed,
                              uint64_t epoch, const SeicViewCfg *view);
} OpsBackend;

extern const OpsBackend ops_cpu;
#ifdef LAIC_CUDA
extern const OpsBackend ops_cuda;   // kernels/ops_cuda.cu
/* Number of usable CUDA devices (0 when the driver or a device is missing; never fails). */
int ops_cuda_device_count(void);
/* One line per device: "0: NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB" into buf. */
void ops_cuda_describe(char *buf, size_t n);
#endif

/* Picks a backend by name: "cpu", "cuda" or "auto" (CUDA when built with it and a device is
 * present, else CPU). Returns NULL with an error recorded when "cuda" is not available. */
const OpsBackend *ops_get(const char *device);

#endif
