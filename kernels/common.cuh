/*
 * common.cuh — shared helpers for laic's CUDA kernels (kernels/ .cu files only; never included by C).
 *
 * Promises:
 * - cudaCheck / cublasCheck wrap every CUDA runtime and cuBLAS call; on failure they print the
 *   failing statement, its file:line and the error string as one "laic: fatal: ..." line and
 *   exit(1). They are for failures that are programming or system errors (a bad launch, a lost
 *   device); the one expected failure, running out of device memory in ops_cuda.alloc, is
 *   reported through laic_error instead (see ops_cuda.cu).
 * - launchCheck() follows every kernel launch (llm.c habit): it catches bad launch
 *   configurations at the launch site instead of at the next synchronising call.
 * - The launchers declared at the bottom are C++ functions (mangled names), one per op, with
 *   exactly the semantics of the matching entry in host/ops.h. They are C++ on purpose so they
 *   can never clash with host/cpu's C functions of the same name; C code reaches them only
 *   through the ops_cuda table or the extern "C" entry points in kernels/ops_cuda.h.
 *
 * Everything runs on the calling thread's default stream (cudaStreamPerThread; nvcc
 * --default-stream per-thread, see the Makefile), so ops are ordered with each other and with
 * the copies in ops_cuda.cu, and a sequence of ops can be captured into a CUDA graph.
 */
#ifndef LAIC_KERNELS_COMMON_CUH
#define LAIC_KERNELS_COMMON_CUH

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

extern "C" {
#include "io/err.h"
#include "ops.h"
}

#include "ops_cuda.h"

// --- error checks --------------------------------------------------------------------------
static inline void cuda_check_impl(cudaError_t e, const char *stmt, const char *file, int line) {
    if (e != cudaSuccess) {
        fprintf(stderr, "laic: fatal: CUDA error %s (%s) in `%s` at %s:%d\n", cudaGetErrorName(e),
                cudaGetErrorString(e), stmt, file, line);
        exit(1);
    }
}
#define cudaCheck(x) cuda_check_impl((x), #x, __FILE__, __LINE__)

static inline void cublas_check_impl(cublasStatus_t s, const char *stmt, const char *file,
                                     int line) {
    if (s != CUBLAS_STATUS_SUCCESS) {
        fprintf(stderr, "laic: fatal: cuBLAS error %s (%d) in `%s` at %s:%d\n",
                cublasGetStatusString(s), (int)s, stmt, file, line);
        exit(1);
    }
}
#define cublasCheck(x) cublas_check_impl((x), #x, __FILE__, __LINE__)

// After every <<<...>>>: reports an invalid configuration with the launch site.
#define launchCheck() cuda_check_impl(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

// A host-side shape check that survives NDEBUG (the launchers' preconditions).
#define cudaAssert(x, why)                                                                    \
    do {                                                                                      \
        if (!(x)) {                                                                           \
            fprintf(stderr, "laic: internal error: `%s` failed at %s:%d: %s\n", #x, __FILE__, \
                    __LINE__, (why));                                                         \
            abort();                                                                          \
        }                                                                                     \
    } while (0)

// --- small helpers -------------------------------------------------------------------------
// 1 while the calling thread's default stream is being captured into a CUDA graph (also when
// the capture was invalidated), else 0. Ops that must allocate or synchronise check it and fail
// loudly instead of breaking the capture (ops_cuda.graph_capture).
static inline int stream_is_capturing(void) {
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    cudaCheck(cudaStreamIsCapturing(cudaStreamPerThread, &st));
    return st != cudaStreamCaptureStatusNone;
}

