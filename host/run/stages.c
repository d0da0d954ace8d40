/*
 * stages.c — the stages of a run (run.h): weights, data, image features, noun features,
 * candidate nouns, ridge representation, clustering, prompt encoding. Each stage is a short
 * composition of library calls (clip.h, cluster.h, data.h, nouns.h); caches are .npy files
 * whose names hash every input of the stage.
 */
#include <cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster/candidates.h"
#include "cluster/cluster.h"
#include "comm.h"
#include "model/image.h"
#include "io/atomic.h"
#include "io/err.h"
#include "io/npy.h"
#include "io/sha256.h"
#include "io/progress.h"
#include "rng.h"
#include "run/stages.h"
#include "model/tokenizer.h"

// --- helpers -----------------------------------------------------------------------------

static void normalize_rows(float *X, size_t N, int D) {
    l2normalize_rows_cpu(X, X, (int)N, D);
}

/* (N) L2 norms of the rows of X (N,D), in double, rounded once: kept beside the normalised
 * features so SIC can rebuild its raw input (run_raw_features). */
static float *row_norms(const float *X, size_t N, int D) {
    float *n = mallocCheck((N ? N : 1) * sizeof *n);
    for (size_t i = 0; i < N; i++) {
        double s = 0.0;
        for (int e = 0; e < D; e++) s += (double)X[i * D + e] * X[i * D + e];
        n[i] = (float)sqrt(s);
    }
    return n;
}

// --- dense products on the run's backend (run.h RunGemm) -------------------------------------

int run_gemm_init(RunGemm *g, const OpsBackend *o, const float *B, int trans, int N, int K,
                  size_t rows) {
    *g = (RunGemm){.o = o, .K = K, .N = N, .rows = rows};
    const int host = o == &ops_cpu;   // CPU backend memory is host memory: no copies
    const size_t nb = (size_t)N * K;
    const float *Bkn = B;             // (K,N)
    float *t = NULL;
    if (trans) {   // sgemm_nn_forward wants B as (K,N); OpenBLAS gives the same bits either way
        t = mallocCheck((nb ? nb : 1) * sizeof *t);
        for (int n = 0; n < N; n++)
            for (int k = 0; k < K; k++) t[(size_t)k * N + n] = B[(size_t)n * K + k];
        Bkn = t;
    }
    if (host) {
        g->B = t ? t : (float *)B;
        g->own_B = t != NULL;
        return 0;
    }
    g->B = o->alloc(nb * sizeof(float));
    g->A = g->B ? o->alloc(rows * K * sizeof(float)) : NULL;
    g->S = g->A ? o->alloc(rows * N * sizeof(float)) : NULL;
    if (g->B) o->to_device(g->B, Bkn, nb * sizeof(float));
    free(t);
    if (!g->S) {
        run_gemm_free(g);
        return -1;
    }
    return 0;
}

void run_gemm_rows(RunGemm *g, float *S, const float *A, size_t n, int normalize) {
    if (!n) return;
    const OpsBackend *o = g->o;
    if (o == &ops_cpu) {   // host memory: in place
        o->sgemm_nn_forward(S, A, g->B, (int)n, g->K, g->N);
        if (normalize) o->l2normalize_rows(S, S, (int)n, g->N);
        return;
    }
    o->to_device(g->A, A, n * g->K * sizeof(float));
    o->sgemm_nn_forward(g->S, g->A, g->B, (int)n, g->K, g->N);
    if (normalize) o->l2normalize_rows(g->S, g->S, (int)n, g->N);
    o->to_host(S, g->S, n * g->N * sizeof(float));
}

void run_gemm_free(RunGemm *g) {
    if (!g->o) return;
    if (g->o == &ops_cpu) {
        if (g->own_B) free(g->B);
    } else {
        g->o->free(g->B);
        g->o->free(g->A);
        g->o->free(g->S);
    }
    *g = (RunGemm){0};
}

