/*
 * store_sqlite.c — the SQLite backend: opening a database file (WAL,
 * synchronous=FULL, quick_check, migrations, the size cap), its pool of read
 * connections, loading the index and the reads. The write transaction and
 * its ops are in store_sqlite_ops.c, connection helpers and migrations in
 * store_sqlite_migrate.c.
 *
 * Reads borrow a pooled connection and run in one read transaction, so a
 * subject and its samples come from the same snapshot.
 */
#include "store_sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- Columns: their type first (reading converts, and after a conversion
 * sqlite3_column_type() is undefined), then rows.c's checks ---- */

static const char *col_text(sqlite3_stmt *st, int col, size_t *len) {
    if (sqlite3_column_type(st, col) != SQLITE_TEXT)
        return NULL;
    const char *t = (const char *)sqlite3_column_text(st, col);
    *len = (size_t)sqlite3_column_bytes(st, col);
    return t;
}

int store_col_id(sqlite3_stmt *st, int col, char *out) {
    size_t len = 0;
    const char *t = col_text(st, col, &len);
    return store_val_id(t, len, out);
}

int store_col_int_min(sqlite3_stmt *st, int col, int64_t min, int64_t *out) {
    if (sqlite3_column_type(st, col) != SQLITE_INTEGER || sqlite3_column_int64(st, col) < min)
        return -EINVAL;
    *out = sqlite3_column_int64(st, col);
    return 0;
}

int store_col_metadata(sqlite3_stmt *st, int col, char **out) {
    *out = NULL;
    if (sqlite3_column_type(st, col) == SQLITE_NULL)
        return 0;
    size_t len = 0;
    const char *t = col_text(st, col, &len);
    return t ? store_val_metadata(t, len, out) : -EINVAL;
}

/* ---- Open and close ---- */

/* Caps the database size (PRAGMA max_page_count is per connection: the
 * writer's is the one that matters). */
static int cap_size(sqlite3 *db, int64_t max_bytes, char *err) {
    sqlite3_stmt *st = NULL;
    char sql[64];
    int rc = store_db_prepare(db, "PRAGMA page_size", &st, err);
    if (rc == 0 && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0) {
        int64_t pages = max_bytes / sqlite3_column_int64(st, 0);
        snprintf(sql, sizeof sql, "PRAGMA max_page_count=%lld", (long long)(pages > 0 ? pages : 1));
        rc = store_db_exec(db, sql, err);
    }
    sqlite3_finalize(st);
    return rc;
}

/* Refuses a read-only database file; creates a missing one 0600 (see
 * store_open()). Root may write a file whatever its mode, so the owner's
 * write bit is checked as well as access(). */
static int db_file_prepare(const char *path, char *err) {
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISREG(st.st_mode) && (!(st.st_mode & S_IWUSR) || access(path, W_OK) != 0))
            return sm_err(err, -EACCES, "the database file is read-only (mode %04o)",
                          (unsigned)(st.st_mode & 07777));
        return 0;
    }
    if (errno != ENOENT)
        return sm_err(err, -errno, "stat: %s", strerror(errno));
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno != EEXIST)
        return sm_err(err, -errno, "create: %s", strerror(errno));
    if (fd >= 0)
        close(fd);
    return 0;
}

static int open_readers(Store *s, int n, char *err) {
    s->rdb = calloc((size_t)n, sizeof *s->rdb);
    if (!s->rdb)
        return sm_err(err, -ENOMEM, "store: out of memory");
    for (; s->n_rdb < n; s->n_rdb++) {
        sqlite3 *db = NULL;
        int rc = store_db_open(s->path, 0, s->busy_ms, &db, err);
        if (rc < 0)
            return rc;
        s->rdb[s->n_rdb] = db;
    }
    return 0;
}

