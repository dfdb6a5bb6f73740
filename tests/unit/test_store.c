/*
 * test_store.c — the durable store, through its public API and, where a test
 * must look underneath or plant bad data, through SQLite directly: the half
 * about opening a database, and main() of the one test_store executable.
 *
 * Covers: subject id and cursor validation; migrations applied, recorded,
 * idempotent, upgraded from an older list, rolled back when one fails, a newer
 * schema refused; stale-fingerprint detection and re-embedding (including a
 * failed run resumed); corrupt files and invalid rows refused; a full
 * database (-ENOSPC) losing nothing and recovering.
 *
 * The other half, test_store_writes.c, covers the data path: enroll, get,
 * list, delete, identify and verify, durability and group commit. It uses the
 * helpers defined here, declared in test_store.h, and main() adds its tests to
 * the one test case at the place they always ran.
 */
#include "test_store.h"

#include <check.h>
#include <dirent.h>
#include <libpq-fe.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "siamese/common.h"
#include "siamese/rng.h"
#include "siamese/store.h"

#include "check_util.h"

static char dir[64], db_path[1024];

/* The PostgreSQL variant (SM_STORE_BACKEND=pg): the server's URI, and a
 * fresh database for each test made through it. */
static const char *pg_server;
static char pg_admin[1024];

PgCluster *test_store_pg_cluster;

int test_store_pg(void) {
    return pg_server != NULL;
}

/* server's URI with its database name replaced by db. */
static void pg_uri_for(const char *server, const char *db, char *out, size_t size) {
    const char *p = strstr(server, "://");
    const char *slash = p ? strchr(p + 3, '/') : NULL;
    ck_assert_ptr_nonnull(slash);
    const char *rest = slash + 1 + strcspn(slash + 1, "?");
    snprintf(out, size, "%.*s/%s%s", (int)(slash - server), server, db, rest);
}

static void quiet(void *arg, const char *msg) {}

static void pg_fresh_db(void) {
    char name[32];
    snprintf(name, sizeof name, "sm_t%d", (int)getpid());
    PGconn *c = PQconnectdb(pg_admin);
    PQsetNoticeProcessor(c, quiet, NULL);
    ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
    char sql[128];
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    PQclear(PQexec(c, sql));
    snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
    PGresult *r = PQexec(c, sql);
    ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    pg_uri_for(pg_server, name, db_path, sizeof db_path);
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/sm_store_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    if (pg_server)
        pg_fresh_db();
    else
        snprintf(db_path, sizeof db_path, "%s/store.db", dir);
}

static void teardown(void) {
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(dir);
}

const char *test_store_db(void) {
    return db_path;
}

StoreConfig config(const char *fp, int keep_images) {
    return (StoreConfig){
        .path = db_path, .fingerprint = fp, .dim = DIM, .keep_images = keep_images};
}

Store *open_ok(const char *fp, int keep_images) {
    Store *s = NULL;
    char err[SM_ERRMAX] = "";
    StoreConfig cfg = config(fp, keep_images);
    int rc = store_open(&cfg, &s, err);
    ck_assert_msg(rc == 0, "store_open: %d %s", rc, err);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* A deterministic embedding for (seed). */
void emb(uint64_t seed, float *v) {
    Rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < DIM; i++)
        v[i] = rng_uniform(&r);
}

/* Enrolls n samples (embeddings emb(seed0 + i)) to subject; returns the total. */
int64_t enroll_n(Store *s, const char *subject, const char *meta, int n, uint64_t seed0,
                 int64_t *ids) {
    float e[16][DIM];
    StoreSampleIn in[16];
    int64_t local[16];
    char err[SM_ERRMAX] = "";
    ck_assert_int_le(n, 16);
    for (int i = 0; i < n; i++) {
        emb(seed0 + (uint64_t)i, e[i]);
        in[i] = (StoreSampleIn){.embedding = e[i]};
    }
    StoreEnrolled res = {-1, -1};
    int rc = store_enroll(s, subject, meta, in, n, ids ? ids : local, &res, err);
    ck_assert_msg(rc == 0, "enroll %s: %d %s", subject, rc, err);
    return res.total;
}

