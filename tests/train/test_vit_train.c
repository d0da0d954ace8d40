/*
 * test_vit_train.c — the image-encoder trainer (host/train/vit.h, issue 16): one LoRA step on the
 * tiny ViT against PyTorch (tests/fixtures/vit/lora*, scripts/make_vit_fixtures.py: PEFT-style
 * LoRA r = 4, α = 8 on q and v of both blocks, L = mean CE(10 · normalize(F) Wᵀ, y), then
 * clip_grad_norm_ and torch.optim.AdamW), checkpoint state round trips, and the memory plan:
 * its numbers for ViT-B/32, that it equals what is allocated, and that a request over the limit
 * fails before anything is allocated, naming the batch that fits.
 *
 * Tolerances, and why:
 * - loss: the host CE of laic's fp32 features vs float64: ≤ 1e-5 relative;
 * - LoRA gradients (fp32 through 2 blocks vs float64): per tensor max|a-r| / max|r| ≤ 1e-4 and
 *   |a-r| ≤ 1e-4 max|r| + 1e-3 |r| (as test_vit_backward.c); at U = 0, dD is exactly 0 on both;
 * - parameters after one step from laic's own gradients: AdamW's first step moves an element
 *   by lr · ĝ/(|ĝ| + eps) (ĝ the clipped gradient), ≈ lr · sign(g) except where |ĝ| is near eps,
 *   where a gradient error e changes it by up to lr · e/(4 eps); the smallest golden gradients
 *   are ~3e-5 of their tensor's largest and laic's are off by ~5e-7 of it, so each update must be
 *   within 0.1% of lr: |p − ref| ≤ 1e-6 + 1e-3 lr + 1e-5 |ref| (observed ≤ 1.5e-4 lr);
 * - the step alone from torch's gradients (clip_grad_norm_ + AdamW): ≤ 1e-7 + 1e-6 |ref| (the
 *   norm is summed in double here, in float32 by torch; the rest is adam_forward's arithmetic).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/clip.h"
#include "cpu/cpu_ops.h"
#include "io/err.h"
#include "io/npy.h"
#include "ops.h"
#include "train/vit.h"
#include "../test.h"

#define WEIGHTS "tests/fixtures/clip/tiny_f16.safetensors"
#define FIXDIR "tests/fixtures/vit"
static float *loadf(const char *name, Npy *a) { return test_fixture_f32(FIXDIR, name, a); }

// L = mean_i CE(s · F̂_i Wᵀ, y_i), F̂ = F/‖F‖; dF (B,E) = ∂L/∂F. Returns L (double on the host).
static double ce_loss(const float *F, const float *W, const int32_t *y, int B, int K, int E,
                      double s, float *dF) {
    float *Fn = mallocCheck((size_t)B * E * 4), *dFn = mallocCheck((size_t)B * E * 4);
    ops_cpu.l2norm_forward(Fn, F, B, E);
    double L = 0;
    for (int b = 0; b < B; b++) {
        double z[64], mx = -INFINITY, se = 0;
        for (int k = 0; k < K; k++) {
            double d = 0;
            for (int e = 0; e < E; e++) d += (double)Fn[b * E + e] * W[k * E + e];
            z[k] = s * d;
            mx = fmax(mx, z[k]);
        }
        for (int k = 0; k < K; k++) se += exp(z[k] - mx);
        L += (log(se) + mx - z[y[b]]) / B;
        for (int e = 0; e < E; e++) {
            double g = 0;
            for (int k = 0; k < K; k++) {
                double p = exp(z[k] - mx) / se - (k == y[b]);
                g += p / B * s * W[k * E + e];
            }
            dFn[b * E + e] = (float)g;
        }
    }
    ops_cpu.l2norm_backward(dF, dFn, F, B, E);
    free(Fn);
    free(dFn);
    return L;
}

static void run_lora_case(const char *cs) {
    char name[64];
    Npy pix, W, y, cfg, p0, gr, p1, ls, st;
    memset(&y, 0, sizeof y);
    ClipWeights w;
    memset(&w, 0, sizeof w);
    REQUIRE(clip_weights_load(&w, WEIGHTS) == 0, "load: %s", laic_last_error());
#define LOADC(var, suffix) (snprintf(name, sizeof name, "%s_%s", cs, suffix), loadf(name, &var))
    float *P = loadf("model_pixels", &pix), *Wk = loadf("lora_W", &W), *c = loadf("lora_cfg", &cfg);
    float *params0 = LOADC(p0, "params0"), *grads = LOADC(gr, "grads"),
          *params1 = LOADC(p1, "params1"), *loss = LOADC(ls, "loss"), *step = LOADC(st, "step");
    size_t ny = 0;
    int32_t *yv = test_fixture_i32(FIXDIR, "lora_y", &ny, NULL, NULL);
    if (P && Wk && c && params0 && grads && params1 && loss && step && yv) {
        const int B = (int)pix.shape[0], K = (int)W.shape[0], E = w.cfg.embed_dim;
        const int r = (int)c[0];
        VitTrainOpts o;
        vit_train_opts_default(&o);
        o.spec = clip_spec_lora(r, c[1]);
        o.lr = c[3];
        o.weight_decay = c[4];
        o.clip_norm = step[0];
        VitTrainer *t = vit_trainer_create(&w, &ops_cpu, B, &o);
        REQUIRE(t, "create: %s", laic_last_error());
        ClipModel *m = vit_trainer_model(t);
        const size_t n = clip_trainable_numel(m);
        CHECK(n == p0.count, "trainable arena %zu floats, golden %zu", n, p0.count);
        const ClipTensorInfo *info;
        int nt = clip_trainable_tensors(m, &info);
        CHECK(nt == 4 * w.cfg.vision_layers, "LoRA only: %d tensors", nt);
        CHECK(nt > 1 && !strcmp(info[1].name, "visual.transformer.resblocks.0.attn.q_lora_up") &&
                  info[1].shape[0] == (size_t)w.cfg.vision_width && info[1].shape[1] == (size_t)r,
              "tensor 1 is block 0's q up (C,r)");
        REQUIRE(n == p0.count, "sizes");
        CHECK(vit_trainer_set_state(t, params0, NULL, NULL, 0) == 0, "set params");
        float *F = mallocCheck((size_t)B * E * 4), *dF = mallocCheck((size_t)B * E * 4);
        CHECK(clip_encode_images(m, P, B, F) == 0, "fwd: %s", laic_last_error());
        double L = ce_loss(F, Wk, yv, B, K, E, c[2], dF);
        printf("    %s: loss %.7f (torch %.7f)\n", cs, L, loss[0]);
        CHECK(fabs(L - loss[0]) <= 1e-5 * fabs(loss[0]), "loss");
        CHECK(clip_image_backward(m, dF, NULL) == 0, "bwd: %s", laic_last_error());
        float *g = mallocCheck(n * 4);
        ops_cpu.copy(g, clip_trainable_grads(m), n * 4);
        for (int i = 0; i < nt; i++) {
            char what[128];
            snprintf(what, sizeof what, "%s d%s", cs, info[i].name + 29);   // "0.attn.q_lora_down"
            if (test_maxabs(grads + info[i].offset, info[i].numel) == 0)
                CHECK(test_maxabs(g + info[i].offset, info[i].numel) == 0, "%s: exactly 0", what);
            else
                test_close_grad(g + info[i].offset, grads + info[i].offset, info[i].numel, what);
        }
        CHECK(vit_trainer_step(t) == 0, "step");
        if (step[0] > 0) {
            double nrm = vit_trainer_last_grad_norm(t);
            printf("    %s: grad norm before clipping %.6g (torch %.6g), clipped to %g\n", cs, nrm,
                   step[1], step[0]);
            CHECK(fabs(nrm - step[1]) <= 1e-4 * step[1], "global norm");
        }
        float *after = mallocCheck(n * 4), *zg = mallocCheck(n * 4);
        long steps = 0;
        CHECK(vit_trainer_get_state(t, after, NULL, NULL, &steps) == 0 && steps == 1, "state");
        // end to end (laic's own gradients): the update of each element within 0.1% of lr
        CHECK(test_allclose(after, params1, n, 1e-6 + 1e-3 * o.lr, 1e-5,
                            "parameters after one AdamW step"),
              "%s: AdamW step", cs);
        ops_cpu.copy(zg, clip_trainable_grads(m), n * 4);
        CHECK(test_maxabs(zg, n) == 0, "the step zeroes the gradients");
        // the step alone, from torch's own (float64-rounded) gradients: clip + AdamW to the ulp
        float *zero = calloc(n, 4);
        CHECK(vit_trainer_set_state(t, params0, zero, zero, 0) == 0, "reset");
        ops_cpu.to_device(clip_trainable_grads(m), grads, n * 4);
        CHECK(vit_trainer_step(t) == 0, "step from the golden gradients");
        CHECK(vit_trainer_get_state(t, after, NULL, NULL, NULL) == 0, "state");
        CHECK(test_allclose(after, params1, n, 1e-7, 1e-6,
                            "one step from torch's gradients (clip + AdamW)"),
              "%s: step from golden gradients", cs);
        free(zero);
        free(F); free(dF); free(g); free(after); free(zg);
        vit_trainer_free(t);
    }
#undef LOADC
    free(yv);
    npy_free(&pix); npy_free(&W); npy_free(&cfg); npy_free(&p0); npy_free(&gr); npy_free(&p1);
    npy_free(&ls); npy_free(&st);
    clip_weights_free(&w);
}

TEST(vit_lora_step_matches_torch) { run_lora_case("lora"); }
TEST(vit_lora_init_step_matches_torch) { run_lora_case("lora0"); }

// A trainer stopped after a step and rebuilt from its exported state takes the next step to
// the same bits as one that ran on; the LoRA init is deterministic for a seed (U = 0: the
// first forward equals the frozen model's).
TEST(vit_trainer_state_round_trip) {
    ClipWeights w;
    memset(&w, 0, sizeof w);
    REQUIRE(clip_weights_load(&w, WEIGHTS) == 0, "load: %s", laic_last_error());
    Npy pix;
    float *P = loadf("model_pixels", &pix);
    if (P) {
        const int B = (int)pix.shape[0], E = w.cfg.embed_dim;
        VitTrainOpts o;
        vit_train_opts_default(&o);
        o.spec = clip_spec_lora(8, 16.0f);
        o.spec.train_proj = 1;
        o.spec.recompute = 1;
        o.lr = 1e-3;
        o.weight_decay = 0.01;
        o.clip_norm = 1.0;
        o.seed = 5;
        VitTrainer *a = vit_trainer_create(&w, &ops_cpu, B, &o),
                   *b = vit_trainer_create(&w, &ops_cpu, B, &o);
        ClipModel *inf = clip_model_create(&w, &ops_cpu, B);
        REQUIRE(a && b && inf, "create: %s", laic_last_error());
        const size_t n = clip_trainable_numel(vit_trainer_model(a));
        float *F = mallocCheck((size_t)B * E * 4), *F0 = mallocCheck((size_t)B * E * 4),
              *dF = mallocCheck((size_t)B * E * 4);
        float *pa = mallocCheck(n * 4), *pb = mallocCheck(n * 4), *ma = mallocCheck(n * 4),
              *va = mallocCheck(n * 4), *mb = mallocCheck(n * 4), *vb = mallocCheck(n * 4);
        CHECK(vit_trainer_get_state(a, pa, NULL, NULL, NULL) == 0 &&
                  vit_trainer_get_state(b, pb, NULL, NULL, NULL) == 0 && !memcmp(pa, pb, n * 4),
              "same seed, same LoRA init");
        CHECK(clip_encode_images(vit_trainer_model(a), P, B, F) == 0, "fwd");
        CHECK(clip_encode_images(inf, P, B, F0) == 0, "fwd frozen");
        CHECK(!memcmp(F, F0, (size_t)B * E * 4), "U = 0: the adapted model starts as the frozen one");
        for (size_t i = 0; i < (size_t)B * E; i++) dF[i] = (float)((i % 7) - 3) * 0.25f;
        for (int s = 0; s < 3; s++) {   // a runs 3 steps; b runs 1, is rebuilt from its state, runs 2
            for (int k = 0; k < 2; k++) {
                VitTrainer *t = k ? b : a;
                if (k && s >= 1 && s == 1) {
                    long st;
                    CHECK(vit_trainer_get_state(b, pb, mb, vb, &st) == 0 && st == 1, "export");
                    vit_trainer_free(b);
                    b = t = vit_trainer_create(&w, &ops_cpu, B, &o);
                    REQUIRE(b, "recreate");
                    CHECK(vit_trainer_set_state(b, pb, mb, vb, st) == 0, "import");
                }
                ClipModel *m = vit_trainer_model(t);
                CHECK(clip_encode_images(m, P, B, F) == 0, "fwd %d", s);
                CHECK(clip_image_backward(m, dF, NULL) == 0, "bwd %d", s);
                CHECK(vit_trainer_step(t) == 0, "step %d", s);
            }
        }
        long sa, sb;
        vit_trainer_get_state(a, pa, ma, va, &sa);
        vit_trainer_get_state(b, pb, mb, vb, &sb);
        CHECK(sa == 3 && sb == 3, "steps %ld %ld", sa, sb);
        CHECK(!memcmp(pa, pb, n * 4) && !memcmp(ma, mb, n * 4) && !memcmp(va, vb, n * 4),
              "resumed trainer == uninterrupted trainer, bitwise (params, m, v)");
        CHECK(clip_encode_images(vit_trainer_model(a), P, B, F) == 0, "fwd after");
        CHECK(memcmp(F, F0, (size_t)B * E * 4) != 0, "training moved the features");
        free(F); free(F0); free(dF); free(pa); free(pb); free(ma); free(va); free(mb); free(vb);
        vit_trainer_free(a);
        vit_trainer_free(b);
        clip_model_free(inf);
    }
    npy_free(&pix);
    clip_weights_free(&w);
}

// --- memory plan ------------------------------------------------------------------------------

TEST(vit_plan_numbers_vit_b_32) {
    ClipConfig c;
    REQUIRE(clip_config_preset(&c, "vit-b-32") == 0, "preset");
    const size_t B = 128, T = 50, N = B * T, C = 768, H = 3072, NH = 12, E = 512, NL = 12;
    const size_t r = 128, vis = 87849216;   // visual parameters of ViT-B/32
    ClipVisionTrainSpec lora = clip_spec_lora((int)r, 128.0f);
    ClipTrainPlan p, pr;
    clip_vision_train_plan(&c, &lora, (int)B, 1, 1, 2, &p);
    // every part from the shapes, independently of clip.c's tables
    const size_t ntrain = NL * 4 * r * C;
    CHECK(p.params == vis * 4, "params %zu", p.params);
    CHECK(p.params_bf16 == (vis + N * H + C * H + 2 * N * H) * 2, "bf16 %zu", p.params_bf16);
    CHECK(p.activations == (B * 3 * 224 * 224 + B * 49 * 3072 + N * C * 4 + N * 3 * C + N * H +
                            2 * B * C + B * E) * 4 + (B * 77 + B) * 4,
          "activations %zu", p.activations);
    CHECK(p.block_inputs == (NL + 1) * N * C * 4, "block inputs %zu", p.block_inputs);
    const size_t per_block = N * C * 2 + 4 * N + N * 3 * C + B * NH * T * T + N * H + 2 * N * r;
    CHECK(p.saved == (NL * per_block + 2 * B) * 4, "saved %zu", p.saved);
    CHECK(p.grad_buffers == (N * C * 4 + N * 3 * C + N * H + N * r + B * (E + 2 * C)) * 4,
          "grad buffers %zu", p.grad_buffers);
    CHECK(p.trainable == 2 * ntrain * 4 && p.optimizer == 2 * ntrain * 4, "trainable / adam");
    CHECK(p.total == p.params + p.params_bf16 + p.activations + p.block_inputs + p.saved +
                         p.grad_buffers + p.trainable + p.optimizer,
          "total is the sum");
    ClipVisionTrainSpec lr = lora;
    lr.recompute = 1;
    clip_vision_train_plan(&c, &lr, (int)B, 1, 1, 2, &pr);
    CHECK(pr.saved == (per_block + 2 * B) * 4 && pr.block_inputs == p.block_inputs,
          "recompute keeps one block's activations");
    char buf[2048];
    clip_train_plan_format(&p, buf, sizeof buf);
    printf("    LoRA r=128, bf16, AdamW, %s\n%s\n", "no recompute", buf);
    clip_train_plan_format(&pr, buf, sizeof buf);
    printf("    with recompute:\n%s\n", buf);
    const size_t GB12 = (size_t)12 << 30;
    CHECK(p.total + CLIP_DEVICE_RESERVE <= GB12, "LoRA batch 128 fits in 12 GiB: %.2f GiB + reserve",
          p.total / 1073741824.0);
    int fit = clip_vision_train_fit(&c, &lora, 1, 1, 2, GB12 - CLIP_DEVICE_RESERVE);
    int fitr = clip_vision_train_fit(&c, &lr, 1, 1, 2, GB12 - CLIP_DEVICE_RESERVE);
    printf("    12 GiB card (less the 256 MiB reserve): batch %d, %d with recompute\n", fit, fitr);
    CHECK(fit >= 128 && fitr > fit, "fits");
    // full_last_k (k = 9): only blocks 9..11 keep activations, the backward stops at block 9
    ClipVisionTrainSpec fk = clip_spec_full_last_k(9);
    clip_vision_train_plan(&c, &fk, (int)B, 1, 1, 2, &pr);
    CHECK(pr.block_inputs == 4 * N * C * 4, "full_last_k 9: 4 block-input slots");
    CHECK(pr.saved == (3 * (per_block - 2 * N * r) + 2 * B) * 4, "full_last_k 9: 3 blocks saved");
    clip_train_plan_format(&pr, buf, sizeof buf);
    printf("    full_last_k 9, bf16, AdamW:\n%s\n", buf);
    CHECK(pr.trainable == 2 * (3 * 7087872 + 2 * C + C * E) * 4, "full_last_k 9 trainable");
}

// A backend that is ops_cpu with a byte-counting alloc and a name that is not "cpu", so the model
// copies its parameters as on a device: what is allocated must be exactly the plan.
static size_t g_counted;
static void *count_alloc(size_t bytes) {
    g_counted += bytes;
    return ops_cpu.alloc(bytes);
}

TEST(vit_plan_equals_allocations) {
    ClipWeights w;
    memset(&w, 0, sizeof w);
    REQUIRE(clip_weights_load(&w, WEIGHTS) == 0, "load: %s", laic_last_error());
    OpsBackend counting = ops_cpu;
    counting.name = "cpu-counting";
    counting.alloc = count_alloc;
    const ClipVisionTrainSpec specs[4] = {clip_spec_lora(4, 8.0f), clip_spec_full_last_k(1),
                                          clip_spec_all(), clip_spec_lora(3, 3.0f)};
    for (int s = 0; s < 4; s++) {
        VitTrainOpts o;
        vit_train_opts_default(&o);
        o.spec = specs[s];
        o.spec.recompute = s == 3;
        o.spec.dpixels = s == 2;
        g_counted = 0;
        VitTrainer *t = vit_trainer_create(&w, &counting, 5, &o);
        REQUIRE(t, "create: %s", laic_last_error());
        const ClipTrainPlan *p = vit_trainer_plan(t);
        printf("    spec %d: allocated %zu bytes, plan %zu\n", s, g_counted, p->total);
        CHECK(g_counted == p->total, "spec %d: allocated %zu == plan %zu", s, g_counted, p->total);
        vit_trainer_free(t);
    }
    // the CPU aliases the frozen weights: the plan has no parameter copy there
    ClipTrainPlan p;
    ClipVisionTrainSpec l = clip_spec_lora(4, 8.0f);
    clip_vision_train_plan(&w.cfg, &l, 5, 0, 0, 2, &p);
    CHECK(p.params == 0 && p.params_bf16 == 0, "CPU plan: no parameter copy");
    clip_weights_free(&w);
}

typedef struct {
    char text[4096];
} LogBuf;
static void log_collect(void *ctx, const char *line) {
    LogBuf *b = ctx;
    size_t k = strlen(b->text);
    snprintf(b->text + k, sizeof b->text - k, "%s\n", line);
}

TEST(vit_plan_refuses_before_training) {
    ClipWeights w;
    memset(&w, 0, sizeof w);
    REQUIRE(clip_weights_load(&w, WEIGHTS) == 0, "load: %s", laic_last_error());
    VitTrainOpts o;
    vit_train_opts_default(&o);
    o.spec = clip_spec_lora(4, 8.0f);
    LogBuf lb = {{0}};
    o.log = log_collect;
    o.log_ctx = &lb;
    // the plan at batch 8 and at batch 5, on the CPU (no parameter copy)
    VitTrainer *t8 = vit_trainer_create(&w, &ops_cpu, 8, &o);
    REQUIRE(t8, "create: %s", laic_last_error());
    const size_t need8 = vit_trainer_plan(t8)->total;
    vit_trainer_free(t8);
    CHECK(strstr(lb.text, "memory plan, batch 8:") && strstr(lb.text, "saved activations") &&
              strstr(lb.text, "total"),
          "the plan is logged part by part: %s", lb.text);
    printf("%s", lb.text);
    VitTrainer *t5 = vit_trainer_create(&w, &ops_cpu, 5, &o);
    REQUIRE(t5, "create 5");
    const size_t need5 = vit_trainer_plan(t5)->total;
    vit_trainer_free(t5);
    // a limit between the two: batch 8 is refused before anything is allocated, naming the
    // largest batch that fits (5, 6 or 7: the plan grows linearly), which then succeeds
    o.mem_limit = need5 + (need8 - need5) / 3;
    g_counted = 0;
    OpsBackend counting = ops_cpu;
    counting.alloc = count_alloc;   // still named "cpu"
    VitTrainer *t = vit_trainer_create(&w, &counting, 8, &o);
    CHECK(t == NULL, "batch 8 over the limit refused");
    CHECK(g_counted == 0, "nothing allocated before the refusal (%zu bytes)", g_counted);
    const char *e = laic_last_error();
    printf("    %s\n", e);
    int fit = 0;
    const char *h = strstr(e, "use a batch of ");
    if (h) fit = atoi(h + strlen("use a batch of "));
    CHECK(fit >= 5 && fit < 8, "message names the batch that fits: %s", e);
    CHECK(strstr(e, "train.recompute=true") != NULL, "and recompute as the other way: %s", e);
    CHECK(strchr(e, '\n') == NULL, "one line");
    t = vit_trainer_create(&w, &ops_cpu, fit, &o);
    CHECK(t != NULL, "the named batch fits: %s", laic_last_error());
    if (t) CHECK(vit_trainer_plan(t)->total <= o.mem_limit, "within the limit");
    vit_trainer_free(t);
    t = vit_trainer_create(&w, &ops_cpu, fit + 1, &o);
    CHECK(t == NULL, "one more does not");
    vit_trainer_free(t);
    // not even batch 1
    o.mem_limit = 1024;
    t = vit_trainer_create(&w, &ops_cpu, 2, &o);
    CHECK(t == NULL && strstr(laic_last_error(), "not even batch 1"), "tiny limit: %s",
          laic_last_error());
    // bad options, one line each
    o.mem_limit = 0;
    o.lr = -1;
    CHECK(!vit_trainer_create(&w, &ops_cpu, 2, &o) && strstr(laic_last_error(), "learning rate"),
          "negative lr: %s", laic_last_error());
    o.lr = 1e-4;
    o.spec = clip_spec_full_last_k(3);   // the tiny model has 2 blocks
    CHECK(!vit_trainer_create(&w, &ops_cpu, 2, &o) && strstr(laic_last_error(), "full_last_k"),
          "k past the last block: %s", laic_last_error());
    o.spec = clip_spec_lora(0, 1.0f);
    CHECK(!vit_trainer_create(&w, &ops_cpu, 2, &o) && strstr(laic_last_error(), "no parameter"),
          "nothing trainable: %s", laic_last_error());
    o.spec = clip_spec_lora(4, 8.0f);
    o.precision = "bf16";
    CHECK(!vit_trainer_create(&w, &ops_cpu, 2, &o) && strstr(laic_last_error(), "fp32"),
          "bf16 on the CPU: %s", laic_last_error());
    clip_weights_free(&w);
}
