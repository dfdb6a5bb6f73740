/*
 * store.c — opening and closing the store and the read side (get, list,
 * counts, identify, verify). What crosses into the store (ids, cursors,
 * fingerprints, metadata, database rows) is validated in rows.c, which also
 * loads the index.
 *
 * Lifecycle: store_open() opens the writer connection (WAL, synchronous=FULL),
 * runs PRAGMA quick_check and the migrations, loads every sample into the
 * index, opens the pool of read connections and starts the writer thread
 * (writer.c). Reads borrow a pooled connection and run in one read
 * transaction, so a subject and its samples come from the same snapshot.
 * Writes go through writer.c; re-embedding lives in reembed.c.
 */
#include "store_int.h"

#include "siamese/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STALE_MSG "the store holds samples from another model: run `siamesed --reembed`"

sqlite3 *store_reader_get(Store *s) {
    pthread_mutex_lock(&s->rlock);
    while (s->n_rfree == 0)
        pthread_cond_wait(&s->rcv, &s->rlock);
    sqlite3 *db = s->rfree[--s->n_rfree];
    pthread_mutex_unlock(&s->rlock);
    return db;
}

void store_reader_put(Store *s, sqlite3 *db) {
    store_db_rollback(db);
    pthread_mutex_lock(&s->rlock);
    s->rfree[s->n_rfree++] = db;
    pthread_cond_signal(&s->rcv);
    pthread_mutex_unlock(&s->rlock);
}

/* ---- Open and close ---- */

static int store_config_check(const StoreConfig *cfg, char *err) {
    if (!cfg || !cfg->path || !cfg->path[0])
        return sm_err(err, -EINVAL, "store: no database path");
    if (!store_fingerprint_valid(cfg->fingerprint))
        return sm_err(err, -EINVAL, "store: the model fingerprint is not 64 lowercase hex digits");
    if (cfg->dim < 1 || cfg->dim > STORE_DIM_MAX)
        return sm_err(err, -EINVAL, "store: embedding size %d outside 1..%d", cfg->dim,
                      STORE_DIM_MAX);
    if (cfg->batch_max < 0 || cfg->batch_max > 1024 || cfg->readers < 0 || cfg->readers > 64 ||
        cfg->busy_timeout_ms < 0 || cfg->max_bytes < 0)
        return sm_err(err, -EINVAL,
                      "store: batch_max, readers, busy_timeout_ms or max_bytes out of range");
    return 0;
}

/* Caps the database size (PRAGMA max_page_count is per connection: the
 * writer's is the one that matters). */
static int cap_size(Store *s, int64_t max_bytes, char *err) {
    sqlite3_stmt *st = NULL;
    char sql[64];
    int rc = store_db_prepare(s->wdb, "PRAGMA page_size", &st, err);
    if (rc == 0 && sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) > 0) {
        int64_t pages = max_bytes / sqlite3_column_int64(st, 0);
        snprintf(sql, sizeof sql, "PRAGMA max_page_count=%lld", (long long)(pages > 0 ? pages : 1));
        rc = store_db_exec(s->wdb, sql, err);
    }
    sqlite3_finalize(st);
    return rc;
}

static int open_readers(Store *s, int n, char *err) {
    s->rdb = calloc((size_t)n, sizeof *s->rdb);
    s->rfree = calloc((size_t)n, sizeof *s->rfree);
    if (!s->rdb || !s->rfree)
        return sm_err(err, -ENOMEM, "store: out of memory");
    for (; s->n_rdb < n; s->n_rdb++) {
        int rc = store_db_open(s->path, 0, s->busy_ms, &s->rdb[s->n_rdb], err);
        if (rc < 0)
            return rc;
        s->rfree[s->n_rfree++] = s->rdb[s->n_rdb];
    }
    return 0;
}

static Store *store_new(const StoreConfig *cfg) {
    Store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(cfg->path))) {
        free(s);
        return NULL;
    }
    memcpy(s->fingerprint, cfg->fingerprint, STORE_FINGERPRINT_LEN + 1);
    s->dim = cfg->dim;
    s->keep_images = cfg->keep_images != 0;
    s->batch_max = cfg->batch_max ? cfg->batch_max : 64;
    s->busy_ms = cfg->busy_timeout_ms ? cfg->busy_timeout_ms : 5000;
    /* Default attributes: these cannot fail on Linux. */
    pthread_mutex_init(&s->qlock, NULL);
    pthread_cond_init(&s->qcv, NULL);
    pthread_cond_init(&s->donecv, NULL);
    pthread_mutex_init(&s->rlock, NULL);
    pthread_cond_init(&s->rcv, NULL);
    return s;
}

