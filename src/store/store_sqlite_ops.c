/*
 * store_sqlite_ops.c — the SQLite backend's write side: the group-commit
 * writer's transaction (BEGIN IMMEDIATE, a SAVEPOINT per op, COMMIT, which
 * with synchronous=FULL is the fsync), the SQL of each op, and the reads
 * re-embedding needs.
 */
#include "store_sqlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sqlite_begin(Store *s, char *err) {
    return store_db_exec(sqlite_wdb(s), "BEGIN IMMEDIATE", err);
}

int sqlite_savepoint(Store *s, char *err) {
    return store_db_exec(sqlite_wdb(s), "SAVEPOINT op", err);
}

int sqlite_release(Store *s, int ok, char *err) {
    return store_db_exec(sqlite_wdb(s), ok ? "RELEASE op" : "ROLLBACK TO op; RELEASE op", err);
}

/* Some errors (I/O, memory) make SQLite roll back the transaction. */
int sqlite_txn_lost(Store *s) {
    return sqlite3_get_autocommit(sqlite_wdb(s));
}

int sqlite_commit(Store *s, char *err) {
    return store_db_exec(sqlite_wdb(s), "COMMIT", err);
}

void sqlite_rollback(Store *s) {
    store_db_rollback(sqlite_wdb(s));
}

static int step_done(sqlite3 *db, sqlite3_stmt *st, const char *what, char *err) {
    int rc = sqlite3_step(st);
    return rc == SQLITE_DONE ? 0 : store_db_fail(db, rc, what, err);
}

/* Runs a query whose one row's first column is an integer into *out, or
 * leaves *out alone and returns SM_ABSENT when there is no row. */
static int query_int(sqlite3 *db, const char *sql, const char *text, int64_t *out, char *err) {
    sqlite3_stmt *st = NULL;
    int rc = store_db_prepare(db, sql, &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    rc = step == SQLITE_ROW    ? 0
         : step == SQLITE_DONE ? SM_ABSENT
                               : store_db_fail(db, step, sql, err);
    sqlite3_finalize(st);
    return rc;
}

static int count_samples(sqlite3 *db, const char *subject, int64_t *out, char *err) {
    return query_int(db, "SELECT count(*) FROM samples WHERE subject_id = ?1", subject, out, err);
}

static int subject_upsert(sqlite3 *db, WriteOp *op, int64_t now, char *err) {
    int64_t one = 0;
    int rc = query_int(db, "SELECT 1 FROM subjects WHERE id = ?1", op->subject, &one, err);
    if (rc < 0)
        return rc;
    op->created = rc == SM_ABSENT;
    if (!op->created && !op->metadata)
        return 0;
    sqlite3_stmt *st = NULL;
    rc = store_db_prepare(
        db,
        op->created ? "INSERT INTO subjects (id, metadata, created_at) VALUES (?1, ?2, ?3)"
                    : "UPDATE subjects SET metadata = ?2 WHERE id = ?1",
        &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, op->subject, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, op->metadata, -1, SQLITE_STATIC); /* NULL binds NULL */
    if (op->created)
        sqlite3_bind_int64(st, 3, now);
    rc = step_done(db, st, "writing the subject", err);
    sqlite3_finalize(st);
    return rc;
}

static int op_enroll(Store *s, sqlite3 *db, WriteOp *op, char *err) {
    int64_t now = store_now_ms();
    sqlite3_stmt *st = NULL;
    int rc = subject_upsert(db, op, now, err);
    if (rc == 0)
        rc = store_db_prepare(db,
                              "INSERT INTO samples (subject_id, embedding, fingerprint, image,"
                              " content_type, created_at, source)"
                              " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                              &st, err);
    for (int i = 0; rc == 0 && i < op->n; i++) {
        const StoreSampleIn *in = &op->samples[i];
        int keep = store_image_kept(s, in);
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, op->subject, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, in->embedding, s->dim * (int)sizeof(float), SQLITE_STATIC);
        sqlite3_bind_text(st, 3, s->fingerprint, -1, SQLITE_STATIC);
        if (keep) {
            sqlite3_bind_blob64(st, 4, in->image, in->image_len, SQLITE_STATIC);
            sqlite3_bind_text(st, 5, in->content_type, -1, SQLITE_STATIC);
        } else {
            sqlite3_bind_null(st, 4);
            sqlite3_bind_null(st, 5);
        }
        sqlite3_bind_int64(st, 6, now);
        sqlite3_bind_text(st, 7, in->source, -1, SQLITE_STATIC); /* NULL binds NULL */
        rc = step_done(db, st, "adding a sample", err);
        if (rc == 0)
            op->ids_out[i] = sqlite3_last_insert_rowid(db);
    }
    sqlite3_finalize(st);
    return rc == 0 ? count_samples(db, op->subject, &op->count, err) : rc;
}

/* Runs a one-text, optionally one-integer DELETE; SM_ABSENT if it removed nothing. */
static int delete_rows(sqlite3 *db, const char *sql, const char *text, int64_t num,
                       const char *what, char *err) {
    sqlite3_stmt *st = NULL;
    int rc = store_db_prepare(db, sql, &st, err);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
        if (sqlite3_bind_parameter_count(st) > 1)
            sqlite3_bind_int64(st, 2, num);
        rc = step_done(db, st, what, err);
    }
    sqlite3_finalize(st);
    return rc == 0 && sqlite3_changes(db) == 0 ? SM_ABSENT : rc;
}

