/*
 * test_report_browser.c — report.html and sweep.html in a real browser: headless Chromium
 * (Debian `chromium`, installed by .ci/run) loads each page from a file:// URL with no network,
 * dumps the DOM it built and takes a screenshot. Checks: no console message at all (errors,
 * CSP violations, failed loads), the DOM holds what the page promises (one panel per cluster,
 * one montage per cluster on image runs, three charts and one link per point on sweep.html,
 * hostile class names as text, never as elements), and the montages are visibly drawn: the
 * screenshot holds at least 80 % of their pixels in the dataset's planted colours (magenta,
 * cyan, yellow — colours the page itself never uses).
 *
 * Skipped when no chromium is installed (`make test` needs only the README's setup).
 * LAIC_CHROMIUM=path picks the browser; LAIC_REPORT_SHOTS=DIR keeps the screenshots (and DOMs) there.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/err.h"
#include "io/png.h"
#include "report_fixture.h"
#include "../test.h"

static const char *chromium(void) {
    static char path[1024];
    const char *env = getenv("LAIC_CHROMIUM");
    if (env && env[0]) return access(env, X_OK) ? NULL : env;
    const char *names[] = {"chromium", "chromium-browser", "google-chrome"};
    const char *p = getenv("PATH");
    for (int i = 0; i < 3 && p; i++) {
        char *dup = strdup(p), *save = NULL;
        for (char *d = strtok_r(dup, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
            snprintf(path, sizeof path, "%s/%s", d, names[i]);
            if (!access(path, X_OK)) {
                free(dup);
                return path;
            }
        }
        free(dup);
    }
    return NULL;
}

typedef struct {
    char *dom;             // the DOM after load, serialised
    char console[4096];    // console lines Chromium logged ("" = none)
    uint8_t *rgb;          // the screenshot (w,h,3)
    int w, h;
} Render;

static void render_free(Render *r) {
    free(r->dom);
    free(r->rgb);
    memset(r, 0, sizeof *r);
}

/* Loads html (an absolute path) at width × height CSS px; 0 on success. */
static int render(const char *html, int width, int height, const char *tag, Render *out) {
    memset(out, 0, sizeof *out);
    const char *bin = chromium();
    char shot[700], dom[700], log[700], prof[700], cmd[4800];
    snprintf(shot, sizeof shot, "%s/shot-%s.png", test_tmpdir(), tag);
    snprintf(dom, sizeof dom, "%s/dom-%s.html", test_tmpdir(), tag);
    snprintf(log, sizeof log, "%s/chromium-%s.log", test_tmpdir(), tag);
    snprintf(prof, sizeof prof, "%s/chromium-profile", test_tmpdir());
    snprintf(cmd, sizeof cmd,
             "timeout 120 '%s' --headless --no-sandbox --disable-gpu --hide-scrollbars "
             "--force-device-scale-factor=1 --no-first-run --disable-extensions --disable-dev-shm-usage "
             "--user-data-dir='%s' --enable-logging=stderr --v=0 --window-size=%d,%d "
             "--screenshot='%s' --dump-dom 'file://%s' >'%s' 2>'%s'",
             bin, prof, width, height, shot, html, dom, log);
    int rc = system(cmd);
    if (!CHECK(rc == 0, "chromium on %s exited %d (log: %s)", html, rc, log)) return -1;
    out->dom = test_read_file(dom, NULL);
    char *lg = test_read_file(log, NULL);
    for (char *line = lg ? strtok(lg, "\n") : NULL; line; line = strtok(NULL, "\n"))
        if (strstr(line, ":CONSOLE") || strstr(line, "Content Security Policy"))
            snprintf(out->console + strlen(out->console), sizeof out->console - strlen(out->console), "%s\n", line);
    free(lg);
    if (!CHECK(out->dom && strlen(out->dom) > 100, "%s: DOM dumped", tag)) return -1;
    if (!CHECK(png_read_file_rgb8(shot, &out->rgb, &out->w, &out->h) == 0, "%s: screenshot: %s", tag,
               laic_last_error()))
        return -1;
    const char *keep = getenv("LAIC_REPORT_SHOTS");
    if (keep && keep[0]) {
        snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s' '%s/%s.png' && cp '%s' '%s/%s-dom.html'", keep, shot,
                 keep, tag, dom, keep, tag);
        if (system(cmd) == 0) printf("    screenshot: %s/%s.png (%dx%d)\n", keep, tag, out->w, out->h);
    }
    return 0;
}

/* Pixels of the screenshot in one of the image run's planted colours. */
static long planted_pixels(const Render *r) {
    long n = 0;
    for (long i = 0; i < (long)r->w * r->h; i++) {
        const uint8_t *q = r->rgb + 3 * i;
        n += (q[0] > 200 && q[1] < 60 && q[2] > 200) || (q[0] < 60 && q[1] > 200 && q[2] > 200) ||
             (q[0] > 200 && q[1] > 200 && q[2] < 60);
    }
    return n;
}

/* Pixels that differ from the page background (#f4f5f8) and from white: something is drawn. */
static double drawn_fraction(const Render *r) {
    long n = 0;
    for (long i = 0; i < (long)r->w * r->h; i++) {
        const uint8_t *q = r->rgb + 3 * i;
        n += !((q[0] == 0xf4 && q[1] == 0xf5 && q[2] == 0xf8) || (q[0] == 255 && q[1] == 255 && q[2] == 255));
    }
    return (double)n / ((double)r->w * r->h);
}

