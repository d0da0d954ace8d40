/*
 * run.h — the state of one `laic run` (SPEC §4–8) and the helpers every stage and method uses:
 * the log, report.json, cache paths and statuses, the run directory.
 *
 * Layering inside host/run/: run.h (this: state + helpers) ← stages.h (the pipeline's stages)
 * ← methods/methods.h (one file per method, one registry) ← pipeline.h (run_execute: stages
 * and methods in order). Nothing includes upward, so a method never depends on the driver.
 *
 * A run is written into "<dir>.partial/" and renamed to <dir> only when every file is complete,
 * so a failed run leaves no run directory behind. Every file inside is written atomically and
 * fsynced (io/atomic.h); the final rename is fsynced in the parent directory. run.dir is claimed
 * at start (RunClaim below): a second run with the same run.dir fails at once and never touches
 * the first one's files. A trailing '/' of run.dir is dropped.
 * Directory contents: config.ini (fully resolved, loads back unchanged), report.json (metrics
 * per method, pseudo-label quality before/after the kNN filter, sizes, per-stage timings, seeds,
 * weights hash, git commit, device, class names, the eval dataset's kind/root/split, and
 * "files": every file below by role), predictions/<method>.npy (int64 [N_eval], the eval-split
 * labels of every method that ran — exactly what its metrics were computed from; written by
 * run_report_method), candidates.tsv (the candidate nouns: noun, synset offset, centre,
 * confidence, cosine, bank row), assignments.npy (int64 [N_eval], Ours no-train: the same array
 * as predictions/ours-notrain.npy, kept for older scripts), clusters.tsv (per cluster: size,
 * majority class, nearest candidate nouns), log.txt, and what report.html needs to be rebuilt
 * by `laic report` (run/report_html.h): eval_labels.npy (int64 [N_eval], -1 unknown),
 * eval_index.npy (int64 [N_eval], the dataset item of each eval row; not for precomputed
 * features), cluster_nearest.npy (int64 [K, n], per cluster the eval rows nearest its mean image
 * feature, -1 padded; not for precomputed features), then report.html itself.
 *
 * Every cache entry is a .npy file with a sidecar "<entry>.npy.sum" holding the key that made it,
 * its dtype, shape and a 64-bit content hash (run_cache_load / run_cache_store). An entry that
 * fails any check (missing or other key, hash, shape, an index out of range) is never used: a
 * one-line warning, the stage recomputes, and the entry is replaced.
 *
 * Stages read and write plain arrays; image and noun features are cached on disk
 * (run.cache_dir) under keys built from every input they depend on (weights sha256, dataset
 * path/kind/split/subsample/seed, image size, precision), so re-runs never re-encode. The
 * candidate set (image centres → top-γ nouns) is cached under a key of a content hash of the
 * fit features and the noun bank plus every centre setting, seed, γ and nouns.rank, so runs that differ
 * only downstream (λ, K, kNN k: `laic sweep`) skip it. report.json's "cache" object says, per
 * upstream stage, whether it was a cache "hit", a "miss" (computed), or "precomputed" input.
 * The baselines that do not depend on the ridge/kNN settings (clip-kmeans, tac) cache their
 * eval predictions the same way, so a λ or kNN-k sweep reruns only ridge, k-means, the filter.
 *
 * Dimension letters: N images (Nf fit split, Ne eval split), E embed dim, Mn nouns in the bank,
 * M candidate nouns, K clusters, kc image centres.
 */
#ifndef LAIC_RUN_H
#define LAIC_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "model/clip.h"
#include "run/config.h"
#include "data/data.h"
#include "data/nouns.h"
#include "io/npy.h"
#include "train/train.h"

typedef struct cJSON cJSON;

typedef struct {
    float *X;              // (N,E) L2-normalised image features
    int64_t *y;            // (N) true labels, -1 unknown
    int64_t *item;         // (N) dataset item of each row (after subsample and skipped images);
                           // NULL for precomputed features
    float *norm;           // (N) L2 norm of each row before normalisation (the raw features are
                           // X·norm, SIC's input); NULL when unknown (an older image cache)
    size_t N;
} FeatureSet;

/* The claim on a run or sweep directory: an exclusive flock(2) on "<dir>.lock", which holds the
 * claimer's pid. The kernel drops the lock when its process ends, even by kill -9, so a killed
 * run never leaves a claim that blocks the next one; the next one finds its "<dir>.partial" and
 * may resume from it (run.resume) or replaces it. */
typedef struct {
    int fd;                // -1 = not held
    char lock[2100];       // "<dir>.lock"
} RunClaim;

/* Claims dir ("run" or "sweep" directory, for messages): -1 with a one-line error when another
 * live process holds it (naming its pid and the lock file) or the lock cannot be created. Parent
 * directories are created. Then checks that dir itself does not exist yet (a finished run). */
