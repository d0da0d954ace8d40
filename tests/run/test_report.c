/*
 * test_report.c — report.html and sweep.html (host/run/report_html.c) without a browser:
 *  - HTML escaping of untrusted text (class names, nouns): entities, invalid UTF-8, controls;
 *  - a run on precomputed features: every panel but the montages, hostile noun names escaped,
 *    published numbers beside laic's, nothing fetched from outside the file;
 *  - a run on images: one montage per cluster whose thumbnails are the dataset's images (the
 *    PNG inside the data: URI decoded and its colours checked), the C heat map, the confusion map;
 *  - K = 120: every cluster has a panel, in pages of 50 (<details>), compact grid;
 *  - `laic report DIR` rebuilds the same page from the directory's files; damaged optional files
 *    leave their panel out with a note; a directory without report.json is one error line;
 *  - sweep.html: one row per point linked to its report.html, one chart per metric with error bars.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/err.h"
#include "io/npy.h"
#include "io/png.h"
#include "run/report_html.h"
#include "report_fixture.h"
#include "../test.h"

static char *escaped(const char *s) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    report_html_escape(f, s);
    fclose(f);
    return buf;
}

TEST(report_html_escape_untrusted_text) {
    struct { const char *in, *want; } cases[] = {
        {"<script>alert(\"x\")</script>", "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"},
        {"Tom & Jerry's", "Tom &amp; Jerry&#39;s"},
        {"café ü 日本 🐱", "café ü 日本 🐱"},                       // valid UTF-8 unchanged
        {"a\xff" "b", "a\xEF\xBF\xBD" "b"},                          // stray byte → U+FFFD
        {"\xc0\xaf", "\xEF\xBF\xBD\xEF\xBF\xBD"},                   // overlong '/' → 2 × U+FFFD
        {"\xed\xa0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},    // surrogate → 3 × U+FFFD
        {"\xe6\x97", "\xEF\xBF\xBD\xEF\xBF\xBD"},                     // truncated sequence
        {"x\x01y\x7fz\x1b", "xyz"},                                  // C0 controls and DEL dropped
        {"a\tb\nc", "a\tb\nc"},                                      // tab and newline kept
        {"n\xc2\x85" "e", "ne"},                                     // C1 control (NEL) dropped
        {"", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = escaped(cases[i].in);
        CHECK(!strcmp(got, cases[i].want), "case %zu: '%s' → '%s', want '%s'", i, cases[i].in, got,
              cases[i].want);
        free(got);
    }
}

static char *read_page(const char *dir, const char *name) {
    char p[1400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return test_read_file(p, NULL);
}

/* Every src= embeds its data; every href= points inside the page or (sweep.html) is a relative
 * link to a point's report.html; no <script>, no URL with a scheme or host, no CSS url(). */
static void check_self_contained(const char *html, const char *what) {
    CHECK(!strstr(html, "<script"), "%s: no <script> element", what);
    CHECK(!strstr(html, "url("), "%s: no CSS url()", what);
    int bad = 0, n = 0;
    const char *attrs[] = {" src=\"", " href=\""};
    for (int a = 0; a < 2; a++)
        for (const char *p = html; (p = strstr(p, attrs[a])); p++) {
            const char *v = p + strlen(attrs[a]);
            n++;
            if (!strncmp(v, "data:image/png;base64,", 22) || v[0] == '#') continue;
            const size_t len = strcspn(v, "\""), colon = strcspn(v, ":");
            if (a == 1 && v[0] != '/' && colon >= len) continue;   // a relative link: no scheme, no host

            bad++;
            if (bad < 3) printf("    external reference: %.80s\n", v);
        }
    CHECK(bad == 0, "%s: %d of %d src/href attributes point outside the file", what, bad, n);
}

