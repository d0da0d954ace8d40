/*
 * kmeans.c — CPU ops of Lloyd's k-means: assignment through a GEMM, centre update in double,
 * row norms and row normalisation.
 *
 * Promises: each output element is computed by one thread in a fixed order, so results do not
 * depend on the thread count; ties in the assignment go to the lowest centre index.
 * Letters: N rows, d width, K centres.
 */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef __SSE4_1__
#include <smmintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "cpu/cluster_ops.h"
#include "io/err.h"

/* The GEMMs below run inside our own OpenMP loop over row blocks and must each run on one
 * thread. OpenBLAS's OpenMP build already does that for a call made inside a parallel region,
 * and there openblas_set_num_threads() would call omp_set_num_threads() and shrink our own
 * loop to one thread; only the pthread build needs its pool set to 1 around the loop. */
#define OPENBLAS_PARALLEL_OPENMP 2   // openblas_get_parallel(): 0 serial, 1 pthreads, 2 OpenMP

int blas_serial_begin(void) {
    if (openblas_get_parallel() == OPENBLAS_PARALLEL_OPENMP) return 1;
    int n = openblas_get_num_threads();
    if (n != 1) openblas_set_num_threads(1);
    return n;
}

void blas_serial_end(int saved) {
    if (saved != 1) openblas_set_num_threads(saved);
}

void rownorm2_forward_cpu(float *out, const float *X, int N, int d) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float *x = X + (size_t)i * d;   // (d)
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)x[j] * x[j];
        out[i] = (float)s;
    }
}

void l2normalize_rows_cpu(float *out, const float *X, int N, int d) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float *x = X + (size_t)i * d;
        float *o = out + (size_t)i * d;
        double s = 0;
        for (int j = 0; j < d; j++) s += (double)x[j] * x[j];
        // No 1e-12 floor (F.normalize's): a row of norm < 1e-12 (features ×1e-30) must come out
        // unit like any other. In double every nonzero float row has a finite, nonzero norm
        // and reciprocal (subnormal to FLT_MAX, any d), so only an all-zero row stays zero.
        double nrm = sqrt(s);
        double inv = nrm > 0 ? 1.0 / nrm : 0.0;
        for (int j = 0; j < d; j++) o[j] = (float)(x[j] * inv);
    }
}

void sqdist_forward_cpu(float *D, const float *X, const float *xx, const float *C, const float *cc,
                        int N, int d, int K) {
    const int BR = CLUSTER_GEMM_ROWS;
    int nb = (N + BR - 1) / BR, saved = blas_serial_begin();
#pragma omp parallel for schedule(dynamic, 1)
    for (int b = 0; b < nb; b++) {
        int r0 = b * BR, R = N - r0 < BR ? N - r0 : BR;
        float *Db = D + (size_t)r0 * K;   // (R,K)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, K, d, 1.0f, X + (size_t)r0 * d, d,
                    C, d, 0.0f, Db, K);
        for (int i = 0; i < R; i++)
            for (int j = 0; j < K; j++) {
                float t = xx[r0 + i] - 2.0f * Db[(size_t)i * K + j] + cc[j];
                Db[(size_t)i * K + j] = t > 0.0f ? t : 0.0f;
            }
    }
    blas_serial_end(saved);
}

void kmeans_assign_forward_cpu(int64_t *labels, float *mind, const float *X, const float *xx,
                               const float *C, const float *cc, int N, int d, int K) {
    const int BR = CLUSTER_GEMM_ROWS;
    int nb = (N + BR - 1) / BR, saved = blas_serial_begin();
#pragma omp parallel
    {
        float *dots = mallocCheck(sizeof(float) * (size_t)BR * K);   // (block,K) per thread
#pragma omp for schedule(dynamic, 1)
        for (int b = 0; b < nb; b++) {
            int r0 = b * BR, R = N - r0 < BR ? N - r0 : BR;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, K, d, 1.0f,
                        X + (size_t)r0 * d, d, C, d, 0.0f, dots, K);
            for (int i = 0; i < R; i++) {
                const float *di = dots + (size_t)i * K;
                float x2 = xx[r0 + i], best = INFINITY;
                int64_t bj = 0;
                for (int j = 0; j < K; j++) {
                    float dist = x2 - 2.0f * di[j] + cc[j];
                    if (dist < best) {   // strict: the lowest index wins a tie
                        best = dist;
                        bj = j;
                    }
                }
                labels[r0 + i] = bj;
                mind[r0 + i] = best > 0.0f ? best : 0.0f;
            }
        }
        free(dots);
    }
    blas_serial_end(saved);
}

