/*
 * report_fixture.h — the run and sweep directories the report tests read (test_report.c,
 * test_report_browser.c), each made once per test process by running the built laic:
 *   image run    CIFAR-10-format images in three saturated colours (magenta, cyan, yellow: colours
 *                report.html itself never uses, so a screenshot shows where the montages are),
 *                hostile class names, tiny random model, ridge.save_c, [published] numbers;
 *                needs WordNet (wordnet-base) for the noun bank;
 *   planted run  precomputed planted features (K = 5) with hostile noun names: no images;
 *   big run      precomputed planted features with K = 120 clusters (paged, compact panels);
 *   trained run  precomputed planted features (K = 4), method ours (one epoch of prompt learning
 *                with the tiny random model): panels of the learned centres;
 *   sweep        ridge.lambda × run.seed over the planted features (6 points).
 * Each getter returns the directory, or NULL with the reason in why (the caller SKIPs or fails).
 */
#ifndef LAIC_TEST_REPORT_FIXTURE_H
#define LAIC_TEST_REPORT_FIXTURE_H

#include <stddef.h>

enum { FIX_IMG_K = 3, FIX_PLANTED_K = 5, FIX_BIG_K = 120, FIX_SWEEP_POINTS = 6 };

const char *fix_image_run(char *why, size_t n);
const char *fix_planted_run(char *why, size_t n);
const char *fix_big_run(char *why, size_t n);
const char *fix_trained_run(char *why, size_t n);
const char *fix_sweep(char *why, size_t n);

/* Occurrences of needle in hay. */
int fix_count(const char *hay, const char *needle);
/* The bytes of a base64 text up to its first character outside the alphabet (malloc'd). */
unsigned char *fix_base64_decode(const char *s, size_t *n);

#endif
