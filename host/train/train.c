/*
 * train.c — losses, SGD, learning-rate schedule, class-vector init and checkpoints for
 * prompt learning (SPEC §7). See train.h for the promises.
 *
 * Dimension legend: B batch, K classes, E feature width, M context vectors, D embed width.
 */
#include "train/train.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/atomic.h"
#include "io/err.h"
#include "io/hash.h"

// --- loss ------------------------------------------------------------------------------

void loss_config_default(LossConfig *c) {
    c->use_gce = c->use_mse = c->use_entropy = 1;
    c->q = 0.7;
    c->alpha = 1.0;
    c->beta = 1.0;
    c->scale = 100.0;
}

int loss_config_parse_terms(LossConfig *c, const char *terms) {
    int g = 0, m = 0, e = 0;
    const char *p = terms;
    while (p && *p) {
        const char *q = strchr(p, ',');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        while (n && p[0] == ' ') p++, n--;
        while (n && p[n - 1] == ' ') n--;
        if (n == 3 && !strncmp(p, "gce", 3)) g = 1;
        else if (n == 3 && !strncmp(p, "mse", 3)) m = 1;
        else if (n == 7 && !strncmp(p, "entropy", 7)) e = 1;
        else
            return laic_error("train.loss: unknown term '%.*s' in '%s' ---> HINT: use a comma "
                              "list of gce, mse, entropy",
                              (int)n, p, terms);
        p = q ? q + 1 : NULL;
    }
    if (!g && !m && !e)
        return laic_error("train.loss: empty term list ---> HINT: e.g. train.loss=gce,mse,entropy");
    c->use_gce = g;
    c->use_mse = m;
    c->use_entropy = e;
    return 0;
}

// Row softmax of z (n) in place, in double, max-subtracted.
static void softmax_row(double *z, int n) {
    double mx = z[0], s = 0.0;
    for (int k = 1; k < n; k++) mx = z[k] > mx ? z[k] : mx;
    for (int k = 0; k < n; k++) s += (z[k] = exp(z[k] - mx));
    for (int k = 0; k < n; k++) z[k] /= s;
}

// logits (B,K) = scale * F (B,E) W^T (K,E), then softmax per row; double accumulation.
static void probs(double *P /*(B,K)*/, const float *F, const float *W, int B, int K, int E,
                  double scale) {
    for (int i = 0; i < B; i++) {
        const float *f = F + (size_t)i * E;
        double *z = P + (size_t)i * K;
        for (int c = 0; c < K; c++) {
            const float *w = W + (size_t)c * E;
            double d = 0.0;
            for (int e = 0; e < E; e++) d += (double)f[e] * (double)w[e];
            z[c] = scale * d;
        }
        softmax_row(z, K);
    }
}

/*
 * Forward (ps = softmax(zs), zs = scale fs W^T; pw likewise from fw, detached):
 *   L_s = (1/n_h) sum_{i in D_h} (1 - ps[i,y_i]^q) / q
 *   L_c = 1/(n_u K) sum_{i in D_u} sum_c (ps[i,c] - pw[i,c])^2    (torch F.mse_loss 'mean')
 *   H   = -sum_c pbar_c log pbar_c,   pbar = (1/B) sum_i ps[i,:]   (all B samples, strong view)
 *   L   = L_s + alpha L_c - beta H
 * Backward: first g = dL/dps (B,K), then through the softmax
 *   dzs[i,c] = ps[i,c] (g[i,c] - sum_k g[i,k] ps[i,k]),
 * then through the logits "zs = scale fs W^T":  dW[c,:] += scale sum_i dzs[i,c] fs[i,:].
 *   GCE:  dL_s/dps[i,y] = -ps[i,y]^(q-1) / n_h
 *   MSE:  dL_c/dps[i,c] = 2 (ps[i,c] - pw[i,c]) / (n_u K)      (pw is a constant target)
 *   -H:   d(-H)/dps[i,c] = (log pbar_c + 1) / B
 * The weak view gets no gradient at all (it only appears as the MSE target).
 */
