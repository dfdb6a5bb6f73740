/*
 * index.c — the index's bookkeeping: rows, subjects, lookup tables and the
 * int8 copy (searches are in index_scan.c, the scan threads in index_pool.c).
 *
 * Rows: one row-major float matrix emb (cap x dim) with, per row, its sample
 * id, subject slot and prev/next links of a per-subject list (so a subject's
 * rows are found without a scan). Rows grow by doubling (the matrices are
 * anonymous mappings grown with mremap and backed by huge pages where the
 * kernel allows: capacity not yet written costs no memory); removing a row
 * moves the last row into its place, so a query is one sequential pass over
 * a dense matrix. Two open-addressing tables (linear probing, deletion by
 * backward shift, never more than half full) map sample id -> row and subject
 * id -> slot; slots live in an array with a free list, and their ids in one
 * arena of entries [slot: int32][id][NUL], compacted when reserving room finds
 * freed entries.
 *
 * The int8 copy: code = round((x - offset) / scale) in [-127, 127] per
 * dimension, offset and scale from the rows' range widened by 1/16 on each
 * side. It is derived afresh when the row count first reaches
 * compress_min_rows, whenever it doubles, and when more than 1/64 of the rows
 * added since had a value outside the range (clamped).
 *
 * index_reserve() sizes everything ahead, so that the store can make room
 * before it commits and apply the change after the commit without a failure
 * path. Search holds the rwlock shared; every change holds it exclusive.
 */
#include "index_int.h"

#include "siamese/common.h"
#include "siamese/store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

_Static_assert(INDEX_SUBJECT_MAX == STORE_SUBJECT_MAX, "index and store agree on id length");

#define ROWS_LIMIT (1 << 30) /* row and slot indices are int32_t */
#define ENTRY_MAX (4 + INDEX_SUBJECT_MAX + 1)

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
    return hash_str(index_slot_id(ix, slot));
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
        if (strcmp(index_slot_id(ix, ix->slot_of.t[i]), id) == 0)
            return i;
    return SIZE_MAX;
}

int32_t index_find_slot(const Index *ix, const char *id) {
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

/* Grows an anonymous mapping from old to bytes (both page multiples; old 0:
 * a new one), leaving *p alone on failure. */
static int grow_map(void *pp, size_t old, size_t bytes) {
    void **p = pp;
    void *q = old ? mremap(*p, old, bytes, MREMAP_MAYMOVE)
                  : mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED)
        return -ENOMEM;
    madvise(q, bytes, MADV_HUGEPAGE); /* advice only: no huge pages is fine */
    *p = q;
    return 0;
}

static size_t page_round(size_t bytes) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    return (bytes + pg - 1) / pg * pg;
}

/* ---- Prefaulting ----
 * The kernel zeroes each page of the matrices when it is first written: for
 * a million 128-d rows 0.6 GB, measured as 40% of the CPU of loading them at
 * start-up (clear_page under the row copies). A reservation of at least
 * PREFAULT_MIN_ROWS (the store's load) hands the pages it will fill to a
 * thread that faults them in (MADV_POPULATE_WRITE: no data is touched, a
 * page already there is left alone) while the caller reads and adds rows,
 * so the zeroing runs on another core. Whatever moves or unmaps the mappings
 * (growing, index_free) joins the thread first. */

#define PREFAULT_MIN_ROWS 65536

static void *prefault_run(void *arg) {
    Index *ix = arg;
    for (int i = 0; i < 2; i++)
        if (ix->pf_len[i])
            madvise(ix->pf_at[i], ix->pf_len[i], MADV_POPULATE_WRITE); /* advice: may fail */
    return NULL;
}

static void prefault_join(Index *ix) {
    if (ix->prefaulting)
        pthread_join(ix->prefault, NULL);
    ix->prefaulting = 0;
}

/* The page-aligned span of map (bytes long) holding bytes [from, to). */
static void prefault_span(Index *ix, int i, void *map, size_t bytes, size_t from, size_t to) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE), a = from / pg * pg, b = page_round(to);
    b = b < bytes ? b : bytes;
    ix->pf_at[i] = (char *)map + a;
    ix->pf_len[i] = b > a ? b - a : 0;
}

