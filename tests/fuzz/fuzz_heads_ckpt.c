/*
 * fuzz_heads_ckpt.c — the checkpoints of the trained-head methods and of SEIC read back from a
 * file of any content: host/train/heads.c heads_ckpt_load (sic.ckpt, tac-train.ckpt: header,
 * per-head kinds and sizes, settings record, payload size, SHA-256, best-epoch parameters) and
 * host/train/seic.c seic_ckpt_load (seic_stage1/2.ckpt: header, sizes, checksum, settings text,
 * finite parameters). The input's first byte picks the reader (even: heads, odd: SEIC), the rest
 * is the file. The heads a checkpoint is loaded into are fixed: a Linear head (D 4, K 3) and an
 * MLP head (D 4, H 5, K 3) on the CPU backend, with room for best-epoch parameters.
 *
 * Seeds: `LAIC_FUZZ_WRITE_SEEDS=DIR build-fuzz/fuzz/fuzz_heads_ckpt` writes valid checkpoints of
 * both kinds through the real writers (heads_ckpt_save, seic_ckpt_save) into DIR and exits; the
 * committed ones are in tests/fuzz/corpus/heads_ckpt/. LAIC_FUZZ_VERBOSE=1 prints what the reader
 * made of each input (replay: `LAIC_FUZZ_VERBOSE=1 build-fuzz/fuzz/fuzz_heads_ckpt FILE`).
 */
#include <stdlib.h>
#include <string.h>

#include "io/err.h"
#include "ops.h"
#include "train/heads.h"
#include "train/seic.h"
#include "fuzz.h"

#define HP "sic.lr=0.0001;sic.batch=128;"

static Head g_heads[2];
static Head *g_hp[2] = {&g_heads[0], &g_heads[1]};
static size_t g_nbest;

static void make_heads(void) {
    const OpsBackend *o = ops_get("cpu");
    if (!o || head_create(&g_heads[0], o, HEAD_LINEAR, 4, 0, 3, 8) ||
        head_create(&g_heads[1], o, HEAD_MLP, 4, 5, 3, 8)) {
        fprintf(stderr, "fuzz_heads_ckpt: %s\n", laic_last_error());
        abort();
    }
    g_nbest = g_heads[0].n_params + g_heads[1].n_params;
}

static void write_seeds(const char *dir) {
    char p[1024];
    HeadsRunState st;
    memset(&st, 0, sizeof st);
    snprintf(st.hparams, sizeof st.hparams, "%s", HP);
    for (int i = 0; i < 2; i++) head_init_params(&g_heads[i], HEAD_INIT_TAC, 7, (uint64_t)i);
    st.epoch = 3;
    float *best = calloc(g_nbest, sizeof *best);
    snprintf(p, sizeof p, "%s/heads-two", dir);
    int bad = !best || heads_ckpt_save(p, g_hp, 2, &st, NULL, 0);   // the payload only
    st.best_epoch = 2, st.best_acc = 0.75;
    snprintf(p, sizeof p, "%s/heads-two-best", dir);
    bad = bad || heads_ckpt_save(p, g_hp, 2, &st, best, g_nbest);       // with best parameters
    free(best);
    for (int stage = 1; stage <= 2 && !bad; stage++) {                   // SEIC, K 3, E 4
        SeicLayout L;
        seic_layout(&L, 3, 4);
        SeicState s;
        seic_state_alloc(&s, &L, stage == 2 ? 6 : 0);
        seic_heads_init(s.p, &L, 0.5, 11);
        s.stage = stage, s.K = 3, s.E = 4, s.epoch = 1, s.step = 5, s.seed = 1234;
        s.hparams = (char *)"seic.lr = 0.0001\n";
        snprintf(p, sizeof p, "%s/seic-stage%d", dir, stage);
        bad = seic_ckpt_save(p, &s) != 0;
        s.hparams = NULL;
        seic_state_free(&s);
    }
    if (bad) {
        fprintf(stderr, "fuzz_heads_ckpt: writing seeds: %s\n", laic_last_error());
        exit(1);
    }
    // the harness reads "<selector byte><file>": prefix each file with its selector
    const char *names[4] = {"heads-two", "heads-two-best", "seic-stage1", "seic-stage2"};
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        FILE *f = fopen(p, "rb");
        if (!f) exit(1);
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        rewind(f);
        unsigned char *buf = malloc((size_t)n + 1);
        buf[0] = (unsigned char)(i < 2 ? 0 : 1);
        if (fread(buf + 1, 1, (size_t)n, f) != (size_t)n) exit(1);
        fclose(f);
        f = fopen(p, "wb");
        if (!f || fwrite(buf, 1, (size_t)n + 1, f) != (size_t)n + 1 || fclose(f)) exit(1);
        free(buf);
    }
    fprintf(stderr, "fuzz_heads_ckpt: 4 seeds written to %s\n", dir);
    exit(0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    make_heads();
    const char *dir = getenv("LAIC_FUZZ_WRITE_SEEDS");
    if (dir && *dir) write_seeds(dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int rc;
    const char *p = fuzz_file(0, "h.ckpt", data + 1, size - 1);
    if (data[0] % 2 == 0) {
        static float *best;
        if (!best) best = malloc(g_nbest * sizeof *best);
        HeadsRunState st;
        memset(&st, 0, sizeof st);
        snprintf(st.hparams, sizeof st.hparams, "%s", HP);
        int has_best = 0;
        rc = heads_ckpt_load(p, g_hp, 2, &st, best, g_nbest, &has_best);
    } else {
        SeicState s;
        rc = seic_ckpt_load(p, &s);
        if (rc == 0) seic_state_free(&s);
    }
    if (getenv("LAIC_FUZZ_VERBOSE"))   // replaying one input: say what the reader made of it
        fprintf(stderr, "fuzz_heads_ckpt: %s\n", rc == 0 ? "loaded" : laic_last_error());
    return 0;
}
