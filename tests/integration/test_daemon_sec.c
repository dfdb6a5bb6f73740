/*
 * test_daemon_sec.c — what an outside attacker tried (issue 13), on a daemon
 * with authentication off, each test failing on the daemon before its fix:
 *   - percent-escapes cannot change the route: %2F does not add a path
 *     segment and %00 does not cut a subject id short (400 invalid_subject,
 *     nothing deleted), while other escapes still decode;
 *   - error bodies are valid UTF-8 JSON whatever bytes the path held;
 *   - a query value that decodes to NUL is refused, not truncated;
 *   - metadata comes back as it was sent, digit for digit, from either
 *     encoding; JSON numbers with leading zeros are refused;
 *   - the database directory is 0700 and its files 0600; a read-only
 *     database file is refused at start-up;
 *   - GET /subjects/{id} pages its samples;
 *   - without API keys, a foreign Host (DNS rebinding) or Origin (a web
 *     page's cross-site request) is refused with 403;
 *   - /model names the training dataset, not where it lives;
 *   - rate_limit: past a key's burst, 429 with Retry-After, other keys and
 *     /healthz unaffected; verdict_only: no distances from verify/identify;
 *   - strict answers: repeated query parameters, several Authorization
 *     headers and absolute-form request targets are 400.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon_harness.h"

static Shared S;
#define P (S.d.port)

static void sec_setup(void) {
    shared_start(&S, "sec", NULL);
}
static void sec_teardown(void) {
    shared_stop(&S);
}

/* The number of samples GET /subjects/{id} reports. */
static double sample_total(const char *subject) {
    char path[128];
    snprintf(path, sizeof path, "/subjects/%s", subject);
    Resp r = http_get(P, path);
    ASSERT_JSON(r, 200);
    double n = jnum(r.json, "sample_count");
    resp_free(&r);
    return n;
}

static void expect_error(Resp r, int status, const char *code) {
    ASSERT_JSON(r, status);
    const char *c = error_code(&r);
    ck_assert_msg(c && strcmp(c, code) == 0, "error code %s, want %s: %s", c ? c : "(none)", code,
                  r.body);
    resp_free(&r);
}

START_TEST(escapes_keep_the_route) {
    ck_assert_msg(P > 0, "the shared daemon did not start");
    Buf imgs[2] = {img_file("fm0_c9.png"), img_file("fm2_c1.png")};
    enroll(P, "esc-alice", imgs, 2, NULL, NULL);
    const char *const bad[] = {
        "/subjects/esc-alice%2Fsamples%2F1",
        "/subjects/esc-alice%2fsamples%2f1",
        "/subjects/esc-alice%00zzz",
        "/subjects/esc-alice%00",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        expect_error(http_delete(P, bad[i]), 400, "invalid_subject");
        expect_error(http_get(P, bad[i]), 400, "invalid_subject");
    }
    ck_assert_double_eq(sample_total("esc-alice"), 2);
    /* Escapes of ordinary characters still decode. */
    ck_assert_double_eq(sample_total("%65sc-alice"), 2);
    /* An escaped '/' in a sample id is not a segment either. */
    expect_error(http_delete(P, "/subjects/esc-alice/samples/1%2F2"), 400, "bad_request");
    ck_assert_double_eq(sample_total("esc-alice"), 2);
    buf_free(&imgs[0]), buf_free(&imgs[1]);
}
END_TEST

