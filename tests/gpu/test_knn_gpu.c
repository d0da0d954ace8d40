/*
 * test_knn_gpu.c — the fused bf16 GEMM + top-k kNN kernel (kernels/knn.cu,
 * knn_topk_forward_kernel2 + exact re-rank) against the CPU op (ops_cpu.knn_topk_forward), its
 * kernel switch and fallback, determinism, and `laic knn --precision`.
 *
 * Built into test_gpu (CUDA builds); without a device each test exits 77 ("waived") at its
 * device check. Written without a GPU: none of this has run yet.
 *
 * Tolerances, and why:
 * - Returned similarities are the exact fp32 dot products of the returned pairs: the re-rank
 *   sums fp32 products in double and rounds once, so |sim − ⟨F_i, F_j⟩ (double)| ≤ 1e-5 is
 *   generous (the expected error is one float rounding, ~6e-8 on unit rows).
 * - Where the GPU and CPU ids agree position by position, sims agree within 1e-5 (the CPU's
 *   are fp32 GEMM sums, d ≤ 512 terms).
 * - Order: (similarity desc, index asc) exactly, self never, ids distinct and in [0, N).
 * - Neighbour sets: a GPU id missing from the CPU list is a near-tie when its similarity is
 *   within 1e-5 of the CPU's k-th (float rounding of the two GEMMs can swap those). Anything
 *   else is a "bf16 miss": a true neighbour whose bf16 similarity fell below the kc-th
 *   candidate's. Such an entry must still be within 2ε = 0.016 of the CPU's k-th (ε = the
 *   worst-case bf16 error on unit rows, (2u+u²)·1 + fp32 accumulation, u = 2⁻⁸; see knn.cu),
 *   and at most ⌊N/1000⌋ rows may have one. Typical bf16 errors here are ~4e-4 while the gap
 *   between the k-th and the kc-th similarity is ≥ 1e-2 on these inputs, so the expected
 *   count is 0 and the allowance only absorbs a freak pile-up at the cut.
 * - Determinism: the same call twice gives the same bits (idx and sims).
 */
#include "../test.h"

#ifdef LAIC_CUDA

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"
#include "io/err.h"
#include "io/npy.h"
#include "ops.h"
#include "rng.h"
#include "../../kernels/ops_cuda.h"

static const OpsBackend *G = &ops_cuda, *REF = &ops_cpu;

#include "gpu_test.h"

// --- data ------------------------------------------------------------------------------------
// Rows of F (N,d) made unit length (double sums, as a reference would).
static void normalise_rows(float *F, int N, int d) {
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int c = 0; c < d; c++) s += (double)F[(size_t)i * d + c] * F[(size_t)i * d + c];
        const double r = s > 0 ? 1.0 / sqrt(s) : 0.0;
        for (int c = 0; c < d; c++) F[(size_t)i * d + c] = (float)(F[(size_t)i * d + c] * r);
    }
}

// (N,d) unit rows: Gaussian directions (K = 0), or K planted clusters (row i around centre
// i % K, noise sigma/√d per coordinate against unit centres), a few exact duplicates (ties).
static float *make_rows(uint64_t seed, int N, int d, int K, double sigma) {
    Rng r;
    rng_init(&r, seed, 0);
    float *F = mallocCheck(sizeof(float) * (size_t)N * d);
    if (K == 0) {
        for (size_t e = 0; e < (size_t)N * d; e++) F[e] = (float)rng_normal(&r);
    } else {
        float *C = mallocCheck(sizeof(float) * (size_t)K * d);
        for (size_t e = 0; e < (size_t)K * d; e++) C[e] = (float)rng_normal(&r);
        normalise_rows(C, K, d);
        for (int i = 0; i < N; i++)
            for (int c = 0; c < d; c++)
                F[(size_t)i * d + c] = C[(size_t)(i % K) * d + c] +
                                       (float)(rng_normal(&r) * sigma / sqrt((double)d));
        free(C);
    }
    if (N > 40) {   // rows 3, 17 and N-1 identical: similarity exactly 1 between them
        memcpy(F + (size_t)17 * d, F + (size_t)3 * d, sizeof(float) * d);
        memcpy(F + (size_t)(N - 1) * d, F + (size_t)3 * d, sizeof(float) * d);
    }
    normalise_rows(F, N, d);
    return F;
}

