/*
 * test_ops_gpu.c — the CUDA backend (kernels/) against the CPU reference backend, op by op.
 *
 * Built into build/test_gpu by `make test-gpu` (CUDA builds only). Every test first checks for
 * a device: without one the whole program exits 77 ("waived"), so a CPU-only machine neither
 * passes nor fails it. Inputs are random (laic's seeded RNG); ops_cpu is the reference.
 *
 * Tolerances, and why:
 * - fp32 ops: ≤ 1e-4 relative (max |gpu-cpu| / max |cpu| over the tensor for matmul-like sums,
 *   elementwise atol + rtol otherwise). The two sides sum in different orders (warp trees vs
 *   loops, cuBLAS vs OpenBLAS blocking) and the kernels are built with --use_fast_math
 *   (approximate expf, rsqrtf, division: a few ulp), all far below 1e-4.
 * - matmul tf32: ≤ 1e-3 (operands rounded to 10 mantissa bits, fp32 accumulate).
 * - matmul bf16 (cuBLAS and the WMMA kernel): ≤ 2e-2 (operands rounded to 8 mantissa bits;
 *   relative rounding error 2^-9 per operand, averaging out over K terms).
 */
#include "../test.h"

#ifdef LAIC_CUDA

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/err.h"
#include "ops.h"
#include "rng.h"
#include "../../kernels/ops_cuda.h"

static const OpsBackend *G = &ops_cuda, *REF = &ops_cpu;

#include "gpu_test.h"

// --- helpers -------------------------------------------------------------------------------
static float *rand_host(Rng *r, size_t n, float scale, float shift) {
    float *x = mallocCheck(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)rng_normal(r) * scale + shift;
    return x;
}

// --- device + memory -----------------------------------------------------------------------
TEST(gpu_describe_and_count) {
    need_gpu();
    char buf[1024];
    ops_cuda_describe(buf, sizeof buf);
    printf("    %s\n", buf);
    CHECK(strstr(buf, "0: ") == buf, "first line names device 0: '%s'", buf);
    CHECK(strstr(buf, ", sm_") != NULL, "compute capability listed: '%s'", buf);
    char tiny[8];
    ops_cuda_describe(tiny, sizeof tiny);   // truncates, stays NUL-terminated
    CHECK(strlen(tiny) < sizeof tiny, "truncated description is terminated");
}

TEST(gpu_alloc_oom_is_an_error_not_an_abort) {
    need_gpu();
    laic_clear_error();
    const size_t huge = (size_t)1 << 50;   // 1 PiB: no device has it
    void *p = G->alloc(huge);
    REQUIRE(p == NULL, "1 PiB allocation must fail");
    const char *msg = laic_last_error();
    printf("    message: %s\n", msg);
    CHECK(strstr(msg, "out of memory") != NULL, "says out of memory: '%s'", msg);
    CHECK(strstr(msg, "1125899906842624 bytes") != NULL, "says the bytes requested: '%s'", msg);
    CHECK(strstr(msg, "free") != NULL, "says what is free: '%s'", msg);
    CHECK(count_lines(msg) == 1 && !strchr(msg, '\n'), "one line");
    // The failure must not poison later work (CUDA's sticky last-error is cleared).
    float one = 1.0f, back = 0.0f;
    float *d = gpu_upload(&one, sizeof one);
    G->quickgelu_forward(d, d, 1);
    G->synchronize();
    G->to_host(&back, d, sizeof back);
    CHECK(fabsf(back - 1.0f / (1.0f + expf(-1.702f))) < 1e-6f, "op after OOM works: %g", back);
    G->free(d);
    void *z = G->alloc(0);
    CHECK(z != NULL, "alloc(0) returns a pointer");
    G->free(z);
}

TEST(gpu_memory_roundtrip) {
    need_gpu();
    Rng r;
    rng_init(&r, 1, 0);
    const size_t n = 1000;
    float *x = rand_host(&r, n, 1, 0);
    float *d = gpu_upload(x, n * sizeof(float)), *d2 = gpu_alloc(n * sizeof(float));
    G->copy(d2, d, n * sizeof(float));
    float *y = gpu_download(d2, n * sizeof(float));
    CHECK(memcmp(x, y, n * sizeof(float)) == 0, "to_device/copy/to_host are exact");
    G->memset0(d2, n * sizeof(float));
    float *z = gpu_download(d2, n * sizeof(float));
    int zero = 1;
    for (size_t i = 0; i < n; i++) zero &= z[i] == 0.0f;
    CHECK(zero, "memset0 zeroes");
    free(x), free(y), free(z);
    G->free(d), G->free(d2);
}

