/*
 * http.c — the libmicrohttpd side of the daemon.
 *
 * The access handler runs in the usual three phases: the first call for a
 * request allocates its ReqState, matches the route and refuses early what
 * can be refused from the headers alone (auth, a Content-Length over the
 * body limit); body calls append to a buffer capped at max_body; the final
 * call hands the whole request to routes.c and queues its reply. The
 * request-completed callback writes the access-log line, records metrics and
 * frees the state on every path, client aborts included.
 *
 * libmicrohttpd (0.9.75) can queue a response only before the body is read or
 * after all of it, so a body that outgrows the cap mid-stream (chunked uploads
 * have no Content-Length) is discarded as it arrives and answered 413 at its
 * end; one that keeps going past twice the cap gets its connection closed.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "http_frame.h"
#include "http_guard.h"
#include "server.h"
#include "siamese/common.h"
#include "siamese/log.h"
#include "siamese/sched.h"

struct Http {
    struct MHD_Daemon *d;
    Server *srv;
    Guard *guard;          /* buffered-body budget, request deadlines */
    ImgBudget *img_budget; /* decoder memory, shared through srv->img_limits */
    int port;
    FrameCap cap;     /* what a request target may hold (connection_memory) */
    uint64_t id_seed; /* request ids: splitmix64(id_seed + n) */
    atomic_uint_fast64_t id_next;
};

/* Bodies up to this size are buffered without drawing on the shared budget,
 * so that small requests pass while large ones have spent it. */
#define BODY_FREE_BYTES ((size_t)64 << 10)

typedef struct {
    const Route *route; /* NULL until the first handler call */
    int started;        /* the first handler call has happened */
    int query_params;   /* counted at the request line (frame_cap_query) */
    size_t target;      /* length of the request target */
    int close;          /* answer with Connection: close */
    const char *error;  /* error code of the reply queued (static), or NULL */
    size_t out;         /* body bytes of the reply queued */
    uint64_t id;
    char method[16], path[160]; /* for the access log, made printable */
    int refused;                /* a reply was queued from the headers alone */
    int too_large;              /* the body outgrew max_body: discarding */
    int busy;                   /* the body outgrew the shared budget: discarding */
    int status;
    uint8_t *body;
    size_t len, cap, discarded;
    size_t held;   /* bytes reserved from the shared budget */
    size_t expect; /* Content-Length + 1 when given, else 0 */
    double t0;
} ReqState;

/* The connection whose request this worker thread is answering. */
static _Thread_local struct MHD_Connection *current_conn;
/* When http_client_gone() next looks at the socket (sm_now() seconds). */
static _Thread_local double gone_next;
/* On this worker thread: the request whose line arrived but whose head is
 * not complete yet, and the status of an error reply libmicrohttpd made on
 * its own meanwhile (see mhd_log). */
static _Thread_local ReqState *pending_uri;
static _Thread_local int mhd_status;

/* A poll() is a system call: a handler asks before every image, and the
 * answer matters only once a request has run for a while, so the socket is
 * looked at once per GONE_EVERY_S of handler time, the first time after it. */
#define GONE_EVERY_S 0.002