int train_loss(LossValue *val, float *dW, const float *fw, const float *fs, const float *W,
               const int32_t *yhat, const uint8_t *hq, int B, int K, int E,
               const LossConfig *cfg) {
    memset(val, 0, sizeof *val);
    for (int i = 0; i < B; i++) {
        if (hq[i]) {
            if (yhat[i] < 0 || yhat[i] >= K)
                return laic_error("train: pseudo-label %d of sample %d is outside [0,%d)",
                                  (int)yhat[i], i, K);
            val->n_hq++;
        } else {
            val->n_u++;
        }
    }
    size_t BK = (size_t)B * K;
    double *ps = mallocCheck(BK * sizeof(double));   // (B,K)
    double *pw = mallocCheck(BK * sizeof(double));   // (B,K)
    double *g = callocCheck(BK, sizeof(double));     // (B,K) dL/dps, then dL/dzs
    double *pbar = callocCheck((size_t)K, sizeof(double));
    probs(ps, fs, W, B, K, E, cfg->scale);
    probs(pw, fw, W, B, K, E, cfg->scale);

    // Every term's value is reported (for logs and ablations); only switched-on terms get a
    // gradient, so g is built with weight 0 for the others.
    double on_g = cfg->use_gce ? 1.0 : 0.0, on_m = cfg->use_mse ? 1.0 : 0.0;
    // GCE on the strong view of D_h.
    if (val->n_hq > 0) {
        double s = 0.0, nh = val->n_hq;
        for (int i = 0; i < B; i++) {
            if (!hq[i]) continue;
            double py = ps[(size_t)i * K + yhat[i]];
            s += (1.0 - pow(py, cfg->q)) / cfg->q;
            g[(size_t)i * K + yhat[i]] += -on_g * pow(py, cfg->q - 1.0) / nh;
        }
        val->gce = s / nh;
    }
    // MSE between the weak (target) and strong probabilities on D_u.
    if (val->n_u > 0) {
        double s = 0.0, den = (double)val->n_u * K;
        for (int i = 0; i < B; i++) {
            if (hq[i]) continue;
            for (int c = 0; c < K; c++) {
                double d = ps[(size_t)i * K + c] - pw[(size_t)i * K + c];
                s += d * d;
                g[(size_t)i * K + c] += on_m * cfg->alpha * 2.0 * d / den;
            }
        }
        val->mse = s / den;
    }
    // Global entropy of the batch-mean strong prediction.
    for (int i = 0; i < B; i++)
        for (int c = 0; c < K; c++) pbar[c] += ps[(size_t)i * K + c];
    double H = 0.0;
    for (int c = 0; c < K; c++) {
        pbar[c] /= B;
        if (pbar[c] > 0.0) H -= pbar[c] * log(pbar[c]);   // 0 log 0 = 0
    }
    val->entropy = H;
    if (cfg->use_entropy) {
        for (int c = 0; c < K; c++) {
            // pbar_c = 0 only if every ps underflowed; its gradient then has ps = 0 anyway.
            double dl = cfg->beta * (log(pbar[c] > 1e-300 ? pbar[c] : 1e-300) + 1.0) / B;
            for (int i = 0; i < B; i++) g[(size_t)i * K + c] += dl;
        }
    }
    val->total = (cfg->use_gce ? val->gce : 0.0) + (cfg->use_mse ? cfg->alpha * val->mse : 0.0) -
                 (cfg->use_entropy ? cfg->beta * H : 0.0);

    if (dW) {
        // Softmax backward, in place: g <- ps (g - <g, ps>).
        for (int i = 0; i < B; i++) {
            double *gi = g + (size_t)i * K;
            const double *pi = ps + (size_t)i * K;
            double dot = 0.0;
            for (int c = 0; c < K; c++) dot += gi[c] * pi[c];
            for (int c = 0; c < K; c++) gi[c] = pi[c] * (gi[c] - dot);
        }
        double *acc = mallocCheck((size_t)E * sizeof(double));
        for (int c = 0; c < K; c++) {
            for (int e = 0; e < E; e++) acc[e] = 0.0;
            for (int i = 0; i < B; i++) {
                double gz = g[(size_t)i * K + c];
                if (gz == 0.0) continue;
                const float *f = fs + (size_t)i * E;
                for (int e = 0; e < E; e++) acc[e] += gz * f[e];
            }
            float *d = dW + (size_t)c * E;
            for (int e = 0; e < E; e++) d[e] += (float)(cfg->scale * acc[e]);
        }
        free(acc);
    }
    free(ps);
    free(pw);
    free(g);
    free(pbar);
    return 0;
}

