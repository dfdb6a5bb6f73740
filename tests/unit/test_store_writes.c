/*
 * test_store_writes.c — the store's data path: the other half of test_store,
 * whose main(), fixture and helpers are in test_store.c (shared through
 * test_store.h).
 *
 * Covers: enroll / get / list (every page walked) / delete subject / delete
 * sample with their SM_ABSENT cases; identify and verify kept in step with
 * writes; durability across close and across kill -9; group commit under
 * 8 threads x 50 enrolls.
 */
#include "test_store.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "siamese/common.h"
#include "siamese/rng.h"
#include "siamese/store.h"

/* ---- Enroll, get, list, delete ---- */

START_TEST(enroll_and_get) {
    Store *s = open_ok(FP_A, 1);
    char err[SM_ERRMAX];
    int64_t ids[8];
    StoreEnrolled res;
    float e[3][DIM];
    const uint8_t png[] = {0x89, 'P', 'N', 'G', 0, 1, 2};
    StoreSampleIn in[3];
    for (int i = 0; i < 3; i++) {
        emb(100 + (uint64_t)i, e[i]);
        in[i] = (StoreSampleIn){.embedding = e[i]};
    }
    in[1].image = png;
    in[1].image_len = sizeof png;
    in[1].content_type = "image/png";
    ck_assert_int_eq(store_enroll(s, "alice", "{\"name\":\"Alice\"}", in, 3, ids, &res, err), 0);
    ck_assert_int_eq(res.created, 1);
    ck_assert_int_eq(res.total, 3);
    ck_assert(ids[0] > 0 && ids[0] < ids[1] && ids[1] < ids[2]);

    StoreSubject *sj = NULL;
    ck_assert_int_eq(store_get(s, "alice", 0, STORE_LIST_MAX, &sj, err), 0);
    ck_assert_str_eq(sj->id, "alice");
    ck_assert_str_eq(sj->metadata, "{\"name\":\"Alice\"}");
    ck_assert_int_eq(sj->n_samples, 3);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(sj->samples[i].id, ids[i]);
    ck_assert_int_gt(sj->created_at, 1600000000000LL);
    ck_assert_int_ge(sj->samples[0].created_at, sj->created_at);
    store_subject_free(sj);

    /* Appending keeps metadata; new metadata replaces it. */
    ck_assert_int_eq(enroll_n(s, "alice", NULL, 2, 200, ids + 3), 5);
    ck_assert_int_gt(ids[3], ids[2]);
    ck_assert_int_eq(store_get(s, "alice", 0, STORE_LIST_MAX, &sj, err), 0);
    ck_assert_str_eq(sj->metadata, "{\"name\":\"Alice\"}");
    store_subject_free(sj);
    ck_assert_int_eq(store_enroll(s, "alice", "{}", NULL, 0, NULL, &res, err), 0);
    ck_assert_int_eq(res.created, 0);
    ck_assert_int_eq(res.total, 5);
    ck_assert_int_eq(store_get(s, "alice", 0, STORE_LIST_MAX, &sj, err), 0);
    ck_assert_str_eq(sj->metadata, "{}");
    store_subject_free(sj);

    /* A subject with no samples and no metadata. */
    ck_assert_int_eq(store_enroll(s, "bob", NULL, NULL, 0, NULL, &res, err), 0);
    ck_assert_int_eq(res.created, 1);
    ck_assert_int_eq(store_get(s, "bob", 0, STORE_LIST_MAX, &sj, err), 0);
    ck_assert_ptr_null(sj->metadata);
    ck_assert_int_eq(sj->n_samples, 0);
    store_subject_free(sj);

    ck_assert_int_eq(store_get(s, "carol", 0, STORE_LIST_MAX, &sj, err), SM_ABSENT);
    ck_assert_ptr_null(sj);
    ck_assert_int_eq(store_get(s, "not valid", 0, STORE_LIST_MAX, &sj, err), SM_ABSENT);
    int64_t subjects = 0, samples = 0;
    store_counts(s, &subjects, &samples);
    ck_assert_int_eq(subjects, 2);
    ck_assert_int_eq(samples, 5);
    store_close(s);

    /* Only the sample given an image kept one, with its content type. */
    ck_assert_int_eq(raw_int("SELECT count(*) FROM samples WHERE image IS NOT NULL"), 1);
    ck_assert_int_eq(raw_int("SELECT length(image) FROM samples WHERE content_type = 'image/png'"),
                     sizeof png);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM samples WHERE length(embedding) = 32"), 5);
}
END_TEST