/* Starts faulting in rows [ix->n, ix->n + rows) of both matrices. */
static void prefault_start(Index *ix, size_t rows) {
    if (rows < PREFAULT_MIN_ROWS || ix->prefaulting)
        return;
    size_t d = (size_t)ix->dim, end = ix->n + rows;
    prefault_span(ix, 0, ix->emb, ix->emb_bytes, ix->n * d * sizeof(float),
                  end * d * sizeof(float));
    prefault_span(ix, 1, ix->codes, ix->codes_bytes, ix->n * d, end * d);
    ix->prefaulting = pthread_create(&ix->prefault, NULL, prefault_run, ix) == 0;
}

static int grow_rows(Index *ix, size_t need) {
    if (need > ROWS_LIMIT)
        return -EOVERFLOW;
    prefault_join(ix); /* its spans are about to move */
    size_t cap = ix->cap ? ix->cap : 64;
    while (cap < need)
        cap *= 2;
    if (cap > ROWS_LIMIT)
        cap = ROWS_LIMIT;
    size_t d = (size_t)ix->dim;
    size_t fbytes = page_round(cap * d * sizeof(float)), cbytes = page_round(cap * d);
    /* Each mapping records its size as soon as it has grown, so that a later
     * failure leaves every size true. */
    if (fbytes > ix->emb_bytes) {
        if (grow_map(&ix->emb, ix->emb_bytes, fbytes))
            return -ENOMEM;
        ix->emb_bytes = fbytes;
    }
    if (cbytes > ix->codes_bytes) {
        if (grow_map(&ix->codes, ix->codes_bytes, cbytes))
            return -ENOMEM;
        ix->codes_bytes = cbytes;
    }
    if (grow_array(&ix->sample, cap, sizeof(int64_t)) ||
        grow_array(&ix->subj, cap, sizeof(int32_t)) ||
        grow_array(&ix->prev, cap, sizeof(int32_t)) ||
        grow_array(&ix->next, cap, sizeof(int32_t)) ||
        table_rebuild(ix, &ix->rows_of, cap, row_hash, 1))
        return -ENOMEM;
    ix->cap = cap;
    return 0;
}

/* Moves the live entries of the names arena down over the freed ones. */
static void names_compact(Index *ix) {
    size_t from = 0, to = 0;
    while (from < ix->names_len) {
        int32_t slot;
        memcpy(&slot, ix->names + from, 4);
        size_t len = 4 + strlen(ix->names + from + 4) + 1;
        if (slot >= 0) {
            memmove(ix->names + to, ix->names + from, len);
            ix->subjects[slot].off = to;
            to += len;
        }
        from += len;
    }
    ix->names_len = to;
    ix->names_dead = 0;
}

/* Room in the arena for `subjects` more entries. */
static int names_reserve(Index *ix, size_t subjects) {
    size_t need = ix->names_len + subjects * ENTRY_MAX;
    if (need <= ix->names_cap)
        return 0;
    if (ix->names_dead > 0) {
        names_compact(ix);
        need = ix->names_len + subjects * ENTRY_MAX;
        if (need <= ix->names_cap)
            return 0;
    }
    size_t cap = ix->names_cap ? ix->names_cap : page_round(64 * ENTRY_MAX);
    while (cap < need)
        cap *= 2;
    if (grow_map(&ix->names, ix->names_cap, cap))
        return -ENOMEM;
    ix->names_cap = cap;
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
    if (rc == 0)
        rc = names_reserve(ix, subjects);
    if (rc < 0)
        return sm_err(err, rc, "index: cannot grow to %zu rows: %s", ix->n + rows,
                      rc == -ENOMEM ? "out of memory" : "too many");
    prefault_start(ix, rows);
    return 0;
}

static IndexOptions options_filled(const IndexOptions *o) {
    IndexOptions f = o ? *o : (IndexOptions){0};
    if (f.threads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        f.threads = cpus < 1 ? 1 : cpus > 8 ? 8 : (int)cpus;
    }
    if (f.par_min_rows == 0)
        f.par_min_rows = 65536;
    if (f.compress_min_rows == 0)
        f.compress_min_rows = 32768;
    if (f.rerank_extra == 0)
        f.rerank_extra = 64;
    return f;
}

