/* candidates.c — see candidates.h. */
#include "cluster/candidates.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/err.h"

int cand_rank_parse(const char *name) {
    if (!strcmp(name, "tac")) return CAND_RANK_TAC;
    if (!strcmp(name, "cosine")) return CAND_RANK_COSINE;
    return -1;
}

size_t cand_centres_from_labels(float *centres, const float *X, const int64_t *labels, size_t N,
                                int d, int kc, const float *fallback) {
    double *sum = callocCheck((size_t)kc * d, sizeof *sum);
    size_t *count = callocCheck((size_t)kc, sizeof *count);
    for (size_t i = 0; i < N; i++) {
        int64_t c = labels[i];
        if (c < 0 || c >= kc) continue;   // callers pass kmeans_fit labels: always in range
        count[c]++;
        double *s = sum + (size_t)c * d;
        const float *x = X + i * (size_t)d;
        for (int e = 0; e < d; e++) s[e] += x[e];
    }
    size_t empty = 0;
    for (int c = 0; c < kc; c++) {
        const double *s = sum + (size_t)c * d;
        float *o = centres + (size_t)c * d;
        double n2 = 0;
        if (count[c]) {
            for (int e = 0; e < d; e++) n2 += s[e] * s[e];
            double inv = n2 > 0 ? 1.0 / sqrt(n2) : 0;   // the mean's scale cancels
            for (int e = 0; e < d; e++) o[e] = (float)(s[e] * inv);
        } else {
            empty++;
            for (int e = 0; e < d; e++) {
                o[e] = fallback ? fallback[(size_t)c * d + e] : 0.f;
                n2 += (double)o[e] * o[e];
            }
            double inv = n2 > 0 ? 1.0 / sqrt(n2) : 0;
            for (int e = 0; e < d; e++) o[e] = (float)(o[e] * inv);
        }
    }
    free(sum);
    free(count);
    return empty;
}

void cand_score(CandScore *out, const float *s, int kc, size_t idx) {
    int best = 0;
    for (int c = 1; c < kc; c++)
        if (s[c] > s[best]) best = c;
    double z = 0;
    for (int c = 0; c < kc; c++) z += exp((double)s[c] - (double)s[best]);
    *out = (CandScore){.idx = idx, .centre = best, .cosine = s[best], .conf = 1.0 / z};
}

static int cmp_tac(const void *a, const void *b) {
    const CandScore *x = a, *y = b;
    if (x->centre != y->centre) return x->centre < y->centre ? -1 : 1;
    if (x->conf != y->conf) return x->conf > y->conf ? -1 : 1;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

static int cmp_cosine(const void *a, const void *b) {
    const CandScore *x = a, *y = b;
    if (x->centre != y->centre) return x->centre < y->centre ? -1 : 1;
    if (x->cosine != y->cosine) return x->cosine > y->cosine ? -1 : 1;
    return x->idx < y->idx ? -1 : (x->idx > y->idx);
}

size_t cand_select(CandScore *sc, size_t Mn, size_t gamma, CandRank rank, uint8_t *chosen) {
    qsort(sc, Mn, sizeof *sc, rank == CAND_RANK_COSINE ? cmp_cosine : cmp_tac);
    memset(chosen, 0, Mn);
    size_t M = 0;
    for (size_t i = 0, run = 0; i < Mn; i++) {
        run = (i > 0 && sc[i].centre == sc[i - 1].centre) ? run + 1 : 0;
        if (run < gamma) {
            chosen[sc[i].idx] = 1;
            M++;
        }
    }
    return M;
}
