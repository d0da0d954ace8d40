/*
 * seic.c — methods "seic-stage1" and "seic" (SEIC, SPEC §9.3; design of V4C,
 * hyw1008/VLM4Cluster@4f6cd92 vlm4cluster/methods/seic/core.py).
 *
 * seic-stage1 ("SEIC†"):
 *   stage 0  image–text pairs: spherical k-means of the fit features X into K centres; the
 *            candidates are the union of each centre's k1 nearest nouns (cosine); each image
 *            takes its k2 nearest candidates with weights softmax(cos/τ_t), t_i = normalize(Σ w n)
 *            → T (Nf,E). Noun features: V4C's 7-prompt mean of *normalised* prompt features
 *            (seic.noun_mean = normalized; built from the run's bank prompts and cached), or the
 *            run's bank as it is (raw: TAC's mean of raw features; also whenever the bank is
 *            precomputed, nouns.features). Cached in run.cache_dir under a key of every input.
 *   stage 1  the heads on (X, T) (host/train/seic.h), Adam; prediction = argmax p^I of the
 *            eval features.
 * seic (stage 2): self-enhancement of the image encoder through LoRA (or seic.adapter =
 * full_last_k) and the image heads, on weak / strong views of the fit images, starting from the
 * heads seic-stage1 leaves in the Run (r->seic); prediction = argmax p^I of the eval images'
 * eval view through the adapted encoder. Needs the images (not data.image_features).
 *
 * Files in the run directory: seic_stage1.ckpt, seic_stage2.ckpt (after every epoch; the final
 * ones stay),
 * seic_candidates.tsv (the stage-0 candidate nouns), report.json "seic" (stage 0 sizes, loss
 * terms per epoch, the scale, timings) and the methods' metrics and predictions.
 * Resume: run.resume=DIR reads DIR/seic_stage1.ckpt (or DIR.partial/...) before the new run
 * clears its directory (and seic_stage2.ckpt when there is one); a finished stage is not trained
 * again. seic.stop_after=N stops after
 * N epochs in all (stage-1 epochs first) with an error and keeps <dir>.partial/.
 */
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster/cluster.h"
#include "io/atomic.h"
#include "io/err.h"
#include "io/npy.h"
#include "io/progress.h"
#include "run/methods/methods.h"
#include "train/seic.h"

typedef struct {
    SeicState s1;          // the stage-1 heads (trained here or loaded)
    int have_s1;
    SeicState *resume1;    // run.resume's checkpoints (NULL when absent)
    SeicState *resume2;
    cJSON *rep;            // report.json "seic" (owned by r->report)
} SeicRun;

static void seic_run_free(void *p) {
    SeicRun *s = p;
    if (!s) return;
    if (s->have_s1) seic_state_free(&s->s1);
    if (s->resume1) seic_state_free(s->resume1);
    if (s->resume2) seic_state_free(s->resume2);
    free(s->resume1);
    free(s->resume2);
    free(s);
}

static SeicRun *seic_run(Run *r) {
    if (!r->seic) {
        r->seic = callocCheck(1, sizeof(SeicRun));
        r->seic_free = seic_run_free;
    }
    return r->seic;
}

/* run.resume=DIR: DIR/<name>, else DIR.partial/<name>; NULL state when neither exists. */
static int load_ckpt(Run *r, const char *dir, const char *name, SeicState **out) {
    char path[2300];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (stat(path, &st)) snprintf(path, sizeof path, "%s.partial/%s", dir, name);
    if (stat(path, &st)) return 0;
    *out = mallocCheck(sizeof **out);
    if (seic_ckpt_load(path, *out)) {
        free(*out);
        *out = NULL;
        return -1;
    }
    run_log(r, "resume: %s (SEIC stage %d, epoch %d, step %lld)", path, (*out)->stage, (*out)->epoch,
            (long long)(*out)->step);
    return 0;
}

