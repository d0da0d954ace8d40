/*
 * cmd_image_backward.c — `laic image-backward`: the gradient of the CLIP image encoder with
 * respect to every visual parameter and, optionally, the pixels: the verification entry point of
 * the image-encoder backward (issue 16), as text-backward is the text tower's.
 *
 *   laic image-backward --weights W --pixels P.npy --grad G.npy --out grads.safetensors
 *                       [--dpixels dP.npy] [--features-out F.npy] [--normalize] [--batch N]
 *                       [--device D] [--threads N] [--precision P]
 *
 * Promises: P is float32 [B,3,S,S] (normalised pixels, as encode-images --pixels takes them), G
 * float32 [B,E] = ∂L/∂F for F the projected features before normalisation (encode_image), so
 * L = ⟨G,F⟩; with --normalize G is ∂L/∂(F/‖F‖) instead, L = ⟨G, F/‖F‖⟩ (a loss on normalised
 * features, as every trainer uses; F.npy stays unnormalised either way). grads.safetensors holds
 * ∂L/∂θ for every visual parameter θ, summed over all B images, as F32 tensors named and shaped
 * as the weights file stores them (visual.conv1.weight ... visual.proj (Cv,E)); dP.npy float32
 * [B,3,S,S] = ∂L/∂P. Inputs with a NaN or an infinity are refused. Errors are one line naming
 * the file and the problem, exit status 1 (2 for usage), and no output file is left behind.
 */
#include <math.h>
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

// -1 with "<path>: non-finite value <v> at element <i>" for the first NaN / infinity.
static int check_finite(const float *x, size_t n, const char *path) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return laic_error("%s: non-finite value %g at element %zu ---> HINT: the gradient of "
                              "a NaN or an infinity is meaningless; fix the producer of the file",
                              path, (double)x[i], i);
    return 0;
}

