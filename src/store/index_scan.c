/*
 * index_scan.c — searching the index: the per-thread lists of the best
 * subjects, the exact and the int8 + re-rank searches over the kernels of
 * index_kernel.c, the naive reference search and the nearest sample within
 * one subject.
 *
 * A search splits the rows into one contiguous part per scan thread. Each
 * part keeps the best subjects it has seen (each by its best row) in a small
 * sorted list; a row is looked at only when its distance is within the list's
 * last entry, which after the first few thousand rows is rare, so the scan
 * runs at the speed of the kernel. The parts' lists are then merged: a
 * subject in the global top k is in the top k of the part holding its best
 * row, so the merge is exact.
 */
#include "index_int.h"

#include "siamese/common.h"
#include "siamese/model.h"
#include "siamese/store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 256 /* rows per kernel call in a scan */

/* ---- Lists of the best subjects ----
 *
 * A Top keeps the best k subjects seen, each by its best row: a max-heap
 * (the worst entry at the root, so the bound is c[0].key) with a small
 * open-addressing table slot -> heap position, so an offer costs O(log k)
 * whatever k is. Order: smaller key first, then smaller subject id; within
 * a subject, smaller key, then smaller sample id. top_finish() sorts it. */

typedef struct {
    float key;      /* squared distance (approximate in the int8 scan) */
    int32_t slot;   /* subject */
    int32_t row;    /* its best row so far */
    int32_t bucket; /* its entry in the table */
} Cand;

#define TAB_EMPTY (-1)
#define TAB_GONE (-2)

typedef struct {
    const Index *ix;
    Cand *c; /* k entries */
    int m, k;
    int32_t *tab;      /* heap positions, TAB_EMPTY or TAB_GONE; mask + 1 >= 4k */
    size_t mask, used; /* used: entries not TAB_EMPTY */
} Top;

/* Table entries per Top of k: a power of two >= 4k. */
static size_t tab_size(size_t k) {
    size_t n = 16;
    while (n < 4 * k)
        n *= 2;
    return n;
}

static void top_init(Top *t, const Index *ix, Cand *c, int k, int32_t *tab, size_t size) {
    *t = (Top){ix, c, 0, k, tab, size - 1, 0};
    memset(tab, 0xff, size * sizeof *tab); /* TAB_EMPTY */
}

/* 1 if a ranks after b. */
static int cand_after(const Index *ix, const Cand *a, const Cand *b) {
    return a->key > b->key ||
           (a->key == b->key && strcmp(index_slot_id(ix, a->slot), index_slot_id(ix, b->slot)) > 0);
}

static size_t tab_home(const Top *t, int32_t slot) {
    return (size_t)(((uint64_t)(uint32_t)slot * 0x9E3779B97F4A7C15ULL) >> 32) & t->mask;
}

/* The bucket holding slot, or SIZE_MAX with *free_b a bucket to insert at. */
static size_t tab_find(const Top *t, int32_t slot, size_t *free_b) {
    size_t fb = SIZE_MAX;
    for (size_t h = tab_home(t, slot);; h = (h + 1) & t->mask) {
        int32_t e = t->tab[h];
        if (e == TAB_EMPTY) {
            *free_b = fb == SIZE_MAX ? h : fb;
            return SIZE_MAX;
        }
        if (e == TAB_GONE) {
            if (fb == SIZE_MAX)
                fb = h;
        } else if (t->c[e].slot == slot) {
            return h;
        }
    }
}

/* Drops the tombstones: every entry rehashed. */
static void tab_rebuild(Top *t) {
    memset(t->tab, 0xff, (t->mask + 1) * sizeof *t->tab);
    t->used = (size_t)t->m;
    for (int i = 0; i < t->m; i++) {
        size_t h = tab_home(t, t->c[i].slot);
        while (t->tab[h] != TAB_EMPTY)
            h = (h + 1) & t->mask;
        t->tab[h] = i;
        t->c[i].bucket = (int32_t)h;
    }
}

static void place(Top *t, int i, Cand v) {
    t->c[i] = v;
    t->tab[v.bucket] = i;
}

static void sift_up(Top *t, int i) {
    Cand v = t->c[i];
    for (; i > 0 && cand_after(t->ix, &v, &t->c[(i - 1) / 2]); i = (i - 1) / 2)
        place(t, i, t->c[(i - 1) / 2]);
    place(t, i, v);
}

