/*
 * store_pg_ops.c — the PostgreSQL backend's write side: the group-commit
 * writer's transaction and the SQL of each op, every one of which also
 * records what it changed in the changes table (see store_pg_feed.c), and
 * the reads re-embedding needs.
 *
 * A batch: BEGIN, pg_advisory_xact_lock(PG_LOCK_WRITE) — one database writer
 * at a time, so change ids commit in the order they were taken — a SAVEPOINT
 * per op, then NOTIFY siamesed_changes with the last change id and COMMIT,
 * which with synchronous_commit on returns once the commit is flushed: only
 * then does any caller get its answer.
 */
#include "store_pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static PGconn *wdb(Store *s) {
    return pg_state(s)->wdb;
}

/* Starts the batch's transaction, takes the write lock (the feed's order)
 * and reads which model the daemons serve. */
int pgb_begin(Store *s, char *err) {
    PgState *st = pg_state(s);
    PGresult *r = NULL;
    size_t len = 0;
    int rc = pg_query_fresh(st->wdb, "BEGIN; SELECT pg_advisory_xact_lock(" PG_LOCK_WRITE ")", 0,
                            NULL, NULL, "starting a write", err);
    if (rc == 0)
        rc = pg_query(st->wdb, "SELECT fingerprint FROM serving_model", 0, NULL, NULL, NULL, &r,
                      "starting a write", err);
    const char *fp = rc == 0 ? pg_val_text(r, 0, 0, &len) : NULL;
    st->serving[0] = '\0';
    if (fp && len == STORE_FINGERPRINT_LEN && store_fingerprint_valid(fp))
        memcpy(st->serving, fp, len + 1);
    else if (rc == 0 && PQntuples(r) > 0)
        rc = sm_err(err, -EINVAL, "serving_model holds an invalid fingerprint");
    PQclear(r);
    return rc;
}

int pgb_savepoint(Store *s, char *err) {
    return pg_exec(wdb(s), "SAVEPOINT op", 0, NULL, "starting a write", err);
}

int pgb_release(Store *s, int ok, char *err) {
    return pg_exec(wdb(s), ok ? "RELEASE op" : "ROLLBACK TO op; RELEASE op", 0, NULL,
                   "ending a write", err);
}

int pgb_txn_lost(Store *s) {
    PGTransactionStatusType t = PQtransactionStatus(wdb(s));
    return PQstatus(wdb(s)) != CONNECTION_OK || (t != PQTRANS_INTRANS && t != PQTRANS_INERROR);
}

int pgb_commit(Store *s, char *err) {
    return pg_exec(wdb(s),
                   "SELECT pg_notify('siamesed_changes', coalesce(max(id), 0)::text) FROM changes;"
                   " COMMIT",
                   0, NULL, "committing", err);
}

void pgb_rollback(Store *s) {
    pg_rollback(wdb(s));
}

/* The one integer in the first column of a one-row result. */
static int query_int(PGconn *c, const char *sql, int n, const char *const *vals, int64_t *out,
                     const char *what, char *err) {
    PGresult *r = NULL;
    int rc = pg_query(c, sql, n, vals, NULL, NULL, &r, what, err);
    if (rc == 0 && pg_val_int(r, 0, 0, 0, out) < 0)
        rc = sm_err(err, -EIO, "%s: unexpected result", what);
    PQclear(r);
    return rc;
}

static int subject_upsert(PGconn *c, WriteOp *op, const char *now, char *err) {
    int64_t created = 0;
    const char *vals[] = {op->subject, op->metadata, now};
    int rc = query_int(c,
                       "WITH ins AS (INSERT INTO subjects (id, metadata, created_at)"
                       " VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING RETURNING id),"
                       " ch AS (INSERT INTO changes (kind, subject_id, d_subjects, d_samples)"
                       " SELECT 'subject', id, 1, 0 FROM ins) SELECT count(*) FROM ins",
                       3, vals, &created, "writing the subject", err);
    op->created = created == 1;
    if (rc == 0 && !op->created && op->metadata)
        rc = pg_exec(c, "UPDATE subjects SET metadata = $2 WHERE id = $1", 2, vals,
                     "writing the subject", err);
    return rc;
}

