/*
 * tac_train.c — TAC (trained) on cached features (tac_train.h). File:line references are to
 * XLearning-SCU/2024-ICML-TAC@830e02c.
 */
#include "train/tac_train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "cluster/metrics.h"
#include "cpu/cpu_ops.h"
#include "io/err.h"
#include "io/progress.h"
#include "rng.h"
#include "train/log.h"
#include "train/optim.h"

void tac_train_opts_default(TacTrainOpts *o) {
    memset(o, 0, sizeof *o);
    o->epochs = 20;
    o->batch = 512;
    o->tau = 0.5;
    o->lr = 1e-3;
    o->beta1 = 0.9;
    o->beta2 = 0.99;
    o->eps = 1e-8;
    o->entropy_weight = 5.0;
    o->graph = 1;
    o->seed = 1234;
    o->hparams = "";
}

void tac_setup_opts_default(TacSetupOpts *o) {
    o->kn = 50;
    o->retrieve_tau = 0.005;
}

void tac_setup_free(TacSetup *s) {
    free(s->T);
    free(s->nbr_x);
    free(s->nbr_t);
    memset(s, 0, sizeof *s);
}

void tac_softmax_rows(float *S, size_t n, size_t M, double tau) {
    const float inv_tau = (float)(1.0 / tau);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        float *r = S + i * M;
        float mx = -INFINITY;
        for (size_t j = 0; j < M; j++) {
            r[j] *= inv_tau;
            mx = r[j] > mx ? r[j] : mx;
        }
        double sum = 0.0;
        for (size_t j = 0; j < M; j++) sum += (r[j] = expf(r[j] - mx));
        for (size_t j = 0; j < M; j++) r[j] = (float)(r[j] / sum);
    }
}

int tac_text_counterparts(float *T, const OpsBackend *o, const float *X, size_t N, int E,
                          const float *Nn, size_t M, double tau) {
    if (M < 1) return laic_error("tac-train: no candidate nouns");
    const size_t CH = 8192;   // retrieve_text.py:23
    float *Nt = mallocCheck(M * (size_t)E * sizeof *Nt);   // (E,M): B of the second product
    for (size_t j = 0; j < M; j++)
        for (int e = 0; e < E; e++) Nt[(size_t)e * M + j] = Nn[j * E + e];
    const size_t rows = N < CH ? N : CH;
    float *S = mallocCheck(rows * M * sizeof *S);
    int rc = 0;
    for (size_t i0 = 0; i0 < N && !rc; i0 += CH) {
        const size_t n = N - i0 < CH ? N - i0 : CH;
        if ((rc = heads_gemm_nt(o, S, X + i0 * E, Nn, n, M, E))) break;   // similarity (n,M)
        tac_softmax_rows(S, n, M, tau);   // softmax(similarity / τ) over the nouns
        if ((rc = heads_gemm_nt(o, T + i0 * E, S, Nt, n, (size_t)E, (int)M))) break;   // (n,E)
    }
    free(S);
    free(Nt);
    if (!rc) l2normalize_rows_cpu(T, T, (int)N, E);
    return rc;
}

int tac_train_setup(TacSetup *s, const OpsBackend *o, const float *X, size_t N, int E,
                    const float *Tc, const float *Nn, size_t M, const TacSetupOpts *opt) {
    memset(s, 0, sizeof *s);
    if (opt->kn < 1 || (size_t)opt->kn >= N)
        return laic_error("tac_train.neighbors = %d must be in [1, %zu] (fewer than the fit images) "
                          "---> HINT: lower tac_train.neighbors", opt->kn, N - 1);
    double t = now_seconds();
    s->T = mallocCheck(N * (size_t)E * sizeof *s->T);
    if (Tc) l2normalize_rows_cpu(s->T, Tc, (int)N, E);   // train_head.py:54-56
    else if (tac_text_counterparts(s->T, o, X, N, E, Nn, M, opt->retrieve_tau)) goto fail;
    s->t_retrieve = now_seconds() - t;
    t = now_seconds();
    s->kn = opt->kn;
    s->nbr_x = mallocCheck(N * (size_t)s->kn * sizeof *s->nbr_x);
    s->nbr_t = mallocCheck(N * (size_t)s->kn * sizeof *s->nbr_t);
    if (knn_topk(s->nbr_x, NULL, X, (int)N, E, s->kn) || knn_topk(s->nbr_t, NULL, s->T, (int)N, E, s->kn))
        goto fail;
    s->t_knn = now_seconds() - t;
    return 0;
fail:
    tac_setup_free(s);
    return -1;
}

