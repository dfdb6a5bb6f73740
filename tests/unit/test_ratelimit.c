/*
 * test_ratelimit.c — unit tests for the token buckets (ratelimit.h): a
 * burst, then refusals with the seconds until the next token; refill over
 * time; keys and addresses each with their own bucket; a flood of addresses
 * stays within the fixed table without resetting a busy client's bucket.
 */
#include "siamese/common.h"
#include "siamese/ratelimit.h"

#include "check_util.h"

#include <check.h>
#include <stdio.h>

START_TEST(test_burst_then_wait) {
    RateLimit *r = NULL;
    char err[SM_ERRMAX];
    ck_assert_int_eq(ratelimit_new(0.5, 3, 2, &r, err), 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(ratelimit_take(r, 0, NULL, 100.0), 0);
    ck_assert_int_eq(ratelimit_take(r, 0, NULL, 100.0), 2); /* 1 token at 0.5/s */
    ck_assert_int_eq(ratelimit_take(r, 0, NULL, 101.0), 1); /* half a token there */
    ck_assert_int_eq(ratelimit_take(r, 0, NULL, 102.0), 0); /* a whole one */
    ck_assert_int_eq(ratelimit_take(r, 0, NULL, 102.0), 2);
    /* The other key was not touched. */
    ck_assert_int_eq(ratelimit_take(r, 1, NULL, 102.0), 0);
    /* A long pause refills up to the burst, not beyond. */
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(ratelimit_take(r, 0, NULL, 1e6), 0);
    ck_assert_int_gt(ratelimit_take(r, 0, NULL, 1e6), 0);
    ratelimit_free(r);
}
END_TEST

START_TEST(test_addresses) {
    RateLimit *r = NULL;
    char err[SM_ERRMAX];
    ck_assert_int_eq(ratelimit_new(1, 2, 0, &r, err), 0);
    ck_assert_int_eq(ratelimit_take(r, -1, "10.0.0.1", 5), 0);
    ck_assert_int_eq(ratelimit_take(r, -1, "10.0.0.1", 5), 0);
    ck_assert_int_eq(ratelimit_take(r, -1, "10.0.0.1", 5), 1);
    ck_assert_int_eq(ratelimit_take(r, -1, "10.0.0.2", 5), 0);
    /* Many other addresses, one request each: the busy one stays limited. */
    char a[32];
    for (int i = 0; i < 3 * RATELIMIT_SLOTS; i++) {
        snprintf(a, sizeof a, "192.168.%d.%d", i / 256, i % 256);
        ratelimit_take(r, -1, a, 5);
    }
    ck_assert_int_eq(ratelimit_take(r, -1, "10.0.0.1", 5), 1);
    ratelimit_free(r);
}
END_TEST

START_TEST(test_bad_args) {
    RateLimit *r = (RateLimit *)&r;
    char err[SM_ERRMAX];
    ck_assert_int_eq(ratelimit_new(0, 1, 0, &r, err), -EINVAL);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(ratelimit_new(1, 0, 0, &r, err), -EINVAL);
    ck_assert_int_eq(ratelimit_new(1, 1, -1, &r, err), -EINVAL);
    ck_assert_int_eq(ratelimit_take(NULL, -1, "x", 0), 0);
    ratelimit_free(NULL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("ratelimit");
    TCase *tc = tcase_create("buckets");
    tcase_add_test(tc, test_burst_then_wait);
    tcase_add_test(tc, test_addresses);
    tcase_add_test(tc, test_bad_args);
    suite_add_tcase(s, tc);
    return check_run(s);
}