// "w = u / ||u||": dw/du = (I - w w^T) / ||u||.
void l2norm_rows_backward(float *du, const float *dw, const float *u, int K, int E) {
    for (int c = 0; c < K; c++) {
        const float *uc = u + (size_t)c * E, *gc = dw + (size_t)c * E;
        double n2 = 0.0, dot = 0.0;
        for (int e = 0; e < E; e++) n2 += (double)uc[e] * uc[e];
        double n = sqrt(n2);
        for (int e = 0; e < E; e++) dot += (uc[e] / n) * gc[e];
        for (int e = 0; e < E; e++)
            du[(size_t)c * E + e] += (float)((gc[e] - (uc[e] / n) * dot) / n);
    }
}

// --- optimiser and schedule ------------------------------------------------------------

void sgd_config_default(SgdConfig *c) {
    c->lr = 0.002;
    c->momentum = 0.9;
    c->weight_decay = 5e-4;
    c->max_epoch = 20;
    c->warmup_epoch = 1;
    c->warmup_lr = 1e-5;
}

/*
 * CoOp: ConstantWarmupScheduler(successor = CosineAnnealingLR(T_max = max_epoch, eta_min 0))
 * stepped once per epoch. Epochs [0, warmup) run at warmup_lr; epoch warmup runs at the base
 * lr (the successor has not been stepped yet); epoch e > warmup at the successor's t = e -
 * warmup, computed as torch does it: recursively from the previous group lr,
 *   lr_t = (1 + cos(pi t/T)) / (1 + cos(pi (t-1)/T)) (lr_{t-1} - eta_min) + eta_min,
 * with torch's special branch where (t - 1 - T) % 2T == 0 (denominator zero). The recursion
 * rounds differently from the closed form, so we follow it step by step.
 */
double train_lr(const SgdConfig *c, int epoch) {
    if (epoch < c->warmup_epoch) return c->warmup_lr;
    double lr = c->lr, T = (double)c->max_epoch, eta_min = 0.0;
    int tmax = epoch - c->warmup_epoch;
    for (int t = 1; t <= tmax; t++) {
        if (fmod((double)t - 1.0 - T, 2.0 * T) == 0.0)
            lr = lr + (c->lr - eta_min) * (1.0 - cos(M_PI / T)) / 2.0;
        else
            lr = (1.0 + cos(M_PI * t / T)) / (1.0 + cos(M_PI * (t - 1) / T)) * (lr - eta_min) +
                 eta_min;
    }
    return lr;
}

/* torch's CPU kernels compute "a.add(b, alpha)" as one fused multiply-add in float32 and
 * "buf.mul_(m)" as a rounded float product; fmaf reproduces both bit for bit. */
void sgd_step(float *p, float *buf, int *have_buf, const float *g, size_t n, double lr,
              double momentum, double weight_decay) {
    float wd = (float)weight_decay, mo = (float)momentum, nlr = (float)(-lr);
    int first = !*have_buf;
    for (size_t i = 0; i < n; i++) {
        float d = weight_decay != 0.0 ? fmaf(p[i], wd, g[i]) : g[i];
        if (momentum != 0.0) {
            buf[i] = first ? d : buf[i] * mo + d;
            d = buf[i];
        }
        p[i] = fmaf(d, nlr, p[i]);
    }
    *have_buf = 1;
}

void train_init_vectors(float *v, size_t n, uint64_t seed) {
    Rng r;
    rng_init(&r, seed, 0x7EC7095ull);   // a stream of its own, apart from augmentation streams
    for (size_t i = 0; i < n; i++) v[i] = (float)(0.02 * rng_normal(&r));
}

