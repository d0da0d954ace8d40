/*
 * augment.cu — training views on the GPU (promises in augment_cuda.h).
 *
 * The host side turns each view's AugmentParams into a descriptor with everything the kernels
 * need precomputed by host/model/augment.c itself (bicubic tap tables, pass order, 16.16 affine
 * coefficients, blend factors, thresholds), packs the source images into one upload, and runs
 * one kernel per stage on the whole batch (blockIdx.y = view):
 *
 *   resize_pass1   crop + first bicubic pass (or the only one, or a plain copy) -> tmp / A
 *   resize_pass2   second bicubic pass tmp -> A
 *   flip           A mirrored in place where the view flips
 *   ra_stats       per round: histograms / luma mean -> a LUT or mean per view
 *   ra_apply       per round: A -> B with the view's op, then A and B swap
 *
 * A view's rounds are its RandAugment ops, then (SEIC strong view) its ColorJitter
 * adjustments in their drawn order — brightness, contrast and saturation are the RandAugment
 * blends with alpha = the factor, hue is OP_HUE — then OP_GRAY when the grayscale fired.
 *   normalize      A (n,S,S,3) uint8 -> (n,3,S,S) float
 *
 * Exactness: integer arithmetic is the CPU's, operation for operation. Float arithmetic
 * (blends, the sharpness kernel, normalisation) uses __fmul_rn/__fadd_rn/__fsub_rn/__fdiv_rn,
 * which nvcc never contracts into FMAs nor replaces with fast-math approximations, in the
 * CPU's evaluation order (the CPU build targets x86-64-v2: no FMA, so gcc rounds each op).
 * Constants the CPU computes in float (1/13, 5/13, the CLIP mean/std) are computed on the
 * host and passed in. The double in AutoContrast's LUT uses __dmul_rn/__dadd_rn likewise, and
 * the hue round trip (PIL's uint8 HSV, float and double steps as host/model/augment.c) uses the
 * _rn intrinsics of both widths.
 */
#include "common.cuh"

extern "C" {
#include "model/augment.h"
#include "model/image.h"
}
#include "augment_cuda.h"

