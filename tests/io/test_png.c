/*
 * test_png.c — host/io/png.c: PNG encoding through libpng's writer and back through its reader
 * (gray, RGB, RGBA, odd sizes), rejections with one-line errors, and base64 / data: URIs against
 * RFC 4648's test vectors.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/err.h"
#include "io/png.h"
#include "rng.h"
#include "../test.h"

TEST(png_roundtrip_gray_rgb_rgba) {
    Rng g;
    rng_init(&g, 5, 0);
    const int sizes[][2] = {{1, 1}, {37, 23}, {64, 3}, {5, 200}};
    for (int s = 0; s < 4; s++) {
        const int w = sizes[s][0], h = sizes[s][1];
        for (int c = 1; c <= 4; c++) {
            if (c == 2) continue;
            uint8_t *pix = malloc((size_t)w * h * c);
            for (int i = 0; i < w * h * c; i++) pix[i] = (uint8_t)rng_below(&g, 256);
            unsigned char *png;
            size_t n;
            REQUIRE(png_encode(pix, w, h, c, -1, &png, &n) == 0, "%s", laic_last_error());
            CHECK(n > 8 && !memcmp(png, "\x89PNG\r\n\x1a\n", 8), "PNG signature");
            uint8_t *rgb;
            int W, H;
            REQUIRE(png_decode_rgb8(png, n, "rt", &rgb, &W, &H) == 0, "%s", laic_last_error());
            CHECK(W == w && H == h, "size %dx%d back as %dx%d", w, h, W, H);
            int bad = 0;
            for (int i = 0; i < w * h; i++)
                for (int k = 0; k < 3; k++) {
                    int want;
                    if (c == 1) want = pix[i];
                    else if (c == 3) want = pix[3 * i + k];
                    else {   // over white, rounded
                        const int a = pix[4 * i + 3];
                        want = (pix[4 * i + k] * a + 255 * (255 - a) + 127) / 255;
                    }
                    bad += rgb[3 * i + k] != want;
                }
            CHECK(bad == 0, "%dx%d, %d channels: %d values differ after the round trip", w, h, c, bad);
            // zlib level 0 and 9 decode to the same pixels
            unsigned char *p0, *p9;
            size_t n0, n9;
            REQUIRE(png_encode(pix, w, h, c, 0, &p0, &n0) == 0 && png_encode(pix, w, h, c, 9, &p9, &n9) == 0,
                    "%s", laic_last_error());
            uint8_t *r0, *r9;
            int w0, h0, w9, h9;
            REQUIRE(png_decode_rgb8(p0, n0, "l0", &r0, &w0, &h0) == 0 && png_decode_rgb8(p9, n9, "l9", &r9, &w9, &h9) == 0,
                    "%s", laic_last_error());
            CHECK(!memcmp(r0, rgb, (size_t)w * h * 3) && !memcmp(r9, rgb, (size_t)w * h * 3), "levels 0 and 9");
            free(r0);
            free(r9);
            free(p0);
            free(p9);
            free(rgb);
            free(png);
            free(pix);
        }
    }
}

TEST(png_file_roundtrip_and_rejections) {
    uint8_t pix[4 * 3 * 3];
    for (int i = 0; i < 36; i++) pix[i] = (uint8_t)(i * 7);
    const char *p = test_path("x.png");
    REQUIRE(png_write_file(p, pix, 4, 3, 3) == 0, "%s", laic_last_error());
    uint8_t *rgb;
    int w, h;
    REQUIRE(png_read_file_rgb8(p, &rgb, &w, &h) == 0, "%s", laic_last_error());
    CHECK(w == 4 && h == 3 && !memcmp(rgb, pix, 36), "file round trip");
    free(rgb);
    // truncated file: one error line naming it
    size_t n;
    unsigned char *bytes = test_read_file(p, &n);
    REQUIRE(bytes, "read back");
    CHECK(png_decode_rgb8(bytes, n / 2, "half.png", &rgb, &w, &h) != 0 && rgb == NULL &&
              strstr(laic_last_error(), "half.png") && !strchr(laic_last_error(), '\n'),
          "truncated: %s", laic_last_error());
    CHECK(png_decode_rgb8((const unsigned char *)"GIF89a....", 10, "gif", &rgb, &w, &h) != 0 &&
              strstr(laic_last_error(), "not a PNG"),
          "not a PNG: %s", laic_last_error());
    bytes[40] ^= 0x55;   // inside IHDR/IDAT: CRC mismatch
    CHECK(png_decode_rgb8(bytes, n, "crc.png", &rgb, &w, &h) != 0 && strstr(laic_last_error(), "crc.png"),
          "corrupt chunk: %s", laic_last_error());
    free(bytes);
    unsigned char *out;
    CHECK(png_encode(pix, 0, 3, 3, -1, &out, &n) != 0, "zero width rejected");
    CHECK(png_encode(pix, 4, 3, 2, -1, &out, &n) != 0 && strstr(laic_last_error(), "channels"), "2 channels rejected");
    CHECK(png_read_file_rgb8(test_path("none.png"), &rgb, &w, &h) != 0 && strstr(laic_last_error(), "none.png"),
          "missing file named");
}

TEST(png_base64_rfc4648_and_data_uri) {
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char out[16];
        size_t n = base64_encode(in[i], strlen(in[i]), out);
        CHECK(n == base64_len(strlen(in[i])) && !strcmp(out, want[i]), "base64('%s') = '%s', want '%s'", in[i], out,
              want[i]);
    }
    uint8_t px[3] = {255, 0, 255};
    char *uri = png_data_uri(px, 1, 1, 3);
    REQUIRE(uri, "%s", laic_last_error());
    CHECK(!strncmp(uri, "data:image/png;base64,iVBORw0KGgo", 33), "data: URI of a PNG: %.40s", uri);
    free(uri);
}
