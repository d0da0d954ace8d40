/*
 * attention.cu — fused multi-head self-attention forward for both encoders.
 *
 *   qkv (B,T,3C): per token [q | k | v], each C = NH*hs (nn.MultiheadAttention's in_proj).
 *   out (B,T,C)  = softmax(q kᵀ / sqrt(hs) [+ causal mask]) v, heads concatenated.
 *   att (B,NH,T,T) = the softmax probabilities (0 where masked); skipped when NULL.
 *
 * Version 1: one block per (batch, head); the whole head lives in shared memory (CLIP: T ≤ 77,
 * hs = 64, about 81 KiB), so q, k, v are read from device memory once and the T×T scores
 * never leave the SM:
 *   1. load q, k, v (T,hs) of this head; k rows padded to hs+1 floats so that consecutive
 *      threads reading consecutive k rows hit different banks;
 *   2. scores s[i][j] = (q_i · k_j) / sqrt(hs), one thread per (i,j); causal: j > i is masked;
 *   3. softmax per row, one warp per row (max, exp, sum, normalise: fixed-order shuffles);
 *   4. out[i][d] = Σ_j p[i][j] v[j][d], one thread per (i,d), j ascending (causal: j ≤ i).
 * No atomics; every sum has a fixed order, so results are bitwise reproducible.
 * The shared-memory need grows as T² + 3·T·hs; the launcher checks it against the device's
 * opt-in limit and stops with a clear message for shapes beyond it (not reached by CLIP).
 *
 * Status: compiled for sm_90, unverified on hardware.
 */
#include "common.cuh"

#define ATT_THREADS 256

static size_t attention_smem_bytes(int T, int hs) {
    // q (T,hs), k (T,hs+1), v (T,hs), p (T,T)
    return ((size_t)T * hs * 2 + (size_t)T * (hs + 1) + (size_t)T * T) * sizeof(float);
}

__global__ static void __launch_bounds__(ATT_THREADS)
    attention_forward_kernel1(float *out, float *att, const float *qkv, int T, int C, int NH,
                              int causal) {
    // out (B,T,C), att (B,NH,T,T) or NULL, qkv (B,T,3C); blockIdx.x = b*NH + h
    extern __shared__ float sm[];
    const int hs = C / NH;
    const int b = blockIdx.x / NH, h = blockIdx.x % NH;
    float *q = sm;                                // (T, hs)
    float *k = q + (size_t)T * hs;                // (T, hs+1)
    float *v = k + (size_t)T * (hs + 1);          // (T, hs)
    float *p = v + (size_t)T * hs;                // (T, T)

    // 1. this head's q, k, v; consecutive threads read consecutive d (coalesced).
    const size_t C3 = (size_t)3 * C;
    for (int e = threadIdx.x; e < T * hs; e += blockDim.x) {
        const int t = e / hs, d = e % hs;
        const float *src = qkv + ((size_t)b * T + t) * C3 + (size_t)h * hs + d;
        q[t * hs + d] = src[0];
        k[t * (hs + 1) + d] = src[C];
        v[t * hs + d] = src[2 * (size_t)C];
    }
    __syncthreads();

    // 2. scaled scores.
    const float scale = rsqrtf((float)hs);
    for (int e = threadIdx.x; e < T * T; e += blockDim.x) {
        const int i = e / T, j = e % T;
        float s = -INFINITY;
        if (!causal || j <= i) {
            const float *qi = q + i * hs, *kj = k + j * (hs + 1);
            float acc = 0.0f;
            for (int d = 0; d < hs; d++) acc += qi[d] * kj[d];
            s = acc * scale;
        }
        p[e] = s;
    }
    __syncthreads();

    // 3. softmax, one warp per row. Masked entries are set to exactly 0 (not exp(-inf)), and
    //    every row has at least one unmasked entry (j = 0), so the max is finite.
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
    for (int i = warp; i < T; i += nwarps) {
        float *pi = p + (size_t)i * T;
        const int jn = causal ? i + 1 : T;   // unmasked entries: j < jn
        float m = -INFINITY;
        for (int j = lane; j < jn; j += 32) m = fmaxf(m, pi[j]);
        m = warp_max(m);
        float sum = 0.0f;
        for (int j = lane; j < T; j += 32) {
            const float ex = j < jn ? expf(pi[j] - m) : 0.0f;
            pi[j] = ex;
            sum += ex;
        }
        const float inv = 1.0f / warp_sum(sum);
        float *ai = att ? att + (((size_t)b * NH + h) * T + i) * T : NULL;
        for (int j = lane; j < T; j += 32) {
            const float pr = pi[j] * inv;
            pi[j] = pr;
            if (ai) ai[j] = pr;
        }
    }
    __syncthreads();

    // 4. weighted sum of values; consecutive threads on consecutive d (conflict-free v reads,
    //    p[i][j] broadcast, coalesced stores).
    for (int e = threadIdx.x; e < T * hs; e += blockDim.x) {
        const int i = e / hs, d = e % hs;
        const int jn = causal ? i + 1 : T;
        const float *pi = p + (size_t)i * T;
        float acc = 0.0f;
        for (int j = 0; j < jn; j++) acc += pi[j] * v[j * hs + d];
        out[((size_t)b * T + i) * C + (size_t)h * hs + d] = acc;
    }
}

