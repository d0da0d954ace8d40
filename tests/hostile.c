/* hostile.c — see hostile.h. */
#include "hostile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "io/err.h"

void hostile_gzip(const char *path, const void *head, size_t hn, size_t zeros, int forge,
                  uint32_t isize) {
    z_stream z;
    memset(&z, 0, sizeof z);
    // windowBits 16 + 15: a gzip wrapper; Z_RLE compresses runs of zeros fast
    if (deflateInit2(&z, 1, Z_DEFLATED, 31, 9, Z_RLE) != Z_OK) return;
    FILE *f = fopen(path, "wb");
    if (!f) return;
    static unsigned char zbuf[1 << 16], obuf[1 << 17];
    size_t left = zeros;
    int first = 1;
    for (;;) {
        if (first) {
            z.next_in = (unsigned char *)head;
            z.avail_in = (unsigned)hn;
        } else {
            size_t k = left < sizeof zbuf ? left : sizeof zbuf;
            z.next_in = zbuf;
            z.avail_in = (unsigned)k;
            left -= k;
        }
        int flush = !first && left == 0 ? Z_FINISH : Z_NO_FLUSH;
        first = 0;
        int r;
        do {
            z.next_out = obuf;
            z.avail_out = sizeof obuf;
            r = deflate(&z, flush);
            fwrite(obuf, 1, sizeof obuf - z.avail_out, f);
        } while (z.avail_out == 0 || (flush == Z_FINISH && r != Z_STREAM_END));
        if (flush == Z_FINISH) break;
    }
    deflateEnd(&z);
    if (forge) {   // overwrite the trailer's ISIZE
        fseek(f, -4, SEEK_END);
        unsigned char t[4] = {(unsigned char)isize, (unsigned char)(isize >> 8),
                              (unsigned char)(isize >> 16), (unsigned char)(isize >> 24)};
        fwrite(t, 1, 4, f);
    }
    fclose(f);
}

/* A line "Key:  N kB" of /proc/self/status, in KiB (0 when absent). */
static long status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = 0;
    size_t kl = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') v = strtol(line + kl + 1, NULL, 10);
    if (f) fclose(f);
    return v;
}

long hostile_child_peak_kb(int (*fn)(void *), void *ctx, int *rc, char *msg, size_t msgn) {
    int fd[2];
    if (pipe(fd)) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        // the peak is measured from here: reset the high-water mark to the current RSS
        FILE *c = fopen("/proc/self/clear_refs", "w");
        if (c) {
            fputs("5", c);
            fclose(c);
        }
        long base = status_kb("VmRSS");
        int r = fn(ctx);
        long grew = status_kb("VmHWM") - base;
        char head[64];
        int hn = snprintf(head, sizeof head, "%ld\n", grew);
        const char *m = laic_last_error();
        if (write(fd[1], head, (size_t)hn) < 0 || write(fd[1], m, strlen(m)) < 0) r = 99;
        close(fd[1]);
        _exit(r < 0 ? 1 : r);
    }
    close(fd[1]);
    char buf[4096];
    size_t got = 0;
    ssize_t k;
    while (got + 1 < sizeof buf && (k = read(fd[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)k;
    buf[got] = 0;
    close(fd[0]);
    long grew = strtol(buf, NULL, 10);
    const char *nl = strchr(buf, '\n');
    if (msgn) snprintf(msg, msgn, "%s", nl ? nl + 1 : "");
    int st = 0;
    if (waitpid(pid, &st, 0) < 0) return -1;
    if (WIFSIGNALED(st)) {
        *rc = 128 + WTERMSIG(st);
        return -1;
    }
    *rc = WEXITSTATUS(st);
    return grew;
}