TEST(report_precomputed_features_run) {
    char why[700];
    const char *dir = fix_planted_run(why, sizeof why);
    REQUIRE(dir, "planted run: %s", why);
    char *html = read_page(dir, "report.html");
    REQUIRE(html, "the run wrote report.html");
    CHECK(fix_count(html, "class=\"panel\"") == FIX_PLANTED_K, "%d cluster panels (want %d)",
          fix_count(html, "class=\"panel\""), FIX_PLANTED_K);
    CHECK(!strstr(html, "class=\"montage\""), "precomputed features: no montages");
    CHECK(strstr(html, "<span id=\"n-montages\">0</span>") != NULL, "the page says 0 montages");
    CHECK(strstr(html, "id=\"confusion-0\"") && strstr(html, "id=\"metrics-table\""),
          "confusion map and metrics table");
    CHECK(fix_count(html, "<tr><td class=\"l\">") >= 3, "a metrics row per method");
    // hostile noun names: shown escaped, never as markup
    CHECK(strstr(html, "&lt;b&gt;noun") && !strstr(html, "<b>noun"), "noun names are escaped");
    // published numbers: ours was not run here, so its row says so; the source is escaped
    CHECK(strstr(html, "85.2 / 92.9 / 84.8") && strstr(html, "not run here"), "published row for ours");
    CHECK(strstr(html, "id=\"pseudo\"") && strstr(html, "id=\"timings\"") && strstr(html, "id=\"config\""),
          "pseudo-labels, timings and config sections");
    CHECK(!strstr(html, "id=\"random-weights\""), "no random-weights banner: no weights were needed");
    check_self_contained(html, "report.html");
    const char *files[] = {"eval_labels.npy", "report.html"};
    for (int i = 0; i < 2; i++) {
        char p[1400];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        CHECK(file_exists(p), "%s written", files[i]);
    }
    char p[1400];
    snprintf(p, sizeof p, "%s/cluster_nearest.npy", dir);
    CHECK(!file_exists(p), "no cluster_nearest.npy without images");
    free(html);
}

/* The PNG inside the first data: URI after `from` in html: decoded RGB (malloc'd) or NULL. */
static uint8_t *first_png(const char *from, int *w, int *h) {
    const char *u = strstr(from, "data:image/png;base64,");
    if (!u) return NULL;
    size_t n;
    unsigned char *bytes = fix_base64_decode(u + 22, &n);
    uint8_t *rgb = NULL;
    if (png_decode_rgb8(bytes, n, "montage", &rgb, w, h)) rgb = NULL;
    free(bytes);
    return rgb;
}

