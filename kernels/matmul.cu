/*
 * matmul.cu — out (M,N) = inp (M,K) @ weight (N,K)ᵀ + bias (N): every Linear of both CLIP
 * encoders (qkv, attention out, MLP fc/proj, patch conv as a matmul, final projections).
 *
 * Algorithms (runtime switch, see kernels/ops_cuda.h):
 *   fp32         cublasSgemm with CUBLAS_DEFAULT_MATH (no TF32): the parity path
 *   tf32         cublasSgemm with CUBLAS_TF32_TENSOR_OP_MATH
 *   bf16-cublas  fp32 operands rounded to bf16 in scratch buffers, cublasGemmEx (fp32 accum)
 *   bf16-wmma    same rounding, then matmul_bf16_forward_kernel1 (below): laic's own
 *                tensor-core GEMM (WMMA 16x16x16 bf16 → fp32, cp.async double buffering,
 *                fused bias + optional QuickGELU epilogue)
 * The bias is added by bias_add_forward_kernel1 after cuBLAS (one extra read+write of out);
 * the WMMA kernel adds it in its epilogue.
 *
 * Row-major ↔ cuBLAS column-major: a row-major (R,C) matrix is the column-major (C,R) matrix
 * with the same bytes. So row-major out (M,N) is column-major outᵀ (N,M), and
 *   outᵀ (N,M) = weight (N,K) @ inpᵀ (K,M)
 * where weight row-major (N,K) = column-major (K,N) used transposed (OP_T, lda = K) and inp
 * row-major (M,K) = column-major inpᵀ (K,M) used as is (OP_N, ldb = K); ldc = N.
 *
 * Status: compiled for sm_90, unverified on hardware (see kernels/README.md).
 */
#include <mma.h>

#include "common.cuh"

// --- state: cuBLAS handle, algorithm switch, bf16 scratch -----------------------------------
static cublasHandle_t g_cublas;
static int g_algo = -1;   // -1: not yet read from LAIC_CUDA_MATMUL

static const char *const g_algo_names[LAIC_MM_COUNT] = {"fp32", "tf32", "bf16-cublas",
                                                        "bf16-wmma"};

// cuBLAS's workspace, ours (cublasSetWorkspace): without it cuBLAS may allocate one on first
// use, which is illegal inside a CUDA graph capture (and each capture may get another one).
// 32 MiB is the size NVIDIA recommends for Hopper. Never freed (one per process, like g_cublas).
#define CUBLAS_WORKSPACE_BYTES ((size_t)32 << 20)
static void *g_cublas_ws;

static cublasHandle_t cublas_handle(void) {
    if (!g_cublas) {
        if (stream_is_capturing()) {
            fprintf(stderr, "laic: fatal: matmul: first cuBLAS use inside a CUDA graph capture "
                            "(the handle and its workspace must be created outside) ---> HINT: "
                            "run the step once eagerly before capturing it\n");
            exit(1);
        }
        cublasCheck(cublasCreate(&g_cublas));
        // Explicit: TF32 only when the tf32 algorithm asks for it per call (parity by default).
        cublasCheck(cublasSetMathMode(g_cublas, CUBLAS_DEFAULT_MATH));
        // The library was not built with --default-stream per-thread: name the stream the
        // kernels use (see the Makefile), so cuBLAS calls order with them and can be captured.
        cublasCheck(cublasSetStream(g_cublas, cudaStreamPerThread));
        // After cublasSetStream, which resets the workspace to cuBLAS's own pool.
        cudaCheck(cudaMalloc(&g_cublas_ws, CUBLAS_WORKSPACE_BYTES));
        cublasCheck(cublasSetWorkspace(g_cublas, g_cublas_ws, CUBLAS_WORKSPACE_BYTES));
    }
    return g_cublas;
}

extern "C" const char *ops_cuda_matmul_name(int algo) {
    return algo >= 0 && algo < LAIC_MM_COUNT ? g_algo_names[algo] : "?";
}

extern "C" int ops_cuda_set_matmul(const char *name) {
    for (int i = 0; i < LAIC_MM_COUNT; i++)
        if (name && strcmp(name, g_algo_names[i]) == 0) {
            g_algo = i;
            return 0;
        }
    return laic_error("cuda: unknown matmul algorithm '%s' ---> HINT: use fp32, tf32, "
                      "bf16-cublas or bf16-wmma",
                      name ? name : "(null)");
}

