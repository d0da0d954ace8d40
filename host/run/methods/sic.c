/*
 * sic.c — method "sic": SIC (Cai et al., AAAI 2023) as its authors' code runs it (SPEC §9.1;
 * shaotiancai/SIC@a8969ac), on the run's cached image features:
 *   1. raw (unnormalised) fit and eval features (the run keeps each row's norm: run_raw_features);
 *   2. its noun bank: one head-word per WordNet synset in data.noun order, prompt
 *      "a photo of a {noun}" (one template, no period, underscores kept: common_config.py:172),
 *      raw text features (cached), or sic.noun_features;
 *   3. the setup of host/train/sic.h (21 L2 neighbours with self, K k-means centres with 20
 *      restarts, the semantic space R ∩ U) — neighbours and centres cached under a content key;
 *   4. training (host/train/sic.c) and the eval predictions of the last epoch, or of the best
 *      test-ACC epoch with sic.select = test_acc (the authors' selection; report.json says so).
 *
 * How laic's bank differs from SIC's data/noun.csv: that file holds the first lemma of every
 * noun synset of WordNet 3.0 in data.noun order except the last one ('9/11'), and pandas reads
 * its first line ('entity') as the header, so SIC encodes 82,113 nouns. sic.bank = sic (default)
 * reproduces that list from data.noun (synsets 1 .. 82,113); sic.bank = synsets keeps all 82,115.
 * The head-words are spelt as in data.noun (underscores kept, as in noun.csv).
 *
 * Writes: predictions/sic.npy (run_report_method), sic.ckpt (after every epoch), sic_space.tsv
 * (the semantic space: bank row, noun), report.json "sic" (sizes, selection, per-epoch losses
 * and ACC, timings).
 */
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster/cluster.h"
#include "io/atomic.h"
#include "io/err.h"
#include "io/npy.h"
#include "io/progress.h"
#include "rng.h"
#include "run/methods/methods.h"
#include "train/sic.h"

#define SIC_TEMPLATE "a photo of a %s"   // common_config.py:172, no period

const char **sic_bank_words(const Nouns *n, int sic_csv, size_t *count) {
    const char **w = mallocCheck((n->n ? n->n : 1) * sizeof *w);
    size_t ns = 0;
    for (size_t i = 0; i < n->n; i++)
        if (i == 0 || n->offset[i] != n->offset[i - 1]) w[ns++] = n->lemma[i];
    size_t first = 0, cnt = ns;
    if (sic_csv) {   // noun.csv lacks the last synset; pandas reads its first line as the header
        first = ns > 0 ? 1 : 0;
        cnt = ns >= 2 ? ns - 2 : 0;
    }
    memmove(w, w + first, cnt * sizeof *w);
    *count = cnt;
    return w;
}

int sic_prepare(Run *r) {
    if (!config_str(&r->cfg, "sic", "noun_features")[0]) r->need_text_encoder = 1;
    return run_resume_read(r, "sic.ckpt") < 0 ? -1 : 0;
}

typedef struct {
    float *T0;      // (Mb,E) raw bank features
    char **names;   // (Mb)
    size_t Mb;
} SicBank;

static void bank_free(SicBank *b) {
    for (size_t i = 0; b->names && i < b->Mb; i++) free(b->names[i]);
    free(b->names);
    free(b->T0);
    memset(b, 0, sizeof *b);
}

