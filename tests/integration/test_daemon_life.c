/*
 * test_daemon_life.c — the daemon over its lifetime, each test with daemons
 * of its own (started and stopped inside the test):
 *   - what was enrolled (and deleted) survives SIGTERM and a restart, and
 *     survives kill -9 right after the reply acknowledged it;
 *   - 8 threads x 25 concurrent enrolls all succeed, all are listed, and the
 *     store committed them in fewer transactions than enrolls (group commit);
 *   - a model change is refused at start with a message naming --reembed;
 *     `siamesed --reembed` converts the store, after which distances are the
 *     new model's; without kept images --reembed refuses and changes nothing.
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon_harness.h"

/* A test's own daemon: scratch dir, database, numbered logs. */
typedef struct {
    Daemon d;
    char dir[320], db[400];
    int runs;
} Own;

static void own_init(Own *o, const char *tag) {
    memset(o, 0, sizeof *o);
    ck_assert_int_eq(scratch_dir(tag, o->dir, sizeof o->dir), 0);
    snprintf(o->db, sizeof o->db, "%s/siamesed.db", o->dir);
}

/* Starts o on model (extra flags may be NULL); 0 serving, -1 exited (the
 * wait status in o->d.status). The log of this run is o->d.log. */
static int own_start(Own *o, const char *model, const char *const *extra) {
    const char *args[16] = {"--model", model, "--db", o->db};
    int n = 4;
    char log[400];
    for (int i = 0; extra && extra[i]; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    snprintf(log, sizeof log, "%s/run%d.log", o->dir, ++o->runs);
    return daemon_start(&o->d, log, args);
}

static void own_start_ok(Own *o, const char *model, const char *const *extra) {
    if (own_start(o, model, extra) < 0) {
        log_dump(o->d.log);
        ck_abort_msg("the daemon did not start (wait status 0x%x)", o->d.status);
    }
}

static void own_stop_ok(Own *o) {
    int st = daemon_stop(&o->d);
    if (!exited_ok(st))
        log_dump(o->d.log);
    ck_assert_msg(exited_ok(st), "SIGTERM: wait status 0x%x, not exit 0", st);
    ck_assert_msg(!log_has_sanitizer_report(o->d.log), "sanitizer report in %s", o->d.log);
}

static double enroll_one(int port, const char *subject, const Buf *img, const char *metadata) {
    Field f[] = {TEXT("subject", subject), IMAGE("image", *img), JRAW("metadata", metadata)};
    Resp r = post_multipart(port, "/enroll", f, metadata ? 3 : 2, NULL);
    ASSERT_JSON(r, 201);
    double id = jnum(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "samples"), 0), "sample");
    resp_free(&r);
    return id;
}

static Resp identify(int port, const Buf *img, const char *k) {
    Field f[] = {IMAGE("image", *img), TEXT("k", k)};
    return post_multipart(port, "/identify", f, 2, NULL);
}

/* GET path on port, 200 expected; the parsed body (caller deletes). */
static cJSON *get_json(int port, const char *path) {
    Resp r = http_get(port, path);
    ASSERT_JSON(r, 200);
    cJSON *j = r.json;
    r.json = NULL;
    resp_free(&r);
    return j;
}

/* ---- persistence ---- */

