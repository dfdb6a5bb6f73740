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
#include "siamese/promstats.h"
#include "siamese/request.h"
#include "siamese/store.h"

typedef enum {
    ROUTE_VERIFY,
    ROUTE_ENROLL,
    ROUTE_EMBED,
    ROUTE_IDENTIFY,
    ROUTE_SUBJECTS,
    ROUTE_SUBJECT,
    ROUTE_SAMPLE,
    ROUTE_MODEL,
    ROUTE_HEALTHZ,
    ROUTE_METRICS,
    ROUTE_OTHER, /* unknown paths and refused requests */
    ROUTE_COUNT
} RouteId;

/* Read-only after start, except the atomics and what the modules guard. */
typedef struct {
    const Config *cfg;
    const Model *model;
    Store *store;
    Auth *auth;
    PromStats *stats;
    ImgLimits img_limits;
    double started;       /* sm_now() at start */
    atomic_int in_flight; /* requests between first call and completion */
} Server;

typedef struct {
    const char *method;       /* "GET", "POST", ... */
    const char *path;         /* URL path, without the query */
    const char *content_type; /* header, or NULL */
    const uint8_t *body;      /* the whole body (NUL-terminated), len bytes */
    size_t len;
    /* Query parameter lookup: the value, or NULL if absent. */
    const char *(*query)(void *conn, const char *key);
    void *conn;
} HttpReq;

typedef struct {
    int status;
    char *body; /* malloc'ed, owned by the reply */
    size_t len;
    const char *content_type; /* static string */
    const char *allow;        /* Allow header for 405, static */
    int bearer_challenge;     /* send WWW-Authenticate: Bearer */
} Reply;

/* Route table lookup. Returns the route and, through *need_write, whether it
 * needs a write-scoped key. A known path with the wrong method gives ROUTE_OTHER
 * with *allow set to the methods it takes; an unknown path ROUTE_OTHER and
 * *allow NULL. */
RouteId route_match(const char *method, const char *path, int *need_write, const char **allow);

/* Route names for metrics and logs, indexed by RouteId. */
extern const char *const route_names[ROUTE_COUNT];

/* Answers req on route id into rep (always filled, errors included). */
void route_handle(Server *srv, RouteId id, const HttpReq *req, Reply *rep);

/* Fills rep with {"error":{"code":code,"message":...}} and status. */
void reply_error(Reply *rep, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Starts libmicrohttpd on cfg->listen with the configured limits. */
typedef struct Http Http;
int http_start(Server *srv, Http **out, char *err);
/* Stops accepting, waits up to grace_s for requests in flight, stops. NULL ok. */
void http_stop(Http *h, double grace_s);
/* The port actually bound (useful with port 0). */
int http_port(const Http *h);

#endif
