/*
 * cmd_info.c — `laic info`: what this build can run on and, with --weights, what a weights file
 * is: architecture, parameter count, storage dtype, file sha256, provenance and whether it is the
 * official ViT-B/32 conversion (weights/FORMAT.md). --json prints the same as one JSON object.
 *
 * The file is fully validated by clip_weights_load first, so `laic info --weights W` is also the
 * way to check a weights file: a bad one gives one error line naming it and exit status 1.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "model/clip.h"
#include "io/err.h"
#include "io/safetensors.h"

static const char *preset_name(const ClipConfig *c) {
    static const char *names[] = {"vit-b-32", "tiny"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        ClipConfig p;
        clip_config_preset(&p, names[i]);
        if (!memcmp(&p, c, sizeof p)) return names[i];
    }
    return "custom";
}

static void devices(char *buf, size_t n) {
#ifdef LAIC_CUDA
    if (ops_cuda_device_count() > 0) {
        ops_cuda_describe(buf, n);
        return;
    }
    snprintf(buf, n, "cpu only (built with CUDA, no usable device)");
#else
    snprintf(buf, n, "cpu only (built without CUDA)");
#endif
}

int cmd_info(int argc, char **argv) {
    CliOpt opts[] = {
        {"--weights", "W", NULL, "weights file to describe (.safetensors, weights/FORMAT.md)", NULL, 0},
        {"--json", NULL, NULL, "print one JSON object instead of text", NULL, 0},
    };
    const int n = CLI_N(opts);
    if (cli_parse(argc, argv, "info", "Describe a weights file and the devices.", opts, n, NULL, 0,
                  NULL))
        return cli_exit_code();
    const char *path = cli_get(opts, n, "--weights");
    int json = cli_flag(opts, n, "--json");
    char dev[2048];
    devices(dev, sizeof dev);
    size_t dl = strlen(dev);
    while (dl && dev[dl - 1] == '\n') dev[--dl] = 0;

    ClipWeights w;
    StFile f;
    const char *source = NULL, *ssha = NULL;
    if (path) {
        if (clip_weights_load(&w, path)) return cli_fail(1);
        if (st_open(&f, path)) {   // only for the provenance strings; just validated
            clip_weights_free(&w);
            return cli_fail(1);
        }
        source = st_meta(&f, "source");
        ssha = st_meta(&f, "source_sha256");
    }
    const ClipConfig *c = &w.cfg;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "devices", dev);
        if (path) {
            cJSON_AddStringToObject(o, "weights", path);
            cJSON_AddStringToObject(o, "format", "laic-clip");
            cJSON_AddNumberToObject(o, "format_version", 1);
            cJSON_AddStringToObject(o, "arch", preset_name(c));
            cJSON *cj = cJSON_AddObjectToObject(o, "config");
            const char *k[] = {"image_size", "patch_size", "vision_width", "vision_layers",
                               "vision_heads", "vision_mlp", "context_length", "vocab_size",
                               "text_width", "text_layers", "text_heads", "text_mlp", "embed_dim"};
            int v[] = {c->image_size, c->patch_size, c->vision_width, c->vision_layers,
                       c->vision_heads, c->vision_mlp, c->context_length, c->vocab_size,
                       c->text_width, c->text_layers, c->text_heads, c->text_mlp, c->embed_dim};
            for (int i = 0; i < 13; i++) cJSON_AddNumberToObject(cj, k[i], v[i]);
            cJSON_AddNumberToObject(o, "n_params", (double)w.n_params);
            cJSON_AddStringToObject(o, "storage_dtype", w.storage_dtype);
            cJSON_AddStringToObject(o, "sha256", w.sha256);
            cJSON_AddStringToObject(o, "source", source);
            cJSON_AddStringToObject(o, "source_sha256", ssha);
            cJSON_AddBoolToObject(o, "official_vit_b_32", w.official_vit_b_32);
            cJSON_AddNumberToObject(o, "logit_scale", w.logit_scale);
        }
        char *s = cJSON_Print(o);
        printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(o);
    } else {
        printf("devices      %s\n", dev);
        if (path) {
            printf("weights      %s\n", path);
            printf("format       laic-clip v1\n");
            printf("arch         %s\n", preset_name(c));
            printf("vision       image %d, patch %d, width %d, layers %d, heads %d, mlp %d\n",
                   c->image_size, c->patch_size, c->vision_width, c->vision_layers,
                   c->vision_heads, c->vision_mlp);
            printf("text         context %d, vocab %d, width %d, layers %d, heads %d, mlp %d\n",
                   c->context_length, c->vocab_size, c->text_width, c->text_layers, c->text_heads,
                   c->text_mlp);
            printf("embed_dim    %d\n", c->embed_dim);
            printf("parameters   %zu (%.2f M)\n", w.n_params, (double)w.n_params / 1e6);
            printf("storage      %s\n", w.storage_dtype);
            printf("sha256       %s\n", w.sha256);
            printf("source       %s (source sha256 %s)\n", source, ssha);
            printf("official     %s\n", w.official_vit_b_32
                                            ? "yes: conversion of OpenAI's ViT-B-32.pt"
                                            : "no (not a conversion of OpenAI's ViT-B-32.pt)");
            printf("logit_scale  %.6g (scale %.4g)\n", w.logit_scale, exp(w.logit_scale));
        }
    }
    if (path) {
        st_close(&f);
        clip_weights_free(&w);
    }
    return 0;
}
