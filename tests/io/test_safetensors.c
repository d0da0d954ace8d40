/*
 * test_safetensors.c — host/io/safetensors.c on headers with many entries (issue 13 item 6).
 *
 * The header checks (unique names, offsets covering the data section without overlap) and
 * st_find used to compare every pair of entries: 60,000 entries took 15 s in `laic info`, and
 * the 100 MB header limit allowed hours. They now sort. These tests assert what the checks
 * find on a 60,000-entry header — a valid file, a duplicate name far from its twin, a
 * duplicate __metadata__, an overlap, a gap — and that st_find returns every one of the
 * 60,000 tensors; the time is measured (tests/README.md), never asserted.
 * The container checks on real weights files are tests/model/test_weights.c.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/err.h"
#include "io/safetensors.h"
#include "../test.h"

#define MANY 60000

// How many_entries() spoils the valid header.
enum { MANY_VALID, MANY_DUP_NAME, MANY_DUP_META, MANY_OVERLAP, MANY_GAP };

/* Writes a safetensors file of MANY one-byte U8 tensors "t00000".."t59999" to path; tensor i
 * holds byte i & 255 at offset i, listed in reverse order (so the offset check must sort).
 * mode spoils one thing (see above). */
static void many_entries(const char *path, int mode) {
    size_t cap = (size_t)MANY * 80 + 256, n = 0;
    char *h = malloc(cap);
    n += (size_t)snprintf(h + n, cap - n, "{\"__metadata__\":{\"note\":\"many\"}");
    for (int k = MANY - 1; k >= 0; k--) {
        int name = k, b = k, e = k + 1;
        if (mode == MANY_DUP_NAME && k == 0) name = MANY - 1;   // the first listed one, again
        if (mode == MANY_OVERLAP && k == MANY / 2) b = k - 1, e = k;
        if (mode == MANY_GAP && k == MANY / 2) continue;
        n += (size_t)snprintf(h + n, cap - n,
                              ",\"t%05d\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[%d,%d]}",
                              name, b, e);
    }
    if (mode == MANY_DUP_META) n += (size_t)snprintf(h + n, cap - n, ",\"__metadata__\":{}");
    n += (size_t)snprintf(h + n, cap - n, "}");
    uint8_t *f = malloc(8 + n + MANY);
    for (int i = 0; i < 8; i++) f[i] = (uint8_t)((uint64_t)n >> (8 * i));
    memcpy(f + 8, h, n);
    for (int i = 0; i < MANY; i++) f[8 + n + i] = (uint8_t)i;
    test_write_file(path, f, 8 + n + MANY);
    free(f);
    free(h);
}

TEST(safetensors_many_entries_valid_and_found) {
    const char *p = test_path("many.safetensors");
    many_entries(p, MANY_VALID);
    StFile f;
    REQUIRE(st_open(&f, p) == 0, "60,000 valid entries: %s", laic_last_error());
    CHECK(f.n_tensors == MANY, "n_tensors %d", f.n_tensors);
    int bad = 0;
    char name[16];
    for (int i = 0; i < MANY; i++) {
        snprintf(name, sizeof name, "t%05d", i);
        const StTensor *t = st_find(&f, name);
        if (!t || strcmp(t->name, name) || t->begin != (size_t)i || t->numel != 1 ||
            t->data[0] != (uint8_t)i)
            bad++;
    }
    CHECK(bad == 0, "st_find: %d of %d tensors wrong or missing", bad, MANY);
    CHECK(!st_find(&f, "t60000") && !st_find(&f, "") && !st_find(&f, "__metadata__") &&
              !st_find(&f, "t0000"),
          "st_find of absent names");
    const char *note = st_meta(&f, "note");
    CHECK(note && !strcmp(note, "many"), "metadata");
    st_close(&f);
}

TEST(safetensors_many_entries_rejected) {
    struct { int mode; const char *file, *msg; } cases[] = {
        {MANY_DUP_NAME, "many-dup.safetensors", "header names 't59999' twice"},
        {MANY_DUP_META, "many-meta.safetensors", "header names '__metadata__' twice"},
        {MANY_OVERLAP, "many-overlap.safetensors", "overlap"},
        {MANY_GAP, "many-gap.safetensors", "bytes [30000, 30001) of the data section belong to no tensor"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = test_path(cases[i].file);
        many_entries(p, cases[i].mode);
        StFile f;
        CHECK(st_open(&f, p) != 0 && strstr(laic_last_error(), p) &&
                  strstr(laic_last_error(), cases[i].msg),
              "%s: got '%s'", cases[i].file, laic_last_error());
        CHECK(f.map == NULL && f.tensors == NULL && f.by_name == NULL, "%s: closed on error",
              cases[i].file);
    }
}

// `laic info` on the big header: one line naming the file (the duplicate, then a valid
// container that is not a laic weights file).
TEST(safetensors_many_entries_laic_info) {
    char args[600], err[2048];
    const char *p = test_path("many-cli.safetensors");
    many_entries(p, MANY_DUP_NAME);
    snprintf(args, sizeof args, "info --weights '%s'", p);
    int rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, p) && strstr(err, "twice"),
          "duplicate: rc %d, stderr: %s", rc, err);
    many_entries(p, MANY_VALID);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, p) && strstr(err, "format is '(missing)'"),
          "valid container, no laic metadata: rc %d, stderr: %s", rc, err);
}
