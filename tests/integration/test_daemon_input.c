/*
 * test_daemon_input.c — what the daemon makes of request bodies, on a daemon
 * with --max-body 64K:
 *   - both encodings (multipart/form-data and JSON with base64 images, one
 *     string or an array) give identical answers for verify, embed, enroll
 *     and identify, whatever base64 flavour the JSON uses;
 *   - a table of malformed requests, each answered 4xx with the documented
 *     {"error":{"code","message"}} body, the daemon answering /healthz after
 *     every one of them; failed enrolls leave nothing behind.
 */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_harness.h"

static Shared S;
#define P (S.d.port)

static void input_setup(void) {
    const char *const extra[] = {"--max-body", "64K", NULL};
    shared_start(&S, "input", extra);
}
static void input_teardown(void) {
    shared_stop(&S);
}

/* ---- both encodings ---- */

/* Posts the same fields both ways; both replies must be 2xx JSON. */
static void post_both(const char *path, const Field *mp, const Field *js, int n, int status,
                      Resp *a, Resp *b) {
    *a = post_multipart(P, path, mp, n, NULL);
    *b = post_json(P, path, js ? js : mp, n, NULL);
    ASSERT_JSON(*a, status);
    ASSERT_JSON(*b, status);
}

/* Both replies carry the same value under name (exactly). */
static void same_member(const Resp *a, const Resp *b, const char *name) {
    const cJSON *x = cJSON_GetObjectItem(a->json, name), *y = cJSON_GetObjectItem(b->json, name);
    ck_assert_msg(x && cJSON_Compare(x, y, 1), "'%s' differs:\n%s\n%s", name, a->body, b->body);
}

START_TEST(encodings_agree) {
    ck_assert_msg(P > 0, "the shared daemon did not start");
    Buf fm0 = img_file("fm0_c9.png"), fm2 = img_file("fm2_c1.png"), fm3 = img_file("fm3_c1.png");
    Resp a, b;

    Field v[] = {IMAGE("a", fm0), IMAGE("b", fm2), TEXT("threshold", "0.25")};
    Field vj[] = {IMAGE("a", fm0), IMAGE("b", fm2), JRAW("threshold", "0.25")};
    post_both("/verify", v, vj, 3, 200, &a, &b);
    same_member(&a, &b, "distance");
    same_member(&a, &b, "verdict");
    same_member(&a, &b, "threshold");
    ck_assert_double_eq_tol(jnum(a.json, "threshold"), 0.25, 1e-9);
    resp_free(&a), resp_free(&b);

    Field e[] = {IMAGE("image", fm0), IMAGE("image", fm2), IMAGE("image", fm3)};
    post_both("/embed", e, NULL, 3, 200, &a, &b);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(b.json, "embeddings")), 3);
    same_member(&a, &b, "embeddings");
    resp_free(&a), resp_free(&b);

    Field en[] = {TEXT("subject", "enc-mp"), IMAGE("image", fm0), IMAGE("image", fm2),
                  JRAW("metadata", "{\"k\":[1,\"two\",{\"three\":3}]}")};
    Field ej[] = {TEXT("subject", "enc-js"), IMAGE("image", fm0), IMAGE("image", fm2),
                  JRAW("metadata", "{\"k\":[1,\"two\",{\"three\":3}]}")};
    post_both("/enroll", en, ej, 4, 201, &a, &b);
    same_member(&a, &b, "sample_count");
    same_member(&a, &b, "created");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(b.json, "samples")), 2);
    resp_free(&a), resp_free(&b);
    a = http_get(P, "/subjects/enc-mp");
    b = http_get(P, "/subjects/enc-js");
    ASSERT_JSON(a, 200);
    ASSERT_JSON(b, 200);
    same_member(&a, &b, "metadata");
    same_member(&a, &b, "sample_count");
    resp_free(&a), resp_free(&b);

    /* Verify against each subject, each way: four equal distances. */
    double d[4];
    for (int i = 0; i < 4; i++) {
        Field s[] = {TEXT("subject", i % 2 ? "enc-js" : "enc-mp"), IMAGE("image", fm3)};
        Resp r =
            i < 2 ? post_multipart(P, "/verify", s, 2, NULL) : post_json(P, "/verify", s, 2, NULL);
        ASSERT_JSON(r, 200);
        d[i] = jnum(r.json, "distance");
        resp_free(&r);
    }
    ck_assert_msg(d[0] == d[1] && d[1] == d[2] && d[2] == d[3], "%.9g %.9g %.9g %.9g", d[0], d[1],
                  d[2], d[3]);

    Field id[] = {IMAGE("image", fm2), TEXT("k", "2")};
    Field idj[] = {IMAGE("image", fm2), JRAW("k", "2")};
    post_both("/identify", id, idj, 2, 200, &a, &b);
    same_member(&a, &b, "matches");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(a.json, "matches")), 2);
    resp_free(&a), resp_free(&b);
    buf_free(&fm0), buf_free(&fm2), buf_free(&fm3);
}
END_TEST

