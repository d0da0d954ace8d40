/*
 * sic.c — SIC on cached features (sic.h): semantic space, centre mapping, training loop.
 * File:line references are to shaotiancai/SIC@a8969ac.
 */
#include "train/sic.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "cluster/knn_l2.h"
#include "cluster/metrics.h"
#include "cpu/cpu_ops.h"
#include "io/err.h"
#include "io/progress.h"
#include "rng.h"
#include "train/log.h"
#include "train/optim.h"

// --- selection helpers ---------------------------------------------------------------------------

// key[i·stride] descending, ties to the lower index: a strict total order on row indices.
static inline int better(const float *key, size_t stride, int64_t i, int64_t j) {
    const float a = key[(size_t)i * stride], b = key[(size_t)j * stride];
    return a > b || (a == b && i < j);
}

static inline void swap64(int64_t *a, int64_t *b) {
    int64_t t = *a;
    *a = *b;
    *b = t;
}

/* Rearranges a (n row indices) so that a[0..k) are the k best rows by `better` (any order):
 * quickselect with a median-of-three pivot, expected O(n). */
static void select_top(int64_t *a, size_t n, size_t k, const float *key, size_t stride) {
    size_t lo = 0, hi = n;
    if (k == 0 || k >= n) return;
    while (hi - lo > 1) {
        const size_t mid = lo + (hi - lo) / 2;
        // median of a[lo], a[mid], a[hi-1] into a[hi-1]
        if (better(key, stride, a[mid], a[lo])) swap64(&a[mid], &a[lo]);
        if (better(key, stride, a[hi - 1], a[lo])) swap64(&a[hi - 1], &a[lo]);
        if (better(key, stride, a[mid], a[hi - 1])) swap64(&a[mid], &a[hi - 1]);
        const int64_t pv = a[hi - 1];
        size_t st = lo;
        for (size_t i = lo; i < hi - 1; i++)
            if (better(key, stride, a[i], pv)) swap64(&a[i], &a[st++]);
        swap64(&a[st], &a[hi - 1]);   // a[lo..st) better than the pivot, now at st
        if (st == k || st + 1 == k) return;
        if (k < st) hi = st;
        else lo = st + 1;
    }
}

/* mask (n) = 1 for the k best rows of key (stride), else 0. */
static void top_mask(uint8_t *mask, int64_t *scratch, size_t n, size_t k, const float *key,
                     size_t stride) {
    for (size_t i = 0; i < n; i++) scratch[i] = (int64_t)i;
    select_top(scratch, n, k, key, stride);
    memset(mask, 0, n);
    for (size_t i = 0; i < k && i < n; i++) mask[scratch[i]] = 1;
}

// --- step 5 ------------------------------------------------------------------------------------