/* A seeded, sorted selection of `want` of n indices (want == 0 or >= n: all → NULL). */
static size_t *select_subset(size_t n, size_t want, uint64_t seed, uint64_t stream) {
    if (!want || want >= n) return NULL;
    size_t *perm = mallocCheck(n * sizeof *perm);
    for (size_t i = 0; i < n; i++) perm[i] = i;
    Rng g;
    rng_init(&g, seed, stream);
    for (size_t i = 0; i < want; i++) {   // partial Fisher–Yates
        size_t j = i + (size_t)rng_below(&g, n - i);
        size_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    size_t *sel = mallocCheck(want * sizeof *sel);
    memcpy(sel, perm, want * sizeof *sel);
    free(perm);
    for (size_t i = 1; i < want; i++)   // insertion sort is fine: want ≪ 1e6 in practice
        for (size_t j = i; j > 0 && sel[j - 1] > sel[j]; j--) {
            size_t t = sel[j];
            sel[j] = sel[j - 1];
            sel[j - 1] = t;
        }
    return sel;
}

// --- weights ------------------------------------------------------------------------------

#define DEFAULT_WEIGHTS "weights/ViT-B-32.safetensors"

int stage_weights(Run *r) {
    const int need_images = !config_str(&r->cfg, "data", "image_features")[0];
    const int need_nouns = !config_str(&r->cfg, "nouns", "features")[0];
    const int need_zs = r->class_names != NULL;
    const int need_train = config_bool(&r->cfg, "train", "enabled");   // the text encoder
    const int need_method = r->need_text_encoder;   // e.g. SIC's own noun bank to encode
    if (!need_images && !need_nouns && !need_zs && !need_train && !need_method) {
        run_log(r, "weights: not needed (precomputed image and noun features)");
        return 0;
    }
    double t = now_seconds();
    const char *wp = config_str(&r->cfg, "model", "weights");
    struct stat st;
    if (!wp[0] && !stat(DEFAULT_WEIGHTS, &st)) wp = DEFAULT_WEIGHTS;
    if (wp[0]) {
        if (clip_weights_load(&r->w, wp)) return -1;
        run_log(r, "weights: %s (sha256 %.16s…%s)", wp, r->w.sha256,
                r->w.official_vit_b_32 ? ", official ViT-B/32" : "");
    } else {
        ClipConfig c;
        const char *arch = config_str(&r->cfg, "model", "arch");
        uint64_t seed = (uint64_t)config_int(&r->cfg, "run", "seed");
        if (clip_config_preset(&c, arch) || clip_weights_init(&r->w, &c, seed)) return -1;
        char key[128];
        snprintf(key, sizeof key, "init-weights:%s:%llu", arch, (unsigned long long)seed);
        sha256_hex(key, strlen(key), r->w.sha256);
        r->random_weights = 1;
        fprintf(stderr,
                "\n"
                "################################################################################\n"
                "#  RANDOM WEIGHTS: no converted CLIP weights found (model.weights is empty and  #\n"
                "#  %-28s is missing). Using random-init '%s' weights:  #\n"
                "#  every number below is MEANINGLESS. Convert real weights with                  #\n"
                "#  scripts/convert_weights.py (see README) and set model.weights.               #\n"
                "################################################################################\n\n",
                DEFAULT_WEIGHTS, arch);
        run_log(r, "weights: RANDOM INIT (%s, seed %llu) — results are meaningless", arch,
                (unsigned long long)seed);
    }
    r->have_weights = 1;
    if (r->E && r->E != r->w.cfg.embed_dim)
        return laic_error("%s: image features have width %d, the model's embed dim is %d",
                          config_str(&r->cfg, "data", "image_features"), r->E, r->w.cfg.embed_dim);
    r->E = r->w.cfg.embed_dim;
    if (!(r->ops = ops_get(config_str(&r->cfg, "model", "device")))) return -1;
    // model.precision selects the matmul path before the model exists (bf16 converts the
    // weights once at creation); the CPU accepts fp32 only
    if (clip_set_precision(r->ops, config_str(&r->cfg, "model", "precision"), NULL)) return -1;
    if (!(r->model = clip_model_create(&r->w, r->ops, (int)config_int(&r->cfg, "model", "batch"))))
        return -1;
    run_time(r, "weights", now_seconds() - t);
    return 0;
}

// --- data ---------------------------------------------------------------------------------

static int labels_from(Run *r, const Dataset *d, const size_t *sel, size_t n, FeatureSet *fs) {
    fs->N = n;
    fs->y = mallocCheck((n ? n : 1) * sizeof *fs->y);
    for (size_t i = 0; i < n; i++) fs->y[i] = d->labels ? d->labels[sel ? sel[i] : i] : -1;
    return 0;
}

static int load_precomputed(Run *r) {
    const char *xp = config_str(&r->cfg, "data", "image_features");
    Npy x;
    if (npy_read_f32(xp, &x, 2, NULL)) return -1;
    if (x.shape[0] == 0) {
        npy_free(&x);
        return laic_error("%s: no rows", xp);
    }
    if (cluster_check_finite(x.data, x.count, xp)) {
        npy_free(&x);
        return -1;
    }
    r->fit.N = x.shape[0];
    r->E = (int)x.shape[1];
    r->fit.X = x.data;   // ownership moves to the run
    r->fit.y = mallocCheck(r->fit.N * sizeof *r->fit.y);
    r->fit.norm = row_norms(r->fit.X, r->fit.N, (int)x.shape[1]);
    normalize_rows(r->fit.X, r->fit.N, (int)x.shape[1]);
    const char *lp = config_str(&r->cfg, "data", "labels");
    int64_t maxl = -1;
    if (lp[0]) {
        Npy l;
        long shape[1] = {(long)r->fit.N};
        if (npy_read_i64(lp, &l, 1, shape)) return -1;
        memcpy(r->fit.y, l.data, r->fit.N * sizeof *r->fit.y);
        npy_free(&l);
        for (size_t i = 0; i < r->fit.N; i++) {
            if (r->fit.y[i] < -1) return laic_error("%s: label %lld < -1 at %zu", lp, (long long)r->fit.y[i], i);
            if (r->fit.y[i] > maxl) maxl = r->fit.y[i];
        }
    } else {
        for (size_t i = 0; i < r->fit.N; i++) r->fit.y[i] = -1;
    }
    r->n_classes = (int)(maxl + 1);
    r->eval = r->fit;
    r->eval_is_fit = 1;
    return (int)x.shape[1] > 0 ? 0 : laic_error("%s: zero-width features", xp);
}

/* The file or folder the images come from, for messages. */
static const char *data_source(const Run *r) {
    const char *xp = config_str(&r->cfg, "data", "image_features");
    return xp[0] ? xp : config_str(&r->cfg, "data", "path");
}

int stage_data(Run *r) {
    if (r->fit.N) return 0;   // already done (dry-run planning happens first)
    double t = now_seconds();
    uint64_t seed = (uint64_t)config_int(&r->cfg, "run", "seed");
    size_t sub = (size_t)config_int(&r->cfg, "data", "subsample");
    if (config_str(&r->cfg, "data", "image_features")[0]) {
        if (load_precomputed(r)) return -1;
    } else {
        const char *path = config_str(&r->cfg, "data", "path");
        const char *kind = config_str(&r->cfg, "data", "kind");
        const char *fs = config_str(&r->cfg, "data", "fit_split");
        const char *es = config_str(&r->cfg, "data", "eval_split");
        if (!path[0]) {
            char w[2400];
            return laic_error("%s: data.path is empty ---> HINT: set data.path (or "
                              "data.image_features) in the config or as data.path=DIR on the "
                              "command line", run_key_where(r, "data", "path", w, sizeof w));
        }
        if (dataset_open(&r->dfit, kind, path, fs)) return -1;
        r->have_dfit = 1;
        r->sel_fit = select_subset(r->dfit.n, sub, seed, 101);
        labels_from(r, &r->dfit, r->sel_fit, r->sel_fit ? sub : r->dfit.n, &r->fit);
        r->eval_is_fit = !strcmp(fs, es);
        if (!r->eval_is_fit) {
            if (dataset_open(&r->deval, kind, path, es)) return -1;
            r->have_deval = 1;
            r->sel_eval = select_subset(r->deval.n, sub, seed, 102);
            labels_from(r, &r->deval, r->sel_eval, r->sel_eval ? sub : r->deval.n, &r->eval);
        } else {
            r->eval = r->fit;
        }
        r->n_classes = r->dfit.n_classes;
        if (r->dfit.class_names && r->n_classes > 0) {
            r->class_names = mallocCheck((size_t)r->n_classes * sizeof(char *));
            for (int i = 0; i < r->n_classes; i++) r->class_names[i] = strdup(r->dfit.class_names[i]);
        }
        run_log(r, "data: %s %s (%s): fit %s %zu images, eval %s %zu images, %d classes%s",
                dataset_kind_name(r->dfit.kind), r->dfit.root, path, fs, r->fit.N, es, r->eval.N,
                r->n_classes, sub ? " (seeded subsample)" : "");
    }
    if (r->fit.N < 2) return laic_error("%s: need at least 2 images, got %zu", data_source(r), r->fit.N);
    long K = config_int(&r->cfg, "kmeans", "k");
    r->K = K ? (int)K : r->n_classes;
    char kw[2400];
    if (r->K < 1)
        return laic_error("%s: kmeans.k = 0 and %s has no class labels ---> HINT: set kmeans.k",
                          run_key_where(r, "kmeans", "k", kw, sizeof kw), data_source(r));
    if ((size_t)r->K > r->fit.N)
        return laic_error("%s: kmeans.k = %d exceeds the %zu fit images of %s",
                          run_key_where(r, "kmeans", "k", kw, sizeof kw), r->K, r->fit.N, data_source(r));
    // image centres: round(N/300) (TAC filter_nouns.py's cluster_num: 167 for 50,000, 17 for
    // 5,000, 4271 for 1,281,167; halves round up [ours]), or 3K when a class of the fit split
    // has fewer than 300 samples (paper §3.1; TAC: 141 for DTD, 303 for UCF101)
    long kc = config_int(&r->cfg, "centers", "k");
    if (!kc) {
        int small = 0;
        if (r->n_classes > 0) {
            size_t *cnt = callocCheck((size_t)r->n_classes, sizeof *cnt);
            for (size_t i = 0; i < r->fit.N; i++)
                if (r->fit.y[i] >= 0 && r->fit.y[i] < r->n_classes) cnt[r->fit.y[i]]++;
            for (int c = 0; c < r->n_classes; c++) small |= cnt[c] < 300;
            free(cnt);
        }
        kc = small ? 3L * r->K : (long)((r->fit.N + 150) / 300);
        if (kc < 1) kc = 1;
    }
    if ((size_t)kc > r->fit.N) kc = (long)r->fit.N;
    r->kc = (int)kc;
    long kk = config_int(&r->cfg, "knn", "k");
    r->knn_k = kk ? (int)kk : (r->K <= 15 ? 10 : 5);
    if ((size_t)r->knn_k >= r->fit.N) r->knn_k = (int)r->fit.N - 1;
    run_time(r, "data", now_seconds() - t);
    return 0;
}

// --- image features -----------------------------------------------------------------------

/* After each rank encoded its shard: X (n,E) holds this rank's nkeep kept rows first and keep
 * their row indices; on return both hold every rank's kept rows in rank (= row) order, and the
 * total is returned. Ranks' shards are contiguous and in order, so the concatenation is the
 * one-process compaction. */
static size_t gather_kept_rows(Run *r, float *X, int64_t *keep, size_t nkeep, size_t E) {
    const int P = r->nranks;
    size_t *cnt = callocCheck((size_t)P, sizeof *cnt), *bytes = mallocCheck((size_t)P * sizeof *bytes);
    cnt[r->rank] = nkeep;
    for (int q = 0; q < P; q++) bytes[q] = sizeof *cnt;
    comm_allgather_host(cnt, bytes);
    size_t off = 0, total = 0;
    for (int q = 0; q < P; q++) {
        if (q < r->rank) off += cnt[q];
        total += cnt[q];
    }
    memmove(X + off * E, X, nkeep * E * sizeof *X);
    memmove(keep + off, keep, nkeep * sizeof *keep);
    for (int q = 0; q < P; q++) bytes[q] = cnt[q] * E * sizeof *X;
    comm_allgather_host(X, bytes);
    for (int q = 0; q < P; q++) bytes[q] = cnt[q] * sizeof *keep;
    comm_allgather_host(keep, bytes);
    free(cnt);
    free(bytes);
    return total;
}

static int encode_split(Run *r, const Dataset *d, const size_t *sel, const char *split, FeatureSet *fs) {
    const int S = r->w.cfg.image_size, E = r->w.cfg.embed_dim;
    const int B = (int)config_int(&r->cfg, "model", "batch");
    const int skip_bad = config_bool(&r->cfg, "data", "skip_bad");
    char key[6000], path[2200], keep_path[2200];
    char real[4096];
    if (!realpath(d->root, real)) snprintf(real, sizeof real, "%s", d->root);
    snprintf(key, sizeof key, "img v1|w=%s|kind=%s|root=%s|split=%s|n=%zu|sub=%ld|seed=%ld|S=%d|prec=%s|dev=%s",
             r->w.sha256, dataset_kind_name(d->kind), real, split, fs->N,
             config_int(&r->cfg, "data", "subsample"), config_int(&r->cfg, "run", "seed"), S,
             config_str(&r->cfg, "model", "precision"), r->ops->name);
    run_cache_path(r, "img", key, "", path, sizeof path);
    run_cache_path(r, "img", key, "-keep", keep_path, sizeof keep_path);
    char keep_key[6100];
    snprintf(keep_key, sizeof keep_key, "%s|keep", key);
    char norm_path[2200], norm_key[6100];   // the rows' norms before normalisation (SIC's raw input)
    run_cache_path(r, "img", key, "-norm", norm_path, sizeof norm_path);
    snprintf(norm_key, sizeof norm_key, "%s|norm", key);
    Npy x, k;
    if (run_cache_load(r, "image feature", path, key, &x)) {
        if (!run_cache_load(r, "image feature index", keep_path, keep_key, &k)) {
            run_cache_reject(r, "image feature", path, "its index file failed its check", &x);
        } else {
            // every index and size is checked before use: rows kept from this split's fs->N
            // images, strictly increasing (the encoder's order), one per feature row
            const char *why = NULL;
            if (x.dtype != NPY_F32 || x.ndim != 2 || x.shape[1] != (size_t)E) why = "not float32 [N,E]";
            else if (k.dtype != NPY_I64 || k.ndim != 1) why = "index file not int64 [N]";
            else if (k.shape[0] != x.shape[0] || k.shape[0] == 0 || k.shape[0] > fs->N)
                why = "index count does not match the features and the split";
            const int64_t *keep = k.data;
            for (size_t i = 0; !why && i < k.count; i++)
                if (keep[i] < 0 || (size_t)keep[i] >= fs->N || (i && keep[i] <= keep[i - 1]))
                    why = "index out of range or out of order";
            if (why) {
                run_cache_reject(r, "image feature index", keep_path, why, &k);
                run_cache_reject(r, "image feature", path, "its index file failed its check", &x);
            } else {
                fs->item = mallocCheck((k.shape[0] ? k.shape[0] : 1) * sizeof *fs->item);
                for (size_t i = 0; i < k.shape[0]; i++) {
                    fs->y[i] = fs->y[keep[i]];
                    fs->item[i] = (int64_t)(sel ? sel[keep[i]] : (size_t)keep[i]);
                }
                r->n_bad_images += fs->N - k.shape[0];
                fs->N = k.shape[0];
                fs->X = x.data;
                npy_free(&k);
                Npy nm;   // optional: an entry cached before the norms were kept has none
                if (run_cache_load(r, "image feature norm", norm_path, norm_key, &nm)) {
                    if (nm.dtype == NPY_F32 && nm.ndim == 1 && nm.shape[0] == fs->N) fs->norm = nm.data;
                    else run_cache_reject(r, "image feature norm", norm_path, "not float32 [N]", &nm);
                }
                run_cache_status(r, "image_features", "hit");
                run_log(r, "images (%s): %zu features from cache %s", split, fs->N, path);
                return 0;
            }
        }
    }
    const size_t n = fs->N;
    // data parallel: this rank encodes the batches [lo, hi) of the one-process batch grid (each
    // batch exactly as one process would), then the kept rows of all ranks are gathered
    size_t lo, hi;
    run_shard(r, n, (size_t)B, &lo, &hi);
    const size_t bad0 = r->n_bad_images;
    float *X = mallocCheck(n * (size_t)E * sizeof *X);
    float *pix = mallocCheck((size_t)B * 3 * S * S * sizeof *pix);
    int64_t *keep = mallocCheck(n * sizeof *keep);
    char *bad = callocCheck((size_t)B, 1);
    char **errs = callocCheck((size_t)B, sizeof(char *));
    size_t nkeep = 0;
    int rc = 0;
    Progress p;
    char label[64];
    snprintf(label, sizeof label, "encode %s", split);
    progress_start(&p, label, "img", hi - lo);
    for (size_t b0 = lo; b0 < hi && !rc; b0 += (size_t)B) {
        int nb = (int)((n - b0) < (size_t)B ? (n - b0) : (size_t)B);
#pragma omp parallel for schedule(dynamic)
        for (int j = 0; j < nb; j++) {
            size_t item = sel ? sel[b0 + (size_t)j] : b0 + (size_t)j;
            uint8_t *rgb = NULL, *crop = malloc((size_t)S * S * 3);
            int h, w;
            bad[j] = 0;
            if (!crop || dataset_get_rgb8(d, item, &rgb, &h, &w)) {
                bad[j] = 1;
                errs[j] = strdup(laic_last_error());
            } else {
                image_resize_crop_rgb8(crop, rgb, h, w, S);
                image_normalize(pix + (size_t)j * 3 * S * S, crop, S);
            }
            free(rgb);
            free(crop);
        }
        // compact the batch over bad images (fail on the first unless data.skip_bad)
        int m = 0;
        for (int j = 0; j < nb; j++) {
            if (bad[j]) {
                if (!skip_bad) {
                    laic_error("%s ---> HINT: data.skip_bad=true skips unreadable images", errs[j]);
                    rc = -1;
                    break;
                }
                r->n_bad_images++;
                continue;
            }
            if (m != j) memcpy(pix + (size_t)m * 3 * S * S, pix + (size_t)j * 3 * S * S, (size_t)3 * S * S * sizeof *pix);
            keep[nkeep + (size_t)m] = (int64_t)(b0 + (size_t)j);
            m++;
        }
        for (int j = 0; j < nb; j++) {
            free(errs[j]);
            errs[j] = NULL;
        }
        if (!rc && m > 0) rc = clip_encode_images(r->model, pix, m, X + nkeep * (size_t)E);
        nkeep += (size_t)m;
        progress_update(&p, b0 - lo + (size_t)nb);
    }
    free(pix);
    free(bad);
    free(errs);
    if (rc) {
        free(X);
        free(keep);
        return -1;
    }
    progress_end(&p);
    if (r->nranks > 1) nkeep = gather_kept_rows(r, X, keep, nkeep, (size_t)E);
    r->n_bad_images = bad0 + (n - nkeep);
    if (nkeep == 0) {
        free(X);
        free(keep);
        return laic_error("%s: no readable images in split %s", d->root, split);
    }
    fs->norm = row_norms(X, nkeep, E);
    normalize_rows(X, nkeep, E);
    run_cache_status(r, "image_features", "miss");
    fs->item = mallocCheck(nkeep * sizeof *fs->item);
    for (size_t i = 0; i < nkeep; i++) {
        fs->y[i] = fs->y[keep[i]];
        fs->item[i] = (int64_t)(sel ? sel[keep[i]] : (size_t)keep[i]);
    }
    fs->N = nkeep;
    fs->X = X;
    // cache (best effort: a failed cache write is reported, not fatal)
    size_t ks[1] = {nkeep}, xs[2] = {nkeep, (size_t)E};
    run_cache_store(r, "image feature", path, key, NPY_F32, 2, xs, X);
    run_cache_store(r, "image feature index", keep_path, keep_key, NPY_I64, 1, ks, keep);
    run_cache_store(r, "image feature norm", norm_path, norm_key, NPY_F32, 1, ks, fs->norm);
    free(keep);
    return 0;
}

int stage_images(Run *r) {
    if (r->fit.X) {   // precomputed
        run_cache_status(r, "image_features", "precomputed");
        return 0;
    }
    double t = now_seconds();
    if (encode_split(r, &r->dfit, r->sel_fit, config_str(&r->cfg, "data", "fit_split"), &r->fit))
        return -1;
    if (r->eval_is_fit) r->eval = r->fit;
    else if (encode_split(r, &r->deval, r->sel_eval, config_str(&r->cfg, "data", "eval_split"), &r->eval))
        return -1;
    if (r->n_bad_images) run_log(r, "skipped %zu unreadable images (data.skip_bad)", r->n_bad_images);
    char kw[2400];
    if ((size_t)r->K > r->fit.N)
        return laic_error("%s: kmeans.k = %d exceeds the %zu readable fit images of %s",
                          run_key_where(r, "kmeans", "k", kw, sizeof kw), r->K, r->fit.N, data_source(r));
    run_time(r, "encode_images", now_seconds() - t);
    return 0;
}

// --- prompts and nouns ----------------------------------------------------------------------

// Progress of clip_encode_text_bucketed within one chunk of prompts.
typedef struct { Progress *p; size_t base; } ChunkProgress;
static void chunk_progress(void *ctx, size_t done) {
    ChunkProgress *c = ctx;
    progress_update(c->p, c->base + done);
}

int stage_encode_prompts(Run *r, const char *const *prompts, size_t n, float *out) {
    if (stage_encode_prompts_raw(r, prompts, n, out)) return -1;
    normalize_rows(out, n, r->w.cfg.embed_dim);
    return 0;
}

int stage_encode_prompts_raw(Run *r, const char *const *prompts, size_t n, float *out) {
    const int L = r->w.cfg.context_length, E = r->w.cfg.embed_dim;
    const char *wp = config_str(&r->cfg, "model", "weights");
    if (clip_check_text_vocab(&r->w, wp[0] ? wp : r->random_weights ? "model.weights (random init)" : DEFAULT_WEIGHTS))
        return -1;
    const char *vp = tokenizer_default_vocab_path();
    if (!vp) return -1;
    Tokenizer *tok = tokenizer_load(vp);
    if (!tok) return -1;
    const size_t CH = 16384;   // prompts tokenized and length-bucketed at a time
    int32_t *rows = mallocCheck(CH * (size_t)L * sizeof *rows);
    int rc = 0;
    // data parallel: this rank encodes the chunks [lo, hi) (each bucketed exactly as one process
    // would), then the rows are gathered
    size_t lo, hi;
    run_shard(r, n, CH, &lo, &hi);
    Progress p;
    progress_start(&p, "encode prompts", "prompt", hi - lo);
    for (size_t c0 = lo; c0 < hi && !rc; c0 += CH) {
        size_t nc = n - c0 < CH ? n - c0 : CH;
        for (size_t i = 0; i < nc && !rc; i++)
            if (tokenizer_tokenize(tok, prompts[c0 + i], strlen(prompts[c0 + i]), L, rows + i * L) < 0)
                rc = -1;
        // batches of model.batch sorted by EOT position (clip.c), outputs in prompt order
        ChunkProgress cp = {&p, c0 - lo};
        if (!rc) rc = clip_encode_text_bucketed(r->model, rows, nc, L, out + c0 * E, chunk_progress, &cp, NULL);
    }
    if (!rc) progress_end(&p);
    if (!rc) run_gather_rows(r, out, n, CH, (size_t)E * sizeof *out);
    free(rows);
    tokenizer_free(tok);
    return rc;
}

int stage_encode_noun_prompts(Run *r, int normalize, float *out) {
    const size_t np = r->Mn * NOUNS_N_TEMPLATES;
    char **prompts = mallocCheck(np * sizeof *prompts);
    for (size_t i = 0; i < r->Mn; i++)
        for (int t = 0; t < NOUNS_N_TEMPLATES; t++) {
            char buf[1024];
            if (nouns_prompt(buf, sizeof buf, t, r->noun_names[i]) < 0) buf[0] = 0;
            prompts[i * NOUNS_N_TEMPLATES + (size_t)t] = strdup(buf);
        }
    int rc = normalize ? stage_encode_prompts(r, (const char *const *)prompts, np, out)
                       : stage_encode_prompts_raw(r, (const char *const *)prompts, np, out);
    for (size_t i = 0; i < np; i++) free(prompts[i]);
    free(prompts);
    return rc;
}

int stage_read_lines(const char *path, size_t want, const char *rows_of, char ***out) {
    FILE *f = fopen(path, "r");
    if (!f) return laic_error("%s: cannot open", path);
    char **v = mallocCheck((want ? want : 1) * sizeof *v);
    char *line = NULL;
    size_t cap = 0, n = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (n < want) v[n] = strdup(line);
        n++;
    }
    free(line);
    fclose(f);
    if (n != want) {
        for (size_t i = 0; i < n && i < want; i++) free(v[i]);
        free(v);
        return laic_error("%s: %zu lines, but %s %zu rows", path, n, rows_of, want);
    }
    *out = v;
    return 0;
}

