/*
 * log.h — the trainers' progress lines. Library code never prints: a trainer formats each line
 * (cut at 1023 bytes) and hands it to its caller's callback, the log / log_ctx of its options.
 */
#ifndef LAIC_TRAIN_LOG_H
#define LAIC_TRAIN_LOG_H

#include <stdarg.h>
#include <stdio.h>

/* log(ctx, the formatted line); nothing when log is NULL. */
static inline void train_log(void (*log)(void *ctx, const char *line), void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void train_log(void (*log)(void *ctx, const char *line), void *ctx, const char *fmt, ...) {
    if (!log) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    log(ctx, line);
}

#endif