void tac_step(Head *hT, Head *hI, HeadActs *aT, HeadActs *aI, const float *t, const float *x, int B,
              double *terms, float *dT, float *dI, const double *sched, const TacTrainOpts *opt) {
    const OpsBackend *o = hI->o;
    const size_t off = (size_t)B * hI->K;
    // logit_text, logit_image = model(text, image); then the neighbours' (train_head.py:116-117):
    // per head, anchors then neighbours, each group one training-mode BatchNorm call
    head_forward_parts(hT, aT, t, 2 * B, 2, 1, 1);
    head_forward_parts(hI, aI, x, 2 * B, 2, 1, 1);
    o->tac_loss_forward_backward(terms, dI, dT, dI + off, dT + off, aI->probs, aT->probs,
                                 aI->probs + off, aT->probs + off, B, hI->K, opt->tau,
                                 opt->entropy_weight);
    head_zero_grad(hT);
    head_zero_grad(hI);
    head_backward(hT, aT, dT);
    head_backward(hI, aI, dI);
    // one optimiser over both heads' parameters: the same step count and schedule
    head_adam_at(hT, sched, opt->beta1, opt->beta2, opt->eps, 0.0);
    head_adam_at(hI, sched, opt->beta1, opt->beta2, opt->eps, 0.0);
}

/* One epoch's batches on backend memory (what a CUDA graph captures): only ops. idx holds the
 * anchors, then their text neighbours, then their image neighbours (nsteps·b each). */
typedef struct {
    Head *hT, *hI;
    HeadActs *aT, *aI;
    const float *X, *T;
    float *t, *x, *dT, *dI;   // (2b,E) anchors then neighbours, per modality; (2b,K) each
    const int64_t *idx;
    double *terms;
    const double *sched;
    size_t nsteps;
    int b, E;
    const TacTrainOpts *opt;
} TacEpoch;

static void tac_epoch_steps(void *ctx) {
    TacEpoch *c = ctx;
    const OpsBackend *o = c->hI->o;
    const size_t nb = c->nsteps * (size_t)c->b;
    for (size_t s = 0; s < c->nsteps; s++) {
        const int64_t *ia = c->idx + s * c->b, *it = c->idx + nb + s * c->b, *ix = c->idx + 2 * nb + s * c->b;
        const size_t half = (size_t)c->b * c->E;
        o->index_select_forward(c->t, c->T, ia, c->b, c->E);
        o->index_select_forward(c->t + half, c->T, it, c->b, c->E);
        o->index_select_forward(c->x, c->X, ia, c->b, c->E);
        o->index_select_forward(c->x + half, c->X, ix, c->b, c->E);
        tac_step(c->hT, c->hI, c->aT, c->aI, c->t, c->x, c->b, c->terms + 5 * s, c->dT, c->dI,
                 c->sched + 3 * s, c->opt);
    }
}

void tac_train_result_free(TacTrainResult *r) {
    free(r->pred);
    free(r->params_I);
    free(r->params_T);
    free(r->epoch_terms);
    free(r->epoch_acc);
    memset(r, 0, sizeof *r);
}

