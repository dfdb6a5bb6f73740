/*
 * test_index.c — the in-memory index: bookkeeping (add, remove by sample and
 * by subject, swap-with-last, growth), the distance formula, tie-breaking, and
 * index_topk() against the naive reference index_topk_ref() on random data,
 * before and after removals; plus readers searching while a writer changes
 * the index. The scan kernels against their *_ref loops; the exact search on
 * several threads against the reference on integer data (every sum exact, so
 * ties must break the same way); the int8 scan + re-rank against the exact
 * search; the subject-name arena through deletions and reuse.
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "siamese/common.h"
#include "siamese/index.h"
#include "siamese/rng.h"
#include "siamese/store.h"

#include "check_util.h"

#define DIM 16
#define TOL 1e-4f

static void set_opts(Index *ix, int threads, size_t par_min, size_t compress_min, int extra);

static Index *make(int dim) {
    Index *ix = NULL;
    char err[SM_ERRMAX];
    ck_assert_int_eq(index_create(dim, &ix, err), 0);
    return ix;
}

static void rand_vec(Rng *r, float *v, int n) {
    for (int i = 0; i < n; i++)
        v[i] = rng_uniform(r);
}

static float model_dist(const float *a, const float *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++)
        s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return (float)sqrt(fmax(s, 1e-7));
}

START_TEST(create_rejects_bad_dim) {
    Index *ix = NULL;
    char err[SM_ERRMAX] = "";
    ck_assert_int_eq(index_create(0, &ix, err), -EINVAL);
    ck_assert_ptr_null(ix);
    ck_assert_int_eq(index_create(STORE_DIM_MAX + 1, &ix, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "embedding size"));
    index_free(NULL);
}
END_TEST

START_TEST(add_and_remove) {
    Index *ix = make(4);
    char err[SM_ERRMAX];
    float a[4] = {1, 0, 0, 0}, b[4] = {0, 1, 0, 0}, c[4] = {0, 0, 1, 0}, nan[4] = {0, NAN, 0, 0};
    ck_assert_int_eq(index_add(ix, 1, "alice", a, err), 0);
    ck_assert_int_eq(index_add(ix, 2, "alice", b, err), 0);
    ck_assert_int_eq(index_add(ix, 3, "bob", c, err), 0);
    ck_assert_int_eq(index_add(ix, 3, "bob", c, err), -EEXIST);
    ck_assert_int_eq(index_add(ix, 4, "bad id", c, err), -EINVAL);
    ck_assert_int_eq(index_add(ix, 0, "bob", c, err), -EINVAL);
    ck_assert_int_eq(index_add(ix, 5, "bob", nan, err), -EINVAL);
    ck_assert_uint_eq(index_size(ix), 3);
    ck_assert_uint_eq(index_subjects(ix), 2);
    ck_assert_int_eq(index_dim(ix), 4);

    /* Removing row 0 moves the last row (bob's) into it; bob must still be found. */
    ck_assert_int_eq(index_remove_sample(ix, 1), 0);
    ck_assert_int_eq(index_remove_sample(ix, 1), SM_ABSENT);
    IndexHit h;
    ck_assert_int_eq(index_nearest_in_subject(ix, "bob", c, &h, err), 0);
    ck_assert_int_eq(h.sample_id, 3);
    ck_assert_int_eq(index_nearest_in_subject(ix, "alice", a, &h, err), 0);
    ck_assert_int_eq(h.sample_id, 2);
    ck_assert_float_eq_tol(h.distance, sqrtf(2.0f), 1e-6f);

    size_t removed = 0;
    ck_assert_int_eq(index_remove_subject(ix, "alice", &removed), 0);
    ck_assert_uint_eq(removed, 1);
    ck_assert_int_eq(index_remove_subject(ix, "alice", &removed), SM_ABSENT);
    ck_assert_int_eq(index_nearest_in_subject(ix, "alice", a, &h, err), SM_ABSENT);
    ck_assert_int_eq(index_nearest_in_subject(ix, "no such", a, &h, err), SM_ABSENT);
    ck_assert_uint_eq(index_subjects(ix), 1);

    /* A freed subject slot is reused; the sample id may come back too. */
    ck_assert_int_eq(index_add(ix, 1, "carol", a, err), 0);
    ck_assert_int_eq(index_nearest_in_subject(ix, "carol", a, &h, err), 0);
    ck_assert_int_eq(h.sample_id, 1);
    ck_assert_uint_eq(index_size(ix), 2);

    index_clear(ix);
    ck_assert_uint_eq(index_size(ix), 0);
    ck_assert_uint_eq(index_subjects(ix), 0);
    int n = -1;
    ck_assert_int_eq(index_topk(ix, a, 3, &h, &n, err), 0);
    ck_assert_int_eq(n, 0);
    ck_assert_int_eq(index_add(ix, 3, "bob", c, err), 0);
    ck_assert_int_eq(index_topk(ix, a, 3, &h, &n, err), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(h.subject, "bob");
    index_free(ix);
}
END_TEST

