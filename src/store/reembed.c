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
    void *db = NULL;
    int rc = store_reader_get(s, &db, err);
    if (rc < 0)
        return rc;
    rc = s->be->reembed_missing(s, db, missing, err);
    store_reader_put(s, db);
    return rc;
}

/* One batch being embedded: where each row's id and embedding go. */
typedef struct {
    StoreEmbedFn fn;
    void *ctx;
    int64_t *ids;
    float *embs;
    int m;
} Batch;

/* Embeds one row into the batch, validating it first. */
static int embed_row(Store *s, const StoreImageRow *r, void *arg, char *err) {
    Batch *b = arg;
    char why[SM_ERRMAX] = "";
    float *emb = b->embs + (size_t)b->m * s->dim;
    if (r->id < 1)
        return sm_err(err, -EINVAL, "a sample row has an invalid id");
    if (!r->image || r->image_len == 0 || r->image_len > STORE_IMAGE_MAX)
        return sm_err(err, -ENODATA, "sample %lld: no kept image to re-embed", (long long)r->id);
    if (!r->content_type || strlen(r->content_type) != r->content_type_len ||
        r->content_type_len > STORE_CONTENT_TYPE_MAX)
        return sm_err(err, -EINVAL, "sample %lld: invalid content type in the database",
                      (long long)r->id);
    int rc = b->fn(b->ctx, r->image, r->image_len, r->content_type, emb, why);
    if (rc < 0)
        return sm_err(err, rc, "sample %lld: %s", (long long)r->id, why);
    for (int j = 0; j < s->dim; j++)
        if (!isfinite(emb[j]))
            return sm_err(err, -EINVAL, "sample %lld: the new embedding is not finite",
                          (long long)r->id);
    b->ids[b->m++] = r->id;
    return 0;
}

/* Embeds the next (up to REEMBED_BATCH) stale samples with ids above after. */
static int embed_batch(Store *s, Batch *b, int64_t after, char *err) {
    void *db = NULL;
    b->m = 0;
    int rc = store_reader_get(s, &db, err);
    if (rc < 0)
        return rc;
    rc = s->be->reembed_rows(s, db, after, REEMBED_BATCH, embed_row, b, err);
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
        Batch b = {.fn = fn, .ctx = ctx, .ids = ids, .embs = embs};
        rc = embed_batch(s, &b, after, err);
        int m = b.m;
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
        WriteOp op = {.kind = OP_RELOAD, .claim = 1};
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
