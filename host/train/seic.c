/*
 * seic.c — SEIC stage-1 training, state and checkpoints (promises in seic.h).
 *
 * The step's backend arena (one allocation, carve order below): x, t (B,E) the batch rows;
 * per modality u, z (B,E), l (B,K), dz, du (B,E), dl (B,K); tmp (B,E); p, g, m, v (n);
 * hist (K); sched (3) double; terms (5) double. The batch rows are gathered on the host and
 * uploaded (2·b·E floats per step); everything else stays on the backend between steps and
 * is copied back at each epoch's end (checkpoint).
 */
#include "train/seic.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/atomic.h"
#include "io/err.h"
#include "io/hash.h"
#include "io/progress.h"
#include "model/augment.h"
#include "model/image.h"
#include "train/log.h"
#include "train/optim.h"
#include "train/train.h"
#include "train/vit.h"

#define SHUFFLE_STREAM 0x5E1C5EEDull
#define INIT_STREAM 0x5E1C1417ull

// --- parameters ----------------------------------------------------------------------------------

void seic_layout(SeicLayout *L, int K, int E) {
    const size_t k = (size_t)K, e = (size_t)E;
    const size_t sz[SEIC_NTENSORS] = {e * e, e, k * e, k, e * e, e, k * e, k, 1};
    L->K = K, L->E = E;
    L->off[0] = 0;
    for (int i = 0; i < SEIC_NTENSORS; i++) L->off[i + 1] = L->off[i] + sz[i];
    L->n = L->off[SEIC_NTENSORS];
    L->n_img = L->off[SEIC_WP_T];
}

void seic_heads_init(float *p, const SeicLayout *L, double tau_ins, uint64_t seed) {
    Rng r;
    rng_init(&r, seed, INIT_STREAM);
    memset(p, 0, L->n * sizeof *p);
    const int W[4] = {SEIC_WP_I, SEIC_WC_I, SEIC_WP_T, SEIC_WC_T};
    for (int k = 0; k < 4; k++)
        for (size_t i = L->off[W[k]]; i < L->off[W[k] + 1]; i++) {
            double v;
            do v = 0.02 * rng_normal(&r);
            while (v < -2.0 || v > 2.0);   // torch trunc_normal_'s a = -2, b = 2 (absolute)
            p[i] = (float)v;
        }
    p[L->off[SEIC_LOGS]] = (float)log(1.0 / tau_ins);
}

// --- state and checkpoint ---------------------------------------------------------------------

void seic_state_alloc(SeicState *s, const SeicLayout *L, size_t n_extra) {
    memset(s, 0, sizeof *s);
    s->K = L->K, s->E = L->E;
    s->p = callocCheck(L->n, sizeof *s->p);
    s->m = callocCheck(L->n, sizeof *s->m);
    s->v = callocCheck(L->n, sizeof *s->v);
    s->hist = mallocCheck((size_t)L->K * sizeof *s->hist);
    for (int c = 0; c < L->K; c++) s->hist[c] = (float)(1.0 / L->K);
    s->n_extra = n_extra;
    s->extra = callocCheck(n_extra ? n_extra : 1, sizeof *s->extra);
}

void seic_state_free(SeicState *s) {
    free(s->hparams);
    free(s->path);
    free(s->p);
    free(s->m);
    free(s->v);
    free(s->hist);
    free(s->extra);
    memset(s, 0, sizeof *s);
}

void seic_state_copy(SeicState *dst, const SeicState *src) {
    SeicLayout L;
    seic_layout(&L, src->K, src->E);
    seic_state_alloc(dst, &L, src->n_extra);
    float *p = dst->p, *m = dst->m, *v = dst->v, *h = dst->hist, *x = dst->extra;
    *dst = *src;
    dst->p = p, dst->m = m, dst->v = v, dst->hist = h, dst->extra = x;
    dst->hparams = src->hparams ? strdup(src->hparams) : NULL;
    dst->path = src->path ? strdup(src->path) : NULL;
    memcpy(p, src->p, L.n * sizeof *p);
    memcpy(m, src->m, L.n * sizeof *m);
    memcpy(v, src->v, L.n * sizeof *v);
    memcpy(h, src->hist, (size_t)L.K * sizeof *h);
    if (src->n_extra) memcpy(x, src->extra, src->n_extra * sizeof *x);
}

static void put64(int32_t *h, uint64_t v) {
    h[0] = (int32_t)(uint32_t)(v & 0xffffffffu);
    h[1] = (int32_t)(uint32_t)(v >> 32);
}
static uint64_t get64(const int32_t *h) { return (uint64_t)(uint32_t)h[0] | ((uint64_t)(uint32_t)h[1] << 32); }

enum { H_STAGE = 2, H_K, H_E, H_EPOCH, H_STEP, H_SEED = 8, H_NEXTRA = 10, H_HPLEN = 12, H_SUM = 13 };
#define SEIC_HASH_SEED 0x5E1CC4B7ull

// The checksum: the header with its checksum words zeroed, then every part in file order.
static uint64_t ckpt_sum(const int32_t *h, const SeicState *s, size_t n, const char *hp, size_t hp_len) {
    int32_t hz[256];
    memcpy(hz, h, sizeof hz);
    hz[H_SUM] = hz[H_SUM + 1] = 0;
    uint64_t x = laic_hash64(hz, sizeof hz, SEIC_HASH_SEED);
    x = laic_hash64(s->p, n * sizeof(float), x);
    x = laic_hash64(s->m, n * sizeof(float), x);
    x = laic_hash64(s->v, n * sizeof(float), x);
    x = laic_hash64(s->hist, (size_t)s->K * sizeof(float), x);
    x = laic_hash64(s->rng.s, sizeof s->rng.s, x);
    x = laic_hash64(s->conf, sizeof s->conf, x);
    x = laic_hash64(s->extra, s->n_extra * sizeof(float), x);
    return laic_hash64(hp, hp_len, x);
}

