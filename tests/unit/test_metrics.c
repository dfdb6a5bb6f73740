/*
 * test_metrics.c — metrics_compute() and metrics_calibrate() on cases worked
 * out by hand, plus random data (with many ties) checked against brute-force
 * O(n^2) / O(n * thresholds) references written independently of the
 * sort-and-sweep implementation.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>

#include "siamese/metrics.h"
#include "siamese/rng.h"

#include "check_util.h"

#define EPS 1e-9

static Metrics run(const float *d, const float *y, size_t n, float thr) {
    Metrics m;
    ck_assert_int_eq(metrics_compute(d, y, n, thr, thr, &m), 0);
    ck_assert_uint_eq(m.pairs, n);
    ck_assert_uint_eq(m.positives + m.negatives, n);
    return m;
}

START_TEST(perfect_separation) {
    const float d[] = {0.1f, 0.9f, 0.2f, 0.8f}, y[] = {1, 0, 1, 0};
    Metrics m = run(d, y, 4, 0.5f);
    ck_assert_uint_eq(m.positives, 2);
    ck_assert_uint_eq(m.negatives, 2);
    ck_assert(!metrics_tar_reliable(&m, 1e-2));
    m.negatives = 500; /* 5 false accepts at 1e-2, 0.5 at 1e-3 */
    ck_assert(metrics_tar_reliable(&m, 1e-2));
    ck_assert(!metrics_tar_reliable(&m, 1e-3));
    m.negatives = 4999;
    ck_assert(!metrics_tar_reliable(&m, 1e-3));
    m.negatives = 5000;
    ck_assert(metrics_tar_reliable(&m, 1e-3));
    ck_assert_double_eq_tol(m.roc_auc, 1.0, EPS);
    ck_assert_double_eq_tol(m.eer, 0.0, EPS);
    ck_assert_double_eq_tol(m.accuracy, 1.0, EPS);
    ck_assert_double_eq_tol(m.tar_at_far_1e2, 1.0, EPS);
    ck_assert_double_eq_tol(m.tar_at_far_1e3, 1.0, EPS);
}
END_TEST

START_TEST(reversed) {
    const float d[] = {0.9f, 0.1f, 0.8f, 0.2f}, y[] = {1, 0, 1, 0};
    Metrics m = run(d, y, 4, 0.5f);
    ck_assert_double_eq_tol(m.roc_auc, 0.0, EPS);
    ck_assert_double_eq_tol(m.eer, 1.0, EPS);
    ck_assert_double_eq_tol(m.accuracy, 0.0, EPS);
    ck_assert_double_eq_tol(m.tar_at_far_1e2, 0.0, EPS);
}
END_TEST

START_TEST(all_tied) {
    const float d[] = {0.4f, 0.4f, 0.4f, 0.4f, 0.4f}, y[] = {1, 0, 1, 0, 0};
    Metrics m = run(d, y, 5, 0.5f);
    ck_assert_double_eq_tol(m.roc_auc, 0.5, EPS);
    ck_assert_double_eq_tol(m.eer, 0.5, EPS);
    ck_assert_double_eq_tol(m.accuracy, 0.4, EPS); /* all accepted: 2 of 5 right */
    ck_assert_double_eq_tol(m.tar_at_far_1e2, 0.0, EPS);
}
END_TEST

/* Sorted: 0.1+ 0.2- 0.3+ 0.5+ 0.6- 0.7+ 0.8- 0.9-.
 * AUC: negatives beyond each positive 4+3+3+2 = 12 of 16.
 * ROC cuts (FAR, FRR): (0,1) (0,.75) (.25,.75) (.25,.5) (.25,.25) -> EER .25.
 * FAR 0 is only reached before 0.2: TAR .25. At 0.5: 5 of 8 right. */
START_TEST(hand_example) {
    const float d[] = {0.1f, 0.3f, 0.5f, 0.7f, 0.2f, 0.6f, 0.8f, 0.9f};
    const float y[] = {1, 1, 1, 1, 0, 0, 0, 0};
    Metrics m = run(d, y, 8, 0.5f);
    ck_assert_double_eq_tol(m.roc_auc, 0.75, EPS);
    ck_assert_double_eq_tol(m.eer, 0.25, EPS);
    ck_assert_double_eq_tol(m.tar_at_far_1e2, 0.25, EPS);
    ck_assert_double_eq_tol(m.tar_at_far_1e3, 0.25, EPS);
    ck_assert_double_eq_tol(m.accuracy, 0.625, EPS);
}
END_TEST