// --- the GPU call ----------------------------------------------------------------------------
// idx (N,k), sims (N,k) on the host from ops_cuda.knn_topk_forward at the given precision
// name and kernel choice (both restored to fp32 / auto afterwards).
// The outputs are allocated with one spare row and filled with a sentinel first: an entry the
// op fails to write shows up as a bad id, and a write past row N-1 is caught here.
#define KNN_SENTINEL_ID ((int64_t)-7777)
#define KNN_SENTINEL_SIM 12345.0f
static void gpu_knn(int64_t *idx, float *sims, const float *F, int N, int d, int k,
                    const char *prec, int kernel) {
    const size_t nk = (size_t)N * k, nk1 = nk + (size_t)k;   // (N+1, k): one spare row
    float *dF = G->alloc(sizeof(float) * (size_t)N * d);
    int64_t *di = G->alloc(sizeof(int64_t) * nk1);
    float *ds = G->alloc(sizeof(float) * nk1);
    int64_t *hi = mallocCheck(sizeof(int64_t) * nk1);
    float *hs = mallocCheck(sizeof(float) * nk1);
    if (!dF || !di || !ds) {
        fprintf(stderr, "alloc: %s\n", laic_last_error());
        exit(1);
    }
    for (size_t e = 0; e < nk1; e++) hi[e] = KNN_SENTINEL_ID, hs[e] = KNN_SENTINEL_SIM;
    G->to_device(dF, F, sizeof(float) * (size_t)N * d);
    G->to_device(di, hi, sizeof(int64_t) * nk1);
    G->to_device(ds, hs, sizeof(float) * nk1);
    if (knn_set_precision(prec) || ops_cuda_knn_set_kernel(kernel)) {
        fprintf(stderr, "switch: %s\n", laic_last_error());
        exit(1);
    }
    G->knn_topk_forward(di, ds, dF, N, d, k);
    G->synchronize();
    G->to_host(hi, di, sizeof(int64_t) * nk1);
    G->to_host(hs, ds, sizeof(float) * nk1);
    int tail_ok = 1;
    for (size_t e = nk; e < nk1; e++)
        tail_ok &= hi[e] == KNN_SENTINEL_ID && hs[e] == KNN_SENTINEL_SIM;
    CHECK(tail_ok, "knn (%s, kernel %d, N=%d k=%d) wrote past row N-1", prec, kernel, N, k);
    memcpy(idx, hi, sizeof(int64_t) * nk);
    memcpy(sims, hs, sizeof(float) * nk);
    knn_set_precision("fp32");
    ops_cuda_knn_set_kernel(0);
    G->free(dF), G->free(di), G->free(ds);
    free(hi), free(hs);
}

// --- the comparison --------------------------------------------------------------------------
// Checks gi/gs (GPU) against the CPU's ci/cs as the file header says; returns the number of
// failed properties (0 = pass) and prints one summary line.
static int compare(const char *what, const int64_t *gi, const float *gs, const int64_t *ci,
                   const float *cs, const float *F, int N, int d, int k) {
    int bad_order = 0, bad_id = 0, bad_bound = 0, miss_rows = 0, ties = 0;
    double sim_exact = 0, sim_cpu = 0, worst_miss = 0;
    for (int i = 0; i < N; i++) {
        const int64_t *g = gi + (size_t)i * k, *c = ci + (size_t)i * k;
        const float *s = gs + (size_t)i * k;
        const float kth = cs[(size_t)i * k + k - 1];
        int row_miss = 0;
        for (int p = 0; p < k; p++) {
            if (g[p] < 0 || g[p] >= N || g[p] == i) {
                bad_id++;
                continue;
            }
            for (int q = 0; q < p; q++) bad_id += g[q] == g[p];
            if (p > 0 && !(s[p - 1] > s[p] || (s[p - 1] == s[p] && g[p - 1] < g[p]))) bad_order++;
            double dot = 0;
            for (int e = 0; e < d; e++)
                dot += (double)F[(size_t)i * d + e] * F[(size_t)g[p] * d + e];
            sim_exact = fmax(sim_exact, fabs(s[p] - dot));
            if (g[p] == c[p]) sim_cpu = fmax(sim_cpu, fabs(s[p] - cs[(size_t)i * k + p]));
            int found = 0;
            for (int q = 0; q < k; q++) found |= g[p] == c[q];
            if (found) continue;
            if (fabsf(s[p] - kth) <= 1e-5f) {
                ties++;
                continue;
            }
            row_miss = 1;
            worst_miss = fmax(worst_miss, kth - s[p]);
            if (s[p] < kth - 0.016f) bad_bound++;
        }
        miss_rows += row_miss;
    }
    const int allowed = N / 1000;
    const int fails = (bad_id > 0) + (bad_order > 0) + (sim_exact > 1e-5) + (sim_cpu > 1e-5) +
                      (bad_bound > 0) + (miss_rows > allowed);
    printf("    %s %s: N=%d d=%d k=%d | bad ids %d, order %d | |sim-exact| %.2g, |sim-cpu| %.2g "
           "(tol 1e-5) | near-ties %d | bf16-miss rows %d (allowed %d, worst %.3g, tol 0.016)\n",
           fails ? "NOT OK" : "OK", what, N, d, k, bad_id, bad_order, sim_exact, sim_cpu, ties,
           miss_rows, allowed, worst_miss);
    return fails;
}

