/*
 * clip.c — the two CLIP encoders (host/model/clip.h) as sequences of backend ops (host/ops.h).
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
 * - Device memory is planned up front (clip_model_bytes); when a backend allocation fails the
 *   error names the largest max_batch that would have fitted (clip_oom_error). In a bf16 matmul
 *   mode on CUDA the model also keeps a bf16 copy of the parameter arena, converted once here.
 * - Training mode (clip_model_create_train): a second backend allocation, carved by
 *   fill_in_train_sizes / malloc_and_point_train, keeps what the text backward needs from the
 *   last text forward (per layer: the residual stream in and after attention, LayerNorm mean /
 *   rstd, qkv, attention probabilities, pre-GELU MLP activations; ln_final's statistics) plus
 *   the gradient buffers. clip_text_backward then runs the tower backwards without recomputing
 *   anything. An inference model allocates none of it and runs the very same op sequence.
 *
 * - Vision training (clip_model_create_vision_train, issue 16): trainable tensors in one arena
 *   of fp32 master weights with a gradient twin (the model's pointers point there), a third
 *   allocation (VisActs, fill_in_vis_sizes / malloc_and_point_vis) for the activations the image
 *   backward reads, saved from the lowest block the backward reaches (all blocks with LoRA; k for
 *   full_last_k), or only block inputs under recompute. The image forward is the inference op
 *   sequence plus the LoRA terms; clip_image_backward accumulates every weight gradient.
 *   clip_vision_train_plan is exactly what is allocated (tests/train/test_vit_train.c).
 * - One code path: the *_dev entry points only enqueue ops on backend pointers (no host copy,
 *   no synchronisation: a CUDA graph can capture them); the host-pointer functions are thin
 *   wrappers (copy in, _dev, copy out, synchronise). The EOT indices a forward gathered with are
 *   remembered (bwd_eot) for the backward's scatter, so nothing is re-uploaded there.
 *
 * Letters (clip.h): B batch, T tokens in the running sequence, C width, H MLP width,
 * NH heads, S image size, P patch, G = S/P, NP = G*G patches, L context, E embed dim.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/clip.h"
#include "io/err.h"
#include "io/safetensors.h"
#include "rng.h"
#ifdef LAIC_CUDA
#include "../kernels/ops_cuda.h"
#endif

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

// Text-tower training state (TrainActs below is per layer l < NL, NL = text_layers; each slot is
// sized for max_batch rows of the full context L, and a truncated run uses its first B*T rows).
#define NUM_TRAIN_TENSORS 16
typedef struct {
    float *x;          // (NL+1, B, L, C)      residual stream entering layer l; [NL] = output
    float *xmid;       // (NL, B, L, C)        after the attention residual (ln_2's input)
    float *mean1;      // (NL, B, L)           ln_1 statistics
    float *rstd1;      // (NL, B, L)
    float *mean2;      // (NL, B, L)           ln_2 statistics
    float *rstd2;      // (NL, B, L)
    float *qkv;        // (NL, B, L, 3C)
    float *att;        // (NL, B, NH, L, L)    softmax probabilities
    float *fch_pre;    // (NL, B, L, H)        MLP hidden before QuickGELU
    float *stat_f;     // (2, B)               ln_final mean then rstd
    // gradients (one layer's worth, reused layer after layer)
    float *dx;         // (B, L, C)            d residual stream
    float *dln;        // (B, L, C)            d LayerNorm output
    float *dqkv;       // (B, L, 3C)
    float *dattn;      // (B, L, C)            d attention output (heads concatenated)
    float *dfch;       // (B, L, H)
    float *dsmall;     // (B, E + 2C)          dfeat (B,E), dpooled_ln (B,C), dpooled (B,C)
} TrainActs;
_Static_assert(sizeof(TrainActs) == NUM_TRAIN_TENSORS * sizeof(float *), "TrainActs pointer count");

// Image-tower training state (issue 16; clip_model_create_vision_train). The saved tensors hold
// blocks vstop..NL-1 (NS slots; one under recompute), the block inputs every one of them (NX =
// NL - vstop + 1 slots, the last = the tower's output). Gradient buffers are one block's worth,
// reused block after block (text's TrainActs habit). Sized for max_batch rows of T = NP + 1.
#define NUM_VIS_TENSORS 20
typedef struct {
    float *x;          // (NX, B, T, C)      residual stream entering block vstop+i; [NX-1] = output
    float *xmid;       // (NS, B, T, C)      after the attention residual (ln_2's input)
    float *stats;      // (NS, 4, B*T)       mean1, rstd1, mean2, rstd2
    float *qkv;        // (NS, B, T, 3C)     in_proj output, LoRA included
    float *att;        // (NS, B, NH, T, T)  softmax probabilities
    float *attn;       // (NS, B, T, C)      attention output, heads concatenated
    float *fch_pre;    // (NS, B, T, H)      MLP hidden before QuickGELU
    float *lora_h;     // (NS, 2, B*T, r)    LoRA D x of q then v               [LoRA]
    float *xemb;       // (B, T, C)          embeddings before ln_pre            [stem / dpixels]
    float *stat_pre;   // (2, B*T)           ln_pre mean then rstd               [stem / dpixels]
    float *stat_post;  // (2, B)             ln_post mean then rstd
    // gradients (one block's worth)
    float *dx;         // (B, T, C)          d residual stream
    float *dln;        // (B, T, C)          d LayerNorm output
    float *lnbuf;      // (B, T, C)          a LayerNorm output recomputed for a weight gradient
    float *dqkv;       // (B, T, 3C)
    float *dattn;      // (B, T, C)
    float *dfch;       // (B, T, H)          d MLP hidden (first: the GELU output, for c_proj's dW)
    float *dh;         // (B*T, r)           LoRA scratch                        [LoRA]
    float *dsmall;     // (B, E + 2C)        dfeat, dpooled_ln, dpooled
    float *dpatches;   // (B*NP, 3*P*P)      d patches                           [dpixels]
} VisActs;
_Static_assert(sizeof(VisActs) == NUM_VIS_TENSORS * sizeof(float *), "VisActs pointer count");

// One block's LoRA on q and v (pointers into the trainable arena, or into its gradient twin).
typedef struct {
    float *q_down, *q_up, *v_down, *v_up;   // (r,C), (C,r), (r,C), (C,r)
} ClipLora;

struct ClipModel {
    ClipConfig cfg;
    const OpsBackend *ops;
    ClipWeights w;         // pointers into the backend's parameters
    float *dev_params;     // the backend copy of the arena; NULL when aliasing host weights
    uint16_t *dev_bf16;    // (n_params) bf16 twin of dev_params (CUDA bf16 modes), else NULL
    int mm_algo;           // the CUDA matmul mode it was created in (use_precision); -1 on the CPU
    int max_batch;
    ClipActs a;
    float *act_mem;        // the one activation allocation (backend memory)
    int32_t *dev_ints;     // (B*L + B) tokens then gather indices, in backend memory
    int32_t *host_ints;    // (B*L + B) host staging for dev_ints
    // training mode (NULL train_mem: inference only)
    TrainActs t;
    float *train_mem;      // the one training allocation (backend memory)
    int bwd_B, bwd_T, bwd_Tr;   // the last text forward: batch, caller's length, truncated length
    const int32_t *bwd_eot;     // (bwd_B) its EOT positions, backend memory (the backward's gather)
    // image-tower training (NULL vis_mem: none); see VisActs
    ClipVisionTrainSpec spec;
    int vstop;             // lowest block the backward reaches (vision_layers: none)
    int bwd_bf16;          // backward GEMMs in bf16 (CUDA, a bf16 model)
    VisActs v;
    float *vis_mem;        // the one vision-training activation allocation (backend memory)
    float *tmem;           // (2, n_train) trainable master weights then their gradients
    size_t n_train;
    ClipTensorInfo *tinfo; // (n_tinfo) the trainable tensors, host memory
    int n_tinfo;
    ClipLora lora[CLIP_MAX_LAYERS], glora[CLIP_MAX_LAYERS];   // adapters and their gradients
    ClipWeights gw;        // gradient pointers of trainable base tensors (NULL: frozen)
    int vis_B;             // images in the last image forward (0: none since creation)
};

static int imax(int a, int b) { return a > b ? a : b; }

// vision_only: a vision-training model, which never runs the text tower (issue 16).
static void fill_in_act_sizes(size_t sizes[NUM_ACT_TENSORS], const ClipConfig *c, int B,
                              int vision_only) {
    size_t S = (size_t)c->image_size, P = (size_t)c->patch_size, G = S / P;
    size_t tok_v = (size_t)B * (G * G + 1), tok_t = vision_only ? 0 : (size_t)B * c->context_length;
    size_t N = tok_v > tok_t ? tok_v : tok_t;   // rows of the larger tower
    size_t C = vision_only ? (size_t)c->vision_width : (size_t)imax(c->vision_width, c->text_width);
    size_t H = vision_only ? (size_t)c->vision_mlp : (size_t)imax(c->vision_mlp, c->text_mlp);
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

static void fill_in_train_sizes(size_t sizes[NUM_TRAIN_TENSORS], const ClipConfig *c, int B) {
    size_t NL = (size_t)c->text_layers, L = (size_t)c->context_length, C = (size_t)c->text_width;
    size_t H = (size_t)c->text_mlp, NH = (size_t)c->text_heads, E = (size_t)c->embed_dim;
    size_t N = (size_t)B * L;   // rows of one layer at the full context
    sizes[0] = (NL + 1) * N * C;           // x
    sizes[1] = NL * N * C;                 // xmid
    sizes[2] = sizes[3] = sizes[4] = sizes[5] = NL * N;   // mean1 rstd1 mean2 rstd2
    sizes[6] = NL * N * 3 * C;             // qkv
    sizes[7] = NL * (size_t)B * NH * L * L;   // att
    sizes[8] = NL * N * H;                 // fch_pre
    sizes[9] = 2 * (size_t)B;              // stat_f
    sizes[10] = N * C;                     // dx
    sizes[11] = N * C;                     // dln
    sizes[12] = N * 3 * C;                 // dqkv
    sizes[13] = N * C;                     // dattn
    sizes[14] = N * H;                     // dfch
    sizes[15] = (size_t)B * (E + 2 * C);   // dsmall
}

static float *malloc_and_point_train(const OpsBackend *ops, TrainActs *t,
                                     const size_t sizes[NUM_TRAIN_TENSORS]) {
    size_t total = 0;
    for (int i = 0; i < NUM_TRAIN_TENSORS; i++) total += sizes[i];
    float *mem = ops->alloc(total * sizeof(float));
    if (!mem) return NULL;
    float **ptrs[NUM_TRAIN_TENSORS] = {&t->x,    &t->xmid,   &t->mean1, &t->rstd1,
                                       &t->mean2, &t->rstd2, &t->qkv,   &t->att,
                                       &t->fch_pre, &t->stat_f, &t->dx, &t->dln,
                                       &t->dqkv, &t->dattn, &t->dfch,  &t->dsmall};
    float *p = mem;
    for (int i = 0; i < NUM_TRAIN_TENSORS; i++) {
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

// 1 when the backend will multiply in bf16 (then the model keeps resident bf16 weights).
static int backend_bf16(const OpsBackend *ops) {
#ifdef LAIC_CUDA
    if (ops == &ops_cuda) {
        int a = ops_cuda_get_matmul();
        return a == LAIC_MM_BF16_CUBLAS || a == LAIC_MM_BF16_WMMA;
    }
#endif
    (void)ops;
    return 0;
}

// Free device memory before the model's allocations (for the out-of-memory message); 0 when the
// backend cannot tell (the CPU).
static size_t backend_free_bytes(const OpsBackend *ops) {
#ifdef LAIC_CUDA
    size_t f = 0;
    if (ops == &ops_cuda && ops_cuda_mem_info(&f, NULL) == 0) return f;
#endif
    (void)ops;
    return 0;
}

static int vision_train_setup(ClipModel *m, const ClipWeights *w, const ClipVisionTrainSpec *spec,
                              uint64_t seed);
static size_t vision_param_count(const ClipConfig *c);

// train: 1 = the text tower's training state. vspec (NULL: none): a vision-training model
// (issue 16), which holds only the visual parameters on a device and never runs the text tower.
static ClipModel *model_create(const ClipWeights *w, const OpsBackend *ops, int max_batch,
                               int train, const ClipVisionTrainSpec *vspec, uint64_t seed) {
    if (!w || !ops) {
        laic_error("clip: no weights or no backend");
        return NULL;
    }
    if (max_batch < 1) {
        laic_error("clip: max_batch must be >= 1 (got %d)", max_batch);
        return NULL;
    }
    if (check_config(&w->cfg)) return NULL;
    if (vspec && clip_spec_check(&w->cfg, vspec)) return NULL;
    const int on_device = strcmp(ops->name, "cpu") != 0;
    const int bf16 = on_device && backend_bf16(ops);
    const size_t free_before = on_device ? backend_free_bytes(ops) : 0;
    ClipModel *m = callocCheck(1, sizeof *m);
    m->cfg = w->cfg;
    m->ops = ops;
    m->w = *w;
    m->max_batch = max_batch;
    m->mm_algo = -1;
#ifdef LAIC_CUDA
    if (ops == &ops_cuda) m->mm_algo = ops_cuda_get_matmul();
#endif
    if (on_device) {
        // one copy of the arena (a vision-training model: its visual prefix, FORMAT.md order),
        // then every pointer moves by the same offset
        const size_t ncopy = vspec ? vision_param_count(&w->cfg) : w->n_params;
        float **ptrs[12 * 2 * CLIP_MAX_LAYERS + 16];
        int np = weight_ptrs(&m->w, ptrs, (int)(sizeof ptrs / sizeof ptrs[0]));
        for (int i = 0; i < np; i++) {
            float *p = *ptrs[i];
            if (!w->params || !p || p < w->params || p >= w->params + w->n_params ||
                ncopy > w->n_params) {
                laic_error("clip: weight pointer %d lies outside the parameter arena", i);
                free(m);
                return NULL;
            }
        }
        m->dev_params = ops->alloc(ncopy * sizeof(float));
        if (!m->dev_params) goto oom;
        ops->to_device(m->dev_params, w->params, ncopy * sizeof(float));
        for (int i = 0; i < np; i++) {
            size_t off = (size_t)(*ptrs[i] - w->params);
            *ptrs[i] = off < ncopy ? m->dev_params + off : NULL;   // text tensors of a vision model
        }
        m->w.params = m->dev_params;
        m->w.n_params = ncopy;
#ifdef LAIC_CUDA
        if (bf16) {   // weights rounded to bf16 once, not on every matmul
            m->dev_bf16 = ops->alloc(ncopy * sizeof(uint16_t));
            if (!m->dev_bf16) goto oom;
            ops_cuda_f32_to_bf16(m->dev_bf16, m->dev_params, ncopy);
            ops_cuda_set_bf16_weights(m->dev_params, ncopy, m->dev_bf16);
        }
#endif
    }
    size_t sizes[NUM_ACT_TENSORS];
    fill_in_act_sizes(sizes, &m->cfg, max_batch, vspec != NULL);
    m->act_mem = malloc_and_point_acts(ops, &m->a, sizes);
    if (!m->act_mem) goto oom;
    size_t nints = (size_t)max_batch * m->cfg.context_length + (size_t)max_batch;
    m->dev_ints = ops->alloc(nints * sizeof(int32_t));
    if (!m->dev_ints) goto oom;
    m->host_ints = mallocCheck(nints * sizeof(int32_t));
    if (train) {
        size_t tsizes[NUM_TRAIN_TENSORS];
        fill_in_train_sizes(tsizes, &m->cfg, max_batch);
        m->train_mem = malloc_and_point_train(ops, &m->t, tsizes);
        if (!m->train_mem) goto oom;
    }
    if (vspec) {
        m->bwd_bf16 = bf16;
        if (vision_train_setup(m, w, vspec, seed)) goto oom;   // fails only allocating
    }
    return m;
oom:
    // the backend recorded what failed; on a device, say instead which batch would fit
    if (on_device && free_before) {
        if (vspec) {
            ClipTrainPlan p;
            clip_vision_train_plan(&w->cfg, vspec, max_batch, 1, bf16, 0, &p);
            int fit = free_before > CLIP_DEVICE_RESERVE
                          ? clip_vision_train_fit(&w->cfg, vspec, 1, bf16, 0,
                                                  free_before - CLIP_DEVICE_RESERVE)
                          : 0;
            laic_error("clip: out of device memory: a vision-training model of max_batch %d "
                       "needs %.0f MiB, %.0f MiB free ---> HINT: use a batch of %d or less%s",
                       max_batch, p.total / 1048576.0, free_before / 1048576.0, fit,
                       vspec->recompute ? "" : ", or train.recompute=true");
        } else {
            clip_oom_error(&w->cfg, max_batch, free_before, 1, bf16, train);
        }
    }
    clip_model_free(m);
    return NULL;
}

ClipModel *clip_model_create(const ClipWeights *w, const OpsBackend *ops, int max_batch) {
    return model_create(w, ops, max_batch, 0, NULL, 0);
}

ClipModel *clip_model_create_train(const ClipWeights *w, const OpsBackend *ops, int max_batch) {
    return model_create(w, ops, max_batch, 1, NULL, 0);
}

ClipModel *clip_model_create_train_in(const ClipWeights *w, const OpsBackend *ops, int max_batch,
                                      const char *precision) {
    if (!precision) return model_create(w, ops, max_batch, 1, NULL, 0);
#ifdef LAIC_CUDA
    const int before = ops == &ops_cuda ? ops_cuda_get_matmul() : -1;
#endif
    if (clip_set_precision(ops, precision, NULL)) return NULL;
    ClipModel *m = model_create(w, ops, max_batch, 1, NULL, 0);
#ifdef LAIC_CUDA
    if (before >= 0) ops_cuda_set_matmul(ops_cuda_matmul_name(before));   // process-wide: restore
#endif
    return m;
}

void clip_model_free(ClipModel *m) {
    if (!m) return;
    if (m->tmem) m->ops->free(m->tmem);
    if (m->vis_mem) m->ops->free(m->vis_mem);
    free(m->tinfo);
    if (m->train_mem) m->ops->free(m->train_mem);
    if (m->dev_ints) m->ops->free(m->dev_ints);
    if (m->act_mem) m->ops->free(m->act_mem);
#ifdef LAIC_CUDA
    if (m->dev_bf16) ops_cuda_clear_bf16_weights(m->dev_params);
#endif
    if (m->dev_bf16) m->ops->free(m->dev_bf16);
    if (m->dev_params) m->ops->free(m->dev_params);
    free(m->host_ints);
    free(m);
}

// --- the transformer ----------------------------------------------------------------------

// What one block saves for the backward (training mode); NULL in inference.
typedef struct {
    float *x_out;                       // (B,T,C) the block's output (the next layer's x_in)
    float *x_mid;                       // (B,T,C)
    float *mean1, *rstd1, *mean2, *rstd2;   // (B*T)
    float *qkv;                         // (B,T,3C)
    float *att;                         // (B,NH,T,T)
    float *fch_pre;                     // (B,T,H)
    float *attn;                        // (B,T,C) attention output; NULL: not saved (text)
    float *lora_h;                      // (2,B*T,r) LoRA D x of q, v; NULL: no LoRA
} BlockSave;

// A block's LoRA in the forward: the adapters, scale α/r and rank; NULL: none.
typedef struct {
    const ClipLora *w;
    float scale;
    int r;
} BlockLora;

// N = B*T rows of width C through one pre-LN residual block, in place on x (B,T,C); ln
// (B,T,C) is scratch and must not alias x. With s, x is left unchanged and the block writes
// s->x_mid and s->x_out instead, keeping every activation the backward reads; the op sequence
// (and so every value) is the same either way.
// With lora (which needs s->lora_h), q and v get (α/r)·U D ln_1(x) on top of in_proj (SPEC
// §9.3 stage 2); s->attn, when set, keeps the attention output for out_proj's weight gradient.
static void block_forward(ClipModel *m, const ClipBlockWeights *bw, float *x, float *ln, int B,
                          int T, int C, int NH, int H, int causal, const BlockSave *s,
                          const BlockLora *lora) {
    const OpsBackend *o = m->ops;
    ClipActs *a = &m->a;
    int N = B * T;
    float *xmid = s ? s->x_mid : x, *xout = s ? s->x_out : x;
    float *qkv = s ? s->qkv : a->qkv, *fpre = s ? s->fch_pre : a->fch;
    float *attn = s && s->attn ? s->attn : a->attn;
    // x = x + out_proj(attn(ln_1(x)))
    o->layernorm_forward(ln, s ? s->mean1 : NULL, s ? s->rstd1 : NULL, x, bw->ln_1_w,
                         bw->ln_1_b, N, C);
    o->matmul_forward(qkv, ln, bw->attn_in_w, bw->attn_in_b, N, C, 3 * C);
    if (lora) {   // q = qkv[:, 0:C], v = qkv[:, 2C:3C] (row stride 3C)
        float *h = s->lora_h;
        o->lora_forward(qkv, h, ln, lora->w->q_down, lora->w->q_up, lora->scale, N, C, C,
                        lora->r, 3 * C);
        o->lora_forward(qkv + 2 * C, h + (size_t)N * lora->r, ln, lora->w->v_down,
                        lora->w->v_up, lora->scale, N, C, C, lora->r, 3 * C);
    }
    o->attention_forward(attn, s ? s->att : NULL, qkv, B, T, C, NH, causal);
    o->matmul_forward(a->tmp, attn, bw->attn_out_w, bw->attn_out_b, N, C, C);
    o->residual_forward(xmid, x, a->tmp, (size_t)N * C);
    // x = x + c_proj(quickgelu(c_fc(ln_2(x))))
    o->layernorm_forward(ln, s ? s->mean2 : NULL, s ? s->rstd2 : NULL, xmid, bw->ln_2_w,
                         bw->ln_2_b, N, C);
    o->matmul_forward(fpre, ln, bw->fc_w, bw->fc_b, N, C, H);
    o->quickgelu_forward(a->fch, fpre, (size_t)N * H);
    o->matmul_forward(a->tmp, a->fch, bw->proj_w, bw->proj_b, N, H, C);
    o->residual_forward(xout, xmid, a->tmp, (size_t)N * C);
}

// Layer l's slots of the training arena for a run of B rows of T tokens.
static BlockSave train_slots(const ClipModel *m, int l, int B, int T) {
    const ClipConfig *c = &m->cfg;
    const TrainActs *t = &m->t;
    size_t L = (size_t)c->context_length, C = (size_t)c->text_width;
    size_t N = (size_t)m->max_batch * L;   // slot stride in rows
    size_t NH = (size_t)c->text_heads;
    (void)B;
    (void)T;
    BlockSave s = {
        .x_out = t->x + (l + 1) * N * C,
        .x_mid = t->xmid + l * N * C,
        .mean1 = t->mean1 + l * N, .rstd1 = t->rstd1 + l * N,
        .mean2 = t->mean2 + l * N, .rstd2 = t->rstd2 + l * N,
        .qkv = t->qkv + l * N * 3 * C,
        .att = t->att + l * (size_t)m->max_batch * NH * L * L,
        .fch_pre = t->fch_pre + l * N * (size_t)c->text_mlp,
    };
    return s;
}

// A model multiplies in the matmul mode it was created in. The switch of kernels/ops_cuda.h is
// process-wide, so each entry point selects its model's mode (and its resident bf16 weights)
// first: a bf16 image tower and an fp32 text tower being trained can then run side by side.
// Host-side state only, so it is also right inside a CUDA-graph capture (the capture records
// the kernels the mode selects).
static void use_precision(const ClipModel *m) {
#ifdef LAIC_CUDA
    if (m->ops != &ops_cuda) return;
    if (ops_cuda_get_matmul() != m->mm_algo) ops_cuda_set_matmul(ops_cuda_matmul_name(m->mm_algo));
    if (m->dev_bf16) ops_cuda_set_bf16_weights(m->dev_params, m->w.n_params, m->dev_bf16);
    if (ops_cuda_get_backward_bf16() != m->bwd_bf16) ops_cuda_set_backward_bf16(m->bwd_bf16);
#else
    (void)m;
#endif
}

static int check_batch(const ClipModel *m, int B) {
    if (B < 1 || B > m->max_batch)
        return laic_error("clip: batch of %d outside [1,%d] (the model's max_batch) ---> HINT: "
                          "split the input or create the model with a larger max_batch",
                          B, m->max_batch);
    return 0;
}

static void vision_train_forward(ClipModel *m, const float *pixels, int B, float *out);

int clip_encode_images_dev(ClipModel *m, const float *pixels, int B, float *out) {
    if (check_batch(m, B)) return -1;
    use_precision(m);
    if (m->vis_mem) {   // a vision-training model records what its backward needs
        vision_train_forward(m, pixels, B, out);
        return 0;
    }
    const OpsBackend *o = m->ops;
    const ClipConfig *c = &m->cfg;
    const ClipWeights *w = &m->w;
    ClipActs *a = &m->a;
    int S = c->image_size, P = c->patch_size, G = S / P, NP = G * G, T = NP + 1;
    int C = c->vision_width;

    // conv1 (kernel = stride = P, no bias) as im2col + matmul
    o->im2col_forward(a->patches, pixels, B, S, P);
    o->matmul_forward(a->tmp, a->patches, w->conv1_w, NULL, B * NP, 3 * P * P, C);
    o->vision_embed_forward(a->x, a->tmp, w->class_emb, w->vis_pos, B, NP, C);
    // ln_pre: written to ln, which then is the residual stream (x becomes the scratch)
    o->layernorm_forward(a->ln, NULL, NULL, a->x, w->ln_pre_w, w->ln_pre_b, B * T, C);
    float *x = a->ln;
    for (int l = 0; l < c->vision_layers; l++)
        block_forward(m, &w->vblocks[l], x, a->x, B, T, C, c->vision_heads, c->vision_mlp, 0,
                      NULL, NULL);
    m->bwd_B = 0;   // the shared activations (pooled) no longer hold a text forward
    // class token -> ln_post -> proj (memset0 is an op, asynchronous on a device: capturable)
    int32_t *idx = m->dev_ints;   // (B) zeros
    o->memset0(idx, (size_t)B * sizeof(int32_t));
    o->gather_rows_forward(a->pooled, x, idx, B, T, C);
    o->layernorm_forward(a->pooled_ln, NULL, NULL, a->pooled, w->ln_post_w, w->ln_post_b, B, C);
    o->matmul_forward(out, a->pooled_ln, w->vis_proj, NULL, B, C, c->embed_dim);
    return 0;
}

int clip_encode_images(ClipModel *m, const float *pixels, int B, float *out) {
    if (check_batch(m, B)) return -1;
    const OpsBackend *o = m->ops;
    const ClipConfig *c = &m->cfg;
    o->to_device(m->a.pixels, pixels, (size_t)B * 3 * c->image_size * c->image_size * sizeof(float));
    if (clip_encode_images_dev(m, m->a.pixels, B, m->a.feat)) return -1;
    o->to_host(out, m->a.feat, (size_t)B * c->embed_dim * sizeof(float));
    o->synchronize();
    return 0;
}

// Where a text forward starts: (B,T,Ct) embeddings + positions go here (the training arena's
// layer-0 slot in training mode, so the backward finds every layer's input).
static float *text_x0(ClipModel *m) { return m->train_mem ? m->t.x : m->a.x; }

// Shared tail of every text entry point: text_x0 (B,T,Ct) already holds embeddings +
// positions; eot (B) int32 in backend memory, every entry < T; out (B,E) backend memory. Ops
// only: no host copy, no synchronisation. Records the forward for the backward.
static void text_tail(ClipModel *m, const int32_t *eot, int B, int T, float *out) {
    const OpsBackend *o = m->ops;
    const ClipConfig *c = &m->cfg;
    const ClipWeights *w = &m->w;
    ClipActs *a = &m->a;
    int C = c->text_width;
    float *x = text_x0(m);
    for (int l = 0; l < c->text_layers; l++) {
        BlockSave s;
        if (m->train_mem) s = train_slots(m, l, B, T);
        block_forward(m, &w->tblocks[l], x, a->ln, B, T, C, c->text_heads, c->text_mlp, 1,
                      m->train_mem ? &s : NULL, NULL);
        if (m->train_mem) x = s.x_out;
    }
    // ln_final is per row, so gathering the EOT rows first gives the same result on B rows
    o->gather_rows_forward(a->pooled, x, eot, B, T, C);
    float *mf = m->train_mem ? m->t.stat_f : NULL, *rf = m->train_mem ? m->t.stat_f + B : NULL;
    o->layernorm_forward(a->pooled_ln, mf, rf, a->pooled, w->ln_final_w, w->ln_final_b, B, C);
    o->matmul_forward(out, a->pooled_ln, w->text_proj, NULL, B, C, c->embed_dim);
    m->bwd_B = B;
    m->bwd_T = T;
    m->bwd_Tr = T;
    m->bwd_eot = eot;
}

// The host wrappers' EOT slot in backend memory (after the B*L token ids).
static int32_t *eot_slot(ClipModel *m) {
    return m->dev_ints + (size_t)m->max_batch * m->cfg.context_length;
}

// A vision-training model holds no text tower (its activations are sized for images only).
static int check_text(const ClipModel *m) {
    if (m->vis_mem)
        return laic_error("clip: a vision-training model runs the image tower only ---> HINT: "
                          "encode text with a separate model (clip_model_create)");
    return 0;
}

int clip_encode_text(ClipModel *m, const int32_t *tokens, int B, int L, float *out) {
    if (check_text(m) || check_batch(m, B)) return -1;
    use_precision(m);
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
    o->token_embed_forward(text_x0(m), m->dev_ints, m->w.tok_emb, m->w.txt_pos, B, T,
                           c->text_width);
    o->to_device(eot_slot(m), eot, (size_t)B * sizeof(int32_t));
    text_tail(m, eot_slot(m), B, T, m->a.feat);
    m->bwd_T = L;   // the backward pads dembeds to the caller's length
    o->to_host(out, m->a.feat, (size_t)B * c->embed_dim * sizeof(float));
    o->synchronize();
    return 0;
}

int clip_encode_text_embeds_dev(ClipModel *m, const float *embeds, const int32_t *eot, int B,
                                int T, int T_run, float *out) {
    if (check_text(m) || check_batch(m, B)) return -1;
    use_precision(m);
    const ClipConfig *c = &m->cfg;
    if (T < 1 || T > c->context_length || T_run < 1 || T_run > T)
        return laic_error("clip: prompt length %d / run length %d outside 1 <= run <= length <= "
                          "%d (the context length)", T, T_run, c->context_length);
    const OpsBackend *o = m->ops;
    int C = c->text_width;
    float *x0 = text_x0(m);
    if (T_run == T) {
        o->pos_add_forward(x0, embeds, m->w.txt_pos, B, T, C);
    } else {   // keep positions 0..T_run-1 of each row, contiguous (backend copies: capturable)
        size_t row = (size_t)T_run * C;
        for (int b = 0; b < B; b++)
            o->copy(x0 + b * row, embeds + (size_t)b * T * C, row * sizeof(float));
        o->pos_add_forward(x0, x0, m->w.txt_pos, B, T_run, C);
    }
    text_tail(m, eot, B, T_run, out);
    m->bwd_T = T;
    return 0;
}

int clip_encode_text_embeds(ClipModel *m, const float *embeds, const int32_t *eot, int B, int T,
                            float *out) {
    if (check_text(m) || check_batch(m, B)) return -1;
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
    // the truncated rows go straight to the forward's input slot, so _dev runs in place there
    float *x0 = text_x0(m);
    for (int b = 0; b < B; b++)
        o->to_device(x0 + b * row, embeds + (size_t)b * T * C, row * sizeof(float));
    o->to_device(eot_slot(m), eot, (size_t)B * sizeof(int32_t));
    if (clip_encode_text_embeds_dev(m, x0, eot_slot(m), B, Tr, Tr, m->a.feat)) return -1;
    m->bwd_T = T;   // the backward pads dembeds to the caller's length
    o->to_host(out, m->a.feat, (size_t)B * c->embed_dim * sizeof(float));
    o->synchronize();
    return 0;
}

// --- text backward --------------------------------------------------------------------------
// The forward above, read bottom-up; each step quotes the forward line it differentiates.
// Checks that a backward can follow (host state only).
static int check_backward(const ClipModel *m) {
    if (!m->train_mem)
        return laic_error("clip: text backward needs a training model ---> HINT: create it "
                          "with clip_model_create_train");
    if (m->bwd_B < 1)
        return laic_error("clip: text backward without a preceding text forward");
    return 0;
}

// Everything but the positional embedding: leaves d x0 (B,Tr,C) in t->dx. dfe (B,E) is the
// feature gradient in backend memory. Ops only.
static void text_backward_core(ClipModel *m, const float *dfe) {
    const OpsBackend *o = m->ops;
    const ClipConfig *c = &m->cfg;
    const ClipWeights *w = &m->w;
    const ClipActs *a = &m->a;
    TrainActs *t = &m->t;
    int B = m->bwd_B, T = m->bwd_Tr;
    int C = c->text_width, E = c->embed_dim, H = c->text_mlp, NH = c->text_heads;
    int N = B * T;
    float *dpln = t->dsmall + (size_t)B * E;        // (B,C)
    float *dpool = dpln + (size_t)B * C;            // (B,C)
    // feat = matmul(pooled_ln, text_proj)
    o->matmul_backward(dpln, dfe, w->text_proj, B, C, E);
    // pooled_ln = layernorm(pooled, ln_final)   (layernorm_backward accumulates: zero first)
    o->memset0(dpool, (size_t)B * C * sizeof(float));
    o->layernorm_backward(dpool, dpln, a->pooled, w->ln_final_w, t->stat_f, t->stat_f + B, B, C);
    // pooled = gather_rows(x, eot)
    o->gather_rows_backward(t->dx, dpool, m->bwd_eot, B, T, C);
    for (int l = c->text_layers - 1; l >= 0; l--) {
        const ClipBlockWeights *bw = &w->tblocks[l];
        BlockSave s = train_slots(m, l, B, T);
        const float *x_in = t->x + (size_t)l * m->max_batch * c->context_length * C;
        // x_out = residual(x_mid, matmul(quickgelu(fch_pre), proj)): d x_mid gets dx as is
        // (it is already in t->dx) plus the MLP branch below
        o->matmul_backward(t->dfch, t->dx, bw->proj_w, N, H, C);
        // fch = quickgelu(fch_pre)
        o->quickgelu_backward(t->dfch, t->dfch, s.fch_pre, (size_t)N * H);
        // fch_pre = matmul(ln, fc)
        o->matmul_backward(t->dln, t->dfch, bw->fc_w, N, C, H);
        // ln = layernorm(x_mid, ln_2)   (+= onto the residual gradient)
        o->layernorm_backward(t->dx, t->dln, s.x_mid, bw->ln_2_w, s.mean2, s.rstd2, N, C);
        // x_mid = residual(x_in, matmul(attn, out_proj))
        o->matmul_backward(t->dattn, t->dx, bw->attn_out_w, N, C, C);
        // attn = attention(qkv), causal
        o->attention_backward(t->dqkv, t->dattn, s.qkv, s.att, B, T, C, NH, 1);
        // qkv = matmul(ln, in_proj)
        o->matmul_backward(t->dln, t->dqkv, bw->attn_in_w, N, C, 3 * C);
        // ln = layernorm(x_in, ln_1)
        o->layernorm_backward(t->dx, t->dln, x_in, bw->ln_1_w, s.mean1, s.rstd1, N, C);
    }
}

int clip_text_backward_dev(ClipModel *m, const float *dfeat, float *dembeds) {
    if (check_backward(m)) return -1;
    const OpsBackend *o = m->ops;
    TrainActs *t = &m->t;
    int B = m->bwd_B, T = m->bwd_Tr, Tu = m->bwd_T, C = m->cfg.text_width;
    text_backward_core(m, dfeat);
    // x0 = pos_add(embeds, txt_pos): dembeds = dx (the positions are frozen)
    if (Tu == T) {
        o->pos_add_backward(dembeds, NULL, t->dx, B, T, C);
        return 0;
    }
    o->pos_add_backward(t->dx, NULL, t->dx, B, T, C);
    // positions past the longest EOT were cut off by the exact causal truncation: gradient 0
    size_t row = (size_t)T * C;
    for (int b = 0; b < B; b++) {
        float *dst = dembeds + (size_t)b * Tu * C;
        o->copy(dst, t->dx + b * row, row * sizeof(float));
        o->memset0(dst + row, (size_t)(Tu - T) * C * sizeof(float));
    }
    return 0;
}

int clip_text_backward(ClipModel *m, const float *dfeat, float *dembeds) {
    if (check_backward(m)) return -1;
    const OpsBackend *o = m->ops;
    TrainActs *t = &m->t;
    size_t nd = (size_t)m->bwd_B * m->bwd_T * m->cfg.text_width;
    o->to_device(t->dsmall, dfeat, (size_t)m->bwd_B * m->cfg.embed_dim * sizeof(float));
    // dln (B,L,C) is free once the core is done: it stages dembeds (B,Tu,C), Tu <= L
    if (clip_text_backward_dev(m, t->dsmall, t->dln)) return -1;
    o->to_host(dembeds, t->dln, nd * sizeof(float));
    o->synchronize();
    return 0;
}

// --- image-encoder training (issue 16) ----------------------------------------------------------
// The image forward above with trainable tensors, LoRA on q and v, and saved activations, and
// its backward with weight gradients. The trainable tensors live in m->tmem (master weights, then
// the gradient twin); m->w's pointers of trainable tensors point there, m->gw's into the twin.

#define STEM_TENSORS 5    // conv1, class_emb, vis_pos, ln_pre w/b: FORMAT.md's first tensors

ClipVisionTrainSpec clip_spec_lora(int r, float alpha) {
    return (ClipVisionTrainSpec){.lora_rank = r, .lora_alpha = alpha, .first_block = -1};
}

ClipVisionTrainSpec clip_spec_full_last_k(int k) {
    return (ClipVisionTrainSpec){.first_block = k, .train_ln_post = 1, .train_proj = 1};
}

ClipVisionTrainSpec clip_spec_all(void) {
    return (ClipVisionTrainSpec){.first_block = 0, .train_stem = 1, .train_ln_post = 1,
                                 .train_proj = 1};
}

// first_block as a block index: NL when no block trains all its tensors.
static int spec_first_block(const ClipConfig *c, const ClipVisionTrainSpec *s) {
    return s->first_block < 0 || s->first_block > c->vision_layers ? c->vision_layers
                                                                   : s->first_block;
}

int clip_spec_check(const ClipConfig *c, const ClipVisionTrainSpec *s) {
    if (!s) return laic_error("clip: no training spec");
    if (s->lora_rank < 0 || s->lora_rank > 65536)
        return laic_error("clip: LoRA rank %d outside [0,65536] (0 = no LoRA)", s->lora_rank);
    if (s->lora_rank > 0 && !(s->lora_alpha > 0.0f && s->lora_alpha < 1e30f))
        return laic_error("clip: LoRA alpha %g must be a positive finite number",
                          (double)s->lora_alpha);
    if (s->first_block < -1 || s->first_block > c->vision_layers)
        return laic_error("clip: first trainable block %d outside [-1,%d] (full_last_k needs k "
                          "in [0,%d]; -1 or %d = no block)",
                          s->first_block, c->vision_layers, c->vision_layers, c->vision_layers);
    if (s->lora_rank == 0 && spec_first_block(c, s) == c->vision_layers && !s->train_stem &&
        !s->train_ln_post && !s->train_proj)
        return laic_error("clip: the training spec makes no parameter trainable ---> HINT: use "
                          "LoRA (lora_rank >= 1), full_last_k, or the head (ln_post, proj)");
    return 0;
}

// The lowest block a backward may reach (vision_layers: none, only the head).
static int vision_stop(const ClipConfig *c, const ClipVisionTrainSpec *s) {
    int lo = spec_first_block(c, s);
    if (s->lora_rank > 0 || s->train_stem || s->dpixels) lo = 0;
    return lo;
}

// Floats of the visual prefix of the parameter arena (FORMAT.md: every visual.* tensor first).
static size_t vision_param_count(const ClipConfig *c) {
    int n = clip_weights_layout(c, NULL);
    ClipTensorInfo *lay = mallocCheck((size_t)n * sizeof *lay);
    clip_weights_layout(c, lay);
    size_t k = 0;
    for (int i = 0; i < n && !strncmp(lay[i].name, "visual.", 7); i++) k = lay[i].offset + lay[i].numel;
    free(lay);
    return k;
}

// The trainable tensors of spec, in arena order (LoRA per block, then the base tensors in
// FORMAT.md order): fills out (may be NULL) and src (layout index of each base tensor, -1 for
// LoRA; may be NULL); returns their number, *floats = the arena size.
static int train_table(const ClipConfig *c, const ClipVisionTrainSpec *s, ClipTensorInfo *out,
                       int *src, size_t *floats) {
    const int NL = c->vision_layers, fb = spec_first_block(c, s), r = s->lora_rank;
    const size_t C = (size_t)c->vision_width;
    int nl = clip_weights_layout(c, NULL), n = 0;
    ClipTensorInfo *lay = mallocCheck((size_t)nl * sizeof *lay);
    clip_weights_layout(c, lay);
    // FORMAT.md order: the stem, NL blocks of 12, ln_post w/b, proj
    const int post = STEM_TENSORS + 12 * NL;
    LAIC_ASSERT(!strcmp(lay[STEM_TENSORS - 1].name, "visual.ln_pre.bias") &&
                !strcmp(lay[post + 2].name, "visual.proj"));
    size_t off = 0;
    for (int l = 0; r > 0 && l < NL; l++)
        for (int j = 0; j < 4; j++) {
            if (out) {
                ClipTensorInfo *t = &out[n];
                memset(t, 0, sizeof *t);
                snprintf(t->name, sizeof t->name, "visual.transformer.resblocks.%d.attn.%s", l,
                         (const char *[]){"q_lora_down", "q_lora_up", "v_lora_down",
                                          "v_lora_up"}[j]);
                t->ndim = 2;
                t->shape[0] = j % 2 ? C : (size_t)r;
                t->shape[1] = j % 2 ? (size_t)r : C;
                t->offset = off;
                t->numel = (size_t)r * C;
            }
            if (src) src[n] = -1;
            n++;
            off += (size_t)r * C;
        }
    for (int i = 0; i <= post + 2; i++) {
        int keep = i < STEM_TENSORS ? s->train_stem
                   : i < post       ? (i - STEM_TENSORS) / 12 >= fb
                   : i < post + 2   ? s->train_ln_post
                                    : s->train_proj;
        if (!keep) continue;
        if (out) {
            out[n] = lay[i];
            out[n].offset = off;
        }
        if (src) src[n] = i;
        n++;
        off += lay[i].numel;
    }
    free(lay);
    if (floats) *floats = off;
    return n;
}

static void fill_in_vis_sizes(size_t sz[NUM_VIS_TENSORS], const ClipConfig *c,
                              const ClipVisionTrainSpec *s, int B) {
    const size_t NL = (size_t)c->vision_layers, stop = (size_t)vision_stop(c, s);
    const size_t G = (size_t)(c->image_size / c->patch_size), NP = G * G, T = NP + 1;
    const size_t N = (size_t)B * T, C = (size_t)c->vision_width, H = (size_t)c->vision_mlp;
    const size_t NH = (size_t)c->vision_heads, E = (size_t)c->embed_dim, r = (size_t)s->lora_rank;
    const size_t NS = NL == stop ? 0 : s->recompute ? 1 : NL - stop;
    const int stem = s->train_stem || s->dpixels, blocks = stop < NL || stem;
    sz[0] = (NL - stop + 1) * N * C;                 // x
    sz[1] = NS * N * C;                              // xmid
    sz[2] = NS * 4 * N;                              // stats
    sz[3] = NS * N * 3 * C;                          // qkv
    sz[4] = NS * (size_t)B * NH * T * T;             // att
    sz[5] = NS * N * C;                              // attn
    sz[6] = NS * N * H;                              // fch_pre
    sz[7] = NS * 2 * N * r;                          // lora_h
    sz[8] = stem ? N * C : 0;                        // xemb
    sz[9] = stem ? 2 * N : 0;                        // stat_pre
    sz[10] = 2 * (size_t)B;                          // stat_post
    sz[11] = blocks ? N * C : 0;                     // dx
    sz[12] = blocks ? N * C : 0;                     // dln
    sz[13] = blocks ? N * C : 0;                     // lnbuf
    sz[14] = stop < NL ? N * 3 * C : 0;              // dqkv
    sz[15] = stop < NL ? N * C : 0;                  // dattn
    sz[16] = stop < NL ? N * H : 0;                  // dfch
    sz[17] = N * r;                                  // dh
    sz[18] = (size_t)B * (E + 2 * C);                // dsmall
    sz[19] = s->dpixels ? (size_t)B * NP * 3 * (size_t)c->patch_size * c->patch_size : 0;
}

static float *malloc_and_point_vis(const OpsBackend *ops, VisActs *v,
                                   const size_t sz[NUM_VIS_TENSORS]) {
    size_t total = 0;
    for (int i = 0; i < NUM_VIS_TENSORS; i++) total += sz[i];
    float *mem = ops->alloc(total * sizeof(float));
    if (!mem) return NULL;
    float **ptrs[NUM_VIS_TENSORS] = {&v->x,     &v->xmid,   &v->stats,    &v->qkv,
                                     &v->att,   &v->attn,   &v->fch_pre,  &v->lora_h,
                                     &v->xemb,  &v->stat_pre, &v->stat_post, &v->dx,
                                     &v->dln,   &v->lnbuf,  &v->dqkv,     &v->dattn,
                                     &v->dfch,  &v->dh,     &v->dsmall,   &v->dpatches};
    float *p = mem;
    for (int i = 0; i < NUM_VIS_TENSORS; i++) {
        *ptrs[i] = sz[i] ? p : NULL;
        p += sz[i];
    }
    return mem;
}

// Creates the trainable arena (LoRA D ~ U(−1/√C, 1/√C) = kaiming_uniform_(a=√5) on (r,C), U = 0,
// base tensors copied from the host weights), re-points m->w / m->gw and carves VisActs.
static int vision_train_setup(ClipModel *m, const ClipWeights *w, const ClipVisionTrainSpec *spec,
                              uint64_t seed) {
    const OpsBackend *o = m->ops;
    const ClipConfig *c = &m->cfg;
    m->spec = *spec;
    m->vstop = vision_stop(c, spec);
    int nt = train_table(c, spec, NULL, NULL, NULL);
    m->tinfo = mallocCheck((size_t)(nt ? nt : 1) * sizeof *m->tinfo);
    int *src = mallocCheck((size_t)(nt ? nt : 1) * sizeof *src);
    m->n_tinfo = train_table(c, spec, m->tinfo, src, &m->n_train);
    const size_t n = m->n_train;
    m->tmem = o->alloc(2 * n * sizeof(float));
    if (!m->tmem) {
        free(src);
        return -1;
    }
    float *host = mallocCheck((n ? n : 1) * sizeof *host);
    int nl = clip_weights_layout(c, NULL);
    ClipTensorInfo *lay = mallocCheck((size_t)nl * sizeof *lay);
    clip_weights_layout(c, lay);
    Rng rng;
    rng_init(&rng, seed, 0x4C6F5241u);   // "LoRA"
    const double bound = 1.0 / sqrt((double)c->vision_width);
    for (int k = 0; k < m->n_tinfo; k++) {
        const ClipTensorInfo *t = &m->tinfo[k];
        float *d = host + t->offset;
        if (src[k] >= 0) {
            memcpy(d, w->params + lay[src[k]].offset, t->numel * sizeof(float));
        } else if (strstr(t->name, "_lora_down")) {
            for (size_t i = 0; i < t->numel; i++) d[i] = (float)((2.0 * rng_uniform(&rng) - 1.0) * bound);
        } else {
            memset(d, 0, t->numel * sizeof(float));   // up = 0: the adapter starts as the identity
        }
    }
    o->to_device(m->tmem, host, n * sizeof(float));
    o->memset0(m->tmem + n, n * sizeof(float));
    free(host);
    // pointers: field j of a ClipWeights holds the tensor at host offset (*hp[j] - w->params)
    ClipWeights hw = *w;
    memset(&m->gw, 0, sizeof m->gw);
    m->gw.cfg = *c;   // weight_ptrs walks cfg's layer counts
    float **hp[12 * 2 * CLIP_MAX_LAYERS + 16], **mp[12 * 2 * CLIP_MAX_LAYERS + 16],
          **gp[12 * 2 * CLIP_MAX_LAYERS + 16];
    int np = weight_ptrs(&hw, hp, (int)(sizeof hp / sizeof hp[0]));
    LAIC_ASSERT(weight_ptrs(&m->w, mp, np) == np && weight_ptrs(&m->gw, gp, np) == np);
    float *tp = m->tmem, *tg = m->tmem + n;
    int r = spec->lora_rank;
    for (int k = 0; k < m->n_tinfo; k++) {
        const ClipTensorInfo *t = &m->tinfo[k];
        if (src[k] < 0) {   // LoRA: (block, which) from the arena order
            int l = k / 4, j = k % 4;
            float **pl[4] = {&m->lora[l].q_down, &m->lora[l].q_up, &m->lora[l].v_down,
                             &m->lora[l].v_up};
            float **gl[4] = {&m->glora[l].q_down, &m->glora[l].q_up, &m->glora[l].v_down,
                             &m->glora[l].v_up};
            *pl[j] = tp + t->offset;
            *gl[j] = tg + t->offset;
            continue;
        }
        const size_t so = lay[src[k]].offset;
        int found = 0;
        for (int j = 0; j < np && !found; j++)
            if ((size_t)(*hp[j] - w->params) == so) {
                *mp[j] = tp + t->offset;
                *gp[j] = tg + t->offset;
                found = 1;
            }
        LAIC_ASSERT(found);
    }
    (void)r;
    free(lay);
    free(src);
    size_t sz[NUM_VIS_TENSORS];
    fill_in_vis_sizes(sz, c, spec, m->max_batch);
    m->vis_mem = malloc_and_point_vis(o, &m->v, sz);
    return m->vis_mem ? 0 : -1;
}

ClipModel *clip_model_create_vision_train(const ClipWeights *w, const OpsBackend *ops,
                                          int max_batch, const ClipVisionTrainSpec *spec,
                                          const char *precision, uint64_t seed) {
    if (!spec) {
        laic_error("clip: no training spec");
        return NULL;
    }
    if (!precision) return model_create(w, ops, max_batch, 0, spec, seed);
#ifdef LAIC_CUDA
    const int before = ops == &ops_cuda ? ops_cuda_get_matmul() : -1;
#endif
    if (clip_set_precision(ops, precision, NULL)) return NULL;
    ClipModel *m = model_create(w, ops, max_batch, 0, spec, seed);
#ifdef LAIC_CUDA
    if (before >= 0) ops_cuda_set_matmul(ops_cuda_matmul_name(before));   // process-wide: restore
#endif
    return m;
}

int clip_trainable_tensors(const ClipModel *m, const ClipTensorInfo **info) {
    if (info) *info = m ? m->tinfo : NULL;
    return m ? m->n_tinfo : 0;
}
size_t clip_trainable_numel(const ClipModel *m) { return m ? m->n_train : 0; }
float *clip_trainable_params(ClipModel *m) { return m->tmem; }
float *clip_trainable_grads(ClipModel *m) { return m->tmem ? m->tmem + m->n_train : NULL; }

void clip_zero_grad(ClipModel *m) {
    if (m->tmem) m->ops->memset0(m->tmem + m->n_train, m->n_train * sizeof(float));
}

static int check_vision_train(const ClipModel *m) {
    if (!m || !m->vis_mem)
        return laic_error("clip: not a vision-training model ---> HINT: create it with "
                          "clip_model_create_vision_train");
    return 0;
}

int clip_trainable_upload(ClipModel *m, const float *host) {
    if (check_vision_train(m)) return -1;
    m->ops->synchronize();   // earlier ops may still read the arena
    m->ops->to_device(m->tmem, host, m->n_train * sizeof(float));
    return 0;
}

int clip_trainable_download(ClipModel *m, float *host) {
    if (check_vision_train(m)) return -1;
    m->ops->synchronize();
    m->ops->to_host(host, m->tmem, m->n_train * sizeof(float));
    return 0;
}

int clip_trainable_save(const ClipModel *m, const float *host, const char *path,
                        const char *const *extra_meta, int n_extra) {
    if (check_vision_train(m)) return -1;
    const int n = m->n_tinfo;
    StWriteTensor *t = mallocCheck((size_t)(n ? n : 1) * sizeof *t);
    float *buf = mallocCheck((m->n_train ? m->n_train : 1) * sizeof *buf);   // file order
    for (int i = 0; i < n; i++) {
        const ClipTensorInfo *ti = &m->tinfo[i];
        const float *s = host + ti->offset;
        float *d = buf + ti->offset;
        if (ti->transposed) {   // file (R,K) from the arena's (K,R)
            size_t R = ti->shape[0], K = ti->shape[1];
            for (size_t j = 0; j < ti->numel; j++) d[j] = s[(j % K) * R + j / K];
        } else {
            memcpy(d, s, ti->numel * sizeof(float));
        }
        t[i] = (StWriteTensor){.name = ti->name, .dtype = "F32", .ndim = ti->ndim, .data = d};
        for (int k = 0; k < ti->ndim; k++) t[i].shape[k] = ti->shape[k];
    }
    const char **meta = mallocCheck((size_t)(2 + n_extra) * 2 * sizeof *meta);
    int nm = 0;
    meta[2 * nm] = "format", meta[2 * nm + 1] = "laic-clip-trainable", nm++;
    meta[2 * nm] = "format_version", meta[2 * nm + 1] = "1", nm++;
    for (int i = 0; i < n_extra; i++)
        meta[2 * nm] = extra_meta[2 * i], meta[2 * nm + 1] = extra_meta[2 * i + 1], nm++;
    int rc = st_write(path, meta, nm, t, n);
    free(meta);
    free(buf);
    free(t);
    return rc;
}

// --- vision training: forward ---
static size_t vis_rows(const ClipModel *m) {   // rows of one slot: max_batch * T
    const ClipConfig *c = &m->cfg;
    size_t G = (size_t)(c->image_size / c->patch_size);
    return (size_t)m->max_batch * (G * G + 1);
}

// Block input slot i (block vstop + i; i = NL - vstop: the tower's output).
static float *vis_x(const ClipModel *m, int i) {
    return m->v.x + (size_t)i * vis_rows(m) * m->cfg.vision_width;
}

// Saved-activation slot i (x_out left for the caller).
static BlockSave vis_slots(const ClipModel *m, int i) {
    const ClipConfig *c = &m->cfg;
    const VisActs *v = &m->v;
    const size_t R = vis_rows(m), C = (size_t)c->vision_width, T = R / m->max_batch;
    const size_t r = (size_t)m->spec.lora_rank, k = (size_t)i;
    BlockSave s = {
        .x_mid = v->xmid + k * R * C,
        .mean1 = v->stats + (k * 4 + 0) * R, .rstd1 = v->stats + (k * 4 + 1) * R,
        .mean2 = v->stats + (k * 4 + 2) * R, .rstd2 = v->stats + (k * 4 + 3) * R,
        .qkv = v->qkv + k * R * 3 * C,
        .att = v->att + k * (size_t)m->max_batch * c->vision_heads * T * T,
        .fch_pre = v->fch_pre + k * R * (size_t)c->vision_mlp,
        .attn = v->attn + k * R * C,
        .lora_h = r ? v->lora_h + k * 2 * R * r : NULL,
    };
    return s;
}

static BlockLora vis_lora(const ClipModel *m, int l) {
    const int r = m->spec.lora_rank;
    return (BlockLora){&m->lora[l], r ? m->spec.lora_alpha / (float)r : 0.0f, r};
}

// clip_encode_images_dev on a vision-training model: the same op sequence as the inference
// forward plus the LoRA terms, with each block from vstop on writing its activations to the
// saved slots (slot 0 for all of them under recompute).
static void vision_train_forward(ClipModel *m, const float *pixels, int B, float *out) {
    const OpsBackend *o = m->ops;
    const ClipConfig *c = &m->cfg;
    const ClipWeights *w = &m->w;
    ClipActs *a = &m->a;
    VisActs *v = &m->v;
    const int S = c->image_size, P = c->patch_size, G = S / P, NP = G * G, T = NP + 1;
    const int C = c->vision_width, NL = c->vision_layers, stop = m->vstop;
    const size_t R = vis_rows(m);
    // conv1 (kernel = stride = P, no bias) as im2col + matmul; patches stay for conv1's dW
    o->im2col_forward(a->patches, pixels, B, S, P);
    o->matmul_forward(a->tmp, a->patches, w->conv1_w, NULL, B * NP, 3 * P * P, C);
    float *xe = v->xemb ? v->xemb : a->x;
    o->vision_embed_forward(xe, a->tmp, w->class_emb, w->vis_pos, B, NP, C);
    float *x = stop == 0 ? v->x : a->ln;
    o->layernorm_forward(x, v->stat_pre, v->stat_pre ? v->stat_pre + R : NULL, xe, w->ln_pre_w,
                         w->ln_pre_b, B * T, C);
    for (int l = 0; l < stop; l++)   // frozen blocks below the backward: in place, nothing kept
        block_forward(m, &w->vblocks[l], x, a->x, B, T, C, c->vision_heads, c->vision_mlp, 0,
                      NULL, NULL);
    if (stop > 0) o->copy(v->x, x, (size_t)B * T * C * sizeof(float));
    for (int l = stop; l < NL; l++) {
        const int i = l - stop;
        BlockSave s = vis_slots(m, m->spec.recompute ? 0 : i);
        s.x_out = vis_x(m, i + 1);
        BlockLora bl = vis_lora(m, l);
        block_forward(m, &w->vblocks[l], vis_x(m, i), a->ln, B, T, C, c->vision_heads,
                      c->vision_mlp, 0, &s, bl.r ? &bl : NULL);
    }
    int32_t *idx = m->dev_ints;   // (B) zeros: the class token
    o->memset0(idx, (size_t)B * sizeof(int32_t));
    o->gather_rows_forward(a->pooled, vis_x(m, NL - stop), idx, B, T, C);
    o->layernorm_forward(a->pooled_ln, v->stat_post, v->stat_post + m->max_batch, a->pooled,
                         w->ln_post_w, w->ln_post_b, B, C);
    o->matmul_forward(out, a->pooled_ln, w->vis_proj, NULL, B, C, c->embed_dim);
    m->bwd_B = 0;
    m->vis_B = B;
}

// --- vision training: backward ---
// The forward above read bottom-up; each step quotes the line it differentiates. Parameter
// gradients accumulate into m->gw / m->glora; activation gradients overwrite VisActs' buffers.
int clip_image_backward_dev(ClipModel *m, const float *dfeat, float *dpixels) {
    if (check_vision_train(m)) return -1;
    if (m->vis_B < 1) return laic_error("clip: image backward without a preceding image forward");
    if (dpixels && !m->spec.dpixels)
        return laic_error("clip: the pixel gradient was not planned for this model ---> HINT: "
                          "set spec.dpixels when creating it");
    use_precision(m);
    const OpsBackend *o = m->ops;
    const ClipConfig *c = &m->cfg;
    const ClipWeights *w = &m->w, *gw = &m->gw;
    const ClipActs *a = &m->a;
    VisActs *v = &m->v;
    const int B = m->vis_B, S = c->image_size, P = c->patch_size, G = S / P, NP = G * G;
    const int T = NP + 1, N = B * T, C = c->vision_width, H = c->vision_mlp, E = c->embed_dim;
    const int NH = c->vision_heads, NL = c->vision_layers, r = m->spec.lora_rank;
    const size_t R = vis_rows(m);
    const int stem = gw->conv1_w != NULL || dpixels != NULL;
    // this call's lowest block: the lowest trainable one, 0 with LoRA or the stem
    int lo = spec_first_block(c, &m->spec);
    if (r > 0 || stem) lo = 0;
    float *dpln = v->dsmall + (size_t)B * E, *dpool = dpln + (size_t)B * C;   // (B,C) each
    // feat = matmul(pooled_ln, vis_proj)
    if (gw->vis_proj) o->matmul_backward_weight(gw->vis_proj, NULL, dfeat, a->pooled_ln, B, C, E);
    const int below = lo < NL || stem;   // anything under ln_post needs a gradient
    if (!below && !gw->ln_post_w) return 0;
    o->matmul_backward(dpln, dfeat, w->vis_proj, B, C, E);
    // pooled_ln = layernorm(pooled, ln_post)
    const float *mp = v->stat_post, *rp = v->stat_post + m->max_batch;
    if (gw->ln_post_w)
        o->layernorm_backward_weight(gw->ln_post_w, gw->ln_post_b, dpln, a->pooled, mp, rp, B, C);
    if (!below) return 0;
    o->memset0(dpool, (size_t)B * C * sizeof(float));   // layernorm_backward accumulates
    o->layernorm_backward(dpool, dpln, a->pooled, w->ln_post_w, mp, rp, B, C);
    // pooled = gather_rows(x, 0)   (dev_ints still holds the forward's zeros)
    o->gather_rows_backward(v->dx, dpool, m->dev_ints, B, T, C);
    for (int l = NL - 1; l >= lo; l--) {
        const int i = l - m->vstop;
        const ClipBlockWeights *bw = &w->vblocks[l], *gb = &gw->vblocks[l];
        const int train = gb->ln_1_w != NULL, need_dinp = l > lo || stem;
        const float *x_in = vis_x(m, i);
        BlockLora bl = vis_lora(m, l);
        BlockSave s;
        if (m->spec.recompute) {   // the block's forward again, from its saved input
            s = vis_slots(m, 0);
            s.x_out = a->x;
            block_forward(m, bw, (float *)x_in, a->ln, B, T, C, NH, H, 0, &s, r ? &bl : NULL);
        } else {
            s = vis_slots(m, i);
        }
        // x_out = residual(x_mid, matmul(quickgelu(fch_pre), c_proj)): dx is d x_out = d x_mid
        // so far (the residual branch), the MLP's share is added by layernorm_backward below
        if (train) {
            o->quickgelu_forward(v->dfch, s.fch_pre, (size_t)N * H);   // fch, c_proj's input
            o->matmul_backward_weight(gb->proj_w, gb->proj_b, v->dx, v->dfch, N, H, C);
        }
        o->matmul_backward(v->dfch, v->dx, bw->proj_w, N, H, C);
        // fch = quickgelu(fch_pre)
        o->quickgelu_backward(v->dfch, v->dfch, s.fch_pre, (size_t)N * H);
        // fch_pre = matmul(ln_2(x_mid), c_fc)
        if (train) {
            o->layernorm_forward(v->lnbuf, NULL, NULL, s.x_mid, bw->ln_2_w, bw->ln_2_b, N, C);
            o->matmul_backward_weight(gb->fc_w, gb->fc_b, v->dfch, v->lnbuf, N, C, H);
        }
        o->matmul_backward(v->dln, v->dfch, bw->fc_w, N, C, H);
        // ln_2 = layernorm(x_mid)   (+= onto the residual gradient: dx becomes d x_mid)
        if (train)
            o->layernorm_backward_weight(gb->ln_2_w, gb->ln_2_b, v->dln, s.x_mid, s.mean2,
                                         s.rstd2, N, C);
        o->layernorm_backward(v->dx, v->dln, s.x_mid, bw->ln_2_w, s.mean2, s.rstd2, N, C);
        // x_mid = residual(x_in, matmul(attn, out_proj))
        if (train)
            o->matmul_backward_weight(gb->attn_out_w, gb->attn_out_b, v->dx, s.attn, N, C, C);
        o->matmul_backward(v->dattn, v->dx, bw->attn_out_w, N, C, C);
        // attn = attention(qkv)   (not causal)
        o->attention_backward(v->dqkv, v->dattn, s.qkv, s.att, B, T, C, NH, 0);
        // qkv = matmul(ln_1(x_in), in_proj) [+ (α/r)·U D ln_1 on q and v]
        const int need_dln = need_dinp || train;
        if (train || r)
            o->layernorm_forward(v->lnbuf, NULL, NULL, x_in, bw->ln_1_w, bw->ln_1_b, N, C);
        if (train)
            o->matmul_backward_weight(gb->attn_in_w, gb->attn_in_b, v->dqkv, v->lnbuf, N, C, 3 * C);
        if (need_dln) o->matmul_backward(v->dln, v->dqkv, bw->attn_in_w, N, C, 3 * C);
        if (r) {
            const ClipLora *L = &m->lora[l], *gL = &m->glora[l];
            o->lora_backward(need_dln ? v->dln : NULL, gL->q_down, gL->q_up, v->dh, v->dqkv,
                             v->lnbuf, s.lora_h, L->q_down, L->q_up, bl.scale, N, C, C, r, 3 * C);
            o->lora_backward(need_dln ? v->dln : NULL, gL->v_down, gL->v_up, v->dh,
                             v->dqkv + 2 * C, v->lnbuf, s.lora_h + (size_t)N * r, L->v_down,
                             L->v_up, bl.scale, N, C, C, r, 3 * C);
        }
        // ln_1 = layernorm(x_in)   (+=: dx becomes d x_in)
        if (train)
            o->layernorm_backward_weight(gb->ln_1_w, gb->ln_1_b, v->dln, x_in, s.mean1, s.rstd1,
                                         N, C);
        if (need_dinp)
            o->layernorm_backward(v->dx, v->dln, x_in, bw->ln_1_w, s.mean1, s.rstd1, N, C);
    }
    if (!stem) return 0;
    // x0 = layernorm(xemb, ln_pre)   (dx = d x0)
    const float *mpre = v->stat_pre, *rpre = v->stat_pre + R;
    if (gw->ln_pre_w)
        o->layernorm_backward_weight(gw->ln_pre_w, gw->ln_pre_b, v->dx, v->xemb, mpre, rpre, N, C);
    o->memset0(v->dln, (size_t)N * C * sizeof(float));
    o->layernorm_backward(v->dln, v->dx, v->xemb, w->ln_pre_w, mpre, rpre, N, C);
    // xemb = vision_embed(patch_emb, class_emb, vis_pos): d patch_emb (B*NP,C) into dx
    o->vision_embed_backward(v->dx, gw->class_emb, gw->vis_pos, v->dln, B, NP, C);
    // patch_emb = matmul(im2col(pixels), conv1)
    if (gw->conv1_w)
        o->matmul_backward_weight(gw->conv1_w, NULL, v->dx, a->patches, B * NP, 3 * P * P, C);
    if (dpixels) {
        o->matmul_backward(v->dpatches, v->dx, w->conv1_w, B * NP, 3 * P * P, C);
        o->im2col_backward(dpixels, v->dpatches, B, S, P);
    }
    return 0;
}

int clip_image_backward(ClipModel *m, const float *dfeat, float *dpixels) {
    if (check_vision_train(m)) return -1;
    if (m->vis_B < 1) return laic_error("clip: image backward without a preceding image forward");
    const OpsBackend *o = m->ops;
    const ClipConfig *c = &m->cfg;
    const int B = m->vis_B;
    const size_t npix = (size_t)B * 3 * c->image_size * c->image_size;
    o->to_device(m->v.dsmall, dfeat, (size_t)B * c->embed_dim * sizeof(float));
    // the forward's pixel copy is free now: it stages dpixels
    if (clip_image_backward_dev(m, m->v.dsmall, dpixels ? m->a.pixels : NULL)) return -1;
    if (dpixels) o->to_host(dpixels, m->a.pixels, npix * sizeof(float));
    o->synchronize();
    return 0;
}

// --- vision training: memory plan ---
void clip_vision_train_plan(const ClipConfig *c, const ClipVisionTrainSpec *spec, int B,
                            int on_device, int bf16, int opt_floats, ClipTrainPlan *p) {
    memset(p, 0, sizeof *p);
    p->batch = B;
    size_t act[NUM_ACT_TENSORS], vis[NUM_VIS_TENSORS], f = 0, ntrain = 0;
    fill_in_act_sizes(act, c, B, 1);
    for (int i = 0; i < NUM_ACT_TENSORS; i++) f += act[i];
    p->activations = f * sizeof(float) +
                     ((size_t)B * c->context_length + (size_t)B) * sizeof(int32_t);   // dev_ints
    fill_in_vis_sizes(vis, c, spec, B);
    p->block_inputs = vis[0] * sizeof(float);
    f = 0;
    for (int i = 1; i <= 10; i++) f += vis[i];
    p->saved = f * sizeof(float);
    f = 0;
    for (int i = 11; i < NUM_VIS_TENSORS; i++) f += vis[i];
    p->grad_buffers = f * sizeof(float);
    train_table(c, spec, NULL, NULL, &ntrain);
    p->trainable = 2 * ntrain * sizeof(float);
    p->optimizer = (size_t)(opt_floats > 0 ? opt_floats : 0) * ntrain * sizeof(float);
    if (on_device) {
        const size_t nv = vision_param_count(c);
        p->params = nv * sizeof(float);
        if (bf16) {
            // resident twin + matmul_forward's operand scratch (the MLP hidden (rows,H) and, for
            // a trainable weight, its bf16 copy) + laic_gemm's two backward operand buffers
            const size_t G = (size_t)(c->image_size / c->patch_size);
            const size_t rows = (size_t)B * (G * G + 1), H = (size_t)c->vision_mlp;
            p->params_bf16 = (nv + rows * H + (size_t)c->vision_width * H + 2 * rows * H) *
                             sizeof(uint16_t);
        }
    }
    p->total = p->params + p->params_bf16 + p->activations + p->block_inputs + p->saved +
               p->grad_buffers + p->trainable + p->optimizer;
}

int clip_vision_train_fit(const ClipConfig *c, const ClipVisionTrainSpec *spec, int on_device,
                          int bf16, int opt_floats, size_t limit) {
    // bytes grow strictly with the batch: binary search for the last one that fits
    int lo = 0, hi = 1 << 20;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        ClipTrainPlan p;
        clip_vision_train_plan(c, spec, mid, on_device, bf16, opt_floats, &p);
        if (p.total <= limit) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

void clip_train_plan_format(const ClipTrainPlan *p, char *buf, size_t n) {
    const struct { const char *name; size_t bytes; } parts[] = {
        {"frozen parameters (fp32)", p->params},
        {"bf16 weights + operand scratch", p->params_bf16},
        {"forward activations", p->activations},
        {"block inputs", p->block_inputs},
        {"saved activations", p->saved},
        {"activation gradients", p->grad_buffers},
        {"trainable weights + gradients", p->trainable},
        {"optimiser state", p->optimizer},
        {"total", p->total},
    };
    size_t used = 0;
    if (!buf || !n) return;
    buf[0] = 0;
    int w = snprintf(buf, n, "memory plan, batch %d:", p->batch);
    used = w > 0 ? (size_t)w : 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0] && used < n; i++) {
        w = snprintf(buf + used, n - used, "\n  %-32s %10.1f MiB %14zu bytes", parts[i].name,
                     parts[i].bytes / 1048576.0, parts[i].bytes);
        if (w < 0) break;
        used += (size_t)w;
    }
}

// --- precision ------------------------------------------------------------------------------

// clip_matmul_algo with the precision's option name in the messages (--precision,
// --text-precision, ...).
static const char *matmul_algo_named(const char *device, const char *precision, const char *gemm,
                                     const char *pname) {
    const char *p = precision ? precision : "fp32", *g = gemm ? gemm : "cublas";
    if (strcmp(p, "fp32") && strcmp(p, "tf32") && strcmp(p, "bf16")) {
        laic_error("%s: unknown precision '%s' ---> HINT: use fp32, tf32 or bf16", pname, p);
        return NULL;
    }
    if (strcmp(g, "cublas") && strcmp(g, "wmma")) {
        laic_error("--gemm: unknown GEMM path '%s' ---> HINT: use cublas or wmma", g);
        return NULL;
    }
    if (!device || !strcmp(device, "cpu")) {
        if (strcmp(p, "fp32")) {
            laic_error("%s %s: the CPU backend computes in fp32 only ---> HINT: use %s fp32, or "
                       "--device cuda", pname, p, pname);
            return NULL;
        }
        if (strcmp(g, "cublas")) {
            laic_error("--gemm %s: the CPU backend has one GEMM (OpenBLAS sgemm) ---> HINT: drop "
                       "--gemm, or use --device cuda", g);
            return NULL;
        }
        return "fp32";
    }
    if (!strcmp(g, "wmma")) {
        if (strcmp(p, "bf16")) {
            laic_error("--gemm wmma needs %s bf16 (the WMMA kernel multiplies bf16) ---> HINT: "
                       "add %s bf16, or use --gemm cublas", pname, pname);
            return NULL;
        }
        return "bf16-wmma";
    }
    return !strcmp(p, "fp32") ? "fp32" : !strcmp(p, "tf32") ? "tf32" : "bf16-cublas";
}

const char *clip_matmul_algo(const char *device, const char *precision, const char *gemm) {
    return matmul_algo_named(device, precision, gemm, "--precision");
}

int clip_check_precision(const char *device, const char *precision, const char *option) {
    return matmul_algo_named(device, precision, NULL, option) ? 0 : -1;
}

int clip_set_precision(const OpsBackend *ops, const char *precision, const char *gemm) {
    const char *algo = clip_matmul_algo(ops ? ops->name : "cpu", precision, gemm);
    if (!algo) return -1;
#ifdef LAIC_CUDA
    if (ops == &ops_cuda) return ops_cuda_set_matmul(algo);
#endif
    return 0;
}

// --- memory planning --------------------------------------------------------------------------

size_t clip_model_bytes(const ClipConfig *c, int max_batch, int copy_params, int bf16, int train) {
    size_t sizes[NUM_ACT_TENSORS], floats = 0;
    fill_in_act_sizes(sizes, c, max_batch, 0);
    for (int i = 0; i < NUM_ACT_TENSORS; i++) floats += sizes[i];
    size_t bytes = floats * sizeof(float);
    bytes += ((size_t)max_batch * c->context_length + (size_t)max_batch) * sizeof(int32_t);
    if (copy_params) {
        size_t np = clip_param_count(c);
        bytes += np * sizeof(float);
        if (bf16) {
            // resident bf16 weights + matmul_forward's activation scratch: the largest operand
            // is the MLP hidden (rows, H) of the larger tower
            size_t S = (size_t)c->image_size, G = S / (size_t)c->patch_size;
            size_t rv = (size_t)max_batch * (G * G + 1), rt = (size_t)max_batch * c->context_length;
            size_t H = (size_t)imax(c->vision_mlp, c->text_mlp);
            bytes += np * sizeof(uint16_t) + (rv > rt ? rv : rt) * H * sizeof(uint16_t);
        }
    }
    if (train) {
        size_t ts[NUM_TRAIN_TENSORS], tf = 0;
        fill_in_train_sizes(ts, c, max_batch);
        for (int i = 0; i < NUM_TRAIN_TENSORS; i++) tf += ts[i];
        bytes += tf * sizeof(float);
    }
    return bytes;
}

int clip_fit_batch(const ClipConfig *c, size_t free_bytes, int copy_params, int bf16, int train) {
    if (free_bytes <= CLIP_DEVICE_RESERVE) return 0;
    size_t avail = free_bytes - CLIP_DEVICE_RESERVE;
    // bytes grow strictly with the batch: binary search for the last one that fits
    int lo = 0, hi = 1 << 24;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (clip_model_bytes(c, mid, copy_params, bf16, train) <= avail) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

int clip_oom_error(const ClipConfig *c, int max_batch, size_t free_bytes, int copy_params,
                   int bf16, int train) {
    const double MiB = 1048576.0;
    size_t need = clip_model_bytes(c, max_batch, copy_params, bf16, train);
    size_t fixed = clip_model_bytes(c, 0, copy_params, 0, 0);   // parameters alone
    int fit = clip_fit_batch(c, free_bytes, copy_params, bf16, train);
    if (fit < 1)
        return laic_error("clip: out of device memory: max_batch %d needs %.0f MiB (parameters "
                          "%.0f MiB), %.0f MiB free, and not even batch 1 fits with the %.0f MiB "
                          "reserve ---> HINT: free device memory (nvidia-smi) or use --device cpu",
                          max_batch, need / MiB, fixed / MiB, free_bytes / MiB,
                          CLIP_DEVICE_RESERVE / MiB);
    return laic_error("clip: out of device memory: max_batch %d needs %.0f MiB (parameters %.0f "
                      "MiB + %s%s), %.0f MiB free ---> HINT: use --batch %d or less",
                      max_batch, need / MiB, fixed / MiB, bf16 ? "bf16 weights + " : "",
                      train ? "activations + training state" : "activations", free_bytes / MiB,
                      fit);
}

// --- FLOP counts --------------------------------------------------------------------------------
// One pre-LN block on T tokens of width C, MLP width H: the four Linears (qkv 3C·C, out C·C,
// fc H·C, proj C·H) at 2 FLOP per multiply-add, plus q kᵀ and p v (2·T²·C each, all heads).
static double block_flop(double T, double C, double H) {
    return 2.0 * T * (4.0 * C * C + 2.0 * C * H) + 4.0 * T * T * C;
}

double clip_image_flop(const ClipConfig *c) {
    double P = c->patch_size, G = (double)(c->image_size / c->patch_size), NP = G * G;
    double C = c->vision_width, T = NP + 1;
    return 2.0 * NP * 3.0 * P * P * C + c->vision_layers * block_flop(T, C, c->vision_mlp) +
           2.0 * C * c->embed_dim;
}

double clip_text_flop(const ClipConfig *c, int T) {
    double C = c->text_width;
    return c->text_layers * block_flop(T, C, c->text_mlp) + 2.0 * C * c->embed_dim;
}

// --- bucketed text ------------------------------------------------------------------------------

int clip_model_max_batch(const ClipModel *m) { return m->max_batch; }

const OpsBackend *clip_model_ops(const ClipModel *m) { return m->ops; }

typedef struct { int eot; size_t idx; } EotIdx;
static int cmp_eot(const void *a, const void *b) {
    const EotIdx *x = a, *y = b;
    if (x->eot != y->eot) return x->eot < y->eot ? -1 : 1;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

int clip_encode_text_bucketed(ClipModel *m, const int32_t *tokens, size_t N, int L, float *out,
                              void (*progress)(void *ctx, size_t done), void *ctx,
                              ClipBucketStats *stats) {
    const ClipConfig *c = &m->cfg;
    const int B = m->max_batch, E = c->embed_dim;
    if (L < 1 || L > c->context_length)
        return laic_error("clip: token length %d outside [1,%d] (the context length)", L,
                          c->context_length);
    // EOT = first argmax per row (as clip_encode_text); ids checked here so an error names the
    // caller's row, not a row of a sorted batch
    EotIdx *order = mallocCheck((N ? N : 1) * sizeof *order);
    for (size_t i = 0; i < N; i++) {
        const int32_t *row = tokens + i * (size_t)L;
        int best = 0;
        for (int t = 0; t < L; t++) {
            if (row[t] < 0 || row[t] >= c->vocab_size) {
                free(order);
                return laic_error("clip: token id %d at row %zu, position %d is outside the "
                                  "vocabulary [0,%d)", (int)row[t], i, t, c->vocab_size);
            }
            if (row[t] > row[best]) best = t;
        }
        order[i] = (EotIdx){best, i};
    }
    // similar lengths share a batch, so the causal truncation to the longest EOT bites
    qsort(order, N, sizeof *order, cmp_eot);
    int32_t *batch = mallocCheck((size_t)B * L * sizeof *batch);   // (B,L)
    float *feat = mallocCheck((size_t)B * E * sizeof *feat);        // (B,E)
    ClipBucketStats st = {0, 0.0, (double)N * clip_text_flop(c, L)};
    int rc = 0;
    for (size_t b0 = 0; b0 < N; b0 += (size_t)B) {
        int nb = (int)(N - b0 < (size_t)B ? N - b0 : (size_t)B);
        for (int j = 0; j < nb; j++)
            memcpy(batch + (size_t)j * L, tokens + order[b0 + (size_t)j].idx * L,
                   (size_t)L * sizeof *batch);
        if ((rc = clip_encode_text(m, batch, nb, L, feat))) break;
        for (int j = 0; j < nb; j++)
            memcpy(out + order[b0 + (size_t)j].idx * E, feat + (size_t)j * E,
                   (size_t)E * sizeof *out);
        st.batches++;
        st.flop_run += nb * clip_text_flop(c, order[b0 + (size_t)nb - 1].eot + 1);
        if (progress) progress(ctx, b0 + (size_t)nb);
    }
    free(batch);
    free(feat);
    free(order);
    if (stats) *stats = st;
    return rc;
}