int sic_semantic_space(int64_t **idx, size_t *M, SicSpaceInfo *info, const OpsBackend *o,
                       const float *C0, int K, const float *T0, size_t Mb, int E, int gamma_r,
                       double gamma_u, int batch) {
    *idx = NULL;
    *M = 0;
    if (info) memset(info, 0, sizeof *info);
    if (gamma_r < 1 || (size_t)gamma_r > Mb)
        return laic_error("sic.gamma_r = %d must be in [1, %zu] (the nouns in the bank) ---> HINT: "
                          "lower sic.gamma_r or use a larger noun bank", gamma_r, Mb);
    if (batch < 1) return laic_error("sic: bad noun batch %d", batch);
    // R: image_centers_filter (semantic_filters.py:6-19): per centre the gamma_r nouns of
    // highest cosine, union over centres
    float *G = mallocCheck((size_t)K * Mb * sizeof *G);   // (K,Mb) C0 T0ᵀ
    if (heads_gemm_nt(o, G, C0, T0, (size_t)K, Mb, E)) {
        free(G);
        return -1;
    }
    double *tn = mallocCheck(Mb * sizeof *tn);
    for (size_t j = 0; j < Mb; j++) {
        double s = 0.0;
        for (int e = 0; e < E; e++) s += (double)T0[j * E + e] * T0[j * E + e];
        tn[j] = sqrt(s);
    }
    float *cosr = mallocCheck(Mb * sizeof *cosr);
    uint8_t *inR = callocCheck(Mb, 1), *mask = mallocCheck(Mb);
    int64_t *scr = mallocCheck(Mb * sizeof *scr);
    for (int c = 0; c < K; c++) {
        double cn = 0.0;
        for (int e = 0; e < E; e++) cn += (double)C0[(size_t)c * E + e] * C0[(size_t)c * E + e];
        cn = sqrt(cn);
        for (size_t j = 0; j < Mb; j++) {
            const double den = cn * tn[j];
            cosr[j] = (float)(G[(size_t)c * Mb + j] / (den > 1e-8 ? den : 1e-8));
        }
        top_mask(mask, scr, Mb, (size_t)gamma_r, cosr, 1);
        for (size_t j = 0; j < Mb; j++) inR[j] |= mask[j];
    }
    free(G);
    free(cosr);
    free(mask);
    free(scr);
    // U: uniqueness_filter (semantic_filters.py:22-51): t̄ = mean of the per-batch means
    double *tbar = callocCheck((size_t)E, sizeof *tbar), *bm = mallocCheck((size_t)E * sizeof *bm);
    size_t nb = 0;
    for (size_t j0 = 0; j0 < Mb; j0 += (size_t)batch, nb++) {
        const size_t j1 = j0 + (size_t)batch < Mb ? j0 + (size_t)batch : Mb;
        for (int e = 0; e < E; e++) bm[e] = 0.0;
        for (size_t j = j0; j < j1; j++)
            for (int e = 0; e < E; e++) bm[e] += T0[j * E + e];
        for (int e = 0; e < E; e++) tbar[e] += bm[e] / (double)(j1 - j0);
    }
    free(bm);
    double tbn = 0.0;
    for (int e = 0; e < E; e++) {
        tbar[e] /= (double)nb;
        tbn += tbar[e] * tbar[e];
    }
    tbn = sqrt(tbn);
    const double thr = 1.0 - gamma_u;
    size_t nr = 0, nu = 0, m = 0;
    int64_t *S = mallocCheck(Mb * sizeof *S);
    for (size_t j = 0; j < Mb; j++) {
        double dot = 0.0;
        for (int e = 0; e < E; e++) dot += (double)T0[j * E + e] * tbar[e];
        const double den = tn[j] * tbn;
        const int inU = dot / (den > 1e-8 ? den : 1e-8) < thr;
        nr += inR[j];
        nu += inU;
        if (inR[j] && inU) S[m++] = (int64_t)j;
    }
    free(tn);
    free(inR);
    if (info) {
        info->n_r = nr;
        info->n_u = nu;
        info->tbar = tbar;
    } else {
        free(tbar);
    }
    if (m == 0) {
        free(S);
        if (info) {
            free(info->tbar);
            info->tbar = NULL;
        }
        return laic_error("sic: the semantic space is empty (%zu nouns near the image centres, %zu "
                          "unique, none both) ---> HINT: raise sic.gamma_r or lower sic.gamma_u",
                          nr, nu);
    }
    *idx = S;
    *M = m;
    return 0;
}

// --- step 7 ------------------------------------------------------------------------------------

size_t sic_rows_per_centre(size_t N, int K, double xi_c) {
    return (size_t)((double)(N / (size_t)K) * xi_c);   // int((N // K) * xi_c)
}

/* out (E) = normalize(mean of the rows of A (·,E) where mask is set), summed in row order in
 * double, normalised in double (F.normalize: ÷ max(‖·‖, 1e-12)), rounded once. */
static void masked_mean_normalized(float *out, const float *A, const uint8_t *mask, size_t n, int E,
                                   size_t cnt) {
    double *s = callocCheck((size_t)E, sizeof *s);
    for (size_t i = 0; i < n; i++)
        if (mask[i])
            for (int e = 0; e < E; e++) s[e] += A[i * E + e];
    double nr = 0.0;
    for (int e = 0; e < E; e++) {
        s[e] /= (double)cnt;
        nr += s[e] * s[e];
    }
    nr = sqrt(nr);
    for (int e = 0; e < E; e++) out[e] = (float)(s[e] / (nr > 1e-12 ? nr : 1e-12));
    free(s);
}

