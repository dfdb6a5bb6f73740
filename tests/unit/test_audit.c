/*
 * test_audit.c — unit tests for the label audit (audit.h): the blocked
 * sgemm neighbours and scores agree with the plain-loop reference on random
 * embeddings (more rows than one block); k from the class sizes; a planted mislabelled point in a
 * tight cluster of another class scores highest with that class suggested;
 * too few samples or one class are refused.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "check_util.h"
#include "siamese/audit.h"
#include "siamese/common.h"

START_TEST(test_fast_matches_ref) {
    enum { N = 600, E = 16, C = 4, K = 25 };
    float *emb = malloc(sizeof(float) * N * E), *nda = malloc(sizeof(float) * N * K),
          *ndb = malloc(sizeof(float) * N * K);
    int labels[N], *nna = malloc(sizeof(int) * N * K), *nnb = malloc(sizeof(int) * N * K);
    AuditRow *a = malloc(sizeof *a * N), *b = malloc(sizeof *b * N);
    Rng r;
    rng_seed(&r, 5);
    check_fill(&r, emb, (size_t)N * E, 0, 1);
    for (int i = 0; i < N; i++)
        labels[i] = (int)rng_below(&r, C);
    char err[SM_ERRMAX];
    ck_assert_int_eq(audit_scores(emb, N, E, labels, C, K, a, nna, nda, err), 0);
    ck_assert_int_eq(audit_scores_ref(emb, N, E, labels, C, K, b, nnb, ndb, err), 0);
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < K; k++) {
            ck_assert_msg(a[i].nn[k] == b[i].nn[k], "row %d neighbour %d: %d vs %d", i, k,
                          a[i].nn[k], b[i].nn[k]);
            ck_assert_float_eq_tol(a[i].nd[k], b[i].nd[k], 1e-4f);
        }
        ck_assert_float_eq_tol(a[i].score, b[i].score, 1e-4f);
        ck_assert_int_eq(a[i].suggested, b[i].suggested);
    }
    free(emb), free(nda), free(ndb), free(nna), free(nnb), free(a), free(b);
}
END_TEST

START_TEST(test_k_for) {
    int y[9000];
    for (int i = 0; i < 9000; i++)
        y[i] = i % 3; /* 3000 per class: 100 */
    ck_assert_int_eq(audit_k_for(y, 9000, 3), 100);
    ck_assert_int_eq(audit_k_for(y, 90, 3), AUDIT_K_MIN); /* 30 per class */
    ck_assert_int_eq(audit_k_for(y, 6, 3), 5);            /* below n */
    for (int i = 0; i < 9000; i++)
        y[i] = i < 8990 ? 0 : 1; /* median of {8990, 10}: the larger */
    ck_assert_int_eq(audit_k_for(y, 9000, 2), AUDIT_K_MAX);
}
END_TEST

START_TEST(test_planted_mistake) {
    /* Two clusters of 20 on a line, 0 near 0 and 1 near 10; sample 5 of
     * cluster 0 carries label 1. */
    enum { N = 40, E = 2 };
    float emb[N * E];
    int labels[N];
    AuditRow rows[N];
    int nn[N * 10];
    float nd[N * 10];
    for (int i = 0; i < N; i++) {
        emb[2 * i] = (i < 20 ? 0.0f : 10.0f) + 0.01f * (float)(i % 20);
        emb[2 * i + 1] = 0;
        labels[i] = i < 20 ? 0 : 1;
    }
    labels[5] = 1;
    char err[SM_ERRMAX];
    ck_assert_int_eq(audit_scores(emb, N, E, labels, 2, 10, rows, nn, nd, err), 0);
    for (int i = 0; i < N; i++)
        if (i != 5)
            ck_assert_float_lt(rows[i].score, rows[5].score);
    ck_assert_float_eq_tol(rows[5].score, 1.0f, 1e-6f);
    ck_assert_int_eq(rows[5].suggested, 0);
    /* Cluster 1's own samples: all ten neighbours agree. */
    ck_assert_float_eq_tol(rows[30].score, 0.0f, 1e-6f);
    ck_assert_int_eq(rows[30].suggested, 1);
}
END_TEST

START_TEST(test_refuses) {
    float emb[24] = {0}, nd[12 * 12];
    int labels[12] = {0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1}, one[12] = {0}, nn[12 * 12];
    AuditRow rows[12];
    char err[SM_ERRMAX];
    ck_assert_int_eq(audit_scores(emb, 10, 2, labels, 2, 5, rows, nn, nd, err), -EINVAL);
    ck_assert_int_eq(audit_scores(emb, 12, 2, one, 1, 5, rows, nn, nd, err), -EINVAL);
    ck_assert_int_eq(audit_scores(emb, 12, 2, labels, 2, 12, rows, nn, nd, err), -EINVAL);
    ck_assert_int_eq(audit_scores_ref(emb, 10, 2, labels, 2, 5, rows, nn, nd, err), -EINVAL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("audit");
    TCase *tc = tcase_create("audit");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_fast_matches_ref);
    tcase_add_test(tc, test_k_for);
    tcase_add_test(tc, test_planted_mistake);
    tcase_add_test(tc, test_refuses);
    suite_add_tcase(s, tc);
    return check_run(s);
}
