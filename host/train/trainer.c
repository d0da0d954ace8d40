/*
 * trainer.c — the prompt-learning loop (SPEC §7); promises in trainer.h.
 *
 * One step, for a batch of b <= B samples (b < B only for an epoch's last batch):
 *   host    fetch the b images (get_image, OpenMP) → train_views_forward: weak rows 0..b-1 and
 *           strong rows b..2b-1 of `pix` (synchronous op); feature mode uploads X's rows to F
 *           instead. Then y32/hq of the batch are uploaded.
 *   device  ("the device step": ops only, no host copy, no allocation, no synchronisation)
 *     image  F = l2norm(encode_image(pix)), (2b,E), frozen, no gradient   [image mode]
 *     text   emb's learnable rows ← vec (strided_copy); U = encode_text_embeds(emb) by chunks
 *            of the text model's batch; W = l2norm(U), (K,E)
 *     loss   terms, dW = prompt_loss_forward_backward(F, W, ŷ, hq)   (train.h's loss)
 *     back   dU = l2norm_backward(dW) → demb = text backward per chunk (re-run forward first
 *            when K is chunked: the training arena holds one chunk) → G ← demb's learnable rows
 *     update sgd_forward(vec, mom, G, lr)   (lr is a backend double set at each epoch start)
 *   host    terms → host (the loss for the log): the step's one synchronisation.
 *
 * Buffers: one backend arena allocated up front (carve_arena), freed on every path: pix
 * (2B,3,S,S), F (2B,E), emb (K,T,D) whose fixed rows (SOT, prefix, EOT token embeddings) are
 * written once, demb (chunk,T,D), U Uc W dW dU (K,E), G vec mom (K,M,D), eot (chunk) int32,
 * y32 (B) int32, hq (B) uint8, lr (1) double, terms (6) double. The vectors and momentum live
 * on the backend while training and are copied into the host TrainState at each epoch's end
 * (checkpoint) — the only host copies besides the batch upload and the terms.
 *
 * CUDA graph rule (TrainerOpts.graph, on a backend with graph_capture): the first step of each
 * batch size is run eagerly (warm-up: cuBLAS workspaces and other lazy allocations happen
 * there, and SGD creates its momentum buffer, so have_buf is 1 from then on); the next step of
 * that size captures the device step once, and every later step of that size replays it. An
 * epoch's last, smaller batch therefore gets its own graph (warm in epoch 1, captured in epoch
 * 2): at most two graphs per run. Everything a graph reads that changes between steps (pix, F,
 * y32, hq, vec, mom, lr) is updated in place in the arena before the launch.
 *
 * On the CPU backend the arena is host memory, every op is synchronous and the step computes
 * exactly what the previous host-array trainer did, bit for bit (same ops, same order; the
 * l2norm ops round as its double-accumulated normalisation did).
 * Dimension legend as in trainer.h.
 */
#include "train/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/augment.h"
#include "model/image.h"
#include "comm.h"
#include "io/err.h"
#include "io/hash.h"
#include "io/progress.h"
#include "model/tokenizer.h"
#include "train/log.h"

// The shuffle stream's id (rng_init(seed, stream)); apart from init and augmentation streams.
#define SHUFFLE_STREAM 0x5F1FF1Eull
#define DEFAULT_TEXT_CHUNK 100

void trainer_opts_default(TrainerOpts *o) {
    memset(o, 0, sizeof *o);
    o->epochs = 20;
    o->batch = 32;
    o->n_ctx = 4;
    o->init_std = 0.02;
    o->prefix = "a photo of a";
    loss_config_default(&o->loss);
    sgd_config_default(&o->sgd);
    o->seed = 1234;
    o->graph = 1;
    o->text_precision = "fp32";
}

void trainer_result_free(TrainResult *r) {
    train_state_free(&r->st);
    free(r->W);
    free(r->epoch_loss);
    free(r->epoch_lr);
    memset(r, 0, sizeof *r);
}

void trainer_predict(int64_t *pred, const float *X, size_t Ne, const float *W, int K, int E) {
    for (size_t i = 0; i < Ne; i++) {
        const float *x = X + i * E;
        int best = 0;
        double bs = -INFINITY;
        for (int c = 0; c < K; c++) {
            double s = 0.0;
            for (int e = 0; e < E; e++) s += (double)x[e] * W[(size_t)c * E + e];
            if (s > bs) bs = s, best = c;   // strict: ties keep the lowest c
        }
        pred[i] = best;
    }
}

// --- the loop's working set ------------------------------------------------------------------

typedef struct Loop Loop;

// What a device step needs besides the Loop: fixed for the life of a graph.
typedef struct {
    Loop *L;
    int b;          // samples in the batch
    int have_buf;   // SGD momentum buffer exists (1 in every captured step)
    int rc;         // -1 when an entry point refused its arguments (host-side checks)
} StepCtx;

