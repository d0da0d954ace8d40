/* report_html.c — report.html and sweep.html (see report_html.h). */
#include "run/report_html.h"

#include <cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "io/atomic.h"
#include "io/err.h"
#include "io/npy.h"
#include "io/png.h"
#include "model/image.h"
#include "run/config.h"

#ifndef LAIC_GIT_COMMIT
#define LAIC_GIT_COMMIT "unknown"
#endif

#define MAX_K 100000            // clusters a page will draw panels for
#define MAX_TEXT (64u << 20)    // largest text file read (report.json, config.ini, TSVs, log)
#define PAGE_PANELS 50          // cluster panels per <details> page when K > PAGE_ALL
#define PAGE_ALL 60
#define MAX_TSV_ROWS 300        // rows shown of candidates.tsv / centres.tsv

// --- escaping and small helpers ----------------------------------------------------------------

/* Length of the valid UTF-8 sequence at p (2..4), or 0 when it is not one. */
static int utf8_len(const unsigned char *p) {
    const unsigned c = p[0];
    int n;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;   // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (p[1] < lo || p[1] > hi) return 0;
    for (int i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return n;
}

void report_html_escape(FILE *f, const char *s) {
    if (!s) return;
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        const unsigned c = *p;
        if (c < 0x80) {
            switch (c) {
            case '&': fputs("&amp;", f); break;
            case '<': fputs("&lt;", f); break;
            case '>': fputs("&gt;", f); break;
            case '"': fputs("&quot;", f); break;
            case '\'': fputs("&#39;", f); break;
            default:
                if ((c >= 0x20 && c != 0x7f) || c == '\t' || c == '\n') fputc((int)c, f);
            }
            p++;
            continue;
        }
        const int n = utf8_len(p);
        if (!n) {
            fputs("\xEF\xBF\xBD", f);   // U+FFFD
            p++;
        } else {
            if (!(n == 2 && p[0] == 0xC2 && p[1] < 0xA0)) fwrite(p, 1, (size_t)n, f);   // C1 controls dropped
            p += n;
        }
    }
}
#define ESC(f, s) report_html_escape((f), (s))

int report_montage_images(int K) { return K <= 30 ? 16 : 8; }
int report_thumb_size(int K) { return K <= 30 ? 56 : 40; }

static char *slurp(const char *path, size_t *n_out) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    struct stat st;
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode) || (size_t)st.st_size > MAX_TEXT) {
        fclose(f);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    char *b = malloc(n + 1);
    if (!b) {
        fclose(f);
        return NULL;
    }
    n = fread(b, 1, n, f);
    fclose(f);
    b[n] = 0;
    if (n_out) *n_out = n;
    return b;
}

static int exists(const char *path) {
    struct stat st;
    return !stat(path, &st);
}

static double jnum(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(x) ? x->valuedouble : NAN;
}
static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(x) ? x->valuestring : NULL;
}

static void pct(char *b, size_t n, double v) {
    if (isnan(v)) snprintf(b, n, "–");
    else snprintf(b, n, "%.1f", 100 * v);
}

/* 1234567 → "1,234,567". */
static void count_str(char *b, size_t n, double v) {
    if (isnan(v)) {
        snprintf(b, n, "–");
        return;
    }
    char t[64];
    snprintf(t, sizeof t, "%.0f", v);
    size_t L = strlen(t), o = 0, lead = t[0] == '-';
    for (size_t i = 0; i < L && o + 2 < n; i++) {
        if (i > lead && (L - i) % 3 == 0) b[o++] = ',';
        b[o++] = t[i];
    }
    b[o] = 0;
}

// --- colour maps (no saturated magenta, cyan or yellow: the browser test looks for those in
// --- its montage images) --------------------------------------------------------------------

static void lerp_stops(const unsigned char (*stops)[3], int ns, double t, unsigned char *rgb) {
    if (!(t > 0)) t = 0;
    if (t > 1) t = 1;
    double x = t * (ns - 1);
    int i = (int)x;
    if (i >= ns - 1) i = ns - 2;
    double u = x - i;
    for (int c = 0; c < 3; c++)
        rgb[c] = (unsigned char)lround(stops[i][c] + u * (stops[i + 1][c] - stops[i][c]));
}
/* Sequential white → dark blue (ColorBrewer Blues), t in [0,1]. */
static void blues(double t, unsigned char *rgb) {
    static const unsigned char s[9][3] = {{247, 251, 255}, {222, 235, 247}, {198, 219, 239},
                                          {158, 202, 225}, {107, 174, 214}, {66, 146, 198},
                                          {33, 113, 181},  {8, 81, 156},    {8, 48, 107}};
    lerp_stops(s, 9, t, rgb);
}
/* Diverging blue – white – red (ColorBrewer RdBu reversed), t in [-1,1]. */
static void rdbu(double t, unsigned char *rgb) {
    static const unsigned char s[9][3] = {{33, 102, 172},  {67, 147, 195},  {146, 197, 222},
                                          {209, 229, 240}, {247, 247, 247}, {253, 219, 199},
                                          {244, 165, 130}, {214, 96, 77},   {178, 24, 43}};
    lerp_stops(s, 9, (t + 1) / 2, rgb);
}

static const char *const k_series[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                       "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

// --- page frame ---------------------------------------------------------------------------------

static const char k_css[] =
    ":root{--fg:#1d2430;--muted:#5b6577;--line:#d9dee7;--bg:#f4f5f8;--card:#fff;--accent:#2456a6}"
    "*{box-sizing:border-box}"
    "body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;"
    "color:var(--fg);background:var(--bg)}"
    "header{background:#1d2430;color:#fff;padding:16px 28px}"
    "header h1{margin:0;font-size:21px;font-weight:600}"
    "header .sub{color:#b8c2d3;font-size:12.5px;margin-top:4px;word-break:break-all}"
    "nav{position:sticky;top:0;background:#fff;border-bottom:1px solid var(--line);padding:7px 28px;z-index:2}"
    "nav a{margin-right:16px;color:var(--accent);text-decoration:none;font-size:13px}"
    "main{padding:4px 28px 40px;max-width:1500px}"
    "section{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:14px 20px;margin:16px 0}"
    "h2{font-size:16.5px;margin:0 0 10px}"
    "h3{font-size:14px;margin:14px 0 6px}"
    "table{border-collapse:collapse;font-variant-numeric:tabular-nums}"
    "th,td{padding:4px 10px;border-bottom:1px solid var(--line);text-align:right;vertical-align:top}"
    "th{background:#f0f2f6;font-weight:600}"
    "th.l,td.l{text-align:left}"
    "td.best{font-weight:700}"
    "tr.pub td{color:var(--muted);font-style:italic}"
    ".muted{color:var(--muted)}.small{font-size:12px}"
    ".pos{color:#1a7f37}.neg{color:#b42318}"
    ".warn{background:#fdecea;border:2px solid #b42318;color:#7a1410;padding:12px 16px;border-radius:8px;"
    "margin:16px 0;font-weight:600}"
    ".note{background:#eef3fb;border-left:4px solid var(--accent);padding:6px 12px;margin:8px 0;font-size:13px}"
    ".grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(244px,1fr));gap:12px}"
    ".grid.compact{grid-template-columns:repeat(auto-fill,minmax(178px,1fr));gap:8px}"
    ".panel{border:1px solid var(--line);border-radius:6px;padding:8px 9px;background:#fff;min-width:0}"
    ".panel .t{display:flex;justify-content:space-between;font-weight:600;font-size:13.5px}"
    ".panel .m{font-size:12.5px;margin:2px 0 3px;overflow-wrap:anywhere}"
    ".compact .panel{padding:6px}.compact .panel .t{font-size:12.5px}.compact .panel .m{font-size:11.5px}"
    ".bar{height:6px;background:#e6e9ef;border-radius:3px;overflow:hidden;margin:2px 0 4px}"
    ".bar>i{display:block;height:100%;background:#3b6fb6}"
    ".hbar{display:inline-block;height:10px;background:#3b6fb6;border-radius:2px;vertical-align:middle}"
    ".nouns{font-size:12px;color:var(--muted);margin:3px 0 5px;overflow-wrap:anywhere}"
    ".compact .nouns{font-size:11px}"
    ".montage{display:block;max-width:100%;height:auto;border-radius:3px;background:#eee}"
    ".heat{display:block;max-width:100%;height:auto;image-rendering:pixelated;border:1px solid var(--line)}"
    "details{margin:8px 0}summary{cursor:pointer;font-weight:600;color:var(--accent)}"
    "pre{background:#f6f8fa;border:1px solid var(--line);padding:10px;overflow:auto;font-size:12px;"
    "max-height:520px;white-space:pre-wrap;overflow-wrap:anywhere}"
    ".kv td{text-align:left}.kv td:first-child{color:var(--muted);padding-right:18px}"
    ".mono{font-family:'DejaVu Sans Mono',monospace;font-size:12.5px;overflow-wrap:anywhere}"
    ".scroll{overflow-x:auto}"
    ".charts{display:flex;flex-wrap:wrap;gap:14px}"
    "svg text{font-family:system-ui,'DejaVu Sans',sans-serif}"
    "footer{color:var(--muted);font-size:12px;padding:0 28px 30px}";

static void page_begin(FILE *f, const char *title) {
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
          "style-src 'unsafe-inline'\"><title>",
          f);
    ESC(f, title);
    fprintf(f, "</title><style>%s</style></head>\n", k_css);
}

static void page_footer(FILE *f, const char *what) {
    char ts[64];
    time_t now = time(NULL);
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S UTC", gmtime(&now));
    fprintf(f, "<footer>%s written by laic (commit %s) on %s. Self-contained: images are embedded, "
               "nothing is loaded from the network and no script runs. Rebuild with "
               "<code>laic report DIR</code>.</footer>\n</body></html>\n",
            what, LAIC_GIT_COMMIT, ts);
}

// --- the run directory, loaded ----------------------------------------------------------------

typedef struct {
    const char *dir;
    cJSON *rep;
    char *config_text;
    Config cfg;
    int have_cfg;
    char **class_names;     // (n_classes) owned strings
    int n_classes;
    size_t ne;              // eval rows
    int64_t *y;             // (ne) eval labels or NULL
    int64_t *pred;          // (ne) primary clustering or NULL
    char primary[64];
    int K;                  // clusters of the primary clustering (max + 1)
    // per cluster (K)
    size_t *size, *lab_size, *maj_votes;
    int *maj;               // majority class, -1 none
    int *order;             // display order of the clusters
    size_t *votes;          // (K, n_classes) counts
    char **nouns;           // (K) "a, b, c" or NULL
    char **montage;         // (K) data: URI or NULL
    int *montage_n;         // (K) images in it
    int thumb;
    char **notes;
    int n_notes;
} Rep;

