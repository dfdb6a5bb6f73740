/*
 * log.c — timestamped one-line messages on stderr. A single fprintf per line
 * keeps lines from different threads whole (stdio locks the stream); the
 * progress line, when there is one, is redrawn under the same lock below each.
 */
#include "siamese/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static LogLevel min_level = LOG_INFO;
/* The progress line on the terminal ("\r\033[K" + text), "" when none;
 * guarded by stderr's own lock (flockfile), as are the lines around it. */
static char progress[256 + 8];
static const char *const names[] = {"debug", "info", "warn", "error"};

void log_set_level(LogLevel level) {
    min_level = level;
}

int log_parse_level(const char *s, LogLevel *out) {
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = (LogLevel)i;
            return 0;
        }
    return -EINVAL;
}

int log_enabled(LogLevel level) {
    return level >= min_level;
}

void log_msg(LogLevel level, const char *fmt, ...) {
    if (level < min_level)
        return;
    char msg[2048], ts[32];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    flockfile(stderr);
    if (progress[0]) /* the line goes above the progress line */
        fputs("\r\033[K", stderr);
    fprintf(stderr, "%s %-5s %s\n", ts, names[level], msg);
    if (progress[0])
        fputs(progress, stderr);
    funlockfile(stderr);
}

/* ---- the progress line ---- */

int log_progress_shown(void) {
    return min_level <= LOG_INFO && isatty(STDERR_FILENO);
}

void log_progress(const char *fmt, ...) {
    if (!log_progress_shown())
        return;
    char line[sizeof progress - 8];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    line[strcspn(line, "\r\n")] = 0; /* one line, or it cannot be redrawn */
    flockfile(stderr);
    snprintf(progress, sizeof progress, "\r\033[K%s", line);
    fputs(progress, stderr);
    fflush(stderr);
    funlockfile(stderr);
}

void log_progress_end(void) {
    flockfile(stderr);
    if (progress[0])
        fputc('\n', stderr);
    progress[0] = 0;
    funlockfile(stderr);
}

/* ---- log_stream: a FILE * that logs lines ---- */

typedef struct {
    LogLevel level;
    size_t len;
    char line[1024];
} LineSink;

/* Logs what is buffered, without terminal escapes; empty lines vanish. */
static void sink_flush(LineSink *s) {
    size_t w = 0;
    for (size_t r = 0; r < s->len; r++) {
        if (s->line[r] == '\033' && r + 2 < s->len && s->line[r + 1] == '[') {
            r += 2; /* "\033[K" and the like: skip to the final letter */
            while (r < s->len && !((s->line[r] >= 'A' && s->line[r] <= 'Z') ||
                                   (s->line[r] >= 'a' && s->line[r] <= 'z')))
                r++;
            continue;
        }
        s->line[w++] = s->line[r];
    }
    s->line[w] = 0;
    /* The trainer's "warning: ..." lines are warnings; the level word then
     * says so, and the prefix goes (not "warn  warning: ..."). */
    const char *msg = s->line;
    LogLevel level = s->level;
    if (strncmp(msg, "warning:", 8) == 0) {
        msg += 8 + strspn(msg + 8, " ");
        level = level < LOG_WARN ? LOG_WARN : level;
    }
    if (*msg)
        log_msg(level, "%s", msg);
    s->len = 0;
}

static ssize_t sink_write(void *cookie, const char *buf, size_t n) {
    LineSink *s = cookie;
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\r') /* a redrawn bar: what it overwrites is not logged */
            s->len = 0;
        else if (buf[i] == '\n' || s->len == sizeof s->line - 1)
            sink_flush(s);
        if (buf[i] != '\n' && buf[i] != '\r')
            s->line[s->len++] = buf[i];
    }
    return (ssize_t)n;
}

static int sink_close(void *cookie) {
    LineSink *s = cookie;
    sink_flush(s);
    free(s);
    return 0;
}

FILE *log_stream(LogLevel level) {
    LineSink *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->level = level;
    FILE *f =
        fopencookie(s, "w", (cookie_io_functions_t){.write = sink_write, .close = sink_close});
    if (!f)
        free(s);
    else
        setvbuf(f, NULL, _IOLBF, 0);
    return f;
}
