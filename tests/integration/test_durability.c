/*
 * test_durability.c — what the daemon's store promises when things go wrong
 * (store.h: "a write that returned success survives kill -9"; "-ENOSPC ...
 * nothing stored is lost, and writes work again once there is room"):
 *   - crash: six threads enroll unique subjects while the daemon is killed
 *     with SIGKILL at a seeded random moment 50-400 ms into the load, twenty
 *     times over one database; after each restart every enroll that was
 *     answered 201 is there with its sample ids, identify finds it, no enroll
 *     is half-stored and PRAGMA integrity_check says "ok";
 *   - full: --max-db-size reached, and a real full filesystem (a 3 MiB
 *     tmpfs) — enroll answers 507 with a JSON error, everything acknowledged
 *     before stays readable, and room made (a delete, a removed file) makes
 *     enroll work again;
 *   - corrupt files at start-up (test_durability_files.c).
 *
 * usage: test_durability SIAMESED MKMODEL SRCROOT   (meson passes all three)
 * Run one case with CK_RUN_CASE=crash|full|files. The figures the report
 * quotes (trials, acknowledged enrolls, losses, fill counts) are printed to
 * stderr with the prefix "durability:".
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "prove_util.h"
#include "test_durability.h"

/* ---- the database, read behind the daemon's back ---- */

/* The first column of the first row of sql on a read-only connection to db,
 * as text (or the SQLite error) in out. WAL lets this run while the daemon
 * writes. */
void db_text(const char *db, const char *sql, char *out, size_t size) {
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(h, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(out, size, "%s", t ? (const char *)t : "NULL");
    } else {
        snprintf(out, size, "sqlite error %d: %s", rc, h ? sqlite3_errmsg(h) : "open");
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
}

long long db_int(const char *db, const char *sql) {
    char t[256];
    db_text(db, sql, t, sizeof t);
    char *end;
    long long v = strtoll(t, &end, 10);
    ck_assert_msg(*t && !*end, "%s: %s", sql, t);
    return v;
}

/* integrity_check "ok", every subject has exactly per_subject samples (no
 * enroll half-stored) when per_subject > 0, and what the daemon counts
 * (/metrics) is what the database holds. */
static void db_sound_ok(const char *db, int port, int per_subject) {
    char res[512];
    db_text(db, "PRAGMA integrity_check", res, sizeof res);
    ck_assert_msg(strcmp(res, "ok") == 0, "integrity_check: %s", res);
    if (per_subject > 0) {
        char sql[200];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM (SELECT subject_id FROM samples GROUP BY subject_id "
                 "HAVING count(*) <> %d)",
                 per_subject);
        ck_assert_int_eq(db_int(db, sql), 0);
        ck_assert_int_eq(
            db_int(db, "SELECT count(*) FROM subjects WHERE id NOT IN (SELECT subject_id FROM "
                       "samples)"),
            0);
    }
    Resp r = http_get(port, "/metrics");
    ASSERT_STATUS(r, 200);
    double subjects = prom_sum(r.body, "siamesed_enrolled_subjects", NULL),
           samples = prom_sum(r.body, "siamesed_enrolled_samples", NULL);
    resp_free(&r);
    ck_assert_double_eq(subjects, (double)db_int(db, "SELECT count(*) FROM subjects"));
    ck_assert_double_eq(samples, (double)db_int(db, "SELECT count(*) FROM samples"));
}

/* ---- enrolls and their acknowledgements ---- */

/* n images img_pgm(seed), img_pgm(seed + 1), ... under subject. */
static Resp enroll_seeded(int port, const char *subject, uint32_t seed, int n) {
    Buf im[2];
    Field f[3] = {TEXT("subject", subject)};
    for (int i = 0; i < n; i++) {
        im[i] = img_pgm(seed + (uint32_t)i, 28, 28);
        f[1 + i] = IMAGE("image", im[i]);
    }
    Resp r = post_multipart(port, "/enroll", f, 1 + n, NULL);
    for (int i = 0; i < n; i++)
        buf_free(&im[i]);
    return r;
}

/* Records a 201 reply of n samples into a; 0, or -1 if it is not one. */
static int ack_take(Ack *a, const Resp *r, int n) {
    const cJSON *s = cJSON_GetObjectItem(r->json, "samples");
    if (r->status != 201 || cJSON_GetArraySize(s) != n)
        return -1;
    a->n = n;
    for (int k = 0; k < n; k++)
        a->ids[k] = (int64_t)jnum(cJSON_GetArrayItem(s, k), "sample");
    return 0;
}

/* 1 if GET /subjects/{subject} shows exactly the acknowledged sample ids. */
static int ack_present(int port, const Ack *a) {
    char path[80];
    snprintf(path, sizeof path, "/subjects/%s", a->subject);
    Resp r = http_get(port, path);
    const cJSON *s = cJSON_GetObjectItem(r.json, "samples");
    int ok = r.status == 200 && cJSON_GetArraySize(s) == a->n;
    for (int k = 0; ok && k < a->n; k++)
        ok = jnum(cJSON_GetArrayItem(s, k), "sample") == (double)a->ids[k];
    resp_free(&r);
    return ok;
}

int acks_missing(int port, const Ack *a, int n, char *first, size_t size) {
    int missing = 0;
    for (int i = 0; i < n; i++)
        if (!ack_present(port, &a[i]) && missing++ == 0)
            snprintf(first, size, "%s (sample %lld)", a[i].subject, (long long)a[i].ids[0]);
    return missing;
}

/* identify with the ack's first image: its subject first, at distance ~0. */
void identify_finds_ok(int port, const Ack *a) {
    Buf img = img_pgm(a->seed, 28, 28);
    Field f[] = {IMAGE("image", img), TEXT("k", "3")};
    Resp r = post_multipart(port, "/identify", f, 2, NULL);
    ASSERT_JSON(r, 200);
    const cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "matches"), 0);
    ck_assert_msg(jstr(m, "subject") && strcmp(jstr(m, "subject"), a->subject) == 0,
                  "identify of %s's image: %.300s", a->subject, r.body);
    ck_assert_double_eq_tol(jnum(m, "distance"), SAME_DISTANCE, 1e-6);
    resp_free(&r);
    buf_free(&img);
}