// Row z of F set to zero: its similarity to every row is exactly 0 in every precision (bf16
// included), so its list must be exactly 0, 1, ..., k without z (ties to the lowest index) with
// sims 0: an exact check of the fused kernel's tie rule, which its re-rank cannot repair (a
// kernel keeping the last of equal values would hand the re-rank the wrong candidates).
static void zero_row(float *F, int d, int z) { memset(F + (size_t)z * d, 0, sizeof(float) * d); }
static int check_zero_row(const char *what, const int64_t *gi, const float *gs, int k, int z) {
    int bad = 0;
    for (int p = 0; p < k; p++) {
        const int64_t want = p < z ? p : p + 1;
        bad += gi[(size_t)z * k + p] != want || gs[(size_t)z * k + p] != 0.0f;
    }
    if (bad)
        printf("    NOT OK %s: zero row %d: %d of %d entries differ from 0..k without %d "
               "(first id %lld)\n",
               what, z, bad, k, z, (long long)gi[(size_t)z * k]);
    return bad > 0;
}

// One case: CPU reference, GPU at (prec, kernel), compare; returns the failure count. z >= 0:
// row z of F is zero (see zero_row) and its list is checked exactly as well.
static int run_case(const char *what, const float *F, int N, int d, int k, const char *prec,
                    int kernel, int z) {
    const size_t nk = (size_t)N * k;
    int64_t *ci = mallocCheck(8 * nk), *gi = mallocCheck(8 * nk);
    float *cs = mallocCheck(4 * nk), *gs = mallocCheck(4 * nk);
    REF->knn_topk_forward(ci, cs, F, N, d, k);
    gpu_knn(gi, gs, F, N, d, k, prec, kernel);
    int f = compare(what, gi, gs, ci, cs, F, N, d, k);
    if (z >= 0) f += check_zero_row(what, gi, gs, k, z);
    free(ci), free(gi), free(cs), free(gs);
    return f;
}

// --- tests -----------------------------------------------------------------------------------
TEST(gpu_knn_fused_candidates_per_k) {
    // The fused path's candidate counts (no device needed): max(2k, k+16) capped at 64 and N-1;
    // k > 48 goes to the tiled path (0). The defaults are checked without LAIC_KNN_SLACK.
    char *saved = getenv("LAIC_KNN_SLACK") ? strdup(getenv("LAIC_KNN_SLACK")) : NULL;
    unsetenv("LAIC_KNN_SLACK");
    CHECK(ops_cuda_knn_fused_kc(60000, 10) == 26, "k=10: %d", ops_cuda_knn_fused_kc(60000, 10));
    CHECK(ops_cuda_knn_fused_kc(60000, 1) == 17, "k=1");
    CHECK(ops_cuda_knn_fused_kc(60000, 20) == 40, "k=20");
    CHECK(ops_cuda_knn_fused_kc(60000, 48) == 64, "k=48");
    CHECK(ops_cuda_knn_fused_kc(60000, 49) == 0, "k=49 must fall back");
    CHECK(ops_cuda_knn_fused_kc(50, 10) == 26 && ops_cuda_knn_fused_kc(20, 19) == 19, "small N");
    CHECK(ops_cuda_knn_fused_kc(20, 20) == 0, "k = N");
    // LAIC_KNN_SLACK: a decimal 0..64 replaces the slack (still capped at 64 and N-1); anything
    // else (not a number, negative, too large) keeps the default.
    static const struct { const char *v; int k, want; } env[] = {
        {"0", 10, 10},  {"5", 10, 15},   {"64", 10, 64},         {"7", 48, 55},
        {"65", 10, 26}, {"abc", 10, 26}, {"-3", 10, 26},         {"4x", 10, 26},
        {"", 10, 26},   {"99999999999", 10, 26}, {"2147483647", 10, 26},
    };
    for (size_t e = 0; e < sizeof env / sizeof env[0]; e++) {
        setenv("LAIC_KNN_SLACK", env[e].v, 1);
        const int kc = ops_cuda_knn_fused_kc(60000, env[e].k);
        CHECK(kc == env[e].want, "LAIC_KNN_SLACK='%s' k=%d: kc %d, want %d", env[e].v, env[e].k, kc,
              env[e].want);
    }
    setenv("LAIC_KNN_SLACK", "0", 1);
    CHECK(ops_cuda_knn_fused_kc(60000, 49) == 0 && ops_cuda_knn_fused_kc(5, 4) == 4, "slack 0");
    if (saved)
        setenv("LAIC_KNN_SLACK", saved, 1);
    else
        unsetenv("LAIC_KNN_SLACK");
    free(saved);
    laic_clear_error();
    CHECK(ops_cuda_knn_set_kernel(3) != 0 && strstr(laic_last_error(), "unknown kernel 3") &&
              count_lines(laic_last_error()) == 1,
          "bad kernel: %s", laic_last_error());
    CHECK(ops_cuda_knn_set_kernel(0) == 0 && ops_cuda_knn_kernel() == 0, "auto");
}

