/*
 * pipeline.c — `laic run`: the upstream stages once, then the methods of eval.methods in
 * registry order, then report.json, config.ini and log.txt, and the rename of <dir>.partial to
 * the run directory (see run.h for what the directory holds).
 */
#include "run/pipeline.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "io/atomic.h"
#include "io/err.h"
#include "io/progress.h"
#include "run/methods/methods.h"

#ifndef LAIC_GIT_COMMIT
#define LAIC_GIT_COMMIT "unknown"
#endif

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
    if (select_methods(methods, want)) return -1;
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
        config_write(&r->cfg, stdout, 0);
        printf("\n; plan: %zu fit images, %zu eval images, K = %d; stages: weights, encode images,"
               " noun features, image centres, candidate nouns, ridge, k-means, kNN filter, "
               "metrics (%s)\n; run directory: %s\n", r->fit.N, r->eval.N, r->K, methods, r->dir);
        return 0;
    }
    snprintf(r->partial, sizeof r->partial, "%s.partial", r->dir);
    run_rm_rf(r->partial);
    if (run_mkdir_p(r->partial)) return -1;
    run_log(r, "run directory %s", r->dir);

    if (stage_weights(r) || stage_images(r) || stage_nouns(r) || stage_candidates(r)) return -1;
    for (size_t i = 0; i < laic_n_methods; i++)
        if (want[i] && laic_methods[i].run(r)) return -1;

    // --- report ---------------------------------------------------------------------------
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
    run_log(r, "done in %.1fs", now_seconds() - r->t0);
    if (write_text(r, "log.txt", r->log ? r->log : "")) return -1;
    if (rename(r->partial, r->dir))
        return laic_error("%s: cannot move the finished run into place: %s", r->dir, strerror(errno));
    r->partial[0] = 0;
    fprintf(stderr, "laic: run complete: %s\n", r->dir);
    return 0;
}