START_TEST(distance_is_the_models) {
    Index *ix = make(3);
    char err[SM_ERRMAX];
    float x[3] = {1.5f, -2.0f, 0.25f}, q[3] = {0.5f, 1.0f, 0.75f};
    ck_assert_int_eq(index_add(ix, 7, "s", x, err), 0);
    IndexHit h[2];
    int n = 0;
    ck_assert_int_eq(index_topk(ix, q, 2, h, &n, err), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_float_eq_tol(h[0].distance, sqrtf(1.0f + 9.0f + 0.25f), 1e-6f);
    /* Identical vectors: the clamp gives sqrt(1e-7), not 0 (nor NaN from a
     * slightly negative expansion). */
    ck_assert_int_eq(index_topk(ix, x, 1, h, &n, err), 0);
    ck_assert_float_eq_tol(h[0].distance, sqrtf(1e-7f), 1e-9f);
    ck_assert_int_eq(index_nearest_in_subject(ix, "s", x, h, err), 0);
    ck_assert_float_eq_tol(h[0].distance, sqrtf(1e-7f), 1e-9f);
    float inf[3] = {INFINITY, 0, 0};
    ck_assert_int_eq(index_topk(ix, inf, 1, h, &n, err), -EINVAL);
    ck_assert_int_eq(index_topk(ix, q, 0, h, &n, err), -EINVAL);
    index_free(ix);
}
END_TEST

START_TEST(ties_by_subject_id) {
    Index *ix = make(2);
    char err[SM_ERRMAX];
    float v[2] = {1, 1}, far[2] = {5, 5}, q[2] = {1, 2};
    ck_assert_int_eq(index_add(ix, 1, "zed", v, err), 0);
    ck_assert_int_eq(index_add(ix, 2, "amy", v, err), 0);
    ck_assert_int_eq(index_add(ix, 3, "mid", v, err), 0);
    ck_assert_int_eq(index_add(ix, 4, "amy", far, err), 0);
    IndexHit h[4], r[4];
    int n = 0, nr = 0;
    ck_assert_int_eq(index_topk(ix, q, 4, h, &n, err), 0);
    ck_assert_int_eq(index_topk_ref(ix, q, 4, r, &nr, err), 0);
    ck_assert_int_eq(n, 3);
    ck_assert_int_eq(nr, 3);
    const char *want[] = {"amy", "mid", "zed"};
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(h[i].subject, want[i]);
        ck_assert_str_eq(r[i].subject, want[i]);
        ck_assert_float_eq_tol(h[i].distance, 1.0f, 1e-6f);
    }
    ck_assert_int_eq(h[0].sample_id, 2);
    ck_assert_int_eq(index_topk(ix, q, 2, h, &n, err), 0);
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(h[1].subject, "mid");
    index_free(ix);
}
END_TEST

/* Checks topk against the reference: equal distances rank by rank, and the
 * same subjects except where two reference distances are within TOL. */
static void check_against_ref(Index *ix, const float *q, int k) {
    char err[SM_ERRMAX];
    int n = 0, nr = 0, nall = 0;
    IndexHit *h = calloc((size_t)k, sizeof *h), *r = calloc((size_t)k, sizeof *r);
    IndexHit *all = calloc(1000, sizeof *all);
    ck_assert_int_eq(index_topk(ix, q, k, h, &n, err), 0);
    ck_assert_int_eq(index_topk_ref(ix, q, k, r, &nr, err), 0);
    ck_assert_int_eq(index_topk_ref(ix, q, 1000, all, &nall, err), 0);
    ck_assert_int_eq(n, nr);
    ck_assert_int_eq(n, (int)(index_subjects(ix) < (size_t)k ? index_subjects(ix) : (size_t)k));
    for (int i = 0; i < n; i++) {
        ck_assert_float_eq_tol(h[i].distance, r[i].distance, TOL);
        if (strcmp(h[i].subject, r[i].subject) != 0) {
            float dr = -1;
            for (int j = 0; j < nall; j++)
                if (strcmp(all[j].subject, h[i].subject) == 0)
                    dr = all[j].distance;
            ck_assert_float_eq_tol(dr, r[i].distance, TOL);
        } else {
            ck_assert_int_eq(h[i].sample_id, r[i].sample_id);
        }
        if (i > 0)
            ck_assert(h[i - 1].distance <= h[i].distance);
        /* The reported distance is the model's, recomputed independently. */
        IndexHit one;
        ck_assert_int_eq(index_nearest_in_subject(ix, h[i].subject, q, &one, err), 0);
        ck_assert_float_eq_tol(one.distance, h[i].distance, TOL);
    }
    free(h);
    free(r);
    free(all);
}