// Both attention kernels hold a whole head in dynamic shared memory: fail clearly when the
// device cannot give `smem` bytes, and opt in above 48 KiB (once per process and kernel, to the
// device maximum).
static void attention_smem_optin(const void *kernel, int *raised, const char *who, size_t smem,
                                 int T, int hs) {
    // Queried once (one device per process): the trainer's graph capture then replays launches
    // that make no device-attribute calls at all.
    static int optin = -1;
    if (optin < 0) {
        int dev = 0;
        cudaCheck(cudaGetDevice(&dev));
        cudaCheck(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    }
    if (smem > (size_t)optin) {
        fprintf(stderr,
                "laic: fatal: %s: T=%d, head size %d need %zu bytes of shared "
                "memory, the device allows %d ---> HINT: this kernel holds a whole head "
                "(T <= 77 for CLIP)\n",
                who, T, hs, smem, optin);
        exit(1);
    }
    if (!*raised) {
        cudaCheck(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, optin));
        *raised = 1;
    }
}

void attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int NH,
                       int causal) {
    cudaAssert(B >= 0 && T >= 0 && NH > 0 && C > 0 && C % NH == 0, "attention needs C = NH*hs");
    if (B == 0 || T == 0) return;
    cudaAssert((size_t)B * NH <= 0x7fffffffu, "too many (batch, head) blocks");
    const size_t smem = attention_smem_bytes(T, C / NH);

    static int raised;
    attention_smem_optin((const void *)attention_forward_kernel1, &raised, "attention_forward",
                         smem, T, C / NH);
    attention_forward_kernel1<<<(unsigned int)(B * NH), ATT_THREADS, smem>>>(out, att, qkv, T, C,
                                                                             NH, causal);
    launchCheck();
}

// --- backward ---------------------------------------------------------------------------------
// dqkv (B,T,3C) from dout (B,T,C), the forward's qkv and att (B,NH,T,T) (overwrites dqkv).
// Version 1: one block per (batch, head), like the forward; shared memory holds q, k, v, dO
// (T,hs) and p, dS (T,T) (~126 KiB at T = 77, hs = 64; opt-in). Per query i, key j:
//   forward  out[i][d] = Σ_j p[i][j] v[j][d]  =>  dP[i][j] = dO_i · v_j,  dv_j = Σ_i p[i][j] dO_i
//   forward  softmax per row                  =>  dS[i][j] = p[i][j] (dP[i][j] - Σ_k p dP)
//   forward  s[i][j] = (q_i · k_j) * scale    =>  dq_i = scale Σ_j dS k_j, dk_j = scale Σ_i dS q_i
// Every output element is one thread's fixed-order loop: no atomics, deterministic.
static size_t attention_backward_smem_bytes(int T, int hs) {
    return ((size_t)T * hs * 4 + (size_t)T * T * 2) * sizeof(float);
}

