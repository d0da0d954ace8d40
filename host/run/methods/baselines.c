/*
 * baselines.c — the methods reported beside ours (SPEC §8, paper Fig. 4), each a short
 * sequence of stage calls:
 *   clip-kmeans  k-means on the L2-normalised CLIP image features X
 *   tac          TAC no-train as TAC's code runs it (SPEC §8; retrieve_text.py:30-37,
 *                concat_kmeans.py): t_i = normalize(softmax(x_i Tᵀ/τ) T) over the candidate
 *                nouns T, τ = tac.tau (0.005); features [x_i | t_i] (1024-d, each half unit
 *                norm); SPHERICAL k-means with 20 restarts from K random rows, trained on a
 *                256·K subsample, fitted directly on the EVALUATION split (tac.fit_split);
 *                every setting from the [tac] section, never from [kmeans]
 *   zeroshot     argmax_c cos(x, w_c), w_c = text feature of "a photo of a {class}." [CLIP]
 *                with '_' in class names read as spaces; needs class names
 * clip-kmeans and tac cache their eval predictions in run.cache_dir under a key of every input
 * (content hashes of the features and candidates, K, their k-means settings, seed, τ), so sweeps over
 * ridge or kNN settings do not redo them (report.json "cache" says hit or miss).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster/cluster.h"
#include "io/err.h"
#include "io/npy.h"
#include "io/progress.h"
#include "run/methods/methods.h"
#include "train/tac_train.h"

/* Cache key of a baseline's eval predictions: the method, content hashes of its inputs, K and
 * every [kmeans] setting and the seed (what stage_cluster reads). */
static void baseline_key(Run *r, const char *name, const char *extra, char *key, size_t n) {
    const int E = r->E;
    uint64_t hf = run_hash64(r->fit.X, r->fit.N * (size_t)E * sizeof(float), 1);
    uint64_t he = r->eval_is_fit ? hf : run_hash64(r->eval.X, r->eval.N * (size_t)E * sizeof(float), 3);
    snprintf(key, n, "%s v1|Xf=%016llx|Nf=%zu|Xe=%016llx|Ne=%zu|fit_is_eval=%d|E=%d|K=%d|iters=%ld|"
             "restarts=%ld|init=%s|spherical=%d|seed=%ld|%s", name, (unsigned long long)hf, r->fit.N,
             (unsigned long long)he, r->eval.N, r->eval_is_fit, E, r->K, config_int(&r->cfg, "kmeans", "iters"),
             config_int(&r->cfg, "kmeans", "restarts"), config_str(&r->cfg, "kmeans", "init"),
             config_bool(&r->cfg, "kmeans", "spherical"), config_int(&r->cfg, "run", "seed"), extra);
}

/* Cached eval predictions of `name` (1 = hit, reported); 0 = compute them. */
static int report_cached(Run *r, const char *name, const char *key, char *path, size_t n, int *rc) {
    run_cache_path(r, name, key, "", path, n);
    Npy c;
    if (!run_cache_load(r, name, path, key, &c)) return 0;
    // a label outside [0,K) is not this computation's: recompute instead of failing the run
    int ok = c.dtype == NPY_I64 && c.ndim == 1 && c.shape[0] == r->eval.N;
    for (size_t i = 0; ok && i < c.count; i++) ok = ((int64_t *)c.data)[i] >= 0 && ((int64_t *)c.data)[i] < r->K;
    if (!ok) {
        run_cache_reject(r, name, path, "not int64 labels in [0,K) for every eval image", &c);
        return 0;
    }
    run_cache_status(r, name, "hit");
    run_log(r, "%s: eval predictions from cache %s", name, path);
    *rc = run_report_method(r, name, c.data);
    npy_free(&c);
    return 1;
}

/* Clusters F_fit (and assigns F_eval) into K and reports the eval predictions as `name`;
 * with a cache key, the predictions are cached (they do not depend on ridge or kNN settings). */
static int cluster_and_report(Run *r, const char *name, const float *F_fit, const float *F_eval, int D,
                              const char *key, const char *path) {
    int64_t *yf = mallocCheck(r->fit.N * sizeof *yf), *ye = mallocCheck(r->eval.N * sizeof *ye);
    int rc = stage_cluster(r, F_fit, r->fit.N, r->eval_is_fit ? F_fit : F_eval, r->eval.N, D, r->K,
                           yf, ye, NULL);
    if (!rc) rc = run_report_method(r, name, ye);
    if (!rc && key) {
        size_t shape[1] = {r->eval.N};
        run_cache_status(r, name, "miss");
        run_cache_store(r, name, path, key, NPY_I64, 1, shape, ye);
    }
    free(yf);
    free(ye);
    return rc;
}

