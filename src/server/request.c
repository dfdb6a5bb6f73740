/*
 * request.c — request bodies as named fields: the Content-Type dispatch,
 * the multipart/form-data parser and the query-integer helper. The form
 * itself is in request_form.c, JSON bodies in request_json.c.
 *
 * The multipart parser works on the whole body in memory, so it never needs
 * to buffer or guess: it finds the first dash-boundary at the start of a line,
 * learns the line-end style from that line (CRLF, or bare LF throughout), and
 * then alternates header blocks and memmem() searches for the next delimiter.
 * Every index is checked against the body length before it is used; every
 * copy is sized from positions found in the body, never from a number sent by
 * the client. Header lines are capped (max_header_line) and so is their count,
 * so a part header cannot make the parser scan or allocate without bound.
 */
#include "request_int.h"

#include "siamese/common.h"

#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REQ_MAX_BOUNDARY 70 /* RFC 2046 */

/* One multipart part's headers, as parsed (all malloc'ed, may be NULL). */
typedef struct {
    char *name, *fname, *ctype;
    bool disposition;
} Part;

/* The body being parsed and its delimiter "\r\n--B" (or "\n--B" in LF mode). */
typedef struct {
    const uint8_t *p;
    size_t len;
    char delim[2 + 2 + REQ_MAX_BOUNDARY];
    size_t dlen;
    bool lf;
} Mp;

/* ---- small predicates ---------------------------------------------------- */

static bool is_tchar(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_ctl(unsigned char c) {
    return (c < 0x20 && c != '\t') || c == 0x7f;
}

static bool is_ows(unsigned char c) {
    return c == ' ' || c == '\t';
}

/* RFC 2046 bchars, space excepted (handled by the caller: not last). */
static bool is_bchar(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("'()+_,-./:=? ", c));
}

/* ---- header parameters (Content-Type, Content-Disposition) --------------- */

/* Advances *s over one "; name=value" parameter of a header value ending at
 * end. Sets the name span and the raw value span (quotes included when
 * *quoted). Returns 1 for a parameter, 0 at the end, -EINVAL on bad syntax.
 * Empty parameters (";;", a trailing ';') are skipped, as browsers send them. */
static int param_next(const char **s, const char *end, const char **name, size_t *nlen,
                      const char **val, size_t *vlen, bool *quoted) {
    const char *p = *s;
    for (;;) {
        while (p < end && is_ows((unsigned char)*p))
            p++;
        if (p == end)
            return 0;
        if (*p != ';')
            return -EINVAL;
        p++;
        while (p < end && is_ows((unsigned char)*p))
            p++;
        if (p < end && *p != ';')
            break;
    }
    *name = p;
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    *nlen = (size_t)(p - *name);
    if (*nlen == 0 || p == end || *p != '=')
        return -EINVAL;
    *val = ++p;
    *quoted = p < end && *p == '"';
    if (*quoted) {
        for (p++; p < end && *p != '"'; p++)
            if (*p == '\\' && ++p == end)
                return -EINVAL;
        if (p == end)
            return -EINVAL;
        p++;
    } else {
        while (p < end && is_tchar((unsigned char)*p))
            p++;
        if (p == *val)
            return -EINVAL;
    }
    *vlen = (size_t)(p - *val);
    *s = p;
    return 1;
}

/* The value of a parameter, unquoted and unescaped, as a malloc'ed string. */
static char *param_value(const char *val, size_t vlen, bool quoted) {
    if (!quoted)
        return req_dup(val, vlen);
    char *out = malloc(vlen);
    if (!out)
        return NULL;
    size_t n = 0;
    for (size_t i = 1; i + 1 < vlen; i++) {
        if (val[i] == '\\')
            i++;
        out[n++] = val[i];
    }
    out[n] = 0;
    return out;
}

static bool name_is(const char *name, size_t nlen, const char *want) {
    return nlen == strlen(want) && strncasecmp(name, want, nlen) == 0;
}

/* ---- multipart ----------------------------------------------------------- */

/* Checks and stores the boundary parameter: 1..70 bchars, not ending in a space. */
static int mp_set_boundary(Mp *m, const char *b, char *err) {
    size_t n = strlen(b);
    if (n == 0 || n > REQ_MAX_BOUNDARY)
        return sm_err(err, -EINVAL, "multipart boundary must be 1..%d characters, not %zu",
                      REQ_MAX_BOUNDARY, n);
    for (size_t i = 0; i < n; i++)
        if (!is_bchar((unsigned char)b[i]))
            return sm_err(err, -EINVAL, "invalid character in multipart boundary");
    if (b[n - 1] == ' ')
        return sm_err(err, -EINVAL, "multipart boundary ends in a space");
    memcpy(m->delim, "\r\n--", 4);
    memcpy(m->delim + 4, b, n);
    m->dlen = n + 4;
    return 0;
}

