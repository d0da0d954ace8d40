/*
 * clip.h — the CLIP model: architecture numbers, weights, and the two encoders.
 *
 * Weights are loaded from one safetensors file (weights/FORMAT.md) by clip_weights_load
 * (host/model/weights.c): every tensor is checked against the architecture numbers in the file's
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
/* Text made by the CLIP tokenizer (ids up to 49407) needs a model whose vocabulary holds them:
 * -1 with "<weights>: the model's vocabulary has N tokens, ..." otherwise (`weights` names the
 * file in the message; a random-init model may pass a description). */
int clip_check_text_vocab(const ClipWeights *w, const char *weights);
/* Number of parameters implied by a config (== n_params after a load). */
size_t clip_param_count(const ClipConfig *c);
/* Fills c with a named architecture: "vit-b-32" (OpenAI ViT-B/32) or "tiny" (the fixtures'). */
int clip_config_preset(ClipConfig *c, const char *arch);

/* ---- layout, random init, saving (host/model/weights.c; weights/FORMAT.md) --------------------
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

/* ---- encoders (host/model/clip.c) ----------------------------------------------------------
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
/* clip_model_create_train in matmul precision "fp32" | "tf32" | "bf16" (NULL = the current
 * mode; clip_set_precision's rules), leaving the process-wide mode as it was. Each model keeps
 * the mode it was created in: the trainer's fp32 text tower next to a bf16 image model. */
ClipModel *clip_model_create_train_in(const ClipWeights *w, const OpsBackend *ops, int max_batch,
                                      const char *precision);
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

/* ---- trainable image encoder (issue 16; host/model/clip.c) -----------------------------------
 * A vision-training model runs the image tower only (text entry points refuse it) with some of
 * its parameters trainable, and keeps from its last image forward (clip_encode_images[_dev])
 * what clip_image_backward needs. Every image forward on it records; the backward differentiates
 * the most recent one. Which parameters train is a ClipVisionTrainSpec:
 *   LoRA (SPEC §9.3 stage 2): on q and v of every visual block,
 *     q = W_q x + b_q + (α/r)·U_q D_q x   (likewise v),  D (r,C) kaiming_uniform(a=√5), i.e.
 *     U(−1/√C, 1/√C) from the model's seed; U (C,r) = 0 (PEFT's lora_A / lora_B, no dropout);
 *   full_last_k: every tensor of blocks >= k, ln_post and proj; the backward stops at block k;
 *   all: every visual parameter (laic image-backward).
 * Trainable tensors live in ONE backend arena of fp32 master weights (clip_trainable_params),
 * LoRA tensors first (per block: q_lora_down (r,C), q_lora_up (C,r), v_lora_down, v_lora_up),
 * then the base tensors in the weights file's order; the model's own pointers point there, so a
 * forward always sees the current values and the caller's ClipWeights are never modified.
 * Gradients: a twin arena of the same layout (clip_trainable_grads) that every backward
 * ACCUMULATES into (+=), so zeroing a step is one memset (clip_zero_grad). An optimiser (AdamW:
 * host/train/vit.h) runs over the whole arena at once. Frozen tensors get no gradient buffer.
 * Precision: "fp32" | "tf32" | "bf16" as clip_set_precision; in bf16 the forward and backward
 * GEMMs take bf16 operands with fp32 accumulation on CUDA (weights, activations, gradients and
 * master weights stay fp32 in memory); the CPU is fp32. */
typedef struct {
    int lora_rank;          // r >= 1: LoRA on q and v of every visual block; 0: none
    float lora_alpha;       // the adapter output is scaled by lora_alpha / lora_rank
    int first_block;        // blocks >= first_block train every tensor (-1 or vision_layers:
                            // none; full_last_k = k)
    int train_stem;         // conv1, class / positional embedding, ln_pre
    int train_ln_post;      // ln_post weight and bias
    int train_proj;         // visual.proj (SEIC: the image projection)
    int recompute;          // keep only each block's input and recompute the block in the
                            // backward (config train.recompute): one block's saved activations
                            // instead of all (ViT-B/32 LoRA, batch 128: 2.2 -> 0.19 GiB) for one
                            // more forward; the same numbers bit for bit
    int dpixels;            // plan for clip_image_backward returning the pixel gradient
} ClipVisionTrainSpec;

