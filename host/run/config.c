/* config.c — see config.h. */
#include "run/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "io/err.h"

static int find_key(const Config *c, const char *section, const char *key) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->keys[i].section, section) && !strcmp(c->keys[i].key, key)) return i;
    return -1;
}

static int section_exists(const Config *c, const char *section) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->keys[i].section, section)) return 1;
    return 0;
}

/* Validates `value` for key k; on success writes the canonical text into out (size n). */
static int validate(const CfgKey *k, const char *value, char *out, size_t n, const char *where) {
    char *end;
    switch (k->type) {
    case CFG_STR:
        snprintf(out, n, "%s", value);
        return 0;
    case CFG_INT: {
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end)
            return laic_error("%s: %s.%s: '%s' is not an integer", where, k->section, k->key, laic_escs(value));
        if (k->min <= k->max && (v < k->min || v > k->max))
            return laic_error("%s: %s.%s = %ld is out of range [%g, %g]", where, k->section, k->key,
                              v, k->min, k->max);
        snprintf(out, n, "%ld", v);
        return 0;
    }
    case CFG_FLOAT: {
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v))
            return laic_error("%s: %s.%s: '%s' is not a finite number", where, k->section, k->key,
                              laic_escs(value));
        if (k->min <= k->max && (v < k->min || v > k->max))
            return laic_error("%s: %s.%s = %g is out of range [%g, %g]", where, k->section, k->key,
                              v, k->min, k->max);
        snprintf(out, n, "%s", value);
        return 0;
    }
    case CFG_BOOL:
        if (!strcasecmp(value, "true") || !strcmp(value, "1") || !strcasecmp(value, "yes") ||
            !strcasecmp(value, "on")) {
            snprintf(out, n, "true");
            return 0;
        }
        if (!strcasecmp(value, "false") || !strcmp(value, "0") || !strcasecmp(value, "no") ||
            !strcasecmp(value, "off")) {
            snprintf(out, n, "false");
            return 0;
        }
        return laic_error("%s: %s.%s: '%s' is not a boolean (true/false)", where, k->section, k->key,
                          laic_escs(value));
    case CFG_ENUM: {
        size_t len = strlen(value);
        for (const char *p = k->choices; *p;) {
            const char *bar = strchr(p, '|');
            size_t l = bar ? (size_t)(bar - p) : strlen(p);
            if (l == len && !strncmp(p, value, l)) {
                snprintf(out, n, "%s", value);
                return 0;
            }
            if (!bar) break;
            p = bar + 1;
        }
        return laic_error("%s: %s.%s: '%s' is not one of %s", where, k->section, k->key,
                          laic_escs(value), k->choices);
    }
    case CFG_TRIPLE: {
        if (!value[0]) {
            out[0] = 0;
            return 0;
        }
        const char *p = value;
        double v[3];
        for (int i = 0; i < 3; i++) {
            errno = 0;
            v[i] = strtod(p, &end);
            if (errno || end == p || !isfinite(v[i]) || *end != (i < 2 ? '/' : 0))
                return laic_error("%s: %s.%s: '%s' is not three numbers a/b/c (NMI/ACC/ARI %%)", where,
                                  k->section, k->key, value);
            if (k->min <= k->max && (v[i] < k->min || v[i] > k->max))
                return laic_error("%s: %s.%s: %g is out of range [%g, %g]", where, k->section, k->key,
                                  v[i], k->min, k->max);
            p = end + 1;
        }
        snprintf(out, n, "%s", value);
        return 0;
    }
    }
    return laic_error("%s: internal: bad key type", where);
}

