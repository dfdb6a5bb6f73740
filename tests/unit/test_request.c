/*
 * test_request.c — unit tests for request body parsing (multipart/form-data
 * and JSON) and the query-integer helper.
 *
 * A table of malformed bodies, each with the code it must produce; every
 * prefix of a valid multipart body and of a valid JSON body is refused;
 * binary parts holding CRLF and near-delimiters come back byte for byte;
 * base64 in all its accepted spellings decodes to known bytes; the seed
 * bodies under tests/data/request (also the fuzzing corpus) parse as their
 * names say. Seed files hold the Content-Type on their first line and the
 * body after its LF.
 */
#include "siamese/common.h"
#include "siamese/request.h"

#include "check_util.h"

#include <check.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MP "multipart/form-data; boundary=XyZzy"
#define JS "application/json"
#define D "--XyZzy"
#define CD "Content-Disposition: form-data; "

static const char *const image_fields[] = {"a", "b", "image", NULL};
static const ReqLimits limits = {.image_fields = image_fields};

/* malloc that fails the test instead of returning NULL. */
static void *xmalloc(size_t n) {
    void *p = malloc(n);
    ck_assert_ptr_nonnull(p);
    return p;
}

static int parse(const char *ct, const void *body, size_t len, ReqForm **f, char *err) {
    *f = (ReqForm *)&f; /* must be reset to NULL on failure */
    int rc = req_parse(ct, body, len, &limits, f, err);
    if (rc < 0)
        ck_assert_ptr_null(*f);
    return rc;
}

static ReqForm *parse_ok(const char *ct, const void *body, size_t len) {
    ReqForm *f;
    char err[SM_ERRMAX] = "";
    int rc = parse(ct, body, len, &f, err);
    ck_assert_msg(rc == 0, "expected success, got %d (%s)", rc, err);
    return f;
}

static void expect_field(const ReqForm *f, const char *name, int idx, const void *data,
                         size_t len) {
    const ReqField *fl = req_get(f, name, idx);
    ck_assert_msg(fl != NULL, "field %s[%d] missing", name, idx);
    ck_assert_str_eq(fl->name, name);
    ck_assert_uint_eq(fl->len, len);
    if (len)
        ck_assert_mem_eq(fl->data, data, len);
    ck_assert_uint_eq(fl->data[len], 0);
}

/* ---- Malformed input table ----------------------------------------------- */

typedef struct {
    const char *what;
    const char *ct;
    const char *body;
    size_t len; /* 0: strlen(body) */
    int code;
} Bad;

/* Bodies holding NUL bytes, whose lengths come from sizeof. */
#define NUL_Q "--ab\0cd--"
#define NUL_T "--ab\0cd\r\n" CD "name=\"x\"\r\n\r\n1\r\n--ab\0cd--"
#define NUL_H D "\r\n" CD "name=\"x\0\"\r\n\r\nx\r\n" D "--"