TEST(gpu_knn_fused_vs_cpu_shapes) {
    need_gpu();
    // (N, d, k): tails in N (not multiples of the 128-row tile), d not a multiple of 16 or 32,
    // k = 1, k at the fused limit (48, kc = 64), N small (one block), k = N-1, full width d=512.
    static const int cases[][3] = {{1000, 64, 10}, {1537, 100, 1}, {777, 33, 48},
                                   {50, 20, 10},   {20, 7, 19},    {1300, 512, 10}};
    int fails = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int N = cases[c][0], d = cases[c][1], k = cases[c][2];
        float *F = make_rows(100 + c, N, d, 0, 0);
        zero_row(F, d, 5);
        char what[64];
        snprintf(what, sizeof what, "fused random #%zu", c);
        const int f = run_case(what, F, N, d, k, "bf16", 0, 5);
        CHECK(f == 0, "%s: %d properties failed", what, f);
        fails += f;
        free(F);
    }
    (void)fails;
}

TEST(gpu_knn_fused_planted_clusters_and_ties) {
    need_gpu();
    // 10 clusters, within-cluster cosine ≈ 0.8 ± 0.03: many close similarities, plus three
    // identical rows (3, 17, N-1) whose top neighbours are each other at exactly 1.
    const int N = 2000, d = 64, k = 10;
    float *F = make_rows(7, N, d, 10, 0.5);
    CHECK(run_case("fused planted", F, N, d, k, "bf16", 0, -1) == 0, "planted clusters");
    const size_t nk = (size_t)N * k;
    int64_t *a = mallocCheck(8 * nk), *b = mallocCheck(8 * nk);
    float *sa = mallocCheck(4 * nk), *sb = mallocCheck(4 * nk);
    gpu_knn(a, sa, F, N, d, k, "bf16", 0);
    // duplicates: row 3's two best are 17 and N-1 in index order (equal sims → lower first)
    CHECK(a[3 * k] == 17 && a[3 * k + 1] == N - 1 && sa[3 * k] == sa[3 * k + 1],
          "row 3: %lld %lld", (long long)a[3 * k], (long long)a[3 * k + 1]);
    // determinism: the same call again, bitwise
    gpu_knn(b, sb, F, N, d, k, "bf16", 0);
    CHECK(!memcmp(a, b, 8 * nk) && !memcmp(sa, sb, 4 * nk), "fused kNN not bitwise repeatable");
    // the switch: kernel 2 forced under fp32 is the same fused computation, bitwise
    gpu_knn(b, sb, F, N, d, k, "fp32", 2);
    CHECK(!memcmp(a, b, 8 * nk) && !memcmp(sa, sb, 4 * nk), "kernel 2 under fp32 != bf16 auto");
    // kernel 1 (tiled) in bf16 and fp32: the reference paths still pass the same comparison
    CHECK(run_case("tiled bf16 (kernel 1)", F, N, d, k, "bf16", 1, -1) == 0, "kernel 1 bf16");
    CHECK(run_case("tiled fp32 (kernel 1)", F, N, d, k, "fp32", 1, -1) == 0, "kernel 1 fp32");
    free(F), free(a), free(b), free(sa), free(sb);
}