int stage_nouns(Run *r) {
    double t = now_seconds();
    const char *fp = config_str(&r->cfg, "nouns", "features");
    if (fp[0]) {
        Npy x;
        if (npy_read_f32(fp, &x, 2, NULL)) return -1;
        if ((int)x.shape[1] != r->E) {
            npy_free(&x);
            return laic_error("%s: noun features have width %zu, the image features %d", fp,
                              x.shape[1], r->E);
        }
        if (cluster_check_finite(x.data, x.count, fp)) {
            npy_free(&x);
            return -1;
        }
        r->Mn = x.shape[0];
        r->T_all = x.data;
        normalize_rows(r->T_all, r->Mn, (int)x.shape[1]);
        const char *np_ = config_str(&r->cfg, "nouns", "names");
        if (np_[0]) {
            if (stage_read_lines(np_, r->Mn, "the features have", &r->noun_names)) return -1;
        } else {
            r->noun_names = mallocCheck(r->Mn * sizeof(char *));
            for (size_t i = 0; i < r->Mn; i++) {
                char b[32];
                snprintf(b, sizeof b, "noun%zu", i);
                r->noun_names[i] = strdup(b);
            }
        }
        run_cache_status(r, "noun_features", "precomputed");
        run_log(r, "nouns: %zu precomputed features from %s", r->Mn, fp);
        return 0;
    }
    const char *wn = config_str(&r->cfg, "nouns", "wordnet");
    if (nouns_load(&r->nouns, wn)) return -1;
    r->have_nouns = 1;
    uint64_t seed = (uint64_t)config_int(&r->cfg, "run", "seed");
    size_t sub = (size_t)config_int(&r->cfg, "nouns", "subset");
    size_t *sel = select_subset(r->nouns.n, sub, seed, 201);
    r->Mn = sel ? sub : r->nouns.n;
    r->noun_names = mallocCheck(r->Mn * sizeof(char *));   // point into the Nouns arena
    r->noun_synset = mallocCheck((r->Mn ? r->Mn : 1) * sizeof *r->noun_synset);
    for (size_t i = 0; i < r->Mn; i++) {
        r->noun_names[i] = r->nouns.text[sel ? sel[i] : i];
        r->noun_synset[i] = r->nouns.offset[sel ? sel[i] : i];
    }
    const int E = r->w.cfg.embed_dim;
    struct stat st;
    char key[4600], path[2200], real[4096];
    if (!realpath(wn, real)) snprintf(real, sizeof real, "%s", wn);
    stat(wn, &st);
    // v2: the mean of the raw prompt features (v1 averaged normalised ones)
    snprintf(key, sizeof key, "nouns v2|w=%s|wordnet=%s|size=%lld|subset=%zu|seed=%llu|templates=%d|dev=%s|prec=%s",
             r->w.sha256, real, (long long)st.st_size, sub, (unsigned long long)seed,
             NOUNS_N_TEMPLATES, r->ops->name, config_str(&r->cfg, "model", "precision"));
    run_cache_path(r, "nouns", key, "", path, sizeof path);
    Npy x;
    if (run_cache_load(r, "noun feature", path, key, &x)) {
        if (x.dtype != NPY_F32 || x.ndim != 2 || x.shape[0] != r->Mn || x.shape[1] != (size_t)E) {
            run_cache_reject(r, "noun feature", path, "not float32 [nouns, E]", &x);
            goto encode;
        }
        r->T_all = x.data;
        run_cache_status(r, "noun_features", "hit");
        run_log(r, "nouns: %zu noun features from cache %s", r->Mn, path);
        free(sel);
        return 0;
    }
encode:;
    // 7 templates per noun (SPEC §4): the mean of the RAW (unnormalised) prompt features, then
    // L2-normalised, as TAC's text_embedding.py:53-57 (ensemble) and filter_nouns.py:25-27
    const size_t np = r->Mn * NOUNS_N_TEMPLATES;
    float *pf = mallocCheck(np * (size_t)E * sizeof *pf);
    run_log(r, "nouns: encoding %zu nouns x %d templates = %zu prompts", r->Mn, NOUNS_N_TEMPLATES, np);
    int rc = stage_encode_noun_prompts(r, 0, pf);
    free(sel);
    if (rc) {
        free(pf);
        return -1;
    }
    run_cache_status(r, "noun_features", "miss");
    r->T_all = mallocCheck((r->Mn ? r->Mn : 1) * (size_t)E * sizeof *r->T_all);
    for (size_t i = 0; i < r->Mn; i++)   // mean in double, template order (numpy's += loop)
        for (int e = 0; e < E; e++) {
            double s = 0;
            for (int t = 0; t < NOUNS_N_TEMPLATES; t++) s += pf[(i * NOUNS_N_TEMPLATES + (size_t)t) * E + e];
            r->T_all[i * E + e] = (float)(s / NOUNS_N_TEMPLATES);
        }
    free(pf);
    normalize_rows(r->T_all, r->Mn, E);
    size_t ts[2] = {r->Mn, (size_t)E};
    run_cache_store(r, "noun feature", path, key, NPY_F32, 2, ts, r->T_all);
    run_time(r, "encode_nouns", now_seconds() - t);
    return 0;
}

