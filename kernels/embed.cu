/*
 * embed.cu — embeddings and gathers: the ops around the two transformer stacks.
 *
 *   im2col_forward        patches (B*G*G, 3*P*P) from pixels (B,3,H,W), H = W = G*P; row order
 *                         (b, gy, gx), column order (c, py, px) = conv1 weight (OC,3,P,P)
 *                         flattened, so the stride-P conv is one matmul.
 *   vision_embed_forward  out (B,1+NP,C): row 0 = class_emb, rows 1.. = patch_emb (B,NP,C);
 *                         then + pos (1+NP,C).
 *   token_embed_forward   out (B,T,C) = tok_emb[tokens[b,t]] + pos[t]; tokens (B,T) int32.
 *   pos_add_forward       out (B,T,C) = embeds (B,T,C) + pos[t].
 *   gather_rows_forward   out (B,C) = inp[b, idx[b], :], inp (B,T,C), idx (B) int32.
 *
 * All version 1: one thread per output element, grid-stride, consecutive threads on
 * consecutive output columns (coalesced writes; reads coalesced along C too). Indices from
 * device memory (tokens, idx) cannot raise a host error here: the host validates them before
 * upload (the tokenizer emits ids < V; gather indices come from argmax). As a last line of
 * defence, an out-of-range index writes NaN rather than reading out of bounds, so the fault
 * shows up in the output instead of as silent garbage or a crash.
 *
 * Status: compiled for sm_90, unverified on hardware.
 */
#include "common.cuh"

// x + y rounded once, subnormals kept (no .ftz, unlike a plain `+` under --use_fast_math's
// -ftz=true): the embedding adds are bitwise the CPU's for every input.
__device__ __forceinline__ static float add_exact(float x, float y) {
    float r;
    asm("add.rn.f32 %0, %1, %2;" : "=f"(r) : "f"(x), "f"(y));
    return r;
}

// --- im2col ----------------------------------------------------------------------------------
__global__ static void im2col_forward_kernel1(float *patches, const float *pixels, int B, int H,
                                              int P) {
    // patches (B*G*G, 3*P*P), pixels (B,3,H,H)
    const int G = H / P, cols = 3 * P * P;
    const size_t total = (size_t)B * G * G * cols;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t row = i / cols;
        const int col = (int)(i % cols);
        const int gx = (int)(row % G), gy = (int)((row / G) % G);
        const size_t b = row / ((size_t)G * G);
        const int c = col / (P * P), py = (col / P) % P, px = col % P;
        patches[i] = pixels[((b * 3 + c) * H + (size_t)(gy * P + py)) * H + gx * P + px];
    }
}

void im2col_forward(float *patches, const float *pixels, int B, int H, int P) {
    cudaAssert(B >= 0 && P > 0 && H > 0 && H % P == 0, "im2col needs H = G*P");
    const size_t total = (size_t)B * (H / P) * (H / P) * 3 * P * P;
    if (total == 0) return;
    const int block = 256;
    im2col_forward_kernel1<<<grid_for(total, block), block>>>(patches, pixels, B, H, P);
    launchCheck();
}

// --- vision embed: [class | patches] + pos --------------------------------------------------
__global__ static void vision_embed_forward_kernel1(float *out, const float *patch_emb,
                                                    const float *class_emb, const float *pos,
                                                    int B, int NP, int C) {
    // out (B,1+NP,C), patch_emb (B,NP,C), class_emb (C), pos (1+NP,C)
    const int T = NP + 1;
    const size_t total = (size_t)B * T * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const int c = (int)(i % C), t = (int)((i / C) % T);
        const size_t b = i / ((size_t)T * C);
        const float x = t == 0 ? class_emb[c] : patch_emb[(b * NP + (t - 1)) * C + c];
        out[i] = add_exact(x, pos[(size_t)t * C + c]);
    }
}

void vision_embed_forward(float *out, const float *patch_emb, const float *class_emb,
                          const float *pos, int B, int NP, int C) {
    cudaAssert(B >= 0 && NP >= 0 && C >= 0, "negative vision_embed size");
    const size_t total = (size_t)B * (NP + 1) * C;
    if (total == 0) return;
    const int block = 256;
    vision_embed_forward_kernel1<<<grid_for(total, block), block>>>(out, patch_emb, class_emb,
                                                                    pos, B, NP, C);
    launchCheck();
}