int http_client_gone(void) {
    if (!current_conn)
        return 0;
    double now = sm_now();
    if (now < gone_next)
        return 0;
    gone_next = now + GONE_EVERY_S;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(current_conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return 0;
    struct pollfd p = {ci->connect_fd, POLLRDHUP, 0};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Grows st's reservation to cover a buffer of cap bytes; 0 or -1 (spent). */
static int body_reserve(Http *h, ReqState *st, size_t cap) {
    size_t need = cap > BODY_FREE_BYTES ? cap - BODY_FREE_BYTES : 0;
    if (need <= st->held)
        return 0;
    if (guard_reserve(h->guard, need - st->held) < 0)
        return -1;
    st->held = need;
    return 0;
}

static const char *query_lookup(void *conn, const char *key) {
    return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
}

static const char *header_lookup(void *conn, const char *name) {
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

typedef struct {
    const char *name; /* header_count: the name; query_keys: NULL */
    const char **keys;
    int n, max;
} ValueWalk;

static enum MHD_Result walk_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                  const char *value) {
    ValueWalk *w = cls;
    (void)kind, (void)value;
    if (w->name ? strcasecmp(key, w->name) == 0 : 1) {
        if (!w->name && w->n < w->max)
            w->keys[w->n] = key;
        w->n++;
    }
    return MHD_YES;
}

static int header_count(void *conn, const char *name) {
    ValueWalk w = {name, NULL, 0, 0};
    MHD_get_connection_values(conn, MHD_HEADER_KIND, walk_value, &w);
    return w.n;
}

static int query_keys(void *conn, const char **keys, int max) {
    ValueWalk w = {NULL, keys, 0, max};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, walk_value, &w);
    return w.n;
}

/* a.b.c.d into ip: what inet_ntop writes, without its sprintf (it ran
 * twice a request, as long as the model's first layer took for a pixel row). */
static void ipv4_text(const struct in_addr *a, char *ip) {
    const uint8_t *b = (const uint8_t *)&a->s_addr;
    for (int i = 0; i < 4; i++) {
        unsigned v = b[i];
        if (v >= 100)
            *ip++ = (char)('0' + v / 100);
        if (v >= 10)
            *ip++ = (char)('0' + v / 10 % 10);
        *ip++ = (char)('0' + v % 10);
        *ip++ = i < 3 ? '.' : 0;
    }
}

/* The client's address as text into ip ("-" if unknown). */
static void client_ip(struct MHD_Connection *c, char ip[INET6_ADDRSTRLEN]) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    strcpy(ip, "-");
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            ipv4_text(&((const struct sockaddr_in *)sa)->sin_addr, ip);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip,
                      INET6_ADDRSTRLEN);
    }
}

/* The request as routes.c sees it; body NULL before it is read. */
static HttpReq request_of(struct MHD_Connection *c, const char *method, const char *url,
                          const ReqState *st, const char *ip) {
    return (HttpReq){method,
                     url,
                     header_lookup(c, "Content-Type"),
                     st->body ? st->body : (const uint8_t *)"",
                     st->len,
                     query_lookup,
                     c,
                     header_lookup,
                     header_count,
                     query_keys,
                     ip};
}

/* dst (size bytes) gets src up to a '?' or NUL, bytes outside '!'..'~' and
 * '%' itself as %XX, cut short with "..." when longer. */
