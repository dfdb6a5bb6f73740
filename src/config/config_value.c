/*
 * config_value.c — the value types of siamesed's settings (see config_value.h).
 *
 * Each type has a parser that checks the whole text before anything is
 * stored (syntax, bounds, list lengths before allocating), a canonical
 * formatter whose output the parser accepts back, and a bounds description
 * for --help. Text arrives from files, the environment and the command line,
 * so parsers are strict: no leading blanks, no trailing garbage, no "nan",
 * no hex; reasons never echo an API key.
 */
#include "config_value.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "siamese/common.h"

static void *field(Config *cfg, const ConfigEntry *e) {
    return (char *)cfg + e->off;
}
static const void *cfield(const Config *cfg, const ConfigEntry *e) {
    return (const char *)cfg + e->off;
}
static int *count_field(Config *cfg, const ConfigEntry *e) {
    return (int *)((char *)cfg + e->off_n);
}

const char *config_shown(const char *v, char *buf, size_t size) {
    size_t n = 0, max = size - 4;
    for (; v[n] && n < max; n++)
        buf[n] = isprint((unsigned char)v[n]) ? v[n] : '?';
    strcpy(buf + n, v[n] ? "..." : "");
    return buf;
}

static void free_keys(ConfigApiKey *k, int n) {
    for (int i = 0; k && i < n; i++)
        free(k[i].key);
    free(k);
}

/* ---- parsing one value of each type ---- */

static int parse_ll(const char *v, long long *out) {
    if (!(isdigit((unsigned char)v[0]) || (v[0] == '-' && isdigit((unsigned char)v[1]))))
        return -EINVAL;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (*end)
        return -EINVAL;
    if (errno == ERANGE)
        return -ERANGE;
    *out = x;
    return 0;
}

static int parse_int(const ConfigEntry *e, const char *v, long long *out, char *why) {
    int rc = parse_ll(v, out);
    if (rc == -EINVAL)
        return sm_err(why, rc, "not an integer");
    if (rc < 0 || *out < e->min || *out > e->max)
        return sm_err(why, -ERANGE, "out of range %.0f..%.0f", e->min, e->max);
    return 0;
}

static int parse_u64(const char *v, uint64_t *out, char *why) {
    if (!isdigit((unsigned char)v[0]))
        return sm_err(why, -EINVAL, "not a non-negative integer");
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (*end)
        return sm_err(why, -EINVAL, "not a non-negative integer");
    if (errno == ERANGE)
        return sm_err(why, -ERANGE, "larger than %" PRIu64, UINT64_MAX);
    *out = x;
    return 0;
}

static const char size_suffix[] = "KMG";

static int parse_size(const ConfigEntry *e, const char *v, size_t *out, char *why) {
    char *end;
    if (!isdigit((unsigned char)v[0]))
        return sm_err(why, -EINVAL, "not a size (bytes, or a number with K, M or G)");
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    int shift = 0;
    const char *s = *end ? strchr(size_suffix, toupper((unsigned char)*end)) : NULL;
    if (s)
        shift = 10 * (int)(s - size_suffix + 1), end++;
    if (*end)
        return sm_err(why, -EINVAL, "not a size (bytes, or a number with K, M or G)");
    if (errno == ERANGE || x > (SIZE_MAX >> shift) || (double)(x << shift) > e->max ||
        (double)(x << shift) < e->min) {
        char range[64];
        configval_bounds(&(ConfigOut){range, sizeof range, 0}, e);
        return sm_err(why, -ERANGE, "out of range %s", range);
    }
    *out = (size_t)(x << shift);
    return 0;
}

static int parse_float(const ConfigEntry *e, const char *v, double *out, char *why) {
    /* Only plain decimal syntax: strtod would also take "nan", "inf", hex. */
    bool digit = false;
    for (const char *p = v; *p; p++) {
        if (!strchr("0123456789.eE+-", *p))
            return sm_err(why, -EINVAL, "not a number");
        digit |= isdigit((unsigned char)*p) != 0;
    }
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (!digit || *end || errno == ERANGE || !isfinite(x))
        return sm_err(why, -EINVAL, "not a number");
    bool lo_ok = (e->flags & CF_MIN_OPEN) ? x > e->min : x >= e->min;
    bool hi_ok = (e->flags & CF_MAX_OPEN) ? x < e->max : x <= e->max;
    if (!lo_ok || !hi_ok)
        return sm_err(why, -ERANGE, "out of range %c%g, %g%c", (e->flags & CF_MIN_OPEN) ? '(' : '[',
                      e->min, e->max, (e->flags & CF_MAX_OPEN) ? ')' : ']');
    *out = x;
    return 0;
}