static void note(Rep *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(Rep *r, const char *fmt, ...) {
    char b[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    char **p = realloc(r->notes, (size_t)(r->n_notes + 1) * sizeof *p);
    if (!p) return;
    r->notes = p;
    r->notes[r->n_notes++] = strdup(b);
    fprintf(stderr, "laic: report: %s\n", b);
}

static void rep_free(Rep *r) {
    cJSON_Delete(r->rep);
    free(r->config_text);
    if (r->have_cfg) config_free(&r->cfg);
    for (int i = 0; i < r->n_classes && r->class_names; i++) free(r->class_names[i]);
    free(r->class_names);
    free(r->y);
    free(r->pred);
    free(r->size);
    free(r->lab_size);
    free(r->maj_votes);
    free(r->maj);
    free(r->order);
    free(r->votes);
    for (int k = 0; k < r->K; k++) {
        if (r->nouns) free(r->nouns[k]);
        if (r->montage) free(r->montage[k]);
    }
    free(r->nouns);
    free(r->montage);
    free(r->montage_n);
    for (int i = 0; i < r->n_notes; i++) free(r->notes[i]);
    free(r->notes);
}

static const char *class_name(const Rep *r, int c, char *buf, size_t n) {
    if (c < 0) return "–";
    if (c < r->n_classes && r->class_names && r->class_names[c]) return r->class_names[c];
    snprintf(buf, n, "class %d", c);
    return buf;
}

static void path_in(char *out, size_t n, const char *dir, const char *name) {
    snprintf(out, n, "%s/%s", dir, name);
}

/* Reads an int64 vector of `want` rows (want 0 = any) from dir/name; NULL when absent (silent)
 * or invalid (noted). */
static int64_t *read_vec(Rep *r, const char *name, size_t want, size_t *n_out) {
    char p[4200];
    path_in(p, sizeof p, r->dir, name);
    if (!exists(p)) return NULL;
    Npy a;
    long shape[1] = {want ? (long)want : -1};
    if (npy_read_i64(p, &a, 1, shape)) {
        note(r, "%s left out: %s", name, laic_last_error());
        return NULL;
    }
    if (n_out) *n_out = a.shape[0];
    return a.data;
}

int report_primary_clustering(const char *dir, const char *const *methods, int n_methods,
                              size_t n_eval, int64_t **pred, char *method, size_t method_n) {
    *pred = NULL;
    char p[4200];
    const char *name = NULL;
    snprintf(p, sizeof p, "%s/predictions/ours.npy", dir);   // the paper's method, when it trained
    if (exists(p)) name = "ours";
    if (!name) {
        path_in(p, sizeof p, dir, "assignments.npy");
        if (exists(p)) name = "ours-notrain";
    }
    for (int i = 0; !name && i < n_methods; i++) {
        snprintf(p, sizeof p, "%s/predictions/%s.npy", dir, methods[i]);
        if (exists(p)) name = methods[i];
    }
    if (!name) return 0;
    Npy a;
    long shape[1] = {(long)n_eval};
    if (npy_read_i64(p, &a, 1, shape)) return -1;
    const int64_t *v = a.data;
    for (size_t i = 0; i < a.shape[0]; i++)
        if (v[i] < 0 || v[i] >= MAX_K) {
            npy_free(&a);
            return laic_error("%s: cluster %lld at row %zu is outside [0, %d)", p, (long long)v[i], i, MAX_K);
        }
    *pred = a.data;
    snprintf(method, method_n, "%s", name);
    return 1;
}

/* Names of report.json's methods, in run order (pointers into the cJSON). */
static int method_names(const cJSON *rep, const char **out, int max) {
    int n = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(rep, "methods")) if (n < max && m->string) out[n++] = m->string;
    return n;
}

typedef struct { int maj; size_t size; int id; } ClusterKey;
/* Display order: majority class (clusters without labelled images last), then size, then id. */
static int cmp_cluster(const void *a, const void *b) {
    const ClusterKey *x = a, *y = b;
    const int mx = x->maj < 0 ? 1 << 30 : x->maj, my = y->maj < 0 ? 1 << 30 : y->maj;
    if (mx != my) return mx < my ? -1 : 1;
    if (x->size != y->size) return x->size > y->size ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}
static void cluster_order(const int *maj, const size_t *size, int K, int *order) {
    ClusterKey *ck = mallocCheck((size_t)(K > 0 ? K : 1) * sizeof *ck);
    for (int k = 0; k < K; k++) ck[k] = (ClusterKey){maj[k], size[k], k};
    qsort(ck, (size_t)K, sizeof *ck, cmp_cluster);
    for (int k = 0; k < K; k++) order[k] = ck[k].id;
    free(ck);
}

static int load_run(Rep *r, const ReportOpts *o) {
    char p[4200];
    path_in(p, sizeof p, r->dir, "report.json");
    char *js = slurp(p, NULL);
    if (!js)
        return laic_error("%s: cannot read ---> HINT: laic report takes a run directory (with "
                          "report.json) or a sweep directory (with sweep.json)", p);
    r->rep = cJSON_Parse(js);
    free(js);
    if (!r->rep || !cJSON_IsObject(r->rep)) return laic_error("%s: not a JSON object", p);
    path_in(p, sizeof p, r->dir, "config.ini");
    r->config_text = slurp(p, NULL);
    if (r->config_text) {
        config_init(&r->cfg, laic_config_keys, laic_config_nkeys);
        r->have_cfg = 1;
        if (config_load_ini(&r->cfg, p)) {
            note(r, "config.ini does not load with this laic (%s): published numbers and the "
                    "dataset path are not read from it", laic_last_error());
            config_free(&r->cfg);
            r->have_cfg = 0;
        }
    }
    // classes
    const cJSON *cn = cJSON_GetObjectItemCaseSensitive(r->rep, "class_names");
    if (cJSON_IsArray(cn) && cJSON_GetArraySize(cn) > 0 && cJSON_GetArraySize(cn) <= MAX_K) {
        r->n_classes = cJSON_GetArraySize(cn);
        r->class_names = callocCheck((size_t)r->n_classes, sizeof *r->class_names);
        int i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, cn) r->class_names[i++] = strdup(cJSON_IsString(c) ? c->valuestring : "?");
    }
    const cJSON *sizes = cJSON_GetObjectItemCaseSensitive(r->rep, "sizes");
    const double ne = jnum(sizes, "n_eval");
    if (!(ne >= 1 && ne <= 1e10)) {
        note(r, "report.json has no sizes.n_eval: cluster panels left out");
        return 0;
    }
    r->ne = (size_t)ne;
    r->y = read_vec(r, "eval_labels.npy", r->ne, NULL);
    if (r->y) {
        int64_t mx = -1;
        for (size_t i = 0; i < r->ne; i++) {
            if (r->y[i] < -1 || r->y[i] >= MAX_K) {
                note(r, "eval_labels.npy: label %lld at row %zu out of range: labels left out",
                     (long long)r->y[i], i);
                free(r->y);
                r->y = NULL;
                break;
            }
            if (r->y[i] > mx) mx = r->y[i];
        }
        if (r->y && mx >= r->n_classes) {   // more classes than names: number the rest
            char **names = callocCheck((size_t)mx + 1, sizeof *names);
            for (int c = 0; c <= mx; c++) {
                char b[32];
                snprintf(b, sizeof b, "class %d", c);
                names[c] = c < r->n_classes ? r->class_names[c] : strdup(b);
            }
            free(r->class_names);
            r->class_names = names;
            r->n_classes = (int)mx + 1;
        }
    }
    const char *methods[64];
    int nm = method_names(r->rep, methods, 64);
    int rc = report_primary_clustering(r->dir, methods, nm, r->ne, &r->pred, r->primary, sizeof r->primary);
    if (rc < 0) note(r, "cluster panels left out: %s", laic_last_error());
    if (rc <= 0) return 0;
    int64_t mx = 0;
    for (size_t i = 0; i < r->ne; i++) mx = r->pred[i] > mx ? r->pred[i] : mx;
    r->K = (int)mx + 1;
    const int K = r->K, C = r->n_classes > 0 ? r->n_classes : 1;
    r->size = callocCheck((size_t)K, sizeof *r->size);
    r->lab_size = callocCheck((size_t)K, sizeof *r->lab_size);
    r->maj_votes = callocCheck((size_t)K, sizeof *r->maj_votes);
    r->maj = mallocCheck((size_t)K * sizeof *r->maj);
    r->order = mallocCheck((size_t)K * sizeof *r->order);
    r->votes = callocCheck((size_t)K * C, sizeof *r->votes);
    r->nouns = callocCheck((size_t)K, sizeof *r->nouns);
    r->montage = callocCheck((size_t)K, sizeof *r->montage);
    r->montage_n = callocCheck((size_t)K, sizeof *r->montage_n);
    for (size_t i = 0; i < r->ne; i++) {
        const int64_t k = r->pred[i];
        r->size[k]++;
        if (r->y && r->y[i] >= 0) {
            r->lab_size[k]++;
            r->votes[(size_t)k * C + (size_t)r->y[i]]++;
        }
    }
    for (int k = 0; k < K; k++) {
        r->maj[k] = -1;
        for (int c = 0; c < C && r->y; c++)
            if (r->votes[(size_t)k * C + c] > r->maj_votes[k]) {
                r->maj_votes[k] = r->votes[(size_t)k * C + c];
                r->maj[k] = c;
            }
    }
    cluster_order(r->maj, r->size, K, r->order);
    // nouns of each cluster: clusters.tsv (ours-notrain's clusters) or centres.tsv (the learned
    // centres of ours); both: id first, nouns last
    const int trained = !strcmp(r->primary, "ours");
    path_in(p, sizeof p, r->dir, trained ? "centres.tsv" : "clusters.tsv");
    char *tsv = trained || !strcmp(r->primary, "ours-notrain") ? slurp(p, NULL) : NULL;
    for (char *line = tsv, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        char *tab = strrchr(line, '\t');
        char *end;
        long k = strtol(line, &end, 10);
        if (!tab || end == line || *end != '\t' || k < 0 || k >= K) continue;   // header, junk
        free(r->nouns[k]);
        r->nouns[k] = strdup(tab + 1);
    }
    free(tsv);
    return 0;
}

