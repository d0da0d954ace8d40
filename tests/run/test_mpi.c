/*
 * test_mpi.c — laic over several processes (issue 17): `mpirun -np 2` and `-np 3
 * --oversubscribe` runs equal the one-process run, and a job whose rank fails, is killed or was
 * given another config ends at once with a clear message.
 *
 *  - the drivers (ridge with M > 4096 texts: several Gram blocks; k-means++ and Lloyd on 20,000
 *    rows; kNN) under mpirun give bitwise the one-process arrays: this test binary runs itself
 *    under mpirun (mpi_drivers_inner, a no-op outside mpirun) and compares with its own results;
 *  - `laic run` no-train on planted features (6,000 rows, overlapping clusters), -np 2 and -np 3:
 *    report.json equal to the one-process report except timings, run_dir and "parallel";
 *    assignments.npy bitwise;
 *  - `laic run` with prompt learning on the tiny model over CIFAR-format images (views made and
 *    encoded by each rank, features gathered), -np 2: report equal (the train section without
 *    its timings), centres.npy bitwise;
 *  - `laic sweep`, -np 3: sweep.csv equal to the one-process sweep's except run_dir and time_s;
 *  - failures: ranks given different configs are refused at start; a rank that hits a corrupt
 *    image ends the job with its message; a rank killed with SIGKILL ends the job within seconds.
 *  - without mpirun (every build): the data-parallel code paths forced with one rank
 *    (comm_set_forced: shards, gathers, the trainer's per-rank views and text chunks) give the
 *    plain paths' bits.
 * Every process runs with one OpenMP/OpenBLAS thread, so one-process and per-rank GEMM calls
 * are the same calls (results are promised equal for the same threads per process).
 * Skipped when laic was built without MPI, when mpirun is missing, and under AddressSanitizer
 * (Open MPI's own allocations). Every mpirun is wrapped in `timeout` so a hang fails the test.
 */
#include <cJSON.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "comm.h"
#include "io/err.h"
#include "io/npy.h"
#include "rng.h"
#include "train/trainer.h"
#include "../synth.h"
#include "../test.h"

#define MPIRUN "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 timeout 300 mpirun --oversubscribe --allow-run-as-root"

static const char *mpi_unusable(void) {
#ifndef LAIC_MPI
    return "laic was built without MPI (apt-get install libopenmpi-dev openmpi-bin; make)";
#else
    if (getenv("LAIC_ASAN")) return "not under AddressSanitizer (Open MPI's allocations)";
    if (system("command -v mpirun >/dev/null 2>&1") != 0) return "mpirun not found (openmpi-bin)";
    return NULL;
#endif
}

