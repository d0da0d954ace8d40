/*
 * cpu_ops.h — the CPU reference ops behind `ops_cpu` (host/cpu/ops_cpu.c).
 *
 * One function per entry of OpsBackend (host/ops.h), same argument order and semantics; the
 * `_cpu` suffix keeps them apart from the CUDA launchers of the same op when both are linked
 * into one binary. Plain loops (OpenMP over rows / heads), matmuls through OpenBLAS sgemm.
 * Every op overwrites its outputs. Letters as in ops.h.
 */
#ifndef LAIC_CPU_OPS_H
#define LAIC_CPU_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"   // SeicLossCfg

/* For the elementwise passes that dominate small training steps (BatchNorm, ReLU, Adam, bias
 * sums): GCC compiles the function three times (AVX-512, AVX2, baseline) and the loader picks the
 * widest the host runs. No -ffast-math and no contraction (ISO C mode: -ffp-contract=off), so
 * every clone performs the same IEEE operations in the same order: the bits do not depend on the
 * clone. The files that use it are compiled with -fvect-cost-model=dynamic (Makefile), since
 * -O2's default model leaves these loops scalar. An OpenMP loop's body is outlined into a function
 * that is not cloned: put the loop in a cloned helper and call it per chunk. */
#if defined(__clang__)   // clang builds only the fuzz harnesses: one baseline version is enough
#define CPU_VECTOR_CLONES    // (clang 14 names the clones of an extern function differently)
#else
#define CPU_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
/* Before a loop whose iterations touch disjoint elements (too many pointers for GCC's own alias
 * checks): GCC's ivdep. Nothing under clang, which builds only the fuzz harnesses (at -O1, where a
 * requested vectorisation it cannot do is a -Werror warning). */
#if defined(__clang__)
#define CPU_IVDEP
#else
#define CPU_IVDEP _Pragma("GCC ivdep")
#endif

// matmul.c
void matmul_forward_cpu(float *out, const float *inp, const float *weight, const float *bias,
                        int M, int K, int N);
// layernorm.c
void layernorm_forward_cpu(float *out, float *mean, float *rstd, const float *inp,
                           const float *weight, const float *bias, int N, int C);
void l2norm_forward_cpu(float *out, const float *inp, int N, int C);
// gelu.c
void quickgelu_forward_cpu(float *out, const float *inp, size_t N);
// residual.c
void residual_forward_cpu(float *out, const float *a, const float *b, size_t N);
// attention.c
void attention_forward_cpu(float *out, float *att, const float *qkv, int B, int T, int C, int NH,
                           int causal);
// embed.c
void im2col_forward_cpu(float *patches, const float *pixels, int B, int H, int P);
void vision_embed_forward_cpu(float *out, const float *patch_emb, const float *class_emb,
                              const float *pos, int B, int NP, int C);
void token_embed_forward_cpu(float *out, const int32_t *tokens, const float *tok_emb,
                             const float *pos, int B, int T, int C);
void pos_add_forward_cpu(float *out, const float *embeds, const float *pos, int B, int T, int C);
void gather_rows_forward_cpu(float *out, const float *inp, const int32_t *idx, int B, int T,
                             int C);

// backward (input gradients, host/ops.h; each next to its forward in the same file)
void matmul_backward_cpu(float *dinp, const float *dout, const float *weight, int M, int K,
                         int N);
void layernorm_backward_cpu(float *dinp, const float *dout, const float *inp,
                            const float *weight, const float *mean, const float *rstd, int N,
                            int C);
void l2norm_backward_cpu(float *dinp, const float *dout, const float *inp, int N, int C);
void quickgelu_backward_cpu(float *dinp, const float *dout, const float *inp, size_t N);
void residual_backward_cpu(float *da, float *db, const float *dout, size_t N);
void attention_backward_cpu(float *dqkv, const float *dout, const float *qkv, const float *att,
                            int B, int T, int C, int NH, int causal);
void pos_add_backward_cpu(float *dembeds, float *dpos, const float *dout, int B, int T, int C);
void gather_rows_backward_cpu(float *dinp, const float *dout, const int32_t *idx, int B, int T,
                              int C);

/* Thread count for the CPU backend: sets OpenMP's and OpenBLAS's pools together (n <= 0 keeps
 * the current setting). Returns the count now in effect. */