/* SIC's noun bank, raw features (precomputed, cached, or encoded here). */
static int sic_bank(Run *r, SicBank *b) {
    memset(b, 0, sizeof *b);
    const int E = r->E;
    const char *fp = config_str(&r->cfg, "sic", "noun_features");
    if (fp[0]) {
        Npy x;
        if (npy_read_f32(fp, &x, 2, NULL)) return -1;
        if ((int)x.shape[1] != E || x.shape[0] == 0) {
            npy_free(&x);
            return laic_error("%s: sic.noun_features is [%zu,%zu], the image features have width %d",
                              fp, x.shape[0], x.shape[1], E);
        }
        if (cluster_check_finite(x.data, x.count, fp)) {
            npy_free(&x);
            return -1;
        }
        b->Mb = x.shape[0];
        b->T0 = x.data;
        const char *np_ = config_str(&r->cfg, "sic", "noun_names");
        if (np_[0]) return stage_read_lines(np_, b->Mb, "sic.noun_features has", &b->names);
        b->names = mallocCheck(b->Mb * sizeof *b->names);
        for (size_t i = 0; i < b->Mb; i++) {
            char s[32];
            snprintf(s, sizeof s, "noun%zu", i);
            b->names[i] = strdup(s);
        }
        run_log(r, "sic: %zu precomputed raw noun features from %s", b->Mb, fp);
        return 0;
    }
    if (!r->have_weights)
        return laic_error("sic: the noun bank must be encoded and no text encoder is loaded ---> "
                          "HINT: set model.weights or sic.noun_features");
    // head-words: the first row of every synset of data.noun
    Nouns own;
    const Nouns *nn = &r->nouns;
    const char *wn = config_str(&r->cfg, "nouns", "wordnet");
    if (!r->have_nouns) {
        if (nouns_load(&own, wn)) return -1;
        nn = &own;
    }
    size_t count;
    const char **heads = sic_bank_words(nn, !strcmp(config_str(&r->cfg, "sic", "bank"), "sic"), &count);
    size_t sub = (size_t)config_int(&r->cfg, "sic", "subset");
    const uint64_t seed = (uint64_t)config_int(&r->cfg, "run", "seed");
    uint8_t *take = callocCheck(count ? count : 1, 1);
    if (sub && sub < count) {   // a seeded subset, kept in bank order
        size_t *perm = mallocCheck(count * sizeof *perm);
        for (size_t i = 0; i < count; i++) perm[i] = i;
        Rng g;
        rng_init(&g, seed, 301);
        for (size_t i = 0; i < sub; i++) {
            size_t j = i + (size_t)rng_below(&g, count - i), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
            take[perm[i]] = 1;
        }
        free(perm);
    } else {
        sub = 0;
        memset(take, 1, count);
    }
    b->Mb = sub ? sub : count;
    b->names = mallocCheck((b->Mb ? b->Mb : 1) * sizeof *b->names);
    for (size_t i = 0, w = 0; i < count; i++)
        if (take[i]) b->names[w++] = strdup(heads[i]);
    free(take);
    free(heads);
    if (nn == &own) nouns_free(&own);
    if (b->Mb == 0) return laic_error("%s: no noun synsets for SIC's bank", wn);
    // cache of the raw features
    char key[4600], path[2200], real[4096];
    struct stat st;
    if (!realpath(wn, real)) snprintf(real, sizeof real, "%s", wn);
    long long wsize = stat(wn, &st) ? -1 : (long long)st.st_size;
    snprintf(key, sizeof key, "sicbank v1|w=%s|wordnet=%s|size=%lld|bank=%s|subset=%zu|seed=%llu|"
             "template=" SIC_TEMPLATE "|dev=%s|prec=%s", r->w.sha256, real, wsize,
             config_str(&r->cfg, "sic", "bank"), sub, (unsigned long long)seed, "{}", r->ops->name,
             config_str(&r->cfg, "model", "precision"));
    run_cache_path(r, "sicbank", key, "", path, sizeof path);
    Npy x;
    if (run_cache_load(r, "sic noun feature", path, key, &x)) {
        if (x.dtype == NPY_F32 && x.ndim == 2 && x.shape[0] == b->Mb && x.shape[1] == (size_t)E) {
            b->T0 = x.data;
            run_cache_status(r, "sic_bank", "hit");
            run_log(r, "sic: %zu raw noun features from cache %s", b->Mb, path);
            return 0;
        }
        run_cache_reject(r, "sic noun feature", path, "not float32 [nouns, E]", &x);
    }
    char **prompts = mallocCheck(b->Mb * sizeof *prompts);
    for (size_t i = 0; i < b->Mb; i++) {
        char buf[1024];
        snprintf(buf, sizeof buf, SIC_TEMPLATE, b->names[i]);
        prompts[i] = strdup(buf);
    }
    b->T0 = mallocCheck(b->Mb * (size_t)E * sizeof *b->T0);
    run_log(r, "sic: encoding %zu nouns (\"" SIC_TEMPLATE "\", raw features)", b->Mb, "{}");
    int rc = stage_encode_prompts_raw(r, (const char *const *)prompts, b->Mb, b->T0);
    for (size_t i = 0; i < b->Mb; i++) free(prompts[i]);
    free(prompts);
    if (rc) return -1;
    run_cache_status(r, "sic_bank", "miss");
    size_t sh[2] = {b->Mb, (size_t)E};
    run_cache_store(r, "sic noun feature", path, key, NPY_F32, 2, sh, b->T0);
    return 0;
}

/* Neighbours and image centres from the verified cache (1), or 0 when absent or unusable (a
 * failed check is warned about and the entry recomputed). */