/* At pos, just after a "--B": returns 1 for the close delimiter ("--"), 0
 * for a part delimiter (pos moved past transport padding and the line end),
 * -EINVAL otherwise. Fixes the line-end style when called for the first one. */
static int mp_after_delim(Mp *m, size_t *pos, bool first, char *err) {
    size_t i = *pos;
    if (m->len - i >= 2 && m->p[i] == '-' && m->p[i + 1] == '-')
        return 1;
    while (i < m->len && is_ows(m->p[i]))
        i++;
    if (first && i < m->len && m->p[i] == '\n') {
        m->lf = true;
        memmove(m->delim, m->delim + 1, m->dlen - 1);
        m->dlen--;
    }
    if (!m->lf && m->len - i >= 2 && m->p[i] == '\r' && m->p[i + 1] == '\n') {
        *pos = i + 2;
        return 0;
    }
    if (m->lf && i < m->len && m->p[i] == '\n') {
        *pos = i + 1;
        return 0;
    }
    if (i >= m->len || (!m->lf && m->len - i == 1 && m->p[i] == '\r'))
        return sm_err(err, -EINVAL, "multipart body truncated after a delimiter");
    return sm_err(err, -EINVAL, "junk after a multipart delimiter");
}

/* Finds the first "--B" at the start of a line; *pos is set just past it.
 * Called before the line-end style is known, while delim is "\r\n--B". */
static int mp_first(Mp *m, size_t *pos, char *err) {
    size_t dn = m->dlen - 2;
    const char *db = m->delim + 2;
    size_t i = 0;
    while (i < m->len) {
        const uint8_t *hit = memmem(m->p + i, m->len - i, db, dn);
        if (!hit)
            break;
        size_t at = (size_t)(hit - m->p);
        if (at == 0 || m->p[at - 1] == '\n') {
            *pos = at + dn;
            return 0;
        }
        i = at + 1;
    }
    return sm_err(err, -EINVAL, "no multipart boundary delimiter in the body");
}

/* One header line from pos: [pos, pos + *n), next line at *next. */
static int mp_line(const Mp *m, const ReqLim *lim, size_t pos, size_t *n, size_t *next, int partno,
                   char *err) {
    size_t rem = m->len - pos, window = lim->max_header_line + (m->lf ? 1 : 2);
    const uint8_t *nl = memchr(m->p + pos, '\n', rem < window ? rem : window);
    if (!nl) {
        if (rem < window)
            return sm_err(err, -EINVAL, "part %d: body truncated in its headers", partno);
        return sm_err(err, -E2BIG, "part %d: header line longer than %zu bytes", partno,
                      lim->max_header_line);
    }
    size_t j = (size_t)(nl - m->p);
    if (!m->lf && (j == pos || m->p[j - 1] != '\r'))
        return sm_err(err, -EINVAL, "part %d: header line ends in a bare LF", partno);
    *n = (m->lf ? j : j - 1) - pos;
    *next = j + 1;
    for (size_t i = 0; i < *n; i++)
        if (is_ctl(m->p[pos + i]))
            return sm_err(err, -EINVAL, "part %d: control character in a header", partno);
    return 0;
}

