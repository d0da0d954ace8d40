/*
 * test_reliability_io.c — host/io against hostile files and crashes (issue 13, items 1, 9, 10):
 *  - a .npy whose shape × item size wraps 64 bits, or claims more data than the file holds, is
 *    refused before anything is allocated, naming the file ("truncated", never "out of memory");
 *    `laic metrics --pred` on such a 128-byte file fails in one line instead of crashing;
 *  - untrusted strings (a .npy descr, a safetensors tensor name or dtype, with control bytes)
 *    never break a message's single line;
 *  - atomic writes fsync the temp file before the rename publishes it, then its directory.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/atomic.h"
#include "io/err.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "../fsync_log.h"
#include "../test.h"

/* Bytes of the v1.0 preamble + header holding `dict` (padded to 64). */
static size_t hdr_len(const char *dict) { return ((10 + strlen(dict) + 1 + 63) / 64) * 64; }

/* A v1.0 .npy of exactly `total` bytes: the header dict `dict` padded, then zero bytes. */
static void write_npy_raw(const char *path, const char *dict, size_t total) {
    size_t dl = strlen(dict), hlen = hdr_len(dict) - 10;
    unsigned char *b = calloc(1, total > 10 + hlen ? total : 10 + hlen);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)(hlen & 0xff);
    b[9] = (unsigned char)(hlen >> 8);
    memset(b + 10, ' ', hlen);
    memcpy(b + 10, dict, dl);
    b[10 + hlen - 1] = '\n';
    test_write_file(path, b, total > 10 + hlen ? total : 10 + hlen);
    free(b);
}

TEST(rel_npy_byte_count_overflow_and_short_files) {
    struct { const char *dict; const char *msg; } cases[] = {
        // 2^61 int64 elements: 2^64 bytes wraps to 0 (the crash of issue 13)
        {"{'descr': '<i8', 'fortran_order': False, 'shape': (2305843009213693952,), }", "overflows"},
        // 2^62 float32 elements: wraps to 0 as well
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904,), }", "overflows"},
        // no wrap, but 4 TiB claimed by a 128-byte file: refused before the allocation
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }", "truncated"},
        // a product of dimensions that wraps
        {"{'descr': '|u1', 'fortran_order': False, 'shape': (4294967296, 4294967296, 2), }", "overflows"},
    };
    const char *p = test_path("hostile.npy");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_npy_raw(p, cases[i].dict, 128);
        Npy a;
        int rc = npy_read(p, &a);
        CHECK(rc != 0 && strstr(laic_last_error(), p) && strstr(laic_last_error(), cases[i].msg),
              "case %zu: refused naming the file and '%s': %s", i, cases[i].msg, laic_last_error());
        CHECK(a.data == NULL && a.count == 0, "case %zu: nothing returned", i);
    }
    // the CLI: one line naming the file, exit 1, no crash and no "out of memory"
    const char *y = test_path("y_ok.npy");
    int64_t lab[4] = {0, 1, 0, 1};
    size_t s4[1] = {4};
    REQUIRE(npy_write(y, NPY_I64, 1, s4, lab) == 0, "%s", laic_last_error());
    for (size_t i = 0; i < 3; i++) {
        write_npy_raw(p, cases[i].dict, 128);
        char args[1200], err[4096];
        snprintf(args, sizeof args, "metrics --pred '%s' --labels '%s'", p, y);
        int rc = run_laic(args, NULL, err, sizeof err);
        CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, p) && !strstr(err, "out of memory"),
              "case %zu: laic metrics on a hostile 128-byte .npy: exit %d, %s", i, rc, err);
    }
    // a short file says "truncated" with both sizes; one extra byte is "trailing"
    const char *d10 = "{'descr': '<f4', 'fortran_order': False, 'shape': (10,), }";
    write_npy_raw(p, d10, hdr_len(d10) + 39);
    Npy a;
    CHECK(npy_read(p, &a) != 0 && strstr(laic_last_error(), "truncated") &&
              strstr(laic_last_error(), "40 bytes") && strstr(laic_last_error(), "holds 39"),
          "short data: %s", laic_last_error());
    write_npy_raw(p, d10, hdr_len(d10) + 41);
    CHECK(npy_read(p, &a) != 0 && strstr(laic_last_error(), "trailing"), "long data: %s", laic_last_error());
    write_npy_raw(p, d10, hdr_len(d10) + 40);
    CHECK(npy_read(p, &a) == 0 && a.count == 10, "exact size reads: %s", laic_last_error());
    npy_free(&a);
    // a header longer than the file
    unsigned char shorthdr[16] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0x00, 0x10, '{', '\'', 'd'};
    test_write_file(p, shorthdr, sizeof shorthdr);
    CHECK(npy_read(p, &a) != 0 && strstr(laic_last_error(), "truncated .npy header") &&
              strstr(laic_last_error(), p), "short header: %s", laic_last_error());
}

TEST(rel_npy_from_a_pipe_reads_what_arrives) {
    // a FIFO has no size to check against: the buffer grows with the data, so a claim of 4 TiB
    // over a few bytes fails as truncated instead of allocating the claim
    const char *p = test_path("npy.fifo");
    unlink(p);
    REQUIRE(mkfifo(p, 0600) == 0, "mkfifo");
    const char *src = test_path("npy_src.npy");
    write_npy_raw(src, "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,), }", 200);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "cat '%s' > '%s' &", src, p);
    REQUIRE(system(cmd) == 0, "writer");
    Npy a;
    CHECK(npy_read(p, &a) != 0 && strstr(laic_last_error(), "truncated") && strstr(laic_last_error(), p),
          "pipe: %s", laic_last_error());
    float x[3] = {1, 2, 3};
    size_t s3[1] = {3};
    REQUIRE(npy_write(src, NPY_F32, 1, s3, x) == 0, "%s", laic_last_error());
    REQUIRE(system(cmd) == 0, "writer");
    CHECK(npy_read(p, &a) == 0 && a.count == 3 && ((float *)a.data)[2] == 3.0f, "pipe, valid: %s",
          laic_last_error());
    npy_free(&a);
    unlink(p);
}