static const Bad bad_cases[] = {
    {"no content type", NULL, "{}", 0, -EPROTONOSUPPORT},
    {"text/plain", "text/plain", "hello", 0, -EPROTONOSUPPORT},
    {"urlencoded", "application/x-www-form-urlencoded", "a=1", 0, -EPROTONOSUPPORT},
    {"multipart/mixed", "multipart/mixed; boundary=XyZzy", D "--", 0, -EPROTONOSUPPORT},
    {"json latin1", "application/json; charset=latin1", "{}", 0, -EPROTONOSUPPORT},
    {"json-ish type", "application/jsonx", "{}", 0, -EPROTONOSUPPORT},
    {"missing boundary", "multipart/form-data", D "--", 0, -EINVAL},
    {"empty boundary token", "multipart/form-data; boundary=", D "--", 0, -EINVAL},
    {"empty quoted boundary", "multipart/form-data; boundary=\"\"", "----", 0, -EINVAL},
    {"boundary 71 chars",
     "multipart/form-data; boundary=12345678901234567890123456789012345678901234567890"
     "123456789012345678901",
     "--", 0, -EINVAL},
    {"boundary with NUL (quoted)", "multipart/form-data; boundary=\"ab\0cd\"", NUL_Q,
     sizeof NUL_Q - 1, -EINVAL},
    {"boundary with NUL (token)", "multipart/form-data; boundary=ab\0cd", NUL_T, sizeof NUL_T - 1,
     -EINVAL},
    {"boundary with CR", "multipart/form-data; boundary=\"ab\rcd\"", "--ab\rcd--", 0, -EINVAL},
    {"boundary with LF", "multipart/form-data; boundary=\"ab\ncd\"", "--ab\ncd--", 0, -EINVAL},
    {"boundary with @", "multipart/form-data; boundary=\"ab@cd\"", "--ab@cd--", 0, -EINVAL},
    {"boundary ends in space", "multipart/form-data; boundary=\"abc \"", "--abc --", 0, -EINVAL},
    {"two boundaries", MP "; boundary=other", D "--", 0, -EINVAL},
    {"unterminated quote in type", "multipart/form-data; boundary=\"abc", "--abc--", 0, -EINVAL},
    {"junk in content type", "application/json garbage", "{}", 0, -EINVAL},
    {"empty multipart body", MP, "", 0, -EINVAL},
    {"no delimiter", MP, "hello world", 0, -EINVAL},
    {"delimiter not at line start", MP, "x" D "--", 0, -EINVAL},
    {"no closing delimiter", MP, D "\r\n" CD "name=\"label\"\r\n\r\nhello\r\n", 0, -EINVAL},
    {"ends after a part delimiter", MP, D "\r\n" CD "name=\"label\"\r\n\r\nhello\r\n" D, 0,
     -EINVAL},
    {"junk after delimiter", MP, D "junk\r\n" CD "name=\"x\"\r\n\r\n1\r\n" D "--", 0, -EINVAL},
    {"junk after inner delimiter", MP, D "\r\n" CD "name=\"x\"\r\n\r\n1\r\n" D "X\r\n", 0, -EINVAL},
    {"no Content-Disposition", MP, D "\r\nContent-Type: text/plain\r\n\r\nx\r\n" D "--", 0,
     -EINVAL},
    {"no headers at all", MP, D "\r\n\r\nx\r\n" D "--", 0, -EINVAL},
    {"disposition without name", MP, D "\r\n" CD "filename=\"a.png\"\r\n\r\nx\r\n" D "--", 0,
     -EINVAL},
    {"disposition attachment", MP,
     D "\r\nContent-Disposition: attachment; name=\"x\"\r\n\r\nx\r\n" D "--", 0, -EINVAL},
    {"empty name", MP, D "\r\n" CD "name=\"\"\r\n\r\nx\r\n" D "--", 0, -EINVAL},
    {"name with a space", MP, D "\r\n" CD "name=\"a b\"\r\n\r\nx\r\n" D "--", 0, -EINVAL},
    {"two dispositions", MP, D "\r\n" CD "name=\"x\"\r\n" CD "name=\"y\"\r\n\r\nx\r\n" D "--", 0,
     -EINVAL},
    {"name given twice", MP, D "\r\n" CD "name=\"x\"; name=\"y\"\r\n\r\nx\r\n" D "--", 0, -EINVAL},
    {"unterminated quoted name", MP, D "\r\n" CD "name=\"x\r\n\r\nx\r\n" D "--", 0, -EINVAL},
    {"folded header", MP, D "\r\n" CD "name=\"x\"\r\nX-A: b\r\n c\r\n\r\nx\r\n" D "--", 0, -EINVAL},
    {"disposition cut by a fold", MP, D "\r\n" CD "\r\n name=\"x\"\r\n\r\nx\r\n" D "--", 0,
     -EINVAL},
    {"header without colon", MP, D "\r\n" CD "name=\"x\"\r\nBogus\r\n\r\nx\r\n" D "--", 0, -EINVAL},
    {"space before colon", MP,
     D "\r\nContent-Disposition : form-data; name=\"x\"\r\n\r\nx\r\n" D "--", 0, -EINVAL},
    {"bare LF in CRLF headers", MP, D "\r\n" CD "name=\"x\"\n\r\nx\r\n" D "--", 0, -EINVAL},
    {"NUL in header", MP, NUL_H, sizeof NUL_H - 1, -EINVAL},
    {"two content types", MP,
     D "\r\n" CD "name=\"x\"\r\nContent-Type: a/b\r\nContent-Type: a/b\r\n\r\nx\r\n" D "--", 0,
     -EINVAL},
    /* found by fuzzing: a tab is legal in a header line but not in a filename */
    {"tab in filename", MP, D "\r\n" CD "name=\"b\"; filename=\"a\tb\"\r\n\r\nx\r\n" D "--", 0,
     -EINVAL},
    {"text not UTF-8", MP, D "\r\n" CD "name=\"label\"\r\n\r\n\xff\xfe\r\n" D "--", 0, -EINVAL},
    {"truncated in headers", MP, D "\r\n" CD "name=\"x\"", 0, -EINVAL},
    {"json empty body", JS, "", 0, -EINVAL},
    {"json bad syntax", JS, "{\"a\":", 0, -EINVAL},
    {"json array", JS, "[1,2]", 0, -EINVAL},
    {"json string", JS, "\"str\"", 0, -EINVAL},
    {"json number", JS, "5", 0, -EINVAL},
    {"json trailing comma", JS, "{\"k\":1,}", 0, -EINVAL},
    {"json single quotes", JS, "{'k':1}", 0, -EINVAL},
    {"json NaN", JS, "{\"k\":NaN}", 0, -EINVAL},
    {"json trailing data", JS, "{}x", 0, -EINVAL},
    {"json two objects", JS, "{}{}", 0, -EINVAL},
    {"json NUL after object", JS, "{}\0", 3, -EINVAL},
    {"json unbalanced", JS, "{]}", 0, -EINVAL},
    {"json \\u0000", JS, "{\"k\":\"a\\u0000b\"}", 0, -EINVAL},
    {"json raw control char", JS, "{\"k\":\"a\x01b\"}", 0, -EINVAL},
    {"json raw newline in string", JS, "{\"k\":\"a\nb\"}", 0, -EINVAL},
    {"json control char outside", JS, "{\x01\"k\":1}", 0, -EINVAL},
    {"json invalid UTF-8", JS, "{\"k\":\"\xc3\x28\"}", 0, -EINVAL},
    {"json overlong UTF-8", JS, "{\"k\":\"\xc0\xaf\"}", 0, -EINVAL},
    {"json lone surrogate", JS, "{\"k\":\"\\ud800\"}", 0, -EINVAL},
    {"json duplicate keys", JS, "{\"a\":\"QQ==\",\"a\":\"QQ==\"}", 0, -EINVAL},
    {"json duplicate null keys", JS, "{\"k\":null,\"k\":1}", 0, -EINVAL},
    {"json nested duplicate", JS, "{\"metadata\":{\"x\":1,\"y\":[{\"z\":1,\"z\":2}]}}", 0, -EINVAL},
    {"json empty key", JS, "{\"\":1}", 0, -EINVAL},
    {"json key with space", JS, "{\"a b\":1}", 0, -EINVAL},
    {"json huge number", JS, "{\"k\":1e400}", 0, -EINVAL},
    {"base64 bad char", JS, "{\"a\":\"QUJD@A==\"}", 0, -EINVAL},
    {"base64 impossible length", JS, "{\"a\":\"QUJDR\"}", 0, -EINVAL},
    {"base64 mixed alphabets", JS, "{\"a\":\"ab+-\"}", 0, -EINVAL},
    {"base64 short padding", JS, "{\"a\":\"QQ=\"}", 0, -EINVAL},
    {"base64 data after padding", JS, "{\"a\":\"QQ==QQ==\"}", 0, -EINVAL},
    {"base64 stray bits", JS, "{\"a\":\"QR==\"}", 0, -EINVAL},
    {"data URL not base64", JS, "{\"a\":\"data:image/png,abcd\"}", 0, -EINVAL},
    {"data URL bad type", JS, "{\"a\":\"data:image/png/x;base64,QQ==\"}", 0, -EINVAL},
    {"data URL no comma", JS, "{\"a\":\"data:image/png;base64\"}", 0, -EINVAL},
    {"image is a number", JS, "{\"a\":5}", 0, -EINVAL},
    {"image is an object", JS, "{\"image\":{\"x\":\"QQ==\"}}", 0, -EINVAL},
    {"image array holds a number", JS, "{\"image\":[\"QQ==\",5]}", 0, -EINVAL},
    {"image array holds null", JS, "{\"image\":[\"QQ==\",null]}", 0, -EINVAL},
};

