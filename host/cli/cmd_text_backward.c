/*
 * cmd_text_backward.c — `laic text-backward`: gradient of the CLIP text encoder with respect to
 * its input embeddings (weights frozen), the verification entry point of prompt learning.
 *
 *   laic text-backward --weights W --embeds E.npy --eot P.npy --grad G.npy --out dE.npy
 *                      [--features-out F.npy] [--normalize] [--batch N] [--device D]
 *                      [--threads N]
 *
 * Promises: E is float32 [B,L,Ct] (token + prompt embeddings before the positional embedding,
 * 1 <= L <= the context length), P int32/int64 [B] EOT positions in [0,L), G float32 [B,E].
 * F = the projected feature at P before normalisation (clip_encode_text_embeds), and dE.npy is
 * float32 [B,L,Ct] = ∂⟨G,F⟩/∂E, or ∂⟨G,F/‖F‖⟩/∂E with --normalize (the training loss is on
 * normalised features; F.npy stays unnormalised either way). Positions after a batch's longest
 * EOT get exactly 0. Errors are one line naming the file and the problem, exit status 1 (2 for
 * usage), and no output file is left behind.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cmd_common.h"
#include "model/clip.h"
#include "cpu/cpu_ops.h"
#include "io/err.h"
#include "io/npy.h"
#include "ops.h"

int cmd_text_backward(int argc, char **argv) {
    CliOpt opts[] = {
        CMD_OPT_WEIGHTS,
        {"--embeds", "E.npy", NULL, "input embeddings float32 [B,L,width], before positions",
         NULL, 0},
        {"--eot", "P.npy", NULL, "EOT positions int32/int64 [B] in [0,L)", NULL, 0},
        {"--grad", "G.npy", NULL, "gradient of the features float32 [B,E]", NULL, 0},
        {"--out", "dE.npy", NULL, "output d<G,F>/dE float32 [B,L,width]", NULL, 0},
        {"--features-out", "F.npy", NULL, "also write the features F float32 [B,E]", NULL, 0},
        {"--normalize", NULL, NULL, "differentiate <G, F/||F||> instead of <G, F>", NULL, 0},
        {"--batch", "N", "64", "prompts per forward/backward pass", NULL, 0},
        CMD_OPTS_DEVICE_THREADS,
    };
    int n = CLI_N(opts);
    if (cli_parse(argc, argv, "text-backward",
                  "Gradient of the CLIP text features w.r.t. the input embeddings.", opts, n,
                  NULL, 0, NULL))
        return cli_exit_code();
    const char *req[] = {"--weights", "--embeds", "--eot", "--grad", "--out"};
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++)
        if (cli_require(opts, n, req[i])) return cli_fail(2);
    long batch;
    const OpsBackend *ops;
    if (cli_model_setup(opts, n, "text-backward", &batch, &ops)) return cli_fail(2);
    const char *epath = cli_get(opts, n, "--embeds"), *ppath = cli_get(opts, n, "--eot"),
               *gpath = cli_get(opts, n, "--grad"), *out_path = cli_get(opts, n, "--out"),
               *fpath = cli_get(opts, n, "--features-out");
    int normalize = cli_flag(opts, n, "--normalize");

    int rc = 1;
    ClipWeights w;
    memset(&w, 0, sizeof w);
    ClipModel *m = NULL;
    Npy E, P, G;
    memset(&E, 0, sizeof E);
    memset(&P, 0, sizeof P);
    memset(&G, 0, sizeof G);
    int32_t *eot = NULL;
    float *feat = NULL, *dE = NULL, *g = NULL;
    if (clip_weights_load(&w, cli_get(opts, n, "--weights"))) goto fail;
    const ClipConfig *c = &w.cfg;
    int C = c->text_width, Ed = c->embed_dim;
    if (npy_read_f32(epath, &E, 3, NULL)) goto fail;
    size_t B = E.shape[0], L = E.shape[1];
    if (B == 0 || L == 0 || L > (size_t)c->context_length || E.shape[2] != (size_t)C) {
        laic_error("%s: expected embeddings [B,L,%d] with B >= 1 and 1 <= L <= %d, got "
                   "[%zu,%zu,%zu]", epath, C, c->context_length, B, L, E.shape[2]);
        goto fail;
    }
    long pshape[1] = {(long)B};
    if (npy_read_i64(ppath, &P, 1, pshape)) goto fail;
    eot = mallocCheck(B * sizeof(int32_t));
    for (size_t i = 0; i < B; i++) {
        int64_t p = ((const int64_t *)P.data)[i];
        if (p < 0 || p >= (int64_t)L) {
            laic_error("%s: EOT position %lld of prompt %zu outside [0,%zu)", ppath, (long long)p,
                       i, L);
            goto fail;
        }
        eot[i] = (int32_t)p;
    }
    long gshape[2] = {(long)B, Ed};
    if (npy_read_f32(gpath, &G, 2, gshape)) goto fail;

    int Bm = (size_t)batch < B ? (int)batch : (int)B;
    m = clip_model_create_train(&w, ops, Bm);
    if (!m) goto fail;
    feat = mallocCheck(B * (size_t)Ed * sizeof(float));
    dE = mallocCheck(B * L * (size_t)C * sizeof(float));
    g = mallocCheck((size_t)Bm * Ed * sizeof(float));
    const float *emb = E.data, *gin = G.data;
    for (size_t i = 0; i < B; i += (size_t)Bm) {
        int b = B - i < (size_t)Bm ? (int)(B - i) : Bm;
        float *f = feat + i * Ed;
        if (clip_encode_text_embeds(m, emb + i * L * C, eot + i, b, (int)L, f)) goto fail;
        memcpy(g, gin + i * Ed, (size_t)b * Ed * sizeof(float));
        // F/||F||: the gradient through the normalisation, on the host (B x E is tiny)
        if (normalize) ops_cpu.l2norm_backward(g, g, f, b, Ed);
        if (clip_text_backward(m, g, dE + i * L * C)) goto fail;
    }
    size_t shape[3] = {B, L, (size_t)C};
    if (npy_write(out_path, NPY_F32, 3, shape, dE)) goto fail;
    if (fpath && npy_write_f32_2d(fpath, feat, B, (size_t)Ed)) {
        unlink(out_path);   // all or nothing
        goto fail;
    }
    rc = 0;
    goto done;
fail:
    cli_fail(1);
done:
    free(g);
    free(dE);
    free(feat);
    free(eot);
    npy_free(&E);
    npy_free(&P);
    npy_free(&G);
    clip_model_free(m);
    clip_weights_free(&w);
    return rc;
}
