/*
 * peek.c — a look at a database without opening it as a store: which models
 * made its samples, and how many of them still have their image. Start-up
 * checks and `siamesed --info` use it before (or instead of) store_open(), so
 * it opens the file read-only, takes no lock, runs no migration and creates
 * nothing: a database it cannot read is reported, never changed.
 */
#include "store_sqlite.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

/* Groups the rows of samples by fingerprint, most samples first. */
static int peek_rows(sqlite3 *db, StoreModelCount *out, int max, int *n, char *err) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT fingerprint, count(*), count(image) FROM samples "
                                "GROUP BY fingerprint ORDER BY 2 DESC, 1",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) /* no samples table: a database siamesed never wrote to */
        return sqlite3_finalize(st), 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
        const char *fp = (const char *)sqlite3_column_text(st, 0);
        if (!store_fingerprint_valid(fp)) {
            sqlite3_finalize(st);
            return sm_err(err, -EINVAL, "a sample row has a malformed model fingerprint");
        }
        StoreModelCount *c = &out[(*n)++];
        memcpy(c->fingerprint, fp, STORE_FINGERPRINT_LEN + 1);
        c->samples = sqlite3_column_int64(st, 1);
        c->with_image = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_db_fail(db, rc, "read samples", err);
}

int store_peek(const char *path, StoreModelCount *out, int max, int *n, char *err) {
    struct stat sb;
    sqlite3 *db = NULL;
    *n = 0;
    if (store_db_is_postgres(path))
        return store_pg_peek(path, out, max, n, err);
    if (stat(path, &sb) < 0)
        return errno == ENOENT ? SM_ABSENT : sm_err(err, -errno, "%s: %s", path, strerror(errno));
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc != SQLITE_OK)
        rc = store_db_fail(db, rc, "open", err);
    else
        rc = peek_rows(db, out, max, n, err);
    sqlite3_close(db);
    if (rc < 0) {
        char why[SM_ERRMAX];
        snprintf(why, sizeof why, "%s", err ? err : "");
        sm_err(err, rc, "%s: %s", path, why);
    }
    return rc;
}