int tac_train(TacTrainResult *res, const OpsBackend *o, const TacTrainData *d,
              const TacTrainOpts *opt) {
    memset(res, 0, sizeof *res);
    const size_t N = d->N, Ne = d->Ne;
    const int E = d->E, K = d->K, b = opt->batch, kn = d->kn;
    if (N < 2 || K < 1 || E < 1 || kn < 1 || opt->epochs < 1 || b < 2)
        return laic_error("tac-train: bad sizes (N %zu, K %d, E %d, batch %d, neighbours %d)", N, K,
                          E, b, kn);
    if ((size_t)b > N)
        return laic_error("tac-train: batch %d exceeds the %zu fit images, so no full batch is left "
                          "(the authors' loader drops the last partial one) ---> HINT: lower "
                          "tac_train.batch", b, N);
    const size_t nsteps = N / (size_t)b;   // drop_last
    heads_use_fp32(o);
    const int host = !strcmp(o->name, "cpu");   // host memory: arrays used in place
    Head hT, hI;
    memset(&hT, 0, sizeof hT);
    memset(&hI, 0, sizeof hI);
    HeadActs aT, aI;
    memset(&aT, 0, sizeof aT);
    memset(&aI, 0, sizeof aI);
    int rc = head_create(&hT, o, HEAD_MLP, E, E, K, 2 * b) || head_create(&hI, o, HEAD_MLP, E, E, K, 2 * b) ? -1 : 0;
    if (!rc) rc = head_acts_create(&hT, &aT, 2 * b) || head_acts_create(&hI, &aI, 2 * b) ? -1 : 0;
    float *dX = NULL, *dT = NULL, *dXe = NULL, *bufx = NULL, *dl = NULL;
    int64_t *didx = NULL;
    double *dterms = NULL, *dsched = NULL;
    if (!rc) {
        dX = host ? (float *)d->X : o->alloc(N * E * sizeof(float));
        dT = host ? (float *)d->T : o->alloc(N * E * sizeof(float));
        dXe = host || !Ne ? (float *)d->Xeval : o->alloc(Ne * E * sizeof(float));
        bufx = o->alloc(4 * (size_t)b * E * sizeof(float));   // t (anchors | neighbours) | x (same)
        dl = o->alloc(4 * (size_t)b * K * sizeof(float));
        didx = o->alloc(3 * nsteps * (size_t)b * sizeof(int64_t));   // anchors | nbr_t | nbr_x
        dterms = o->alloc(nsteps * 5 * sizeof(double));
        dsched = o->alloc(nsteps * 3 * sizeof(double));
        rc = dX && dT && (dXe || !Ne) && bufx && dl && didx && dterms && dsched ? 0 : -1;
        if (!rc && !host) {
            o->to_device(dX, d->X, N * E * sizeof(float));
            o->to_device(dT, d->T, N * E * sizeof(float));
            if (Ne) o->to_device(dXe, d->Xeval, Ne * E * sizeof(float));
        }
    }
    HeadsRunState st = {0};
    snprintf(st.hparams, sizeof st.hparams, "%s", opt->hparams ? opt->hparams : "");
    if (!rc) {
        // models.py:54-57: trunc_normal(0.02) weights, default biases; text head first
        head_init_params(&hT, HEAD_INIT_TAC, opt->seed, 0x7AC1);
        head_init_params(&hI, HEAD_INIT_TAC, opt->seed, 0x7AC2);
        if (opt->resume_path) {
            rc = heads_ckpt_load(opt->resume_path, (Head *const[]){&hT, &hI}, 2, &st, NULL, 0, NULL);
            if (!rc)
                train_log(opt->log, opt->log_ctx, "tac-train: resumed from %s after epoch %d",
                          opt->resume_path, st.epoch);
        }
    }
    res->epoch_terms = mallocCheck((size_t)opt->epochs * 5 * sizeof *res->epoch_terms);
    for (int i = 0; i < 5 * opt->epochs; i++) res->epoch_terms[i] = NAN;
    res->epoch_acc = mallocCheck((size_t)opt->epochs * sizeof *res->epoch_acc);
    for (int i = 0; i < opt->epochs; i++) res->epoch_acc[i] = NAN;
    int64_t *pe = opt->eval_every_epoch ? mallocCheck((Ne ? Ne : 1) * sizeof *pe) : NULL;
    const size_t nb = nsteps * (size_t)b;
    int64_t *idx = mallocCheck(3 * nb * sizeof *idx), *perm = mallocCheck(N * sizeof *perm);
    double *terms = mallocCheck(nsteps * 5 * sizeof *terms), *sched = mallocCheck(nsteps * 3 * sizeof *sched);
    res->first_epoch = st.epoch + 1;
    int done_here = 0;
    TacEpoch ectx = {.hT = &hT, .hI = &hI, .aT = &aT, .aI = &aI, .X = dX, .T = dT, .t = bufx,
                     .x = bufx + 2 * (size_t)b * E, .dT = dl, .dI = dl + 2 * (size_t)b * K, .idx = didx,
                     .terms = dterms, .sched = dsched, .nsteps = nsteps, .b = b, .E = E, .opt = opt};
    HeadsEpochs epochs = {.steps = tac_epoch_steps, .ctx = &ectx,
                          .use_graph = opt->graph && o->graph_capture && o->graph_launch};
    for (int ep = st.epoch + 1; !rc && ep <= opt->epochs; ep++) {
        if (opt->stop_after && done_here >= opt->stop_after) {
            res->stopped = 1;
            break;
        }
        double t = now_seconds();
        // a shuffle (DataLoader shuffle=True, drop_last=True) and, per item, one text and one
        // image neighbour drawn uniformly from its kn (data_utils.py:133-141)
        Rng g;
        rng_init(&g, opt->seed, 0x7AC000ull + (uint64_t)ep);
        for (size_t i = 0; i < N; i++) perm[i] = (int64_t)i;
        for (size_t i = N - 1; i > 0; i--) {
            const size_t j = (size_t)rng_below(&g, i + 1);
            const int64_t tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
        }
        for (size_t i = 0; i < nb; i++) {
            const int64_t a = perm[i];
            idx[i] = a;
            idx[nb + i] = d->nbr_t[(size_t)a * kn + rng_below(&g, (uint64_t)kn)];
            idx[2 * nb + i] = d->nbr_x[(size_t)a * kn + rng_below(&g, (uint64_t)kn)];
        }
        for (size_t s = 0; s < nsteps; s++)
            adam_schedule(sched + 3 * s, opt->lr, opt->beta1, opt->beta2, hI.step + 1 + (long)s);
        o->to_device(didx, idx, 3 * nb * sizeof *idx);
        o->to_device(dsched, sched, nsteps * 3 * sizeof *sched);
        // small steps run on one CPU thread (see sic.c); b·E·E ≥ 2^24 (the default 512 × 512 ×
        // 512 GEMMs) keeps the BLAS threads
        const int serial = host && (double)b * E * E < 16777216.0;
        const int threads = serial ? cpu_set_threads(0) : 0;
        if (serial) cpu_set_threads(1);
        // eagerly, or a CUDA graph captured once and replayed (heads.h)
        rc = heads_epoch_run(&epochs, o, done_here, "tac-train", opt->log, opt->log_ctx);
        res->graph_captures = epochs.captures;
        if (rc) break;
        // counters on the host (the ops read the step from the uploaded schedule): each step is
        // one Adam step and two training forwards per head
        hT.step += (int64_t)nsteps;
        hI.step += (int64_t)nsteps;
        hT.bn_batches += 2 * (int64_t)nsteps;
        hI.bn_batches += 2 * (int64_t)nsteps;
        if (serial) cpu_set_threads(threads);
        o->synchronize();
        o->to_host(terms, dterms, nsteps * 5 * sizeof *terms);
        res->t_steps += now_seconds() - t;
        res->steps += (int64_t)nsteps;
        double *et = res->epoch_terms + 5 * (size_t)(ep - 1);
        for (int q = 0; q < 5; q++) {
            double m = 0.0;
            for (size_t s = 0; s < nsteps; s++) m += terms[5 * s + q];
            et[q] = m / (double)nsteps;
        }
        st.epoch = ep;
        done_here++;
        char accs[48] = "";
        if (pe) {   // infer(): eval mode, the image head, every epoch (train_head.py:154-155)
            t = now_seconds();
            if ((rc = head_predict(&hI, pe, NULL, dXe, Ne))) break;
            ClusterMetrics cm;   // ACC over the labelled rows, -1 when none
            const double acc = d->yeval && !metrics_compute_labelled(&cm, pe, d->yeval, Ne) && cm.n
                                   ? cm.acc : -1.0;
            res->epoch_acc[ep - 1] = acc;
            if (acc >= 0) snprintf(accs, sizeof accs, "  eval ACC %.4f", acc);
            res->t_eval += now_seconds() - t;
        }
        train_log(
            opt->log, opt->log_ctx,
            "tac-train: epoch %d/%d  L %.4f  distill %.4f + %.4f  consist %.4f  entropy %.4f%s", ep,
            opt->epochs, et[0], et[1], et[2], et[3], et[4], accs);
        if (opt->ckpt_path && (rc = heads_ckpt_save(opt->ckpt_path, (Head *const[]){&hT, &hI}, 2, &st, NULL, 0)))
            break;
    }
    res->epochs_run = st.epoch;
    if (!rc && !res->stopped) {
        double t = now_seconds();
        res->n_params = hI.n_params;
        res->params_I = mallocCheck(hI.n_params * sizeof(float));
        res->params_T = mallocCheck(hT.n_params * sizeof(float));
        head_get_params(&hI, res->params_I);
        head_get_params(&hT, res->params_T);
        res->pred = mallocCheck((Ne ? Ne : 1) * sizeof *res->pred);
        rc = head_predict(&hI, res->pred, NULL, dXe, Ne);   // infer(): eval mode, image head
        res->t_eval += now_seconds() - t;
    }
    if (epochs.graph) o->graph_free(epochs.graph);
    free(pe);
    free(idx);
    free(perm);
    free(terms);
    free(sched);
    if (!host) {
        if (dX) o->free(dX);
        if (dT) o->free(dT);
        if (dXe) o->free(dXe);
    }
    if (bufx) o->free(bufx);
    if (dl) o->free(dl);
    if (didx) o->free(didx);
    if (dterms) o->free(dterms);
    if (dsched) o->free(dsched);
    head_acts_free(&hT, &aT);
    head_acts_free(&hI, &aI);
    head_free(&hT);
    head_free(&hI);
    if (rc) tac_train_result_free(res);
    return rc;
}
