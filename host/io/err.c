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
    // one line always: control characters become \xNN (a message may quote hostile bytes)
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p && o + 5 < sizeof g_err; p++) {
        if (*p < 0x20 || *p == 0x7f) o += (size_t)snprintf(g_err + o, sizeof g_err - o, "\\x%02x", *p);
        else g_err[o++] = (char)*p;
    }
    g_err[o] = 0;
    return -1;
}

#define ESC_MAX 64

const char *laic_esc(const char *s, size_t n) {
    static _Thread_local char ring[4][4 * ESC_MAX + 8];
    static _Thread_local int next;
    char *out = ring[next];
    next = (next + 1) % 4;
    size_t o = 0;
    for (size_t i = 0; i < n && s; i++) {
        if (i == ESC_MAX) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') out[o++] = (char)c;
        else o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
    }
    out[o] = 0;
    return out;
}

const char *laic_escs(const char *s) { return laic_esc(s, s ? strlen(s) : 0); }

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