START_TEST(persists_across_restart_and_kill9) {
    Own o;
    own_init(&o, "persist");
    Buf fm0 = img_file("fm0_c9.png"), fm2 = img_file("fm2_c1.png"), fm3 = img_file("fm3_c1.png");
    own_start_ok(&o, H.model_a, NULL);
    Resp none = identify(o.d.port, &fm0, "3"); /* an empty store: no matches */
    ASSERT_JSON(none, 200);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(none.json, "matches")), 0);
    resp_free(&none);
    enroll_one(o.d.port, "p-a", &fm0, "{\"who\":\"a\"}");
    enroll_one(o.d.port, "p-b", &fm2, NULL);
    Buf extra = img_pgm(77, 28, 28);
    enroll_one(o.d.port, "p-b", &extra, NULL);
    cJSON *list = get_json(o.d.port, "/subjects"), *pa = get_json(o.d.port, "/subjects/p-a");
    Resp id0 = identify(o.d.port, &fm0, "2");
    ASSERT_JSON(id0, 200);
    own_stop_ok(&o);

    /* After SIGTERM and a restart: the same list, subject and ranking. */
    own_start_ok(&o, H.model_a, NULL);
    cJSON *list2 = get_json(o.d.port, "/subjects"), *pa2 = get_json(o.d.port, "/subjects/p-a");
    ck_assert_msg(cJSON_Compare(list, list2, 1), "list changed across a restart");
    ck_assert_msg(cJSON_Compare(pa, pa2, 1), "subject changed across a restart");
    Resp id1 = identify(o.d.port, &fm0, "2");
    ASSERT_JSON(id1, 200);
    ck_assert_msg(cJSON_Compare(cJSON_GetObjectItem(id0.json, "matches"),
                                cJSON_GetObjectItem(id1.json, "matches"), 1),
                  "identify changed across a restart:\n%s\n%s", id0.body, id1.body);
    const cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(id1.json, "matches"), 0);
    ck_assert_str_eq(jstr(m, "subject"), "p-a");
    ck_assert_double_eq_tol(jnum(m, "distance"), SAME_DISTANCE, 1e-6);

    /* kill -9 right after an acknowledged enroll, then after a delete. */
    double idc = enroll_one(o.d.port, "p-c", &fm3, NULL);
    ck_assert(WIFSIGNALED(daemon_kill(&o.d)));
    own_start_ok(&o, H.model_a, NULL);
    cJSON *pc = get_json(o.d.port, "/subjects/p-c");
    ck_assert_double_eq(jnum(pc, "sample_count"), 1);
    ck_assert_double_eq(jnum(cJSON_GetArrayItem(cJSON_GetObjectItem(pc, "samples"), 0), "sample"),
                        idc);
    Resp id2 = identify(o.d.port, &fm3, "1");
    ASSERT_JSON(id2, 200);
    m = cJSON_GetArrayItem(cJSON_GetObjectItem(id2.json, "matches"), 0);
    ck_assert_str_eq(jstr(m, "subject"), "p-c");
    ck_assert_double_eq_tol(jnum(m, "distance"), SAME_DISTANCE, 1e-6);
    Resp del = http_delete(o.d.port, "/subjects/p-b");
    ASSERT_JSON(del, 200);
    ck_assert(WIFSIGNALED(daemon_kill(&o.d)));
    own_start_ok(&o, H.model_a, NULL);
    Resp gone = http_get(o.d.port, "/subjects/p-b");
    ASSERT_JSON(gone, 404);
    cJSON *pa3 = get_json(o.d.port, "/subjects/p-a");
    ck_assert(cJSON_Compare(pa, pa3, 1));
    own_stop_ok(&o);

    cJSON *all[] = {list, pa, list2, pa2, pc, pa3};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        cJSON_Delete(all[i]);
    Resp *rs[] = {&id0, &id1, &id2, &del, &gone};
    for (size_t i = 0; i < sizeof rs / sizeof *rs; i++)
        resp_free(rs[i]);
    buf_free(&fm0), buf_free(&fm2), buf_free(&fm3), buf_free(&extra);
}
END_TEST

/* ---- concurrency ---- */

enum { THREADS = 8, PER_THREAD = 25 };

typedef struct {
    int port, t, ok, connects;
    char err[300];
} Worker;

static void *enroll_worker(void *arg) {
    Worker *w = arg;
    http_keepalive_begin(); /* one easy handle per thread, one connection */
    for (int i = 0; i < PER_THREAD; i++) {
        char subject[32];
        snprintf(subject, sizeof subject, "c-%d-%02d", w->t, i);
        Buf img = img_pgm((uint32_t)(1000 + w->t * PER_THREAD + i), 28, 28);
        Field f[] = {TEXT("subject", subject), IMAGE("image", img)};
        Resp r = post_multipart(w->port, "/enroll", f, 2, NULL);
        if (r.status == 201 && jnum(r.json, "sample_count") == 1)
            w->ok++;
        else if (!*w->err)
            snprintf(w->err, sizeof w->err, "%s: %ld %.200s", subject, r.status, r.body);
        resp_free(&r);
        buf_free(&img);
    }
    w->connects = http_keepalive_end();
    return NULL;
}

/* Reads while the enrolls run: every answer a 200, identify sorted. */
typedef struct {
    int port, requests;
    atomic_int *stop;
    char err[300];
} Reader;

