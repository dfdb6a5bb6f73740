/*
 * test_optable.c — unit tests for the operating-point table (optable.h):
 * counts at the grid points, the threshold of a target FAR, the smallest
 * rate supported, the estimated rates at a distance (exact at the rare-error
 * end, interpolated beyond), the JSON round trip, and refusal of malformed
 * tables and of pair sets without both kinds.
 *
 * The pairs: 100 different ones at 1.00, 1.01, ..., 1.99 and 50 same ones at
 * 0.00, 0.02, ..., 0.98.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check_util.h"
#include "siamese/common.h"
#include "siamese/optable.h"

#define NNEG 100
#define NPOS 50

static OpTable *fixture(void) {
    float d[NNEG + NPOS], y[NNEG + NPOS];
    for (int i = 0; i < NNEG; i++)
        d[i] = 1.0f + 0.01f * (float)i, y[i] = 0;
    for (int i = 0; i < NPOS; i++)
        d[NNEG + i] = 0.02f * (float)i, y[NNEG + i] = 1;
    OpTable *t = NULL;
    char err[SM_ERRMAX];
    ck_assert_int_eq(optable_build(d, y, NNEG + NPOS, "validation", &t, err), 0);
    return t;
}

START_TEST(test_counts_and_far) {
    OpTable *t = fixture();
    char err[SM_ERRMAX];
    float thr;
    double fa, fr;
    ck_assert_int_eq(optable_positives(t), NPOS);
    ck_assert_int_eq(optable_negatives(t), NNEG);
    ck_assert_str_eq(optable_source(t), "validation");
    ck_assert_int_gt(optable_points(t), OPTABLE_EXACT);
    ck_assert_int_le(optable_points(t), OPTABLE_MAX_POINTS);
    ck_assert_double_eq_tol(optable_min_far(t), 0.01, 1e-15);
    /* FAR 5 %: at most 5 of the 100 different pairs accepted; the largest
     * such threshold lies just above the fifth (1.04). */
    ck_assert_int_eq(optable_threshold_at_far(t, 0.05, &thr, &fa, &fr, err), 0);
    ck_assert_float_gt(thr, 1.04f);
    ck_assert_float_le(thr, 1.05f);
    ck_assert_double_eq_tol(fa, 0.05, 1e-12);
    ck_assert_double_eq_tol(fr, 0.0, 1e-12);
    /* The smallest rate: one false accept. */
    ck_assert_int_eq(optable_threshold_at_far(t, 0.01, &thr, &fa, NULL, err), 0);
    ck_assert_float_gt(thr, 1.0f);
    ck_assert_float_le(thr, 1.01f);
    ck_assert_double_eq_tol(fa, 0.01, 1e-12);
    /* Below it: refused, naming the smallest supported rate. */
    ck_assert_int_eq(optable_threshold_at_far(t, 0.009, &thr, NULL, NULL, err), -ERANGE);
    ck_assert_ptr_nonnull(strstr(err, "0.01"));
    ck_assert_int_eq(optable_threshold_at_far(t, 0, &thr, NULL, NULL, err), -EINVAL);
    ck_assert_int_eq(optable_threshold_at_far(t, 1.5, &thr, NULL, NULL, err), -EINVAL);
    ck_assert_int_eq(optable_threshold_at_far(t, NAN, &thr, NULL, NULL, err), -EINVAL);
    /* FAR 1: every pair accepted, nothing rejected. */
    ck_assert_int_eq(optable_threshold_at_far(t, 1.0, &thr, &fa, &fr, err), 0);
    ck_assert_double_eq_tol(fa, 1.0, 1e-12);
    ck_assert_double_eq_tol(fr, 0.0, 1e-12);
    optable_free(t);
}
END_TEST

START_TEST(test_rates_at) {
    OpTable *t = fixture();
    double far, frr;
    /* Exact where the grid has every pair: 11 different pairs below 1.105,
     * 24 same pairs at 0.51 or farther. */
    optable_rates_at(t, 1.105f, &far, &frr);
    ck_assert_double_eq_tol(far, 0.11, 1e-12);
    ck_assert_double_eq_tol(frr, 0.0, 1e-12);
    optable_rates_at(t, 0.51f, &far, &frr);
    ck_assert_double_eq_tol(far, 0.0, 1e-12);
    ck_assert_double_eq_tol(frr, 24.0 / NPOS, 1e-12);
    /* Interpolated in the middle: 51 of 100 below 1.505, within a point. */
    optable_rates_at(t, 1.505f, &far, &frr);
    ck_assert_double_le(fabs(far - 0.51), 0.015);
    /* The ends. */
    optable_rates_at(t, 0.0f, &far, &frr);
    ck_assert_double_eq_tol(far, 0.0, 1e-12);
    ck_assert_double_eq_tol(frr, 1.0, 1e-12);
    optable_rates_at(t, 5.0f, &far, &frr);
    ck_assert_double_eq_tol(far, 1.0, 1e-12);
    ck_assert_double_eq_tol(frr, 0.0, 1e-12);
    optable_free(t);
}
END_TEST

