/*
 * test_store_pg.c — what only the PostgreSQL backend has, run in test_store's
 * PostgreSQL variant (SM_STORE_BACKEND=pg; main() and the fixture, which
 * makes a fresh database for each test, are in test_store.c).
 *
 * Covers: migrations applied once and recorded, a newer schema or another
 * history refused, two stores opening a new database at once; an unreachable
 * server; no password in the URI; the change feed between two stores (every
 * kind of write, counts, a store opened later, every connection cut); the
 * server killed and restarted under two stores; two models on one database.
 */
#include "test_store.h"

#include <check.h>
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "siamese/common.h"
#include "siamese/store.h"

START_TEST(pg_migrations_recorded_once) {
    store_close(open_ok(FP_A, 0));
    int64_t n = raw_int("SELECT count(*) FROM schema_migrations");
    ck_assert_int_ge(n, 1);
    ck_assert_int_eq(raw_int("SELECT max(version) FROM schema_migrations"), n);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM pg_tables WHERE tablename IN"
                             " ('subjects', 'samples', 'changes', 'serving_model')"),
                     4);
    int64_t applied = raw_int("SELECT applied_at FROM schema_migrations WHERE version = 1");
    ck_assert_int_gt(applied, 1600000000000);
    store_close(open_ok(FP_A, 0));
    ck_assert_int_eq(raw_int("SELECT count(*) FROM schema_migrations"), n);
    ck_assert_int_eq(raw_int("SELECT applied_at FROM schema_migrations WHERE version = 1"),
                     applied);
}
END_TEST

START_TEST(pg_newer_or_other_schema_refused) {
    store_close(open_ok(FP_A, 0));
    raw_exec("INSERT INTO schema_migrations SELECT max(version) + 1, 'from_the_future', 0"
             " FROM schema_migrations");
    Store *s = NULL;
    char err[SM_ERRMAX] = "";
    StoreConfig cfg = config(FP_A, 0);
    ck_assert_int_eq(store_open(&cfg, &s, err), -ENOTSUP);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(err, "newer"));
    raw_exec("DELETE FROM schema_migrations WHERE name = 'from_the_future'");
    raw_exec("UPDATE schema_migrations SET name = '0001_forked' WHERE version = 1");
    ck_assert_int_eq(store_open(&cfg, &s, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "does not match"));
}
END_TEST

static void *open_close(void *arg) {
    Store *s = NULL;
    char err[SM_ERRMAX] = "";
    StoreConfig cfg = config(FP_A, 0);
    int *rc = arg;
    *rc = store_open(&cfg, &s, err);
    store_close(s);
    return NULL;
}

/* The advisory lock: four stores opening a new database at once all succeed
 * and the schema is applied once. */
START_TEST(pg_concurrent_first_open) {
    pthread_t t[4];
    int rc[4] = {-1, -1, -1, -1};
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, open_close, &rc[i]), 0);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ck_assert_int_eq(rc[i], 0);
    }
    ck_assert_int_eq(raw_int("SELECT count(*) FROM schema_migrations WHERE version = 1"), 1);
}
END_TEST