namespace {

enum { MODE_COPY = 0, MODE_H = 1, MODE_V = 2, MODE_H_THEN_V = 3, MODE_V_THEN_H = 4 };

// Round ops beyond RandAugment's (RaOp codes 0..RA_NUM_OPS-1 keep their meaning).
enum { OP_HUE = RA_NUM_OPS, OP_GRAY = RA_NUM_OPS + 1 };
// RandAugment rounds, then the four ColorJitter adjustments, then the grayscale.
#define MAX_ROUNDS (AUGMENT_MAX_OPS + CJ_NUM_OPS + 1)

struct AugDesc {
    size_t src;        // byte offset of the crop's top-left pixel in the packed input
    size_t stride;     // bytes per source row (W*3)
    size_t tmp;        // byte offset of this view's intermediate image in tmp
    int h, w;          // crop size
    int mode;          // MODE_*
    int hks, vks;      // tap counts per output sample (ksize) of the two passes
    size_t htab, vtab; // int offsets into taps: first (S), count (S), k (S*ksize)
    int flip;
    int op[MAX_ROUNDS];              // RaOp or OP_*; RA_IDENTITY when the view has no such round
    float alpha[MAX_ROUNDS];         // blend factor (float)(1 + mag), or the jitter factor
    double thr[MAX_ROUNDS];          // Solarize threshold
    int mask[MAX_ROUNDS];            // Posterize bit mask; OP_HUE: the hue shift (0..255)
    long long aff[MAX_ROUNDS][6];    // geometric ops: 16.16 coefficients (augment.h)
};

// --- resize --------------------------------------------------------------------------------

__device__ __forceinline__ uint8_t clip_fx(int32_t s) {
    if (s < 0) return 0;
    s >>= AUGMENT_BICUBIC_PREC;
    return (uint8_t)(s > 255 ? 255 : s);
}

// One output byte of a horizontal pass: row y of src (stride bytes per row), output column o.
__device__ __forceinline__ uint8_t hpass_at(const uint8_t *src, size_t stride, int y, int o, int c,
                                            const int32_t *tab, int S, int ks) {
    const int first = tab[o], count = tab[S + o];
    const int32_t *k = tab + 2 * S + (size_t)o * ks;
    const uint8_t *s = src + (size_t)y * stride + (size_t)first * 3 + c;
    int32_t acc = 1 << (AUGMENT_BICUBIC_PREC - 1);
    for (int x = 0; x < count; x++) acc += (int32_t)s[(size_t)x * 3] * k[x];
    return clip_fx(acc);
}

// One output byte of a vertical pass: output row o, byte e of the row.
__device__ __forceinline__ uint8_t vpass_at(const uint8_t *src, size_t stride, int o, size_t e,
                                            const int32_t *tab, int S, int ks) {
    const int first = tab[o], count = tab[S + o];
    const int32_t *k = tab + 2 * S + (size_t)o * ks;
    int32_t acc = 1 << (AUGMENT_BICUBIC_PREC - 1);
    for (int y = 0; y < count; y++) acc += (int32_t)src[(size_t)(first + y) * stride + e] * k[y];
    return clip_fx(acc);
}

// Pass 1 of each view: the only pass (into out), or the first of two (into tmp), or the copy.
__global__ void resize_pass1_kernel1(uint8_t *out /*(n,S,S,3)*/, uint8_t *tmp,
                                     const uint8_t *in, const AugDesc *desc, const int32_t *taps,
                                     int S) {
    const AugDesc d = desc[blockIdx.y];
    const uint8_t *src = in + d.src;
    uint8_t *o = out + (size_t)blockIdx.y * S * S * 3;
    size_t n;   // output bytes of this pass
    switch (d.mode) {
    case MODE_H_THEN_V: n = (size_t)d.h * S * 3; break;   // (h, S) intermediate
    case MODE_V_THEN_H: n = (size_t)S * d.w * 3; break;   // (S, w) intermediate
    default: n = (size_t)S * S * 3; break;
    }
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        switch (d.mode) {
        case MODE_COPY: {   // crop already S x S
            size_t y = i / ((size_t)S * 3), e = i % ((size_t)S * 3);
            o[i] = src[y * d.stride + e];
            break;
        }
        case MODE_H:
        case MODE_H_THEN_V: {
            int c = (int)(i % 3), x = (int)(i / 3 % S), y = (int)(i / 3 / S);
            uint8_t v = hpass_at(src, d.stride, y, x, c, taps + d.htab, S, d.hks);
            (d.mode == MODE_H ? o : tmp + d.tmp)[i] = v;
            break;
        }
        case MODE_V:
        case MODE_V_THEN_H: {
            size_t rl = (size_t)d.w * 3;   // row bytes (w = S for MODE_V)
            int y = (int)(i / rl);
            uint8_t v = vpass_at(src, d.stride, y, i % rl, taps + d.vtab, S, d.vks);
            (d.mode == MODE_V ? o : tmp + d.tmp)[i] = v;
            break;
        }
        }
    }
}

// Pass 2 of views that need both passes: tmp -> out.
__global__ void resize_pass2_kernel1(uint8_t *out, const uint8_t *tmp, const AugDesc *desc,
                                     const int32_t *taps, int S) {
    const AugDesc d = desc[blockIdx.y];
    if (d.mode != MODE_H_THEN_V && d.mode != MODE_V_THEN_H) return;
    const uint8_t *t = tmp + d.tmp;
    uint8_t *o = out + (size_t)blockIdx.y * S * S * 3;
    const size_t n = (size_t)S * S * 3;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        if (d.mode == MODE_H_THEN_V)   // tmp (h, S): vertical pass, rows of S*3 bytes
            o[i] = vpass_at(t, (size_t)S * 3, (int)(i / ((size_t)S * 3)), i % ((size_t)S * 3),
                            taps + d.vtab, S, d.vks);
        else {   // tmp (S, w): horizontal pass
            int c = (int)(i % 3), x = (int)(i / 3 % S), y = (int)(i / 3 / S);
            o[i] = hpass_at(t, (size_t)d.w * 3, y, x, c, taps + d.htab, S, d.hks);
        }
    }
}

// Mirror in place: thread i swaps pixel (y, x) with (y, S-1-x) for x < S/2.
__global__ void flip_kernel1(uint8_t *img, const AugDesc *desc, int S) {
    if (!desc[blockIdx.y].flip) return;
    uint8_t *im = img + (size_t)blockIdx.y * S * S * 3;
    const size_t half = (size_t)(S / 2), n = (size_t)S * half;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t y = i / half, x = i % half;
        uint8_t *a = im + (y * S + x) * 3, *b = im + (y * S + (S - 1 - x)) * 3;
        for (int c = 0; c < 3; c++) {
            uint8_t t = a[c];
            a[c] = b[c];
            b[c] = t;
        }
    }
}

