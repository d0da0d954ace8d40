/* run.c — the Run's lifecycle and helpers: log, report entries, cache paths, directories (run.h). */
#include "run/run.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cluster/metrics.h"
#include "io/atomic.h"
#include "comm.h"
#include "io/err.h"
#include "io/hash.h"
#include "io/npy.h"
#include "io/progress.h"
#include "io/sha256.h"

void run_log(Run *r, const char *fmt, ...) {
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    // one voice: the job's rank 0 (a sweep's ranks log their own points into log.txt only)
    if (comm_world_rank() == 0) fprintf(stderr, "[%7.1fs] %s\n", now_seconds() - r->t0, line);
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

void run_log_line(void *ctx, const char *line) { run_log((Run *)ctx, "%s", line); }

cJSON *run_json_numbers(const double *v, int n, int stride, int off) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        const double x = v[(size_t)i * stride + off];
        cJSON_AddItemToArray(a, isnan(x) ? cJSON_CreateNull() : cJSON_CreateNumber(x));
    }
    return a;
}

uint64_t run_hash64(const void *data, size_t n, uint64_t seed) { return laic_hash64(data, n, seed); }

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
    ClusterMetrics cm;
    if (metrics_compute_labelled(&cm, pred, r->eval.y, r->eval.N)) return -1;
    if (cm.n == 0) {
        cJSON_AddStringToObject(m, "note", "no ground-truth labels: metrics not computed");
        run_log(r, "%-14s (no labels)", name);
        return 0;
    }
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

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    int rc = flag == FTW_DP ? rmdir(path) : unlink(path);
    if (rc && errno != ENOENT) fprintf(stderr, "laic: warning: could not remove %s: %s\n", path, strerror(errno));
    return 0;   // go on with the rest
}

void run_rm_rf(const char *path) {
    if (!path[0]) return;
    struct stat st;
    if (lstat(path, &st)) return;
    // no shell: a path may hold quotes or any other byte
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int run_normalize_dir(const char *path, char *out, size_t n, const char *what) {
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--;
    if (len == 0) return laic_error("%s directory: empty path", what);
    if (len >= n) return laic_error("%.200s...: %s directory path too long", path, what);
    memcpy(out, path, len);
    out[len] = 0;
    return 0;
}

// --- claims -----------------------------------------------------------------------------------

void run_claim_release(RunClaim *c) {
    if (c->fd < 0) return;
    // unlinked while still locked: a process that opened the old file sees it was replaced
    unlink(c->lock);
    close(c->fd);
    c->fd = -1;
}

static long claim_pid(int fd) {
    char b[64] = {0};
    ssize_t n = pread(fd, b, sizeof b - 1, 0);
    return n > 0 ? strtol(b, NULL, 10) : 0;
}

int run_claim(RunClaim *c, const char *dir, const char *what) {
    c->fd = -1;
    const char *other = !strcmp(what, "run") ? "run.dir or run.name" : "--dir";
    if (snprintf(c->lock, sizeof c->lock, "%s.lock", dir) >= (int)sizeof c->lock)
        return laic_error("%s: %s directory path too long", dir, what);
    char parent[2100];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = 0;
        if (run_mkdir_p(parent)) return -1;
    }
    for (int attempt = 0; attempt < 100; attempt++) {
        int fd = open(c->lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return laic_error("%s: cannot create the claim on %s directory %s: %s", c->lock, what,
                              dir, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;
            long pid = claim_pid(fd);
            close(fd);
            if (e == EWOULDBLOCK) {
                char who[96] = "another process";
                if (pid > 0)
                    snprintf(who, sizeof who, "laic pid %ld (%s)", pid,
                             kill((pid_t)pid, 0) == 0 || errno == EPERM ? "running" : "not running on this machine");
                return laic_error("%s: %s directory in use by %s, claim %s ---> HINT: wait for it to "
                                  "finish, or choose another %s", dir, what, who, c->lock, other);
            }
            return laic_error("%s: cannot lock %s: %s", dir, c->lock, strerror(e));
        }
        // the previous holder may have removed the file between our open and flock: then we hold
        // a lock on a deleted file, which claims nothing; try again with the current one
        struct stat a, b;
        if (fstat(fd, &a) || stat(c->lock, &b) || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
            close(fd);
            continue;
        }
        char line[64];
        int len = snprintf(line, sizeof line, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) || pwrite(fd, line, (size_t)len, 0) != len) {
            int e = errno;
            close(fd);
            unlink(c->lock);
            return laic_error("%s: cannot write the claim: %s", c->lock, strerror(e));
        }
        c->fd = fd;
        // claimed; a run that finished before we got here left its directory
        if (!lstat(dir, &a)) {
            run_claim_release(c);
            return laic_error("%s: %s directory already exists ---> HINT: choose another %s", dir,
                              what, other);
        }
        return 0;
    }
    return laic_error("%s: could not claim %s (it keeps being replaced)", dir, c->lock);
}

