/*
 * heads.c — clustering heads on the op table (heads.h): create/init, forward, backward, Adam,
 * prediction and checkpoints. See heads.h for what is promised.
 */
#include "train/heads.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/atomic.h"
#include "io/err.h"
#include "io/sha256.h"
#include "rng.h"
#include "train/log.h"
#include "train/optim.h"
#ifdef LAIC_CUDA
#include "../kernels/ops_cuda.h"
#endif

#define BN_MOMENTUM 0.1
#define BN_EPS 1e-5

// --- create / init ---------------------------------------------------------------------------

static void head_sizes(Head *h) {
    const size_t D = (size_t)h->D, H = (size_t)h->H, K = (size_t)h->K;
    if (h->kind == HEAD_MLP) {
        size_t s[HEAD_NUM_TENSORS] = {H * D, H, H, H, K * H, K};
        memcpy(h->sizes, s, sizeof s);
    } else {
        size_t s[HEAD_NUM_TENSORS] = {0, 0, 0, 0, K * D, K};
        memcpy(h->sizes, s, sizeof s);
    }
    h->n_params = 0;
    for (int t = 0; t < HEAD_NUM_TENSORS; t++) h->n_params += h->sizes[t];
}

static void carve(HeadTensors *t, float *base, const size_t *sizes) {
    float **ptrs[HEAD_NUM_TENSORS] = {&t->W1, &t->b1, &t->bnw, &t->bnb, &t->W2, &t->b2};
    for (int i = 0; i < HEAD_NUM_TENSORS; i++) {
        *ptrs[i] = sizes[i] ? base : NULL;
        base += sizes[i];
    }
}

int head_create(Head *h, const OpsBackend *o, HeadKind kind, int D, int H, int K, int maxB) {
    memset(h, 0, sizeof *h);
    if (D < 1 || K < 1 || maxB < 1 || (kind == HEAD_MLP && H < 1))
        return laic_error("head: bad sizes D=%d H=%d K=%d batch=%d", D, H, K, maxB);
    h->o = o;
    h->kind = kind;
    h->D = D;
    h->H = kind == HEAD_MLP ? H : 0;
    h->K = K;
    h->maxB = maxB;
    head_sizes(h);
    const size_t np = h->n_params, nh = (size_t)h->H, nb = (size_t)maxB * nh;
    const size_t total = 4 * np + 2 * nh + 2 * nb;
    h->mem = o->alloc(total * sizeof(float));
    h->sched = h->mem ? o->alloc(3 * sizeof(double)) : NULL;
    if (!h->sched) {
        if (h->mem) o->free(h->mem);
        memset(h, 0, sizeof *h);
        return -1;
    }
    float *p = h->mem;
    carve(&h->p, p, h->sizes);
    carve(&h->g, p + np, h->sizes);
    h->m = p + 2 * np;
    h->v = p + 3 * np;
    h->running_mean = nh ? p + 4 * np : NULL;
    h->running_var = nh ? p + 4 * np + nh : NULL;
    h->dA = nb ? p + 4 * np + 2 * nh : NULL;
    h->dh = nb ? h->dA + nb : NULL;
    o->memset0(h->mem, total * sizeof(float));
    if (nh) {
        float *ones = mallocCheck(nh * sizeof *ones);
        for (size_t i = 0; i < nh; i++) ones[i] = 1.0f;
        o->to_device(h->running_var, ones, nh * sizeof *ones);
        free(ones);
    }
    return 0;
}

void head_free(Head *h) {
    if (h->o) {
        h->o->free(h->mem);
        h->o->free(h->sched);
    }
    memset(h, 0, sizeof *h);
}

