/* run.c — the Run's lifecycle and helpers: log, report entries, cache paths, directories (run.h). */
#include "run/run.h"

#include <cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cluster/metrics.h"
#include "io/err.h"
#include "io/npy.h"
#include "io/progress.h"
#include "io/sha256.h"

void run_log(Run *r, const char *fmt, ...) {
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "[%7.1fs] %s\n", now_seconds() - r->t0, line);
    size_t n = strlen(line) + 16;
    if (r->log_len + n >= r->log_cap) {
        r->log_cap = 2 * (r->log_cap + n);
        char *p = realloc(r->log, r->log_cap);
        if (!p) return;
        r->log = p;
    }
    r->log_len += (size_t)snprintf(r->log + r->log_len, r->log_cap - r->log_len, "[%7.1fs] %s\n",
                                   now_seconds() - r->t0, line);
}

uint64_t run_hash64(const void *data, size_t n, uint64_t seed) {
    // word-at-a-time multiply/rotate mixing with a final avalanche; four independent lanes
    // keep the multiplier pipeline busy so hashing 123 MB of features costs ~50 ms
    const uint64_t P1 = 0x9E3779B185EBCA87ull, P2 = 0xC2B2AE3D27D4EB4Full;
    const unsigned char *b = data;
    uint64_t h[4] = {seed ^ P1, seed ^ P2, seed + P1, seed - P2};
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int l = 0; l < 4; l++) {
            uint64_t w;
            memcpy(&w, b + i + 8 * l, 8);
            h[l] ^= w * P2;
            h[l] = ((h[l] << 31) | (h[l] >> 33)) * P1;
        }
    uint64_t x = (uint64_t)n * P1;
    for (int l = 0; l < 4; l++) x = (((x ^ h[l]) << 27) | ((x ^ h[l]) >> 37)) * P1 + P2;
    for (; i < n; i++) x = (x ^ b[i]) * P1;
    x ^= x >> 33;
    x *= P2;
    x ^= x >> 29;
    x *= P1;
    return x ^ (x >> 32);
}

void run_time(Run *r, const char *stage, double seconds) {
    cJSON *t = cJSON_GetObjectItemCaseSensitive(r->timings, stage);
    if (t) cJSON_SetNumberValue(t, t->valuedouble + seconds);
    else cJSON_AddNumberToObject(r->timings, stage, seconds);
}

void run_add_file(Run *r, const char *key, const char *path) {
    if (!r->files) return;
    if (cJSON_GetObjectItemCaseSensitive(r->files, key))
        cJSON_ReplaceItemInObjectCaseSensitive(r->files, key, cJSON_CreateString(path));
    else
        cJSON_AddStringToObject(r->files, key, path);
}

/* predictions/<name>.npy in the run's .partial directory (int64 (Ne)), named in report.json. */
static int write_predictions(Run *r, cJSON *m, const char *name, const int64_t *pred) {
    if (!r->partial[0]) return 0;   // no run directory (e.g. a library caller)
    char dir[2200], path[2900], rel[600];
    snprintf(dir, sizeof dir, "%s/predictions", r->partial);
    if (run_mkdir_p(dir)) return -1;
    snprintf(rel, sizeof rel, "predictions/%s.npy", name);
    snprintf(path, sizeof path, "%s/%s", r->partial, rel);
    size_t shape[1] = {r->eval.N};
    if (npy_write(path, NPY_I64, 1, shape, pred)) return -1;
    cJSON_AddStringToObject(m, "predictions", rel);
    if (r->files) {
        cJSON *p = cJSON_GetObjectItemCaseSensitive(r->files, "predictions");
        if (!p) p = cJSON_AddObjectToObject(r->files, "predictions");
        cJSON_DeleteItemFromObjectCaseSensitive(p, name);
        cJSON_AddStringToObject(p, name, rel);
    }
    return 0;
}

int run_report_method(Run *r, const char *name, const int64_t *pred) {
    cJSON *m = cJSON_AddObjectToObject(r->methods, name);
    if (write_predictions(r, m, name, pred)) return -1;
    size_t n = r->eval.N;
    int64_t *y = r->eval.y;
    size_t nl = 0;
    for (size_t i = 0; i < n; i++) nl += y[i] >= 0;
    if (nl == 0) {
        cJSON_AddStringToObject(m, "note", "no ground-truth labels: metrics not computed");
        run_log(r, "%-14s (no labels)", name);
        return 0;
    }
    int64_t *p = mallocCheck(nl * sizeof *p), *t = mallocCheck(nl * sizeof *t);
    for (size_t i = 0, j = 0; i < n; i++)
        if (y[i] >= 0) {
            p[j] = pred[i];
            t[j++] = y[i];
        }
    ClusterMetrics cm;
    int rc = metrics_compute(&cm, p, t, nl);
    free(p);
    free(t);
    if (rc) return -1;
    cJSON_AddNumberToObject(m, "nmi", cm.nmi);
    cJSON_AddNumberToObject(m, "acc", cm.acc);
    cJSON_AddNumberToObject(m, "ari", cm.ari);
    cJSON_AddNumberToObject(m, "n", (double)cm.n);
    cJSON_AddNumberToObject(m, "k_pred", cm.k_pred);
    run_log(r, "%-14s NMI %5.1f  ACC %5.1f  ARI %5.1f  (%%, n = %zu)", name, 100 * cm.nmi,
            100 * cm.acc, 100 * cm.ari, cm.n);
    return 0;
}

