/*
 * test_hostile_framing.c — request framing that libmicrohttpd 0.9.75 lets
 * through and the daemon must refuse itself (RFC 9112), and the promise that
 * every request gets a status, an access-log line and a metric:
 *   - smuggling: a header line with an empty name (": z") ended the header
 *     block and a DELETE hidden after it ran; now 400 and the subject stays;
 *   - Content-Length with Transfer-Encoding, two Content-Lengths, whitespace
 *     before a colon, a bare CR inside a header, obs-fold: 400 and close;
 *     an unknown Transfer-Encoding 501, an unknown Expect 417, 500 query
 *     parameters 414 (before: no answer at all), all as JSON;
 *   - what libmicrohttpd still answers itself (an invalid Content-Length,
 *     HTTP/2.0, a bare CR in the request line): a status, and a log line and
 *     a metric all the same;
 *   - a request head trickled in byte by byte: cut off at --request-timeout;
 *   - the query caps follow connection_memory: at 4K and 8K, the most
 *     parameters and the longest target are answered, one more is 414 JSON,
 *     never a dropped connection (libmicrohttpd's pool running out);
 *   - the access log line: method, path, status, error code, bytes in and
 *     out, duration and a request id, the id echoed as X-Request-Id.
 *
 * usage: test_hostile_framing SIAMESED MKMODEL SRCROOT   (meson passes all three)
 */
#include <check.h>
#include <ctype.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "prove_util.h"

/* Everything the server sends on a new connection after bytes, until it
 * closes (or 3 s pass: *open set). */
static Buf raw_all(int port, const char *bytes, int *open) {
    Buf b = {0};
    int fd = raw_connect(port);
    ck_assert_int_ge(fd, 0);
    send(fd, bytes, strlen(bytes), MSG_NOSIGNAL);
    double until = now_s() + 3;
    char chunk[4096];
    *open = 1;
    while (now_s() < until) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        ssize_t k = recv(fd, chunk, sizeof chunk, 0);
        if (k <= 0) {
            *open = 0;
            break;
        }
        buf_add(&b, chunk, (size_t)k);
    }
    close(fd);
    return b;
}

static int status_of(const Buf *b) {
    return b->len > 12 && !strncmp((const char *)b->p, "HTTP/1.1 ", 9) ? atoi((char *)b->p + 9) : 0;
}

/* How many responses (status lines) b holds. */
static int responses(const Buf *b) {
    int n = 0;
    for (const char *p = (const char *)b->p; (p = strstr(p, "HTTP/1.1 ")); p++)
        n++;
    return n;
}

static const char *json_code(const Buf *b) {
    static char code[64];
    const char *p = b->p ? strstr((const char *)b->p, "{\"error\":{\"code\":\"") : NULL;
    if (!p)
        return "";
    snprintf(code, sizeof code, "%s", p + 18);
    code[strcspn(code, "\"")] = 0;
    return code;
}

typedef struct {
    const char *what, *bytes;
    int status;
    const char *code; /* JSON error code, or NULL: libmicrohttpd's own page */
} Case;

static int count_lines(const char *log, const char *needle) {
    Buf b = {0};
    int n = 0;
    if (buf_read_file(log, &b) == 0)
        for (const char *p = (const char *)b.p; (p = strstr(p, needle)); p++)
            n++;
    buf_free(&b);
    return n;
}

static double requests_total(int port) {
    Resp r = http_get(port, "/metrics");
    double v = prom_sum(r.body, "siamesed_http_requests_total", NULL);
    resp_free(&r);
    return v;
}

