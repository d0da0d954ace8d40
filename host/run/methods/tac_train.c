/*
 * tac_train.c — method "tac-train": TAC's trained variant (Li et al., ICML 2024) as its
 * authors' train_head.py runs it (SPEC §9.2; XLearning-SCU/2024-ICML-TAC@830e02c), on the run's
 * cached, normalised image features:
 *   1. text counterparts t_i = normalize(softmax(x_i Tᵀ/tac.tau) T) over the run's candidate
 *      nouns T (the same features as the tac baseline's, method_tac_features), renormalised;
 *   2. 50 inner-product neighbours of every row in X and in t (self excluded);
 *   3. two MLP heads trained with host/train/tac_train.c; K < 100 takes the authors' default
 *      branch (20 epochs, batch 512, τ 0.5), K ≥ 100 the UCF101/ImageNet one (100, 8192, 5.0)
 *      unless tac_train.{epochs,batch,tau} say otherwise;
 *   4. eval predictions: argmax of the image head in evaluation mode, after the last epoch.
 *
 * Writes: predictions/tac-train.npy (run_report_method), tac-train.ckpt (after every epoch),
 * report.json "tac_train" (branch, per-epoch losses and eval ACC, timings).
 */
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "io/err.h"
#include "io/progress.h"
#include "run/methods/methods.h"
#include "train/tac_train.h"

int tac_train_prepare(Run *r) { return run_resume_read(r, "tac-train.ckpt") < 0 ? -1 : 0; }

