/*
 * attention.c — CPU multi-head scaled dot-product attention over a fused qkv tensor.
 *
 * qkv (B,T,3C) holds per token [q | k | v] (nn.MultiheadAttention's in_proj layout), each
 * C = NH*hs with head h in columns [h*hs, (h+1)*hs). out (B,T,C) gets, per head,
 * softmax(q kᵀ / sqrt(hs) [+ causal mask]) v, heads concatenated. att (B,NH,T,T), when given,
 * receives the probabilities (masked entries 0) for a backward.
 *
 * Plain loops, OpenMP over (b, h) pairs; the softmax subtracts the row max and sums in double.
 * K of the current (b, h) is first transposed to (hs, T) so the score loop runs over keys with
 * unit stride: each score is still summed over i = 0..hs-1 in order (the same rounding as a
 * dot product), but the compiler can vectorise across keys without reassociating anything.
 */
#include <math.h>
#include <string.h>

#include "cpu/cpu_ops.h"

void attention_forward_cpu(float *out, float *att, const float *qkv, int B, int T, int C, int NH,
                           int causal) {
    int hs = C / NH;
    size_t C3 = 3 * (size_t)C;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for schedule(static) collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            float sc[T];          // (T) scores, then probabilities, of one query row
            float kt[hs * T];     // (hs, T) this head's keys, transposed
            const float *base = qkv + (size_t)b * T * C3;
            for (int j = 0; j < T; j++) {
                const float *k = base + (size_t)j * C3 + C + (size_t)h * hs;   // (hs)
                for (int i = 0; i < hs; i++) kt[(size_t)i * T + j] = k[i];
            }
            for (int t = 0; t < T; t++) {
                const float *q = base + (size_t)t * C3 + (size_t)h * hs;   // (hs)
                int nk = causal ? t + 1 : T;   // keys this query may see
                for (int j = 0; j < nk; j++) sc[j] = 0.0f;
                for (int i = 0; i < hs; i++) {
                    float qi = q[i];
                    const float *kr = kt + (size_t)i * T;
                    for (int j = 0; j < nk; j++) sc[j] += qi * kr[j];
                }
                float mx = -INFINITY;
                for (int j = 0; j < nk; j++) {
                    sc[j] *= scale;
                    if (sc[j] > mx) mx = sc[j];
                }
                double sum = 0;
                for (int j = 0; j < nk; j++) {
                    sc[j] = expf(sc[j] - mx);
                    sum += sc[j];
                }
                float inv = (float)(1.0 / sum);
                for (int j = 0; j < nk; j++) sc[j] *= inv;
                float *o = out + ((size_t)b * T + t) * C + (size_t)h * hs;   // (hs)
                memset(o, 0, (size_t)hs * sizeof(float));
                for (int j = 0; j < nk; j++) {
                    const float *v = base + (size_t)j * C3 + 2 * (size_t)C + (size_t)h * hs;
                    float p = sc[j];
                    for (int i = 0; i < hs; i++) o[i] += p * v[i];
                }
                if (att) {
                    float *a = att + (((size_t)b * NH + h) * T + t) * T;   // (T)
                    memcpy(a, sc, (size_t)nk * sizeof(float));
                    for (int j = nk; j < T; j++) a[j] = 0.0f;
                }
            }
        }
    }
}

// --- backward -------------------------------------------------------------------------------
// dqkv (B,T,3C) from dout (B,T,C), the forward's qkv (B,T,3C) and probabilities att
// (B,NH,T,T) (overwrites dqkv). Per (b, h) and query t, with p = att[b,h,t,:]:
//   forward  o[i] += p * v[i]             =>  dv_j += p_j * do,   dp_j = do · v_j
//   forward  sc[j] = expf(sc[j] - mx)/sum =>  ds_j = p_j (dp_j - Σ_k p_k dp_k)
//   forward  sc[j] += qi * kr[j]; *scale  =>  dq += scale ds_j k_j,  dk_j += scale ds_j q
// Masked keys (j > t when causal) have p = 0 and get nothing. Each (b, h) owns its own
// columns of dqkv, so the OpenMP split over (b, h) writes disjoint memory.
void attention_backward_cpu(float *dqkv, const float *dout, const float *qkv, const float *att,
                            int B, int T, int C, int NH, int causal) {
    int hs = C / NH;
    size_t C3 = 3 * (size_t)C;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel for schedule(static) collapse(2)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            float dp[T];   // (T) gradient of one probability row, then of the scores
            const float *base = qkv + (size_t)b * T * C3;
            float *dbase = dqkv + (size_t)b * T * C3;
            for (int t = 0; t < T; t++) {
                float *d = dbase + (size_t)t * C3 + (size_t)h * hs;
                memset(d, 0, (size_t)hs * sizeof(float));
                memset(d + C, 0, (size_t)hs * sizeof(float));
                memset(d + 2 * (size_t)C, 0, (size_t)hs * sizeof(float));
            }
            for (int t = 0; t < T; t++) {
                int nk = causal ? t + 1 : T;
                const float *p = att + (((size_t)b * NH + h) * T + t) * T;   // (T)
                const float *dO = dout + ((size_t)b * T + t) * C + (size_t)h * hs;   // (hs)
                const float *q = base + (size_t)t * C3 + (size_t)h * hs;
                float *dq = dbase + (size_t)t * C3 + (size_t)h * hs;
                double pdp = 0;
                for (int j = 0; j < nk; j++) {
                    const float *v = base + (size_t)j * C3 + 2 * (size_t)C + (size_t)h * hs;
                    float *dv = dbase + (size_t)j * C3 + 2 * (size_t)C + (size_t)h * hs;
                    float s = 0.0f;
                    for (int i = 0; i < hs; i++) {
                        s += dO[i] * v[i];
                        dv[i] += p[j] * dO[i];
                    }
                    dp[j] = s;
                    pdp += (double)p[j] * s;
                }
                for (int j = 0; j < nk; j++) {
                    float ds = p[j] * (dp[j] - (float)pdp) * scale;
                    const float *k = base + (size_t)j * C3 + C + (size_t)h * hs;
                    float *dk = dbase + (size_t)j * C3 + C + (size_t)h * hs;
                    for (int i = 0; i < hs; i++) {
                        dq[i] += ds * k[i];
                        dk[i] += ds * q[i];
                    }
                }
            }
        }
    }
}
