/*
 * rsc_train.c — method "ours" (SPEC §7): semantic centres by prompt learning, the [train]
 * stage of `laic run`. It trains K prompts (host/train/trainer.c) on the fit split with the
 * pseudo-labels ŷ and high-quality mask that Ours (no-train) left in the Run (rsc.c), then
 * predicts eval images by argmax cosine to the learned centres on their clean (centre-crop)
 * features, already in r->eval.X.
 *
 * Writes into the run directory: train.ckpt (checkpoint after every epoch, host/train/train.h
 * format; the final one stays), centres.npy (K,E) float32 normalised centres w_c,
 * prompt_vectors.npy (K,M,D) float32 learned vectors, centres.tsv (per centre: pseudo-labelled
 * samples, eval images assigned, majority true class, nearest candidate nouns — paper Table 3),
 * report.json "train" (loss/lr per epoch, steps, resume point, timings, throughput) and the
 * "ours" metrics.
 *
 * Resume: run.resume=DIR reads DIR/train.ckpt, else DIR.partial/train.ckpt (a killed or
 * stopped run), else DIR itself as a checkpoint file; it is read before the new run clears its
 * own .partial directory, so a run may resume into the directory it was stopped in.
 * train.stop_after=N ends the run after N epochs with an error and keeps <dir>.partial/.
 */
#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "io/atomic.h"
#include "io/err.h"
#include "io/npy.h"
#include "io/progress.h"
#include "run/methods/methods.h"
#include "train/trainer.h"

#define NOUNS_PER_CENTRE 5

int train_resume_load(Run *r) {
    const char *given = config_str(&r->cfg, "run", "resume");
    if (!given[0]) return 0;
    char dir[2048], path[2300];
    if (run_normalize_dir(given, dir, sizeof dir, "run.resume")) return -1;   // "DIR/" = "DIR"
    struct stat st;
    snprintf(path, sizeof path, "%s/train.ckpt", dir);
    if (stat(path, &st)) snprintf(path, sizeof path, "%s.partial/train.ckpt", dir);
    if (stat(path, &st)) {
        if (!stat(dir, &st) && S_ISREG(st.st_mode)) snprintf(path, sizeof path, "%s", dir);
        else
            return laic_error("%s: no train.ckpt in it or in %s.partial ---> HINT: run.resume takes "
                              "the run directory of a stopped or killed run with train.enabled=true",
                              dir, dir);
    }
    r->resume = mallocCheck(sizeof *r->resume);
    if (ckpt_load(path, r->resume)) {
        free(r->resume);
        r->resume = NULL;
        return -1;
    }
    run_log(r, "resume: %s (epoch %d, step %lld)", path, r->resume->epoch, (long long)r->resume->step);
    return 0;
}

typedef struct {
    const Dataset *d;
    const size_t *sel;
} FitImages;

static int fit_image(void *ctx, size_t i, uint8_t **rgb, int *h, int *w) {
    const FitImages *f = ctx;
    return dataset_get_rgb8(f->d, f->sel ? f->sel[i] : i, rgb, h, w);
}

static int write_npy(Run *r, const char *name, int ndim, const size_t *shape, const float *data) {
    char path[2300];
    snprintf(path, sizeof path, "%s/%s", r->partial, name);
    return npy_write(path, NPY_F32, ndim, shape, data);
}

/* centres.tsv: per learned centre its pseudo-labelled count, eval images assigned, majority
 * true class of those, and the nearest candidate nouns by cosine to w_c. */
