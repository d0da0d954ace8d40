/*
 * bench_heads.c — clustering heads: the head ops one by one, and SIC / TAC (trained) end to end
 * on cached features, on the CPU backend or CUDA.
 *
 *   build:  make bench                          (→ build/bench/bench_heads)
 *   run:    ./build/bench/bench_heads ops
 *           ./build/bench/bench_heads gen DIR [N=50000]       (planted features, see below)
 *           ./build/bench/bench_heads sic DIR [epochs=100] [cpu|cuda]
 *           ./build/bench/bench_heads tac DIR [epochs=20]  [cpu|cuda]
 *           ./build/bench/bench_heads tacstep [steps=200]         (TAC's step alone, CPU)
 *
 * DIR holds the features `gen` writes (bench/bench_heads_torch.py, the PyTorch side of the
 * comparison, reads the same files): X_train (N,512) and X_test (N/5,512) raw image features of
 * K = 10 planted classes (unit class directions ·10 plus N(0, 0.35²) per dimension: norms near
 * CLIP's raw ones, classes overlapping enough that ACC is not 1), y_train, y_test, bank
 * (82,113 × 512) raw noun features (500 per class near its direction, the rest random; SIC's
 * semantic space is filtered from it), nouns (1,000 × 512) candidate nouns (50 per class near
 * its direction, 500 random; TAC's text counterparts are retrieved from them).
 *
 * sic: setup (21 L2 neighbours, k-means n_init 20, semantic space), then `epochs` epochs of
 *      SIC with the test ACC after every epoch (as sic.py:148-167; patience off so every epoch
 *      runs). tac: setup (text counterparts, 50 neighbours in X and in t), then `epochs` epochs,
 *      batch 512, τ 0.5, with the test prediction after every epoch (train_head.py:154).
 * Printed: one line per phase with seconds, then the final test ACC. ops: op | backend | shape |
 * ms (median of 5 after a warm-up on the CPU, cudaEvents over 20 on CUDA). BENCH_NOGRAPH=1 turns
 * the trainers' CUDA graphs off; BENCH_VERBOSE=1 prints every epoch.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cluster/cluster.h"
#include "cluster/metrics.h"
#include "io/err.h"
#include "io/npy.h"
#include "io/progress.h"
#include "ops.h"
#include "rng.h"
#include "train/heads.h"
#include "train/sic.h"
#include "train/optim.h"
#include "train/tac_train.h"
#ifdef LAIC_CUDA
#include "../kernels/ops_cuda.h"
#endif

static float *randn(size_t n, uint64_t seed, double s) {
    float *x = mallocCheck((n ? n : 1) * sizeof *x);
    Rng r;
    rng_init(&r, seed, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)(s * rng_normal(&r));
    return x;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double time_cpu_ms(void (*fn)(void *), void *ctx) {
    double t[5];
    fn(ctx);
    for (int i = 0; i < 5; i++) {
        double t0 = now_seconds();
        fn(ctx);
        t[i] = 1e3 * (now_seconds() - t0);
    }
    qsort(t, 5, sizeof t[0], cmp_d);
    return t[2];
}
#ifdef LAIC_CUDA
static double time_gpu_ms(void (*fn)(void *), void *ctx) { return ops_cuda_time_ms(fn, ctx, 20); }
#endif

// --- ops ------------------------------------------------------------------------------------------
typedef struct {
    const OpsBackend *o;
    int B, C, K;
    float *x, *w, *b, *out, *mean, *rstd, *rm, *rv, *dx, *dw, *db, *dout, *l1, *l2, *d1, *d2, *P[4], *D[4];
    int32_t *y;
    double *terms;
} OpCtx;

static void run_bn_fwd(void *c_) {
    OpCtx *c = c_;
    c->o->batchnorm_forward(c->out, c->mean, c->rstd, c->rm, c->rv, c->x, c->w, c->b, c->B, c->C, 1, 0.1, 1e-5);
}
static void run_bn_bwd(void *c_) {
    OpCtx *c = c_;
    c->o->batchnorm_backward(c->dx, c->dw, c->db, c->dout, c->x, c->w, c->mean, c->rstd, c->B, c->C);
}
static void run_sic(void *c_) {
    OpCtx *c = c_;
    c->o->sic_loss_forward_backward(c->terms, c->d1, c->d2, c->l1, c->l2, c->y, c->B, c->K, 5.0, 0.1);
}
static void run_tac(void *c_) {
    OpCtx *c = c_;
    c->o->tac_loss_forward_backward(c->terms, c->D[0], c->D[1], c->D[2], c->D[3], c->P[0], c->P[1],
                                    c->P[2], c->P[3], c->B, c->K, 0.5, 5.0);
}

static float *up(const OpsBackend *o, const void *h, size_t bytes) {
    float *d = o->alloc(bytes ? bytes : 1);
    if (!d) {
        fprintf(stderr, "bench_heads: %s\n", laic_last_error());
        exit(1);
    }
    o->to_device(d, h, bytes);
    return d;
}

static void bench_ops(const OpsBackend *o, double (*timer)(void (*)(void *), void *)) {
    const int bn[][2] = {{512, 512}, {8192, 512}};
    for (int s = 0; s < 2; s++) {
        OpCtx c = {.o = o, .B = bn[s][0], .C = bn[s][1]};
        const size_t n = (size_t)c.B * c.C;
        float *h = randn(n, 1, 1.0), *hc = randn((size_t)c.C, 2, 1.0);
        c.x = up(o, h, n * 4), c.dout = up(o, h, n * 4), c.out = up(o, h, n * 4), c.dx = up(o, h, n * 4);
        c.w = up(o, hc, c.C * 4), c.b = up(o, hc, c.C * 4), c.mean = up(o, hc, c.C * 4), c.rstd = up(o, hc, c.C * 4);
        c.rm = up(o, hc, c.C * 4), c.rv = up(o, hc, c.C * 4), c.dw = up(o, hc, c.C * 4), c.db = up(o, hc, c.C * 4);
        run_bn_fwd(&c);   // mean, rstd for the backward
        double ms = timer(run_bn_fwd, &c);
        printf("batchnorm_forward (train) | %-4s | %d x %d | %8.3f ms | %6.1f GB/s\n", o->name, c.B, c.C, ms,
               8.0 * n / (ms * 1e6));
        ms = timer(run_bn_bwd, &c);
        printf("batchnorm_backward        | %-4s | %d x %d | %8.3f ms | %6.1f GB/s\n", o->name, c.B, c.C, ms,
               16.0 * n / (ms * 1e6));
        float *all[] = {c.x, c.dout, c.out, c.dx, c.w, c.b, c.mean, c.rstd, c.rm, c.rv, c.dw, c.db};
        for (int i = 0; i < 12; i++) o->free(all[i]);
        free(h), free(hc);
    }
    const int ls[][2] = {{128, 10}, {512, 10}, {8192, 101}, {8192, 1000}};
    for (int s = 0; s < 4; s++) {
        OpCtx c = {.o = o, .B = ls[s][0], .K = ls[s][1]};
        const size_t n = (size_t)c.B * c.K;
        float *h = randn(n, 3, 2.0), *p = mallocCheck(n * 4);
        ops_cpu.softmax_forward(p, h, c.B, c.K);
        int32_t *y = mallocCheck((size_t)c.B * 4);
        for (int i = 0; i < c.B; i++) y[i] = i % c.K;
        c.l1 = up(o, h, n * 4), c.l2 = up(o, h, n * 4), c.d1 = up(o, h, n * 4), c.d2 = up(o, h, n * 4);
        c.y = (int32_t *)up(o, y, (size_t)c.B * 4);
        c.terms = (double *)up(o, y, 8 * sizeof(double));
        for (int q = 0; q < 4; q++) c.P[q] = up(o, p, n * 4), c.D[q] = up(o, p, n * 4);
        double ms = timer(run_sic, &c);
        printf("sic_loss_forward_backward | %-4s | b %d K %d | %8.3f ms\n", o->name, c.B, c.K, ms);
        ms = timer(run_tac, &c);
        printf("tac_loss_forward_backward | %-4s | b %d K %d | %8.3f ms\n", o->name, c.B, c.K, ms);
        o->free(c.l1), o->free(c.l2), o->free(c.d1), o->free(c.d2), o->free(c.y), o->free(c.terms);
        for (int q = 0; q < 4; q++) o->free(c.P[q]), o->free(c.D[q]);
        free(h), free(p), free(y);
    }
}

// --- end to end -----------------------------------------------------------------------------------
static Npy load(const char *dir, const char *name, int f32) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s.npy", dir, name);
    Npy a;
    if ((f32 ? npy_read_f32(p, &a, -1, NULL) : npy_read_i64(p, &a, -1, NULL))) {
        fprintf(stderr, "bench_heads: %s\n", laic_last_error());
        exit(1);
    }
    return a;
}

static double acc_of(const int64_t *pred, const int64_t *y, size_t n) {
    ClusterMetrics cm;
    return metrics_compute(&cm, pred, y, n) ? -1 : cm.acc;
}

static void log_line(void *ctx, const char *line) {
    (void)ctx;
    fprintf(stderr, "%s\n", line);
}

static int bench_sic(const OpsBackend *o, const char *dir, int epochs) {
    Npy X = load(dir, "X_train", 1), Xe = load(dir, "X_test", 1), ye = load(dir, "y_test", 0),
        bank = load(dir, "bank", 1);
    const size_t N = X.shape[0], Ne = Xe.shape[0], Mb = bank.shape[0];
    const int E = (int)X.shape[1], K = 10;
    printf("sic | %s | N %zu x %d, test %zu, bank %zu, K %d, %d epochs\n", o->name, N, E, Ne, Mb, K, epochs);
    double t0 = now_seconds();
    SicSetupOpts so;
    sic_setup_opts_default(&so);
    SicSetup s;
    if (sic_setup(&s, o, X.data, N, E, K, bank.data, Mb, &so)) {
        fprintf(stderr, "bench_heads: %s\n", laic_last_error());
        return 1;
    }
    printf("sic | setup: kNN (21, L2) %.2f s, k-means (n_init 20) %.2f s, semantic space %.2f s (%zu nouns) | total %.2f s\n",
           s.t_knn, s.t_kmeans, s.t_space, s.M, now_seconds() - t0);
    SicOpts opt;
    sic_opts_default(&opt);
    opt.epochs = epochs;
    opt.select_test_acc = 1;
    opt.patience = epochs + 1;   // every epoch runs, as in the timing of the PyTorch mirror
    opt.graph = !getenv("BENCH_NOGRAPH");
    opt.log = getenv("BENCH_VERBOSE") ? log_line : NULL;
    SicData d = {.X = X.data, .N = N, .E = E, .K = K, .nbr = s.nbr, .nn = s.nn, .S = s.S, .M = s.M,
                 .Xeval = Xe.data, .Ne = Ne, .yeval = ye.data};
    SicResult res;
    double t1 = now_seconds();
    if (sic_train(&res, o, &d, &opt)) {
        fprintf(stderr, "bench_heads: %s\n", laic_last_error());
        return 1;
    }
    const double tt = now_seconds() - t1;
    printf("sic | train %d epochs: %.2f s (centre mapping %.2f s, batches %.2f s, test eval %.2f s; %lld steps, %.1f us/step; "
           "%d graph) | last-epoch test ACC %.4f, best %.4f (epoch %d)\n",
           epochs, tt, res.t_map, res.t_steps, res.t_eval, (long long)res.steps, 1e6 * res.t_steps / (double)res.steps,
           res.graph_captures, res.epoch_acc[epochs - 1], res.best_acc, res.reported_epoch);
    sic_result_free(&res);
    sic_setup_free(&s);
    npy_free(&X), npy_free(&Xe), npy_free(&ye), npy_free(&bank);
    return 0;
}

static int bench_tac(const OpsBackend *o, const char *dir, int epochs) {
    Npy X = load(dir, "X_train", 1), Xe = load(dir, "X_test", 1), ye = load(dir, "y_test", 0),
        nouns = load(dir, "nouns", 1);
    const size_t N = X.shape[0], Ne = Xe.shape[0], M = nouns.shape[0];
    const int E = (int)X.shape[1], K = 10;
    l2normalize_rows_cpu(X.data, X.data, (int)N, E);   // train_head.py:57-64
    l2normalize_rows_cpu(Xe.data, Xe.data, (int)Ne, E);
    l2normalize_rows_cpu(nouns.data, nouns.data, (int)M, E);
    printf("tac | %s | N %zu x %d, test %zu, nouns %zu, K %d, %d epochs, batch 512, tau 0.5\n", o->name, N, E, Ne, M,
           K, epochs);
    double t0 = now_seconds();
    TacSetupOpts so;
    tac_setup_opts_default(&so);
    TacSetup s;
    if (tac_train_setup(&s, o, X.data, N, E, NULL, nouns.data, M, &so)) {
        fprintf(stderr, "bench_heads: %s\n", laic_last_error());
        return 1;
    }
    printf("tac | setup: text counterparts %.2f s, kNN (50, X and t) %.2f s | total %.2f s\n", s.t_retrieve,
           s.t_knn, now_seconds() - t0);
    TacTrainOpts opt;
    tac_train_opts_default(&opt);
    opt.epochs = epochs;
    opt.eval_every_epoch = 1;
    opt.graph = !getenv("BENCH_NOGRAPH");
    opt.log = getenv("BENCH_VERBOSE") ? log_line : NULL;
    TacTrainData d = {.X = X.data, .T = s.T, .N = N, .E = E, .K = K, .nbr_x = s.nbr_x, .nbr_t = s.nbr_t,
                      .kn = s.kn, .Xeval = Xe.data, .Ne = Ne, .yeval = ye.data};
    TacTrainResult res;
    double t1 = now_seconds();
    if (tac_train(&res, o, &d, &opt)) {
        fprintf(stderr, "bench_heads: %s\n", laic_last_error());
        return 1;
    }
    const double tt = now_seconds() - t1;
    printf("tac | train %d epochs: %.2f s (batches %.2f s, test eval %.2f s; %lld steps, %.2f ms/step; %d graph) | "
           "test ACC %.4f\n",
           epochs, tt, res.t_steps, res.t_eval, (long long)res.steps, 1e3 * res.t_steps / (double)res.steps,
           res.graph_captures, acc_of(res.pred, ye.data, Ne));
    tac_train_result_free(&res);
    tac_setup_free(&s);
    npy_free(&X), npy_free(&Xe), npy_free(&ye), npy_free(&nouns);
    return 0;
}

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// --- TAC steps alone -----------------------------------------------------------------------------
// tacstep [steps=200]: the training step of TAC (trained) as tac_train runs it on the CPU (two
// gathers per modality, tac_step), on random unit rows (N 50,000 x 512, K 10, batch 512) and
// random anchors/neighbours, without the kNN setup: ms per step (median of 5 blocks of steps/5),
// for profiling the step (perf record) without the 45 s setup.
static int bench_tacstep(const OpsBackend *o, int steps) {
    const size_t N = 50000;
    const int E = 512, K = 10, b = 512;
    float *X = randn(N * E, 11, 1.0), *T = randn(N * E, 12, 1.0);
    l2normalize_rows_cpu(X, X, (int)N, E);
    l2normalize_rows_cpu(T, T, (int)N, E);
    Head hT, hI;
    HeadActs aT, aI;
    if (head_create(&hT, o, HEAD_MLP, E, E, K, 2 * b) || head_create(&hI, o, HEAD_MLP, E, E, K, 2 * b) ||
        head_acts_create(&hT, &aT, 2 * b) || head_acts_create(&hI, &aI, 2 * b)) {
        fprintf(stderr, "bench_heads: %s\n", laic_last_error());
        return 1;
    }
    head_init_params(&hT, HEAD_INIT_TAC, 1, 0x7AC1);
    head_init_params(&hI, HEAD_INIT_TAC, 1, 0x7AC2);
    TacTrainOpts opt;
    tac_train_opts_default(&opt);
    float *t = mallocCheck(4 * (size_t)b * E * sizeof *t), *x = t + 2 * (size_t)b * E;
    float *dl = mallocCheck(4 * (size_t)b * K * sizeof *dl);
    int64_t *idx = mallocCheck(3 * (size_t)b * sizeof *idx);
    double terms[5], sched[3];
    Rng g;
    rng_init(&g, 7, 0);
    const int blk = steps / 5 > 0 ? steps / 5 : 1;
    double ms[5], cpu[5];
    for (int r = -1; r < 5; r++) {   // r = -1: warm-up
        double t0 = now_seconds(), c0 = cpu_seconds();
        for (int s = 0; s < blk; s++) {
            for (int i = 0; i < 3 * b; i++) idx[i] = (int64_t)rng_below(&g, N);
            adam_schedule(sched, opt.lr, opt.beta1, opt.beta2, hI.step + 1);
            o->index_select_forward(t, T, idx, b, E);
            o->index_select_forward(t + (size_t)b * E, T, idx + b, b, E);
            o->index_select_forward(x, X, idx, b, E);
            o->index_select_forward(x + (size_t)b * E, X, idx + 2 * b, b, E);
            tac_step(&hT, &hI, &aT, &aI, t, x, b, terms, dl, dl + 2 * (size_t)b * K, sched, &opt);
            hT.step++, hI.step++;
        }
        if (r >= 0) ms[r] = 1e3 * (now_seconds() - t0) / blk, cpu[r] = 1e3 * (cpu_seconds() - c0) / blk;
    }
    qsort(ms, 5, sizeof ms[0], cmp_d);
    qsort(cpu, 5, sizeof cpu[0], cmp_d);
    // the bits of every parameter after the run (FNV-1a), to compare builds
    float *par = mallocCheck(2 * hI.n_params * sizeof *par);
    head_get_params(&hT, par);
    head_get_params(&hI, par + hI.n_params);
    uint64_t hsh = 1469598103934665603ull;
    const unsigned char *pb = (const unsigned char *)par;
    for (size_t i = 0; i < 2 * hI.n_params * sizeof *par; i++) hsh = (hsh ^ pb[i]) * 1099511628211ull;
    free(par);
    printf("tacstep | %s | N %zu x %d, K %d, batch %d | %d steps: %.2f ms/step (min %.2f, max %.2f), "
           "process CPU %.2f ms/step | L %.9g, parameters %016llx\n",
           o->name, N, E, K, b, 5 * blk, ms[2], ms[0], ms[4], cpu[2], terms[0], (unsigned long long)hsh);
    free(t), free(dl), free(idx), free(X), free(T);
    head_acts_free(&hT, &aT), head_acts_free(&hI, &aI), head_free(&hT), head_free(&hI);
    return 0;
}

// --- planted data -------------------------------------------------------------------------------
static void save(const char *dir, const char *name, const float *x, size_t r, size_t c) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s.npy", dir, name);
    if (npy_write_f32_2d(p, x, r, c)) {
        fprintf(stderr, "bench_heads: %s\n", laic_last_error());
        exit(1);
    }
}

static int gen(const char *dir, size_t N) {
    mkdir(dir, 0755);
    const int E = 512, K = 10;
    const size_t Ne = N / 5, Mb = 82113, M = 1000;
    Rng g;
    rng_init(&g, 2024, 0);
    float *C = randn((size_t)K * E, 1, 1.0);
    for (int k = 0; k < K; k++) {   // unit directions
        double s = 0;
        for (int e = 0; e < E; e++) s += (double)C[k * E + e] * C[k * E + e];
        for (int e = 0; e < E; e++) C[k * E + e] = (float)(C[k * E + e] / sqrt(s));
    }
    const size_t ns[2] = {N, Ne};
    const char *xn[2] = {"X_train", "X_test"}, *yn[2] = {"y_train", "y_test"};
    for (int s = 0; s < 2; s++) {
        float *X = mallocCheck(ns[s] * E * sizeof *X);
        int64_t *y = mallocCheck(ns[s] * sizeof *y);
        for (size_t i = 0; i < ns[s]; i++) {
            y[i] = (int64_t)rng_below(&g, K);
            for (int e = 0; e < E; e++) X[i * E + e] = (float)(10.0 * C[y[i] * E + e] + 0.35 * rng_normal(&g));
        }
        save(dir, xn[s], X, ns[s], (size_t)E);
        char p[1024];
        snprintf(p, sizeof p, "%s/%s.npy", dir, yn[s]);
        size_t sh[1] = {ns[s]};
        npy_write(p, NPY_I64, 1, sh, y);
        free(X);
        free(y);
    }
    float *B = mallocCheck(Mb * E * sizeof *B);
    for (size_t j = 0; j < Mb; j++)
        for (int e = 0; e < E; e++)
            B[j * E + e] = (float)(j < 5000 ? 10.0 * C[(j % K) * E + e] + 0.3 * rng_normal(&g) : 0.45 * rng_normal(&g));
    save(dir, "bank", B, Mb, (size_t)E);
    free(B);
    float *T = mallocCheck(M * E * sizeof *T);
    for (size_t j = 0; j < M; j++)
        for (int e = 0; e < E; e++)
            T[j * E + e] = (float)(j < 500 ? C[(j % K) * E + e] + 0.03 * rng_normal(&g) : 0.045 * rng_normal(&g));
    l2normalize_rows_cpu(T, T, (int)M, E);
    save(dir, "nouns", T, M, (size_t)E);
    free(T);
    free(C);
    printf("gen | %s: X_train %zu x %d, X_test %zu, bank %zu, nouns %zu, K %d\n", dir, N, E, Ne, Mb, M, K);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "ops";
    if (!strcmp(mode, "ops")) {
        bench_ops(&ops_cpu, time_cpu_ms);
#ifdef LAIC_CUDA
        if (ops_cuda_device_count() > 0) bench_ops(&ops_cuda, time_gpu_ms);
        else printf("(no CUDA device: GPU rows skipped)\n");
#endif
        return 0;
    }
    if (!strcmp(mode, "tacstep")) return bench_tacstep(&ops_cpu, argc > 2 ? atoi(argv[2]) : 200);
    if (!strcmp(mode, "gen") && argc >= 3) return gen(argv[2], argc > 3 ? (size_t)strtoull(argv[3], NULL, 10) : 50000);
    if ((strcmp(mode, "sic") && strcmp(mode, "tac")) || argc < 3) {
        fprintf(stderr, "usage: bench_heads ops | gen DIR [N] | tacstep [steps] | sic DIR [epochs] [cpu|cuda] | tac DIR [epochs] [cpu|cuda]\n");
        return 2;
    }
    const int sic = !strcmp(mode, "sic");
    const int epochs = argc > 3 ? atoi(argv[3]) : sic ? 100 : 20;
    const OpsBackend *o = ops_get(argc > 4 ? argv[4] : "cpu");
    if (!o || epochs < 1) {
        fprintf(stderr, "bench_heads: %s\n", o ? "epochs must be >= 1" : laic_last_error());
        return 2;
    }
    cluster_set_backend(o);
    return sic ? bench_sic(o, argv[2], epochs) : bench_tac(o, argv[2], epochs);
}