static int sqlite_open(Store *s, const StoreConfig *cfg, int *from, int *to, char *err) {
    if (!sqlite3_threadsafe())
        return sm_err(err, -ENOTSUP, "store: this SQLite is built without thread support");
    SqliteState *st = calloc(1, sizeof *st);
    if (!st)
        return sm_err(err, -ENOMEM, "store: out of memory");
    s->be_state = st;
    int rc = db_file_prepare(s->path, err);
    if (rc == 0)
        rc = store_db_open(s->path, 1, s->busy_ms, &st->wdb, err);
    if (rc == 0 && sqlite3_db_readonly(st->wdb, "main") == 1)
        rc = sm_err(err, -EACCES, "the database file can only be opened read-only");
    if (rc == 0 && !cfg->skip_check)
        rc = store_db_check(st->wdb, err);
    if (rc == 0)
        rc = store_db_migrate(st->wdb, store_migrations, store_n_migrations, from, to, err);
    if (rc == 0 && cfg->max_bytes > 0)
        rc = cap_size(st->wdb, cfg->max_bytes, err);
    if (rc == 0)
        rc = open_readers(s, cfg->readers ? cfg->readers : 4, err);
    return rc;
}

static void sqlite_close(Store *s) {
    SqliteState *st = s->be_state;
    for (int i = 0; i < s->n_rdb; i++)
        sqlite3_close(s->rdb[i]);
    /* Last, so that this close checkpoints the WAL into the database. */
    if (st)
        sqlite3_close(st->wdb);
    free(st);
    s->be_state = NULL;
}

static void sqlite_reader_reset(Store *s, void *conn) {
    store_db_rollback(conn);
}

/* ---- Loading the index ---- */

static int count_rows(sqlite3 *db, const char *sql, int64_t *out, char *err) {
    sqlite3_stmt *st = NULL;
    int rc = store_db_prepare(db, sql, &st, err);
    if (rc == 0) {
        int step = sqlite3_step(st);
        if (step != SQLITE_ROW)
            rc = store_db_fail(db, step, "count", err);
        else
            *out = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return rc;
}

static int sqlite_load(Store *s, StoreLoader *l, int claim, char *err) {
    (void)claim; /* one writer process: nothing to claim from */
    sqlite3 *db = sqlite_wdb(s);
    sqlite3_stmt *st = NULL;
    int64_t subjects = 0, samples = 0;
    int rc = store_db_exec(db, "BEGIN", err);
    if (rc == 0)
        rc = count_rows(db, "SELECT count(*) FROM subjects", &subjects, err);
    if (rc == 0)
        rc = count_rows(db, "SELECT count(*) FROM samples", &samples, err);
    if (rc == 0)
        rc = store_loader_counts(l, subjects, samples, err);
    if (rc == 0)
        rc = store_db_prepare(
            db, "SELECT id, subject_id, fingerprint, embedding FROM samples ORDER BY id", &st, err);
    int step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        StoreRow r = {
            .id = sqlite3_column_type(st, 0) == SQLITE_INTEGER ? sqlite3_column_int64(st, 0) : 0};
        r.subject = col_text(st, 1, &r.subject_len);
        r.fingerprint = col_text(st, 2, &r.fingerprint_len);
        if (sqlite3_column_type(st, 3) == SQLITE_BLOB) {
            r.emb = sqlite3_column_blob(st, 3);
            r.emb_bytes = (size_t)sqlite3_column_bytes(st, 3);
        }
        rc = store_loader_row(l, &r, err);
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = store_db_fail(db, step, "loading samples", err);
    sqlite3_finalize(st);
    store_db_rollback(db); /* ends the read transaction */
    return rc;
}

/* ---- Reads ---- */

/* The subject row of get_rows(): created_at, metadata and the sample count. */
static int get_subject_row(sqlite3 *db, const char *subject, StoreSubject *sj, char *err) {
    sqlite3_stmt *st = NULL;
    int rc = store_db_prepare(db,
                              "SELECT created_at, metadata, (SELECT count(*) FROM samples"
                              " WHERE subject_id = ?1) FROM subjects WHERE id = ?1",
                              &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, subject, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    if (step == SQLITE_DONE)
        rc = SM_ABSENT;
    else if (step != SQLITE_ROW)
        rc = store_db_fail(db, step, "reading a subject", err);
    else if (store_col_int_min(st, 0, 0, &sj->created_at) ||
             store_col_metadata(st, 1, &sj->metadata) || store_col_int_min(st, 2, 0, &sj->total))
        rc = sm_err(err, -EINVAL, "subject %s: invalid created_at or metadata in the database",
                    subject);
    sqlite3_finalize(st);
    return rc;
}

/* The subject and the page of its samples after `after` (limit + 1 rows are
 * read: the extra one only says "more follow"), in one read transaction. */
static int sqlite_get(Store *s, void *conn, const char *subject, int64_t after, int limit,
                      StoreSubject *sj, char *err) {
    sqlite3 *db = conn;
    sqlite3_stmt *st = NULL;
    int rc = store_db_exec(db, "BEGIN", err), step = SQLITE_DONE;
    if (rc == 0)
        rc = get_subject_row(db, subject, sj, err);
    if (rc == 0)
        rc = store_db_prepare(db,
                              "SELECT id, created_at FROM samples WHERE subject_id = ?1"
                              " AND id > ?2 ORDER BY id LIMIT ?3",
                              &st, err);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, subject, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, after);
        sqlite3_bind_int(st, 3, limit + 1);
    }
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if (sj->n_samples == limit) {
            sj->more = 1;
            continue;
        }
        StoreSampleInfo *si = &sj->samples[sj->n_samples];
        if (store_col_int_min(st, 0, 1, &si->id) || store_col_int_min(st, 1, 0, &si->created_at))
            rc = sm_err(err, -EINVAL, "subject %s: invalid sample row in the database", subject);
        sj->n_samples++;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = store_db_fail(db, step, "reading samples", err);
    sqlite3_finalize(st);
    return rc;
}

