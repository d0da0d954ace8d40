/*
 * fuzz_config.c — the run configuration (host/run/config.c): an INI file through libinih and
 * config_load_ini, then `section.key=value` overrides, then the resolved config written back
 * and read again (it must load: a run directory's config.ini reproduces the run).
 * Input: the INI text, then optionally the separator "\xfe\xedPT" and one override per line.
 */
#include "io/err.h"
#include "run/config.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *part[2];
    size_t len[2];
    int np = fuzz_split(data, size, part, len, 2);
    const char *ini = fuzz_file(0, "c.ini", part[0], len[0]);
    Config c;
    if (config_init(&c, laic_config_keys, laic_config_nkeys)) abort();
    int ok = config_load_ini(&c, ini) == 0;
    if (np == 2) {
        char *ov = malloc(len[1] + 1);
        memcpy(ov, part[1], len[1]);
        ov[len[1]] = 0;
        for (char *line = ov, *next; line; line = next) {
            next = strchr(line, '\n');
            if (next) *next++ = 0;
            ok &= config_override(&c, line) == 0;
        }
        free(ov);
    }
    if (ok) {   // what was accepted writes back as INI that loads to the same values
        char out[320];
        snprintf(out, sizeof out, "%s/resolved.ini", fuzz_dir());
        FILE *f = fopen(out, "w");
        if (!f) abort();
        config_write(&c, f, 1);
        fclose(f);
        Config d;
        if (config_init(&d, laic_config_keys, laic_config_nkeys)) abort();
        if (config_load_ini(&d, out)) {
            fprintf(stderr, "fuzz_config: the resolved config does not load: %s\n", laic_last_error());
            abort();
        }
        for (int i = 0; i < c.n; i++)
            if (strcmp(c.values[i], d.values[i])) {
                fprintf(stderr, "fuzz_config: %s.%s = '%s' reads back as '%s'\n", c.keys[i].section,
                        c.keys[i].key, c.values[i], d.values[i]);
                abort();
            }
        config_free(&d);
    }
    config_free(&c);
    return 0;
}