// --- RandAugment ---------------------------------------------------------------------------

__device__ __forceinline__ uint8_t luma(const uint8_t *p) {   // PIL RGB -> L
    return (uint8_t)(((unsigned)p[0] * 19595 + (unsigned)p[1] * 38470 + (unsigned)p[2] * 7471 +
                      0x8000) >> 16);
}

#define STATS_THREADS 256

// One block per view: the LUT (3,256) of Posterize/Solarize/AutoContrast/Equalize, or the
// luma mean of Contrast (in lut[0][0]); nothing for the other ops.
__global__ void ra_stats_kernel1(uint8_t *lut /*(n,3,256)*/, const uint8_t *img,
                                 const AugDesc *desc, int round, int S) {
    const AugDesc &d = desc[blockIdx.x];
    const int op = d.op[round];
    uint8_t *L = lut + (size_t)blockIdx.x * 3 * 256;
    const uint8_t *im = img + (size_t)blockIdx.x * S * S * 3;
    const size_t npix = (size_t)S * S;
    __shared__ unsigned int hist[3][256];
    __shared__ unsigned long long part[STATS_THREADS];
    if (op == RA_POSTERIZE || op == RA_SOLARIZE) {
        for (int t = threadIdx.x; t < 3 * 256; t += blockDim.x) {
            int i = t % 256;
            L[t] = op == RA_POSTERIZE ? (uint8_t)(i & d.mask[round])
                                      : (uint8_t)((double)i < d.thr[round] ? i : 255 - i);
        }
        return;
    }
    if (op == RA_CONTRAST) {   // integer sum: exact in any order
        unsigned long long s = 0;
        for (size_t i = threadIdx.x; i < npix; i += blockDim.x) s += luma(im + i * 3);
        part[threadIdx.x] = s;
        __syncthreads();
        for (int h = blockDim.x / 2; h > 0; h >>= 1) {
            if ((int)threadIdx.x < h) part[threadIdx.x] += part[threadIdx.x + h];
            __syncthreads();
        }
        if (threadIdx.x == 0) L[0] = (uint8_t)(int)((double)part[0] / (double)npix + 0.5);
        return;
    }
    if (op != RA_AUTOCONTRAST && op != RA_EQUALIZE) return;
    for (int t = threadIdx.x; t < 3 * 256; t += blockDim.x) (&hist[0][0])[t] = 0;
    __syncthreads();
    for (size_t i = threadIdx.x; i < npix * 3; i += blockDim.x) atomicAdd(&hist[i % 3][im[i]], 1u);
    __syncthreads();
    if (threadIdx.x >= 3) return;
    const int c = threadIdx.x;
    const unsigned int *hc = hist[c];
    uint8_t *lc = L + c * 256;
    if (op == RA_AUTOCONTRAST) {
        int lo = 0, hi = 255;
        while (lo < 255 && !hc[lo]) lo++;
        while (hi > 0 && !hc[hi]) hi--;
        if (hi <= lo) {
            for (int i = 0; i < 256; i++) lc[i] = (uint8_t)i;
            return;
        }
        double scale = 255.0 / (hi - lo), offset = __dmul_rn((double)-lo, scale);
        for (int i = 0; i < 256; i++) {
            int v = (int)__dadd_rn(__dmul_rn((double)i, scale), offset);
            lc[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
        return;
    }
    size_t total = 0, last = 0;   // Equalize
    int nonzero = 0;
    for (int i = 0; i < 256; i++)
        if (hc[i]) total += hc[i], last = hc[i], nonzero++;
    size_t step = nonzero > 1 ? (total - last) / 255 : 0;
    if (!step) {
        for (int i = 0; i < 256; i++) lc[i] = (uint8_t)i;
        return;
    }
    size_t acc = step / 2;
    for (int i = 0; i < 256; i++) {
        size_t v = acc / step;
        lc[i] = (uint8_t)(v > 255 ? 255 : v);
        acc += hc[i];
    }
}

// Image.blend(deg, img, alpha), clamped form (equal to the unclamped one for 0 <= alpha <= 1).
__device__ __forceinline__ uint8_t blend1(uint8_t deg, uint8_t img, float alpha) {
    float v = __fadd_rn((float)deg, __fmul_rn(alpha, (float)((int)img - (int)deg)));
    return v <= 0.0f ? 0 : v >= 255.0f ? 255 : (uint8_t)v;
}

__device__ __forceinline__ long long floor_shift16(long long v) {
    return v >= 0 ? v / 65536 : -((-v + 65535) / 65536);
}

// PIL's uint8 RGB -> HSV -> hue + shift -> RGB of one pixel, with host/model/augment.c's
// float and double steps (augment_rgb_to_hsv / augment_hsv_to_rgb) as _rn intrinsics.
__device__ __forceinline__ uint8_t clip8(int v) { return (uint8_t)(v <= 0 ? 0 : v < 256 ? v : 255); }

__device__ void hue_shift_px(uint8_t *q, const uint8_t *p, int shift) {
    const uint8_t r = p[0], g = p[1], b = p[2];
    const uint8_t mx = r > g ? (r > b ? r : b) : (g > b ? g : b);
    const uint8_t mn = r < g ? (r < b ? r : b) : (g < b ? g : b);
    uint8_t h = 0, s = 0;
    const uint8_t v = mx;
    if (mn != mx) {
        const float cr = (float)(mx - mn), sf = __fdiv_rn(cr, (float)mx);
        const float rc = __fdiv_rn((float)(mx - r), cr), gc = __fdiv_rn((float)(mx - g), cr);
        const float bc = __fdiv_rn((float)(mx - b), cr);
        float hue;
        if (r == mx) hue = __fsub_rn(bc, gc);
        else if (g == mx) hue = __double2float_rn(__dsub_rn(__dadd_rn(2.0, (double)rc), (double)bc));
        else hue = __double2float_rn(__dsub_rn(__dadd_rn(4.0, (double)gc), (double)rc));
        hue = __double2float_rn(fmod(__dadd_rn(__ddiv_rn((double)hue, 6.0), 1.0), 1.0));
        h = clip8((int)__dmul_rn((double)hue, 255.0));
        s = clip8((int)__dmul_rn((double)sf, 255.0));
    }
    h = (uint8_t)(h + shift);
    if (s == 0) {
        q[0] = q[1] = q[2] = v;
        return;
    }
    const double x = __ddiv_rn(__dmul_rn((double)(float)h, 6.0), 255.0);
    const int i = (int)floor(x);
    const float f = __double2float_rn(__dsub_rn(x, (double)(float)i));
    const float fs = __double2float_rn(__ddiv_rn((double)(float)s, 255.0));
    const double vv = (double)(float)v;
    const uint8_t up = clip8((int)round(__dmul_rn(vv, __dsub_rn(1.0, (double)fs))));
    const uint8_t uq = clip8((int)round(__dmul_rn(vv, __dsub_rn(1.0, (double)__fmul_rn(fs, f)))));
    const uint8_t ut = clip8((int)round(
        __dmul_rn(vv, __dsub_rn(1.0, __dmul_rn((double)fs, __dsub_rn(1.0, (double)f))))));
    switch (i % 6) {
    case 0: q[0] = v, q[1] = ut, q[2] = up; break;
    case 1: q[0] = uq, q[1] = v, q[2] = up; break;
    case 2: q[0] = up, q[1] = v, q[2] = ut; break;
    case 3: q[0] = up, q[1] = uq, q[2] = v; break;
    case 4: q[0] = ut, q[1] = up, q[2] = v; break;
    default: q[0] = v, q[1] = up, q[2] = uq; break;
    }
}

// PIL SMOOTH at interior pixel p (channel byte), float order as host/model/augment.c's smooth().
__device__ __forceinline__ uint8_t smooth_at(const uint8_t *p, ptrdiff_t r, float k, float kc) {
#define T(q, kk) __fmul_rn((float)(q), (kk))
    float ss = 0.0f;
    ss = __fadd_rn(ss, __fadd_rn(__fadd_rn(T(p[r - 3], k), T(p[r], k)), T(p[r + 3], k)));
    ss = __fadd_rn(ss, __fadd_rn(__fadd_rn(T(p[-3], k), T(p[0], kc)), T(p[3], k)));
    ss = __fadd_rn(ss, __fadd_rn(__fadd_rn(T(p[-r - 3], k), T(p[-r], k)), T(p[-r + 3], k)));
#undef T
    ss = __fadd_rn(ss, 0.5f);
    return ss <= 0 ? 0 : ss >= 255 ? 255 : (uint8_t)ss;
}

// out = op(in) for round `round` of every view; one thread per pixel (3 bytes).
__global__ void ra_apply_kernel1(uint8_t *out, const uint8_t *in, const uint8_t *lut,
                                 const AugDesc *desc, int round, int S, float k13, float k5_13) {
    const AugDesc &d = desc[blockIdx.y];
    const int op = d.op[round];
    const uint8_t *im = in + (size_t)blockIdx.y * S * S * 3;
    uint8_t *o = out + (size_t)blockIdx.y * S * S * 3;
    const uint8_t *L = lut + (size_t)blockIdx.y * 3 * 256;
    const size_t npix = (size_t)S * S, r = (size_t)S * 3;
    const float alpha = d.alpha[round];
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < npix;
         i += (size_t)gridDim.x * blockDim.x) {
        const int x = (int)(i % S), y = (int)(i / S);
        const uint8_t *p = im + i * 3;
        uint8_t *q = o + i * 3;
        switch (op) {
        case RA_SHEAR_X:
        case RA_SHEAR_Y:
        case RA_TRANSLATE_X:
        case RA_TRANSLATE_Y:
        case RA_ROTATE: {
            // The CPU steps xx by integer adds along the row; the same sum in closed form.
            const long long *f = d.aff[round];
            long long xi = floor_shift16(f[2] + (long long)x * f[0] + (long long)y * f[1]);
            long long yi = floor_shift16(f[5] + (long long)x * f[3] + (long long)y * f[4]);
            if (xi >= 0 && xi < S && yi >= 0 && yi < S) {
                const uint8_t *s = im + ((size_t)yi * S + (size_t)xi) * 3;
                q[0] = s[0], q[1] = s[1], q[2] = s[2];
            } else {
                q[0] = q[1] = q[2] = 0;
            }
            break;
        }
        case RA_BRIGHTNESS:
            for (int c = 0; c < 3; c++) q[c] = blend1(0, p[c], alpha);
            break;
        case RA_COLOR: {
            uint8_t g = luma(p);
            for (int c = 0; c < 3; c++) q[c] = blend1(g, p[c], alpha);
            break;
        }
        case RA_CONTRAST:
            for (int c = 0; c < 3; c++) q[c] = blend1(L[0], p[c], alpha);
            break;
        case RA_SHARPNESS: {
            const bool border = x == 0 || y == 0 || x == S - 1 || y == S - 1 || S < 3;
            for (int c = 0; c < 3; c++) {
                uint8_t deg = border ? p[c] : smooth_at(p + c, (ptrdiff_t)r, k13, k5_13);
                q[c] = blend1(deg, p[c], alpha);
            }
            break;
        }
        case RA_POSTERIZE:
        case RA_SOLARIZE:
        case RA_AUTOCONTRAST:
        case RA_EQUALIZE:
            for (int c = 0; c < 3; c++) q[c] = L[c * 256 + p[c]];
            break;
        case OP_HUE: hue_shift_px(q, p, d.mask[round]); break;
        case OP_GRAY: q[0] = q[1] = q[2] = luma(p); break;
        default: q[0] = p[0], q[1] = p[1], q[2] = p[2]; break;
        }
    }
}

// (n,S,S,3) uint8 -> (n,3,S,S) float: ((v / 255) - mean) / std in float, as image_normalize.
struct Norm {
    float mean[3], std[3];
};

__global__ void normalize_kernel1(float *out, const uint8_t *img, int n, int S, Norm nm) {
    const size_t npix = (size_t)S * S, total = (size_t)n * npix * 3;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t v = i / (3 * npix), rem = i % (3 * npix), c = rem / npix, px = rem % npix;
        float u = __fdiv_rn((float)img[(v * npix + px) * 3 + c], 255.0f);
        out[i] = __fdiv_rn(__fsub_rn(u, nm.mean[c]), nm.std[c]);
    }
}

