/*
 * test.h — laic's test harness (CPU tests; `make test`, `make asan`).
 *
 * A test is a function declared with TEST(name); it registers itself at start-up, so adding a
 * test file under tests/ is all it takes. CHECK(cond, fmt, ...) records a failure with a message
 * and carries on; REQUIRE returns from the test on failure; SKIP(fmt, ...) marks the test skipped
 * (e.g. ../shared missing). The runner prints one line per test and ends with
 * "N passed, N failed, N skipped". Exit status is non-zero iff something failed.
 *
 *   ./build/test_laic [substring]     runs the tests whose name contains substring
 *
 * CLI tests run the built binary (LAIC_BIN, default build/laic) through run_laic(), which
 * captures stderr, so bad-input tests can check the exit status, the one-line message and that
 * no output file was left behind.
 */
#ifndef LAIC_TEST_H
#define LAIC_TEST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "io/npy.h"

typedef void (*TestFn)(void);
void test_register(const char *name, const char *file, TestFn fn);

#define TEST(name)                                                                         \
    static void name(void);                                                                \
    __attribute__((constructor)) static void test_reg_##name(void) {                       \
        test_register(#name, __FILE__, name);                                              \
    }                                                                                      \
    static void name(void)

int test_check(int ok, const char *expr, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#define CHECK(cond, ...) test_check(!!(cond), #cond, __FILE__, __LINE__, __VA_ARGS__)
#define REQUIRE(cond, ...)                                                                 \
    do {                                                                                   \
        if (!test_check(!!(cond), #cond, __FILE__, __LINE__, __VA_ARGS__)) return;         \
    } while (0)
#define SKIP(...)                                                                          \
    do {                                                                                   \
        test_skip(__VA_ARGS__);                                                            \
        return;                                                                            \
    } while (0)

/* A fresh per-process temp directory (removed at exit) and paths inside it. */
const char *test_tmpdir(void);
const char *test_path(const char *name);   // static buffer ring of 8: copy if you keep many

/* Path of a file under ../shared, or NULL if ../shared is not there. */
const char *test_shared(const char *rel);

/* Runs `$LAIC_BIN <args>` through /bin/sh with stdout to out_path (may be NULL → /dev/null);
 * returns the exit status and copies stderr into err (NUL-terminated, trailing newline kept). */
int run_laic(const char *args, const char *out_path, char *err, size_t errn);
/* Number of lines in a string (a trailing newline does not start a new line). */
int count_lines(const char *s);
int file_exists(const char *path);
/* Whole file, malloc'd and NUL-terminated (NULL if unreadable); *n = size when n != NULL. */
void *test_read_file(const char *path, size_t *n);
/* Writes n bytes (creating or truncating the file); failures show up in the test that reads it. */
void test_write_file(const char *path, const void *data, size_t n);

/* Committed goldens: "<dir>/<name>.npy" (a ring of 8 buffers, like test_path). */
const char *test_fixture_path(const char *dir, const char *name);
/* A float32 fixture read into *a (caller npy_free's it); NULL after a failed CHECK. */
float *test_fixture_f32(const char *dir, const char *name, Npy *a);
/* An integer fixture as a malloc'd int32 array (caller frees); *count elements, and shape[0]
 * / shape[1] (1 for a 1-d array) in *rows / *cols when not NULL; NULL after a failed CHECK. */
int32_t *test_fixture_i32(const char *dir, const char *name, size_t *count, size_t *rows,
                          size_t *cols);

/* Compares a float array with a reference: |a-r| <= atol + rtol*|r| elementwise. Prints the
 * max abs and max rel error with `what`; returns 1 when within tolerance. */
int test_allclose(const float *a, const float *ref, size_t n, double atol, double rtol,
                  const char *what);
/* Max |a-r| / max(|r|) over the array (a scale-aware relative error for feature vectors). */
double max_rel_err(const float *a, const float *ref, size_t n);
/* max |x_i| (0 for n = 0). */
double test_maxabs(const float *x, size_t n);
/* A gradient against its reference: |a-r| <= 1e-4·max|r| + 1e-3·|r| elementwise, and
 * max|a-r|/max|r| <= 1e-4 (max|a-r| when r is all zero); both printed with `what`. */
int test_close_grad(const float *got, const float *ref, size_t n, const char *what);

#endif