// --- data parallel ------------------------------------------------------------------------------

int run_agree(Run *r, int v) {
    if (r->nranks > 1) comm_broadcast_host(&v, sizeof v, 0);
    return v;
}

void run_bcast(Run *r, void *p, size_t bytes) {
    if (r->nranks > 1) comm_broadcast_host(p, bytes, 0);
}

void run_shard(const Run *r, size_t n, size_t align, size_t *lo, size_t *hi) {
    comm_shard(n, align, r->rank, r->nranks, lo, hi);
}

void run_gather_rows(Run *r, void *buf, size_t n, size_t align, size_t row_bytes) {
    if (r->nranks <= 1) return;
    size_t *counts = mallocCheck(sizeof(size_t) * (size_t)r->nranks);
    for (int q = 0; q < r->nranks; q++) {
        size_t lo, hi;
        comm_shard(n, align, q, r->nranks, &lo, &hi);
        counts[q] = (hi - lo) * row_bytes;
    }
    comm_allgather_host(buf, counts);
    free(counts);
}

int run_writer(const Run *r) { return r->rank == 0; }

/* Every rank of a job must run the same resolved config (a rank with another file or other
 * overrides would compute something else and the collectives would not match): the hash of the
 * resolved values (config.ini's text) is compared across ranks at start. */
static int run_check_same_config(Run *r) {
    if (r->nranks <= 1) return 0;
    char *txt = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&txt, &len);
    if (!f) return laic_error("config: out of memory");
    config_write(&r->cfg, f, 0);
    fclose(f);
    uint64_t *h = mallocCheck(sizeof(uint64_t) * (size_t)r->nranks);
    h[r->rank] = run_hash64(txt, len, 0x17);
    free(txt);
    size_t *counts = mallocCheck(sizeof(size_t) * (size_t)r->nranks);
    for (int q = 0; q < r->nranks; q++) counts[q] = sizeof(uint64_t);
    comm_allgather_host(h, counts);
    free(counts);
    int bad = -1;
    for (int q = 1; q < r->nranks && bad < 0; q++)
        if (h[q] != h[0]) bad = q;
    int rc = 0;
    if (bad >= 0)
        rc = laic_error("config: rank %d resolved a different configuration than rank 0 "
                        "(hash %016llx vs %016llx) ---> HINT: every rank must get the same CONFIG and "
                        "section.key=value arguments; compare laic run --dry-run on each node",
                        bad, (unsigned long long)h[bad], (unsigned long long)h[0]);
    free(h);
    return rc;
}

int run_init(Run *r, const char *config_path, int n_over, char **overrides, int dry_run) {
    memset(r, 0, sizeof *r);
    r->claim.fd = -1;
    r->t0 = now_seconds();
    r->dry_run = dry_run;
    config_init(&r->cfg, laic_config_keys, laic_config_nkeys);
    if (config_path) snprintf(r->config_path, sizeof r->config_path, "%s", config_path);
    if (config_path && config_load_ini(&r->cfg, config_path)) return -1;
    for (int i = 0; i < n_over; i++)
        if (config_override(&r->cfg, overrides[i])) return -1;
    r->rank = comm_rank();
    r->nranks = comm_size();
    if (run_check_same_config(r)) return -1;
    const char *dir = config_str(&r->cfg, "run", "dir");
    if (dir[0]) {
        // "out/" would put the work in "out/.partial" and could never be renamed to "out/"
        if (run_normalize_dir(dir, r->dir, sizeof r->dir, "run")) return -1;
    } else {
        char ts[32];
        time_t now = time(NULL);
        strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", gmtime(&now));
        snprintf(r->dir, sizeof r->dir, "runs/%s-%s", config_str(&r->cfg, "run", "name"), ts);
    }
    run_bcast(r, r->dir, sizeof r->dir);   // rank 0's clock names the directory
    // claimed before anything is computed: a second run with this run.dir fails here, at once,
    // and never touches this one's <dir>.partial. Rank 0 holds the claim for the job.
    if (run_agree(r, !dry_run && run_writer(r) && run_claim(&r->claim, r->dir, "run") ? -1 : 0))
        return r->rank == 0 ? -1
                            : laic_error("%s: rank 0 could not claim the run directory", r->dir);
    r->report = cJSON_CreateObject();
    r->timings = cJSON_CreateObject();
    r->methods = cJSON_CreateObject();
    r->cache = cJSON_CreateObject();
    r->files = cJSON_CreateObject();
    return 0;
}