// --- montages -----------------------------------------------------------------------------------

static int open_eval_dataset(Rep *r, Dataset *d) {
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(r->rep, "data");
    const char *kind = jstr(data, "kind"), *root = jstr(data, "root"), *split = jstr(data, "eval_split");
    if ((!kind || !root || !split) && r->have_cfg) {
        kind = config_str(&r->cfg, "data", "kind");
        root = config_str(&r->cfg, "data", "path");
        split = config_str(&r->cfg, "data", "eval_split");
    }
    if (!kind || !root || !split || !root[0]) return laic_error("the run names no dataset");
    return dataset_open(d, kind, root, split);
}

static void build_montages(Rep *r, const Dataset *given) {
    if (!r->pred) return;
    const int K = r->K;
    size_t n_near = 0, n_idx = 0;
    char p[4200];
    path_in(p, sizeof p, r->dir, "cluster_nearest.npy");
    if (!exists(p)) return;   // precomputed features: no images
    Npy a;
    long shape[2] = {K, -1};
    if (npy_read_i64(p, &a, 2, shape)) {
        note(r, "montages left out: %s", laic_last_error());
        return;
    }
    n_near = a.shape[1];
    int64_t *near = a.data;
    int64_t *index = read_vec(r, "eval_index.npy", r->ne, &n_idx);
    Dataset own;
    memset(&own, 0, sizeof own);
    const Dataset *d = given;
    int opened = 0;
    if (index && !d) {
        if (open_eval_dataset(r, &own)) note(r, "montages left out: %s", laic_last_error());
        else d = &own, opened = 1;
    }
    if (!index) note(r, "montages left out: eval_index.npy is missing or unreadable");
    for (size_t i = 0; d && index && i < r->ne; i++)
        if (index[i] < 0 || (size_t)index[i] >= d->n) {
            note(r, "montages left out: eval_index.npy row %zu names item %lld, the dataset has %zu",
                 i, (long long)index[i], d->n);
            d = NULL;
        }
    for (size_t i = 0; d && i < (size_t)K * n_near; i++)
        if (near[i] < -1 || near[i] >= (int64_t)r->ne || (near[i] >= 0 && r->pred[near[i]] != (int64_t)(i / n_near))) {
            note(r, "montages left out: cluster_nearest.npy entry %zu (%lld) is not a row of its cluster",
                 i, (long long)near[i]);
            d = NULL;
        }
    if (d) {
        const int T = r->thumb = report_thumb_size(K), cols = 4;
        const int per = report_montage_images(K) < (int)n_near ? report_montage_images(K) : (int)n_near;
        // one job per thumbnail: (cluster, slot, eval row)
        size_t nj = 0;
        int *jk = mallocCheck(((size_t)K * per + 1) * sizeof *jk), *js = mallocCheck(((size_t)K * per + 1) * sizeof *js);
        for (int k = 0; k < K; k++) {
            int m = 0;
            for (int j = 0; j < per; j++)
                if (near[(size_t)k * n_near + j] >= 0) {
                    jk[nj] = k;
                    js[nj++] = j;
                    m++;
                }
            r->montage_n[k] = m;
        }
        uint8_t **canvas = callocCheck((size_t)K, sizeof *canvas);
        for (int k = 0; k < K; k++) {
            if (!r->montage_n[k]) continue;
            const int rows = (r->montage_n[k] + cols - 1) / cols, W = cols * T, H = rows * T;
            canvas[k] = mallocCheck((size_t)W * H * 3);
            memset(canvas[k], 0xee, (size_t)W * H * 3);
        }
        int bad = 0;
#pragma omp parallel for schedule(dynamic)
        for (size_t j = 0; j < nj; j++) {
            const int k = jk[j], slot = js[j];
            const size_t row = (size_t)near[(size_t)k * n_near + slot];
            uint8_t *rgb = NULL, *th = malloc((size_t)T * T * 3);
            int h, w;
            if (th && !dataset_get_rgb8(d, (size_t)index[row], &rgb, &h, &w)) {
                image_resize_crop_rgb8(th, rgb, h, w, T);
                const int W = cols * T, x0 = (slot % cols) * T, y0 = (slot / cols) * T;
                for (int y = 0; y < T; y++)
                    memcpy(canvas[k] + ((size_t)(y0 + y) * W + x0) * 3, th + (size_t)y * T * 3, (size_t)T * 3);
            } else {
#pragma omp atomic write
                bad = 1;
            }
            free(rgb);
            free(th);
        }
        if (bad) note(r, "some montage images could not be decoded (grey squares)");
#pragma omp parallel for schedule(dynamic)
        for (int k = 0; k < K; k++) {
            if (!canvas[k]) continue;
            const int rows = (r->montage_n[k] + cols - 1) / cols;
            r->montage[k] = png_data_uri(canvas[k], cols * T, rows * T, 3);
            free(canvas[k]);
        }
        for (int k = 0; k < K; k++)
            if (r->montage_n[k] && !r->montage[k]) r->montage_n[k] = 0;
        free(canvas);
        free(jk);
        free(js);
    }
    if (opened) dataset_free(&own);
    free(index);
    npy_free(&a);
}

// --- sections -------------------------------------------------------------------------------------

typedef struct {
    char name[64];
    double v[3];   // nmi, acc, ari in %
} Published;

/* Every non-empty [published] key of the config. */
static int published_list(const Rep *r, Published *out, int max) {
    if (!r->have_cfg) return 0;
    int n = 0;
    for (int i = 0; i < r->cfg.n && n < max; i++) {
        const CfgKey *k = &r->cfg.keys[i];
        if (strcmp(k->section, "published") || k->type != CFG_TRIPLE || !r->cfg.values[i][0]) continue;
        Published *p = &out[n];
        if (sscanf(r->cfg.values[i], "%lf/%lf/%lf", &p->v[0], &p->v[1], &p->v[2]) != 3) continue;
        snprintf(p->name, sizeof p->name, "%s", k->key);
        n++;
    }
    return n;
}

static void section_metrics(FILE *f, Rep *r, ReportStats *st) {
    fputs("<section id=\"metrics\"><h2>Metrics on the eval split</h2>\n", f);
    const cJSON *methods = cJSON_GetObjectItemCaseSensitive(r->rep, "methods");
    Published pub[64];
    const int np = published_list(r, pub, 64);
    const char *src = r->have_cfg ? config_str(&r->cfg, "published", "source") : "";
    // best laic value per metric
    const char *mk[3] = {"nmi", "acc", "ari"};
    double best[3] = {-1, -1, -1};
    const cJSON *m;
    cJSON_ArrayForEach(m, methods) for (int j = 0; j < 3; j++) {
        double v = jnum(m, mk[j]);
        if (v > best[j]) best[j] = v;
    }
    fputs("<div class=\"scroll\"><table id=\"metrics-table\"><tr><th class=\"l\">method</th><th>NMI %</th>"
          "<th>ACC %</th><th>ARI %</th><th>n</th><th>clusters used</th>",
          f);
    if (np) fputs("<th>published NMI / ACC / ARI %</th><th>Δ ACC</th>", f);
    fputs("</tr>\n", f);
    char b[64];
    cJSON_ArrayForEach(m, methods) {
        if (!m->string) continue;
        st->methods++;
        fputs("<tr><td class=\"l\">", f);
        ESC(f, m->string);
        fputs("</td>", f);
        const char *nt = jstr(m, "note");
        if (nt && isnan(jnum(m, "acc"))) {
            fputs("<td class=\"l muted\" colspan=\"5\">", f);
            ESC(f, nt);
            fputs("</td>", f);
        } else {
            for (int j = 0; j < 3; j++) {
                double v = jnum(m, mk[j]);
                pct(b, sizeof b, v);
                fprintf(f, "<td%s>%s</td>", v == best[j] ? " class=\"best\"" : "", b);
            }
            count_str(b, sizeof b, jnum(m, "n"));
            fprintf(f, "<td>%s</td>", b);
            count_str(b, sizeof b, jnum(m, "k_pred"));
            fprintf(f, "<td>%s</td>", b);
        }
        if (np) {
            const Published *p = NULL;
            for (int i = 0; i < np; i++)
                if (!strcmp(pub[i].name, m->string)) p = &pub[i];
            if (p) {
                double d = 100 * jnum(m, "acc") - p->v[1];
                fprintf(f, "<td>%.1f / %.1f / %.1f</td><td class=\"%s\">%+.1f</td>", p->v[0], p->v[1],
                        p->v[2], d >= -1 ? "pos" : "neg", d);
            } else
                fputs("<td class=\"muted\">–</td><td></td>", f);
        }
        fputs("</tr>\n", f);
    }
    for (int i = 0; i < np; i++) {   // published numbers of methods this run did not report
        if (cJSON_GetObjectItemCaseSensitive(methods, pub[i].name)) continue;
        fputs("<tr class=\"pub\"><td class=\"l\">", f);
        ESC(f, pub[i].name);
        fprintf(f, "</td><td colspan=\"5\" class=\"l\">not run here</td><td>%.1f / %.1f / %.1f</td>"
                   "<td></td></tr>\n", pub[i].v[0], pub[i].v[1], pub[i].v[2]);
    }
    fputs("</table></div>\n", f);
    st->published = np;
    if (np) {
        fputs("<p class=\"small muted\">Published: ", f);
        ESC(f, src[0] ? src : "config [published]");
        fputs(". Δ ACC = laic − published, in points.</p>\n", f);
    }
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(r->rep, "weights");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(w, "random_init")))
        fputs("<p class=\"small neg\">Random weights: these numbers only show that the pipeline runs.</p>\n", f);
    fputs("</section>\n", f);
}

