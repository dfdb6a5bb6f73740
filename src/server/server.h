/*
 * server.h — private to src/server: the state one daemon shares across its
 * worker threads, a parsed request as the routes see it, and the reply they
 * fill. http.c owns the libmicrohttpd side (connections, bodies, limits, the
 * access log); routes.c owns what each URL means; serve.c wires them up.
 */
#ifndef SIAMESE_SERVER_PRIVATE_H
#define SIAMESE_SERVER_PRIVATE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "siamese/auth.h"
#include "siamese/config.h"
#include "siamese/img.h"
#include "siamese/model.h"
#include "siamese/optable.h"
#include "siamese/promstats.h"
#include "siamese/ratelimit.h"
#include "siamese/request.h"
#include "siamese/store.h"

/* The threshold and operating points decisions are made with
 * (calib_live.c): immutable once published; a reload publishes another. */
typedef struct Calib {
    float threshold;
    OpTable *ops;       /* NULL: the model has none */
    struct Calib *prev; /* the one this replaced (kept until the daemon stops) */
} Calib;

/* Read-only after start, except the atomics and what the modules guard. */
typedef struct {
    const Config *cfg;
    const Model *model;
    Store *store;
    Auth *auth;
    RateLimit *limits; /* NULL: no rate limit */
    PromStats *stats;
    ImgLimits img_limits;
    double started;            /* sm_now() at start */
    const char *model_quality; /* serve_model_quality() of model (static) */
    atomic_int in_flight;      /* requests between first call and completion */
    _Atomic(Calib *) calib;    /* serve_calib() */
} Server;

/* Publishes the calibration of srv->model (before HTTP starts). -ENOMEM. */
int serve_calib_init(Server *srv, char *err);
/* The current calibration: borrowed, valid until the daemon stops. */
const Calib *serve_calib(Server *srv);
/* Reloads threshold and operating points from the model file (SIGHUP,
 * POST /admin/reload), thread-safe against requests in flight; a file with
 * other weights is -ESTALE, and the calibration in use stays. */
int serve_calib_reload(Server *srv, char *err);
/* Frees every calibration published (after HTTP has stopped). */
void serve_calib_free(Server *srv);

typedef struct {
    const char *method;       /* "GET", "POST", ... */
    const char *path;         /* URL path, without the query */
    const char *content_type; /* header, or NULL */
    const uint8_t *body;      /* the whole body (NUL-terminated), len bytes */
    size_t len;
    /* Query parameter lookup: the value, or NULL if absent. */
    const char *(*query)(void *conn, const char *key);
    void *conn;
    /* Header lookup (case-insensitive): the first value, or NULL. */
    const char *(*header)(void *conn, const char *name);
    /* How many headers called name. */
    int (*header_count)(void *conn, const char *name);
    /* The query's keys in order, the first max into keys (borrowed, valid
     * for the request); returns how many there are. */
    int (*query_keys)(void *conn, const char **keys, int max);
    const char *client; /* the client's address as text */
} HttpReq;

typedef struct {
    int status;
    char *body; /* malloc'ed, owned by the reply */
    size_t len;
    const char *content_type; /* static string */
    const char *allow;        /* Allow header for 405, static */
    int bearer_challenge;     /* send WWW-Authenticate: Bearer */
    const char *error;        /* set by reply_error(): its code (static), for the log */
    const char *csp;          /* Content-Security-Policy (static), for the page */
    int retry_after;          /* > 0: send Retry-After: seconds (429) */
} Reply;

/* Who may call a route: anyone (no key even when keys are configured), a
 * key with read scope, or only a key with write scope. */
typedef enum { ROUTE_PUBLIC, ROUTE_READ, ROUTE_WRITE } RouteScope;

typedef struct Route Route;

/* The route for method and path (the table is in routes.c). Never NULL: a
 * path no row matches, or a known path with a method it does not take, gives
 * the "other" route, whose handler answers 404 or 405. Borrowed, static. */
const Route *route_match(const char *method, const char *path);

/* Who may call r. */
RouteScope route_scope(const Route *r);

/* r's name in metrics and the access log; rows that share a name share an
 * index in [0, route_metric_count()). */
const char *route_name(const Route *r);
int route_metric(const Route *r);
int route_metric_count(void);

/* A PromStats with one route label per metric name (free with
 * promstats_free()), or NULL when out of memory. */
PromStats *route_stats_new(void);

/* libmicrohttpd's unescape callback (MHD_OPTION_UNESCAPE_CALLBACK), for the
 * path and every query key and value: decodes %HH in place, except %00 and
 * %2F, which stay as the three characters. So a decoded NUL cannot cut a
 * value short and an encoded '/' cannot add a path segment: routing sees the
 * segments the client sent, and "alice%2Fsamples%2F1" or "alice%00x" is an
 * invalid subject id, not another route or "alice". Returns the new length. */
struct MHD_Connection;
size_t route_unescape(void *cls, struct MHD_Connection *c, char *s);

/* Decides what can be decided from the request line and headers of req
 * (body not read yet: body NULL) on route r: the target's form, repeated
 * query parameters or Authorization headers (400), the API key (401/403),
 * without keys a foreign Host or Origin (403), the key's rate limit (429).
 * Returns 1 with rep filled when the request is refused, else 0. */
int route_admit(Server *srv, const Route *r, const HttpReq *req, Reply *rep);

/* Answers req on route r into rep (always filled, errors included). */
void route_handle(Server *srv, const Route *r, const HttpReq *req, Reply *rep);

/* Fills rep with {"error":{"code":code,"message":...}} and status. */
void reply_error(Reply *rep, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* serve.c: loads cfg->model, takes the database's lock and opens the store
 * (a stale one only if allow_stale, else -ESTALE naming --reembed). *m and
 * *st are set as far as they got, also on failure: the caller frees both. */
int serve_open_parts(const Config *cfg, Model **m, Store **st, int allow_stale, char *err);

/* Starts libmicrohttpd on cfg->listen with the configured limits. */
typedef struct Http Http;
int http_start(Server *srv, Http **out, char *err);
/* Stops accepting, waits up to grace_s for requests in flight, stops. NULL ok. */
void http_stop(Http *h, double grace_s);
/* The port actually bound (useful with port 0). */
int http_port(const Http *h);
/* 1 when the client of the request this thread is answering has closed or
 * reset its connection (no one will read the reply), else 0; 0 outside a
 * handler. Cheap: it polls the socket at most once per 2 ms of handler time
 * (not in a handler's first 2 ms), so handlers call it between expensive
 * steps. */
int http_client_gone(void);

#endif