static int parse_bool(const char *v, bool *out, char *why) {
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < SM_ARRAY_LEN(yes); i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return *out = true, 0;
        if (strcasecmp(v, no[i]) == 0)
            return *out = false, 0;
    }
    return sm_err(why, -EINVAL, "not a bool (yes/no, true/false, on/off, 1/0)");
}

static int parse_enum(const ConfigEntry *e, const char *v, int *out, char *why) {
    char list[128] = "";
    for (int i = 0; e->words[i]; i++) {
        if (strcmp(v, e->words[i]) == 0)
            return *out = i, 0;
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? "|" : "",
                 e->words[i]);
    }
    return sm_err(why, -EINVAL, "not one of %s", list);
}

static bool valid_hostname(const char *h, size_t n) {
    if (n == 0 || n > 253)
        return false;
    size_t label = 0;
    bool all_numeric = true;
    for (size_t i = 0; i <= n; i++) {
        char c = i < n ? h[i] : '.';
        if (c == '.') {
            if (label == 0 || h[i - 1] == '-')
                return false;
            label = 0;
        } else if (isalnum((unsigned char)c) || (c == '-' && label > 0)) {
            if (++label > 63)
                return false;
            all_numeric &= isdigit((unsigned char)c) != 0;
        } else {
            return false;
        }
    }
    return !all_numeric; /* "999.1.1.1" is a bad address, not a name */
}

/* "host:port", "[v6]:port", or ":port" (every interface: *host is "").
 * *host is malloc'ed (brackets removed). */
static int parse_addr(const ConfigEntry *e, const char *v, char **host, int *port, char *why) {
    const char *colon = strrchr(v, ':'), *h = v;
    size_t hlen = colon ? (size_t)(colon - v) : 0;
    char buf[256], shown[48];
    struct in6_addr a6;
    if (!colon)
        return sm_err(why, -EINVAL, "not HOST:PORT (or :PORT for every interface)");
    if (v[0] == '[') {
        if (hlen < 3 || v[hlen - 1] != ']')
            return sm_err(why, -EINVAL, "not [IPv6]:PORT");
        h = v + 1, hlen -= 2;
    }
    if (hlen >= sizeof buf)
        return sm_err(why, -EINVAL, "host name too long");
    memcpy(buf, h, hlen);
    buf[hlen] = 0;
    bool bracketed = h != v, colons = memchr(buf, ':', hlen) != NULL, ok;
    if (hlen == 0)
        ok = true;
    else if (bracketed)
        ok = inet_pton(AF_INET6, buf, &a6) == 1;
    else
        ok = !colons && (inet_pton(AF_INET, buf, &a6) == 1 || valid_hostname(buf, hlen));
    if (!ok)
        return sm_err(why, -EINVAL, "bad host '%s'%s", config_shown(buf, shown, sizeof shown),
                      colons && !bracketed ? " (write IPv6 as [addr]:port)" : "");
    long long p;
    if (parse_ll(colon + 1, &p) < 0 || p < e->min || p > e->max)
        return sm_err(why, -ERANGE, "port not in %.0f..%.0f", e->min, e->max);
    if (!(*host = strdup(buf)))
        return sm_err(why, -ENOMEM, "out of memory");
    *port = (int)p;
    return 0;
}

/* "128,128,128" into out (e->n_max <= CONFIG_MAX_HIDDEN ints); spaces around items are fine. */
static int parse_intlist(const ConfigEntry *e, const char *v, int *out, int *n, char *why) {
    int count = 0;
    for (const char *p = v;;) {
        while (*p == ' ')
            p++;
        if (count == 0 && !*p)
            break;
        if (count == e->n_max)
            return sm_err(why, -ERANGE, "more than %d items", e->n_max);
        char *end = (char *)p;
        long long x = 0;
        errno = 0;
        if (isdigit((unsigned char)*p))
            x = strtoll(p, &end, 10);
        bool digits = end != p;
        while (*end == ' ')
            end++;
        if (!digits || (*end && *end != ','))
            return sm_err(why, -EINVAL, "item %d is not an integer", count + 1);
        if (errno == ERANGE || x < e->min || x > e->max)
            return sm_err(why, -ERANGE, "item %d out of range %.0f..%.0f", count + 1, e->min,
                          e->max);
        out[count++] = (int)x;
        if (!*end)
            break;
        p = end + 1;
    }
    if (count < e->n_min)
        return sm_err(why, -ERANGE, "needs %d to %d items", e->n_min, e->n_max);
    *n = count;
    return 0;
}

static bool key_char(char c) {
    return isalnum((unsigned char)c) || (c && strchr("._~+/=-", c));
}