typedef struct {
    int b;          // batch size this slot serves (0 = free)
    int warm;       // one eager step of this size has run
    void *graph;    // captured device step (NULL until captured)
    StepCtx ctx;    // the graph's context: stable address for the life of the graph
} GraphSlot;

#define MAX_GRAPHS 2   // the full batch and an epoch's last, smaller one

struct Loop {
    const ClipWeights *w;
    ClipModel *img, *txt;
    const OpsBackend *ops;
    const TrainData *d;
    const TrainerOpts *o;
    int K, M, D, E, P, T, S, chunk, ib, mask;
    int nranks, rank;         // data parallel (host/comm.h via the backend); 1, 0 alone
    int dist;                 // take the data-parallel paths (nranks > 1, or comm_forced)
    size_t blo, bhi;          // this rank's samples [blo, bhi) of the current batch
    size_t nv;                // K*M*D
    // host
    int32_t *prefix_ids;      // (P)
    size_t *perm;             // (N)
    int32_t *y32_h;           // (B)
    uint8_t *hq_h;            // (B)
    float *F_h;               // (2B,E) feature mode staging
    uint8_t **rgb;            // (B) fetched images, image mode
    int *ih, *iw;             // (B)
    double lr_h, terms_h[6];
    // backend arena
    void *arena;
    float *pix;               // (2B,3,S,S) image mode only
    float *F;                 // (2B,E) view features: weak rows 0..b-1, strong rows b..2b-1
    float *emb;               // (K,T,D) prompt embeddings
    float *demb;              // (chunk,T,D)
    float *U, *Uc, *W, *dW, *dU;   // (K,E); Uc scratch for a chunk's re-forward
    float *G, *vec, *mom;     // (K,M,D)
    int32_t *eot;             // (chunk) all T-1
    int32_t *y32;             // (B)
    uint8_t *hq;              // (B)
    double *lr;               // (1)
    double *terms;            // (6) LossValue's fields
    GraphSlot slot[MAX_GRAPHS];
    float *Floc;              // (2B,E) this rank's view features before the gather (ranks > 1)
};

// Carves the backend arena; sizes in bytes, each slot 256-byte aligned (device loads).
static int carve_arena(Loop *L, int B, int image_mode) {
    const size_t E = (size_t)L->E, D = (size_t)L->D, T = (size_t)L->T, K = (size_t)L->K;
    const size_t S = (size_t)L->S, ch = (size_t)L->chunk;
    void **ptrs[] = {(void **)&L->pix, (void **)&L->F,    (void **)&L->emb, (void **)&L->demb,
                     (void **)&L->U,   (void **)&L->Uc,   (void **)&L->W,   (void **)&L->dW,
                     (void **)&L->dU,  (void **)&L->G,    (void **)&L->vec, (void **)&L->mom,
                     (void **)&L->eot, (void **)&L->y32,  (void **)&L->hq,  (void **)&L->lr,
                     (void **)&L->terms, (void **)&L->Floc};
    const size_t bytes[] = {image_mode ? (size_t)2 * B * 3 * S * S * sizeof(float) : 0,
                            (size_t)2 * B * E * sizeof(float), K * T * D * sizeof(float),
                            ch * T * D * sizeof(float), K * E * sizeof(float),
                            K * E * sizeof(float), K * E * sizeof(float), K * E * sizeof(float),
                            K * E * sizeof(float), L->nv * sizeof(float),
                            L->nv * sizeof(float), L->nv * sizeof(float),
                            ch * sizeof(int32_t), (size_t)B * sizeof(int32_t), (size_t)B,
                            sizeof(double), 6 * sizeof(double),
                            L->dist ? (size_t)2 * B * E * sizeof(float) : 0};
    enum { NSLOT = sizeof bytes / sizeof bytes[0] };
    _Static_assert(sizeof ptrs / sizeof ptrs[0] == NSLOT, "one size per arena pointer");
    size_t off[NSLOT], total = 0;
    for (int i = 0; i < NSLOT; i++) {
        off[i] = total;
        total += (bytes[i] + 255) / 256 * 256;
    }
    if (!(L->arena = L->ops->alloc(total))) return -1;
    for (int i = 0; i < NSLOT; i++) *ptrs[i] = bytes[i] ? (char *)L->arena + off[i] : NULL;
    return 0;
}