int seic_ckpt_save(const char *path, const SeicState *s) {
    SeicLayout L;
    seic_layout(&L, s->K, s->E);
    const char *hp = s->hparams ? s->hparams : "";
    const size_t hp_len = strlen(hp);
    if (hp_len > SEIC_CKPT_MAX_HPARAMS) return laic_error("%s: %zu bytes of settings text", path, hp_len);
    int32_t h[256] = {0};
    h[0] = SEIC_CKPT_MAGIC;
    h[1] = SEIC_CKPT_VERSION;
    h[H_STAGE] = s->stage;
    h[H_K] = s->K;
    h[H_E] = s->E;
    h[H_EPOCH] = s->epoch;
    put64(h + H_STEP, (uint64_t)s->step);
    put64(h + H_SEED, s->seed);
    put64(h + H_NEXTRA, (uint64_t)s->n_extra);
    h[H_HPLEN] = (int32_t)hp_len;
    put64(h + H_SUM, ckpt_sum(h, s, L.n, hp, hp_len));
    AtomicFile af;
    if (atomic_open(&af, path)) return -1;
    int ok = fwrite(h, sizeof h, 1, af.fp) == 1 && fwrite(s->p, sizeof(float), L.n, af.fp) == L.n &&
             fwrite(s->m, sizeof(float), L.n, af.fp) == L.n &&
             fwrite(s->v, sizeof(float), L.n, af.fp) == L.n &&
             fwrite(s->hist, sizeof(float), (size_t)s->K, af.fp) == (size_t)s->K &&
             fwrite(s->rng.s, sizeof(uint64_t), 4, af.fp) == 4 &&
             fwrite(s->conf, sizeof(double), 3, af.fp) == 3 &&
             (!s->n_extra || fwrite(s->extra, sizeof(float), s->n_extra, af.fp) == s->n_extra) &&
             (!hp_len || fwrite(hp, 1, hp_len, af.fp) == hp_len);
    if (!ok) {
        atomic_abort(&af);
        return laic_error("%s: write failed", path);
    }
    return atomic_commit(&af);
}

int seic_ckpt_load(const char *path, SeicState *s) {
    memset(s, 0, sizeof *s);
    FILE *fp = fopen(path, "rb");
    if (!fp) return laic_error("%s: cannot open SEIC checkpoint", path);
    int32_t h[256];
    struct stat st;
    if (fstat(fileno(fp), &st) || fread(h, sizeof h, 1, fp) != 1) {
        fclose(fp);
        return laic_error("%s: not a SEIC checkpoint (shorter than its 1024-byte header)", path);
    }
    const uint64_t n_extra = get64(h + H_NEXTRA);
    const char *bad = NULL;
    if (h[0] != SEIC_CKPT_MAGIC) bad = "bad magic number (not a SEIC checkpoint)";
    else if (h[1] != SEIC_CKPT_VERSION) bad = "unsupported SEIC checkpoint version";
    else if ((h[H_STAGE] != 1 && h[H_STAGE] != 2) || h[H_K] < 1 || h[H_K] > (1 << 24) || h[H_E] < 1 ||
             h[H_E] > (1 << 16) || h[H_EPOCH] < 0 || (int64_t)get64(h + H_STEP) < 0 ||
             n_extra > ((uint64_t)1 << 40) || h[H_HPLEN] < 0 || h[H_HPLEN] > SEIC_CKPT_MAX_HPARAMS)
        bad = "corrupt header";
    if (bad) {
        fclose(fp);
        if (h[0] == SEIC_CKPT_MAGIC && h[1] != SEIC_CKPT_VERSION)
            return laic_error("%s: SEIC checkpoint version %d, this build reads version %d", path,
                              (int)h[1], SEIC_CKPT_VERSION);
        return laic_error("%s: %s", path, bad);
    }
    SeicLayout L;
    seic_layout(&L, h[H_K], h[H_E]);   // K < 2^24, E < 2^16: no overflow in 64-bit sizes
    const size_t hp_len = (size_t)h[H_HPLEN];
    const uint64_t want = sizeof h + (3 * (uint64_t)L.n + (uint64_t)h[H_K] + n_extra) * sizeof(float) +
                          4 * sizeof(uint64_t) + 3 * sizeof(double) + hp_len;
    if ((uint64_t)st.st_size != want) {
        fclose(fp);
        return laic_error("%s: size %lld bytes, header (K=%d E=%d, %llu adapter floats) needs %llu",
                          path, (long long)st.st_size, (int)h[H_K], (int)h[H_E],
                          (unsigned long long)n_extra, (unsigned long long)want);
    }
    seic_state_alloc(s, &L, (size_t)n_extra);
    s->stage = h[H_STAGE];
    s->epoch = h[H_EPOCH];
    s->step = (int64_t)get64(h + H_STEP);
    s->seed = get64(h + H_SEED);
    s->hparams = mallocCheck(hp_len + 1);
    int ok = fread(s->p, sizeof(float), L.n, fp) == L.n && fread(s->m, sizeof(float), L.n, fp) == L.n &&
             fread(s->v, sizeof(float), L.n, fp) == L.n &&
             fread(s->hist, sizeof(float), (size_t)s->K, fp) == (size_t)s->K &&
             fread(s->rng.s, sizeof(uint64_t), 4, fp) == 4 && fread(s->conf, sizeof(double), 3, fp) == 3 &&
             (!s->n_extra || fread(s->extra, sizeof(float), s->n_extra, fp) == s->n_extra) &&
             (!hp_len || fread(s->hparams, 1, hp_len, fp) == hp_len);
    fclose(fp);
    s->hparams[hp_len] = 0;
    const char *why = !ok ? "read failed"
                      : ckpt_sum(h, s, L.n, s->hparams, hp_len) != get64(h + H_SUM)
                          ? "checksum mismatch (the file is damaged)"
                      : memchr(s->hparams, 0, hp_len) ? "settings text holds a NUL byte" : NULL;
    for (size_t i = 0; !why && i < L.n; i++)
        if (!isfinite(s->p[i])) why = "a parameter is not finite";
    if (why) {
        seic_state_free(s);
        return laic_error("%s: %s", path, why);
    }
    s->path = strdup(path);
    return 0;
}

// --- settings text ("key = value" lines) --------------------------------------------------------

int seic_check_hparams(const SeicState *s, const char *now) {
    return hparams_check(s->path ? s->path : "checkpoint", s->hparams, now,
                         "resume with the stopped run's settings");
}

// --- stage 1 ------------------------------------------------------------------------------------

void seic_loss_cfg_default(SeicLossCfg *c) {
    c->tau_a = 0.5, c->tau_c = 0.5;
    c->w_ins = 0.5, c->w_ass = 1.0, c->w_ctr = 1.0, c->w_bal = 2.0;
    c->bal_floor = 0.01, c->bal_max_w = 5.0, c->bal_momentum = 0.9;
    c->scale_max = 100.0;
}

void seic_s1_opts_default(SeicS1Opts *o) {
    memset(o, 0, sizeof *o);
    o->epochs = 200;
    o->batch = 1024;
    o->lr = 5e-3;
    o->weight_decay = 0.0;
    o->tau_ins = 0.07;
    seic_loss_cfg_default(&o->loss);
    o->seed = 1234;
}

/* One backend allocation carved into n slots, *ptrs[i] of bytes[i], each slot starting on a
 * 256-byte boundary (the step arenas of both stages). The arena, or NULL when it is not there. */
static void *arena_carve(const OpsBackend *ops, void **const ptrs[], const size_t bytes[], int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (bytes[i] + 255) / 256 * 256;
    char *arena = ops->alloc(total);
    if (!arena) return NULL;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        *ptrs[i] = arena + off;
        off += (bytes[i] + 255) / 256 * 256;
    }
    return arena;
}