int method_clip_kmeans(Run *r) {
    char key[1024], path[2200];
    int rc = 0;
    baseline_key(r, "clip-kmeans", "", key, sizeof key);
    if (report_cached(r, "clip-kmeans", key, path, sizeof path, &rc)) return rc;
    return cluster_and_report(r, "clip-kmeans", r->fit.X, r->eval.X, r->E, key, path);
}

/* out (N, 2E) = [X | normalise(softmax(X Tᵀ/τ) T)], softmax over the M candidates. Both
 * products run on the run's backend; the softmax runs on the host in between (the op table has
 * no softmax). NULL with an error recorded when the backend cannot allocate. */
float *method_tac_features(Run *r, const float *X, size_t N) {
    const int E = r->E, M = (int)r->M;
    const double tau = config_float(&r->cfg, "tac", "tau");
    const size_t CH = 1024, rows = N < CH ? N : CH;
    RunGemm sim, mix;   // s = X Tᵀ, xt = normalise(s T)
    if (run_gemm_init(&sim, r->ops, r->T, 1, M, E, rows)) return NULL;
    if (run_gemm_init(&mix, r->ops, r->T, 0, E, M, rows)) {
        run_gemm_free(&sim);
        return NULL;
    }
    float *out = mallocCheck(N * 2 * (size_t)E * sizeof *out);
    float *s = mallocCheck(CH * (size_t)M * sizeof *s), *xt = mallocCheck(CH * (size_t)E * sizeof *xt);
    size_t lo, hi;   // data parallel: this rank's chunks of rows, then gathered
    run_shard(r, N, CH, &lo, &hi);
    for (size_t i0 = lo; i0 < hi; i0 += CH) {
        int n = (int)(N - i0 < CH ? N - i0 : CH);
        run_gemm_rows(&sim, s, X + i0 * E, (size_t)n, 0);
        // row softmax of s/τ; 1/τ scales the rounded products (cblas_sgemm's alpha, used before,
        // rounded the scaled sums instead: the logits may differ by an ulp)
        tac_softmax_rows(s, (size_t)n, (size_t)M, tau);
        run_gemm_rows(&mix, xt, s, (size_t)n, 1);
        for (int i = 0; i < n; i++) {
            memcpy(out + (i0 + (size_t)i) * 2 * E, X + (i0 + (size_t)i) * E, (size_t)E * sizeof *out);
            memcpy(out + (i0 + (size_t)i) * 2 * E + E, xt + (size_t)i * E, (size_t)E * sizeof *out);
        }
    }
    run_gemm_free(&sim);
    run_gemm_free(&mix);
    run_gather_rows(r, out, N, CH, 2 * (size_t)E * sizeof *out);
    free(s);
    free(xt);
    return out;
}

/* TAC's k-means (faiss.Kmeans(d, K, spherical=True, niter=300, nredo=20), concat_kmeans.py:12-21)
 * from the [tac] section. */
static KMeansOpts tac_kmeans_opts(Run *r, size_t n_train) {
    KMeansOpts o = {0};
    o.K = r->K;
    o.iters = (int)config_int(&r->cfg, "tac", "iters");
    o.restarts = (int)config_int(&r->cfg, "tac", "restarts");
    o.seed = (uint64_t)config_int(&r->cfg, "run", "seed");
    o.spherical = config_bool(&r->cfg, "tac", "spherical");
    o.init = !strcmp(config_str(&r->cfg, "tac", "init"), "random") ? KMEANS_INIT_RANDOM : KMEANS_INIT_PP;
    size_t spc = (size_t)config_int(&r->cfg, "tac", "sample_per_center");
    o.sample = spc && spc * (size_t)r->K < n_train ? spc * (size_t)r->K : 0;
    return o;
}

