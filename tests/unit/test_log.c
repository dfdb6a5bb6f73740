/*
 * test_log.c — log lines and log_stream(): every line written to the stream
 * comes out as one "TIMESTAMP level message" line on stderr, terminal control
 * dropped (a bar redrawn after "\r" is not logged, "\033[K" vanishes), an unterminated line logged
 * at fclose(), and nothing at all below the level set with log_set_level().
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "siamese/log.h"

#include "check_util.h"

/* Runs write_fn with stderr sent to a temporary file; returns what it got
 * (malloc'ed, NUL-terminated). */
static char *capture_stderr(void (*write_fn)(void)) {
    char path[] = "/tmp/test_log_XXXXXX";
    int fd = mkstemp(path), saved = dup(2);
    ck_assert(fd >= 0 && saved >= 0);
    fflush(stderr);
    dup2(fd, 2);
    write_fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t n = lseek(fd, 0, SEEK_END);
    char *buf = calloc(1, (size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(pread(fd, buf, (size_t)n, 0), n);
    close(fd);
    unlink(path);
    return buf;
}

static void write_progress(void) {
    FILE *f = log_stream(LOG_INFO);
    ck_assert_ptr_nonnull(f);
    fprintf(f, "epoch 1/2 [====    ] 50%%");            /* a bar, no newline */
    fprintf(f, "\r\033[Kepoch 1/2  loss 0.1175\n");     /* then the epoch line */
    fprintf(f, "train: %d pairs\nsecond line\n\n", 42); /* two lines, one empty */
    fprintf(f, "warning: few images\n");
    fprintf(f, "tail without newline");
    fclose(f);
    log_warn("a warning");
}

/* "2026-01-01T12:00:00Z level message": the format of every log line. */
static void assert_line(const char *line, const char *level, const char *msg) {
    char want[256];
    snprintf(want, sizeof want, " %-5s %s", level, msg);
    ck_assert_msg(strlen(line) == 20 + strlen(want), "line '%s'", line);
    ck_assert_msg(line[4] == '-' && line[10] == 'T' && line[19] == 'Z', "timestamp of '%s'", line);
    ck_assert_str_eq(line + 20, want);
}

START_TEST(stream_lines_share_the_log_format) {
    log_set_level(LOG_INFO);
    char *out = capture_stderr(write_progress), *save = NULL;
    const char *want[][2] = {{"info", "epoch 1/2  loss 0.1175"},
                             {"info", "train: 42 pairs"},
                             {"info", "second line"},
                             {"warn", "warning: few images"},
                             {"info", "tail without newline"},
                             {"warn", "a warning"}};
    char *line = strtok_r(out, "\n", &save);
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        ck_assert_msg(line != NULL, "line %zu missing", i);
        assert_line(line, want[i][0], want[i][1]);
        line = strtok_r(NULL, "\n", &save);
    }
    ck_assert_ptr_null(line);
    free(out);
}
END_TEST

START_TEST(stream_honours_the_level) {
    log_set_level(LOG_WARN);
    char *out = capture_stderr(write_progress);
    assert_line(strtok(out, "\n"), "warn", "warning: few images");
    assert_line(strtok(NULL, "\n"), "warn", "a warning");
    ck_assert_ptr_null(strtok(NULL, "\n"));
    free(out);
    log_set_level(LOG_INFO);
}
END_TEST

int main(void) {
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_test(tc, stream_lines_share_the_log_format);
    tcase_add_test(tc, stream_honours_the_level);
    suite_add_tcase(s, tc);
    return check_run(s);
}
