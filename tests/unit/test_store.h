/*
 * test_store.h — private to the two halves of the test_store executable.
 *
 * test_store.c defines these helpers and runs the one test case, whose
 * checked fixture makes a fresh temporary directory for each test's database;
 * test_store_writes.c uses them and adds its tests to that case. The helpers
 * fail the running test (ck_assert) rather than return an error, so they may
 * only be called inside a test.
 */
#ifndef SM_TEST_STORE_H
#define SM_TEST_STORE_H

#include <check.h>
#include <sqlite3.h>
#include <stdint.h>

#include "siamese/store.h"

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
/* This test's database opened directly; the caller sqlite3_close()s it. */
sqlite3 *raw_open(void);
/* The first column of the one row sql must return. */
int64_t raw_int(sqlite3 *db, const char *sql);

/* From test_store_writes.c: appends enroll, get, list, delete, identify and
 * verify, durability and group commit tests to tc, in that order. */
void test_store_writes_add(TCase *tc);

#endif
