/*
 * test_comm_gpu.c — the CUDA communicator (kernels/comm.cu) and the data-parallel code paths on
 * one GPU (issue 17): "a 1-rank NCCL run equals a run without NCCL".
 *
 * comm_set_forced(1) makes the drivers and the trainer take their data-parallel paths with one
 * rank, and the device collectives really call NCCL (a one-rank communicator: the unique id
 * needs no MPI). So on one GPU:
 *  - the collectives on device buffers: allreduce of i64/f32/f64 and broadcast leave the values
 *    (one rank: the sum is the value), allgather of one segment leaves it — bitwise;
 *  - the trainer (tiny CLIP, image and feature mode) with the data-parallel path (views encoded
 *    into the rank's buffer, copied and gathered; text chunks gathered) equals the plain CUDA
 *    run bitwise: the gathers move bits, nothing is summed;
 *  - ridge_reduce with M = 9000 texts (three Gram partials gathered over NCCL, rows gathered)
 *    equals the plain run bitwise (the same blocks either way);
 *  - k-means: forced, CUDA runs the sequential driver with the fixed-point sums allreduced over
 *    NCCL instead of the batched all-restarts kernel: on separated blobs the labels are equal
 *    and the objective agrees within 1e-9 relative (double sums in a different order), centres
 *    within 1e-6 (double-summed means vs fixed-point means: a float ulp or so).
 * Also the new ops of issue 17 against the CPU: kmeans_assign_sums_forward and
 * kmeans_centres_forward bitwise on a numpy fixture with certain labels, knn_topk_rows_forward
 * equal to those rows of the full call.
 * The NCCL tests SKIP (not fail) when built without NCCL. Status: compiled, never run (no GPU here).
 */
#include "../test.h"
#include "../synth.h"

#ifdef LAIC_CUDA

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "comm.h"
#include "io/err.h"
#include "io/npy.h"
#include "ops.h"
#include "rng.h"
#include "train/trainer.h"
#include "../../kernels/ops_cuda.h"

#include "gpu_test.h"