int configval_key_check(const char *key, size_t klen, char *why) {
    if (klen < 16 || klen > 256)
        return sm_err(why, -EINVAL, "key must be 16 to 256 characters");
    for (size_t i = 0; i < klen; i++)
        if (!key_char(key[i]))
            return sm_err(why, -EINVAL, "key has a character outside A-Z a-z 0-9 . _ ~ + / = -");
    return 0;
}

/* One "KEY:scope" item of length len (already trimmed). Never echoes the key. */
static int parse_key_item(const char *s, size_t len, int idx, ConfigApiKey *k, char *why) {
    const char *colon = memchr(s, ':', len);
    if (!colon)
        return sm_err(why, -EINVAL, "item %d is not KEY:read or KEY:write", idx);
    size_t klen = (size_t)(colon - s), slen = len - klen - 1;
    char kwhy[SM_ERRMAX];
    if (configval_key_check(s, klen, kwhy) < 0)
        return sm_err(why, -EINVAL, "item %d: %s", idx, kwhy);
    if (slen == 4 && memcmp(colon + 1, "read", 4) == 0)
        k->scope = CONFIG_SCOPE_READ;
    else if (slen == 5 && memcmp(colon + 1, "write", 5) == 0)
        k->scope = CONFIG_SCOPE_WRITE;
    else
        return sm_err(why, -EINVAL, "item %d: scope must be read or write", idx);
    if (!(k->key = strndup(s, klen)))
        return sm_err(why, -ENOMEM, "out of memory");
    return 0;
}

static int parse_keys(const ConfigEntry *e, const char *v, ConfigApiKey **out, int *n, char *why) {
    int rc = 0, count = 0, cap = 1;
    while (*v == ' ')
        v++;
    if (!*v)
        return *out = NULL, *n = 0, 0;
    for (const char *p = v; *p; p++)
        cap += *p == ',';
    if (cap > e->n_max)
        return sm_err(why, -ERANGE, "more than %d entries", e->n_max);
    ConfigApiKey *k = calloc((size_t)cap, sizeof *k);
    if (!k)
        return sm_err(why, -ENOMEM, "out of memory");
    for (const char *p = v; count < cap; count++) {
        const char *comma = strchr(p, ','), *end = comma ? comma : p + strlen(p);
        while (*p == ' ')
            p++;
        while (end > p && end[-1] == ' ')
            end--;
        if ((rc = parse_key_item(p, (size_t)(end - p), count + 1, &k[count], why)) < 0)
            goto out;
        p = comma ? comma + 1 : end;
    }
    *out = k, *n = count, k = NULL;
out:
    free_keys(k, cap);
    return rc;
}

static int parse_string(const ConfigEntry *e, const char *v, char **out, char *why) {
    size_t n = strlen(v);
    if (n < e->min)
        return sm_err(why, -EINVAL, "must not be empty");
    if (n > e->max)
        return sm_err(why, -EINVAL, "longer than %.0f characters", e->max);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            return sm_err(why, -EINVAL, "contains a control character");
    if (!(*out = strdup(v)))
        return sm_err(why, -ENOMEM, "out of memory");
    return 0;
}

int configval_set(Config *cfg, const ConfigEntry *e, const char *v, char *why) {
    void *f = field(cfg, e);
    int *count = count_field(cfg, e), rc = 0;
    switch (e->type) {
    case CT_STRING:
    case CT_PATH: {
        char *s;
        if ((rc = parse_string(e, v, &s, why)) == 0)
            free(*(char **)f), *(char **)f = s;
        break;
    }
    case CT_INT: {
        long long x;
        if ((rc = parse_int(e, v, &x, why)) == 0)
            *(int *)f = (int)x;
        break;
    }
    case CT_U64:
        rc = parse_u64(v, f, why);
        break;
    case CT_SIZE:
        rc = parse_size(e, v, f, why);
        break;
    case CT_FLOAT:
        rc = parse_float(e, v, f, why);
        break;
    case CT_BOOL:
        rc = parse_bool(v, f, why);
        break;
    case CT_ENUM:
        rc = parse_enum(e, v, f, why);
        break;
    case CT_ADDR: {
        ConfigAddr *a = f;
        char *host = NULL;
        int port = 0;
        if ((rc = parse_addr(e, v, &host, &port, why)) == 0)
            free(a->host), a->host = host, a->port = port;
        break;
    }
    case CT_INTLIST: {
        int tmp[CONFIG_MAX_HIDDEN] = {0}, n = 0;
        if ((rc = parse_intlist(e, v, tmp, &n, why)) == 0)
            memcpy(f, tmp, sizeof tmp), *count = n;
        break;
    }
    case CT_KEYS: {
        ConfigApiKey *k = NULL;
        int n = 0;
        if ((rc = parse_keys(e, v, &k, &n, why)) == 0)
            free_keys(*(ConfigApiKey **)f, *count), *(ConfigApiKey **)f = k, *count = n;
        break;
    }
    }
    return rc;
}

