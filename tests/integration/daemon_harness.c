/*
 * daemon_harness.c — the process, HTTP and body helpers of the daemon
 * integration tests (see daemon_harness.h).
 *
 * Daemons are plain fork+execve children with stdin from /dev/null and
 * stdout/stderr appended to a log file, so a test can look for the message a
 * refused start printed, or for a sanitizer report. The environment is the
 * test's own minus SIAMESED_* variables: siamesed refuses unknown ones, and a
 * developer's settings must not leak into a test daemon.
 */
#include "daemon_harness.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

Harness H;

/* ---- buffers, files, images ---- */

void buf_add(Buf *b, const void *p, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q)
            abort();
        b->p = q, b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
}

void buf_str(Buf *b, const char *s) {
    buf_add(b, s, strlen(s));
}

void buf_printf(Buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort();
    buf_add(b, s, (size_t)n);
    free(s);
}

void buf_free(Buf *b) {
    free(b->p);
    *b = (Buf){0};
}

int buf_read_file(const char *path, Buf *out) {
    FILE *f = fopen(path, "rb");
    char chunk[8192];
    size_t n;
    *out = (Buf){0};
    if (!f)
        return -1;
    buf_add(out, "", 0);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_add(out, chunk, n);
    fclose(f);
    return 0;
}

Buf img_file(const char *name) {
    char path[600];
    Buf b;
    snprintf(path, sizeof path, "%s/tests/data/img/%s", H.srcroot, name);
    if (buf_read_file(path, &b) < 0) {
        fprintf(stderr, "cannot read fixture %s\n", path);
        abort();
    }
    return b;
}

Buf img_pgm(uint32_t seed, int w, int h) {
    Buf b = {0};
    uint32_t x = seed * 2654435761u + 12345u;
    buf_printf(&b, "P5\n%d %d\n255\n", w, h);
    for (int i = 0; i < w * h; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        uint8_t px = (uint8_t)(x >> 24);
        buf_add(&b, &px, 1);
    }
    return b;
}

char *b64(const void *p, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *s = p;
    char *out = malloc(4 * ((n + 2) / 3) + 1), *o = out;
    if (!out)
        abort();
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) |
                     (i + 2 < n ? s[i + 2] : 0);
        *o++ = tab[v >> 18 & 63];
        *o++ = tab[v >> 12 & 63];
        *o++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? tab[v & 63] : '=';
    }
    *o = 0;
    return out;
}

double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int file_has(const char *path, const char *needle) {
    Buf b;
    if (buf_read_file(path, &b) < 0)
        return 0;
    int found = memmem(b.p, b.len, needle, strlen(needle)) != NULL;
    buf_free(&b);
    return found;
}

int log_has_sanitizer_report(const char *log) {
    static const char *const marks[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                        "runtime error:", "WARNING: ThreadSanitizer",
                                        "ERROR: UndefinedBehaviorSanitizer"};
    for (size_t i = 0; i < sizeof marks / sizeof *marks; i++)
        if (file_has(log, marks[i]))
            return 1;
    return 0;
}

void log_dump(const char *log) {
    Buf b;
    if (buf_read_file(log, &b) < 0)
        return;
    size_t from = b.len > 4000 ? b.len - 4000 : 0;
    fprintf(stderr, "---- %s (last %zu bytes) ----\n%s\n----\n", log, b.len - from,
            (char *)b.p + from);
    buf_free(&b);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

void tree_remove(const char *dir) {
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int scratch_dir(const char *tag, char *out, size_t size) {
    if (snprintf(out, size, "%s/%s.XXXXXX", H.root, tag) >= (int)size)
        return -1;
    return mkdtemp(out) ? 0 : -1;
}

/* ---- processes ---- */

/* The environment for children: ours without SIAMESED_* (built once). */
static char **child_env(void) {
    static char **env;
    if (env)
        return env;
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    env = calloc(n + 1, sizeof *env);
    if (!env)
        abort();
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "SIAMESED_", 9) != 0)
            env[k++] = environ[i];
    return env;
}

/* fork+execve of path with argv, output appended to log (or /dev/null). */
static pid_t spawn(const char *path, char *const *argv, const char *log) {
    char **env = child_env();
    pid_t parent = getpid(), pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(126);
    int in = open("/dev/null", O_RDONLY);
    int out = open(log ? log : "/dev/null", O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0)
        _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(out, 2);
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
    execve(path, argv, env);
    dprintf(2, "harness: cannot execute %s: %s\n", path, strerror(errno));
    _exit(127);
}

/* Waits up to seconds for pid: 0 with *status, 1 on timeout, -1 on error. */
static int wait_for(pid_t pid, double seconds, int *status) {
    double until = now_s() + seconds;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
        if (now_s() > until)
            return 1;
        usleep(5000);
    }
}

