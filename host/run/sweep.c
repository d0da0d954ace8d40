/*
 * sweep.c — `laic sweep` (sweep.h): spec parsing and validation, running the points (in this
 * process, or as parallel `laic run` child processes with --jobs), and the result tables
 * sweep.csv, sweep_summary.csv (mean ± std over run.seed) and sweep.json, and sweep.html drawn
 * from sweep.json (run/report_html.h).
 *
 * Points never share memory state: what they share is the on-disk stage caches keyed by each
 * stage's inputs (image features, noun features, candidate set; see run.h), so a λ sweep
 * recomputes only ridge, k-means and the kNN filter per point, and a point's numbers are
 * exactly those of a lone `laic run` with the same settings.
 */
#include "run/sweep.h"

#include <cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "comm.h"
#include "run/config.h"
#include "io/atomic.h"
#include "io/err.h"
#include "run/pipeline.h"
#include "run/report_html.h"
#include "run/run.h"

// --- spec ----------------------------------------------------------------------------------

void sweep_spec_init(SweepSpec *s) { memset(s, 0, sizeof *s); }

static void free_strs(char **v, int n) {
    for (int i = 0; i < n && v; i++) free(v[i]);
    free(v);
}

void sweep_spec_free(SweepSpec *s) {
    for (int i = 0; i < s->naxes; i++) free_strs(s->axes[i].values, s->axes[i].nvalues);
    free(s->axes);
    free_strs(s->over, s->nover);
    free_strs(s->over_where, s->nover);
    memset(s, 0, sizeof *s);
}

static char *trim(char *p) {
    while (isspace((unsigned char)*p)) p++;
    size_t n = strlen(p);
    while (n && isspace((unsigned char)p[n - 1])) p[--n] = 0;
    return p;
}

static void push(char ***v, int *n, const char *x) {
    char **p = realloc(*v, (size_t)(*n + 1) * sizeof **v);
    if (!p) {
        fprintf(stderr, "laic: out of memory\n");
        exit(1);
    }
    *v = p;
    (*v)[(*n)++] = strdup(x);
}

/* "a..b" with integers a <= b → 1 and the bounds; anything else → 0 (a plain value). */
static int parse_range(const char *t, long long *a, long long *b) {
    const char *dots = strstr(t, "..");
    if (!dots || dots == t) return 0;
    char *end;
    errno = 0;
    *a = strtoll(t, &end, 10);
    if (end != dots || errno) return 0;
    *b = strtoll(dots + 2, &end, 10);
    return !*end && !errno && end != dots + 2;
}

#define SWEEP_MAX_VALUES 100000

