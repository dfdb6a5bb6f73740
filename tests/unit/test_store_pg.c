/*
 * test_store_pg.c — what only the PostgreSQL backend has, run in test_store's
 * PostgreSQL variant (SM_STORE_BACKEND=pg; main() and the fixture, which
 * makes a fresh database for each test, are in test_store.c).
 *
 * Covers: migrations applied once and recorded, a newer schema or another
 * history refused, two stores opening a new database at once; an unreachable
 * server; no password in the URI.
 */
#include "test_store.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
                             "postgres://127.0.0.1:1/db?sslmode=disable&password=s3cr3tpw"};
    for (size_t i = 0; i < SM_ARRAY_LEN(with_pw); i++) {
        cfg.path = with_pw[i];
        ck_assert_int_eq(store_open(&cfg, &s, err), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "pgpass"));
    }
    /* A colon in the host part or a query value is not a password. */
    cfg.path = "postgresql://someone@[::1]:1/db?application_name=a:b";
    ck_assert_int_eq(store_open(&cfg, &s, err), -ENOTCONN);
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

void test_store_pg_add(TCase *tc) {
    tcase_add_test(tc, pg_migrations_recorded_once);
    tcase_add_test(tc, pg_newer_or_other_schema_refused);
    tcase_add_test(tc, pg_concurrent_first_open);
    tcase_add_test(tc, pg_unreachable_and_no_password_in_uri);
    tcase_add_test(tc, pg_max_bytes_refused);
}
