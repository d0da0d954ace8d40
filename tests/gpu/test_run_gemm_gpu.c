/*
 * test_run_gemm_gpu.c — RunGemm (host/run/stages.c, run.h) on the CUDA backend against the CPU
 * backend: the products `laic run --device cuda` now runs on the GPU (nouns → image centres,
 * TAC's similarity and mixture with its row normalisation, zero-shot scores, clusters.tsv).
 *
 * Built into test_gpu (CUDA builds); without a device the program exits 77 (waived).
 * Tolerance: ≤ 1e-5 of the largest |entry| — both sides are fp32 GEMMs (cuBLAS vs OpenBLAS,
 * different summation orders over K ≤ 600 terms: ~1e-7 expected; --use_fast_math's rsqrt in the
 * normalisation adds a few ulp). The matmul switch is put on bf16 first: RunGemm must stay fp32
 * whatever model.precision says (bf16 would be ~4e-3 off and fail).
 * Status: written without a GPU; unverified on hardware.
 */
#include "../test.h"

#ifdef LAIC_CUDA

#include <stdlib.h>
#include <string.h>

#include "io/err.h"
#include "ops.h"
#include "rng.h"
#include "run/stages.h"
#include "../../kernels/ops_cuda.h"

#include "gpu_test.h"

/* S (n,N) from backend o, in blocks of `rows`. -1 when init fails. */
static int products(const OpsBackend *o, float *S, const float *A, const float *B, int trans,
                    int n, int K, int N, int rows, int norm) {
    RunGemm g;
    if (run_gemm_init(&g, o, B, trans, N, K, (size_t)rows)) return -1;
    for (int i0 = 0; i0 < n; i0 += rows) {
        int m = n - i0 < rows ? n - i0 : rows;
        run_gemm_rows(&g, S + (size_t)i0 * N, A + (size_t)i0 * K, (size_t)m, norm);
    }
    run_gemm_free(&g);
    return 0;
}

TEST(gpu_run_gemm_matches_cpu_in_fp32) {
    need_gpu();
    REQUIRE(ops_cuda_set_matmul("bf16-wmma") == 0, "%s", laic_last_error());
    const struct { int n, K, N, rows, trans, norm; } cs[] = {
        {5000, 512, 40, 4096, 1, 0},    // nouns → centres (two blocks, the last short)
        {1500, 512, 600, 1024, 1, 0},   // TAC similarity X Tᵀ
        {1500, 600, 512, 1024, 0, 1},   // TAC mixture s T, row-normalised on the device
        {777, 512, 10, 777, 1, 0},      // zero-shot scores, one block
        {3, 512, 1, 3, 1, 0},           // a single column
    };
    Rng rng;
    rng_init(&rng, 11, 0);
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        const int n = cs[c].n, K = cs[c].K, N = cs[c].N;
        float *A = mallocCheck((size_t)n * K * sizeof *A), *B = mallocCheck((size_t)N * K * sizeof *B);
        for (size_t i = 0; i < (size_t)n * K; i++) A[i] = (float)rng_normal(&rng) * 0.05f;
        for (size_t i = 0; i < (size_t)N * K; i++) B[i] = (float)rng_normal(&rng) * 0.05f;
        float *S = mallocCheck((size_t)n * N * sizeof *S), *R = mallocCheck((size_t)n * N * sizeof *R);
        int ok = products(&ops_cuda, S, A, B, cs[c].trans, n, K, N, cs[c].rows, cs[c].norm) == 0;
        CHECK(ok, "case %zu: %s", c, laic_last_error());
        if (ok) {
            products(&ops_cpu, R, A, B, cs[c].trans, n, K, N, cs[c].rows, cs[c].norm);
            double e = max_rel_err(S, R, (size_t)n * N);
            CHECK(e <= 1e-5, "case %zu (%dx%dx%d trans %d norm %d): max rel err %.2e vs CPU "
                  "(tol 1e-5; bf16 would be ~4e-3)", c, n, K, N, cs[c].trans, cs[c].norm, e);
        }
        free(A);
        free(B);
        free(S);
        free(R);
    }
    ops_cuda_set_matmul("fp32");   // the process-wide switch back to its default
}

#endif