START_TEST(test_malformed_table) {
    const Bad *c = &bad_cases[_i];
    size_t len = c->len ? c->len : strlen(c->body);
    char err[SM_ERRMAX] = "";
    ReqForm *f;
    int rc = parse(c->ct, c->body, len, &f, err);
    ck_assert_msg(rc == c->code, "%s: expected %d, got %d (%s)", c->what, c->code, rc, err);
    ck_assert_msg(err[0] != 0, "%s: no message", c->what);
}
END_TEST

/* ---- Limits -------------------------------------------------------------- */

/* A malloc'ed multipart body of n text parts "k<i>". */
static char *many_parts(int n, size_t *len) {
    size_t cap = (size_t)n * 96 + 16, off = 0;
    char *b = xmalloc(cap);
    for (int i = 0; i < n; i++)
        off += (size_t)snprintf(b + off, cap - off, D "\r\n" CD "name=\"k%d\"\r\n\r\nv\r\n", i);
    off += (size_t)snprintf(b + off, cap - off, D "--\r\n");
    *len = off;
    return b;
}

START_TEST(test_limits) {
    char err[SM_ERRMAX];
    ReqForm *f;
    size_t len;
    char *b = many_parts(REQ_DEFAULT_MAX_PARTS, &len);
    f = parse_ok(MP, b, len);
    ck_assert_int_eq(req_n_fields(f), REQ_DEFAULT_MAX_PARTS);
    req_free(f);
    free(b);
    b = many_parts(REQ_DEFAULT_MAX_PARTS + 1, &len);
    ck_assert_int_eq(parse(MP, b, len, &f, err), -E2BIG);
    free(b);

    /* A header line of exactly the limit passes; one byte more does not. */
    char big[4096];
    size_t pad = REQ_DEFAULT_MAX_HEADER_LINE - strlen("X-Pad: ");
    int n = snprintf(big, sizeof big, D "\r\n" CD "name=\"x\"\r\nX-Pad: %0*d\r\n\r\n1\r\n" D "--",
                     (int)pad, 0);
    f = parse_ok(MP, big, (size_t)n);
    req_free(f);
    n = snprintf(big, sizeof big, D "\r\n" CD "name=\"x\"\r\nX-Pad: %0*d\r\n\r\n1\r\n" D "--",
                 (int)pad + 1, 0);
    ck_assert_int_eq(parse(MP, big, (size_t)n, &f, err), -E2BIG);
    n = snprintf(big, sizeof big, D "\r\n" CD "name=\"x\"\r\nX-Pad: %0*d", 3000, 0);
    ck_assert_int_eq(parse(MP, big, (size_t)n, &f, err), -E2BIG);

    /* REQ_MAX_PART_HEADERS header lines pass, one more does not. */
    n = snprintf(big, sizeof big, D "\r\n" CD "name=\"x\"\r\n");
    for (int i = 1; i < REQ_MAX_PART_HEADERS; i++)
        n += snprintf(big + n, sizeof big - (size_t)n, "X-%d: y\r\n", i);
    int head = n;
    n += snprintf(big + n, sizeof big - (size_t)n, "\r\n1\r\n" D "--");
    f = parse_ok(MP, big, (size_t)n);
    req_free(f);
    n = head + snprintf(big + head, sizeof big - (size_t)head, "X-more: y\r\n\r\n1\r\n" D "--");
    ck_assert_int_eq(parse(MP, big, (size_t)n, &f, err), -E2BIG);

    /* Text fields are capped; image fields are not. */
    size_t tl = REQ_DEFAULT_MAX_TEXT + 1;
    char *t = xmalloc(tl + 512);
    n = snprintf(t, 256, D "\r\n" CD "name=\"label\"\r\n\r\n");
    memset(t + n, 'x', tl);
    n += (int)tl;
    n += snprintf(t + n, 256, "\r\n" D "--");
    ck_assert_int_eq(parse(MP, t, (size_t)n, &f, err), -E2BIG);
    memcpy(t + strlen(D "\r\n" CD "name=\""), "image", 5);
    f = parse_ok(MP, t, (size_t)n);
    ck_assert_uint_eq(req_get(f, "image", 0)->len, tl);
    req_free(f);
    free(t);

    /* Explicit limits override the defaults. */
    ReqLimits lim1 = {.max_parts = 2}, lim2 = {.max_header_line = 60}, lim3 = {.max_text = 3};
    b = many_parts(2, &len);
    ck_assert_int_eq(req_parse(MP, (uint8_t *)b, len, &lim1, &f, err), 0);
    req_free(f);
    free(b);
    b = many_parts(3, &len);
    ck_assert_int_eq(req_parse(MP, (uint8_t *)b, len, &lim1, &f, err), -E2BIG);
    ck_assert_int_eq(req_parse(MP, (uint8_t *)b, len, &lim2, &f, err), 0);
    req_free(f);
    free(b);
    const char *longish = D "\r\n" CD "name=\"abcdefghijklmnopqrstuvwxyz\"\r\n\r\n1\r\n" D "--";
    ck_assert_int_eq(req_parse(MP, (const uint8_t *)longish, strlen(longish), &lim2, &f, err),
                     -E2BIG);
    ck_assert_int_eq(req_parse(JS, (const uint8_t *)"{\"t\":\"abcd\"}", 12, &lim3, &f, err),
                     -E2BIG);
    ck_assert_int_eq(req_parse(JS, (const uint8_t *)"{\"t\":\"abc\"}", 11, &lim3, &f, err), 0);
    req_free(f);
    ReqLimits lim4 = {.max_json_depth = 1, .max_json_values = 3};
    ck_assert_int_eq(req_parse(JS, (const uint8_t *)"{\"t\":{}}", 8, &lim4, &f, err), -EINVAL);
    ck_assert_int_eq(req_parse(JS, (const uint8_t *)"{\"t\":1,\"u\":2}", 13, &lim4, &f, err), 0);
    req_free(f);
    ck_assert_int_eq(
        req_parse(JS, (const uint8_t *)"{\"t\":1,\"u\":2,\"v\":3}", 19, &lim4, &f, err), -E2BIG);
}
END_TEST

