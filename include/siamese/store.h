/*
 * store.h — the daemon's durable store of subjects and their samples, and the
 * in-memory index that answers nearest-neighbour questions over them.
 *
 * A subject is an id (1..STORE_SUBJECT_MAX characters from [A-Za-z0-9._:@-]),
 * optional metadata (a JSON object as text) and a creation time. A sample
 * belongs to one subject and holds the embedding the serving model made of an
 * image, that model's fingerprint and, when the store keeps images, the image
 * bytes and their content type. Times are Unix milliseconds (UTC).
 *
 * The database is SQLite in WAL mode with synchronous=FULL, or PostgreSQL
 * when StoreConfig.path is a postgresql:// or postgres:// URI (libpq,
 * synchronous_commit on): either way a write that returned success survives
 * kill -9 and power loss. The schema comes from the numbered files in
 * migrations/ (SQLite; each in its own transaction, see store_migrate_file())
 * or migrations/pg/ (PostgreSQL; all pending ones in one transaction under an
 * advisory lock), embedded at build time and applied at open.
 *
 * Many daemons may share one PostgreSQL database: every write is recorded in
 * a changes table and announced with NOTIFY, and each store applies the
 * others' changes to its index (docs/scaling.md). While PostgreSQL cannot be
 * reached the calls that need it fail with -ENOTCONN; identify and verify
 * keep answering from the index, and the store reconnects on its own.
 * -ENOTCONN also means "unavailable, retry later" for what PostgreSQL
 * answers so: a read-only server (a standby), a statement or lock timeout, a
 * cancel, a deadlock or serialization failure, too many connections; and
 * from identify and verify, an index behind the database it cannot catch up
 * with yet (its feed pruned: reloading; a change it cannot apply; or this
 * store's own write it could not apply, below).
 *
 * A write whose COMMIT went out but whose answer was lost with the
 * connection is asked after on a fresh one (txid_status()): committed, it
 * succeeds; rolled back, -ENOTCONN; if that cannot be told (no connection,
 * or the old session still running after PG_OUTCOME_WAIT_MS, 5 s),
 * -EINPROGRESS: the write may be stored or not (if stored, every store's
 * feed applies it); look (store_get) before writing it again.
 *
 * Threads. Every function taking a Store may be called from any thread at
 * once, except store_open() and store_close(). Writes are queued to a single
 * writer thread that runs up to batch_max of them in one transaction (each in
 * its own SAVEPOINT, so one failing write does not fail the others) and
 * commits once: concurrent writers share an fsync. Reads use a small pool of
 * read connections; identify and verify read the index under a shared lock.
 * The index changes only after a commit succeeded, so it never holds a sample
 * the database lost.
 *
 * Read-your-writes. A write that returned success is seen by every later
 * read of the same store: get and list read the database; identify and
 * verify read the index. On SQLite the writer applies its commit to the
 * index before returning, which cannot fail. On PostgreSQL the writer
 * applies it through the change feed before returning, once more on a fresh
 * connection if the connection was cut after the COMMIT; if that fails too,
 * identify and verify answer -ENOTCONN (StoreStats.behind) until the feed
 * has caught up (the listener retries every second): they may refuse, never
 * silently miss the write. Other daemons sharing the database see it when
 * their feed applies it, normally within milliseconds (docs/scaling.md).
 *
 * Embeddings from different models are never compared: the store is opened
 * with the serving model's fingerprint and refuses to serve (STORE_STALE) while
 * samples made by another model remain; store_reembed() converts them.
 */
#ifndef SIAMESE_STORE_H
#define SIAMESE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "siamese/index.h"

#define STORE_SUBJECT_MAX 128          /* characters in a subject id */
#define STORE_FINGERPRINT_LEN 64       /* lowercase hex SHA-256 */
#define STORE_DIM_MAX 4096             /* embedding size */
#define STORE_ENROLL_MAX 256           /* samples in one store_enroll() */
#define STORE_IMAGE_MAX (16u << 20)    /* bytes of one kept image */
#define STORE_METADATA_MAX (64u << 10) /* bytes of a subject's metadata */
#define STORE_CONTENT_TYPE_MAX 127     /* characters in an image content type */
#define STORE_SOURCE_MAX 4096          /* bytes of a sample's source */
#define STORE_LIST_MAX 1000            /* subjects in one store_list() page */
#define STORE_CURSOR_SIZE 172          /* bytes of a cursor buffer, NUL included */

