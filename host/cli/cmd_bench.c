/*
 * cmd_bench.c — `laic bench encode-images|encode-text`: encoder throughput on one backend and
 * GEMM path, as JSON lines on stdout (one line per run; the schema bench/bench_encoders.py
 * writes for PyTorch, so bench/bench_gpu_encoders.sh can put both in one table).
 *
 *   laic bench encode-images|encode-text (--weights W | --arch vit-b-32|tiny [--seed S])
 *              [--precision fp32|tf32|bf16] [--gemm cublas|wmma] [--batch N]
 *              [--device cpu|cuda|auto] [--iters N] [--warmup N] [--threads N]
 *              [--seq-len L | --noun-bank [--wordnet F] [--limit N] [--vocab V]]
 *
 * What is timed: one call of clip_encode_images / clip_encode_text per iteration (host input
 * copied to the backend, the forward, features copied back, backend synchronised), after
 * --warmup untimed calls, on the host clock (now_seconds, monotonic). The line reports the
 * median iteration: items/s = batch / median, TFLOP/s = FLOP per batch / median. Weights load
 * and model creation are excluded.
 * Inputs: seeded random normalised pixels; text rows of exactly --seq-len tokens (SOT, random
 * ids, EOT = the largest id at position L-1, zeros after), so every batch runs T = L tokens.
 * --noun-bank: the WordNet noun bank × the 7 prompt templates (SPEC §4; 146,347 × 7 = 1,024,429
 * prompts), or its first --limit prompts, tokenized (timed apart: seconds_tokenize) and
 * encoded once with clip_encode_text_bucketed (seconds_encode; items_per_s excludes tokenizing,
 * items_per_s_incl_tokenize includes it). On the CPU the full bank at ViT-B/32 size would take
 * ~35 h (SPEC §13): it needs --arch tiny (a small model) or --limit.
 * FLOP: clip_image_flop / clip_text_flop (host/model/clip.h; 8.82 GFLOP per ViT-B/32 image, 5.96 per
 * 77-token prompt), text at the sequence length really run (each bucketed batch's longest EOT
 * + 1). % of peak uses the dense datasheet peak of the GPU for the precision (bench_peak_tflops
 * below); null for the CPU and for unknown GPUs.
 * Errors: one line, exit 2 for usage (bad mode or flag combination), 1 otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "model/clip.h"
#include "cpu/cpu_ops.h"
#include "io/err.h"
#include "data/nouns.h"
#include "ops.h"
#include "io/progress.h"
#include "rng.h"
#include "model/tokenizer.h"

// --- peaks ----------------------------------------------------------------------------------
// Dense (no 2:4 sparsity) peak TFLOP/s by NVIDIA's datasheets; the datasheets print the tensor
// rates with sparsity, halved here. fp32 = the CUDA-core FP32 rate (cuBLAS sgemm, TF32 off).
//   H100 SXM5   (H100 datasheet, "H100 SXM"):  FP32 67,  TF32 989/2,  BF16 1979/2
//   H100 PCIe   (H100 datasheet, "H100 PCIe"): FP32 51,  TF32 756/2,  BF16 1513/2
//   H100 NVL    (H100 datasheet, "H100 NVL"):  FP32 60,  TF32 835/2,  BF16 1671/2
//   H200 SXM    (H200 datasheet, "H200 SXM"):  FP32 67,  TF32 989/2,  BF16 1979/2
//   H200 NVL    (H200 datasheet, "H200 NVL"):  FP32 60,  TF32 835/2,  BF16 1671/2
// The name is cudaDeviceProp.name: "NVIDIA H100 80GB HBM3" (SXM), "NVIDIA H100 PCIe",
// "NVIDIA H100 NVL", "NVIDIA H200", "NVIDIA H200 NVL". Anything else is unknown (-1).
typedef struct { const char *key; double fp32, tf32, bf16; } Peak;
static const Peak k_peaks[] = {
    {"H100 SXM", 67.0, 494.5, 989.5},
    {"H100 PCIe", 51.0, 378.0, 756.5},
    {"H100 NVL", 60.0, 417.5, 835.5},
    {"H200 SXM", 67.0, 494.5, 989.5},
    {"H200 NVL", 60.0, 417.5, 835.5},
};

double bench_peak_tflops(const char *device_name, const char *precision) {
    if (!device_name || !precision) return -1.0;
    const char *key = NULL;
    int nvl = strstr(device_name, "NVL") != NULL;
    if (strstr(device_name, "H200")) key = nvl ? "H200 NVL" : "H200 SXM";
    else if (strstr(device_name, "H100")) {
        if (strstr(device_name, "PCIe")) key = "H100 PCIe";
        else if (nvl) key = "H100 NVL";
        else if (strstr(device_name, "HBM3") || strstr(device_name, "SXM")) key = "H100 SXM";
    }
    if (!key) return -1.0;
    for (size_t i = 0; i < sizeof k_peaks / sizeof k_peaks[0]; i++)
        if (!strcmp(k_peaks[i].key, key)) {
            if (!strcmp(precision, "fp32")) return k_peaks[i].fp32;
            if (!strcmp(precision, "tf32")) return k_peaks[i].tf32;
            if (!strcmp(precision, "bf16")) return k_peaks[i].bf16;
        }
    return -1.0;
}

// --- helpers ----------------------------------------------------------------------------------

// The device's name: the first GPU's for CUDA, the CPU model for the CPU.
static void device_name(const OpsBackend *ops, char *buf, size_t n) {
    snprintf(buf, n, "unknown");
#ifdef LAIC_CUDA
    if (ops == &ops_cuda) {
        char d[1024];
        ops_cuda_describe(d, sizeof d);   // "0: NAME, sm_90, 79.1 GiB"
        char *s = strstr(d, ": "), *e = s ? strstr(s, ", sm_") : NULL;
        if (s && e) snprintf(buf, n, "%.*s", (int)(e - s - 2), s + 2);
        return;
    }
#endif
    (void)ops;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            char *v = strchr(line, ':') + 1;
            while (*v == ' ') v++;
            v[strcspn(v, "\n")] = 0;
            snprintf(buf, n, "%s", v);
            break;
        }
    fclose(f);
}

// JSON string body: the name fields come from files and devices, so escape what JSON needs.
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", (unsigned char)*s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

static void json_num(FILE *f, const char *key, double v) {
    if (v < 0) fprintf(f, ", \"%s\": null", key);
    else fprintf(f, ", \"%s\": %.6g", key, v);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// One token row of exactly len tokens (EOT at len-1): SOT, random ids below the two special
// ids, EOT = vocab-1 (the largest id, as CLIP's argmax needs), zeros after.
static void random_row(int32_t *row, int L, int len, int V, Rng *r) {
    memset(row, 0, (size_t)L * sizeof *row);
    for (int t = 0; t < len - 1; t++) row[t] = 1 + (int32_t)rng_below(r, (uint64_t)(V - 3));
    if (len > 1) row[0] = V - 2;   // SOT
    row[len - 1] = V - 1;          // EOT
}

typedef struct {
    const char *mode, *impl, *dev, *dev_name, *precision, *gemm, *algo, *weights;
    int batch, iters, warmup, seq_len;
} Line;

// The fields every line shares, without the closing brace.
static void line_head(FILE *f, const Line *l) {
    fprintf(f, "{\"bench\": ");
    json_str(f, l->mode);
    fprintf(f, ", \"impl\": \"laic\", \"variant\": ");
    json_str(f, l->algo);
    fprintf(f, ", \"device\": ");
    json_str(f, l->dev);
    fprintf(f, ", \"device_name\": ");
    json_str(f, l->dev_name);
    fprintf(f, ", \"precision\": ");
    json_str(f, l->precision);
    fprintf(f, ", \"gemm\": ");
    json_str(f, l->gemm);
    fprintf(f, ", \"weights\": ");
    json_str(f, l->weights);
    fprintf(f, ", \"batch\": %d", l->batch);
}

// --- the command --------------------------------------------------------------------------

int cmd_bench(int argc, char **argv) {
    CliOpt opts[] = {
        {"--weights", "W", NULL, "CLIP weights (.safetensors); or --arch", NULL, 0},
        {"--arch", "A", NULL, "random-init weights of vit-b-32 or tiny (no file)", NULL, 0},
        {"--seed", "S", "0", "seed of --arch weights and of the random inputs", NULL, 0},
        {"--precision", "P", "fp32", "matmul precision: fp32, tf32 or bf16 (CPU: fp32)", NULL, 0},
        {"--gemm", "G", "cublas", "CUDA GEMM path: cublas or wmma (wmma: bf16 only)", NULL, 0},
        {"--batch", "N", "0", "items per forward (0: 256 images / 1024 prompts on CUDA, 16 / 64 "
         "on the CPU)", NULL, 0},
        {"--device", "D", "auto", "cpu, cuda or auto", NULL, 0},
        {"--iters", "N", "10", "timed forwards (median reported)", NULL, 0},
        {"--warmup", "N", "2", "untimed forwards first", NULL, 0},
        {"--threads", "N", "0", "CPU threads (0 = OpenMP default: all cores)", NULL, 0},
        {"--seq-len", "L", "0", "encode-text: tokens per prompt incl. SOT/EOT (0: context)",
         NULL, 0},
        {"--noun-bank", NULL, NULL, "encode-text: the WordNet noun bank x 7 templates, once",
         NULL, 0},
        {"--wordnet", "F", NOUNS_DEFAULT_PATH, "--noun-bank: WordNet data.noun", NULL, 0},
        {"--limit", "N", "0", "--noun-bank: first N prompts only (0: all)", NULL, 0},
        {"--vocab", "V", NULL, "--noun-bank: BPE vocabulary (default: the installed one)", NULL,
         0},
    };
    int n = CLI_N(opts);
    const char *pos[1];
    int npos = 0;
    if (cli_parse(argc, argv, "bench",
                  "Encoder throughput (encode-images | encode-text) as JSON lines on stdout.",
                  opts, n, pos, 1, &npos))
        return cli_exit_code();
    if (npos != 1 || (strcmp(pos[0], "encode-images") && strcmp(pos[0], "encode-text"))) {
        laic_error("bench: expected encode-images or encode-text%s%s ---> HINT: laic bench "
                   "encode-images --arch vit-b-32", npos ? ", got " : "", npos ? pos[0] : "");
        return cli_fail(2);
    }
    const char *mode = pos[0];
    const int text = !strcmp(mode, "encode-text");
    const char *wpath = cli_get(opts, n, "--weights"), *arch = cli_get(opts, n, "--arch");
    const int bank = cli_flag(opts, n, "--noun-bank");
    long seed, batch, iters, warmup, threads, seq_len, limit;
    if (cli_get_long_range(opts, n, "bench", "--seed", 0, 0x7fffffffL, &seed) ||
        cli_get_long_range(opts, n, "bench", "--batch", 0, 65536, &batch) ||
        cli_get_long_range(opts, n, "bench", "--iters", 1, 1000000, &iters) ||
        cli_get_long_range(opts, n, "bench", "--warmup", 0, 1000000, &warmup) ||
        cli_get_long_range(opts, n, "bench", "--threads", 0, 4096, &threads) ||
        cli_get_long_range(opts, n, "bench", "--seq-len", 0, 65536, &seq_len) ||
        cli_get_long_range(opts, n, "bench", "--limit", 0, 1L << 40, &limit))
        return cli_fail(2);
    if (!!wpath + !!arch != 1) {
        laic_error("bench: give exactly one of --weights, --arch");
        return cli_fail(2);
    }
    if (!text && (seq_len || bank)) {
        laic_error("bench: --seq-len and --noun-bank are for encode-text");
        return cli_fail(2);
    }
    if (bank && seq_len) {
        laic_error("bench: give --seq-len or --noun-bank, not both");
        return cli_fail(2);
    }
    if (!bank && limit) {
        laic_error("bench: --limit needs --noun-bank");
        return cli_fail(2);
    }
    cpu_set_threads((int)threads);
    const OpsBackend *ops = ops_get(cli_get(opts, n, "--device"));
    if (!ops) return cli_fail(2);
    const char *prec = cli_get(opts, n, "--precision"), *gemm = cli_get(opts, n, "--gemm");
    const char *algo = clip_matmul_algo(ops->name, prec, gemm);
    if (!algo || clip_set_precision(ops, prec, gemm)) return cli_fail(2);
    const int on_cpu = !strcmp(ops->name, "cpu");

    int rc = 1;
    ClipWeights w;
    memset(&w, 0, sizeof w);
    ClipModel *m = NULL;
    float *in = NULL, *feat = NULL;
    int32_t *tok = NULL;
    Nouns nb;
    memset(&nb, 0, sizeof nb);
    Tokenizer *tz = NULL;
    double *times = NULL;
    char wdesc[4200];
    if (wpath) {
        if (clip_weights_load(&w, wpath)) goto fail;
        snprintf(wdesc, sizeof wdesc, "%s", wpath);
    } else {
        ClipConfig c;
        if (clip_config_preset(&c, arch) || clip_weights_init(&w, &c, (uint64_t)seed)) goto fail;
        snprintf(wdesc, sizeof wdesc, "random-init %s seed %ld", arch, seed);
    }
    const ClipConfig *c = &w.cfg;
    const int S = c->image_size, E = c->embed_dim, L = c->context_length;
    if (seq_len > L) {
        laic_error("bench: --seq-len %ld outside [1,%d] (the context length)", seq_len, L);
        goto fail;
    }
    if (bank && on_cpu && !limit && clip_param_count(c) > 20000000) {
        laic_error("bench: --noun-bank on the CPU with a %.0fM-parameter model would take hours "
                   "---> HINT: add --limit N (e.g. 2048) or use --arch tiny",
                   clip_param_count(c) / 1e6);
        goto fail;
    }
    int B = batch ? (int)batch : on_cpu ? (text ? 64 : 16) : (text ? 1024 : 256);
    char dname[256];
    device_name(ops, dname, sizeof dname);
    const double peak = on_cpu ? -1.0 : bench_peak_tflops(dname, prec);
    Line ln = {mode, "laic", ops->name, dname, prec, on_cpu ? "openblas" : gemm, algo, wdesc,
               B, (int)iters, (int)warmup, text ? (seq_len ? (int)seq_len : L) : 0};
    Rng rng;
    rng_init(&rng, (uint64_t)seed, 4242);

    if (bank) {
        // --- the noun bank, once -------------------------------------------------------------
        if (nouns_load(&nb, cli_get(opts, n, "--wordnet"))) goto fail;
        size_t np = nb.n * NOUNS_N_TEMPLATES;
        if (limit && (size_t)limit < np) np = (size_t)limit;
        const char *vp = cli_get(opts, n, "--vocab");
        if (!vp && !(vp = tokenizer_default_vocab_path())) goto fail;
        if (!(tz = tokenizer_load(vp))) goto fail;
        tok = mallocCheck(np * (size_t)L * sizeof *tok);
        double t0 = now_seconds();
        for (size_t i = 0; i < np; i++) {
            char buf[1024];
            int len = nouns_prompt(buf, sizeof buf, (int)(i % NOUNS_N_TEMPLATES),
                                   nb.text[i / NOUNS_N_TEMPLATES]);
            if (len < 0 || tokenizer_tokenize(tz, buf, strlen(buf), L, tok + i * L) < 0) {
                laic_error("bench: noun-bank prompt %zu could not be tokenized: %s", i,
                           laic_last_error());
                goto fail;
            }
        }
        double t_tok = now_seconds() - t0;
        if ((size_t)B > np) B = (int)np;
        ln.batch = B;
        if (!(m = clip_model_create(&w, ops, B))) goto fail;
        feat = mallocCheck(np * (size_t)E * sizeof *feat);
        for (long i = 0; i < warmup; i++)   // warm-up on the first batch (handles, heuristics)
            if (clip_encode_text(m, tok, B, L, feat)) goto fail;
        ClipBucketStats st;
        t0 = now_seconds();
        if (clip_encode_text_bucketed(m, tok, np, L, feat, NULL, NULL, &st)) goto fail;
        double t_enc = now_seconds() - t0;
        ln.iters = 1;
        line_head(stdout, &ln);
        printf(", \"noun_bank\": true, \"nouns\": %zu, \"templates\": %d, \"items\": %zu, "
               "\"unit\": \"prompt\", \"batches\": %zu, \"warmup\": %ld",
               nb.n, NOUNS_N_TEMPLATES, np, st.batches, warmup);
        double tsum = 0;   // mean tokens per prompt incl. SOT/EOT (EOT = first argmax)
        for (size_t i = 0; i < np; i++) {
            const int32_t *row = tok + i * L;
            int best = 0;
            for (int t = 1; t < L; t++)
                if (row[t] > row[best]) best = t;
            tsum += best + 1;
        }
        json_num(stdout, "mean_seq_len", tsum / np);
        printf(", \"seconds_tokenize\": %.6g, \"seconds_encode\": %.6g", t_tok, t_enc);
        json_num(stdout, "items_per_s", np / t_enc);
        json_num(stdout, "items_per_s_incl_tokenize", np / (t_enc + t_tok));
        json_num(stdout, "gflop_per_item", st.flop_run / np / 1e9);
        json_num(stdout, "gflop_per_item_padded", st.flop_padded / np / 1e9);
        json_num(stdout, "tflops", st.flop_run / t_enc / 1e12);
        json_num(stdout, "peak_tflops", peak);
        json_num(stdout, "pct_peak", peak > 0 ? 100.0 * st.flop_run / t_enc / 1e12 / peak : -1);
        printf(", \"flop_basis\": \"executed: each bucketed batch at its longest EOT + 1\"}\n");
        rc = 0;
        goto done;
    }

    // --- fixed batches ----------------------------------------------------------------------
    if (!(m = clip_model_create(&w, ops, B))) goto fail;
    feat = mallocCheck((size_t)B * E * sizeof *feat);
    int T = ln.seq_len;
    if (text) {
        tok = mallocCheck((size_t)B * L * sizeof *tok);
        for (int b = 0; b < B; b++) random_row(tok + (size_t)b * L, L, T, c->vocab_size, &rng);
    } else {
        size_t np = (size_t)B * 3 * S * S;
        in = mallocCheck(np * sizeof *in);
        for (size_t i = 0; i < np; i++) in[i] = (float)rng_normal(&rng);
    }
    times = mallocCheck((size_t)iters * sizeof *times);
    for (long i = 0; i < warmup + iters; i++) {
        double t0 = now_seconds();
        int e = text ? clip_encode_text(m, tok, B, L, feat) : clip_encode_images(m, in, B, feat);
        if (e) goto fail;
        if (i >= warmup) times[i - warmup] = now_seconds() - t0;
    }
    qsort(times, (size_t)iters, sizeof *times, cmp_double);
    double med = iters % 2 ? times[iters / 2] : 0.5 * (times[iters / 2 - 1] + times[iters / 2]);
    double fl = text ? clip_text_flop(c, T) : clip_image_flop(c);   // per item
    line_head(stdout, &ln);
    if (text) printf(", \"seq_len\": %d", T);
    printf(", \"unit\": \"%s\", \"iters\": %ld, \"warmup\": %ld", text ? "prompt" : "img", iters,
           warmup);
    json_num(stdout, "ms_median", med * 1e3);
    json_num(stdout, "ms_min", times[0] * 1e3);
    json_num(stdout, "ms_max", times[iters - 1] * 1e3);
    json_num(stdout, "items_per_s", B / med);
    json_num(stdout, "gflop_per_item", fl / 1e9);
    json_num(stdout, "tflops", B * fl / med / 1e12);
    json_num(stdout, "peak_tflops", peak);
    json_num(stdout, "pct_peak", peak > 0 ? 100.0 * B * fl / med / 1e12 / peak : -1);
    printf("}\n");
    rc = 0;
    goto done;
fail:
    cli_fail(1);
done:
    fflush(stdout);
    free(times);
    free(in);
    free(feat);
    free(tok);
    tokenizer_free(tz);
    nouns_free(&nb);
    clip_model_free(m);
    clip_weights_free(&w);
    return rc;
}