static char *nested(int depth, size_t *len) {
    char *s = xmalloc((size_t)depth * 2 + 16);
    size_t o = 0;
    o += (size_t)sprintf(s, "{\"k\":");
    for (int i = 0; i < depth; i++)
        s[o++] = '[';
    for (int i = 0; i < depth; i++)
        s[o++] = ']';
    s[o++] = '}';
    *len = o;
    return s;
}

START_TEST(test_json_limits) {
    char err[SM_ERRMAX];
    ReqForm *f;
    size_t len;
    char *s = nested(10000, &len);
    ck_assert_int_eq(parse(JS, s, len, &f, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "deeper"));
    free(s);
    /* The object itself is level 1: depth-1 arrays inside fit exactly. */
    s = nested(REQ_DEFAULT_MAX_JSON_DEPTH - 1, &len);
    f = parse_ok(JS, s, len);
    req_free(f);
    free(s);
    s = nested(REQ_DEFAULT_MAX_JSON_DEPTH, &len);
    ck_assert_int_eq(parse(JS, s, len, &f, err), -EINVAL);
    free(s);
    /* An unclosed 10000-deep prefix is refused by the scan as well. */
    char deep[10010] = "{\"k\":";
    memset(deep + 5, '{', 10000);
    ck_assert_int_eq(parse(JS, deep, 10005, &f, err), -EINVAL);

    /* Too many values, at any depth. */
    size_t nv = REQ_DEFAULT_MAX_JSON_VALUES + 1;
    char *v = xmalloc(nv * 2 + 16);
    size_t o = (size_t)sprintf(v, "{\"k\":[");
    for (size_t i = 0; i < nv; i++) {
        if (i)
            v[o++] = ',';
        v[o++] = '0';
    }
    memcpy(v + o, "]}", 2);
    o += 2;
    ck_assert_int_eq(parse(JS, v, o, &f, err), -E2BIG);
    free(v);

    /* Too many image fields through one array. */
    char imgs[1024] = "{\"image\":[\"QQ==\"";
    for (int i = 0; i < REQ_DEFAULT_MAX_PARTS; i++)
        strcat(imgs, ",\"QQ==\"");
    strcat(imgs, "]}");
    o = strlen(imgs);
    ck_assert_int_eq(parse(JS, imgs, o, &f, err), -E2BIG);

    /* A text member over the cap. */
    size_t tl = REQ_DEFAULT_MAX_TEXT + 1;
    char *t = xmalloc(tl + 32);
    o = (size_t)sprintf(t, "{\"label\":\"");
    memset(t + o, 'x', tl);
    o += tl;
    o += (size_t)sprintf(t + o, "\"}");
    ck_assert_int_eq(parse(JS, t, o, &f, err), -E2BIG);
    free(t);
}
END_TEST

/* ---- Multipart round trips ----------------------------------------------- */

/* Binary content that looks like delimiters without being one. */
static size_t tricky_bytes(uint8_t *out) {
    static const char *const pieces[] = {
        "\r\n--XyZzz", "\r\n--XyZz", "\r\n--", "--XyZzy",   "x--XyZzy--",
        "\r\n\r\n",    "\r",         "\n",     "\n--XyZzy", "\r\r\n-\r\n--XyZz\r\n--XyZzY",
    };
    size_t n = 0;
    for (int i = 0; i < 256; i++)
        out[n++] = (uint8_t)i;
    for (size_t i = 0; i < SM_ARRAY_LEN(pieces); i++) {
        memcpy(out + n, pieces[i], strlen(pieces[i]));
        n += strlen(pieces[i]);
    }
    out[n++] = '\r'; /* ends just before the real delimiter's CRLF */
    return n;
}

