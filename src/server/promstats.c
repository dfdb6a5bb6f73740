/*
 * promstats.c — lock-free request counters and latency histograms, rendered
 * in the Prometheus text format 0.0.4.
 *
 * Each route has its own block of atomic counters, aligned to a cache line
 * so that threads answering different routes do not contend for one line.
 * Latency is kept per route and status code. Buckets are stored
 * non-cumulatively (one increment per observation) and summed when rendered,
 * so the request count, the +Inf bucket and _count are by construction the
 * same number. Latency sums are kept as integer nanoseconds, because C11
 * has no atomic floating-point addition and a compare-and-swap loop on a
 * double would make observe() retry under contention; 2^64 ns is 584 years.
 */
#include "siamese/promstats.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "siamesed_"
#define REQS "http_requests_total"
#define DUR "http_request_duration_seconds"

static const int codes[] = {PROM_CODES};
static const double bounds[] = {PROM_BUCKETS};
#define N_CODES (int)(sizeof codes / sizeof codes[0])
#define N_BOUNDS (int)(sizeof bounds / sizeof bounds[0])
#define MAX_SUM_NS 1e18 /* one observation adds at most this (31 years) */

/* Per status code (last: "other"), buckets (last: above every bound). */
typedef struct {
    _Alignas(64) atomic_uint_fast64_t bucket[N_CODES + 1][N_BOUNDS + 1];
    atomic_uint_fast64_t sum_ns[N_CODES + 1];
} RouteStats;

struct PromStats {
    int n;        /* named routes; r[n] is "unknown" */
    char **names; /* n copies */
    RouteStats *r;
};

PromStats *promstats_new(const char *const *names, int n_routes) {
    if (!names || n_routes < 1)
        return NULL;
    for (int i = 0; i < n_routes; i++)
        if (!names[i])
            return NULL;
    PromStats *p = calloc(1, sizeof *p);
    size_t size = ((size_t)n_routes + 1) * sizeof(RouteStats);
    if (!p || !(p->names = calloc((size_t)n_routes, sizeof *p->names)) ||
        !(p->r = aligned_alloc(_Alignof(RouteStats), size)))
        goto fail;
    for (int i = 0; i <= n_routes; i++)
        for (int c = 0; c <= N_CODES; c++) {
            for (int b = 0; b <= N_BOUNDS; b++)
                atomic_init(&p->r[i].bucket[c][b], 0);
            atomic_init(&p->r[i].sum_ns[c], 0);
        }
    p->n = n_routes;
    for (int i = 0; i < n_routes; i++)
        if (!(p->names[i] = strdup(names[i])))
            goto fail;
    return p;
fail:
    promstats_free(p);
    return NULL;
}

void promstats_free(PromStats *p) {
    if (!p)
        return;
    for (int i = 0; p->names && i < p->n; i++)
        free(p->names[i]);
    free(p->names);
    free(p->r);
    free(p);
}

static int code_index(int status) {
    for (int i = 0; i < N_CODES; i++)
        if (codes[i] == status)
            return i;
    return N_CODES;
}

void promstats_observe(PromStats *p, int route, int status, double seconds) {
    if (!p)
        return;
    RouteStats *r = &p->r[route >= 0 && route < p->n ? route : p->n];
    if (!(seconds >= 0))
        seconds = 0;
    int b = 0;
    while (b < N_BOUNDS && seconds > bounds[b])
        b++;
    double ns = seconds * 1e9;
    uint64_t add = ns < MAX_SUM_NS ? (uint64_t)llround(ns) : (uint64_t)MAX_SUM_NS;
    int c = code_index(status);
    atomic_fetch_add_explicit(&r->bucket[c][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->sum_ns[c], add, memory_order_relaxed);
}

/* ---- rendering ----------------------------------------------------------- */

/* Growing text; failed is set (and later appends do nothing) on ENOMEM. */
typedef struct {
    char *s;
    size_t len, cap;
    bool failed;
} Buf;

__attribute__((format(printf, 2, 3))) static void buf_printf(Buf *b, const char *fmt, ...) {
    for (int pass = 0; pass < 2 && !b->failed; pass++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
        } else if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        } else {
            size_t cap = b->cap ? b->cap : 4096;
            while (cap - b->len <= (size_t)n)
                cap *= 2;
            char *s = realloc(b->s, cap);
            if (!s)
                b->failed = true;
            else
                b->s = s, b->cap = cap;
        }
    }
}

/* Appends s escaped for a label value (in_label) or a HELP line. */
static void buf_escaped(Buf *b, const char *s, bool in_label) {
    for (; *s; s++) {
        if (*s == '\\')
            buf_printf(b, "\\\\");
        else if (*s == '\n')
            buf_printf(b, "\\n");
        else if (*s == '"' && in_label)
            buf_printf(b, "\\\"");
        else
            buf_printf(b, "%c", *s);
    }
}

