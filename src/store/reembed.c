/*
 * reembed.c — store_reembed(): after a model change, every sample another
 * model made gets a new embedding computed from its kept image.
 *
 * The work goes in batches of REEMBED_BATCH samples in id order: read the
 * batch's images through a read connection, call the caller's embed function
 * on each, then hand the new embeddings to the writer as one write (one
 * transaction). A sample updated by a finished batch carries the new
 * fingerprint, so an interrupted run resumes where it stopped. At the end the
 * index is rebuilt by the writer, and a store opened as STORE_STALE serves.
 */
#include "store_int.h"

#include "siamese/log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define REEMBED_BATCH 64

static int count_missing(Store *s, int64_t *missing, char *err) {
    sqlite3 *db = store_reader_get(s);
    sqlite3_stmt *st = NULL;
    int rc = store_db_prepare(
        db, "SELECT count(*) FROM samples WHERE fingerprint <> ?1 AND image IS NULL", &st, err);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, s->fingerprint, -1, SQLITE_STATIC);
        int step = sqlite3_step(st);
        if (step == SQLITE_ROW)
            *missing = sqlite3_column_int64(st, 0);
        else
            rc = store_db_fail(db, step, "counting samples without images", err);
    }
    sqlite3_finalize(st);
    store_reader_put(s, db);
    return rc;
}

/* Embeds one row (id, image, content_type) into emb, validating it first. */
static int embed_row(Store *s, sqlite3_stmt *st, StoreEmbedFn fn, void *ctx, float *emb,
                     int64_t *id, char *err) {
    char why[SM_ERRMAX] = "";
    /* Types first: reading a value may convert it. */
    int id_type = sqlite3_column_type(st, 0), img_type = sqlite3_column_type(st, 1);
    int ct_type = sqlite3_column_type(st, 2);
    *id = sqlite3_column_int64(st, 0);
    const uint8_t *img = sqlite3_column_blob(st, 1);
    int len = sqlite3_column_bytes(st, 1);
    const char *ct = (const char *)sqlite3_column_text(st, 2);
    if (id_type != SQLITE_INTEGER || *id < 1)
        return sm_err(err, -EINVAL, "a sample row has an invalid id");
    if (img_type != SQLITE_BLOB || len <= 0 || (size_t)len > STORE_IMAGE_MAX)
        return sm_err(err, -ENODATA, "sample %lld: no kept image to re-embed", (long long)*id);
    if (ct_type != SQLITE_TEXT || !ct || strlen(ct) > STORE_CONTENT_TYPE_MAX)
        return sm_err(err, -EINVAL, "sample %lld: invalid content type in the database",
                      (long long)*id);
    int rc = fn(ctx, img, (size_t)len, ct, emb, why);
    if (rc < 0)
        return sm_err(err, rc, "sample %lld: %s", (long long)*id, why);
    for (int j = 0; j < s->dim; j++)
        if (!isfinite(emb[j]))
            return sm_err(err, -EINVAL, "sample %lld: the new embedding is not finite",
                          (long long)*id);
    return 0;
}

/* Embeds the next (up to REEMBED_BATCH) stale samples with ids above after. */
static int embed_batch(Store *s, StoreEmbedFn fn, void *ctx, int64_t after, int64_t *ids,
                       float *embs, int *m, char *err) {
    sqlite3 *db = store_reader_get(s);
    sqlite3_stmt *st = NULL;
    int step = SQLITE_DONE;
    *m = 0;
    int rc = store_db_prepare(db,
                              "SELECT id, image, content_type FROM samples"
                              " WHERE fingerprint <> ?1 AND id > ?2 ORDER BY id LIMIT ?3",
                              &st, err);
    if (rc == 0) {
        sqlite3_bind_text(st, 1, s->fingerprint, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, after);
        sqlite3_bind_int(st, 3, REEMBED_BATCH);
    }
    while (rc == 0 && *m < REEMBED_BATCH && (step = sqlite3_step(st)) == SQLITE_ROW) {
        rc = embed_row(s, st, fn, ctx, embs + (size_t)*m * s->dim, &ids[*m], err);
        (*m)++;
    }
    if (rc == 0 && step != SQLITE_DONE && step != SQLITE_ROW)
        rc = store_db_fail(db, step, "reading samples to re-embed", err);
    sqlite3_finalize(st);
    store_reader_put(s, db);
    return rc;
}

int store_reembed(Store *s, StoreEmbedFn fn, void *ctx, int64_t *done, char *err) {
    int64_t missing = 0, total = 0, after = 0;
    int64_t *ids = NULL;
    float *embs = NULL;
    if (done)
        *done = 0;
    if (!fn)
        return sm_err(err, -EINVAL, "re-embed: no embed function");
    int rc = count_missing(s, &missing, err);
    if (rc == 0 && missing > 0)
        rc = sm_err(err, -ENODATA,
                    "%lld samples made by another model have no kept image and cannot be "
                    "re-embedded: delete them or enroll them again",
                    (long long)missing);
    if (rc < 0)
        return rc;
    ids = malloc(REEMBED_BATCH * sizeof *ids);
    embs = malloc((size_t)REEMBED_BATCH * (size_t)s->dim * sizeof *embs);
    if (!ids || !embs) {
        rc = sm_err(err, -ENOMEM, "re-embed: out of memory");
        goto out;
    }
    for (;;) {
        int m = 0;
        rc = embed_batch(s, fn, ctx, after, ids, embs, &m, err);
        if (rc < 0 || m == 0)
            break;
        WriteOp op = {.kind = OP_REEMBED, .ids = ids, .embs = embs, .n = m};
        rc = store_submit(s, &op, err);
        if (rc < 0)
            break;
        total += op.count;
        after = ids[m - 1];
    }
    if (rc == 0 && atomic_load(&s->stale)) {
        WriteOp op = {.kind = OP_RELOAD};
        rc = store_submit(s, &op, err);
        /* Only another process writing old-model samples meanwhile gets here. */
        if (rc == 0 && op.count > 0)
            rc =
                sm_err(err, -EAGAIN, "re-embed: %lld samples from another model appeared meanwhile",
                       (long long)op.count);
    }
    if (total > 0)
        log_info("store: re-embedded %lld samples", (long long)total);
out:
    if (done)
        *done = total;
    free(ids);
    free(embs);
    return rc;
}