static void section_pseudo(FILE *f, Rep *r) {
    const cJSON *pl = cJSON_GetObjectItemCaseSensitive(r->rep, "pseudo_labels");
    if (!pl) return;
    char a[64], b[64], c[64];
    fputs("<section id=\"pseudo\"><h2>Pseudo-labels and the kNN consistency filter</h2>\n", f);
    count_str(a, sizeof a, jnum(pl, "n_high_quality"));
    count_str(b, sizeof b, jnum(pl, "n"));
    pct(c, sizeof c, jnum(pl, "high_quality_fraction"));
    fprintf(f, "<p>kNN filter (k = %.0f) on the fit split: <b id=\"pl-kept\">%s</b> of %s pseudo-labels "
               "kept as high quality (%s %%).</p>\n<table class=\"kv\">",
            jnum(pl, "knn_k"), a, b, c);
    const char *rows[2][2] = {{"acc_before_filter", "ACC before the filter (all rows)"},
                              {"acc_after_filter", "ACC after the filter (kept rows)"}};
    for (int i = 0; i < 2; i++) {
        double v = jnum(pl, rows[i][0]);
        pct(a, sizeof a, v);
        fprintf(f, "<tr><td>%s</td><td><span class=\"hbar\" style=\"width:%.0fpx\"></span> <b>%s %%</b></td></tr>",
                rows[i][1], isnan(v) ? 0.0 : 300 * v, a);
    }
    fputs("</table>\n<p class=\"small muted\">ACC with the best one-to-one map between clusters and "
          "classes, computed separately on all rows and on the kept rows (these feed the "
          "prompt-learning stage).</p></section>\n",
          f);
}

/* Cluster × class heat map of pred against the eval labels, rows in the panels' order. */
static void confusion_svg(FILE *f, const Rep *r, const int64_t *pred, int K, const char *method, int idx) {
    const int C = r->n_classes;
    size_t *cnt = callocCheck((size_t)K * C, sizeof *cnt), *rs = callocCheck((size_t)K, sizeof *rs);
    int *maj = mallocCheck((size_t)K * sizeof *maj), *ord = mallocCheck((size_t)K * sizeof *ord);
    for (size_t i = 0; i < r->ne; i++)
        if (r->y[i] >= 0) {
            cnt[(size_t)pred[i] * C + (size_t)r->y[i]]++;
            rs[pred[i]]++;
        }
    for (int k = 0; k < K; k++) {
        maj[k] = -1;
        size_t bv = 0;
        for (int c = 0; c < C; c++)
            if (cnt[(size_t)k * C + c] > bv) {
                bv = cnt[(size_t)k * C + c];
                maj[k] = c;
            }
    }
    cluster_order(maj, rs, K, ord);   // rows in the panels' order
    if ((size_t)K * C > 40000) {   // too many cells for SVG: one pixel block per cell, as a PNG
        const int S = K > C ? K : C, px = S < 800 ? 800 / S : 1;
        const int W = C < 800 ? C * px : 800, H = K < 800 ? K * px : 800;
        uint8_t *img = mallocCheck((size_t)W * H * 3);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {   // the cells under this pixel, averaged (max 1 per px when small)
                const int i0 = (int)((long)y * K / H), i1 = (int)(((long)y + 1) * K / H) > i0 ? (int)(((long)y + 1) * K / H) : i0 + 1;
                const int c0 = (int)((long)x * C / W), c1 = (int)(((long)x + 1) * C / W) > c0 ? (int)(((long)x + 1) * C / W) : c0 + 1;
                double t = 0;
                for (int i = i0; i < i1; i++)
                    for (int c = c0; c < c1; c++)
                        t += rs[ord[i]] ? (double)cnt[(size_t)ord[i] * C + c] / (double)rs[ord[i]] : 0;
                blues(t / ((i1 - i0) * (c1 - c0)) * (c1 - c0), img + ((size_t)y * W + x) * 3);
            }
        char *uri = png_data_uri(img, W, H, 3);
        free(img);
        fprintf(f, "<figure id=\"confusion-%d\" style=\"margin:0\">", idx);
        if (uri) fprintf(f, "<img class=\"heat\" width=\"%d\" height=\"%d\" alt=\"clusters by class\" src=\"%s\">", W, H, uri);
        fprintf(f, "<figcaption class=\"small muted\">Rows: %d clusters ordered by majority class; columns: "
                   "%d classes in label order; colour: share of the cluster's labelled images%s.</figcaption></figure>\n",
                K, C, W < C || H < K ? " (cells averaged to fit 800 px)" : "");
        free(uri);
        free(cnt);
        free(rs);
        free(maj);
        free(ord);
        return;
    }
    const int big = K > C ? K : C;
    const double cell = big <= 12 ? 34 : big <= 30 ? 22 : big <= 60 ? 12 : big <= 120 ? 7 : 4;
    const int text = cell >= 22;
    int lw = 0;   // longest class name, for the top margin
    char nb[64];
    for (int c = 0; c < C; c++) {
        int l = (int)strlen(class_name(r, c, nb, sizeof nb));
        lw = l > lw ? l : lw;
    }
    if (lw > 28) lw = 28;
    const double left = 74, top = 14 + lw * 6.2;
    // rotated labels lean right by about 0.6 of their length past the last column
    const double W = left + cell * C + 0.6 * 6.2 * lw, H = top + cell * K + 6;
    fprintf(f, "<figure id=\"confusion-%d\" style=\"margin:0\"><svg xmlns=\"http://www.w3.org/2000/svg\" "
               "width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"",
            idx, W, H, W, H);
    ESC(f, method);
    fputs(" clusters by class\">\n", f);
    // labels at least 11 px apart: every one when cells are that big, else every step-th
    const int step = cell >= 11 ? 1 : (int)ceil(11 / cell), fs = cell >= 12 ? 11 : 9;
    for (int c = 0; c < C; c += step) {
        char nm[128];
        snprintf(nm, sizeof nm, "%.28s", class_name(r, c, nb, sizeof nb));
        const double x = left + cell * c + cell / 2 + 3;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%d\" transform=\"rotate(-55 %.1f %.1f)\">", x,
                top - 4, fs, x, top - 4);
        ESC(f, nm);
        fputs("</text>", f);
    }
    for (int i = 0; i < K; i++) {
        const int k = ord[i];
        const double y = top + cell * i;
        if (i % step == 0)
            fprintf(f, "<text x=\"%.0f\" y=\"%.1f\" font-size=\"%d\" text-anchor=\"end\">%d</text>", left - 6,
                    y + cell / 2 + 3.5, fs, k);
        for (int c = 0; c < C; c++) {
            const size_t v = cnt[(size_t)k * C + c];
            const double t = rs[k] ? (double)v / (double)rs[k] : 0;
            unsigned char rgb[3];
            blues(t, rgb);
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#%02x%02x%02x\">",
                    left + cell * c, y, cell, cell, rgb[0], rgb[1], rgb[2]);
            fprintf(f, "<title>cluster %d × ", k);
            ESC(f, class_name(r, c, nb, sizeof nb));
            fprintf(f, ": %zu of %zu</title>", v, rs[k]);
            fputs("</rect>", f);
            if (text && v)
                fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\" fill=\"%s\">%zu</text>",
                        left + cell * c + cell / 2, y + cell / 2 + 3.5, t > 0.5 ? "#fff" : "#1d2430", v);
        }
        fputc('\n', f);
    }
    fprintf(f, "</svg><figcaption class=\"small muted\">Rows: %d clusters ordered by majority class; "
               "columns: %d classes; colour: share of the cluster's labelled images%s.</figcaption></figure>\n",
            K, C, text ? "; numbers: images" : "");
    free(cnt);
    free(rs);
    free(maj);
    free(ord);
}

static void section_confusion(FILE *f, Rep *r, ReportStats *st) {
    fputs("<section id=\"confusion\"><h2>Clusters × classes</h2>\n", f);
    if (!r->pred || !r->y || r->n_classes < 1) {
        fputs("<p class=\"muted\">No confusion map: ", f);
        fputs(!r->pred ? "the run saved no cluster assignments." : "the eval split has no labels.", f);
        fputs("</p></section>\n", f);
        return;
    }
    fputs("<p class=\"small muted\">", f);
    ESC(f, r->primary);
    fputs(" on the eval split.</p><div class=\"scroll\">", f);
    confusion_svg(f, r, r->pred, r->K, r->primary, 0);
    st->confusion++;
    fputs("</div>\n", f);
    // the other methods' predictions, when the run saved them
    const char *methods[64];
    int nm = method_names(r->rep, methods, 64);
    for (int i = 0; i < nm; i++) {
        if (!strcmp(methods[i], r->primary)) continue;
        char p[4200];
        snprintf(p, sizeof p, "%s/predictions/%s.npy", r->dir, methods[i]);
        if (!exists(p)) continue;
        Npy a;
        long shape[1] = {(long)r->ne};
        if (npy_read_i64(p, &a, 1, shape)) {
            note(r, "%s", laic_last_error());
            continue;
        }
        int64_t mx = 0, *v = a.data;
        int ok = 1;
        for (size_t j = 0; j < r->ne; j++) {
            ok &= v[j] >= 0 && v[j] < MAX_K;
            if (v[j] > mx) mx = v[j];
        }
        if (ok) {
            fputs("<details><summary>", f);
            ESC(f, methods[i]);
            fputs("</summary><div class=\"scroll\">", f);
            confusion_svg(f, r, v, (int)mx + 1, methods[i], st->confusion);
            st->confusion++;
            fputs("</div></details>\n", f);
        } else
            note(r, "%s: a prediction outside [0, %d): confusion map left out", p, MAX_K);
        npy_free(&a);
    }
    fputs("</section>\n", f);
}

static void panel(FILE *f, const Rep *r, int k, int compact) {
    char b[64], nb[64];
    const double purity = r->lab_size[k] ? (double)r->maj_votes[k] / (double)r->lab_size[k] : NAN;
    count_str(b, sizeof b, (double)r->size[k]);
    fprintf(f, "<div class=\"panel\" id=\"cluster-%d\"><div class=\"t\"><span>cluster %d</span>"
               "<span class=\"muted\">%s image%s</span></div>",
            k, k, b, r->size[k] == 1 ? "" : "s");
    if (r->maj[k] >= 0) {
        fputs("<div class=\"m\">", f);
        ESC(f, class_name(r, r->maj[k], nb, sizeof nb));
        fprintf(f, " <b>%.1f %%</b></div><div class=\"bar\"><i style=\"width:%.1f%%\"></i></div>",
                100 * purity, 100 * purity);
    } else
        fputs("<div class=\"m muted\">no labelled images</div>", f);
    if (r->nouns[k]) {
        fputs("<div class=\"nouns\">", f);
        ESC(f, r->nouns[k]);
        fputs("</div>", f);
    }
    if (r->montage[k]) {
        const int cols = 4, rows = (r->montage_n[k] + cols - 1) / cols;
        fprintf(f, "<img class=\"montage\" data-n=\"%d\" data-thumb=\"%d\" width=\"%d\" height=\"%d\" "
                   "alt=\"%d images nearest the centre of cluster %d\" src=\"%s\">",
                r->montage_n[k], r->thumb, cols * r->thumb, rows * r->thumb, r->montage_n[k], k, r->montage[k]);
    }
    (void)compact;
    fputs("</div>\n", f);
}

