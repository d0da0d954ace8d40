/*
 * test_trainer.c — the prompt-learning loop (host/train/trainer.c), `laic train-centers` and the
 * [train] stage of `laic run`, on the tiny random-init CLIP (no Python, no fixtures needed):
 *  - the loss decreases and the prompts learn planted clusters (feature mode);
 *  - 3 epochs in one go == 1 epoch, stop, resume from the checkpoint, 2 more: vectors and
 *    momentum bit for bit (image mode: augmentation + image encoder + text backward);
 *  - other loss subsets run; mismatched checkpoints and bad pseudo-labels are refused;
 *  - the CLI: outputs, resume, one-line errors that leave no output behind.
 * Data comes from the project's RNG here.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/clip.h"
#include "io/err.h"
#include "io/npy.h"
#include "ops.h"
#include "rng.h"
#include "../test.h"
#include "../synth.h"
#include "train/trainer.h"

// --- fixtures built in memory ------------------------------------------------------------------

static int tiny_weights(ClipWeights *w) {
    ClipConfig c;
    return clip_config_preset(&c, "tiny") || clip_weights_init(w, &c, 7);
}

/* N planted points around K random unit centres in E dims (noise sigma), normalised;
 * y[i] = i % K. */
static void planted_features(float *X, int64_t *y, int N, int K, int E, double sigma, uint64_t seed) {
    Rng g;
    rng_init(&g, seed, 1);
    float *C = malloc((size_t)K * E * sizeof *C);
    for (int k = 0; k < K; k++)
        for (int e = 0; e < E; e++) C[k * E + e] = (float)rng_normal(&g);
    for (int i = 0; i < N; i++) {
        y[i] = i % K;
        double n2 = 0;
        for (int e = 0; e < E; e++) {
            float v = C[y[i] * E + e] + (float)(sigma * rng_normal(&g));
            X[(size_t)i * E + e] = v;
            n2 += (double)v * v;
        }
        for (int e = 0; e < E; e++) X[(size_t)i * E + e] /= (float)sqrt(n2);
    }
    free(C);
}

/* Synthetic RGB8 images: class k is a colour gradient with a class-specific hue plus noise. */
static void make_images(SynthImages *im, int n, int h, int w, int K) {
    im->n = n;
    im->h = h;
    im->w = w;
    im->pix = malloc((size_t)n * h * w * 3);
    Rng g;
    rng_init(&g, 99, 2);
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    int base = ((i % K) == c ? 200 : 40) + (x + y) * 40 / (h + w);
                    int v = base + (int)rng_below(&g, 30);
                    im->pix[(((size_t)i * h + y) * w + x) * 3 + c] = (uint8_t)(v > 255 ? 255 : v);
                }
}

// --- library tests -------------------------------------------------------------------------------

TEST(trainer_loss_decreases_and_learns_planted_clusters) {
    ClipWeights w;
    REQUIRE(tiny_weights(&w) == 0, "%s", laic_last_error());
    const int N = 60, K = 3, E = w.cfg.embed_dim;
    float *X = malloc((size_t)N * E * sizeof *X);
    int64_t *y = malloc((size_t)N * sizeof *y);
    uint8_t *hq = malloc((size_t)N);
    planted_features(X, y, N, K, E, 0.3, 5);
    for (int i = 0; i < N; i++) hq[i] = 1;
    TrainData d = {.N = (size_t)N, .K = K, .yhat = y, .hq = hq, .X = X};
    TrainerOpts o;
    trainer_opts_default(&o);
    o.epochs = 8;
    o.batch = 16;
    o.sgd.lr = 0.5;   // a random tiny text tower needs a larger step than CoOp's 0.002
    o.sgd.warmup_epoch = 0;
    o.sgd.max_epoch = 8;
    loss_config_parse_terms(&o.loss, "gce");
    TrainResult r;
    int rc = trainer_run(&r, &w, NULL, &ops_cpu, &d, &o);
    REQUIRE(rc == 0, "trainer_run: %s", laic_last_error());
    printf("    loss per epoch:");
    for (int e = 0; e < o.epochs; e++) printf(" %.4f", r.epoch_loss[e]);
    printf("\n");
    CHECK(r.epoch_loss[o.epochs - 1] < 0.8 * r.epoch_loss[0], "loss %.4f -> %.4f must drop by 20%%",
          r.epoch_loss[0], r.epoch_loss[o.epochs - 1]);
    int64_t *pred = malloc((size_t)N * sizeof *pred);
    trainer_predict(pred, X, (size_t)N, r.W, K, E);
    int ok = 0;
    for (int i = 0; i < N; i++) ok += pred[i] == y[i];
    CHECK(ok >= N * 9 / 10, "prompt c must win on cluster c: %d of %d", ok, N);
    CHECK(r.st.epoch == o.epochs && r.st.step == (int64_t)o.epochs * 4, "epoch %d step %lld",
          r.st.epoch, (long long)r.st.step);
    trainer_result_free(&r);
    free(pred);
    free(X);
    free(y);
    free(hq);
    clip_weights_free(&w);
}

