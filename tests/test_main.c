/* test_main.c — the runner behind test.h. */
#include <stdarg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/err.h"
#include "test.h"

typedef struct { const char *name, *file; TestFn fn; } TestCase;
static TestCase g_tests[1024];
static int g_ntests;
static int g_cur_failed, g_cur_skipped;
static char g_skip_msg[512];

void test_register(const char *name, const char *file, TestFn fn) {
    if (g_ntests >= (int)(sizeof g_tests / sizeof g_tests[0])) {   // never drop a test silently
        fprintf(stderr, "test runner: more than %d tests (%s in %s): raise g_tests' size\n",
                (int)(sizeof g_tests / sizeof g_tests[0]), name, file);
        exit(2);
    }
    g_tests[g_ntests++] = (TestCase){name, file, fn};
}

int test_check(int ok, const char *expr, const char *file, int line, const char *fmt, ...) {
    if (ok) return 1;
    g_cur_failed++;
    fprintf(stdout, "    NOT OK %s:%d: %s: ", file, line, expr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    return 0;
}

void test_skip(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_skip_msg, sizeof g_skip_msg, fmt, ap);
    va_end(ap);
    g_cur_skipped = 1;
}

static char g_tmp[256];
static void rm_tmp(void) {
    if (g_tmp[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
        if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", g_tmp);
    }
}
const char *test_tmpdir(void) {
    if (!g_tmp[0]) {
        snprintf(g_tmp, sizeof g_tmp, "/tmp/laic-test-XXXXXX");
        if (!mkdtemp(g_tmp)) { perror("mkdtemp"); exit(1); }
        atexit(rm_tmp);
    }
    return g_tmp;
}
const char *test_path(const char *name) {
    static char ring[8][512];
    static int k;
    char *p = ring[k++ & 7];
    snprintf(p, 512, "%s/%s", test_tmpdir(), name);
    return p;
}

const char *test_shared(const char *rel) {
    static char ring[8][512];
    static int k;
    const char *root = getenv("LAIC_SHARED");
    if (!root) root = "../shared";
    char *p = ring[k++ & 7];
    snprintf(p, 512, "%s/%s", root, rel);
    struct stat st;
    return stat(p, &st) == 0 ? p : NULL;
}

int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

void *test_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(sz > 0 ? (size_t)sz + 1 : 1);
    size_t r = sz > 0 ? fread(b, 1, (size_t)sz, f) : 0;
    b[r] = 0;
    fclose(f);
    if (n) *n = r;
    return b;
}

void test_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

int count_lines(const char *s) {
    int n = 0;
    for (const char *p = s; *p; p++)
        if (*p == '\n' && p[1]) n++;
    return *s ? n + 1 : 0;
}

int run_laic(const char *args, const char *out_path, char *err, size_t errn) {
    const char *bin = getenv("LAIC_BIN");
    if (!bin) bin = "build/laic";
    static char errf[512];   // its own buffer: taking a slot of test_path's ring would overwrite
                             // a path a test still holds after a few run_laic calls
    snprintf(errf, sizeof errf, "%s/stderr.txt", test_tmpdir());
    size_t n = strlen(bin) + strlen(args) + strlen(errf) + (out_path ? strlen(out_path) : 9) + 32;
    char *cmd = malloc(n);
    snprintf(cmd, n, "%s %s >'%s' 2>'%s'", bin, args, out_path ? out_path : "/dev/null", errf);
    int st = system(cmd);
    free(cmd);
    if (err && errn) {
        err[0] = 0;
        FILE *f = fopen(errf, "rb");
        if (f) {
            size_t r = fread(err, 1, errn - 1, f);
            err[r] = 0;
            fclose(f);
        }
    }
    if (st == -1) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

const char *test_fixture_path(const char *dir, const char *name) {
    static char ring[8][512];
    static int k;
    char *p = ring[k++ & 7];
    snprintf(p, 512, "%s/%s.npy", dir, name);
    return p;
}

float *test_fixture_f32(const char *dir, const char *name, Npy *a) {
    memset(a, 0, sizeof *a);
    int rc = npy_read_f32(test_fixture_path(dir, name), a, -1, NULL);
    CHECK(rc == 0, "fixture %s: %s", name, laic_last_error());
    return rc ? NULL : a->data;
}

int32_t *test_fixture_i32(const char *dir, const char *name, size_t *count, size_t *rows,
                          size_t *cols) {
    Npy a;
    int rc = npy_read_i64(test_fixture_path(dir, name), &a, -1, NULL);
    CHECK(rc == 0, "fixture %s: %s", name, laic_last_error());
    if (rc) return NULL;
    int32_t *out = malloc(a.count * sizeof(int32_t));
    for (size_t i = 0; i < a.count; i++) out[i] = (int32_t)((int64_t *)a.data)[i];
    if (count) *count = a.count;
    if (rows) *rows = a.shape[0];
    if (cols) *cols = a.ndim > 1 ? a.shape[1] : 1;
    npy_free(&a);
    return out;
}

double max_rel_err(const float *a, const float *ref, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (d > md || d != d) md = d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return mr > 0 ? md / mr : md;
}

double test_maxabs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

int test_close_grad(const float *got, const float *ref, size_t n, const char *what) {
    double s = test_maxabs(ref, n), rel = max_rel_err(got, ref, n);
    printf("    %-52s max|a-r|/max|r| = %.3g (max|r| = %.3g)\n", what, rel, s);
    int ok = CHECK(test_allclose(got, ref, n, 1e-4 * s, 1e-3, what), "%s elementwise", what);
    return ok & CHECK(rel <= 1e-4, "%s: max|a-r|/max|r| = %.3g > 1e-4", what, rel);
}

int test_allclose(const float *a, const float *ref, size_t n, double atol, double rtol,
                  const char *what) {
    double max_abs = 0, max_rel = 0;
    size_t bad = 0, first_bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (!(d <= atol + rtol * fabs(ref[i]))) {
            if (!bad) first_bad = i;
            bad++;
        }
        if (d > max_abs || d != d) max_abs = d;
        double r = d / (fabs(ref[i]) + 1e-30);
        if (fabs(ref[i]) > atol && r > max_rel) max_rel = r;
    }
    printf("    %s %s: n=%zu max_abs=%.3g max_rel(|ref|>atol)=%.3g (atol %.1g, rtol %.1g)\n",
           bad ? "NOT OK" : "OK", what, n, max_abs, max_rel, atol, rtol);
    if (bad)
        printf("    first mismatch at %zu: got %.8g want %.8g (%zu bad)\n", first_bad,
               a[first_bad], ref[first_bad], bad);
    return bad == 0;
}

int main(int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < g_ntests; i++) {
        if (filter && !strstr(g_tests[i].name, filter)) continue;
        g_cur_failed = 0;
        g_cur_skipped = 0;
        printf("[ RUN  ] %s\n", g_tests[i].name);
        fflush(stdout);
        g_tests[i].fn();
        if (g_cur_failed) {
            printf("[ FAIL ] %s (%s)\n", g_tests[i].name, g_tests[i].file);
            failed++;
        } else if (g_cur_skipped) {
            printf("[ SKIP ] %s: %s\n", g_tests[i].name, g_skip_msg);
            skipped++;
        } else {
            printf("[  OK  ] %s\n", g_tests[i].name);
            passed++;
        }
        fflush(stdout);
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