// emb (K,T,D): SOT, prefix, (vectors: refreshed every step), EOT rows, written once.
static void upload_fixed_rows(Loop *L) {
    const int D = L->D, T = L->T, P = L->P;
    const float *te = L->w->tok_emb;   // (V,D) host weights
    float *e = callocCheck((size_t)L->K * T * D, sizeof *e);
    for (int c = 0; c < L->K; c++) {
        float *r = e + (size_t)c * T * D;
        memcpy(r, te + (size_t)TOKENIZER_SOT * D, (size_t)D * sizeof *r);
        for (int p = 0; p < P; p++)
            memcpy(r + (size_t)(1 + p) * D, te + (size_t)L->prefix_ids[p] * D, (size_t)D * sizeof *r);
        memcpy(r + (size_t)(T - 1) * D, te + (size_t)TOKENIZER_EOT * D, (size_t)D * sizeof *r);
    }
    L->ops->to_device(L->emb, e, (size_t)L->K * T * D * sizeof *e);
    int32_t *eot = mallocCheck((size_t)L->chunk * sizeof *eot);
    for (int j = 0; j < L->chunk; j++) eot[j] = T - 1;
    L->ops->to_device(L->eot, eot, (size_t)L->chunk * sizeof *eot);
    L->ops->synchronize();   // the host staging is freed next
    free(eot);
    free(e);
}

// --- the device step, in parts (each only enqueues ops) ----------------------------------------

// Data parallel: rows of each rank's part [blo, bhi) of a batch of b gathered into rows
// base + [0, b) of buf (row_len floats each), in rank order (= sample order).
static void gather_batch_rows(Loop *L, float *buf, size_t b, size_t row_len) {
    size_t *counts = mallocCheck(sizeof(size_t) * (size_t)L->nranks);
    for (int q = 0; q < L->nranks; q++) {
        size_t lo, hi;
        comm_shard(b, 1, q, L->nranks, &lo, &hi);
        counts[q] = (hi - lo) * row_len * sizeof(float);
    }
    L->ops->allgather(buf, counts);
    free(counts);
}

// F (2b,E) = l2norm(encode_image(pix)) in image chunks of ib views. Data parallel: this rank
// encodes the views of its samples [blo, bhi) (pix holds its weak then its strong views), puts
// them at their rows of F (weak rows blo.., strong rows b + blo..), and the ranks gather both
// halves: every rank then holds the whole batch's features, so the loss below is the one-process
// loss of the whole batch.
static int part_image(Loop *L, int b) {
    const size_t plane = (size_t)3 * L->S * L->S, E = (size_t)L->E;
    const int nb = L->dist ? (int)(L->bhi - L->blo) : b;   // samples encoded here
    float *out = L->dist ? L->Floc : L->F;
    for (int j0 = 0; j0 < 2 * nb; j0 += L->ib) {
        int n = 2 * nb - j0 < L->ib ? 2 * nb - j0 : L->ib;
        if (clip_encode_images_dev(L->img, L->pix + (size_t)j0 * plane, n, out + (size_t)j0 * E))
            return -1;
    }
    if (L->dist) {
        L->ops->copy(L->F + L->blo * E, out, (size_t)nb * E * sizeof(float));
        L->ops->copy(L->F + ((size_t)b + L->blo) * E, out + (size_t)nb * E,
                     (size_t)nb * E * sizeof(float));
        gather_batch_rows(L, L->F, (size_t)b, E);
        gather_batch_rows(L, L->F + (size_t)b * E, (size_t)b, E);
    }
    L->ops->l2norm_forward(L->F, L->F, 2 * b, L->E);
    return 0;
}

// Data parallel text tower: the prompt chunks (of L->chunk prompts, the one-process chunks) are
// dealt out to the ranks; [*c0, *c1) are this rank's prompts (all of them alone).
static void my_chunks(const Loop *L, int *c0, int *c1) {
    const size_t nch = ((size_t)L->K + L->chunk - 1) / L->chunk;
    size_t lo, hi;
    comm_shard(nch, 1, L->rank, L->nranks, &lo, &hi);
    *c0 = (int)(lo * L->chunk < (size_t)L->K ? lo * L->chunk : (size_t)L->K);
    *c1 = (int)(hi * L->chunk < (size_t)L->K ? hi * L->chunk : (size_t)L->K);
}

// buf (K rows of row_len floats): every rank's chunk rows, gathered.
static void gather_chunk_rows(Loop *L, float *buf, size_t row_len) {
    if (!L->dist) return;
    const size_t nch = ((size_t)L->K + L->chunk - 1) / L->chunk;
    size_t *counts = mallocCheck(sizeof(size_t) * (size_t)L->nranks);
    for (int q = 0; q < L->nranks; q++) {
        size_t lo, hi;
        comm_shard(nch, 1, q, L->nranks, &lo, &hi);
        size_t p0 = lo * L->chunk < (size_t)L->K ? lo * L->chunk : (size_t)L->K;
        size_t p1 = hi * L->chunk < (size_t)L->K ? hi * L->chunk : (size_t)L->K;
        counts[q] = (p1 - p0) * row_len * sizeof(float);
    }
    L->ops->allgather(buf, counts);
    free(counts);
}

