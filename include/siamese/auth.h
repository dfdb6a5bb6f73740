/*
 * auth.h — API keys: who may read and who may write.
 *
 * An Auth is built once from the configured keys (Config.api_keys) and then
 * only read, so any number of threads may call auth_check() at once. It keeps
 * SHA-256 digests of the keys, never the keys: a core dump or a stray read
 * of the daemon's memory does not reveal them, and comparing fixed-size
 * digests makes the comparison's running time independent of where a
 * presented key differs from a real one. Every configured digest is compared
 * on every check (no early exit), with nettle's memeql_sec().
 *
 * A request presents a key as "Authorization: Bearer <key>" (RFC 6750: the
 * scheme in any case, then one or more spaces, then the token, which is
 * 1*[A-Za-z0-9-._~+/] followed by any '='s). Leading and trailing spaces or
 * tabs around the whole value are ignored, as HTTP allows.
 *
 * With no keys configured every request is allowed: authentication is off.
 */
#ifndef SIAMESE_AUTH_H
#define SIAMESE_AUTH_H

#include "siamese/config.h"

typedef struct Auth Auth;

/* Outcomes of auth_check() other than 0 (allowed). */
#define AUTH_MISSING 1   /* no Authorization header, or not "Bearer <token>": 401 + challenge */
#define AUTH_INVALID 2   /* a well-formed token that is not a configured key: 401 */
#define AUTH_FORBIDDEN 3 /* a read key on a route that writes: 403 */

#define AUTH_MAX_TOKEN 1024 /* longer tokens are AUTH_INVALID without hashing */

/* Builds an Auth from n_keys keys (0..CONFIG_MAX_API_KEYS; keys may be NULL
 * when n_keys is 0). Keys must be non-empty strings; the strings are not kept.
 * Returns 0 with *out set (free with auth_free()), -EINVAL for a bad
 * argument, -ENOMEM; on failure *out is NULL and err filled. */
int auth_new(const ConfigApiKey *keys, int n_keys, Auth **out, char *err);

/* Frees a. NULL is fine. */
void auth_free(Auth *a);

/* Number of configured keys (0 means authentication is off). */
int auth_n_keys(const Auth *a);

/* Decides a request from its Authorization header value (NULL when absent)
 * and whether its route writes (need_write != 0). Returns 0 when allowed,
 * else AUTH_MISSING, AUTH_INVALID or AUTH_FORBIDDEN. A NULL a, like an Auth
 * with no keys, allows everything. *key (key may be NULL) receives the index
 * of the presented key among the configured ones (0..n_keys-1, in config
 * order) when it is one of them, else -1. */
int auth_check(const Auth *a, const char *authorization, int need_write, int *key);

#endif
