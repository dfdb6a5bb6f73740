/*
 * request_json.c — application/json request bodies as form fields.
 *
 * cJSON parses recursively and is lenient, so the text is scanned first,
 * without recursion: it must be UTF-8, start with '{', nest no deeper than
 * max_json_depth and hold at most max_json_values values, and its strings may
 * hold neither raw control characters nor \u0000 (cJSON's strings are C
 * strings and would end there, silently). Only then does cJSON see it; its
 * recursion is bounded by the same depth. After parsing, duplicate keys are
 * refused at every depth (cJSON keeps both, and which one a reader sees would
 * depend on the reader), then each member of the object becomes fields.
 *
 * Images come as base64 (decoded with nettle): standard or URL-safe
 * alphabet, padding optional, optionally behind a "data:<type>;base64,"
 * prefix. Each string is released from the cJSON tree as soon as it is
 * decoded, so a large image does not stay in memory twice.
 */
#include "request_int.h"

#include "siamese/common.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <nettle/base64.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DATA_URL_MAX_META 256 /* bytes between "data:" and ',' */

static bool is_ws(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_b64(uint8_t c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/' || c == '-' || c == '_';
}

/* Skips a string starting at s[*i] == '"'; *i ends on the closing quote. */
static int scan_string(const uint8_t *s, size_t n, size_t *i, char *err) {
    for (size_t k = *i + 1; k < n; k++) {
        if (s[k] == '"') {
            *i = k;
            return 0;
        }
        if (s[k] < 0x20)
            return sm_err(err, -EINVAL, "control character in a JSON string at byte %zu", k);
        if (s[k] != '\\')
            continue;
        if (n - k > 5 && memcmp(s + k + 1, "u0000", 5) == 0)
            return sm_err(err, -EINVAL, "\\u0000 in a JSON string at byte %zu", k);
        k++;
    }
    return sm_err(err, -EINVAL, "unterminated JSON string");
}

/* 1 if a number starts at s[i] with a zero followed by a digit ("01",
 * "-007"), which JSON does not allow and cJSON would read as decimal. Digits
 * after '.', 'e' or another digit are not the start of a number. */
static bool leading_zero(const uint8_t *s, size_t n, size_t i) {
    bool starts = i == 0 || !strchr("0123456789.eE+-", s[i - 1]);
    if (!starts || (s[i] != '-' && s[i] != '0'))
        return false;
    size_t z = i + (s[i] == '-');
    return z + 1 < n && s[z] == '0' && s[z + 1] >= '0' && s[z + 1] <= '9';
}

/* The checks cJSON does not make or makes too late; see the file comment.
 * Counting '{', '[' and ',' outside strings bounds the number of values. */
static int json_scan(const ReqLim *lim, const uint8_t *s, size_t n, char *err) {
    if (!req_utf8_valid(s, n))
        return sm_err(err, -EINVAL, "JSON body is not valid UTF-8");
    size_t i = 0;
    while (i < n && is_ws(s[i]))
        i++;
    if (i == n || s[i] != '{')
        return sm_err(err, -EINVAL, "JSON body is not an object");
    int depth = 0;
    long values = 1;
    for (; i < n; i++) {
        uint8_t c = s[i];
        if (c == '"') {
            int rc = scan_string(s, n, &i, err);
            if (rc < 0)
                return rc;
        } else if (c == '{' || c == '[') {
            if (++depth > lim->max_json_depth)
                return sm_err(err, -EINVAL, "JSON nested deeper than %d levels (--max-json-depth)",
                              lim->max_json_depth);
            values++;
        } else if (c == '}' || c == ']') {
            if (--depth < 0)
                return sm_err(err, -EINVAL, "unbalanced JSON at byte %zu", i);
        } else if (c == ',') {
            values++;
        } else if (leading_zero(s, n, i)) {
            return sm_err(err, -EINVAL, "number with a leading zero at byte %zu", i);
        } else if (c < 0x20 && !is_ws(c)) {
            return sm_err(err, -EINVAL, "control character in JSON at byte %zu", i);
        }
        if (values > lim->max_json_values)
            return sm_err(err, -E2BIG, "more than %d JSON values", lim->max_json_values);
    }
    return 0;
}

static int cmp_key(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Refuses an object with two members of the same name, at any depth. The
 * recursion is bounded by max_json_depth, which json_scan() enforced. */
static int json_check_dups(const cJSON *v, char *err) {
    int n = 0, rc = 0;
    for (const cJSON *c = v->child; c; c = c->next)
        n++;
    if (cJSON_IsObject(v) && n > 1) {
        const char **keys = malloc((size_t)n * sizeof *keys);
        if (!keys)
            return sm_err(err, -ENOMEM, "out of memory");
        int k = 0;
        for (const cJSON *c = v->child; c; c = c->next)
            keys[k++] = c->string;
        qsort(keys, (size_t)n, sizeof *keys, cmp_key);
        for (k = 1; k < n && rc == 0; k++) {
            if (strcmp(keys[k - 1], keys[k]) != 0)
                continue;
            rc = req_check_name(keys[k], strlen(keys[k]), NULL) == 0
                     ? sm_err(err, -EINVAL, "duplicate JSON key '%.64s'", keys[k])
                     : sm_err(err, -EINVAL, "duplicate JSON key");
        }
        free(keys);
    }
    for (const cJSON *c = v->child; c && rc == 0; c = c->next)
        rc = json_check_dups(c, err);
    return rc;
}

/* Strips a "data:<type>[;param]*;base64," prefix from s (n bytes): *off is
 * where the base64 starts (0 without a prefix) and *ctype the malloc'ed
 * <type>, or NULL when there is none. */
static int data_url(const char *s, size_t n, const char *key, size_t *off, char **ctype,
                    char *err) {
    *off = 0;
    *ctype = NULL;
    if (n < 5 || strncasecmp(s, "data:", 5) != 0)
        return 0;
    const char *comma = memchr(s, ',', n < 5 + DATA_URL_MAX_META ? n : 5 + DATA_URL_MAX_META);
    const char *meta = s + 5;
    size_t mlen = comma ? (size_t)(comma - meta) : 0;
    if (!comma || mlen < 7 || strncasecmp(comma - 7, ";base64", 7) != 0)
        return sm_err(err, -EINVAL, "field '%.64s': data URL without ';base64,'", key);
    size_t tlen = strcspn(meta, ";");
    int slashes = 0;
    for (size_t i = 0; i < tlen; i++) {
        unsigned char c = (unsigned char)meta[i];
        slashes += c == '/';
        if (c != '/' && !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
                          (c >= 'A' && c <= 'Z') || strchr("!#$%&'*+-.^_`|~", c)))
            return sm_err(err, -EINVAL, "field '%.64s': bad media type in data URL", key);
    }
    if (tlen > 0 && (slashes != 1 || meta[0] == '/' || meta[tlen - 1] == '/'))
        return sm_err(err, -EINVAL, "field '%.64s': bad media type in data URL", key);
    if (tlen > 0 && !(*ctype = req_dup(meta, tlen)))
        return sm_err(err, -ENOMEM, "out of memory");
    *off = (size_t)(comma + 1 - s);
    return 0;
}

/* Decodes base64 text with nettle. The URL-safe alphabet is chosen when '-'
 * or '_' occurs (mixing alphabets then fails in nettle); missing padding is
 * supplied. *out is malloc'ed with a NUL after the *len bytes. */
static int b64_decode(const char *s, size_t n, const char *key, uint8_t **out, size_t *len,
                      char *err) {
    bool url = false;
    size_t sig = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        url |= s[i] == '-' || s[i] == '_';
        sig += is_b64((uint8_t)s[i]);
        pad += s[i] == '=';
    }
    const char *fill = pad > 0 ? "" : sig % 4 == 2 ? "==" : sig % 4 == 3 ? "=" : "";
    if (pad == 0 && sig % 4 == 1)
        return sm_err(err, -EINVAL, "field '%.64s': base64 length is impossible", key);
    uint8_t *d = malloc(BASE64_DECODE_LENGTH(n) + BASE64_DECODE_LENGTH(2) + 1);
    if (!d)
        return sm_err(err, -ENOMEM, "out of memory");
    struct base64_decode_ctx ctx;
    if (url)
        base64url_decode_init(&ctx);
    else
        base64_decode_init(&ctx);
    size_t a = 0, b = 0;
    int ok = base64_decode_update(&ctx, &a, d, n, s) &&
             base64_decode_update(&ctx, &b, d + a, strlen(fill), fill) && base64_decode_final(&ctx);
    if (!ok) {
        free(d);
        return sm_err(err, -EINVAL, "field '%.64s': invalid base64", key);
    }
    d[a + b] = 0;
    *out = d;
    *len = a + b;
    return 0;
}

