/*
 * cholesky.cu — CUDA twins of the ridge ops: blocked Cholesky factorisation in double, the two
 * triangular solves built on it, and the small dense helpers of the ridge driver (f32↔f64,
 * transpose, Gram matrix, double and float GEMMs).
 *
 * Letters: n system order, R right-hand-side rows, NB = 64 the block size. Row-major, lower.
 *
 * Cholesky (right-looking, blocked), per diagonal block k:
 *   1. cholesky_diag_kernel1: the b×b diagonal block factored in shared memory by one thread
 *      block (b ≤ 64: 64 columns, each a pivot + scale + rank-1 update of the rest);
 *   2. trsm_right_lt_kernel1: the panel A21 := A21 L11⁻ᵀ, one thread per row, L11 in shared;
 *   3. cuBLAS DSYRK: the trailing update A22 −= A21 A21ᵀ (lower).
 * A non-positive (or NaN) pivot stores its global index and value in a device word; later
 * diagonal blocks see it and stop, and the host reads it once at the end (one sync per
 * factorisation) to record the same message as the CPU op. Solves: blocked forward/backward
 * substitution by column blocks — a handwritten per-row kernel on the diagonal block and a
 * cuBLAS DGEMM for the rest of the right-hand side — never an explicit inverse.
 *
 * Differences from the CPU op: the diagonal block is right-looking (the CPU's is
 * left-looking dot products) and cuBLAS sums in its own order, so L agrees to rounding
 * (~1e-15 relative for a well-conditioned matrix), not bitwise.
 *
 * Status: compiled for sm_90, unverified on hardware.
 */
#include "cluster.cuh"

#define CHOL_NB 64

cublasHandle_t cluster_cublas(void) {
    static cublasHandle_t h = NULL;
    if (!h) {
        cublasCheck(cublasCreate(&h));
        cublasCheck(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));   // no TF32 for the solvers
        cublasCheck(cublasSetStream(h, cudaStreamPerThread));     // the kernels' stream (Makefile)
    }
    return h;
}

void dgemm_rm(int ta, int tb, int M, int N, int K, double alpha, const double *A, int lda,
              const double *B, int ldb, double beta, double *C, int ldc) {
    if (M == 0 || N == 0) return;
    cublasCheck(cublasDgemm(cluster_cublas(), tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                            ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, ldb, A, lda,
                            &beta, C, ldc));
}

void dsyrk_rm_lower(int trans, int n, int k, double alpha, const double *A, int lda, double beta,
                    double *C, int ldc) {
    if (n == 0) return;
    // Row-major lower = column-major upper. A (n,k) row-major is column-major Aᵀ (k,n), and
    // A Aᵀ = (Aᵀ)ᵀ(Aᵀ): OP_T. For AᵀA with A (k,n): column-major Aᵀ (n,k), OP_N.
    cublasCheck(cublasDsyrk(cluster_cublas(), CUBLAS_FILL_MODE_UPPER,
                            trans ? CUBLAS_OP_N : CUBLAS_OP_T, n, k, &alpha, A, lda, &beta, C,
                            ldc));
}

// --- elementwise helpers ------------------------------------------------------------------
__global__ static void f32_to_f64_kernel1(double *out, const float *inp, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = f2d_exact(inp[i]);   // exact under -ftz (cluster.cuh)
}

__global__ static void f64_to_f32_kernel1(float *out, const double *inp, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = d2f_rn_exact(inp[i]);
}

// out (c,r) = inp (r,c)ᵀ through a 32×32 shared tile (coalesced reads and writes). Row tiles
// of inp are strided by gridDim.y, which the launcher caps at 65535 (a grid's y limit): r may
// exceed 65535·32 (e.g. the M text rows of the dual ridge form).
__global__ static void transpose_f64_kernel1(double *out, const double *inp, int r, int c) {
    __shared__ double t[32][33];
    const int x = blockIdx.x * 32 + threadIdx.x;   // column of inp
    const int ytiles = (r + 31) / 32;
    for (int by = blockIdx.y; by < ytiles; by += gridDim.y) {   // block-uniform bounds
        for (int y = by * 32 + threadIdx.y, k = threadIdx.y; k < 32; y += 8, k += 8)
            if (y < r && x < c) t[k][threadIdx.x] = inp[(size_t)y * c + x];
        __syncthreads();
        const int ox = by * 32 + threadIdx.x;   // column of out = row of inp
        for (int oy = blockIdx.x * 32 + threadIdx.y, k = threadIdx.y; k < 32; oy += 8, k += 8)
            if (oy < c && ox < r) out[(size_t)oy * r + ox] = t[threadIdx.x][k];
        __syncthreads();   // t is refilled by the next row tile
    }
}

__global__ static void add_diag_kernel1(double *A, double v, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) A[(size_t)i * n + i] += v;
}