void configval_free(Config *cfg, const ConfigEntry *e) {
    void *f = field(cfg, e);
    if (e->type == CT_STRING || e->type == CT_PATH)
        free(*(char **)f);
    else if (e->type == CT_ADDR)
        free(((ConfigAddr *)f)->host);
    else if (e->type == CT_KEYS)
        free_keys(*(ConfigApiKey **)f, *count_field(cfg, e));
}

/* ---- writing a value back as text ---- */

void config_put(ConfigOut *o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->p + (o->len < o->size ? o->len : o->size - 1),
                      o->len < o->size ? o->size - o->len : 1, fmt, ap);
    va_end(ap);
    o->len += n > 0 ? (size_t)n : 0;
}

static void put_size(ConfigOut *o, unsigned long long x) {
    int s = 3;
    while (s > 0 && (x == 0 || x % (1ull << (10 * s)) != 0))
        s--;
    config_put(o, "%llu%s", x >> (10 * s), (const char *[]){"", "K", "M", "G"}[s]);
}

/* Plain text that reads back as exactly x: 15 significant digits hide the
 * binary noise of values like 0.1, 17 always suffice. */
static void put_double(ConfigOut *o, double x) {
    char b[32];
    snprintf(b, sizeof b, "%.15g", x);
    if (strtod(b, NULL) != x)
        snprintf(b, sizeof b, "%.17g", x);
    config_put(o, "%s", b);
}

void configval_format(ConfigOut *o, const Config *cfg, const ConfigEntry *e) {
    const void *f = cfield(cfg, e);
    int n = e->off_n ? *(const int *)((const char *)cfg + e->off_n) : 0;
    config_put(o, "%s", ""); /* the buffer reads "" even if nothing follows */
    switch (e->type) {
    case CT_STRING:
    case CT_PATH:
        config_put(o, "%s", *(char *const *)f ? *(char *const *)f : "");
        break;
    case CT_INT:
        config_put(o, "%d", *(const int *)f);
        break;
    case CT_U64:
        config_put(o, "%" PRIu64, *(const uint64_t *)f);
        break;
    case CT_SIZE:
        put_size(o, *(const size_t *)f);
        break;
    case CT_FLOAT:
        put_double(o, *(const double *)f);
        break;
    case CT_BOOL:
        config_put(o, "%s", *(const bool *)f ? "yes" : "no");
        break;
    case CT_ENUM: {
        int v = *(const int *)f, k = 0;
        while (e->words[k] && k < v)
            k++;
        config_put(o, "%s", v >= 0 && e->words[k] ? e->words[k] : "?");
        break;
    }
    case CT_ADDR: {
        const ConfigAddr *a = f;
        const char *h = a->host ? a->host : "";
        config_put(o, strchr(h, ':') ? "[%s]:%d" : "%s:%d", h, a->port);
        break;
    }
    case CT_INTLIST:
        for (int i = 0; i < n && i < CONFIG_MAX_HIDDEN; i++)
            config_put(o, "%s%d", i ? "," : "", ((const int *)f)[i]);
        break;
    case CT_KEYS:
        if (n > 0)
            config_put(o, "(%d keys redacted)", n);
        break;
    }
}

void configval_bounds(ConfigOut *o, const ConfigEntry *e) {
    switch (e->type) {
    case CT_STRING:
    case CT_PATH:
        config_put(o, "%s", e->min > 0 ? "non-empty" : "may be empty");
        break;
    case CT_INT:
        config_put(o, "%.0f..%.0f", e->min, e->max);
        break;
    case CT_U64:
        config_put(o, "0..%" PRIu64, UINT64_MAX);
        break;
    case CT_SIZE:
        put_size(o, (unsigned long long)e->min);
        config_put(o, "..");
        put_size(o, (unsigned long long)e->max);
        break;
    case CT_FLOAT:
        config_put(o, "%c%g, %g%c", e->flags & CF_MIN_OPEN ? '(' : '[', e->min, e->max,
                   e->flags & CF_MAX_OPEN ? ')' : ']');
        break;
    case CT_BOOL:
        config_put(o, "yes|no");
        break;
    case CT_ENUM:
        for (int i = 0; e->words[i]; i++)
            config_put(o, "%s%s", i ? "|" : "", e->words[i]);
        break;
    case CT_ADDR:
        config_put(o, "port %.0f..%.0f", e->min, e->max);
        break;
    case CT_INTLIST:
        config_put(o, "%d..%d items, each %.0f..%.0f", e->n_min, e->n_max, e->min, e->max);
        break;
    case CT_KEYS:
        config_put(o, "up to %d entries; secret", e->n_max);
        break;
    }
}