void head_init_params(Head *h, HeadInit init, uint64_t seed, uint64_t stream) {
    Rng r;
    rng_init(&r, seed, stream);
    float *p = mallocCheck((h->n_params ? h->n_params : 1) * sizeof *p);
    HeadTensors t;
    carve(&t, p, h->sizes);
    const int fan2 = h->kind == HEAD_MLP ? h->H : h->D;
    // weight then bias of each Linear, in state_dict order (one stream, draws in carve order)
    struct { float *w, *b; size_t nw, nb; int fan; } lin[2] = {
        {t.W1, t.b1, h->sizes[0], h->sizes[1], h->D},
        {t.W2, t.b2, h->sizes[4], h->sizes[5], fan2},
    };
    for (int l = 0; l < 2; l++) {
        if (!lin[l].w) continue;
        const double bound = 1.0 / sqrt((double)lin[l].fan);
        for (size_t i = 0; i < lin[l].nw; i++) {
            if (init == HEAD_INIT_TAC) {
                double z;
                do z = 0.02 * rng_normal(&r); while (z < -2.0 || z > 2.0);
                lin[l].w[i] = (float)z;
            } else {
                lin[l].w[i] = (float)((2.0 * rng_uniform(&r) - 1.0) * bound);
            }
        }
        for (size_t i = 0; i < lin[l].nb; i++)
            lin[l].b[i] = (float)((2.0 * rng_uniform(&r) - 1.0) * bound);
    }
    for (size_t i = 0; t.bnw && i < h->sizes[2]; i++) t.bnw[i] = 1.0f;
    for (size_t i = 0; t.bnb && i < h->sizes[3]; i++) t.bnb[i] = 0.0f;
    head_set_params(h, p);
    free(p);
    const size_t nh = (size_t)h->H;
    if (nh) {
        float *s = mallocCheck(2 * nh * sizeof *s);
        for (size_t i = 0; i < nh; i++) s[i] = 0.0f, s[nh + i] = 1.0f;
        h->o->to_device(h->running_mean, s, 2 * nh * sizeof *s);   // running_var follows it
        free(s);
    }
    h->bn_batches = 0;
    h->step = 0;
    h->o->memset0(h->m, 2 * h->n_params * sizeof(float));   // m and v are adjacent
}

void head_get_params(const Head *h, float *host) {
    h->o->synchronize();
    h->o->to_host(host, h->mem, h->n_params * sizeof(float));
}
void head_set_params(Head *h, const float *host) {
    h->o->to_device(h->mem, host, h->n_params * sizeof(float));
}
void head_get_grads(const Head *h, float *host) {
    h->o->synchronize();
    h->o->to_host(host, h->mem + h->n_params, h->n_params * sizeof(float));
}

int head_acts_create(const Head *h, HeadActs *a, int maxB) {
    memset(a, 0, sizeof *a);
    const size_t B = (size_t)maxB, H = (size_t)h->H, K = (size_t)h->K, P = HEAD_MAX_PARTS;
    const size_t total = 2 * B * H + 2 * P * H + 2 * B * K;
    a->mem = h->o->alloc((total ? total : 1) * sizeof(float));
    if (!a->mem) return -1;
    a->maxB = maxB;
    float *p = a->mem;
    a->h = H ? p : NULL;
    a->a = H ? p + B * H : NULL;
    a->mean = H ? p + 2 * B * H : NULL;
    a->rstd = H ? p + 2 * B * H + P * H : NULL;
    a->logits = p + 2 * B * H + 2 * P * H;
    a->probs = a->logits + B * K;
    return 0;
}

void head_acts_free(const Head *h, HeadActs *a) {
    if (a->mem) h->o->free(a->mem);
    memset(a, 0, sizeof *a);
}

// --- forward / backward -------------------------------------------------------------------------

void head_forward(Head *h, HeadActs *a, const float *inp, int B, int train, int want_probs) {
    head_forward_parts(h, a, inp, B, 1, train, want_probs);
}

void head_forward_parts(Head *h, HeadActs *a, const float *inp, int B, int parts, int train,
                        int want_probs) {
    const OpsBackend *o = h->o;
    LAIC_ASSERT(parts >= 1 && parts <= HEAD_MAX_PARTS && B % parts == 0 && B <= a->maxB);
    a->inp = inp;
    a->B = B;
    a->parts = parts;
    if (h->kind == HEAD_MLP) {
        const int H = h->H, Bp = B / parts;
        o->matmul_forward(a->h, inp, h->p.W1, h->p.b1, B, h->D, H);
        for (int q = 0; q < parts; q++)   // each group is one call of torch's BatchNorm1d
            o->batchnorm_forward(a->a + (size_t)q * Bp * H, a->mean + (size_t)q * H,
                                 a->rstd + (size_t)q * H, h->running_mean, h->running_var,
                                 a->h + (size_t)q * Bp * H, h->p.bnw, h->p.bnb, Bp, H, train,
                                 BN_MOMENTUM, BN_EPS);
        o->relu_forward(a->a, a->a, (size_t)B * H);
        o->matmul_forward(a->logits, a->a, h->p.W2, h->p.b2, B, H, h->K);
    } else {
        o->matmul_forward(a->logits, inp, h->p.W2, h->p.b2, B, h->D, h->K);
    }
    if (want_probs) o->softmax_forward(a->probs, a->logits, B, h->K);
}

