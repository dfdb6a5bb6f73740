/*
 * store_int.h — what the store's own files share. Not for other modules.
 *
 * The store is one interface (store.h) over two backends: SQLite
 * (store_sqlite*.c) and PostgreSQL (store_pg*.c). What does not depend on
 * the database is written once: opening and the read calls (store.c), the
 * group-commit writer and the write calls (writer.c), validation of what
 * crosses in and of every row read, and loading the index (rows.c),
 * re-embedding (reembed.c). A backend is a table of functions (StoreBackend)
 * that runs SQL on its own connections, kept behind Store.be_state.
 */
#ifndef SIAMESE_STORE_INT_H
#define SIAMESE_STORE_INT_H

#include "siamese/common.h"
#include "siamese/store.h"

#include <pthread.h>
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
    int claim;     /* reload: store_load_index()'s claim */
    int rc;
    int done;
    char err[SM_ERRMAX];
} WriteOp;

/* Loading the index (rows.c): the backend reads the counts, then every
 * sample row in id order, and hands each to the loader, which validates it. */
typedef struct StoreLoader StoreLoader;

typedef struct {
    int64_t id;
    const char *subject;     /* NUL-terminated text, or NULL when the column is not text */
    size_t subject_len;      /* bytes the database says the text has */
    const char *fingerprint; /* likewise */
    size_t fingerprint_len;
    const void *emb; /* the embedding bytes, or NULL when the column is not a blob */
    size_t emb_bytes;
} StoreRow;

/* A kept image read for re-embedding (reembed.c validates it). */
typedef struct {
    int64_t id;
    const uint8_t *image; /* NULL when the column is not a blob */
    size_t image_len;
    const char *content_type; /* NULL when the column is not text */
    size_t content_type_len;
} StoreImageRow;

typedef int (*StoreImageFn)(Store *s, const StoreImageRow *r, void *ctx, char *err);

/* A backend. Every function returns 0 (or a documented positive outcome) or
 * a negative errno with err filled. The write-transaction functions and
 * op_run and load are called on the writer thread only (load also during
 * open, before that thread runs); the read functions get a connection from
 * the pool (store_reader_get()). */
typedef struct {
    const char *name;
    /* Connects, checks and migrates the database and opens cfg-many readers
     * into s->rdb (s->n_rdb). *from, *to: schema versions before and after. */
    int (*open)(Store *s, const StoreConfig *cfg, int *from, int *to, char *err);
    /* Closes every connection and frees be_state; after a failed open too. */
    void (*close)(Store *s);
    /* Ends whatever a reader left open, before it goes back to the pool. */
    void (*reader_reset)(Store *s, void *conn);

    /* One write transaction of the group-commit writer. */
    int (*begin)(Store *s, char *err);
    int (*savepoint)(Store *s, char *err);
    /* Ends the savepoint: kept (ok) or rolled back. */
    int (*release)(Store *s, int ok, char *err);
    /* 1 if a failure has already ended the transaction (nothing to commit). */
    int (*txn_lost)(Store *s);
    int (*commit)(Store *s, char *err);
    void (*rollback)(Store *s); /* if a transaction is open; errors ignored */
    /* The SQL of one enroll, delete or re-embed op, inside a savepoint:
     * fills op->ids_out, op->count, op->created; SM_ABSENT as store.h says. */
    int (*op_run)(Store *s, WriteOp *op, char *err);

    /* Every sample through the writer connection, in one read transaction.
     * claim: this load may make this store's model the database's serving
     * one (at open, after a re-embed), 0 for a reload the feed asked for. */
    int (*load)(Store *s, StoreLoader *l, int claim, char *err);
    /* Optional: called once the index is loaded, before the writer starts. */
    int (*start)(Store *s, char *err);
    /* Optional: called by the writer after each commit instead of applying
     * the batch's ops to the index and counts itself (the backend does it). */
    void (*committed)(Store *s);
    /* Optional: changes committed elsewhere not yet applied (StoreStats). */
    int64_t (*feed_lag)(Store *s);

    /* Reads (a connection from the pool). */
    int (*get)(Store *s, void *conn, const char *subject, int64_t after, int limit,
               StoreSubject *sj, char *err);
    int (*list)(Store *s, void *conn, const char *after, int limit, StoreListItem *items, int *n,
                int *more, char *err);
    int (*source_known)(Store *s, void *conn, const char *source, char *err);
    /* 1 if the subject exists, 0 if not. */
    int (*subject_exists)(Store *s, void *conn, const char *subject, char *err);
    /* Samples of another model than s->fingerprint that have no image. */
    int (*reembed_missing)(Store *s, void *conn, int64_t *missing, char *err);
    /* Up to max samples of another model with ids above after, in id order,
     * each handed to fn (which may fail the read). */
    int (*reembed_rows)(Store *s, void *conn, int64_t after, int max, StoreImageFn fn, void *ctx,
                        char *err);
} StoreBackend;

