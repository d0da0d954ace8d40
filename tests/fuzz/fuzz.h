/*
 * fuzz.h — what every libFuzzer harness under tests/fuzz/ shares (header-only, one harness per
 * program): a private scratch directory and a way to hand the input to readers that take a
 * path. Built and run by `make fuzz` (tests/fuzz/README.md); never part of `make test`.
 *
 * The readers under test open files by name, so each input is written to a file in a directory
 * made once per process (under $TMPDIR, else /dev/shm, else /tmp), removed at exit. Errors are the
 * expected outcome for most inputs: a harness only calls the reader and frees what it returned;
 * ASan/UBSan, libFuzzer's malloc limit (-malloc_limit_mb) and "fuzz target exited" (mallocCheck
 * exits on an absurd allocation) turn a bug into a crash.
 */
#ifndef LAIC_FUZZ_H
#define LAIC_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_fuzz_dir[256];

static inline void fuzz_cleanup(void) {
    if (!g_fuzz_dir[0]) return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_fuzz_dir);
    if (system(cmd)) {}
}

/* The per-process scratch directory (made on first use). */
static inline const char *fuzz_dir(void) {
    if (!g_fuzz_dir[0]) {
        // tmpfs when there is one: on a disk-backed /tmp the writes cost 20x the parsing
        const char *t = getenv("TMPDIR");
        if (!t || !*t) t = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(g_fuzz_dir, sizeof g_fuzz_dir, "%s/laic-fuzz-XXXXXX", t);
        if (!mkdtemp(g_fuzz_dir)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(fuzz_cleanup);
    }
    return g_fuzz_dir;
}

/* Writes n bytes to <dir>/<name> (truncating) and returns its path (a static buffer per name
 * slot: slot 0..7). */
static inline const char *fuzz_file(int slot, const char *name, const void *data, size_t n) {
    static char paths[8][320];
    char *p = paths[slot & 7];
    snprintf(p, sizeof paths[0], "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f)) {
        perror("fuzz: write");
        abort();
    }
    return p;
}

/* Splits an input into parts at the 4-byte separator "\xfe\xedPT" (a multi-file input: the
 * dataset harness's images and labels). Returns the number of parts (<= max); part i is
 * (ptr[i], len[i]). */
static inline int fuzz_split(const uint8_t *data, size_t size, const uint8_t **ptr, size_t *len, int max) {
    static const uint8_t sep[4] = {0xfe, 0xed, 'P', 'T'};
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i + 4 <= size && n < max - 1; i++)
        if (!memcmp(data + i, sep, 4)) {
            ptr[n] = data + start, len[n] = i - start, n++;
            start = i + 4;
            i += 3;
        }
    ptr[n] = data + start, len[n] = size - start, n++;
    return n;
}

#endif
