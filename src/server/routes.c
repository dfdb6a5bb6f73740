/*
 * routes.c — the route table and the dispatcher. Each row is one route: the
 * method, the path pattern, who may call it, the handler and the name it is
 * counted under in metrics and the access log. Matching, the 405 Allow list,
 * the auth scope and the metric labels all read this one table, so a route is
 * added by adding a row (and its handler in routes_images.c or
 * routes_store.c).
 *
 * A pattern is "/" or "/seg/seg..." where "{id}" and "{sample}" stand for one
 * non-empty segment, handed to the handler in RouteArgs. GET rows also answer
 * HEAD. Rows that share a name share a metrics series. The last column lists
 * the query parameters a route takes (any other is refused, so a misspelt or
 * unsupported one is not silently ignored); "*" takes any (the page's
 * static files, which ignore the query).
 */
#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "routes.h"
#include "siamese/common.h"

static const Route routes[] = {
    {"POST", "/verify", ROUTE_READ, handle_verify, "verify", NULL},
    {"POST", "/enroll", ROUTE_WRITE, handle_enroll, "enroll", NULL},
    {"POST", "/embed", ROUTE_READ, handle_embed, "embed", NULL},
    {"POST", "/identify", ROUTE_READ, handle_identify, "identify", "exact"},
    {"GET", "/subjects", ROUTE_READ, handle_subjects, "subjects", "limit cursor"},
    {"GET", "/subjects/{id}", ROUTE_READ, handle_subject_get, "subject", "limit cursor"},
    {"DELETE", "/subjects/{id}", ROUTE_WRITE, handle_subject_delete, "subject", NULL},
    {"DELETE", "/subjects/{id}/samples/{sample}", ROUTE_WRITE, handle_sample_delete, "sample",
     NULL},
    {"GET", "/model", ROUTE_READ, handle_model, "model", NULL},
    {"GET", "/healthz", ROUTE_PUBLIC, handle_healthz, "healthz", NULL},
    {"GET", "/metrics", ROUTE_READ, handle_metrics, "metrics", NULL},
    {"POST", "/admin/reload", ROUTE_WRITE, handle_admin_reload, "reload", NULL},
    /* The web page (web/, compiled in): public, since it holds only code; the
     * API calls it makes carry the user's key. One row per asset. */
    {"GET", "/", ROUTE_PUBLIC, handle_page, "page", "*"},
    {"GET", "/app.js", ROUTE_PUBLIC, handle_page, "page", "*"},
    {"GET", "/style.css", ROUTE_PUBLIC, handle_page, "page", "*"},
    {"GET", "/favicon.svg", ROUTE_PUBLIC, handle_page, "page", "*"},
    {"GET", "/page/settings", ROUTE_PUBLIC, handle_page_settings, "page", NULL},
};

#define N_ROUTES ((int)SM_ARRAY_LEN(routes))

static void handle_other(Server *srv, const HttpReq *req, const RouteArgs *args, Reply *rep);

/* Unknown paths, and known ones asked with a method they do not take. */
static const Route route_other = {"", "", ROUTE_READ, handle_other, "other", NULL};

/* Derived from the table once: each row's metric index and the Allow header
 * of its pattern (every method of the rows with the same pattern). */
static struct {
    pthread_once_t once;
    int metric[N_ROUTES + 1];
    int n_metrics;
    const char *names[N_ROUTES + 1];
    char allow[N_ROUTES][48];
} derived = {.once = PTHREAD_ONCE_INIT};

static void derive(void) {
    for (int i = 0; i <= N_ROUTES; i++) {
        const Route *r = i < N_ROUTES ? &routes[i] : &route_other;
        int m = 0;
        while (m < derived.n_metrics && strcmp(derived.names[m], r->name) != 0)
            m++;
        if (m == derived.n_metrics)
            derived.names[derived.n_metrics++] = r->name;
        derived.metric[i] = m;
    }
    for (int i = 0; i < N_ROUTES; i++)
        for (int j = 0; j < N_ROUTES; j++) {
            char *a = derived.allow[i];
            size_t n = strlen(a);
            if (strcmp(routes[i].pattern, routes[j].pattern) == 0)
                snprintf(a + n, sizeof derived.allow[i] - n, "%s%s", n ? ", " : "",
                         routes[j].method);
        }
}

