/*
 * store_sqlite.h — what the SQLite backend's files share (store_sqlite.c:
 * open, close, reads, loading; store_sqlite_ops.c: the write transaction and
 * its ops, the re-embed reads; store_sqlite_migrate.c: connection helpers and
 * the migration runner; peek.c). Not for other modules.
 */
#ifndef SIAMESE_STORE_SQLITE_H
#define SIAMESE_STORE_SQLITE_H

#include "store_int.h"

#include <sqlite3.h>

/* Store.be_state of a SQLite store. */
typedef struct {
    sqlite3 *wdb; /* owned by the writer thread once it runs */
} SqliteState;

/* The writer connection of a SQLite store. */
static inline sqlite3 *sqlite_wdb(Store *s) {
    return ((SqliteState *)s->be_state)->wdb;
}

/* Opens a connection with foreign keys on, synchronous=FULL and the busy
 * timeout; the writer (create=1) also switches to WAL and checks that it did.
 * Readers are query_only. *out is closed with sqlite3_close(). */
int store_db_open(const char *path, int create, int busy_ms, sqlite3 **out, char *err);

/* Maps a SQLite result code to a negative errno (SQLITE_FULL -> -ENOSPC, ...)
 * and writes "what: reason" into err. */
int store_db_fail(sqlite3 *db, int rc, const char *what, char *err);

/* Runs sql (no results); on failure as store_db_fail(). */
int store_db_exec(sqlite3 *db, const char *sql, char *err);

/* Prepares sql; on failure as store_db_fail(). */
int store_db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err);

/* Rolls back if a transaction is open (after a failure; errors ignored). */
void store_db_rollback(sqlite3 *db);

/* PRAGMA quick_check: -EINVAL naming the first problem unless "ok". */
int store_db_check(sqlite3 *db, char *err);

/* The runner behind store_migrate_file(), on an open writer connection. */
int store_db_migrate(sqlite3 *db, const StoreMigration *list, int n, int *from, int *to, char *err);

/* Column col of a row, validated (rows.c's checks on the column's value): a
 * subject id, an integer >= min, metadata. 0, or negative. */
int store_col_id(sqlite3_stmt *st, int col, char *out);
int store_col_int_min(sqlite3_stmt *st, int col, int64_t min, int64_t *out);
int store_col_metadata(sqlite3_stmt *st, int col, char **out);

/* store_sqlite_ops.c: the write-transaction entries of the backend table. */
int sqlite_begin(Store *s, char *err);
int sqlite_savepoint(Store *s, char *err);
int sqlite_release(Store *s, int ok, char *err);
int sqlite_txn_lost(Store *s);
int sqlite_commit(Store *s, char *err);
void sqlite_rollback(Store *s);
int sqlite_op_run(Store *s, WriteOp *op, char *err);
int sqlite_reembed_missing(Store *s, void *conn, int64_t *missing, char *err);
int sqlite_reembed_rows(Store *s, void *conn, int64_t after, int max, StoreImageFn fn, void *ctx,
                        char *err);

#endif