/* Content-Disposition: form-data; name="N" [; filename="F"]. */
static int mp_disposition(const char *v, const char *end, Part *pt, int partno, char *err) {
    const char *p = v;
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    if (!name_is(v, (size_t)(p - v), "form-data"))
        return sm_err(err, -EINVAL, "part %d: Content-Disposition is not form-data", partno);
    const char *name, *val;
    size_t nlen, vlen;
    bool quoted;
    int rc;
    while ((rc = param_next(&p, end, &name, &nlen, &val, &vlen, &quoted)) == 1) {
        char **slot = name_is(name, nlen, "name")       ? &pt->name
                      : name_is(name, nlen, "filename") ? &pt->fname
                                                        : NULL;
        if (!slot)
            continue;
        if (*slot)
            return sm_err(err, -EINVAL, "part %d: Content-Disposition repeats a parameter", partno);
        if (!(*slot = param_value(val, vlen, quoted)))
            return sm_err(err, -ENOMEM, "out of memory");
    }
    if (rc < 0)
        return sm_err(err, -EINVAL, "part %d: malformed Content-Disposition", partno);
    if (!pt->name)
        return sm_err(err, -EINVAL, "part %d: Content-Disposition without a name", partno);
    rc = req_check_name(pt->name, strlen(pt->name), err);
    if (rc == 0 && pt->fname && !req_utf8_valid((uint8_t *)pt->fname, strlen(pt->fname)))
        rc = sm_err(err, -EINVAL, "part %d: filename is not valid UTF-8", partno);
    /* Header lines may hold tabs (is_ctl() lets them through); a filename may not. */
    for (const char *c = pt->fname; rc == 0 && c && *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            rc = sm_err(err, -EINVAL, "part %d: control character in the filename", partno);
    return rc;
}

/* One "Name: value" header line of a part. */
static int mp_header(const char *line, size_t n, Part *pt, int partno, char *err) {
    const char *end = line + n, *colon = line;
    while (colon < end && is_tchar((unsigned char)*colon))
        colon++;
    if (colon == line || colon == end || *colon != ':')
        return sm_err(err, -EINVAL, "part %d: malformed header line", partno);
    const char *v = colon + 1;
    while (v < end && is_ows((unsigned char)*v))
        v++;
    while (end > v && is_ows((unsigned char)end[-1]))
        end--;
    size_t nlen = (size_t)(colon - line);
    if (name_is(line, nlen, "Content-Disposition")) {
        if (pt->disposition)
            return sm_err(err, -EINVAL, "part %d: two Content-Disposition headers", partno);
        pt->disposition = true;
        return mp_disposition(v, end, pt, partno, err);
    }
    if (name_is(line, nlen, "Content-Type")) {
        if (pt->ctype)
            return sm_err(err, -EINVAL, "part %d: two Content-Type headers", partno);
        if (!(pt->ctype = req_dup(v, (size_t)(end - v))))
            return sm_err(err, -ENOMEM, "out of memory");
    }
    return 0;
}

/* The header block of a part, from *pos to just past its blank line. */
static int mp_headers(const Mp *m, const ReqLim *lim, size_t *pos, Part *pt, int partno,
                      char *err) {
    for (int nh = 0;; nh++) {
        size_t n = 0, next = 0;
        int rc = mp_line(m, lim, *pos, &n, &next, partno, err);
        if (rc < 0)
            return rc;
        const char *line = (const char *)m->p + *pos;
        *pos = next;
        if (n == 0)
            break;
        if (nh == REQ_MAX_PART_HEADERS)
            return sm_err(err, -E2BIG, "part %d: more than %d header lines", partno,
                          REQ_MAX_PART_HEADERS);
        if (is_ows((unsigned char)line[0]))
            return sm_err(err, -EINVAL, "part %d: folded header line", partno);
        if ((rc = mp_header(line, n, pt, partno, err)) < 0)
            return rc;
    }
    if (!pt->disposition)
        return sm_err(err, -EINVAL, "part %d: no Content-Disposition header", partno);
    return 0;
}

/* One part from *pos (just past its delimiter line) to just past the next
 * "--B"; the field is added to f. */
static int mp_part(ReqForm *f, const Mp *m, const ReqLim *lim, size_t *pos, int partno, char *err) {
    Part pt = {0};
    int rc = mp_headers(m, lim, pos, &pt, partno, err);
    if (rc < 0 || (rc = req_check_known(lim, pt.name, err)) < 0)
        goto out;
    const uint8_t *hit = memmem(m->p + *pos, m->len - *pos, m->delim, m->dlen);
    if (!hit) {
        rc = sm_err(err, -EINVAL, "part %d: no delimiter after it (truncated body?)", partno);
        goto out;
    }
    size_t len = (size_t)(hit - (m->p + *pos));
    if (!req_is_image(lim, pt.name) &&
        (rc = req_check_text(lim, pt.name, m->p + *pos, len, err)) < 0)
        goto out;
    uint8_t *data = req_dup(m->p + *pos, len);
    if (!data) {
        rc = sm_err(err, -ENOMEM, "out of memory");
        goto out;
    }
    *pos += len + m->dlen;
    rc = req_form_add(f, lim, pt.name, data, len, pt.ctype, pt.fname, err);
    pt = (Part){0};
out:
    free(pt.name);
    free(pt.fname);
    free(pt.ctype);
    return rc;
}

static int parse_multipart(ReqForm *f, const ReqLim *lim, const char *boundary, const uint8_t *body,
                           size_t len, char *err) {
    Mp m = {.p = body, .len = len};
    size_t pos = 0;
    int rc = mp_set_boundary(&m, boundary, err);
    if (rc == 0)
        rc = mp_first(&m, &pos, err);
    if (rc == 0)
        rc = mp_after_delim(&m, &pos, true, err);
    for (int partno = 1; rc == 0; partno++) {
        if ((rc = mp_part(f, &m, lim, &pos, partno, err)) < 0)
            break;
        rc = mp_after_delim(&m, &pos, false, err);
    }
    return rc < 0 ? rc : 0;
}

/* ---- Content-Type dispatch ----------------------------------------------- */

typedef enum { CT_MULTIPART, CT_JSON } BodyKind;

/* Reads the media type and the parameters that matter: the multipart
 * boundary (malloc'ed into *boundary) and the JSON charset. */
static int parse_content_type(const char *ct, BodyKind *kind, char **boundary, char *err) {
    if (!ct)
        return sm_err(err, -EPROTONOSUPPORT, "no Content-Type");
    for (const char *c = ct; *c; c++)
        if (is_ctl((unsigned char)*c))
            return sm_err(err, -EINVAL, "control character in Content-Type");
    const char *p = ct, *end = ct + strlen(ct);
    while (p < end && is_ows((unsigned char)*p))
        p++;
    const char *type = p;
    while (p < end && (is_tchar((unsigned char)*p) || *p == '/'))
        p++;
    size_t tlen = (size_t)(p - type);
    if (name_is(type, tlen, "multipart/form-data"))
        *kind = CT_MULTIPART;
    else if (name_is(type, tlen, "application/json"))
        *kind = CT_JSON;
    else
        return sm_err(err, -EPROTONOSUPPORT, "unsupported Content-Type '%.*s'",
                      (int)(tlen < 64 ? tlen : 64), type);
    const char *name, *val;
    size_t nlen, vlen;
    bool quoted;
    int rc;
    while ((rc = param_next(&p, end, &name, &nlen, &val, &vlen, &quoted)) == 1) {
        if (*kind == CT_MULTIPART && name_is(name, nlen, "boundary")) {
            if (*boundary)
                return sm_err(err, -EINVAL, "two boundary parameters in Content-Type");
            if (!(*boundary = param_value(val, vlen, quoted)))
                return sm_err(err, -ENOMEM, "out of memory");
        } else if (*kind == CT_JSON && name_is(name, nlen, "charset")) {
            size_t off = quoted ? 1 : 0;
            if (!name_is(val + off, vlen - 2 * off, "utf-8"))
                return sm_err(err, -EPROTONOSUPPORT, "JSON charset must be UTF-8");
        }
    }
    if (rc < 0)
        return sm_err(err, -EINVAL, "malformed Content-Type parameters");
    if (*kind == CT_MULTIPART && !*boundary)
        return sm_err(err, -EINVAL, "multipart/form-data without a boundary parameter");
    return 0;
}

static void limits_resolve(const ReqLimits *in, ReqLim *l) {
    ReqLimits z = {0};
    if (!in)
        in = &z;
    l->max_parts = in->max_parts > 0 ? in->max_parts : REQ_DEFAULT_MAX_PARTS;
    l->max_json_depth = in->max_json_depth > 0 ? in->max_json_depth : REQ_DEFAULT_MAX_JSON_DEPTH;
    l->max_json_values =
        in->max_json_values > 0 ? in->max_json_values : REQ_DEFAULT_MAX_JSON_VALUES;
    l->max_header_line = in->max_header_line ? in->max_header_line : REQ_DEFAULT_MAX_HEADER_LINE;
    l->max_text = in->max_text ? in->max_text : REQ_DEFAULT_MAX_TEXT;
    l->image_fields = in->image_fields;
    l->fields = in->fields;
}

int req_parse(const char *content_type, const uint8_t *body, size_t len, const ReqLimits *lim,
              ReqForm **out, char *err) {
    *out = NULL;
    ReqLim l;
    limits_resolve(lim, &l);
    BodyKind kind = CT_JSON;
    char *boundary = NULL;
    ReqForm *f = NULL;
    static const uint8_t empty[1];
    if (!body)
        len = 0, body = empty;
    int rc = parse_content_type(content_type, &kind, &boundary, err);
    if (rc < 0)
        goto out;
    if (!(f = req_form_new())) {
        rc = sm_err(err, -ENOMEM, "out of memory");
        goto out;
    }
    rc = kind == CT_MULTIPART ? parse_multipart(f, &l, boundary, body, len, err)
                              : req_parse_json(f, &l, body, len, err);
out:
    free(boundary);
    if (rc < 0) {
        req_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

/* ---- query parameters ---------------------------------------------------- */

int req_query_int(const char *s, long lo, long hi, long *out, char *err) {
    if (!s)
        return SM_ABSENT;
    bool neg = *s == '-';
    const char *d = s + neg;
    size_t nd = strspn(d, "0123456789");
    if (nd == 0 || d[nd] != 0)
        return sm_err(err, -EINVAL, "not a decimal integer");
    unsigned long long v = 0, cap = neg ? (unsigned long long)LONG_MAX + 1 : LONG_MAX;
    bool over = nd > 19;
    for (size_t i = 0; i < nd && !over; i++) {
        v = v * 10 + (unsigned long long)(d[i] - '0');
        over = v > cap;
    }
    long x = over ? 0 : !neg ? (long)v : v == 0 ? 0 : -(long)(v - 1) - 1;
    if (over || x < lo || x > hi)
        return sm_err(err, -ERANGE, "must be between %ld and %ld", lo, hi);
    *out = x;
    return 0;
}