START_TEST(topk_matches_reference) {
    Rng rng;
    rng_seed(&rng, 42 + (uint64_t)_i);
    Index *ix = make(DIM);
    char err[SM_ERRMAX], name[32];
    float *embs = malloc(1000 * DIM * sizeof *embs);
    int64_t *subj_of = malloc(1000 * sizeof *subj_of);
    rand_vec(&rng, embs, 1000 * DIM);
    for (int i = 0; i < 1000; i++) {
        subj_of[i] = rng_below(&rng, 50);
        snprintf(name, sizeof name, "subject-%02d", (int)subj_of[i]);
        ck_assert_int_eq(index_add(ix, 100 + i, name, embs + i * DIM, err), 0);
    }
    ck_assert_uint_eq(index_size(ix), 1000);
    float q[DIM];
    const int ks[] = {1, 5, 50, 60};
    for (int t = 0; t < 10; t++) {
        rand_vec(&rng, q, DIM);
        for (size_t j = 0; j < SM_ARRAY_LEN(ks); j++)
            check_against_ref(ix, q, ks[j]);
    }
    /* A stored vector finds its own sample at the floor distance. */
    IndexHit h;
    int n = 0;
    ck_assert_int_eq(index_topk(ix, embs + 123 * DIM, 1, &h, &n, err), 0);
    ck_assert_int_eq(h.sample_id, 100 + 123);
    ck_assert_float_eq_tol(h.distance, model_dist(embs + 123 * DIM, embs + 123 * DIM, DIM), 1e-6f);

    /* Remove 400 random samples and five subjects, then compare again. */
    int removed = 0;
    for (int i = 0; i < 1000 && removed < 400; i++)
        if (rng_below(&rng, 2) == 0) {
            ck_assert_int_eq(index_remove_sample(ix, 100 + i), 0);
            subj_of[i] = -1;
            removed++;
        }
    size_t gone = 0, total_gone = 0;
    for (int s = 0; s < 5; s++) {
        snprintf(name, sizeof name, "subject-%02d", s * 7);
        ck_assert_int_eq(index_remove_subject(ix, name, &gone), 0);
        total_gone += gone;
    }
    ck_assert_uint_eq(index_size(ix), 1000 - (size_t)removed - total_gone);
    ck_assert_uint_eq(index_subjects(ix), 45);
    for (int t = 0; t < 10; t++) {
        rand_vec(&rng, q, DIM);
        for (size_t j = 0; j < SM_ARRAY_LEN(ks); j++)
            check_against_ref(ix, q, ks[j]);
    }
    /* Every remaining sample is still reachable through its subject's list. */
    for (int i = 0; i < 1000; i++) {
        if (subj_of[i] < 0 || subj_of[i] % 7 == 0)
            continue;
        snprintf(name, sizeof name, "subject-%02d", (int)subj_of[i]);
        ck_assert_int_eq(index_nearest_in_subject(ix, name, embs + i * DIM, &h, err), 0);
        ck_assert_int_eq(h.sample_id, 100 + i);
    }
    free(embs);
    free(subj_of);
    index_free(ix);
}
END_TEST

START_TEST(reserve_then_add) {
    Index *ix = make(DIM);
    char err[SM_ERRMAX], name[32];
    float v[DIM] = {0};
    ck_assert_int_eq(index_reserve(ix, 5000, 3000, err), 0);
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "s%d", i % 3000);
        v[0] = (float)i;
        ck_assert_int_eq(index_add(ix, i + 1, name, v, err), 0);
    }
    ck_assert_uint_eq(index_size(ix), 5000);
    ck_assert_uint_eq(index_subjects(ix), 3000);
    ck_assert_int_eq(index_reserve(ix, (size_t)1 << 40, 0, err), -EOVERFLOW);
    index_free(ix);
}
END_TEST

/* A reservation large enough to be faulted in by a helper thread, rows added
 * while it runs, then past it (the mappings move: the helper is joined), and
 * freed right after another large reservation (joined again): every row
 * reads back as written. */
