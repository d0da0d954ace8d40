/*
 * optim.cu — the Adam / AdamW op of ops_cuda (host/ops.h adam_forward).
 *
 * Bitwise host/cpu/optim.c adam_forward_cpu: the same float operations in the same order, each
 * an explicit round-to-nearest intrinsic (__fadd_rn, __fmul_rn, __fdiv_rn, __fsqrt_rn; the
 * double scalars with __dmul_rn / __dadd_rn / __ddiv_rn / __dsqrt_rn), which nvcc never fuses
 * into an FMA and which keep subnormals (no --use_fast_math). The per-step scalars come from
 * sched (3) in device memory, so a captured step reads the current lr and bias corrections.
 * One grid-stride kernel, n elements, memory-bound (16 bytes read, 12 written per element).
 *
 * Status: compiled for sm_90, unverified on hardware (tests/gpu/test_optim_gpu.c).
 */
#include "common.cuh"

#define OPTIM_THREADS 256

__global__ static void adam_forward_kernel1(float *p, float *m, float *v, const float *g,
                                            const double *sched, size_t n, float w1, float b2,
                                            float w2, float epsf, double wd, int use_wd,
                                            int decoupled) {
    const double lr = sched[0], bc1 = sched[1], bc2 = sched[2];
    // the host reference rounds (1 - lr*wd), sqrt(bc2) and -(lr/bc1) from double, one rounding each
    const float decay = __double2float_rn(__dadd_rn(1.0, -__dmul_rn(lr, wd)));
    const float bc2_sqrt = __double2float_rn(__dsqrt_rn(bc2));
    const float nstep = __double2float_rn(-__ddiv_rn(lr, bc1));
    const float wdf = __double2float_rn(wd);
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float pi = p[i], gi = g[i];
        if (use_wd && decoupled) pi = __fmul_rn(pi, decay);
        if (use_wd && !decoupled) gi = __fadd_rn(gi, __fmul_rn(wdf, pi));
        const float mi = __fadd_rn(m[i], __fmul_rn(w1, __fadd_rn(gi, -m[i])));
        const float vi = __fadd_rn(__fmul_rn(v[i], b2), __fmul_rn(__fmul_rn(w2, gi), gi));
        const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), epsf);
        p[i] = __fadd_rn(pi, __fdiv_rn(__fmul_rn(nstep, mi), denom));
        m[i] = mi;
        v[i] = vi;
    }
}

void adam_forward(float *p, float *m, float *v, const float *g, const double *sched, size_t n,
                  double beta1, double beta2, double eps, double weight_decay, int decoupled) {
    if (n == 0) return;
    // float constants rounded on the host exactly as adam_forward_cpu rounds them
    const float w1 = (float)(1.0 - beta1), b2 = (float)beta2, w2 = (float)(1.0 - beta2);
    adam_forward_kernel1<<<grid_for(n, OPTIM_THREADS), OPTIM_THREADS>>>(
        p, m, v, g, sched, n, w1, b2, w2, (float)eps, weight_decay, weight_decay != 0.0,
        decoupled);
    launchCheck();
}

// --- gradient clipping (issue 16) ------------------------------------------------------------
// sumsq_forward: out[0] += Σ x² in double. Deterministic two passes: a grid fixed by n alone
// (at most SUMSQ_BLOCKS blocks of OPTIM_THREADS), each thread a grid-stride sum, each block a
// fixed shared-memory tree; then one thread adds the block sums in order. Not the CPU's
// in-order bits (≈1e-16 relative apart), but run-to-run identical.
#define SUMSQ_BLOCKS 1024

__global__ static void sumsq_forward_kernel1(double *partial, const float *x, size_t n) {
    __shared__ double s[OPTIM_THREADS];
    double acc = 0.0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const double v = (double)x[i];
        acc = __dadd_rn(acc, __dmul_rn(v, v));
    }
    s[threadIdx.x] = acc;
    __syncthreads();
    for (int h = OPTIM_THREADS / 2; h > 0; h >>= 1) {
        if ((int)threadIdx.x < h) s[threadIdx.x] = __dadd_rn(s[threadIdx.x], s[threadIdx.x + h]);
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = s[0];
}

__global__ static void sumsq_finish_kernel1(double *out, const double *partial, int nb) {
    double t = 0.0;
    for (int b = 0; b < nb; b++) t = __dadd_rn(t, partial[b]);
    out[0] = __dadd_rn(out[0], t);
}

void sumsq_forward(double *out, const float *x, size_t n) {
    if (n == 0) return;
    unsigned int nb = grid_for(n, OPTIM_THREADS);
    if (nb > SUMSQ_BLOCKS) nb = SUMSQ_BLOCKS;
    static ScratchBuf s;
    double *partial = (double *)scratch_get(&s, SUMSQ_BLOCKS * sizeof(double), "sumsq_forward");
    sumsq_forward_kernel1<<<nb, OPTIM_THREADS>>>(partial, x, n);
    launchCheck();
    sumsq_finish_kernel1<<<1, 1>>>(out, partial, (int)nb);
    launchCheck();
}

// grad_clip_forward: torch.nn.utils.clip_grad_norm_'s float32 arithmetic (host/cpu/optim.c):
// norm = (float)√sumsq, coef = min(max_norm / (norm + 1e-6), 1) (NaN propagates), x *= coef.
// Every thread derives coef from sumsq[0] itself (device memory, so a captured step reads the
// step's value); explicit round-to-nearest ops, bitwise the CPU.
__global__ static void grad_clip_forward_kernel1(float *x, size_t n, const double *sumsq,
                                                 float max_norm) {
    const float norm = __double2float_rn(__dsqrt_rn(sumsq[0]));
    float coef = __fdiv_rn(max_norm, __fadd_rn(norm, 1e-6f));
    if (!(coef < 1.0f)) coef = 1.0f;
    if (norm != norm) coef = norm;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] = __fmul_rn(x[i], coef);
}

void grad_clip_forward(float *x, size_t n, const double *sumsq, double max_norm) {
    if (n == 0) return;
    grad_clip_forward_kernel1<<<grid_for(n, OPTIM_THREADS), OPTIM_THREADS>>>(x, n, sumsq,
                                                                            (float)max_norm);
    launchCheck();
}
