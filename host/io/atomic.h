/*
 * atomic.h — all-or-nothing, durable file output.
 *
 * Every file laic writes goes through here: data is written to "<path>.tmp.<pid>" in the
 * same directory, flushed to the disk (fsync), and renamed over <path> only when complete; the
 * directory is then fsynced so the rename itself survives a power cut. A failure or a kill never
 * leaves a half-written output behind, and a committed file is on the disk, not only in the
 * page cache.
 *
 *   AtomicFile af;
 *   if (atomic_open(&af, path)) return -1;      // error recorded
 *   fwrite(..., af.fp);
 *   return atomic_commit(&af);                  // flush+fsync+close+rename+fsync dir, or abort
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
/* Checks for write errors, fsyncs, closes, renames and fsyncs the directory. On any error removes
 * the temp file. */
int atomic_commit(AtomicFile *af);
/* Closes and removes the temp file (use on error paths). Safe to call twice. */
void atomic_abort(AtomicFile *af);
/* Writes a whole buffer atomically. */
int atomic_write_file(const char *path, const void *data, size_t n);

/* fsync of a directory (after a rename or create inside it); -1 with an error naming it. */
int fsync_dir(const char *dir);
/* fsync of the directory that holds `path` ("." for a bare name). */
int fsync_parent(const char *path);

#endif