/* Positives .1 .2 .4, negatives .3 .5. Cuts (FAR, FRR): (0,1) (0,2/3) (0,1/3)
 * (1/2,1/3): FAR - FRR goes -1/3 -> +1/6, so 2/3 of the way: EER = 1/3. */
START_TEST(eer_interpolated) {
    const float d[] = {0.1f, 0.2f, 0.4f, 0.3f, 0.5f}, y[] = {1, 1, 1, 0, 0};
    Metrics m = run(d, y, 5, 0.5f);
    ck_assert_double_eq_tol(m.eer, 1.0 / 3, EPS);
    ck_assert_double_eq_tol(m.roc_auc, 5.0 / 6, EPS); /* 2 + 2 + 1 of 6 */
    ck_assert_double_eq_tol(m.tar_at_far_1e2, 2.0 / 3, EPS);
}
END_TEST

/* One negative in 100 is close: FAR 1e-2 may accept it (and the positives up
 * to 0.3), FAR 1e-3 may not (only 0.1). */
START_TEST(tar_at_far) {
    float d[104], y[104];
    for (int i = 0; i < 100; i++)
        d[i] = i == 0 ? 0.15f : 0.9f, y[i] = 0;
    const float pd[4] = {0.1f, 0.2f, 0.3f, 0.95f};
    for (int i = 0; i < 4; i++)
        d[100 + i] = pd[i], y[100 + i] = 1;
    Metrics m = run(d, y, 104, 0.5f);
    ck_assert_double_eq_tol(m.tar_at_far_1e2, 0.75, EPS);
    ck_assert_double_eq_tol(m.tar_at_far_1e3, 0.25, EPS);
}
END_TEST

START_TEST(one_kind_only) {
    const float d[] = {0.1f, 0.7f}, y[] = {1, 1};
    Metrics m = run(d, y, 2, 0.5f);
    ck_assert(isnan(m.roc_auc) && isnan(m.eer) && isnan(m.tar_at_far_1e2));
    ck_assert_double_eq_tol(m.accuracy, 0.5, EPS);
    m = run(d, y, 0, 0.5f);
    ck_assert(isnan(m.accuracy) && isnan(m.roc_auc));
}
END_TEST

START_TEST(nan_distance) {
    const float d[] = {0.1f, NAN, 0.9f, 0.2f}, y[] = {1, 1, 0, 0};
    Metrics m = run(d, y, 4, 0.5f);
    ck_assert_double_eq_tol(m.accuracy, 0.5, EPS); /* the NaN positive is rejected */
    /* NaN as the farthest: 0.1+ beats both negatives, NaN+ beats none. */
    ck_assert_double_eq_tol(m.roc_auc, 0.5, EPS);
    float t;
    ck_assert_int_eq(metrics_calibrate(d, y, 4, &t), 0);
    ck_assert(t > 0.1f && t <= 0.2f);
}
END_TEST

START_TEST(calibrate_simple) {
    const float d[] = {0.1f, 0.3f, 0.5f, 0.7f, 0.2f, 0.6f, 0.8f, 0.9f};
    const float y[] = {1, 1, 1, 1, 0, 0, 0, 0};
    float t;
    /* 6 of 8 right either between .5/.6 or .7/.8: the smaller one wins. */
    ck_assert_int_eq(metrics_calibrate(d, y, 8, &t), 0);
    ck_assert_float_eq_tol(t, 0.55f, 1e-6f);
    Metrics m;
    ck_assert_int_eq(metrics_compute(d, y, 8, 0.5f, t, &m), 0);
    ck_assert_double_eq_tol(m.accuracy_calibrated, 0.75, EPS);

    const float d2[] = {0.2f, 0.4f, 0.6f}, y_neg[] = {0, 0, 0}, y_pos[] = {1, 1, 1};
    ck_assert_int_eq(metrics_calibrate(d2, y_neg, 3, &t), 0);
    ck_assert(t <= 0.2f); /* below the minimum: reject all */
    ck_assert_int_eq(metrics_calibrate(d2, y_pos, 3, &t), 0);
    ck_assert(t > 0.6f); /* above the maximum: accept all */
    ck_assert_int_eq(metrics_calibrate(d2, y_pos, 0, &t), 0);
    ck_assert(isnan(t));
}
END_TEST

