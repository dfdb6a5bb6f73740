/*
 * test_routes.c — unit tests for the route table (src/server/routes.c):
 * which row each method and path reach, the scope each row demands, the
 * metric names rows share, and the 404/405 answers (with the Allow list
 * derived from the table) for paths and methods no row takes.
 */
#include "siamese/common.h"
#include "src/server/routes.h"

#include "check_util.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *method, *path, *name;
    RouteScope scope;
} cases[] = {
    {"POST", "/verify", "verify", ROUTE_READ},
    {"POST", "/enroll", "enroll", ROUTE_WRITE},
    {"POST", "/embed", "embed", ROUTE_READ},
    {"POST", "/identify", "identify", ROUTE_READ},
    {"GET", "/subjects", "subjects", ROUTE_READ},
    {"HEAD", "/subjects", "subjects", ROUTE_READ},
    {"GET", "/subjects/alice", "subject", ROUTE_READ},
    {"DELETE", "/subjects/alice", "subject", ROUTE_WRITE},
    {"DELETE", "/subjects/alice/samples/3", "sample", ROUTE_WRITE},
    {"GET", "/model", "model", ROUTE_READ},
    {"GET", "/healthz", "healthz", ROUTE_PUBLIC},
    {"GET", "/metrics", "metrics", ROUTE_READ},
    {"POST", "/admin/reload", "reload", ROUTE_WRITE},
    {"GET", "/", "page", ROUTE_PUBLIC},
    {"HEAD", "/app.js", "page", ROUTE_PUBLIC},
    {"GET", "/page/settings", "page", ROUTE_PUBLIC},
    /* Nothing else reaches a handler. */
    {"GET", "/verify", "other", ROUTE_READ},
    {"POST", "/subjects", "other", ROUTE_READ},
    {"GET", "/subjects/alice/samples/3", "other", ROUTE_READ},
    {"DELETE", "/subjects/alice/samples", "other", ROUTE_READ},
    {"DELETE", "/subjects/", "other", ROUTE_READ},
    {"GET", "/subjects/", "other", ROUTE_READ},
    {"GET", "/subjects//x", "other", ROUTE_READ},
    {"GET", "/healthz/", "other", ROUTE_READ},
    {"POST", "/", "other", ROUTE_READ},
    {"GET", "/index.html/", "other", ROUTE_READ},
    {"GET", "", "other", ROUTE_READ},
    {"GET", "healthz", "other", ROUTE_READ},
    {"DELETE", "/subjects/a/other/3", "other", ROUTE_READ},
    {"DELETE", "/subjects/a/samples/3/x", "other", ROUTE_READ},
};

START_TEST(test_match) {
    const char *m = cases[_i].method, *p = cases[_i].path;
    const Route *r = route_match(m, p);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(strcmp(route_name(r), cases[_i].name) == 0, "%s %s: %s, want %s", m, p,
                  route_name(r), cases[_i].name);
    ck_assert_msg(route_scope(r) == cases[_i].scope, "%s %s: scope %d", m, p, route_scope(r));
}
END_TEST

START_TEST(test_metrics_shared) {
    /* GET and DELETE /subjects/{id} are one series; "other" is its own. */
    ck_assert_int_eq(route_metric(route_match("GET", "/subjects/a")),
                     route_metric(route_match("DELETE", "/subjects/a")));
    ck_assert_int_ne(route_metric(route_match("GET", "/subjects/a")),
                     route_metric(route_match("GET", "/subjects")));
    int n = route_metric_count(), other = route_metric(route_match("GET", "/nope"));
    /* 17 rows: two share "subject", the page's five share "page"; plus "other". */
    ck_assert_int_eq(n, 13);
    ck_assert_int_eq(route_metric(route_match("GET", "/")),
                     route_metric(route_match("GET", "/page/settings")));
    ck_assert_int_eq(other, n - 1);
    for (size_t i = 0; i < SM_ARRAY_LEN(cases); i++) {
        int k = route_metric(route_match(cases[i].method, cases[i].path));
        ck_assert(k >= 0 && k < n);
    }
}
END_TEST

