/*
 * test_ops_cpu.c — every CPU op of the backend table (host/cpu/<op>.c) against PyTorch goldens
 * on tiny shapes (tests/fixtures/ops/, written by scripts/make_fixtures.py).
 *
 * Goldens are computed in float64 from the same float32 inputs and rounded once, so the only
 * error is ours. Tolerance (per tensor): elementwise |a-r| <= 1e-5 + 1e-5*|r| and
 * max|a-r|/max|r| <= 1e-5. Why: inputs are O(1) and every op here sums at most 48 float32
 * products (~1e-7 relative each, abs error <= 2e-6 on values up to ~15), so this leaves a
 * margin yet catches any wrong index, missing bias or mis-scaled softmax (O(1) errors).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/err.h"
#include "io/npy.h"
#include "ops.h"
#include "../test.h"

#define ATOL 1e-5
#define RTOL 1e-5
#define RELMAX 1e-5

// Compares `got` with fixture `name` under the tolerances above.
#define FIXDIR "tests/fixtures/ops"
static float *loadf(const char *name, Npy *a) { return test_fixture_f32(FIXDIR, name, a); }
static int32_t *loadi(const char *name, size_t *n) { return test_fixture_i32(FIXDIR, name, n, NULL, NULL); }

static int close_to(const float *got, const char *name, size_t n) {
    Npy r;
    const float *ref = loadf(name, &r);
    if (!ref) return 0;
    int ok = CHECK(r.count == n, "%s: %zu values, expected %zu", name, r.count, n);
    if (ok) {
        ok = CHECK(test_allclose(got, ref, n, ATOL, RTOL, name), "%s elementwise", name);
        double rel = max_rel_err(got, ref, n);
        ok &= CHECK(rel <= RELMAX, "%s: max|a-r|/max|r| = %.3g > %.0g", name, rel, RELMAX);
    }
    npy_free(&r);
    return ok;
}

// --- dense ----------------------------------------------------------------------------------

TEST(ops_cpu_matmul) {
    Npy x, w, b;
    float *inp = loadf("matmul_inp", &x), *wt = loadf("matmul_weight", &w),
          *bias = loadf("matmul_bias", &b);
    if (inp && wt && bias) {
        int M = (int)x.shape[0], K = (int)x.shape[1], N = (int)w.shape[0];
        float *out = malloc((size_t)M * N * sizeof(float));
        ops_cpu.matmul_forward(out, inp, wt, bias, M, K, N);
        close_to(out, "matmul_out", (size_t)M * N);
        ops_cpu.matmul_forward(out, inp, wt, NULL, M, K, N);
        close_to(out, "matmul_out_nobias", (size_t)M * N);
        free(out);
    }
    npy_free(&x); npy_free(&w); npy_free(&b);
}

// --- normalisation --------------------------------------------------------------------------

TEST(ops_cpu_layernorm) {
    Npy x, w, b;
    float *inp = loadf("layernorm_inp", &x), *wt = loadf("layernorm_weight", &w),
          *bias = loadf("layernorm_bias", &b);
    if (inp && wt && bias) {
        int N = (int)x.shape[0], C = (int)x.shape[1];
        float *out = malloc(x.count * sizeof(float)), *mean = malloc(N * sizeof(float)),
              *rstd = malloc(N * sizeof(float));
        ops_cpu.layernorm_forward(out, mean, rstd, inp, wt, bias, N, C);
        close_to(out, "layernorm_out", x.count);
        close_to(mean, "layernorm_mean", N);
        close_to(rstd, "layernorm_rstd", N);
        // mean/rstd are optional outputs
        memset(out, 0, x.count * sizeof(float));
        ops_cpu.layernorm_forward(out, NULL, NULL, inp, wt, bias, N, C);
        close_to(out, "layernorm_out", x.count);
        free(out); free(mean); free(rstd);
    }
    npy_free(&x); npy_free(&w); npy_free(&b);
}

TEST(ops_cpu_l2norm) {
    Npy x;
    float *inp = loadf("l2norm_inp", &x);
    if (inp) {
        int N = (int)x.shape[0], C = (int)x.shape[1];
        float *out = malloc(x.count * sizeof(float));
        ops_cpu.l2norm_forward(out, inp, N, C);
        close_to(out, "l2norm_out", x.count);
        ops_cpu.l2norm_forward(inp, inp, N, C);   // in place is allowed (ops.h)
        close_to(inp, "l2norm_out", x.count);
        free(out);
    }
    npy_free(&x);
}

// --- elementwise ----------------------------------------------------------------------------

TEST(ops_cpu_quickgelu) {
    Npy x;
    float *inp = loadf("quickgelu_inp", &x);
    if (inp) {
        float *out = malloc(x.count * sizeof(float));
        ops_cpu.quickgelu_forward(out, inp, x.count);
        close_to(out, "quickgelu_out", x.count);
        ops_cpu.quickgelu_forward(inp, inp, x.count);
        close_to(inp, "quickgelu_out", x.count);
        free(out);
    }
    npy_free(&x);
}

TEST(ops_cpu_residual) {
    // a + b in float32 is exact to compare bitwise against the same sum done here
    Npy a, b;
    float *x = loadf("layernorm_inp", &a), *y = loadf("layernorm_out", &b);
    if (x && y && CHECK(a.count == b.count, "sizes")) {
        float *want = malloc(a.count * sizeof(float)), *out = malloc(a.count * sizeof(float));
        for (size_t i = 0; i < a.count; i++) want[i] = x[i] + y[i];
        ops_cpu.residual_forward(out, x, y, a.count);
        CHECK(!memcmp(out, want, a.count * sizeof(float)), "out = a + b");
        ops_cpu.residual_forward(x, x, y, a.count);   // out may equal a
        CHECK(!memcmp(x, want, a.count * sizeof(float)), "in place");
        free(want); free(out);
    }
    npy_free(&a); npy_free(&b);
}

// --- attention ------------------------------------------------------------------------------

TEST(ops_cpu_attention) {
    Npy q;
    float *qkv = loadf("attention_qkv", &q);
    if (qkv) {
        int B = (int)q.shape[0], T = (int)q.shape[1], C = (int)q.shape[2] / 3, NH = 3;
        size_t n = (size_t)B * T * C, na = (size_t)B * NH * T * T;
        float *out = malloc(n * sizeof(float)), *att = malloc(na * sizeof(float));
        for (int causal = 0; causal < 2; causal++) {
            memset(att, 0xff, na * sizeof(float));   // NaN: every entry must be written
            ops_cpu.attention_forward(out, att, qkv, B, T, C, NH, causal);
            close_to(out, causal ? "attention_out_causal" : "attention_out_full", n);
            close_to(att, causal ? "attention_att_causal" : "attention_att_full", na);
            ops_cpu.attention_forward(out, NULL, qkv, B, T, C, NH, causal);   // att optional
            close_to(out, causal ? "attention_out_causal" : "attention_out_full", n);
        }
        free(out); free(att);
    }
    npy_free(&q);
}

// --- embeddings -----------------------------------------------------------------------------

TEST(ops_cpu_im2col_conv) {
    Npy p, w;
    float *pix = loadf("im2col_pixels", &p), *cw = loadf("conv_weight", &w);
    if (pix && cw) {
        int B = (int)p.shape[0], H = (int)p.shape[2], OC = (int)w.shape[0], P = (int)w.shape[2];
        int G = H / P, K = 3 * P * P;
        float *patches = malloc((size_t)B * G * G * K * sizeof(float));
        float *out = malloc((size_t)B * G * G * OC * sizeof(float));
        ops_cpu.im2col_forward(patches, pix, B, H, P);
        close_to(patches, "im2col_patches", (size_t)B * G * G * K);
        // the conv (kernel = stride = P, no bias) is im2col then a matmul with the conv weight
        ops_cpu.matmul_forward(out, patches, cw, NULL, B * G * G, K, OC);
        close_to(out, "conv_out", (size_t)B * G * G * OC);
        free(patches); free(out);
    }
    npy_free(&p); npy_free(&w);
}

TEST(ops_cpu_embeddings) {
    Npy pe, ce, pos, te, tp, emb;
    float *patch = loadf("vembed_patch", &pe), *cls = loadf("vembed_class", &ce),
          *vpos = loadf("vembed_pos", &pos), *table = loadf("tembed_table", &te),
          *tpos = loadf("tembed_pos", &tp), *embeds = loadf("posadd_embeds", &emb);
    size_t ntok = 0, nidx = 0;
    int32_t *tok = loadi("tembed_tokens", &ntok), *idx = loadi("gather_idx", &nidx);
    if (patch && cls && vpos && table && tpos && embeds && tok && idx) {
        int B = (int)pe.shape[0], NP = (int)pe.shape[1], C = (int)pe.shape[2];
        int T = (int)tp.shape[0];
        float *out = malloc((size_t)B * (NP + 1 + T) * C * sizeof(float));
        ops_cpu.vision_embed_forward(out, patch, cls, vpos, B, NP, C);
        close_to(out, "vembed_out", (size_t)B * (NP + 1) * C);
        ops_cpu.token_embed_forward(out, tok, table, tpos, B, T, C);
        close_to(out, "tembed_out", (size_t)B * T * C);
        ops_cpu.pos_add_forward(out, embeds, tpos, B, T, C);
        close_to(out, "posadd_out", (size_t)B * T * C);
        ops_cpu.pos_add_forward(embeds, embeds, tpos, B, T, C);   // in place (prompt learning)
        close_to(embeds, "posadd_out", (size_t)B * T * C);
        Npy e2;
        float *e = loadf("posadd_embeds", &e2);
        if (e) {
            ops_cpu.gather_rows_forward(out, e, idx, B, T, C);
            close_to(out, "gather_out", (size_t)B * C);
        }
        npy_free(&e2);
        free(out);
    }
    free(tok); free(idx);
    npy_free(&pe); npy_free(&ce); npy_free(&pos); npy_free(&te); npy_free(&tp); npy_free(&emb);
}

// --- backend selection ----------------------------------------------------------------------

TEST(ops_get_devices) {
    CHECK(ops_get("cpu") == &ops_cpu, "cpu");
    CHECK(ops_get("auto") != NULL, "auto always gives a backend");
    laic_clear_error();
    CHECK(ops_get("tpu") == NULL, "unknown device rejected");
    CHECK(strstr(laic_last_error(), "tpu") != NULL, "message names the device: %s",
          laic_last_error());
#ifndef LAIC_CUDA
    CHECK(ops_get("cuda") == NULL, "cuda unavailable in a CPU build");
    CHECK(strstr(laic_last_error(), "without CUDA") != NULL, "message: %s", laic_last_error());
#endif
}
