/*
 * test_daemon_api.c — the API as a user meets it (issue 12), on a daemon
 * with --max-body 64K, each test failing on the daemon before its fix:
 *   - a misspelt field (even a binary file part, -F images=@x.png) is
 *     unknown_field naming the fields the route takes;
 *   - query parameters a route does not take are refused, not ignored;
 *   - the common curl slips get a hint (a text part where an image goes, no
 *     Content-Type); the body limit names its setting;
 *   - numbers print as the shortest text that reads back to the same
 *     float32, and every JSON body ends with a newline.
 */
#include <check.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_harness.h"

static Shared S;
#define P (S.d.port)

static void api_setup(void) {
    const char *const extra[] = {"--max-body", "64K", NULL};
    shared_start(&S, "api", extra);
}
static void api_teardown(void) {
    shared_stop(&S);
}

/* The reply is error code with a message holding every needle (NULL-ended). */
static void expect(Resp r, int status, const char *code, ...) {
    ASSERT_JSON(r, status);
    const char *c = error_code(&r);
    ck_assert_msg(c && strcmp(c, code) == 0, "code %s, want %s: %s", c ? c : "-", code, r.body);
    va_list ap;
    va_start(ap, code);
    for (const char *n; (n = va_arg(ap, const char *));)
        ck_assert_msg(strstr(r.body, n), "'%s' not in %s", n, r.body);
    va_end(ap);
    resp_free(&r);
}

START_TEST(unknown_file_field) {
    ck_assert_msg(P > 0, "the shared daemon did not start");
    Buf png = img_file("fm0_c9.png");
    Field f[] = {IMAGE("images", png)};
    expect(post_multipart(P, "/embed", f, 1, NULL), 400, "unknown_field", "'images'", "image",
           NULL);
    expect(post_json(P, "/embed", f, 1, NULL), 400, "unknown_field", "'images'", NULL);
    Field v[] = {IMAGE("a", png), IMAGE("bb", png)};
    expect(post_multipart(P, "/verify", v, 2, NULL), 400, "unknown_field", "'bb'",
           "a, b, subject, image, threshold", NULL);
    buf_free(&png);
}
END_TEST

START_TEST(unknown_query_parameter) {
    ck_assert_msg(P > 0, "the shared daemon did not start");
    Buf png = img_file("fm0_c9.png");
    Field v[] = {IMAGE("a", png), IMAGE("b", png)};
    expect(post_multipart(P, "/verify?threshold=0.1", v, 2, NULL), 400, "unknown_parameter",
           "'threshold'", NULL);
    expect(http_get(P, "/subjects?limt=5"), 400, "unknown_parameter", "'limt'", "limit cursor",
           NULL);
    expect(http_get(P, "/model?x"), 400, "unknown_parameter", "'x'", NULL);
    Field i[] = {IMAGE("image", png)};
    Resp r = post_multipart(P, "/identify?exact=1", i, 1, NULL);
    ASSERT_JSON(r, 200);
    resp_free(&r);
    r = http_get(P, "/subjects?limit=5&cursor=");
    ASSERT_JSON(r, 200);
    resp_free(&r);
    buf_free(&png);
}
END_TEST

START_TEST(curl_slips_get_hints) {
    ck_assert_msg(P > 0, "the shared daemon did not start");
    Buf png = img_file("fm0_c9.png");
    Field v[] = {TEXT("a", "x.png"), IMAGE("b", png)};
    expect(post_multipart(P, "/verify", v, 2, NULL), 422, "invalid_image",
           "did you mean -F a=@x.png?", NULL);
    Buf body = body_multipart(v, 2, (char[128]){0}, 128);
    Req rq = {.method = "POST", .path = "/verify", .body = body.p, .len = body.len};
    expect(http(P, &rq), 415, "unsupported_media_type", "Content-Type", "curl -F", NULL);
    buf_free(&body);
    Buf big = img_pgm(9, 300, 300); /* 90 KB > 64K */
    Field e[] = {IMAGE("image", big)};
    expect(post_multipart(P, "/embed", e, 1, NULL), 413, "payload_too_large", "--max-body", NULL);
    buf_free(&big), buf_free(&png);
}
END_TEST

/* Significant digits of the longest number with a fraction or exponent in s. */
static int most_digits(const char *s) {
    int most = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '"') { /* skip strings */
            for (p++; *p && *p != '"'; p++)
                p += *p == '\\' && p[1];
            if (!*p)
                break;
            continue;
        }
        if (!isdigit((unsigned char)*p) ||
            (p > s && (isdigit((unsigned char)p[-1]) || p[-1] == '.')))
            continue;
        const char *q = p;
        int digits = 0, lead = 1, frac = 0;
        for (; isdigit((unsigned char)*q) || *q == '.'; q++) {
            frac |= *q == '.';
            if (*q == '.')
                continue;
            lead &= *q == '0';
            digits += !lead;
        }
        if ((frac || *q == 'e' || *q == 'E') && digits > most)
            most = digits;
        p = q - 1;
    }
    return most;
}

START_TEST(numbers_shortest_and_newline) {
    ck_assert_msg(P > 0, "the shared daemon did not start");
    Buf a = img_file("fm0_c9.png"), b = img_file("fm2_c1.png");
    Field v[] = {IMAGE("a", a), IMAGE("b", b)};
    Resp r = post_multipart(P, "/verify", v, 2, NULL);
    ASSERT_JSON(r, 200);
    ck_assert_msg(most_digits(r.body) <= 9, "long number in %s", r.body);
    ck_assert_msg(r.len > 0 && r.body[r.len - 1] == '\n', "no newline at the end: %s", r.body);
    resp_free(&r);
    Field e[] = {IMAGE("image", a)};
    r = post_multipart(P, "/embed", e, 1, NULL);
    ASSERT_JSON(r, 200);
    ck_assert_msg(most_digits(r.body) <= 9, "long number in /embed");
    ck_assert(r.body[r.len - 1] == '\n');
    /* Each printed value reads back to a float32 exactly as short as can be. */
    const cJSON *x = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "embeddings"), 0), *c;
    cJSON_ArrayForEach(c, x) {
        float f = (float)c->valuedouble;
        char shorter[32];
        snprintf(shorter, sizeof shorter, "%.*g", 8, (double)f);
        ck_assert_msg((double)strtof(shorter, NULL) == (double)f, "not a float32: %.17g",
                      c->valuedouble);
    }
    resp_free(&r);
    r = http_get(P, "/model");
    ASSERT_JSON(r, 200);
    ck_assert_msg(most_digits(r.body) <= 9, "long number in %s", r.body);
    resp_free(&r);
    r = http_get(P, "/nope");
    ck_assert(r.len > 0 && r.body[r.len - 1] == '\n'); /* errors too */
    resp_free(&r);
    buf_free(&a), buf_free(&b);
}
END_TEST

TCase *tcase_api(void) {
    TCase *tc = tcase_create("api");
    tcase_add_unchecked_fixture(tc, api_setup, api_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, unknown_file_field);
    tcase_add_test(tc, unknown_query_parameter);
    tcase_add_test(tc, curl_slips_get_hints);
    tcase_add_test(tc, numbers_shortest_and_newline);
    return tc;
}