/* Embeds a JSON body given as text; returns the reply. */
static Resp embed_json_text(const char *json) {
    return http(P, &(Req){.method = "POST",
                          .path = "/embed",
                          .ctype = "application/json; charset=utf-8",
                          .body = json,
                          .len = strlen(json)});
}

START_TEST(json_base64_flavours) {
    Buf img = img_file("fm2_c1.png");
    char *std = b64(img.p, img.len);
    ck_assert_msg(strpbrk(std, "+/") && strchr(std, '='),
                  "fixture chosen so that its base64 has + or / and padding");
    /* URL-safe, unpadded; a data: URL; line-wrapped; an array of one. */
    char *url = strdup(std);
    for (char *c = url; *c; c++)
        *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
    *strchr(url, '=') = 0;
    Buf wrapped = {0};
    for (size_t i = 0; i < strlen(std); i += 76)
        buf_printf(&wrapped, "%.76s\\r\\n", std + i);
    Buf bodies[5] = {0};
    buf_printf(&bodies[0], "{\"image\":\"%s\"}", std);
    buf_printf(&bodies[1], "{\"image\":\"%s\"}", url);
    buf_printf(&bodies[2], "{\"image\":\"data:image/png;base64,%s\"}", std);
    buf_printf(&bodies[3], "{\"image\":\"%s\"}", (char *)wrapped.p);
    buf_printf(&bodies[4], "{\"image\":[\"%s\"]}", std);
    Resp first = embed_json_text((char *)bodies[0].p);
    ASSERT_JSON(first, 200);
    for (int i = 1; i < 5; i++) {
        Resp r = embed_json_text((char *)bodies[i].p);
        ASSERT_JSON(r, 200);
        same_member(&first, &r, "embeddings");
        resp_free(&r);
        buf_free(&bodies[i]);
    }
    /* "image": null means absent; [] likewise. */
    Resp r = embed_json_text("{\"image\":null}");
    ASSERT_JSON(r, 400);
    ck_assert_str_eq(error_code(&r), "missing_field");
    resp_free(&r);
    r = embed_json_text("{\"image\":[]}");
    ASSERT_JSON(r, 400);
    ck_assert_str_eq(error_code(&r), "missing_field");
    resp_free(&r);
    resp_free(&first);
    buf_free(&bodies[0]), buf_free(&wrapped), buf_free(&img);
    free(std), free(url);
}
END_TEST

/* ---- malformed requests ---- */

typedef struct {
    const char *what;
    Req rq;
    Buf body; /* owns rq.body */
    char ctype[96];
    int raw; /* body is a whole HTTP request, sent as is */
    int status;
    const char *code; /* the error code expected, or NULL for any */
} Bad;

enum { MAX_BAD = 160 };
static Bad T[MAX_BAD];
static int NT;

static Bad *row(const char *what, const char *method, const char *path, int status,
                const char *code) {
    ck_assert(NT < MAX_BAD);
    Bad *b = &T[NT++];
    *b =
        (Bad){.what = what, .rq = {.method = method, .path = path}, .status = status, .code = code};
    return b;
}