static void log_text(char *dst, size_t size, const char *src) {
    size_t o = 0;
    for (; *src && *src != '?' && o + 4 < size; src++) {
        unsigned char ch = (unsigned char)*src;
        if (ch > ' ' && ch < 0x7f && ch != '%' && ch != '"' && ch != '\\')
            dst[o++] = (char)ch;
        else
            o += (size_t)snprintf(dst + o, size - o, "%%%02X", ch);
    }
    if (*src && *src != '?')
        memcpy(dst + (o > size - 4 ? size - 4 : o), "...", 3), o = o > size - 4 ? size - 1 : o + 3;
    dst[o] = 0;
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static ReqState *state_new(Http *h, const char *uri) {
    ReqState *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->t0 = sm_now();
    st->id = splitmix64(h->id_seed + atomic_fetch_add(&h->id_next, 1));
    snprintf(st->method, sizeof st->method, "-");
    log_text(st->path, sizeof st->path, uri ? uri : "-");
    atomic_fetch_add(&h->srv->in_flight, 1);
    return st;
}

/* libmicrohttpd's URI-log callback: the request line has arrived. Creating
 * the state here (rather than at the first handler call) makes
 * libmicrohttpd report the request's completion even when it refuses the
 * headers itself, so that every request gets its log line and metric. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c) {
    (void)c;
    Http *h = cls;
    ReqState *st = state_new(h, uri);
    size_t len = strlen(uri);
    int n = frame_cap_query(uri, len, &h->cap);
    if (st)
        st->query_params = n, st->target = len;
    pending_uri = st;
    mhd_status = 0;
    return st;
}

static enum MHD_Result queue_reply(struct MHD_Connection *c, ReqState *st, Reply *rep) {
    struct MHD_Response *r =
        MHD_create_response_from_buffer(rep->len, rep->body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(rep->body);
        return MHD_NO;
    }
    rep->body = NULL;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            rep->content_type ? rep->content_type : "application/json");
    if (rep->allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, rep->allow);
    if (rep->bearer_challenge)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"siamesed\"");
    if (rep->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", rep->retry_after);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
    }
    if (rep->csp) {
        MHD_add_response_header(r, "Content-Security-Policy", rep->csp);
        MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    }
    char id[20];
    snprintf(id, sizeof id, "%016llx", (unsigned long long)st->id);
    MHD_add_response_header(r, "X-Request-Id", id);
    if (st->close)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    st->status = rep->status;
    st->error = rep->error;
    st->out = rep->len;
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)rep->status, r);
    MHD_destroy_response(r);
    return ret;
}

/* What can be decided from the request line and headers alone. Returns 1 and
 * fills rep when the request is refused before its body. */
static int refuse_early(Http *h, struct MHD_Connection *c, const char *method, const char *url,
                        const char *version, ReqState *st, Reply *rep) {
    Server *srv = h->srv;
    st->route = route_match(method, url);
    if (frame_refuse(c, method, version, rep, &st->close))
        return 1;
    if (frame_refuse_target(&h->cap, st->target, st->query_params, rep))
        return st->close = 1;
    char ip[INET6_ADDRSTRLEN];
    client_ip(c, ip);
    HttpReq req = request_of(c, method, url, st, ip);
    if (route_admit(srv, st->route, &req, rep))
        return 1;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
    if (cl && strtoull(cl, NULL, 10) > srv->cfg->max_body) {
        reply_error(rep, 413, "payload_too_large", "the body exceeds --max-body (%zu bytes)",
                    srv->cfg->max_body);
        return 1;
    }
    if (cl) {
        st->expect = (size_t)strtoull(cl, NULL, 10) + 1;
        if (body_reserve(h, st, st->expect) < 0) {
            reply_error(rep, 503, "server_busy",
                        "the server is buffering too many request bodies "
                        "(max_buffered_bodies); try again");
            return 1;
        }
    }
    return 0;
}

/* The connection's deadline entry (on_connection), or NULL. */
static GuardEntry *conn_deadline(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* (Re)arms e: the connection has request_timeout seconds from now to
 * deliver a whole request (TLS handshake, request line, headers, body). */
static void deadline_arm(Http *h, struct MHD_Connection *c, GuardEntry *e) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    guard_disarm(h->guard, e);
    if (ci)
        guard_arm(h->guard, e, ci->connect_fd, sm_now() + h->srv->cfg->request_timeout);
}

/* libmicrohttpd's connection notifications: the deadline entry lives as long
 * as the connection; armed from the accept (so a TLS handshake or a request
 * head that trickles in is bounded too) and after each request. */
static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
    Http *h = cls;
    GuardEntry *e = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        if ((e = calloc(1, sizeof *e)))
            deadline_arm(h, c, e);
        *socket_context = e;
    } else if (e) {
        guard_disarm(h->guard, e);
        free(e);
        *socket_context = NULL;
    }
}

/* Appends a body chunk, or discards it once the body is over the cap or the
 * shared budget is spent. */
