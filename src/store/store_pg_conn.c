/*
 * store_pg_conn.c — PostgreSQL connections the way the store needs them,
 * queries with their failures turned into errno values and one-line
 * messages, and the checks every result value passes before the store uses
 * it (the database is outside input too).
 *
 * Results come in binary (int8 as 8 big-endian bytes, text as its bytes,
 * bytea raw), so a value's type is its column's type oid and its length,
 * both checked here, rather than whatever a text conversion would accept.
 */
#include "store_pg_int.h"

#include <ctype.h>
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libpq's messages end in a newline and may span lines: one line here. */
static void one_line(const char *in, char *out, size_t size) {
    size_t j = 0;
    for (size_t i = 0; in && in[i] && j + 1 < size; i++)
        out[j++] = in[i] == '\n' || in[i] == '\r' || in[i] == '\t' ? ' ' : in[i];
    while (j > 0 && out[j - 1] == ' ')
        j--;
    out[j] = '\0';
}

/* Server notices ("relation already exists, skipping") are not ours to print. */
static void quiet(void *arg, const char *msg) {}

/* The URI's own options= (NULL if none); freed with PQconninfoFree(*o). */
static const char *uri_options(const char *uri, PQconninfoOption **o) {
    char *msg = NULL;
    *o = PQconninfoParse(uri, &msg);
    PQfreemem(msg);
    for (PQconninfoOption *p = *o; p && p->keyword; p++)
        if (!strcmp(p->keyword, "options"))
            return p->val;
    return NULL;
}

/* SHOW synchronous_commit says on. */
static int durable_check(PGconn *c, char *err) {
    PGresult *r = PQexec(c, "SHOW synchronous_commit");
    if (!r || PQresultStatus(r) != PGRES_TUPLES_OK)
        return pg_fail(c, r, "setting up the connection", err);
    int on = PQntuples(r) == 1 && !strcmp(PQgetvalue(r, 0, 0), "on");
    PQclear(r);
    return on ? 0
              : sm_err(err, -EINVAL,
                       "synchronous_commit is not on for this session (a pooler dropping "
                       "startup options?): commits would not be durable");
}

/*
 * The session, set up once in the connection's parameters, which PQreset()
 * reuses: ours before the URI's (connect_timeout, keepalives: it may
 * override them) and after it (what durability and the store's reading of
 * values need: it may not). A vanished peer (host frozen, network cut) is
 * noticed within about 20 s (tcp_user_timeout, keepalives), not the OS's
 * 2 h; the server ends a session left idle inside a transaction (holding
 * the write lock) after 10 s, and a statement after statement_ms (0: none).
 * The server refuses a connection whose options it cannot apply.
 */
int pg_connect(const char *uri, int statement_ms, PGconn **out, char *err) {
    char why[512], opts[1024];
    PQconninfoOption *o = NULL;
    *out = NULL;
    /* The URI shows in logs, messages and process lists. */
    if (pg_uri_has_password(uri))
        return sm_err(err, -EINVAL,
                      "the db URI holds a password: keep it in ~/.pgpass (or PGPASSFILE, "
                      "PGPASSWORD) instead, where libpq finds it");
    const char *theirs = uri_options(uri, &o);
    int len = snprintf(opts, sizeof opts,
                       "-c idle_in_transaction_session_timeout=10s -c statement_timeout=%d %s"
                       " -c synchronous_commit=on -c TimeZone=UTC",
                       statement_ms, theirs ? theirs : "");
    PQconninfoFree(o);
    if (len < 0 || (size_t)len >= sizeof opts)
        return sm_err(err, -EINVAL, "the db URI's options are too long");
    /* connect_timeout 2 s (libpq's least): a call waits at most that for
     * an unreachable server before its 503. */
    const char *keys[] = {"connect_timeout",
                          "application_name",
                          "keepalives",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          "tcp_user_timeout",
                          "dbname",
                          "options",
                          "client_encoding",
                          NULL};
    /* libpq knows the scheme in lower case only. */
    char *lower = strdup(uri);
    for (size_t i = 0; lower && lower[i] && lower[i] != ':'; i++)
        lower[i] = (char)tolower((unsigned char)lower[i]);
    const char *vals[] = {"2", "siamesed", "1", "10", "5", "2", "20000", lower, opts, "UTF8", NULL};
    PGconn *c = lower ? PQconnectdbParams(keys, vals, 1) : NULL;
    free(lower);
    if (!c)
        return sm_err(err, -ENOMEM, "postgresql: out of memory");
    if (PQstatus(c) != CONNECTION_OK) {
        one_line(PQerrorMessage(c), why, sizeof why);
        PQfinish(c);
        return sm_err(err, -ENOTCONN, "cannot connect to PostgreSQL: %s", why);
    }
    PQsetNoticeProcessor(c, quiet, NULL);
    int rc = durable_check(c, err);
    if (rc < 0) {
        PQfinish(c);
        return rc;
    }
    *out = c;
    return 0;
}