static int setup_from_cache(Run *r, SicSetup *s, const char *pn, const char *pc, const char *key,
                            size_t N, int nn, int K, int E) {
    char kn[600], kc[600];
    snprintf(kn, sizeof kn, "%s|nbr", key);
    snprintf(kc, sizeof kc, "%s|centres", key);
    Npy a, c;
    if (!run_cache_load(r, "sic neighbour", pn, kn, &a)) return 0;
    if (!run_cache_load(r, "sic image centre", pc, kc, &c)) {
        npy_free(&a);
        return 0;
    }
    const char *why = NULL;
    if (a.dtype != NPY_I64 || a.ndim != 2 || a.shape[0] != N || a.shape[1] != (size_t)nn) why = "not int64 [N, neighbours+1]";
    const int64_t *v = a.data;
    for (size_t i = 0; !why && i < a.count; i++)
        if (v[i] < 0 || (size_t)v[i] >= N) why = "a neighbour index out of range";
    if (why) {
        run_cache_reject(r, "sic neighbour", pn, why, &a);
        npy_free(&c);
        return 0;
    }
    if (c.dtype != NPY_F32 || c.ndim != 2 || c.shape[0] != (size_t)K || c.shape[1] != (size_t)E) {
        run_cache_reject(r, "sic image centre", pc, "not float32 [K, E]", &c);
        npy_free(&a);
        return 0;
    }
    s->nbr = a.data;
    s->nn = nn;
    s->C0 = c.data;
    return 1;
}

/* sic_space.tsv: the semantic space, one noun per line with its bank row. */
static int write_space(Run *r, const SicSetup *s, const SicBank *b) {
    char path[2300];
    snprintf(path, sizeof path, "%s/sic_space.tsv", r->partial);
    AtomicFile af;
    if (atomic_open(&af, path)) return -1;
    fprintf(af.fp, "bank_row\tnoun\n");
    for (size_t j = 0; j < s->M; j++) fprintf(af.fp, "%lld\t%s\n", (long long)s->S_idx[j], b->names[s->S_idx[j]]);
    int rc = atomic_commit(&af);
    if (!rc) run_add_file(r, "sic_space", "sic_space.tsv");
    return rc;
}

