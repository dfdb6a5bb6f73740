/*
 * test_daemon_access.c — who may call what, and what the API document
 * promises, on a daemon started with one read key and one write key:
 *   - every route but /healthz refuses a missing, malformed or unknown key
 *     (401 with a Bearer challenge) and a read key on a writing route (403);
 *     a read key works on reading routes, the write key everywhere;
 *   - docs/openapi.yaml: every (path, method) it lists exists on the daemon
 *     (not the route table's 404 nor a 405) and answers JSON (text for
 *     /metrics), and every route of the daemon is in the document, so the
 *     two cannot drift apart.
 */
#include <check.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon_harness.h"

#define RKEY "rkey-0123456789abcdef"
#define WKEY "wkey-0123456789abcdef"
#define AUTH_R "Bearer " RKEY
#define AUTH_W "Bearer " WKEY

static Shared S;
#define P (S.d.port)

static void access_setup(void) {
    const char *const extra[] = {"--api-keys", RKEY ":read," WKEY ":write", NULL};
    shared_start(&S, "access", extra);
}
static void access_teardown(void) {
    shared_stop(&S);
}

/* Every route of the daemon: what it takes and what it answers when allowed. */
typedef enum { B_NONE, B_VERIFY, B_EMBED, B_IDENTIFY, B_ENROLL } BodyKind;
typedef struct {
    const char *method, *path; /* {sample} is replaced by a real sample id */
    int write;
    BodyKind body;
    int status;
} Route;

static const Route routes[] = {
    {"GET", "/model", 0, B_NONE, 200},
    {"GET", "/metrics", 0, B_NONE, 200},
    {"GET", "/subjects", 0, B_NONE, 200},
    {"GET", "/subjects/auth-keep", 0, B_NONE, 200},
    {"POST", "/verify", 0, B_VERIFY, 200},
    {"POST", "/embed", 0, B_EMBED, 200},
    {"POST", "/identify", 0, B_IDENTIFY, 200},
    {"POST", "/enroll", 1, B_ENROLL, 201},
    {"DELETE", "/subjects/auth-smp/samples/{sample}", 1, B_NONE, 200},
    {"DELETE", "/subjects/auth-del", 1, B_NONE, 200},
};

static Buf img;

/* Sends route rt with the Authorization value auth (NULL: none). */
static Resp call(const Route *rt, const char *path, const char *auth) {
    Field f[3];
    int n = 0;
    switch (rt->body) {
    case B_VERIFY:
        f[n++] = IMAGE("a", img), f[n++] = IMAGE("b", img);
        break;
    case B_EMBED:
    case B_IDENTIFY:
        f[n++] = IMAGE("image", img);
        break;
    case B_ENROLL:
        f[n++] = TEXT("subject", "auth-enroll"), f[n++] = IMAGE("image", img);
        break;
    case B_NONE:
        return http(P, &(Req){.method = rt->method, .path = path, .auth = auth});
    }
    return post_multipart(P, path, f, n, auth);
}

/* Enrolls n copies of img under subject with the write key; the first id. */
static double enroll_w(const char *subject, int n) {
    Field f[4] = {TEXT("subject", subject), IMAGE("image", img), IMAGE("image", img),
                  IMAGE("image", img)};
    Resp r = post_multipart(P, "/enroll", f, n + 1, AUTH_W);
    ASSERT_JSON(r, 201);
    double id = jnum(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "samples"), 0), "sample");
    resp_free(&r);
    return id;
}

/* Asserts a 401/403 reply with its error code and, for 401, the challenge. */
static void refused(const Resp *r, int status, const char *what) {
    ck_assert_msg(r->status == status, "%s: status %ld, want %d; %s", what, r->status, status,
                  r->body);
    ck_assert_msg(error_code(r) != NULL, "%s: not an error body: %s", what, r->body);
    ck_assert_str_eq(error_code(r), status == 401 ? "unauthorized" : "forbidden");
    if (status == 401)
        ck_assert_msg(strncasecmp(r->www_auth, "Bearer", 6) == 0, "%s: WWW-Authenticate '%s'", what,
                      r->www_auth);
}

