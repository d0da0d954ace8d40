/*
 * weights.c — the weights half of host/model/clip.h: presets, layout, load, random init, save.
 *
 * Promises (weights/FORMAT.md is the contract):
 * - clip_weights_load mmaps one safetensors file (io/safetensors.c checks the container), then
 *   checks the laic-clip metadata (format, version, every architecture number), that the file
 *   holds exactly the tensors of clip_weights_layout() for those numbers, with their shapes and
 *   one storage dtype (F32/F16/BF16). Only then does it allocate ONE float32 arena, convert every
 *   tensor into it in layout order (transposing visual.proj and text_projection so every
 *   projection is a Linear weight), point every ClipWeights pointer into it, and fill sha256 /
 *   official_vit_b_32. Any failure: -1, one message naming the file, nothing left allocated or
 *   mapped.
 * - All dimensions come from the file; presets are only for init-weights and tests.
 * - clip_weights_init is deterministic for a seed: tensor k draws from rng stream (seed, k).
 *
 * Letters (clip.h): Cv, Ct widths, Hv, Ht MLP widths, P patch, G grid, E embed, V vocab, L context.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/clip.h"
#include "model/tokenizer.h"
#include "io/err.h"
#include "io/safetensors.h"
#include "io/sha256.h"
#include "rng.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");

#define FORMAT_NAME "laic-clip"
#define FORMAT_VERSION "1"
#define OFFICIAL_VIT_B_32_SHA256 "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"
#define MAX_DIM (1 << 20)

// --- presets ------------------------------------------------------------------------------------

int clip_config_preset(ClipConfig *c, const char *arch) {
    memset(c, 0, sizeof *c);
    if (arch && !strcmp(arch, "vit-b-32")) {
        *c = (ClipConfig){.image_size = 224, .patch_size = 32, .vision_width = 768,
                          .vision_layers = 12, .vision_heads = 12, .vision_mlp = 3072,
                          .context_length = 77, .vocab_size = 49408, .text_width = 512,
                          .text_layers = 12, .text_heads = 8, .text_mlp = 2048, .embed_dim = 512};
        return 0;
    }
    if (arch && !strcmp(arch, "tiny")) {
        *c = (ClipConfig){.image_size = 32, .patch_size = 8, .vision_width = 64,
                          .vision_layers = 2, .vision_heads = 4, .vision_mlp = 256,
                          .context_length = 77, .vocab_size = 49408, .text_width = 32,
                          .text_layers = 2, .text_heads = 4, .text_mlp = 128, .embed_dim = 32};
        return 0;
    }
    return laic_error("unknown architecture '%s' (expected vit-b-32 or tiny)", arch ? arch : "");
}

int clip_check_text_vocab(const ClipWeights *w, const char *weights) {
    if (w->cfg.vocab_size >= TOKENIZER_VOCAB_SIZE) return 0;
    return laic_error("%s: the model's vocabulary has %d tokens, fewer than the %d ids the CLIP "
                      "tokenizer makes ---> HINT: text needs CLIP's vocabulary; give token ids "
                      "below %d with encode-text --tokens", weights, w->cfg.vocab_size,
                      TOKENIZER_VOCAB_SIZE, w->cfg.vocab_size);
}

// --- layout ------------------------------------------------------------------------------------

// The metadata keys of the architecture numbers, in ClipConfig's meaning.
#define N_ARCH 13
static int *arch_field(ClipConfig *c, int i) {
    int *f[N_ARCH] = {&c->image_size,     &c->patch_size, &c->vision_width, &c->vision_layers,
                      &c->vision_heads,   &c->vision_mlp, &c->context_length, &c->vocab_size,
                      &c->text_width,     &c->text_layers, &c->text_heads, &c->text_mlp,
                      &c->embed_dim};
    return f[i];
}
static const char *const ARCH_KEYS[N_ARCH] = {
    "image_size", "patch_size", "vision_width", "vision_layers", "vision_heads", "vision_mlp",
    "context_length", "vocab_size", "text_width", "text_layers", "text_heads", "text_mlp",
    "embed_dim"};

#define BLOCK_TENSORS 12
_Static_assert(sizeof(ClipBlockWeights) == BLOCK_TENSORS * sizeof(float *),
               "ClipBlockWeights changed: update BLOCK_SUFFIX, add_block and FORMAT.md");
static const char *const BLOCK_SUFFIX[BLOCK_TENSORS] = {
    "ln_1.weight", "ln_1.bias", "attn.in_proj_weight", "attn.in_proj_bias",
    "attn.out_proj.weight", "attn.out_proj.bias", "ln_2.weight", "ln_2.bias",
    "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"};

typedef struct {
    ClipTensorInfo *out;   // may be NULL (counting)
    ClipWeights *w;        // may be NULL; else pointers are set to w->params + offset
    int n;
    size_t offset;
} Walk;

static void add(Walk *k, float **ptr, int transposed, const char *name, int ndim, size_t d0,
                size_t d1, size_t d2, size_t d3) {
    size_t dims[4] = {d0, d1, d2, d3}, numel = 1;
    for (int i = 0; i < ndim; i++) numel *= dims[i];
    if (k->out) {
        ClipTensorInfo *t = &k->out[k->n];
        memset(t, 0, sizeof *t);
        snprintf(t->name, sizeof t->name, "%s", name);
        t->ndim = ndim;
        memcpy(t->shape, dims, sizeof dims);
        t->offset = k->offset;
        t->numel = numel;
        t->transposed = transposed;
    }
    if (k->w && ptr) *ptr = k->w->params + k->offset;
    k->n++;
    k->offset += numel;
}

static void add_block(Walk *k, ClipBlockWeights *b, const char *prefix, size_t C, size_t H) {
    float *dummy[BLOCK_TENSORS];
    float **p[BLOCK_TENSORS] = {dummy, dummy + 1, dummy + 2, dummy + 3, dummy + 4, dummy + 5,
                                dummy + 6, dummy + 7, dummy + 8, dummy + 9, dummy + 10, dummy + 11};
    if (b) {
        float **q[BLOCK_TENSORS] = {&b->ln_1_w, &b->ln_1_b, &b->attn_in_w, &b->attn_in_b,
                                    &b->attn_out_w, &b->attn_out_b, &b->ln_2_w, &b->ln_2_b,
                                    &b->fc_w, &b->fc_b, &b->proj_w, &b->proj_b};
        memcpy(p, q, sizeof q);
    }
    // shapes in BLOCK_SUFFIX order: (C) (C) (3C,C) (3C) (C,C) (C) (C) (C) (H,C) (H) (C,H) (C)
    const size_t r[BLOCK_TENSORS] = {C, C, 3 * C, 3 * C, C, C, C, C, H, H, C, C};
    const size_t c2[BLOCK_TENSORS] = {0, 0, C, 0, C, 0, 0, 0, C, 0, H, 0};
    char name[64];
    for (int i = 0; i < BLOCK_TENSORS; i++) {
        snprintf(name, sizeof name, "%s.%s", prefix, BLOCK_SUFFIX[i]);
        add(k, p[i], 0, name, c2[i] ? 2 : 1, r[i], c2[i], 0, 0);
    }
}

// Enumerates the layout of c (FORMAT.md order); sets w's pointers when k->w is set.
static void walk(Walk *k, const ClipConfig *c) {
    ClipWeights *w = k->w;
    size_t Cv = (size_t)c->vision_width, Ct = (size_t)c->text_width, E = (size_t)c->embed_dim;
    size_t P = (size_t)c->patch_size, G = (size_t)(c->image_size / c->patch_size);
    char prefix[48];
    add(k, w ? &w->conv1_w : NULL, 0, "visual.conv1.weight", 4, Cv, 3, P, P);
    add(k, w ? &w->class_emb : NULL, 0, "visual.class_embedding", 1, Cv, 0, 0, 0);
    add(k, w ? &w->vis_pos : NULL, 0, "visual.positional_embedding", 2, G * G + 1, Cv, 0, 0);
    add(k, w ? &w->ln_pre_w : NULL, 0, "visual.ln_pre.weight", 1, Cv, 0, 0, 0);
    add(k, w ? &w->ln_pre_b : NULL, 0, "visual.ln_pre.bias", 1, Cv, 0, 0, 0);
    for (int i = 0; i < c->vision_layers; i++) {
        snprintf(prefix, sizeof prefix, "visual.transformer.resblocks.%d", i);
        add_block(k, w ? &w->vblocks[i] : NULL, prefix, Cv, (size_t)c->vision_mlp);
    }
    add(k, w ? &w->ln_post_w : NULL, 0, "visual.ln_post.weight", 1, Cv, 0, 0, 0);
    add(k, w ? &w->ln_post_b : NULL, 0, "visual.ln_post.bias", 1, Cv, 0, 0, 0);
    add(k, w ? &w->vis_proj : NULL, 1, "visual.proj", 2, Cv, E, 0, 0);   // arena: (E, Cv)
    add(k, w ? &w->tok_emb : NULL, 0, "token_embedding.weight", 2, (size_t)c->vocab_size, Ct, 0, 0);
    add(k, w ? &w->txt_pos : NULL, 0, "positional_embedding", 2, (size_t)c->context_length, Ct, 0, 0);
    for (int i = 0; i < c->text_layers; i++) {
        snprintf(prefix, sizeof prefix, "transformer.resblocks.%d", i);
        add_block(k, w ? &w->tblocks[i] : NULL, prefix, Ct, (size_t)c->text_mlp);
    }
    add(k, w ? &w->ln_final_w : NULL, 0, "ln_final.weight", 1, Ct, 0, 0, 0);
    add(k, w ? &w->ln_final_b : NULL, 0, "ln_final.bias", 1, Ct, 0, 0, 0);
    add(k, w ? &w->text_proj : NULL, 1, "text_projection", 2, Ct, E, 0, 0);   // arena: (E, Ct)
    add(k, NULL, 0, "logit_scale", 0, 0, 0, 0, 0);   // the arena's last float, also w->logit_scale
}

int clip_weights_layout(const ClipConfig *c, ClipTensorInfo *out) {
    Walk k = {.out = out};
    walk(&k, c);
    return k.n;
}

size_t clip_param_count(const ClipConfig *c) {
    Walk k = {0};
    walk(&k, c);
    return k.offset;
}

// Allocates the arena for c and points w into it (w->cfg = *c). Values are uninitialised.
static void malloc_and_point(ClipWeights *w, const ClipConfig *c) {
    memset(w, 0, sizeof *w);
    w->cfg = *c;
    w->n_params = clip_param_count(c);
    w->params = mallocCheck(w->n_params * sizeof(float));
    Walk k = {.w = w};
    walk(&k, c);
}

void clip_weights_free(ClipWeights *w) {
    if (!w) return;
    free(w->params);
    memset(w, 0, sizeof *w);
}

// --- metadata ------------------------------------------------------------------------------------

static int parse_dim(const char *s, int *out) {
    if (!s || !*s) return -1;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || p - s > 8) return -1;
        v = v * 10 + (*p - '0');
    }
    if (v < 1 || v > MAX_DIM || (s[0] == '0')) return -1;
    *out = (int)v;
    return 0;
}

static int is_hex64(const char *s) {
    if (!s || strlen(s) != 64) return 0;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

// Reads and checks the laic-clip metadata of an open file into c.
static int read_meta(const StFile *f, const char *path, ClipConfig *c) {
    if (!f->meta)
        return laic_error("%s: no __metadata__: not a laic weights file ---> HINT: convert it with "
                          "scripts/convert_weights.py", path);
    const char *fmt = st_meta(f, "format"), *ver = st_meta(f, "format_version");
    if (!fmt || strcmp(fmt, FORMAT_NAME))
        return laic_error("%s: __metadata__ format is '%s', expected '%s' ---> HINT: convert it with "
                          "scripts/convert_weights.py", path, fmt ? laic_escs(fmt) : "(missing)", FORMAT_NAME);
    if (!ver || strcmp(ver, FORMAT_VERSION))
        return laic_error("%s: unknown format_version '%s' (this laic reads version %s)", path,
                          ver ? laic_escs(ver) : "(missing)", FORMAT_VERSION);
    memset(c, 0, sizeof *c);
    for (int i = 0; i < N_ARCH; i++) {
        const char *v = st_meta(f, ARCH_KEYS[i]);
        if (!v) return laic_error("%s: __metadata__ has no '%s'", path, ARCH_KEYS[i]);
        if (parse_dim(v, arch_field(c, i)))
            return laic_error("%s: __metadata__ '%s' = '%.32s' is not an integer in [1, %d]", path,
                              ARCH_KEYS[i], laic_escs(v), MAX_DIM);
    }
    if (c->image_size % c->patch_size)
        return laic_error("%s: __metadata__ image_size %d is not a multiple of patch_size %d", path,
                          c->image_size, c->patch_size);
    if (c->vision_width % c->vision_heads || c->text_width % c->text_heads)
        return laic_error("%s: __metadata__ width not divisible by heads (vision %d/%d, text %d/%d)",
                          path, c->vision_width, c->vision_heads, c->text_width, c->text_heads);
    if (c->vision_layers > CLIP_MAX_LAYERS || c->text_layers > CLIP_MAX_LAYERS)
        return laic_error("%s: __metadata__ layers %d/%d exceed CLIP_MAX_LAYERS (%d)", path,
                          c->vision_layers, c->text_layers, CLIP_MAX_LAYERS);
    const char *src = st_meta(f, "source"), *ssha = st_meta(f, "source_sha256");
    if (!src || !*src) return laic_error("%s: __metadata__ has no 'source'", path);
    if (!ssha || (strcmp(ssha, "none") && !is_hex64(ssha)))
        return laic_error("%s: __metadata__ 'source_sha256' must be 64 lowercase hex digits or 'none'",
                          path);
    return 0;
}

// --- load ----------------------------------------------------------------------------------------

static void fmt_shape(char *buf, size_t n, int ndim, const size_t *shape) {
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%zu", i ? "," : "", shape[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

static inline float load_elem(const uint8_t *p, size_t i, int dt) {
    if (dt == 0) {
        float v;
        memcpy(&v, p + 4 * i, 4);   // the data section need not be 4-byte aligned
        return v;
    }
    uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
    return dt == 1 ? st_f16_to_f32(h) : st_bf16_to_f32(h);
}

int clip_weights_load(ClipWeights *w, const char *path) {
    memset(w, 0, sizeof *w);
    StFile f;
    if (st_open(&f, path)) return -1;
    ClipConfig c;
    ClipTensorInfo *lay = NULL;
    const StTensor **src = NULL;
    if (read_meta(&f, path, &c)) goto fail;
    int n = clip_weights_layout(&c, NULL);
    lay = mallocCheck((size_t)n * sizeof *lay);
    src = mallocCheck((size_t)n * sizeof *src);
    clip_weights_layout(&c, lay);
    // every expected tensor present with its shape, one storage dtype
    const char *dtype = NULL, *dtype_of = NULL;
    for (int i = 0; i < n; i++) {
        const StTensor *t = st_find(&f, lay[i].name);
        if (!t) {
            laic_error("%s: missing tensor '%s'", path, lay[i].name);
            goto fail;
        }
        if (strcmp(t->dtype, "F32") && strcmp(t->dtype, "F16") && strcmp(t->dtype, "BF16")) {
            laic_error("%s: tensor '%s' has dtype %s; laic weights are F32, F16 or BF16", path,
                       t->name, t->dtype);
            goto fail;
        }
        if (!dtype) {
            dtype = t->dtype;
            dtype_of = t->name;
        } else if (strcmp(dtype, t->dtype)) {
            laic_error("%s: tensor '%s' has dtype %s but '%s' has %s (one storage dtype per file)",
                       path, t->name, t->dtype, dtype_of, dtype);
            goto fail;
        }
        int same = t->ndim == lay[i].ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == lay[i].shape[d];
        if (!same) {
            char got[96], want[96];
            fmt_shape(got, sizeof got, t->ndim, t->shape);
            fmt_shape(want, sizeof want, lay[i].ndim, lay[i].shape);
            laic_error("%s: tensor '%s' has shape %s, expected %s from __metadata__", path, t->name,
                       got, want);
            goto fail;
        }
        src[i] = t;
    }
    if (f.n_tensors != n) {   // all n expected names were found and names are unique: extras
        for (int j = 0; j < f.n_tensors; j++) {
            int known = 0;
            for (int i = 0; i < n && !known; i++) known = src[i] == &f.tensors[j];
            if (!known) {
                laic_error("%s: unexpected tensor '%s' (not part of a laic-clip v%s file)", path,
                           laic_escs(f.tensors[j].name), FORMAT_VERSION);
                goto fail;
            }
        }
    }
    // convert into the arena in layout order
    malloc_and_point(w, &c);
    int dt = !strcmp(dtype, "F32") ? 0 : !strcmp(dtype, "F16") ? 1 : 2;
    snprintf(w->storage_dtype, sizeof w->storage_dtype, "%s", dtype);
    for (int i = 0; i < n; i++) {
        float *dst = w->params + lay[i].offset;
        const uint8_t *p = src[i]->data;
        if (lay[i].transposed) {   // file (R, K) -> arena (K, R)
            size_t R = lay[i].shape[0], K = lay[i].shape[1];
            for (size_t r = 0; r < R; r++)
                for (size_t k = 0; k < K; k++) dst[k * R + r] = load_elem(p, r * K + k, dt);
        } else if (dt == 0) {
            memcpy(dst, p, lay[i].numel * sizeof(float));
        } else {
            for (size_t j = 0; j < lay[i].numel; j++) dst[j] = load_elem(p, j, dt);
        }
    }
    w->logit_scale = w->params[w->n_params - 1];
    if (!isfinite(w->logit_scale)) {
        laic_error("%s: logit_scale is not finite", path);
        goto fail;
    }
    sha256_hex(f.map, f.file_size, w->sha256);
    {
        const char *s = st_meta(&f, "source"), *ssha = st_meta(&f, "source_sha256");
        ClipConfig ref;
        clip_config_preset(&ref, "vit-b-32");
        w->official_vit_b_32 = !strcmp(s, "openai") && !strcmp(ssha, OFFICIAL_VIT_B_32_SHA256) &&
                               !memcmp(&ref, &c, sizeof c);
    }
    free(lay);
    free(src);
    st_close(&f);
    return 0;
fail:
    free(lay);
    free(src);
    st_close(&f);
    clip_weights_free(w);
    return -1;
}

// --- random init -------------------------------------------------------------------------------

// CLIP-style std of one layout tensor (FORMAT.md "Random initialisation"); <0 for constants.
static double init_std(const ClipConfig *c, const char *name, double *constant) {
    int vis = !strncmp(name, "visual.", 7);
    double W = vis ? c->vision_width : c->text_width, N = vis ? c->vision_layers : c->text_layers;
    const char *suf = strrchr(name, '.');
    suf = suf ? suf + 1 : name;
    *constant = 0;
    if (!strcmp(name, "logit_scale")) { *constant = log(1 / 0.07); return -1; }
    if (strstr(name, "ln_") && !strcmp(suf, "weight")) { *constant = 1; return -1; }
    if (strstr(name, "bias")) return -1;   // every bias, LayerNorm's too: 0
    if (!strcmp(name, "token_embedding.weight")) return 0.02;
    if (!strcmp(name, "positional_embedding")) return 0.01;
    if (!strcmp(name, "visual.class_embedding") || !strcmp(name, "visual.positional_embedding") ||
        !strcmp(name, "visual.proj"))
        return pow(c->vision_width, -0.5);
    if (!strcmp(name, "visual.conv1.weight")) return pow(3.0 * c->patch_size * c->patch_size, -0.5);
    if (!strcmp(name, "text_projection")) return pow(c->text_width, -0.5);
    if (strstr(name, "attn.in_proj_weight")) return pow(W, -0.5);
    if (strstr(name, "attn.out_proj.weight") || strstr(name, "mlp.c_proj.weight"))
        return pow(W, -0.5) * pow(2 * N, -0.5);
    if (strstr(name, "mlp.c_fc.weight")) return pow(2 * W, -0.5);
    LAIC_ASSERT(0 && "init_std: tensor without a rule");
    return -1;
}

int clip_weights_init(ClipWeights *w, const ClipConfig *c, uint64_t seed) {
    int n = clip_weights_layout(c, NULL);
    ClipTensorInfo *lay = mallocCheck((size_t)n * sizeof *lay);
    clip_weights_layout(c, lay);
    malloc_and_point(w, c);
    for (int i = 0; i < n; i++) {
        double k;
        double std = init_std(c, lay[i].name, &k);
        float *dst = w->params + lay[i].offset;
        if (std < 0) {
            for (size_t j = 0; j < lay[i].numel; j++) dst[j] = (float)k;
            continue;
        }
        Rng r;
        rng_init(&r, seed, (uint64_t)i);
        if (lay[i].transposed) {   // draw in file order so the values match the file's layout
            size_t R = lay[i].shape[0], K = lay[i].shape[1];
            for (size_t a = 0; a < R; a++)
                for (size_t b = 0; b < K; b++) dst[b * R + a] = (float)(std * rng_normal(&r));
        } else {
            for (size_t j = 0; j < lay[i].numel; j++) dst[j] = (float)(std * rng_normal(&r));
        }
    }
    free(lay);
    w->logit_scale = w->params[w->n_params - 1];
    snprintf(w->storage_dtype, sizeof w->storage_dtype, "F32");
    return 0;
}

// --- save ---------------------------------------------------------------------------------------

int clip_weights_save(const ClipWeights *w, const char *path, const char *dtype,
                      const char *const *extra_meta, int n_extra) {
    int dt = !strcmp(dtype, "F32") ? 0 : !strcmp(dtype, "F16") ? 1 : !strcmp(dtype, "BF16") ? 2 : -1;
    if (dt < 0) return laic_error("%s: unknown storage dtype '%s' (F32, F16 or BF16)", path, dtype);
    const ClipConfig *c = &w->cfg;
    int n = clip_weights_layout(c, NULL);
    ClipTensorInfo *lay = mallocCheck((size_t)n * sizeof *lay);
    clip_weights_layout(c, lay);
    size_t es = dt ? 2 : 4;
    uint8_t *buf = mallocCheck(w->n_params * es);   // the whole data section, file order
    StWriteTensor *t = mallocCheck((size_t)n * sizeof *t);
    for (int i = 0; i < n; i++) {
        const float *s = w->params + lay[i].offset;
        uint8_t *d = buf + lay[i].offset * es;
        size_t R = lay[i].transposed ? lay[i].shape[0] : 1, K = lay[i].transposed ? lay[i].shape[1] : 0;
        for (size_t j = 0; j < lay[i].numel; j++) {
            // file element j of a transposed tensor (r, k) lives at arena (k, r)
            float v = lay[i].transposed ? s[(j % K) * R + j / K] : s[j];
            if (dt == 0) {
                memcpy(d + 4 * j, &v, 4);
            } else {
                uint16_t h = dt == 1 ? st_f32_to_f16(v) : st_f32_to_bf16(v);
                d[2 * j] = (uint8_t)h;
                d[2 * j + 1] = (uint8_t)(h >> 8);
            }
        }
        t[i] = (StWriteTensor){.name = lay[i].name, .dtype = dtype, .ndim = lay[i].ndim, .data = d};
        memcpy(t[i].shape, lay[i].shape, sizeof lay[i].shape);
    }
    char nums[N_ARCH][16];
    const char **meta = mallocCheck((size_t)(2 + N_ARCH + n_extra) * 2 * sizeof *meta);
    int nm = 0;
    meta[2 * nm] = "format", meta[2 * nm + 1] = FORMAT_NAME, nm++;
    meta[2 * nm] = "format_version", meta[2 * nm + 1] = FORMAT_VERSION, nm++;
    ClipConfig cc = *c;
    for (int i = 0; i < N_ARCH; i++) {
        snprintf(nums[i], sizeof nums[i], "%d", *arch_field(&cc, i));
        meta[2 * nm] = ARCH_KEYS[i], meta[2 * nm + 1] = nums[i], nm++;
    }
    for (int i = 0; i < n_extra; i++)
        meta[2 * nm] = extra_meta[2 * i], meta[2 * nm + 1] = extra_meta[2 * i + 1], nm++;
    int rc = st_write(path, meta, nm, t, n);
    free(meta);
    free(t);
    free(buf);
    free(lay);
    return rc;
}