int run_claim(RunClaim *c, const char *dir, const char *what);
/* Releases the claim and removes the lock file (safe when not held). */
void run_claim_release(RunClaim *c);
/* Copies path into out (size n) without trailing '/' ("/" stays "/"); -1 when empty or too long. */
int run_normalize_dir(const char *path, char *out, size_t n, const char *what);
/* A file a method's prepare step read from run.resume before .partial was cleared. */
typedef struct {
    char name[64];
    void *data;
    size_t n;
} RunBlob;
#define RUN_MAX_BLOBS 4

typedef struct Run {
    Config cfg;
    char config_path[2048]; // the INI file given to run_init ("" = none), for messages
    RunClaim claim;        // held from run_init to run_free (not for a dry run)
    char dir[2048];        // final run directory
    char partial[2100];    // where files are written until the run completes
    int dry_run;
    // log
    char *log;             // log.txt contents
    size_t log_len, log_cap;
    // report
    cJSON *report, *timings, *methods;
    cJSON *cache;          // report.cache: per upstream stage "hit" | "miss" | "precomputed"
    cJSON *files;          // report.files: role → path inside the run directory (run_add_file)
    double t0;
    // model
    const OpsBackend *ops;
    ClipWeights w;
    int have_weights, random_weights;
    ClipModel *model;
    // data
    Dataset dfit, deval;   // opened datasets (deval unused when eval_is_fit)
    size_t *sel_fit, *sel_eval; // (N) dataset indices kept (subsample), NULL = all
    int have_dfit, have_deval;
    FeatureSet fit, eval;  // eval.X may alias fit.X (same split): eval_is_fit
    int eval_is_fit;
    int n_classes;
    char **class_names;    // (n_classes) or NULL
    size_t n_bad_images;
    // nouns
    char **noun_names;     // (Mn) prompt texts
    uint32_t *noun_synset; // (Mn) WordNet synset offset of each bank row; NULL when precomputed
    size_t Mn;
    float *T_all;          // (Mn,E) normalised noun features
    Nouns nouns;
    int have_nouns;
    // derived
    int E;                 // feature width (embed dim, or the precomputed features' width)
    int K, kc, knn_k;
    int64_t *cand;         // (M) candidate noun indices into T_all (sorted)
    double *cand_info;     // (M,3) per candidate, in cand's order: centre, confidence P, cosine
    size_t M;
    const char *ridge_form;   // the form stage_ridge used: "primal", "dual" or "reduced"
    float *T;              // (M,E) candidate features
    // prompt learning (methods/rsc_train.c)
    int64_t *pl_y;         // (Nf) pseudo-labels ŷ of the fit split, left by ours-notrain
    uint8_t *pl_hq;        // (Nf) high-quality mask of the kNN filter, left by ours-notrain
    TrainState *resume;    // run.resume's checkpoint, read before .partial is cleared
    int keep_partial;      // 1: run_free keeps <dir>.partial (train.stop_after)
    // SEIC (methods/seic.c): what "seic-stage1" leaves for "seic" and run.resume's SEIC
    // checkpoints; the method owns it and sets seic_free, which run_free calls
    void *seic;
    void (*seic_free)(void *seic);
    // data parallel (host/comm.h): this process's rank of the job's nranks (1 without mpirun).
    // Every rank runs every stage; stages split their rows over the ranks and gather them, so
    // each rank holds the one-process result. Rank 0 alone writes the run directory and the
    // caches (ranks > 0 write into a private temporary directory, removed at the end).
    int rank, nranks;
    // trained heads (methods/sic.c, methods/tac_train.c)
    int need_text_encoder; // a method's prepare step asks stage_weights for the text encoder
    RunBlob resume_blobs[RUN_MAX_BLOBS];   // checkpoints read from run.resume (run_resume_read)
    int n_resume_blobs;
} Run;

/* Lifecycle (host/run/run.c): run_init resolves the config (defaults < INI < overrides) and
 * checks that the run directory is free; run_free releases everything and removes
 * <dir>.partial if the run did not complete. run_execute (host/run/pipeline.h) runs the stages. */
int run_init(Run *r, const char *config_path, int n_over, char **overrides, int dry_run);
void run_free(Run *r);
/* rm -rf path, without a shell (no-op when missing; a warning when it cannot be removed). */
void run_rm_rf(const char *path);

/* 64-bit content hash of a buffer (cache keys; not cryptographic, fast enough for 10^8 bytes). */
uint64_t run_hash64(const void *data, size_t n, uint64_t seed);

/* Records a stage's cache status in report.cache ("hit" | "miss" | "precomputed"; a "miss"
 * overrides an earlier "hit" of the same stage). */