extern "C" int ops_cuda_get_matmul(void) {
    if (g_algo < 0) {
        g_algo = LAIC_MM_FP32;
        const char *env = getenv("LAIC_CUDA_MATMUL");
        if (env && *env && ops_cuda_set_matmul(env) != 0) {
            // A typo in an environment variable must not silently change the numerics.
            fprintf(stderr, "laic: fatal: %s\n", laic_last_error());
            exit(1);
        }
    }
    return g_algo;
}

// Scratch for the bf16 copies of the operands of ops_cuda.matmul_forward in the bf16 modes.
// Grown on demand, never shrunk; freed at exit by the driver. Converting the weights on every
// call is the simple, obviously correct first step; the README sketches keeping bf16 weights.
// Its rules under CUDA-graph capture are ScratchBuf's (common.cuh): the trainer captures after
// one eager step, so the size is final by then.
static uint16_t *scratch_bf16(size_t elems) {
    static ScratchBuf s;
    return (uint16_t *)scratch_get(&s, elems * sizeof(uint16_t), "matmul (bf16 operands)");
}

// Resident bf16 weights (ops_cuda_set_bf16_weights): the fp32 range [g_wbase, g_wbase + g_wn)
// and its bf16 copy, converted once by the model at creation.
static const float *g_wbase;
static size_t g_wn;
static const uint16_t *g_wbf16;

extern "C" void ops_cuda_set_bf16_weights(const float *base, size_t n, const uint16_t *bf16) {
    g_wbase = base && bf16 ? base : NULL;
    g_wn = g_wbase ? n : 0;
    g_wbf16 = g_wbase ? bf16 : NULL;
}

extern "C" void ops_cuda_clear_bf16_weights(const float *base) {
    if (base && base == g_wbase) ops_cuda_set_bf16_weights(NULL, 0, NULL);
}

// The bf16 copy of weight (nw elements) when it lies wholly in the registered range, else NULL.
static const uint16_t *resident_bf16(const float *weight, size_t nw) {
    if (!g_wbase || weight < g_wbase || weight >= g_wbase + g_wn) return NULL;
    size_t off = (size_t)(weight - g_wbase);
    return off + nw <= g_wn ? g_wbf16 + off : NULL;
}

// --- elementwise helpers ---------------------------------------------------------------------
// out (M,N) += bias (N), then QuickGELU when gelu != 0. Grid-stride over M*N.
__global__ static void bias_add_forward_kernel1(float *out, const float *bias, size_t M, int N,
                                                int gelu) {
    size_t total = M * (size_t)N;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        float v = out[i];
        if (bias) v += bias[i % (size_t)N];
        out[i] = gelu ? quickgelu(v) : v;
    }
}

static void bias_add_forward(float *out, const float *bias, int M, int N, int gelu) {
    if (!bias && !gelu) return;
    const int block = 256;
    bias_add_forward_kernel1<<<grid_for((size_t)M * N, block), block>>>(out, bias, (size_t)M, N,
                                                                       gelu);
    launchCheck();
}

__global__ static void f32_to_bf16_kernel1(__nv_bfloat16 *out, const float *inp, size_t N) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < N;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = __float2bfloat16_rn(inp[i]);
}

extern "C" void ops_cuda_f32_to_bf16(uint16_t *out, const float *inp, size_t N) {
    if (N == 0) return;
    const int block = 256;
    f32_to_bf16_kernel1<<<grid_for(N, block), block>>>((__nv_bfloat16 *)out, inp, N);
    launchCheck();
}

// --- handwritten bf16 tensor-core GEMM (version 1: WMMA) ------------------------------------
// Block tile 128 (M) x 128 (N) x 32 (K); 8 warps as 2 (M) x 4 (N), each warp 64 x 32 = 4 x 2
// WMMA 16x16x16 tiles with fp32 accumulators (64 registers). Operand tiles are staged in shared
// memory by cp.async (16 bytes = 8 bf16 per copy), two stages deep so the next K slice loads
// while the tensor cores work on this one. Rows are padded from 32 to 40 bf16 (80 bytes): a
// multiple of 16 bytes for cp.async, of 8 elements for WMMA's ldm, and every fragment start
// stays 32-byte aligned (16 rows * 80 B, 16 cols * 2 B) as load_matrix_sync requires.
// Out-of-range rows (M, N tails) are zero-filled by cp.async's src-size operand, and stores are
// bounds-checked, so any M, N work; K must be a multiple of 8 (whole 16-byte copies), which
// every CLIP width is.
#define MM_BM 128
#define MM_BN 128
#define MM_BK 32
#define MM_LDS (MM_BK + 8)
#define MM_THREADS 256
#define MM_SMEM_BYTES (2 * (MM_BM + MM_BN) * MM_LDS * 2)   // 40960: two stages of A and W