/* One image string: decoded into a field, its base64 text freed at once. */
static int json_image(ReqForm *f, const ReqLim *lim, const char *key, cJSON *item, char *err) {
    const char *s = item->valuestring;
    size_t n = strlen(s), off, len = 0;
    char *ctype = NULL, *name = NULL;
    uint8_t *data = NULL;
    int rc = data_url(s, n, key, &off, &ctype, err);
    if (rc == 0)
        rc = b64_decode(s + off, n - off, key, &data, &len, err);
    if (rc < 0)
        goto out;
    cJSON_free(item->valuestring);
    item->valuestring = NULL;
    if (!(name = req_dup(key, strlen(key)))) {
        rc = sm_err(err, -ENOMEM, "out of memory");
        goto out;
    }
    rc = req_form_add(f, lim, name, data, len, ctype, NULL, err);
    name = NULL, data = NULL, ctype = NULL;
out:
    free(name);
    free(data);
    free(ctype);
    return rc;
}

static int json_images(ReqForm *f, const ReqLim *lim, const char *key, cJSON *item, char *err) {
    if (cJSON_IsString(item))
        return json_image(f, lim, key, item, err);
    if (!cJSON_IsArray(item))
        return sm_err(err, -EINVAL, "field '%.64s' must be a base64 string or an array of them",
                      key);
    int i = 0, rc = 0;
    for (cJSON *c = item->child; c && rc == 0; c = c->next, i++)
        rc = cJSON_IsString(c)
                 ? json_image(f, lim, key, c, err)
                 : sm_err(err, -EINVAL, "field '%.64s': element %d is not a string", key, i);
    return rc;
}

