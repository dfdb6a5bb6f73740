/*
 * pg_cluster.c — throwaway PostgreSQL clusters for tests (see pg_cluster.h).
 *
 * Layout of a cluster's directory (BASE/pgc.XXXXXX, BASE below; short so the
 * socket path stays under the 107 bytes sun_path holds):
 *   data/          the cluster (initdb)
 *   .s.PGSQL.PORT  the server's socket (unix_socket_directories = the dir)
 *   initdb.log, server.log
 * Every cluster of a process is a copy of one template made by initdb on the
 * first start (BASE/pgt.XXXXXX, removed at exit).
 * The server's connection settings are -c options on its command line, not
 * edits of postgresql.conf, so a restart after a kill starts it the same way.
 */
#include "pg_cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct PgCluster {
    char bindir[256];
    char dir[64];
    char uri[256], tcp_uri[128];
    int port, tcp;
    pid_t pid; /* postmaster, 0 when down */
    uid_t uid; /* who runs the server (ours unless we are root) */
    gid_t gid;
    pid_t owner;     /* the process that started it */
    PgCluster *next; /* in live */
};

static int fail(char *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, PG_CLUSTER_ERRMAX, fmt, ap);
        va_end(ap);
    }
    return code;
}

static double mono_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int has_server(const char *bindir) {
    char p[320];
    snprintf(p, sizeof p, "%s/initdb", bindir);
    if (access(p, X_OK) != 0)
        return 0;
    snprintf(p, sizeof p, "%s/postgres", bindir);
    return access(p, X_OK) == 0;
}

/* The first of $PG_BINDIR, `pg_config --bindir`, /usr/lib/postgresql/N/bin
 * (highest N) that holds initdb and postgres. 0, or PG_CLUSTER_ABSENT. */
static int bindir_find(char *out, size_t size, char *err) {
    const char *env = getenv("PG_BINDIR");
    if (env && *env) {
        snprintf(out, size, "%s", env);
        return has_server(out)
                   ? 0
                   : fail(err, PG_CLUSTER_ABSENT, "no initdb/postgres in PG_BINDIR=%s", env);
    }
    FILE *p = popen("pg_config --bindir 2>/dev/null", "r");
    if (p) {
        char line[256] = "";
        int got = fgets(line, sizeof line, p) != NULL;
        pclose(p);
        line[strcspn(line, "\n")] = 0;
        snprintf(out, size, "%s", line);
        if (got && *line && has_server(out))
            return 0;
    }
    glob_t g;
    int best = -1;
    if (glob("/usr/lib/postgresql/*/bin", 0, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            int v = atoi(g.gl_pathv[i] + strlen("/usr/lib/postgresql/"));
            if (v > best && has_server(g.gl_pathv[i]))
                best = v, snprintf(out, size, "%s", g.gl_pathv[i]);
        }
        globfree(&g);
    }
    if (best >= 0)
        return 0;
    return fail(err, PG_CLUSTER_ABSENT,
                "PostgreSQL server binaries not found (PG_BINDIR, pg_config --bindir, "
                "/usr/lib/postgresql/*/bin): install Debian's postgresql");
}

/* As root, the "postgres" user (else "nobody"); otherwise ourselves. */
static int server_user(PgCluster *c, char *err) {
    c->uid = geteuid(), c->gid = getegid();
    if (c->uid != 0)
        return 0;
    struct passwd *pw = getpwnam("postgres");
    if (!pw)
        pw = getpwnam("nobody");
    if (!pw)
        return fail(err, -ENOENT, "running as root and there is no postgres or nobody user");
    c->uid = pw->pw_uid, c->gid = pw->pw_gid;
    return 0;
}

/* fork + execv(argv) as the server user, stdin /dev/null, stdout and stderr
 * appended to log. pdeath: the child gets SIGQUIT when this thread dies.
 * The child's pid, or -errno. */
static pid_t spawn(const PgCluster *c, char *const argv[], const char *log, int pdeath) {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0)
        return pid;
    int in = open("/dev/null", O_RDONLY);
    int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
        _exit(126);
    if (getuid() == 0 && c->uid != 0) {
        if (setgroups(0, NULL) != 0 || setgid(c->gid) != 0 || setuid(c->uid) != 0)
            _exit(126);
    }
    /* After setuid: a change of credentials clears the death signal. */
    if (pdeath && (prctl(PR_SET_PDEATHSIG, SIGQUIT) != 0 || getppid() != parent))
        _exit(126);
    execv(argv[0], argv);
    _exit(127);
}