/* Image-mode run on the tiny model: 12 images, K=3, batch 5 (a partial last batch). */
static int image_run(TrainResult *r, const ClipWeights *w, ClipModel *img, SynthImages *im,
                     const int64_t *y, const uint8_t *hq, int epochs, int stop_after,
                     const char *ckpt, const TrainState *resume, const char *loss) {
    TrainData d = {.N = (size_t)im->n, .K = 3, .yhat = y, .hq = hq, .get_image = synth_get_image,
                   .img_ctx = im};
    TrainerOpts o;
    trainer_opts_default(&o);
    o.epochs = epochs;
    o.batch = 5;
    o.sgd.lr = 0.05;
    o.sgd.max_epoch = epochs;
    o.text_batch = 2;   // K = 3 in two chunks: exercises the re-forward before each backward
    o.seed = 77;
    o.ckpt_path = ckpt;
    o.resume = resume;
    o.stop_after = stop_after;
    if (loss && loss_config_parse_terms(&o.loss, loss)) return -1;
    return trainer_run(r, w, img, &ops_cpu, &d, &o);
}

TEST(trainer_resume_is_bit_exact) {
    ClipWeights w;
    REQUIRE(tiny_weights(&w) == 0, "%s", laic_last_error());
    ClipModel *img = clip_model_create(&w, &ops_cpu, 10);
    REQUIRE(img, "%s", laic_last_error());
    SynthImages im;
    make_images(&im, 12, 40, 36, 3);
    int64_t y[12];
    uint8_t hq[12];
    for (int i = 0; i < 12; i++) y[i] = i % 3, hq[i] = i % 4 != 0;   // 3 samples in D_u
    TrainResult full, part, rest;
    const char *ck = test_path("resume.ckpt");
    REQUIRE(image_run(&full, &w, img, &im, y, hq, 3, 0, NULL, NULL, NULL) == 0, "full: %s",
            laic_last_error());
    REQUIRE(image_run(&part, &w, img, &im, y, hq, 3, 1, ck, NULL, NULL) == 0, "part: %s",
            laic_last_error());
    CHECK(part.stopped && part.st.epoch == 1, "stopped after epoch 1 (epoch %d)", part.st.epoch);
    TrainState s;
    REQUIRE(ckpt_load(ck, &s) == 0, "%s", laic_last_error());
    CHECK(s.epoch == 1 && s.step == 3 && s.have_mom, "checkpoint at epoch 1, step 3 (%d, %lld)",
          s.epoch, (long long)s.step);
    size_t n = (size_t)3 * 4 * w.cfg.text_width;
    CHECK(!memcmp(s.vec, part.st.vec, n * sizeof(float)), "checkpoint holds the epoch-1 vectors");
    REQUIRE(image_run(&rest, &w, img, &im, y, hq, 3, 0, NULL, &s, NULL) == 0, "resume: %s",
            laic_last_error());
    CHECK(rest.first_epoch == 1 && rest.st.epoch == 3 && rest.st.step == full.st.step,
          "resumed run ends at epoch 3 (%d), step %lld == %lld", rest.st.epoch,
          (long long)rest.st.step, (long long)full.st.step);
    CHECK(!memcmp(rest.st.vec, full.st.vec, n * sizeof(float)), "vectors bit for bit");
    CHECK(!memcmp(rest.st.mom, full.st.mom, n * sizeof(float)), "momentum bit for bit");
    CHECK(!memcmp(rest.W, full.W, (size_t)3 * w.cfg.embed_dim * sizeof(float)), "centres bit for bit");
    CHECK(!memcmp(rest.st.rng, full.st.rng, sizeof rest.st.rng[0]), "shuffle stream state");
    // training moved the vectors (a loop that did nothing would also "resume" exactly)
    float *v0 = malloc(n * sizeof *v0);
    train_init_vectors(v0, n, 77);
    double diff = 0;
    for (size_t i = 0; i < n; i++) diff = fmax(diff, fabs(v0[i] - full.st.vec[i]));
    CHECK(diff > 1e-4, "vectors moved from their init (max |dv| %.3g)", diff);
    free(v0);
    // a checkpoint of other settings is refused
    TrainData d = {.N = 12, .K = 4, .yhat = y, .hq = hq, .get_image = synth_get_image, .img_ctx = &im};
    TrainerOpts o;
    trainer_opts_default(&o);
    o.seed = 77;
    o.resume = &s;
    TrainResult bad;
    CHECK(trainer_run(&bad, &w, img, &ops_cpu, &d, &o) == -1 &&
              strstr(laic_last_error(), "checkpoint holds K=3"), "K mismatch refused: %s",
          laic_last_error());
    train_state_free(&s);
    trainer_result_free(&full);
    trainer_result_free(&part);
    trainer_result_free(&rest);
    free(im.pix);
    clip_model_free(img);
    clip_weights_free(&w);
}

