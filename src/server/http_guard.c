/*
 * http_guard.c — the shared body budget and the deadline watchdog of
 * http_guard.h. The watchdog wakes every 200 ms, walks the (short) list of
 * requests still receiving their bodies and shuts down the sockets of those
 * past their deadline.
 */
#include "http_guard.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "siamese/common.h"
#include "siamese/log.h"

#define GUARD_TICK_NS 200000000L

struct Guard {
    size_t budget;
    atomic_size_t used;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    GuardEntry head; /* sentinel of a circular list */
    int stop;
    pthread_t thread;
};

static void guard_sweep(Guard *g) {
    double now = sm_now();
    for (GuardEntry *e = g->head.next; e != &g->head; e = e->next)
        if (!e->fired && now > e->deadline) {
            e->fired = 1;
            shutdown(e->fd, SHUT_RDWR);
            log_debug("http: request deadline passed, connection %d shut down", e->fd);
        }
}

static void *guard_run(void *arg) {
    Guard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += GUARD_TICK_NS;
        if (ts.tv_nsec >= 1000000000L)
            ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&g->cv, &g->mu, &ts);
        guard_sweep(g);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

int guard_new(size_t body_budget, Guard **out, char *err) {
    assert(body_budget > 0);
    Guard *g = calloc(1, sizeof *g);
    if (!g)
        return sm_err(err, -ENOMEM, "out of memory");
    g->budget = body_budget;
    g->head.next = g->head.prev = &g->head;
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    int rc = pthread_create(&g->thread, NULL, guard_run, g);
    if (rc != 0) {
        pthread_cond_destroy(&g->cv);
        pthread_mutex_destroy(&g->mu);
        free(g);
        return sm_err(err, -rc, "cannot start the request watchdog");
    }
    *out = g;
    return 0;
}

void guard_free(Guard *g) {
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->stop = 1;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    assert(g->head.next == &g->head);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

void guard_arm(Guard *g, GuardEntry *e, int fd, double deadline) {
    assert(!e->armed);
    pthread_mutex_lock(&g->mu);
    e->fd = fd, e->deadline = deadline, e->fired = 0, e->armed = 1;
    e->next = g->head.next, e->prev = &g->head;
    g->head.next->prev = e;
    g->head.next = e;
    pthread_mutex_unlock(&g->mu);
}

void guard_disarm(Guard *g, GuardEntry *e) {
    if (!e->armed)
        return;
    pthread_mutex_lock(&g->mu);
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->prev = e->next = NULL;
    e->armed = 0;
    pthread_mutex_unlock(&g->mu);
}

int guard_reserve(Guard *g, size_t n) {
    size_t old = atomic_fetch_add(&g->used, n);
    if (old + n > g->budget || old + n < old) {
        atomic_fetch_sub(&g->used, n);
        return -1;
    }
    return 0;
}

void guard_release(Guard *g, size_t n) {
    size_t old = atomic_fetch_sub(&g->used, n);
    assert(old >= n);
    (void)old;
}

size_t guard_reserved(const Guard *g) {
    return atomic_load(&((Guard *)g)->used);
}
