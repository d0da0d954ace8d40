/*
 * pipeline.h — `laic run`'s driver (host/run/pipeline.c), above the stages and the methods:
 * run_init (run/run.h) → run_execute → run_free.
 */
#ifndef LAIC_PIPELINE_H
#define LAIC_PIPELINE_H

#include "run/run.h"

/* Every stage and listed method; on success the run directory exists. */
int run_execute(Run *r);
/* The git commit the binary was built from (12 hex digits, or "unknown"). */
const char *run_git_commit(void);

#endif