int seic_resume_load(Run *r) {
    const char *dir = config_str(&r->cfg, "run", "resume");
    if (!dir[0]) return 0;
    SeicRun *s = seic_run(r);
    if (s->resume1) return 0;   // both methods list this prepare step: read once
    if (load_ckpt(r, dir, "seic_stage1.ckpt", &s->resume1) ||
        load_ckpt(r, dir, "seic_stage2.ckpt", &s->resume2))
        return -1;
    if (!s->resume1)
        return laic_error("%s: no seic_stage1.ckpt in it or in %s.partial ---> HINT: run.resume "
                          "takes the run directory of a stopped or killed SEIC run", dir, dir);
    return 0;
}

// --- stage 0 -------------------------------------------------------------------------------------

typedef struct {
    float v;
    int64_t i;
} Pick;

// a ranks below b: smaller value, or equal value and larger index (ties go to the lower index)
static inline int worse(Pick a, Pick b) { return a.v < b.v || (a.v == b.v && a.i > b.i); }

static void sift_down(Pick *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(h[l], h[m])) m = l;
        if (r < n && worse(h[r], h[m])) m = r;
        if (m == i) return;
        Pick t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static int cmp_pick_desc(const void *a, const void *b) {
    const Pick *x = a, *y = b;
    return worse(*x, *y) ? 1 : worse(*y, *x) ? -1 : 0;
}

/* The k best of s (n), best first (ties to the lower index), into out (k ≤ n). */
static void topk(Pick *out, const float *s, size_t n, int k) {
    for (int j = 0; j < k; j++) out[j] = (Pick){s[j], j};
    for (int j = k / 2 - 1; j >= 0; j--) sift_down(out, k, j);   // min-heap on "worse"
    for (size_t j = (size_t)k; j < n; j++) {
        Pick p = {s[j], (int64_t)j};
        if (worse(out[0], p)) {
            out[0] = p;
            sift_down(out, k, 0);
        }
    }
    qsort(out, (size_t)k, sizeof *out, cmp_pick_desc);
}

/* The noun features stage 0 ranks: V4C's mean of normalised prompt features (encoded here
 * from the run's bank prompts, cached), or the run's bank itself. *own: free *bank. */
static int noun_bank(Run *r, const float **bank, float **own, const char **kind) {
    const char *mode = config_str(&r->cfg, "seic", "noun_mean");
    *own = NULL;
    *bank = r->T_all;
    *kind = "the run's noun bank";
    if (strcmp(mode, "normalized")) return 0;
    if (!r->have_nouns || !r->have_weights) {
        run_log(r, "seic: the noun bank is precomputed (nouns.features): its rows are used as "
                   "they are (seic.noun_mean=normalized needs the prompts)");
        *kind = "precomputed noun features";
        return 0;
    }
    const int E = r->E;
    uint64_t hn = 1469598103934665603ull;
    for (size_t i = 0; i < r->Mn; i++)
        hn = run_hash64(r->noun_names[i], strlen(r->noun_names[i]) + 1, hn);
    char key[1024], path[2200];
    snprintf(key, sizeof key, "seic-nouns v1|w=%s|names=%016llx|Mn=%zu|templates=%d|dev=%s|prec=%s",
             r->w.sha256, (unsigned long long)hn, r->Mn, NOUNS_N_TEMPLATES, r->ops->name,
             config_str(&r->cfg, "model", "precision"));
    run_cache_path(r, "seic-nouns", key, "", path, sizeof path);
    Npy x;
    *kind = "mean of normalised prompt features (V4C)";
    if (run_cache_load(r, "SEIC noun feature", path, key, &x)) {
        int ok = x.dtype == NPY_F32 && x.ndim == 2 && x.shape[0] == r->Mn && x.shape[1] == (size_t)E;
        for (size_t i = 0; ok && i < x.count; i++) ok = isfinite(((float *)x.data)[i]);
        if (ok) {
            *bank = *own = x.data;
            run_cache_status(r, "seic_noun_features", "hit");
            return 0;
        }
        run_cache_reject(r, "SEIC noun feature", path, "not (Mn,E) finite float32", &x);
    }
    float *pf = mallocCheck(r->Mn * NOUNS_N_TEMPLATES * (size_t)E * sizeof *pf);
    run_log(r, "seic: encoding %zu nouns x %d templates (normalised before averaging, V4C)", r->Mn,
            NOUNS_N_TEMPLATES);
    int rc = stage_encode_noun_prompts(r, 1, pf);
    if (rc) {
        free(pf);
        return -1;
    }
    float *b = mallocCheck(r->Mn * (size_t)E * sizeof *b);
    for (size_t i = 0; i < r->Mn; i++) {
        double acc[4096], s = 0.0;
        for (int e = 0; e < E; e++) acc[e] = 0.0;
        for (int t = 0; t < NOUNS_N_TEMPLATES; t++)
            for (int e = 0; e < E; e++) acc[e] += pf[(i * NOUNS_N_TEMPLATES + (size_t)t) * E + e];
        for (int e = 0; e < E; e++) s += acc[e] * acc[e];
        s = sqrt(s) > 1e-12 ? sqrt(s) : 1e-12;   // the mean's norm: the 1/7 cancels
        for (int e = 0; e < E; e++) b[i * E + e] = (float)(acc[e] / s);
    }
    free(pf);
    run_cache_status(r, "seic_noun_features", "miss");
    const size_t shb[2] = {r->Mn, (size_t)E};
    run_cache_store(r, "SEIC noun feature", path, key, NPY_F32, 2, shb, b);
    *bank = *own = b;
    return 0;
}