START_TEST(pg_unreachable_and_no_password_in_uri) {
    Store *s = NULL;
    char err[SM_ERRMAX] = "";
    StoreConfig cfg = config(FP_A, 0);
    /* Port 1 on loopback: nothing listens there. */
    cfg.path = "postgresql://someone@127.0.0.1:1/db?connect_timeout=2";
    ck_assert_int_eq(store_open(&cfg, &s, err), -ENOTCONN);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(err, "someone@127.0.0.1:1/db"));
    ck_assert_ptr_nonnull(strstr(err, "cannot connect"));
    /* A password in the URI would show in logs and process lists. */
    const char *with_pw[] = {"postgresql://someone:s3cr3tpw@127.0.0.1:1/db",
                             "postgres://127.0.0.1:1/db?password=s3cr3tpw",
                             "postgres://127.0.0.1:1/db?%70assword=s3cr3tpw",
                             "postgres://127.0.0.1:1/db?sslmode=disable&pa%73%73word=s3cr3tpw",
                             "postgres://127.0.0.1:1/db?sslmode=disable&password=s3cr3tpw"};
    for (size_t i = 0; i < SM_ARRAY_LEN(with_pw); i++) {
        cfg.path = with_pw[i];
        ck_assert_int_eq(store_open(&cfg, &s, err), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "pgpass"));
    }
    /* A colon in the host part or a query value is not a password. */
    cfg.path = "postgresql://someone@[::1]:1/db?application_name=a:b";
    ck_assert_int_eq(store_open(&cfg, &s, err), -ENOTCONN);
    /* The scheme in any case is PostgreSQL's; another scheme is refused, not a path. */
    cfg.path = "PostgreSQL://someone@127.0.0.1:1/db?connect_timeout=2";
    ck_assert_int_eq(store_open(&cfg, &s, err), -ENOTCONN);
    ck_assert_ptr_nonnull(strstr(err, "cannot connect"));
    const char *other[] = {"postgre://h/x", "sqlite://x.db", "http://h/x"};
    for (size_t i = 0; i < SM_ARRAY_LEN(other); i++) {
        cfg.path = other[i];
        ck_assert_int_eq(store_open(&cfg, &s, err), -EINVAL);
        ck_assert_int_eq(store_dir_make(other[i], err), -EINVAL);
    }
    ck_assert_int_eq(store_db_is_postgres("Postgresql://x/y"), 1);
    ck_assert_int_eq(store_db_is_postgres("POSTGRES://x/y"), 1);
    ck_assert_int_eq(store_db_is_uri("siamesed-data/a://b.db"), 0);
    ck_assert_int_eq(store_db_is_postgres("postgres://x/y"), 1);
    ck_assert_int_eq(store_db_is_postgres("postgresql://x/y"), 1);
    ck_assert_int_eq(store_db_is_postgres("siamesed-data/postgresql.db"), 0);
    ck_assert_int_eq(store_db_is_postgres(NULL), 0);
}
END_TEST

START_TEST(pg_max_bytes_refused) {
    Store *s = NULL;
    char err[SM_ERRMAX] = "";
    StoreConfig cfg = config(FP_A, 0);
    cfg.max_bytes = 1 << 20;
    ck_assert_int_eq(store_open(&cfg, &s, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "max_db_size"));
}
END_TEST

/* An enroll is one statement whose samples travel as arrays: sources and
 * content types that need quoting in an array literal come back exactly. */
START_TEST(pg_enroll_arrays_quoted) {
    Store *s = open_ok(FP_A, 1);
    char err[SM_ERRMAX] = "";
    const char *src[] = {"a\"b", "c\\d", "{e,f}", "NULL", " g ", "h\\\"i"};
    enum { N = SM_ARRAY_LEN(src) };
    float e[N][DIM];
    uint8_t img[N][3];
    StoreSampleIn in[N];
    int64_t ids[N];
    for (int i = 0; i < N; i++) {
        emb(300 + (uint64_t)i, e[i]);
        img[i][0] = (uint8_t)i, img[i][1] = 7, img[i][2] = 9;
        in[i] = (StoreSampleIn){.embedding = e[i], .source = src[i]};
        if (i % 2 == 0) /* every other one with an image */
            in[i].image = img[i], in[i].image_len = 3 - (size_t)(i % 3 == 0),
            in[i].content_type = "image/x-y+z";
    }
    StoreEnrolled res;
    ck_assert_int_eq(store_enroll(s, "quoted", "{\"k\":\"v,{}\"}", in, N, ids, &res, err), 0);
    ck_assert_int_eq(res.total, N);
    ck_assert_int_eq(res.created, 1);
    for (int i = 0; i < N; i++) {
        ck_assert_msg(store_source_known(s, src[i], err) == 1, "source %s lost", src[i]);
        if (i)
            ck_assert_int_gt(ids[i], ids[i - 1]);
    }
    ck_assert_int_eq(store_source_known(s, "a", err), 0);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM samples WHERE source IS NULL"), 0);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM samples WHERE image IS NULL"), N / 2);
    ck_assert_int_eq(raw_int("SELECT sum(length(image)) FROM samples"), 2 + 3 + 3);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM samples WHERE content_type = 'image/x-y+z'"),
                     N / 2);
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT get_byte(image, 0) FROM samples WHERE id = %lld",
             (long long)ids[4]);
    ck_assert_int_eq(raw_int(sql), 4);
    /* Each sample's embedding is its own, in order. */
    for (int i = 0; i < N; i++) {
        IndexHit h;
        ck_assert_int_eq(store_verify(s, "quoted", e[i], &h, err), 0);
        ck_assert_int_eq(h.sample_id, ids[i]);
    }
    StoreSubject *sj = NULL;
    ck_assert_int_eq(store_get(s, "quoted", 0, 10, &sj, err), 0);
    ck_assert_str_eq(sj->metadata, "{\"k\":\"v,{}\"}");
    store_subject_free(sj);
    store_close(s);
}
END_TEST

