/*
 * candidates.h — the candidate-noun selection of SPEC §4 as TAC's code does it
 * (XLearning-SCU/2024-ICML-TAC @830e02c, filter_nouns.py:51-68), on plain host arrays. The run
 * stage (host/run/stages.c stage_candidates) fits the image centres with kmeans_fit, computes the
 * centre-noun cosines on the run's backend, and calls these three steps:
 *
 *   1. cand_centres_from_labels: centre c = L2-normalised mean of ALL rows of X assigned to c
 *      (filter_nouns.py:51-54), not the k-means centroid trained on the subsample.
 *   2. cand_score (per noun): S_c = cos(centre c, noun) for the kc centres; the noun goes to
 *      argmax_c S_c (= argmax of its softmax, ties to the lowest centre) and its confidence is
 *      P = softmax_c(S)[argmax] = 1 / Σ_c exp(S_c − S_max) (temperature 1, over the centres:
 *      torch.softmax(similarity, dim=0), filter_nouns.py:57-58).
 *   3. cand_select: each centre keeps the γ nouns assigned to it with the highest P
 *      (CAND_RANK_TAC, filter_nouns.py:61-68) or the highest raw cosine (CAND_RANK_COSINE, the
 *      paper's prose "most similar"; [ours], for ablation); the union is the candidate set.
 *      A noun that is about equally close to every centre (a generic noun) has P ≈ 1/kc, the
 *      smallest possible value, so CAND_RANK_TAC drops it whatever its raw cosine.
 *
 * Ties in the ranking go to the lower noun index (TAC's torch.argsort does not define them).
 * Dimension letters: N rows (images), d width, kc centres, Mn nouns in the bank.
 */
#ifndef LAIC_CANDIDATES_H
#define LAIC_CANDIDATES_H

#include <stddef.h>
#include <stdint.h>

typedef enum { CAND_RANK_TAC = 0, CAND_RANK_COSINE } CandRank;

/* "tac" → CAND_RANK_TAC, "cosine" → CAND_RANK_COSINE; -1 for anything else. */
int cand_rank_parse(const char *name);

/* centres (kc,d) = normalised mean of the rows of X (N,d) whose label (N, each in [0,kc)) is c,
 * summed in double in row order. A centre without rows keeps fallback's row c (normalised;
 * TAC's code would produce NaN there [ours]); fallback may be NULL (the row is then zero).
 * Returns the number of such empty centres. */
size_t cand_centres_from_labels(float *centres, const float *X, const int64_t *labels, size_t N,
                                int d, int kc, const float *fallback);

typedef struct {
    size_t idx;      // noun row in the bank
    int centre;      // argmax_c S_c, ties to the lowest centre
    float cosine;    // S at that centre
    double conf;     // P = 1 / Σ_c exp(S_c − S_max), in double
} CandScore;

/* One noun's score from its cosines s (kc) with the centres. */
void cand_score(CandScore *out, const float *s, int kc, size_t idx);

/* Sorts sc (Mn) in place by (centre, rank key descending, idx ascending), sets chosen[idx] = 1
 * (chosen: Mn bytes, zeroed here) for the first gamma nouns of every centre, and returns their
 * number M. After the call, the chosen nouns of a centre are the first entries of its run in sc. */
size_t cand_select(CandScore *sc, size_t Mn, size_t gamma, CandRank rank, uint8_t *chosen);

#endif
