/*
 * test_store_pg_rw.c — read-your-writes on PostgreSQL (review F5), run in
 * test_store's PostgreSQL variant: once an enroll returned, identify and
 * verify on the same store see the sample, or answer -ENOTCONN (the store
 * is behind) until its feed has applied it; never a silent miss. Made
 * deterministic with pg_test_after_commit: right after the COMMIT, every
 * other session of the database is cut (the writer's among them) while the
 * feed is held, so the listener cannot apply the change first.
 *
 * And a COMMIT whose answer is lost with the connection (review F6): the
 * COMMIT made to sleep by a deferred trigger while the writer's socket is
 * shut (the server commits), or its session killed (it rolls back): the
 * writer asks how it ended and answers success, -ENOTCONN or, when it
 * cannot tell, -EINPROGRESS.
 *
 * And what the feed's order rests on (review F15): change ids taken one at
 * a time; a database whose id sequence caches more is refused at open.
 */
#include "test_store.h"

#include <check.h>
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "src/store/store_pg_int.h"

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

/* 1 if identify on s finds the sample emb(hk.seed) of hk.subject now. */
static int seen(Store *s, int *rc) {
    float q[DIM];
    char err[SM_ERRMAX];
    IndexHit h;
    int n = 0;
    emb(hk.seed, q);
    *rc = store_identify_with(s, q, 1, INDEX_EXACT, &h, &n, err);
    /* The sample itself (distance ~0), not an earlier one of the subject. */
    return *rc == 0 && n == 1 && strcmp(h.subject, hk.subject) == 0 && h.distance < 0.01f;
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

/* Waits (up to 10 s) until s has its feed back: the sample seen, not behind. */
static void settle(Store *s) {
    double t0 = now_ms();
    StoreStats st;
    int rc = 0;
    for (;;) {
        store_stats(s, &st);
        if (seen(s, &rc) && !st.behind)
            return;
        ck_assert_msg(now_ms() - t0 < 10000, "not caught up: rc %d, behind %d", rc, st.behind);
        usleep(1000);
    }
}

#define CUT_TRIES 40

/* Enrolls one sample (emb(seed + attempt), hk.seed) with the hook armed,
 * until an attempt where the listener had not applied it before the cut
 * (at most CUT_TRIES: on a loaded machine the listener often wins). 1 if
 * one had. */
static int enroll_cut(Store *s, const char *subject, uint64_t seed, int64_t *id) {
    for (int i = 0; i < CUT_TRIES; i++) {
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
        settle(s);
    }
    return 0;
}

/* hk reset, with the admin session open and the test's database named. */
static void admin_open(void) {
    memset(&hk, 0, sizeof hk);
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
}

static void hook_arm(int refuse) {
    admin_open();
    hk.refuse = refuse;
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
    ck_assert_msg(enroll_cut(s, "rw", 1501, &id), "the listener applied first %d times", CUT_TRIES);
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
    ck_assert_msg(clean, "the listener applied first %d times", CUT_TRIES);
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

/* ---- A COMMIT whose answer is lost (review F6) ---- */

/* Every insert into samples makes its COMMIT sleep 1 s first (a deferred
 * constraint trigger): the moment to cut the writer's connection. */
static void slow_commits(void) {
    raw_exec("CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS"
             " $$BEGIN PERFORM pg_sleep(1); RETURN NULL; END$$;"
             " CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON samples"
             " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()");
}

typedef struct {
    Store *s;
    uint64_t seed;
    int rc;
    int64_t id;
    char err[SM_ERRMAX];
} Enroll;

static void *enroll_main(void *arg) {
    Enroll *e = arg;
    float v[DIM];
    emb(e->seed, v);
    StoreSampleIn in = {.embedding = v};
    e->rc = store_enroll(e->s, "oc", NULL, &in, 1, &e->id, NULL, e->err);
    return NULL;
}

/* The pid of the session sleeping in its COMMIT (waits up to 5 s). */
static int sleeper(void) {
    char sql[200];
    snprintf(sql, sizeof sql,
             "SELECT pid FROM pg_stat_activity WHERE datname = '%s' AND wait_event = 'PgSleep'",
             hk.db);
    double t0 = now_ms();
    for (;;) {
        PGresult *r = PQexec(hk.admin, sql);
        ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
        int pid = PQntuples(r) == 1 ? atoi(PQgetvalue(r, 0, 0)) : 0;
        PQclear(r);
        if (pid > 0)
            return pid;
        ck_assert_msg(now_ms() - t0 < 5000, "no COMMIT sleeping");
        usleep(5000);
    }
}

enum { CUT_SOCKET, CUT_SOCKET_NO_RECONNECT, KILL_SESSION };

/* Enrolls one sample (emb(seed)) to "oc" on s and, while its COMMIT
 * sleeps, loses the writer's connection as how says. */
static Enroll enroll_losing_commit(Store *s, uint64_t seed, int how) {
    Enroll e = {.s = s, .seed = seed};
    /* The writer is idle: its socket (the batch's, no reconnect in between). */
    int fd = PQsocket(pg_state(s)->wdb);
    ck_assert_int_ge(fd, 0);
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, enroll_main, &e), 0);
    int pid = sleeper();
    if (how == CUT_SOCKET_NO_RECONNECT)
        allow_connections(0);
    if (how == KILL_SESSION) {
        char sql[64];
        snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d, 5000)", pid);
        admin_exec(sql);
    } else {
        /* The server goes on: it commits and then cannot answer. */
        ck_assert_int_eq(shutdown(fd, SHUT_RDWR), 0);
    }
    pthread_join(t, NULL);
    if (how == CUT_SOCKET_NO_RECONNECT)
        allow_connections(1);
    ck_assert_msg(hk.failed[0] == '\0', "%s", hk.failed);
    return e;
}

