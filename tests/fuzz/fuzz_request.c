/*
 * fuzz_request.c — fuzz target for request bodies: req_parse() with the limits
 * and image fields of the daemon's form_parse() (src/server/routes.c), then
 * the accessors the handlers use (req_count, req_get, req_text, req_field),
 * plus req_query_int() on the first line.
 *
 * The first byte picks how the rest becomes a request (byte % 4):
 *   0  multipart/form-data with the fixed boundary "XyZzy"; body = the rest;
 *   1  multipart/form-data; boundary=<first line of the rest> (so quoting,
 *      odd characters, a NUL that cuts the header short, extra parameters);
 *      body = what follows that line;
 *   2  application/json; body = the rest;
 *   3  the first line is the whole Content-Type header (any type and
 *      parameters, JSON charset included), body = what follows; this mode
 *      also uses the largest max_json_depth the config allows (1000).
 * The body keeps the input's end, so a read past it is caught.
 *
 * Beyond crashes, the target checks request.h's promises: documented error
 * codes with a message; on success field names of 1..REQ_MAX_NAME visible
 * ASCII, data NUL-terminated, text fields valid UTF-8 within max_text,
 * filenames without control characters, at most max_parts fields,
 * multipart data found verbatim in the body, and accessors that agree with
 * a walk over the fields.
 */
#include "fuzz.h"
#include "siamese/common.h"
#include "siamese/request.h"
#include "siamese/store.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define FUZZ_CT_LINE_MAX 200 /* bytes of the first line used as header text */
#define FUZZ_DEPTH_DEFAULT 32
#define FUZZ_DEPTH_MAX 1000 /* config.c's bound on max_json_depth */

static const char *const image_fields[] = {"a", "b", "image", NULL};
/* The names the handlers look up (routes_images.c), and one that never occurs. */
static const char *const handler_names[] = {"a",         "b", "image",    "subject",
                                            "threshold", "k", "metadata", "no such field"};

/* Length of the UTF-8 sequence a lead byte starts; 0 for a byte that never
 * leads (continuations, C0/C1 overlong leads, F5..FF). */
static unsigned utf8_lead_len(unsigned c) {
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return 2;
    if (c >= 0xe0 && c <= 0xef)
        return 3;
    if (c >= 0xf0 && c <= 0xf4)
        return 4;
    return 0;
}