__global__ static void zero_upper_kernel1(double *A, int n) {
    const size_t total = (size_t)n * n;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
         e += (size_t)gridDim.x * blockDim.x)
        if (e % n > e / n) A[e] = 0.0;
}

void f32_to_f64(double *out, const float *inp, size_t n) {
    if (n == 0) return;
    f32_to_f64_kernel1<<<grid_for(n, 256), 256>>>(out, inp, n);
    launchCheck();
}

void f64_to_f32(float *out, const double *inp, size_t n) {
    if (n == 0) return;
    f64_to_f32_kernel1<<<grid_for(n, 256), 256>>>(out, inp, n);
    launchCheck();
}

void transpose_f64(double *out, const double *inp, int r, int c) {
    if (r == 0 || c == 0) return;
    const unsigned ytiles = ceil_div_u((size_t)r, 32);
    dim3 grid(ceil_div_u((size_t)c, 32), ytiles < 65535u ? ytiles : 65535u), block(32, 8);
    transpose_f64_kernel1<<<grid, block>>>(out, inp, r, c);
    launchCheck();
}

void gram_f64_forward(double *G, const double *A, double lambda, int n, int k, int trans) {
    dsyrk_rm_lower(trans, n, k, 1.0, A, trans ? n : k, 0.0, G, n);
    if (lambda != 0.0 && n > 0) {
        add_diag_kernel1<<<ceil_div_u((size_t)n, 256), 256>>>(G, lambda, n);
        launchCheck();
    }
}

void dgemm_nt_forward(double *C, const double *A, const double *B, int M, int K, int N) {
    dgemm_rm(0, 1, M, N, K, 1.0, A, K, B, K, 0.0, C, N);
}

void sgemm_nn_forward(float *C, const float *A, const float *B, int M, int K, int N) {
    if (M == 0 || N == 0) return;
    const float one = 1.0f, zero = 0.0f;
    // Row-major C = A B is column-major Cᵀ = Bᵀ Aᵀ, both already column-major as stored.
    cublasCheck(cublasSgemm(cluster_cublas(), CUBLAS_OP_N, CUBLAS_OP_N, N, M, K, &one, B, N, A, K,
                            &zero, C, N));
}

// --- Cholesky -----------------------------------------------------------------------------
// Failure record: info = first failing global pivot (-1: none), piv = its value.
struct CholInfo {
    int info;
    double piv;
};

// Factors the b×b diagonal block at A (leading dimension lda) in shared memory; `off` is its
// global index. Right-looking: column j's pivot already holds a_jj − Σ_{p<j} l_jp².
__global__ static void cholesky_diag_kernel1(double *A, int lda, int b, int off, CholInfo *st) {
    __shared__ double s[CHOL_NB][CHOL_NB + 1];
    if (st->info >= 0) return;   // an earlier block failed (same value for every thread)
    for (int e = threadIdx.x; e < b * b; e += blockDim.x) {
        const int i = e / b, j = e % b;
        s[i][j] = j <= i ? A[(size_t)i * lda + j] : 0.0;
    }
    __syncthreads();
    for (int j = 0; j < b; j++) {
        const double p = s[j][j];   // every thread reads the same value: a uniform branch
        if (!(p > 0.0)) {           // also NaN
            if (threadIdx.x == 0) {
                st->info = off + j;
                st->piv = p;
            }
            return;
        }
        const double ljj = sqrt(p);
        __syncthreads();   // all have read s[j][j]
        if (threadIdx.x == 0) s[j][j] = ljj;
        for (int i = j + 1 + threadIdx.x; i < b; i += blockDim.x) s[i][j] /= ljj;
        __syncthreads();
        const int m = b - j - 1;
        for (int e = threadIdx.x; e < m * m; e += blockDim.x) {
            const int i = j + 1 + e / m, c = j + 1 + e % m;
            if (c <= i) s[i][c] -= s[i][j] * s[c][j];
        }
        __syncthreads();
    }
    for (int e = threadIdx.x; e < b * b; e += blockDim.x) {
        const int i = e / b, j = e % b;
        if (j <= i) A[(size_t)i * lda + j] = s[i][j];
    }
}

// s = the lower triangle of L (b,b) (zeros above), b ≤ CHOL_NB, by the whole block; every
// thread of the block must call it (it ends in a barrier).
__device__ static void load_lower_tile(double (*s)[CHOL_NB + 1], const double *L, int ldl, int b) {
    for (int e = threadIdx.x; e < b * b; e += blockDim.x) {
        const int i = e / b, j = e % b;
        s[i][j] = j <= i ? L[(size_t)i * ldl + j] : 0.0;
    }
    __syncthreads();
}

