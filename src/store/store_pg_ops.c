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
#include "store_pg_int.h"

#include "siamese/log.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PG_FIELD_MAX ((size_t)1 << 30)

static PGconn *wdb(Store *s) {
    return pg_state(s)->wdb;
}

static int begin_once(Store *s, PgState *st, char *err) {
    char sql[256];
    /* The wait for the write lock is bounded (busy_timeout_ms): a writer
     * elsewhere that holds it that long answers 503 here, not a hang. */
    /* The transaction's id too: how a COMMIT whose answer was lost ended. */
    snprintf(sql, sizeof sql,
             "BEGIN; SET LOCAL lock_timeout = %d; SELECT pg_advisory_xact_lock(" PG_LOCK_WRITE
             "); SELECT txid_current(), m.fingerprint FROM (SELECT 1) AS one"
             " LEFT JOIN serving_model AS m ON true",
             s->busy_ms);
    PGresult *r = PQexec(st->wdb, sql);
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK)
        return pg_fail(st->wdb, r, "starting a write", err);
    /* A text result (the simple protocol): one row (serving_model has at
     * most one), a positive id and NULL or 64 hex digits. */
    int rc = 0, rows = PQntuples(r);
    const char *id = rows == 1 ? PQgetvalue(r, 0, 0) : "";
    const char *fp = rows == 1 && !PQgetisnull(r, 0, 1) ? PQgetvalue(r, 0, 1) : "";
    char *end = NULL;
    long long txid = strtoll(id, &end, 10);
    if (rows != 1 || (fp[0] && !store_fingerprint_valid(fp)))
        rc = sm_err(err, -EINVAL, "serving_model holds an invalid row");
    else if (end == id || *end || txid <= 0)
        rc = sm_err(err, -EIO, "starting a write: txid_current() gave '%.40s'", id);
    else
        snprintf(st->serving, sizeof st->serving, "%s", fp);
    st->txid = rc == 0 ? (int64_t)txid : 0;
    PQclear(r);
    return rc;
}

/* Starts the batch's transaction, takes the write lock (the feed's order;
 * -ENOTCONN after busy_timeout_ms) and reads which model the daemons serve:
 * one round trip. */
int pgb_begin(Store *s, char *err) {
    PgState *st = pg_state(s);
    st->sp_kept = 0;
    st->serving[0] = '\0';
    st->txid = 0;
    int looked_ok = PQstatus(st->wdb) == CONNECTION_OK;
    int rc = pg_ensure(st->wdb, err);
    if (rc == 0)
        rc = begin_once(s, st, err);
    /* A connection the server cut looks fine until used: reconnect once
     * (at most one reconnect a batch, as pg_query_fresh()). */
    if (rc == -ENOTCONN && looked_ok && PQstatus(st->wdb) != CONNECTION_OK &&
        pg_ensure(st->wdb, err) == 0)
        rc = begin_once(s, st, err);
    return rc;
}

/* The previous op's savepoint, when kept, is released in the same round
 * trip that opens the next one. */
int pgb_savepoint(Store *s, char *err) {
    PgState *st = pg_state(s);
    int kept = st->sp_kept;
    st->sp_kept = 0;
    return pg_exec(st->wdb, kept ? "RELEASE op; SAVEPOINT op" : "SAVEPOINT op", 0, NULL,
                   "starting a write", err);
}

int pgb_release(Store *s, int ok, char *err) {
    PgState *st = pg_state(s);
    if (ok) {
        st->sp_kept = 1; /* COMMIT keeps it too */
        return 0;
    }
    return pg_exec(st->wdb, "ROLLBACK TO op; RELEASE op", 0, NULL, "ending a write", err);
}

int pgb_txn_lost(Store *s) {
    PGTransactionStatusType t = PQtransactionStatus(wdb(s));
    return PQstatus(wdb(s)) != CONNECTION_OK || (t != PQTRANS_INTRANS && t != PQTRANS_INERROR);
}

/* One round of pruning, in its own transaction under the write lock (so a
 * catch-up's gap check sees the floor with the rows gone): the floor moves
 * up to retain behind the newest change, by at most PG_PRUNE_CHUNK ids, and
 * the rows up to it go. 1 if it moved, 0 if nothing was left to prune. */