static double wall(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Runs cmd through /bin/sh with stderr (and stdout) into err; returns the exit status. */
static int sh(const char *cmd, char *err, size_t errn) {
    const char *ef = test_path("mpi-stderr.txt");
    size_t n = strlen(cmd) + strlen(ef) + 32;
    char *c = malloc(n);
    snprintf(c, n, "%s >'%s' 2>&1", cmd, ef);
    int st = system(c);
    free(c);
    err[0] = 0;
    FILE *f = fopen(ef, "rb");
    if (f) {
        size_t r = fread(err, 1, errn - 1, f);
        err[r] = 0;
        fclose(f);
    }
    if (st == -1) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static const char *laic_bin(void) {
    const char *b = getenv("LAIC_BIN");
    return b ? b : "build/laic";
}

/* `laic <args>` with one process (np 1) or under mpirun -np np. */
static int laic_np(int np, const char *args, char *err, size_t errn) {
    size_t n = strlen(args) + 512;
    char *cmd = malloc(n);
    if (np == 1)
        snprintf(cmd, n, "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 %s %s", laic_bin(), args);
    else
        snprintf(cmd, n, MPIRUN " -np %d %s %s", np, laic_bin(), args);
    int rc = sh(cmd, err, errn);
    free(cmd);
    return rc;
}

/* report.json of a run without what differs by construction (timings, run_dir, "parallel",
 * the train section's seconds and throughput), as compact text; NULL when unreadable. */
static char *report_core(const char *dir) {
    char p[700];
    snprintf(p, sizeof p, "%s/report.json", dir);
    char *txt = test_read_file(p, NULL);
    if (!txt) return NULL;
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    if (!j) return NULL;
    cJSON_DeleteItemFromObject(j, "timings_s");
    cJSON_DeleteItemFromObject(j, "run_dir");
    cJSON_DeleteItemFromObject(j, "parallel");
    cJSON *tr = cJSON_GetObjectItem(j, "train");
    if (tr) {
        cJSON_DeleteItemFromObject(tr, "seconds");
        cJSON_DeleteItemFromObject(tr, "images_per_s");
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

static int same_file(const char *a, const char *b) {
    size_t na, nb;
    char *x = test_read_file(a, &na), *y = test_read_file(b, &nb);
    int same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

// --- the drivers under mpirun ----------------------------------------------------------------

// The arrays the inner and the outer test compute, in this order, into one buffer.
#define DRV_RN 20000   // ridge rows (3 blocks of the N-sized product)
#define DRV_RM 9000    // texts: 3 Gram blocks
#define DRV_RD 16
#define DRV_KN 20000   // k-means rows: 5 k-means++ blocks, 40 Lloyd blocks
#define DRV_KD 16
#define DRV_KK 20
#define DRV_NN 5000    // kNN rows
#define DRV_NK 7

static size_t drivers_bytes(void) {
    return sizeof(float) * DRV_RN * DRV_RD +                              // Z
           sizeof(float) * 600 * DRV_RM +                                 // C (dual, 600 rows)
           2 * (sizeof(int64_t) * DRV_KN + sizeof(float) * DRV_KK * DRV_KD + sizeof(double)) +
           sizeof(int64_t) * DRV_NN * DRV_NK + sizeof(float) * DRV_NN * DRV_NK;
}

/* Computes every driver result into out (drivers_bytes()); 0 on success. */
static int drivers_compute(unsigned char *out) {
    Rng g;
    rng_init(&g, 17, 0);
    float *X = malloc(sizeof(float) * DRV_RN * DRV_RD), *T = malloc(sizeof(float) * DRV_RM * DRV_RD);
    for (size_t i = 0; i < (size_t)DRV_RN * DRV_RD; i++) X[i] = (float)rng_normal(&g);
    for (size_t i = 0; i < (size_t)DRV_RM * DRV_RD; i++) T[i] = (float)rng_normal(&g);
    unsigned char *o = out;
    int rc = ridge_reduce((float *)o, X, T, 3.0, DRV_RN, DRV_RM, DRV_RD);
    o += sizeof(float) * DRV_RN * DRV_RD;
    if (!rc) rc = ridge_solve((float *)o, X, T, 3.0, 600, DRV_RM, DRV_RD, RIDGE_DUAL);
    o += sizeof(float) * 600 * DRV_RM;
    // k-means on blobs with overlap (labels depend on every rounding), plain and spherical
    float *B = malloc(sizeof(float) * DRV_KN * DRV_KD);
    for (int i = 0; i < DRV_KN; i++)
        for (int j = 0; j < DRV_KD; j++)
            B[(size_t)i * DRV_KD + j] = (float)rng_normal(&g) + (j == i % DRV_KK % DRV_KD ? 2.0f : 0.0f);
    for (int sph = 0; sph < 2 && !rc; sph++) {
        KMeansOpts ko = {.K = DRV_KK, .iters = 30, .restarts = 2, .seed = 5, .spherical = sph};
        int64_t *lab = (int64_t *)o;
        o += sizeof(int64_t) * DRV_KN;
        float *cen = (float *)o;
        o += sizeof(float) * DRV_KK * DRV_KD;
        double *obj = (double *)o;
        o += sizeof(double);
        double ob;
        rc = kmeans_fit(lab, cen, &ob, B, DRV_KN, DRV_KD, &ko);
        memcpy(obj, &ob, sizeof ob);
    }
    if (!rc) rc = knn_topk((int64_t *)o, (float *)(o + sizeof(int64_t) * DRV_NN * DRV_NK), B,
                           DRV_NN, DRV_KD, DRV_NK);
    free(X);
    free(T);
    free(B);
    return rc;
}

/* Under mpirun (LAIC_MPI_INNER_OUT set) this joins the job, computes the driver results on all
 * ranks and rank 0 writes them; outside mpirun it does nothing. */
TEST(mpi_drivers_inner) {
    const char *out = getenv("LAIC_MPI_INNER_OUT");
    if (!out) return;
    REQUIRE(comm_init(NULL, NULL) == 0, "%s", laic_last_error());
    REQUIRE(comm_world_size() > 1, "not started by mpirun");
    unsigned char *buf = calloc(1, drivers_bytes());
    REQUIRE(drivers_compute(buf) == 0, "%s", laic_last_error());
    if (comm_world_rank() == 0) {
        char tmp[600];
        snprintf(tmp, sizeof tmp, "%s.tmp", out);
        test_write_file(tmp, buf, drivers_bytes());
        CHECK(rename(tmp, out) == 0, "rename %s", out);
    }
    free(buf);
    comm_finalize();
}

TEST(mpi_drivers_equal_one_process) {
    const char *why = mpi_unusable();
    if (why) SKIP("%s", why);
    unsigned char *ref = calloc(1, drivers_bytes());
    cluster_set_threads(1);   // the ranks run one thread each: the same GEMM calls
    int rc = drivers_compute(ref);
    cluster_set_threads(2);
    REQUIRE(rc == 0, "%s", laic_last_error());
    char self[600] = "";
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    REQUIRE(n > 0, "readlink /proc/self/exe");
    self[n] = 0;
    for (int np = 2; np <= 3; np++) {
        char out[600], cmd[2048], err[16384];
        snprintf(out, sizeof out, "%s/drivers-np%d.bin", test_tmpdir(), np);
        snprintf(cmd, sizeof cmd, "LAIC_MPI_INNER_OUT='%s' " MPIRUN " -np %d '%s' mpi_drivers_inner",
                 out, np, self);
        double t0 = wall();
        rc = sh(cmd, err, sizeof err);
        REQUIRE(rc == 0, "mpirun -np %d of the drivers failed (%d): %s", np, rc, err);
        size_t nb = 0;
        unsigned char *got = test_read_file(out, &nb);
        REQUIRE(got && nb == drivers_bytes(), "np %d: results file (%zu bytes)", np, nb);
        size_t first = nb;
        for (size_t i = 0; i < nb && first == nb; i++)
            if (got[i] != ref[i]) first = i;
        printf("    np %d: %zu bytes compared in %.1fs, first difference at %zd\n", np, nb,
               wall() - t0, first == nb ? (ssize_t)-1 : (ssize_t)first);
        CHECK(first == nb, "np %d: ridge / k-means / kNN differ from one process (byte %zu)", np,
              first);
        free(got);
    }
    free(ref);
}

// --- the data-parallel code paths with one rank (no mpirun needed) ----------------------------

/* comm_set_forced(1) makes the drivers and the trainer take their data-parallel paths (shards,
 * gathers, the trainer's per-rank views and chunked text tower) with one rank: they must give
 * the plain paths' bits. Runs in every build (no MPI needed). */
TEST(mpi_paths_with_one_rank_equal_plain_paths) {
    unsigned char *a = calloc(1, drivers_bytes()), *b = calloc(1, drivers_bytes());
    REQUIRE(drivers_compute(a) == 0, "%s", laic_last_error());
    comm_set_forced(1);
    int rc = drivers_compute(b);
    comm_set_forced(0);
    REQUIRE(rc == 0, "%s", laic_last_error());
    CHECK(!memcmp(a, b, drivers_bytes()), "ridge / k-means / kNN: forced paths equal plain ones");
    free(a);
    free(b);
    SynthTrainFix f;
    REQUIRE(synth_train_fix_init(&f, 1) == 0, "%s", laic_last_error());
    for (int images = 0; images < 2; images++) {
        TrainResult r0, r1;
        REQUIRE(synth_train_run(&r0, &f, &ops_cpu, images, 0, 0, NULL, NULL) == 0, "%s", laic_last_error());
        comm_set_forced(1);
        rc = synth_train_run(&r1, &f, &ops_cpu, images, 0, 0, NULL, NULL);
        comm_set_forced(0);
        REQUIRE(rc == 0, "%s", laic_last_error());
        size_t nv = (size_t)r0.st.K * r0.st.M * r0.st.D;
        CHECK(!memcmp(r0.st.vec, r1.st.vec, nv * sizeof(float)) &&
                  !memcmp(r0.W, r1.W, (size_t)r0.K * r0.E * sizeof(float)) &&
                  r0.epoch_loss[1] == r1.epoch_loss[1],
              "trainer (%s mode): data-parallel path equals the plain one bitwise",
              images ? "image" : "feature");
        trainer_result_free(&r0);
        trainer_result_free(&r1);
    }
    synth_train_fix_free(&f);
}

// --- laic run and laic sweep ------------------------------------------------------------------

static const char *planted_args(char *buf, size_t n, const char *dir, const char *run, const char *extra) {
    snprintf(buf, n,
             "run /dev/null data.image_features=%s/X.npy data.labels=%s/y.npy nouns.features=%s/T.npy "
             "nouns.names=%s/names.txt run.dir=%s/%s run.cache_dir=%s/cache-%s kmeans.restarts=2 "
             "eval.methods=clip-kmeans,tac,ours-notrain %s",
             dir, dir, dir, dir, dir, run, dir, run, extra);
    return buf;
}

TEST(mpi_run_no_train_equals_one_process) {
    const char *why = mpi_unusable();
    if (why) SKIP("%s", why);
    const char *dir = test_path("mpi-planted");
    mkdir(dir, 0755);
    // 6,000 rows of 6 overlapping clusters: imperfect metrics, so a changed bit would show;
    // two 4096-row k-means++ blocks
    synth_planted(dir, 6, 32, 6000, 300, 0.55, 7, 1);
    char args[4096], err[16384], a[700], b[700];
    int rc = laic_np(1, planted_args(args, sizeof args, dir, "np1", ""), err, sizeof err);
    REQUIRE(rc == 0, "one process failed (%d): %s", rc, err);
    snprintf(a, sizeof a, "%s/np1", dir);
    char *ref = report_core(a);
    REQUIRE(ref, "report of the one-process run");
    for (int np = 2; np <= 3; np++) {
        char name[16];
        snprintf(name, sizeof name, "np%d", np);
        double t0 = wall();
        rc = laic_np(np, planted_args(args, sizeof args, dir, name, ""), err, sizeof err);
        REQUIRE(rc == 0, "mpirun -np %d failed (%d): %s", np, rc, err);
        snprintf(b, sizeof b, "%s/%s", dir, name);
        char *got = report_core(b);
        printf("    np %d: %.1fs\n", np, wall() - t0);
        CHECK(got && !strcmp(got, ref), "np %d: report differs:\n  one: %.1500s\n  np:  %.1500s", np,
              ref, got ? got : "(none)");
        char pa[800], pb[800];
        snprintf(pa, sizeof pa, "%s/assignments.npy", a);
        snprintf(pb, sizeof pb, "%s/assignments.npy", b);
        CHECK(same_file(pa, pb), "np %d: assignments.npy bitwise", np);
        CHECK(got && strstr(err, "data parallel") != NULL, "np %d: the log says the run was parallel", np);
        free(got);
    }
    free(ref);
}

/* CIFAR-10-format images (as test_run.c's): class = dominant colour. */
static void write_cifar(const char *dir, int n_train, int n_test) {
    Rng g;
    rng_init(&g, 7, 0);
    const char *names[2] = {"data_batch_1.bin", "test_batch.bin"};
    int counts[2] = {n_train, n_test};
    for (int s = 0; s < 2; s++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, names[s]);
        FILE *f = fopen(p, "wb");
        for (int i = 0; f && i < counts[s]; i++) {
            unsigned char rec[3073];
            rec[0] = (unsigned char)(i % 3);
            for (int c = 0; c < 3; c++)
                for (int k = 0; k < 1024; k++)
                    rec[1 + c * 1024 + k] = (unsigned char)((c == rec[0] ? 160 : 40) + rng_below(&g, 80));
            fwrite(rec, 1, sizeof rec, f);
        }
        if (f) fclose(f);
    }
}

static const char *tiny_args(char *buf, size_t n, const char *dir, const char *run, const char *extra) {
    snprintf(buf, n,
             "run /dev/null data.kind=cifar10 data.path=%s model.arch=tiny model.batch=16 "
             "model.device=cpu nouns.subset=300 kmeans.k=3 kmeans.restarts=2 centers.restarts=2 "
             "train.enabled=true train.epochs=3 train.batch=12 "
             "eval.methods=clip-kmeans,ours-notrain,ours run.dir=%s/%s run.cache_dir=%s/cache-%s %s",
             dir, dir, run, dir, run, extra);
    return buf;
}

TEST(mpi_run_training_equals_one_process) {
    const char *why = mpi_unusable();
    if (why) SKIP("%s", why);
    if (!file_exists("/usr/share/wordnet/data.noun")) SKIP("wordnet-base not installed (make setup)");
    const char *dir = test_path("mpi-tiny");
    mkdir(dir, 0755);
    write_cifar(dir, 60, 30);
    char args[4096], err[32768], a[700], b[700];
    int rc = laic_np(1, tiny_args(args, sizeof args, dir, "np1", ""), err, sizeof err);
    REQUIRE(rc == 0, "one process failed (%d): %s", rc, err);
    rc = laic_np(2, tiny_args(args, sizeof args, dir, "np2", ""), err, sizeof err);
    REQUIRE(rc == 0, "mpirun -np 2 failed (%d): %s", rc, err);
    snprintf(a, sizeof a, "%s/np1", dir);
    snprintf(b, sizeof b, "%s/np2", dir);
    char *ref = report_core(a), *got = report_core(b);
    REQUIRE(ref && got, "both reports");
    CHECK(strstr(ref, "\"train\"") && !strcmp(got, ref), "report differs:\n  one: %.2000s\n  np2: %.2000s",
          ref, got);
    char pa[800], pb[800];
    snprintf(pa, sizeof pa, "%s/centres.npy", a);
    snprintf(pb, sizeof pb, "%s/centres.npy", b);
    CHECK(same_file(pa, pb), "learned centres.npy bitwise");
    free(ref);
    free(got);
}

/* sweep.csv without the columns that differ by construction (run_dir, time_s). */
static char *sweep_core(const char *dir) {
    char p[700];
    snprintf(p, sizeof p, "%s/sweep.csv", dir);
    char *txt = test_read_file(p, NULL);
    if (!txt) return NULL;
    // column indices of run_dir and time_s from the header
    int drop[2] = {-1, -1}, col = 0;
    for (const char *q = txt; *q && *q != '\n'; col++) {
        size_t n = strcspn(q, ",\n");
        if (n == 7 && !strncmp(q, "run_dir", 7)) drop[0] = col;
        if (n == 6 && !strncmp(q, "time_s", 6)) drop[1] = col;
        q += n;
        if (*q == ',') q++;
    }
    char *out = malloc(strlen(txt) + 1), *w = out;
    col = 0;
    for (const char *q = txt; *q;) {
        size_t n = strcspn(q, ",\n");
        if (col != drop[0] && col != drop[1]) {
            memcpy(w, q, n);
            w += n;
            *w++ = '|';
        }
        q += n;
        if (*q == ',') {
            q++;
            col++;
        } else if (*q == '\n') {
            q++;
            col = 0;
            *w++ = '\n';
        }
    }
    *w = 0;
    free(txt);
    return out;
}

TEST(mpi_sweep_equals_one_process) {
    const char *why = mpi_unusable();
    if (why) SKIP("%s", why);
    const char *dir = test_path("mpi-sweep");
    mkdir(dir, 0755);
    synth_planted(dir, 5, 24, 3000, 150, 0.5, 11, 1);
    char args[4096], err[32768], a[700], b[700];
    const char *fmt = "sweep /dev/null sweep.ridge.lambda=0.5,5 sweep.knn.k=5,10 "
                      "data.image_features=%s/X.npy data.labels=%s/y.npy nouns.features=%s/T.npy "
                      "nouns.names=%s/names.txt eval.methods=clip-kmeans,ours-notrain kmeans.restarts=2 "
                      "run.cache_dir=%s/cache-%s --dir %s/%s";
    snprintf(args, sizeof args, fmt, dir, dir, dir, dir, dir, "np1", dir, "np1");
    int rc = laic_np(1, args, err, sizeof err);
    REQUIRE(rc == 0, "one-process sweep failed (%d): %s", rc, err);
    snprintf(args, sizeof args, fmt, dir, dir, dir, dir, dir, "np3", dir, "np3");
    rc = laic_np(3, args, err, sizeof err);
    REQUIRE(rc == 0, "mpirun -np 3 sweep failed (%d): %s", rc, err);
    CHECK(strstr(err, "over the ranks") != NULL, "the points were spread over the ranks: %s", err);
    snprintf(a, sizeof a, "%s/np1", dir);
    snprintf(b, sizeof b, "%s/np3", dir);
    char *x = sweep_core(a), *y = sweep_core(b);
    REQUIRE(x && y, "both sweep.csv");
    CHECK(!strcmp(x, y), "sweep.csv differs:\n  one: %.1500s\n  np3: %.1500s", x, y);
    CHECK(count_lines(y) == 5, "4 points + header: %s", y);
    free(x);
    free(y);
}

// --- failures --------------------------------------------------------------------------------

TEST(mpi_mismatched_configs_refused) {
    const char *why = mpi_unusable();
    if (why) SKIP("%s", why);
    const char *dir = test_path("mpi-mismatch");
    mkdir(dir, 0755);
    synth_planted(dir, 3, 8, 300, 30, 0.2, 3, 1);
    char a1[2048], a2[2048], cmd[5000], err[16384];
    planted_args(a1, sizeof a1, dir, "run", "run.seed=1");
    planted_args(a2, sizeof a2, dir, "run", "run.seed=2");
    // MPMD: rank 0 and rank 1 get different overrides
    snprintf(cmd, sizeof cmd, MPIRUN " -np 1 %s %s : -np 1 %s %s", laic_bin(), a1, laic_bin(), a2);
    double t0 = wall();
    int rc = sh(cmd, err, sizeof err);
    double dt = wall() - t0;
    CHECK(rc != 0 && rc != 124 && strstr(err, "resolved a different configuration than rank 0"),
          "different configs refused (rc %d, %.1fs): %s", rc, dt, err);
    char run[700];
    snprintf(run, sizeof run, "%s/run", dir);
    CHECK(!file_exists(run), "no run directory");
}

TEST(mpi_failing_rank_ends_the_job) {
    const char *why = mpi_unusable();
    if (why) SKIP("%s", why);
    if (!file_exists("/usr/share/wordnet/data.noun")) SKIP("wordnet-base not installed (make setup)");
    // 40 images listed in a CSV (a committed JPEG fixture, again and again); the row at 30 is
    // corrupt. With model.batch 8 and 2 ranks, rank 0 encodes rows 0-15 and rank 1 rows 16-39:
    // only rank 1 fails, while rank 0 waits in the gather.
    const char *dir = test_path("mpi-fail");
    mkdir(dir, 0755);
    char good[700], bad[700], csv[700];
    REQUIRE(realpath("tests/fixtures/image/syn/rgb420_53x37.jpg", good), "fixture JPEG");
    snprintf(bad, sizeof bad, "%s/broken-image.jpg", dir);
    test_write_file(bad, "\xff\xd8\xff\xe0 not really a jpeg", 22);
    snprintf(csv, sizeof csv, "%s/list.csv", dir);
    FILE *f = fopen(csv, "w");
    REQUIRE(f, "csv");
    for (int i = 0; i < 40; i++) fprintf(f, "%s,%d\n", i == 30 ? bad : good, i % 2);
    fclose(f);
    char args[4096], err[32768];
    snprintf(args, sizeof args,
             "run /dev/null data.kind=csv data.path=%s data.fit_split=all data.eval_split=all "
             "model.arch=tiny model.device=cpu model.batch=8 nouns.subset=100 kmeans.restarts=1 "
             "centers.restarts=1 eval.methods=clip-kmeans run.dir=%s/run run.cache_dir=%s/cache",
             csv, dir, dir);
    double t0 = wall();
    int rc = laic_np(2, args, err, sizeof err);
    double dt = wall() - t0;
    CHECK(rc != 0 && rc != 124 && strstr(err, "rank 1/2") && strstr(err, "broken-image.jpg"),
          "the failing rank's message ends the job (rc %d, %.1fs): %s", rc, dt, err);
    char run[700], partial[800];
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(partial, sizeof partial, "%s/run.partial", dir);
    CHECK(!file_exists(run), "no run directory");
    printf("    job ended in %.1fs (rc %d)\n", dt, rc);
    (void)partial;
}

/* A /proc file (size unknown in advance: read until EOF), malloc'd; NULL when unreadable. */
static char *read_proc(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, len = 0;
    char *b = malloc(cap + 1);
    for (size_t r; b && (r = fread(b + len, 1, cap - len, f)) > 0;) {
        len += r;
        if (len == cap) {
            char *nb = realloc(b, 2 * cap + 1);
            if (!nb) break;
            b = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (b) b[len] = 0;
    *n = len;
    return b;
}

/* The pid of the process whose environment holds both tag and OMPI_COMM_WORLD_RANK=want (Open
 * MPI puts the rank in each rank's environment; the tag is this test's, inherited from mpirun);
 * 0 when there is none (yet). */
static pid_t rank_pid(const char *tag, int want) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    char key[64];
    snprintf(key, sizeof key, "OMPI_COMM_WORLD_RANK=%d", want);
    pid_t found = 0;
    for (struct dirent *e; !found && (e = readdir(d));) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
        char p[300];
        snprintf(p, sizeof p, "/proc/%s/environ", e->d_name);
        size_t n = 0;
        char *env = read_proc(p, &n);
        int has_tag = 0, has_rank = 0;
        for (size_t i = 0; env && i < n; i += strlen(env + i) + 1) {
            has_tag |= !strcmp(env + i, tag);
            has_rank |= !strcmp(env + i, key);
        }
        free(env);
        if (has_tag && has_rank) found = (pid_t)atoi(e->d_name);
    }
    closedir(d);
    return found;
}

TEST(mpi_killed_rank_ends_the_job) {
    const char *why = mpi_unusable();
    if (why) SKIP("%s", why);
    if (!file_exists("/usr/share/wordnet/data.noun")) SKIP("wordnet-base not installed (make setup)");
    const char *dir = test_path("mpi-kill");
    mkdir(dir, 0755);
    write_cifar(dir, 60, 30);
    char args[4096], ef[700];
    // long enough to be killed in the middle: prompt learning for many epochs
    tiny_args(args, sizeof args, dir, "run", "train.epochs=400");
    snprintf(ef, sizeof ef, "%s/stderr.txt", dir);
    char tag[64];
    snprintf(tag, sizeof tag, "LAIC_TEST_KILL_TAG=%d", (int)getpid());
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        if (!freopen(ef, "w", stderr) || dup2(fileno(stderr), 1) < 0) _exit(127);
        setenv("OMP_NUM_THREADS", "1", 1);
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        setenv("LAIC_TEST_KILL_TAG", tag + strlen("LAIC_TEST_KILL_TAG="), 1);
        char cmd[5000];
        snprintf(cmd, sizeof cmd, "exec mpirun --oversubscribe --allow-run-as-root -np 2 %s %s",
                 laic_bin(), args);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    // wait for rank 1, let it get going, then SIGKILL it
    pid_t victim = 0;
    double t0 = wall();
    while (!victim && wall() - t0 < 60) {
        victim = rank_pid(tag, 1);
        usleep(50000);
    }
    int status = 0;
    if (!victim) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        REQUIRE(0, "rank 1 of mpirun %d not found", (int)pid);
    }
    usleep(1500000);
    REQUIRE(kill(victim, SIGKILL) == 0, "kill rank 1 (pid %d)", (int)victim);
    const double tk = wall();
    pid_t w = 0;
    while (wall() - tk < 60 && (w = waitpid(pid, &status, WNOHANG)) == 0) usleep(50000);
    const double dt = wall() - tk;
    if (w == 0) {   // still running: the job hung
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    char *err = test_read_file(ef, NULL);
    printf("    job ended %.1fs after rank 1 was killed\n", dt);
    CHECK(w == pid && dt < 30, "the job ends within seconds of a killed rank (%.1fs)", dt);
    CHECK(WIFEXITED(status) ? WEXITSTATUS(status) != 0 : 1, "non-zero exit");
    CHECK(err && (strstr(err, "signal 9") || strstr(err, "Killed")),
          "mpirun says which rank died and how: %.3000s", err ? err : "");
    free(err);
}