struct SeicS1Step {
    const OpsBackend *ops;
    SeicLayout L;
    int B;
    void *arena;
    float *x[2];              // (B,E) image rows, text rows
    float *u[2], *z[2];       // (B,E)
    float *l[2];              // (B,K)
    float *dz[2], *du[2];     // (B,E)
    float *dl[2];             // (B,K)
    float *tmp;               // (B,E)
    float *p, *g, *m, *v;     // (n)
    float *hist;              // (K)
    double *sched;            // (3)
    double *terms;            // (5)
};

SeicS1Step *seic_s1_step_create(const OpsBackend *ops, int K, int E, int B) {
    SeicS1Step *s = callocCheck(1, sizeof *s);
    s->ops = ops;
    s->B = B;
    seic_layout(&s->L, K, E);
    const size_t BE = (size_t)B * E * sizeof(float), BK = (size_t)B * K * sizeof(float);
    const size_t N = s->L.n * sizeof(float);
    void **ptrs[] = {(void **)&s->x[0],  (void **)&s->x[1],  (void **)&s->u[0],  (void **)&s->u[1],
                     (void **)&s->z[0],  (void **)&s->z[1],  (void **)&s->l[0],  (void **)&s->l[1],
                     (void **)&s->dz[0], (void **)&s->dz[1], (void **)&s->du[0], (void **)&s->du[1],
                     (void **)&s->dl[0], (void **)&s->dl[1], (void **)&s->tmp,   (void **)&s->p,
                     (void **)&s->g,     (void **)&s->m,     (void **)&s->v,     (void **)&s->hist,
                     (void **)&s->sched, (void **)&s->terms};
    const size_t bytes[] = {BE, BE, BE, BE, BE, BE, BK, BK, BE, BE, BE, BE, BK, BK, BE,
                            N,  N,  N,  N,  (size_t)K * sizeof(float), 3 * sizeof(double),
                            5 * sizeof(double)};
    enum { NSLOT = sizeof bytes / sizeof bytes[0] };
    _Static_assert(sizeof ptrs / sizeof ptrs[0] == NSLOT, "one size per arena pointer");
    if (!(s->arena = arena_carve(ops, ptrs, bytes, NSLOT))) {
        free(s);
        return NULL;
    }
    return s;
}

void seic_s1_step_free(SeicS1Step *s) {
    if (!s) return;
    if (s->arena) s->ops->free(s->arena);
    free(s);
}

void seic_s1_step_load(SeicS1Step *s, const SeicState *st) {
    const OpsBackend *o = s->ops;
    o->to_device(s->p, st->p, s->L.n * sizeof(float));
    o->to_device(s->m, st->m, s->L.n * sizeof(float));
    o->to_device(s->v, st->v, s->L.n * sizeof(float));
    o->to_device(s->hist, st->hist, (size_t)s->L.K * sizeof(float));
}

void seic_s1_step_save(SeicS1Step *s, SeicState *st) {
    const OpsBackend *o = s->ops;
    o->to_host(st->p, s->p, s->L.n * sizeof(float));
    o->to_host(st->m, s->m, s->L.n * sizeof(float));
    o->to_host(st->v, s->v, s->L.n * sizeof(float));
    o->to_host(st->hist, s->hist, (size_t)s->L.K * sizeof(float));
    o->synchronize();
}

int seic_s1_step_run(SeicS1Step *s, const float *x, const float *t, int b, const SeicLossCfg *cfg,
                     double lr, double weight_decay, long t_adam, double terms[5], float *grads) {
    if (b < 1 || b > s->B) return laic_error("seic: batch of %d rows (1..%d)", b, s->B);
    const OpsBackend *o = s->ops;
    const int K = s->L.K, E = s->L.E;
    const size_t *off = s->L.off;
    o->to_device(s->x[0], x, (size_t)b * E * sizeof(float));
    o->to_device(s->x[1], t, (size_t)b * E * sizeof(float));
    double sched[3];
    adam_schedule(sched, lr, 0.9, 0.999, t_adam);
    o->to_device(s->sched, sched, sizeof sched);
    // forward: u = x Wpᵀ + bp, z = normalize(u), l = z Wcᵀ + bc
    for (int m = 0; m < 2; m++) {
        const int wp = m ? SEIC_WP_T : SEIC_WP_I;
        o->matmul_forward(s->u[m], s->x[m], s->p + off[wp], s->p + off[wp + 1], b, E, E);
        o->l2norm_forward(s->z[m], s->u[m], b, E);
        o->matmul_forward(s->l[m], s->z[m], s->p + off[wp + 2], s->p + off[wp + 3], b, E, K);
    }
    o->memset0(s->g, s->L.n * sizeof(float));
    o->seic_align_loss_forward_backward(s->terms, s->dz[0], s->dz[1], s->dl[0], s->dl[1],
                                        s->g + off[SEIC_LOGS], s->hist, s->z[0], s->z[1], s->l[0],
                                        s->l[1], s->p + off[SEIC_LOGS], b, K, E, cfg);
    // backward through the heads; parameter gradients accumulate (+=) into g
    for (int m = 0; m < 2; m++) {
        const int wp = m ? SEIC_WP_T : SEIC_WP_I;
        // logits = z Wcᵀ + bc
        o->matmul_backward_weight(s->g + off[wp + 2], s->g + off[wp + 3], s->dl[m], s->z[m], b, E, K);
        o->matmul_backward(s->tmp, s->dl[m], s->p + off[wp + 2], b, E, K);
        o->residual_forward(s->dz[m], s->dz[m], s->tmp, (size_t)b * E);
        // z = normalize(u)
        o->l2norm_backward(s->du[m], s->dz[m], s->u[m], b, E);
        // u = x Wpᵀ + bp
        o->matmul_backward_weight(s->g + off[wp], s->g + off[wp + 1], s->du[m], s->x[m], b, E, E);
    }
    o->adam_forward(s->p, s->m, s->v, s->g, s->sched, s->L.n, 0.9, 0.999, 1e-8, weight_decay, 0);
    o->to_host(terms, s->terms, 5 * sizeof(double));
    if (grads) o->to_host(grads, s->g, s->L.n * sizeof(float));
    o->synchronize();
    return 0;
}

/* The settings a resumed stage 1 must share with the stopped one: everything that shapes the
 * trajectory, and the pairs by content. */