/* The one integer sql returns, from this test's database opened directly. */
int64_t raw_int(const char *sql) {
    int64_t v = 0;
    if (pg_server) {
        PGconn *c = PQconnectdb(db_path);
        PGresult *r = PQexec(c, sql);
        ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s: %s", sql,
                      PQerrorMessage(c));
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        PQfinish(c);
        return v;
    }
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    ck_assert_msg(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK, "%s",
                  sqlite3_errmsg(db));
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

void raw_exec(const char *sql) {
    if (pg_server) {
        PGconn *c = PQconnectdb(db_path);
        PGresult *r = PQexec(c, sql);
        ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
                      "%s: %s", sql, PQerrorMessage(c));
        PQclear(r);
        PQfinish(c);
        return;
    }
    sqlite3 *db = NULL;
    char *msg = NULL;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "");
    sqlite3_free(msg);
    sqlite3_close(db);
}

double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Milliseconds until identify on s finds subject nearest to emb(seed), or -1
 * after timeout_ms. */
double until_found(Store *s, uint64_t seed, const char *subject, double timeout_ms) {
    float q[DIM];
    char err[SM_ERRMAX];
    emb(seed, q);
    double t0 = now_ms();
    for (;;) {
        IndexHit h;
        int n = 0;
        int rc = store_identify_with(s, q, 1, INDEX_EXACT, &h, &n, err);
        ck_assert_msg(rc == 0 || rc == -ENOTCONN, "identify: %d %s", rc, err); /* reloading */
        if (rc == 0 && n == 1 && strcmp(h.subject, subject) == 0)
            return now_ms() - t0;
        if (now_ms() - t0 > timeout_ms)
            return -1;
        usleep(200);
    }
}

/* n zero bytes as an SQL blob literal of this backend. */
static const char *zeroblob(int n) {
    static char buf[64];
    if (pg_server)
        snprintf(buf, sizeof buf, "decode(repeat('00', %d), 'hex')", n);
    else
        snprintf(buf, sizeof buf, "zeroblob(%d)", n);
    return buf;
}

/* ---- Validation ---- */

START_TEST(subject_ids) {
    char long_id[200];
    memset(long_id, 'x', sizeof long_id);
    long_id[128] = '\0';
    ck_assert(store_subject_id_valid("a"));
    ck_assert(store_subject_id_valid("Alice.B_c:d@e-f9"));
    ck_assert(store_subject_id_valid(long_id));
    long_id[128] = 'x';
    long_id[129] = '\0';
    ck_assert(!store_subject_id_valid(long_id));
    const char *bad[] = {"", "a b", "a/b", "caf\xc3\xa9", "a\n", "a%20", "<x>", "a,b", "é"};
    for (size_t i = 0; i < SM_ARRAY_LEN(bad); i++)
        ck_assert_msg(!store_subject_id_valid(bad[i]), "accepted \"%s\"", bad[i]);
    ck_assert(!store_subject_id_valid(NULL));
}
END_TEST