// --- matmul --------------------------------------------------------------------------------
typedef struct { int M, K, N, bias; } MmShape;
// CLIP-like shapes (M = B·50 / B·77) plus tails: M, N not multiples of the 128 tile, K not a
// multiple of the 32 slice (40), K not a multiple of 8 (12: the WMMA path falls back).
static const MmShape MM_SHAPES[] = {
    {100, 768, 2304, 1}, {154, 512, 1536, 1}, {50, 3072, 768, 1}, {77, 512, 512, 0},
    {130, 40, 129, 1},   {1, 3, 5, 1},        {33, 12, 17, 1},    {3, 64, 1, 0},
};

static void check_matmul(const char *algo, double tol) {
    need_gpu();
    REQUIRE(ops_cuda_set_matmul(algo) == 0, "set %s: %s", algo, laic_last_error());
    Rng r;
    rng_init(&r, 2, 0);
    for (size_t s = 0; s < sizeof MM_SHAPES / sizeof MM_SHAPES[0]; s++) {
        MmShape sh = MM_SHAPES[s];
        size_t na = (size_t)sh.M * sh.K, nw = (size_t)sh.N * sh.K, no = (size_t)sh.M * sh.N;
        float *a = rand_host(&r, na, 1, 0), *w = rand_host(&r, nw, 0.05f, 0);
        float *b = rand_host(&r, sh.N, 0.5f, 0), *ref = mallocCheck(no * sizeof(float));
        REF->matmul_forward(ref, a, w, sh.bias ? b : NULL, sh.M, sh.K, sh.N);
        float *da = gpu_upload(a, na * 4), *dw = gpu_upload(w, nw * 4),
              *db = gpu_upload(b, (size_t)sh.N * 4);
        float *dout = gpu_nan(no);
        G->matmul_forward(dout, da, dw, sh.bias ? db : NULL, sh.M, sh.K, sh.N);
        float *got = gpu_download(dout, no * sizeof(float));
        double e = max_rel_err(got, ref, no);
        printf("    %s %s M=%d K=%d N=%d bias=%d: max_rel_err %.3g (tol %.0e)\n",
               e <= tol ? "OK" : "NOT OK", algo, sh.M, sh.K, sh.N, sh.bias, e, tol);
        CHECK(e <= tol, "%s M=%d K=%d N=%d: %.3g > %.0e", algo, sh.M, sh.K, sh.N, e, tol);
        free(a), free(w), free(b), free(ref), free(got);
        G->free(da), G->free(dw), G->free(db), G->free(dout);
    }
    ops_cuda_set_matmul("fp32");
}

TEST(gpu_matmul_fp32) { check_matmul("fp32", 1e-4); }
TEST(gpu_matmul_tf32) { check_matmul("tf32", 1e-3); }
TEST(gpu_matmul_bf16_cublas) { check_matmul("bf16-cublas", 2e-2); }
TEST(gpu_matmul_bf16_wmma) { check_matmul("bf16-wmma", 2e-2); }

TEST(gpu_matmul_switch_rejects_unknown_names) {
    need_gpu();
    int before = ops_cuda_get_matmul();
    laic_clear_error();
    CHECK(ops_cuda_set_matmul("fp16") == -1, "unknown name rejected");
    CHECK(strstr(laic_last_error(), "unknown matmul algorithm 'fp16'") != NULL, "message: %s",
          laic_last_error());
    CHECK(ops_cuda_get_matmul() == before, "selection unchanged");
}