// kmeans_assign_sums_forward / kmeans_centres_forward / knn_topk_rows_forward (issue 17) on
// CUDA vs the CPU: the numpy fixture of tests/cluster/test_kmeans_sums.c, whose labels are
// certain (separated blobs), so the integer sums and counts must be bitwise the CPU's (integer
// atomics: any order) and so must the centres (the same three roundings); the kNN row range
// equals those rows of the full CUDA call bitwise.
TEST(gpu_kmeans_fixed_point_ops_equal_cpu) {
    need_gpu();
    const OpsBackend *G = &ops_cuda;
    Npy X = {0}, C = {0};
    REQUIRE(!npy_read(test_fixture_path("tests/fixtures/cluster", "ks_X"), &X) &&
                !npy_read(test_fixture_path("tests/fixtures/cluster", "ks_C"), &C),
            "fixtures: %s", laic_last_error());
    const int N = (int)X.shape[0], d = (int)X.shape[1], K = (int)C.shape[0];
    float amax = 0;
    for (size_t i = 0; i < X.count; i++) amax = fmaxf(amax, fabsf(((float *)X.data)[i]));
    const int shift = kmeans_fixed_shift(amax, N);
    float *xx = malloc(4 * (size_t)N), *cc = malloc(4 * (size_t)K), *mind = malloc(4 * (size_t)N);
    int64_t *lab = malloc(8 * (size_t)N), *sums = malloc(8 * (size_t)K * d), *cnt = malloc(8 * (size_t)K);
    float *cen = malloc(4 * (size_t)K * d);
    rownorm2_forward_cpu(xx, X.data, N, d);
    rownorm2_forward_cpu(cc, C.data, K, d);
    kmeans_assign_sums_forward_cpu(lab, mind, sums, cnt, X.data, xx, C.data, cc, N, d, K, shift);
    kmeans_centres_forward_cpu(cen, sums, cnt, K, d, shift);
    float *dX = gpu_upload(X.data, 4 * (size_t)N * d), *dC = gpu_upload(C.data, 4 * (size_t)K * d);
    float *dxx = gpu_upload(xx, 4 * (size_t)N), *dcc = gpu_upload(cc, 4 * (size_t)K);
    float *dmind = gpu_alloc(4 * (size_t)N), *dcen = gpu_alloc(4 * (size_t)K * d);
    int64_t *dlab = gpu_alloc(8 * (size_t)N), *dsums = gpu_alloc(8 * (size_t)K * d), *dcnt = gpu_alloc(8 * (size_t)K);
    G->kmeans_assign_sums_forward(dlab, dmind, dsums, dcnt, dX, dxx, dC, dcc, N, d, K, shift);
    G->kmeans_centres_forward(dcen, dsums, dcnt, K, d, shift);
    int64_t *gl = gpu_download(dlab, 8 * (size_t)N), *gs = gpu_download(dsums, 8 * (size_t)K * d);
    int64_t *gc = gpu_download(dcnt, 8 * (size_t)K);
    float *gcen = gpu_download(dcen, 4 * (size_t)K * d);
    CHECK(!memcmp(gl, lab, 8 * (size_t)N) && !memcmp(gc, cnt, 8 * (size_t)K), "labels, counts");
    CHECK(!memcmp(gs, sums, 8 * (size_t)K * d), "fixed-point sums bitwise the CPU's");
    CHECK(!memcmp(gcen, cen, 4 * (size_t)K * d), "centres bitwise the CPU's");
    // kNN row range on CUDA
    const int k = 5;
    float *dF = gpu_alloc(4 * (size_t)N * d);
    G->l2normalize_rows(dF, dX, N, d);
    int64_t *dall = gpu_alloc(8 * (size_t)N * k), *drow = gpu_alloc(8 * (size_t)N * k);
    G->knn_topk_forward(dall, NULL, dF, N, d, k);
    G->knn_topk_rows_forward(drow, NULL, dF, N, d, k, 100, 250);
    int64_t *ha = gpu_download(dall, 8 * (size_t)N * k), *hr = gpu_download(drow, 8 * (size_t)150 * k);
    CHECK(!memcmp(hr, ha + (size_t)100 * k, 8 * (size_t)150 * k), "knn rows [100, 250) bitwise");
    void *dev[] = {dX, dC, dxx, dcc, dmind, dcen, dlab, dsums, dcnt, dF, dall, drow};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++) G->free(dev[i]);
    free(xx), free(cc), free(mind), free(lab), free(sums), free(cnt), free(cen);
    free(gl), free(gs), free(gc), free(gcen), free(ha), free(hr);
    npy_free(&X);
    npy_free(&C);
}

TEST(gpu_comm_collectives_one_rank_nccl) {
    need_gpu();
    if (!comm_nccl_built()) SKIP("built without NCCL (the CUDA entries stage through MPI)");
    const OpsBackend *G = &ops_cuda;
    comm_set_forced(1);
    Rng r;
    rng_init(&r, 3, 0);
    enum { N = 1000 };
    int64_t hi[N];
    float hf[N];
    double hd[N];
    for (int i = 0; i < N; i++) {
        hi[i] = (int64_t)rng_below(&r, 1u << 30) - (1 << 29);
        hf[i] = (float)rng_normal(&r);
        hd[i] = rng_normal(&r);
    }
    int64_t *di = gpu_upload(hi, sizeof hi);
    float *df = gpu_upload(hf, sizeof hf);
    double *dd = gpu_upload(hd, sizeof hd);
    G->allreduce_sum(di, N, COMM_I64);
    G->allreduce_sum(df, N, COMM_F32);
    G->allreduce_sum(dd, N, COMM_F64);
    int64_t gi[N];
    float gf[N];
    double gd[N];
    gpu_download_into(gi, di, sizeof gi);
    gpu_download_into(gf, df, sizeof gf);
    gpu_download_into(gd, dd, sizeof gd);
    CHECK(!memcmp(gi, hi, sizeof hi) && !memcmp(gf, hf, sizeof hf) && !memcmp(gd, hd, sizeof hd),
          "one-rank allreduce leaves the values");
    size_t counts[1] = {sizeof hf};
    G->allgather(df, counts);
    G->broadcast(dd, sizeof hd, 0);
    G->barrier();
    gpu_download_into(gf, df, sizeof gf);
    gpu_download_into(gd, dd, sizeof gd);
    CHECK(!memcmp(gf, hf, sizeof hf) && !memcmp(gd, hd, sizeof hd),
          "one-rank allgather and broadcast leave the values");
    comm_set_forced(0);
    G->free(di);
    G->free(df);
    G->free(dd);
}