/* What route_handle() answers for method and path on the "other" route. */
static Reply answer(const char *method, const char *path) {
    HttpReq req = {.method = method, .path = path, .body = (const uint8_t *)""};
    Reply rep = {0};
    route_handle(NULL, route_match(method, path), &req, &rep);
    return rep;
}

START_TEST(test_not_allowed) {
    static const struct {
        const char *method, *path, *allow;
    } c[] = {
        {"GET", "/verify", "POST"},
        {"DELETE", "/subjects", "GET"},
        {"POST", "/subjects/alice", "GET, DELETE"},
        {"GET", "/subjects/alice/samples/1", "DELETE"},
        {"PUT", "/healthz", "GET"},
    };
    for (size_t i = 0; i < SM_ARRAY_LEN(c); i++) {
        Reply rep = answer(c[i].method, c[i].path);
        ck_assert_int_eq(rep.status, 405);
        ck_assert_str_eq(rep.allow, c[i].allow);
        ck_assert_ptr_nonnull(strstr(rep.body, "\"method_not_allowed\""));
        free(rep.body);
    }
    Reply rep = answer("GET", "/subjects/a/nope");
    ck_assert_int_eq(rep.status, 404);
    ck_assert_ptr_null(rep.allow);
    ck_assert_ptr_nonnull(strstr(rep.body, "\"not_found\""));
    free(rep.body);
}
END_TEST

START_TEST(test_unescape) {
    static const struct {
        const char *in, *out;
    } c[] = {
        {"/subjects/%61lice", "/subjects/alice"},
        {"a%2Fb%2fc", "a%2Fb%2fc"}, /* '/' stays escaped */
        {"a%00b", "a%00b"},         /* so does NUL */
        {"%41%4a%4A%7e", "AJJ~"},
        {"%", "%"},
        {"%4", "%4"},
        {"%zz%4g", "%zz%4g"},
        {"%252F", "%2F"}, /* decoded once, not twice */
        {"%C3%A9", "\xc3\xa9"},
        {"", ""},
    };
    for (size_t i = 0; i < SM_ARRAY_LEN(c); i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s", c[i].in);
        size_t n = route_unescape(NULL, NULL, buf);
        ck_assert_msg(strcmp(buf, c[i].out) == 0, "'%s' -> '%s', want '%s'", c[i].in, buf,
                      c[i].out);
        ck_assert_uint_eq(n, strlen(c[i].out));
    }
}
END_TEST

/* ---- route_admit() without keys: Host and Origin ---- */

/* The headers of one fake request: Host and Origin (NULL when absent). */
static const char *fake_host, *fake_origin;

static const char *fake_header(void *conn, const char *name) {
    (void)conn;
    return !strcmp(name, "Host") ? fake_host : !strcmp(name, "Origin") ? fake_origin : NULL;
}
static int fake_count(void *conn, const char *name) {
    return fake_header(conn, name) != NULL;
}
static int fake_keys(void *conn, const char **keys, int max) {
    (void)conn, (void)keys, (void)max;
    return 0;
}

/* What route_admit() answers for GET /subjects with these headers on a
 * keyless daemon listening on listen_host:8080: 0, or the status. */
static int admit(const char *listen_host, const char *host, const char *origin) {
    Config cfg = {.listen = {(char *)listen_host, 8080}};
    Server srv = {.cfg = &cfg};
    fake_host = host, fake_origin = origin;
    HttpReq req = {.method = "GET",
                   .path = "/subjects",
                   .header = fake_header,
                   .header_count = fake_count,
                   .query_keys = fake_keys,
                   .client = "127.0.0.1"};
    Reply rep = {0};
    int refused = route_admit(&srv, route_match("GET", "/subjects"), &req, &rep);
    free(rep.body);
    return refused ? rep.status : 0;
}

/* A store's errors as HTTP: "unavailable, retry" (the database, or the store
 * closing) is a 503 store_unavailable, not a 500. */