START_TEST(large_reserve_prefaulted) {
    enum { N = 70000 };
    Index *ix = make(DIM);
    char err[SM_ERRMAX], name[32];
    float v[DIM] = {0};
    ck_assert_int_eq(index_reserve(ix, N, N / 10, err), 0);
    for (int i = 0; i < N + 100; i++) {
        snprintf(name, sizeof name, "s%d", i % (N / 10));
        v[0] = (float)i, v[DIM - 1] = (float)(i % 7);
        ck_assert_int_eq(index_add(ix, i + 1, name, v, err), 0);
    }
    ck_assert_uint_eq(index_size(ix), N + 100);
    for (int i = 0; i < N + 100; i += 997) {
        IndexHit h;
        int n = 0;
        v[0] = (float)i, v[DIM - 1] = (float)(i % 7);
        ck_assert_int_eq(index_search(ix, v, 1, INDEX_EXACT, &h, &n, err), 0);
        ck_assert_int_eq(n, 1);
        ck_assert_int_eq(h.sample_id, i + 1);
        ck_assert_float_le(h.distance, 1e-3f);
    }
    ck_assert_int_eq(index_reserve(ix, 2 * N, 0, err), 0);
    index_free(ix);
}
END_TEST

typedef struct {
    Index *ix;
    int failures;
    int rounds; /* searches to run; 0: until *stop */
    const _Atomic int *stop;
} ReaderArg;

static void *reader(void *p) {
    ReaderArg *a = p;
    Rng rng;
    rng_seed(&rng, 7);
    float q[DIM];
    IndexHit h[8];
    char err[SM_ERRMAX];
    for (int i = 0; a->rounds ? i < a->rounds : !*a->stop; i++) {
        int n = 0;
        rand_vec(&rng, q, DIM);
        if (index_topk(a->ix, q, 8, h, &n, err) < 0 || n > 8)
            a->failures++;
        for (int j = 1; j < n; j++)
            if (h[j].distance < h[j - 1].distance || !isfinite(h[j].distance))
                a->failures++;
    }
    return NULL;
}

START_TEST(readers_during_writes) {
    Index *ix = make(DIM);
    char err[SM_ERRMAX], name[32];
    Rng rng;
    rng_seed(&rng, 9);
    float v[DIM];
    ReaderArg args[3];
    pthread_t th[3];
    /* Searches on two threads each: the readers contend for the pool. */
    set_opts(ix, 2, 1, 500, 4);
    for (int t = 0; t < 3; t++) {
        args[t] = (ReaderArg){ix, 0, 300, NULL};
        ck_assert_int_eq(pthread_create(&th[t], NULL, reader, &args[t]), 0);
    }
    for (int i = 0; i < 3000; i++) {
        rand_vec(&rng, v, DIM);
        snprintf(name, sizeof name, "w%d", i % 40);
        ck_assert_int_eq(index_add(ix, i + 1, name, v, err), 0);
        if (i % 3 == 2)
            ck_assert_int_eq(index_remove_sample(ix, i), 0);
    }
    for (int t = 0; t < 3; t++) {
        pthread_join(th[t], NULL);
        ck_assert_int_eq(args[t].failures, 0);
    }
    ck_assert_uint_eq(index_size(ix), 2000);
    index_free(ix);
}
END_TEST

/* Searches that always overlap (three threads, each holding the read lock
 * most of the time) must not keep a write out: each add waits for the
 * searches under way, not for a moment when none is (glibc's default
 * rwlock lets new readers pass a waiting writer). */
START_TEST(writes_are_not_starved_by_readers) {
    enum { ROWS = 20000, ADDS = 100 };
    Index *ix = make(DIM);
    char err[SM_ERRMAX], name[32];
    Rng rng;
    rng_seed(&rng, 12);
    float v[DIM];
    for (int i = 0; i < ROWS; i++) {
        rand_vec(&rng, v, DIM);
        snprintf(name, sizeof name, "s%d", i % 500);
        ck_assert_int_eq(index_add(ix, i + 1, name, v, err), 0);
    }
    set_opts(ix, 1, ROWS * 2, ROWS * 2, 4); /* one thread a search, no int8 copy */
    _Atomic int stop = 0;
    ReaderArg args[3];
    pthread_t th[3];
    for (int t = 0; t < 3; t++) {
        args[t] = (ReaderArg){ix, 0, 0, &stop};
        ck_assert_int_eq(pthread_create(&th[t], NULL, reader, &args[t]), 0);
    }
    double t0 = sm_now(), slowest = 0;
    int done = 0;
    while (done < ADDS && sm_now() - t0 < 10) {
        rand_vec(&rng, v, DIM);
        double t = sm_now();
        ck_assert_int_eq(index_add(ix, ROWS + done + 1, "new", v, err), 0);
        slowest = fmax(slowest, sm_now() - t);
        done++;
    }
    stop = 1;
    for (int t = 0; t < 3; t++) {
        pthread_join(th[t], NULL);
        ck_assert_int_eq(args[t].failures, 0);
    }
    fprintf(stderr, "index: %d adds beside 3 searching threads in %.3f s, slowest %.1f ms\n", done,
            sm_now() - t0, slowest * 1e3);
    ck_assert_int_eq(done, ADDS);
    ck_assert_msg(slowest < 2.0, "an add waited %.2f s for the searches", slowest);
    index_free(ix);
}
END_TEST

