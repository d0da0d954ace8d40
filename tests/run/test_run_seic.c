/*
 * test_run_seic.c — SEIC through `laic run` (host/run/methods/seic.c, SPEC §9.3):
 *  - planted clusters in precomputed features: seic-stage1 ("SEIC†") recovers them (stage 0
 *    pairs each image with nouns of its own cluster, stage 1 aligns the heads), with few
 *    epochs and a small batch so it runs in about a second;
 *  - a run stopped by seic.stop_after and resumed with run.resume ends with the same
 *    checkpoint and predictions, bit for bit, as the uninterrupted run;
 *  - the stage-0 pairs come from the cache on a second run; bad settings fail in one line.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/err.h"
#include "io/npy.h"
#include "../synth.h"
#include "../test.h"

static double json_num(const char *json, const char *section, const char *key) {
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", section);
    const char *p = strstr(json, pat);
    if (!p) return NAN;
    snprintf(pat, sizeof pat, "\"%s\":", key);
    p = strstr(p, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

static const char *seic_args(char *buf, size_t n, const char *dir, const char *run, const char *extra) {
    snprintf(buf, n,
             "run /dev/null data.image_features=%s/X.npy data.labels=%s/y.npy "
             "nouns.features=%s/T.npy nouns.names=%s/names.txt run.dir=%s/%s run.cache_dir=%s/cache "
             "eval.methods=seic-stage1 seic.s1_epochs=40 seic.s1_batch=128 seic.k1=20 seic.k2=10 "
             "seic.kmeans_restarts=2 %s",
             dir, dir, dir, dir, dir, run, dir, extra);
    return buf;
}

TEST(run_seic_stage1_recovers_planted_clusters) {
    const char *dir = test_path("seic_planted");
    mkdir(dir, 0755);
    synth_planted(dir, 5, 24, 500, 150, 0.08, 42, 1);
    char args[2048], err[16384], p[700];
    int rc = run_laic(seic_args(args, sizeof args, dir, "run", ""), NULL, err, sizeof err);
    REQUIRE(rc == 0, "laic run failed (%d): %s", rc, err);
    snprintf(p, sizeof p, "%s/run/report.json", dir);
    char *json = test_read_file(p, NULL);
    REQUIRE(json, "report.json");
    const double acc = json_num(json, "seic-stage1", "acc"), nmi = json_num(json, "seic-stage1", "nmi");
    printf("    seic-stage1 on 5 planted clusters: ACC %.3f NMI %.3f\n", acc, nmi);
    CHECK(acc >= 0.99 && nmi >= 0.95, "SEIC† recovers the planted clusters: ACC %.3f NMI %.3f", acc, nmi);
    const double cands = json_num(json, "stage0", "candidate_nouns");
    CHECK(cands >= 20 && cands <= 100, "stage 0: at most k1 = 20 nouns per centre, %g candidates", cands);
    CHECK(json_num(json, "stage1", "steps") == 40 * 4, "40 epochs of 4 steps (500 = 3·128 + 116)");
    free(json);
    const char *files[] = {"seic_stage1.ckpt", "seic_candidates.tsv", "predictions/seic-stage1.npy"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/run/%s", dir, files[i]);
        CHECK(file_exists(p), "%s written", files[i]);
    }
    // every candidate of a planted class: stage 0 mixes each image's own class's nouns
    snprintf(p, sizeof p, "%s/run/seic_candidates.tsv", dir);
    char *tsv = test_read_file(p, NULL);
    CHECK(tsv && strstr(tsv, "noun") && strstr(tsv, "_of_4"), "candidates name the planted nouns");
    free(tsv);
    // second run: the pairs come from the cache, identical predictions
    rc = run_laic(seic_args(args, sizeof args, dir, "run2", ""), NULL, err, sizeof err);
    REQUIRE(rc == 0, "second run failed: %s", err);
    CHECK(strstr(err, "image-text pairs from cache") != NULL, "stage 0 from the cache: %s", err);
    Npy a, b;
    char pa[700], pb[700];
    snprintf(pa, sizeof pa, "%s/run/predictions/seic-stage1.npy", dir);
    snprintf(pb, sizeof pb, "%s/run2/predictions/seic-stage1.npy", dir);
    REQUIRE(!npy_read(pa, &a) && !npy_read(pb, &b), "%s", laic_last_error());
    CHECK(a.count == b.count && !memcmp(a.data, b.data, a.count * 8), "same predictions from the cache");
    npy_free(&a);
    npy_free(&b);
}

TEST(run_seic_stage1_stop_and_resume_is_bit_identical) {
    const char *dir = test_path("seic_resume");
    mkdir(dir, 0755);
    synth_planted(dir, 4, 16, 300, 80, 0.1, 7, 1);
    char args[2048], err[16384], extra[1200];
    int rc = run_laic(seic_args(args, sizeof args, dir, "full", "seic.s1_epochs=6"), NULL, err, sizeof err);
    REQUIRE(rc == 0, "uninterrupted run failed: %s", err);
    rc = run_laic(seic_args(args, sizeof args, dir, "part", "seic.s1_epochs=6 seic.stop_after=2"), NULL, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "stopped after stage-1 epoch 2 of 6"), "stop_after stops: %s", err);
    char p[800];
    snprintf(p, sizeof p, "%s/part.partial/seic_stage1.ckpt", dir);
    REQUIRE(file_exists(p), "the stopped run keeps its checkpoint in .partial");
    snprintf(extra, sizeof extra, "seic.s1_epochs=6 run.resume=%s/part", dir);
    rc = run_laic(seic_args(args, sizeof args, dir, "part", extra), NULL, err, sizeof err);
    REQUIRE(rc == 0, "resumed run failed: %s", err);
    CHECK(strstr(err, "resumed at epoch 2") != NULL, "resumed at epoch 2: %s", err);
    const char *files[] = {"seic_stage1.ckpt", "predictions/seic-stage1.npy"};
    for (int i = 0; i < 2; i++) {
        char pa[800], pb[800];
        snprintf(pa, sizeof pa, "%s/full/%s", dir, files[i]);
        snprintf(pb, sizeof pb, "%s/part/%s", dir, files[i]);
        size_t na = 0, nb = 0;
        char *fa = test_read_file(pa, &na), *fb = test_read_file(pb, &nb);
        CHECK(fa && fb && na == nb && !memcmp(fa, fb, na), "%s: stopped + resumed equals uninterrupted, bit for bit", files[i]);
        free(fa);
        free(fb);
    }
    // resuming with other settings is refused
    snprintf(extra, sizeof extra, "seic.s1_epochs=6 seic.s1_lr=0.01 run.resume=%s/part run.dir=%s/other", dir, dir);
    rc = run_laic(seic_args(args, sizeof args, dir, "x", extra), NULL, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "resume refused: seic.s1_lr = 0.0050000000000000001 in the checkpoint, 0.01 in this run"),
          "other settings refused, naming the key: %s", err);
    snprintf(extra, sizeof extra, "run.resume=%s/nowhere", dir);
    rc = run_laic(seic_args(args, sizeof args, dir, "y", extra), NULL, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "no seic_stage1.ckpt"), "a resume directory without a checkpoint: %s", err);
}

// --- stage 2 on images -----------------------------------------------------------------------------

/* A CIFAR-10-format dataset (data_batch_1.bin + test_batch.bin) whose class sets the dominant
 * colour (as tests/run/test_run.c's), so even the random-init tiny encoder sees the classes. */