START_TEST(test_store_errors_mapped) {
    static const struct {
        int rc, status;
        const char *code;
    } c[] = {{-ENOTCONN, 503, "store_unavailable"},
             {-ESHUTDOWN, 503, "store_unavailable"},
             {-EINPROGRESS, 503, "store_outcome_unknown"},
             {-ESTALE, 503, "store_stale"},
             {-ENOSPC, 507, "insufficient_storage"},
             {-ENOMEM, 503, "out_of_memory"},
             {-EIO, 500, "internal"}};
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        Reply rep = {0};
        reply_internal(&rep, c[i].rc, "enroll", "why");
        ck_assert_int_eq(rep.status, c[i].status);
        ck_assert_str_eq(rep.error, c[i].code);
        free(rep.body);
    }
}
END_TEST

START_TEST(test_admit_host_origin) {
    static const struct {
        const char *listen, *host, *origin;
        int want;
    } c[] = {
        {"127.0.0.1", "127.0.0.1:8080", NULL, 0},
        {"127.0.0.1", "127.0.0.1", NULL, 0},
        {"127.0.0.1", "10.0.0.7:9", NULL, 0}, /* any IP literal: not rebindable */
        {"127.0.0.1", "[::1]:8080", NULL, 0},
        {"127.0.0.1", "[::1]", NULL, 0},
        {"127.0.0.1", "localhost:8080", NULL, 0},
        {"127.0.0.1", "LocalHost", NULL, 0},
        {"myhost", "MYHOST:8080", NULL, 0}, /* the --listen name */
        {"127.0.0.1", NULL, NULL, 0},       /* HTTP/1.0 without Host */
        {"127.0.0.1", "evil.example:8080", NULL, 403},
        {"127.0.0.1", "127.0.0.1.evil.example", NULL, 403},
        {"127.0.0.1", "localhost.evil.example", NULL, 403},
        {"127.0.0.1", "1.2.3", NULL, 403},
        {"127.0.0.1", "localhost:80x", NULL, 403},
        {"127.0.0.1", "", NULL, 403},
        {"127.0.0.1", ":8080", NULL, 403},
        {"127.0.0.1", "[::1]x", NULL, 403},
        {"", "myhost:8080", NULL, 403}, /* every interface: names are refused */
        {"127.0.0.1", "127.0.0.1:8080", "http://127.0.0.1:8080", 0},
        {"127.0.0.1", "127.0.0.1:8080", "https://localhost", 0},
        {"127.0.0.1", "127.0.0.1:8080", "http://evil.example", 403},
        {"127.0.0.1", "127.0.0.1:8080", "null", 403},
        {"127.0.0.1", "127.0.0.1:8080", "file://", 403},
        {"127.0.0.1", "127.0.0.1:8080", "http://", 403},
    };
    for (size_t i = 0; i < SM_ARRAY_LEN(c); i++) {
        int got = admit(c[i].listen, c[i].host, c[i].origin);
        ck_assert_msg(got == c[i].want, "listen '%s', Host '%s', Origin '%s': %d, want %d",
                      c[i].listen, c[i].host ? c[i].host : "(none)",
                      c[i].origin ? c[i].origin : "(none)", got, c[i].want);
    }
}
END_TEST

/* The reference: the fewest of 1..9 significant digits that read back,
 * found by trying each in turn. */
static void f32_text_ref(float v, char buf[32]) {
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, 32, "%.*g", p, (double)v);
        if (strtof(buf, NULL) == v)
            return;
    }
}