static void set_body(Bad *b, const char *ctype, Buf body) {
    b->body = body;
    b->rq.body = body.p;
    b->rq.len = body.len;
    if (ctype) {
        snprintf(b->ctype, sizeof b->ctype, "%s", ctype);
        b->rq.ctype = b->ctype;
    }
}

/* A request without a body. */
static void bare(const char *what, const char *method, const char *path, int status,
                 const char *code) {
    row(what, method, path, status, code);
}

/* A literal body (len 0: strlen) with a Content-Type (NULL: none). */
static void lit(const char *what, const char *path, const char *ctype, const char *body, size_t len,
                int status, const char *code) {
    Buf b = {0};
    buf_add(&b, body, len ? len : strlen(body));
    set_body(row(what, "POST", path, status, code), ctype, b);
}

/* A body of n Fields, multipart (json 0) or JSON (json 1). */
static void fields(int json, const char *what, const char *path, int status, const char *code,
                   int n, ...) {
    Field f[300];
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        f[i] = va_arg(ap, Field);
    va_end(ap);
    char ctype[96];
    Buf b = json ? body_json(f, n) : body_multipart(f, n, ctype, sizeof ctype);
    set_body(row(what, "POST", path, status, code), json ? "application/json" : ctype, b);
}
#define MP(...) fields(0, __VA_ARGS__)
#define JS(...) fields(1, __VA_ARGS__)

/* A whole raw request. */
static void raw(const char *what, const char *request, int status, const char *code) {
    Buf b = {0};
    buf_str(&b, request);
    Bad *r = row(what, "RAW", "", status, code);
    set_body(r, NULL, b);
    r->raw = 1;
}

/* n copies of one image under "image", as multipart. */
static void many_images(const char *what, const Buf *img, int n, int status, const char *code) {
    Field f[320] = {TEXT("subject", "bad-enroll")};
    for (int i = 1; i <= n; i++)
        f[i] = IMAGE("image", *img);
    char ctype[96];
    set_body(row(what, "POST", "/enroll", status, code), ctype,
             body_multipart(f, n + 1, ctype, sizeof ctype));
}

static Buf repeat(const char *head, char c, size_t n, const char *tail) {
    Buf b = {0};
    buf_str(&b, head);
    for (size_t i = 0; i < n; i++)
        buf_add(&b, &c, 1);
    buf_str(&b, tail);
    return b;
}

/* The image fixtures the table uses; freed after the run. */
static Buf fm0, garbage, tiny, png_cut, jpg_cut, pgm_cut, png_filter, png_huge, pgm_huge, jpg_huge,
    empty;

static void images_load(void) {
    fm0 = img_file("fm0_c9.png");
    png_cut = img_file("png_truncated.png");
    jpg_cut = img_file("jpeg_truncated.jpg");
    pgm_cut = img_file("pgm_truncated.pgm");
    png_filter = img_file("png_bad_filter.png");
    png_huge = img_file("png_ihdr_huge.png");
    pgm_huge = img_file("pgm_huge.pgm");
    jpg_huge = img_file("jpeg_sof_huge.jpg");
    tiny = img_pgm(1, 1, 1);
    garbage = (Buf){0};
    buf_str(&garbage, "this is not an image, just some text bytes");
    empty = (Buf){0};
    buf_add(&empty, "", 0);
}

static void table_routes(void) {
    bare("unknown route", "GET", "/nope", 404, "not_found");
    bare("root posted", "POST", "/", 405, "method_not_allowed");
    bare("page asset unknown", "GET", "/index.js", 404, "not_found");
    bare("trailing slash", "GET", "/healthz/", 404, "not_found");
    bare("empty segment", "GET", "//subjects", 404, "not_found");
    bare("samples without id", "GET", "/subjects/a/samples", 404, "not_found");
    bare("too many segments", "DELETE", "/subjects/a/samples/1/x", 404, "not_found");
    bare("GET /verify", "GET", "/verify", 405, "method_not_allowed");
    bare("DELETE /enroll", "DELETE", "/enroll", 405, "method_not_allowed");
    bare("POST /subjects", "POST", "/subjects", 405, "method_not_allowed");
    bare("PUT /subjects/x", "PUT", "/subjects/x", 405, "method_not_allowed");
    bare("GET a sample", "GET", "/subjects/x/samples/1", 405, "method_not_allowed");
    bare("POST /healthz", "POST", "/healthz", 405, "method_not_allowed");
    bare("OPTIONS /metrics", "OPTIONS", "/metrics", 405, "method_not_allowed");
}