// The fused bias + QuickGELU epilogue of the WMMA kernel (the MLP's c_fc), and the unfused
// cuBLAS equivalent, against CPU matmul then CPU QuickGELU on the same bf16-rounded operands'
// fp32 originals.
TEST(gpu_matmul_bf16_fused_bias_gelu) {
    need_gpu();
    Rng r;
    rng_init(&r, 3, 0);
    const int M = 100, K = 768, N = 3072;
    size_t na = (size_t)M * K, nw = (size_t)N * K, no = (size_t)M * N;
    float *a = rand_host(&r, na, 1, 0), *w = rand_host(&r, nw, 0.05f, 0);
    float *b = rand_host(&r, N, 0.5f, 0), *ref = mallocCheck(no * sizeof(float));
    REF->matmul_forward(ref, a, w, b, M, K, N);
    REF->quickgelu_forward(ref, ref, no);
    float *da = gpu_upload(a, na * 4), *dw = gpu_upload(w, nw * 4),
          *db = gpu_upload(b, (size_t)N * 4);
    uint16_t *a16 = G->alloc(na * 2), *w16 = G->alloc(nw * 2);
    REQUIRE(a16 && w16, "alloc bf16 operands");
    ops_cuda_f32_to_bf16(a16, da, na);
    ops_cuda_f32_to_bf16(w16, dw, nw);
    const int algos[2] = {LAIC_MM_BF16_WMMA, LAIC_MM_BF16_CUBLAS};
    for (int i = 0; i < 2; i++) {
        float *dout = gpu_nan(no);   // NaN: an unwritten element fails
        ops_cuda_matmul_bf16(dout, a16, w16, db, M, K, N, algos[i], 1);
        float *got = gpu_download(dout, no * sizeof(float));
        double e = max_rel_err(got, ref, no);
        printf("    %s bias+QuickGELU: max_rel_err %.3g (tol 2e-2)\n",
               ops_cuda_matmul_name(algos[i]), e);
        CHECK(e <= 2e-2, "%s fused: %.3g", ops_cuda_matmul_name(algos[i]), e);
        free(got);
        G->free(dout);
    }
    free(a), free(w), free(b), free(ref);
    G->free(da), G->free(dw), G->free(db), G->free(a16), G->free(w16);
}

// --- normalisation ---------------------------------------------------------------------------
TEST(gpu_layernorm) {
    need_gpu();
    Rng r;
    rng_init(&r, 4, 0);
    const int shapes[3][2] = {{100, 768}, {77, 512}, {5, 33}};
    for (int s = 0; s < 3; s++) {
        int N = shapes[s][0], C = shapes[s][1];
        size_t n = (size_t)N * C;
        // A mean far from 0 exercises the two-pass variance.
        float *x = rand_host(&r, n, 2, 3), *w = rand_host(&r, C, 0.2f, 1);
        float *b = rand_host(&r, C, 0.1f, 0);
        float *ref = mallocCheck(n * 4), *rm = mallocCheck(N * 4), *rr = mallocCheck(N * 4);
        REF->layernorm_forward(ref, rm, rr, x, w, b, N, C);
        float *dx = gpu_upload(x, n * 4), *dw = gpu_upload(w, C * 4), *db = gpu_upload(b, C * 4);
        float *dout = gpu_nan(n), *dm = gpu_nan(N), *dr = gpu_nan(N);
        G->layernorm_forward(dout, dm, dr, dx, dw, db, N, C);
        float *got = gpu_download(dout, n * sizeof(float)),
              *gm = gpu_download(dm, N * sizeof(float)), *gr = gpu_download(dr, N * sizeof(float));
        CHECK(test_allclose(got, ref, n, 1e-5, 1e-4, "layernorm out"), "N=%d C=%d", N, C);
        CHECK(test_allclose(gm, rm, N, 1e-5, 1e-4, "layernorm mean"), "N=%d C=%d", N, C);
        CHECK(test_allclose(gr, rr, N, 1e-5, 1e-4, "layernorm rstd"), "N=%d C=%d", N, C);
        // NULL mean/rstd: same output.
        G->layernorm_forward(dout, NULL, NULL, dx, dw, db, N, C);
        float *got2 = gpu_download(dout, n * sizeof(float));
        CHECK(memcmp(got, got2, n * 4) == 0, "NULL mean/rstd gives the same output");
        free(x), free(w), free(b), free(ref), free(rm), free(rr), free(got), free(gm),
            free(gr), free(got2);
        G->free(dx), G->free(dw), G->free(db), G->free(dout), G->free(dm), G->free(dr);
    }
}

TEST(gpu_l2norm) {
    need_gpu();
    Rng r;
    rng_init(&r, 5, 0);
    const int N = 37, C = 500;   // 37 rows: a partial last block; 500: a partial lane stride
    size_t n = (size_t)N * C;
    float *x = rand_host(&r, n, 3, 0), *ref = mallocCheck(n * 4);
    memset(x + 7 * C, 0, C * 4);   // a zero row: the 1e-12 floor, result 0 not NaN
    REF->l2norm_forward(ref, x, N, C);
    float *dx = gpu_upload(x, n * 4), *dout = gpu_nan(n);
    G->l2norm_forward(dout, dx, N, C);
    float *got = gpu_download(dout, n * sizeof(float));
    CHECK(test_allclose(got, ref, n, 1e-6, 1e-4, "l2norm"), "out of place");
    G->l2norm_forward(dx, dx, N, C);   // in place (ops.h allows out == inp)
    float *got2 = gpu_download(dx, n * sizeof(float));
    CHECK(test_allclose(got2, ref, n, 1e-6, 1e-4, "l2norm in place"), "in place");
    free(x), free(ref), free(got), free(got2);
    G->free(dx), G->free(dout);
}