int config_init(Config *c, const CfgKey *keys, int n) {
    c->keys = keys;
    c->n = n;
    c->values = callocCheck((size_t)n, sizeof(char *));
    c->origin = callocCheck((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++) {
        char buf[1024];
        LAIC_ASSERT(validate(&keys[i], keys[i].def, buf, sizeof buf, "default") == 0);
        c->values[i] = strdup(buf);
        c->origin[i] = strdup("default");
    }
    return 0;
}

void config_free(Config *c) {
    for (int i = 0; i < c->n; i++) {
        free(c->values[i]);
        free(c->origin[i]);
    }
    free(c->values);
    free(c->origin);
    memset(c, 0, sizeof *c);
}

/* Keys that moved: an old name is read as its new one, so configs written before still load. */
static const char *const renamed[][4] = {
    {"eval", "tac_tau", "tac", "tau"},
};

/* Why `key = value` would not read back from an INI file as this value (NULL: it would).
 * libinih strips white space around values, takes " ;" as the start of a comment (a value
 * starting with ';' too: it follows "key = "), reads lines of at most INI_MAX_LINE - 2
 * characters plus '\n', and a line break would start a new line. Checked for every value set,
 * so a run's config.ini always loads back to the same values: overrides could break that (a
 * long path, a line break; found by tests/fuzz/fuzz_config). */
static const char *ini_unwritable(const char *key, const char *v) {
    static _Thread_local char why[96];
    size_t len = strlen(v);
    if (strpbrk(v, "\n\r")) return "holds a line break";
    if (len && (isspace((unsigned char)v[0]) || isspace((unsigned char)v[len - 1])))
        return "starts or ends with white space";
    for (size_t j = 0; j < len; j++)   // after "key = ", a leading ';' follows a space too
        if (v[j] == ';' && (j == 0 || isspace((unsigned char)v[j - 1])))
            return "starts a ';' comment";
    if (strlen(key) + 3 + len > INI_MAX_LINE - 2) {   // the buffer holds the '\n' too
        snprintf(why, sizeof why, "has %zu characters (at most %zu)", len,
                 (size_t)(INI_MAX_LINE - 2) - 3 - strlen(key));
        return why;
    }
    return NULL;
}

int config_set(Config *c, const char *section, const char *key, const char *value, const char *origin) {
    for (size_t r = 0; r < sizeof renamed / sizeof renamed[0]; r++)
        if (!strcmp(section, renamed[r][0]) && !strcmp(key, renamed[r][1]) &&
            find_key(c, renamed[r][2], renamed[r][3]) >= 0) {
            section = renamed[r][2];
            key = renamed[r][3];
        }
    if (!section_exists(c, section))
        return laic_error("%s: unknown section [%s] ---> HINT: laic run --help-config lists them",
                          origin, laic_escs(section));
    int i = find_key(c, section, key);
    if (i < 0)
        return laic_error("%s: unknown key '%s' in [%s] ---> HINT: laic run --help-config lists them",
                          origin, laic_escs(key), laic_escs(section));
    char buf[1024];
    if (strlen(value) >= sizeof buf)
        return laic_error("%s: %s.%s: value too long", origin, section, key);
    if (validate(&c->keys[i], value, buf, sizeof buf, origin)) return -1;
    const char *why = ini_unwritable(key, buf);
    if (why)
        return laic_error("%s: %s.%s: the value %s, so the run's config.ini could not hold it", origin,
                          section, key, why);
    free(c->values[i]);
    free(c->origin[i]);
    c->values[i] = strdup(buf);
    c->origin[i] = strdup(origin);
    return 0;
}

/* libinih (as Debian builds it) does not pass line numbers to the handler, so the file is fed
 * through a line reader that counts: when the handler runs, `line` is the line being parsed. */
typedef struct {
    Config *c;
    const char *path;
    FILE *f;
    int line;
    int failed;     // line of the first rejected key
    int too_long;   // line that does not fit libinih's buffer (parsing stops there)
} IniCtx;

/* libinih reads lines into a fixed buffer (INI_MAX_LINE, 200 as Debian builds it) and would
 * silently parse the rest of a longer line as a new line; such a line is an error instead. */
static char *counting_reader(char *buf, int n, void *stream) {
    IniCtx *x = stream;
    if (x->too_long) return NULL;
    char *r = fgets(buf, n, x->f);
    if (!r) return NULL;
    x->line++;
    size_t len = strlen(buf);
    if ((int)len == n - 1 && buf[len - 1] != '\n' && !feof(x->f)) {
        x->too_long = x->line;
        return NULL;
    }
    return r;
}

static int ini_cb(void *user, const char *section, const char *name, const char *value) {
    IniCtx *x = user;
    if (x->failed) return 0;
    char where[4200];
    snprintf(where, sizeof where, "%s:%d", x->path, x->line);
    int rc = 0;
    if (!section[0])
        rc = laic_error("%s: key '%s' outside any [section]", where, laic_escs(name));
    else
        rc = config_set(x->c, section, name, value, where);
    if (rc) x->failed = x->line;
    return !rc;
}

int config_load_ini(Config *c, const char *path) {
    IniCtx x = {.c = c, .path = path};
    x.f = fopen(path, "r");
    if (!x.f) return laic_error("%s: cannot open config: %s", path, strerror(errno));
    int rc = ini_parse_stream(counting_reader, &x, ini_cb, &x);
    fclose(x.f);
    if (rc < 0) return laic_error("%s: cannot read config", path);
    if (x.too_long && !(x.failed && x.failed < x.too_long) && !(rc > 0 && rc < x.too_long))
        return laic_error("%s:%d: line longer than %d characters", path, x.too_long, INI_MAX_LINE - 1);
    // rc is the first error's line: the handler's (message already recorded) or a syntax error.
    if (x.failed && rc == x.failed) return -1;
    if (rc > 0) return laic_error("%s:%d: INI syntax error (expected [section] or key = value)", path, rc);
    return 0;
}

int config_override(Config *c, const char *a) {
    const char *dot = strchr(a, '.'), *eq = strchr(a, '=');
    if (!dot || !eq || dot > eq)
        return laic_error("override '%s': expected section.key=value", a);
    char section[128], key[128], where[600];
    size_t ls = (size_t)(dot - a), lk = (size_t)(eq - dot - 1);
    if (ls == 0 || ls >= sizeof section || lk == 0 || lk >= sizeof key)
        return laic_error("override '%s': expected section.key=value", a);
    memcpy(section, a, ls);
    section[ls] = 0;
    memcpy(key, dot + 1, lk);
    key[lk] = 0;
    snprintf(where, sizeof where, "override '%.500s'", a);
    return config_set(c, section, key, eq + 1, where);
}

static int must_find(const Config *c, const char *section, const char *key) {
    for (size_t r = 0; r < sizeof renamed / sizeof renamed[0]; r++)   // code using an old name
        if (!strcmp(section, renamed[r][0]) && !strcmp(key, renamed[r][1])) {
            section = renamed[r][2];
            key = renamed[r][3];
        }
    int i = find_key(c, section, key);
    if (i < 0) {
        fprintf(stderr, "laic: internal error: config key %s.%s is not in the table\n", section, key);
        abort();
    }
    return i;
}

const char *config_str(const Config *c, const char *s, const char *k) {
    return c->values[must_find(c, s, k)];
}
long config_int(const Config *c, const char *s, const char *k) {
    return strtol(c->values[must_find(c, s, k)], NULL, 10);
}
double config_float(const Config *c, const char *s, const char *k) {
    return strtod(c->values[must_find(c, s, k)], NULL);
}
int config_bool(const Config *c, const char *s, const char *k) {
    return !strcmp(c->values[must_find(c, s, k)], "true");
}
const char *config_origin(const Config *c, const char *s, const char *k) {
    return c->origin[must_find(c, s, k)];
}

/* "; "-prefixed lines of at most `width` bytes, broken at spaces (a longer word is cut: libinih
 * refuses lines longer than INI_MAX_LINE - 1, comments included). */
static void write_wrapped_comment(FILE *f, const char *text, size_t width) {
    const char *p = text;
    while (*p) {
        size_t len = strlen(p);
        if (len > width) {
            len = width;
            while (len > 0 && p[len] != ' ') len--;
            if (len == 0) len = width;   // one word longer than a line (a long path): cut it
        }
        fprintf(f, "; %.*s\n", (int)len, p);
        p += len;
        while (*p == ' ') p++;
    }
}

void config_write(const Config *c, FILE *f, int annotate) {
    const char *cur = NULL;
    for (int i = 0; i < c->n; i++) {
        const CfgKey *k = &c->keys[i];
        if (!cur || strcmp(cur, k->section)) {
            fprintf(f, "%s[%s]\n", cur ? "\n" : "", k->section);
            cur = k->section;
        }
        if (annotate) {   // wrapped: libinih reads lines of at most INI_MAX_LINE - 1 characters
            char note[2048];
            snprintf(note, sizeof note, "%s [%s; default %s; from %s]", k->doc, k->tag,
                     k->def[0] ? k->def : "\"\"", c->origin[i]);
            write_wrapped_comment(f, note, 96);
        }
        fprintf(f, "%s = %s\n", k->key, c->values[i]);
    }
}

void config_help(const CfgKey *keys, int n, FILE *f) {
    const char *cur = NULL;
    for (int i = 0; i < n; i++) {
        const CfgKey *k = &keys[i];
        if (!cur || strcmp(cur, k->section)) {
            fprintf(f, "%s[%s]\n", cur ? "\n" : "", k->section);
            cur = k->section;
        }
        char type[160];
        switch (k->type) {
        case CFG_STR: snprintf(type, sizeof type, "string"); break;
        case CFG_BOOL: snprintf(type, sizeof type, "bool"); break;
        case CFG_ENUM: snprintf(type, sizeof type, "%s", k->choices); break;
        case CFG_TRIPLE: snprintf(type, sizeof type, "NMI/ACC/ARI %% in [%g, %g], or empty", k->min, k->max); break;
        case CFG_INT:
        case CFG_FLOAT:
            if (k->min <= k->max)
                snprintf(type, sizeof type, "%s in [%g, %g]", k->type == CFG_INT ? "int" : "float",
                         k->min, k->max);
            else
                snprintf(type, sizeof type, "%s", k->type == CFG_INT ? "int" : "float");
            break;
        }
        fprintf(f, "  %-20s = %-14s %s\n  %-20s   (%s; [%s])\n", k->key, k->def[0] ? k->def : "\"\"",
                k->doc, "", type, k->tag);
    }
}
