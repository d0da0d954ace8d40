/*
 * err.h — error reporting for laic.
 *
 * Library code never prints and never exits: a failing function records a one-line message
 * with laic_error() and returns a non-zero code (or NULL). The CLI prints that line once,
 * prefixed "laic: ", and exits non-zero. Messages name the file and the problem, and may end
 * with "---> HINT: ..." on how to fix it (llm.c habit).
 *
 * The *Check macros below are for calls whose failure is a programming or system error
 * (malloc, fwrite): they print the failing statement with file:line and exit(1).
 */
#ifndef LAIC_ERR_H
#define LAIC_ERR_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

/* Record the last error (printf-style); returns -1 so `return laic_error(...)` reads well. The
 * arguments may include laic_last_error() itself (wrapping a message with context). */
int laic_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last recorded error message ("" if none). Thread-local. A message is always one line:
 * control characters (bytes below 0x20 and 0x7f) that reach it, e.g. from a hostile file's
 * strings, are written as \xNN. */
const char *laic_last_error(void);
void laic_clear_error(void);

/* Untrusted text (a file's dtype, key or name) made safe to quote in a message: bytes outside
 * printable ASCII and the backslash become \xNN, and text past 64 bytes is cut with "...".
 * Returns one of 4 thread-local buffers (so up to 4 may appear in one laic_error call). */
const char *laic_esc(const char *s, size_t n);
const char *laic_escs(const char *s);   // NUL-terminated s (NULL gives "")

/* Fatal helpers for allocation and stdio: print "laic: fatal: <what> at file:line" and exit. */
void *laic_malloc_check(size_t n, const char *file, int line);
void *laic_calloc_check(size_t n, size_t sz, const char *file, int line);
#define mallocCheck(n) laic_malloc_check((n), __FILE__, __LINE__)
#define callocCheck(n, sz) laic_calloc_check((n), (sz), __FILE__, __LINE__)

/* An assert that survives NDEBUG (GGML_ASSERT habit). */
#define LAIC_ASSERT(x)                                                                      \
    do {                                                                                    \
        if (!(x)) {                                                                         \
            fprintf(stderr, "laic: internal error: assertion `%s` failed at %s:%d\n", #x,  \
                    __FILE__, __LINE__);                                                    \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

#endif
