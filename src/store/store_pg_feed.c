/*
 * store_pg_feed.c — the change feed: how many daemons sharing one PostgreSQL
 * database keep their in-memory indexes and counts in step.
 *
 * Every write transaction records what it did in the changes table (an
 * increasing id per change; store_pg_ops.c) and NOTIFYs siamesed_changes in
 * the same transaction. Change ids are taken from a sequence, and sequence
 * values can commit out of order; so every write transaction first takes
 * pg_advisory_xact_lock(PG_LOCK_WRITE), holding it until its commit. Then
 * the committed changes are always a prefix of the ids, and "every change
 * with an id above the last one applied" misses nothing. The price: one
 * database writer at a time, across all daemons — where this design stops
 * (docs/scaling.md).
 *
 * Applying: a store remembers the last change id it applied (taken with the
 * index's snapshot at load) and applies the rows after it in id order:
 * samples added or re-embedded (their embedding read from samples), removed,
 * subjects removed, and each row's effect on the counts. Applying is
 * idempotent for the index (keyed by sample id), and the counts move only
 * through here, once per change. Two callers do it, one at a time (lock):
 * the writer right after each commit, before it returns (so a write that
 * returned is in this daemon's index, or the store is marked behind:
 * store_pg.c), and the listener thread, for the other daemons' writes.
 *
 * The listener has its own connection, LISTENs, and catches up on a
 * notification naming a change it has not applied (the payload is the last
 * change id of the commit; a daemon's own commits are applied by its writer
 * already), every FEED_POLL_MS anyway (a notification can be missed), and
 * right after (re)connecting (a NOTIFY is not replayed). A lost
 * connection is retried with backoff up to FEED_BACKOFF_MAX_MS.
 *
 * Pruning: every PG_PRUNE_EVERY commits a writer (after its commit, in short
 * transactions of its own, store_pg_ops.c) deletes the change rows
 * more than feed_retain behind the newest and records the highest id
 * deleted in feed_floor. A store whose last applied change is below it
 * (disconnected for that long) cannot catch up and reloads its index
 * instead, through its writer (an OP_RELOAD, like after a re-embed).
 */
#include "store_pg_int.h"

#include "siamese/log.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FEED_PAGE 1000
#define STORE_FEED_DSAM_MAX ((int64_t)1 << 40) /* samples one change may remove */
#define FEED_POLL_MS 1000
#define FEED_BACKOFF_MIN_MS 50
#define FEED_BACKOFF_MAX_MS 2000

struct PgFeed {
    Store *s;
    pthread_mutex_t lock;     /* applying, and last */
    _Atomic int64_t last;     /* the last change id applied (written under lock) */
    _Atomic int64_t notified; /* the newest change id a notification named */
    float *emb;               /* one aligned embedding */
    int wake[2];              /* a byte here stops the listener */
    pthread_t thread;
    int started;
    int warned_foreign;     /* logged that another model's samples appeared */
    int need_reload;        /* changes this store needed were pruned (under lock) */
    atomic_int stop;        /* store_close() is stopping the listener */
    char failed[SM_ERRMAX]; /* the listener's last catch-up error, logged once (its thread) */
    pthread_mutex_t cmu;    /* cancel */
    PGcancel *cancel;       /* the listener's connection's, to cut a query short at close */
};

/* ---- Applying ---- */

/* One change row as read: id, kind, subject_id, sample_id (0 if NULL),
 * d_subjects, d_samples; columns 6 and 7 (the sample's fingerprint and
 * embedding, for add / reembed) are read by apply_add. */
typedef struct {
    int64_t id, sample, dsub, dsam;
    int has_sample;
    const char *kind; /* borrowed from the result */
    char subject[STORE_SUBJECT_MAX + 1];
} Change;

/* Reads and checks row i's change columns into c; *id is its id once read. */
static int change_read(PgFeed *f, const PGresult *r, int i, Change *c, int64_t *id, char *err) {
    size_t klen = 0, slen = 0;
    if (pg_val_int(r, i, 0, 1, &c->id) < 0)
        return sm_err(err, -EINVAL, "change after %lld: invalid id", (long long)f->last);
    *id = c->id;
    long long cid = (long long)c->id;
    if (!(c->kind = pg_val_text(r, i, 1, &klen)))
        return sm_err(err, -EINVAL, "change %lld: invalid kind", cid);
    const char *subj = pg_val_text(r, i, 2, &slen);
    if (store_val_id(subj, slen, c->subject) < 0)
        return sm_err(err, -EINVAL, "change %lld: invalid subject id", cid);
    c->has_sample = !PQgetisnull(r, i, 3);
    c->sample = 0;
    if (c->has_sample && pg_val_int(r, i, 3, 1, &c->sample) < 0)
        return sm_err(err, -EINVAL, "change %lld: invalid sample id", cid);
    if (pg_val_int(r, i, 4, -1, &c->dsub) < 0 || pg_val_int(r, i, 5, INT64_MIN, &c->dsam) < 0)
        return sm_err(err, -EINVAL, "change %lld: invalid d_subjects or d_samples", cid);
    return 0;
}