__device__ __forceinline__ void cp_async16(void *smem, const void *gmem, int src_bytes) {
    unsigned int s = (unsigned int)__cvta_generic_to_shared(smem);
    // .cg: bypass L1 (each tile is read once per block); src_bytes 0 writes 16 zero bytes.
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem),
                 "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit(void) {
    asm volatile("cp.async.commit_group;\n" ::);
}
template <int N> __device__ __forceinline__ void cp_async_wait(void) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// Copies rows [r0, r0+128) x cols [k0, k0+32) of a row-major (R,K) bf16 matrix into a
// (128, MM_LDS) shared tile; 512 16-byte chunks, 2 per thread.
__device__ __forceinline__ void mm_load_tile(__nv_bfloat16 *tile, const __nv_bfloat16 *g, int R,
                                             int K, int r0, int k0) {
#pragma unroll
    for (int i = 0; i < 2; i++) {
        int c = threadIdx.x + i * MM_THREADS;
        int row = c / (MM_BK / 8), col = (c % (MM_BK / 8)) * 8;
        int gr = r0 + row, gk = k0 + col;
        bool ok = gr < R && gk < K;
        // A valid address even when nothing is read (src_bytes 0), so the PTX stays legal.
        const __nv_bfloat16 *src = ok ? g + (size_t)gr * K + gk : g;
        cp_async16(tile + row * MM_LDS + col, src, ok ? 16 : 0);
    }
}

__global__ static void __launch_bounds__(MM_THREADS)
    matmul_bf16_forward_kernel1(float *out, const __nv_bfloat16 *A, const __nv_bfloat16 *W,
                                const float *bias, int M, int K, int N, int gelu) {
    using namespace nvcuda;
    // out (M,N), A (M,K), W (N,K), bias (N) or NULL
    __shared__ __align__(128) unsigned char smem[MM_SMEM_BYTES];
    __nv_bfloat16 *As = (__nv_bfloat16 *)smem;        // [2][MM_BM][MM_LDS]
    __nv_bfloat16 *Ws = As + 2 * MM_BM * MM_LDS;      // [2][MM_BN][MM_LDS]

    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int wm = warp / 4, wn = warp % 4;           // warp grid 2 x 4
    const int m0 = blockIdx.y * MM_BM, n0 = blockIdx.x * MM_BN;

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[4][2];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);

    const int nk = (K + MM_BK - 1) / MM_BK;
    mm_load_tile(As, A, M, K, m0, 0);
    mm_load_tile(Ws, W, N, K, n0, 0);
    cp_async_commit();

    for (int kt = 0; kt < nk; kt++) {
        const int cur = kt & 1;
        if (kt + 1 < nk) {
            // The other stage was last read in iteration kt-1, which ended with a barrier.
            const int nxt = cur ^ 1;
            mm_load_tile(As + nxt * MM_BM * MM_LDS, A, M, K, m0, (kt + 1) * MM_BK);
            mm_load_tile(Ws + nxt * MM_BN * MM_LDS, W, N, K, n0, (kt + 1) * MM_BK);
            cp_async_commit();
            cp_async_wait<1>();   // stage `cur` has landed; `nxt` may still be in flight
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();

        const __nv_bfloat16 *a_s = As + cur * MM_BM * MM_LDS + (wm * 64) * MM_LDS;
        const __nv_bfloat16 *w_s = Ws + cur * MM_BN * MM_LDS + (wn * 32) * MM_LDS;
#pragma unroll
        for (int kk = 0; kk < MM_BK; kk += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> af[4];
            // B = Wᵀ (K,N): element (k,n) = W[n][k] = w_s[n*LDS + k], i.e. column-major.
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> bf[2];
#pragma unroll
            for (int i = 0; i < 4; i++)
                wmma::load_matrix_sync(af[i], a_s + i * 16 * MM_LDS + kk, MM_LDS);
#pragma unroll
            for (int j = 0; j < 2; j++)
                wmma::load_matrix_sync(bf[j], w_s + j * 16 * MM_LDS + kk, MM_LDS);
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], af[i], bf[j], acc[i][j]);
        }
        __syncthreads();   // everyone is done with `cur` before it is refilled
    }

    // Epilogue: each warp stages one 16x16 fp32 tile at a time in its own 1 KiB of the (now
    // idle) operand buffers, then adds bias, applies QuickGELU and stores with bounds checks.
    float *stage = (float *)smem + warp * 256;
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) {
            wmma::store_matrix_sync(stage, acc[i][j], 16, wmma::mem_row_major);
            __syncwarp();
            const int tm = m0 + wm * 64 + i * 16, tn = n0 + wn * 32 + j * 16;
            for (int e = lane; e < 256; e += 32) {
                int r = tm + e / 16, c = tn + e % 16;
                if (r < M && c < N) {
                    float v = stage[e];
                    if (bias) v += bias[c];
                    out[(size_t)r * N + c] = gelu ? quickgelu(v) : v;
                }
            }
            __syncwarp();   // the stage is overwritten by the next tile
        }
}

