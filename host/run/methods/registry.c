/*
 * registry.c — the methods `laic run` knows, in the order it runs them (methods.h). Adding a
 * method: its file in host/run/methods/, one line here, its config keys, its tests.
 */
#include <string.h>

#include "run/methods/methods.h"

/* "ours" trains only with train.enabled; listed without it, the no-train methods are reported. */
static int ours_enabled(Run *r) {
    if (config_bool(&r->cfg, "train", "enabled")) return 1;
    run_log(r, "note: method 'ours' needs train.enabled=true (prompt learning); reporting "
               "the no-train methods");
    return 0;
}

const Method laic_methods[] = {
    // name           needs           enabled       prepare            run
    {"clip-kmeans",  NULL,           NULL,         NULL,              method_clip_kmeans},
    {"tac",          NULL,           NULL,         NULL,              method_tac_notrain},
    {"zeroshot",     NULL,           NULL,         NULL,              method_zeroshot},
    {"ours-notrain", NULL,           NULL,         NULL,              method_rsc_notrain},
    {"ours",         "ours-notrain", ours_enabled, train_resume_load, method_rsc_train},
    {"seic-stage1",  NULL,           NULL,         seic_resume_load,  method_seic_stage1},
    {"seic",         "seic-stage1",  seic_enabled, seic_resume_load,  method_seic},
    {"sic",          NULL,           NULL,         sic_prepare,       method_sic},
    {"tac-train",    NULL,           NULL,         tac_train_prepare, method_tac_train},
};
const size_t laic_n_methods = sizeof laic_methods / sizeof laic_methods[0];

const Method *method_find(const char *name, size_t n) {
    for (size_t i = 0; i < laic_n_methods; i++)
        if (strlen(laic_methods[i].name) == n && !strncmp(laic_methods[i].name, name, n))
            return &laic_methods[i];
    return NULL;
}