/* Waits for pid up to seconds; 0 with *status, or -ETIMEDOUT. */
static int wait_for(pid_t pid, double seconds, int *status) {
    double end = mono_s() + seconds;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR)
            return -errno;
        if (mono_s() > end)
            return -ETIMEDOUT;
        usleep(5000);
    }
}

/* The last line of a log, for error messages. */
static void log_tail(const char *path, char *out, size_t size) {
    FILE *f = fopen(path, "r");
    char line[400];
    *out = 0;
    if (!f)
        return;
    while (fgets(line, sizeof line, f))
        if (line[0] != '\n')
            snprintf(out, size, "%s", line);
    fclose(f);
    out[strcspn(out, "\n")] = 0;
}

static int run_initdb(PgCluster *c, char *err) {
    char initdb[320], data[96], log[96], tail[400];
    snprintf(initdb, sizeof initdb, "%s/initdb", c->bindir);
    snprintf(data, sizeof data, "%s/data", c->dir);
    snprintf(log, sizeof log, "%s/initdb.log", c->dir);
    char *argv[] = {initdb, "-D",   data,         "-A",        "trust",           "-U", "postgres",
                    "-E",   "UTF8", "--locale=C", "--no-sync", "--wal-segsize=1", NULL};
    pid_t pid = spawn(c, argv, log, 0);
    int status = 0;
    if (pid < 0)
        return fail(err, pid, "fork for initdb: %s", strerror(-pid));
    if (wait_for(pid, 120, &status) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        return fail(err, -ETIMEDOUT, "initdb did not finish in 120 s");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        log_tail(log, tail, sizeof tail);
        return fail(err, -EIO, "initdb failed (status %d): %s", status, tail);
    }
    return 0;
}

/* A port nobody listens on now (the kernel's choice; racy, hence retries). */
static int free_port(void) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    if (fd < 0)
        return -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* The maintenance database's conninfo (database "postgres"). */
static void admin_conninfo(const PgCluster *c, char *out, size_t size) {
    snprintf(out, size, "host=%s port=%d user=postgres dbname=postgres connect_timeout=5", c->dir,
             c->port);
}

/* Starts the postmaster and waits until it accepts connections. */
static int server_start(PgCluster *c, char *err) {
    char postgres[320], data[96], log[96], port[32], sock[96], listen[64], ci[256], tail[400];
    snprintf(postgres, sizeof postgres, "%s/postgres", c->bindir);
    snprintf(data, sizeof data, "%s/data", c->dir);
    snprintf(log, sizeof log, "%s/server.log", c->dir);
    snprintf(port, sizeof port, "port=%d", c->port);
    snprintf(sock, sizeof sock, "unix_socket_directories=%s", c->dir);
    snprintf(listen, sizeof listen, "listen_addresses=%s", c->tcp ? "127.0.0.1" : "");
    /* Dynamic shared memory in data/, not /dev/shm: a server killed with its
     * test leaves nothing outside the directory. */
    char *argv[] = {postgres,
                    "-D",
                    data,
                    "-c",
                    port,
                    "-c",
                    sock,
                    "-c",
                    listen,
                    "-c",
                    "dynamic_shared_memory_type=mmap",
                    NULL};
    pid_t pid = spawn(c, argv, log, 1);
    if (pid < 0)
        return fail(err, pid, "fork for postgres: %s", strerror(-pid));
    c->pid = pid;
    admin_conninfo(c, ci, sizeof ci);
    for (double end = mono_s() + 60; mono_s() < end; usleep(10000)) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            c->pid = 0;
            log_tail(log, tail, sizeof tail);
            return fail(err, -EIO, "postgres exited at start (status %d): %s", status, tail);
        }
        if (PQping(ci) == PQPING_OK)
            return 0;
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    c->pid = 0;
    return fail(err, -ETIMEDOUT, "postgres did not accept connections within 60 s (see %s)", log);
}

/* Sends sig to the postmaster and reaps it (SIGKILL after seconds). */
static int server_signal(PgCluster *c, int sig, double seconds, char *err) {
    int status = 0;
    if (!c->pid)
        return 0;
    kill(c->pid, sig);
    int rc = wait_for(c->pid, seconds, &status);
    if (rc < 0) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, &status, 0);
    }
    c->pid = 0;
    return rc < 0 ? fail(err, rc, "postgres did not stop within %.0f s (killed)", seconds) : 0;
}

