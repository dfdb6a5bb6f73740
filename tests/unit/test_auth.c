/*
 * test_auth.c — unit tests for API key checks.
 *
 * With no keys everything passes. With a read key and a write key, a table of
 * Authorization headers (well-formed, garbled, near misses of real keys) is
 * checked against read and write routes, each row with the outcome it must
 * have. The Auth must not depend on the key strings after auth_new().
 */
#include "siamese/auth.h"
#include "siamese/common.h"

#include "check_util.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RKEY "read-key.0123456789abcdef"
#define WKEY "WriteKey_~+/0123456789=="

/* malloc that fails the test instead of returning NULL. */
static void *xmalloc(size_t n) {
    void *p = malloc(n);
    ck_assert_ptr_nonnull(p);
    return p;
}

START_TEST(test_no_keys) {
    Auth *a = NULL;
    char err[SM_ERRMAX];
    ck_assert_int_eq(auth_new(NULL, 0, &a, err), 0);
    ck_assert_ptr_nonnull(a);
    ck_assert_int_eq(auth_n_keys(a), 0);
    const char *headers[] = {NULL, "", "Basic abc", "Bearer nonsense-key-1234567", "Bearer"};
    for (size_t i = 0; i < SM_ARRAY_LEN(headers); i++) {
        ck_assert_int_eq(auth_check(a, headers[i], 0, NULL), 0);
        ck_assert_int_eq(auth_check(a, headers[i], 1, NULL), 0);
    }
    auth_free(a);
    ck_assert_int_eq(auth_check(NULL, NULL, 1, NULL), 0);
    auth_free(NULL);
}
END_TEST

typedef struct {
    const char *header;
    int read_route, write_route; /* expected outcome on each */
} Case;

static const Case cases[] = {
    {"Bearer " RKEY, 0, AUTH_FORBIDDEN},
    {"Bearer " WKEY, 0, 0},
    {"bearer " WKEY, 0, 0},
    {"BEARER " RKEY, 0, AUTH_FORBIDDEN},
    {"Bearer    " WKEY, 0, 0},
    {"  Bearer " WKEY "  \t", 0, 0},
    {NULL, AUTH_MISSING, AUTH_MISSING},
    {"", AUTH_MISSING, AUTH_MISSING},
    {"Bearer", AUTH_MISSING, AUTH_MISSING},
    {"Bearer ", AUTH_MISSING, AUTH_MISSING},
    {"Bearer\t" WKEY, AUTH_MISSING, AUTH_MISSING},
    {"Bearer" WKEY, AUTH_MISSING, AUTH_MISSING},
    {"Basic " WKEY, AUTH_MISSING, AUTH_MISSING},
    {"Basic dXNlcjpwYXNz", AUTH_MISSING, AUTH_MISSING},
    {WKEY, AUTH_MISSING, AUTH_MISSING},
    {"Token " WKEY, AUTH_MISSING, AUTH_MISSING},
    {"Bearer " WKEY " extra", AUTH_MISSING, AUTH_MISSING},
    {"Bearer " RKEY ",Bearer " WKEY, AUTH_MISSING, AUTH_MISSING},
    {"Bearer " RKEY "\"", AUTH_MISSING, AUTH_MISSING},
    {"Bearer =abc", AUTH_MISSING, AUTH_MISSING},
    {"Bearer " WKEY "=x", AUTH_MISSING, AUTH_MISSING},
    {"Bearer wrong-key-0123456789abcdef", AUTH_INVALID, AUTH_INVALID},
    {"Bearer " RKEY "junk", AUTH_INVALID, AUTH_INVALID},
    {"Bearer " WKEY "=", AUTH_INVALID, AUTH_INVALID},
    {"Bearer read-key.0123456789abcde", AUTH_INVALID, AUTH_INVALID},  /* prefix of RKEY */
    {"Bearer WriteKey_~+/0123456789", AUTH_INVALID, AUTH_INVALID},    /* WKEY without '=' */
    {"Bearer READ-KEY.0123456789ABCDEF", AUTH_INVALID, AUTH_INVALID}, /* keys are case-sensitive */
    {"Bearer r", AUTH_INVALID, AUTH_INVALID},
};

static Auth *two_keys(void) {
    char rk[] = RKEY, wk[] = WKEY;
    ConfigApiKey keys[2] = {{rk, CONFIG_SCOPE_READ}, {wk, CONFIG_SCOPE_WRITE}};
    Auth *a = NULL;
    char err[SM_ERRMAX] = "";
    ck_assert_msg(auth_new(keys, 2, &a, err) == 0, "%s", err);
    /* The Auth keeps digests only: scribbling over the strings changes nothing. */
    memset(rk, 'x', strlen(rk));
    memset(wk, 'x', strlen(wk));
    return a;
}