START_TEST(cursors) {
    char cur[STORE_CURSOR_SIZE], id[STORE_SUBJECT_MAX + 1], long_id[STORE_SUBJECT_MAX + 1];
    char err[SM_ERRMAX];
    memset(long_id, 'Z', STORE_SUBJECT_MAX);
    long_id[STORE_SUBJECT_MAX] = '\0';
    const char *ids[] = {"a", "ab", "abc", "abcd", "x.y:z@w-_", long_id};
    for (size_t i = 0; i < SM_ARRAY_LEN(ids); i++) {
        ck_assert_int_eq(store_cursor_encode(ids[i], cur, err), 0);
        ck_assert_uint_lt(strlen(cur), STORE_CURSOR_SIZE);
        ck_assert_ptr_null(strchr(cur, '='));
        ck_assert_int_eq(store_cursor_decode(cur, id, err), 0);
        ck_assert_str_eq(id, ids[i]);
    }
    ck_assert_int_eq(store_cursor_encode("bad id", cur, err), -EINVAL);
    ck_assert_int_eq(store_cursor_encode("a", cur, err), 0);
    ck_assert_str_eq(cur, "YQ");
    /* "YR" carries stray bits; "YQ==" is padded; "YWIg" decodes to "ab ", an
     * invalid id; "YQBi" holds a NUL; "YQ" * 90 is too long. */
    char too_long[400] = "";
    for (int i = 0; i < 90; i++)
        strcat(too_long, "YQ");
    const char *bad[] = {"",    "Y",    "YR",   "YQ==", "Y Q",   "YQ+",
                         "YQ/", "!!!!", "YWIg", "YQBi", too_long};
    for (size_t i = 0; i < SM_ARRAY_LEN(bad); i++)
        ck_assert_msg(store_cursor_decode(bad[i], id, err) == -EINVAL, "accepted \"%s\"", bad[i]);
    ck_assert_int_eq(store_cursor_decode(NULL, id, err), -EINVAL);
}
END_TEST

START_TEST(bad_config) {
    Store *s = NULL;
    char err[SM_ERRMAX];
    StoreConfig cfg = config(FP_A, 0);
    cfg.fingerprint = "ABCDEF";
    ck_assert_int_eq(store_open(&cfg, &s, err), -EINVAL);
    cfg.fingerprint = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    ck_assert_int_eq(store_open(&cfg, &s, err), -EINVAL);
    cfg = config(FP_A, 0);
    cfg.dim = 0;
    ck_assert_int_eq(store_open(&cfg, &s, err), -EINVAL);
    cfg = config(FP_A, 0);
    cfg.batch_max = 5000;
    ck_assert_int_eq(store_open(&cfg, &s, err), -EINVAL);
    cfg = config(FP_A, 0);
    cfg.path = "/nonexistent-dir-for-sure/x.db";
    ck_assert_int_lt(store_open(&cfg, &s, err), 0);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent-dir-for-sure/x.db"));
    ck_assert_ptr_null(s);
    store_close(NULL);
}
END_TEST

/* ---- Migrations ---- */

START_TEST(migrations_recorded_and_idempotent) {
    ck_assert_int_ge(store_n_migrations, 1);
    for (int i = 0; i < store_n_migrations; i++) {
        ck_assert_int_eq(store_migrations[i].version, i + 1);
        ck_assert_int_eq(atoi(store_migrations[i].name), i + 1);
        ck_assert_ptr_nonnull(strstr(store_migrations[i].sql, "CREATE"));
    }
    store_close(open_ok(FP_A, 0));
    ck_assert_int_eq(raw_int("PRAGMA user_version"), store_n_migrations);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM schema_migrations"), store_n_migrations);
    ck_assert_int_eq(raw_int("SELECT max(version) FROM schema_migrations"), store_n_migrations);
    ck_assert_int_eq(
        raw_int("SELECT count(*) FROM sqlite_master WHERE name IN ('subjects','samples')"), 2);
    int64_t applied = raw_int("SELECT applied_at FROM schema_migrations WHERE version = 1");
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* Reopening changes nothing. */
    int from = -1, to = -1;
    char err[SM_ERRMAX];
    ck_assert_int_eq(
        store_migrate_file(db_path, store_migrations, store_n_migrations, &from, &to, err), 0);
    ck_assert_int_eq(from, store_n_migrations);
    ck_assert_int_eq(to, store_n_migrations);
    store_close(open_ok(FP_A, 0));
    ck_assert_int_eq(raw_int("SELECT count(*) FROM schema_migrations"), store_n_migrations);
    ck_assert_int_eq(raw_int("SELECT applied_at FROM schema_migrations WHERE version = 1"),
                     applied);
}
END_TEST