TEST(gpu_knn_fused_limit_and_fallback) {
    need_gpu();
    // k = 48 is the fused kernel's largest (kc = 64, one block per SM); k = 49 and 100 run the
    // tiled bf16 path (k+32 candidates) through the same entry point.
    const int N = 1500, d = 96;
    float *F = make_rows(21, N, d, 15, 0.7);
    CHECK(run_case("fused k at limit", F, N, d, 48, "bf16", 0, -1) == 0, "k=48");
    CHECK(run_case("fallback k=49", F, N, d, 49, "bf16", 0, -1) == 0, "k=49");
    CHECK(run_case("fallback k=100 (kernel 2 asked)", F, N, d, 100, "bf16", 2, -1) == 0, "k=100");
    free(F);
}

// x rounded to bf16, nearest even (finite x), as __float2bfloat16_rn / knn_bf16_pad_kernel1.
static float bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

// With LAIC_KNN_SLACK=0 the fused kernel keeps exactly kc = k candidates and the re-rank only
// reorders them, so the returned set IS the kernel's selection under its bf16 similarities. The
// reference: bf16-rounded rows, similarities in double (sb). The kernel's are fp32 sums of the
// same exact products, off by at most (d-1)·2u·‖a‖‖b‖ ≈ 1.5e-5 for d ≤ 128 (u = 2⁻²⁴, doubled
// for tensor-core accumulation), so with t = the reference's k-th value and tol = 5e-5: every
// returned id has sb ≥ t − tol, and every id with sb > t + tol is returned. This is what the
// slack of the default mode hides (a wrong fragment layout, a lost tail column, a broken list
// position ≥ 32, a tile skipped): none of them survives a comparison at tol.
static int check_bf16_selection(const char *what, const int64_t *gi, const float *F, int N, int d,
                                int k) {
    const double tol = 5e-5;
    float *Fb = mallocCheck(sizeof(float) * (size_t)N * d);
    for (size_t e = 0; e < (size_t)N * d; e++) Fb[e] = bf16_round(F[e]);
    double *sb = mallocCheck(sizeof(double) * (size_t)N), *top = mallocCheck(sizeof(double) * k);
    int bad_id = 0, below = 0, missing = 0;
    for (int i = 0; i < N; i++) {
        int cnt = 0;   // top (k): the k largest sb, descending
        for (int j = 0; j < N; j++) {
            double v = 0;
            for (int e = 0; e < d; e++)
                v += (double)Fb[(size_t)i * d + e] * (double)Fb[(size_t)j * d + e];
            sb[j] = v;
            if (j == i || (cnt == k && !(v > top[k - 1]))) continue;
            int p = cnt < k ? cnt++ : k - 1;
            for (; p > 0 && v > top[p - 1]; p--) top[p] = top[p - 1];
            top[p] = v;
        }
        const double t = top[k - 1];
        const int64_t *g = gi + (size_t)i * k;
        for (int p = 0; p < k; p++) {
            int dup = 0;
            for (int q = 0; q < p; q++) dup |= g[q] == g[p];
            if (g[p] < 0 || g[p] >= N || g[p] == i || dup) {
                bad_id++;
                continue;
            }
            below += sb[g[p]] < t - tol;
        }
        for (int j = 0; j < N; j++) {
            if (j == i || !(sb[j] > t + tol)) continue;
            int found = 0;
            for (int p = 0; p < k; p++) found |= g[p] == j;
            missing += !found;
        }
    }
    free(Fb), free(sb), free(top);
    const int fails = (bad_id > 0) + (below > 0) + (missing > 0);
    printf("    %s %s: N=%d d=%d k=%d kc=k | bad ids %d | returned below the bf16 k-th - %.0e: %d "
           "| bf16 top-k above it not returned: %d\n",
           fails ? "NOT OK" : "OK", what, N, d, k, bad_id, tol, below, missing);
    return fails;
}

