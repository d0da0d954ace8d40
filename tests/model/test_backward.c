/*
 * test_backward.c — the text-encoder backward (issue 7): every CPU backward op and
 * clip_text_backward against PyTorch autograd goldens (tests/fixtures/backward/, written by
 * scripts/make_backward_fixtures.py in float64), central finite differences on the tiny model,
 * and `laic text-backward` (goldens and bad inputs).
 *
 * Tolerances, per tensor, and why:
 * - ops (fp32 vs a float64 golden of the same fp32 inputs): |a-r| <= 1e-5 + 1e-4|r|. Each op is
 *   a handful of fp32 sums of O(1) terms (~1e-6 relative); a wrong term (a missing mean
 *   correction, a transposed weight, a mask leak) moves values by O(10%). The l2norm zero row
 *   (values 1e12) is covered by the relative part. Copy-like ops (pos_add, gather, residual)
 *   must be bitwise exact.
 * - model dE (2 blocks, fp32 vs float64): max|a-r| / max|r| <= 1e-4 and elementwise
 *   |a-r| <= 1e-4 max|r| + 1e-3 |r| (measured ~5e-7 relative; the error of each element is
 *   relative to the row's scale, hence the max|r| term). Positions after a prompt's EOT must be
 *   exactly 0 (no path reaches them under the causal mask).
 * - finite differences (f = <G,F(E)> evaluated in fp32): central differences with h = 1e-3
 *   (inputs ~0.05, so the O(h²) truncation is ~1e-4 relative; fp32 rounding of f ~ 10 gives
 *   ~6e-8*10/h ~ 1e-3 absolute). Double-checked: FD at h and h/2 must agree within
 *   5e-3 max|dE| (else the FD itself is unreliable), and the analytic gradient must match the
 *   h/2 estimate within 5e-3 max|dE| + 1e-2 |fd|.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/clip.h"
#include "cpu/cpu_ops.h"
#include "io/err.h"
#include "io/npy.h"
#include "ops.h"
#include "../test.h"

#define WEIGHTS "tests/fixtures/clip/tiny_f16.safetensors"
#define TPATH(buf, name) snprintf(buf, sizeof buf, "%s", test_path(name))
#define FIXDIR "tests/fixtures/backward"
static const char *fx(const char *name) { return test_fixture_path(FIXDIR, name); }
static float *loadf(const char *name, Npy *a) { return test_fixture_f32(FIXDIR, name, a); }
static int32_t *loadi(const char *name, size_t *n) { return test_fixture_i32(FIXDIR, name, n, NULL, NULL); }

#define OP_ATOL 1e-5
#define OP_RTOL 1e-4

// --- ops ------------------------------------------------------------------------------------

TEST(backward_ops_cpu_matmul_layernorm) {
    Npy a, b, c, d, e;
    float *inp = loadf("op_matmul_inp", &a), *w = loadf("op_matmul_weight", &b),
          *dout = loadf("op_matmul_dout", &c), *ref = loadf("op_matmul_dinp", &d);
    if (inp && w && dout && ref) {
        int M = (int)a.shape[0], K = (int)a.shape[1], N = (int)b.shape[0];
        float *got = malloc((size_t)M * K * sizeof(float));
        ops_cpu.matmul_backward(got, dout, w, M, K, N);
        CHECK(test_allclose(got, ref, (size_t)M * K, OP_ATOL, OP_RTOL, "matmul dinp"), "matmul");
        free(got);
    }
    npy_free(&a); npy_free(&b); npy_free(&c); npy_free(&d);
    // layernorm: forward for mean/rstd, then backward onto a non-zero base (it accumulates)
    Npy f;
    inp = loadf("op_layernorm_inp", &a);
    w = loadf("op_layernorm_weight", &b);
    float *bias = loadf("op_layernorm_bias", &c);
    dout = loadf("op_layernorm_dout", &d);
    ref = loadf("op_layernorm_dinp", &e);
    (void)f;
    if (inp && w && bias && dout && ref) {
        int N = (int)a.shape[0], C = (int)a.shape[1];
        size_t n = (size_t)N * C;
        float *out = malloc(n * 4), *mean = malloc(N * 4), *rstd = malloc(N * 4);
        float *got = malloc(n * 4), *base = malloc(n * 4);
        ops_cpu.layernorm_forward(out, mean, rstd, inp, w, bias, N, C);
        for (size_t i = 0; i < n; i++) base[i] = got[i] = (float)(i % 7) - 3.0f;
        ops_cpu.layernorm_backward(got, dout, inp, w, mean, rstd, N, C);
        for (size_t i = 0; i < n; i++) got[i] -= base[i];
        CHECK(test_allclose(got, ref, n, OP_ATOL, OP_RTOL, "layernorm dinp (+= onto a base)"),
              "layernorm");
        free(out); free(mean); free(rstd); free(got); free(base);
    }
    npy_free(&a); npy_free(&b); npy_free(&c); npy_free(&d); npy_free(&e);
}

TEST(backward_ops_cpu_l2norm_gelu_attention) {
    Npy a, b, c, d;
    float *inp = loadf("op_l2norm_inp", &a), *dout = loadf("op_l2norm_dout", &b),
          *ref = loadf("op_l2norm_dinp", &c);
    if (inp && dout && ref) {
        int N = (int)a.shape[0], C = (int)a.shape[1];
        float *got = malloc((size_t)N * C * 4);
        ops_cpu.l2norm_backward(got, dout, inp, N, C);
        CHECK(test_allclose(got, ref, (size_t)N * C, OP_ATOL, OP_RTOL, "l2norm dinp"), "l2norm");
        // in place (dinp == dout)
        float *io = malloc((size_t)N * C * 4);
        memcpy(io, dout, (size_t)N * C * 4);
        ops_cpu.l2norm_backward(io, io, inp, N, C);
        CHECK(!memcmp(io, got, (size_t)N * C * 4), "l2norm in place == out of place");
        free(got); free(io);
    }
    npy_free(&a); npy_free(&b); npy_free(&c);
    inp = loadf("op_quickgelu_inp", &a);
    dout = loadf("op_quickgelu_dout", &b);
    ref = loadf("op_quickgelu_dinp", &c);
    if (inp && dout && ref) {
        float *got = malloc(a.count * 4);
        ops_cpu.quickgelu_backward(got, dout, inp, a.count);
        CHECK(test_allclose(got, ref, a.count, OP_ATOL, OP_RTOL, "quickgelu dinp"), "gelu");
        free(got);
    }
    npy_free(&a); npy_free(&b); npy_free(&c);
    float *qkv = loadf("op_attention_qkv", &a);
    dout = loadf("op_attention_dout", &b);
    for (int causal = 1; causal >= 0; causal--) {
        char name[64];
        snprintf(name, sizeof name, "op_attention_dqkv_causal%d", causal);
        ref = loadf(name, &d);
        if (qkv && dout && ref) {
            int B = (int)a.shape[0], T = (int)a.shape[1], C = (int)a.shape[2] / 3, NH = 2;
            float *out = malloc((size_t)B * T * C * 4), *att = malloc((size_t)B * NH * T * T * 4);
            float *got = malloc(a.count * 4);
            ops_cpu.attention_forward(out, att, qkv, B, T, C, NH, causal);
            memset(got, 0x7f, a.count * 4);   // garbage: the op must overwrite every element
            ops_cpu.attention_backward(got, dout, qkv, att, B, T, C, NH, causal);
            CHECK(test_allclose(got, ref, a.count, OP_ATOL, OP_RTOL, name), "%s", name);
            free(out); free(att); free(got);
        }
        npy_free(&d);
    }
    npy_free(&a); npy_free(&b);
}

TEST(backward_ops_cpu_copies_exact) {
    Npy a, b, c;
    float *dout = loadf("op_posadd_dout", &a), *rde = loadf("op_posadd_dembeds", &b),
          *rdp = loadf("op_posadd_dpos", &c);
    if (dout && rde && rdp) {
        int B = (int)a.shape[0], T = (int)a.shape[1], C = (int)a.shape[2];
        float *de = malloc(a.count * 4), *dp = calloc(c.count, 4);
        ops_cpu.pos_add_backward(de, dp, dout, B, T, C);
        CHECK(!memcmp(de, rde, a.count * 4), "pos_add dembeds == dout bitwise");
        CHECK(test_allclose(dp, rdp, c.count, OP_ATOL, OP_RTOL, "pos_add dpos"), "dpos");
        // dpos accumulates
        ops_cpu.pos_add_backward(de, dp, dout, B, T, C);
        for (size_t i = 0; i < c.count; i++) dp[i] *= 0.5f;
        CHECK(test_allclose(dp, rdp, c.count, OP_ATOL, OP_RTOL, "pos_add dpos twice / 2"),
              "dpos +=");
        free(de); free(dp);
    }
    npy_free(&a); npy_free(&b); npy_free(&c);
    size_t ni = 0;
    int32_t *idx = loadi("op_gather_idx", &ni);
    dout = loadf("op_gather_dout", &a);
    float *ref = loadf("op_gather_dinp", &b);
    if (idx && dout && ref) {
        int B = (int)b.shape[0], T = (int)b.shape[1], C = (int)b.shape[2];
        float *got = malloc(b.count * 4);
        memset(got, 0x7f, b.count * 4);
        ops_cpu.gather_rows_backward(got, dout, idx, B, T, C);
        CHECK(!memcmp(got, ref, b.count * 4), "gather_rows dinp bitwise");
        free(got);
    }
    free(idx);
    npy_free(&a); npy_free(&b);
    float x[5] = {1, -2, 3.5f, 0, 1e30f}, da[5], db[5];
    ops_cpu.residual_backward(da, db, x, 5);
    CHECK(!memcmp(da, x, sizeof x) && !memcmp(db, x, sizeof x), "residual da = db = dout");
}

// --- model ----------------------------------------------------------------------------------

typedef struct {
    ClipWeights w;
    Npy e, g, rde, rden, rf;
    int32_t *eot;
    int B, T, C, E;
} ModelFx;

static int model_fx(ModelFx *f) {
    memset(f, 0, sizeof *f);
    int rc = clip_weights_load(&f->w, WEIGHTS);
    CHECK(rc == 0, "load %s: %s", WEIGHTS, laic_last_error());
    size_t nb = 0;
    f->eot = loadi("model_eot", &nb);
    int ok = !rc && f->eot && loadf("model_embeds", &f->e) && loadf("model_grad", &f->g) &&
             loadf("model_dembeds", &f->rde) && loadf("model_dembeds_norm", &f->rden) &&
             loadf("model_features", &f->rf);
    if (ok) {
        f->B = (int)f->e.shape[0];
        f->T = (int)f->e.shape[1];
        f->C = (int)f->e.shape[2];
        f->E = f->w.cfg.embed_dim;
    }
    return ok;
}

static void model_fx_free(ModelFx *f) {
    npy_free(&f->e); npy_free(&f->g); npy_free(&f->rde); npy_free(&f->rden); npy_free(&f->rf);
    free(f->eot);
    clip_weights_free(&f->w);
}

TEST(backward_model_matches_autograd) {
    ModelFx f;
    if (!model_fx(&f)) {
        model_fx_free(&f);
        return;
    }
    int B = f.B, T = f.T, C = f.C, E = f.E;
    size_t ne = (size_t)B * T * C;
    ClipModel *m = clip_model_create_train(&f.w, &ops_cpu, B);
    ClipModel *inf = clip_model_create(&f.w, &ops_cpu, B);
    REQUIRE(m && inf, "create: %s", laic_last_error());
    float *feat = malloc((size_t)B * E * 4), *feat2 = malloc((size_t)B * E * 4);
    float *de = malloc(ne * 4), *g = malloc((size_t)B * E * 4);
    // the training forward is the inference forward, bit for bit
    CHECK(clip_encode_text_embeds(m, f.e.data, f.eot, B, T, feat) == 0, "fwd: %s",
          laic_last_error());
    CHECK(clip_encode_text_embeds(inf, f.e.data, f.eot, B, T, feat2) == 0, "fwd inference");
    CHECK(!memcmp(feat, feat2, (size_t)B * E * 4), "training forward == inference forward");
    CHECK(max_rel_err(feat, f.rf.data, (size_t)B * E) <= 1e-4, "features vs HF");
    memset(de, 0x7f, ne * 4);
    CHECK(clip_text_backward(m, f.g.data, de) == 0, "bwd: %s", laic_last_error());
    test_close_grad(de, f.rde.data, ne, "dE");
    // positions after each prompt's own EOT: exactly 0
    int zeros = 1;
    for (int b = 0; b < B; b++)
        for (int t = f.eot[b] + 1; t < T; t++)
            for (int c = 0; c < C; c++) zeros &= de[((size_t)b * T + t) * C + c] == 0.0f;
    CHECK(zeros, "dE is exactly 0 after each EOT");
    // through the L2 normalisation (the training loss): G' = l2norm_backward(G, F)
    ops_cpu.l2norm_backward(g, f.g.data, feat, B, E);
    CHECK(clip_text_backward(m, g, de) == 0, "bwd norm");
    test_close_grad(de, f.rden.data, ne, "dE (normalised features)");
    // exact causal truncation: prompts 1 and 3 alone (longest EOT 3 < T-1) give their own rows
    int sel[2] = {1, 3};
    float *e2 = malloc(2 * (size_t)T * C * 4), *de2 = malloc(2 * (size_t)T * C * 4);
    int32_t eot2[2];
    for (int i = 0; i < 2; i++) {
        memcpy(e2 + (size_t)i * T * C, (float *)f.e.data + (size_t)sel[i] * T * C,
               (size_t)T * C * 4);
        memcpy(g + (size_t)i * E, (float *)f.g.data + (size_t)sel[i] * E, (size_t)E * 4);
        eot2[i] = f.eot[sel[i]];
    }
    memset(de2, 0x7f, 2 * (size_t)T * C * 4);
    CHECK(clip_encode_text_embeds(m, e2, eot2, 2, T, feat) == 0, "fwd short");
    CHECK(clip_text_backward(m, g, de2) == 0, "bwd short");
    for (int i = 0; i < 2; i++)
        test_close_grad(de2 + (size_t)i * T * C, (float *)f.rde.data + (size_t)sel[i] * T * C,
                   (size_t)T * C, "dE of a truncated batch");
    // an image forward in between invalidates the saved text activations
    float *pix = calloc(3 * 32 * 32, 4);
    CHECK(clip_encode_images(m, pix, 1, feat) == 0, "image fwd");
    CHECK(clip_text_backward(m, g, de2) == -1, "backward after an image forward rejected");
    CHECK(clip_text_backward(inf, g, de2) == -1, "backward on an inference model rejected");
    CHECK(strstr(laic_last_error(), "clip_model_create_train") != NULL, "msg: %s",
          laic_last_error());
    free(pix); free(e2); free(de2);
    free(feat); free(feat2); free(de); free(g);
    clip_model_free(m);
    clip_model_free(inf);
    model_fx_free(&f);
}

// f(E) = <G, F(E)> in float32 through the forward, accumulated in double.
static double objective(ClipModel *m, const float *e, const int32_t *eot, const float *G, int B,
                        int T, int E, float *feat) {
    if (clip_encode_text_embeds(m, e, eot, B, T, feat)) return NAN;
    double s = 0;
    for (size_t i = 0; i < (size_t)B * E; i++) s += (double)G[i] * feat[i];
    return s;
}

TEST(backward_model_finite_differences) {
    ModelFx f;
    if (!model_fx(&f)) {
        model_fx_free(&f);
        return;
    }
    int B = 2, T = f.T, C = f.C, E = f.E;   // prompts 0 (EOT 13) and 1 (EOT 3)
    size_t ne = (size_t)B * T * C;
    ClipModel *m = clip_model_create_train(&f.w, &ops_cpu, B);
    REQUIRE(m, "create: %s", laic_last_error());
    float *e = malloc(ne * 4), *de = malloc(ne * 4), *feat = malloc((size_t)B * E * 4);
    const float *G = f.g.data;
    memcpy(e, f.e.data, ne * 4);
    CHECK(clip_encode_text_embeds(m, e, f.eot, B, T, feat) == 0, "fwd");
    CHECK(clip_text_backward(m, G, de) == 0, "bwd");
    double scale = test_maxabs(de, ne);
    // coordinates: the largest |dE|, then a spread over batch, position and channel
    size_t coords[8];
    size_t big = 0;
    for (size_t i = 0; i < ne; i++)
        if (fabsf(de[i]) > fabsf(de[big])) big = i;
    coords[0] = big;
    size_t picks[7][3] = {{0, 0, 0}, {0, 5, 17}, {0, 13, 31}, {1, 0, 3}, {1, 2, 20},
                          {1, 3, 9}, {0, 9, 1}};
    for (int k = 0; k < 7; k++)
        coords[k + 1] = (picks[k][0] * T + picks[k][1]) * C + picks[k][2];
    const double h = 1e-3;
    for (int k = 0; k < 8; k++) {
        size_t i = coords[k];
        float x0 = e[i];
        double fd[2];
        for (int s = 0; s < 2; s++) {
            double hh = s ? h / 2 : h;
            // the step actually taken is the float32 difference of the two points
            float xp = (float)(x0 + hh), xm = (float)(x0 - hh);
            e[i] = xp;
            double fp = objective(m, e, f.eot, G, B, T, E, feat);
            e[i] = xm;
            double fmn = objective(m, e, f.eot, G, B, T, E, feat);
            e[i] = x0;
            fd[s] = (fp - fmn) / ((double)xp - (double)xm);
        }
        printf("    coord %zu: analytic %.6f  fd(h) %.6f  fd(h/2) %.6f\n", i, de[i], fd[0],
               fd[1]);
        CHECK(fabs(fd[0] - fd[1]) <= 5e-3 * scale, "coord %zu: FD unstable (%g vs %g)", i,
              fd[0], fd[1]);
        CHECK(fabs(de[i] - fd[1]) <= 5e-3 * scale + 1e-2 * fabs(fd[1]),
              "coord %zu: analytic %g vs FD %g", i, de[i], fd[1]);
    }
    free(e); free(de); free(feat);
    clip_model_free(m);
    model_fx_free(&f);
}

// --- CLI ------------------------------------------------------------------------------------

TEST(cli_text_backward_matches_autograd) {
    char err[4096], args[2048], out[512], fo[512];
    TPATH(out, "dE.npy");
    TPATH(fo, "F.npy");
    snprintf(args, sizeof args,
             "text-backward --weights %s --embeds %s --eot %s --grad %s --out %s "
             "--features-out %s --batch 3 --device cpu --threads 2",
             WEIGHTS, fx("model_embeds"), fx("model_eot"), fx("model_grad"), out, fo);
    int st = run_laic(args, NULL, err, sizeof err);
    REQUIRE(st == 0, "exit %d: %s", st, err);
    Npy a, r, b, rf;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    CHECK(npy_read_f32(out, &a, 3, NULL) == 0, "read dE: %s", laic_last_error());
    CHECK(npy_read_f32(fo, &b, 2, NULL) == 0, "read F: %s", laic_last_error());
    float *ref = loadf("model_dembeds", &r), *reff = loadf("model_features", &rf);
    CHECK(a.data && ref && a.count == r.count, "cli dE: %zu values, want %zu", a.count, r.count);
    CHECK(b.data && reff && b.count == rf.count, "cli F: %zu values, want %zu", b.count, rf.count);
    if (a.data && ref && a.count == r.count) test_close_grad(a.data, ref, r.count, "cli dE");
    if (b.data && reff && b.count == rf.count)
        CHECK(max_rel_err(b.data, reff, rf.count) <= 1e-4, "cli F vs HF");
    npy_free(&a); npy_free(&b); npy_free(&r); npy_free(&rf);
    snprintf(args, sizeof args,
             "text-backward --weights %s --embeds %s --eot %s --grad %s --out %s --normalize",
             WEIGHTS, fx("model_embeds"), fx("model_eot"), fx("model_grad"), out);
    st = run_laic(args, NULL, err, sizeof err);
    REQUIRE(st == 0, "exit %d: %s", st, err);
    memset(&a, 0, sizeof a);
    CHECK(npy_read_f32(out, &a, 3, NULL) == 0, "read dE: %s", laic_last_error());
    ref = loadf("model_dembeds_norm", &r);
    CHECK(a.data && ref && a.count == r.count, "cli dE --normalize: %zu values, want %zu", a.count, r.count);
    if (a.data && ref && a.count == r.count) test_close_grad(a.data, ref, r.count, "cli dE --normalize");
    npy_free(&a); npy_free(&r);
}

static void expect_fail(const char *args, int code, const char *needle, const char *out) {
    char err[4096];
    int st = run_laic(args, NULL, err, sizeof err);
    CHECK(st == code, "'%s': exit %d, want %d (%s)", args, st, code, err);
    CHECK(count_lines(err) == 1, "'%s': %d stderr lines: %s", args, count_lines(err), err);
    CHECK(strstr(err, needle) != NULL, "'%s': message lacks '%s': %s", args, needle, err);
    CHECK(!file_exists(out), "'%s': output %s left behind", args, out);
}

TEST(cli_text_backward_bad_inputs) {
    char args[2048], out[512], bad[512], bad2[512];
    TPATH(out, "bad_dE.npy");
    TPATH(bad, "bad_eot.npy");
    TPATH(bad2, "bad_emb.npy");
    // EOT position outside [0,L)
    int64_t eot[4] = {13, 3, 14, 0};
    size_t s1[1] = {4};
    REQUIRE(npy_write(bad, NPY_I64, 1, s1, eot) == 0, "write");
    snprintf(args, sizeof args, "text-backward --weights %s --embeds %s --eot %s --grad %s "
             "--out %s", WEIGHTS, fx("model_embeds"), bad, fx("model_grad"), out);
    expect_fail(args, 1, "bad_eot.npy: EOT position 14", out);
    // EOT count != B
    size_t s3[1] = {3};
    REQUIRE(npy_write(bad, NPY_I64, 1, s3, eot) == 0, "write");
    expect_fail(args, 1, "bad_eot.npy", out);
    // embeddings of the wrong width
    float z[2 * 3 * 16] = {0};
    size_t se[3] = {2, 3, 16};
    REQUIRE(npy_write(bad2, NPY_F32, 3, se, z) == 0, "write");
    snprintf(args, sizeof args, "text-backward --weights %s --embeds %s --eot %s --grad %s "
             "--out %s", WEIGHTS, bad2, fx("model_eot"), fx("model_grad"), out);
    expect_fail(args, 1, "bad_emb.npy: expected embeddings [B,L,32]", out);
    // grad of the wrong shape (the eot file as grad: [4] is not [4,32])
    snprintf(args, sizeof args, "text-backward --weights %s --embeds %s --eot %s --grad %s "
             "--out %s", WEIGHTS, fx("model_embeds"), fx("model_eot"), fx("model_eot"), out);
    expect_fail(args, 1, "model_eot.npy", out);
    // missing option
    snprintf(args, sizeof args, "text-backward --weights %s --embeds %s --eot %s --out %s",
             WEIGHTS, fx("model_embeds"), fx("model_eot"), out);
    expect_fail(args, 2, "--grad", out);
}