START_TEST(migrations_upgrade_and_rollback) {
    const StoreMigration list[] = {
        {1, "0001_a", "CREATE TABLE t (x INTEGER);"},
        {2, "0002_b", "ALTER TABLE t ADD COLUMN y INTEGER; INSERT INTO t VALUES (1, 2);"},
        {3, "0003_bad", "CREATE TABLE u (x); CREATE TABLE t (x);"},
    };
    const StoreMigration forked[] = {{1, "0001_other", "CREATE TABLE t (x INTEGER);"}};
    const StoreMigration gap[] = {{1, "0001_a", "SELECT 1;"}, {3, "0003_c", "SELECT 1;"}};
    int from = -1, to = -1;
    char err[SM_ERRMAX] = "";
    ck_assert_int_eq(store_migrate_file(db_path, list, 1, &from, &to, err), 0);
    ck_assert_int_eq(from, 0);
    ck_assert_int_eq(to, 1);
    /* A database at version 1 opened by code that knows 2 is brought up. */
    ck_assert_int_eq(store_migrate_file(db_path, list, 2, &from, &to, err), 0);
    ck_assert_int_eq(from, 1);
    ck_assert_int_eq(to, 2);
    ck_assert_int_eq(raw_int("SELECT y FROM t"), 2);
    ck_assert_int_eq(raw_int("PRAGMA user_version"), 2);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM schema_migrations"), 2);

    /* A failing migration leaves no trace: version 2, no table u. */
    ck_assert_int_lt(store_migrate_file(db_path, list, 3, &from, &to, err), 0);
    ck_assert_ptr_nonnull(strstr(err, "0003_bad"));
    ck_assert_int_eq(raw_int("PRAGMA user_version"), 2);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM sqlite_master WHERE name = 'u'"), 0);

    /* Newer than the code: refused. A different history: refused. */
    ck_assert_int_eq(store_migrate_file(db_path, list, 1, &from, &to, err), -ENOTSUP);
    ck_assert_ptr_nonnull(strstr(err, "newer"));
    ck_assert_int_eq(store_migrate_file(db_path, forked, 1, &from, &to, err), -ENOTSUP);
    ck_assert_int_eq(store_migrate_file(db_path, forked, 1, NULL, NULL, err), -ENOTSUP);
    ck_assert_int_eq(store_migrate_file(db_path, gap, 2, &from, &to, err), -EINVAL);
    ck_assert_int_eq(store_migrate_file(db_path, list, 0, &from, &to, err), -EINVAL);
}
END_TEST

START_TEST(migrations_history_mismatch) {
    const StoreMigration list[] = {{1, "0001_a", "CREATE TABLE t (x);"}};
    const StoreMigration forked[] = {{1, "0001_other", "CREATE TABLE t (x);"}};
    char err[SM_ERRMAX] = "";
    ck_assert_int_eq(store_migrate_file(db_path, list, 1, NULL, NULL, err), 0);
    ck_assert_int_eq(store_migrate_file(db_path, forked, 1, NULL, NULL, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "0001_other"));
}
END_TEST

START_TEST(newer_schema_refused_at_open) {
    int n = store_n_migrations;
    StoreMigration *list = calloc((size_t)n + 1, sizeof *list);
    memcpy(list, store_migrations, (size_t)n * sizeof *list);
    list[n] = (StoreMigration){n + 1, "9999_future", "CREATE TABLE future (x);"};
    char err[SM_ERRMAX] = "";
    ck_assert_int_eq(store_migrate_file(db_path, list, n + 1, NULL, NULL, err), 0);
    Store *s = NULL;
    StoreConfig cfg = config(FP_A, 0);
    ck_assert_int_eq(store_open(&cfg, &s, err), -ENOTSUP);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(err, "newer"));
    free(list);
}
END_TEST

/* ---- Model fingerprints and re-embedding ---- */

