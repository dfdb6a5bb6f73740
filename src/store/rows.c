/*
 * rows.c — what the store accepts: cursors, fingerprints and metadata from
 * callers (subject ids: subject_id.c), and every database row it reads (the
 * database is outside input too); and loading the index from those rows.
 * The backends hand it values (text with its length, blobs), never their
 * statements, so that one set of checks serves SQLite and PostgreSQL.
 * store.c (open) and writer.c (the reload after a re-embed) both call it,
 * and it calls neither. The rows' clock (store_now_ms) lives here too, so
 * that the backends' files need nothing from store.c.
 */
#include "store_int.h"

#include "siamese/log.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <nettle/base64.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int store_fingerprint_valid(const char *s) {
    if (!s)
        return 0;
    size_t n = 0;
    for (; s[n]; n++)
        if (n >= STORE_FINGERPRINT_LEN ||
            !((s[n] >= '0' && s[n] <= '9') || (s[n] >= 'a' && s[n] <= 'f')))
            return 0;
    return n == STORE_FINGERPRINT_LEN;
}

int store_migrations_valid(const StoreMigration *list, int n, char *err) {
    if (n < 1 || !list)
        return sm_err(err, -EINVAL, "migrations: the list is empty");
    for (int i = 0; i < n; i++)
        if (list[i].version != i + 1 || !list[i].name || !list[i].sql)
            return sm_err(err, -EINVAL,
                          "migrations: entry %d is not version %d with a name and SQL", i, i + 1);
    return 0;
}

int store_metadata_valid(const char *text, size_t len) {
    if (!text || len > STORE_METADATA_MAX || strlen(text) != len)
        return 0;
    /* len + 1 takes in the NUL, so that trailing garbage is refused. */
    cJSON *j = cJSON_ParseWithLengthOpts(text, len + 1, NULL, 1);
    int ok = cJSON_IsObject(j);
    cJSON_Delete(j);
    return ok;
}

int store_cursor_encode(const char *id, char *out, char *err) {
    if (!store_subject_id_valid(id))
        return sm_err(err, -EINVAL, "cursor: invalid subject id");
    char buf[BASE64_ENCODE_LENGTH(STORE_SUBJECT_MAX) + BASE64_ENCODE_FINAL_LENGTH];
    struct base64_encode_ctx ctx;
    base64url_encode_init(&ctx);
    size_t n = base64_encode_update(&ctx, buf, strlen(id), (const uint8_t *)id);
    n += base64_encode_final(&ctx, buf + n);
    while (n > 0 && buf[n - 1] == '=')
        n--;
    memcpy(out, buf, n);
    out[n] = '\0';
    return 0;
}

