/*
 * test_daemon_safe.c — safe by default, at start-up:
 *   - a daemon asked to listen on 0.0.0.0 (or ":PORT", every interface) with
 *     no API key does not start: one line naming --api-keys, exit 1, and
 *     nothing created; --allow-anonymous or a key lets the check pass;
 *   - --api-key-file PATH on a first start writes a random 64-character write
 *     key (mode 0600) and logs it once; every route but /healthz then refuses
 *     a missing key and the key works; a restart reuses the file and does not
 *     print the key again; a malformed key file stops the start;
 *   - start-up failures in the user's words: a port in use says so (and not
 *     "or bad TLS files"), a file that is not PEM is named as such, a key
 *     that does not fit the certificate is a TLS problem, not a port one.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon_harness.h"

/* Runs siamesed with args to completion; the wait status. */
static int run_tool(const char *dir, const char *name, const char *const *args, char *log,
                    size_t size) {
    snprintf(log, size, "%s/%s.log", dir, name);
    return tool_run(log, args);
}

/* Asserts that the log is a single line, contains needle and the run exited 1. */
static void refused_one_line(int st, const char *log, const char *needle) {
    Buf b;
    ck_assert_int_eq(buf_read_file(log, &b), 0);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 1, "exit status 0x%x; log: %s", st, b.p);
    ck_assert_msg(strstr((char *)b.p, needle), "no '%s' in: %s", needle, b.p);
    char *nl = strchr((char *)b.p, '\n');
    ck_assert_msg(nl && nl[1] == 0, "not one line: %s", b.p);
    buf_free(&b);
}

START_TEST(exposed_without_keys_refused) {
    char dir[320], db[400], log[400];
    ck_assert_int_eq(scratch_dir("safe-refuse", dir, sizeof dir), 0);
    snprintf(db, sizeof db, "%s/sub/siamesed.db", dir);
    static const char *const listens[] = {"0.0.0.0:0", ":0", "[::]:0"};
    for (size_t i = 0; i < sizeof listens / sizeof *listens; i++) {
        const char *args[] = {"--listen", listens[i],           "--model", H.model_a, "--db",
                              db,         "--train-if-missing", "no",      NULL};
        int st = run_tool(dir, i == 0 ? "any4" : i == 1 ? "port" : "any6", args, log, sizeof log);
        refused_one_line(st, log, "siamesed: refusing to serve");
        ck_assert_msg(file_has(log, "--api-keys") && file_has(log, "--allow-anonymous"),
                      "the message names neither way out");
    }
    /* Nothing was opened: not even the database's directory exists. */
    char sub[400];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    ck_assert_int_ne(access(sub, F_OK), 0);
}
END_TEST

/* --allow-anonymous and a key both pass the check (the run then fails later,
 * on the missing model, which shows it got past it). */
START_TEST(exposed_with_consent_passes_the_check) {
    char dir[320], log[400], missing[400];
    ck_assert_int_eq(scratch_dir("safe-consent", dir, sizeof dir), 0);
    snprintf(missing, sizeof missing, "%s/no-such-model.safetensors", dir);
    const char *anon[] = {"--listen",           ":0", "--model",           missing,
                          "--train-if-missing", "no", "--allow-anonymous", NULL};
    int st = run_tool(dir, "anon", anon, log, sizeof log);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    ck_assert(!file_has(log, "refusing to serve"));
    ck_assert(file_has(log, "no-such-model"));
    const char *keyed[] = {"--listen",
                           "0.0.0.0:0",
                           "--model",
                           missing,
                           "--train-if-missing",
                           "no",
                           "--api-keys",
                           "k-0123456789abcdef:write",
                           NULL};
    st = run_tool(dir, "keyed", keyed, log, sizeof log);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    ck_assert(!file_has(log, "refusing to serve"));
}
END_TEST

/* Every route that is not /healthz, without a key. */
static const char *const keyed_routes[][2] = {
    {"GET", "/model"},         {"GET", "/metrics"},
    {"GET", "/subjects"},      {"GET", "/subjects/x"},
    {"POST", "/verify"},       {"POST", "/embed"},
    {"POST", "/identify"},     {"POST", "/enroll"},
    {"DELETE", "/subjects/x"}, {"DELETE", "/subjects/x/samples/1"},
};

static void check_key_guards(int port, const char *key) {
    char auth[128];
    for (size_t i = 0; i < sizeof keyed_routes / sizeof *keyed_routes; i++) {
        Resp r = http(port, &(Req){.method = keyed_routes[i][0], .path = keyed_routes[i][1]});
        ck_assert_msg(r.status == 401, "%s %s without a key: %ld %s", keyed_routes[i][0],
                      keyed_routes[i][1], r.status, r.body);
        resp_free(&r);
    }
    Resp r = http_get(port, "/healthz");
    ASSERT_STATUS(r, 200);
    resp_free(&r);
    snprintf(auth, sizeof auth, "Bearer %s", key);
    Buf img = img_file("fm0_c9.png");
    Field f[] = {TEXT("subject", "keyfile"), IMAGE("image", img)};
    r = post_multipart(port, "/enroll", f, 2, auth); /* a write key */
    ASSERT_JSON(r, 201);
    resp_free(&r);
    buf_free(&img);
}