START_TEST(stale_fingerprint_detected) {
    Store *s = open_ok(FP_A, 0);
    enroll_n(s, "old", NULL, 3, 1, NULL);
    store_close(s);
    char err[SM_ERRMAX] = "";
    StoreConfig cfg = config(FP_B, 0);
    s = NULL;
    ck_assert_int_eq(store_open(&cfg, &s, err), STORE_STALE);
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_nonnull(strstr(err, "siamesed --reembed"));
    ck_assert_ptr_nonnull(strstr(err, "3 of 3"));
    float q[DIM];
    emb(1, q);
    IndexHit h;
    int n = 0;
    ck_assert_int_eq(store_identify(s, q, 1, &h, &n, err), -ESTALE);
    ck_assert_int_eq(store_verify(s, "old", q, &h, err), -ESTALE);
    StoreSampleIn in = {.embedding = q};
    int64_t id;
    ck_assert_int_eq(store_enroll(s, "new", NULL, &in, 1, &id, NULL, err), -ESTALE);
    int64_t done = -1;
    ck_assert_int_eq(store_reembed(s, NULL, NULL, &done, err), -EINVAL);
    ck_assert_int_eq(done, 0);
    int64_t subjects = -1, samples = -1;
    store_counts(s, &subjects, &samples);
    ck_assert_int_eq(subjects, 1);
    ck_assert_int_eq(samples, 3);
    store_close(s);
    /* Reopening with the old model's fingerprint serves again. */
    store_close(open_ok(FP_A, 0));
}
END_TEST

static int fake_embed(void *ctx, const uint8_t *image, size_t len, const char *ct, float *out,
                      char *err) {
    int *calls = ctx;
    if (calls[1] > 0 && calls[0] == calls[1])
        return sm_err(err, -EIO, "the model broke");
    calls[0]++;
    if (len != 4 || strcmp(ct, "image/x-test") != 0)
        return sm_err(err, -EINVAL, "unexpected image");
    for (int i = 0; i < DIM; i++)
        out[i] = (float)image[0] + (float)i * 0.5f;
    return 0;
}