int cmd_image_backward(int argc, char **argv) {
    CliOpt opts[] = {
        CMD_OPT_WEIGHTS,
        {"--pixels", "P.npy", NULL, "normalised pixels float32 [B,3,S,S]", NULL, 0},
        {"--grad", "G.npy", NULL, "dL/dF float32 [B,E] (F: unnormalised features; see --normalize)",
         NULL, 0},
        {"--out", "grads.safetensors", NULL,
         "dL/dtheta of every visual parameter (F32, the weights file's names and shapes)", NULL, 0},
        {"--dpixels", "dP.npy", NULL, "also write dL/dP float32 [B,3,S,S]", NULL, 0},
        {"--features-out", "F.npy", NULL, "also write the features F float32 [B,E]", NULL, 0},
        {"--normalize", NULL, NULL, "G is dL/d(F/||F||): differentiate <G, F/||F||>", NULL, 0},
        {"--batch", "N", "32", "images per forward/backward pass (gradients are summed)", NULL, 0},
        CMD_OPTS_DEVICE_THREADS,
        CMD_OPTS_PRECISION_GEMM,
    };
    int n = CLI_N(opts);
    if (cli_parse(argc, argv, "image-backward",
                  "Gradient of the CLIP image features w.r.t. every visual parameter (and the "
                  "pixels).", opts, n, NULL, 0, NULL))
        return cli_exit_code();
    const char *req[] = {"--weights", "--pixels", "--grad", "--out"};
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++)
        if (cli_require(opts, n, req[i])) return cli_fail(2);
    long batch;
    const OpsBackend *ops;
    if (cli_model_setup(opts, n, "image-backward", &batch, &ops)) return cli_fail(2);
    const char *ppath = cli_get(opts, n, "--pixels"), *gpath = cli_get(opts, n, "--grad"),
               *out_path = cli_get(opts, n, "--out"), *dpath = cli_get(opts, n, "--dpixels"),
               *fpath = cli_get(opts, n, "--features-out");
    int normalize = cli_flag(opts, n, "--normalize");

    int rc = 1, wrote_out = 0, wrote_dp = 0;
    ClipWeights w;
    memset(&w, 0, sizeof w);
    ClipModel *m = NULL;
    Npy P, G;
    memset(&P, 0, sizeof P);
    memset(&G, 0, sizeof G);
    float *feat = NULL, *dP = NULL, *g = NULL, *grads = NULL;
    if (clip_weights_load(&w, cli_get(opts, n, "--weights"))) goto fail;
    const ClipConfig *c = &w.cfg;
    const int S = c->image_size, Ed = c->embed_dim;
    if (npy_read_f32(ppath, &P, -1, NULL)) goto fail;
    if (P.ndim != 4 || P.shape[0] == 0 || P.shape[1] != 3 || P.shape[2] != (size_t)S ||
        P.shape[3] != (size_t)S) {
        char got[96] = "";
        for (int i = 0, k = 0; i < P.ndim && k < (int)sizeof got - 24; i++)
            k += snprintf(got + k, sizeof got - (size_t)k, "%s%zu", i ? "," : "", P.shape[i]);
        laic_error("%s: expected pixels [B,3,%d,%d] with B >= 1, got [%s] ---> HINT: make them "
                   "with laic preprocess", ppath, S, S, got);
        goto fail;
    }
    const size_t B = P.shape[0], per = 3 * (size_t)S * S;
    if (check_finite(P.data, P.count, ppath)) goto fail;
    long gshape[2] = {(long)B, Ed};
    if (npy_read_f32(gpath, &G, 2, gshape)) goto fail;
    if (check_finite(G.data, G.count, gpath)) goto fail;

    const int Bm = (size_t)batch < B ? (int)batch : (int)B;
    ClipVisionTrainSpec spec = clip_spec_all();
    spec.dpixels = dpath != NULL;
    m = clip_model_create_vision_train(&w, ops, Bm, &spec, NULL, 0);
    if (!m) goto fail;
    feat = mallocCheck(B * (size_t)Ed * sizeof(float));
    dP = dpath ? mallocCheck(B * per * sizeof(float)) : NULL;
    g = mallocCheck((size_t)Bm * Ed * sizeof(float));
    const float *pix = P.data, *gin = G.data;
    for (size_t i = 0; i < B; i += (size_t)Bm) {   // the gradients of every batch accumulate
        int b = B - i < (size_t)Bm ? (int)(B - i) : Bm;
        float *f = feat + i * Ed;
        if (clip_encode_images(m, pix + i * per, b, f)) goto fail;
        memcpy(g, gin + i * Ed, (size_t)b * Ed * sizeof(float));
        // F/||F||: the gradient through the normalisation, on the host (B x E is tiny)
        if (normalize) ops_cpu.l2norm_backward(g, g, f, b, Ed);
        if (clip_image_backward(m, g, dP ? dP + i * per : NULL)) goto fail;
    }
    grads = mallocCheck(clip_trainable_numel(m) * sizeof(float) + 1);
    ops->synchronize();
    ops->to_host(grads, clip_trainable_grads(m), clip_trainable_numel(m) * sizeof(float));
    const char *meta[] = {"weights_sha256", w.sha256, "objective",
                          normalize ? "<G, F/||F||>" : "<G, F>"};
    if (clip_trainable_save(m, grads, out_path, meta, 2)) goto fail;
    wrote_out = 1;
    size_t shape[4] = {B, 3, (size_t)S, (size_t)S};
    if (dpath) {
        if (npy_write(dpath, NPY_F32, 4, shape, dP)) goto fail;
        wrote_dp = 1;
    }
    if (fpath && npy_write_f32_2d(fpath, feat, B, (size_t)Ed)) goto fail;
    rc = 0;
    goto done;
fail:
    if (wrote_out) unlink(out_path);   // all or nothing
    if (wrote_dp) unlink(dpath);
    cli_fail(1);
done:
    free(grads);
    free(g);
    free(dP);
    free(feat);
    npy_free(&P);
    npy_free(&G);
    clip_model_free(m);
    clip_weights_free(&w);
    return rc;
}
