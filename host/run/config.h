/*
 * config.h — laic's run configuration: one table of every key, its type, default, allowed
 * range and source tag (SPEC.md: [paper], [TAC], [CLIP], [CoOp], [V4C], [V4C←paper], [ours]),
 * read from INI files (libinih) and `section.key=value` overrides.
 *
 * Precedence: table defaults < INI file < command-line overrides. Unknown sections or keys and
 * bad values are one-line errors with file:line (or "override 'x.y=z'"). The resolved config
 * is written back as INI (config.ini in every run directory) with every key, so a run can be
 * reproduced from its directory alone.
 */
#ifndef LAIC_CONFIG_H
#define LAIC_CONFIG_H

#include <stdio.h>

/* CFG_TRIPLE: empty, or three numbers "a/b/c" each in [min, max] (published NMI/ACC/ARI %). */
typedef enum { CFG_STR, CFG_INT, CFG_FLOAT, CFG_BOOL, CFG_ENUM, CFG_TRIPLE } CfgType;

typedef struct {
    const char *section, *key;
    CfgType type;
    const char *def;      // default, as text
    const char *choices;  // CFG_ENUM: "a|b|c"
    double min, max;      // CFG_INT / CFG_FLOAT: inclusive range (min > max = unbounded)
    const char *tag;      // where the default comes from: "paper", "TAC", "CLIP", "CoOp", "V4C",
                          // "V4C←paper" (SEIC, SPEC §9.3), "ours"
    const char *doc;
} CfgKey;

typedef struct {
    const CfgKey *keys;
    int n;
    char **values;        // (n) current value text of each key (malloc'd)
    char **origin;        // (n) "default", "file:line" or "override"
} Config;

/* The built-in table (host/run/config_keys.c). */
extern const CfgKey laic_config_keys[];
extern const int laic_config_nkeys;

int config_init(Config *c, const CfgKey *keys, int n);   // all defaults
void config_free(Config *c);
/* Reads an INI file over the current values. */
int config_load_ini(Config *c, const char *path);
/* Applies "section.key=value". */
int config_override(Config *c, const char *assignment);
/* Sets one key (validated); `origin` is recorded for the resolved listing. */
int config_set(Config *c, const char *section, const char *key, const char *value, const char *origin);

/* Typed getters; the key must exist in the table (programming error otherwise). */
const char *config_str(const Config *c, const char *section, const char *key);
long config_int(const Config *c, const char *section, const char *key);
double config_float(const Config *c, const char *section, const char *key);
int config_bool(const Config *c, const char *section, const char *key);
/* Where the key's value came from: "default", "FILE:LINE" or "override 'x.y=z'". */
const char *config_origin(const Config *c, const char *section, const char *key);

/* Writes the resolved config as INI; with `annotate`, each key carries a comment with its doc,
 * default, tag and origin. */
void config_write(const Config *c, FILE *f, int annotate);
/* Prints the table (laic run --help-config). */
void config_help(const CfgKey *keys, int n, FILE *f);

#endif
