/*
 * routes_reply.c — the replies every handler builds: JSON bodies, the error
 * body, module errors mapped to statuses, and how numbers and times print.
 *
 * Error statuses, one rule each: a malformed request is 400, an image that
 * does not decode is 422, anything over a size or dimension limit is 413, an
 * unsupported body type 415, a missing subject 404, a full disk 507, a store
 * that cannot serve yet 503, and only our own failures are 500.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "routes.h"
#include "siamese/common.h"
#include "siamese/log.h"

/* Length of the well-formed UTF-8 sequence at s (no overlongs, surrogates or
 * code points past U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *s) {
    static const struct {
        unsigned char mask, lead, lo1, hi1;
        size_t len;
    } forms[] = {
        {0xe0, 0xc0, 0x80, 0xbf, 2}, {0xf0, 0xe0, 0x80, 0xbf, 3}, {0xf8, 0xf0, 0x80, 0xbf, 4}};
    if (s[0] < 0x80)
        return 1;
    for (size_t f = 0; f < SM_ARRAY_LEN(forms); f++) {
        if ((s[0] & forms[f].mask) != forms[f].lead)
            continue;
        size_t n = forms[f].len;
        for (size_t i = 1; i < n; i++)
            if ((s[i] & 0xc0) != 0x80)
                return 0;
        unsigned c1 = s[1];
        if ((n == 2 && s[0] < 0xc2) || (n == 3 && s[0] == 0xe0 && c1 < 0xa0) ||
            (n == 3 && s[0] == 0xed && c1 > 0x9f) || (n == 4 && s[0] == 0xf0 && c1 < 0x90) ||
            (n == 4 && (s[0] > 0xf4 || (s[0] == 0xf4 && c1 > 0x8f))))
            return 0;
        return n;
    }
    return 0;
}

/* Replaces every byte that is not part of well-formed UTF-8 with '?', so a
 * message that quotes the client (a path, a field name) stays valid JSON
 * text whatever bytes were sent. */
static void utf8_clean(char *s) {
    for (unsigned char *p = (unsigned char *)s; *p;) {
        size_t n = utf8_seq(p);
        if (n == 0)
            *p++ = '?';
        else
            p += n;
    }
}

/* o as compact JSON and a newline (malloc'ed, *len bytes), or NULL. */
static char *print_line(const cJSON *o, size_t *len) {
    char *s = cJSON_PrintUnformatted(o);
    size_t n = s ? strlen(s) : 0;
    char *line = s ? realloc(s, n + 2) : NULL;
    if (!line) {
        cJSON_free(s);
        *len = 0;
        return NULL;
    }
    memcpy(line + n, "\n", 2);
    *len = n + 1;
    return line;
}

void reply_error(Reply *rep, int status, const char *code, const char *fmt, ...) {
    char msg[SM_ERRMAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    utf8_clean(msg);
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", msg);
    free(rep->body);
    rep->body = print_line(o, &rep->len);
    cJSON_Delete(o);
    rep->status = status;
    rep->content_type = "application/json";
    rep->error = code;
}

void reply_bad_subject(Reply *rep) {
    reply_error(rep, 400, "invalid_subject", "subject ids are 1-%d characters of [A-Za-z0-9._:@-]",
                STORE_SUBJECT_MAX);
}

void reply_json(Reply *rep, int status, cJSON *obj) {
    size_t len = 0;
    char *s = obj ? print_line(obj, &len) : NULL;
    cJSON_Delete(obj);
    if (!s) {
        reply_error(rep, 503, "out_of_memory", "the server is out of memory");
        return;
    }
    free(rep->body);
    rep->body = s;
    rep->len = len;
    rep->status = status;
    rep->content_type = "application/json";
}

void reply_internal(Reply *rep, int rc, const char *what, const char *err) {
    switch (rc) {
    case -ENOSPC:
        reply_error(rep, 507, "insufficient_storage", "%s: %s", what, err);
        return;
    case -ESTALE:
        reply_error(rep, 503, "store_stale", "%s: %s", what, err);
        return;
    case -ENOTCONN:  /* PostgreSQL down: the store reconnects on its own */
    case -ESHUTDOWN: /* the store is closing */
        reply_error(rep, 503, "store_unavailable", "%s: %s", what, err);
        return;
    case -EINPROGRESS: /* the connection lost during COMMIT, its outcome unknown */
        reply_error(rep, 503, "store_outcome_unknown", "%s: %s", what, err);
        return;
    case -ENOMEM:
        reply_error(rep, 503, "out_of_memory", "%s: out of memory", what);
        return;
    default:
        /* Requests are validated before they reach a module, so anything else
         * (-EINVAL included: a row that fails validation) is our failure. */
        log_error("%s: %s (%d)", what, err, rc);
        reply_error(rep, 500, "internal", "%s failed", what);
    }
}

/* 1 if s is a plain decimal number: -?digits[.digits][e[+-]digits], as JSON
 * writes numbers (no spaces, hex, inf or nan, which strtod would accept). */
static int is_decimal(const char *s) {
    size_t i = s[0] == '-';
    size_t d = strspn(s + i, "0123456789");
    if (d == 0)
        return 0;
    i += d;
    if (s[i] == '.') {
        d = strspn(s + i + 1, "0123456789");
        if (d == 0)
            return 0;
        i += d + 1;
    }
    if (s[i] == 'e' || s[i] == 'E') {
        i += 1 + (s[i + 1] == '+' || s[i + 1] == '-');
        d = strspn(s + i, "0123456789");
        if (d == 0)
            return 0;
        i += d;
    }
    return s[i] == 0;
}

int parse_number(const char *s, double lo, double hi, double *out) {
    if (!s || strlen(s) > 32 || !is_decimal(s))
        return -1;
    double v = strtod(s, NULL);
    if (!isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

void iso_time(int64_t ms, char out[32]) {
    /* Years 1970..9999; the store validates rows, this keeps the format whole. */
    ms = ms < 0 ? 0 : ms > 253402300799999 ? 253402300799999 : ms;
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        memset(&tm, 0, sizeof tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}
