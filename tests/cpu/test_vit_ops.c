/*
 * test_vit_ops.c — the CPU ops added for training the image encoder (issue 16), against PyTorch
 * autograd goldens (tests/fixtures/vit/op_*, scripts/make_vit_fixtures.py): LayerNorm weight /
 * bias gradients, the vision embedding's backward, im2col's backward, LoRA forward / backward on
 * a column block of a wider matrix, sumsq + grad_clip (torch.nn.utils.clip_grad_norm_).
 *
 * Tolerances (fp32 code vs a float64 golden of the same fp32 inputs): |a-r| <= 1e-5 + 1e-5|r|
 * for sums of ≤ 10 O(1) terms (observed ≤ 2e-7 relative); a wrong term (a missing rstd, the
 * bias sum landing in the weight, a transposed LoRA factor, a dropped scale) moves values by
 * O(10%). Copies (dpatch, dpixels) bitwise. Parameter gradients accumulate: each is called
 * twice onto a non-zero start and must give start + 2·ref. clip_grad_norm_'s float32 result
 * (torch computes the norm in float32 over per-tensor norms, laic in double): ≤ 1e-6 relative.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_ops.h"
#include "io/err.h"
#include "ops.h"
#include "../test.h"

#define FIXDIR "tests/fixtures/vit"
static float *loadf(const char *name, Npy *a) { return test_fixture_f32(FIXDIR, name, a); }

#define ATOL 1e-5
#define RTOL 1e-5

// out = start + k·ref for an accumulating gradient called k times onto start
static int check_acc(const float *got, const float *start, const float *ref, size_t n, int k,
                     const char *what) {
    float *want = mallocCheck(n * sizeof *want);
    for (size_t i = 0; i < n; i++) want[i] = start[i] + (float)k * ref[i];
    int ok = test_allclose(got, want, n, ATOL * k, RTOL, what);
    free(want);
    return ok;
}

static float *filled(size_t n, float base) {
    float *x = mallocCheck(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = base + 0.25f * (float)(i % 5);
    return x;
}

TEST(vit_ops_cpu_layernorm_weight_grad) {
    Npy a, b, c, d, e, f;
    float *inp = loadf("op_lnw_inp", &a), *w = loadf("op_lnw_weight", &b),
          *bias = loadf("op_lnw_bias", &c), *dout = loadf("op_lnw_dout", &d),
          *rw = loadf("op_lnw_dweight", &e), *rb = loadf("op_lnw_dbias", &f);
    if (inp && w && bias && dout && rw && rb) {
        int N = (int)a.shape[0], C = (int)a.shape[1];
        float *out = mallocCheck((size_t)N * C * 4), *mean = mallocCheck(N * 4),
              *rstd = mallocCheck(N * 4);
        ops_cpu.layernorm_forward(out, mean, rstd, inp, w, bias, N, C);
        float *dw = filled(C, -1), *db = filled(C, 2), *w0 = filled(C, -1), *b0 = filled(C, 2);
        ops_cpu.layernorm_backward_weight(dw, db, dout, inp, mean, rstd, N, C);
        ops_cpu.layernorm_backward_weight(dw, db, dout, inp, mean, rstd, N, C);
        CHECK(check_acc(dw, w0, rw, C, 2, "ln dweight (x2 onto a start)"), "ln dweight");
        CHECK(check_acc(db, b0, rb, C, 2, "ln dbias (x2 onto a start)"), "ln dbias");
        // either output may be NULL; the other is unchanged by that
        float *dw2 = filled(C, -1);
        ops_cpu.layernorm_backward_weight(dw2, NULL, dout, inp, mean, rstd, N, C);
        CHECK(check_acc(dw2, w0, rw, C, 1, "ln dweight alone"), "ln dweight, dbias NULL");
        ops_cpu.layernorm_backward_weight(NULL, NULL, dout, inp, mean, rstd, N, C);
        free(out); free(mean); free(rstd); free(dw); free(db); free(w0); free(b0); free(dw2);
    }
    npy_free(&a); npy_free(&b); npy_free(&c); npy_free(&d); npy_free(&e); npy_free(&f);
}

TEST(vit_ops_cpu_embed_backward) {
    Npy a, b, c, d;
    float *dout = loadf("op_vemb_dout", &a), *rp = loadf("op_vemb_dpatch", &b),
          *rc = loadf("op_vemb_dclass", &c), *rpos = loadf("op_vemb_dpos", &d);
    if (dout && rp && rc && rpos) {
        int B = (int)a.shape[0], T = (int)a.shape[1], C = (int)a.shape[2], NP = T - 1;
        float *dp = mallocCheck(b.count * 4), *dc = filled(C, 1), *dpos = filled(d.count, -3);
        float *c0 = filled(C, 1), *p0 = filled(d.count, -3);
        memset(dp, 0x7f, b.count * 4);   // garbage: every element must be written
        ops_cpu.vision_embed_backward(dp, dc, dpos, dout, B, NP, C);
        CHECK(!memcmp(dp, rp, b.count * 4), "dpatch_emb == dout[:,1:] bitwise");
        ops_cpu.vision_embed_backward(NULL, dc, dpos, dout, B, NP, C);
        CHECK(check_acc(dc, c0, rc, C, 2, "dclass (x2)"), "dclass");
        CHECK(check_acc(dpos, p0, rpos, d.count, 2, "dpos (x2)"), "dpos");
        // class gradient alone (no dpos): row 0 only
        float *dc2 = filled(C, 1);
        ops_cpu.vision_embed_backward(NULL, dc2, NULL, dout, B, NP, C);
        CHECK(check_acc(dc2, c0, rc, C, 1, "dclass alone"), "dclass without dpos");
        free(dp); free(dc); free(dpos); free(c0); free(p0); free(dc2);
    }
    npy_free(&a); npy_free(&b); npy_free(&c); npy_free(&d);
    float *dpat = loadf("op_i2c_dpatches", &a), *rpix = loadf("op_i2c_dpixels", &b);
    if (dpat && rpix) {
        int B = (int)b.shape[0], H = (int)b.shape[2], P = 4;
        float *got = mallocCheck(b.count * 4);
        memset(got, 0x7f, b.count * 4);
        ops_cpu.im2col_backward(got, dpat, B, H, P);
        CHECK(!memcmp(got, rpix, b.count * 4), "im2col_backward bitwise");
        // and it inverts the forward exactly
        float *back = mallocCheck(a.count * 4);
        ops_cpu.im2col_forward(back, got, B, H, P);
        CHECK(!memcmp(back, dpat, a.count * 4), "im2col_forward(im2col_backward(x)) == x");
        free(got); free(back);
    }
    npy_free(&a); npy_free(&b);
}

TEST(vit_ops_cpu_lora) {
    Npy cf, ax, ad, au, aq, adq, ao, adi, add, adu;
    float *cfg = loadf("op_lora_cfg", &cf), *x = loadf("op_lora_inp", &ax),
          *D = loadf("op_lora_down", &ad), *U = loadf("op_lora_up", &au),
          *qkv = loadf("op_lora_qkv", &aq), *dqkv = loadf("op_lora_dqkv", &adq),
          *rout = loadf("op_lora_out", &ao), *rdi = loadf("op_lora_dinp", &adi),
          *rdd = loadf("op_lora_ddown", &add), *rdu = loadf("op_lora_dup", &adu);
    if (cfg && x && D && U && qkv && dqkv && rout && rdi && rdd && rdu) {
        int M = (int)cfg[0], K = (int)cfg[1], N = (int)cfg[2], r = (int)cfg[3];
        float scale = cfg[4];
        size_t no = (size_t)M * 3 * N;
        float *out = mallocCheck(no * 4), *h = mallocCheck((size_t)M * r * 4);
        memcpy(out, qkv, no * 4);
        // the v block: columns 2N..3N-1 of rows of 3N
        ops_cpu.lora_forward(out + 2 * N, h, x, D, U, scale, M, K, N, r, 3 * N);
        CHECK(test_allclose(out, rout, no, ATOL, RTOL, "lora out (v block)"), "lora forward");
        CHECK(!memcmp(out, qkv, (size_t)2 * N * 4), "q and k blocks of row 0 untouched");
        float *dinp = filled((size_t)M * K, 1), *dd = filled((size_t)r * K, -2),
              *du = filled((size_t)N * r, 3), *dh = mallocCheck((size_t)M * r * 4);
        float *i0 = filled((size_t)M * K, 1), *d0 = filled((size_t)r * K, -2),
              *u0 = filled((size_t)N * r, 3);
        ops_cpu.lora_backward(dinp, dd, du, dh, dqkv + 2 * N, x, h, D, U, scale, M, K, N, r,
                              3 * N);
        CHECK(check_acc(dinp, i0, rdi, (size_t)M * K, 1, "lora dinp (+= onto a start)"), "dinp");
        ops_cpu.lora_backward(NULL, dd, du, dh, dqkv + 2 * N, x, h, D, U, scale, M, K, N, r,
                              3 * N);
        CHECK(check_acc(dd, d0, rdd, (size_t)r * K, 2, "lora ddown (x2)"), "ddown");
        CHECK(check_acc(du, u0, rdu, (size_t)N * r, 2, "lora dup (x2)"), "dup");
        free(out); free(h); free(dinp); free(dd); free(du); free(dh); free(i0); free(d0);
        free(u0);
    }
    npy_free(&cf); npy_free(&ax); npy_free(&ad); npy_free(&au); npy_free(&aq); npy_free(&adq);
    npy_free(&ao); npy_free(&adi); npy_free(&add); npy_free(&adu);
}

TEST(vit_ops_cpu_grad_clip) {
    Npy ag, ac, aa;
    float *g = loadf("op_clip_g", &ag), *cfg = loadf("op_clip_cfg", &ac),
          *after = loadf("op_clip_after", &aa);
    if (g && cfg && after) {
        size_t n = ag.count, split[4] = {0, 35, 68, n};   // the three tensors (5x7, 33, 2x3x4)
        for (int c = 0; c < 2; c++) {
            double sumsq = 0.0;
            for (int t = 0; t < 3; t++) ops_cpu.sumsq_forward(&sumsq, g + split[t], split[t + 1] - split[t]);
            printf("    max_norm %g: norm %.7g (torch %.7g)\n", cfg[c], sqrt(sumsq), cfg[2 + c]);
            CHECK(fabs(sqrt(sumsq) - cfg[2 + c]) <= 1e-6 * cfg[2 + c], "global norm");
            float *x = mallocCheck(n * 4);
            memcpy(x, g, n * 4);
            for (int t = 0; t < 3; t++)
                ops_cpu.grad_clip_forward(x + split[t], split[t + 1] - split[t], &sumsq, cfg[c]);
            CHECK(test_allclose(x, after + c * n, n, 0, 1e-6, c ? "no clip" : "clip"), "clip %d", c);
            if (c == 1) CHECK(!memcmp(x, g, n * 4), "below max_norm: gradients unchanged bitwise");
            free(x);
        }
        // a NaN norm propagates (torch's clamp keeps NaN)
        double s = NAN;
        float x[2] = {1, 2};
        ops_cpu.grad_clip_forward(x, 2, &s, 1.0);
        CHECK(isnan(x[0]) && isnan(x[1]), "NaN norm gives NaN gradients");
    }
    npy_free(&ag); npy_free(&ac); npy_free(&aa);
}