START_TEST(reembed_converts_and_resumes) {
    Store *s = open_ok(FP_A, 1);
    char err[SM_ERRMAX] = "";
    enum { N = 150 };
    for (int i = 0; i < N; i++) {
        char name[16];
        float e[DIM];
        uint8_t img[4] = {(uint8_t)i, 1, 2, 3};
        int64_t id;
        emb((uint64_t)i, e);
        StoreSampleIn in = {
            .embedding = e, .image = img, .image_len = 4, .content_type = "image/x-test"};
        snprintf(name, sizeof name, "r%03d", i % 40);
        ck_assert_int_eq(store_enroll(s, name, NULL, &in, 1, &id, NULL, err), 0);
    }
    store_close(s);

    StoreConfig cfg = config(FP_B, 1);
    s = NULL;
    ck_assert_int_eq(store_open(&cfg, &s, err), STORE_STALE);
    /* The model fails on the 70th image: the first batch (64) stays done. */
    int calls[2] = {0, 70};
    int64_t done = -1;
    ck_assert_int_eq(store_reembed(s, fake_embed, calls, &done, err), -EIO);
    ck_assert_ptr_nonnull(strstr(err, "the model broke"));
    ck_assert_int_eq(done, 64);
    store_close(s);
    s = NULL;
    ck_assert_int_eq(store_open(&cfg, &s, err), STORE_STALE);
    ck_assert_ptr_nonnull(strstr(err, "86 of 150"));
    int calls2[2] = {0, 0};
    ck_assert_int_eq(store_reembed(s, fake_embed, calls2, &done, err), 0);
    ck_assert_int_eq(done, N - 64);
    ck_assert_int_eq(calls2[0], N - 64);

    /* Serving now, with the new embeddings. */
    float q[DIM];
    for (int i = 0; i < DIM; i++)
        q[i] = 77.0f + (float)i * 0.5f;
    IndexHit h;
    int n = 0;
    ck_assert_int_eq(store_identify(s, q, 1, &h, &n, err), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(h.subject, "r037");
    ck_assert_float_eq_tol(h.distance, sqrtf(1e-7f), 1e-7f);
    int64_t subjects, samples;
    store_counts(s, &subjects, &samples);
    ck_assert_int_eq(samples, N);
    ck_assert_int_eq(subjects, 40);
    /* Nothing left to do. */
    ck_assert_int_eq(store_reembed(s, fake_embed, calls2, &done, err), 0);
    ck_assert_int_eq(done, 0);
    store_close(s);
    store_close(open_ok(FP_B, 1));
    ck_assert_int_eq(raw_int("SELECT count(*) FROM samples WHERE fingerprint = '" FP_B "'"), N);
}
END_TEST

START_TEST(reembed_needs_images) {
    Store *s = open_ok(FP_A, 1);
    char err[SM_ERRMAX] = "";
    enroll_n(s, "noimg", NULL, 5, 1, NULL); /* no images given */
    store_close(s);
    StoreConfig cfg = config(FP_B, 1);
    ck_assert_int_eq(store_open(&cfg, &s, err), STORE_STALE);
    int calls[2] = {0, 0};
    int64_t done = -1;
    ck_assert_int_eq(store_reembed(s, fake_embed, calls, &done, err), -ENODATA);
    ck_assert_ptr_nonnull(strstr(err, "5 samples"));
    ck_assert_int_eq(calls[0], 0);
    ck_assert_int_eq(done, 0);
    /* Deleting them is allowed while stale, and then the store serves. */
    ck_assert_int_eq(store_delete_subject(s, "noimg", NULL, err), 0);
    ck_assert_int_eq(store_reembed(s, fake_embed, calls, &done, err), 0);
    StoreSampleIn in = {.embedding = (float[DIM]){0}};
    int64_t id;
    ck_assert_int_eq(store_enroll(s, "fresh", NULL, &in, 1, &id, NULL, err), 0);
    store_close(s);
}
END_TEST

/* ---- Bad files, bad rows, full disks ---- */

static void write_file(const char *path, const void *data, size_t len, long offset) {
    FILE *f = fopen(path, offset < 0 ? "wb" : "r+b");
    ck_assert_ptr_nonnull(f);
    if (offset >= 0)
        fseek(f, offset, SEEK_SET);
    ck_assert_uint_eq(fwrite(data, 1, len, f), len);
    fclose(f);
}

START_TEST(garbage_file_refused) {
    char junk[8192];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i * 7 + 3);
    write_file(db_path, junk, sizeof junk, -1);
    Store *s = NULL;
    char err[SM_ERRMAX] = "";
    StoreConfig cfg = config(FP_A, 0);
    ck_assert_int_eq(store_open(&cfg, &s, err), -EINVAL);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(err, "not a SQLite database"));
}
END_TEST

START_TEST(corrupt_pages_refused) {
    Store *s = open_ok(FP_A, 1);
    uint8_t img[3000];
    memset(img, 0x5a, sizeof img);
    for (int i = 0; i < 60; i++) {
        char name[16];
        float e[DIM];
        int64_t id;
        char err[SM_ERRMAX];
        emb((uint64_t)i, e);
        StoreSampleIn in = {
            .embedding = e, .image = img, .image_len = sizeof img, .content_type = "image/png"};
        snprintf(name, sizeof name, "c%d", i);
        ck_assert_int_eq(store_enroll(s, name, NULL, &in, 1, &id, NULL, err), 0);
    }
    store_close(s); /* checkpoints everything into the main file */
    char junk[4096];
    memset(junk, 0xa5, sizeof junk);
    write_file(db_path, junk, sizeof junk, 4096 * 2);
    write_file(db_path, junk, sizeof junk, 4096 * 5);
    char err[SM_ERRMAX] = "";
    StoreConfig cfg = config(FP_A, 1);
    s = NULL;
    ck_assert_int_lt(store_open(&cfg, &s, err), 0);
    ck_assert_ptr_null(s);
    ck_assert_ptr_nonnull(strstr(err, "corrupt"));
}
END_TEST

