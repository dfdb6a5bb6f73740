/*
 * test_store_pg_rw.c — read-your-writes on PostgreSQL (review F5), run in
 * test_store's PostgreSQL variant: once an enroll returned, identify and
 * verify on the same store see the sample, or answer -ENOTCONN (the store
 * is behind) until its feed has applied it; never a silent miss. Made
 * deterministic with pg_test_after_commit: right after the COMMIT, every
 * other session of the database is cut (the writer's among them) while the
 * feed is held, so the listener cannot apply the change first.
 */
#include "test_store.h"

#include <check.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "src/store/store_pg.h"

/* The hook's orders and what it saw (the writer's thread writes, the test
 * reads after store_enroll() returned, which orders them). */
static struct {
    PGconn *admin; /* the test's own session, on database postgres */
    char db[64];   /* the test's database */
    int refuse;    /* also refuse new connections, so no reconnect works */
    uint64_t seed; /* the sample enrolled */
    const char *subject;
    int cut, raced; /* the hook ran; the sample was in the index before the cut */
    char failed[512];
} hk;

static void admin_exec(const char *sql) {
    PGresult *r = PQexec(hk.admin, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        snprintf(hk.failed, sizeof hk.failed, "%s: %s", sql, PQerrorMessage(hk.admin));
    PQclear(r);
}

static void allow_connections(int on) {
    char sql[200];
    snprintf(sql, sizeof sql, "ALTER DATABASE \"%s\" ALLOW_CONNECTIONS %s", hk.db,
             on ? "true" : "false");
    admin_exec(sql);
}

/* 1 if identify on s finds hk.subject nearest to emb(hk.seed) now. */
static int seen(Store *s, int *rc) {
    float q[DIM];
    char err[SM_ERRMAX];
    IndexHit h;
    int n = 0;
    emb(hk.seed, q);
    *rc = store_identify_with(s, q, 1, INDEX_EXACT, &h, &n, err);
    return *rc == 0 && n == 1 && strcmp(h.subject, hk.subject) == 0;
}

/* pg_test_after_commit: holds the feed (a listener's catch-up started
 * before is over; one after waits), notes whether the sample is applied
 * already, cuts every other session of the database and lets go. */
static void cut_after_commit(Store *s) {
    if (!hk.admin || hk.cut)
        return;
    int64_t last = 0;
    int rc = 0;
    pg_feed_lock(s, &last);
    hk.raced = seen(s, &rc);
    if (hk.refuse)
        allow_connections(0);
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = '%s'",
             hk.db);
    admin_exec(sql);
    pg_feed_unlock(s, last, 0);
    hk.cut = 1;
}

/* Enrolls one sample (emb(seed + attempt), hk.seed) with the hook armed,
 * until an attempt where the listener had not applied it before the cut
 * (at most 10). 1 if one had. */
static int enroll_cut(Store *s, const char *subject, uint64_t seed, int64_t *id) {
    for (int i = 0; i < 10; i++) {
        hk.subject = subject;
        hk.seed = seed + (uint64_t)i;
        hk.cut = hk.raced = 0;
        enroll_n(s, subject, NULL, 1, hk.seed, id);
        ck_assert_msg(hk.failed[0] == '\0', "%s", hk.failed);
        ck_assert_int_eq(hk.cut, 1);
        if (!hk.raced)
            return 1;
        /* The listener was first: let it reconnect and try again. */
        if (hk.refuse)
            allow_connections(1);
        ck_assert_double_ge(until_found(s, hk.seed, subject, 10000), 0);
    }
    return 0;
}

static void hook_arm(int refuse) {
    memset(&hk, 0, sizeof hk);
    hk.refuse = refuse;
    /* The test's URI with another database (a later dbname overrides). */
    const char *keys[] = {"dbname", "dbname", NULL}, *vals[] = {test_store_db(), "postgres", NULL};
    hk.admin = PQconnectdbParams(keys, vals, 1);
    ck_assert_int_eq(PQstatus(hk.admin), CONNECTION_OK);
    PGconn *c = PQconnectdb(test_store_db());
    PGresult *r = PQexec(c, "SELECT current_database()");
    ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
    snprintf(hk.db, sizeof hk.db, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    pg_test_after_commit = cut_after_commit;
}

static void hook_disarm(void) {
    pg_test_after_commit = NULL;
    PQfinish(hk.admin);
    hk.admin = NULL;
}

/* The writer's connection cut right after its COMMIT: the catch-up is
 * tried once more on a fresh connection, so the write is seen at once. */
START_TEST(pg_own_write_seen_after_cut) {
    Store *s = open_ok(FP_A, 0);
    enroll_n(s, "first", NULL, 1, 1500, NULL);
    hook_arm(0);
    int64_t id = 0;
    ck_assert_msg(enroll_cut(s, "rw", 1501, &id), "the listener applied first 10 times");
    hook_disarm();
    int rc = 0;
    ck_assert_msg(seen(s, &rc), "identify right after the enroll: rc %d, sample not found", rc);
    float q[DIM];
    char err[SM_ERRMAX] = "";
    IndexHit h;
    emb(hk.seed, q);
    ck_assert_int_eq(store_verify(s, "rw", q, &h, err), 0);
    ck_assert_int_eq(h.sample_id, id);
    StoreStats st;
    store_stats(s, &st);
    ck_assert_int_eq(st.behind, 0);
    store_close(s);
}
END_TEST

/* The same, and no new connection possible: the store cannot apply its
 * own write, so identify and verify answer -ENOTCONN until it can. */
START_TEST(pg_own_write_unapplied_answers_unavailable) {
    Store *s = open_ok(FP_A, 0);
    enroll_n(s, "first", NULL, 1, 1600, NULL);
    hook_arm(1);
    int64_t id = 0;
    int clean = enroll_cut(s, "rw", 1601, &id);
    int rc = 0, found = seen(s, &rc);
    float q[DIM];
    char err[SM_ERRMAX] = "";
    IndexHit h;
    emb(hk.seed, q);
    int vrc = store_verify(s, "rw", q, &h, err);
    StoreStats st;
    store_stats(s, &st);
    allow_connections(1);
    ck_assert_msg(hk.failed[0] == '\0', "%s", hk.failed);
    ck_assert_msg(clean, "the listener applied first 10 times");
    ck_assert_msg(!found && rc == -ENOTCONN,
                  "identify with the store's own write unapplied: rc %d, found %d", rc, found);
    ck_assert_int_eq(vrc, -ENOTCONN);
    ck_assert_int_eq(st.behind, 1);
    /* Connections allowed again: the listener reconnects and catches up. */
    ck_assert_double_ge(until_found(s, hk.seed, "rw", 10000), 0);
    ck_assert_int_eq(store_verify(s, "rw", q, &h, err), 0);
    ck_assert_int_eq(h.sample_id, id);
    store_stats(s, &st);
    ck_assert_int_eq(st.behind, 0);
    hook_disarm();
    store_close(s);
}
END_TEST

void test_store_pg_rw_add(TCase *tc) {
    tcase_add_test(tc, pg_own_write_seen_after_cut);
    tcase_add_test(tc, pg_own_write_unapplied_answers_unavailable);
}
