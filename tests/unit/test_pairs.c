/*
 * test_pairs.c — pairs_make() against the recipe in pairs.h: counts, order,
 * labels, which samples are paired, skipped classes and determinism; then
 * pairs_build(): the recipe through it, the every-image pairing (balance,
 * coverage, per-epoch redraws) and the automatic choice, on labels and on an
 * imbalanced image directory.
 */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "siamese/common.h"
#include "siamese/dataset.h"
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

/* ---- pairs_build ---------------------------------------------------------- */

START_TEST(build_keras_is_the_recipe) {
    enum { C = 5, PER = 30, N = C * PER };
    int labels[N];
    for (int i = 0; i < N; i++)
        labels[i] = (i * 3) % C;
    Pair *p1 = NULL, *p2 = NULL;
    size_t n2 = 0;
    PairsInfo info;
    Rng r;
    rng_seed(&r, 42);
    ck_assert_int_eq(pairs_make(labels, N, C, &r, &p2, &n2, NULL, NULL), 0);
    for (int epoch = 0; epoch < 3; epoch += 2) { /* the recipe does not redraw */
        ck_assert_int_eq(pairs_build(PAIRS_KERAS, epoch, labels, N, C, 42, &p1, &info, NULL), 0);
        ck_assert_int_eq(info.mode, PAIRS_KERAS);
        ck_assert_uint_eq(info.n, n2);
        ck_assert_int_eq(memcmp(p1, p2, n2 * sizeof *p1), 0);
        ck_assert_int_eq(info.used, N);
        ck_assert_double_eq(info.keras_share, 1.0);
        free(p1);
    }
    /* Balanced: auto keeps the recipe. */
    ck_assert_int_eq(pairs_build(PAIRS_AUTO, 0, labels, N, C, 42, &p1, &info, NULL), 0);
    ck_assert_int_eq(info.mode, PAIRS_KERAS);
    ck_assert_int_eq(memcmp(p1, p2, n2 * sizeof *p1), 0);
    free(p1);
    free(p2);
}
END_TEST

/* Each sample of a class with >= 2 anchors exactly one positive (another
 * sample of its class) and then one negative (a sample of another class). */
static void check_all(const int *labels, int n, const Pair *p, const PairsInfo *info, int anchors) {
    ck_assert_int_eq(info->mode, PAIRS_ALL);
    ck_assert_uint_eq(info->n, 2 * (size_t)anchors);
    int last = -1;
    for (size_t k = 0; k < info->n; k += 2) {
        ck_assert_int_gt(p[k].a, last);
        last = p[k].a;
        ck_assert_int_eq(p[k + 1].a, p[k].a);
        ck_assert_float_eq(p[k].y, 1.0f);
        ck_assert_float_eq(p[k + 1].y, 0.0f);
        ck_assert_int_ne(p[k].b, p[k].a);
        ck_assert_int_eq(labels[p[k].b], labels[p[k].a]);
        ck_assert_int_ne(labels[p[k + 1].b], labels[p[k].a]);
        ck_assert(p[k].b >= 0 && p[k].b < n && p[k + 1].b >= 0 && p[k + 1].b < n);
    }
}

/* The case: one class of 8 beside six of 1,000. The recipe keeps 8 of
 * each (7% of the images); every-image pairs keep them all, redrawn per epoch. */
START_TEST(build_all_imbalanced) {
    enum { C = 7, N = 6 * 1000 + 8 };
    static int labels[N];
    for (int i = 0; i < N; i++)
        labels[i] = i < 8 ? 3 : (i % 6 < 3 ? i % 6 : i % 6 + 1);
    Pair *p0 = NULL, *p0b = NULL, *p1 = NULL, *pk = NULL;
    PairsInfo i0, i0b, i1, ik;
    ck_assert_int_eq(pairs_build(PAIRS_KERAS, 0, labels, N, C, 5, &pk, &ik, NULL), 0);
    ck_assert_uint_eq(ik.n, 2 * 7 * C);
    ck_assert_int_eq(ik.used, 8 * C);
    ck_assert_double_lt(ik.keras_share, 0.1);
    ck_assert_int_eq(pairs_build(PAIRS_AUTO, 0, labels, N, C, 5, &p0, &i0, NULL), 0);
    check_all(labels, N, p0, &i0, N);
    ck_assert_int_eq(i0.used, N);
    ck_assert_int_ge(i0.used, (int)(0.9 * N));
    ck_assert_double_eq(i0.keras_share, ik.keras_share);
    ck_assert_int_eq(pairs_build(PAIRS_ALL, 0, labels, N, C, 5, &p0b, &i0b, NULL), 0);
    ck_assert_uint_eq(i0b.n, i0.n);
    ck_assert_int_eq(memcmp(p0, p0b, i0.n * sizeof *p0), 0);
    ck_assert_int_eq(pairs_build(PAIRS_ALL, 1, labels, N, C, 5, &p1, &i1, NULL), 0);
    check_all(labels, N, p1, &i1, N);
    ck_assert_int_eq(i0.epoch, 0);
    ck_assert_int_eq(i1.epoch, 1);
    size_t same = 0;
    for (size_t k = 0; k < i0.n; k++)
        same += p0[k].b == p1[k].b;
    ck_assert_uint_lt(same, i0.n / 10); /* another epoch, other partners */
    free(p0), free(p0b), free(p1), free(pk);
}
END_TEST

