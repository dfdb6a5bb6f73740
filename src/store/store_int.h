/*
 * store_int.h — what the store's own files share (store.c: open, reads,
 * re-embed; writer.c: the group-commit writer and the write calls; migrate.c:
 * SQLite helpers and the migration runner). Not for other modules.
 */
#ifndef SIAMESE_STORE_INT_H
#define SIAMESE_STORE_INT_H

#include "siamese/common.h"
#include "siamese/store.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>

typedef enum { OP_ENROLL, OP_DELETE_SUBJECT, OP_DELETE_SAMPLE, OP_REEMBED, OP_RELOAD } OpKind;

/* One queued write. It lives on the submitting thread's stack, which waits
 * until the writer sets done; inputs are borrowed for that long. */
typedef struct WriteOp {
    struct WriteOp *next;
    OpKind kind;
    const char *subject;
    const char *metadata;         /* enroll: NULL keeps the old */
    const StoreSampleIn *samples; /* enroll: n of them */
    int n;                        /* enroll: samples; re-embed: ids */
    int64_t sample_id;            /* delete sample */
    const int64_t *ids;           /* re-embed: n sample ids ... */
    const float *embs;            /* ... and their n x dim new embeddings */
    int64_t *ids_out;             /* enroll: the new sample ids */
    int64_t count; /* enroll: total; deletes: removed / remaining; re-embed: updated */
    int created;   /* enroll: the subject is new */
    int rc;
    int done;
    char err[SM_ERRMAX];
} WriteOp;

struct Store {
    char *path;
    char fingerprint[STORE_FINGERPRINT_LEN + 1];
    int dim, keep_images, batch_max, busy_ms;
    sqlite3 *wdb; /* owned by the writer thread once it runs */
    Index *ix;
    atomic_int stale; /* samples from another model remain */
    _Atomic int64_t n_subjects, n_samples;

    pthread_mutex_t qlock; /* the queue, stopping, stats and every op's done */
    pthread_cond_t qcv;    /* work queued, or stop */
    pthread_cond_t donecv; /* some op finished */
    WriteOp *head, *tail;
    int stopping, writer_started;
    pthread_t writer;
    StoreStats stats;

    pthread_mutex_t rlock; /* the pool of read connections */
    pthread_cond_t rcv;
    sqlite3 **rdb;   /* all n_rdb of them */
    sqlite3 **rfree; /* the n_rfree idle ones */
    int n_rdb, n_rfree;
};

/* ---- migrate.c: SQLite helpers ---- */

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

/* Unix time in milliseconds. */
int64_t store_now_ms(void);

/* ---- rows.c ---- */

/* 1 if s is 64 lowercase hex digits. */
int store_fingerprint_valid(const char *s);

/* 1 if text (len bytes, NUL after them) is a JSON object of at most
 * STORE_METADATA_MAX bytes. */
int store_metadata_valid(const char *text, size_t len);

/* Column col of a row, validated: a subject id (into out), an integer >= min,
 * metadata (NULL, or malloc'ed valid metadata text). 0, or -1 when the row
 * holds something else. */
int store_col_id(sqlite3_stmt *st, int col, char *out);
int store_col_int_min(sqlite3_stmt *st, int col, int64_t min, int64_t *out);
int store_col_metadata(sqlite3_stmt *st, int col, char **out);

/* Rebuilds the index from every sample in db (in one read transaction) and
 * resets the counts. Samples of another model are counted into *stale and not
 * loaded; if there are any the index is left empty. Every row is validated. */
int store_load_index(Store *s, sqlite3 *db, int64_t *stale, char *err);

/* ---- store.c ---- */

/* A read connection from the pool (waits for one); give it back with
 * store_reader_put(), which also ends any transaction left open. */
sqlite3 *store_reader_get(Store *s);
void store_reader_put(Store *s, sqlite3 *db);

/* ---- writer.c ---- */

int store_writer_start(Store *s, char *err);
/* Runs what is queued, then stops and joins the writer. */
void store_writer_stop(Store *s);
/* Queues op, waits for the writer to finish it and returns op->rc (with
 * op->err copied into err on failure). */
int store_submit(Store *s, WriteOp *op, char *err);

#endif