// Device scratch that only grows (to the largest request) and is kept for the process lifetime,
// so steady state allocates nothing. A `static ScratchBuf` starts empty. Under CUDA-graph
// capture: growing is illegal (cudaMalloc), so it is a fatal error with a hint (warm up with
// one eager call at the same sizes first); and a buffer used while a graph was being captured
// is never freed, because the instantiated graph may still point at it (a later growth leaves
// it be). `who` names the op in the message.
struct ScratchBuf {
    void *p;
    size_t cap;     // bytes
    int in_graph;   // 1 once used during a capture
};
static inline void *scratch_get(ScratchBuf *s, size_t bytes, const char *who) {
    const int capturing = stream_is_capturing();
    if (bytes > s->cap) {
        if (capturing) {
            fprintf(stderr, "laic: fatal: %s: scratch must grow from %zu to %zu bytes while a "
                            "CUDA graph is being captured (allocation is illegal there) ---> "
                            "HINT: run the same step once eagerly, at the same sizes, before "
                            "capturing it\n",
                    who, s->cap, bytes);
            exit(1);
        }
        if (s->p && !s->in_graph) {
            cudaCheck(cudaDeviceSynchronize());   // earlier kernels may still use it
            cudaCheck(cudaFree(s->p));
        }
        s->p = NULL;
        s->in_graph = 0;
        cudaCheck(cudaMalloc(&s->p, bytes));
        s->cap = bytes;
    }
    if (capturing) s->in_graph = 1;
    return s->p;
}

static inline unsigned int ceil_div_u(size_t a, size_t b) {
    return (unsigned int)((a + b - 1) / b);
}

// Grid size for a grid-stride loop over n elements: enough blocks to fill the GPU, never more
// than needed, never zero (a zero-sized grid is a launch error; the kernels' loops handle n=0).
static inline unsigned int grid_for(size_t n, int block) {
    size_t g = (n + (size_t)block - 1) / (size_t)block;
    if (g == 0) g = 1;
    if (g > 65535u * 16u) g = 65535u * 16u;
    return (unsigned int)g;
}

// Sum / max over the 32 lanes of a warp with a fixed butterfly order, so every lane gets the
// same, run-to-run identical value (no atomics anywhere in the forward ops).
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// QuickGELU (CLIP): x * sigmoid(1.702 x), written as x / (1 + e^{-1.702x}) so large negative x
// gives -0 instead of NaN (e^{+inf} = inf, x/inf = 0).
__device__ __forceinline__ float quickgelu(float x) { return x / (1.0f + expf(-1.702f * x)); }

// --- launchers (one op family per file; semantics exactly as host/ops.h) ---------------------
// matmul.cu
void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int M,
                    int K, int N);
// layernorm.cu
void layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int N, int C);
// l2norm.cu
void l2norm_forward(float *out, const float *inp, int N, int C);
// gelu.cu
void quickgelu_forward(float *out, const float *inp, size_t N);
// residual.cu
void residual_forward(float *out, const float *a, const float *b, size_t N);
// attention.cu
void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH,
                       int causal);
// embed.cu
void im2col_forward(float *patches, const float *pixels, int B, int H, int P);
void vision_embed_forward(float *out, const float *patch_emb, const float *class_emb,
                          const float *pos, int B, int NP, int C);
void token_embed_forward(float *out, const int32_t *tokens, const float *tok_emb,
                         const float *pos, int B, int T, int C);
void pos_add_forward(float *out, const float *embeds, const float *pos, int B, int T, int C);
void gather_rows_forward(float *out, const float *inp, const int32_t *idx, int B, int T, int C);
// backward launchers (input gradients; semantics as host/ops.h), each in its forward's file
void matmul_backward(float *dinp, const float *dout, const float *weight, int M, int K, int N);
void layernorm_backward(float *dinp, const float *dout, const float *inp, const float *weight,
                        const float *mean, const float *rstd, int N, int C);
void l2norm_backward(float *dinp, const float *dout, const float *inp, int N, int C);
void quickgelu_backward(float *dinp, const float *dout, const float *inp, size_t N);
void residual_backward(float *da, float *db, const float *dout, size_t N);
void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B,
                        int T, int C, int NH, int causal);
void pos_add_backward(float *dembeds, float *dpos, const float *dout, int B, int T, int C);
void gather_rows_backward(float *dinp, const float *dout, const int32_t *idx, int B, int T,
                          int C);
// train.cu (prompt learning; the views wrap augment.cu)
void strided_copy(float *dst, size_t dst_stride, const float *src, size_t src_stride, int rows,
                  size_t row_len);
int train_views_forward(float *pixels, const uint8_t *const *imgs, const int *H, const int *W,
                        const size_t *index, int b, int S, uint64_t seed, uint64_t epoch);
