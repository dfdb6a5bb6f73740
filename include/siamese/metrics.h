/*
 * metrics.h — verification quality from pair distances.
 *
 * A pair is predicted "same" when its distance is < threshold. Scores are
 * negated distances: ROC AUC is the probability that a random positive pair is
 * closer than a random negative one (ties count half). EER is the error rate
 * where false accepts equal false rejects (interpolated). TAR at FAR f is the
 * largest fraction of positives accepted by a threshold that accepts at most
 * a fraction f of negatives.
 */
#ifndef SIAMESE_METRICS_H
#define SIAMESE_METRICS_H

#include <stddef.h>

/* A TAR at FAR f rests on the f * negatives most similar negative pairs: below
 * METRICS_MIN_FALSE_ACCEPTS of them it is noise (TAR@FAR 1e-3 from 90
 * negatives is set by the single closest one), and reports mark it. */
#define METRICS_MIN_FALSE_ACCEPTS 5

typedef struct {
    size_t pairs;
    size_t positives, negatives;
    double accuracy;            /* at the given fixed threshold (0.5 in the reference) */
    double accuracy_calibrated; /* at the calibrated threshold */
    double roc_auc;
    double eer;
    double tar_at_far_1e2;
    double tar_at_far_1e3;
} Metrics;

/* dist (n), y (n; 1 same, 0 different). Needs at least one pair of each kind
 * for AUC/EER/TAR (else those are NaN). Returns -ENOMEM or 0. */
int metrics_compute(const float *dist, const float *y, size_t n, float threshold,
                    float threshold_calibrated, Metrics *out);

/* The threshold that maximises accuracy on these pairs: the midpoint between
 * two consecutive sorted distances, or just below the smallest / just above
 * the largest (ties broken toward the smaller threshold). NaN distances are
 * never accepted; with none but NaN (or n == 0) *threshold is NaN.
 * Returns -ENOMEM or 0. */
/* Whether m has enough negatives for its TAR at FAR far to mean something. */
int metrics_tar_reliable(const Metrics *m, double far);

int metrics_calibrate(const float *dist, const float *y, size_t n, float *threshold);

#endif