// --- token embed ---------------------------------------------------------------------------
__global__ static void token_embed_forward_kernel1(float *out, const int32_t *tokens,
                                                   const float *tok_emb, const float *pos, int B,
                                                   int T, int C) {
    // out (B,T,C), tokens (B,T), tok_emb (V,C), pos (T,C)
    const size_t total = (size_t)B * T * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const int c = (int)(i % C);
        const size_t bt = i / C;
        const int t = (int)(bt % T);
        const int32_t id = tokens[bt];
        // V is not passed (ops.h); only the lower bound can be checked here.
        const float x = id >= 0 ? tok_emb[(size_t)id * C + c] : __int_as_float(0x7fc00000);
        out[i] = add_exact(x, pos[(size_t)t * C + c]);
    }
}

void token_embed_forward(float *out, const int32_t *tokens, const float *tok_emb,
                         const float *pos, int B, int T, int C) {
    cudaAssert(B >= 0 && T >= 0 && C >= 0, "negative token_embed size");
    const size_t total = (size_t)B * T * C;
    if (total == 0) return;
    const int block = 256;
    token_embed_forward_kernel1<<<grid_for(total, block), block>>>(out, tokens, tok_emb, pos, B,
                                                                   T, C);
    launchCheck();
}

// --- pos add -------------------------------------------------------------------------------
__global__ static void pos_add_forward_kernel1(float *out, const float *embeds, const float *pos,
                                               int B, int T, int C) {
    // out (B,T,C), embeds (B,T,C), pos (T,C)
    const size_t total = (size_t)B * T * C, TC = (size_t)T * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = add_exact(embeds[i], pos[i % TC]);
}

void pos_add_forward(float *out, const float *embeds, const float *pos, int B, int T, int C) {
    cudaAssert(B >= 0 && T >= 0 && C >= 0, "negative pos_add size");
    const size_t total = (size_t)B * T * C;
    if (total == 0) return;
    const int block = 256;
    pos_add_forward_kernel1<<<grid_for(total, block), block>>>(out, embeds, pos, B, T, C);
    launchCheck();
}

// --- gather rows -----------------------------------------------------------------------------
__global__ static void gather_rows_forward_kernel1(float *out, const float *inp,
                                                   const int32_t *idx, int B, int T, int C) {
    // out (B,C), inp (B,T,C), idx (B)
    const size_t total = (size_t)B * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t b = i / C;
        const int c = (int)(i % C);
        const int32_t t = idx[b];
        out[i] = t >= 0 && t < T ? inp[(b * T + t) * C + c] : __int_as_float(0x7fc00000);
    }
}

void gather_rows_forward(float *out, const float *inp, const int32_t *idx, int B, int T, int C) {
    cudaAssert(B >= 0 && T >= 0 && C >= 0, "negative gather_rows size");
    const size_t total = (size_t)B * C;
    if (total == 0) return;
    const int block = 256;
    gather_rows_forward_kernel1<<<grid_for(total, block), block>>>(out, inp, idx, B, T, C);
    launchCheck();
}

// --- backward ---------------------------------------------------------------------------------
// Forward: out = embeds + pos[t]  =>  dembeds = dout (copy unless aliased), and dpos (T,C) +=
// Σ_b dout[b] (parameter gradient, accumulates): one thread per (t, c) sums b in order, so
// there are no atomics and the result is deterministic.
__global__ static void pos_add_backward_dpos_kernel1(float *dpos, const float *dout, int B, int T,
                                                     int C) {
    const size_t TC = (size_t)T * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < TC;
         i += (size_t)gridDim.x * blockDim.x) {
        float s = 0.0f;
        for (int b = 0; b < B; b++) s += dout[b * TC + i];
        dpos[i] += s;
    }
}

void pos_add_backward(float *dembeds, float *dpos, const float *dout, int B, int T, int C) {
    cudaAssert(B >= 0 && T >= 0 && C >= 0, "negative pos_add_backward size");
    const size_t total = (size_t)B * T * C;
    if (total == 0) return;
    const int block = 256;
    if (dpos) {
        pos_add_backward_dpos_kernel1<<<grid_for((size_t)T * C, block), block>>>(dpos, dout, B,
                                                                                 T, C);
        launchCheck();
    }
    if (dembeds != dout)
        cudaCheck(cudaMemcpyAsync(dembeds, dout, total * sizeof(float), cudaMemcpyDeviceToDevice,
                                  cudaStreamPerThread));
}

// Forward: out[b] = inp[b, idx[b]]  =>  dinp[b, t] = t == idx[b] ? dout[b] : 0 (overwrite), one
// thread per element of dinp (every element is written, so no memset first).
__global__ static void gather_rows_backward_kernel1(float *dinp, const float *dout,
                                                    const int32_t *idx, int B, int T, int C) {
    const size_t total = (size_t)B * T * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t row = i / C, b = row / T;
        const int t = (int)(row % T), c = (int)(i % C);
        dinp[i] = t == idx[b] ? dout[b * C + c] : 0.0f;
    }
}