/* Candidates far from the origin and very close to the query: the
 * |q|^2 + |x|^2 - 2 q.x expansion cannot rank these (its rounding error is
 * larger than their differences); the index must, exactly as brute force in
 * double precision does. */
START_TEST(close_candidates_rank_exactly) {
    Rng rng;
    rng_seed(&rng, 7);
    enum { S = 50, Q = 200 };
    Index *ix = make(DIM);
    char err[SM_ERRMAX], name[32];
    float base[DIM], x[S][DIM], q[DIM];
    for (int j = 0; j < DIM; j++)
        base[j] = 1.15f + 0.01f * rng_uniform(&rng);
    for (int s = 0; s < S; s++) {
        for (int j = 0; j < DIM; j++)
            x[s][j] = base[j] + 0.001f * (rng_uniform(&rng) - 0.5f);
        snprintf(name, sizeof name, "s%02d", s);
        ck_assert_int_eq(index_add(ix, s + 1, name, x[s], err), 0);
    }
    for (int t = 0; t < Q; t++) {
        for (int j = 0; j < DIM; j++)
            q[j] = base[j] + 0.001f * (rng_uniform(&rng) - 0.5f);
        int best = 0;
        for (int s = 1; s < S; s++)
            if (model_dist(q, x[s], DIM) < model_dist(q, x[best], DIM))
                best = s;
        IndexHit h[3];
        int n = 0;
        ck_assert_int_eq(index_topk(ix, q, 3, h, &n, err), 0);
        snprintf(name, sizeof name, "s%02d", best);
        ck_assert_msg(n == 3 && strcmp(h[0].subject, name) == 0, "query %d: got %s, nearest %s", t,
                      h[0].subject, name);
    }
    index_free(ix);
}
END_TEST

/* Finite elements whose squared norm overflows cannot be ranked: refused. */
START_TEST(overflowing_embeddings_refused) {
    Index *ix = make(4);
    char err[SM_ERRMAX];
    float big[4] = {3e19f, 0, 0, 0}, ok[4] = {1, 2, 3, 4};
    IndexHit h;
    int n = 0;
    ck_assert_int_eq(index_add(ix, 1, "a", big, err), -EINVAL);
    ck_assert_int_eq(index_add(ix, 2, "a", ok, err), 0);
    ck_assert_int_eq(index_topk(ix, big, 1, &h, &n, err), -EINVAL);
    ck_assert_int_eq(index_nearest_in_subject(ix, "a", big, &h, err), -EINVAL);
    ck_assert_int_eq(index_topk(ix, ok, 1, &h, &n, err), 0);
    ck_assert(n == 1 && h.sample_id == 2);
    index_free(ix);
}
END_TEST

/* Small integers: every partial sum is exact in float, in any order. */
static void int_vec(Rng *r, float *v, size_t n, int lo, int hi) {
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(lo + (int)rng_below(r, (uint64_t)(hi - lo + 1)));
}

START_TEST(kernels_match_ref) {
    Rng rng;
    rng_seed(&rng, 11);
    const int dims[] = {128, 16, 48, 7, 130};
    for (size_t t = 0; t < SM_ARRAY_LEN(dims); t++) {
        int d = dims[t];
        size_t n = 83; /* 5 blocks of 16 and a tail */
        float *x = malloc(n * (size_t)d * sizeof *x), q[256], a[83], b[83];
        float scale[256], qo[256];
        int8_t *c = malloc(n * (size_t)d);
        /* Exact: integer data, equal bit for bit. */
        int_vec(&rng, x, n * (size_t)d, -20, 20);
        int_vec(&rng, q, (size_t)d, -20, 20);
        index_dist_f32(x, n, d, q, a);
        index_dist_f32_ref(x, n, d, q, b);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(a[i] == b[i], "dim %d row %zu: %g vs %g", d, i, a[i], b[i]);
        for (size_t i = 0; i < n * (size_t)d; i++)
            c[i] = (int8_t)((int)rng_below(&rng, 255) - 127);
        for (int j = 0; j < d; j++) {
            scale[j] = (float)(1 << rng_below(&rng, 3)) * 0.25f;
            qo[j] = (float)((int)rng_below(&rng, 64) - 32) * 0.25f;
        }
        index_dist_i8(c, n, d, scale, qo, a);
        index_dist_i8_ref(c, n, d, scale, qo, b);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(a[i] == b[i], "i8 dim %d row %zu: %g vs %g", d, i, a[i], b[i]);
        /* Random floats: equal up to rounding. */
        rand_vec(&rng, x, (int)(n * (size_t)d));
        rand_vec(&rng, q, d);
        index_dist_f32(x, n, d, q, a);
        index_dist_f32_ref(x, n, d, q, b);
        check_close(a, b, n, 1e-5, "f32");
        for (int j = 0; j < d; j++)
            scale[j] = 0.01f + rng_uniform(&rng);
        index_dist_i8(c, n, d, scale, q, a);
        index_dist_i8_ref(c, n, d, scale, q, b);
        check_close(a, b, n, 1e-5, "i8");
        /* n = 0 writes nothing. */
        a[0] = -1;
        index_dist_f32(x, 0, d, q, a);
        ck_assert(a[0] == -1);
        free(x);
        free(c);
    }
}
END_TEST