/* Steps through up to limit + 1 rows; the extra one only says "more follow". */
static int sqlite_list(Store *s, void *conn, const char *after, int limit, StoreListItem *items,
                       int *n, int *more, char *err) {
    sqlite3 *db = conn;
    sqlite3_stmt *st = NULL;
    int rc = store_db_prepare(db,
                              "SELECT id, created_at, (SELECT count(*) FROM samples"
                              " WHERE subject_id = subjects.id) FROM subjects"
                              " WHERE id > ?1 ORDER BY id LIMIT ?2",
                              &st, err);
    int step = SQLITE_DONE;
    if (rc < 0)
        return rc;
    sqlite3_bind_text(st, 1, after, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, limit + 1);
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == limit) {
            *more = 1;
            continue;
        }
        StoreListItem *it = &items[*n];
        if (store_col_id(st, 0, it->id) || store_col_int_min(st, 1, 0, &it->created_at) ||
            store_col_int_min(st, 2, 0, &it->n_samples))
            rc = sm_err(err, -EINVAL, "invalid subject row in the database");
        (*n)++;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = store_db_fail(db, step, "listing subjects", err);
    sqlite3_finalize(st);
    return rc;
}

/* 1 if sql (one text parameter) returns a row, 0 if none. */
static int exists(sqlite3 *db, const char *sql, const char *text, const char *what, char *err) {
    sqlite3_stmt *st = NULL;
    int rc = store_db_prepare(db, sql, &st, err);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, text, -1, SQLITE_STATIC);
        int step = sqlite3_step(st);
        rc = step == SQLITE_ROW ? 1 : step == SQLITE_DONE ? 0 : store_db_fail(db, step, what, err);
    }
    sqlite3_finalize(st);
    return rc;
}

static int sqlite_source_known(Store *s, void *conn, const char *source, char *err) {
    return exists(conn, "SELECT 1 FROM samples WHERE source = ?1", source, "looking up a source",
                  err);
}

static int sqlite_subject_exists(Store *s, void *conn, const char *subject, char *err) {
    return exists(conn, "SELECT 1 FROM subjects WHERE id = ?1", subject, "reading a subject", err);
}

const StoreBackend store_sqlite_backend = {
    .name = "sqlite",
    .open = sqlite_open,
    .close = sqlite_close,
    .reader_reset = sqlite_reader_reset,
    .begin = sqlite_begin,
    .savepoint = sqlite_savepoint,
    .release = sqlite_release,
    .txn_lost = sqlite_txn_lost,
    .commit = sqlite_commit,
    .rollback = sqlite_rollback,
    .op_run = sqlite_op_run,
    .load = sqlite_load,
    .get = sqlite_get,
    .list = sqlite_list,
    .source_known = sqlite_source_known,
    .subject_exists = sqlite_subject_exists,
    .reembed_missing = sqlite_reembed_missing,
    .reembed_rows = sqlite_reembed_rows,
};
