/*
 * http_frame.h — private to http.c: the request framing that libmicrohttpd
 * 0.9.75 accepts and the daemon must not, refused at the first handler call
 * (RFC 9110/9112), and the query-parameter cap applied when the request line
 * arrives.
 *
 * Both rely on how 0.9.75 parses a request head: in place in the
 * connection's read buffer, separators overwritten with NUL bytes. The
 * header block [method, method + MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE)
 * therefore still shows, after the last header value, whatever ended the
 * block: only NULs (the CRLFs) for a proper end, other bytes for a line that
 * libmicrohttpd took for the end (": z", an empty-named header, which would
 * smuggle the rest as a second request). tests/integration/
 * test_hostile_framing.c holds the cases; re-check them on any other
 * libmicrohttpd version.
 */
#ifndef SIAMESE_HTTP_FRAME_H
#define SIAMESE_HTTP_FRAME_H

#include <microhttpd.h>

#include "server.h"

/* What a request target may hold on a connection with `memory` bytes of
 * pool (connection_memory). libmicrohttpd 0.9.75 keeps the request head in
 * a read buffer from that pool (half of it to begin with) and one 64-byte
 * record per query parameter and per header at its other end; a connection
 * whose pool runs out while the request line is parsed is dropped without
 * an answer. More parameters (at most 64, a quarter of the pool in
 * records) or a longer target (a quarter of the pool) are refused with 414
 * before libmicrohttpd parses the parameters, which leaves the headers half
 * of the pool. */
typedef struct {
    int params;
    size_t target;
} FrameCap;

FrameCap frame_cap(size_t memory);

/* Checks the head of the request on c; 1 with rep filled (and *close set
 * when the connection must not be reused), 0 when it is acceptable. */
int frame_refuse(struct MHD_Connection *c, const char *method, const char *version, Reply *rep,
                 int *close);

/* For the URI-log callback: the number of query parameters in uri (len
 * bytes). Past cap->params, or when len is over cap->target, the query is
 * cut off in place (libmicrohttpd then parses none) and the caller refuses. */
int frame_cap_query(const char *uri, size_t len, const FrameCap *cap);

/* 1 with a 414 in rep when a target of `target` bytes holding `params`
 * query parameters is past cap, else 0. */
int frame_refuse_target(const FrameCap *cap, size_t target, int params, Reply *rep);

#endif
