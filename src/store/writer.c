/*
 * writer.c — every change to the database, made by one writer thread with
 * group commit, and the public write calls that queue them.
 *
 * A caller builds a WriteOp on its stack, queues it and sleeps. The writer
 * takes up to batch_max queued ops, opens one transaction, runs each op inside
 * its own SAVEPOINT (a failing op is rolled back alone and reports its own
 * error), commits once and only then applies the changes to the index and the
 * counts and wakes the callers. The commit is the durable point (SQLite:
 * synchronous=FULL, the fsync), so N concurrent enrolls cost about one fsync
 * instead of N. The SQL itself is the backend's (StoreBackend in store_int.h).
 *
 * On SQLite, memory for the index is reserved inside the transaction (a
 * failure there fails that op), so applying the committed change cannot
 * fail. On PostgreSQL the backend applies instead (be->committed: the change
 * feed, which applies other daemons' changes too and can fail on a row, on
 * memory or on a lost connection; store.h says what reads then see). If the
 * commit fails — a full disk gives -ENOSPC — the whole batch is rolled back,
 * every op in it reports the error and nothing already stored is touched;
 * the next batch starts afresh, so writes work again once space returns.
 */
#include "store_int.h"

#include "siamese/log.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the ops of one batch will add to the index, for index_reserve(). */
typedef struct {
    size_t rows, subjects;
} Pending;

/* Runs one op's SQL (the backend's) and, for an enroll, reserves the index
 * memory that applying it after the commit will need. On PostgreSQL that is
 * only a head start: the feed applies other daemons' rows too, which may
 * use the reservation up, so its index_add can still fail. */
static int op_run(Store *s, WriteOp *op, Pending *pend) {
    if (op->kind == OP_RELOAD)
        return sm_err(op->err, -EINVAL, "unknown write");
    int rc = s->be->op_run(s, op, op->err);
    if (rc == 0 && op->kind == OP_ENROLL && !atomic_load(&s->stale)) {
        rc = index_reserve(s->ix, pend->rows + (size_t)op->n, pend->subjects + 1, op->err);
        if (rc == 0) {
            pend->rows += (size_t)op->n;
            pend->subjects++;
        }
    }
    return rc;
}

/* Brings the index and the counts in step with a committed op. */
static void op_apply(Store *s, WriteOp *op) {
    char err[SM_ERRMAX];
    int stale = atomic_load(&s->stale);
    switch (op->kind) {
    case OP_ENROLL:
        for (int i = 0; i < op->n && !stale; i++)
            if (index_add(s->ix, op->ids_out[i], op->subject, op->samples[i].embedding, err) < 0)
                log_error("store: index out of step with the database: %s", err);
        atomic_fetch_add(&s->n_subjects, op->created);
        atomic_fetch_add(&s->n_samples, op->n);
        break;
    case OP_DELETE_SUBJECT:
        index_remove_subject(s->ix, op->subject, NULL);
        atomic_fetch_sub(&s->n_subjects, 1);
        atomic_fetch_sub(&s->n_samples, op->count);
        break;
    case OP_DELETE_SAMPLE:
        index_remove_sample(s->ix, op->sample_id);
        atomic_fetch_sub(&s->n_samples, 1);
        break;
    default:
        break;
    }
}

/* Fails every op that succeeded or did not run (absent stays absent). */
static void fail_all(WriteOp **ops, int n, int rc, const char *err) {
    for (int i = 0; i < n; i++)
        if (ops[i]->rc == 0) {
            ops[i]->rc = rc;
            snprintf(ops[i]->err, SM_ERRMAX, "%s", err);
        }
}