/* 1 if len bytes at s are well-formed UTF-8. */
static int utf8_ok(const unsigned char *s, size_t len) {
    for (size_t i = 0; i < len;) {
        size_t n = s[i] < 0x80 ? 1 : (s[i] & 0xe0) == 0xc0 ? 2 : (s[i] & 0xf0) == 0xe0 ? 3 : 4;
        if ((s[i] & 0xf8) == 0xf8 || (n == 2 && s[i] < 0xc2) || i + n > len)
            return 0;
        for (size_t k = 1; k < n; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return 0;
        i += n;
    }
    return 1;
}

START_TEST(error_bodies_are_utf8) {
    ck_assert_msg(P > 0, "the shared daemon did not start");
    static const char raw[] = "GET /caf\xe9/\xff\xfe/%C3%28/x\xf0\x9f\x98 HTTP/1.1\r\n"
                              "Host: 127.0.0.1\r\nConnection: close\r\n\r\n";
    Resp r = http_raw(P, raw, sizeof raw - 1);
    ASSERT_STATUS(r, 404);
    ck_assert_msg(utf8_ok((const unsigned char *)r.body, r.len), "not UTF-8: %s", r.body);
    ck_assert_msg(r.json && error_code(&r) && strcmp(error_code(&r), "not_found") == 0, "%s",
                  r.body);
    resp_free(&r);
}
END_TEST

START_TEST(query_nul_refused) {
    ck_assert_msg(P > 0, "the shared daemon did not start");
    expect_error(http_get(P, "/subjects?cursor=%00"), 400, "bad_request");
    expect_error(http_get(P, "/subjects?cursor=%00abc"), 400, "bad_request");
    expect_error(http_get(P, "/subjects?limit=5%00"), 400, "bad_request");
    Resp r = http_get(P, "/subjects?limit=%35"); /* still decodes: limit=5 */
    ASSERT_JSON(r, 200);
    resp_free(&r);
}
END_TEST

#define META "{\"big\":1234567890123456789,\"inf\":1e999,\"f\":0.30000000000000004,\"e\":1E+05}"

START_TEST(metadata_verbatim) {
    ck_assert_msg(P > 0, "the shared daemon did not start");
    Buf img = img_file("fm0_c9.png");
    for (int json = 0; json < 2; json++) {
        const char *subject = json ? "meta-js" : "meta-mp";
        Field f[] = {TEXT("subject", subject), IMAGE("image", img),
                     json ? JRAW("metadata", META) : TEXT("metadata", META)};
        Resp r =
            json ? post_json(P, "/enroll", f, 3, NULL) : post_multipart(P, "/enroll", f, 3, NULL);
        ASSERT_JSON(r, 201);
        resp_free(&r);
        char path[64];
        snprintf(path, sizeof path, "/subjects/%s", subject);
        r = http_get(P, path);
        ASSERT_JSON(r, 200);
        ck_assert_msg(strstr(r.body, "\"metadata\":" META), "%s: %s", subject, r.body);
        resp_free(&r);
    }
    buf_free(&img);
}
END_TEST

START_TEST(leading_zeros_refused) {
    ck_assert_msg(P > 0, "the shared daemon did not start");
    Buf img = img_file("fm0_c9.png");
    const char *const bad[] = {"{\"a\":01}", "{\"a\":[1,-007]}", "{\"a\":{\"b\":00}}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        Field f[] = {TEXT("subject", "lz"), IMAGE("image", img), JRAW("metadata", bad[i])};
        expect_error(post_json(P, "/enroll", f, 3, NULL), 400, "bad_request");
        expect_error(post_multipart(P, "/enroll", f, 3, NULL), 400, "bad_request");
    }
    Field k[] = {IMAGE("image", img), JRAW("k", "01")};
    expect_error(post_json(P, "/identify", k, 2, NULL), 400, "bad_request");
    /* Zeros that JSON allows. */
    Field ok[] = {TEXT("subject", "lz"), IMAGE("image", img),
                  JRAW("metadata", "{\"a\":0,\"b\":-0.05,\"c\":1e05,\"d\":[0,10,100]}")};
    Resp r = post_json(P, "/enroll", ok, 3, NULL);
    ASSERT_JSON(r, 201);
    resp_free(&r);
    r = http_get(P, "/subjects/lz");
    ASSERT_JSON(r, 200);
    resp_free(&r);
    buf_free(&img);
}
END_TEST

static unsigned mode_of(const char *path) {
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0, "%s is missing", path);
    return (unsigned)(st.st_mode & 07777);
}