static void table_fields(void) {
    char long_id[130] = {0};
    memset(long_id, 'x', 129);
    MP("verify: b missing", "/verify", 400, "missing_field", 1, IMAGE("a", fm0));
    JS("verify: empty object", "/verify", 400, "missing_field", 0);
    MP("verify: unknown field", "/verify", 400, "unknown_field", 3, IMAGE("a", fm0),
       IMAGE("b", fm0), TEXT("c", "x"));
    MP("verify: a, b and subject", "/verify", 400, "bad_request", 3, IMAGE("a", fm0),
       IMAGE("b", fm0), TEXT("subject", "x"));
    MP("verify: image without subject", "/verify", 400, "bad_request", 1, IMAGE("image", fm0));
    MP("verify: subject without image", "/verify", 400, "missing_field", 1, TEXT("subject", "x"));
    MP("verify: a twice", "/verify", 400, "bad_request", 3, IMAGE("a", fm0), IMAGE("a", fm0),
       IMAGE("b", fm0));
    MP("verify: threshold -1", "/verify", 400, "bad_request", 3, IMAGE("a", fm0), IMAGE("b", fm0),
       TEXT("threshold", "-1"));
    MP("verify: threshold nan", "/verify", 400, "bad_request", 3, IMAGE("a", fm0), IMAGE("b", fm0),
       TEXT("threshold", "nan"));
    MP("verify: threshold inf", "/verify", 400, "bad_request", 3, IMAGE("a", fm0), IMAGE("b", fm0),
       TEXT("threshold", "inf"));
    MP("verify: threshold 1e7", "/verify", 400, "bad_request", 3, IMAGE("a", fm0), IMAGE("b", fm0),
       TEXT("threshold", "1e7"));
    MP("verify: threshold empty", "/verify", 400, "bad_request", 3, IMAGE("a", fm0),
       IMAGE("b", fm0), TEXT("threshold", ""));
    MP("verify: threshold 0.5x", "/verify", 400, "bad_request", 3, IMAGE("a", fm0), IMAGE("b", fm0),
       TEXT("threshold", "0.5x"));
    JS("verify: threshold string nan", "/verify", 400, "bad_request", 3, IMAGE("a", fm0),
       IMAGE("b", fm0), TEXT("threshold", "nan"));
    MP("verify: threshold twice", "/verify", 400, "bad_request", 4, IMAGE("a", fm0),
       IMAGE("b", fm0), TEXT("threshold", "1"), TEXT("threshold", "2"));
    MP("verify: empty subject", "/verify", 400, "invalid_subject", 2, TEXT("subject", ""),
       IMAGE("image", fm0));
    MP("verify: 129-char subject", "/verify", 400, "invalid_subject", 2, TEXT("subject", long_id),
       IMAGE("image", fm0));
    MP("verify: subject with a space", "/verify", 400, "invalid_subject", 2, TEXT("subject", "a b"),
       IMAGE("image", fm0));
    MP("verify: unknown subject", "/verify", 404, "subject_not_found", 2,
       TEXT("subject", "nobody-here"), IMAGE("image", fm0));
    MP("enroll: no subject", "/enroll", 400, "missing_field", 1, IMAGE("image", fm0));
    MP("enroll: no image", "/enroll", 400, "missing_field", 1, TEXT("subject", "bad-enroll"));
    MP("enroll: empty subject", "/enroll", 400, "invalid_subject", 2, TEXT("subject", ""),
       IMAGE("image", fm0));
    JS("enroll: 129-char subject", "/enroll", 400, "invalid_subject", 2, TEXT("subject", long_id),
       IMAGE("image", fm0));
    MP("enroll: subject with /", "/enroll", 400, "invalid_subject", 2,
       TEXT("subject", "bad/enroll"), IMAGE("image", fm0));
    MP("enroll: non-ASCII subject", "/enroll", 400, "invalid_subject", 2,
       TEXT("subject", "bad-\xc3\xa9"), IMAGE("image", fm0));
    MP("enroll: subject with a tab", "/enroll", 400, "invalid_subject", 2,
       TEXT("subject", "bad\tenroll"), IMAGE("image", fm0));
    MP("enroll: metadata an array", "/enroll", 400, "bad_request", 3, TEXT("subject", "bad-enroll"),
       IMAGE("image", fm0), TEXT("metadata", "[1,2]"));
    MP("enroll: metadata not JSON", "/enroll", 400, "bad_request", 3, TEXT("subject", "bad-enroll"),
       IMAGE("image", fm0), TEXT("metadata", "{nope"));
    JS("enroll: metadata with trailing garbage", "/enroll", 400, "bad_request", 3,
       TEXT("subject", "bad-enroll"), IMAGE("image", fm0), TEXT("metadata", "{\"a\":1}x"));
    MP("enroll: metadata a JSON string", "/enroll", 400, "bad_request", 3,
       TEXT("subject", "bad-enroll"), IMAGE("image", fm0), TEXT("metadata", "\"{}\""));
    MP("enroll: metadata twice", "/enroll", 400, "bad_request", 4, TEXT("subject", "bad-enroll"),
       IMAGE("image", fm0), TEXT("metadata", "{}"), TEXT("metadata", "{}"));
    MP("enroll: subject twice", "/enroll", 400, "bad_request", 3, TEXT("subject", "bad-enroll"),
       TEXT("subject", "bad-enroll2"), IMAGE("image", fm0));
    MP("embed: no image", "/embed", 400, "missing_field", 0);
    MP("embed: text field 'images'", "/embed", 400, "unknown_field", 2, IMAGE("image", fm0),
       TEXT("images", "x"));
    MP("embed: binary field 'images'", "/embed", 400, NULL, 1, IMAGE("images", fm0));
    MP("identify: no image", "/identify", 400, "missing_field", 1, TEXT("k", "1"));
    static const char *const bad_k[][2] = {
        {"identify: k 0", "0"},       {"identify: k 1001", "1001"},
        {"identify: k x", "x"},       {"identify: k 2.5", "2.5"},
        {"identify: k -1", "-1"},     {"identify: k empty", ""},
        {"identify: k ' 3'", " 3"},   {"identify: k 1e2x", "1e2x"},
        {"identify: k 0x10", "0x10"}, {"identify: k 3 and a newline", "3\n"}};
    for (size_t i = 0; i < sizeof bad_k / sizeof *bad_k; i++)
        MP(bad_k[i][0], "/identify", 400, "bad_request", 2, IMAGE("image", fm0),
           TEXT("k", bad_k[i][1]));
    MP("verify: threshold 0x1p-1", "/verify", 400, "bad_request", 3, IMAGE("a", fm0),
       IMAGE("b", fm0), TEXT("threshold", "0x1p-1"));
    MP("verify: threshold ' 0.5'", "/verify", 400, "bad_request", 3, IMAGE("a", fm0),
       IMAGE("b", fm0), TEXT("threshold", " 0.5"));
    JS("identify: k 2.5 as a number", "/identify", 400, "bad_request", 2, IMAGE("image", fm0),
       JRAW("k", "2.5"));
    JS("identify: k true", "/identify", 400, "bad_request", 2, IMAGE("image", fm0),
       JRAW("k", "true"));
}

