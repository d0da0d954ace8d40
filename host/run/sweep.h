/*
 * sweep.h — ablation sweeps (`laic sweep`, paper App. C, Table 4, App. B): many runs of the
 * no-train pipeline (run.h) over a grid or list of config values, then one table.
 *
 * A sweep is described by axes, each a config key and its values:
 *   - SWEEP.ini: a [sweep] section holds the axes (`ridge.lambda = 0.1,1,5`) and the options
 *     `mode = grid|zip` and `name = ...`; every other section is a plain config override applied
 *     to every point (so one SWEEP.ini can pin the dataset and weights of a paper experiment);
 *   - command line: `sweep.ridge.lambda=0.1,1,5`, `sweep.mode=zip`, `sweep.name=x`.
 * Values: a comma list; if the text holds a '|', '|' separates the values instead (for values
 * that contain commas: `train.loss = gce|gce,mse|gce,mse,entropy`); an item `a..b` (integers,
 * a <= b) expands to a, a+1, …, b.
 * Modes: grid (default) = the full Cartesian product, the first axis varying slowest; zip = the
 * i-th value of every axis together (all axes must have the same length).
 *
 * Promises: every value of every axis (and every override) is validated against the config
 * table before anything runs or is created; an error names SWEEP.ini:line (or the argument).
 * Each point is a normal run directory <sweep dir>/pNNN-<key=value…>; points share the on-disk
 * stage caches (run.cache_dir), so upstream stages run once per distinct upstream input. Row
 * order in sweep.csv / sweep.json is point order whatever --jobs is.
 */
#ifndef LAIC_SWEEP_H
#define LAIC_SWEEP_H

#include <stddef.h>

typedef struct {
    char section[64], key[64];
    char **values;     // (nvalues) value texts, already expanded
    int nvalues;
    char where[600];   // "SWEEP.ini:12" or "argument 'sweep.x.y=…'"
} SweepAxis;

typedef struct {
    SweepAxis *axes;   // (naxes)
    int naxes;
    int zip;           // 0 = grid, 1 = zip
    char name[128];    // sweep name ("" = run.name)
    char **over;       // (nover) "section.key=value" overrides from SWEEP.ini's other sections
    char **over_where; // (nover) "SWEEP.ini:line"
    int nover;
} SweepSpec;

typedef struct {
    const char *config;   // base CONFIG.ini (may be "/dev/null")
    char **over;          // (nover) command-line section.key=value overrides
    int nover;
    const char *dir;      // sweep directory; NULL/"" = runs/<name>-sweep-<UTC time>
    int jobs;             // >1: points run as parallel `laic run` processes (CPU)
    const char *self_exe; // path of the laic binary for --jobs (NULL = /proc/self/exe)
} SweepOpts;

void sweep_spec_init(SweepSpec *s);
void sweep_spec_free(SweepSpec *s);
/* Reads SWEEP.ini into s. */
int sweep_spec_load(SweepSpec *s, const char *path);
/* Applies one command-line argument "sweep.<section>.<key>=values" or "sweep.mode=…"/"sweep.name=…". */
int sweep_spec_arg(SweepSpec *s, const char *arg);
/* Splits a value list (see above) into *out (n strings, malloc'd); `where` names it in errors. */
int sweep_parse_values(const char *text, const char *where, char ***out, int *n);
/* Number of points (grid product or zip length); 0 if there are no axes. */
size_t sweep_npoints(const SweepSpec *s);
/* Value index of every axis (idx[naxes]) at point p. */
void sweep_point(const SweepSpec *s, size_t p, int *idx);
/* Validates the spec against the base config (+ overrides): every axis key and value. */
int sweep_validate(const SweepSpec *s, const SweepOpts *o);
/* Runs every point and writes sweep.csv, sweep.json, sweep_summary.csv and sweep.html into the sweep
 * directory (path returned in dir_out). Returns 0 when every point succeeded, 1 when some point
 * failed (its row says why; the tables are still written), -1 on an error before/around the runs. */
int sweep_run(const SweepSpec *s, const SweepOpts *o, char *dir_out, size_t dir_n);

#endif