/* Runs one batch in one transaction; see the top of the file. */
static void run_batch(Store *s, WriteOp **ops, int n) {
    char err[SM_ERRMAX] = "";
    Pending pend = {0, 0};
    const StoreBackend *be = s->be;
    int ok = 0, rc = be->begin(s, err);
    for (int i = 0; rc == 0 && i < n; i++) {
        rc = be->savepoint(s, err);
        if (rc < 0)
            break;
        ops[i]->rc = op_run(s, ops[i], &pend);
        ok += ops[i]->rc == 0;
        /* Some errors (I/O, memory, a lost connection) end the transaction. */
        if (ops[i]->rc < 0 && be->txn_lost(s)) {
            rc = ops[i]->rc;
            snprintf(err, sizeof err, "%s", ops[i]->err);
            break;
        }
        /* A positive outcome (absent) changed nothing, but undo it alike. */
        rc = be->release(s, ops[i]->rc == 0, err);
    }
    if (rc == 0 && ok > 0)
        rc = be->commit(s, err);
    be->rollback(s);
    if (rc < 0) {
        fail_all(ops, n, rc, err);
        return;
    }
    if (ok == 0)
        return; /* nothing committed, nothing to apply */
    pthread_mutex_lock(&s->qlock);
    s->stats.commits++;
    pthread_mutex_unlock(&s->qlock);
    if (be->committed) {
        be->committed(s); /* the backend applies (PostgreSQL: its feed) */
        return;
    }
    for (int i = 0; i < n; i++)
        if (ops[i]->rc == 0)
            op_apply(s, ops[i]);
}

/* Runs an index reload (after re-embedding) alone: no other write may land
 * between its read of the database and the index it builds. */
static void run_reload(Store *s, WriteOp *op) {
    int64_t stale = 0;
    op->rc = store_load_index(s, op->claim, &stale, op->err);
    op->count = stale;
}

static void *writer_main(void *arg) {
    Store *s = arg;
    WriteOp *batch[1024];
    for (;;) {
        int n = 0;
        pthread_mutex_lock(&s->qlock);
        while (!s->head && !s->stopping)
            pthread_cond_wait(&s->qcv, &s->qlock);
        if (!s->head) {
            pthread_mutex_unlock(&s->qlock);
            break;
        }
        /* A reload goes alone; so does whatever precedes it. */
        while (s->head && n < s->batch_max && (n == 0 || s->head->kind != OP_RELOAD)) {
            batch[n++] = s->head;
            s->head = s->head->next;
            if (batch[n - 1]->kind == OP_RELOAD)
                break;
        }
        if (!s->head)
            s->tail = NULL;
        pthread_mutex_unlock(&s->qlock);

        if (batch[0]->kind == OP_RELOAD)
            run_reload(s, batch[0]);
        else
            run_batch(s, batch, n);

        pthread_mutex_lock(&s->qlock);
        s->stats.writes += (uint64_t)n;
        if ((uint64_t)n > s->stats.batch_max)
            s->stats.batch_max = (uint64_t)n;
        for (int i = 0; i < n; i++)
            batch[i]->done = 1;
        pthread_cond_broadcast(&s->donecv);
        pthread_mutex_unlock(&s->qlock);
    }
    return NULL;
}

int store_writer_start(Store *s, char *err) {
    int rc = pthread_create(&s->writer, NULL, writer_main, s);
    if (rc != 0)
        return sm_err(err, -rc, "cannot start the writer thread: %s", strerror(rc));
    /* Under qlock: store_submit() (the change feed's listener) reads it. */
    pthread_mutex_lock(&s->qlock);
    s->writer_started = 1;
    pthread_mutex_unlock(&s->qlock);
    return 0;
}

void store_writer_stop(Store *s) {
    pthread_mutex_lock(&s->qlock);
    int started = s->writer_started;
    s->stopping = 1;
    pthread_cond_signal(&s->qcv);
    pthread_mutex_unlock(&s->qlock);
    if (!started)
        return;
    pthread_join(s->writer, NULL);
    pthread_mutex_lock(&s->qlock);
    s->writer_started = 0;
    pthread_mutex_unlock(&s->qlock);
}

int store_submit(Store *s, WriteOp *op, char *err) {
    op->next = NULL;
    op->done = 0;
    op->rc = 0;
    op->err[0] = '\0';
    pthread_mutex_lock(&s->qlock);
    if (s->stopping || !s->writer_started) { /* (the change feed's reload, at close) */
        pthread_mutex_unlock(&s->qlock);
        return sm_err(err, -ESHUTDOWN, "the store is closing");
    }
    if (s->tail)
        s->tail->next = op;
    else
        s->head = op;
    s->tail = op;
    pthread_cond_signal(&s->qcv);
    while (!op->done)
        pthread_cond_wait(&s->donecv, &s->qlock);
    pthread_mutex_unlock(&s->qlock);
    if (op->rc < 0)
        sm_err(err, op->rc, "%s", op->err);
    return op->rc;
}

