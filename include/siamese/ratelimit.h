/*
 * ratelimit.h — per-client token buckets: each client may make `burst`
 * requests at once and then `rate` per second.
 *
 * A client is an API key (its index among the configured keys) or, when
 * there are no keys, an address (text). Keys have a bucket each. Addresses
 * share a fixed table of RATELIMIT_SLOTS buckets: an address takes its own
 * slot, or one whose bucket has refilled (an idle client: forgetting it
 * changes nothing), probing a few slots; when all those are busy it shares
 * the first, so memory stays bounded whatever the number of addresses and a
 * flood from many addresses throttles itself first.
 *
 * Thread-safe: one mutex, held for a few arithmetic operations.
 */
#ifndef SIAMESE_RATELIMIT_H
#define SIAMESE_RATELIMIT_H

typedef struct RateLimit RateLimit;

#define RATELIMIT_SLOTS 4096 /* address buckets */
#define RATELIMIT_ADDR 64    /* bytes of an address kept, NUL included */

/* A limiter of rate (> 0) tokens per second and burst (>= 1) tokens for
 * n_keys (>= 0) keys and the address table. 0 with *out set (free with
 * ratelimit_free()), -EINVAL for bad arguments, -ENOMEM; err filled. */
int ratelimit_new(double rate, int burst, int n_keys, RateLimit **out, char *err);

/* Frees r. NULL is fine. */
void ratelimit_free(RateLimit *r);

/* Takes one token from the bucket of key (0 <= key < n_keys) or, when key
 * is negative, of addr, at time now (seconds, monotonic). Returns 0 when the
 * request may go ahead, else the whole seconds (>= 1) until a token will be
 * there (for Retry-After). A NULL r allows everything. */
int ratelimit_take(RateLimit *r, int key, const char *addr, double now);

#endif
