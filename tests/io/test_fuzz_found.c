/*
 * test_fuzz_found.c — io-layer bugs found by the libFuzzer harnesses (tests/fuzz/README.md),
 * each replayed from its committed reproducer in tests/fuzz/corpus/<harness>/crash-* and
 * checked for the one-line error a hostile file must get. Each test fails (the process exits
 * or crashes) without its fix.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/err.h"
#include "io/npy.h"
#include "../test.h"

#define CRASH "tests/fuzz/corpus/"

// fuzz_npy: a 134-byte .npy whose header declares shape (2, 2, 22222222222222222222... , 3)
// of uint8 (6.7e15 bytes). npy_read allocated the claim before reading (mallocCheck: "out of
// memory", exit 1) instead of seeing that the file holds 22 bytes.
TEST(fuzz_found_npy_shape_past_end_of_file) {
    const char *p = CRASH "npy/crash-shape-past-eof";
    Npy a;
    laic_clear_error();
    CHECK(npy_read(p, &a) != 0 && strstr(laic_last_error(), p) &&
              strstr(laic_last_error(), "truncated") && !strchr(laic_last_error(), '\n'),
          "got '%s'", laic_last_error());
    CHECK(a.data == NULL && a.count == 0, "nothing returned on error");
    // the same for a shape whose byte count wraps 64 bits: int64 (2^61,) in a 128-byte file
    char b[128];
    memset(b, ' ', sizeof b);
    int n = snprintf(b, sizeof b, "\x93NUMPY\x01%c%c%c{'descr': '<i8', 'fortran_order': False, "
                     "'shape': (2305843009213693952,), }", 0, 118, 0);
    b[n] = ' ';
    b[127] = '\n';
    const char *q = test_path("wrap.npy");
    test_write_file(q, b, sizeof b);
    laic_clear_error();
    CHECK(npy_read(q, &a) != 0 && strstr(laic_last_error(), q) &&
              (strstr(laic_last_error(), "overflow") || strstr(laic_last_error(), "truncated")),
          "2^61 int64 elements: got '%s'", laic_last_error());
}