// emb's learnable rows ← vec; U (K,E) by chunks; W = l2norm(U).
static int part_text_forward(Loop *L) {
    const int D = L->D, T = L->T, M = L->M;
    L->ops->strided_copy(L->emb + (size_t)(1 + L->P) * D, (size_t)T * D, L->vec, (size_t)M * D,
                         L->K, (size_t)M * D);
    int p0, p1;
    my_chunks(L, &p0, &p1);
    for (int c0 = p0; c0 < p1; c0 += L->chunk) {
        int n = L->K - c0 < L->chunk ? L->K - c0 : L->chunk;
        if (clip_encode_text_embeds_dev(L->txt, L->emb + (size_t)c0 * T * D, L->eot, n, T, T,
                                        L->U + (size_t)c0 * L->E))
            return -1;
    }
    gather_chunk_rows(L, L->U, (size_t)L->E);
    L->ops->l2norm_forward(L->W, L->U, L->K, L->E);
    return 0;
}

// terms, dW = loss(F, W); dU = l2norm backward.
static void part_loss(Loop *L, int b) {
    const LossConfig *lc = &L->o->loss;
    L->ops->prompt_loss_forward_backward(L->terms, L->dW, L->F, L->W, L->y32, L->hq, b, L->K,
                                         L->E, L->mask, lc->q, lc->alpha, lc->beta, lc->scale);
    L->ops->l2norm_backward(L->dU, L->dW, L->U, L->K, L->E);
}

// G (K,M,D) = dL/dv from dU, then the SGD update of vec. With one chunk the forward just run is
// still in the training arena; with several, each chunk is run again before its backward.
static int part_text_backward_update(Loop *L, int have_buf) {
    const int D = L->D, T = L->T, M = L->M;
    int p0, p1;
    my_chunks(L, &p0, &p1);
    for (int c0 = p0; c0 < p1; c0 += L->chunk) {
        int n = L->K - c0 < L->chunk ? L->K - c0 : L->chunk;
        if (L->chunk < L->K &&
            clip_encode_text_embeds_dev(L->txt, L->emb + (size_t)c0 * T * D, L->eot, n, T, T,
                                        L->Uc))
            return -1;
        if (clip_text_backward_dev(L->txt, L->dU + (size_t)c0 * L->E, L->demb)) return -1;
        // only the learnable rows 1+P .. P+M carry a parameter
        L->ops->strided_copy(L->G + (size_t)c0 * M * D, (size_t)M * D,
                             L->demb + (size_t)(1 + L->P) * D, (size_t)T * D, n, (size_t)M * D);
    }
    gather_chunk_rows(L, L->G, (size_t)M * D);   // every rank's prompts' gradient rows
    const SgdConfig *sc = &L->o->sgd;
    L->ops->sgd_forward(L->vec, L->mom, L->G, L->lr, L->nv, sc->momentum, sc->weight_decay,
                        have_buf);
    return 0;
}

// The whole device step as one function of its context: what a graph captures.
static void device_step(void *ctx) {
    StepCtx *c = ctx;
    Loop *L = c->L;
    c->rc = 0;
    if ((L->d->get_image && part_image(L, c->b)) || part_text_forward(L)) {
        c->rc = -1;
        return;
    }
    part_loss(L, c->b);
    if (part_text_backward_update(L, c->have_buf)) c->rc = -1;
}

// The same step eagerly, timed part by part. The backend runs asynchronously (CUDA), so each
// part is timed to a synchronize() after it: on the CPU (synchronous) that is the part's own
// time; on a device it is the time the part took to drain. A replayed graph has no such points
// inside and is timed as a whole (TrainResult.t_graph).
static int eager_step(Loop *L, int b, int have_buf, TrainResult *res) {
    const OpsBackend *o = L->ops;
    double t0 = now_seconds();
    if (L->d->get_image && part_image(L, b)) return -1;
    o->synchronize();
    double t1 = now_seconds();
    if (part_text_forward(L)) return -1;
    o->synchronize();
    double t2 = now_seconds();
    part_loss(L, b);
    o->synchronize();
    double t3 = now_seconds();
    if (part_text_backward_update(L, have_buf)) return -1;
    o->synchronize();
    res->t_image += t1 - t0;
    res->t_text += (t2 - t1) + (now_seconds() - t3);
    res->t_loss += t3 - t2;
    return 0;
}