static void set_opts(Index *ix, int threads, size_t par_min, size_t compress_min, int extra) {
    char err[SM_ERRMAX];
    IndexOptions o = {threads, par_min, compress_min, extra};
    ck_assert_int_eq(index_set_options(ix, &o, err), 0);
}

/* Exact search on 1..3 threads equals the reference hit for hit (subject,
 * sample and distance) on integer data full of ties. */
START_TEST(exact_threads_equal_ref) {
    Rng rng;
    rng_seed(&rng, 5 + (uint64_t)_i);
    enum { N = 3000, D = 32 };
    Index *ix = make(D);
    char err[SM_ERRMAX], name[32];
    float *v = malloc((size_t)N * D * sizeof *v), q[D];
    int_vec(&rng, v, (size_t)N * D, -2, 2);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "t%03d", (int)rng_below(&rng, 400));
        ck_assert_int_eq(index_add(ix, i + 1, name, v + (size_t)i * D, err), 0);
    }
    /* Duplicated rows under other subjects: exact ties between subjects. */
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof name, "dup%03d", i);
        ck_assert_int_eq(index_add(ix, N + 1 + i, name, v + (size_t)rng_below(&rng, N) * D, err),
                         0);
    }
    set_opts(ix, 1 + _i, 1, 1 << 30, 0);
    static IndexHit h[700], r[700];
    for (int t = 0; t < 34; t++) {
        if (t % 2)
            memcpy(q, v + (size_t)rng_below(&rng, N) * D, sizeof q);
        else
            int_vec(&rng, q, D, -2, 2);
        /* Small k mostly; k of 300 and 700 (more than there are subjects) too. */
        int k = t < 30 ? 1 + (int)rng_below(&rng, 40) : t < 32 ? 300 : 700, n = 0, nr = 0;
        ck_assert_int_eq(index_search(ix, q, k, INDEX_EXACT, h, &n, err), 0);
        ck_assert_int_eq(index_topk_ref(ix, q, k, r, &nr, err), 0);
        ck_assert_int_eq(n, nr);
        for (int i = 0; i < n; i++) {
            ck_assert_msg(strcmp(h[i].subject, r[i].subject) == 0, "q%d #%d: %s vs %s", t, i,
                          h[i].subject, r[i].subject);
            ck_assert_int_eq(h[i].sample_id, r[i].sample_id);
            ck_assert(h[i].distance == r[i].distance);
        }
    }
    free(v);
    index_free(ix);
}
END_TEST

/* Clustered data (subjects around centres, queries near a stored sample):
 * the int8 scan + re-rank finds the exact top-1 on nearly every query, and
 * its hits carry exact distances. Also after removals (codes move with rows)
 * and across the re-derivation when the row count doubles. */