static int admin_exec(const PgCluster *c, const char *sql, char *err) {
    char ci[256];
    admin_conninfo(c, ci, sizeof ci);
    PGconn *db = PQconnectdb(ci);
    int rc = 0;
    if (PQstatus(db) != CONNECTION_OK) {
        rc = fail(err, -EIO, "connect: %s", PQerrorMessage(db));
    } else {
        PGresult *r = PQexec(db, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = fail(err, -EIO, "%s: %s", sql, PQresultErrorMessage(r));
        PQclear(r);
    }
    PQfinish(db);
    return rc;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)ftw;
    if (flag == FTW_DP)
        rmdir(path);
    else
        unlink(path);
    return 0;
}

/* Where clusters go: $PG_CLUSTER_DIR, else /dev/shm when writable (tmpfs:
 * a test then waits for the server, not for a loaded disk; copying a
 * cluster to /tmp took 1.4 s here), else /tmp. */
static const char *base_dir(void) {
    const char *env = getenv("PG_CLUSTER_DIR");
    if (env && *env)
        return env;
    return access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
}

/* A fresh directory (mkdtemp of BASE/prefix.XXXXXX) owned by the server
 * user. */
static int dir_make(PgCluster *c, const char *prefix, char *err) {
    int n = snprintf(c->dir, sizeof c->dir, "%s/%s.XXXXXX", base_dir(), prefix);
    if (n < 0 || (size_t)n >= sizeof c->dir - 20) {
        c->dir[0] = 0;
        return fail(err, -ENAMETOOLONG, "PG_CLUSTER_DIR is too long for a socket path");
    }
    if (!mkdtemp(c->dir)) {
        int e = errno;
        c->dir[0] = 0;
        return fail(err, -e, "mkdtemp in %s: %s", base_dir(), strerror(e));
    }
    if (geteuid() == 0 && chown(c->dir, c->uid, c->gid) != 0)
        return fail(err, -errno, "chown %s: %s", c->dir, strerror(errno));
    return 0;
}