START_TEST(api_keys_per_route) {
    ck_assert_msg(P > 0, "the shared daemon did not start");
    img = img_file("fm0_c9.png");
    enroll_w("auth-keep", 1);
    enroll_w("auth-del", 1);
    double sample = enroll_w("auth-smp", 2);
    static const char *const bad[] = {NULL,
                                      "Bearer wrong-key-0123456789abcdef",
                                      "Basic dXNlcjpwYXNzd29yZA==",
                                      "Bearer",
                                      "Bearer " RKEY "x",
                                      RKEY};
    for (size_t i = 0; i < sizeof routes / sizeof *routes; i++) {
        const Route *rt = &routes[i];
        char path[128], what[200];
        const char *s = strstr(rt->path, "{sample}");
        if (s)
            snprintf(path, sizeof path, "%.*s%.0f", (int)(s - rt->path), rt->path, sample);
        else
            snprintf(path, sizeof path, "%s", rt->path);
        for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
            Resp r = call(rt, path, bad[k]);
            snprintf(what, sizeof what, "%s %s with '%s'", rt->method, path, bad[k] ? bad[k] : "");
            refused(&r, 401, what);
            resp_free(&r);
        }
        Resp r = call(rt, path, AUTH_R);
        snprintf(what, sizeof what, "%s %s with the read key", rt->method, path);
        if (rt->write)
            refused(&r, 403, what);
        else
            ck_assert_msg(r.status == rt->status, "%s: %ld %s", what, r.status, r.body);
        resp_free(&r);
        r = call(rt, path, AUTH_W);
        ck_assert_msg(r.status == rt->status, "%s %s with the write key: %ld %s", rt->method, path,
                      r.status, r.body);
        resp_free(&r);
    }
    /* The refused enrolls and deletes changed nothing. */
    Resp r = http(P, &(Req){.method = "GET", .path = "/subjects/auth-enroll", .auth = AUTH_R});
    ASSERT_JSON(r, 200);
    ck_assert_double_eq(jnum(r.json, "sample_count"), 1);
    resp_free(&r);
    /* The scheme is case-insensitive; spaces around the value are ignored. */
    r = http(P, &(Req){.method = "GET", .path = "/model", .auth = "bearer  " RKEY " "});
    ASSERT_JSON(r, 200);
    resp_free(&r);
    /* /healthz needs no key, and a bad one does not matter. */
    r = http_get(P, "/healthz");
    ASSERT_JSON(r, 200);
    resp_free(&r);
    r = http(P, &(Req){.method = "GET", .path = "/healthz", .auth = "Bearer nope-nope-nope-nope"});
    ASSERT_JSON(r, 200);
    resp_free(&r);
    /* Unknown routes do not reveal themselves without a key. */
    r = http_get(P, "/nope");
    refused(&r, 401, "GET /nope");
    resp_free(&r);
    buf_free(&img);
}
END_TEST

/* A request refused from its headers alone (401 here) is answered before its
 * body is read; the connection must then close, so that the unread body is
 * never taken for the next request (request smuggling). */
START_TEST(early_refusal_closes_the_connection) {
    const char *inner = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    char rq[512];
    snprintf(rq, sizeof rq,
             "POST /verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(inner), inner);
    Resp r = http_raw_until_close(P, rq, strlen(rq));
    ck_assert_msg(r.curl_rc == 0, "the connection stayed open after an early refusal");
    ck_assert_msg(strstr(r.body, "HTTP/1.1") == NULL, "a second response followed: %s", r.body);
    refused(&r, 401, "POST /verify without a key");
    resp_free(&r);
}
END_TEST

/* Several Authorization headers are 400 whatever they hold: which one a
 * proxy checked and which one the daemon reads must not differ. */
START_TEST(several_authorization_headers) {
    static const char *const pairs[][2] = {
        {AUTH_W, AUTH_W}, {AUTH_R, AUTH_W}, {"Bearer nope-0123456789abcdef", AUTH_W}};
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        char rq[512];
        snprintf(rq, sizeof rq,
                 "GET /subjects HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\n"
                 "Authorization: %s\r\nConnection: close\r\n\r\n",
                 pairs[i][0], pairs[i][1]);
        Resp r = http_raw(P, rq, strlen(rq));
        ASSERT_STATUS(r, 400);
        ck_assert_msg(error_code(&r) && !strcmp(error_code(&r), "bad_request"), "%s", r.body);
        resp_free(&r);
    }
}
END_TEST

/* ---- the OpenAPI document ---- */

typedef struct {
    char path[128], method[16];
} Op;

/* (path, method) pairs of docs/openapi.yaml: under "paths:", a path is a line
 * "  /x:" and a method a line "    get:". Returns how many. */
static int openapi_ops(Op *ops, int max) {
    char file[600], line[512];
    snprintf(file, sizeof file, "%s/docs/openapi.yaml", H.srcroot);
    FILE *f = fopen(file, "r");
    ck_assert_msg(f != NULL, "cannot open %s", file);
    static const char *const methods[] = {"get",   "post", "put",    "delete",
                                          "patch", "head", "options"};
    int n = 0, in_paths = 0;
    char cur[128] = "";
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        size_t len = strlen(line);
        while (len && line[len - 1] == ' ')
            line[--len] = 0;
        if (len && !isspace((unsigned char)line[0]) && line[0] != '#') {
            in_paths = strcmp(line, "paths:") == 0;
            continue;
        }
        if (!in_paths || !len || line[len - 1] != ':')
            continue;
        if (strncmp(line, "  /", 3) == 0) {
            snprintf(cur, sizeof cur, "%.*s", (int)(len - 3), line + 2);
            continue;
        }
        for (size_t m = 0; m < sizeof methods / sizeof *methods; m++) {
            size_t ml = strlen(methods[m]);
            if (strncmp(line, "    ", 4) == 0 && strncmp(line + 4, methods[m], ml) == 0 &&
                len == 4 + ml + 1 && *cur && n < max) {
                snprintf(ops[n].path, sizeof ops[n].path, "%s", cur);
                snprintf(ops[n].method, sizeof ops[n].method, "%s", methods[m]);
                n++;
            }
        }
    }
    fclose(f);
    return n;
}

