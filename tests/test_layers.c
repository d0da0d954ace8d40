/*
 * test_layers.c — the direction of dependencies in host/ (../shared/ARCHITECTURE.md): a file
 * may include headers of its own layer or of layers below it, never above. Layers, bottom up:
 * io (and rng.h), ops (ops.h, cpu/), model/data/cluster, train, run, cli. Inside run/, the
 * order is run.h/config.h/report_html.h ← stages.h ← methods/ ← pipeline.h ← sweep.h, so a
 * method never depends on the driver that runs it (report_html.h reads run directories' files
 * only: it sits at the bottom, beside config.h).
 *
 * The one exception is listed below with its reason; a new upward include fails this test.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

static int layer_of(const char *path) {   // path relative to host/
    static const struct { const char *prefix; int rank; } L[] = {
        {"io/", 0}, {"rng.h", 0}, {"ops.h", 1}, {"ops.c", 1}, {"comm.h", 1}, {"comm.c", 1}, {"cpu/", 1},
        {"model/", 2}, {"data/", 2}, {"cluster/", 2}, {"train/", 3}, {"run/", 4}, {"cli/", 5},
    };
    for (size_t i = 0; i < sizeof L / sizeof L[0]; i++)
        if (!strncmp(path, L[i].prefix, strlen(L[i].prefix))) return L[i].rank;
    return -1;
}

static int run_order(const char *path) {   // inside run/, -1 when not ranked
    static const struct { const char *prefix; int rank; } R[] = {
        {"run/run.", 0}, {"run/config", 0}, {"run/report_html.", 0}, {"run/stages.", 1}, {"run/methods/", 2},
        {"run/pipeline.", 3}, {"run/sweep.", 4},
    };
    for (size_t i = 0; i < sizeof R / sizeof R[0]; i++)
        if (!strncmp(path, R[i].prefix, strlen(R[i].prefix))) return R[i].rank;
    return -1;
}

// Upward includes we accept, with the reason.
static const char *const allowed[][2] = {
    // the CPU backend's prompt-learning entries wrap the references of the training layer
    // (losses, SGD) and of the image layer (augmented views) instead of holding a copy
    {"cpu/train_ops.c", "model/augment.h"},
    {"cpu/train_ops.c", "model/image.h"},
    {"cpu/train_ops.c", "train/train.h"},
};

static int is_allowed(const char *file, const char *inc) {
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
        if (!strcmp(file, allowed[i][0]) && !strcmp(inc, allowed[i][1])) return 1;
    return 0;
}

static int n_files, n_includes;

static void check_file(const char *rel) {
    char path[1100];
    snprintf(path, sizeof path, "host/%s", rel);
    char *text = test_read_file(path, NULL);
    if (!CHECK(text != NULL, "read %s", path)) return;
    n_files++;
    int me = layer_of(rel), me_run = run_order(rel);
    for (char *p = text; (p = strstr(p, "#include \"")); p++) {
        char inc[256];
        const char *s = p + 10, *e = strchr(s, '"');
        if (!e || (size_t)(e - s) >= sizeof inc) continue;
        memcpy(inc, s, (size_t)(e - s));
        inc[e - s] = 0;
        int them = layer_of(inc);
        if (them < 0 || me < 0) continue;   // ../kernels/…, local helpers
        n_includes++;
        if (is_allowed(rel, inc)) continue;
        CHECK(them <= me, "host/%s includes %s, a layer above it", rel, inc);
        if (me == 4 && them == 4 && me_run >= 0 && run_order(inc) >= 0)
            CHECK(run_order(inc) <= me_run, "host/%s includes %s, above it inside run/", rel, inc);
    }
    free(text);
}

static void walk(const char *rel) {
    char path[1100];
    snprintf(path, sizeof path, "host/%s", rel);
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char sub[1024];
        if (snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name) >= (int)sizeof sub) continue;
        size_t n = strlen(e->d_name);
        if (n > 2 && (!strcmp(e->d_name + n - 2, ".c") || !strcmp(e->d_name + n - 2, ".h")))
            check_file(sub);
        else if (!strchr(e->d_name, '.'))
            walk(sub);
    }
    closedir(d);
}

TEST(layers_no_upward_includes_in_host) {
    n_files = n_includes = 0;
    walk("");
    CHECK(n_files > 50 && n_includes > 200, "scanned %d files, %d layered includes", n_files,
          n_includes);
    printf("    %d files, %d includes between layers checked\n", n_files, n_includes);
}