START_TEST(test_json_round_trip) {
    OpTable *t = fixture(), *u = NULL;
    char err[SM_ERRMAX];
    char *s = optable_to_json(t);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(optable_parse(s, &u, err), 0);
    ck_assert_int_eq(optable_points(u), optable_points(t));
    ck_assert_str_eq(optable_source(u), "validation");
    for (float d = 0; d < 2.2f; d += 0.013f) {
        double a1, r1, a2, r2;
        optable_rates_at(t, d, &a1, &r1);
        optable_rates_at(u, d, &a2, &r2);
        ck_assert_double_eq(a1, a2);
        ck_assert_double_eq(r1, r2);
    }
    float t1, t2;
    ck_assert_int_eq(optable_threshold_at_far(t, 0.03, &t1, NULL, NULL, err), 0);
    ck_assert_int_eq(optable_threshold_at_far(u, 0.03, &t2, NULL, NULL, err), 0);
    ck_assert_float_eq(t1, t2);
    OpTable *c = optable_dup(u);
    ck_assert_int_eq(optable_negatives(c), NNEG);
    optable_free(c);
    optable_free(u);
    free(s);
    optable_free(t);
}
END_TEST

START_TEST(test_parse_refuses) {
    static const char *const bad[] = {
        "",
        "[]",
        "{}",
        "{\"source\":\"v\",\"positives\":1,\"negatives\":1,\"threshold\":[0,1],"
        "\"false_accepts\":[0,1],\"false_rejects\":[1]}",
        /* thresholds not increasing */
        "{\"source\":\"v\",\"positives\":1,\"negatives\":1,\"threshold\":[1,0],"
        "\"false_accepts\":[0,1],\"false_rejects\":[1,0]}",
        /* more false accepts than negatives */
        "{\"source\":\"v\",\"positives\":1,\"negatives\":1,\"threshold\":[0,1],"
        "\"false_accepts\":[0,2],\"false_rejects\":[1,0]}",
        /* false rejects growing with the threshold */
        "{\"source\":\"v\",\"positives\":2,\"negatives\":1,\"threshold\":[0,1],"
        "\"false_accepts\":[0,1],\"false_rejects\":[1,2]}",
        /* a fraction, a negative count */
        "{\"source\":\"v\",\"positives\":1,\"negatives\":1,\"threshold\":[0,1],"
        "\"false_accepts\":[0,0.5],\"false_rejects\":[1,0]}",
        "{\"source\":\"v\",\"positives\":1,\"negatives\":-1,\"threshold\":[0,1],"
        "\"false_accepts\":[0,0],\"false_rejects\":[1,0]}",
        "{\"source\":\"v\",\"positives\":1,\"negatives\":1,\"threshold\":[0,\"x\"],"
        "\"false_accepts\":[0,0],\"false_rejects\":[1,0]}",
    };
    char err[SM_ERRMAX];
    for (size_t i = 0; i < SM_ARRAY_LEN(bad); i++) {
        OpTable *t = NULL;
        ck_assert_msg(optable_parse(bad[i], &t, err) == -EINVAL, "accepted #%zu", i);
        ck_assert_ptr_null(t);
    }
    OpTable *t = NULL;
    ck_assert_int_eq(optable_parse("{\"source\":\"v\",\"positives\":1,\"negatives\":1,"
                                   "\"threshold\":[0,1],\"false_accepts\":[0,1],"
                                   "\"false_rejects\":[1,0]}",
                                   &t, err),
                     0);
    optable_free(t);
    optable_free(NULL);
}
END_TEST

START_TEST(test_build_refuses) {
    float d[4] = {0.1f, 0.2f, 0.3f, 0.4f}, same[4] = {1, 1, 1, 1}, mixed[4] = {1, 0, 1, 0};
    OpTable *t = NULL;
    char err[SM_ERRMAX];
    ck_assert_int_eq(optable_build(d, same, 4, "x", &t, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "0 different"));
    ck_assert_int_eq(optable_build(d, mixed, 0, "x", &t, err), -EINVAL);
    d[2] = NAN;
    ck_assert_int_eq(optable_build(d, mixed, 4, "x", &t, err), -EINVAL);
    ck_assert_ptr_null(t);
}
END_TEST

int main(void) {
    Suite *s = suite_create("optable");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, test_counts_and_far);
    tcase_add_test(tc, test_rates_at);
    tcase_add_test(tc, test_json_round_trip);
    tcase_add_test(tc, test_parse_refuses);
    tcase_add_test(tc, test_build_refuses);
    suite_add_tcase(s, tc);
    return check_run(s);
}