// --- checkpoint ------------------------------------------------------------------------

void train_state_alloc(TrainState *s, int K, int M, int D) {
    memset(s, 0, sizeof *s);
    s->K = K;
    s->M = M;
    s->D = D;
    size_t n = (size_t)K * M * D;
    s->vec = callocCheck(n ? n : 1, sizeof(float));
    s->mom = callocCheck(n ? n : 1, sizeof(float));
}

void train_state_free(TrainState *s) {
    free(s->vec);
    free(s->mom);
    free(s->hparams);
    free(s->path);
    s->vec = s->mom = NULL;
    s->hparams = s->path = NULL;
}

enum { H_MAGIC, H_VERSION, H_K, H_M, H_D, H_EPOCH, H_STEP_LO, H_STEP_HI, H_SEED_LO, H_SEED_HI,
       H_HAVE_MOM, H_NRNG, H_HPLEN, H_SUM_LO, H_SUM_HI };
#define CKPT_HASH_SEED 0x636b70745f763200ull   // "ckpt_v2"

/* The checksum: the header with its checksum words zeroed, then each part. */
static uint64_t ckpt_sum(const int32_t *h, const float *vec, const float *mom, size_t n,
                         const Rng *rng, int n_rng, const char *hp, size_t hp_len) {
    int32_t hz[256];
    memcpy(hz, h, sizeof hz);
    hz[H_SUM_LO] = hz[H_SUM_HI] = 0;
    uint64_t x = laic_hash64(hz, sizeof hz, CKPT_HASH_SEED);
    x = laic_hash64(vec, n * sizeof *vec, x);
    x = laic_hash64(mom, n * sizeof *mom, x);
    for (int r = 0; r < n_rng; r++) x = laic_hash64(rng[r].s, sizeof rng[r].s, x);
    return laic_hash64(hp, hp_len, x);
}

int ckpt_save(const char *path, const TrainState *s) {
    if (s->n_rng < 0 || s->n_rng > CKPT_MAX_RNG)
        return laic_error("%s: %d RNG states (at most %d)", path, s->n_rng, CKPT_MAX_RNG);
    const size_t hp_len = s->hparams ? strlen(s->hparams) : 0;
    if (hp_len > CKPT_MAX_HPARAMS) return laic_error("%s: hyper-parameter text too long", path);
    int32_t h[256] = {0};
    h[H_MAGIC] = CKPT_MAGIC;
    h[H_VERSION] = CKPT_VERSION;
    h[H_K] = s->K;
    h[H_M] = s->M;
    h[H_D] = s->D;
    h[H_EPOCH] = s->epoch;
    h[H_STEP_LO] = (int32_t)(uint32_t)((uint64_t)s->step & 0xffffffffu);
    h[H_STEP_HI] = (int32_t)(uint32_t)((uint64_t)s->step >> 32);
    h[H_SEED_LO] = (int32_t)(uint32_t)(s->seed & 0xffffffffu);
    h[H_SEED_HI] = (int32_t)(uint32_t)(s->seed >> 32);
    h[H_HAVE_MOM] = s->have_mom;
    h[H_NRNG] = s->n_rng;
    h[H_HPLEN] = (int32_t)hp_len;
    size_t n = (size_t)s->K * s->M * s->D;
    uint64_t sum = ckpt_sum(h, s->vec, s->mom, n, s->rng, s->n_rng, s->hparams ? s->hparams : "", hp_len);
    h[H_SUM_LO] = (int32_t)(uint32_t)(sum & 0xffffffffu);
    h[H_SUM_HI] = (int32_t)(uint32_t)(sum >> 32);
    AtomicFile af;
    if (atomic_open(&af, path)) return -1;
    int ok = fwrite(h, sizeof h, 1, af.fp) == 1 && (!n || fwrite(s->vec, sizeof(float), n, af.fp) == n) &&
             (!n || fwrite(s->mom, sizeof(float), n, af.fp) == n);
    for (int r = 0; ok && r < s->n_rng; r++) ok = fwrite(s->rng[r].s, sizeof(uint64_t), 4, af.fp) == 4;
    if (ok && hp_len) ok = fwrite(s->hparams, 1, hp_len, af.fp) == hp_len;
    if (!ok) {
        atomic_abort(&af);
        return laic_error("%s: write failed", path);
    }
    return atomic_commit(&af);
}

