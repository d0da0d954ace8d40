/*
 * test_io.c — host/io: .npy round trips and rejections, atomic writes, the CLI option parser.
 * Goldens for the .npy reader are written by numpy-free means here (the format is simple and
 * documented); numpy interop is covered by every fixture test that reads numpy-made files.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "io/atomic.h"
#include "io/err.h"
#include "io/npy.h"
#include "../test.h"

TEST(npy_roundtrip_all_dtypes) {
    const NpyDtype types[] = {NPY_F32, NPY_F64, NPY_I32, NPY_I64, NPY_U8};
    for (size_t t = 0; t < 5; t++) {
        size_t shape[3] = {2, 3, 5};
        size_t es = npy_dtype_size(types[t]);
        unsigned char *buf = malloc(30 * es);
        for (size_t i = 0; i < 30 * es; i++) buf[i] = (unsigned char)(i * 7 + t);
        const char *p = test_path("rt.npy");
        REQUIRE(npy_write(p, types[t], 3, shape, buf) == 0, "%s", laic_last_error());
        Npy a;
        REQUIRE(npy_read(p, &a) == 0, "%s", laic_last_error());
        CHECK(a.dtype == types[t] && a.ndim == 3 && a.shape[0] == 2 && a.shape[1] == 3 &&
                  a.shape[2] == 5 && a.count == 30,
              "dtype %d shape mismatch", (int)t);
        CHECK(memcmp(a.data, buf, 30 * es) == 0, "data mismatch for %s", npy_dtype_name(types[t]));
        npy_free(&a);
        free(buf);
    }
}

TEST(npy_header_is_64_byte_aligned_and_1d_tuple) {
    float x[4] = {1, 2, 3, 4};
    size_t shape[1] = {4};
    const char *p = test_path("one.npy");
    REQUIRE(npy_write(p, NPY_F32, 1, shape, x) == 0, "%s", laic_last_error());
    FILE *f = fopen(p, "rb");
    char hdr[256] = {0};
    size_t n = fread(hdr, 1, sizeof hdr - 1, f);
    fclose(f);
    size_t header = n - 16;
    CHECK(n > 16 && header % 64 == 0, "header of %zu bytes is not a multiple of 64", header);
    CHECK(strstr(hdr + 10, "'shape': (4,)") != NULL, "1-d shape must be written as (4,): %s", hdr + 10);
    CHECK(hdr[header - 1] == '\n', "header must end with a newline");
    CHECK(!memcmp(hdr + header, x, 16), "data follows the header");
}

TEST(npy_convert_and_check_shape) {
    double d[6] = {1.5, -2, 3, 4, 5, 6};
    size_t shape[2] = {3, 2};
    const char *p = test_path("d.npy");
    REQUIRE(npy_write(p, NPY_F64, 2, shape, d) == 0, "%s", laic_last_error());
    Npy a;
    long want[2] = {-1, 2};
    REQUIRE(npy_read_f32(p, &a, 2, want) == 0, "%s", laic_last_error());
    CHECK(a.dtype == NPY_F32 && ((float *)a.data)[0] == 1.5f && ((float *)a.data)[1] == -2.0f,
          "float64 -> float32 conversion");
    npy_free(&a);
    long bad[2] = {-1, 3};
    CHECK(npy_read_f32(p, &a, 2, bad) != 0, "shape [*,3] must be rejected");
    CHECK(strstr(laic_last_error(), "expected shape [*,3], got [3,2]") != NULL, "message: %s",
          laic_last_error());
    CHECK(strstr(laic_last_error(), p) != NULL, "message names the file: %s", laic_last_error());
    CHECK(npy_read_i64(p, &a, 2, NULL) != 0 && strstr(laic_last_error(), "integer"),
          "float data as labels must be rejected: %s", laic_last_error());
}

TEST(npy_rejects_bad_files) {
    const char *p = test_path("bad.npy");
    struct { const char *what; const char *bytes; size_t n; const char *msg; } cases[] = {
        {"bad magic", "NOTNUMPYxxxxxxxx", 16, "bad magic"},
        {"truncated header", "\x93NUMPY\x01\x00\x40\x00{'descr'", 17, "truncated"},
        {"big-endian", "\x93NUMPY\x01\x00\x36\x00{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }\n",
         64, "unsupported dtype"},
        {"fortran", "\x93NUMPY\x01\x00\x36\x00{'descr': '<f4', 'fortran_order': True,  'shape': (1,), }\n",
         64, "Fortran"},
        {"truncated data", "\x93NUMPY\x01\x00\x36\x00{'descr': '<f4', 'fortran_order': False, 'shape': (9,), }\n",
         64, "truncated data"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        test_write_file(p, cases[i].bytes, cases[i].n);
        Npy a;
        CHECK(npy_read(p, &a) != 0 && strstr(laic_last_error(), cases[i].msg) &&
                  strstr(laic_last_error(), p),
              "%s: got '%s'", cases[i].what, laic_last_error());
        CHECK(a.data == NULL, "%s: no data on error", cases[i].what);
    }
    Npy a;
    CHECK(npy_read(test_path("missing.npy"), &a) != 0 && strstr(laic_last_error(), "cannot open"),
          "missing file: %s", laic_last_error());
}

TEST(atomic_write_commit_and_abort) {
    const char *p = test_path("atomic.txt");
    REQUIRE(atomic_write_file(p, "hello", 5) == 0, "%s", laic_last_error());
    CHECK(file_exists(p), "committed file exists");
    AtomicFile af;
    const char *q = test_path("aborted.txt");
    REQUIRE(atomic_open(&af, q) == 0, "%s", laic_last_error());
    fputs("partial", af.fp);
    char tmp[sizeof af.tmp];
    memcpy(tmp, af.tmp, sizeof tmp);
    CHECK(file_exists(tmp), "temp file exists while writing");
    CHECK(!file_exists(q), "target does not exist before commit");
    atomic_abort(&af);
    CHECK(!file_exists(tmp) && !file_exists(q), "abort leaves nothing behind");
    CHECK(atomic_write_file("/nonexistent-dir/x.npy", "x", 1) != 0 &&
              strstr(laic_last_error(), "/nonexistent-dir/x.npy"),
          "unwritable path error names it: %s", laic_last_error());
}

TEST(cli_parser_values_flags_errors) {
    CliOpt opts[] = {
        {"--weights", "W", NULL, "weights", NULL, 0},
        {"--batch", "N", "16", "batch", NULL, 0},
        {"--normalize", NULL, NULL, "flag", NULL, 0},
    };
    char *argv1[] = {"x", "--weights", "a.safetensors", "--normalize", "--batch=4"};
    REQUIRE(cli_parse(5, argv1, "x", "", opts, CLI_N(opts), NULL, 0, NULL) == 0, "parse ok");
    long b = 0;
    CHECK(!strcmp(cli_get(opts, CLI_N(opts), "--weights"), "a.safetensors"), "value");
    CHECK(cli_get_long(opts, CLI_N(opts), "--batch", &b) == 0 && b == 4, "--batch=4 -> %ld", b);
    CHECK(cli_flag(opts, CLI_N(opts), "--normalize"), "flag set");
    char *argv2[] = {"x"};
    REQUIRE(cli_parse(1, argv2, "x", "", opts, CLI_N(opts), NULL, 0, NULL) == 0, "parse ok");
    CHECK(cli_get_long(opts, CLI_N(opts), "--batch", &b) == 0 && b == 16, "default 16 -> %ld", b);
    CHECK(!cli_flag(opts, CLI_N(opts), "--normalize"), "flag unset by default");
    CHECK(cli_require(opts, CLI_N(opts), "--weights") != 0, "missing required option");
    char *argv3[] = {"x", "--batch", "12x"};
    REQUIRE(cli_parse(3, argv3, "x", "", opts, CLI_N(opts), NULL, 0, NULL) == 0, "parse ok");
    CHECK(cli_get_long(opts, CLI_N(opts), "--batch", &b) != 0 && strstr(laic_last_error(), "12x"),
          "bad integer: %s", laic_last_error());
}

TEST(cli_unknown_option_and_command) {
    char err[4096];
    int rc = run_laic("tokenize --no-such-option", NULL, err, sizeof err);
    CHECK(rc == 2, "unknown option exits 2, got %d", rc);
    CHECK(count_lines(err) == 1 && strstr(err, "unknown option '--no-such-option'"),
          "one line naming the option: %s", err);
    rc = run_laic("frobnicate", NULL, err, sizeof err);
    CHECK(rc == 2 && count_lines(err) == 1 && strstr(err, "unknown command 'frobnicate'"),
          "unknown command: rc %d, %s", rc, err);
    rc = run_laic("--help", test_path("help.txt"), err, sizeof err);
    CHECK(rc == 0, "--help exits 0");
}
