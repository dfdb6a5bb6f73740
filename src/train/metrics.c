/*
 * metrics.c — verification quality from pair distances: accuracy at a
 * threshold, ROC AUC, EER, TAR at fixed FARs, and the accuracy-maximising
 * threshold.
 *
 * Everything but accuracy works on the pairs sorted by distance and cut into
 * groups of equal distance. A threshold t accepts the pairs with dist < t, so
 * the only thresholds that matter are "below the first group" and "just after
 * group g", and ties always fall on the same side. The ROC is the walk over
 * those cut points: before any group nothing is accepted (FAR 0, FRR 1), after
 * the last everything is (FAR 1, FRR 0).
 *
 * A NaN distance (a diverged model) is never accepted, since NaN < t is
 * false; for AUC, EER and TAR it sorts after every number, as the farthest
 * pair, and calibration leaves it out of the candidate thresholds.
 */
#include "siamese/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

typedef struct {
    float d;
    int pos; /* 1 same class, 0 different */
} Scored;

static int cmp_scored(const void *a, const void *b) {
    float x = ((const Scored *)a)->d, y = ((const Scored *)b)->d;
    if (isnan(x) || isnan(y))
        return isnan(x) - isnan(y);
    return (x > y) - (x < y);
}

/* A sorted copy, with *P and *N the counts of positives and negatives. */
static Scored *scored_sort(const float *dist, const float *y, size_t n, size_t *P, size_t *N) {
    Scored *s = malloc((n ? n : 1) * sizeof *s);
    if (!s)
        return NULL;
    *P = *N = 0;
    for (size_t i = 0; i < n; i++) {
        s[i] = (Scored){dist[i], y[i] > 0.5f};
        *P += (size_t)s[i].pos;
    }
    *N = n - *P;
    qsort(s, n, sizeof *s, cmp_scored);
    return s;
}

/* The end of the group of equal distances starting at i. */
static size_t group_end(const Scored *s, size_t n, size_t i) {
    size_t j = i + 1;
    while (j < n && cmp_scored(&s[i], &s[j]) == 0)
        j++;
    return j;
}

static double accuracy_at(const float *dist, const float *y, size_t n, float t) {
    if (n == 0)
        return NAN;
    size_t ok = 0;
    for (size_t i = 0; i < n; i++)
        ok += (dist[i] < t) == (y[i] > 0.5f);
    return (double)ok / (double)n;
}

/* Mann–Whitney U / (P N) with ties counted half, which is what the rank-sum
 * with average ranks gives; counting per group avoids the rank arithmetic. */
static double roc_auc(const Scored *s, size_t n, size_t P, size_t N) {
    double u = 0;
    size_t neg_before = 0;
    for (size_t i = 0, j; i < n; i = j) {
        j = group_end(s, n, i);
        size_t gp = 0;
        for (size_t k = i; k < j; k++)
            gp += (size_t)s[k].pos;
        size_t gn = (j - i) - gp;
        u += (double)gp * ((double)(N - neg_before - gn) + 0.5 * (double)gn);
        neg_before += gn;
    }
    return u / ((double)P * (double)N);
}

/* Walks the ROC cut points once: the EER where FAR - FRR changes sign
 * (linearly interpolated between the two cut points), and TAR at two FARs. */
static void roc_walk(const Scored *s, size_t n, size_t P, size_t N, Metrics *m) {
    const double fars[2] = {1e-2, 1e-3};
    double *tars[2] = {&m->tar_at_far_1e2, &m->tar_at_far_1e3};
    double far = 0, frr = 1;
    size_t acc_pos = 0, acc_neg = 0;
    m->eer = NAN;
    for (int f = 0; f < 2; f++)
        *tars[f] = 0; /* the cut before the first group: accepts nothing */
    for (size_t i = 0, j; i < n; i = j) {
        j = group_end(s, n, i);
        for (size_t k = i; k < j; k++)
            *(s[k].pos ? &acc_pos : &acc_neg) += 1;
        double far1 = (double)acc_neg / (double)N, frr1 = 1.0 - (double)acc_pos / (double)P;
        if (isnan(m->eer) && far1 - frr1 >= 0) {
            double a = (frr - far) / ((far1 - frr1) - (far - frr));
            m->eer = far + a * (far1 - far);
        }
        for (int f = 0; f < 2; f++) /* slack: 1e-2 * N is rounded, N / 100 must pass */
            if ((double)acc_neg <= fars[f] * (double)N * (1 + 1e-12))
                *tars[f] = 1.0 - frr1;
        far = far1;
        frr = frr1;
    }
}

int metrics_compute(const float *dist, const float *y, size_t n, float threshold,
                    float threshold_calibrated, Metrics *out) {
    size_t P, N;
    *out = (Metrics){.pairs = n};
    out->accuracy = accuracy_at(dist, y, n, threshold);
    out->accuracy_calibrated = accuracy_at(dist, y, n, threshold_calibrated);
    out->roc_auc = out->eer = out->tar_at_far_1e2 = out->tar_at_far_1e3 = NAN;
    Scored *s = scored_sort(dist, y, n, &P, &N);
    if (!s)
        return -ENOMEM;
    out->positives = P;
    out->negatives = N;
    if (P > 0 && N > 0) {
        out->roc_auc = roc_auc(s, n, P, N);
        roc_walk(s, n, P, N, out);
    }
    free(s);
    return 0;
}

/* A float strictly between a < b, and for adjacent floats b itself (dist < b
 * still accepts a and rejects b). */
static float midpoint(float a, float b) {
    float m = (float)(((double)a + (double)b) / 2);
    return m > a ? m : b;
}

int metrics_calibrate(const float *dist, const float *y, size_t n, float *threshold) {
    size_t P, N;
    Scored *s = scored_sort(dist, y, n, &P, &N);
    if (!s)
        return -ENOMEM;
    size_t m = n; /* the non-NaN prefix; NaN pairs are always rejected */
    while (m > 0 && isnan(s[m - 1].d))
        m--;
    if (m == 0) { /* nothing to separate: every threshold rejects everything */
        *threshold = NAN;
        free(s);
        return 0;
    }
    /* correct = accepted positives + rejected negatives; start with none accepted. */
    size_t correct = N, best = N;
    float best_t = nextafterf(s[0].d, -INFINITY);
    for (size_t i = 0, j; i < m; i = j) {
        j = group_end(s, m, i);
        for (size_t k = i; k < j; k++)
            correct = s[k].pos ? correct + 1 : correct - 1;
        float t = j < m ? midpoint(s[i].d, s[j].d) : nextafterf(s[i].d, INFINITY);
        if (correct > best && isfinite(t)) {
            best = correct;
            best_t = t;
        }
    }
    *threshold = best_t;
    free(s);
    return 0;
}

int metrics_tar_reliable(const Metrics *m, double far) {
    return (double)m->negatives * far >= METRICS_MIN_FALSE_ACCEPTS * (1 - 1e-9);
}