TEST(report_image_run_montages_and_heatmaps) {
    char why[700];
    const char *dir = fix_image_run(why, sizeof why);
    if (!dir && strstr(why, "wordnet")) SKIP("%s", why);
    REQUIRE(dir, "image run: %s", why);
    char *html = read_page(dir, "report.html");
    REQUIRE(html, "report.html written");
    CHECK(fix_count(html, "class=\"panel\"") == FIX_IMG_K, "%d panels", fix_count(html, "class=\"panel\""));
    CHECK(fix_count(html, "class=\"montage\"") == FIX_IMG_K, "one montage per cluster (%d)",
          fix_count(html, "class=\"montage\""));
    CHECK(strstr(html, "id=\"random-weights\"") != NULL, "random-weights banner");
    CHECK(strstr(html, "id=\"c-heatmap\"") != NULL, "C heat map (ridge.save_c)");
    CHECK(strstr(html, "&lt;i&gt;magenta&lt;/i&gt; &amp; &quot;pink&quot;") && !strstr(html, "<i>magenta"),
          "class names escaped");
    CHECK(!strstr(html, "<script>alert"), "no script injected through a class name");
    CHECK(strstr(html, "60.0") && strstr(html, "50.0 / 60.0 / 40.0") && strstr(html, "test &lt;numbers&gt; &amp; co"),
          "published numbers of ours-notrain and their source");
    check_self_contained(html, "report.html");
    // each montage: its thumbnails are the data's images (one of the three planted colours)
    int total = 0, coloured = 0, montages = 0;
    for (const char *p = html; (p = strstr(p, "<img class=\"montage\"")); p++) {
        int w, h, dn = 0, th = 0;
        const char *dnp = strstr(p, "data-n=\""), *thp = strstr(p, "data-thumb=\"");
        if (dnp) dn = atoi(dnp + 8);
        if (thp) th = atoi(thp + 12);
        uint8_t *rgb = first_png(p, &w, &h);
        if (!CHECK(rgb, "montage %d decodes: %s", montages, laic_last_error())) break;
        CHECK(w == 4 * th && h == (dn + 3) / 4 * th && dn >= 1 && dn <= 16,
              "montage %d is %dx%d for %d thumbnails of %d px", montages, w, h, dn, th);
        for (int i = 0; i < w * h && i < w * ((dn + 3) / 4) * th; i++) {
            const uint8_t *q = rgb + 3 * i;
            const int mag = q[0] > 200 && q[1] < 60 && q[2] > 200, cyan = q[0] < 60 && q[1] > 200 && q[2] > 200,
                      yel = q[0] > 200 && q[1] > 200 && q[2] < 60;
            coloured += mag || cyan || yel;
        }
        total += dn * th * th;
        free(rgb);
        montages++;
    }
    CHECK(montages == FIX_IMG_K && total > 0 && coloured >= total * 9 / 10,
          "montage pixels are the planted images: %d of %d thumbnail pixels in a planted colour",
          coloured, total);
    // the inputs the rebuild needs are in the run directory
    const char *files[] = {"eval_labels.npy", "eval_index.npy", "cluster_nearest.npy", "C.npy"};
    for (int i = 0; i < 4; i++) {
        char p[1400];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        CHECK(file_exists(p), "%s written", files[i]);
    }
    Npy a;
    char p[1400];
    snprintf(p, sizeof p, "%s/cluster_nearest.npy", dir);
    if (npy_read_i64(p, &a, 2, NULL) == 0) {
        CHECK(a.shape[0] == FIX_IMG_K && a.shape[1] == 16, "cluster_nearest is K x 16");
        npy_free(&a);
    }
    free(html);
}

TEST(report_large_k_is_paged) {
    char why[700];
    const char *dir = fix_big_run(why, sizeof why);
    REQUIRE(dir, "K = 120 run: %s", why);
    char *html = read_page(dir, "report.html");
    REQUIRE(html, "report.html written");
    CHECK(fix_count(html, "class=\"panel\"") == FIX_BIG_K, "%d panels (want %d)", fix_count(html, "class=\"panel\""),
          FIX_BIG_K);
    CHECK(fix_count(html, "<details class=\"page\"") == 3 && fix_count(html, "<details class=\"page\" open") == 1,
          "three pages of at most 50 clusters, the first open");
    CHECK(strstr(html, "class=\"grid compact\"") != NULL, "compact grid");
    struct stat st;
    char p[1400];
    snprintf(p, sizeof p, "%s/report.html", dir);
    CHECK(!stat(p, &st) && st.st_size < 4 << 20, "K = 120 page stays small: %lld bytes", (long long)st.st_size);
    free(html);
}

/* The page without its footer (which carries the time it was written). */
static char *strip_footer(char *html) {
    char *f = html ? strstr(html, "<footer>") : NULL;
    if (f) *f = 0;
    return html;
}

