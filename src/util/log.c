/*
 * log.c — timestamped one-line messages on stderr. A single fprintf per line
 * keeps lines from different threads whole (stdio locks the stream).
 */
#include "siamese/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static LogLevel min_level = LOG_INFO;
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
    fprintf(stderr, "%s %-5s %s\n", ts, names[level], msg);
}
