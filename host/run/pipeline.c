/*
 * pipeline.c — `laic run`: the upstream stages once, then the methods of eval.methods in
 * registry order, then what report.html needs (eval labels, eval items, the images nearest each
 * cluster), report.json, config.ini, report.html and log.txt, and the rename of <dir>.partial
 * to the run directory (see run.h for what the directory holds).
 */
#include "run/pipeline.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster/cluster.h"
#include "comm.h"
#include "io/atomic.h"
#include "io/err.h"
#include "io/npy.h"
#include "io/progress.h"
#include "run/methods/methods.h"
#include "run/report_html.h"

#ifndef LAIC_GIT_COMMIT
#define LAIC_GIT_COMMIT "unknown"
#endif

const char *run_git_commit(void) { return LAIC_GIT_COMMIT; }

static int write_text(Run *r, const char *name, const char *text) {
    char path[2300];
    snprintf(path, sizeof path, "%s/%s", r->partial, name);
    return atomic_write_file(path, text, strlen(text));
}

static int write_config(Run *r) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) return laic_error("config.ini: out of memory");
    fprintf(f, "; laic resolved configuration — every key, with where its value came from.\n"
               "; Re-run with: laic run %s/config.ini\n\n", r->dir);
    config_write(&r->cfg, f, 1);
    fclose(f);
    int rc = write_text(r, "config.ini", buf);
    free(buf);
    return rc;
}

typedef struct { int64_t k; float s; int64_t i; } NearKey;
static int cmp_near(const void *a, const void *b) {
    const NearKey *x = a, *y = b;
    if (x->k != y->k) return x->k < y->k ? -1 : 1;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* The files report.html reads besides report.json (run.h): eval_labels.npy; for runs on images
 * eval_index.npy and cluster_nearest.npy: per cluster of the primary clustering
 * (report_primary_clustering), its eval rows by cosine to the cluster's normalised mean image
 * feature, most similar first (ties: lower row), report_montage_images(K) of them, -1 padded. */
static int write_report_inputs(Run *r) {
    char path[2300];
    const size_t ne = r->eval.N;
    size_t shape[2] = {ne, 0};
    snprintf(path, sizeof path, "%s/eval_labels.npy", r->partial);
    if (npy_write(path, NPY_I64, 1, shape, r->eval.y)) return -1;
    run_add_file(r, "eval_labels", "eval_labels.npy");
    run_add_file(r, "report_html", "report.html");   // written after report.json, from it
    if (!r->eval.item) return 0;   // precomputed features: no images to show
    snprintf(path, sizeof path, "%s/eval_index.npy", r->partial);
    if (npy_write(path, NPY_I64, 1, shape, r->eval.item)) return -1;
    run_add_file(r, "eval_index", "eval_index.npy");
    const char *names[64];
    int nm = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, r->methods) if (nm < 64 && m->string) names[nm++] = m->string;
    int64_t *pred;
    char method[64];
    int rc = report_primary_clustering(r->partial, names, nm, ne, &pred, method, sizeof method);
    if (rc <= 0) return rc;
    int64_t K = 0;
    for (size_t i = 0; i < ne; i++) K = pred[i] + 1 > K ? pred[i] + 1 : K;
    const int E = r->E, n = report_montage_images((int)K);
    float *cen = callocCheck((size_t)K * E, sizeof *cen);
    for (size_t i = 0; i < ne; i++)
        for (int e = 0; e < E; e++) cen[(size_t)pred[i] * E + e] += r->eval.X[i * E + e];
    l2normalize_rows_cpu(cen, cen, (int)K, E);
    NearKey *key = mallocCheck(ne * sizeof *key);
    for (size_t i = 0; i < ne; i++) {
        double s = 0;
        for (int e = 0; e < E; e++) s += (double)r->eval.X[i * E + e] * cen[(size_t)pred[i] * E + e];
        key[i] = (NearKey){pred[i], (float)s, (int64_t)i};
    }
    qsort(key, ne, sizeof *key, cmp_near);
    int64_t *near = mallocCheck((size_t)K * n * sizeof *near);
    for (size_t i = 0; i < (size_t)K * n; i++) near[i] = -1;
    for (size_t i = 0, j = 0; i < ne; i++) {
        j = i > 0 && key[i].k == key[i - 1].k ? j + 1 : 0;
        if (j < (size_t)n) near[(size_t)key[i].k * n + j] = key[i].i;
    }
    shape[0] = (size_t)K;
    shape[1] = (size_t)n;
    snprintf(path, sizeof path, "%s/cluster_nearest.npy", r->partial);
    rc = npy_write(path, NPY_I64, 2, shape, near);
    if (!rc) run_add_file(r, "cluster_nearest", "cluster_nearest.npy");
    free(near);
    free(key);
    free(cen);
    free(pred);
    return rc;
}