int index_create(int dim, Index **out, char *err) {
    *out = NULL;
    if (dim < 1 || dim > STORE_DIM_MAX)
        return sm_err(err, -EINVAL, "index: embedding size %d outside 1..%d", dim, STORE_DIM_MAX);
    Index *ix = calloc(1, sizeof *ix);
    if (!ix || !(ix->offset = calloc(3 * (size_t)dim, sizeof(float)))) {
        free(ix);
        return sm_err(err, -ENOMEM, "index: out of memory");
    }
    /* Writers first: searches that always overlap kept an add out for
     * seconds (test writes_are_not_starved_by_readers). No reader here
     * takes the lock twice. */
    if (sm_rwlock_init_writers_first(&ix->lock) != 0) {
        free(ix->offset);
        free(ix);
        return sm_err(err, -ENOMEM, "index: cannot create its lock");
    }
    pthread_mutex_init(&ix->pool_lock, NULL);
    ix->scale = ix->offset + dim;
    ix->inv_scale = ix->scale + dim;
    ix->dim = dim;
    ix->opt = options_filled(NULL);
    *out = ix;
    return 0;
}

void index_free(Index *ix) {
    if (!ix)
        return;
    prefault_join(ix);
    pool_free(ix->pool);
    pthread_mutex_destroy(&ix->pool_lock);
    pthread_rwlock_destroy(&ix->lock);
    if (ix->emb_bytes)
        munmap(ix->emb, ix->emb_bytes);
    if (ix->codes_bytes)
        munmap(ix->codes, ix->codes_bytes);
    if (ix->names_cap)
        munmap(ix->names, ix->names_cap);
    free(ix->offset); /* scale and inv_scale too */
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

int index_compressed(Index *ix) {
    pthread_rwlock_rdlock(&ix->lock);
    int q = ix->quant;
    pthread_rwlock_unlock(&ix->lock);
    return q;
}

int index_reserve(Index *ix, size_t rows, size_t subjects, char *err) {
    pthread_rwlock_wrlock(&ix->lock);
    int rc = reserve_locked(ix, rows, subjects, err);
    pthread_rwlock_unlock(&ix->lock);
    return rc;
}

/* ---- The int8 copy ---- */

/* Encodes row r; 1 if some value fell outside the range and was clamped. */
static int quant_encode(Index *ix, size_t r) {
    size_t d = (size_t)ix->dim;
    return index_encode_i8(ix->emb + r * d, ix->offset, ix->inv_scale, ix->codes + r * d, ix->dim);
}

/* Derives offset and scale from rows [0, n) and encodes every row. */
static void quant_derive(Index *ix) {
    int d = ix->dim;
    float *lo = ix->offset, *hi = ix->scale; /* reused as min and max first */
    for (int j = 0; j < d; j++) {
        lo[j] = INFINITY;
        hi[j] = -INFINITY;
    }
    for (size_t r = 0; r < ix->n; r++) {
        const float *x = ix->emb + r * (size_t)d;
        for (int j = 0; j < d; j++) {
            lo[j] = x[j] < lo[j] ? x[j] : lo[j];
            hi[j] = x[j] > hi[j] ? x[j] : hi[j];
        }
    }
    for (int j = 0; j < d; j++) {
        float span = hi[j] - lo[j], a = lo[j] - span / 16, b = hi[j] + span / 16;
        float s = (b - a) / 254.0f;
        ix->offset[j] = a / 2 + b / 2;
        ix->scale[j] = s > 0 && isfinite(s) && isfinite(1.0f / s) ? s : 1.0f;
        ix->inv_scale[j] = 1.0f / ix->scale[j];
    }
    for (size_t r = 0; r < ix->n; r++)
        quant_encode(ix, r);
    ix->quant = 1;
    ix->q_built = ix->n;
    ix->q_clamped = 0;
}

/* After row n-1 was added: encode it, or derive the copy afresh. */
static void quant_added(Index *ix) {
    if (!ix->quant) {
        if (ix->n >= ix->opt.compress_min_rows)
            quant_derive(ix);
        return;
    }
    ix->q_clamped += (size_t)quant_encode(ix, ix->n - 1);
    if (ix->n >= 2 * ix->q_built || ix->q_clamped * 64 > ix->n)
        quant_derive(ix);
}

int index_set_options(Index *ix, const IndexOptions *opt, char *err) {
    if (!opt || opt->threads < 0 || opt->threads > 64 || opt->rerank_extra < 0 ||
        opt->rerank_extra > 4096)
        return sm_err(err, -EINVAL, "index: threads must be 0..64 and rerank_extra 0..4096");
    pthread_rwlock_wrlock(&ix->lock);
    ix->opt = options_filled(opt);
    if (ix->n < ix->opt.compress_min_rows)
        ix->quant = 0;
    else if (!ix->quant)
        quant_derive(ix);
    /* A pool of the old size goes (no search is using it: they hold the lock
     * shared); the next parallel search makes one. */
    pthread_mutex_lock(&ix->pool_lock);
    pool_free(ix->pool);
    ix->pool = NULL;
    pthread_mutex_unlock(&ix->pool_lock);
    pthread_rwlock_unlock(&ix->lock);
    return 0;
}

/* ---- Changes ---- */

static int32_t slot_new(Index *ix, const char *subject) {
    int32_t slot = ix->n_free ? ix->free_slots[--ix->n_free] : (int32_t)ix->n_slots++;
    Subj *sj = &ix->subjects[slot];
    size_t len = strlen(subject);
    memcpy(ix->names + ix->names_len, &slot, 4);
    memcpy(ix->names + ix->names_len + 4, subject, len + 1);
    sj->off = ix->names_len;
    ix->names_len += 4 + len + 1;
    sj->head = -1;
    sj->count = 0;
    table_insert(ix, &ix->slot_of, slot, slot_hash);
    ix->n_live++;
    return slot;
}

static void slot_release(Index *ix, int32_t slot) {
    Subj *sj = &ix->subjects[slot];
    table_delete_at(ix, &ix->slot_of, find_slot_pos(ix, index_slot_id(ix, slot)), slot_hash);
    int32_t dead = -1;
    memcpy(ix->names + sj->off, &dead, 4);
    ix->names_dead += 4 + strlen(ix->names + sj->off + 4) + 1;
    ix->free_slots[ix->n_free++] = slot;
    ix->n_live--;
}

int index_add(Index *ix, int64_t sample_id, const char *subject, const float *emb, char *err) {
    int rc = 0;
    if (sample_id <= 0 || !store_subject_id_valid(subject))
        return sm_err(err, -EINVAL, "index: invalid sample %lld or subject id",
                      (long long)sample_id);
    if (!index_embedding_ok(emb, ix->dim))
        return sm_err(err, -EINVAL, "index: sample %lld has a non-finite embedding",
                      (long long)sample_id);
    pthread_rwlock_wrlock(&ix->lock);
    if (find_row_pos(ix, sample_id) != SIZE_MAX) {
        rc = sm_err(err, -EEXIST, "index: sample %lld is already there", (long long)sample_id);
        goto out;
    }
    int32_t slot = index_find_slot(ix, subject);
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
    quant_added(ix);
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
    if (--sj->count == 0)
        slot_release(ix, ix->subj[r]);
    table_delete_at(ix, &ix->rows_of, find_row_pos(ix, ix->sample[r]), row_hash);
    int32_t last = (int32_t)ix->n - 1;
    if (r != last) {
        size_t pos = find_row_pos(ix, ix->sample[last]), d = (size_t)ix->dim;
        memcpy(ix->emb + (size_t)r * d, ix->emb + (size_t)last * d, d * sizeof(float));
        if (ix->quant)
            memcpy(ix->codes + (size_t)r * d, ix->codes + (size_t)last * d, d);
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
    int32_t slot = store_subject_id_valid(subject) ? index_find_slot(ix, subject) : -1;
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
    ix->names_len = ix->names_dead = 0;
    ix->quant = 0;
    if (ix->rows_of.t)
        memset(ix->rows_of.t, 0xff, (ix->rows_of.mask + 1) * sizeof(int32_t));
    if (ix->slot_of.t)
        memset(ix->slot_of.t, 0xff, (ix->slot_of.mask + 1) * sizeof(int32_t));
    pthread_rwlock_unlock(&ix->lock);
}
