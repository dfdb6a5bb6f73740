/*
 * sched.c — per-thread scheduler slices (sched.h) through the raw
 * sched_getattr/sched_setattr calls, which glibc 2.36 does not wrap, and
 * the thread list of /proc/self/task.
 */
#include "siamese/sched.h"

#include <dirent.h>
#include <linux/sched.h> /* SCHED_NORMAL, SCHED_BATCH, SCHED_FLAG_RESET_ON_FORK */
#include <stdint.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

/* struct sched_attr, SCHED_ATTR_SIZE_VER0 (<linux/sched/types.h> cannot be
 * included beside glibc's <sched.h>: both define struct sched_param). */
typedef struct {
    uint32_t size, policy;
    uint64_t flags;
    int32_t nice;
    uint32_t priority;
    uint64_t runtime, deadline, period;
} SchedAttr;
_Static_assert(sizeof(SchedAttr) == 48, "SCHED_ATTR_SIZE_VER0");

int sched_slice_request(pid_t tid, int us, int reset_on_fork) {
    SchedAttr a = {0};
    if (us < 0 || syscall(SYS_sched_getattr, tid, &a, sizeof a, 0) != 0 ||
        (a.policy != SCHED_NORMAL && a.policy != SCHED_BATCH))
        return 0;
    a.size = sizeof a;
    /* Only the flag kept or asked for: the others need a larger struct. */
    a.flags = (a.flags & SCHED_FLAG_RESET_ON_FORK) | (reset_on_fork ? SCHED_FLAG_RESET_ON_FORK : 0);
    a.runtime = (uint64_t)us * 1000;
    return syscall(SYS_sched_setattr, tid, &a, 0) == 0;
}

long sched_slice_of(pid_t tid, int *reset_on_fork) {
    SchedAttr a = {0};
    if (syscall(SYS_sched_getattr, tid, &a, sizeof a, 0) != 0 ||
        (a.policy != SCHED_NORMAL && a.policy != SCHED_BATCH))
        return -1;
    if (reset_on_fork)
        *reset_on_fork = (a.flags & SCHED_FLAG_RESET_ON_FORK) != 0;
    return (long)a.runtime;
}

int sched_threads(pid_t **tids) {
    DIR *d = opendir("/proc/self/task");
    int n = 0, cap = 0;
    *tids = NULL;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));) {
        long t = atol(e->d_name);
        if (t <= 0)
            continue;
        if (n == cap) {
            pid_t *g = realloc(*tids, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *g);
            if (!g) {
                closedir(d);
                free(*tids), *tids = NULL;
                return -1;
            }
            *tids = g;
        }
        (*tids)[n++] = (pid_t)t;
    }
    closedir(d);
    return n;
}