/* ---- The change feed ---- */

/* Waits until s's counts are (subjects, samples); 0 if they got there. */
static int until_counts(Store *s, int64_t subjects, int64_t samples, double timeout_ms) {
    double t0 = now_ms();
    for (;;) {
        int64_t a, b;
        store_counts(s, &a, &b);
        if (a == subjects && b == samples)
            return 0;
        if (now_ms() - t0 > timeout_ms)
            return ck_assert_msg(0, "counts %lld/%lld, expected %lld/%lld", (long long)a,
                                 (long long)b, (long long)subjects, (long long)samples),
                   -1;
        usleep(1000);
    }
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Two stores on one database: what one writes, the other's index and counts
 * show (through the feed), deletes included; the writer's own index too. */
START_TEST(pg_two_stores_in_step) {
    Store *a = open_ok(FP_A, 0), *b = open_ok(FP_A, 0);
    char err[SM_ERRMAX];
    enum { N = 40 };
    double lag[N];
    int64_t ids[N];
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%02d", i);
        enroll_n(i % 2 ? b : a, name, NULL, 1, 1000 + (uint64_t)i, &ids[i]);
        /* The writer's own index has it at once. */
        ck_assert_double_ge(until_found(i % 2 ? b : a, 1000 + (uint64_t)i, name, 0), 0);
        lag[i] = until_found(i % 2 ? a : b, 1000 + (uint64_t)i, name, 5000);
        ck_assert_msg(lag[i] >= 0, "%s never reached the other store", name);
    }
    qsort(lag, N, sizeof *lag, cmp_double);
    fprintf(stderr, "pg_two_stores_in_step: propagation p50 %.2f ms, max %.2f ms (%d enrolls)\n",
            lag[N / 2], lag[N - 1], N);
    until_counts(a, N, N, 5000);
    until_counts(b, N, N, 5000);
    /* A subject with no samples counts too. */
    enroll_n(a, "empty", NULL, 0, 0, NULL);
    until_counts(b, N + 1, N, 5000);
    /* Deletes on one reach the other. */
    ck_assert_int_eq(store_delete_sample(b, "s00", ids[0], NULL, err), 0);
    ck_assert_int_eq(store_delete_subject(b, "s01", NULL, err), 0);
    ck_assert_int_eq(store_delete_subject(a, "empty", NULL, err), 0);
    until_counts(a, N - 1, N - 2, 5000);
    until_counts(b, N - 1, N - 2, 5000);
    float q[DIM];
    IndexHit h;
    emb(1000, q);
    ck_assert_int_eq(store_verify(a, "s00", q, &h, err), STORE_EMPTY);
    ck_assert_int_eq(store_verify(a, "s01", q, &h, err), SM_ABSENT);
    store_close(a);
    /* A store opened later starts from the snapshot and the feed goes on from there. */
    a = open_ok(FP_A, 0);
    enroll_n(b, "late", NULL, 1, 77, NULL);
    ck_assert_double_ge(until_found(a, 77, "late", 5000), 0);
    until_counts(a, N, N - 1, 5000);
    store_close(a);
    store_close(b);
}
END_TEST

/* Every connection of this test's database cut (as a server restart or a
 * network failure would): the stores reconnect on their own, and the feed
 * catches up on what it missed while it was away. */
START_TEST(pg_feed_catches_up_after_lost_connections) {
    Store *a = open_ok(FP_A, 0), *b = open_ok(FP_A, 0);
    char err[SM_ERRMAX];
    enroll_n(a, "before", NULL, 1, 5, NULL);
    ck_assert_double_ge(until_found(b, 5, "before", 5000), 0);
    for (int round = 0; round < 3; round++) {
        raw_int("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()");
        char name[16];
        snprintf(name, sizeof name, "after%d", round);
        /* The writer's connection was cut too: the write reconnects first. */
        enroll_n(a, name, NULL, 1, 10 + (uint64_t)round, NULL);
        ck_assert_msg(until_found(b, 10 + (uint64_t)round, name, 10000) >= 0, "%s not seen", name);
        StoreSubject *sj = NULL;
        ck_assert_int_eq(store_get(b, name, 0, 10, &sj, err), 0);
        store_subject_free(sj);
    }
    until_counts(b, 4, 4, 5000);
    store_close(a);
    store_close(b);
}
END_TEST