int exited_ok(int status) {
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int model_make(const char *path, unsigned seed, const char *widths) {
    return model_make_trained(path, seed, widths, NULL);
}

int model_make_trained(const char *path, unsigned seed, const char *widths, const char *training) {
    char s[16];
    snprintf(s, sizeof s, "%u", seed);
    char *argv[] = {(char *)H.mkmodel, (char *)path, s, (char *)(widths ? widths : "128,128,128"),
                    (char *)training,  NULL};
    int st;
    pid_t pid = spawn(H.mkmodel, argv, NULL);
    if (pid < 0 || wait_for(pid, 60, &st) != 0)
        return -1;
    return exited_ok(st) ? 0 : -1;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &n) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/* 1 if what the log gained since offset says the port was taken. */
/* 1 if log holds needle after offset. */
static int log_has_since(const char *log, long offset, const char *needle) {
    Buf b;
    if (buf_read_file(log, &b) < 0)
        return 0;
    int has = (size_t)offset <= b.len &&
              memmem(b.p + offset, b.len - (size_t)offset, needle, strlen(needle)) != NULL;
    buf_free(&b);
    return has;
}

static int port_taken(const char *log, long offset) {
    return log_has_since(log, offset, "cannot listen");
}

/* One start attempt on port: 0 serving, 1 exited, 2 exited on a taken port,
 * -1 no answer in time (killed). */
static int start_once(Daemon *d, int port, const char *const *args) {
    char listen[32];
    char *argv[64];
    int n = 0, threads = 0;
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    argv[n++] = (char *)H.siamesed;
    argv[n++] = "--listen";
    argv[n++] = listen;
    argv[n++] = "--train-if-missing";
    argv[n++] = "no";
    for (int i = 0; args[i] && n < 58; i++) {
        threads |= strcmp(args[i], "--threads") == 0;
        if (strcmp(args[i], "--tls-cert") == 0 && args[i + 1])
            snprintf(d->ca, sizeof d->ca, "%s", args[i + 1]);
        argv[n++] = (char *)args[i];
    }
    if (!threads) {
        argv[n++] = "--threads";
        argv[n++] = "2";
    }
    argv[n] = NULL;
    long offset = file_size(d->log);
    d->port = port;
    d->pid = spawn(H.siamesed, argv, d->log);
    if (d->pid < 0)
        return d->pid = 0, 1;
    double until = now_s() + 60, first_ok = 0;
    while (now_s() < until) {
        if (waitpid(d->pid, &d->status, WNOHANG) == d->pid) {
            d->pid = 0;
            return port_taken(d->log, offset) ? 2 : 1;
        }
        Resp r =
            http(port, &(Req){.method = "GET", .path = "/healthz", .ca = *d->ca ? d->ca : NULL});
        long status = r.status;
        resp_free(&r);
        /* A 200 may come from another test's daemon that holds the port (the
         * machine is shared): it counts once ours says it listens, or has
         * stayed up a second without failing to bind. */
        if (status == 200 && !first_ok)
            first_ok = now_s();
        if (status == 200 &&
            (log_has_since(d->log, offset, "siamesed: listening on") || now_s() - first_ok > 1.0))
            return 0;
        usleep(20000);
    }
    daemon_kill(d);
    return -1;
}

int daemon_start_on(Daemon *d, int port, const char *log, const char *const *args) {
    *d = (Daemon){0};
    snprintf(d->log, sizeof d->log, "%s", log);
    return start_once(d, port, args) == 0 ? 0 : -1;
}

int daemon_start(Daemon *d, const char *log, const char *const *args) {
    *d = (Daemon){0};
    snprintf(d->log, sizeof d->log, "%s", log);
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = free_port();
        if (port <= 0)
            return -1;
        int rc = start_once(d, port, args);
        if (rc != 2)
            return rc == 0 ? 0 : -1;
    }
    return -1;
}

int daemon_stop(Daemon *d) {
    return daemon_signal_stop(d, SIGTERM);
}

int daemon_signal_stop(Daemon *d, int sig) {
    if (!d->pid)
        return d->status;
    kill(d->pid, sig);
    if (wait_for(d->pid, 30, &d->status) != 0) {
        fprintf(stderr, "daemon %d ignored signal %d for 30 s; killing it\n", (int)d->pid, sig);
        return daemon_kill(d);
    }
    d->pid = 0;
    return d->status;
}

int daemon_wait(Daemon *d, double seconds) {
    if (!d->pid)
        return d->status;
    if (wait_for(d->pid, seconds, &d->status) != 0)
        return daemon_kill(d), -1;
    d->pid = 0;
    return d->status;
}

int daemon_kill(Daemon *d) {
    if (!d->pid)
        return d->status;
    kill(d->pid, SIGKILL);
    waitpid(d->pid, &d->status, 0);
    d->pid = 0;
    return d->status;
}

int tool_run(const char *log, const char *const *args) {
    char *argv[64];
    int n = 0, st;
    argv[n++] = (char *)H.siamesed;
    for (int i = 0; args[i] && n < 63; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    pid_t pid = spawn(H.siamesed, argv, log);
    if (pid < 0)
        return -1;
    int rc = wait_for(pid, 120, &st);
    if (rc == 1) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        return -1;
    }
    return rc == 0 ? st : -1;
}