int sweep_parse_values(const char *text, const char *where, char ***out, int *n) {
    *out = NULL;
    *n = 0;
    char *buf = strdup(text);
    const char sep = strchr(buf, '|') ? '|' : ',';
    int rc = 0;
    for (char *p = buf; p && !rc;) {
        char *q = strchr(p, sep);
        if (q) *q = 0;
        char *item = trim(p);
        long long a, b;
        if (!*item) {
            rc = laic_error("%s: empty value in the list '%s'", where, text);
        } else if (parse_range(item, &a, &b)) {
            if (b < a || b - a >= SWEEP_MAX_VALUES)
                rc = laic_error("%s: bad range '%s' (need a..b with a <= b, at most %d values)", where,
                                item, SWEEP_MAX_VALUES);
            for (long long v = a; !rc && v <= b; v++) {
                char t[32];
                snprintf(t, sizeof t, "%lld", v);
                push(out, n, t);
            }
        } else {
            push(out, n, item);
        }
        p = q ? q + 1 : NULL;
    }
    free(buf);
    if (rc) {
        free_strs(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

/* "section.key" → section, key; 0 on success. */
static int split_key(const char *name, char *sec, size_t ns, char *key, size_t nk) {
    const char *dot = strchr(name, '.');
    if (!dot || dot == name || !dot[1] || (size_t)(dot - name) >= ns || strlen(dot + 1) >= nk) return -1;
    snprintf(sec, ns, "%.*s", (int)(dot - name), name);
    snprintf(key, nk, "%s", dot + 1);
    return 0;
}

/* One [sweep] entry: an option (mode, name) or an axis "section.key = values". */
static int spec_entry(SweepSpec *s, const char *name, const char *value, const char *where) {
    if (!strcmp(name, "mode")) {
        if (strcmp(value, "grid") && strcmp(value, "zip"))
            return laic_error("%s: sweep.mode: '%s' is not one of grid|zip", where, value);
        s->zip = !strcmp(value, "zip");
        return 0;
    }
    if (!strcmp(name, "name")) {
        if (!*value || strlen(value) >= sizeof s->name || strchr(value, '/'))
            return laic_error("%s: sweep.name: '%s' is empty, too long or has a '/'", where, value);
        snprintf(s->name, sizeof s->name, "%s", value);
        return 0;
    }
    SweepAxis a;
    memset(&a, 0, sizeof a);
    if (split_key(name, a.section, sizeof a.section, a.key, sizeof a.key))
        return laic_error("%s: '%s' is not a sweep option (mode, name) or a section.key axis", where, name);
    for (int i = 0; i < s->naxes; i++)
        if (!strcmp(s->axes[i].section, a.section) && !strcmp(s->axes[i].key, a.key))
            return laic_error("%s: %s is swept twice (first at %s)", where, name, s->axes[i].where);
    if ((!strcmp(a.section, "run") && (!strcmp(a.key, "dir") || !strcmp(a.key, "resume"))))
        return laic_error("%s: %s cannot be swept (each point gets its own run directory)", where, name);
    snprintf(a.where, sizeof a.where, "%s", where);
    if (sweep_parse_values(value, where, &a.values, &a.nvalues)) return -1;
    SweepAxis *p = realloc(s->axes, (size_t)(s->naxes + 1) * sizeof *p);
    if (!p) return laic_error("%s: out of memory", where);
    s->axes = p;
    s->axes[s->naxes++] = a;
    return 0;
}

int sweep_spec_load(SweepSpec *s, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return laic_error("%s: cannot open sweep file: %s", path, strerror(errno));
    char *line = NULL, section[64] = "", where[600];
    size_t cap = 0;
    int lineno = 0, rc = 0;
    while (!rc && getline(&line, &cap, f) >= 0) {
        lineno++;
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        char *p = trim(line);
        if (!*p || *p == ';' || *p == '#') continue;
        if (*p == '[') {
            char *e = strchr(p, ']');
            if (!e || e[1] || e - p - 1 <= 0 || (size_t)(e - p - 1) >= sizeof section) {
                rc = laic_error("%s: bad section header '%s'", where, p);
                break;
            }
            snprintf(section, sizeof section, "%.*s", (int)(e - p - 1), p + 1);
            continue;
        }
        char *eq = strchr(p, '=');
        if (!eq) {
            rc = laic_error("%s: expected [section] or key = value", where);
            break;
        }
        *eq = 0;
        for (char *c = eq + 1; *c; c++)   // inline comment after whitespace, as libinih reads them
            if ((*c == ';' || *c == '#') && isspace((unsigned char)c[-1])) {
                *c = 0;
                break;
            }
        char *name = trim(p), *value = trim(eq + 1);
        if (!section[0]) {
            rc = laic_error("%s: key '%s' outside any [section]", where, name);
        } else if (!strcmp(section, "sweep")) {
            rc = spec_entry(s, name, value, where);
        } else {   // a plain override of every point; validated by sweep_validate
            char a[2048];
            if ((size_t)snprintf(a, sizeof a, "%s.%s=%s", section, name, value) >= sizeof a) {
                rc = laic_error("%s: line too long", where);
                break;
            }
            push(&s->over, &s->nover, a);
            s->nover--;
            push(&s->over_where, &s->nover, where);
        }
    }
    free(line);
    fclose(f);
    return rc;
}

int sweep_spec_arg(SweepSpec *s, const char *arg) {
    char where[600];
    snprintf(where, sizeof where, "argument '%.500s'", arg);
    const char *eq = strchr(arg, '=');
    if (strncmp(arg, "sweep.", 6) || !eq) return laic_error("%s: expected sweep.section.key=values", where);
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(eq - arg - 6), arg + 6);
    return spec_entry(s, name, eq + 1, where);
}

size_t sweep_npoints(const SweepSpec *s) {
    if (!s->naxes) return 0;
    size_t n = s->zip ? (size_t)s->axes[0].nvalues : 1;
    if (!s->zip)
        for (int i = 0; i < s->naxes; i++) n *= (size_t)s->axes[i].nvalues;
    return n;
}

void sweep_point(const SweepSpec *s, size_t p, int *idx) {
    if (s->zip) {
        for (int i = 0; i < s->naxes; i++) idx[i] = (int)p;
        return;
    }
    for (int i = s->naxes - 1; i >= 0; i--) {   // last axis varies fastest
        idx[i] = (int)(p % (size_t)s->axes[i].nvalues);
        p /= (size_t)s->axes[i].nvalues;
    }
}

// --- validation ----------------------------------------------------------------------------

#define SWEEP_MAX_POINTS 10000

/* Base config: CONFIG < command-line overrides < SWEEP.ini overrides (file:line errors). */
static int base_config(Config *c, const SweepSpec *s, const SweepOpts *o) {
    config_init(c, laic_config_keys, laic_config_nkeys);
    if (o->config && config_load_ini(c, o->config)) return -1;
    for (int i = 0; i < o->nover; i++)
        if (config_override(c, o->over[i])) return -1;
    for (int i = 0; i < s->nover; i++) {
        char sec[64], key[64];
        const char *eq = strchr(s->over[i], '=');
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(eq - s->over[i]), s->over[i]);
        if (split_key(name, sec, sizeof sec, key, sizeof key))
            return laic_error("%s: bad key '%s'", s->over_where[i], name);
        if (!strcmp(sec, "run") && !strcmp(key, "dir"))
            return laic_error("%s: run.dir is set per point by the sweep ---> HINT: use --dir", s->over_where[i]);
        if (config_set(c, sec, key, eq + 1, s->over_where[i])) return -1;
    }
    return 0;
}

int sweep_validate(const SweepSpec *s, const SweepOpts *o) {
    if (!s->naxes)
        return laic_error("sweep: no axes ---> HINT: give a SWEEP.ini with a [sweep] section or "
                          "sweep.section.key=v1,v2 arguments");
    if (s->zip)
        for (int i = 1; i < s->naxes; i++)
            if (s->axes[i].nvalues != s->axes[0].nvalues)
                return laic_error("%s: sweep.mode = zip needs equal lengths: %s.%s has %d values, "
                                  "%s.%s has %d", s->axes[i].where, s->axes[i].section, s->axes[i].key,
                                  s->axes[i].nvalues, s->axes[0].section, s->axes[0].key, s->axes[0].nvalues);
    double np = 1;
    for (int i = 0; i < s->naxes && !s->zip; i++) np *= s->axes[i].nvalues;
    if (np > SWEEP_MAX_POINTS)
        return laic_error("%s: the grid has %.0f points (at most %d) ---> HINT: sweep.mode = zip, "
                          "or fewer values", s->axes[s->naxes - 1].where, np, SWEEP_MAX_POINTS);
    Config c;
    int rc = base_config(&c, s, o);
    for (int i = 0; i < s->naxes && !rc; i++)
        for (int j = 0; j < s->axes[i].nvalues && !rc; j++)
            rc = config_set(&c, s->axes[i].section, s->axes[i].key, s->axes[i].values[j], s->axes[i].where);
    config_free(&c);
    return rc;
}

// --- running ---------------------------------------------------------------------------------

/* Point directory name: p003-ridge.lambda=5-knn.k=10 (unsafe characters → '_'). */
static void point_name(const SweepSpec *s, size_t p, const int *idx, char *out, size_t n) {
    size_t len = (size_t)snprintf(out, n, "p%03zu", p);
    for (int i = 0; i < s->naxes && len + 8 < n && len < 120; i++)
        len += (size_t)snprintf(out + len, n - len, "-%s.%s=%s", s->axes[i].section, s->axes[i].key,
                                s->axes[i].values[idx[i]]);
    if (len > 120) len = 120;
    out[len] = 0;
    for (char *c = out; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr("._=-", *c)) *c = '_';
}

typedef struct {
    char name[160];
    char dir[2300];
    char **args;   // overrides of this point
    int nargs;
} Point;

static void point_args(const SweepSpec *s, const SweepOpts *o, const int *idx, Point *pt) {
    for (int i = 0; i < o->nover; i++) push(&pt->args, &pt->nargs, o->over[i]);
    for (int i = 0; i < s->nover; i++) push(&pt->args, &pt->nargs, s->over[i]);
    char a[2400];
    for (int i = 0; i < s->naxes; i++) {
        snprintf(a, sizeof a, "%s.%s=%s", s->axes[i].section, s->axes[i].key, s->axes[i].values[idx[i]]);
        push(&pt->args, &pt->nargs, a);
    }
    snprintf(a, sizeof a, "run.dir=%s", pt->dir);
    push(&pt->args, &pt->nargs, a);
}

static void write_error_file(const Point *pt, const char *msg) {
    char path[2400];
    snprintf(path, sizeof path, "%s.error", pt->dir);
    if (atomic_write_file(path, msg, strlen(msg)))
        fprintf(stderr, "laic: warning: %s\n", laic_last_error());
}

static void run_point_inprocess(const SweepOpts *o, const Point *pt) {
    Run r;
    int rc = run_init(&r, o->config, pt->nargs, pt->args, 0);
    if (!rc) rc = run_execute(&r);
    if (rc) {
        fprintf(stderr, "laic: sweep point %s failed: %s\n", pt->name, laic_last_error());
        write_error_file(pt, laic_last_error());
    }
    run_free(&r);
}

/* Child: `laic run CONFIG args…` with stderr into <point>.stderr. */
static pid_t spawn_point(const SweepOpts *o, const Point *pt, int threads) {
    char errpath[2400];
    snprintf(errpath, sizeof errpath, "%s.stderr", pt->dir);
    const char *exe = o->self_exe ? o->self_exe : "/proc/self/exe";
    char **argv = calloc((size_t)pt->nargs + 4, sizeof *argv);
    argv[0] = "laic";
    argv[1] = "run";
    argv[2] = (char *)(o->config ? o->config : "/dev/null");
    for (int i = 0; i < pt->nargs; i++) argv[3 + i] = pt->args[i];
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        FILE *e = freopen(errpath, "w", stderr);
        (void)e;
        char t[16];
        snprintf(t, sizeof t, "%d", threads);
        // share the cores between the jobs unless the user pinned thread counts
        setenv("OMP_NUM_THREADS", t, 0);
        setenv("OPENBLAS_NUM_THREADS", t, 0);
        execv(exe, argv);
        fprintf(stderr, "laic: %s: cannot execute: %s\n", exe, strerror(errno));
        _exit(127);
    }
    free(argv);
    return pid;
}

