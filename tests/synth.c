/* synth.c — see synth.h. */
#include "synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/err.h"
#include "io/npy.h"
#include "rng.h"

void synth_planted(const char *dir, int K, int E, int N, int M, double sigma, uint64_t seed,
                   int label_stride) {
    Rng g;
    rng_init(&g, seed, 0);
    float *C = malloc((size_t)K * E * sizeof *C), *X = malloc((size_t)N * E * sizeof *X),
          *T = malloc((size_t)M * E * sizeof *T);
    int64_t *y = malloc((size_t)N * sizeof *y);
    for (int k = 0; k < K; k++) {
        double n2 = 0;
        for (int e = 0; e < E; e++) n2 += pow(C[k * E + e] = (float)rng_normal(&g), 2);
        for (int e = 0; e < E; e++) C[k * E + e] /= (float)sqrt(n2);
    }
    for (int i = 0; i < N; i++) {
        y[i] = ((int64_t)i * label_stride) % K;
        for (int e = 0; e < E; e++) X[(size_t)i * E + e] = C[y[i] * E + e] + (float)(sigma * rng_normal(&g));
    }
    char path[512];
    snprintf(path, sizeof path, "%s/names.txt", dir);
    FILE *f = fopen(path, "w");
    for (int j = 0; j < M; j++) {
        for (int e = 0; e < E; e++) T[(size_t)j * E + e] = C[(j % K) * E + e] + (float)(sigma * rng_normal(&g));
        if (f) fprintf(f, "noun%d_of_%d\n", j, j % K);
    }
    if (f) fclose(f);
    snprintf(path, sizeof path, "%s/X.npy", dir);
    npy_write_f32_2d(path, X, (size_t)N, (size_t)E);
    snprintf(path, sizeof path, "%s/T.npy", dir);
    npy_write_f32_2d(path, T, (size_t)M, (size_t)E);
    size_t ns[1] = {(size_t)N};
    snprintf(path, sizeof path, "%s/y.npy", dir);
    npy_write(path, NPY_I64, 1, ns, y);
    free(C);
    free(X);
    free(T);
    free(y);
}

int synth_get_image(void *ctx, size_t i, uint8_t **rgb, int *h, int *w) {
    const SynthImages *im = ctx;
    if ((int)i >= im->n) return laic_error("images: index %zu out of range", i);
    size_t sz = (size_t)im->h * im->w * 3;
    *rgb = malloc(sz);
    memcpy(*rgb, im->pix + i * sz, sz);
    *h = im->h;
    *w = im->w;
    return 0;
}

float *synth_randn(Rng *r, size_t n, double scale) {
    float *x = mallocCheck((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)(rng_normal(r) * scale);
    return x;
}

void synth_normalize_rows(float *x, int rows, int E) {
    for (int i = 0; i < rows; i++) {
        double s = 0.0;
        for (int e = 0; e < E; e++) s += (double)x[(size_t)i * E + e] * x[(size_t)i * E + e];
        s = sqrt(s);
        for (int e = 0; e < E; e++) x[(size_t)i * E + e] = (float)(x[(size_t)i * E + e] / s);
    }
}

int synth_train_fix_init(SynthTrainFix *f, int tinted) {
    enum { N = SYNTH_TRAIN_N, K = SYNTH_TRAIN_K, H = 36, W = 40 };
    memset(f, 0, sizeof *f);
    ClipConfig c;
    if (clip_config_preset(&c, "tiny") || clip_weights_init(&f->w, &c, 7)) return -1;
    const int E = c.embed_dim;
    f->im = (SynthImages){N, H, W, mallocCheck((size_t)N * H * W * 3)};
    Rng g;
    rng_init(&g, 123, 4);
    for (int i = 0; i < N; i++)
        for (int p = 0; p < H * W; p++)
            for (int ch = 0; ch < 3; ch++)
                f->im.pix[((size_t)i * H * W + p) * 3 + ch] =
                    tinted ? (uint8_t)((i % K == ch ? 180 : 40) + rng_below(&g, 60))
                           : (uint8_t)rng_below(&g, 256);
    f->X = mallocCheck((size_t)N * E * sizeof *f->X);
    for (int i = 0; i < N; i++) {
        double n2 = 0;
        for (int e = 0; e < E; e++) {
            float v = (float)rng_normal(&g);
            f->X[(size_t)i * E + e] = v;
            n2 += (double)v * v;
        }
        for (int e = 0; e < E; e++) f->X[(size_t)i * E + e] /= (float)sqrt(n2);
        f->y[i] = i % K;
        f->hq[i] = i % 4 != 0;   // some samples in D_u: the consistency term is on
    }
    return 0;
}

void synth_train_fix_free(SynthTrainFix *f) {
    free(f->im.pix);
    free(f->X);
    clip_weights_free(&f->w);
}

int synth_train_run(TrainResult *res, SynthTrainFix *f, const OpsBackend *ops, int images,
                    int graph, int stop_after, const char *ckpt, const TrainState *resume) {
    ClipModel *img = images ? clip_model_create(&f->w, ops, 4) : NULL;
    if (images && !img) return -1;
    TrainData d = {.N = SYNTH_TRAIN_N, .K = SYNTH_TRAIN_K, .yhat = f->y, .hq = f->hq,
                   .get_image = images ? synth_get_image : NULL, .img_ctx = &f->im,
                   .X = images ? NULL : f->X};
    TrainerOpts o;
    trainer_opts_default(&o);
    o.epochs = 2;
    o.batch = 5;
    o.sgd.lr = 0.05;
    o.sgd.max_epoch = 2;
    o.sgd.warmup_epoch = 0;
    o.text_batch = 2;
    o.image_batch = 4;
    o.seed = 31;
    o.graph = graph;
    o.stop_after = stop_after;
    o.ckpt_path = ckpt;
    o.resume = resume;
    int rc = trainer_run(res, &f->w, img, ops, &d, &o);
    clip_model_free(img);
    return rc;
}

void synth_cifar(const char *dir, int n_train, int n_test) {
    Rng g;
    rng_init(&g, 7, 0);
    const char *names[2] = {"data_batch_1.bin", "test_batch.bin"};
    int counts[2] = {n_train, n_test};
    for (int s = 0; s < 2; s++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, names[s]);
        FILE *f = fopen(p, "wb");
        if (!f) return;
        for (int i = 0; i < counts[s]; i++) {
            unsigned char rec[3073];
            rec[0] = (unsigned char)(i % 3);
            for (int c = 0; c < 3; c++)
                for (int k = 0; k < 1024; k++)
                    rec[1 + c * 1024 + k] = (unsigned char)((c == rec[0] ? 160 : 40) + rng_below(&g, 80));
            fwrite(rec, 1, sizeof rec, f);
        }
        fclose(f);
    }
}
