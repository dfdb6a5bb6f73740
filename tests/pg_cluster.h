/*
 * pg_cluster.h — a throwaway PostgreSQL server for tests: a fresh cluster
 * (initdb) in a mkdtemp directory ($PG_CLUSTER_DIR, else /dev/shm, else
 * /tmp), its postmaster a child of the test
 * process, reachable on a Unix socket in that directory (and on a free
 * 127.0.0.1 port when asked), with one empty database "siamesed". The real
 * server from Debian's postgresql package, never a mock.
 *
 *   PgCluster *pg = NULL;
 *   char err[PG_CLUSTER_ERRMAX];
 *   int rc = pg_cluster_start(&pg, 0, err);
 *   if (rc == PG_CLUSTER_ABSENT) return 77;    // meson's "skipped"
 *   ... pg_cluster_uri(pg) → "postgresql:///siamesed?host=/dev/shm/pgc.X&port=5432&user=postgres"
 *   pg_cluster_stop(pg);                       // stopped, directory removed
 *
 * Durability is the server's default (fsync on): a test that kills the
 * server and counts what survived tests what production would see. Only
 * initdb runs with --no-sync (its files are not flushed to the disk before
 * the first start: that matters for a power cut, which no test makes, and
 * saves seconds per test program).
 *
 * The postmaster is started directly (not through pg_ctl, which detaches it)
 * with PR_SET_PDEATHSIG(SIGQUIT): when the thread that started it dies (a
 * test that crashed, or was killed by meson's timeout), the server does an
 * immediate shutdown instead of outliving the test. Start a cluster from a
 * thread that lives as long as the cluster (main, or Check's unchecked
 * fixtures). A process that exits without pg_cluster_stop (a failed Check
 * assertion) stops its clusters and removes them in an atexit handler (a
 * killed one leaves the directory). As root (CI containers) the server runs as the "postgres" user
 * ("nobody" when there is none): PostgreSQL refuses to run as root.
 *
 * Binaries: $PG_BINDIR, else `pg_config --bindir`, else the newest
 * /usr/lib/postgresql/N/bin holding initdb and postgres.
 *
 * Not thread-safe: one thread drives a given cluster. Every function that
 * takes err fills it (PG_CLUSTER_ERRMAX bytes) on failure.
 */
#ifndef PG_CLUSTER_H
#define PG_CLUSTER_H

#define PG_CLUSTER_ERRMAX 512
/* pg_cluster_start's result when no PostgreSQL binaries are installed. */
#define PG_CLUSTER_ABSENT 1

enum {
    PG_CLUSTER_TCP = 1, /* also listen on 127.0.0.1 at a free port */
};

typedef struct PgCluster PgCluster;

/* Finds the binaries and makes this process's template cluster (initdb
 * once; every cluster started afterwards is a copy of it, a fraction of a
 * second instead of seconds). Optional (pg_cluster_start does it when
 * needed), but call it in main before Check forks its tests so that they
 * share one template; it is removed when this process exits. 0;
 * PG_CLUSTER_ABSENT when PostgreSQL is not installed (err says where it
 * looked: the one case in which a test skips, exit 77); a negative errno. */
int pg_cluster_prepare(char *err);

/* Creates and starts a cluster (flags: PG_CLUSTER_*) with database
 * "siamesed". 0 with *out set (free with pg_cluster_stop); PG_CLUSTER_ABSENT
 * when initdb/postgres are not installed (*out NULL, err says where it
 * looked); a negative errno otherwise (nothing left behind). */
int pg_cluster_start(PgCluster **out, int flags, char *err);

/* Stops the server (an immediate shutdown: its files go anyway), removes
 * the directory, frees c. NULL is a no-op. */
void pg_cluster_stop(PgCluster *c);

/* Restarts the server on the same socket and port, keeping the data: a
 * fast shutdown when it runs, then a start that waits until it accepts
 * connections (crash recovery included after pg_cluster_kill). 0 or a
 * negative errno. */
int pg_cluster_restart(PgCluster *c, char *err);

/* Immediate shutdown (SIGQUIT to the postmaster: no checkpoint, every
 * session cut, recovery on the next start), as a crash looks to clients.
 * The server stays down until pg_cluster_restart. 0 or a negative errno. */
int pg_cluster_kill(PgCluster *c, char *err);

/* 1 while the postmaster runs. */
int pg_cluster_running(const PgCluster *c);

/* libpq URI of database "siamesed" over the Unix socket. Borrowed: valid
 * until pg_cluster_stop. */
const char *pg_cluster_uri(const PgCluster *c);
/* The same over TCP ("postgresql://postgres@127.0.0.1:PORT/siamesed"), or
 * NULL when started without PG_CLUSTER_TCP. Borrowed like pg_cluster_uri. */
const char *pg_cluster_tcp_uri(const PgCluster *c);
/* The cluster's directory (socket, data/, server.log). Borrowed. */
const char *pg_cluster_dir(const PgCluster *c);
/* The server's port (the socket's name, and the TCP port if any). */
int pg_cluster_port(const PgCluster *c);

/* Runs one SQL statement on database "siamesed" through a new connection;
 * when out is not NULL the statement must return one row whose first column
 * is an integer, stored there. 0, or -EIO with the server's message. */
int pg_cluster_exec(const PgCluster *c, const char *sql, long long *out, char *err);

#endif
