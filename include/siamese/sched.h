/*
 * sched.h — asking Linux for a scheduler slice per thread. Since 6.12
 * (EEVDF) a SCHED_NORMAL or SCHED_BATCH thread's sched_attr.sched_runtime
 * is the slice it runs before others of its weight get the CPU: a short one
 * gets it back sooner, and wakes ahead of longer ones. Its share of the CPU
 * does not change. Earlier kernels ignore the field.
 */
#ifndef SIAMESE_SCHED_H
#define SIAMESE_SCHED_H

#include <sys/types.h>

/* Asks for slices of us microseconds (0: the kernel's default) for thread
 * tid of this process (0: the calling thread), leaving its policy and nice
 * value as they are; with reset_on_fork, the threads it creates start at
 * the default again. 1 when the kernel took the request, 0 when it cannot
 * (a real-time or idle policy, a refusal). */
int sched_slice_request(pid_t tid, int us, int reset_on_fork);

/* Thread tid's slice in ns as the kernel reports it (0 before 6.12), and in
 * *reset_on_fork (may be NULL) whether the threads it creates start at the
 * default; -1 for another policy, or a thread that cannot be asked. */
long sched_slice_of(pid_t tid, int *reset_on_fork);

/* This process's thread ids in *tids (malloc'ed; the caller frees it):
 * their number, or -1. */
int sched_threads(pid_t **tids);

#endif
