/*
 * methods.h — the methods `laic run` can report (eval.methods), one file each under
 * host/run/methods/ and one line each in the registry (host/run/methods/registry.c).
 *
 * A method reads what the stages left in the Run (features, candidate nouns, K) and reports
 * its eval-split predictions with run_report_method. The pipeline (host/run/pipeline.c) runs
 * the upstream stages once, then the listed methods in registry order; a method whose `needs`
 * names another runs that one first even when it is not listed.
 */
#ifndef LAIC_METHODS_H
#define LAIC_METHODS_H

#include <stddef.h>

#include "run/stages.h"

typedef struct {
    const char *name;              // its name in eval.methods and report.json
    const char *needs;             // a method that must run before it (its outputs are read), or NULL
    int (*enabled)(Run *r);        // NULL = always; 0 = skip with a note (e.g. training is off)
    int (*prepare)(Run *r);        // NULL, or work before any stage (e.g. read a checkpoint)
    int (*run)(Run *r);
} Method;

extern const Method laic_methods[];
extern const size_t laic_n_methods;
/* The method called name[0..n), or NULL. */
const Method *method_find(const char *name, size_t n);

int method_clip_kmeans(Run *r);
int method_tac_notrain(Run *r);
/* TAC's features (N, 2E) = [X | normalize(softmax(X Tᵀ/tac.tau) T)] over the candidates r->T
 * (retrieve_text.py:30-37), products on r->ops; NULL with an error when the backend fails. */
float *method_tac_features(Run *r, const float *X, size_t N);
int method_zeroshot(Run *r);
int method_rsc_notrain(Run *r);
int method_rsc_train(Run *r);            // "ours": prompt learning on r->pl_y / r->pl_hq
int train_resume_load(Run *r);           // run.resume → r->resume (no-op when unset)
int method_seic_stage1(Run *r);         // "SEIC†": stage 0 pairs + stage-1 heads (seic.c)
int seic_resume_load(Run *r);            // run.resume → SEIC checkpoints (no-op when unset)
int method_seic(Run *r);                // SEIC: stage 2 self-enhancement (seic.c)
int seic_enabled(Run *r);                // 0 with a note when the run has no images
int method_sic(Run *r);                  // SIC (SPEC §9.1), methods/sic.c
int sic_prepare(Run *r);                 // asks for the text encoder; reads run.resume's sic.ckpt
/* SIC's bank: the head-word (first lemma, as spelt in data.noun) of every synset in file order;
 * sic_csv 1 = as SIC's noun.csv reads (without the first and the last synset). Pointers into n;
 * free the array only. */
const char **sic_bank_words(const Nouns *n, int sic_csv, size_t *count);
int method_tac_train(Run *r);            // TAC trained (SPEC §9.2), methods/tac_train.c
int tac_train_prepare(Run *r);           // reads run.resume's tac-train.ckpt

#endif