/* ---- kill -9 under concurrent enrolls ---- */

enum { TRIALS = 20, CRASH_THREADS = 6, WORKER_ACKS = 4000 };

typedef struct {
    int port, trial, t, n_acks;
    atomic_int *stop;
    Ack *acks;
    char err[300]; /* an answer other than 201 (a dead connection is expected) */
} CrashWorker;

static void *crash_worker(void *arg) {
    CrashWorker *w = arg;
    http_keepalive_begin();
    for (int i = 0; !atomic_load(w->stop) && w->n_acks < WORKER_ACKS; i++) {
        Ack *a = &w->acks[w->n_acks];
        *a = (Ack){.seed = (uint32_t)(w->trial * 1000000 + w->t * 100000 + i * 2)};
        snprintf(a->subject, sizeof a->subject, "k%02d-%d-%05d", w->trial, w->t, i);
        Resp r = enroll_seeded(w->port, a->subject, a->seed, 2);
        long status = r.status;
        if (ack_take(a, &r, 2) == 0)
            w->n_acks++;
        else if (status != 0)
            snprintf(w->err, sizeof w->err, "%s: %ld %.200s", a->subject, status, r.body);
        resp_free(&r);
        if (status != 201)
            break; /* 0: the daemon is gone */
    }
    http_keepalive_end();
    return NULL;
}

/* One trial: load, SIGKILL after kill_ms, join; the acks in acks (returned
 * count). The daemon is down afterwards. */