START_TEST(files_private) {
    ck_assert_msg(P > 0, "the shared daemon did not start");
    Buf img = img_file("fm0_c9.png");
    enroll(P, "files", &img, 1, NULL, NULL);
    char dir[400], path[420];
    snprintf(dir, sizeof dir, "%s/data", S.dir);
    ck_assert_uint_eq(mode_of(dir), 0700);
    ck_assert_uint_eq(mode_of(S.db), 0600);
    snprintf(path, sizeof path, "%s-wal", S.db);
    ck_assert_uint_eq(mode_of(path), 0600);
    snprintf(path, sizeof path, "%s-shm", S.db);
    ck_assert_uint_eq(mode_of(path), 0600);
    buf_free(&img);
}
END_TEST

START_TEST(readonly_db_refused) {
    char dir[320], db[400], log[400];
    ck_assert_int_eq(scratch_dir("sec-ro", dir, sizeof dir), 0);
    snprintf(db, sizeof db, "%s/ro.db", dir);
    snprintf(log, sizeof log, "%s/daemon.log", dir);
    const char *const args[] = {"--model", H.model_a, "--db", db, NULL};
    Daemon d;
    ck_assert_int_eq(daemon_start(&d, log, args), 0); /* creates the database */
    ck_assert_int_eq(daemon_stop(&d) & 0xffff, 0);
    ck_assert_int_eq(chmod(db, 0444), 0);
    ck_assert_msg(daemon_start(&d, log, args) < 0, "a read-only database was accepted");
    ck_assert_msg(file_has(log, "read-only"), "the log does not say why");
    ck_assert_int_eq(chmod(db, 0600), 0);
    ck_assert_int_eq(daemon_start(&d, log, args), 0);
    ck_assert_int_eq(daemon_stop(&d) & 0xffff, 0);
}
END_TEST

START_TEST(subject_pages) {
    ck_assert_msg(P > 0, "the shared daemon did not start");
    Buf imgs[5];
    for (int i = 0; i < 5; i++)
        imgs[i] = img_pgm(70 + (uint32_t)i, 28, 28);
    double ids[5];
    enroll(P, "pages", imgs, 5, NULL, ids);
    char path[128] = "/subjects/pages?limit=2";
    int seen = 0;
    for (int page = 0; page < 4; page++) {
        Resp r = http_get(P, path);
        ASSERT_JSON(r, 200);
        ck_assert_double_eq(jnum(r.json, "sample_count"), 5);
        cJSON *list = cJSON_GetObjectItem(r.json, "samples"), *x;
        ck_assert_int_le(cJSON_GetArraySize(list), 2);
        cJSON_ArrayForEach(x, list) ck_assert_double_eq(jnum(x, "sample"), ids[seen++]);
        const char *next = jstr(r.json, "next_cursor");
        if (!next) {
            ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r.json, "next_cursor")));
            resp_free(&r);
            break;
        }
        snprintf(path, sizeof path, "/subjects/pages?limit=2&cursor=%s", next);
        resp_free(&r);
    }
    ck_assert_int_eq(seen, 5);
    expect_error(http_get(P, "/subjects/pages?limit=0"), 400, "bad_request");
    expect_error(http_get(P, "/subjects/pages?cursor=x"), 400, "bad_request");
    for (int i = 0; i < 5; i++)
        buf_free(&imgs[i]);
}
END_TEST

/* A raw request: method, target and extra header lines (each ending CRLF). */
static Resp raw(const char *method, const char *target, const char *headers) {
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\n%sContent-Length: 0\r\nConnection: close\r\n\r\n", method,
                     target, headers);
    return http_raw(P, req, (size_t)n);
}