START_TEST(test_scope_table) {
    Auth *a = two_keys();
    ck_assert_int_eq(auth_n_keys(a), 2);
    const Case *c = &cases[_i];
    ck_assert_msg(auth_check(a, c->header, 0, NULL) == c->read_route, "'%s' on a read route: %d",
                  c->header ? c->header : "(null)", auth_check(a, c->header, 0, NULL));
    ck_assert_msg(auth_check(a, c->header, 1, NULL) == c->write_route, "'%s' on a write route: %d",
                  c->header ? c->header : "(null)", auth_check(a, c->header, 1, NULL));
    auth_free(a);
}
END_TEST

START_TEST(test_long_token) {
    Auth *a = two_keys();
    size_t n = AUTH_MAX_TOKEN + 100;
    char *h = xmalloc(n + 8);
    memcpy(h, "Bearer ", 7);
    memset(h + 7, 'k', n);
    h[7 + n] = 0;
    ck_assert_int_eq(auth_check(a, h, 0, NULL), AUTH_INVALID);
    free(h);
    auth_free(a);
}
END_TEST

START_TEST(test_many_keys) {
    /* A match on the last of many keys is found, and its scope is its own. */
    enum { N = CONFIG_MAX_API_KEYS };
    ConfigApiKey keys[N];
    char bufs[N][32];
    for (int i = 0; i < N; i++) {
        snprintf(bufs[i], sizeof bufs[i], "key-number-%04d-abcdef", i);
        keys[i] = (ConfigApiKey){bufs[i], i % 2 ? CONFIG_SCOPE_WRITE : CONFIG_SCOPE_READ};
    }
    Auth *a = NULL;
    char err[SM_ERRMAX];
    ck_assert_int_eq(auth_new(keys, N, &a, err), 0);
    char h[64];
    for (int i = 0; i < N; i += 17) {
        snprintf(h, sizeof h, "Bearer key-number-%04d-abcdef", i);
        int key = -2;
        ck_assert_int_eq(auth_check(a, h, 0, &key), 0);
        ck_assert_int_eq(key, i); /* which key it was, for its rate limit */
        ck_assert_int_eq(auth_check(a, h, 1, NULL), i % 2 ? 0 : AUTH_FORBIDDEN);
    }
    int none = 5;
    ck_assert_int_eq(auth_check(a, "Bearer key-number-9999-abcdef", 0, &none), AUTH_INVALID);
    ck_assert_int_eq(none, -1);
    snprintf(h, sizeof h, "Bearer key-number-%04d-abcdef", N - 1);
    ck_assert_int_eq(auth_check(a, h, 1, NULL), 0);
    ck_assert_int_eq(auth_check(a, "Bearer key-number-9999-abcdef", 0, NULL), AUTH_INVALID);
    auth_free(a);
}
END_TEST

START_TEST(test_new_rejects) {
    Auth *a = (Auth *)&a;
    char err[SM_ERRMAX] = "";
    ck_assert_int_eq(auth_new(NULL, 1, &a, err), -EINVAL);
    ck_assert_ptr_null(a);
    ck_assert_int_eq(auth_new(NULL, -1, &a, err), -EINVAL);
    ck_assert_int_eq(auth_new(NULL, CONFIG_MAX_API_KEYS + 1, &a, err), -EINVAL);
    char empty[] = "";
    ConfigApiKey k1[1] = {{empty, CONFIG_SCOPE_READ}};
    ck_assert_int_eq(auth_new(k1, 1, &a, err), -EINVAL);
    ConfigApiKey k2[1] = {{NULL, CONFIG_SCOPE_READ}};
    ck_assert_int_eq(auth_new(k2, 1, &a, err), -EINVAL);
    ck_assert_ptr_null(a);
    ck_assert(err[0] != 0);
}
END_TEST

static Suite *auth_suite(void) {
    Suite *s = suite_create("auth");
    TCase *tc = tcase_create("keys");
    tcase_add_test(tc, test_no_keys);
    tcase_add_loop_test(tc, test_scope_table, 0, (int)SM_ARRAY_LEN(cases));
    tcase_add_test(tc, test_long_token);
    tcase_add_test(tc, test_many_keys);
    tcase_add_test(tc, test_new_rejects);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return check_run(auth_suite());
}