/* Stage 0: T (Nf,E) text counterparts of the fit images; *cand (Mc) the candidate bank rows. */
static int stage0_pairs(Run *r, float **T_out, int64_t **cand_out, size_t *Mc_out) {
    double t0 = now_seconds();
    const int E = r->E, K = r->K;
    const size_t N = r->fit.N;
    if (E > 4096) return laic_error("seic: feature width %d (at most 4096)", E);
    const float *bank;
    float *own;
    const char *kind;
    if (noun_bank(r, &bank, &own, &kind)) return -1;
    const size_t Mn = r->Mn;
    const int k1 = (int)(config_int(&r->cfg, "seic", "k1") < (long)Mn ? config_int(&r->cfg, "seic", "k1") : (long)Mn);
    const double tau = config_float(&r->cfg, "seic", "text_tau");
    // cache: every input by content or value
    uint64_t hx = run_hash64(r->fit.X, N * (size_t)E * sizeof(float), 11);
    uint64_t hb = run_hash64(bank, Mn * (size_t)E * sizeof(float), 12);
    char key[1024], pT[2200], pC[2200];
    snprintf(key, sizeof key, "seic-pairs v1|X=%016llx|N=%zu|E=%d|bank=%016llx|Mn=%zu|K=%d|k1=%ld|"
             "k2=%ld|tau=%.17g|iters=%ld|restarts=%ld|spc=%ld|seed=%ld", (unsigned long long)hx, N, E,
             (unsigned long long)hb, Mn, K, config_int(&r->cfg, "seic", "k1"),
             config_int(&r->cfg, "seic", "k2"), tau, config_int(&r->cfg, "seic", "kmeans_iters"),
             config_int(&r->cfg, "seic", "kmeans_restarts"),
             config_int(&r->cfg, "seic", "kmeans_sample_per_center"), config_int(&r->cfg, "run", "seed"));
    run_cache_path(r, "seic-pairs", key, "", pT, sizeof pT);
    run_cache_path(r, "seic-pairs", key, "-cand", pC, sizeof pC);
    char keyC[1100];
    snprintf(keyC, sizeof keyC, "%s|cand", key);
    Npy a, c;
    if (run_cache_load(r, "SEIC pair", pT, key, &a)) {
        int ok = a.dtype == NPY_F32 && a.ndim == 2 && a.shape[0] == N && a.shape[1] == (size_t)E;
        for (size_t i = 0; ok && i < a.count; i++) ok = isfinite(((float *)a.data)[i]);
        if (!ok) {
            run_cache_reject(r, "SEIC pair", pT, "not (N,E) finite float32", &a);
        } else if (!run_cache_load(r, "SEIC candidate", pC, keyC, &c)) {
            run_cache_reject(r, "SEIC pair", pT, "its candidate file failed its check", &a);
        } else {
            ok = c.dtype == NPY_I64 && c.ndim == 1 && c.shape[0] > 0;
            for (size_t i = 0; ok && i < c.shape[0]; i++)   // sorted bank rows in range
                ok = ((int64_t *)c.data)[i] >= 0 && (size_t)((int64_t *)c.data)[i] < Mn &&
                     (i == 0 || ((int64_t *)c.data)[i] > ((int64_t *)c.data)[i - 1]);
            if (ok) {
                *T_out = a.data;
                *cand_out = c.data;
                *Mc_out = c.shape[0];
                free(own);
                run_cache_status(r, "seic_pairs", "hit");
                run_log(r, "seic stage 0: image-text pairs from cache %s", pT);
                return 0;
            }
            run_cache_reject(r, "SEIC candidate", pC, "not sorted noun indices in range", &c);
            run_cache_reject(r, "SEIC pair", pT, "its candidate file failed its check", &a);
        }
    }
    run_cache_status(r, "seic_pairs", "miss");
    // initial centres: spherical k-means with K clusters (V4C: faiss, niter 300, nredo 10)
    float *cen = mallocCheck((size_t)K * E * sizeof *cen);
    int64_t *lab = mallocCheck(N * sizeof *lab);
    KMeansOpts o = {0};
    o.K = K;
    o.iters = (int)config_int(&r->cfg, "seic", "kmeans_iters");
    o.restarts = (int)config_int(&r->cfg, "seic", "kmeans_restarts");
    o.seed = (uint64_t)config_int(&r->cfg, "run", "seed") + 0x5E1C;
    o.spherical = 1;
    o.init = KMEANS_INIT_RANDOM;   // faiss: random training rows
    size_t spc = (size_t)config_int(&r->cfg, "seic", "kmeans_sample_per_center");
    o.sample = spc && spc * (size_t)K < N ? spc * (size_t)K : 0;
    double obj;
    int rc = kmeans_fit(lab, cen, &obj, r->fit.X, (int)N, E, &o);
    free(lab);
    if (rc) {
        free(cen);
        free(own);
        return -1;
    }
    for (int k = 0; k < K; k++) {   // normalised centres
        double s = 0;
        for (int e = 0; e < E; e++) s += (double)cen[(size_t)k * E + e] * cen[(size_t)k * E + e];
        s = sqrt(s) > 1e-12 ? sqrt(s) : 1e-12;
        for (int e = 0; e < E; e++) cen[(size_t)k * E + e] = (float)(cen[(size_t)k * E + e] / s);
    }
    // candidates: the union of each centre's k1 nearest nouns
    RunGemm g;
    if (run_gemm_init(&g, r->ops, bank, 1, (int)Mn, E, (size_t)K)) {
        free(cen);
        free(own);
        return -1;
    }
    float *S = mallocCheck((size_t)K * Mn * sizeof *S);
    run_gemm_rows(&g, S, cen, (size_t)K, 0);
    run_gemm_free(&g);
    free(cen);
    uint8_t *in = callocCheck(Mn, 1);
    Pick *pk = mallocCheck((size_t)(k1 > 0 ? k1 : 1) * sizeof *pk);
    for (int k = 0; k < K; k++) {
        topk(pk, S + (size_t)k * Mn, Mn, k1);
        for (int j = 0; j < k1; j++) in[pk[j].i] = 1;
    }
    free(S);
    free(pk);
    size_t Mc = 0;
    for (size_t m = 0; m < Mn; m++) Mc += in[m];
    int64_t *cand = mallocCheck(Mc * sizeof *cand);
    float *Tc = mallocCheck(Mc * (size_t)E * sizeof *Tc);
    for (size_t m = 0, j = 0; m < Mn; m++)
        if (in[m]) {
            cand[j] = (int64_t)m;
            memcpy(Tc + j * E, bank + m * E, (size_t)E * sizeof *Tc);
            j++;
        }
    free(in);
    // per image: its k2 nearest candidates, weights softmax(cos/τ), t = normalize(Σ w n)
    const int k2 = (int)(config_int(&r->cfg, "seic", "k2") < (long)Mc ? config_int(&r->cfg, "seic", "k2") : (long)Mc);
    const size_t CH = 1024, rows = N < CH ? N : CH;
    if (run_gemm_init(&g, r->ops, Tc, 1, (int)Mc, E, rows)) {
        free(cand);
        free(Tc);
        free(own);
        return -1;
    }
    float *T = mallocCheck(N * (size_t)E * sizeof *T), *sims = mallocCheck(rows * Mc * sizeof *sims);
    for (size_t i0 = 0; i0 < N; i0 += CH) {
        const size_t n = N - i0 < CH ? N - i0 : CH;
        run_gemm_rows(&g, sims, r->fit.X + i0 * E, n, 0);
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) {
            Pick *heap = mallocCheck((size_t)k2 * sizeof *heap);
            topk(heap, sims + i * Mc, Mc, k2);
            double w[4096], acc[4096], sum = 0.0, nrm = 0.0;
            double *wv = k2 <= 4096 ? w : mallocCheck((size_t)k2 * sizeof *wv);
            for (int j = 0; j < k2; j++) wv[j] = exp(((double)heap[j].v - (double)heap[0].v) / tau), sum += wv[j];
            for (int e = 0; e < E; e++) acc[e] = 0.0;
            for (int j = 0; j < k2; j++) {   // best first: a fixed order
                const float *nv = Tc + (size_t)heap[j].i * E;
                for (int e = 0; e < E; e++) acc[e] += wv[j] / sum * nv[e];
            }
            for (int e = 0; e < E; e++) nrm += acc[e] * acc[e];
            nrm = sqrt(nrm) > 1e-12 ? sqrt(nrm) : 1e-12;
            for (int e = 0; e < E; e++) T[(i0 + i) * E + e] = (float)(acc[e] / nrm);
            if (wv != w) free(wv);
            free(heap);
        }
    }
    run_gemm_free(&g);
    free(sims);
    free(Tc);
    free(own);
    const size_t sh1[1] = {Mc}, sh2[2] = {N, (size_t)E};
    run_cache_store(r, "SEIC candidate", pC, keyC, NPY_I64, 1, sh1, cand);
    run_cache_store(r, "SEIC pair", pT, key, NPY_F32, 2, sh2, T);
    run_log(r, "seic stage 0: %zu candidate nouns (k1 = %d per centre, %s), each image's k2 = %d "
               "nearest weighted by softmax(cos/%g) (%.1fs)", Mc, k1, kind, k2, tau, now_seconds() - t0);
    *T_out = T;
    *cand_out = cand;
    *Mc_out = Mc;
    return 0;
}