void head_backward(Head *h, HeadActs *a, const float *dlogits) {
    const OpsBackend *o = h->o;
    const int B = a->B, K = h->K;
    if (h->kind == HEAD_MLP) {
        const int H = h->H;
        // logits = a @ W2ᵀ + b2
        o->matmul_backward_weight(h->g.W2, h->g.b2, dlogits, a->a, B, H, K);
        o->matmul_backward(h->dA, dlogits, h->p.W2, B, H, K);
        // a = relu(bn(h)) (in place: the mask comes from the output)
        o->relu_backward(h->dA, h->dA, a->a, (size_t)B * H);
        const int Bp = B / a->parts;
        for (int q = 0; q < a->parts; q++)
            o->batchnorm_backward(h->dh + (size_t)q * Bp * H, h->g.bnw, h->g.bnb,
                                  h->dA + (size_t)q * Bp * H, a->h + (size_t)q * Bp * H, h->p.bnw,
                                  a->mean + (size_t)q * H, a->rstd + (size_t)q * H, Bp, H);
        // h = inp @ W1ᵀ + b1
        o->matmul_backward_weight(h->g.W1, h->g.b1, h->dh, a->inp, B, h->D, H);
    } else {
        o->matmul_backward_weight(h->g.W2, h->g.b2, dlogits, a->inp, B, h->D, K);
    }
}

void head_zero_grad(Head *h) { h->o->memset0(h->mem + h->n_params, h->n_params * sizeof(float)); }

void head_adam(Head *h, double lr, double beta1, double beta2, double eps, double weight_decay) {
    double s[3];
    h->step++;
    adam_schedule(s, lr, beta1, beta2, h->step);
    h->o->to_device(h->sched, s, sizeof s);
    h->o->adam_forward(h->mem, h->m, h->v, h->mem + h->n_params, h->sched, h->n_params, beta1,
                       beta2, eps, weight_decay, 0);
}

void head_adam_at(Head *h, const double *sched, double beta1, double beta2, double eps,
                  double weight_decay) {
    h->o->adam_forward(h->mem, h->m, h->v, h->mem + h->n_params, sched, h->n_params, beta1, beta2,
                       eps, weight_decay, 0);
}

void heads_use_fp32(const OpsBackend *o) {
#ifdef LAIC_CUDA
    if (o == &ops_cuda) {
        if (ops_cuda_get_matmul() != LAIC_MM_FP32) ops_cuda_set_matmul("fp32");
        if (ops_cuda_get_backward_bf16()) ops_cuda_set_backward_bf16(0);
    }
#else
    (void)o;
#endif
}

int heads_epoch_run(HeadsEpochs *e, const OpsBackend *o, int done_here, const char *who,
                    void (*log)(void *ctx, const char *line), void *log_ctx) {
    if (e->use_graph && !e->graph && done_here >= 1) {
        e->graph = o->graph_capture(e->steps, e->ctx);
        if (!e->graph) {
            train_log(log, log_ctx, "%s: CUDA graph capture failed (%s); running eagerly", who,
                      laic_last_error());
            e->use_graph = 0;
        } else {
            e->captures++;
        }
    }
    if (e->graph) return o->graph_launch(e->graph);
    e->steps(e->ctx);
    return 0;
}