void kmeans_update_forward_cpu(float *C, int64_t *counts, const float *X, const int64_t *labels,
                               int N, int d, int K) {
    memset(counts, 0, sizeof(int64_t) * (size_t)K);
    for (int i = 0; i < N; i++) counts[labels[i]]++;
    // Each thread owns a column range of every centre and walks all rows in order, so every
    // sum has one fixed order whatever the thread count.
    double *acc = callocCheck((size_t)K * d, sizeof(double));   // (K,d)
#pragma omp parallel
    {
#ifdef _OPENMP
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
#else
        int nt = 1, t = 0;
#endif
        int per = (d + nt - 1) / nt;
        int j0 = t * per, j1 = j0 + per < d ? j0 + per : d;
        for (int i = 0; i < N && j0 < j1; i++) {
            const float *x = X + (size_t)i * d;
            double *a = acc + (size_t)labels[i] * d;
            for (int j = j0; j < j1; j++) a[j] += x[j];
        }
    }
    for (int c = 0; c < K; c++) {
        if (!counts[c]) continue;
        double n = (double)counts[c];
        for (int j = 0; j < d; j++) C[(size_t)c * d + j] = (float)(acc[(size_t)c * d + j] / n);
    }
    free(acc);
}

// --- fixed-point sums: the update that is exact in any order ------------------------------------

/* Fixed point by the "magic number" M = 1.5·2^52: for |v| < 2^51, v + M rounds v to an integer
 * in the addition itself (round to nearest, ties to even: the default rounding mode), and the
 * bits of v + M minus the bits of M are that integer in two's complement. kmeans_fixed_shift
 * keeps |v| <= 2^50. The bits are summed as uint64 (wrap-around is defined and, like all integer
 * addition, order-free); n · bits(M) is subtracted once at the end, leaving the exact sum of the
 * n rounded values, which is below 2^63 in magnitude. */
#define FIXQ_MAGIC 0x1.8p52
#define FIXQ_MAGIC_BITS 0x4338000000000000ULL

static inline uint64_t fixq_bits(float x, double scale) {
    double t = (double)x * scale + FIXQ_MAGIC;   // the product is exact: scale is 2^shift
    uint64_t u;
    memcpy(&u, &t, sizeof u);
    return u;
}

/* a (d) += bits of x (d) scaled (see above). GCC vector extensions, cloned for AVX-512 and AVX2:
 * the values are exact integers whatever the vector width (the product is exact and the one
 * rounding, in the addition of M, is the same IEEE operation), so every clone gives the same
 * bits. */
typedef float v8sf __attribute__((vector_size(32)));
typedef double v8df __attribute__((vector_size(64)));
typedef uint64_t v8du __attribute__((vector_size(64)));

__attribute__((target_clones("avx512f", "avx2", "default")))
static void fixq_add_row(uint64_t *a, const float *x, int d, double scale) {
    int j = 0;
    for (; j + 8 <= d; j += 8) {
        v8sf xf;
        v8du av;
        memcpy(&xf, x + j, sizeof xf);
        memcpy(&av, a + j, sizeof av);
        const v8df v = __builtin_convertvector(xf, v8df) * scale + FIXQ_MAGIC;
        av += (v8du)v;
        memcpy(a + j, &av, sizeof av);
    }
    for (; j < d; j++) a[j] += fixq_bits(x[j], scale);
}

/* Nearest centres of rows i0..i1-1 from dT (K, ld): dT[j·ld + i] = x_i·c_j. For each row the
 * first index of the smallest ‖x‖² − 2 x·c + ‖c‖² (each operation rounded as written), i.e. a
 * strict-< scan in index order; 0 with best = +inf when no distance is below +inf (NaN rows).
 * Four rows at a time, each SIMD lane running that scan for its own row. */
static void nearest_centres(int64_t *lab, float *best, const float *dT, size_t ld, const float *xx,
                            const float *cc, int i0, int i1, int K) {
    int i = i0;
#ifdef __SSE4_1__
    const __m128 two = _mm_set1_ps(2.0f);
    for (; i + 4 <= i1; i += 4) {
        const __m128 vx2 = _mm_loadu_ps(xx + i);
        __m128 vb = _mm_set1_ps(INFINITY);
        __m128i vi = _mm_set1_epi32(-1), cur = _mm_setzero_si128();
        const __m128i one = _mm_set1_epi32(1);
        for (int j = 0; j < K; j++) {
            __m128 t = _mm_sub_ps(vx2, _mm_mul_ps(two, _mm_loadu_ps(dT + (size_t)j * ld + i)));
            t = _mm_add_ps(t, _mm_set1_ps(cc[j]));
            const __m128 lt = _mm_cmplt_ps(t, vb);
            vb = _mm_blendv_ps(vb, t, lt);
            vi = _mm_blendv_epi8(vi, cur, _mm_castps_si128(lt));
            cur = _mm_add_epi32(cur, one);
        }
        int li[4];
        _mm_storeu_ps(best + i, vb);
        _mm_storeu_si128((__m128i *)li, vi);
        for (int l = 0; l < 4; l++) lab[i + l] = li[l] < 0 ? 0 : li[l];
    }
#endif
    for (; i < i1; i++) {
        float b = INFINITY;
        int64_t bj = 0;
        for (int j = 0; j < K; j++) {
            float dist = xx[i] - 2.0f * dT[(size_t)j * ld + i] + cc[j];
            if (dist < b) {   // strict: the lowest index wins a tie
                b = dist;
                bj = j;
            }
        }
        lab[i] = bj;
        best[i] = b;
    }
}

