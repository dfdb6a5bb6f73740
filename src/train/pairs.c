/*
 * pairs.c — builds training and evaluation pairs: the way the reference recipe
 * does (create_pairs() in the Keras mnist_siamese example, and in
 * shared/peers/torch_siamese.py), so accuracies can be compared one to one,
 * and a pairing that keeps every image of an imbalanced set (pairs.h).
 *
 * Recipe: for every usable class d and i < n: the positive pair (x_d[i],
 * x_d[i+1]), then the negative pair (x_d[i], x_e[i]) with e a uniformly random
 * other usable class. The rng is drawn once per negative pair, in that order,
 * which is what makes a seed reproduce the same pairs.
 *
 * Every image: for each anchor in dataset order, one draw for its positive
 * partner, then one for its negative partner, again in a fixed order.
 */
#include "siamese/pairs.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/common.h"

/* Fills first[] (n_classes + 1 offsets) and order[] (n sample indices) so that
 * order[first[c] .. first[c+1]) are the samples of class c in dataset order. */
static void index_by_class(const int *labels, int n, int n_classes, int32_t *first,
                           int32_t *order) {
    for (int c = 0; c <= n_classes; c++)
        first[c] = 0;
    for (int i = 0; i < n; i++)
        first[labels[i] + 1]++;
    for (int c = 0; c < n_classes; c++)
        first[c + 1] += first[c];
    for (int i = 0; i < n; i++)
        order[first[labels[i]]++] = i;
    for (int c = n_classes; c > 0; c--) /* the fill advanced each start to the next one */
        first[c] = first[c - 1];
    first[0] = 0;
}

/* Samples grouped by class, and the classes that can anchor pairs. */
typedef struct {
    int32_t *first; /* n_classes + 1 offsets into order */
    int32_t *order; /* n sample indices, class by class */
    int32_t *usable;
    int n_usable, min_size, skipped, singletons; /* skipped: < 2 samples; singletons: 1 */
} ClassIndex;

static void class_index_free(ClassIndex *ix) {
    free(ix->first);
    free(ix->order);
    free(ix->usable);
}

/* Checks the labels and indexes them; fewer than 2 usable classes is -EINVAL. */
static int class_index_make(const int *labels, int n, int n_classes, ClassIndex *ix, char *err) {
    *ix = (ClassIndex){0};
    if (n < 0 || n_classes < 1)
        return sm_err(err, -EINVAL, "pairs: bad sizes (%d samples, %d classes)", n, n_classes);
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= n_classes)
            return sm_err(err, -EINVAL, "pairs: label %d of sample %d is outside [0, %d)",
                          labels[i], i, n_classes);
    ix->first = malloc(((size_t)n_classes + 1) * sizeof *ix->first);
    ix->order = malloc((n ? (size_t)n : 1) * sizeof *ix->order);
    ix->usable = malloc((size_t)n_classes * sizeof *ix->usable);
    if (!ix->first || !ix->order || !ix->usable) {
        class_index_free(ix);
        return sm_err(err, -ENOMEM, "pairs: out of memory");
    }
    index_by_class(labels, n, n_classes, ix->first, ix->order);
    for (int c = 0; c < n_classes; c++) {
        int size = ix->first[c + 1] - ix->first[c];
        if (size < 2) {
            ix->skipped++;
            ix->singletons += size == 1; /* an absent class is no loss (open-set splits) */
            continue;
        }
        ix->min_size = ix->n_usable == 0 || size < ix->min_size ? size : ix->min_size;
        ix->usable[ix->n_usable++] = c;
    }
    if (ix->n_usable < 2) {
        int u = ix->n_usable;
        class_index_free(ix);
        return sm_err(err, -EINVAL, "pairs: %d class%s with at least 2 samples; 2 are needed", u,
                      u == 1 ? "" : "es");
    }
    return 0;
}

/* The recipe's pairs; p has room for 2 * (min_size - 1) * n_usable. */
static size_t pairs_keras(const ClassIndex *ix, Rng *rng, Pair *p) {
    size_t per = (size_t)ix->min_size - 1, k = 0;
    uint32_t C = (uint32_t)ix->n_usable;
    for (int d = 0; d < ix->n_usable; d++) {
        const int32_t *xd = ix->order + ix->first[ix->usable[d]];
        for (size_t i = 0; i < per; i++) {
            p[k++] = (Pair){xd[i], xd[i + 1], 1.0f};
            int e = (int)(((uint32_t)d + rng_below(rng, C - 1) + 1) % C);
            p[k++] = (Pair){xd[i], ix->order[ix->first[ix->usable[e]] + i], 0.0f};
        }
    }
    return k;
}

/* Every sample of a usable class anchors a positive and a negative pair;
 * rank (n) is scratch. p has room for 2 * n. */