static void section_clusters(FILE *f, Rep *r, ReportStats *st) {
    fputs("<section id=\"clusters\"><h2>Clusters</h2>\n", f);
    if (!r->pred) {
        fputs("<p class=\"muted\">The run saved no cluster assignments.</p></section>\n", f);
        return;
    }
    const int K = r->K, compact = K > 30;
    int nmont = 0;
    for (int k = 0; k < K; k++) nmont += r->montage[k] != NULL;
    fprintf(f, "<p class=\"small muted\" id=\"cluster-counts\"><span id=\"n-panels\">%d</span> clusters of ", K);
    ESC(f, r->primary);
    fprintf(f, " on the eval split, <span id=\"n-montages\">%d</span> montages. Each panel: size, "
               "majority class and its share (purity)%s%s. Panels are ordered by majority class, then size.</p>\n",
            nmont,
            !(r->nouns && K > 0 && r->nouns[0]) ? ""
            : !strcmp(r->primary, "ours")       ? ", the learned centre's nearest candidate nouns"
                                                : ", the centre's nearest candidate nouns",
            nmont ? ", and the images nearest the cluster's mean image feature" : "");
    const char *cls = compact ? "grid compact" : "grid";
    if (K <= PAGE_ALL) {
        fprintf(f, "<div class=\"%s\">\n", cls);
        for (int i = 0; i < K; i++) panel(f, r, r->order[i], compact);
        fputs("</div>\n", f);
    } else {   // pages of PAGE_PANELS clusters, the first one open (no script: <details>)
        for (int p0 = 0; p0 < K; p0 += PAGE_PANELS) {
            const int p1 = p0 + PAGE_PANELS < K ? p0 + PAGE_PANELS : K;
            fprintf(f, "<details class=\"page\"%s><summary>clusters %d–%d of %d</summary><div class=\"%s\">\n",
                    p0 == 0 ? " open" : "", p0 + 1, p1, K, cls);
            for (int i = p0; i < p1; i++) panel(f, r, r->order[i], compact);
            fputs("</div></details>\n", f);
        }
    }
    st->panels = K;
    st->montages = nmont;
    for (int k = 0; k < K; k++) st->thumbs += r->montage[k] ? r->montage_n[k] : 0;
    fputs("</section>\n", f);
}

typedef struct { int cls; double mean; int col; } ColKey;
static int cmp_colkey(const void *a, const void *b) {
    const ColKey *x = a, *y = b;
    if (x->cls != y->cls) return x->cls < y->cls ? -1 : 1;
    if (x->mean != y->mean) return x->mean > y->mean ? -1 : 1;
    return x->col - y->col;
}
static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* C.npy as an image: rows (fit images sorted by true class) and columns (candidate nouns grouped
 * by the class whose rows they weigh most), block-averaged to at most 900 × 480, a class strip
 * beside each axis, colour symmetric at the 99th percentile of |C|. */
static void section_cmap(FILE *f, Rep *r, ReportStats *st) {
    char p[4200];
    path_in(p, sizeof p, r->dir, "C.npy");
    if (!exists(p)) return;
    Npy c, l;
    if (npy_read_f32(p, &c, 2, NULL)) {
        note(r, "C heat map left out: %s", laic_last_error());
        return;
    }
    const size_t m = c.shape[0], D = c.shape[1];
    path_in(p, sizeof p, r->dir, "C_labels.npy");
    long shape[1] = {(long)m};
    if (m == 0 || D == 0 || npy_read_i64(p, &l, 1, shape)) {
        note(r, "C heat map left out: %s", m && D ? laic_last_error() : "C.npy is empty");
        npy_free(&c);
        return;
    }
    const float *C = c.data;
    const int64_t *lab = l.data;
    int64_t nc = 0;
    int ok = 1;
    for (size_t i = 0; i < m; i++) {
        ok &= lab[i] >= -1 && lab[i] < MAX_K && (i == 0 || lab[i] >= lab[i - 1]);
        if (lab[i] + 1 > nc) nc = lab[i] + 1;
    }
    for (size_t i = 0; i < m * D && ok; i++) ok = isfinite(C[i]);
    if (!ok) {
        note(r, "C heat map left out: C.npy has non-finite values or C_labels.npy is not sorted in range");
        npy_free(&c);
        npy_free(&l);
        return;
    }
    // columns: class with the largest mean coefficient, then that mean
    ColKey *ck = mallocCheck(D * sizeof *ck);
    double *sum = mallocCheck((size_t)(nc + 1) * sizeof *sum);
    size_t *cnt = callocCheck((size_t)(nc + 1), sizeof *cnt);
    for (size_t i = 0; i < m; i++) cnt[lab[i] + 1]++;
    for (size_t j = 0; j < D; j++) {
        for (int64_t q = 0; q <= nc; q++) sum[q] = 0;
        for (size_t i = 0; i < m; i++) sum[lab[i] + 1] += C[i * D + j];
        ck[j] = (ColKey){1 << 30, -INFINITY, (int)j};
        for (int64_t q = 1; q <= nc; q++)
            if (cnt[q] && sum[q] / (double)cnt[q] > ck[j].mean) ck[j] = (ColKey){(int)(q - 1), sum[q] / (double)cnt[q], (int)j};
    }
    qsort(ck, D, sizeof *ck, cmp_colkey);
    // colour scale: 99th percentile of |C| over an evenly spaced sample
    const size_t ns = m * D < 200000 ? m * D : 200000;
    float *smp = mallocCheck(ns * sizeof *smp);
    for (size_t s = 0; s < ns; s++) smp[s] = fabsf(C[(size_t)((double)s * (double)(m * D) / (double)ns)]);
    qsort(smp, ns, sizeof *smp, cmp_float);
    double scale = smp[(size_t)(0.99 * (double)(ns - 1))];
    if (!(scale > 0)) scale = 1;
    free(smp);
    // Wd × Hd cells (blocks of C averaged when it is larger), each cw × rh pixels so that a small
    // matrix is drawn at about 600 × 360; class strips of 8 px along both axes
    const size_t Wd = D < 900 ? D : 900, Hd = m < 480 ? m : 480, strip = 8;
    const size_t cw = Wd < 600 ? 600 / Wd : 1, rh = Hd < 360 ? 360 / Hd : 1;
    const size_t W = Wd * cw + strip + 2, H = Hd * rh + strip + 2;
    uint8_t *img = mallocCheck(W * H * 3);
    memset(img, 255, W * H * 3);
    for (size_t y = 0; y < Hd; y++) {
        const size_t r0 = y * m / Hd, r1 = (y + 1) * m / Hd > r0 ? (y + 1) * m / Hd : r0 + 1;
        const unsigned char g = (unsigned char)((lab[r0] & 1) ? 110 : 190);   // row class strip
        uint8_t *row = img + (strip + 2 + y * rh) * W * 3;
        memset(row, g, strip * 3);
        for (size_t x = 0; x < Wd; x++) {
            const size_t c0 = x * D / Wd, c1 = (x + 1) * D / Wd > c0 ? (x + 1) * D / Wd : c0 + 1;
            double sum = 0;
            for (size_t i = r0; i < r1; i++)
                for (size_t j = c0; j < c1; j++) sum += C[i * D + (size_t)ck[j].col];
            unsigned char rgb[3];
            rdbu(sum / (double)((r1 - r0) * (c1 - c0)) / scale, rgb);
            for (size_t u = 0; u < cw; u++) memcpy(row + (strip + 2 + x * cw + u) * 3, rgb, 3);
        }
        for (size_t v = 1; v < rh; v++) memcpy(row + v * W * 3, row, W * 3);
    }
    for (size_t x = 0; x < Wd; x++) {   // column class strip
        const int q = ck[x * D / Wd].cls;
        const unsigned char g = (unsigned char)(q == 1 << 30 ? 240 : (q & 1) ? 110 : 190);
        for (size_t y = 0; y < strip; y++) memset(img + (y * W + strip + 2 + x * cw) * 3, g, cw * 3);
    }
    char *uri = png_data_uri(img, (int)W, (int)H, 3);
    free(img);
    if (uri) {
        char a[64], b[64];
        count_str(a, sizeof a, (double)m);
        count_str(b, sizeof b, (double)D);
        fprintf(f, "<section id=\"cmap\"><h2>Ridge representation C</h2>\n<img class=\"heat\" id=\"c-heatmap\" "
                   "width=\"%zu\" height=\"%zu\" alt=\"heat map of C\" src=\"%s\">\n<p class=\"small muted\">"
                   "Rows: %s fit images sorted by true class (grey strip: class blocks); columns: %s "
                   "candidate nouns grouped by the class whose images weigh them most. Colour: blue "
                   "−%.3g … white 0 … red +%.3g (99th percentile of |C|)%s.</p></section>\n",
                W, H, uri, a, b, scale, scale, Wd < D || Hd < m ? "; blocks averaged to fit" : "");
        st->c_heatmap = 1;
        free(uri);
    } else
        note(r, "C heat map left out: %s", laic_last_error());
    free(ck);
    free(sum);
    free(cnt);
    npy_free(&c);
    npy_free(&l);
}