/* A body with a preamble, a binary image, a text field, two "image" parts,
 * an empty part and an epilogue. */
static size_t build_multipart(uint8_t *buf, const uint8_t *bin, size_t bin_len, size_t *close_end) {
    size_t n = 0;
#define PUT(s) (memcpy(buf + n, (s), strlen(s)), n += strlen(s))
    PUT("This is the preamble.\r\n" D "\r\n");
    PUT(CD "name=\"a\"; filename=\"pic.png\"\r\nContent-Type: image/png\r\n\r\n");
    memcpy(buf + n, bin, bin_len);
    n += bin_len;
    PUT("\r\n" D "  \t\r\n");
    PUT("content-disposition: FORM-DATA; name=label\r\n\r\nhello\r\nworld\r\n" D "\r\n");
    PUT(CD "name=\"image\"; filename=\"one.jpg\"\r\n\r\nfirst\r\n" D "\r\n");
    PUT(CD "name=\"image\"\r\nX-Ignored: yes\r\n\r\nsecond\r\n" D "\r\n");
    PUT(CD "name=\"empty\"\r\n\r\n\r\n" D "--");
    *close_end = n;
    PUT("\r\nThis is the epilogue; " D "\r\n junk is ignored here.\r\n");
#undef PUT
    return n;
}

static void check_multipart_form(const ReqForm *f, const uint8_t *bin, size_t bin_len) {
    ck_assert_int_eq(req_n_fields(f), 5);
    expect_field(f, "a", 0, bin, bin_len);
    ck_assert_str_eq(req_get(f, "a", 0)->content_type, "image/png");
    ck_assert_str_eq(req_get(f, "a", 0)->filename, "pic.png");
    ck_assert_str_eq(req_text(f, "label"), "hello\r\nworld");
    ck_assert_ptr_null(req_get(f, "label", 0)->content_type);
    ck_assert_ptr_null(req_get(f, "label", 0)->filename);
    ck_assert_int_eq(req_count(f, "image"), 2);
    expect_field(f, "image", 0, "first", 5);
    ck_assert_str_eq(req_get(f, "image", 0)->filename, "one.jpg");
    expect_field(f, "image", 1, "second", 6);
    ck_assert_ptr_null(req_get(f, "image", 2));
    ck_assert_str_eq(req_text(f, "empty"), "");
    const char *order[] = {"a", "label", "image", "image", "empty"};
    for (int i = 0; i < 5; i++)
        ck_assert_str_eq(req_field(f, i)->name, order[i]);
    ck_assert_ptr_null(req_field(f, 5));
    ck_assert_ptr_null(req_field(f, -1));
}

START_TEST(test_multipart_round_trip) {
    uint8_t bin[512], buf[2048];
    size_t bin_len = tricky_bytes(bin), close_end;
    size_t n = build_multipart(buf, bin, bin_len, &close_end);
    ReqForm *f = parse_ok(MP, buf, n);
    memset(buf, 0, sizeof buf); /* the form holds copies */
    check_multipart_form(f, bin, bin_len);
    ck_assert_int_eq(req_count(f, "missing"), 0);
    ck_assert_ptr_null(req_text(f, "missing"));
    req_free(f);
}
END_TEST

START_TEST(test_multipart_every_prefix) {
    uint8_t bin[512], buf[2048];
    size_t bin_len = tricky_bytes(bin), close_end;
    size_t n = build_multipart(buf, bin, bin_len, &close_end);
    for (size_t len = 0; len <= n; len++) {
        /* A copy of exactly len bytes, so ASan sees any read past the end. */
        uint8_t *cut = xmalloc(len ? len : 1);
        memcpy(cut, buf, len);
        char err[SM_ERRMAX] = "";
        ReqForm *f;
        int rc = parse(MP, cut, len, &f, err);
        if (len < close_end) {
            ck_assert_msg(rc == -EINVAL, "prefix %zu/%zu: got %d (%s)", len, n, rc, err);
        } else {
            ck_assert_msg(rc == 0, "prefix %zu: %s", len, err);
            check_multipart_form(f, bin, bin_len);
        }
        req_free(f);
        free(cut);
    }
}
END_TEST

START_TEST(test_multipart_variants) {
    /* Bare LF line ends throughout. */
    const char *lf = "--XyZzy\n" CD "name=\"a\"\nContent-Type: image/png\n\nab\r\ncd\n--XyZzy\n" CD
                     "name=\"k\"\n\n5\n--XyZzy--\n";
    ReqForm *f = parse_ok(MP, lf, strlen(lf));
    expect_field(f, "a", 0, "ab\r\ncd", 6);
    ck_assert_str_eq(req_text(f, "k"), "5");
    req_free(f);

    /* A quoted boundary using every special bchar, and parameters in odd case and spacing. */
    const char *ct = "Multipart/Form-Data ;  charset=utf-8;BOUNDARY=\"a'()+_,-./:=? b\"";
    const char *body = "--a'()+_,-./:=? b\r\n" CD "name=\"x\\\"y\"; filename=\"C:\\\\f.png\";"
                       "\r\n\r\n1\r\n--a'()+_,-./:=? b--";
    f = parse_ok(ct, body, strlen(body));
    ck_assert_str_eq(req_field(f, 0)->name, "x\"y");
    ck_assert_str_eq(req_field(f, 0)->filename, "C:\\f.png");
    req_free(f);

    /* No parts at all: the close delimiter alone (what browsers send for an empty form). */
    f = parse_ok(MP, D "--\r\n", strlen(D "--\r\n"));
    ck_assert_int_eq(req_n_fields(f), 0);
    req_free(f);

    /* A 70-character boundary is the longest allowed. */
    char ct70[128], body70[256];
    char b70[71];
    memset(b70, 'b', 70);
    b70[70] = 0;
    snprintf(ct70, sizeof ct70, "multipart/form-data; boundary=%s", b70);
    int n =
        snprintf(body70, sizeof body70, "--%s\r\n" CD "name=\"x\"\r\n\r\n1\r\n--%s--", b70, b70);
    f = parse_ok(ct70, body70, (size_t)n);
    ck_assert_str_eq(req_text(f, "x"), "1");
    req_free(f);

    /* A text field holding a NUL byte: present, but not a C string. */
    const char nul[] = D "\r\n" CD "name=\"t\"\r\n\r\na\0b\r\n" D "--";
    f = parse_ok(MP, nul, sizeof nul - 1);
    expect_field(f, "t", 0, "a\0b", 3);
    ck_assert_ptr_null(req_text(f, "t"));
    req_free(f);
}
END_TEST