int store_dir_make(const char *db_path, char *err) {
    char buf[4096];
    const char *slash = strrchr(db_path, '/');
    size_t n = slash ? (size_t)(slash - db_path) : 0;
    if (n == 0)
        return 0; /* the current directory, or / */
    if (n >= sizeof buf)
        return sm_err(err, -ENAMETOOLONG, "%s: path too long", db_path);
    memcpy(buf, db_path, n);
    buf[n] = 0;
    for (char *p = buf + 1;; p++) {
        char c = *p;
        if (c != '/' && c != 0)
            continue;
        *p = 0;
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
            return sm_err(err, -errno, "mkdir %s: %s", buf, strerror(errno));
        *p = c;
        if (!c)
            return 0;
    }
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

int store_open(const StoreConfig *cfg, Store **out, char *err) {
    char why[SM_ERRMAX] = "";
    int from = 0, to = 0;
    int64_t stale = 0;
    Store *s = NULL;
    *out = NULL;
    int rc = store_config_check(cfg, err);
    if (rc < 0)
        return rc;
    if (!sqlite3_threadsafe())
        return sm_err(err, -ENOTSUP, "store: this SQLite is built without thread support");
    if (!(s = store_new(cfg)))
        return sm_err(err, -ENOMEM, "store: out of memory");
    rc = db_file_prepare(s->path, why);
    if (rc == 0)
        rc = store_db_open(s->path, 1, s->busy_ms, &s->wdb, why);
    if (rc == 0 && sqlite3_db_readonly(s->wdb, "main") == 1)
        rc = sm_err(why, -EACCES, "the database file can only be opened read-only");
    if (rc == 0 && !cfg->skip_check)
        rc = store_db_check(s->wdb, why);
    if (rc == 0)
        rc = store_db_migrate(s->wdb, store_migrations, store_n_migrations, &from, &to, why);
    if (rc == 0 && from != to)
        log_info("store: %s: schema %s version %d", s->path, from ? "upgraded to" : "created at",
                 to);
    if (rc == 0 && cfg->max_bytes > 0)
        rc = cap_size(s, cfg->max_bytes, why);
    if (rc == 0)
        rc = index_create(s->dim, &s->ix, why);
    if (rc == 0)
        rc = store_load_index(s, s->wdb, &stale, why);
    if (rc == 0)
        rc = open_readers(s, cfg->readers ? cfg->readers : 4, why);
    if (rc == 0)
        rc = store_writer_start(s, why);
    if (rc < 0) {
        sm_err(err, rc, "%s: %s", s->path, why);
        store_close(s);
        return rc;
    }
    *out = s;
    if (stale > 0) {
        atomic_store(&s->stale, 1);
        return sm_err(err, STORE_STALE,
                      "%s: %lld of %lld samples were embedded by another model than %.12s...: "
                      "run `siamesed --reembed`",
                      s->path, (long long)stale, (long long)atomic_load(&s->n_samples),
                      s->fingerprint);
    }
    return 0;
}

void store_close(Store *s) {
    if (!s)
        return;
    store_writer_stop(s);
    for (int i = 0; i < s->n_rdb; i++)
        sqlite3_close(s->rdb[i]);
    /* Last, so that this close checkpoints the WAL into the database. */
    sqlite3_close(s->wdb);
    index_free(s->ix);
    pthread_mutex_destroy(&s->qlock);
    pthread_cond_destroy(&s->qcv);
    pthread_cond_destroy(&s->donecv);
    pthread_mutex_destroy(&s->rlock);
    pthread_cond_destroy(&s->rcv);
    free(s->rdb);
    free(s->rfree);
    free(s->path);
    free(s);
}

/* ---- Reads ---- */

void store_subject_free(StoreSubject *subj) {
    if (!subj)
        return;
    free(subj->metadata);
    free(subj->samples);
    free(subj);
}

/* Reads subject's row (SM_ABSENT if none) and its samples into sj. */
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
 * read: the extra one only says "more follow"). */
