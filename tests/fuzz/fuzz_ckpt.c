/*
 * fuzz_ckpt.c — prompt-learning checkpoints (host/train/train.c ckpt_load): header, sizes,
 * vectors, momentum and RNG states read back from a file of any content.
 */
#include "io/err.h"
#include "train/train.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_file(0, "c.ckpt", data, size);
    TrainState s;
    if (ckpt_load(p, &s) == 0) train_state_free(&s);
    return 0;
}