/* ---- JSON ---------------------------------------------------------------- */

START_TEST(test_json_base64) {
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const uint8_t url_bytes[6] = {0xfb, 0xff, 0xbf, 0xfb, 0xff, 0xbf};
    const char *body = "{\"a\": \"SGVsbG8gV29ybGQ=\", \"b\": \"SGVsbG8gV29ybGQ\","
                       " \"image\": [\"-_-_-_-_\", \"+/+/+/+/\", "
                       "\"data:image/png;base64,iVBORw0KGgo=\", \"DATA:;BASE64,QUI\","
                       " \"Q\\/8=\", \"QU JD\\nRA==\", \"\"]}";
    ReqForm *f = parse_ok(JS "; charset=UTF-8", body, strlen(body));
    ck_assert_int_eq(req_n_fields(f), 9);
    expect_field(f, "a", 0, "Hello World", 11);
    expect_field(f, "b", 0, "Hello World", 11);
    ck_assert_int_eq(req_count(f, "image"), 7);
    expect_field(f, "image", 0, url_bytes, 6);
    expect_field(f, "image", 1, url_bytes, 6);
    expect_field(f, "image", 2, png_magic, 8);
    ck_assert_str_eq(req_get(f, "image", 2)->content_type, "image/png");
    expect_field(f, "image", 3, "AB", 2);
    ck_assert_ptr_null(req_get(f, "image", 3)->content_type);
    expect_field(f, "image", 4, "C\xff", 2);
    expect_field(f, "image", 5, "ABCD", 4);
    expect_field(f, "image", 6, "", 0);
    ck_assert_ptr_null(req_get(f, "a", 0)->content_type);
    ck_assert_ptr_null(req_get(f, "a", 0)->filename);
    req_free(f);

    /* Every length of padded and unpadded base64, standard and URL-safe. */
    static const char *const enc[] = {"", "QQ", "QUI", "QUJD", "QUJDRA", "QUJDREU", "QUJDREVG"};
    for (int i = 0; i < 7; i++) {
        char js[64];
        const char *pads = (strlen(enc[i]) % 4) == 2 ? "==" : (strlen(enc[i]) % 4) == 3 ? "=" : "";
        for (int padded = 0; padded < 2; padded++) {
            snprintf(js, sizeof js, "{\"a\":\"%s%s\"}", enc[i], padded ? pads : "");
            f = parse_ok(JS, js, strlen(js));
            expect_field(f, "a", 0, "ABCDEF", (size_t)i);
            req_free(f);
        }
    }
}
END_TEST

START_TEST(test_json_members) {
    const char *body = "{ \"subject\": \"alice \\u00e9\\n\", \"k\": 5, \"thr\": 0.25, "
                       "\"neg\": -3e2, \"ok\": true, \"no\": false, \"gone\": null, "
                       "\"metadata\": { \"x\" : [1, 2.5, \"s\"], \"y\": {\"z\": null} },"
                       " \"list\": [ 1 , 2 ], \"image\": [], \"a\": null }\n";
    ReqForm *f = parse_ok(JS, body, strlen(body));
    ck_assert_str_eq(req_text(f, "subject"), "alice \xc3\xa9\n");
    ck_assert_str_eq(req_text(f, "k"), "5");
    ck_assert_str_eq(req_text(f, "thr"), "0.25");
    ck_assert_str_eq(req_text(f, "neg"), "-3e2");
    ck_assert_str_eq(req_text(f, "ok"), "true");
    ck_assert_str_eq(req_text(f, "no"), "false");
    ck_assert_ptr_null(req_text(f, "gone"));
    ck_assert_int_eq(req_count(f, "gone"), 0);
    ck_assert_str_eq(req_text(f, "metadata"), "{ \"x\" : [1, 2.5, \"s\"], \"y\": {\"z\": null} }");
    ck_assert_str_eq(req_text(f, "list"), "[ 1 , 2 ]");
    ck_assert_int_eq(req_count(f, "image"), 0);
    ck_assert_int_eq(req_count(f, "a"), 0);
    ck_assert_int_eq(req_n_fields(f), 8);
    /* Body order. */
    ck_assert_str_eq(req_field(f, 0)->name, "subject");
    ck_assert_str_eq(req_field(f, 7)->name, "list");
    req_free(f);

    f = parse_ok(JS, " {}\r\n\t ", 7);
    ck_assert_int_eq(req_n_fields(f), 0);
    req_free(f);
}
END_TEST

