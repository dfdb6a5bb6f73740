/*
 * http_guard.h — private to http.c: what bounds the requests libmicrohttpd
 * is still reading, across all connections.
 *
 * - A budget of buffered body bytes shared by every request (reserve before
 *   growing a buffer, release when it is freed).
 * - Deadlines: a connection armed with one (http.c: from its accept, and
 *   again after each request, until the next request is fully received) has
 *   its socket shut down by a watchdog thread once the deadline passes,
 *   however its bytes trickle in (TLS handshake, request head or body). libmicrohttpd then
 *   sees the connection fail and completes the request as usual; the socket
 *   is only shut down, never closed, so the descriptor stays libmicrohttpd's.
 *
 * Thread-safe. Entries are owned by the caller (embedded in its request
 * state) and must be disarmed before they are freed.
 */
#ifndef SIAMESE_HTTP_GUARD_H
#define SIAMESE_HTTP_GUARD_H

#include <stddef.h>

typedef struct Guard Guard;

typedef struct GuardEntry {
    struct GuardEntry *prev, *next;
    int fd;
    double deadline; /* sm_now() time */
    int armed;       /* on the watchdog's list */
    int fired;       /* the watchdog shut the socket down */
} GuardEntry;

/* Starts the watchdog; body_budget in bytes (> 0). 0, or -errno with err. */
int guard_new(size_t body_budget, Guard **out, char *err);
/* Stops the watchdog and frees g (NULL is fine); every entry disarmed first. */
void guard_free(Guard *g);

/* Puts e (zeroed or disarmed) on the list: fd is shut down after deadline. */
void guard_arm(Guard *g, GuardEntry *e, int fd, double deadline);
/* Takes e off the list (a no-op if it is not on it). */
void guard_disarm(Guard *g, GuardEntry *e);

/* Reserves n buffered body bytes: 0, or -1 when the budget cannot spare them
 * (nothing reserved then). guard_release() gives back what was reserved. */
int guard_reserve(Guard *g, size_t n);
void guard_release(Guard *g, size_t n);
/* Bytes reserved right now. */
size_t guard_reserved(const Guard *g);

#endif