int method_sic(Run *r) {
    double t0 = now_seconds();
    const int E = r->E, K = r->K;
    const size_t N = r->fit.N;
    int rc = -1;
    SicBank b;
    SicSetup s;
    memset(&s, 0, sizeof s);
    SicResult res;
    memset(&res, 0, sizeof res);
    float *X = run_raw_features(r, &r->fit), *Xe = NULL;
    if (!X) return -1;
    Xe = r->eval_is_fit ? X : run_raw_features(r, &r->eval);
    if (!Xe) {
        free(X);
        return -1;
    }
    if (sic_bank(r, &b)) goto out;
    if ((size_t)K > b.Mb) {
        laic_error("sic: K = %d clusters exceed the %zu nouns of its bank ---> HINT: use a larger "
                   "bank (sic.bank, sic.subset, sic.noun_features) or fewer clusters", K, b.Mb);
        goto out;
    }
    // setup: neighbours and centres (cached), then the semantic space
    SicSetupOpts so;
    sic_setup_opts_default(&so);
    so.knn = (int)config_int(&r->cfg, "sic", "neighbors");
    so.kmeans_restarts = (int)config_int(&r->cfg, "sic", "kmeans_restarts");
    so.gamma_r = (int)config_int(&r->cfg, "sic", "gamma_r");
    so.gamma_u = config_float(&r->cfg, "sic", "gamma_u");
    so.bank_batch = (int)config_int(&r->cfg, "sic", "bank_batch");
    so.seed = (uint64_t)config_int(&r->cfg, "run", "seed");
    const uint64_t hx = run_hash64(X, N * (size_t)E * sizeof *X, 11);
    char key[512], pn[2200], pc[2200];
    snprintf(key, sizeof key, "sicsetup v1|X=%016llx|N=%zu|E=%d|K=%d|knn=%d|restarts=%d|iters=%d|tol=%.17g|seed=%llu",
             (unsigned long long)hx, N, E, K, so.knn, so.kmeans_restarts, so.kmeans_iters, so.kmeans_tol,
             (unsigned long long)so.seed);
    run_cache_path(r, "sicsetup", key, "-nbr", pn, sizeof pn);
    run_cache_path(r, "sicsetup", key, "-centres", pc, sizeof pc);
    double t = now_seconds();
    if (setup_from_cache(r, &s, pn, pc, key, N, so.knn + 1, K, E)) {
        run_cache_status(r, "sic_setup", "hit");
        run_log(r, "sic: neighbours and image centres from cache %s", pn);
        if (sic_semantic_space(&s.S_idx, &s.M, &s.info, r->ops, s.C0, K, b.T0, b.Mb, E, so.gamma_r,
                               so.gamma_u, so.bank_batch))
            goto out;
        s.S = mallocCheck(s.M * (size_t)E * sizeof *s.S);
        for (size_t j = 0; j < s.M; j++) memcpy(s.S + j * E, b.T0 + (size_t)s.S_idx[j] * E, (size_t)E * sizeof *s.S);
    } else {
        run_log(r, "sic: %d L2 neighbours (+ self) and k-means (K = %d, %d restarts) on the raw features",
                so.knn, K, so.kmeans_restarts);
        if (sic_setup(&s, r->ops, X, N, E, K, b.T0, b.Mb, &so)) goto out;
        run_cache_status(r, "sic_setup", "miss");
        size_t sn[2] = {N, (size_t)s.nn}, sc[2] = {(size_t)K, (size_t)E};
        char kn[600], kc[600];
        snprintf(kn, sizeof kn, "%s|nbr", key);
        snprintf(kc, sizeof kc, "%s|centres", key);
        run_cache_store(r, "sic neighbour", pn, kn, NPY_I64, 2, sn, s.nbr);
        run_cache_store(r, "sic image centre", pc, kc, NPY_F32, 2, sc, s.C0);
    }
    run_log(r, "sic: semantic space %zu nouns (%zu near the image centres, %zu unique, of %zu)", s.M,
            s.info.n_r, s.info.n_u, b.Mb);
    run_time(r, "sic_setup", now_seconds() - t);
    if (write_space(r, &s, &b)) goto out;
    // training
    SicOpts o;
    sic_opts_default(&o);
    o.epochs = (int)config_int(&r->cfg, "sic", "epochs");
    o.batch = (int)config_int(&r->cfg, "sic", "batch");
    o.lr = config_float(&r->cfg, "sic", "lr");
    o.weight_decay = config_float(&r->cfg, "sic", "weight_decay");
    o.entropy_weight = config_float(&r->cfg, "sic", "entropy_weight");
    o.ce_weight = config_float(&r->cfg, "sic", "ce_weight");
    o.xi_c = config_float(&r->cfg, "sic", "xi_c");
    o.xi_a = (int)config_int(&r->cfg, "sic", "xi_a");
    o.select_test_acc = !strcmp(config_str(&r->cfg, "sic", "select"), "test_acc");
    o.patience = (int)config_int(&r->cfg, "sic", "patience");
    o.center_init = config_bool(&r->cfg, "sic", "center_init") ? s.C0 : NULL;
    o.seed = so.seed;
    o.stop_after = (int)config_int(&r->cfg, "sic", "stop_after");
    o.graph = config_bool(&r->cfg, "sic", "cuda_graph");
    o.log = run_log_line;
    o.log_ctx = r;
    size_t nlab = 0;
    for (size_t i = 0; i < r->eval.N; i++) nlab += r->eval.y[i] >= 0;
    if (o.select_test_acc && nlab == 0) {
        laic_error("sic.select = test_acc needs eval labels (the authors select the epoch by test "
                   "ACC) ---> HINT: set sic.select=last or give data labels");
        goto out;
    }
    char ckpt[2300], hp[HEADS_HPARAMS_LEN];
    snprintf(ckpt, sizeof ckpt, "%s/sic.ckpt", r->partial);
    // every setting the trajectory depends on, and the data (epochs may grow on resume)
    snprintf(hp, sizeof hp, "method=sic;batch=%d;lr=%.17g;weight_decay=%.17g;entropy_weight=%.17g;"
             "ce_weight=%.17g;xi_c=%.17g;xi_a=%d;select=%s;patience=%d;center_init=%d;seed=%llu;N=%zu;"
             "E=%d;K=%d;X=%016llx;nbr=%016llx;S=%016llx", o.batch, o.lr, o.weight_decay,
             o.entropy_weight, o.ce_weight, o.xi_c, o.xi_a, config_str(&r->cfg, "sic", "select"),
             o.patience, o.center_init != NULL, (unsigned long long)o.seed, N, E, K,
             (unsigned long long)hx,
             (unsigned long long)run_hash64(s.nbr, N * (size_t)s.nn * sizeof *s.nbr, 12),
             (unsigned long long)run_hash64(s.S, s.M * (size_t)E * sizeof *s.S, 13));
    o.hparams = hp;
    o.ckpt_path = ckpt;
    const int resumed = run_resume_restore(r, "sic.ckpt", ckpt, "sic");
    if (resumed < 0) goto out;
    if (resumed) o.resume_path = ckpt;
    SicData d = {.X = X, .N = N, .E = E, .K = K, .nbr = s.nbr, .nn = s.nn, .S = s.S, .M = s.M,
                 .Xeval = Xe, .Ne = r->eval.N, .yeval = r->eval.y};
    t = now_seconds();
    if (sic_train(&res, r->ops, &d, &o)) goto out;
    run_time(r, "sic_train", now_seconds() - t);
    if (res.stopped) {
        r->keep_partial = 1;
        laic_error("sic: stopped after epoch %d of %d (sic.stop_after); the checkpoint is in %s "
                   "---> HINT: continue with run.resume=%s", res.epochs_run, o.epochs, ckpt, r->dir);
        goto out;
    }
    if (run_report_method(r, "sic", res.pred)) goto out;
    run_add_file(r, "sic_checkpoint", "sic.ckpt");
    cJSON *m = cJSON_GetObjectItemCaseSensitive(r->methods, "sic");
    const char *sel = o.select_test_acc
                          ? "test_acc: the epoch with the best test ACC, early stop after sic.patience "
                            "epochs without gain, as SIC's code (sic.py:148-167) — this peeks at the "
                            "test labels"
                          : "last epoch";
    if (m) {
        cJSON_AddStringToObject(m, "selected_by", sel);
        cJSON_AddNumberToObject(m, "reported_epoch", res.reported_epoch);
    }
    cJSON *rep = cJSON_AddObjectToObject(r->report, "sic");
    cJSON_AddStringToObject(rep, "selected_by", sel);
    cJSON_AddNumberToObject(rep, "epochs_run", res.epochs_run);
    cJSON_AddNumberToObject(rep, "reported_epoch", res.reported_epoch);
    cJSON_AddBoolToObject(rep, "early_stopped", res.early_stopped);
    cJSON_AddNumberToObject(rep, "resumed_from_epoch", res.first_epoch - 1);
    if (o.select_test_acc) cJSON_AddNumberToObject(rep, "best_test_acc", res.best_acc);
    cJSON_AddStringToObject(rep, "bank", config_str(&r->cfg, "sic", "bank"));
    cJSON_AddNumberToObject(rep, "bank_nouns", (double)b.Mb);
    cJSON_AddNumberToObject(rep, "near_centres_R", (double)s.info.n_r);
    cJSON_AddNumberToObject(rep, "unique_U", (double)s.info.n_u);
    cJSON_AddNumberToObject(rep, "semantic_space", (double)s.M);
    cJSON_AddNumberToObject(rep, "steps", (double)res.steps);
    cJSON_AddNumberToObject(rep, "graphs_captured", res.graph_captures);
    const char *tn[4] = {"loss_per_epoch", "consistency_L_I", "entropy_H", "cross_entropy_L_IS"};
    for (int q = 0; q < 4; q++) cJSON_AddItemToObject(rep, tn[q], run_json_numbers(res.epoch_terms, o.epochs, 4, q));
    if (o.select_test_acc) cJSON_AddItemToObject(rep, "test_acc_per_epoch", run_json_numbers(res.epoch_acc, o.epochs, 1, 0));
    cJSON *ts = cJSON_AddObjectToObject(rep, "seconds");
    cJSON_AddNumberToObject(ts, "knn", s.t_knn);
    cJSON_AddNumberToObject(ts, "kmeans", s.t_kmeans);
    cJSON_AddNumberToObject(ts, "semantic_space", s.t_space);
    cJSON_AddNumberToObject(ts, "centre_mapping", res.t_map);
    cJSON_AddNumberToObject(ts, "batches", res.t_steps);
    cJSON_AddNumberToObject(ts, "eval", res.t_eval);
    run_log(r, "sic: %d epochs (reported: %s, epoch %d) in %.1fs", res.epochs_run,
            o.select_test_acc ? "best test ACC" : "last", res.reported_epoch, now_seconds() - t0);
    rc = 0;
out:
    sic_result_free(&res);
    sic_setup_free(&s);
    bank_free(&b);
    if (Xe != X) free(Xe);
    free(X);
    run_time(r, "sic", now_seconds() - t0);
    return rc;
}
