/*
 * ops_cuda.h — C entry points of the CUDA backend beyond the ops table of host/ops.h: the
 * matmul precision switch, the bf16 GEMMs on pre-converted operands, and a cudaEvent timer for
 * bench/. Plain C types only (bf16 travels as uint16_t bit patterns), so C code (bench/,
 * tests/gpu/) can include it; built only when nvcc is present (LAIC_CUDA).
 *
 * Pointers are device pointers from ops_cuda.alloc. All calls are ordered on the default stream.
 */
#ifndef LAIC_OPS_CUDA_H
#define LAIC_OPS_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How ops_cuda.matmul_forward multiplies (runtime switch; default "fp32", or the value of the
 * environment variable LAIC_CUDA_MATMUL when it is set at the first matmul):
 *   fp32         cublasSgemm, TF32 off: the parity path (≤ 1e-4 relative to ops_cpu)
 *   tf32         cublasSgemm with TF32 tensor cores (≈ 1e-3)
 *   bf16-cublas  operands rounded to bf16, cublasGemmEx, fp32 accumulate (≈ 2e-2)
 *   bf16-wmma    operands rounded to bf16, laic's own WMMA tensor-core kernel (≈ 2e-2) */
typedef enum {
    LAIC_MM_FP32 = 0,
    LAIC_MM_TF32 = 1,
    LAIC_MM_BF16_CUBLAS = 2,
    LAIC_MM_BF16_WMMA = 3,
    LAIC_MM_COUNT = 4
} LaicMatmulAlgo;

/* Selects the algorithm by name; returns -1 with an error recorded for an unknown name. */
int ops_cuda_set_matmul(const char *name);
int ops_cuda_get_matmul(void);                 // a LaicMatmulAlgo
const char *ops_cuda_matmul_name(int algo);    // "fp32", ...; "?" when out of range

/* out (N) = bf16(inp (N)), round to nearest even; bit patterns in out. */
void ops_cuda_f32_to_bf16(uint16_t *out, const float *inp, size_t N);

/* out (M,N) fp32 = inp (M,K) bf16 @ weight (N,K) bf16ᵀ + bias (N) fp32 [bias may be NULL],
 * then QuickGELU when gelu != 0 (fused into the WMMA kernel's epilogue; a separate pass for
 * cuBLAS). algo is LAIC_MM_BF16_CUBLAS or LAIC_MM_BF16_WMMA. The WMMA kernel needs K % 8 == 0
 * and 16-byte aligned operands; otherwise the call falls back to cuBLAS. */
void ops_cuda_matmul_bf16(float *out, const uint16_t *inp, const uint16_t *weight,
                          const float *bias, int M, int K, int N, int algo, int gelu);

/* Resident bf16 weights: registers bf16 (n) as the bf16 copy (round to nearest even) of the fp32
 * device range base (n). In the bf16 modes, ops_cuda.matmul_forward then reads a weight that lies
 * in that range from the copy instead of converting it on every call (same bits either way).
 * One range at a time; a new call replaces it; base NULL clears it. ops_cuda_clear_bf16_weights
 * clears it only if base is the registered range (a model freeing its own). */
void ops_cuda_set_bf16_weights(const float *base, size_t n, const uint16_t *bf16);
void ops_cuda_clear_bf16_weights(const float *base);

/* Precision of the backward GEMMs (matmul_backward, matmul_backward_weight, lora_backward):
 * 0 fp32 with TF32 off (the default: the parity path every gradient test uses), 1 bf16
 * operands with fp32 accumulation (the image trainer in bf16: host/model/clip.c selects its
 * model's setting before every call, as it does the forward switch). Process-wide. */
void ops_cuda_set_backward_bf16(int on);
int ops_cuda_get_backward_bf16(void);

/* kNN kernel choice for ops_cuda.knn_topk_forward (kernels/knn.cu): 0 auto (the fused bf16
 * GEMM + top-k kernel when knn_precision() is bf16 and k fits, else the tiled path), 1 the
 * tiled GEMM-then-select path at knn_precision() (the reference and bench baseline), 2 the
 * fused kernel whatever the precision (bf16 candidates, exact re-rank). Without a call the
 * environment variable LAIC_KNN_KERNEL ("1" or "2"; anything else: auto) is read once.
 * set returns -1 with an error for a value outside 0..2. */
int ops_cuda_knn_set_kernel(int v);
int ops_cuda_knn_kernel(void);
/* Candidates per row the fused kernel keeps for (N, k): min(k + max(k, 16), 64, N-1), or
 * k + LAIC_KNN_SLACK when that is set (still capped); 0 when k > 48 or k is outside [1, N-1]:
 * such k run on the tiled path. */
int ops_cuda_knn_fused_kc(int N, int k);

/* Free and total bytes of the current device (cudaMemGetInfo); -1 (no error recorded) when it
 * cannot be queried. */
int ops_cuda_mem_info(size_t *free_bytes, size_t *total_bytes);

/* Mean milliseconds of fn(ctx) over `repeats` runs timed with cudaEvents, after one warm-up
 * run, with the L2 cache flushed (a memset larger than L2) before each timed run. */
double ops_cuda_time_ms(void (*fn)(void *ctx), void *ctx, int repeats);

/* One rank, one GPU: cudaSetDevice(local_rank) (ops_get, when the job has several ranks). -1
 * with an error recorded when this node has no device for that rank. */
int ops_cuda_select_device(int local_rank);
/* The communicator entries of ops_cuda (kernels/comm.cu; host/ops.h comm_rank … barrier). */
int comm_rank_cuda(void);
int comm_size_cuda(void);
void comm_allreduce_sum_cuda(void *buf, size_t n, int type);
void comm_allgather_cuda(void *buf, const size_t *counts);
void comm_broadcast_cuda(void *buf, size_t bytes, int root);
void comm_barrier_cuda(void);
/* 1 when kernels/comm.cu was built with NCCL (LAIC_NCCL), 0 when it stages through MPI. */
int comm_nccl_built(void);

#ifdef __cplusplus
}
#endif

#endif
