/* progress.c — see progress.h. */
#include "io/progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_start(Progress *p, const char *label, const char *unit, size_t total) {
    p->label = label;
    p->unit = unit;
    p->total = total;
    p->done = 0;
    p->t0 = p->last_print = now_seconds();
    p->tty = isatty(2);
    p->last_decile = 0;
    const char *q = getenv("LAIC_QUIET");
    p->quiet = q && q[0] && q[0] != '0';
}

static void draw(Progress *p, double t, int final) {
    double el = t - p->t0, rate = el > 0 ? (double)p->done / el : 0;
    double eta = rate > 0 ? (double)(p->total - p->done) / rate : 0;
    double frac = p->total ? (double)p->done / (double)p->total : 1;
    char bar[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    fprintf(stderr, "%s%-16s [%s] %zu/%zu %s  %.1f %s/s  %s %.0fs%s", p->tty ? "\r" : "", p->label,
            bar, p->done, p->total, p->unit, rate, p->unit, final ? "took" : "eta", final ? el : eta,
            p->tty && !final ? "" : "\n");
    fflush(stderr);
}

void progress_update(Progress *p, size_t done) {
    p->done = done > p->total ? p->total : done;
    if (p->quiet) return;
    double t = now_seconds();
    if (p->tty) {
        if (t - p->last_print < 0.1) return;
    } else {
        int dec = p->total ? (int)(10 * p->done / p->total) : 10;
        if (dec <= p->last_decile) return;
        p->last_decile = dec;
    }
    p->last_print = t;
    draw(p, t, 0);
}

void progress_end(Progress *p) {
    p->done = p->total;
    if (!p->quiet) draw(p, now_seconds(), 1);
}
