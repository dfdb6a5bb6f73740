/*
 * index.c — the in-memory nearest-neighbour index over every current sample.
 *
 * Rows: one row-major float matrix emb (cap x dim) with, per row, its sample
 * id, subject slot and prev/next links of a per-subject list (so a subject's
 * rows are found without a scan). Rows grow by doubling; removing a row moves
 * the last row into its place, so a query is one sequential pass over a dense
 * matrix. That pass computes each distance directly, not as
 * |q|^2 + |x|^2 - 2 q.x: the expansion is no cheaper (both stream the matrix
 * once) and its cancellation misranks close candidates, which are exactly the
 * ones identify must get right. Two open-addressing tables (linear probing, deletion
 * by backward shift, never more than half full) map sample id -> row and
 * subject id -> slot; slots live in an array with a free list.
 *
 * index_reserve() sizes everything ahead, so that the store can make room
 * before it commits and apply the change after the commit without a failure
 * path. Search holds the rwlock shared; every change holds it exclusive.
 */
#include "siamese/common.h"
#include "siamese/layers.h"
#include "siamese/model.h"
#include "siamese/simd.h"
#include "siamese/store.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROWS_LIMIT (1 << 30) /* row and slot indices are int32_t */

typedef struct {
    char id[STORE_SUBJECT_MAX + 1];
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
    size_t n, cap;
    float *emb; /* (cap, dim) */
    int64_t *sample;
    int32_t *subj; /* slot of each row */
    int32_t *prev, *next;
    Subj *subjects; /* (subj_cap) */
    size_t n_slots, subj_cap, n_live;
    int32_t *free_slots; /* (subj_cap) stack of freed slots */
    size_t n_free;
    Table rows_of; /* sample id -> row */
    Table slot_of; /* subject id -> slot */
};

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
    return h;
}

static uint64_t row_hash(const Index *ix, int32_t row) {
    return hash_u64((uint64_t)ix->sample[row]);
}
static uint64_t slot_hash(const Index *ix, int32_t slot) {
    return hash_str(ix->subjects[slot].id);
}

typedef uint64_t (*HashFn)(const Index *, int32_t);

static void table_insert(const Index *ix, Table *tb, int32_t v, HashFn hash) {
    size_t i = hash(ix, v) & tb->mask;
    while (tb->t[i] != -1)
        i = (i + 1) & tb->mask;
    tb->t[i] = v;
}

/* Empties position i, shifting back later entries of the probe run whose home
 * is not cyclically within (i, j], so that lookups never meet a false gap. */
static void table_delete_at(const Index *ix, Table *tb, size_t i, HashFn hash) {
    size_t j = i;
    for (;;) {
        j = (j + 1) & tb->mask;
        if (tb->t[j] == -1)
            break;
        size_t home = hash(ix, tb->t[j]) & tb->mask;
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            tb->t[i] = tb->t[j];
            i = j;
        }
    }
    tb->t[i] = -1;
}

/* Position of sample id in rows_of, or SIZE_MAX. */
static size_t find_row_pos(const Index *ix, int64_t id) {
    if (!ix->rows_of.t)
        return SIZE_MAX;
    size_t i = hash_u64((uint64_t)id) & ix->rows_of.mask;
    for (; ix->rows_of.t[i] != -1; i = (i + 1) & ix->rows_of.mask)
        if (ix->sample[ix->rows_of.t[i]] == id)
            return i;
    return SIZE_MAX;
}

static size_t find_slot_pos(const Index *ix, const char *id) {
    if (!ix->slot_of.t)
        return SIZE_MAX;
    size_t i = hash_str(id) & ix->slot_of.mask;
    for (; ix->slot_of.t[i] != -1; i = (i + 1) & ix->slot_of.mask)
        if (strcmp(ix->subjects[ix->slot_of.t[i]].id, id) == 0)
            return i;
    return SIZE_MAX;
}

static int32_t find_slot(const Index *ix, const char *id) {
    size_t pos = find_slot_pos(ix, id);
    return pos == SIZE_MAX ? -1 : ix->slot_of.t[pos];
}