static void table_images(void) {
    MP("verify: garbage bytes", "/verify", 422, "invalid_image", 2, IMAGE("a", garbage),
       IMAGE("b", fm0));
    MP("verify: empty image", "/verify", 422, "invalid_image", 2, IMAGE("a", fm0),
       IMAGE("b", empty));
    MP("verify: truncated PNG", "/verify", 422, "invalid_image", 2, IMAGE("a", png_cut),
       IMAGE("b", fm0));
    MP("verify: truncated JPEG", "/verify", 422, "invalid_image", 2, IMAGE("a", jpg_cut),
       IMAGE("b", fm0));
    JS("verify: truncated PGM", "/verify", 422, "invalid_image", 2, IMAGE("a", fm0),
       IMAGE("b", pgm_cut));
    MP("verify: PNG bad filter", "/verify", 422, "invalid_image", 2, IMAGE("a", png_filter),
       IMAGE("b", fm0));
    MP("verify: PNG 100000x100000", "/verify", 413, "image_too_large", 2, IMAGE("a", png_huge),
       IMAGE("b", fm0));
    MP("embed: PGM 100000x100000", "/embed", 413, "image_too_large", 1, IMAGE("image", pgm_huge));
    JS("identify: JPEG huge SOF", "/identify", 413, "image_too_large", 1, IMAGE("image", jpg_huge));
    MP("enroll: one bad image of two", "/enroll", 422, "invalid_image", 3,
       TEXT("subject", "bad-enroll"), IMAGE("image", fm0), IMAGE("image", png_cut));
    many_images("enroll: 257 images", &tiny, 257, 413, "too_many_images");
    many_images("enroll: 300 images (over the part limit)", &tiny, 300, 413, "payload_too_large");
}

