/*
 * test_store.h — private to the two halves of the test_store executable.
 *
 * test_store.c defines these helpers and runs the one test case, whose
 * checked fixture makes a fresh database for each test (a file in a new
 * temporary directory, or in the PostgreSQL variant a new database);
 * test_store_writes.c and test_store_pg.c use them and add their tests. The helpers
 * fail the running test (ck_assert) rather than return an error, so they may
 * only be called inside a test.
 */
#ifndef SM_TEST_STORE_H
#define SM_TEST_STORE_H

#include <check.h>
#include <stdint.h>

#include "siamese/store.h"

#include "pg_cluster.h"

#define DIM 8
#define FP_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define FP_B "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* The config of this test's database, at dimension DIM. */
StoreConfig config(const char *fp, int keep_images);
/* store_open() that must succeed; the caller closes the store. */
Store *open_ok(const char *fp, int keep_images);
/* A deterministic embedding of DIM floats for (seed). */
void emb(uint64_t seed, float *v);
/* Enrolls n <= 16 samples (embeddings emb(seed0 + i)) to subject, their ids
 * into ids unless NULL; returns the subject's total. */
int64_t enroll_n(Store *s, const char *subject, const char *meta, int n, uint64_t seed0,
                 int64_t *ids);
/* The first column (an integer) of the one row sql must return, and a
 * statement run, on this test's database opened directly (SQLite or
 * PostgreSQL: the SQL must suit both, or check test_store_pg()). */
int64_t raw_int(const char *sql);
void raw_exec(const char *sql);
/* Monotonic milliseconds. */
double now_ms(void);
/* Milliseconds until identify on s finds subject nearest to emb(seed), or -1
 * after timeout_ms (-ENOTCONN, a store behind, counts as not yet). */
double until_found(Store *s, uint64_t seed, const char *subject, double timeout_ms);
/* The PostgreSQL variant's cluster (NULL when SM_TEST_PG_URI named a server). */
extern PgCluster *test_store_pg_cluster;
/* 1 in the PostgreSQL variant (SM_STORE_BACKEND=pg). */
int test_store_pg(void);
/* This test's database: a file path or a postgresql:// URI. Borrowed. */
const char *test_store_db(void);

/* From test_store_writes.c: appends enroll, get, list, delete, identify and
 * verify, durability and group commit tests to tc, in that order. */
void test_store_writes_add(TCase *tc);
/* From test_store_pg.c: the PostgreSQL-only tests (migrations, the change
 * feed between two stores, the server going away, two models). */
void test_store_pg_add(TCase *tc);
/* From test_store_pg_rw.c: read-your-writes on PostgreSQL. */
void test_store_pg_rw_add(TCase *tc);
/* From test_store_pg_feed.c: what the change feed refuses. */
void test_store_pg_feed_add(TCase *tc);

#endif