/* Documented positive outcomes (SM_ABSENT = 1 comes from common.h). */
#define STORE_STALE                                                                                \
    2                 /* store_open: samples from another model remain; run `siamesed --reembed`   \
                       */
#define STORE_EMPTY 3 /* store_verify: the subject exists but has no samples */

/* ---- Subject ids and cursors ---- */

/* 1 if id is a valid subject id (1..128 characters from [A-Za-z0-9._:@-]),
 * 0 otherwise (NULL included). */
int store_subject_id_valid(const char *id);

/* Encodes a valid subject id as an opaque list cursor (unpadded base64url)
 * into out (STORE_CURSOR_SIZE bytes). -EINVAL if id is not valid. */
int store_cursor_encode(const char *id, char *out, char *err);

/* Decodes an untrusted cursor into id (STORE_SUBJECT_MAX + 1 bytes). Accepts
 * only the canonical encoding of a valid subject id; -EINVAL otherwise. */
int store_cursor_decode(const char *cursor, char *id, char *err);

/* ---- The store ---- */

typedef struct Store Store;

/* 1 if db names a PostgreSQL database (a postgresql:// or postgres:// libpq
 * URI, the scheme in any case), 0 if it is a SQLite file path. */
int store_db_is_postgres(const char *db);
/* 1 if db starts with a URI scheme (letter, then [A-Za-z0-9+.-]*, then
 * "://"): one other than PostgreSQL's is refused, never taken for a path. */
int store_db_is_uri(const char *db);

typedef struct {
    const char *path;        /* database file, created if missing (its directory must exist),
                                or a postgresql:// URI */
    const char *fingerprint; /* the serving model's fingerprint: 64 lowercase hex digits */
    int dim;                 /* the serving model's embedding size, 1..STORE_DIM_MAX */
    int keep_images;         /* nonzero: keep each sample's image (needed by store_reembed) */
    int batch_max;           /* most writes per transaction, 1..1024 (0: 64) */
    int readers;             /* read connections, 1..64 (0: 4) */
    int busy_timeout_ms;     /* wait for locks held by other processes (0: 5000;
                                PostgreSQL: the write lock, then -ENOTCONN) */
    int64_t max_bytes;       /* cap on the database size; beyond it writes get -ENOSPC (0: none;
                                SQLite only) */
    int skip_check;          /* nonzero: skip PRAGMA quick_check at open (large databases) */
    int64_t feed_retain;     /* PostgreSQL: change rows kept behind the newest; a daemon that
                                falls further behind reloads its index (0: 1000000) */
} StoreConfig;

/* Opens (creating or upgrading) the database at cfg->path, checks it, loads
 * every sample into the index and starts the writer thread.
 *
 * Returns 0 with *out set; or STORE_STALE with *out set and err naming how
 * many samples another model made and `siamesed --reembed` — such a store
 * serves only store_reembed(), store_counts(), store_stats(), deletes and
 * store_close(); or a negative errno with *out NULL and err filled:
 *   -ENOTSUP  the database has a newer schema than this binary knows;
 *   -EINVAL   bad config, or a corrupt or non-SQLite file, or invalid rows;
 *   -EIO      WAL unavailable or an I/O error; -ENOSPC disk full;
 *   -EACCES   a database file that is read-only (its mode, or SQLite could
 *             open it only for reading): refused now rather than failing
 *             every write later;
 *   -ENOENT and friends from opening the file;
 *   -ENOTCONN PostgreSQL cannot be reached (or went away during the open).
 * A new database file is created with mode 0600 (SQLite creates its WAL and
 * SHM files with the database file's mode): it holds the enrolled images.
 * *out is freed with store_close(). */
int store_open(const StoreConfig *cfg, Store **out, char *err);

/* Creates the directory that will hold the database at db_path, and any
 * missing parents, with mode 0700 (existing ones are left as they are).
 * 0 (at once for a PostgreSQL URI), or a negative errno with err filled. */
int store_dir_make(const char *db_path, char *err);