static int crash_trial(Own *o, int trial, int kill_ms, Ack *acks) {
    pthread_t th[CRASH_THREADS];
    CrashWorker w[CRASH_THREADS];
    atomic_int stop = 0;
    for (int t = 0; t < CRASH_THREADS; t++) {
        w[t] = (CrashWorker){.port = o->d.port,
                             .trial = trial,
                             .t = t,
                             .stop = &stop,
                             .acks = acks + t * WORKER_ACKS};
        ck_assert_int_eq(pthread_create(&th[t], NULL, crash_worker, &w[t]), 0);
    }
    usleep((useconds_t)kill_ms * 1000);
    int st = daemon_kill(&o->d);
    atomic_store(&stop, 1);
    for (int t = 0; t < CRASH_THREADS; t++)
        pthread_join(th[t], NULL);
    ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
                  "the daemon was not killed by SIGKILL (wait status 0x%x)", st);
    int n = 0;
    for (int t = 0; t < CRASH_THREADS; t++) {
        ck_assert_msg(!*w[t].err, "trial %d thread %d: %s", trial, t, w[t].err);
        memmove(acks + n, acks + t * WORKER_ACKS, (size_t)w[t].n_acks * sizeof *acks);
        n += w[t].n_acks;
        if (w[t].n_acks) /* the last acknowledged enroll, the nearest to the kill */
            acks[n - 1].last = 1;
    }
    return n;
}

/* Every ack of every trial is in the database, read with SQL. */
static int acks_missing_sql(const char *db, const Ack *a, int n) {
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    int missing = 0;
    ck_assert_int_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_prepare_v2(h,
                                        "SELECT id FROM samples WHERE subject_id = ?1 ORDER BY id",
                                        -1, &st, NULL),
                     SQLITE_OK);
    for (int i = 0; i < n; i++) {
        sqlite3_bind_text(st, 1, a[i].subject, -1, SQLITE_STATIC);
        int k = 0, ok = 1;
        for (; sqlite3_step(st) == SQLITE_ROW; k++)
            if (k >= a[i].n || sqlite3_column_int64(st, 0) != a[i].ids[k])
                ok = 0;
        missing += !(ok && k == a[i].n);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    sqlite3_close(h);
    return missing;
}

START_TEST(kill9_under_concurrent_enrolls) {
    Own o;
    own_init_ok(&o, "crash");
    const char *const extra[] = {"--threads", "4", NULL};
    Rng rng = {0x5eedc4a5ull};
    Ack *acks = calloc(CRASH_THREADS * WORKER_ACKS, sizeof *acks);
    Ack *all = calloc((size_t)TRIALS * CRASH_THREADS * WORKER_ACKS / 8, sizeof *all);
    int n_all = 0, cap_all = TRIALS * CRASH_THREADS * WORKER_ACKS / 8, lost = 0;
    int kill_min = 1000, kill_max = 0, fewest = 1 << 30, most = 0;
    ck_assert(acks && all);
    double t0 = now_s();
    own_start_ok(&o, H.model_a, extra);
    for (int trial = 0; trial < TRIALS; trial++) {
        int kill_ms = rng_range(&rng, 50, 400);
        int n = crash_trial(&o, trial, kill_ms, acks);
        kill_min = kill_ms < kill_min ? kill_ms : kill_min;
        kill_max = kill_ms > kill_max ? kill_ms : kill_max;
        fewest = n < fewest ? n : fewest;
        most = n > most ? n : most;
        own_start_ok(&o, H.model_a, extra);
        char first[200] = "";
        int missing = acks_missing(o.d.port, acks, n, first, sizeof first);
        lost += missing;
        ck_assert_msg(missing == 0,
                      "trial %d (kill at %d ms): %d of %d acknowledged enrolls lost, first %s",
                      trial, kill_ms, missing, n, first);
        for (int i = 0; i < n; i++)
            if (acks[i].last)
                identify_finds_ok(o.d.port, &acks[i]);
        db_sound_ok(o.db, o.d.port, 2);
        ck_assert_int_le(n_all + n, cap_all);
        memcpy(all + n_all, acks, (size_t)n * sizeof *acks);
        n_all += n;
    }
    own_stop_ok(&o);
    own_logs_clean_ok(&o);
    int missing = acks_missing_sql(o.db, all, n_all);
    char res[256];
    db_text(o.db, "PRAGMA integrity_check", res, sizeof res);
    long long stored = db_int(o.db, "SELECT count(*) FROM subjects");
    fprintf(stderr,
            "durability: %d kill -9 trials (kill at %d..%d ms into 6-thread enroll load), %d "
            "enrolls acknowledged (%d..%d per trial), %d lost after restart, %d missing at the "
            "end, %lld more stored whole though their answer never arrived, none half-stored; "
            "integrity_check %s; %.1f s\n",
            TRIALS, kill_min, kill_max, n_all, fewest, most, lost, missing, stored - n_all, res,
            now_s() - t0);
    ck_assert_int_eq(missing, 0);
    ck_assert_str_eq(res, "ok");
    ck_assert_msg(n_all >= TRIALS, "only %d enrolls acknowledged in %d trials", n_all, TRIALS);
    free(acks);
    free(all);
}
END_TEST