START_TEST(enroll_rejects_bad_input) {
    Store *s = open_ok(FP_A, 0);
    char err[SM_ERRMAX] = "";
    int64_t ids[2];
    float e[DIM], bad[DIM];
    emb(1, e);
    emb(1, bad);
    bad[3] = NAN;
    const uint8_t img[4] = {1, 2, 3, 4};
    StoreSampleIn ok = {.embedding = e}, nan = {.embedding = bad};
    StoreSampleIn no_ct = {.embedding = e, .image = img, .image_len = 4};
    StoreSampleIn bad_ct = {.embedding = e, .image = img, .image_len = 4, .content_type = "png"};
    ck_assert_int_eq(store_enroll(s, "", NULL, &ok, 1, ids, NULL, err), -EINVAL);
    ck_assert_int_eq(store_enroll(s, "a b", NULL, &ok, 1, ids, NULL, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "subject id"));
    ck_assert_int_eq(store_enroll(s, "x", "[1]", &ok, 1, ids, NULL, err), -EINVAL);
    ck_assert_int_eq(store_enroll(s, "x", "{\"a\":1} x", &ok, 1, ids, NULL, err), -EINVAL);
    ck_assert_int_eq(store_enroll(s, "x", "{", &ok, 1, ids, NULL, err), -EINVAL);
    ck_assert_int_eq(store_enroll(s, "x", NULL, &nan, 1, ids, NULL, err), -EINVAL);
    ck_assert_int_eq(store_enroll(s, "x", NULL, &no_ct, 1, ids, NULL, err), -EINVAL);
    ck_assert_int_eq(store_enroll(s, "x", NULL, &bad_ct, 1, ids, NULL, err), -EINVAL);
    ck_assert_int_eq(store_enroll(s, "x", NULL, &ok, STORE_ENROLL_MAX + 1, ids, NULL, err),
                     -EINVAL);
    ck_assert_int_eq(store_enroll(s, "x", NULL, &ok, -1, ids, NULL, err), -EINVAL);
    /* Nothing of the above was stored. */
    int64_t subjects = -1, samples = -1;
    store_counts(s, &subjects, &samples);
    ck_assert_int_eq(subjects, 0);
    ck_assert_int_eq(samples, 0);
    /* keep_images off: a valid image is accepted but not kept. */
    StoreSampleIn with_img = {
        .embedding = e, .image = img, .image_len = 4, .content_type = "image/png"};
    ck_assert_int_eq(store_enroll(s, "x", NULL, &with_img, 1, ids, NULL, err), 0);
    store_close(s);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM samples WHERE image IS NULL"), 1);
}
END_TEST

START_TEST(list_walks_every_page) {
    Store *s = open_ok(FP_A, 0);
    char err[SM_ERRMAX];
    enum { N = 57 };
    char ids[N][40];
    Rng r;
    rng_seed(&r, 5);
    /* Ids made to sort differently from their creation order. */
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "%c%u-%d", "zAm0_"[i % 5], rng_below(&r, 100000), i);
        enroll_n(s, ids[i], NULL, i % 3, (uint64_t)i * 10, NULL);
    }
    qsort(ids, N, sizeof ids[0], (int (*)(const void *, const void *))strcmp);

    char cursor[STORE_CURSOR_SIZE] = "", next[STORE_CURSOR_SIZE];
    int seen = 0, pages = 0;
    for (;;) {
        StoreListItem *items = NULL;
        int n = -1;
        ck_assert_int_eq(store_list(s, cursor, 5, &items, &n, next, err), 0);
        ck_assert_int_le(n, 5);
        for (int i = 0; i < n; i++) {
            ck_assert_int_lt(seen, N);
            ck_assert_str_eq(items[i].id, ids[seen]);
            int orig = atoi(strrchr(items[i].id, '-') + 1);
            ck_assert_int_eq(items[i].n_samples, orig % 3);
            ck_assert_int_gt(items[i].created_at, 0);
            seen++;
        }
        free(items);
        pages++;
        if (!next[0])
            break;
        ck_assert_int_eq(n, 5);
        snprintf(cursor, sizeof cursor, "%s", next);
    }
    ck_assert_int_eq(seen, N);
    ck_assert_int_eq(pages, (N + 4) / 5);

    /* One page holding everything says there is no next page. */
    StoreListItem *items = NULL;
    int n = 0;
    ck_assert_int_eq(store_list(s, NULL, STORE_LIST_MAX, &items, &n, next, err), 0);
    ck_assert_int_eq(n, N);
    ck_assert_str_eq(next, "");
    free(items);
    /* A cursor past the end: an empty page. */
    ck_assert_int_eq(store_cursor_encode("zzzz", cursor, err), 0);
    ck_assert_int_eq(store_list(s, cursor, 10, &items, &n, next, err), 0);
    ck_assert_int_eq(n, 0);
    ck_assert_ptr_null(items);
    /* Untrusted cursors and limits. */
    ck_assert_int_eq(store_list(s, "not a cursor!", 10, &items, &n, next, err), -EINVAL);
    ck_assert_int_eq(store_list(s, "YR", 10, &items, &n, next, err), -EINVAL);
    ck_assert_int_eq(store_list(s, NULL, 0, &items, &n, next, err), -EINVAL);
    ck_assert_int_eq(store_list(s, NULL, STORE_LIST_MAX + 1, &items, &n, next, err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "limit"));
    store_close(s);
}
END_TEST

