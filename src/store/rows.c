/*
 * rows.c — what the store accepts: cursors, fingerprints and metadata from
 * callers (subject ids: subject_id.c), and every database row it reads (the
 * database is outside input too); and loading the index from those rows.
 * store.c (open, reads) and writer.c (the reload after a re-embed) both call
 * it, and it calls neither.
 */
#include "store_int.h"

#include "siamese/log.h"

#include <cjson/cJSON.h>
#include <nettle/base64.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- Row validation: the database is outside input too ---- */

/* The column's type is read before its value: reading converts, and after a
 * conversion sqlite3_column_type() is undefined. */
int store_col_id(sqlite3_stmt *st, int col, char *out) {
    if (sqlite3_column_type(st, col) != SQLITE_TEXT)
        return -EINVAL;
    const char *t = (const char *)sqlite3_column_text(st, col);
    if (!store_subject_id_valid(t))
        return -EINVAL;
    memcpy(out, t, strlen(t) + 1);
    return 0;
}

int store_col_int_min(sqlite3_stmt *st, int col, int64_t min, int64_t *out) {
    if (sqlite3_column_type(st, col) != SQLITE_INTEGER || sqlite3_column_int64(st, col) < min)
        return -EINVAL;
    *out = sqlite3_column_int64(st, col);
    return 0;
}

int store_col_metadata(sqlite3_stmt *st, int col, char **out) {
    *out = NULL;
    int type = sqlite3_column_type(st, col);
    if (type == SQLITE_NULL)
        return 0;
    if (type != SQLITE_TEXT)
        return -EINVAL;
    const char *t = (const char *)sqlite3_column_text(st, col);
    size_t len = (size_t)sqlite3_column_bytes(st, col);
    if (!store_metadata_valid(t, len))
        return -EINVAL;
    *out = strdup(t);
    return *out ? 0 : -ENOMEM;
}

/* Reads one sample row (id, subject_id, fingerprint, embedding) into the
 * index, or counts it as stale when another model made it. */
static int load_row(Store *s, sqlite3_stmt *st, float *emb, int64_t *stale, char *err) {
    int64_t id = 0;
    char subject[STORE_SUBJECT_MAX + 1];
    int fp_type = sqlite3_column_type(st, 2), emb_type = sqlite3_column_type(st, 3);
    const char *fp = (const char *)sqlite3_column_text(st, 2);
    if (store_col_int_min(st, 0, 1, &id) || store_col_id(st, 1, subject) ||
        fp_type != SQLITE_TEXT || !store_fingerprint_valid(fp))
        return sm_err(err, -EINVAL, "sample %lld: invalid id, subject or fingerprint",
                      (long long)id);
    if (strcmp(fp, s->fingerprint) != 0) {
        (*stale)++;
        return 0;
    }
    const void *blob = sqlite3_column_blob(st, 3);
    int bytes = sqlite3_column_bytes(st, 3);
    if (emb_type != SQLITE_BLOB || bytes != s->dim * (int)sizeof(float))
        return sm_err(err, -EINVAL, "sample %lld: embedding of %d bytes, expected %d",
                      (long long)id, bytes, s->dim * (int)sizeof(float));
    memcpy(emb, blob, (size_t)bytes); /* the blob need not be aligned */
    return index_add(s->ix, id, subject, emb, err);
}

static int count_rows(sqlite3 *db, const char *sql, int64_t *out, char *err) {
    sqlite3_stmt *st = NULL;
    int rc = store_db_prepare(db, sql, &st, err);
    if (rc == 0) {
        int step = sqlite3_step(st);
        if (step != SQLITE_ROW)
            rc = store_db_fail(db, step, "count", err);
        else
            *out = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return rc;
}

int store_load_index(Store *s, sqlite3 *db, int64_t *stale, char *err) {
    sqlite3_stmt *st = NULL;
    int64_t subjects = 0, samples = 0, rows = 0;
    float *emb = malloc((size_t)s->dim * sizeof *emb);
    *stale = 0;
    index_clear(s->ix);
    int rc = emb ? store_db_exec(db, "BEGIN", err) : sm_err(err, -ENOMEM, "out of memory");
    if (rc == 0)
        rc = count_rows(db, "SELECT count(*) FROM subjects", &subjects, err);
    if (rc == 0)
        rc = count_rows(db, "SELECT count(*) FROM samples", &samples, err);
    if (rc == 0 && samples > 0)
        rc = index_reserve(s->ix, (size_t)samples, (size_t)subjects, err);
    if (rc == 0)
        rc = store_db_prepare(
            db, "SELECT id, subject_id, fingerprint, embedding FROM samples ORDER BY id", &st, err);
    int step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        rc = load_row(s, st, emb, stale, err);
        rows++;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = store_db_fail(db, step, "loading samples", err);
    sqlite3_finalize(st);
    store_db_rollback(db); /* ends the read transaction */
    if (rc < 0 || *stale > 0)
        index_clear(s->ix);
    if (rc == 0) {
        atomic_store(&s->n_subjects, subjects);
        atomic_store(&s->n_samples, rows);
    }
    free(emb);
    return rc;
}
