/*
 * log.h — one-line log messages on stderr: "2026-01-01T12:00:00Z level message".
 * Thread-safe (one fprintf per line). log_set_level() filters below a level.
 */
#ifndef SIAMESE_LOG_H
#define SIAMESE_LOG_H

#include <stdio.h>

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } LogLevel;

void log_set_level(LogLevel level);
/* Parses "debug", "info", "warn" or "error"; returns -EINVAL otherwise. */
int log_parse_level(const char *s, LogLevel *out);
void log_msg(LogLevel level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A write-only stream whose every line becomes one log_msg(level, line):
 * progress written by modules that take a FILE * (the trainer) then shares
 * the log's format and honours log_set_level(). Terminal control is dropped:
 * "\r" discards the line so far (a redrawn bar), escapes like "\033[K" go;
 * a line without its newline is logged at fclose().
 * Caller closes it with fclose(). NULL if out of memory. */
FILE *log_stream(LogLevel level); /* lines starting "warning:" go out at warn */

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
