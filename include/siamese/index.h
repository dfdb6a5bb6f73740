/*
 * index.h — the in-memory nearest-neighbour index over every current sample
 * (the store keeps it in step with the database; see store.h).
 *
 * All embeddings sit in one row-major float matrix (rows grow by doubling;
 * a removed row is filled by the last one), with each row's sample id and
 * subject. Once the index holds compress_min_rows rows it also keeps an int8
 * copy of every row (per-dimension offset and scale, re-derived whenever the
 * row count doubles or too many values fall outside the range).
 *
 * Search. The exact search computes every squared distance directly in one
 * pass over the float matrix (no |q|^2 + |x|^2 - 2 q.x cancellation), split
 * across a small pool of scan threads. The default search scans the int8
 * copy instead (a quarter of the memory traffic), keeps the k + rerank_extra
 * best subjects by that approximate distance and re-ranks them exactly (every
 * row of each, in float). The distance reported for a hit is always
 * model_distance(), the model's own. A pthread rwlock makes every call
 * thread-safe: searches share it, changes take it alone.
 *
 * Scan threads: a search holds its caller's thread and, when the index is
 * large enough and no other search is using it, the pool's threads - 1
 * helpers; a search that finds the pool busy scans alone, so concurrent
 * queries never queue behind each other for the pool.
 */
#ifndef SIAMESE_INDEX_H
#define SIAMESE_INDEX_H

#include <stddef.h>
#include <stdint.h>

#define INDEX_SUBJECT_MAX 128 /* = STORE_SUBJECT_MAX (checked in index.c) */

typedef struct {
    char subject[INDEX_SUBJECT_MAX + 1];
    int64_t sample_id; /* the subject's nearest sample */
    float distance;    /* sqrt(max(sum (q-x)^2, 1e-7)), the model's distance */
} IndexHit;

typedef struct Index Index;

typedef struct {
    int threads;              /* scan threads, caller included, 1..64 (0: online CPUs, at most 8) */
    size_t par_min_rows;      /* rows below which a search runs on one thread (0: 65536) */
    size_t compress_min_rows; /* rows from which the int8 copy is kept (0: 32768) */
    int rerank_extra;         /* subjects re-ranked beyond k by the default search (0: 64) */
} IndexOptions;

#define INDEX_EXACT 1 /* index_search() flag: exact float scan, no int8 copy */

/* A new empty index of dim-wide embeddings (1..STORE_DIM_MAX). *out is freed
 * with index_free(), which accepts NULL. */
int index_create(int dim, Index **out, char *err);
void index_free(Index *ix);

/* Replaces the options (zero fields take their defaults). Drops or builds the
 * int8 copy as the new compress_min_rows says. -EINVAL for values out of range. */
int index_set_options(Index *ix, const IndexOptions *opt, char *err);

int index_dim(const Index *ix);
size_t index_size(Index *ix);     /* samples */
size_t index_subjects(Index *ix); /* subjects with at least one sample */
int index_compressed(Index *ix);  /* 1 if the int8 copy is kept now */

/* Makes room so that the next `rows` index_add() calls, bringing at most
 * `subjects` new subjects, cannot fail for lack of memory. -ENOMEM, -EOVERFLOW. */
int index_reserve(Index *ix, size_t rows, size_t subjects, char *err);

/* Adds one sample (emb: dim finite floats, copied). -EEXIST if sample_id is
 * already there, -EINVAL for a bad subject id or embedding, -ENOMEM. */
int index_add(Index *ix, int64_t sample_id, const char *subject, const float *emb, char *err);

/* Removes one sample: 0, or SM_ABSENT if it is not there. */
int index_remove_sample(Index *ix, int64_t sample_id);

/* Removes every sample of subject: 0 with *removed (may be NULL) set, or
 * SM_ABSENT if the subject has no samples here. */
int index_remove_subject(Index *ix, const char *subject, size_t *removed);

/* Removes everything; keeps the memory. */
void index_clear(Index *ix);

/* The k (>= 1) subjects nearest to q (dim floats), each by its nearest
 * sample, nearest first, ties by subject id. hits has room for k; *n receives
 * how many were found (fewer than k when there are fewer subjects). flags:
 * INDEX_EXACT or 0 (int8 scan + exact re-rank when the copy is kept; exact
 * otherwise). -EINVAL for k < 1 or a non-finite q, -ENOMEM. */
int index_search(Index *ix, const float *q, int k, int flags, IndexHit *hits, int *n, char *err);

/* index_search(ix, q, k, 0, hits, n, err). */
int index_topk(Index *ix, const float *q, int k, IndexHit *hits, int *n, char *err);

/* The naive reference for index_search(): every distance computed directly by
 * model_distance(), all subjects sorted. Same contract; for tests. */
int index_topk_ref(Index *ix, const float *q, int k, IndexHit *hits, int *n, char *err);

/* The nearest sample of subject to q: 0 with *hit set, or SM_ABSENT if the
 * subject has no samples here. -EINVAL for a non-finite q. */
int index_nearest_in_subject(Index *ix, const char *subject, const float *q, IndexHit *hit,
                             char *err);

/* ---- Scan kernels (exposed for tests and benchmarks) ----
 * Each optimised kernel has a *_ref twin, a plain loop; results agree up to
 * float rounding (exactly when every partial sum is exact). */

/* out[i] = sum_j (x[i*dim + j] - q[j])^2 for i in [0, n). */
void index_dist_f32(const float *x, size_t n, int dim, const float *q, float *out);
void index_dist_f32_ref(const float *x, size_t n, int dim, const float *q, float *out);

/* out[i] = sum_j (scale[j] * c[i*dim + j] - qo[j])^2 for int8 codes c, where
 * qo = q - offset: the squared distance of q to the decoded rows. */
void index_dist_i8(const int8_t *c, size_t n, int dim, const float *scale, const float *qo,
                   float *out);
void index_dist_i8_ref(const int8_t *c, size_t n, int dim, const float *scale, const float *qo,
                       float *out);

/* c[j] = (x[j] - off[j]) * inv[j] rounded to nearest (ties to even), clamped
 * to [-127, 127], for j < dim; returns 1 if some value was outside
 * [-127.5, 127.5] (clamped), else 0. */
int index_encode_i8(const float *x, const float *off, const float *inv, int8_t *c, int dim);
int index_encode_i8_ref(const float *x, const float *off, const float *inv, int8_t *c, int dim);

#endif
