/*
 * test_pairs.c — pairs_make() against the recipe in pairs.h: counts, order,
 * labels, which samples are paired, skipped classes and determinism.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/common.h"
#include "siamese/pairs.h"

#include "check_util.h"

/* The k-th sample of class c in dataset order, or -1. */
static int nth_of_class(const int *labels, int n, int c, int k) {
    for (int i = 0; i < n; i++)
        if (labels[i] == c && k-- == 0)
            return i;
    return -1;
}

/* Checks every pair against the recipe; usable[] lists the usable classes in
 * label order and per is the number of pairs of each kind per class. */
static void check_recipe(const int *labels, int n, const Pair *p, size_t np, const int *usable,
                         int n_usable, int per) {
    ck_assert_uint_eq(np, 2 * (size_t)per * (size_t)n_usable);
    size_t k = 0;
    for (int d = 0; d < n_usable; d++)
        for (int i = 0; i < per; i++, k += 2) {
            int c = usable[d];
            ck_assert_float_eq(p[k].y, 1.0f);
            ck_assert_int_eq(p[k].a, nth_of_class(labels, n, c, i));
            ck_assert_int_eq(p[k].b, nth_of_class(labels, n, c, i + 1));
            ck_assert_float_eq(p[k + 1].y, 0.0f);
            ck_assert_int_eq(p[k + 1].a, p[k].a);
            int e = labels[p[k + 1].b];
            ck_assert_int_ne(e, c);
            int e_usable = 0;
            for (int j = 0; j < n_usable; j++)
                e_usable |= usable[j] == e;
            ck_assert(e_usable);
            ck_assert_int_eq(p[k + 1].b, nth_of_class(labels, n, e, i));
        }
}

START_TEST(counts_and_labels) {
    /* Classes 0,1,2 with 5, 4, 6 samples, interleaved: n = 4 - 1 = 3. */
    const int labels[] = {2, 0, 1, 0, 2, 2, 1, 0, 0, 2, 1, 2, 1, 0, 2};
    const int usable[] = {0, 1, 2};
    Rng r;
    rng_seed(&r, 7);
    Pair *p = NULL;
    size_t np = 0;
    int skipped = -1;
    char err[SM_ERRMAX] = "";
    ck_assert_int_eq(pairs_make(labels, 15, 3, &r, &p, &np, &skipped, err), 0);
    ck_assert_int_eq(skipped, 0);
    ck_assert_uint_eq(np, 18); /* 2 * n * C */
    check_recipe(labels, 15, p, np, usable, 3, 3);
    size_t pos = 0;
    for (size_t i = 0; i < np; i++)
        pos += p[i].y == 1.0f;
    ck_assert_uint_eq(pos, np / 2);
    free(p);
}
END_TEST

START_TEST(skips_small_classes) {
    /* Class 1 has one sample, class 3 none: C = {0, 2, 4}, n = 3 - 1. */
    const int labels[] = {0, 4, 1, 2, 0, 4, 2, 0, 4, 2, 2};
    const int usable[] = {0, 2, 4};
    Rng r;
    rng_seed(&r, 1);
    Pair *p = NULL;
    size_t np = 0;
    int skipped = 0;
    ck_assert_int_eq(pairs_make(labels, 11, 5, &r, &p, &np, &skipped, NULL), 0);
    ck_assert_int_eq(skipped, 2);
    check_recipe(labels, 11, p, np, usable, 3, 2);
    free(p);
}
END_TEST

START_TEST(too_few_classes) {
    const int one[] = {0, 0, 0, 1};
    const int none[] = {0, 1, 2};
    Rng r;
    rng_seed(&r, 1);
    Pair *p = NULL;
    size_t np = 0;
    char err[SM_ERRMAX] = "";
    ck_assert_int_eq(pairs_make(one, 4, 2, &r, &p, &np, NULL, err), -EINVAL);
    ck_assert_ptr_null(p);
    ck_assert(strlen(err) > 0);
    err[0] = 0;
    ck_assert_int_eq(pairs_make(none, 3, 3, &r, &p, &np, NULL, err), -EINVAL);
    ck_assert(strlen(err) > 0);
    ck_assert_int_eq(pairs_make(none, 0, 3, &r, &p, &np, NULL, err), -EINVAL);
    const int bad[] = {0, 0, 3, 1, 1};
    err[0] = 0;
    ck_assert_int_eq(pairs_make(bad, 5, 3, &r, &p, &np, NULL, err), -EINVAL);
    ck_assert(strstr(err, "label") != NULL);
    ck_assert_ptr_null(p);
}
END_TEST

/* 20 classes of 50: same seed, same pairs; another seed, other negatives; and
 * every other class turns up as a negative partner of class 0. */
START_TEST(determinism) {
    enum { C = 20, PER = 50, N = C * PER };
    int labels[N];
    for (int i = 0; i < N; i++)
        labels[i] = (i * 7) % C;
    Pair *p1 = NULL, *p2 = NULL, *p3 = NULL;
    size_t n1, n2, n3;
    Rng r;
    rng_seed(&r, 99);
    ck_assert_int_eq(pairs_make(labels, N, C, &r, &p1, &n1, NULL, NULL), 0);
    rng_seed(&r, 99);
    ck_assert_int_eq(pairs_make(labels, N, C, &r, &p2, &n2, NULL, NULL), 0);
    rng_seed(&r, 100);
    ck_assert_int_eq(pairs_make(labels, N, C, &r, &p3, &n3, NULL, NULL), 0);
    ck_assert_uint_eq(n1, 2 * 49 * C);
    ck_assert_uint_eq(n1, n2);
    ck_assert_int_eq(memcmp(p1, p2, n1 * sizeof *p1), 0);
    ck_assert_int_ne(memcmp(p1, p3, n1 * sizeof *p1), 0);
    int seen[C] = {0};
    for (size_t k = 1; k < 2 * 49; k += 2)
        seen[labels[p1[k].b]]++;
    ck_assert_int_eq(seen[0], 0);
    int distinct = 0;
    for (int c = 1; c < C; c++)
        distinct += seen[c] > 0;
    ck_assert_int_ge(distinct, 15); /* 49 draws over 19 classes */
    int usable[C];
    for (int c = 0; c < C; c++)
        usable[c] = c;
    check_recipe(labels, N, p1, n1, usable, C, 49);
    free(p1);
    free(p2);
    free(p3);
}
END_TEST

int main(void) {
    Suite *s = suite_create("pairs");
    TCase *tc = tcase_create("pairs");
    tcase_add_test(tc, counts_and_labels);
    tcase_add_test(tc, skips_small_classes);
    tcase_add_test(tc, too_few_classes);
    tcase_add_test(tc, determinism);
    suite_add_tcase(s, tc);
    return check_run(s);
}