START_TEST(framing_refused) {
    Own o;
    own_init_ok(&o, "framing");
    own_start_ok(&o, H.model_a, NULL);
    Buf img = img_file("fm0_c9.png");
    Field f[] = {TEXT("subject", "victim"), IMAGE("image", img)};
    Resp r = post_multipart(o.d.port, "/enroll", f, 2, NULL);
    ASSERT_JSON(r, 201);
    resp_free(&r);
    buf_free(&img);
    static char many[8192];
    int k = snprintf(many, sizeof many, "GET /subjects?");
    for (int i = 0; i < 500; i++)
        k += snprintf(many + k, sizeof many - (size_t)k, "%sa%d=1", i ? "&" : "", i);
    snprintf(many + k, sizeof many - (size_t)k, " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    const Case cases[] = {
        {"empty header name hiding a DELETE",
         "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n: z\r\nDELETE /subjects/victim HTTP/1.1\r\n"
         "Host: 127.0.0.1\r\n\r\n",
         400, "bad_request"},
        {"Content-Length with chunked",
         "POST /verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
         "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
         400, "bad_request"},
        {"two Content-Lengths",
         "POST /verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
         "Content-Length: 2\r\nContent-Length: 5\r\n\r\n{}",
         400, "bad_request"},
        {"whitespace before a colon", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A : b\r\n\r\n",
         400, "bad_request"},
        {"bare CR inside a header", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\rX-A: b\r\n\r\n", 400,
         "bad_request"},
        {"obs-fold", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: b\r\n c\r\n\r\n", 400,
         "bad_request"},
        {"two Hosts", "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: u\r\n\r\n", 400,
         "bad_request"},
        {"unknown Transfer-Encoding",
         "POST /verify HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501,
         "not_implemented"},
        {"unknown Expect",
         "POST /verify HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: x\r\nContent-Length: 2\r\n\r\n{}",
         417, "expectation_failed"},
        {"500 query parameters", many, 414, "uri_too_long"},
        {"Content-Length 13, 13",
         "POST /verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 13, "
         "13\r\n\r\n{\"a\":1,\"b\":2}",
         400, NULL},
        {"Content-Length +13",
         "POST /verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: +13\r\n\r\n{\"a\":1,\"b\":2}",
         400, NULL},
        {"HTTP/2.0", "GET /healthz HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n", 505, NULL},
        {"bare CR in the request line", "GET /healthz HTTP/1.1\rHost: 127.0.0.1\r\n\r\n", 400,
         NULL},
        {"HTTP/1.1 without Host", "GET /healthz HTTP/1.1\r\n\r\n", 400, NULL},
    };
    int n = (int)(sizeof cases / sizeof *cases);
    usleep(100000); /* requests are counted just after their reply is sent */
    double total0 = requests_total(o.d.port);
    usleep(100000); /* the /metrics line is written after its reply */
    int lines0 = count_lines(o.d.log, " access ");
    for (int i = 0; i < n; i++) {
        int open;
        Buf b = raw_all(o.d.port, cases[i].bytes, &open);
        fprintf(stderr, "hostile_framing: %s -> %d %s%s, %d response(s)%s\n", cases[i].what,
                status_of(&b), cases[i].code ? "JSON " : "", json_code(&b), responses(&b),
                open ? ", connection left open" : "");
        ck_assert_msg(status_of(&b) == cases[i].status, "%s: %.300s", cases[i].what,
                      b.p ? (char *)b.p : "(no answer)");
        if (cases[i].code)
            ck_assert_msg(!strcmp(json_code(&b), cases[i].code), "%s: %.300s", cases[i].what,
                          (char *)b.p);
        ck_assert_msg(!open, "%s: the connection stayed open", cases[i].what);
        if (cases[i].code)
            ck_assert_msg(responses(&b) == 1, "%s: %d responses", cases[i].what, responses(&b));
        buf_free(&b);
    }
    r = http_get(o.d.port, "/subjects/victim");
    ASSERT_JSON(r, 200);
    resp_free(&r);
    usleep(100000);
    int lines = count_lines(o.d.log, " access ") - lines0;
    double counted = requests_total(o.d.port) - total0;
    fprintf(stderr, "hostile_framing: %d requests: %d access-log lines, %.0f counted in /metrics\n",
            n, lines - 1, counted - 2);
    /* GET /subjects/victim is logged and counted too, and so is the first
     * /metrics (after it had rendered its figures). */
    ck_assert_int_eq(lines, n + 1);
    ck_assert_int_eq((int)counted, n + 2);
    own_stop_ok(&o);
}
END_TEST

/* "id=<16 hex>" of the log line holding needle, or "" (static buffer). */
static const char *logged_id(const char *log, const char *needle) {
    static char id[17];
    Buf b = {0};
    id[0] = 0;
    if (buf_read_file(log, &b) == 0) {
        const char *p = strstr((const char *)b.p, needle), *q = p ? strstr(p, " id=") : NULL;
        if (q && (!strchr(p, '\n') || q < strchr(p, '\n')))
            snprintf(id, sizeof id, "%.16s", q + 4);
    }
    buf_free(&b);
    return id;
}

START_TEST(access_log_line) {
    Own o;
    own_init_ok(&o, "accesslog");
    own_start_ok(&o, H.model_a, NULL);
    static const char rq[] = "POST /identify?exact=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                             "application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
    int open;
    Buf b = raw_all(o.d.port, rq, &open);
    ck_assert_int_eq(status_of(&b), 400);
    const char *h = strstr((const char *)b.p, "X-Request-Id: ");
    ck_assert_msg(h, "no X-Request-Id: %.300s", (char *)b.p);
    char id[17];
    snprintf(id, sizeof id, "%.16s", h + 14);
    for (int i = 0; i < 16; i++)
        ck_assert_msg(isxdigit((unsigned char)id[i]), "request id '%s'", id);
    const char *body = strstr((const char *)b.p, "\r\n\r\n") + 4;
    char want[200];
    snprintf(want, sizeof want, " access 127.0.0.1 POST /identify 400 missing_field in=2 out=%zu ",
             strlen(body));
    usleep(100000);
    ck_assert_msg(file_has(o.d.log, want), "no line with '%s'", want);
    ck_assert_str_eq(logged_id(o.d.log, want), id);
    buf_free(&b);
    /* Two requests, two ids. */
    b = raw_all(o.d.port, rq, &open);
    ck_assert_msg(!strstr((const char *)b.p, id), "the request id repeated");
    buf_free(&b);
    own_stop_ok(&o);
}
END_TEST