TEST(gpu_comm_one_rank_nccl_run_equals_plain_run) {
    need_gpu();
    if (!comm_nccl_built()) SKIP("built without NCCL (the CUDA entries stage through MPI)");
    const OpsBackend *G = &ops_cuda;
    // trainer
    SynthTrainFix f;
    REQUIRE(synth_train_fix_init(&f, 1) == 0, "%s", laic_last_error());
    for (int images = 0; images < 2; images++) {
        TrainResult r0, r1;
        // graph 0: the data-parallel step holds collectives, never captured (trainer.c)
        REQUIRE(synth_train_run(&r0, &f, G, images, 0, 0, NULL, NULL) == 0, "%s", laic_last_error());
        comm_set_forced(1);
        int rc = synth_train_run(&r1, &f, G, images, 0, 0, NULL, NULL);
        comm_set_forced(0);
        REQUIRE(rc == 0, "%s", laic_last_error());
        size_t nv = (size_t)r0.st.K * r0.st.M * r0.st.D;
        CHECK(!memcmp(r0.st.vec, r1.st.vec, nv * sizeof(float)) &&
                  !memcmp(r0.W, r1.W, (size_t)r0.K * r0.E * sizeof(float)),
              "trainer (%s mode): one-rank NCCL path equals the plain CUDA run bitwise",
              images ? "image" : "feature");
        trainer_result_free(&r0);
        trainer_result_free(&r1);
    }
    synth_train_fix_free(&f);

    // ridge reduction with three Gram partials
    Rng r;
    rng_init(&r, 41, 0);
    const int N = 20000, M = 9000, d = 16;
    float *X = synth_randn(&r, (size_t)N * d, 1.0), *T = synth_randn(&r, (size_t)M * d, 1.0);
    float *Z0 = malloc(sizeof(float) * (size_t)N * d), *Z1 = malloc(sizeof(float) * (size_t)N * d);
    cluster_set_backend(G);
    REQUIRE(ridge_reduce(Z0, X, T, 3.0, N, M, d) == 0, "%s", laic_last_error());
    comm_set_forced(1);
    int rc = ridge_reduce(Z1, X, T, 3.0, N, M, d);
    comm_set_forced(0);
    REQUIRE(rc == 0, "%s", laic_last_error());
    CHECK(!memcmp(Z0, Z1, sizeof(float) * (size_t)N * d), "ridge_reduce: NCCL path bitwise");

    // k-means: batched kernel (plain) vs sequential driver with NCCL sums (forced)
    const int K = 6, Nk = 6000;
    float *B = malloc(sizeof(float) * (size_t)Nk * d);
    for (int i = 0; i < Nk; i++)
        for (int j = 0; j < d; j++)
            B[(size_t)i * d + j] = (float)rng_normal(&r) * 0.1f + (j == i % K ? 10.0f : 0.0f);
    KMeansOpts o = {.K = K, .iters = 40, .restarts = 3, .seed = 9};
    int64_t *l0 = malloc(sizeof(int64_t) * Nk), *l1 = malloc(sizeof(int64_t) * Nk);
    float *c0 = malloc(sizeof(float) * K * d), *c1 = malloc(sizeof(float) * K * d);
    double o0, o1;
    REQUIRE(kmeans_fit(l0, c0, &o0, B, Nk, d, &o) == 0, "%s", laic_last_error());
    comm_set_forced(1);
    rc = kmeans_fit(l1, c1, &o1, B, Nk, d, &o);
    comm_set_forced(0);
    REQUIRE(rc == 0, "%s", laic_last_error());
    CHECK(!memcmp(l0, l1, sizeof(int64_t) * Nk), "k-means labels equal");
    double e = 0, m = 0;
    for (int i = 0; i < K * d; i++) {
        e = fmax(e, fabs((double)c0[i] - c1[i]));
        m = fmax(m, fabs((double)c0[i]));
    }
    CHECK(fabs(o0 - o1) <= 1e-9 * o0 && e <= 1e-6 * m, "k-means objective %.17g vs %.17g, centres %.3g",
          o0, o1, e / m);
    cluster_set_backend(NULL);
    free(X), free(T), free(Z0), free(Z1), free(B), free(l0), free(l1), free(c0), free(c1);
}

#endif
