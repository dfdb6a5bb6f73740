/*
 * store_pg_int.h — what the PostgreSQL backend's files share (store_pg.c: open,
 * close, reads, loading; store_pg_ops.c: the write transaction and its ops;
 * store_pg_conn.c: connections, queries, errors and result values;
 * store_pg_migrate.c: the migration runner; store_pg_feed.c: the change feed
 * and its listener thread). Not for other modules.
 */
#ifndef SIAMESE_STORE_PG_INT_H
#define SIAMESE_STORE_PG_INT_H

#include "store_int.h"

#include <libpq-fe.h>

/* pg_advisory_xact_lock() keys, as SQL text: every write transaction takes
 * PG_LOCK_WRITE (so change ids commit in order, see store_pg_feed.c);
 * migrations take PG_LOCK_MIGRATE. Arbitrary constants: "sm1", "sm2" read
 * as 24-bit numbers. */
#define PG_LOCK_WRITE "7564593"
#define PG_LOCK_MIGRATE "7564594"

/* The feed's state (store_pg_feed.c). */
typedef struct PgFeed PgFeed;

/* Store.be_state of a PostgreSQL store. */
typedef struct {
    char *uri;    /* the connection URI as given (never with a password) */
    PGconn *wdb;  /* the writer's connection, owned by the writer thread once it runs */
    PgFeed *feed; /* the change feed and its listener */
    /* The serving model as the current write transaction found it (writer
     * thread only): enrolls with another model are refused. */
    char serving[STORE_FINGERPRINT_LEN + 1];
    int sp_kept;      /* the last op's savepoint is kept but not yet released (writer thread) */
    int64_t retain;   /* change rows kept behind the newest (StoreConfig.feed_retain) */
    unsigned commits; /* this store's commits, for pruning every PG_PRUNE_EVERY */
    int64_t txid;     /* the write transaction's id, txid_current() at begin (writer thread) */
} PgState;

/* How long a writer whose COMMIT's answer was lost waits for the old
 * session to finish before calling the outcome unknown. */
#define PG_OUTCOME_WAIT_MS 5000

#define PG_PRUNE_EVERY 64
#define PG_PRUNE_CHUNK 10000 /* change ids a pruning round moves the floor by, at most */
#define PG_PRUNE_ROUNDS 16

static inline PgState *pg_state(Store *s) {
    return s->be_state;
}

/* The PostgreSQL type oids the store reads (pg_type.h is not in libpq-dev). */
#define PG_OID_BYTEA 17
#define PG_OID_INT8 20
#define PG_OID_INT4 23
#define PG_OID_TEXT 25

/* ---- store_pg_conn.c ---- */

/* Connects to uri (connect_timeout 2 s, keepalives and tcp_user_timeout
 * about 20 s, idle_in_transaction_session_timeout 10 s unless the URI says
 * otherwise; statement_timeout statement_ms, 0 for none; always
 * synchronous_commit on, checked, UTC, UTF8). *out is freed with
 * PQfinish(). -ENOTCONN if the server cannot be reached. */
int pg_connect(const char *uri, int statement_ms, PGconn **out, char *err);

/* statement_timeout of the readers and the listener (the writer has none:
 * its lock wait is bounded by busy_timeout_ms, a frozen peer by the above). */
#define PG_STATEMENT_MS 30000

/* Makes conn usable again after a lost connection (PQreset). 0, or -ENOTCONN. */
int pg_ensure(PGconn *conn, char *err);

/* Runs sql with n text parameters (NULL entries are SQL NULL), results in
 * binary. *res (caller PQclear()s it) is set on success. bin (may be NULL)
 * marks parameters passed as binary with their lengths in lens. Failures:
 * -ENOTCONN (connection lost, or a retryable SQLSTATE: read-only server,
 * timeout, cancel, lock not granted, deadlock, limits; see errno_of()),
 * -ENOSPC (disk full), -EINVAL (constraint or
 * data), -EIO; err says what failed. */
int pg_query(PGconn *conn, const char *sql, int n, const char *const *vals, const int *lens,
             const int *bin, PGresult **res, const char *what, char *err);

/* The errno and one-line message of a failed statement (r may be NULL);
 * clears r. */