void run_cache_status(Run *r, const char *stage, const char *status);
/* "<run.cache_dir>/<kind>-<first 16 hex of sha256(key)><suffix>.npy". */
void run_cache_path(Run *r, const char *kind, const char *key, const char *suffix, char *out, size_t n);
/* Creates run.cache_dir if missing. */
int run_cache_dir(Run *r);
/* Reads a cache entry made under `key` (`what` names it in the warning): 1 = usable, *out filled
 * (npy_free it); 0 = compute it (absent: silently; present but failing its check: one warning
 * line and the entry is removed). Checks: the sidecar exists and holds this key, the file reads,
 * and its dtype, shape and content hash are those the sidecar records. The caller then checks
 * what it knows (expected shape, index ranges) and calls run_cache_reject on a failure. */
int run_cache_load(Run *r, const char *what, const char *path, const char *key, Npy *out);
/* Warns (one line: the entry, why, "recomputing"), removes the entry and its sidecar, frees a. */
void run_cache_reject(Run *r, const char *what, const char *path, const char *why, Npy *a);
/* Writes an entry and its sidecar (atomically, both fsynced); a failure is a warning in the log,
 * not an error (the run goes on without the cache). */
void run_cache_store(Run *r, const char *what, const char *path, const char *key, NpyDtype dtype,
                     int ndim, const size_t *shape, const void *data);
/* Where a config key got its value, for messages: "FILE:LINE", "override 'x.y=z'", or
 * "CONFIG (default)" / "default" when nothing set it. */
const char *run_key_where(const Run *r, const char *section, const char *key, char *buf, size_t n);

/* mkdir -p (mode 0755); -1 with "<dir>: cannot create: <reason>" recorded (run and sweep dirs). */
int run_mkdir_p(const char *path);

/* Log a line to stderr and log.txt (printf-style). */
void run_log(Run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* run_log of one line, as a library's log callback (the log / log_ctx of the trainers' options):
 * ctx is the Run. */
void run_log_line(void *ctx, const char *line);
/* A JSON array of v[i·stride + off], i < n, NaN as null (an epoch not run). */
cJSON *run_json_numbers(const double *v, int n, int stride, int off);
/* Adds a stage's wall time (seconds) to report.timings. */
void run_time(Run *r, const char *stage, double seconds);
/* Records a method's metrics on the eval split into report.methods (pred (Ne) int64) and, in a
 * run with a directory, writes pred to predictions/<name>.npy (named in report.files.predictions
 * and report.methods.<name>.predictions). Every method reports through here, so every method
 * that ran leaves its predictions. */
int run_report_method(Run *r, const char *name, const int64_t *pred);
/* Data parallel helpers (host/comm.h collectives on host memory; with one rank they do nothing):
 *   run_agree       rank 0's v on every rank (cache hit/miss decisions are rank 0's)
 *   run_bcast       rank 0's bytes on every rank
 *   run_shard       this rank's rows [lo, hi) of n, cut at multiples of align (comm_shard): a
 *                   stage that splits its work at the blocks of its one-process loop (a batch,
 *                   a chunk) computes every block exactly as one process would
 *   run_gather_rows buf (n rows of row_bytes): every rank's shard (run_shard with the same n,
 *                   align) filled on return
 *   run_writer      1 on the rank that writes the run directory and the caches (rank 0) */
int run_agree(Run *r, int v);
void run_bcast(Run *r, void *p, size_t bytes);
void run_shard(const Run *r, size_t n, size_t align, size_t *lo, size_t *hi);
void run_gather_rows(Run *r, void *buf, size_t n, size_t align, size_t row_bytes);
int run_writer(const Run *r);
/* run.resume's copy of a method's checkpoint `name`: DIR/name, else DIR.partial/name (a stopped
 * or killed run), read into memory by the method's prepare step (before the new run clears its
 * own .partial, so a run may resume into the directory it was stopped in). 1 = found, 0 = none
 * (or run.resume unset), -1 = unreadable (error recorded). run_resume_blob finds it later. */
int run_resume_read(Run *r, const char *name);
const RunBlob *run_resume_blob(const Run *r, const char *name);
/* run.resume's checkpoint `name` written back to path (in this run's directory) for a trainer to
 * continue from: 1 when written, 0 when there is none ("<who>: run.resume has no <name>:
 * training from the start" logged when run.resume is set), -1 when the write fails. */
int run_resume_restore(Run *r, const char *name, const char *path, const char *who);
/* Raw (unnormalised) features of a FeatureSet: X·norm row by row, (N,E) malloc'd; NULL with an
 * error naming the image cache when the norms are unknown. */
float *run_raw_features(Run *r, const FeatureSet *fs);

/* Names a file of the run directory in report.json's "files" object: key → path relative to
 * the run directory (a later call with the same key replaces it). */
void run_add_file(Run *r, const char *key, const char *path);

#endif