// --- candidate nouns (SPEC §4) --------------------------------------------------------------

/* Fills r->T (M,E) from the candidate indices r->cand (M). */
static void gather_candidates(Run *r) {
    const int D = r->E;
    r->T = mallocCheck((r->M ? r->M : 1) * (size_t)D * sizeof *r->T);
    for (size_t j = 0; j < r->M; j++)
        memcpy(r->T + j * D, r->T_all + (size_t)r->cand[j] * D, (size_t)D * sizeof *r->T);
}

/* The candidate-set cache key: everything stage_candidates reads. Features enter by content
 * hash, so precomputed inputs, encoded features from any cache, and a changed file all key
 * correctly; sizes guard against a (2^-64) collision between different shapes.
 * v2: centres are the means of all assigned rows, k_c rounds, centers.init and nouns.rank. */
static void candidates_key(Run *r, char *key, size_t n) {
    const int D = r->E;
    uint64_t hx = run_hash64(r->fit.X, r->fit.N * (size_t)D * sizeof(float), 1);
    uint64_t ht = run_hash64(r->T_all, r->Mn * (size_t)D * sizeof(float), 2);
    snprintf(key, n, "cand v2|X=%016llx|N=%zu|E=%d|T=%016llx|Mn=%zu|kc=%d|iters=%ld|restarts=%ld|"
             "spc=%ld|init=%s|seed=%ld|gamma=%ld|rank=%s", (unsigned long long)hx, r->fit.N, D,
             (unsigned long long)ht, r->Mn, r->kc, config_int(&r->cfg, "centers", "iters"),
             config_int(&r->cfg, "centers", "restarts"), config_int(&r->cfg, "centers", "sample_per_center"),
             config_str(&r->cfg, "centers", "init"), config_int(&r->cfg, "run", "seed"),
             config_int(&r->cfg, "nouns", "gamma"), config_str(&r->cfg, "nouns", "rank"));
}