TEST(gpu_knn_fused_selection_without_slack) {
    need_gpu();
    // (N, d, k): kc = k = 10 with tails in N and d (several key tiles, last one 1 row), kc = 40
    // and 48 (list positions beyond 32, the second entry of each lane), planted clusters (many
    // close values), and a zero row (all-equal similarities: exactly the k lowest indices).
    static const int cases[][4] = {{1537, 100, 10, 0}, {777, 33, 40, 0}, {300, 128, 48, 0},
                                   {2000, 64, 10, 10}};
    char *saved = getenv("LAIC_KNN_SLACK") ? strdup(getenv("LAIC_KNN_SLACK")) : NULL;
    setenv("LAIC_KNN_SLACK", "0", 1);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int N = cases[c][0], d = cases[c][1], k = cases[c][2], K = cases[c][3];
        REQUIRE(ops_cuda_knn_fused_kc(N, k) == k, "LAIC_KNN_SLACK=0 must give kc = k");
        float *F = make_rows(300 + c, N, d, K, 0.5);
        zero_row(F, d, 5);
        const size_t nk = (size_t)N * k;
        int64_t *gi = mallocCheck(8 * nk);
        float *gs = mallocCheck(4 * nk);
        gpu_knn(gi, gs, F, N, d, k, "bf16", 2);
        char what[64];
        snprintf(what, sizeof what, "fused slack 0 #%zu", c);
        CHECK(check_bf16_selection(what, gi, F, N, d, k) == 0, "%s", what);
        CHECK(check_zero_row(what, gi, gs, k, 5) == 0, "%s: zero row", what);
        free(F), free(gi), free(gs);
    }
    if (saved)
        setenv("LAIC_KNN_SLACK", saved, 1);
    else
        unsetenv("LAIC_KNN_SLACK");
    free(saved);
}

TEST(gpu_knn_cli_precision) {
    // Bad name: usage error, one line, no output (no device needed: fails at option parsing).
    const float F[6] = {1, 0, 0, 1, 1, 1};
    const char *in = test_path("knn_cli_F.npy");
    char inbuf[512], out[512], err[1024], args[2048];
    snprintf(inbuf, sizeof inbuf, "%s", in);
    REQUIRE(npy_write_f32_2d(inbuf, F, 3, 2) == 0, "write F");
    snprintf(out, sizeof out, "%s", test_path("knn_cli_idx.npy"));
    snprintf(args, sizeof args, "knn --in %s --k 1 --out %s --precision fp16", inbuf, out);
    CHECK(run_laic(args, NULL, err, sizeof err) != 0 && count_lines(err) == 1 &&
              strstr(err, "unknown precision 'fp16'") && !file_exists(out),
          "bad --precision: %s", err);
    need_gpu();
    // --device cuda --precision bf16 (the fused kernel) against the CPU CLI on the same file.
    const int N = 900, d = 40, k = 10;
    float *X = make_rows(5, N, d, 6, 0.6);
    REQUIRE(npy_write_f32_2d(inbuf, X, N, d) == 0, "write X");
    char ci_p[512], cs_p[512], gi_p[512], gs_p[512];
    snprintf(ci_p, sizeof ci_p, "%s", test_path("knn_cli_ci.npy"));
    snprintf(cs_p, sizeof cs_p, "%s", test_path("knn_cli_cs.npy"));
    snprintf(gi_p, sizeof gi_p, "%s", test_path("knn_cli_gi.npy"));
    snprintf(gs_p, sizeof gs_p, "%s", test_path("knn_cli_gs.npy"));
    snprintf(args, sizeof args, "knn --in %s --k %d --out %s --sims-out %s --device cpu", inbuf,
             k, ci_p, cs_p);
    REQUIRE(run_laic(args, NULL, err, sizeof err) == 0, "cpu knn: %s", err);
    snprintf(args, sizeof args,
             "knn --in %s --k %d --out %s --sims-out %s --device cuda --precision bf16", inbuf, k,
             gi_p, gs_p);
    REQUIRE(run_laic(args, NULL, err, sizeof err) == 0, "cuda knn: %s", err);
    Npy ci = {0}, cs = {0}, gi = {0}, gs = {0};
    const long shape[2] = {N, k};
    REQUIRE(!npy_read_i64(ci_p, &ci, 2, shape) && !npy_read_f32(cs_p, &cs, 2, shape) &&
                !npy_read_i64(gi_p, &gi, 2, shape) && !npy_read_f32(gs_p, &gs, 2, shape),
            "read outputs: %s", laic_last_error());
    // X was written unit-length, so the CLI's internal normalisation changes it by rounding only
    CHECK(compare("CLI cuda bf16 vs cpu", gi.data, gs.data, ci.data, cs.data, X, N, d, k) == 0,
          "CLI");
    npy_free(&ci), npy_free(&cs), npy_free(&gi), npy_free(&gs);
    free(X);
}

#endif
