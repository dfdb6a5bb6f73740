/*
 * index_int.h — what the index's own files share (index.c: rows, subjects,
 * tables, the int8 copy; index_scan.c: kernels and searches; index_pool.c:
 * the scan threads). Not for other modules.
 */
#ifndef SIAMESE_INDEX_INT_H
#define SIAMESE_INDEX_INT_H

#include "siamese/index.h"
#include "siamese/pool.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t off;    /* of the slot's entry in the names arena */
    int32_t head;  /* first row of this subject, -1 if none */
    int32_t count; /* rows; 0 means the slot is free */
} Subj;

typedef struct {
    int32_t *t; /* row or slot numbers, -1 for empty */
    size_t mask;
} Table;

struct Index {
    pthread_rwlock_t lock;
    int dim;
    IndexOptions opt; /* defaults filled in */
    size_t n, cap;
    float *emb;    /* (cap, dim), mmap'ed: emb_bytes */
    int8_t *codes; /* (cap, dim), mmap'ed: codes_bytes; rows [0, n) valid when quant */
    size_t emb_bytes, codes_bytes;
    float *offset;    /* (dim), one allocation with scale and inv_scale */
    float *scale;     /* (dim) */
    float *inv_scale; /* (dim) */
    int quant;        /* codes, offset and scale are in use */
    size_t q_built;   /* rows when offset/scale were last derived */
    size_t q_clamped; /* rows added since then with a value outside the range */
    int64_t *sample;
    int32_t *subj; /* slot of each row */
    int32_t *prev, *next;
    Subj *subjects; /* (subj_cap) */
    size_t n_slots, subj_cap, n_live;
    int32_t *free_slots; /* (subj_cap) stack of freed slots */
    size_t n_free;
    char *names; /* arena of [slot: int32][id][NUL] entries, mmap'ed: names_cap bytes */
    size_t names_len, names_cap, names_dead; /* bytes used, mapped, in freed entries */
    Table rows_of;                           /* sample id -> row */
    Table slot_of;                           /* subject id -> slot */
    pthread_mutex_t pool_lock;               /* creating the pool */
    Pool *pool;                              /* NULL until a search needs it */
    /* A thread faulting in the pages a large index_reserve() will fill
     * (index.c, "Prefaulting"); joined before the mappings move or go. */
    pthread_t prefault;
    int prefaulting;
    void *pf_at[2];
    size_t pf_len[2];
};

/* ---- index.c ---- */

/* The slot of subject id, or -1. */
int32_t index_find_slot(const Index *ix, const char *id);

/* The id of a slot in use. */
static inline const char *index_slot_id(const Index *ix, int32_t slot) {
    return ix->names + ix->subjects[slot].off + 4;
}

/* ---- index_kernel.c ---- */

/* 1 if every element of v (n) is finite and so is its squared norm. */
int index_embedding_ok(const float *v, int n);

#endif
