/*
 * test_bench_cli.c — `laic bench`, the precision switch, length bucketing, device-memory
 * planning and the FLOP formulas (host/cli/cmd_bench.c, host/model/clip.c), all on the CPU.
 *
 * - bench output: one JSON line per run with the documented keys; FLOP per item equals
 *   clip_image_flop / clip_text_flop at the real length; CPU peak and % of peak are null.
 * - FLOP formulas against SPEC §1's independent figures (8.8 GFLOP per ViT-B/32 image, 6.0 per
 *   77-token prompt), within 1% (the spec rounds to two digits).
 * - bucketing: clip_encode_text_bucketed on rows of mixed lengths against each row encoded
 *   alone (clip_encode_text, B = 1): rows in input order; tolerance 1e-6 relative to the row's
 *   max |feature| (a batch of different M may take another OpenBLAS kernel; the count of
 *   bitwise-equal rows is printed), plus the FLOP accounting bounds.
 * - memory planning: bytes per extra batch row against a hand count of the activation arena;
 *   clip_fit_batch is the exact inverse of clip_model_bytes at the boundary; the OOM message.
 * - errors: one line, exit code, message substring, no output file (usage errors exit 2).
 */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/clip.h"
#include "io/err.h"
#include "io/npy.h"
#include "ops.h"
#include "rng.h"
#include "../test.h"

#define WEIGHTS "tests/fixtures/clip/tiny_f16.safetensors"

double bench_peak_tflops(const char *device_name, const char *precision);   // host/cli/cmd_bench.c

static void expect_fail(const char *args, int code, const char *needle, const char *out) {
    char err[4096];
    int st = run_laic(args, NULL, err, sizeof err);
    CHECK(st == code, "'%s': exit %d, want %d (%s)", args, st, code, err);
    CHECK(count_lines(err) == 1, "'%s': %d stderr lines: %s", args, count_lines(err), err);
    CHECK(strstr(err, needle) != NULL, "'%s': message lacks '%s': %s", args, needle, err);
    if (out && strstr(out, ".npy")) CHECK(!file_exists(out), "'%s': output %s left", args, out);
}

// Runs a bench and parses its single stdout line.
static cJSON *bench_json(const char *args) {
    char out[512], err[4096];
    snprintf(out, sizeof out, "%s", test_path("bench.jsonl"));
    int st = run_laic(args, out, err, sizeof err);
    CHECK(st == 0, "'%s': exit %d: %s", args, st, err);
    char *txt = test_read_file(out, NULL);
    if (!txt) return NULL;
    CHECK(count_lines(txt) == 1, "'%s': %d stdout lines", args, count_lines(txt));
    cJSON *j = cJSON_Parse(txt);
    CHECK(j != NULL, "'%s': not JSON: %s", args, txt);
    free(txt);
    return j;
}