/* ---- brute-force references ---------------------------------------------- */

static double brute_auc(const float *d, const float *y, size_t n) {
    double u = 0, pairs = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            if (y[i] == 1 && y[j] == 0) {
                u += d[i] < d[j] ? 1 : d[i] == d[j] ? 0.5 : 0;
                pairs++;
            }
    return u / pairs;
}

static void rates(const float *d, const float *y, size_t n, float t, double *far, double *tar,
                  double *acc) {
    double P = 0, N = 0, fa = 0, ta = 0, ok = 0;
    for (size_t i = 0; i < n; i++) {
        int acc_i = d[i] < t, pos = y[i] == 1;
        P += pos;
        N += !pos;
        fa += acc_i && !pos;
        ta += acc_i && pos;
        ok += acc_i == pos;
    }
    *far = fa / N;
    *tar = ta / P;
    *acc = ok / (double)n;
}

START_TEST(random_vs_brute_force) {
    enum { N = 300 };
    float d[N], y[N];
    Rng r;
    rng_seed(&r, 42 + (uint64_t)_i);
    for (size_t i = 0; i < N; i++) {
        y[i] = (float)(rng_below(&r, 3) == 0);
        /* Coarse values so that ties are common; positives a little closer. */
        d[i] = (float)(rng_below(&r, 20) + (y[i] == 1 ? 0 : 4)) / 16.0f;
    }
    Metrics m;
    float tc;
    ck_assert_int_eq(metrics_calibrate(d, y, N, &tc), 0);
    ck_assert_int_eq(metrics_compute(d, y, N, 0.5f, tc, &m), 0);
    ck_assert_double_eq_tol(m.roc_auc, brute_auc(d, y, N), 1e-12);

    /* Every threshold that matters: each value, just above each value. */
    double best_acc = 0, tar2 = 0, tar3 = 0, minmax = 1, maxmin = 0;
    for (size_t i = 0; i < 2 * N + 1; i++) {
        float t = i == 2 * N ? -1.0f : i < N ? d[i] : nextafterf(d[i - N], INFINITY);
        double far, tar, acc;
        rates(d, y, N, t, &far, &tar, &acc);
        best_acc = fmax(best_acc, acc);
        if (far <= 1e-2)
            tar2 = fmax(tar2, tar);
        if (far <= 1e-3)
            tar3 = fmax(tar3, tar);
        minmax = fmin(minmax, fmax(far, 1 - tar));
        maxmin = fmax(maxmin, fmin(far, 1 - tar));
    }
    ck_assert_double_eq_tol(m.accuracy_calibrated, best_acc, 1e-12);
    ck_assert_double_eq_tol(m.tar_at_far_1e2, tar2, 1e-12);
    ck_assert_double_eq_tol(m.tar_at_far_1e3, tar3, 1e-12);
    /* The crossing lies between the best cut on either side of it. */
    ck_assert(m.eer <= minmax + 1e-12 && m.eer >= maxmin - 1e-12);
    ck_assert(m.roc_auc > 0.5 && m.roc_auc < 1.0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("metrics");
    tcase_add_test(tc, perfect_separation);
    tcase_add_test(tc, reversed);
    tcase_add_test(tc, all_tied);
    tcase_add_test(tc, hand_example);
    tcase_add_test(tc, eer_interpolated);
    tcase_add_test(tc, tar_at_far);
    tcase_add_test(tc, one_kind_only);
    tcase_add_test(tc, nan_distance);
    tcase_add_test(tc, calibrate_simple);
    tcase_add_loop_test(tc, random_vs_brute_force, 0, 20);
    suite_add_tcase(s, tc);
    return check_run(s);
}
