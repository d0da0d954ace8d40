/*
 * clip.h — the CLIP model: architecture numbers, weights, and the two encoders.
 *
 * Weights are loaded from one safetensors file (weights/FORMAT.md) by clip_weights_load
 * (host/weights.c): every tensor is checked against the architecture numbers in the file's
 * __metadata__, converted to float32 and placed in one host arena (`params`), in the fixed
 * order of clip_weights_layout(). All dimensions come from the file, never from constants.
 *
 * Two projections are stored transposed relative to OpenAI's state dict so that every
 * projection in the model is a Linear (weight (out, in), see ops.h matmul_forward):
 *   vis_proj  = visual.proj ᵀ      (E, Cv)      [OpenAI: (Cv, E), used as x @ proj]
 *   text_proj = text_projection ᵀ  (E, Ct)      [OpenAI: (Ct, E)]
 *
 * Letters: Cv vision width, Ct text width, E embed dim, P patch, S image size, G = S/P,
 * V vocab, L context length.
 */
#ifndef LAIC_CLIP_H
#define LAIC_CLIP_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"

typedef struct {
    int image_size, patch_size, vision_width, vision_layers, vision_heads;
    int context_length, vocab_size, text_width, text_layers, text_heads;
    int embed_dim;
    int vision_mlp, text_mlp;   // MLP hidden widths (4*width in every released CLIP)
} ClipConfig;

typedef struct {
    float *ln_1_w, *ln_1_b;          // (C), (C)
    float *attn_in_w, *attn_in_b;    // (3C, C), (3C)     q,k,v row blocks
    float *attn_out_w, *attn_out_b;  // (C, C), (C)
    float *ln_2_w, *ln_2_b;          // (C), (C)
    float *fc_w, *fc_b;              // (H, C), (H)       H = mlp width
    float *proj_w, *proj_b;          // (C, H), (C)
} ClipBlockWeights;

#define CLIP_MAX_LAYERS 64

typedef struct {
    ClipConfig cfg;
    // vision tower
    float *conv1_w;                  // (Cv, 3, P, P)
    float *class_emb;                // (Cv)
    float *vis_pos;                  // (G*G+1, Cv)
    float *ln_pre_w, *ln_pre_b;      // (Cv)
    ClipBlockWeights vblocks[CLIP_MAX_LAYERS];
    float *ln_post_w, *ln_post_b;    // (Cv)
    float *vis_proj;                 // (E, Cv)   transposed, see above
    // text tower
    float *tok_emb;                  // (V, Ct)
    float *txt_pos;                  // (L, Ct)
    ClipBlockWeights tblocks[CLIP_MAX_LAYERS];
    float *ln_final_w, *ln_final_b;  // (Ct)
    float *text_proj;                // (E, Ct)   transposed, see above
    float logit_scale;               // log of the softmax scale (exp = 100 for ViT-B/32)

    float *params;                   // the one arena all pointers above point into
    size_t n_params;                 // floats in the arena
    char storage_dtype[8];           // "F32", "F16" or "BF16" as stored in the file
    char sha256[65];                 // hex sha256 of the whole file (cache keys, reports)
    int official_vit_b_32;           // 1 if sha256 matches the official conversion (FORMAT.md)
} ClipWeights;

/* Loads and validates. On error returns -1 with a one-line message naming the file. */
int clip_weights_load(ClipWeights *w, const char *path);
void clip_weights_free(ClipWeights *w);
/* Number of parameters implied by a config (== n_params after a load). */
size_t clip_param_count(const ClipConfig *c);
/* Fills c with a named architecture: "vit-b-32" (OpenAI ViT-B/32) or "tiny" (the fixtures'). */
int clip_config_preset(ClipConfig *c, const char *arch);

/* ---- layout, random init, saving (host/weights.c; weights/FORMAT.md) --------------------
 * The file's tensors in layout order = the arena's carve order. */
typedef struct {
    char name[64];          // OpenAI state-dict name, e.g. "visual.transformer.resblocks.0.ln_1.weight"
    int ndim;
    size_t shape[4];        // as stored in the file
    size_t offset, numel;   // floats into ClipWeights.params
    int transposed;         // 1: the arena holds this 2-D file tensor transposed (vis_proj, text_proj)
} ClipTensorInfo;
/* Number of tensors for c; fills out[0..n) when out is not NULL. */
int clip_weights_layout(const ClipConfig *c, ClipTensorInfo *out);
/* Allocates the arena for c and fills it with the seeded CLIP-style init of FORMAT.md. */
int clip_weights_init(ClipWeights *w, const ClipConfig *c, uint64_t seed);
/* Writes w as a weights file with storage dtype "F32", "F16" or "BF16", atomically. extra_meta
 * is n_extra key/value pairs appended to the format and architecture keys (source, ...). */
int clip_weights_save(const ClipWeights *w, const char *path, const char *dtype,
                      const char *const *extra_meta, int n_extra);

/* ---- encoders (host/clip.c) ----------------------------------------------------------
 * A ClipModel binds weights to a backend and owns that backend's copy of the parameters and one
 * activation arena, sized up front for max_batch (and, for text, the context length).
 * Outputs are the unnormalised projected features (CLIP encode_image / encode_text). */
typedef struct ClipModel ClipModel;

ClipModel *clip_model_create(const ClipWeights *w, const OpsBackend *ops, int max_batch);
void clip_model_free(ClipModel *m);
/* Training mode: as clip_model_create, plus the text tower's saved activations and gradient
 * buffers, about NL * max_batch * L * (5C + H + NH*L + 4) floats (fill_in_train_sizes in
 * clip.c; ViT-B/32 text tower, max_batch 100: ~2 GB), so clip_text_backward can follow a
 * text forward. Inference models never allocate it. */
ClipModel *clip_model_create_train(const ClipWeights *w, const OpsBackend *ops, int max_batch);
/* pixels (B,3,S,S) float32 normalised; out (B,E). Host pointers. */
int clip_encode_images(ClipModel *m, const float *pixels, int B, float *out);
/* tokens (B,L) int32, EOT = argmax id per row; out (B,E). Host pointers.
 * Runs only up to the batch's longest EOT position + 1 (exact under the causal mask). */
int clip_encode_text(ClipModel *m, const int32_t *tokens, int B, int L, float *out);
/* embeds (B,T,Ct): token/prompt embeddings before the positional embedding; eot (B) int32
 * positions of the feature token; out (B,E). Host pointers. */
int clip_encode_text_embeds(ClipModel *m, const float *embeds, const int32_t *eot, int B, int T,
                            float *out);
/* Backward of the last text forward (clip_encode_text_embeds, or clip_encode_text with the
 * token embeddings as E) on a training model, weights frozen: dembeds (B,T,Ct) = ∂⟨dfeat, F⟩/∂E
 * for dfeat (B,E), F the unnormalised features that forward returned and B, T its batch and
 * length. Rows past the batch's longest EOT get 0 (they cannot reach any EOT row under the
 * causal mask). Host pointers. Returns -1 with an error when the model is not in training mode
 * or no text forward preceded (an image forward in between invalidates it). */
int clip_text_backward(ClipModel *m, const float *dfeat, float *dembeds);

#endif