int pg_fail(PGconn *conn, PGresult *r, const char *what, char *err);

/* pg_query() for a statement whose result is not needed. */
int pg_exec(PGconn *conn, const char *sql, int n, const char *const *vals, const char *what,
            char *err);

/* The first statement of a read or of a write transaction (nothing done yet
 * that a lost connection could lose): reconnects first if need be, and once
 * more if the statement finds the connection cut. With n == 0, sql runs
 * through the simple protocol (several statements, *res untouched: pass
 * NULL). */
int pg_query_fresh(PGconn *conn, const char *sql, int n, const char *const *vals, PGresult **res,
                   const char *what, char *err);

/* Ends an open or failed transaction on conn (errors ignored). */
void pg_rollback(PGconn *conn);

/* Result values, validated: a bigint (int8 or int4) >= min; text (NULL if
 * the value is NULL or not text; *len its bytes, NUL after them); bytea
 * (likewise). The text and bytea pointers are borrowed from r: valid until
 * PQclear(r), never freed by the caller. */
int pg_val_int(const PGresult *r, int row, int col, int64_t min, int64_t *out);
const char *pg_val_text(const PGresult *r, int row, int col, size_t *len);
const void *pg_val_bytea(const PGresult *r, int row, int col, size_t *len);

/* 1 if uri carries a password (user:password@, or a password parameter). */
int pg_uri_has_password(const char *uri);

/* ---- store_pg.c ---- */

/* Tests only (NULL in the daemon): called by the writer right after each
 * COMMIT, before the commit is applied to the index, to cut connections at
 * that moment. Set it before the store writes. */
extern void (*pg_test_after_commit)(Store *s);

/* ---- store_pg_feed.c ---- */

/* Creates the feed (not yet listening) into pg_state(s)->feed. */
int pg_feed_new(Store *s, char *err);
/* Starts the listener thread (after the index is loaded). */
int pg_feed_start(Store *s, char *err);
/* Stops the listener and frees the feed; accepts a store without one. */
void pg_feed_free(Store *s);
/* Applies every change after the last one applied, through c. -ERANGE if
 * the changes after it were pruned (feed_floor): the index must be reloaded. */
int pg_feed_catch_up(Store *s, PGconn *c, char *err);
/* Marks the index behind the database (identify and verify -ENOTCONN)
 * until a catch-up succeeds: the writer's own commit could not be applied. */
void pg_feed_behind(Store *s);
/* The newest change id notified minus the last one applied (>= 0). */
int64_t pg_feed_lag(Store *s);
/* Holds off applying while the index is (re)loaded: lock, then unlock with
 * the last change id the loaded snapshot holds and loaded = 1 (or the one
 * before and 0 when the load failed). *last (may be NULL) receives the
 * current one. */
void pg_feed_lock(Store *s, int64_t *last);
void pg_feed_unlock(Store *s, int64_t last, int loaded);

/* ---- store_pg_migrate.c ---- */

/* Brings the database to the last of the n migrations in list, in one
 * transaction under the PG_LOCK_MIGRATE advisory lock. As store_db_migrate(). */
int pg_migrate(PGconn *conn, const StoreMigration *list, int n, int *from, int *to, char *err);

/* The PostgreSQL migrations built in (migrations/pg/). */
extern const StoreMigration store_pg_migrations[];
extern const int store_pg_n_migrations;

/* ---- store_pg_ops.c: the write-transaction entries of the backend table ---- */

int pgb_begin(Store *s, char *err);
int pgb_savepoint(Store *s, char *err);
int pgb_release(Store *s, int ok, char *err);
int pgb_txn_lost(Store *s);
int pgb_commit(Store *s, char *err);
void pgb_rollback(Store *s);
int pgb_op_run(Store *s, WriteOp *op, char *err);
/* After a commit (writer thread): prunes the feed every PG_PRUNE_EVERY commits. */
void pg_prune(Store *s);
int pgb_reembed_missing(Store *s, void *conn, int64_t *missing, char *err);
int pgb_reembed_rows(Store *s, void *conn, int64_t after, int max, StoreImageFn fn, void *ctx,
                     char *err);

#endif
