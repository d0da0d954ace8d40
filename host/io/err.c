/* err.c — see err.h. */
#include "io/err.h"

#include <stdarg.h>
#include <string.h>

static _Thread_local char g_err[1024];

int laic_error(const char *fmt, ...) {
    // Formatted aside first: callers may wrap the previous message, laic_error("x: %s",
    // laic_last_error()), and vsnprintf must not read the buffer it writes.
    char msg[sizeof g_err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(g_err, msg, sizeof g_err);
    return -1;
}

const char *laic_last_error(void) { return g_err; }
void laic_clear_error(void) { g_err[0] = 0; }

void *laic_malloc_check(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "laic: fatal: out of memory allocating %zu bytes at %s:%d\n", n, file, line);
        exit(1);
    }
    return p;
}

void *laic_calloc_check(size_t n, size_t sz, const char *file, int line) {
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) {
        fprintf(stderr, "laic: fatal: out of memory allocating %zu x %zu bytes at %s:%d\n", n, sz,
                file, line);
        exit(1);
    }
    return p;
}
