/*
 * store_sqlite_migrate.c — opening SQLite connections the way the store needs them, turning
 * SQLite failures into errno values with a message, and the schema migration
 * runner.
 *
 * Migrations are the numbered files in migrations/, compiled into the binary
 * (store_migrations[], generated at build time). A database records how far
 * it got twice: PRAGMA user_version (in the file header, so it changes
 * atomically with the transaction that sets it) and one schema_migrations row
 * per applied migration (version, name, applied_at) for people to read. Each
 * pending migration runs in its own BEGIN IMMEDIATE transaction that re-reads
 * the version first, so two processes opening the same old database cannot
 * both apply the same step.
 */
#include "store_sqlite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int errno_of(int rc) {
    switch (rc & 0xff) {
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return -EACCES;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_CONSTRAINT:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
        return -EINVAL;
    case SQLITE_TOOBIG:
        return -E2BIG;
    case SQLITE_CANTOPEN:
        return -ENOENT;
    default:
        return -EIO;
    }
}

int store_db_fail(sqlite3 *db, int rc, const char *what, char *err) {
    int code = errno_of(rc);
    const char *why = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    int sys = db ? sqlite3_system_errno(db) : 0;
    /* A file we cannot open says more through errno than "unable to open". */
    if ((rc & 0xff) == SQLITE_CANTOPEN && sys > 0) {
        code = -sys;
        why = strerror(sys);
    }
    switch (rc & 0xff) {
    case SQLITE_FULL:
        return sm_err(err, code, "%s: the database is full (disk full or max_bytes reached)", what);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return sm_err(err, code, "%s: the database file is corrupt or not a SQLite database (%s)",
                      what, why);
    default:
        return sm_err(err, code, "%s: %s", what, why);
    }
}

int store_db_exec(sqlite3 *db, const char *sql, char *err) {
    int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : store_db_fail(db, rc, sql, err);
}