START_TEST(build_all_singletons_and_errors) {
    /* Class 1 has one sample: it anchors nothing but may be a negative. */
    const int labels[] = {0, 0, 1, 2, 2, 2, 0};
    Pair *p = NULL;
    PairsInfo info;
    char err[SM_ERRMAX] = "";
    ck_assert_int_eq(pairs_build(PAIRS_ALL, 0, labels, 7, 4, 1, &p, &info, err), 0);
    check_all(labels, 7, p, &info, 6);
    ck_assert_int_eq(info.classes_skipped, 1); /* class 3 is absent: not counted */
    free(p);
    p = NULL;
    const int one[] = {0, 0, 0, 1};
    ck_assert_int_eq(pairs_build(PAIRS_ALL, 0, one, 4, 2, 1, &p, &info, err), -EINVAL);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(pairs_build((PairsMode)7, 0, labels, 7, 4, 1, &p, &info, err), -EINVAL);
    ck_assert_int_eq(pairs_build(PAIRS_ALL, -1, labels, 7, 4, 1, &p, &info, err), -EINVAL);
    ck_assert_ptr_null(p);
    ck_assert_str_eq(pairs_mode_name(PAIRS_ALL), "all");
    ck_assert_str_eq(pairs_mode_name(PAIRS_KERAS), "keras");
    ck_assert_ptr_null(pairs_mode_name((PairsMode)3));
}
END_TEST

/* ---- an imbalanced image directory --------------------------------------- */

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f) {
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static void write_pgm(const char *dir, const char *cls, int i) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, cls);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/%s/%03d.pgm", dir, cls, i);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "P5\n4 4\n255\n");
    for (int k = 0; k < 16; k++)
        fputc((i * 7 + k * 13) & 0xff, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* Seven class folders, one of 8 images and six of 60: after the validation
 * split, the pairs the trainer would draw keep at least 90% of the images. */
START_TEST(imbalanced_directory) {
    char dir[] = "/tmp/sm-pairs-XXXXXX", err[SM_ERRMAX] = "";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const char *classes[] = {"ankle-boot", "bag", "coat", "dress", "rare", "shirt", "trouser"};
    for (int c = 0; c < 7; c++)
        for (int i = 0; i < (c == 4 ? 8 : 60); i++)
            write_pgm(dir, classes[c], i);
    Dataset *d = NULL, *val = NULL;
    ck_assert_msg(dataset_load(dir, DATASET_TRAIN, 0, 0, NULL, &d, err) == 0, "%s", err);
    ck_assert_int_eq(d->n, 368);
    ck_assert_int_eq(dataset_split_off(d, 0.1, &val, err), 0);
    Pair *p = NULL;
    PairsInfo info;
    ck_assert_int_eq(pairs_build(PAIRS_AUTO, 0, d->y, d->n, d->n_classes, 1, &p, &info, err), 0);
    ck_assert_int_eq(info.mode, PAIRS_ALL);
    ck_assert_msg(info.used >= 0.9 * d->n, "%d of %d images in pairs", info.used, d->n);
    ck_assert_uint_eq(info.n, 2 * (size_t)d->n);
    free(p);
    ck_assert_int_eq(pairs_build(PAIRS_KERAS, 0, d->y, d->n, d->n_classes, 1, &p, &info, err), 0);
    ck_assert_int_lt(info.used, d->n / 4); /* what the recipe alone would have kept */
    free(p);
    dataset_free(d);
    dataset_free(val);
    ck_assert_int_eq(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("pairs");
    TCase *tc = tcase_create("pairs");
    tcase_add_test(tc, counts_and_labels);
    tcase_add_test(tc, skips_small_classes);
    tcase_add_test(tc, too_few_classes);
    tcase_add_test(tc, determinism);
    tcase_add_test(tc, build_keras_is_the_recipe);
    tcase_add_test(tc, build_all_imbalanced);
    tcase_add_test(tc, build_all_singletons_and_errors);
    tcase_add_test(tc, imbalanced_directory);
    suite_add_tcase(s, tc);
    return check_run(s);
}