/* Committed, the answer lost: asked after (txid_status), it is a success
 * (before: -ENOTCONN, a 503 inviting a retry that would store it twice). */
START_TEST(pg_lost_commit_answer_committed) {
    Store *s = open_ok(FP_A, 0);
    admin_open();
    slow_commits();
    Enroll e = enroll_losing_commit(s, 1700, CUT_SOCKET);
    ck_assert_msg(e.rc == 0, "enroll whose COMMIT's answer was lost: %d %s", e.rc, e.err);
    ck_assert_int_gt(e.id, 0);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM samples WHERE subject_id = 'oc'"), 1);
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM samples WHERE id = %lld", (long long)e.id);
    ck_assert_int_eq(raw_int(sql), 1);
    hk.subject = "oc";
    hk.seed = 1700;
    int rc = 0;
    ck_assert_msg(seen(s, &rc), "identify after the enroll: rc %d", rc);
    PQfinish(hk.admin);
    store_close(s);
}
END_TEST

/* The session killed during its COMMIT: rolled back, -ENOTCONN (503,
 * retry), nothing stored. */
START_TEST(pg_lost_commit_aborted_unavailable) {
    Store *s = open_ok(FP_A, 0);
    admin_open();
    slow_commits();
    Enroll e = enroll_losing_commit(s, 1710, KILL_SESSION);
    ck_assert_msg(e.rc == -ENOTCONN, "enroll whose session was killed: %d %s", e.rc, e.err);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM samples WHERE subject_id = 'oc'"), 0);
    PQfinish(hk.admin);
    store_close(s);
}
END_TEST

/* The answer lost and no connection to ask on: -EINPROGRESS (503
 * store_outcome_unknown), and the write did commit (the feed applies it). */
START_TEST(pg_lost_commit_unknown) {
    Store *s = open_ok(FP_A, 0);
    admin_open();
    slow_commits();
    Enroll e = enroll_losing_commit(s, 1720, CUT_SOCKET_NO_RECONNECT);
    ck_assert_msg(e.rc == -EINPROGRESS, "enroll with the outcome unknown: %d %s", e.rc, e.err);
    ck_assert_ptr_nonnull(strstr(e.err, "unknown"));
    ck_assert_double_ge(until_found(s, 1720, "oc", 10000), 0);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM samples WHERE subject_id = 'oc'"), 1);
    PQfinish(hk.admin);
    store_close(s);
}
END_TEST

START_TEST(pg_change_id_cache_refused) {
    char err[SM_ERRMAX] = "";
    store_close(open_ok(FP_A, 0)); /* the schema */
    raw_exec("ALTER SEQUENCE changes_id_seq CACHE 20");
    StoreConfig cfg = config(FP_A, 0);
    Store *s = NULL;
    ck_assert_int_eq(store_open(&cfg, &s, err), -EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(err, "caches 20 ids") && strstr(err, "CACHE 1"), "%s", err);
    raw_exec("ALTER SEQUENCE changes_id_seq CACHE 1");
    store_close(open_ok(FP_A, 0));
}
END_TEST

void test_store_pg_rw_add(TCase *tc) {
    tcase_add_test(tc, pg_own_write_seen_after_cut);
    tcase_add_test(tc, pg_own_write_unapplied_answers_unavailable);
    tcase_add_test(tc, pg_lost_commit_answer_committed);
    tcase_add_test(tc, pg_lost_commit_aborted_unavailable);
    tcase_add_test(tc, pg_lost_commit_unknown);
    tcase_add_test(tc, pg_change_id_cache_refused);
}