/* The adapters of SPEC §9.3 (recompute 0, dpixels 0; change fields afterwards as needed):
 * LoRA (r, α) on q and v only (set train_proj for SEIC's "image projection"); full_last_k (k)
 * = blocks >= k + ln_post + proj; all = every visual parameter. */
ClipVisionTrainSpec clip_spec_lora(int r, float alpha);
ClipVisionTrainSpec clip_spec_full_last_k(int k);
ClipVisionTrainSpec clip_spec_all(void);
/* 0 when spec is valid for c, else -1 with one line naming the field ("LoRA rank 0 ..."). */
int clip_spec_check(const ClipConfig *c, const ClipVisionTrainSpec *spec);

/* A vision-training model for batches up to max_batch: the parameters (a backend copy; the CPU
 * copies only the trainable ones), the trainable arena and its gradients, the activations the
 * spec needs (clip_vision_train_plan), LoRA D drawn from seed (U = 0). precision as
 * clip_model_create_train_in (NULL = the current mode). NULL with an error on a bad spec or
 * when memory runs out (the error names the batch that fits on a device). */
ClipModel *clip_model_create_vision_train(const ClipWeights *w, const OpsBackend *ops,
                                          int max_batch, const ClipVisionTrainSpec *spec,
                                          const char *precision, uint64_t seed);
/* The trainable tensors (n, and the table, owned by the model): names are the weights file's
 * ("visual.transformer.resblocks.11.attn.in_proj_weight", "visual.proj", ...) or the adapters'
 * ("visual.transformer.resblocks.3.attn.q_lora_down"); shape as a file stores it; offset / numel
 * into the trainable arena; transposed = 1 for visual.proj (the arena holds projᵀ (E,Cv), as
 * ClipWeights.vis_proj). NULL model: 0. */
int clip_trainable_tensors(const ClipModel *m, const ClipTensorInfo **info);
size_t clip_trainable_numel(const ClipModel *m);      // floats in the trainable arena
float *clip_trainable_params(ClipModel *m);           // (n) backend memory, fp32 master weights
float *clip_trainable_grads(ClipModel *m);            // (n) backend memory, += by the backward
/* Enqueues the memset that zeroes every trainable gradient (an op: capturable). */
void clip_zero_grad(ClipModel *m);
/* Copies the trainable arena from / to host memory (n floats, arena layout). Synchronous. */
int clip_trainable_upload(ClipModel *m, const float *host);
int clip_trainable_download(ClipModel *m, float *host);
/* Writes a host copy of a trainable-arena-shaped array (parameters or gradients) as a
 * safetensors file of F32 tensors named and shaped as clip_trainable_tensors says (visual.proj
 * back in the file's (Cv,E) orientation), atomically. extra_meta as clip_weights_save. */
int clip_trainable_save(const ClipModel *m, const float *host, const char *path,
                        const char *const *extra_meta, int n_extra);

/* Backward of the last image forward of B images on a vision-training model: for dfeat (B,E) =
 * ∂L/∂F, F the unnormalised projected features that forward returned, every trainable gradient
 * += ∂⟨dfeat,F⟩/∂θ, and dpixels (B,3,S,S) = ∂⟨dfeat,F⟩/∂pixels when not NULL (overwrites; needs
 * spec.dpixels). Runs down to the lowest block with a trainable tensor (all of them with LoRA),
 * and through the patch embedding only for the stem or dpixels. Host pointers here; the _dev
 * twin takes backend pointers and only enqueues ops (capturable; dfeat must not alias the
 * model's buffers, dpixels may be the forward's pixels). -1 with an error when the model is not
 * a vision-training model or no image forward preceded. */
int clip_image_backward(ClipModel *m, const float *dfeat, float *dpixels);
int clip_image_backward_dev(ClipModel *m, const float *dfeat, float *dpixels);