/* ---- full: the size cap ---- */

/* Enrolls prefix-NNNN (one image, seed0 + i) until an answer is not 201; that
 * one must be 507 insufficient_storage. Returns how many were acknowledged. */
static int fill_until_507(int port, const char *prefix, uint32_t seed0, Ack *acks, int max) {
    for (int i = 0; i < max; i++) {
        Ack *a = &acks[i];
        a->seed = seed0 + (uint32_t)i;
        snprintf(a->subject, sizeof a->subject, "%s-%04d", prefix, i);
        Resp r = enroll_seeded(port, a->subject, a->seed, 1);
        if (ack_take(a, &r, 1) < 0) {
            ck_assert_msg(r.status == 507 && error_code(&r) &&
                              strcmp(error_code(&r), "insufficient_storage") == 0,
                          "enroll %d: %ld %.300s (want 201 or 507 insufficient_storage)", i,
                          r.status, r.body);
            resp_free(&r);
            return i;
        }
        resp_free(&r);
    }
    ck_abort_msg("%d enrolls and no 507", max);
    return max;
}

/* A store that answered 507 to the enroll a[n]: everything acknowledged
 * reads back, verify, identify and /healthz work, and the refused enroll,
 * asked again, is refused again with nothing of it stored. */
static void full_store_checks_ok(int port, const Ack *a, int n) {
    char first[200] = "", path[80];
    int missing = acks_missing(port, a, n, first, sizeof first);
    ck_assert_msg(missing == 0,
                  "%d of %d acknowledged enrolls unreadable on a full store, first %s", missing, n,
                  first);
    Buf img = img_pgm(a[0].seed, 28, 28);
    Field f[] = {TEXT("subject", a[0].subject), IMAGE("image", img)};
    Resp r = post_multipart(port, "/verify", f, 2, NULL);
    ASSERT_JSON(r, 200);
    ck_assert_double_eq_tol(jnum(r.json, "distance"), SAME_DISTANCE, 1e-6);
    resp_free(&r);
    buf_free(&img);
    identify_finds_ok(port, &a[n - 1]);
    r = http_get(port, "/healthz");
    ASSERT_JSON(r, 200);
    resp_free(&r);
    r = enroll_seeded(port, a[n].subject, a[n].seed, 1);
    ck_assert_msg(r.status == 507 && error_code(&r), "the refused enroll again: %ld %.200s",
                  r.status, r.body);
    resp_free(&r);
    snprintf(path, sizeof path, "/subjects/%s", a[n].subject);
    r = http_get(port, path);
    ASSERT_JSON(r, 404);
    resp_free(&r);
    r = http_get(port, "/metrics");
    ck_assert_double_eq(prom_sum(r.body, "siamesed_enrolled_subjects", NULL), n);
    resp_free(&r);
}