/* Loads cached candidate indices (path) and their (M,3) info (ipath); 1 = hit, 0 = miss (absent
 * or failing a check: recompute). */
static int candidates_from_cache(Run *r, const char *path, const char *ipath, const char *key) {
    Npy c, inf;
    char ikey[620];
    snprintf(ikey, sizeof ikey, "%s|info", key);
    if (!run_cache_load(r, "candidate", path, key, &c)) return 0;
    int ok = c.dtype == NPY_I64 && c.ndim == 1 && c.shape[0] > 0;
    const int64_t *v = c.data;
    for (size_t i = 0; ok && i < c.shape[0]; i++)   // sorted, in range: else not ours
        ok = v[i] >= 0 && (size_t)v[i] < r->Mn && (i == 0 || v[i] > v[i - 1]);
    if (!ok) {
        run_cache_reject(r, "candidate", path, "not sorted noun indices in range", &c);
        return 0;
    }
    if (!run_cache_load(r, "candidate info", ipath, ikey, &inf)) {
        run_cache_reject(r, "candidate", path, "its info file failed its check", &c);
        return 0;
    }
    ok = inf.dtype == NPY_F64 && inf.ndim == 2 && inf.shape[0] == c.shape[0] && inf.shape[1] == 3;
    const double *d = inf.data;
    for (size_t i = 0; ok && i < c.shape[0]; i++)   // a centre index in range, finite scores
        ok = d[3 * i] >= 0 && d[3 * i] < r->kc && isfinite(d[3 * i + 1]) && isfinite(d[3 * i + 2]);
    if (!ok) {
        run_cache_reject(r, "candidate info", ipath, "not (M,3) float64 with centres in range", &inf);
        run_cache_reject(r, "candidate", path, "its info file failed its check", &c);
        return 0;
    }
    r->cand_info = mallocCheck(c.shape[0] * 3 * sizeof *r->cand_info);
    memcpy(r->cand_info, inf.data, c.shape[0] * 3 * sizeof *r->cand_info);
    npy_free(&inf);
    r->M = c.shape[0];
    r->cand = mallocCheck(r->M * sizeof *r->cand);
    memcpy(r->cand, c.data, r->M * sizeof *r->cand);
    npy_free(&c);
    gather_candidates(r);
    return 1;
}