/* A fresh table of at least 2*cap entries holding every live value. */
static int table_rebuild(Index *ix, Table *tb, size_t cap, HashFn hash, int rows) {
    size_t size = 16;
    while (size < 2 * cap)
        size *= 2;
    int32_t *t = malloc(size * sizeof *t);
    if (!t)
        return -ENOMEM;
    memset(t, 0xff, size * sizeof *t);
    free(tb->t);
    tb->t = t;
    tb->mask = size - 1;
    if (rows) {
        for (size_t r = 0; r < ix->n; r++)
            table_insert(ix, tb, (int32_t)r, hash);
    } else {
        for (size_t s = 0; s < ix->n_slots; s++)
            if (ix->subjects[s].count > 0)
                table_insert(ix, tb, (int32_t)s, hash);
    }
    return 0;
}

/* realloc that leaves *p alone on failure (so arrays never shrink below cap). */
static int grow_array(void *pp, size_t n, size_t size) {
    void **p = pp;
    void *q = realloc(*p, n * size);
    if (!q)
        return -ENOMEM;
    *p = q;
    return 0;
}

static int grow_rows(Index *ix, size_t need) {
    if (need > ROWS_LIMIT)
        return -EOVERFLOW;
    size_t cap = ix->cap ? ix->cap : 64;
    while (cap < need)
        cap *= 2;
    if (cap > ROWS_LIMIT)
        cap = ROWS_LIMIT;
    if (grow_array(&ix->emb, cap, (size_t)ix->dim * sizeof(float)) ||
        grow_array(&ix->sample, cap, sizeof(int64_t)) ||
        grow_array(&ix->subj, cap, sizeof(int32_t)) ||
        grow_array(&ix->prev, cap, sizeof(int32_t)) ||
        grow_array(&ix->next, cap, sizeof(int32_t)) ||
        table_rebuild(ix, &ix->rows_of, cap, row_hash, 1))
        return -ENOMEM;
    ix->cap = cap;
    return 0;
}

static int grow_slots(Index *ix, size_t need) {
    if (need > ROWS_LIMIT)
        return -EOVERFLOW;
    size_t cap = ix->subj_cap ? ix->subj_cap : 16;
    while (cap < need)
        cap *= 2;
    if (cap > ROWS_LIMIT)
        cap = ROWS_LIMIT;
    if (grow_array(&ix->subjects, cap, sizeof(Subj)) ||
        grow_array(&ix->free_slots, cap, sizeof(int32_t)) ||
        table_rebuild(ix, &ix->slot_of, cap, slot_hash, 0))
        return -ENOMEM;
    ix->subj_cap = cap;
    return 0;
}

static int reserve_locked(Index *ix, size_t rows, size_t subjects, char *err) {
    int rc = 0;
    if (rows > ROWS_LIMIT || subjects > ROWS_LIMIT)
        return sm_err(err, -EOVERFLOW, "index: %zu rows / %zu subjects is too many", rows,
                      subjects);
    if (ix->n + rows > ix->cap)
        rc = grow_rows(ix, ix->n + rows);
    /* Slots in use = n_slots - n_free; a new subject needs one more. */
    if (rc == 0 && ix->n_slots - ix->n_free + subjects > ix->subj_cap)
        rc = grow_slots(ix, ix->n_slots - ix->n_free + subjects);
    if (rc < 0)
        return sm_err(err, rc, "index: cannot grow to %zu rows: %s", ix->n + rows,
                      rc == -ENOMEM ? "out of memory" : "too many");
    return 0;
}

int index_create(int dim, Index **out, char *err) {
    *out = NULL;
    if (dim < 1 || dim > STORE_DIM_MAX)
        return sm_err(err, -EINVAL, "index: embedding size %d outside 1..%d", dim, STORE_DIM_MAX);
    Index *ix = calloc(1, sizeof *ix);
    if (!ix)
        return sm_err(err, -ENOMEM, "index: out of memory");
    if (pthread_rwlock_init(&ix->lock, NULL) != 0) {
        free(ix);
        return sm_err(err, -ENOMEM, "index: cannot create its lock");
    }
    ix->dim = dim;
    *out = ix;
    return 0;
}

void index_free(Index *ix) {
    if (!ix)
        return;
    pthread_rwlock_destroy(&ix->lock);
    free(ix->emb);
    free(ix->sample);
    free(ix->subj);
    free(ix->prev);
    free(ix->next);
    free(ix->subjects);
    free(ix->free_slots);
    free(ix->rows_of.t);
    free(ix->slot_of.t);
    free(ix);
}

int index_dim(const Index *ix) {
    return ix->dim;
}