TEST(trainer_loss_subsets_and_bad_labels) {
    ClipWeights w;
    REQUIRE(tiny_weights(&w) == 0, "%s", laic_last_error());
    ClipModel *img = clip_model_create(&w, &ops_cpu, 10);
    REQUIRE(img, "%s", laic_last_error());
    SynthImages im;
    make_images(&im, 8, 32, 32, 3);
    int64_t y[8];
    uint8_t hq[8];
    for (int i = 0; i < 8; i++) y[i] = i % 3, hq[i] = i % 2;
    const char *subsets[] = {"gce", "mse", "entropy", "gce,entropy", "mse,gce"};
    float *first = NULL;
    size_t n = (size_t)3 * 4 * w.cfg.text_width;
    int differ = 0;
    for (int s = 0; s < 5; s++) {
        TrainResult r;
        int rc = image_run(&r, &w, img, &im, y, hq, 1, 0, NULL, NULL, subsets[s]);
        CHECK(rc == 0, "loss=%s: %s", subsets[s], laic_last_error());
        if (rc) continue;
        int finite = 1;
        for (size_t i = 0; i < n; i++) finite &= isfinite(r.st.vec[i]);
        CHECK(finite && isfinite(r.epoch_loss[0]), "loss=%s gives finite vectors and loss", subsets[s]);
        if (!first) {
            first = malloc(n * sizeof *first);
            memcpy(first, r.st.vec, n * sizeof *first);
        } else {
            differ += memcmp(first, r.st.vec, n * sizeof *first) != 0;
        }
        trainer_result_free(&r);
    }
    CHECK(differ == 4, "each loss subset trains differently (%d of 4 differ from gce)", differ);
    free(first);
    y[3] = 5;   // hq[3] = 1: a pseudo-label outside [0,K)
    TrainResult r;
    CHECK(image_run(&r, &w, img, &im, y, hq, 1, 0, NULL, NULL, NULL) == -1 &&
              strstr(laic_last_error(), "pseudo-label 5 of sample 3"),
          "bad pseudo-label refused: %s", laic_last_error());
    free(im.pix);
    clip_model_free(img);
    clip_weights_free(&w);
}

// --- `laic run` with the [train] stage -----------------------------------------------------------

/* A CIFAR-10-format dataset (data_batch_1.bin: n_train, test_batch.bin: n_test records of a
 * label byte + 3072 bytes of R, G, B planes) with class-tinted images, and planted noun features
 * (E = 32, the tiny model's width) with names, so no WordNet is needed. */
