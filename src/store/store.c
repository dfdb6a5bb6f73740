/*
 * store.c — opening and closing the store and the read side (get, list,
 * counts, identify, verify), whatever the backend. What crosses into the
 * store (ids, cursors, fingerprints, metadata, database rows) is validated in
 * rows.c, which also loads the index.
 *
 * Lifecycle: store_open() picks the backend, which connects, checks and
 * migrates the database and opens the pool of read connections; then every
 * sample is loaded into the index and the writer thread starts (writer.c).
 * Reads borrow a pooled connection from the backend. Writes go through
 * writer.c; re-embedding lives in reembed.c.
 */
#include "store_int.h"

#include "siamese/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define STALE_MSG "the store holds samples from another model: run `siamesed --reembed`"
#define BEHIND_MSG "the index is behind the database (reloading or a change cannot be applied)"

int store_reader_get(Store *s, void **db, char *err) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += STORE_READER_WAIT_MS / 1000;
    int rc = 0;
    *db = NULL;
    pthread_mutex_lock(&s->rlock);
    while (s->n_rfree == 0 && rc == 0)
        rc = pthread_cond_timedwait(&s->rcv, &s->rlock, &until);
    if (s->n_rfree > 0)
        *db = s->rfree[--s->n_rfree];
    pthread_mutex_unlock(&s->rlock);
    return *db ? 0
               : sm_err(err, -ENOTCONN, "all %d database connections busy for %d s", s->n_rdb,
                        STORE_READER_WAIT_MS / 1000);
}

void store_reader_put(Store *s, void *db) {
    s->be->reader_reset(s, db);
    pthread_mutex_lock(&s->rlock);
    s->rfree[s->n_rfree++] = db;
    pthread_cond_signal(&s->rcv);
    pthread_mutex_unlock(&s->rlock);
}

/* ---- Open and close ---- */

static int store_config_check(const StoreConfig *cfg, char *err) {
    if (!cfg || !cfg->path || !cfg->path[0])
        return sm_err(err, -EINVAL, "store: no database path");
    if (store_db_is_uri(cfg->path) && !store_db_is_postgres(cfg->path))
        return sm_err(err, -EINVAL,
                      "store: %s: a URI other than postgresql:// or postgres:// (or a file "
                      "path with \"://\" in it: write it as ./...)",
                      cfg->path);
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
    /* Readers hold ixlock for a whole scan: a swap must not wait behind
     * a stream of them. */
    sm_rwlock_init_writers_first(&s->ixlock);
    return s;
}

int store_dir_make(const char *db_path, char *err) {
    char buf[4096];
    if (store_db_is_postgres(db_path))
        return 0;
    if (store_db_is_uri(db_path))
        return sm_err(err, -EINVAL, "%s: a URI other than postgresql:// or postgres://", db_path);
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

/* The pool starts with every reader the backend opened. */
static int pool_fill(Store *s, char *err) {
    s->rfree = calloc((size_t)s->n_rdb, sizeof *s->rfree);
    if (!s->rfree)
        return sm_err(err, -ENOMEM, "store: out of memory");
    for (int i = 0; i < s->n_rdb; i++)
        s->rfree[s->n_rfree++] = s->rdb[i];
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
    if (!(s = store_new(cfg)))
        return sm_err(err, -ENOMEM, "store: out of memory");
    s->be = store_db_is_postgres(cfg->path) ? &store_pg_backend : &store_sqlite_backend;
    rc = s->be->open(s, cfg, &from, &to, why);
    if (rc == 0 && from != to)
        log_info("store: %s: schema %s version %d", s->path, from ? "upgraded to" : "created at",
                 to);
    if (rc == 0)
        rc = pool_fill(s, why);
    if (rc == 0)
        rc = index_create(s->dim, &s->ix, why);
    if (rc == 0)
        rc = store_load_index(s, 1, &stale, why);
    if (rc == 0 && s->be->start)
        rc = s->be->start(s, why);
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
    if (s->be)
        s->be->close(s);
    index_free(s->ix);
    pthread_mutex_destroy(&s->qlock);
    pthread_cond_destroy(&s->qcv);
    pthread_cond_destroy(&s->donecv);
    pthread_mutex_destroy(&s->rlock);
    pthread_cond_destroy(&s->rcv);
    pthread_rwlock_destroy(&s->ixlock);
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
    if (!(sj->samples = malloc((size_t)limit * sizeof *sj->samples))) {
        free(sj);
        return sm_err(err, -ENOMEM, "out of memory");
    }
    void *db = NULL;
    int rc = store_reader_get(s, &db, err);
    if (rc == 0) {
        rc = s->be->get(s, db, subject, after, limit, sj, err);
        store_reader_put(s, db);
    }
    if (rc != 0)
        store_subject_free(sj);
    else
        *out = sj;
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
    void *db = NULL;
    int rc = store_reader_get(s, &db, err);
    if (rc == 0) {
        rc = s->be->list(s, db, after, limit, it, n, &more, err);
        store_reader_put(s, db);
    }
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
    void *db = NULL;
    int rc = store_reader_get(s, &db, err);
    if (rc < 0)
        return rc;
    rc = s->be->source_known(s, db, source, err);
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
    out->behind = atomic_load(&s->behind);
    out->feed_lag = s->be->feed_lag ? s->be->feed_lag(s) : 0;
}

/* ---- Nearest neighbours ---- */

int store_identify_with(Store *s, const float *q, int k, int flags, IndexHit *hits, int *n,
                        char *err) {
    *n = 0;
    if (atomic_load(&s->stale))
        return sm_err(err, -ESTALE, STALE_MSG);
    pthread_rwlock_rdlock(&s->ixlock);
    int rc = atomic_load(&s->behind) ? sm_err(err, -ENOTCONN, BEHIND_MSG)
                                     : index_search(s->ix, q, k, flags, hits, n, err);
    pthread_rwlock_unlock(&s->ixlock);
    return rc;
}

int store_identify(Store *s, const float *q, int k, IndexHit *hits, int *n, char *err) {
    return store_identify_with(s, q, k, 0, hits, n, err);
}

int store_verify(Store *s, const char *subject, const float *q, IndexHit *hit, char *err) {
    if (atomic_load(&s->stale))
        return sm_err(err, -ESTALE, STALE_MSG);
    if (!store_subject_id_valid(subject))
        return SM_ABSENT;
    pthread_rwlock_rdlock(&s->ixlock);
    int rc = atomic_load(&s->behind) ? sm_err(err, -ENOTCONN, BEHIND_MSG)
                                     : index_nearest_in_subject(s->ix, subject, q, hit, err);
    pthread_rwlock_unlock(&s->ixlock);
    if (rc != SM_ABSENT)
        return rc;
    /* Not in the index: unknown, or known with no samples? */
    void *db = NULL;
    if ((rc = store_reader_get(s, &db, err)) < 0)
        return rc;
    rc = s->be->subject_exists(s, db, subject, err);
    store_reader_put(s, db);
    return rc == 1 ? STORE_EMPTY : rc == 0 ? SM_ABSENT : rc;
}