START_TEST(test_json_every_prefix) {
    const char *body = "{\"a\":\"data:image/png;base64,iVBORw0KGgo=\",\"image\":[\"QUJD\",\"QQ\"],"
                       "\"metadata\":{\"x\":[1,{\"y\":\"\\u00e9\"}]},\"k\":12,\"b\":\"QUI=\"}";
    size_t n = strlen(body);
    for (size_t len = 0; len <= n; len++) {
        char *cut = xmalloc(len ? len : 1);
        memcpy(cut, body, len);
        char err[SM_ERRMAX] = "";
        ReqForm *f;
        int rc = parse(JS, cut, len, &f, err);
        if (len < n)
            ck_assert_msg(rc == -EINVAL, "prefix %zu: got %d (%s)", len, rc, err);
        else
            ck_assert_msg(rc == 0 && req_n_fields(f) == 6, "full body: %d (%s)", rc, err);
        req_free(f);
        free(cut);
    }
}
END_TEST

/* ---- Accessors and query integers ---------------------------------------- */

START_TEST(test_accessors_null) {
    ck_assert_int_eq(req_n_fields(NULL), 0);
    ck_assert_ptr_null(req_field(NULL, 0));
    ck_assert_int_eq(req_count(NULL, "a"), 0);
    ck_assert_ptr_null(req_get(NULL, "a", 0));
    ck_assert_ptr_null(req_text(NULL, "a"));
    req_free(NULL);
    /* NULL body with length 0, and NULL limits. */
    ReqForm *f = NULL;
    char err[SM_ERRMAX];
    ck_assert_int_eq(req_parse(JS, NULL, 0, NULL, &f, err), -EINVAL);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(req_parse(JS, (const uint8_t *)"{\"a\":\"QQ==\"}", 12, NULL, &f, err), 0);
    ck_assert_str_eq(req_text(f, "a"), "QQ=="); /* no image fields: text */
    ck_assert_ptr_null(req_get(f, "a", 1));
    ck_assert_ptr_null(req_get(f, "a", -1));
    req_free(f);
}
END_TEST

typedef struct {
    const char *s;
    long lo, hi;
    int code;
    long want;
} QCase;

static const QCase qcases[] = {
    {"0", 0, 10, 0, 0},
    {"7", 1, 100, 0, 7},
    {"007", 1, 100, 0, 7},
    {"100", 1, 100, 0, 100},
    {"-5", -10, 10, 0, -5},
    {"-0", -1, 1, 0, 0},
    {"9223372036854775807", 0, LONG_MAX, 0, LONG_MAX},
    {"-9223372036854775808", LONG_MIN, 0, 0, LONG_MIN},
    {"9223372036854775808", 0, LONG_MAX, -ERANGE, 0},
    {"-9223372036854775809", LONG_MIN, 0, -ERANGE, 0},
    {"99999999999999999999999", 0, LONG_MAX, -ERANGE, 0},
    {"101", 1, 100, -ERANGE, 0},
    {"0", 1, 100, -ERANGE, 0},
    {"-1", 0, 100, -ERANGE, 0},
    {"", 0, 10, -EINVAL, 0},
    {"-", 0, 10, -EINVAL, 0},
    {"+5", 0, 10, -EINVAL, 0},
    {" 5", 0, 10, -EINVAL, 0},
    {"5 ", 0, 10, -EINVAL, 0},
    {"0x10", 0, 100, -EINVAL, 0},
    {"1e2", 0, 1000, -EINVAL, 0},
    {"5.0", 0, 10, -EINVAL, 0},
    {"--5", -10, 10, -EINVAL, 0},
    {"\xd9\xa5", 0, 10, -EINVAL, 0}, /* Arabic-Indic five */
};

START_TEST(test_query_int) {
    const QCase *c = &qcases[_i];
    long v = 12345;
    char err[SM_ERRMAX] = "";
    int rc = req_query_int(c->s, c->lo, c->hi, &v, err);
    ck_assert_msg(rc == c->code, "'%s': expected %d, got %d", c->s, c->code, rc);
    ck_assert_int_eq(v, rc == 0 ? c->want : 12345);
    if (rc < 0)
        ck_assert(err[0] != 0);
}
END_TEST

START_TEST(test_query_absent) {
    long v = 3;
    ck_assert_int_eq(req_query_int(NULL, 0, 10, &v, NULL), SM_ABSENT);
    ck_assert_int_eq(v, 3);
}
END_TEST

/* ---- Seed bodies ----------------------------------------------------------- */

static const struct {
    const char *file;
    int code;
} seeds[] = {
    {"valid_multipart.req", 0},
    {"valid_multipart_lf.req", 0},
    {"valid_json.req", 0},
    {"bad_nul_boundary.req", -EINVAL},
    {"bad_deep_json.req", -EINVAL},
    {"bad_truncated_multipart.req", -EINVAL},
    {"bad_duplicate_keys.req", -EINVAL},
};

START_TEST(test_seed_files) {
    const char *dir = getenv("SM_TEST_DATA");
    ck_assert_msg(dir != NULL, "SM_TEST_DATA is not set");
    for (size_t i = 0; i < SM_ARRAY_LEN(seeds); i++) {
        char path[1024], err[SM_ERRMAX] = "";
        snprintf(path, sizeof path, "%s/request/%s", dir, seeds[i].file);
        uint8_t *data;
        size_t len;
        ck_assert_msg(sm_read_file(path, 1 << 24, &data, &len, err) == 0, "%s", err);
        uint8_t *nl = memchr(data, '\n', len);
        ck_assert_ptr_nonnull(nl);
        *nl = 0; /* the first line is the Content-Type, as a C string */
        size_t off = (size_t)(nl - data) + 1;
        ReqForm *f;
        int rc = parse((const char *)data, data + off, len - off, &f, err);
        ck_assert_msg(rc == seeds[i].code, "%s: expected %d, got %d (%s)", seeds[i].file,
                      seeds[i].code, rc, err);
        if (rc == 0)
            ck_assert_int_gt(req_n_fields(f), 0);
        req_free(f);
        free(data);
    }
}
END_TEST