/* An independent UTF-8 check (RFC 3629: no overlongs, surrogates or > U+10FFFF). */
static bool utf8_ok(const uint8_t *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned len = utf8_lead_len(s[i]);
        if (len == 0 || n - i < len)
            return false;
        uint32_t cp = len == 1 ? s[i] : s[i] & (0x7fu >> len);
        for (unsigned k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3fu);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

static bool is_image(const char *name) {
    for (const char *const *n = image_fields; *n; n++)
        if (strcmp(*n, name) == 0)
            return true;
    return false;
}

static void check_field(const ReqField *fl, const ReqLimits *lim, bool multipart,
                        const uint8_t *body, size_t blen) {
    size_t nl = strlen(fl->name);
    FUZZ_CHECK(nl >= 1 && nl <= REQ_MAX_NAME);
    for (size_t i = 0; i < nl; i++)
        FUZZ_CHECK(fl->name[i] >= 0x21 && fl->name[i] <= 0x7e);
    FUZZ_CHECK(fl->data && fl->data[fl->len] == 0);
    if (!is_image(fl->name))
        FUZZ_CHECK(fl->len <= lim->max_text && utf8_ok(fl->data, fl->len));
    if (fl->filename) {
        size_t fn = strlen(fl->filename);
        FUZZ_CHECK(utf8_ok((const uint8_t *)fl->filename, fn));
        for (size_t i = 0; i < fn; i++)
            FUZZ_CHECK((unsigned char)fl->filename[i] >= 0x20 && fl->filename[i] != 0x7f);
    }
    if (fl->content_type)
        (void)strlen(fl->content_type);
    if (multipart && fl->len > 0)
        FUZZ_CHECK(memmem(body, blen, fl->data, fl->len) != NULL);
}

/* req_count/req_get/req_text against a plain walk over the fields. */
static void check_lookup(const ReqForm *f, const char *name) {
    int n = req_n_fields(f), count = 0;
    for (int i = 0; i < n; i++) {
        const ReqField *fl = req_field(f, i);
        if (strcmp(fl->name, name) != 0)
            continue;
        FUZZ_CHECK(req_get(f, name, count) == fl);
        if (count == 0) {
            const char *t = req_text(f, name);
            FUZZ_CHECK(memchr(fl->data, 0, fl->len) ? t == NULL : t == (const char *)fl->data);
        }
        count++;
    }
    FUZZ_CHECK(req_count(f, name) == count);
    FUZZ_CHECK(req_get(f, name, count) == NULL && req_get(f, name, -1) == NULL);
    if (count == 0)
        FUZZ_CHECK(req_text(f, name) == NULL);
}

static void check_form(const ReqForm *f, const ReqLimits *lim, bool multipart, const uint8_t *body,
                       size_t blen) {
    int n = req_n_fields(f);
    FUZZ_CHECK(n >= 0 && n <= lim->max_parts);
    FUZZ_CHECK(req_field(f, -1) == NULL && req_field(f, n) == NULL);
    for (int i = 0; i < n; i++) {
        check_field(req_field(f, i), lim, multipart, body, blen);
        check_lookup(f, req_field(f, i)->name);
    }
    for (size_t k = 0; k < SM_ARRAY_LEN(handler_names); k++)
        check_lookup(f, handler_names[k]);
}

/* req_query_int() on the line as a C string (it stops at a NUL). */
static void check_query(const char *s) {
    long v = 12345;
    char err[SM_ERRMAX] = "";
    int rc = req_query_int(s, -1000, 1000, &v, err);
    if (rc == 0) {
        FUZZ_CHECK(v >= -1000 && v <= 1000 && strtol(s, NULL, 10) == v);
    } else {
        FUZZ_CHECK((rc == -EINVAL || rc == -ERANGE) && err[0] && v == 12345);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    int mode = data[0] % 4;
    const uint8_t *body = data + 1;
    size_t blen = size - 1;
    char line[FUZZ_CT_LINE_MAX + 1] = "", ct[FUZZ_CT_LINE_MAX + 64];
    if (mode == 1 || mode == 3) {
        const uint8_t *nl = memchr(body, '\n', blen);
        size_t ll = nl ? (size_t)(nl - body) : blen;
        memcpy(line, body, ll < FUZZ_CT_LINE_MAX ? ll : FUZZ_CT_LINE_MAX);
        body = nl ? nl + 1 : body + blen;
        blen = size - (size_t)(body - data);
        check_query(line);
    }
    if (mode == 0)
        snprintf(ct, sizeof ct, "multipart/form-data; boundary=XyZzy");
    else if (mode == 1)
        snprintf(ct, sizeof ct, "multipart/form-data; boundary=%s", line);
    else if (mode == 2)
        snprintf(ct, sizeof ct, "application/json");
    else
        snprintf(ct, sizeof ct, "%s", line);

    ReqLimits lim = {.max_parts = STORE_ENROLL_MAX + 8,
                     .max_json_depth = mode == 3 ? FUZZ_DEPTH_MAX : FUZZ_DEPTH_DEFAULT,
                     .max_json_values = STORE_ENROLL_MAX + 1024,
                     .max_header_line = REQ_DEFAULT_MAX_HEADER_LINE,
                     .max_text = STORE_METADATA_MAX,
                     .image_fields = image_fields};
    static char sentinel;
    ReqForm *f = (ReqForm *)(void *)&sentinel; /* req_parse must overwrite it */
    char err[SM_ERRMAX] = "";
    int rc = req_parse(ct, blen ? body : NULL, blen, &lim, &f, err);
    if (rc < 0) {
        FUZZ_CHECK(rc == -EPROTONOSUPPORT || rc == -EINVAL || rc == -E2BIG || rc == -ENOMEM);
        FUZZ_CHECK(f == NULL && err[0] != 0);
        return 0;
    }
    FUZZ_CHECK(rc == 0 && f != NULL);
    /* A parsed body is multipart or JSON; the media type is all that tells them apart. */
    const char *type = ct + strspn(ct, " \t");
    bool multipart = strncasecmp(type, "multipart/", 10) == 0;
    check_form(f, &lim, multipart, body, blen);
    req_free(f);
    return 0;
}
