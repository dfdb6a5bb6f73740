/*
 * routes_admit.c — what is decided from the request line and headers alone,
 * before a body is read: the request target's form, repeated query
 * parameters and Authorization headers, the API key and its scope, and,
 * when no keys are configured, the Host and Origin a browser sent.
 *
 * Why Host and Origin: with authentication off (the default, on loopback),
 * any web page open in a local browser can send requests to the daemon. A
 * foreign Origin is how a cross-site POST shows itself; a Host that is not
 * an address of ours is how DNS rebinding shows itself (the page's own
 * name, resolved to 127.0.0.1, so that the browser treats the daemon as
 * same-origin and lets the page read replies). Both are refused with 403.
 * Keys make both moot, so the check applies only without them.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "routes.h"
#include "siamese/common.h"

/* 1 if the len bytes at h are an IP literal: dotted IPv4 or a [bracketed]
 * IPv6 address. Names other than localhost can be rebound, literals not. */
static int is_ip_literal(const char *h, size_t len) {
    if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
        for (size_t i = 1; i + 1 < len; i++)
            if (!isxdigit((unsigned char)h[i]) && h[i] != ':' && h[i] != '.')
                return 0;
        return 1;
    }
    int dots = 0;
    for (size_t i = 0; i < len; i++) {
        if (h[i] == '.')
            dots++;
        else if (!isdigit((unsigned char)h[i]))
            return 0;
    }
    return dots == 3;
}

/* 1 if authority ("host[:port]") names this daemon: an IP literal,
 * localhost or the listen host. The port does not matter: a rebinding page
 * uses our port under its own name, and the name is what gives it away. */
static int authority_ours(const ConfigAddr *listen, const char *a, size_t len) {
    size_t hl = len;
    for (size_t i = len; i > 0; i--)
        if (a[i - 1] == ':' || a[i - 1] == ']') {
            hl = a[i - 1] == ':' ? i - 1 : len;
            break;
        }
    if (hl < len && strspn(a + hl + 1, "0123456789") != len - hl - 1)
        return 0;
    size_t ll = strlen(listen->host);
    return hl > 0 && (is_ip_literal(a, hl) || (hl == 9 && strncasecmp(a, "localhost", 9) == 0) ||
                      (ll && hl == ll && strncasecmp(a, listen->host, ll) == 0));
}

/* 0 if Host and Origin may reach a keyless daemon, else -1 with a 403. */
static int admit_origin(Server *srv, const HttpReq *req, Reply *rep) {
    const ConfigAddr *l = &srv->cfg->listen;
    const char *host = req->header(req->conn, "Host");
    const char *origin = req->header(req->conn, "Origin");
    if (host && !authority_ours(l, host, strlen(host))) {
        reply_error(rep, 403, "forbidden_host",
                    "Host '%.100s' is not this daemon's address; without API keys only its IP "
                    "address, localhost or the --listen host are accepted",
                    host);
        return -1;
    }
    if (origin) {
        const char *a = strncmp(origin, "http://", 7) == 0    ? origin + 7
                        : strncmp(origin, "https://", 8) == 0 ? origin + 8
                                                              : NULL;
        if (!a || !authority_ours(l, a, strlen(a))) {
            reply_error(rep, 403, "forbidden_origin",
                        "requests from the web page at '%.100s' are refused without API keys",
                        origin);
            return -1;
        }
    }
    return 0;
}

/* 0 when the key allows route r, else -1 with a 401 or 403; *key is the
 * key's index (-1 without keys). */
static int admit_key(Server *srv, const Route *r, const HttpReq *req, int *key, Reply *rep) {
    int rc = auth_check(srv->auth, req->header(req->conn, "Authorization"), r->scope == ROUTE_WRITE,
                        key);
    if (rc == AUTH_FORBIDDEN) {
        reply_error(rep, 403, "forbidden", "this API key may only read");
        return -1;
    }
    if (rc != 0) {
        reply_error(rep, 401, "unauthorized", "%s",
                    rc == AUTH_MISSING ? "missing or malformed Authorization: Bearer header"
                                       : "unknown API key");
        rep->bearer_challenge = 1;
        return -1;
    }
    return 0;
}

/* 0 unless the key (or, without keys, the address) is over its rate: -1
 * with a 429 and Retry-After. */
static int admit_rate(Server *srv, int key, const HttpReq *req, Reply *rep) {
    int wait = ratelimit_take(srv->limits, key, req->client, sm_now());
    if (wait == 0)
        return 0;
    reply_error(rep, 429, "rate_limited",
                "more than %g requests per second (rate_limit) for this %s; retry in %d s",
                srv->cfg->rate_limit, key >= 0 ? "API key" : "address", wait);
    rep->retry_after = wait;
    return -1;
}

/* 1 if name is one of the space-separated words of params (NULL: none). */
static int param_taken(const char *params, const char *name) {
    size_t n = strlen(name);
    for (const char *p = params; p && *p;) {
        size_t w = strcspn(p, " ");
        if (w == n && strncmp(p, name, n) == 0)
            return 1;
        p += w + (p[w] == ' ');
    }
    return 0;
}

/* 0 unless a query parameter is given twice (which one a reader sees would
 * depend on the reader) or is not one route r takes (the route's 404/405
 * row excepted: it answers that): -1 with a 400. */
static int admit_query(const Route *r, const HttpReq *req, Reply *rep) {
    const char *keys[64];
    int n = req->query_keys(req->conn, keys, (int)SM_ARRAY_LEN(keys));
    if (n > (int)SM_ARRAY_LEN(keys)) {
        reply_error(rep, 400, "bad_request", "%d query parameters; at most %d", n,
                    (int)SM_ARRAY_LEN(keys));
        return -1;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(keys[i], keys[j]) == 0) {
                reply_error(rep, 400, "bad_request", "query parameter '%.64s' given twice",
                            keys[i]);
                return -1;
            }
    for (int i = 0; i < n && r->pattern[0] && !(r->params && !strcmp(r->params, "*")); i++)
        if (!param_taken(r->params, keys[i])) {
            reply_error(rep, 400, "unknown_parameter", "%s %s takes %s%s, not '%.64s'", r->method,
                        r->pattern, r->params ? "the query parameters: " : "no query parameters",
                        r->params ? r->params : "", keys[i]);
            return -1;
        }
    return 0;
}

int route_admit(Server *srv, const Route *r, const HttpReq *req, Reply *rep) {
    if (req->path[0] != '/') {
        /* Absolute-form ("GET http://host/x") is for proxies; a daemon that
         * took it would route on a path the Host header does not vouch for. */
        reply_error(rep, 400, "bad_request", "the request target must be a path such as /healthz");
        return 1;
    }
    if (req->header_count(req->conn, "Authorization") > 1) {
        reply_error(rep, 400, "bad_request", "several Authorization headers");
        return 1;
    }
    if (admit_query(r, req, rep) < 0)
        return 1;
    if (r->scope == ROUTE_PUBLIC)
        return 0;
    int key = -1;
    if (auth_n_keys(srv->auth) == 0 ? admit_origin(srv, req, rep) < 0
                                    : admit_key(srv, r, req, &key, rep) < 0)
        return 1;
    return admit_rate(srv, key, req, rep) < 0;
}