enum { FILL_MAX = 6000 };

START_TEST(max_db_size_answers_507) {
    Own o;
    own_init_ok(&o, "cap");
    const char *const extra[] = {"--max-db-size", "256K", NULL};
    Ack *a = calloc(FILL_MAX + 1, sizeof *a);
    ck_assert_ptr_nonnull(a);
    own_start_ok(&o, H.model_a, extra);
    int n = fill_until_507(o.d.port, "cap", 50000, a, FILL_MAX);
    ck_assert_msg(n >= 20, "507 after only %d enrolls under a 256 KiB cap", n);
    full_store_checks_ok(o.d.port, a, n);

    /* Deleting subjects frees pages; within a few, enroll works again. */
    int deleted = 0;
    for (;; deleted++) {
        Resp r = enroll_seeded(o.d.port, "cap-again", 60000, 1);
        int ok = ack_take(&a[n], &r, 1) == 0;
        ck_assert_msg(ok || r.status == 507, "enroll after deletes: %ld %.200s", r.status, r.body);
        resp_free(&r);
        if (ok)
            break;
        ck_assert_msg(deleted < 32, "still 507 after deleting %d subjects", deleted);
        char path[80];
        snprintf(path, sizeof path, "/subjects/%s", a[deleted].subject);
        r = http_delete(o.d.port, path);
        ASSERT_JSON(r, 200);
        resp_free(&r);
    }
    snprintf(a[n].subject, sizeof a[n].subject, "cap-again");
    a[n].seed = 60000;
    n++;
    ck_assert(ack_present(o.d.port, &a[n - 1]));
    identify_finds_ok(o.d.port, &a[n - 1]);
    fprintf(stderr,
            "durability: --max-db-size 256K: %d enrolls acknowledged, then 507 "
            "insufficient_storage; enroll worked again after deleting %d subject(s)\n",
            n - 1, deleted);

    /* A restart on the full database serves it whole. */
    own_stop_ok(&o);
    own_start_ok(&o, H.model_a, extra);
    char first[200] = "";
    ck_assert_int_eq(acks_missing(o.d.port, a + deleted, n - deleted, first, sizeof first), 0);
    db_sound_ok(o.db, o.d.port, 1);
    own_stop_ok(&o);
    free(a);
}
END_TEST

/* ---- full: a real full filesystem ---- */

/* The tmpfs mount point, chosen in the runner process so that its teardown
 * can unmount it whatever happened in the forked test. */
static char mnt[330];

static void fullfs_setup(void) {
    char dir[320];
    if (scratch_dir("fullfs-mnt", dir, sizeof dir) == 0) {
        snprintf(mnt, sizeof mnt, "%s/mnt", dir);
        mkdir(mnt, 0755);
    }
}

static void fullfs_teardown(void) {
    if (*mnt)
        umount2(mnt, MNT_DETACH); /* EINVAL when the test unmounted it: fine */
}

/* Writes zeros to path until its filesystem is full; returns the bytes
 * written. */
static long fill_disk(const char *path) {
    static const char zeros[65536];
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    long total = 0;
    ssize_t k;
    ck_assert_int_ge(fd, 0);
    for (size_t chunk = sizeof zeros; chunk > 0; chunk /= 2)
        while ((k = write(fd, zeros, chunk)) > 0)
            total += (long)k;
    close(fd);
    return total;
}