static void section_tsv(FILE *f, Rep *r, const char *name, const char *title, const char *id) {
    char p[4200];
    path_in(p, sizeof p, r->dir, name);
    char *t = slurp(p, NULL);
    if (!t) return;
    int rows = 0, total = 0;
    for (const char *q = t; *q; q++) total += *q == '\n';
    fprintf(f, "<section id=\"%s\"><details><summary>", id);
    ESC(f, title);
    fprintf(f, " (%s, %d rows)</summary><div class=\"scroll\"><table>\n", name, total > 0 ? total - 1 : 0);
    for (char *line = t, *next; line && *line && rows <= MAX_TSV_ROWS; line = next, rows++) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        fputs("<tr>", f);
        for (char *cell = line, *tab; cell; cell = tab) {
            tab = strchr(cell, '\t');
            if (tab) *tab++ = 0;
            fputs(rows ? "<td class=\"l\">" : "<th class=\"l\">", f);
            ESC(f, cell);
            fputs(rows ? "</td>" : "</th>", f);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table></div>", f);
    if (total - 1 > MAX_TSV_ROWS) fprintf(f, "<p class=\"small muted\">first %d rows shown</p>", MAX_TSV_ROWS);
    fputs("</details></section>\n", f);
    free(t);
}

static void section_run(FILE *f, Rep *r) {
    fputs("<section id=\"run\"><h2>Run</h2>\n<table class=\"kv\">", f);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(r->rep, "sizes");
    const char *keys[][2] = {{"n_fit", "fit images"}, {"n_eval", "eval images"}, {"K", "clusters K"},
                             {"image_centres", "image centres k_c"}, {"nouns", "nouns in the bank"},
                             {"candidate_nouns", "candidate nouns M"},
                             {"n_bad_images_skipped", "unreadable images skipped"}};
    char b[64];
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        double v = jnum(s, keys[i][0]);
        if (isnan(v)) continue;
        count_str(b, sizeof b, v);
        fprintf(f, "<tr><td>%s</td><td>%s</td></tr>", keys[i][1], b);
    }
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(r->rep, "data");
    if (jstr(data, "root")) {
        fputs("<tr><td>dataset</td><td class=\"mono\">", f);
        ESC(f, jstr(data, "kind"));
        fputs(" ", f);
        ESC(f, jstr(data, "root"));
        fputs("</td></tr>", f);
    }
    fprintf(f, "<tr><td>seed</td><td>%.0f</td></tr>", jnum(cJSON_GetObjectItemCaseSensitive(r->rep, "seeds"), "run"));
    fputs("<tr><td>device</td><td>", f);
    ESC(f, jstr(r->rep, "device"));
    fputs("</td></tr><tr><td>laic commit</td><td class=\"mono\">", f);
    ESC(f, jstr(r->rep, "laic_git_commit"));
    fputs("</td></tr>", f);
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(r->rep, "weights");
    const int random = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(w, "random_init"));
    fputs("<tr><td>weights</td><td class=\"mono\">", f);
    const char *wp = jstr(w, "path");
    ESC(f, wp && wp[0] ? wp : random ? "(none: random init)" : "(not needed)");
    fputs("</td></tr><tr><td>weights sha256</td><td class=\"mono\" id=\"weights-sha256\">", f);
    ESC(f, jstr(w, "sha256"));
    fprintf(f, "%s</td></tr><tr><td>OpenAI ViT-B/32</td><td>%s</td></tr>",
            random ? " <span class=\"neg\">(hash of the random-init recipe, not a file)</span>" : "",
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(w, "official_vit_b_32"))
                ? "yes: a conversion of OpenAI's official ViT-B-32.pt"
                : "no");
    fputs("</table>\n", f);
    const cJSON *cache = cJSON_GetObjectItemCaseSensitive(r->rep, "cache");
    if (cJSON_GetArraySize(cache) > 0) {
        fputs("<h3>Stage caches</h3><table class=\"kv\">", f);
        const cJSON *c;
        cJSON_ArrayForEach(c, cache) {
            fputs("<tr><td>", f);
            ESC(f, c->string);
            fputs("</td><td>", f);
            ESC(f, cJSON_IsString(c) ? c->valuestring : "");
            fputs("</td></tr>", f);
        }
        fputs("</table>\n", f);
    }
    fputs("</section>\n", f);
}

static void section_timings(FILE *f, Rep *r) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r->rep, "timings_s");
    if (!t) return;
    double total = jnum(t, "total");
    if (!(total > 0)) {
        total = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, t) if (cJSON_IsNumber(c)) total += c->valuedouble;
    }
    fputs("<section id=\"timings\"><h2>Stage timings</h2><table>"
          "<tr><th class=\"l\">stage</th><th>seconds</th><th class=\"l\">share of the run</th></tr>\n",
          f);
    const cJSON *c;
    cJSON_ArrayForEach(c, t) {
        if (!cJSON_IsNumber(c) || !c->string) continue;
        const int is_total = !strcmp(c->string, "total");
        fputs(is_total ? "<tr><td class=\"l\"><b>" : "<tr><td class=\"l\">", f);
        ESC(f, c->string);
        fprintf(f, "%s</td><td>%.2f</td><td class=\"l\">", is_total ? "</b>" : "", c->valuedouble);
        if (!is_total && total > 0)
            fprintf(f, "<span class=\"hbar\" style=\"width:%.0fpx\"></span> %.0f %%",
                    fmax(1, 360 * c->valuedouble / total), 100 * c->valuedouble / total);
        fputs("</td></tr>\n", f);
    }
    fputs("</table><p class=\"small muted\">Stages run on the same cores one after another; a cached "
          "stage costs only its read.</p></section>\n",
          f);
}

static void section_text(FILE *f, Rep *r, const char *name, const char *title, const char *id, int open) {
    char p[4200];
    if (!strcmp(name, "config.ini") && r->config_text) {
        fprintf(f, "<section id=\"%s\"><details%s><summary>", id, open ? " open" : "");
        ESC(f, title);
        fputs("</summary><pre>", f);
        ESC(f, r->config_text);
        fputs("</pre></details></section>\n", f);
        return;
    }
    path_in(p, sizeof p, r->dir, name);
    char *t = slurp(p, NULL);
    if (!t) return;
    fprintf(f, "<section id=\"%s\"><details%s><summary>", id, open ? " open" : "");
    ESC(f, title);
    fputs("</summary><pre>", f);
    ESC(f, t);
    fputs("</pre></details></section>\n", f);
    free(t);
}

int report_html_write(const ReportOpts *o) {
    Rep r;
    memset(&r, 0, sizeof r);
    r.dir = o->dir;
    ReportStats st = {0};
    if (load_run(&r, o)) {
        rep_free(&r);
        return -1;
    }
    build_montages(&r, o->eval_data);
    char out[4200];
    if (o->out) snprintf(out, sizeof out, "%s", o->out);
    else path_in(out, sizeof out, o->dir, "report.html");
    AtomicFile af;
    if (atomic_open(&af, out)) {
        rep_free(&r);
        return -1;
    }
    FILE *f = af.fp;
    const char *run_dir = jstr(r.rep, "run_dir");
    if (!run_dir) run_dir = o->dir;
    const char *base = strrchr(run_dir, '/');
    base = base && base[1] ? base + 1 : run_dir;
    char title[512];
    snprintf(title, sizeof title, "laic report — %s", base);
    page_begin(f, title);
    fprintf(f, "<body data-panels=\"%d\">\n<header><h1>", r.pred ? r.K : 0);
    ESC(f, title);
    fputs("</h1><div class=\"sub\">", f);
    ESC(f, run_dir);
    const cJSON *sizes = cJSON_GetObjectItemCaseSensitive(r.rep, "sizes");
    char a[64], b[64];
    count_str(a, sizeof a, jnum(sizes, "n_eval"));
    count_str(b, sizeof b, jnum(sizes, "K"));
    fprintf(f, " · %s eval images · K = %s", a, b);
    if (jstr(r.rep, "device")) {
        fputs(" · ", f);
        ESC(f, jstr(r.rep, "device"));
    }
    // links to the sections this page has
    char cpath[4200];
    path_in(cpath, sizeof cpath, o->dir, "C.npy");
    fputs("</div></header>\n<nav><a href=\"#metrics\">metrics</a>", f);
    if (cJSON_GetObjectItemCaseSensitive(r.rep, "pseudo_labels")) fputs("<a href=\"#pseudo\">pseudo-labels</a>", f);
    fputs("<a href=\"#confusion\">clusters × classes</a><a href=\"#clusters\">clusters</a>", f);
    if (exists(cpath)) fputs("<a href=\"#cmap\">C</a>", f);
    if (cJSON_GetObjectItemCaseSensitive(r.rep, "timings_s")) fputs("<a href=\"#timings\">timings</a>", f);
    fputs("<a href=\"#run\">run</a>", f);
    if (r.config_text) fputs("<a href=\"#config\">config</a>", f);
    fputs("</nav>\n<main>\n", f);
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(r.rep, "weights");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(w, "random_init")))
        fputs("<div class=\"warn\" id=\"random-weights\">RANDOM WEIGHTS: no converted CLIP weights were "
              "found, so this run used random-init weights. Every number and cluster below is "
              "meaningless; it only shows that the pipeline runs. Convert real weights with "
              "scripts/convert_weights.py (README, \"Real weights\").</div>\n",
              f);
    section_metrics(f, &r, &st);
    section_pseudo(f, &r);
    section_confusion(f, &r, &st);
    section_clusters(f, &r, &st);
    section_cmap(f, &r, &st);
    section_tsv(f, &r, "centres.tsv", "Learned centres (method ours): nearest candidate nouns", "centres");
    section_tsv(f, &r, "candidates.tsv", "Candidate nouns", "candidates");
    section_timings(f, &r);
    section_run(f, &r);
    section_text(f, &r, "config.ini", "Resolved config (config.ini: every key and where its value came from)",
                 "config", 0);
    if (r.n_notes) {
        fputs("<section id=\"notes\"><h2>Notes</h2>", f);
        for (int i = 0; i < r.n_notes; i++) {
            fputs("<div class=\"note\">", f);
            ESC(f, r.notes[i]);
            fputs("</div>", f);
        }
        fputs("</section>\n", f);
    }
    fputs("</main>\n", f);
    page_footer(f, "Run report");
    st.bytes = (size_t)ftell(f);
    rep_free(&r);
    if (atomic_commit(&af)) return -1;
    if (o->stats) *o->stats = st;
    return 0;
}

// --- sweep.html -------------------------------------------------------------------------------------

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct {
    const char *name;   // series name
    double *mean, *sd;  // (nx) NaN = absent
} Series;

static int parse_num(const char *s, double *v) {
    char *e;
    *v = strtod(s, &e);
    return e != s && !*e && isfinite(*v);
}

/* A metric chart: x = the swept values (numeric: by value, log when they span >= 100×; else
 * evenly spaced), one line per series with ± sd error bars. */