static int write_centres_tsv(Run *r, const float *W, const int64_t *pred) {
    const int K = r->K, E = r->E;
    const size_t M = r->M;
    int nc = r->n_classes > 0 ? r->n_classes : 1;
    size_t *votes = callocCheck((size_t)K * nc, sizeof *votes), *size = callocCheck((size_t)K, sizeof *size);
    size_t *npl = callocCheck((size_t)K, sizeof *npl);
    for (size_t i = 0; i < r->eval.N; i++) {
        size[pred[i]]++;
        if (r->eval.y[i] >= 0 && r->eval.y[i] < nc) votes[pred[i] * nc + r->eval.y[i]]++;
    }
    for (size_t i = 0; i < r->fit.N; i++)
        if (r->pl_hq[i]) npl[r->pl_y[i]]++;
    char path[2300];
    snprintf(path, sizeof path, "%s/centres.tsv", r->partial);
    AtomicFile af;
    int rc = atomic_open(&af, path);
    if (!rc) {
        fprintf(af.fp, "centre\tn_pseudo_labelled\teval_size\tmajority_class\tmajority_fraction\tnearest_nouns\n");
        double *s = mallocCheck((M ? M : 1) * sizeof *s);
        for (int c = 0; c < K; c++) {
            int best = 0;
            for (int j = 1; j < nc; j++)
                if (votes[c * nc + j] > votes[c * nc + best]) best = j;
            char cls[64];
            if (r->n_classes <= 0) snprintf(cls, sizeof cls, "-");
            else if (r->class_names) snprintf(cls, sizeof cls, "%s", r->class_names[best]);
            else snprintf(cls, sizeof cls, "%d", best);
            fprintf(af.fp, "%d\t%zu\t%zu\t%s\t%.3f\t", c, npl[c], size[c], cls,
                    size[c] ? (double)votes[c * nc + best] / (double)size[c] : 0.0);
            for (size_t j = 0; j < M; j++) {
                double d = 0.0;
                for (int e = 0; e < E; e++) d += (double)W[(size_t)c * E + e] * r->T[j * E + e];
                s[j] = d;
            }
            size_t nt = M < NOUNS_PER_CENTRE ? M : NOUNS_PER_CENTRE;
            for (size_t k = 0; k < nt; k++) {   // selection of the top nt, ties to the lower index
                size_t b = 0;
                for (size_t j = 1; j < M; j++)
                    if (s[j] > s[b]) b = j;
                fprintf(af.fp, "%s%s", k ? ", " : "", r->noun_names[r->cand[b]]);
                s[b] = -INFINITY;
            }
            fputc('\n', af.fp);
        }
        free(s);
        rc = atomic_commit(&af);
    }
    free(votes);
    free(size);
    free(npl);
    return rc;
}