START_TEST(real_full_filesystem) {
    if (!*mnt || mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=3M") < 0) {
        fprintf(stderr,
                "durability: SKIPPED the real full filesystem: cannot mount a tmpfs at '%s' "
                "(%s); only the --max-db-size cap was tested\n",
                mnt, strerror(errno));
        return;
    }
    Own o;
    own_init_ok(&o, "fullfs");
    char filler[460], filler2[460];
    snprintf(o.db, sizeof o.db, "%s/siamesed.db", mnt);
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    snprintf(filler2, sizeof filler2, "%s/filler2", mnt);
    static const char mib[1 << 20];
    ck_assert_int_eq(spit(filler, mib, sizeof mib), 0);
    Ack *a = calloc(FILL_MAX + 1, sizeof *a);
    ck_assert_ptr_nonnull(a);
    own_start_ok(&o, H.model_a, NULL);
    int n = fill_until_507(o.d.port, "disk", 70000, a, FILL_MAX);
    ck_assert_msg(n >= 20, "507 after only %d enrolls on a 3 MiB filesystem", n);
    full_store_checks_ok(o.d.port, a, n);

    ck_assert_int_eq(unlink(filler), 0);
    Resp r = enroll_seeded(o.d.port, "disk-again", 80000, 1);
    ck_assert_msg(ack_take(&a[n], &r, 1) == 0, "enroll after freeing 1 MiB: %ld %.200s", r.status,
                  r.body);
    resp_free(&r);
    snprintf(a[n].subject, sizeof a[n].subject, "disk-again");
    a[n++].seed = 80000;
    ck_assert(ack_present(o.d.port, &a[n - 1]));

    /* Full again, then SIGTERM (the closing checkpoint has no room) and a
     * restart on the full disk: it serves, or refuses in one line. */
    long filled = fill_disk(filler2);
    own_stop_ok(&o);
    char filler3[460];
    snprintf(filler3, sizeof filler3, "%s/filler3", mnt);
    filled += fill_disk(filler3); /* what closing the database gave back */
    int served = own_start(&o, H.model_a, NULL) == 0;
    if (served) {
        char first[200] = "";
        ck_assert_int_eq(acks_missing(o.d.port, a, n, first, sizeof first), 0);
        own_stop_ok(&o);
    } else {
        refused_in_one_line_ok(&o, o.db);
    }
    Buf msg = {0};
    if (!served)
        buf_read_file(o.d.log, &msg);
    ck_assert_int_eq(unlink(filler2), 0);
    ck_assert_int_eq(unlink(filler3), 0);
    own_start_ok(&o, H.model_a, NULL);
    char first[200] = "";
    ck_assert_int_eq(acks_missing(o.d.port, a, n, first, sizeof first), 0);
    db_sound_ok(o.db, o.d.port, 1);
    r = enroll_seeded(o.d.port, "disk-last", 90000, 1);
    ASSERT_JSON(r, 201);
    resp_free(&r);
    own_stop_ok(&o);
    fprintf(stderr,
            "durability: 3 MiB tmpfs with a 1 MiB filler: %d enrolls acknowledged, then 507; "
            "removing the filler made enroll work again; stopped and restarted with the disk "
            "full again (%ld bytes filled): %s%.*s\n",
            n - 1, filled,
            served ? "served everything" : "refused: ", msg.len ? (int)msg.len - 1 : 0,
            msg.p ? (char *)msg.p : "");
    buf_free(&msg);
    ck_assert_int_eq(umount2(mnt, 0), 0);
    free(a);
}
END_TEST

int main(int argc, char **argv) {
    Suite *s = suite_create("durability");
    TCase *crash = tcase_create("crash"), *full = tcase_create("full");
    tcase_set_timeout(crash, 150);
    tcase_add_test(crash, kill9_under_concurrent_enrolls);
    tcase_set_timeout(full, 120);
    tcase_add_unchecked_fixture(full, fullfs_setup, fullfs_teardown);
    tcase_add_test(full, max_db_size_answers_507);
    tcase_add_test(full, real_full_filesystem);
    suite_add_tcase(s, crash);
    suite_add_tcase(s, full);
    suite_add_tcase(s, tcase_files());
    return prove_main(argc, argv, "durability", s);
}