/* Waits for queued writes, stops the writer and closes the database. No other
 * call on s may be running or start. Accepts NULL. */
void store_close(Store *s);

/* One sample to enroll. image is borrowed for the call; NULL or len 0 means
 * no image. content_type ("image/png") is required with an image. The image
 * is kept only when the store keeps images. */
typedef struct {
    const float *embedding; /* dim finite floats */
    const uint8_t *image;
    size_t image_len; /* <= STORE_IMAGE_MAX */
    const char *content_type;
    const char *source; /* where it came from (a bulk-enrolled file), 1..STORE_SOURCE_MAX
                           bytes, unique among samples; NULL: none */
} StoreSampleIn;

typedef struct {
    int64_t total; /* the subject's samples after the enroll */
    int created;   /* 1 if the subject is new */
} StoreEnrolled;

/* Adds n (0..STORE_ENROLL_MAX) samples to subject, creating it if new. If
 * metadata is not NULL (a JSON object of at most STORE_METADATA_MAX bytes, the
 * caller having validated it) it replaces the subject's metadata; NULL keeps
 * it. ids (n entries, may be NULL when n is 0) receives the new sample ids,
 * res (may be NULL) the outcome. Durable when it returns 0. Errors: -EINVAL
 * (bad id, metadata, embedding or image), -ESTALE (stale store), -ENOSPC (disk
 * full or max_bytes reached: nothing stored is lost, and writes work again
 * once there is room), -EIO, -ENOMEM; PostgreSQL: -ENOTCONN (not stored),
 * -EINPROGRESS (stored or not: the connection was lost during the COMMIT,
 * see the top). */
int store_enroll(Store *s, const char *subject, const char *metadata, const StoreSampleIn *samples,
                 int n, int64_t *ids, StoreEnrolled *res, char *err);

typedef struct {
    int64_t id;
    int64_t created_at;
} StoreSampleInfo;

typedef struct {
    char id[STORE_SUBJECT_MAX + 1];
    int64_t created_at;
    char *metadata;           /* JSON object text as enrolled, or NULL if none */
    int64_t total;            /* all the subject's samples */
    int64_t n_samples;        /* samples in this page */
    StoreSampleInfo *samples; /* n_samples entries in id order */
    int more;                 /* 1 if samples after this page exist */
} StoreSubject;

/* Reads one subject and one page of its samples: those with an id above
 * after (0 for the first page), at most limit (1..STORE_LIST_MAX); the next
 * page starts after the last id of this one. One read transaction, so the
 * page, total and more agree. 0 with *out set (caller frees with
 * store_subject_free()), SM_ABSENT if there is no such subject (or the id is
 * invalid), -EINVAL for a bad after or limit or a row that fails
 * validation, another negative errno on failure. */
int store_get(Store *s, const char *subject, int64_t after, int limit, StoreSubject **out,
              char *err);
void store_subject_free(StoreSubject *subj);

typedef struct {
    char id[STORE_SUBJECT_MAX + 1];
    int64_t created_at;
    int64_t n_samples;
} StoreListItem;

/* One page of subjects in id (byte) order: those after cursor (NULL or "" for
 * the first page), at most limit (1..STORE_LIST_MAX). *items (caller frees
 * with free(); NULL when *n is 0) receives *n entries. next (STORE_CURSOR_SIZE
 * bytes) receives the cursor of the following page, or "" when this page is
 * the last. -EINVAL for a bad limit or cursor. */
int store_list(Store *s, const char *cursor, int limit, StoreListItem **items, int *n, char *next,
               char *err);

/* Deletes a subject and all its samples. *removed (may be NULL) receives how
 * many samples went. SM_ABSENT if there is no such subject. */
int store_delete_subject(Store *s, const char *subject, int64_t *removed, char *err);

/* Deletes one sample of subject; the subject stays, possibly with no samples.
 * *remaining (may be NULL) receives its sample count afterwards. SM_ABSENT if
 * the subject does not exist or has no such sample. */
int store_delete_sample(Store *s, const char *subject, int64_t sample_id, int64_t *remaining,
                        char *err);

/* 1 if a sample with this source (StoreSampleIn.source) is stored, 0 if
 * not, negative errno on failure. */
