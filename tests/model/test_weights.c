/*
 * test_weights.c — the weights file (weights/FORMAT.md): SHA-256, half-precision conversions,
 * the loader against Python goldens, init-weights, laic info, and every rejected corruption.
 *
 * Goldens (tests/fixtures/weights/, made by `python3 scripts/convert_weights.py --make-fixtures
 * tests/fixtures/weights`): a "micro" CLIP converted from a transformers CLIPModel in f32 and
 * bf16, the float32 arena a correct loader must produce (numpy, FORMAT.md order, projections
 * transposed), the files' sha256 (hashlib) and transformers' parameter counts.
 * Corrupt files are made here from the valid micro file, one defect each.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/clip.h"
#include "io/err.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "io/sha256.h"
#include "../test.h"

#define FIX "tests/fixtures/weights/"

// --- helpers -----------------------------------------------------------------------------------

static int spit(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(b, 1, n, f);
    fclose(f);
    return w == n ? 0 : -1;
}

static int read_line(const char *path, char *buf, size_t n) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *r = fgets(buf, (int)n, f);
    fclose(f);
    if (!r) return -1;
    buf[strcspn(buf, "\n")] = 0;
    return 0;
}

static long n_params_golden(const char *which) {
    FILE *f = fopen(FIX "n_params.txt", "r");
    if (!f) return -1;
    char k[64];
    long v, out = -1;
    while (fscanf(f, "%63s %ld", k, &v) == 2)
        if (!strcmp(k, which)) out = v;
    fclose(f);
    return out;
}

static int contains(const char *s, const char *sub) { return strstr(s, sub) != NULL; }

// --- SHA-256 -----------------------------------------------------------------------------------

TEST(weights_sha256_vectors) {
    // FIPS 180-2 appendix B examples and the empty string
    char hex[65];
    sha256_hex("", 0, hex);
    CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "%s", hex);
    sha256_hex("abc", 3, hex);
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "%s", hex);
    const char *m2 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex(m2, strlen(m2), hex);
    CHECK(!strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"), "%s", hex);
    // one million 'a', fed in uneven pieces to exercise the partial-block path
    Sha256 s;
    uint8_t dg[32], a[997];
    memset(a, 'a', sizeof a);
    sha256_init(&s);
    size_t left = 1000000;
    for (size_t k = 1; left; k = k % 997 + 1) {
        size_t take = k < left ? k : left;
        sha256_update(&s, a, take);
        left -= take;
    }
    sha256_final(&s, dg);
    sha256_to_hex(dg, hex);
    CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "%s", hex);
    // lengths around the 55/56/64-byte padding boundaries agree between one-shot and streaming
    uint8_t buf[130];
    for (int i = 0; i < 130; i++) buf[i] = (uint8_t)(i * 7 + 1);
    for (size_t n = 50; n <= 130; n++) {
        char h1[65], h2[65];
        sha256_hex(buf, n, h1);
        sha256_init(&s);
        sha256_update(&s, buf, n / 3);
        sha256_update(&s, buf + n / 3, n - n / 3);
        sha256_final(&s, dg);
        sha256_to_hex(dg, h2);
        CHECK(!strcmp(h1, h2), "streaming differs at n=%zu", n);
    }
}

TEST(weights_sha256_vs_sha256sum) {
    // a 200 kB pseudo-random file, hashed by us and by coreutils
    const char *p = test_path("sha.bin");
    size_t n = 200003;
    uint8_t *b = malloc(n);
    uint32_t x = 12345;
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)((x = x * 1664525u + 1013904223u) >> 24);
    REQUIRE(spit(p, b, n) == 0, "write %s", p);
    free(b);
    char ours[65], cmd[600], theirs[128] = "";
    REQUIRE(sha256_file_hex(p, ours) == 0, "%s", laic_last_error());
    snprintf(cmd, sizeof cmd, "sha256sum '%s' 2>/dev/null", p);
    FILE *f = popen(cmd, "r");
    if (!f) SKIP("no sha256sum");
    char *r = fgets(theirs, sizeof theirs, f);
    pclose(f);
    if (!r || strlen(theirs) < 64) SKIP("sha256sum did not run");
    theirs[64] = 0;
    CHECK(!strcmp(ours, theirs), "ours %s, sha256sum %s", ours, theirs);
}

// --- half precision ---------------------------------------------------------------------------

TEST(weights_half_conversions) {
    // IEEE binary16 reference points (bit patterns from the standard)
    struct { float f; uint16_t h; } f16[] = {
        {1.0f, 0x3c00}, {-2.0f, 0xc000}, {65504.0f, 0x7bff}, {65519.0f, 0x7bff},
        {65520.0f, 0x7c00}, {1e10f, 0x7c00}, {0x1p-14f, 0x0400}, {0x1p-24f, 0x0001},
        {0x1p-25f, 0x0000}, {0x1.8p-25f, 0x0001}, {0x1.8p-24f, 0x0002}, {0x1p-26f, 0x0000},
        {1.0f + 0x1p-11f, 0x3c00}, {1.0f + 0x3p-11f, 0x3c02}, {-0.0f, 0x8000}, {0.5f, 0x3800},
        {0.333333343f, 0x3555}, {INFINITY, 0x7c00}, {-INFINITY, 0xfc00},
    };
    for (size_t i = 0; i < sizeof f16 / sizeof f16[0]; i++)
        CHECK(st_f32_to_f16(f16[i].f) == f16[i].h, "f16(%a) = 0x%04x, want 0x%04x", f16[i].f,
              st_f32_to_f16(f16[i].f), f16[i].h);
    CHECK(isnan(st_f16_to_f32(st_f32_to_f16(NAN))), "f16 NaN stays NaN");
    struct { float f; uint16_t h; } bf[] = {
        {1.0f, 0x3f80}, {1.0f + 0x1p-8f, 0x3f80}, {1.0f + 0x3p-8f, 0x3f82}, {-1.5f, 0xbfc0},
        {3.0e38f, 0x7f62}, {INFINITY, 0x7f80},
    };
    for (size_t i = 0; i < sizeof bf / sizeof bf[0]; i++)
        CHECK(st_f32_to_bf16(bf[i].f) == bf[i].h, "bf16(%a) = 0x%04x, want 0x%04x", bf[i].f,
              st_f32_to_bf16(bf[i].f), bf[i].h);
    CHECK(isnan(st_bf16_to_f32(st_f32_to_bf16(NAN))), "bf16 NaN stays NaN");
    // every non-NaN half and bfloat16 survives the round trip through float exactly
    int bad16 = 0, badbf = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if ((h & 0x7c00) != 0x7c00 || !(h & 0x3ff)) bad16 += st_f32_to_f16(st_f16_to_f32((uint16_t)h)) != h;
        if ((h & 0x7f80) != 0x7f80 || !(h & 0x7f)) badbf += st_f32_to_bf16(st_bf16_to_f32((uint16_t)h)) != h;
    }
    CHECK(bad16 == 0, "%d f16 values do not round-trip", bad16);
    CHECK(badbf == 0, "%d bf16 values do not round-trip", badbf);
    // f16 -> f32 of a subnormal and a normal value (exact)
    CHECK(st_f16_to_f32(0x0001) == 0x1p-24f && st_f16_to_f32(0x3555) == 0.333251953125f, "f16->f32");
}

// --- the loader against Python goldens ----------------------------------------------------------

static void check_micro(const char *file, const char *arena, const char *shafile, const char *dtype) {
    ClipWeights w;
    REQUIRE(clip_weights_load(&w, file) == 0, "%s", laic_last_error());
    const ClipConfig *c = &w.cfg;
    // the micro architecture declared in scripts/convert_weights.py make_fixtures
    CHECK(c->image_size == 12 && c->patch_size == 4 && c->vision_width == 12 &&
          c->vision_layers == 1 && c->vision_heads == 3 && c->vision_mlp == 20, "vision config");
    CHECK(c->context_length == 8 && c->vocab_size == 100 && c->text_width == 16 &&
          c->text_layers == 2 && c->text_heads == 2 && c->text_mlp == 24 && c->embed_dim == 8,
          "text config");
    long hf = n_params_golden("micro");
    CHECK((long)w.n_params == hf && clip_param_count(c) == w.n_params,
          "n_params %zu, transformers counts %ld", w.n_params, hf);
    CHECK(!strcmp(w.storage_dtype, dtype), "dtype %s", w.storage_dtype);
    char sha[100];
    REQUIRE(read_line(shafile, sha, sizeof sha) == 0, "read %s", shafile);
    CHECK(!strcmp(w.sha256, sha), "sha256 %s, hashlib %s", w.sha256, sha);
    CHECK(!w.official_vit_b_32, "micro file is not the official conversion");
    Npy g;
    if (npy_read_f32(arena, &g, 1, NULL) == 0) {
        CHECK(g.count == w.n_params, "arena golden has %zu floats", g.count);
        if (g.count == w.n_params)   // f32 and bf16->f32 are exact: compare bitwise
            CHECK(memcmp(g.data, w.params, g.count * 4) == 0 &&
                      test_allclose(w.params, g.data, g.count, 0, 0, "arena vs numpy"),
                  "arena differs from the numpy golden");
        CHECK(w.logit_scale == ((float *)g.data)[g.count - 1], "logit_scale");
        npy_free(&g);
    } else {
        CHECK(0, "%s", laic_last_error());
    }
    // every pointer sits at its layout offset, in layout order
    int n = clip_weights_layout(c, NULL);
    ClipTensorInfo *lay = malloc((size_t)n * sizeof *lay);
    clip_weights_layout(c, lay);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        CHECK(lay[i].offset == total, "%s offset", lay[i].name);
        total += lay[i].numel;
    }
    CHECK(total == w.n_params, "layout covers the arena");
    CHECK(w.conv1_w == w.params + lay[0].offset && !strcmp(lay[0].name, "visual.conv1.weight"), "conv1");
    CHECK(w.vblocks[0].ln_1_w == w.params + lay[5].offset, "vblock 0 ln_1");
    CHECK(w.vblocks[0].proj_b == w.params + lay[16].offset, "vblock 0 c_proj.bias");
    CHECK(w.vis_proj == w.params + lay[19].offset && lay[19].transposed &&
              !strcmp(lay[19].name, "visual.proj"), "vis_proj");
    CHECK(w.tblocks[1].attn_in_w == w.params + lay[22 + 12 + 2].offset, "tblock 1 in_proj");
    CHECK(w.text_proj == w.params + lay[n - 2].offset && !strcmp(lay[n - 1].name, "logit_scale"),
          "text_proj");
    CHECK(w.ln_final_b + c->text_width == w.text_proj, "ln_final_b before text_proj");
    free(lay);
    clip_weights_free(&w);
    CHECK(w.params == NULL, "free clears");
}

TEST(weights_load_micro_f32) {
    check_micro(FIX "micro_f32.safetensors", FIX "micro_f32_arena.npy", FIX "micro_f32.sha256", "F32");
}

TEST(weights_load_micro_bf16) {
    check_micro(FIX "micro_bf16.safetensors", FIX "micro_bf16_arena.npy", FIX "micro_bf16.sha256", "BF16");
}

TEST(weights_param_counts) {
    // transformers' CLIPModel parameter counts (fixtures/n_params.txt); logit_scale included
    ClipConfig c;
    REQUIRE(clip_config_preset(&c, "vit-b-32") == 0, "preset");
    CHECK((long)clip_param_count(&c) == n_params_golden("vit-b-32"), "vit-b-32: %zu vs %ld",
          clip_param_count(&c), n_params_golden("vit-b-32"));
    REQUIRE(clip_config_preset(&c, "tiny") == 0, "preset");
    CHECK((long)clip_param_count(&c) == n_params_golden("tiny"), "tiny: %zu vs %ld",
          clip_param_count(&c), n_params_golden("tiny"));
    CHECK(clip_config_preset(&c, "vit-l-14") == -1 && contains(laic_last_error(), "vit-l-14"),
          "unknown preset");
}

// --- init-weights --------------------------------------------------------------------------------

static const char *init_file(const char *name, const char *arch, int seed, const char *dtype) {
    const char *p = test_path(name);
    char args[700], err[2048];
    snprintf(args, sizeof args, "init-weights --arch %s --seed %d --dtype %s --out '%s'", arch,
             seed, dtype, p);
    int rc = run_laic(args, NULL, err, sizeof err);
    return rc == 0 ? p : NULL;
}

static double tensor_std(const float *x, size_t n, double *mean) {
    double s = 0, ss = 0;
    for (size_t i = 0; i < n; i++) s += x[i], ss += (double)x[i] * x[i];
    *mean = s / n;
    return sqrt(ss / n - *mean * *mean);
}

TEST(weights_init_tiny_dtypes_and_stats) {
    char p32[512], p16[512], pbf[512];
    const char *p = init_file("t32.safetensors", "tiny", 7, "f32");
    REQUIRE(p, "init-weights f32 failed");
    snprintf(p32, sizeof p32, "%s", p);
    REQUIRE((p = init_file("t16.safetensors", "tiny", 7, "f16")), "init-weights f16 failed");
    snprintf(p16, sizeof p16, "%s", p);
    REQUIRE((p = init_file("tbf.safetensors", "tiny", 7, "bf16")), "init-weights bf16 failed");
    snprintf(pbf, sizeof pbf, "%s", p);
    ClipWeights a, h, b;
    REQUIRE(clip_weights_load(&a, p32) == 0, "%s", laic_last_error());
    REQUIRE(clip_weights_load(&h, p16) == 0, "%s", laic_last_error());
    REQUIRE(clip_weights_load(&b, pbf) == 0, "%s", laic_last_error());
    ClipConfig t;
    clip_config_preset(&t, "tiny");
    CHECK(!memcmp(&a.cfg, &t, sizeof t) && !memcmp(&h.cfg, &t, sizeof t), "tiny config from file");
    CHECK(a.n_params == clip_param_count(&t) && h.n_params == a.n_params && b.n_params == a.n_params,
          "n_params");
    CHECK(!strcmp(a.storage_dtype, "F32") && !strcmp(h.storage_dtype, "F16") &&
              !strcmp(b.storage_dtype, "BF16"), "dtypes");
    // same seed: the f16/bf16 files hold the f32 values rounded (half an ulp: 2^-11 / 2^-8
    // relative; below f16's normal range the absolute step is 2^-24)
    size_t bad16 = 0, badbf = 0, exact16 = 0;
    for (size_t i = 0; i < a.n_params; i++) {
        double x = a.params[i];
        bad16 += !(fabs(h.params[i] - x) <= fabs(x) * 0x1p-11 + 0x1p-25);
        badbf += !(fabs(b.params[i] - x) <= fabs(x) * 0x1p-8);
        exact16 += h.params[i] == st_f16_to_f32(st_f32_to_f16(a.params[i]));
    }
    CHECK(bad16 == 0 && badbf == 0, "%zu f16 and %zu bf16 values off by more than rounding", bad16, badbf);
    CHECK(exact16 == a.n_params, "f16 file = f32 values rounded to nearest even");
    // init rules of FORMAT.md
    double mean, sd;
    sd = tensor_std(a.tok_emb, (size_t)t.vocab_size * t.text_width, &mean);
    CHECK(fabs(sd - 0.02) < 0.02 * 0.01 && fabs(mean) < 1e-4, "token_embedding std %g mean %g", sd, mean);
    sd = tensor_std(a.conv1_w, (size_t)t.vision_width * 3 * 64, &mean);
    CHECK(fabs(sd - pow(192, -0.5)) < 0.03 * pow(192, -0.5), "conv1 std %g", sd);
    sd = tensor_std(a.vblocks[1].fc_w, (size_t)t.vision_mlp * t.vision_width, &mean);
    CHECK(fabs(sd - pow(128, -0.5)) < 0.03 * pow(128, -0.5), "c_fc std %g", sd);
    sd = tensor_std(a.vis_proj, (size_t)t.embed_dim * t.vision_width, &mean);
    CHECK(fabs(sd - 0.125) < 0.06 * 0.125, "visual.proj std %g", sd);
    CHECK(a.ln_pre_w[3] == 1 && a.ln_pre_b[3] == 0 && a.tblocks[1].ln_2_w[0] == 1 &&
              a.vblocks[0].attn_in_b[5] == 0 && a.tblocks[0].fc_b[1] == 0, "LN 1/0, biases 0");
    CHECK(fabsf(a.logit_scale - logf(1 / 0.07f)) < 1e-6f, "logit_scale %g", a.logit_scale);
    // provenance in the metadata
    StFile f;
    REQUIRE(st_open(&f, p32) == 0, "%s", laic_last_error());
    CHECK(!strcmp(st_meta(&f, "source"), "init-weights") && !strcmp(st_meta(&f, "source_sha256"), "none")
              && !strcmp(st_meta(&f, "seed"), "7") && !strcmp(st_meta(&f, "arch"), "tiny"), "metadata");
    st_close(&f);
    clip_weights_free(&a);
    clip_weights_free(&h);
    clip_weights_free(&b);
}

TEST(weights_init_deterministic) {
    char h1[65], h2[65], h3[65];
    const char *p = init_file("d1.safetensors", "tiny", 3, "f32");
    REQUIRE(p && sha256_file_hex(p, h1) == 0, "first");
    p = init_file("d2.safetensors", "tiny", 3, "f32");
    REQUIRE(p && sha256_file_hex(p, h2) == 0, "second");
    p = init_file("d3.safetensors", "tiny", 4, "f32");
    REQUIRE(p && sha256_file_hex(p, h3) == 0, "third");
    CHECK(!strcmp(h1, h2), "same seed, same bytes");
    CHECK(strcmp(h1, h3) != 0, "another seed, other bytes");
    // in-process init equals the CLI's, and save -> load is lossless for f32
    ClipConfig c;
    clip_config_preset(&c, "tiny");
    ClipWeights w, r;
    REQUIRE(clip_weights_init(&w, &c, 3) == 0, "init");
    const char *q = test_path("d4.safetensors");
    const char *meta[] = {"source", "init-weights", "source_sha256", "none", "arch", "tiny", "seed", "3"};
    REQUIRE(clip_weights_save(&w, q, "F32", meta, 4) == 0, "%s", laic_last_error());
    REQUIRE(clip_weights_load(&r, q) == 0, "%s", laic_last_error());
    CHECK(r.n_params == w.n_params && !memcmp(r.params, w.params, w.n_params * 4), "save/load bitwise");
    CHECK(!strcmp(r.sha256, h1), "in-process file == CLI file");
    clip_weights_free(&w);
    clip_weights_free(&r);
}

TEST(weights_init_errors_leave_no_file) {
    char err[2048];
    const char *p = test_path("bad_init.safetensors");
    char args[800];
    snprintf(args, sizeof args, "init-weights --arch vit-x --out '%s'", p);
    int rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 2 && count_lines(err) == 1 && contains(err, "--arch") && contains(err, "vit-x"),
          "bad arch: rc %d: %s", rc, err);
    CHECK(!file_exists(p), "no file after bad --arch");
    snprintf(args, sizeof args, "init-weights --arch tiny --dtype f8 --out '%s'", p);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 2 && count_lines(err) == 1 && contains(err, "--dtype"), "bad dtype: rc %d: %s", rc, err);
    snprintf(args, sizeof args, "init-weights --arch tiny --seed -3 --out '%s'", p);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 2 && count_lines(err) == 1 && contains(err, "--seed"), "bad seed: rc %d: %s", rc, err);
    CHECK(!file_exists(p), "no file after bad options");
    rc = run_laic("init-weights --arch tiny", NULL, err, sizeof err);
    CHECK(rc == 2 && count_lines(err) == 1 && contains(err, "--out"), "no --out: rc %d: %s", rc, err);
    const char *q = test_path("no/such/dir/w.safetensors");
    snprintf(args, sizeof args, "init-weights --arch tiny --out '%s'", q);
    rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 1 && count_lines(err) == 1 && contains(err, q), "unwritable: rc %d: %s", rc, err);
    CHECK(!file_exists(q), "no file in an unwritable place");
    // a read-only directory: the temp file cannot be created, nothing is left
    const char *ro = test_path("ro");
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && chmod 555 '%s'", ro, ro);
    if (system(cmd) == 0 && access(ro, W_OK) != 0) {   // root can write anyway: then skip this part
        snprintf(args, sizeof args, "init-weights --arch tiny --out '%s/w.safetensors'", ro);
        rc = run_laic(args, NULL, err, sizeof err);
        CHECK(rc == 1 && count_lines(err) == 1, "read-only dir: rc %d: %s", rc, err);
    }
    snprintf(cmd, sizeof cmd, "chmod 755 '%s'; ls -A '%s' | grep -c . ", ro, ro);
    FILE *f = popen(cmd, "r");
    int nfiles = -1;
    if (f) {
        if (fscanf(f, "%d", &nfiles) != 1) nfiles = -1;
        pclose(f);
    }
    CHECK(nfiles == 0, "read-only dir holds %d files", nfiles);
}

// --- laic info -------------------------------------------------------------------------------------

TEST(weights_info_text_and_json) {
    const char *p = init_file("info.safetensors", "tiny", 1, "f16");
    REQUIRE(p, "init-weights");
    char w[512], args[700], err[2048], sha[65];
    snprintf(w, sizeof w, "%s", p);
    REQUIRE(sha256_file_hex(w, sha) == 0, "sha");
    const char *out = test_path("info.txt");
    snprintf(args, sizeof args, "info --weights '%s'", w);
    int rc = run_laic(args, out, err, sizeof err);
    CHECK(rc == 0 && err[0] == 0, "rc %d: %s", rc, err);
    size_t n;
    char *txt = (char *)test_read_file(out, &n);
    REQUIRE(txt, "stdout");
    txt[n] = 0;
    char want[128];
    snprintf(want, sizeof want, "parameters   %ld ", n_params_golden("tiny"));
    CHECK(contains(txt, want), "missing '%s' in:\n%s", want, txt);
    CHECK(contains(txt, "storage      F16") && contains(txt, sha) && contains(txt, "arch         tiny")
              && contains(txt, "official     no") && contains(txt, "source       init-weights")
              && contains(txt, "vision       image 32, patch 8, width 64, layers 2, heads 4, mlp 256"),
          "info text:\n%s", txt);
    free(txt);
    snprintf(args, sizeof args, "info --weights '%s' --json", w);
    rc = run_laic(args, out, err, sizeof err);
    CHECK(rc == 0, "json rc %d: %s", rc, err);
    txt = (char *)test_read_file(out, &n);
    REQUIRE(txt, "stdout");
    cJSON *j = cJSON_ParseWithLength(txt, n);
    free(txt);
    REQUIRE(j, "stdout is JSON");
    CHECK(cJSON_GetObjectItem(j, "n_params")->valuedouble == (double)n_params_golden("tiny"), "n_params");
    CHECK(!strcmp(cJSON_GetObjectItem(j, "sha256")->valuestring, sha), "sha256");
    CHECK(!strcmp(cJSON_GetObjectItem(j, "storage_dtype")->valuestring, "F16"), "dtype");
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(j, "official_vit_b_32")), "official false");
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "config"), "text_heads")->valueint == 4, "config");
    cJSON_Delete(j);
    rc = run_laic("info", out, err, sizeof err);
    CHECK(rc == 0 && err[0] == 0, "plain info rc %d: %s", rc, err);
}

// --- corrupt files ----------------------------------------------------------------------------------

typedef struct {
    uint8_t *file;
    size_t size, hlen;
    cJSON *hdr;
} Valid;

static int valid_open(Valid *v) {
    memset(v, 0, sizeof *v);
    v->file = test_read_file(FIX "micro_f32.safetensors", &v->size);
    if (!v->file) return -1;
    for (int i = 7; i >= 0; i--) v->hlen = v->hlen << 8 | v->file[i];
    v->hdr = cJSON_ParseWithLength((char *)v->file + 8, v->hlen);
    return v->hdr ? 0 : -1;
}

static void valid_close(Valid *v) {
    cJSON_Delete(v->hdr);
    free(v->file);
}

// Writes header `h` (re-serialised) + the valid file's data section (+ extra bytes) to path.
static void write_with_header(const Valid *v, const cJSON *h, const char *path, const void *extra,
                              size_t nextra) {
    char *js = cJSON_PrintUnformatted(h);
    size_t hl = strlen(js), dl = v->size - 8 - v->hlen;
    uint8_t *b = malloc(8 + hl + dl + nextra);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, js, hl);
    memcpy(b + 8 + hl, v->file + 8 + v->hlen, dl);
    if (nextra) memcpy(b + 8 + hl + dl, extra, nextra);
    spit(path, b, 8 + hl + dl + nextra);
    free(b);
    free(js);
}

// Re-writes the valid file through st_write with one tensor changed (NULL name = none).
// mode: 0 drop `name`; 1 add an extra F32 tensor `name`; 2 relabel `name` as dtype `arg`
// (same bytes); 3 set `name`'s shape to the reverse of its shape; 4 store `name` as F16.
static const char *g_variant_src = FIX "micro_f32.safetensors";
static void write_tensor_variant(const char *path, int mode, const char *name, const char *arg,
                                 const char *meta_key, const char *meta_val) {
    StFile f;
    if (st_open(&f, g_variant_src)) return;
    StWriteTensor *t = calloc((size_t)f.n_tensors + 1, sizeof *t);
    uint16_t half[64];
    float extra[2] = {1, 2};
    int n = 0;
    for (int i = 0; i < f.n_tensors; i++) {
        const StTensor *s = &f.tensors[i];
        if (mode == 0 && name && !strcmp(s->name, name)) continue;
        t[n] = (StWriteTensor){.name = s->name, .dtype = s->dtype, .ndim = s->ndim, .data = s->data};
        memcpy(t[n].shape, s->shape, sizeof s->shape);
        if (name && !strcmp(s->name, name)) {
            if (mode == 2) t[n].dtype = arg;
            if (mode == 3)
                for (int d = 0; d < s->ndim; d++) t[n].shape[d] = s->shape[s->ndim - 1 - d];
            if (mode == 4 && s->numel <= 64) {
                for (size_t k = 0; k < s->numel; k++) {
                    float x;
                    memcpy(&x, s->data + 4 * k, 4);
                    half[k] = st_f32_to_f16(x);
                }
                t[n].dtype = "F16";
                t[n].data = half;
            }
        }
        n++;
    }
    if (mode == 1) t[n++] = (StWriteTensor){.name = name, .dtype = "F32", .ndim = 1, .shape = {2}, .data = extra};
    // metadata: the valid file's, with one key replaced (meta_val NULL: removed)
    const char *meta[64];
    int nm = 0;
    for (cJSON *m = ((cJSON *)f.meta)->child; m && nm < 32; m = m->next) {
        if (meta_key && !strcmp(m->string, meta_key)) {
            if (!meta_val) continue;
            meta[2 * nm] = m->string, meta[2 * nm + 1] = meta_val, nm++;
        } else {
            meta[2 * nm] = m->string, meta[2 * nm + 1] = m->valuestring, nm++;
        }
    }
    st_write(path, meta, nm, t, n);
    free(t);
    st_close(&f);
}

// `laic info --weights path` must fail with exit 1, one stderr line naming the file and `what`.
static void expect_rejected(const char *path, const char *what, const char *label) {
    char args[700], err[4096];
    const char *out = test_path("reject_stdout.txt");
    snprintf(args, sizeof args, "info --weights '%s'", path);
    int rc = run_laic(args, out, err, sizeof err);
    size_t n = 0;
    uint8_t *o = test_read_file(out, &n);
    free(o);
    CHECK(rc == 1 && count_lines(err) == 1 && contains(err, path) && contains(err, what) && n == 0,
          "%s: rc %d, stdout %zu bytes, stderr: %s", label, rc, n, err);
    if (!(rc == 1 && count_lines(err) == 1 && contains(err, what))) return;
    printf("    OK %s -> %s", label, err);
}

TEST(weights_reject_container_corruption) {
    Valid v;
    REQUIRE(valid_open(&v) == 0, "read fixture");
    const char *p;
    // truncated: the last tensor's bytes run past the end
    p = test_path("trunc.safetensors");
    spit(p, v.file, v.size - 100);
    expect_rejected(p, "truncated", "truncated file");
    p = test_path("short.safetensors");
    spit(p, v.file, 5);
    expect_rejected(p, "too short", "5-byte file");
    // header length past EOF
    p = test_path("hlen.safetensors");
    uint8_t *b = malloc(v.size);
    memcpy(b, v.file, v.size);
    uint64_t big = v.size;
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(big >> (8 * i));
    spit(p, b, v.size);
    expect_rejected(p, "runs past the end", "header length past EOF");
    // header not JSON
    memcpy(b, v.file, v.size);
    memcpy(b + 8 + 1, "###", 3);   // {###_metadata__": ... is not JSON
    p = test_path("json.safetensors");
    spit(p, b, v.size);
    expect_rejected(p, "not a valid JSON", "broken JSON header");
    free(b);
    // overlapping offsets: visual.ln_pre.bias moved 4 bytes back onto visual.ln_pre.weight
    cJSON *h = cJSON_Duplicate(v.hdr, 1);
    cJSON *of = cJSON_GetObjectItem(cJSON_GetObjectItem(h, "visual.ln_pre.bias"), "data_offsets");
    for (int i = 0; i < 2; i++) {
        cJSON *x = cJSON_GetArrayItem(of, i);
        cJSON_SetNumberValue(x, x->valuedouble - 4);
    }
    p = test_path("overlap.safetensors");
    write_with_header(&v, h, p, NULL, 0);
    expect_rejected(p, "overlap", "overlapping offsets");
    cJSON_Delete(h);
    // out-of-range offsets
    h = cJSON_Duplicate(v.hdr, 1);
    of = cJSON_GetObjectItem(cJSON_GetObjectItem(h, "logit_scale"), "data_offsets");
    cJSON_SetNumberValue(cJSON_GetArrayItem(of, 0), 1e9);
    cJSON_SetNumberValue(cJSON_GetArrayItem(of, 1), 1e9 + 4);
    p = test_path("range.safetensors");
    write_with_header(&v, h, p, NULL, 0);
    expect_rejected(p, "out of range", "offsets past the data section");
    cJSON_Delete(h);
    // offsets whose span disagrees with shape x dtype
    h = cJSON_Duplicate(v.hdr, 1);
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(h, "visual.ln_post.weight"), "shape",
                              cJSON_CreateIntArray((const int[]){13}, 1));
    p = test_path("span.safetensors");
    write_with_header(&v, h, p, NULL, 0);
    expect_rejected(p, "need", "span vs shape mismatch");
    cJSON_Delete(h);
    // trailing junk after the last tensor
    p = test_path("junk.safetensors");
    write_with_header(&v, v.hdr, p, "JUNKJUNKJUNKJUNK", 16);
    expect_rejected(p, "belong to no tensor", "trailing bytes");
    // a tensor named twice
    h = cJSON_Duplicate(v.hdr, 1);
    cJSON_AddItemToObject(h, "logit_scale", cJSON_Duplicate(cJSON_GetObjectItem(h, "logit_scale"), 1));
    p = test_path("dup.safetensors");
    write_with_header(&v, h, p, NULL, 0);
    expect_rejected(p, "twice", "duplicate tensor name");
    cJSON_Delete(h);
    // metadata value that is not a string
    h = cJSON_Duplicate(v.hdr, 1);
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(h, "__metadata__"), "vision_width", cJSON_CreateNumber(12));
    p = test_path("metanum.safetensors");
    write_with_header(&v, h, p, NULL, 0);
    expect_rejected(p, "not a string", "non-string metadata");
    cJSON_Delete(h);
    // no metadata at all
    h = cJSON_Duplicate(v.hdr, 1);
    cJSON_DeleteItemFromObject(h, "__metadata__");
    p = test_path("nometa.safetensors");
    write_with_header(&v, h, p, NULL, 0);
    expect_rejected(p, "no __metadata__", "missing __metadata__");
    cJSON_Delete(h);
    expect_rejected(test_path("does-not-exist.safetensors"), "cannot open", "missing file");
    valid_close(&v);
}

TEST(weights_reject_content_errors) {
    const char *p;
    // the variant writer itself is sound: an unmodified rewrite still loads
    p = test_path("same.safetensors");
    write_tensor_variant(p, -1, NULL, NULL, NULL, NULL);
    ClipWeights w;
    CHECK(clip_weights_load(&w, p) == 0, "unmodified rewrite: %s", laic_last_error());
    clip_weights_free(&w);
    p = test_path("drop.safetensors");
    write_tensor_variant(p, 0, "visual.ln_post.bias", NULL, NULL, NULL);
    expect_rejected(p, "missing tensor 'visual.ln_post.bias'", "dropped tensor");
    p = test_path("extra.safetensors");
    write_tensor_variant(p, 1, "visual.extra", NULL, NULL, NULL);
    expect_rejected(p, "unexpected tensor 'visual.extra'", "extra tensor");
    p = test_path("i32.safetensors");
    write_tensor_variant(p, 2, "visual.ln_pre.weight", "I32", NULL, NULL);
    expect_rejected(p, "dtype I32", "wrong dtype");
    p = test_path("mixed.safetensors");
    write_tensor_variant(p, 4, "visual.ln_pre.bias", NULL, NULL, NULL);
    expect_rejected(p, "one storage dtype", "mixed dtypes");
    p = test_path("shape.safetensors");
    write_tensor_variant(p, 3, "token_embedding.weight", NULL, NULL, NULL);
    expect_rejected(p, "'token_embedding.weight' has shape [16,100], expected [100,16]", "wrong shape");
    p = test_path("width.safetensors");   // metadata disagreeing with the tensors
    write_tensor_variant(p, -1, NULL, NULL, "text_width", "32");
    expect_rejected(p, "expected", "metadata/shape disagreement");
    p = test_path("badnum.safetensors");
    write_tensor_variant(p, -1, NULL, NULL, "vision_width", "12px");
    expect_rejected(p, "'vision_width'", "non-integer architecture number");
    p = test_path("zero.safetensors");
    write_tensor_variant(p, -1, NULL, NULL, "text_layers", "0");
    expect_rejected(p, "'text_layers'", "zero layers");
    p = test_path("heads.safetensors");
    write_tensor_variant(p, -1, NULL, NULL, "vision_heads", "5");
    expect_rejected(p, "divisible", "heads not dividing width");
    p = test_path("noembed.safetensors");
    write_tensor_variant(p, -1, NULL, NULL, "embed_dim", NULL);
    expect_rejected(p, "no 'embed_dim'", "missing architecture key");
    p = test_path("version.safetensors");
    write_tensor_variant(p, -1, NULL, NULL, "format_version", "2");
    expect_rejected(p, "unknown format_version '2'", "unknown format version");
    p = test_path("format.safetensors");
    write_tensor_variant(p, -1, NULL, NULL, "format", "gguf");
    expect_rejected(p, "format is 'gguf'", "wrong format name");
    p = test_path("srcsha.safetensors");
    write_tensor_variant(p, -1, NULL, NULL, "source_sha256", "abc");
    expect_rejected(p, "source_sha256", "bad source_sha256");
}

TEST(weights_official_flag) {
    // provenance alone is not enough: an openai-sourced file with the official sha256 but not
    // the ViT-B/32 architecture is not the official conversion
    const char *p1 = test_path("claims1.safetensors"), *p = test_path("claims.safetensors");
    write_tensor_variant(p1, -1, NULL, NULL, "source_sha256",
                         "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af");
    g_variant_src = p1;
    write_tensor_variant(p, -1, NULL, NULL, "source", "openai");
    g_variant_src = FIX "micro_f32.safetensors";
    StFile f;
    REQUIRE(st_open(&f, p) == 0, "%s", laic_last_error());
    CHECK(!strcmp(st_meta(&f, "source"), "openai") && !strncmp(st_meta(&f, "source_sha256"), "40d3", 4),
          "variant carries both claims");
    st_close(&f);
    ClipWeights w;
    REQUIRE(clip_weights_load(&w, p) == 0, "%s", laic_last_error());
    CHECK(!w.official_vit_b_32, "micro architecture is never official");
    clip_weights_free(&w);
}
