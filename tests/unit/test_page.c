/*
 * test_page.c — unit tests for the web page compiled into the binary
 * (web/ → page_assets.c, served by src/server/routes_page.c): every asset
 * has a public row in the route table and comes back byte for byte with its
 * content type and the Content-Security-Policy; the assets stay within their
 * budget and fetch nothing from another origin, and the page has no inline
 * script or style (the policy would block them).
 */
#include "siamese/common.h"
#include "src/server/page.h"
#include "src/server/routes.h"

#include "check_util.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static Reply answer(const char *path) {
    HttpReq req = {.method = "GET", .path = path, .body = (const uint8_t *)"", .len = 0};
    Reply rep = {0};
    const Route *r = route_match("GET", path);
    route_handle(NULL, r, &req, &rep);
    return rep;
}

START_TEST(test_every_asset_served) {
    ck_assert_int_ge(page_n_assets, 4);
    for (int i = 0; i < page_n_assets; i++) {
        const PageAsset *a = &page_assets[i];
        const char *path = strcmp(a->path, "/index.html") == 0 ? "/" : a->path;
        const Route *r = route_match("GET", path);
        ck_assert_msg(strcmp(route_name(r), "page") == 0, "%s has no row", path);
        ck_assert_int_eq(route_scope(r), ROUTE_PUBLIC);
        Reply rep = answer(path);
        ck_assert_int_eq(rep.status, 200);
        ck_assert_uint_eq(rep.len, a->len);
        ck_assert_int_eq(memcmp(rep.body, a->data, a->len), 0);
        ck_assert_str_eq(rep.content_type, a->content_type);
        ck_assert_ptr_eq(rep.csp, page_csp);
        free(rep.body);
    }
    ck_assert_ptr_eq(page_find("/"), page_find("/index.html"));
    ck_assert_ptr_null(page_find("/nope.js"));
    ck_assert_ptr_null(page_find("/app.js/"));
}
END_TEST

START_TEST(test_strict_policy) {
    ck_assert_ptr_nonnull(strstr(page_csp, "default-src 'self'"));
    ck_assert_ptr_null(strstr(page_csp, "unsafe"));
    const PageAsset *html = page_find("/");
    ck_assert_ptr_nonnull(html);
    ck_assert_str_eq(html->content_type, "text/html; charset=utf-8");
    /* Scripts only by src, no inline handlers or style attributes. */
    ck_assert_ptr_null(strstr(html->data, "<script>"));
    ck_assert_ptr_null(strstr(html->data, " onclick="));
    ck_assert_ptr_null(strstr(html->data, " style="));
    ck_assert_ptr_nonnull(strstr(html->data, "<script src=\"/app.js\""));
    ck_assert_ptr_nonnull(strstr(html->data, "href=\"/favicon.svg\""));
    /* The stable hooks scripts and tests rely on. */
    static const char *const hooks[] = {
        "verify-a",        "verify-b",        "verify-submit", "verify-result", "enroll-subject",
        "enroll-images",   "enroll-submit",   "enroll-result", "subjects",      "identify-image",
        "identify-submit", "identify-result", "api-key"};
    for (size_t i = 0; i < SM_ARRAY_LEN(hooks); i++) {
        char want[64];
        snprintf(want, sizeof want, "id=\"%s\"", hooks[i]);
        ck_assert_msg(strstr(html->data, want), "index.html lacks %s", want);
    }
}
END_TEST

START_TEST(test_nothing_from_elsewhere) {
    size_t total = 0;
    for (int i = 0; i < page_n_assets; i++) {
        const PageAsset *a = &page_assets[i];
        total += a->len;
        ck_assert_uint_eq(strlen(a->data), a->len);
        /* No URL of another origin; the SVG namespace is a name, not a fetch. */
        for (const char *p = a->data; (p = strstr(p, "http")); p++)
            ck_assert_msg(strncmp(p, "http://www.w3.org/2000/svg", 26) == 0, "%s refers to %.40s",
                          a->path, p);
        ck_assert_msg(!strstr(a->data, "//cdn") && !strstr(a->data, "@import"), "%s", a->path);
    }
    ck_assert_uint_eq(total, page_assets_bytes);
    ck_assert_uint_le(total, 200 * 1024);
}
END_TEST

int main(void) {
    Suite *s = suite_create("page");
    TCase *tc = tcase_create("assets");
    tcase_add_test(tc, test_every_asset_served);
    tcase_add_test(tc, test_strict_policy);
    tcase_add_test(tc, test_nothing_from_elsewhere);
    suite_add_tcase(s, tc);
    return check_run(s);
}