/* The feed is pruned (a writer with feed_retain 5 keeps about 5 change rows
 * behind the newest); a store whose last applied change was pruned reloads
 * its index from the tables, which the feed alone could not have told it. */
START_TEST(pg_feed_pruned_and_reloaded) {
    char err[SM_ERRMAX] = "";
    StoreConfig cfg = config(FP_A, 0);
    cfg.feed_retain = 5;
    Store *a = NULL, *b = open_ok(FP_A, 0);
    ck_assert_int_eq(store_open(&cfg, &a, err), 0);
    for (int i = 0; i < 70; i++) {
        char name[16];
        snprintf(name, sizeof name, "p%02d", i);
        enroll_n(a, name, NULL, 1, 400 + (uint64_t)i, NULL);
    }
    /* 70 enrolls: 140 change rows, pruned at the 64th commit to 5 behind. */
    ck_assert_int_le(raw_int("SELECT count(*) FROM changes"), 5 + 2 * 6);
    ck_assert_int_ge(raw_int("SELECT id FROM feed_floor"), 128 - 5);
    until_counts(b, 70, 70, 5000);
    /* b misses what happens next: a sample written behind the feed's back,
     * and change rows pruned before b saw them. */
    raw_exec("INSERT INTO samples (subject_id, embedding, fingerprint, created_at)"
             " SELECT 'p00', embedding, fingerprint, 1 FROM samples WHERE subject_id = 'p01'");
    raw_exec("SELECT setval(pg_get_serial_sequence('changes', 'id'), max(id) + 10) FROM changes");
    raw_exec("UPDATE feed_floor SET id = (SELECT max(id) + 5 FROM changes)");
    enroll_n(a, "after", NULL, 1, 500, NULL);
    /* b reloads: p00 now has the copied sample, nearest to p01's embedding. */
    float q[DIM];
    emb(401, q);
    double t0 = now_ms();
    IndexHit h;
    while (now_ms() - t0 < 5000) {
        if (store_verify(b, "p00", q, &h, err) == 0 && h.distance < 1e-3f)
            break;
        usleep(1000);
    }
    ck_assert_int_eq(store_verify(b, "p00", q, &h, err), 0);
    ck_assert_float_lt(h.distance, 1e-3f);
    ck_assert_double_ge(until_found(b, 500, "after", 5000), 0);
    until_counts(b, 71, 72, 5000);
    store_close(a);
    store_close(b);
}
END_TEST

/* A reload that fails (here: a sample row the loader refuses) keeps the
 * index it had and answers -ENOTCONN (503) meanwhile, never an empty or
 * partial index; it is retried, and once the row is gone it succeeds. */
START_TEST(pg_failed_reload_answers_unavailable) {
    char err[SM_ERRMAX] = "";
    Store *a = open_ok(FP_A, 0), *b = open_ok(FP_A, 0);
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof name, "r%d", i);
        enroll_n(a, name, NULL, 1, 600 + (uint64_t)i, NULL);
    }
    until_counts(b, 5, 5, 5000);
    ck_assert_double_ge(until_found(b, 604, "r4", 5000), 0);
    /* A row b's reload refuses (an embedding of 1 byte), then the feed pruned under b. */
    raw_exec("INSERT INTO samples (subject_id, embedding, fingerprint, created_at)"
             " SELECT 'r0', '\\x00'::bytea, fingerprint, 1 FROM samples WHERE subject_id = 'r1'");
    raw_exec("SELECT setval(pg_get_serial_sequence('changes', 'id'), max(id) + 10) FROM changes");
    raw_exec("UPDATE feed_floor SET id = (SELECT max(id) + 5 FROM changes)");
    enroll_n(a, "after", NULL, 1, 700, NULL);
    float q[DIM];
    emb(602, q);
    IndexHit h;
    int n = 0, rc = 0;
    double t0 = now_ms();
    while ((rc = store_identify_with(b, q, 1, INDEX_EXACT, &h, &n, err)) == 0 && n == 1 &&
           now_ms() - t0 < 5000)
        usleep(1000);
    ck_assert_msg(rc == -ENOTCONN, "identify during a failed reload: rc %d, %d hits", rc, n);
    ck_assert_int_eq(store_verify(b, "r2", q, &h, err), -ENOTCONN);
    /* Still refused a while later (the reload is retried and fails again). */
    usleep(1500 * 1000);
    ck_assert_int_eq(store_identify_with(b, q, 1, INDEX_EXACT, &h, &n, err), -ENOTCONN);
    raw_exec("DELETE FROM samples WHERE length(embedding) = 1");
    ck_assert_double_ge(until_found(b, 700, "after", 10000), 0);
    ck_assert_int_eq(store_verify(b, "r2", q, &h, err), 0);
    ck_assert_float_lt(h.distance, 1e-3f);
    until_counts(b, 6, 6, 5000);
    store_close(a);
    store_close(b);
}
END_TEST

