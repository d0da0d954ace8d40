/*
 * fsync_log.h — a record of the fsync(2) calls made inside the test binary (tests/fsync_log.c
 * defines fsync itself, so every call from host/ code linked into test_laic lands there first and
 * then goes to the kernel). For the durability tests (tests/io/, tests/run/): which files and
 * directories were synced, in what order, and whether the synced file was still unpublished.
 */
#ifndef LAIC_TEST_FSYNC_LOG_H
#define LAIC_TEST_FSYNC_LOG_H

#include <sys/types.h>

#define FSYNC_LOG_MAX 4096

typedef struct {
    dev_t dev;
    ino_t ino;
    int is_dir;
    int watched_existed;   // whether fsync_log_watch's path existed at the time of the call
} FsyncCall;

/* Starts recording (clears the log); `watch` (may be NULL) is a path whose existence is noted at
 * each call, e.g. the final name of an atomic write. */
void fsync_log_start(const char *watch);
/* Stops recording; returns the calls (n in *n). */
const FsyncCall *fsync_log_stop(int *n);

#endif