/* a * b (+ c) in size_t, or SIZE_MAX when it would wrap. */
static size_t mul_sat(size_t a, size_t b) { return a && b > SIZE_MAX / a ? SIZE_MAX : a * b; }
static size_t add_sat(size_t a, size_t b) { return b > SIZE_MAX - a ? SIZE_MAX : a + b; }

int ckpt_load(const char *path, TrainState *s) {
    memset(s, 0, sizeof *s);
    FILE *fp = fopen(path, "rb");
    if (!fp) return laic_error("%s: cannot open checkpoint", path);
    int32_t h[256];
    struct stat st;
    if (fstat(fileno(fp), &st) || fread(h, sizeof h, 1, fp) != 1) {
        fclose(fp);
        return laic_error("%s: not a laic checkpoint (shorter than its 1024-byte header)", path);
    }
    const char *bad = NULL;
    if (h[H_MAGIC] != CKPT_MAGIC) bad = "bad magic number (not a laic checkpoint)";
    else if (h[H_VERSION] != CKPT_VERSION) bad = "version";
    else if (h[H_K] <= 0 || h[H_M] <= 0 || h[H_D] <= 0 || h[H_EPOCH] < 0 ||
             (h[H_HAVE_MOM] != 0 && h[H_HAVE_MOM] != 1) || h[H_NRNG] < 0 || h[H_NRNG] > CKPT_MAX_RNG ||
             h[H_HPLEN] < 0 || h[H_HPLEN] > CKPT_MAX_HPARAMS)
        bad = "corrupt header";
    if (bad) {
        fclose(fp);
        if (!strcmp(bad, "version"))
            return laic_error("%s: checkpoint version %d, this build reads version %d%s", path,
                              (int)h[H_VERSION], CKPT_VERSION,
                              h[H_VERSION] == 1 ? " ---> HINT: version 1 holds no hyper-parameters or "
                                                  "checksum; train again from the start" : "");
        return laic_error("%s: %s", path, bad);
    }
    // sizes in saturating arithmetic: a 1 KB file claiming K = M = 2^20 must not wrap to its size
    const size_t n = mul_sat(mul_sat((size_t)h[H_K], (size_t)h[H_M]), (size_t)h[H_D]);
    size_t want = add_sat(sizeof h, mul_sat(mul_sat(n, 2), sizeof(float)));
    want = add_sat(want, (size_t)h[H_NRNG] * 4 * sizeof(uint64_t));
    want = add_sat(want, (size_t)h[H_HPLEN]);
    if (want == SIZE_MAX || (uint64_t)st.st_size != (uint64_t)want) {
        fclose(fp);
        return laic_error("%s: size %lld bytes, but its header (K=%d M=%d D=%d, %d RNG, %d bytes of "
                          "settings) needs %s%zu", path, (long long)st.st_size, (int)h[H_K], (int)h[H_M],
                          (int)h[H_D], (int)h[H_NRNG], (int)h[H_HPLEN], want == SIZE_MAX ? "more than " : "",
                          want);
    }
    s->vec = malloc(n * sizeof(float));
    s->mom = malloc(n * sizeof(float));
    s->hparams = malloc((size_t)h[H_HPLEN] + 1);
    if (!s->vec || !s->mom || !s->hparams) {
        fclose(fp);
        train_state_free(s);
        return laic_error("%s: out of memory for K=%d M=%d D=%d", path, (int)h[H_K], (int)h[H_M], (int)h[H_D]);
    }
    s->K = h[H_K];
    s->M = h[H_M];
    s->D = h[H_D];
    s->epoch = h[H_EPOCH];
    s->step = (int64_t)((uint64_t)(uint32_t)h[H_STEP_LO] | ((uint64_t)(uint32_t)h[H_STEP_HI] << 32));
    s->seed = (uint64_t)(uint32_t)h[H_SEED_LO] | ((uint64_t)(uint32_t)h[H_SEED_HI] << 32);
    s->have_mom = h[H_HAVE_MOM];
    s->n_rng = h[H_NRNG];
    const size_t hp_len = (size_t)h[H_HPLEN];
    int ok = fread(s->vec, sizeof(float), n, fp) == n && fread(s->mom, sizeof(float), n, fp) == n;
    for (int r = 0; ok && r < s->n_rng; r++) ok = fread(s->rng[r].s, sizeof(uint64_t), 4, fp) == 4;
    if (ok && hp_len) ok = fread(s->hparams, 1, hp_len, fp) == hp_len;
    fclose(fp);
    if (!ok) {
        train_state_free(s);
        return laic_error("%s: read failed", path);
    }
    s->hparams[hp_len] = 0;
    const uint64_t sum = (uint64_t)(uint32_t)h[H_SUM_LO] | ((uint64_t)(uint32_t)h[H_SUM_HI] << 32);
    if (ckpt_sum(h, s->vec, s->mom, n, s->rng, s->n_rng, s->hparams, hp_len) != sum) {
        train_state_free(s);
        return laic_error("%s: checksum mismatch: the checkpoint is corrupted ---> HINT: resume from "
                          "an intact copy or train again", path);
    }
    if (memchr(s->hparams, 0, hp_len)) {
        train_state_free(s);
        return laic_error("%s: corrupt hyper-parameter text", path);
    }
    s->path = strdup(path);
    return 0;
}