size_t index_size(Index *ix) {
    pthread_rwlock_rdlock(&ix->lock);
    size_t n = ix->n;
    pthread_rwlock_unlock(&ix->lock);
    return n;
}

size_t index_subjects(Index *ix) {
    pthread_rwlock_rdlock(&ix->lock);
    size_t n = ix->n_live;
    pthread_rwlock_unlock(&ix->lock);
    return n;
}

int index_reserve(Index *ix, size_t rows, size_t subjects, char *err) {
    pthread_rwlock_wrlock(&ix->lock);
    int rc = reserve_locked(ix, rows, subjects, err);
    pthread_rwlock_unlock(&ix->lock);
    return rc;
}

/* An embedding is searchable when every element is finite and so is its
 * squared norm (elements near 1e19 overflow it, and any distance with it). */
static int embedding_ok(const float *v, int n) {
    float s = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(v[i]))
            return 0;
        s += v[i] * v[i];
    }
    return isfinite(s);
}

/* Squared distance for ranking, in 16 independent lanes so that it
 * vectorises; hits report the model's own distance (model_distance()). */
SM_CLONES static float sq_dist(const float *x, const float *q, int n) {
    float acc[16] = {0}, s = 0;
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) {
            float d = x[i + j] - q[i + j];
            acc[j] += d * d;
        }
    for (; i < n; i++)
        s += (x[i] - q[i]) * (x[i] - q[i]);
    for (int j = 0; j < 16; j++)
        s += acc[j];
    return s;
}

static int32_t slot_new(Index *ix, const char *subject) {
    int32_t slot = ix->n_free ? ix->free_slots[--ix->n_free] : (int32_t)ix->n_slots++;
    Subj *sj = &ix->subjects[slot];
    snprintf(sj->id, sizeof sj->id, "%s", subject);
    sj->head = -1;
    sj->count = 0;
    table_insert(ix, &ix->slot_of, slot, slot_hash);
    ix->n_live++;
    return slot;
}

int index_add(Index *ix, int64_t sample_id, const char *subject, const float *emb, char *err) {
    int rc = 0;
    if (sample_id <= 0 || !store_subject_id_valid(subject))
        return sm_err(err, -EINVAL, "index: invalid sample %lld or subject id",
                      (long long)sample_id);
    if (!embedding_ok(emb, ix->dim))
        return sm_err(err, -EINVAL, "index: sample %lld has a non-finite embedding",
                      (long long)sample_id);
    pthread_rwlock_wrlock(&ix->lock);
    if (find_row_pos(ix, sample_id) != SIZE_MAX) {
        rc = sm_err(err, -EEXIST, "index: sample %lld is already there", (long long)sample_id);
        goto out;
    }
    int32_t slot = find_slot(ix, subject);
    rc = reserve_locked(ix, 1, slot < 0 ? 1 : 0, err);
    if (rc < 0)
        goto out;
    if (slot < 0)
        slot = slot_new(ix, subject);
    int32_t r = (int32_t)ix->n++;
    memcpy(ix->emb + (size_t)r * ix->dim, emb, (size_t)ix->dim * sizeof(float));
    ix->sample[r] = sample_id;
    ix->subj[r] = slot;
    Subj *sj = &ix->subjects[slot];
    ix->prev[r] = -1;
    ix->next[r] = sj->head;
    if (sj->head != -1)
        ix->prev[sj->head] = r;
    sj->head = r;
    sj->count++;
    table_insert(ix, &ix->rows_of, r, row_hash);
out:
    pthread_rwlock_unlock(&ix->lock);
    return rc;
}

/* Removes row r: unlinks it from its subject (freeing the slot when it was the
 * last row), then moves the last row into its place and repoints that row's
 * neighbours, its subject's head and its table entry. */