static int take_body(Http *h, ReqState *st, const char *data, size_t n) {
    size_t max = h->srv->cfg->max_body;
    if (st->too_large || st->busy || n > max - st->len) {
        st->too_large |= !st->busy;
        st->discarded += n;
        return st->discarded <= max; /* past twice the cap: drop the connection */
    }
    if (st->len + n + 1 > st->cap) {
        size_t cap = st->cap ? st->cap : 4096;
        while (cap < st->len + n + 1)
            cap *= 2;
        if (cap > max + 1)
            cap = max + 1;
        if (st->expect >= st->len + n + 1 && cap > st->expect)
            cap = st->expect;
        if (body_reserve(h, st, cap) < 0) {
            st->busy = 1;
            st->discarded += n;
            return 1;
        }
        uint8_t *b = realloc(st->body, cap);
        if (!b)
            return 0;
        st->body = b, st->cap = cap;
    }
    memcpy(st->body + st->len, data, n);
    st->len += n;
    st->body[st->len] = 0;
    return 1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    Http *h = cls;
    Server *srv = h->srv;
    ReqState *st = *con_cls;
    if (!st && !(*con_cls = st = state_new(h, url)))
        return MHD_NO;
    if (!st->started) {
        st->started = 1;
        pending_uri = NULL;
        log_text(st->method, sizeof st->method, method);
        Reply rep = {0};
        if (refuse_early(h, c, method, url, version, st, &rep)) {
            st->refused = 1;
            return queue_reply(c, st, &rep);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        return st->refused || take_body(h, st, upload, n) ? MHD_YES : MHD_NO;
    }
    if (st->refused)
        return MHD_YES;
    GuardEntry *e = conn_deadline(c);
    if (e) /* the request is in; answering it is not bounded here */
        guard_disarm(h->guard, e);
    Reply rep = {0};
    if (st->too_large) {
        reply_error(&rep, 413, "payload_too_large", "the body exceeds --max-body (%zu bytes)",
                    srv->cfg->max_body);
    } else if (st->busy) {
        reply_error(&rep, 503, "server_busy",
                    "the server is buffering too many request bodies (max_buffered_bodies); "
                    "try again");
    } else {
        char ip[INET6_ADDRSTRLEN];
        client_ip(c, ip);
        HttpReq req = request_of(c, method, url, st, ip);
        current_conn = c;
        gone_next = sm_now() + GONE_EVERY_S;
        route_handle(srv, st->route, &req, &rep);
        current_conn = NULL;
    }
    return queue_reply(c, st, &rep);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    Http *h = cls;
    Server *srv = h->srv;
    ReqState *st = *con_cls;
    if (!st)
        return;
    GuardEntry *e = conn_deadline(c);
    int fired = e && e->fired;
    if (e) /* the next request's time starts now */
        deadline_arm(h, c, e);
    guard_release(h->guard, st->held);
    double dt = sm_now() - st->t0;
    int status = st->status;
    const char *error = st->error;
    if (!st->started) { /* libmicrohttpd refused the head itself, or the client left */
        status = pending_uri == st ? mhd_status : 0;
        error = status ? "libmicrohttpd" : NULL;
        if (pending_uri == st)
            pending_uri = NULL, mhd_status = 0;
    } else if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        status = 0;
    }
    if (!status) {
        status = fired ? 408 : 499;
        error = fired ? "request_timeout" : "client_closed";
    }
    if (log_enabled(LOG_INFO)) {
        char ip[INET6_ADDRSTRLEN];
        client_ip(c, ip);
        log_info("access %s %s %s %d %s in=%zu out=%zu %.2fms id=%016llx %s", ip, st->method,
                 st->path, status, error ? error : "-", st->len, st->started ? st->out : 0,
                 dt * 1e3, (unsigned long long)st->id, st->route ? route_name(st->route) : "-");
    }
    promstats_observe(srv->stats, st->route ? route_metric(st->route) : -1, status, dt);
    free(st->body);
    free(st);
    *con_cls = NULL;
    atomic_fetch_sub(&srv->in_flight, 1);
}

/* libmicrohttpd's messages. Its own error replies (invalid Content-Length,
 * a too long URL or header block, a bad request line or version, a missing
 * Host) are announced here, "Error processing request (HTTP response code is
 * N ...": a request whose line was seen (on_uri) gets its log line from
 * on_completed with that status; one refused earlier gets it here. */