/* seic_candidates.tsv: candidate, bank row, noun. */
static int write_candidates(Run *r, const int64_t *cand, size_t Mc) {
    char path[2300];
    snprintf(path, sizeof path, "%s/seic_candidates.tsv", r->partial);
    AtomicFile af;
    if (atomic_open(&af, path)) return -1;
    fprintf(af.fp, "candidate\tbank_row\tnoun\n");
    for (size_t j = 0; j < Mc; j++)
        fprintf(af.fp, "%zu\t%lld\t%s\n", j, (long long)cand[j], r->noun_names[cand[j]]);
    if (atomic_commit(&af)) return -1;
    run_add_file(r, "seic_candidates", "seic_candidates.tsv");
    return 0;
}

// --- stage 1 -------------------------------------------------------------------------------------

static void loss_cfg(Run *r, SeicLossCfg *c) {
    c->tau_a = config_float(&r->cfg, "seic", "tau_a");
    c->tau_c = config_float(&r->cfg, "seic", "tau_c");
    c->w_ins = config_float(&r->cfg, "seic", "w_ins");
    c->w_ass = config_float(&r->cfg, "seic", "w_ass");
    c->w_ctr = config_float(&r->cfg, "seic", "w_ctr");
    c->w_bal = config_float(&r->cfg, "seic", "w_bal");
    c->bal_floor = config_float(&r->cfg, "seic", "bal_floor");
    c->bal_max_w = config_float(&r->cfg, "seic", "bal_max_w");
    c->bal_momentum = config_float(&r->cfg, "seic", "bal_momentum");
    c->scale_max = config_float(&r->cfg, "seic", "scale_max");
}