static void pq_ok(PGconn *c, const char *sql) {
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
                  "%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

/* A notification that arrives while the listener runs a catch-up query is
 * read by libpq with that query's result: the listener must handle it then,
 * not sleep on a socket with nothing more to come (FEED_POLL_MS, 1 s). Made
 * deterministic: the listener's catch-up is held in its feed_floor read (a
 * gap in the ids makes it check the floor) while the next change commits. */
START_TEST(pg_feed_notification_during_catch_up) {
    Store *b = open_ok(FP_A, 0);
    PGconn *lk = PQconnectdb(test_store_db()), *w = PQconnectdb(test_store_db());
    ck_assert_int_eq(PQstatus(lk), CONNECTION_OK);
    ck_assert_int_eq(PQstatus(w), CONNECTION_OK);
    pq_ok(lk, "BEGIN; LOCK TABLE feed_floor IN ACCESS EXCLUSIVE MODE");
    /* One subject, after a gap: b's listener reads it, then waits on the floor. */
    pq_ok(w, "SELECT setval(pg_get_serial_sequence('changes', 'id'), 10)");
    pq_ok(w, "BEGIN; INSERT INTO changes (kind, subject_id, d_subjects, d_samples)"
             " VALUES ('subject', 'n1', 1, 0); NOTIFY siamesed_changes; COMMIT");
    until_counts(b, 1, 0, 5000); /* applied; the listener's floor read is waiting now */
    usleep(100 * 1000);
    /* The second one commits during that query; its notification waits in libpq. */
    pq_ok(w, "BEGIN; INSERT INTO changes (kind, subject_id, d_subjects, d_samples)"
             " VALUES ('subject', 'n2', 1, 0); NOTIFY siamesed_changes; COMMIT");
    usleep(100 * 1000);
    double t0 = now_ms();
    pq_ok(lk, "COMMIT");
    int64_t subjects = 0;
    while (subjects < 2 && now_ms() - t0 < 3000) {
        store_counts(b, &subjects, NULL);
        usleep(1000);
    }
    double lag = now_ms() - t0;
    ck_assert_int_eq(subjects, 2);
    ck_assert_msg(lag < 400, "the queued notification waited %.0f ms", lag);
    PQfinish(lk);
    PQfinish(w);
    store_close(b);
}
END_TEST

/* A server that answers "not now" (read only, as a standby after a failover
 * is) gives -ENOTCONN (503 store_unavailable), not an error of ours (500). */
START_TEST(pg_read_only_server_unavailable) {
    char err[SM_ERRMAX] = "";
    Store *a = open_ok(FP_A, 0);
    enroll_n(a, "before", NULL, 1, 800, NULL);
    PGconn *w = PQconnectdb(test_store_db());
    ck_assert_int_eq(PQstatus(w), CONNECTION_OK);
    pq_ok(w, "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only"
             " = on', current_database()); END $$");
    pq_ok(w, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
             " WHERE datname = current_database() AND pid <> pg_backend_pid()");
    StoreSampleIn in = {0};
    float e[DIM];
    emb(801, e);
    in.embedding = e;
    int64_t id = 0;
    ck_assert_int_eq(store_enroll(a, "during", NULL, &in, 1, &id, NULL, err), -ENOTCONN);
    pq_ok(w, "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I RESET default_transaction_read_only',"
             " current_database()); END $$");
    pq_ok(w, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
             " WHERE datname = current_database() AND pid <> pg_backend_pid()");
    ck_assert_int_eq(store_enroll(a, "during", NULL, &in, 1, &id, NULL, err), 0);
    PQfinish(w);
    store_close(a);
}
END_TEST

static void *unlock_later(void *arg) {
    PGconn *c = arg;
    usleep(3000 * 1000);
    pq_ok(c, "SELECT pg_advisory_unlock_all(); COMMIT");
    return NULL;
}

/* A writer elsewhere that holds the cluster-wide write lock (its host
 * frozen mid-transaction): this store's write answers -ENOTCONN (503) after
 * busy_timeout_ms rather than hang, and writes work once the lock is free. */
START_TEST(pg_write_lock_wait_bounded) {
    char err[SM_ERRMAX] = "";
    StoreConfig cfg = config(FP_A, 0);
    cfg.busy_timeout_ms = 300;
    Store *a = NULL;
    ck_assert_int_eq(store_open(&cfg, &a, err), 0);
    PGconn *lk = PQconnectdb(test_store_db());
    ck_assert_int_eq(PQstatus(lk), CONNECTION_OK);
    pq_ok(lk, "BEGIN; SELECT pg_advisory_lock(7564593)");
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, unlock_later, lk), 0);
    StoreSampleIn in = {0};
    float e[DIM];
    emb(900, e);
    in.embedding = e;
    int64_t id = 0;
    double t0 = now_ms();
    int rc = store_enroll(a, "locked", NULL, &in, 1, &id, NULL, err);
    double took = now_ms() - t0;
    pthread_join(th, NULL);
    ck_assert_msg(rc == -ENOTCONN && took < 2500, "enroll: rc %d after %.0f ms (%s)", rc, took,
                  err);
    ck_assert_int_eq(store_enroll(a, "locked", NULL, &in, 1, &id, NULL, err), 0);
    PQfinish(lk);
    store_close(a);
}
END_TEST