static int prune_round(Store *s, PgState *st, char *err) {
    char keep[24], chunk[24], sql[96];
    PGresult *r = NULL;
    snprintf(keep, sizeof keep, "%lld", (long long)st->retain);
    snprintf(chunk, sizeof chunk, "%d", PG_PRUNE_CHUNK);
    snprintf(sql, sizeof sql,
             "BEGIN; SET LOCAL lock_timeout = %d; SELECT pg_advisory_xact_lock(" PG_LOCK_WRITE ")",
             s->busy_ms);
    const char *vals[] = {keep, chunk};
    int rc = pg_exec(st->wdb, sql, 0, NULL, "pruning the change feed", err);
    if (rc == 0)
        rc = pg_query(st->wdb,
                      "WITH f AS (UPDATE feed_floor SET id = least(m.top - $1::bigint,"
                      "   feed_floor.id + $2::bigint)"
                      "   FROM (SELECT max(id) AS top FROM changes) AS m"
                      "   WHERE m.top - $1::bigint > feed_floor.id RETURNING feed_floor.id),"
                      " d AS (DELETE FROM changes WHERE id <= (SELECT id FROM f))"
                      " SELECT count(*) FROM f",
                      2, vals, NULL, NULL, &r, "pruning the change feed", err);
    int64_t moved = 0;
    if (rc == 0 && pg_val_int(r, 0, 0, 0, &moved) < 0)
        rc = sm_err(err, -EINVAL, "pruning the change feed: an invalid count");
    PQclear(r);
    if (rc == 0)
        rc = pg_exec(st->wdb, "COMMIT", 0, NULL, "pruning the change feed", err);
    pg_rollback(st->wdb);
    return rc < 0 ? rc : moved > 0;
}

/* Every PG_PRUNE_EVERY commits, after the commit (housekeeping never fails
 * a client's write, and holds the write lock only briefly): the change
 * rows more than retain behind the newest go, in rounds of PG_PRUNE_CHUNK,
 * at most PG_PRUNE_ROUNDS of them now (the rest next time). Failures are
 * only logged. */
void pg_prune(Store *s) {
    PgState *st = pg_state(s);
    char err[SM_ERRMAX];
    if (++st->commits % PG_PRUNE_EVERY != 0)
        return;
    int rc = 1;
    for (int i = 0; rc == 1 && i < PG_PRUNE_ROUNDS; i++)
        rc = prune_round(s, st, err);
    if (rc < 0)
        log_warn("store: %s (retried after %d more commits)", err, PG_PRUNE_EVERY);
}

/* How the transaction st->txid ended, asked on a fresh connection after
 * the one that sent its COMMIT was lost before the answer (txid_status(),
 * PostgreSQL >= 10): 0 committed, 1 aborted, 2 still in progress, -1 not
 * known (no connection, or too old to tell). */
static int txn_status(PgState *st) {
    char id[24], err[SM_ERRMAX];
    snprintf(id, sizeof id, "%lld", (long long)st->txid);
    const char *vals[] = {id};
    PGresult *r = NULL;
    size_t len = 0;
    int rc = pg_ensure(st->wdb, err);
    if (rc == 0)
        rc = pg_query(st->wdb, "SELECT txid_status($1::bigint)", 1, vals, NULL, NULL, &r,
                      "asking how a commit ended", err);
    const char *v = rc == 0 ? pg_val_text(r, 0, 0, &len) : NULL;
    int status = !v                          ? -1
                 : !strcmp(v, "committed")   ? 0
                 : !strcmp(v, "aborted")     ? 1
                 : !strcmp(v, "in progress") ? 2
                                             : -1;
    PQclear(r);
    return status;
}

/* A COMMIT sent, and the connection lost before its answer: the write may
 * be stored (and reach every index through the feed) or not. Asked, and
 * waited for up to PG_OUTCOME_WAIT_MS while the old session finishes:
 * committed is success; aborted -ENOTCONN (nothing stored, retry);
 * otherwise -EINPROGRESS (store.h: the outcome is unknown). */
static int commit_outcome(PgState *st, char *err) {
    char lost[SM_ERRMAX];
    snprintf(lost, sizeof lost, "%s", err);
    int status = txn_status(st);
    for (int waited = 0; status == 2 && waited < PG_OUTCOME_WAIT_MS; waited += 50) {
        usleep(50 * 1000);
        status = txn_status(st);
    }
    if (status == 0) {
        log_warn("store: the connection was lost during COMMIT, which succeeded (%s)", lost);
        return 0;
    }
    if (status == 1)
        return sm_err(err, -ENOTCONN, "%s (the write was rolled back)", lost);
    return sm_err(err, -EINPROGRESS,
                  "%s: whether the write was stored is unknown (look before writing it again)",
                  lost);
}

