/*
 * ratelimit.c — token buckets for API keys and client addresses; see
 * ratelimit.h for the policy. A bucket stores its tokens as of its last
 * update; taking refills it by rate x elapsed (capped at burst) first.
 */
#include "siamese/ratelimit.h"

#include "siamese/common.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROBES 8 /* slots an address may take, from its hash on */

typedef struct {
    double tokens, at; /* tokens as of time at */
} Bucket;

typedef struct {
    char addr[RATELIMIT_ADDR]; /* "" = free */
    Bucket b;
} Slot;

struct RateLimit {
    double rate, burst;
    int n_keys;
    Bucket *keys;
    Slot *slots; /* RATELIMIT_SLOTS */
    pthread_mutex_t lock;
};

int ratelimit_new(double rate, int burst, int n_keys, RateLimit **out, char *err) {
    *out = NULL;
    if (!(rate > 0) || !isfinite(rate) || burst < 1 || n_keys < 0)
        return sm_err(err, -EINVAL, "rate limit: bad rate %g, burst %d or key count %d", rate,
                      burst, n_keys);
    RateLimit *r = calloc(1, sizeof *r);
    if (r) {
        r->keys = calloc((size_t)n_keys + 1, sizeof *r->keys);
        r->slots = calloc(RATELIMIT_SLOTS, sizeof *r->slots);
    }
    if (!r || !r->keys || !r->slots) {
        ratelimit_free(r);
        return sm_err(err, -ENOMEM, "out of memory");
    }
    r->rate = rate, r->burst = burst, r->n_keys = n_keys;
    for (int i = 0; i < n_keys; i++)
        r->keys[i].tokens = burst, r->keys[i].at = -INFINITY;
    pthread_mutex_init(&r->lock, NULL);
    *out = r;
    return 0;
}

void ratelimit_free(RateLimit *r) {
    if (!r)
        return;
    if (r->keys && r->slots)
        pthread_mutex_destroy(&r->lock);
    free(r->keys);
    free(r->slots);
    free(r);
}

/* b's tokens at now. */
static double level(const RateLimit *r, const Bucket *b, double now) {
    double t = b->tokens + (now - b->at) * r->rate;
    return t > r->burst || isnan(t) ? r->burst : t;
}

static uint32_t fnv1a(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* The bucket of addr (see ratelimit.h), claimed for it if need be. */
static Bucket *slot_of(RateLimit *r, const char *addr, double now) {
    uint32_t h = fnv1a(addr);
    Slot *reuse = NULL;
    for (int i = 0; i < PROBES; i++) {
        Slot *s = &r->slots[(h + (uint32_t)i) % RATELIMIT_SLOTS];
        if (strncmp(s->addr, addr, RATELIMIT_ADDR - 1) == 0 && s->addr[0])
            return &s->b;
        if (!reuse && (!s->addr[0] || level(r, &s->b, now) >= r->burst))
            reuse = s;
    }
    if (!reuse)
        return &r->slots[h % RATELIMIT_SLOTS].b; /* all busy: share */
    snprintf(reuse->addr, sizeof reuse->addr, "%s", addr[0] ? addr : "-");
    reuse->b = (Bucket){r->burst, now};
    return &reuse->b;
}

int ratelimit_take(RateLimit *r, int key, const char *addr, double now) {
    if (!r)
        return 0;
    assert(key < r->n_keys);
    pthread_mutex_lock(&r->lock);
    Bucket *b = key >= 0 ? &r->keys[key] : slot_of(r, addr ? addr : "-", now);
    double t = level(r, b, now);
    int wait = 0;
    if (t >= 1) {
        b->tokens = t - 1, b->at = now;
    } else {
        b->tokens = t, b->at = now;
        wait = (int)ceil((1 - t) / r->rate);
        wait = wait < 1 ? 1 : wait;
    }
    pthread_mutex_unlock(&r->lock);
    return wait;
}