int store_source_known(Store *s, const char *source, char *err);

/* Subject and sample counts, from memory (for metrics). Never fails. */
void store_counts(Store *s, int64_t *subjects, int64_t *samples);

typedef struct {
    uint64_t writes;    /* write operations completed (succeeded or failed) */
    uint64_t commits;   /* transactions committed: fewer than writes means group commit */
    uint64_t batch_max; /* most writes seen in one transaction */
    int behind;         /* the index misses changes it cannot apply yet (a pruned feed
                           reloading, a change row that cannot be applied, or this
                           store's own commit it could not apply): identify
                           and verify answer -ENOTCONN; /healthz 503 */
    int64_t feed_lag;   /* PostgreSQL: changes notified but not yet applied (0 on SQLite) */
} StoreStats;

void store_stats(Store *s, StoreStats *out);

/* ---- Nearest neighbours (served from the index, index.h) ---- */

/* The k (>= 1) subjects nearest to q (dim floats), each by its nearest sample,
 * nearest first, ties by subject id. hits has room for k; *n receives how many
 * were found (fewer than k when there are fewer subjects with samples).
 * -ESTALE on a stale store, -EINVAL for a non-finite q. */
int store_identify(Store *s, const float *q, int k, IndexHit *hits, int *n, char *err);

/* store_identify() with index_search() flags: INDEX_EXACT scans the float
 * embeddings instead of the int8 copy (store_identify() passes 0). */
int store_identify_with(Store *s, const float *q, int k, int flags, IndexHit *hits, int *n,
                        char *err);

/* The nearest sample of subject to q. 0 with *hit set; SM_ABSENT if there is
 * no such subject; STORE_EMPTY if it has no samples; -ESTALE, -EINVAL. */
int store_verify(Store *s, const char *subject, const float *q, IndexHit *hit, char *err);

/* ---- Re-embedding after a model change ---- */

/* Computes the serving model's embedding (dim floats into out) of an image.
 * Returns 0, or a negative errno with err filled; any failure stops the run. */
typedef int (*StoreEmbedFn)(void *ctx, const uint8_t *image, size_t len, const char *content_type,
                            float *out, char *err);

/* Replaces the embedding and fingerprint of every sample another model made,
 * in batched transactions, by fn(ctx, its kept image). Nothing is changed and
 * -ENODATA returned (err naming how many) if some of those samples have no
 * kept image. Interrupted runs can be resumed: finished batches stay done.
 * When every sample is current the index is loaded and a STORE_STALE store
 * starts serving. *done (may be NULL) receives how many samples were
 * re-embedded. */
int store_reembed(Store *s, StoreEmbedFn fn, void *ctx, int64_t *done, char *err);

/* ---- Schema migrations ---- */

typedef struct {
    int version;      /* 1, 2, ... in order */
    const char *name; /* file name without .sql, e.g. "0001_init" */
    const char *sql;
} StoreMigration;

/* ---- A look without opening (peek.c) ---- */

/* The samples one model made: its fingerprint, how many, how many kept their image. */
typedef struct {
    char fingerprint[STORE_FINGERPRINT_LEN + 1];
    int64_t samples, with_image;
} StoreModelCount;

/* Reads, without store_open() (read-only, no lock, no migration, nothing
 * created), how many samples of the database at path each model made, most
 * first: up to max entries into out, *n of them. 0 (with *n = 0 for a database
 * without samples); SM_ABSENT if path does not exist; -errno with err. */
int store_peek(const char *path, StoreModelCount *out, int max, int *n, char *err);

/* The migrations built into this binary (the .sql files in migrations/), in order. */
extern const StoreMigration store_migrations[];
extern const int store_n_migrations;

/* Brings the database at path (created if missing) to the last of the n
 * migrations in list (versions 1..n in order): each pending one runs in its
 * own transaction that also records it in schema_migrations and PRAGMA
 * user_version. *from and *to (may be NULL) receive the versions before and
 * after. -ENOTSUP if the database is newer than list; -EINVAL if it is corrupt
 * or its recorded history differs from list. store_open() does this with the
 * built-in list; this form exists for tools and tests. */
int store_migrate_file(const char *path, const StoreMigration *list, int n, int *from, int *to,
                       char *err);

#endif