/* Warns once that another model's samples appeared, and refuses to serve. */
static void foreign_sample(PgFeed *f, int64_t sample, const char *fp) {
    Store *s = f->s;
    index_remove_sample(s->ix, sample); /* it cannot be compared with ours */
    atomic_store(&s->stale, 1);
    if (!f->warned_foreign++)
        log_warn("store: sample %lld was embedded by model %.12s..., not this daemon's %.12s...:"
                 " identify and verify refused until restarted with that model",
                 (long long)sample, fp, s->fingerprint);
}

/* An add or a reembed: the sample (its embedding as the row read it) into
 * the index, unless it has gone since (fingerprint and embedding NULL: a
 * later change says so) or the store is stale. */
static int apply_add(PgFeed *f, const PGresult *r, int i, const Change *c, char *err) {
    Store *s = f->s;
    size_t fplen = 0, elen = 0;
    assert(c->has_sample); /* change_kinds */
    const char *fp = pg_val_text(r, i, 6, &fplen);
    const void *e = pg_val_bytea(r, i, 7, &elen);
    if (PQgetisnull(r, i, 6) && PQgetisnull(r, i, 7))
        fp = NULL;      /* gone */
    else if (!fp || !e) /* a value of another type is not "gone" */
        return sm_err(err, -EINVAL,
                      "change %lld: the sample's fingerprint or embedding column has another type",
                      (long long)c->id);
    int stale = atomic_load(&s->stale);
    if (!strcmp(c->kind, "reembed") && !stale)
        index_remove_sample(s->ix, c->sample);
    if (!fp || stale)
        return 0;
    if (fplen != STORE_FINGERPRINT_LEN || !store_fingerprint_valid(fp))
        return sm_err(err, -EINVAL, "sample %lld: invalid fingerprint", (long long)c->sample);
    if (strcmp(fp, s->fingerprint) != 0) {
        foreign_sample(f, c->sample, fp);
        return 0;
    }
    if (elen != (size_t)s->dim * sizeof(float))
        return sm_err(err, -EINVAL, "sample %lld: embedding of %zu bytes, expected %zu",
                      (long long)c->sample, elen, (size_t)s->dim * sizeof(float));
    memcpy(f->emb, e, elen);
    int rc = index_add(s->ix, c->sample, c->subject, f->emb, err);
    return rc == -EEXIST ? 0 : rc;
}

static int apply_remove_sample(PgFeed *f, const PGresult *r, int i, const Change *c, char *err) {
    (void)r;
    (void)i;
    (void)err;
    index_remove_sample(f->s->ix, c->sample);
    return 0;
}

static int apply_remove_subject(PgFeed *f, const PGresult *r, int i, const Change *c, char *err) {
    (void)r;
    (void)i;
    (void)err;
    index_remove_subject(f->s->ix, c->subject, NULL);
    return 0;
}

/* The kinds of change the migrations allow (0001_init.sql), each with the
 * counts its writer (store_pg_ops.c) records, whether it names a sample,
 * and how it is applied to the index (NULL: counts only). A row outside
 * them is refused, so a damaged one cannot move the counts. */
typedef int (*ApplyFn)(PgFeed *f, const PGresult *r, int i, const Change *c, char *err);
static const struct {
    const char *kind;
    int64_t dsub, dsam_min, dsam_max;
    int sample;
    ApplyFn apply;
} change_kinds[] = {
    {"subject", 1, 0, 0, 0, NULL},
    {"add", 0, 1, 1, 1, apply_add},
    {"remove_sample", 0, -1, -1, 1, apply_remove_sample},
    {"remove_subject", -1, -STORE_FEED_DSAM_MAX, 0, 0, apply_remove_subject},
    {"reembed", 0, 0, 0, 1, apply_add},
};

/* One change row (see Change) checked against its kind, applied to the
 * index, then to the counts. */