__global__ static void __launch_bounds__(ATT_THREADS)
    attention_backward_kernel1(float *dqkv, const float *dout, const float *qkv,
                               const float *att, int T, int C, int NH, int causal) {
    extern __shared__ float sm[];
    const int hs = C / NH;
    const int b = blockIdx.x / NH, h = blockIdx.x % NH;
    float *q = sm;                          // (T, hs)
    float *k = q + (size_t)T * hs;          // (T, hs)
    float *v = k + (size_t)T * hs;          // (T, hs)
    float *dO = v + (size_t)T * hs;         // (T, hs)
    float *p = dO + (size_t)T * hs;         // (T, T)
    float *dS = p + (size_t)T * T;          // (T, T)
    const size_t C3 = (size_t)3 * C;
    for (int e = threadIdx.x; e < T * hs; e += blockDim.x) {
        const int t = e / hs, d = e % hs;
        const float *src = qkv + ((size_t)b * T + t) * C3 + (size_t)h * hs + d;
        q[e] = src[0];
        k[e] = src[C];
        v[e] = src[2 * (size_t)C];
        dO[e] = dout[((size_t)b * T + t) * C + (size_t)h * hs + d];
    }
    const float *pa = att + ((size_t)b * NH + h) * T * T;
    for (int e = threadIdx.x; e < T * T; e += blockDim.x) p[e] = pa[e];
    __syncthreads();

    // dP (masked entries 0, p is 0 there too)
    for (int e = threadIdx.x; e < T * T; e += blockDim.x) {
        const int i = e / T, j = e % T;
        float acc = 0.0f;
        if (!causal || j <= i)
            for (int d = 0; d < hs; d++) acc += dO[i * hs + d] * v[j * hs + d];
        dS[e] = acc;
    }
    __syncthreads();
    // softmax backward, one warp per row
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
    const float scale = rsqrtf((float)hs);
    for (int i = warp; i < T; i += nwarps) {
        float s = 0.0f;
        for (int j = lane; j < T; j += 32) s += p[i * T + j] * dS[i * T + j];
        s = warp_sum(s);
        for (int j = lane; j < T; j += 32) dS[i * T + j] = p[i * T + j] * (dS[i * T + j] - s) * scale;
    }
    __syncthreads();
    // dq, dk, dv: one thread per (row, d)
    for (int e = threadIdx.x; e < T * hs; e += blockDim.x) {
        const int r = e / hs, d = e % hs;
        float aq = 0.0f, ak = 0.0f, av = 0.0f;
        const int jn = causal ? r + 1 : T;   // keys query r saw
        for (int j = 0; j < jn; j++) aq += dS[r * T + j] * k[j * hs + d];
        for (int i = causal ? r : 0; i < T; i++) {   // queries that saw key r
            ak += dS[i * T + r] * q[i * hs + d];
            av += p[i * T + r] * dO[i * hs + d];
        }
        float *dst = dqkv + ((size_t)b * T + r) * C3 + (size_t)h * hs + d;
        dst[0] = aq;
        dst[C] = ak;
        dst[2 * (size_t)C] = av;
    }
}

void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B,
                        int T, int C, int NH, int causal) {
    cudaAssert(B >= 0 && T >= 0 && NH > 0 && C > 0 && C % NH == 0, "attention needs C = NH*hs");
    if (B == 0 || T == 0) return;
    cudaAssert((size_t)B * NH <= 0x7fffffffu, "too many (batch, head) blocks");
    const size_t smem = attention_backward_smem_bytes(T, C / NH);
    static int raised;
    attention_smem_optin((const void *)attention_backward_kernel1, &raised, "attention_backward",
                         smem, T, C / NH);
    attention_backward_kernel1<<<(unsigned int)(B * NH), ATT_THREADS, smem>>>(dqkv, dout, qkv,
                                                                              att, T, C, NH,
                                                                              causal);
    launchCheck();
}