static char *s1_hparams(const OpsBackend *ops, const SeicS1Opts *o, const float *X, const float *T,
                        size_t N, int K, int E, int B) {
    HparamsText t = {0};
    hparams_add(&t, "seic.s1_epochs", "%d", o->epochs);
    hparams_add(&t, "seic.s1_batch", "%d", B);
    hparams_add(&t, "seic.s1_lr", "%.17g", o->lr);
    hparams_add(&t, "seic.s1_weight_decay", "%.17g", o->weight_decay);
    hparams_add(&t, "seic.tau_ins", "%.17g", o->tau_ins);
    hparams_add(&t, "seic.tau_a", "%.17g", o->loss.tau_a);
    hparams_add(&t, "seic.tau_c", "%.17g", o->loss.tau_c);
    hparams_add(&t, "seic.w_ins", "%.17g", o->loss.w_ins);
    hparams_add(&t, "seic.w_ass", "%.17g", o->loss.w_ass);
    hparams_add(&t, "seic.w_ctr", "%.17g", o->loss.w_ctr);
    hparams_add(&t, "seic.w_bal", "%.17g", o->loss.w_bal);
    hparams_add(&t, "seic.bal_floor", "%.17g", o->loss.bal_floor);
    hparams_add(&t, "seic.bal_max_w", "%.17g", o->loss.bal_max_w);
    hparams_add(&t, "seic.bal_momentum", "%.17g", o->loss.bal_momentum);
    hparams_add(&t, "seic.scale_max", "%.17g", o->loss.scale_max);
    hparams_add(&t, "run.seed", "%llu", (unsigned long long)o->seed);
    hparams_add(&t, "model.device", "%s", ops->name);
    hparams_add(&t, "data.pairs", "%zu x %d, K = %d", N, E, K);
    hparams_add(&t, "data.image_features_hash", "%016llx",
             (unsigned long long)laic_hash64(X, N * (size_t)E * sizeof(float), 1));
    hparams_add(&t, "data.text_pairs_hash", "%016llx",
             (unsigned long long)laic_hash64(T, N * (size_t)E * sizeof(float), 2));
    return t.p;
}

void seic_s1_result_free(SeicS1Result *r) {
    seic_state_free(&r->st);
    free(r->epoch_terms);
    memset(r, 0, sizeof *r);
}

int seic_s1_run(SeicS1Result *res, const OpsBackend *ops, const float *X, const float *T,
                size_t N, int K, int E, const SeicS1Opts *o) {
    memset(res, 0, sizeof *res);
    if (N < 2) return laic_error("seic: stage 1 needs at least 2 training rows (got %zu)", N);
    if (K < 1 || E < 1) return laic_error("seic: K = %d, E = %d", K, E);
    if (o->epochs < 1 || o->batch < 1) return laic_error("seic: epochs %d, batch %d", o->epochs, o->batch);
    if (!ops->seic_align_loss_forward_backward || !ops->adam_forward || !ops->matmul_backward_weight)
        return laic_error("seic: the %s backend lacks the SEIC training ops ---> HINT: set "
                          "model.device=cpu", ops->name);
    const int B = (size_t)o->batch < N ? o->batch : (int)N;   // V4C clips the batch to N
    const int drop_last = N > (size_t)B && N % (size_t)B == 1;
    const size_t steps_per_epoch = N / (size_t)B + (N % (size_t)B && !drop_last);
    SeicLayout L;
    seic_layout(&L, K, E);
    char *hp = s1_hparams(ops, o, X, T, N, K, E, B);
    SeicState *st = &res->st;
    if (o->resume) {
        const SeicState *r = o->resume;
        if (r->stage != 1 || r->K != K || r->E != E) {
            free(hp);
            return laic_error("seic: the stage-1 checkpoint holds stage %d, K=%d, E=%d; this run "
                              "needs stage 1, K=%d, E=%d", r->stage, r->K, r->E, K, E);
        }
        if (seic_check_hparams(r, hp)) {
            free(hp);
            return -1;
        }
        if (r->epoch > o->epochs)
            return laic_error("seic: the checkpoint is at epoch %d, past seic.s1_epochs = %d",
                              r->epoch, o->epochs);
        seic_state_copy(st, r);
        train_log(o->log, o->log_ctx, "seic stage 1: resumed at epoch %d (step %lld)", st->epoch,
                  (long long)st->step);
    } else {
        seic_state_alloc(st, &L, 0);
        st->stage = 1;
        st->seed = o->seed;
        if (o->init) {
            memcpy(st->p, o->init->p, L.n * sizeof *st->p);
            memcpy(st->hist, o->init->hist, (size_t)K * sizeof *st->hist);
        } else {
            seic_heads_init(st->p, &L, o->tau_ins, o->seed);
        }
        rng_init(&st->rng, o->seed, SHUFFLE_STREAM);
    }
    free(st->hparams);
    st->hparams = hp;   // saved in every checkpoint
    res->first_epoch = st->epoch;
    res->epoch_terms = mallocCheck((size_t)o->epochs * 5 * sizeof *res->epoch_terms);
    for (size_t i = 0; i < (size_t)o->epochs * 5; i++) res->epoch_terms[i] = NAN;
    SeicS1Step *S = seic_s1_step_create(ops, K, E, B);
    if (!S) {
        seic_s1_result_free(res);
        return -1;
    }
    seic_s1_step_load(S, st);
    size_t *perm = mallocCheck(N * sizeof *perm);
    float *xb = mallocCheck((size_t)B * E * sizeof *xb), *tb = mallocCheck((size_t)B * E * sizeof *tb);
    train_log(
        o->log, o->log_ctx,
        "seic stage 1: %zu pairs, K = %d, batch %d (%zu steps/epoch%s), %d epochs, Adam lr %g", N,
        K, B, steps_per_epoch, drop_last ? ", last row dropped" : "", o->epochs, o->lr);
    int rc = 0;
    double t0 = now_seconds();
    while (st->epoch < o->epochs) {
        const int ep = st->epoch;
        if (o->stop_after > 0 && ep >= o->stop_after) {
            res->stopped = 1;
            break;
        }
        rng_permutation(&st->rng, perm, N);   // Fisher–Yates from the checkpointed stream
        double sum[5] = {0};
        for (size_t s = 0; s < steps_per_epoch && !rc; s++) {
            const size_t i0 = s * (size_t)B;
            const int b = (int)(N - i0 < (size_t)B ? N - i0 : (size_t)B);
            for (int j = 0; j < b; j++) {
                memcpy(xb + (size_t)j * E, X + perm[i0 + j] * E, (size_t)E * sizeof *xb);
                memcpy(tb + (size_t)j * E, T + perm[i0 + j] * E, (size_t)E * sizeof *tb);
            }
            double terms[5];
            rc = seic_s1_step_run(S, xb, tb, b, &o->loss, o->lr, o->weight_decay,
                                  (long)(st->step + 1), terms, NULL);
            if (rc) break;
            if (!isfinite(terms[0])) {
                rc = laic_error("seic: stage-1 loss is %g at epoch %d step %zu ---> HINT: lower "
                                "seic.s1_lr", terms[0], ep + 1, s + 1);
                break;
            }
            st->step++;
            for (int k = 0; k < 5; k++) sum[k] += terms[k];
        }
        if (rc) break;
        st->epoch++;
        for (int k = 0; k < 5; k++) res->epoch_terms[(size_t)ep * 5 + k] = sum[k] / (double)steps_per_epoch;
        seic_s1_step_save(S, st);
        const double *et = res->epoch_terms + (size_t)ep * 5;
        train_log(o->log, o->log_ctx,
                  "seic stage 1: epoch %d/%d  loss %.5f  (ins %.4f ass %.4f ctr %.4f bal %.4f)  "
                  "scale %.2f",
                  ep + 1, o->epochs, et[0], et[1], et[2], et[3], et[4],
                  fmin(exp(st->p[L.off[SEIC_LOGS]]), o->loss.scale_max));
        if (o->ckpt_path && (rc = seic_ckpt_save(o->ckpt_path, st))) break;
    }
    res->seconds = now_seconds() - t0;
    seic_s1_step_free(S);
    free(perm);
    free(xb);
    free(tb);
    if (rc) seic_s1_result_free(res);
    return rc;
}