// --- workspace -----------------------------------------------------------------------------

struct Buf {
    void *p = nullptr;
    size_t cap = 0;
};

struct Workspace {
    Buf in, tmp, a, b, lut, desc, taps;
} g_ws;

// Grows b to at least bytes; -1 with laic_error when the device is out of memory.
int ensure(Buf &b, size_t bytes, const char *what) {
    if (bytes <= b.cap) return 0;
    if (b.p) cudaCheck(cudaFree(b.p));
    b.p = nullptr;
    b.cap = 0;
    if (cudaMalloc(&b.p, bytes) != cudaSuccess) {
        (void)cudaGetLastError();   // clear the sticky-free OOM error
        b.p = nullptr;
        return laic_error("augment_views_cuda: out of device memory allocating %zu bytes for %s",
                          bytes, what);
    }
    b.cap = bytes;
    return 0;
}

// Appends one tap table (first (S), count (S), k (S*ks)) to taps; returns its offset.
size_t push_taps(int32_t **taps, size_t *len, size_t *cap, int n_in, int S, int *ks) {
    int *first, *count;
    int32_t *k;
    *ks = augment_bicubic_taps(n_in, S, &first, &count, &k);
    size_t need = 2 * (size_t)S + (size_t)S * *ks, off = *len;
    if (*len + need > *cap) {
        *cap = 2 * (*len + need);
        *taps = (int32_t *)realloc(*taps, *cap * sizeof(int32_t));
        if (!*taps) {
            fprintf(stderr, "laic: fatal: out of host memory in augment_views_cuda\n");
            exit(1);
        }
    }
    int32_t *t = *taps + off;
    for (int o = 0; o < S; o++) t[o] = first[o], t[S + o] = count[o];
    memcpy(t + 2 * S, k, (size_t)S * *ks * sizeof(int32_t));
    *len += need;
    free(first);
    free(count);
    free(k);
    return off;
}

}   // namespace