static void sift_down(Top *t, int i) {
    Cand v = t->c[i];
    for (;;) {
        int w = 2 * i + 1;
        if (w >= t->m)
            break;
        if (w + 1 < t->m && cand_after(t->ix, &t->c[w + 1], &t->c[w]))
            w++;
        if (!cand_after(t->ix, &t->c[w], &v))
            break;
        place(t, i, t->c[w]);
        i = w;
    }
    place(t, i, v);
}

/* Rows worth offering have key <= this. */
static float top_bound(const Top *t) {
    return t->m < t->k ? INFINITY : t->c[0].key;
}

/* Offers row (key) of slot: improves the slot's entry if the row is better
 * (smaller key, then smaller sample id), else enters it when it ranks. */
static void top_offer(Top *t, float key, int32_t slot, int32_t row) {
    const Index *ix = t->ix;
    size_t fb = 0, b = tab_find(t, slot, &fb);
    if (b != SIZE_MAX) {
        Cand *e = &t->c[t->tab[b]];
        if (!(key < e->key || (key == e->key && ix->sample[row] < ix->sample[e->row])))
            return;
        e->key = key, e->row = row;
        sift_down(t, t->tab[b]); /* it ranks no later than before */
        return;
    }
    Cand v = {key, slot, row, (int32_t)fb};
    int at = t->m;
    if (t->m == t->k) {
        if (!cand_after(ix, &t->c[0], &v))
            return;
        t->tab[t->c[0].bucket] = TAB_GONE; /* the worst leaves */
        at = 0;
    } else {
        t->m++;
    }
    t->used += t->tab[fb] == TAB_EMPTY;
    place(t, at, v);
    if (at == 0)
        sift_down(t, 0);
    else
        sift_up(t, at);
    if (2 * t->used > t->mask + 1)
        tab_rebuild(t);
}

static int cand_cmp(const void *a, const void *b, void *ix) {
    return cand_after(ix, a, b) ? 1 : cand_after(ix, b, a) ? -1 : 0;
}

/* Sorts the entries best first (the table is no longer used). */
static void top_finish(Top *t) {
    qsort_r(t->c, (size_t)t->m, sizeof *t->c, cand_cmp, (void *)t->ix);
}

/* ---- Scans ---- */

typedef struct {
    const Index *ix;
    const float *q;  /* the query (exact scan) */
    const float *qo; /* q - offset (int8 scan), or NULL */
    int parts;
    Top *tops; /* one per part */
} Scan;

static void scan_part(void *arg, int p) {
    Scan *sc = arg;
    const Index *ix = sc->ix;
    Top *t = &sc->tops[p];
    size_t d = (size_t)ix->dim, r0 = ix->n * (size_t)p / (size_t)sc->parts,
           r1 = ix->n * (size_t)(p + 1) / (size_t)sc->parts;
    float dist[BLOCK];
    for (size_t r = r0; r < r1; r += BLOCK) {
        size_t m = r1 - r < BLOCK ? r1 - r : BLOCK;
        if (sc->qo)
            index_dist_i8(ix->codes + r * d, m, ix->dim, ix->scale, sc->qo, dist);
        else
            index_dist_f32(ix->emb + r * d, m, ix->dim, sc->q, dist);
        float bound = top_bound(t);
        for (size_t i = 0; i < m; i++)
            if (dist[i] <= bound) {
                top_offer(t, dist[i], ix->subj[r + i], (int32_t)(r + i));
                bound = top_bound(t);
            }
    }
}

static Pool *get_pool(Index *ix) {
    pthread_mutex_lock(&ix->pool_lock);
    if (!ix->pool && ix->opt.threads > 1)
        ix->pool = pool_create(ix->opt.threads - 1);
    Pool *p = ix->pool;
    pthread_mutex_unlock(&ix->pool_lock);
    return p;
}

/* The best k subjects of the whole index by the scan's keys, into tops[0],
 * sorted (room and tabs: for `threads` lists of k). */
static void scan_all(Index *ix, Scan *sc, Cand *room, int32_t *tabs, int k) {
    int parts = ix->n >= ix->opt.par_min_rows ? ix->opt.threads : 1;
    size_t ts = tab_size((size_t)k);
    sc->ix = ix;
    sc->parts = parts;
    for (int p = 0; p < parts; p++)
        top_init(&sc->tops[p], ix, room + (size_t)p * (size_t)k, k, tabs + (size_t)p * ts, ts);
    pool_run(parts > 1 ? get_pool(ix) : NULL, scan_part, sc, parts);
    for (int p = 1; p < parts; p++)
        for (int i = 0; i < sc->tops[p].m; i++)
            top_offer(&sc->tops[0], sc->tops[p].c[i].key, sc->tops[p].c[i].slot,
                      sc->tops[p].c[i].row);
    top_finish(&sc->tops[0]);
}