/* Memory plan of a vision-training model of batch B (bytes per part; one backend allocation per
 * part kind, carved up front). on_device: the parameters are copied (else the CPU aliases the
 * frozen host weights and copies only the trainable ones); bf16: the resident bf16 weight twin
 * and the operand scratch; opt_floats: optimiser floats per trainable parameter (AdamW: 2). */
typedef struct {
    int batch;
    size_t params;          // frozen fp32 parameters the backend holds (visual tower)
    size_t params_bf16;     // their bf16 twin + the bf16 operand scratch (bf16 only)
    size_t activations;     // forward scratch: pixels, patches, one block's buffers
    size_t block_inputs;    // the residual stream entering each saved block, and the output
    size_t saved;           // per-block activations the backward reads (one block: recompute)
    size_t grad_buffers;    // one block's activation gradients, reused block after block
    size_t trainable;       // trainable master weights + their gradients
    size_t optimizer;       // optimiser state (opt_floats per trainable parameter)
    size_t total;           // the sum
} ClipTrainPlan;
void clip_vision_train_plan(const ClipConfig *c, const ClipVisionTrainSpec *spec, int B,
                            int on_device, int bf16, int opt_floats, ClipTrainPlan *p);
/* Largest B (<= 1<<20) whose plan total fits in limit bytes; 0 when not even 1 does. */
int clip_vision_train_fit(const ClipConfig *c, const ClipVisionTrainSpec *spec, int on_device,
                          int bf16, int opt_floats, size_t limit);
/* The plan as lines "  <part>  <MiB>  <bytes>" after a header naming the batch, into buf. */
void clip_train_plan_format(const ClipTrainPlan *p, char *buf, size_t n);

/* ---- device-pointer entry points (for the trainer's captured step) ---------------------
 * The same computation as the host-pointer functions above (those are thin wrappers: copy in,
 * call these, copy out, synchronise), but every pointer lives in the model's backend memory
 * (ops->alloc) and nothing is copied to or from the host, nothing is allocated and nothing
 * synchronises: they only enqueue backend ops, so a CUDA graph can capture them. They return
 * -1 with an error only on argument checks made on the host before any op is issued.
 * Results are ready once the backend is synchronised (or ordered after later ops). */
/* pixels (B,3,S,S) normalised; out (B,E). */
int clip_encode_images_dev(ClipModel *m, const float *pixels, int B, float *out);
/* embeds (B,T,Ct) before the positional embedding; eot (B) int32; out (B,E). Runs positions
 * 0..T_run-1 (1 <= T_run <= T): the CALLER GUARANTEES 0 <= eot[b] < T_run for every b (they
 * are device values, not checked here; an EOT outside gathers garbage). T_run == T costs one op;
 * T_run < T adds B row copies. eot must stay valid and unchanged until the backward that follows
 * (it reads the same positions). */
int clip_encode_text_embeds_dev(ClipModel *m, const float *embeds, const int32_t *eot, int B,
                                int T, int T_run, float *out);
/* Backward of the last text forward: dfeat (B,E) -> dembeds (B,T,Ct) (B, T of that forward;
 * rows T_run..T-1 get 0). dembeds must not alias dfeat. Errors as clip_text_backward. */
int clip_text_backward_dev(ClipModel *m, const float *dfeat, float *dembeds);
/* The backend the model runs on. */
const OpsBackend *clip_model_ops(const ClipModel *m);

/* ---- precision, memory planning, bucketed text, FLOP counts (host/model/clip.c) ---------------
 * Precision: "fp32" | "tf32" | "bf16"; GEMM path: "cublas" | "wmma" (wmma needs bf16). Weights
 * stay fp32 in the arena; only the matmul operands change (LayerNorm/softmax statistics and all
 * accumulation stay fp32). On CUDA the choice is the process-wide matmul switch of
 * kernels/ops_cuda.h; a model created while it is bf16 also keeps a bf16 copy of the whole
 * parameter arena on the device, converted once (the matmuls then read the weights from it).
 * The CPU backend computes in fp32 only (OpenBLAS sgemm); anything else is an error there. */
