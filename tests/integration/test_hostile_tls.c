/*
 * test_hostile_tls.c — the daemon's HTTPS port against clients that never
 * finish (or abandon) the TLS handshake, and the TLS versions and suites it
 * agrees to:
 *   - handshakes: 8 clients from one address (--max-per-ip 8) each send the
 *     first bytes of a TLS record and close; their slots must come back at
 *     once (no CLOSE-WAIT socket left on the port, a ninth client served);
 *     then 8 clients connect and stay silent: each must be closed within
 *     --connection-timeout (+1.5 s); afterwards the idle daemon must use
 *     next to no CPU (utime+stime from /proc/PID/stat over 3 s);
 *   - a handshake trickled a byte every 0.5 s: cut off at --request-timeout;
 *   - priorities (gnutls-cli, an RSA certificate so that static-RSA key
 *     exchange could be chosen): TLS 1.0 and 1.1, static RSA and CBC suites
 *     refused; TLS 1.2 and 1.3 with ECDHE and an AEAD cipher accepted.
 *
 * usage: test_hostile_tls SIAMESED MKMODEL SRCROOT   (meson passes all three)
 * Figures are printed to stderr with the prefix "hostile_tls:".
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "prove_util.h"

enum { HS_N = 8 };

static void tls_files(const char *kind, char cert[400], char key[400]) {
    snprintf(cert, 400, "%s/tests/data/tls/%scert.pem", H.srcroot, kind);
    snprintf(key, 400, "%s/tests/data/tls/%skey.pem", H.srcroot, kind);
}

/* CPU seconds (user + system) a process has used, -1 if unknown. */
static double cpu_s(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strrchr(buf, ')'); /* the command may hold spaces */
    unsigned long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Sockets in state CLOSE-WAIT (08) whose local port is port (IPv4). */
static int close_wait_count(int port) {
    FILE *f = fopen("/proc/net/tcp", "r");
    char line[512];
    int n = 0;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f)) {
        unsigned lport, state;
        if (sscanf(line, " %*d: %*x:%x %*x:%*x %x", &lport, &state) == 2 && (int)lport == port &&
            state == 0x08)
            n++;
    }
    fclose(f);
    return n;
}

/* Waits up to seconds for the server to close fd; the time it took, or -1. */
static double closed_within(int fd, double t0, double seconds) {
    char b[256];
    while (now_s() - t0 < seconds) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t k = recv(fd, b, sizeof b, MSG_DONTWAIT);
        if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
            return now_s() - t0;
    }
    return -1;
}

static long healthz_tls(const Own *o) {
    Resp r = http(o->d.port, &(Req){.method = "GET", .path = "/healthz", .ca = o->d.ca});
    long s = r.status;
    resp_free(&r);
    return s;
}

START_TEST(abandoned_and_silent_handshakes) {
    char cert[400], key[400];
    tls_files("", cert, key);
    Own o;
    own_init_ok(&o, "tls_hs");
    const char *const extra[] = {
        "--tls-cert",           cert, "--tls-key", key, "--max-per-ip", "8",
        "--connection-timeout", "4",  NULL};
    own_start_ok(&o, H.model_a, extra);
    /* The first 5 bytes of a ClientHello record, then the client goes away. */
    static const unsigned char hello[] = {0x16, 0x03, 0x01, 0x02, 0x00};
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < HS_N; i++) {
            int fd = raw_connect(o.d.port);
            ck_assert_int_ge(fd, 0);
            ck_assert_int_eq(send(fd, hello, sizeof hello, MSG_NOSIGNAL), (ssize_t)sizeof hello);
            close(fd);
        }
    double t0 = now_s();
    long st = healthz_tls(&o);
    while (st != 200 && now_s() - t0 < 2) {
        usleep(50000);
        st = healthz_tls(&o);
    }
    double back = now_s() - t0;
    usleep(500000);
    int cw = close_wait_count(o.d.port);
    fprintf(stderr,
            "hostile_tls: %d clients abandoned the handshake (--max-per-ip 8): served again "
            "after %.0f ms, %d CLOSE-WAIT sockets left 0.5 s later\n",
            3 * HS_N, back * 1e3, cw);
    ck_assert_msg(st == 200, "/healthz not served 2 s after abandoned handshakes (%ld)", st);
    ck_assert_msg(cw == 0, "%d sockets left in CLOSE-WAIT", cw);

    int fd[HS_N];
    t0 = now_s();
    for (int i = 0; i < HS_N; i++)
        ck_assert_int_ge(fd[i] = raw_connect(o.d.port), 0);
    double most = 0;
    int open = 0;
    for (int i = 0; i < HS_N; i++) {
        double t = closed_within(fd[i], t0, 4 + 3);
        open += t < 0;
        most = t > most ? t : most;
        close(fd[i]);
    }
    usleep(500000);
    cw = close_wait_count(o.d.port);
    double c0 = cpu_s(o.d.pid);
    sleep(3);
    double idle = cpu_s(o.d.pid) - c0;
    fprintf(stderr,
            "hostile_tls: %d silent TCP connections on the TLS port, --connection-timeout 4: "
            "%d still open after 7 s, the rest closed after at most %.2f s; %d CLOSE-WAIT "
            "sockets once the client closed them; idle CPU then %.2f s over 3 s\n",
            HS_N, open, most, cw, idle);
    ck_assert_msg(open == 0, "%d silent connections still open after 7 s", open);
    ck_assert_msg(cw == 0, "%d sockets left in CLOSE-WAIT", cw);
    ck_assert_msg(most < 4 + 1.5, "a silent connection was closed only after %.2f s", most);
    ck_assert_msg(c0 >= 0 && idle < 0.15, "the idle daemon used %.2f s of CPU in 3 s", idle);
    ck_assert_int_eq(healthz_tls(&o), 200);
    own_stop_ok(&o);
}
END_TEST