void run_free(Run *r) {
    // a rank > 0's directory is private scratch: always removed
    if (r->partial[0] && (!r->keep_partial || r->rank > 0)) run_rm_rf(r->partial);
    run_claim_release(&r->claim);   // after the .partial is gone
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
    free(r->fit.norm);
    if (!r->eval_is_fit) {
        free(r->eval.X);
        free(r->eval.y);
        free(r->eval.item);
        free(r->eval.norm);
    }
    for (int i = 0; i < r->n_resume_blobs; i++) free(r->resume_blobs[i].data);
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
    r->claim.fd = -1;
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

// --- verified cache entries -------------------------------------------------------------------

#define CACHE_SUM_MAGIC "laic-cache-entry 1"
#define CACHE_HASH_SEED 0x6c61696363616368ull   // "laiccach"

/* The sidecar's text for an entry: the key (escaped to one line), dtype, shape, content hash. */
static char *cache_sum_text(const char *key, NpyDtype dtype, int ndim, const size_t *shape,
                            const void *data) {
    size_t count = 1;
    for (int i = 0; i < ndim; i++) count *= shape[i];
    uint64_t h = laic_hash64(data, count * npy_dtype_size(dtype), CACHE_HASH_SEED);
    size_t kl = strlen(key), cap = 4 * kl + 512, o = 0;
    char *t = mallocCheck(cap);
    o += (size_t)snprintf(t + o, cap - o, "%s\nkey ", CACHE_SUM_MAGIC);
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)   // one line, reversible
        o += (size_t)(*p >= 0x20 && *p < 0x7f && *p != '\\' ? snprintf(t + o, cap - o, "%c", *p)
                                                             : snprintf(t + o, cap - o, "\\x%02x", *p));
    o += (size_t)snprintf(t + o, cap - o, "\ndtype %s\nshape", npy_dtype_name(dtype));
    for (int i = 0; i < ndim; i++) o += (size_t)snprintf(t + o, cap - o, " %zu", shape[i]);
    snprintf(t + o, cap - o, "\nhash %016llx\n", (unsigned long long)h);
    return t;
}

static void sum_path(const char *path, char *out, size_t n) { snprintf(out, n, "%s.sum", path); }

void run_cache_reject(Run *r, const char *what, const char *path, const char *why, Npy *a) {
    if (a) npy_free(a);
    if (run_writer(r)) {   // the cache is rank 0's to change
        char sp[2300];
        sum_path(path, sp, sizeof sp);
        unlink(sp);   // the sidecar first: an entry without one is never used
        unlink(path);
    }
    run_log(r, "warning: %s cache %s failed its check (%s); recomputing", what, path, why);
}

static int cache_load_here(Run *r, const char *what, const char *path, const char *key, Npy *out);

/* Data parallel: rank 0 decides hit or miss (it verifies the entry and rejects a bad one); on a
 * hit every other rank loads and verifies the same file (run.cache_dir is shared). A rank that
 * cannot is a broken setup, not a miss: the ranks would no longer compute the same thing, so it
 * ends the job with its message. */
int run_cache_load(Run *r, const char *what, const char *path, const char *key, Npy *out) {
    if (r->nranks <= 1) return cache_load_here(r, what, path, key, out);
    const int hit0 = run_writer(r) ? cache_load_here(r, what, path, key, out) : 0;
    if (!run_agree(r, hit0)) {
        if (!run_writer(r)) memset(out, 0, sizeof *out);
        return 0;
    }
    if (!run_writer(r) && !cache_load_here(r, what, path, key, out)) {
        fprintf(stderr, "laic: rank %d/%d: %s: cannot read this %s cache entry, which rank 0 found "
                        "and verified ---> HINT: run.cache_dir must be a directory every rank sees "
                        "(a shared filesystem)\n", r->rank, r->nranks, path, what);
        comm_abort(1);
    }
    return 1;
}

