/*
 * test_store_pg_feed.c — what the change feed refuses, run in test_store's
 * PostgreSQL variant: a change row it cannot apply (a subject id outside
 * the alphabet, counts or a sample id its kind never carries: review F16)
 * or a sample column of another type stops the feed there, and the store
 * answers -ENOTCONN until the row is gone; and a reload the feed asks for
 * leaves the serving model alone (review F11).
 */
#include "test_store.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "siamese/common.h"
#include "siamese/store.h"

/* Identify on s near emb(seed) until it answers other than 0 (the feed
 * stuck: -ENOTCONN) or timeout_ms pass: its last answer. */
static int until_unavailable(Store *s, uint64_t seed, double timeout_ms) {
    char err[SM_ERRMAX];
    float q[DIM];
    emb(seed, q);
    IndexHit h;
    int n = 0, rc = 0;
    for (double t0 = now_ms(); (rc = store_identify_with(s, q, 1, INDEX_EXACT, &h, &n, err)) == 0 &&
                               now_ms() - t0 < timeout_ms;)
        usleep(1000);
    return rc;
}

/* A change row that cannot be applied stops the feed there: a subject id
 * outside the alphabet (the table only checks its length), or counts and a
 * sample id its kind never carries (which would otherwise move the counts
 * or drop a subject from the index). The store says it is behind (stats,
 * feed lag) and identify/verify answer -ENOTCONN (503) instead of
 * answering from an index that misses every later change; once the row is
 * gone the feed goes on. */
START_TEST(pg_feed_stuck_row_answers_unavailable) {
    static const char *const bad[] = {
        "('subject', 'bad id!', NULL, 1, 0)",     "('add', 'ok1', 1, 0, 5)",
        "('remove_subject', 'ok1', NULL, -1, 3)", "('remove_sample', 'ok1', NULL, 0, -1)",
        "('subject', 'ok9', NULL, 1, 1)",
    };
    char err[SM_ERRMAX] = "", sql[256];
    Store *a = open_ok(FP_A, 0), *b = open_ok(FP_A, 0);
    enroll_n(a, "ok1", NULL, 1, 1100, NULL);
    ck_assert_double_ge(until_found(b, 1100, "ok1", 5000), 0);
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        snprintf(sql, sizeof sql,
                 "INSERT INTO changes (kind, subject_id, sample_id, d_subjects, d_samples)"
                 " VALUES %s",
                 bad[k]);
        raw_exec(sql);
        int64_t id = raw_int("SELECT max(id) FROM changes");
        raw_exec("SELECT pg_notify('siamesed_changes', (SELECT max(id)::text FROM changes))");
        char later[16];
        snprintf(later, sizeof later, "ok2-%zu", k);
        enroll_n(a, later, NULL, 1, 1101 + k, NULL);
        int rc = until_unavailable(b, 1100, 5000);
        ck_assert_msg(rc == -ENOTCONN, "%s: identify with the feed stuck: rc %d", bad[k], rc);
        float q[DIM];
        emb(1100, q);
        IndexHit h;
        ck_assert_int_eq(store_verify(b, "ok1", q, &h, err), -ENOTCONN);
        StoreStats st;
        store_stats(b, &st);
        ck_assert_int_eq(st.behind, 1);
        ck_assert_int_ge(st.feed_lag, 1);
        snprintf(sql, sizeof sql, "DELETE FROM changes WHERE id = %lld", (long long)id);
        raw_exec(sql);
        ck_assert_double_ge(until_found(b, 1101 + k, later, 5000), 0);
        store_stats(b, &st);
        ck_assert_int_eq(st.behind, 0);
        ck_assert_int_eq(st.feed_lag, 0);
        int64_t subjects = 0, samples = 0;
        store_counts(b, &subjects, &samples);
        ck_assert_int_eq(subjects, 2 + (int64_t)k); /* nothing of the bad row counted */
        ck_assert_int_eq(samples, 2 + (int64_t)k);
    }
    ck_assert_double_ge(until_found(b, 1100, "ok1", 5000), 0); /* ok1 was never dropped */
    store_close(a);
    store_close(b);
}
END_TEST

/* A sample column of another type than the feed reads (a later migration
 * making the fingerprint varchar) is an error that stops the feed (503), not
 * "the sample has gone" (which would leave it out of the index silently). */
START_TEST(pg_feed_wrong_column_type_refused) {
    Store *a = open_ok(FP_A, 0), *b = open_ok(FP_A, 0);
    enroll_n(a, "t1", NULL, 1, 1300, NULL);
    ck_assert_double_ge(until_found(b, 1300, "t1", 5000), 0);
    raw_exec("ALTER TABLE samples ALTER COLUMN fingerprint TYPE varchar(64)");
    enroll_n(a, "t2", NULL, 1, 1301, NULL);
    int rc = until_unavailable(b, 1300, 3000);
    ck_assert_msg(rc == -ENOTCONN, "identify: rc %d", rc);
    store_close(a);
    store_close(b);
}
END_TEST

/* A reload the feed asks for does not claim the serving model (review
 * F11): model B's store has taken over an empty database; model A's store,
 * its feed pruned under it, reloads (B, closed meanwhile, does not). Before,
 * that reload made A the serving model again while the database held no
 * samples, and B's nodes' enrolls failed -ESTALE. */
START_TEST(pg_feed_reload_keeps_the_serving_model) {
    char err[SM_ERRMAX] = "";
    Store *a = open_ok(FP_A, 0);
    store_close(open_ok(FP_B, 0)); /* B takes the empty database over */
    ck_assert_int_eq(raw_int("SELECT count(*) FROM serving_model WHERE fingerprint = '" FP_B "'"),
                     1);
    /* Two subjects behind the feed's back, then a change after pruned ones. */
    raw_exec("INSERT INTO subjects (id, created_at) VALUES ('old1', 1), ('old2', 1)");
    raw_exec("SELECT setval(pg_get_serial_sequence('changes', 'id'), "
             "coalesce(max(id), 0) + 10) FROM changes");
    raw_exec("UPDATE feed_floor SET id = (SELECT coalesce(max(id), 0) + 5 FROM changes)");
    raw_exec("INSERT INTO changes (kind, subject_id, d_subjects, d_samples)"
             " VALUES ('subject', 'x1', 1, 0)");
    raw_exec("SELECT pg_notify('siamesed_changes', (SELECT max(id)::text FROM changes))");
    int64_t subjects = 0;
    for (double t0 = now_ms(); subjects != 2 && now_ms() - t0 < 5000; usleep(1000))
        store_counts(a, &subjects, NULL); /* 2 once the reload read the table */
    ck_assert_int_eq(subjects, 2);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM serving_model WHERE fingerprint = '" FP_B "'"),
                     1);
    float q[DIM];
    emb(3, q);
    StoreSampleIn in = {.embedding = q};
    int64_t id;
    ck_assert_int_eq(store_enroll(a, "by_a", NULL, &in, 1, &id, NULL, err), -ESTALE);
    store_close(a);
}
END_TEST

void test_store_pg_feed_add(TCase *tc) {
    tcase_add_test(tc, pg_feed_stuck_row_answers_unavailable);
    tcase_add_test(tc, pg_feed_wrong_column_type_refused);
    tcase_add_test(tc, pg_feed_reload_keeps_the_serving_model);
}