START_TEST(empty_store_lists_nothing) {
    Store *s = open_ok(FP_A, 0);
    char err[SM_ERRMAX], next[STORE_CURSOR_SIZE] = "junk";
    StoreListItem *items = (StoreListItem *)1;
    int n = -1;
    ck_assert_int_eq(store_list(s, "", 10, &items, &n, next, err), 0);
    ck_assert_int_eq(n, 0);
    ck_assert_ptr_null(items);
    ck_assert_str_eq(next, "");
    store_close(s);
}
END_TEST

START_TEST(deletes) {
    Store *s = open_ok(FP_A, 0);
    char err[SM_ERRMAX];
    int64_t a[3], b[2], removed = -1, remaining = -1, subjects, samples;
    enroll_n(s, "a", NULL, 3, 10, a);
    enroll_n(s, "b", NULL, 2, 20, b);

    ck_assert_int_eq(store_delete_sample(s, "a", a[1], &remaining, err), 0);
    ck_assert_int_eq(remaining, 2);
    ck_assert_int_eq(store_delete_sample(s, "a", a[1], &remaining, err), SM_ABSENT);
    ck_assert_int_eq(store_delete_sample(s, "a", b[0], &remaining, err),
                     SM_ABSENT); /* b's sample */
    ck_assert_int_eq(store_delete_sample(s, "nobody", a[0], &remaining, err), SM_ABSENT);
    ck_assert_int_eq(store_delete_sample(s, "a", 999999, &remaining, err), SM_ABSENT);
    ck_assert_int_eq(store_delete_sample(s, "a", -4, &remaining, err), SM_ABSENT);
    ck_assert_int_eq(store_delete_sample(s, "bad id!", a[0], &remaining, err), SM_ABSENT);

    ck_assert_int_eq(store_delete_subject(s, "b", &removed, err), 0);
    ck_assert_int_eq(removed, 2);
    ck_assert_int_eq(store_delete_subject(s, "b", &removed, err), SM_ABSENT);
    ck_assert_int_eq(store_delete_subject(s, "bad id!", &removed, err), SM_ABSENT);
    StoreSubject *sj = NULL;
    ck_assert_int_eq(store_get(s, "b", 0, STORE_LIST_MAX, &sj, err), SM_ABSENT);
    store_counts(s, &subjects, &samples);
    ck_assert_int_eq(subjects, 1);
    ck_assert_int_eq(samples, 2);

    /* The index follows: b is gone from identify, a's deleted sample too. */
    float q[DIM];
    IndexHit h[4];
    int n = 0;
    emb(20, q);
    ck_assert_int_eq(store_identify(s, q, 4, h, &n, err), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_str_eq(h[0].subject, "a");
    emb(11, q); /* a[1]'s embedding */
    ck_assert_int_eq(store_verify(s, "a", q, h, err), 0);
    ck_assert_int_ne(h[0].sample_id, a[1]);
    ck_assert_int_eq(store_verify(s, "b", q, h, err), SM_ABSENT);

    /* Deleting the last samples leaves an empty subject. */
    ck_assert_int_eq(store_delete_sample(s, "a", a[0], &remaining, err), 0);
    ck_assert_int_eq(store_delete_sample(s, "a", a[2], &remaining, err), 0);
    ck_assert_int_eq(remaining, 0);
    ck_assert_int_eq(store_get(s, "a", 0, STORE_LIST_MAX, &sj, err), 0);
    ck_assert_int_eq(sj->n_samples, 0);
    store_subject_free(sj);
    ck_assert_int_eq(store_verify(s, "a", q, h, err), STORE_EMPTY);
    ck_assert_int_eq(store_identify(s, q, 4, h, &n, err), 0);
    ck_assert_int_eq(n, 0);

    /* Sample ids are never handed out again. */
    int64_t again[1];
    enroll_n(s, "a", NULL, 1, 30, again);
    ck_assert_int_gt(again[0], b[1]);
    store_close(s);
    ck_assert_int_eq(raw_int("SELECT count(*) FROM samples WHERE subject_id = 'b'"), 0);
}
END_TEST

START_TEST(identify_and_verify) {
    Store *s = open_ok(FP_A, 0);
    char err[SM_ERRMAX];
    int64_t ids[3];
    for (int i = 0; i < 6; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%d", i);
        enroll_n(s, name, NULL, 3, (uint64_t)i * 100, NULL);
    }
    enroll_n(s, "s2", NULL, 1, 777, ids);
    float q[DIM];
    emb(777, q);
    IndexHit h[10];
    int n = 0;
    ck_assert_int_eq(store_identify(s, q, 10, h, &n, err), 0);
    ck_assert_int_eq(n, 6);
    ck_assert_str_eq(h[0].subject, "s2");
    ck_assert_int_eq(h[0].sample_id, ids[0]);
    ck_assert_float_eq_tol(h[0].distance, sqrtf(1e-7f), 1e-7f);
    for (int i = 1; i < n; i++)
        ck_assert(h[i].distance >= h[i - 1].distance);
    ck_assert_int_eq(store_verify(s, "s2", q, h, err), 0);
    ck_assert_int_eq(h[0].sample_id, ids[0]);
    ck_assert_int_eq(store_verify(s, "s4", q, h, err), 0);
    ck_assert_float_gt(h[0].distance, 0.01f);
    ck_assert_int_eq(store_verify(s, "nobody", q, h, err), SM_ABSENT);
    ck_assert_int_eq(store_verify(s, "bad id!", q, h, err), SM_ABSENT);
    q[0] = NAN;
    ck_assert_int_eq(store_identify(s, q, 3, h, &n, err), -EINVAL);
    store_close(s);
}
END_TEST

/* ---- Durability ---- */

START_TEST(survives_close_and_reopen) {
    Store *s = open_ok(FP_A, 0);
    char err[SM_ERRMAX];
    int64_t ids[4];
    enroll_n(s, "keep", "{\"k\":1}", 4, 50, ids);
    enroll_n(s, "other", NULL, 2, 60, NULL);
    ck_assert_int_eq(store_delete_subject(s, "other", NULL, err), 0);
    store_close(s);
    s = open_ok(FP_A, 0);
    StoreSubject *sj = NULL;
    ck_assert_int_eq(store_get(s, "keep", 0, STORE_LIST_MAX, &sj, err), 0);
    ck_assert_int_eq(sj->n_samples, 4);
    ck_assert_str_eq(sj->metadata, "{\"k\":1}");
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(sj->samples[i].id, ids[i]);
    store_subject_free(sj);
    ck_assert_int_eq(store_get(s, "other", 0, STORE_LIST_MAX, &sj, err), SM_ABSENT);
    int64_t subjects, samples;
    store_counts(s, &subjects, &samples);
    ck_assert_int_eq(subjects, 1);
    ck_assert_int_eq(samples, 4);
    /* The index was loaded from the database. */
    float q[DIM];
    IndexHit h;
    emb(52, q);
    ck_assert_int_eq(store_verify(s, "keep", q, &h, err), 0);
    ck_assert_int_eq(h.sample_id, ids[2]);
    store_close(s);
}
END_TEST

/* A child enrolls subject after subject and reports each success on a pipe;
 * the parent kills it with SIGKILL mid-stream. Every reported enroll must be
 * in the database afterwards. */
START_TEST(survives_kill_9) {
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        Store *s = NULL;
        char err[SM_ERRMAX];
        StoreConfig cfg = config(FP_A, 0);
        if (store_open(&cfg, &s, err) != 0)
            _exit(2);
        for (int i = 0;; i++) {
            char name[32];
            float e[DIM];
            int64_t id;
            emb((uint64_t)i, e);
            StoreSampleIn in = {.embedding = e};
            snprintf(name, sizeof name, "k%06d", i);
            if (store_enroll(s, name, NULL, &in, 1, &id, NULL, err) != 0)
                _exit(3);
            if (write(fds[1], &i, sizeof i) != sizeof i)
                _exit(4);
        }
    }
    close(fds[1]);
    int last = -1, v;
    while (last < 30 && read(fds[0], &v, sizeof v) == sizeof v)
        last = v;
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    close(fds[0]);
    ck_assert(WIFSIGNALED(status));
    ck_assert_int_ge(last, 30);

    Store *s = open_ok(FP_A, 0);
    char err[SM_ERRMAX], name[32];
    for (int i = 0; i <= last; i++) {
        StoreSubject *sj = NULL;
        snprintf(name, sizeof name, "k%06d", i);
        ck_assert_msg(store_get(s, name, 0, STORE_LIST_MAX, &sj, err) == 0, "lost %s", name);
        ck_assert_int_eq(sj->n_samples, 1);
        store_subject_free(sj);
    }
    store_close(s);
}
END_TEST