static size_t pairs_all(const ClassIndex *ix, const int *labels, int n, int n_classes,
                        int32_t *rank, Rng *rng, Pair *p) {
    size_t k = 0;
    for (int c = 0; c < n_classes; c++)
        for (int32_t j = ix->first[c]; j < ix->first[c + 1]; j++)
            rank[ix->order[j]] = j - ix->first[c];
    for (int i = 0; i < n; i++) {
        int c = labels[i];
        int32_t start = ix->first[c], size = ix->first[c + 1] - start;
        if (size < 2)
            continue;
        uint32_t r = rng_below(rng, (uint32_t)size - 1);
        r += r >= (uint32_t)rank[i]; /* any other sample of the class */
        p[k++] = (Pair){i, ix->order[start + (int32_t)r], 1.0f};
        uint32_t o = rng_below(rng, (uint32_t)(n - size)); /* any sample of another class */
        p[k++] = (Pair){i, ix->order[o < (uint32_t)start ? o : o + (uint32_t)size], 0.0f};
        assert(labels[p[k - 1].b] != c && labels[p[k - 2].b] == c && p[k - 2].b != i);
    }
    return k;
}

int pairs_make(const int *labels, int n, int n_classes, Rng *rng, Pair **out, size_t *n_out,
               int *n_skipped, char *err) {
    ClassIndex ix;
    int rc = class_index_make(labels, n, n_classes, &ix, err);
    if (rc < 0)
        return rc;
    /* 2*per*C <= 2*n because each usable class holds at least per + 1 samples. */
    size_t total = 2 * ((size_t)ix.min_size - 1) * (size_t)ix.n_usable;
    Pair *p = malloc((total ? total : 1) * sizeof *p);
    if (!p) {
        class_index_free(&ix);
        return sm_err(err, -ENOMEM, "pairs: out of memory for %zu pairs", total);
    }
    size_t made = pairs_keras(&ix, rng, p);
    assert(made == total);
    *out = p;
    *n_out = made;
    if (n_skipped)
        *n_skipped = ix.skipped;
    class_index_free(&ix);
    return 0;
}

const char *pairs_mode_name(PairsMode m) {
    static const char *const names[] = {"auto", "keras", "all"};
    return (unsigned)m < SM_ARRAY_LEN(names) ? names[m] : NULL;
}

/* Samples that appear in at least one of the pairs. */
static int count_used(const Pair *p, size_t np, int n, char *err) {
    uint8_t *seen = calloc(n ? (size_t)n : 1, 1);
    if (!seen)
        return sm_err(err, -ENOMEM, "pairs: out of memory");
    int used = 0;
    for (size_t k = 0; k < np; k++) {
        used += !seen[p[k].a] + (p[k].a != p[k].b && !seen[p[k].b]);
        seen[p[k].a] = seen[p[k].b] = 1;
    }
    free(seen);
    return used;
}

/* Pairs and rank scratch for mode, filled. */
static int pairs_fill(PairsMode mode, int epoch, const ClassIndex *ix, const int *labels, int n,
                      int n_classes, uint64_t seed, Pair **out, size_t *np, char *err) {
    size_t cap =
        mode == PAIRS_KERAS ? 2 * ((size_t)ix->min_size - 1) * (size_t)ix->n_usable : 2 * (size_t)n;
    Pair *p = malloc((cap ? cap : 1) * sizeof *p);
    int32_t *rank = mode == PAIRS_ALL ? malloc((size_t)n * sizeof *rank) : NULL;
    if (!p || (mode == PAIRS_ALL && !rank)) {
        free(p);
        free(rank);
        return sm_err(err, -ENOMEM, "pairs: out of memory for %zu pairs", cap);
    }
    Rng rng;
    /* The recipe's stream is the caller's seed as is (pairs_make() compatible). */
    rng_seed(&rng,
             mode == PAIRS_KERAS ? seed : seed ^ (0x9e3779b97f4a7c15ull * ((uint64_t)epoch + 1)));
    *np = mode == PAIRS_KERAS ? pairs_keras(ix, &rng, p)
                              : pairs_all(ix, labels, n, n_classes, rank, &rng, p);
    assert(*np <= cap);
    free(rank);
    *out = p;
    return 0;
}

int pairs_build(PairsMode mode, int epoch, const int *labels, int n, int n_classes, uint64_t seed,
                Pair **out, PairsInfo *info, char *err) {
    ClassIndex ix;
    if (!pairs_mode_name(mode) || epoch < 0)
        return sm_err(err, -EINVAL, "pairs: bad mode %d or epoch %d", (int)mode, epoch);
    int rc = class_index_make(labels, n, n_classes, &ix, err);
    if (rc < 0)
        return rc;
    double share = (double)ix.n_usable * ix.min_size / n;
    if (mode == PAIRS_AUTO)
        mode = share >= PAIRS_AUTO_MIN_SHARE ? PAIRS_KERAS : PAIRS_ALL;
    Pair *p = NULL;
    size_t np = 0;
    rc = pairs_fill(mode, epoch, &ix, labels, n, n_classes, seed, &p, &np, err);
    class_index_free(&ix);
    if (rc < 0)
        return rc;
    int used = count_used(p, np, n, err);
    if (used < 0) {
        free(p);
        return used;
    }
    *info = (PairsInfo){mode, mode == PAIRS_ALL ? epoch : 0, np, n, used, share, ix.singletons};
    *out = p;
    return 0;
}