int seic_predict_features(int64_t *pred, const OpsBackend *ops, const float *p,
                          const SeicLayout *L, const float *X, size_t Ne) {
    const int K = L->K, E = L->E;
    const size_t CH = 4096, rows = Ne < CH ? (Ne ? Ne : 1) : CH;
    const size_t nimg = L->n_img;
    float *dp = ops->alloc(nimg * sizeof(float));
    float *dx = ops->alloc(rows * E * sizeof(float)), *du = ops->alloc(rows * E * sizeof(float));
    float *dl = ops->alloc(rows * K * sizeof(float));
    if (!dp || !dx || !du || !dl) {
        if (dp) ops->free(dp);
        if (dx) ops->free(dx);
        if (du) ops->free(du);
        if (dl) ops->free(dl);
        return -1;
    }
    ops->to_device(dp, p, nimg * sizeof(float));
    float *l = mallocCheck(rows * K * sizeof *l);
    for (size_t i0 = 0; i0 < Ne; i0 += CH) {
        const int n = (int)(Ne - i0 < CH ? Ne - i0 : CH);
        ops->to_device(dx, X + i0 * E, (size_t)n * E * sizeof(float));
        ops->matmul_forward(du, dx, dp + L->off[SEIC_WP_I], dp + L->off[SEIC_BP_I], n, E, E);
        ops->l2norm_forward(du, du, n, E);
        ops->matmul_forward(dl, du, dp + L->off[SEIC_WC_I], dp + L->off[SEIC_BC_I], n, E, K);
        ops->to_host(l, dl, (size_t)n * K * sizeof(float));
        ops->synchronize();
        for (int i = 0; i < n; i++) {
            const float *r = l + (size_t)i * K;
            int best = 0;
            for (int c = 1; c < K; c++)
                if (r[c] > r[best]) best = c;
            pred[i0 + (size_t)i] = best;
        }
    }
    free(l);
    ops->free(dp);
    ops->free(dx);
    ops->free(du);
    ops->free(dl);
    return 0;
}

// --- stage 2 -------------------------------------------------------------------------------------

#define S2_SHUFFLE_STREAM 0x5E1C5EED2ull

void seic_s2_opts_default(SeicS2Opts *o) {
    memset(o, 0, sizeof *o);
    o->epochs = 40;
    o->batch = 128;
    o->lr = 5e-5;
    o->weight_decay = 0.0;
    o->lora_rank = 128;
    o->lora_alpha = 128.0;
    o->encoder_lr = 1e-5;
    o->conf_momentum = 0.999;
    seic_view_cfg_default(&o->view);
    o->precision = "fp32";
    o->seed = 1234;
}

struct SeicS2Step {
    const OpsBackend *ops;
    VitTrainer *vt;
    ClipModel *m;
    SeicLayout L;
    SeicS2Opts o;
    int B, S, E, K;
    size_t plane, n_lora;
    void *arena;
    float *pix;               // (2B,3,S,S) weak rows, then strong rows
    float *feat[2], *f[2];    // (B,E) raw and normalised image features, weak / strong
    float *u[2], *z[2];       // (B,E) the projection head's pre- and post-normalisation rows
    float *l[2];              // (B,K) cluster logits
    float *dls;               // (B,K)
    float *dz, *du, *df, *dfeat;   // (B,E)
    float *p, *g, *m1, *v1;   // (n_img) the image heads, their gradients, AdamW moments
    float *w;                 // (B) confidence weights
    int32_t *yhat;            // (B)
    double *sched;            // (3)
    double *st;               // (3) confidence EMA
    double *loss;             // (1)
};

SeicS2Step *seic_s2_step_create(const ClipWeights *w, const OpsBackend *ops, int K, int B,
                                const SeicS2Opts *o) {
    const int E = w->cfg.embed_dim, S = w->cfg.image_size;
    VitTrainOpts vo;
    vit_train_opts_default(&vo);
    vo.spec = o->full_last_k > 0 ? clip_spec_full_last_k(o->full_last_k)
                                 : clip_spec_lora(o->lora_rank, (float)o->lora_alpha);
    if (o->full_last_k <= 0) vo.spec.train_proj = o->train_visual_proj;
    vo.spec.recompute = o->recompute;
    vo.lr = o->full_last_k > 0 ? o->encoder_lr : o->lr;
    vo.weight_decay = o->weight_decay;
    vo.precision = o->precision;
    vo.seed = o->seed;
    vo.log = o->log;
    vo.log_ctx = o->log_ctx;
    VitTrainer *vt = vit_trainer_create(w, ops, B, &vo);
    if (!vt) return NULL;
    SeicS2Step *s = callocCheck(1, sizeof *s);
    s->ops = ops, s->vt = vt, s->m = vit_trainer_model(vt), s->o = *o;
    s->B = B, s->S = S, s->E = E, s->K = K;
    seic_layout(&s->L, K, E);
    s->plane = (size_t)3 * S * S;
    s->n_lora = clip_trainable_numel(s->m);
    const size_t BE = (size_t)B * E * sizeof(float), BK = (size_t)B * K * sizeof(float);
    const size_t NI = s->L.n_img * sizeof(float);
    void **ptrs[] = {(void **)&s->pix, (void **)&s->feat[0], (void **)&s->feat[1], (void **)&s->f[0],
                     (void **)&s->f[1], (void **)&s->u[0], (void **)&s->u[1], (void **)&s->z[0],
                     (void **)&s->z[1], (void **)&s->l[0], (void **)&s->l[1], (void **)&s->dls,
                     (void **)&s->dz, (void **)&s->du, (void **)&s->df, (void **)&s->dfeat,
                     (void **)&s->p, (void **)&s->g, (void **)&s->m1, (void **)&s->v1, (void **)&s->w,
                     (void **)&s->yhat, (void **)&s->sched, (void **)&s->st, (void **)&s->loss};
    const size_t bytes[] = {2 * (size_t)B * s->plane * sizeof(float), BE, BE, BE, BE, BE, BE, BE, BE,
                            BK, BK, BK, BE, BE, BE, BE, NI, NI, NI, NI, (size_t)B * sizeof(float),
                            (size_t)B * sizeof(int32_t), 3 * sizeof(double), 3 * sizeof(double),
                            sizeof(double)};
    enum { NSLOT = sizeof bytes / sizeof bytes[0] };
    _Static_assert(sizeof ptrs / sizeof ptrs[0] == NSLOT, "one size per arena pointer");
    if (!(s->arena = arena_carve(ops, ptrs, bytes, NSLOT))) {
        vit_trainer_free(vt);
        free(s);
        return NULL;
    }
    return s;
}