/* Order of the candidate rows in candidates.tsv: by centre, then confidence (rank = tac) or
 * cosine (rank = cosine) descending, then bank row. */
static const double *g_info;
static int g_by_cosine;
static int cmp_tsv_row(const void *a, const void *b) {
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    const double *x = g_info + 3 * i, *y = g_info + 3 * j;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    int k = g_by_cosine ? 2 : 1;
    if (x[k] != y[k]) return x[k] > y[k] ? -1 : 1;
    return i < j ? -1 : (i > j);
}

/* candidates.tsv in the run directory: one row per candidate noun. */
static int write_candidates_tsv(Run *r) {
    if (!r->partial[0]) return 0;
    size_t *order = mallocCheck((r->M ? r->M : 1) * sizeof *order);
    for (size_t j = 0; j < r->M; j++) order[j] = j;
    g_info = r->cand_info;
    g_by_cosine = !strcmp(config_str(&r->cfg, "nouns", "rank"), "cosine");
    qsort(order, r->M, sizeof *order, cmp_tsv_row);
    char path[2300];
    snprintf(path, sizeof path, "%s/candidates.tsv", r->partial);
    AtomicFile af;
    int rc = atomic_open(&af, path);
    if (!rc) {
        fprintf(af.fp, "noun\tsynset_offset\tcentre\tconfidence\tcosine\tnoun_index\n");
        for (size_t k = 0; k < r->M; k++) {
            size_t j = order[k];
            int64_t idx = r->cand[j];
            const double *d = r->cand_info + 3 * j;
            char syn[16] = "-";
            if (r->noun_synset) snprintf(syn, sizeof syn, "%08u", (unsigned)r->noun_synset[idx]);
            fprintf(af.fp, "%s\t%s\t%d\t%.9g\t%.9g\t%lld\n", r->noun_names[idx], syn, (int)d[0], d[1],
                    d[2], (long long)idx);
        }
        rc = atomic_commit(&af);
    }
    free(order);
    if (!rc) run_add_file(r, "candidates", "candidates.tsv");
    return rc;
}