/* ---- The public write calls: validate, queue, wait ---- */

static int sample_check(const Store *s, const StoreSampleIn *in, int i, char *err) {
    if (!in->embedding)
        return sm_err(err, -EINVAL, "sample %d: no embedding", i);
    for (int j = 0; j < s->dim; j++)
        if (!isfinite(in->embedding[j]))
            return sm_err(err, -EINVAL, "sample %d: the embedding is not finite", i);
    if (in->source && (!in->source[0] || strlen(in->source) > STORE_SOURCE_MAX))
        return sm_err(err, -EINVAL, "sample %d: a source is 1 to %d bytes", i, STORE_SOURCE_MAX);
    if (!in->image || in->image_len == 0)
        return 0;
    if (in->image_len > STORE_IMAGE_MAX)
        return sm_err(err, -EINVAL, "sample %d: image of %zu bytes, more than %u", i, in->image_len,
                      STORE_IMAGE_MAX);
    const char *ct = in->content_type;
    size_t len = ct ? strlen(ct) : 0, slash = 0;
    for (size_t j = 0; j < len; j++)
        slash += ct[j] == '/';
    int printable = 1;
    for (size_t j = 0; j < len; j++)
        printable &= ct[j] > ' ' && ct[j] < 0x7f && ct[j] != '"' && ct[j] != '\\';
    if (len == 0 || len > STORE_CONTENT_TYPE_MAX || slash != 1 || !printable || ct[0] == '/' ||
        ct[len - 1] == '/')
        return sm_err(err, -EINVAL, "sample %d: an image needs a content type like image/png", i);
    return 0;
}

int store_enroll(Store *s, const char *subject, const char *metadata, const StoreSampleIn *samples,
                 int n, int64_t *ids, StoreEnrolled *res, char *err) {
    if (!store_subject_id_valid(subject))
        return sm_err(err, -EINVAL, "invalid subject id: 1 to %d characters from [A-Za-z0-9._:@-]",
                      STORE_SUBJECT_MAX);
    if (n < 0 || n > STORE_ENROLL_MAX || (n > 0 && (!samples || !ids)))
        return sm_err(err, -EINVAL, "enroll takes 0 to %d samples", STORE_ENROLL_MAX);
    if (metadata && !store_metadata_valid(metadata, strlen(metadata)))
        return sm_err(err, -EINVAL, "metadata must be a JSON object of at most %u bytes",
                      STORE_METADATA_MAX);
    for (int i = 0; i < n; i++) {
        int rc = sample_check(s, &samples[i], i, err);
        if (rc < 0)
            return rc;
    }
    if (atomic_load(&s->stale))
        return sm_err(err, -ESTALE,
                      "the store holds samples from another model: run `siamesed --reembed`");
    WriteOp op = {.kind = OP_ENROLL,
                  .subject = subject,
                  .metadata = metadata,
                  .samples = samples,
                  .n = n,
                  .ids_out = ids};
    int rc = store_submit(s, &op, err);
    if (rc == 0 && res) {
        res->total = op.count;
        res->created = op.created;
    }
    return rc;
}

int store_delete_subject(Store *s, const char *subject, int64_t *removed, char *err) {
    if (!store_subject_id_valid(subject))
        return SM_ABSENT;
    WriteOp op = {.kind = OP_DELETE_SUBJECT, .subject = subject};
    int rc = store_submit(s, &op, err);
    if (rc == 0 && removed)
        *removed = op.count;
    return rc;
}

int store_delete_sample(Store *s, const char *subject, int64_t sample_id, int64_t *remaining,
                        char *err) {
    if (!store_subject_id_valid(subject) || sample_id <= 0)
        return SM_ABSENT;
    WriteOp op = {.kind = OP_DELETE_SAMPLE, .subject = subject, .sample_id = sample_id};
    int rc = store_submit(s, &op, err);
    if (rc == 0 && remaining)
        *remaining = op.count;
    return rc;
}