void seic_s2_step_free(SeicS2Step *s) {
    if (!s) return;
    if (s->arena) s->ops->free(s->arena);
    vit_trainer_free(s->vt);
    free(s);
}

size_t seic_s2_extra_floats(const SeicS2Step *s) { return 3 * s->n_lora; }

int seic_s2_step_load(SeicS2Step *s, const SeicState *st) {
    const OpsBackend *o = s->ops;
    const size_t ni = s->L.n_img * sizeof(float);
    o->to_device(s->p, st->p, ni);
    o->to_device(s->m1, st->m, ni);
    o->to_device(s->v1, st->v, ni);
    o->to_device(s->st, st->conf, 3 * sizeof(double));
    if (st->n_extra == 3 * s->n_lora) {
        const float *x = st->extra;
        if (vit_trainer_set_state(s->vt, x, x + s->n_lora, x + 2 * s->n_lora, (long)st->step))
            return -1;
    }
    o->synchronize();
    return 0;
}

int seic_s2_step_save(SeicS2Step *s, SeicState *st) {
    const OpsBackend *o = s->ops;
    const size_t ni = s->L.n_img * sizeof(float);
    o->to_host(st->p, s->p, ni);
    o->to_host(st->m, s->m1, ni);
    o->to_host(st->v, s->v1, ni);
    o->to_host(st->conf, s->st, 3 * sizeof(double));
    o->synchronize();
    if (st->n_extra != 3 * s->n_lora) {
        free(st->extra);
        st->n_extra = 3 * s->n_lora;
        st->extra = callocCheck(st->n_extra ? st->n_extra : 1, sizeof *st->extra);
    }
    float *x = st->extra;
    long step = 0;
    if (vit_trainer_get_state(s->vt, x, x + s->n_lora, x + 2 * s->n_lora, &step)) return -1;
    return 0;
}

// f = normalize(feat) → u = f Wpᵀ + bp, z = normalize(u), l = z Wcᵀ + bc (the image heads)
static void s2_heads(SeicS2Step *s, int k, int b) {
    const OpsBackend *o = s->ops;
    const int E = s->E, K = s->K;
    const size_t *off = s->L.off;
    o->l2norm_forward(s->f[k], s->feat[k], b, E);
    o->matmul_forward(s->u[k], s->f[k], s->p + off[SEIC_WP_I], s->p + off[SEIC_BP_I], b, E, E);
    o->l2norm_forward(s->z[k], s->u[k], b, E);
    o->matmul_forward(s->l[k], s->z[k], s->p + off[SEIC_WC_I], s->p + off[SEIC_BC_I], b, E, K);
}

int seic_s2_step_views(SeicS2Step *s, const uint8_t *const *imgs, const int *H, const int *W,
                       const size_t *index, int b, uint64_t epoch) {
    if (b < 1 || b > s->B) return laic_error("seic: batch of %d images (1..%d)", b, s->B);
    // the op writes weak rows 0..b-1 and strong rows b..2b-1 contiguously
    return s->ops->seic_views_forward(s->pix, imgs, H, W, index, b, s->S, s->o.seed, epoch, &s->o.view);
}

int seic_s2_step_run(SeicS2Step *s, const float *pixels, int b, double *loss, float *w,
                     int32_t *yhat, float *g_heads, float *g_lora) {
    if (b < 1 || b > s->B) return laic_error("seic: batch of %d images (1..%d)", b, s->B);
    const OpsBackend *o = s->ops;
    const int E = s->E, K = s->K;
    const size_t *off = s->L.off;
    if (pixels) o->to_device(s->pix, pixels, 2 * (size_t)b * s->plane * sizeof(float));
    // weak view, then the strong one: the backward differentiates the most recent forward
    for (int k = 0; k < 2; k++) {
        if (clip_encode_images_dev(s->m, s->pix + (size_t)k * b * s->plane, b, s->feat[k])) return -1;
        s2_heads(s, k, b);
    }
    o->seic_self_loss_forward_backward(s->loss, s->dls, s->w, s->yhat, s->st, s->l[0], s->l[1], b, K,
                                       s->o.conf_momentum);
    // back through the image heads (strong view); parameter gradients accumulate into g
    o->memset0(s->g, s->L.n_img * sizeof(float));
    o->matmul_backward_weight(s->g + off[SEIC_WC_I], s->g + off[SEIC_BC_I], s->dls, s->z[1], b, E, K);
    o->matmul_backward(s->dz, s->dls, s->p + off[SEIC_WC_I], b, E, K);
    o->l2norm_backward(s->du, s->dz, s->u[1], b, E);
    o->matmul_backward_weight(s->g + off[SEIC_WP_I], s->g + off[SEIC_BP_I], s->du, s->f[1], b, E, E);
    o->matmul_backward(s->df, s->du, s->p + off[SEIC_WP_I], b, E, E);
    o->l2norm_backward(s->dfeat, s->df, s->feat[1], b, E);
    if (clip_image_backward_dev(s->m, s->dfeat, NULL)) return -1;
    if (g_lora) {
        o->to_host(g_lora, clip_trainable_grads(s->m), s->n_lora * sizeof(float));
        o->synchronize();
    }
    if (g_heads) {
        o->to_host(g_heads, s->g, s->L.n_img * sizeof(float));
        o->synchronize();
    }
    // AdamW over LoRA and the image heads: one torch parameter group, one step count
    if (vit_trainer_step(s->vt)) return -1;
    double sched[3];
    adam_schedule(sched, s->o.lr, 0.9, 0.999, vit_trainer_steps(s->vt));
    o->to_device(s->sched, sched, sizeof sched);
    o->adam_forward(s->p, s->m1, s->v1, s->g, s->sched, s->L.n_img, 0.9, 0.999, 1e-8,
                    s->o.weight_decay, 1);
    o->to_host(loss, s->loss, sizeof *loss);
    if (w) o->to_host(w, s->w, (size_t)b * sizeof *w);
    if (yhat) o->to_host(yhat, s->yhat, (size_t)b * sizeof *yhat);
    o->synchronize();
    return 0;
}