static cJSON *report_obj(Run *r) {
    SeicRun *s = seic_run(r);
    if (!s->rep) s->rep = cJSON_AddObjectToObject(r->report, "seic");
    return s->rep;
}

int method_seic_stage1(Run *r) {
    double t = now_seconds();
    SeicRun *s = seic_run(r);
    if (r->fit.N < 2) return laic_error("seic: stage 1 needs at least 2 fit images");
    if (r->Mn < 1) return laic_error("seic: no nouns in the bank");
    SeicS1Opts o;
    seic_s1_opts_default(&o);
    o.epochs = (int)config_int(&r->cfg, "seic", "s1_epochs");
    o.batch = (int)config_int(&r->cfg, "seic", "s1_batch");
    o.lr = config_float(&r->cfg, "seic", "s1_lr");
    o.weight_decay = config_float(&r->cfg, "seic", "s1_weight_decay");
    o.tau_ins = config_float(&r->cfg, "seic", "tau_ins");
    loss_cfg(r, &o.loss);
    o.seed = (uint64_t)config_int(&r->cfg, "run", "seed");
    o.stop_after = (int)config_int(&r->cfg, "seic", "stop_after");
    o.log = run_log_line;
    o.log_ctx = r;
    char ckpt[2300];
    snprintf(ckpt, sizeof ckpt, "%s/seic_stage1.ckpt", r->partial);
    o.ckpt_path = ckpt;
    if (s->resume1) {
        if (s->resume1->stage != 1)
            return laic_error("seic: run.resume's seic_stage1.ckpt holds stage %d", s->resume1->stage);
        o.resume = s->resume1;
    }
    cJSON *rep = report_obj(r);
    float *T = NULL;
    int64_t *cand = NULL;
    size_t Mc = 0;
    if (stage0_pairs(r, &T, &cand, &Mc)) return -1;
    cJSON *j0 = cJSON_AddObjectToObject(rep, "stage0");
    cJSON_AddNumberToObject(j0, "candidate_nouns", (double)Mc);
    cJSON_AddNumberToObject(j0, "k1", (double)config_int(&r->cfg, "seic", "k1"));
    cJSON_AddNumberToObject(j0, "k2", (double)config_int(&r->cfg, "seic", "k2"));
    cJSON_AddNumberToObject(j0, "text_tau", config_float(&r->cfg, "seic", "text_tau"));
    int rc = write_candidates(r, cand, Mc);
    free(cand);
    SeicS1Result res;
    if (!rc) rc = seic_s1_run(&res, r->ops, r->fit.X, T, r->fit.N, r->K, r->E, &o);
    free(T);
    if (rc) return -1;
    if (res.stopped) {
        int ep = res.st.epoch;
        seic_s1_result_free(&res);
        r->keep_partial = 1;
        return laic_error("seic: stopped after stage-1 epoch %d of %d (seic.stop_after); the "
                          "checkpoint is in %s ---> HINT: continue with run.resume=%s", ep, o.epochs,
                          ckpt, r->dir);
    }
    SeicLayout L;
    seic_layout(&L, r->K, r->E);
    int64_t *pred = mallocCheck(r->eval.N * sizeof *pred);
    rc = seic_predict_features(pred, r->ops, res.st.p, &L, r->eval.X, r->eval.N);
    if (!rc) rc = run_report_method(r, "seic-stage1", pred);
    free(pred);
    // the final state again: a run resumed at its last epoch trains nothing and must still
    // leave its checkpoint behind
    if (!rc) rc = seic_ckpt_save(ckpt, &res.st);
    if (!rc) run_add_file(r, "seic_stage1_checkpoint", "seic_stage1.ckpt");
    cJSON *j1 = cJSON_AddObjectToObject(rep, "stage1");
    cJSON_AddNumberToObject(j1, "epochs", o.epochs);
    cJSON_AddNumberToObject(j1, "steps", (double)res.st.step);
    cJSON_AddNumberToObject(j1, "batch", (double)((size_t)o.batch < r->fit.N ? (size_t)o.batch : r->fit.N));
    cJSON_AddNumberToObject(j1, "resumed_from_epoch", res.first_epoch);
    cJSON_AddNumberToObject(j1, "instance_scale",
                            fmin(exp(res.st.p[L.off[SEIC_LOGS]]), o.loss.scale_max));
    static const char *names[5] = {"loss_per_epoch", "ins_per_epoch", "ass_per_epoch", "ctr_per_epoch",
                                   "bal_per_epoch"};
    for (int k = 0; k < 5; k++) cJSON_AddItemToObject(j1, names[k], run_json_numbers(res.epoch_terms, o.epochs, 5, k));
    cJSON_AddNumberToObject(j1, "seconds", res.seconds);
    if (!rc) {
        if (s->have_s1) seic_state_free(&s->s1);
        s->s1 = res.st;   // kept for "seic"
        memset(&res.st, 0, sizeof res.st);
        s->have_s1 = 1;
    }
    seic_s1_result_free(&res);
    run_time(r, "seic_stage1", now_seconds() - t);
    return rc;
}