int store_db_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err) {
    int rc = sqlite3_prepare_v2(db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? 0 : store_db_fail(db, rc, "prepare", err);
}

void store_db_rollback(sqlite3 *db) {
    if (db && !sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

/* Runs a one-row, one-column pragma and copies its text result into out. */
static int pragma_text(sqlite3 *db, const char *sql, char *out, size_t size, char *err) {
    sqlite3_stmt *st = NULL;
    int rc = store_db_prepare(db, sql, &st, err);
    if (rc < 0)
        return rc;
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(out, size, "%s", t ? (const char *)t : "");
    } else {
        rc = step == SQLITE_DONE ? sm_err(err, -EIO, "%s: no result", sql)
                                 : store_db_fail(db, step, sql, err);
    }
    sqlite3_finalize(st);
    return rc;
}

int store_db_open(const char *path, int create, int busy_ms, sqlite3 **out, char *err) {
    *out = NULL;
    sqlite3 *db = NULL;
    char mode[32];
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    int rc = sqlite3_open_v2(path, &db, flags, NULL);
    if (rc != SQLITE_OK) {
        rc = store_db_fail(db, rc, "open", err);
        goto out;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, busy_ms);
    /* The first statement to read the file: a garbage file fails here. */
    if (create) {
        rc = pragma_text(db, "PRAGMA journal_mode=WAL", mode, sizeof mode, err);
        if (rc == 0 && strcmp(mode, "wal") != 0)
            rc = sm_err(err, -EIO, "journal_mode is \"%s\", not \"wal\" (WAL unsupported here?)",
                        mode);
    } else {
        rc = store_db_exec(db, "PRAGMA query_only=ON", err);
    }
    /* FULL: in WAL mode every commit fsyncs the WAL, so a returned write is
     * durable. The size limit truncates the WAL after a checkpoint. */
    if (rc == 0)
        rc = store_db_exec(db,
                           "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
                           " PRAGMA journal_size_limit=67108864",
                           err);
    if (rc == 0) {
        rc = pragma_text(db, "PRAGMA foreign_keys", mode, sizeof mode, err);
        if (rc == 0 && strcmp(mode, "1") != 0)
            rc = sm_err(err, -ENOTSUP, "this SQLite cannot enforce foreign keys");
    }
out:
    if (rc < 0)
        sqlite3_close(db);
    else
        *out = db;
    return rc;
}

int store_db_check(sqlite3 *db, char *err) {
    char res[256];
    int rc = pragma_text(db, "PRAGMA quick_check", res, sizeof res, err);
    /* SQLite puts line breaks inside its findings; error messages are one line. */
    for (char *p = res; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    if (rc == 0 && strcmp(res, "ok") != 0)
        rc = sm_err(err, -EINVAL, "the database is corrupt: %s", res);
    return rc;
}

static int user_version(sqlite3 *db, int *v, char *err) {
    char text[32];
    int rc = pragma_text(db, "PRAGMA user_version", text, sizeof text, err);
    if (rc == 0)
        *v = (int)strtol(text, NULL, 10);
    return rc;
}

/* Refuses a database newer than list, or whose recorded history is not a
 * prefix of list (a database from another fork of the schema). */
static int history_check(sqlite3 *db, const StoreMigration *list, int n, int v, char *err) {
    if (v > n)
        return sm_err(err, -ENOTSUP,
                      "database schema version %d is newer than this siamesed knows (%d): "
                      "use a newer siamesed",
                      v, n);
    if (v < 0)
        return sm_err(err, -EINVAL, "database schema version %d is invalid", v);
    if (v == 0)
        return 0;
    sqlite3_stmt *st = NULL;
    int rc = store_db_prepare(db, "SELECT version, name FROM schema_migrations ORDER BY version",
                              &st, err);
    int seen = 0, step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 1);
        if (seen >= v || sqlite3_column_int64(st, 0) != seen + 1 || !name ||
            strcmp(name, list[seen].name) != 0)
            rc = sm_err(err, -EINVAL, "schema_migrations row %d does not match migration %s",
                        seen + 1, seen < v ? list[seen].name : "(none)");
        seen++;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = store_db_fail(db, step, "schema_migrations", err);
    if (rc == 0 && seen != v)
        rc = sm_err(err, -EINVAL, "schema_migrations has %d rows but user_version is %d", seen, v);
    sqlite3_finalize(st);
    return rc;
}

/* Runs one migration inside the caller's transaction and records it. */
static int apply(sqlite3 *db, const StoreMigration *m, char *err) {
    char what[96], sql[64];
    snprintf(what, sizeof what, "migration %s", m->name);
    int rc = store_db_exec(db,
                           "CREATE TABLE IF NOT EXISTS schema_migrations ("
                           " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                           " applied_at INTEGER NOT NULL)",
                           err);
    if (rc == 0) {
        int r = sqlite3_exec(db, m->sql, NULL, NULL, NULL);
        if (r != SQLITE_OK)
            rc = store_db_fail(db, r, what, err);
    }
    sqlite3_stmt *st = NULL;
    if (rc == 0)
        rc = store_db_prepare(db, "INSERT INTO schema_migrations VALUES (?1, ?2, ?3)", &st, err);
    if (rc == 0) {
        sqlite3_bind_int(st, 1, m->version);
        sqlite3_bind_text(st, 2, m->name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, store_now_ms());
        int r = sqlite3_step(st);
        if (r != SQLITE_DONE)
            rc = store_db_fail(db, r, what, err);
    }
    sqlite3_finalize(st);
    snprintf(sql, sizeof sql, "PRAGMA user_version=%d", m->version);
    return rc ? rc : store_db_exec(db, sql, err);
}

int store_db_migrate(sqlite3 *db, const StoreMigration *list, int n, int *from, int *to,
                     char *err) {
    int rc = store_migrations_valid(list, n, err);
    int v = 0, first = -1;
    while (rc == 0) {
        rc = store_db_exec(db, "BEGIN IMMEDIATE", err);
        if (rc == 0)
            rc = user_version(db, &v, err);
        if (rc == 0 && first < 0) {
            first = v;
            rc = history_check(db, list, n, v, err);
        }
        if (rc < 0 || v >= n)
            break;
        rc = apply(db, &list[v], err);
        if (rc == 0)
            rc = store_db_exec(db, "COMMIT", err);
        store_db_rollback(db);
    }
    store_db_rollback(db);
    if (rc == 0) {
        if (from)
            *from = first;
        if (to)
            *to = v;
    }
    return rc;
}

int store_migrate_file(const char *path, const StoreMigration *list, int n, int *from, int *to,
                       char *err) {
    sqlite3 *db = NULL;
    char why[SM_ERRMAX] = "";
    int rc = store_db_open(path, 1, 5000, &db, why);
    if (rc == 0)
        rc = store_db_migrate(db, list, n, from, to, why);
    sqlite3_close(db);
    return rc < 0 ? sm_err(err, rc, "%s: %s", path, why) : rc;
}