/* A request head trickled one byte every 0.3 s (each byte restarts the
 * idle timeout) is cut off at --request-timeout 2, logged with nothing
 * (the request line never completed), and the daemon serves on. */
START_TEST(head_trickle_cut_off) {
    Own o;
    own_init_ok(&o, "headtrickle");
    const char *const extra[] = {"--request-timeout", "2", NULL};
    own_start_ok(&o, H.model_a, extra);
    static const char head[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    int fd = raw_connect(o.d.port);
    ck_assert_int_ge(fd, 0);
    double t0 = now_s(), lived = -1;
    for (size_t i = 0; now_s() - t0 < 8; i++) {
        char ch = i < sizeof head - 1 ? head[i] : 'a';
        struct pollfd p = {fd, POLLIN, 0};
        if (send(fd, &ch, 1, MSG_NOSIGNAL) != 1 || poll(&p, 1, 300) > 0) {
            lived = now_s() - t0;
            break;
        }
    }
    close(fd);
    fprintf(stderr, "hostile_framing: a head trickled a byte every 0.3 s: closed after %.2f s\n",
            lived);
    ck_assert_msg(lived >= 1.5 && lived < 2 + 1.5, "the trickled head lived %.2f s", lived);
    Resp r = http_get(o.d.port, "/healthz");
    ASSERT_JSON(r, 200);
    resp_free(&r);
    own_stop_ok(&o);
}
END_TEST

/* GET /subjects?... with params parameters, the target padded to target
 * bytes when longer, and the headers curl sends: the status and the JSON
 * error code the daemon on port answers with (0 and "": no answer). */
static int query_status(int port, int params, size_t target, char code[64]) {
    Buf req = {0};
    buf_str(&req, "GET /subjects?");
    for (int i = 0; i < params; i++)
        buf_printf(&req, "%sp%d=1", i ? "&" : "", i);
    while (req.len - 4 < target) /* the last value grows; "GET " is no part of the target */
        buf_add(&req, "x", 1);
    buf_str(&req, " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/7.88.1\r\nAccept: "
                  "*/*\r\nConnection: close\r\n\r\n");
    int open;
    Buf b = raw_all(port, (const char *)req.p, &open);
    int st = status_of(&b);
    snprintf(code, 64, "%s", json_code(&b));
    buf_free(&req), buf_free(&b);
    return st;
}

START_TEST(query_caps_follow_connection_memory) {
    static const struct {
        const char *memory;
        int params;
        size_t target;
    } pools[] = {{"4K", 16, 1024}, {"8K", 32, 2048}};
    for (size_t i = 0; i < sizeof pools / sizeof *pools; i++) {
        Own o;
        char code[64];
        own_init_ok(&o, "querycap");
        const char *const extra[] = {"--connection-memory", pools[i].memory, NULL};
        own_start_ok(&o, H.model_a, extra);
        int n = pools[i].params, port = o.d.port;
        size_t t = pools[i].target;
        /* At the caps: /subjects refuses the parameters it does not take (400). */
        ck_assert_int_eq(query_status(port, n, 0, code), 400);
        ck_assert_str_eq(code, "unknown_parameter");
        ck_assert_int_eq(query_status(port, 2, t, code), 400);
        ck_assert_str_eq(code, "unknown_parameter");
        /* One past them, and both at once with the target at the pool's half. */
        ck_assert_int_eq(query_status(port, n + 1, 0, code), 414);
        ck_assert_str_eq(code, "uri_too_long");
        ck_assert_int_eq(query_status(port, 2, t + 1, code), 414);
        ck_assert_str_eq(code, "uri_too_long");
        ck_assert_int_eq(query_status(port, 64, 2 * t, code), 414);
        ck_assert_str_eq(code, "uri_too_long");
        fprintf(stderr,
                "hostile_framing: connection_memory %s: %d parameters and %zu bytes "
                "answered, one more 414\n",
                pools[i].memory, n, t);
        own_stop_ok(&o);
    }
}
END_TEST

int main(int argc, char **argv) {
    Suite *s = suite_create("hostile_framing");
    TCase *tc = tcase_create("framing");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, framing_refused);
    tcase_add_test(tc, access_log_line);
    tcase_add_test(tc, head_trickle_cut_off);
    tcase_add_test(tc, query_caps_follow_connection_memory);
    suite_add_tcase(s, tc);
    return prove_main(argc, argv, "hostile_framing", s);
}
