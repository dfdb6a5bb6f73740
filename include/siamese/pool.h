/*
 * pool.h — a few persistent helper threads that take the parts of one run at
 * a time (the index's scans, the trainer's data-parallel steps). A run that
 * finds the pool held by another does all its parts on its own thread
 * instead of waiting, so concurrent users share the cores rather than
 * queueing for the pool.
 */
#ifndef SIAMESE_POOL_H
#define SIAMESE_POOL_H

typedef struct Pool Pool;

/* Runs fn(ctx, p) for p in [0, parts): part 0 on the calling thread, the
 * others on the pool's helpers when the pool is idle, all on the caller when
 * p is NULL or another run holds it. Returns when every part is done. */
typedef void (*PoolFn)(void *ctx, int part);
void pool_run(Pool *p, PoolFn fn, void *ctx, int parts);

/* A pool of `helpers` threads (a run's parts beyond helpers + 1 run on the
 * caller). NULL when threads cannot be started (runs then stay on the
 * caller's thread). The caller frees it with pool_free(), which accepts NULL. */
Pool *pool_create(int helpers);
void pool_free(Pool *p);

#endif