static void write_train_data(const char *dir, int n_train, int n_test, int K) {
    char p[600];
    Rng g;
    rng_init(&g, 3, 3);
    for (int f = 0; f < 2; f++) {
        snprintf(p, sizeof p, "%s/%s", dir, f ? "test_batch.bin" : "data_batch_1.bin");
        FILE *fp = fopen(p, "wb");
        int n = f ? n_test : n_train;
        for (int i = 0; i < n; i++) {
            uint8_t rec[3073];
            rec[0] = (uint8_t)(i % K);
            for (int c = 0; c < 3; c++)
                for (int q = 0; q < 1024; q++)
                    rec[1 + c * 1024 + q] = (uint8_t)((i % K == c ? 180 : 30) + (q % 32) + rng_below(&g, 40));
            fwrite(rec, 1, sizeof rec, fp);
        }
        fclose(fp);
    }
    const int M = 12, E = 32;
    float *T = malloc((size_t)M * E * sizeof *T);
    for (int j = 0; j < M * E; j++) T[j] = (float)rng_normal(&g);
    snprintf(p, sizeof p, "%s/T.npy", dir);
    npy_write_f32_2d(p, T, (size_t)M, (size_t)E);
    free(T);
    snprintf(p, sizeof p, "%s/names.txt", dir);
    FILE *fp = fopen(p, "w");
    for (int j = 0; j < M; j++) fprintf(fp, "noun%d\n", j);
    fclose(fp);
}

static void train_args(char *buf, size_t n, const char *dir, const char *run, const char *extra) {
    snprintf(buf, n,
             "run /dev/null data.kind=cifar10 data.path=%s model.arch=tiny model.device=cpu "
             "model.batch=16 nouns.features=%s/T.npy nouns.names=%s/names.txt kmeans.k=3 "
             "kmeans.restarts=2 centers.restarts=2 eval.methods=ours-notrain,ours "
             "train.enabled=true train.epochs=3 train.batch=8 train.lr=0.05 run.seed=11 "
             "run.cache_dir=%s/cache run.dir=%s/%s %s",
             dir, dir, dir, dir, dir, run, extra);
}

static void *read_run_file(const char *dir, const char *run, const char *name, size_t *n) {
    char p[700];
    snprintf(p, sizeof p, "%s/%s/%s", dir, run, name);
    return test_read_file(p, n);
}

TEST(trainer_run_stage_outputs_and_resume) {
    const char *dir = test_path("trainrun");
    mkdir(dir, 0755);
    write_train_data(dir, 24, 12, 3);
    char args[4096], err[32768], p[700];
    // uninterrupted: 3 epochs
    train_args(args, sizeof args, dir, "full", "");
    int rc = run_laic(args, NULL, err, sizeof err);
    REQUIRE(rc == 0, "laic run with train.enabled failed (%d): %s", rc, err);
    char *json = read_run_file(dir, "full", "report.json", NULL);
    REQUIRE(json, "report.json");
    const char *m = strstr(json, "\"ours\":");
    CHECK(m && strstr(m, "\"acc\":"), "report has the 'ours' metrics");
    CHECK(strstr(json, "\"loss_per_epoch\":") && strstr(json, "\"steps\":\t9"),
          "report.train: 3 epochs x 3 steps");
    CHECK(strstr(json, "images (weak + strong views)") != NULL, "trained on augmented views");
    free(json);
    Npy c;
    snprintf(p, sizeof p, "%s/full/centres.npy", dir);
    REQUIRE(npy_read(p, &c) == 0, "%s", laic_last_error());
    CHECK(c.ndim == 2 && c.shape[0] == 3 && c.shape[1] == 32 && c.dtype == NPY_F32, "centres.npy (K,E)");
    for (size_t k = 0; k < 3; k++) {
        double n2 = 0;
        for (size_t e = 0; e < 32; e++) n2 += pow(((float *)c.data)[k * 32 + e], 2);
        CHECK(fabs(n2 - 1) < 1e-5, "centre %zu is unit length (%.7f)", k, n2);
    }
    npy_free(&c);
    char *tsv = read_run_file(dir, "full", "centres.tsv", NULL);
    REQUIRE(tsv, "centres.tsv");
    CHECK(count_lines(tsv) == 4 && strstr(tsv, "nearest_nouns") && strstr(tsv, "noun"),
          "centres.tsv: header + 3 centres with nouns:\n%s", tsv);
    free(tsv);
    // stopped after epoch 1: one-line error, no run dir, the checkpoint kept in .partial
    train_args(args, sizeof args, dir, "part", "train.stop_after=1");
    rc = run_laic(args, NULL, err, sizeof err);
    const char *last = strstr(err, "laic: ");
    CHECK(rc != 0 && last && strstr(last, "stopped after epoch 1 of 3") && count_lines(last) == 1,
          "stop_after: non-zero exit and one 'laic:' line (%d): %s", rc, err);
    snprintf(p, sizeof p, "%s/part", dir);
    CHECK(!file_exists(p), "no run directory for a stopped run");
    snprintf(p, sizeof p, "%s/part.partial/train.ckpt", dir);
    CHECK(file_exists(p), "checkpoint kept in part.partial/");
    // resumed into the same directory: bit-identical centres, vectors and final checkpoint
    snprintf(p, sizeof p, "run.resume=%s/part", dir);
    train_args(args, sizeof args, dir, "part", p);
    rc = run_laic(args, NULL, err, sizeof err);
    REQUIRE(rc == 0, "resume failed (%d): %s", rc, err);
    CHECK(strstr(err, "resumed at epoch 1") != NULL, "the run resumed at epoch 1");
    const char *files[] = {"centres.npy", "prompt_vectors.npy", "train.ckpt", "assignments.npy"};
    for (int i = 0; i < 4; i++) {
        size_t na, nb;
        char *a = read_run_file(dir, "full", files[i], &na), *b = read_run_file(dir, "part", files[i], &nb);
        CHECK(a && b && na == nb && !memcmp(a, b, na), "%s: resumed == uninterrupted, bit for bit", files[i]);
        free(a);
        free(b);
    }
    snprintf(p, sizeof p, "%s/part.partial", dir);
    CHECK(!file_exists(p), "the resumed run cleaned up part.partial");
    // resume from a directory without a checkpoint: one line, no run directory
    snprintf(p, sizeof p, "run.resume=%s/nowhere", dir);
    train_args(args, sizeof args, dir, "bad", p);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc != 0 && count_lines(err) == 1 && strstr(err, "nowhere: no train.ckpt"),
          "missing checkpoint: one line (%d): %s", rc, err);
    snprintf(p, sizeof p, "%s/bad", dir);
    CHECK(!file_exists(p), "no run directory left");
    // a checkpoint of other settings (n_ctx) is refused
    snprintf(p, sizeof p, "run.resume=%s/full train.n_ctx=2", dir);
    train_args(args, sizeof args, dir, "bad", p);
    rc = run_laic(args, NULL, err, sizeof err);
    last = strstr(err, "laic: ");
    CHECK(rc != 0 && last && strstr(last, "checkpoint holds K=3 M=4"), "n_ctx mismatch refused: %s", err);
    snprintf(p, sizeof p, "%s/bad", dir);
    CHECK(!file_exists(p), "no run directory left");
}