START_TEST(foreign_host_and_origin) {
    ck_assert_msg(P > 0, "the shared daemon did not start");
    Buf img = img_file("fm0_c9.png");
    enroll(P, "victim", &img, 1, NULL, NULL);
    char ours[160];
    snprintf(ours, sizeof ours, "Host: 127.0.0.1:%d\r\n", P);
    expect_error(raw("GET", "/subjects", "Host: evil.example:8080\r\n"), 403, "forbidden_host");
    expect_error(raw("DELETE", "/subjects/victim", "Host: rebind.evil.example\r\n"), 403,
                 "forbidden_host");
    char h[320];
    snprintf(h, sizeof h, "%sOrigin: http://evil.example\r\n", ours);
    expect_error(raw("DELETE", "/subjects/victim", h), 403, "forbidden_origin");
    snprintf(h, sizeof h, "%sOrigin: null\r\n", ours);
    expect_error(raw("DELETE", "/subjects/victim", h), 403, "forbidden_origin");
    ck_assert_double_eq(sample_total("victim"), 1);
    /* Our own names and the page's own origin pass. */
    const char *const fine[] = {"Host: localhost:1\r\n", "Host: [::1]:8080\r\n",
                                "Host: 10.1.2.3\r\n", NULL};
    for (int i = 0; fine[i]; i++) {
        Resp r = raw("GET", "/subjects", fine[i]);
        ASSERT_JSON(r, 200);
        resp_free(&r);
    }
    snprintf(h, sizeof h, "%sOrigin: http://127.0.0.1:%d\r\n", ours, P);
    Resp r = raw("GET", "/subjects/victim", h);
    ASSERT_JSON(r, 200);
    resp_free(&r);
    /* /healthz is public: a load balancer's Host is its business. */
    r = raw("GET", "/healthz", "Host: lb.internal\r\n");
    ASSERT_JSON(r, 200);
    resp_free(&r);
    buf_free(&img);
}
END_TEST

START_TEST(strict_answers) {
    ck_assert_msg(P > 0, "the shared daemon did not start");
    expect_error(http_get(P, "/subjects?limit=1&limit=2"), 400, "bad_request");
    expect_error(http_get(P, "/subjects?cursor=&cursor="), 400, "bad_request");
    expect_error(raw("GET", "/subjects",
                     "Host: 127.0.0.1\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n"),
                 400, "bad_request");
    expect_error(raw("GET", "http://127.0.0.1/subjects", "Host: 127.0.0.1\r\n"), 400,
                 "bad_request");
    expect_error(raw("GET", "http://127.0.0.1/healthz", "Host: 127.0.0.1\r\n"), 400, "bad_request");
}
END_TEST

START_TEST(model_hides_paths) {
    char dir[320], model[400], db[400], log[400];
    ck_assert_int_eq(scratch_dir("sec-model", dir, sizeof dir), 0);
    snprintf(model, sizeof model, "%s/m.safetensors", dir);
    snprintf(db, sizeof db, "%s/m.db", dir);
    snprintf(log, sizeof log, "%s/daemon.log", dir);
    ck_assert_int_eq(model_make_trained(model, 5, NULL,
                                        "{\"lr\":0.0010000000474974513,\"seed\":1073741824,"
                                        "\"dataset\":\"/srv/secret/fashion-mnist\",\"data\":"
                                        "{\"train_split\":\"/srv/secret/fashion-mnist/train/\"}}"),
                     0);
    const char *const args[] = {"--model", model, "--db", db, NULL};
    Daemon d;
    ck_assert_int_eq(daemon_start(&d, log, args), 0);
    Resp r = http_get(d.port, "/model");
    ASSERT_JSON(r, 200);
    const cJSON *t = cJSON_GetObjectItem(r.json, "training");
    ck_assert_str_eq(jstr(t, "dataset"), "fashion-mnist");
    ck_assert_str_eq(jstr(cJSON_GetObjectItem(t, "data"), "train_split"), "train");
    ck_assert_msg(!strstr(r.body, "/srv/secret"), "a path is shown: %s", r.body);
    /* A float32 in the summary prints as its shortest form; integers stay whole. */
    ck_assert_msg(strstr(r.body, "\"lr\":0.001,"), "%s", r.body);
    ck_assert_msg(strstr(r.body, "\"seed\":1073741824,"), "%s", r.body);
    resp_free(&r);
    ck_assert_int_eq(daemon_stop(&d) & 0xffff, 0);
}
END_TEST

