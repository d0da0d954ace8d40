/*
 * image.c — JPEG/PNG decoding and PIL-exact CLIP preprocessing (see image.h for the promise).
 *
 * Legend: h, w = source height/width; oh, ow = size after the CLIP resize (shorter side S);
 * c = channels stored (1, 3 or 4); S = crop size; (ny, nx) = the crop window of the resize.
 *
 * PIL behaviour reproduced here (Pillow Resample.c / Geometry.c / Convert.c, re-derived, not
 * copied; checked against the installed Pillow 13.0.0): a separable two-pass resample, each
 * pass rounded and clipped to 8 bits, horizontal pass first unless the height shrinks by more
 * than twice as many pixels as the width (Pillow 13's order rule, found in its binary and
 * confirmed on 592 random shapes). Per output sample the taps are [xmin, xmin+n) with centre (i+0.5)*scale, support
 * 2*max(scale,1) (the antialiasing widening when downscaling), weights bicubic(a=-0.5) at
 * (j - centre + 0.5)/max(scale,1), normalised to sum 1 in double, then rounded half away from
 * zero to 22-bit fixed point. Accumulators start at 2^21 (round half up) and are shifted by 22
 * and clamped. The 16-bit ("I;16") path keeps double weights and rounds each pass.
 */
#include "model/image.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "io/err.h"

const float IMAGE_CLIP_MEAN[3] = {0.48145466f, 0.4578275f, 0.40821073f};
const float IMAGE_CLIP_STD[3] = {0.26862954f, 0.26130258f, 0.27577711f};

// Largest image we agree to decode (pixels); PIL's own decompression-bomb limit is 179 M. The fuzz
// build (Makefile `fuzz`) lowers it to 4 M: a tiny JPEG declaring 100 M pixels is valid and decodes
// in a second here, but takes 25–45 s under ASan, and the fuzzer would report it as a slow unit
// or a timeout (tests/fuzz/README.md, found 5) instead of exploring the decoder's logic.
#ifndef IMAGE_MAX_PIXELS
#define IMAGE_MAX_PIXELS ((size_t)1 << 28)
#endif

// --- decoded image -----------------------------------------------------------------------

typedef enum {
    RS_BICUBIC8 = 0,   // L, RGB, CMYK: bicubic on 8-bit channels
    RS_PREMUL8,        // RGBA/LA: PIL resizes RGBa (premultiplied) and converts back
    RS_NEAREST,        // P and 1: PIL forces NEAREST
    RS_BICUBIC16,      // I;16: 16-bit bicubic, then saturate to 8 bits on convert("RGB")
} Resample;

typedef struct {
    int h, w, c;        // c = channels in px (1, 3 or 4); 1 for px16
    Resample rs;
    int cmyk;           // px holds Adobe-inverted CMYK (as PIL's "CMYK;I" rawmode)
    uint8_t *px;        // (h, w, c)
    uint16_t *px16;     // (h, w) native-endian, only for RS_BICUBIC16
} Img;

static void img_free(Img *im) {
    free(im->px);
    free(im->px16);
    im->px = NULL;
    im->px16 = NULL;
}

static int check_dims(const char *path, size_t h, size_t w) {
    if (h == 0 || w == 0) return laic_error("%s: image has zero size (%zux%zu)", path, w, h);
    if (h * w > IMAGE_MAX_PIXELS || h > 1000000 || w > 1000000)
        return laic_error("%s: image too large (%zux%zu pixels)", path, w, h);
    return 0;
}

// --- file reading ------------------------------------------------------------------------

static int read_whole_file(const char *path, uint8_t **buf, size_t *n) {
    *buf = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return laic_error("%s: cannot open (%s)", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return laic_error("%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    uint8_t *b = malloc(size ? size : 1);
    if (!b) {
        fclose(f);
        return laic_error("%s: out of memory reading %zu bytes", path, size);
    }
    size_t r = fread(b, 1, size, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || r != size) {
        free(b);
        return laic_error("%s: read error", path);
    }
    *buf = b;
    *n = size;
    return 0;
}

// --- JPEG --------------------------------------------------------------------------------

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX];
    int eof;   // libjpeg hit the end of the data and inserted a fake EOI
} JpegErr;

static void jpeg_err_exit(j_common_ptr ci) {
    JpegErr *e = (JpegErr *)ci->err;
    (*ci->err->format_message)(ci, e->msg);
    longjmp(e->jb, 1);
}