static char *abs_page(const char *dir, const char *name) {
    static char p[1400];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

TEST(report_browser_image_run) {
    if (!chromium()) SKIP("chromium not installed (apt-get install chromium); pages checked without a browser");
    char why[700];
    const char *dir = fix_image_run(why, sizeof why);
    if (!dir && strstr(why, "wordnet")) SKIP("%s", why);
    REQUIRE(dir, "image run: %s", why);
    Render r;
    if (render(abs_page(dir, "report.html"), 1400, 4200, "image-run", &r)) return;
    CHECK(!r.console[0], "no console messages, got:\n%s", r.console);
    CHECK(fix_count(r.dom, "class=\"panel\"") == FIX_IMG_K, "%d cluster panels in the DOM (want %d)",
          fix_count(r.dom, "class=\"panel\""), FIX_IMG_K);
    CHECK(fix_count(r.dom, "<img class=\"montage\"") == FIX_IMG_K, "%d montages in the DOM",
          fix_count(r.dom, "<img class=\"montage\""));
    // as text nodes the names serialise with &lt; &gt; &amp; escaped and the quotes kept
    CHECK(fix_count(r.dom, "&lt;i&gt;magenta&lt;/i&gt; &amp; \"pink\"") >= 1 &&
              fix_count(r.dom, "cyan's &lt;script&gt;alert(1)&lt;/script&gt;") >= 1 && !strstr(r.dom, "<script"),
          "hostile class names are text in the DOM, not elements");
    CHECK(strstr(r.dom, "id=\"random-weights\"") && strstr(r.dom, "id=\"c-heatmap\"") && strstr(r.dom, "id=\"confusion-0\""),
          "random-weights banner, C heat map and confusion map present");
    // the montages are drawn: sum of data-n × data-thumb² thumbnail pixels, most in planted colours
    long want = 0;
    for (const char *p = r.dom; (p = strstr(p, "<img class=\"montage\"")); p++) {
        const char *dn = strstr(p, "data-n=\""), *th = strstr(p, "data-thumb=\"");
        if (dn && th) want += (long)atoi(dn + 8) * atoi(th + 12) * atoi(th + 12);
    }
    const long got = planted_pixels(&r);
    CHECK(want > 0 && got >= want * 8 / 10, "screenshot: %ld pixels in planted colours for %ld thumbnail pixels",
          got, want);
    render_free(&r);
}

TEST(report_browser_precomputed_and_large_k) {
    if (!chromium()) SKIP("chromium not installed (apt-get install chromium); pages checked without a browser");
    char why[700];
    const char *dir = fix_planted_run(why, sizeof why);
    REQUIRE(dir, "planted run: %s", why);
    Render r;
    if (render(abs_page(dir, "report.html"), 1400, 2600, "precomputed", &r)) return;
    CHECK(!r.console[0], "no console messages, got:\n%s", r.console);
    CHECK(fix_count(r.dom, "class=\"panel\"") == FIX_PLANTED_K && !strstr(r.dom, "class=\"montage\""),
          "%d panels, no montages", fix_count(r.dom, "class=\"panel\""));
    CHECK(!strstr(r.dom, "<b>noun") && fix_count(r.dom, "&lt;/b&gt; &amp; \"x\"") >= FIX_PLANTED_K,
          "hostile noun names are text (%d)", fix_count(r.dom, "&lt;/b&gt; &amp; \"x\""));
    CHECK(planted_pixels(&r) < 50, "nothing in the montage colours without montages");
    CHECK(drawn_fraction(&r) > 0.02, "the page is not blank (%.3f drawn)", drawn_fraction(&r));
    render_free(&r);
    dir = fix_big_run(why, sizeof why);
    REQUIRE(dir, "K = 120 run: %s", why);
    if (render(abs_page(dir, "report.html"), 1400, 3000, "large-k", &r)) return;
    CHECK(!r.console[0], "no console messages, got:\n%s", r.console);
    CHECK(fix_count(r.dom, "class=\"panel\"") == FIX_BIG_K, "%d panels in the DOM (want %d)",
          fix_count(r.dom, "class=\"panel\""), FIX_BIG_K);
    CHECK(drawn_fraction(&r) > 0.02, "the page is not blank (%.3f drawn)", drawn_fraction(&r));
    render_free(&r);
}

TEST(report_browser_sweep) {
    if (!chromium()) SKIP("chromium not installed (apt-get install chromium); pages checked without a browser");
    char why[700];
    const char *dir = fix_sweep(why, sizeof why);
    REQUIRE(dir, "sweep: %s", why);
    Render r;
    if (render(abs_page(dir, "sweep.html"), 1400, 1800, "sweep", &r)) return;
    CHECK(!r.console[0], "no console messages, got:\n%s", r.console);
    CHECK(fix_count(r.dom, "<svg class=\"chart\"") == 3, "three charts (%d)", fix_count(r.dom, "<svg class=\"chart\""));
    CHECK(fix_count(r.dom, "class=\"point-report\"") == FIX_SWEEP_POINTS, "%d point links",
          fix_count(r.dom, "class=\"point-report\""));
    CHECK(fix_count(r.dom, "<circle") >= 3 * 2 * 3, "a marker per method, metric and λ (%d)", fix_count(r.dom, "<circle"));
    CHECK(drawn_fraction(&r) > 0.02, "the page is not blank (%.3f drawn)", drawn_fraction(&r));
    render_free(&r);
}