static void table_query(void) {
    static const char *const paths[] = {
        "/subjects?limit=0",   "/subjects?limit=1001",         "/subjects?limit=abc",
        "/subjects?limit=1.5", "/subjects?limit=-1",           "/subjects?limit=",
        "/subjects?limit=1e2", "/subjects?limit=%2B5",         "/subjects?cursor=!!!",
        "/subjects?cursor=a",  "/subjects?cursor=cGctMA%3D%3D"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++)
        bare(paths[i], "GET", paths[i], 400, "bad_request");
    static const char *const samples[] = {"/subjects/x/samples/abc",
                                          "/subjects/x/samples/0",
                                          "/subjects/x/samples/-1",
                                          "/subjects/x/samples/1.5",
                                          "/subjects/x/samples/1e3",
                                          "/subjects/x/samples/%2B1",
                                          "/subjects/x/samples/99999999999999999999"};
    for (size_t i = 0; i < sizeof samples / sizeof *samples; i++)
        bare(samples[i], "DELETE", samples[i], 400, "bad_request");
    bare("delete unknown subject", "DELETE", "/subjects/nobody-here", 404, "subject_not_found");
    bare("get unknown subject", "GET", "/subjects/nobody-here", 404, "subject_not_found");
    bare("delete sample of unknown subject", "DELETE", "/subjects/nobody-here/samples/1", 404,
         "sample_not_found");
    bare("subject id with a space", "GET", "/subjects/a%20b", 400, "invalid_subject");
    static char long_path[160];
    snprintf(long_path, sizeof long_path, "/subjects/%0129d", 0);
    bare("subject id 129 chars", "GET", long_path, 400, "invalid_subject");
    bare("subject id with a quote", "DELETE", "/subjects/a%22b", 400, "invalid_subject");
}

