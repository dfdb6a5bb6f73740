/*
 * test_log.c — log lines and log_stream(): every line written to the stream
 * comes out as one "TIMESTAMP level message" line on stderr, terminal control
 * dropped (a bar redrawn after "\r" is not logged, "\033[K" vanishes), an unterminated line logged
 * at fclose(), "warning: x" lines as "warn x", and nothing at all below the
 * level set with log_set_level(); the progress line only on a terminal,
 * redrawn below the log lines.
 */
#include <check.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
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
                             {"warn", "few images"},
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
    ck_assert(!log_enabled(LOG_DEBUG) && !log_enabled(LOG_INFO));
    ck_assert(log_enabled(LOG_WARN) && log_enabled(LOG_ERROR));
    char *out = capture_stderr(write_progress);
    assert_line(strtok(out, "\n"), "warn", "few images");
    assert_line(strtok(NULL, "\n"), "warn", "a warning");
    ck_assert_ptr_null(strtok(NULL, "\n"));
    free(out);
    log_set_level(LOG_INFO);
}
END_TEST

static void write_with_progress(void) {
    log_progress("enroll %d%%", 40);
    log_info("between");
    log_progress_end();
}

/* Not a terminal: log_progress() writes nothing, the log line is plain. */
START_TEST(progress_silent_off_a_terminal) {
    log_set_level(LOG_INFO);
    ck_assert_int_eq(log_progress_shown(), 0);
    char *out = capture_stderr(write_with_progress);
    assert_line(strtok(out, "\n"), "info", "between");
    ck_assert_ptr_null(strtok(NULL, "\n"));
    free(out);
}
END_TEST

/* On a terminal: the bar, then the log line above a redrawn bar, then the
 * bar left standing with a newline; at warn level nothing of the bar. */
START_TEST(progress_redrawn_below_log_lines) {
    int master, slave;
    ck_assert_int_eq(openpty(&master, &slave, NULL, NULL, NULL), 0);
    struct termios t;
    ck_assert_int_eq(tcgetattr(slave, &t), 0);
    t.c_oflag &= ~(tcflag_t)OPOST; /* bytes as written, no "\n" -> "\r\n" */
    ck_assert_int_eq(tcsetattr(slave, TCSANOW, &t), 0);
    int saved = dup(2);
    fflush(stderr);
    dup2(slave, 2);
    log_set_level(LOG_INFO);
    ck_assert_int_eq(log_progress_shown(), 1);
    write_with_progress();
    log_set_level(LOG_WARN);
    ck_assert_int_eq(log_progress_shown(), 0);
    log_progress("hidden");
    log_progress_end();
    log_set_level(LOG_INFO);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(slave);
    char buf[512] = {0};
    ssize_t n = 0, r;
    while (n < (ssize_t)sizeof buf - 1 &&
           (r = read(master, buf + n, sizeof buf - 1 - (size_t)n)) > 0)
        n += r; /* ends with EIO once the slave side is closed and drained */
    close(master);
    const char *bar = "\r\033[Kenroll 40%";
    ck_assert_msg(strncmp(buf, bar, strlen(bar)) == 0, "got '%s'", buf);
    const char *line = strstr(buf + strlen(bar), "\r\033[K2");
    ck_assert_msg(line, "log line not cleared onto its own line: '%s'", buf);
    const char *end = strstr(line, " info  between\n\r\033[Kenroll 40%\n");
    ck_assert_msg(end, "bar not redrawn below the line: '%s'", buf);
    ck_assert_msg(!strstr(buf, "hidden"), "bar shown at warn level: '%s'", buf);
    ck_assert_int_eq((int)strlen(end), (int)strlen(" info  between\n\r\033[Kenroll 40%\n"));
}
END_TEST

int main(void) {
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_test(tc, stream_lines_share_the_log_format);
    tcase_add_test(tc, stream_honours_the_level);
    tcase_add_test(tc, progress_silent_off_a_terminal);
    tcase_add_test(tc, progress_redrawn_below_log_lines);
    suite_add_tcase(s, tc);
    return check_run(s);
}
