/*
 * prove_util.c — the helpers test_durability.c and test_hostile.c share (see
 * prove_util.h): their main(), a test's own daemon, small file and /proc
 * readers, a seeded RNG and the one-line refusal check.
 */
#include "prove_util.h"

#include <check.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void own_init_ok(Own *o, const char *tag) {
    memset(o, 0, sizeof *o);
    ck_assert_int_eq(scratch_dir(tag, o->dir, sizeof o->dir), 0);
    snprintf(o->db, sizeof o->db, "%s/siamesed.db", o->dir);
}

int own_start(Own *o, const char *model, const char *const *extra) {
    const char *args[40] = {"--model", model, "--db", o->db};
    int n = 4;
    char log[400];
    for (int i = 0; extra && extra[i] && n < 39; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    snprintf(log, sizeof log, "%s/run%d.log", o->dir, ++o->runs);
    return daemon_start(&o->d, log, args);
}

void own_start_ok(Own *o, const char *model, const char *const *extra) {
    if (own_start(o, model, extra) < 0) {
        log_dump(o->d.log);
        ck_abort_msg("the daemon did not start (wait status 0x%x)", o->d.status);
    }
}

void own_stop_ok(Own *o) {
    int st = daemon_stop(&o->d);
    if (!exited_ok(st) || log_has_sanitizer_report(o->d.log))
        log_dump(o->d.log);
    ck_assert_msg(exited_ok(st), "SIGTERM: wait status 0x%x, not exit 0", st);
    ck_assert_msg(!log_has_sanitizer_report(o->d.log), "sanitizer report in %s", o->d.log);
}

void own_logs_clean_ok(const Own *o) {
    for (int i = 1; i <= o->runs; i++) {
        char log[400];
        snprintf(log, sizeof log, "%s/run%d.log", o->dir, i);
        if (log_has_sanitizer_report(log))
            log_dump(log);
        ck_assert_msg(!log_has_sanitizer_report(log), "sanitizer report in %s", log);
    }
}

int spit(const char *path, const void *p, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -1;
    for (size_t off = 0; off < n;) {
        ssize_t k = write(fd, (const char *)p + off, n - off);
        if (k <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)k;
    }
    return close(fd);
}

long rss_kb(pid_t pid) {
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

uint64_t rng_next(Rng *r) {
    r->s ^= r->s >> 12, r->s ^= r->s << 25, r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ull;
}

int rng_range(Rng *r, int lo, int hi) {
    return lo + (int)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

void refused_in_one_line_ok(const Own *o, const char *needle) {
    int st = o->d.status;
    ck_assert_msg(!WIFSIGNALED(st), "the daemon died of signal %d (%s) instead of refusing",
                  WIFSIGNALED(st) ? WTERMSIG(st) : 0,
                  strsignal(WIFSIGNALED(st) ? WTERMSIG(st) : 0));
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 0, "refused start: wait status 0x%x", st);
    Buf log;
    ck_assert_int_eq(buf_read_file(o->d.log, &log), 0);
    const char *text = (const char *)log.p, *nl = strchr(text, '\n');
    int one_line = nl && (size_t)(nl - text) + 1 == log.len;
    int named = strncmp(text, "siamesed: ", 10) == 0 && strstr(text, needle);
    char shown[1200];
    snprintf(shown, sizeof shown, "%.1100s", text);
    buf_free(&log);
    ck_assert_msg(!log_has_sanitizer_report(o->d.log), "sanitizer report: %s", shown);
    ck_assert_msg(one_line && named, "the refusal is not one line \"siamesed: ...%s...\": [%s]",
                  needle, shown);
}

int prove_init(int argc, char **argv, const char *name) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s SIAMESED MKMODEL SRCROOT\n", name);
        return 2;
    }
    static char bin[2][4096];
    if (!realpath(argv[1], bin[0]) || !realpath(argv[2], bin[1])) {
        fprintf(stderr, "%s: cannot resolve %s or %s\n", name, argv[1], argv[2]);
        return 2;
    }
    H.siamesed = bin[0], H.mkmodel = bin[1], H.srcroot = argv[3];
    const char *tmp = getenv("TMPDIR");
    snprintf(H.root, sizeof H.root, "%s/siamesed-%s.XXXXXX", tmp && *tmp ? tmp : "/tmp", name);
    int ok = mkdtemp(H.root) != NULL;
    snprintf(H.model_a, sizeof H.model_a, "%s/model-a.safetensors", H.root);
    snprintf(H.model_b, sizeof H.model_b, "%s/model-b.safetensors", H.root);
    if (!ok || model_make(H.model_a, 11, NULL) < 0 || model_make(H.model_b, 22, NULL) < 0) {
        fprintf(stderr, "%s: cannot prepare %s and the models\n", name, H.root);
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

int prove_run(const char *name, Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    curl_global_cleanup();
    if (failed) {
        fprintf(stderr, "%s: %d failed tests; logs kept in %s\n", name, failed, H.root);
        return 1;
    }
    tree_remove(H.root);
    return 0;
}

int prove_main(int argc, char **argv, const char *name, Suite *s) {
    int rc = prove_init(argc, argv, name);
    return rc ? rc : prove_run(name, s);
}