static int apply_row(PgFeed *f, const PGresult *r, int i, int64_t *id, char *err) {
    Change c;
    int rc = change_read(f, r, i, &c, id, err);
    if (rc < 0)
        return rc;
    size_t k = 0;
    while (k < SM_ARRAY_LEN(change_kinds) && strcmp(change_kinds[k].kind, c.kind))
        k++;
    if (k == SM_ARRAY_LEN(change_kinds))
        return sm_err(err, -EINVAL, "change %lld: unknown kind", (long long)c.id);
    if (c.dsub != change_kinds[k].dsub || c.dsam < change_kinds[k].dsam_min ||
        c.dsam > change_kinds[k].dsam_max || c.has_sample != change_kinds[k].sample)
        return sm_err(err, -EINVAL,
                      "change %lld: a '%s' with d_subjects %lld, d_samples %lld and %s sample id",
                      (long long)c.id, c.kind, (long long)c.dsub, (long long)c.dsam,
                      c.has_sample ? "a" : "no");
    if (change_kinds[k].apply && (rc = change_kinds[k].apply(f, r, i, &c, err)) < 0)
        return rc;
    atomic_fetch_add(&f->s->n_subjects, c.dsub);
    atomic_fetch_add(&f->s->n_samples, c.dsam);
    return 0;
}

/* Applies the next page of changes; *rows receives how many there were,
 * *gap is set if a row's id did not follow the one before (ids skip when an
 * op rolled back, or when rows were pruned). */
static int apply_page(PgFeed *f, PGconn *c, int *rows, int *gap, char *err) {
    char after[24], lim[16];
    snprintf(after, sizeof after, "%lld", (long long)f->last);
    snprintf(lim, sizeof lim, "%d", FEED_PAGE);
    const char *vals[] = {after, lim};
    PGresult *r = NULL;
    int rc = pg_query(c,
                      "SELECT c.id, c.kind, c.subject_id, c.sample_id, c.d_subjects, c.d_samples,"
                      " s.fingerprint, s.embedding FROM changes c LEFT JOIN samples s"
                      " ON s.id = c.sample_id AND c.kind IN ('add', 'reembed')"
                      " WHERE c.id > $1 ORDER BY c.id LIMIT $2",
                      2, vals, NULL, NULL, &r, "reading changes", err);
    *rows = rc == 0 ? PQntuples(r) : 0;
    for (int i = 0; rc == 0 && i < *rows; i++) {
        int64_t id = 0;
        rc = apply_row(f, r, i, &id, err);
        if (rc == 0 && id <= f->last)
            rc = sm_err(err, -EINVAL, "change %lld out of order", (long long)id);
        *gap |= id != f->last + 1;
        if (rc == 0)
            f->last = id;
    }
    PQclear(r);
    return rc;
}

/* -ERANGE if changes after from (the last change applied before this
 * catch-up) were pruned. */
static int floor_check(PgFeed *f, PGconn *c, int64_t from, char *err) {
    PGresult *r = NULL;
    int64_t floor = 0;
    int rc =
        pg_query(c, "SELECT id FROM feed_floor", 0, NULL, NULL, NULL, &r, "reading changes", err);
    if (rc == 0 && pg_val_int(r, 0, 0, 0, &floor) < 0)
        rc = sm_err(err, -EINVAL, "feed_floor holds an invalid row");
    PQclear(r);
    if (rc == 0 && from < floor)
        rc = sm_err(err, -ERANGE,
                    "the changes after %lld were pruned (up to %lld): reloading the index",
                    (long long)from, (long long)floor);
    return rc;
}

int pg_feed_catch_up(Store *s, PGconn *c, char *err) {
    PgFeed *f = pg_state(s)->feed;
    pthread_mutex_lock(&f->lock);
    int rows = FEED_PAGE, rc = 0, gap = 0;
    int64_t from = f->last;
    while (rc == 0 && rows == FEED_PAGE)
        rc = apply_page(f, c, &rows, &gap, err);
    /* Pruned rows leave a gap (pruning keeps the newest rows). Checked after
     * reading: a pruning that hid rows from those reads had committed before
     * this check, which then sees it. */
    if (rc == 0 && gap)
        rc = floor_check(f, c, from, err);
    f->need_reload |= rc == -ERANGE;
    /* Until the reload, the index lacks what was pruned; and a change that
     * cannot be applied (invalid, or no memory) stops the feed at it: refuse
     * to answer from an index that misses changes. A lost connection is not
     * that (identify and verify go on from memory). */
    if (f->need_reload || (rc < 0 && rc != -ENOTCONN))
        atomic_store(&s->behind, 1);
    else if (rc == 0)
        atomic_store(&s->behind, 0);
    pthread_mutex_unlock(&f->lock);
    return rc;
}

