/*
 * fuzz_image.c — image decoding and CLIP preprocessing (host/model/image.c): JPEG or PNG by
 * content, every mode (gray, RGB, RGBA/LA, palette, 1/2/4/16-bit, CMYK), then the mode-aware
 * resize + centre crop and normalisation at a small crop size (the same code as S = 224, faster).
 */
#include "io/err.h"
#include "model/image.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p = fuzz_file(0, "img", data, size);
    uint8_t *rgb = NULL;
    int h = 0, w = 0;
    if (image_load_rgb8(p, &rgb, &h, &w) == 0) {
        if (h < 1 || w < 1) abort();
        uint8_t crop[17 * 17 * 3];
        image_resize_crop_rgb8(crop, rgb, h, w, 17);
        free(rgb);
    }
    float out[3 * 13 * 13];
    (void)image_load_preprocessed(p, 13, out);
    return 0;
}