static void remove_row(Index *ix, int32_t r) {
    Subj *sj = &ix->subjects[ix->subj[r]];
    if (ix->prev[r] != -1)
        ix->next[ix->prev[r]] = ix->next[r];
    else
        sj->head = ix->next[r];
    if (ix->next[r] != -1)
        ix->prev[ix->next[r]] = ix->prev[r];
    if (--sj->count == 0) {
        table_delete_at(ix, &ix->slot_of, find_slot_pos(ix, sj->id), slot_hash);
        ix->free_slots[ix->n_free++] = ix->subj[r];
        ix->n_live--;
    }
    table_delete_at(ix, &ix->rows_of, find_row_pos(ix, ix->sample[r]), row_hash);
    int32_t last = (int32_t)ix->n - 1;
    if (r != last) {
        size_t pos = find_row_pos(ix, ix->sample[last]);
        memcpy(ix->emb + (size_t)r * ix->dim, ix->emb + (size_t)last * ix->dim,
               (size_t)ix->dim * sizeof(float));
        ix->sample[r] = ix->sample[last];
        ix->subj[r] = ix->subj[last];
        ix->prev[r] = ix->prev[last];
        ix->next[r] = ix->next[last];
        if (ix->prev[r] != -1)
            ix->next[ix->prev[r]] = r;
        else
            ix->subjects[ix->subj[r]].head = r;
        if (ix->next[r] != -1)
            ix->prev[ix->next[r]] = r;
        ix->rows_of.t[pos] = r;
    }
    ix->n--;
}

int index_remove_sample(Index *ix, int64_t sample_id) {
    pthread_rwlock_wrlock(&ix->lock);
    size_t pos = find_row_pos(ix, sample_id);
    if (pos != SIZE_MAX)
        remove_row(ix, ix->rows_of.t[pos]);
    pthread_rwlock_unlock(&ix->lock);
    return pos == SIZE_MAX ? SM_ABSENT : 0;
}

int index_remove_subject(Index *ix, const char *subject, size_t *removed) {
    pthread_rwlock_wrlock(&ix->lock);
    int32_t slot = find_slot(ix, subject);
    size_t count = slot < 0 ? 0 : (size_t)ix->subjects[slot].count;
    /* The slot stays valid until its last row goes, which also frees it. */
    for (size_t i = 0; i < count; i++)
        remove_row(ix, ix->subjects[slot].head);
    pthread_rwlock_unlock(&ix->lock);
    if (removed)
        *removed = count;
    return slot < 0 ? SM_ABSENT : 0;
}

void index_clear(Index *ix) {
    pthread_rwlock_wrlock(&ix->lock);
    ix->n = ix->n_slots = ix->n_free = ix->n_live = 0;
    if (ix->rows_of.t)
        memset(ix->rows_of.t, 0xff, (ix->rows_of.mask + 1) * sizeof(int32_t));
    if (ix->slot_of.t)
        memset(ix->slot_of.t, 0xff, (ix->slot_of.mask + 1) * sizeof(int32_t));
    pthread_rwlock_unlock(&ix->lock);
}

/* Orders candidates: smaller key first, then smaller subject id. */
static int hit_before(float ka, const char *ida, float kb, const char *idb) {
    return ka < kb || (ka == kb && strcmp(ida, idb) < 0);
}

/* Inserts (key, slot) into the sorted top list of at most k entries. */
static void top_insert(const Index *ix, float *keys, int32_t *slots, int *m, int k, float key,
                       int32_t slot) {
    const char *id = ix->subjects[slot].id;
    if (*m == k && !hit_before(key, id, keys[k - 1], ix->subjects[slots[k - 1]].id))
        return;
    int i = *m < k ? (*m)++ : k - 1;
    for (; i > 0 && hit_before(key, id, keys[i - 1], ix->subjects[slots[i - 1]].id); i--) {
        keys[i] = keys[i - 1];
        slots[i] = slots[i - 1];
    }
    keys[i] = key;
    slots[i] = slot;
}

static void hit_fill(const Index *ix, int32_t row, const float *q, IndexHit *h) {
    snprintf(h->subject, sizeof h->subject, "%s", ix->subjects[ix->subj[row]].id);
    h->sample_id = ix->sample[row];
    h->distance = model_distance(q, ix->emb + (size_t)row * ix->dim, ix->dim);
}

static int hit_cmp(const void *a, const void *b) {
    const IndexHit *x = a, *y = b;
    if (x->distance != y->distance)
        return x->distance < y->distance ? -1 : 1;
    return strcmp(x->subject, y->subject);
}

static int check_query(const Index *ix, const float *q, int k, IndexHit *hits, int *n, char *err) {
    *n = 0;
    if (k < 1 || !hits)
        return sm_err(err, -EINVAL, "index: k must be at least 1");
    if (!embedding_ok(q, ix->dim))
        return sm_err(err, -EINVAL, "index: query embedding is not finite");
    return 0;
}