int heads_gemm_nt(const OpsBackend *o, float *S, const float *A, const float *B, size_t n,
                  size_t m, int k) {
    if (!n || !m) return 0;
    heads_use_fp32(o);
    // matmul_forward is out = inp @ weightᵀ: exactly A Bᵀ, no transpose needed
    if (!strcmp(o->name, "cpu")) {   // host memory (ops_cpu, or a test double of it)
        o->matmul_forward(S, A, B, NULL, (int)n, k, (int)m);
        return 0;
    }
    float *dA = o->alloc(n * k * sizeof(float));
    float *dB = dA ? o->alloc(m * k * sizeof(float)) : NULL;
    float *dS = dB ? o->alloc(n * m * sizeof(float)) : NULL;
    int rc = dS ? 0 : -1;
    if (!rc) {
        o->to_device(dA, A, n * k * sizeof(float));
        o->to_device(dB, B, m * k * sizeof(float));
        o->matmul_forward(dS, dA, dB, NULL, (int)n, k, (int)m);
        o->synchronize();
        o->to_host(S, dS, n * m * sizeof(float));
    }
    if (dA) o->free(dA);
    if (dB) o->free(dB);
    if (dS) o->free(dS);
    return rc;
}

int head_predict(Head *h, int64_t *pred, float *logits, const float *X, size_t N) {
    // evaluation needs no backward, so the chunk may exceed the training batch: few, large GEMMs
    const int chunk = h->maxB > 4096 ? h->maxB : 4096;
    HeadActs a;
    if (head_acts_create(h, &a, chunk)) return -1;
    const int K = h->K;
    float *l = mallocCheck((size_t)chunk * K * sizeof *l);
    for (size_t i0 = 0; i0 < N; i0 += (size_t)chunk) {
        const int n = (int)(N - i0 < (size_t)chunk ? N - i0 : (size_t)chunk);
        head_forward(h, &a, X + i0 * (size_t)h->D, n, 0, 0);
        h->o->synchronize();
        h->o->to_host(l, a.logits, (size_t)n * K * sizeof *l);
        for (int i = 0; i < n; i++) {
            const float *r = l + (size_t)i * K;
            int best = 0;
            for (int c = 1; c < K; c++)
                if (r[c] > r[best]) best = c;
            if (pred) pred[i0 + (size_t)i] = best;
        }
        if (logits) memcpy(logits + i0 * K, l, (size_t)n * K * sizeof *l);
    }
    free(l);
    head_acts_free(h, &a);
    return 0;
}

// --- checkpoints -------------------------------------------------------------------------------
// Layout: int32 header[256]; char hparams[HEADS_HPARAMS_LEN]; then per head: params, m, v
// (n_params floats each), running mean and var (H floats each, MLP); then best (n_best floats)
// when header[9] = 1. header: [0] magic, [1] version, [2] heads, [3] epoch, [4] best_epoch,
// [5] no_gain, [6,7] best_acc (double bits), [8] n_best lo, [9] has_best, [10] n_best hi;
// head i at [16 + 8i ..]: kind, D, H, K, step lo, step hi, bn_batches lo, hi; [200..207]
// SHA-256 (first 32 bytes) of everything after the header.

static void put64(int32_t *h, uint64_t v) {
    h[0] = (int32_t)(uint32_t)(v & 0xffffffffu);
    h[1] = (int32_t)(uint32_t)(v >> 32);
}
static uint64_t get64(const int32_t *h) {
    return (uint64_t)(uint32_t)h[0] | ((uint64_t)(uint32_t)h[1] << 32);
}

/* The host payload after the hparams record: per head params, m, v, running stats; best. */
static size_t payload_floats(Head *const *heads, int n, size_t n_best, int has_best) {
    size_t t = 0;
    for (int i = 0; i < n; i++) t += 3 * heads[i]->n_params + 2 * (size_t)heads[i]->H;
    return t + (has_best ? n_best : 0);
}

