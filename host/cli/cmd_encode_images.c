/*
 * cmd_encode_images.c — `laic encode-images`: CLIP image features of image files or of an
 * already preprocessed pixel tensor.
 *
 *   laic encode-images --weights W (--images DIR | --list FILE | --pixels P.npy) --out X.npy
 *                      [--normalize] [--batch N] [--device cpu|cuda|auto] [--threads N]
 *                      [--precision fp32|tf32|bf16] [--gemm cublas|wmma]
 *
 * Promises: X.npy is float32 [N,E] in input order (DIR: recursive, sorted by path), equal to
 * CLIP's encode_image (HF get_image_features) or its L2-normalised rows with --normalize.
 * P.npy must be float32/float64 [N,3,S,S] with S the model's image size, already normalised.
 * Any error is one line naming the file and the problem, exit status 1 (2 for usage), and no
 * output file is left behind (the output is written atomically at the very end). Progress with
 * img/s goes to stderr for inputs of at least 64 images.
 */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_common.h"
#include "model/clip.h"
#include "cpu/cpu_ops.h"
#include "model/image.h"
#include "io/err.h"
#include "io/npy.h"
#include "ops.h"
#include "io/progress.h"

#define PROGRESS_MIN 64   // below this many images a progress line is noise

typedef struct {
    char **paths;   // (N) image files, or NULL for --pixels
    size_t n;
    Npy pixels;     // (N,3,S,S) for --pixels
} ImageInput;

// Decodes and preprocesses paths[0..B) into pix (B,3,S,S) in parallel. The loader records
// errors thread-locally, so the first failure (lowest index) is carried back to this thread.
static int load_batch(char **paths, int B, int S, float *pix) {
    size_t per = (size_t)3 * S * S;
    int bad = -1;
    char msg[1024] = "";
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = 0; i < B; i++) {
        if (image_load_preprocessed(paths[i], S, pix + (size_t)i * per)) {
#pragma omp critical(encode_images_err)
            {
                if (bad < 0 || i < bad) {
                    bad = i;
                    snprintf(msg, sizeof msg, "%s", laic_last_error());
                }
            }
        }
    }
    if (bad >= 0) return laic_error("%s", msg);
    return 0;
}

int cmd_encode_images(int argc, char **argv) {
    CliOpt opts[] = {
        CMD_OPT_WEIGHTS,
        {"--images", "DIR", NULL, "encode every .jpg/.jpeg/.png under DIR (recursive, sorted)",
         NULL, 0},
        {"--list", "FILE", NULL, "encode the image paths listed in FILE, one per line", NULL, 0},
        {"--pixels", "P.npy", NULL, "encode preprocessed pixels float32 [N,3,S,S]", NULL, 0},
        {"--out", "X.npy", NULL, "output features float32 [N,E]", NULL, 0},
        CMD_OPT_NORMALIZE,
        {"--batch", "N", "16", "images per forward pass", NULL, 0},
        CMD_OPTS_DEVICE_THREADS,
        CMD_OPTS_PRECISION_GEMM,
    };
    int n = CLI_N(opts);
    if (cli_parse(argc, argv, "encode-images",
                  "CLIP image features (encode_image) of images or preprocessed pixels.", opts, n,
                  NULL, 0, NULL))
        return cli_exit_code();
    if (cli_require(opts, n, "--weights") || cli_require(opts, n, "--out")) return cli_fail(2);
    const char *dir = cli_get(opts, n, "--images"), *list = cli_get(opts, n, "--list"),
               *ppath = cli_get(opts, n, "--pixels"), *out_path = cli_get(opts, n, "--out");
    if (!!dir + !!list + !!ppath != 1) {
        laic_error("encode-images: give exactly one of --images, --list, --pixels");
        return cli_fail(2);
    }
    long batch;
    const OpsBackend *ops;
    if (cli_model_setup(opts, n, "encode-images", &batch, &ops)) return cli_fail(2);

    int rc = 1;
    ClipWeights w;
    memset(&w, 0, sizeof w);
    ImageInput in;
    memset(&in, 0, sizeof in);
    ClipModel *m = NULL;
    float *feat = NULL, *pix = NULL;
    if (clip_weights_load(&w, cli_get(opts, n, "--weights"))) goto fail;
    int S = w.cfg.image_size, E = w.cfg.embed_dim;
    size_t N;
    if (ppath) {
        long shape[4] = {-1, 3, S, S};
        if (npy_read_f32(ppath, &in.pixels, 4, shape)) goto fail;
        N = in.pixels.shape[0];
        if (N == 0) {
            laic_error("%s: no images (shape [0,3,%d,%d])", ppath, S, S);
            goto fail;
        }
    } else {
        if (dir ? image_list_dir(dir, &in.paths, &in.n) : image_list_file(list, &in.paths, &in.n))
            goto fail;
        N = in.n;
    }
    int B = (size_t)batch < N ? (int)batch : (int)N;
    m = clip_model_create(&w, ops, B);
    if (!m) goto fail;
    feat = mallocCheck(N * (size_t)E * sizeof(float));
    if (!ppath) pix = mallocCheck((size_t)B * 3 * S * S * sizeof(float));
    Progress pr;
    int show = N >= PROGRESS_MIN;
    if (show) progress_start(&pr, "encode images", "img", N);
    for (size_t i = 0; i < N; i += (size_t)B) {
        int b = N - i < (size_t)B ? (int)(N - i) : B;
        const float *src;
        if (ppath) {
            src = (const float *)in.pixels.data + i * 3 * S * S;
        } else {
            if (load_batch(in.paths + i, b, S, pix)) goto fail;
            src = pix;
        }
        if (clip_encode_images(m, src, b, feat + i * E)) goto fail;
        if (show) progress_update(&pr, i + b);
    }
    if (show) progress_end(&pr);
    if (cli_flag(opts, n, "--normalize")) ops_cpu.l2norm_forward(feat, feat, (int)N, E);
    if (npy_write_f32_2d(out_path, feat, N, (size_t)E)) goto fail;
    rc = 0;
    goto done;
fail:
    cli_fail(1);
done:
    free(pix);
    free(feat);
    clip_model_free(m);
    npy_free(&in.pixels);
    if (in.paths) image_list_free(in.paths, in.n);
    clip_weights_free(&w);
    return rc;
}