/* The key file's key (a static buffer); aborts on anything but 64 hex + \n. */
static const char *key_of(const char *path) {
    static char key[80];
    struct stat st;
    Buf b;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_msg((st.st_mode & 0777) == 0600, "mode %o", st.st_mode & 0777);
    ck_assert_int_eq(buf_read_file(path, &b), 0);
    ck_assert_msg(b.len == 65 && b.p[64] == '\n', "key file of %zu bytes", b.len);
    ck_assert_uint_eq(strspn((char *)b.p, "0123456789abcdef"), 64);
    snprintf(key, sizeof key, "%.64s", (char *)b.p);
    buf_free(&b);
    return key;
}

/* How many times needle occurs in the file. */
static int count_in(const char *path, const char *needle) {
    Buf b;
    int n = 0;
    if (buf_read_file(path, &b) < 0)
        return -1;
    for (const char *p = (char *)b.p; (p = strstr(p, needle)); p++)
        n++;
    buf_free(&b);
    return n;
}

START_TEST(generated_key_file) {
    char dir[320], db[400], kf[400], log[400], key[80];
    Daemon d;
    ck_assert_int_eq(scratch_dir("safe-keyfile", dir, sizeof dir), 0);
    snprintf(db, sizeof db, "%s/siamesed.db", dir);
    snprintf(kf, sizeof kf, "%s/state/api-key", dir);
    const char *args[] = {"--model", H.model_a, "--db", db, "--api-key-file", kf, NULL};
    snprintf(log, sizeof log, "%s/first.log", dir);
    ck_assert_msg(daemon_start(&d, log, args) == 0, "first start failed");
    snprintf(key, sizeof key, "%s", key_of(kf));
    ck_assert_int_eq(count_in(log, key), 1);
    check_key_guards(d.port, key);
    ck_assert(exited_ok(daemon_stop(&d)));
    /* The second start reads the same key and does not print it. */
    snprintf(log, sizeof log, "%s/second.log", dir);
    ck_assert_msg(daemon_start(&d, log, args) == 0, "second start failed");
    ck_assert_str_eq(key_of(kf), key);
    ck_assert_int_eq(count_in(log, key), 0);
    ck_assert(file_has(log, "write API key read from"));
    check_key_guards(d.port, key);
    ck_assert(exited_ok(daemon_stop(&d)));
    /* A key file that holds no valid key stops the start. */
    FILE *f = fopen(kf, "w");
    ck_assert_ptr_nonnull(f);
    fputs("short\n", f);
    fclose(f);
    const char *bad[] = {"--model", H.model_a,  "--db",        db,  "--api-key-file",
                         kf,        "--listen", "127.0.0.1:0", NULL};
    int st = run_tool(dir, "badkey", bad, log, sizeof log);
    refused_one_line(st, log, "key must be 16 to 256 characters");
    ck_assert(file_has(log, kf));
}
END_TEST

/* A listening socket on a free loopback port; its port in *port. */
static int occupy_port(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t n = sizeof a;
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(fd, 4), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &n), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

START_TEST(startup_failures_in_plain_words) {
    char dir[320], db[400], log[400], listen[32], cert[600], key[600];
    int port, fd;
    ck_assert_int_eq(scratch_dir("safe-words", dir, sizeof dir), 0);
    snprintf(db, sizeof db, "%s/siamesed.db", dir);
    snprintf(cert, sizeof cert, "%s/tests/data/tls/cert.pem", H.srcroot);
    snprintf(key, sizeof key, "%s/tests/data/tls/rsa-key.pem", H.srcroot);
    fd = occupy_port(&port);
    snprintf(listen, sizeof listen, "127.0.0.1:%d", port);
    const char *busy[] = {"--listen", listen, "--model", H.model_a, "--db", db, NULL};
    refused_one_line(run_tool(dir, "busy", busy, log, sizeof log), log, "the port is in use");
    ck_assert(!file_has(log, "TLS"));
    /* The same port with TLS files that are not PEM: the files are named first. */
    const char *notpem[] = {"--listen",   listen,    "--model",   H.model_a, "--db", db,
                            "--tls-cert", H.model_a, "--tls-key", key,       NULL};
    refused_one_line(run_tool(dir, "notpem", notpem, log, sizeof log), log,
                     "not a PEM certificate");
    const char *keyascert[] = {"--listen",   "127.0.0.1:0", "--model",   H.model_a, "--db", db,
                               "--tls-cert", cert,          "--tls-key", cert,      NULL};
    refused_one_line(run_tool(dir, "keyascert", keyascert, log, sizeof log), log,
                     "not a PEM private key");
    close(fd);
    /* A key of another certificate: a TLS failure, not a port one. */
    const char *mismatch[] = {"--listen",   "127.0.0.1:0", "--model",   H.model_a, "--db", db,
                              "--tls-cert", cert,          "--tls-key", key,       NULL};
    int st = run_tool(dir, "mismatch", mismatch, log, sizeof log);
    ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    ck_assert(file_has(log, "cannot start HTTPS") && !file_has(log, "in use"));
}
END_TEST

TCase *tcase_safety(void) {
    TCase *tc = tcase_create("safety");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, exposed_without_keys_refused);
    tcase_add_test(tc, exposed_with_consent_passes_the_check);
    tcase_add_test(tc, generated_key_file);
    tcase_add_test(tc, startup_failures_in_plain_words);
    return tc;
}
