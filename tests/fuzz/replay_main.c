/*
 * replay_main.c — runs a fuzz target over a corpus without libFuzzer, so that
 * every target is also a plain test under gcc (`meson test --suite fuzz`).
 *
 *   fuzz_<name> [-t SECONDS] PATH...
 *
 * Each PATH is a file or a directory whose regular files (not recursive,
 * names starting with '.' skipped) are inputs, taken in name order. Each
 * input runs in a child process of its own, copied into a buffer of exactly
 * its size (as libFuzzer does, so that a read one byte past the end is caught
 * by AddressSanitizer), with an alarm of SECONDS (default 10) against hangs.
 * A child that dies by a signal, exits non-zero (a sanitizer report, a leak
 * at exit) or times out is a failed input; every failure is named, and the
 * program exits 1 if there was any, 0 otherwise. A corpus of no inputs is an
 * error too (a wrong path must not pass silently).
 */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define REPLAY_MAX_INPUT (64u << 20)

typedef struct {
    char **paths;
    size_t n, cap;
} PathList;

static int list_add(PathList *l, const char *dir, const char *name) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        char **grown = realloc(l->paths, cap * sizeof *grown);
        if (!grown)
            return -ENOMEM;
        l->paths = grown;
        l->cap = cap;
    }
    size_t need = (dir ? strlen(dir) + 1 : 0) + strlen(name) + 1;
    char *p = malloc(need);
    if (!p)
        return -ENOMEM;
    snprintf(p, need, "%s%s%s", dir ? dir : "", dir ? "/" : "", name);
    l->paths[l->n++] = p;
    return 0;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds path itself (a file) or the regular files directly inside it (a directory). */
static int collect(PathList *l, const char *path) {
    struct stat st;
    if (stat(path, &st) < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -errno;
    }
    if (!S_ISDIR(st.st_mode))
        return list_add(l, NULL, path);
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -errno;
    }
    size_t first = l->n;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, e->d_name);
        if (stat(full, &st) == 0 && S_ISREG(st.st_mode))
            rc = list_add(l, path, e->d_name);
    }
    closedir(d);
    qsort(l->paths + first, l->n - first, sizeof *l->paths, cmp_name);
    return rc;
}

/* Reads the whole file into a malloc'ed buffer of exactly its size. */
static int slurp(const char *path, uint8_t **out, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    int rc = 0;
    uint8_t *buf = NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n < 0 || (unsigned long)n > REPLAY_MAX_INPUT || fseek(f, 0, SEEK_SET) != 0) {
        rc = -EFBIG;
        goto out;
    }
    /* malloc(0) may return NULL; an empty input still gets a real pointer. */
    buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf) {
        rc = -ENOMEM;
        goto out;
    }
    if (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        rc = -EIO;
        goto out;
    }
    *out = buf;
    *len = (size_t)n;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return rc;
}

/* The child: one input, then exit() so that LeakSanitizer checks it. */
static _Noreturn void run_child(const char *path, unsigned timeout) {
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = slurp(path, &buf, &len);
    if (rc < 0) {
        fprintf(stderr, "replay: %s: cannot read: %s\n", path, strerror(-rc));
        exit(2);
    }
    alarm(timeout);
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    exit(0);
}

/* Runs one input in a child; returns 0 when it passed, 1 when it failed. */
static int replay_one(const char *path, unsigned timeout) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "replay: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0)
        run_child(path, timeout);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return 1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFSIGNALED(status))
        fprintf(stderr, "FAIL %s: killed by signal %d (%s)%s\n", path, WTERMSIG(status),
                strsignal(WTERMSIG(status)), WTERMSIG(status) == SIGALRM ? ": timeout" : "");
    else
        fprintf(stderr, "FAIL %s: exit status %d\n", path, WEXITSTATUS(status));
    return 1;
}

int main(int argc, char **argv) {
    unsigned timeout = 10;
    int i = 1;
    if (argc > 2 && strcmp(argv[1], "-t") == 0) {
        timeout = (unsigned)strtoul(argv[2], NULL, 10);
        i = 3;
    }
    if (i >= argc || timeout == 0) {
        fprintf(stderr, "usage: %s [-t SECONDS] FILE-OR-DIR...\n", argv[0]);
        return 2;
    }
    PathList l = {0};
    for (; i < argc; i++)
        if (collect(&l, argv[i]) < 0)
            return 2;
    if (l.n == 0) {
        fprintf(stderr, "replay: no inputs found\n");
        return 2;
    }
    size_t failed = 0;
    for (size_t k = 0; k < l.n; k++) {
        failed += (size_t)replay_one(l.paths[k], timeout);
        free(l.paths[k]);
    }
    free(l.paths);
    printf("replay: %zu passed, %zu failed\n", l.n - failed, failed);
    return failed ? 1 : 0;
}