static void matmul_bf16_wmma(float *out, const __nv_bfloat16 *A, const __nv_bfloat16 *W,
                             const float *bias, int M, int K, int N, int gelu) {
    dim3 grid(ceil_div_u((size_t)N, MM_BN), ceil_div_u((size_t)M, MM_BM));
    cudaAssert(grid.y <= 65535u, "M too large for one grid column");
    matmul_bf16_forward_kernel1<<<grid, MM_THREADS>>>(out, A, W, bias, M, K, N, gelu);
    launchCheck();
}

// --- cuBLAS paths ----------------------------------------------------------------------------
static void matmul_cublas_f32(float *out, const float *inp, const float *weight, int M, int K,
                              int N, int tf32) {
    const float one = 1.0f, zero = 0.0f;
    cublasHandle_t h = cublas_handle();
    cublasCheck(cublasSetMathMode(h, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    // outᵀ (N,M) = weight (K,N col-major)ᵀ @ inpᵀ (K,M); see the file comment.
    cublasCheck(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, weight, K, inp, K, &zero,
                            out, N));
}

static void matmul_cublas_bf16(float *out, const __nv_bfloat16 *A, const __nv_bfloat16 *W, int M,
                               int K, int N) {
    const float one = 1.0f, zero = 0.0f;
    cublasHandle_t h = cublas_handle();
    cublasCheck(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    cublasCheck(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, W, CUDA_R_16BF, K, A,
                             CUDA_R_16BF, K, &zero, out, CUDA_R_32F, N, CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT));
}

// --- one GEMM, any precision (the backward ops and LoRA; kernels/lora.cu) ---------------------
// Backward precision switch (ops_cuda_set_backward_bf16): 0 fp32, 1 bf16 operands.
static int g_bwd_bf16;

extern "C" void ops_cuda_set_backward_bf16(int on) { g_bwd_bf16 = on ? 1 : 0; }
extern "C" int ops_cuda_get_backward_bf16(void) { return g_bwd_bf16; }

// out (rows, cols) column-major packed (ld = rows) = bf16(in) with in's leading dimension ld.
__global__ static void f32_to_bf16_2d_kernel1(__nv_bfloat16 *out, const float *in, int rows,
                                              size_t cols, int ld) {
    const size_t total = (size_t)rows * cols;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t j = i / rows, r = i % rows;
        out[i] = __float2bfloat16_rn(in[j * ld + r]);
    }
}

// A packed bf16 copy of the column-major (rows, cols) matrix at in (leading dimension ld) in
// the scratch s.
static const __nv_bfloat16 *pack_bf16(ScratchBuf *s, const float *in, int rows, int cols, int ld,
                                      const char *who) {
    const size_t n = (size_t)rows * cols;
    __nv_bfloat16 *p = (__nv_bfloat16 *)scratch_get(s, (n ? n : 1) * sizeof(__nv_bfloat16), who);
    if (n) {
        const int block = 256;
        f32_to_bf16_2d_kernel1<<<grid_for(n, block), block>>>(p, in, rows, (size_t)cols, ld);
        launchCheck();
    }
    return p;
}