TEST(report_rebuild_from_the_run_directory) {
    char why[700], err[8192], p[1400], args[1600];
    const char *dir = fix_image_run(why, sizeof why);
    if (!dir) dir = fix_planted_run(why, sizeof why);
    REQUIRE(dir, "run: %s", why);
    char *orig = strip_footer(read_page(dir, "report.html"));
    snprintf(p, sizeof p, "%s/report.html", dir);
    REQUIRE(orig && remove(p) == 0, "remove report.html");
    snprintf(args, sizeof args, "report %s", dir);
    int rc = run_laic(args, NULL, err, sizeof err);
    REQUIRE(rc == 0, "laic report failed (%d): %s", rc, err);
    char *again = strip_footer(read_page(dir, "report.html"));
    CHECK(again && !strcmp(orig, again), "laic report rebuilds the page the run wrote (%zu vs %zu bytes)",
          strlen(orig), again ? strlen(again) : 0);
    free(again);
    // --out elsewhere; the run's own page is untouched
    snprintf(args, sizeof args, "report %s --out %s", dir, test_path("elsewhere.html"));
    CHECK(run_laic(args, NULL, err, sizeof err) == 0 && file_exists(test_path("elsewhere.html")), "--out: %s", err);
    // damaged optional inputs: the page is still written, without the panels they feed, with a note
    char copy[700], cmd[2000];
    snprintf(copy, sizeof copy, "%s/damaged", test_tmpdir());
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", copy, dir, copy);
    REQUIRE(system(cmd) == 0, "copy the run");
    snprintf(p, sizeof p, "%s/eval_labels.npy", copy);
    test_write_file(p, "not an npy file", 15);
    snprintf(p, sizeof p, "%s/cluster_nearest.npy", copy);
    if (file_exists(p)) {
        int64_t bad[3 * 16];
        for (int i = 0; i < 3 * 16; i++) bad[i] = 1000000;   // rows that do not exist
        size_t shape[2] = {3, 16};
        npy_write(p, NPY_I64, 2, shape, bad);
    }
    snprintf(args, sizeof args, "report %s", copy);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 0, "damaged inputs still give a page (%d): %s", rc, err);
    char *dam = read_page(copy, "report.html");
    CHECK(dam && strstr(dam, "id=\"notes\"") && strstr(dam, "eval_labels.npy") && !strstr(dam, "id=\"confusion-0\""),
          "the notes name eval_labels.npy and the confusion map is left out");
    CHECK(dam && !strstr(dam, "class=\"montage\""), "no montage from bad cluster_nearest rows");
    free(dam);
    // not a run directory: one error line, exit 1, nothing written
    snprintf(p, sizeof p, "%s/empty-dir", test_tmpdir());
    mkdir(p, 0755);
    snprintf(args, sizeof args, "report %s", p);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, "report.json"), "no report.json: %s", err);
    snprintf(p, sizeof p, "%s/empty-dir/report.html", test_tmpdir());
    CHECK(!file_exists(p), "nothing written");
    rc = run_laic("report /nonexistent-run-dir", NULL, err, sizeof err);
    CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, "not a directory"), "missing dir: %s", err);
    free(orig);
}