/* Under the lock, so that it cannot undo a catch-up that started after it
 * (one that ended before it clears it at the next, within FEED_POLL_MS). */
void pg_feed_behind(Store *s) {
    PgFeed *f = pg_state(s)->feed;
    pthread_mutex_lock(&f->lock);
    atomic_store(&s->behind, 1);
    pthread_mutex_unlock(&f->lock);
}

void pg_feed_lock(Store *s, int64_t *last) {
    PgFeed *f = pg_state(s)->feed;
    pthread_mutex_lock(&f->lock);
    if (last)
        *last = f->last;
}

void pg_feed_unlock(Store *s, int64_t last, int loaded) {
    PgFeed *f = pg_state(s)->feed;
    f->last = last;
    if (loaded)
        f->need_reload = 0;
    pthread_mutex_unlock(&f->lock);
}

/* ---- The listener ---- */

/* Sleeps ms unless woken to stop: 1 if asked to stop. */
static int nap(PgFeed *f, int ms) {
    struct pollfd p = {.fd = f->wake[0], .events = POLLIN};
    return poll(&p, 1, ms) > 0;
}

/* Connects and LISTENs, retrying with backoff until it works or a stop. */
static PGconn *listen_connect(PgFeed *f, int *lost) {
    char err[SM_ERRMAX];
    int wait = FEED_BACKOFF_MIN_MS;
    for (;;) {
        PGconn *c = NULL;
        int rc = pg_connect(pg_state(f->s)->uri, PG_STATEMENT_MS, &c, err);
        if (rc == 0)
            rc = pg_exec(c, "LISTEN siamesed_changes", 0, NULL, "listening for changes", err);
        if (rc == 0) {
            if (*lost)
                log_info("store: change feed connected again");
            *lost = 0;
            return c;
        }
        PQfinish(c);
        if (!*lost)
            log_warn("store: change feed: %s (retrying)", err);
        *lost = 1;
        if (nap(f, wait))
            return NULL;
        wait = wait * 2 > FEED_BACKOFF_MAX_MS ? FEED_BACKOFF_MAX_MS : wait * 2;
    }
}

/* The listener's cancel handle: for c, or none (c NULL). */
static void cancel_set(PgFeed *f, PGconn *c) {
    PGcancel *cn = c ? PQgetCancel(c) : NULL;
    pthread_mutex_lock(&f->cmu);
    PQfreeCancel(f->cancel);
    f->cancel = cn;
    pthread_mutex_unlock(&f->cmu);
}

/* Catches up, or reloads the index (through the writer, which alone reads
 * with its connection) when the changes it needs were pruned. */
static void catch_up_logged(PgFeed *f, PGconn *c) {
    char err[SM_ERRMAX];
    int rc = pg_feed_catch_up(f->s, c, err);
    if (atomic_load(&f->stop))
        return; /* (its query was cancelled) */
    /* Each failure once (it is retried every FEED_POLL_MS), and its end. */
    if (rc == 0 && f->failed[0])
        log_info("store: change feed: applying again (was: %s)", f->failed);
    else if (rc == -ERANGE)
        log_warn("store: change feed: %s", err);
    else if (rc < 0 && PQstatus(c) == CONNECTION_OK && strcmp(err, f->failed) != 0)
        log_error("store: change feed: %s (identify and verify answer 503 until it applies)", err);
    snprintf(f->failed, sizeof f->failed, "%s", rc < 0 && rc != -ERANGE ? err : "");
    /* The writer's catch-up may have found it too. */
    pthread_mutex_lock(&f->lock);
    int reload = f->need_reload;
    pthread_mutex_unlock(&f->lock);
    if (!reload)
        return;
    WriteOp op = {.kind = OP_RELOAD}; /* no claim (store_pg.c: serving_claim) */
    rc = store_submit(f->s, &op, err);
    if (rc < 0)
        log_error("store: change feed: reloading the index: %s", err);
}

/* The larger of prev and the change id a notification names (its
 * payload); INT64_MAX when the payload is not a number (then look anyway). */
static int64_t notified_id(const char *payload, int64_t prev) {
    char *end = NULL;
    errno = 0;
    long long v = payload ? strtoll(payload, &end, 10) : -1;
    if (!payload || end == payload || *end || errno || v < 0)
        return INT64_MAX; /* unknown: look */
    return v > prev ? v : prev;
}