START_TEST(test_json_f32_text) {
    static const float fixed[] = {0.0f,          -0.0f,           1.0f,        0.5f,
                                  0.1f,          0.001f,          0.45513123f, 0.046324845f,
                                  3.4028235e38f, 1.17549435e-38f, 1.4e-45f,    16777216.0f,
                                  8.0f,          0.125f,          -2.5f,       1e-5f};
    char got[32], want[32];
    for (size_t i = 0; i < SM_ARRAY_LEN(fixed); i++) {
        json_f32_text(fixed[i], got);
        f32_text_ref(fixed[i], want);
        ck_assert_msg(strcmp(got, want) == 0, "%a: '%s', want '%s'", (double)fixed[i], got, want);
    }
    /* Every power of two (the lopsided intervals and the exact ties) and a spread
     * of bit patterns (5M of them agreed once, by hand; 20k keep the test quick). */
    uint64_t x = 88172645463325252u;
    for (int i = 0; i < 20000; i++) {
        uint32_t bits;
        if (i < 254) {
            bits = (uint32_t)(i + 1) << 23;
        } else {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            bits = (uint32_t)x;
        }
        float v;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v))
            continue;
        json_f32_text(v, got);
        f32_text_ref(v, want);
        ck_assert_msg(strtof(got, NULL) == v, "%a: '%s' does not read back", (double)v, got);
        ck_assert_msg(strcmp(got, want) == 0, "%a: '%s', want '%s'", (double)v, got, want);
    }
    /* And 20k more where the numbers of answers and embeddings live (2^-40 to
     * 2^40), every tie and interval end of the exact integer path among them. */
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint32_t bits = (uint32_t)(x & 0x807fffffu) | (uint32_t)(87 + (x >> 32) % 81) << 23;
        float v;
        memcpy(&v, &bits, sizeof v);
        json_f32_text(v, got);
        f32_text_ref(v, want);
        ck_assert_msg(strcmp(got, want) == 0, "%a: '%s', want '%s'", (double)v, got, want);
    }
    json_f32_text(NAN, got);
    ck_assert_str_eq(got, "null");
    json_f32_text(-INFINITY, got);
    ck_assert_str_eq(got, "null");
    ck_assert(json_f32(0.1f) == 0.1);
}
END_TEST

/* An embedding as one raw array: the same texts, comma-separated, that a
 * JSON reader turns back into the same floats. */
START_TEST(test_json_f32_array) {
    const float v[] = {0.5f, -1.17549435e-38f, 0.046324845f, NAN, 3.4028235e38f, -0.0f, 1e-5f};
    const int n = (int)SM_ARRAY_LEN(v);
    cJSON *a = json_f32_array(v, n);
    ck_assert_ptr_nonnull(a);
    char want[512] = "[", t[32];
    for (int i = 0; i < n; i++) {
        json_f32_text(v[i], t);
        strcat(want, i ? "," : ""), strcat(want, t);
    }
    strcat(want, "]");
    ck_assert_str_eq(a->valuestring, want);
    cJSON *back = cJSON_Parse(a->valuestring);
    ck_assert_int_eq(cJSON_GetArraySize(back), n);
    for (int i = 0; i < n; i++)
        if (!isnan(v[i]))
            ck_assert((float)cJSON_GetArrayItem(back, i)->valuedouble == v[i]);
    cJSON_Delete(back);
    cJSON_Delete(a);
    /* Short arrays of short texts: the last number has the least room left
     * (an overflow here is what ASan would see). */
    for (int k = 1; k <= 3; k++) {
        const float shortv[] = {0.6f, 0.8f, 0.5f};
        cJSON *s = json_f32_array(shortv, k);
        ck_assert_str_eq(s->valuestring, k == 1 ? "[0.6]" : k == 2 ? "[0.6,0.8]" : "[0.6,0.8,0.5]");
        cJSON_Delete(s);
    }
    cJSON *empty = json_f32_array(v, 0);
    ck_assert_str_eq(empty->valuestring, "[]");
    cJSON_Delete(empty);
}
END_TEST

int main(void) {
    Suite *s = suite_create("routes");
    TCase *tc = tcase_create("table");
    /* test_json_f32_text checks 200k floats against a printf reference: ~4 s
     * alone, Check's default timeout, so it timed out under load and ASan. */
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_match, 0, (int)SM_ARRAY_LEN(cases));
    tcase_add_test(tc, test_metrics_shared);
    tcase_add_test(tc, test_not_allowed);
    tcase_add_test(tc, test_store_errors_mapped);
    tcase_add_test(tc, test_unescape);
    tcase_add_test(tc, test_admit_host_origin);
    tcase_add_test(tc, test_json_f32_text);
    tcase_add_test(tc, test_json_f32_array);
    suite_add_tcase(s, tc);
    return check_run(s);
}
