/*
 * pairs.h — labelled pairs exactly as the reference recipe builds them.
 *
 * Let C be the classes with at least 2 samples (others are skipped with a
 * warning) and n = (smallest of their sizes) - 1. For each usable class d (in
 * label order) and i < n: a positive pair (x_d[i], x_d[i+1]) with y = 1, then
 * a negative pair (x_d[i], x_e[i]) with y = 0, where e = (d + r) mod C over the
 * usable classes and r is uniform in 1..C-1 (rng_below(rng, C-1) + 1). x_d[i]
 * is the i-th sample of class d in dataset order. 2*n*C pairs in all.
 */
#ifndef SIAMESE_PAIRS_H
#define SIAMESE_PAIRS_H

#include <stddef.h>
#include <stdint.h>

#include "siamese/rng.h"

typedef struct {
    int32_t a, b; /* sample indices */
    float y;      /* 1 same class, 0 different */
} Pair;

/* labels (n) in [0, n_classes). *out (caller frees with free()) receives
 * *n_out pairs; *n_skipped (may be NULL) the number of classes skipped.
 * Fewer than 2 usable classes is -EINVAL. */
int pairs_make(const int *labels, int n, int n_classes, Rng *rng, Pair **out, size_t *n_out,
               int *n_skipped, char *err);

#endif