int stage_candidates(Run *r) {
    double t = now_seconds();
    const size_t Nf = r->fit.N;
    const int D = r->E;
    const int kc = r->kc;
    const int rank = cand_rank_parse(config_str(&r->cfg, "nouns", "rank"));
    char key[600], cpath[2200], ipath[2200];
    candidates_key(r, key, sizeof key);
    run_cache_path(r, "cand", key, "", cpath, sizeof cpath);
    run_cache_path(r, "cand", key, "-info", ipath, sizeof ipath);
    if (candidates_from_cache(r, cpath, ipath, key)) {
        run_cache_status(r, "candidates", "hit");
        run_log(r, "candidates: %zu nouns from cache %s", r->M, cpath);
        run_time(r, "centres_and_candidates", now_seconds() - t);
        return write_candidates_tsv(r);
    }
    run_cache_status(r, "candidates", "miss");
    // 1. spherical k-means on the fit images (TAC filter_nouns.py:7-16: faiss, spherical,
    //    niter 300, nredo 10, at most 256 training points per centre)
    float *centroids = mallocCheck((size_t)kc * D * sizeof *centroids);
    int64_t *lab = mallocCheck(Nf * sizeof *lab);
    KMeansOpts o = {0};
    o.K = kc;
    o.iters = (int)config_int(&r->cfg, "centers", "iters");
    o.restarts = (int)config_int(&r->cfg, "centers", "restarts");
    o.seed = (uint64_t)config_int(&r->cfg, "run", "seed");
    o.spherical = 1;
    o.init = !strcmp(config_str(&r->cfg, "centers", "init"), "random") ? KMEANS_INIT_RANDOM : KMEANS_INIT_PP;
    size_t spc = (size_t)config_int(&r->cfg, "centers", "sample_per_center");
    o.sample = spc && spc * (size_t)kc < Nf ? spc * (size_t)kc : 0;
    double obj;
    run_log(r, "centres: spherical k-means (%s init), k_c = %d on %zu images%s",
            config_str(&r->cfg, "centers", "init"), kc, Nf, o.sample ? " (subsampled)" : "");
    if (kmeans_fit(lab, centroids, &obj, r->fit.X, (int)Nf, D, &o)) {
        free(centroids);
        free(lab);
        return -1;
    }
    // 2. centre vectors: normalised means of ALL fit images assigned to each centre
    //    (filter_nouns.py:51-54), not the centroids trained on the subsample
    float *centres = mallocCheck((size_t)kc * D * sizeof *centres);
    size_t empty = cand_centres_from_labels(centres, r->fit.X, lab, Nf, D, kc, centroids);
    if (empty) run_log(r, "centres: %zu of %d centres have no image; they keep their k-means centroid", empty, kc);
    free(lab);
    free(centroids);
    // 3. S = centres · nounsᵀ on the run's backend; each noun's centre and softmax confidence
    const size_t Mn = r->Mn, CH = 4096;
    RunGemm g;
    if (run_gemm_init(&g, r->ops, centres, 1, kc, D, Mn < CH ? Mn : CH)) {
        free(centres);
        return -1;
    }
    CandScore *sc = mallocCheck((Mn ? Mn : 1) * sizeof *sc);
    float *sims = mallocCheck(CH * (size_t)kc * sizeof *sims);   // (CH,kc)
    size_t lo, hi;   // data parallel: this rank's chunks of nouns, then gathered
    run_shard(r, Mn, CH, &lo, &hi);
    for (size_t m0 = lo; m0 < hi; m0 += CH) {
        size_t nm = Mn - m0 < CH ? Mn - m0 : CH;
        run_gemm_rows(&g, sims, r->T_all + m0 * D, nm, 0);
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < nm; i++) cand_score(&sc[m0 + i], sims + i * kc, kc, m0 + i);
    }
    run_gemm_free(&g);
    run_gather_rows(r, sc, Mn, CH, sizeof *sc);
    free(sims);
    free(centres);
    // 4. each centre keeps its γ most confident (or most similar) nouns; union = candidates
    const size_t gamma = (size_t)config_int(&r->cfg, "nouns", "gamma");
    uint8_t *chosen = mallocCheck(Mn ? Mn : 1);
    size_t M = cand_select(sc, Mn, gamma, (CandRank)rank, chosen);
    // sc is sorted by centre now; index it by bank row for the info in cand's (sorted) order
    size_t *where = mallocCheck((Mn ? Mn : 1) * sizeof *where);
    for (size_t i = 0; i < Mn; i++) where[sc[i].idx] = i;
    r->M = M;
    r->cand = mallocCheck((M ? M : 1) * sizeof *r->cand);
    r->cand_info = mallocCheck((M ? M : 1) * 3 * sizeof *r->cand_info);
    for (size_t i = 0, j = 0; i < Mn; i++)
        if (chosen[i]) {
            const CandScore *s = &sc[where[i]];
            r->cand[j] = (int64_t)i;
            r->cand_info[3 * j] = s->centre;
            r->cand_info[3 * j + 1] = s->conf;
            r->cand_info[3 * j + 2] = s->cosine;
            j++;
        }
    free(where);
    free(chosen);
    free(sc);
    gather_candidates(r);
    size_t ms[1] = {M}, is[2] = {M, 3};
    char ikey[sizeof key + 8];
    snprintf(ikey, sizeof ikey, "%s|info", key);
    run_cache_store(r, "candidate info", ipath, ikey, NPY_F64, 2, is, r->cand_info);
    run_cache_store(r, "candidate", cpath, key, NPY_I64, 1, ms, r->cand);
    run_log(r, "candidates: %zu nouns (γ = %zu per centre by %s, %d centres, from %zu)", M, gamma,
            config_str(&r->cfg, "nouns", "rank"), kc, Mn);
    run_time(r, "centres_and_candidates", now_seconds() - t);
    return write_candidates_tsv(r);
}