// Host part of a step: the batch's inputs into the arena (views or features, labels).
static int stage_batch(Loop *L, const size_t *idx, int b, int epoch, TrainResult *res) {
    const TrainData *d = L->d;
    const OpsBackend *o = L->ops;
    const int E = L->E;
    for (int j = 0; j < b; j++) {
        L->hq_h[j] = d->hq[idx[j]] != 0;
        L->y32_h[j] = L->hq_h[j] ? (int32_t)d->yhat[idx[j]] : 0;
    }
    o->to_device(L->y32, L->y32_h, (size_t)b * sizeof *L->y32_h);
    o->to_device(L->hq, L->hq_h, (size_t)b);
    if (!d->get_image) {   // feature mode: both views are the clean features
        for (int j = 0; j < b; j++) {
            memcpy(L->F_h + (size_t)j * E, d->X + idx[j] * E, (size_t)E * sizeof *L->F_h);
            memcpy(L->F_h + (size_t)(b + j) * E, d->X + idx[j] * E, (size_t)E * sizeof *L->F_h);
        }
        o->to_device(L->F, L->F_h, (size_t)2 * b * E * sizeof *L->F_h);
        return 0;
    }
    double t0 = now_seconds();
    int bad = 0;
    char *err = NULL;
    // data parallel: this rank makes the views of its samples [blo, bhi) only (part_image)
    comm_shard((size_t)b, 1, L->rank, L->nranks, &L->blo, &L->bhi);
    idx += L->blo;
    b = (int)(L->bhi - L->blo);
#pragma omp parallel for schedule(dynamic)
    for (int j = 0; j < b; j++) {
        L->rgb[j] = NULL;
        if (d->get_image(d->img_ctx, idx[j], &L->rgb[j], &L->ih[j], &L->iw[j])) {
#pragma omp critical(trainer_err)
            {
                if (!bad) err = strdup(laic_last_error());
                bad = 1;
            }
        }
    }
    int rc = 0;
    if (bad) {
        laic_error("%s", err ? err : "train: image read failed");
        rc = -1;
    } else if (b > 0) {
        rc = o->train_views_forward(L->pix, (const uint8_t *const *)L->rgb, L->ih, L->iw, idx, b,
                                    L->S, L->o->seed, (uint64_t)epoch);
    }
    free(err);
    for (int j = 0; j < b; j++) {
        free(L->rgb[j]);
        L->rgb[j] = NULL;
    }
    res->t_views += now_seconds() - t0;
    return rc;
}

// Runs the device step for a batch of b: eagerly, or through the graph of its batch size.
static int run_step(Loop *L, int b, TrainState *st, TrainResult *res) {
    const OpsBackend *o = L->ops;
    GraphSlot *g = NULL;
    // no graphs with several ranks: the step then holds collectives (see trainer.h)
    if (L->o->graph && o->graph_capture && !L->dist) {
        for (int i = 0; i < MAX_GRAPHS && !g; i++)
            if (L->slot[i].b == b || L->slot[i].b == 0) g = &L->slot[i];
        if (!g) return laic_error("train: more than %d batch sizes in one run", MAX_GRAPHS);
        g->b = b;
    }
    if (!g || !g->warm || !st->have_mom) {
        if (eager_step(L, b, st->have_mom, res)) return -1;
        st->have_mom = 1;
        if (g) g->warm = 1;
        return 0;
    }
    if (!g->graph) {
        g->ctx = (StepCtx){.L = L, .b = b, .have_buf = 1};
        g->graph = o->graph_capture(device_step, &g->ctx);
        if (!g->graph)
            return laic_error("train: capturing the step as a CUDA graph failed: %s ---> HINT: "
                              "set train.cuda_graph=0 (--no-graph)", laic_last_error());
        if (g->ctx.rc) return -1;
        res->graph_captures++;
    }
    double t0 = now_seconds();
    if (o->graph_launch(g->graph)) return -1;
    o->synchronize();
    res->t_graph += now_seconds() - t0;
    return 0;
}

// vec, mom (backend) → the host TrainState.
static void download_state(Loop *L, TrainState *st) {
    L->ops->to_host(st->vec, L->vec, L->nv * sizeof *st->vec);
    L->ops->to_host(st->mom, L->mom, L->nv * sizeof *st->mom);
    L->ops->synchronize();
}

static void loop_free(Loop *L) {
    for (int i = 0; i < MAX_GRAPHS; i++)
        if (L->slot[i].graph) L->ops->graph_free(L->slot[i].graph);
    if (L->arena) L->ops->free(L->arena);
    clip_model_free(L->txt);
    free(L->prefix_ids);
    free(L->perm);
    free(L->y32_h);
    free(L->hq_h);
    free(L->F_h);
    free(L->rgb);
    free(L->ih);
    free(L->iw);
}

// The ops the step calls that a backend may not have yet (NULL entries).
static int check_backend(const OpsBackend *ops, int image_mode) {
    const struct { const void *fn; const char *name; } need[] = {
        {(const void *)ops->strided_copy, "strided_copy"},
        {(const void *)ops->prompt_loss_forward_backward, "prompt_loss_forward_backward"},
        {(const void *)ops->sgd_forward, "sgd_forward"},
        {(const void *)ops->l2norm_forward, "l2norm_forward"},
        {(const void *)ops->l2norm_backward, "l2norm_backward"},
        {image_mode ? (const void *)ops->train_views_forward : (const void *)ops->sgd_forward,
         "train_views_forward"},
    };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (!need[i].fn)
            return laic_error("train: the %s backend has no %s op yet ---> HINT: train with "
                              "--device cpu (model.device=cpu)", ops->name, need[i].name);
    return 0;
}

// --- the settings a checkpoint records ---------------------------------------------------------

