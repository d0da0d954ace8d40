/*
 * fuzz_safetensors.c — the safetensors container (host/io/safetensors.c: st_open, st_find,
 * st_meta, the half-precision readers) and the weights loader on top of it
 * (host/model/weights.c: clip_weights_load, which checks the laic-clip metadata and layout and
 * converts every tensor).
 */
#include "io/err.h"
#include "io/safetensors.h"
#include "model/clip.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_file(0, "w.safetensors", data, size);
    StFile f;
    if (st_open(&f, p) == 0) {
        volatile float sink = 0;
        for (int i = 0; i < f.n_tensors; i++) {
            const StTensor *t = &f.tensors[i];
            if (st_find(&f, t->name) != t) abort();   // names are unique: found is itself
            size_t nb = t->end - t->begin;
            if (nb && (t->data[0] | t->data[nb - 1]) == 0x100) abort();   // touch both ends
            if (!strcmp(t->dtype, "F16") && nb >= 2) sink += st_f16_to_f32((uint16_t)(t->data[0] | t->data[1] << 8));
            if (!strcmp(t->dtype, "BF16") && nb >= 2) sink += st_bf16_to_f32((uint16_t)(t->data[0] | t->data[1] << 8));
        }
        (void)sink;
        (void)st_meta(&f, "format");
        (void)st_find(&f, "logit_scale");
        st_close(&f);
    }
    ClipWeights w;
    if (clip_weights_load(&w, p) == 0) clip_weights_free(&w);
    return 0;
}