/* path with {id} and {sample} replaced. */
static void substitute(const char *tmpl, const char *id, double sample, char *out, size_t size) {
    size_t o = 0;
    for (const char *p = tmpl; *p && o + 40 < size;) {
        if (strncmp(p, "{id}", 4) == 0) {
            o += (size_t)snprintf(out + o, size - o, "%s", id);
            p += 4;
        } else if (strncmp(p, "{sample}", 8) == 0) {
            o += (size_t)snprintf(out + o, size - o, "%.0f", sample);
            p += 8;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = 0;
}

START_TEST(openapi_matches_the_routes) {
    ck_assert_msg(P > 0, "the shared daemon did not start");
    img = img_file("fm2_c1.png");
    double sample = enroll_w("oa-subject", 2);
    Op ops[64];
    int n = openapi_ops(ops, 64);
    ck_assert_msg(n >= 11, "only %d operations found in docs/openapi.yaml", n);
    for (int i = 0; i < n; i++) {
        char path[256], method[16];
        substitute(ops[i].path, "oa-subject", sample, path, sizeof path);
        size_t k = 0;
        for (; ops[i].method[k]; k++)
            method[k] = (char)toupper((unsigned char)ops[i].method[k]);
        method[k] = 0;
        int post = strcmp(method, "POST") == 0;
        Req rq = {.method = method, .path = path, .auth = AUTH_W};
        if (post) /* an empty object: the route answers 400 missing_field */
            rq.ctype = "application/json", rq.body = "{}", rq.len = 2;
        Resp r = http(P, &rq);
        const char *code = error_code(&r);
        ck_assert_msg(r.status != 405 && r.status != 401 && r.status != 403 && r.status >= 200 &&
                          !(r.status == 404 && code && strcmp(code, "not_found") == 0),
                      "documented %s %s: %ld %s", method, ops[i].path, r.status, r.body);
        if (strcmp(ops[i].path, "/metrics") == 0)
            ck_assert_msg(strncmp(r.ctype, "text/plain", 10) == 0, "/metrics: %s", r.ctype);
        else if (strcmp(ops[i].path, "/") == 0)
            ck_assert_msg(strncmp(r.ctype, "text/html", 9) == 0, "/: %s", r.ctype);
        else
            ck_assert_msg(r.json != NULL, "documented %s %s answered %s: %.200s", method,
                          ops[i].path, r.ctype, r.body);
        resp_free(&r);
    }
    /* Every route of the daemon is documented. */
    static const char *const code_routes[][2] = {{"post", "/verify"},
                                                 {"post", "/enroll"},
                                                 {"post", "/embed"},
                                                 {"post", "/identify"},
                                                 {"get", "/subjects"},
                                                 {"get", "/subjects/{id}"},
                                                 {"delete", "/subjects/{id}"},
                                                 {"delete", "/subjects/{id}/samples/{sample}"},
                                                 {"get", "/model"},
                                                 {"get", "/healthz"},
                                                 {"get", "/metrics"},
                                                 {"get", "/"},
                                                 {"get", "/page/settings"}};
    for (size_t k = 0; k < sizeof code_routes / sizeof *code_routes; k++) {
        int found = 0;
        for (int i = 0; i < n && !found; i++)
            found = !strcmp(ops[i].method, code_routes[k][0]) &&
                    !strcmp(ops[i].path, code_routes[k][1]);
        ck_assert_msg(found, "%s %s is not in docs/openapi.yaml", code_routes[k][0],
                      code_routes[k][1]);
    }
    char file[600];
    snprintf(file, sizeof file, "%s/docs/openapi.yaml", H.srcroot);
    ck_assert(file_has(file, "openapi: 3.0"));
    ck_assert(file_has(file, "multipart/form-data"));
    ck_assert(file_has(file, "#/components/schemas/Error"));
    buf_free(&img);
}
END_TEST

TCase *tcase_access(void) {
    TCase *tc = tcase_create("access");
    tcase_add_unchecked_fixture(tc, access_setup, access_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, api_keys_per_route);
    tcase_add_test(tc, early_refusal_closes_the_connection);
    tcase_add_test(tc, several_authorization_headers);
    return tc;
}

/* The document check on a daemon of its own (keys on: it uses the write key). */
TCase *tcase_openapi(void) {
    TCase *tc = tcase_create("openapi");
    tcase_add_unchecked_fixture(tc, access_setup, access_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, openapi_matches_the_routes);
    return tc;
}