static void *commit_later(void *arg) {
    usleep(4000 * 1000);
    pq_ok(arg, "COMMIT");
    return NULL;
}

/* store_close() while the listener's query hangs (held by a lock here, a
 * frozen server in life): the query is cancelled and close returns at once. */
START_TEST(pg_close_cancels_listener) {
    Store *b = open_ok(FP_A, 0);
    PGconn *lk = PQconnectdb(test_store_db()), *w = PQconnectdb(test_store_db());
    ck_assert_int_eq(PQstatus(lk), CONNECTION_OK);
    ck_assert_int_eq(PQstatus(w), CONNECTION_OK);
    pq_ok(lk, "BEGIN; LOCK TABLE feed_floor IN ACCESS EXCLUSIVE MODE");
    pq_ok(w, "SELECT setval(pg_get_serial_sequence('changes', 'id'), 10)");
    pq_ok(w, "BEGIN; INSERT INTO changes (kind, subject_id, d_subjects, d_samples)"
             " VALUES ('subject', 'n1', 1, 0); NOTIFY siamesed_changes; COMMIT");
    until_counts(b, 1, 0, 5000); /* the listener waits in its feed_floor read now */
    usleep(100 * 1000);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, commit_later, lk), 0);
    double t0 = now_ms();
    store_close(b);
    double took = now_ms() - t0;
    pthread_join(th, NULL);
    ck_assert_msg(took < 2000, "store_close took %.0f ms", took);
    PQfinish(lk);
    PQfinish(w);
}
END_TEST

/* Every session is set up alike, also after a reconnect (PQreset): with
 * PGCLIENTENCODING=LATIN1 in the environment, text still goes as UTF-8. */
START_TEST(pg_session_setup_survives_reconnect) {
    char err[SM_ERRMAX] = "";
    ck_assert_int_eq(raw_int("SELECT count(*) FROM pg_database WHERE datname = current_database()"
                             " AND pg_encoding_to_char(encoding) = 'UTF8'"),
                     1);
    setenv("PGCLIENTENCODING", "LATIN1", 1);
    Store *a = open_ok(FP_A, 0);
    unsetenv("PGCLIENTENCODING");
    raw_exec("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
             " WHERE datname = current_database() AND pid <> pg_backend_pid()");
    StoreSampleIn in = {0};
    float e[DIM];
    emb(950, e);
    in.embedding = e;
    int64_t id = 0;
    ck_assert_int_eq(store_enroll(a, "enc", "{\"n\":\"\xc3\xa9\"}", &in, 1, &id, NULL, err), 0);
    ck_assert_int_eq(
        raw_int("SELECT count(*) FROM subjects WHERE metadata = '{\"n\":\"\xc3\xa9\"}'"), 1);
    StoreSubject *sj = NULL;
    ck_assert_int_eq(store_get(a, "enc", 0, 10, &sj, err), 0);
    ck_assert_str_eq(sj->metadata, "{\"n\":\"\xc3\xa9\"}");
    store_subject_free(sj);
    store_close(a);
}
END_TEST