extern "C" int augment_views_cuda(float *out, uint8_t *out_u8, const uint8_t *const *imgs,
                                  const int *H, const int *W, const AugmentParams *p, int n,
                                  int S) {
    if (n <= 0) return 0;
    if (S <= 0) return laic_error("augment_views_cuda: bad view size %d", S);
    // The view index is blockIdx.y in every per-view kernel: gridDim.y is at most 65535, and a
    // larger n would otherwise stop the program in launchCheck instead of returning an error.
    if (n > 65535)
        return laic_error("augment_views_cuda: %d views in one call (at most 65535)", n);
    AugDesc *desc = (AugDesc *)callocCheck((size_t)n, sizeof(AugDesc));
    size_t *img_off = (size_t *)mallocCheck((size_t)n * sizeof(size_t));
    uint8_t *first_use = (uint8_t *)mallocCheck((size_t)n);
    int32_t *taps = nullptr;
    size_t taps_len = 0, taps_cap = 0, in_bytes = 0, tmp_bytes = 0;
    int rc = 0;
    // Each distinct host image is uploaded once (the trainer's weak and strong views share it).
    for (int j = 0; j < n; j++) {
        int k = 0;
        while (k < j && imgs[k] != imgs[j]) k++;
        first_use[j] = k == j;
        if (k < j) {
            img_off[j] = img_off[k];
        } else {
            img_off[j] = in_bytes;
            in_bytes += (size_t)H[j] * W[j] * 3;
        }
    }
    for (int j = 0; j < n && !rc; j++) {
        AugDesc &d = desc[j];
        const CropBox &b = p[j].crop;
        d.stride = (size_t)W[j] * 3;
        d.src = img_off[j] + (size_t)b.top * d.stride + (size_t)b.left * 3;
        d.h = b.h;
        d.w = b.w;
        const int need_h = S != b.w, need_v = S != b.h;
        if (need_h && need_v)
            d.mode = augment_resize_vertical_first(b.h, b.w, S, S) ? MODE_V_THEN_H : MODE_H_THEN_V;
        else
            d.mode = need_h ? MODE_H : need_v ? MODE_V : MODE_COPY;
        if (need_h) d.htab = push_taps(&taps, &taps_len, &taps_cap, b.w, S, &d.hks);
        if (need_v) d.vtab = push_taps(&taps, &taps_len, &taps_cap, b.h, S, &d.vks);
        d.tmp = tmp_bytes;
        if (d.mode == MODE_H_THEN_V) tmp_bytes += (size_t)b.h * S * 3;
        if (d.mode == MODE_V_THEN_H) tmp_bytes += (size_t)S * b.w * 3;
        d.flip = p[j].flip;
        for (int r = 0; r < MAX_ROUNDS; r++) d.op[r] = RA_IDENTITY;
        // the SEIC strong view's rounds after RandAugment's: jitter in order, then grayscale
        for (int k = 0; k < p[j].n_cj; k++) {
            const int r = AUGMENT_MAX_OPS + k;
            const CjOp cj = p[j].cj_op[k];
            const float f = p[j].cj_factor[cj];
            d.op[r] = cj == CJ_BRIGHTNESS ? (int)RA_BRIGHTNESS : cj == CJ_CONTRAST ? (int)RA_CONTRAST
                      : cj == CJ_SATURATION ? (int)RA_COLOR : (int)OP_HUE;
            d.alpha[r] = f;   // the blend's alpha is (float)factor, as enhance() on the host
            if (cj == CJ_HUE) d.mask[r] = augment_hue_shift(f);
        }
        if (p[j].gray) d.op[AUGMENT_MAX_OPS + CJ_NUM_OPS] = OP_GRAY;
        for (int r = 0; r < AUGMENT_MAX_OPS; r++) {
            d.op[r] = r < p[j].n_ops ? (int)p[j].op[r] : RA_IDENTITY;
            double mag = r < p[j].n_ops ? p[j].mag[r] : 0.0;
            d.alpha[r] = (float)(1.0 + mag);   // blend() takes (float)factor
            d.thr[r] = mag;
            if (d.op[r] == RA_POSTERIZE) {
                int bits = (int)mag;
                d.mask[r] = (uint8_t)~((1u << (8 - bits)) - 1);
            }
            int64_t f[6];
            int geo = augment_ra_affine_fixed(f, (RaOp)d.op[r], mag, S, S);
            if (geo < 0)
                rc = laic_error("augment_views_cuda: view size %d too large for the fixed-point "
                                "affine path", S);
            for (int i = 0; i < 6; i++) d.aff[r][i] = geo > 0 ? (long long)f[i] : 0;
        }
    }
    const size_t view_bytes = (size_t)S * S * 3, all = (size_t)n * view_bytes;
    if (!rc && (ensure(g_ws.in, in_bytes ? in_bytes : 1, "the source images") ||
             ensure(g_ws.tmp, tmp_bytes ? tmp_bytes : 1, "the resize intermediates") ||
             ensure(g_ws.a, all, "the views") || ensure(g_ws.b, all, "the views") ||
             ensure(g_ws.lut, (size_t)n * 3 * 256, "the RandAugment tables") ||
             ensure(g_ws.desc, (size_t)n * sizeof(AugDesc), "the view descriptors") ||
             ensure(g_ws.taps, (taps_len ? taps_len : 1) * sizeof(int32_t), "the bicubic taps")))
        rc = -1;
    if (!rc) {
        uint8_t *d_in = (uint8_t *)g_ws.in.p, *A = (uint8_t *)g_ws.a.p, *B = (uint8_t *)g_ws.b.p;
        for (int j = 0; j < n; j++)
            if (first_use[j])
                cudaCheck(cudaMemcpy(d_in + img_off[j], imgs[j], (size_t)H[j] * W[j] * 3,
                                     cudaMemcpyHostToDevice));
        const AugDesc *d_desc = (const AugDesc *)g_ws.desc.p;
        const int32_t *d_taps = (const int32_t *)g_ws.taps.p;
        cudaCheck(cudaMemcpy(g_ws.desc.p, desc, (size_t)n * sizeof(AugDesc), cudaMemcpyHostToDevice));
        if (taps_len)
            cudaCheck(cudaMemcpy(g_ws.taps.p, taps, taps_len * sizeof(int32_t), cudaMemcpyHostToDevice));
        const int block = 256;
        const dim3 grid(ceil_div_u(view_bytes, block) < 1024 ? ceil_div_u(view_bytes, block) : 1024,
                        (unsigned)n);
        resize_pass1_kernel1<<<grid, block>>>(A, (uint8_t *)g_ws.tmp.p, d_in, d_desc, d_taps, S);
        launchCheck();
        resize_pass2_kernel1<<<grid, block>>>(A, (const uint8_t *)g_ws.tmp.p, d_desc, d_taps, S);
        launchCheck();
        flip_kernel1<<<grid, block>>>(A, d_desc, S);
        launchCheck();
        // rounds to run: up to the last one any view uses (views without it copy)
        int max_ops = 0;
        for (int j = 0; j < n; j++) {
            int last = p[j].n_ops;
            if (p[j].n_cj) last = AUGMENT_MAX_OPS + p[j].n_cj;
            if (p[j].gray) last = MAX_ROUNDS;
            max_ops = last > max_ops ? last : max_ops;
        }
        const float k13 = 1.0f / 13.0f, k5_13 = 5.0f / 13.0f;   // host float, as smooth()
        for (int r = 0; r < max_ops; r++) {
            ra_stats_kernel1<<<(unsigned)n, STATS_THREADS>>>((uint8_t *)g_ws.lut.p, A, d_desc, r, S);
            launchCheck();
            ra_apply_kernel1<<<grid, block>>>(B, A, (const uint8_t *)g_ws.lut.p, d_desc, r, S,
                                              k13, k5_13);
            launchCheck();
            uint8_t *t = A;
            A = B;
            B = t;
        }
        if (out) {
            Norm nm;
            for (int c = 0; c < 3; c++) nm.mean[c] = IMAGE_CLIP_MEAN[c], nm.std[c] = IMAGE_CLIP_STD[c];
            normalize_kernel1<<<grid_for(all, block), block>>>(out, A, n, S, nm);
            launchCheck();
        }
        if (out_u8) cudaCheck(cudaMemcpy(out_u8, A, all, cudaMemcpyDeviceToDevice));
        cudaCheck(cudaDeviceSynchronize());
    }
    free(desc);
    free(img_off);
    free(first_use);
    free(taps);
    return rc;
}