static void dir_remove(const char *dir) {
    if (dir[0])
        nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The process's template cluster: initdb + database "siamesed", cleanly shut
 * down. initdb takes seconds on a loaded machine; a copy of its result takes
 * a tenth of that, so each cluster after the first costs a copy and a start. */
static struct {
    PgCluster c;
    pid_t owner; /* the process that made it removes it at exit */
} template;

static void template_remove(void) {
    if (template.owner == getpid())
        dir_remove(template.c.dir);
}

static int template_make(const PgCluster *like, char *err) {
    if (template.owner)
        return 0;
    PgCluster *t = &template.c;
    *t = *like;
    t->tcp = 0, t->port = 5432;
    int rc = dir_make(t, "pgt", err);
    if (rc == 0)
        rc = run_initdb(t, err);
    if (rc == 0)
        rc = server_start(t, err);
    if (rc == 0)
        rc = admin_exec(t, "CREATE DATABASE siamesed", err);
    int down = server_signal(t, SIGINT, 30, rc == 0 ? err : NULL);
    if (rc == 0)
        rc = down;
    if (rc < 0) {
        dir_remove(t->dir);
        return rc;
    }
    template.owner = getpid();
    atexit(template_remove);
    return 0;
}

/* Copies the template's data/ into c's directory (as the server user, so
 * owner and modes stay what the server demands). */
static int template_copy(const PgCluster *c, char *err) {
    char src[96], dst[96], log[96];
    snprintf(src, sizeof src, "%s/data", template.c.dir);
    snprintf(dst, sizeof dst, "%s/data", c->dir);
    snprintf(log, sizeof log, "%s/initdb.log", c->dir);
    char *argv[] = {"/bin/cp", "-a", src, dst, NULL};
    pid_t pid = spawn(c, argv, log, 0);
    int status = 0;
    if (pid < 0)
        return fail(err, pid, "fork for cp: %s", strerror(-pid));
    if (wait_for(pid, 60, &status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return fail(err, -EIO, "cp -a %s %s failed (status %d)", src, dst, status);
    return 0;
}

/* Creates the directory, the cluster in it (a copy of the template), and
 * starts it. */
static int cluster_create(PgCluster *c, int flags, char *err) {
    int rc = server_user(c, err);
    if (rc == 0)
        rc = template_make(c, err);
    if (rc == 0)
        rc = dir_make(c, "pgc", err);
    if (rc == 0)
        rc = template_copy(c, err);
    if (rc < 0)
        return rc;
    c->tcp = (flags & PG_CLUSTER_TCP) != 0;
    /* A TCP port can be taken between free_port() and the bind: retry. */
    for (int attempt = 0; attempt < 5; attempt++) {
        c->port = c->tcp ? free_port() : 5432;
        if (c->port <= 0)
            return fail(err, -EADDRNOTAVAIL, "no free TCP port");
        rc = server_start(c, err);
        if (rc == 0 || !c->tcp)
            break;
    }
    return rc;
}

int pg_cluster_prepare(char *err) {
    PgCluster c = {0};
    int rc = bindir_find(c.bindir, sizeof c.bindir, err);
    if (rc == 0)
        rc = server_user(&c, err);
    if (rc == 0)
        rc = template_make(&c, err);
    return rc;
}

/* The clusters this process started and has not stopped. A test that exits
 * without pg_cluster_stop (a failed Check assertion ends the test's process
 * with exit()) still stops its servers and removes their directories; a
 * forked child inherits the list but leaves its parent's clusters alone. */
static PgCluster *live;

static void live_reap(void) {
    for (PgCluster *c = live; c; c = c->next)
        if (c->owner == getpid()) {
            server_signal(c, SIGQUIT, 15, NULL);
            dir_remove(c->dir);
        }
}

static void live_add(PgCluster *c) {
    static int registered;
    if (!registered && atexit(live_reap) == 0)
        registered = 1;
    c->owner = getpid();
    c->next = live;
    live = c;
}

static void live_remove(PgCluster *c) {
    for (PgCluster **p = &live; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            return;
        }
}

int pg_cluster_start(PgCluster **out, int flags, char *err) {
    *out = NULL;
    PgCluster *c = calloc(1, sizeof *c);
    if (!c)
        return fail(err, -ENOMEM, "out of memory");
    int rc = 0;
    if (template.owner)
        snprintf(c->bindir, sizeof c->bindir, "%s", template.c.bindir);
    else
        rc = bindir_find(c->bindir, sizeof c->bindir, err);
    if (rc == 0)
        rc = cluster_create(c, flags, err);
    if (rc != 0) {
        pg_cluster_stop(c);
        return rc;
    }
    snprintf(c->uri, sizeof c->uri, "postgresql:///siamesed?host=%s&port=%d&user=postgres", c->dir,
             c->port);
    if (c->tcp)
        snprintf(c->tcp_uri, sizeof c->tcp_uri, "postgresql://postgres@127.0.0.1:%d/siamesed",
                 c->port);
    live_add(c);
    *out = c;
    return 0;
}

void pg_cluster_stop(PgCluster *c) {
    if (!c)
        return;
    live_remove(c);
    /* Immediate: the files go anyway, a shutdown checkpoint would only
     * spend a second syncing them. */
    server_signal(c, SIGQUIT, 15, NULL);
    dir_remove(c->dir);
    free(c);
}

int pg_cluster_restart(PgCluster *c, char *err) {
    int rc = server_signal(c, SIGINT, 30, err);
    if (rc < 0)
        return rc;
    return server_start(c, err);
}

int pg_cluster_kill(PgCluster *c, char *err) {
    if (!c->pid)
        return fail(err, -ESRCH, "the server is not running");
    return server_signal(c, SIGQUIT, 15, err);
}

int pg_cluster_running(const PgCluster *c) {
    return c->pid != 0;
}

const char *pg_cluster_uri(const PgCluster *c) {
    return c->uri;
}

const char *pg_cluster_tcp_uri(const PgCluster *c) {
    return c->tcp ? c->tcp_uri : NULL;
}

const char *pg_cluster_dir(const PgCluster *c) {
    return c->dir;
}

int pg_cluster_port(const PgCluster *c) {
    return c->port;
}

/* The first column of the first row as an integer; 0 or -EIO. */
static int result_int(PGresult *r, long long *out, char *err) {
    if (PQntuples(r) < 1 || PQnfields(r) < 1 || PQgetisnull(r, 0, 0))
        return fail(err, -EIO, "the statement returned no value");
    char *end;
    const char *v = PQgetvalue(r, 0, 0);
    errno = 0;
    *out = strtoll(v, &end, 10);
    if (errno || end == v || *end)
        return fail(err, -EIO, "not an integer: '%.60s'", v);
    return 0;
}

int pg_cluster_exec(const PgCluster *c, const char *sql, long long *out, char *err) {
    PGconn *db = PQconnectdb(c->uri);
    int rc = 0;
    if (PQstatus(db) != CONNECTION_OK) {
        rc = fail(err, -EIO, "connect: %s", PQerrorMessage(db));
        PQfinish(db);
        return rc;
    }
    PGresult *r = PQexec(db, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = fail(err, -EIO, "%s: %s", sql, PQresultErrorMessage(r));
    else if (out)
        rc = result_int(r, out, err);
    PQclear(r);
    PQfinish(db);
    return rc;
}