static void mhd_log(void *cls, const char *fmt, va_list ap) {
    Http *h = cls;
    char msg[512];
    unsigned code;
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = 0;
    log_debug("http: %s", msg);
    if (sscanf(msg, "Error processing request (HTTP response code is %u", &code) != 1)
        return;
    if (pending_uri) {
        mhd_status = (int)code;
        return;
    }
    log_info("access - - - %u libmicrohttpd in=0 out=0 0.00ms id=- -", code);
    promstats_observe(h->srv->stats, -1, (int)code, 0);
}

/* Resolves cfg->listen into a socket address (numeric or a host name). */
static int resolve(const ConfigAddr *a, struct sockaddr_storage *ss, char *err) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE},
                    *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%d", a->port);
    int rc = getaddrinfo(*a->host ? a->host : NULL, port, &hints, &res);
    if (rc != 0)
        return sm_err(err, -EINVAL, "listen: cannot resolve '%s': %s", a->host, gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    return 0;
}

/* Reads a PEM file for TLS into a NUL-terminated string. */
static int read_pem(const char *path, char **out, char *err) {
    uint8_t *buf;
    size_t len;
    int rc = sm_read_file(path, 1 << 20, &buf, &len, err);
    *out = (char *)buf;
    return rc;
}

/* TLS 1.2 and 1.3 only, forward-secret key exchange (ECDHE) and AEAD ciphers
 * only, no SHA-1 signatures: what GnuTLS would otherwise also accept (TLS
 * 1.0/1.1, static RSA, CBC with HMAC-SHA1) is refused at the handshake. */
static const char tls_priorities[] =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:"
    "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-SIGN-RSA-SHA1:"
    "-SIGN-ECDSA-SHA1:%SAFE_RENEGOTIATION";

/* Gives the threads that MHD_start_daemon() made (those not in before[n])
 * slices of us microseconds, reset for any thread they create (the index's
 * scan helpers keep the default): with more workers than cores, a worker
 * given the default slice (1.4 ms on 2 cores) runs its whole queue of
 * requests while the other workers' clients wait, and that wait set
 * /verify's p99 (docs/scaling.md). Returns how many took it. */
static int slice_workers(const pid_t *before, int n, int us) {
    pid_t *now;
    int m = sched_threads(&now), took = 0;
    for (int i = 0; i < m; i++) {
        int old = 0;
        for (int k = 0; k < n && !old; k++)
            old = before[k] == now[i];
        took += !old && sched_slice_request(now[i], us, 1);
    }
    free(now);
    return took;
}

