/*
 * trainer.c — the prompt-learning loop (SPEC §7); promises in trainer.h.
 *
 * One step, for a batch of B samples:
 *   views   weak/strong RGB8 crops (augment.h, keyed by (seed, epoch, index)) → pixels
 *   image   f = normalise(encode_image(view)), (2B,E), frozen, no gradient
 *   text    u_c = encode_text_embeds([SOT, prefix, v_c, EOT]), w_c = u_c/|u_c|, (K,E)
 *   loss    L(f_weak, f_strong, W, ŷ, mask) and dL/dW          (train.h)
 *   back    dL/du (l2norm_rows_backward) → dL/dembeds (clip_text_backward) → rows of v_c
 *   update  SGD with the epoch's learning rate (train_lr)
 * Dimension legend as in trainer.h.
 */
#include "trainer.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "augment.h"
#include "image.h"
#include "io/err.h"
#include "progress.h"
#include "tokenizer.h"

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
}

void trainer_result_free(TrainResult *r) {
    train_state_free(&r->st);
    free(r->W);
    free(r->epoch_loss);
    free(r->epoch_lr);
    memset(r, 0, sizeof *r);
}

static void tlog(const TrainerOpts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tlog(const TrainerOpts *o, const char *fmt, ...) {
    if (!o->log) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->log(o->log_ctx, line);
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

typedef struct {
    const ClipWeights *w;
    ClipModel *img, *txt;
    const TrainData *d;
    const TrainerOpts *o;
    int K, M, D, E, P, T, S, chunk, ib;
    int32_t *prefix_ids;   // (P)
    int32_t *eot;          // (chunk) all = T-1
    float *emb;            // (chunk,T,D) prompt embeddings of one chunk
    float *demb;           // (chunk,T,D)
    float *U;              // (K,E) unnormalised text features
    float *W;              // (K,E) normalised
    float *dW, *dU;        // (K,E)
    float *G;              // (K,M,D) dL/dv
    float *F;              // (2B,E) view features: weak rows 0..b-1, strong rows b..2b-1
    float *pix;            // (2B,3,S,S)
    int32_t *y32;          // (B)
    uint8_t *hqb;          // (B)
    size_t *perm;          // (N)
} Loop;

// Embeddings of prompts c0..c0+n-1 into L->emb: SOT, prefix, v_c, EOT rows of (T,D).
static void build_prompts(Loop *L, const float *vec, int c0, int n) {
    const int D = L->D, T = L->T, P = L->P, M = L->M;
    const float *te = L->w->tok_emb;   // (V,D)
    for (int j = 0; j < n; j++) {
        float *e = L->emb + (size_t)j * T * D;
        memcpy(e, te + (size_t)TOKENIZER_SOT * D, (size_t)D * sizeof *e);
        for (int p = 0; p < P; p++)
            memcpy(e + (size_t)(1 + p) * D, te + (size_t)L->prefix_ids[p] * D, (size_t)D * sizeof *e);
        memcpy(e + (size_t)(1 + P) * D, vec + (size_t)(c0 + j) * M * D, (size_t)M * D * sizeof *e);
        memcpy(e + (size_t)(T - 1) * D, te + (size_t)TOKENIZER_EOT * D, (size_t)D * sizeof *e);
    }
}

// U, W (K,E) of the prompts with vectors vec.
static int text_forward(Loop *L, const float *vec) {
    for (int c0 = 0; c0 < L->K; c0 += L->chunk) {
        int n = L->K - c0 < L->chunk ? L->K - c0 : L->chunk;
        build_prompts(L, vec, c0, n);
        if (clip_encode_text_embeds(L->txt, L->emb, L->eot, n, L->T, L->U + (size_t)c0 * L->E))
            return -1;
    }
    memcpy(L->W, L->U, (size_t)L->K * L->E * sizeof *L->W);
    for (int c = 0; c < L->K; c++) {
        float *w = L->W + (size_t)c * L->E;
        double n2 = 0.0;
        for (int e = 0; e < L->E; e++) n2 += (double)w[e] * w[e];
        float inv = (float)(1.0 / sqrt(n2));
        for (int e = 0; e < L->E; e++) w[e] *= inv;
    }
    return 0;
}

// G (K,M,D) = dL/dv from dU (K,E). With one chunk the forward just run is still in the training
// arena; with several, each chunk is run again before its backward (the arena holds one).
static int text_backward(Loop *L, const float *vec) {
    const int D = L->D, T = L->T, M = L->M;
    for (int c0 = 0; c0 < L->K; c0 += L->chunk) {
        int n = L->K - c0 < L->chunk ? L->K - c0 : L->chunk;
        if (L->chunk < L->K) {
            build_prompts(L, vec, c0, n);
            float *tmp = mallocCheck((size_t)n * L->E * sizeof *tmp);
            int rc = clip_encode_text_embeds(L->txt, L->emb, L->eot, n, T, tmp);
            free(tmp);
            if (rc) return -1;
        }
        if (clip_text_backward(L->txt, L->dU + (size_t)c0 * L->E, L->demb)) return -1;
        for (int j = 0; j < n; j++)   // only the learnable rows 1+P .. P+M carry a parameter
            memcpy(L->G + (size_t)(c0 + j) * M * D, L->demb + ((size_t)j * T + 1 + L->P) * D,
                   (size_t)M * D * sizeof *L->G);
    }
    return 0;
}

// F (2b,E): normalised features of the weak and strong views of samples idx[0..b).
static int encode_views(Loop *L, const size_t *idx, int b, int epoch, double *t_views, double *t_img) {
    const int S = L->S, E = L->E;
    const TrainData *d = L->d;
    if (!d->get_image) {   // feature mode: both views are the clean features
        for (int j = 0; j < b; j++) {
            memcpy(L->F + (size_t)j * E, d->X + idx[j] * E, (size_t)E * sizeof *L->F);
            memcpy(L->F + (size_t)(b + j) * E, d->X + idx[j] * E, (size_t)E * sizeof *L->F);
        }
        return 0;
    }
    double t0 = now_seconds();
    int bad = 0;
    char *err = NULL;
#pragma omp parallel for schedule(dynamic)
    for (int j = 0; j < 2 * b; j++) {
        size_t i = idx[j % b];
        uint8_t *rgb = NULL, *crop = malloc((size_t)S * S * 3);
        int h, w;
        if (!crop || d->get_image(d->img_ctx, i, &rgb, &h, &w)) {
#pragma omp critical(trainer_err)
            {
                if (!bad) err = strdup(laic_last_error());
                bad = 1;
            }
        } else {
            augment_view(crop, rgb, h, w, S, j >= b, L->o->seed, (uint64_t)epoch, (uint64_t)i);
            image_normalize(L->pix + (size_t)j * 3 * S * S, crop, S);
        }
        free(rgb);
        free(crop);
    }
    if (bad) {
        laic_error("%s", err ? err : "train: image read failed");
        free(err);
        return -1;
    }
    double t1 = now_seconds();
    *t_views += t1 - t0;
    for (int j0 = 0; j0 < 2 * b; j0 += L->ib) {
        int n = 2 * b - j0 < L->ib ? 2 * b - j0 : L->ib;
        if (clip_encode_images(L->img, L->pix + (size_t)j0 * 3 * S * S, n, L->F + (size_t)j0 * E))
            return -1;
    }
    for (int j = 0; j < 2 * b; j++) {
        float *f = L->F + (size_t)j * E;
        double n2 = 0.0;
        for (int e = 0; e < E; e++) n2 += (double)f[e] * f[e];
        float inv = n2 > 0 ? (float)(1.0 / sqrt(n2)) : 0.0f;
        for (int e = 0; e < E; e++) f[e] *= inv;
    }
    *t_img += now_seconds() - t1;
    return 0;
}

static void loop_free(Loop *L) {
    clip_model_free(L->txt);
    free(L->prefix_ids);
    free(L->eot);
    free(L->emb);
    free(L->demb);
    free(L->U);
    free(L->W);
    free(L->dW);
    free(L->dU);
    free(L->G);
    free(L->F);
    free(L->pix);
    free(L->y32);
    free(L->hqb);
    free(L->perm);
}

static int check_inputs(const ClipWeights *w, ClipModel *img, const TrainData *d,
                        const TrainerOpts *o) {
    if (d->N < 1) return laic_error("train: no training samples");
    if (d->K < 1) return laic_error("train: K = %d prompts (need >= 1)", d->K);
    if (o->epochs < 1 || o->batch < 1 || o->n_ctx < 1)
        return laic_error("train: epochs (%d), batch (%d) and n_ctx (%d) must be >= 1", o->epochs,
                          o->batch, o->n_ctx);
    if (!d->get_image && !d->X) return laic_error("train: neither images nor features to train on");
    if (d->get_image && !img) return laic_error("train: images given but no image model");
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
    }
    return 0;
}

int trainer_run(TrainResult *res, const ClipWeights *w, ClipModel *image_model,
                const OpsBackend *ops, const TrainData *d, const TrainerOpts *o) {
    memset(res, 0, sizeof *res);
    if (check_inputs(w, image_model, d, o)) return -1;
    Loop L;
    memset(&L, 0, sizeof L);
    L.w = w;
    L.img = image_model;
    L.d = d;
    L.o = o;
    L.K = d->K;
    L.M = o->n_ctx;
    L.D = w->cfg.text_width;
    L.E = w->cfg.embed_dim;
    L.S = w->cfg.image_size;
    const int K = L.K, M = L.M, D = L.D, E = L.E, S = L.S;
    const int B = o->batch;
    const size_t N = d->N, nv = (size_t)K * M * D;

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
    L.txt = clip_model_create_train(w, ops, L.chunk);
    if (!L.txt) {
        free(L.prefix_ids);
        return -1;
    }
    L.eot = mallocCheck((size_t)L.chunk * sizeof *L.eot);
    for (int j = 0; j < L.chunk; j++) L.eot[j] = L.T - 1;
    L.emb = mallocCheck((size_t)L.chunk * L.T * D * sizeof *L.emb);
    L.demb = mallocCheck((size_t)L.chunk * L.T * D * sizeof *L.demb);
    L.U = mallocCheck((size_t)K * E * sizeof *L.U);
    L.W = mallocCheck((size_t)K * E * sizeof *L.W);
    L.dW = mallocCheck((size_t)K * E * sizeof *L.dW);
    L.dU = mallocCheck((size_t)K * E * sizeof *L.dU);
    L.G = mallocCheck(nv * sizeof *L.G);
    L.F = mallocCheck((size_t)2 * B * E * sizeof *L.F);
    L.pix = d->get_image ? mallocCheck((size_t)2 * B * 3 * S * S * sizeof *L.pix) : NULL;
    L.y32 = mallocCheck((size_t)B * sizeof *L.y32);
    L.hqb = mallocCheck((size_t)B * sizeof *L.hqb);
    L.perm = mallocCheck(N * sizeof *L.perm);

    // --- state: fresh or resumed ----------------------------------------------------------
    TrainState *st = &res->st;
    train_state_alloc(st, K, M, D);
    st->seed = o->seed;
    st->n_rng = 1;
    if (o->resume) {
        memcpy(st->vec, o->resume->vec, nv * sizeof *st->vec);
        memcpy(st->mom, o->resume->mom, nv * sizeof *st->mom);
        st->have_mom = o->resume->have_mom;
        st->epoch = o->resume->epoch;
        st->step = o->resume->step;
        st->rng[0] = o->resume->rng[0];
        tlog(o, "train: resumed at epoch %d (step %lld)", st->epoch, (long long)st->step);
    } else {
        train_init_vectors(st->vec, nv, o->seed);
        if (o->init_std != 0.02)   // train_init_vectors draws at 0.02; rescale for another std
            for (size_t i = 0; i < nv; i++) st->vec[i] = (float)(st->vec[i] * (o->init_std / 0.02));
        rng_init(&st->rng[0], o->seed, SHUFFLE_STREAM);
    }
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
    tlog(o, "train: K = %d prompts of %d tokens (%d prefix + %d vectors), %zu samples (%zu "
            "high-quality), batch %d, %d epochs%s", K, L.T, L.P, M, N, nhq, B, o->epochs,
         d->get_image ? "" : " (feature mode: no augmentation)");

    int rc = 0;
    const int steps_per_epoch = (int)((N + (size_t)B - 1) / (size_t)B);
    while (!rc && st->epoch < o->epochs) {
        const int ep = st->epoch;
        if (o->stop_after > 0 && ep >= o->stop_after) {
            res->stopped = 1;
            break;
        }
        const double lr = train_lr(&o->sgd, ep);
        // Shuffle: Fisher–Yates of the identity from the persistent stream (checkpointed).
        for (size_t i = 0; i < N; i++) L.perm[i] = i;
        for (size_t i = N - 1; i > 0; i--) {
            size_t j = (size_t)rng_below(&st->rng[0], i + 1);
            size_t t = L.perm[i];
            L.perm[i] = L.perm[j];
            L.perm[j] = t;
        }
        double loss_sum = 0.0, t_ep = now_seconds();
        for (int s = 0; s < steps_per_epoch && !rc; s++) {
            const size_t i0 = (size_t)s * B;
            const int b = (int)(N - i0 < (size_t)B ? N - i0 : (size_t)B);
            const size_t *idx = L.perm + i0;
            if ((rc = encode_views(&L, idx, b, ep, &res->t_views, &res->t_image))) break;
            double t0 = now_seconds();
            if ((rc = text_forward(&L, st->vec))) break;
            double t1 = now_seconds();
            for (int j = 0; j < b; j++) {
                L.hqb[j] = d->hq[idx[j]] != 0;
                L.y32[j] = L.hqb[j] ? (int32_t)d->yhat[idx[j]] : 0;
            }
            LossValue val;
            memset(L.dW, 0, (size_t)K * E * sizeof *L.dW);
            // weak rows first, strong after (encode_views' layout)
            if ((rc = train_loss(&val, L.dW, L.F, L.F + (size_t)b * E, L.W, L.y32, L.hqb, b, K, E,
                                 &o->loss)))
                break;
            memset(L.dU, 0, (size_t)K * E * sizeof *L.dU);
            l2norm_rows_backward(L.dU, L.dW, L.U, K, E);
            double t2 = now_seconds();
            if ((rc = text_backward(&L, st->vec))) break;
            res->t_text += (t1 - t0) + (now_seconds() - t2);
            res->t_loss += t2 - t1;
            sgd_step(st->vec, st->mom, &st->have_mom, L.G, nv, lr, o->sgd.momentum,
                     o->sgd.weight_decay);
            st->step++;
            loss_sum += val.total;
            res->images_seen += (size_t)b;
        }
        if (rc) break;
        st->epoch++;
        res->epoch_loss[ep] = loss_sum / steps_per_epoch;
        tlog(o, "train: epoch %d/%d  lr %.3g  loss %.5f  (%d steps, %.3fs)", ep + 1, o->epochs,
             lr, res->epoch_loss[ep], steps_per_epoch, now_seconds() - t_ep);
        if (o->ckpt_path && (rc = ckpt_save(o->ckpt_path, st))) break;
    }
    if (!rc) rc = text_forward(&L, st->vec);   // the final centres
    if (!rc) {
        res->W = mallocCheck((size_t)K * E * sizeof *res->W);
        memcpy(res->W, L.W, (size_t)K * E * sizeof *res->W);
    }
    loop_free(&L);
    if (rc) trainer_result_free(res);
    return rc;
}
