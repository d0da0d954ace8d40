/*
 * cmd_init_weights.c — `laic init-weights`: writes CLIP-style random-init weights
 * (weights/FORMAT.md "Random initialisation") for a named architecture.
 *
 * Deterministic for a seed; f16/bf16 files are the f32 values rounded. The file is written
 * atomically, so on any error (bad --arch/--dtype/--seed, unwritable directory) no output exists.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "model/clip.h"
#include "io/err.h"

int cmd_init_weights(int argc, char **argv) {
    CliOpt opts[] = {
        {"--arch", "A", "vit-b-32", "architecture: vit-b-32 or tiny", NULL, 0},
        {"--seed", "S", "0", "random seed (integer >= 0)", NULL, 0},
        {"--out", "W.safetensors", NULL, "output weights file", NULL, 0},
        {"--dtype", "D", "f32", "storage dtype: f32, f16 or bf16", NULL, 0},
    };
    const int n = CLI_N(opts);
    if (cli_parse(argc, argv, "init-weights", "Write CLIP-style random-init weights "
                  "(demos, tests, benchmarks).", opts, n, NULL, 0, NULL))
        return cli_exit_code();
    if (cli_require(opts, n, "--out")) return cli_fail(2);
    const char *arch = cli_get(opts, n, "--arch"), *out = cli_get(opts, n, "--out");
    const char *ds = cli_get(opts, n, "--dtype");
    ClipConfig c;
    if (clip_config_preset(&c, arch)) {
        laic_error("init-weights: --arch '%s' is unknown (expected vit-b-32 or tiny)", arch);
        return cli_fail(2);
    }
    const char *dtype = !strcmp(ds, "f32") ? "F32" : !strcmp(ds, "f16") ? "F16"
                      : !strcmp(ds, "bf16") ? "BF16" : NULL;
    if (!dtype) {
        laic_error("init-weights: --dtype '%s' is unknown (expected f32, f16 or bf16)", ds);
        return cli_fail(2);
    }
    long seed;
    if (cli_get_long(opts, n, "--seed", &seed)) return cli_fail(2);
    if (seed < 0) {
        laic_error("init-weights: --seed must be >= 0 (got %ld)", seed);
        return cli_fail(2);
    }
    ClipWeights w;
    if (clip_weights_init(&w, &c, (uint64_t)seed)) return cli_fail(1);
    char seed_s[32];
    snprintf(seed_s, sizeof seed_s, "%ld", seed);
    const char *meta[] = {"source", "init-weights", "source_sha256", "none",
                          "arch", arch, "seed", seed_s};
    int rc = clip_weights_save(&w, out, dtype, meta, 4);
    size_t np = w.n_params;
    clip_weights_free(&w);
    if (rc) return cli_fail(1);
    fprintf(stderr, "init-weights: %s (%s, seed %ld, %zu parameters, %s)\n", out, arch, seed, np,
            dtype);
    return 0;
}