/* Every setting that changes the result of training, "key = value" per line, named by its
 * `laic run` config key (train-centers options map one to one: train.lr is --lr). A resumed run
 * must match each of them: resuming with another learning rate, loss, data or model would give a
 * result no uninterrupted run gives. (cuda_graph is not here: it never changes the bits.) */
static char *hparams_text(const ClipWeights *w, ClipModel *img, const OpsBackend *ops,
                          const TrainData *d, const TrainerOpts *o) {
    HparamsText t = {0};
    hparams_add(&t, "train.epochs", "%d", o->epochs);
    hparams_add(&t, "train.schedule_epochs", "%d", o->sgd.max_epoch);
    hparams_add(&t, "train.batch", "%d", o->batch);
    hparams_add(&t, "train.n_ctx", "%d", o->n_ctx);
    hparams_add(&t, "train.init_std", "%.17g", o->init_std);
    hparams_add(&t, "train.prefix", "%s", o->prefix ? o->prefix : "");
    hparams_add(&t, "train.loss", "%s%s%s", o->loss.use_gce ? "gce," : "", o->loss.use_mse ? "mse," : "",
             o->loss.use_entropy ? "entropy," : "");
    hparams_add(&t, "train.gce_q", "%.17g", o->loss.q);
    hparams_add(&t, "train.alpha", "%.17g", o->loss.alpha);
    hparams_add(&t, "train.beta", "%.17g", o->loss.beta);
    hparams_add(&t, "train.logit_scale", "%.17g", o->loss.scale);
    hparams_add(&t, "train.lr", "%.17g", o->sgd.lr);
    hparams_add(&t, "train.momentum", "%.17g", o->sgd.momentum);
    hparams_add(&t, "train.weight_decay", "%.17g", o->sgd.weight_decay);
    hparams_add(&t, "train.warmup_epochs", "%d", o->sgd.warmup_epoch);
    hparams_add(&t, "train.warmup_lr", "%.17g", o->sgd.warmup_lr);
    hparams_add(&t, "train.text_precision", "%s", o->text_precision ? o->text_precision : "fp32");
    int chunk = o->text_batch > 0 ? o->text_batch : DEFAULT_TEXT_CHUNK;
    hparams_add(&t, "train.text_batch", "%d", chunk < d->K ? chunk : d->K);
    hparams_add(&t, "run.seed", "%llu", (unsigned long long)o->seed);
    hparams_add(&t, "model.device", "%s", ops ? ops->name : "");
    hparams_add(&t, "model.weights_sha256", "%s", w->sha256);
    hparams_add(&t, "data.samples", "%zu", d->N);
    hparams_add(&t, "data.clusters", "%d", d->K);
    hparams_add(&t, "data.mode", "%s", d->get_image ? "images" : "features");
    if (d->get_image) {   // the views' features: the image encoder's precision and batch
        int ib = o->image_batch > 0 ? o->image_batch : 2 * o->batch;
        if (img && ib > clip_model_max_batch(img)) ib = clip_model_max_batch(img);
        hparams_add(&t, "model.precision", "%s", o->image_precision ? o->image_precision : "fp32");
        hparams_add(&t, "model.batch", "%d", ib);
    } else {
        size_t nx = d->N * (size_t)w->cfg.embed_dim * sizeof *d->X;
        hparams_add(&t, "data.features_hash", "%016llx", (unsigned long long)laic_hash64(d->X, nx, 1));
    }
    // the pseudo-labels that are read (high-quality rows) and the mask
    uint64_t hy = laic_hash64(d->hq, d->N, 2);
    for (size_t i = 0; i < d->N; i++)
        if (d->hq[i]) hy = laic_hash64(&d->yhat[i], sizeof d->yhat[i], hy);
    hparams_add(&t, "data.pseudo_labels_hash", "%016llx", (unsigned long long)hy);
    return t.p;
}

