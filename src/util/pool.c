/*
 * pool.c — persistent helper threads for the parts of one run (pool.h).
 */
#include "siamese/pool.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

struct Pool {
    pthread_mutex_t mu;
    pthread_cond_t work;   /* a new run, or stop */
    pthread_cond_t done;   /* a helper finished its part */
    pthread_mutex_t owner; /* held by the run in progress */
    int helpers, started;
    pthread_t *th;
    uint64_t gen; /* run number */
    int pending;  /* helpers still on this run */
    int parts;
    PoolFn fn;
    void *ctx;
    int stop;
};

typedef struct {
    Pool *p;
    int me; /* 1..helpers: the part this helper takes */
} HelperArg;

static void *helper(void *arg) {
    HelperArg a = *(HelperArg *)arg;
    free(arg);
    Pool *p = a.p;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->gen == seen)
            pthread_cond_wait(&p->work, &p->mu);
        if (p->stop)
            break;
        seen = p->gen;
        PoolFn fn = p->fn;
        void *ctx = p->ctx;
        int mine = a.me < p->parts;
        pthread_mutex_unlock(&p->mu);
        if (mine)
            fn(ctx, a.me);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

Pool *pool_create(int helpers) {
    Pool *p = calloc(1, sizeof *p);
    if (!p || helpers < 1 || !(p->th = calloc((size_t)helpers, sizeof *p->th))) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->owner, NULL);
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->done, NULL);
    p->helpers = helpers;
    for (; p->started < helpers; p->started++) {
        HelperArg *a = malloc(sizeof *a);
        if (!a)
            break;
        *a = (HelperArg){p, p->started + 1};
        if (pthread_create(&p->th[p->started], NULL, helper, a) != 0) {
            free(a);
            break;
        }
    }
    if (p->started < helpers) {
        pool_free(p);
        return NULL;
    }
    return p;
}

void pool_free(Pool *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++)
        pthread_join(p->th[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->owner);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->done);
    free(p->th);
    free(p);
}

void pool_run(Pool *p, PoolFn fn, void *ctx, int parts) {
    if (!p || parts <= 1 || pthread_mutex_trylock(&p->owner) != 0) {
        for (int i = 0; i < parts; i++)
            fn(ctx, i);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->parts = parts;
    p->pending = p->helpers;
    p->gen++;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    fn(ctx, 0);
    for (int i = p->helpers + 1; i < parts; i++)
        fn(ctx, i);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->owner);
}
