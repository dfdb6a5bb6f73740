/*
 * http_frame.c — see http_frame.h. One pass over the headers
 * libmicrohttpd reports collects what the checks need (counts of the
 * framing headers, the first bad name or value, where the last value ends);
 * frame_refuse() then answers in the order RFC 9112 gives the rules.
 */
#include "http_frame.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

typedef struct {
    const char *lo, *hi; /* the header block in the read buffer; hi NULL if unknown */
    const char *end;     /* just past the last value seen in the block */
    int n_cl, n_te, n_host, n_expect, folded;
    const char *cl, *te, *expect;
    const char *bad_name, *bad_value; /* first offending header name */
} HeadScan;

static int is_tchar(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static int name_ok(const char *k) {
    if (!*k)
        return 0;
    for (; *k; k++)
        if (!is_tchar((unsigned char)*k))
            return 0;
    return 1;
}

/* Field values: visible characters, spaces, tabs and obs-text; no CR/LF or
 * other controls (a bare CR inside a line ends up here). */
static int value_ok(const char *v) {
    for (; *v; v++) {
        unsigned char ch = (unsigned char)*v;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return 0;
    }
    return 1;
}

static enum MHD_Result scan_one(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value) {
    HeadScan *s = cls;
    (void)kind;
    if (!key || !value)
        return MHD_YES;
    if (!s->bad_name && !name_ok(key))
        s->bad_name = key;
    if (!s->bad_value && !value_ok(value))
        s->bad_value = key;
    if (s->hi) {
        int key_in = key >= s->lo && key < s->hi, value_in = value >= s->lo && value < s->hi;
        s->folded |= key_in && !value_in; /* a continuation line: the value was copied */
        const char *e = value + strlen(value);
        if (value_in && e > s->end)
            s->end = e;
    }
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH))
        s->n_cl++, s->cl = value;
    else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING))
        s->n_te++, s->te = value;
    else if (!strcasecmp(key, MHD_HTTP_HEADER_HOST))
        s->n_host++;
    else if (!strcasecmp(key, MHD_HTTP_HEADER_EXPECT))
        s->n_expect++, s->expect = value;
    return MHD_YES;
}

/* 1 when the bytes between the last header value (or the version, with no
 * headers) and the end of the block are not just the NULs of at most two
 * line ends: a line libmicrohttpd took for the blank one. */
static int block_hides_lines(const HeadScan *s, const char *version) {
    if (!s->hi)
        return 0;
    const char *end = s->end;
    if (!end && version >= s->lo && version < s->hi)
        end = version + strlen(version);
    if (!end)
        return 0;
    if (end > s->hi || s->hi - end > 4)
        return 1;
    for (const char *p = end; p < s->hi; p++)
        if (*p)
            return 1;
    return 0;
}

static int refuse(Reply *rep, int *close, int status, const char *code, const char *what) {
    reply_error(rep, status, code, "%s", what);
    *close = 1;
    return 1;
}

int frame_refuse(struct MHD_Connection *c, const char *method, const char *version, Reply *rep,
                 int *close) {
    HeadScan s = {0};
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    if (ci) {
        s.lo = method;
        s.hi = method + ci->header_size;
    }
    MHD_get_connection_values(c, MHD_HEADER_KIND, scan_one, &s);
    if (s.folded)
        return refuse(rep, close, 400, "bad_request",
                      "header lines continued on the next line (obs-fold) are not accepted");
    if (block_hides_lines(&s, version))
        return refuse(rep, close, 400, "bad_request",
                      "malformed header block (a header line with an empty name?)");
    if (s.bad_name)
        return refuse(rep, close, 400, "bad_request",
                      "a header name is not a token (whitespace before the colon?)");
    if (s.bad_value)
        return refuse(rep, close, 400, "bad_request",
                      "a header value holds control characters (a bare CR?)");
    if (s.n_host > 1)
        return refuse(rep, close, 400, "bad_request", "more than one Host header");
    if (s.n_te && s.n_cl)
        return refuse(rep, close, 400, "bad_request",
                      "Content-Length and Transfer-Encoding together");
    if (s.n_cl > 1)
        return refuse(rep, close, 400, "bad_request", "more than one Content-Length header");
    if (s.n_te > 1 || (s.n_te && strcasecmp(s.te, "chunked") != 0))
        return refuse(rep, close, 501, "not_implemented",
                      "the only Transfer-Encoding accepted is chunked");
    if (s.n_expect > 1 || (s.n_expect && strcasecmp(s.expect, "100-continue") != 0))
        return refuse(rep, close, 417, "expectation_failed",
                      "the only Expect accepted is 100-continue");
    return 0;
}

FrameCap frame_cap(size_t memory) {
    size_t params = memory / 4 / 64;
    return (FrameCap){.params = params < 64 ? (int)params : 64, .target = memory / 4};
}

int frame_cap_query(const char *uri, size_t len, const FrameCap *cap) {
    char *q = strchr(uri, '?');
    if (!q)
        return 0;
    int n = q[1] != 0;
    for (const char *p = q + 1; *p; p++)
        n += *p == '&';
    if (n > cap->params || len > cap->target)
        q[1] = 0; /* the read buffer is writable; libmicrohttpd parses from q + 1 */
    return n;
}

int frame_refuse_target(const FrameCap *cap, size_t target, int params, Reply *rep) {
    if (target > cap->target)
        reply_error(rep, 414, "uri_too_long",
                    "a request target of %zu bytes; at most %zu are accepted (a quarter of "
                    "connection_memory)",
                    target, cap->target);
    else if (params > cap->params)
        reply_error(rep, 414, "uri_too_long",
                    "%d query parameters; at most %d are accepted (one per 256 bytes of "
                    "connection_memory, at most 64)",
                    params, cap->params);
    else
        return 0;
    return 1;
}
