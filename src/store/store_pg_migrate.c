/*
 * store_pg_migrate.c — the PostgreSQL schema migration runner.
 *
 * Migrations are the numbered files in migrations/pg/, compiled into the
 * binary (store_pg_migrations[]). They all run in one transaction that first
 * takes the PG_LOCK_MIGRATE advisory lock, so two daemons starting together
 * against a new database do not both create it: the second waits, then finds
 * it done. A schema_migrations row (version, name, applied_at) records each
 * one; a database newer than the binary is refused with -ENOTSUP, one whose
 * history is not a prefix of the list with -EINVAL.
 */
#include "store_pg_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The applied versions, checked against list; *v receives how many. */
static int history(PGconn *c, const StoreMigration *list, int n, int *v, char *err) {
    PGresult *r = NULL;
    int rc = pg_query(c, "SELECT version::bigint, name FROM schema_migrations ORDER BY version", 0,
                      NULL, NULL, NULL, &r, "reading schema_migrations", err);
    if (rc < 0)
        return rc;
    int rows = PQntuples(r);
    if (rows > n)
        rc = sm_err(err, -ENOTSUP,
                    "database schema version %d is newer than this siamesed knows (%d): "
                    "use a newer siamesed",
                    rows, n);
    for (int i = 0; rc == 0 && i < rows; i++) {
        int64_t ver = 0;
        size_t len = 0;
        const char *name = pg_val_text(r, i, 1, &len);
        if (pg_val_int(r, i, 0, 1, &ver) < 0 || ver != i + 1)
            rc = sm_err(err, -EINVAL, "schema_migrations row %d is not version %d", i + 1, i + 1);
        else if (!name || strcmp(name, list[i].name) != 0)
            rc = sm_err(err, -EINVAL, "schema_migrations row %d does not match migration %s", i + 1,
                        list[i].name);
    }
    *v = rows;
    PQclear(r);
    return rc;
}

static int apply(PGconn *c, const StoreMigration *m, char *err) {
    char what[96], ver[16], now[24];
    snprintf(what, sizeof what, "migration pg/%s", m->name);
    int rc = pg_exec(c, m->sql, 0, NULL, what, err);
    snprintf(ver, sizeof ver, "%d", m->version);
    snprintf(now, sizeof now, "%lld", (long long)store_now_ms());
    const char *vals[] = {ver, m->name, now};
    return rc ? rc
              : pg_exec(c, "INSERT INTO schema_migrations VALUES ($1, $2, $3)", 3, vals, what, err);
}

int pg_migrate(PGconn *c, const StoreMigration *list, int n, int *from, int *to, char *err) {
    int v = 0, rc = store_migrations_valid(list, n, err);
    if (rc == 0)
        rc = pg_exec(c,
                     "BEGIN; SELECT pg_advisory_xact_lock(" PG_LOCK_MIGRATE ");"
                     " CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                     " name text NOT NULL, applied_at bigint NOT NULL)",
                     0, NULL, "starting the migrations", err);
    if (rc == 0)
        rc = history(c, list, n, &v, err);
    if (rc == 0 && from)
        *from = v;
    for (int i = v; rc == 0 && i < n; i++)
        rc = apply(c, &list[i], err);
    if (rc == 0)
        rc = pg_exec(c, "COMMIT", 0, NULL, "committing the migrations", err);
    pg_rollback(c);
    if (rc == 0 && to)
        *to = n;
    return rc;
}
