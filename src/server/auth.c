/*
 * auth.c — API key checks against SHA-256 digests of the configured keys.
 *
 * The presented token is hashed and its digest compared with every
 * configured digest using nettle's memeql_sec(), accumulating the result with
 * bitwise ORs, so the time taken does not depend on which key matched or how
 * much of it did. (Hashing first also hides the key lengths from timing: all
 * comparisons are 32 bytes.) The token's syntax is checked before hashing;
 * that check looks only at the presented token, not at any secret.
 */
#include "siamese/auth.h"

#include "siamese/common.h"

#include <nettle/memops.h>
#include <nettle/sha2.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct {
    uint8_t digest[SHA256_DIGEST_SIZE];
    int write; /* 1 for a write-scoped key, else 0 */
} AuthKey;

struct Auth {
    AuthKey *keys;
    int n;
};

static void digest_of(const char *s, size_t len, uint8_t *out) {
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, len, (const uint8_t *)s);
    sha256_digest(&ctx, SHA256_DIGEST_SIZE, out);
}

int auth_new(const ConfigApiKey *keys, int n_keys, Auth **out, char *err) {
    *out = NULL;
    if (n_keys < 0 || n_keys > CONFIG_MAX_API_KEYS || (n_keys > 0 && !keys))
        return sm_err(err, -EINVAL, "auth: bad key list (%d keys)", n_keys);
    for (int i = 0; i < n_keys; i++)
        if (!keys[i].key || !keys[i].key[0])
            return sm_err(err, -EINVAL, "auth: API key %d is empty", i + 1);
    Auth *a = calloc(1, sizeof *a);
    if (!a || (n_keys > 0 && !(a->keys = calloc((size_t)n_keys, sizeof *a->keys)))) {
        free(a);
        return sm_err(err, -ENOMEM, "out of memory");
    }
    for (int i = 0; i < n_keys; i++) {
        digest_of(keys[i].key, strlen(keys[i].key), a->keys[i].digest);
        a->keys[i].write = keys[i].scope == CONFIG_SCOPE_WRITE;
    }
    a->n = n_keys;
    *out = a;
    return 0;
}

void auth_free(Auth *a) {
    if (!a)
        return;
    free(a->keys);
    free(a);
}

int auth_n_keys(const Auth *a) {
    return a ? a->n : 0;
}

static bool is_token_char(unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

static bool is_ows(char c) {
    return c == ' ' || c == '\t';
}

/* Finds the token of "Bearer <token>" in h: *tok and *len, or false when h
 * is not of that form (RFC 6750 b64token). */
static bool bearer_token(const char *h, const char **tok, size_t *len) {
    while (is_ows(*h))
        h++;
    if (strncasecmp(h, "Bearer", 6) != 0 || h[6] != ' ')
        return false;
    h += 6;
    while (*h == ' ')
        h++;
    const char *t = h;
    while (is_token_char((unsigned char)*h))
        h++;
    if (h == t)
        return false;
    while (*h == '=')
        h++;
    *tok = t;
    *len = (size_t)(h - t);
    while (is_ows(*h))
        h++;
    return *h == 0;
}

int auth_check(const Auth *a, const char *authorization, int need_write, int *key) {
    if (key)
        *key = -1;
    if (!a || a->n == 0)
        return 0;
    const char *tok;
    size_t len;
    if (!authorization || !bearer_token(authorization, &tok, &len))
        return AUTH_MISSING;
    if (len > AUTH_MAX_TOKEN)
        return AUTH_INVALID;
    uint8_t d[SHA256_DIGEST_SIZE];
    digest_of(tok, len, d);
    int found = 0, write = 0, which = -1;
    for (int i = 0; i < a->n; i++) {
        int eq = memeql_sec(d, a->keys[i].digest, SHA256_DIGEST_SIZE) != 0;
        found |= eq;
        write |= eq & a->keys[i].write;
        which = eq && which < 0 ? i : which;
    }
    if (!found)
        return AUTH_INVALID;
    if (key)
        *key = which;
    return need_write && !write ? AUTH_FORBIDDEN : 0;
}