int method_rsc_train(Run *r) {
    double t = now_seconds();
    if (!r->pl_y || !r->pl_hq)
        return laic_error("train: no pseudo-labels (the ours-notrain stage did not run)");
    if (!r->have_weights)
        return laic_error("train: needs the CLIP text encoder ---> HINT: set model.weights");
    const char *wp = config_str(&r->cfg, "model", "weights");
    if (clip_check_text_vocab(&r->w, wp[0] ? wp : r->random_weights ? "model.weights (random init)"
                                                 : "weights/ViT-B-32.safetensors"))
        return -1;
    if (r->E != r->w.cfg.embed_dim)
        return laic_error("train: features have width %d, the model's embed dim is %d", r->E,
                          r->w.cfg.embed_dim);
    if (r->n_bad_images)
        return laic_error("train: %zu unreadable fit images were skipped, so feature rows no longer "
                          "map to images ---> HINT: remove the bad images or set train.enabled=false",
                          r->n_bad_images);
    TrainerOpts o;
    trainer_opts_default(&o);
    o.epochs = (int)config_int(&r->cfg, "train", "epochs");
    o.batch = (int)config_int(&r->cfg, "train", "batch");
    o.n_ctx = (int)config_int(&r->cfg, "train", "n_ctx");
    o.init_std = config_float(&r->cfg, "train", "init_std");
    o.prefix = config_str(&r->cfg, "train", "prefix");
    if (loss_config_parse_terms(&o.loss, config_str(&r->cfg, "train", "loss"))) return -1;
    o.loss.q = config_float(&r->cfg, "train", "gce_q");
    o.loss.alpha = config_float(&r->cfg, "train", "alpha");
    o.loss.beta = config_float(&r->cfg, "train", "beta");
    o.loss.scale = config_float(&r->cfg, "train", "logit_scale");
    o.sgd.lr = config_float(&r->cfg, "train", "lr");
    o.sgd.momentum = config_float(&r->cfg, "train", "momentum");
    o.sgd.weight_decay = config_float(&r->cfg, "train", "weight_decay");
    o.sgd.max_epoch = o.epochs;
    o.sgd.warmup_epoch = (int)config_int(&r->cfg, "train", "warmup_epochs");
    o.sgd.warmup_lr = config_float(&r->cfg, "train", "warmup_lr");
    o.seed = (uint64_t)config_int(&r->cfg, "run", "seed");
    o.stop_after = (int)config_int(&r->cfg, "train", "stop_after");
    o.graph = config_bool(&r->cfg, "train", "cuda_graph");
    o.text_precision = config_str(&r->cfg, "train", "text_precision");
    o.image_precision = config_str(&r->cfg, "model", "precision");
    o.text_batch = (int)config_int(&r->cfg, "train", "text_batch");
    o.resume = r->resume;
    long mb = config_int(&r->cfg, "model", "batch");
    o.image_batch = (int)(mb < 2L * o.batch ? mb : 2L * o.batch);
    char ckpt[2300];
    snprintf(ckpt, sizeof ckpt, "%s/train.ckpt", r->partial);
    o.ckpt_path = ckpt;
    o.log = run_log_line;
    o.log_ctx = r;

    FitImages fi = {&r->dfit, r->sel_fit};
    TrainData d = {.N = r->fit.N, .K = r->K, .yhat = r->pl_y, .hq = r->pl_hq};
    if (r->have_dfit) {
        d.get_image = fit_image;
        d.img_ctx = &fi;
    } else {
        d.X = r->fit.X;   // precomputed features: no images, no views
    }
    TrainResult res;
    if (trainer_run(&res, &r->w, r->model, r->ops, &d, &o)) return -1;
    if (res.stopped) {
        int ep = res.st.epoch;
        trainer_result_free(&res);
        r->keep_partial = 1;
        return laic_error("train: stopped after epoch %d of %d (train.stop_after); the checkpoint "
                          "is in %s ---> HINT: continue with run.resume=%s",
                          ep, o.epochs, ckpt, r->dir);
    }
    int64_t *pred = mallocCheck(r->eval.N * sizeof *pred);
    trainer_predict(pred, r->eval.X, r->eval.N, res.W, r->K, r->E);
    int rc = run_report_method(r, "ours", pred);
    // report.train
    cJSON *tr = cJSON_AddObjectToObject(r->report, "train");
    cJSON_AddStringToObject(tr, "mode", d.get_image ? "images (weak + strong views)" : "features (no views)");
    cJSON_AddNumberToObject(tr, "epochs", o.epochs);
    cJSON_AddNumberToObject(tr, "steps", (double)res.st.step);
    cJSON_AddNumberToObject(tr, "resumed_from_epoch", res.first_epoch);
    cJSON_AddItemToObject(tr, "loss_per_epoch", run_json_numbers(res.epoch_loss, o.epochs, 1, 0));
    cJSON *lr = cJSON_AddArrayToObject(tr, "lr_per_epoch");
    for (int e = 0; e < o.epochs; e++) cJSON_AddItemToArray(lr, cJSON_CreateNumber(res.epoch_lr[e]));
    // how far the trained centres moved the fit split away from the pseudo-labels
    int64_t *pf = mallocCheck(r->fit.N * sizeof *pf);
    trainer_predict(pf, r->fit.X, r->fit.N, res.W, r->K, r->E);
    size_t agree = 0, agree_hq = 0, nhq = 0;
    for (size_t i = 0; i < r->fit.N; i++) {
        agree += pf[i] == r->pl_y[i];
        if (r->pl_hq[i]) nhq++, agree_hq += pf[i] == r->pl_y[i];
    }
    free(pf);
    cJSON_AddNumberToObject(tr, "fit_agreement_with_pseudo_labels", (double)agree / (double)r->fit.N);
    if (nhq) cJSON_AddNumberToObject(tr, "fit_agreement_on_high_quality", (double)agree_hq / (double)nhq);
    // eager steps are timed part by part; replayed graph steps only as a whole (t_graph)
    double secs = res.t_views + res.t_image + res.t_text + res.t_loss + res.t_graph;
    cJSON *ts = cJSON_AddObjectToObject(tr, "seconds");
    cJSON_AddNumberToObject(ts, "views", res.t_views);
    cJSON_AddNumberToObject(ts, "image_encoder", res.t_image);
    cJSON_AddNumberToObject(ts, "text_forward_backward", res.t_text);
    cJSON_AddNumberToObject(ts, "loss", res.t_loss);
    cJSON_AddNumberToObject(ts, "graph_steps", res.t_graph);
    cJSON_AddNumberToObject(tr, "graphs_captured", res.graph_captures);
    if (secs > 0) cJSON_AddNumberToObject(tr, "images_per_s", (double)res.images_seen / secs);
    run_log(r, "train: %zu images stepped in %.1fs (views %.1fs, image encoder %.1fs, text %.1fs, "
               "graph steps %.1fs); fit agreement with ŷ %.1f%%", res.images_seen, secs,
            res.t_views, res.t_image, res.t_text, res.t_graph,
            100.0 * (double)agree / (double)r->fit.N);
    size_t sw[2] = {(size_t)r->K, (size_t)r->E};
    size_t sv[3] = {(size_t)res.st.K, (size_t)res.st.M, (size_t)res.st.D};
    // the final state again: a run resumed at its last epoch trains nothing and must still
    // leave a checkpoint behind
    if (!rc) rc = ckpt_save(ckpt, &res.st);
    if (!rc) rc = write_npy(r, "centres.npy", 2, sw, res.W);
    if (!rc) rc = write_npy(r, "prompt_vectors.npy", 3, sv, res.st.vec);
    if (!rc && r->M > 0) rc = write_centres_tsv(r, res.W, pred);
    if (!rc) {
        run_add_file(r, "train_checkpoint", "train.ckpt");
        run_add_file(r, "centres", "centres.npy");
        run_add_file(r, "prompt_vectors", "prompt_vectors.npy");
        if (r->M > 0) run_add_file(r, "centres_tsv", "centres.tsv");
    }
    free(pred);
    trainer_result_free(&res);
    run_time(r, "train", now_seconds() - t);
    return rc;
}