START_TEST(compressed_agrees_with_exact) {
    Rng rng;
    rng_seed(&rng, 21);
    enum { S = 500, PER = 8, D = 64, Q = 200 };
    Index *ix = make(D);
    char err[SM_ERRMAX], name[32];
    float *centre = malloc((size_t)S * D * sizeof *centre), v[D], q[D];
    check_fill(&rng, centre, (size_t)S * D, -1, 1);
    set_opts(ix, 2, 1, 1000, 16);
    int64_t id = 1;
    for (int p = 0; p < PER; p++)
        for (int s = 0; s < S; s++) {
            for (int j = 0; j < D; j++)
                v[j] = centre[s * D + j] + 0.2f * (rng_uniform(&rng) - 0.5f);
            snprintf(name, sizeof name, "c%03d", s);
            ck_assert_int_eq(index_add(ix, id++, name, v, err), 0);
            if (id == 900)
                ck_assert_int_eq(index_compressed(ix), 0);
        }
    ck_assert_int_eq(index_compressed(ix), 1);
    for (int round = 0; round < 2; round++) {
        int agree = 0;
        for (int t = 0; t < Q; t++) {
            int s = (int)rng_below(&rng, S);
            for (int j = 0; j < D; j++)
                q[j] = centre[s * D + j] + 0.3f * (rng_uniform(&rng) - 0.5f);
            IndexHit a[5], e[5];
            int na = 0, ne = 0;
            ck_assert_int_eq(index_search(ix, q, 5, 0, a, &na, err), 0);
            ck_assert_int_eq(index_search(ix, q, 5, INDEX_EXACT, e, &ne, err), 0);
            ck_assert_int_eq(na, 5);
            ck_assert_int_eq(ne, 5);
            agree += strcmp(a[0].subject, e[0].subject) == 0;
            for (int i = 0; i < na; i++) {
                IndexHit one;
                ck_assert_int_eq(index_nearest_in_subject(ix, a[i].subject, q, &one, err), 0);
                ck_assert(one.distance == a[i].distance && one.sample_id == a[i].sample_id);
            }
        }
        ck_assert_msg(agree >= Q * 99 / 100, "round %d: top-1 agreed on %d of %d", round, agree, Q);
        /* Remove every third sample and a few subjects, then search again. */
        for (int64_t i = 1; i < id; i += 3)
            index_remove_sample(ix, i);
        for (int s = 0; s < 20; s++) {
            snprintf(name, sizeof name, "c%03d", s * 3 + round);
            index_remove_subject(ix, name, NULL);
        }
    }
    /* Few subjects (fewer than k + rerank_extra): the exact path, same answer. */
    Index *small = make(D);
    set_opts(small, 2, 1, 10, 64);
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof name, "x%d", i % 7);
        ck_assert_int_eq(index_add(small, i + 1, name, centre + (size_t)i * D, err), 0);
    }
    ck_assert_int_eq(index_compressed(small), 1);
    IndexHit a[7], r[7];
    int na = 0, nr = 0;
    ck_assert_int_eq(index_search(small, centre, 7, 0, a, &na, err), 0);
    ck_assert_int_eq(index_topk_ref(small, centre, 7, r, &nr, err), 0);
    ck_assert_int_eq(na, 7);
    for (int i = 0; i < na; i++)
        ck_assert_str_eq(a[i].subject, r[i].subject);
    index_free(small);
    /* Few subjects with many samples (re-ranking would read most rows): the
     * search falls back to the exact scan; still the reference's answer. */
    Index *wide = make(D);
    set_opts(wide, 2, 1, 1000, 16);
    for (int i = 0; i < 4000; i++) {
        snprintf(name, sizeof name, "w%02d", i % 40);
        for (int j = 0; j < D; j++)
            v[j] = centre[(i % S) * D + j];
        ck_assert_int_eq(index_add(wide, i + 1, name, v, err), 0);
    }
    ck_assert_int_eq(index_compressed(wide), 1);
    IndexHit wa[5], wr[5];
    ck_assert_int_eq(index_search(wide, centre + 7 * D, 5, 0, wa, &na, err), 0);
    ck_assert_int_eq(index_topk_ref(wide, centre + 7 * D, 5, wr, &nr, err), 0);
    ck_assert_int_eq(na, 5);
    for (int i = 0; i < na; i++) {
        ck_assert_str_eq(wa[i].subject, wr[i].subject);
        ck_assert(wa[i].distance == wr[i].distance);
    }
    index_free(wide);
    free(centre);
    index_free(ix);
}
END_TEST

/* Subject names live in one arena: deleting many subjects and adding new
 * ones (which compacts it) keeps every name findable. */
START_TEST(names_survive_compaction) {
    Index *ix = make(4);
    char err[SM_ERRMAX], name[160];
    float v[4] = {0};
    for (int i = 0; i < 3000; i++) {
        snprintf(name, sizeof name, "%0*d", 1 + i % 128, i);
        v[0] = (float)i;
        ck_assert_int_eq(index_add(ix, i + 1, name, v, err), 0);
    }
    for (int i = 0; i < 3000; i += 3) {
        snprintf(name, sizeof name, "%0*d", 1 + i % 128, i);
        ck_assert_int_eq(index_remove_subject(ix, name, NULL), 0);
    }
    for (int i = 3000; i < 9000; i++) {
        snprintf(name, sizeof name, "n%0*d", 1 + i % 127, i);
        v[0] = (float)i;
        ck_assert_int_eq(index_reserve(ix, 1, 1, err), 0);
        ck_assert_int_eq(index_add(ix, i + 1, name, v, err), 0);
    }
    ck_assert_uint_eq(index_subjects(ix), 8000);
    IndexHit h;
    for (int i = 0; i < 9000; i++) {
        if (i < 3000)
            snprintf(name, sizeof name, "%0*d", 1 + i % 128, i);
        else
            snprintf(name, sizeof name, "n%0*d", 1 + i % 127, i);
        int want = i < 3000 && i % 3 == 0 ? SM_ABSENT : 0;
        v[0] = (float)i;
        ck_assert_int_eq(index_nearest_in_subject(ix, name, v, &h, err), want);
        if (want == 0)
            ck_assert_int_eq(h.sample_id, i + 1);
    }
    ck_assert_int_eq(index_nearest_in_subject(ix, NULL, v, &h, err), SM_ABSENT);
    index_free(ix);
}
END_TEST