static void table_bodies(void) {
    lit("text/plain", "/verify", "text/plain", "a=1", 0, 415, "unsupported_media_type");
    lit("no Content-Type", "/verify", NULL, "{}", 0, 415, "unsupported_media_type");
    lit("urlencoded form", "/enroll", "application/x-www-form-urlencoded", "subject=x", 0, 415,
        "unsupported_media_type");
    lit("multipart/mixed", "/verify", "multipart/mixed; boundary=XyZ", "--XyZ--\r\n", 0, 415,
        "unsupported_media_type");
    lit("JSON in latin1", "/verify", "application/json; charset=latin1", "{}", 0, 415,
        "unsupported_media_type");
    lit("JSON cut short", "/verify", "application/json", "{\"a\":", 0, 400, "bad_request");
    lit("JSON empty body", "/verify", "application/json", "", 0, 400, "bad_request");
    lit("JSON top-level array", "/verify", "application/json", "[1]", 0, 400, "bad_request");
    lit("JSON top-level string", "/verify", "application/json", "\"x\"", 0, 400, "bad_request");
    lit("JSON trailing garbage", "/verify", "application/json", "{} x", 0, 400, "bad_request");
    lit("JSON duplicate key", "/embed", "application/json",
        "{\"image\":\"AA==\",\"image\":\"AA==\"}", 0, 400, "bad_request");
    lit("JSON invalid base64", "/embed", "application/json", "{\"image\":\"!!!!\"}", 0, 400,
        "bad_request");
    lit("JSON image a number", "/embed", "application/json", "{\"image\":5}", 0, 400,
        "bad_request");
    lit("JSON image an object", "/embed", "application/json", "{\"image\":{\"x\":1}}", 0, 400,
        "bad_request");
    lit("JSON invalid UTF-8", "/enroll", "application/json",
        "{\"subject\":\"\xff\xfe\",\"image\":\"AA==\"}", 0, 400, "bad_request");
    lit("JSON \\u0000 in a string", "/enroll", "application/json",
        "{\"subject\":\"a\\u0000b\",\"image\":\"AA==\"}", 0, 400, "bad_request");
    Buf values = repeat("{\"k\":[", '1', 1, "");
    for (int i = 0; i < 10001; i++)
        buf_str(&values, ",1");
    buf_str(&values, "]}");
    set_body(row("JSON with 10002 values", "POST", "/identify", 413, "payload_too_large"),
             "application/json", values);
    Buf deep = repeat("{\"k\":", '[', 10000, "");
    for (int i = 0; i < 10000; i++)
        buf_str(&deep, "]");
    buf_str(&deep, "}");
    set_body(row("JSON nested 10000 deep", "POST", "/identify", 400, "bad_request"),
             "application/json", deep);
    lit("multipart without boundary", "/verify", "multipart/form-data",
        "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--XyZ--\r\n", 0, 400,
        "bad_request");
    Buf longb = repeat("multipart/form-data; boundary=", 'b', 71, "");
    lit("boundary of 71 chars", "/verify", (char *)longb.p, "--x--\r\n", 0, 400, "bad_request");
    buf_free(&longb);
    const char *mp = "multipart/form-data; boundary=XyZ";
    lit("multipart truncated", "/verify", mp,
        "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nabc", 0, 400, "bad_request");
    lit("multipart without close delimiter", "/verify", mp,
        "--XyZ\r\nContent-Disposition: form-data; name=\"threshold\"\r\n\r\n1\r\n--XyZ\r\n", 0, 400,
        "bad_request");
    lit("part without Content-Disposition", "/verify", mp,
        "--XyZ\r\nContent-Type: text/plain\r\n\r\nabc\r\n--XyZ--\r\n", 0, 400, "bad_request");
    lit("part without a name", "/verify", mp,
        "--XyZ\r\nContent-Disposition: form-data; filename=\"f\"\r\n\r\nabc\r\n--XyZ--\r\n", 0, 400,
        "bad_request");
    lit("field name with a space", "/verify", mp,
        "--XyZ\r\nContent-Disposition: form-data; name=\"a b\"\r\n\r\nabc\r\n--XyZ--\r\n", 0, 400,
        "bad_request");
    lit("multipart without delimiters", "/verify", mp, "hello", 0, 400, "bad_request");
    lit("multipart empty body", "/verify", mp, "", 0, 400, "bad_request");
    Buf hl = repeat("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\nX-Long: ", 'h', 1100,
                    "\r\n\r\nabc\r\n--XyZ--\r\n");
    set_body(row("part header line of 1100 bytes", "POST", "/verify", 413, "payload_too_large"), mp,
             hl);
    Buf many = {0};
    buf_str(&many, "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n");
    for (int i = 0; i < 20; i++)
        buf_printf(&many, "X-H%d: v\r\n", i);
    buf_str(&many, "\r\nabc\r\n--XyZ--\r\n");
    set_body(row("part with 21 header lines", "POST", "/verify", 413, "payload_too_large"), mp,
             many);
    Buf big = repeat("{\"image\":\"", 'A', 70000, "\"}");
    set_body(row("body over --max-body", "POST", "/embed", 413, "payload_too_large"),
             "application/json", big);
    Buf big2 = repeat("{\"image\":\"", 'A', 100000, "\"}");
    Bad *ch = row("chunked body over --max-body", "POST", "/embed", 413, "payload_too_large");
    set_body(ch, "application/json", big2);
    ch->rq.chunked = 1;
    raw("Content-Length far over the limit",
        "POST /verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 99999999999\r\nConnection: close\r\n\r\n{}",
        413, "payload_too_large");
}