int sic_centre_map(float *V, float *H, int64_t *I, int64_t *J, const OpsBackend *o,
                   const float *Z, const float *X, size_t N, int E, int K, const float *S,
                   size_t M, double xi_c, int xi_a) {
    const size_t nI = sic_rows_per_centre(N, K, xi_c);
    if (nI < 1)
        return laic_error("sic: xi_c = %g keeps no image per centre (%zu images, %d clusters) "
                          "---> HINT: raise sic.xi_c", xi_c, N, K);
    if (xi_a < 1 || (size_t)xi_a > M)
        return laic_error("sic.xi_a = %d must be in [1, %zu] (the nouns of the semantic space) "
                          "---> HINT: lower sic.xi_a or widen the semantic space (raise sic.gamma_r, "
                          "lower sic.gamma_u)", xi_a, M);
    int64_t *scr = mallocCheck((N > M ? N : M) * sizeof *scr);
    uint8_t *mask = mallocCheck(N > M ? N : M);
    // V_c from the top nI rows of logit column c (get_image_centers, compute_center.py:14-27);
    // the centres are independent, so threads take whole columns (same result for any count)
#pragma omp parallel if (N * (size_t)K > 200000)
    {
        int64_t *scr_t = mallocCheck(N * sizeof *scr_t);
        uint8_t *mask_t = mallocCheck(N);
#pragma omp for schedule(dynamic, 1)
        for (int c = 0; c < K; c++) {
            top_mask(mask_t, scr_t, N, nI, Z + c, (size_t)K);
            masked_mean_normalized(V + (size_t)c * E, X, mask_t, N, E, nI);
            if (I)
                for (size_t i = 0, w = 0; i < N; i++)
                    if (mask_t[i]) I[(size_t)c * nI + w++] = (int64_t)i;
        }
        free(scr_t);
        free(mask_t);
    }
    // cos(V_c, S_j) = V_c·S_j / ‖S_j‖ (V_c is unit), top xi_a (search_sim_texts, :29-56)
    float *G = mallocCheck((size_t)K * M * sizeof *G);
    if (heads_gemm_nt(o, G, V, S, (size_t)K, M, E)) {
        free(G);
        free(scr);
        free(mask);
        return -1;
    }
    float *cs = mallocCheck(M * sizeof *cs);
    double *sn = mallocCheck(M * sizeof *sn);   // ‖S_j‖
    for (size_t j = 0; j < M; j++) {
        double s2 = 0.0;
        for (int e = 0; e < E; e++) s2 += (double)S[j * E + e] * S[j * E + e];
        sn[j] = sqrt(s2) > 1e-8 ? sqrt(s2) : 1e-8;
    }
    for (int c = 0; c < K; c++) {
        for (size_t j = 0; j < M; j++) cs[j] = (float)(G[(size_t)c * M + j] / sn[j]);
        top_mask(mask, scr, M, (size_t)xi_a, cs, 1);
        masked_mean_normalized(H + (size_t)c * E, S, mask, M, E, (size_t)xi_a);
        if (J)
            for (size_t j = 0, w = 0; j < M; j++)
                if (mask[j]) J[(size_t)c * xi_a + w++] = (int64_t)j;
    }
    free(cs);
    free(sn);
    free(G);
    free(scr);
    free(mask);
    return 0;
}

// --- setup ------------------------------------------------------------------------------------

void sic_setup_opts_default(SicSetupOpts *o) {
    memset(o, 0, sizeof *o);
    o->knn = 20;
    o->kmeans_restarts = 20;
    o->kmeans_iters = 300;
    o->kmeans_tol = 1e-4;
    o->gamma_r = 500;
    o->gamma_u = 0.05;
    o->bank_batch = 128;
    o->seed = 1234;
}

void sic_setup_free(SicSetup *s) {
    free(s->nbr);
    free(s->C0);
    free(s->S_idx);
    free(s->S);
    free(s->info.tbar);
    memset(s, 0, sizeof *s);
}

