/* report_fixture.c — see report_fixture.h. */
#include "report_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rng.h"
#include "../synth.h"
#include "../test.h"

int fix_count(const char *hay, const char *needle) {
    int n = 0;
    const size_t l = strlen(needle);
    for (const char *p = hay; p && (p = strstr(p, needle)); p += l) n++;
    return n;
}

unsigned char *fix_base64_decode(const char *s, size_t *n) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t len = 0;
    while (s[len] && (strchr(A, s[len]) || s[len] == '=')) len++;
    unsigned char *out = malloc(len / 4 * 3 + 3);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len && s[i] != '='; i++) {
        acc = acc << 6 | (uint32_t)(strchr(A, s[i]) - A);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    *n = o;
    return out;
}

/* Runs laic; on failure copies the reason into why and returns 0. */
static int laic_ok(const char *args, char *why, size_t n) {
    char err[16384];
    int rc = run_laic(args, NULL, err, sizeof err);
    if (rc) {
        const char *last = strstr(err, "laic: ") ? strstr(err, "laic: ") : err;
        snprintf(why, n, "laic %.40s… exited %d: %.400s", args, rc, last);
        return 0;
    }
    return 1;
}

/* CIFAR-10 format, 3 classes in saturated colours with ±20 noise, and hostile class names. */
static void write_colour_cifar(const char *dir, int n_train, int n_test) {
    static const unsigned char colour[3][3] = {{255, 0, 255}, {0, 255, 255}, {255, 255, 0}};
    Rng g;
    rng_init(&g, 11, 0);
    const char *names[2] = {"data_batch_1.bin", "test_batch.bin"};
    const int counts[2] = {n_train, n_test};
    for (int s = 0; s < 2; s++) {
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", dir, names[s]);
        FILE *f = fopen(p, "wb");
        for (int i = 0; i < counts[s]; i++) {
            unsigned char rec[3073];
            rec[0] = (unsigned char)(i % 3);
            for (int c = 0; c < 3; c++)
                for (int k = 0; k < 1024; k++) {
                    int v = colour[rec[0]][c] + (int)rng_below(&g, 41) - 20;
                    rec[1 + c * 1024 + k] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            fwrite(rec, 1, sizeof rec, f);
        }
        fclose(f);
    }
    char p[1200];
    snprintf(p, sizeof p, "%s/batches.meta.txt", dir);
    const char *meta = "<i>magenta</i> & \"pink\"\ncyan's <script>alert(1)</script>\nyellow é日本\n";
    test_write_file(p, meta, strlen(meta));
}

const char *fix_image_run(char *why, size_t n) {
    static char dir[600];
    static int state;   // 0 not tried, 1 made, -1 failed
    static char reason[600];
    if (state == 0) {
        state = -1;
        if (!file_exists("/usr/share/wordnet/data.noun")) {
            snprintf(reason, sizeof reason, "wordnet-base not installed (make setup)");
        } else {
            char data[600], args[4096];
            snprintf(data, sizeof data, "%s/colour-cifar", test_tmpdir());
            mkdir(data, 0755);
            write_colour_cifar(data, 60, 30);
            snprintf(dir, sizeof dir, "%s/run-image", test_tmpdir());
            snprintf(args, sizeof args,
                     "run /dev/null data.kind=cifar10 data.path=%s model.arch=tiny model.batch=16 "
                     "model.device=cpu nouns.subset=300 kmeans.restarts=2 centers.restarts=2 "
                     "ridge.save_c=true 'published.source=test <numbers> & co' "
                     "published.ours-notrain=50/60/40 published.tac-train=83.3/91.9/83.1 "
                     "run.dir=%s run.cache_dir=%s/cache",
                     data, dir, test_tmpdir());
            if (laic_ok(args, reason, sizeof reason)) state = 1;
        }
    }
    if (state < 0) snprintf(why, n, "%s", reason);
    return state > 0 ? dir : NULL;
}

/* Planted features with names.txt rewritten to hostile HTML. */
static void planted_data(const char *data, int K, int N, int M, double sigma) {
    mkdir(data, 0755);
    synth_planted(data, K, 32, N, M, sigma, 42, 1);   // E = 32: the tiny model's, so it can train
    char p[700];
    snprintf(p, sizeof p, "%s/names.txt", data);
    FILE *f = fopen(p, "w");
    for (int j = 0; j < M; j++) fprintf(f, "<b>noun%d_of_%d</b> & \"x\"\n", j, j % K);
    fclose(f);
}

static const char *planted_args(char *buf, size_t n, const char *data, const char *dir, const char *extra) {
    snprintf(buf, n,
             "run /dev/null data.image_features=%s/X.npy data.labels=%s/y.npy nouns.features=%s/T.npy "
             "nouns.names=%s/names.txt eval.methods=clip-kmeans,tac,ours-notrain kmeans.restarts=2 "
             "centers.restarts=2 run.dir=%s run.cache_dir=%s/cache %s",
             data, data, data, data, dir, test_tmpdir(), extra);
    return buf;
}

const char *fix_planted_run(char *why, size_t n) {
    static char dir[600], reason[600];
    static int state;
    if (state == 0) {
        char data[600], args[4096];
        snprintf(data, sizeof data, "%s/planted-data", test_tmpdir());
        planted_data(data, FIX_PLANTED_K, 300, 150, 0.08);
        snprintf(dir, sizeof dir, "%s/run-planted", test_tmpdir());
        state = laic_ok(planted_args(args, sizeof args, data, dir, "published.ours=85.2/92.9/84.8"), reason,
                        sizeof reason)
                    ? 1
                    : -1;
    }
    if (state < 0) snprintf(why, n, "%s", reason);
    return state > 0 ? dir : NULL;
}

const char *fix_big_run(char *why, size_t n) {
    static char dir[600], reason[600];
    static int state;
    if (state == 0) {
        char data[600], args[4096];
        snprintf(data, sizeof data, "%s/big-data", test_tmpdir());
        planted_data(data, FIX_BIG_K, 1200, 480, 0.08);
        snprintf(dir, sizeof dir, "%s/run-big", test_tmpdir());
        state = laic_ok(planted_args(args, sizeof args, data, dir,
                                     "eval.methods=ours-notrain kmeans.restarts=1 centers.restarts=1"),
                        reason, sizeof reason)
                    ? 1
                    : -1;
    }
    if (state < 0) snprintf(why, n, "%s", reason);
    return state > 0 ? dir : NULL;
}

const char *fix_sweep(char *why, size_t n) {
    static char dir[600], reason[600];
    static int state;
    if (state == 0) {
        char data[600], args[4096];
        snprintf(data, sizeof data, "%s/sweep-data", test_tmpdir());
        planted_data(data, 4, 160, 80, 0.3);   // noisy: the seeds disagree
        snprintf(dir, sizeof dir, "%s/sweep", test_tmpdir());
        snprintf(args, sizeof args,
                 "sweep /dev/null sweep.ridge.lambda=0.1,10,1000 sweep.run.seed=1,2 --dir %s "
                 "data.image_features=%s/X.npy data.labels=%s/y.npy nouns.features=%s/T.npy "
                 "nouns.names=%s/names.txt eval.methods=clip-kmeans,ours-notrain kmeans.restarts=1 "
                 "kmeans.init=random centers.restarts=1 run.cache_dir=%s/cache",
                 dir, data, data, data, data, test_tmpdir());
        state = laic_ok(args, reason, sizeof reason) ? 1 : -1;
    }
    if (state < 0) snprintf(why, n, "%s", reason);
    return state > 0 ? dir : NULL;
}

const char *fix_trained_run(char *why, size_t n) {
    static char dir[600], reason[600];
    static int state;
    if (state == 0) {
        char data[600], args[4096];
        snprintf(data, sizeof data, "%s/trained-data", test_tmpdir());
        planted_data(data, 4, 120, 60, 0.08);
        snprintf(dir, sizeof dir, "%s/run-trained", test_tmpdir());
        state = laic_ok(planted_args(args, sizeof args, data, dir,
                                     "eval.methods=ours train.enabled=true train.epochs=1 model.arch=tiny"),
                        reason, sizeof reason)
                    ? 1
                    : -1;
    }
    if (state < 0) snprintf(why, n, "%s", reason);
    return state > 0 ? dir : NULL;
}