int heads_ckpt_save(const char *path, Head *const *heads, int n, const HeadsRunState *st,
                    const float *best, size_t n_best) {
    if (n < 1 || n > HEADS_CKPT_MAX) return laic_error("%s: %d heads (1..%d)", path, n, HEADS_CKPT_MAX);
    const int has_best = best && n_best > 0;
    int32_t hd[256] = {0};
    hd[0] = HEADS_CKPT_MAGIC;
    hd[1] = HEADS_CKPT_VERSION;
    hd[2] = n;
    hd[3] = st->epoch;
    hd[4] = st->best_epoch;
    hd[5] = st->no_gain;
    uint64_t ab;
    memcpy(&ab, &st->best_acc, sizeof ab);
    put64(hd + 6, ab);
    hd[8] = (int32_t)(uint32_t)((uint64_t)n_best & 0xffffffffu);
    hd[9] = has_best;
    hd[10] = (int32_t)(uint32_t)((uint64_t)n_best >> 32);
    for (int i = 0; i < n; i++) {
        const Head *h = heads[i];
        int32_t *q = hd + 16 + 8 * i;
        q[0] = h->kind;
        q[1] = h->D;
        q[2] = h->H;
        q[3] = h->K;
        put64(q + 4, (uint64_t)h->step);
        put64(q + 6, (uint64_t)h->bn_batches);
    }
    char rec[HEADS_HPARAMS_LEN] = {0};
    snprintf(rec, sizeof rec, "%s", st->hparams);
    const size_t nf = payload_floats(heads, n, n_best, has_best);
    float *pay = mallocCheck((nf ? nf : 1) * sizeof *pay), *w = pay;
    for (int i = 0; i < n; i++) {
        const Head *h = heads[i];
        h->o->synchronize();
        h->o->to_host(w, h->mem, h->n_params * sizeof *w);                      // params
        h->o->to_host(w + h->n_params, h->m, 2 * h->n_params * sizeof *w);      // m, v
        w += 3 * h->n_params;
        if (h->H) {
            h->o->to_host(w, h->running_mean, 2 * (size_t)h->H * sizeof *w);   // mean, var
            w += 2 * (size_t)h->H;
        }
    }
    if (has_best) memcpy(w, best, n_best * sizeof *w);
    Sha256 s;
    uint8_t dg[32];
    sha256_init(&s);
    sha256_update(&s, rec, sizeof rec);
    sha256_update(&s, pay, nf * sizeof *pay);
    sha256_final(&s, dg);
    memcpy(hd + 200, dg, sizeof dg);
    AtomicFile af;
    int rc = atomic_open(&af, path);
    if (!rc) {
        if (fwrite(hd, sizeof hd, 1, af.fp) != 1 || fwrite(rec, sizeof rec, 1, af.fp) != 1 ||
            (nf && fwrite(pay, sizeof *pay, nf, af.fp) != nf)) {
            atomic_abort(&af);
            rc = laic_error("%s: write failed", path);
        } else {
            rc = atomic_commit(&af);
        }
    }
    free(pay);
    return rc;
}

/* The first "key=value" of a that differs from b (both ';'-separated), into out. */
static void first_diff(const char *a, const char *b, char *out, size_t n) {
    const char *pa = a;
    while (*pa) {
        const char *ea = strchr(pa, ';');
        size_t la = ea ? (size_t)(ea - pa) : strlen(pa);
        const char *eq = memchr(pa, '=', la);
        size_t lk = eq ? (size_t)(eq - pa) + 1 : la;
        // the same key in b
        const char *pb = b, *hit = NULL;
        size_t lb = 0;
        while (*pb) {
            const char *eb = strchr(pb, ';');
            lb = eb ? (size_t)(eb - pb) : strlen(pb);
            if (lb >= lk && !strncmp(pb, pa, lk)) {
                hit = pb;
                break;
            }
            pb = eb ? eb + 1 : pb + lb;
        }
        if (!hit || lb != la || strncmp(hit, pa, la)) {
            snprintf(out, n, "checkpoint has %.*s, this run %.*s", (int)la, pa, hit ? (int)lb : 7,
                     hit ? hit : "nothing");
            return;
        }
        pa = ea ? ea + 1 : pa + la;
    }
    snprintf(out, n, "the checkpoint's record lacks a key of this run's");
}