// PIL silences libjpeg's warnings (corrupt-but-decodable data still decodes) but fails on a
// truncated file, so only the premature-EOF warning is remembered.
static void jpeg_err_emit(j_common_ptr ci, int level) {
    JpegErr *e = (JpegErr *)ci->err;
    if (level < 0 && ci->err->msg_code == JWRN_JPEG_EOF) e->eof = 1;
}

static int decode_jpeg(const char *path, const uint8_t *buf, size_t n, Img *im) {
    struct jpeg_decompress_struct ci;
    JpegErr err;
    uint8_t *volatile px = NULL;
    memset(&ci, 0, sizeof ci);
    ci.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_err_exit;
    err.pub.emit_message = jpeg_err_emit;
    err.eof = 0;
    err.msg[0] = 0;
    if (setjmp(err.jb)) {
        jpeg_destroy_decompress(&ci);
        free(px);
        return laic_error("%s: corrupt JPEG (%s)", path, err.msg);
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, buf, (unsigned long)n);
    jpeg_read_header(&ci, TRUE);
    if (err.eof) {
        jpeg_destroy_decompress(&ci);
        return laic_error("%s: truncated JPEG (no image data)", path);
    }
    // Same output colour spaces as PIL's rawmodes L / RGB / CMYK;I.
    int c = ci.num_components;
    if (c == 1) ci.out_color_space = JCS_GRAYSCALE;
    else if (c == 3) ci.out_color_space = JCS_RGB;
    else if (c == 4) ci.out_color_space = JCS_CMYK;
    else {
        jpeg_destroy_decompress(&ci);
        return laic_error("%s: unsupported JPEG with %d components", path, c);
    }
    // PIL's decoder keeps libjpeg's defaults unless draft mode is requested: slow-integer IDCT
    // and fancy (triangle) chroma upsampling, at full scale. Set them anyway so a libjpeg
    // built with other defaults still matches.
    ci.dct_method = JDCT_ISLOW;
    ci.do_fancy_upsampling = TRUE;
    ci.scale_num = ci.scale_denom = 1;
    if (check_dims(path, ci.image_height, ci.image_width)) {
        jpeg_destroy_decompress(&ci);
        return -1;
    }
    jpeg_start_decompress(&ci);
    size_t w = ci.output_width, h = ci.output_height, oc = (size_t)ci.output_components;
    if ((int)oc != c) {
        jpeg_destroy_decompress(&ci);
        return laic_error("%s: unexpected JPEG output components %zu", path, oc);
    }
    px = malloc(h * w * oc);
    if (!px) {
        jpeg_destroy_decompress(&ci);
        return laic_error("%s: out of memory (%zux%zu)", path, w, h);
    }
    while (ci.output_scanline < ci.output_height) {
        JSAMPROW row = px + (size_t)ci.output_scanline * w * oc;
        jpeg_read_scanlines(&ci, &row, 1);
        if (err.eof) break;
    }
    if (!err.eof) jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    if (err.eof) {
        free(px);
        return laic_error("%s: truncated JPEG (premature end of data)", path);
    }
    if (c == 4)   // PIL assumes Adobe's inverted CMYK ("CMYK;I")
        for (size_t i = 0; i < h * w * 4; i++) px[i] = (uint8_t)(255 - px[i]);
    im->h = (int)h;
    im->w = (int)w;
    im->c = c;
    im->rs = RS_BICUBIC8;
    im->cmyk = c == 4;
    im->px = px;
    return 0;
}

// --- PNG ---------------------------------------------------------------------------------

typedef struct {
    const uint8_t *buf;
    size_t n, pos;
    char msg[256];
} PngSrc;

static void png_read_mem(png_structp png, png_bytep out, size_t len) {
    PngSrc *s = png_get_io_ptr(png);
    if (len > s->n - s->pos) png_error(png, "truncated file");
    memcpy(out, s->buf + s->pos, len);
    s->pos += len;
}
static void png_err_fn(png_structp png, png_const_charp msg) {
    PngSrc *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}