/* Pruning is housekeeping after the commit: when it cannot run (feed_floor
 * locked here, past busy_timeout_ms) every client write still succeeds, and
 * the next pruning catches up. */
START_TEST(pg_prune_failure_fails_no_write) {
    char err[SM_ERRMAX] = "";
    StoreConfig cfg = config(FP_A, 0);
    cfg.feed_retain = 5;
    cfg.busy_timeout_ms = 200;
    Store *a = NULL;
    ck_assert_int_eq(store_open(&cfg, &a, err), 0);
    PGconn *lk = PQconnectdb(test_store_db());
    ck_assert_int_eq(PQstatus(lk), CONNECTION_OK);
    pq_ok(lk, "BEGIN; LOCK TABLE feed_floor IN ACCESS EXCLUSIVE MODE");
    StoreSampleIn in = {0};
    float e[DIM];
    in.embedding = e;
    for (int i = 0; i < 64; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%02d", i);
        emb(1200 + (uint64_t)i, e);
        int64_t id = 0;
        ck_assert_msg(store_enroll(a, name, NULL, &in, 1, &id, NULL, err) == 0, "enroll %d: %s", i,
                      err);
    }
    pq_ok(lk, "COMMIT");
    ck_assert_int_eq(raw_int("SELECT count(*) FROM changes"), 128);
    for (int i = 64; i < 128; i++) {
        char name[16];
        snprintf(name, sizeof name, "f%02d", i);
        enroll_n(a, name, NULL, 1, 1200 + (uint64_t)i, NULL);
    }
    ck_assert_int_le(raw_int("SELECT count(*) FROM changes"), 5);
    ck_assert_int_eq(raw_int("SELECT id FROM feed_floor"), 256 - 5);
    PQfinish(lk);
    store_close(a);
}
END_TEST

/* ---- One model per database ---- */

/* Daemons with two models on one database: the one whose model does not
 * serve it is refused (at open when the other's samples are there, on
 * enroll when it came first to an empty database and another model took it
 * over), and one seeing the other model's samples arrive stops answering
 * rather than compare embeddings of two models. */
START_TEST(pg_two_models_refused) {
    char err[SM_ERRMAX] = "";
    Store *a = open_ok(FP_A, 0);
    /* The database is empty: a daemon with model B may take it over ... */
    Store *b = open_ok(FP_B, 0);
    /* ... and then A's enrolls are refused, naming both models ... */
    float q[DIM];
    emb(1, q);
    StoreSampleIn in = {.embedding = q};
    int64_t id;
    ck_assert_int_eq(store_enroll(a, "by_a", NULL, &in, 1, &id, NULL, err), -ESTALE);
    ck_assert_msg(strstr(err, "served with model 012345678") != NULL, "%s", err);
    enroll_n(b, "by_b", NULL, 2, 1, NULL);
    /* A sees B's samples arrive and refuses to compare them with its model's. */
    double t0 = now_ms();
    IndexHit h;
    int n = 0;
    while (store_identify(a, q, 1, &h, &n, err) == 0 && now_ms() - t0 < 5000)
        usleep(1000);
    ck_assert_int_eq(store_identify(a, q, 1, &h, &n, err), -ESTALE);
    store_close(a);
    /* A daemon with model A opening it now: STORE_STALE, as on SQLite. */
    StoreConfig cfg = config(FP_A, 0);
    ck_assert_int_eq(store_open(&cfg, &a, err), STORE_STALE);
    ck_assert_ptr_nonnull(strstr(err, "2 of 2"));
    ck_assert_int_eq(store_enroll(a, "by_a", NULL, &in, 1, &id, NULL, err), -ESTALE);
    store_close(a);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM serving_model WHERE fingerprint = '" FP_B "'"),
                     1);
    store_close(b);
}
END_TEST

/* ---- PostgreSQL going away ---- */

static Store *open_uri(const char *uri, const char *fp) {
    Store *s = NULL;
    char err[SM_ERRMAX] = "";
    StoreConfig cfg = config(fp, 0);
    cfg.path = uri;
    int rc = store_open(&cfg, &s, err);
    ck_assert_msg(rc == 0, "store_open: %d %s", rc, err);
    return s;
}

