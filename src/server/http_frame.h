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

/* More query parameters than this are refused (414): libmicrohttpd keeps one
 * record per parameter in the connection's 32 KiB memory pool and, once it
 * runs out (~400 parameters), drops the connection without an answer. */
#define FRAME_MAX_QUERY_PARAMS 64

/* Checks the head of the request on c; 1 with rep filled (and *close set
 * when the connection must not be reused), 0 when it is acceptable. */
int frame_refuse(struct MHD_Connection *c, const char *method, const char *version, Reply *rep,
                 int *close);

/* For the URI-log callback: the number of query parameters in uri. Past
 * FRAME_MAX_QUERY_PARAMS, the query is cut off in place (libmicrohttpd then
 * parses none) and the count returned tells the caller to refuse. */
int frame_cap_query(const char *uri);

#endif