int pg_ensure(PGconn *conn, char *err) {
    char why[512];
    if (PQstatus(conn) == CONNECTION_OK)
        return 0;
    PQreset(conn); /* the same parameters: the same session set-up */
    if (PQstatus(conn) != CONNECTION_OK) {
        one_line(PQerrorMessage(conn), why, sizeof why);
        return sm_err(err, -ENOTCONN, "PostgreSQL unavailable: %s", why);
    }
    return 0;
}

/* The errno for a failed statement, from its SQLSTATE. */
static int errno_of(PGconn *conn, const PGresult *res) {
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (PQstatus(conn) != CONNECTION_OK || !st)
        return -ENOTCONN;
    if (!strcmp(st, "53100"))
        return -ENOSPC;
    if (!strcmp(st, "53200"))
        return -ENOMEM;
    /* Unavailable for now, worth a retry (503): connection exceptions,
     * shutdown and start-up, too many connections and other limits, a
     * read-only server (a standby after a failover), a timeout or a cancel,
     * a lock not granted in time, a serialization failure or deadlock. */
    static const char *const unavailable[] = {"08",    "57P0",  "53",    "25006",
                                              "57014", "55P03", "40001", "40P01"};
    for (size_t i = 0; i < sizeof unavailable / sizeof *unavailable; i++)
        if (!strncmp(st, unavailable[i], strlen(unavailable[i])))
            return -ENOTCONN;
    if (!strncmp(st, "23", 2) || !strncmp(st, "22", 2))
        return -EINVAL; /* integrity constraint, data exception */
    if (!strcmp(st, "42501") || !strncmp(st, "28", 2))
        return -EACCES;
    return -EIO;
}

int pg_fail(PGconn *conn, PGresult *r, const char *what, char *err) {
    char why[512];
    int code = errno_of(conn, r);
    one_line(r ? PQresultErrorMessage(r) : PQerrorMessage(conn), why, sizeof why);
    if (!why[0])
        one_line(PQerrorMessage(conn), why, sizeof why);
    PQclear(r);
    if (code == -ENOSPC)
        return sm_err(err, code, "%s: the database is full (%s)", what, why);
    if (code == -ENOTCONN)
        return sm_err(err, code, "%s: PostgreSQL unavailable (%s)", what, why[0] ? why : "lost");
    return sm_err(err, code, "%s: %s", what, why);
}

int pg_query(PGconn *conn, const char *sql, int n, const char *const *vals, const int *lens,
             const int *bin, PGresult **res, const char *what, char *err) {
    *res = NULL;
    PGresult *r = PQexecParams(conn, sql, n, NULL, vals, lens, bin, 1);
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        *res = r;
        return 0;
    }
    return pg_fail(conn, r, what, err);
}

int pg_exec(PGconn *conn, const char *sql, int n, const char *const *vals, const char *what,
            char *err) {
    PGresult *r = NULL;
    int rc;
    if (n == 0) {
        /* The simple protocol: several statements in one string. */
        r = PQexec(conn, sql);
        ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            PQclear(r);
            return 0;
        }
        return pg_fail(conn, r, what, err);
    }
    rc = pg_query(conn, sql, n, vals, NULL, NULL, &r, what, err);
    PQclear(r);
    return rc;
}