/* Sends a byte every 0.5 s on fd until the server closes it (or limit
 * seconds pass); how long the connection lived, or -1. */
static double trickle_until_closed(int fd, const char *bytes, size_t n, double limit) {
    double t0 = now_s();
    for (size_t i = 0; now_s() - t0 < limit; i++) {
        if (send(fd, bytes + i % n, 1, MSG_NOSIGNAL) != 1)
            return now_s() - t0;
        double t = closed_within(fd, now_s(), 0.5);
        if (t >= 0)
            return now_s() - t0;
    }
    return -1;
}

/* A handshake trickled one byte every 0.5 s (each byte restarts the idle
 * timeout of 4 s) is cut off at --request-timeout 3 all the same. */
START_TEST(trickled_handshake_cut_off) {
    char cert[400], key[400];
    tls_files("", cert, key);
    Own o;
    own_init_ok(&o, "tls_trickle");
    const char *const extra[] = {
        "--tls-cert",        cert, "--tls-key", key, "--connection-timeout", "4",
        "--request-timeout", "3",  NULL};
    own_start_ok(&o, H.model_a, extra);
    /* A ClientHello record header announcing 512 bytes that never all come. */
    static const char hello[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    int fd = raw_connect(o.d.port);
    ck_assert_int_ge(fd, 0);
    double lived = trickle_until_closed(fd, hello, sizeof hello - 1, 10);
    close(fd);
    fprintf(stderr,
            "hostile_tls: a handshake trickled a byte every 0.5 s, --request-timeout 3: closed "
            "after %.2f s\n",
            lived);
    ck_assert_msg(lived >= 2.5 && lived < 3 + 1.5, "the trickled handshake lived %.2f s", lived);
    ck_assert_int_eq(healthz_tls(&o), 200);
    own_stop_ok(&o);
}
END_TEST

/* 1 when gnutls-cli with priority completed a handshake with the daemon. */
static int handshake_ok(int port, const char *priority, char *log, size_t size) {
    char cmd[768];
    snprintf(cmd, sizeof cmd,
             "gnutls-cli --insecure --priority '%s' -p %d 127.0.0.1 </dev/null 2>&1", priority,
             port);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(log, 1, size - 1, p);
    log[n] = 0;
    pclose(p);
    return strstr(log, "Handshake was completed") != NULL;
}

START_TEST(tls_priorities) {
    char cert[400], key[400], log[16384];
    tls_files("rsa-", cert, key);
    Own o;
    own_init_ok(&o, "tls_prio");
    const char *const extra[] = {"--tls-cert", cert, "--tls-key", key, NULL};
    own_start_ok(&o, H.model_a, extra);
    static const struct {
        const char *what, *priority;
        int want;
    } cases[] = {
        {"TLS 1.0", "NORMAL:-VERS-ALL:+VERS-TLS1.0", 0},
        {"TLS 1.1", "NORMAL:-VERS-ALL:+VERS-TLS1.1", 0},
        {"static RSA", "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+RSA", 0},
        {"ECDHE with CBC", "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-CBC:+AES-256-CBC",
         0},
        {"TLS 1.2 ECDHE-RSA AES-GCM",
         "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+ECDHE-RSA:-CIPHER-ALL:+AES-128-GCM", 1},
        {"TLS 1.2 ECDHE-RSA ChaCha20-Poly1305",
         "NORMAL:-VERS-ALL:+VERS-TLS1.2:-KX-ALL:+ECDHE-RSA:-CIPHER-ALL:+CHACHA20-POLY1305", 1},
        {"TLS 1.3", "NORMAL:-VERS-ALL:+VERS-TLS1.3", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int ok = handshake_ok(o.d.port, cases[i].priority, log, sizeof log);
        fprintf(stderr, "hostile_tls: %s (%s): %s\n", cases[i].what, cases[i].priority,
                ok ? "accepted" : "refused");
        ck_assert_msg(ok >= 0, "cannot run gnutls-cli");
        ck_assert_msg(ok == cases[i].want, "%s %s, want %s; gnutls-cli said:\n%.3000s",
                      cases[i].what, ok ? "accepted" : "refused",
                      cases[i].want ? "accepted" : "refused", log);
    }
    ck_assert_int_eq(healthz_tls(&o), 200);
    own_stop_ok(&o);
}
END_TEST

int main(int argc, char **argv) {
    Suite *s = suite_create("hostile_tls");
    TCase *tc = tcase_create("tls");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, abandoned_and_silent_handshakes);
    tcase_add_test(tc, tls_priorities);
    tcase_add_test(tc, trickled_handshake_cut_off);
    suite_add_tcase(s, tc);
    return prove_main(argc, argv, "hostile_tls", s);
}
