/*
 * store_pg.c — the PostgreSQL backend: connecting (the writer's connection
 * and a pool of readers), the migrations, the serving model, loading the
 * index and the reads. The write transaction and its ops are in
 * store_pg_ops.c, the change feed that keeps many daemons' indexes in step in
 * store_pg_feed.c.
 *
 * Every connection is checked before use and reset if it was lost
 * (pg_ensure()), so a daemon recovers on its own when PostgreSQL comes back;
 * until then the calls that need the database fail with -ENOTCONN.
 */
#include "store_pg_int.h"

#include "siamese/log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define LOAD_FETCH 8192 /* rows per FETCH while loading the index */

int store_db_is_postgres(const char *db) {
    return db && (!strncasecmp(db, "postgresql://", 13) || !strncasecmp(db, "postgres://", 11));
}

int store_db_is_uri(const char *db) {
    size_t n = db && isalpha((unsigned char)db[0])
                   ? strspn(db, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
                   : 0;
    return n > 0 && !strncmp(db + n, "://", 3);
}

/* ---- The serving model ---- */

/* Records this daemon's model as the serving one unless another model's
 * samples remain (then the load finds them and the store opens STORE_STALE).
 * Loads at open and after a finished re-embed do this; a reload the feed
 * asks for does not: a node of an older model reloading while the database
 * held no samples would take serving over from the new model's nodes. */
static int serving_claim(Store *s, PGconn *c, char *err) {
    char dim[16], now[24];
    snprintf(dim, sizeof dim, "%d", s->dim);
    snprintf(now, sizeof now, "%lld", (long long)store_now_ms());
    const char *vals[] = {s->fingerprint, dim, now};
    int rc = pg_exec(c, "BEGIN; SELECT pg_advisory_xact_lock(" PG_LOCK_WRITE ")", 0, NULL,
                     "claiming the serving model", err);
    if (rc == 0)
        rc = pg_exec(c,
                     "INSERT INTO serving_model (fingerprint, dim, since) SELECT $1::text, "
                     "$2::int, $3::bigint"
                     " WHERE NOT EXISTS (SELECT 1 FROM samples WHERE fingerprint <> $1)"
                     " ON CONFLICT (one) DO UPDATE SET fingerprint = $1, dim = $2, since = $3"
                     " WHERE serving_model.fingerprint <> $1",
                     3, vals, "claiming the serving model", err);
    if (rc == 0)
        rc = pg_exec(c, "COMMIT", 0, NULL, "claiming the serving model", err);
    pg_rollback(c);
    return rc;
}

/* ---- Open and close ---- */

static int open_readers(Store *s, PgState *st, int n, char *err) {
    s->rdb = calloc((size_t)n, sizeof *s->rdb);
    if (!s->rdb)
        return sm_err(err, -ENOMEM, "store: out of memory");
    for (; s->n_rdb < n; s->n_rdb++) {
        PGconn *c = NULL;
        int rc = pg_connect(st->uri, PG_STATEMENT_MS, &c, err);
        if (rc < 0)
            return rc;
        s->rdb[s->n_rdb] = c;
    }
    return 0;
}

/* The feed's order rests on change ids taken one at a time, in commit order
 * (under the write lock, store_pg_feed.c): a sequence that hands out
 * blocks (CACHE > 1) lets a session take id 2 after another committed 21,
 * and a node at 21 would never apply 2. Refused rather than trusted. */
static int check_change_ids(PGconn *c, char *err) {
    PGresult *r = NULL;
    int64_t cache = 0;
    int rc = pg_query(c,
                      "SELECT seqcache FROM pg_sequence"
                      " WHERE seqrelid = pg_get_serial_sequence('changes', 'id')::regclass",
                      0, NULL, NULL, NULL, &r, "reading the change id sequence", err);
    if (rc == 0 && (PQntuples(r) != 1 || pg_val_int(r, 0, 0, 1, &cache) < 0))
        rc = sm_err(err, -EINVAL, "store: the changes table has no id sequence to check");
    PQclear(r);
    if (rc == 0 && cache != 1)
        rc = sm_err(err, -EINVAL,
                    "store: the changes id sequence caches %lld ids per session; the feed needs "
                    "CACHE 1 (ALTER SEQUENCE changes_id_seq CACHE 1)",
                    (long long)cache);
    return rc;
}

static int pgb_open(Store *s, const StoreConfig *cfg, int *from, int *to, char *err) {
    PgState *st = calloc(1, sizeof *st);
    if (!st || !(st->uri = strdup(cfg->path))) {
        free(st);
        return sm_err(err, -ENOMEM, "store: out of memory");
    }
    s->be_state = st;
    int rc = pg_feed_new(s, err);
    if (rc < 0)
        return rc;
    st->retain = cfg->feed_retain ? cfg->feed_retain : 1000000;
    if (st->retain < 1)
        return sm_err(err, -EINVAL, "feed_retain must be positive");
    if (cfg->max_bytes > 0)
        return sm_err(err, -EINVAL,
                      "max_db_size applies to SQLite only; PostgreSQL has its own "
                      "limits (tablespace quotas)");
    rc = pg_connect(st->uri, 0, &st->wdb, err);
    if (rc == 0)
        rc = pg_migrate(st->wdb, store_pg_migrations, store_pg_n_migrations, from, to, err);
    if (rc == 0)
        rc = check_change_ids(st->wdb, err);
    if (rc == 0)
        rc = open_readers(s, st, cfg->readers ? cfg->readers : 4, err);
    return rc;
}

static void pgb_close(Store *s) {
    PgState *st = s->be_state;
    if (st)
        pg_feed_free(s);
    for (int i = 0; i < s->n_rdb; i++)
        PQfinish(s->rdb[i]);
    if (st) {
        PQfinish(st->wdb);
        free(st->uri);
    }
    free(st);
    s->be_state = NULL;
}

static void pgb_reader_reset(Store *s, void *conn) {
    pg_rollback(conn);
}

/* ---- Loading the index ---- */

/* One FETCH of sample rows into the loader; *rows receives how many. */
static int load_page(PGconn *c, StoreLoader *l, int *rows, char *err) {
    PGresult *r = NULL;
    char sql[64];
    snprintf(sql, sizeof sql, "FETCH %d FROM load_samples", LOAD_FETCH);
    int rc = pg_query(c, sql, 0, NULL, NULL, NULL, &r, "loading samples", err);
    *rows = rc == 0 ? PQntuples(r) : 0;
    for (int i = 0; rc == 0 && i < *rows; i++) {
        StoreRow row = {0};
        if (pg_val_int(r, i, 0, 1, &row.id) < 0)
            row.id = 0;
        row.subject = pg_val_text(r, i, 1, &row.subject_len);
        row.fingerprint = pg_val_text(r, i, 2, &row.fingerprint_len);
        row.emb = pg_val_bytea(r, i, 3, &row.emb_bytes);
        rc = store_loader_row(l, &row, err);
    }
    PQclear(r);
    return rc;
}

static int pgb_load(Store *s, StoreLoader *l, int claim, char *err) {
    PGconn *c = pg_state(s)->wdb;
    PGresult *r = NULL;
    int64_t subjects = 0, samples = 0, last = 0, before = 0;
    pg_feed_lock(s, &before);
    int rc = pg_query_fresh(c, "SELECT 1", 0, NULL, NULL, "loading samples", err);
    if (rc == 0 && claim)
        rc = serving_claim(s, c, err);
    /* One snapshot for the counts and the rows. */
    if (rc == 0)
        rc = pg_exec(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL,
                     "loading samples", err);
    /* The counts, and the last change this snapshot holds: the feed goes on from there. */
    if (rc == 0)
        rc = pg_query(c,
                      "SELECT (SELECT count(*) FROM subjects), (SELECT count(*) FROM samples),"
                      " (SELECT coalesce(max(id), 0) FROM changes)",
                      0, NULL, NULL, NULL, &r, "counting samples", err);
    if (rc == 0 && (pg_val_int(r, 0, 0, 0, &subjects) < 0 || pg_val_int(r, 0, 1, 0, &samples) < 0 ||
                    pg_val_int(r, 0, 2, 0, &last) < 0))
        rc = sm_err(err, -EINVAL, "invalid subject, sample or change count");
    PQclear(r);
    if (rc == 0)
        rc = store_loader_counts(l, subjects, samples, err);
    if (rc == 0)
        rc = pg_exec(c,
                     "DECLARE load_samples NO SCROLL CURSOR FOR SELECT id, subject_id,"
                     " fingerprint, embedding FROM samples ORDER BY id",
                     0, NULL, "loading samples", err);
    for (int rows = LOAD_FETCH; rc == 0 && rows == LOAD_FETCH;)
        rc = load_page(c, l, &rows, err);
    pg_rollback(c);
    if (rc == 0) /* with f->last, before any applier runs on it */
        store_loader_publish(l);
    pg_feed_unlock(s, rc == 0 ? last : before, rc == 0);
    return rc;
}

/* ---- Reads ---- */

static int get_subject(PGconn *c, const char *subject, StoreSubject *sj, char *err) {
    PGresult *r = NULL;
    const char *vals[] = {subject};
    int rc = pg_query(c,
                      "SELECT created_at, metadata, (SELECT count(*) FROM samples"
                      " WHERE subject_id = $1) FROM subjects WHERE id = $1",
                      1, vals, NULL, NULL, &r, "reading a subject", err);
    size_t len = 0;
    if (rc == 0 && PQntuples(r) == 0)
        rc = SM_ABSENT;
    else if (rc == 0) {
        const char *meta = pg_val_text(r, 0, 1, &len);
        if (pg_val_int(r, 0, 0, 0, &sj->created_at) < 0 || pg_val_int(r, 0, 2, 0, &sj->total) < 0 ||
            (!meta && !PQgetisnull(r, 0, 1)) || store_val_metadata(meta, len, &sj->metadata) < 0)
            rc = sm_err(err, -EINVAL, "subject %s: invalid created_at or metadata in the database",
                        subject);
    }
    PQclear(r);
    return rc;
}

static int pgb_get(Store *s, void *conn, const char *subject, int64_t after, int limit,
                   StoreSubject *sj, char *err) {
    PGconn *c = conn;
    PGresult *r = NULL;
    char a[24], lim[16];
    snprintf(a, sizeof a, "%lld", (long long)after);
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *vals[] = {subject, a, lim};
    int rc = pg_query_fresh(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL, NULL,
                            "reading a subject", err);
    if (rc == 0)
        rc = get_subject(c, subject, sj, err);
    if (rc == 0)
        rc = pg_query(c,
                      "SELECT id, created_at FROM samples WHERE subject_id = $1 AND id > $2"
                      " ORDER BY id LIMIT $3",
                      3, vals, NULL, NULL, &r, "reading samples", err);
    int rows = rc == 0 ? PQntuples(r) : 0;
    for (int i = 0; rc == 0 && i < rows; i++) {
        if (sj->n_samples == limit) {
            sj->more = 1;
            break;
        }
        StoreSampleInfo *si = &sj->samples[sj->n_samples++];
        if (pg_val_int(r, i, 0, 1, &si->id) < 0 || pg_val_int(r, i, 1, 0, &si->created_at) < 0)
            rc = sm_err(err, -EINVAL, "subject %s: invalid sample row in the database", subject);
    }
    PQclear(r);
    return rc;
}

static int pgb_list(Store *s, void *conn, const char *after, int limit, StoreListItem *items,
                    int *n, int *more, char *err) {
    PGconn *c = conn;
    PGresult *r = NULL;
    char lim[16];
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *vals[] = {after, lim};
    /* Byte order (the ids' collation is "C"), as on SQLite and as the cursors assume. */
    int rc = pg_query_fresh(c,
                            "SELECT id, created_at, (SELECT count(*) FROM samples"
                            " WHERE subject_id = subjects.id) FROM subjects"
                            " WHERE id > $1 ORDER BY id LIMIT $2",
                            2, vals, &r, "listing subjects", err);
    int rows = rc == 0 ? PQntuples(r) : 0;
    for (int i = 0; rc == 0 && i < rows; i++) {
        if (*n == limit) {
            *more = 1;
            break;
        }
        StoreListItem *it = &items[(*n)++];
        size_t len = 0;
        const char *id = pg_val_text(r, i, 0, &len);
        if (store_val_id(id, len, it->id) < 0 || pg_val_int(r, i, 1, 0, &it->created_at) < 0 ||
            pg_val_int(r, i, 2, 0, &it->n_samples) < 0)
            rc = sm_err(err, -EINVAL, "invalid subject row in the database");
    }
    PQclear(r);
    return rc;
}

/* 1 if sql (one text parameter) returns a row, 0 if none. */
static int exists(PGconn *c, const char *sql, const char *text, const char *what, char *err) {
    PGresult *r = NULL;
    const char *vals[] = {text};
    int rc = pg_query_fresh(c, sql, 1, vals, &r, what, err);
    if (rc == 0)
        rc = PQntuples(r) > 0;
    PQclear(r);
    return rc;
}

static int pgb_source_known(Store *s, void *conn, const char *source, char *err) {
    return exists(conn, "SELECT 1 FROM samples WHERE source = $1", source, "looking up a source",
                  err);
}

static int pgb_subject_exists(Store *s, void *conn, const char *subject, char *err) {
    return exists(conn, "SELECT 1 FROM subjects WHERE id = $1", subject, "reading a subject", err);
}

void (*pg_test_after_commit)(Store *s);

/* After a commit, before its callers are told: this daemon's own changes
 * (and any others' before them) reach its index and counts through the
 * feed, like everyone else's. A connection cut since the COMMIT gets one
 * more try on a fresh one; if that fails too, the index lacks writes that
 * return success, so the store is marked behind (identify and verify
 * -ENOTCONN) until a catch-up succeeds: read-your-writes, store.h. */
static void pgb_committed(Store *s) {
    char err[SM_ERRMAX];
    PGconn *c = pg_state(s)->wdb;
    if (pg_test_after_commit)
        pg_test_after_commit(s);
    int rc = pg_feed_catch_up(s, c, err);
    if (rc == -ENOTCONN && (rc = pg_ensure(c, err)) == 0)
        rc = pg_feed_catch_up(s, c, err);
    if (rc == -ENOTCONN)
        pg_feed_behind(s);
    if (rc < 0)
        log_warn("store: applying a committed write: %s (identify and verify answer 503 until "
                 "the change feed applies it)",
                 err);
    pg_prune(s);
}

const StoreBackend store_pg_backend = {
    .name = "postgresql",
    .open = pgb_open,
    .close = pgb_close,
    .reader_reset = pgb_reader_reset,
    .begin = pgb_begin,
    .savepoint = pgb_savepoint,
    .release = pgb_release,
    .txn_lost = pgb_txn_lost,
    .commit = pgb_commit,
    .rollback = pgb_rollback,
    .op_run = pgb_op_run,
    .load = pgb_load,
    .start = pg_feed_start,
    .committed = pgb_committed,
    .feed_lag = pg_feed_lag,
    .get = pgb_get,
    .list = pgb_list,
    .source_known = pgb_source_known,
    .subject_exists = pgb_subject_exists,
    .reembed_missing = pgb_reembed_missing,
    .reembed_rows = pgb_reembed_rows,
};

/* ---- A look without opening ---- */

int store_pg_peek(const char *uri, StoreModelCount *out, int max, int *n, char *err) {
    PGconn *c = NULL;
    PGresult *r = NULL;
    int rc = pg_connect(uri, PG_STATEMENT_MS, &c, err);
    /* No samples table yet: a database siamesed never set up (nothing is created here). */
    if (rc == 0)
        rc = pg_query(c, "SELECT to_regclass('samples') IS NOT NULL", 0, NULL, NULL, NULL, &r,
                      "peek", err);
    int has = rc == 0 && PQntuples(r) == 1 && PQgetlength(r, 0, 0) == 1 && PQgetvalue(r, 0, 0)[0];
    PQclear(r);
    r = NULL;
    if (rc == 0 && has)
        rc = pg_query(c,
                      "SELECT fingerprint, count(*), count(image) FROM samples"
                      " GROUP BY fingerprint ORDER BY 2 DESC, 1",
                      0, NULL, NULL, NULL, &r, "read samples", err);
    for (int i = 0; rc == 0 && r && i < PQntuples(r) && *n < max; i++) {
        size_t len = 0;
        const char *fp = pg_val_text(r, i, 0, &len);
        StoreModelCount *m = &out[*n];
        if (!fp || len != STORE_FINGERPRINT_LEN || !store_fingerprint_valid(fp) ||
            pg_val_int(r, i, 1, 0, &m->samples) < 0 || pg_val_int(r, i, 2, 0, &m->with_image) < 0) {
            rc = sm_err(err, -EINVAL, "a sample row has a malformed model fingerprint");
            break;
        }
        memcpy(m->fingerprint, fp, STORE_FINGERPRINT_LEN + 1);
        (*n)++;
    }
    PQclear(r);
    PQfinish(c);
    if (rc < 0) {
        char why[SM_ERRMAX];
        snprintf(why, sizeof why, "%s", err ? err : "");
        sm_err(err, rc, "%s: %s", uri, why);
    }
    return rc;
}