static void write_cifar(const char *dir, int n_train, int n_test) {
    Rng g;
    rng_init(&g, 8, 0);
    const char *names[2] = {"data_batch_1.bin", "test_batch.bin"};
    int counts[2] = {n_train, n_test};
    for (int s = 0; s < 2; s++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, names[s]);
        FILE *f = fopen(p, "wb");
        for (int i = 0; i < counts[s]; i++) {
            unsigned char rec[3073];
            rec[0] = (unsigned char)(i % 3);
            for (int c = 0; c < 3; c++)
                for (int k = 0; k < 1024; k++)
                    rec[1 + c * 1024 + k] = (unsigned char)((c == rec[0] ? 170 : 30) + rng_below(&g, 60));
            fwrite(rec, 1, sizeof rec, f);
        }
        fclose(f);
    }
}

static const char *tiny_args(char *buf, size_t n, const char *dir, const char *run, const char *extra) {
    snprintf(buf, n,
             "run /dev/null data.kind=cifar10 data.path=%s model.arch=tiny model.batch=16 "
             "model.device=cpu nouns.subset=200 kmeans.k=3 run.dir=%s/%s run.cache_dir=%s/cache "
             "eval.methods=seic seic.s1_epochs=4 seic.s1_batch=32 seic.k1=30 seic.k2=10 "
             "seic.kmeans_restarts=2 centers.restarts=2 seic.s2_epochs=2 seic.s2_batch=16 "
             "seic.lora_rank=4 seic.lora_alpha=8 seic.s2_lr=1e-3 %s",
             dir, dir, run, dir, extra);
    return buf;
}