int cpu_set_threads(int n);

// train_ops.c (prompt learning; the references are host/train/train.c and host/model/augment.c)
void strided_copy_cpu(float *dst, size_t dst_stride, const float *src, size_t src_stride,
                      int rows, size_t row_len);
int train_views_forward_cpu(float *pixels, const uint8_t *const *imgs, const int *H,
                            const int *W, const size_t *index, int b, int S, uint64_t seed,
                            uint64_t epoch);
void prompt_loss_forward_backward_cpu(double *terms, float *dW, const float *F, const float *W,
                                      const int32_t *yhat, const uint8_t *hq, int b, int K,
                                      int E, int mask, double q, double alpha, double beta,
                                      double scale);
void sgd_forward_cpu(float *p, float *buf, const float *g, const double *lr, size_t n,
                     double momentum, double weight_decay, int have_buf);

// matmul.c (weight gradients) and optim.c (Adam / AdamW)
void matmul_backward_weight_cpu(float *dweight, float *dbias, const float *dout, const float *inp,
                                int M, int K, int N);
void adam_forward_cpu(float *p, float *m, float *v, const float *g, const double *sched, size_t n,
                      double beta1, double beta2, double eps, double weight_decay, int decoupled);
// seic.c (SEIC losses, SPEC §9.3)
void seic_align_loss_forward_backward_cpu(double *terms, float *dzi, float *dzt, float *dli,
                                          float *dlt, float *dlogs, float *hist, const float *zi,
                                          const float *zt, const float *li, const float *lt,
                                          const float *logs, int b, int K, int E,
                                          const SeicLossCfg *cfg);
int seic_views_forward_cpu(float *pixels, const uint8_t *const *imgs, const int *H, const int *W,
                           const size_t *index, int b, int S, uint64_t seed, uint64_t epoch,
                           const SeicViewCfg *view);   // train_ops.c
void seic_self_loss_forward_backward_cpu(double *loss, float *dls, float *w, int32_t *yhat,
                                         double *st, const float *lw, const float *ls, int b,
                                         int K, double momentum);

// image-encoder training (issue 16): layernorm.c, embed.c, lora.c, optim.c
void layernorm_backward_weight_cpu(float *dweight, float *dbias, const float *dout,
                                   const float *inp, const float *mean, const float *rstd, int N,
                                   int C);
void vision_embed_backward_cpu(float *dpatch_emb, float *dclass_emb, float *dpos,
                               const float *dout, int B, int NP, int C);
void im2col_backward_cpu(float *dpixels, const float *dpatches, int B, int H, int P);
void lora_forward_cpu(float *out, float *h, const float *inp, const float *down, const float *up,
                      float scale, int M, int K, int N, int r, int ldo);
void lora_backward_cpu(float *dinp, float *ddown, float *dup, float *dh, const float *dout,
                       const float *inp, const float *h, const float *down, const float *up,
                       float scale, int M, int K, int N, int r, int ldo);
void sumsq_forward_cpu(double *out, const float *x, size_t n);
void grad_clip_forward_cpu(float *x, size_t n, const double *sumsq, double max_norm);

// heads.c (clustering heads: BatchNorm1d, ReLU, softmax, row gather, SIC and TAC losses)
void batchnorm_forward_cpu(float *out, float *mean, float *rstd, float *running_mean,
                           float *running_var, const float *inp, const float *weight,
                           const float *bias, int B, int C, int train, double momentum,
                           double eps);
void batchnorm_backward_cpu(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, const float *mean,
                            const float *rstd, int B, int C);
void relu_forward_cpu(float *out, const float *inp, size_t n);
void relu_backward_cpu(float *dinp, const float *dout, const float *out, size_t n);
void softmax_forward_cpu(float *out, const float *inp, int B, int K);
void index_select_forward_cpu(float *out, const float *inp, const int64_t *idx, int n, int C);
void sic_loss_forward_backward_cpu(double *terms, float *dla, float *dln, const float *la,
                                   const float *ln, const int32_t *yhat, int b, int K,
                                   double entropy_weight, double ce_weight);
void tac_loss_forward_backward_cpu(double *terms, float *dIa, float *dTa, float *dIn, float *dTn,
                                   const float *PIa, const float *PTa, const float *PIn,
                                   const float *PTn, int b, int K, double tau,
                                   double entropy_weight);

#endif