static void png_warn_fn(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

static int decode_png(const char *path, const uint8_t *buf, size_t n, Img *im) {
    PngSrc src = {buf, n, 0, {0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_err_fn, png_warn_fn);
    if (!png) return laic_error("%s: cannot initialise libpng", path);
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return laic_error("%s: cannot initialise libpng", path);
    }
    uint8_t *volatile raw = NULL;      // decoded rows as libpng hands them out
    png_bytep *volatile rows = NULL;
    uint8_t *volatile px = NULL;
    uint16_t *volatile px16 = NULL;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        free(raw);
        free(rows);
        free(px);
        free(px16);
        return laic_error("%s: corrupt PNG (%s)", path, src.msg);
    }
    png_set_read_fn(png, &src, png_read_mem);
    // PIL does not check sBIT/gAMA/iCCP; neither do we. Keep benign-chunk CRC errors fatal.
    png_read_info(png, info);
    png_uint_32 w32, h32;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &w32, &h32, &depth, &ctype, &interlace, NULL, NULL);
    if (check_dims(path, h32, w32)) {
        png_destroy_read_struct(&png, &info, NULL);
        return -1;
    }
    size_t w = w32, h = h32;
    // What PIL would call the mode decides the resampling (see image.h).
    Resample rs = RS_BICUBIC8;
    int out_c;   // channels we store
    if (ctype == PNG_COLOR_TYPE_PALETTE) {
        png_set_packing(png);   // indices as one byte each
        rs = RS_NEAREST;
        out_c = 3;
    } else if (ctype == PNG_COLOR_TYPE_GRAY) {
        if (depth == 16) rs = RS_BICUBIC16;
        else {
            if (depth == 1) rs = RS_NEAREST;               // PIL mode "1"
            if (depth < 8) png_set_expand_gray_1_2_4_to_8(png);   // *255, *85, *17 as PIL
        }
        out_c = 1;
    } else if (ctype == PNG_COLOR_TYPE_RGB) {
        if (depth == 16) png_set_strip_16(png);   // PIL "RGB;16B" keeps the high byte
        out_c = 3;
    } else if (ctype == PNG_COLOR_TYPE_GRAY_ALPHA || ctype == PNG_COLOR_TYPE_RGB_ALPHA) {
        if (depth == 16) png_set_strip_16(png);
        rs = RS_PREMUL8;
        out_c = 4;   // LA is stored as RGBA with the gray replicated (same per-channel maths)
    } else {
        png_destroy_read_struct(&png, &info, NULL);
        return laic_error("%s: unsupported PNG colour type %d", path, ctype);
    }
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    int in_c = png_get_channels(png, info);
    raw = malloc(rowbytes * h);
    rows = malloc(h * sizeof(png_bytep));
    if (rs == RS_BICUBIC16) px16 = malloc(h * w * sizeof(uint16_t));
    else px = malloc(h * w * (size_t)out_c);
    if (!raw || !rows || (!px && !px16)) png_error(png, "out of memory");
    for (size_t y = 0; y < h; y++) rows[y] = raw + y * rowbytes;
    png_read_image(png, rows);
    png_read_end(png, NULL);

    if (ctype == PNG_COLOR_TYPE_PALETTE) {
        png_colorp pal = NULL;
        int npal = 0;
        if (!png_get_PLTE(png, info, &pal, &npal)) png_error(png, "palette image without PLTE");
        for (size_t i = 0; i < h * w; i++) {
            int k = raw[i];
            // Entries past the palette read as black (PIL pads its palette with zeros).
            px[i * 3 + 0] = k < npal ? pal[k].red : 0;
            px[i * 3 + 1] = k < npal ? pal[k].green : 0;
            px[i * 3 + 2] = k < npal ? pal[k].blue : 0;
        }
    } else if (rs == RS_BICUBIC16) {
        for (size_t i = 0; i < h * w; i++)   // PNG samples are big-endian
            px16[i] = (uint16_t)((raw[2 * i] << 8) | raw[2 * i + 1]);
    } else if (in_c == 2) {   // gray + alpha -> RGBA
        for (size_t i = 0; i < h * w; i++) {
            px[i * 4 + 0] = px[i * 4 + 1] = px[i * 4 + 2] = raw[i * 2];
            px[i * 4 + 3] = raw[i * 2 + 1];
        }
    } else {
        if (in_c != out_c) png_error(png, "unexpected channel count");
        memcpy(px, raw, h * w * (size_t)out_c);
    }
    png_destroy_read_struct(&png, &info, NULL);
    free(raw);
    free(rows);
    im->h = (int)h;
    im->w = (int)w;
    im->c = out_c;
    im->rs = rs;
    im->cmyk = 0;
    im->px = px;
    im->px16 = px16;
    return 0;
}

static int decode_file(const char *path, Img *im) {
    memset(im, 0, sizeof *im);
    uint8_t *buf;
    size_t n;
    if (read_whole_file(path, &buf, &n)) return -1;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
    int rc;
    if (n >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff)
        rc = decode_jpeg(path, buf, n, im);
    else if (n >= 8 && memcmp(buf, png_sig, 8) == 0)
        rc = decode_png(path, buf, n, im);
    else if (n == 0)
        rc = laic_error("%s: empty file, not an image", path);
    else
        rc = laic_error("%s: not a JPEG or PNG image (unrecognised header)", path);
    free(buf);
    return rc;
}

