/*
 * pg_nodes.c — the shared part of the many-nodes-on-PostgreSQL tests (see
 * pg_nodes.h).
 *
 * Whether this siamesed takes PostgreSQL is asked of the binary itself: a
 * node started on a fresh cluster must have created its schema there. A
 * binary that predates the backend serves a SQLite file named like the URI
 * (inside the scratch root, the working directory) and leaves the database
 * empty; one built without it refuses the URI. Both skip, saying so.
 */
#include "pg_nodes.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* 1 when the log of a refused start says PostgreSQL is not available. */
static int refused_postgres(const char *log) {
    Buf b;
    if (buf_read_file(log, &b) < 0)
        return 0;
    const char *t = (const char *)b.p;
    int yes =
        strcasestr(t, "postgres") && (strcasestr(t, "not supported") || strcasestr(t, "without") ||
                                      strcasestr(t, "unsupported") || strcasestr(t, "not built"));
    buf_free(&b);
    return yes;
}

/* 1 when this siamesed serves --db postgresql://, 0 when it does not (why
 * says so), -1 when the check itself failed (why says so). */
static int backend_present(char *why, size_t size) {
    char err[PG_CLUSTER_ERRMAX], dir[320], log[400];
    PgCluster *pg = NULL;
    if (pg_cluster_start(&pg, 0, err) != 0)
        return snprintf(why, size, "cluster: %s", err), -1;
    if (scratch_dir("probe", dir, sizeof dir) < 0)
        return pg_cluster_stop(pg), snprintf(why, size, "no scratch directory"), -1;
    snprintf(log, sizeof log, "%s/probe.log", dir);
    const char *args[] = {"--model", H.model_a, "--db", pg_cluster_uri(pg), NULL};
    Daemon d;
    int rc = -1;
    long long tables = 0;
    if (daemon_start(&d, log, args) < 0) {
        if (refused_postgres(log))
            rc = 0, snprintf(why, size, "this siamesed refuses --db postgresql:// (see %s)", log);
        else
            snprintf(why, size, "a node on PostgreSQL did not start (see %s)", log);
        log_dump(log);
    } else if (pg_cluster_exec(pg,
                               "SELECT count(*) FROM information_schema.tables WHERE "
                               "table_schema NOT IN ('pg_catalog', 'information_schema')",
                               &tables, err) < 0) {
        snprintf(why, size, "asking the database: %s", err);
    } else {
        rc = tables > 0;
        if (!rc)
            snprintf(why, size,
                     "this siamesed does not speak PostgreSQL: --db postgresql://… made no "
                     "tables in the database (it opened a SQLite file of that name)");
    }
    if (d.pid)
        daemon_stop(&d);
    pg_cluster_stop(pg);
    return rc;
}

int pg_nodes_main(int argc, char **argv, const char *name, Suite *s) {
    char err[PG_CLUSTER_ERRMAX], why[600];
    int rc = pg_cluster_prepare(err);
    if (rc == PG_CLUSTER_ABSENT) {
        printf("SKIP %s: %s\n", name, err);
        return 77;
    }
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", name, err);
        return 1;
    }
    rc = prove_init(argc, argv, name);
    if (rc)
        return rc;
    static char srcroot[4096];
    if (!realpath(H.srcroot, srcroot)) {
        fprintf(stderr, "%s: cannot resolve %s\n", name, H.srcroot);
        return 1;
    }
    H.srcroot = srcroot; /* it must outlive the chdir */
    if (chdir(H.root) != 0) {
        fprintf(stderr, "%s: cannot enter %s\n", name, H.root);
        return 1;
    }
    rc = backend_present(why, sizeof why);
    if (rc <= 0) {
        fprintf(rc == 0 ? stdout : stderr, "%s %s: %s\n", rc == 0 ? "SKIP" : "FAIL", name, why);
        if (rc == 0)
            tree_remove(H.root);
        return rc == 0 ? 77 : 1;
    }
    return prove_run(name, s);
}

PgCluster *cluster_start_ok(int flags) {
    char err[PG_CLUSTER_ERRMAX];
    PgCluster *pg = NULL;
    ck_assert_msg(pg_cluster_start(&pg, flags, err) == 0, "cluster: %s", err);
    return pg;
}

/* Starts o on port (0: any free one). */
static void node_run_ok(Own *o, const PgCluster *pg, int port) {
    const char *args[] = {"--model",          H.model_a,    "--db",
                          pg_cluster_uri(pg), "--api-keys", NODE_KEY ":write",
                          "--threads",        "8",          NULL};
    char log[400];
    snprintf(o->db, sizeof o->db, "%s", pg_cluster_uri(pg));
    snprintf(log, sizeof log, "%s/run%d.log", o->dir, ++o->runs);
    int rc = port ? daemon_start_on(&o->d, port, log, args) : daemon_start(&o->d, log, args);
    if (rc < 0) {
        log_dump(log);
        ck_abort_msg("node %s did not start (wait status 0x%x)", o->dir, o->d.status);
    }
}

void node_start_ok(Own *o, const PgCluster *pg) {
    node_run_ok(o, pg, 0);
}

void node_restart_ok(Own *o, const PgCluster *pg) {
    ck_assert_msg(o->d.pid == 0 && o->d.port > 0, "node %s still runs or never ran", o->dir);
    node_run_ok(o, pg, o->d.port);
}

Resp node_enroll(int port, const char *subject, const Buf *image) {
    Field f[] = {TEXT("subject", subject), IMAGE("image", *image)};
    return post_multipart(port, "/enroll", f, 2, NODE_AUTH);
}

int node_finds(int port, const char *subject, const Buf *image, long *status) {
    Field f[] = {IMAGE("image", *image), TEXT("k", "1")};
    Resp r = post_multipart(port, "/identify", f, 2, NODE_AUTH);
    int found = -1;
    if (status)
        *status = r.status;
    if (r.status == 200 && r.json) {
        const cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "matches"), 0);
        const char *got = m ? jstr(m, "subject") : NULL;
        found = got && strcmp(got, subject) == 0 && jnum(m, "distance") < 1e-3;
    }
    resp_free(&r);
    return found;
}

int is_503_json(const Resp *r) {
    return r->status == 503 && error_code(r) != NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double percentile(double *v, int n, double p) {
    if (n <= 0)
        return NAN;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int i = (int)ceil(p / 100.0 * n) - 1;
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}