/* The server stopped (an immediate shutdown, as a crash) and started again,
 * with this test's own cluster: while it is down the calls that need it fail
 * with -ENOTCONN and identify and verify answer from the index; afterwards
 * everything works again without reopening, and every acknowledged enroll
 * is there. */
START_TEST(pg_server_down_and_back) {
    PgCluster *pg = NULL;
    char perr[PG_CLUSTER_ERRMAX] = "", err[SM_ERRMAX] = "";
    ck_assert_msg(pg_cluster_start(&pg, 0, perr) == 0, "%s", perr);
    const char *uri = pg_cluster_uri(pg);
    Store *a = open_uri(uri, FP_A), *b = open_uri(uri, FP_A);
    int64_t acked = 0;
    for (int i = 0; i < 5; i++, acked++) {
        char name[16];
        snprintf(name, sizeof name, "up%d", i);
        enroll_n(i % 2 ? a : b, name, NULL, 1, 100 + (uint64_t)i, NULL);
    }
    until_counts(a, acked, acked, 5000);
    until_counts(b, acked, acked, 5000);
    ck_assert_int_eq(pg_cluster_kill(pg, perr), 0);

    float q[DIM];
    emb(101, q);
    StoreSampleIn in = {.embedding = q};
    int64_t id;
    ck_assert_int_eq(store_enroll(a, "down", NULL, &in, 1, &id, NULL, err), -ENOTCONN);
    ck_assert_ptr_nonnull(strstr(err, "unavailable"));
    StoreSubject *sj = NULL;
    ck_assert_int_eq(store_get(b, "up1", 0, 10, &sj, err), -ENOTCONN);
    StoreListItem *items = NULL;
    int n = 0;
    char next[STORE_CURSOR_SIZE];
    ck_assert_int_eq(store_list(b, NULL, 10, &items, &n, next, err), -ENOTCONN);
    ck_assert_int_eq(store_delete_subject(b, "up1", NULL, err), -ENOTCONN);
    IndexHit h;
    ck_assert_int_eq(store_identify(b, q, 1, &h, &n, err), 0);
    ck_assert_str_eq(h.subject, "up1");
    ck_assert_int_eq(store_verify(a, "up1", q, &h, err), 0);
    int64_t subjects, samples;
    store_counts(a, &subjects, &samples);
    ck_assert_int_eq(samples, acked);

    ck_assert_msg(pg_cluster_restart(pg, perr) == 0, "%s", perr);
    /* Back: the same stores write and read again. */
    enroll_n(a, "back", NULL, 1, 200, NULL);
    acked++;
    ck_assert_int_eq(store_get(b, "up1", 0, 10, &sj, err), 0);
    store_subject_free(sj);
    ck_assert_msg(until_found(b, 200, "back", 10000) >= 0, "the feed did not come back");
    until_counts(b, acked, acked, 5000);
    store_close(a);
    store_close(b);
    a = open_uri(uri, FP_A);
    store_counts(a, &subjects, &samples);
    ck_assert_int_eq(samples, acked);
    store_close(a);
    pg_cluster_stop(pg);
}
END_TEST

void test_store_pg_add(TCase *tc) {
    tcase_add_test(tc, pg_migrations_recorded_once);
    tcase_add_test(tc, pg_newer_or_other_schema_refused);
    tcase_add_test(tc, pg_concurrent_first_open);
    tcase_add_test(tc, pg_unreachable_and_no_password_in_uri);
    tcase_add_test(tc, pg_max_bytes_refused);
    tcase_add_test(tc, pg_enroll_arrays_quoted);
    tcase_add_test(tc, pg_two_stores_in_step);
    tcase_add_test(tc, pg_feed_catches_up_after_lost_connections);
    tcase_add_test(tc, pg_server_down_and_back);
    tcase_add_test(tc, pg_two_models_refused);
    tcase_add_test(tc, pg_feed_pruned_and_reloaded);
    tcase_add_test(tc, pg_failed_reload_answers_unavailable);
    tcase_add_test(tc, pg_feed_notification_during_catch_up);
    tcase_add_test(tc, pg_read_only_server_unavailable);
    tcase_add_test(tc, pg_write_lock_wait_bounded);
    tcase_add_test(tc, pg_close_cancels_listener);
    tcase_add_test(tc, pg_session_setup_survives_reconnect);
    tcase_add_test(tc, pg_prune_failure_fails_no_write);
}
