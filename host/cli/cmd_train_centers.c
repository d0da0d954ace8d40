/*
 * cmd_train_centers.c — `laic train-centers`: the prompt-learning loop (host/train/trainer.c) on its
 * own, for users who ran the no-train stages separately (ridge → kmeans → knn-filter).
 *
 *   laic train-centers --weights W --labels y.npy --mask m.npy --out centres.npy
 *                      (--data [KIND:]PATH [--split train] | --features X.npy)
 *                      [--predict-out pred.npy] [--vectors-out V.npy] [--ckpt C] [--resume C]
 *                      [--stop-after N] [--epochs 20] [--batch 32] [--lr 0.002] ...
 *
 * Promises: y.npy holds the pseudo-labels [N] (ints, read where the mask is set) and m.npy the
 * high-quality mask [N] (any integer dtype, nonzero = D_h). With --data the fit images are
 * augmented (weak/strong views); with only --features (clean, [N,E]) the loop runs in feature
 * mode (no views). centres.npy is float32 [K,E], the L2-normalised learned centres;
 * --predict-out writes int64 [N] argmax-cosine assignments of --features. --ckpt is written
 * atomically after every epoch; --resume continues one bit for bit. All outputs are written
 * atomically only on success; errors are one line naming the file and the problem, exit 1
 * (2 for usage); --stop-after ends early with exit 3 and only the checkpoint written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "model/clip.h"
#include "cluster/cluster.h"
#include "cpu/cpu_ops.h"
#include "data/data.h"
#include "io/err.h"
#include "io/npy.h"
#include "ops.h"
#include "train/trainer.h"

static int ds_image(void *ctx, size_t i, uint8_t **rgb, int *h, int *w) {
    return dataset_get_rgb8((const Dataset *)ctx, i, rgb, h, w);
}

static void log_stderr(void *ctx, const char *line) { fprintf(stderr, "%s\n", line); }

int cmd_train_centers(int argc, char **argv) {
    CliOpt opts[] = {
        {"--weights", "W", NULL, "CLIP weights (.safetensors)", NULL, 0},
        {"--labels", "y.npy", NULL, "pseudo-labels [N] (int), e.g. laic kmeans output", NULL, 0},
        {"--mask", "m.npy", NULL, "high-quality mask [N] (int/uint8), e.g. laic knn-filter output", NULL, 0},
        {"--out", "centres.npy", NULL, "learned centres float32 [K,E], L2-normalised", NULL, 0},
        {"--data", "[KIND:]PATH", NULL, "fit images (augmented views); row i = item i of the split", NULL, 0},
        {"--split", "S", "train", "split of --data: train, test or all", NULL, 0},
        {"--features", "X.npy", NULL, "clean image features [N,E] (feature mode without --data)", NULL, 0},
        {"--k", "K", "0", "number of prompts (0 = max pseudo-label + 1)", NULL, 0},
        {"--predict-out", "pred.npy", NULL, "argmax-cosine assignments int64 [N] of --features", NULL, 0},
        {"--vectors-out", "V.npy", NULL, "learned prompt vectors float32 [K,n_ctx,width]", NULL, 0},
        {"--ckpt", "C", NULL, "checkpoint written after every epoch", NULL, 0},
        {"--resume", "C", NULL, "continue from this checkpoint", NULL, 0},
        {"--stop-after", "N", "0", "stop after N epochs (exit 3, checkpoint only)", NULL, 0},
        {"--epochs", "N", "20", "epochs [CoOp]", NULL, 0},
        {"--batch", "N", "32", "images per step [paper]", NULL, 0},
        {"--lr", "F", "0.002", "SGD learning rate [CoOp]", NULL, 0},
        {"--momentum", "F", "0.9", "SGD momentum", NULL, 0},
        {"--weight-decay", "F", "5e-4", "SGD weight decay", NULL, 0},
        {"--warmup-epochs", "N", "1", "constant warm-up epochs", NULL, 0},
        {"--warmup-lr", "F", "1e-5", "warm-up learning rate", NULL, 0},
        {"--n-ctx", "M", "4", "learnable vectors per prompt", NULL, 0},
        {"--init-std", "F", "0.02", "vector init N(0, std^2)", NULL, 0},
        {"--prefix", "TEXT", "a photo of a", "prompt prefix", NULL, 0},
        {"--loss", "TERMS", "gce,mse,entropy", "loss terms", NULL, 0},
        {"--seed", "S", "1234", "seed (init, shuffle, views)", NULL, 0},
        {"--device", "D", "auto", "cpu, cuda or auto", NULL, 0},
        {"--threads", "N", "0", "CPU threads (0 = all cores)", NULL, 0},
        {"--precision", "P", "fp32", "image-encoder matmul precision fp32, tf32 or bf16 (CUDA)", NULL, 0},
        {"--text-precision", "P", "fp32", "text-tower matmul precision fp32, tf32 or bf16 (CUDA)", NULL, 0},
        {"--no-graph", NULL, NULL, "run every step eagerly (no CUDA graph; train.cuda_graph=0)", NULL, 0},
    };
    const int n = CLI_N(opts);
    if (cli_parse(argc, argv, "train-centers",
                  "Semantic centres by prompt learning on pseudo-labels (SPEC §7).", opts, n, NULL,
                  0, NULL))
        return cli_exit_code();
    const char *req[] = {"--weights", "--labels", "--mask", "--out"};
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++)
        if (cli_require(opts, n, req[i])) return cli_fail(2);
    const char *data = cli_get(opts, n, "--data"), *fpath = cli_get(opts, n, "--features");
    const char *pred_out = cli_get(opts, n, "--predict-out");
    if (!data && !fpath) {
        laic_error("train-centers: give --data (images) or --features (feature mode)");
        return cli_fail(2);
    }
    if (pred_out && !fpath) {
        laic_error("train-centers: --predict-out needs --features (the clean features to assign)");
        return cli_fail(2);
    }
    TrainerOpts o;
    trainer_opts_default(&o);
    long k, stop, epochs, batch, wep, nctx, seed, threads;
    double lr, mom, wd, wlr, std;
    const char *c = "train-centers";
    if (cli_get_long_range(opts, n, c, "--k", 0, 1000000, &k) ||
        cli_get_long_range(opts, n, c, "--stop-after", 0, 100000, &stop) ||
        cli_get_long_range(opts, n, c, "--epochs", 1, 100000, &epochs) ||
        cli_get_long_range(opts, n, c, "--batch", 1, 100000, &batch) ||
        cli_get_long_range(opts, n, c, "--warmup-epochs", 0, 100000, &wep) ||
        cli_get_long_range(opts, n, c, "--n-ctx", 1, 64, &nctx) ||
        cli_get_long_range(opts, n, c, "--seed", 0, 4294967295L, &seed) ||
        cli_get_long_range(opts, n, c, "--threads", 0, 4096, &threads) ||
        cli_get_double(opts, n, "--lr", &lr) || cli_get_double(opts, n, "--momentum", &mom) ||
        cli_get_double(opts, n, "--weight-decay", &wd) ||
        cli_get_double(opts, n, "--warmup-lr", &wlr) || cli_get_double(opts, n, "--init-std", &std) ||
        loss_config_parse_terms(&o.loss, cli_get(opts, n, "--loss")))
        return cli_fail(2);
    o.epochs = (int)epochs;
    o.batch = (int)batch;
    o.n_ctx = (int)nctx;
    o.init_std = std;
    o.prefix = cli_get(opts, n, "--prefix");
    o.sgd.lr = lr;
    o.sgd.momentum = mom;
    o.sgd.weight_decay = wd;
    o.sgd.max_epoch = (int)epochs;
    o.sgd.warmup_epoch = (int)wep;
    o.sgd.warmup_lr = wlr;
    o.seed = (uint64_t)seed;
    o.stop_after = (int)stop;
    o.ckpt_path = cli_get(opts, n, "--ckpt");
    o.log = log_stderr;
    o.graph = !cli_flag(opts, n, "--no-graph");
    o.text_precision = cli_get(opts, n, "--text-precision");
    o.image_precision = cli_get(opts, n, "--precision");
    cpu_set_threads((int)threads);
    const OpsBackend *ops = ops_get(cli_get(opts, n, "--device"));
    if (!ops) return cli_fail(2);
    // before any model exists: in bf16 the weights are converted once at model creation
    if (clip_set_precision(ops, cli_get(opts, n, "--precision"), NULL)) return cli_fail(2);
    // checked before any loading (the trainer creates the text tower in it)
    if (clip_check_precision(ops->name, o.text_precision, "--text-precision")) return cli_fail(2);

    int rc = 1;
    const char *out = cli_get(opts, n, "--out"), *vout = cli_get(opts, n, "--vectors-out");
    const char *lp = cli_get(opts, n, "--labels"), *mp = cli_get(opts, n, "--mask");
    const char *rp = cli_get(opts, n, "--resume");
    ClipWeights w;
    memset(&w, 0, sizeof w);
    Dataset ds;
    memset(&ds, 0, sizeof ds);
    int have_ds = 0, have_res = 0, have_resume = 0;
    Npy X = {0}, Y = {0}, Mk = {0};
    ClipModel *img = NULL;
    uint8_t *hq = NULL;
    int64_t *pred = NULL;
    TrainState resume;
    TrainResult res;
    if (npy_read_i64(lp, &Y, 1, NULL)) goto done;
    const size_t N = Y.count;
    long ms[1] = {(long)N};
    if (N == 0) {
        laic_error("%s: no pseudo-labels", lp);
        goto done;
    }
    if (npy_read_i64(mp, &Mk, 1, ms)) goto done;
    hq = mallocCheck(N);
    int64_t maxy = -1;
    for (size_t i = 0; i < N; i++) {
        hq[i] = ((const int64_t *)Mk.data)[i] != 0;
        int64_t y = ((const int64_t *)Y.data)[i];
        if (hq[i] && y < 0) {
            laic_error("%s: negative pseudo-label %lld at index %zu (a high-quality row)", lp, (long long)y, i);
            goto done;
        }
        if (y > maxy) maxy = y;
    }
    int K = k ? (int)k : (int)(maxy + 1);
    if (K < 1) {
        laic_error("%s: no high-quality pseudo-labels ---> HINT: check --mask", lp);
        goto done;
    }
    for (size_t i = 0; i < N; i++)
        if (hq[i] && ((const int64_t *)Y.data)[i] >= K) {
            laic_error("%s: pseudo-label %lld at index %zu >= --k %d", lp,
                       (long long)((const int64_t *)Y.data)[i], i, K);
            goto done;
        }
    if (clip_weights_load(&w, cli_get(opts, n, "--weights"))) goto done;
    if (clip_check_text_vocab(&w, cli_get(opts, n, "--weights"))) goto done;   // the prompts' tokens
    const int E = w.cfg.embed_dim;
    if (fpath) {
        long xs[2] = {(long)N, E};
        if (npy_read_f32(fpath, &X, 2, xs)) goto done;
        l2normalize_rows_cpu(X.data, X.data, (int)N, E);
    }
    TrainData d = {.N = N, .K = K, .yhat = Y.data, .hq = hq, .X = X.data};
    if (data) {
        if (dataset_open_spec(&ds, data, cli_get(opts, n, "--split"))) goto done;
        have_ds = 1;
        if (ds.n != N) {
            laic_error("%s: %zu images in split %s, but %s has %zu pseudo-labels", data, ds.n,
                       ds.split, lp, N);
            goto done;
        }
        d.get_image = ds_image;
        d.img_ctx = &ds;
        o.image_batch = 2 * o.batch < 256 ? 2 * o.batch : 256;
        if (!(img = clip_model_create(&w, ops, o.image_batch))) goto done;
    }
    if (rp) {
        if (ckpt_load(rp, &resume)) goto done;
        have_resume = 1;
        o.resume = &resume;
    }
    if (trainer_run(&res, &w, img, ops, &d, &o)) goto done;
    have_res = 1;
    // eager steps are timed per part, replayed graph steps as a whole (bench/bench_gpu_train.sh
    // reads this line)
    fprintf(stderr, "train: %zu images stepped, views %.3fs, image %.3fs, text %.3fs, loss %.3fs, "
            "graph steps %.3fs (%d graphs)\n", res.images_seen, res.t_views, res.t_image,
            res.t_text, res.t_loss, res.t_graph, res.graph_captures);
    if (res.stopped) {
        fprintf(stderr, "laic: stopped after epoch %d of %d (--stop-after)%s%s\n", res.st.epoch,
                o.epochs, o.ckpt_path ? "; continue with --resume " : "",
                o.ckpt_path ? o.ckpt_path : "");
        rc = 3;
        goto done;
    }
    if (pred_out) {
        pred = mallocCheck(N * sizeof *pred);
        trainer_predict(pred, X.data, N, res.W, K, E);
    }
    size_t sw[2] = {(size_t)K, (size_t)E}, sv[3] = {(size_t)K, (size_t)o.n_ctx, (size_t)w.cfg.text_width};
    size_t sp[1] = {N};
    // all or nothing: a later failure removes the outputs already written
    if (npy_write(out, NPY_F32, 2, sw, res.W)) goto done;
    if (vout && npy_write(vout, NPY_F32, 3, sv, res.st.vec)) {
        unlink(out);
        goto done;
    }
    if (pred_out && npy_write(pred_out, NPY_I64, 1, sp, pred)) {
        unlink(out);
        if (vout) unlink(vout);
        goto done;
    }
    rc = 0;
done:
    if (rc == 1) cli_fail(1);
    if (have_res) trainer_result_free(&res);
    if (have_resume) train_state_free(&resume);
    free(pred);
    free(hq);
    npy_free(&X);
    npy_free(&Y);
    npy_free(&Mk);
    clip_model_free(img);
    if (have_ds) dataset_free(&ds);
    clip_weights_free(&w);
    return rc;
}