/* A float as Prometheus reads it: the shortest %g form that round-trips. */
static void buf_value(Buf *b, double v) {
    if (isnan(v)) {
        buf_printf(b, "NaN");
        return;
    }
    if (isinf(v)) {
        buf_printf(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    char t[32];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(t, sizeof t, "%.*g", prec, v);
        if (strtod(t, NULL) == v)
            break;
    }
    buf_printf(b, "%s", t);
}

static void family(Buf *b, const char *name, const char *help, const char *type) {
    buf_printf(b, "# HELP " PREFIX "%s ", name);
    buf_escaped(b, help ? help : "", false);
    buf_printf(b, "\n# TYPE " PREFIX "%s %s\n", name, type);
}

static const char *label_of(const PromStats *p, int i) {
    return i < p->n ? p->names[i] : "unknown";
}

static uint64_t load(const atomic_uint_fast64_t *a) {
    return atomic_load_explicit(a, memory_order_relaxed);
}

/* Observations of route i with code index c. */
static uint64_t code_count(const PromStats *p, int i, int c) {
    uint64_t n = 0;
    for (int k = 0; k <= N_BOUNDS; k++)
        n += load(&p->r[i].bucket[c][k]);
    return n;
}

/* route="...",code="..." (the label pairs every series of one cell carries). */
static void cell_labels(Buf *b, const PromStats *p, int i, int c) {
    buf_printf(b, "route=\"");
    buf_escaped(b, label_of(p, i), true);
    if (c < N_CODES)
        buf_printf(b, "\",code=\"%d\"", codes[c]);
    else
        buf_printf(b, "\",code=\"other\"");
}

static void render_counters(Buf *b, const PromStats *p) {
    family(b, REQS, "HTTP requests answered, by route and status code.", "counter");
    for (int i = 0; i <= p->n; i++)
        for (int c = 0; c <= N_CODES; c++) {
            uint64_t v = code_count(p, i, c);
            if (v == 0)
                continue;
            buf_printf(b, PREFIX REQS "{");
            cell_labels(b, p, i, c);
            buf_printf(b, "} %llu\n", (unsigned long long)v);
        }
}

/* One histogram per route and status code seen. */
static void render_histograms(Buf *b, const PromStats *p) {
    family(b, DUR, "Time from a request's arrival to the end of its reply, by route and status.",
           "histogram");
    for (int i = 0; i <= p->n; i++)
        for (int c = 0; c <= N_CODES; c++) {
            if (code_count(p, i, c) == 0)
                continue;
            uint64_t cum = 0;
            for (int k = 0; k <= N_BOUNDS; k++) {
                cum += load(&p->r[i].bucket[c][k]);
                buf_printf(b, PREFIX DUR "_bucket{");
                cell_labels(b, p, i, c);
                if (k < N_BOUNDS)
                    buf_printf(b, ",le=\"%g\"} %llu\n", bounds[k], (unsigned long long)cum);
                else
                    buf_printf(b, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
            }
            buf_printf(b, PREFIX DUR "_sum{");
            cell_labels(b, p, i, c);
            buf_printf(b, "} ");
            buf_value(b, (double)load(&p->r[i].sum_ns[c]) / 1e9);
            buf_printf(b, "\n" PREFIX DUR "_count{");
            cell_labels(b, p, i, c);
            buf_printf(b, "} %llu\n", (unsigned long long)cum);
        }
}

static bool name_ok(const char *s) {
    if (!s || !*s || (*s >= '0' && *s <= '9'))
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == ':'))
            return false;
    return true;
}

/* name="value"(,name="value")*: label names without ':', values whose only
 * escapes are \\ \" \n and that hold no raw newline. */
static bool labels_ok(const char *s) {
    for (;;) {
        const char *n = s;
        while ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' ||
               (s > n && *s >= '0' && *s <= '9'))
            s++;
        if (s == n || *s++ != '=' || *s++ != '"')
            return false;
        for (; *s != '"'; s++) {
            if (!*s || *s == '\n')
                return false;
            if (*s == '\\' && (s[1] != '\\' && s[1] != '"' && s[1] != 'n'))
                return false;
            s += *s == '\\';
        }
        if (*++s == 0)
            return true;
        if (*s++ != ',')
            return false;
    }
}

static bool builtin_name(const char *name) {
    return strcmp(name, REQS) == 0 || strncmp(name, DUR, strlen(DUR)) == 0;
}

static int check_gauges(const PromGauge *g, int n) {
    for (int i = 0; i < n; i++) {
        if (!name_ok(g[i].name) || builtin_name(g[i].name) ||
            (g[i].labels && *g[i].labels && !labels_ok(g[i].labels)))
            return -EINVAL;
        for (int j = 0; j + 1 < i; j++)
            if (strcmp(g[j].name, g[i].name) == 0 && strcmp(g[i - 1].name, g[i].name) != 0)
                return -EINVAL;
    }
    return 0;
}

static void render_gauges(Buf *b, const PromGauge *g, int n) {
    for (int i = 0; i < n; i++) {
        if (i == 0 || strcmp(g[i - 1].name, g[i].name) != 0)
            family(b, g[i].name, g[i].help, g[i].counter ? "counter" : "gauge");
        buf_printf(b, PREFIX "%s", g[i].name);
        if (g[i].labels && *g[i].labels)
            buf_printf(b, "{%s}", g[i].labels);
        buf_printf(b, " ");
        buf_value(b, g[i].value);
        buf_printf(b, "\n");
    }
}

int promstats_render(const PromStats *p, const PromGauge *gauges, int n_gauges, char **out,
                     size_t *len) {
    *out = NULL;
    *len = 0;
    if (n_gauges < 0 || (n_gauges > 0 && !gauges) || check_gauges(gauges, n_gauges) < 0)
        return -EINVAL;
    Buf b = {0};
    buf_printf(&b, "%s", "");
    if (p) {
        render_counters(&b, p);
        render_histograms(&b, p);
    }
    render_gauges(&b, gauges, n_gauges);
    if (b.failed) {
        free(b.s);
        return -ENOMEM;
    }
    *out = b.s;
    *len = b.len;
    return 0;
}