/* Name of the CUDA matmul algorithm for (device, precision, gemm): "fp32", "tf32",
 * "bf16-cublas", "bf16-wmma"; on device "cpu" only ("fp32", "cublas"|NULL) is valid and gives
 * "fp32". NULL gemm means "cublas". Returns NULL with a one-line error for anything else. */
const char *clip_matmul_algo(const char *device, const char *precision, const char *gemm);
/* 0 when precision (no GEMM choice) is valid on device, else -1 with clip_matmul_algo's error
 * naming `option` (e.g. "--text-precision") instead of --precision. */
int clip_check_precision(const char *device, const char *precision, const char *option);
/* clip_matmul_algo for ops->name, then selects it on the backend (CUDA). -1 with an error. */
int clip_set_precision(const OpsBackend *ops, const char *precision, const char *gemm);

/* Backend bytes clip_model_create (train = 0) or clip_model_create_train (train = 1) allocates
 * for max_batch: the parameter copy when copy_params (every backend but the CPU), its bf16 twin
 * and the bf16 operand scratch when bf16, the activation arena and the token/index buffer. */
size_t clip_model_bytes(const ClipConfig *c, int max_batch, int copy_params, int bf16, int train);
/* Largest max_batch whose clip_model_bytes fits in free_bytes less CLIP_DEVICE_RESERVE (CUDA
 * context growth, cuBLAS workspace, allocation rounding); 0 when not even one fits. */
#define CLIP_DEVICE_RESERVE ((size_t)256 << 20)
int clip_fit_batch(const ClipConfig *c, size_t free_bytes, int copy_params, int bf16, int train);
/* Records the out-of-memory error for a model of max_batch on a device with free_bytes free:
 * "clip: max_batch B needs X MiB of device memory (...), Y MiB free ---> HINT: use --batch F
 * or less" (F = clip_fit_batch), or that not even batch 1 fits. Returns -1. */
int clip_oom_error(const ClipConfig *c, int max_batch, size_t free_bytes, int copy_params,
                   int bf16, int train);

/* FLOP of one forward, counting a multiply-add as 2 and every matmul, the attention products
 * (q kᵀ and p v over the full T×T square, causal or not) and nothing else (LayerNorm, softmax,
 * GELU, embeddings are < 1%):
 *   image:  2·NP·3P²·Cv  +  NLv·(24·T·Cv² + 4·T²·Cv)  +  2·Cv·E,   T = NP + 1
 *   text:   NLt·(24·T·Ct² + 4·T²·Ct)  +  2·Ct·E,                   T = tokens run
 * (24·C² per token = 2·(3C² + C² + 4C² + 4C²): qkv, out proj, MLP fc and proj with H = 4C; the
 * code uses the real H). ViT-B/32: 8.82 GFLOP per image, 5.96 GFLOP per 77-token prompt. */
double clip_image_flop(const ClipConfig *c);
double clip_text_flop(const ClipConfig *c, int T);

/* Encodes N token rows (N,L) in batches of the model's max_batch, bucketed by length: rows are
 * sorted by EOT position (ties by index) so each batch's causal truncation to its longest EOT
 * bites; out (N,E) is in input order. Every row gets exactly the arithmetic of
 * clip_encode_text on its batch (so the result equals unbucketed encoding up to the backend's
 * GEMM rounding for a different M; bitwise on backends whose GEMM rows do not depend on M).
 * progress (may be NULL) gets the number of rows done so far. stats (may be NULL) receives the
 * FLOP actually run (clip_text_flop at each batch's truncated length, per row) and the FLOP at
 * the full length L. Host pointers. */
typedef struct {
    size_t batches;
    double flop_run;      // Σ rows · clip_text_flop(T of their batch)
    double flop_padded;   // N · clip_text_flop(L)
} ClipBucketStats;
int clip_encode_text_bucketed(ClipModel *m, const int32_t *tokens, size_t N, int L, float *out,
                              void (*progress)(void *ctx, size_t done), void *ctx,
                              ClipBucketStats *stats);
int clip_model_max_batch(const ClipModel *m);

#endif