// C (m,n) = alpha · op(A) op(B) + beta · C in cuBLAS's column-major terms (the arguments of
// cublasSgemm). GEMM_FP32: cublasSgemm with TF32 off; GEMM_TF32: TF32 tensor cores; GEMM_BF16:
// A and B rounded to bf16 (packed into two scratch buffers; Ab / Bb, when not NULL, are bf16
// copies already packed with the same ld to use instead), cublasGemmEx with fp32 accumulation
// into fp32 C. k = 0 is beta · C (cuBLAS's own rule). Ordered on the per-thread stream.
void laic_gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha,
               const float *A, int lda, const uint16_t *Ab, const float *B, int ldb,
               const uint16_t *Bb, float beta, float *C, int ldc, int mode) {
    if (m <= 0 || n <= 0) return;
    cublasHandle_t h = cublas_handle();
    if (mode != GEMM_BF16) {
        cublasCheck(cublasSetMathMode(h, mode == GEMM_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                           : CUBLAS_DEFAULT_MATH));
        cublasCheck(cublasSgemm(h, ta, tb, m, n, k, &alpha, A, lda, B, ldb, &beta, C, ldc));
        return;
    }
    static ScratchBuf sa, sb;
    const int ra = ta == CUBLAS_OP_N ? m : k, ca = ta == CUBLAS_OP_N ? k : m;
    const int rb = tb == CUBLAS_OP_N ? k : n, cb = tb == CUBLAS_OP_N ? n : k;
    const __nv_bfloat16 *a16, *b16;
    int la = ra, lb = rb;
    if (Ab) a16 = (const __nv_bfloat16 *)Ab, la = lda;
    else a16 = pack_bf16(&sa, A, ra, ca, lda, "gemm (bf16 operand A)");
    if (Bb) b16 = (const __nv_bfloat16 *)Bb, lb = ldb;
    else b16 = pack_bf16(&sb, B, rb, cb, ldb, "gemm (bf16 operand B)");
    cublasCheck(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    cublasCheck(cublasGemmEx(h, ta, tb, m, n, k, &alpha, a16, CUDA_R_16BF, la > 0 ? la : 1, b16,
                             CUDA_R_16BF, lb > 0 ? lb : 1, &beta, C, CUDA_R_32F, ldc,
                             CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

static int wmma_ok(const void *A, const void *W, int K) {
    return K % 8 == 0 && ((uintptr_t)A % 16) == 0 && ((uintptr_t)W % 16) == 0;
}

extern "C" void ops_cuda_matmul_bf16(float *out, const uint16_t *inp, const uint16_t *weight,
                                     const float *bias, int M, int K, int N, int algo, int gelu) {
    cudaAssert(M >= 0 && K >= 0 && N >= 0, "negative matmul size");
    cudaAssert(algo == LAIC_MM_BF16_CUBLAS || algo == LAIC_MM_BF16_WMMA, "not a bf16 algorithm");
    if (M == 0 || N == 0) return;
    const __nv_bfloat16 *A = (const __nv_bfloat16 *)inp, *W = (const __nv_bfloat16 *)weight;
    if (algo == LAIC_MM_BF16_WMMA && K > 0 && wmma_ok(A, W, K)) {
        matmul_bf16_wmma(out, A, W, bias, M, K, N, gelu);
        return;
    }
    if (K == 0) {
        // cuBLAS leaves C untouched (beta 0 still scales it) for k=0; be explicit: out = 0.
        cudaCheck(cudaMemsetAsync(out, 0, (size_t)M * N * sizeof(float), cudaStreamPerThread));
    } else {
        matmul_cublas_bf16(out, A, W, M, K, N);
    }
    bias_add_forward(out, bias, M, N, gelu);
}

// --- the op -----------------------------------------------------------------------------------
void matmul_forward(float *out, const float *inp, const float *weight, const float *bias, int M,
                    int K, int N) {
    // out (M,N), inp (M,K), weight (N,K), bias (N) or NULL
    cudaAssert(M >= 0 && K >= 0 && N >= 0, "negative matmul size");
    if (M == 0 || N == 0) return;
    if (K == 0) {
        cudaCheck(cudaMemsetAsync(out, 0, (size_t)M * N * sizeof(float), cudaStreamPerThread));
        bias_add_forward(out, bias, M, N, 0);
        return;
    }
    int algo = ops_cuda_get_matmul();
    if (algo == LAIC_MM_FP32 || algo == LAIC_MM_TF32) {
        matmul_cublas_f32(out, inp, weight, M, K, N, algo == LAIC_MM_TF32);
        bias_add_forward(out, bias, M, N, 0);
        return;
    }
    // bf16 modes: round both operands into one scratch buffer [inp | weight]. The weight part
    // starts at an offset rounded up to 8 elements so it stays 16-byte aligned for cp.async.
    size_t na = (size_t)M * K, nw = (size_t)N * K, woff = (na + 7) / 8 * 8;
    const uint16_t *wres = resident_bf16(weight, nw);
    if (wres) {   // weights converted once at model creation: convert the activations only
        uint16_t *s = scratch_bf16(na);
        ops_cuda_f32_to_bf16(s, inp, na);
        ops_cuda_matmul_bf16(out, s, wres, bias, M, K, N, algo, 0);
        return;
    }
    uint16_t *s = scratch_bf16(woff + nw);
    ops_cuda_f32_to_bf16(s, inp, na);
    ops_cuda_f32_to_bf16(s + woff, weight, nw);
    ops_cuda_matmul_bf16(out, s, s + woff, bias, M, K, N, algo, 0);
}

// --- backward ---------------------------------------------------------------------------------
// Forward: out = inp @ weightᵀ + bias  =>  dinp (M,K) = dout (M,N) @ weight (N,K). Column-major
// view (see the top of this file):
//   dinpᵀ (K,M) = weight_cm (K,N) @ doutᵀ (N,M), both OP_N, lda = K, ldb = N, ldc = K.
// fp32 (TF32 off) whatever the forward's switch, so the gradient tests compare with the CPU;
// bf16 operands with fp32 accumulation only under ops_cuda_set_backward_bf16(1) (the image
// trainer's bf16 mode), reading the resident bf16 weights when the weight is frozen.
void matmul_backward(float *dinp, const float *dout, const float *weight, int M, int K, int N) {
    cudaAssert(M >= 0 && K >= 0 && N >= 0, "negative matmul_backward size");
    if (M == 0 || K == 0) return;
    if (N == 0) {
        cudaCheck(cudaMemsetAsync(dinp, 0, (size_t)M * K * sizeof(float), cudaStreamPerThread));
        return;
    }
    const int mode = g_bwd_bf16 ? GEMM_BF16 : GEMM_FP32;
    laic_gemm(CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, 1.0f, weight, K,
              mode == GEMM_BF16 ? resident_bf16(weight, (size_t)N * K) : NULL, dout, N, NULL,
              0.0f, dinp, K, mode);
}

// --- weight gradients ---------------------------------------------------------------------------
// Forward: out = inp @ weightᵀ + bias  =>  dweight (N,K) += doutᵀ (N,M) @ inp (M,K), dbias (N) +=
// Σ_m dout[m,:]. Column-major view: dweight_cm (K,N) += inp_cm (K,M) @ dout_cm (N,M)ᵀ, so
// OP_N, OP_T, lda = K, ldb = N, ldc = K, beta 1. fp32 (TF32 off; bf16 operands under
// ops_cuda_set_backward_bf16, as matmul_backward). The bias sum is one thread
// per column adding rows in order in double, then into dbias in double: bitwise the CPU's.
__global__ static void bias_backward_kernel1(float *dbias, const float *dout, int M, int N) {
    const int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N) return;
    double s = 0.0;
    for (int m = 0; m < M; m++) s = __dadd_rn(s, (double)dout[(size_t)m * N + n]);
    dbias[n] = __double2float_rn(__dadd_rn((double)dbias[n], s));
}

void matmul_backward_weight(float *dweight, float *dbias, const float *dout, const float *inp,
                            int M, int K, int N) {
    cudaAssert(M >= 0 && K >= 0 && N >= 0, "negative matmul_backward_weight size");
    if (N == 0) return;
    if (M > 0 && K > 0) {
        laic_gemm(CUBLAS_OP_N, CUBLAS_OP_T, K, N, M, 1.0f, inp, K, NULL, dout, N, NULL, 1.0f,
                  dweight, K, g_bwd_bf16 ? GEMM_BF16 : GEMM_FP32);
    }
    if (dbias) {
        bias_backward_kernel1<<<(N + 255) / 256, 256>>>(dbias, dout, M, N);
        launchCheck();
    }
}