static int op_reembed(Store *s, sqlite3 *db, WriteOp *op, char *err) {
    sqlite3_stmt *st = NULL;
    /* A sample deleted meanwhile, or already current, is simply not updated. */
    int rc = store_db_prepare(db,
                              "UPDATE samples SET embedding = ?1, fingerprint = ?2"
                              " WHERE id = ?3 AND fingerprint <> ?2",
                              &st, err);
    op->count = 0;
    for (int i = 0; rc == 0 && i < op->n; i++) {
        sqlite3_reset(st);
        sqlite3_bind_blob(st, 1, op->embs + (size_t)i * s->dim, s->dim * (int)sizeof(float),
                          SQLITE_STATIC);
        sqlite3_bind_text(st, 2, s->fingerprint, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, op->ids[i]);
        rc = step_done(db, st, "re-embedding a sample", err);
        op->count += sqlite3_changes(db);
    }
    sqlite3_finalize(st);
    return rc;
}

int sqlite_op_run(Store *s, WriteOp *op, char *err) {
    sqlite3 *db = sqlite_wdb(s);
    int rc;
    switch (op->kind) {
    case OP_ENROLL:
        return op_enroll(s, db, op, err);
    case OP_DELETE_SUBJECT:
        rc = count_samples(db, op->subject, &op->count, err);
        return rc == 0 ? delete_rows(db, "DELETE FROM subjects WHERE id = ?1", op->subject, 0,
                                     "deleting a subject", err)
                       : rc;
    case OP_DELETE_SAMPLE:
        rc = delete_rows(db, "DELETE FROM samples WHERE id = ?2 AND subject_id = ?1", op->subject,
                         op->sample_id, "deleting a sample", err);
        return rc == 0 ? count_samples(db, op->subject, &op->count, err) : rc;
    case OP_REEMBED:
        return op_reembed(s, db, op, err);
    default:
        return sm_err(err, -EINVAL, "unknown write");
    }
}

/* ---- Re-embedding reads ---- */

int sqlite_reembed_missing(Store *s, void *conn, int64_t *missing, char *err) {
    sqlite3 *db = conn;
    sqlite3_stmt *st = NULL;
    int rc = store_db_prepare(
        db, "SELECT count(*) FROM samples WHERE fingerprint <> ?1 AND image IS NULL", &st, err);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, s->fingerprint, -1, SQLITE_STATIC);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            *missing = sqlite3_column_int64(st, 0);
        else
            rc = store_db_fail(db, step, "counting samples without images", err);
    }
    sqlite3_finalize(st);
    return rc;
}

int sqlite_reembed_rows(Store *s, void *conn, int64_t after, int max, StoreImageFn fn, void *ctx,
                        char *err) {
    sqlite3 *db = conn;
    sqlite3_stmt *st = NULL;
    int step = SQLITE_DONE, m = 0;
    int rc = store_db_prepare(db,
                              "SELECT id, image, content_type FROM samples"
                              " WHERE fingerprint <> ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                              &st, err);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, s->fingerprint, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, after);
        sqlite3_bind_int(st, 3, max);
    }
    while (rc == 0 && m < max && (step = sqlite3_step(st)) == SQLITE_ROW) {
        /* Types first: reading a value may convert it. */
        StoreImageRow r = {
            .id = sqlite3_column_type(st, 0) == SQLITE_INTEGER ? sqlite3_column_int64(st, 0) : 0};
        if (sqlite3_column_type(st, 1) == SQLITE_BLOB) {
            r.image = sqlite3_column_blob(st, 1);
            r.image_len = (size_t)sqlite3_column_bytes(st, 1);
        }
        if (sqlite3_column_type(st, 2) == SQLITE_TEXT) {
            r.content_type = (const char *)sqlite3_column_text(st, 2);
            r.content_type_len = (size_t)sqlite3_column_bytes(st, 2);
        }
        rc = fn(s, &r, ctx, err);
        m++;
    }
    if (rc == 0 && step != SQLITE_DONE && step != SQLITE_ROW)
        rc = store_db_fail(db, step, "reading samples to re-embed", err);
    sqlite3_finalize(st);
    return rc;
}