/* Marks the methods run_execute runs: those listed in eval.methods and, before them, what they
 * need. -1 with a message naming the first unknown name. */
static int select_methods(const char *list, unsigned char *want) {
    memset(want, 0, laic_n_methods);
    for (const char *p = list; *p;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        const Method *m = method_find(p, n);
        if (!m) {
            char known[512] = "";
            for (size_t i = 0; i < laic_n_methods; i++)
                snprintf(known + strlen(known), sizeof known - strlen(known), "%s%s", i ? ", " : "",
                         laic_methods[i].name);
            return laic_error("eval.methods: unknown method '%.*s' (known: %s)", (int)n, p, known);
        }
        for (; m; m = m->needs ? method_find(m->needs, strlen(m->needs)) : NULL)
            want[m - laic_methods] = 1;
        p = c ? c + 1 : p + n;
    }
    return 0;
}

int run_execute(Run *r) {
    const char *methods = config_str(&r->cfg, "eval", "methods");
    unsigned char want[64];
    if (laic_n_methods > sizeof want) return laic_error("internal: too many methods");
    if (select_methods(methods, want)) {
        char w[2400];
        return laic_error("%s: %s", run_key_where(r, "eval", "methods", w, sizeof w), laic_last_error());
    }
    // a method that is listed but switched off (e.g. "ours" without train.enabled) is skipped
    // with a note; its prepare step (a resumed run reads its checkpoint before .partial is
    // cleared) runs before any work, so a bad input fails at once
    for (size_t i = 0; i < laic_n_methods; i++) {
        const Method *m = &laic_methods[i];
        if (!want[i] || !m->enabled || m->enabled(r)) continue;
        want[i] = 0;
    }
    for (size_t i = 0; i < laic_n_methods; i++)
        if (want[i] && laic_methods[i].prepare && laic_methods[i].prepare(r)) return -1;

    if (stage_data(r)) return -1;
    // one backend for the whole run: the encoders (stage_weights) and the clustering drivers
    if (!(r->ops = ops_get(config_str(&r->cfg, "model", "device")))) return -1;
    cluster_set_backend(r->ops);
    if (r->dry_run) {
        if (!run_writer(r)) return 0;   // one plan on stdout, not one per rank
        config_write(&r->cfg, stdout, 0);
        printf("\n; plan: %zu fit images, %zu eval images, K = %d; stages: weights, encode images,"
               " noun features, image centres, candidate nouns, ridge, k-means, kNN filter, "
               "metrics (%s)\n; run directory: %s\n", r->fit.N, r->eval.N, r->K, methods, r->dir);
        return 0;
    }
    if (run_writer(r)) {
        snprintf(r->partial, sizeof r->partial, "%s.partial", r->dir);
        // run.dir is claimed (run_init), so a <dir>.partial here is from a run that was killed or
        // stopped (train.stop_after); a resume has already read its checkpoint (prepare, above)
        struct stat pst;
        if (!lstat(r->partial, &pst))
            run_log(r, "replacing %s, left by an earlier run of this run.dir that did not finish", r->partial);
        run_rm_rf(r->partial);
        if (run_mkdir_p(r->partial)) return -1;
    } else {   // ranks > 0 compute everything but write only here (removed by run_free)
        const char *tmp = getenv("TMPDIR");
        snprintf(r->partial, sizeof r->partial, "%s/laic-rank%d-XXXXXX", tmp && tmp[0] ? tmp : "/tmp",
                 r->rank);
        if (!mkdtemp(r->partial)) {
            int e = errno;
            r->partial[0] = 0;
            return laic_error("rank %d: cannot create a scratch directory under %s: %s", r->rank,
                              tmp && tmp[0] ? tmp : "/tmp", strerror(e));
        }
    }
    run_log(r, "run directory %s", r->dir);
    if (r->nranks > 1)
        run_log(r, "data parallel: %d ranks (%s); rank 0 writes the run directory and caches",
                r->nranks, comm_library());

    if (stage_weights(r) || stage_images(r) || stage_nouns(r) || stage_candidates(r)) return -1;
    for (size_t i = 0; i < laic_n_methods; i++)
        if (want[i] && laic_methods[i].run(r)) return -1;
    if (!run_writer(r)) return 0;   // rank 0 writes the report; the others are done

    // --- report ---------------------------------------------------------------------------
    const double t_report = now_seconds();   // report.html's cost: its inputs and the page
    if (write_report_inputs(r)) return -1;
    const double t_inputs = now_seconds() - t_report;
    cJSON *rep = r->report;
    cJSON_AddStringToObject(rep, "laic_git_commit", LAIC_GIT_COMMIT);
    cJSON_AddStringToObject(rep, "run_dir", r->dir);
    cJSON_AddStringToObject(rep, "device", r->ops ? r->ops->name : "cpu");
    cJSON *w = cJSON_AddObjectToObject(rep, "weights");
    cJSON_AddStringToObject(w, "path", config_str(&r->cfg, "model", "weights"));
    cJSON_AddStringToObject(w, "sha256", r->have_weights ? r->w.sha256 : "");
    cJSON_AddBoolToObject(w, "random_init", r->random_weights);
    cJSON_AddBoolToObject(w, "official_vit_b_32", r->have_weights && r->w.official_vit_b_32);
    cJSON *s = cJSON_AddObjectToObject(rep, "sizes");
    cJSON_AddNumberToObject(s, "n_fit", (double)r->fit.N);
    cJSON_AddNumberToObject(s, "n_eval", (double)r->eval.N);
    cJSON_AddNumberToObject(s, "n_bad_images_skipped", (double)r->n_bad_images);
    cJSON_AddNumberToObject(s, "K", r->K);
    cJSON_AddNumberToObject(s, "image_centres", r->kc);
    cJSON_AddNumberToObject(s, "nouns", (double)r->Mn);
    cJSON_AddNumberToObject(s, "candidate_nouns", (double)r->M);
    if (r->class_names)
        cJSON_AddItemToObject(rep, "class_names",
                              cJSON_CreateStringArray((const char *const *)r->class_names, r->n_classes));
    cJSON *data = cJSON_AddObjectToObject(rep, "data");
    if (r->have_dfit) {   // the eval split as opened (report.html re-opens it for its montages)
        const Dataset *d = r->eval_is_fit ? &r->dfit : &r->deval;
        cJSON_AddStringToObject(data, "kind", dataset_kind_name(d->kind));
        char real[4096];   // absolute, so `laic report` finds the images from any directory
        cJSON_AddStringToObject(data, "root", realpath(d->root, real) ? real : d->root);
        cJSON_AddStringToObject(data, "eval_split", d->split);
        cJSON_AddNumberToObject(data, "n_items", (double)d->n);
    } else {
        cJSON_AddStringToObject(data, "image_features", config_str(&r->cfg, "data", "image_features"));
    }
    cJSON *par = cJSON_AddObjectToObject(rep, "parallel");
    cJSON_AddNumberToObject(par, "ranks", r->nranks);
    cJSON_AddStringToObject(par, "mpi", comm_library());
    cJSON *seeds = cJSON_AddObjectToObject(rep, "seeds");
    cJSON_AddNumberToObject(seeds, "run", (double)config_int(&r->cfg, "run", "seed"));
    cJSON_AddItemReferenceToObject(rep, "methods", r->methods);
    run_add_file(r, "report", "report.json");
    run_add_file(r, "config", "config.ini");
    run_add_file(r, "log", "log.txt");
    cJSON_AddItemReferenceToObject(rep, "files", r->files);
    cJSON_AddItemReferenceToObject(rep, "cache", r->cache);
    cJSON_AddItemReferenceToObject(rep, "timings_s", r->timings);
    cJSON_AddNumberToObject(r->timings, "total", now_seconds() - r->t0);
    char *json = cJSON_Print(rep);
    size_t jl = strlen(json);
    char *jn = mallocCheck(jl + 2);
    memcpy(jn, json, jl);
    memcpy(jn + jl, "\n", 2);
    int rc = write_text(r, "report.json", jn);
    free(json);
    free(jn);
    if (rc || write_config(r)) return -1;
    // report.html from the files just written (the eval split is still open: no second decode)
    double t = now_seconds();
    ReportStats st;
    ReportOpts ro = {.dir = r->partial,
                     .eval_data = r->have_dfit ? (r->eval_is_fit ? &r->dfit : &r->deval) : NULL,
                     .stats = &st};
    if (report_html_write(&ro))
        run_log(r, "warning: report.html not written: %s (rebuild it with laic report %s)",
                laic_last_error(), r->dir);
    else
        run_log(r, "report.html: %d cluster panels, %d montages, %zu kB in %.2fs (%.2fs with its inputs)",
                st.panels, st.montages, st.bytes / 1024, now_seconds() - t, now_seconds() - t + t_inputs);
    run_log(r, "done in %.1fs", now_seconds() - r->t0);
    if (write_text(r, "log.txt", r->log ? r->log : "")) return -1;
    if (rename(r->partial, r->dir))
        return laic_error("%s: cannot move the finished run into place: %s", r->dir, strerror(errno));
    r->partial[0] = 0;
    // the rename reaches the disk too (every file inside was fsynced when it was written)
    if (fsync_parent(r->dir)) return -1;
    fprintf(stderr, "laic: run complete: %s\n", r->dir);
    return 0;
}