static int check_inputs(const ClipWeights *w, ClipModel *img, const OpsBackend *ops,
                        const TrainData *d, const TrainerOpts *o, const char *hparams) {
    if (d->N < 1) return laic_error("train: no training samples");
    if (d->K < 1) return laic_error("train: K = %d prompts (need >= 1)", d->K);
    if (o->epochs < 1 || o->batch < 1 || o->n_ctx < 1)
        return laic_error("train: epochs (%d), batch (%d) and n_ctx (%d) must be >= 1", o->epochs,
                          o->batch, o->n_ctx);
    if (!d->get_image && !d->X) return laic_error("train: neither images nor features to train on");
    if (d->get_image && !img) return laic_error("train: images given but no image model");
    if (!ops) return laic_error("train: no backend");
    if (d->get_image && clip_model_ops(img) != ops)
        return laic_error("train: the image model runs on %s, the trainer on %s (the views' "
                          "features must stay in one backend's memory)",
                          clip_model_ops(img)->name, ops->name);
    if (check_backend(ops, d->get_image != NULL)) return -1;
    for (size_t i = 0; i < d->N; i++)
        if (d->hq[i] && (d->yhat[i] < 0 || d->yhat[i] >= d->K))
            return laic_error("train: pseudo-label %lld of sample %zu outside [0,%d)",
                              (long long)d->yhat[i], i, d->K);
    if (o->resume) {
        const TrainState *s = o->resume;
        if (s->K != d->K || s->M != o->n_ctx || s->D != w->cfg.text_width)
            return laic_error("train: checkpoint holds K=%d M=%d D=%d, this run needs K=%d M=%d "
                              "D=%d ---> HINT: resume with the settings of the stopped run",
                              s->K, s->M, s->D, d->K, o->n_ctx, w->cfg.text_width);
        if (s->seed != o->seed)
            return laic_error("train: checkpoint seed %llu differs from run.seed %llu",
                              (unsigned long long)s->seed, (unsigned long long)o->seed);
        if (s->epoch > o->epochs)
            return laic_error("train: checkpoint is at epoch %d, past train.epochs = %d", s->epoch,
                              o->epochs);
        if (s->n_rng != 1) return laic_error("train: checkpoint has %d RNG states (expected 1)", s->n_rng);
        if (hparams_check(s->path ? s->path : "checkpoint", s->hparams, hparams,
                          "resume with the stopped run's settings (train-centers: the matching "
                          "--option)"))
            return -1;
    }
    return 0;
}