void kmeans_assign_sums_forward_cpu(int64_t *labels, float *mind, int64_t *sums, int64_t *counts,
                                    const float *X, const float *xx, const float *C,
                                    const float *cc, int N, int d, int K, int shift) {
    const int BR = KMEANS_GEMM_ROWS;
    const int nb = (N + BR - 1) / BR, saved = blas_serial_begin();
    const double scale = ldexp(1.0, shift);   // exact: a power of two
    uint64_t *total = sums ? callocCheck((size_t)K * d, sizeof(uint64_t)) : NULL;   // (K,d) bits
    memset(counts, 0, sizeof(int64_t) * (size_t)K);
#pragma omp parallel
    {
        float *dots = mallocCheck(sizeof(float) * (size_t)BR * K);   // (block,K) per thread
        uint64_t *acc = sums ? callocCheck((size_t)K * d, sizeof(uint64_t)) : NULL;   // (K,d)
        int64_t *cnt = callocCheck((size_t)K, sizeof(int64_t));
#pragma omp for schedule(dynamic, 1) nowait
        for (int b = 0; b < nb; b++) {
            const int r0 = b * BR, R = N - r0 < BR ? N - r0 : BR;
            const float *Xb = X + (size_t)r0 * d;   // (R,d)
            // dots (K,R) = C Xbᵀ: column-major (R,K) = Xb Cᵀ (this orientation packs faster)
            cblas_sgemm(CblasColMajor, CblasTrans, CblasNoTrans, R, K, d, 1.0f, Xb, d, C, d, 0.0f,
                        dots, R);
            nearest_centres(labels + r0, mind + r0, dots, (size_t)R, xx + r0, cc, 0, R, K);
            for (int i = 0; i < R; i++) {
                const int64_t bj = labels[r0 + i];
                if (!(mind[r0 + i] > 0.0f)) mind[r0 + i] = 0.0f;
                cnt[bj]++;
                // the row is still in cache from the GEMM
                if (acc) fixq_add_row(acc + (size_t)bj * d, Xb + (size_t)i * d, d, scale);
            }
        }
        // Integer additions: the order in which threads arrive does not change the sums.
#pragma omp critical(kmeans_sums)
        {
            for (int c = 0; c < K; c++) counts[c] += cnt[c];
            if (acc)
                for (size_t e = 0; e < (size_t)K * d; e++) total[e] += acc[e];
        }
        free(dots);
        free(acc);
        free(cnt);
    }
    if (sums)
        for (int c = 0; c < K; c++)
            for (int j = 0; j < d; j++) {
                const size_t e = (size_t)c * d + j;
                sums[e] = (int64_t)(total[e] - (uint64_t)counts[c] * FIXQ_MAGIC_BITS);
            }
    free(total);
    blas_serial_end(saved);
}

void kmeans_centres_forward_cpu(float *C, const int64_t *sums, const int64_t *counts, int K, int d,
                                int shift) {
    const double unscale = ldexp(1.0, -shift);
    for (int c = 0; c < K; c++) {
        if (!counts[c]) continue;
        const double n = (double)counts[c];
        for (int j = 0; j < d; j++) {
            const size_t e = (size_t)c * d + j;
            C[e] = (float)(((double)sums[e] * unscale) / n);
        }
    }
}

int kmeans_fixed_shift(double amax, int64_t n) {
    int e = 0;
    if (amax > 0 && isfinite(amax)) frexp(amax, &e);   // amax < 2^e
    int bits = 0;                                       // n < 2^bits
    while (bits < 62 && ((int64_t)1 << bits) <= n) bits++;
    // |q| <= 2^F and at most n terms: |Σ| <= 2^62 < 2^63 (no overflow in any order); F <= 50
    // keeps each scaled value in the magic-number conversion's range (|v| < 2^51)
    const int F = 62 - bits < 50 ? 62 - bits : 50;
    return F - e;
}