/* ---- Group commit ---- */

typedef struct {
    Store *s;
    int t;
    int64_t ids[50];
    int failures;
} Worker;

static void *worker(void *p) {
    Worker *w = p;
    char err[SM_ERRMAX], name[32];
    for (int i = 0; i < 50; i++) {
        float e[DIM];
        emb((uint64_t)(w->t * 1000 + i), e);
        StoreSampleIn in = {.embedding = e};
        /* Every tenth goes to one shared subject, the rest to their own. */
        if (i % 10 == 0)
            snprintf(name, sizeof name, "shared");
        else
            snprintf(name, sizeof name, "w%d-%d", w->t, i);
        if (store_enroll(w->s, name, NULL, &in, 1, &w->ids[i], NULL, err) != 0)
            w->failures++;
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

START_TEST(concurrent_enrolls_share_commits) {
    Store *s = open_ok(FP_A, 0);
    char err[SM_ERRMAX];
    Worker w[8];
    pthread_t th[8];
    for (int t = 0; t < 8; t++) {
        w[t] = (Worker){.s = s, .t = t};
        ck_assert_int_eq(pthread_create(&th[t], NULL, worker, &w[t]), 0);
    }
    int64_t all[400];
    for (int t = 0; t < 8; t++) {
        pthread_join(th[t], NULL);
        ck_assert_int_eq(w[t].failures, 0);
        memcpy(all + t * 50, w[t].ids, sizeof w[t].ids);
    }
    qsort(all, 400, sizeof all[0], cmp_i64);
    for (int i = 1; i < 400; i++)
        ck_assert_int_lt(all[i - 1], all[i]);
    int64_t subjects, samples;
    store_counts(s, &subjects, &samples);
    ck_assert_int_eq(subjects, 8 * 45 + 1);
    ck_assert_int_eq(samples, 400);
    StoreStats st;
    store_stats(s, &st);
    ck_assert_uint_eq(st.writes, 400);
    ck_assert_uint_ge(st.commits, 1);
    ck_assert_msg(st.commits < 400, "no group commit: %llu commits",
                  (unsigned long long)st.commits);
    ck_assert_uint_gt(st.batch_max, 1);
    StoreSubject *sj = NULL;
    ck_assert_int_eq(store_get(s, "shared", 0, STORE_LIST_MAX, &sj, err), 0);
    ck_assert_int_eq(sj->n_samples, 40);
    store_subject_free(sj);
    /* Each enrolled embedding identifies its own sample. */
    for (int t = 0; t < 8; t++) {
        float q[DIM];
        IndexHit h;
        int n = 0;
        emb((uint64_t)(t * 1000 + 7), q);
        ck_assert_int_eq(store_identify(s, q, 1, &h, &n, err), 0);
        ck_assert_int_eq(h.sample_id, w[t].ids[7]);
    }
    store_close(s);
    s = open_ok(FP_A, 0);
    store_counts(s, &subjects, &samples);
    ck_assert_int_eq(samples, 400);
    store_close(s);
}
END_TEST

/* ---- what main() in test_store.c adds to its one test case ---- */

/* store_get() pages a subject's samples: every sample once, in id order,
 * total and more consistent with the pages. */
START_TEST(get_pages_samples) {
    Store *s = open_ok(FP_A, 0);
    char err[SM_ERRMAX];
    int64_t ids[5];
    ck_assert_int_eq(enroll_n(s, "paged", "{}", 5, 300, ids), 5);
    int64_t after = 0;
    int seen = 0, pages = 0;
    for (;;) {
        StoreSubject *sj = NULL;
        ck_assert_int_eq(store_get(s, "paged", after, 2, &sj, err), 0);
        ck_assert_int_eq(sj->total, 5);
        ck_assert_int_le(sj->n_samples, 2);
        for (int i = 0; i < sj->n_samples; i++)
            ck_assert_int_eq(sj->samples[i].id, ids[seen++]);
        pages++;
        int more = sj->more;
        ck_assert_int_eq(more, seen < 5);
        after = sj->n_samples ? sj->samples[sj->n_samples - 1].id : after;
        store_subject_free(sj);
        if (!more)
            break;
    }
    ck_assert_int_eq(seen, 5);
    ck_assert_int_eq(pages, 3);
    StoreSubject *sj = NULL;
    ck_assert_int_eq(store_get(s, "paged", ids[4], 2, &sj, err), 0);
    ck_assert_int_eq(sj->n_samples, 0);
    ck_assert_int_eq(sj->more, 0);
    store_subject_free(sj);
    ck_assert_int_eq(store_get(s, "paged", 0, 0, &sj, err), -EINVAL);
    ck_assert_int_eq(store_get(s, "paged", 0, STORE_LIST_MAX + 1, &sj, err), -EINVAL);
    ck_assert_int_eq(store_get(s, "paged", -1, 2, &sj, err), -EINVAL);
    ck_assert_ptr_null(sj);
    store_close(s);
}
END_TEST

/* A sample's source is stored, found again, unique, and survives a reopen. */
START_TEST(sources_are_unique_and_found) {
    Store *s = open_ok(FP_A, 0);
    char err[SM_ERRMAX];
    int64_t ids[2];
    float e[2][DIM];
    emb(1, e[0]);
    emb(2, e[1]);
    StoreSampleIn in[2] = {{.embedding = e[0], .source = "/data/a/1.png"},
                           {.embedding = e[1], .source = "/data/a/2.png"}};
    ck_assert_int_eq(store_source_known(s, "/data/a/1.png", err), 0);
    ck_assert_int_eq(store_enroll(s, "a", NULL, in, 2, ids, NULL, err), 0);
    ck_assert_int_eq(store_source_known(s, "/data/a/1.png", err), 1);
    ck_assert_int_eq(store_source_known(s, "/data/a/3.png", err), 0);
    ck_assert_int_eq(store_source_known(s, "", err), 0);
    /* The same file again is refused, and nothing of that enroll is stored. */
    StoreSampleIn again[2] = {{.embedding = e[0], .source = "/data/a/3.png"},
                              {.embedding = e[1], .source = "/data/a/2.png"}};
    ck_assert_int_lt(store_enroll(s, "b", NULL, again, 2, ids, NULL, err), 0);
    ck_assert_int_eq(store_source_known(s, "/data/a/3.png", err), 0);
    int64_t subjects = 0, samples = 0;
    store_counts(s, &subjects, &samples);
    ck_assert_int_eq(samples, 2);
    StoreSampleIn empty = {.embedding = e[0], .source = ""};
    ck_assert_int_eq(store_enroll(s, "b", NULL, &empty, 1, ids, NULL, err), -EINVAL);
    store_close(s);
    s = open_ok(FP_A, 0);
    ck_assert_int_eq(store_source_known(s, "/data/a/2.png", err), 1);
    store_close(s);
}
END_TEST

void test_store_writes_add(TCase *tc) {
    tcase_add_test(tc, enroll_and_get);
    tcase_add_test(tc, get_pages_samples);
    tcase_add_test(tc, enroll_rejects_bad_input);
    tcase_add_test(tc, list_walks_every_page);
    tcase_add_test(tc, empty_store_lists_nothing);
    tcase_add_test(tc, deletes);
    tcase_add_test(tc, identify_and_verify);
    tcase_add_test(tc, survives_close_and_reopen);
    tcase_add_test(tc, survives_kill_9);
    tcase_add_test(tc, concurrent_enrolls_share_commits);
    tcase_add_test(tc, sources_are_unique_and_found);
}