static int route_index(const Route *r) {
    assert(r == &route_other || (r >= routes && r < routes + N_ROUTES));
    return r == &route_other ? N_ROUTES : (int)(r - routes);
}

/* 1 if path fits pattern; fills args from its {id} and {sample} segments,
 * pointing into buf (a copy of path, size bytes). */
static int pattern_match(const char *pattern, const char *path, char *buf, size_t size,
                         RouteArgs *args) {
    if (path[0] != '/' || strlen(path) >= size)
        return 0;
    strcpy(buf, path);
    *args = (RouteArgs){0};
    const char *p = pattern + 1;
    char *s = buf + 1;
    if (!*p)
        return !*s;
    for (;;) {
        size_t pl = strcspn(p, "/"), sl = strcspn(s, "/");
        int last = p[pl] == 0;
        if (sl == 0 || (s[sl] == 0) != last)
            return 0;
        if (p[0] == '{') {
            const char **slot = strncmp(p, "{id}", pl) == 0 ? &args->id : &args->sample;
            *slot = s;
        } else if (pl != sl || strncmp(p, s, pl) != 0) {
            return 0;
        }
        s[sl] = 0;
        if (last)
            return 1;
        p += pl + 1, s += sl + 1;
    }
}

static int method_fits(const Route *r, const char *method) {
    return strcmp(r->method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(r->method, "GET") == 0);
}

/* The row for method and path, or -1 with *pattern_row the first row whose
 * pattern fits path (-1 if none). */
static int lookup(const char *method, const char *path, RouteArgs *args, char *buf, size_t size,
                  int *pattern_row) {
    *pattern_row = -1;
    for (int i = 0; i < N_ROUTES; i++) {
        if (!pattern_match(routes[i].pattern, path, buf, size, args))
            continue;
        if (*pattern_row < 0)
            *pattern_row = i;
        if (method_fits(&routes[i], method))
            return i;
    }
    return -1;
}

const Route *route_match(const char *method, const char *path) {
    char buf[512];
    RouteArgs args;
    int pattern_row, i = lookup(method, path, &args, buf, sizeof buf, &pattern_row);
    return i < 0 ? &route_other : &routes[i];
}

RouteScope route_scope(const Route *r) {
    return r->scope;
}

const char *route_name(const Route *r) {
    return r->name;
}

int route_metric(const Route *r) {
    pthread_once(&derived.once, derive);
    return derived.metric[route_index(r)];
}

int route_metric_count(void) {
    pthread_once(&derived.once, derive);
    return derived.n_metrics;
}

PromStats *route_stats_new(void) {
    pthread_once(&derived.once, derive);
    return promstats_new(derived.names, derived.n_metrics);
}

static void handle_other(Server *srv, const HttpReq *req, const RouteArgs *args, Reply *rep) {
    char buf[512];
    RouteArgs a;
    int pattern_row;
    (void)srv, (void)args;
    lookup(req->method, req->path, &a, buf, sizeof buf, &pattern_row);
    if (pattern_row >= 0) {
        pthread_once(&derived.once, derive);
        rep->allow = derived.allow[pattern_row];
        reply_error(rep, 405, "method_not_allowed", "%s is not allowed here; use %s", req->method,
                    rep->allow);
    } else {
        reply_error(rep, 404, "not_found", "no route %.100s", req->path);
    }
}

void route_handle(Server *srv, const Route *r, const HttpReq *req, Reply *rep) {
    char buf[512];
    RouteArgs args = {0};
    int pattern_row;
    if (r != &route_other &&
        lookup(req->method, req->path, &args, buf, sizeof buf, &pattern_row) != route_index(r))
        r = &route_other; /* not the request r was matched for */
    r->handle(srv, req, &args, rep);
}

static int hex_digit(char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

size_t route_unescape(void *cls, struct MHD_Connection *c, char *s) {
    (void)cls, (void)c;
    char *out = s;
    for (const char *p = s; *p;) {
        int hi = p[0] == '%' ? hex_digit(p[1]) : -1, lo = hi >= 0 ? hex_digit(p[2]) : -1;
        int v = hi * 16 + lo;
        if (lo < 0 || v == 0 || v == '/') {
            *out++ = *p++;
            continue;
        }
        *out++ = (char)v;
        p += 3;
    }
    *out = 0;
    return (size_t)(out - s);
}
