/*
 * baselines.c — the methods reported beside ours (SPEC §8, paper Fig. 4), each a short
 * sequence of stage calls:
 *   clip-kmeans  k-means on the L2-normalised CLIP image features X
 *   tac          TAC no-train: k-means on [X ; X_text], X_text = softmax(X Tᵀ/τ) T over the
 *                candidate nouns T, τ = eval.tac_tau (0.005) [TAC]; X_text L2-normalised
 *   zeroshot     argmax_c cos(x, w_c), w_c = text feature of "a photo of a {class}." [CLIP]
 *                with '_' in class names read as spaces; needs class names
 * clip-kmeans and tac cache their eval predictions in run.cache_dir under a key of every input
 * (content hashes of the features and candidates, K, [kmeans] settings, seed, τ), so sweeps over
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
    long shape[1] = {(long)r->eval.N};
    struct stat st;
    if (stat(path, &st) || npy_read_i64(path, &c, 1, shape)) return 0;
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
        if (run_cache_dir(r) || npy_write(path, NPY_I64, 1, shape, ye))
            run_log(r, "warning: %s cache not written: %s", name, laic_last_error());
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
static float *tac_features(Run *r, const float *X, size_t N) {
    const int E = r->E, M = (int)r->M;
    const float inv_tau = (float)(1.0 / config_float(&r->cfg, "eval", "tac_tau"));
    const size_t CH = 1024, rows = N < CH ? N : CH;
    RunGemm sim, mix;   // s = X Tᵀ, xt = normalise(s T)
    if (run_gemm_init(&sim, r->ops, r->T, 1, M, E, rows)) return NULL;
    if (run_gemm_init(&mix, r->ops, r->T, 0, E, M, rows)) {
        run_gemm_free(&sim);
        return NULL;
    }
    float *out = mallocCheck(N * 2 * (size_t)E * sizeof *out);
    float *s = mallocCheck(CH * (size_t)M * sizeof *s), *xt = mallocCheck(CH * (size_t)E * sizeof *xt);
    for (size_t i0 = 0; i0 < N; i0 += CH) {
        int n = (int)(N - i0 < CH ? N - i0 : CH);
        run_gemm_rows(&sim, s, X + i0 * E, (size_t)n, 0);
        for (int i = 0; i < n; i++) {   // row softmax of s/τ, max-subtracted, summed in double
            float *row = s + (size_t)i * M;
            // 1/τ scales the rounded products (cblas_sgemm's alpha, used before, rounded the
            // scaled sums instead: the logits may differ by an ulp)
            for (int j = 0; j < M; j++) row[j] *= inv_tau;
            float mx = row[0];
            for (int j = 1; j < M; j++) mx = row[j] > mx ? row[j] : mx;
            double sum = 0;
            for (int j = 0; j < M; j++) sum += (row[j] = expf(row[j] - mx));
            for (int j = 0; j < M; j++) row[j] = (float)(row[j] / sum);
        }
        run_gemm_rows(&mix, xt, s, (size_t)n, 1);
        for (int i = 0; i < n; i++) {
            memcpy(out + (i0 + (size_t)i) * 2 * E, X + (i0 + (size_t)i) * E, (size_t)E * sizeof *out);
            memcpy(out + (i0 + (size_t)i) * 2 * E + E, xt + (size_t)i * E, (size_t)E * sizeof *out);
        }
    }
    run_gemm_free(&sim);
    run_gemm_free(&mix);
    free(s);
    free(xt);
    return out;
}

int method_tac_notrain(Run *r) {
    double t = now_seconds();
    char extra[256], key[1024], path[2200];
    int rc0 = 0;
    // f=2: features since the products moved to the backend (1/τ after the GEMM, an ulp apart)
    snprintf(extra, sizeof extra, "f=2|T=%016llx|M=%zu|tau=%.17g",
             (unsigned long long)run_hash64(r->T, r->M * (size_t)r->E * sizeof(float), 4), r->M,
             config_float(&r->cfg, "eval", "tac_tau"));
    baseline_key(r, "tac", extra, key, sizeof key);
    if (report_cached(r, "tac", key, path, sizeof path, &rc0)) return rc0;
    float *ff = tac_features(r, r->fit.X, r->fit.N);
    float *fe = r->eval_is_fit || !ff ? ff : tac_features(r, r->eval.X, r->eval.N);
    int rc = ff && fe ? cluster_and_report(r, "tac", ff, fe, 2 * r->E, key, path) : -1;
    if (fe != ff) free(fe);
    free(ff);
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