void prompt_loss_forward_backward(double *terms, float *dW, const float *F, const float *W,
                                  const int32_t *yhat, const uint8_t *hq, int b, int K, int E,
                                  int mask, double q, double alpha, double beta, double scale);
void sgd_forward(float *p, float *buf, const float *g, const double *lr, size_t n, double momentum,
                 double weight_decay, int have_buf);
// parameter gradients (matmul.cu) and optimisers (optim.cu)
void matmul_backward_weight(float *dweight, float *dbias, const float *dout, const float *inp,
                            int M, int K, int N);
void adam_forward(float *p, float *m, float *v, const float *g, const double *sched, size_t n,
                  double beta1, double beta2, double eps, double weight_decay, int decoupled);
// image-encoder training (issue 16): layernorm.cu, embed.cu, lora.cu, optim.cu
void layernorm_backward_weight(float *dweight, float *dbias, const float *dout, const float *inp,
                               const float *mean, const float *rstd, int N, int C);
void vision_embed_backward(float *dpatch_emb, float *dclass_emb, float *dpos, const float *dout,
                           int B, int NP, int C);
void im2col_backward(float *dpixels, const float *dpatches, int B, int H, int P);
void lora_forward(float *out, float *h, const float *inp, const float *down, const float *up,
                  float scale, int M, int K, int N, int r, int ldo);
void lora_backward(float *dinp, float *ddown, float *dup, float *dh, const float *dout,
                   const float *inp, const float *h, const float *down, const float *up,
                   float scale, int M, int K, int N, int r, int ldo);
void sumsq_forward(double *out, const float *x, size_t n);
void grad_clip_forward(float *x, size_t n, const double *sumsq, double max_norm);

// --- one GEMM in any precision (matmul.cu; used by the backward ops and lora.cu) -------------
// C = alpha · op(A) op(B) + beta · C with cublasSgemm's column-major arguments. Ab / Bb: bf16
// copies of A / B already packed with the same leading dimension (GEMM_BF16 only; NULL =
// round A / B into scratch). See matmul.cu.
enum { GEMM_FP32 = 0, GEMM_TF32 = 1, GEMM_BF16 = 2 };
void laic_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
               const float *A, int lda, const uint16_t *Ab, const float *B, int ldb,
               const uint16_t *Bb, float beta, float *C, int ldc, int mode);
// seic.cu (SEIC losses, SPEC §9.3)
void seic_align_loss_forward_backward(double *terms, float *dzi, float *dzt, float *dli,
                                      float *dlt, float *dlogs, float *hist, const float *zi,
                                      const float *zt, const float *li, const float *lt,
                                      const float *logs, int b, int K, int E,
                                      const SeicLossCfg *cfg);
void seic_self_loss_forward_backward(double *loss, float *dls, float *w, int32_t *yhat, double *st,
                                     const float *lw, const float *ls, int b, int K,
                                     double momentum);
int seic_views_forward(float *pixels, const uint8_t *const *imgs, const int *H, const int *W,
                       const size_t *index, int b, int S, uint64_t seed, uint64_t epoch,
                       const SeicViewCfg *view);   // train.cu (views: augment.cu)

// heads.cu (clustering heads)
void batchnorm_forward(float *out, float *mean, float *rstd, float *running_mean,
                       float *running_var, const float *inp, const float *weight,
                       const float *bias, int B, int C, int train, double momentum, double eps);
void batchnorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int B, int C);
void relu_forward(float *out, const float *inp, size_t n);
void relu_backward(float *dinp, const float *dout, const float *out, size_t n);
void softmax_forward(float *out, const float *inp, int B, int K);
void index_select_forward(float *out, const float *inp, const int64_t *idx, int n, int C);
void sic_loss_forward_backward(double *terms, float *dla, float *dln, const float *la,
                               const float *ln, const int32_t *yhat, int b, int K,
                               double entropy_weight, double ce_weight);
void tac_loss_forward_backward(double *terms, float *dIa, float *dTa, float *dIn, float *dTn,
                               const float *PIa, const float *PTa, const float *PIn,
                               const float *PTn, int b, int K, double tau, double entropy_weight);

#endif