int method_tac_train(Run *r) {
    double t0 = now_seconds();
    const int E = r->E, K = r->K;
    const size_t N = r->fit.N;
    if (r->M == 0) return laic_error("tac-train: no candidate nouns");
    // train_head.py:27-35: the large-K branch for UCF101 / ImageNet ([ours]: every K ≥ 100)
    const int big = K >= 100;
    TacTrainOpts o;
    tac_train_opts_default(&o);
    const long ep = config_int(&r->cfg, "tac_train", "epochs"), bs = config_int(&r->cfg, "tac_train", "batch");
    const double tau = config_float(&r->cfg, "tac_train", "tau");
    o.epochs = ep ? (int)ep : big ? 100 : 20;
    o.batch = bs ? (int)bs : big ? 8192 : 512;
    o.tau = tau > 0 ? tau : big ? 5.0 : 0.5;
    o.lr = config_float(&r->cfg, "tac_train", "lr");
    o.beta1 = config_float(&r->cfg, "tac_train", "beta1");
    o.beta2 = config_float(&r->cfg, "tac_train", "beta2");
    o.entropy_weight = config_float(&r->cfg, "tac_train", "entropy_weight");
    o.seed = (uint64_t)config_int(&r->cfg, "run", "seed");
    o.stop_after = (int)config_int(&r->cfg, "tac_train", "stop_after");
    o.eval_every_epoch = config_bool(&r->cfg, "tac_train", "eval_every_epoch");
    o.graph = config_bool(&r->cfg, "tac_train", "cuda_graph");
    o.log = run_log_line;
    o.log_ctx = r;
    if ((size_t)o.batch > N)
        return laic_error("tac-train: batch %d exceeds the %zu fit images, so no full batch is left "
                          "(the authors' loader drops the last partial one) ---> HINT: set "
                          "tac_train.batch (K %s 100 takes %d by default)", o.batch, N, big ? ">=" : "<",
                          big ? 8192 : 512);
    run_log(r, "tac-train: %d epochs, batch %d, τ %g (%s branch of train_head.py)", o.epochs, o.batch,
            o.tau, big ? "UCF101/ImageNet" : "default");
    // text counterparts: the second half of TAC's [x | t] features
    double t = now_seconds();
    float *f = method_tac_features(r, r->fit.X, N);
    if (!f) return -1;
    float *Tc = mallocCheck(N * (size_t)E * sizeof *Tc);
    for (size_t i = 0; i < N; i++) memcpy(Tc + i * E, f + i * 2 * (size_t)E + E, (size_t)E * sizeof *Tc);
    free(f);
    TacSetupOpts so;
    tac_setup_opts_default(&so);
    so.kn = (int)config_int(&r->cfg, "tac_train", "neighbors");
    TacSetup s;
    int rc = tac_train_setup(&s, r->ops, r->fit.X, N, E, Tc, NULL, 0, &so);
    free(Tc);
    if (rc) return -1;
    s.t_retrieve = now_seconds() - t - s.t_knn;
    run_time(r, "tac_train_setup", now_seconds() - t);
    char ckpt[2300], hp[HEADS_HPARAMS_LEN];
    snprintf(ckpt, sizeof ckpt, "%s/tac-train.ckpt", r->partial);
    snprintf(hp, sizeof hp, "method=tac-train;batch=%d;tau=%.17g;lr=%.17g;beta1=%.17g;beta2=%.17g;"
             "entropy_weight=%.17g;neighbors=%d;seed=%llu;N=%zu;E=%d;K=%d;X=%016llx;T=%016llx", o.batch,
             o.tau, o.lr, o.beta1, o.beta2, o.entropy_weight, s.kn, (unsigned long long)o.seed, N, E, K,
             (unsigned long long)run_hash64(r->fit.X, N * (size_t)E * sizeof(float), 21),
             (unsigned long long)run_hash64(s.T, N * (size_t)E * sizeof(float), 22));
    o.hparams = hp;
    o.ckpt_path = ckpt;
    const int resumed = run_resume_restore(r, "tac-train.ckpt", ckpt, "tac-train");
    if (resumed < 0) {
        tac_setup_free(&s);
        return -1;
    }
    if (resumed) o.resume_path = ckpt;
    TacTrainData d = {.X = r->fit.X, .T = s.T, .N = N, .E = E, .K = K, .nbr_x = s.nbr_x,
                      .nbr_t = s.nbr_t, .kn = s.kn, .Xeval = r->eval.X, .Ne = r->eval.N,
                      .yeval = r->eval.y};
    TacTrainResult res;
    t = now_seconds();
    rc = tac_train(&res, r->ops, &d, &o);
    run_time(r, "tac_train", now_seconds() - t);
    if (!rc && res.stopped) {
        r->keep_partial = 1;
        rc = laic_error("tac-train: stopped after epoch %d of %d (tac_train.stop_after); the "
                        "checkpoint is in %s ---> HINT: continue with run.resume=%s",
                        res.epochs_run, o.epochs, ckpt, r->dir);
    }
    if (!rc) rc = run_report_method(r, "tac-train", res.pred);
    if (!rc) {
        run_add_file(r, "tac_train_checkpoint", "tac-train.ckpt");
        cJSON *rep = cJSON_AddObjectToObject(r->report, "tac_train");
        cJSON_AddStringToObject(rep, "branch", big ? "K >= 100: train_head.py's UCF101/ImageNet settings"
                                                   : "K < 100: train_head.py's default settings");
        cJSON_AddNumberToObject(rep, "epochs", o.epochs);
        cJSON_AddNumberToObject(rep, "batch", o.batch);
        cJSON_AddNumberToObject(rep, "tau", o.tau);
        cJSON_AddNumberToObject(rep, "steps", (double)res.steps);
        cJSON_AddNumberToObject(rep, "graphs_captured", res.graph_captures);
        cJSON_AddNumberToObject(rep, "resumed_from_epoch", res.first_epoch - 1);
        cJSON_AddStringToObject(rep, "reported", "last epoch (train_head.py selects none)");
        const char *tn[5] = {"loss_per_epoch", "distill_Ia_Tn", "distill_Ta_In", "consistency", "entropy"};
        for (int q = 0; q < 5; q++) cJSON_AddItemToObject(rep, tn[q], run_json_numbers(res.epoch_terms, o.epochs, 5, q));
        if (o.eval_every_epoch) cJSON_AddItemToObject(rep, "eval_acc_per_epoch", run_json_numbers(res.epoch_acc, o.epochs, 1, 0));
        cJSON *ts = cJSON_AddObjectToObject(rep, "seconds");
        cJSON_AddNumberToObject(ts, "text_counterparts", s.t_retrieve);
        cJSON_AddNumberToObject(ts, "knn", s.t_knn);
        cJSON_AddNumberToObject(ts, "batches", res.t_steps);
        cJSON_AddNumberToObject(ts, "eval", res.t_eval);
        run_log(r, "tac-train: %d epochs in %.1fs", res.epochs_run, now_seconds() - t0);
    }
    tac_train_result_free(&res);
    tac_setup_free(&s);
    return rc;
}