/* After a child ends: on failure, its last "laic: " stderr line becomes <point>.error. */
static void reap_point(const Point *pt, int status) {
    char errpath[2400];
    snprintf(errpath, sizeof errpath, "%s.stderr", pt->dir);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        unlink(errpath);
        return;
    }
    char msg[2048] = "", *line = NULL;
    size_t cap = 0;
    FILE *f = fopen(errpath, "r");
    ssize_t n;
    while (f && (n = getline(&line, &cap, f)) >= 0)
        if (!strncmp(line, "laic: ", 6)) {
            while (n > 0 && line[n - 1] == '\n') line[--n] = 0;
            snprintf(msg, sizeof msg, "%s", line + 6);
        }
    if (f) fclose(f);
    free(line);
    if (!msg[0]) snprintf(msg, sizeof msg, "laic run exited with status %d (see %.1900s)", status, errpath);
    fprintf(stderr, "laic: sweep point %s failed: %s\n", pt->name, msg);
    write_error_file(pt, msg);
}

static void run_points_parallel(const SweepOpts *o, Point *pts, size_t np) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = (int)(cores / o->jobs) > 0 ? (int)(cores / o->jobs) : 1;
    pid_t *pids = calloc(np, sizeof *pids);
    size_t next = 0, running = 0;
    // the first point runs alone, so the points after it find the shared upstream caches warm
    while (next < np || running) {
        size_t limit = next == 0 ? 1 : next == 1 && running ? 1 : (size_t)o->jobs;
        while (next < np && running < limit) {
            fprintf(stderr, "laic: sweep point %zu/%zu: %s\n", next + 1, np, pts[next].name);
            pids[next] = spawn_point(o, &pts[next], next == 0 ? (int)cores : threads);
            if (pids[next] < 0) {
                write_error_file(&pts[next], "fork failed");
            } else {
                running++;
            }
            next++;
        }
        int status;
        pid_t w = wait(&status);
        if (w < 0) break;
        for (size_t i = 0; i < next; i++)
            if (pids[i] == w) {
                reap_point(&pts[i], status);
                pids[i] = 0;
                running--;
            }
    }
    free(pids);
}

