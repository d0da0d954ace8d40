/*
 * test_run_gemm.c — RunGemm (host/run/stages.c, run.h): the products of `laic run` that go through
 * the op table (nouns → image centres, TAC's two products, zero-shot scores, the clusters.tsv
 * nouns). On the CPU backend they must agree with the cblas_sgemm calls the stages made before
 * (NoTrans/Trans with alpha 1, then l2normalize_rows_cpu for TAC's mixture) to within fp32
 * rounding (≤ 1e-6 relative to the largest |entry|). Not bitwise: RunGemm multiplies a
 * transposed copy of B with NoTrans, the former call used Trans, and OpenBLAS picks its kernel
 * per shape, transposition and CPU, so the last bits of the two differ on some machines (AMD
 * EPYC, issue 13). A float64 loop checks the values themselves (≤ 1e-5 relative: fp32 sums of
 * ≤ 600 terms of size ≤ 1, ~1e-6 expected).
 * The CUDA twin is tests/gpu/test_run_gemm_gpu.c.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "io/err.h"
#include "rng.h"
#include "run/stages.h"
#include "../test.h"

static float *randn(Rng *r, size_t n) {
    float *x = mallocCheck((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = (float)rng_normal(r) * 0.1f;
    return x;
}

/* S (n,N) = A (n,K) @ B in double; B (N,K) used transposed (trans 1) or (K,N). */
static void ref_gemm(double *S, const float *A, const float *B, int trans, int n, int N, int K) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)A[(size_t)i * K + k] *
                     (trans ? B[(size_t)j * K + k] : B[(size_t)k * N + j]);
            S[(size_t)i * N + j] = s;
        }
}

static double max_rel_d(const float *a, const double *ref, size_t n) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        md = fmax(md, fabs(a[i] - ref[i]));
        mr = fmax(mr, fabs(ref[i]));
    }
    return mr > 0 ? md / mr : md;
}

TEST(run_gemm_cpu_matches_the_former_cblas_calls) {
    // shapes of the four call sites, shrunk: rows blocks that do and do not divide n
    const struct { int n, K, N, rows, trans, norm; } cs[] = {
        {300, 64, 7, 128, 1, 0},    // nouns → centres, blocks of 128 (last one short)
        {37, 64, 150, 37, 1, 0},    // zero-shot / TAC similarity, one block
        {50, 150, 64, 16, 0, 1},    // TAC mixture s T, then row-normalised
        {5, 32, 1, 5, 1, 0},        // one candidate noun
    };
    Rng rng;
    rng_init(&rng, 7, 0);
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        const int n = cs[c].n, K = cs[c].K, N = cs[c].N, rows = cs[c].rows;
        float *A = randn(&rng, (size_t)n * K), *B = randn(&rng, (size_t)N * K);
        float *S = mallocCheck((size_t)n * N * sizeof *S), *R = mallocCheck((size_t)n * N * sizeof *R);
        double *D = mallocCheck((size_t)n * N * sizeof *D);
        RunGemm g;
        REQUIRE(run_gemm_init(&g, &ops_cpu, B, cs[c].trans, N, K, (size_t)rows) == 0, "%s",
                laic_last_error());
        for (int i0 = 0; i0 < n; i0 += rows) {
            int m = n - i0 < rows ? n - i0 : rows;
            run_gemm_rows(&g, S + (size_t)i0 * N, A + (size_t)i0 * K, (size_t)m, cs[c].norm);
            // the former code: one cblas_sgemm per block (alpha 1, beta 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, cs[c].trans ? CblasTrans : CblasNoTrans, m, N,
                        K, 1.0f, A + (size_t)i0 * K, K, B, cs[c].trans ? K : N, 0.0f,
                        R + (size_t)i0 * N, N);
            if (cs[c].norm) l2normalize_rows_cpu(R + (size_t)i0 * N, R + (size_t)i0 * N, m, N);
        }
        run_gemm_free(&g);
        double ef = max_rel_err(S, R, (size_t)n * N);
        CHECK(ef <= 1e-6, "case %zu (%dx%dx%d, trans %d): max rel diff %.2e to the former "
              "cblas_sgemm (tol 1e-6)", c, n, K, N, cs[c].trans, ef);
        ref_gemm(D, A, B, cs[c].trans, n, N, K);
        if (cs[c].norm)
            for (int i = 0; i < n; i++) {
                double s = 0;
                for (int j = 0; j < N; j++) s += D[(size_t)i * N + j] * D[(size_t)i * N + j];
                for (int j = 0; j < N; j++) D[(size_t)i * N + j] /= sqrt(s);
            }
        double e = max_rel_d(S, D, (size_t)n * N);
        CHECK(e <= 1e-5, "case %zu: max rel err %.2e vs float64 (tol 1e-5)", c, e);
        free(A);
        free(B);
        free(S);
        free(R);
        free(D);
    }
}

TEST(run_gemm_free_is_safe_after_init_and_twice) {
    float B[6] = {1, 2, 3, 4, 5, 6}, A[3] = {1, 0, -1}, S[2];
    RunGemm g;
    REQUIRE(run_gemm_init(&g, &ops_cpu, B, 1, 2, 3, 1) == 0, "init");
    run_gemm_rows(&g, S, A, 1, 0);
    CHECK(S[0] == -2.0f && S[1] == -2.0f, "[1 0 -1]·[1 2 3] = -2, ·[4 5 6] = -2 (got %g %g)",
          S[0], S[1]);
    run_gemm_rows(&g, S, A, 0, 0);   // n = 0: nothing happens
    run_gemm_free(&g);
    run_gemm_free(&g);   // zeroed by the first free
    CHECK(g.B == NULL, "freed");
}
