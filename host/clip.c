/*
 * clip.c — the two CLIP encoders (host/clip.h) as sequences of backend ops (host/ops.h).
 *
 * Promises:
 * - clip_encode_images / clip_encode_text / clip_encode_text_embeds return CLIP's unnormalised
 *   projected features (OpenAI encode_image / encode_text, HF get_image_features /
 *   get_text_features) for any backend; no op is called outside the OpsBackend table.
 * - Parameters: the CPU backend aliases the host weights (no 600 MB copy), so the ClipWeights
 *   must outlive the model; other backends get one copy of the whole arena and the pointers are
 *   rebased by their offset into it.
 * - Activations: ONE backend allocation, carved by fill_in_act_sizes / malloc_and_point_acts
 *   (llm.c) for max_batch images or max_batch texts of the full context (the two towers run one
 *   at a time, so they share it). A call with B > max_batch is rejected, never reallocated.
 * - Text runs only up to the batch's longest EOT position + 1: under the causal mask earlier
 *   positions never see later ones, so the features are exactly those of the full context.
 *
 * Letters (clip.h): B batch, T tokens in the running sequence, C width, H MLP width,
 * NH heads, S image size, P patch, G = S/P, NP = G*G patches, L context, E embed dim.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clip.h"
#include "io/err.h"

// --- activations ------------------------------------------------------------------------

#define NUM_ACT_TENSORS 11
typedef struct {
    float *pixels;    // (B, 3, S, S)         input images (backend copy)
    float *patches;   // (B*NP, 3*P*P)        im2col of pixels
    float *x;         // (B, T, C)            residual stream
    float *ln;        // (B, T, C)            layernorm output / swap partner of x
    float *qkv;       // (B, T, 3C)
    float *attn;      // (B, T, C)            attention output, heads concatenated
    float *tmp;       // (B, T, C)            projection outputs before the residual add
    float *fch;       // (B, T, H)            MLP hidden
    float *pooled;    // (B, C)               class / EOT token
    float *pooled_ln; // (B, C)
    float *feat;      // (B, E)               projected features
} ClipActs;
_Static_assert(sizeof(ClipActs) == NUM_ACT_TENSORS * sizeof(float *), "ClipActs pointer count");

struct ClipModel {
    ClipConfig cfg;
    const OpsBackend *ops;
    ClipWeights w;         // pointers into the backend's parameters
    float *dev_params;     // the backend copy of the arena; NULL when aliasing host weights
    int max_batch;
    ClipActs a;
    float *act_mem;        // the one activation allocation (backend memory)
    int32_t *dev_ints;     // (B*L + B) tokens then gather indices, in backend memory
    int32_t *host_ints;    // (B*L + B) host staging for dev_ints
};

static int imax(int a, int b) { return a > b ? a : b; }

static void fill_in_act_sizes(size_t sizes[NUM_ACT_TENSORS], const ClipConfig *c, int B) {
    size_t S = (size_t)c->image_size, P = (size_t)c->patch_size, G = S / P;
    size_t tok_v = (size_t)B * (G * G + 1), tok_t = (size_t)B * c->context_length;
    size_t N = tok_v > tok_t ? tok_v : tok_t;   // rows of the larger tower
    size_t C = (size_t)imax(c->vision_width, c->text_width);
    size_t H = (size_t)imax(c->vision_mlp, c->text_mlp);
    sizes[0] = (size_t)B * 3 * S * S;     // pixels
    sizes[1] = (size_t)B * G * G * 3 * P * P;   // patches
    sizes[2] = N * C;                     // x
    sizes[3] = N * C;                     // ln
    sizes[4] = N * 3 * C;                 // qkv
    sizes[5] = N * C;                     // attn
    sizes[6] = N * C;                     // tmp
    sizes[7] = N * H;                     // fch
    sizes[8] = (size_t)B * C;             // pooled
    sizes[9] = (size_t)B * C;             // pooled_ln
    sizes[10] = (size_t)B * c->embed_dim; // feat
}

static float *malloc_and_point_acts(const OpsBackend *ops, ClipActs *a,
                                    const size_t sizes[NUM_ACT_TENSORS]) {
    size_t total = 0;
    for (int i = 0; i < NUM_ACT_TENSORS; i++) total += sizes[i];
    float *mem = ops->alloc(total * sizeof(float));
    if (!mem) return NULL;
    float **ptrs[NUM_ACT_TENSORS] = {&a->pixels, &a->patches, &a->x,    &a->ln,
                                     &a->qkv,    &a->attn,    &a->tmp,  &a->fch,
                                     &a->pooled, &a->pooled_ln, &a->feat};
    float *p = mem;
    for (int i = 0; i < NUM_ACT_TENSORS; i++) {
        *ptrs[i] = p;
        p += sizes[i];
    }
    return mem;
}

// --- parameters ---------------------------------------------------------------------------

// Every parameter pointer of a ClipWeights, for rebasing onto a backend copy of the arena.
static int weight_ptrs(ClipWeights *w, float **out[], int cap) {
    int n = 0;
#define ADD(p) do { if (n < cap) out[n] = &(p); n++; } while (0)
    ADD(w->conv1_w); ADD(w->class_emb); ADD(w->vis_pos); ADD(w->ln_pre_w); ADD(w->ln_pre_b);
    ADD(w->ln_post_w); ADD(w->ln_post_b); ADD(w->vis_proj);
    ADD(w->tok_emb); ADD(w->txt_pos); ADD(w->ln_final_w); ADD(w->ln_final_b); ADD(w->text_proj);
    for (int t = 0; t < 2; t++) {
        int nl = t ? w->cfg.text_layers : w->cfg.vision_layers;
        for (int l = 0; l < nl && l < CLIP_MAX_LAYERS; l++) {
            ClipBlockWeights *b = t ? &w->tblocks[l] : &w->vblocks[l];
            ADD(b->ln_1_w); ADD(b->ln_1_b); ADD(b->attn_in_w); ADD(b->attn_in_b);
            ADD(b->attn_out_w); ADD(b->attn_out_b); ADD(b->ln_2_w); ADD(b->ln_2_b);
            ADD(b->fc_w); ADD(b->fc_b); ADD(b->proj_w); ADD(b->proj_b);
        }
    }
#undef ADD
    return n;
}

static int check_config(const ClipConfig *c) {
    if (c->image_size <= 0 || c->patch_size <= 0 || c->image_size % c->patch_size)
        return laic_error("clip: image size %d is not a multiple of patch size %d", c->image_size,
                          c->patch_size);
    if (c->vision_heads <= 0 || c->vision_width % c->vision_heads || c->text_heads <= 0 ||
        c->text_width % c->text_heads)
        return laic_error("clip: width not divisible by the number of heads");
    if (c->vision_layers < 0 || c->vision_layers > CLIP_MAX_LAYERS || c->text_layers < 0 ||
        c->text_layers > CLIP_MAX_LAYERS)
        return laic_error("clip: layer count outside [0,%d]", CLIP_MAX_LAYERS);
    if (c->context_length <= 0 || c->vocab_size <= 0 || c->embed_dim <= 0 ||
        c->vision_mlp <= 0 || c->text_mlp <= 0)
        return laic_error("clip: non-positive dimension in the configuration");
    return 0;
}

ClipModel *clip_model_create(const ClipWeights *w, const OpsBackend *ops, int max_batch) {
    if (!w || !ops) {
        laic_error("clip: no weights or no backend");
        return NULL;
    }
    if (max_batch < 1) {
        laic_error("clip: max_batch must be >= 1 (got %d)", max_batch);
        return NULL;
    }
    if (check_config(&w->cfg)) return NULL;
    ClipModel *m = callocCheck(1, sizeof *m);
    m->cfg = w->cfg;
    m->ops = ops;
    m->w = *w;
    m->max_batch = max_batch;
    if (strcmp(ops->name, "cpu") != 0) {
        // one copy of the arena, then every pointer moves by the same offset
        float **ptrs[12 * 2 * CLIP_MAX_LAYERS + 16];
        int np = weight_ptrs(&m->w, ptrs, (int)(sizeof ptrs / sizeof ptrs[0]));
        for (int i = 0; i < np; i++) {
            float *p = *ptrs[i];
            if (!w->params || !p || p < w->params || p >= w->params + w->n_params) {
                laic_error("clip: weight pointer %d lies outside the parameter arena", i);
                free(m);
                return NULL;
            }
        }
        m->dev_params = ops->alloc(w->n_params * sizeof(float));
        if (!m->dev_params) {
            free(m);
            return NULL;
        }
        ops->to_device(m->dev_params, w->params, w->n_params * sizeof(float));
        for (int i = 0; i < np; i++) *ptrs[i] = m->dev_params + (*ptrs[i] - w->params);
        m->w.params = m->dev_params;
    }
    size_t sizes[NUM_ACT_TENSORS];
    fill_in_act_sizes(sizes, &m->cfg, max_batch);
    m->act_mem = malloc_and_point_acts(ops, &m->a, sizes);
    size_t nints = (size_t)max_batch * m->cfg.context_length + (size_t)max_batch;
    m->dev_ints = m->act_mem ? ops->alloc(nints * sizeof(int32_t)) : NULL;
    if (!m->dev_ints) {
        clip_model_free(m);
        return NULL;
    }
    m->host_ints = mallocCheck(nints * sizeof(int32_t));
    return m;
}

void clip_model_free(ClipModel *m) {
    if (!m) return;
    if (m->dev_ints) m->ops->free(m->dev_ints);
    if (m->act_mem) m->ops->free(m->act_mem);
    if (m->dev_params) m->ops->free(m->dev_params);
    free(m->host_ints);
    free(m);
}

// --- the transformer ----------------------------------------------------------------------

// N = B*T rows of width C through one pre-LN residual block, in place on x (B,T,C); ln
// (B,T,C) is scratch and must not alias x.
static void block_forward(ClipModel *m, const ClipBlockWeights *bw, float *x, float *ln, int B,
                          int T, int C, int NH, int H, int causal) {
    const OpsBackend *o = m->ops;
    ClipActs *a = &m->a;
    int N = B * T;
    // x = x + out_proj(attn(ln_1(x)))
    o->layernorm_forward(ln, NULL, NULL, x, bw->ln_1_w, bw->ln_1_b, N, C);
    o->matmul_forward(a->qkv, ln, bw->attn_in_w, bw->attn_in_b, N, C, 3 * C);
    o->attention_forward(a->attn, NULL, a->qkv, B, T, C, NH, causal);
    o->matmul_forward(a->tmp, a->attn, bw->attn_out_w, bw->attn_out_b, N, C, C);
    o->residual_forward(x, x, a->tmp, (size_t)N * C);
    // x = x + c_proj(quickgelu(c_fc(ln_2(x))))
    o->layernorm_forward(ln, NULL, NULL, x, bw->ln_2_w, bw->ln_2_b, N, C);
    o->matmul_forward(a->fch, ln, bw->fc_w, bw->fc_b, N, C, H);
    o->quickgelu_forward(a->fch, a->fch, (size_t)N * H);
    o->matmul_forward(a->tmp, a->fch, bw->proj_w, bw->proj_b, N, H, C);
    o->residual_forward(x, x, a->tmp, (size_t)N * C);
}

static int check_batch(const ClipModel *m, int B) {
    if (B < 1 || B > m->max_batch)
        return laic_error("clip: batch of %d outside [1,%d] (the model's max_batch) ---> HINT: "
                          "split the input or create the model with a larger max_batch",
                          B, m->max_batch);
    return 0;
}

int clip_encode_images(ClipModel *m, const float *pixels, int B, float *out) {
    if (check_batch(m, B)) return -1;
    const OpsBackend *o = m->ops;
    const ClipConfig *c = &m->cfg;
    const ClipWeights *w = &m->w;
    ClipActs *a = &m->a;
    int S = c->image_size, P = c->patch_size, G = S / P, NP = G * G, T = NP + 1;
    int C = c->vision_width;

    o->to_device(a->pixels, pixels, (size_t)B * 3 * S * S * sizeof(float));
    // conv1 (kernel = stride = P, no bias) as im2col + matmul
    o->im2col_forward(a->patches, a->pixels, B, S, P);
    o->matmul_forward(a->tmp, a->patches, w->conv1_w, NULL, B * NP, 3 * P * P, C);
    o->vision_embed_forward(a->x, a->tmp, w->class_emb, w->vis_pos, B, NP, C);
    // ln_pre: written to ln, which then is the residual stream (x becomes the scratch)
    o->layernorm_forward(a->ln, NULL, NULL, a->x, w->ln_pre_w, w->ln_pre_b, B * T, C);
    float *x = a->ln;
    for (int l = 0; l < c->vision_layers; l++)
        block_forward(m, &w->vblocks[l], x, a->x, B, T, C, c->vision_heads, c->vision_mlp, 0);
    // class token -> ln_post -> proj
    int32_t *idx = m->dev_ints;   // (B) zeros
    o->memset0(idx, (size_t)B * sizeof(int32_t));
    o->gather_rows_forward(a->pooled, x, idx, B, T, C);
    o->layernorm_forward(a->pooled_ln, NULL, NULL, a->pooled, w->ln_post_w, w->ln_post_b, B, C);
    o->matmul_forward(a->feat, a->pooled_ln, w->vis_proj, NULL, B, C, c->embed_dim);
    o->to_host(out, a->feat, (size_t)B * c->embed_dim * sizeof(float));
    o->synchronize();
    return 0;
}

// Shared tail of both text entry points: x (B,T,Ct) already holds embeddings + positions.
static void text_tail(ClipModel *m, const int32_t *host_eot, int B, int T, float *out) {
    const OpsBackend *o = m->ops;
    const ClipConfig *c = &m->cfg;
    const ClipWeights *w = &m->w;
    ClipActs *a = &m->a;
    int C = c->text_width;
    for (int l = 0; l < c->text_layers; l++)
        block_forward(m, &w->tblocks[l], a->x, a->ln, B, T, C, c->text_heads, c->text_mlp, 1);
    // ln_final is per row, so gathering the EOT rows first gives the same result on B rows
    int32_t *idx = m->dev_ints + (size_t)m->max_batch * c->context_length;   // (B)
    o->to_device(idx, host_eot, (size_t)B * sizeof(int32_t));
    o->gather_rows_forward(a->pooled, a->x, idx, B, T, C);
    o->layernorm_forward(a->pooled_ln, NULL, NULL, a->pooled, w->ln_final_w, w->ln_final_b, B,
                         C);
    o->matmul_forward(a->feat, a->pooled_ln, w->text_proj, NULL, B, C, c->embed_dim);
    o->to_host(out, a->feat, (size_t)B * c->embed_dim * sizeof(float));
    o->synchronize();
}

int clip_encode_text(ClipModel *m, const int32_t *tokens, int B, int L, float *out) {
    if (check_batch(m, B)) return -1;
    const ClipConfig *c = &m->cfg;
    if (L < 1 || L > c->context_length)
        return laic_error("clip: token length %d outside [1,%d] (the context length)", L,
                          c->context_length);
    // EOT = argmax id per row (first maximum, as torch.argmax); ids must be in the vocabulary
    int32_t *eot = m->host_ints + (size_t)m->max_batch * c->context_length;   // (B)
    int T = 0;
    for (int b = 0; b < B; b++) {
        const int32_t *row = tokens + (size_t)b * L;
        int best = 0;
        for (int t = 0; t < L; t++) {
            if (row[t] < 0 || row[t] >= c->vocab_size)
                return laic_error("clip: token id %d at row %d, position %d is outside the "
                                  "vocabulary [0,%d)", (int)row[t], b, t, c->vocab_size);
            if (row[t] > row[best]) best = t;
        }
        eot[b] = best;
        if (best + 1 > T) T = best + 1;
    }
    // exact causal truncation: keep positions 0..T-1 of every row, contiguous
    int32_t *tok = m->host_ints;   // (B,T)
    for (int b = 0; b < B; b++)
        memcpy(tok + (size_t)b * T, tokens + (size_t)b * L, (size_t)T * sizeof(int32_t));
    const OpsBackend *o = m->ops;
    o->to_device(m->dev_ints, tok, (size_t)B * T * sizeof(int32_t));
    o->token_embed_forward(m->a.x, m->dev_ints, m->w.tok_emb, m->w.txt_pos, B, T,
                           c->text_width);
    text_tail(m, eot, B, T, out);
    return 0;
}

int clip_encode_text_embeds(ClipModel *m, const float *embeds, const int32_t *eot, int B, int T,
                            float *out) {
    if (check_batch(m, B)) return -1;
    const ClipConfig *c = &m->cfg;
    if (T < 1 || T > c->context_length)
        return laic_error("clip: prompt length %d outside [1,%d] (the context length)", T,
                          c->context_length);
    int Tr = 0;   // truncated length: longest EOT + 1
    for (int b = 0; b < B; b++) {
        if (eot[b] < 0 || eot[b] >= T)
            return laic_error("clip: EOT position %d of prompt %d outside [0,%d)", (int)eot[b], b,
                              T);
        if (eot[b] + 1 > Tr) Tr = eot[b] + 1;
    }
    const OpsBackend *o = m->ops;
    int C = c->text_width;
    size_t row = (size_t)Tr * C;
    for (int b = 0; b < B; b++)
        o->to_device(m->a.x + b * row, embeds + (size_t)b * T * C, row * sizeof(float));
    o->pos_add_forward(m->a.x, m->a.x, m->w.txt_pos, B, Tr, C);
    text_tail(m, eot, B, Tr, out);
    return 0;
}