int store_cursor_decode(const char *cursor, char *id, char *err) {
    char padded[STORE_CURSOR_SIZE + 3], again[STORE_CURSOR_SIZE];
    uint8_t raw[BASE64_DECODE_LENGTH(sizeof padded) + 1];
    size_t len = cursor ? strnlen(cursor, STORE_CURSOR_SIZE) : 0, n = 0;
    id[0] = '\0';
    if (len == 0 || len >= STORE_CURSOR_SIZE || len % 4 == 1)
        return sm_err(err, -EINVAL, "invalid cursor");
    for (size_t i = 0; i < len; i++) {
        char c = cursor[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return sm_err(err, -EINVAL, "invalid cursor");
    }
    memcpy(padded, cursor, len);
    while (len % 4)
        padded[len++] = '=';
    struct base64_decode_ctx ctx;
    base64url_decode_init(&ctx);
    if (!base64_decode_update(&ctx, &n, raw, len, padded) || !base64_decode_final(&ctx) ||
        n > STORE_SUBJECT_MAX)
        return sm_err(err, -EINVAL, "invalid cursor");
    raw[n] = '\0';
    /* Only the canonical encoding of a valid id: no NUL inside, no stray bits. */
    if (strlen((char *)raw) != n || store_cursor_encode((char *)raw, again, NULL) < 0 ||
        strcmp(again, cursor) != 0)
        return sm_err(err, -EINVAL, "invalid cursor");
    memcpy(id, raw, n + 1);
    return 0;
}

/* ---- Values read from the database: outside input too ---- */

int store_val_id(const char *text, size_t len, char *out) {
    if (!text || strlen(text) != len || !store_subject_id_valid(text))
        return -EINVAL;
    memcpy(out, text, len + 1);
    return 0;
}

int store_val_metadata(const char *text, size_t len, char **out) {
    *out = NULL;
    if (!text)
        return 0;
    if (!store_metadata_valid(text, len))
        return -EINVAL;
    *out = strdup(text);
    return *out ? 0 : -ENOMEM;
}

struct StoreLoader {
    Store *s;
    Index *ix;  /* the fresh index being filled; after publishing, the old one */
    float *emb; /* one aligned embedding */
    int64_t stale, rows, subjects, samples;
    int published;
};

int store_loader_counts(StoreLoader *l, int64_t subjects, int64_t samples, char *err) {
    if (subjects < 0 || samples < 0)
        return sm_err(err, -EINVAL, "invalid subject or sample count");
    l->subjects = subjects;
    l->samples = samples;
    return samples > 0 ? index_reserve(l->ix, (size_t)samples, (size_t)subjects, err) : 0;
}

/* Adds one sample row to the index, or counts it as stale when another
 * model made it. */
int store_loader_row(StoreLoader *l, const StoreRow *r, char *err) {
    Store *s = l->s;
    char subject[STORE_SUBJECT_MAX + 1];
    size_t want = (size_t)s->dim * sizeof(float);
    l->rows++;
    if (r->id < 1 || store_val_id(r->subject, r->subject_len, subject) || !r->fingerprint ||
        strlen(r->fingerprint) != r->fingerprint_len || !store_fingerprint_valid(r->fingerprint))
        return sm_err(err, -EINVAL, "sample %lld: invalid id, subject or fingerprint",
                      (long long)r->id);
    if (strcmp(r->fingerprint, s->fingerprint) != 0) {
        l->stale++;
        return 0;
    }
    if (!r->emb || r->emb_bytes != want)
        return sm_err(err, -EINVAL, "sample %lld: embedding of %zu bytes, expected %zu",
                      (long long)r->id, r->emb ? r->emb_bytes : 0, want);
    memcpy(l->emb, r->emb, want); /* the blob need not be aligned */
    return index_add(l->ix, r->id, subject, l->emb, err);
}

void store_loader_publish(StoreLoader *l) {
    Store *s = l->s;
    assert(!l->published);
    if (l->stale > 0)
        index_clear(l->ix); /* another model's samples: nothing to compare with */
    pthread_rwlock_wrlock(&s->ixlock);
    Index *old = s->ix;
    s->ix = l->ix;
    atomic_store(&s->n_subjects, l->subjects);
    atomic_store(&s->n_samples, l->rows);
    atomic_store(&s->stale, l->stale > 0);
    atomic_store(&s->behind, 0);
    pthread_rwlock_unlock(&s->ixlock);
    l->ix = old;
    l->published = 1;
}

int store_load_index(Store *s, int claim, int64_t *stale, char *err) {
    StoreLoader l = {.s = s, .emb = malloc((size_t)s->dim * sizeof(float))};
    *stale = 0;
    int rc = l.emb ? index_create(s->dim, &l.ix, err) : sm_err(err, -ENOMEM, "out of memory");
    if (rc == 0)
        rc = s->be->load(s, &l, claim, err);
    if (rc == 0 && !l.published)
        store_loader_publish(&l);
    *stale = l.stale;
    index_free(l.ix); /* the old index, or the new one that failed to load */
    free(l.emb);
    return rc;
}

int64_t store_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