// B (R,b) := B L⁻ᵀ (solves Y Lᵀ = B row by row, forward), L (b,b) lower, b ≤ 64.
__global__ static void trsm_right_lt_kernel1(double *B, int ldb, const double *L, int ldl, int R,
                                             int b) {
    __shared__ double s[CHOL_NB][CHOL_NB + 1];
    load_lower_tile(s, L, ldl, b);
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= R) return;
    double *x = B + (size_t)r * ldb;
    for (int j = 0; j < b; j++) {
        double t = x[j];
        for (int p = 0; p < j; p++) t -= x[p] * s[j][p];
        x[j] = t / s[j][j];
    }
}

// B (R,b) := B L⁻¹ (solves X L = B row by row, backward), L (b,b) lower, b ≤ 64.
__global__ static void trsm_right_ln_kernel1(double *B, int ldb, const double *L, int ldl, int R,
                                             int b) {
    __shared__ double s[CHOL_NB][CHOL_NB + 1];
    load_lower_tile(s, L, ldl, b);
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= R) return;
    double *x = B + (size_t)r * ldb;
    for (int j = b - 1; j >= 0; j--) {
        double t = x[j];
        for (int p = j + 1; p < b; p++) t -= x[p] * s[p][j];
        x[j] = t / s[j][j];
    }
}

int cholesky_forward(double *A, int n, const char *what) {
    if (!what) what = "cholesky";
    if (n <= 0) return 0;
    CholInfo *st = NULL;
    cudaCheck(cudaMalloc(&st, sizeof(CholInfo)));
    const CholInfo none = {-1, 0.0};
    cudaCheck(cudaMemcpy(st, &none, sizeof none, cudaMemcpyHostToDevice));
    for (int k = 0; k < n; k += CHOL_NB) {
        const int b = n - k < CHOL_NB ? n - k : CHOL_NB;
        double *A11 = A + (size_t)k * n + k;   // (b,b)
        cholesky_diag_kernel1<<<1, 256>>>(A11, n, b, k, st);
        launchCheck();
        const int m = n - k - b;
        if (m == 0) break;
        double *A21 = A + (size_t)(k + b) * n + k;       // (m,b)
        double *A22 = A + (size_t)(k + b) * n + k + b;   // (m,m), lower part updated
        trsm_right_lt_kernel1<<<ceil_div_u((size_t)m, 128), 128>>>(A21, n, A11, n, m, b);
        launchCheck();
        dsyrk_rm_lower(0, m, b, -1.0, A21, n, 1.0, A22, n);
    }
    zero_upper_kernel1<<<grid_for((size_t)n * n, 256), 256>>>(A, n);
    launchCheck();
    CholInfo got;
    cudaCheck(cudaMemcpy(&got, st, sizeof got, cudaMemcpyDeviceToHost));
    cudaCheck(cudaFree(st));
    if (got.info >= 0)
        return laic_error("%s: matrix is not positive definite (pivot %d = %.6g)", what, got.info,
                          got.piv);
    return 0;
}

void cholesky_solve_right(double *B, const double *L, int R, int n) {
    if (R == 0 || n == 0) return;
    const unsigned grid = ceil_div_u((size_t)R, 128);
    // Y Lᵀ = B, column blocks left to right: solve block J, then B_{>J} −= Y_J L_{>J,J}ᵀ.
    for (int j0 = 0; j0 < n; j0 += CHOL_NB) {
        const int b = n - j0 < CHOL_NB ? n - j0 : CHOL_NB, m = n - j0 - b;
        trsm_right_lt_kernel1<<<grid, 128>>>(B + j0, n, L + (size_t)j0 * n + j0, n, R, b);
        launchCheck();
        if (m) dgemm_rm(0, 1, R, m, b, -1.0, B + j0, n, L + (size_t)(j0 + b) * n + j0, n, 1.0,
                        B + j0 + b, n);
    }
    // X L = Y, column blocks right to left: solve block J, then B_{<J} −= X_J L_{J,<J}.
    for (int j0 = ((n - 1) / CHOL_NB) * CHOL_NB; j0 >= 0; j0 -= CHOL_NB) {
        const int b = n - j0 < CHOL_NB ? n - j0 : CHOL_NB;
        trsm_right_ln_kernel1<<<grid, 128>>>(B + j0, n, L + (size_t)j0 * n + j0, n, R, b);
        launchCheck();
        if (j0) dgemm_rm(0, 0, R, j0, b, -1.0, B + j0, n, L + (size_t)j0 * n, n, 1.0, B, n);
    }
}

void cholesky_solve_left(double *B, const double *L, int n, int R) {
    if (R == 0 || n == 0) return;
    // G⁻¹ B = ((Bᵀ) G⁻¹)ᵀ for symmetric G: transpose, right solve, transpose back.
    static ScratchBuf tmp;
    double *Bt = (double *)scratch_get(&tmp, sizeof(double) * (size_t)n * R,   // (R,n)
                                       "cholesky_solve");
    transpose_f64(Bt, B, n, R);
    cholesky_solve_right(Bt, L, R, n);
    transpose_f64(B, Bt, R, n);
}