START_TEST(test_json_object_check) {
    static const struct {
        const char *text;
        int rc;
    } cases[] = {
        {"{}", 0},
        {"{\"a\":{\"b\":[1,2,{\"c\":null}]}}", 0},
        {" {\"name\":\"Al\\u00e9\"} ", 0},
        {"{\"a\":1}x", -EINVAL},        /* data after the object */
        {"{\"a\":1,\"a\":2}", -EINVAL}, /* duplicate key */
        {"[1]", -EINVAL},               /* not an object */
        {"{\"a\":[[[[1]]]]}", -EINVAL}, /* 5 levels > 4 */
        {"{\"a\":[[[1]]]}", 0},         /* 4 levels */
        {"{\"a\":", -EINVAL},
        {"", -EINVAL},
        {"{\"a\":[1,2,3,4,5,6,7,8,9]}", -E2BIG}, /* more than 8 values */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[SM_ERRMAX] = "";
        int rc = req_json_object_check(cases[i].text, strlen(cases[i].text), 4, 8, err);
        ck_assert_msg(rc == cases[i].rc, "case %zu '%s': %d (%s), want %d", i, cases[i].text, rc,
                      err, cases[i].rc);
    }
}
END_TEST

/* Non-string members are kept as the body spelled them (numbers digit for
 * digit, inner spacing included); a number with a leading zero is refused. */
START_TEST(test_json_raw_members) {
    const char *body = "{ \"metadata\" : {\"n\":1234567890123456789 , \"x\" : [1, 2e0]} ,"
                       "\"k\":\t5 ,\"t\":\"s,:}\" , \"f\": 0.30000000000000004}";
    ReqForm *f = parse_ok(JS, body, strlen(body));
    ck_assert_str_eq(req_text(f, "metadata"), "{\"n\":1234567890123456789 , \"x\" : [1, 2e0]}");
    ck_assert_str_eq(req_text(f, "k"), "5");
    ck_assert_str_eq(req_text(f, "t"), "s,:}");
    ck_assert_str_eq(req_text(f, "f"), "0.30000000000000004");
    req_free(f);
    static const char *const bad[] = {"{\"k\":01}", "{\"k\":-01}", "{\"k\":[0,00]}",
                                      "{\"k\":{\"a\":007}}"};
    for (size_t i = 0; i < SM_ARRAY_LEN(bad); i++) {
        char err[SM_ERRMAX] = "";
        ck_assert_int_eq(parse(JS, bad[i], strlen(bad[i]), &f, err), -EINVAL);
        ck_assert_msg(strstr(err, "leading zero"), "%s: %s", bad[i], err);
        ck_assert_int_eq(req_json_object_check(bad[i], strlen(bad[i]), 8, 100, err), -EINVAL);
    }
    const char *ok = "{\"p\":0,\"q\":-0,\"r\":0.01,\"d\":1e007,\"e\":[10,0]}";
    f = parse_ok(JS, ok, strlen(ok));
    ck_assert_str_eq(req_text(f, "d"), "1e007");
    req_free(f);
}
END_TEST

/* With lim.fields set, a field not listed is -ENOENT as soon as its name is
 * read: a binary part under a misspelt name is not blamed for its bytes. */
START_TEST(test_known_fields) {
    static const char *const fields[] = {"image", "k", NULL};
    ReqLimits lim = limits;
    lim.fields = fields;
    const char mp[] =
        D "\r\n" CD "name=\"images\"; filename=\"x.png\"\r\n\r\n\x89PNG\xff\xfe\r\n" D "--\r\n";
    const char js[] = "{\"k\":1,\"images\":null}";
    ReqForm *f = (ReqForm *)&f;
    char err[SM_ERRMAX] = "";
    ck_assert_int_eq(req_parse(MP, (const uint8_t *)mp, sizeof mp - 1, &lim, &f, err), -ENOENT);
    ck_assert_ptr_null(f);
    ck_assert_msg(strstr(err, "'images'"), "%s", err);
    ck_assert_int_eq(req_parse(JS, (const uint8_t *)js, sizeof js - 1, &lim, &f, err), -ENOENT);
    const char ok[] = "{\"k\":1}";
    ck_assert_int_eq(req_parse(JS, (const uint8_t *)ok, sizeof ok - 1, &lim, &f, err), 0);
    req_free(f);
}
END_TEST

static Suite *request_suite(void) {
    Suite *s = suite_create("request");
    TCase *tc = tcase_create("parse");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_malformed_table, 0, (int)SM_ARRAY_LEN(bad_cases));
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_json_limits);
    tcase_add_test(tc, test_multipart_round_trip);
    tcase_add_test(tc, test_multipart_every_prefix);
    tcase_add_test(tc, test_multipart_variants);
    tcase_add_test(tc, test_json_base64);
    tcase_add_test(tc, test_json_members);
    tcase_add_test(tc, test_json_every_prefix);
    tcase_add_test(tc, test_accessors_null);
    tcase_add_loop_test(tc, test_query_int, 0, (int)SM_ARRAY_LEN(qcases));
    tcase_add_test(tc, test_query_absent);
    tcase_add_test(tc, test_seed_files);
    tcase_add_test(tc, test_json_object_check);
    tcase_add_test(tc, test_json_raw_members);
    tcase_add_test(tc, test_known_fields);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return check_run(request_suite());
}