static int add_sample(Store *s, PGconn *c, WriteOp *op, int i, const char *now, char *err) {
    const StoreSampleIn *in = &op->samples[i];
    int keep = s->keep_images && in->image && in->image_len > 0;
    const char *vals[] = {op->subject,
                          (const char *)in->embedding,
                          s->fingerprint,
                          keep ? (const char *)in->image : NULL,
                          keep ? in->content_type : NULL,
                          now,
                          in->source};
    int lens[] = {0, s->dim * (int)sizeof(float), 0, keep ? (int)in->image_len : 0, 0, 0, 0};
    int bin[] = {0, 1, 0, 1, 0, 0, 0};
    PGresult *r = NULL;
    int rc = pg_query(c,
                      "WITH s AS (INSERT INTO samples (subject_id, embedding, fingerprint, image,"
                      " content_type, created_at, source) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                      " RETURNING id, subject_id),"
                      " ch AS (INSERT INTO changes (kind, subject_id, sample_id, d_subjects,"
                      " d_samples) SELECT 'add', subject_id, id, 0, 1 FROM s) SELECT id FROM s",
                      7, vals, lens, bin, &r, "adding a sample", err);
    if (rc == 0 && pg_val_int(r, 0, 0, 1, &op->ids_out[i]) < 0)
        rc = sm_err(err, -EIO, "adding a sample: no id returned");
    PQclear(r);
    return rc;
}

static int count_samples(PGconn *c, const char *subject, int64_t *out, char *err) {
    const char *vals[] = {subject};
    return query_int(c, "SELECT count(*) FROM samples WHERE subject_id = $1", 1, vals, out,
                     "counting samples", err);
}

static int op_enroll(Store *s, PGconn *c, WriteOp *op, char *err) {
    const char *serving = pg_state(s)->serving;
    char now[24];
    /* Two models' embeddings cannot be compared: one model per database. */
    if (serving[0] && strcmp(serving, s->fingerprint) != 0)
        return sm_err(err, -ESTALE,
                      "the database is served with model %.12s..., not this daemon's %.12s...: "
                      "run every daemon on it with one model (after `siamesed --reembed` with "
                      "the new one, restart the others with it)",
                      serving, s->fingerprint);
    snprintf(now, sizeof now, "%lld", (long long)store_now_ms());
    int rc = subject_upsert(c, op, now, err);
    for (int i = 0; rc == 0 && i < op->n; i++)
        rc = add_sample(s, c, op, i, now, err);
    return rc == 0 ? count_samples(c, op->subject, &op->count, err) : rc;
}

/* Runs a delete whose result row is (rows deleted, samples counted before);
 * SM_ABSENT when it deleted nothing. */
static int delete_rows(PGconn *c, const char *sql, int n, const char *const *vals, int64_t *count,
                       int64_t *deleted, const char *what, char *err) {
    PGresult *r = NULL;
    int rc = pg_query(c, sql, n, vals, NULL, NULL, &r, what, err);
    if (rc == 0 && (pg_val_int(r, 0, 0, 0, deleted) < 0 || pg_val_int(r, 0, 1, 0, count) < 0))
        rc = sm_err(err, -EIO, "%s: unexpected result", what);
    PQclear(r);
    return rc == 0 && *deleted == 0 ? SM_ABSENT : rc;
}

/* Every part of one WITH sees the same snapshot: the counts are from before
 * the delete. */
static int op_delete_subject(PGconn *c, WriteOp *op, char *err) {
    const char *vals[] = {op->subject};
    int64_t deleted = 0;
    return delete_rows(c,
                       "WITH n AS (SELECT count(*) AS c FROM samples WHERE subject_id = $1),"
                       " d AS (DELETE FROM subjects WHERE id = $1 RETURNING id),"
                       " ch AS (INSERT INTO changes (kind, subject_id, d_subjects, d_samples)"
                       " SELECT 'remove_subject', id, -1, -(SELECT c FROM n) FROM d)"
                       " SELECT (SELECT count(*) FROM d), (SELECT c FROM n)",
                       1, vals, &op->count, &deleted, "deleting a subject", err);
}