extern const StoreBackend store_sqlite_backend;
extern const StoreBackend store_pg_backend;

/* store_pg.c: store_peek() of a PostgreSQL database. */
int store_pg_peek(const char *uri, StoreModelCount *out, int max, int *n, char *err);

struct Store {
    const StoreBackend *be;
    void *be_state; /* the backend's own (connections, statements) */
    char *path;
    char fingerprint[STORE_FINGERPRINT_LEN + 1];
    int dim, keep_images, batch_max, busy_ms;
    /* The index identify and verify search. A reload fills a fresh one and
     * swaps it in under ixlock (write), so readers (read) see the old one
     * whole or the new one whole, never a part. Appliers (writer, feed)
     * touch s->ix only on the thread or under the lock that reloads. */
    pthread_rwlock_t ixlock;
    Index *ix;
    atomic_int stale;  /* samples from another model remain */
    atomic_int behind; /* the index misses committed changes it cannot apply
                        * yet (feed pruned or stuck): identify, verify -ENOTCONN */
    _Atomic int64_t n_subjects, n_samples;

    pthread_mutex_t qlock; /* the queue, stopping, stats and every op's done */
    pthread_cond_t qcv;    /* work queued, or stop */
    pthread_cond_t donecv; /* some op finished */
    WriteOp *head, *tail;
    int stopping, writer_started;
    pthread_t writer;
    StoreStats stats;

    pthread_mutex_t rlock; /* the pool of read connections (the backend's) */
    pthread_cond_t rcv;
    void **rdb;   /* all n_rdb of them, opened by the backend */
    void **rfree; /* the n_rfree idle ones */
    int n_rdb, n_rfree;
};

/* 1 if the sample's image is stored with it (keep_images and an image). */
static inline int store_image_kept(const Store *s, const StoreSampleIn *in) {
    return s->keep_images && in->image && in->image_len > 0;
}

/* Unix time in milliseconds. */
int64_t store_now_ms(void);

/* ---- rows.c ---- */

/* 1 if s is 64 lowercase hex digits. */
int store_fingerprint_valid(const char *s);

/* 1 if text (len bytes, NUL after them) is a JSON object of at most
 * STORE_METADATA_MAX bytes. */
int store_metadata_valid(const char *text, size_t len);

/* 0 if list numbers its n migrations 1..n, each with a name and SQL (both
 * backends' runners check this first); -EINVAL with err otherwise. */
int store_migrations_valid(const StoreMigration *list, int n, char *err);

/* A value read from the database, validated: a subject id (text of len
 * bytes, NULL if the column is not text) into out; metadata (NULL stays
 * NULL; otherwise *out is malloc'ed valid metadata text). 0, or -1 (-ENOMEM)
 * when the value is something else. */
int store_val_id(const char *text, size_t len, char *out);
int store_val_metadata(const char *text, size_t len, char **out);

/* Builds a fresh index through s->be->load() and, only if the load
 * succeeds, publishes it with the counts, stale (set iff samples of another
 * model, counted into *stale and not loaded, remain: the index is then
 * empty) and behind = 0. On failure the old index and counts stay. Every row
 * is validated. claim: as StoreBackend.load's. */
int store_load_index(Store *s, int claim, int64_t *stale, char *err);

/* Called by a backend's load(): the counts first (reserves the index) ... */
int store_loader_counts(StoreLoader *l, int64_t subjects, int64_t samples, char *err);
/* ... then each sample row ... */
int store_loader_row(StoreLoader *l, const StoreRow *r, char *err);
/* ... and, optionally, once every row loaded, publishes the index while the
 * backend still holds off its appliers (else store_load_index() does). */
void store_loader_publish(StoreLoader *l);

/* ---- store.c ---- */

/* A read connection from the pool into *db, waiting up to
 * STORE_READER_WAIT_MS for one (then -ENOTCONN); give it back with
 * store_reader_put(), which also ends any transaction left open. */
#define STORE_READER_WAIT_MS 5000
int store_reader_get(Store *s, void **db, char *err);
void store_reader_put(Store *s, void *conn);

/* ---- writer.c ---- */

int store_writer_start(Store *s, char *err);
/* Runs what is queued, then stops and joins the writer. */
void store_writer_stop(Store *s);
/* Queues op, waits for the writer to finish it and returns op->rc (with
 * op->err copied into err on failure). */
int store_submit(Store *s, WriteOp *op, char *err);

#endif