int heads_ckpt_load(const char *path, Head *const *heads, int n, HeadsRunState *st, float *best,
                    size_t n_best, int *has_best) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return laic_error("%s: cannot open checkpoint", path);
    int32_t hd[256];
    char rec[HEADS_HPARAMS_LEN];
    struct stat sb;
    if (fstat(fileno(fp), &sb) || fread(hd, sizeof hd, 1, fp) != 1 ||
        fread(rec, sizeof rec, 1, fp) != 1) {
        fclose(fp);
        return laic_error("%s: not a laic heads checkpoint (shorter than its header)", path);
    }
    const char *bad = NULL;
    if (hd[0] != HEADS_CKPT_MAGIC) bad = "bad magic number (not a laic heads checkpoint)";
    else if (hd[1] != HEADS_CKPT_VERSION) bad = "unsupported version";
    else if (hd[2] != n) bad = "a different number of heads";
    else if (hd[3] < 0 || hd[4] < 0 || hd[5] < 0 || (hd[9] != 0 && hd[9] != 1) ||
             rec[sizeof rec - 1] != 0)
        bad = "corrupt header";
    for (int i = 0; !bad && i < n; i++) {
        const int32_t *q = hd + 16 + 8 * i;
        if (q[0] != (int32_t)heads[i]->kind || q[1] != heads[i]->D || q[2] != heads[i]->H ||
            q[3] != heads[i]->K)
            bad = "head kinds or sizes differ from this run's";
    }
    const size_t n_stored = (size_t)(uint32_t)hd[8] | ((size_t)(uint32_t)hd[10] << 32);
    if (!bad && hd[9] && n_stored != n_best) bad = "best-parameter count differs";
    if (bad) {
        fclose(fp);
        if (hd[0] == HEADS_CKPT_MAGIC && hd[1] != HEADS_CKPT_VERSION)
            return laic_error("%s: heads checkpoint version %d, this build reads version %d", path,
                              (int)hd[1], HEADS_CKPT_VERSION);
        return laic_error("%s: %s", path, bad);
    }
    const size_t nf = payload_floats(heads, n, n_best, hd[9]);
    const size_t want = sizeof hd + sizeof rec + nf * sizeof(float);
    if ((size_t)sb.st_size != want) {
        fclose(fp);
        return laic_error("%s: size %lld bytes, its header needs %zu", path, (long long)sb.st_size, want);
    }
    if (strcmp(rec, st->hparams)) {
        fclose(fp);
        char d[600];
        first_diff(rec, st->hparams, d, sizeof d);
        return laic_error("%s: trained with other settings (%s) ---> HINT: resume with the "
                          "settings it was started with, or start a new run", path, d);
    }
    float *pay = mallocCheck((nf ? nf : 1) * sizeof *pay);
    const int ok = fread(pay, sizeof *pay, nf, fp) == nf;
    fclose(fp);
    if (!ok) {
        free(pay);
        return laic_error("%s: read failed", path);
    }
    Sha256 s;
    uint8_t dg[32];
    sha256_init(&s);
    sha256_update(&s, rec, sizeof rec);
    sha256_update(&s, pay, nf * sizeof *pay);
    sha256_final(&s, dg);
    if (memcmp(dg, hd + 200, sizeof dg)) {
        free(pay);
        return laic_error("%s: checksum mismatch (the file is damaged) ---> HINT: delete it and "
                          "train from the start", path);
    }
    const float *r = pay;
    for (int i = 0; i < n; i++) {
        Head *h = heads[i];
        const int32_t *q = hd + 16 + 8 * i;
        h->o->to_device(h->mem, r, h->n_params * sizeof *r);
        h->o->to_device(h->m, r + h->n_params, 2 * h->n_params * sizeof *r);
        r += 3 * h->n_params;
        if (h->H) {
            h->o->to_device(h->running_mean, r, 2 * (size_t)h->H * sizeof *r);
            r += 2 * (size_t)h->H;
        }
        h->step = (int64_t)get64(q + 4);
        h->bn_batches = (int64_t)get64(q + 6);
    }
    if (has_best) *has_best = hd[9];
    if (hd[9] && best) memcpy(best, r, n_best * sizeof *r);
    st->epoch = hd[3];
    st->best_epoch = hd[4];
    st->no_gain = hd[5];
    uint64_t ab = get64(hd + 6);
    memcpy(&st->best_acc, &ab, sizeof ab);
    free(pay);
    return 0;
}