static void svg_chart(FILE *f, const char *title, const char *xlabel, char **xs, int nx, const Series *s,
                      int ns) {
    const double W = 440, L = 52, R = 14, T = 40, ph = 200, pad = 14;   // pad: x inset of the end points
    // legend rows under the x label, wrapped at the chart's width
    double lx[16], ly[16], x = L;
    int rows = 1;
    for (int j = 0; j < ns && j < 16; j++) {
        const double wlen = 22 + 6.4 * (double)strlen(s[j].name);
        if (x + wlen > W - R && x > L) {
            x = L;
            rows++;
        }
        lx[j] = x;
        ly[j] = rows;
        x += wlen;
    }
    const double B = 46 + 15 * rows, H = T + ph + B;
    double xv[512] = {0};
    int numeric = nx <= 512, logx = 0;
    for (int i = 0; i < nx && numeric; i++) numeric = parse_num(xs[i], &xv[i]);
    double xmin = 0, xmax = nx > 1 ? nx - 1 : 1;
    if (numeric) {
        xmin = xmax = xv[0];
        for (int i = 1; i < nx; i++) {
            xmin = fmin(xmin, xv[i]);
            xmax = fmax(xmax, xv[i]);
        }
        logx = xmin > 0 && xmax / xmin >= 100;
        if (logx) {
            xmin = log10(xmin);
            xmax = log10(xmax);
        }
        if (xmax == xmin) {
            xmin -= 1;
            xmax += 1;
        }
    }
    double ymin = INFINITY, ymax = -INFINITY;
    for (int j = 0; j < ns; j++)
        for (int i = 0; i < nx; i++)
            if (!isnan(s[j].mean[i])) {
                double e = isnan(s[j].sd[i]) ? 0 : s[j].sd[i];
                ymin = fmin(ymin, 100 * (s[j].mean[i] - e));
                ymax = fmax(ymax, 100 * (s[j].mean[i] + e));
            }
    if (!isfinite(ymin)) {
        ymin = 0;
        ymax = 100;
    }
    const double span = fmax(ymax - ymin, 4);
    double step = span / 5;
    const double mag = pow(10, floor(log10(step)));
    step = step / mag < 1.5 ? mag : step / mag < 3.5 ? 2 * mag : step / mag < 7.5 ? 5 * mag : 10 * mag;
    ymin = fmax(0, floor((ymin - span * 0.08) / step) * step);
    ymax = fmin(100, ceil((ymax + span * 0.08) / step) * step);
    if (ymax <= ymin) ymax = ymin + step;
    const double pw = W - L - R;
#define PX(i) (L + pad + (numeric ? ((logx ? log10(xv[i]) : xv[i]) - xmin) / (xmax - xmin) : nx > 1 ? (double)(i) / (nx - 1) : 0.5) * (pw - 2 * pad))
#define PY(v) (T + ph - (fmin(fmax((v), ymin), ymax) - ymin) / (ymax - ymin) * ph)
    fprintf(f, "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" role=\"img\" aria-label=\"",
            W, H, W, H);
    ESC(f, title);
    fprintf(f, "\"><rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#fff\"/>"
               "<text x=\"%.0f\" y=\"20\" font-size=\"13\" font-weight=\"600\">",
            W, H, L);
    ESC(f, title);
    fputs("</text>\n", f);
    for (double y = ymin; y <= ymax + step * 1e-6; y += step) {
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e3e6ec\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\" fill=\"#5b6577\">%g</text>\n",
                L, W - R, PY(y), PY(y), L - 5, PY(y) + 3.5, y);
    }
    const int every = nx > 12 ? (nx + 11) / 12 : 1;
    for (int i = 0; i < nx; i++) {
        fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#9aa3b2\"/>", PX(i), PX(i),
                T + ph, T + ph + 4);
        if (i % every) continue;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\" fill=\"#5b6577\">", PX(i),
                T + ph + 15);
        char lab[24];
        snprintf(lab, sizeof lab, "%.20s", xs[i]);
        ESC(f, lab);
        fputs("</text>", f);
    }
    fprintf(f, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#9aa3b2\"/>", L, W - R, T + ph, T + ph);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">", L + pw / 2, T + ph + 31);
    ESC(f, xlabel);
    fprintf(f, "%s</text>\n", logx ? " (log scale)" : "");
    for (int j = 0; j < ns; j++) {
        const char *col = k_series[j % 10];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" points=\"", col);
        for (int i = 0; i < nx; i++)
            if (!isnan(s[j].mean[i])) fprintf(f, "%.1f,%.1f ", PX(i), PY(100 * s[j].mean[i]));
        fputs("\"/>\n", f);
        for (int i = 0; i < nx; i++) {
            if (isnan(s[j].mean[i])) continue;
            const double m = 100 * s[j].mean[i], e = isnan(s[j].sd[i]) ? 0 : 100 * s[j].sd[i];
            if (e > 0)
                fprintf(f, "<path d=\"M%.1f %.1fV%.1fM%.1f %.1fh8M%.1f %.1fh8\" stroke=\"%s\" stroke-width=\"1.2\"/>",
                        PX(i), PY(m - e), PY(m + e), PX(i) - 4, PY(m - e), PX(i) - 4, PY(m + e), col);
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>", PX(i), PY(m), col);
            ESC(f, s[j].name);
            fputs(" at ", f);
            ESC(f, xs[i]);
            fprintf(f, ": %.2f ± %.2f</title></circle>", m, e);
        }
        fputc('\n', f);
    }
    for (int j = 0; j < ns && j < 16; j++) {   // legend under the axis label
        const double y = T + ph + 36 + 15 * ly[j];
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10.5\">",
                lx[j], y - 9, k_series[j % 10], lx[j] + 13, y);
        ESC(f, s[j].name);
        fputs("</text>", f);
    }
    fputs("</svg>\n", f);
#undef PX
#undef PY
}