static int get_rows(sqlite3 *db, const char *subject, int64_t after, int limit, StoreSubject *sj,
                    char *err) {
    sqlite3_stmt *st = NULL;
    int rc = get_subject_row(db, subject, sj, err), step = SQLITE_DONE;
    if (rc == 0 && !(sj->samples = malloc((size_t)limit * sizeof *sj->samples)))
        rc = sm_err(err, -ENOMEM, "out of memory");
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

int store_get(Store *s, const char *subject, int64_t after, int limit, StoreSubject **out,
              char *err) {
    *out = NULL;
    if (!store_subject_id_valid(subject))
        return SM_ABSENT;
    if (after < 0 || limit < 1 || limit > STORE_LIST_MAX)
        return sm_err(err, -EINVAL, "after must be >= 0 and limit 1..%d", STORE_LIST_MAX);
    StoreSubject *sj = calloc(1, sizeof *sj);
    if (!sj)
        return sm_err(err, -ENOMEM, "out of memory");
    memcpy(sj->id, subject, strlen(subject) + 1);
    sqlite3 *db = store_reader_get(s);
    /* One read transaction: the subject and its samples from one snapshot. */
    int rc = store_db_exec(db, "BEGIN", err);
    if (rc == 0)
        rc = get_rows(db, subject, after, limit, sj, err);
    store_reader_put(s, db);
    if (rc != 0)
        store_subject_free(sj);
    else
        *out = sj;
    return rc;
}

/* Steps through up to limit + 1 rows; the extra one only says "more follow". */
static int list_rows(sqlite3 *db, const char *after, int limit, StoreListItem *items, int *n,
                     int *more, char *err) {
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

int store_list(Store *s, const char *cursor, int limit, StoreListItem **items, int *n, char *next,
               char *err) {
    char after[STORE_SUBJECT_MAX + 1] = "";
    int more = 0;
    *items = NULL;
    *n = 0;
    next[0] = '\0';
    if (limit < 1 || limit > STORE_LIST_MAX)
        return sm_err(err, -EINVAL, "limit must be 1..%d", STORE_LIST_MAX);
    if (cursor && cursor[0]) {
        int rc = store_cursor_decode(cursor, after, err);
        if (rc < 0)
            return rc;
    }
    StoreListItem *it = malloc((size_t)limit * sizeof *it);
    if (!it)
        return sm_err(err, -ENOMEM, "out of memory");
    sqlite3 *db = store_reader_get(s);
    int rc = list_rows(db, after, limit, it, n, &more, err);
    store_reader_put(s, db);
    if (rc == 0 && more)
        rc = store_cursor_encode(it[*n - 1].id, next, err);
    if (rc < 0 || *n == 0) {
        free(it);
        it = NULL;
        if (rc < 0)
            *n = 0;
    }
    *items = it;
    return rc;
}

int store_source_known(Store *s, const char *source, char *err) {
    if (!source || !source[0] || strlen(source) > STORE_SOURCE_MAX)
        return 0;
    sqlite3 *db = store_reader_get(s);
    sqlite3_stmt *st = NULL;
    int rc = store_db_prepare(db, "SELECT 1 FROM samples WHERE source = ?1", &st, err);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
        int step = sqlite3_step(st);
        rc = step == SQLITE_ROW    ? 1
             : step == SQLITE_DONE ? 0
                                   : store_db_fail(db, step, "looking up a source", err);
    }
    sqlite3_finalize(st);
    store_reader_put(s, db);
    return rc;
}

void store_counts(Store *s, int64_t *subjects, int64_t *samples) {
    if (subjects)
        *subjects = atomic_load(&s->n_subjects);
    if (samples)
        *samples = atomic_load(&s->n_samples);
}

void store_stats(Store *s, StoreStats *out) {
    pthread_mutex_lock(&s->qlock);
    *out = s->stats;
    pthread_mutex_unlock(&s->qlock);
}

/* ---- Nearest neighbours ---- */

int store_identify_with(Store *s, const float *q, int k, int flags, IndexHit *hits, int *n,
                        char *err) {
    *n = 0;
    if (atomic_load(&s->stale))
        return sm_err(err, -ESTALE, STALE_MSG);
    return index_search(s->ix, q, k, flags, hits, n, err);
}

int store_identify(Store *s, const float *q, int k, IndexHit *hits, int *n, char *err) {
    return store_identify_with(s, q, k, 0, hits, n, err);
}

int store_verify(Store *s, const char *subject, const float *q, IndexHit *hit, char *err) {
    if (atomic_load(&s->stale))
        return sm_err(err, -ESTALE, STALE_MSG);
    if (!store_subject_id_valid(subject))
        return SM_ABSENT;
    int rc = index_nearest_in_subject(s->ix, subject, q, hit, err);
    if (rc != SM_ABSENT)
        return rc;
    /* Not in the index: unknown, or known with no samples? */
    sqlite3 *db = store_reader_get(s);
    sqlite3_stmt *st = NULL;
    rc = store_db_prepare(db, "SELECT 1 FROM subjects WHERE id = ?1", &st, err);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, subject, -1, SQLITE_STATIC);
        int step = sqlite3_step(st);
        rc = step == SQLITE_ROW    ? STORE_EMPTY
             : step == SQLITE_DONE ? SM_ABSENT
                                   : store_db_fail(db, step, "reading a subject", err);
    }
    sqlite3_finalize(st);
    store_reader_put(s, db);
    return rc;
}