/* Where a top-level member's value is in the body: len bytes at off. */
typedef struct {
    size_t off, len;
} Span;

/* The value spans of the first max members of the (already validated)
 * object in s, in body order, whitespace trimmed; returns how many. */
static int member_spans(const uint8_t *s, size_t n, Span *out, int max) {
    int depth = 0, k = 0;
    size_t start = 0;
    for (size_t i = 0; i < n && k < max; i++) {
        uint8_t c = s[i];
        if (c == '"') {
            scan_string(s, n, &i, NULL);
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == ':' && depth == 1) {
            start = i + 1;
        } else if (start && depth == 1 && (c == ',' || c == '}')) {
            size_t a = start, b = i;
            while (a < b && is_ws(s[a]))
                a++;
            while (b > a && is_ws(s[b - 1]))
                b--;
            out[k++] = (Span){a, b - a};
            start = 0;
        }
        if (c == '}' || c == ']')
            depth--;
    }
    return k;
}

/* Any other member, as text: strings as they are, the rest as the body
 * spelled them (raw, a validated JSON value), so a number in metadata
 * such as 1234567890123456789 is kept digit for digit. */
static int json_text(ReqForm *f, const ReqLim *lim, const char *key, const cJSON *item,
                     const char *raw, size_t raw_len, char *err) {
    if (cJSON_IsNumber(item) && !isfinite(item->valuedouble))
        return sm_err(err, -EINVAL, "field '%.64s': number out of range", key);
    const char *t = cJSON_IsString(item) ? item->valuestring : raw;
    size_t len = cJSON_IsString(item) ? strlen(t) : raw_len;
    int rc = req_check_text(lim, key, (const uint8_t *)t, len, err);
    char *name = rc == 0 ? req_dup(key, strlen(key)) : NULL;
    uint8_t *data = rc == 0 ? req_dup(t, len) : NULL;
    if (rc == 0 && (!name || !data)) {
        free(name);
        free(data);
        rc = sm_err(err, -ENOMEM, "out of memory");
    } else if (rc == 0) {
        rc = req_form_add(f, lim, name, data, len, NULL, NULL, err);
    }
    return rc;
}

/* Parses len bytes as one JSON object under every check above; *out is the
 * caller's (cJSON_Delete). */
static int json_object(const ReqLim *lim, const uint8_t *s, size_t len, cJSON **out, char *err) {
    int rc = json_scan(lim, s, len, err);
    if (rc < 0)
        return rc;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)s, len, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        size_t at = end && end >= (const char *)s ? (size_t)(end - (const char *)s) : 0;
        rc = sm_err(err, -EINVAL, "malformed JSON near byte %zu", at);
        goto out;
    }
    for (size_t i = (size_t)(end - (const char *)s); i < len; i++)
        if (!is_ws(s[i])) {
            rc = sm_err(err, -EINVAL, "data after the JSON object at byte %zu", i);
            goto out;
        }
    if ((rc = json_check_dups(root, err)) < 0)
        goto out;
    *out = root;
    root = NULL;
out:
    cJSON_Delete(root);
    return rc;
}

int req_json_object_check(const char *text, size_t len, int max_depth, int max_values, char *err) {
    ReqLim lim = {.max_json_depth = max_depth, .max_json_values = max_values};
    cJSON *root = NULL;
    int rc = json_object(&lim, (const uint8_t *)text, len, &root, err);
    cJSON_Delete(root);
    return rc;
}

int req_parse_json(ReqForm *f, const ReqLim *lim, const uint8_t *body, size_t len, char *err) {
    cJSON *root = NULL;
    Span *spans = NULL;
    int rc = json_object(lim, body, len, &root, err), n = 0, k = 0;
    for (cJSON *m = root ? root->child : NULL; m; m = m->next)
        n++;
    if (rc == 0 && n && !(spans = malloc((size_t)n * sizeof *spans)))
        rc = sm_err(err, -ENOMEM, "out of memory");
    if (rc == 0 && n) {
        int found = member_spans(body, len, spans, n);
        assert(found == n);
        (void)found;
    }
    for (cJSON *m = root ? root->child : NULL; m && rc == 0; m = m->next, k++) {
        const char *key = m->string;
        if ((rc = req_check_name(key, strlen(key), err)) < 0 ||
            (rc = req_check_known(lim, key, err)) < 0 || cJSON_IsNull(m))
            continue;
        rc = req_is_image(lim, key)
                 ? json_images(f, lim, key, m, err)
                 : json_text(f, lim, key, m, (const char *)body + spans[k].off, spans[k].len, err);
    }
    free(spans);
    cJSON_Delete(root);
    return rc;
}