static void *read_worker(void *arg) {
    Reader *rd = arg;
    Buf img = img_pgm(1003, 28, 28);
    while (!atomic_load(rd->stop) && !*rd->err) {
        Resp r = identify(rd->port, &img, "10");
        double prev = 0;
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItem(r.json, "matches")) {
            if (jnum(m, "distance") < prev)
                snprintf(rd->err, sizeof rd->err, "identify not sorted: %.200s", r.body);
            prev = jnum(m, "distance");
        }
        if (r.status != 200)
            snprintf(rd->err, sizeof rd->err, "identify: %ld %.200s", r.status, r.body);
        resp_free(&r);
        r = http_get(rd->port, "/subjects?limit=50");
        if (r.status != 200)
            snprintf(rd->err, sizeof rd->err, "list: %ld %.200s", r.status, r.body);
        resp_free(&r);
        rd->requests += 2;
    }
    buf_free(&img);
    return NULL;
}

START_TEST(concurrent_enrolls_group_commit) {
    Own o;
    own_init(&o, "concurrent");
    const char *const extra[] = {"--threads", "4", NULL};
    own_start_ok(&o, H.model_a, extra);
    pthread_t th[THREADS];
    Worker w[THREADS];
    for (int t = 0; t < THREADS; t++) {
        w[t] = (Worker){.port = o.d.port, .t = t};
        ck_assert_int_eq(pthread_create(&th[t], NULL, enroll_worker, &w[t]), 0);
    }
    atomic_int stop = 0;
    pthread_t rth[2];
    Reader rd[2];
    for (int t = 0; t < 2; t++) {
        rd[t] = (Reader){.port = o.d.port, .stop = &stop};
        ck_assert_int_eq(pthread_create(&rth[t], NULL, read_worker, &rd[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    atomic_store(&stop, 1);
    for (int t = 0; t < 2; t++) {
        pthread_join(rth[t], NULL);
        ck_assert_msg(!*rd[t].err, "reader %d: %s", t, rd[t].err);
        ck_assert_int_gt(rd[t].requests, 0);
    }
    for (int t = 0; t < THREADS; t++) {
        ck_assert_msg(w[t].ok == PER_THREAD, "thread %d: %d of %d enrolled; first failure %s", t,
                      w[t].ok, PER_THREAD, w[t].err);
        ck_assert_msg(w[t].connects >= 1 && w[t].connects < PER_THREAD,
                      "thread %d: %d connections for %d requests: no keep-alive", t, w[t].connects,
                      PER_THREAD);
    }

    cJSON *list = get_json(o.d.port, "/subjects?limit=1000");
    const cJSON *subjects = cJSON_GetObjectItem(list, "subjects");
    ck_assert_int_eq(cJSON_GetArraySize(subjects), THREADS * PER_THREAD);
    for (int t = 0, k = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i++, k++) {
            char want[32];
            snprintf(want, sizeof want, "c-%d-%02d", t, i);
            const cJSON *s = cJSON_GetArrayItem(subjects, k); /* id order = this order */
            ck_assert_str_eq(jstr(s, "subject"), want);
            ck_assert_double_eq(jnum(s, "sample_count"), 1);
        }
    cJSON_Delete(list);

    Resp r = http_get(o.d.port, "/metrics");
    ASSERT_STATUS(r, 200);
    double commits = prom_sum(r.body, "siamesed_store_commits_total", NULL);
    double writes = prom_sum(r.body, "siamesed_store_writes_total", NULL);
    double subj = prom_sum(r.body, "siamesed_enrolled_subjects", NULL);
    resp_free(&r);
    ck_assert_double_eq(subj, THREADS * PER_THREAD);
    ck_assert_msg(writes >= THREADS * PER_THREAD, "store writes %g", writes);
    /* Whether enrolls overlap at the writer depends on how fast fsync is next
     * to request handling on this machine, so HTTP timing cannot promise a
     * shared commit (test_store proves the batching deterministically with
     * queued writers); here every commit must carry at least one enroll. */
    ck_assert_msg(commits >= 1 && commits <= writes, "%g commits for %g writes", commits, writes);
    fprintf(stderr, "concurrent enrolls: %d enrolls, %g commits\n", THREADS * PER_THREAD, commits);
    own_stop_ok(&o);
}
END_TEST

/* Many enrolls into one subject at once: it is created exactly once and
 * every enroll sees its own total, 1..N. */
typedef struct {
    int port, t, created, totals[PER_THREAD];
    char err[300];
} SameWorker;

enum { SAME_PER_THREAD = 5 };

static void *same_worker(void *arg) {
    SameWorker *w = arg;
    for (int i = 0; i < SAME_PER_THREAD; i++) {
        Buf img = img_pgm((uint32_t)(9000 + w->t * SAME_PER_THREAD + i), 28, 28);
        Field f[] = {TEXT("subject", "same-one"), IMAGE("image", img)};
        Resp r = post_multipart(w->port, "/enroll", f, 2, NULL);
        if (r.status == 201) {
            w->totals[i] = (int)jnum(r.json, "sample_count");
            w->created += cJSON_IsTrue(cJSON_GetObjectItem(r.json, "created"));
        } else if (!*w->err) {
            snprintf(w->err, sizeof w->err, "%ld %.200s", r.status, r.body);
        }
        resp_free(&r);
        buf_free(&img);
    }
    return NULL;
}

START_TEST(concurrent_enrolls_one_subject) {
    Own o;
    own_init(&o, "same");
    const char *const extra[] = {"--threads", "4", NULL};
    own_start_ok(&o, H.model_a, extra);
    pthread_t th[THREADS];
    SameWorker w[THREADS];
    for (int t = 0; t < THREADS; t++) {
        w[t] = (SameWorker){.port = o.d.port, .t = t};
        ck_assert_int_eq(pthread_create(&th[t], NULL, same_worker, &w[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    enum { N = THREADS * SAME_PER_THREAD };
    int seen[N + 1] = {0}, created = 0;
    for (int t = 0; t < THREADS; t++) {
        ck_assert_msg(!*w[t].err, "thread %d: %s", t, w[t].err);
        created += w[t].created;
        for (int i = 0; i < SAME_PER_THREAD; i++) {
            ck_assert_int_ge(w[t].totals[i], 1);
            ck_assert_int_le(w[t].totals[i], N);
            seen[w[t].totals[i]]++;
        }
    }
    ck_assert_int_eq(created, 1);
    for (int k = 1; k <= N; k++)
        ck_assert_msg(seen[k] == 1, "total %d reported %d times", k, seen[k]);
    cJSON *s = get_json(o.d.port, "/subjects/same-one");
    ck_assert_double_eq(jnum(s, "sample_count"), N);
    cJSON_Delete(s);
    own_stop_ok(&o);
}
END_TEST

/* ---- images near the store's size limit ---- */

/* A 4096x4096 PGM is within the pixel limits (with --max-request-pixels
 * raised to 16 Mpx) but, at 16777233 bytes, over
 * the store's 16 MiB cap on a kept image. With a --max-body that lets it in,
 * enroll must refuse it as too large (413, the rule of routes.c) when images
 * are kept, and take it when they are not (nothing is kept then). */
static void big_enroll(const char *const *extra, int want, const char *code) {
    Buf big = img_pgm(4242, 4096, 4096);
    ck_assert_uint_gt(big.len, 16u << 20);
    Field f[] = {TEXT("subject", "big-one"), IMAGE("image", big)};
    Own o;
    own_init(&o, "bigimage");
    own_start_ok(&o, H.model_a, extra);
    Resp r = post_multipart(o.d.port, "/embed", f + 1, 1, NULL);
    ASSERT_JSON(r, 200);
    resp_free(&r);
    r = post_multipart(o.d.port, "/enroll", f, 2, NULL);
    int ok = r.status == want && (!code || (error_code(&r) && !strcmp(error_code(&r), code)));
    char msg[400];
    snprintf(msg, sizeof msg, "%ld %.300s", r.status, r.body);
    resp_free(&r);
    own_stop_ok(&o);
    buf_free(&big);
    ck_assert_msg(ok, "enroll of a %s image: %s (want %d %s)", "16777233-byte", msg, want,
                  code ? code : "");
}

START_TEST(kept_image_over_the_cap_is_413) {
    const char *const keep[] = {"--max-body", "32M", "--max-request-pixels", "16777216", NULL};
    big_enroll(keep, 413, "image_too_large");
}
END_TEST

START_TEST(unkept_big_image_enrolls) {
    const char *const nokeep[] = {
        "--max-body", "32M", "--keep-images", "no", "--max-request-pixels", "16777216", NULL};
    big_enroll(nokeep, 201, NULL);
}
END_TEST

/* ---- one store, one daemon ---- */

/* A second daemon on a database another daemon is serving: either it is
 * refused, or what it answers agrees with the database (store.h: "a write
 * that returned is visible to every later read"). An index loaded at start
 * and never refreshed would say "subject_empty" for a subject GET shows with
 * samples. */
START_TEST(second_daemon_on_the_same_database) {
    Own a, b;
    own_init(&a, "twice");
    own_start_ok(&a, H.model_a, NULL);
    b = a;
    b.d = (Daemon){0};
    int serving = own_start(&b, H.model_a, NULL) == 0;
    if (serving) {
        Buf fm0 = img_file("fm0_c9.png");
        enroll_one(a.d.port, "twice-1", &fm0, NULL);
        cJSON *s = get_json(b.d.port, "/subjects/twice-1");
        ck_assert_double_eq(jnum(s, "sample_count"), 1);
        cJSON_Delete(s);
        double d = 0;
        Field f[] = {TEXT("subject", "twice-1"), IMAGE("image", fm0)};
        Resp r = post_multipart(b.d.port, "/verify", f, 2, NULL);
        long status = r.status;
        if (status == 200)
            d = jnum(r.json, "distance");
        char body[300];
        snprintf(body, sizeof body, "%.280s", r.body);
        resp_free(&r);
        buf_free(&fm0);
        own_stop_ok(&b);
        own_stop_ok(&a);
        ck_assert_msg(status == 200 && fabs(d - SAME_DISTANCE) < 1e-6,
                      "a second daemon on the same database serves a stale index: GET "
                      "/subjects/twice-1 shows 1 sample, verify answers %ld %s",
                      status, body);
    } else {
        ck_assert_msg(WIFEXITED(b.d.status) && WEXITSTATUS(b.d.status) != 0,
                      "second daemon: wait status 0x%x", b.d.status);
        own_stop_ok(&a);
    }
}
END_TEST

/* A model file that does not exist (and --train-if-missing no): exit 1 with a
 * message naming it; SIGINT stops a serving daemon as cleanly as SIGTERM. */
START_TEST(missing_model_and_sigint) {
    Own o;
    own_init(&o, "nomodel");
    char missing[400];
    snprintf(missing, sizeof missing, "%s/no-such-model.safetensors", o.dir);
    ck_assert_int_lt(own_start(&o, missing, NULL), 0);
    ck_assert_msg(WIFEXITED(o.d.status) && WEXITSTATUS(o.d.status) == 1, "wait status 0x%x",
                  o.d.status);
    ck_assert_msg(file_has(o.d.log, "no-such-model.safetensors"),
                  "the error does not name the file");
    own_start_ok(&o, H.model_a, NULL);
    int st = daemon_signal_stop(&o.d, SIGINT);
    ck_assert_msg(exited_ok(st), "SIGINT: wait status 0x%x", st);
}
END_TEST

/* SIGTERM while a request is half-sent: the daemon stops accepting new
 * connections but finishes the request (its body arriving after the signal)
 * and then exits 0. */
START_TEST(finishes_requests_in_flight) {
    Own o;
    own_init(&o, "inflight");
    own_start_ok(&o, H.model_a, NULL);
    Buf fm0 = img_file("fm0_c9.png");
    Buf body = body_json((Field[]){IMAGE("image", fm0)}, 1);
    char head[256];
    snprintf(head, sizeof head,
             "POST /embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
             body.len);
    int fd = raw_connect(o.d.port);
    ck_assert_int_ge(fd, 0);
    size_t half = body.len / 2;
    ck_assert(send(fd, head, strlen(head), MSG_NOSIGNAL) == (ssize_t)strlen(head));
    ck_assert(send(fd, body.p, half, MSG_NOSIGNAL) == (ssize_t)half);
    usleep(100000);
    kill(o.d.pid, SIGTERM);
    /* The listening socket closes soon after the signal; on a loaded
     * machine "soon" has been more than 300 ms, so wait up to 10 s for it. */
    int late = -1;
    for (double t = now_s(); now_s() - t < 10; usleep(50000)) {
        if ((late = raw_connect(o.d.port)) < 0)
            break;
        close(late);
    }
    ck_assert_msg(late < 0, "new connections are still accepted 10 s after SIGTERM");
    ck_assert(send(fd, body.p + half, body.len - half, MSG_NOSIGNAL) == (ssize_t)(body.len - half));
    Buf got = {0};
    char chunk[4096];
    ssize_t k;
    while ((k = recv(fd, chunk, sizeof chunk, 0)) > 0)
        buf_add(&got, chunk, (size_t)k);
    close(fd);
    ck_assert_msg(got.p && strncmp((char *)got.p, "HTTP/1.1 200", 12) == 0, "reply: %.300s",
                  got.p ? (char *)got.p : "(nothing)");
    ck_assert_ptr_nonnull(strstr((char *)got.p, "\"embeddings\""));
    double t0 = now_s();
    int st = daemon_wait(&o.d, 30); /* no second signal: see the next test */
    ck_assert_msg(exited_ok(st), "wait status 0x%x", st);
    /* Short of the 10 s grace period (STOP_GRACE_S) it would otherwise wait out. */
    ck_assert_msg(now_s() - t0 < 8, "the stop took %.1f s after the last request", now_s() - t0);
    ck_assert(!log_has_sanitizer_report(o.d.log));
    buf_free(&got), buf_free(&body), buf_free(&fm0);
}
END_TEST

/* A second signal while the daemon waits for a request in flight must not
 * kill it (serve.c: "only the main thread, in sigwait(), ever sees them").
 * The request is an upload left half-sent; closing it lets the stop finish. */
START_TEST(second_signal_during_shutdown) {
    Own o;
    own_init(&o, "signals");
    own_start_ok(&o, H.model_a, NULL);
    const char *rq =
        "POST /verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n{\"a\":";
    int fd = raw_connect(o.d.port);
    ck_assert_int_ge(fd, 0);
    ck_assert(send(fd, rq, strlen(rq), MSG_NOSIGNAL) == (ssize_t)strlen(rq));
    usleep(100000);
    kill(o.d.pid, SIGTERM);
    usleep(300000); /* now in the grace period, past sigwait() */
    kill(o.d.pid, SIGINT);
    usleep(100000);
    close(fd);
    int st = daemon_stop(&o.d);
    ck_assert_msg(exited_ok(st), "two signals: wait status 0x%x (%s)", st,
                  WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "exit code");
}
END_TEST

/* ---- TLS ---- */

START_TEST(serves_https) {
    char cert[600], key[600];
    snprintf(cert, sizeof cert, "%s/tests/data/tls/cert.pem", H.srcroot);
    snprintf(key, sizeof key, "%s/tests/data/tls/key.pem", H.srcroot);
    const char *const tls[] = {"--tls-cert", cert, "--tls-key", key, NULL};
    Own o;
    own_init(&o, "tls");
    own_start_ok(&o, H.model_a, tls);
    Buf fm0 = img_file("fm0_c9.png");
    Buf body = body_json((Field[]){IMAGE("a", fm0), IMAGE("b", fm0)}, 2);
    Resp r = http(o.d.port, &(Req){.method = "POST",
                                   .path = "/verify",
                                   .ctype = "application/json",
                                   .body = body.p,
                                   .len = body.len,
                                   .ca = cert});
    ASSERT_JSON(r, 200);
    ck_assert_double_eq_tol(jnum(r.json, "distance"), SAME_DISTANCE, 1e-6);
    resp_free(&r);
    /* Plain HTTP on the TLS port gets no HTTP answer. */
    r = http_get(o.d.port, "/healthz");
    ck_assert_msg(r.status != 200, "plain HTTP answered on the TLS port");
    resp_free(&r);
    r = http(o.d.port, &(Req){.method = "GET", .path = "/healthz", .ca = cert});
    ASSERT_JSON(r, 200);
    resp_free(&r);
    own_stop_ok(&o);
    buf_free(&body), buf_free(&fm0);
}
END_TEST

/* ---- model change ---- */

static double verify_subject_d(int port, const char *subject, const Buf *img) {
    Field f[] = {TEXT("subject", subject), IMAGE("image", *img)};
    Resp r = post_multipart(port, "/verify", f, 2, NULL);
    ASSERT_JSON(r, 200);
    double d = jnum(r.json, "distance");
    resp_free(&r);
    return d;
}

static double verify_pair_d(int port, const Buf *a, const Buf *b) {
    Field f[] = {IMAGE("a", *a), IMAGE("b", *b)};
    Resp r = post_multipart(port, "/verify", f, 2, NULL);
    ASSERT_JSON(r, 200);
    double d = jnum(r.json, "distance");
    resp_free(&r);
    return d;
}

/* Starting on model must fail with a non-zero exit naming --reembed. */
static void start_refused(Own *o, const char *model) {
    ck_assert_msg(own_start(o, model, NULL) < 0, "a daemon served a store of another model");
    ck_assert_msg(WIFEXITED(o->d.status) && WEXITSTATUS(o->d.status) != 0,
                  "refused start: wait status 0x%x", o->d.status);
    ck_assert_msg(file_has(o->d.log, "--reembed"), "the refusal does not name --reembed");
    ck_assert(!log_has_sanitizer_report(o->d.log));
}

static int reembed(Own *o, const char *model) {
    char log[400];
    snprintf(log, sizeof log, "%s/reembed%d.log", o->dir, ++o->runs);
    const char *const args[] = {"--reembed",          "--model", model, "--db", o->db,
                                "--train-if-missing", "no",      NULL};
    int st = tool_run(log, args);
    if (log_has_sanitizer_report(log))
        log_dump(log);
    ck_assert_msg(!log_has_sanitizer_report(log), "sanitizer report from --reembed");
    snprintf(o->d.log, sizeof o->d.log, "%s", log);
    return st;
}

START_TEST(model_change_needs_reembed) {
    Own o;
    own_init(&o, "reembed");
    Buf fm0 = img_file("fm0_c9.png"), fm2 = img_file("fm2_c1.png");
    own_start_ok(&o, H.model_a, NULL);
    double ida = enroll_one(o.d.port, "r-a", &fm0, NULL);
    enroll_one(o.d.port, "r-b", &fm2, NULL);
    double da = verify_subject_d(o.d.port, "r-a", &fm2);
    ck_assert_double_eq_tol(da, verify_pair_d(o.d.port, &fm0, &fm2), 1e-5);
    cJSON *model_a = get_json(o.d.port, "/model");
    own_stop_ok(&o);

    start_refused(&o, H.model_b);
    int st = reembed(&o, H.model_b);
    if (!exited_ok(st))
        log_dump(o.d.log);
    ck_assert_msg(exited_ok(st), "--reembed: wait status 0x%x", st);

    own_start_ok(&o, H.model_b, NULL);
    cJSON *model_b = get_json(o.d.port, "/model");
    ck_assert_str_ne(jstr(model_a, "fingerprint"), jstr(model_b, "fingerprint"));
    double db = verify_subject_d(o.d.port, "r-a", &fm2), pair = verify_pair_d(o.d.port, &fm0, &fm2);
    ck_assert_msg(fabs(db - pair) < 1e-5, "subject distance %.9g, pair distance %.9g under B", db,
                  pair);
    ck_assert_msg(fabs(db - da) > 1e-4, "distance unchanged by the new model (%.9g)", db);
    ck_assert_double_eq_tol(verify_subject_d(o.d.port, "r-a", &fm0), SAME_DISTANCE, 1e-6);
    Resp r = identify(o.d.port, &fm2, "2");
    ASSERT_JSON(r, 200);
    ck_assert_str_eq(jstr(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "matches"), 0), "subject"),
                     "r-b");
    resp_free(&r);
    cJSON *ra = get_json(o.d.port, "/subjects/r-a");
    ck_assert_double_eq(jnum(cJSON_GetArrayItem(cJSON_GetObjectItem(ra, "samples"), 0), "sample"),
                        ida);
    cJSON_Delete(ra);
    own_stop_ok(&o);

    /* And back: model A is now the stranger. */
    start_refused(&o, H.model_a);
    cJSON_Delete(model_a);
    cJSON_Delete(model_b);
    buf_free(&fm0), buf_free(&fm2);
}
END_TEST

/* A new model with another embedding size (64): --reembed converts the
 * store, and everything answers in 64 dimensions. */
START_TEST(reembed_to_another_embedding_size) {
    Own o;
    own_init(&o, "reembed64");
    char model_c[400];
    snprintf(model_c, sizeof model_c, "%s/model-c.safetensors", o.dir);
    ck_assert_int_eq(model_make(model_c, 33, "128,64"), 0);
    Buf fm0 = img_file("fm0_c9.png"), fm2 = img_file("fm2_c1.png");
    own_start_ok(&o, H.model_a, NULL);
    enroll_one(o.d.port, "w-a", &fm0, NULL);
    enroll_one(o.d.port, "w-b", &fm2, NULL);
    own_stop_ok(&o);
    start_refused(&o, model_c);
    int st = reembed(&o, model_c);
    if (!exited_ok(st))
        log_dump(o.d.log);
    ck_assert_msg(exited_ok(st), "--reembed to 64-d: wait status 0x%x", st);
    own_start_ok(&o, model_c, NULL);
    cJSON *m = get_json(o.d.port, "/model");
    ck_assert_double_eq(jnum(m, "embedding_size"), 64);
    cJSON_Delete(m);
    Field e[] = {IMAGE("image", fm0)};
    Resp r = post_multipart(o.d.port, "/embed", e, 1, NULL);
    ASSERT_JSON(r, 200);
    ck_assert_int_eq(
        cJSON_GetArraySize(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "embeddings"), 0)), 64);
    resp_free(&r);
    ck_assert_double_eq_tol(verify_subject_d(o.d.port, "w-b", &fm0),
                            verify_pair_d(o.d.port, &fm2, &fm0), 1e-5);
    ck_assert_double_eq_tol(verify_subject_d(o.d.port, "w-a", &fm0), SAME_DISTANCE, 1e-6);
    r = identify(o.d.port, &fm2, "2");
    ASSERT_JSON(r, 200);
    ck_assert_str_eq(jstr(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "matches"), 0), "subject"),
                     "w-b");
    resp_free(&r);
    enroll_one(o.d.port, "w-c", &fm0, NULL); /* new samples are 64-d too */
    own_stop_ok(&o);
    own_start_ok(&o, model_c, NULL);
    ck_assert_double_eq_tol(verify_subject_d(o.d.port, "w-c", &fm0), SAME_DISTANCE, 1e-6);
    own_stop_ok(&o);
    buf_free(&fm0), buf_free(&fm2);
}
END_TEST

START_TEST(reembed_needs_kept_images) {
    Own o;
    own_init(&o, "noimages");
    Buf fm0 = img_file("fm0_c9.png");
    const char *const no_images[] = {"--keep-images", "no", NULL};
    own_start_ok(&o, H.model_a, no_images);
    enroll_one(o.d.port, "k-a", &fm0, NULL);
    own_stop_ok(&o);
    start_refused(&o, H.model_b);
    int st = reembed(&o, H.model_b);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 0,
                  "--reembed without kept images: wait status 0x%x", st);
    ck_assert_msg(file_has(o.d.log, "no kept image"), "--reembed does not say why it failed");
    /* Nothing changed: model A still serves the store. */
    own_start_ok(&o, H.model_a, NULL);
    ck_assert_double_eq_tol(verify_subject_d(o.d.port, "k-a", &fm0), SAME_DISTANCE, 1e-6);
    own_stop_ok(&o);
    buf_free(&fm0);
}
END_TEST

TCase *tcase_lifecycle(void) {
    TCase *tc = tcase_create("lifecycle");
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, persists_across_restart_and_kill9);
    tcase_add_test(tc, concurrent_enrolls_group_commit);
    tcase_add_test(tc, concurrent_enrolls_one_subject);
    tcase_add_test(tc, second_daemon_on_the_same_database);
    tcase_add_test(tc, missing_model_and_sigint);
    tcase_add_test(tc, finishes_requests_in_flight);
    tcase_add_test(tc, second_signal_during_shutdown);
    tcase_add_test(tc, serves_https);
    tcase_add_test(tc, kept_image_over_the_cap_is_413);
    tcase_add_test(tc, unkept_big_image_enrolls);
    tcase_add_test(tc, model_change_needs_reembed);
    tcase_add_test(tc, reembed_to_another_embedding_size);
    tcase_add_test(tc, reembed_needs_kept_images);
    return tc;
}
