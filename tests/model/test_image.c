/*
 * test_image.c — image decoding and CLIP preprocessing against PIL goldens (host/model/image.h,
 * `laic preprocess`).
 *
 * Goldens come from scripts/make_image_fixtures.py (PIL 13 + numpy) in tests/fixtures/image/:
 * synthetic edge cases (inputs committed), and real JPEGs taken from the shared tars at run
 * time (skipped without ../shared). Criterion per image, as the issue states it: >= 99.9% of
 * the uint8 values identical to PIL and none off by more than 1. (The implementation is meant
 * to be exact; the tests also print how many images are bit-identical.) Normalised floats
 * must match numpy's float32 computation to 1e-6 (same operations in the same order, so
 * they are expected to be equal; the slack only allows a different compiler contraction).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/image.h"
#include "io/err.h"
#include "io/npy.h"
#include "../test.h"

#define FIX "tests/fixtures/image/"

// --- helpers -----------------------------------------------------------------------------

typedef struct {
    size_t n, same;
    int maxd;
} Diff;

static Diff diff_u8(const uint8_t *a, const uint8_t *b, size_t n) {
    Diff d = {n, 0, 0};
    for (size_t i = 0; i < n; i++) {
        int e = abs((int)a[i] - (int)b[i]);
        if (e == 0) d.same++;
        if (e > d.maxd) d.maxd = e;
    }
    return d;
}

// The parity criterion for one image.
static int diff_ok(Diff d) { return d.maxd <= 1 && (double)d.same >= 0.999 * (double)d.n; }

// Reads a uint8 golden with the expected shape (h, w, 3); returns its data (free with npy_free).
static int read_u8(const char *path, Npy *a, long h, long w) {
    if (npy_read(path, a)) return -1;
    long shape[3] = {h, w, 3};
    if (a->dtype != NPY_U8) {
        npy_free(a);
        return laic_error("%s: golden is not uint8", path);
    }
    if (npy_check_shape(a, path, 3, shape)) {
        npy_free(a);
        return -1;
    }
    return 0;
}

static void write_str(const char *path, const char *s) { test_write_file(path, s, strlen(s)); }

// --- synthetic edge cases: modes, shapes, up/down scaling ----------------------------------

TEST(image_synthetic_crops_match_pil) {
    FILE *f = fopen(FIX "cases.txt", "r");
    REQUIRE(f, "cannot open " FIX "cases.txt");
    char line[1024], in[256], crop[256], dec[256];
    int S, ncase = 0, nexact = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || sscanf(line, "%255s %d %255s %255s", in, &S, crop, dec) != 4)
            continue;
        char p[512], g[512];
        snprintf(p, sizeof p, FIX "%s", in);
        snprintf(g, sizeof g, FIX "%s", crop);
        Npy ref;
        if (!CHECK(read_u8(g, &ref, S, S) == 0, "%s", laic_last_error())) continue;
        uint8_t *got = malloc((size_t)S * S * 3);
        int rc = image_load_crop(p, S, got);
        CHECK(rc == 0, "%s: %s", p, laic_last_error());
        if (rc == 0) {
            Diff d = diff_u8(got, ref.data, ref.count);
            CHECK(diff_ok(d), "%s S=%d: %.4f%% identical, max diff %d", in, S,
                  100.0 * d.same / d.n, d.maxd);
            nexact += d.same == d.n;
        }
        ncase++;
        free(got);
        npy_free(&ref);
    }
    fclose(f);
    printf("    %d synthetic cases, %d bit-identical to PIL\n", ncase, nexact);
    CHECK(ncase >= 40, "only %d cases read", ncase);
}

TEST(image_decode_matches_pil_convert_rgb) {
    FILE *f = fopen(FIX "cases.txt", "r");
    REQUIRE(f, "cannot open " FIX "cases.txt");
    char line[1024], in[256], crop[256], dec[256], last[256] = "";
    int S, n = 0, nexact = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || sscanf(line, "%255s %d %255s %255s", in, &S, crop, dec) != 4)
            continue;
        if (!strcmp(in, last)) continue;   // one decode golden per input
        snprintf(last, sizeof last, "%s", in);
        char p[512], g[512];
        snprintf(p, sizeof p, FIX "%s", in);
        snprintf(g, sizeof g, FIX "%s", dec);
        uint8_t *rgb = NULL;
        int h = 0, w = 0;
        int rc = image_load_rgb8(p, &rgb, &h, &w);
        if (!CHECK(rc == 0, "%s: %s", p, laic_last_error())) continue;
        Npy ref;
        if (CHECK(read_u8(g, &ref, h, w) == 0, "%s", laic_last_error())) {
            Diff d = diff_u8(rgb, ref.data, ref.count);
            CHECK(diff_ok(d), "%s decode: %.4f%% identical, max diff %d", in, 100.0 * d.same / d.n,
                  d.maxd);
            nexact += d.same == d.n;
            npy_free(&ref);
        }
        free(rgb);
        n++;
    }
    fclose(f);
    printf("    %d decoded images, %d bit-identical to PIL's convert(\"RGB\")\n", n, nexact);
    CHECK(n >= 25, "only %d inputs", n);
}

TEST(image_resize_crop_rgb8_matches_pil) {
    Npy in;
    REQUIRE(npy_read(FIX "rgb_in.npy", &in) == 0, "%s", laic_last_error());
    REQUIRE(in.dtype == NPY_U8 && in.ndim == 3 && in.shape[2] == 3, "rgb_in.npy shape");
    int h = (int)in.shape[0], w = (int)in.shape[1];
    const int sizes[3] = {20, 45, 64};   // down, identity on the short side, up
    for (int k = 0; k < 3; k++) {
        int S = sizes[k];
        char g[256];
        snprintf(g, sizeof g, FIX "rgb_crop_%d.npy", S);
        Npy ref;
        if (!CHECK(read_u8(g, &ref, S, S) == 0, "%s", laic_last_error())) continue;
        uint8_t *out = malloc((size_t)S * S * 3);
        image_resize_crop_rgb8(out, in.data, h, w, S);
        Diff d = diff_u8(out, ref.data, ref.count);
        printf("    %dx%d -> S=%d: %zu/%zu identical, max diff %d\n", w, h, S, d.same, d.n, d.maxd);
        CHECK(diff_ok(d), "S=%d", S);
        free(out);
        npy_free(&ref);
    }
    npy_free(&in);
}

TEST(image_normalize_matches_numpy) {
    FILE *f = fopen(FIX "norm.txt", "r");
    REQUIRE(f, "cannot open " FIX "norm.txt");
    char in[256], gold[256];
    int S, n = 0;
    while (fscanf(f, "%255s %d %255s", in, &S, gold) == 3) {
        char p[512], g[512];
        snprintf(p, sizeof p, FIX "%s", in);
        snprintf(g, sizeof g, FIX "%s", gold);
        Npy ref;
        long shape[3] = {3, S, S};
        if (!CHECK(npy_read_f32(g, &ref, 3, shape) == 0, "%s", laic_last_error())) continue;
        float *out = malloc(sizeof(float) * 3 * S * S);
        int rc = image_load_preprocessed(p, S, out);
        CHECK(rc == 0, "%s", laic_last_error());
        if (rc == 0) CHECK(test_allclose(out, ref.data, ref.count, 1e-6, 0, in), "%s", in);
        free(out);
        npy_free(&ref);
        n++;
    }
    fclose(f);
    CHECK(n == 2, "norm.txt lists %d cases", n);
    // The constants themselves: a mid-grey pixel against the formula in double.
    uint8_t px[3] = {128, 128, 128};
    float o[3];
    image_normalize(o, px, 1);
    for (int c = 0; c < 3; c++) {
        double want = (128.0 / 255.0 - IMAGE_CLIP_MEAN[c]) / IMAGE_CLIP_STD[c];
        CHECK(fabsf(o[c] - (float)want) < 1e-6f, "channel %d: %g vs %g", c, o[c], want);
    }
}

// --- real JPEGs (CIFAR-10 upsampled, DTD downsampled) from ../shared ------------------------

TEST(image_real_jpegs_match_pil) {
    const char *tars[2] = {test_shared("data/cifar10-test-jpeg.tar"),
                           test_shared("data/dtd5-jpeg.tar")};
    if (!tars[0] || !tars[1]) SKIP("../shared/data tars not found");
    FILE *f = fopen(FIX "real.txt", "r");
    REQUIRE(f, "cannot open " FIX "real.txt");
    typedef struct {
        char tar[64], member[160], gold[192];
        int S;
    } Row;
    Row rows[128];
    int nr = 0;
    char line[1024];
    while (nr < 128 && fgets(line, sizeof line, f)) {
        Row *r = &rows[nr];
        if (line[0] != '#' &&
            sscanf(line, "%63s %159s %d %191s", r->tar, r->member, &r->S, r->gold) == 4)
            nr++;
    }
    fclose(f);
    REQUIRE(nr >= 40, "real.txt lists %d images", nr);
    // One tar invocation per archive, extracting just the members we need.
    const char *dir = test_path("real");
    mkdir(dir, 0755);
    for (int t = 0; t < 2; t++) {
        const char *name = t == 0 ? "cifar10-test-jpeg.tar" : "dtd5-jpeg.tar";
        size_t cap = 1024 + (size_t)nr * 200, len;
        char *cmd = malloc(cap);
        len = (size_t)snprintf(cmd, cap, "tar -xf '%s' -C '%s'", tars[t], dir);
        for (int i = 0; i < nr; i++)
            if (!strcmp(rows[i].tar, name))
                len += (size_t)snprintf(cmd + len, cap - len, " '%s'", rows[i].member);
        int rc = system(cmd);
        free(cmd);
        REQUIRE(rc == 0, "tar extraction from %s failed", tars[t]);
    }
    size_t tot = 0, same = 0;
    int maxd = 0, nexact = 0, n = 0;
    for (int i = 0; i < nr; i++) {
        char p[512], g[512];
        snprintf(p, sizeof p, "%s/%s", dir, rows[i].member);
        snprintf(g, sizeof g, FIX "%s", rows[i].gold);
        int S = rows[i].S, gh = 0, gw = 0;
        uint8_t *ref = NULL;   // golden crops are lossless RGB PNGs
        if (!CHECK(image_load_rgb8(g, &ref, &gh, &gw) == 0 && gh == S && gw == S, "%s: %s", g,
                   laic_last_error())) {
            free(ref);
            continue;
        }
        uint8_t *got = malloc((size_t)S * S * 3);
        int rc = image_load_crop(p, S, got);
        CHECK(rc == 0, "%s: %s", p, laic_last_error());
        if (rc == 0) {
            Diff d = diff_u8(got, ref, (size_t)S * S * 3);
            CHECK(diff_ok(d), "%s S=%d: %.4f%% identical, max diff %d", rows[i].member, S,
                  100.0 * d.same / d.n, d.maxd);
            tot += d.n;
            same += d.same;
            if (d.maxd > maxd) maxd = d.maxd;
            nexact += d.same == d.n;
            n++;
        }
        free(got);
        free(ref);
    }
    printf("    %d real JPEGs: %.5f%% of %zu values identical to PIL, max diff %d, "
           "%d images bit-identical\n",
           n, tot ? 100.0 * same / tot : 0.0, tot, maxd, nexact);
    CHECK(n == nr, "%d of %d images checked", n, nr);
}

// --- CLI ---------------------------------------------------------------------------------

// Runs `laic preprocess` on three synthetic inputs through --list (relative paths, a blank
// line) and checks both output kinds against the goldens.
TEST(image_cli_preprocess_list_uint8_and_float) {
    const char *names[3] = {"rgb420_53x37.jpg", "rgba_34x29.png", "pal8_41x27.png"};
    const char *crops[3] = {"syn/rgb420_53x37_S24.npy", "syn/rgba_34x29_S12.npy",
                            "syn/pal8_41x27_S11.npy"};
    const int sizes[3] = {24, 12, 11};
    // uint8: one image per run (each golden has its own S); the list sits in the tmp dir, so
    // it names the fixtures by absolute path, between blank lines.
    char list[512];
    snprintf(list, sizeof list, "%s", test_path("l.txt"));
    for (int k = 0; k < 3; k++) {
        char fix[512], abs_[4096];
        snprintf(fix, sizeof fix, FIX "syn/%s", names[k]);
        REQUIRE(realpath(fix, abs_), "realpath %s", fix);
        FILE *f = fopen(list, "w");
        fprintf(f, "\n%s\n\n", abs_);
        fclose(f);
        char args[1200], err[2048];
        const char *out = test_path("o.npy");
        snprintf(args, sizeof args, "preprocess --list '%s' --size %d --out '%s' --uint8", list,
                 sizes[k], out);
        int rc = run_laic(args, NULL, err, sizeof err);
        REQUIRE(rc == 0, "laic %s -> %d: %s", args, rc, err);
        Npy got, ref;
        REQUIRE(npy_read(out, &got) == 0, "%s", laic_last_error());
        char g[512];
        snprintf(g, sizeof g, FIX "%s", crops[k]);
        REQUIRE(npy_read(g, &ref) == 0, "%s", laic_last_error());
        CHECK(got.dtype == NPY_U8 && got.ndim == 4 && got.shape[0] == 1 &&
                  got.shape[1] == (size_t)sizes[k] && got.shape[3] == 3,
              "uint8 output shape");
        if (got.count == ref.count) {
            Diff d = diff_u8(got.data, ref.data, ref.count);
            CHECK(diff_ok(d), "%s: %zu/%zu identical, max %d", names[k], d.same, d.n, d.maxd);
        }
        npy_free(&got);
        npy_free(&ref);
        remove(out);
    }
    // float32: two images in one run from a list with relative paths (CRLF, blank line,
    // spaces), resolved against the list file's directory: copies of two inputs in tmp.
    const char *d = test_path("rel");
    mkdir(d, 0755);
    size_t n1, n2;
    uint8_t *b1 = test_read_file(FIX "syn/rgb420_53x37.jpg", &n1);
    uint8_t *b2 = test_read_file(FIX "syn/rgb444_53x37.jpg", &n2);
    REQUIRE(b1 && b2, "fixtures missing");
    char p[600];
    snprintf(p, sizeof p, "%s/sub", d);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/sub/a.jpg", d);
    test_write_file(p, b1, n1);
    snprintf(p, sizeof p, "%s/b.jpg", d);
    test_write_file(p, b2, n2);
    free(b1);
    free(b2);
    snprintf(p, sizeof p, "%s/list.txt", d);
    write_str(p, "sub/a.jpg\r\n\n  b.jpg  \n");
    const char *out = test_path("f.npy");
    char args[1200], err[2048];
    snprintf(args, sizeof args, "preprocess --list '%s' --size 24 --out '%s'", p, out);
    int rc = run_laic(args, NULL, err, sizeof err);
    REQUIRE(rc == 0, "laic %s -> %d: %s", args, rc, err);
    Npy got;
    long shape[4] = {2, 3, 24, 24};
    REQUIRE(npy_read_f32(out, &got, 4, shape) == 0, "%s", laic_last_error());
    // Image 0 against numpy's normalisation of PIL's crop; image 1 against the library.
    Npy ref;
    long rshape[3] = {3, 24, 24};
    REQUIRE(npy_read_f32(FIX "norm_rgb420_53x37_S24.npy", &ref, 3, rshape) == 0, "%s",
            laic_last_error());
    CHECK(test_allclose(got.data, ref.data, ref.count, 1e-6, 0, "cli float image 0"), "img 0");
    float *want = malloc(sizeof(float) * 3 * 24 * 24);
    REQUIRE(image_load_preprocessed(FIX "syn/rgb444_53x37.jpg", 24, want) == 0, "%s",
            laic_last_error());
    CHECK(test_allclose((float *)got.data + 3 * 24 * 24, want, 3 * 24 * 24, 0, 0,
                        "cli float image 1"),
          "img 1");
    free(want);
    npy_free(&got);
    npy_free(&ref);
}

TEST(image_list_dir_recursive_sorted) {
    const char *d = test_path("tree");
    char p[600];
    mkdir(d, 0755);
    const char *dirs[] = {"b", "b/z", "a"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", d, dirs[i]);
        mkdir(p, 0755);
    }
    const char *files[] = {"b/z/x.PNG", "b/y.jpeg", "a/q.JpG", "a/notes.txt", "c.jpg", "noext",
                           "b/img.jpg.bak"};
    for (int i = 0; i < 7; i++) {
        snprintf(p, sizeof p, "%s/%s", d, files[i]);
        test_write_file(p, "x", 1);
    }
    char **paths;
    size_t n;
    REQUIRE(image_list_dir(d, &paths, &n) == 0, "%s", laic_last_error());
    const char *want[] = {"a/q.JpG", "b/y.jpeg", "b/z/x.PNG", "c.jpg"};
    CHECK(n == 4, "found %zu images, want 4", n);
    for (size_t i = 0; i < n && i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", d, want[i]);
        CHECK(!strcmp(paths[i], p), "entry %zu: %s, want %s", i, paths[i], p);
    }
    image_list_free(paths, n);
    // Empty directory and a missing one are errors naming the directory.
    const char *e = test_path("emptydir");
    mkdir(e, 0755);
    CHECK(image_list_dir(e, &paths, &n) == -1 && strstr(laic_last_error(), "emptydir") &&
              strstr(laic_last_error(), "no images"),
          "empty dir: %s", laic_last_error());
    CHECK(image_list_dir(test_path("nope"), &paths, &n) == -1 &&
              strstr(laic_last_error(), "nope"),
          "missing dir: %s", laic_last_error());
}

TEST(image_list_file_relative_and_blank_lines) {
    const char *d = test_path("lst");
    mkdir(d, 0755);
    char p[600];
    snprintf(p, sizeof p, "%s/files.txt", d);
    write_str(p, "one.jpg\n\n   \n/abs/two.png\nsub/three.jpeg\r\n");
    char **paths;
    size_t n;
    REQUIRE(image_list_file(p, &paths, &n) == 0, "%s", laic_last_error());
    CHECK(n == 3, "%zu entries", n);
    if (n == 3) {
        char want[700];
        snprintf(want, sizeof want, "%s/one.jpg", d);
        CHECK(!strcmp(paths[0], want), "%s", paths[0]);
        CHECK(!strcmp(paths[1], "/abs/two.png"), "%s", paths[1]);
        snprintf(want, sizeof want, "%s/sub/three.jpeg", d);
        CHECK(!strcmp(paths[2], want), "%s", paths[2]);
    }
    image_list_free(paths, n);
    snprintf(p, sizeof p, "%s/empty.txt", d);
    write_str(p, "\n\n");
    CHECK(image_list_file(p, &paths, &n) == -1 && strstr(laic_last_error(), "empty.txt"),
          "empty list: %s", laic_last_error());
}

// --- bad inputs: one line naming the file, non-zero exit, no output ------------------------

static void expect_cli_error(const char *args_fmt, const char *arg, const char *must_contain,
                             const char *out) {
    char args[2048], err[4096];
    snprintf(args, sizeof args, args_fmt, arg, out);
    remove(out);
    int rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc != 0, "laic %s: exit 0", args);
    CHECK(count_lines(err) == 1, "laic %s: %d stderr lines: %s", args, count_lines(err), err);
    CHECK(strstr(err, must_contain) != NULL, "laic %s: message lacks '%s': %s", args,
          must_contain, err);
    CHECK(!strncmp(err, "laic: ", 6), "message prefix: %s", err);
    CHECK(!file_exists(out), "laic %s left %s behind", args, out);
}

TEST(image_bad_inputs) {
    // test_path() reuses a ring of 8 buffers: keep our own copies of the paths.
    char out[512], trunc[512], corrupt[512], text[512], empty[512], tpng[512], crc[512], e[512];
    snprintf(out, sizeof out, "%s", test_path("bad.npy"));
    size_t n;
    uint8_t *jpg = test_read_file(FIX "syn/rgb420_53x37.jpg", &n);
    REQUIRE(jpg && n > 200, "fixture missing");
    const char *one = "preprocess --image '%s' --size 16 --out '%s'";

    expect_cli_error(one, test_path("missing.jpg"), "missing.jpg", out);

    snprintf(trunc, sizeof trunc, "%s", test_path("truncated.jpg"));
    test_write_file(trunc, jpg, n / 2);
    expect_cli_error(one, trunc, "truncated.jpg", out);

    // SOI, then garbage where the markers should be.
    snprintf(corrupt, sizeof corrupt, "%s", test_path("corrupt.jpg"));
    uint8_t junk[300];
    for (int i = 0; i < 300; i++) junk[i] = (uint8_t)(i * 37 + 11);
    junk[0] = 0xff, junk[1] = 0xd8, junk[2] = 0xff, junk[3] = 0x01;
    test_write_file(corrupt, junk, sizeof junk);
    expect_cli_error(one, corrupt, "corrupt.jpg", out);

    // The right extension, but not an image.
    snprintf(text, sizeof text, "%s", test_path("notes.jpg"));
    write_str(text, "hello, I am not a picture\n");
    expect_cli_error(one, text, "not a JPEG or PNG", out);

    snprintf(empty, sizeof empty, "%s", test_path("empty.png"));
    test_write_file(empty, "", 0);
    expect_cli_error(one, empty, "empty.png", out);

    size_t pn;
    uint8_t *png = test_read_file(FIX "syn/rgba_34x29.png", &pn);
    REQUIRE(png && pn > 100, "fixture missing");
    snprintf(tpng, sizeof tpng, "%s", test_path("truncated.png"));
    test_write_file(tpng, png, pn - 40);
    expect_cli_error(one, tpng, "truncated.png", out);
    // A flipped byte inside the IDAT data: CRC mismatch.
    snprintf(crc, sizeof crc, "%s", test_path("badcrc.png"));
    png[pn / 2] ^= 0x55;
    test_write_file(crc, png, pn);
    expect_cli_error(one, crc, "badcrc.png", out);
    free(png);

    snprintf(e, sizeof e, "%s", test_path("noimages"));
    mkdir(e, 0755);
    expect_cli_error("preprocess --images '%s' --size 16 --out '%s'", e, "noimages", out);

    // One bad file in a good list: the run fails naming it, nothing is written.
    char list[600], abs_[4096];
    snprintf(list, sizeof list, "%s", test_path("mixed.txt"));
    REQUIRE(realpath(FIX "syn/rgb420_53x37.jpg", abs_), "realpath");
    FILE *f = fopen(list, "w");
    fprintf(f, "%s\n%s\n%s\n", abs_, trunc, abs_);
    fclose(f);
    expect_cli_error("preprocess --list '%s' --size 16 --out '%s'", list, "truncated.jpg", out);

    // Usage errors.
    expect_cli_error("preprocess --image '%s' --list x --out '%s'", trunc, "exactly one", out);
    expect_cli_error("preprocess --image '%s' --size 0 --out '%s'", trunc, "--size", out);
    free(jpg);
}
