/*
 * embed.c — CPU embedding ops: patch extraction (im2col for the stride = kernel conv1), the
 * vision token assembly, token / positional embeddings and the row gather that picks the
 * class / EOT token. All are copies and adds: single-threaded, memory-bound (see layernorm.c).
 */
#include <string.h>

#include "cpu/cpu_ops.h"

// patches (B*G*G, 3*P*P) from pixels (B,3,H,H); row (b,gy,gx), column (c,py,px) so that
// patches @ conv1_w(OC, 3*P*P)ᵀ is the convolution (kernel = stride = P, no padding).
void im2col_forward_cpu(float *patches, const float *pixels, int B, int H, int P) {
    int G = H / P;
    size_t K = 3 * (size_t)P * P;
    for (int b = 0; b < B; b++) {
        for (int gy = 0; gy < G; gy++) {
            for (int gx = 0; gx < G; gx++) {
                float *row = patches + (((size_t)b * G + gy) * G + gx) * K;   // (3*P*P)
                for (int c = 0; c < 3; c++) {
                    for (int py = 0; py < P; py++) {
                        const float *src = pixels + (((size_t)b * 3 + c) * H + (size_t)gy * P + py) * H
                                           + (size_t)gx * P;                  // (P)
                        memcpy(row + ((size_t)c * P + py) * P, src, (size_t)P * sizeof(float));
                    }
                }
            }
        }
    }
}

// out (B,1+NP,C): row 0 = class_emb, rows 1.. = patch_emb (B,NP,C); plus pos (1+NP,C).
void vision_embed_forward_cpu(float *out, const float *patch_emb, const float *class_emb,
                              const float *pos, int B, int NP, int C) {
    int T = NP + 1;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const float *src = t == 0 ? class_emb : patch_emb + ((size_t)b * NP + t - 1) * C;
            const float *p = pos + (size_t)t * C;
            float *o = out + ((size_t)b * T + t) * C;
            for (int i = 0; i < C; i++) o[i] = src[i] + p[i];
        }
    }
}

// out (B,T,C) = tok_emb[tokens[b,t]] + pos[t]; ids are validated by the caller (clip.c).
void token_embed_forward_cpu(float *out, const int32_t *tokens, const float *tok_emb,
                             const float *pos, int B, int T, int C) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const float *e = tok_emb + (size_t)tokens[(size_t)b * T + t] * C;
            const float *p = pos + (size_t)t * C;
            float *o = out + ((size_t)b * T + t) * C;
            for (int i = 0; i < C; i++) o[i] = e[i] + p[i];
        }
    }
}

// out (B,T,C) = embeds (B,T,C) + pos (T,C) broadcast over b (out may equal embeds).
void pos_add_forward_cpu(float *out, const float *embeds, const float *pos, int B, int T, int C) {
    size_t TC = (size_t)T * C;
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < TC; i++) out[b * TC + i] = embeds[b * TC + i] + pos[i];
}

// out (B,C) = inp[b, idx[b], :] with inp (B,T,C).
void gather_rows_forward_cpu(float *out, const float *inp, const int32_t *idx, int B, int T,
                             int C) {
    for (int b = 0; b < B; b++)
        memcpy(out + (size_t)b * C, inp + ((size_t)b * T + idx[b]) * C, (size_t)C * sizeof(float));
}

// --- backward -------------------------------------------------------------------------------
// Forward: out[b,t,:] = embeds[b,t,:] + pos[t,:]  =>  dembeds = dout (overwrite, may alias),
// dpos[t,:] += Σ_b dout[b,t,:] (a parameter gradient: accumulates; NULL skips it).
void pos_add_backward_cpu(float *dembeds, float *dpos, const float *dout, int B, int T, int C) {
    size_t TC = (size_t)T * C;
    if (dpos)
        for (int b = 0; b < B; b++)
            for (size_t i = 0; i < TC; i++) dpos[i] += dout[b * TC + i];
    if (dembeds != dout) memcpy(dembeds, dout, (size_t)B * TC * sizeof(float));
}

// Forward: out[b,:] = inp[b, idx[b], :]  =>  dinp[b, idx[b], :] = dout[b,:], every other row 0
// (overwrite).
void gather_rows_backward_cpu(float *dinp, const float *dout, const int32_t *idx, int B, int T,
                              int C) {
    memset(dinp, 0, (size_t)B * T * C * sizeof(float));
    for (int b = 0; b < B; b++)
        memcpy(dinp + ((size_t)b * T + idx[b]) * C, dout + (size_t)b * C,
               (size_t)C * sizeof(float));
}

// --- image-encoder backward (issue 16) ---------------------------------------------------------
// Forward: out[b,t,:] = (t == 0 ? class_emb : patch_emb[b,t-1,:]) + pos[t,:]  =>
// dpatch_emb[b,t-1,:] = dout[b,t,:] (overwrite), dclass_emb += Σ_b dout[b,0,:], dpos[t,:] +=
// Σ_b dout[b,t,:] (parameter gradients: accumulate; each sum over b in order in double, added in
// double and rounded once, so the CUDA twin, one thread per (t,c) in the same order, gives the
// same bits).
void vision_embed_backward_cpu(float *dpatch_emb, float *dclass_emb, float *dpos,
                               const float *dout, int B, int NP, int C) {
    const int T = NP + 1;
    if (dpatch_emb)
        for (int b = 0; b < B; b++)
            memcpy(dpatch_emb + (size_t)b * NP * C, dout + ((size_t)b * T + 1) * C,
                   (size_t)NP * C * sizeof(float));
    if (!dclass_emb && !dpos) return;
    for (int t = 0; t < T; t++) {
        if (t > 0 && !dpos) break;
        for (int c = 0; c < C; c++) {
            double s = 0.0;
            for (int b = 0; b < B; b++) s += dout[((size_t)b * T + t) * C + c];
            if (dpos) dpos[(size_t)t * C + c] = (float)((double)dpos[(size_t)t * C + c] + s);
            if (t == 0 && dclass_emb) dclass_emb[c] = (float)((double)dclass_emb[c] + s);
        }
    }
}

// Forward: patches[(b,gy,gx), (c,py,px)] = pixels[b, c, gy*P+py, gx*P+px], kernel = stride, so
// each pixel is read once: the backward is the inverse permutation (overwrite).
void im2col_backward_cpu(float *dpixels, const float *dpatches, int B, int H, int P) {
    int G = H / P;
    size_t K = 3 * (size_t)P * P;
    for (int b = 0; b < B; b++)
        for (int gy = 0; gy < G; gy++)
            for (int gx = 0; gx < G; gx++) {
                const float *row = dpatches + (((size_t)b * G + gy) * G + gx) * K;   // (3*P*P)
                for (int c = 0; c < 3; c++)
                    for (int py = 0; py < P; py++) {
                        float *dst = dpixels + (((size_t)b * 3 + c) * H + (size_t)gy * P + py) * H
                                     + (size_t)gx * P;                             // (P)
                        memcpy(dst, row + ((size_t)c * P + py) * P, (size_t)P * sizeof(float));
                    }
            }
}
