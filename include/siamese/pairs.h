/*
 * pairs.h — labelled pairs: the reference recipe's, and a pairing that uses
 * every image.
 *
 * The recipe (PAIRS_KERAS, pairs_make()): let C be the classes with at least 2 samples (others are
 * skipped with a warning) and n = (smallest of their sizes) - 1. For each usable class d (in label
 * order) and i < n: a positive pair (x_d[i], x_d[i+1]) with y = 1, then a negative pair (x_d[i],
 * x_e[i]) with y = 0, where e = (d + r) mod C over the usable classes and r is uniform in 1..C-1
 * (rng_below(rng, C-1) + 1). x_d[i] is the i-th sample of class d in dataset order. 2*n*C pairs in
 * all. Every class is cut to the smallest one: one class of 8 images leaves 7 pairs of each kind
 * per class however large the others are.
 *
 * Every image (PAIRS_ALL): each sample of a class with at least 2 samples
 * anchors one positive pair (with a uniformly drawn other sample of its
 * class) and one negative pair (with a uniformly drawn sample of any other
 * class), in dataset order; 2 * (anchors) pairs, half of each kind. The draws
 * depend on the seed and the epoch, so the trainer redraws them each epoch.
 *
 * PAIRS_AUTO picks the recipe when it keeps at least PAIRS_AUTO_MIN_SHARE of
 * the samples in some pair (the packaged Fashion-MNIST: all of them, so its
 * figures stay comparable with the reference), and every image otherwise.
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

typedef enum { PAIRS_AUTO, PAIRS_KERAS, PAIRS_ALL } PairsMode;

#define PAIRS_AUTO_MIN_SHARE 0.9

typedef struct {
    PairsMode mode;      /* as resolved: PAIRS_KERAS or PAIRS_ALL */
    int epoch;           /* the epoch these pairs were drawn for (PAIRS_KERAS: always 0) */
    size_t n;            /* pairs made (half positive) */
    int samples;         /* samples given */
    int used;            /* samples in at least one pair */
    double keras_share;  /* share of the samples the recipe keeps in pairs */
    int classes_skipped; /* classes of 1 sample: they anchor no pair (absent ones are not counted)
                          */
} PairsInfo;

/* "auto", "keras", "all"; NULL for anything else. */
const char *pairs_mode_name(PairsMode m);

/* The pairs of labels (n) in [0, n_classes) as mode says, for epoch (PAIRS_ALL
 * only: each epoch its own draws; the recipe's pairs do not change). The same
 * (mode, epoch, labels, seed) always gives the same pairs; PAIRS_KERAS with
 * seed s is pairs_make() with an Rng seeded with s. *out (caller frees with
 * free()) receives info->n pairs; info must not be NULL. Fewer than 2 classes
 * with 2 or more samples is -EINVAL, as is a bad mode. */
int pairs_build(PairsMode mode, int epoch, const int *labels, int n, int n_classes, uint64_t seed,
                Pair **out, PairsInfo *info, char *err);

/* labels (n) in [0, n_classes). *out (caller frees with free()) receives
 * *n_out pairs; *n_skipped (may be NULL) the number of classes skipped.
 * Fewer than 2 usable classes is -EINVAL. */
int pairs_make(const int *labels, int n, int n_classes, Rng *rng, Pair **out, size_t *n_out,
               int *n_skipped, char *err);

#endif