/* The newest change id the queued notifications name (see notified_id), -1 if none. */
static int64_t notifications(PgFeed *f, PGconn *c) {
    int64_t newest = -1;
    for (PGnotify *nt; (nt = PQnotifies(c));) {
        newest = notified_id(nt->extra, newest);
        PQfreemem(nt);
    }
    if (newest != INT64_MAX && newest > atomic_load(&f->notified))
        atomic_store(&f->notified, newest);
    return newest;
}

int64_t pg_feed_lag(Store *s) {
    PgFeed *f = pg_state(s)->feed;
    int64_t lag = f ? atomic_load(&f->notified) - atomic_load(&f->last) : 0;
    return lag > 0 ? lag : 0;
}

static double mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int64_t feed_last(PgFeed *f) {
    pthread_mutex_lock(&f->lock);
    int64_t last = f->last;
    pthread_mutex_unlock(&f->lock);
    return last;
}

static void *listener_main(void *arg) {
    PgFeed *f = arg;
    int lost = 0;
    PGconn *c = NULL;
    while ((c = listen_connect(f, &lost))) {
        cancel_set(f, c);
        catch_up_logged(f, c); /* what happened while we were not listening */
        double looked = mono_ms();
        while (PQstatus(c) == CONNECTION_OK && !atomic_load(&f->stop)) {
            /* A catch-up's query reads the notifications that came meanwhile
             * into libpq's queue: those first, no sleep on the socket. */
            if (!PQconsumeInput(c))
                break; /* the connection is gone */
            int64_t newest = notifications(f, c);
            if (newest < 0) {
                struct pollfd p[2] = {{.fd = PQsocket(c), .events = POLLIN},
                                      {.fd = f->wake[0], .events = POLLIN}};
                int n = poll(p, 2, FEED_POLL_MS);
                if (n < 0 && errno != EINTR)
                    break;
                if (p[1].revents)
                    break; /* stop */
                if (p[0].revents && !PQconsumeInput(c))
                    break;
                newest = notifications(f, c);
            }
            /* When a notification names a change this store has not applied
             * (its writer applies its own), and every FEED_POLL_MS anyway. */
            double t = mono_ms();
            if (newest < 0 || newest > feed_last(f) || t - looked >= FEED_POLL_MS) {
                catch_up_logged(f, c);
                looked = t;
            }
        }
        cancel_set(f, NULL);
        PQfinish(c);
        if (atomic_load(&f->stop))
            return NULL;
        log_warn("store: change feed: connection to PostgreSQL lost; reconnecting");
        lost = 1;
    }
    return NULL;
}

int pg_feed_new(Store *s, char *err) {
    PgFeed *f = calloc(1, sizeof *f);
    if (!f || !(f->emb = malloc((size_t)s->dim * sizeof(float)))) {
        free(f);
        return sm_err(err, -ENOMEM, "store: out of memory");
    }
    f->s = s;
    f->wake[0] = f->wake[1] = -1;
    pthread_mutex_init(&f->lock, NULL);
    pthread_mutex_init(&f->cmu, NULL);
    pg_state(s)->feed = f;
    if (pipe2(f->wake, O_CLOEXEC) < 0)
        return sm_err(err, -errno, "store: pipe: %s", strerror(errno));
    return 0;
}

int pg_feed_start(Store *s, char *err) {
    PgFeed *f = pg_state(s)->feed;
    int rc = pthread_create(&f->thread, NULL, listener_main, f);
    if (rc != 0)
        return sm_err(err, -rc, "cannot start the change feed thread: %s", strerror(rc));
    f->started = 1;
    return 0;
}

void pg_feed_free(Store *s) {
    PgFeed *f = pg_state(s)->feed;
    if (!f)
        return;
    if (f->started) {
        char b = 1, why[256];
        atomic_store(&f->stop, 1);
        if (write(f->wake[1], &b, 1) != 1)
            log_error("store: cannot stop the change feed");
        /* A query in progress (a server that hangs) would hold the join. */
        pthread_mutex_lock(&f->cmu);
        if (f->cancel && !PQcancel(f->cancel, why, sizeof why))
            log_warn("store: change feed: cancelling its query: %s", why);
        pthread_mutex_unlock(&f->cmu);
        pthread_join(f->thread, NULL);
    }
    if (f->wake[0] >= 0)
        close(f->wake[0]);
    if (f->wake[1] >= 0)
        close(f->wake[1]);
    pthread_mutex_destroy(&f->lock);
    pthread_mutex_destroy(&f->cmu);
    PQfreeCancel(f->cancel);
    free(f->emb);
    free(f);
    pg_state(s)->feed = NULL;
}