static double num(const cJSON *j, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    CHECK(cJSON_IsNumber(v), "key '%s' is not a number", k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *str(const cJSON *j, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, k);
    CHECK(cJSON_IsString(v), "key '%s' is not a string", k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

TEST(bench_cli_schema) {
    ClipConfig tiny;
    REQUIRE(clip_config_preset(&tiny, "tiny") == 0, "preset");
    cJSON *j = bench_json("bench encode-images --arch tiny --device cpu --iters 3 --warmup 1 "
                          "--batch 4 --threads 2");
    REQUIRE(j, "no JSON");
    CHECK(!strcmp(str(j, "bench"), "encode-images") && !strcmp(str(j, "impl"), "laic") &&
          !strcmp(str(j, "device"), "cpu") && !strcmp(str(j, "precision"), "fp32") &&
          !strcmp(str(j, "unit"), "img"), "string fields");
    CHECK(num(j, "batch") == 4 && num(j, "iters") == 3, "batch/iters echoed");
    double ips = num(j, "items_per_s"), ms = num(j, "ms_median");
    CHECK(ips > 0 && fabs(ips - 4 / (ms * 1e-3)) <= 1e-3 * ips, "img/s %g = batch / median %g ms",
          ips, ms);
    CHECK(fabs(num(j, "gflop_per_item") - clip_image_flop(&tiny) / 1e9) <= 1e-5 * num(j, "gflop_per_item"),
          "gflop/img");
    CHECK(fabs(num(j, "tflops") - ips * clip_image_flop(&tiny) / 1e12) <= 1e-3 * num(j, "tflops"),
          "TFLOP/s = img/s * FLOP/img");
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(j, "peak_tflops")) &&
          cJSON_IsNull(cJSON_GetObjectItem(j, "pct_peak")), "CPU peak must be null");
    CHECK(num(j, "ms_min") <= ms && ms <= num(j, "ms_max"), "min <= median <= max");
    cJSON_Delete(j);

    j = bench_json("bench encode-text --weights " WEIGHTS " --device cpu --iters 2 --warmup 0 "
                   "--seq-len 9 --batch 5");
    REQUIRE(j, "no JSON");
    CHECK(num(j, "seq_len") == 9 && !strcmp(str(j, "unit"), "prompt"), "seq_len echoed");
    CHECK(fabs(num(j, "gflop_per_item") - clip_text_flop(&tiny, 9) / 1e9) <=
              1e-5 * num(j, "gflop_per_item"), "FLOP at the real length 9");
    cJSON_Delete(j);
}

TEST(bench_cli_noun_bank_subset) {
    if (!file_exists("/usr/share/wordnet/data.noun")) SKIP("wordnet-base not installed");
    const char *vocab = test_shared("assets/bpe_simple_vocab_16e6.txt.gz");
    if (!vocab) SKIP("../shared/assets not found");
    char args[1024];
    snprintf(args, sizeof args, "bench encode-text --arch tiny --device cpu --noun-bank --limit 700 "
             "--batch 64 --warmup 0 --vocab %s", vocab);
    cJSON *j = bench_json(args);
    REQUIRE(j, "no JSON");
    CHECK(num(j, "items") == 700 && num(j, "nouns") == 146347 && num(j, "batches") == 11,
          "700 prompts of the 146,347-noun bank in 11 batches");
    double padded = num(j, "gflop_per_item_padded"), run = num(j, "gflop_per_item");
    ClipConfig tiny;
    clip_config_preset(&tiny, "tiny");
    CHECK(fabs(padded - clip_text_flop(&tiny, 77) / 1e9) <= 1e-5 * padded, "padded = 77 tokens");
    CHECK(run < 0.5 * padded, "short prompts: executed FLOP %g well under padded %g", run, padded);
    double msl = num(j, "mean_seq_len");
    CHECK(msl > 3 && msl < 20, "mean prompt length %g", msl);
    cJSON_Delete(j);
}

TEST(bench_cli_errors) {
    char out[512];
    snprintf(out, sizeof out, "%s", test_path("bench_err.jsonl"));
    expect_fail("bench --arch tiny", 2, "expected encode-images or encode-text", NULL);
    expect_fail("bench encode-audio --arch tiny", 2, "encode-audio", NULL);
    expect_fail("bench encode-images", 2, "exactly one of --weights, --arch", NULL);
    expect_fail("bench encode-images --arch tiny --weights " WEIGHTS, 2, "exactly one", NULL);
    expect_fail("bench encode-images --arch tiny --seq-len 5", 2, "for encode-text", NULL);
    expect_fail("bench encode-text --arch tiny --seq-len 5 --noun-bank", 2, "not both", NULL);
    expect_fail("bench encode-text --arch tiny --limit 5", 2, "--limit needs --noun-bank", NULL);
    expect_fail("bench encode-images --arch tiny --device cpu --precision bf16", 2,
                "CPU backend computes in fp32 only", NULL);
    expect_fail("bench encode-images --arch tiny --device cpu --gemm wmma", 2, "--gemm wmma", NULL);
    expect_fail("bench encode-images --arch tiny --device cpu --precision fp16", 2,
                "unknown precision 'fp16'", NULL);
    expect_fail("bench encode-images --arch small --device cpu", 1, "small", NULL);
    expect_fail("bench encode-text --arch tiny --device cpu --seq-len 78", 1,
                "--seq-len 78 outside [1,77]", NULL);
    expect_fail("bench encode-images --weights tests/nope.safetensors --device cpu", 1,
                "nope.safetensors", NULL);
    expect_fail("bench encode-images --arch tiny --iters 0", 2, "--iters", NULL);
}

TEST(bench_cli_noun_bank_cpu_needs_limit) {
    // ViT-B/32 weights are initialised (about a second) before the size check
    expect_fail("bench encode-text --arch vit-b-32 --device cpu --noun-bank", 1,
                "--noun-bank on the CPU", NULL);
}

TEST(encode_precision_flag_errors_on_cpu) {
    char args[1024], out[512];
    snprintf(out, sizeof out, "%s", test_path("prec_out.npy"));
    snprintf(args, sizeof args, "encode-images --weights %s --pixels tests/fixtures/clip/pixels.npy "
             "--out %s --device cpu --precision tf32", WEIGHTS, out);
    expect_fail(args, 2, "--precision tf32: the CPU backend computes in fp32 only", out);
    snprintf(args, sizeof args, "encode-text --weights %s --tokens tests/fixtures/clip/tokens.npy "
             "--out %s --device cpu --precision bf16 --gemm wmma", WEIGHTS, out);
    expect_fail(args, 2, "--precision bf16", out);
    snprintf(args, sizeof args, "encode-text --weights %s --tokens tests/fixtures/clip/tokens.npy "
             "--out %s --device cpu --gemm tensor", WEIGHTS, out);
    expect_fail(args, 2, "unknown GEMM path 'tensor'", out);
    // explicit fp32 on the CPU is accepted
    snprintf(args, sizeof args, "encode-text --weights %s --tokens tests/fixtures/clip/tokens.npy "
             "--out %s --device cpu --precision fp32 --gemm cublas", WEIGHTS, out);
    char err[4096];
    CHECK(run_laic(args, NULL, err, sizeof err) == 0, "fp32 on CPU: %s", err);
    CHECK(file_exists(out), "fp32 output written");
}

TEST(precision_algo_mapping) {
    struct { const char *dev, *p, *g, *want; } ok[] = {
        {"cuda", "fp32", "cublas", "fp32"},       {"cuda", "tf32", "cublas", "tf32"},
        {"cuda", "bf16", "cublas", "bf16-cublas"}, {"cuda", "bf16", "wmma", "bf16-wmma"},
        {"cuda", "bf16", NULL, "bf16-cublas"},     {"cpu", "fp32", NULL, "fp32"},
        {"cpu", "fp32", "cublas", "fp32"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        const char *a = clip_matmul_algo(ok[i].dev, ok[i].p, ok[i].g);
        CHECK(a && !strcmp(a, ok[i].want), "%s/%s/%s -> %s, want %s", ok[i].dev, ok[i].p,
              ok[i].g ? ok[i].g : "-", a ? a : "NULL", ok[i].want);
    }
    struct { const char *dev, *p, *g, *msg; } bad[] = {
        {"cuda", "fp32", "wmma", "needs --precision bf16"},
        {"cuda", "tf32", "wmma", "needs --precision bf16"},
        {"cpu", "tf32", NULL, "fp32 only"},
        {"cpu", "bf16", "cublas", "fp32 only"},
        {"cpu", "fp32", "wmma", "one GEMM"},
        {"cuda", "fp64", NULL, "unknown precision"},
        {"cuda", "bf16", "cutlass", "unknown GEMM path"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *a = clip_matmul_algo(bad[i].dev, bad[i].p, bad[i].g);
        CHECK(!a && strstr(laic_last_error(), bad[i].msg), "%s/%s/%s -> %s (%s)", bad[i].dev,
              bad[i].p, bad[i].g ? bad[i].g : "-", a ? a : "NULL", laic_last_error());
    }
    CHECK(clip_set_precision(&ops_cpu, "fp32", NULL) == 0, "CPU fp32");
    CHECK(clip_set_precision(&ops_cpu, "bf16", NULL) == -1, "CPU bf16 rejected");
}

TEST(bench_peak_table) {
    CHECK(bench_peak_tflops("NVIDIA H100 80GB HBM3", "bf16") == 989.5, "H100 SXM bf16");
    CHECK(bench_peak_tflops("NVIDIA H100 80GB HBM3", "fp32") == 67.0, "H100 SXM fp32");
    CHECK(bench_peak_tflops("NVIDIA H100 PCIe", "tf32") == 378.0, "H100 PCIe tf32");
    CHECK(bench_peak_tflops("NVIDIA H200", "bf16") == 989.5, "H200 bf16");
    CHECK(bench_peak_tflops("NVIDIA H200 NVL", "bf16") == 835.5, "H200 NVL bf16");
    CHECK(bench_peak_tflops("NVIDIA A100-SXM4-80GB", "bf16") < 0, "unknown device");
    CHECK(bench_peak_tflops("NVIDIA H100 80GB HBM3", "fp16") < 0, "unknown precision");
}

TEST(flop_formulas_match_spec) {
    ClipConfig c;
    REQUIRE(clip_config_preset(&c, "vit-b-32") == 0, "preset");
    double fi = clip_image_flop(&c), ft = clip_text_flop(&c, 77);
    printf("    ViT-B/32: %.4g GFLOP/img, %.4g GFLOP per 77-token prompt\n", fi / 1e9, ft / 1e9);
    CHECK(fabs(fi / 8.8e9 - 1) < 0.01, "image %g vs SPEC 8.8 GFLOP", fi);
    CHECK(fabs(ft / 6.0e9 - 1) < 0.01, "text %g vs SPEC 6.0 GFLOP", ft);
    CHECK(clip_text_flop(&c, 10) < clip_text_flop(&c, 11), "monotone in T");
}

// Random rows of lengths 2..L0 (SOT, ids, EOT = V-1, zeros after).
static void random_tokens(int32_t *tok, size_t N, int L, int V, int maxlen, uint64_t seed) {
    Rng r;
    rng_init(&r, seed, 7);
    memset(tok, 0, N * (size_t)L * sizeof *tok);
    for (size_t i = 0; i < N; i++) {
        int len = 2 + (int)rng_below(&r, (uint64_t)(maxlen - 1));
        int32_t *row = tok + i * L;
        row[0] = V - 2;
        for (int t = 1; t < len - 1; t++) row[t] = 1 + (int32_t)rng_below(&r, (uint64_t)(V - 3));
        row[len - 1] = V - 1;
    }
}

TEST(bucketed_text_equals_per_row) {
    ClipWeights w;
    REQUIRE(clip_weights_load(&w, WEIGHTS) == 0, "%s", laic_last_error());
    const int L = w.cfg.context_length, E = w.cfg.embed_dim, V = w.cfg.vocab_size;
    const size_t N = 37;
    int32_t *tok = malloc(N * L * sizeof *tok);
    random_tokens(tok, N, L, V, 40, 11);
    ClipModel *m8 = clip_model_create(&w, &ops_cpu, 8), *m1 = clip_model_create(&w, &ops_cpu, 1);
    REQUIRE(m8 && m1, "models");
    float *fb = malloc(N * E * sizeof *fb), *fr = malloc(N * E * sizeof *fr);
    ClipBucketStats st;
    REQUIRE(clip_encode_text_bucketed(m8, tok, N, L, fb, NULL, NULL, &st) == 0, "%s",
            laic_last_error());
    double lower = 0;   // every row costs at least its own length
    for (size_t i = 0; i < N; i++) {
        REQUIRE(clip_encode_text(m1, tok + i * L, 1, L, fr + i * E) == 0, "row %zu", i);
        int eot = 0;
        for (int t = 0; t < L; t++)
            if (tok[i * L + t] > tok[i * L + eot]) eot = t;
        lower += clip_text_flop(&w.cfg, eot + 1);
    }
    size_t bitwise = 0;
    double worst = 0;
    for (size_t i = 0; i < N; i++) {
        double mx = 0, d = 0;
        for (int e = 0; e < E; e++) {
            mx = fmax(mx, fabs(fr[i * E + e]));
            d = fmax(d, fabs((double)fb[i * E + e] - fr[i * E + e]));
        }
        worst = fmax(worst, d / mx);
        bitwise += !memcmp(fb + i * E, fr + i * E, E * sizeof(float));
    }
    printf("    bucketed vs per-row: %zu/%zu rows bitwise equal, max rel diff %.3g\n", bitwise, N,
           worst);
    CHECK(worst <= 1e-6, "bucketed rows differ from per-row encoding: %g", worst);
    CHECK(st.batches == 5, "37 rows in batches of 8: %zu batches", st.batches);
    CHECK(st.flop_run >= lower * (1 - 1e-12) && st.flop_run < st.flop_padded,
          "FLOP run %g within [%g, padded %g]", st.flop_run, lower, st.flop_padded);
    // a bad id names the caller's row, not a row of a sorted batch
    tok[5 * L + 1] = V;
    CHECK(clip_encode_text_bucketed(m8, tok, N, L, fb, NULL, NULL, NULL) == -1 &&
          strstr(laic_last_error(), "row 5, position 1"), "error: %s", laic_last_error());
    free(tok);
    free(fb);
    free(fr);
    clip_model_free(m8);
    clip_model_free(m1);
    clip_weights_free(&w);
}

TEST(fit_batch_and_oom_message) {
    ClipConfig c;
    REQUIRE(clip_config_preset(&c, "vit-b-32") == 0, "preset");
    // hand count of one more batch row: pixels + patches (3·224² each), the text tower's 77 rows
    // of x, ln, attn, tmp (C = 768 each), qkv (3C) and fch (H = 3072); pooled, pooled_ln (C),
    // feat (E); plus 77 + 1 int32 token / index slots
    size_t per = 4 * (2 * 3 * 224 * 224 + 77 * (7 * 768 + 3072) + 2 * 768 + 512) + 4 * 78;
    CHECK(clip_model_bytes(&c, 2, 1, 0, 0) - clip_model_bytes(&c, 1, 1, 0, 0) == per,
          "bytes per batch row %zu, want %zu",
          clip_model_bytes(&c, 2, 1, 0, 0) - clip_model_bytes(&c, 1, 1, 0, 0), per);
    CHECK(clip_model_bytes(&c, 0, 1, 0, 0) == 4 * clip_param_count(&c), "B=0: the parameters");
    CHECK(clip_model_bytes(&c, 0, 0, 0, 0) == 0, "CPU: parameters aliased");
    CHECK(clip_model_bytes(&c, 0, 1, 1, 0) == 6 * clip_param_count(&c), "bf16 twin");
    const int bs[] = {1, 7, 100, 4096};
    for (int k = 0; k < 4; k++) {
        for (int bf = 0; bf < 2; bf++) {
            size_t need = clip_model_bytes(&c, bs[k], 1, bf, 0) + CLIP_DEVICE_RESERVE;
            CHECK(clip_fit_batch(&c, need, 1, bf, 0) == bs[k], "fits exactly %d", bs[k]);
            CHECK(clip_fit_batch(&c, need - 1, 1, bf, 0) == bs[k] - 1, "one byte short of %d",
                  bs[k]);
        }
        size_t needt = clip_model_bytes(&c, bs[k], 1, 0, 1) + CLIP_DEVICE_RESERVE;
        CHECK(clip_fit_batch(&c, needt, 1, 0, 1) == bs[k], "train fits %d", bs[k]);
    }
    CHECK(clip_fit_batch(&c, CLIP_DEVICE_RESERVE, 1, 0, 0) == 0, "reserve only");
    // 8 GiB free, 4096 asked: the message names the batch that fits
    size_t freeb = (size_t)8 << 30;
    int fit = clip_fit_batch(&c, freeb, 1, 0, 0);
    CHECK(fit > 100 && fit < 4096, "fit %d", fit);
    CHECK(clip_oom_error(&c, 4096, freeb, 1, 0, 0) == -1, "returns -1");
    char want[64];
    snprintf(want, sizeof want, "use --batch %d or less", fit);
    const char *msg = laic_last_error();
    printf("    %s\n", msg);
    CHECK(strstr(msg, want) && strstr(msg, "max_batch 4096") && !strchr(msg, '\n'),
          "message: %s", msg);
    clip_oom_error(&c, 4, (size_t)300 << 20, 1, 0, 0);
    CHECK(strstr(laic_last_error(), "not even batch 1"), "tiny free: %s", laic_last_error());
}