int pgb_commit(Store *s, char *err) {
    PgState *st = pg_state(s);
    int rc = pg_exec(st->wdb,
                     "SELECT pg_notify('siamesed_changes', coalesce(max(id), 0)::text)"
                     " FROM changes; COMMIT",
                     0, NULL, "committing", err);
    /* An error the server answered ended the transaction; a lost
     * connection leaves it unknown. */
    if (rc == -ENOTCONN && PQstatus(st->wdb) != CONNECTION_OK && st->txid > 0)
        rc = commit_outcome(st, err);
    return rc;
}

void pgb_rollback(Store *s) {
    pg_rollback(wdb(s));
}

/* A PostgreSQL array literal of n texts (NULL entries stay NULL), each
 * quoted with " and \\ escaped; malloc'ed into *out. */
static int text_array(const char *const *v, int n, char **out, char *err) {
    size_t size = 3;
    for (int i = 0; i < n; i++)
        size += v[i] ? 2 * strlen(v[i]) + 3 : 5;
    char *p = malloc(size);
    if (!(*out = p))
        return sm_err(err, -ENOMEM, "out of memory");
    *p++ = '{';
    for (int i = 0; i < n; i++) {
        if (i)
            *p++ = ',';
        if (!v[i]) {
            memcpy(p, "NULL", 4), p += 4;
            continue;
        }
        *p++ = '"';
        for (const char *c = v[i]; *c; c++) {
            if (*c == '"' || *c == '\\')
                *p++ = '\\';
            *p++ = *c;
        }
        *p++ = '"';
    }
    *p++ = '}';
    *p = '\0';
    return 0;
}

/* An int array literal: each sample's image offset and length (NULL: none). */
static int image_arrays(Store *s, WriteOp *op, char **offs, char **lens, uint8_t **blob,
                        size_t *total, char *err) {
    size_t cap = (size_t)op->n * 24 + 3;
    *offs = malloc(cap);
    *lens = malloc(cap);
    *total = 0;
    for (int i = 0; i < op->n; i++)
        if (store_image_kept(s, &op->samples[i]))
            *total += op->samples[i].image_len;
    /* One bytea parameter: PostgreSQL takes at most 1 GB in a field. */
    if (*total > PG_FIELD_MAX)
        return sm_err(err, -E2BIG, "images of %zu bytes, more than one write takes", *total);
    *blob = malloc(*total ? *total : 1);
    if (!*offs || !*lens || !*blob)
        return sm_err(err, -ENOMEM, "out of memory");
    char *o = *offs, *l = *lens;
    size_t at = 0;
    *o++ = '{', *l++ = '{';
    for (int i = 0; i < op->n; i++) {
        const StoreSampleIn *in = &op->samples[i];
        int keep = store_image_kept(s, in);
        if (keep)
            memcpy(*blob + at, in->image, in->image_len);
        o += sprintf(o, "%s%zu", i ? "," : "", at);
        l += keep ? sprintf(l, "%s%zu", i ? "," : "", in->image_len)
                  : sprintf(l, "%sNULL", i ? "," : "");
        at += keep ? in->image_len : 0;
    }
    strcpy(o, "}"), strcpy(l, "}");
    return 0;
}

/* The whole enroll in one statement (one round trip): the subject created
 * or its metadata replaced, the samples (their embeddings, images, content
 * types and sources passed as one blob and arrays, split in SQL), a change
 * row for each, and the subject's count. Every part of a WITH sees the
 * snapshot from before the statement: the count is the one before. */
static const char ENROLL_SQL[] =
    "WITH ins AS (INSERT INTO subjects (id, metadata, created_at) VALUES ($1, $2, $3)"
    "   ON CONFLICT (id) DO NOTHING RETURNING id),"
    " upd AS (UPDATE subjects SET metadata = $2 WHERE id = $1 AND $2::text IS NOT NULL"
    "   RETURNING id),"
    " chs AS (INSERT INTO changes (kind, subject_id, d_subjects, d_samples)"
    "   SELECT 'subject', id, 1, 0 FROM ins),"
    " src AS (SELECT g, substring($5::bytea FROM g * $6::int + 1 FOR $6::int) AS emb,"
    "   CASE WHEN ($10::int[])[g + 1] IS NULL THEN NULL ELSE substring($8::bytea"
    "     FROM ($9::int[])[g + 1] + 1 FOR ($10::int[])[g + 1]) END AS img,"
    "   ($11::text[])[g + 1] AS ct, ($12::text[])[g + 1] AS source"
    "   FROM generate_series(0, $7::int - 1) AS g),"
    " s AS (INSERT INTO samples (subject_id, embedding, fingerprint, image, content_type,"
    "   created_at, source) SELECT $1, emb, $4, img, ct, $3, source FROM src ORDER BY g"
    "   RETURNING id, subject_id),"
    " cha AS (INSERT INTO changes (kind, subject_id, sample_id, d_subjects, d_samples)"
    "   SELECT 'add', subject_id, id, 0, 1 FROM s ORDER BY id)"
    " SELECT c.created, c.before, s.id FROM (SELECT (SELECT count(*) FROM ins) AS created,"
    "   (SELECT count(*) FROM samples WHERE subject_id = $1) AS before) AS c"
    "   LEFT JOIN s ON true ORDER BY s.id";