int sic_setup(SicSetup *s, const OpsBackend *o, const float *X, size_t N, int E, int K,
              const float *T0, size_t Mb, const SicSetupOpts *opt) {
    memset(s, 0, sizeof *s);
    if ((size_t)opt->knn + 1 > N)
        return laic_error("sic.neighbors = %d needs more than %zu fit images ---> HINT: lower "
                          "sic.neighbors", opt->knn, N);
    // step 2: 21 L2 neighbours of every raw row, self included
    double t = now_seconds();
    s->nn = opt->knn + 1;
    s->nbr = mallocCheck(N * (size_t)s->nn * sizeof *s->nbr);
    if (knn_l2_topk(s->nbr, NULL, X, (int)N, E, s->nn)) goto fail;
    s->t_knn = now_seconds() - t;
    // step 3: K image centres on raw X, as sklearn KMeans(K, n_init=20): tol is relative to the
    // mean of the per-feature variances (sklearn _tolerance)
    t = now_seconds();
    double *mu = callocCheck((size_t)E, sizeof *mu), var = 0.0;
    for (size_t i = 0; i < N; i++)
        for (int e = 0; e < E; e++) mu[e] += X[i * E + e];
    for (int e = 0; e < E; e++) mu[e] /= (double)N;
    for (size_t i = 0; i < N; i++)
        for (int e = 0; e < E; e++) {
            const double dd = X[i * E + e] - mu[e];
            var += dd * dd;
        }
    free(mu);
    var /= (double)N * E;
    KMeansOpts ko = {0};
    ko.K = K;
    ko.iters = opt->kmeans_iters;
    ko.restarts = opt->kmeans_restarts;
    ko.seed = opt->seed;
    ko.tol = opt->kmeans_tol * var;
    ko.init = KMEANS_INIT_PP;
    s->C0 = mallocCheck((size_t)K * E * sizeof *s->C0);
    int64_t *lab = mallocCheck(N * sizeof *lab);
    const int krc = kmeans_fit(lab, s->C0, &s->kmeans_objective, X, (int)N, E, &ko);
    free(lab);
    if (krc) goto fail;
    s->t_kmeans = now_seconds() - t;
    // step 5: the semantic space
    t = now_seconds();
    if (sic_semantic_space(&s->S_idx, &s->M, &s->info, o, s->C0, K, T0, Mb, E, opt->gamma_r,
                           opt->gamma_u, opt->bank_batch))
        goto fail;
    s->S = mallocCheck(s->M * (size_t)E * sizeof *s->S);
    for (size_t j = 0; j < s->M; j++)
        memcpy(s->S + j * E, T0 + (size_t)s->S_idx[j] * E, (size_t)E * sizeof *s->S);
    s->t_space = now_seconds() - t;
    return 0;
fail:
    sic_setup_free(s);
    return -1;
}

// --- steps 8-10 --------------------------------------------------------------------------------

void sic_opts_default(SicOpts *o) {
    memset(o, 0, sizeof *o);
    o->epochs = 100;
    o->batch = 128;
    o->lr = 1e-4;
    o->weight_decay = 1e-4;
    o->entropy_weight = 5.0;
    o->ce_weight = 0.1;
    o->xi_c = 0.9;
    o->xi_a = 30;
    o->patience = 5;
    o->graph = 1;
    o->seed = 1234;
    o->hparams = "";
}

void sic_step(Head *h, HeadActs *acts, const float *x, const int32_t *yb, int B, double *terms,
              float *dl, const double *sched, const SicOpts *opt) {
    const OpsBackend *o = h->o;
    const size_t off = (size_t)B * h->K;
    // the anchors' and the neighbours' logits through the same head (train_utils.py:44-45)
    head_forward_parts(h, acts, x, 2 * B, 2, 1, 0);
    o->sic_loss_forward_backward(terms, dl, dl + off, acts->logits, acts->logits + off, yb, B,
                                 h->K, opt->entropy_weight, opt->ce_weight);
    head_zero_grad(h);
    head_backward(h, acts, dl);
    head_adam_at(h, sched, 0.9, 0.999, 1e-8, opt->weight_decay);
}

/* One epoch's batches on backend memory (the function a CUDA graph captures): only ops. */
typedef struct {
    Head *h;
    HeadActs *acts;
    const float *X;
    float *x, *dl;   // (2b,E) anchors then neighbours; (2b,K)
    const int64_t *perm, *nb;
    const int32_t *yb;
    double *terms;
    const double *sched;
    size_t N, nsteps;
    int b, E;
    const SicOpts *opt;
} SicEpoch;

static void sic_epoch_steps(void *ctx) {
    SicEpoch *c = ctx;
    const OpsBackend *o = c->h->o;
    for (size_t s = 0; s < c->nsteps; s++) {
        const size_t i0 = s * (size_t)c->b;
        const int Bs = (int)(c->N - i0 < (size_t)c->b ? c->N - i0 : (size_t)c->b);
        o->index_select_forward(c->x, c->X, c->perm + i0, Bs, c->E);
        o->index_select_forward(c->x + (size_t)Bs * c->E, c->X, c->nb + i0, Bs, c->E);
        sic_step(c->h, c->acts, c->x, c->yb + i0, Bs, c->terms + 4 * s, c->dl, c->sched + 3 * s, c->opt);
    }
}