/* Starts a daemon of its own in a fresh directory named tag. */
static void own_start(Daemon *d, const char *tag, const char *const *extra) {
    char dir[320], db[400], log[400];
    const char *args[24] = {"--model", H.model_a, "--db", db};
    int n = 4;
    ck_assert_int_eq(scratch_dir(tag, dir, sizeof dir), 0);
    snprintf(db, sizeof db, "%s/d.db", dir);
    snprintf(log, sizeof log, "%s/daemon.log", dir);
    for (int i = 0; extra[i]; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    ck_assert_int_eq(daemon_start(d, log, args), 0);
}

#define K1 "key-one-0123456789abcdef"
#define K2 "key-two-0123456789abcdef"

START_TEST(rate_limited) {
    const char *const extra[] = {
        "--api-keys", K1 ":read," K2 ":read", "--rate-limit", "0.2", "--rate-burst", "3", NULL};
    Daemon d;
    own_start(&d, "sec-rate", extra);
    Req rq = {.method = "GET", .path = "/subjects", .auth = "Bearer " K1};
    for (int i = 0; i < 3; i++) {
        Resp r = http(d.port, &rq);
        ASSERT_JSON(r, 200);
        resp_free(&r);
    }
    Resp r = http(d.port, &rq);
    ASSERT_JSON(r, 429);
    ck_assert_str_eq(error_code(&r), "rate_limited");
    ck_assert_msg(atoi(r.retry_after) >= 1 && atoi(r.retry_after) <= 5, "Retry-After '%s'",
                  r.retry_after);
    resp_free(&r);
    rq.auth = "Bearer " K2; /* another key has its own bucket */
    r = http(d.port, &rq);
    ASSERT_JSON(r, 200);
    resp_free(&r);
    for (int i = 0; i < 5; i++) { /* /healthz is not counted */
        r = http_get(d.port, "/healthz");
        ASSERT_JSON(r, 200);
        resp_free(&r);
    }
    ck_assert_int_eq(daemon_stop(&d) & 0xffff, 0);
}
END_TEST

START_TEST(verdict_only) {
    const char *const extra[] = {"--verdict-only", "yes", NULL};
    Daemon d;
    own_start(&d, "sec-verdict", extra);
    Buf a = img_file("fm0_c9.png"), b = img_file("fm2_c1.png");
    enroll(d.port, "vo", &a, 1, NULL, NULL);
    Field v[] = {IMAGE("a", a), IMAGE("b", b)};
    Resp r = post_multipart(d.port, "/verify", v, 2, NULL);
    ASSERT_JSON(r, 200);
    ck_assert_ptr_nonnull(jstr(r.json, "verdict"));
    ck_assert_ptr_null(cJSON_GetObjectItem(r.json, "distance"));
    resp_free(&r);
    Field i[] = {IMAGE("image", a)};
    r = post_multipart(d.port, "/identify", i, 1, NULL);
    ASSERT_JSON(r, 200);
    const cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "matches"), 0);
    ck_assert_str_eq(jstr(m, "subject"), "vo");
    ck_assert_str_eq(jstr(m, "verdict"), "same");
    ck_assert_ptr_null(cJSON_GetObjectItem(m, "distance"));
    ck_assert_msg(!strstr(r.body, "distance"), "%s", r.body);
    resp_free(&r);
    buf_free(&a), buf_free(&b);
    ck_assert_int_eq(daemon_stop(&d) & 0xffff, 0);
}
END_TEST

TCase *tcase_security(void) {
    TCase *tc = tcase_create("security");
    tcase_add_unchecked_fixture(tc, sec_setup, sec_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, escapes_keep_the_route);
    tcase_add_test(tc, error_bodies_are_utf8);
    tcase_add_test(tc, query_nul_refused);
    tcase_add_test(tc, metadata_verbatim);
    tcase_add_test(tc, leading_zeros_refused);
    tcase_add_test(tc, files_private);
    tcase_add_test(tc, readonly_db_refused);
    tcase_add_test(tc, subject_pages);
    tcase_add_test(tc, foreign_host_and_origin);
    tcase_add_test(tc, strict_answers);
    tcase_add_test(tc, model_hides_paths);
    tcase_add_test(tc, rate_limited);
    tcase_add_test(tc, verdict_only);
    return tc;
}
