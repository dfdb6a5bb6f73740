/*
 * common.h — conventions shared by every siamesed module.
 *
 * Error handling: functions return int. 0 is success; a negative errno value
 * (-EINVAL, -ENOMEM, -EIO, ...) is a failure, and the function has written a
 * one-line, human-readable reason into the caller's `err` buffer (which holds
 * SM_ERRMAX bytes and may be NULL when the caller does not care). Positive
 * return values are documented outcomes a caller must handle (e.g. "absent"),
 * never failures. Only main() exits.
 */
#ifndef SIAMESE_COMMON_H
#define SIAMESE_COMMON_H

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define SM_ERRMAX 512

/* A documented positive outcome: the thing asked for does not exist. */
#define SM_ABSENT 1

#define SM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Formats a message into err (SM_ERRMAX bytes) when err is not NULL and
 * returns code unchanged, so that `return sm_err(err, -EINVAL, "...")` works. */
int sm_err(char *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Reads a whole file into a malloc'ed buffer (caller frees with free()).
 * Refuses files larger than max_bytes with -EFBIG. A trailing NUL is added
 * after the data (not counted in *len) so text can be parsed in place. */
int sm_read_file(const char *path, size_t max_bytes, uint8_t **out, size_t *len, char *err);

/* Writes len bytes to path atomically: a temporary file in the same directory,
 * fsync, rename over path, fsync of the directory. A failure before the rename
 * leaves path untouched and no temporary file behind; only a failed directory
 * fsync comes after it, and then path already holds the new data (just not yet
 * certainly durable). */
int sm_write_file_atomic(const char *path, const void *data, size_t len, char *err);

/* Creates directory path and its parents (mode 0755); existing ones are fine. */
int sm_mkdirs(const char *path, char *err);

/* Monotonic clock in seconds. */
double sm_now(void);

/* pthread_rwlock_init() of a lock that lets a waiting writer in before new
 * readers (glibc's default lets overlapping readers keep it out for good).
 * Nonrecursive: a reader must not take it twice. 0, or its error number. */
int sm_rwlock_init_writers_first(pthread_rwlock_t *lock);

#endif