void sic_result_free(SicResult *r) {
    free(r->pred);
    free(r->params);
    free(r->epoch_terms);
    free(r->epoch_acc);
    memset(r, 0, sizeof *r);
}

int sic_train(SicResult *res, const OpsBackend *o, const SicData *d, const SicOpts *opt) {
    memset(res, 0, sizeof *res);
    const size_t N = d->N, Ne = d->Ne;
    const int E = d->E, K = d->K, b = opt->batch, nn = d->nn;
    if (N < 2 || K < 1 || (size_t)K > N || E < 1 || b < 1 || nn < 1 || opt->epochs < 1)
        return laic_error("sic: bad sizes (N %zu, K %d, E %d, batch %d, neighbours %d, epochs %d)",
                          N, K, E, b, nn, opt->epochs);
    const int B = (size_t)b < N ? b : (int)N;   // the largest batch
    heads_use_fp32(o);
    const size_t nsteps = (N + (size_t)b - 1) / (size_t)b;
    Head h;
    if (head_create(&h, o, HEAD_LINEAR, E, 0, K, 2 * B)) return -1;
    HeadActs acts;
    int rc = head_acts_create(&h, &acts, 2 * B);
    // backend buffers: X and Xeval resident; per-epoch index lists; per-step scratch
    const int host = !strcmp(o->name, "cpu");   // host memory: arrays used in place
    float *dX = NULL, *dXe = NULL, *dx = NULL, *dP = NULL, *dH = NULL, *dl = NULL;
    int64_t *dperm = NULL, *dnb = NULL;
    int32_t *dyb = NULL;
    double *dterms = NULL, *dsched = NULL;
    if (!rc) {
        dX = host ? (float *)d->X : o->alloc(N * E * sizeof(float));
        dXe = host || !Ne ? (float *)d->Xeval : o->alloc(Ne * E * sizeof(float));
        dx = o->alloc(2 * (size_t)B * E * sizeof(float));
        dP = o->alloc(N * K * sizeof(float));
        dH = o->alloc((size_t)K * E * sizeof(float));
        dl = o->alloc(2 * (size_t)B * K * sizeof(float));
        dperm = o->alloc(N * sizeof(int64_t));
        dnb = o->alloc(N * sizeof(int64_t));
        dyb = o->alloc(N * sizeof(int32_t));
        dterms = o->alloc(nsteps * 4 * sizeof(double));
        dsched = o->alloc(nsteps * 3 * sizeof(double));
        rc = dX && (dXe || !Ne) && dx && dP && dH && dl && dperm && dnb && dyb && dterms &&
                     dsched ? 0 : -1;
        if (!rc && !host) {
            o->to_device(dX, d->X, N * E * sizeof(float));
            if (Ne) o->to_device(dXe, d->Xeval, Ne * E * sizeof(float));
        }
    }
    const size_t np = (size_t)K * E + K;
    float *best = mallocCheck(np * sizeof *best);
    HeadsRunState st = {0};
    snprintf(st.hparams, sizeof st.hparams, "%s", opt->hparams ? opt->hparams : "");
    int has_best = 0;
    res->epoch_terms = mallocCheck((size_t)opt->epochs * 4 * sizeof *res->epoch_terms);
    res->epoch_acc = mallocCheck((size_t)opt->epochs * sizeof *res->epoch_acc);
    for (int i = 0; i < 4 * opt->epochs; i++) res->epoch_terms[i] = NAN;
    for (int i = 0; i < opt->epochs; i++) res->epoch_acc[i] = NAN;
    res->best_acc = -1.0;
    if (!rc) {
        if (opt->center_init) {   // sic.py:122-128: W = 2α·C0, b = −α‖C0_c‖², α = 0.05
            float *p = mallocCheck(np * sizeof *p);
            for (int c = 0; c < K; c++) {
                double n2 = 0.0;
                for (int e = 0; e < E; e++) {
                    const float v = opt->center_init[(size_t)c * E + e];
                    p[(size_t)c * E + e] = (float)(0.1 * v);
                    n2 += (double)v * v;
                }
                p[(size_t)K * E + c] = (float)(-0.05 * n2);
            }
            head_set_params(&h, p);
            free(p);
        } else {
            head_init_params(&h, HEAD_INIT_TORCH, opt->seed, 0x51C0);
        }
        if (opt->resume_path) {
            rc = heads_ckpt_load(opt->resume_path, (Head *const[]){&h}, 1, &st, best, np, &has_best);
            if (!rc)
                train_log(opt->log, opt->log_ctx, "sic: resumed from %s after epoch %d",
                          opt->resume_path, st.epoch);
        }
    }
    float *Z = mallocCheck(N * K * sizeof *Z), *V = mallocCheck((size_t)K * E * sizeof *V),
          *Hc = mallocCheck((size_t)K * E * sizeof *Hc);
    int64_t *perm = mallocCheck(N * sizeof *perm), *nb = mallocCheck(N * sizeof *nb);
    int32_t *yhat = mallocCheck(N * sizeof *yhat), *yb = mallocCheck(N * sizeof *yb);
    double *terms = mallocCheck(nsteps * 4 * sizeof *terms), *sched = mallocCheck(nsteps * 3 * sizeof *sched);
    int64_t *pe = mallocCheck((Ne ? Ne : 1) * sizeof *pe);
    res->first_epoch = st.epoch + 1;
    int done_here = 0;
    // cos(V, S) of the mapping: K·M·E multiply-adds, small next to a device round trip unless
    // the semantic space is large (ImageNet-scale K and M)
    const OpsBackend *om = (double)K * (double)d->M * E > 1e9 ? o : &ops_cpu;
    SicEpoch ectx = {.h = &h, .acts = &acts, .X = dX, .x = dx, .perm = dperm, .nb = dnb,
                     .yb = dyb, .terms = dterms, .sched = dsched, .dl = dl, .N = N, .nsteps = nsteps,
                     .b = b, .E = E, .opt = opt};
    HeadsEpochs epochs = {.steps = sic_epoch_steps, .ctx = &ectx,
                          .use_graph = opt->graph && o->graph_capture && o->graph_launch};
    for (int ep = st.epoch + 1; !rc && ep <= opt->epochs; ep++) {
        if (opt->select_test_acc && st.no_gain >= opt->patience) break;   // resumed after stopping
        if (opt->stop_after && done_here >= opt->stop_after) {
            res->stopped = 1;
            break;
        }
        // step 7: the centre mapping of the current head; epoch 1 uses the initial head
        double t = now_seconds();
        if ((rc = head_predict(&h, NULL, Z, dX, N))) break;
        if ((rc = sic_centre_map(V, Hc, NULL, NULL, om, Z, d->X, N, E, K, d->S, d->M, opt->xi_c, opt->xi_a)))
            break;
        // ŷ_i = argmax_c ⟨X_i, H_c⟩ for every fit row (losses.py:69-72; fixed for the epoch)
        o->to_device(dH, Hc, (size_t)K * E * sizeof *Hc);
        o->matmul_forward(dP, dX, dH, NULL, (int)N, E, K);
        o->synchronize();
        o->to_host(Z, dP, N * K * sizeof *Z);
#pragma omp parallel for schedule(static) if (N > 100000)
        for (size_t i = 0; i < N; i++) {
            const float *r = Z + i * K;
            int bc = 0;
            for (int c = 1; c < K; c++)
                if (r[c] > r[bc]) bc = c;
            yhat[i] = bc;
        }
        // the epoch's batches: a shuffle and one neighbour per item (custom_dataset.py:79)
        Rng g;
        rng_init(&g, opt->seed, 0x51C000ull + (uint64_t)ep);
        for (size_t i = 0; i < N; i++) perm[i] = (int64_t)i;
        for (size_t i = N - 1; i > 0; i--) swap64(&perm[i], &perm[rng_below(&g, i + 1)]);
        for (size_t i = 0; i < N; i++) {
            const int64_t a = perm[i];
            nb[i] = d->nbr[(size_t)a * nn + rng_below(&g, (uint64_t)nn)];
            yb[i] = yhat[a];
        }
        for (size_t s = 0; s < nsteps; s++) adam_schedule(sched + 3 * s, opt->lr, 0.9, 0.999, h.step + 1 + (long)s);
        o->to_device(dperm, perm, N * sizeof *perm);
        o->to_device(dnb, nb, N * sizeof *nb);
        o->to_device(dyb, yb, N * sizeof *yb);
        o->to_device(dsched, sched, nsteps * 3 * sizeof *sched);
        res->t_map += now_seconds() - t;
        t = now_seconds();
        // the batches are small GEMMs (B·E·K): threads cost more than they save, and on a
        // loaded machine a descheduled thread stalls every barrier, so the CPU runs them on one
        const int threads = host ? cpu_set_threads(0) : 0;
        if (host) cpu_set_threads(1);
        // eagerly, or a CUDA graph captured once and replayed (heads.h)
        rc = heads_epoch_run(&epochs, o, done_here, "sic", opt->log, opt->log_ctx);
        res->graph_captures = epochs.captures;
        if (rc) break;
        h.step += (int64_t)nsteps;   // the ops read the step from the uploaded schedule
        if (host) cpu_set_threads(threads);
        o->synchronize();
        o->to_host(terms, dterms, nsteps * 4 * sizeof *terms);
        res->t_steps += now_seconds() - t;
        res->steps += (int64_t)nsteps;
        double *et = res->epoch_terms + 4 * (size_t)(ep - 1);
        for (int q = 0; q < 4; q++) {   // AverageMeter: the plain mean over batches
            double m = 0.0;
            for (size_t s = 0; s < nsteps; s++) m += terms[4 * s + q];
            et[q] = m / (double)nsteps;
        }
        st.epoch = ep;
        done_here++;
        char accs[64] = "";
        if (opt->select_test_acc) {   // sic.py:148-167: test ACC every epoch, best kept
            t = now_seconds();
            if ((rc = head_predict(&h, pe, NULL, dXe, Ne))) break;
            ClusterMetrics cm;   // ACC over the labelled rows, -1 when none
            const double acc = d->yeval && !metrics_compute_labelled(&cm, pe, d->yeval, Ne) && cm.n
                                   ? cm.acc : -1.0;
            res->epoch_acc[ep - 1] = acc;
            if (acc > st.best_acc || st.best_epoch == 0) {
                st.best_acc = acc;
                st.best_epoch = ep;
                st.no_gain = 0;
                head_get_params(&h, best);
                has_best = 1;
            } else {
                st.no_gain++;
            }
            snprintf(accs, sizeof accs, ", test ACC %.4f (best %.4f, epoch %d)", acc, st.best_acc, st.best_epoch);
            res->t_eval += now_seconds() - t;
        }
        train_log(opt->log, opt->log_ctx, "sic: epoch %d/%d  L %.4f  L_I %.4f  H %.4f  CE %.4f%s",
                  ep, opt->epochs, et[0], et[1], et[2], et[3], accs);
        if (opt->ckpt_path &&
            (rc = heads_ckpt_save(opt->ckpt_path, (Head *const[]){&h}, 1, &st, has_best ? best : NULL,
                                  has_best ? np : 0)))
            break;
        if (opt->select_test_acc && st.no_gain >= opt->patience) {
            res->early_stopped = 1;
            train_log(opt->log, opt->log_ctx,
                      "sic: no test-ACC gain for %d epochs: stopping (sic.py:165-167)",
                      opt->patience);
            break;
        }
    }
    res->epochs_run = st.epoch;
    if (!rc && !res->stopped) {
        res->params = mallocCheck(np * sizeof *res->params);
        if (opt->select_test_acc && has_best) {
            memcpy(res->params, best, np * sizeof *best);
            head_set_params(&h, best);
            res->reported_epoch = st.best_epoch;
            res->best_acc = st.best_acc;
        } else {
            head_get_params(&h, res->params);
            res->reported_epoch = st.epoch;
        }
        res->pred = mallocCheck((Ne ? Ne : 1) * sizeof *res->pred);
        rc = head_predict(&h, res->pred, NULL, dXe, Ne);
    }
    if (epochs.graph) o->graph_free(epochs.graph);
    free(Z), free(V), free(Hc), free(perm), free(nb), free(yhat), free(yb), free(terms), free(sched);
    free(pe), free(best);
    if (!host) {
        if (dX) o->free(dX);
        if (dXe) o->free(dXe);
    }
    float *bufs[] = {dx, dP, dH, dl};
    for (int i = 0; i < 4; i++)
        if (bufs[i]) o->free(bufs[i]);
    if (dperm) o->free(dperm);
    if (dnb) o->free(dnb);
    if (dyb) o->free(dyb);
    if (dterms) o->free(dterms);
    if (dsched) o->free(dsched);
    head_acts_free(&h, &acts);
    head_free(&h);
    if (rc) sic_result_free(res);
    return rc;
}