// --- the settings a checkpoint records --------------------------------------------------------

void hparams_add(HparamsText *t, const char *key, const char *fmt, ...) {
    char v[512], line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    // one line per setting: a value's newline or backslash is written as \xNN
    size_t o = (size_t)snprintf(line, sizeof line, "%s = ", key);
    for (const unsigned char *c = (const unsigned char *)v; *c && o + 6 < sizeof line; c++)
        o += (size_t)(*c >= 0x20 && *c != 0x7f && *c != '\\' ? snprintf(line + o, sizeof line - o, "%c", *c)
                                                            : snprintf(line + o, sizeof line - o, "\\x%02x", *c));
    o += (size_t)snprintf(line + o, sizeof line - o, "\n");
    if (t->n + o + 1 > t->cap) {
        t->cap = 2 * (t->cap + o + 1);
        t->p = realloc(t->p, t->cap);
        LAIC_ASSERT(t->p);
    }
    memcpy(t->p + t->n, line, o + 1);
    t->n += o;
}

/* The value of `key` in a settings text (a pointer to its line's value, length in *n), or NULL. */
static const char *hparams_find(const char *text, const char *key, size_t *n) {
    size_t kl = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, key, kl) && !strncmp(p + kl, " = ", 3)) {
            p += kl + 3;
            *n = strcspn(p, "\n");
            return p;
        }
    return NULL;
}

int hparams_check(const char *file, const char *saved, const char *now, const char *hint) {
    if (!saved || !saved[0])
        return laic_error("%s: the checkpoint records no settings to check a resume against", file);
    for (const char *p = now; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        char key[128];
        size_t kl = strcspn(p, " ");
        snprintf(key, sizeof key, "%.*s", (int)(kl < sizeof key ? kl : sizeof key - 1), p);
        const char *v = p + kl + 3;
        size_t vn = strcspn(v, "\n"), cn = 0;
        const char *c = hparams_find(saved, key, &cn);
        if (!c)
            return laic_error("%s: resume refused: the checkpoint has no setting %s", file, key);
        if (cn != vn || memcmp(c, v, vn))
            return laic_error("%s: resume refused: %s = %.*s in the checkpoint, %.*s in this run "
                              "---> HINT: %s", file, key, (int)(cn < 200 ? cn : 200), c,
                              (int)(vn < 200 ? vn : 200), v, hint);
    }
    return 0;
}