/* Data parallel (mpirun / srun, host/comm.h): the first point runs on all ranks together (its
 * stages split their rows over the ranks), which also leaves the shared stage caches warm;
 * then the other points are dealt out, point p to rank (p-1) mod P, each a one-process run
 * (comm_set_local) in its own directory. A failure of the first point ends the job (its ranks
 * are in collectives together); a later point that fails is a row in sweep.csv as usual. */
static void run_points_ranks(const SweepOpts *o, Point *pts, size_t np) {
    const int P = comm_size(), rank = comm_rank();
    if (rank == 0)
        fprintf(stderr, "laic: sweep point 1/%zu: %s (all %d ranks)\n", np, pts[0].name, P);
    Run r;
    int rc = run_init(&r, o->config, pts[0].nargs, pts[0].args, 0);
    if (!rc) rc = run_execute(&r);
    if (rc) {
        fprintf(stderr, "laic: rank %d/%d: sweep point %s failed: %s\n", rank, P, pts[0].name,
                laic_last_error());
        comm_abort(1);
    }
    run_free(&r);
    comm_barrier_host();   // the first point's caches are on disk before any rank reads them
    const int prev = comm_set_local(1);
    for (size_t p = 1 + (size_t)rank; p < np; p += (size_t)P) {
        fprintf(stderr, "laic: sweep point %zu/%zu on rank %d: %s\n", p + 1, np, rank, pts[p].name);
        run_point_inprocess(o, &pts[p]);
    }
    comm_set_local(prev);
}

