/*
 * test_fuzz_found.c — train-layer bugs found by the libFuzzer harnesses (tests/fuzz/README.md),
 * replayed from their committed reproducers (tests/fuzz/corpus/<harness>/crash-*).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "io/err.h"
#include "train/train.h"
#include "../test.h"

// fuzz_ckpt: a 1024-byte checkpoint header (K, M, D ≈ 2^24–2^26) whose size check
// 1024 + 2·K·M·D·4 wrapped 64 bits to exactly 1024, so the file "matched" and ckpt_load
// allocated K·M·D floats (ASan: calloc overflow; without ASan "out of memory", no file name).
// Issue 13 item 8: the size check saturates now. The reproducer was found on version 1 and
// carries the current version number (2), so it reaches the size check.
TEST(fuzz_found_ckpt_size_check_wraps) {
    const char *p = "tests/fuzz/corpus/ckpt/crash-size-wraps";
    TrainState s;
    laic_clear_error();
    CHECK(ckpt_load(p, &s) != 0 && strstr(laic_last_error(), p) &&
              strstr(laic_last_error(), "needs") && !strchr(laic_last_error(), '\n'),
          "got '%s'", laic_last_error());
    CHECK(s.vec == NULL && s.mom == NULL, "nothing allocated on error");
}