// --- `laic train-centers` ------------------------------------------------------------------------

TEST(trainer_cli_train_centers) {
    const char *dir = test_path("tcli");
    mkdir(dir, 0755);
    char W[600], Xp[600], Yp[600], Mp[600], args[4096], err[16384], p[700];
    snprintf(W, sizeof W, "%s/tiny.safetensors", dir);
    snprintf(args, sizeof args, "init-weights --arch tiny --seed 7 --out %s", W);
    REQUIRE(run_laic(args, NULL, err, sizeof err) == 0, "init-weights: %s", err);
    const int N = 30, K = 3, E = 32;
    float X[30 * 32];
    int64_t y[30];
    uint8_t m[30];
    planted_features(X, y, N, K, E, 0.3, 5);
    for (int i = 0; i < N; i++) m[i] = i % 5 != 0;
    snprintf(Xp, sizeof Xp, "%s/X.npy", dir);
    snprintf(Yp, sizeof Yp, "%s/y.npy", dir);
    snprintf(Mp, sizeof Mp, "%s/m.npy", dir);
    npy_write_f32_2d(Xp, X, (size_t)N, (size_t)E);
    size_t ns[1] = {(size_t)N};
    npy_write(Yp, NPY_I64, 1, ns, y);
    npy_write(Mp, NPY_U8, 1, ns, m);
    const char *common = "--epochs 4 --batch 8 --lr 0.5 --warmup-epochs 0 --loss gce,entropy --device cpu";
    // uninterrupted, with predictions
    snprintf(args, sizeof args, "train-centers --weights %s --features %s --labels %s --mask %s "
             "--out %s/c_full.npy --vectors-out %s/v_full.npy --predict-out %s/pred.npy %s",
             W, Xp, Yp, Mp, dir, dir, dir, common);
    int rc = run_laic(args, NULL, err, sizeof err);
    REQUIRE(rc == 0, "train-centers (%d): %s", rc, err);
    Npy pr;
    snprintf(p, sizeof p, "%s/pred.npy", dir);
    REQUIRE(npy_read(p, &pr) == 0, "%s", laic_last_error());
    int ok = 0;
    for (int i = 0; i < N && pr.count == (size_t)N; i++) ok += ((int64_t *)pr.data)[i] == y[i];
    CHECK(pr.dtype == NPY_I64 && ok >= 27, "assignments follow the planted labels: %d of %d", ok, N);
    npy_free(&pr);
    // stop after 2 epochs (exit 3, checkpoint only), then resume: the same bytes
    snprintf(args, sizeof args, "train-centers --weights %s --features %s --labels %s --mask %s "
             "--out %s/c_part.npy --ckpt %s/ck --stop-after 2 %s", W, Xp, Yp, Mp, dir, dir, common);
    rc = run_laic(args, NULL, err, sizeof err);
    snprintf(p, sizeof p, "%s/c_part.npy", dir);
    CHECK(rc == 3 && !file_exists(p) && strstr(err, "stopped after epoch 2 of 4"),
          "stop-after: exit 3, no centres yet (%d): %s", rc, err);
    snprintf(args, sizeof args, "train-centers --weights %s --features %s --labels %s --mask %s "
             "--out %s/c_part.npy --vectors-out %s/v_part.npy --resume %s/ck %s", W, Xp, Yp, Mp,
             dir, dir, dir, common);
    rc = run_laic(args, NULL, err, sizeof err);
    REQUIRE(rc == 0, "resume (%d): %s", rc, err);
    const char *pairs[][2] = {{"c_full.npy", "c_part.npy"}, {"v_full.npy", "v_part.npy"}};
    for (int i = 0; i < 2; i++) {
        size_t na, nb;
        char pa[700], pb[700];
        snprintf(pa, sizeof pa, "%s/%s", dir, pairs[i][0]);
        snprintf(pb, sizeof pb, "%s/%s", dir, pairs[i][1]);
        char *a = test_read_file(pa, &na), *b = test_read_file(pb, &nb);
        CHECK(a && b && na == nb && !memcmp(a, b, na), "%s == %s bit for bit", pairs[i][0], pairs[i][1]);
        free(a);
        free(b);
    }
    // bad inputs: one line naming the file, no output
    char bad[600];
    snprintf(bad, sizeof bad, "%s/m_short.npy", dir);
    size_t ns2[1] = {(size_t)N - 1};
    npy_write(bad, NPY_U8, 1, ns2, m);
    snprintf(args, sizeof args, "train-centers --weights %s --features %s --labels %s --mask %s "
             "--out %s/o1.npy %s", W, Xp, Yp, bad, dir, common);
    rc = run_laic(args, NULL, err, sizeof err);
    snprintf(p, sizeof p, "%s/o1.npy", dir);
    CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, "m_short.npy") && !file_exists(p),
          "short mask: one line naming the file (%d): %s", rc, err);
    snprintf(args, sizeof args, "train-centers --weights %s --features %s --labels %s --mask %s "
             "--out %s/o1.npy --k 2 %s", W, Xp, Yp, Mp, dir, common);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, "y.npy: pseudo-label 2") && !file_exists(p),
          "label >= --k: one line (%d): %s", rc, err);
    snprintf(args, sizeof args, "train-centers --weights %s --labels %s --mask %s --out %s/o1.npy",
             W, Yp, Mp, dir);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 2 && count_lines(err) == 1 && strstr(err, "--data") && !file_exists(p),
          "neither --data nor --features: usage error (%d): %s", rc, err);
    snprintf(args, sizeof args, "train-centers --weights %s --features %s --labels %s --mask %s "
             "--out %s/o1.npy --resume %s %s", W, Xp, Yp, Mp, dir, Xp, common);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, "X.npy") && !file_exists(p),
          "a non-checkpoint as --resume: one line (%d): %s", rc, err);
    // the text tower's precision is checked before anything is read: the CPU multiplies in fp32
    snprintf(args, sizeof args, "train-centers --weights %s --features %s --labels %s --mask %s "
             "--out %s/o1.npy %s --text-precision bf16", W, Xp, Yp, Mp, dir, common);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 2 && count_lines(err) == 1 && strstr(err, "--text-precision bf16: the CPU") &&
              !file_exists(p), "--text-precision bf16 on the CPU: usage error (%d): %s", rc, err);
}