int trainer_run(TrainResult *res, const ClipWeights *w, ClipModel *image_model,
                const OpsBackend *ops, const TrainData *d, const TrainerOpts *o) {
    memset(res, 0, sizeof *res);
    if (d->N < 1 || d->K < 1 || !d->yhat || !d->hq || (!d->get_image && !d->X))
        return check_inputs(w, image_model, ops, d, o, "");   // its message
    char *hparams = hparams_text(w, image_model, ops, d, o);
    int bad = check_inputs(w, image_model, ops, d, o, hparams);
    free(hparams);   // made again for the state below (no early return has to free it)
    if (bad) return -1;
    Loop L;
    memset(&L, 0, sizeof L);
    L.w = w;
    L.img = image_model;
    L.ops = ops;
    L.d = d;
    L.o = o;
    L.K = d->K;
    L.M = o->n_ctx;
    L.D = w->cfg.text_width;
    L.E = w->cfg.embed_dim;
    L.S = w->cfg.image_size;
    L.mask = (o->loss.use_gce ? 1 : 0) | (o->loss.use_mse ? 2 : 0) | (o->loss.use_entropy ? 4 : 0);
    L.nranks = ops->comm_size ? ops->comm_size() : 1;
    L.rank = L.nranks > 1 ? ops->comm_rank() : 0;
    L.dist = L.nranks > 1 || comm_forced();
    const int K = L.K, M = L.M, D = L.D, E = L.E;
    const int B = o->batch;
    const size_t N = d->N, nv = (size_t)K * M * D;
    L.nv = nv;

    // prefix tokens (no SOT/EOT): the prompt is SOT + prefix + M vectors + EOT
    {
        const char *vp = tokenizer_default_vocab_path();
        Tokenizer *tok = vp ? tokenizer_load(vp) : NULL;
        if (!tok) return -1;
        size_t np = 0;
        int rc = tokenizer_encode(tok, o->prefix, strlen(o->prefix), &L.prefix_ids, &np);
        tokenizer_free(tok);
        if (rc) return laic_error("train.prefix: %s", laic_last_error());
        L.P = (int)np;
    }
    L.T = L.P + M + 2;
    if (L.T > w->cfg.context_length) {
        free(L.prefix_ids);
        return laic_error("train.prefix: %d prefix tokens + %d vectors + SOT/EOT = %d exceed the "
                          "context length %d", L.P, M, L.T, w->cfg.context_length);
    }
    L.chunk = o->text_batch > 0 ? o->text_batch : DEFAULT_TEXT_CHUNK;
    if (L.chunk > K) L.chunk = K;
    L.ib = o->image_batch > 0 ? o->image_batch : 2 * B;
    if (image_model && L.ib > clip_model_max_batch(image_model)) L.ib = clip_model_max_batch(image_model);
    L.txt = clip_model_create_train_in(w, ops, L.chunk, o->text_precision);
    if (!L.txt) {
        free(L.prefix_ids);
        return -1;
    }
    L.perm = mallocCheck(N * sizeof *L.perm);
    L.y32_h = mallocCheck((size_t)B * sizeof *L.y32_h);
    L.hq_h = mallocCheck((size_t)B * sizeof *L.hq_h);
    if (d->get_image) {
        L.rgb = callocCheck((size_t)B, sizeof *L.rgb);
        L.ih = mallocCheck((size_t)B * sizeof *L.ih);
        L.iw = mallocCheck((size_t)B * sizeof *L.iw);
    } else {
        L.F_h = mallocCheck((size_t)2 * B * E * sizeof *L.F_h);
    }
    if (carve_arena(&L, B, d->get_image != NULL)) {
        loop_free(&L);
        return -1;
    }
    upload_fixed_rows(&L);

    // --- state: fresh or resumed ----------------------------------------------------------
    TrainState *st = &res->st;
    train_state_alloc(st, K, M, D);
    st->hparams = hparams_text(w, image_model, ops, d, o);   // saved in every checkpoint
    st->seed = o->seed;
    st->n_rng = 1;
    if (o->resume) {
        memcpy(st->vec, o->resume->vec, nv * sizeof *st->vec);
        memcpy(st->mom, o->resume->mom, nv * sizeof *st->mom);
        st->have_mom = o->resume->have_mom;
        st->epoch = o->resume->epoch;
        st->step = o->resume->step;
        st->rng[0] = o->resume->rng[0];
        train_log(o->log, o->log_ctx, "train: resumed at epoch %d (step %lld)", st->epoch,
                  (long long)st->step);
    } else {
        train_init_vectors(st->vec, nv, o->seed);
        if (o->init_std != 0.02)   // train_init_vectors draws at 0.02; rescale for another std
            for (size_t i = 0; i < nv; i++) st->vec[i] = (float)(st->vec[i] * (o->init_std / 0.02));
        rng_init(&st->rng[0], o->seed, SHUFFLE_STREAM);
    }
    ops->to_device(L.vec, st->vec, nv * sizeof *st->vec);
    ops->to_device(L.mom, st->mom, nv * sizeof *st->mom);
    res->K = K;
    res->E = E;
    res->first_epoch = st->epoch;
    res->epoch_loss = mallocCheck((size_t)o->epochs * sizeof *res->epoch_loss);
    res->epoch_lr = mallocCheck((size_t)o->epochs * sizeof *res->epoch_lr);
    for (int e = 0; e < o->epochs; e++) {
        res->epoch_loss[e] = NAN;
        res->epoch_lr[e] = train_lr(&o->sgd, e);
    }
    size_t nhq = 0;
    for (size_t i = 0; i < N; i++) nhq += d->hq[i] != 0;
    train_log(o->log, o->log_ctx,
              "train: K = %d prompts of %d tokens (%d prefix + %d vectors), %zu samples (%zu "
              "high-quality), batch %d, %d epochs%s%s",
              K, L.T, L.P, M, N, nhq, B, o->epochs,
              d->get_image ? "" : " (feature mode: no augmentation)",
              o->graph && ops->graph_capture && !L.dist ? ", step captured as a graph" : "");

    int rc = 0;
    const int steps_per_epoch = (int)((N + (size_t)B - 1) / (size_t)B);
    while (!rc && st->epoch < o->epochs) {
        const int ep = st->epoch;
        if (o->stop_after > 0 && ep >= o->stop_after) {
            res->stopped = 1;
            break;
        }
        // the epoch's rate goes to its backend slot, outside any graph (graphs read it there)
        L.lr_h = train_lr(&o->sgd, ep);
        ops->to_device(L.lr, &L.lr_h, sizeof L.lr_h);
        // Shuffle: Fisher–Yates of the identity from the persistent stream (checkpointed).
        rng_permutation(&st->rng[0], L.perm, N);
        double loss_sum = 0.0, t_ep = now_seconds();
        for (int s = 0; s < steps_per_epoch && !rc; s++) {
            const size_t i0 = (size_t)s * B;
            const int b = (int)(N - i0 < (size_t)B ? N - i0 : (size_t)B);
            const size_t *idx = L.perm + i0;
            if ((rc = stage_batch(&L, idx, b, ep, res))) break;
            if ((rc = run_step(&L, b, st, res))) break;
            ops->to_host(L.terms_h, L.terms, sizeof L.terms_h);
            ops->synchronize();
            st->step++;
            loss_sum += L.terms_h[0];
            res->images_seen += (size_t)b;
        }
        if (rc) break;
        st->epoch++;
        res->epoch_loss[ep] = loss_sum / steps_per_epoch;
        download_state(&L, st);
        train_log(o->log, o->log_ctx, "train: epoch %d/%d  lr %.3g  loss %.5f  (%d steps, %.3fs)",
                  ep + 1, o->epochs, L.lr_h, res->epoch_loss[ep], steps_per_epoch,
                  now_seconds() - t_ep);
        if (o->ckpt_path && (rc = ckpt_save(o->ckpt_path, st))) break;
    }
    if (!rc) rc = part_text_forward(&L);   // the final centres (eager)
    if (!rc) {
        res->W = mallocCheck((size_t)K * E * sizeof *res->W);
        ops->to_host(res->W, L.W, (size_t)K * E * sizeof *res->W);
        ops->synchronize();
    }
    loop_free(&L);
    if (rc) trainer_result_free(res);
    return rc;
}