TEST(run_seic_stage2_on_images_and_resume) {
    // The whole method on a tiny random-init model: stage 0 on WordNet nouns encoded by the tiny
    // text tower, stage 1, then 2 epochs of LoRA self-enhancement on 48 CIFAR-format images;
    // both methods reported. Then stopped after stage-2 epoch 1 (seic.stop_after = s1 + 1) and
    // resumed: the checkpoints and predictions equal the uninterrupted run's, byte for byte.
    if (!file_exists("/usr/share/wordnet/data.noun")) SKIP("wordnet-base not installed (make setup)");
    const char *dir = test_path("seic_tiny");
    mkdir(dir, 0755);
    write_cifar(dir, 48, 24);
    char args[2048], err[32768], p[800], extra[1200];
    int rc = run_laic(tiny_args(args, sizeof args, dir, "full", ""), NULL, err, sizeof err);
    REQUIRE(rc == 0, "laic run eval.methods=seic failed (%d): %s", rc, err);
    CHECK(strstr(err, "seic stage 2: epoch 2/2") != NULL, "two stage-2 epochs logged");
    snprintf(p, sizeof p, "%s/full/report.json", dir);
    char *json = test_read_file(p, NULL);
    REQUIRE(json, "report.json");
    const double a1 = json_num(json, "seic-stage1", "acc"), a2 = json_num(json, "seic", "acc");
    printf("    tiny model, 3 colour classes: seic-stage1 ACC %.3f, seic ACC %.3f\n", a1, a2);
    CHECK(a1 >= 1.0 / 3 - 1e-9 && a1 <= 1.0 && a2 >= 1.0 / 3 - 1e-9 && a2 <= 1.0, "both reported");
    CHECK(strstr(json, "\"seic\":") && strstr(json, "\"stage2\":") && json_num(json, "stage2", "steps") == 2 * 3,
          "seic reported with 2 epochs of 3 steps (48 = 3 x 16)");
    free(json);
    const char *files[] = {"seic_stage1.ckpt", "seic_stage2.ckpt", "predictions/seic.npy",
                           "predictions/seic-stage1.npy"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/full/%s", dir, files[i]);
        CHECK(file_exists(p), "%s written", files[i]);
    }
    // stop after stage 1's 4 epochs + 1 of stage 2, resume
    rc = run_laic(tiny_args(args, sizeof args, dir, "part", "seic.stop_after=5"), NULL, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "stopped after stage-2 epoch 1 of 2"), "stop_after stops in stage 2: %s", err);
    snprintf(extra, sizeof extra, "run.resume=%s/part", dir);
    rc = run_laic(tiny_args(args, sizeof args, dir, "part", extra), NULL, err, sizeof err);
    REQUIRE(rc == 0, "resumed run failed: %s", err);
    CHECK(strstr(err, "seic stage 2: resumed at epoch 1") != NULL, "stage 2 resumed at epoch 1: %s", err);
    for (int i = 0; i < 4; i++) {
        char pa[800], pb[800];
        snprintf(pa, sizeof pa, "%s/full/%s", dir, files[i]);
        snprintf(pb, sizeof pb, "%s/part/%s", dir, files[i]);
        size_t na = 0, nb = 0;
        char *fa = test_read_file(pa, &na), *fb = test_read_file(pb, &nb);
        CHECK(fa && fb && na == nb && !memcmp(fa, fb, na), "%s: stopped + resumed equals uninterrupted", files[i]);
        free(fa);
        free(fb);
    }
}

TEST(run_seic_stage2_needs_images) {
    // precomputed features: 'seic' is skipped with a note, seic-stage1 still reported
    const char *dir = test_path("seic_noimg");
    mkdir(dir, 0755);
    synth_planted(dir, 3, 16, 60, 40, 0.1, 9, 1);
    char args[2048], err[16384];
    int rc = run_laic(seic_args(args, sizeof args, dir, "run", "eval.methods=seic seic.s1_epochs=2"), NULL, err, sizeof err);
    REQUIRE(rc == 0, "run failed: %s", err);
    CHECK(strstr(err, "precomputed features only") != NULL, "the note says why: %s", err);
    char p[700];
    snprintf(p, sizeof p, "%s/run/predictions/seic-stage1.npy", dir);
    CHECK(file_exists(p), "seic-stage1 reported");
}