int seic_s2_step_logits(SeicS2Step *s, const float *pixels, int b, float *logits) {
    if (b < 1 || b > s->B) return laic_error("seic: batch of %d images (1..%d)", b, s->B);
    const OpsBackend *o = s->ops;
    o->to_device(s->pix, pixels, (size_t)b * s->plane * sizeof(float));
    if (clip_encode_images_dev(s->m, s->pix, b, s->feat[0])) return -1;
    s2_heads(s, 0, b);
    o->to_host(logits, s->l[0], (size_t)b * s->K * sizeof(float));
    o->synchronize();
    return 0;
}

void seic_s2_result_free(SeicS2Result *r) {
    seic_state_free(&r->st);
    free(r->epoch_loss);
    free(r->epoch_conf);
    free(r->epoch_weight);
    free(r->pred);
    memset(r, 0, sizeof *r);
}

/* The settings a resumed stage 2 must share with the stopped one, and the stage-1 heads it
 * started from (by content). */
static char *s2_hparams(const ClipWeights *w, const OpsBackend *ops, const SeicS2Opts *o, size_t N,
                        int B, const SeicState *s1) {
    SeicLayout L;
    seic_layout(&L, s1->K, s1->E);
    HparamsText t = {0};
    hparams_add(&t, "seic.s2_epochs", "%d", o->epochs);
    hparams_add(&t, "seic.s2_batch", "%d", B);
    hparams_add(&t, "seic.s2_lr", "%.17g", o->lr);
    hparams_add(&t, "seic.s2_weight_decay", "%.17g", o->weight_decay);
    if (o->full_last_k > 0) {
        hparams_add(&t, "seic.adapter", "full_last_k");
        hparams_add(&t, "seic.full_last_k", "%d", o->full_last_k);
        hparams_add(&t, "seic.encoder_lr", "%.17g", o->encoder_lr);
    } else {
        hparams_add(&t, "seic.adapter", "lora");
        hparams_add(&t, "seic.lora_rank", "%d", o->lora_rank);
        hparams_add(&t, "seic.lora_alpha", "%.17g", o->lora_alpha);
        hparams_add(&t, "seic.train_visual_proj", "%d", o->train_visual_proj);
    }
    hparams_add(&t, "seic.conf_momentum", "%.17g", o->conf_momentum);
    hparams_add(&t, "seic.view", "scale %.17g-%.17g flip %.17g jitter %.17g (%.17g %.17g %.17g %.17g) gray %.17g",
             o->view.scale_lo, o->view.scale_hi, o->view.flip_p, o->view.jitter_p, o->view.brightness,
             o->view.contrast, o->view.saturation, o->view.hue, o->view.gray_p);
    hparams_add(&t, "seic.s2_precision", "%s", o->precision ? o->precision : "fp32");
    hparams_add(&t, "run.seed", "%llu", (unsigned long long)o->seed);
    hparams_add(&t, "model.device", "%s", ops->name);
    hparams_add(&t, "model.weights_sha256", "%s", w->sha256);
    hparams_add(&t, "data.images", "%zu", N);
    hparams_add(&t, "seic.stage1_heads_hash", "%016llx",
             (unsigned long long)laic_hash64(s1->p, L.n * sizeof(float), 3));
    return t.p;
}

/* Fetches the b images idx[0..b) in parallel; -1 with the first error. */
static int fetch_images(const SeicImages *src, const size_t *idx, int b, uint8_t **rgb, int *H, int *W) {
    int bad = 0;
    char *err = NULL;
#pragma omp parallel for schedule(dynamic)
    for (int j = 0; j < b; j++) {
        rgb[j] = NULL;
        if (src->get(src->ctx, idx[j], &rgb[j], &H[j], &W[j])) {
#pragma omp critical(seic_fetch_err)
            {
                if (!bad) err = strdup(laic_last_error());
                bad = 1;
            }
        }
    }
    if (!bad) return 0;
    for (int j = 0; j < b; j++) free(rgb[j]), rgb[j] = NULL;
    laic_error("%s", err ? err : "seic: image read failed");
    free(err);
    return -1;
}