TEST(report_sweep_html) {
    char why[700];
    const char *dir = fix_sweep(why, sizeof why);
    REQUIRE(dir, "sweep: %s", why);
    char *html = read_page(dir, "sweep.html");
    REQUIRE(html, "sweep.html written");
    CHECK(fix_count(html, "class=\"point-report\"") == FIX_SWEEP_POINTS, "%d point links (want %d)",
          fix_count(html, "class=\"point-report\""), FIX_SWEEP_POINTS);
    CHECK(fix_count(html, "<svg class=\"chart\"") == 3, "one chart per metric (%d)", fix_count(html, "<svg class=\"chart\""));
    CHECK(strstr(html, "ridge.lambda (log scale)") != NULL, "λ from 0.1 to 1000 on a log axis");
    CHECK(strstr(html, "stroke-width=\"1.2\"") != NULL, "error bars over the two seeds");
    CHECK(strstr(html, "ours-notrain") && strstr(html, "clip-kmeans"), "both methods as series");
    check_self_contained(html, "sweep.html");
    // each link resolves to the point's report.html
    int ok = 0, n = 0;
    for (const char *p = html; (p = strstr(p, "class=\"point-report\" href=\"")); p++) {
        const char *v = p + strlen("class=\"point-report\" href=\"");
        char rel[512], full[1200];
        size_t k = 0;
        for (const char *c = v; *c && *c != '"' && k + 1 < sizeof rel; c++) {   // percent-decode
            unsigned x;
            if (*c == '%' && sscanf(c + 1, "%2x", &x) == 1) {
                rel[k++] = (char)x;
                c += 2;
            } else
                rel[k++] = *c;
        }
        rel[k] = 0;
        snprintf(full, sizeof full, "%s/%s", dir, rel);
        n++;
        ok += file_exists(full);
    }
    CHECK(n == FIX_SWEEP_POINTS && ok == n, "%d of %d point links resolve to a report.html", ok, n);
    free(html);
    // laic report on the sweep directory rebuilds sweep.html
    char args[3000], err[4096];
    snprintf(args, sizeof args, "report %s --out %s", dir, test_path("sweep-again.html"));
    CHECK(run_laic(args, NULL, err, sizeof err) == 0, "laic report SWEEP_DIR: %s", err);
    char *a = strip_footer(read_page(dir, "sweep.html")), *b = strip_footer(test_read_file(test_path("sweep-again.html"), NULL));
    CHECK(a && b && !strcmp(a, b), "the rebuilt sweep.html equals the sweep's");
    free(a);
    free(b);
    // PNGs beside sweep.csv (what `laic sweep --plot` leaves) are embedded, in name order
    char copy[700], cmd[3000];
    snprintf(copy, sizeof copy, "%s/sweep-plotted", test_tmpdir());
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", copy, dir, copy);
    REQUIRE(system(cmd) == 0, "copy the sweep");
    uint8_t px[6 * 4 * 3];
    memset(px, 90, sizeof px);
    char p1[1500], p2[1500];
    snprintf(p1, sizeof p1, "%s/sweep_z.png", copy);
    snprintf(p2, sizeof p2, "%s/pseudo_labels.png", copy);
    REQUIRE(png_write_file(p1, px, 6, 4, 3) == 0 && png_write_file(p2, px, 6, 4, 3) == 0, "%s", laic_last_error());
    snprintf(args, sizeof args, "report %s", copy);
    CHECK(run_laic(args, NULL, err, sizeof err) == 0, "laic report: %s", err);
    char *c = read_page(copy, "sweep.html");
    const char *q1 = c ? strstr(c, ">pseudo_labels.png</figcaption>") : NULL, *q2 = c ? strstr(c, ">sweep_z.png</figcaption>") : NULL;
    CHECK(c && strstr(c, "id=\"plots\"") && q1 && q2 && q1 < q2, "both plots embedded, in name order");
    if (c) check_self_contained(c, "sweep.html with plots");
    free(c);
}

TEST(report_trained_run_shows_the_learned_centres) {
    char why[700];
    const char *dir = fix_trained_run(why, sizeof why);
    REQUIRE(dir, "trained run: %s", why);
    char *html = read_page(dir, "report.html");
    REQUIRE(html, "report.html written");
    CHECK(strstr(html, "clusters of ours on the eval split") && strstr(html, "the learned centre's nearest candidate nouns"),
          "panels of ours, with its learned centres' nouns");
    CHECK(fix_count(html, "class=\"panel\"") == 4, "%d panels", fix_count(html, "class=\"panel\""));
    // each panel's nouns are centres.tsv's last column for that centre
    char p[1400];
    snprintf(p, sizeof p, "%s/centres.tsv", dir);
    char *tsv = test_read_file(p, NULL);
    REQUIRE(tsv, "centres.tsv");
    int found = 0;
    for (char *line = strtok(tsv, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strncmp(line, "centre", 6)) continue;
        char *nouns = strrchr(line, '\t') + 1, want[2048];
        char *b = NULL;
        size_t bn = 0;
        FILE *f = open_memstream(&b, &bn);
        report_html_escape(f, nouns);
        fclose(f);
        snprintf(want, sizeof want, "<div class=\"nouns\">%s</div>", b);
        found += strstr(html, want) != NULL;
        free(b);
    }
    CHECK(found == 4, "%d of 4 panels show their centre's nouns from centres.tsv", found);
    CHECK(strstr(html, "id=\"centres\"") != NULL, "centres.tsv table");
    CHECK(strstr(html, "<summary>ours-notrain</summary>") != NULL, "ours-notrain's confusion map beside it");
    free(tsv);
    free(html);
}