// --- stage 2 -------------------------------------------------------------------------------------

typedef struct {
    const Dataset *d;
    const size_t *sel;
} SplitImages;

static int split_image(void *ctx, size_t i, uint8_t **rgb, int *h, int *w) {
    const SplitImages *s = ctx;
    return dataset_get_rgb8(s->d, s->sel ? s->sel[i] : i, rgb, h, w);
}

int seic_enabled(Run *r) {
    if (r->have_dfit || !config_str(&r->cfg, "data", "image_features")[0]) return 1;
    run_log(r, "note: method 'seic' (stage 2) fine-tunes the image encoder on the images, and this "
               "run has precomputed features only (data.image_features); reporting seic-stage1");
    return 0;
}

int method_seic(Run *r) {
    double t = now_seconds();
    SeicRun *s = seic_run(r);
    if (!s->have_s1) return laic_error("seic: no stage-1 heads (the seic-stage1 method did not run)");
    if (!r->have_dfit) return laic_error("seic: stage 2 needs the images (data.path)");
    if (!r->have_weights)
        return laic_error("seic: stage 2 needs the CLIP image encoder ---> HINT: set model.weights");
    if (r->E != r->w.cfg.embed_dim)
        return laic_error("seic: features have width %d, the model's embed dim is %d", r->E, r->w.cfg.embed_dim);
    if (r->n_bad_images)
        return laic_error("seic: %zu unreadable images were skipped, so feature rows no longer map to "
                          "images ---> HINT: remove the bad images", r->n_bad_images);
    SeicS2Opts o;
    seic_s2_opts_default(&o);
    o.epochs = (int)config_int(&r->cfg, "seic", "s2_epochs");
    o.batch = (int)config_int(&r->cfg, "seic", "s2_batch");
    o.lr = config_float(&r->cfg, "seic", "s2_lr");
    o.weight_decay = config_float(&r->cfg, "seic", "s2_weight_decay");
    const char *adapter = config_str(&r->cfg, "seic", "adapter");
    o.lora_rank = (int)config_int(&r->cfg, "seic", "lora_rank");
    o.lora_alpha = config_float(&r->cfg, "seic", "lora_alpha");
    if (!strcmp(adapter, "full_last_k")) {
        o.full_last_k = (int)config_int(&r->cfg, "seic", "full_last_k");
        o.encoder_lr = config_float(&r->cfg, "seic", "encoder_lr");
        if (o.full_last_k >= r->w.cfg.vision_layers)
            return laic_error("seic.full_last_k = %d: the model has %d visual blocks", o.full_last_k,
                              r->w.cfg.vision_layers);
    }
    o.train_visual_proj = config_bool(&r->cfg, "seic", "train_visual_proj");
    o.conf_momentum = config_float(&r->cfg, "seic", "conf_momentum");
    o.view.scale_lo = config_float(&r->cfg, "seic", "strong_scale_min");
    o.view.scale_hi = 1.0;
    o.view.flip_p = config_float(&r->cfg, "seic", "flip_p");
    o.view.jitter_p = config_float(&r->cfg, "seic", "jitter_p");
    const double js = config_float(&r->cfg, "seic", "jitter_strength");
    o.view.brightness = o.view.contrast = o.view.saturation = 0.8 * js;   // V4C's SimCLR-style
    o.view.hue = 0.2 * js;
    o.view.gray_p = config_float(&r->cfg, "seic", "gray_p");
    o.precision = config_str(&r->cfg, "seic", "s2_precision");
    o.recompute = config_bool(&r->cfg, "train", "recompute");
    o.seed = (uint64_t)config_int(&r->cfg, "run", "seed");
    // seic.stop_after counts the epochs of both stages, stage 1's first
    const long stop = config_int(&r->cfg, "seic", "stop_after"), e1 = config_int(&r->cfg, "seic", "s1_epochs");
    if (stop > 0 && stop <= e1) {   // stage 1 is complete (resumed): stop before stage 2
        r->keep_partial = 1;
        return laic_error("seic: stopped before stage 2 (seic.stop_after = %ld <= seic.s1_epochs); "
                          "the checkpoint is in %s.partial ---> HINT: continue with run.resume=%s",
                          stop, r->dir, r->dir);
    }
    o.stop_after = stop > 0 ? (int)(stop - e1) : 0;
    o.log = run_log_line;
    o.log_ctx = r;
    char ckpt[2300];
    snprintf(ckpt, sizeof ckpt, "%s/seic_stage2.ckpt", r->partial);
    o.ckpt_path = ckpt;
    o.resume = s->resume2;
    SplitImages fi = {&r->dfit, r->sel_fit};
    SplitImages ei = r->eval_is_fit ? fi : (SplitImages){&r->deval, r->sel_eval};
    SeicImages fit = {split_image, &fi, r->fit.N}, ev = {split_image, &ei, r->eval.N};
    SeicS2Result res;
    if (seic_s2_run(&res, &r->w, r->ops, &fit, &ev, &s->s1, &o)) return -1;
    if (res.stopped) {
        int ep = res.st.epoch;
        seic_s2_result_free(&res);
        r->keep_partial = 1;
        return laic_error("seic: stopped after stage-2 epoch %d of %d (seic.stop_after); the "
                          "checkpoints are in %s.partial ---> HINT: continue with run.resume=%s", ep,
                          o.epochs, r->dir, r->dir);
    }
    int rc = run_report_method(r, "seic", res.pred);
    if (!rc) rc = seic_ckpt_save(ckpt, &res.st);
    if (!rc) run_add_file(r, "seic_stage2_checkpoint", "seic_stage2.ckpt");
    cJSON *j2 = cJSON_AddObjectToObject(report_obj(r), "stage2");
    cJSON_AddStringToObject(j2, "adapter", o.full_last_k ? "full_last_k" : "lora");
    cJSON_AddNumberToObject(j2, "epochs", o.epochs);
    cJSON_AddNumberToObject(j2, "steps", (double)res.st.step);
    cJSON_AddNumberToObject(j2, "batch", (double)((size_t)o.batch < r->fit.N ? (size_t)o.batch : r->fit.N));
    cJSON_AddNumberToObject(j2, "resumed_from_epoch", res.first_epoch);
    cJSON_AddNumberToObject(j2, "adapter_floats", (double)(res.st.n_extra / 3));
    cJSON_AddItemToObject(j2, "loss_per_epoch", run_json_numbers(res.epoch_loss, o.epochs, 1, 0));
    cJSON_AddItemToObject(j2, "mean_weight_per_epoch", run_json_numbers(res.epoch_weight, o.epochs, 1, 0));
    cJSON_AddItemToObject(j2, "confidence_ema_per_epoch", run_json_numbers(res.epoch_conf, o.epochs, 1, 0));
    cJSON_AddNumberToObject(j2, "seconds", res.seconds);
    if (res.seconds > 0) cJSON_AddNumberToObject(j2, "images_per_s", (double)res.images_seen / res.seconds);
    seic_s2_result_free(&res);
    run_time(r, "seic_stage2", now_seconds() - t);
    return rc;
}