// --- ridge and clustering --------------------------------------------------------------------

// ridge.form = auto follows SPEC §5: when M >= d every later step (k-means, the kNN filter) works
// on the exact N×d reduction Z = X L (Z Zᵀ = C Cᵀ: the same distances and cosines, N×d instead of
// N×M work and memory) unless C itself is asked for (ridge.save_c); when M < d, or when T has
// rank < d so that A Aᵀ is singular, on C from the smaller of the two systems.
int stage_ridge(Run *r, const float *X, size_t N, float **C, int *Dout) {
    double t = now_seconds();
    const int D = r->E;
    const double lambda = config_float(&r->cfg, "ridge", "lambda");
    const char *form = config_str(&r->cfg, "ridge", "form");
    const int autof = !strcmp(form, "auto");
    int rc = -1;
    *C = NULL;
    if (!strcmp(form, "reduced") ||
        (autof && r->M >= (size_t)D && !config_bool(&r->cfg, "ridge", "save_c"))) {
        *C = mallocCheck(N * (size_t)D * sizeof **C);
        rc = ridge_reduce(*C, X, r->T, lambda, (int)N, (int)r->M, D);
        *Dout = D;
        r->ridge_form = "reduced";
        if (rc && autof) {
            run_log(r, "ridge: the N×d reduction failed (%s); solving for C instead",
                    laic_last_error());
            free(*C);
            *C = NULL;
        }
    }
    if (!*C) {   // not reduced, or auto's reduction failed
        RidgeForm f = !strcmp(form, "primal") ? RIDGE_PRIMAL : !strcmp(form, "dual") ? RIDGE_DUAL : RIDGE_AUTO;
        *C = mallocCheck(N * r->M * sizeof **C);
        rc = ridge_solve(*C, X, r->T, lambda, (int)N, (int)r->M, D, f);
        *Dout = (int)r->M;
        r->ridge_form = f == RIDGE_PRIMAL || (f == RIDGE_AUTO && r->M <= (size_t)D) ? "primal" : "dual";
    }
    if (rc) {
        free(*C);
        *C = NULL;
        // name the inputs: the system is built from the candidate nouns' features
        const char *nf = config_str(&r->cfg, "nouns", "features");
        char fw[2400];
        laic_error("%s: ridge.form = %s, λ = %g, over the %zu candidate nouns of %s: %s",
                   run_key_where(r, "ridge", "form", fw, sizeof fw), form, lambda, r->M,
                   nf[0] ? nf : config_str(&r->cfg, "nouns", "wordnet"), laic_last_error());
    }
    run_time(r, "ridge", now_seconds() - t);
    return rc;
}

int stage_cluster(Run *r, const float *F_fit, size_t Nf, const float *F_eval, size_t Ne, int D,
                  int K, int64_t *y_fit, int64_t *y_eval, float *centers) {
    double t = now_seconds();
    KMeansOpts o = {0};
    o.K = K;
    o.iters = (int)config_int(&r->cfg, "kmeans", "iters");
    o.restarts = (int)config_int(&r->cfg, "kmeans", "restarts");
    o.seed = (uint64_t)config_int(&r->cfg, "run", "seed");
    o.spherical = config_bool(&r->cfg, "kmeans", "spherical");
    o.init = !strcmp(config_str(&r->cfg, "kmeans", "init"), "random") ? KMEANS_INIT_RANDOM : KMEANS_INIT_PP;
    int rc = stage_cluster_with(r, &o, F_fit, Nf, F_eval, Ne, D, y_fit, y_eval, centers);
    run_time(r, "kmeans", now_seconds() - t);
    return rc;
}

int stage_cluster_with(Run *r, const KMeansOpts *opts, const float *F_fit, size_t Nf,
                       const float *F_eval, size_t Ne, int D, int64_t *y_fit, int64_t *y_eval,
                       float *centers) {
    (void)r;
    KMeansOpts o = *opts;
    const int K = o.K;
    float *C = centers ? centers : mallocCheck((size_t)K * D * sizeof *C);
    double obj;
    int rc = kmeans_fit(y_fit, C, &obj, F_fit, (int)Nf, D, &o);
    if (!rc && y_eval) {
        if (F_eval == F_fit) {
            memcpy(y_eval, y_fit, Nf * sizeof *y_eval);
        } else {   // eval rows go to the nearest fitted centre
            float *F = mallocCheck(Ne * (size_t)D * sizeof *F);
            memcpy(F, F_eval, Ne * (size_t)D * sizeof *F);
            if (o.spherical) normalize_rows(F, Ne, D);
            float *xx = mallocCheck(Ne * sizeof *xx), *cc = mallocCheck((size_t)K * sizeof *cc);
            float *mind = mallocCheck(Ne * sizeof *mind);
            rownorm2_forward_cpu(xx, F, (int)Ne, D);
            rownorm2_forward_cpu(cc, C, K, D);
            kmeans_assign_forward_cpu(y_eval, mind, F, xx, C, cc, (int)Ne, D, K);
            free(F);
            free(xx);
            free(cc);
            free(mind);
        }
    }
    if (!centers) free(C);
    return rc;
}
