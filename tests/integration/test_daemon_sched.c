/*
 * test_daemon_sched.c — how the daemon asks the kernel to schedule it:
 * worker_slice reaches every HTTP worker thread and only them (not the
 * main thread, and the threads a worker starts later begin at the kernel's
 * default), and 0 leaves the workers alone. Runs where the kernel keeps a
 * slice per thread (Linux 6.12+); elsewhere it says it skipped.
 */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "daemon_harness.h"
#include "siamese/sched.h"

/* Whether this kernel keeps a slice a thread asks for: tried on this
 * thread, then undone. */
static int custom_slices_kept(void) {
    pid_t me = (pid_t)syscall(SYS_gettid);
    int kept = sched_slice_request(me, 250, 0) && sched_slice_of(me, NULL) == 250000;
    sched_slice_request(me, 0, 0);
    return kept;
}

typedef struct {
    long main_ns, worker_ns; /* worker_ns: -2 when the workers differ */
    int workers, reset;      /* reset: every worker's children start at the default */
} Slices;

static Slices daemon_slices(const Daemon *d) {
    char path[64], name[32];
    Slices s = {.main_ns = sched_slice_of(d->pid, NULL), .worker_ns = -1, .reset = 1};
    snprintf(path, sizeof path, "/proc/%ld/task", (long)d->pid);
    DIR *dir = opendir(path);
    ck_assert_ptr_nonnull(dir);
    for (struct dirent *e; (e = readdir(dir));) {
        pid_t tid = (pid_t)atol(e->d_name);
        snprintf(path, sizeof path, "/proc/%ld/task/%ld/comm", (long)d->pid, (long)tid);
        FILE *f = tid > 0 ? fopen(path, "r") : NULL;
        if (!f)
            continue;
        if (fgets(name, sizeof name, f) && !strncmp(name, "MHD-worker", 10)) {
            int reset = 0;
            long ns = sched_slice_of(tid, &reset);
            s.worker_ns = s.workers++ && s.worker_ns != ns ? -2 : ns;
            s.reset &= reset;
        }
        fclose(f);
    }
    closedir(dir);
    return s;
}

/* daemon_slices() once all `want` workers have named themselves (a worker
 * names itself when it first runs, which on a busy machine can come after
 * the daemon answered /healthz from another), or after 10 s. */
static Slices daemon_slices_of(const Daemon *d, int want) {
    Slices s = daemon_slices(d);
    for (double t0 = now_s(); s.workers < want && now_s() - t0 < 10; s = daemon_slices(d))
        usleep(10000);
    return s;
}

/* Starts a daemon on model A with --threads 3 --worker-slice us. */
static void start(Daemon *d, const char *dir, const char *us) {
    char db[400], log[400];
    snprintf(db, sizeof db, "%s/slice.db", dir);
    snprintf(log, sizeof log, "%s/slice-%s.log", dir, us);
    const char *const args[] = {"--model", H.model_a,        "--db", db,  "--threads",
                                "3",       "--worker-slice", us,     NULL};
    ck_assert_msg(daemon_start(d, log, args) == 0, "the daemon did not start (see %s)", log);
}

static void stop(Daemon *d) {
    int st = daemon_stop(d);
    ck_assert_msg(exited_ok(st), "SIGTERM: wait status 0x%x, not exit 0", st);
}

START_TEST(workers_get_the_configured_slice) {
    if (!custom_slices_kept()) {
        fprintf(stderr, "scheduling: skipped, this kernel keeps no slice per thread\n");
        return;
    }
    char dir[320];
    Daemon d = {0};
    ck_assert_int_eq(scratch_dir("slice", dir, sizeof dir), 0);
    start(&d, dir, "250");
    Slices s = daemon_slices_of(&d, 3);
    ck_assert_int_eq(s.workers, 3);
    ck_assert_int_eq(s.worker_ns, 250000);
    ck_assert_msg(s.reset, "a worker's new threads would inherit its slice");
    ck_assert_int_ne(s.main_ns, 250000);
    stop(&d);
    start(&d, dir, "0");
    s = daemon_slices_of(&d, 3);
    ck_assert_int_eq(s.workers, 3);
    ck_assert_int_eq(s.worker_ns, s.main_ns);
    stop(&d);
}
END_TEST

TCase *tcase_scheduling(void) {
    TCase *tc = tcase_create("scheduling");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, workers_get_the_configured_slice);
    return tc;
}
