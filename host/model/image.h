/*
 * image.h — image decoding and CLIP preprocessing on the CPU (SPEC §3).
 *
 * Promise: image_load_preprocessed() gives, pixel for pixel, what OpenAI CLIP's `_transform`
 * gives with PIL: torchvision Resize(S) (shorter side to S, longer to int(S*long/short),
 * PIL bicubic with its antialiasing and 22-bit fixed-point rounding), CenterCrop(S)
 * (top = round-half-even((h-S)/2)), convert("RGB"), ToTensor, Normalize(CLIP mean/std).
 * The reference is Pillow 13.0.0 (the version the goldens were made with).
 * The order matters for some modes and is followed exactly, as PIL would see the file:
 *   JPEG gray/RGB, PNG L(2/4/8-bit)/RGB  bicubic in 8 bits per channel
 *   PNG RGBA / LA (8 or 16-bit)         bicubic on premultiplied alpha (PIL's RGBa), then
 *                                       un-premultiplied and the alpha dropped
 *   PNG palette / 1-bit gray            nearest neighbour (PIL forces NEAREST for P and 1)
 *   PNG 16-bit gray (PIL "I;16")        16-bit bicubic, then values > 255 saturate to 255
 *   PNG 16-bit RGB                      high byte of each sample (PIL "RGB;16B")
 *   JPEG CMYK                           Adobe-inverted CMYK resized, then PIL's cmyk2rgb
 * JPEG is decoded with libjpeg(-turbo) defaults (JDCT_ISLOW, fancy upsampling), as PIL does.
 * Only the S×S crop window of the resized image is computed; each output pixel depends only
 * on its own filter taps, so this equals resizing the whole image and cropping.
 *
 * Errors: functions returning int give 0 on success, -1 after laic_error("<file>: <problem>").
 * Library code never prints. Thread-safe (no globals), so callers may decode in parallel.
 */
#ifndef LAIC_IMAGE_H
#define LAIC_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* CLIP normalisation constants (SPEC §3). */
extern const float IMAGE_CLIP_MEAN[3];
extern const float IMAGE_CLIP_STD[3];

/* Decodes an image file (JPEG or PNG, detected by content) to 8-bit RGB (h, w, 3) interleaved,
 * as PIL's Image.open(path).convert("RGB") (alpha dropped, palette expanded, gray replicated).
 * *rgb is malloc'd. */
int image_load_rgb8(const char *path, uint8_t **rgb, int *h, int *w);

/* CLIP resize + centre crop of an RGB8 image (h, w, 3) to out (S, S, 3). Never fails. */
void image_resize_crop_rgb8(uint8_t *out /*(S,S,3)*/, const uint8_t *rgb /*(h,w,3)*/, int h,
                            int w, int S);

/* uint8 (S,S,3) -> float (3,S,S): (v/255 - mean[c]) / std[c], in float32 as torchvision. */
void image_normalize(float *out /*(3,S,S)*/, const uint8_t *crop /*(S,S,3)*/, int S);

/* Decode + mode-aware CLIP resize/crop of one file to a uint8 (S,S,3) crop. */
int image_load_crop(const char *path, int S, uint8_t *crop /*(S,S,3)*/);

/* All of the above for one file: out (3,S,S) normalised float. */
int image_load_preprocessed(const char *path, int S, float *out /*(3,S,S)*/);

/* Lists image files (.jpg .jpeg .png, case-insensitive) under dir recursively, sorted by full
 * path (byte order); malloc'd array of malloc'd strings. Error if dir is missing or has no
 * images. */
int image_list_dir(const char *dir, char ***paths, size_t *n);
void image_list_free(char **paths, size_t n);

/* Reads a list file: one path per line (blank lines skipped, trailing CR/space trimmed);
 * relative paths are taken relative to the list file's directory. Error if empty. */
int image_list_file(const char *list, char ***paths, size_t *n);

#endif