int index_topk(Index *ix, const float *q, int k, IndexHit *hits, int *n, char *err) {
    int rc = check_query(ix, q, k, hits, n, err);
    if (rc < 0)
        return rc;
    float *d2 = NULL, *keys = NULL;
    int32_t *slots = NULL, *rows = NULL;
    pthread_rwlock_rdlock(&ix->lock);
    if (ix->n == 0)
        goto out;
    size_t kk = (size_t)k < ix->n_live ? (size_t)k : ix->n_live;
    d2 = malloc(ix->n * sizeof *d2);
    keys = malloc(kk * sizeof *keys);
    slots = malloc(kk * sizeof *slots);
    rows = malloc(ix->subj_cap * sizeof *rows);
    if (!d2 || !keys || !slots || !rows) {
        rc = sm_err(err, -ENOMEM, "index: out of memory for a query over %zu rows", ix->n);
        goto out;
    }
    for (size_t r = 0; r < ix->n; r++)
        d2[r] = sq_dist(ix->emb + r * ix->dim, q, ix->dim);
    int m = 0;
    for (size_t s = 0; s < ix->n_slots; s++) {
        float best = INFINITY;
        int32_t best_row = -1;
        for (int32_t r = ix->subjects[s].count ? ix->subjects[s].head : -1; r != -1;
             r = ix->next[r]) {
            float d = d2[r];
            if (best_row < 0 || d < best || (d == best && ix->sample[r] < ix->sample[best_row])) {
                best = d;
                best_row = r;
            }
        }
        if (best_row != -1) {
            rows[s] = best_row;
            top_insert(ix, keys, slots, &m, (int)kk, best, (int32_t)s);
        }
    }
    for (int i = 0; i < m; i++)
        hit_fill(ix, rows[slots[i]], q, &hits[i]);
    /* The reported distances are exact; order by them. */
    qsort(hits, (size_t)m, sizeof *hits, hit_cmp);
    *n = m;
out:
    pthread_rwlock_unlock(&ix->lock);
    free(d2);
    free(keys);
    free(slots);
    free(rows);
    return rc;
}

int index_topk_ref(Index *ix, const float *q, int k, IndexHit *hits, int *n, char *err) {
    int rc = check_query(ix, q, k, hits, n, err);
    if (rc < 0)
        return rc;
    IndexHit *all = NULL;
    pthread_rwlock_rdlock(&ix->lock);
    all = calloc(ix->n_slots + 1, sizeof *all);
    if (!all) {
        rc = sm_err(err, -ENOMEM, "index: out of memory");
        goto out;
    }
    for (size_t s = 0; s < ix->n_slots; s++)
        all[s].distance = INFINITY;
    for (size_t r = 0; r < ix->n; r++) {
        IndexHit *h = &all[ix->subj[r]];
        float d = model_distance(q, ix->emb + r * ix->dim, ix->dim);
        if (d < h->distance || (d == h->distance && ix->sample[r] < h->sample_id))
            hit_fill(ix, (int32_t)r, q, h);
    }
    size_t m = 0;
    for (size_t s = 0; s < ix->n_slots; s++)
        if (ix->subjects[s].count > 0)
            all[m++] = all[s];
    qsort(all, m, sizeof *all, hit_cmp);
    *n = (int)(m < (size_t)k ? m : (size_t)k);
    memcpy(hits, all, (size_t)*n * sizeof *hits);
out:
    pthread_rwlock_unlock(&ix->lock);
    free(all);
    return rc;
}

int index_nearest_in_subject(Index *ix, const char *subject, const float *q, IndexHit *hit,
                             char *err) {
    int n;
    int rc = check_query(ix, q, 1, hit, &n, err);
    if (rc < 0)
        return rc;
    pthread_rwlock_rdlock(&ix->lock);
    int32_t slot = store_subject_id_valid(subject) ? find_slot(ix, subject) : -1;
    if (slot < 0) {
        rc = SM_ABSENT;
        goto out;
    }
    float best = INFINITY;
    int32_t best_row = -1;
    for (int32_t r = ix->subjects[slot].head; r != -1; r = ix->next[r]) {
        float d = model_distance(q, ix->emb + (size_t)r * ix->dim, ix->dim);
        if (best_row < 0 || d < best || (d == best && ix->sample[r] < ix->sample[best_row])) {
            best = d;
            best_row = r;
        }
    }
    hit_fill(ix, best_row, q, hit);
out:
    pthread_rwlock_unlock(&ix->lock);
    return rc;
}