int pg_query_fresh(PGconn *conn, const char *sql, int n, const char *const *vals, PGresult **res,
                   const char *what, char *err) {
    int looked_ok = PQstatus(conn) == CONNECTION_OK;
    int rc = pg_ensure(conn, err);
    if (rc == 0)
        rc = n ? pg_query(conn, sql, n, vals, NULL, NULL, res, what, err)
               : pg_exec(conn, sql, 0, NULL, what, err);
    /* A connection the server cut looks fine until it is used: then one
     * reconnect. At most one per call, so an unreachable server costs a
     * call one connect_timeout, not two. */
    if (rc == -ENOTCONN && looked_ok && PQstatus(conn) != CONNECTION_OK &&
        (rc = pg_ensure(conn, err)) == 0)
        rc = n ? pg_query(conn, sql, n, vals, NULL, NULL, res, what, err)
               : pg_exec(conn, sql, 0, NULL, what, err);
    return rc;
}

void pg_rollback(PGconn *conn) {
    if (conn && PQstatus(conn) == CONNECTION_OK && PQtransactionStatus(conn) != PQTRANS_IDLE)
        PQclear(PQexec(conn, "ROLLBACK"));
}

/* ---- Result values ---- */

int pg_val_int(const PGresult *r, int row, int col, int64_t min, int64_t *out) {
    if (row >= PQntuples(r) || col >= PQnfields(r) || PQgetisnull(r, row, col))
        return -EINVAL;
    const char *v = PQgetvalue(r, row, col);
    int len = PQgetlength(r, row, col);
    int64_t x;
    if (PQftype(r, col) == PG_OID_INT8 && len == 8) {
        uint64_t be;
        memcpy(&be, v, 8);
        x = (int64_t)be64toh(be);
    } else if (PQftype(r, col) == PG_OID_INT4 && len == 4) {
        uint32_t be;
        memcpy(&be, v, 4);
        x = (int32_t)be32toh(be);
    } else {
        return -EINVAL;
    }
    if (x < min)
        return -EINVAL;
    *out = x;
    return 0;
}

const char *pg_val_text(const PGresult *r, int row, int col, size_t *len) {
    *len = 0;
    if (row >= PQntuples(r) || col >= PQnfields(r) || PQgetisnull(r, row, col) ||
        PQftype(r, col) != PG_OID_TEXT)
        return NULL;
    *len = (size_t)PQgetlength(r, row, col);
    return PQgetvalue(r, row, col); /* libpq NUL-terminates every value */
}

const void *pg_val_bytea(const PGresult *r, int row, int col, size_t *len) {
    *len = 0;
    if (row >= PQntuples(r) || col >= PQnfields(r) || PQgetisnull(r, row, col) ||
        PQftype(r, col) != PG_OID_BYTEA)
        return NULL;
    *len = (size_t)PQgetlength(r, row, col);
    return PQgetvalue(r, row, col);
}

int pg_uri_has_password(const char *uri) {
    /* scheme://user:password@hosts/... */
    const char *p = strstr(uri, "://");
    size_t auth = p ? strcspn(p + 3, "/?") : 0; /* the authority */
    const char *at = p ? memchr(p + 3, '@', auth) : NULL;
    if (at && memchr(p + 3, ':', (size_t)(at - (p + 3))))
        return 1;
    /* ... or ?password=... / &password=..., the key percent-encoded or not
     * (libpq decodes keys too). */
    const char *q = strchr(uri, '?');
    for (const char *k = q; k; k = strchr(k + 1, '&')) {
        char key[16];
        size_t n = 0;
        for (const char *c = k + 1; *c && *c != '=' && *c != '&' && n < sizeof key - 1; n++) {
            unsigned v = 0;
            if (c[0] == '%' && sscanf(c + 1, "%2x", &v) == 1 && isxdigit((unsigned char)c[1]) &&
                isxdigit((unsigned char)c[2])) {
                key[n] = (char)v;
                c += 3;
            } else {
                key[n] = *c++;
            }
        }
        key[n] = '\0';
        if (!strcmp(key, "password"))
            return 1;
    }
    return 0;
}
