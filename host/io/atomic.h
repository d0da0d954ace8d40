/*
 * atomic.h — all-or-nothing file output.
 *
 * Every file laic writes goes through here: data is written to "<path>.tmp.<pid>" in the
 * same directory and renamed over <path> only when complete, so a failure or a kill never
 * leaves a half-written output behind.
 *
 *   AtomicFile af;
 *   if (atomic_open(&af, path)) return -1;      // error recorded
 *   fwrite(..., af.fp);
 *   return atomic_commit(&af);                  // flush+close+rename, or abort and unlink
 */
#ifndef LAIC_ATOMIC_H
#define LAIC_ATOMIC_H

#include <stdio.h>

typedef struct {
    FILE *fp;
    char path[4096];
    char tmp[4096 + 32];
} AtomicFile;

int atomic_open(AtomicFile *af, const char *path);
/* Checks for write errors, closes and renames. On any error removes the temp file. */
int atomic_commit(AtomicFile *af);
/* Closes and removes the temp file (use on error paths). Safe to call twice. */
void atomic_abort(AtomicFile *af);
/* Writes a whole buffer atomically. */
int atomic_write_file(const char *path, const void *data, size_t n);

#endif