/* The int8 encoder against its reference: the same codes (ties to even) and
 * the same clamped flag, inside and outside the range. */
START_TEST(encode_matches_ref) {
    Rng rng;
    rng_seed(&rng, 17);
    const int dims[] = {128, 16, 7};
    for (size_t t = 0; t < SM_ARRAY_LEN(dims); t++) {
        int d = dims[t];
        float x[128], off[128], inv[128];
        int8_t a[128], b[128];
        for (int round = 0; round < 200; round++) {
            for (int j = 0; j < d; j++) {
                off[j] = rng_uniform(&rng) - 0.5f;
                inv[j] = 10.0f + 100.0f * rng_uniform(&rng);
                /* Mostly in range; some exact halves; every 10th round far out. */
                x[j] = off[j] + (2.5f * rng_uniform(&rng) - 1.25f) * 127.0f / inv[j];
                if (j % 5 == 0)
                    x[j] = off[j] + ((float)((int)rng_below(&rng, 255) - 127) + 0.5f) / inv[j];
            }
            if (round % 10 == 0)
                x[d / 2] = off[d / 2] + 1000.0f / inv[d / 2];
            int fa = index_encode_i8(x, off, inv, a, d),
                fb = index_encode_i8_ref(x, off, inv, b, d);
            ck_assert_int_eq(fa, fb);
            for (int j = 0; j < d; j++)
                ck_assert_msg(a[j] == b[j], "dim %d j %d: %d vs %d", d, j, a[j], b[j]);
            if (round % 10 == 0)
                ck_assert_int_eq(fa, 1);
        }
    }
}
END_TEST

/* A sample far outside the int8 range (clamped) is still found: the query at
 * it ranks its clamped code first and the re-rank is exact. */
START_TEST(clamped_outlier_found) {
    Rng rng;
    rng_seed(&rng, 3);
    enum { D = 32, N = 3000 };
    Index *ix = make(D);
    char err[SM_ERRMAX], name[32];
    float v[D];
    set_opts(ix, 2, 1, 1000, 8);
    for (int i = 0; i < N; i++) {
        check_fill(&rng, v, D, -1, 1);
        snprintf(name, sizeof name, "p%04d", i);
        ck_assert_int_eq(index_add(ix, i + 1, name, v, err), 0);
    }
    ck_assert_int_eq(index_compressed(ix), 1);
    for (int j = 0; j < D; j++)
        v[j] = 5.0f + (float)j;
    ck_assert_int_eq(index_add(ix, N + 1, "outlier", v, err), 0);
    IndexHit h[3];
    int n = 0;
    ck_assert_int_eq(index_search(ix, v, 3, 0, h, &n, err), 0);
    ck_assert_str_eq(h[0].subject, "outlier");
    ck_assert_float_eq_tol(h[0].distance, sqrtf(1e-7f), 1e-9f);
    index_free(ix);
}
END_TEST

int main(void) {
    Suite *s = suite_create("index");
    TCase *tc = tcase_create("index");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, create_rejects_bad_dim);
    tcase_add_test(tc, add_and_remove);
    tcase_add_test(tc, distance_is_the_models);
    tcase_add_test(tc, ties_by_subject_id);
    tcase_add_loop_test(tc, topk_matches_reference, 0, 3);
    tcase_add_test(tc, reserve_then_add);
    tcase_add_test(tc, large_reserve_prefaulted);
    tcase_add_test(tc, readers_during_writes);
    tcase_add_test(tc, writes_are_not_starved_by_readers);
    tcase_add_test(tc, close_candidates_rank_exactly);
    tcase_add_test(tc, overflowing_embeddings_refused);
    tcase_add_test(tc, kernels_match_ref);
    tcase_add_loop_test(tc, exact_threads_equal_ref, 0, 3);
    tcase_add_test(tc, compressed_agrees_with_exact);
    tcase_add_test(tc, names_survive_compaction);
    tcase_add_test(tc, encode_matches_ref);
    tcase_add_test(tc, clamped_outlier_found);
    suite_add_tcase(s, tc);
    return check_run(s);
}
