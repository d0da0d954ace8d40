/*
 * test_clip.c — the CPU CLIP forward (host/model/clip.c) and `laic encode-images` / `encode-text`
 * against HF transformers goldens of the tiny preset (tests/fixtures/clip/, written by
 * scripts/make_fixtures.py: random-init CLIPModel, quick_gelu, weights rounded to F16 on both
 * sides, goldens computed in float64).
 *
 * Tolerance for features (fp32 vs float64 golden): max|a-r|/max|r| <= 1e-4 per tensor and
 * elementwise |a-r| <= 1e-5 + 1e-4*|r|. Why: 2+2 blocks of float32 sgemm/LN/softmax give ~1e-6
 * relative error; a wrong op (mask, scale, missing bias, wrong EOT) moves features by O(10%).
 * Batch-composition checks (a text alone vs inside a longer batch) use the same bound, since
 * sgemm may block differently for different M; repeated runs must be bitwise identical.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/clip.h"
#include "model/image.h"
#include "io/err.h"
#include "io/npy.h"
#include "ops.h"
#include "../test.h"

#define WEIGHTS "tests/fixtures/clip/tiny_f16.safetensors"
#define ATOL 1e-5
#define RTOL 1e-4
#define RELMAX 1e-4

// test_path() hands out a ring of 8 buffers that run_laic() also uses: tests keep copies.
#define TPATH(buf, name) snprintf(buf, sizeof buf, "%s", test_path(name))

#define FIXDIR "tests/fixtures/clip"
static const char *fx(const char *name) { return test_fixture_path(FIXDIR, name); }
static float *loadf(const char *name, Npy *a) { return test_fixture_f32(FIXDIR, name, a); }
static int32_t *loadi(const char *name, size_t *rows, size_t *cols) {
    return test_fixture_i32(FIXDIR, name, NULL, rows, cols);
}

static int close_feat(const float *got, const float *ref, size_t n, const char *what) {
    int ok = CHECK(test_allclose(got, ref, n, ATOL, RTOL, what), "%s elementwise", what);
    double rel = max_rel_err(got, ref, n);
    printf("    %s: max|a-r|/max|r| = %.3g\n", what, rel);
    return ok & CHECK(rel <= RELMAX, "%s: max|a-r|/max|r| = %.3g > %.0g", what, rel, RELMAX);
}

static int close_to(const float *got, const char *name, size_t n) {
    Npy r;
    const float *ref = loadf(name, &r);
    int ok = ref && CHECK(r.count == n, "%s: %zu values, expected %zu", name, r.count, n) &&
             close_feat(got, ref, n, name);
    npy_free(&r);
    return ok;
}

// Loads the tiny weights; SKIPs nothing: the fixture is committed, so a failure is a failure.
static int load_tiny(ClipWeights *w) {
    memset(w, 0, sizeof *w);
    int rc = clip_weights_load(w, WEIGHTS);
    CHECK(rc == 0, "load %s: %s", WEIGHTS, laic_last_error());
    return rc == 0;
}

// --- library ------------------------------------------------------------------------------

TEST(clip_cpu_images_match_hf) {
    ClipWeights w;
    if (!load_tiny(&w)) return;
    Npy px;
    float *pix = loadf("pixels", &px);
    ClipModel *m = clip_model_create(&w, &ops_cpu, 8);
    REQUIRE(m, "create: %s", laic_last_error());
    if (pix) {
        int B = (int)px.shape[0], E = w.cfg.embed_dim;
        float *out = malloc((size_t)B * E * sizeof(float)), *out2 = malloc((size_t)B * E * 4);
        CHECK(clip_encode_images(m, pix, B, out) == 0, "encode: %s", laic_last_error());
        close_to(out, "image_features", (size_t)B * E);
        // rerun: bitwise identical (no state leaks between calls)
        CHECK(clip_encode_images(m, pix, B, out2) == 0, "encode again");
        CHECK(!memcmp(out, out2, (size_t)B * E * 4), "second run is bitwise identical");
        // one image alone equals its row in the batch
        CHECK(clip_encode_images(m, pix + 2 * 3 * 32 * 32, 1, out2) == 0, "encode one");
        close_feat(out2, out + 2 * E, (size_t)E, "image 2 alone vs in batch");
        free(out);
        free(out2);
    }
    npy_free(&px);
    clip_model_free(m);
    clip_weights_free(&w);
}

TEST(clip_cpu_text_match_hf) {
    ClipWeights w;
    if (!load_tiny(&w)) return;
    size_t N = 0, L = 0, Ns = 0, Ls = 0;
    int32_t *tok = loadi("tokens", &N, &L), *sh = loadi("tokens_short", &Ns, &Ls);
    ClipModel *m = clip_model_create(&w, &ops_cpu, 8);
    REQUIRE(m, "create: %s", laic_last_error());
    int E = w.cfg.embed_dim;
    if (tok && sh) {
        float *out = malloc(N * E * sizeof(float)), *one = malloc(E * sizeof(float));
        CHECK(clip_encode_text(m, tok, (int)N, (int)L, out) == 0, "encode: %s",
              laic_last_error());
        close_to(out, "text_features", N * E);
        // longest EOT in this batch is 9: the run is truncated to 10 positions
        CHECK(clip_encode_text(m, sh, (int)Ns, (int)Ls, out) == 0, "encode short");
        close_to(out, "text_features_short", Ns * E);
        // the same rows given with only their first 10 columns (L < context)
        int32_t *cut = malloc(Ns * 10 * sizeof(int32_t));
        for (size_t b = 0; b < Ns; b++) memcpy(cut + b * 10, sh + b * Ls, 10 * sizeof(int32_t));
        float *out2 = malloc(Ns * E * sizeof(float));
        CHECK(clip_encode_text(m, cut, (int)Ns, 10, out2) == 0, "encode L=10");
        CHECK(!memcmp(out, out2, Ns * E * sizeof(float)), "L=10 input is bitwise the same");
        // each row alone (EOT 1 .. 76, so T from 2 to 77) equals its row in the batch
        Npy ref;
        const float *r = loadf("text_features", &ref);
        for (int row = 0; r && row < (int)N; row++) {
            CHECK(clip_encode_text(m, tok + row * L, 1, (int)L, one) == 0, "encode one");
            char what[64];
            snprintf(what, sizeof what, "text %d alone", row);
            close_feat(one, r + row * E, (size_t)E, what);
        }
        npy_free(&ref);
        free(cut);
        free(out2);
        free(out);
        free(one);
    }
    free(tok);
    free(sh);
    clip_model_free(m);
    clip_weights_free(&w);
}

TEST(clip_cpu_text_embeds_match_hf) {
    ClipWeights w;
    if (!load_tiny(&w)) return;
    Npy em;
    float *emb = loadf("embeds", &em);
    size_t ne = 0, c1 = 0;
    int32_t *eot = loadi("embeds_eot", &ne, &c1);
    ClipModel *m = clip_model_create(&w, &ops_cpu, 4);
    REQUIRE(m, "create: %s", laic_last_error());
    if (emb && eot) {
        int B = (int)em.shape[0], T = (int)em.shape[1], E = w.cfg.embed_dim;
        float *out = malloc((size_t)B * E * sizeof(float));
        CHECK(clip_encode_text_embeds(m, emb, eot, B, T, out) == 0, "encode: %s",
              laic_last_error());
        close_to(out, "embeds_features", (size_t)B * E);
        // token embeddings through this entry point equal clip_encode_text
        size_t N = 0, L = 0;
        int32_t *tok = loadi("tokens_short", &N, &L);
        if (tok) {
            int C = w.cfg.text_width;
            float *te = malloc(N * L * C * sizeof(float)), *a = malloc(N * E * 4),
                  *b = malloc(N * E * 4);
            int32_t *pos = malloc(N * sizeof(int32_t));
            for (size_t i = 0; i < N; i++) {
                pos[i] = 0;
                for (size_t t = 0; t < L; t++) {
                    if (tok[i * L + t] > tok[i * L + pos[i]]) pos[i] = (int32_t)t;
                    memcpy(te + (i * L + t) * C, w.tok_emb + (size_t)tok[i * L + t] * C,
                           C * sizeof(float));
                }
            }
            CHECK(clip_encode_text(m, tok, (int)N, (int)L, a) == 0, "tokens");
            CHECK(clip_encode_text_embeds(m, te, pos, (int)N, (int)L, b) == 0, "embeds");
            CHECK(!memcmp(a, b, N * E * 4), "embeds entry point == token entry point (bitwise)");
            free(te); free(a); free(b); free(pos); free(tok);
        }
        free(out);
    }
    npy_free(&em);
    free(eot);
    clip_model_free(m);
    clip_weights_free(&w);
}

TEST(clip_cpu_rejects_bad_calls) {
    ClipWeights w;
    if (!load_tiny(&w)) return;
    ClipModel *m = clip_model_create(&w, &ops_cpu, 2);
    REQUIRE(m, "create: %s", laic_last_error());
    int E = w.cfg.embed_dim, L = w.cfg.context_length;
    float *pix = calloc(3 * 3 * 32 * 32, sizeof(float)), out[3 * 64];
    int32_t tok[3 * 77];
    memset(tok, 0, sizeof tok);
    tok[0] = 49406;
    tok[1] = 49407;
    // a batch larger than max_batch is rejected, not reallocated
    CHECK(clip_encode_images(m, pix, 3, out) == -1, "B > max_batch rejected");
    CHECK(strstr(laic_last_error(), "max_batch") != NULL, "message: %s", laic_last_error());
    CHECK(clip_encode_text(m, tok, 3, L, out) == -1, "text B > max_batch rejected");
    // token id outside the vocabulary
    tok[2] = 49408;
    CHECK(clip_encode_text(m, tok, 1, L, out) == -1, "id >= vocab rejected");
    CHECK(strstr(laic_last_error(), "vocabulary") != NULL, "message: %s", laic_last_error());
    tok[2] = -1;
    CHECK(clip_encode_text(m, tok, 1, L, out) == -1, "negative id rejected");
    CHECK(clip_encode_text(m, tok, 1, L + 1, out) == -1, "L > context rejected");
    int32_t eot[2] = {3, 12};
    CHECK(clip_encode_text_embeds(m, pix, eot, 2, 12, out) == -1, "EOT >= T rejected");
    CHECK(clip_model_create(&w, &ops_cpu, 0) == NULL, "max_batch 0 rejected");
    (void)E;
    free(pix);
    clip_model_free(m);
    clip_weights_free(&w);
}

// --- CLI ----------------------------------------------------------------------------------

// Reads a float32 2-D .npy written by laic; NULL after a failed CHECK.
static float *read_out(const char *path, Npy *a, size_t rows, size_t cols) {
    long shape[2] = {(long)rows, (long)cols};
    memset(a, 0, sizeof *a);
    int rc = npy_read_f32(path, a, 2, shape);
    CHECK(rc == 0, "read %s: %s", path, laic_last_error());
    return rc ? NULL : a->data;
}

TEST(cli_encode_images_pixels) {
    char err[4096], args[1024];
    char out[512];
    TPATH(out, "img.npy");
    snprintf(args, sizeof args, "encode-images --weights %s --pixels %s --out %s --batch 3 "
             "--device cpu --threads 2", WEIGHTS, fx("pixels"), out);
    int st = run_laic(args, NULL, err, sizeof err);
    REQUIRE(st == 0, "exit %d: %s", st, err);
    Npy a;
    float *got = read_out(out, &a, 4, 32);
    if (got) close_to(got, "image_features", 4 * 32);   // batch 3 + 1: chunking is exact
    npy_free(&a);
    // --normalize: unit rows in the direction of the golden
    snprintf(args, sizeof args, "encode-images --weights %s --pixels %s --out %s --normalize",
             WEIGHTS, fx("pixels"), out);
    st = run_laic(args, NULL, err, sizeof err);
    REQUIRE(st == 0, "exit %d: %s", st, err);
    Npy r;
    got = read_out(out, &a, 4, 32);
    float *ref = loadf("image_features", &r);
    if (got && ref) {
        for (int i = 0; i < 4; i++) {
            double nr = 0;
            for (int j = 0; j < 32; j++) nr += (double)ref[i * 32 + j] * ref[i * 32 + j];
            for (int j = 0; j < 32; j++) ref[i * 32 + j] /= (float)sqrt(nr);
        }
        close_feat(got, ref, 4 * 32, "normalized image features");
    }
    npy_free(&a);
    npy_free(&r);
}

TEST(cli_encode_text_tokens) {
    char err[4096], args[1024];
    char out[512];
    TPATH(out, "txt.npy");
    snprintf(args, sizeof args, "encode-text --weights %s --tokens %s --out %s --batch 2 "
             "--device cpu", WEIGHTS, fx("tokens"), out);
    int st = run_laic(args, NULL, err, sizeof err);
    REQUIRE(st == 0, "exit %d: %s", st, err);
    Npy a;
    float *got = read_out(out, &a, 5, 32);
    if (got) close_to(got, "text_features", 5 * 32);
    npy_free(&a);
}

// A bad-input run: exit status `code`, one stderr line containing `needle`, no output file.
static void expect_fail(const char *args, int code, const char *needle, const char *out) {
    char err[4096];
    int st = run_laic(args, NULL, err, sizeof err);
    CHECK(st == code, "'%s': exit %d, want %d (%s)", args, st, code, err);
    CHECK(count_lines(err) == 1, "'%s': %d stderr lines: %s", args, count_lines(err), err);
    CHECK(strstr(err, needle) != NULL, "'%s': message lacks '%s': %s", args, needle, err);
    CHECK(!file_exists(out), "'%s': output %s left behind", args, out);
}

TEST(cli_encode_bad_inputs) {
    char args[2048], out[512], px[512], tk[512], tl[512], out2[512];
    TPATH(out, "bad_out.npy");
    TPATH(px, "px16.npy");
    TPATH(tk, "badtok.npy");
    TPATH(tl, "longtok.npy");
    TPATH(out2, "no_such_dir/x.npy");
    // pixels of the wrong image size for the model (16 instead of 32)
    size_t shp[4] = {2, 3, 16, 16};
    float *z = calloc(2 * 3 * 16 * 16, sizeof(float));
    REQUIRE(npy_write(px, NPY_F32, 4, shp, z) == 0, "write %s", px);
    snprintf(args, sizeof args, "encode-images --weights %s --pixels %s --out %s", WEIGHTS, px, out);
    expect_fail(args, 1, "px16.npy", out);
    // token id >= vocab
    int32_t tok[2 * 8] = {49406, 320, 49407, 0, 0, 0, 0, 0, 49406, 49408, 49407, 0, 0, 0, 0, 0};
    size_t tshp[2] = {2, 8};
    REQUIRE(npy_write(tk, NPY_I32, 2, tshp, tok) == 0, "write %s", tk);
    snprintf(args, sizeof args, "encode-text --weights %s --tokens %s --out %s", WEIGHTS, tk, out);
    expect_fail(args, 1, "badtok.npy", out);
    expect_fail(args, 1, "vocabulary", out);
    // tokens longer than the context
    int32_t *lt = calloc(78, sizeof(int32_t));
    size_t lshp[2] = {1, 78};
    REQUIRE(npy_write(tl, NPY_I32, 2, lshp, lt) == 0, "write %s", tl);
    snprintf(args, sizeof args, "encode-text --weights %s --tokens %s --out %s", WEIGHTS, tl, out);
    expect_fail(args, 1, "longtok.npy", out);
    // float tokens are not token ids
    snprintf(args, sizeof args, "encode-text --weights %s --tokens %s --out %s", WEIGHTS,
             fx("pixels"), out);
    expect_fail(args, 1, "pixels.npy", out);
    // missing weights
    snprintf(args, sizeof args, "encode-images --weights %s --pixels %s --out %s",
             test_path("nope.safetensors"), fx("pixels"), out);
    expect_fail(args, 1, "nope.safetensors", out);
    // missing pixel file
    snprintf(args, sizeof args, "encode-images --weights %s --pixels %s --out %s", WEIGHTS,
             test_path("nope.npy"), out);
    expect_fail(args, 1, "nope.npy", out);
    // usage errors (exit 2): two inputs, no input, no --out, bad batch, unknown device
    snprintf(args, sizeof args, "encode-images --weights %s --pixels %s --images /tmp --out %s",
             WEIGHTS, fx("pixels"), out);
    expect_fail(args, 2, "exactly one", out);
    snprintf(args, sizeof args, "encode-text --weights %s --out %s", WEIGHTS, out);
    expect_fail(args, 2, "exactly one", out);
    snprintf(args, sizeof args, "encode-images --weights %s --pixels %s", WEIGHTS, fx("pixels"));
    expect_fail(args, 2, "--out", out);
    snprintf(args, sizeof args, "encode-images --weights %s --pixels %s --out %s --batch 0",
             WEIGHTS, fx("pixels"), out);
    expect_fail(args, 2, "--batch", out);
    snprintf(args, sizeof args, "encode-text --weights %s --tokens %s --out %s --device tpu",
             WEIGHTS, fx("tokens"), out);
    expect_fail(args, 2, "tpu", out);
    // output directory missing: nothing written anywhere
    snprintf(args, sizeof args, "encode-images --weights %s --pixels %s --out %s", WEIGHTS,
             fx("pixels"), out2);
    expect_fail(args, 1, "no_such_dir", out2);
    free(z);
    free(lt);
}

// --images DIR and --list FILE on a few CIFAR-10 JPEGs from ../shared: the CLI must give,
// bitwise, what the library gives on image_load_preprocessed of the same files in sorted order
// (same batch, same rows), and for a reversed list the same features in reverse order.
TEST(cli_encode_images_dir_and_list) {
    const char *tar = test_shared("data/cifar10-test-jpeg.tar");
    if (!tar) SKIP("../shared/data/cifar10-test-jpeg.tar not found");
    char dir[512], out[512], lst[512], bad[512], out3[512];
    TPATH(dir, "cifar");
    TPATH(out, "dir.npy");
    TPATH(lst, "list.txt");
    TPATH(bad, "cifar/cifar10-test/cat/0001.jpg");
    TPATH(out3, "dir_bad.npy");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && tar -xf '%s' -C '%s' cifar10-test/cat/0000.jpg "
             "cifar10-test/airplane/0001.jpg cifar10-test/dog/0002.jpg", dir, tar, dir);
    REQUIRE(system(cmd) == 0, "%s", cmd);
    const char *paths[3];
    char pbuf[3][600];
    const char *names[3] = {"airplane/0001.jpg", "cat/0000.jpg", "dog/0002.jpg"};   // sorted
    for (int i = 0; i < 3; i++) {
        snprintf(pbuf[i], sizeof pbuf[i], "%s/cifar10-test/%s", dir, names[i]);
        paths[i] = pbuf[i];
    }
    ClipWeights w;
    if (!load_tiny(&w)) return;
    float *pix = malloc(3 * 3 * 32 * 32 * sizeof(float)), want[3 * 32], *got;
    int ok = 1;
    for (int i = 0; i < 3; i++)
        ok &= CHECK(image_load_preprocessed(paths[i], 32, pix + i * 3 * 32 * 32) == 0, "load %s: %s",
                    paths[i], laic_last_error());
    ClipModel *m = clip_model_create(&w, &ops_cpu, 3);
    if (ok && m) ok = CHECK(clip_encode_images(m, pix, 3, want) == 0, "encode");
    char err[4096], args[2048];
    snprintf(args, sizeof args, "encode-images --weights %s --images %s --out %s --batch 4",
             WEIGHTS, dir, out);
    int st = run_laic(args, NULL, err, sizeof err);
    CHECK(st == 0, "exit %d: %s", st, err);
    Npy a;
    if (ok && st == 0 && (got = read_out(out, &a, 3, 32)))
        CHECK(!memcmp(got, want, sizeof want), "--images DIR == library on sorted files");
    npy_free(&a);
    // a list in reverse order gives the rows in reverse order
    FILE *f = fopen(lst, "w");
    for (int i = 2; i >= 0; i--) fprintf(f, "%s\n", paths[i]);
    fclose(f);
    snprintf(args, sizeof args, "encode-images --weights %s --list %s --out %s", WEIGHTS, lst, out);
    st = run_laic(args, NULL, err, sizeof err);
    CHECK(st == 0, "exit %d: %s", st, err);
    if (ok && st == 0 && (got = read_out(out, &a, 3, 32)))
        for (int i = 0; i < 3; i++)   // rows move within the sgemm: equal to rounding only
            close_feat(got + i * 32, want + (2 - i) * 32, 32, "--list row (reversed)");
    npy_free(&a);
    // a broken image: one line naming it, no output
    f = fopen(bad, "w");
    fputs("not a jpeg", f);
    fclose(f);
    snprintf(args, sizeof args, "encode-images --weights %s --images %s --out %s", WEIGHTS, dir,
             out3);
    expect_fail(args, 1, "0001.jpg", out3);
    free(pix);
    clip_model_free(m);
    clip_weights_free(&w);
}

// --texts FILE: lines tokenized as clip.tokenize(truncate=True) give the features of the same
// ids given as --tokens (ids for "a photo of a cat." from SPEC §2; a blank line is SOT EOT).
TEST(cli_encode_text_texts) {
    const char *vocab = test_shared("assets/bpe_simple_vocab_16e6.txt.gz");
    if (!vocab) SKIP("../shared/assets/bpe_simple_vocab_16e6.txt.gz not found");
    char voc[512], txt[512], tk[512], o1[512], o2[512], bad[512], o3[512];
    snprintf(voc, sizeof voc, "%s", vocab);
    TPATH(txt, "texts.txt");
    TPATH(tk, "texts_tok.npy");
    TPATH(o1, "texts_a.npy");
    TPATH(o2, "texts_b.npy");
    TPATH(bad, "texts_bad.txt");
    TPATH(o3, "texts_bad.npy");
    FILE *f = fopen(txt, "w");
    REQUIRE(f, "write %s", txt);
    fputs("a photo of a cat.\r\n\n", f);   // CRLF line, then a blank line
    fclose(f);
    int32_t tok[2 * 77];
    memset(tok, 0, sizeof tok);
    int32_t cat[8] = {49406, 320, 1125, 539, 320, 2368, 269, 49407};
    memcpy(tok, cat, sizeof cat);
    tok[77] = 49406;
    tok[78] = 49407;
    size_t shp[2] = {2, 77};
    REQUIRE(npy_write(tk, NPY_I32, 2, shp, tok) == 0, "write %s", tk);
    char args[2048], err[4096];
    snprintf(args, sizeof args, "encode-text --weights %s --texts %s --vocab %s --out %s", WEIGHTS,
             txt, voc, o1);
    int st = run_laic(args, NULL, err, sizeof err);
    REQUIRE(st == 0, "exit %d: %s", st, err);
    snprintf(args, sizeof args, "encode-text --weights %s --tokens %s --out %s", WEIGHTS, tk, o2);
    st = run_laic(args, NULL, err, sizeof err);
    REQUIRE(st == 0, "exit %d: %s", st, err);
    Npy a, b;
    float *fa = read_out(o1, &a, 2, 32), *fb = read_out(o2, &b, 2, 32);
    if (fa && fb) CHECK(!memcmp(fa, fb, 2 * 32 * sizeof(float)), "--texts == --tokens (bitwise)");
    npy_free(&a);
    npy_free(&b);
    // invalid UTF-8 on line 2: one line naming the file, no output
    f = fopen(bad, "w");
    REQUIRE(f, "write %s", bad);
    fputs("fine\nbad \xff byte\n", f);
    fclose(f);
    snprintf(args, sizeof args, "encode-text --weights %s --texts %s --vocab %s --out %s", WEIGHTS,
             bad, voc, o3);
    expect_fail(args, 1, "texts_bad.txt: line 2: invalid UTF-8", o3);
}
