/*
 * pairs.c — builds training and evaluation pairs the way the reference recipe
 * does (create_pairs() in the Keras mnist_siamese example, and in
 * shared/peers/torch_siamese.py), so accuracies can be compared one to one.
 *
 * For every usable class d and i < n: the positive pair (x_d[i], x_d[i+1]),
 * then the negative pair (x_d[i], x_e[i]) with e a uniformly random other
 * usable class. The rng is drawn once per negative pair, in that order, which
 * is what makes a seed reproduce the same pairs.
 */
#include "siamese/pairs.h"

#include <stdlib.h>

#include "siamese/common.h"
#include "siamese/log.h"

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

int pairs_make(const int *labels, int n, int n_classes, Rng *rng, Pair **out, size_t *n_out,
               int *n_skipped, char *err) {
    int32_t *first = NULL, *order = NULL, *usable = NULL;
    Pair *p = NULL;
    int rc = 0, n_usable = 0, skipped = 0, min_size = 0;
    if (n < 0 || n_classes < 1)
        return sm_err(err, -EINVAL, "pairs: bad sizes (%d samples, %d classes)", n, n_classes);
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= n_classes)
            return sm_err(err, -EINVAL, "pairs: label %d of sample %d is outside [0, %d)",
                          labels[i], i, n_classes);
    first = malloc(((size_t)n_classes + 1) * sizeof *first);
    order = malloc((n ? (size_t)n : 1) * sizeof *order);
    usable = malloc((size_t)n_classes * sizeof *usable);
    if (!first || !order || !usable) {
        rc = sm_err(err, -ENOMEM, "pairs: out of memory");
        goto out;
    }
    index_by_class(labels, n, n_classes, first, order);
    for (int c = 0; c < n_classes; c++) {
        int size = first[c + 1] - first[c];
        if (size < 2) {
            log_warn("pairs: class %d has %d sample%s, skipped", c, size, size == 1 ? "" : "s");
            skipped++;
            continue;
        }
        min_size = n_usable == 0 || size < min_size ? size : min_size;
        usable[n_usable++] = c;
    }
    if (n_usable < 2) {
        rc = sm_err(err, -EINVAL, "pairs: %d class%s with at least 2 samples; 2 are needed",
                    n_usable, n_usable == 1 ? "" : "es");
        goto out;
    }
    /* 2*per*C <= 2*n because each usable class holds at least per + 1 samples. */
    size_t per = (size_t)min_size - 1, total = 2 * per * (size_t)n_usable, k = 0;
    p = malloc(total * sizeof *p);
    if (!p) {
        rc = sm_err(err, -ENOMEM, "pairs: out of memory for %zu pairs", total);
        goto out;
    }
    for (int d = 0; d < n_usable; d++) {
        const int32_t *xd = order + first[usable[d]];
        for (size_t i = 0; i < per; i++) {
            p[k++] = (Pair){xd[i], xd[i + 1], 1.0f};
            int e = (int)(((uint32_t)d + rng_below(rng, (uint32_t)n_usable - 1) + 1) %
                          (uint32_t)n_usable);
            p[k++] = (Pair){xd[i], order[first[usable[e]] + i], 0.0f};
        }
    }
    *out = p;
    *n_out = total;
    if (n_skipped)
        *n_skipped = skipped;
    p = NULL;
out:
    free(p);
    free(first);
    free(order);
    free(usable);
    return rc;
}
