/*
 * progress.h — progress bars on stderr for long work (encoding, clustering, sweeps).
 * On a terminal the bar redraws in place at most 10 times a second; otherwise (logs, CI) it
 * prints a line at every 10% so logs stay short. Each line shows done/total, rate and ETA.
 * LAIC_QUIET=1 in the environment silences bars (errors are never silenced).
 */
#ifndef LAIC_PROGRESS_H
#define LAIC_PROGRESS_H

#include <stddef.h>

typedef struct {
    const char *label, *unit;   // e.g. "encode images", "img"
    size_t total, done;
    double t0, last_print;
    int tty, last_decile, quiet;
} Progress;

void progress_start(Progress *p, const char *label, const char *unit, size_t total);
void progress_update(Progress *p, size_t done);
/* Final line with the total time and mean rate. */
void progress_end(Progress *p);
/* Monotonic seconds. */
double now_seconds(void);

#endif