/* Sends row b; "" when it was answered as expected, else what went wrong. */
static void check_row(const Bad *b, Buf *fail) {
    Resp r = b->raw ? http_raw(P, b->body.p, b->body.len) : http(P, &b->rq);
    const char *code = error_code(&r);
    if (r.status != b->status || !code || (b->code && strcmp(code, b->code) != 0))
        buf_printf(fail, "  %s: got %ld (want %d %s), Content-Type '%s', body %.200s\n", b->what,
                   r.status, b->status, b->code ? b->code : "", r.ctype, r.body);
    else if (b->status == 405 && !*r.allow)
        buf_printf(fail, "  %s: 405 without an Allow header\n", b->what);
    resp_free(&r);
    r = http_get(P, "/healthz");
    if (r.status != 200)
        buf_printf(fail, "  after %s: /healthz answered %ld\n", b->what, r.status);
    resp_free(&r);
}

START_TEST(malformed_requests) {
    ck_assert_msg(P > 0, "the shared daemon did not start");
    images_load();
    NT = 0;
    table_routes();
    table_fields();
    table_images();
    table_query();
    table_bodies();
    ck_assert_int_ge(NT, 30);
    Buf fail = {0};
    buf_str(&fail, "");
    for (int i = 0; i < NT; i++)
        check_row(&T[i], &fail);
    for (int i = 0; i < NT; i++)
        buf_free(&T[i].body);
    ck_assert_msg(fail.len == 0, "%d requests, these answered wrongly:\n%s", NT, (char *)fail.p);
    buf_free(&fail);

    /* A refused enroll stores nothing. */
    Resp r = http_get(P, "/subjects/bad-enroll");
    ASSERT_JSON(r, 404);
    resp_free(&r);
    Buf *all[] = {&fm0,        &garbage,  &tiny,     &png_cut,  &jpg_cut, &pgm_cut,
                  &png_filter, &png_huge, &pgm_huge, &jpg_huge, &empty};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        buf_free(all[i]);
}
END_TEST

/* A chunked upload going on far past the cap is cut off, and the daemon
 * carries on. */
START_TEST(endless_chunked_upload) {
    Buf huge = repeat("{\"image\":\"", 'A', 4 << 20, "\"}");
    Resp r = http(P, &(Req){.method = "POST",
                            .path = "/embed",
                            .ctype = "application/json",
                            .body = huge.p,
                            .len = huge.len,
                            .chunked = 1});
    ck_assert_msg(r.status == 413 || r.status == 0, "status %ld", r.status);
    if (r.status == 413)
        ck_assert_str_eq(error_code(&r), "payload_too_large");
    resp_free(&r);
    buf_free(&huge);
    r = http_get(P, "/healthz");
    ASSERT_JSON(r, 200);
    resp_free(&r);
}
END_TEST

/* A Content-Length libmicrohttpd itself cannot represent: it answers 413 on
 * its own (an HTML page, before siamesed sees the request); the daemon lives. */
START_TEST(content_length_overflow) {
    const char *rq =
        "POST /verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 18446744073709551617\r\nConnection: close\r\n\r\n{}";
    Resp r = http_raw(P, rq, strlen(rq));
    ck_assert_msg(r.status == 413 || r.status == 400, "status %ld", r.status);
    resp_free(&r);
    r = http_get(P, "/healthz");
    ASSERT_JSON(r, 200);
    resp_free(&r);
}
END_TEST

TCase *tcase_input(void) {
    TCase *tc = tcase_create("input");
    tcase_add_unchecked_fixture(tc, input_setup, input_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, encodings_agree);
    tcase_add_test(tc, json_base64_flavours);
    tcase_add_test(tc, malformed_requests);
    tcase_add_test(tc, endless_chunked_upload);
    tcase_add_test(tc, content_length_overflow);
    return tc;
}