static int op_delete_sample(PGconn *c, WriteOp *op, char *err) {
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)op->sample_id);
    const char *vals[] = {op->subject, id};
    int64_t deleted = 0, before = 0;
    int rc = delete_rows(c,
                         "WITH d AS (DELETE FROM samples WHERE id = $2 AND subject_id = $1"
                         " RETURNING id, subject_id),"
                         " ch AS (INSERT INTO changes (kind, subject_id, sample_id, d_subjects,"
                         " d_samples) SELECT 'remove_sample', subject_id, id, 0, -1 FROM d)"
                         " SELECT (SELECT count(*) FROM d),"
                         " (SELECT count(*) FROM samples WHERE subject_id = $1)",
                         2, vals, &before, &deleted, "deleting a sample", err);
    op->count = before - deleted;
    return rc;
}

static int op_reembed(Store *s, PGconn *c, WriteOp *op, char *err) {
    char id[24];
    int rc = 0;
    op->count = 0;
    for (int i = 0; rc == 0 && i < op->n; i++) {
        int64_t updated = 0;
        snprintf(id, sizeof id, "%lld", (long long)op->ids[i]);
        const char *vals[] = {(const char *)(op->embs + (size_t)i * s->dim), s->fingerprint, id};
        int lens[] = {s->dim * (int)sizeof(float), 0, 0}, bin[] = {1, 0, 0};
        PGresult *r = NULL;
        /* A sample deleted meanwhile, or already current, is simply not updated. */
        rc = pg_query(c,
                      "WITH u AS (UPDATE samples SET embedding = $1, fingerprint = $2"
                      " WHERE id = $3 AND fingerprint <> $2 RETURNING id, subject_id),"
                      " ch AS (INSERT INTO changes (kind, subject_id, sample_id, d_subjects,"
                      " d_samples) SELECT 'reembed', subject_id, id, 0, 0 FROM u)"
                      " SELECT count(*) FROM u",
                      3, vals, lens, bin, &r, "re-embedding a sample", err);
        if (rc == 0 && pg_val_int(r, 0, 0, 0, &updated) < 0)
            rc = sm_err(err, -EIO, "re-embedding a sample: unexpected result");
        op->count += updated;
        PQclear(r);
    }
    return rc;
}

int pgb_op_run(Store *s, WriteOp *op, char *err) {
    PGconn *c = wdb(s);
    switch (op->kind) {
    case OP_ENROLL:
        return op_enroll(s, c, op, err);
    case OP_DELETE_SUBJECT:
        return op_delete_subject(c, op, err);
    case OP_DELETE_SAMPLE:
        return op_delete_sample(c, op, err);
    case OP_REEMBED:
        return op_reembed(s, c, op, err);
    default:
        return sm_err(err, -EINVAL, "unknown write");
    }
}

/* ---- Re-embedding reads ---- */

int pgb_reembed_missing(Store *s, void *conn, int64_t *missing, char *err) {
    const char *vals[] = {s->fingerprint};
    PGresult *r = NULL;
    int rc = pg_query_fresh(
        conn, "SELECT count(*) FROM samples WHERE fingerprint <> $1 AND image IS NULL", 1, vals, &r,
        "counting samples without images", err);
    if (rc == 0 && pg_val_int(r, 0, 0, 0, missing) < 0)
        rc = sm_err(err, -EIO, "counting samples without images: unexpected result");
    PQclear(r);
    return rc;
}

int pgb_reembed_rows(Store *s, void *conn, int64_t after, int max, StoreImageFn fn, void *ctx,
                     char *err) {
    char a[24], lim[16];
    snprintf(a, sizeof a, "%lld", (long long)after);
    snprintf(lim, sizeof lim, "%d", max);
    const char *vals[] = {s->fingerprint, a, lim};
    PGresult *r = NULL;
    int rc = pg_query_fresh(conn,
                            "SELECT id, image, content_type FROM samples WHERE fingerprint <> $1"
                            " AND id > $2 ORDER BY id LIMIT $3",
                            3, vals, &r, "reading samples to re-embed", err);
    int rows = rc == 0 ? PQntuples(r) : 0;
    for (int i = 0; rc == 0 && i < rows && i < max; i++) {
        StoreImageRow row = {0};
        if (pg_val_int(r, i, 0, 1, &row.id) < 0)
            row.id = 0;
        row.image = pg_val_bytea(r, i, 1, &row.image_len);
        row.content_type = pg_val_text(r, i, 2, &row.content_type_len);
        rc = fn(s, &row, ctx, err);
    }
    PQclear(r);
    return rc;
}