// --- tables ----------------------------------------------------------------------------------

typedef struct {
    char **names;   // (n) column names
    int n;
} Cols;

static int col_index(Cols *c, const char *name, int add) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->names[i], name)) return i;
    if (!add) return -1;
    push(&c->names, &c->n, name);
    return c->n - 1;
}

static cJSON *read_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = 0;
    fclose(f);
    cJSON *j = cJSON_Parse(b);
    free(b);
    return j;
}

static double jnum(const cJSON *o, const char *a, const char *b) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b) x = cJSON_GetObjectItemCaseSensitive(x, b);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}

static const char *jstr(const cJSON *o, const char *a, const char *b) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, a), b);
    return cJSON_IsString(x) ? x->valuestring : "";
}

/* Shortest %g text that reads back to the same double (empty for NaN). */
static void fmt_num(char *out, size_t n, double v) {
    if (isnan(v)) {
        out[0] = 0;
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, v);
        if (strtod(out, NULL) == v) return;
    }
}

static void csv_field(FILE *f, const char *s, int first) {
    if (!first) fputc(',', f);
    if (!strpbrk(s, ",\"\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static const char *k_cache_stages[] = {"image_features", "noun_features", "candidates", "clip-kmeans", "tac"};
#define N_CACHE_STAGES 5

typedef struct {
    char status[2048];   // "ok" or "failed: …"
    double *v;           // (cols.n) metric values, NaN = absent
    char cache[N_CACHE_STAGES][16];
} Row;

static int is_seed_axis(const SweepAxis *a) { return !strcmp(a->section, "run") && !strcmp(a->key, "seed"); }

static int write_tables(const SweepSpec *s, const char *dir, Point *pts, size_t np, int *n_failed) {
    Cols cols = {0};
    Row *rows = calloc(np, sizeof *rows);
    cJSON **reps = calloc(np, sizeof *reps);
    int train_axis = 0;
    for (int i = 0; i < s->naxes; i++) train_axis |= !strcmp(s->axes[i].section, "train");
    // a train.* axis means nothing when the point did not train (train.enabled=false or no 'ours')
    const char *train_note = "training not run (needs train.enabled=true and method 'ours'): train.* "
                             "values are recorded only";
    // columns: methods in first-seen order, then pseudo-label quality, sizes and time
    for (size_t p = 0; p < np; p++) {
        char path[2400];
        snprintf(path, sizeof path, "%s/report.json", pts[p].dir);
        reps[p] = read_json(path);
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(reps[p], "methods")) {
            if (!cJSON_GetObjectItemCaseSensitive(m, "nmi")) continue;
            char c[256];
            const char *met[3] = {"nmi", "acc", "ari"};
            for (int k = 0; k < 3; k++) {
                snprintf(c, sizeof c, "%s.%s", m->string, met[k]);
                col_index(&cols, c, 1);
            }
        }
    }
    const char *extra[] = {"pseudo_labels.high_quality_fraction", "pseudo_labels.acc_before_filter",
                           "pseudo_labels.acc_after_filter", "sizes.candidate_nouns", "time_s"};
    for (int k = 0; k < 5; k++) col_index(&cols, extra[k], 1);
    *n_failed = 0;
    for (size_t p = 0; p < np; p++) {
        Row *w = &rows[p];
        w->v = malloc((size_t)cols.n * sizeof *w->v);
        for (int c = 0; c < cols.n; c++) w->v[c] = NAN;
        if (!reps[p]) {
            char path[2400], msg[1900] = "no report.json";
            snprintf(path, sizeof path, "%s.error", pts[p].dir);
            FILE *f = fopen(path, "r");
            if (f) {
                size_t n = fread(msg, 1, sizeof msg - 1, f);
                msg[n] = 0;
                fclose(f);
            }
            snprintf(w->status, sizeof w->status, "failed: %s", msg);
            (*n_failed)++;
            continue;
        }
        snprintf(w->status, sizeof w->status, "ok");
        for (int c = 0; c < cols.n; c++) {
            char a[256];
            snprintf(a, sizeof a, "%s", cols.names[c]);
            char *dot = strrchr(a, '.');
            if (!strcmp(a, "time_s")) w->v[c] = jnum(reps[p], "timings_s", "total");
            else if (dot) {
                *dot = 0;
                const cJSON *sec = cJSON_GetObjectItemCaseSensitive(reps[p], "methods");
                sec = cJSON_GetObjectItemCaseSensitive(sec, a);
                if (!sec) sec = cJSON_GetObjectItemCaseSensitive(reps[p], a);
                w->v[c] = jnum(sec, dot + 1, NULL);
            }
        }
        for (int k = 0; k < N_CACHE_STAGES; k++)
            snprintf(w->cache[k], sizeof w->cache[k], "%s", jstr(reps[p], "cache", k_cache_stages[k]));
    }
    // sweep.csv
    char path[2400], num[64];
    snprintf(path, sizeof path, "%s/sweep.csv", dir);
    AtomicFile af;
    int rc = atomic_open(&af, path);
    const char **notes = calloc(np ? np : 1, sizeof *notes);
    for (size_t p = 0; p < np; p++) {
        const cJSON *ours = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(reps[p], "methods"), "ours");
        notes[p] = train_axis && reps[p] && !ours ? train_note : "";
    }
    int *idx = malloc((size_t)(s->naxes ? s->naxes : 1) * sizeof *idx);
    if (!rc) {
        FILE *f = af.fp;
        csv_field(f, "point", 1);
        for (int i = 0; i < s->naxes; i++) {
            char k[160];
            snprintf(k, sizeof k, "%s.%s", s->axes[i].section, s->axes[i].key);
            csv_field(f, k, 0);
        }
        csv_field(f, "status", 0);
        csv_field(f, "run_dir", 0);
        for (int c = 0; c < cols.n; c++) csv_field(f, cols.names[c], 0);
        for (int k = 0; k < N_CACHE_STAGES; k++) {
            char h[64];
            snprintf(h, sizeof h, "cache.%s", k_cache_stages[k]);
            csv_field(f, h, 0);
        }
        csv_field(f, "note", 0);
        fputc('\n', f);
        for (size_t p = 0; p < np; p++) {
            sweep_point(s, p, idx);
            fprintf(f, "%zu", p);
            for (int i = 0; i < s->naxes; i++) csv_field(f, s->axes[i].values[idx[i]], 0);
            csv_field(f, rows[p].status, 0);
            csv_field(f, pts[p].dir, 0);
            for (int c = 0; c < cols.n; c++) {
                fmt_num(num, sizeof num, rows[p].v[c]);
                csv_field(f, num, 0);
            }
            for (int k = 0; k < N_CACHE_STAGES; k++) csv_field(f, rows[p].cache[k], 0);
            csv_field(f, notes[p], 0);
            fputc('\n', f);
        }
        rc = atomic_commit(&af);
    }
    // summary: group the points by every axis but run.seed; mean ± sample std of ok points
    cJSON *json = cJSON_CreateObject();
    cJSON_AddStringToObject(json, "mode", s->zip ? "zip" : "grid");
    cJSON *jaxes = cJSON_AddArrayToObject(json, "axes");
    for (int i = 0; i < s->naxes; i++) {
        cJSON *a = cJSON_CreateObject();
        char k[160];
        snprintf(k, sizeof k, "%s.%s", s->axes[i].section, s->axes[i].key);
        cJSON_AddStringToObject(a, "key", k);
        cJSON_AddItemToObject(a, "values", cJSON_CreateStringArray((const char *const *)s->axes[i].values,
                                                                  s->axes[i].nvalues));
        cJSON_AddItemToArray(jaxes, a);
    }
    cJSON *jpts = cJSON_AddArrayToObject(json, "points");
    for (size_t p = 0; p < np; p++) {
        sweep_point(s, p, idx);
        cJSON *o = cJSON_CreateObject(), *vals = cJSON_AddObjectToObject(o, "values");
        cJSON_AddNumberToObject(o, "point", (double)p);
        for (int i = 0; i < s->naxes; i++) {
            char k[160];
            snprintf(k, sizeof k, "%s.%s", s->axes[i].section, s->axes[i].key);
            cJSON_AddStringToObject(vals, k, s->axes[i].values[idx[i]]);
        }
        cJSON_AddStringToObject(o, "status", rows[p].status);
        cJSON_AddStringToObject(o, "run_dir", pts[p].dir);
        cJSON *met = cJSON_AddObjectToObject(o, "metrics");
        for (int c = 0; c < cols.n; c++)
            if (!isnan(rows[p].v[c])) cJSON_AddNumberToObject(met, cols.names[c], rows[p].v[c]);
        cJSON *ca = cJSON_AddObjectToObject(o, "cache");
        for (int k = 0; k < N_CACHE_STAGES; k++)
            if (rows[p].cache[k][0]) cJSON_AddStringToObject(ca, k_cache_stages[k], rows[p].cache[k]);
        if (notes[p][0]) cJSON_AddStringToObject(o, "note", notes[p]);
        cJSON_AddItemToArray(jpts, o);
    }
    cJSON *jsum = cJSON_AddArrayToObject(json, "summary");
    cJSON_AddStringToObject(json, "summary_note", "points grouped by every axis except run.seed; "
                            "mean and sample standard deviation (n-1; 0 when n = 1) over the ok points");
    char *done = calloc(np ? np : 1, 1);
    int *jdx = malloc((size_t)(s->naxes ? s->naxes : 1) * sizeof *jdx);
    snprintf(path, sizeof path, "%s/sweep_summary.csv", dir);
    int rc2 = atomic_open(&af, path);
    if (!rc2) {
        int first = 1;
        for (int i = 0; i < s->naxes; i++)
            if (!is_seed_axis(&s->axes[i])) {
                char k[160];
                snprintf(k, sizeof k, "%s.%s", s->axes[i].section, s->axes[i].key);
                csv_field(af.fp, k, first);
                first = 0;
            }
        csv_field(af.fp, "n", first);
        for (int c = 0; c < cols.n; c++) fprintf(af.fp, ",%s.mean,%s.std", cols.names[c], cols.names[c]);
        fputc('\n', af.fp);
    }
    for (size_t p = 0; p < np; p++) {
        if (done[p]) continue;
        sweep_point(s, p, idx);
        size_t *members = malloc(np * sizeof *members), nm = 0;
        for (size_t q = p; q < np; q++) {
            sweep_point(s, q, jdx);
            int same = 1;
            for (int i = 0; i < s->naxes; i++) same &= is_seed_axis(&s->axes[i]) || idx[i] == jdx[i];
            if (same) {
                done[q] = 1;
                members[nm++] = q;
            }
        }
        cJSON *g = cJSON_CreateObject(), *vals = cJSON_AddObjectToObject(g, "values");
        int first = 1;
        for (int i = 0; i < s->naxes; i++)
            if (!is_seed_axis(&s->axes[i])) {
                char k[160];
                snprintf(k, sizeof k, "%s.%s", s->axes[i].section, s->axes[i].key);
                cJSON_AddStringToObject(vals, k, s->axes[i].values[idx[i]]);
                if (!rc2) csv_field(af.fp, s->axes[i].values[idx[i]], first);
                first = 0;
            }
        size_t nok = 0;
        for (size_t j = 0; j < nm; j++) nok += !strcmp(rows[members[j]].status, "ok");
        cJSON_AddNumberToObject(g, "n", (double)nok);
        if (!rc2) fprintf(af.fp, "%s%zu", first ? "" : ",", nok);
        cJSON *mean = cJSON_AddObjectToObject(g, "mean"), *sd = cJSON_AddObjectToObject(g, "std");
        for (int c = 0; c < cols.n; c++) {
            double sum = 0, ss = 0;
            size_t k = 0;
            for (size_t j = 0; j < nm; j++) {
                double v = rows[members[j]].v[c];
                if (strcmp(rows[members[j]].status, "ok") || isnan(v)) continue;
                sum += v;
                k++;
            }
            double mu = k ? sum / (double)k : NAN;
            for (size_t j = 0; j < nm; j++) {
                double v = rows[members[j]].v[c];
                if (strcmp(rows[members[j]].status, "ok") || isnan(v)) continue;
                ss += (v - mu) * (v - mu);
            }
            double sdv = k > 1 ? sqrt(ss / (double)(k - 1)) : k ? 0 : NAN;
            if (k) {
                cJSON_AddNumberToObject(mean, cols.names[c], mu);
                cJSON_AddNumberToObject(sd, cols.names[c], sdv);
            }
            if (!rc2) {
                fmt_num(num, sizeof num, mu);
                fprintf(af.fp, ",%s", num);
                fmt_num(num, sizeof num, sdv);
                fprintf(af.fp, ",%s", num);
            }
        }
        if (!rc2) fputc('\n', af.fp);
        cJSON_AddItemToArray(jsum, g);
        free(members);
    }
    if (!rc2) rc2 = atomic_commit(&af);
    char *text = cJSON_Print(json);
    snprintf(path, sizeof path, "%s/sweep.json", dir);
    int rc3 = atomic_write_file(path, text, strlen(text));
    free(text);
    cJSON_Delete(json);
    free(done);
    free(notes);
    free(jdx);
    free(idx);
    for (size_t p = 0; p < np; p++) {
        cJSON_Delete(reps[p]);
        free(rows[p].v);
    }
    free(reps);
    free(rows);
    free_strs(cols.names, cols.n);
    return rc || rc2 || rc3 ? -1 : 0;
}

int sweep_run(const SweepSpec *s, const SweepOpts *o, char *dir_out, size_t dir_n) {
    if (sweep_validate(s, o)) return -1;
    const int P = comm_size(), rank = comm_rank();
    if (P > 1 && o->jobs > 1)
        return laic_error("sweep: --jobs %d with %d ranks: the ranks already run the points in "
                          "parallel ---> HINT: drop --jobs under mpirun/srun", o->jobs, P);
    Config c;
    if (base_config(&c, s, o)) {
        config_free(&c);
        return -1;
    }
    char dir[2048];
    if (o->dir && o->dir[0]) {
        if (run_normalize_dir(o->dir, dir, sizeof dir, "sweep")) {
            config_free(&c);
            return -1;
        }
    } else {
        char ts[32];
        time_t now = time(NULL);
        strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", gmtime(&now));
        snprintf(dir, sizeof dir, "runs/%s-sweep-%s", s->name[0] ? s->name : config_str(&c, "run", "name"), ts);
    }
    config_free(&c);
    comm_broadcast_host(dir, sizeof dir, 0);   // rank 0's clock names the directory
    // claimed for the whole sweep (as a run claims run.dir): a second sweep into this directory
    // fails at once instead of mixing its points and tables with this one's. Rank 0 holds the
    // claim for the job; the other ranks learn whether it succeeded.
    RunClaim claim = {.fd = -1};
    int bad = 0;
    if (rank == 0 && run_claim(&claim, dir, "sweep")) bad = 1;
    if (rank == 0 && !bad && run_mkdir_p(dir)) {
        run_claim_release(&claim);
        bad = 1;
    }
    comm_broadcast_host(&bad, sizeof bad, 0);
    if (bad) return rank == 0 ? -1 : laic_error("%s: rank 0 could not claim the sweep directory", dir);
    snprintf(dir_out, dir_n, "%s", dir);
    const size_t np = sweep_npoints(s);
    Point *pts = calloc(np, sizeof *pts);
    int *idx = malloc((size_t)(s->naxes > 0 ? s->naxes : 1) * sizeof *idx);
    for (size_t p = 0; p < np; p++) {
        sweep_point(s, p, idx);
        point_name(s, p, idx, pts[p].name, sizeof pts[p].name);
        snprintf(pts[p].dir, sizeof pts[p].dir, "%s/%s", dir, pts[p].name);
        point_args(s, o, idx, &pts[p]);
    }
    free(idx);
    if (rank == 0)
        fprintf(stderr, "laic: sweep: %zu points (%s) into %s%s\n", np, s->zip ? "zip" : "grid",
                dir, P > 1 ? " over the ranks" : "");
    if (o->jobs > 1) {
        run_points_parallel(o, pts, np);
    } else if (P > 1) {
        run_points_ranks(o, pts, np);
        comm_barrier_host();   // every point's directory is complete: rank 0 writes the tables
        if (rank != 0) {
            for (size_t p = 0; p < np; p++) free_strs(pts[p].args, pts[p].nargs);
            free(pts);
            return 0;
        }
    } else {
        for (size_t p = 0; p < np; p++) {
            fprintf(stderr, "laic: sweep point %zu/%zu: %s\n", p + 1, np, pts[p].name);
            run_point_inprocess(o, &pts[p]);
        }
    }
    int n_failed = 0;
    int rc = write_tables(s, dir, pts, np, &n_failed);
    if (!rc && report_sweep_html_write(dir, NULL, NULL))   // the tables are what counts
        fprintf(stderr, "laic: warning: sweep.html not written: %s (rebuild it with laic report %s)\n",
                laic_last_error(), dir);
    run_claim_release(&claim);   // everything is written
    for (size_t p = 0; p < np; p++) free_strs(pts[p].args, pts[p].nargs);
    free(pts);
    if (rc) return -1;
    if (n_failed) {
        laic_error("%s: %d of %zu sweep points failed (their rows in sweep.csv say why)", dir, n_failed, np);
        return 1;
    }
    fprintf(stderr, "laic: sweep complete: %s/sweep.csv\n", dir);
    return 0;
}