/* A run directory written by hand: the report needs only report.json and the arrays. */
TEST(report_from_a_hand_made_directory_k_300) {
    const char *dir = test_path("hand-made");
    char p[1400];
    snprintf(p, sizeof p, "%s/predictions", dir);
    mkdir(dir, 0755);
    mkdir(p, 0755);
    enum { N = 3000, K = 300 };
    int64_t *pred = malloc(N * sizeof *pred), *y = malloc(N * sizeof *y);
    for (int i = 0; i < N; i++) {
        y[i] = i % K;
        pred[i] = (i * 7 + (i % 13 == 0)) % K;   // a permutation of the classes, 1 in 13 rows off by one
    }
    size_t shape[1] = {N};
    snprintf(p, sizeof p, "%s/predictions/x-means.npy", dir);
    REQUIRE(npy_write(p, NPY_I64, 1, shape, pred) == 0, "%s", laic_last_error());
    snprintf(p, sizeof p, "%s/eval_labels.npy", dir);
    REQUIRE(npy_write(p, NPY_I64, 1, shape, y) == 0, "%s", laic_last_error());
    const char *json = "{\"run_dir\": \"hand/made\", \"sizes\": {\"n_eval\": 3000, \"K\": 300},"
                       " \"methods\": {\"x-means\": {\"nmi\": 0.9, \"acc\": 0.92, \"ari\": 0.8, \"n\": 3000}}}";
    snprintf(p, sizeof p, "%s/report.json", dir);
    test_write_file(p, json, strlen(json));
    char args[1600], err[4096];
    snprintf(args, sizeof args, "report %s", dir);
    int rc = run_laic(args, NULL, err, sizeof err);
    REQUIRE(rc == 0, "laic report on a hand-made directory (%d): %s", rc, err);
    char *html = read_page(dir, "report.html");
    REQUIRE(html, "report.html");
    CHECK(fix_count(html, "class=\"panel\"") == K && fix_count(html, "<details class=\"page\"") == 6,
          "%d panels in %d pages", fix_count(html, "class=\"panel\""), fix_count(html, "<details class=\"page\""));
    const char *fig = strstr(html, "id=\"confusion-0\"");
    CHECK(fig && !strncmp(strstr(fig, "<") ? strstr(fig, "<") : "", "<img class=\"heat\"", 17),
          "300 × 300 cells: the confusion map is a PNG, not 90,000 SVG rectangles");
    CHECK(strstr(html, "panels of") == NULL && strstr(html, "clusters of x-means") != NULL,
          "panels of the one method with predictions");
    struct stat st;
    snprintf(p, sizeof p, "%s/report.html", dir);
    CHECK(!stat(p, &st) && st.st_size < 2 << 20, "K = 300 without images stays small: %lld bytes", (long long)st.st_size);
    check_self_contained(html, "hand-made report.html");
    free(html);
    free(pred);
    free(y);
}

TEST(report_montage_sizes) {
    CHECK(report_montage_images(10) == 16 && report_montage_images(30) == 16 && report_montage_images(31) == 8 &&
              report_montage_images(1000) == 8,
          "16 images per montage up to K = 30, then 8");
    CHECK(report_thumb_size(10) == 56 && report_thumb_size(120) == 40, "thumbnail sizes");
}