extern "C" int augment_batch_cuda(float *out, uint8_t *out_u8, const uint8_t *const *imgs,
                                  const int *H, const int *W, const size_t *index, int b, int S,
                                  uint64_t seed, uint64_t epoch) {
    if (b <= 0) return 0;
    if (b > 65535 / 2)   // 2b views, each a gridDim.y index (augment_views_cuda)
        return laic_error("augment_batch_cuda: batch of %d images (at most %d)", b, 65535 / 2);
    const int n = 2 * b;
    AugmentParams *p = (AugmentParams *)mallocCheck((size_t)n * sizeof *p);
    const uint8_t **im = (const uint8_t **)mallocCheck((size_t)n * sizeof *im);
    int *h = (int *)mallocCheck((size_t)n * sizeof *h), *w = (int *)mallocCheck((size_t)n * sizeof *w);
    for (int j = 0; j < n; j++) {
        const int s = j % b;
        im[j] = imgs[s], h[j] = H[s], w[j] = W[s];
        augment_view_params(&p[j], H[s], W[s], S, j >= b, seed, epoch, (uint64_t)index[s]);
    }
    int rc = augment_views_cuda(out, out_u8, im, h, w, p, n, S);
    free(p);
    free(im);
    free(h);
    free(w);
    return rc;
}

