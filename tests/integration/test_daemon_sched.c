/*
 * test_daemon_sched.c — how the daemon asks the kernel to schedule it:
 * worker_slice reaches every HTTP worker thread and only them (the main
 * thread goes back to the kernel's default slice), and 0 leaves the
 * workers at the default. Runs where the kernel keeps a per-thread slice
 * and /proc shows it (Linux 6.12+ with scheduler debug files); elsewhere
 * it says it skipped.
 */
#include <check.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "daemon_harness.h"

/* se.slice of thread tid of pid in ns, as /proc shows it; -1 if it does not. */
static long thread_slice(long pid, long tid) {
    char path[64], line[256];
    long ns = -1;
    snprintf(path, sizeof path, "/proc/%ld/task/%ld/sched", pid, tid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "se.slice", 8))
            ns = atol(strchr(line, ':') + 1);
    if (f)
        fclose(f);
    return ns;
}

/* struct sched_attr (SCHED_ATTR_SIZE_VER0), as the daemon sets it. */
typedef struct {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
} SchedAttr;

/* Whether this kernel keeps a slice a thread asks for and /proc shows it:
 * tried on this thread, then undone. */
static int custom_slices_shown(void) {
    SchedAttr a = {.size = sizeof a, .runtime = 250000};
    long me = syscall(SYS_gettid);
    if (syscall(SYS_sched_setattr, 0, &a, 0) != 0)
        return 0;
    int shown = thread_slice(getpid(), me) == 250000;
    a.runtime = 0;
    syscall(SYS_sched_setattr, 0, &a, 0);
    return shown;
}

/* The slice of d's main thread, and of its MHD-worker threads (-2 when they
 * differ). Returns the number of workers. */
static int daemon_slices(const Daemon *d, long *main_ns, long *worker_ns) {
    char path[64], name[32];
    int workers = 0;
    *main_ns = thread_slice(d->pid, d->pid), *worker_ns = -1;
    snprintf(path, sizeof path, "/proc/%ld/task", (long)d->pid);
    DIR *dir = opendir(path);
    ck_assert_ptr_nonnull(dir);
    for (struct dirent *e; (e = readdir(dir));) {
        long tid = atol(e->d_name);
        snprintf(path, sizeof path, "/proc/%ld/task/%ld/comm", (long)d->pid, tid);
        FILE *f = tid > 0 ? fopen(path, "r") : NULL;
        if (f && fgets(name, sizeof name, f) && !strncmp(name, "MHD-worker", 10)) {
            long ns = thread_slice(d->pid, tid);
            *worker_ns = workers++ && *worker_ns != ns ? -2 : ns;
        }
        if (f)
            fclose(f);
    }
    closedir(dir);
    return workers;
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
    if (!custom_slices_shown()) {
        fprintf(stderr, "scheduling: skipped, this kernel keeps no per-thread slice\n");
        return;
    }
    char dir[320];
    Daemon d = {0};
    long main_ns, worker_ns;
    ck_assert_int_eq(scratch_dir("slice", dir, sizeof dir), 0);
    start(&d, dir, "250");
    ck_assert_int_eq(daemon_slices(&d, &main_ns, &worker_ns), 3);
    ck_assert_int_eq(worker_ns, 250000);
    ck_assert_int_ne(main_ns, 250000); /* the main thread went back to the default */
    stop(&d);
    start(&d, dir, "0");
    ck_assert_int_eq(daemon_slices(&d, &main_ns, &worker_ns), 3);
    ck_assert_int_eq(worker_ns, main_ns);
    stop(&d);
}
END_TEST

TCase *tcase_scheduling(void) {
    TCase *tc = tcase_create("scheduling");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, workers_get_the_configured_slice);
    return tc;
}
