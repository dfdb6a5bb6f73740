/*
 * test_pg_cluster.c — the throwaway PostgreSQL cluster the store and
 * multi-node tests stand on (tests/pg_cluster.h): it starts, answers over its
 * socket and over TCP, keeps committed rows across a restart and across an
 * immediate shutdown (crash recovery), refuses connections while down, and
 * leaves nothing behind, also when its process exits without stopping it. Skips (77) only when
 * PostgreSQL is not installed.
 */
#include <check.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pg_cluster.h"

static char err[PG_CLUSTER_ERRMAX];

/* SELECT 1 through a fresh connection to uri; 1 when it answered 1. */
static int select_one(const char *uri) {
    PGconn *db = PQconnectdb(uri);
    int ok = 0;
    if (PQstatus(db) == CONNECTION_OK) {
        PGresult *r = PQexec(db, "SELECT 1");
        ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
             strcmp(PQgetvalue(r, 0, 0), "1") == 0;
        PQclear(r);
    }
    PQfinish(db);
    return ok;
}

static long long query_int(PgCluster *pg, const char *sql) {
    long long v = -1;
    ck_assert_msg(pg_cluster_exec(pg, sql, &v, err) == 0, "%s: %s", sql, err);
    return v;
}

START_TEST(start_connect_stop) {
    PgCluster *pg = NULL;
    ck_assert_msg(pg_cluster_start(&pg, PG_CLUSTER_TCP, err) == 0, "%s", err);
    char dir[64];
    snprintf(dir, sizeof dir, "%s", pg_cluster_dir(pg));
    char want[160];
    snprintf(want, sizeof want, "postgresql:///siamesed?host=%s&port=%d&user=postgres", dir,
             pg_cluster_port(pg));
    ck_assert_str_eq(pg_cluster_uri(pg), want);
    ck_assert_msg(strstr(dir, "/pgc.") != NULL, "dir %s", dir);
    ck_assert_ptr_nonnull(pg_cluster_tcp_uri(pg));
    ck_assert_int_gt(pg_cluster_port(pg), 0);
    ck_assert(select_one(pg_cluster_uri(pg)));
    ck_assert(select_one(pg_cluster_tcp_uri(pg)));
    /* The database is the one named in the URI, and it is empty. */
    ck_assert_int_eq(query_int(pg, "SELECT count(*) FROM pg_database WHERE datname = "
                                   "current_database() AND datname = 'siamesed'"),
                     1);
    ck_assert_int_eq(query_int(pg, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
                     0);
    /* Durability is the server's default, not weakened for speed. */
    ck_assert_int_eq(query_int(pg, "SELECT (current_setting('fsync') = 'on')::int"), 1);
    pg_cluster_stop(pg);
    struct stat st;
    ck_assert_msg(stat(dir, &st) != 0 && errno == ENOENT, "%s still exists", dir);
}
END_TEST

START_TEST(restart_keeps_rows) {
    PgCluster *pg = NULL;
    ck_assert_msg(pg_cluster_start(&pg, 0, err) == 0, "%s", err);
    ck_assert_ptr_null(pg_cluster_tcp_uri(pg));
    ck_assert_int_eq(pg_cluster_exec(pg, "CREATE TABLE t (x int)", NULL, err), 0);
    ck_assert_int_eq(pg_cluster_exec(pg, "INSERT INTO t VALUES (42)", NULL, err), 0);
    ck_assert_msg(pg_cluster_restart(pg, err) == 0, "%s", err);
    ck_assert(pg_cluster_running(pg));
    ck_assert_int_eq(query_int(pg, "SELECT sum(x) FROM t"), 42);
    /* A bad statement is an error with the server's message, not a value. */
    long long v = 7;
    ck_assert_int_eq(pg_cluster_exec(pg, "SELECT nonsense FROM t", &v, err), -EIO);
    ck_assert_msg(strstr(err, "nonsense") != NULL, "err: %s", err);
    ck_assert_int_eq(v, 7);
    pg_cluster_stop(pg);
}
END_TEST

START_TEST(kill_then_recover) {
    PgCluster *pg = NULL;
    ck_assert_msg(pg_cluster_start(&pg, 0, err) == 0, "%s", err);
    ck_assert_int_eq(pg_cluster_exec(pg, "CREATE TABLE t (x int)", NULL, err), 0);
    ck_assert_int_eq(pg_cluster_exec(pg, "INSERT INTO t SELECT generate_series(1, 100)", NULL, err),
                     0);
    ck_assert_msg(pg_cluster_kill(pg, err) == 0, "%s", err);
    ck_assert(!pg_cluster_running(pg));
    ck_assert(!select_one(pg_cluster_uri(pg)));
    ck_assert_int_eq(pg_cluster_exec(pg, "SELECT 1", NULL, err), -EIO);
    ck_assert_int_eq(pg_cluster_kill(pg, err), -ESRCH);
    ck_assert_msg(pg_cluster_restart(pg, err) == 0, "%s", err);
    /* Committed before the immediate shutdown: recovered from the WAL. */
    ck_assert_int_eq(query_int(pg, "SELECT sum(x) FROM t"), 5050);
    pg_cluster_stop(pg);
}
END_TEST

START_TEST(two_clusters_apart) {
    PgCluster *a = NULL, *b = NULL;
    ck_assert_msg(pg_cluster_start(&a, 0, err) == 0, "%s", err);
    ck_assert_msg(pg_cluster_start(&b, 0, err) == 0, "%s", err);
    ck_assert_str_ne(pg_cluster_dir(a), pg_cluster_dir(b));
    ck_assert_int_eq(pg_cluster_exec(a, "CREATE TABLE only_a (x int)", NULL, err), 0);
    ck_assert_int_eq(query_int(a, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_a'"), 1);
    ck_assert_int_eq(query_int(b, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_a'"), 0);
    pg_cluster_stop(a);
    ck_assert(select_one(pg_cluster_uri(b)));
    pg_cluster_stop(b);
    pg_cluster_stop(NULL);
}
END_TEST

/* A process that exits without pg_cluster_stop (as a test does when an
 * assertion fails) leaves no server and no directory behind. */
START_TEST(exit_cleans_up) {
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        PgCluster *pg = NULL;
        char line[80] = "";
        if (pg_cluster_start(&pg, 0, err) == 0)
            snprintf(line, sizeof line, "%s", pg_cluster_uri(pg));
        if (write(fds[1], line, sizeof line) != (ssize_t)sizeof line)
            _exit(2);
        exit(0); /* not _exit: atexit handlers run, as after a failed check */
    }
    char uri[80] = "";
    ck_assert_int_eq(read(fds[0], uri, sizeof uri), (ssize_t)sizeof uri);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status 0x%x", status);
    ck_assert_msg(*uri, "the child could not start a cluster");
    ck_assert(!select_one(uri));
    char dir[80];
    const char *host = strstr(uri, "host=");
    ck_assert_ptr_nonnull(host);
    snprintf(dir, sizeof dir, "%.*s", (int)strcspn(host + 5, "&"), host + 5);
    struct stat st;
    ck_assert_msg(stat(dir, &st) != 0 && errno == ENOENT, "%s still exists", dir);
    close(fds[0]);
    close(fds[1]);
}
END_TEST

int main(void) {
    int rc = pg_cluster_prepare(err);
    if (rc == PG_CLUSTER_ABSENT) {
        printf("SKIP: %s\n", err);
        return 77;
    }
    if (rc < 0) {
        fprintf(stderr, "pg_cluster_prepare: %s\n", err);
        return 1;
    }
    Suite *s = suite_create("pg_cluster");
    TCase *tc = tcase_create("cluster");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, start_connect_stop);
    tcase_add_test(tc, restart_keeps_rows);
    tcase_add_test(tc, kill_then_recover);
    tcase_add_test(tc, two_clusters_apart);
    tcase_add_test(tc, exit_cleans_up);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