extern "C" int augment_seic_batch_cuda(float *out, uint8_t *out_u8, const uint8_t *const *imgs,
                                       const int *H, const int *W, const size_t *index, int b,
                                       int S, uint64_t seed, uint64_t epoch,
                                       const SeicViewCfg *view) {
    if (b <= 0) return 0;
    if (b > 65535 / 2)
        return laic_error("augment_seic_batch_cuda: batch of %d images (at most %d)", b, 65535 / 2);
    const int n = 2 * b;
    AugmentParams *p = (AugmentParams *)callocCheck((size_t)n, sizeof *p);
    const uint8_t **im = (const uint8_t **)mallocCheck((size_t)n * sizeof *im);
    int *h = (int *)mallocCheck((size_t)n * sizeof *h), *w = (int *)mallocCheck((size_t)n * sizeof *w);
    uint8_t *weak = (uint8_t *)mallocCheck((size_t)b * S * S * 3);
    // the eval views on the host (PIL's resize of the whole image, then the centre crop: not a
    // resized crop box), passed through the pipeline as S×S copies
    for (int j = 0; j < b; j++)
        image_resize_crop_rgb8(weak + (size_t)j * S * S * 3, imgs[j], H[j], W[j], S);
    for (int j = 0; j < n; j++) {
        if (j < b) {
            im[j] = weak + (size_t)j * S * S * 3, h[j] = S, w[j] = S;
            p[j].crop = CropBox{0, 0, S, S};
        } else {
            const int s = j - b;
            im[j] = imgs[s], h[j] = H[s], w[j] = W[s];
            augment_seic_view_params(&p[j], H[s], W[s], S, view, seed, epoch, (uint64_t)index[s]);
        }
    }
    int rc = augment_views_cuda(out, out_u8, im, h, w, p, n, S);
    free(p);
    free(im);
    free(h);
    free(w);
    free(weak);
    return rc;
}

extern "C" void augment_cuda_release(void) {
    Buf *all[] = {&g_ws.in, &g_ws.tmp, &g_ws.a, &g_ws.b, &g_ws.lut, &g_ws.desc, &g_ws.taps};
    for (Buf *b : all) {
        if (b->p) cudaCheck(cudaFree(b->p));
        b->p = nullptr;
        b->cap = 0;
    }
}