void gather_rows_backward(float *dinp, const float *dout, const int32_t *idx, int B, int T,
                          int C) {
    cudaAssert(B >= 0 && T >= 0 && C >= 0, "negative gather_rows_backward size");
    const size_t total = (size_t)B * T * C;
    if (total == 0) return;
    const int block = 256;
    gather_rows_backward_kernel1<<<grid_for(total, block), block>>>(dinp, dout, idx, B, T, C);
    launchCheck();
}

// --- image-encoder backward (issue 16) ---------------------------------------------------------
// Forward: out[b,t] = (t == 0 ? class_emb : patch_emb[b,t-1]) + pos[t]  =>  dpatch_emb[b,t-1] =
// dout[b,t] (overwrite), dclass_emb += Σ_b dout[b,0], dpos[t] += Σ_b dout[b,t] (ACCUMULATE).
// One thread per (t, c) sums b in order in double and adds in double, rounded once: bitwise the
// CPU's (host/cpu/embed.c), no atomics.
__global__ static void vision_embed_backward_sum_kernel1(float *dclass_emb, float *dpos,
                                                         const float *dout, int B, int T, int C,
                                                         int rows) {
    // dout (B,T,C); sums rows t < rows (T with dpos, 1 for the class embedding alone)
    const size_t TC = (size_t)T * C, n = (size_t)rows * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        double s = 0.0;
        for (int b = 0; b < B; b++) s = __dadd_rn(s, (double)dout[b * TC + i]);
        if (dpos) dpos[i] = __double2float_rn(__dadd_rn((double)dpos[i], s));
        if (i < (size_t)C && dclass_emb)
            dclass_emb[i] = __double2float_rn(__dadd_rn((double)dclass_emb[i], s));
    }
}

__global__ static void vision_embed_backward_copy_kernel1(float *dpatch_emb, const float *dout,
                                                          int B, int NP, int C) {
    // dpatch_emb (B,NP,C) = dout[:, 1:, :], dout (B,1+NP,C)
    const size_t total = (size_t)B * NP * C, NPC = (size_t)NP * C;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t b = i / NPC;
        dpatch_emb[i] = dout[i + (b + 1) * C];
    }
}

void vision_embed_backward(float *dpatch_emb, float *dclass_emb, float *dpos, const float *dout,
                           int B, int NP, int C) {
    cudaAssert(B >= 0 && NP >= 0 && C >= 0, "negative vision_embed_backward size");
    const int block = 256, T = NP + 1;
    if (dpatch_emb && (size_t)B * NP * C > 0) {
        vision_embed_backward_copy_kernel1<<<grid_for((size_t)B * NP * C, block), block>>>(
            dpatch_emb, dout, B, NP, C);
        launchCheck();
    }
    if ((dclass_emb || dpos) && C > 0) {
        // without dpos only row t = 0 is needed
        const size_t n = dpos ? (size_t)T * C : (size_t)C;
        vision_embed_backward_sum_kernel1<<<grid_for(n, block), block>>>(dclass_emb, dpos, dout,
                                                                         B, T, C, dpos ? T : 1);
        launchCheck();
    }
}

// Forward: patches[(b,gy,gx), (c,py,px)] = pixels[b, c, gy*P+py, gx*P+px] with kernel = stride:
// a permutation, so the backward is its inverse, one thread per pixel (overwrite, coalesced
// writes).
__global__ static void im2col_backward_kernel1(float *dpixels, const float *dpatches, int B, int H,
                                               int P) {
    // dpixels (B,3,H,H), dpatches (B*G*G, 3*P*P)
    const int G = H / P, cols = 3 * P * P;
    const size_t total = (size_t)B * 3 * H * H;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        const int x = (int)(i % H), y = (int)((i / H) % H), c = (int)((i / ((size_t)H * H)) % 3);
        const size_t b = i / (3 * (size_t)H * H);
        const size_t row = (b * G + y / P) * G + x / P;
        dpixels[i] = dpatches[row * cols + (size_t)(c * P + y % P) * P + x % P];
    }
}

void im2col_backward(float *dpixels, const float *dpatches, int B, int H, int P) {
    cudaAssert(B >= 0 && P > 0 && H > 0 && H % P == 0, "im2col_backward needs H = G*P");
    const size_t total = (size_t)B * 3 * H * H;
    if (total == 0) return;
    const int block = 256;
    im2col_backward_kernel1<<<grid_for(total, block), block>>>(dpixels, dpatches, B, H, P);
    launchCheck();
}