/* The result: one row per new sample in id order (ids were taken in the
 * samples' order), or one row with a NULL id for an enroll of none. */
static int enroll_result(const PGresult *r, WriteOp *op, char *err) {
    int64_t created = 0, before = 0;
    int rows = PQntuples(r);
    if (rows != (op->n ? op->n : 1) || pg_val_int(r, 0, 0, 0, &created) < 0 || created > 1 ||
        pg_val_int(r, 0, 1, 0, &before) < 0)
        return sm_err(err, -EIO, "enroll: unexpected result");
    for (int i = 0; i < op->n; i++)
        if (pg_val_int(r, i, 2, 1, &op->ids_out[i]) < 0 ||
            (i > 0 && op->ids_out[i] <= op->ids_out[i - 1]))
            return sm_err(err, -EIO, "enroll: unexpected sample ids");
    op->created = created == 1;
    op->count = before + op->n;
    return 0;
}

static int op_enroll(Store *s, PGconn *c, WriteOp *op, char *err) {
    const char *serving = pg_state(s)->serving;
    /* Two models' embeddings cannot be compared: one model per database. */
    if (serving[0] && strcmp(serving, s->fingerprint) != 0)
        return sm_err(err, -ESTALE,
                      "the database is served with model %.12s..., not this daemon's %.12s...: "
                      "run every daemon on it with one model (after `siamesed --reembed` with "
                      "the new one, restart the others with it)",
                      serving, s->fingerprint);
    char now[24], dimb[24], n[16], *offs = NULL, *lens = NULL, *cts = NULL, *srcs = NULL;
    const char *ct[STORE_ENROLL_MAX], *src[STORE_ENROLL_MAX];
    assert(op->n >= 0 && op->n <= STORE_ENROLL_MAX); /* store_enroll() checked it */
    uint8_t *images = NULL;
    size_t total = 0, eb = (size_t)s->dim * sizeof(float);
    float *embs = malloc(op->n ? (size_t)op->n * eb : 1);
    for (int i = 0; i < op->n; i++) {
        int keep = store_image_kept(s, &op->samples[i]);
        ct[i] = keep ? op->samples[i].content_type : NULL;
        src[i] = op->samples[i].source;
        if (embs)
            memcpy((char *)embs + (size_t)i * eb, op->samples[i].embedding, eb);
    }
    int rc = embs ? image_arrays(s, op, &offs, &lens, &images, &total, err)
                  : sm_err(err, -ENOMEM, "out of memory");
    if (rc == 0)
        rc = text_array(ct, op->n, &cts, err);
    if (rc == 0)
        rc = text_array(src, op->n, &srcs, err);
    if (rc == 0) {
        snprintf(now, sizeof now, "%lld", (long long)store_now_ms());
        snprintf(dimb, sizeof dimb, "%zu", eb);
        snprintf(n, sizeof n, "%d", op->n);
        const char *vals[] = {op->subject,  op->metadata, now, s->fingerprint,
                              (char *)embs, dimb,         n,   (char *)images,
                              offs,         lens,         cts, srcs};
        int lv[] = {0, 0, 0, 0, (int)((size_t)op->n * eb), 0, 0, (int)total, 0, 0, 0, 0};
        int bin[] = {0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0};
        PGresult *r = NULL;
        rc = pg_query(c, ENROLL_SQL, 12, vals, lv, bin, &r, "enrolling", err);
        if (rc == 0)
            rc = enroll_result(r, op, err);
        PQclear(r);
    }
    free(embs), free(images), free(offs), free(lens), free(cts), free(srcs);
    return rc;
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
