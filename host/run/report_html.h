/*
 * report_html.h — report.html of a run directory and sweep.html of a sweep directory: one
 * self-contained HTML file each (every image a data: URI, PNG through libpng; inline CSS and SVG;
 * no network, no script), written by `laic run` / `laic sweep` at the end and rebuilt from the
 * directory's files by `laic report DIR`.
 *
 * report.html reads, from the run directory (see host/run/run.h for what each file is):
 *   report.json (required)  metrics per method, pseudo-label quality, sizes, timings, weights,
 *                           class names, the eval dataset's resolved kind/root/split
 *   config.ini              the resolved config (shown verbatim) and its [published] numbers
 *   predictions/ours.npy    the eval-split clusters of the cluster panels: those of ours (prompt
 *                           learning) when it ran, else assignments.npy (ours-notrain), else
 *                           predictions/<method>.npy of the first method that has one
 *   predictions/<m>.npy     more confusion maps, one per method (when present)
 *   eval_labels.npy         true classes of the eval rows (-1 unknown)
 *   clusters.tsv            each ours-notrain cluster's nearest candidate nouns
 *   centres.tsv             each learned centre's nearest candidate nouns (panels of ours)
 *   cluster_nearest.npy     (K, n) eval rows nearest each cluster's mean image feature (-1 pad)
 *   eval_index.npy          dataset item of every eval row, to decode the montage images
 *   C.npy, C_labels.npy     the C heat map (ridge.save_c)
 *   centres.tsv, candidates.tsv   also shown as tables when present
 * Everything is validated before use as a size or index; a missing or inconsistent optional file
 * leaves its panel out with a note in the page (and a warning on stderr) instead of failing.
 * Montages need the images: the eval dataset is re-opened from report.json's data.root (or
 * config.ini) unless the caller passes it open; precomputed-feature runs have no montages.
 *
 * Untrusted text (class names, nouns, paths, config values) is HTML-escaped, invalid UTF-8
 * replaced by U+FFFD and control characters dropped.
 */
#ifndef LAIC_REPORT_HTML_H
#define LAIC_REPORT_HTML_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "data/data.h"

/* What a page holds (for the log line and the tests). */
typedef struct {
    int methods;          // rows of the metrics table with laic numbers
    int published;        // rows with published numbers
    int panels;           // cluster panels
    int montages;         // panels with a montage image
    int thumbs;           // images in all montages
    int confusion;        // confusion heat maps
    int c_heatmap;        // 1 when the C heat map is shown
    int points;           // sweep.html: rows of the points table
    int charts;           // sweep.html: metric charts
    size_t bytes;         // size of the file written
} ReportStats;

typedef struct {
    const char *dir;            // run directory to read
    const char *out;            // output path; NULL = <dir>/report.html
    const Dataset *eval_data;   // the eval split already open, or NULL (re-opened when needed)
    ReportStats *stats;         // filled when not NULL
} ReportOpts;

/* report.html of a run directory; 0, or -1 with one error line (no report.json, unwritable). */
int report_html_write(const ReportOpts *o);
/* sweep.html from <dir>/sweep.json (out NULL = <dir>/sweep.html). */
int report_sweep_html_write(const char *dir, const char *out, ReportStats *stats);

/* Primary clustering of a run directory, as report.html shows it: predictions/ours.npy, else
 * assignments.npy (method "ours-notrain"), else predictions/<first method with a file>.npy, eval
 * split, validated against
 * n_eval (values in [0, 1e6)). *pred malloc'd; 1 = found, 0 = none, -1 = unreadable (error). */
int report_primary_clustering(const char *dir, const char *const *methods, int n_methods,
                              size_t n_eval, int64_t **pred, char *method, size_t method_n);

/* HTML text escaping of untrusted UTF-8: & < > " ' as entities, invalid UTF-8 bytes as U+FFFD,
 * C0 controls (but tab and newline) and DEL dropped. */
void report_html_escape(FILE *f, const char *s);

/* Thumbnails per montage and thumbnail size for K clusters (16 at 56 px up to K = 30, else 8 at
 * 40 px), so K >= 100 stays a compact page. */
int report_montage_images(int K);
int report_thumb_size(int K);

#endif