int run_mkdir_p(const char *path) {
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) && errno != EEXIST) return laic_error("%s: cannot create: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) && errno != EEXIST) return laic_error("%s: cannot create: %s", buf, strerror(errno));
    return 0;
}

void run_rm_rf(const char *path) {
    if (!path[0]) return;
    struct stat st;
    if (stat(path, &st)) return;
    char cmd[2300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "laic: warning: could not remove %s\n", path);
}

int run_init(Run *r, const char *config_path, int n_over, char **overrides, int dry_run) {
    memset(r, 0, sizeof *r);
    r->t0 = now_seconds();
    r->dry_run = dry_run;
    config_init(&r->cfg, laic_config_keys, laic_config_nkeys);
    if (config_path && config_load_ini(&r->cfg, config_path)) return -1;
    for (int i = 0; i < n_over; i++)
        if (config_override(&r->cfg, overrides[i])) return -1;
    const char *dir = config_str(&r->cfg, "run", "dir");
    if (dir[0]) {
        snprintf(r->dir, sizeof r->dir, "%s", dir);
    } else {
        char ts[32];
        time_t now = time(NULL);
        strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", gmtime(&now));
        snprintf(r->dir, sizeof r->dir, "runs/%s-%s", config_str(&r->cfg, "run", "name"), ts);
    }
    struct stat st;
    if (!stat(r->dir, &st) && !dry_run)
        return laic_error("%s: run directory already exists ---> HINT: choose another run.dir or "
                          "run.name", r->dir);
    r->report = cJSON_CreateObject();
    r->timings = cJSON_CreateObject();
    r->methods = cJSON_CreateObject();
    r->cache = cJSON_CreateObject();
    r->files = cJSON_CreateObject();
    return 0;
}

void run_free(Run *r) {
    if (r->partial[0] && !r->keep_partial) run_rm_rf(r->partial);
    free(r->pl_y);
    free(r->pl_hq);
    if (r->resume) train_state_free(r->resume);
    free(r->resume);
    if (r->seic_free) r->seic_free(r->seic);
    clip_model_free(r->model);
    if (r->have_weights) clip_weights_free(&r->w);
    if (r->have_dfit) dataset_free(&r->dfit);
    if (r->have_deval) dataset_free(&r->deval);
    free(r->sel_fit);
    free(r->sel_eval);
    free(r->fit.X);
    free(r->fit.y);
    free(r->fit.item);
    if (!r->eval_is_fit) {
        free(r->eval.X);
        free(r->eval.y);
        free(r->eval.item);
    }
    for (int i = 0; i < r->n_classes && r->class_names; i++) free(r->class_names[i]);
    free(r->class_names);
    if (r->have_nouns) nouns_free(&r->nouns);
    else {
        for (size_t i = 0; i < r->Mn && r->noun_names; i++) free(r->noun_names[i]);
    }
    free(r->noun_names);
    free(r->noun_synset);
    free(r->T_all);
    free(r->cand);
    free(r->cand_info);
    free(r->T);
    cJSON_Delete(r->report);
    cJSON_Delete(r->timings);
    cJSON_Delete(r->methods);
    cJSON_Delete(r->cache);
    cJSON_Delete(r->files);
    free(r->log);
    config_free(&r->cfg);
    memset(r, 0, sizeof *r);
}

/* Cache path "<cache_dir>/<kind>-<first 16 hex of sha256(key)>.npy". */
void run_cache_path(Run *r, const char *kind, const char *key, const char *suffix, char *out, size_t n) {
    char hex[65];
    sha256_hex(key, strlen(key), hex);
    hex[16] = 0;
    snprintf(out, n, "%s/%s-%s%s.npy", config_str(&r->cfg, "run", "cache_dir"), kind, hex, suffix);
}

static int ensure_dir(const char *path) {
    struct stat st;
    if (!stat(path, &st)) return 0;
    if (mkdir(path, 0755)) return laic_error("%s: cannot create cache directory", path);
    return 0;
}

/* Records a stage's cache status in report.cache; "miss" wins over "hit" when a stage has
 * several parts (fit and eval splits), so "hit" means nothing was recomputed. */
void run_cache_status(Run *r, const char *stage, const char *status) {
    if (!r->cache) return;
    cJSON *o = cJSON_GetObjectItemCaseSensitive(r->cache, stage);
    if (!o) cJSON_AddStringToObject(r->cache, stage, status);
    else if (!strcmp(status, "miss")) cJSON_ReplaceItemInObjectCaseSensitive(r->cache, stage, cJSON_CreateString(status));
}

int run_cache_dir(Run *r) { return ensure_dir(config_str(&r->cfg, "run", "cache_dir")); }