// --- pixel conversions (PIL Convert.c semantics) -------------------------------------------

static inline uint8_t muldiv255(unsigned a, unsigned b) {
    unsigned t = a * b + 128;   // exact a*b/255 rounded, as PIL's MULDIV255
    return (uint8_t)(((t >> 8) + t) >> 8);
}
static inline uint8_t clip8i(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

// One pixel of the decoded (resized) image to RGB, as PIL's convert("RGB").
static inline void to_rgb(uint8_t *o, const uint8_t *p, int c, int cmyk) {
    if (c == 1) {
        o[0] = o[1] = o[2] = p[0];
    } else if (cmyk) {
        int nk = 255 - p[3];
        for (int k = 0; k < 3; k++) o[k] = clip8i(nk - muldiv255(p[k], (unsigned)nk));
    } else {
        o[0] = p[0];
        o[1] = p[1];
        o[2] = p[2];
    }
}

// --- resampling --------------------------------------------------------------------------

#define PREC_BITS 22   // PIL: 32 - 8 (result) - 2 (headroom for negative lobes / overshoot)

static double bicubic(double x) {
    // Keys cubic with a = -0.5, written in PIL's evaluation order for bit-equal doubles.
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

typedef struct {
    int ksize;         // taps reserved per output sample
    int *bounds;       // (n, 2): first tap, number of taps
    double *kd;        // (n, ksize) normalised weights
    int32_t *ki;       // (n, ksize) 22-bit fixed-point weights
} Coeffs;

static void coeffs_free(Coeffs *c) {
    free(c->bounds);
    free(c->kd);
    free(c->ki);
}

// Weights for output samples [o0, o0+n) of a resize from in_size to out_size.
static void coeffs_build(Coeffs *cf, int in_size, int out_size, int o0, int n) {
    double scale = (double)in_size / out_size;   // PIL: (double)(float box width) / out
    double fscale = scale < 1.0 ? 1.0 : scale;   // widen the kernel only when downscaling
    double support = 2.0 * fscale;
    int ksize = (int)ceil(support) * 2 + 1;
    cf->ksize = ksize;
    cf->bounds = mallocCheck((size_t)n * 2 * sizeof(int));
    cf->kd = mallocCheck((size_t)n * (size_t)ksize * sizeof(double));
    cf->ki = mallocCheck((size_t)n * (size_t)ksize * sizeof(int32_t));
    double ss = 1.0 / fscale;
    for (int i = 0; i < n; i++) {
        int xx = o0 + i;
        double center = (xx + 0.5) * scale;
        int xmin = (int)(center - support + 0.5);   // truncation, as PIL's "round"
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double *k = cf->kd + (size_t)i * ksize;
        double ww = 0.0;
        for (int x = 0; x < xmax; x++) {
            double wt = bicubic((x + xmin - center + 0.5) * ss);
            k[x] = wt;
            ww += wt;
        }
        for (int x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (int x = xmax; x < ksize; x++) k[x] = 0;
        int32_t *ki = cf->ki + (size_t)i * ksize;
        for (int x = 0; x < ksize; x++)   // round half away from zero
            ki[x] = k[x] < 0 ? (int32_t)(-0.5 + k[x] * (1 << PREC_BITS))
                             : (int32_t)(0.5 + k[x] * (1 << PREC_BITS));
        cf->bounds[2 * i] = xmin;
        cf->bounds[2 * i + 1] = xmax;
    }
}

static inline uint8_t clip_fixed(int32_t ss) {
    if (ss < 0) return 0;   // == PIL's table lookup at ss >> 22 for negative sums
    ss >>= PREC_BITS;
    return (uint8_t)(ss > 255 ? 255 : ss);
}

// --- one pass each way; dst is dense, src rows are `stride` elements apart ---------------

// Horizontal: dst (nr, nx, c) from src rows; taps at columns bounds - col_shift.
static void hpass8(uint8_t *dst, const uint8_t *src, size_t stride, size_t nr, const Coeffs *ch,
                   int nx, int c, int col_shift) {
    const int32_t init = 1 << (PREC_BITS - 1);
    size_t cs = (size_t)c;
    for (size_t y = 0; y < nr; y++) {
        const uint8_t *row = src + y * stride;
        uint8_t *d = dst + y * (size_t)nx * cs;
        for (int j = 0; j < nx; j++) {
            const int32_t *k = ch->ki + (size_t)j * ch->ksize;
            const uint8_t *s = row + (size_t)(ch->bounds[2 * j] - col_shift) * cs;
            int n = ch->bounds[2 * j + 1];
            for (int q = 0; q < c; q++) {
                int32_t acc = init;
                for (int t = 0; t < n; t++) acc += (int32_t)s[(size_t)t * cs + q] * k[t];
                d[(size_t)j * cs + q] = clip_fixed(acc);
            }
        }
    }
}

// Vertical: dst (ny, rowlen) from src rows (bounds - row_shift), rowlen elements each.
static void vpass8(uint8_t *dst, const uint8_t *src, size_t stride, size_t rowlen,
                   const Coeffs *cv, int ny, int row_shift) {
    int32_t *acc = mallocCheck(rowlen * sizeof(int32_t));
    for (int i = 0; i < ny; i++) {
        const int32_t *k = cv->ki + (size_t)i * cv->ksize;
        size_t y0 = (size_t)(cv->bounds[2 * i] - row_shift);
        int n = cv->bounds[2 * i + 1];
        for (size_t e = 0; e < rowlen; e++) acc[e] = 1 << (PREC_BITS - 1);
        // Integer sums are order-independent, so accumulate row by row (cache friendly).
        for (int t = 0; t < n; t++) {
            const uint8_t *s = src + (y0 + (size_t)t) * stride;
            int32_t kt = k[t];
            for (size_t e = 0; e < rowlen; e++) acc[e] += (int32_t)s[e] * kt;
        }
        uint8_t *d = dst + (size_t)i * rowlen;
        for (size_t e = 0; e < rowlen; e++) d[e] = clip_fixed(acc[e]);
    }
    free(acc);
}

// PIL's 16-bit pass stores round(ss) as low byte clip8(v % 256), high byte clip8(v >> 8).
static inline uint16_t pack16(double ss) {
    int v = (int)(ss >= 0.0 ? ss + 0.5F : ss - 0.5F);
    int lo = v % 256, hi = v >> 8;   // v < 0 gives lo <= 0 and hi < 0: both clip to 0
    return (uint16_t)(clip8i(lo) | (clip8i(hi) << 8));
}

static void hpass16(uint16_t *dst, const uint16_t *src, size_t stride, size_t nr,
                    const Coeffs *ch, int nx, int col_shift) {
    for (size_t y = 0; y < nr; y++)
        for (int j = 0; j < nx; j++) {
            const double *k = ch->kd + (size_t)j * ch->ksize;
            const uint16_t *s = src + y * stride + (ch->bounds[2 * j] - col_shift);
            double ss = 0.0;   // double sums are order-sensitive: taps in PIL's order
            for (int t = 0; t < ch->bounds[2 * j + 1]; t++) ss += s[t] * k[t];
            dst[y * (size_t)nx + (size_t)j] = pack16(ss);
        }
}

static void vpass16(uint16_t *dst, const uint16_t *src, size_t stride, size_t rowlen,
                    const Coeffs *cv, int ny, int row_shift) {
    for (int i = 0; i < ny; i++) {
        const double *k = cv->kd + (size_t)i * cv->ksize;
        size_t y0 = (size_t)(cv->bounds[2 * i] - row_shift);
        int n = cv->bounds[2 * i + 1];
        for (size_t x = 0; x < rowlen; x++) {
            double ss = 0.0;
            for (int t = 0; t < n; t++) ss += src[(y0 + (size_t)t) * stride + x] * k[t];
            dst[(size_t)i * rowlen + x] = pack16(ss);
        }
    }
}

// Window (ny, nx) at (oy0, ox0) of the (oh, ow) bicubic resize of in (h, w, c), as PIL:
// a pass runs only if that size changes; with both, PIL (since 13.0) runs the vertical pass
// first when the height shrinks by more than twice what the width shrinks,
// (h - oh) > 0 && (h - oh) > 2 (w - ow), else the horizontal pass first. The order matters:
// the intermediate image is rounded (8 or 16 bits) between passes.
static void resize_window(void *out /*(ny,nx,c)*/, const void *in /*(h,w,c)*/, int h, int w,
                          int c, int oh, int ow, int oy0, int ox0, int ny, int nx, int is16) {
    int need_h = ow != w, need_v = oh != h;
    size_t es = is16 ? sizeof(uint16_t) : 1, cs = (size_t)c, stride = (size_t)w * cs;
    const uint8_t *inb = in;
    Coeffs cv = {0}, ch = {0};
    if (need_v) coeffs_build(&cv, h, oh, oy0, ny);
    if (need_h) coeffs_build(&ch, w, ow, ox0, nx);
    if (need_h && need_v && (h - oh) > 0 && (h - oh) > 2 * (w - ow)) {
        // Vertical first, over the source columns the horizontal window reads.
        int c0 = ch.bounds[0], c1 = ch.bounds[2 * (nx - 1)] + ch.bounds[2 * (nx - 1) + 1];
        size_t rowlen = (size_t)(c1 - c0) * cs;
        void *tmp = mallocCheck((size_t)ny * rowlen * es);   // (ny, c1-c0, c)
        if (is16) {
            vpass16(tmp, (const uint16_t *)in + (size_t)c0, stride, rowlen, &cv, ny, 0);
            hpass16(out, tmp, rowlen, (size_t)ny, &ch, nx, c0);
        } else {
            vpass8(tmp, inb + (size_t)c0 * cs, stride, rowlen, &cv, ny, 0);
            hpass8(out, tmp, rowlen, (size_t)ny, &ch, nx, c, c0);
        }
        free(tmp);
    } else if (need_h && need_v) {
        // Horizontal first, over the source rows the vertical window reads.
        int r0 = cv.bounds[0], r1 = cv.bounds[2 * (ny - 1)] + cv.bounds[2 * (ny - 1) + 1];
        size_t nr = (size_t)(r1 - r0), rowlen = (size_t)nx * cs;
        void *tmp = mallocCheck(nr * rowlen * es);   // (r1-r0, nx, c)
        if (is16) {
            hpass16(tmp, (const uint16_t *)in + (size_t)r0 * stride, stride, nr, &ch, nx, 0);
            vpass16(out, tmp, rowlen, rowlen, &cv, ny, r0);
        } else {
            hpass8(tmp, inb + (size_t)r0 * stride, stride, nr, &ch, nx, c, 0);
            vpass8(out, tmp, rowlen, rowlen, &cv, ny, r0);
        }
        free(tmp);
    } else if (need_h) {
        if (is16)
            hpass16(out, (const uint16_t *)in + (size_t)oy0 * stride, stride, (size_t)ny, &ch, nx,
                    0);
        else
            hpass8(out, inb + (size_t)oy0 * stride, stride, (size_t)ny, &ch, nx, c, 0);
    } else if (need_v) {
        if (is16) vpass16(out, (const uint16_t *)in + (size_t)ox0, stride, (size_t)nx, &cv, ny, 0);
        else vpass8(out, inb + (size_t)ox0 * cs, stride, (size_t)nx * cs, &cv, ny, 0);
    } else {   // identity: PIL copies; the window is a plain crop
        for (int i = 0; i < ny; i++)
            memcpy((uint8_t *)out + (size_t)i * nx * cs * es,
                   inb + (((size_t)(oy0 + i) * w + (size_t)ox0) * cs) * es, (size_t)nx * cs * es);
    }
    coeffs_free(&cv);
    coeffs_free(&ch);
}

// Source index per output sample for PIL's NEAREST resize (affine scale, accumulated in
// double exactly as PIL steps it); -1 where PIL would fill with zeros.
static int *nearest_table(int in_size, int out_size, int o0, int n) {
    int *tab = mallocCheck((size_t)n * sizeof(int));
    double a = (double)in_size / out_size;
    double xo = 0.0 + a * 0.5;
    for (int x = 0; x < o0 + n; x++) {
        int xin = xo < 0.0 ? -1 : (int)xo;
        if (x >= o0) tab[x - o0] = (xin >= 0 && xin < in_size) ? xin : -1;
        xo += a;
    }
    return tab;
}

static void resize_window_nearest(uint8_t *out /*(ny,nx,c)*/, const uint8_t *in /*(h,w,c)*/,
                                  int h, int w, int c, int oh, int ow, int oy0, int ox0, int ny,
                                  int nx) {
    int *tx = nearest_table(w, ow, ox0, nx), *ty = nearest_table(h, oh, oy0, ny);
    size_t cs = (size_t)c;
    for (int i = 0; i < ny; i++)
        for (int j = 0; j < nx; j++) {
            uint8_t *o = out + ((size_t)i * nx + j) * cs;
            if (ty[i] < 0 || tx[j] < 0) memset(o, 0, cs);
            else memcpy(o, in + ((size_t)ty[i] * w + (size_t)tx[j]) * cs, cs);
        }
    free(tx);
    free(ty);
}

// --- CLIP geometry -----------------------------------------------------------------------

// torchvision Resize(int): shorter side to S, longer to int(S * long / short).
static void clip_resize_size(int h, int w, int S, int *oh, int *ow) {
    if (w <= h) {
        *ow = S;
        *oh = (int)((double)((long long)S * h) / (double)w);
    } else {
        *oh = S;
        *ow = (int)((double)((long long)S * w) / (double)h);
    }
}

// torchvision CenterCrop: int(round(d / 2.0)) with Python's round-half-even.
static int crop_offset(int full, int S) {
    double d = (full - S) / 2.0;
    double r = nearbyint(d);   // default FE_TONEAREST = ties to even, as Python round()
    return (int)r;
}

// The whole CLIP geometry on a decoded image, mode-aware; crop (S, S, 3).
static void preprocess_img(uint8_t *crop, const Img *im, int S) {
    int oh, ow;
    clip_resize_size(im->h, im->w, S, &oh, &ow);
    int oy0 = crop_offset(oh, S), ox0 = crop_offset(ow, S);
    size_t npx = (size_t)S * S;
    if (im->rs == RS_BICUBIC16) {
        uint16_t *win = mallocCheck(npx * sizeof(uint16_t));
        resize_window(win, im->px16, im->h, im->w, 1, oh, ow, oy0, ox0, S, S, 1);
        for (size_t i = 0; i < npx; i++)   // PIL's I;16 -> RGB saturates at 255
            crop[3 * i] = crop[3 * i + 1] = crop[3 * i + 2] = win[i] > 255 ? 255 : (uint8_t)win[i];
        free(win);
        return;
    }
    int c = im->c;
    uint8_t *win = mallocCheck(npx * (size_t)c);
    if (im->rs == RS_NEAREST) {
        resize_window_nearest(win, im->px, im->h, im->w, c, oh, ow, oy0, ox0, S, S);
    } else if (im->rs == RS_PREMUL8 && (oh != im->h || ow != im->w)) {
        // PIL: convert("RGBa") (MULDIV255), resize, convert back to RGBA (exact division,
        // truncated; alpha 0 and 255 pass through). Identity resizes skip all of it.
        size_t n = (size_t)im->h * im->w;
        uint8_t *pm = mallocCheck(n * 4);
        for (size_t i = 0; i < n; i++) {
            const uint8_t *p = im->px + 4 * i;
            for (int k = 0; k < 3; k++) pm[4 * i + k] = muldiv255(p[k], p[3]);
            pm[4 * i + 3] = p[3];
        }
        resize_window(win, pm, im->h, im->w, 4, oh, ow, oy0, ox0, S, S, 0);
        free(pm);
        for (size_t i = 0; i < npx; i++) {
            uint8_t *p = win + 4 * i;
            unsigned a = p[3];
            if (a != 0 && a != 255)
                for (int k = 0; k < 3; k++) p[k] = clip8i((int)((255u * p[k]) / a));
        }
    } else {
        resize_window(win, im->px, im->h, im->w, c, oh, ow, oy0, ox0, S, S, 0);
    }
    for (size_t i = 0; i < npx; i++) to_rgb(crop + 3 * i, win + (size_t)c * i, c, im->cmyk);
    free(win);
}

// --- public API --------------------------------------------------------------------------

int image_load_rgb8(const char *path, uint8_t **rgb, int *h, int *w) {
    Img im;
    *rgb = NULL;
    if (decode_file(path, &im)) return -1;
    size_t n = (size_t)im.h * im.w;
    uint8_t *o = malloc(n * 3);
    if (!o) {
        img_free(&im);
        return laic_error("%s: out of memory", path);
    }
    for (size_t i = 0; i < n; i++) {
        if (im.px16)   // PIL's I;16 -> RGB saturates at 255
            o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = im.px16[i] > 255 ? 255 : (uint8_t)im.px16[i];
        else to_rgb(o + 3 * i, im.px + (size_t)im.c * i, im.c, im.cmyk);
    }
    *rgb = o;
    *h = im.h;
    *w = im.w;
    img_free(&im);
    return 0;
}

void image_resize_crop_rgb8(uint8_t *out, const uint8_t *rgb, int h, int w, int S) {
    Img im = {.h = h, .w = w, .c = 3, .rs = RS_BICUBIC8, .cmyk = 0, .px = (uint8_t *)rgb};
    preprocess_img(out, &im, S);
}

void image_normalize(float *out, const uint8_t *crop, int S) {
    size_t npx = (size_t)S * S;
    for (int c = 0; c < 3; c++) {
        float m = IMAGE_CLIP_MEAN[c], s = IMAGE_CLIP_STD[c];
        float *o = out + (size_t)c * npx;
        // float32 ops in torchvision's order: ToTensor divides by 255, Normalize subtracts
        // the mean and divides by the std.
        for (size_t i = 0; i < npx; i++) o[i] = ((float)crop[3 * i + c] / 255.0f - m) / s;
    }
}

int image_load_crop(const char *path, int S, uint8_t *crop) {
    if (S <= 0) return laic_error("%s: bad crop size %d", path, S);
    Img im;
    if (decode_file(path, &im)) return -1;
    preprocess_img(crop, &im, S);
    img_free(&im);
    return 0;
}

int image_load_preprocessed(const char *path, int S, float *out) {
    if (S <= 0) return laic_error("%s: bad crop size %d", path, S);
    uint8_t *crop = malloc((size_t)S * S * 3);
    if (!crop) return laic_error("%s: out of memory", path);
    int rc = image_load_crop(path, S, crop);
    if (rc == 0) image_normalize(out, crop, S);
    free(crop);
    return rc;
}

// --- file lists --------------------------------------------------------------------------

typedef struct {
    char **v;
    size_t n, cap;
} StrVec;

static void sv_push(StrVec *s, char *p) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        char **nv = realloc(s->v, s->cap * sizeof(char *));
        if (!nv) {
            fprintf(stderr, "laic: fatal: out of memory listing images\n");
            exit(1);
        }
        s->v = nv;
    }
    s->v[s->n++] = p;
}

static int has_image_ext(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    return !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png");
}

static char *join_path(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    int slash = na > 0 && a[na - 1] != '/';
    char *p = mallocCheck(na + nb + 2);
    memcpy(p, a, na);
    if (slash) p[na++] = '/';
    memcpy(p + na, b, nb + 1);
    return p;
}

static int walk_dir(const char *dir, StrVec *out, int depth) {
    if (depth > 64) return laic_error("%s: directory nesting too deep (symlink loop?)", dir);
    DIR *d = opendir(dir);
    if (!d) return laic_error("%s: cannot open directory (%s)", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char *p = join_path(dir, e->d_name);
        struct stat st;
        if (stat(p, &st) != 0) {   // dangling symlink: not an image we can read, skip it
            free(p);
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            rc = walk_dir(p, out, depth + 1);
            free(p);
        } else if (S_ISREG(st.st_mode) && has_image_ext(e->d_name)) {
            sv_push(out, p);
        } else {
            free(p);
        }
    }
    closedir(d);
    return rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void image_list_free(char **paths, size_t n) {
    if (!paths) return;
    for (size_t i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

int image_list_dir(const char *dir, char ***paths, size_t *n) {
    *paths = NULL;
    *n = 0;
    struct stat st;
    if (stat(dir, &st) != 0) return laic_error("%s: no such directory (%s)", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return laic_error("%s: not a directory", dir);
    StrVec s = {0};
    if (walk_dir(dir, &s, 0)) {
        image_list_free(s.v, s.n);
        return -1;
    }
    if (s.n == 0) {
        free(s.v);
        return laic_error("%s: no images (.jpg .jpeg .png) found", dir);
    }
    qsort(s.v, s.n, sizeof(char *), cmp_str);
    *paths = s.v;
    *n = s.n;
    return 0;
}

int image_list_file(const char *list, char ***paths, size_t *n) {
    *paths = NULL;
    *n = 0;
    FILE *f = fopen(list, "r");
    if (!f) return laic_error("%s: cannot open list file (%s)", list, strerror(errno));
    // Directory of the list file, for relative entries.
    const char *slash = strrchr(list, '/');
    char *base = NULL;
    if (slash) {
        size_t nb = (size_t)(slash - list) + 1;
        base = mallocCheck(nb + 1);
        memcpy(base, list, nb);
        base[nb] = 0;
    }
    StrVec s = {0};
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        while (len > 0 && isspace((unsigned char)line[len - 1])) line[--len] = 0;
        char *p = line;
        while (*p && isspace((unsigned char)*p)) p++;
        if (!*p) continue;
        if (p[0] == '/' || !base) {
            char *c = mallocCheck(strlen(p) + 1);
            strcpy(c, p);
            sv_push(&s, c);
        } else {
            sv_push(&s, join_path(base, p));
        }
    }
    free(line);
    free(base);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        image_list_free(s.v, s.n);
        return laic_error("%s: read error", list);
    }
    if (s.n == 0) {
        free(s.v);
        return laic_error("%s: list file names no images", list);
    }
    *paths = s.v;
    *n = s.n;
    return 0;
}