static int cache_load_here(Run *r, const char *what, const char *path, const char *key, Npy *out) {
    memset(out, 0, sizeof *out);
    char sp[2300];
    sum_path(path, sp, sizeof sp);
    struct stat st;
    const int have = !stat(path, &st), have_sum = !stat(sp, &st);
    if (!have && !have_sum) return 0;   // a plain miss
    if (!have || !have_sum) {
        run_cache_reject(r, what, path, have ? "no checksum sidecar" : "data file missing", NULL);
        return 0;
    }
    size_t n = 0;
    char *sum = NULL;
    FILE *f = fopen(sp, "rb");
    if (f) {
        sum = mallocCheck(65536);
        n = fread(sum, 1, 65535, f);
        sum[n] = 0;
        fclose(f);
    }
    if (!sum || n == 65535) {
        free(sum);
        run_cache_reject(r, what, path, "unreadable checksum sidecar", NULL);
        return 0;
    }
    if (npy_read(path, out)) {
        char why[1200];
        snprintf(why, sizeof why, "%s", laic_last_error());
        free(sum);
        run_cache_reject(r, what, path, why, NULL);
        return 0;
    }
    char *want = cache_sum_text(key, out->dtype, out->ndim, out->shape, out->data);
    // the first line that differs says why: magic, key, dtype, shape or content hash
    const char *why = NULL;
    if (strcmp(sum, want)) {
        const char *a = sum, *b = want;
        while (*a && *a == *b) a++, b++;
        while (a > sum && a[-1] != '\n') a--;
        why = !strncmp(a, "key ", 4) ? "made under another key"
            : !strncmp(a, "dtype ", 6) ? "dtype differs from its checksum record"
            : !strncmp(a, "shape", 5) ? "shape differs from its checksum record"
            : !strncmp(a, "hash ", 5) ? "content hash mismatch: the data changed"
            : "not a laic cache checksum";
    }
    free(sum);
    free(want);
    if (why) {
        run_cache_reject(r, what, path, why, out);
        return 0;
    }
    return 1;
}

void run_cache_store(Run *r, const char *what, const char *path, const char *key, NpyDtype dtype,
                     int ndim, const size_t *shape, const void *data) {
    if (!run_writer(r)) return;   // rank 0 writes the caches
    char sp[2300];
    sum_path(path, sp, sizeof sp);
    unlink(sp);   // the old entry is invalid from here on, whatever happens below
    char *text = cache_sum_text(key, dtype, ndim, shape, data);
    if (run_cache_dir(r) || npy_write(path, dtype, ndim, shape, data) ||
        atomic_write_file(sp, text, strlen(text)))
        run_log(r, "warning: %s cache not written: %s", what, laic_last_error());
    free(text);
}

const char *run_key_where(const Run *r, const char *section, const char *key, char *buf, size_t n) {
    const char *o = config_origin(&r->cfg, section, key);
    if (strcmp(o, "default")) snprintf(buf, n, "%s", o);
    else if (r->config_path[0]) snprintf(buf, n, "%s (%s.%s not set: default)", r->config_path, section, key);
    else snprintf(buf, n, "%s.%s (default)", section, key);
    return buf;
}

int run_resume_read(Run *r, const char *name) {
    const char *dir = config_str(&r->cfg, "run", "resume");
    if (!dir[0]) return 0;
    char path[2300];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (stat(path, &st)) snprintf(path, sizeof path, "%s.partial/%s", dir, name);
    if (stat(path, &st)) return 0;
    if (r->n_resume_blobs >= RUN_MAX_BLOBS) return laic_error("%s: too many checkpoints to resume", path);
    FILE *f = fopen(path, "rb");
    if (!f) return laic_error("%s: cannot open checkpoint", path);
    RunBlob *b = &r->resume_blobs[r->n_resume_blobs];
    b->n = (size_t)st.st_size;
    b->data = mallocCheck(b->n ? b->n : 1);
    const int ok = fread(b->data, 1, b->n, f) == b->n;
    fclose(f);
    if (!ok) {
        free(b->data);
        b->data = NULL;
        return laic_error("%s: read failed", path);
    }
    snprintf(b->name, sizeof b->name, "%s", name);
    r->n_resume_blobs++;
    run_log(r, "resume: %s (%zu bytes)", path, b->n);
    return 1;
}

const RunBlob *run_resume_blob(const Run *r, const char *name) {
    for (int i = 0; i < r->n_resume_blobs; i++)
        if (!strcmp(r->resume_blobs[i].name, name)) return &r->resume_blobs[i];
    return NULL;
}

int run_resume_restore(Run *r, const char *name, const char *path, const char *who) {
    const RunBlob *blob = run_resume_blob(r, name);
    if (blob) return atomic_write_file(path, blob->data, blob->n) ? -1 : 1;
    if (config_str(&r->cfg, "run", "resume")[0])
        run_log(r, "%s: run.resume has no %s: training from the start", who, name);
    return 0;
}

float *run_raw_features(Run *r, const FeatureSet *fs) {
    if (!fs->norm) {
        laic_error("%s: the image features were cached before laic kept their norms, so the raw "
                   "features are unknown ---> HINT: delete the img-* files in run.cache_dir to "
                   "re-encode", config_str(&r->cfg, "run", "cache_dir"));
        return NULL;
    }
    const int E = r->E;
    float *X = mallocCheck((fs->N ? fs->N : 1) * (size_t)E * sizeof *X);
    for (size_t i = 0; i < fs->N; i++)
        for (int e = 0; e < E; e++)
            X[i * E + e] = (float)((double)fs->X[i * E + e] * fs->norm[i]);
    return X;
}