/* Rows that rerank() would read for the candidates of *t. */
static size_t rerank_rows(const Index *ix, const Top *t) {
    size_t rows = 0;
    for (int i = 0; i < t->m; i++)
        rows += (size_t)ix->subjects[t->c[i].slot].count;
    return rows;
}

/* Re-ranks the candidate subjects of *t exactly (every row of each) into
 * out (room for k). */
static void rerank(const Index *ix, const Top *t, const float *q, Top *out) {
    float d;
    for (int i = 0; i < t->m; i++) {
        int32_t slot = t->c[i].slot;
        for (int32_t r = ix->subjects[slot].head; r != -1; r = ix->next[r]) {
            index_dist_f32(ix->emb + (size_t)r * ix->dim, 1, ix->dim, q, &d);
            top_offer(out, d, slot, r);
        }
    }
}

static void hit_fill(const Index *ix, int32_t row, const float *q, IndexHit *h) {
    snprintf(h->subject, sizeof h->subject, "%s", index_slot_id(ix, ix->subj[row]));
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
    if (!index_embedding_ok(q, ix->dim))
        return sm_err(err, -EINVAL, "index: query embedding is not finite");
    return 0;
}

/* The search under the shared lock, ix->n > 0. */
static int search_locked(Index *ix, const float *q, int k, int flags, IndexHit *hits, int *n,
                         char *err) {
    size_t kk = (size_t)k < ix->n_live ? (size_t)k : ix->n_live;
    size_t cand = kk + (size_t)ix->opt.rerank_extra;
    int approx = !(flags & INDEX_EXACT) && ix->quant && ix->n_live > cand;
    size_t per = approx ? cand : kk, parts = (size_t)ix->opt.threads, ts = tab_size(per);
    Cand *room = malloc((parts * per + kk) * sizeof *room);
    int32_t *tabs = malloc((parts + 1) * ts * sizeof *tabs);
    Top *tops = malloc(parts * sizeof *tops);
    float *qo = approx ? malloc((size_t)ix->dim * sizeof *qo) : NULL;
    int rc = 0;
    if (!room || !tabs || !tops || (approx && !qo)) {
        rc = sm_err(err, -ENOMEM, "index: out of memory for a query");
        goto out;
    }
    for (int j = 0; approx && j < ix->dim; j++)
        qo[j] = q[j] - ix->offset[j];
    Scan sc = {.q = q, .qo = qo, .tops = tops};
    scan_all(ix, &sc, room, tabs, (int)per);
    if (approx && rerank_rows(ix, &tops[0]) > ix->n / 8) {
        /* Few subjects with many samples each: re-ranking them would read
         * much of the matrix at random; one exact pass is cheaper. */
        approx = 0, per = kk, sc.qo = NULL;
        scan_all(ix, &sc, room, tabs, (int)per);
    }
    Top best = tops[0];
    if (approx) {
        top_init(&best, ix, room + parts * per, (int)kk, tabs + parts * ts, tab_size(kk));
        rerank(ix, &tops[0], q, &best);
        top_finish(&best);
    }
    for (int i = 0; i < best.m; i++)
        hit_fill(ix, best.c[i].row, q, &hits[i]);
    /* The reported distances are the model's; order by them. */
    qsort(hits, (size_t)best.m, sizeof *hits, hit_cmp);
    *n = best.m;
out:
    free(room);
    free(tabs);
    free(tops);
    free(qo);
    return rc;
}

int index_search(Index *ix, const float *q, int k, int flags, IndexHit *hits, int *n, char *err) {
    int rc = check_query(ix, q, k, hits, n, err);
    if (rc < 0)
        return rc;
    pthread_rwlock_rdlock(&ix->lock);
    if (ix->n > 0)
        rc = search_locked(ix, q, k, flags, hits, n, err);
    pthread_rwlock_unlock(&ix->lock);
    return rc;
}

int index_topk(Index *ix, const float *q, int k, IndexHit *hits, int *n, char *err) {
    return index_search(ix, q, k, 0, hits, n, err);
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
    int32_t slot = store_subject_id_valid(subject) ? index_find_slot(ix, subject) : -1;
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