START_TEST(invalid_rows_refused) {
    store_close(open_ok(FP_A, 0));
    raw_exec("INSERT INTO subjects VALUES ('ok', '{\"a\":1}', 1)");
    raw_exec("INSERT INTO subjects VALUES ('badmeta', 'not json', 1)");
    char sql[512];
    snprintf(sql, sizeof sql,
             "INSERT INTO samples (subject_id, embedding, fingerprint, created_at)"
             " VALUES ('ok', %s, '" FP_A "', 1)",
             zeroblob(32));
    raw_exec(sql);
    Store *s = open_ok(FP_A, 0);
    char err[SM_ERRMAX] = "";
    StoreSubject *sj = NULL;
    ck_assert_int_eq(store_get(s, "ok", 0, STORE_LIST_MAX, &sj, err), 0);
    store_subject_free(sj);
    ck_assert_int_eq(store_get(s, "badmeta", 0, STORE_LIST_MAX, &sj, err), -EINVAL);
    ck_assert_ptr_null(sj);
    store_close(s);

    /* An embedding of the wrong size stops the open. */
    snprintf(sql, sizeof sql,
             "INSERT INTO samples (subject_id, embedding, fingerprint, created_at)"
             " VALUES ('ok', %s, '" FP_A "', 1)",
             zeroblob(31));
    raw_exec(sql);
    StoreConfig cfg = config(FP_A, 0);
    s = NULL;
    ck_assert_int_eq(store_open(&cfg, &s, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "31 bytes"));
    /* So does a malformed fingerprint. */
    raw_exec("DELETE FROM samples WHERE length(embedding) = 31");
    snprintf(
        sql, sizeof sql,
        "INSERT INTO samples (subject_id, embedding, fingerprint, created_at)"
        " VALUES ('ok', %s, 'ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ', 1)",
        zeroblob(32));
    raw_exec(sql);
    ck_assert_int_eq(store_open(&cfg, &s, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "fingerprint"));
}
END_TEST

typedef struct {
    Store *s;
    int ok, full, other;
} Filler;

static void *filler(void *p) {
    Filler *f = p;
    char err[SM_ERRMAX], name[32];
    static uint8_t img[20000];
    for (int i = 0; i < 40; i++) {
        float e[DIM];
        int64_t id;
        emb((uint64_t)i, e);
        StoreSampleIn in = {
            .embedding = e, .image = img, .image_len = sizeof img, .content_type = "image/png"};
        snprintf(name, sizeof name, "f%p-%d", (void *)f, i);
        int rc = store_enroll(f->s, name, NULL, &in, 1, &id, NULL, err);
        if (rc == 0)
            f->ok++;
        else if (rc == -ENOSPC && strstr(err, "full"))
            f->full++;
        else
            f->other++;
    }
    return NULL;
}

START_TEST(disk_full_loses_nothing) {
    Store *s = NULL;
    char err[SM_ERRMAX] = "";
    StoreConfig cfg = config(FP_A, 1);
    cfg.max_bytes = 300 << 10;
    ck_assert_int_eq(store_open(&cfg, &s, err), 0);
    /* Small enrolls from one thread, big ones from two: the big ones fill the
     * database and fail; none of that may fail the small ones. */
    Filler big[2] = {{.s = s}, {.s = s}};
    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        ck_assert_int_eq(pthread_create(&th[t], NULL, filler, &big[t]), 0);
    int small_ok = 0;
    for (int i = 0; i < 40; i++) {
        char name[32];
        snprintf(name, sizeof name, "small%d", i);
        float e[DIM];
        int64_t id;
        emb((uint64_t)i, e);
        StoreSampleIn in = {.embedding = e};
        small_ok += store_enroll(s, name, NULL, &in, 1, &id, NULL, err) == 0;
    }
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    int ok = big[0].ok + big[1].ok, full = big[0].full + big[1].full;
    ck_assert_int_eq(big[0].other + big[1].other, 0);
    ck_assert_int_gt(full, 0);
    ck_assert_int_gt(ok, 0);
    int64_t subjects, samples;
    store_counts(s, &subjects, &samples);
    ck_assert_int_eq(samples, ok + small_ok);
    /* Failed enrolls never reached the index: one hit per stored subject. */
    IndexHit *hits = calloc(200, sizeof *hits);
    int nh = 0;
    float q[DIM] = {0};
    ck_assert_int_eq(store_identify(s, q, 200, hits, &nh, err), 0);
    ck_assert_int_eq(nh, ok + small_ok);
    free(hits);

    /* Room again (a deleted subject's pages are reused): writes work. */
    StoreListItem *items = NULL;
    int n = 0;
    char next[STORE_CURSOR_SIZE];
    ck_assert_int_eq(store_list(s, NULL, 1000, &items, &n, next, err), 0);
    int deleted = 0;
    for (int i = 0; i < n && deleted < 4; i++)
        if (items[i].id[0] == 'f') {
            ck_assert_int_eq(store_delete_subject(s, items[i].id, NULL, err), 0);
            deleted++;
        }
    free(items);
    ck_assert_int_eq(deleted, 4);
    Filler again = {.s = s};
    filler(&again);
    ck_assert_int_gt(again.ok, 0);
    ck_assert_int_eq(again.other, 0);
    store_counts(s, &subjects, &samples);
    int64_t expect = ok + small_ok - 4 + again.ok;
    ck_assert_int_eq(samples, expect);
    store_close(s);

    /* Everything acknowledged is there after reopening without the cap. */
    s = open_ok(FP_A, 1);
    store_counts(s, &subjects, &samples);
    ck_assert_int_eq(samples, expect);
    store_close(s);
}
END_TEST

