/*
 * hostile.h — hostile inputs and resource probes for the reliability tests (tests/<layer>/
 * test_reliability_*.c, issue 13): gzip bombs, and running a call in a child process to see its
 * exit, its message and how much memory it took (a bomb must fail before it allocates).
 */
#ifndef LAIC_TEST_HOSTILE_H
#define LAIC_TEST_HOSTILE_H

#include <stddef.h>
#include <stdint.h>

/* A gzip file whose content is head (hn bytes) followed by `zeros` zero bytes; the trailer's
 * ISIZE is the true size, or `isize` when forge is set. 128 MiB of zeros compress to ~130 KB. */
void hostile_gzip(const char *path, const void *head, size_t hn, size_t zeros, int forge,
                  uint32_t isize);

/* Runs fn(ctx) in a forked child. Returns how far the child's peak resident memory rose above the
 * parent's at the fork, in KiB (-1 if the child died by a signal: *rc is then 128 + signal);
 * *rc = fn's return value, msg = laic_last_error() in the child. */
long hostile_child_peak_kb(int (*fn)(void *), void *ctx, int *rc, char *msg, size_t msgn);

#endif