int method_tac_notrain(Run *r) {
    double t = now_seconds();
    // concat_kmeans.py clusters the test features: the fit split only chose the nouns
    const int on_eval = r->eval_is_fit || !strcmp(config_str(&r->cfg, "tac", "fit_split"), "eval");
    const int E = r->E;
    const size_t Ne = r->eval.N, Nf = on_eval ? Ne : r->fit.N;
    char key[1400], path[2200];
    int rc = 0;
    uint64_t he = run_hash64(r->eval.X, Ne * (size_t)E * sizeof(float), 3);
    uint64_t hf = on_eval ? he : run_hash64(r->fit.X, r->fit.N * (size_t)E * sizeof(float), 1);
    uint64_t ht = run_hash64(r->T, r->M * (size_t)E * sizeof(float), 4);
    KMeansOpts o = tac_kmeans_opts(r, Nf);
    // v2: fitted per the [tac] section (v1 used [kmeans] and always the fit split)
    snprintf(key, sizeof key, "tac v2|Xe=%016llx|Ne=%zu|Xf=%016llx|Nf=%zu|on_eval=%d|E=%d|K=%d|"
             "T=%016llx|M=%zu|tau=%.17g|iters=%d|restarts=%d|init=%d|spherical=%d|sample=%zu|seed=%llu",
             (unsigned long long)he, Ne, (unsigned long long)hf, Nf, on_eval, E, r->K,
             (unsigned long long)ht, r->M, config_float(&r->cfg, "tac", "tau"), o.iters, o.restarts,
             (int)o.init, o.spherical, o.sample, (unsigned long long)o.seed);
    if (report_cached(r, "tac", key, path, sizeof path, &rc)) return rc;
    if ((size_t)r->K > Nf) {
        char kw[2400];
        return laic_error("%s: tac: K = %d exceeds the %zu rows it is fitted on (tac.fit_split = %s)",
                          run_key_where(r, "kmeans", "k", kw, sizeof kw), r->K, Nf,
                          config_str(&r->cfg, "tac", "fit_split"));
    }
    float *fe = method_tac_features(r, r->eval.X, Ne);
    float *ff = on_eval || !fe ? fe : method_tac_features(r, r->fit.X, r->fit.N);
    int64_t *yf = mallocCheck((Nf ? Nf : 1) * sizeof *yf), *ye = mallocCheck((Ne ? Ne : 1) * sizeof *ye);
    run_log(r, "tac: spherical=%d k-means, %d restarts (%s init), K = %d on %zu %s rows%s", o.spherical,
            o.restarts, config_str(&r->cfg, "tac", "init"), r->K, Nf, on_eval ? "eval" : "fit",
            o.sample ? " (subsampled)" : "");
    rc = fe && ff ? stage_cluster_with(r, &o, ff, Nf, on_eval ? ff : fe, Ne, 2 * E, yf, ye, NULL) : -1;
    if (!rc) rc = run_report_method(r, "tac", ye);
    if (!rc) {
        size_t shape[1] = {Ne};
        run_cache_status(r, "tac", "miss");
        run_cache_store(r, "tac", path, key, NPY_I64, 1, shape, ye);
    }
    if (ff != fe) free(ff);
    free(fe);
    free(yf);
    free(ye);
    run_time(r, "tac", now_seconds() - t);
    return rc;
}

int method_zeroshot(Run *r) {
    if (!r->class_names || r->n_classes < 1 || !r->model) {
        run_log(r, "zeroshot: skipped (no class names or no text encoder)");
        return 0;
    }
    double t = now_seconds();
    const int K = r->n_classes, E = r->E;
    char **prompts = mallocCheck((size_t)K * sizeof *prompts);
    for (int c = 0; c < K; c++) {
        char name[512], buf[600];
        snprintf(name, sizeof name, "%s", r->class_names[c]);
        for (char *p = name; *p; p++)
            if (*p == '_') *p = ' ';
        snprintf(buf, sizeof buf, "a photo of a %s.", name);
        prompts[c] = strdup(buf);
    }
    float *W = mallocCheck((size_t)K * E * sizeof *W);
    int rc = stage_encode_prompts(r, (const char *const *)prompts, (size_t)K, W);
    for (int c = 0; c < K; c++) free(prompts[c]);
    free(prompts);
    if (rc) {
        free(W);
        return -1;
    }
    // scores (N,K) = cos(x, w_c) on the run's backend, in one block (as one sgemm before)
    const size_t N = r->eval.N;
    RunGemm g;
    rc = run_gemm_init(&g, r->ops, W, 1, K, E, N);
    free(W);
    if (rc) return -1;
    float *s = mallocCheck((N ? N : 1) * (size_t)K * sizeof *s);
    int64_t *pred = mallocCheck((N ? N : 1) * sizeof *pred);
    run_gemm_rows(&g, s, r->eval.X, N, 0);
    run_gemm_free(&g);
    for (size_t i = 0; i < N; i++) {
        int best = 0;
        for (int c = 1; c < K; c++)
            if (s[i * K + c] > s[i * K + best]) best = c;
        pred[i] = best;
    }
    rc = run_report_method(r, "zeroshot", pred);
    free(s);
    free(pred);
    run_time(r, "zeroshot", now_seconds() - t);
    return rc;
}