// --- elementwise -----------------------------------------------------------------------------
TEST(gpu_quickgelu_and_residual) {
    need_gpu();
    Rng r;
    rng_init(&r, 6, 0);
    const size_t n = 100003;   // not a multiple of any block size
    float *x = rand_host(&r, n, 4, 0), *y = rand_host(&r, n, 1, 0);
    x[0] = -100.0f, x[1] = 100.0f, x[2] = 0.0f, x[3] = -60.0f;   // overflow side: -0, not NaN
    // Subnormal sums (an input, then only the result): the residual add must not flush them
    // to zero (-ftz=true comes with --use_fast_math; the CPU keeps them).
    x[4] = 1e-40f, y[4] = 2e-40f, x[5] = 3e-38f, y[5] = -2.9e-38f;
    float *ref = mallocCheck(n * 4), *ref2 = mallocCheck(n * 4);
    REF->quickgelu_forward(ref, x, n);
    REF->residual_forward(ref2, x, y, n);
    float *dx = gpu_upload(x, n * 4), *dy = gpu_upload(y, n * 4), *dout = gpu_nan(n);
    G->quickgelu_forward(dout, dx, n);
    float *got = gpu_download(dout, n * sizeof(float));
    CHECK(test_allclose(got, ref, n, 1e-6, 1e-4, "quickgelu"), "quickgelu");
    G->residual_forward(dout, dx, dy, n);
    float *got2 = gpu_download(dout, n * sizeof(float));
    CHECK(test_allclose(got2, ref2, n, 0, 0, "residual (exact)"), "residual");
    G->residual_forward(dx, dx, dy, n);   // in place on a
    float *got3 = gpu_download(dx, n * sizeof(float));
    CHECK(memcmp(got3, got2, n * 4) == 0, "residual in place");
    free(x), free(y), free(ref), free(ref2), free(got), free(got2), free(got3);
    G->free(dx), G->free(dy), G->free(dout);
}

// --- attention -------------------------------------------------------------------------------
TEST(gpu_attention) {
    need_gpu();
    Rng r;
    rng_init(&r, 7, 0);
    // Vision (T = 50, 12 heads of 64), text (T = 77, causal, 8 heads of 64), and odd shapes:
    // head size 4 and 16 (not a warp or block multiple), T = 40 (> 32: rows span two warp
    // strides in the softmax), both with and without the causal mask.
    const int cfg[5][5] = {{2, 50, 768, 12, 0}, {3, 77, 512, 8, 1}, {2, 9, 12, 3, 1},
                           {1, 40, 48, 3, 0},   {2, 40, 48, 3, 1}};
    for (int s = 0; s < 5; s++) {
        int B = cfg[s][0], T = cfg[s][1], C = cfg[s][2], NH = cfg[s][3], causal = cfg[s][4];
        size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = (size_t)B * NH * T * T;
        float *qkv = rand_host(&r, nq, 1, 0);
        float *ref = mallocCheck(no * 4), *ratt = mallocCheck(na * 4);
        REF->attention_forward(ref, ratt, qkv, B, T, C, NH, causal);
        // NaN-filled outputs: masked probabilities must be written as 0, not left alone.
        float *dq = gpu_upload(qkv, nq * 4), *dout = gpu_nan(no), *datt = gpu_nan(na);
        G->attention_forward(dout, datt, dq, B, T, C, NH, causal);
        float *got = gpu_download(dout, no * sizeof(float)),
              *gatt = gpu_download(datt, na * sizeof(float));
        printf("    B=%d T=%d C=%d NH=%d causal=%d\n", B, T, C, NH, causal);
        CHECK(test_allclose(got, ref, no, 1e-5, 1e-4, "attention out"), "config %d", s);
        CHECK(test_allclose(gatt, ratt, na, 1e-6, 1e-4, "attention probs"), "config %d", s);
        // att NULL: same out, and bitwise reproducible.
        G->attention_forward(dout, NULL, dq, B, T, C, NH, causal);
        float *got2 = gpu_download(dout, no * sizeof(float));
        CHECK(memcmp(got, got2, no * 4) == 0, "deterministic, att optional");
        free(qkv), free(ref), free(ratt), free(got), free(gatt), free(got2);
        G->free(dq), G->free(dout), G->free(datt);
    }
}