int seic_s2_run(SeicS2Result *res, const ClipWeights *w, const OpsBackend *ops,
                const SeicImages *fit, const SeicImages *eval, const SeicState *s1,
                const SeicS2Opts *o) {
    memset(res, 0, sizeof *res);
    const size_t N = fit->n;
    if (N < 2) return laic_error("seic: stage 2 needs at least 2 training images (got %zu)", N);
    if (!s1 || s1->stage != 1) return laic_error("seic: stage 2 needs the stage-1 heads");
    if (s1->E != w->cfg.embed_dim)
        return laic_error("seic: the heads take %d-d features, the model gives %d", s1->E, w->cfg.embed_dim);
    if (o->epochs < 1 || o->batch < 1) return laic_error("seic: s2 epochs %d, batch %d", o->epochs, o->batch);
    if (!ops->seic_views_forward || !ops->seic_self_loss_forward_backward)
        return laic_error("seic: the %s backend lacks the SEIC stage-2 ops ---> HINT: set "
                          "model.device=cpu", ops->name);
    const int K = s1->K, E = s1->E, B = (size_t)o->batch < N ? o->batch : (int)N;
    const size_t steps_per_epoch = (N + (size_t)B - 1) / (size_t)B;   // drop_last=False
    char *hp = s2_hparams(w, ops, o, N, B, s1);
    SeicS2Step *S = seic_s2_step_create(w, ops, K, B, o);
    if (!S) {
        free(hp);
        return -1;
    }
    SeicState *st = &res->st;
    if (o->resume) {
        const SeicState *r = o->resume;
        const char *bad = r->stage != 2 ? "it is not a stage-2 checkpoint"
                          : r->K != K || r->E != E ? "K or E differ"
                          : r->n_extra != seic_s2_extra_floats(S) ? "its adapter state has another size"
                          : r->epoch > o->epochs ? "it is past seic.s2_epochs" : NULL;
        if (bad || seic_check_hparams(r, hp)) {
            seic_s2_step_free(S);
            free(hp);
            if (!bad) return -1;
            return laic_error("seic: cannot resume stage 2 from that checkpoint: %s ---> HINT: "
                              "resume with the settings of the stopped run", bad);
        }
        seic_state_copy(st, r);
        train_log(o->log, o->log_ctx, "seic stage 2: resumed at epoch %d (step %lld)", st->epoch,
                  (long long)st->step);
    } else {
        SeicLayout L;
        seic_layout(&L, K, E);
        seic_state_copy(st, s1);
        st->stage = 2;
        st->epoch = 0;
        st->step = 0;
        st->seed = o->seed;
        memset(st->m, 0, L.n * sizeof *st->m);   // a fresh AdamW (V4C creates a new optimiser)
        memset(st->v, 0, L.n * sizeof *st->v);
        st->conf[0] = st->conf[1] = st->conf[2] = 0.0;
        rng_init(&st->rng, o->seed, S2_SHUFFLE_STREAM);
        free(st->extra);
        st->n_extra = 0;
        st->extra = NULL;
    }
    free(st->hparams);
    st->hparams = hp;
    int rc = seic_s2_step_load(S, st);
    if (!rc && !o->resume) rc = seic_s2_step_save(S, st);   // the LoRA init into the state
    res->first_epoch = st->epoch;
    res->epoch_loss = mallocCheck((size_t)o->epochs * sizeof *res->epoch_loss);
    res->epoch_conf = mallocCheck((size_t)o->epochs * sizeof *res->epoch_conf);
    res->epoch_weight = mallocCheck((size_t)o->epochs * sizeof *res->epoch_weight);
    for (int e = 0; e < o->epochs; e++) res->epoch_loss[e] = res->epoch_conf[e] = res->epoch_weight[e] = NAN;
    size_t *perm = mallocCheck(N * sizeof *perm);
    uint8_t **rgb = callocCheck((size_t)B, sizeof *rgb);
    int *H = mallocCheck((size_t)B * sizeof *H), *W = mallocCheck((size_t)B * sizeof *W);
    float *wv = mallocCheck((size_t)B * sizeof *wv);
    if (o->full_last_k > 0)
        train_log(
            o->log, o->log_ctx,
            "seic stage 2: blocks %d..%d + ln_post + proj train in full (%zu floats, AdamW lr %g; "
            "heads lr %g), %zu images, batch %d (%zu steps/epoch), %d epochs",
            o->full_last_k, w->cfg.vision_layers - 1, S->n_lora, o->encoder_lr, o->lr, N, B,
            steps_per_epoch, o->epochs);
    else
        train_log(o->log, o->log_ctx,
                  "seic stage 2: LoRA r = %d, alpha = %g on q, v of %d blocks (%zu adapter "
                  "floats)%s, %zu images, batch %d (%zu steps/epoch), %d epochs, AdamW lr %g",
                  o->lora_rank, o->lora_alpha, w->cfg.vision_layers, S->n_lora,
                  o->train_visual_proj ? " + visual.proj" : "", N, B, steps_per_epoch, o->epochs,
                  o->lr);
    double t0 = now_seconds();
    while (!rc && st->epoch < o->epochs) {
        const int ep = st->epoch;
        if (o->stop_after > 0 && ep >= o->stop_after) {
            res->stopped = 1;
            break;
        }
        rng_permutation(&st->rng, perm, N);   // Fisher–Yates from the checkpointed stream
        double lsum = 0.0, wsum = 0.0, t_ep = now_seconds();
        for (size_t s = 0; s < steps_per_epoch && !rc; s++) {
            const size_t i0 = s * (size_t)B;
            const int b = (int)(N - i0 < (size_t)B ? N - i0 : (size_t)B);
            if ((rc = fetch_images(fit, perm + i0, b, rgb, H, W))) break;
            rc = seic_s2_step_views(S, (const uint8_t *const *)rgb, H, W, perm + i0, b, (uint64_t)ep);
            for (int j = 0; j < b; j++) free(rgb[j]), rgb[j] = NULL;
            double loss = 0.0;
            if (!rc) rc = seic_s2_step_run(S, NULL, b, &loss, wv, NULL, NULL, NULL);
            if (rc) break;
            if (!isfinite(loss)) {
                rc = laic_error("seic: stage-2 loss is %g at epoch %d step %zu ---> HINT: lower "
                                "seic.s2_lr", loss, ep + 1, s + 1);
                break;
            }
            st->step++;
            lsum += loss;
            for (int j = 0; j < b; j++) wsum += wv[j];
            res->images_seen += (size_t)b;
        }
        if (rc) break;
        st->epoch++;
        if ((rc = seic_s2_step_save(S, st))) break;
        res->epoch_loss[ep] = lsum / (double)steps_per_epoch;
        res->epoch_weight[ep] = wsum / (double)N;
        res->epoch_conf[ep] = st->conf[0];
        train_log(o->log, o->log_ctx,
                  "seic stage 2: epoch %d/%d  loss %.5f  mean weight %.3f  confidence EMA %.4f "
                  "(var %.2e)  (%.1fs)",
                  ep + 1, o->epochs, res->epoch_loss[ep], res->epoch_weight[ep], st->conf[0],
                  st->conf[1], now_seconds() - t_ep);
        if (o->ckpt_path && (rc = seic_ckpt_save(o->ckpt_path, st))) break;
    }
    res->seconds = now_seconds() - t0;
    // the eval split through the adapted encoder: weak view (the eval transform), argmax p^I
    if (!rc && !res->stopped && eval && eval->get && eval->n) {
        const size_t Ne = eval->n;
        res->pred = mallocCheck(Ne * sizeof *res->pred);
        const size_t plane = S->plane;
        float *pix = mallocCheck((size_t)B * plane * sizeof *pix), *lg = mallocCheck((size_t)B * K * sizeof *lg);
        size_t *idx = mallocCheck((size_t)B * sizeof *idx);
        const int Sz = S->S;
        for (size_t i0 = 0; i0 < Ne && !rc; i0 += (size_t)B) {
            const int b = (int)(Ne - i0 < (size_t)B ? Ne - i0 : (size_t)B);
            for (int j = 0; j < b; j++) idx[j] = i0 + (size_t)j;
            if ((rc = fetch_images(eval, idx, b, rgb, H, W))) break;
#pragma omp parallel for schedule(dynamic)
            for (int j = 0; j < b; j++) {
                uint8_t *crop = mallocCheck((size_t)Sz * Sz * 3);
                image_resize_crop_rgb8(crop, rgb[j], H[j], W[j], Sz);
                image_normalize(pix + (size_t)j * plane, crop, Sz);
                free(crop);
            }
            for (int j = 0; j < b; j++) free(rgb[j]), rgb[j] = NULL;
            if ((rc = seic_s2_step_logits(S, pix, b, lg))) break;
            for (int j = 0; j < b; j++) {
                const float *r = lg + (size_t)j * K;
                int best = 0;
                for (int c = 1; c < K; c++)
                    if (r[c] > r[best]) best = c;
                res->pred[i0 + (size_t)j] = best;
            }
        }
        free(pix);
        free(lg);
        free(idx);
    }
    seic_s2_step_free(S);
    free(perm);
    free(rgb);
    free(H);
    free(W);
    free(wv);
    if (rc) seic_s2_result_free(res);
    return rc;
}
