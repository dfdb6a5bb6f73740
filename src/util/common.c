/*
 * common.c — error formatting and the small file helpers every module uses:
 * whole-file reads with a size cap, atomic writes (temp + fsync + rename +
 * directory fsync, the redis way), mkdir -p and a monotonic clock.
 */
#include "siamese/common.h"

#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int sm_err(char *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, SM_ERRMAX, fmt, ap);
        va_end(ap);
    }
    return code;
}

int sm_read_file(const char *path, size_t max_bytes, uint8_t **out, size_t *len, char *err) {
    int rc = 0;
    uint8_t *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sm_err(err, -errno, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = sm_err(err, -errno, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = sm_err(err, -EINVAL, "%s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)st.st_size > max_bytes) {
        rc = sm_err(err, -EFBIG, "%s: %lld bytes, more than the %zu allowed", path,
                    (long long)st.st_size, max_bytes);
        goto out;
    }
    size_t size = (size_t)st.st_size, got = 0;
    buf = malloc(size + 1);
    if (!buf) {
        rc = sm_err(err, -ENOMEM, "%s: out of memory", path);
        goto out;
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = sm_err(err, r < 0 ? -errno : -EIO, "%s: read failed%s%s", path,
                        r < 0 ? ": " : " (file shrank)", r < 0 ? strerror(errno) : "");
            goto out;
        }
        got += (size_t)r;
    }
    buf[size] = 0;
    *out = buf;
    *len = size;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return rc;
}

static int fsync_dir_of(const char *path) {
    char *copy = strdup(path);
    if (!copy)
        return -ENOMEM;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int sm_write_file_atomic(const char *path, const void *data, size_t len, char *err) {
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp)
        return sm_err(err, -ENAMETOOLONG, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return sm_err(err, -errno, "%s: cannot create: %s", tmp, strerror(errno));
    int rc = 0;
    const uint8_t *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = sm_err(err, -errno, "%s: write failed: %s", tmp, strerror(errno));
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = sm_err(err, -errno, "%s: fsync failed: %s", tmp, strerror(errno));
    if (close(fd) < 0 && rc == 0)
        rc = sm_err(err, -errno, "%s: close failed: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) < 0)
        rc = sm_err(err, -errno, "%s: rename failed: %s", path, strerror(errno));
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    int drc = fsync_dir_of(path);
    if (drc < 0)
        return sm_err(err, drc, "%s: directory fsync failed: %s", path, strerror(-drc));
    return 0;
}

int sm_mkdirs(const char *path, char *err) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return sm_err(err, -EINVAL, "bad directory path '%s'", path);
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != 0)
            continue;
        char c = *p;
        *p = 0;
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return sm_err(err, -errno, "mkdir %s: %s", buf, strerror(errno));
        *p = c;
        if (c == 0)
            break;
    }
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return sm_err(err, -ENOTDIR, "%s: not a directory", path);
    return 0;
}

double sm_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int sm_rwlock_init_writers_first(pthread_rwlock_t *lock) {
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int rc = pthread_rwlock_init(lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    return rc;
}