TEST(rel_messages_stay_one_line_with_hostile_strings) {
    const char *p = test_path("descr.npy");
    write_npy_raw(p, "{'descr': '<f\n\x01\x1b[2J', 'fortran_order': False, 'shape': (1,), }", 128);
    Npy a;
    CHECK(npy_read(p, &a) != 0 && !strchr(laic_last_error(), '\n') && !strchr(laic_last_error(), '\x1b') &&
              strstr(laic_last_error(), "\\x0a") && strstr(laic_last_error(), p),
          "descr with a newline and an escape sequence: %s", laic_last_error());
    char err[4096], args[1200];
    const char *y = test_path("y_ok2.npy");
    int64_t lab[1] = {0};
    size_t s1[1] = {1};
    npy_write(y, NPY_I64, 1, s1, lab);
    snprintf(args, sizeof args, "metrics --pred '%s' --labels '%s'", p, y);
    int rc = run_laic(args, NULL, err, sizeof err);
    CHECK(rc == 1 && count_lines(err) == 1 && strstr(err, "unsupported dtype"), "CLI: one line: %s", err);
    // a safetensors tensor name and dtype with a line break and an escape sequence (JSON escapes)
    const char *sp = test_path("names.safetensors");
    const char *js[2] = {"{\"a\\nb\\u001b[2J\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 8]}}",
                         "{\"w\": {\"dtype\": \"F\\n32\", \"shape\": [1], \"data_offsets\": [0, 4]}}"};
    for (int k = 0; k < 2; k++) {
        size_t jl = strlen(js[k]);
        unsigned char *st = calloc(1, 8 + jl + 8);
        st[0] = (unsigned char)jl;
        memcpy(st + 8, js[k], jl);
        test_write_file(sp, st, 8 + jl + 8);
        free(st);
        StFile f;
        CHECK(st_open(&f, sp) != 0 && !strchr(laic_last_error(), '\n') && !strchr(laic_last_error(), '\x1b') &&
                  strstr(laic_last_error(), "\\x0a") && strstr(laic_last_error(), sp),
              "safetensors %s with a line break: %s", k ? "dtype" : "tensor name", laic_last_error());
    }
    // every message is one line, whatever its arguments hold
    laic_error("x: %s", "a\nb\rc\x7f");
    CHECK(!strpbrk(laic_last_error(), "\n\r\x7f") && strstr(laic_last_error(), "a\\x0ab"),
          "laic_error escapes control bytes: %s", laic_last_error());
    CHECK(!strcmp(laic_escs("ok\xff\\"), "ok\\xff\\x5c"), "laic_escs: %s", laic_escs("ok\xff\\"));
    char longs[300];
    memset(longs, 'a', sizeof longs - 1);
    longs[299] = 0;
    CHECK(strlen(laic_escs(longs)) == 67, "long text cut at 64 bytes + '...': %zu", strlen(laic_escs(longs)));
}

TEST(rel_atomic_write_fsyncs_file_before_rename_then_directory) {
    const char *dir = test_path("durable");
    mkdir(dir, 0755);
    char path[700];
    snprintf(path, sizeof path, "%s/out.bin", dir);
    unlink(path);
    fsync_log_start(path);
    int rc = atomic_write_file(path, "payload", 7);
    int n;
    const FsyncCall *c = fsync_log_stop(&n);
    REQUIRE(rc == 0, "%s", laic_last_error());
    struct stat f, d;
    REQUIRE(!stat(path, &f) && !stat(dir, &d), "stat");
    int file_at = -1, dir_at = -1;
    for (int i = 0; i < n; i++) {
        if (!c[i].is_dir && c[i].ino == f.st_ino && c[i].dev == f.st_dev && file_at < 0) file_at = i;
        if (c[i].is_dir && c[i].ino == d.st_ino && c[i].dev == d.st_dev) dir_at = i;
    }
    CHECK(file_at >= 0, "the file's data was fsynced (%d fsync calls)", n);
    CHECK(file_at >= 0 && !c[file_at].watched_existed, "fsynced before the rename published it");
    CHECK(dir_at > file_at && c[dir_at].watched_existed, "then its directory, after the rename");
    // also through the streaming API (npy_write uses it)
    snprintf(path, sizeof path, "%s/a.npy", dir);
    unlink(path);
    fsync_log_start(path);
    float x[2] = {1, 2};
    rc = npy_write_f32_2d(path, x, 1, 2);
    c = fsync_log_stop(&n);
    REQUIRE(rc == 0 && !stat(path, &f), "%s", laic_last_error());
    file_at = dir_at = -1;
    for (int i = 0; i < n; i++) {
        if (!c[i].is_dir && c[i].ino == f.st_ino && file_at < 0) file_at = i;
        if (c[i].is_dir && c[i].ino == d.st_ino) dir_at = i;
    }
    CHECK(file_at >= 0 && !c[file_at].watched_existed && dir_at > file_at, "npy_write: file then directory");
}
