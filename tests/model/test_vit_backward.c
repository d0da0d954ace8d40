/*
 * test_vit_backward.c — the image-encoder backward with weight gradients (issue 16) on the tiny
 * CLIP: every visual parameter's gradient and the pixel gradient against PyTorch autograd
 * (tests/fixtures/vit/model_*, scripts/make_vit_fixtures.py: HF's vision modules in float64),
 * central finite differences on sampled parameter and pixel coordinates, recompute == no
 * recompute bitwise, full_last_k's subset, and `laic image-backward` (goldens, bad inputs).
 *
 * Tolerances, per tensor, and why:
 * - gradients (2 blocks, fp32 vs float64): max|a-r| / max|r| <= 1e-4 and elementwise
 *   |a-r| <= 1e-4 max|r| + 1e-3 |r| (the text backward's rule: an element's error is relative to
 *   its tensor's scale). Observed ≤ 1e-6; a wrong term (a missing LayerNorm correction, a
 *   transposed weight gradient, a dropped bias sum) moves a tensor by O(10%).
 * - finite differences of f = <G, F> evaluated in fp32: central, h = 1e-3 (2e-2 for pixels,
 *   whose gradients are ~100x smaller than the parameters') and h/2 must agree
 *   within 5e-3 max|grad of that tensor| (else the estimate itself is unreliable) and the
 *   analytic value must match the h/2 estimate within 5e-3 max|grad| + 1e-2 |fd| (truncation
 *   O(h²) ~ 1e-4 relative, fp32 rounding of f ~ 1e-3 absolute at h = 1e-3).
 * - recompute on/off, full_last_k vs all, the training forward vs the inference forward: the
 *   same ops on the same values in the same order, so bitwise.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/clip.h"
#include "cpu/cpu_ops.h"
#include "io/err.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "ops.h"
#include "../test.h"

#define WEIGHTS "tests/fixtures/clip/tiny_f16.safetensors"
#define FIXDIR "tests/fixtures/vit"
#define GOLDEN "tests/fixtures/vit/model_grads.safetensors"
static const char *fx(const char *name) { return test_fixture_path(FIXDIR, name); }
static float *loadf(const char *name, Npy *a) { return test_fixture_f32(FIXDIR, name, a); }

typedef struct {
    ClipWeights w;
    Npy pix, g, feat, dpix, dpixn;
    int B, E, S;
} Fx;

static int fx_load(Fx *f) {
    memset(f, 0, sizeof *f);
    int rc = clip_weights_load(&f->w, WEIGHTS);
    CHECK(rc == 0, "load %s: %s", WEIGHTS, laic_last_error());
    int ok = !rc && loadf("model_pixels", &f->pix) && loadf("model_grad", &f->g) &&
             loadf("model_features", &f->feat) && loadf("model_dpixels", &f->dpix) &&
             loadf("model_dpixels_norm", &f->dpixn);
    if (ok) {
        f->B = (int)f->pix.shape[0];
        f->E = f->w.cfg.embed_dim;
        f->S = f->w.cfg.image_size;
    }
    return ok;
}

static void fx_free(Fx *f) {
    npy_free(&f->pix); npy_free(&f->g); npy_free(&f->feat); npy_free(&f->dpix);
    npy_free(&f->dpixn);
    clip_weights_free(&f->w);
}

// Every tensor of the model's trainable gradients (host arena copy `grads`) against the golden
// file, in file orientation (through clip_trainable_save, which the CLI uses too). Returns the
// largest relative error seen.
static double check_against_golden(const ClipModel *m, const float *grads, const char *golden,
                                   double scale) {
    char path[512];
    snprintf(path, sizeof path, "%s", test_path("grads_check.safetensors"));
    if (!CHECK(clip_trainable_save(m, grads, path, NULL, 0) == 0, "save: %s", laic_last_error()))
        return 1;
    StFile a, r;
    if (!CHECK(st_open(&a, path) == 0, "open %s: %s", path, laic_last_error())) return 1;
    if (!CHECK(st_open(&r, golden) == 0, "open %s: %s", golden, laic_last_error())) {
        st_close(&a);
        return 1;
    }
    double worst = 0;
    const ClipTensorInfo *info;
    int n = clip_trainable_tensors(m, &info);
    for (int i = 0; i < n; i++) {
        const StTensor *ta = st_find(&a, info[i].name), *tr = st_find(&r, info[i].name);
        if (!CHECK(ta && tr, "tensor %s missing", info[i].name)) continue;
        if (!CHECK(ta->numel == tr->numel && ta->ndim == tr->ndim, "%s: shape", info[i].name))
            continue;
        float *x = mallocCheck(ta->numel * 4), *y = mallocCheck(tr->numel * 4);
        memcpy(x, ta->data, ta->numel * 4);
        memcpy(y, tr->data, tr->numel * 4);
        for (size_t k = 0; k < tr->numel; k++) y[k] = (float)(y[k] * scale);
        test_close_grad(x, y, ta->numel, info[i].name);
        worst = fmax(worst, max_rel_err(x, y, ta->numel));
        free(x);
        free(y);
    }
    st_close(&a);
    st_close(&r);
    return worst;
}

static ClipModel *make_model(const Fx *f, ClipVisionTrainSpec spec) {
    ClipModel *m = clip_model_create_vision_train(&f->w, &ops_cpu, f->B, &spec, NULL, 7);
    CHECK(m != NULL, "create: %s", laic_last_error());
    return m;
}

static float *grads_of(ClipModel *m) {
    float *g = mallocCheck(clip_trainable_numel(m) * sizeof(float));
    ops_cpu.copy(g, clip_trainable_grads(m), clip_trainable_numel(m) * sizeof(float));
    return g;
}

TEST(vit_backward_all_matches_autograd) {
    Fx f;
    if (!fx_load(&f)) {
        fx_free(&f);
        return;
    }
    const int B = f.B, E = f.E;
    const size_t npix = (size_t)B * 3 * f.S * f.S;
    ClipVisionTrainSpec spec = clip_spec_all();
    spec.dpixels = 1;
    ClipModel *m = make_model(&f, spec), *inf = clip_model_create(&f.w, &ops_cpu, B);
    REQUIRE(m && inf, "models");
    const ClipTensorInfo *info;
    int nt = clip_trainable_tensors(m, &info);
    CHECK(nt == 5 + 12 * f.w.cfg.vision_layers + 3, "every visual tensor trainable (%d)", nt);
    float *feat = mallocCheck((size_t)B * E * 4), *feat2 = mallocCheck((size_t)B * E * 4);
    float *dp = mallocCheck(npix * 4), *g = mallocCheck((size_t)B * E * 4);
    CHECK(clip_encode_images(m, f.pix.data, B, feat) == 0, "fwd: %s", laic_last_error());
    CHECK(clip_encode_images(inf, f.pix.data, B, feat2) == 0, "fwd inference");
    CHECK(!memcmp(feat, feat2, (size_t)B * E * 4), "training forward == inference forward");
    CHECK(max_rel_err(feat, f.feat.data, (size_t)B * E) <= 1e-4, "features vs HF");
    memset(dp, 0x7f, npix * 4);
    CHECK(clip_image_backward(m, f.g.data, dp) == 0, "bwd: %s", laic_last_error());
    float *g1 = grads_of(m);
    double worst = check_against_golden(m, g1, GOLDEN, 1.0);
    test_close_grad(dp, f.dpix.data, npix, "d pixels");
    printf("    worst tensor: %.3g\n", worst);
    // gradients accumulate: a second backward of the same forward doubles them
    CHECK(clip_image_backward(m, f.g.data, NULL) == 0, "bwd again");
    float *g2 = grads_of(m);
    int dbl = 1;
    for (size_t i = 0; i < clip_trainable_numel(m); i++) dbl &= g2[i] == 2.0f * g1[i];
    CHECK(dbl, "a second backward adds the same gradients (+=, bitwise 2x)");
    // through the L2 normalisation: G' = l2norm_backward(G, F)
    ops_cpu.l2norm_backward(g, f.g.data, feat, B, E);
    clip_zero_grad(m);
    float *zero = grads_of(m);
    CHECK(test_maxabs(zero, clip_trainable_numel(m)) == 0, "clip_zero_grad zeroes every gradient");
    CHECK(clip_image_backward(m, g, dp) == 0, "bwd norm");
    test_close_grad(dp, f.dpixn.data, npix, "d pixels (normalised features)");
    // wrong uses
    ClipModel *inf2 = inf;
    CHECK(clip_image_backward(inf2, f.g.data, NULL) == -1, "backward on an inference model refused");
    CHECK(strstr(laic_last_error(), "clip_model_create_vision_train") != NULL, "msg: %s",
          laic_last_error());
    int32_t tok[77] = {49406, 49407};
    CHECK(clip_encode_text(m, tok, 1, 77, feat) == -1, "text on a vision-training model refused");
    free(feat); free(feat2); free(dp); free(g); free(g1); free(g2); free(zero);
    clip_model_free(m);
    clip_model_free(inf);
    fx_free(&f);
}

TEST(vit_backward_recompute_and_subsets_bitwise) {
    Fx f;
    if (!fx_load(&f)) {
        fx_free(&f);
        return;
    }
    const int B = f.B, E = f.E, NL = f.w.cfg.vision_layers;
    float *feat = mallocCheck((size_t)B * E * 4), *feat2 = mallocCheck((size_t)B * E * 4);
    ClipVisionTrainSpec all = clip_spec_all(), allr = clip_spec_all();
    allr.recompute = 1;
    ClipModel *m = make_model(&f, all), *mr = make_model(&f, allr);
    REQUIRE(m && mr, "models");
    CHECK(clip_encode_images(m, f.pix.data, B, feat) == 0, "fwd");
    CHECK(clip_encode_images(mr, f.pix.data, B, feat2) == 0, "fwd recompute");
    CHECK(!memcmp(feat, feat2, (size_t)B * E * 4), "recompute forward bitwise");
    CHECK(clip_image_backward(m, f.g.data, NULL) == 0, "bwd");
    CHECK(clip_image_backward(mr, f.g.data, NULL) == 0, "bwd recompute");
    float *ga = grads_of(m), *gr = grads_of(mr);
    CHECK(clip_trainable_numel(m) == clip_trainable_numel(mr) &&
              !memcmp(ga, gr, clip_trainable_numel(m) * 4),
          "recompute gives the same gradients bitwise");
    // full_last_k (k = NL-1: the last block, ln_post, proj; k = NL: the head alone): the same
    // values as the all-model's tensors of the same names, bitwise
    const ClipTensorInfo *ia;
    int na = clip_trainable_tensors(m, &ia);
    for (int k = NL - 1; k <= NL; k++) {
        ClipModel *mk = make_model(&f, clip_spec_full_last_k(k));
        if (!mk) continue;
        const ClipTensorInfo *ik;
        int nk = clip_trainable_tensors(mk, &ik);
        CHECK(nk == 12 * (NL - k) + 3, "full_last_k %d: %d tensors", k, nk);
        CHECK(clip_encode_images(mk, f.pix.data, B, feat2) == 0, "fwd k");
        CHECK(!memcmp(feat, feat2, (size_t)B * E * 4), "full_last_k %d forward bitwise", k);
        CHECK(clip_image_backward(mk, f.g.data, NULL) == 0, "bwd k: %s", laic_last_error());
        float *gk = grads_of(mk);
        int same = 1, found = 0;
        for (int i = 0; i < nk; i++)
            for (int j = 0; j < na; j++)
                if (!strcmp(ik[i].name, ia[j].name)) {
                    found++;
                    same &= !memcmp(gk + ik[i].offset, ga + ia[j].offset, ik[i].numel * 4);
                }
        CHECK(found == nk && same, "full_last_k %d gradients == the all-model's, bitwise", k);
        check_against_golden(mk, gk, GOLDEN, 1.0);   // and so autograd's
        free(gk);
        clip_model_free(mk);
    }
    free(feat); free(feat2); free(ga); free(gr);
    clip_model_free(m);
    clip_model_free(mr);
    fx_free(&f);
}

// f = <G, F> in float32 through the training model's forward, accumulated in double.
static double objective(ClipModel *m, const float *pix, const float *G, int B, int E,
                        float *feat) {
    if (clip_encode_images(m, pix, B, feat)) return NAN;
    double s = 0;
    for (size_t i = 0; i < (size_t)B * E; i++) s += (double)G[i] * feat[i];
    return s;
}

TEST(vit_backward_finite_differences) {
    Fx f;
    if (!fx_load(&f)) {
        fx_free(&f);
        return;
    }
    const int B = f.B, E = f.E;
    const size_t npix = (size_t)B * 3 * f.S * f.S;
    ClipVisionTrainSpec spec = clip_spec_all();
    spec.dpixels = 1;
    ClipModel *m = make_model(&f, spec);
    REQUIRE(m, "model");
    const size_t n = clip_trainable_numel(m);
    float *theta = mallocCheck(n * 4), *feat = mallocCheck((size_t)B * E * 4);
    float *pix = mallocCheck(npix * 4), *dp = mallocCheck(npix * 4);
    memcpy(pix, f.pix.data, npix * 4);
    CHECK(clip_trainable_download(m, theta) == 0, "download");
    CHECK(objective(m, pix, f.g.data, B, E, feat) == objective(m, pix, f.g.data, B, E, feat),
          "objective repeatable");
    CHECK(clip_image_backward(m, f.g.data, dp) == 0, "bwd");
    float *grad = grads_of(m);
    const ClipTensorInfo *info;
    int nt = clip_trainable_tensors(m, &info);
    // two coordinates (the largest |grad| and one spread) in a set of tensors, then pixels
    const char *names[] = {"visual.conv1.weight", "visual.class_embedding",
                           "visual.positional_embedding", "visual.ln_pre.weight",
                           "visual.transformer.resblocks.0.attn.in_proj_weight",
                           "visual.transformer.resblocks.0.ln_1.bias",
                           "visual.transformer.resblocks.1.mlp.c_fc.bias",
                           "visual.transformer.resblocks.1.attn.out_proj.weight",
                           "visual.ln_post.bias", "visual.proj"};
    const double h = 1e-3;
    for (size_t q = 0; q < sizeof names / sizeof names[0] + 1; q++) {
        const int is_pix = q == sizeof names / sizeof names[0];
        float *x = is_pix ? pix : theta, *gx = is_pix ? dp : grad;
        size_t off = 0, cnt = npix;
        if (!is_pix) {
            int t = -1;
            for (int i = 0; i < nt; i++)
                if (!strcmp(info[i].name, names[q])) t = i;
            if (!CHECK(t >= 0, "tensor %s", names[q])) continue;
            off = info[t].offset;
            cnt = info[t].numel;
        }
        double scale = test_maxabs(gx + off, cnt);
        size_t big = off;
        for (size_t i = off; i < off + cnt; i++)
            if (fabsf(gx[i]) > fabsf(gx[big])) big = i;
        size_t coords[2] = {big, off + (cnt * 7) / 13};
        for (int k = 0; k < 2; k++) {
            size_t i = coords[k];
            float x0 = x[i];
            double fd[2];
            for (int s = 0; s < 2; s++) {
                // pixels: gradients ~0.07 against f ~ 10, so a wider step keeps the fp32 noise
                // of f (~1e-6 / h) under the tolerance; f is smooth in the pixels
                double hh = (is_pix ? 20 * h : h) / (s ? 2 : 1);
                float xp = (float)(x0 + hh), xm = (float)(x0 - hh);
                double fp, fm;
                x[i] = xp;
                if (!is_pix) clip_trainable_upload(m, theta);
                fp = objective(m, pix, f.g.data, B, E, feat);
                x[i] = xm;
                if (!is_pix) clip_trainable_upload(m, theta);
                fm = objective(m, pix, f.g.data, B, E, feat);
                x[i] = x0;
                fd[s] = (fp - fm) / ((double)xp - (double)xm);
            }
            if (!is_pix) clip_trainable_upload(m, theta);
            printf("    %-52s [%zu]: analytic % .6f  fd(h) % .6f  fd(h/2) % .6f\n",
                   is_pix ? "pixels" : names[q], i - off, gx[i], fd[0], fd[1]);
            CHECK(fabs(fd[0] - fd[1]) <= 5e-3 * scale, "%s[%zu]: FD unstable (%g vs %g)",
                  is_pix ? "pixels" : names[q], i - off, fd[0], fd[1]);
            CHECK(fabs(gx[i] - fd[1]) <= 5e-3 * scale + 1e-2 * fabs(fd[1]),
                  "%s[%zu]: analytic %g vs FD %g", is_pix ? "pixels" : names[q], i - off, gx[i],
                  fd[1]);
        }
    }
    free(theta); free(feat); free(pix); free(dp); free(grad);
    clip_model_free(m);
    fx_free(&f);
}

// --- CLI ------------------------------------------------------------------------------------

TEST(cli_image_backward_matches_autograd) {
    char err[4096], args[2048], out[512], dpo[512], fo[512];
    snprintf(out, sizeof out, "%s", test_path("grads.safetensors"));
    snprintf(dpo, sizeof dpo, "%s", test_path("dP.npy"));
    snprintf(fo, sizeof fo, "%s", test_path("F.npy"));
    snprintf(args, sizeof args,
             "image-backward --weights %s --pixels %s --grad %s --out %s --dpixels %s "
             "--features-out %s --batch 2 --device cpu --threads 2",
             WEIGHTS, fx("model_pixels"), fx("model_grad"), out, dpo, fo);
    int st = run_laic(args, NULL, err, sizeof err);
    REQUIRE(st == 0, "exit %d: %s", st, err);
    // batches of 2 + 1 accumulate into one set of gradients: the golden of all 3 images
    StFile a, r;
    REQUIRE(st_open(&a, out) == 0, "open %s: %s", out, laic_last_error());
    REQUIRE(st_open(&r, GOLDEN) == 0, "open golden: %s", laic_last_error());
    CHECK(a.n_tensors == r.n_tensors, "%d tensors, golden %d", a.n_tensors, r.n_tensors);
    for (int i = 0; i < r.n_tensors; i++) {
        const StTensor *tr = &r.tensors[i], *ta = st_find(&a, tr->name);
        if (!CHECK(ta != NULL, "%s missing", tr->name)) continue;
        if (!CHECK(ta->ndim == tr->ndim && !memcmp(ta->shape, tr->shape, sizeof ta->shape) &&
                       !strcmp(ta->dtype, "F32"),
                   "%s: shape/dtype", tr->name))
            continue;
        float *x = mallocCheck(ta->numel * 4), *y = mallocCheck(tr->numel * 4);
        memcpy(x, ta->data, ta->numel * 4);
        memcpy(y, tr->data, tr->numel * 4);
        test_close_grad(x, y, tr->numel, tr->name);
        free(x);
        free(y);
    }
    st_close(&a);
    st_close(&r);
    Npy d, rd, ff, rf;
    memset(&d, 0, sizeof d);
    memset(&ff, 0, sizeof ff);
    CHECK(npy_read_f32(dpo, &d, 4, NULL) == 0, "read dP: %s", laic_last_error());
    CHECK(npy_read_f32(fo, &ff, 2, NULL) == 0, "read F: %s", laic_last_error());
    float *ref = loadf("model_dpixels", &rd), *reff = loadf("model_features", &rf);
    if (d.data && ref && d.count == rd.count) test_close_grad(d.data, ref, rd.count, "cli d pixels");
    if (ff.data && reff && ff.count == rf.count)
        CHECK(max_rel_err(ff.data, reff, rf.count) <= 1e-4, "cli F vs HF");
    npy_free(&d); npy_free(&rd); npy_free(&ff); npy_free(&rf);
    // --normalize: the gradient of <G, F/||F||>
    snprintf(args, sizeof args,
             "image-backward --weights %s --pixels %s --grad %s --out %s --dpixels %s "
             "--normalize",
             WEIGHTS, fx("model_pixels"), fx("model_grad"), out, dpo);
    st = run_laic(args, NULL, err, sizeof err);
    REQUIRE(st == 0, "exit %d: %s", st, err);
    memset(&d, 0, sizeof d);
    CHECK(npy_read_f32(dpo, &d, 4, NULL) == 0, "read dP");
    ref = loadf("model_dpixels_norm", &rd);
    if (d.data && ref && d.count == rd.count)
        test_close_grad(d.data, ref, rd.count, "cli d pixels --normalize");
    npy_free(&d); npy_free(&rd);
}

static void expect_fail(const char *args, int code, const char *needle, const char *out,
                        const char *out2) {
    char err[4096];
    int st = run_laic(args, NULL, err, sizeof err);
    CHECK(st == code, "'%s': exit %d, want %d (%s)", args, st, code, err);
    CHECK(count_lines(err) == 1, "'%s': %d stderr lines: %s", args, count_lines(err), err);
    CHECK(strstr(err, needle) != NULL, "'%s': message lacks '%s': %s", args, needle, err);
    CHECK(!file_exists(out), "'%s': output %s left behind", args, out);
    CHECK(!out2 || !file_exists(out2), "'%s': output %s left behind", args, out2);
}

TEST(cli_image_backward_bad_inputs) {
    char args[2048], out[512], dpo[512], bad[512], badg[512];
    snprintf(out, sizeof out, "%s", test_path("bad_grads.safetensors"));
    snprintf(dpo, sizeof dpo, "%s", test_path("bad_dP.npy"));
    snprintf(bad, sizeof bad, "%s", test_path("bad_pix.npy"));
    snprintf(badg, sizeof badg, "%s", test_path("bad_g.npy"));
    // pixels of the wrong size (16x16 for a 32x32 model)
    static float z[2 * 3 * 16 * 16];
    size_t s4[4] = {2, 3, 16, 16};
    REQUIRE(npy_write(bad, NPY_F32, 4, s4, z) == 0, "write");
    snprintf(args, sizeof args, "image-backward --weights %s --pixels %s --grad %s --out %s "
             "--dpixels %s", WEIGHTS, bad, fx("model_grad"), out, dpo);
    expect_fail(args, 1, "bad_pix.npy: expected pixels [B,3,32,32]", out, dpo);
    // a NaN pixel
    Npy p;
    REQUIRE(npy_read_f32(fx("model_pixels"), &p, 4, NULL) == 0, "read");
    ((float *)p.data)[1234] = NAN;
    REQUIRE(npy_write(bad, NPY_F32, 4, p.shape, p.data) == 0, "write");
    npy_free(&p);
    expect_fail(args, 1, "bad_pix.npy: non-finite value", out, dpo);
    // grad rows != images
    float gz[2 * 32] = {0};
    size_t s2[2] = {2, 32};
    REQUIRE(npy_write(badg, NPY_F32, 2, s2, gz) == 0, "write");
    snprintf(args, sizeof args, "image-backward --weights %s --pixels %s --grad %s --out %s "
             "--dpixels %s", WEIGHTS, fx("model_pixels"), badg, out, dpo);
    expect_fail(args, 1, "bad_g.npy", out, dpo);
    // a NaN in the gradient
    float gn[3 * 32] = {0};
    gn[40] = NAN;
    size_t s3[2] = {3, 32};
    REQUIRE(npy_write(badg, NPY_F32, 2, s3, gn) == 0, "write");
    expect_fail(args, 1, "bad_g.npy: non-finite value", out, dpo);
    // grad of the wrong width
    size_t s5[2] = {3, 31};
    REQUIRE(npy_write(badg, NPY_F32, 2, s5, gn) == 0, "write");
    expect_fail(args, 1, "bad_g.npy", out, dpo);
    // missing option
    snprintf(args, sizeof args, "image-backward --weights %s --pixels %s --out %s", WEIGHTS,
             fx("model_pixels"), out);
    expect_fail(args, 2, "--grad", out, NULL);
    // an output directory that does not exist: nothing half-written
    snprintf(args, sizeof args, "image-backward --weights %s --pixels %s --grad %s --out %s "
             "--dpixels /nonexistent-dir/dP.npy", WEIGHTS, fx("model_pixels"), fx("model_grad"),
             out);
    expect_fail(args, 1, "/nonexistent-dir/dP.npy", out, NULL);
}