int http_start(Server *srv, Http **out, char *err) {
    const Config *cfg = srv->cfg;
    struct sockaddr_storage ss;
    char *cert = NULL, *key = NULL;
    Http *h = calloc(1, sizeof *h);
    int rc = h ? resolve(&cfg->listen, &ss, err) : sm_err(err, -ENOMEM, "out of memory");
    if (rc == 0 && *cfg->tls_cert &&
        ((rc = read_pem(cfg->tls_cert, &cert, err)) < 0 ||
         (rc = read_pem(cfg->tls_key, &key, err)) < 0))
        goto out;
    if (rc < 0 || (rc = guard_new(cfg->max_buffered_bodies, &h->guard, err)) < 0)
        goto out;
    if (!(h->img_budget = img_budget_new(cfg->decode_memory))) {
        rc = sm_err(err, -ENOMEM, "out of memory");
        goto out;
    }
    srv->img_limits.budget = h->img_budget;
    /* Not MHD_USE_TURBO: with it, libmicrohttpd 0.9.75 never times out a TLS
     * connection stuck in its handshake, leaves the ones a client closes
     * mid-handshake in CLOSE-WAIT (still counted against the connection
     * limits) and spins its workers in epoll_wait(0). poll(), not epoll:
     * 0.9.75's MHD_quiesce_daemon() and an epoll worker both take the listen
     * socket out of the worker's epoll set, unguarded, and the loser aborts
     * the process ("Failed to remove listen FD from epoll set": a SIGTERM
     * killed a daemon so in test_durability); with poll() it only signals
     * the workers. Each worker polls its own few connections. */
    unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (cert)
        flags |= MHD_USE_TLS;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    /* Workers block while an enroll waits for its commit: 4 per core keep the
     * other connections moving and let more enrolls share each fsync. */
    unsigned threads = (unsigned)(cfg->threads > 0 ? cfg->threads : cores > 0 ? 4 * cores : 4);
    h->srv = srv;
    h->cap = frame_cap(cfg->connection_memory);
    if (getrandom(&h->id_seed, sizeof h->id_seed, 0) != (ssize_t)sizeof h->id_seed)
        h->id_seed = (uint64_t)(sm_now() * 1e9) ^ (uint64_t)getpid() << 32;
    struct MHD_OptionItem opts[20] = {
        /* First, or libmicrohttpd prints some messages with its own logger. */
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, h},
        {MHD_OPTION_SOCK_ADDR, 0, &ss},
        {MHD_OPTION_THREAD_POOL_SIZE, threads, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_per_ip, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, cfg->connection_timeout, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)cfg->connection_memory, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, h},
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, h},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, h},
        /* 1: HTTP/1.1 without Host and spaces in the request target are
         * refused (libmicrohttpd's own 400). 0.9.75 refuses whitespace
         * before a header's colon only at -1, its most lenient setting
         * otherwise: frame_refuse() does that check instead. */
        {MHD_OPTION_STRICT_FOR_CLIENT, 1, NULL},
        {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)route_unescape, NULL},
    };
    int n = 0;
    while (opts[n].option != MHD_OPTION_END) /* the zeroed tail is MHD_OPTION_END */
        n++;
    if (cert) {
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, cert};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, key};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)tls_priorities};
    }
    opts[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    pid_t *before = NULL;
    int nbefore = cfg->worker_slice > 0 ? sched_threads(&before) : -1;
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_ARRAY, opts,
                            MHD_OPTION_END);
    if (h->d && nbefore >= 0)
        log_debug("http: %u workers, %d of them on %d us scheduler slices", threads,
                  slice_workers(before, nbefore, cfg->worker_slice), cfg->worker_slice);
    free(before);
    if (!h->d) {
        /* serve_prepare() already bound the address and read both PEM files. */
        if (cert)
            rc = sm_err(err, -EINVAL,
                        "cannot start HTTPS on %s:%d: GnuTLS refused tls_cert/tls_key (a key that "
                        "does not match the certificate, or a damaged PEM block?)",
                        cfg->listen.host, cfg->listen.port);
        else
            rc = sm_err(err, -EADDRINUSE, "cannot listen on %s:%d", cfg->listen.host,
                        cfg->listen.port);
        goto out;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : cfg->listen.port;
    *out = h;
    h = NULL;
out:
    free(cert);
    if (key)
        explicit_bzero(key, strlen(key)); /* libmicrohttpd has its own copy now */
    free(key);
    if (h) {
        guard_free(h->guard);
        srv->img_limits.budget = NULL;
        img_budget_free(h->img_budget);
        free(h);
    }
    return rc;
}

int http_port(const Http *h) {
    return h->port;
}

void http_stop(Http *h, double grace_s) {
    if (!h)
        return;
    /* The listen socket is ours after quiesce, but MHD's threads may still
     * use it (its epoll set holds it): close it only after MHD_stop_daemon(),
     * as the libmicrohttpd manual says, or the stop aborts the process.
     * shutdown() already stops it listening: new connections are refused. */
    MHD_socket fd = MHD_quiesce_daemon(h->d);
    if (fd != MHD_INVALID_SOCKET)
        shutdown(fd, SHUT_RDWR);
    double until = sm_now() + grace_s;
    while (atomic_load(&h->srv->in_flight) > 0 && sm_now() < until)
        usleep(10000);
    MHD_stop_daemon(h->d);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    guard_free(h->guard);
    h->srv->img_limits.budget = NULL;
    img_budget_free(h->img_budget);
    free(h);
}