/* The tests that hold for every backend: test_store_writes.c's, the model
 * fingerprint and re-embedding, invalid rows. */
static void add_common(TCase *tc) {
    test_store_writes_add(tc); /* enroll_and_get .. concurrent_enrolls_share_commits */
    tcase_add_test(tc, stale_fingerprint_detected);
    tcase_add_test(tc, reembed_converts_and_resumes);
    tcase_add_test(tc, reembed_needs_images);
    tcase_add_test(tc, invalid_rows_refused);
}

int main(void) {
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    const char *backend = getenv("SM_STORE_BACKEND");
    if (backend && strcmp(backend, "pg") == 0) {
        /* A throwaway cluster of our own, or SM_TEST_PG_URI's server (a
         * database through which a superuser may CREATE DATABASE). */
        char perr[PG_CLUSTER_ERRMAX] = "";
        PgCluster *pg = NULL;
        pg_server = getenv("SM_TEST_PG_URI");
        if (pg_cluster_prepare(perr) == PG_CLUSTER_ABSENT)
            return fprintf(stderr, "skipped: %s\n", perr), 77;
        if (!pg_server) {
            int rc = pg_cluster_start(&pg, 0, perr);
            if (rc == PG_CLUSTER_ABSENT)
                return fprintf(stderr, "skipped: %s\n", perr), 77;
            if (rc < 0)
                return fprintf(stderr, "pg_cluster_start: %s\n", perr), 1;
            pg_server = pg_cluster_uri(pg);
        }
        test_store_pg_cluster = pg;
        snprintf(pg_admin, sizeof pg_admin, "%s", pg_server);
        add_common(tc);
        test_store_pg_add(tc);
        test_store_pg_rw_add(tc);
        test_store_pg_feed_add(tc);
        suite_add_tcase(s, tc);
        int failed = check_run(s);
        pg_cluster_stop(pg);
        return failed;
    }
    tcase_add_test(tc, subject_ids);
    tcase_add_test(tc, cursors);
    tcase_add_test(tc, bad_config);
    tcase_add_test(tc, migrations_recorded_and_idempotent);
    tcase_add_test(tc, migrations_upgrade_and_rollback);
    tcase_add_test(tc, migrations_history_mismatch);
    tcase_add_test(tc, newer_schema_refused_at_open);
    add_common(tc);
    tcase_add_test(tc, garbage_file_refused);
    tcase_add_test(tc, corrupt_pages_refused);
    tcase_add_test(tc, disk_full_loses_nothing);
    suite_add_tcase(s, tc);
    return check_run(s);
}