// --- embeddings and gathers ------------------------------------------------------------------
TEST(gpu_im2col_and_vision_embed) {
    need_gpu();
    Rng r;
    rng_init(&r, 8, 0);
    const int B = 2, H = 64, P = 16, G2 = (H / P) * (H / P), C = 48;
    size_t npx = (size_t)B * 3 * H * H, npatch = (size_t)B * G2 * 3 * P * P;
    float *px = rand_host(&r, npx, 1, 0), *ref = mallocCheck(npatch * 4);
    REF->im2col_forward(ref, px, B, H, P);
    float *dpx = gpu_upload(px, npx * 4), *dpat = gpu_nan(npatch);
    G->im2col_forward(dpat, dpx, B, H, P);
    float *got = gpu_download(dpat, npatch * sizeof(float));
    CHECK(memcmp(got, ref, npatch * 4) == 0, "im2col is a pure copy: bitwise equal");

    size_t npe = (size_t)B * G2 * C, nout = (size_t)B * (G2 + 1) * C;
    float *pe = rand_host(&r, npe, 1, 0), *cls = rand_host(&r, C, 1, 0);
    float *pos = rand_host(&r, (size_t)(G2 + 1) * C, 1, 0), *ref2 = mallocCheck(nout * 4);
    REF->vision_embed_forward(ref2, pe, cls, pos, B, G2, C);
    float *dpe = gpu_upload(pe, npe * 4), *dcls = gpu_upload(cls, C * 4);
    float *dpos = gpu_upload(pos, (size_t)(G2 + 1) * C * 4), *dout = gpu_nan(nout);
    G->vision_embed_forward(dout, dpe, dcls, dpos, B, G2, C);
    float *got2 = gpu_download(dout, nout * sizeof(float));
    CHECK(test_allclose(got2, ref2, nout, 0, 0, "vision_embed (exact)"), "vision_embed");
    free(px), free(ref), free(got), free(pe), free(cls), free(pos), free(ref2), free(got2);
    G->free(dpx), G->free(dpat), G->free(dpe), G->free(dcls), G->free(dpos), G->free(dout);
}

TEST(gpu_token_embed_pos_add_gather) {
    need_gpu();
    Rng r;
    rng_init(&r, 9, 0);
    const int B = 3, T = 77, C = 64, V = 500;
    size_t n = (size_t)B * T * C;
    int32_t tok[3 * 77], idx[3];
    for (int i = 0; i < B * T; i++) tok[i] = (int32_t)rng_below(&r, V);
    for (int b = 0; b < B; b++) idx[b] = (int32_t)rng_below(&r, T);
    idx[0] = T - 1;   // the last row (an EOT at the end of a full context)
    float *emb = rand_host(&r, (size_t)V * C, 1, 0), *pos = rand_host(&r, (size_t)T * C, 1, 0);
    float *x = rand_host(&r, n, 1, 0);
    pos[0] = 1e-40f, pos[1] = 3e-38f, x[0] = 1e-40f, x[1] = -2.9e-38f;   // subnormal sums: exact
    float *r1 = mallocCheck(n * 4), *r2 = mallocCheck(n * 4), *r3 = mallocCheck((size_t)B * C * 4);
    REF->token_embed_forward(r1, tok, emb, pos, B, T, C);
    REF->pos_add_forward(r2, x, pos, B, T, C);
    REF->gather_rows_forward(r3, x, idx, B, T, C);
    int32_t *dtok = gpu_upload(tok, sizeof tok), *didx = gpu_upload(idx, sizeof idx);
    float *demb = gpu_upload(emb, (size_t)V * C * 4), *dpos = gpu_upload(pos, (size_t)T * C * 4);
    float *dx = gpu_upload(x, n * 4), *dout = gpu_nan(n);   // NaN: unwritten elements fail
    G->token_embed_forward(dout, dtok, demb, dpos, B, T, C);
    float *g1 = gpu_download(dout, n * sizeof(float));
    CHECK(test_allclose(g1, r1, n, 0, 0, "token_embed (exact)"), "token_embed");
    G->pos_add_forward(dout, dx, dpos, B, T, C);
    float *g2 = gpu_download(dout, n * sizeof(float));
    CHECK(test_allclose(g2, r2, n, 0, 0, "pos_add (exact)"), "pos_add");
    G->gather_rows_forward(dout, dx, didx, B, T, C);
    float *g3 = gpu_download(dout, ((size_t)B * C) * sizeof(float));
    CHECK(test_allclose(g3, r3, (size_t)B * C, 0, 0, "gather_rows (exact)"), "gather_rows");
    free(emb), free(pos), free(x), free(r1), free(r2), free(r3), free(g1), free(g2), free(g3);
    G->free(dtok), G->free(didx), G->free(demb), G->free(dpos), G->free(dx), G->free(dout);
}

#endif   // LAIC_CUDA