int report_sweep_html_write(const char *dir, const char *out_path, ReportStats *stats) {
    char p[4200];
    path_in(p, sizeof p, dir, "sweep.json");
    char *js = slurp(p, NULL);
    if (!js) return laic_error("%s: cannot read", p);
    cJSON *sw = cJSON_Parse(js);
    free(js);
    if (!cJSON_IsObject(sw)) {
        cJSON_Delete(sw);
        return laic_error("%s: not a JSON object", p);
    }
    ReportStats st = {0};
    char out[4200];
    if (out_path) snprintf(out, sizeof out, "%s", out_path);
    else path_in(out, sizeof out, dir, "sweep.html");
    AtomicFile af;
    if (atomic_open(&af, out)) {
        cJSON_Delete(sw);
        return -1;
    }
    FILE *f = af.fp;
    const char *base = strrchr(dir, '/');
    base = base && base[1] ? base + 1 : dir;
    char title[512];
    snprintf(title, sizeof title, "laic sweep — %s", base);
    page_begin(f, title);
    const cJSON *axes = cJSON_GetObjectItemCaseSensitive(sw, "axes");
    const cJSON *pts = cJSON_GetObjectItemCaseSensitive(sw, "points");
    const cJSON *sum = cJSON_GetObjectItemCaseSensitive(sw, "summary");
    const int npts = cJSON_GetArraySize(pts);
    int nfail = 0;
    const cJSON *pt;
    cJSON_ArrayForEach(pt, pts) nfail += jstr(pt, "status") && strcmp(jstr(pt, "status"), "ok");
    fprintf(f, "<body data-points=\"%d\">\n<header><h1>", npts);
    ESC(f, title);
    fputs("</h1><div class=\"sub\">", f);
    ESC(f, dir);
    fprintf(f, " · %d points (%s)%s</div></header>\n<nav><a href=\"#charts\">charts</a><a href=\"#summary\">"
               "summary</a><a href=\"#points\">points</a></nav>\n<main>\n",
            npts, jstr(sw, "mode") ? jstr(sw, "mode") : "grid", nfail ? ", some failed" : "");
    // axes; x = the first axis that is not run.seed
    const char *axis_keys[32];
    int nax = 0, xaxis = -1;
    const cJSON *ax;
    fputs("<section id=\"axes\"><h2>Swept values</h2><table class=\"kv\">", f);
    cJSON_ArrayForEach(ax, axes) {
        const char *k = jstr(ax, "key");
        if (!k || nax >= 32) continue;
        axis_keys[nax] = k;
        if (xaxis < 0 && strcmp(k, "run.seed")) xaxis = nax;
        nax++;
        fputs("<tr><td class=\"mono\">", f);
        ESC(f, k);
        fputs("</td><td>", f);
        const cJSON *v;
        int first = 1;
        cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(ax, "values")) {
            if (!first) fputs(", ", f);
            ESC(f, cJSON_IsString(v) ? v->valuestring : "?");
            first = 0;
        }
        fputs("</td></tr>", f);
    }
    fputs("</table></section>\n", f);
    // methods (series): "<method>.acc" columns of the summary means
    const char *series[16];
    int nser = 0;
    const cJSON *g;
    cJSON_ArrayForEach(g, sum) {
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(g, "mean")) {
            const char *k = c->string;
            size_t L = k ? strlen(k) : 0;
            if (L < 5 || strcmp(k + L - 4, ".acc") || !strncmp(k, "pseudo_labels.", 14)) continue;
            int seen = 0;
            for (int i = 0; i < nser; i++) seen |= strlen(series[i]) == L - 4 && !strncmp(series[i], k, L - 4);
            if (!seen && nser < 16) {
                char *nm = strndup(k, L - 4);
                series[nser++] = nm;
            }
        }
    }
    fputs("<section id=\"charts\"><h2>Metrics vs swept value</h2>\n", f);
    if (xaxis < 0 || nser == 0) {
        fputs("<p class=\"muted\">No chart: the sweep has no axis other than run.seed, or no point "
              "reported metrics. The summary table below has the means and deviations.</p>\n",
              f);
    } else {
        // groups: the summary rows sharing every non-seed axis but x
        const int ng_all = cJSON_GetArraySize(sum);
        char **xs = callocCheck((size_t)ng_all + 1, sizeof *xs);
        int *done = callocCheck((size_t)ng_all + 1, sizeof *done), groups = 0;
        for (int g0 = 0; g0 < ng_all && groups < 8; g0++) {
            if (done[g0]) continue;
            const cJSON *vals0 = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(sum, g0), "values");
            int members[512], nmbr = 0;
            for (int g1 = g0; g1 < ng_all && nmbr < 512; g1++) {
                const cJSON *vals1 = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(sum, g1), "values");
                int same = 1;
                for (int a = 0; a < nax; a++) {
                    if (a == xaxis || !strcmp(axis_keys[a], "run.seed")) continue;
                    const char *s0 = jstr(vals0, axis_keys[a]), *s1 = jstr(vals1, axis_keys[a]);
                    same &= s0 && s1 && !strcmp(s0, s1);
                }
                if (same) {
                    done[g1] = 1;
                    members[nmbr++] = g1;
                }
            }
            char gtitle[1024] = "";
            size_t gl = 0;
            for (int a = 0; a < nax; a++) {
                if (a == xaxis || !strcmp(axis_keys[a], "run.seed")) continue;
                const char *s0 = jstr(vals0, axis_keys[a]);
                gl += (size_t)snprintf(gtitle + gl, gl < sizeof gtitle ? sizeof gtitle - gl : 0, "%s%s=%s",
                                       gl ? ", " : "", axis_keys[a], s0 ? s0 : "?");
                if (gl >= sizeof gtitle) gl = sizeof gtitle - 1;
            }
            for (int i = 0; i < nmbr; i++) {
                const char *xv = jstr(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(sum, members[i]), "values"),
                                      axis_keys[xaxis]);
                xs[i] = (char *)(xv ? xv : "?");
            }
            if (gtitle[0]) {
                fputs("<h3>", f);
                ESC(f, gtitle);
                fputs("</h3>", f);
            }
            fputs("<div class=\"charts\">", f);
            const char *mk[3] = {"acc", "nmi", "ari"}, *mt[3] = {"ACC %", "NMI %", "ARI %"};
            for (int q = 0; q < 3; q++) {
                Series s[16];
                for (int j = 0; j < nser; j++) {
                    s[j].name = series[j];
                    s[j].mean = mallocCheck((size_t)nmbr * sizeof(double));
                    s[j].sd = mallocCheck((size_t)nmbr * sizeof(double));
                    char col[128];
                    snprintf(col, sizeof col, "%s.%s", series[j], mk[q]);
                    for (int i = 0; i < nmbr; i++) {
                        const cJSON *gi = cJSON_GetArrayItem(sum, members[i]);
                        s[j].mean[i] = jnum(cJSON_GetObjectItemCaseSensitive(gi, "mean"), col);
                        s[j].sd[i] = jnum(cJSON_GetObjectItemCaseSensitive(gi, "std"), col);
                    }
                }
                svg_chart(f, mt[q], axis_keys[xaxis], xs, nmbr, s, nser);
                st.charts++;
                for (int j = 0; j < nser; j++) {
                    free(s[j].mean);
                    free(s[j].sd);
                }
            }
            fputs("</div>\n", f);
            groups++;
        }
        int rest = 0;
        for (int g0 = 0; g0 < ng_all; g0++) rest += !done[g0];
        if (rest) fprintf(f, "<p class=\"small muted\">%d more groups are in the tables only.</p>", rest);
        fputs("<p class=\"small muted\">Points: mean over run.seed; bars: ± one sample standard deviation "
              "(none with one seed).</p>\n",
              f);
        free(xs);
        free(done);
    }
    fputs("</section>\n", f);
    // summary table
    fputs("<section id=\"summary\"><h2>Summary (mean ± std over seeds)</h2><div class=\"scroll\"><table><tr>", f);
    for (int a = 0; a < nax; a++)
        if (strcmp(axis_keys[a], "run.seed")) {
            fputs("<th class=\"l\">", f);
            ESC(f, axis_keys[a]);
            fputs("</th>", f);
        }
    fputs("<th>n</th>", f);
    for (int j = 0; j < nser; j++) {
        fputs("<th>", f);
        ESC(f, series[j]);
        fputs(" ACC %</th>", f);
    }
    fputs("<th>kept pseudo-labels %</th><th>their ACC %</th></tr>\n", f);
    cJSON_ArrayForEach(g, sum) {
        fputs("<tr>", f);
        const cJSON *vals = cJSON_GetObjectItemCaseSensitive(g, "values");
        for (int a = 0; a < nax; a++)
            if (strcmp(axis_keys[a], "run.seed")) {
                fputs("<td class=\"l\">", f);
                ESC(f, jstr(vals, axis_keys[a]) ? jstr(vals, axis_keys[a]) : "");
                fputs("</td>", f);
            }
        fprintf(f, "<td>%.0f</td>", jnum(g, "n"));
        const cJSON *mean = cJSON_GetObjectItemCaseSensitive(g, "mean"), *sd = cJSON_GetObjectItemCaseSensitive(g, "std");
        for (int j = 0; j < nser + 2; j++) {
            char col[128];
            if (j < nser) snprintf(col, sizeof col, "%s.acc", series[j]);
            else snprintf(col, sizeof col, "%s", j == nser ? "pseudo_labels.high_quality_fraction" : "pseudo_labels.acc_after_filter");
            const double m = jnum(mean, col), s = jnum(sd, col);
            if (isnan(m)) fputs("<td class=\"muted\">–</td>", f);
            else fprintf(f, "<td>%.1f ± %.1f</td>", 100 * m, isnan(s) ? 0 : 100 * s);
        }
        fputs("</tr>\n", f);
    }
    fputs("</table></div></section>\n", f);
    // points
    fputs("<section id=\"points\"><h2>Points</h2><div class=\"scroll\"><table id=\"points-table\"><tr>"
          "<th>#</th>",
          f);
    for (int a = 0; a < nax; a++) {
        fputs("<th class=\"l\">", f);
        ESC(f, axis_keys[a]);
        fputs("</th>", f);
    }
    for (int j = 0; j < nser; j++) {
        fputs("<th>", f);
        ESC(f, series[j]);
        fputs("<br><span class=\"small muted\">NMI / ACC / ARI</span></th>", f);
    }
    fputs("<th>time s</th><th class=\"l\">report</th></tr>\n", f);
    cJSON_ArrayForEach(pt, pts) {
        fprintf(f, "<tr><td>%.0f</td>", jnum(pt, "point"));
        const cJSON *vals = cJSON_GetObjectItemCaseSensitive(pt, "values");
        for (int a = 0; a < nax; a++) {
            fputs("<td class=\"l\">", f);
            ESC(f, jstr(vals, axis_keys[a]) ? jstr(vals, axis_keys[a]) : "");
            fputs("</td>", f);
        }
        const cJSON *met = cJSON_GetObjectItemCaseSensitive(pt, "metrics");
        for (int j = 0; j < nser; j++) {
            char c0[128], c1[128], c2[128], b0[32], b1[32], b2[32];
            snprintf(c0, sizeof c0, "%s.nmi", series[j]);
            snprintf(c1, sizeof c1, "%s.acc", series[j]);
            snprintf(c2, sizeof c2, "%s.ari", series[j]);
            pct(b0, sizeof b0, jnum(met, c0));
            pct(b1, sizeof b1, jnum(met, c1));
            pct(b2, sizeof b2, jnum(met, c2));
            fprintf(f, "<td>%s / <b>%s</b> / %s</td>", b0, b1, b2);
        }
        const double t = jnum(met, "time_s");
        if (isnan(t)) fputs("<td>–</td>", f);
        else fprintf(f, "<td>%.1f</td>", t);
        const char *status = jstr(pt, "status"), *rd = jstr(pt, "run_dir");
        fputs("<td class=\"l\">", f);
        if (status && !strcmp(status, "ok") && rd) {
            // link relative to the sweep directory: the point's folder name
            const char *rel = rd;
            const size_t dl = strlen(dir);
            if (!strncmp(rd, dir, dl) && rd[dl] == '/') rel = rd + dl + 1;
            else if (strrchr(rd, '/')) rel = strrchr(rd, '/') + 1;
            fputs("<a class=\"point-report\" href=\"", f);
            for (const char *c = rel; *c; c++) {   // percent-encode all but unreserved, '/', '=', ','
                if (isalnum((unsigned char)*c) || strchr("-._~/=,", *c)) fputc(*c, f);
                else fprintf(f, "%%%02X", (unsigned char)*c);
            }
            fputs("/report.html\">report.html</a>", f);
            st.points++;
        } else {
            fputs("<span class=\"neg\">", f);
            ESC(f, status ? status : "no status");
            fputs("</span>", f);
            if (status) st.points++;
        }
        fputs("</td></tr>\n", f);
    }
    fputs("</table></div></section>\n", f);
    // plots made by scripts/plot.py (laic sweep --plot), when present, in name order
    char **pngs = NULL;
    int npng = 0;
    DIR *dd = opendir(dir);
    for (struct dirent *e; dd && (e = readdir(dd));) {
        const size_t L = strlen(e->d_name);
        if (L < 5 || strcmp(e->d_name + L - 4, ".png") || npng >= 64) continue;
        char **q = realloc(pngs, (size_t)(npng + 1) * sizeof *q);
        if (!q) break;
        pngs = q;
        pngs[npng++] = strdup(e->d_name);
    }
    if (dd) closedir(dd);
    if (npng) qsort(pngs, (size_t)npng, sizeof *pngs, cmp_str);
    int nplots = 0;
    for (int i = 0; i < npng; i++) {
        char pp[4200];
        snprintf(pp, sizeof pp, "%s/%s", dir, pngs[i]);
        uint8_t *rgb;
        int w, h;
        char *uri = NULL;
        if (!png_read_file_rgb8(pp, &rgb, &w, &h)) {
            uri = png_data_uri(rgb, w, h, 3);
            free(rgb);
        }
        if (uri) {
            if (!nplots++) fputs("<section id=\"plots\"><h2>Plots (scripts/plot.py)</h2>\n", f);
            fputs("<figure><img class=\"heat\" style=\"image-rendering:auto\" alt=\"", f);
            ESC(f, pngs[i]);
            fprintf(f, "\" width=\"%d\" height=\"%d\" src=\"%s\"><figcaption class=\"small muted\">", w, h, uri);
            ESC(f, pngs[i]);
            fputs("</figcaption></figure>\n", f);
            free(uri);
        }
        free(pngs[i]);
    }
    free(pngs);
    if (nplots) fputs("</section>\n", f);
    fputs("</main>\n", f);
    page_footer(f, "Sweep report");
    st.bytes = (size_t)ftell(f);
    for (int j = 0; j < nser; j++) free((char *)series[j]);
    cJSON_Delete(sw);
    if (atomic_commit(&af)) return -1;
    if (stats) *stats = st;
    return 0;
}
